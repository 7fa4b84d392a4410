"""symdeconv.signal.upfirdn / resample_poly against scipy.signal, measured in ONE run.

Run with ``make bench`` (or ``python benchmarks/bench_signal.py [--quick] [--repeats 11] [--threads 1,2]``).

Method (see benchmarks/README.md):
- ``OMP_WAIT_POLICY=PASSIVE`` is set before NumPy and Numba are imported (as in the other scripts);
- **first call**: each in a new Python process, from the call to its result, after importing NumPy,
  symdeconv and SciPy: symdeconv with empty caches (``SYMDECONV_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` point
  at fresh folders: SymPy plan, emitting, Numba compiling the kernel) and again with the caches that
  run filled (Numba loads the machine code), SciPy in a new process too;
- **warm calls**: every output is checked against SciPy's first; then, after warm-up, the two are timed
  interleaved (A B A B …), medians of ``--repeats`` runs, a run of a small case being the mean of a loop
  of calls; symdeconv at each of ``--threads`` (``numba.set_num_threads``: calls below
  ``symdeconv.signal.SERIAL_WORK`` multiply-adds run on one thread anyway), SciPy on its one thread;
- ratio = SciPy's time / symdeconv's time (above 1: symdeconv is faster); the table is printed and
  written as JSON to ``benchmarks/results/signal.json``.

The numbers are indicative on a shared machine: other processes' load changes both sides' times.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's symdeconv

import numpy as np  # noqa: E402

import symdeconv as sd  # noqa: E402


@dataclass
class Case:
    """One measurement: ``call`` of symdeconv.signal and of scipy.signal on the same random ``x``."""

    key: str
    call: str  # "upfirdn" or "resample_poly"
    title: str
    shape: tuple[int, ...]
    dtype: str
    axis: int
    up: int = 3
    down: int = 2
    taps: int = 33  # upfirdn's filter length (resample_poly designs its own)


CASES = [
    Case("a", "upfirdn", "upfirdn ↑3 ↓2, 33 taps, 10³ samples", (1000,), "float64", -1),
    Case("b", "upfirdn", "upfirdn ↑3 ↓2, 33 taps, 10⁶ samples", (10**6,), "float64", -1),
    Case("c", "upfirdn", "upfirdn ↑3 ↓2, 33 taps, 10⁶ samples", (10**6,), "float32", -1),
    Case("d", "upfirdn", "upfirdn ↑3 ↓2, 33 taps, 10⁶ samples", (10**6,), "complex128", -1),
    Case("e", "upfirdn", "upfirdn ↑3 ↓2, 33 taps, batched 64 × 16384", (64, 16384), "float32", -1),
    Case("f", "resample_poly", "resample_poly 3/2, 10³ samples", (1000,), "float64", 0),
    Case("g", "resample_poly", "resample_poly 3/2, 10⁶ samples", (10**6,), "float64", 0),
    Case("h", "resample_poly", "resample_poly 3/2, batched 16384 × 64, axis 0", (16384, 64), "float64", 0),
    Case("i", "resample_poly", "resample_poly 2/7, 10⁶ samples, padtype='line'", (10**6,), "float32", 0, 2, 7),
]


@dataclass
class Row:
    case: str
    title: str
    dtype: str
    threads: int
    symdeconv_ms: float
    scipy_ms: float
    ratio: float


def _functions(case: Case, quick: bool):
    from scipy import signal

    rng = np.random.default_rng(0)
    shape = tuple(max(1, s // 100) if quick and s >= 10**4 else s for s in case.shape)
    dtype = np.dtype(case.dtype)
    x = rng.standard_normal(shape)
    if dtype.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    x = x.astype(dtype)
    if case.call == "upfirdn":
        h = rng.standard_normal(case.taps)
        return (lambda: sd.signal.upfirdn(h, x, case.up, case.down, axis=case.axis),
                lambda: signal.upfirdn(h, x, case.up, case.down, axis=case.axis))
    padtype = "line" if case.key == "i" else "constant"
    return (lambda: sd.signal.resample_poly(x, case.up, case.down, axis=case.axis, padtype=padtype),
            lambda: signal.resample_poly(x, case.up, case.down, axis=case.axis, padtype=padtype))


def _timed(f: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        f()
    return (time.perf_counter() - start) / loops


def measure(case: Case, threads: int, repeats: int, quick: bool) -> Row:
    import numba

    from symdeconv.codegen.rt_driver import runtime_calls

    RUNTIME_CALLS = runtime_calls()  # noqa: N806

    ours, theirs = _functions(case, quick)
    numba.set_num_threads(threads)
    try:
        for _ in range(RUNTIME_CALLS):  # (a filter structure's own chain kernel runs from its third call)
            ours()
        y, ref = ours(), theirs()  # (also the warm-up; compiles the kernel on first use)
        if y.shape != ref.shape or y.dtype != ref.dtype:
            raise RuntimeError(f"case {case.key}: {y.shape} {y.dtype} vs SciPy's {ref.shape} {ref.dtype}")
        tol = 1e-4 if y.dtype in (np.float32, np.complex64) else 1e-10
        if not np.allclose(y, ref, rtol=tol, atol=tol * float(np.abs(ref).max())):
            raise RuntimeError(f"case {case.key}: symdeconv and SciPy differ by {np.abs(y - ref).max()}")
        loops = max(1, int(2e-3 / max(_timed(theirs, 1), 1e-7)))  # small calls: loops of ~2 ms
        a, b = [], []
        for _ in range(repeats):
            a.append(_timed(ours, loops))
            b.append(_timed(theirs, loops))
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    ours_ms, theirs_ms = 1e3 * statistics.median(a), 1e3 * statistics.median(b)
    return Row(case.key, case.title, case.dtype, threads, ours_ms, theirs_ms, theirs_ms / ours_ms)


# --- first call, in new processes ---------------------------------------------------------------------------

_CHILD = r"""
import sys, time, json
import numpy as np
import scipy.signal
import symdeconv as sd
x = np.random.default_rng(0).standard_normal(1000)
h = np.random.default_rng(1).standard_normal(33)
f = {{"upfirdn": lambda: {lib}.upfirdn(h, x, 3, 2), "resample_poly": lambda: {lib}.resample_poly(x, 3, 2)}}["{call}"]
start = time.perf_counter()
f()
print(json.dumps(time.perf_counter() - start))
"""


def first_call(call: str, lib: str, env: dict) -> float:
    code = _CHILD.format(call=call, lib=lib)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return float(json.loads(proc.stdout.strip().splitlines()[-1]))


def first_calls() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SYMDECONV_CACHE_DIR=str(Path(tmp) / "symdeconv"), NUMBA_CACHE_DIR=str(Path(tmp) / "numba"))
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        for call in ("upfirdn", "resample_poly"):
            cold = first_call(call, "sd.signal", env)  # float64 kernel compiled
            disk = first_call(call, "sd.signal", env)  # from the caches the cold run filled
            scipy_s = first_call(call, "scipy.signal", env)
            rows.append(dict(call=call, cold_s=cold, disk_cache_s=disk, scipy_s=scipy_s))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not a measurement)")
    parser.add_argument("--cases", default="".join(c.key for c in CASES), help="which cases, e.g. 'abf'")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-first-call", action="store_true", help="skip the new-process first-call timings")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "signal.json"))
    args = parser.parse_args(argv)
    import numba
    import scipy

    print(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; numpy "
          f"{np.__version__}; scipy {scipy.__version__}; numba {numba.__version__} (threading layer default, "
          f"{numba.config.NUMBA_NUM_THREADS} threads)")
    print("indicative: a shared machine; ratio = SciPy time / symdeconv time (> 1: symdeconv faster)\n")

    first = [] if args.no_first_call else first_calls()
    for r in first:
        print(f"first call, new process, {r['call']} ↑3 ↓2 on 10³ float64 samples: symdeconv {r['cold_s']:.2f} s with "
              f"empty caches (compiling), {r['disk_cache_s']:.3f} s from the disk cache; SciPy {1e3 * r['scipy_s']:.2f} ms"
              f" — ratio {r['scipy_s'] / r['cold_s']:.1e} / {r['scipy_s'] / r['disk_cache_s']:.1e}")
    if first:
        print()

    rows: list[Row] = []
    header = f"{'case':4} {'dtype':>10} {'thr':>3} {'symdeconv ms':>13} {'scipy ms':>10} {'ratio':>7}  title"
    print(header)
    print("-" * len(header))
    for case in CASES:
        if case.key not in args.cases:
            continue
        for threads in (int(t) for t in args.threads.split(",")):
            row = measure(case, threads, args.repeats, args.quick)
            rows.append(row)
            print(f"{row.case:4} {row.dtype:>10} {row.threads:>3} {row.symdeconv_ms:13.4f} {row.scipy_ms:10.4f} "
                  f"{row.ratio:7.2f}  {row.title}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"first_call": first, "rows": [asdict(r) for r in rows], "quick": args.quick}, indent=1))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
