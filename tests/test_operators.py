"""Operators as matrices: the textbook examples, transposes, windows, composition and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

import symdeconv as sd
from symdeconv import SymdeconvError

from .helpers import np_hold, np_up, numeric

q0, q1, q2 = sd.taps("q", 3)


def test_textbook_matrices():
    assert sd.up(2).matrix(2) == sp.Matrix([[1, 0], [0, 0], [0, 1], [0, 0]])
    assert sd.down(2).matrix(4) == sp.Matrix([[1, 0, 0, 0], [0, 0, 1, 0]])
    assert sd.conv((q0, q1, q2), origin=1).matrix(4, window=(0, 4)) == sp.Matrix(
        [[q1, q0, 0, 0], [q2, q1, q0, 0], [0, q2, q1, q0], [0, 0, q2, q1]]
    )


@pytest.mark.parametrize("k,n", [(1, 3), (2, 1), (2, 4), (3, 5), (4, 2)])
def test_up_is_down_transposed_as_matrices(k, n):
    assert sd.up(k).matrix(n).T == sd.down(k).matrix(n * k)


@pytest.mark.parametrize("n", [1, 2, 5, 7])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_row_counts(n, k):
    assert sd.up(k).matrix(n).shape == (n * k, n)
    assert sd.down(k).matrix(n).shape == (-(-n // k), n)
    assert sd.conv(sd.taps("h", k)).matrix(n).shape == (n + k - 1, n)
    assert sd.hold(k).matrix(n).shape == (n * k, n)


def test_against_numpy_definitions():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=6).astype(float)
    h = rng.integers(-3, 4, size=4).astype(float)
    assert np.allclose(numeric(sd.up(3).matrix(6)) @ x, np_up(x, 3))
    assert np.allclose(numeric(sd.hold(2).matrix(6)) @ x, np_hold(x, 2))
    assert np.allclose(numeric(sd.down(2).matrix(6)) @ x, x[::2])
    assert np.allclose(numeric(sd.conv(h).matrix(6)) @ x, np.convolve(h, x))
    assert np.allclose(numeric(sd.shift(2).matrix(6, window=(0, 6))) @ x, np.r_[0, 0, x[:4]])
    # cross-correlation is what frameworks call conv: np.correlate(x, w, 'valid')
    assert np.allclose(numeric(sd.xcorr(h).matrix(6, window=(0, 3))) @ x, np.correlate(x, h, "valid"))


PRIMITIVES = [
    sd.up(3), sd.down(2), sd.hold(2), sd.shift(-2), sd.conv(sd.taps("a", 3), origin=1),
    sd.conv([[q0, q1], [q2, 5]]), sd.up((2, 3)), sd.hold((1, 2)), sd.pixel_shuffle(2, channels=2),
    sd.pixel_unshuffle((2, 2)), sd.channel_conv([[[1, 2]], [[3, q0]], [[0, q1]]], origin=1),
    sd.linear_interp(3), sd.periodic(2, 3, {0: {0: q0, 4: q1}, 1: {-1: 2}}),
]


@pytest.mark.parametrize("op", PRIMITIVES, ids=repr)
def test_transpose_matrix_is_matrix_transpose(op):
    """Aᵀ's matrix over A's output window equals the transpose of A's matrix (for every primitive)."""
    n = (3,) * op.ndim
    in_box = op.input_box(n)
    out_box = op.out_box(in_box)
    a = op.matrix(n)
    sizes = tuple(hi - lo for lo, hi in out_box)
    starts = tuple(lo for lo, _ in out_box)
    at = op.T.matrix(sizes, start=starts, window=in_box if op.ndim > 1 else in_box[0])
    assert at == a.T


@pytest.mark.parametrize("op", PRIMITIVES, ids=repr)
def test_transpose_twice_is_equivalent(op):
    assert sd.equivalent(op.T.T, op)


def test_composition_multiplies_matrices():
    a = sd.down(2) @ sd.conv((q0, q1, q2))
    n = 5
    mid = sd.conv((q0, q1, q2)).matrix(n)
    assert a.matrix(n) == (sd.down(2).matrix(mid.shape[0]) * mid).expand()


def test_sum_and_scale():
    a = sd.conv((1, 2)) + 3 * sd.shift(1)
    assert a.matrix(3) == sp.Matrix([[1, 0, 0], [2, 1, 0], [0, 2, 1], [0, 0, 2]]) + 3 * sd.shift(1).matrix(3, window=(0, 4))
    assert sd.equivalent(sd.conv((1, 2)) - sd.conv((1, 2)), 0 * sd.identity())
    assert sum([sd.conv((1,)), sd.conv((2,))]).matrix(2) == 3 * sp.eye(2)


def test_window_negative_times_and_start():
    c = sd.conv((q0, q1, q2), origin=2)
    assert c.out_box(((0, 4),)) == ((-2, 4),)
    m = c.matrix(4)
    assert m.shape == (6, 4)
    assert m[0, 0] == q0  # y[-2] = Σ_j q_j x[-2 - j + 2] = q0 x[0]
    assert m[5, 3] == q2  # y[3] = q2 x[3 - 2 + 2]
    shifted = sd.up(2).matrix(2, start=3)
    assert shifted == sd.up(2).matrix(2)


