"""Checkerboard analysis of transposed convolutions (and any upsampling chain), from the normal form.

A stride-``s`` transposed convolution splits its output into ``s`` phases; phase ``p`` reads the taps
``q[p], q[p+s], …`` (Vaidyanathan 1993).  When the kernel size is not a multiple of the stride, phases
read different numbers of taps ("uneven overlap"), and a constant input then gives a periodic output
pattern — the checkerboard artifact (Odena, Dumoulin & Olah, *Deconvolution and Checkerboard
Artifacts*, Distill 2016).  A constant input gives a constant output away from the borders iff every
phase has the same gain (sum of its taps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..algebra.constructions import transposed_conv
from ..algebra.operators import Operator, as_operator
from ..errors import SymdeconvError, context
from .normalform import NormalForm, canonical

__all__ = ["CheckerboardReport", "checkerboard"]


@dataclass(frozen=True)
class CheckerboardReport:
    """Per-phase gains and tap counts, and per-output overlap counts for one input length."""

    form: NormalForm
    n: int
    gains: tuple[sp.Expr, ...]          # Σ taps of each output phase (its response to a constant input)
    taps_per_phase: tuple[int, ...]     # how many input samples each phase reads
    overlap: tuple[int, ...]            # for input length n, how many inputs each output reads
    output_start: int                   # output time of overlap[0]

    @property
    def even_overlap(self) -> bool:
        """Every phase reads the same number of input samples."""
        return len(set(self.taps_per_phase)) == 1

    @property
    def constant_preserving(self) -> bool:
        """A constant input gives a constant output away from the borders (all phase gains equal)."""
        return all(sp.expand(g - self.gains[0]) == 0 for g in self.gains)

    @property
    def has_checkerboard(self) -> bool:
        return not self.constant_preserving

    def __str__(self) -> str:
        gains = ", ".join(str(g) for g in self.gains)
        return (
            f"{self.form.header()}\n"
            f"  taps per phase: {' '.join(map(str, self.taps_per_phase))} "
            f"({'even' if self.even_overlap else 'uneven'} overlap)\n"
            f"  phase gains: {gains} -> constant input gives "
            f"{'a constant output' if self.constant_preserving else 'a periodic (checkerboard) pattern'}\n"
            f"  overlap counts for n={self.n} (outputs from t={self.output_start}): {' '.join(map(str, self.overlap))}"
        )


def checkerboard(op_or_taps: Any, stride: int | None = None, n: int = 4) -> CheckerboardReport:
    """Analyse a 1-D single-channel operator, or the transposed conv ``transposed_conv(taps, stride)``.

    >>> import symdeconv as sd
    >>> r = sd.checkerboard((1, 1, 1), stride=2, n=4)
    >>> r.overlap
    (1, 1, 2, 1, 2, 1, 2, 1, 1)
    """
    with context("sd.checkerboard"):
        if stride is not None:
            op: Operator = transposed_conv(op_or_taps, stride)
        else:
            op = as_operator(op_or_taps, "op")
        if op.ndim != 1 or op.c_in != 1 or op.c_out != 1:
            raise SymdeconvError("op must be 1-D and single-channel (analyse each dimension separately)")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SymdeconvError(f"n must be a positive integer input length, got {n!r}")
        form = canonical(op)
        phases = form.phases()
        gains = tuple(sp.expand(sum(form.taps.get((p, 0), {}).values(), sp.Integer(0))) for p in phases)
        counts = tuple(len(form.taps.get((p, 0), {})) for p in phases)
        (start, stop), = op.out_box(((0, n),))
        overlap = []
        for t in range(start, stop):
            j, p = divmod(t, form.P[0])
            reads = form.taps.get(((p,), 0), {})
            overlap.append(sum(1 for (_, (off,)) in reads if 0 <= form.Q[0] * j + off < n))
        first = next((i for i, c in enumerate(overlap) if c), 0)
        last = len(overlap) - next((i for i, c in enumerate(reversed(overlap)) if c), 0)
        return CheckerboardReport(form, n, gains, counts, tuple(overlap[first:last]), start + first)
