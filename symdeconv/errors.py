"""The one error type of symdeconv.

Every bad input that reaches a public function (a non-positive stride, empty taps, composing operators
of different shapes, output_padding not smaller than stride, malformed text on the CLI, ...) raises
:class:`SymdeconvError` with a message that names the parameter and the rule it breaks.  Internal
helpers raise it with the bare rule; the public entry points add context (which call, which layer) as
the error passes through them, in the manner of einops' ``EinopsError``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["SymdeconvError", "context", "in_context"]


class SymdeconvError(ValueError):
    """Raised for every invalid input to symdeconv; the message names the parameter and the rule.

    It derives from :class:`ValueError` so that generic ``except ValueError`` handlers keep working.
    """


@contextlib.contextmanager
def context(where: str) -> Iterator[None]:
    """Prefix the message of a :class:`SymdeconvError` raised inside the block with ``where``.

    >>> with context("sd.up"):  # doctest: +SKIP
    ...     raise SymdeconvError("k must be a positive integer")
    SymdeconvError: sd.up: k must be a positive integer
    """
    try:
        yield
    except SymdeconvError as err:
        raise in_context(err, where)


def in_context(err: SymdeconvError, where: str) -> SymdeconvError:
    """``err`` with its message prefixed by ``where`` (``err`` itself when it already is); what
    :func:`context` raises, for hot paths that catch the error themselves (no generator per call)."""
    message = str(err)
    if message.startswith(where + ":"):
        return err
    prefixed = SymdeconvError(f"{where}: {message}")
    prefixed.__cause__ = err.__cause__  # as ``raise … from err.__cause__``
    return prefixed
