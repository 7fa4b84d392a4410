"""The polyphase normal form: textbook forms, uniqueness, periods, and agreement with matrices."""

from __future__ import annotations

import pytest
import sympy as sp

import symdeconv as sd

q = sd.taps("q", 3)
q0, q1, q2 = q


def test_issue_example_form():
    nf = sd.canonical(sd.conv(sd.convolve((1, 1), q)) @ sd.up(2))
    assert (nf.L, nf.M, nf.P, nf.Q) == ((2,), (1,), (2,), (1,))
    assert nf.phase_taps(0) == {0: q0, -1: q1 + q2}
    assert nf.phase_taps(1) == {0: q0 + q1, -1: q2}
    text = str(nf)
    assert "y[2m] = q0·x[m] + (q1 + q2)·x[m − 1]" in text
    assert "y[2m + 1] = (q0 + q1)·x[m] + q2·x[m − 1]" in text
    assert r"\begin{aligned}" in nf._repr_latex_()


def test_up_down_period_two_and_down_up_identity():
    ud = sd.canonical(sd.up(2) @ sd.down(2))
    assert ud.rate == (1,) and ud.P == (2,) and ud.Q == (2,)
    assert ud.phase_taps(0) == {0: 1} and ud.phase_taps(1) == {}
    du = sd.canonical(sd.down(2) @ sd.up(2))
    assert du == sd.canonical(sd.identity())
    assert du.P == (1,)


def test_minimal_period_is_found():
    # hold(2) written at period 4: still period 2
    nf = sd.canonical(sd.hold(2) @ sd.down(2) @ sd.up(2))
    assert nf.P == (2,) and nf.Q == (1,)
    # ↓2 ↑2 ↑3 ↓3 is the identity
    assert sd.canonical(sd.down(2) @ sd.up(2) @ sd.down(3) @ sd.up(3)).P == (1,)


def test_zero_operator_is_unique_whatever_the_rate():
    assert sd.canonical(0 * sd.up(2)) == sd.canonical(sd.conv((0,)))
    assert sd.canonical(sd.up(2) - sd.up(2)).is_zero


def test_normal_form_equality_is_semantic():
    a = sd.canonical(sd.conv(((q0 + q1) ** 2,)))
    b = sd.canonical(sd.conv((q0**2 + 2 * q0 * q1 + q1**2,)))
    assert a == b and hash(a) == hash(b)
    assert a != sd.canonical(sd.conv((q0**2,)))


def test_kernel_reproduces_matrix_entries():
    op = sd.down(3) @ sd.conv(sd.taps("h", 5), origin=2) @ sd.up(2) @ sd.hold(2)
    nf = sd.canonical(op)
    n = 6
    in_box = op.input_box(n)
    (lo, hi), = op.out_box(in_box)
    m = op.matrix(n)
    for r in range(hi - lo):
        for c in range(n):
            assert sp.expand(m[r, c] - nf.kernel(0, (lo + r,), 0, (c,))) == 0


def test_multichannel_nd_form():
    w = sd.taps("w", (2, 1, 2, 2))
    op = sd.pixel_shuffle((1, 1), channels=2) @ sd.channel_conv(w) @ sd.up((2, 1))
    nf = sd.canonical(op)
    assert nf.ndim == 2 and nf.c_in == 1 and nf.c_out == 2 and nf.P == (2, 1)
    assert "y0[" in str(nf) and "channels 1→2" in str(nf)
    assert nf.to_dict()["P"] == [2, 1]


def test_counting_taps_is_the_kernel_plan():
    # transposed conv k=4, s=2: 2 taps per phase, 4 multiplications per 2 outputs (not 8)
    nf = sd.canonical(sd.transposed_conv(sd.taps("q", 4), 2))
    assert nf.n_taps() == 4


@pytest.mark.parametrize("L,M", [(2, 3), (3, 2), (4, 6), (6, 4), (3, 3)])
def test_rational_resampler_rate(L, M):
    from math import gcd

    nf = sd.canonical(sd.upfirdn(sd.taps("h", 5), L, M))
    g = gcd(L, M)
    assert nf.L == (L // g,) and nf.M == (M // g,)
