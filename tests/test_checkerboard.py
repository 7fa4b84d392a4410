"""Checkerboard analysis against a naive NumPy scatter (the transposed conv's definition)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

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


# --- issue 18: the structural overlap and the weight condition, apart ------------------------------

def scatter_ones(kernel_shape: tuple[int, ...], stride: tuple[int, ...], n: tuple[int, ...]) -> np.ndarray:
    """Overlap counts by brute force: paste a ones kernel at ``stride · m`` for every input position ``m``."""
    out = np.zeros([(ni - 1) * s + k for ni, s, k in zip(n, stride, kernel_shape)], int)
    for m in np.ndindex(*n):
        out[tuple(slice(i * s, i * s + k) for i, s, k in zip(m, stride, kernel_shape))] += 1
    return out


def interior_by_phase(counts: np.ndarray, kernel_shape, stride) -> dict:
    """The overlap count of each output phase, read where the whole kernel lands (all must agree)."""
    per_phase: dict = {}
    for t in np.ndindex(*counts.shape):
        if all(k - 1 <= ti <= c - k for ti, k, c in zip(t, kernel_shape, counts.shape)):
            per_phase.setdefault(tuple(ti % s for ti, s in zip(t, stride)), set()).add(int(counts[t]))
    assert all(len(v) == 1 for v in per_phase.values())
    return {p: v.pop() for p, v in per_phase.items()}


STRUCTURES = [((3,), (2,)), ((4,), (2,)), ((6,), (3,)), ((5,), (3,)), ((2,), (2,)),
              ((3, 3), (2, 2)), ((4, 4), (2, 2)), ((4, 3), (2, 2)), ((3, 6), (2, 3))]


def layer_for(kernel_shape, stride) -> sd.ConvTranspose:
    return sd.ConvTranspose(kernel_shape if len(kernel_shape) > 1 else kernel_shape[0],
                            stride=stride if len(stride) > 1 else stride[0], ndim=len(kernel_shape))


@pytest.mark.parametrize("kernel_shape,stride", STRUCTURES)
def test_structure_is_kernel_size_and_stride_only(kernel_shape, stride):
    """taps per phase and overlap counts: brute-force scatter of a ones kernel; the same for any weights."""
    n = (4,) * len(kernel_shape)
    counts = scatter_ones(kernel_shape, stride, n)
    phase_counts = interior_by_phase(scatter_ones(kernel_shape, stride, (7,) * len(kernel_shape)), kernel_shape, stride)
    layer = layer_for(kernel_shape, stride)
    rng = np.random.default_rng(sum(kernel_shape) * 7 + sum(stride))
    weights = {
        "symbolic": None,
        "ones": np.ones(layer.weight_shape, int),
        "random": rng.integers(-9, 10, layer.weight_shape),
        "with a zero": np.where(np.arange(np.prod(layer.weight_shape)).reshape(layer.weight_shape) == 1, 0, 1),
    }
    for name, w in weights.items():
        r = sd.checkerboard(layer, n=n[0], weight=w)
        assert np.array_equal(np.array(r.overlap), counts), name
        assert r.output_start == (0 if len(n) == 1 else (0,) * len(n))
        got = np.array(r.taps_per_phase).reshape(-1)
        assert got.tolist() == [phase_counts[p] for p in np.ndindex(*stride)], name
        assert r.even_overlap == (len(set(phase_counts.values())) == 1) == all(
            k % s == 0 for k, s in zip(kernel_shape, stride))
        assert r.structural_verdict == ("even overlap" if r.even_overlap else "uneven overlap")
    # the tap-array form, taps given as numbers, is the same transposed conv
    taps = np.ones(kernel_shape, int).tolist()
    r = sd.checkerboard(taps, stride=stride if len(stride) > 1 else stride[0], n=n if len(n) > 1 else n[0])
    assert np.array_equal(np.array(r.overlap), counts)


@pytest.mark.parametrize("kernel_shape,stride", STRUCTURES)
def test_gain_equations_against_the_matrix(kernel_shape, stride):
    """Symbolic weights: the layer's matrix times a constant vector is, inside, each phase's gain; the
    conditions are exactly the differences to phase 0, so they hold iff the inside is constant."""
    layer = layer_for(kernel_shape, stride)
    n = tuple(max(3, -(-k // s) + 2) for k, s in zip(kernel_shape, stride))
    r = sd.checkerboard(layer, n=n[0] if len(n) == 1 else n)
    out_shape = layer.output_shape(n)
    y = np.array(list(layer.matrix(n) * sp.ones(int(np.prod(n)), 1)), dtype=object).reshape(out_shape)
    gains = np.array(r.gains, dtype=object)
    inside = [t for t in np.ndindex(*out_shape)
              if all(k - 1 <= ti <= (ni - 1) * s for ti, k, ni, s in zip(t, kernel_shape, n, stride))]
    assert inside
    for t in inside:
        assert sp.expand(y[t] - gains[tuple(ti % s for ti, s in zip(t, stride))]) == 0
    t0 = next(t for t in inside if all(ti % s == 0 for ti, s in zip(t, stride)))
    differences = {sp.expand(y[t0] - y[t]) for t in inside} - {0}
    assert differences == {sp.expand(c.lhs - c.rhs) for c in r.conditions}
    assert all(isinstance(c, sp.Equality) for c in r.conditions)
    assert r.satisfied is None and not r.constant_preserving and r.has_checkerboard
    # a solution of the conditions makes the inside constant
    unknowns = [c.rhs.as_ordered_terms()[0] for c in r.conditions]
    solution = sp.solve(r.conditions, unknowns, dict=True)[0]
    assert len({sp.expand(y[t].xreplace(solution)) for t in inside}) == 1


def test_issue_examples_both_facts():
    """k = 4 at stride 2 overlaps evenly, k = 3 does not; both need a weight condition for a constant output."""
    r4, r3 = sd.checkerboard(sd.ConvTranspose(4, stride=2)), sd.checkerboard(sd.ConvTranspose(3, stride=2))
    w = sd.ConvTranspose(4, stride=2).weight_symbols()[0, 0]
    assert r4.verdict == f"structural: even overlap; weights: constant-preserving iff {w[0] + w[2]} = {w[1] + w[3]}"
    assert r4.conditions == (sp.Eq(w[0] + w[2], w[1] + w[3]),)
    assert r3.verdict == f"structural: uneven overlap; weights: constant-preserving iff {w[0] + w[2]} = {w[1]}"
    for r in (r3, r4):
        lines = str(r).splitlines()
        assert [line.split(":")[0].strip() for line in lines[1:]] == [
            "structural (kernel size and stride, not the weight values)", "structural",
            "weights", "weights", "verdict"]
        assert "checkerboard" in lines[4] and "structural" in repr(r) and "weights" in repr(r)
    assert "even overlap" in repr(r4) and "uneven overlap" in repr(r3)


@pytest.mark.parametrize("kernel_shape,stride", STRUCTURES)
def test_numeric_weights_satisfy_or_not(kernel_shape, stride):
    """The verdict on given weights against M @ 1: the inside of the output is constant iff satisfied."""
    layer = layer_for(kernel_shape, stride)
    n = tuple(max(3, -(-k // s) + 2) for k, s in zip(kernel_shape, stride))
    one_d = [sd.bilinear_kernel(k) if k % s == 0 and k == 2 * s else (1,) * k for k, s in zip(kernel_shape, stride)]
    separable = np.array([[1]], dtype=object)
    for taps in one_d:
        separable = np.multiply.outer(separable, np.array(taps, dtype=object))
    rng = np.random.default_rng(11)
    cases = {"separable": separable.reshape(layer.weight_shape), "random": rng.integers(1, 50, layer.weight_shape)}
    out_shape = layer.output_shape(n)
    for name, w in cases.items():
        r = sd.checkerboard(layer, n=n[0] if len(n) == 1 else n, weight=w)
        y = np.array(list(layer.matrix(n, weight=w) * sp.ones(int(np.prod(n)), 1)), dtype=object).reshape(out_shape)
        inside = {y[t] for t in np.ndindex(*out_shape)
                  if all(k - 1 <= ti <= (ni - 1) * s for ti, k, ni, s in zip(t, kernel_shape, n, stride))}
        assert r.satisfied is (len(inside) == 1), name
        assert r.constant_preserving is (len(inside) == 1) and r.has_checkerboard is (len(inside) > 1)
        assert set(np.array(r.gains, dtype=object).reshape(-1)) == inside
        assert ("the given weights satisfy it" in r.weight_verdict) is r.satisfied
        expected_response = y[tuple(slice(0, s) for s in np.array(r.response).shape)]
        assert np.array_equal(np.array(r.response, dtype=object), expected_response)
        values = [sp.Integer(int(v)) if isinstance(v, (int, np.integer)) else v for v in np.asarray(w).reshape(-1)]
        assert r.weights == dict(zip(layer.weight_symbols().reshape(-1), values))


def test_bilinear_satisfies_random_does_not():
    bil = sd.bilinear_kernel(4)
    assert sd.checkerboard(bil, stride=2).satisfied is True
    assert sd.checkerboard(sd.ConvTranspose(4, stride=2), weight=[[bil]]).constant_preserving
    bil2 = [[a * b for b in bil] for a in bil]
    r = sd.checkerboard(sd.ConvTranspose(4, stride=2, ndim=2), weight=[[bil2]], n=3)
    assert r.satisfied is True and r.gains == ((1, 1), (1, 1)) and len(r.conditions) == 3
    rng = np.random.default_rng(5)
    random = rng.integers(1, 100, (1, 1, 4, 4))
    r = sd.checkerboard(sd.ConvTranspose(4, stride=2, ndim=2), weight=random, n=3)
    assert r.satisfied is False and r.even_overlap and r.has_checkerboard
    # uneven overlap with equal gains: the [1, 2, 1] binomial kernel (its phases 1 + 1 and 2)
    r = sd.checkerboard((1, 2, 1), stride=2)
    assert not r.even_overlap and r.satisfied is True and r.verdict.startswith("structural: uneven overlap; ")


def test_generic_symbols_for_operators():
    """An operator's numeric convolution gets placeholder symbols; distinct symbols are kept as they are."""
    q = sd.taps("q", 3)
    r = sd.checkerboard(sd.transposed_conv(q, 2))
    assert r.weights == {} and r.conditions == (sp.Eq(q[0] + q[2], q[1]),)
    r = sd.checkerboard(sd.transposed_conv((1, 2, 3), 2))
    w = sp.symbols("w0:3")
    assert r.weights == dict(zip(w, (1, 2, 3))) and r.conditions == (sp.Eq(w[0] + w[2], w[1]),)
    assert r.satisfied is False and r.gains == (4, 2) and r.has_checkerboard
    a = sp.Symbol("a")
    r = sd.checkerboard(sd.transposed_conv((1, a, 1), 2))  # partly symbolic: depends on a
    assert r.satisfied is None and "depends" in r.weight_verdict
    assert sd.checkerboard(sd.transposed_conv((1, 2, 1), 2)).satisfied is True
    fixed = sd.checkerboard(sd.linear_interp(2))
    assert fixed.conditions == () and fixed.weight_verdict == "constant-preserving (fixed, equal gains)"


def test_errors_name_the_parameter():
    layer = sd.ConvTranspose(4, stride=2)
    cases = [
        (lambda: sd.checkerboard(sd.up(2), weight=[[[1, 1, 1, 1]]]), "weight="),
        (lambda: sd.checkerboard(layer, weight=[[1, 1, 1, 1]]), "weight must have"),
        (lambda: sd.checkerboard((1, 1), stride=2, weight=[1]), "weight="),
        (lambda: sd.checkerboard(layer, n=0), "n must be a positive"),
        (lambda: sd.checkerboard(layer, n=True), "n must be a positive"),
        (lambda: sd.checkerboard(sd.ConvTranspose(4, stride=2, ndim=2), n=(3, 3, 3)), "n must be"),
        (lambda: sd.checkerboard(sd.up(2, channels=2)), "single-channel"),
        (lambda: sd.checkerboard([[1, 1], [1, 1]], stride=(2, 0)), "stride[1] must be a positive"),
    ]
    for call, words in cases:
        with pytest.raises(sd.SymdeconvError) as info:
            call()
        assert words in str(info.value) and str(info.value).startswith("sd.checkerboard"), str(info.value)
