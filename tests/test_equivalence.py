"""sd.equivalent: truthiness, counterexamples that a user can check, and sd.testing for user suites."""

from __future__ import annotations

import pytest
import sympy as sp

import symdeconv as sd

q = sd.taps("q", 3)


def test_issue_example():
    A = sd.conv(q) @ sd.hold(2)
    B = sd.conv(sd.convolve((1, 1), q)) @ sd.up(2)
    result = sd.equivalent(A, B)
    assert result and result.counterexample is None
    assert "every input length" in str(result)


def test_counterexample_names_phase_tap_values_and_entry():
    A = sd.conv(q) @ sd.hold(2)
    B = sd.conv((q[0], q[0] + q[1], q[1] + q[2], q[1])) @ sd.up(2)  # last tap wrong
    result = sd.equivalent(A, B)
    assert not result
    ce = result.counterexample
    assert ce.phase == (1,) and ce.offset == (-1,)
    assert {ce.lhs, ce.rhs} == {q[2], q[1]}
    # the entry really differs in the explicit matrices
    assert A.matrix(ce.n, window=ce.window)[ce.row, ce.col] == ce.lhs
    assert B.matrix(ce.n, window=ce.window)[ce.row, ce.col] == ce.rhs
    text = str(result)
    for word in ("NOT equivalent", "length n=", "phase 1", "tap offset -1", str(q[2]), str(q[1])):
        assert word in text, word


def test_numeric_difference():
    result = sd.equivalent(sd.conv((1, 2, 1)), sd.conv((1, 2, 2)))
    assert not result
    assert result.counterexample.lhs == 1 and result.counterexample.rhs == 2


def test_different_rates_counterexample():
    result = sd.equivalent(sd.up(2), sd.hold(2))
    assert not result and result.counterexample.phase == (1,)
    result = sd.equivalent(sd.up(2) @ sd.down(4), sd.down(2))
    assert not result
    ce = result.counterexample
    assert sp.expand(ce.lhs - ce.rhs) != 0


def test_layers_and_operators_are_both_accepted():
    class FakeLayer:
        operator = sd.up(2)

    assert sd.equivalent(FakeLayer(), sd.down(2).T)


def test_assert_equivalent_for_users():
    sd.testing.assert_equivalent(sd.down(2) @ sd.up(2), sd.identity())
    with pytest.raises(AssertionError, match="(?s)not equivalent.*length n="):
        sd.testing.assert_equivalent(sd.up(2) @ sd.down(2), sd.identity())
    sd.testing.assert_not_equivalent(sd.up(2) @ sd.down(2), sd.identity())
    with pytest.raises(AssertionError, match="every input length"):
        sd.testing.assert_not_equivalent(sd.up(3), sd.down(3).T)
