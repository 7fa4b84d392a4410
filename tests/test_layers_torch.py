"""sd.Conv / sd.ConvTranspose against real PyTorch: matrices for hundreds of configurations, shapes for thousands."""

from __future__ import annotations

import random

import numpy as np
import pytest

import symdeconv as sd

from ._layer_helpers import numeric, random_config

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch

_FUNCS = {
    (False, 1): "conv1d", (False, 2): "conv2d", (False, 3): "conv3d",
    (True, 1): "conv_transpose1d", (True, 2): "conv_transpose2d", (True, 3): "conv_transpose3d",
}


def _torch_forward(transposed: bool, cfg: dict, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None):
    func = getattr(F, _FUNCS[(transposed, len(cfg["kernel_size"]))])
    kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    if transposed:
        kwargs["output_padding"] = cfg["output_padding"]
    bias = None if b is None else torch.from_numpy(b)
    return func(torch.from_numpy(x)[None], torch.from_numpy(w), bias, **kwargs)[0].numpy()


def _layer(transposed: bool, cfg: dict):
    return (sd.ConvTranspose if transposed else sd.Conv)(**cfg)


def _run_matrix_configs(seed: int, count: int, transposed: bool) -> int:
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    checked = 0
    while checked < count:
        case = random_config(rng, transposed)
        cfg, shape = case["cfg"], case["shape"]
        layer = _layer(transposed, cfg)
        x = nprng.integers(-3, 4, size=(cfg["in_channels"],) + shape).astype(float)
        w = nprng.integers(-3, 4, size=layer.weight_shape).astype(float)
        try:
            expected = _torch_forward(transposed, cfg, x, w)
        except RuntimeError:  # torch refuses (kernel larger than the padded input): so must we
            with pytest.raises(sd.SymdeconvError, match="negative or zero output size"):
                layer.output_shape(shape)
            continue
        assert layer.output_shape(shape) == expected.shape[1:], (cfg, shape)
        got = numeric(layer.matrix(shape, weight=w.astype(int))) @ x.reshape(-1)
        np.testing.assert_array_equal(got, expected.reshape(-1), err_msg=f"{cfg} on input {shape}")
        checked += 1
    return checked


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_matrix_matches_torch_random_configurations(transposed):
    # 2 × 160 = 320 configurations: 1-D / 2-D / 3-D, stride, padding, output_padding, dilation, groups, channels
    assert _run_matrix_configs(seed=1234 + transposed, count=160, transposed=transposed) == 160


def test_every_kind_of_configuration_is_drawn():
    rng = random.Random(1235)
    seen = set()
    for _ in range(160):
        cfg = random_config(rng, True)["cfg"]
        k = cfg["kernel_size"]
        seen.add(("ndim", len(k)))
        seen.add(("even kernel", any(v % 2 == 0 for v in k)))
        seen.add(("groups", cfg["groups"]))
        seen.add(("op>0", any(cfg["output_padding"])))
        seen.add(("dilation>1", any(v > 1 for v in cfg["dilation"])))
        seen.add(("padding>0", any(cfg["padding"])))
    for item in [("ndim", 1), ("ndim", 2), ("ndim", 3), ("even kernel", True), ("groups", 2), ("op>0", True),
                 ("dilation>1", True), ("padding>0", True)]:
        assert item in seen


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_bias_is_the_augmented_column(transposed):
    rng = random.Random(7)
    nprng = np.random.default_rng(7)
    for _ in range(10):
        case = random_config(rng, transposed)
        cfg, shape = case["cfg"], case["shape"]
        layer = _layer(transposed, cfg)
        x = nprng.integers(-3, 4, size=(cfg["in_channels"],) + shape).astype(float)
        w = nprng.integers(-3, 4, size=layer.weight_shape).astype(float)
        b = nprng.integers(-3, 4, size=cfg["out_channels"]).astype(float)
        try:
            expected = _torch_forward(transposed, cfg, x, w, b)
        except RuntimeError:
            continue
        aug = numeric(layer.matrix(shape, weight=w.astype(int), bias=b.astype(int)))
        got = aug @ np.concatenate([x.reshape(-1), [1.0]])
        np.testing.assert_array_equal(got[:-1], expected.reshape(-1))
        assert got[-1] == 1.0


