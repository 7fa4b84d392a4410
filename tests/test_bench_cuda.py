"""benchmarks/bench_cuda.py: without a GPU it says so and measures nothing; its launcher is right.

The timings themselves need a GPU and torch CUDA; here the script's no-GPU message and exit statuses
are checked in subprocesses, and the launcher it times (generated kernel on device arrays) is run in
the CUDA simulator against a naive NumPy transposed convolution.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_cuda.py"


def _run(*args: str, simulator: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_cuda", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_cuda", module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules["bench_cuda"])
    module = sys.modules["bench_cuda"]
    return module


def test_without_a_gpu_the_benchmark_says_why_and_exits_cleanly():
    out = _run("--quick", simulator=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no CUDA GPU to benchmark on" in out.stdout and "simulator" in out.stdout
    assert "Nothing measured" in out.stdout and "Traceback" not in out.stderr
    strict = _run("--require-gpu", simulator=True)
    assert strict.returncode == 2 and "no CUDA GPU" in strict.stdout


def test_cpu_only_torch_is_reported():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has torch CUDA: the benchmark would run")
    out = _run(simulator=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no CUDA GPU to benchmark on" in out.stdout and "sees no CUDA device" in out.stdout


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", reason="runs the launcher in the CUDA simulator")
def test_benchmark_launcher_computes_the_transposed_convolution():
    from .test_cuda_tiled import np_conv_transpose

    bench = _bench_module()
    case = bench.Case("t", "tiny", 2, 2, 2, 2, 2, 4)  # depthwise 2-D, N2, 4×4
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    w = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    launch, read, strategy = bench.symdeconv_launcher(case, x, w)
    launch()
    assert strategy == "tiled"
    np.testing.assert_allclose(read(), np_conv_transpose(x, w, 2, 1, groups=2), rtol=1e-5, atol=1e-5)
    assert [c.key for c in bench.CASES] == list("abcde")
