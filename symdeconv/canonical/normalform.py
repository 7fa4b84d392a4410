"""The polyphase normal form of an operator chain.

Every operator of :mod:`symdeconv.algebra` is a periodically time-varying FIR operator: there are
periods ``P`` (output) and ``Q`` (input), per spatial dimension, with

    y[c', P j + p] = Σ_{(c, off)} a[p, c'][c, off] · x[c, Q j + off]      for all blocks j ∈ ℤ^D,

one *phase* ``p`` per output residue (Vaidyanathan, *Multirate Systems and Filter Banks*, 1993, ch. 4).
The representation with the **smallest** period per dimension is unique: two operators agree on
every sequence iff their kernels ``h(c', n, c, m)`` agree, iff they have the same rate
``L/M = P/Q`` (in lowest terms), the same minimal period ``t`` (``P = tL``, ``Q = tM``) and the same taps.
Hence :func:`canonical` decides equality for every signal length at a cost that depends only on the
periods and tap counts, never on a signal length.

The form is computed by its own algebra, not from finite matrices:

* a primitive's form is read off its definition for one period;
* ``refine(t)`` re-expresses a form with period ``(tP, tQ)`` (phase ``p + P i`` reads offsets ``+ Q i``);
* composition brings the inner output period and the outer input period to their lcm, then
  substitutes: outer tap ``(k, off)`` with ``off = T i + r`` reads inner phase ``r`` of block ``j + i``;
* sums are refined to a common period and added; scaling multiplies;
* ``reduce`` finds, per dimension, the smallest divisor ``t`` of ``gcd(P, Q)`` under whose shift
  ``(tL, tM)`` the taps are invariant, and drops zero taps.  The zero operator is normalised to rate 1.

It is also the *kernel plan* of :mod:`symdeconv.codegen`: each phase lists exactly the multiplications
that are not by inserted zeros.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any, Iterator

import sympy as sp

from ..algebra.operators import Compose, Operator, Primitive, Scale, Sum, as_operator
from ..errors import SymdeconvError, context

__all__ = ["NormalForm", "canonical", "Taps", "phase_text"]

Index = tuple[int, ...]
TapKey = tuple[int, Index]  # (input channel, input offset)
Taps = dict[tuple[Index, int], dict[TapKey, sp.Expr]]  # (phase, output channel) -> taps


def phase_text(p: Index) -> str:
    """A phase as messages and generated comments print it: ``1`` in 1-D, ``(0, 1)`` from 2-D on."""
    return str(p[0]) if len(p) == 1 else "(" + ", ".join(map(str, p)) + ")"


def _box(dims: tuple[int, ...]) -> Iterator[Index]:
    return itertools.product(*(range(d) for d in dims))


def _clean(taps: Taps) -> Taps:
    out: Taps = {}
    for key, row in taps.items():
        kept = {}
        for tk, coeff in row.items():
            coeff = sp.expand(coeff)
            if coeff != 0:
                kept[tk] = coeff
        if kept:
            out[key] = kept
    return out


class NormalForm:
    """Polyphase normal form: rate ``L/M`` and minimal period per dimension, and each phase's taps.

    Attributes
    ----------
    ndim, c_in, c_out : spatial dimensions and channel counts.
    L, M : per dimension, the rate ``L/M`` in lowest terms (output samples per input sample).
    P, Q : per dimension, the minimal output and input periods (``P = tL``, ``Q = tM``).
    taps : ``{(phase, c_out): {(c_in, offset): coefficient}}`` — phase ``p`` of output channel ``c'``
        at block ``j`` reads ``x[c, Q j + offset]``; only non-zero coefficients are listed.

    Two normal forms compare equal (``==``) iff the operators agree on every input.
    """

    __slots__ = ("ndim", "c_in", "c_out", "P", "Q", "taps", "_hash")

    def __init__(self, ndim: int, c_in: int, c_out: int, P: Index, Q: Index, taps: Taps):
        self.ndim, self.c_in, self.c_out = ndim, c_in, c_out
        self.P, self.Q = tuple(P), tuple(Q)
        self.taps = taps
        self._hash: int | None = None

    # --- derived views ----------------------------------------------------------------------------
    @property
    def L(self) -> Index:
        return tuple(p // math.gcd(p, q) for p, q in zip(self.P, self.Q))

    @property
    def M(self) -> Index:
        return tuple(q // math.gcd(p, q) for p, q in zip(self.P, self.Q))

    @property
    def rate(self) -> tuple[Fraction, ...]:
        return tuple(Fraction(p, q) for p, q in zip(self.P, self.Q))

    @property
    def period(self) -> Index:
        """Minimal output period per dimension (the number of output phases along it)."""
        return self.P

    @property
    def is_zero(self) -> bool:
        return not self.taps

    def phases(self) -> list[Index]:
        return list(_box(self.P))

    def phase_taps(self, phase: Any = 0, c_out: int = 0) -> dict:
        """The taps of one phase.  For 1-D single-channel forms: ``{offset: coefficient}``."""
        p = (phase,) if isinstance(phase, int) else tuple(phase)
        row = self.taps.get((p, c_out), {})
        if self.ndim == 1 and self.c_in == 1:
            return {off[0]: c for (_, off), c in sorted(row.items())}
        return dict(sorted(row.items()))

    def n_taps(self) -> int:
        """Total multiplications per period (the kernel plan's work per block)."""
        return sum(len(row) for row in self.taps.values())

    # --- equality ---------------------------------------------------------------------------------
    def _signature(self) -> tuple:
        return (self.ndim, self.c_in, self.c_out, self.P, self.Q)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormalForm):
            return NotImplemented
        if self._signature() != other._signature() or self.taps.keys() != other.taps.keys():
            return False
        for key, row in self.taps.items():
            row2 = other.taps[key]
            if row.keys() != row2.keys():
                return False
            if any(sp.expand(c - row2[k]) != 0 for k, c in row.items()):
                return False
        return True

    def __hash__(self) -> int:
        if self._hash is None:
            structure = tuple(sorted((k, tuple(sorted(r))) for k, r in self.taps.items()))
            self._hash = hash((self._signature(), structure))
        return self._hash

    # --- the algebra of forms ---------------------------------------------------------------------
    def refine(self, t: Index) -> "NormalForm":
        """The same operator written with periods ``(t P, t Q)``."""
        if all(v == 1 for v in t):
            return self
        P2 = tuple(a * b for a, b in zip(self.P, t))
        Q2 = tuple(a * b for a, b in zip(self.Q, t))
        out: Taps = {}
        for (p, co), row in self.taps.items():
            for i in _box(t):
                p2 = tuple(pp + P * ii for pp, P, ii in zip(p, self.P, i))
                out[(p2, co)] = {
                    (ci, tuple(o + Q * ii for o, Q, ii in zip(off, self.Q, i))): c for (ci, off), c in row.items()
                }
        return NormalForm(self.ndim, self.c_in, self.c_out, P2, Q2, out)

    def compose(self, inner: "NormalForm") -> "NormalForm":
        """The form of ``self @ inner`` (``inner`` applied first)."""
        T = tuple(math.lcm(a, b) for a, b in zip(inner.P, self.Q))
        outer = self.refine(tuple(t // q for t, q in zip(T, self.Q)))
        inn = inner.refine(tuple(t // p for t, p in zip(T, inner.P)))
        out: Taps = {}
        for (p, co), row in outer.taps.items():
            acc: dict[TapKey, sp.Expr] = {}
            for (k, off), a in row.items():
                i = tuple(o // t for o, t in zip(off, T))
                r = tuple(o % t for o, t in zip(off, T))
                for (ci, off2), b in inn.taps.get((r, k), {}).items():
                    key = (ci, tuple(Q * ii + o2 for Q, ii, o2 in zip(inn.Q, i, off2)))
                    acc[key] = acc.get(key, sp.Integer(0)) + a * b
            out[(p, co)] = acc
        return NormalForm(self.ndim, inner.c_in, self.c_out, outer.P, inn.Q, _clean(out)).reduce()

    def add(self, other: "NormalForm") -> "NormalForm":
        if other.is_zero:
            return self
        if self.is_zero:
            return other
        if self.rate != other.rate:
            raise SymdeconvError(f"cannot add forms of rates {self.rate} and {other.rate}")
        P = tuple(math.lcm(a, b) for a, b in zip(self.P, other.P))
        a = self.refine(tuple(x // y for x, y in zip(P, self.P)))
        b = other.refine(tuple(x // y for x, y in zip(P, other.P)))
        out: Taps = {k: dict(v) for k, v in a.taps.items()}
        for key, row in b.taps.items():
            acc = out.setdefault(key, {})
            for tk, c in row.items():
                acc[tk] = acc.get(tk, sp.Integer(0)) + c
        return NormalForm(self.ndim, self.c_in, self.c_out, a.P, a.Q, _clean(out)).reduce()

    def scale(self, c: sp.Expr) -> "NormalForm":
        out = {k: {tk: c * v for tk, v in row.items()} for k, row in self.taps.items()}
        return NormalForm(self.ndim, self.c_in, self.c_out, self.P, self.Q, _clean(out)).reduce()

    def reduce(self) -> "NormalForm":
        """The same operator with the smallest period in every dimension (unique)."""
        taps = _clean(self.taps)
        if not taps:  # the zero operator: one canonical form, whatever the rate it was written at
            return NormalForm(self.ndim, self.c_in, self.c_out, (1,) * self.ndim, (1,) * self.ndim, {})
        P, Q = list(self.P), list(self.Q)
        for d in range(self.ndim):
            g = math.gcd(P[d], Q[d])
            L, M = P[d] // g, Q[d] // g
            for t in sorted(t for t in range(1, g + 1) if g % t == 0):
                if t == g or _invariant(taps, P, d, t * L, t * M):
                    if t != g:
                        taps = {k: v for k, v in taps.items() if k[0][d] < t * L}
                    P[d], Q[d] = t * L, t * M
                    break
        return NormalForm(self.ndim, self.c_in, self.c_out, tuple(P), tuple(Q), taps)

    # --- evaluation -------------------------------------------------------------------------------
    def kernel(self, c_out: int, n: Index, c_in: int, m: Index) -> sp.Expr:
        """``h(c', n, c, m)`` read off the form (for counterexamples and checks)."""
        j = tuple(v // P for v, P in zip(n, self.P))
        p = tuple(v % P for v, P in zip(n, self.P))
        off = tuple(mm - Q * jj for mm, Q, jj in zip(m, self.Q, j))
        return self.taps.get((p, c_out), {}).get((c_in, off), sp.Integer(0))

    # --- display ----------------------------------------------------------------------------------
    def _index_names(self) -> list[str]:
        return ["m"] if self.ndim == 1 else [f"m{d + 1}" for d in range(self.ndim)]

    def _pos(self, scale: Index, offset: Index, latex: bool = False) -> str:
        parts = []
        for name, s, o in zip(self._index_names(), scale, offset):
            if latex and len(name) > 1:
                name = f"{name[0]}_{{{name[1:]}}}"
            term = name if s == 1 else f"{s}{name}"
            if o > 0:
                term += f" + {o}"
            elif o < 0:
                term += f" {'-' if latex else '−'} {-o}"
            parts.append(term)
        return ", ".join(parts)

    def _channel(self, name: str, c: int, count: int, latex: bool) -> str:
        if count == 1:
            return name
        return f"{name}_{{{c}}}" if latex else f"{name}{c}"

    def lines(self, latex: bool = False) -> list[str]:
        out = []
        for co in range(self.c_out):
            for p in self.phases():
                lhs = f"{self._channel('y', co, self.c_out, latex)}[{self._pos(self.P, p, latex)}]"
                row = self.taps.get((p, co), {})
                terms = []
                for (ci, off), c in sorted(row.items(), key=lambda kv: (kv[0][0], tuple(-o for o in kv[0][1]))):
                    xs = f"{self._channel('x', ci, self.c_in, latex)}[{self._pos(self.Q, off, latex)}]"
                    if latex:
                        coeff = sp.latex(c)
                        coeff = coeff if c.is_Atom else rf"\left({coeff}\right)"
                        terms.append(xs if c == 1 else rf"{coeff}\,{xs}")
                    else:
                        coeff = str(c) if c.is_Atom else f"({c})"
                        terms.append(xs if c == 1 else f"{coeff}·{xs}")
                rhs = " + ".join(terms) if terms else "0"
                out.append(f"{lhs} &= {rhs}" if latex else f"{lhs} = {rhs}")
        return out

    def header(self) -> str:
        rate = ", ".join(f"{l}/{m}" for l, m in zip(self.L, self.M))
        period = ", ".join(str(p) for p in self.P)
        qs = ", ".join(str(q) for q in self.Q)
        channels = "" if (self.c_in, self.c_out) == (1, 1) else f", channels {self.c_in}→{self.c_out}"
        return f"rate {rate}, period {period} (outputs) / {qs} (inputs){channels}"

    def __str__(self) -> str:
        return self.header() + "\n" + "\n".join("  " + line for line in self.lines())

    def __repr__(self) -> str:
        return f"<NormalForm {self.header()}: " + "; ".join(self.lines()) + ">"

    def _repr_latex_(self) -> str:
        body = r" \\ ".join(self.lines(latex=True))
        return rf"$\begin{{aligned}}{body}\end{{aligned}}$"

    def to_dict(self) -> dict:
        """Plain data (strings for coefficients), e.g. for JSON and generated-file headers."""
        return {
            "ndim": self.ndim, "c_in": self.c_in, "c_out": self.c_out,
            "P": list(self.P), "Q": list(self.Q),
            "taps": [
                {"phase": list(p), "c_out": co,
                 "reads": [{"c_in": ci, "offset": list(off), "coeff": str(c)} for (ci, off), c in sorted(row.items())]}
                for (p, co), row in sorted(self.taps.items())
            ],
        }


def _invariant(taps: Taps, P: list[int], d: int, step_out: int, step_in: int) -> bool:
    """Is the kernel invariant under shifting dimension ``d`` by ``(step_out, step_in)``?"""
    for (p, co), row in list(taps.items()) + [(k, {}) for k in _missing_keys(taps, P)]:
        if p[d] + step_out >= P[d]:
            continue
        q = p[:d] + (p[d] + step_out,) + p[d + 1:]
        target = taps.get((q, co), {})
        shifted = {(ci, off[:d] + (off[d] + step_in,) + off[d + 1:]): c for (ci, off), c in row.items()}
        if shifted.keys() != target.keys():
            return False
        if any(sp.expand(c - target[k]) != 0 for k, c in shifted.items()):
            return False
    return True


def _missing_keys(taps: Taps, P: list[int]) -> list:
    """Phases without taps still constrain invariance: an empty phase must map to an empty phase."""
    channels = {co for (_, co) in taps}
    return [(p, co) for co in channels for p in _box(tuple(P)) if (p, co) not in taps]


# ==================================================================================================


def _primitive_form(op: Primitive) -> NormalForm:
    """Read the form off the primitive's definition: the rows of block 0, one per output phase."""
    P, Q = op.period()
    taps: Taps = {}
    for co in range(op.c_out):
        for p in _box(P):
            row: dict[TapKey, sp.Expr] = {}
            for (ci, m), coeff in op._row(co, p):
                row[(ci, m)] = row.get((ci, m), sp.Integer(0)) + coeff
            taps[(p, co)] = row
    return NormalForm(op.ndim, op.c_in, op.c_out, P, Q, _clean(taps)).reduce()


def _form(op: Operator) -> NormalForm:
    cached = op.__dict__.get("_normal_form")
    if cached is not None:
        return cached
    if isinstance(op, Primitive):
        nf = _primitive_form(op)
    elif isinstance(op, Compose):
        nf = _form(op.outer).compose(_form(op.inner))
    elif isinstance(op, Sum):
        nf = _form(op.terms[0])
        for t in op.terms[1:]:
            nf = nf.add(_form(t))
    elif isinstance(op, Scale):
        nf = _form(op.op).scale(op.c)
    else:  # pragma: no cover - every operator class is handled above
        raise SymdeconvError(f"canonical: no normal form for {type(op).__name__}")
    op.__dict__["_normal_form"] = nf
    return nf


def canonical(op: Any) -> NormalForm:
    """The polyphase normal form of an operator (or of a layer's ``.operator``).

    >>> import symdeconv as sd
    >>> q = sd.taps("q", 3)
    >>> print(sd.canonical(sd.conv(sd.convolve((1, 1), q)) @ sd.up(2)))
    rate 2/1, period 2 (outputs) / 1 (inputs)
      y[2m] = q0·x[m] + (q1 + q2)·x[m − 1]
      y[2m + 1] = (q0 + q1)·x[m] + q2·x[m − 1]
    """
    with context("sd.canonical"):
        return _form(as_operator(op, "op"))
