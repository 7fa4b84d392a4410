"""The native runtime (``symdeconv.codegen.native``): Numba's compiled runtime functions loaded from object
files and run on a pool of threads that wait for work in native code.

Oracles: the layer's symbolic matrix and a NumPy definition; never the runtime's own output.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import symdeconv as sd

pytest.importorskip("numba")
from symdeconv.codegen import native, rt_driver  # noqa: E402

pytestmark = pytest.mark.skipif(not native.enabled(), reason="native runtime: Linux on x86-64 / AArch64 only")


def _matrix_result(layer, x, w):
    M = np.array(layer.matrix(x.shape[2:], weight=w).tolist(), dtype=float)
    return (M @ x.reshape(x.shape[0], -1).T).T


@pytest.fixture
def parallel(monkeypatch):
    """Every call on the pool (no serial shortcut), natively."""
    monkeypatch.setattr(rt_driver, "SERIAL_MAX_MACS", 0)
    monkeypatch.setattr(rt_driver, "NATIVE", True)


def test_pool_workers_woken_from_sleep_compute_the_same(parallel, monkeypatch):
    """A worker that stopped spinning and sleeps is woken by the next task: calls spaced further apart than
    the spin time, and back to back, all match the symbolic matrix."""
    monkeypatch.setattr(native, "num_threads", lambda: 2)
    layer = sd.ConvTranspose((3, 3), stride=2, padding=1, in_channels=3, out_channels=4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal(layer.weight_shape)
    ref = _matrix_result(layer, x, w)
    f = sd.compile(layer)
    for pause in (0.0, 0.02, 0.0, 0.05, 0.0):
        time.sleep(pause)
        np.testing.assert_allclose(f(x, w).reshape(2, -1), ref, rtol=1e-12, atol=1e-12)
    assert native._workers and all(not wk.sleeping or wk.ctl[0] == native._IDLE for wk in native._workers)


def test_calls_from_several_python_threads_at_once(parallel):
    """Two Python threads calling compiled layers at once: one uses the pool, the other runs on its own
    thread meanwhile; every result matches the NumPy definition of the layer."""
    layer = sd.Conv((3,), stride=2, padding=1, in_channels=4, out_channels=8)
    rng = np.random.default_rng(2)
    w = rng.standard_normal(layer.weight_shape)
    inputs = [rng.standard_normal((3, 4, 200)) for _ in range(4)]

    def naive(x):  # PyTorch's Conv1d: y[n, o, j] = Σ_c,k w[o, c, k] · x_padded[n, c, 2j + k]
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1)))
        out = (xp.shape[-1] - 3) // 2 + 1
        return sum(np.einsum("oc,ncj->noj", w[:, :, k], xp[:, :, k:k + 2 * (out - 1) + 1:2]) for k in range(3))

    f = sd.compile(layer)
    errors = []

    def work(x):
        try:
            for _ in range(20):
                np.testing.assert_allclose(f(x, w), naive(x), rtol=1e-12, atol=1e-12)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(x,)) for x in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def _naive_conv1d_s2(x, w, b):
    """PyTorch's Conv1d, kernel 3, stride 2, padding 1: y[n, o, j] = b[o] + Σ_c,k w[o, c, k] · x_pad[n, c, 2j + k]."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    out = (xp.shape[-1] - 3) // 2 + 1
    return b[None, :, None] + sum(np.einsum("oc,ncj->noj", w[:, :, k], xp[:, :, k:k + 2 * (out - 1) + 1:2])
                                  for k in range(3))


@pytest.mark.parametrize("serial", [True, False])
def test_a_replayed_call_takes_each_calls_arrays(serial, monkeypatch):
    """After its first call of a shape, a compiled layer replays the native call (the module's run is not
    entered again): new inputs, weights, biases and out= arrays all reach it, a new shape goes through the
    module again, and with the native runtime switched off the replay stands aside for Numba."""
    monkeypatch.setattr(rt_driver, "NATIVE", True)
    if not serial:
        monkeypatch.setattr(rt_driver, "SERIAL_MAX_MACS", 0)
    layer = sd.Conv((3,), stride=2, padding=1, in_channels=4, out_channels=8)
    f = sd.compile(layer)
    entered = []
    run = f.module.run
    monkeypatch.setattr(f.module, "run", lambda *a, **k: entered.append(a[0].shape) or run(*a, **k))
    rng = np.random.default_rng(3)
    out = np.empty((2, 8, 50))
    for k, length in enumerate((100, 100, 100, 64, 100, 100)):
        x = rng.standard_normal((2, 4, length))
        w, b = rng.standard_normal(layer.weight_shape), rng.standard_normal(8)
        want = _naive_conv1d_s2(x, w, b)
        np.testing.assert_allclose(f(x, w, b), want, rtol=1e-12, atol=1e-12)
        if length == 100:
            assert f(x, w, b, out=out) is out
            np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    assert entered == [(2, 4, 100), (2, 4, 64), (2, 4, 100)]
    monkeypatch.setattr(rt_driver, "NATIVE", False)
    monkeypatch.setattr(native.Prepared, "run", lambda *a: pytest.fail("the native call ran"))
    monkeypatch.setattr(native, "parallel_for", lambda *a: pytest.fail("the native call ran"))
    x = rng.standard_normal((2, 4, 100))
    np.testing.assert_allclose(f(x, w, b), _naive_conv1d_s2(x, w, b), rtol=1e-12, atol=1e-12)
    assert len(entered) == 4


