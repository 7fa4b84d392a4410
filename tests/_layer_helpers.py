"""Shared helpers of the layer tests: reference vectors, random configurations, numeric matrices."""

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
