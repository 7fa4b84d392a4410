"""Shared helpers of the layer tests: reference vectors, random configurations, numeric matrices, and the
layers' definitions written directly in NumPy (oracles that need no framework)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np


def public_vectors() -> dict:
    """The reference vectors of ``tests/data/public.json`` (copied into the repository, with their sources)."""
    return json.loads((Path(__file__).resolve().parent / "data" / "public.json").read_text())


def numeric(matrix) -> np.ndarray:
    """A SymPy matrix of exact numbers as a float64 NumPy array."""
    return np.array(matrix.tolist(), dtype=float).reshape(matrix.shape)


def random_config(rng: random.Random, transposed: bool) -> dict:
    """A small random layer configuration (PyTorch conventions) and input size."""
    ndim = rng.choices((1, 2, 3), weights=(5, 4, 2))[0]
    max_k = {1: 5, 2: 3, 3: 2}[ndim]
    max_i = {1: 7, 2: 4, 3: 3}[ndim]
    k = tuple(rng.randint(1, max_k) for _ in range(ndim))
    s = tuple(rng.randint(1, 3) for _ in range(ndim))
    d = tuple(rng.choice((1, 1, 2)) for _ in range(ndim))
    p = tuple(rng.randint(0, max(kk - 1, 0) + (1 if rng.random() < 0.2 else 0)) for kk in k)
    groups = rng.choice((1, 1, 2)) if ndim < 3 else 1
    cin = groups * rng.randint(1, 2)
    cout = groups * rng.randint(1, 2)
    cfg = dict(kernel_size=k, stride=s, padding=p, dilation=d, groups=groups, in_channels=cin, out_channels=cout)
    if transposed:
        cfg["output_padding"] = tuple(rng.randint(0, max(ss, dd) - 1) for ss, dd in zip(s, d))
    shape = tuple(rng.randint(1, max_i) for _ in range(ndim))
    return {"cfg": cfg, "shape": shape}


def naive_conv_transpose(x, w, b, stride, padding, output_padding=0, groups=1):
    """PyTorch's ConvTranspose (dilation 1): every input scatters ``w`` times itself, then the crop."""
    N, C_in = x.shape[:2]
    D = x.ndim - 2
    n, k = x.shape[2:], w.shape[2:]
    cin_g, cout_g = C_in // groups, w.shape[1]
    out = [(n[d] - 1) * stride - 2 * padding + k[d] + output_padding for d in range(D)]
    full = np.zeros((N, groups * cout_g) + tuple((n[d] - 1) * stride + k[d] + output_padding for d in range(D)))
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g].astype(np.float64)
        for tap in np.ndindex(*k):
            wt = w[(slice(g * cin_g, (g + 1) * cin_g), slice(None)) + tap].astype(np.float64)
            where = tuple(slice(tap[d], tap[d] + (n[d] - 1) * stride + 1, stride) for d in range(D))
            full[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + where] += np.einsum("bi...,io->bo...", xg, wt)
    y = full[(slice(None), slice(None)) + tuple(slice(padding, padding + out[d]) for d in range(D))]
    return y + b.astype(np.float64).reshape((1, -1) + (1,) * D)


def naive_conv(x, w, b, padding, groups=1):
    """PyTorch's Conv, stride 1 and dilation 1: a correlation of the zero-padded input."""
    D = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(padding, padding)] * D)
    k = w.shape[2:]
    cout_g, cin_g = w.shape[0] // groups, w.shape[1]
    out = [xp.shape[2 + d] - k[d] + 1 for d in range(D)]
    y = np.zeros((x.shape[0], w.shape[0]) + tuple(out))
    for g in range(groups):
        for tap in np.ndindex(*k):
            window = tuple(slice(tap[d], tap[d] + out[d]) for d in range(D))
            xs = xp[(slice(None), slice(g * cin_g, (g + 1) * cin_g)) + window]
            wt = w[(slice(g * cout_g, (g + 1) * cout_g), slice(None)) + tap].astype(np.float64)
            y[:, g * cout_g:(g + 1) * cout_g] += np.einsum("bi...,oi->bo...", xs, wt)
    return y + b.astype(np.float64).reshape((1, -1) + (1,) * D)
