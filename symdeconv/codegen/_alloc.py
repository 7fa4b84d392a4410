"""Output allocation for the CPU kernels (NumPy only: no Numba, so that the API can use it unimported).

A large new output comes from :data:`OUTPUT_POOL`: memory of outputs that their callers have dropped is
kept and handed out again, so that ``y = f(x, w)`` in a loop does not page-fault a fresh output every
call: faulting in a freshly mapped output of several MB can take longer than a streaming kernel takes to
write it (measured in ``benchmarks/README.md``).
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from ._env import whole_number

__all__ = ["LINE_BYTES", "SMALL_BYTES", "OUTPUT_POOL", "OutputPool", "aligned_empty", "empty_output_pool",
           "output_empty", "pool_limit_bytes"]

#: cache line size (bytes): a streaming store of the emitted row writes covers one whole, aligned line
#: (:mod:`symdeconv.codegen.runtime`)
LINE_BYTES = 64

#: outputs smaller than this are allocated by plain ``np.empty``: only outputs of several MiB are written
#: with streaming stores, and for a small call the alignment bookkeeping costs more than it could save
#: (malloc recycles small blocks itself)
SMALL_BYTES = 1 << 20

#: the environment variable that sets the pool's limit in MiB (0: no pool)
POOL_ENV = "SYMDECONV_OUTPUT_POOL_MB"

#: MiB of dropped outputs the pool keeps by default
POOL_MB = 256

#: buffers tracked at most (each allocation looks through them)
POOL_ENTRIES = 32


def _count(shape) -> int:
    """Elements of an array of ``shape`` (a tuple or one int, as ``np.empty`` takes it)."""
    return math.prod(shape) if isinstance(shape, tuple) else int(np.prod(shape, dtype=np.int64))


def _raw_line_view(raw: np.ndarray, shape, dtype: np.dtype) -> np.ndarray:
    """The array of ``shape`` and ``dtype`` that starts at the first 64-byte line of the byte buffer ``raw``."""
    nbytes = _count(shape) * dtype.itemsize
    start = (-raw.__array_interface__["data"][0]) % LINE_BYTES
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts on a ``LINE_BYTES`` boundary.

    NumPy guarantees 16 bytes (a large array usually starts 16 bytes past a page boundary); a layer
    output that starts on a line, with rows a whole number of lines long, has every row written with
    streaming stores.  Pass such an array (or a previous call's output) as ``out=`` to keep that.
    """
    dtype = np.dtype(dtype)
    raw = np.empty(_count(shape) * dtype.itemsize + LINE_BYTES, dtype=np.uint8)
    return _raw_line_view(raw, shape, dtype)


def pool_limit_bytes() -> int:
    """The most bytes of buffers :data:`OUTPUT_POOL` keeps track of: ``SYMDECONV_OUTPUT_POOL_MB`` MiB when set
    (and not empty), else ``POOL_MB``; 0 turns the pool off."""
    return whole_number(POOL_ENV, POOL_MB, "MiB", "0 turns the pool off") << 20


def _refs(entries: list, i: int) -> int:
    """``sys.getrefcount`` of ``entries[i]`` (the one expression the pool and its calibration both use)."""
    return sys.getrefcount(entries[i])


def _calibrate() -> int:
    """What :func:`_refs` gives for a buffer that nothing but its list refers to, or 0 (no pool) when this
    interpreter does not count one more for a buffer with a view of it and as many again without."""
    entries = [np.empty(LINE_BYTES, np.uint8)]
    alone = _refs(entries, 0)
    view = entries[0][1:].view(np.uint8)
    held = _refs(entries, 0)
    del view
    return alone if held == alone + 1 and _refs(entries, 0) == alone else 0


