"""What a user waits for: the first result of a new layer, calls from the disk cache, and small calls.

Run with ``make bench`` (or ``python benchmarks/bench_latency.py [--quick]``).  Every "first result" is
measured in a new Python process, from ``sd.compile(layer)`` to the first returned array (SymPy plan,
emitting the module, Numba compiling the runtime or its object files loading, the call), after
``import symdeconv`` and NumPy:

- **first use on a machine**: empty symdeconv and Numba caches (``SYMDECONV_CACHE_DIR``,
  ``NUMBA_CACHE_DIR`` point at fresh folders): one layer, float32 then float64;
- **a new layer**: the caches hold what another layer built (the shared runtime), then a layer never
  compiled before, float32 then float64, each in its own new process;
- **the same layer again** in a new process: everything from the disk cache;
- **small warm calls**, batch 1, at 1 and 2 threads: symdeconv ``f(x, w)`` (allocating its output, as
  a user calls it) against ``torch.nn.functional`` in the same process, interleaved, medians.

The table is printed and written as JSON to ``benchmarks/results/latency.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from symdeconv.codegen.rt_driver import RUNTIME_CALLS, runtime_calls  # noqa: E402

# (label, constructor source): layers not in generated/ — a user's own configurations
NEW_LAYERS = [
    ("ConvTranspose2d k3 s2 p1 op1, 8→8",
     "sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=8, out_channels=8)", (1, 8, 16, 16)),
    ("ConvTranspose1d k5 s3 p2 groups 2, 2→6",
     "sd.ConvTranspose(5, stride=3, padding=2, groups=2, in_channels=2, out_channels=6)", (1, 2, 64)),
    ("Conv2d k3 s2 p1, 16→8", "sd.Conv((3, 3), stride=2, padding=1, in_channels=16, out_channels=8)",
     (1, 16, 16, 16)),
    ("ConvTranspose3d k2 s2, 4→4", "sd.ConvTranspose((2, 2, 2), stride=2, padding=0, in_channels=4, out_channels=4)",
     (1, 4, 6, 6, 6)),
    ("ConvTranspose2d k5 s3 p2 depthwise, 8 ch",
     "sd.ConvTranspose((5, 5), stride=3, padding=2, groups=8, in_channels=8, out_channels=8)", (1, 8, 16, 16)),
]
# built first in the "new layer" measurement, so that the shared runtime is in the caches
PRIMER = ("ConvTranspose1d k4 s2 p1, 8→8", "sd.ConvTranspose(4, stride=2, padding=1, in_channels=8, out_channels=8)",
          (1, 8, 64))

_CHILD = r"""
import sys, time, json
import numpy as np
import symdeconv as sd
layer = {ctor}
rng = np.random.default_rng(0)
out = {{}}
for dtype in {dtypes}:
    x = rng.standard_normal({shape}).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    start = time.perf_counter()
    f = sd.compile(layer)
    f(x, w)
    out[np.dtype(dtype).name] = time.perf_counter() - start
    for call in range(2, {calls} + 1):  # (a one-channel layer compiles its stencil at its third call)
        start = time.perf_counter()
        f(x, w)
        out[f"{{np.dtype(dtype).name}} call {{call}}"] = time.perf_counter() - start
