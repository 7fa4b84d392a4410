"""The run-time helpers of emitted CPU kernels (symdeconv.codegen.runtime), against NumPy."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from symdeconv.codegen.runtime import GATHER_PARALLEL_MIN, gather_strided, stack_tile


@numba.njit
def _tile_roundtrip(x):
    tile = stack_tile(x, 3, 5)
    for i in range(3):
        for j in range(5):
            tile[i, j] = x[i, j] * 2
    out = np.empty((3, 5), dtype=x.dtype)
    out[:, :] = tile
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stack_tile_is_a_writable_array_of_the_dtype(dtype):
    x = np.arange(15, dtype=dtype).reshape(3, 5)
    out = _tile_roundtrip(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, 2 * x)


# the last case is gathered in parallel (at least GATHER_PARALLEL_MIN entries), the others on one thread
GATHER_CASES = [(1, 5, 7, 4), (3, 2, 4, 9), (4, 1, 1, 3), (2, 48, 24, 16)]


def test_gather_cases_take_both_paths():
    sizes = [g * ci * co * s for g, ci, co, s in GATHER_CASES]
    assert min(sizes) < GATHER_PARALLEL_MIN <= max(sizes)


@pytest.mark.parametrize("groups,cin_g,cout_g,n_slots", GATHER_CASES)
def test_gather_strided_matches_numpy_fancy_indexing(groups, cin_g, cout_g, n_slots):
    rng = np.random.default_rng(0)
    # a torch-like transposed layout (C_in, C_out/G, K) with slots reading permuted, scaled taps
    weight = rng.standard_normal((groups * cin_g, cout_g, n_slots))
    flat = weight.reshape(-1)
    base = rng.permutation(n_slots).astype(np.intp)
    scale = rng.standard_normal(n_slots)
    strides = (cin_g * cout_g * n_slots, n_slots, cout_g * n_slots)  # (group, output, input channel)
    out = np.empty((n_slots, cin_g, groups * cout_g))
    gather_strided(flat, base, scale, *strides, cout_g, out)
    s, c, o = np.ogrid[:n_slots, :cin_g, : groups * cout_g]
    g = o // cout_g
    expected = flat[base[s] + g * strides[0] + (o - g * cout_g) * strides[1] + c * strides[2]] * scale[s]
    np.testing.assert_array_equal(out, expected)
