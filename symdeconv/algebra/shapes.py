"""Shape rules of convolution layers, as pure integer functions, all derived from one formula.

Every layer of :mod:`symdeconv.algebra.layers` — PyTorch, TensorFlow or JAX, plain or transposed — is,
per spatial dimension, the *general dilated convolution* of ``jax.lax.conv_general_dilated``:

    y[n] = Σ_j w̃[j] · x̂[s n + d j − lo],     x̂ = ↑l x  (the input with l − 1 zeros between samples),

where ``w̃`` is a cross-correlation kernel of ``k`` taps, ``d`` the kernel dilation, ``s`` the window
stride, ``l`` the input ("lhs") dilation and ``lo`` / ``hi`` the zeros padded before / after ``x̂``
(negative values crop).  ``x̂`` has ``l (i − 1) + 1`` samples, the padded signal ``l (i − 1) + 1 + lo + hi``,
and output ``n`` is produced iff its whole receptive field ``[s n, s n + d (k − 1)]`` lies inside it:

    o = ⌊(l (i − 1) + lo + hi − d (k − 1)) / s⌋ + 1                        (:func:`general_output_size`)

Each framework rule below is this formula with the framework's parameters substituted:

* a plain convolution has ``l = 1`` and ``lo = hi = p`` (symmetric padding):
  ``o = ⌊(i + 2p − d(k − 1) − 1) / s⌋ + 1`` — relationships 6 and 15 of Dumoulin & Visin,
  *A guide to convolution arithmetic for deep learning* (arXiv:1603.07285), and PyTorch's ``Conv*d``;
* a transposed convolution with stride ``s`` is ``l = s``, window stride 1, and the padding
  ``lo = d(k − 1) − p``, ``hi = d(k − 1) − p + a``: ``o' = s(i' − 1) + d(k − 1) − 2p + a + 1``
  (relationship 14 with dilation; PyTorch's ``ConvTranspose*d`` with ``output_padding = a``).
  It is the adjoint of the plain convolution, which maps every ``i`` with the same
  ``⌊(i + 2p − d(k−1) − 1)/s⌋`` to the same ``o``: the ``s`` candidates differ by
  ``a = (i + 2p − d(k − 1) − 1) mod s`` (``(i + 2p − k) mod s`` without dilation, relationship 14), which is
  why the transposed layer needs ``a`` (:func:`transpose_ambiguity`);
* TensorFlow / JAX ``"SAME"`` pads ``max((⌈i/s⌉ − 1) s + d(k − 1) + 1 − i, 0)`` in total, the odd sample on
  the high side (``"SAME_LOWER"``: low side), so that ``o = ⌈i / s⌉``; ``"VALID"`` pads nothing;
* ``tf.nn.conv2d_transpose`` is the gradient of ``conv2d`` with respect to its input: its padding is that
  of the forward convolution from the *output* shape (:func:`tf_conv_transpose_padding`);
* ``jax.lax.conv_transpose`` passes explicit pairs, or the pairs of :func:`jax_conv_transpose_padding`,
  to ``conv_general_dilated`` with ``lhs_dilation = strides``.

All functions take and return Python ints (one spatial dimension); they validate their arguments but
do not reject non-positive results — the layers do that, naming the parameters involved.
"""

from __future__ import annotations

from typing import Any

from ..errors import SymdeconvError
from ._validate import as_int, as_positive_int

__all__ = [
    "effective_kernel_size", "general_output_size", "conv_output_size", "conv_transpose_output_size",
    "transpose_ambiguity", "conv_input_sizes", "same_padding", "valid_output_size", "tf_conv_transpose_padding",
    "keras_conv_transpose_output_size", "jax_conv_transpose_padding", "transposed_padding",
]


def effective_kernel_size(k: Any, d: Any = 1) -> int:
    """``d (k − 1) + 1``: the span of a ``k``-tap kernel dilated by ``d`` (Dumoulin & Visin, eq. 15)."""
    return as_positive_int(d, "dilation") * (as_positive_int(k, "kernel_size") - 1) + 1