print(json.dumps(out))
"""


def _first_result(ctor: str, shape, dtypes: str, env: dict, calls: int = 1) -> dict[str, float]:
    """Seconds from sd.compile to the first result, per dtype, in a new process with ``env`` (and of each
    later call up to ``calls``)."""
    code = _CHILD.format(ctor=ctor, shape=tuple(shape), dtypes=dtypes, calls=calls)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["SYMDECONV_CACHE_DIR"] = str(cache / "symdeconv")
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SYMDECONV_RUNTIME_CALLS", None)  # (the default, RUNTIME_CALLS, as the rows say)
    return env


def compile_latency(quick: bool) -> list[dict]:
    rows = []
    both = "(np.float32, np.float64)"
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(Path(tmp))
        label, ctor, shape = PRIMER
        t = _first_result(ctor, shape, both, env)
        rows.append({"what": "first use on a machine (empty caches)", "layer": label, **t,
                     "total": sum(t.values()), "target": "≤ 30 s (both dtypes)"})
        layers = NEW_LAYERS[:1] if quick else NEW_LAYERS
        for label, ctor, shape in layers:
            # a one-channel-per-group layer runs on the shared runtime for its first calls and compiles its
            # own stencil at call RUNTIME_CALLS + 1 (the third): that call is measured too
            calls = RUNTIME_CALLS + 1 if "depthwise" in label else 1
            t32 = _first_result(ctor, shape, "(np.float32,)", env, calls)
            t64 = _first_result(ctor, shape, "(np.float64,)", env, calls)
            stencil = {k: t32.pop(k) for k in list(t32) if "call" in k}
            stencil.update({k: t64.pop(k) for k in list(t64) if "call" in k})
            rows.append({"what": "new layer (runtime cached)", "layer": label, **t32, **t64,
                         "target": "≤ 2 s per dtype"})
            if stencil:
                rows.append({"what": f"its stencil, compiled at call {calls}", "layer": label,
                             "float32": stencil[f"float32 call {calls}"], "float64": stencil[f"float64 call {calls}"],
                             "target": "(no target)"})
            again = _first_result(ctor, shape, "(np.float32,)", env)
            rows.append({"what": "same layer, new process", "layer": label, **again, "target": "≤ 0.3 s"})
    return rows


def _median_us(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


SMALL = [  # (label, layer, torch call, input shape)
    ("ConvTranspose1d k4 s2 p1 8→8, 64",
     lambda sd: sd.ConvTranspose(4, stride=2, padding=1, in_channels=8, out_channels=8),
     lambda F, x, w: F.conv_transpose1d(x, w, stride=2, padding=1), (1, 8, 64)),
    ("ConvTranspose2d k4 s2 p1 64→32, 8×8",
     lambda sd: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=64, out_channels=32),
     lambda F, x, w: F.conv_transpose2d(x, w, stride=2, padding=1), (1, 64, 8, 8)),
    ("ConvTranspose2d k4 s2 p1 64→32, 16×16",
     lambda sd: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=64, out_channels=32),
     lambda F, x, w: F.conv_transpose2d(x, w, stride=2, padding=1), (1, 64, 16, 16)),
    ("Conv2d k3 s2 p1 16→16, 16×16",
     lambda sd: sd.Conv((3, 3), stride=2, padding=1, in_channels=16, out_channels=16),
     lambda F, x, w: F.conv2d(x, w, stride=2, padding=1), (1, 16, 16, 16)),
    ("ConvTranspose2d k4 s2 p1 depthwise 32, 16×16",
     lambda sd: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=32, out_channels=32, groups=32),
     lambda F, x, w: F.conv_transpose2d(x, w, stride=2, padding=1, groups=32), (1, 32, 16, 16)),
]


def small_calls(quick: bool) -> list[dict]:
    import numba
    import numpy as np

    import symdeconv as sd  # noqa: F401  (the constructors below)

    try:
        import torch
        F = torch.nn.functional
    except ImportError:
        torch = None
    repeats = 21 if quick else 301
    rows = []
    for label, ctor, tcall, shape in SMALL:
        layer = ctor(sd)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(layer.weight_shape).astype(np.float32)
        f = sd.compile(layer)
        for threads in (1, 2):
            numba.set_num_threads(threads)
            ours = lambda: f(x, w)  # noqa: E731
            for _ in range(runtime_calls() + 1):  # (a one-channel layer's stencil runs from its third call)
                ours()
            row = {"case": label, "threads": threads}
            if torch is not None:
                torch.set_num_threads(threads)
                tx, tw = torch.from_numpy(x), torch.from_numpy(w)
                theirs = lambda: tcall(F, tx, tw)  # noqa: E731
                ref = theirs().numpy()
                np.testing.assert_allclose(ours(), ref, rtol=1e-4, atol=1e-4 * (1 + np.abs(ref).max()))
                for _ in range(20):
                    ours(), theirs()
                a, b = [], []
                for _ in range(5):  # interleaved rounds
                    a.append(_median_us(ours, repeats // 5))
                    b.append(_median_us(theirs, repeats // 5))
                row.update(symdeconv_us=statistics.median(a), torch_us=statistics.median(b))
                row["ratio"] = row["torch_us"] / row["symdeconv_us"]
            else:
                row.update(symdeconv_us=_median_us(ours, repeats))
            rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one layer and few repeats (a smoke run)")
    args = ap.parse_args(argv)
    from symdeconv.codegen.machine import host_machine

    m = host_machine()
    print(f"machine: {m.cpu} ({m.isa}, {m.vector_bits}-bit vectors, {m.registers} registers); "
          f"Python {sys.version.split()[0]}")
    lat = compile_latency(args.quick)
    print("\nTime to the first result (new process each; sd.compile → first array):")
    print(f"{'':40s} {'layer':42s} {'float32':>9s} {'float64':>9s}  target")
    for r in lat:
        f32 = f"{r['float32']:.2f} s" if "float32" in r else ""
        f64 = f"{r['float64']:.2f} s" if "float64" in r else ""
        extra = f" (together {r['total']:.1f} s)" if "total" in r else ""
        print(f"{r['what']:40s} {r['layer']:42s} {f32:>9s} {f64:>9s}  {r['target']}{extra}")
    small = small_calls(args.quick)
    print("\nSmall warm calls, batch 1, float32, f(x, w) allocating its output (medians, µs):")
    print(f"{'case':46s} {'threads':>7s} {'symdeconv':>10s} {'torch':>8s} {'ratio':>6s}")
    for r in small:
        t = f"{r['torch_us']:8.1f}" if "torch_us" in r else "       -"
        q = f"{r['ratio']:6.2f}" if "ratio" in r else "     -"
        print(f"{r['case']:46s} {r['threads']:7d} {r['symdeconv_us']:10.1f} {t} {q}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps({"machine": m.key, "compile": lat, "small": small}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
