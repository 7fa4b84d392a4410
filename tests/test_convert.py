"""TensorFlow and JAX conventions, and sd.convert: reference vectors, documented rules, cross-dialect matrices."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.algebra import shapes

from ._layer_helpers import numeric, public_vectors


def _apply(layer, shape, weight, x):
    return numeric(layer.matrix(shape, weight=weight)) @ np.asarray(x, dtype=float).reshape(-1)


# --- TensorFlow: the reference example --------------------------------------------------------------------

def test_tf_conv2d_transpose_same_vector():
    vec = public_vectors()["tf_conv2d_transpose_same"]
    x = np.array(vec["input"])
    ones = np.ones((3, 3, 1, 1), dtype=int)  # HWOI
    for key, out in (("output_shape_4x4", (4, 4)), ("output_shape_3x3", (3, 3))):
        layer = sd.ConvTranspose(3, stride=vec["strides"], padding=vec["padding"], convention="tf", output_shape=out)
        assert layer.weight_shape == (3, 3, 1, 1) and layer.data_layout == "channels_last"
        assert layer.output_shape((2, 2)) == out
        np.testing.assert_array_equal(_apply(layer, (2, 2), ones, x).reshape(out), np.array(vec[key]))
    full = np.array(vec["full_5x5"])
    valid = sd.ConvTranspose(3, stride=2, padding="VALID", convention="tf", output_shape=(5, 5))
    np.testing.assert_array_equal(_apply(valid, (2, 2), ones, x).reshape(5, 5), full)
    torch_full = sd.ConvTranspose(3, stride=2, padding=0, ndim=2)
    np.testing.assert_array_equal(_apply(torch_full, (2, 2), ones.reshape(1, 1, 3, 3), x).reshape(5, 5), full)
    # 4x4 keeps the low side (crop (0, 1)); 3x3 crops (1, 1): TF's extra sample goes on the high side
    np.testing.assert_array_equal(np.array(vec["output_shape_4x4"]), full[:4, :4])
    np.testing.assert_array_equal(np.array(vec["output_shape_3x3"]), full[1:4, 1:4])
    # JAX conv_transpose with SAME (output i·s) computes the same 4x4
    jax_layer = sd.ConvTranspose(3, stride=2, padding="SAME", convention="jax", ndim=2, transpose_kernel=True)
    np.testing.assert_array_equal(_apply(jax_layer, (2, 2), ones, x).reshape(4, 4), np.array(vec["output_shape_4x4"]))


def test_tf_same_4x4_has_no_torch_equivalent_but_3x3_does():
    tf4 = sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf", output_shape=(4, 4))
    with pytest.raises(sd.SymdeconvError, match=r"crops .*\(0, 1\).*symmetric|crops"):
        sd.convert(tf4, to="torch")
    tf3 = sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf", output_shape=(3, 3))
    conv = sd.convert(tf3, to="torch")
    assert conv.layer.padding == (1, 1) and conv.layer.output_padding == (0, 0)
    assert conv.input_shape == (2, 2)
    w = np.arange(9).reshape(3, 3, 1, 1)
    assert conv.layer.matrix((2, 2), weight=conv.weight(w)) == tf3.matrix((2, 2), weight=w)


def test_tf_conv_transpose_input_must_match_output_shape():
    layer = sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf", output_shape=(4,))
    with pytest.raises(sd.SymdeconvError, match="gradient of a SAME convolution"):
        layer.output_shape((3,))


def test_tf_keras_default_output_shape():
    for i, k, s in itertools.product(range(1, 6), range(1, 5), range(1, 4)):
        same = sd.ConvTranspose(k, stride=s, padding="SAME", convention="tf")
        valid = sd.ConvTranspose(k, stride=s, padding="VALID", convention="tf")
        assert same.output_shape(i) == (i * s,)
        assert valid.output_shape(i) == (i * s + max(k - s, 0),)


def test_tf_conv_same_depends_on_the_input_size():
    layer = sd.Conv(3, stride=2, padding="SAME", convention="tf")
    assert layer.output_shape(5) == (3,) and layer.output_shape(6) == (3,)
    assert layer.bind(5).padding == ((1, 1),) and layer.bind(6).padding == ((0, 1),)
    with pytest.raises(sd.SymdeconvError, match="pass input_shape"):
        sd.convert(layer, to="torch")
    assert sd.convert(layer, to="torch", input_shape=5).layer.padding == (1,)
    with pytest.raises(sd.SymdeconvError, match="no exact equivalent"):
        sd.convert(layer, to="torch", input_shape=6)
    jax = sd.convert(layer, to="jax").layer  # same SAME rule, for every input size
    assert jax.padding == "SAME" and sd.convert(layer, to="jax").input_shape is None
    for i in range(1, 9):
        w = np.array([[[1]], [[2]], [[3]]])
        assert layer.matrix(i, weight=w) == jax.matrix(i, weight=sd.convert(layer, to="jax").weight(w))


def test_tf_and_jax_layouts():
    assert sd.Conv((3, 2), in_channels=4, out_channels=6, groups=2, convention="tf").weight_shape == (3, 2, 2, 6)
    assert sd.Conv((3, 2), convention="tf").weight_layout == "HWIO"
    assert sd.ConvTranspose((3, 2), stride=2, padding="SAME", in_channels=4, out_channels=6,
                            convention="tf").weight_shape == (3, 2, 6, 4)
    assert sd.Conv((3, 2), convention="tf", data_format="channels_first").data_layout == "channels_first"
    jc = sd.Conv((3, 2), in_channels=4, out_channels=6, groups=2, convention="jax")
    assert jc.weight_layout == "OIHW" and jc.weight_shape == (6, 2, 3, 2) and jc.data_layout == "channels_first"
    jt = sd.ConvTranspose((3, 2), stride=2, padding="SAME", in_channels=4, out_channels=6, convention="jax")
    assert jt.weight_layout == "HWIO" and jt.weight_shape == (3, 2, 4, 6) and jt.data_layout == "channels_last"
    jtk = sd.ConvTranspose((3, 2), stride=2, padding="SAME", in_channels=4, out_channels=6, convention="jax",
                           transpose_kernel=True)
    assert jtk.weight_shape == (3, 2, 6, 4)  # the forward conv's kernel: its I axis holds our outputs
    custom = sd.Conv((3, 2), in_channels=4, out_channels=6, convention="jax", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert custom.weight_shape == (3, 2, 4, 6) and custom.data_layout == "channels_last"
    with pytest.raises(sd.SymdeconvError, match="dimension_numbers"):
        sd.Conv((3, 2), convention="jax", dimension_numbers=("NCHW", "OIHW", "NHWC"))
    with pytest.raises(sd.SymdeconvError, match="no default dimension_numbers"):
        sd.ConvTranspose((2, 2, 2, 2), stride=2, padding="SAME", convention="jax")


# --- JAX: documented semantics, checked against the algebra ----------------------------------------------

def test_jax_conv_transpose_is_conv_general_dilated_with_lhs_dilation():
    """conv_transpose(x, w, s, pads) = conv_general_dilated(x, w, 1, pads, lhs_dilation=s) with the same kernel."""
    rng = np.random.default_rng(5)
    for k, s, d, lo, hi in [(3, 2, 1, 1, 2), (4, 2, 1, 2, 2), (3, 3, 2, 0, 4), (2, 2, 1, 1, 1), (5, 2, 1, -1, 3)]:
        t = sd.ConvTranspose(k, stride=s, padding=((lo, hi),), dilation=d, convention="jax", in_channels=2,
                             out_channels=3)
        c = sd.Conv(k, stride=1, padding=((lo, hi),), dilation=d, convention="jax", lhs_dilation=s, in_channels=2,
                    out_channels=3, dimension_numbers=("NHC", "HIO", "NHC"))
        w = rng.integers(-3, 4, size=t.weight_shape)
        for i in (2, 3, 4):
            assert t.output_shape(i) == c.output_shape(i) == (shapes.general_output_size(i, k, 1, lo, hi, d, s),)
            assert t.matrix(i, weight=w) == c.matrix(i, weight=w)


def test_jax_transpose_kernel_flips_and_swaps():
    rng = np.random.default_rng(6)
    for k, s in [(3, 2), (4, 2), ((3, 2), (2, 1))]:
        plain = sd.ConvTranspose(k, stride=s, padding="SAME", convention="jax", in_channels=2, out_channels=3)
        swapped = sd.ConvTranspose(k, stride=s, padding="SAME", convention="jax", in_channels=2, out_channels=3,
                                   transpose_kernel=True)
        w = rng.integers(-3, 4, size=swapped.weight_shape)
        n = plain.ndim
        spatial = tuple(range(n))
        w_plain = np.flip(np.swapaxes(w, n, n + 1), axis=spatial)  # what jax does to rhs
        shape = (3,) * n
        assert plain.matrix(shape, weight=w_plain) == swapped.matrix(shape, weight=w)


def test_jax_conv_transpose_same_equals_tf_keras_default():
    """jax.lax.conv_transpose(..., transpose_kernel=True) is TF's conv_transpose gradient (same HWOI weights)."""
    rng = np.random.default_rng(8)
    for k, s, mode in itertools.product((1, 2, 3, 4, 5), (1, 2, 3), ("SAME", "VALID")):
        j = sd.ConvTranspose(k, stride=s, padding=mode, convention="jax", transpose_kernel=True, in_channels=2,
                             out_channels=2)
        t = sd.ConvTranspose(k, stride=s, padding=mode, convention="tf", in_channels=2, out_channels=2)
        w = rng.integers(-3, 4, size=t.weight_shape)
        for i in (1, 2, 3):
            assert j.matrix(i, weight=w) == t.matrix(i, weight=w), (k, s, mode, i)


