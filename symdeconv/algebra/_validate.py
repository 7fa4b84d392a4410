"""Validation of user input for the algebra: integers, tuples of integers and coefficients.

Nothing here parses text.  Coefficients are numbers or SymPy expressions; a ``str`` is refused (it
would have to be ``sympify``-ed, which evaluates code), and floats are turned into the exact rational
that their shortest decimal representation names (``0.25`` becomes ``1/4``, ``0.1`` becomes ``1/10``),
so that identities between numeric taps are decided exactly.
"""

from __future__ import annotations

import numbers
from fractions import Fraction
from typing import Any, Sequence

import sympy as sp

from ..errors import SymdeconvError

__all__ = ["as_int", "as_positive_int", "as_int_tuple", "as_positive_tuple", "as_coeff", "is_zero"]


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    if isinstance(value, sp.Integer):
        return True
    return False


def as_int(value: Any, name: str) -> int:
    """``value`` as a Python int, or :class:`SymdeconvError` naming ``name``."""
    if not _is_integral(value):
        raise SymdeconvError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def as_positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, or :class:`SymdeconvError` naming ``name`` and the rule."""
    k = as_int(value, name)
    if k <= 0:
        raise SymdeconvError(f"{name} must be a positive integer (>= 1), got {k}")
    return k


def as_int_tuple(value: Any, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """An int or a sequence of ints as a tuple; an int is broadcast to ``ndim`` entries."""
    if _is_integral(value):
        return (int(value),) * (ndim if ndim is not None else 1)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise SymdeconvError(f"{name} must be an integer or a tuple of integers, got {value!r}")
    out = tuple(as_int(v, f"{name}[{i}]") for i, v in enumerate(value))
    if not out:
        raise SymdeconvError(f"{name} must have at least one entry (one per spatial dimension)")
    if ndim is not None and len(out) != ndim:
        raise SymdeconvError(f"{name} has {len(out)} entries but the operator has {ndim} spatial dimensions")
    return out


def as_positive_tuple(value: Any, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """Like :func:`as_int_tuple`, every entry >= 1."""
    out = as_int_tuple(value, name, ndim)
    for i, v in enumerate(out):
        if v <= 0:
            where = name if len(out) == 1 else f"{name}[{i}]"
            raise SymdeconvError(f"{where} must be a positive integer (>= 1), got {v}")
    return out


def as_coeff(value: Any, name: str = "coefficient") -> sp.Expr:
    """A number or SymPy expression as an exact SymPy coefficient; text is never parsed."""
    if isinstance(value, sp.Basic):
        if not isinstance(value, sp.Expr):
            raise SymdeconvError(f"{name} must be a scalar SymPy expression, got {type(value).__name__}")
        if isinstance(value, sp.Float):
            return sp.Rational(repr(float(value)))
        return value
    if isinstance(value, bool):
        raise SymdeconvError(f"{name} must be a number or a SymPy expression, got the bool {value!r}")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, numbers.Real):
        f = float(value)
        if f != f or f in (float("inf"), float("-inf")):
            raise SymdeconvError(f"{name} must be finite, got {f}")
        return sp.Rational(repr(f))
    if isinstance(value, numbers.Complex):
        c = complex(value)
        return sp.Rational(repr(c.real)) + sp.I * sp.Rational(repr(c.imag))
    if isinstance(value, (str, bytes)):
        raise SymdeconvError(
            f"{name} must be a number or a SymPy expression, got the string {value!r}; "
            "text is never parsed here: use sd.taps('q', n) for symbolic taps"
        )
    raise SymdeconvError(f"{name} must be a number or a SymPy expression, got {type(value).__name__}")


def is_zero(expr: sp.Expr) -> bool:
    """True only when ``expr`` is provably zero after expansion (symbols are never assumed zero)."""
    return sp.expand(expr) == 0