def general_output_size(i: Any, k: Any, s: Any = 1, lo: Any = 0, hi: Any = 0, d: Any = 1, l: Any = 1) -> int:
    """``⌊(l (i − 1) + lo + hi − d (k − 1)) / s⌋ + 1``: outputs of ``conv_general_dilated``.

    ``i`` input samples, ``k`` taps, stride ``s``, padding ``lo`` / ``hi`` (negative crops), kernel
    dilation ``d``, input dilation ``l``.  May be ``≤ 0`` (no output fits).
    """
    i = as_positive_int(i, "input size")
    ke = effective_kernel_size(k, d)
    s = as_positive_int(s, "stride")
    l = as_positive_int(l, "lhs_dilation")
    span = l * (i - 1) + 1 + as_int(lo, "padding (low)") + as_int(hi, "padding (high)")
    return (span - ke) // s + 1


def conv_output_size(i: Any, k: Any, s: Any = 1, p: Any = 0, d: Any = 1) -> int:
    """PyTorch ``Conv*d``: ``⌊(i + 2p − d(k − 1) − 1) / s⌋ + 1`` (Dumoulin & Visin, relationships 6, 15)."""
    p = as_int(p, "padding")
    return general_output_size(i, k, s, p, p, d)


def conv_transpose_output_size(i: Any, k: Any, s: Any = 1, p: Any = 0, a: Any = 0, d: Any = 1) -> int:
    """PyTorch ``ConvTranspose*d``: ``(i − 1) s − 2p + d(k − 1) + a + 1`` (relationship 14, ``a`` = output_padding)."""
    return conv_transpose_output_size_pairs(i, k, s, (p, p), a, d)


def conv_transpose_output_size_pairs(i: Any, k: Any, s: Any, pads: tuple, a: Any = 0, d: Any = 1) -> int:
    """Transposed convolution cropping ``pads = (lo, hi)`` from the full output, plus ``a`` on the high side.

    This is :func:`general_output_size` with ``l = s``, stride 1 and padding
    :func:`transposed_padding` ``(lo) , (hi) + a``.
    """
    ke = effective_kernel_size(k, d)
    lo, hi = transposed_padding(pads[0], ke), transposed_padding(pads[1], ke) + as_int(a, "output_padding")
    return general_output_size(i, k, 1, lo, hi, d, s)


def transposed_padding(p: Any, ke: Any) -> int:
    """``ke − 1 − p``: cropping ``p`` from a full transposed output = padding the dilated input by this.

    (An involution: it also turns the padding of ``conv_general_dilated(lhs_dilation=s)`` into the
    crop of the equivalent scatter-style transposed convolution.)
    """
    return as_positive_int(ke, "effective kernel size") - 1 - as_int(p, "padding")


def transpose_ambiguity(i: Any, k: Any, s: Any = 1, p: Any = 0, d: Any = 1) -> int:
    """``a = (i + 2p − d(k − 1) − 1) mod s``: the output_padding that makes the transposed layer return to ``i``.

    A stride-``s`` convolution maps ``s`` consecutive input sizes to the same output size; ``a`` says which
    one ``i`` was (Dumoulin & Visin, relationship 14, ``a = (i + 2p − k) mod s`` for ``d = 1``).
    """
    i = as_positive_int(i, "input size")
    ke = effective_kernel_size(k, d)
    return (i + 2 * as_int(p, "padding") - ke) % as_positive_int(s, "stride")


def conv_input_sizes(o: Any, k: Any, s: Any = 1, p: Any = 0, d: Any = 1) -> range:
    """All input sizes ``i ≥ 1`` that a PyTorch convolution maps to ``o`` outputs (``s`` of them, or fewer near 1)."""
    o = as_positive_int(o, "output size")
    ke = effective_kernel_size(k, d)
    s = as_positive_int(s, "stride")
    first = s * (o - 1) + ke - 2 * as_int(p, "padding")
    return range(max(first, 1), max(first + s, 1))


