"""The identity catalogue drives these tests: every entry is proved twice, by independent routes."""

from __future__ import annotations

import pytest

import symdeconv as sd

NAMES = list(sd.identities)


def test_catalogue_has_the_required_identities():
    required = [
        "up_is_down_transpose", "strided_conv_transpose", "hold_then_conv_is_transposed_conv",
        "dilated_conv_is_conv_with_upsampled_kernel", "noble_decimation", "noble_interpolation",
        "up_down_commute[L=2,M=3]", "up_down_commute[L=2,M=2]", "polyphase_decomposition",
        "transposed_conv_is_interleaved_convs", "transposed_conv_is_pixel_shuffle",
        "fcn_bilinear_is_linear_interpolation", "strided_conv_input_gradient",
    ]
    for name in required:
        assert any(n == name or n.startswith(name + "[") for n in NAMES), name


@pytest.mark.parametrize("name", NAMES)
def test_identity_is_data_with_sources(name):
    ident = sd.identities[name]
    assert isinstance(ident.lhs, sd.Operator) and isinstance(ident.rhs, sd.Operator)
    assert ident.conditions and ident.citation and ident.statement


@pytest.mark.parametrize("name", NAMES)
def test_identity_proves_by_both_routes(name):
    proof = sd.identities[name].prove(sizes=(1, 2, 3, 4, 5, 7, 9))
    assert proof.routes_agree, proof.status
    assert proof.holds == sd.identities[name].holds, proof.status
    assert proof.ok


@pytest.mark.parametrize("name", [n for n in NAMES if not sd.identities[n].holds])
def test_non_identities_carry_a_checkable_counterexample(name):
    ident = sd.identities[name]
    ce = sd.equivalent(ident.lhs, ident.rhs).counterexample
    assert ce is not None
    a = ident.lhs.matrix(ce.n, window=ce.window)
    b = ident.rhs.matrix(ce.n, window=ce.window)
    assert a[ce.row, ce.col] == ce.lhs and b[ce.row, ce.col] == ce.rhs and ce.lhs != ce.rhs
    assert f"n={ce.n[0]}" in str(ce)


def test_gcd_rule_over_a_grid():
    """↑L↓M = ↓M↑L iff gcd(L, M) = 1, decided for every length, checked over a grid of factors."""
    from math import gcd

    for L in range(1, 7):
        for M in range(1, 7):
            holds = bool(sd.equivalent(sd.up(L) @ sd.down(M), sd.down(M) @ sd.up(L)))
            assert holds == (gcd(L, M) == 1), (L, M)


def test_sizes_are_independent_of_route():
    proof = sd.identities["hold_then_conv_is_transposed_conv"].prove(sizes=(1, 16))
    assert proof.matrices == {1: True, 16: True}