def test_jax_string_padding_with_lhs_dilation_is_refused_as_jax_refuses_it():
    """jax.lax.conv_general_dilated raises for a padding string with lhs_dilation > 1 (JAX 0.10); so does
    symdeconv.  Without input dilation, SAME pads by padtype_to_pads on the input size."""
    with pytest.raises(sd.SymdeconvError, match="String padding is not implemented"):
        sd.Conv(3, stride=2, padding="SAME", convention="jax", lhs_dilation=2)
    layer = sd.Conv(3, stride=2, padding="SAME", convention="jax")
    # padtype_to_pads: i = 4 -> out 2, total max((2-1)*2 + 3 - 4, 0) = 1 -> (0, 1)
    assert layer.bind(4).padding == ((0, 1),)
    assert layer.output_shape(4) == (shapes.general_output_size(4, 3, 2, 0, 1, 1, 1),)
    lower = sd.Conv(3, stride=2, padding="SAME_LOWER", convention="jax")
    assert lower.bind(4).padding == ((1, 0),)


def test_torch_conv_transpose_as_jax_conv_general_dilated():
    """Shared notation: JAX passes pairs to conv_general_dilated with lhs_dilation = strides."""
    rng = np.random.default_rng(9)
    for k, s, p, a, d in [(3, 2, 1, 1, 1), (4, 2, 1, 0, 1), (3, 3, 0, 2, 2), (5, 2, 2, 1, 1)]:
        ke = d * (k - 1) + 1
        torch_layer = sd.ConvTranspose(k, stride=s, padding=p, output_padding=a, dilation=d, in_channels=2,
                                       out_channels=3)
        jax_layer = sd.Conv(k, stride=1, padding=((ke - 1 - p, ke - 1 - p + a),), dilation=d, convention="jax",
                            lhs_dilation=s, in_channels=2, out_channels=3)
        w = rng.integers(-3, 4, size=torch_layer.weight_shape)  # (C_in, C_out, k)
        w_jax = np.flip(np.swapaxes(w, 0, 1), axis=2)            # OIH, cross-correlation orientation
        for i in (2, 3, 5):
            assert torch_layer.matrix(i, weight=w) == jax_layer.matrix(i, weight=w_jax)


