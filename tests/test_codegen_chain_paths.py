"""Every code path of the chain CPU kernels (symdeconv/codegen/emit_cpu_chain.py), against independent oracles.

A chain kernel chooses, per block of outputs, between *border* code (each tap tested against the
input's bounds) and *interior* code (fused taps, no test); in 1-D the interior runs in chunks of
``CHUNK`` blocks over a ``prange`` (full chunks plus a shorter last one), in N-D row by row along the
last dimension (a row whose taps leave ``x`` along a leading dimension is border throughout).  The
sizes below are chosen so that each case provably takes the path it names — the expected number of
interior blocks is recomputed here from the module's ``OFFSET_MIN`` / ``OFFSET_MAX`` — and outputs are
compared with ``op.matrix`` (sparse products of the primitives) or ``scipy.signal.upfirdn``.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv.verify.check import check_chain

from .helpers import np_upfirdn

pytest.importorskip("numba")

a, b = sp.symbols("a b")


def interior_blocks(f, n: int, d: int = -1) -> int:
    """Blocks along dimension ``d`` whose taps all read inside an input of length ``n`` and whose
    outputs all land in the natural window (the definition the kernel implements, restated)."""
    mod = f.module
    d = d % mod.NDIM
    P, Q, lo_off, hi_off = mod.P[d], mod.Q[d], mod.OFFSET_MIN[d], mod.OFFSET_MAX[d]
    shape = [n] * mod.NDIM
    lo, hi = f.window(tuple(shape))[d]
    return sum(
        1 for j in range(lo // P - 2, hi // P + 2)
        if Q * j + lo_off >= 0 and Q * j + hi_off < n and P * j >= lo and P * j + P - 1 < hi
    )


# --- 1-D: border only, interior, chunked interior --------------------------------------------------------


def test_1d_border_only_and_interior_equal_the_matrix():
    op = sd.upfirdn(sd.taps("h", 9), 3, 2)
    f = sd.compile(op, "cpu")
    assert interior_blocks(f, 3) == 0 and interior_blocks(f, 40) > 0
    for dtype in (np.float64, np.float32):
        res = check_chain(f, op, (1, 2, 3, 4, 40), dtype, rng=np.random.default_rng(1))
        assert res.ok, res.row()


def test_1d_multichannel_interior_equals_the_matrix():
    op = sd.channel_conv([[[1, 2], [a, 0]], [[0, 1], [3, 4]], [[1, 1], [1, b]]]) @ sd.up(2, 2)
    f = sd.compile(op, "cpu")
    assert interior_blocks(f, 9) > 0
    res = check_chain(f, op, (1, 9), np.float64, rng=np.random.default_rng(2))
    assert res.ok, res.row()


def test_1d_operator_with_an_empty_phase():
    """A phase with no tap is identically zero and must still be written (y comes from np.empty)."""
    op = sd.conv((1, 0, 0, 0, 2)) @ sd.up(2)  # phase 1 of ↑2 has no tap: outputs 2j + 1 are zero
    f = sd.compile(op, "cpu")
    assert interior_blocks(f, 12) > 0
    res = check_chain(f, op, (1, 3, 12), np.float64)
    assert res.ok, res.row()


# scipy.signal.upfirdn configurations (up, down, taps): the two benchmark cases and random ones
_rng = np.random.default_rng(20240605)
CONFIGS = [(4, 1, 32), (3, 2, 32)] + [
    (int(_rng.integers(1, 6)), int(_rng.integers(1, 6)), int(_rng.integers(1, 20))) for _ in range(3)
]


@pytest.mark.parametrize("up, down, ntaps", CONFIGS)
def test_1d_resampler_matches_scipy_upfirdn_on_every_path(up, down, ntaps):
    signal = pytest.importorskip("scipy.signal")
    f = sd.compile(sd.upfirdn(sd.taps("h", ntaps), up, down), "cpu")
    chunk = f.module.CHUNK
    rng = np.random.default_rng(up * 100 + down * 10 + ntaps)
    h = rng.standard_normal(ntaps)
    # sizes: shorter than the filter (border only), a few interior blocks, and more than two chunks
    long = 2 * chunk * max(down, 1) + 37
    for n in (1, 2, max(1, ntaps // max(up, 1)), 50, long):
        x = rng.standard_normal((2, n))  # a batch of two: the prange runs over (batch × chunks)
        y = f(x, h)
        for row, out in zip(x, y):
            expect = signal.upfirdn(h, row, up, down)
            np.testing.assert_allclose(out[: len(expect)], expect, rtol=1e-12, atol=1e-12)
            assert not np.any(out[len(expect):])
    assert interior_blocks(f, long) > 2 * chunk, "the long input must run full chunks and a partial one"
    assert interior_blocks(f, long) % chunk != 0
    if (up, down, ntaps) == CONFIGS[0]:  # float32 once (each dtype is one more Numba compile)
        y32 = f(x.astype(np.float32), h)
        np.testing.assert_allclose(y32, y, rtol=1e-5, atol=1e-4 * np.abs(y).max())


def test_float32_accumulates_in_float64():
    """Sums of float32 terms: the kernel accumulates in float64, then rounds once."""
    taps = 16
    f = sd.compile(sd.conv(np.ones(taps).tolist()), "cpu")
    x = np.full(3000, 1e-3, dtype=np.float32)
    x[::2] = 1.0 + 2.0**-22
    y = f(x)
    expect = np.convolve(x.astype(np.float64), np.ones(taps)).astype(np.float32)
    in_float32 = np.zeros_like(expect)  # what a float32 accumulation would give
    for k in range(taps):
        in_float32[k: k + len(x)] += x
    assert np.any(in_float32 != expect), "the input must tell the two accumulations apart"
    np.testing.assert_array_equal(y, expect)


# --- N-D: border rows, interior rows split into border / interior / border blocks ------------------------


@pytest.mark.parametrize(
    "name, build, size",
    [
        ("bilinear_2d", lambda: sd.shift((-1, -1)) @ sd.conv([[1, 3, 3, 1], [3, 9, 9, 3], [3, 9, 9, 3], [1, 3, 3, 1]])
         @ sd.up((2, 2)), (6, 7)),
        ("anisotropic_2d", lambda: sd.down((1, 2)) @ sd.conv([[a, 1, 2], [b, 0, -1]]) @ sd.up((3, 1)), (4, 9)),
        ("conv_3d", lambda: sd.conv([[[1, 2], [3, 4]], [[5, 6], [7, a]]]) @ sd.up((2, 1, 2)), (3, 2, 5)),
        ("pixel_shuffle_2d", lambda: sd.pixel_shuffle((2, 2), 1) @ sd.channel_conv(
            [[[[1, a]]], [[[2, 0]]], [[[b, 1]]], [[[0, 3]]]]), (3, 6)),
    ],
)
def test_nd_interior_rows_equal_the_matrix(name, build, size):
    op = build()
    f = sd.compile(op, "cpu")
    mod = f.module
    n_last = size[-1]
    lo, hi = f.window(size)[-1]
    interior = sum(
        1 for j in range(lo // mod.P[-1] - 2, hi // mod.P[-1] + 2)
        if mod.Q[-1] * j + mod.OFFSET_MIN[-1] >= 0 and mod.Q[-1] * j + mod.OFFSET_MAX[-1] < n_last
        and mod.P[-1] * j >= lo and mod.P[-1] * j + mod.P[-1] - 1 < hi
    )
    assert interior > 0, "the size must give interior blocks along the last dimension"
    small = (1,) * op.ndim
    for dtype in (np.float64, np.float32) if name == "bilinear_2d" else (np.float64,):
        res = check_chain(f, op, (small, size), dtype, rng=np.random.default_rng(5), n_random=2)
        assert res.ok, res.row()


def test_emitted_interior_has_exactly_the_normal_form_products():
    """The interior code computes each phase as one fused expression of the phase's real taps."""
    op = sd.upfirdn(sd.taps("h", 32), 4, 1)
    src = sd.emit(op, "cpu")
    body = src.split("def interior")[1].split("def kernel")[0]
    stores = [line for line in body.splitlines() if line.strip().startswith("yv0[")]
    assert len(stores) == 4
    assert sum(line.count(" * x0_") for line in stores) == sd.canonical(op).n_taps() == 32
    assert "if " not in body.split("for i in range(count):")[1], "no test inside the interior loop"
