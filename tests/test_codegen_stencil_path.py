"""The stencil path of the CPU layer kernels: groups with one input and one output channel.

1 → 1 layers and depthwise layers (``groups = C_in = C_out``) run ``stencil`` (x read in place, interior /
border blocks), every other channel configuration the GEMM-like ``kernel``.  Checked here:

* the dispatch: which of the two a call runs, and that plans with too many taps carry no stencil;
* the stencil against ``layer.matrix`` (tiny sizes: every border case, identity inputs) in 1-D/2-D,
  strides 1–3, dilation, output padding, strided convolutions (Q > 1); a 3-D layer carries no stencil
  and its one-channel groups run the runtime's one-channel pass, checked the same way;
* the stencil against PyTorch on random shapes large enough for interior runs, several rows of blocks
  per work item and several work items per row (chunks of a long 1-D signal), float32 and float64;
* a plan with more than ``STENCIL_MAX_TAPS`` taps carries no stencil (the GEMM-like kernel runs).
"""

from __future__ import annotations

import numpy as np
import pytest

import symdeconv as sd
from symdeconv.codegen.emit_cpu_stencil import STENCIL_CHUNK, STENCIL_MAX_NDIM, STENCIL_MAX_TAPS, STENCIL_TARGET, has_stencil
from symdeconv.codegen.layer_plan import choose_strategy
from symdeconv.verify.check import check_layer

from ._layer_helpers import naive_conv_transpose

pytest.importorskip("numba")
from symdeconv.codegen import rt_driver  # noqa: E402


def _refuse(*args, **kwargs):
    raise AssertionError("this path must not run")


@pytest.fixture(autouse=True)
def _stencil_from_the_first_call(monkeypatch, request):
    """The path checked here is the stencil: from a layer's first call (not after rt_driver.RUNTIME_CALLS)."""
    if "first_calls" not in request.node.name:
        monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")


