"""Property tests: on random chains of up/down/conv/shift/hold, the normal form and explicit matrices agree.

Two independent routes decide the same question:
- the polyphase normal form (``sd.canonical``), computed by composing forms, for every length at once;
- explicit finite matrices, computed by multiplying the primitives' sparse matrices, for several n.
Random pairs are mostly different; rewritten pairs (by identities that preserve the operator) are
equal; perturbed rewrites are almost-equal.  Either way the two routes must agree.
"""

from __future__ import annotations

from math import gcd

import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdeconv as sd

SIZES = tuple(range(1, 10))
SETTINGS = settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small_taps = st.lists(st.integers(-3, 3), min_size=1, max_size=3).map(tuple)


@st.composite
def primitives(draw):
    kind = draw(st.sampled_from(["up", "down", "hold", "shift", "conv", "conv"]))
    if kind == "up":
        return sd.up(draw(st.integers(1, 3)))
    if kind == "down":
        return sd.down(draw(st.integers(1, 3)))
    if kind == "hold":
        return sd.hold(draw(st.integers(1, 3)))
    if kind == "shift":
        return sd.shift(draw(st.integers(-2, 2)))
    return sd.conv(draw(small_taps), origin=draw(st.integers(-1, 2)))


@st.composite
def chains(draw, max_len=4):
    factors = draw(st.lists(primitives(), min_size=1, max_size=max_len))
    op = factors[0]
    for f in factors[1:]:
        op = op @ f
    if draw(st.booleans()):
        op = op.T
    return op


def length_bound(*ops, cap: int = 400) -> int:
    """An input length past which any difference between the chains must show (from their structure).

    Every output reads inputs at offsets bounded by the taps and shifts, scaled by the rate changes, so
    the product of all factors times the total tap / shift reach (plus slack) suffices.
    """
    scale, reach = 1, 2
    for op in ops:
        for atom in op._atoms():
            if isinstance(atom, (sd.algebra.Up, sd.algebra.Down, sd.algebra.Hold)):
                scale *= atom.factor[0]
            elif isinstance(atom, sd.algebra.Shift):
                reach += abs(atom.d[0])
            elif isinstance(atom, sd.algebra.Conv):
                reach += atom.ksize[0] + abs(atom.origin[0])
    return min(scale * reach, cap)


def both_routes(a, b, cap: int = 400):
    result = sd.equivalent(a, b)
    by_form = bool(result)
    sizes = SIZES + (length_bound(a, b, cap=cap),)
    by_matrix = all(sd.matrices_agree(a, b, n) for n in sizes)
    if not by_form:  # the counterexample's witness length is real on the explicit matrices
        assert not sd.matrices_agree(a, b, result.counterexample.n)
    return by_form, by_matrix


@SETTINGS
@given(chains(), chains())
def test_random_pairs_routes_agree(a, b):
    by_form, by_matrix = both_routes(a, b)
    assert by_form == by_matrix, (a, b)


@st.composite
def rewrites(draw):
    """A chain and an equivalent chain built by operator-preserving rewrites."""
    factors = draw(st.lists(primitives(), min_size=1, max_size=3))
    rewritten = []
    for f in factors:
        choice = draw(st.integers(0, 5))
        if choice == 1:  # ↓k ↑k = I inserted before f
            k = draw(st.integers(2, 3))
            rewritten += [f, sd.down(k), sd.up(k)]
        elif choice == 2:  # z^d z^-d = I
            d = draw(st.integers(-2, 2))
            rewritten += [sd.shift(d), sd.shift(-d), f]
        elif choice == 3 and isinstance(f, sd.algebra.Conv):  # conv(q, o) = z^{-o} conv(q) ... as a shift
            rewritten += [sd.shift(-f.origin[0]), sd.conv(f.taps())]
        elif choice == 4:  # Aᵀᵀ
            rewritten.append(f.T.T)
        elif choice == 5 and isinstance(f, sd.algebra.Up):  # ↑L = ↑L ↓M ↑M = ↓M ↑L ↑M when gcd(L, M) = 1
            M = draw(st.sampled_from([m for m in (1, 2, 3, 5) if gcd(m, f.factor[0]) == 1]))
            rewritten += [sd.down(M), f, sd.up(M)]
        else:
            rewritten.append(f)
    a = factors[0]
    for f in factors[1:]:
        a = a @ f
    b = rewritten[0]
    for f in rewritten[1:]:
        b = b @ f
    return a, b


@SETTINGS
@given(rewrites())
def test_rewritten_pairs_are_equal_by_both_routes(pair):
    a, b = pair
    by_form, by_matrix = both_routes(a, b, cap=48)
    assert by_form and by_matrix, (a, b)


@st.composite
def convolution_splits(draw):
    """conv(a ∗ b) inside a chain vs conv(a) @ conv(b): equal; with one tap perturbed: different."""
    a, b = draw(small_taps), draw(small_taps)
    before, after = draw(chains(max_len=2)), draw(chains(max_len=2))
    joined = before @ sd.conv(sd.convolve(a, b)) @ after
    split = before @ sd.conv(a) @ sd.conv(b) @ after
    return joined, split


@SETTINGS
@given(convolution_splits())
def test_convolution_splits_routes_agree(pair):
    a, b = pair
    by_form, by_matrix = both_routes(a, b, cap=48)
    assert by_form == by_matrix
    # both sides are one operator written two ways: equal
    assert by_form


@SETTINGS
@given(chains(), st.integers(1, 6))
def test_normal_form_kernel_reproduces_matrix(op, n):
    """Every entry of the explicit matrix equals h(n, m) read off the normal form."""
    nf = sd.canonical(op)
    in_box = op.input_box(n)
    window = op.out_box(in_box)
    rows = op.sparse(in_box, window)
    (lo, hi), = window
    for t in range(lo, hi):
        row = rows.get((0, (t,)), {})
        for m in range(n):
            assert sp.expand(row.get((0, (m,)), 0) - nf.kernel(0, (t,), 0, (m,))) == 0


@settings(max_examples=300, deadline=None)
@given(chains(max_len=3), chains(max_len=3), st.integers(-3, 3))
def test_algebra_laws(a, b, c):
    """Transpose reverses composition; scaling and sums behave linearly — in normal form."""
    if a.ndim == b.ndim:
        assert sd.equivalent((a @ b).T, b.T @ a.T)
    assert sd.equivalent(c * (a + a), (2 * c) * a)
    assert sd.equivalent(a - a, 0 * sd.identity())
