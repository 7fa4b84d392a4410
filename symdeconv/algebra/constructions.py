"""Named constructions, each *defined* as a composition of the primitives (DSP notation).

=========================  ======================================  ===============================
construction               definition                              deep-learning name
=========================  ======================================  ===============================
``strided_conv(q, s)``     ``↓s (q ∗ x)``                          strided convolution
``dilated_conv(q, d)``     ``(↑d q) ∗ x``                          dilated / atrous convolution
``transposed_conv(q, s)``  ``q ∗ (↑s x)``                          transposed conv, "deconvolution"
``xcorr(w)``               ``y[n] = Σ_j w[j] x[n + j]``            what frameworks call "conv"
``upfirdn(h, L, M)``       ``↓M (h ∗ (↑L x))``                     scipy.signal.upfirdn
``linear_interp(k)``       half-pixel linear interpolation by k    bilinear upsampling, 1-D
=========================  ======================================  ===============================
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import sympy as sp

from ..errors import context
from ._validate import as_positive_int
from .arrays import as_taps, dilate
from .operators import Operator, Periodic, conv, down, up

__all__ = ["strided_conv", "dilated_conv", "transposed_conv", "xcorr", "upfirdn", "linear_interp"]


def strided_conv(q: Any, s: int) -> Operator:
    """Strided convolution ``↓s (q ∗ x)``."""
    with context("sd.strided_conv"):
        return down(as_positive_int(s, "s")) @ conv(as_taps(q, "q"))


def dilated_conv(q: Any, d: int) -> Operator:
    """Dilated (atrous) convolution ``(↑d q) ∗ x``: the taps spread ``d`` apart."""
    with context("sd.dilated_conv"):
        return conv(dilate(as_taps(q, "q"), as_positive_int(d, "d")))


def transposed_conv(q: Any, s: int) -> Operator:
    """Transposed convolution ``q ∗ (↑s x)`` — the adjoint of ``↓s (q∗)`` (see :mod:`symdeconv.identities`)."""
    with context("sd.transposed_conv"):
        return conv(as_taps(q, "q")) @ up(as_positive_int(s, "s"))


def xcorr(w: Any) -> Operator:
    """Cross-correlation ``y[n] = Σ_j w[j] · x[n + j]``: convolution with the flipped kernel, origin ``K − 1``."""
    with context("sd.xcorr"):
        taps = as_taps(w, "w")
        return conv(tuple(reversed(taps)), origin=len(taps) - 1)


def upfirdn(h: Any, up_factor: int = 1, down_factor: int = 1) -> Operator:
    """``↓M (h ∗ (↑L x))``, the rational resampler of ``scipy.signal.upfirdn(h, x, up, down)``, as an operator.

    This is the symbolic operator (taps may be SymPy symbols; normal forms, identities, exact matrices).
    Its natural output window for ``n`` input samples is ``[0, ⌈(n L + K − 1) / M⌉)``: the window of
    ``↑L`` ends with the ``L − 1`` zeros inserted after the last sample.  scipy returns the first
    ``((n − 1) L + K − 1) // M + 1`` of those samples; the rest (at most ``⌈(L − 1) / M⌉``) are zero.
    To compute numbers with SciPy's signature and output length, use :func:`symdeconv.signal.upfirdn`
    (``sd.signal.upfirdn(h, x, up, down)``), which runs this operator's generated kernel.
    """
    with context("sd.upfirdn"):
        L = as_positive_int(up_factor, "up")
        M = as_positive_int(down_factor, "down")
        return down(M) @ conv(as_taps(h, "h")) @ up(L)


def linear_interp(k: int = 2) -> Operator:
    """Linear interpolation by ``k`` at half-pixel centres (``align_corners=False``), away from borders.

    Output sample ``n`` sits at input coordinate ``u = (n + ½)/k − ½`` and is
    ``(1 − f)·x[⌊u⌋] + f·x[⌊u⌋ + 1]`` with ``f = u − ⌊u⌋``: defined sample by sample from that formula,
    not from a filter, so that identities with the FCN bilinear kernel are real checks.
    """
    with context("sd.linear_interp"):
        k = as_positive_int(k, "k")
        taps: dict = {}
        for p in range(k):
            u = Fraction(2 * p + 1, 2 * k) - Fraction(1, 2)
            base = u.numerator // u.denominator
            frac = u - base
            row = {}
            if frac != 1:
                row[(0, (base,))] = sp.Rational(1 - frac)
            if frac != 0:
                row[(0, (base + 1,))] = sp.Rational(frac)
            taps[((p,), 0)] = row
        return Periodic((k,), (1,), taps, name=f"linear_interp({k})")
