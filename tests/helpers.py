"""Naive NumPy oracles for the tests — deliberately written from the textbook definitions, not the library."""

from __future__ import annotations

import numpy as np
import sympy as sp


def numeric(matrix: sp.Matrix) -> np.ndarray:
    return np.array(matrix.tolist(), dtype=float)


def np_up(x: np.ndarray, k: int) -> np.ndarray:
    y = np.zeros(len(x) * k)
    y[::k] = x
    return y


def np_hold(x: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(x, k)


def np_upfirdn(h, x, up: int, down: int) -> np.ndarray:
    """scipy.signal.upfirdn's definition: upsample, full convolution, downsample, scipy's output length."""
    full = np.convolve(np_up(np.asarray(x, float), up)[: (len(x) - 1) * up + 1], np.asarray(h, float))
    length = ((len(x) - 1) * up + len(h) - 1) // down + 1
    return full[::down][:length]
