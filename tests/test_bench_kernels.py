"""benchmarks/bench_kernels.py runs end to end, with glibc's default allocator and with ``--allocator reuse``.

A smoke run (``--quick``, one repeat, one thread, resampler case f: one small kernel, SciPy as the
competitor), in a subprocess: the script checks its output against SciPy's before timing and exits with
an error when they differ, so a zero exit status means the kernel agreed with the oracle.  The timings
themselves are not looked at (they belong to the benchmark, never to a test).  The machine-limits
loop (``benchmarks/_machine.py``) is checked to do the work its GFLOP/s figure counts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_kernels.py"

pytest.importorskip("scipy")


@pytest.mark.parametrize("allocator", ["default", "reuse"])
def test_benchmark_smoke_run(tmp_path, allocator):
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out_json = tmp_path / "kernels.json"
    args = ["--quick", "--cases", "f", "--threads", "1", "--repeats", "1", "--allocator", allocator, "--out", str(out_json)]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"allocator: {allocator}" in run.stdout
    result = json.loads(out_json.read_text())
    assert result["allocator"] == allocator
    # the re-executed process really had the setting (the dynamic loader reads it at start-up)
    assert ("mmap_threshold" in result["glibc_tunables"]) == (allocator == "reuse")
    (row,) = result["rows"]
    assert row["case"] == "f" and row["threads"] == 1 and row["max_rel_err"] <= 1e-10
    limits = result["machine_limits"]
    assert set(limits) == {"1"} and all(limits["1"][k] > 0 for k in ("fma_peak_gflops", "fill_gbs", "copy_gbs"))
    assert limits["1"]["isa"] in ("avx512", "avx2", "avx", "sse", "neon", "generic")
    assert 0 < row["peak_fraction"] and row["alloc_ms"] > 0  # useful GF/s against the measured peak


def _machine_module():
    # under its own name: Numba's on-disk cache of its functions refers to the module by name
    if "_machine" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_machine", REPO / "benchmarks" / "_machine.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["_machine"] = module
        spec.loader.exec_module(module)
    return sys.modules["_machine"]


def test_fma_peak_loops_do_the_work_they_count():
    """Each peak loop's result is the float32 recurrence x ← a·x + b, run ``steps`` times from 0 in every
    lane (a NumPy oracle): the compiler kept every multiply-add that the GFLOP/s figure counts."""
    machine = _machine_module()
    scale = np.array([[0.5, 0.25], [0.75, -1.0], [-0.5, 2.0]], dtype=np.float32)
    assert len(machine._FMA_LOOPS) >= 2
    for loop, n in machine._FMA_LOOPS:
        assert n % 4 == 0 and n >= 32
        out = np.full((3, n), np.nan, dtype=np.float32)
        steps = 37
        loop(scale, out, steps)
        for item, (a, b) in enumerate(scale):
            x = np.float32(0.0)
            for _ in range(steps):
                x = np.float32(np.float64(x) * np.float64(a) + np.float64(b))  # one rounding, as an FMA
            np.testing.assert_allclose(out[item], np.full(n, x), rtol=1e-6)


def test_cpu_model_reads_cpuinfo():
    name = _machine_module().cpu_model()
    if Path("/proc/cpuinfo").exists():
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
        if "model name" in text:
            assert name and name.split(" (family")[0] in text  # the model name, read from the file
        if "cpu family" in text:
            assert "(family " in name and ", model " in name
    else:
        assert name == ""
