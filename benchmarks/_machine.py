"""The machine's own limits, measured in the benchmark's process: float32 FMA peak and memory bandwidth.

A ratio against PyTorch says which library is faster; these two figures say how far from the machine
either one is.  They are printed above the benchmark table (and stored in its JSON), because the
shared machines this project runs on differ: on the 2-core AMD EPYC (Zen 4, family 25 model 17) where
emitter 13 was benchmarked, a 512-bit FMA issues once per cycle, and the float32 peak measured here is
~230 GFLOP/s on 2 threads, not the ~490 of a core with two full-width FMA pipes.

- ``fma_peak``: independent accumulators of the ISA's float32 vectors, each updated by a fused
  multiply-add per step: no memory traffic, enough independent chains to hide the FMA latency of every
  FMA pipe.  Three loops, of 8, 16 and "all vector registers but four" accumulators (28 with AVX-512,
  12 with AVX2), and the fastest counts: which one is fastest differs between cores (a loop of 16 AVX2
  accumulators spills and measures ~40 % of the real peak).  The loops carry ``runtime.full_width``, as
  the layer kernels do: on Intel CPUs LLVM otherwise emits 256-bit code for an AVX-512 target, and on
  the 2-core Xeon measured in ``README.md`` the "peak" read 141 GFLOP/s, not 470.  2 flops per lane
  and FMA.
- ``fill_bandwidth`` / ``copy_bandwidth``: a parallel fill of, and copy between, 64 MB arrays (larger
  than the last-level cache).  Bytes counted are the array bytes written (fill) or read plus written
  (copy); a write that misses the cache also reads its line first, which is not counted.
"""

from __future__ import annotations

import time

import numba
import numpy as np
from numba import prange

from symdeconv.codegen.machine import host_machine
from symdeconv.codegen.runtime import full_width, stack_tile

_STEPS = 100_000  # FMA steps per work item
_BYTES = 64 << 20  # bandwidth arrays
_MACHINE = host_machine()


def _fma_loop_of(n_vectors: int):
    """A parallel loop of ``n_vectors`` float32 vectors of accumulators (compiled on first call)."""
    n_acc = n_vectors * _MACHINE.lanes(4)

    @numba.njit(parallel=True, fastmath={"contract"})
    def fma_loop(scale, out, steps):
        for item in prange(out.shape[0]):
            full_width()
            tile = stack_tile(out, 1, n_acc)  # accumulators kept in vector registers
            for m in range(n_acc):
                tile[0, m] = 0.0
            a = scale[item, 0]
            b = scale[item, 1]
            for _ in range(steps):
                for m in range(n_acc):
                    tile[0, m] = tile[0, m] * a + b
            for m in range(n_acc):
                out[item, m] = tile[0, m]

    return fma_loop, n_acc


#: the peak loops: 8, 16 and all vector registers but four (so that none spills)
_FMA_LOOPS = [_fma_loop_of(n) for n in sorted({8, 16, _MACHINE.registers - 4})]


@numba.njit(parallel=True, cache=True)
def _fill(dst, value):
    for i in prange(dst.shape[0]):
        dst[i] = value


@numba.njit(parallel=True, cache=True)
def _copy(dst, src):
    for i in prange(dst.shape[0]):
        dst[i] = src[i]


def _best(fn, repeats: int) -> float:
    fn()  # compile / load from cache, touch the pages
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers (from /proc/cpuinfo; "" where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break  # the first processor's entry is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return ""
    name = fields.get("model name", "")
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def measure_machine(threads: int, repeats: int = 5, quick: bool = False) -> dict[str, float]:
    """``{"fma_peak_gflops", "fill_gbs", "copy_gbs"}`` at ``threads`` Numba threads (best of ``repeats``).

    ``quick``: small sizes and one repeat (a smoke run of the code, not a measurement).  The machine's
    ISA (``isa``, ``vector_bits``) is returned with the figures.
    """
    steps, size = (_STEPS, _BYTES) if not quick else (_STEPS // 100, _BYTES // 64)
    repeats = repeats if not quick else 1
    numba.set_num_threads(threads)
    items = 4 * threads
    scale = np.full((items, 2), (0.5, 0.25), dtype=np.float32)  # x ← 0.5 x + 0.25 tends to 0.5: no overflow
    flops_per_s = 0.0
    for loop, n_acc in _FMA_LOOPS:
        out = np.empty((items, n_acc), dtype=np.float32)
        t_fma = _best(lambda: loop(scale, out, steps), repeats)
        flops_per_s = max(flops_per_s, items * steps * n_acc * 2 / t_fma)
    n = size // 4
    dst = np.empty(n, dtype=np.float32)
    src = np.ones(n, dtype=np.float32)
    t_fill = _best(lambda: _fill(dst, 1.0), repeats)
    t_copy = _best(lambda: _copy(dst, src), repeats)
    return {
        "fma_peak_gflops": flops_per_s / 1e9,
        "fill_gbs": size / t_fill / 1e9,
        "copy_gbs": 2 * size / t_copy / 1e9,
        "isa": _MACHINE.isa, "vector_bits": _MACHINE.vector_bits, "cpu": _MACHINE.cpu,
    }
