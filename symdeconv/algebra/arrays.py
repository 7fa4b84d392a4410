"""Tap sequences and tap arrays: validation, symbols, full convolution, dilation, reversal.

A *tap array* is a rectangular, non-empty nested sequence (list / tuple / NumPy array / SymPy
Matrix or Array) of numbers or SymPy expressions.  Internally it is kept as ``(shape, entries)``
where ``entries`` maps an index tuple to its exact SymPy coefficient (structural zeros omitted).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

import sympy as sp

from ..errors import SymdeconvError
from ._validate import as_coeff, as_positive_int, as_positive_tuple

__all__ = ["taps", "convolve", "dilate", "reverse", "as_taps", "as_tap_array", "TapArray"]

Index = tuple[int, ...]
TapArray = tuple[tuple[int, ...], dict[Index, sp.Expr]]


def _nested_shape(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)):
        raise SymdeconvError(f"{name} must be numbers or SymPy expressions, not text ({value!r}); use sd.taps")
    if isinstance(value, sp.MatrixBase):
        return tuple(value.shape)
    if isinstance(value, sp.NDimArray):
        return tuple(value.shape)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # NumPy array, without importing NumPy
        return tuple(int(s) for s in value.shape)
    if isinstance(value, Sequence):
        if len(value) == 0:
            raise SymdeconvError(f"{name} must not be empty (a filter needs at least one tap)")
        inner = [_nested_shape(v, name) if _is_nested(v) else () for v in value]
        if any(s != inner[0] for s in inner):
            raise SymdeconvError(f"{name} must be rectangular: its rows have shapes {sorted(set(inner))}")
        return (len(value),) + inner[0]
    raise SymdeconvError(f"{name} must be a sequence of taps, got {type(value).__name__}")


def _is_nested(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    if isinstance(value, (sp.MatrixBase, sp.NDimArray)):
        return True
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return len(value.shape) > 0
    return isinstance(value, Sequence)


def _get(value: Any, index: Index) -> Any:
    if isinstance(value, (sp.MatrixBase, sp.NDimArray)):
        return value[index]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value[index].item() if hasattr(value[index], "item") else value[index]
    for i in index:
        value = value[i]
    return value


def as_tap_array(value: Any, name: str = "taps", ndim: int | None = None) -> TapArray:
    """Validate a nested tap array; return ``(shape, {index: coeff})`` with zeros omitted."""
    shape = _nested_shape(value, name)
    if any(s == 0 for s in shape):
        raise SymdeconvError(f"{name} must not be empty (shape {shape})")
    if ndim is not None and len(shape) != ndim:
        raise SymdeconvError(f"{name} must have {ndim} axes, got shape {shape}")
    entries: dict[Index, sp.Expr] = {}
    for index in itertools.product(*(range(s) for s in shape)):
        raw = _get(value, index)
        if _is_nested(raw):
            raise SymdeconvError(f"{name} must be rectangular; entry {index} is itself a sequence")
        coeff = sp.expand(as_coeff(raw, f"{name}{list(index)}"))
        if coeff != 0:
            entries[index] = coeff
    return shape, entries


def as_taps(value: Any, name: str = "taps") -> tuple[sp.Expr, ...]:
    """A 1-D tap sequence as a tuple of exact SymPy coefficients (zeros kept, order kept)."""
    shape, entries = as_tap_array(value, name, ndim=1)
    return tuple(entries.get((i,), sp.Integer(0)) for i in range(shape[0]))


def taps(name: str, n: int | Sequence[int]) -> Any:
    """Symbolic taps: ``taps("q", 3)`` is ``(q0, q1, q2)``; ``taps("w", (2, 2))`` nests tuples.

    ``name`` must be a plain identifier (it becomes the SymPy symbol's name; nothing is parsed).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise SymdeconvError(f"taps: name must be an identifier such as 'q', got {name!r}")
    if isinstance(n, Sequence) and not isinstance(n, (str, bytes)):
        shape = as_positive_tuple(n, "taps: n")
        if len(shape) == 1:
            return taps(name, shape[0])

        def build(prefix: tuple[int, ...], rest: tuple[int, ...]) -> Any:
            if not rest:
                return sp.Symbol(name + "_".join(str(i) for i in prefix))
            return tuple(build(prefix + (i,), rest[1:]) for i in range(rest[0]))

        return build((), shape)
    count = as_positive_int(n, "taps: n")
    return tuple(sp.Symbol(f"{name}{i}") for i in range(count))


def convolve(a: Iterable[Any], b: Iterable[Any]) -> tuple[sp.Expr, ...]:
    """Full linear convolution of two 1-D tap sequences: ``(a * b)[n] = sum_j a[j] b[n - j]``."""
    ta, tb = as_taps(a, "convolve: a"), as_taps(b, "convolve: b")
    out = [sp.Integer(0)] * (len(ta) + len(tb) - 1)
    for i, x in enumerate(ta):
        for j, y in enumerate(tb):
            out[i + j] += x * y
    return tuple(sp.expand(v) for v in out)


def dilate(q: Iterable[Any], d: int) -> tuple[sp.Expr, ...]:
    """``(↑d q)``: the taps with ``d - 1`` zeros between neighbours (length ``(K - 1) d + 1``)."""
    tq = as_taps(q, "dilate: q")
    step = as_positive_int(d, "dilate: d")
    out = [sp.Integer(0)] * ((len(tq) - 1) * step + 1)
    for i, v in enumerate(tq):
        out[i * step] = v
    return tuple(out)


def reverse(q: Iterable[Any]) -> tuple[sp.Expr, ...]:
    """The taps in reverse order (the kernel flip that turns convolution into correlation)."""
    return tuple(reversed(as_taps(q, "reverse: q")))
