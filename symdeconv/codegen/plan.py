"""Kernel plans: the polyphase normal form turned into plain data that an emitter can print.

A normal form (:mod:`symdeconv.canonical.normalform`) says, for every output phase ``p`` and output
channel ``c'``,

    y[c', P j + p] = Σ_{(c, off)} a[p, c'][c, off] · x[c, Q j + off]        (j ∈ ℤ^D),

and lists only the non-zero coefficients: exactly the multiplications a gather kernel must do, none by
an inserted zero.  A *plan* is that statement made concrete for code generation:

* **chain plans** (operator chains, small channel counts): every tap is spelled out.  A numeric
  coefficient becomes a float literal in the source; a symbolic one (a polynomial in the tap symbols,
  e.g. ``q0 + q1`` after ``conv(q) @ hold(2)``) becomes an entry ``c[k]`` of a runtime coefficient
  vector, computed from the symbol values by a generated ``coefficients(w)`` function.
* **grouped plans** (deep-learning layers): every output/input channel pair of a group shares one
  spatial tap pattern.  The plan keeps only that pattern — per phase, a list of *slots* ``(s, offset)``
  — and the kernel reads the weight of slot ``s`` for channels ``(c', c)`` from a runtime array
  ``w[s, c − g·C_in/G, c']`` (output channels innermost).  Channel counts, groups and signal sizes are
  runtime arguments, so every layer with the same stride / kernel size / dilation shares one compiled
  kernel.

A plan is hashable plain data (:meth:`KernelPlan.to_dict`); its hash names the cache file of the
emitted source (:mod:`symdeconv.codegen.cache`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..algebra.operators import as_operator
from ..canonical.normalform import NormalForm, canonical
from ..errors import SymdeconvError

__all__ = [
    "EMITTER_VERSION", "ChainTap", "PhasePlan", "KernelPlan", "Monomial", "plan_chain", "plan_grouped",
    "float_literal", "natural_key", "MAX_TAPS",
]

#: Bumped whenever the emitted source changes for the same plan (it is part of every cache key).
EMITTER_VERSION = "44"

#: Above this many explicit taps a chain kernel's source would be unreadably long (and slow to compile).
MAX_TAPS = 4096

Index = tuple[int, ...]


def natural_key(name: str) -> tuple:
    """Sort ``q2`` before ``q10``: digits compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def float_literal(value: Any) -> str:
    """A real numeric SymPy / Python value as the shortest float literal that round-trips (``repr``)."""
    try:
        c = complex(sp.N(value, 30)) if isinstance(value, sp.Basic) else complex(value)
    except (TypeError, ValueError) as err:
        raise SymdeconvError(f"coefficient {value} is not a number") from err
    if c.imag != 0:
        raise SymdeconvError(f"coefficient {value} is complex; generated kernels are real-valued")
    if not math.isfinite(c.real):
        raise SymdeconvError(f"coefficient {value} is not finite")
    return repr(float(c.real))


@dataclass(frozen=True)
class ChainTap:
    """One multiplication of a chain kernel: ``coefficient · x[c_in, Q j + offset]``.

    ``literal`` is the float literal of a numeric coefficient (baked into the source), or ``""`` when
    the coefficient is symbolic and read from the runtime vector as ``c[coeff]``.
    """

    c_in: int
    offset: Index
    literal: str
    coeff: int = -1


@dataclass(frozen=True)
class PhasePlan:
    """The work of one output phase ``p``.

    Chain plans fill ``rows`` — ``(c_out, taps)`` for every output channel, in order (an empty tuple of
    taps means that phase of that channel is identically zero).  Grouped plans fill ``slots`` —
    ``(slot, offset)``, the shared spatial taps; the weight of a slot is a runtime array entry.
    """

    phase: Index
    rows: tuple[tuple[int, tuple[ChainTap, ...]], ...] = ()
    slots: tuple[tuple[int, Index], ...] = ()

    def offsets(self) -> list[Index]:
        if self.slots:
            return [off for _, off in self.slots]
        return [t.offset for _, taps in self.rows for t in taps]