# --- sd.convert: cross-dialect consistency ------------------------------------------------------------------

def _random_layer(rng: random.Random):
    ndim = rng.choice((1, 1, 2))
    k = tuple(rng.randint(1, 4) for _ in range(ndim))
    s = tuple(rng.randint(1, 3) for _ in range(ndim))
    d = tuple(rng.choice((1, 1, 2)) for _ in range(ndim))
    convention = rng.choice(("torch", "tf", "jax"))
    transposed = rng.random() < 0.5
    g = rng.choice((1, 2)) if not (convention in ("tf", "jax") and transposed) else 1
    chans = dict(groups=g, in_channels=g * rng.randint(1, 2), out_channels=g * rng.randint(1, 2))
    if convention == "tf" and any(v > 1 for v in s):
        d = (1,) * ndim
    if convention == "torch":
        p = tuple(rng.randint(0, kk) for kk in k)
        if transposed:
            a = tuple(rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d))
            return sd.ConvTranspose(k, stride=s, padding=p, output_padding=a, dilation=d, **chans)
        return sd.Conv(k, stride=s, padding=p, dilation=d, **chans)
    if convention == "tf":
        mode = rng.choice(("SAME", "VALID"))
        if transposed:
            return sd.ConvTranspose(k, stride=s, padding=mode, dilation=d, convention="tf", **chans)
        return sd.Conv(k, stride=s, padding=mode, dilation=d, convention="tf", **chans)
    mode = rng.choice(("SAME", "VALID", "pairs"))
    pad = tuple((rng.randint(-1, 3), rng.randint(-1, 3)) for _ in k) if mode == "pairs" else mode
    if transposed:
        return sd.ConvTranspose(k, stride=s, padding=pad, dilation=d, convention="jax",
                                transpose_kernel=rng.random() < 0.5, **chans)
    return sd.Conv(k, stride=s, padding=pad, dilation=d, convention="jax", **chans)


