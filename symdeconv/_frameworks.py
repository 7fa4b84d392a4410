"""Shared helpers of the framework-shaped constructors (:mod:`symdeconv.torch`, :mod:`symdeconv.keras`).

Nothing here imports a framework.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np

from .errors import SymdeconvError, context

__all__ = ["constructor", "check_spatial", "check_flag", "as_float_array"]


def constructor(fn: Callable, name: str, doc: str, hint: str, signature: inspect.Signature | None = None) -> Callable:
    """The public function ``name`` (with ``doc`` and ``signature``, default ``fn``'s) that binds its arguments
    to ``signature`` and calls ``fn`` with all of them by keyword (defaults applied).

    A call that does not fit the signature (a missing or extra argument, an unknown keyword) raises
    :class:`SymdeconvError` with Python's reason and ``hint`` instead of a bare ``TypeError``; every error is
    prefixed with ``name``.
    """
    signature = signature or inspect.signature(fn)

    def call(*args: Any, **kwargs: Any) -> Any:
        with context(name):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as err:
                raise SymdeconvError(f"{err} ({hint})") from None
            bound.apply_defaults()
            return fn(**bound.arguments)

    call.__name__ = call.__qualname__ = name.rsplit(".", 1)[-1]
    call.__doc__ = doc
    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


def check_spatial(n: int, where: str, **values: Any) -> None:
    """Each value must be an int (or string) or have exactly ``n`` entries, as the framework's ``{n}d`` layer says."""
    for key, v in values.items():
        if isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and len(v) != n:
            raise SymdeconvError(f"{key}={v!r}: {where} takes an int or {n} values (one per spatial dimension)")


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise SymdeconvError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_float_array(value: Any, name: str) -> np.ndarray:
    """A parameter as a NumPy copy in float32 or float64 (the dtypes compiled layers take); other floating
    dtypes (half precision, bfloat16) widen to float32, which is exact."""
    arr = np.array(value)
    if arr.dtype in (np.float32, np.float64):
        return arr
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        return arr.astype(np.float32)
    raise SymdeconvError(f"{name} has dtype {arr.dtype}: compiled layers compute in float32 or float64")
