"""Layers as operators: the contract, transposition, sub-pixel form, validation, reference vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.algebra import shapes

from ._layer_helpers import public_vectors


# --- the contract with codegen ------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    sd.Conv(3, stride=2, padding=1),
    sd.Conv((3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), groups=2, in_channels=4, out_channels=2),
    sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=2, out_channels=3),
    sd.ConvTranspose(3, stride=3, padding=1, output_padding=2, dilation=2, groups=2, in_channels=4, out_channels=6),
    sd.ConvTranspose((2, 2, 2), stride=2, groups=2, in_channels=2, out_channels=2),
    sd.Conv(3, stride=2, padding="SAME", convention="tf", ndim=2).bind((5, 5)),
    sd.ConvTranspose(3, stride=2, padding="SAME", convention="tf", output_shape=(4, 4)),
    sd.ConvTranspose(3, stride=2, padding="SAME", convention="jax", ndim=2, transpose_kernel=True),
    sd.Conv(3, stride=1, padding=((1, 2),), convention="jax", lhs_dilation=2),
], ids=repr)
def test_layer_contract(layer):
    op = layer.operator
    assert (op.ndim, op.c_in, op.c_out) == (layer.ndim, layer.in_channels, layer.out_channels)
    symbols = layer.weight_symbols()
    assert symbols.shape == layer.weight_shape
    names = {s for s in symbols.flat}
    assert len(names) == symbols.size  # distinct
    # every tap of the normal form is a single weight symbol (times at most a number)
    form = sd.canonical(op)
    for row in form.taps.values():
        for coeff in row.values():
            c, rest = coeff.as_coeff_Mul()
            assert rest in names and c.is_number
    assert op.free_symbols() <= names
    shape = (3,) * layer.ndim if layer.convention != "tf" or not layer.transposed else (2, 2)
    window = layer.window(shape)
    assert tuple(hi - lo for lo, hi in window) == layer.output_shape(shape)
    assert layer.matrix(shape) == op.matrix(shape, window=window)
    assert layer.data_layout in ("channels_first", "channels_last")
    assert len(layer.weight_layout) == len(layer.weight_shape)


def test_weight_symbols_are_named_by_their_index():
    w = sd.ConvTranspose((2, 3), in_channels=2, out_channels=1).weight_symbols()
    assert w.shape == (2, 1, 2, 3)
    assert str(w[1, 0, 0, 2]) == "w_1_0_0_2"


def test_grouped_weights_are_block_structured():
    layer = sd.Conv(1, groups=2, in_channels=4, out_channels=2)
    m = layer.matrix(1)
    w = layer.weight_symbols()
    assert m == sp.Matrix([[w[0, 0, 0], w[0, 1, 0], 0, 0], [0, 0, w[1, 0, 0], w[1, 1, 0]]])
    t = sd.ConvTranspose(1, groups=2, in_channels=4, out_channels=2)
    v = t.weight_symbols()
    assert t.matrix(1) == sp.Matrix([[v[0, 0, 0], v[1, 0, 0], 0, 0], [0, 0, v[2, 0, 0], v[3, 0, 0]]])


# --- transposition ----------------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p,d,g,cin,cout", [
    (3, 2, 1, 1, 1, 1, 1), (4, 2, 1, 1, 1, 1, 1), (3, 3, 0, 2, 1, 2, 3), (5, 2, 2, 1, 2, 2, 4),
    ((3, 2), (2, 1), (1, 0), (1, 2), 1, 1, 2), ((2, 2, 2), 2, 0, 1, 1, 1, 1),
])
def test_conv_transpose_is_the_transpose_of_conv(k, s, p, d, g, cin, cout):
    conv = sd.Conv(k, stride=s, padding=p, dilation=d, groups=g, in_channels=cin, out_channels=cout)
    convt = sd.ConvTranspose(k, stride=s, padding=p, output_padding=0, dilation=d, groups=g, in_channels=cout,
                             out_channels=cin)
    assert conv.weight_shape == convt.weight_shape
    assert sd.equivalent(conv.operator.T, convt.operator)
    assert sd.equivalent(conv.T, convt)
    # on finite signals: the matrices are transposes when output_padding solves the ambiguity
    n = conv.ndim
    for i in itertools.product(*[range(5, 5 + max(conv.stride)) for _ in range(n)]) if n < 3 else [(3, 3, 4)]:
        o = conv.output_shape(i)
        a = sd.output_padding_for(conv, i)
        t = sd.ConvTranspose(k, stride=s, padding=p, output_padding=a, dilation=d, groups=g, in_channels=cout,
                             out_channels=cin)
        assert t.output_shape(o) == i
        assert sd.output_padding_for(t, o, i) == a
        assert conv.transpose(i).output_padding == a
        assert conv.matrix(i).T == t.matrix(o)


def test_transpose_is_not_an_inverse_and_windows_matter():
    conv = sd.Conv(3, stride=2, padding=1)
    t = sd.ConvTranspose(3, stride=2, padding=1, output_padding=0)
    # the operators are transposes, but with the wrong output_padding the matrices are not
    assert t.output_shape((3,)) == (5,)
    assert conv.matrix(6).T.shape != t.matrix(3).shape
    assert not sd.equivalent(t.operator @ conv.operator, sd.identity())


def test_transpose_of_conv_transpose_round_trips():
    t = sd.ConvTranspose((3, 4), stride=2, padding=(1, 0), output_padding=(1, 1), groups=1, in_channels=2,
                         out_channels=3)
    assert sd.equivalent(t.T, t.operator.T)
    assert t.T.T.operator is not None and sd.equivalent(t.T.T, t)
    with pytest.raises(sd.SymdeconvError, match="no Conv"):
        sd.ConvTranspose(3, stride=1, padding=0, output_padding=1, dilation=2).T


# --- sub-pixel (pixel shuffle) form ---------------------------------------------------------------------

def test_conv_transpose_4_2_1_is_pixel_shuffle_of_a_3x3_conv():
    layer = sd.ConvTranspose(4, stride=2, padding=1, ndim=2)
    w = layer.weight_symbols()[0, 0]
    # 1-D: output phase r at block a reads x[a + off] with tap j = 2 (a − m) + r + 1, i.e. off = 1 − (sub-kernel index)
    sub = {0: {1: 1, 2: 3}, 1: {0: 0, 1: 2}}  # phase -> {3-tap index: 4-tap index}
    phases = np.zeros((4, 1, 3, 3), dtype=object)
    for r1, r2 in itertools.product(range(2), repeat=2):
        for (a, j1), (b, j2) in itertools.product(sub[r1].items(), sub[r2].items()):
            phases[2 * r1 + r2, 0, a, b] = w[j1, j2]
    subpixel = sd.pixel_shuffle((2, 2)) @ sd.channel_conv(phases.tolist(), origin=1)
    assert sd.equivalent(layer, subpixel)
    n = (3, 3)
    assert layer.matrix(n) == subpixel.matrix(n, window=layer.window(n))
    # and a wrong placement is caught
    wrong = phases.copy()
    wrong[[0, 3]] = wrong[[3, 0]]
    assert not sd.equivalent(layer, sd.pixel_shuffle((2, 2)) @ sd.channel_conv(wrong.tolist(), origin=1))


def test_conv_transpose_normal_form_has_the_textbook_phases():
    form = sd.canonical(sd.ConvTranspose(3, stride=2, padding=1))
    w = sd.ConvTranspose(3, stride=2, padding=1).weight_symbols()[0, 0]
    assert form.P == (2,) and form.Q == (1,)
    assert form.phase_taps(0) == {0: w[1]}
    assert form.phase_taps(1) == {0: w[2], 1: w[0]}


# --- validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("build,match", [
    (lambda: sd.ConvTranspose(3, stride=2, output_padding=2),
     "output_padding must be smaller than either stride or dilation"),
    (lambda: sd.ConvTranspose(3, stride=2, output_padding=(0, 2)), "output_padding"),
    (lambda: sd.Conv(3, groups=2, in_channels=3, out_channels=2), "in_channels must be divisible by groups"),
    (lambda: sd.ConvTranspose(3, groups=2, in_channels=2, out_channels=3), "out_channels must be divisible by groups"),
    (lambda: sd.Conv(3, padding="SAME"), "string without its convention"),
    (lambda: sd.ConvTranspose(3, padding="same"), "string without its convention"),
    (lambda: sd.Conv((3, 3), stride=(1, 1, 1)), "stride has 3 entries"),
    (lambda: sd.Conv((3, 3), padding=((1, 1),)), "padding has 1"),
    (lambda: sd.Conv(2.5), "kernel_size must be an integer"),
    (lambda: sd.Conv(3, stride=0), "stride must be a positive integer"),
    (lambda: sd.Conv((3, 3), stride=(1, -2)), r"stride\[1\] must be a positive integer"),
    (lambda: sd.Conv(3, padding=-1), "padding must be >= 0"),
    (lambda: sd.Conv(3, in_channels=True), "in_channels must be an integer"),
    (lambda: sd.Conv(3, convention="keras"), "convention must be one of"),
    (lambda: sd.Conv(3, padding=1, convention="tf"), "PyTorch's convention"),
    (lambda: sd.Conv(3, padding_mode="reflect"), "padding_mode"),
    (lambda: sd.Conv((3,) * 4, padding="SAME", stride=2, dilation=2, convention="tf"),
     "dilations > 1 with strides > 1"),
    (lambda: sd.Conv((3,) * 3, padding=((1, 2),) * 3, convention="tf"),
     "tf.nn.conv3d takes padding 'SAME' or 'VALID' only"),
    (lambda: sd.Conv(3, padding="same", convention="tf"), "upper case"),
    (lambda: sd.Conv(3, padding="SAME", convention="jax", lhs_dilation=2), "String padding is not implemented"),
    (lambda: sd.ConvTranspose(3, stride=2, padding="same", convention="jax"), "String padding is not implemented"),
    (lambda: sd.ConvTranspose(3, output_shape=(4,)), "output_shape is tf"),
    (lambda: sd.Conv(3, lhs_dilation=2), "lhs_dilation"),
    (lambda: sd.ConvTranspose(3, groups=2, in_channels=2, out_channels=2, convention="jax", padding="SAME"),
     "feature_group_count"),
])
def test_bad_parameters_name_the_rule(build, match):
    with pytest.raises(sd.SymdeconvError, match=match):
        build()


def test_bad_sizes_name_the_rule():
    with pytest.raises(sd.SymdeconvError, match="negative or zero output size"):
        sd.Conv(5).output_shape((3,))
    with pytest.raises(sd.SymdeconvError, match="negative or zero output size"):
        sd.ConvTranspose(3, stride=1, padding=3).output_shape((2,))
    with pytest.raises(sd.SymdeconvError, match="input_shape"):
        sd.Conv((3, 3)).output_shape((4,))
    with pytest.raises(sd.SymdeconvError, match="input_shape"):
        sd.Conv(3).matrix((0,))
    with pytest.raises(sd.SymdeconvError, match="weight must have shape"):
        sd.Conv(3).matrix(4, weight=np.ones((1, 1, 2)))
    with pytest.raises(sd.SymdeconvError, match="not reachable"):
        sd.output_padding_for(sd.ConvTranspose(3, stride=2, padding=1), (3,), (7,))
    with pytest.raises(sd.SymdeconvError, match="bias"):
        sd.Conv(3, out_channels=2).matrix(4, bias=[1, 2, 3])
    with pytest.raises(sd.SymdeconvError, match="bind"):
        sd.Conv(3, stride=2, padding="SAME", convention="tf").operator


def test_errors_carry_the_entry_point():
    with pytest.raises(sd.SymdeconvError, match=r"^sd\.ConvTranspose: "):
        sd.ConvTranspose(3, stride=2, output_padding=2)


# --- reference vectors ----------------------------------------------------------------------------------

def _layer_from_torch_text(text: str):
    """Parse the documentation examples' constructor calls (a small, fixed grammar, no eval)."""
    name, args = text.split("(", 1)
    args = args.rstrip(")")
    parts, depth, cur = [], 0, ""
    for ch in args:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())

    def value(v: str):
        v = v.strip()
        if v.startswith("("):
            return tuple(int(x) for x in v.strip("()").split(","))
        return int(v)

    positional = [value(p) for p in parts if "=" not in p]
    keywords = {p.split("=")[0].strip(): value(p.split("=")[1]) for p in parts if "=" in p}
    ndim = int(name[-2])
    kind = sd.ConvTranspose if name.startswith("ConvTranspose") else sd.Conv
    cin, cout, k = positional
    return kind(k, in_channels=cin, out_channels=cout, ndim=ndim, **keywords)