class OutputPool:
    """Byte buffers of large outputs, reused once no array refers to them any more.

    Every output handed out is a view of one of the pool's buffers, and NumPy makes that buffer the ``base``
    of every array derived from it (views, ``np.asarray``; a memoryview or a tensor made by
    ``torch.from_numpy`` holds such an array), so a buffer whose only reference is the pool's own holds nothing
    a caller can still reach: it is *idle*, and the next output of its size gets it.  The buffers the pool
    tracks, idle or in use, add up to at most :func:`pool_limit_bytes` and ``POOL_ENTRIES`` buffers after each
    output it hands out: past that it releases idle buffers and forgets outputs in use (their callers' arrays
    free them), oldest first.  So the memory it keeps for later never exceeds the limit.  :meth:`clear`
    releases every idle buffer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[np.ndarray] = []  # least recently handed out first

    def _idle(self, i: int) -> bool:
        return _refs(self._entries, i) == _HELD_ONLY

    def empty(self, shape, dtype) -> np.ndarray:
        """A new C-contiguous array of ``shape`` and ``dtype`` on a 64-byte line, its values undefined."""
        dtype = np.dtype(dtype)
        limit = pool_limit_bytes() if _HELD_ONLY else 0
        size = _count(shape) * dtype.itemsize + LINE_BYTES
        with self._lock:
            if size > limit:  # (a pool turned off, or an output larger than it may keep)
                self._trim(limit)
                return aligned_empty(shape, dtype)
            entries = self._entries
            for i in range(len(entries) - 1, -1, -1):
                if entries[i].nbytes == size and self._idle(i):
                    raw = entries.pop(i)
                    break
            else:
                raw = np.empty(size, dtype=np.uint8)
            entries.append(raw)
            out = _raw_line_view(raw, shape, dtype)
            del raw  # (the view holds it now)
            self._trim(limit)
        return out

    def _trim(self, limit: int) -> None:
        """Stop tracking the oldest buffers (releasing the idle ones) until the rest add up to at most ``limit``
        bytes and ``POOL_ENTRIES`` buffers."""
        entries = self._entries
        total = sum(e.nbytes for e in entries)
        keep_from = 0
        while keep_from < len(entries) and (total > limit or len(entries) - keep_from > POOL_ENTRIES):
            total -= entries[keep_from].nbytes
            keep_from += 1
        if keep_from:
            self._entries = entries[keep_from:]

    def idle_bytes(self) -> int:
        """Bytes of the buffers no array refers to (what :meth:`clear` would release)."""
        with self._lock:
            return sum(self._entries[i].nbytes for i in range(len(self._entries)) if self._idle(i))

    def clear(self) -> int:
        """Release every idle buffer (outputs still in use stay their callers'); return the bytes released."""
        with self._lock:
            entries = self._entries
            idle = {i for i in range(len(entries)) if self._idle(i)}
            released = sum(entries[i].nbytes for i in idle)
            self._entries = [e for i, e in enumerate(entries) if i not in idle]
        return released

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # (a fork while another thread held it would leave it held in the child)


_HELD_ONLY = _calibrate()

#: the process's pool of large outputs (:func:`output_empty`)
OUTPUT_POOL = OutputPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=OUTPUT_POOL._after_fork)


def output_empty(shape, dtype) -> np.ndarray:
    """A kernel's new output: plain ``np.empty`` when small, else from :data:`OUTPUT_POOL` (on a 64-byte line)."""
    dtype = np.dtype(dtype)
    if _count(shape) * dtype.itemsize < SMALL_BYTES:
        return np.empty(shape, dtype)
    return OUTPUT_POOL.empty(shape, dtype)


def empty_output_pool() -> int:
    """Release the memory that symdeconv keeps of large outputs its callers have dropped (``sd.compile``'d
    functions reuse it for their next outputs); return the bytes released.  Outputs still in use are not
    touched.  ``SYMDECONV_OUTPUT_POOL_MB`` limits what is kept (256 MiB by default; 0: nothing)."""
    return OUTPUT_POOL.clear()
