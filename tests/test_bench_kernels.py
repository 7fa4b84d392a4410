"""benchmarks/bench_kernels.py runs end to end, with glibc's default allocator and with ``--allocator reuse``.

A smoke run (``--quick``, one repeat, one thread, resampler case f: one small kernel, SciPy as the
competitor), in a subprocess: the script checks its output against SciPy's before timing and exits with
an error when they differ, so a zero exit status means the kernel agreed with the oracle.  The timings
themselves are not looked at (they belong to the benchmark, never to a test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