def test_torch_documentation_shapes():
    vec = public_vectors()["torch_shapes"]
    checked = 0
    for case in vec["cases"]:
        if "then" in case["layer"]:
            conv = sd.Conv(3, stride=2, padding=1, ndim=2)
            t0 = sd.ConvTranspose(3, stride=2, padding=1, ndim=2)
            t1 = sd.ConvTranspose(3, stride=2, padding=1, output_padding=1, ndim=2)
            i = tuple(case["input"][2:])
            assert conv.output_shape(i) == tuple(case["conv_output"][2:])
            o = conv.output_shape(i)
            assert t0.output_shape(o) == tuple(case["transposed_output_default"][2:])
            assert t1.output_shape(o) == tuple(case["transposed_output_with_output_padding_1"][2:])
            assert sd.output_padding_for(conv, i) == (1, 1)
            checked += 1
            continue
        layer = _layer_from_torch_text(case["layer"])
        assert layer.output_shape(tuple(case["input"][2:])) == tuple(case["output"][2:])
        assert layer.out_channels == case["output"][1]
        if "weight_shape" in case:
            assert layer.weight_shape == tuple(case["weight_shape"])
        checked += 1
    assert checked == len(vec["cases"])
    with pytest.raises(sd.SymdeconvError, match=vec["errors"][0]):
        sd.ConvTranspose(3, stride=1, output_padding=1)


