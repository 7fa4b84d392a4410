"""Checkerboard analysis of transposed convolutions (and any upsampling chain), from the normal form.

A stride-``s`` transposed convolution splits its output into ``s`` phases; phase ``p`` reads the taps
``q[p], q[p+s], …`` (Vaidyanathan 1993).  Two different facts decide whether a constant input gives
a periodic output pattern — the checkerboard artifact (Odena, Dumoulin & Olah, *Deconvolution and
Checkerboard Artifacts*, Distill 2016) — and the report keeps them apart:

* **structural overlap** (kernel size, stride, dilation only — never the weight values): how many
  kernel taps reach each output phase.  The overlap is *even* when every phase gets the same count
  (kernel size a multiple of the stride, e.g. k = 4 at s = 2) and *uneven* otherwise (k = 3 at s = 2).
* **weight condition**: a constant input gives a constant output away from the borders iff every phase
  has the same *gain* (the sum of its taps).  The report states it as SymPy equations in the weight
  symbols (``w0 + w2 = w1 + w3`` for k = 4, s = 2) and says whether given numeric weights satisfy them.

Even overlap is what makes the condition satisfiable by "nice" kernels (all-ones, bilinear); it does not
make arbitrary weights checkerboard-free, and uneven overlap does not forbid equal gains (k = 3 with
``q0 + q2 = q1``).  The structure is read off a *generic* copy of the operator: the weights of every
convolution whose weights are not already distinct symbols are replaced by fresh symbols (``w0, w1, …``,
or ``v…``, ``u…`` for further convolutions), and the given values are kept in :attr:`CheckerboardReport.weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ..algebra._validate import as_coeff, as_positive_tuple
from ..algebra.arrays import as_tap_array
from ..algebra.constructions import transposed_conv
from ..algebra.operators import Compose, Conv, Operator, Scale, Sum, as_operator, conv, up
from ..errors import SymdeconvError, context
from .normalform import NormalForm, canonical, phase_text

__all__ = ["CheckerboardReport", "checkerboard"]

_PREFIXES = ("w", "v", "u", "h", "g", "f")


def _nest(values: dict[tuple[int, ...], Any], P: tuple[int, ...]) -> tuple:
    """Per-phase values as a flat tuple (1-D) or nested tuples of shape ``P`` (N-D)."""
    if len(P) == 1:
        return tuple(values[(p,)] for p in range(P[0]))

    def build(prefix: tuple[int, ...]) -> tuple:
        if len(prefix) == len(P) - 1:
            return tuple(values[prefix + (p,)] for p in range(P[-1]))
        return tuple(build(prefix + (i,)) for i in range(P[len(prefix)]))

    return build(())


def _flat(nested: Any, ndim: int) -> list:
    return list(nested) if ndim == 1 else [v for row in nested for v in _flat(row, ndim - 1)]


@dataclass(frozen=True)
class CheckerboardReport:
    """The structural overlap and the weight condition of one single-channel operator.

    Structural (kernel size and stride only):
      ``taps_per_phase`` — how many kernel taps reach each output phase (a tuple in 1-D, nested tuples of
      the period's shape in N-D); ``even_overlap``; ``overlap`` — for input length ``n``, how many inputs
      reach each output (from output ``output_start``; nested tuples in N-D).
    Weights:
      ``gains`` — each phase's response to a constant input (sum of its taps) for the analysed weights;
      ``conditions`` — equations in the weight symbols, all true iff the gains are equal (empty when they
      are equal for every weight); ``weights`` — ``{symbol: given value}`` for weights that were given as
      values (numbers or expressions) rather than as distinct symbols; ``satisfied`` — ``True`` / ``False``
      whether the analysed weights meet the conditions, ``None`` while that depends on free symbols;
      ``constant_preserving`` (``satisfied is True``) and ``has_checkerboard`` (its negation);
      ``response`` — the exact output for a constant input of ones on the window of ``overlap``.
    """

    form: NormalForm                    # normal form of the analysed operator (with the given weights)
    n: int | tuple[int, ...]
    gains: tuple                        # Σ taps of each output phase, given weights substituted
    taps_per_phase: tuple               # structural: how many kernel taps reach each output phase
    overlap: tuple                      # structural: for input length n, how many inputs reach each output
    output_start: int | tuple[int, ...]  # output time (position in N-D) of overlap[0]
    structure: NormalForm | None = None  # normal form of the generic operator (weights as symbols)
    conditions: tuple = ()              # equations in the weight symbols: constant-preserving iff all hold
    weights: dict = field(default_factory=dict, hash=False)  # {weight symbol: given value}
    response: tuple = ()                # exact response to a constant input of ones, window of ``overlap``

    # --- structural ---------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return self.form.ndim

    @property
    def even_overlap(self) -> bool:
        """Structural: every output phase is reached by the same number of kernel taps."""
        return len(set(_flat(self.taps_per_phase, self.ndim))) == 1

    @property
    def structural_verdict(self) -> str:
        """``"even overlap"`` or ``"uneven overlap"`` (kernel size and stride only)."""
        return "even overlap" if self.even_overlap else "uneven overlap"

    # --- weights ------------------------------------------------------------------------------------
    @property
    def satisfied(self) -> bool | None:
        """Do the analysed weights meet :attr:`conditions`?  ``None`` while the answer depends on symbols."""
        diffs = [sp.expand((c.lhs - c.rhs).xreplace(self.weights)) for c in self.conditions]
        if all(d == 0 for d in diffs):
            return True
        if any(d.is_number and d != 0 for d in diffs):
            return False
        return None

    @property
    def constant_preserving(self) -> bool:
        """A constant input gives a constant output away from the borders (all phase gains equal).

        For symbolic weights: equal for *every* value of the symbols.
        """
        return self.satisfied is True

    @property
    def has_checkerboard(self) -> bool:
        """The analysed weights (generic values, for symbols) turn a constant input into a periodic pattern."""
        return not self.constant_preserving

    def condition_text(self) -> str:
        return " and ".join(f"{c.lhs} = {c.rhs}" for c in self.conditions)

    @property
    def weight_verdict(self) -> str:
        """``"constant-preserving for all weights"``, ``"constant-preserving iff …"`` (and, for given values,
        whether they satisfy it), or ``"never constant-preserving …"`` when the gains are fixed unequal numbers."""
        if not self.conditions:
            fixed = not any(c.free_symbols for row in self._struct.taps.values() for c in row.values())
            return "constant-preserving (fixed, equal gains)" if fixed else "constant-preserving for all weights"
        if not any(c.free_symbols for c in self.conditions):
            return f"never constant-preserving (fixed gains: {self.condition_text().replace(' = ', ' ≠ ')})"
        text = f"constant-preserving iff {self.condition_text()}"
        if self.weights:
            state = self.satisfied
            text += {True: "; the given weights satisfy it",
                     False: "; the given weights do not (checkerboard)",
                     None: "; for the given weights that depends on their symbols"}[state]
        return text

    @property
    def verdict(self) -> str:
        """Both facts on one line: ``structural: … overlap; weights: …``."""
        return f"structural: {self.structural_verdict}; weights: {self.weight_verdict}"

    # --- display ------------------------------------------------------------------------------------
    @property
    def _struct(self) -> NormalForm:
        return self.structure or self.form

    @property
    def symbolic_gains(self) -> tuple:
        """Each phase's gain in the weight symbols (before the given values are substituted)."""
        rows = {p: self._struct.taps.get((p, 0), {}) for p in self._struct.phases()}
        return _nest({p: sp.expand(sum(r.values(), sp.Integer(0))) for p, r in rows.items()}, self._struct.P)

    def _phase_list(self, nested: tuple) -> str:
        values = _flat(nested, self.ndim)
        if self.ndim == 1:
            return ", ".join(map(str, values))
        return ", ".join(f"{phase_text(p)}: {v}" for p, v in zip(self._struct.phases(), values))

    def __str__(self) -> str:
        counts = self._phase_list(self.taps_per_phase)
        counts = counts.replace(",", "") if self.ndim == 1 else counts
        lines = [
            self._struct.header(),
            f"  structural (kernel size and stride, not the weight values): taps per output phase {counts} "
            f"-> {self.structural_verdict}",
        ]
        where = f"t={self.output_start}" if self.ndim == 1 else f"position {self.output_start}"
        head = f"  structural: overlap counts for n={self.n} (outputs from {where}):"
        if self.ndim == 1:
            lines.append(f"{head} {' '.join(map(str, self.overlap))}")
        else:
            lines.append(head)
            rows = np.asarray(self.overlap, dtype=int)
            lines.extend("    " + " ".join(map(str, row)) for row in rows.reshape(rows.shape[0], -1))
        lines.append(f"  weights: phase gains (sum of each phase's taps): {self._phase_list(self.symbolic_gains)}")
        if not self.conditions:
            lines.append(f"  weights: a constant input gives a constant output ({self.weight_verdict})")
        elif not any(c.free_symbols for c in self.conditions):
            lines.append("  weights: the gains are fixed and unequal: a constant input always gives a periodic "
                         "(checkerboard) pattern")
        else:
            lines.append(f"  weights: a constant input gives a constant output iff {self.condition_text()}; "
                         "otherwise a periodic (checkerboard) pattern")
            if self.weights:
                given = ", ".join(f"{s} = {v}" for s, v in self.weights.items())
                if len(self.weights) > 8:
                    given = f"{len(self.weights)} values"
                outcome = {True: "satisfied: a constant output",
                           False: "not satisfied: a periodic (checkerboard) pattern",
                           None: "satisfied iff the remaining symbols make it so"}[self.satisfied]
                lines.append(f"  weights: given {given}; gains {self._phase_list(self.gains)} -> {outcome}")
        lines.append(f"  verdict: {self.verdict}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"CheckerboardReport(structural={self.structural_verdict!r}, taps_per_phase={self.taps_per_phase}, "
                f"weights={self.weight_verdict!r}, gains={self.gains})")

    def plot(self, ax: Any = None) -> Any:
        """Draw the overlap counts (and, for numeric weights, the response to a constant input).

        This layer does not import the plotting module: :mod:`symdeconv.plot` (above it, imported by
        ``import symdeconv``) replaces this method with :func:`symdeconv.plot.plot_checkerboard`.
        """
        raise SymdeconvError("CheckerboardReport.plot: import symdeconv.plot (it needs matplotlib)")


# ==================================================================================================


def _generic(op: Operator, taken: set[str], given: dict[sp.Symbol, sp.Expr]) -> Operator:
    """``op`` with the weights of each convolution that are not distinct symbols replaced by fresh ones."""
    if isinstance(op, Conv):
        values = list(op.weights.values())
        if all(isinstance(v, sp.Symbol) for v in values) and len(set(values)) == len(values):
            return op
        prefix = next((p for p in _PREFIXES if p not in taken), f"w{len(taken)}_")
        taken.add(prefix)
        single = op.c_in == 1 and op.c_out == 1
        new = {}
        for (co, ci, j), value in sorted(op.weights.items()):
            symbol = sp.Symbol(prefix + "_".join(map(str, j if single else (co, ci) + j)))  # as sd.taps names
            new[(co, ci, j)] = symbol
            given[symbol] = value
        return Conv(op.shape, new, op.origin)
    if isinstance(op, Compose):
        return Compose(_generic(op.outer, taken, given), _generic(op.inner, taken, given))
    if isinstance(op, Sum):
        return Sum([_generic(t, taken, given) for t in op.terms])
    if isinstance(op, Scale):
        return Scale(op.c, _generic(op.op, taken, given))
    return op


def _operands(obj: Any, stride: Any, weight: Any) -> tuple[Operator, Operator, dict]:
    """(analysed operator, generic operator, {generic symbol: given value})."""
    if stride is not None:
        if weight is not None:
            raise SymdeconvError("weight= goes with a layer; with taps and stride the taps are the weights")
        shape, _ = as_tap_array(obj, "taps")
        if len(shape) == 1:
            op: Operator = transposed_conv(obj, stride)
        else:
            op = conv(obj) @ up(as_positive_tuple(stride, "stride", len(shape)))
    else:
        op = as_operator(obj, "op")
    is_layer = not isinstance(obj, Operator) and stride is None
    if is_layer:  # a layer: its operator has one distinct symbol per weight entry
        if weight is None:
            return op, op, {}
        symbols = obj.weight_symbols()
        values = np.asarray(weight, dtype=object)
        if values.shape != symbols.shape:
            raise SymdeconvError(f"weight must have the layer's weight_shape {symbols.shape}, got {values.shape}")
        given = {s: as_coeff(v.item() if hasattr(v, "item") and not isinstance(v, sp.Basic) else v,
                             f"weight{list(i)}")
                 for i, s, v in ((i, symbols[i], values[i]) for i in np.ndindex(*symbols.shape))}
        return obj.operator_with(weight), op, given
    if weight is not None:
        raise SymdeconvError("weight= is for a layer (sd.Conv / sd.ConvTranspose); an operator carries its weights")
    taken = {str(s)[0] for s in op.free_symbols()} | {str(s) for s in op.free_symbols()}
    given: dict[sp.Symbol, sp.Expr] = {}
    return op, _generic(op, taken, given), given


def _lengths(n: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(n, bool):
        raise SymdeconvError(f"n must be a positive integer input length, got {n!r}")
    try:
        return as_positive_tuple(n, "n", ndim)
    except SymdeconvError as err:
        raise SymdeconvError(f"n must be a positive integer input length (or one per dimension): {err}") from None


def checkerboard(op_or_taps: Any, stride: Any = None, n: Any = 4, *, weight: Any = None) -> CheckerboardReport:
    """Separate the structural overlap from the weight condition of a single-channel operator.

    ``op_or_taps`` is an operator (1-D or N-D, one channel), a layer (``sd.ConvTranspose(4, stride=2)``;
    with ``weight=`` an array of its :attr:`weight_shape` to check given values), or a tap array with
    ``stride`` (the transposed conv ``taps ∗ (↑stride x)``).  ``n`` is the input length (per dimension)
    of the overlap counts.

    >>> import symdeconv as sd
    >>> r = sd.checkerboard((1, 1, 1), stride=2, n=4)
    >>> r.overlap
    (1, 1, 2, 1, 2, 1, 2, 1, 1)
    >>> r.verdict
    'structural: uneven overlap; weights: constant-preserving iff w0 + w2 = w1; the given weights do not (checkerboard)'
    >>> sd.checkerboard(sd.ConvTranspose(4, stride=2)).verdict
    'structural: even overlap; weights: constant-preserving iff w_0_0_0 + w_0_0_2 = w_0_0_1 + w_0_0_3'
    """
    with context("sd.checkerboard"):
        given_op, generic_op, weights = _operands(op_or_taps, stride, weight)
        if given_op.c_in != 1 or given_op.c_out != 1:
            raise SymdeconvError("op must be single-channel (analyse each channel separately)")
        ndim = given_op.ndim
        lengths = _lengths(n, ndim)
        form, generic = canonical(given_op), canonical(generic_op)
        phases = generic.phases()
        rows = {p: generic.taps.get((p, 0), {}) for p in phases}
        gains0 = {p: sp.expand(sum(row.values(), sp.Integer(0))) for p, row in rows.items()}
        gains = {p: sp.expand(g.xreplace(weights)) for p, g in gains0.items()}
        first = gains0[phases[0]]
        conditions = tuple(sp.Eq(first, gains0[p], evaluate=False) for p in phases[1:]
                           if sp.expand(gains0[p] - first) != 0)
        counts = {p: len(row) for p, row in rows.items()}

        box = generic_op.out_box(tuple((0, k) for k in lengths))
        sizes = tuple(hi - lo for lo, hi in box)
        overlap = np.zeros(sizes, dtype=int)
        response = np.full(sizes, sp.Integer(0), dtype=object)
        for idx in np.ndindex(*sizes):
            t = tuple(i + lo for i, (lo, _) in zip(idx, box))
            j = tuple(v // P for v, P in zip(t, generic.P))
            p = tuple(v % P for v, P in zip(t, generic.P))
            for (_, off), coeff in rows[p].items():
                if all(0 <= Q * jj + o < k for Q, jj, o, k in zip(generic.Q, j, off, lengths)):
                    overlap[idx] += 1
                    response[idx] += coeff.xreplace(weights)
        nonzero = np.nonzero(overlap)
        if nonzero[0].size:
            crop = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in nonzero)
        else:
            crop = tuple(slice(0, s) for s in sizes)
        start = tuple(lo + c.start for (lo, _), c in zip(box, crop))
        overlap, response = overlap[crop], response[crop]

        def tuples(arr: np.ndarray) -> tuple:
            return tuple(tuples(a) for a in arr) if arr.ndim > 1 else tuple(arr.tolist())

        response_t = tuples(np.vectorize(sp.expand, otypes=[object])(response))
        return CheckerboardReport(
            form, lengths[0] if ndim == 1 else lengths, _nest(gains, generic.P), _nest(counts, generic.P),
            tuples(overlap), start[0] if ndim == 1 else start, generic, conditions, weights, response_t,
        )
