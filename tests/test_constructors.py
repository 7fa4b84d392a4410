"""Layers a PyTorch or Keras user can write without reading the docs (issue 18).

* ``sd.Conv`` / ``sd.ConvTranspose`` take ``kernel_size`` and then keywords only: torch's positional order
  (``sd.ConvTranspose(64, 32, 3)``) is refused with a message that says what to write;
* ``sd.torch.*`` / ``sd.keras.*`` take the frameworks' own positional orders and build the same layers as the
  keyword forms (compared by their matrices, not their reprs);
* ``sd.from_torch`` / ``sd.from_keras`` turn real modules into ``(layer, weight, bias)`` whose compiled function
  gives the module's output;
* ``from symdeconv import *`` binds neither ``compile`` nor the ``torch`` / ``keras`` modules.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import symdeconv as sd


# --- names ------------------------------------------------------------------------------------------------
def test_star_import_binds_neither_compile_nor_the_framework_modules():
    namespace: dict = {}
    exec("from symdeconv import *", namespace)
    assert "compile" not in namespace and namespace.get("compile", compile) is compile
    assert "torch" not in namespace and "keras" not in namespace
    assert {"Conv", "ConvTranspose", "conv", "from_torch", "from_keras"} <= set(namespace)
    from symdeconv.codegen import compile as codegen_compile

    assert sd.compile is codegen_compile  # sd.compile still works


def test_importing_symdeconv_imports_no_framework():
    code = ("import sys, symdeconv as sd; sd.torch.ConvTranspose2d(4, 2, 3); sd.keras.Conv2D(2, 3); "
            "print(sorted(m for m in ('torch', 'keras', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_conv_docstrings_point_at_each_other():
    assert "sd.Conv" in sd.conv.__doc__ and "layer" in sd.conv.__doc__
    assert "sd.conv" in sd.Conv.__doc__ and "operator" in sd.Conv.__doc__


# --- keyword-only arguments after kernel_size -------------------------------------------------------------
def test_torch_order_is_refused_with_what_to_write():
    for call in (lambda: sd.ConvTranspose(64, 32, 3), lambda: sd.ConvTranspose(64, 32, 3, stride=2)):
        with pytest.raises(sd.SymdeconvError) as info:
            call()
        message = str(info.value)
        assert message.startswith("sd.ConvTranspose: the arguments after kernel_size are keyword-only")
        assert "sd.torch.ConvTranspose2d(64, 32, 3, ...)" in message
        assert "sd.ConvTranspose(3, in_channels=64, out_channels=32" in message
        assert "sd.ConvTranspose(64, stride=32, padding=3)" in message  # the old reading, spelled out
    with pytest.raises(sd.SymdeconvError, match=r"keyword-only.*sd\.torch\.Conv2d\(64, 32, \(3, 3\), 2, 1, \.\.\.\)"
                                                r".*sd\.Conv\(\(3, 3\), in_channels=64, out_channels=32, stride=2, "
                                                r"padding=1\)"):
        sd.Conv(64, 32, (3, 3), 2, 1)


def test_sd_order_positionals_are_refused_with_the_keywords():
    with pytest.raises(sd.SymdeconvError, match=r"keyword-only.*name them: sd\.Conv\(\(3, 3\), stride=2\)$"):
        sd.Conv((3, 3), 2)
    with pytest.raises(sd.SymdeconvError, match=r"name them: sd\.ConvTranspose\(4, stride=\(2,\), padding=1, "
                                                r"output_padding=1\)$"):
        sd.ConvTranspose(4, (2,), 1, 1)


def test_unknown_keywords_are_symdeconv_errors():
    with pytest.raises(sd.SymdeconvError, match="'bias'.*compiled function, f\\(x, weight, bias\\)"):
        sd.ConvTranspose(3, bias=False)
    with pytest.raises(sd.SymdeconvError, match="'strides'.*use stride="):
        sd.Conv(3, strides=2)


# --- torch-shaped constructors ----------------------------------------------------------------------------
def _same_layer(a, b, shape):
    """Same class, convention, layouts, output size and (symbolic) matrix on ``shape``."""
    assert type(a) is type(b) and a.convention == b.convention
    assert (a.weight_shape, a.weight_layout, a.data_layout) == (b.weight_shape, b.weight_layout, b.data_layout)
    assert a.output_shape(shape) == b.output_shape(shape)
    assert a.matrix(shape) == b.matrix(shape)


TORCH_ORDER = [  # (torch-order call, the keyword form, input shape)
    (lambda: sd.torch.ConvTranspose2d(2, 2, 3, 2, 1, 1),
     lambda: sd.ConvTranspose(3, stride=2, padding=1, output_padding=1, in_channels=2, out_channels=2, ndim=2),
     (2, 3)),
    (lambda: sd.torch.ConvTranspose1d(4, 2, 3, 2, 0, 1, 2, False, 2),  # groups 2, no bias, dilation 2
     lambda: sd.ConvTranspose(3, stride=2, output_padding=1, groups=2, dilation=2, in_channels=4, out_channels=2),
     (3,)),
    (lambda: sd.torch.ConvTranspose3d(1, 1, (2, 1, 2), stride=(2, 1, 1), device="cpu", dtype=None),
     lambda: sd.ConvTranspose((2, 1, 2), stride=(2, 1, 1)), (2, 2, 1)),
    (lambda: sd.torch.Conv2d(2, 4, 3, 2, 1, 1, 2),  # stride 2, padding 1, dilation 1, groups 2
     lambda: sd.Conv(3, stride=2, padding=1, groups=2, in_channels=2, out_channels=4, ndim=2), (3, 4)),
    (lambda: sd.torch.Conv1d(1, 2, 3, padding="same", dilation=2),
     lambda: sd.Conv(3, padding="same", dilation=2, out_channels=2), (5,)),
    (lambda: sd.torch.Conv3d(1, 1, 2, 1, (1, 0, 0)),
     lambda: sd.Conv((2, 2, 2), padding=(1, 0, 0)), (2, 2, 3)),
]


@pytest.mark.parametrize("case", range(len(TORCH_ORDER)))
def test_torch_order_constructors_equal_the_keyword_layers(case):
    torch_order, keywords, shape = TORCH_ORDER[case]
    _same_layer(torch_order(), keywords(), shape)


def test_torch_constructor_errors():
    with pytest.raises(sd.SymdeconvError, match=r"sd\.torch\.ConvTranspose2d: missing a required argument: "
                                                r"'out_channels' \(torch\.nn's order"):
        sd.torch.ConvTranspose2d(3)
    with pytest.raises(sd.SymdeconvError, match=r"sd\.torch\.Conv1d: too many positional arguments"):
        sd.torch.Conv1d(1, 1, 3, 1, 0, 1, 1, True, "zeros", None, None, 7)
    with pytest.raises(sd.SymdeconvError, match=r"kernel_size=\(3, 3, 3\): torch\.nn\.Conv2d takes an int or 2"):
        sd.torch.Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(sd.SymdeconvError, match="bias must be True or False"):
        sd.torch.Conv2d(1, 1, 3, bias=None)
    with pytest.raises(sd.SymdeconvError, match="padding_mode must be 'zeros'"):
        sd.torch.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(sd.SymdeconvError, match=r"sd\.torch\.ConvTranspose1d: .*output_padding"):
        sd.torch.ConvTranspose1d(1, 1, 3, 2, 1, 2)  # PyTorch's rule: output_padding < stride or dilation


# --- keras-shaped constructors ----------------------------------------------------------------------------
KERAS_ORDER = [  # (Keras-order call, the keyword form, input shape)
    (lambda: sd.keras.Conv2DTranspose(2, 3, 2, "same", in_channels=2),
     lambda: sd.ConvTranspose(3, stride=2, padding="SAME", in_channels=2, out_channels=2, convention="tf", ndim=2),
     (2, 3)),
    (lambda: sd.keras.Conv1DTranspose(1, 4, 2, "valid", 1),  # output_padding=1: Keras's rule with output_padding
     lambda: sd.ConvTranspose(4, stride=2, padding="VALID", output_padding=1, convention="tf"), (3,)),
    (lambda: sd.keras.Conv3DTranspose(1, 2, 1, "valid", "channels_first", None, 2),  # data_format, then output_padding
     lambda: sd.ConvTranspose(2, padding="VALID", dilation=2, convention="tf", data_format="channels_first", ndim=3),
     (1, 2, 2)),
    (lambda: sd.keras.Conv2D(4, (3, 2), 2, "same", None, 1, 2, in_channels=2),
     lambda: sd.Conv((3, 2), stride=2, padding="SAME", groups=2, in_channels=2, out_channels=4, convention="tf"),
     (4, 3)),
    (lambda: sd.keras.Conv1D(2, 3, input_shape=(None, 3), use_bias=False, kernel_initializer="ones", name="c"),
     lambda: sd.Conv(3, padding="VALID", in_channels=3, out_channels=2, convention="tf"), (4,)),
    (lambda: sd.keras.Conv1D(1, 3, 1, "causal", dilation_rate=2),  # left padding d(k − 1) = 4
     lambda: sd.Conv(3, padding=((4, 0),), dilation=2, convention="jax", dimension_numbers=("NHC", "HIO", "NHC")),
     (5,)),
]


@pytest.mark.parametrize("case", range(len(KERAS_ORDER)))
def test_keras_order_constructors_equal_the_keyword_layers(case):
    keras_order, keywords, shape = KERAS_ORDER[case]
    _same_layer(keras_order(), keywords(), shape)


def test_keras_causal_padding_is_a_left_pad():
    causal = sd.keras.Conv1D(1, 3, padding="causal", dilation_rate=2)
    assert causal.weight_layout == "HIO" and causal.data_layout == "channels_last"
    assert causal.output_shape(5) == (5,)
    # y[n] = w0 x[n − 4] + w1 x[n − 2] + w2 x[n]: only past samples
    m = causal.matrix(5, weight=np.array([1, 10, 100]).reshape(3, 1, 1))
    assert m.tolist()[4] == [1, 0, 10, 0, 100] and m.tolist()[0] == [100, 0, 0, 0, 0]


def test_keras_constructor_errors():
    with pytest.raises(sd.SymdeconvError, match="activation='relu': an sd layer is linear"):
        sd.keras.Conv2D(8, 3, activation="relu")
    with pytest.raises(sd.SymdeconvError, match=r"unexpected keyword argument\(s\) 'groupz'"):
        sd.keras.Conv2D(8, 3, groupz=2)
    with pytest.raises(sd.SymdeconvError, match="Keras does not combine strides > 1 with dilation_rate > 1"):
        sd.keras.Conv2D(8, 3, 2, dilation_rate=2)
    with pytest.raises(sd.SymdeconvError, match="padding='causal': keras.layers.Conv2DTranspose takes"):
        sd.keras.Conv2DTranspose(8, 3, padding="causal")
    with pytest.raises(sd.SymdeconvError, match="in_channels=4 but input_shape=.* has 3 channels"):
        sd.keras.Conv2D(8, 3, in_channels=4, input_shape=(8, 8, 3))
    with pytest.raises(sd.SymdeconvError, match=r"sd\.keras\.Conv2D: missing a required argument: 'kernel_size'"):
        sd.keras.Conv2D(8)
    with pytest.raises(sd.SymdeconvError, match=r"unexpected keyword argument\(s\) 'groups'"):
        sd.keras.Conv2DTranspose(8, 3, groups=2)  # Keras's transposed layers have no groups


# --- from real modules --------------------------------------------------------------------------------------
def _check_round_trip(f, x, w, b, want):
    got = f(x, w, b)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


TORCH_MODULES = [  # (class name, positional args, keyword args, input spatial shape)
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1), (11,)),
    ("Conv1d", (4, 4, 3), dict(padding="same", dilation=2, groups=2, bias=False), (9,)),
    ("Conv2d", (2, 3, (3, 2)), dict(stride=(2, 1), padding=(1, 0)), (7, 5)),
    ("Conv2d", (4, 2, 3), dict(stride=2, dilation=2, groups=2, padding=2), (9, 8)),
    ("Conv3d", (2, 2, 2), dict(stride=2, padding=1), (3, 4, 5)),
    ("ConvTranspose1d", (3, 2, 4), dict(stride=2, padding=1), (6,)),
    ("ConvTranspose1d", (2, 4, 3), dict(stride=3, padding=1, output_padding=2, groups=2, dilation=1), (5,)),
    ("ConvTranspose2d", (2, 3, 3), dict(stride=2, padding=1, output_padding=1), (4, 3)),
    ("ConvTranspose2d", (4, 4, (2, 3)), dict(stride=(1, 2), dilation=(2, 1), groups=4, bias=False), (3, 4)),
    ("ConvTranspose2d", (3, 2, 4), dict(stride=2, padding=1, output_padding=1, dilation=2), (3, 3)),
    ("ConvTranspose3d", (2, 3, 4), dict(stride=2, padding=1), (2, 3, 2)),
    ("ConvTranspose3d", (1, 2, (3, 1, 2)), dict(stride=(2, 1, 3), padding=(1, 0, 0), output_padding=(1, 0, 2)),
     (2, 2, 3)),
]


@pytest.mark.torch
@pytest.mark.parametrize("case", range(len(TORCH_MODULES)), ids=[c[0] + str(i) for i, c in enumerate(TORCH_MODULES)])
def test_from_torch_round_trip(case):
    torch = pytest.importorskip("torch")
    name, args, kwargs, spatial = TORCH_MODULES[case]
    torch.manual_seed(case)
    module = getattr(torch.nn, name)(*args, **kwargs)
    layer, w, b = sd.from_torch(module)
    assert (b is None) == (kwargs.get("bias") is False)
    assert w.dtype == np.float32 and w.shape == layer.weight_shape
    _same_layer(layer, getattr(sd.torch, name)(*args, **kwargs), spatial)  # the torch-order constructor agrees
    x = np.random.default_rng(case).standard_normal((2, args[0]) + spatial).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    _check_round_trip(sd.compile(layer, "cpu"), x, w, b, want)


@pytest.mark.torch
def test_from_torch_copies_and_widens():
    torch = pytest.importorskip("torch")
    module = torch.nn.ConvTranspose1d(1, 1, 2).to(torch.float16)
    _, w, b = sd.from_torch(module)
    assert w.dtype == np.float32 and b.dtype == np.float32
    np.testing.assert_array_equal(w, module.weight.detach().float().numpy())
    w[...] = 7  # a copy: the module keeps its weight
    assert not torch.all(module.weight == 7)
    _, w64, _ = sd.from_torch(torch.nn.Conv1d(1, 1, 2).double())
    assert w64.dtype == np.float64


@pytest.mark.torch
def test_from_torch_refusals(monkeypatch):
    torch = pytest.importorskip("torch")
    with pytest.raises(sd.SymdeconvError, match=r"sd\.from_torch: module must be a torch\.nn\.Conv1d.*got Linear"):
        sd.from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(sd.SymdeconvError, match="got int"):
        sd.from_torch(3)
    with pytest.raises(sd.SymdeconvError, match="padding_mode must be 'zeros', got 'reflect'"):
        sd.from_torch(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(sd.SymdeconvError, match="uninitialised parameters: run one forward pass first"):
        sd.from_torch(torch.nn.LazyConvTranspose2d(4, 3))

    class Scaled(torch.nn.Conv1d):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(sd.SymdeconvError, match="Scaled overrides Conv1d.forward"):
        sd.from_torch(Scaled(1, 1, 3))

    class Named(torch.nn.Conv1d):  # a subclass that keeps forward is a Conv1d
        pass

    assert sd.from_torch(Named(1, 1, 3))[0].kernel_size == (3,)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(sd.SymdeconvError, match="PyTorch is not installed"):
        sd.from_torch(object())


def _keras():
    pytest.importorskip("tensorflow", reason="tensorflow-cpu is an optional test extra (not installed)")
    return pytest.importorskip("keras")


KERAS_LAYERS = [  # (class name, positional args, keyword args, input spatial shape)
    ("Conv1D", (3, 3), dict(padding="causal", dilation_rate=2), (7,)),
    ("Conv2D", (4, 3), dict(strides=2, padding="same", groups=2), (7, 6)),
    ("Conv3D", (2, (2, 3, 2)), dict(use_bias=False), (3, 4, 3)),
    ("Conv1DTranspose", (2, 4), dict(strides=2, padding="same"), (5,)),
    ("Conv2DTranspose", (3, 3), dict(strides=2, padding="valid", output_padding=1), (3, 4)),
    ("Conv2DTranspose", (2, (3, 2)), dict(strides=(2, 3), padding="same"), (3, 3)),
    ("Conv3DTranspose", (2, 3), dict(strides=2, padding="same", use_bias=False), (2, 3, 2)),
]


@pytest.mark.tf
@pytest.mark.parametrize("case", range(len(KERAS_LAYERS)), ids=[c[0] + str(i) for i, c in enumerate(KERAS_LAYERS)])
def test_from_keras_round_trip(case):
    keras = _keras()
    name, args, kwargs, spatial = KERAS_LAYERS[case]
    keras.utils.set_random_seed(case)
    c_in = 2
    layer = getattr(keras.layers, name)(*args, **kwargs)
    x = np.random.default_rng(case).standard_normal((2,) + spatial + (c_in,)).astype(np.float32)
    want = keras.ops.convert_to_numpy(layer(x))  # builds the layer
    if layer.use_bias:  # Keras starts biases at zero: give them values
        layer.bias.assign(np.random.default_rng(case).standard_normal(layer.bias.shape).astype(np.float32))
        want = keras.ops.convert_to_numpy(layer(x))
    sd_layer, w, b = sd.from_keras(layer)
    assert (b is None) == (kwargs.get("use_bias") is False)
    assert w.shape == sd_layer.weight_shape and sd_layer.data_layout == "channels_last"
    _same_layer(sd_layer, getattr(sd.keras, name)(*args, **kwargs, in_channels=c_in), spatial)
    _check_round_trip(sd.compile(sd_layer, "cpu"), x, w, b, want)


@pytest.mark.tf
def test_from_keras_refusals(monkeypatch):
    keras = _keras()
    with pytest.raises(sd.SymdeconvError, match=r"sd\.from_keras: Conv2DTranspose 'up' is not built.*build it"):
        sd.from_keras(keras.layers.Conv2DTranspose(4, 3, name="up"))
    with pytest.raises(sd.SymdeconvError, match="layer must be a keras.layers.Conv1D.*got Dense"):
        sd.from_keras(keras.layers.Dense(3))
    relu = keras.layers.Conv1D(2, 3, activation="relu")
    relu.build((None, 5, 1))
    with pytest.raises(sd.SymdeconvError, match="activation='relu': an sd layer is linear"):
        sd.from_keras(relu)
    before, w, b = sd.from_keras(relu, ignore_activation=True)
    _same_layer(before, sd.keras.Conv1D(2, 3), (5,))
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(sd.SymdeconvError, match="Keras is not installed"):
        sd.from_keras(relu)
