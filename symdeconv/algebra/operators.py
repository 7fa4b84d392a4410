"""Linear operators on N-D, multi-channel sequences over the integers, with SymPy coefficients.

An operator ``A`` maps a signal ``x[c, m]`` (channel ``c``, position ``m ∈ ℤ^D``) to
``y[c', n] = Σ h(c', n, c, m) · x[c, m]`` where, for every output, only finitely many ``h`` are non-zero
(FIR), and ``h`` is periodic: ``h(c', n + P, c, m + Q) = h(c', n, c, m)`` for some positive periods
``P`` (output) and ``Q`` (input) per dimension.  The ratio ``P / Q`` is the operator's *rate*.

The primitives are defined directly by their kernel ``h`` (method ``_row``):

=============  =====================================  ==========  =========================
operator       definition                              rate        natural output window
=============  =====================================  ==========  =========================
``up(k)``      ``y[n] = x[n/k]`` if ``k | n`` else 0   ``k``        ``[k a, k b)``
``down(k)``    ``y[n] = x[k n]``                       ``1/k``      ``[⌈a/k⌉, ⌈b/k⌉)``
``hold(k)``    ``y[n] = x[⌊n/k⌋]``                     ``k``        ``[k a, k b)``
``shift(d)``   ``y[n] = x[n − d]``                     ``1``        ``[a + d, b + d)``
``conv(q, o)`` ``y[n] = Σ_j q[j] x[n − j + o]``        ``1``        ``[a − o, b − o + K − 1)``
=============  =====================================  ==========  =========================

(for an input supported on ``[a, b)``), plus pixel shuffle / unshuffle and a general periodic operator
given by its polyphase taps.  Composition ``A @ B`` applies ``B`` first, like matrices.

Finite matrices (:meth:`Operator.matrix`) are computed by multiplying the primitives' sparse matrices
over explicit windows; this is deliberately independent of the polyphase normal form
(:mod:`symdeconv.canonical`), so that each can check the other.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any, Iterable, Iterator, Sequence

import sympy as sp

from ..errors import SymdeconvError
from ._validate import as_coeff, as_int_tuple, as_positive_int, as_positive_tuple
from .arrays import as_tap_array

__all__ = [
    "Operator", "Primitive", "Up", "Down", "Hold", "Shift", "Conv", "PixelShuffle", "PixelUnshuffle",
    "Periodic", "Compose", "Sum", "Scale", "Box", "Sparse", "periodic_out_box",
    "up", "down", "hold", "shift", "identity", "conv", "channel_conv", "pixel_shuffle", "pixel_unshuffle",
    "periodic", "as_operator",
]

Index = tuple[int, ...]
Box = tuple[tuple[int, int], ...]  # per dimension, a half-open interval [lo, hi)
Key = tuple[int, Index]  # (channel, position)
Row = dict[Key, sp.Expr]
Sparse = dict[Key, Row]  # output (channel, position) -> {input (channel, position): coefficient}


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _positions(box: Box) -> Iterator[Index]:
    return itertools.product(*(range(lo, hi) for lo, hi in box))


def _inside(m: Index, box: Box) -> bool:
    return all(lo <= v < hi for v, (lo, hi) in zip(m, box))


def _fmt_ints(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(values) == 1 else str(values)


def as_operator(obj: Any, name: str = "operand") -> "Operator":
    """``obj`` itself if it is an operator, its ``.operator`` if it is a layer, else an error."""
    if isinstance(obj, Operator):
        return obj
    inner = getattr(obj, "operator", None)
    if isinstance(inner, Operator):
        return inner
    raise SymdeconvError(f"{name} must be a symdeconv operator or layer, got {type(obj).__name__}")


class Operator:
    """Base class of every operator.  Immutable; compose with ``@``, add with ``+``, scale with ``*``."""

    ndim: int
    c_in: int
    c_out: int
    __array_priority__ = 1000  # keep NumPy scalars from broadcasting over operators

    # --- structure -------------------------------------------------------------------------------
    @property
    def rate(self) -> tuple[Fraction, ...]:
        """Output samples per input sample, per spatial dimension (exact fractions)."""
        raise NotImplementedError

    def out_box(self, in_box: Box) -> Box:
        """The output window (per dimension ``[lo, hi)``) that can be non-zero for inputs in ``in_box``."""
        raise NotImplementedError

    def sparse(self, in_box: Box, out_box: Box) -> Sparse:
        """The operator restricted to inputs in ``in_box`` and outputs in ``out_box``, as sparse rows."""
        raise NotImplementedError

    @property
    def T(self) -> "Operator":
        """The transpose (adjoint for real coefficients): ``h^T(c, m, c', n) = h(c', n, c, m)``."""
        raise NotImplementedError

    def transpose(self) -> "Operator":
        return self.T

    def _atoms(self) -> Iterator["Operator"]:
        yield self

    def free_symbols(self) -> set[sp.Symbol]:
        out: set[sp.Symbol] = set()
        for atom in self._atoms():
            out |= atom._own_symbols()
        return out

    def _own_symbols(self) -> set[sp.Symbol]:
        return set()

    def subs(self, *args: Any, **kwargs: Any) -> "Operator":
        """Substitute into every coefficient (as :meth:`sympy.Basic.subs`); the structure is kept."""
        raise NotImplementedError

    # --- algebra ----------------------------------------------------------------------------------
    def __matmul__(self, other: Any) -> "Operator":
        if not isinstance(other, Operator):
            other_op = getattr(other, "operator", None)
            if not isinstance(other_op, Operator):
                return NotImplemented
            other = other_op
        return Compose(self, other)

    def __rmatmul__(self, other: Any) -> "Operator":
        other_op = getattr(other, "operator", None)
        if isinstance(other_op, Operator):
            return Compose(other_op, self)
        return NotImplemented

    def __add__(self, other: Any) -> "Operator":
        if isinstance(other, Operator):
            return Sum((self, other))
        if _is_scalar_zero(other):
            return self
        return NotImplemented

    def __radd__(self, other: Any) -> "Operator":
        if _is_scalar_zero(other):  # so that sum([...]) works
            return self
        return NotImplemented

    def __sub__(self, other: Any) -> "Operator":
        if isinstance(other, Operator):
            return Sum((self, Scale(sp.Integer(-1), other)))
        return NotImplemented

    def __neg__(self) -> "Operator":
        return Scale(sp.Integer(-1), self)

    def __mul__(self, other: Any) -> "Operator":
        if isinstance(other, Operator):
            raise SymdeconvError("use A @ B to compose operators; '*' only scales by a number or expression")
        return Scale(as_coeff(other, "scalar"), self)

    __rmul__ = __mul__

    def __bool__(self) -> bool:  # an operator is not a truth value
        raise SymdeconvError("an operator has no truth value; use sd.equivalent(a, b) to compare operators")

    # --- finite matrices --------------------------------------------------------------------------
    def input_box(self, n: Any, start: Any = 0) -> Box:
        shape = as_positive_tuple(n, "n", self.ndim)
        origin = as_int_tuple(start, "start", self.ndim)
        return tuple((s, s + k) for s, k in zip(origin, shape))

    def parse_window(self, window: Any, in_box: Box) -> Box:
        if window is None:
            return self.out_box(in_box)
        if self.ndim == 1 and isinstance(window, Sequence) and len(window) == 2 and not isinstance(window[0], Sequence):
            window = (window,)
        if not isinstance(window, Sequence) or len(window) != self.ndim:
            raise SymdeconvError(
                f"window must be (start, stop) per spatial dimension ({self.ndim} of them), got {window!r}"
            )
        out = []
        for d, pair in enumerate(window):
            if not isinstance(pair, Sequence) or len(pair) != 2:
                raise SymdeconvError(f"window[{d}] must be a (start, stop) pair, got {pair!r}")
            lo, hi = as_int_tuple(pair, f"window[{d}]")
            if hi < lo:
                raise SymdeconvError(f"window[{d}] must have start <= stop, got ({lo}, {hi})")
            out.append((lo, hi))
        return tuple(out)

    def matrix(self, n: Any, window: Any = None, start: Any = 0) -> sp.Matrix:
        """The SymPy matrix of this operator on a finite signal.

        The input is ``x[c, m]`` for channels ``0..c_in-1`` and positions ``start ≤ m < start + n`` (per
        dimension), zero elsewhere; the rows are the output positions of ``window`` (default: the full
        output support, in time order), channel-major and C-ordered like ``x.reshape(-1)``.

        >>> up(2).matrix(2)
        Matrix([[1, 0], [0, 0], [0, 1], [0, 0]])
        """
        in_box = self.input_box(n, start)
        out_box = self.parse_window(window, in_box)
        return sparse_to_matrix(self.sparse(in_box, out_box), self.c_in, in_box, self.c_out, out_box)

    def out_shape(self, n: Any, start: Any = 0) -> tuple[int, ...]:
        """Per-dimension length of the full output window for an input of length ``n``."""
        return tuple(hi - lo for lo, hi in self.out_box(self.input_box(n, start)))

    # --- display ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return self._repr(top=True)

    def _repr(self, top: bool = False) -> str:
        raise NotImplementedError

    def latex(self) -> str:
        raise NotImplementedError

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"


def _is_scalar_zero(value: Any) -> bool:
    try:
        return not isinstance(value, (bool, str)) and value == 0
    except Exception:  # noqa: BLE001 - anything that cannot be compared to 0 is not zero
        return False


def _same_shape(a: Operator, b: Operator, what: str) -> None:
    if a.ndim != b.ndim:
        raise SymdeconvError(
            f"{what}: the operators act on different numbers of spatial dimensions ({a.ndim} and {b.ndim})"
        )


def sparse_to_matrix(rows: Sparse, c_in: int, in_box: Box, c_out: int, out_box: Box) -> sp.Matrix:
    """Flatten sparse rows into a dense SymPy matrix, channel-major, C-ordered positions."""
    in_sizes = [hi - lo for lo, hi in in_box]
    out_sizes = [hi - lo for lo, hi in out_box]
    in_count, out_count = math.prod(in_sizes), math.prod(out_sizes)

    def flat(key: Key, box: Box, sizes: list[int], count: int) -> int:
        channel, pos = key
        index = 0
        for (lo, _), size, v in zip(box, sizes, pos):
            index = index * size + (v - lo)
        return channel * count + index

    mat = sp.zeros(c_out * out_count, c_in * in_count)
    for out_key, row in rows.items():
        r = flat(out_key, out_box, out_sizes, out_count)
        for in_key, coeff in row.items():
            mat[r, flat(in_key, in_box, in_sizes, in_count)] = sp.expand(coeff)
    return mat


# ==================================================================================================
# Primitives: defined by their kernel rows
# ==================================================================================================


class Primitive(Operator):
    """An operator given directly by its kernel: ``_row(c', n)`` lists ``((c, m), h)`` for one output."""

    #: (P, Q): the output and input periods of the definition (not necessarily minimal)
    def period(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        raise NotImplementedError

    @property
    def rate(self) -> tuple[Fraction, ...]:
        P, Q = self.period()
        return tuple(Fraction(p, q) for p, q in zip(P, Q))

    def _row(self, co: int, n: Index) -> Iterable[tuple[Key, sp.Expr]]:
        raise NotImplementedError

    def sparse(self, in_box: Box, out_box: Box) -> Sparse:
        out: Sparse = {}
        for co in range(self.c_out):
            for n in _positions(out_box):
                row: Row = {}
                for key, coeff in self._row(co, n):
                    if _inside(key[1], in_box):
                        row[key] = row.get(key, sp.Integer(0)) + coeff
                if row:
                    out[(co, n)] = row
        return out

    def subs(self, *args: Any, **kwargs: Any) -> Operator:
        return self

    def _repr(self, top: bool = False) -> str:
        return self._describe()

    def _describe(self) -> str:
        raise NotImplementedError


class _ChannelWise(Primitive):
    """A primitive acting on each channel alike, with one positive integer parameter per dimension."""

    _name = ""
    _latex = ""

    def __init__(self, factor: Any, channels: int = 1, *, _param: str = "k"):
        self.factor = as_positive_tuple(factor, f"{self._name}: {_param}")
        self.ndim = len(self.factor)
        self.c_in = self.c_out = as_positive_int(channels, f"{self._name}: channels")

    def _suffix(self) -> str:
        return "" if self.c_in == 1 else f", channels={self.c_in}"

    def _describe(self) -> str:
        return f"{self._name}({_fmt_ints(self.factor)}{self._suffix()})"

    def latex(self) -> str:
        return rf"{self._latex}_{{{_fmt_ints(self.factor)}}}"

    def _key(self) -> tuple:
        return (type(self).__name__, self.factor, self.c_in)


class Up(_ChannelWise):
    """Upsampler ↑k: insert ``k - 1`` zeros after each sample, ``y[n] = x[n/k]`` when ``k | n``."""

    _name, _latex = "up", r"\uparrow"

    def period(self):
        return self.factor, (1,) * self.ndim

    def _row(self, co, n):
        if all(v % k == 0 for v, k in zip(n, self.factor)):
            yield (co, tuple(v // k for v, k in zip(n, self.factor))), sp.Integer(1)

    def out_box(self, in_box):
        return tuple((k * lo, k * hi) for (lo, hi), k in zip(in_box, self.factor))

    @property
    def T(self):
        return Down(self.factor, self.c_in)


class Down(_ChannelWise):
    """Downsampler ↓k: keep every k-th sample, ``y[n] = x[k n]``."""

    _name, _latex = "down", r"\downarrow"

    def period(self):
        return (1,) * self.ndim, self.factor

    def _row(self, co, n):
        yield (co, tuple(v * k for v, k in zip(n, self.factor))), sp.Integer(1)

    def out_box(self, in_box):
        return tuple((_ceil_div(lo, k), _ceil_div(hi, k)) for (lo, hi), k in zip(in_box, self.factor))

    @property
    def T(self):
        return Up(self.factor, self.c_in)


class Hold(_ChannelWise):
    """Zero-order hold / nearest-neighbour upsampler: repeat each sample k times, ``y[n] = x[⌊n/k⌋]``."""

    _name, _latex = "hold", r"\mathrm{hold}"

    def period(self):
        return self.factor, (1,) * self.ndim

    def _row(self, co, n):
        yield (co, tuple(v // k for v, k in zip(n, self.factor))), sp.Integer(1)

    def out_box(self, in_box):
        return tuple((k * lo, k * hi) for (lo, hi), k in zip(in_box, self.factor))

    @property
    def T(self):
        # (hold^T w)[m] = Σ_{i<k} w[k m + i]: a box sum looking ahead k-1 samples, then ↓k
        box = {(c, c, j): sp.Integer(1) for c in range(self.c_in) for j in _positions(tuple((0, k) for k in self.factor))}
        box_sum = Conv((self.c_in, self.c_in) + self.factor, box, tuple(k - 1 for k in self.factor))
        return Compose(Down(self.factor, self.c_in), box_sum)


class Shift(Primitive):
    """Delay by ``d`` samples: ``y[n] = x[n − d]`` (``d`` may be negative: an advance)."""

    def __init__(self, d: Any, channels: int = 1):
        self.d = as_int_tuple(d, "shift: d")
        self.ndim = len(self.d)
        self.c_in = self.c_out = as_positive_int(channels, "shift: channels")

    def period(self):
        return (1,) * self.ndim, (1,) * self.ndim

    def _row(self, co, n):
        yield (co, tuple(v - d for v, d in zip(n, self.d))), sp.Integer(1)

    def out_box(self, in_box):
        return tuple((lo + d, hi + d) for (lo, hi), d in zip(in_box, self.d))

    @property
    def T(self):
        return Shift(tuple(-d for d in self.d), self.c_in)

    def _describe(self):
        suffix = "" if self.c_in == 1 else f", channels={self.c_in}"
        if not any(self.d):
            return "identity()" if (self.ndim, self.c_in) == (1, 1) else f"identity(ndim={self.ndim}{suffix})"
        return f"shift({_fmt_ints(self.d)}{suffix})"

    def latex(self):
        if not any(self.d):
            return r"I"
        if self.ndim == 1:
            return rf"z^{{{-self.d[0]}}}"
        return rf"\mathrm{{shift}}_{{{self.d}}}"


class Conv(Primitive):
    """Multi-channel N-D true convolution: ``y[c', n] = Σ_{c, j} w[c', c, j] · x[c, n − j + origin]``.

    ``shape`` is ``(C_out, C_in, K_1, …, K_D)``; ``weights`` maps ``(c', c, j)`` to the coefficient
    (zeros omitted).  With one channel and ``origin = 0`` this is the DSP convolution ``q ∗ x``.
    """

    def __init__(self, shape: tuple[int, ...], weights: dict[tuple, sp.Expr], origin: tuple[int, ...]):
        self.shape = tuple(shape)
        self.c_out, self.c_in = self.shape[0], self.shape[1]
        self.ksize = self.shape[2:]
        self.ndim = len(self.ksize)
        self.origin = tuple(origin)
        self.weights = {k: v for k, v in weights.items() if v != 0}
        self._by_out: dict[int, list[tuple[int, Index, sp.Expr]]] = {}
        for (co, ci, j), coeff in sorted(self.weights.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            self._by_out.setdefault(co, []).append((ci, j, coeff))

    def period(self):
        return (1,) * self.ndim, (1,) * self.ndim

    def _row(self, co, n):
        for ci, j, coeff in self._by_out.get(co, ()):
            yield (ci, tuple(v - jj + o for v, jj, o in zip(n, j, self.origin))), coeff

    def out_box(self, in_box):
        return tuple((lo - o, hi - o + k - 1) for (lo, hi), o, k in zip(in_box, self.origin, self.ksize))

    @property
    def T(self):
        flipped = {
            (ci, co, tuple(k - 1 - jj for jj, k in zip(j, self.ksize))): coeff
            for (co, ci, j), coeff in self.weights.items()
        }
        origin = tuple(k - 1 - o for k, o in zip(self.ksize, self.origin))
        return Conv((self.c_in, self.c_out) + self.ksize, flipped, origin)

    def _own_symbols(self):
        out: set[sp.Symbol] = set()
        for v in self.weights.values():
            out |= v.free_symbols
        return out

    def subs(self, *args, **kwargs):
        new = {k: sp.expand(sp.sympify(v).subs(*args, **kwargs)) for k, v in self.weights.items()}
        return Conv(self.shape, new, self.origin)

    def taps(self) -> tuple[sp.Expr, ...]:
        """The 1-D single-channel taps (zeros included)."""
        if self.ndim != 1 or self.c_in != 1 or self.c_out != 1:
            raise SymdeconvError("taps() is defined for 1-D single-channel convolutions; use .weights")
        return tuple(self.weights.get((0, 0, (j,)), sp.Integer(0)) for j in range(self.ksize[0]))

    def _describe(self):
        if self.c_in == 1 and self.c_out == 1 and self.ndim == 1:
            body = ", ".join(str(t) for t in self.taps())
        elif self.c_in == 1 and self.c_out == 1:
            body = f"shape={self.ksize}, " + ", ".join(f"{j}: {v}" for (_, _, j), v in sorted(self.weights.items()))
        else:
            body = f"shape={self.shape}, {len(self.weights)} non-zero weights"
        origin = "" if not any(self.origin) else f"; origin={_fmt_ints(self.origin)}"
        return f"conv({body}{origin})"

    def latex(self):
        if self.c_in == 1 and self.c_out == 1 and self.ndim == 1:
            body = r"\left(" + ", ".join(sp.latex(t) for t in self.taps()) + r"\right)"
        else:
            body = r"w_{" + "\\times".join(str(s) for s in self.shape) + "}"
        if any(self.origin):
            return rf"z^{{{self.origin[0] if self.ndim == 1 else self.origin}}}\,{body}\ast"
        return body + r"\ast"


class PixelShuffle(Primitive):
    """Depth-to-space by ``r`` per dimension (PyTorch ``pixel_shuffle``): ``C·R`` channels → ``C``.

    ``y[c, r m + p] = x[c R + ravel(p), m]`` with ``R = ∏ r`` and ``ravel`` in C order.
    """

    def __init__(self, r: Any, channels: int = 1):
        self.factor = as_positive_tuple(r, "pixel_shuffle: r")
        self.ndim = len(self.factor)
        self.R = math.prod(self.factor)
        self.c_out = as_positive_int(channels, "pixel_shuffle: channels")
        self.c_in = self.c_out * self.R

    def period(self):
        return self.factor, (1,) * self.ndim

    def _row(self, co, n):
        phase = tuple(v % r for v, r in zip(n, self.factor))
        yield (co * self.R + _ravel(phase, self.factor), tuple(v // r for v, r in zip(n, self.factor))), sp.Integer(1)

    def out_box(self, in_box):
        return tuple((r * lo, r * hi) for (lo, hi), r in zip(in_box, self.factor))

    @property
    def T(self):
        return PixelUnshuffle(self.factor, self.c_out)

    def _describe(self):
        return f"pixel_shuffle({_fmt_ints(self.factor)}, channels={self.c_out})"

    def latex(self):
        return rf"\mathrm{{PS}}_{{{_fmt_ints(self.factor)}}}"


class PixelUnshuffle(Primitive):
    """Space-to-depth, the transpose (and inverse) of :class:`PixelShuffle`: ``C`` channels → ``C·R``."""

    def __init__(self, r: Any, channels: int = 1):
        self.factor = as_positive_tuple(r, "pixel_unshuffle: r")
        self.ndim = len(self.factor)
        self.R = math.prod(self.factor)
        self.c_in = as_positive_int(channels, "pixel_unshuffle: channels")
        self.c_out = self.c_in * self.R

    def period(self):
        return (1,) * self.ndim, self.factor

    def _row(self, co, n):
        phase = _unravel(co % self.R, self.factor)
        yield (co // self.R, tuple(r * v + p for v, r, p in zip(n, self.factor, phase))), sp.Integer(1)

    def out_box(self, in_box):
        return tuple((lo // r, _ceil_div(hi, r)) for (lo, hi), r in zip(in_box, self.factor))

    @property
    def T(self):
        return PixelShuffle(self.factor, self.c_in)

    def _describe(self):
        return f"pixel_unshuffle({_fmt_ints(self.factor)}, channels={self.c_in})"

    def latex(self):
        return rf"\mathrm{{PS}}^{{-1}}_{{{_fmt_ints(self.factor)}}}"


def _ravel(index: Index, dims: tuple[int, ...]) -> int:
    flat = 0
    for i, d in zip(index, dims):
        flat = flat * d + i
    return flat


def _unravel(flat: int, dims: tuple[int, ...]) -> Index:
    out = []
    for d in reversed(dims):
        out.append(flat % d)
        flat //= d
    return tuple(reversed(out))


def periodic_out_box(P: Index, Q: Index, taps: dict, in_box: Box) -> Box:
    """Hull of the outputs ``P j + p`` whose taps ``Q j + off`` can read inputs in ``in_box``, per dimension.

    ``taps`` maps ``(phase, c_out)`` to ``{(c_in, offset): coefficient}`` (a :class:`Periodic`'s taps, or a
    normal form's).  With no taps at all the window is empty, at ``P ⌈lo / Q⌉``.
    """
    out = []
    for d, (lo, hi) in enumerate(in_box):
        first, last = None, None
        for (p, _), row in taps.items():
            for (_, off) in row:
                j_lo = _ceil_div(lo - off[d], Q[d])
                j_hi = _ceil_div(hi - off[d], Q[d])
                if j_hi <= j_lo:
                    continue
                a, b = P[d] * j_lo + p[d], P[d] * (j_hi - 1) + p[d] + 1
                first = a if first is None else min(first, a)
                last = b if last is None else max(last, b)
        if first is None:
            first = last = P[d] * _ceil_div(lo, Q[d])
        out.append((first, last))
    return tuple(out)


class Periodic(Primitive):
    """A general periodic operator given by its polyphase taps.

    ``y[c', P j + p] = Σ_{(c, off) ∈ taps[(p, c')]} taps[(p, c')][(c, off)] · x[c, Q j + off]`` for every
    block index ``j ∈ ℤ^D``, output phase ``0 ≤ p < P`` and output channel ``c'``.
    """

    def __init__(self, P: Any, Q: Any, taps: dict, c_in: int = 1, c_out: int = 1, name: str | None = None):
        self.P = as_positive_tuple(P, "periodic: P")
        self.ndim = len(self.P)
        self.Q = as_positive_tuple(Q, "periodic: Q", self.ndim)
        self.c_in = as_positive_int(c_in, "periodic: c_in")
        self.c_out = as_positive_int(c_out, "periodic: c_out")
        self.name = name
        clean: dict[tuple[Index, int], dict[Key, sp.Expr]] = {}
        for (p, co), row in taps.items():
            p = as_int_tuple(p, "periodic: phase", self.ndim)
            if not (0 <= co < self.c_out) or not all(0 <= v < P_ for v, P_ in zip(p, self.P)):
                raise SymdeconvError(f"periodic: phase {p} / channel {co} outside period {self.P} × {self.c_out}")
            entries = {}
            for (ci, off), coeff in row.items():
                if not 0 <= ci < self.c_in:
                    raise SymdeconvError(f"periodic: input channel {ci} outside 0..{self.c_in - 1}")
                coeff = sp.expand(as_coeff(coeff))
                if coeff != 0:
                    entries[(ci, as_int_tuple(off, "periodic: offset", self.ndim))] = coeff
            if entries:
                clean[(p, co)] = entries
        self.taps = clean

    def period(self):
        return self.P, self.Q

    def _row(self, co, n):
        j = tuple(v // P for v, P in zip(n, self.P))
        p = tuple(v % P for v, P in zip(n, self.P))
        for (ci, off), coeff in self.taps.get((p, co), {}).items():
            yield (ci, tuple(Q * jj + o for Q, jj, o in zip(self.Q, j, off))), coeff

    def out_box(self, in_box):
        return periodic_out_box(self.P, self.Q, self.taps, in_box)

    @property
    def T(self):
        # h(P j + p, Q j + off) = c  ⇒  h^T(Q j' + r, P j' + p − P i) = c  with off = Q i + r
        new: dict[tuple[Index, int], dict[Key, sp.Expr]] = {}
        for (p, co), row in self.taps.items():
            for (ci, off), coeff in row.items():
                i = tuple(o // Q for o, Q in zip(off, self.Q))
                r = tuple(o % Q for o, Q in zip(off, self.Q))
                key = (co, tuple(pp - P * ii for pp, P, ii in zip(p, self.P, i)))
                new.setdefault((r, ci), {})[key] = coeff
        name = None if self.name is None else f"{self.name}ᵀ"
        return Periodic(self.Q, self.P, new, self.c_out, self.c_in, name=name)

    def _own_symbols(self):
        out: set[sp.Symbol] = set()
        for row in self.taps.values():
            for v in row.values():
                out |= v.free_symbols
        return out

    def subs(self, *args, **kwargs):
        new = {k: {kk: sp.sympify(v).subs(*args, **kwargs) for kk, v in row.items()} for k, row in self.taps.items()}
        return Periodic(self.P, self.Q, new, self.c_in, self.c_out, self.name)

    def _describe(self):
        if self.name:
            return self.name
        return f"periodic(P={_fmt_ints(self.P)}, Q={_fmt_ints(self.Q)}, {sum(map(len, self.taps.values()))} taps)"

    def latex(self):
        return r"\text{" + self._describe().replace("_", r"\_") + "}"


# ==================================================================================================
# Combinations
# ==================================================================================================


class Compose(Operator):
    """``outer @ inner``: apply ``inner`` first."""

    def __init__(self, outer: Operator, inner: Operator):
        _same_shape(outer, inner, "A @ B")
        if outer.c_in != inner.c_out:
            raise SymdeconvError(
                f"A @ B: B produces {inner.c_out} channel(s) but A expects {outer.c_in}; "
                "the channels between composed operators must match"
            )
        self.outer, self.inner = outer, inner
        self.ndim, self.c_in, self.c_out = inner.ndim, inner.c_in, outer.c_out

    @property
    def rate(self):
        return tuple(a * b for a, b in zip(self.outer.rate, self.inner.rate))

    def out_box(self, in_box):
        return self.outer.out_box(self.inner.out_box(in_box))

    def sparse(self, in_box, out_box):
        mid = self.inner.out_box(in_box)
        a = self.outer.sparse(mid, out_box)
        b = self.inner.sparse(in_box, mid)
        out: Sparse = {}
        for key, row in a.items():
            acc: Row = {}
            for mid_key, coeff in row.items():
                for in_key, coeff2 in b.get(mid_key, {}).items():
                    acc[in_key] = acc.get(in_key, sp.Integer(0)) + coeff * coeff2
            if acc:
                out[key] = acc
        return out

    @property
    def T(self):
        return Compose(self.inner.T, self.outer.T)

    def factors(self) -> list[Operator]:
        out: list[Operator] = []
        for part in (self.outer, self.inner):
            out.extend(part.factors() if isinstance(part, Compose) else [part])
        return out

    def _atoms(self):
        yield from self.outer._atoms()
        yield from self.inner._atoms()

    def subs(self, *args, **kwargs):
        return Compose(self.outer.subs(*args, **kwargs), self.inner.subs(*args, **kwargs))

    def _repr(self, top=False):
        body = " @ ".join(f._repr() for f in self.factors())
        return body if top else f"({body})"

    def latex(self):
        return r"\,".join(f.latex() if not isinstance(f, Sum) else rf"\left({f.latex()}\right)" for f in self.factors())


class Sum(Operator):
    """``A + B + …``: operators of the same shape and rate, added."""

    def __init__(self, terms: Sequence[Operator]):
        flat: list[Operator] = []
        for t in terms:
            flat.extend(t.terms if isinstance(t, Sum) else [t])
        first = flat[0]
        for t in flat[1:]:
            _same_shape(first, t, "A + B")
            if (t.c_in, t.c_out) != (first.c_in, first.c_out):
                raise SymdeconvError(
                    f"A + B: channel counts differ ({first.c_in}→{first.c_out} and {t.c_in}→{t.c_out})"
                )
            if t.rate != first.rate:
                raise SymdeconvError(
                    "A + B: operators of different rates cannot be added (the sum would not be periodic); "
                    f"got rates {_fmt_rate(first.rate)} and {_fmt_rate(t.rate)}"
                )
        self.terms = tuple(flat)
        self.ndim, self.c_in, self.c_out = first.ndim, first.c_in, first.c_out

    @property
    def rate(self):
        return self.terms[0].rate

    def out_box(self, in_box):
        boxes = [t.out_box(in_box) for t in self.terms]
        return tuple((min(b[d][0] for b in boxes), max(b[d][1] for b in boxes)) for d in range(self.ndim))

    def sparse(self, in_box, out_box):
        out: Sparse = {}
        for t in self.terms:
            for key, row in t.sparse(in_box, out_box).items():
                acc = out.setdefault(key, {})
                for in_key, coeff in row.items():
                    acc[in_key] = acc.get(in_key, sp.Integer(0)) + coeff
        return out

    @property
    def T(self):
        return Sum([t.T for t in self.terms])

    def _atoms(self):
        for t in self.terms:
            yield from t._atoms()

    def subs(self, *args, **kwargs):
        return Sum([t.subs(*args, **kwargs) for t in self.terms])

    def _repr(self, top=False):
        body = " + ".join(t._repr() for t in self.terms)
        return body if top else f"({body})"

    def latex(self):
        return " + ".join(t.latex() for t in self.terms)


class Scale(Operator):
    """``c * A`` for a number or SymPy expression ``c``."""

    def __init__(self, c: sp.Expr, op: Operator):
        self.c, self.op = c, op
        self.ndim, self.c_in, self.c_out = op.ndim, op.c_in, op.c_out

    @property
    def rate(self):
        return self.op.rate

    def out_box(self, in_box):
        return self.op.out_box(in_box)

    def sparse(self, in_box, out_box):
        return {k: {kk: self.c * v for kk, v in row.items()} for k, row in self.op.sparse(in_box, out_box).items()}

    @property
    def T(self):
        return Scale(self.c, self.op.T)

    def _atoms(self):
        yield self
        yield from self.op._atoms()

    def _own_symbols(self):
        return set(self.c.free_symbols)

    def subs(self, *args, **kwargs):
        return Scale(sp.sympify(self.c).subs(*args, **kwargs), self.op.subs(*args, **kwargs))

    def _repr(self, top=False):
        return f"{self.c}*{self.op._repr()}"

    def latex(self):
        return rf"{sp.latex(self.c)}\,{self.op.latex()}"


def _fmt_rate(rate: tuple[Fraction, ...]) -> str:
    parts = [str(r) for r in rate]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


# ==================================================================================================
# Public constructors
# ==================================================================================================


def up(k: Any, channels: int = 1) -> Up:
    """↑k: insert ``k − 1`` zeros after every sample (``k`` an int, or a tuple for N-D)."""
    return Up(k, channels, _param="k")


def down(k: Any, channels: int = 1) -> Down:
    """↓k: keep every k-th sample, ``y[n] = x[k n]``."""
    return Down(k, channels, _param="k")


def hold(k: Any, channels: int = 1) -> Hold:
    """Repeat (nearest-neighbour) upsampler: each sample repeated ``k`` times, ``y[n] = x[⌊n/k⌋]``."""
    return Hold(k, channels, _param="k")


def shift(d: Any, channels: int = 1) -> Shift:
    """Delay: ``y[n] = x[n − d]`` (``d`` an int or a tuple; negative ``d`` advances)."""
    return Shift(d, channels)


def identity(ndim: int = 1, channels: int = 1) -> Shift:
    """The identity operator (a shift by zero)."""
    return Shift((0,) * as_positive_int(ndim, "identity: ndim"), channels)


def conv(taps: Any, origin: Any = 0) -> Conv:
    """Single-channel true convolution ``y[n] = Σ_j taps[j] · x[n − j + origin]``: an *operator* with given taps.

    (``sd.conv`` is this operator; ``sd.Conv`` is the deep-learning *layer* — cross-correlation with a stride,
    padding, channels and a weight array, see :class:`symdeconv.algebra.layers.Conv`.)

    ``taps`` is a non-empty sequence (1-D) or a rectangular nested sequence / array (N-D), of numbers
    or SymPy expressions.  ``origin`` (an int or one per dimension) is the tap index aligned with the
    output sample: ``origin = 0`` is the causal DSP convolution, ``origin = (K − 1) / 2`` a centred one.
    """
    shape, entries = as_tap_array(taps, "conv: taps")
    ndim = len(shape)
    o = as_int_tuple(origin, "conv: origin", ndim)
    return Conv((1, 1) + shape, {(0, 0, j): v for j, v in entries.items()}, o)


def channel_conv(weight: Any, origin: Any = 0) -> Conv:
    """Multi-channel convolution with ``weight`` of shape ``(C_out, C_in, K_1, …, K_D)``.

    ``y[c', n] = Σ_{c, j} weight[c', c, j] · x[c, n − j + origin]`` — a *true* convolution; see
    :func:`symdeconv.algebra.layers` for the cross-correlation that deep-learning frameworks call conv.
    """
    shape, entries = as_tap_array(weight, "channel_conv: weight")
    if len(shape) < 3:
        raise SymdeconvError(f"channel_conv: weight must have shape (C_out, C_in, K_1, ...), got {shape}")
    o = as_int_tuple(origin, "channel_conv: origin", len(shape) - 2)
    return Conv(shape, {(idx[0], idx[1], idx[2:]): v for idx, v in entries.items()}, o)


def pixel_shuffle(r: Any, channels: int = 1) -> PixelShuffle:
    """Depth-to-space: ``channels · ∏r`` input channels become ``channels`` at ``r``× the rate."""
    return PixelShuffle(r, channels)


def pixel_unshuffle(r: Any, channels: int = 1) -> PixelUnshuffle:
    """Space-to-depth, the inverse and transpose of :func:`pixel_shuffle`."""
    return PixelUnshuffle(r, channels)


def periodic(P: Any, Q: Any, taps: dict, c_in: int = 1, c_out: int = 1, name: str | None = None) -> Periodic:
    """A general periodic operator from its polyphase taps (see :class:`Periodic`).

    For 1-D single-channel use, ``taps`` may be ``{phase: {offset: coefficient}}``.
    """
    P_t = as_positive_tuple(P, "periodic: P")
    ndim = len(P_t)

    def is_position(v: Any) -> bool:  # an int (1-D) or a tuple of ndim ints
        if ndim == 1 and isinstance(v, int):
            return True
        return isinstance(v, tuple) and len(v) == ndim and all(isinstance(i, int) for i in v)

    def position(v: Any) -> tuple:
        return v if isinstance(v, tuple) else (v,)

    norm: dict = {}
    for key, row in taps.items():
        if is_position(key):  # shorthand {phase: ...} for one output channel
            phase, co = position(key), 0
        elif isinstance(key, tuple) and len(key) == 2 and is_position(key[0]):
            phase, co = position(key[0]), key[1]
        else:
            raise SymdeconvError(f"periodic: taps keys must be a phase or (phase, channel), got {key!r}")
        new_row = {}
        for rk, coeff in row.items():
            if is_position(rk):  # shorthand {offset: coefficient} for input channel 0
                new_row[(0, position(rk))] = coeff
            elif isinstance(rk, tuple) and len(rk) == 2 and is_position(rk[1]):
                new_row[(rk[0], position(rk[1]))] = coeff
            else:
                raise SymdeconvError(f"periodic: a tap key must be an offset or (channel, offset), got {rk!r}")
        norm[(phase, co)] = new_row
    return Periodic(P_t, Q, norm, c_in, c_out, name)