def test_conv_arithmetic_example():
    vec = public_vectors()["conv_arithmetic_relationships"]
    assert "k=3,s=2,p=1" in vec["example"]
    conv = sd.Conv(3, stride=2, padding=1)
    assert conv.output_shape((5,)) == conv.output_shape((6,)) == (3,)
    assert sd.output_padding_for(conv, (5,)) == (0,)
    assert sd.output_padding_for(conv, (6,)) == (1,)
    assert sd.ConvTranspose(3, stride=2, padding=1, output_padding=0).output_shape((3,)) == (5,)
    assert sd.ConvTranspose(3, stride=2, padding=1, output_padding=1).output_shape((3,)) == (6,)
    assert list(shapes.conv_input_sizes(3, 3, 2, 1)) == [5, 6]


def test_hold_then_conv_vector_through_conv_transpose():
    vec = public_vectors()["hold_then_conv_equals_transposed_conv"]
    h = vec["h_equals_convolve_11_q"]
    layer = sd.ConvTranspose(len(h), stride=vec["up"])
    y = layer.matrix(len(vec["x"]), weight=[[h]]) * sp.Matrix(vec["x"])
    # conv_transpose1d(x, h, stride=2) has (n − 1)·2 + 4 = 2n + 2 outputs: the whole full output
    assert list(y) == vec["y_full"]


