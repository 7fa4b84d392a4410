"""Generated layer kernels against PyTorch, for hundreds of random configurations.

Configurations vary what the kernels take at run time (channels, groups, output_padding, input size,
batch, bias) over a fixed set of kernel *structures* (dimension, kernel size, stride, dilation,
padding), so a few compiled kernels serve every configuration: each structure is compiled once.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import symdeconv as sd

torch = pytest.importorskip("torch")
pytest.importorskip("numba")
F = torch.nn.functional
pytestmark = pytest.mark.torch

# (transposed, kernel_size, stride, padding, dilation)
STRUCTURES = [
    (True, (4,), (2,), (1,), (1,)),
    (True, (3,), (2,), (1,), (1,)),
    (True, (5,), (3,), (2,), (1,)),
    (True, (3,), (1,), (0,), (2,)),
    (False, (3,), (2,), (1,), (1,)),
    (False, (3,), (1,), (2,), (2,)),
    (True, (4, 4), (2, 2), (1, 1), (1, 1)),
    (True, (3, 3), (2, 2), (1, 1), (1, 1)),
    (True, (3, 2), (2, 1), (1, 0), (1, 2)),
    (False, (3, 3), (2, 2), (1, 1), (1, 1)),
    (False, (3, 3), (1, 1), (2, 2), (2, 2)),
    (False, (2, 3), (1, 2), (0, 1), (1, 1)),
    (True, (4, 4, 4), (2, 2, 2), (1, 1, 1), (1, 1, 1)),
    (False, (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1)),
]
PER_STRUCTURE = 15  # 14 × 15 = 210 configurations
MAX_SIZE = {1: 9, 2: 5, 3: 3}

_FUNCS = {
    (False, 1): F.conv1d, (False, 2): F.conv2d, (False, 3): F.conv3d,
    (True, 1): F.conv_transpose1d, (True, 2): F.conv_transpose2d, (True, 3): F.conv_transpose3d,
}


def _configs(structure, seed):
    transposed, k, s, p, d = structure
    rng = random.Random(seed)
    ndim = len(k)
    for _ in range(PER_STRUCTURE):
        groups = rng.choice((1, 1, 2, 3))
        cfg = dict(kernel_size=k, stride=s, padding=p, dilation=d, groups=groups,
                   in_channels=groups * rng.randint(1, 2), out_channels=groups * rng.randint(1, 2))
        if transposed:
            cfg["output_padding"] = tuple(rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d))
        shape = tuple(rng.randint(1, MAX_SIZE[ndim]) for _ in range(ndim))
        yield cfg, shape, rng.randint(1, 3), rng.random() < 0.5


@pytest.mark.parametrize("index", range(len(STRUCTURES)))
def test_generated_kernels_match_torch(index):
    structure = STRUCTURES[index]
    transposed, k = structure[0], structure[1]
    nprng = np.random.default_rng(index)
    compared = 0
    kernels = set()
    for cfg, shape, batch, with_bias in _configs(structure, 1000 + index):
        layer = (sd.ConvTranspose if transposed else sd.Conv)(**cfg)
        x = nprng.standard_normal((batch, cfg["in_channels"]) + shape).astype(np.float32)
        w = nprng.standard_normal(layer.weight_shape).astype(np.float32)
        b = nprng.standard_normal(cfg["out_channels"]).astype(np.float32) if with_bias else None
        kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
        if transposed:
            kwargs["output_padding"] = cfg["output_padding"]
        f = sd.compile(layer, "cpu")
        kernels.add(f.path)
        try:
            expected = _FUNCS[(transposed, len(k))](
                torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b), **kwargs
            ).numpy()
        except RuntimeError:  # PyTorch refuses an input too small for the kernel: so must we
            with pytest.raises(sd.SymdeconvError, match="negative or zero output size"):
                f(x, w, b)
            continue
        got = f(x, w, b)
        assert got.shape == expected.shape and got.dtype == np.float32, (cfg, shape)
        scale = 1.0 + np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5 * scale, err_msg=f"{cfg} on {shape}")
        compared += 1
    assert compared >= PER_STRUCTURE - 3, "most configurations have a valid output size"
    assert len(kernels) == 1, "channels / groups / output_padding / sizes must not change the kernel"


def test_at_least_200_configurations():
    assert len(STRUCTURES) * PER_STRUCTURE >= 200
    assert {len(s[1]) for s in STRUCTURES} == {1, 2, 3}
    assert any(s[0] and any(v > 1 for v in s[4]) for s in STRUCTURES), "a dilated transposed convolution"
