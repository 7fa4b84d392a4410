"""Layer kernels (sd.Conv / sd.ConvTranspose, every convention) checked against ``layer.matrix``.

The oracle is the layer's SymPy matrix with the random weights substituted (built from sparse products
of the primitives, not from the normal form the kernel came from), applied to every basis vector and to
random inputs; the bias is checked from its definition.
"""

from __future__ import annotations

import numpy as np
import pytest

import symdeconv as sd
from symdeconv.codegen.api import LayerBinding
from symdeconv.verify.check import check_layer

pytest.importorskip("numba")

LAYERS = {
    "convT1d_k4_s2_p1_groups": (
        lambda: sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=4, groups=2), [(1,), (4,)]),
    "convT1d_k3_s3_op2_d1": (
        lambda: sd.ConvTranspose(3, stride=3, padding=1, output_padding=2, in_channels=1, out_channels=2), [(3,)]),
    "convT2d_k3_s2_p1_op1": (
        lambda: sd.ConvTranspose((3, 3), stride=2, padding=1, output_padding=1, in_channels=2, out_channels=1),
        [(2, 3)]),
    "convT2d_dilated": (
        lambda: sd.ConvTranspose((2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1), in_channels=1, out_channels=2),
        [(3, 2)]),
    "conv1d_strided_dilated": (
        lambda: sd.Conv(3, stride=2, padding=2, dilation=2, in_channels=3, out_channels=3, groups=3), [(7,)]),
    "conv2d_anisotropic": (
        lambda: sd.Conv((2, 3), stride=(1, 2), padding=((0, 1), (2, 0)), in_channels=2, out_channels=2), [(3, 4)]),
    "conv3d_k2_s2": (lambda: sd.Conv((2, 2, 2), stride=2, padding=0, in_channels=1, out_channels=2), [(3, 2, 4)]),
    "tf_conv2d_same_stride_channels_last": (
        lambda: sd.Conv((3, 3), stride=2, padding="SAME", in_channels=2, out_channels=2, convention="tf"),
        [(4, 5), (5, 5)]),
    "tf_convT2d_same_channels_last": (
        lambda: sd.ConvTranspose((3, 3), stride=2, padding="SAME", in_channels=1, out_channels=2, convention="tf"),
        [(2, 3)]),
    "jax_conv1d_lhs_dilation": (
        lambda: sd.Conv(3, stride=1, padding=((1, 1),), lhs_dilation=2, in_channels=1, out_channels=1, convention="jax"),
        [(4,)]),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("calls", ["own kernel", "runtime first"])
def test_layer_kernel_equals_layer_matrix(name, dtype, calls, monkeypatch):
    """Each layer against its matrix; a one-channel-per-group layer on both of its paths: its stencil, and
    the shared runtime that its first calls take (rt_driver.RUNTIME_CALLS)."""
    from symdeconv.codegen.emit_cpu_stencil import STENCIL_MAX_NDIM

    build, shapes = LAYERS[name]
    layer = build()
    f = sd.compile(layer, "cpu")
    groups = int(layer.groups)
    one_channel = int(layer.in_channels) == int(layer.out_channels) == groups
    if calls == "runtime first" and not (one_channel and int(layer.ndim) <= STENCIL_MAX_NDIM):
        pytest.skip("one path only: no stencil for this layer")
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0" if calls == "own kernel" else "1000")
    result = check_layer(f, layer, shapes, dtype, rng=np.random.default_rng(5))
    assert result.ok, result.row()


@pytest.mark.parametrize("name", ["convT2d_k3_s2_p1_op1", "tf_conv2d_same_stride_channels_last", "conv3d_k2_s2"])
def test_layer_kernel_in_cuda_simulator(name):
    import os

    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("the CUDA simulator is not enabled")
    build, shapes = LAYERS[name]
    layer = build()
    result = check_layer(sd.compile(layer, "cuda"), layer, shapes, np.float64, rng=np.random.default_rng(6))
    assert result.ok, result.row()


def test_kernels_specialise_on_structure_only():
    """Channels, groups and output_padding are runtime data: one kernel file for all of them."""
    a = LayerBinding(sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=4, groups=2))
    b = LayerBinding(sd.ConvTranspose((4, 4), stride=2, padding=1, output_padding=1, in_channels=3, out_channels=1))
    c = LayerBinding(sd.ConvTranspose((4, 4), stride=2, padding=0, in_channels=1, out_channels=1))
    assert a.plan.key("cpu") == b.plan.key("cpu") != c.plan.key("cpu")
    assert a.plan.n_slots == 16 and len(a.plan.phases) == 4  # 4 taps per phase, none by an inserted zero
    assert all(len(ph.slots) == 4 for ph in a.plan.phases)