def test_convert_gives_the_same_matrices():
    rng = random.Random(2024)
    nprng = np.random.default_rng(2024)
    converted = refused = 0
    pairs_seen = set()
    for _ in range(220):
        layer = _random_layer(rng)
        shape = tuple(rng.randint(2, 5) for _ in range(layer.ndim))
        try:
            layer.output_shape(shape)
        except sd.SymdeconvError:
            continue
        for to in ("torch", "tf", "jax"):
            try:
                conv = sd.convert(layer, to=to, input_shape=shape)
            except sd.SymdeconvError as err:
                assert "no exact equivalent" in str(err)
                refused += 1
                continue
            assert conv.layer.convention == to
            w = nprng.integers(-3, 4, size=layer.weight_shape)
            shapes_to_check = [shape] if conv.input_shape is not None else [shape, tuple(v + 1 for v in shape)]
            for sh in shapes_to_check:
                try:
                    expected = layer.matrix(sh, weight=w)
                except sd.SymdeconvError:
                    continue
                assert conv.layer.matrix(sh, weight=conv.weight(w)) == expected, (layer, conv.layer, sh)
            converted += 1
            pairs_seen.add((layer.convention, to, layer.transposed))
    assert converted > 300 and refused > 10
    assert len(pairs_seen) == 18


def test_convert_round_trip_weight_transform():
    layer = sd.ConvTranspose((3, 2), stride=2, padding=1, in_channels=2, out_channels=3)
    there = sd.convert(layer, to="jax")
    back = sd.convert(there.layer, to="torch")
    w = np.arange(int(np.prod(layer.weight_shape))).reshape(layer.weight_shape)
    np.testing.assert_array_equal(back.weight(there.weight(w)), w)
    assert there.weight.perm == (2, 3, 1, 0) and there.weight.flip_axes == ()
    flipped = sd.convert(layer, to="jax", transpose_kernel=False)
    assert flipped.weight.perm == (2, 3, 0, 1) and flipped.weight.flip_axes == (0, 1)
    assert "np.flip" in str(flipped.weight)
    # symbols travel too: the transformed symbol array gives the same symbolic matrix
    sym = layer.weight_symbols()
    assert flipped.layer.matrix((2, 2), weight=flipped.weight(sym)) == layer.matrix((2, 2))


def test_convert_common_layers_side_by_side():
    expected = {
        (4, 2, 1, 0): ("SAME", "SAME"),
        (2, 2, 0, 0): ("SAME", "SAME"),
    }
    for (k, s, p, a), (tf_pad, jax_pad) in expected.items():
        layer = sd.ConvTranspose(k, stride=s, padding=p, output_padding=a, ndim=2)
        assert sd.convert(layer, to="tf").layer.padding == tf_pad
        assert sd.convert(layer, to="jax").layer.padding == jax_pad
    # 3/2/1 with output_padding 1: TF's SAME puts the odd sample on the other side, so TF needs
    # conv2d_transpose's explicit padding (for every input size); JAX needs pairs
    layer = sd.ConvTranspose(3, stride=2, padding=1, output_padding=1, ndim=2)
    tf_form = sd.convert(layer, to="tf")
    assert tf_form.layer.padding == ((1, 0), (1, 0)) and tf_form.input_shape is None
    for i in ((1, 1), (2, 3)):
        assert tf_form.layer.matrix(i, weight=tf_form.weight(layer.weight_symbols())) == layer.matrix(i)
    assert sd.convert(layer, to="jax").layer.padding == ((1, 2), (1, 2))


