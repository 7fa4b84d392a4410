"""Tiled CUDA kernels (shared-memory input tiles) and their fallbacks, in the CUDA simulator.

Every path the CUDA emitter can choose is run here against an oracle that is not the code under test:

* the tiled kernel with the default tile (what ``sd.compile`` emits), on outputs large enough for the
  launcher to pick it, against naive NumPy definitions of the layers and of ``upfirdn``;
* the tiled kernel with *small* tiles (``emit_cuda(plan, tile=...)``), so that tiny inputs cross many
  tile borders (partial tiles, windows starting inside a block, several channel steps), against the
  symbolic matrix (``layer.matrix`` / ``op.matrix``: every basis vector plus random inputs);
* ``kernel_simple`` beside a tiled kernel (planes smaller than half a tile) and the simple-only modules
  (3-D plans, halos too large for shared memory).

The simulator runs every thread as a Python thread, so launches stay small (a few thread blocks).
The same modules are compiled to PTX without the simulator in ``test_cuda.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.codegen.api import plan as make_plan
from symdeconv.codegen.emit_cuda import LAYER_TILE_2D, ROWS, SHARED_LIMIT, TILE, emit_cuda, tile_layout
from symdeconv.verify.check import check_chain, check_layer

from .helpers import np_upfirdn

pytest.importorskip("numba")

simulator = pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", reason="runs CUDA kernels in the simulator"
)
a = sp.Symbol("a")

#: tiles of a few threads: tiny inputs then span several tiles in every dimension
SMALL_TILE = {1: (4,), 2: (2, 4)}
#: 2-D layer kernels compute several blocks per thread along dimension 0: small tiles keep that
SMALL_LAYER_TILE_2D, SMALL_ROWS = (4, 4), 2


def compile_with_tile(obj, tmp_path: Path, name: str, tile=None, rows=None, tiled: bool = True):
    """Emit ``obj``'s CUDA module with a given tile into ``tmp_path`` and load it like ``sd.compile``."""
    p = make_plan(obj, name)
    path = tmp_path / f"{name}.py"
    path.write_text(emit_cuda(p, tile=tile, rows=rows, tiled=tiled))
    return sd.compile(obj, "cuda", name=name, path=path)


def forbid(monkeypatch, module, name: str) -> None:
    """Make ``module.<name>`` fail if called (until the test ends): proves which emitted path a launch took."""

    def fail(*args, **kwargs):
        raise AssertionError(f"{name} was not supposed to run")

    class Refuse:
        def __getitem__(self, launch_config):
            return fail

    monkeypatch.setattr(module, name, Refuse() if name.startswith("kernel") else fail)


# --- naive NumPy oracles (PyTorch's definitions) ------------------------------------------------------


def np_conv_transpose(x, w, stride: int, padding: int, groups: int = 1):
    """y[n, g·C_out/G + o, s·i + k − p] += x[n, g·C_in/G + c, i] · w[g·C_in/G + c, o, k], 1-D or 2-D."""
    cin_g, cout_g = x.shape[1] // groups, w.shape[1]
    k = w.shape[2:]
    full_shape = tuple((n - 1) * stride + kk for n, kk in zip(x.shape[2:], k))
    full = np.zeros((x.shape[0], cout_g * groups) + full_shape)
    for g in range(groups):
        xs = x[:, g * cin_g:(g + 1) * cin_g].astype(np.float64)
        ws = w[g * cin_g:(g + 1) * cin_g].astype(np.float64)
        for tap in np.ndindex(*k):
            where = tuple(slice(t, t + (n - 1) * stride + 1, stride) for t, n in zip(tap, x.shape[2:]))
            contrib = np.einsum("ni...,io->no...", xs, ws[(slice(None), slice(None)) + tap])
            full[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + where] += contrib
    crop = tuple(slice(padding, s - padding) for s in full_shape)
    return full[(slice(None), slice(None)) + crop]