def test_a_replayed_2d_call_reads_4d_arrays_unviewed(monkeypatch):
    """A 2-D layer's replay hands its 4-D input and output to the prepared call as they are (the native call
    reads their data pointers): new inputs, weights and out= arrays each give the symbolic matrix's result."""
    monkeypatch.setattr(rt_driver, "NATIVE", True)
    layer = sd.ConvTranspose((3, 3), stride=2, padding=1, in_channels=3, out_channels=4)
    f = sd.compile(layer)
    entered = []
    run = f.module.run
    monkeypatch.setattr(f.module, "run", lambda *a, **k: entered.append(1) or run(*a, **k))
    rng = np.random.default_rng(4)
    outs = [np.empty((2, 4, 9, 7)), np.empty((2, 4, 9, 7))]
    for k in range(4):
        x, w = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal(layer.weight_shape)
        ref = _matrix_result(layer, x, w).reshape(2, 4, 9, 7)
        np.testing.assert_allclose(f(x, w), ref, rtol=1e-12, atol=1e-12)
        assert f(x, w, out=outs[k % 2]) is outs[k % 2]
        np.testing.assert_allclose(outs[k % 2], ref, rtol=1e-12, atol=1e-12)
    assert len(entered) == 1


def test_a_prepared_call_refuses_arrays_it_was_not_compiled_for(parallel):
    """The native function is Numba's machine code for one signature: an array of another rank, dtype or
    layout is refused with a SymdeconvError before any call (never read as the wrong type)."""
    layer = sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=2)
    sd.compile(layer)(np.ones((1, 2, 8)), np.ones(layer.weight_shape))  # the object files exist from here
    fn = native.load("layers", "float64")
    assert fn is not None
    good = [np.zeros((1, 2, 8)), np.zeros((1, 2, 9)), np.zeros((1, 2, 2, 16)), np.zeros(1, np.int64),
            np.zeros((1, 2, 16)), np.zeros((4, 2, 2)), np.zeros(2), np.zeros(8, np.int64)]
    call = fn.prepare(good)
    for k, bad in ((0, np.zeros((1, 2, 8), np.float32)), (0, np.zeros((2, 8))), (4, np.zeros((1, 16, 2)).T)):
        values = list(good)
        values[k] = bad
        with pytest.raises(sd.SymdeconvError, match=f"argument {k} is not a C-contiguous"):
            call.update(values)
    with pytest.raises(sd.SymdeconvError, match="arguments, compiled for"):
        fn.prepare(good[:-1])


def test_a_process_exits_cleanly_right_after_parallel_calls():
    """Workers spin for a while after each task: a program that ends right after a parallel call stops them
    at exit and ends with status 0 (no hang, no crash on freed memory)."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, symdeconv as sd\n"
        "from symdeconv.codegen import rt_driver\n"
        "rt_driver.SERIAL_MAX_MACS = 0\n"
        "layer = sd.ConvTranspose((3, 3), stride=2, padding=1, in_channels=3, out_channels=4)\n"
        "f = sd.compile(layer)\n"
        "y = f(np.ones((2, 3, 5, 4)), np.ones(layer.weight_shape))\n"
        "print(float(y.sum()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1], env=dict(os.environ, NUMBA_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    layer = sd.ConvTranspose((3, 3), stride=2, padding=1, in_channels=3, out_channels=4)
    ref = _matrix_result(layer, np.ones((2, 3, 5, 4)), np.ones(layer.weight_shape)).sum()
    assert abs(float(proc.stdout.strip()) - ref) < 1e-9 * abs(ref)


def test_the_object_files_key_covers_every_source_the_kernels_are_compiled_from():
    """An object file is named by a hash of the runtime's sources: every module the kernels import from the
    package (whose constants Numba freezes into the code), transitively, is one of them, so no edit can
    leave a stale object file in use."""
    import ast

    here = Path(native.__file__).resolve().parent
    todo, seen = ["rt_layers.py", "rt_wino.py", "runtime.py"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((here / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                todo.append(node.module.split(".")[0] + ".py")
    assert seen <= set(native.RUNTIME_SOURCES), seen - set(native.RUNTIME_SOURCES)