def _shape_configs(seed: int, count: int, transposed: bool):
    rng = random.Random(seed)
    for _ in range(count):
        ndim = rng.choice((1, 2, 3))
        k = tuple(rng.randint(1, 7) for _ in range(ndim))
        s = tuple(rng.randint(1, 4) for _ in range(ndim))
        d = tuple(rng.randint(1, 3) for _ in range(ndim))
        p = tuple(rng.randint(0, 6) for _ in range(ndim))
        cfg = dict(kernel_size=k, stride=s, padding=p, dilation=d)
        if transposed:
            cfg["output_padding"] = tuple(rng.randint(0, max(a, b) - 1) for a, b in zip(s, d))
        yield cfg, tuple(rng.randint(1, 12) for _ in range(ndim))


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_output_shape_matches_torch_thousands(transposed):
    agree = refused = 0
    for cfg, shape in _shape_configs(99 + transposed, 2000, transposed):
        layer = _layer(transposed, cfg)
        x = torch.zeros((1, 1) + shape)
        w = torch.zeros((1, 1) + cfg["kernel_size"])
        func = getattr(F, _FUNCS[(transposed, len(shape))])
        try:
            kwargs = {key: v for key, v in cfg.items() if key != "kernel_size"}
            out = tuple(func(x, w, **kwargs).shape[2:])
            if 0 in out:  # torch returns an empty tensor in some multi-dimensional cases; we refuse all
                raise RuntimeError("empty output")
        except RuntimeError:
            with pytest.raises(sd.SymdeconvError, match="negative or zero output size"):
                layer.output_shape(shape)
            refused += 1
            continue
        assert layer.output_shape(shape) == out, (cfg, shape)
        agree += 1
    assert agree > 1200 and refused > 10


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_torch_same_and_valid_strings():
    rng = np.random.default_rng(3)
    for k, d in [(3, 1), (4, 1), (4, 2), (5, 3), (2, 1)]:
        for mode in ("same", "valid"):
            layer = sd.Conv(k, padding=mode, dilation=d)
            x = rng.integers(-3, 4, size=(1, 9)).astype(float)
            w = rng.integers(-3, 4, size=(1, 1, k)).astype(float)
            if mode == "valid" and d * (k - 1) + 1 > 9:
                continue
            expected = F.conv1d(torch.from_numpy(x)[None], torch.from_numpy(w), padding=mode, dilation=d)[0].numpy()
            got = numeric(layer.matrix(9, weight=w.astype(int))) @ x.reshape(-1)
            np.testing.assert_array_equal(got, expected.reshape(-1))


def test_weight_shape_matches_torch_modules():
    cases = [
        (sd.Conv((3, 5), stride=2, padding=1, groups=2, in_channels=4, out_channels=6), torch.nn.Conv2d(4, 6, (3, 5), 2,
                                                                                                        1, groups=2)),
        (sd.ConvTranspose((3, 5, 2), stride=2, groups=3, in_channels=6, out_channels=9),
         torch.nn.ConvTranspose3d(6, 9, (3, 5, 2), 2, groups=3)),
        (sd.ConvTranspose(3, stride=3, padding=1, output_padding=2, dilation=2, groups=2, in_channels=4,
                          out_channels=6), torch.nn.ConvTranspose1d(4, 6, 3, 3, 1, 2, groups=2, dilation=2)),
    ]
    for layer, module in cases:
        assert layer.weight_shape == tuple(module.weight.shape)


def test_torch_error_rules_are_ours():
    with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation"):
        F.conv_transpose1d(torch.ones(1, 1, 4), torch.ones(1, 1, 3), stride=2, output_padding=2)
    with pytest.raises(sd.SymdeconvError, match="output_padding must be smaller than either stride or dilation"):
        sd.ConvTranspose(3, stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match="not supported for strided"):
        F.conv1d(torch.ones(1, 1, 4), torch.ones(1, 1, 3), stride=2, padding="same")
    with pytest.raises(sd.SymdeconvError, match="not supported for strided"):
        sd.Conv(3, stride=2, padding="same")