#: one term of a coefficient polynomial: (float literal of the constant, ((symbol index, power), ...))
Monomial = tuple[str, tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class KernelPlan:
    """Everything an emitter needs, as plain immutable data.

    Attributes
    ----------
    kind : ``"chain"`` (explicit taps, fixed channels) or ``"grouped"`` (layer: shared slot pattern,
        runtime channels / groups).
    name : a Python-identifier-like name used in headers and file names.
    ndim, P, Q : spatial dimensions; output and input periods per dimension.
    c_in, c_out : channel counts of a chain plan (``0`` for grouped plans: runtime).
    phases : one :class:`PhasePlan` per output phase, in C order of the phase tuples.
    symbols : names of the runtime tap symbols (chain plans), in the order of the weight vector ``w``.
    coefficients : for chain plans, the symbolic coefficients ``c[k]`` as polynomials in ``w``.
    n_slots : number of weight slots of a grouped plan.
    description : the normal form the plan was made from, as text lines (for the file header).
    """

    kind: str
    name: str
    ndim: int
    P: Index
    Q: Index
    c_in: int
    c_out: int
    phases: tuple[PhasePlan, ...]
    symbols: tuple[str, ...] = ()
    coefficients: tuple[tuple[Monomial, ...], ...] = ()
    n_slots: int = 0
    description: tuple[str, ...] = field(default=(), compare=True)

    # --- data ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "name": self.name, "ndim": self.ndim, "P": list(self.P), "Q": list(self.Q),
            "c_in": self.c_in, "c_out": self.c_out,
            "phases": [
                {
                    "phase": list(ph.phase),
                    "rows": [[co, [[t.c_in, list(t.offset), t.literal, t.coeff] for t in taps]] for co, taps in ph.rows],
                    "slots": [[s, list(off)] for s, off in ph.slots],
                }
                for ph in self.phases
            ],
            "symbols": list(self.symbols),
            "coefficients": [[[lit, [list(f) for f in factors]] for lit, factors in poly] for poly in self.coefficients],
            "n_slots": self.n_slots,
            "description": list(self.description),
        }

    def key(self, target: str) -> str:
        """Hash of (plan, target, emitter version): the identity of the emitted source file."""
        blob = json.dumps([EMITTER_VERSION, target, self.to_dict()], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def structure_key(self, target: str) -> str:
        """Hash of (plan without its name and description, target, emitter version): what a module emitted
        from this plan computes.  Written into every emitted module's header; ``sd.compile(..., path=)``
        checks it, so a file emitted from another plan is refused rather than run."""
        d = self.to_dict()
        del d["name"], d["description"]
        blob = json.dumps([EMITTER_VERSION, target, d], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def n_taps(self) -> int:
        """Multiplications per output block of one channel pair (grouped) or in total (chain)."""
        if self.kind == "grouped":
            return sum(len(ph.slots) for ph in self.phases)
        return sum(len(taps) for ph in self.phases for _, taps in ph.rows)

    @property
    def has_symbols(self) -> bool:
        return bool(self.symbols)


# ==================================================================================================
# Chain plans
# ==================================================================================================


def _form_and_name(obj: Any) -> tuple[NormalForm, str]:
    if isinstance(obj, NormalForm):
        return obj, "normal_form"
    op = as_operator(obj, "obj")
    return canonical(op), "chain"


def _symbol_order(nf: NormalForm) -> list[sp.Symbol]:
    found: set[sp.Symbol] = set()
    for row in nf.taps.values():
        for coeff in row.values():
            found |= coeff.free_symbols
    return sorted(found, key=lambda s: natural_key(s.name))


def _polynomial(coeff: sp.Expr, symbols: list[sp.Symbol], index: dict[sp.Symbol, int]) -> tuple[Monomial, ...]:
    used = sorted(coeff.free_symbols, key=lambda s: natural_key(s.name))
    try:
        poly = sp.Poly(sp.expand(coeff), *used)
    except sp.PolynomialError as err:
        raise SymdeconvError(
            f"coefficient {coeff} is not a polynomial in the tap symbols; generated kernels evaluate "
            "tap coefficients as polynomials of the runtime weights"
        ) from err
    terms = []
    for powers, c in sorted(poly.terms(), key=lambda t: tuple(-p for p in t[0])):
        if c.free_symbols:  # pragma: no cover - Poly over the used symbols leaves numeric coefficients
            raise SymdeconvError(f"coefficient {coeff} has a non-numeric factor {c}")
        factors = tuple((index[s], int(p)) for s, p in zip(used, powers) if p)
        terms.append((float_literal(c), factors))
    return tuple(terms)


def plan_chain(obj: Any, name: str | None = None) -> KernelPlan:
    """The explicit-tap plan of an operator chain (or of a :class:`NormalForm`).

    >>> import symdeconv as sd
    >>> plan = plan_chain(sd.conv(sd.taps("q", 3)) @ sd.hold(2))
    >>> plan.P, plan.Q, plan.symbols
    ((2,), (1,), ('q0', 'q1', 'q2'))
    """
    nf, default_name = _form_and_name(obj)
    if nf.n_taps() > MAX_TAPS:
        raise SymdeconvError(
            f"obj: the normal form has {nf.n_taps()} taps, more than the {MAX_TAPS} a chain kernel spells out; "
            "compile a layer (sd.Conv / sd.ConvTranspose) so channels become runtime loops"
        )
    symbols = _symbol_order(nf)
    index = {s: i for i, s in enumerate(symbols)}
    coeff_ids: dict[tuple[Monomial, ...], int] = {}
    phases = []
    for p in nf.phases():
        rows = []
        for co in range(nf.c_out):
            taps = []
            row = nf.taps.get((p, co), {})
            for (ci, off), coeff in sorted(row.items()):
                if coeff.free_symbols:
                    poly = _polynomial(coeff, symbols, index)
                    k = coeff_ids.setdefault(poly, len(coeff_ids))
                    taps.append(ChainTap(ci, off, "", k))
                else:
                    taps.append(ChainTap(ci, off, float_literal(coeff)))
            rows.append((co, tuple(taps)))
        phases.append(PhasePlan(p, tuple(rows)))
    coefficients = tuple(sorted(coeff_ids, key=coeff_ids.get))
    return KernelPlan(
        kind="chain", name=_identifier(name or default_name), ndim=nf.ndim, P=nf.P, Q=nf.Q,
        c_in=nf.c_in, c_out=nf.c_out, phases=tuple(phases), symbols=tuple(s.name for s in symbols),
        coefficients=coefficients, description=tuple(str(nf).splitlines()),
    )


# ==================================================================================================
# Grouped (layer) plans
# ==================================================================================================


def plan_grouped(
    ndim: int, P: Index, Q: Index, slots_by_phase: dict[Index, list[Index]], name: str, description: list[str]
) -> KernelPlan:
    """The plan of a grouped multi-channel kernel from its spatial tap pattern.

    ``slots_by_phase`` maps each phase to its tap offsets; slots are numbered phase by phase (phases in
    C order, offsets sorted), and that numbering is the first axis of the runtime weight array.
    """
    phases, s = [], 0
    for p in _phase_tuples(P):
        slots = []
        for off in sorted(slots_by_phase.get(p, [])):
            slots.append((s, tuple(off)))
            s += 1
        phases.append(PhasePlan(p, slots=tuple(slots)))
    return KernelPlan(
        kind="grouped", name=_identifier(name), ndim=ndim, P=tuple(P), Q=tuple(Q), c_in=0, c_out=0,
        phases=tuple(phases), n_slots=s, description=tuple(description),
    )


def _phase_tuples(P: Index) -> list[Index]:
    return list(itertools.product(*(range(v) for v in P)))


def _identifier(name: str) -> str:
    out = re.sub(r"\W+", "_", name).strip("_")
    if not out:
        return "kernel"
    return out if not out[0].isdigit() else "k_" + out