def same_padding(i: Any, k: Any, s: Any = 1, d: Any = 1, lower: bool = False) -> tuple[int, int, int]:
    """TensorFlow / JAX ``"SAME"``: ``(o, lo, hi)`` with ``o = ⌈i/s⌉`` and the total padding split evenly.

    Total ``max((o − 1) s + d(k − 1) + 1 − i, 0)``; ``lo = total // 2`` (the odd sample goes to the high side),
    or ``hi = total // 2`` for JAX's ``"SAME_LOWER"``.
    """
    i = as_positive_int(i, "input size")
    s = as_positive_int(s, "stride")
    ke = effective_kernel_size(k, d)
    o = -(-i // s)
    total = max((o - 1) * s + ke - i, 0)
    small, big = total // 2, total - total // 2
    return (o, big, small) if lower else (o, small, big)


def valid_output_size(i: Any, k: Any, s: Any = 1, d: Any = 1) -> int:
    """TensorFlow / JAX ``"VALID"``: ``⌈(i − d(k − 1)) / s⌉`` (no padding); may be ``≤ 0``."""
    return general_output_size(i, k, s, 0, 0, d)


def tf_conv_transpose_padding(o: Any, k: Any, s: Any = 1, padding: str = "SAME", d: Any = 1) -> tuple[int, int, int]:
    """``tf.nn.conv*_transpose`` with ``output_shape`` ``o``: ``(i, lo, hi)`` of the forward convolution.

    The transposed layer is the gradient of the convolution from ``o`` samples: it accepts only the input
    size ``i`` that convolution produces, and crops ``lo`` / ``hi`` from the full transposed output
    (``lo + hi`` may exceed the padding when ``o`` is not the largest size mapping to ``i``).
    """
    o = as_positive_int(o, "output_shape")
    mode = _mode(padding)
    if mode == "SAME":
        i, lo, hi = same_padding(o, k, s, d)
    else:
        i, lo, hi = valid_output_size(o, k, s, d), 0, 0
    return i, lo, hi


def keras_conv_transpose_output_size(i: Any, k: Any, s: Any = 1, padding: str = "SAME", d: Any = 1,
                                     output_padding: Any = None) -> int:
    """Keras ``Conv*DTranspose`` (``deconv_output_length``): the output size when none is given.

    ``"VALID"``: ``i s + max(d(k − 1) + 1 − s, 0)``; ``"SAME"``: ``i s``; with ``output_padding`` ``a``:
    ``(i − 1) s + d(k − 1) + 1 − 2 pad + a`` where ``pad = (d(k − 1) + 1) // 2`` for SAME and 0 for VALID.
    """
    i = as_positive_int(i, "input size")
    s = as_positive_int(s, "stride")
    ke = effective_kernel_size(k, d)
    mode = _mode(padding)
    if output_padding is None:
        return i * s if mode == "SAME" else i * s + max(ke - s, 0)
    pad = ke // 2 if mode == "SAME" else 0
    return (i - 1) * s + ke - 2 * pad + as_int(output_padding, "output_padding")


def jax_conv_transpose_padding(ke: Any, s: Any = 1, padding: str = "SAME") -> tuple[int, int]:
    """The ``(lo, hi)`` padding of the dilated input that ``jax.lax.conv_transpose`` uses for a string padding.

    ``ke`` is the effective (dilated) kernel size.  ``"SAME"``: ``pad_len = ke + s − 2``,
    ``lo = ke − 1`` if ``s > ke − 1`` else ``⌈pad_len / 2⌉``; ``"VALID"``: ``pad_len = ke + s − 2 + max(ke − s, 0)``,
    ``lo = ke − 1``; ``hi = pad_len − lo``.  The output sizes are then ``i s`` and ``i s + max(ke − s, 0)``,
    as Keras's.
    """
    ke = as_positive_int(ke, "effective kernel size")
    s = as_positive_int(s, "stride")
    mode = _mode(padding)
    if mode == "SAME":
        pad_len = ke + s - 2
        lo = ke - 1 if s > ke - 1 else -(-pad_len // 2)
    else:
        pad_len = ke + s - 2 + max(ke - s, 0)
        lo = ke - 1
    return lo, pad_len - lo


def _mode(padding: Any) -> str:
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise SymdeconvError(f"padding must be 'SAME' or 'VALID' here, got {padding!r}")
    return padding.upper()
