"""Generated CUDA kernels against PyTorch CUDA (cuDNN), measured in ONE process on one GPU.

Run on a machine with an NVIDIA GPU, a CUDA build of PyTorch and numba-cuda::

    python benchmarks/bench_cuda.py [--quick] [--cases abcde] [--repeats 21] [--tf32]

Method (the same rules as ``bench_kernels.py``, adapted to a GPU):

- cases a–e of issue 5 (transposed convolutions, float32), data already on the device: both sides
  get device arrays, so host↔device copies are not timed;
- every output is checked against torch's before any timing (relative error ≤ 1e-4 of the largest
  output; cuDNN's TF32 tensor-core path is off unless ``--tf32``, so both sides compute in float32);
- after warm-up (which includes Numba's JIT compile and cuDNN's algorithm choice), the two are timed
  interleaved (A B A B …); one sample is ``inner`` back-to-back launches followed by a device
  synchronisation, with ``inner`` chosen so that a sample lasts ≥ 2 ms; medians of ``--repeats``;
- ratio = torch ms / symdeconv ms (higher is better for symdeconv); useful GFLOP/s count 2 flops
  per multiply-add by a real kernel tap;
- the table is printed and written as JSON to ``benchmarks/results/cuda.json``.

Without a usable GPU (no CUDA driver, the Numba CUDA simulator switched on, or a CPU-only PyTorch)
the script prints why and exits with status 0 (``--require-gpu``: status 2), measuring nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NO_GPU = "bench_cuda: no CUDA GPU to benchmark on"


@dataclass
class Case:
    key: str
    title: str
    ndim: int
    n: int
    c_in: int
    c_out: int
    groups: int
    size: int


@dataclass
class Row:
    case: str
    title: str
    ours_ms: float
    torch_ms: float
    ratio: float
    ours_gflops: float
    torch_gflops: float
    strategy: str
    max_rel_err: float


CASES = [
    Case("a", "ConvTranspose2d k4 s2 p1, N1, 1→1, 1024²", 2, 1, 1, 1, 1, 1024),
    Case("b", "ConvTranspose2d k4 s2 p1, N8, 64→64, 64²", 2, 8, 64, 64, 1, 64),
    Case("c", "ConvTranspose2d k4 s2 p1, N8, 64 ch depthwise, 64²", 2, 8, 64, 64, 64, 64),
    Case("d", "ConvTranspose2d k4 s2 p1, N1, 256→128, 32²", 2, 1, 256, 128, 1, 32),
    Case("e", "ConvTranspose3d k4 s2 p1, N1, 16→16, 32³", 3, 1, 16, 16, 1, 32),
]


def gpu_problem() -> str | None:
    """Why there is nothing to measure here, or ``None`` when a GPU, Numba CUDA and torch CUDA are usable."""
    import os

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: the CUDA simulator runs kernels in Python and has no timings worth taking"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (the competitor is torch CUDA / cuDNN)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (a CPU-only build, or no driver)"
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed"
    if not cuda.is_available():
        return "Numba finds no CUDA driver / device"
    return None


def symdeconv_launcher(case: Case, x: np.ndarray, weight: np.ndarray):
    """(launch, read, strategy): the generated kernel of ``case`` on device copies of ``x`` and ``weight``.

    ``launch()`` runs the kernel without synchronising; ``read()`` copies the output to the host.
    """
    from numba import cuda

    import symdeconv as sd

    k, s, p = 4, 2, 1
    layer = sd.ConvTranspose((k,) * case.ndim, stride=s, padding=p, groups=case.groups,
                             in_channels=case.c_in, out_channels=case.c_out)
    f = sd.compile(layer, "cuda")
    box = tuple(layer.window(x.shape[2:]))
    lo = tuple(int(a) for a, _ in box)
    out = tuple(int(b) - int(a) for a, b in box)
    d_x = cuda.to_device(x)
    d_w = cuda.to_device(f.binding.gather(weight, x.dtype))
    d_bias = cuda.to_device(np.zeros(case.c_out, dtype=x.dtype))
    d_y = cuda.device_array((x.shape[0], case.c_out) + out, dtype=x.dtype)

    def launch():
        f.module.launch(d_x, d_y, d_w, d_bias, case.groups, *lo)

    return launch, d_y.copy_to_host, f.module.STRATEGY


def build(case: Case, quick: bool, tf32: bool):
    """(ours, theirs, check, macs, strategy) for one case; ``ours`` / ``theirs`` launch without syncing."""
    import torch
    from numba import cuda

    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest algorithm during warm-up
    size = max(4, case.size // 8) if quick else case.size
    k, s, p = 4, 2, 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.n, case.c_in) + (size,) * case.ndim, dtype=np.float32)
    weight = rng.standard_normal((case.c_in, case.c_out // case.groups) + (k,) * case.ndim, dtype=np.float32)
    ours, read, strategy = symdeconv_launcher(case, x, weight)

    fn = getattr(torch.nn.functional, f"conv_transpose{case.ndim}d")
    tx = torch.from_numpy(x).cuda()
    tw = torch.from_numpy(weight).cuda()
    result = {}

    def theirs():
        result["y"] = fn(tx, tw, stride=s, padding=p, groups=case.groups)

    def check() -> float:
        ours()
        theirs()
        cuda.synchronize()
        torch.cuda.synchronize()
        a, b = read(), result["y"].cpu().numpy()
        if a.shape != b.shape:
            raise SystemExit(f"case {case.key}: shape {a.shape} != torch's {b.shape}")
        return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))

    macs = case.n * case.c_in * (case.c_out // case.groups) * k**case.ndim * size**case.ndim
    return ours, theirs, check, macs, strategy


def _sample(fn: Callable[[], None], sync: Callable[[], None], inner: int) -> float:
    sync()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    sync()
    return (time.perf_counter() - t0) / inner


def measure(case: Case, repeats: int, quick: bool, tf32: bool) -> Row:
    import torch
    from numba import cuda

    ours, theirs, check, macs, strategy = build(case, quick, tf32)
    err = check()  # also the first launches: JIT compile, cuDNN autotuning
    if not err <= 1e-4:
        raise SystemExit(f"case {case.key}: output differs from torch's (max rel err {err:.2e})")

    def sync():
        cuda.synchronize()
        torch.cuda.synchronize()

    inner = {}
    for name, fn in (("ours", ours), ("theirs", theirs)):
        one = max(_sample(fn, sync, 3), 1e-7)
        inner[name] = max(1, min(1000, int(2e-3 / one)))
        _sample(fn, sync, inner[name])  # warm-up at the timed count
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_ours.append(_sample(ours, sync, inner["ours"]))
        t_theirs.append(_sample(theirs, sync, inner["theirs"]))
    mo, mt = statistics.median(t_ours), statistics.median(t_theirs)
    return Row(case.key, case.title, mo * 1e3, mt * 1e3, mt / mo, 2 * macs / mo / 1e9, 2 * macs / mt / 1e9,
               strategy, err)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="abcde", help="which cases, e.g. 'ab'")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="spatial sizes / 8")
    parser.add_argument("--tf32", action="store_true", help="let cuDNN use TF32 tensor cores (lower precision)")
    parser.add_argument("--require-gpu", action="store_true", help="exit with status 2 when there is no GPU")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cuda.json"))
    args = parser.parse_args(argv)

    problem = gpu_problem()
    if problem is not None:
        print(f"{NO_GPU}: {problem}. Nothing measured.")
        return 2 if args.require_gpu else 0

    import numba
    import torch
    from numba import cuda

    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    print(f"GPU: {name} (compute capability {'.'.join(map(str, device.compute_capability))}); "
          f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, numba {numba.__version__}; "
          f"TF32 {'on' if args.tf32 else 'off'}; {'quick sizes' if args.quick else 'full sizes'}, "
          f"medians of {args.repeats}")
    header = (f"{'case':4} {'symdeconv ms':>13} {'torch ms':>10} {'ratio':>7} {'GF/s ours':>10} "
              f"{'GF/s torch':>10} {'kernel':>7}  title")
    print(header)
    print("-" * len(header))
    rows = []
    for case in CASES:
        if case.key not in args.cases:
            continue
        row = measure(case, args.repeats, args.quick, args.tf32)
        rows.append(row)
        print(f"{row.case:4} {row.ours_ms:13.4f} {row.torch_ms:10.4f} {row.ratio:7.2f} {row.ours_gflops:10.1f} "
              f"{row.torch_gflops:10.1f} {row.strategy:>7}  {row.title}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"gpu": name, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
            "numba": numba.__version__, "python": platform.python_version(), "tf32": args.tf32,
            "quick": args.quick, "repeats": args.repeats}
    out.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    print(f"\nratio = torch ms / symdeconv ms (higher: symdeconv faster); JSON in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