def _naive_transpose(x, w, s, p):
    """PyTorch's conv_transpose2d (groups = channels, one output channel per group) by its scatter definition."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    full = np.zeros((n, c, (h - 1) * s + k, (wd - 1) * s + k), dtype=np.float64)
    for i in range(h):
        for j in range(wd):
            full[:, :, i * s:i * s + k, j * s:j * s + k] += x[:, :, i, j, None, None] * w[None, :, 0]
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]


def test_first_calls_run_on_the_shared_runtime_then_the_stencil(monkeypatch):
    """A one-channel-per-group layer's first RUNTIME_CALLS calls (per dtype, per process) run the GEMM-like
    runtime kernel, nothing compiled for the layer; the next ones its stencil.  Every call equals the scatter
    definition, float64 is counted apart from float32, and SYMDECONV_RUNTIME_CALLS sets the count."""
    monkeypatch.delenv("SYMDECONV_RUNTIME_CALLS", raising=False)
    monkeypatch.setattr(rt_driver, "_stencil_counts", {})  # (as in a new process: no module's calls counted)
    runs = []
    real_layer, real_stream_min = rt_driver.run_layer, rt_driver.stream_min_bytes
    monkeypatch.setattr(rt_driver, "run_layer", lambda *a, **k: (runs.append("gemm"), real_layer(*a, **k))[1])
    # (only the stencil's call reads the streaming threshold)
    monkeypatch.setattr(rt_driver, "stream_min_bytes", lambda: (runs.append("stencil"), real_stream_min())[1])
    # (the catalogue's plan, which other tests compile too: its stencil is in the disk cache)
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=3, out_channels=3, groups=3)
    f = sd.compile(layer, "cpu")
    assert choose_strategy(f.module.PLAN, 1, 1).path == "stencil"
    rng = np.random.default_rng(7)
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        for _ in range(rt_driver.RUNTIME_CALLS + 2):
            x = rng.standard_normal((2, 3, 6, 7)).astype(dtype)
            w = rng.standard_normal(layer.weight_shape).astype(dtype)
            np.testing.assert_allclose(f(x, w), _naive_transpose(x, w, 2, 1), rtol=tol, atol=tol)
    assert runs == (["gemm"] * rt_driver.RUNTIME_CALLS + ["stencil"] * 2) * 2
    # the count from the environment: 0 runs the stencil at once; anything but a whole number is refused
    other = sd.compile(sd.ConvTranspose((5, 5), stride=3, padding=2, in_channels=1, out_channels=1), "cpu")
    monkeypatch.setattr(other.module, "stencil_range", _refuse)
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "1")
    other(x, np.ones((1, 1, 5, 5), np.float32))  # (counted: the runtime's kernel)
    with pytest.raises(AssertionError, match="must not run"):
        other(x, np.ones((1, 1, 5, 5), np.float32))
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "two")
    with pytest.raises(sd.SymdeconvError, match="SYMDECONV_RUNTIME_CALLS must be a whole number"):
        other(x.astype(np.float64), np.ones((1, 1, 5, 5)))


def test_own_kernels_at_once_runs_the_stencil_from_the_first_call(monkeypatch):
    monkeypatch.delenv("SYMDECONV_RUNTIME_CALLS", raising=False)
    monkeypatch.setattr(rt_driver, "_stencil_counts", {})
    f = sd.compile(sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=2, groups=2), "cpu")
    monkeypatch.setattr(rt_driver, "run_layer", _refuse)
    x = np.random.default_rng(8).standard_normal((1, 2, 4, 5))
    w = np.random.default_rng(9).standard_normal((2, 1, 4, 4))
    with rt_driver.own_kernels_at_once():
        np.testing.assert_allclose(f(x, w), _naive_transpose(x, w, 2, 1), rtol=1e-12, atol=1e-12)
    # after the block too: the stencil, compiled now, keeps running
    np.testing.assert_allclose(f(x, w), _naive_transpose(x, w, 2, 1), rtol=1e-12, atol=1e-12)


def test_dispatch_one_channel_per_group_runs_the_stencil(monkeypatch):
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=2, groups=2)
    f = sd.compile(layer, "cpu")
    assert "stencil" in f.module.PLAN.paths and has_stencil(f.plan)
    assert choose_strategy(f.module.PLAN, 1, 1).path == "stencil"
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal(layer.weight_shape).astype(np.float32)
    expected = f(x, w)
    monkeypatch.setattr(rt_driver, "run_layer", _refuse)  # the GEMM-like runtime kernel is not called
    np.testing.assert_array_equal(f(x, w), expected)
    monkeypatch.undo()
    wide = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=4, groups=2)  # 2 outputs per group
    g = sd.compile(wide, "cpu")
    assert g.module is f.module  # same plan, same module: the channel configuration picks the path
    monkeypatch.setattr(g.module, "stencil_range", _refuse)
    g(x, np.random.default_rng(2).standard_normal(wide.weight_shape).astype(np.float32))


@pytest.mark.parametrize("native", [True, False], ids=["native pool", "Python threads"])
def test_small_stencil_calls_run_on_the_calling_thread(monkeypatch, native):
    """Below SERIAL_MAX_MACS multiply-adds the stencil's work items run on the calling thread (no pool to
    wake), larger calls on every thread — the runtime's native pool, or Python threads without it (the
    range function releases the GIL); each gives the NumPy scatter definition's result."""
    import numba

    from symdeconv.codegen import native as native_mod

    monkeypatch.setattr(rt_driver, "NATIVE", native)
    monkeypatch.setattr(rt_driver, "_stencil_fns", {})
    layer = sd.ConvTranspose(4, stride=2, padding=1, in_channels=3, out_channels=3, groups=3)
    f = sd.compile(layer, "cpu")
    rng = np.random.default_rng(4)
    w = rng.standard_normal(layer.weight_shape)
    parallel = []
    real_pool, real_threads = native_mod.parallel_for, rt_driver._on_threads
    monkeypatch.setattr(native_mod, "parallel_for", lambda call, n: (parallel.append(("pool", n)), real_pool(call, n))[1])
    monkeypatch.setattr(rt_driver, "_on_threads",
                        lambda k, n, v: (parallel.append(("threads", n)), real_threads(k, n, v))[1])
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        for n in (16, 40_000):  # 3·32·4 multiply-adds, then 3·80 000·4 > SERIAL_MAX_MACS
            x = rng.standard_normal((1, 3, n))
            want = np.zeros((1, 3, 2 * n + 2))  # y[2 i + k] += x[i] w[k], then the padding cropped
            for k in range(4):
                want[:, :, k:k + 2 * n:2] += x * w[:, 0, k][None, :, None]
            np.testing.assert_allclose(f(x, w), want[:, :, 1:-1], rtol=1e-12, atol=1e-12)
    finally:
        numba.set_num_threads(before)
    kind = "pool" if native and native_mod.enabled() else "threads"
    assert parallel == [(kind, 3 * (-(-(80_002 // 2 + 1) // STENCIL_CHUNK)))], parallel


def _naive_transpose_1d(x, w, s, p):
    """conv_transpose1d, one channel per group, no bias (``_layer_helpers.naive_conv_transpose``)."""
    return naive_conv_transpose(x, w, np.zeros(x.shape[1]), s, p, 0, groups=x.shape[1])


def test_each_module_runs_its_own_compiled_stencil(monkeypatch):
    """The native function of a stencil is found by the module's Numba dispatcher itself (a module's first
    call passes a lazy function, dropped once the module's globals are rebound, whose id may later name
    another module's function) and by the types of the call's arrays: a direct call of a module's ``run``
    with other dtypes or a strided output gets its own (or Numba's dispatcher), and later calls through
    the API still get theirs.  Every result is the scatter definition's."""
    from symdeconv.codegen import lazyjit
    from symdeconv.codegen import native as native_mod

    monkeypatch.setattr(rt_driver, "NATIVE", True)
    monkeypatch.setattr(rt_driver, "_stencil_fns", {})
    rng = np.random.default_rng(11)
    cases = [(4, 2, 1), (6, 3, 2)]  # kernel, stride, padding: two plans, two modules
    fs = [sd.compile(sd.ConvTranspose(k, stride=s, padding=p, in_channels=2, out_channels=2, groups=2), "cpu")
          for k, s, p in cases]
    assert fs[0].module is not fs[1].module
    x = rng.standard_normal((1, 2, 9))
    ws = [rng.standard_normal((2, 1, k)) for k, _, _ in cases]
    for f, wt, (_, s, p) in zip(fs, ws, cases):
        np.testing.assert_allclose(f(x, wt), _naive_transpose_1d(x, wt, s, p), rtol=1e-12, atol=1e-12)
    kernels = [f.module.stencil_range for f in fs]
    assert not any(isinstance(k, lazyjit.LazyFunction) for k in kernels)  # (rebound by the first calls)
    assert set(map(id, rt_driver._stencil_fns)) == set(map(id, kernels))
    # direct calls of the module: a float32 bias on float64 data, then a strided output
    f, wt = fs[0], ws[0]
    want = _naive_transpose_1d(x, wt, 2, 1)
    recipe = next(iter(f._recipes.values()))
    w = f.binding.gather(wt, wt.dtype)
    y = np.zeros(recipe.y_shape)
    f.module.run(x, y, w, np.zeros(2, np.float32), 2, *recipe.lo, work={})
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    wide = np.zeros(recipe.y_shape[:2] + (2 * recipe.y_shape[2],))
    f.module.run(x, wide[:, :, ::2], w, np.zeros(2), 2, *recipe.lo, work={})
    np.testing.assert_allclose(wide[:, :, ::2], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f(x, wt), want, rtol=1e-12, atol=1e-12)
    if native_mod.enabled():
        found = rt_driver._stencil_fns[kernels[0]]
        assert len(found) == 2 and all(fn is not None for fn in found.values())  # (float64 and float32 bias)


def test_python_threads_finish_every_range_before_an_error_is_raised(monkeypatch):
    """Without the native pool a stencil's ranges run on Python threads; when one raises, the call still
    waits for the others (they write the output), then raises the calling thread's error, else the
    lowest-numbered thread's."""
    import threading
    import time

    from symdeconv.codegen import native as native_mod

    monkeypatch.setattr(native_mod, "num_threads", lambda: 3)
    monkeypatch.setattr(native_mod, "max_threads", lambda: 3)
    monkeypatch.setattr(rt_driver, "_thread_pool", None)
    done, lock = [], threading.Lock()

    def failing(*threads):
        def kernel(i0, i1, thread, *values):
            if thread in threads:
                raise ValueError(f"range {thread}")
            if thread == 2:
                time.sleep(0.3)  # (the last range ends well after the others)
            with lock:
                done.append(thread)
        return kernel

    try:
        for raising, message in (((0,), "range 0"), ((1,), "range 1"), ((0, 1), "range 0")):
            done.clear()
            with pytest.raises(ValueError, match=message):
                rt_driver._on_threads(failing(*raising), 9, ())
            assert sorted(done) == [t for t in range(3) if t not in raising], (raising, done)
    finally:
        rt_driver._thread_pool.shutdown()


def test_a_module_is_published_compiled_only_once_all_its_names_are_rebound():
    """Another thread asks a lazy function for its dispatcher without the lock: it must not get one while
    the module's other names are still lazy (Numba would then type the call against a lazy function, fail,
    and keep that failure for the signature)."""
    from symdeconv.codegen import lazyjit

    seen = []

    class Watched(lazyjit.LazyFunction):
        def __setattr__(self, name, value):
            if name == "_dispatcher" and value is not None:
                seen.append(sorted(k for k, v in namespace.items() if isinstance(v, lazyjit.LazyFunction)))
            super().__setattr__(name, value)

    def inner(a):
        return a + 1

    def outer(a):
        return inner(a) * 2

    namespace = {"inner": Watched(inner, {}), "outer": Watched(outer, {})}
    lazyjit._bind_module(namespace)
    assert seen == [[], []]  # (nothing lazy left when either was published)
    assert namespace["outer"].py_func is outer


# tiny sizes against the symbolic matrix (float64): every block is near a border somewhere.  The layers
# are those of TORCH_SPECS below (same plans and dtype: each kernel is compiled once for both tests).
MATRIX_CASES = {
    "convT1d_k4_s2_p1": (lambda: sd.ConvTranspose(4, stride=2, padding=1), [(1,), (6,)]),
    "convT2d_k3_s3_p1_op2_d2_depthwise": (
        lambda: sd.ConvTranspose((3, 3), stride=3, padding=1, output_padding=2, dilation=2, in_channels=2,
                                 out_channels=2, groups=2), [(2, 3)]),
    "conv2d_k3_s2_p1_depthwise_planes": (
        lambda: sd.Conv((3, 3), stride=2, padding=1, in_channels=2, out_channels=2, groups=2), [(5, 4)]),
    "conv1d_k3_s3_d2_p2": (lambda: sd.Conv(3, stride=3, padding=2, dilation=2), [(11,)]),
    "conv2d_k3x2_s1": (lambda: sd.Conv((3, 2), stride=1, padding=(1, 0)), [(4, 5)]),
    "convT3d_k3_s2_p1_op1_depthwise": (
        lambda: sd.ConvTranspose((3, 3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=2,
                                 groups=2),
        [(2, 2, 3)]),
}


@pytest.mark.parametrize("name", sorted(MATRIX_CASES))
def test_stencil_equals_layer_matrix(name):
    build, shapes = MATRIX_CASES[name]
    layer = build()
    f = sd.compile(layer, "cpu")
    assert has_stencil(f.plan) == (f.plan.ndim <= STENCIL_MAX_NDIM)
    result = check_layer(f, layer, shapes, np.float64, rng=np.random.default_rng(3))
    assert result.ok, result.row()


def _torch_layer(torch, ndim, transposed):
    F = torch.nn.functional
    return getattr(F, f"conv_transpose{ndim}d" if transposed else f"conv{ndim}d")


# (ndim, transposed, kernel, stride, padding, dilation, output_padding, dtype)
TORCH_SPECS = [
    (1, True, 4, 2, 1, 1, 0, "float64"),
    (1, False, 3, 3, 2, 2, 0, "float64"),
    (2, True, 4, 2, 1, 1, 0, "float32"),
    (2, True, 3, 3, 1, 2, 2, "float64"),
    (2, False, 3, 2, 1, 1, 0, "float64"),
    (3, True, 3, 2, 1, 1, 1, "float64"),
]


@pytest.mark.torch
@pytest.mark.parametrize("spec", TORCH_SPECS, ids=lambda s: f"{s[0]}d_{'T' if s[1] else 'conv'}_k{s[2]}s{s[3]}p{s[4]}d{s[5]}op{s[6]}_{s[7]}")
def test_stencil_against_torch_random_configs(spec):
    torch = pytest.importorskip("torch")
    ndim, transposed, k, s, p, d, op, dtype = spec
    rng = np.random.default_rng(sum(map(int, spec[:7])))
    fn = _torch_layer(torch, ndim, transposed)
    for channels in (1, 3):  # 1 → 1 and depthwise
        if transposed:
            layer = sd.ConvTranspose((k,) * ndim, stride=s, padding=p, output_padding=op, dilation=d, groups=channels,
                                     in_channels=channels, out_channels=channels)
            kw = dict(stride=s, padding=p, output_padding=op, dilation=d, groups=channels)
        else:
            layer = sd.Conv((k,) * ndim, stride=s, padding=p, dilation=d, groups=channels, in_channels=channels,
                            out_channels=channels)
            kw = dict(stride=s, padding=p, dilation=d, groups=channels)
        high = {1: 300, 2: 60, 3: 12}[ndim]
        shape = tuple(int(v) for v in rng.integers(2 * k, high, ndim))
        x = rng.standard_normal((2, channels) + shape).astype(dtype)
        w = rng.standard_normal(layer.weight_shape).astype(dtype)
        b = rng.standard_normal(channels).astype(dtype)
        expected = fn(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw).numpy()
        got = sd.compile(layer, "cpu")(x, w, b)
        tol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * k**ndim * (1 + np.abs(expected).max()))


@pytest.mark.torch
def test_stencil_work_items_chunks_and_row_blocks():
    """A long 1-D signal (several chunks of STENCIL_CHUNK blocks, one channel) and a tall 2-D image
    (several blocks of rows per channel): the work split must not change the result."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    layer = sd.ConvTranspose(4, stride=2, padding=1)
    x = rng.standard_normal((1, 1, 2 * STENCIL_CHUNK + 77))
    w = rng.standard_normal(layer.weight_shape)
    expected = F.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).numpy()
    np.testing.assert_allclose(sd.compile(layer, "cpu")(x, w), expected, rtol=1e-12, atol=1e-12)
    layer2 = sd.ConvTranspose((4, 4), stride=2, padding=1)
    rows = 3 * STENCIL_TARGET // (4 * 33) + 5  # rows of 33 blocks: more than two blocks of rows
    x2 = rng.standard_normal((1, 1, rows, 32)).astype(np.float32)
    w2 = rng.standard_normal(layer2.weight_shape).astype(np.float32)
    expected2 = F.conv_transpose2d(torch.from_numpy(x2), torch.from_numpy(w2), stride=2, padding=1).numpy()
    np.testing.assert_allclose(sd.compile(layer2, "cpu")(x2, w2), expected2, rtol=1e-5, atol=1e-5)


def test_too_many_taps_carry_no_stencil():
    """Above STENCIL_MAX_TAPS taps no stencil is emitted: a one-channel call takes the GEMM-like runtime
    kernel (its one-channel pass), checked against NumPy's correlation."""
    many = sd.Conv(STENCIL_MAX_TAPS + 1, stride=1, padding=0)
    f = sd.compile(many, "cpu")
    assert f.module.PLAN.paths == ("gemm",) and "def stencil(" not in f.source
    assert choose_strategy(f.module.PLAN, 1, 1).path == "gemm"
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, STENCIL_MAX_TAPS + 40))
    w = rng.standard_normal(many.weight_shape)
    expected = np.correlate(x[0, 0], w[0, 0], "valid") + 0.5
    np.testing.assert_allclose(f(x, w, np.array([0.5]))[0, 0], expected, rtol=1e-12, atol=1e-12)
    few = sd.compile(sd.Conv(STENCIL_MAX_TAPS, stride=1, padding=0), "cpu")
    assert few.module.PLAN.paths == ("gemm", "stencil")
