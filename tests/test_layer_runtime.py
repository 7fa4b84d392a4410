"""The once-compiled layer runtime (``symdeconv.codegen.rt_layers``) and the typed plan that drives it.

* ``LayerPlan``: the plan as data — its tables against a restatement of the normal form's taps, and its
  validation;
* ``choose_strategy``: the rules that pick a path, with their reasons;
* serial and parallel drivers, through Numba's dispatchers and natively (``native``: the same machine code
  loaded from object files), give the same result as the naive NumPy definition of the layer, for 1-D to 4-D
  layers (4-D: no framework has one, so the oracle is the definition itself);
* compiled code loaded from Numba's disk cache in a new process runs (the runtime's functions are shared by
  every layer, so a process usually loads rather than compiles them).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symdeconv as sd
from symdeconv.codegen.api import LayerBinding
from symdeconv.codegen.layer_plan import WINO_MIN_CIN, LayerPlan, Phase, choose_strategy
from symdeconv.codegen.machine import machine_from

pytest.importorskip("numba")
from symdeconv.codegen import native, rt_driver, rt_layers  # noqa: E402  (imports Numba)

REPO = Path(__file__).resolve().parents[1]


def _naive(layer, x, w, b):
    """The layer by its definition: y[c', P j + p − lo] = Σ over its normal form's taps (from the
    symbolic operator of a one-channel stand-in, channel pairs from the weight layout), in float64."""
    binding = LayerBinding(layer, from_normal_form=True)
    plan = binding.plan
    lo = [int(a) for a, _ in layer.window(x.shape[2:])]
    out = layer.output_shape(x.shape[2:])
    full = binding.gather(w.astype(np.float64), np.dtype(np.float64))  # w[slot, ci, co]: the normal form's weights
    cin_g, cout_g = layer.in_channels // layer.groups, layer.out_channels // layer.groups
    y = np.zeros((x.shape[0], layer.out_channels) + tuple(out))
    y += b.reshape((1, -1) + (1,) * len(out))
    for t in np.ndindex(*out):
        pos = [t[d] + lo[d] for d in range(len(out))]  # operator output position
        p = tuple(pos[d] % plan.P[d] for d in range(len(out)))
        j = [pos[d] // plan.P[d] for d in range(len(out))]
        ph = next(ph for ph in plan.phases if ph.phase == p)
        for s, off in ph.slots:
            src = tuple(plan.Q[d] * j[d] + off[d] for d in range(len(out)))
            if not all(0 <= src[d] < x.shape[2 + d] for d in range(len(out))):
                continue
            for co in range(layer.out_channels):
                g = co // cout_g
                xs = x[(slice(None), slice(g * cin_g, (g + 1) * cin_g)) + src]
                y[(slice(None), co) + t] += xs @ full[s, :, co]
    return y


CASES = {  # layer, input shape (N, C, *spatial)
    "convT1d_groups": (
        lambda: sd.ConvTranspose(5, stride=3, padding=2, groups=2, in_channels=4, out_channels=6), (2, 4, 23)),
    "conv1d_s2_planes": (lambda: sd.Conv(4, stride=2, padding=1, in_channels=3, out_channels=9), (1, 3, 40)),
    "convT2d_k3_op1": (lambda: sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=5,
                                                out_channels=6),
                       (2, 5, 7, 9)),
    "conv2d_s3_dilated": (lambda: sd.Conv((3, 2), stride=(3, 2), padding=(2, 0), dilation=(2, 1), in_channels=3,
                                          out_channels=5),
                          (1, 3, 13, 8)),
    "convT3d_k2": (
        lambda: sd.ConvTranspose((2, 2, 2), stride=2, padding=0, in_channels=3, out_channels=5), (1, 3, 3, 4, 5)),
    # one input channel per group, 4 + 1 output channels: large blocks, the one-channel pass over several
    # column chunks (NARROW_CHUNK)
    "convT1d_1to5_long": (
        lambda: sd.ConvTranspose(4, stride=2, padding=1, in_channels=1, out_channels=5), (1, 1, 3000)),
    "conv4d_s2": (
        lambda: sd.Conv((3, 2, 2, 3), stride=2, padding=1, in_channels=2, out_channels=5), (1, 2, 4, 3, 5, 6)),
    "convT4d": (lambda: sd.ConvTranspose((2, 3, 2, 2), stride=(2, 1, 2, 1), padding=0, in_channels=2, out_channels=4),
                (1, 2, 3, 2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("serial", [True, False], ids=["serial", "parallel"])
@pytest.mark.parametrize("native", [True, False], ids=["native", "numba"])
def test_runtime_equals_the_naive_definition(name, serial, native, monkeypatch):
    build, shape = CASES[name]
    layer = build()
    monkeypatch.setattr(rt_driver, "SERIAL_MAX_MACS", 1 << 62 if serial else 0)
    monkeypatch.setattr(rt_driver, "NATIVE", native)
    if name == "convT1d_1to5_long":
        assert 2 * shape[-1] > 2 * rt_layers.NARROW_CHUNK  # more than two chunks of the block's columns
    rng = np.random.default_rng(17)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(layer.weight_shape)
    b = rng.standard_normal(layer.out_channels)
    f = sd.compile(layer, "cpu")
    got = f(x, w, b)
    np.testing.assert_allclose(got, _naive(layer, x, w, b), rtol=1e-12, atol=1e-12)
    got32 = f(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32))
    np.testing.assert_allclose(got32, got, rtol=1e-4, atol=1e-4 * (1 + np.abs(got).max()))


def test_layer_plan_tables_restate_the_offsets():
    """slot_plane / slot_shift: off = Q (shift + e_min) + r with r the plane's C-order index over Q."""
    layer = sd.Conv((3, 4), stride=(2, 3), padding=(1, 2), dilation=(2, 1), in_channels=2, out_channels=2)
    plan = LayerPlan.from_kernel_plan(LayerBinding(layer).plan)
    taps, planes, shifts = plan.tables()
    offsets = [off for ph in plan.phases for off in ph.offsets]
    assert list(taps) == list(np.cumsum([0] + [len(ph.offsets) for ph in plan.phases]))
    for s, off in enumerate(offsets):
        r = np.unravel_index(planes[s], plan.Q)
        for d in range(plan.ndim):
            assert off[d] == plan.Q[d] * (shifts[s, d] + plan.e_min[d]) + r[d]
            assert 0 <= shifts[s, d] <= plan.e_span[d]


def test_layer_plan_refuses_malformed_data():
    good = dict(P=(2,), Q=(1,), phases=(Phase((0,), ((0,),)), Phase((1,), ((0,), (1,)))))
    LayerPlan(**good)
    with pytest.raises(ValueError, match="every output phase once"):
        LayerPlan(P=(2,), Q=(1,), phases=(Phase((0,), ((0,),)),))
    with pytest.raises(ValueError, match="one entry per spatial dimension"):
        LayerPlan(P=(2,), Q=(1,), phases=(Phase((0,), ((0, 1),)), Phase((1,), ())))
    with pytest.raises(ValueError, match="paths"):
        LayerPlan(**good, paths=("stencil",))
    assert hash(LayerPlan(**good)) == hash(LayerPlan(**good)) and LayerPlan(**good) == LayerPlan(**good)


def test_choose_strategy_rules_and_reasons():
    phases = tuple(Phase(p, tuple(itertools.product((0, 1), repeat=3))) for p in itertools.product((0, 1), repeat=3))
    full = LayerPlan((2, 2, 2), (1, 1, 1), phases, ("gemm", "stencil", "winograd"))
    avx2 = machine_from("haswell", {"avx2", "fma"}, "x86_64")
    assert choose_strategy(full, 1, 1, avx2).path == "stencil"
    s = choose_strategy(full, WINO_MIN_CIN, 4, avx2)
    assert s.path == "winograd" and any("amortise" in r for r in s.reasons)
    s = choose_strategy(full, WINO_MIN_CIN - 1, 4, avx2)
    assert s.path == "gemm" and "Winograd path not taken" in str(s) and "avx2" in str(s)
    assert choose_strategy(full, 32, 6, avx2).path == "gemm"  # not whole 4-channel tiles
    gemm_only = LayerPlan((2, 2, 2), (1, 1, 1), phases)
    assert choose_strategy(gemm_only, 1, 1, avx2).path == "gemm"
    assert choose_strategy(gemm_only, 64, 64, avx2).path == "gemm"


def test_compiled_runtime_loads_from_the_disk_cache_in_a_new_process(tmp_path):
    """Two processes with one fresh Numba cache: the first compiles the runtime, the second loads it (and its
    serial and parallel drivers run correctly from there, through Numba's dispatchers and natively; a cached
    function that names a symbol of the threading layer before any parallel region started once crashed here)."""
    code = (
        "import numpy as np, symdeconv as sd\n"
        "from symdeconv.codegen import rt_driver\n"
        "layer = sd.ConvTranspose((3, 3), stride=2, padding=1, in_channels=3, out_channels=5)\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((1, 3, 4, 5)); w = rng.standard_normal(layer.weight_shape)\n"
        "M = np.array(layer.matrix((4, 5), weight=w).tolist(), float)\n"
        "f = sd.compile(layer)\n"
        "for rt_driver.NATIVE in (False, True):\n"
        "    for limit in (1 << 62, 0):  # serial, then parallel\n"
        "        rt_driver.SERIAL_MAX_MACS = limit\n"
        "        assert np.allclose(f(x, w).reshape(-1), M @ x.reshape(-1)), limit\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), SYMDECONV_CACHE_DIR=str(tmp_path / "sd"))
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO,
                              timeout=600)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
    assert any((tmp_path / "numba").rglob("*.nbi"))  # the second process had an index to load from


# a layer by its definition, in NumPy only (no symdeconv, no Numba): PyTorch's transposed convolution,
# y[n, o, s·i + k − p] += x[n, c, i] · w[c, o, k] per spatial dimension, then cropped to the output
_NAIVE_TRANSPOSED = """
import itertools
def naive_transposed(x, w, stride, padding):
    D = x.ndim - 2
    k = w.shape[2:]
    full = [(x.shape[2 + d] - 1) * stride + k[d] for d in range(D)]
    y = np.zeros((x.shape[0], w.shape[1], *full))
    for tap in itertools.product(*(range(v) for v in k)):
        window = tuple(slice(t, t + stride * (x.shape[2 + d] - 1) + 1, stride) for d, t in enumerate(tap))
        y[(slice(None), slice(None)) + window] += np.einsum("nc...,co->no...", x, w[(slice(None), slice(None)) + tap])
    return y[(slice(None), slice(None)) + tuple(slice(padding, f - padding) for f in full)]
"""


@pytest.mark.skipif(not native.enabled(), reason="native runtime objects are built on Linux x86-64 / AArch64 only")
def test_a_new_process_runs_cached_layers_without_importing_numba(tmp_path):
    """Once a machine has the runtime's object files, a new process computes GEMM-path, Winograd-path and
    stencil-carrying layers (on their GEMM path) from the disk caches without importing Numba, serially and
    on threads, and matches the layer's NumPy definition."""
    code = (
        "import sys, numpy as np, symdeconv as sd\n"
        "from symdeconv.codegen import rt_driver\n" + _NAIVE_TRANSPOSED +
        "rng = np.random.default_rng(0)\n"
        "cases = [((3, 3), 3, 5, (1, 3, 7, 6)), ((4, 4, 4), 16, 8, (2, 16, 3, 4, 5)), ((4,), 8, 8, (2, 8, 40))]\n"
        "for k, cin, cout, shape in cases:\n"
        "    layer = sd.ConvTranspose(k, stride=2, padding=1, in_channels=cin, out_channels=cout)\n"
        "    f = sd.compile(layer)\n"
        "    x = rng.standard_normal(shape); w = rng.standard_normal(layer.weight_shape)\n"
        "    for limit in (1 << 62, 0):  # serial, then parallel\n"
        "        rt_driver.SERIAL_MAX_MACS = limit\n"
        "        for dt, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):\n"
        "            got = f(x.astype(dt), w.astype(dt))\n"
        "            ref = naive_transposed(x, w, 2, 1)\n"
        "            assert np.allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max()), (k, limit, dt)\n"
        "print('numba' in sys.modules)\n"
    )
    # a fresh kernel cache (no object files yet); Numba's cache is the session's, so the first process loads
    # the runtime from there and writes its object files from Numba's cache entries
    env = dict(os.environ, SYMDECONV_CACHE_DIR=str(tmp_path / "sd"))
    imported = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        imported.append(proc.stdout.strip())
    assert imported == ["True", "False"]  # the first process compiled (with Numba), the second did not need it
    names = {p.name.split("-")[0] for p in (tmp_path / "sd" / "native").glob("*.o")}
    assert names == {"layers", "gather", "wino", "wino_weights"}


@pytest.mark.skipif(not native.enabled(), reason="native runtime objects are built on Linux x86-64 / AArch64 only")
def test_a_damaged_native_object_is_not_loaded(tmp_path, monkeypatch):
    """An object file whose bytes do not match its recorded hash is refused (never linked), and the call runs
    on Numba's dispatcher with the right result; unknown files are ignored the same way."""
    monkeypatch.setenv("SYMDECONV_CACHE_DIR", str(tmp_path))
    x = np.arange(8.0).reshape(1, 2, 4)
    w = np.ones((2, 2, 3))
    base = native.artifact_path("layers", "float64")
    base.parent.mkdir(parents=True)
    base.with_suffix(".o").write_bytes(b"\x7fELF" + bytes(100))
    base.with_suffix(".json").write_text('{"symbol": "f", "args": [], "head": 0, "sha256": "0"}')
    assert native.load("layers", "float64", retry=True) is None
    layer = sd.ConvTranspose(3, stride=1, padding=1, in_channels=2, out_channels=2)
    got = sd.compile(layer)(x, w)
    ref = np.array(layer.matrix((4,), weight=w).tolist(), float) @ x.reshape(-1)
    np.testing.assert_allclose(got.reshape(-1), ref)


def test_more_dimensions_than_the_runtime_holds_are_refused():
    """The geometry vector has room for MAX_NDIM spatial dimensions: a layer with more gets a SymdeconvError
    naming the limit (never a write past its fields)."""
    n = rt_layers.MAX_NDIM + 1
    layer = sd.ConvTranspose((1,) * n, stride=1, padding=0, in_channels=2, out_channels=2)
    f = sd.compile(layer, "cpu")
    x = np.ones((1, 2) + (2,) * n)
    w = np.ones(layer.weight_shape)
    with pytest.raises(sd.SymdeconvError, match=f"at most {rt_layers.MAX_NDIM}"):
        f(x, w)


def test_precompile_runs_every_runtime_path(monkeypatch, tmp_path):
    """``python -m symdeconv.codegen.precompile`` (run by the test session's controller before its workers)
    runs the GEMM-like runtime and the Winograd path through Numba, each on one thread and in parallel, and
    writes the native object of every runtime function."""
    from symdeconv.codegen import precompile

    seen = set()
    real = rt_driver._numba_function

    def spy(entry, parallel):
        seen.add((entry, parallel))
        return real(entry, parallel)

    monkeypatch.setattr(rt_driver, "_numba_function", spy)
    monkeypatch.setenv("SYMDECONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(rt_driver, "_tried", set())
    assert precompile.main(["float32"]) == 0
    assert {("layers", False), ("layers", True), ("wino", False), ("wino", True)} <= seen
    if native.enabled():
        names = {p.name.split("-")[0] for p in (tmp_path / "native").glob("*-float32-*.o")}
        assert names == {"layers", "gather", "wino", "wino_weights"}


def test_full_width_makes_llvm_use_the_machines_vector_registers():
    """On an AVX-512 machine the runtime's loops use 512-bit registers, also on Intel CPUs whose LLVM tuning
    prefers 256 bits (there the register tiles, sized for 32 zmm registers, would spill as ymm code)."""
    import numba

    from symdeconv.codegen.machine import host_machine
    from symdeconv.codegen.runtime import full_width

    if host_machine().isa != "avx512":
        pytest.skip("the host compiles for no AVX-512 target")

    @numba.njit(fastmath={"contract"})
    def axpy(y, a, x):
        full_width()
        for i in range(y.shape[0]):
            y[i] += a * x[i]

    y = np.zeros(256, np.float32)
    axpy(y, np.float32(2.0), np.ones(256, np.float32))
    np.testing.assert_array_equal(y, 2.0)
    assert "zmm" in "".join(axpy.inspect_asm().values())


def test_blocks_keep_their_input_planes_in_half_of_l2(monkeypatch):
    """With a small L2 a layer's rows are cut into blocks whose planes fit half of it, and the result is
    still the layer's definition (blocks of one row, seams between every two)."""
    layer = sd.Conv((3, 3), stride=2, padding=1, in_channels=16, out_channels=8)
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((1, 16, 20, 24)), rng.standard_normal(layer.weight_shape), rng.standard_normal(8)
    plan = LayerPlan.from_kernel_plan(LayerBinding(layer).plan)
    lo = tuple(int(a) for a, _ in layer.window(x.shape[2:]))
    out = tuple(layer.output_shape(x.shape[2:]))
    fields = rt_driver.G_FIELDS
    for l2 in (1 << 21, 1 << 14):
        monkeypatch.setattr(rt_driver, "l2_bytes", lambda: l2)
        g = rt_driver._geometry(plan, x.shape, (1, 8) + out, 1, lo, 16, 8)[0]
        planes = 16 * g[fields["n_planes"]] * g[fields["S0"]] * 8  # bytes of one plane row, every channel
        assert g[fields["block_rows"]] == 1 or g[fields["block_rows"]] * planes <= l2 // 2
        if l2 < 1 << 20:
            assert g[fields["row_blocks"]] == g[fields["rows"]]  # one row per block
            f = sd.compile(layer, "cpu")
            np.testing.assert_allclose(f(x, w, b), _naive(layer, x, w, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c_out", [4, 16, 20, 22, 36])
@pytest.mark.parametrize("parallel", [False, True])
def test_groups_of_channel_blocks_equal_the_definition(c_out, parallel, monkeypatch):
    """A work item multiplies each tile of inputs by up to CO_GROUP blocks of CO_BLOCK output channels: one
    block, whole groups, a short last group, and channels left over from whole blocks, on one thread and in
    parallel, against ConvTranspose2d by its definition (every input sample scatters its taps, NumPy)."""
    if parallel:
        monkeypatch.setattr(rt_driver, "SERIAL_MAX_MACS", 0)
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=6, out_channels=c_out)
    rng = np.random.default_rng(c_out)
    x, w, b = rng.standard_normal((2, 6, 9, 7)), rng.standard_normal(layer.weight_shape), rng.standard_normal(c_out)
    full = np.zeros((2, c_out, 2 * 9 + 2, 2 * 7 + 2))
    for ky in range(4):
        for kx in range(4):
            full[:, :, ky:ky + 18:2, kx:kx + 14:2] += np.einsum("nchw,co->nohw", x, w[:, :, ky, kx])
    want = full[:, :, 1:-1, 1:-1] + b[None, :, None, None]
    np.testing.assert_allclose(sd.compile(layer, "cpu")(x, w, b), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride_2_planes_of_long_rows_equal_the_definition(dtype):
    """A stride-2 Conv2d whose input rows fill plane rows longer than a vector (``runtime.copy_even``, its
    last vector masked) against PyTorch's Conv2d by its definition: the
    zero-padded input sampled every other row and column under each tap (NumPy, float64)."""
    layer = sd.Conv((3, 3), stride=2, padding=1, in_channels=3, out_channels=5)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 21, 75)).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = ((21 + 2 - 3) // 2 + 1, (75 + 2 - 3) // 2 + 1)
    want = b[None, :, None, None] + sum(
        np.einsum("oc,ncij->noij", w[:, :, ky, kx], xp[:, :, ky:ky + 2 * out[0] - 1:2, kx:kx + 2 * out[1] - 1:2])
        for ky in range(3) for kx in range(3))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(sd.compile(layer, "cpu")(x, w, b), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_row_writes_runs_at_any_alignment(dtype):
    """``runtime.stream_row`` writes exactly ``y[start + i] = src[i]`` (whole lines streamed, the rest not) for
    runs that start at every offset within a line and are shorter than, as long as, or longer than a line,
    and for a row whose address is not a multiple of its itemsize (nothing streamed); also after
    ``stream_ready`` streamed the lines below some ``ready`` (what it writes is exactly those elements' lines,
    and ``stream_row`` then writes the rest, not those lines again: their source is changed in between)."""
    from symdeconv.codegen._alloc import LINE_BYTES
    from symdeconv.codegen.runtime import stream_ready, stream_row

    rng = np.random.default_rng(7)
    lanes = LINE_BYTES // np.dtype(dtype).itemsize
    base = np.empty(8 * lanes + lanes, dtype=dtype)
    shift = (-base.ctypes.data % LINE_BYTES) // base.itemsize
    row = base[shift:shift + 8 * lanes]  # starts on a line
    raw = np.empty((8 * lanes + 1) * base.itemsize + 1, dtype=np.uint8)
    odd = raw[1:1 + 8 * lanes * base.itemsize].view(dtype)  # (NumPy's view of memory off the element grid)
    for target in (row, odd):
        for start in range(lanes + 1):
            for count in (0, 1, lanes - 1, lanes, lanes + 3, 7 * lanes - start):
                src = rng.standard_normal(8 * lanes).astype(dtype)
                target[:] = np.nan
                stream_row(target, start, src, count, 0)
                expect = np.full(target.shape, np.nan, dtype=dtype)
                expect[start:start + count] = src[:count]
                np.testing.assert_array_equal(target, expect)
                for ready in (0, 1, lanes, 3 * lanes + 2, count):
                    if ready > count:
                        continue
                    target[:] = np.nan
                    done = stream_ready(target, start, src, ready, 0)
                    head = (-(target[start:].ctypes.data) % LINE_BYTES) // target.itemsize
                    if target is odd:
                        assert done == 0  # nothing is streamed off the element grid
                    else:
                        assert done == max(0, (ready - head) // lanes)
                    written = ~np.isnan(target)
                    expect_lines = np.zeros(target.shape, bool)
                    expect_lines[start + head:start + head + done * lanes] = True
                    np.testing.assert_array_equal(written, expect_lines)
                    assert stream_ready(target, start, src, ready, done) == done  # nothing twice
                    marked = src.copy()
                    marked[:head + done * lanes] = -7.0  # what stream_row must not write again
                    marked[:head] = src[:head]
                    stream_row(target, start, marked, count, done)
                    expect = np.full(target.shape, np.nan, dtype=dtype)
                    expect[start:start + count] = src[:count]
                    np.testing.assert_array_equal(target, expect)


def _scatter_k4_s2_p1(x, w):
    """ConvTranspose (kernel 4, stride 2, padding 1, depthwise or 1 → 1) by its definition: every input
    sample scatters its taps, y[2 i + k − 1] += w[k] · x[i] per dimension (NumPy, float64)."""
    D = x.ndim - 2
    full = np.zeros(x.shape[:2] + tuple(2 * n + 2 for n in x.shape[2:]))
    for k in np.ndindex(*(4,) * D):
        at = (slice(None), slice(None)) + tuple(slice(kd, kd + 2 * n, 2) for kd, n in zip(k, x.shape[2:]))
        full[at] += w[(slice(None), 0) + k][None, :, *([None] * D)] * x
    return full[(slice(None), slice(None)) + (slice(1, -1),) * D]


@pytest.mark.parametrize("case", ["long rows", "short rows of whole lines", "short rows, out= off a line",
                                  "1-D chunks", "1-D chunks, out= off a line"])
def test_streamed_stencil_equals_the_definition(case, monkeypatch):
    """Stencil outputs large enough to be streamed (STREAM_MIN_BYTES): rows of 2,048 float32, rows of 128
    (whole lines when the output starts on a line; not streamed when it does not), a 1-D row cut into work
    items of STENCIL_CHUNK blocks (each streamed from its own first output) — each equals its definition."""
    from symdeconv.codegen.machine import STREAM_MIN_BYTES

    monkeypatch.delenv("SYMDECONV_STREAM_MIN_BYTES", raising=False)
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")  # (the stencil from the first call)

    shape, groups = {"long rows": ((1, 1, 520, 1024), 1), "short rows of whole lines": ((8, 8, 64, 64), 8),
                     "short rows, out= off a line": ((8, 8, 64, 64), 8), "1-D chunks": ((1, 1, 600_001), 1),
                     "1-D chunks, out= off a line": ((1, 1, 600_001), 1)}[case]
    D = len(shape) - 2
    layer = sd.ConvTranspose((4,) * D, stride=2, padding=1, in_channels=shape[1], out_channels=shape[1],
                             groups=groups)
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(layer.weight_shape).astype(np.float32)
    f = sd.compile(layer, "cpu")
    if "off a line" in case:
        y_shape = shape[:2] + tuple(2 * n for n in shape[2:])
        raw = np.empty(int(np.prod(y_shape)) + 32, np.float32)
        skip = (-raw.ctypes.data % 64) // 4 + 4  # 16 bytes past a line
        got = f(x, w, out=raw[skip:skip + int(np.prod(y_shape))].reshape(y_shape))
    else:
        got = f(x, w)
    assert got.nbytes >= STREAM_MIN_BYTES
    np.testing.assert_allclose(got, _scatter_k4_s2_p1(x.astype(np.float64), w), rtol=1e-4, atol=1e-4)
