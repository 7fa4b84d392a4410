"""Assertions for users' own test suites (pytest or unittest)."""

from __future__ import annotations

from typing import Any

from .canonical.equivalence import equivalent

__all__ = ["assert_equivalent", "assert_not_equivalent"]


def assert_equivalent(a: Any, b: Any, msg: str | None = None) -> None:
    """Raise :class:`AssertionError` with a concrete counterexample unless ``a`` and ``b`` agree everywhere."""
    result = equivalent(a, b)
    if not result:
        prefix = f"{msg}: " if msg else ""
        raise AssertionError(f"{prefix}{a!r} and {b!r} are not equivalent.\n{result}")


def assert_not_equivalent(a: Any, b: Any, msg: str | None = None) -> None:
    """Raise :class:`AssertionError` if ``a`` and ``b`` agree on every input."""
    result = equivalent(a, b)
    if result:
        prefix = f"{msg}: " if msg else ""
        raise AssertionError(f"{prefix}{a!r} and {b!r} are equivalent for every input length.")