def test_convert_validates():
    with pytest.raises(sd.SymdeconvError, match="to must be one of"):
        sd.convert(sd.Conv(3), to="keras")
    with pytest.raises(sd.SymdeconvError, match="layer must be"):
        sd.convert(sd.conv((1, 2)), to="tf")
    with pytest.raises(sd.SymdeconvError, match="groups"):
        sd.convert(sd.ConvTranspose(3, stride=2, padding=1, groups=2, in_channels=2, out_channels=2), to="tf",
                   input_shape=4)
    grouped = sd.convert(sd.ConvTranspose(3, stride=2, padding=1, groups=2, in_channels=2, out_channels=4), to="jax")
    assert not grouped.layer.transposed and grouped.layer.lhs_dilation == (2,) and grouped.weight.perm is None
    assert str(sd.convert(sd.Conv(3), to="torch").weight).startswith("w unchanged")


def _tf_call_space(layer):
    """Every TensorFlow call of the layer's rank, kernel, stride and dilation that symdeconv's TF dialect
    accepts: 'SAME' / 'VALID', Keras's output_padding sizes, and explicit (lo, hi) pairs up to the kernel
    span plus the stride (larger pads give outputs that only grow)."""
    k, s, d, n = layer.kernel_size, layer.stride, layer.dilation, layer.ndim
    com = dict(stride=s, dilation=d, in_channels=layer.in_channels, out_channels=layer.out_channels, ndim=n,
               convention="tf")
    reach = max((kk - 1) * dd + 1 for kk, dd in zip(k, d)) + max(s)
    pairs = [((lo, hi),) * n for lo in range(reach) for hi in range(reach)]
    if layer.transposed:
        calls = [dict(padding=m) for m in ("SAME", "VALID")]
        calls += [dict(padding=m, output_padding=(a,) * n) for m in ("SAME", "VALID") for a in range(max(s))]
        calls += [dict(padding=p) for p in pairs]
    else:
        calls = [dict(padding=m) for m in ("SAME", "VALID")] + [dict(padding=p) for p in pairs]
    build = sd.ConvTranspose if layer.transposed else sd.Conv
    for call in calls:
        try:
            yield build(layer.kernel_size, **call, **com)
        except sd.SymdeconvError:
            continue  # a call TensorFlow refuses (its rules: see test_framework_oracles)


def test_tf_refusals_are_confirmed_by_a_search_of_the_tf_call_space():
    """Every PyTorch 1-D / 2-D layer (k ≤ 4, s ≤ 3, p < k, d ≤ 2, every valid output_padding) either
    converts to TF, or no TF call that TensorFlow accepts computes it: a search of the call space over the
    probe sizes of `convert` (which cover every input size, see docs/conversions.md) finds none."""
    from symdeconv.algebra.convert import _probe_shapes, _signature

    refused = 0
    for n, transposed, k, s, p, d in itertools.product((1, 2), (False, True), range(1, 5), range(1, 4),
                                                        range(0, 4), (1, 2)):
        if p >= k:
            continue
        for a in (range(max(s, d)) if transposed else [0]):
            kw = dict(stride=s, padding=p, dilation=d, in_channels=2, out_channels=2, ndim=n)
            layer = sd.ConvTranspose(k, output_padding=a, **kw) if transposed else sd.Conv(k, **kw)
            try:
                sd.convert(layer, to="tf")
                continue
            except sd.SymdeconvError as err:
                refused += 1
                message = str(err)
            probes = _probe_shapes(layer)
            want = [_signature(layer, q) for q in probes]
            for cand in _tf_call_space(layer):
                assert [_signature(cand, q) for q in probes] != want, (layer, cand, message)
    assert 0 < refused < 150, refused
