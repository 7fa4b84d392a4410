"""Settings read from the environment (standard library only: the NumPy-only modules use it too)."""

from __future__ import annotations

import os

__all__ = ["whole_number"]


def whole_number(name: str, default: int, unit: str, note: str) -> int:
    """The environment variable ``name`` as a whole number of ``unit``, or ``default`` when it is unset or
    empty; any other text is a SymdeconvError naming the variable (``note``: what its values mean)."""
    text = os.environ.get(name) or None
    if text is None:
        return default
    if not text.strip().isdecimal():
        from ..errors import SymdeconvError

        raise SymdeconvError(f"{name} must be a whole number of {unit} ({note}), got {text!r}")
    return int(text)
