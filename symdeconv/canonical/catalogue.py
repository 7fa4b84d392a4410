"""A catalogue of named identities between operator chains — data, not prose.

Each :class:`Identity` has a left and a right side (operators with symbolic taps), the conditions under
which it holds, a citation, and whether it is expected to hold (a few entries record *non*-identities,
whose counterexample is the point, e.g. ↑2↓2 ≠ ↓2↑2).  :meth:`Identity.prove` proves it twice, by
independent routes: equality of polyphase normal forms (every input length at once) and equality of
explicit SymPy matrices for several lengths.  The tests and ``make demo`` iterate over this table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import sympy as sp

from ..algebra.arrays import as_taps, convolve, dilate, reverse, taps
from ..algebra.constructions import (
    dilated_conv, linear_interp, strided_conv, transposed_conv, xcorr,
)
from ..algebra.operators import Operator, channel_conv, conv, down, hold, identity, pixel_shuffle, shift, up
from .equivalence import Equivalence, equivalent, matrices_agree

__all__ = ["Identity", "Proof", "Catalogue", "IDENTITIES", "bilinear_kernel"]

DEFAULT_SIZES = (1, 2, 3, 5, 8)


@dataclass(frozen=True)
class Proof:
    """The outcome of proving one identity by both routes."""

    identity: "Identity"
    normal_form: Equivalence
    matrices: dict[int, bool]

    @property
    def holds(self) -> bool:
        """What the normal forms say (a statement about every input length)."""
        return bool(self.normal_form)

    @property
    def routes_agree(self) -> bool:
        """Matrices never contradict the normal form: all agree if it holds, some differ if not."""
        if self.holds:
            return all(self.matrices.values())
        return not all(self.matrices.values())

    @property
    def ok(self) -> bool:
        """Both routes agree with each other and with what the catalogue expects."""
        return self.routes_agree and self.holds == self.identity.holds

    @property
    def status(self) -> str:
        sizes = ",".join(str(n) for n in self.matrices)
        if not self.routes_agree:
            return f"ROUTES DISAGREE (normal form says {self.holds}, matrices n={sizes}: {self.matrices})"
        if self.holds and self.identity.holds:
            return f"proved: all lengths (normal form) + matrices n={sizes}"
        if not self.holds and not self.identity.holds:
            return f"refuted, as catalogued: {self.normal_form.counterexample}"
        if self.holds:
            return "UNEXPECTED: holds, but is catalogued as a non-identity"
        return f"FAILED: {self.normal_form.counterexample}"

    def __str__(self) -> str:
        return f"{self.identity.name}: {self.status}"


@dataclass(frozen=True)
class Identity:
    """One catalogued identity ``lhs == rhs`` (or, with ``holds=False``, a documented ``lhs != rhs``)."""

    name: str
    statement: str
    lhs: Operator
    rhs: Operator
    conditions: str
    citation: str
    holds: bool = True
    notes: str = ""

    def prove(self, sizes: tuple[int, ...] = DEFAULT_SIZES) -> Proof:
        """Prove by normal forms (all lengths) and by explicit matrices for each ``n`` in ``sizes``."""
        by_form = equivalent(self.lhs, self.rhs)
        by_matrix = {n: matrices_agree(self.lhs, self.rhs, n) for n in sizes}
        return Proof(self, by_form, by_matrix)

    def __str__(self) -> str:
        return f"{self.name}: {self.statement}  [{self.conditions}]"


class Catalogue(Mapping[str, Identity]):
    """Identities by name, in catalogue order; iterate with ``.values()`` or call :meth:`prove_all`."""

    def __init__(self, factories: list[Callable[[], list[Identity]]]):
        self._factories = factories
        self._items: dict[str, Identity] | None = None

    def _load(self) -> dict[str, Identity]:
        if self._items is None:  # built lazily: importing symdeconv stays cheap
            items: dict[str, Identity] = {}
            for make in self._factories:
                for ident in make():
                    if ident.name in items:  # pragma: no cover - catalogue integrity
                        raise ValueError(f"duplicate identity name {ident.name}")
                    items[ident.name] = ident
            self._items = items
        return self._items

    def __getitem__(self, name: str) -> Identity:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def prove_all(self, sizes: tuple[int, ...] = DEFAULT_SIZES) -> list[Proof]:
        return [ident.prove(sizes) for ident in self.values()]

    def __repr__(self) -> str:
        return f"<Catalogue of {len(self)} identities: {', '.join(self)}>"


def bilinear_kernel(size: int) -> tuple[sp.Rational, ...]:
    """The 1-D FCN bilinear upsampling kernel (Long, Shelhamer & Darrell 2015, ``upsample_filt``)."""
    factor = (size + 1) // 2
    center = sp.Integer(factor - 1) if size % 2 == 1 else sp.Rational(2 * factor - 1, 2)
    return tuple(1 - abs(i - center) / sp.Integer(factor) for i in range(size))


# --------------------------------------------------------------------------------------------------
# The entries.  q, h are symbolic taps, so every identity is proved for all filter values at once.
# --------------------------------------------------------------------------------------------------

VAIDYANATHAN = "P. P. Vaidyanathan, Multirate Systems and Filter Banks, Prentice Hall, 1993"
DUMOULIN = "V. Dumoulin & F. Visin, A guide to convolution arithmetic for deep learning, arXiv:1603.07285, 2016"
ODENA = "A. Odena, V. Dumoulin & C. Olah, Deconvolution and Checkerboard Artifacts, Distill, 2016"
SHI = "W. Shi et al., Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN, CVPR 2016"
FCN = "J. Long, E. Shelhamer & T. Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015"
STACKEX = "datascience.stackexchange.com question 6107, answer 'Convolutions from a DSP perspective'"


def _transposes() -> list[Identity]:
    out = [
        Identity(
            f"up_is_down_transpose[k={k}]", f"↑{k} = (↓{k})ᵀ", up(k), down(k).T,
            "k ≥ 1", VAIDYANATHAN + ", §4.1",
        )
        for k in (2, 3)
    ]
    q = taps("q", 3)
    K = len(q)
    out.append(Identity(
        "strided_conv_transpose",
        "(↓2 (q∗))ᵀ = z^{K−1}·(reverse(q) ∗ ↑2): a transposed conv with the reversed kernel, advanced K−1",
        strided_conv(q, 2).T, shift(-(K - 1)) @ transposed_conv(reverse(q), 2),
        "any kernel q of length K, stride 2", DUMOULIN + ", §4",
    ))
    w = taps("w", 3)
    out.append(Identity(
        "strided_conv_input_gradient",
        "∂/∂x ⟨g, ↓2 xcorr(w, x)⟩ = w ∗ ↑2 g: the input gradient of a strided conv is the transposed conv",
        (down(2) @ xcorr(w)).T, transposed_conv(w, 2),
        "frameworks' conv is cross-correlation; stride 2, no padding", DUMOULIN + ", §4.1",
    ))
    return out


def _hold_and_dilation() -> list[Identity]:
    q = taps("q", 3)
    out = [Identity(
        "hold_then_conv_is_transposed_conv",
        "q ∗ hold₂ x = ((1 1) ∗ q) ∗ ↑2 x: repeat-upsampling then a 3-tap conv is a 4-tap transposed conv",
        conv(q) @ hold(2), transposed_conv(convolve((1, 1), q), 2),
        "hold factor 2, kernel of length 3 (any length works)", STACKEX + "; " + ODENA,
    )]
    for d in (2, 3):
        upsampled = up(d).matrix(len(q)) * sp.Matrix(q)  # ↑d applied to q as a signal
        kernel = tuple(upsampled)[: (len(q) - 1) * d + 1]
        out.append(Identity(
            f"dilated_conv_is_conv_with_upsampled_kernel[d={d}]", f"(↑{d} q) ∗ x: a dilated conv is a conv with ↑{d} q",
            dilated_conv(q, d), conv(kernel), "dilation d ≥ 1", DUMOULIN + ", §5.1",
        ))
    d = 2
    out.append(Identity(
        "dilated_conv_is_interleaved_convs",
        "(↑2 q) ∗ x = Σ_p z^{-p} ↑2 (q ∗ ↓2 z^{p} x): à trous — q applied to each of the 2 interleaved streams",
        dilated_conv(q, d), sum(shift(p) @ up(d) @ conv(q) @ down(d) @ shift(-p) for p in range(d)),
        "dilation 2", "M. Holschneider et al., A real-time algorithm for signal analysis with the help of the wavelet transform, 1989",
    ))
    return out


def _noble() -> list[Identity]:
    h = taps("h", 3)
    return [
        Identity(
            "noble_decimation", "H(z) after ↓3 = ↓3 after H(z³)", conv(h) @ down(3), down(3) @ conv(dilate(h, 3)),
            "any FIR H, factor 3", VAIDYANATHAN + ", §4.2.3 (noble identities)",
        ),
        Identity(
            "noble_interpolation", "↑3 after H(z) = H(z³) after ↑3", up(3) @ conv(h), conv(dilate(h, 3)) @ up(3),
            "any FIR H, factor 3", VAIDYANATHAN + ", §4.2.3 (noble identities)",
        ),
    ]


def _commutation() -> list[Identity]:
    out = []
    for L, M in ((2, 3), (3, 2), (3, 4)):
        out.append(Identity(
            f"up_down_commute[L={L},M={M}]", f"↑{L} ↓{M} = ↓{M} ↑{L}", up(L) @ down(M), down(M) @ up(L),
            "gcd(L, M) = 1", VAIDYANATHAN + ", §4.2.2",
        ))
    for L, M in ((2, 2), (2, 4)):
        out.append(Identity(
            f"up_down_commute[L={L},M={M}]", f"↑{L} ↓{M} ≠ ↓{M} ↑{L}", up(L) @ down(M), down(M) @ up(L),
            f"gcd(L, M) = {math.gcd(L, M)} ≠ 1: the identity needs coprime factors", VAIDYANATHAN + ", §4.2.2",
            holds=False,
        ))
    out.append(Identity(
        "down_up_is_identity", "↓2 ↑2 = I (but ↑2 ↓2 ≠ I)", down(2) @ up(2), identity(), "factor 2", VAIDYANATHAN + ", §4.1",
    ))
    out.append(Identity(
        "up_down_is_not_identity", "↑2 ↓2 ≠ I: it zeroes the odd samples (period 2)", up(2) @ down(2), identity(),
        "factor 2", VAIDYANATHAN + ", §4.1", holds=False,
    ))
    return out


def _polyphase() -> list[Identity]:
    h = taps("h", 5)
    M = 2
    poly = [h[p::M] for p in range(M)]
    q = taps("q", 4)
    s = 2
    phase_taps = [q[p::s] for p in range(s)]
    width = max(len(t) for t in phase_taps)
    stacked = [[list(t) + [0] * (width - len(t))] for t in phase_taps]  # (s out channels, 1 in, width)
    return [
        Identity(
            "polyphase_decomposition", "H(z) = Σ_p z^{−p} E_p(z²) with E_p the taps h[p::2]",
            conv(h), sum(shift(p) @ conv(dilate(poly[p], M)) for p in range(M)),
            "any FIR H, 2 phases", VAIDYANATHAN + ", §4.3",
        ),
        Identity(
            "polyphase_decimator", "↓2 H(z) = Σ_p E_p(z) ↓2 z^{−p}: filter at the low rate",
            down(M) @ conv(h), sum(conv(poly[p]) @ down(M) @ shift(p) for p in range(M)),
            "any FIR H, factor 2", VAIDYANATHAN + ", §4.3.2",
        ),
        Identity(
            "transposed_conv_is_interleaved_convs",
            "q ∗ ↑2 x = Σ_p z^{−p} ↑2 (q[p::2] ∗ x): per-phase ordinary convs, interleaved (sub-pixel form)",
            transposed_conv(q, s), sum(shift(p) @ up(s) @ conv(phase_taps[p]) for p in range(s)),
            "stride 2, kernel 4", SHI + "; " + VAIDYANATHAN + ", §4.3",
        ),
        Identity(
            "transposed_conv_is_pixel_shuffle",
            "q ∗ ↑2 x = PixelShuffle₂(conv with the 2 phase kernels as 2 output channels)",
            transposed_conv(q, s), pixel_shuffle(s) @ channel_conv(stacked),
            "stride 2, kernel 4", SHI,
        ),
    ]


def _bilinear() -> list[Identity]:
    kernel = bilinear_kernel(4)
    return [Identity(
        "fcn_bilinear_is_linear_interpolation",
        "(¼ ¾ ¾ ¼) ∗ ↑2, cropped by one sample = half-pixel linear interpolation by 2",
        shift(-1) @ transposed_conv(kernel, 2), linear_interp(2),
        "FCN's kernel of size 4, stride 2, padding 1 (PyTorch ConvTranspose1d(k=4, s=2, p=1))", FCN,
    )]


IDENTITIES = Catalogue([_transposes, _hold_and_dilation, _noble, _commutation, _polyphase, _bilinear])
