"""Test-session setup.

The CUDA simulator must be selected before anything imports numba, so it is set here, first.
Compiled kernels of the whole session share one on-disk cache folder, so each kernel is compiled once.
"""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the TensorFlow and JAX oracles: quiet, CPU only
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# two xdist workers share two cores: OpenMP pools (Numba's threading layer, torch) that spin after each
# parallel region would take the other worker's core
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault(
    "SYMDECONV_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "symdeconv-test"),
)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from symdeconv.verify.catalogue import shorten_gil_switches  # noqa: E402

# simulated CUDA kernels wait for the GIL most of the time otherwise; the other tests run one Python
# thread (Numba's and the frameworks' worker threads run without the GIL) and do not notice
shorten_gil_switches()

REPO = Path(__file__).resolve().parents[1]


#: reference vectors from outside the project, copied into the repository (source: tests/data/README.md)
VECTORS = REPO / "tests" / "data" / "public.json"


@pytest.fixture(autouse=True)
def _calls_counted_from_zero():
    """Each test starts as a new process would: no layer module's or filter structure's calls counted, so
    that which path a test's first calls take (the shared runtime, rt_driver.RUNTIME_CALLS) does not
    depend on the tests that ran before it on the worker."""
    import symdeconv.signal
    from symdeconv.codegen import rt_driver

    rt_driver._stencil_counts.clear()
    for kernel in list(symdeconv.signal._kernels.values()):
        if hasattr(kernel, "_calls"):
            kernel._calls.clear()
    yield


@pytest.fixture(scope="session")
def shared_vectors() -> dict:
    return json.loads(VECTORS.read_text())


def pytest_configure(config):
    """Under pytest-xdist, the controller (which runs no tests) first compiles the shared layer runtime into
    Numba's disk cache — float32 and float64 in two processes at once — so that the workers load it rather
    than each compiling it.  A failure here is ignored: the tests themselves then compile and report."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    try:
        import numba  # noqa: F401
    except ImportError:
        return
    runs = [subprocess.Popen([sys.executable, "-m", "symdeconv.codegen.precompile", dtype], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for dtype in ("float32", "float64")]
    for run in runs:
        try:
            run.wait(timeout=600)
        except subprocess.TimeoutExpired:
            run.kill()