def test_periodic_definition():
    op = sd.periodic(2, 1, {0: {0: q0, -1: q2}, 1: {0: q1}})
    m = op.matrix(3)
    assert m[0, 0] == q0 and m[1, 0] == q1 and m[2, 0] == q2 and m[2, 1] == q0


def test_nd_is_kron_of_1d():
    a, b = sd.up((2, 3)), sd.conv([[q0, q1], [q2, 1]])
    m = a.matrix((2, 2))
    assert m == sp.kronecker_product(sd.up(2).matrix(2), sd.up(3).matrix(2))
    sep = sd.conv([[1, 2], [3, 6]])  # outer((1,3), (1,2))
    assert sep.matrix((2, 3)) == sp.kronecker_product(sd.conv((1, 3)).matrix(2), sd.conv((1, 2)).matrix(3))
    assert b.matrix((2, 2)).shape == (9, 4)


def test_free_symbols_and_subs():
    op = sd.conv((q0, q1)) @ sd.up(2)
    assert op.free_symbols() == {q0, q1}
    numeric_op = op.subs({q0: 1, q1: 2})
    assert sd.equivalent(numeric_op, sd.conv((1, 2)) @ sd.up(2))


def test_float_taps_are_exact():
    assert sd.equivalent(sd.conv((0.25, 0.75)), sd.conv((sp.Rational(1, 4), sp.Rational(3, 4))))
    assert sd.conv((0.1,)).taps() == (sp.Rational(1, 10),)


# ------------------------------------------------------------------------------------------------
# Bad input: SymdeconvError naming the parameter and the rule
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: sd.up(0), ["k", "positive"]),
        (lambda: sd.down(-2), ["k", "positive"]),
        (lambda: sd.hold(1.5), ["k", "integer"]),
        (lambda: sd.up(True), ["k", "integer"]),
        (lambda: sd.up((2, 0)), ["k[1]", "positive"]),
        (lambda: sd.shift(0.5), ["d", "integer"]),
        (lambda: sd.conv(()), ["taps", "empty"]),
        (lambda: sd.conv([[1, 2], [3]]), ["taps", "rectangular"]),
        (lambda: sd.conv(("q0", "q1")), ["taps", "string"]),
        (lambda: sd.conv((1, 2), origin=0.5), ["origin", "integer"]),
        (lambda: sd.taps("q", 0), ["n", "positive"]),
        (lambda: sd.taps("1q", 2), ["name", "identifier"]),
        (lambda: sd.strided_conv((1, 2), 0), ["s", "positive"]),
        (lambda: sd.dilated_conv((1, 2), -1), ["d", "positive"]),
        (lambda: sd.transposed_conv((), 2), ["q", "empty"]),
        (lambda: sd.up(2) @ sd.up((2, 2)), ["spatial dimensions"]),
        (lambda: sd.pixel_shuffle(2, channels=1) @ sd.up(2), ["channel"]),
        (lambda: sd.up(2) + sd.identity(), ["rate"]),
        (lambda: sd.up(2) * sd.up(2), ["compose"]),
        (lambda: sd.up(2) @ 3, None),
        (lambda: sd.up(2).matrix(0), ["n", "positive"]),
        (lambda: sd.up(2).matrix(3, window=(4, 1)), ["window", "start <= stop"]),
        (lambda: sd.equivalent(sd.up(2), sd.up((2, 2))), ["different spaces"]),
        (lambda: sd.canonical("up(2)"), ["operator"]),
        (lambda: sd.checkerboard((1, 1), stride=0), ["s", "positive"]),
        (lambda: bool(sd.up(2)), ["truth value"]),
        (lambda: sd.conv((float("nan"),)), ["finite"]),
    ],
)
def test_bad_input_raises_symdeconv_error(call, words):
    if words is None:  # Python's own operator protocol: TypeError for a non-operator operand
        with pytest.raises(TypeError):
            call()
        return
    with pytest.raises(SymdeconvError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_error_is_value_error_with_context():
    with pytest.raises(ValueError, match=r"^sd.strided_conv: s must be a positive integer"):
        sd.strided_conv((1,), 0)


def test_in_context_prefixes_once_and_keeps_the_cause():
    from symdeconv.errors import context, in_context

    cause = KeyError("k")
    try:
        try:
            raise SymdeconvError("k must be positive") from cause
        except SymdeconvError as err:
            raise in_context(err, "sd.f")
    except SymdeconvError as err:
        outer = err
    assert str(outer) == "sd.f: k must be positive" and outer.__cause__ is cause
    assert in_context(outer, "sd.f") is outer  # already prefixed: unchanged
    with pytest.raises(SymdeconvError, match=r"^sd.g: sd.f: k must be positive$") as info:
        with context("sd.g"):
            raise outer
    assert info.value.__cause__ is cause
