"""Output allocation for the CPU kernels (NumPy only: no Numba, so that the API can use it unimported)."""

from __future__ import annotations

import numpy as np

__all__ = ["LINE_BYTES", "aligned_empty"]

#: cache line size (bytes): a streaming store of the emitted row writes covers one whole, aligned line
#: (:mod:`symdeconv.codegen.runtime`)
LINE_BYTES = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts on a ``LINE_BYTES`` boundary.

    NumPy guarantees 16 bytes (a large array usually starts 16 bytes past a page boundary); a layer
    output that starts on a line, with rows a whole number of lines long, has every row written with
    streaming stores.  Pass such an array (or a previous call's output) as ``out=`` to keep that.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count * dtype.itemsize + LINE_BYTES, dtype=np.uint8)
    start = (-raw.ctypes.data) % LINE_BYTES
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)
