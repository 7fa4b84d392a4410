"""Generated CPU kernels against PyTorch (oneDNN) and SciPy, measured in ONE process.

Run with ``make bench`` (or ``python benchmarks/bench_kernels.py [--quick] [--cases a,b] [--repeats 11]``).

Method (see benchmarks/README.md):
- thread pools that busy-wait distort ratios 2–10× on 2 cores, so ``OMP_WAIT_POLICY=PASSIVE`` and
  ``OPENBLAS_THREAD_TIMEOUT=4`` are set (and printed) before NumPy / PyTorch are imported;
- every case is run at 1 and 2 threads (``torch.set_num_threads``, ``numba.set_num_threads``);
- each output is checked against the competitor's before any timing;
- after warm-up, the two competitors are timed interleaved, each of symdeconv's two calls (``out=`` and
  allocating) right after a competitor call (T O T A T O T A …: neither of ours runs on caches the other
  just warmed), medians of ``--repeats`` runs (the competitor's over both of its calls per repeat);
- useful GFLOP/s counts 2 flops per multiply-add by a real kernel tap (never by an inserted zero);
- symdeconv's layer kernels write into a preallocated output reused across calls (``out=``), as an
  inference loop would: the output of the first call (which symdeconv allocates on a 64-byte line,
  as torch's allocator does, so that its rows can be written with streaming stores); torch's ``conv_transpose*d`` / ``conv*d`` have no ``out=`` and allocate their
  output every call (whether glibc's ``malloc`` hands it recycled memory or fresh pages is what
  ``--allocator`` below is about);
- ``--allocator reuse`` runs the same measurement in a process whose glibc ``malloc`` keeps freed
  memory for reuse (``GLIBC_TUNABLES`` below; the script re-executes itself with it set, because the
  dynamic loader reads it at start-up).  With glibc's defaults, large blocks are mapped afresh and
  returned to the kernel on most calls, and torch's temporaries (e.g. a 64 MB column buffer for case a)
  are page-faulted in again every call; whether that happens depends on the heap's history, so torch's
  time for one case can differ 2–3× between two default runs (case a: 7.1 or 18–21 ms).  ``reuse``
  shows every competitor at its page-fault-free best (what a long-running process with a caching
  allocator such as jemalloc sees);
- the machine's own limits (float32 FMA peak, fill and copy bandwidth; ``benchmarks/_machine.py``) are
  measured in the same process and printed above the table, so that GFLOP/s can be read against the
  machine they were measured on;
- ``--isa avx2`` measures what an AVX2-only machine would show, on an AVX-512 CPU: the script re-executes
  itself with Numba generating AVX2 code (``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+avx2,+fma``) and
  PyTorch restricted to AVX2 as well (``ATEN_CPU_CAPABILITY=avx2`` for ATen, ``ONEDNN_MAX_CPU_ISA=AVX2``
  for oneDNN, ``MKL_ENABLE_INSTRUCTIONS=AVX2`` for MKL): both competitors then run the code they
  would run on such a machine.  The ISA torch reports is printed with the table;
- the table is printed and written as JSON to ``benchmarks/results/kernels.json``
  (``kernels_reuse.json`` with ``--allocator reuse``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

# glibc malloc settings of ``--allocator``: blocks up to 1 GiB come from the heap (not mmap), and freed
# memory up to 2 GiB stays in the process (no trimming), so a buffer freed by one call is reused by the next
ALLOCATORS = {
    "default": None,
    "reuse": "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483648",
}

# ``--isa``: the environment that makes every competitor generate or pick code of that ISA only
ISA_ENV = {
    "host": {},
    "avx2": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma", "ATEN_CPU_CAPABILITY": "avx2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import symdeconv as sd  # noqa: E402
from _machine import cpu_model, measure_machine  # noqa: E402  (benchmarks/_machine.py, beside this script)


@dataclass
class Case:
    key: str
    title: str
    competitor: str
    target_2t: float  # required ratio competitor / symdeconv at 2 threads
    target_1t: float | None
    build: Callable[[bool], tuple]  # quick -> (ours, theirs, useful_macs, ours allocating its output)


@dataclass
class Row:
    case: str
    title: str
    competitor: str
    threads: int
    ours_ms: float
    theirs_ms: float
    ratio: float
    ours_gflops: float
    theirs_gflops: float
    alloc_ms: float  # symdeconv called as users call it: f(x, w), its output new to the caller every call
    # (from symdeconv's pool of dropped outputs, as in a loop y = f(x, w); torch and SciPy allocate theirs)
    peak_fraction: float  # ours_gflops / the machine's FMA peak at these threads
    target: float | None
    met: bool | None
    max_rel_err: float


def _torch():
    import torch

    return torch


def conv_transpose_case(ndim: int, n: int, c_in: int, c_out: int, groups: int, size: int, quick: bool):
    torch = _torch()
    if quick:
        size = max(4, size // 8)
    k, s, p = 4, 2, 1
    layer = sd.ConvTranspose((k,) * ndim, stride=s, padding=p, groups=groups, in_channels=c_in, out_channels=c_out)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in) + (size,) * ndim, dtype=np.float32)
    w = rng.standard_normal((c_in, c_out // groups) + (k,) * ndim, dtype=np.float32)
    kernel = sd.compile(layer, target="cpu")
    fn = getattr(torch.nn.functional, f"conv_transpose{ndim}d")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    y = kernel(x, w)  # the first call's output (allocated on a 64-byte line), reused as out= below

    def ours():
        return kernel(x, w, out=y)  # preallocated output, reused

    def theirs():
        return fn(tx, tw, stride=s, padding=p, groups=groups).numpy()

    macs = n * c_in * (c_out // groups) * k**ndim * size**ndim
    return ours, theirs, macs, lambda: kernel(x, w)


def conv_case(n: int, c: int, size: int, quick: bool):
    torch = _torch()
    if quick:
        size = max(8, size // 8)
    k, s, p = 3, 2, 1
    layer = sd.Conv((k, k), stride=s, padding=p, in_channels=c, out_channels=c)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((c, c, k, k), dtype=np.float32)
    kernel = sd.compile(layer, target="cpu")
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    out = (size + 2 * p - k) // s + 1
    y = kernel(x, w)  # the first call's output (allocated on a 64-byte line), reused as out= below
    assert y.shape == (n, c, out, out)

    def ours():
        return kernel(x, w, out=y)  # preallocated output, reused

    def theirs():
        return torch.nn.functional.conv2d(tx, tw, stride=s, padding=p).numpy()

    return ours, theirs, n * c * c * k * k * out * out, lambda: kernel(x, w)


def resampler_case(up: int, down: int, taps: int, length: int, quick: bool):
    from scipy import signal

    if quick:
        length //= 100
    rng = np.random.default_rng(2)
    h = rng.standard_normal(taps)
    x = rng.standard_normal(length)
    op = sd.upfirdn(sd.taps("h", taps), up, down)
    kernel = sd.compile(op, target="cpu")
    n_out = ((length - 1) * up + taps - 1) // down + 1

    def ours():
        return kernel(x, h)[:n_out]

    def theirs():
        return signal.upfirdn(h, x, up, down)

    return ours, theirs, n_out * taps / up, ours


CASES = [
    Case("a", "ConvTranspose2d k4 s2 p1, N1, 1→1, 1024²", "torch conv_transpose2d", 8.0, None,
         lambda q: conv_transpose_case(2, 1, 1, 1, 1, 1024, q)),
    Case("b", "ConvTranspose2d k4 s2 p1, N8, 64→64, 64²", "torch conv_transpose2d", 2.0, None,
         lambda q: conv_transpose_case(2, 8, 64, 64, 1, 64, q)),
    Case("c", "ConvTranspose2d k4 s2 p1, N8, 64 ch depthwise, 64²", "torch conv_transpose2d", 7.0, None,
         lambda q: conv_transpose_case(2, 8, 64, 64, 64, 64, q)),
    Case("d", "ConvTranspose2d k4 s2 p1, N1, 256→128, 32²", "torch conv_transpose2d", 0.9, None,
         lambda q: conv_transpose_case(2, 1, 256, 128, 1, 32, q)),
    Case("e", "ConvTranspose3d k4 s2 p1, N1, 16→16, 32³", "torch conv_transpose3d", 2.0, None,
         lambda q: conv_transpose_case(3, 1, 16, 16, 1, 32, q)),
    Case("f", "resampler ↑4, 32 taps, 4·10⁶ samples, float64", "scipy.signal.upfirdn", 4.0, 2.5,
         lambda q: resampler_case(4, 1, 32, 4_000_000, q)),
    Case("g", "resampler ↑3 ↓2, 32 taps, 4·10⁶ samples, float64", "scipy.signal.upfirdn", 1.5, 1.0,
         lambda q: resampler_case(3, 2, 32, 4_000_000, q)),
    Case("h", "Conv2d k3 s2 p1, N8, 64→64, 128²", "torch conv2d", 1.0, None,
         lambda q: conv_case(8, 64, 128, q)),
]


def _set_threads(n: int) -> None:
    import numba

    numba.set_num_threads(n)
    try:
        _torch().set_num_threads(n)
    except ImportError:
        pass


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(case: Case, threads: int, repeats: int, quick: bool, peak: float) -> Row:
    _set_threads(threads)
    ours, theirs, macs, alloc = case.build(quick)
    from symdeconv.codegen.rt_driver import runtime_calls

    for _ in range(runtime_calls()):  # (a one-channel layer's first calls run on the shared runtime)
        ours()
    a, b = ours(), theirs()  # warm-up (and compile) + correctness check of the timed kernel
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise SystemExit(f"case {case.key}: shape {a.shape} != competitor's {b.shape}")
    scale = float(np.max(np.abs(b))) or 1.0
    err = float(np.max(np.abs(a - b))) / scale
    tol = 1e-4 if a.dtype == np.float32 else 1e-10
    if not err <= tol:  # (a NaN error fails too)
        raise SystemExit(f"case {case.key}: output differs from the competitor's (max rel err {err:.2e})")
    for _ in range(2):
        ours(), theirs()
    t_ours, t_theirs, t_alloc = [], [], []
    for _ in range(repeats):  # interleaved, each of ours after the competitor: T O T A T O T A ...
        t_theirs.append(_time(theirs))
        t_ours.append(_time(ours))
        t_theirs.append(_time(theirs))
        t_alloc.append(_time(alloc))
    mo, mt = statistics.median(t_ours), statistics.median(t_theirs)
    target = case.target_2t if threads == 2 else case.target_1t
    ratio = mt / mo
    return Row(
        case.key, case.title, case.competitor, threads, mo * 1e3, mt * 1e3, ratio,
        2 * macs / mo / 1e9, 2 * macs / mt / 1e9, statistics.median(t_alloc) * 1e3, 2 * macs / mo / 1e9 / peak,
        target, None if target is None else ratio >= target, err,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not a measurement)")
    parser.add_argument("--cases", default="abcdefgh", help="which cases, e.g. 'abf'")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--allocator", choices=sorted(ALLOCATORS), default="default",
                        help="'reuse': glibc malloc keeps freed memory (every competitor without page faults)")
    parser.add_argument("--isa", choices=sorted(ISA_ENV), default="host",
                        help="'avx2': symdeconv and torch both restricted to AVX2 code (an AVX2 machine's view)")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/kernels[_reuse][_avx2].json)")
    args = parser.parse_args(argv)
    tunables = ALLOCATORS[args.allocator]
    wanted = dict(ISA_ENV[args.isa], **({} if tunables is None else {"GLIBC_TUNABLES": tunables}))
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        # the dynamic loader reads GLIBC_TUNABLES at start-up, and Numba, ATen and oneDNN read their ISA
        # settings at import: run again with them set
        env = dict(os.environ, **wanted)
        script = [sys.executable, str(Path(__file__).resolve())]
        os.execve(sys.executable, script + (sys.argv[1:] if argv is None else list(argv)), env)
    suffix = ("" if args.allocator == "default" else f"_{args.allocator}") + ("" if args.isa == "host" else f"_{args.isa}")
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"kernels{suffix}.json")

    print(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} OPENBLAS_THREAD_TIMEOUT={os.environ['OPENBLAS_THREAD_TIMEOUT']}")
    print(f"allocator: {args.allocator} (GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}); "
          f"isa: {args.isa} {ISA_ENV[args.isa] or ''}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model() or platform.processor() or platform.platform()}"
    try:
        torch = _torch()
        torch_version = f"{torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}, " \
                        f"oneDNN max ISA {os.environ.get('ONEDNN_MAX_CPU_ISA', 'host')})"
    except ImportError:
        torch_version = "not installed"
    from symdeconv.codegen.machine import host_machine

    isa = host_machine()
    machine += f"; ISA compiled for: {isa.isa} ({isa.vector_bits}-bit vectors, {isa.registers} registers, cpu {isa.cpu})"
    print(f"machine: {machine}; python {platform.python_version()}; torch {torch_version}; numpy {np.__version__}")
    thread_counts = [int(t) for t in args.threads.split(",")]
    limits = {t: measure_machine(t, quick=args.quick) for t in thread_counts}
    print(f"machine limits, measured now (best of {1 if args.quick else 5}): " + "; ".join(
        f"{t} thread{'s' if t > 1 else ''}: float32 FMA peak {m['fma_peak_gflops']:.0f} GFLOP/s, "
        f"fill {m['fill_gbs']:.0f} GB/s, copy {m['copy_gbs']:.0f} GB/s" for t, m in limits.items()))
    print(f"medians of {args.repeats} interleaved repeats after warm-up{' (QUICK: small sizes)' if args.quick else ''}")
    print("symdeconv layers write into a preallocated, reused output (out=); torch conv*d has no out= and allocates\n")

    rows: list[Row] = []
    header = (f"{'case':4} {'thr':>3} {'symdeconv ms':>13} {'competitor ms':>14} {'ratio':>7} {'f(x,w) ms':>10} "
              f"{'GF/s ours':>10} {'% peak':>7} {'GF/s them':>10} {'target':>7}  title")
    print(header)
    print("-" * len(header))
    for case in CASES:
        if case.key not in args.cases:
            continue
        for threads in thread_counts:
            try:
                row = measure(case, threads, args.repeats, args.quick, limits[threads]["fma_peak_gflops"])
            except ImportError as err:
                print(f"{case.key:4} skipped: {err}")
                break
            rows.append(row)
            target = "" if row.target is None else f"≥{row.target:g}" + (" ✓" if row.met else " ✗")
            print(
                f"{row.case:4} {row.threads:>3} {row.ours_ms:13.3f} {row.theirs_ms:14.3f} {row.ratio:7.2f} "
                f"{row.alloc_ms:10.3f} {row.ours_gflops:10.1f} {100 * row.peak_fraction:6.0f}% {row.theirs_gflops:10.1f} "
                f"{target:>7}  {row.title} vs {row.competitor}",
                flush=True,
            )
    # the shared machines this runs on lose whole seconds to their neighbours: the FMA peak is measured
    # again after the cases, and every row's fraction of peak is taken against the higher of the two
    for t in thread_counts:
        again = measure_machine(t, quick=args.quick)["fma_peak_gflops"]
        if again > limits[t]["fma_peak_gflops"]:
            limits[t]["fma_peak_gflops"] = again
    for row in rows:
        row.peak_fraction = row.ours_gflops / limits[row.threads]["fma_peak_gflops"]
    print("\nFMA peak, the higher of the measurements before and after the cases: " + "; ".join(
        f"{t} thread{'s' if t > 1 else ''} {limits[t]['fma_peak_gflops']:.0f} GFLOP/s" for t in thread_counts))
    print("% of that peak: " + ", ".join(f"{r.case}/{r.threads}t {100 * r.peak_fraction:.0f}%" for r in rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "torch": torch_version, "quick": args.quick,
                               "allocator": args.allocator, "isa": args.isa, "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
                               "machine_limits": {str(t): m for t, m in limits.items()},
                               "rows": [asdict(r) for r in rows]}, indent=1, ensure_ascii=False))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
