"""Reference vectors from outside the project (copied to tests/data/public.json) against the algebra."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd

from .helpers import np_upfirdn, numeric


def test_hold_then_conv_numbers(shared_vectors):
    v = shared_vectors["hold_then_conv_equals_transposed_conv"]
    x, q, k = v["x"], v["q"], v["up"]
    assert list(sd.convolve((1, 1), q)) == v["h_equals_convolve_11_q"]
    n = len(x)
    expected = np.array(v["y_full"], float)
    window = (0, len(expected))  # length 2n + 2
    for op in (sd.conv(q) @ sd.hold(k), sd.transposed_conv(v["h_equals_convolve_11_q"], k)):
        y = numeric(op.matrix(n, window=window)) @ np.array(x, float)
        assert np.array_equal(y, expected), (op, y)


@pytest.mark.parametrize("case_index", range(4))
def test_scipy_upfirdn_examples(shared_vectors, case_index):
    case = shared_vectors["scipy_upfirdn"]["cases"][case_index]
    h, x, L, M = case["h"], case["x"], case["up"], case["down"]
    expected = np.array(case["y"], float)
    length = ((len(x) - 1) * L + len(h) - 1) // M + 1  # scipy's output length, quoted in the vector's source
    assert length == len(expected)
    y = numeric(sd.upfirdn(h, L, M).matrix(len(x), window=(0, length))) @ np.array(x, float)
    assert np.allclose(y, expected)
    assert np.allclose(np_upfirdn(h, x, L, M), expected)  # the naive oracle agrees with scipy too


def test_scipy_upfirdn_against_scipy_itself():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(1)
    for L, M, K, n in [(3, 2, 5, 7), (2, 3, 4, 9), (4, 1, 6, 5), (1, 4, 7, 11)]:
        h, x = rng.normal(size=K), rng.normal(size=n)
        expected = signal.upfirdn(h, x, L, M)
        y = numeric(sd.upfirdn(tuple(h), L, M).matrix(n, window=(0, len(expected)))) @ x
        assert np.allclose(y, expected)


def test_fcn_bilinear_kernel(shared_vectors):
    v = shared_vectors["fcn_bilinear_kernel"]
    assert [float(c) for c in sd.bilinear_kernel(4)] == v["size4_1d"]
    assert [float(c) for c in sd.bilinear_kernel(3)] == v["size3_1d"]


def test_fcn_bilinear_interpolates_linearly(shared_vectors):
    kernel = shared_vectors["fcn_bilinear_kernel"]["size4_1d"]
    op = sd.shift(-1) @ sd.transposed_conv(kernel, 2)
    assert sd.equivalent(op, sd.linear_interp(2))
    # a ramp is reproduced exactly away from the borders: half-pixel positions (n + ½)/2 − ½
    x = np.arange(8.0)
    y = numeric(op.matrix(8, window=(0, 16))) @ x
    positions = (np.arange(16) + 0.5) / 2 - 0.5
    assert np.allclose(y[1:-1], positions[1:-1])


def test_conv_arithmetic_example(shared_vectors):
    """k=3, s=2, p=1: i=5 and i=6 both give o=3 — the strided conv's output window says so."""
    rel = shared_vectors["conv_arithmetic_relationships"]
    # the numbers are read from the reference's example, then checked by symdeconv's operators
    found = re.search(r"k=(\d+),\s*s=(\d+),\s*p=(\d+): i=(\d+) and i=(\d+) both give o=(\d+)", rel["example"])
    assert found, rel["example"]
    k, s, p, i1, i2, o_ref = (int(v) for v in found.groups())
    for i in (i1, i2):
        # padded cross-correlation then ↓s: outputs at padded positions 0, s, 2s, ... that fit the kernel
        op = sd.down(s) @ sd.xcorr(sd.taps("w", k)) @ sd.shift(p)
        o = (i + 2 * p - k) // s + 1  # the reference's relationship 6
        assert o == o_ref
        m = op.matrix(i, window=(0, o))
        assert m.shape == (o_ref, i)
        assert sd.Conv(k, stride=s, padding=p).output_shape((i,)) == (o_ref,)  # the layer's own shape rule agrees
        # the last output's taps fall inside the padded input [−p, i + p)
        assert any(m[o - 1, c] != 0 for c in range(i))