def np_conv2d(x, w, stride: int, padding: int):
    """PyTorch's Conv2d (cross-correlation) with zero padding."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[2:]
    oh, ow = (xp.shape[2] - kh) // stride + 1, (xp.shape[3] - kw) // stride + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride]
            y += np.einsum("nihw,oi->nohw", patch, w[:, :, i, j].astype(np.float64))
    return y


# --- the strategy the generator chooses ---------------------------------------------------------------


def test_strategy_follows_the_plan_structure():
    tiled_2d = make_plan(sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=4, out_channels=4))
    layout = tile_layout(tiled_2d)
    assert layout is not None and layout.tile == LAYER_TILE_2D and layout.rows == ROWS
    assert layout.low == (-1, -1) and layout.high == (1, 1) and layout.shared_bytes(tiled_2d) <= SHARED_LIMIT
    chain_2d = make_plan(sd.conv([[1, 2], [3, 4]]) @ sd.up((2, 2)))
    assert tile_layout(chain_2d).tile == TILE[2] and tile_layout(chain_2d).rows == 1  # literal taps: no weights
    assert tile_layout(make_plan(sd.ConvTranspose(4, stride=2, padding=1))).rows == 1  # 1-D: one block per thread
    assert tile_layout(make_plan(sd.ConvTranspose((4, 4, 4), stride=2, padding=1))) is None  # 3-D: simple kernel
    huge_halo = make_plan(sd.Conv((3, 3), stride=1, padding=0, dilation=(150, 150)))
    assert tile_layout(huge_halo) is None  # the input tile would not fit in shared memory
    src = emit_cuda(huge_halo)
    assert 'STRATEGY = "simple"' in src and "cuda.shared" not in src and "kernel_simple" not in src
    src = emit_cuda(tiled_2d)
    assert 'STRATEGY = "tiled"' in src and "cuda.shared.array(X_TILE, x.dtype)" in src and f"ROWS = {ROWS}" in src
    assert "def kernel_simple(" in src and "atomic" not in src
    assert "y_tile" in src  # two phases along the last dimension: outputs staged for coalesced stores
    strided = emit_cuda(make_plan(sd.Conv((3, 3), stride=2, padding=1)))
    assert 'STRATEGY = "tiled"' in strided and "y_tile" not in strided  # one phase: stored directly


def test_tile_argument_is_checked():
    p = make_plan(sd.ConvTranspose(4, stride=2, padding=1))
    with pytest.raises(sd.SymdeconvError, match="tile"):
        emit_cuda(p, tile=(0,))
    with pytest.raises(sd.SymdeconvError, match="tile"):
        emit_cuda(p, tile=(4, 4))
    with pytest.raises(sd.SymdeconvError, match="rows"):
        emit_cuda(p, rows=2)  # several blocks per thread: 2-D layer kernels only
    with pytest.raises(sd.SymdeconvError, match="rows"):
        emit_cuda(make_plan(sd.ConvTranspose((4, 4), stride=2, padding=1)), tile=(6, 4), rows=4)


# --- small tiles: many tile borders on tiny inputs, checked against the symbolic matrix -----------------

SMALL_LAYERS = {
    "convT1d_k4_s2_p1_groups": (
        lambda: sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=4, groups=2), [(5,)]),
    "convT1d_k3_s3_op2_channel_steps": (
        lambda: sd.ConvTranspose(3, stride=3, padding=1, output_padding=2, in_channels=9, out_channels=1), [(3,)]),
    "convT2d_k4_s2_p1": (
        lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=1, out_channels=2), [(3, 5)]),
    "convT2d_k3_s2_p1_op1": (
        lambda: sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=1),
        [(2, 4)]),
    "conv2d_strided_anisotropic": (
        lambda: sd.Conv((2, 3), stride=(1, 2), padding=((0, 1), (2, 0)), in_channels=1, out_channels=2), [(3, 8)]),
    "conv1d_strided_dilated_depthwise": (
        lambda: sd.Conv(3, stride=2, padding=2, dilation=2, in_channels=2, out_channels=2, groups=2), [(9,)]),
}


@simulator
@pytest.mark.parametrize("name", sorted(SMALL_LAYERS))
def test_small_tile_layer_kernel_equals_layer_matrix(name, tmp_path, monkeypatch):
    build, shapes = SMALL_LAYERS[name]
    layer = build()
    if layer.ndim == 2:
        f = compile_with_tile(layer, tmp_path, name, SMALL_LAYER_TILE_2D, SMALL_ROWS)
        assert f.module.ROWS == SMALL_ROWS
    else:
        f = compile_with_tile(layer, tmp_path, name, SMALL_TILE[1])
    assert f.module.STRATEGY == "tiled"
    forbid(monkeypatch, f.module, "launch_simple")
    dtype = np.float32 if "convT2d_k4" in name else np.float64  # float32 accumulates in float32
    result = check_layer(f, layer, shapes, dtype, rng=np.random.default_rng(3), n_random=1)
    assert result.ok, result.row()


@simulator
@pytest.mark.parametrize("name", ["convT2d_k4_s2_p1", "conv2d_strided_anisotropic"])
def test_small_tile_layer_kernel_with_one_block_per_thread(name, tmp_path, monkeypatch):
    """The 2-D layer kernel with rows=1 (one block per thread, as 1-D layers and chains)."""
    build, shapes = SMALL_LAYERS[name]
    layer = build()
    f = compile_with_tile(layer, tmp_path, name, SMALL_TILE[2], rows=1)
    assert f.module.STRATEGY == "tiled" and not hasattr(f.module, "ROWS")
    forbid(monkeypatch, f.module, "launch_simple")
    result = check_layer(f, layer, shapes, np.float64, rng=np.random.default_rng(5), n_random=1)
    assert result.ok, result.row()


SMALL_CHAINS = {
    "resampler_up3_down2": (lambda: sd.upfirdn(sd.taps("h", 5), 3, 2), [7]),
    "hold_then_conv_negative_window": (lambda: sd.shift(-3) @ sd.conv(sd.taps("q", 3)) @ sd.hold(2), [6]),
    "channel_mixing": (lambda: sd.channel_conv([[[1, 2], [a, 0]], [[0, 1], [3, 4]], [[1, 1], [1, 2]]]) @ sd.up(2, 2), [5]),
    "bilinear_2d": (
        lambda: sd.shift((-1, -1)) @ sd.conv([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]]) @ sd.up((2, 2)),
        [(3, 4)]),
}


@simulator
@pytest.mark.parametrize("name", sorted(SMALL_CHAINS))
def test_small_tile_chain_kernel_equals_matrix(name, tmp_path, monkeypatch):
    build, sizes = SMALL_CHAINS[name]
    op = build()
    f = compile_with_tile(op, tmp_path, name, SMALL_TILE[op.ndim])
    assert f.module.STRATEGY == "tiled"
    forbid(monkeypatch, f.module, "launch_simple")
    result = check_chain(f, op, sizes, np.float64, rng=np.random.default_rng(4), n_random=1)
    assert result.ok, result.row()


# --- default tiles: the kernels sd.compile emits, on outputs that fill a tile ----------------------------


@simulator
def test_default_tile_conv_transpose2d_with_channel_steps_matches_numpy(monkeypatch):
    """Three input-channel steps (10 = 4 + 4 + 2), two tiles along dimension 0, ROWS per thread, staged stores."""
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=10, out_channels=1)
    f = sd.compile(layer, "cuda")
    assert f.module.STRATEGY == "tiled" and f.module.CHANNELS == 4 and f.module.ROWS == ROWS
    forbid(monkeypatch, f.module, "launch_simple")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 10, 18, 17)).astype(np.float32)
    w = rng.standard_normal((10, 1, 4, 4)).astype(np.float32)
    bias = rng.standard_normal(1).astype(np.float32)
    y = f(x, w, bias)
    expect = np_conv_transpose(x, w, 2, 1) + bias.reshape(1, -1, 1, 1)
    assert y.dtype == np.float32 and y.shape == expect.shape == (1, 1, 36, 34)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)


@simulator
def test_default_tile_depthwise_and_strided_conv_match_numpy(monkeypatch):
    rng = np.random.default_rng(8)
    depthwise = sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=2, groups=2)
    f = sd.compile(depthwise, "cuda")
    forbid(monkeypatch, f.module, "launch_simple")
    x = rng.standard_normal((1, 2, 70))
    w = rng.standard_normal((2, 1, 4))
    np.testing.assert_allclose(f(x, w), np_conv_transpose(x, w, 2, 1, groups=2), atol=1e-12)

    strided = sd.Conv((3, 3), stride=2, padding=1, in_channels=1, out_channels=1)  # P = 1: stored without staging
    g = sd.compile(strided, "cuda")
    assert g.module.STRATEGY == "tiled" and not hasattr(g.module, "Y_TILE")
    forbid(monkeypatch, g.module, "launch_simple")
    x = rng.standard_normal((1, 1, 5, 36))
    w = rng.standard_normal((1, 1, 3, 3))
    np.testing.assert_allclose(g(x, w), np_conv2d(x, w, 2, 1), atol=1e-12)


@simulator
def test_default_tile_resampler_matches_upfirdn(monkeypatch):
    op = sd.upfirdn(sd.taps("h", 8), 3, 2)
    f = sd.compile(op, "cuda")
    assert f.module.STRATEGY == "tiled"
    forbid(monkeypatch, f.module, "launch_simple")
    rng = np.random.default_rng(9)
    h, x = rng.standard_normal(8), rng.standard_normal((1, 160))
    y = f(x, h)
    expect = np_upfirdn(h, x[0], 3, 2)
    np.testing.assert_allclose(y[0, : len(expect)], expect, atol=1e-12)


@simulator
def test_small_planes_take_the_simple_kernel(monkeypatch):
    """Fewer than half a tile of blocks along the last dimension: kernel_simple does the work."""
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=1, out_channels=1)
    f = sd.compile(layer, "cuda")
    forbid(monkeypatch, f.module, "kernel")
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((1, 1, 4, 4))
    np.testing.assert_allclose(f(x, w), np_conv_transpose(x, w, 2, 1), atol=1e-12)


@simulator
def test_simple_only_module_for_a_huge_halo(tmp_path):
    layer = sd.Conv(3, stride=1, padding=0, dilation=3000, in_channels=1, out_channels=1)
    f = compile_with_tile(layer, tmp_path, "huge_halo")
    assert f.module.STRATEGY == "simple" and not hasattr(f.module, "kernel_simple")
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((1, 1, 6010)), rng.standard_normal((1, 1, 3))
    expect = sum(w[0, 0, k] * x[0, 0, 3000 * k: 3000 * k + 10] for k in range(3))
    np.testing.assert_allclose(f(x, w)[0, 0], expect, atol=1e-12)


# --- the simple kernels' accumulator: the data's dtype ------------------------------------------------

SIMPLE_LAYERS = {  # (layer, x shape): every output goes through a simple kernel
    "kernel_simple_2d_groups": (  # small planes beside a tiled kernel
        lambda: sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=4, out_channels=2, groups=2), (2, 4, 3, 4)),
    "simple_only_3d_groups": (  # 3-D: the module holds only the simple kernel
        lambda: sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=2, out_channels=4, groups=2),
        (1, 2, 2, 3, 2)),
}


def _simple_module(name: str, monkeypatch):
    layer = SIMPLE_LAYERS[name][0]()
    f = sd.compile(layer, "cuda")
    if f.module.STRATEGY == "tiled":
        forbid(monkeypatch, f.module, "kernel")  # the launcher must take kernel_simple
    return layer, f


@simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SIMPLE_LAYERS))
def test_simple_kernels_match_numpy_and_the_cpu_kernel(name, dtype, monkeypatch):
    """The simple kernels (groups, bias) in float32 and float64: the data's dtype out, equal to the CPU
    kernel and (2-D) to the naive NumPy transposed convolution within the dtype's rounding."""
    layer, f = _simple_module(name, monkeypatch)
    rng = np.random.default_rng(12)
    x = rng.standard_normal(SIMPLE_LAYERS[name][1]).astype(dtype)
    w = rng.standard_normal(layer.weight_shape).astype(dtype)
    bias = rng.standard_normal(int(layer.out_channels)).astype(dtype)
    y = f(x, w, bias)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype
    np.testing.assert_allclose(y, sd.compile(layer, "cpu")(x, w, bias), rtol=tol, atol=tol)
    if layer.ndim == 2:
        expect = np_conv_transpose(x, w, 2, 1, groups=2) + bias.reshape(1, -1, 1, 1)
        np.testing.assert_allclose(y, expect, rtol=tol, atol=tol)


@simulator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SIMPLE_LAYERS))
def test_simple_kernels_accumulate_in_the_data_dtype(name, dtype, monkeypatch):
    """Bias 1 plus taps of half an ulp of 1 each: a simple kernel adds the bias first, then its taps one by one,
    so in the data's dtype every sum rounds back to 1 exactly (ties to even); a float64 accumulator of
    float32 data would end at 1 + k·2⁻²⁴ with k taps, rounded to float32 at the store (≠ 1 for k ≥ 2).
    (In the simulator NumPy's scalar rules already keep float32; on a GPU this checks the kernel's types.)"""
    layer, f = _simple_module(name, monkeypatch)
    half_ulp = np.finfo(dtype).eps / 2
    x = np.ones(SIMPLE_LAYERS[name][1], dtype=dtype)
    w = np.full(layer.weight_shape, half_ulp, dtype=dtype)
    y = f(x, w, np.ones(int(layer.out_channels), dtype=dtype))
    assert y.dtype == dtype and np.all(y == 1)