def test_unbatched_input_and_bias():
    layer = sd.ConvTranspose(4, stride=2, padding=1, in_channels=2, out_channels=3)
    f = sd.compile(layer, "cpu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5))
    w = rng.standard_normal(layer.weight_shape)
    b = rng.standard_normal(3)
    np.testing.assert_allclose(f(x, w, b), f(x[None], w, b)[0])
    M = np.array(layer.matrix((5,), weight=w).tolist(), float)
    np.testing.assert_allclose(f(x, w, b).reshape(-1), M @ x.reshape(-1) + np.repeat(b, 10), atol=1e-12)


def test_emitted_layer_module_holds_its_normal_form_as_data():
    """The module's PLAN lists, per output phase, exactly the tap offsets of the layer's normal form
    (read from the normal form itself, not from the emitter); channels and groups are runtime values."""
    layer = sd.ConvTranspose((4, 4), stride=2, padding=1)
    f = sd.compile(layer, "cpu")
    assert "DO NOT EDIT" in f.source and "rate 2/1, 2/1, period 2, 2" in f.source
    nf = sd.canonical(layer.operator)
    expected = {p: sorted(off for (_, off) in row) for (p, _), row in nf.taps.items()}
    got = {ph.phase: sorted(ph.offsets) for ph in f.module.PLAN.phases}
    assert got == expected and f.module.PLAN.n_slots == f.module.N_SLOTS == 16
    assert f.source == sd.emit(sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=8, out_channels=8, groups=4),
                               "cpu")


@pytest.fixture(scope="module")
def layer_f():
    layer = sd.ConvTranspose((3, 3), stride=2, padding=1, in_channels=2, out_channels=4, groups=2)
    return layer, sd.compile(layer, "cpu")


@pytest.mark.parametrize(
    "x_shape, x_dtype, w_change, bias, match",
    [
        ((1, 3, 4, 4), np.float32, None, None, "x has 3 channels but the layer has in_channels=2"),
        ((2, 4), np.float32, None, None, r"x must have shape \(N, C, \*spatial\)"),
        ((1, 2, 4, 4), np.int64, None, None, "dtype float32 or float64"),
        ((1, 2, 4, 4), np.float32, "shape", None, r"weight must have shape \(2, 2, 3, 3\)"),
        ((1, 2, 4, 4), np.float32, "dtype", None, "weight has dtype float64 but x has float32"),
        ((1, 2, 4, 4), np.float32, None, np.zeros(3, np.float32), r"bias must have shape \(4,\)"),
        ((1, 2, 4, 4), np.float32, None, np.zeros(4, np.float64), "bias has dtype float64"),
        ((1, 2, 4, 4), np.float32, None, "four", "bias must be a NumPy array or array-like of numbers"),
    ],
)
def test_bad_input_to_compiled_layer(layer_f, x_shape, x_dtype, w_change, bias, match):
    layer, f = layer_f
    x = np.zeros(x_shape, dtype=x_dtype)
    w = np.zeros(layer.weight_shape, dtype=np.float32)
    if w_change == "shape":
        w = np.zeros((2, 2, 3, 2), dtype=np.float32)
    elif w_change == "dtype":
        w = w.astype(np.float64)
    with pytest.raises(sd.SymdeconvError, match=match):
        f(x, w, bias)


def test_non_contiguous_list_and_too_small_inputs(layer_f):
    """Strided views give what their contiguous copies give; lists for the weight and bias take x's dtype."""
    layer, f = layer_f
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((1, 2, 4, 8)).astype(np.float32)[..., ::2]
    ws = rng.standard_normal((2, 2, 3, 6)).astype(np.float32)[..., ::2]
    want = f(np.ascontiguousarray(xs), np.ascontiguousarray(ws))
    np.testing.assert_array_equal(f(xs, ws), want)
    np.testing.assert_array_equal(f(np.asfortranarray(xs), ws.tolist()), want)
    np.testing.assert_array_equal(f(xs, ws, [0, 0, 0, 0]), want)
    conv = sd.Conv(5, in_channels=1, out_channels=1)
    g = sd.compile(conv, "cpu")
    with pytest.raises(sd.SymdeconvError, match="negative or zero output size"):
        g(np.zeros((1, 1, 3)), np.zeros((1, 1, 5)))


@pytest.mark.parametrize("channels", [(2, 4), (1, 1)], ids=["gemm", "stencil"])
def test_an_empty_batch_gives_an_empty_output(channels, monkeypatch):
    monkeypatch.setenv("SYMDECONV_RUNTIME_CALLS", "0")  # (one channel: the stencil from the first call)
    cin, cout = channels
    layer = sd.ConvTranspose(3, stride=2, padding=1, in_channels=cin, out_channels=cout)
    w = np.ones(layer.weight_shape)
    y = sd.compile(layer, "cpu")(np.zeros((0, cin, 5)), w)
    assert y.shape == (0, cout, 9)


def test_without_numba_compile_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("numba") else real(name, *a))
    with pytest.raises(sd.SymdeconvError, match=r"symdeconv\[codegen\]"):
        sd.compile(sd.ConvTranspose(3, stride=2), "cpu")
    monkeypatch.setattr(sd.signal, "_kernels", {})  # (no kernel of this process's earlier calls)
    with pytest.raises(sd.SymdeconvError, match=r"symdeconv\[codegen\]"):
        sd.signal.upfirdn(np.ones(97), np.ones(10), 7, 5)
