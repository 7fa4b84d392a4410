"""Checkerboard analysis against a naive NumPy scatter (the transposed conv's definition)."""

from __future__ import annotations

import numpy as np
import pytest

import symdeconv as sd


def naive_overlap(k: int, s: int, n: int) -> list[int]:
    counts = np.zeros((n - 1) * s + k, int)
    for i in range(n):
        counts[i * s: i * s + k] += 1
    return counts.tolist()


def test_issue_examples():
    r3 = sd.checkerboard((1, 1, 1), stride=2, n=4)
    assert list(r3.overlap) == [1, 1, 2, 1, 2, 1, 2, 1, 1]
    assert not r3.even_overlap and r3.has_checkerboard
    r4 = sd.checkerboard((1, 1, 1, 1), stride=2, n=4)
    assert r4.even_overlap and r4.constant_preserving


@pytest.mark.parametrize("k,s,n", [(k, s, n) for k in range(1, 7) for s in range(1, 4) for n in (1, 3, 6)])
def test_overlap_matches_scatter(k, s, n):
    r = sd.checkerboard((1,) * k, stride=s, n=n)
    assert list(r.overlap) == [c for c in naive_overlap(k, s, n)]
    assert r.even_overlap == (k % s == 0)


@pytest.mark.parametrize("kernel", [(1, 1, 1), (1, 2, 1), (1, 3, 3, 1), (2, 1, 1, 1, 2)])
def test_constant_input_response(kernel):
    """Away from the borders a constant input gives phase p the gain of phase p (naive scatter oracle)."""
    s, n = 2, 12
    y = np.zeros((n - 1) * s + len(kernel))
    for i in range(n):
        y[i * s: i * s + len(kernel)] += kernel
    r = sd.checkerboard(kernel, stride=s, n=n)
    interior = range(len(kernel), (n - 1) * s)
    assert all(y[t] == float(r.gains[t % s]) for t in interior)
    assert r.constant_preserving == (len({y[t] for t in interior}) == 1)


def test_symbolic_gains():
    q = sd.taps("q", 3)
    r = sd.checkerboard(q, stride=2, n=3)
    assert r.gains == (q[0] + q[2], q[1])
    assert "checkerboard" in str(r)


def test_hold_then_conv_has_even_overlap():
    q = sd.taps("q", 3)
    r = sd.checkerboard(sd.conv(q) @ sd.hold(2), n=4)
    assert r.even_overlap and r.constant_preserving  # hold keeps a constant constant: no checkerboard
