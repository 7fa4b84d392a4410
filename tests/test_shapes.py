"""The integer shape rules of symdeconv.algebra.shapes, checked against brute force and the operators."""

from __future__ import annotations

import itertools

import pytest

import symdeconv as sd
from symdeconv.algebra import shapes

from ._layer_helpers import public_vectors


def _brute_general(i, k, s, lo, hi, d, l):
    """Count outputs n ≥ 0 whose receptive field [s n, s n + d(k−1)] fits the padded dilated input."""
    length = l * (i - 1) + 1 + lo + hi
    n = 0
    while s * n + d * (k - 1) <= length - 1:
        n += 1
    return n


def test_general_output_size_is_the_brute_force_count():
    for i, k, s, lo, hi, d, l in itertools.product(range(1, 7), range(1, 5), range(1, 4), range(-2, 3), range(-2, 3),
                                                   range(1, 3), range(1, 3)):
        got = shapes.general_output_size(i, k, s, lo, hi, d, l)
        assert max(got, 0) == _brute_general(i, k, s, lo, hi, d, l)


def test_conv_output_size_from_the_operator():
    """Output n of ↓s ∘ xcorr is valid iff every sample it reads lies in the padded input [−p, i + p)."""
    for k, s, p, d in itertools.product(range(1, 5), range(1, 4), range(0, 3), range(1, 3)):
        layer = sd.Conv(k, stride=s, padding=p, dilation=d)
        box = ((-40, 40),)
        rows = layer.operator.sparse(box, ((0, 20),))
        for i in range(1, 9):
            valid = 0
            for n in range(20):
                reads = [m[0] for (_, m) in rows.get((0, (n,)), {})]
                if reads and all(-p <= m < i + p for m in reads):
                    valid += 1
                else:
                    break
            assert max(shapes.conv_output_size(i, k, s, p, d), 0) == valid
            if valid > 0:
                assert layer.output_shape((i,)) == (valid,)


def test_conv_transpose_output_size_from_the_operator():
    """With p = 0 and a = 0 the output ends at the last sample the scatter writes."""
    for k, s, d in itertools.product(range(1, 5), range(1, 4), range(1, 3)):
        layer = sd.ConvTranspose(k, stride=s, padding=0, output_padding=0, dilation=d)
        for i in range(1, 6):
            (lo, hi), = layer.operator.out_box(((0, i),))
            m = layer.operator.matrix(i, window=(0, hi))
            last = max(r for r in range(m.rows) if any(m.row(r)))
            assert shapes.conv_transpose_output_size(i, k, s, 0, 0, d) == last + 1 == layer.output_shape(i)[0]


def test_transposed_output_size_inverts_the_conv_with_the_ambiguity():
    for i, k, s, p, d in itertools.product(range(1, 12), range(1, 5), range(1, 4), range(0, 3), range(1, 3)):
        o = shapes.conv_output_size(i, k, s, p, d)
        if o <= 0:
            continue
        a = shapes.transpose_ambiguity(i, k, s, p, d)
        assert 0 <= a < s
        assert shapes.conv_transpose_output_size(o, k, s, p, a, d) == i
        assert i in shapes.conv_input_sizes(o, k, s, p, d)
        assert all(shapes.conv_output_size(j, k, s, p, d) == o for j in shapes.conv_input_sizes(o, k, s, p, d))
        if d == 1:  # Dumoulin & Visin's form
            assert a == (i + 2 * p - k) % s


def test_same_padding_rules():
    for i, k, s, d in itertools.product(range(1, 12), range(1, 6), range(1, 4), range(1, 3)):
        o, lo, hi = shapes.same_padding(i, k, s, d)
        assert o == -(-i // s)
        assert 0 <= hi - lo <= 1  # the odd sample goes to the high side
        assert shapes.general_output_size(i, k, s, lo, hi, d) == o
        o2, lo2, hi2 = shapes.same_padding(i, k, s, d, lower=True)
        assert (o2, lo2, hi2) == (o, hi, lo)
        # no output fits (brute count 0) exactly when the formula gives 0 or less
        assert max(shapes.valid_output_size(i, k, s, d), 0) == _brute_general(i, k, s, 0, 0, d, 1)


def test_tf_conv_transpose_padding_is_the_forward_conv():
    for o, k, s in itertools.product(range(1, 12), range(1, 6), range(1, 4)):
        for mode in ("SAME", "VALID"):
            i, lo, hi = shapes.tf_conv_transpose_padding(o, k, s, mode)
            if i <= 0:
                continue
            assert shapes.general_output_size(o, k, s, lo, hi) == i
            # the transposed layer then has exactly o outputs
            layer = sd.ConvTranspose(k, stride=s, padding=mode, convention="tf", output_shape=(o,))
            assert layer.output_shape((i,)) == (o,)


def test_keras_default_output_and_jax_padding_agree():
    for i, k, s, d in itertools.product(range(1, 8), range(1, 6), range(1, 4), range(1, 3)):
        ke = shapes.effective_kernel_size(k, d)
        for mode in ("SAME", "VALID"):
            lo, hi = shapes.jax_conv_transpose_padding(ke, s, mode)
            o = shapes.general_output_size(i, k, 1, lo, hi, d, s)
            assert o == shapes.keras_conv_transpose_output_size(i, k, s, mode, d)
        assert shapes.keras_conv_transpose_output_size(i, k, s, "SAME", d) == i * s


def test_keras_output_padding_formula():
    # Keras: (i − 1) s + k − 2 pad + output_padding, pad = k // 2 for SAME
    assert shapes.keras_conv_transpose_output_size(4, 3, 2, "SAME", 1, output_padding=1) == 3 * 2 + 3 - 2 + 1
    assert shapes.keras_conv_transpose_output_size(4, 3, 2, "VALID", 1, output_padding=0) == 9


def test_conv_arithmetic_relationships_vector():
    vec = public_vectors()["conv_arithmetic_relationships"]
    assert "relationship 6" in vec["conv"] and "relationship 14" in vec["transposed"]
    # relationship 6 / 15 and 14 as stated, evaluated literally over a grid
    for i, k, s, p, d in itertools.product(range(1, 10), range(1, 5), range(1, 4), range(0, 3), range(1, 3)):
        o = (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1
        assert shapes.conv_output_size(i, k, s, p, d) == o
        if d == 1 and o > 0:
            a = (i + 2 * p - k) % s
            assert shapes.conv_transpose_output_size(o, k, s, p, a) == s * (o - 1) + a + k - 2 * p == i


def test_shape_functions_validate():
    with pytest.raises(sd.SymdeconvError, match="stride"):
        shapes.conv_output_size(4, 3, 0)
    with pytest.raises(sd.SymdeconvError, match="kernel_size"):
        shapes.conv_output_size(4, 0)
    with pytest.raises(sd.SymdeconvError, match="padding must be 'SAME' or 'VALID'"):
        shapes.jax_conv_transpose_padding(3, 2, "FULL")
    with pytest.raises(sd.SymdeconvError, match="input size must be an integer"):
        shapes.conv_output_size(4.0, 3)
