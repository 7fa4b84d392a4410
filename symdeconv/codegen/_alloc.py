"""Output allocation for the CPU kernels (NumPy only: no Numba, so that the API can use it unimported)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LINE_BYTES", "SMALL_BYTES", "aligned_empty", "output_empty"]

#: cache line size (bytes): a streaming store of the emitted row writes covers one whole, aligned line
#: (:mod:`symdeconv.codegen.runtime`)
LINE_BYTES = 64

#: outputs smaller than this are allocated by plain ``np.empty``: only outputs of several MiB are written
#: with streaming stores, and for a small call the alignment bookkeeping costs more than it could save
SMALL_BYTES = 1 << 20


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts on a ``LINE_BYTES`` boundary.

    NumPy guarantees 16 bytes (a large array usually starts 16 bytes past a page boundary); a layer
    output that starts on a line, with rows a whole number of lines long, has every row written with
    streaming stores.  Pass such an array (or a previous call's output) as ``out=`` to keep that.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + LINE_BYTES, dtype=np.uint8)
    start = (-raw.__array_interface__["data"][0]) % LINE_BYTES
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def output_empty(shape, dtype) -> np.ndarray:
    """A kernel's new output: on a line when it is large enough to be streamed, else plain ``np.empty``."""
    dtype = np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < SMALL_BYTES:
        return np.empty(shape, dtype)
    return aligned_empty(shape, dtype)