def test_demo_prints_the_layers(capsys):
    from symdeconv import demo

    demo.layers()
    out = capsys.readouterr().out
    assert "y[2m] = w_0_0_1·x[m] + w_0_0_3·x[m − 1]" in out
    assert "equals half-pixel linear interpolation: True" in out
    assert "np.transpose(w, (2, 3, 1, 0))" in out and "no exact equivalent" in out


def test_tf_1d_explicit_padding_prints_the_unit_axis_conv2d_call():
    """tf.nn.conv1d / conv1d_transpose refuse padding lists; a 1-D TF layer with explicit pairs prints one
    tf.nn.conv2d / conv2d_transpose call on a unit axis, with the reshapes of data and filters (the call is
    run in TensorFlow by test_framework_oracles)."""
    call = sd.Conv(3, stride=2, padding=((1, 2),), convention="tf").framework_call()
    assert call.startswith("tf.nn.conv2d(x[:, None], filters[None], strides=(1, 2)") and call.endswith("[:, 0]")
    assert "[[0, 0], [0, 0], [1, 2], [0, 0]]" in call
    call = sd.ConvTranspose(3, stride=2, padding=((1, 1),), convention="tf", output_shape=(5,)).framework_call()
    assert call.startswith("tf.nn.conv2d_transpose(x[:, None], filters[None], output_shape=(N, 1, 5, 1)")
