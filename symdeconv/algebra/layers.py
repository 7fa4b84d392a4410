"""Deep-learning convolution layers (PyTorch, TensorFlow, JAX) as exact compositions of operators.

Every layer here — plain or transposed, any number of spatial dimensions, with channels and groups —
is, per spatial dimension, the general dilated convolution of ``jax.lax.conv_general_dilated``
(see :mod:`symdeconv.algebra.shapes`)::

    y[c', n] = Σ_{c ∈ group(c'), j} w̃[c', c, j] · (↑l x)[c, s n + d j − lo],     0 ≤ n < o,

with a cross-correlation kernel ``w̃``, window stride ``s``, kernel dilation ``d``, input dilation ``l``
and low padding ``lo``.  As an operator (:attr:`Layer.operator`) this is ::

    ↓s  ∘  conv(dilated, flipped w̃, origin = d(k − 1) − lo)  ∘  ↑l

(the factors ↓1 / ↑1 are left out), acting on the *unpadded* input at positions ``0..i−1``.  So

* a convolution (``Conv``, every framework) is ``↓s ∘ xcorr``: ``l = 1``, ``lo`` = its low padding;
* a transposed convolution (``ConvTranspose``) is ``conv(w) ∘ ↑s``: ``l = s``, window stride 1, the
  framework kernel used as a true convolution (scatter-add: no flip relative to the stored weight), and
  ``lo = d(k − 1) − p`` — cropping ``p`` samples off the full output is the origin of that convolution.

The low padding / crop lives in the operator; the high side (padding, cropping, ``output_padding``,
``output_shape``) only decides how many outputs there are: the layer's output samples are operator
outputs ``0..o−1`` per dimension (:meth:`Layer.window`).  With padding in the operator, transposition is
exact on infinite sequences: ``Conv(k, stride=s, padding=p).operator.T`` *is*
``ConvTranspose(k, stride=s, padding=p).operator`` (same weight array, same symbols), and on finite signals
``Conv.matrix(i).T == ConvTranspose.matrix(o)`` when the output_padding is :func:`output_padding_for`
(``a = (i + 2p − d(k−1) − 1) mod s``).

Framework conventions (``convention=``):

=========  ===============================  =============================  =================================
           ``torch`` (default)              ``tf``                         ``jax``
=========  ===============================  =============================  =================================
Conv       ``torch.nn.Conv{N}d``: weight    ``tf.nn.conv{N}d``: filters    ``lax.conv_general_dilated``:
           ``(C_out, C_in/g, *k)``; int /   ``(*k, C_in/g, C_out)``;       rhs per ``dimension_numbers``
           symmetric ``padding``, pairs,    ``"SAME"``/``"VALID"``/pairs   (default ``OIHW``); pairs,
           ``"same"``/``"valid"``                                          ``"SAME"``/``"SAME_LOWER"``/
                                                                           ``"VALID"``, ``lhs_dilation``
ConvT      ``ConvTranspose{N}d``: weight    ``tf.nn.conv{N}d_transpose``:  ``lax.conv_transpose``: rhs
           ``(C_in, C_out/g, *k)``; crop    filters ``(*k, C_out, C_in)``; ``HWIO`` (default), used as a
           ``padding`` each side (or        ``output_shape`` (default:     forward kernel, or flipped and
           pairs), ``output_padding`` on    Keras's ``i·s`` / ``i·s +      I/O-swapped when
           the high side                    max(k−s, 0)``)                 ``transpose_kernel=True``
=========  ===============================  =============================  =================================

TensorFlow and JAX default to channels-last data (``data_layout``); matrices are always built on the
channel-major flattening ``(C, *spatial)``.  References: PyTorch 2.x ``Conv*d`` / ``ConvTranspose*d``
documentation; TensorFlow ``tf.nn.conv2d`` / ``conv2d_transpose`` and Keras ``deconv_output_length``;
``jax.lax.conv_general_dilated``, ``padtype_to_pads`` and ``conv_transpose`` source; Dumoulin & Visin,
*A guide to convolution arithmetic for deep learning*, arXiv:1603.07285.
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..errors import SymdeconvError, context
from . import shapes
from ._validate import as_coeff, as_int, as_positive_int
from .operators import Box, Conv as _ConvOp, Operator, down, up

__all__ = ["Layer", "Conv", "ConvTranspose", "output_padding_for"]

CONVENTIONS = ("torch", "tf", "jax")
_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
_JAX_SPATIAL = {1: "H", 2: "HW", 3: "HWD"}
_EXTRA_LETTERS = "ABEFGJKLMPQRSTUVXYZ"


def _spatial_letters(ndim: int, table: dict[int, str]) -> str:
    return table.get(ndim, _EXTRA_LETTERS[:ndim])


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer, sp.Integer)) and not isinstance(v, bool)


def _is_seq(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, (str, bytes))


def _fmt(t: tuple) -> str:
    """A tuple, shown as its single value when all entries agree (like PyTorch's int arguments)."""
    if len(set(t)) == 1 and not isinstance(t[0], tuple):
        return str(t[0])
    return str(tuple(t))



# set while ``Layer.bind`` builds its internal same-convention layer with the explicit pairs that a
# size-dependent "SAME" resolves to (the framework itself never sees those pairs)
_BINDING = threading.local()

class Layer:
    """Common machinery of :class:`Conv` and :class:`ConvTranspose` (see the module docstring).

    Attributes
    ----------
    ndim, in_channels, out_channels, groups, convention, transposed
    kernel_size, stride, dilation : tuples, one entry per spatial dimension (the framework's values).
    padding : the padding as given, normalised: a string, a tuple of ints (symmetric) or of ``(lo, hi)`` pairs;
        the default is PyTorch's 0, or ``"VALID"`` (Keras's default) for the TF and JAX conventions.
    weight_shape, weight_layout : the weight array's shape and axis letters in the framework's layout.
    data_layout : ``"channels_first"`` (N, C, *spatial) or ``"channels_last"`` (N, *spatial, C).
    """

    transposed: bool = False
    _kind = "Conv"

    # --- construction -----------------------------------------------------------------------------
    def _setup(self, kernel_size, stride, padding, dilation, groups, in_channels, out_channels, *,
               convention, ndim, padding_mode, data_format, dimension_numbers, lhs_dilation=1,
               output_padding=0, output_shape=None, transpose_kernel=False) -> None:
        if not isinstance(convention, str) or convention not in CONVENTIONS:
            raise SymdeconvError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        self.convention = convention
        if padding_mode != "zeros":
            raise SymdeconvError(
                f"padding_mode must be 'zeros', got {padding_mode!r}: reflect / replicate / circular padding "
                "depend on the signal's ends and are not operators on infinite sequences "
                "(and PyTorch's ConvTranspose supports only padding_mode='zeros')"
            )
        self.ndim = self._infer_ndim(ndim, kernel_size, stride, padding, dilation, lhs_dilation, output_padding,
                                     output_shape)
        n = self.ndim
        self.kernel_size = self._tuple(kernel_size, "kernel_size", positive=True)
        self.stride = self._tuple(stride, "stride", positive=True)
        self.dilation = self._tuple(dilation, "dilation", positive=True)
        self.groups = as_positive_int(groups, "groups")
        self.in_channels = as_positive_int(in_channels, "in_channels")
        self.out_channels = as_positive_int(out_channels, "out_channels")
        for name, c in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if c % self.groups:
                raise SymdeconvError(
                    f"groups={self.groups} does not divide {name}={c}: {name} must be divisible by groups"
                )
        self._ke = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

        # convention-specific arguments
        self.lhs_dilation = self._tuple(lhs_dilation, "lhs_dilation", positive=True)
        if any(v != 1 for v in self.lhs_dilation) and (convention != "jax" or self.transposed):
            raise SymdeconvError(
                "lhs_dilation is jax.lax.conv_general_dilated's argument: use it with sd.Conv(convention='jax') "
                "(a PyTorch / TensorFlow input dilation is a transposed convolution: sd.ConvTranspose)"
            )
        # with convention='tf', output_padding is Keras's Conv*DTranspose argument, whose size rule differs
        # between output_padding=None and output_padding=0: remember whether it was given
        self.keras_output_padding = output_padding is not None and convention == "tf" and self.transposed
        self.output_padding = self._tuple(0 if output_padding is None else output_padding, "output_padding")
        if self.keras_output_padding:
            if _is_seq(padding) and not isinstance(padding, str):
                raise SymdeconvError(
                    "output_padding (Keras's Conv*DTranspose) goes with padding 'SAME' or 'VALID': with explicit "
                    "padding pairs (tf.nn.conv2d_transpose) the output size is output_shape="
                )
            if output_shape is not None:
                raise SymdeconvError(
                    "output_padding (Keras's Conv*DTranspose) and output_shape (tf.nn.conv*_transpose) both fix "
                    "the output size: give one"
                )
            for i, (a, s) in enumerate(zip(self.output_padding, self._tuple(stride, "stride", positive=True))):
                if not 0 <= a < s:
                    where = "output_padding" if self.ndim == 1 else f"output_padding[{i}]"
                    raise SymdeconvError(
                        f"{where}={a}: Keras requires 0 <= output_padding < strides (stride {s}; Keras's rule)"
                    )
        elif any(self.output_padding) and (convention != "torch" or not self.transposed):
            raise SymdeconvError(
                "output_padding is PyTorch's (and, with convention='tf', Keras's) ConvTranspose argument"
                + ("; with convention='jax' give explicit (lo, hi) padding" if self.transposed
                   else "; a convolution has none")
            )
        self.output_shape_arg = None
        if output_shape is not None:
            if convention != "tf" or not self.transposed:
                raise SymdeconvError(
                    "output_shape is tf.nn.conv_transpose's argument: use it with sd.ConvTranspose(convention='tf')"
                    " (PyTorch: output_padding; JAX: padding pairs)"
                )
            self.output_shape_arg = self._tuple(output_shape, "output_shape", positive=True)
        if transpose_kernel and (convention != "jax" or not self.transposed):
            raise SymdeconvError("transpose_kernel is jax.lax.conv_transpose's argument (convention='jax')")
        self.transpose_kernel = bool(transpose_kernel)
        self.padding = self._parse_padding(padding)
        self._layout(data_format, dimension_numbers)
        self._check_convention_rules()

    def _infer_ndim(self, ndim, *values) -> int:
        if ndim is not None:
            return as_positive_int(ndim, "ndim")
        names = ("kernel_size", "stride", "padding", "dilation", "lhs_dilation", "output_padding", "output_shape")
        for name, v in zip(names, values):
            if _is_seq(v):
                if len(v) == 0:
                    raise SymdeconvError(f"{name} must have one entry per spatial dimension, got an empty sequence")
                return len(v)
        return 1

    def _tuple(self, value: Any, name: str, positive: bool = False) -> tuple[int, ...]:
        if _is_seq(value):
            if len(value) != self.ndim:
                first = "kernel_size" if name != "kernel_size" else "the other arguments"
                raise SymdeconvError(
                    f"{name} has {len(value)} entries but {first} gives {self.ndim} spatial dimension(s): "
                    "kernel_size, stride, padding, dilation, ... must all have one entry per spatial dimension"
                )
            out = tuple(as_int(v, f"{name}[{i}]") for i, v in enumerate(value))
        else:
            out = (as_int(value, name),) * self.ndim
        for i, v in enumerate(out):
            where = name if self.ndim == 1 else f"{name}[{i}]"
            if positive and v <= 0:
                raise SymdeconvError(f"{where} must be a positive integer (>= 1), got {v}")
            if not positive and v < 0:
                raise SymdeconvError(f"{where} must be >= 0, got {v}")
        return out

    def _parse_padding(self, padding: Any):
        conv, n = self.convention, self.ndim
        if padding is None:  # the framework's default: PyTorch 0, Keras "valid"
            padding = 0 if conv == "torch" else "VALID"
        if isinstance(padding, str):
            if conv == "torch":
                if padding in ("same", "valid") and not self.transposed:
                    if padding == "same" and any(s != 1 for s in self.stride):
                        raise SymdeconvError(
                            "padding='same' is not supported for strided convolutions (PyTorch's rule); "
                            "use convention='tf' for TensorFlow's SAME with strides"
                        )
                    return padding
                hint = ("PyTorch's ConvTranspose takes integer padding (a crop)" if self.transposed else
                        "PyTorch accepts only 'same' and 'valid' (lower case)")
                raise SymdeconvError(
                    f"padding={padding!r} is a string without its convention: {hint}; TensorFlow's / JAX's "
                    "'SAME' / 'VALID' need convention='tf' or convention='jax'"
                )
            if conv == "tf":  # TensorFlow's padding attribute is case-sensitive
                if padding not in ("SAME", "VALID"):
                    raise SymdeconvError(
                        f"padding={padding!r}: TensorFlow accepts 'SAME' or 'VALID' (upper case: tf.nn.conv* "
                        f"reject {padding!r}) or explicit (lo, hi) pairs"
                    )
                return padding
            if self.transposed:
                # jax.lax.conv_transpose: 'SAME' / 'VALID' are its transposed-convolution rules; any other
                # padding string goes to conv_general_dilated as the *forward* convolution's padding
                if padding in ("SAME", "VALID") or padding.upper() in ("SAME", "SAME_LOWER", "VALID"):
                    return padding
                raise SymdeconvError(
                    f"padding={padding!r}: jax.lax.conv_transpose accepts 'SAME' / 'VALID' (transposed rules), "
                    "'same' / 'valid' / 'SAME_LOWER' (the forward convolution's, stride 1 only) or (lo, hi) pairs"
                )
            mode = padding.upper()
            allowed = ("SAME", "SAME_LOWER", "VALID")
            if mode not in allowed:
                raise SymdeconvError(f"padding={padding!r}: convention={conv!r} accepts {allowed} or (lo, hi) pairs")
            return mode
        if _is_int(padding) or (_is_seq(padding) and all(_is_int(v) for v in padding)):
            if conv != "torch":
                raise SymdeconvError(
                    f"padding={padding!r}: an integer (symmetric) padding is PyTorch's convention; "
                    f"convention={conv!r} takes 'SAME' / 'VALID' or explicit ((lo, hi), ...) pairs"
                )
            return self._tuple(padding, "padding")
        if _is_seq(padding) and all(_is_seq(v) and len(v) == 2 for v in padding):
            if len(padding) != n:
                raise SymdeconvError(
                    f"padding has {len(padding)} (lo, hi) pairs but the layer has {n} spatial dimension(s)"
                )
            pairs = tuple((as_int(lo, f"padding[{i}][0]"), as_int(hi, f"padding[{i}][1]"))
                          for i, (lo, hi) in enumerate(padding))
            if conv != "jax":
                for i, (lo, hi) in enumerate(pairs):
                    if lo < 0 or hi < 0:
                        raise SymdeconvError(
                            f"padding[{i}]={(lo, hi)}: negative padding is not supported with convention={conv!r} "
                            "(only JAX's conv_general_dilated crops with negative padding)"
                        )
            return pairs
        raise SymdeconvError(
            f"padding must be an int, a tuple of ints, ((lo, hi), ...) pairs or a padding string, got {padding!r}"
        )

    def _layout(self, data_format: Any, dimension_numbers: Any) -> None:
        """Weight layout (axes as groups of canonical components) and data layout."""
        n, conv = self.ndim, self.convention
        K = [f"K{d}" for d in range(n)]
        if conv != "jax" and dimension_numbers is not None:
            raise SymdeconvError("dimension_numbers is JAX's argument (convention='jax')")
        if conv != "tf" and data_format is not None:
            raise SymdeconvError(
                "data_format is TensorFlow's argument (convention='tf'); PyTorch data is channels-first, "
                "JAX's layout is given by dimension_numbers"
            )
        if conv == "torch":
            letters = _spatial_letters(n, _SPATIAL)
            if self.transposed:
                axes, names, self._flip = [("G", "CI"), ("CO",)], "IO", True
            else:
                axes, names, self._flip = [("G", "CO"), ("CI",)], "OI", False
            self._axes = axes + [(k,) for k in K]
            self.weight_layout = names + letters
            self.data_layout = "channels_first"
        elif conv == "tf":
            letters = _spatial_letters(n, _SPATIAL)
            if self.transposed:
                axes, names, self._flip = [("G", "CO"), ("CI",)], "OI", True
            else:
                axes, names, self._flip = [("CI",), ("G", "CO")], "IO", False
            self._axes = [(k,) for k in K] + axes
            self.weight_layout = letters + names
            fmt = "channels_last" if data_format is None else data_format
            aliases = {"channels_last": "channels_last", "channels_first": "channels_first"}
            for d in (1, 2, 3):
                aliases["N" + _SPATIAL[d] + "C"] = "channels_last"
                aliases["NC" + _SPATIAL[d]] = "channels_first"
            if fmt not in aliases:
                raise SymdeconvError(f"data_format must be 'channels_last' (NHWC) or 'channels_first' (NCHW), got {fmt!r}")
            self.data_layout = aliases[fmt]
        else:
            self._jax_layout(dimension_numbers, K)

    def _jax_layout(self, dimension_numbers: Any, K: list[str]) -> None:
        n = self.ndim
        letters = _spatial_letters(n, _JAX_SPATIAL)
        if dimension_numbers is None:
            if self.transposed:
                if n > 3:
                    raise SymdeconvError(
                        "jax.lax.conv_transpose has no default dimension_numbers beyond 3 spatial dimensions: "
                        "pass dimension_numbers=(lhs, rhs, out) strings"
                    )
                dimension_numbers = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
            else:
                dimension_numbers = ("NC" + letters, "OI" + letters, "NC" + letters)
        if not (_is_seq(dimension_numbers) and len(dimension_numbers) == 3
                and all(isinstance(s, str) for s in dimension_numbers)):
            raise SymdeconvError(
                f"dimension_numbers must be three strings (lhs, rhs, out) such as ('NCHW', 'OIHW', 'NCHW'), "
                f"got {dimension_numbers!r}"
            )
        lhs, rhs, out = dimension_numbers
        spatial = [c for c in lhs if c not in "NC"]
        ok = (len(lhs) == n + 2 and sorted(lhs) == sorted("NC" + "".join(spatial)) and len(set(lhs)) == n + 2
              and sorted(rhs) == sorted("OI" + "".join(spatial)) and len(rhs) == n + 2 and out == lhs)
        if not ok:
            raise SymdeconvError(
                f"dimension_numbers={dimension_numbers!r}: lhs must be 'N', 'C' and {n} spatial letters, rhs 'O', "
                "'I' and the same spatial letters, and out equal to lhs (symdeconv keeps one data layout)"
            )
        if lhs[:2] == "NC":
            self.data_layout = "channels_first"
        elif lhs[0] == "N" and lhs[-1] == "C":
            self.data_layout = "channels_last"
        else:
            raise SymdeconvError(f"dimension_numbers lhs={lhs!r} must be channels-first ('NC...') or channels-last ('N...C')")
        self.dimension_numbers = (lhs, rhs, out)
        if self.transposed and self.transpose_kernel:
            roles, self._flip = {"O": ("CI",), "I": ("G", "CO")}, True
        else:
            roles, self._flip = {"O": ("G", "CO"), "I": ("CI",)}, False
        self._axes = [roles[c] if c in roles else (K[spatial.index(c)],) for c in rhs]
        self.weight_layout = rhs

    def _check_convention_rules(self) -> None:
        conv = self.convention
        if conv == "torch" and self.transposed:
            for i, (a, s, d) in enumerate(zip(self.output_padding, self.stride, self.dilation)):
                if a >= s and a >= d:
                    where = "output_padding" if self.ndim == 1 else f"output_padding[{i}]"
                    raise SymdeconvError(
                        f"{where}={a}: output_padding must be smaller than either stride or dilation "
                        f"(stride={s}, dilation={d}; PyTorch's rule)"
                    )
        if conv == "tf":
            n = self.ndim
            fn = f"tf.nn.conv{n}d{'_transpose' if self.transposed else ''}" if n <= 3 else "tf.nn.convolution"
            if n > 3 and any(s > 1 for s in self.stride) and any(d > 1 for d in self.dilation):
                raise SymdeconvError(
                    f"dilation={_fmt(self.dilation)} with stride={_fmt(self.stride)}: {fn} does not combine "
                    "dilations > 1 with strides > 1 (TensorFlow's rule; tf.nn.conv1d/2d/3d do)"
                )
            if self.transposed and self.groups != 1:
                raise SymdeconvError("groups must be 1 with convention='tf': tf.nn.conv_transpose has no groups")
            if (self.transposed and _is_seq(self.padding) and any(d > 1 for d in self.dilation)
                    and not getattr(_BINDING, "active", False)):
                raise SymdeconvError(
                    f"dilation={_fmt(self.dilation)} with explicit padding: tf.nn.conv2d_transpose refuses it "
                    "('Current CPU implementations do not yet support dilation rates larger than 1')"
                )
            if _is_seq(self.padding) and n > 2 and not getattr(_BINDING, "active", False):
                raise SymdeconvError(
                    f"padding={self.padding!r}: {fn} takes padding 'SAME' or 'VALID' only (TensorFlow's rule: "
                    "explicit padding lists are accepted by tf.nn.conv2d and tf.nn.conv2d_transpose alone, "
                    "which also serve 1-D layers on a unit axis)"
                )
        if conv == "jax" and self.transposed and self.groups != 1:
            raise SymdeconvError(
                "groups must be 1 with sd.ConvTranspose(convention='jax'): jax.lax.conv_transpose has no "
                "feature_group_count (use sd.Conv(convention='jax', lhs_dilation=stride, groups=...))"
            )
        if conv == "jax" and isinstance(self.padding, str) and any(v > 1 for v in self._l):
            forward = not self.transposed or self.padding not in ("SAME", "VALID")
            if forward:
                call = "lax.conv_transpose with strides > 1" if self.transposed else "lhs_dilation > 1"
                raise SymdeconvError(
                    f"padding={self.padding!r} with {call}: JAX raises 'String padding is not implemented for "
                    "transposed convolution using this op' (its rule): give explicit (lo, hi) pairs"
                    + (", or 'SAME' / 'VALID' (upper case: the transposed rules)" if self.transposed else "")
                )

    # --- the general form -------------------------------------------------------------------------
    @property
    def _l(self) -> tuple[int, ...]:
        """Input dilation of the general form (``stride`` for a transposed layer)."""
        return self.stride if self.transposed else self.lhs_dilation

    @property
    def _s(self) -> tuple[int, ...]:
        """Window stride of the general form (1 for a transposed layer)."""
        return (1,) * self.ndim if self.transposed else self.stride

    def _static_lo(self) -> tuple[int, ...] | None:
        """The low padding of the general form, or ``None`` when it depends on the input size."""
        pads = self._pads(None)
        return None if pads is None else tuple(lo for lo, _ in pads)

    def _pads(self, input_shape: tuple[int, ...] | None):
        """``(lo, hi)`` per dimension of the general form (``hi`` may depend on the input size).

        With ``input_shape=None``, returns the pairs when both are input-independent, ``(lo, None)`` pairs
        when only ``lo`` is, and ``None`` when ``lo`` depends on the input.
        """
        raise NotImplementedError

    def _check_input(self, input_shape: Any) -> tuple[int, ...]:
        if _is_int(input_shape):
            input_shape = (input_shape,)
        if not _is_seq(input_shape) or len(input_shape) != self.ndim:
            raise SymdeconvError(
                f"input_shape must have one size per spatial dimension ({self.ndim}), got {input_shape!r} "
                "(spatial sizes only: no batch or channel axes)"
            )
        out = tuple(as_int(v, f"input_shape[{i}]") for i, v in enumerate(input_shape))
        for i, v in enumerate(out):
            if v <= 0:
                raise SymdeconvError(f"input_shape[{i}] must be a positive integer, got {v}")
        return out

    def output_shape(self, input_shape: Any) -> tuple[int, ...]:
        """Spatial output sizes for spatial input sizes ``input_shape``, by the convention's own rule.

        Raises :class:`SymdeconvError` when an output size would be zero or negative.
        """
        with context(f"sd.{self._kind}.output_shape"):
            shape = self._check_input(input_shape)
            pads = self._pads(shape)
            out = []
            for d, ((lo, hi), i) in enumerate(zip(pads, shape)):
                o = shapes.general_output_size(i, self.kernel_size[d], self._s[d], lo, hi, self.dilation[d],
                                               self._l[d])
                if o <= 0:
                    raise SymdeconvError(self._too_small(d, i, o))
                out.append(o)
            return tuple(out)

    def _too_small(self, d: int, i: int, o: int) -> str:
        where = "" if self.ndim == 1 else f" along spatial dimension {d}"
        return (
            f"negative or zero output size {o}{where} for input size {i}: kernel_size={self.kernel_size[d]} with "
            f"dilation={self.dilation[d]} spans {self._ke[d]} samples, more than the padded input provides "
            f"(padding={self.padding!r}, stride={self.stride[d]})"
        )

    def window(self, input_shape: Any) -> Box:
        """The operator outputs that are the layer's outputs: ``((0, o_1), …)`` (the padding is in the operator)."""
        return tuple((0, o) for o in self.output_shape(input_shape))

    # --- weights ----------------------------------------------------------------------------------
    def _component_sizes(self) -> dict[str, int]:
        sizes = {"G": self.groups, "CO": self.out_channels // self.groups, "CI": self.in_channels // self.groups}
        sizes.update({f"K{d}": k for d, k in enumerate(self.kernel_size)})
        return sizes

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """The weight array's shape in the framework's layout (see :attr:`weight_layout`)."""
        sizes = self._component_sizes()
        return tuple(math.prod(sizes[c] for c in axis) for axis in self._axes)

    def weight_symbols(self, name: str = "w") -> np.ndarray:
        """An object array of shape :attr:`weight_shape` of distinct symbols ``w_{i0}_{i1}_…`` (array indices)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise SymdeconvError(f"name must be an identifier such as 'w', got {name!r}")
        out = np.empty(self.weight_shape, dtype=object)
        for idx in np.ndindex(*self.weight_shape):
            out[idx] = sp.Symbol(name + "_" + "_".join(str(i) for i in idx))
        return out

    def _taps(self) -> list[tuple[tuple[int, ...], int, int, tuple[int, ...]]]:
        """``(weight index, c_out, c_in, j)``: weight entry → tap ``j`` of the cross-correlation kernel w̃."""
        cached = self.__dict__.get("_taps_cache")
        if cached is not None:
            return cached
        sizes = self._component_sizes()
        cout_g, cin_g = sizes["CO"], sizes["CI"]
        out = []
        for idx in np.ndindex(*self.weight_shape):
            comp: dict[str, int] = {}
            for axis, v in zip(self._axes, idx):
                for c in reversed(axis):
                    comp[c] = v % sizes[c]
                    v //= sizes[c]
            g = comp.get("G", 0)
            j = tuple(comp[f"K{d}"] for d in range(self.ndim))
            if self._flip:
                j = tuple(k - 1 - jj for k, jj in zip(self.kernel_size, j))
            out.append((tuple(int(i) for i in idx), g * cout_g + comp["CO"], g * cin_g + comp["CI"], j))
        self.__dict__["_taps_cache"] = out
        return out

    def _weight_values(self, weight: Any) -> np.ndarray:
        if weight is None:
            return self.weight_symbols()
        arr = np.asarray(weight, dtype=object)
        if arr.shape != self.weight_shape:
            raise SymdeconvError(
                f"weight must have shape {self.weight_shape} (layout {self.weight_layout}, "
                f"convention={self.convention!r}), got {arr.shape}"
            )
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            v = arr[idx]
            if hasattr(v, "item") and not isinstance(v, sp.Basic):
                v = v.item()
            out[idx] = as_coeff(v, f"weight{list(idx)}")
        return out

    def _build(self, values: np.ndarray, lo: tuple[int, ...]) -> Operator:
        """``↓s ∘ conv(dilated flipped w̃, origin = d(k−1) − lo) ∘ ↑l`` with the given weight values."""
        weights: dict = {}
        for idx, co, ci, j in self._taps():
            v = values[idx]
            if v != 0:
                weights[(co, ci, tuple(ke - 1 - d * jj for ke, d, jj in zip(self._ke, self.dilation, j)))] = v
        op: Operator = _ConvOp((self.out_channels, self.in_channels) + self._ke, weights,
                               tuple(ke - 1 - p for ke, p in zip(self._ke, lo)))
        if any(v != 1 for v in self._l):
            op = op @ up(self._l, self.in_channels)
        if any(v != 1 for v in self._s):
            op = down(self._s, self.out_channels) @ op
        return op

    @property
    def operator(self) -> Operator:
        """The layer as an operator with the symbolic weights of :meth:`weight_symbols` (see the module doc)."""
        cached = self.__dict__.get("_operator")
        if cached is None:
            with context(f"sd.{self._kind}.operator"):
                lo = self._static_lo()
                if lo is None:
                    raise SymdeconvError(
                        f"padding={self.padding!r} with stride={_fmt(self.stride)} pads by an amount that depends "
                        "on the input size mod the stride, so this layer is one operator per input size: "
                        "use layer.bind(input_shape).operator"
                    )
                cached = self.__dict__["_operator"] = self._build(self.weight_symbols(), lo)
        return cached

    def operator_with(self, weight: Any, input_shape: Any = None) -> Operator:
        """The layer's operator with these weight values (an array of :attr:`weight_shape`) instead of symbols.

        ``input_shape`` is needed only when the padding depends on the input size (see :meth:`bind`).
        """
        with context(f"sd.{self._kind}.operator_with"):
            layer = self if input_shape is None else self.bind(input_shape)
            lo = layer._static_lo()
            if lo is None:
                raise SymdeconvError("this layer's padding depends on the input size: pass input_shape=")
            return layer._build(layer._weight_values(weight), lo)

    def operator_for(self, input_shape: Any) -> Operator:
        """The operator for inputs of this size (equals :attr:`operator` whenever that exists)."""
        return self.bind(input_shape).operator

    def bind(self, input_shape: Any) -> "Layer":
        """The same layer with its padding resolved to explicit pairs for this input size (same convention).

        Only layers whose padding depends on the input size (TF/JAX ``"SAME"`` with strides) change.
        """
        with context(f"sd.{self._kind}.bind"):
            shape = self._check_input(input_shape)
            self.output_shape(shape)
            if self._static_lo() is not None:
                return self
            pads = self._pads(shape)
            # the bound layer is internal: its explicit pairs stand for SAME at this size
            return self._replace(padding=tuple((lo, hi) for lo, hi in pads), _bound=True)

    def matrix(self, input_shape: Any, weight: Any = None, bias: Any = None) -> sp.Matrix:
        """The layer's SymPy matrix from the flattened input ``(C_in, *spatial)`` to ``(C_out, *out_spatial)``.

        ``weight``: an array of :attr:`weight_shape` (numbers or SymPy expressions; floats become exact
        rationals); symbolic weights when omitted.  ``bias``: when given (an array of ``out_channels``
        values, or ``True`` for symbols ``b_0, b_1, …``) the layer is affine and the result is the
        augmented matrix ``[[M, b], [0, 1]]`` acting on ``(x, 1)``, where ``b`` is :meth:`bias_vector`.
        """
        with context(f"sd.{self._kind}.matrix"):
            shape = self._check_input(input_shape)
            window = self.window(shape)
            lo = tuple(p for p, _ in self._pads(shape))
            mat = self._build(self._weight_values(weight), lo).matrix(shape, window=window)
            if bias is None:
                return mat
            b = self._bias_vector(shape, bias)
            top = mat.row_join(b)
            return top.col_join(sp.zeros(1, mat.cols).row_join(sp.Matrix([[1]])))

    def bias_vector(self, input_shape: Any, bias: Any = True) -> sp.Matrix:
        """The output offset: ``bias[c']`` at every output position of channel ``c'`` (column vector)."""
        with context(f"sd.{self._kind}.bias_vector"):
            return self._bias_vector(self._check_input(input_shape), bias)

    def _bias_vector(self, shape: tuple[int, ...], bias: Any) -> sp.Matrix:
        if bias is True:
            values = [sp.Symbol(f"b_{c}") for c in range(self.out_channels)]
        else:
            arr = np.asarray(bias, dtype=object).reshape(-1) if not isinstance(bias, bool) else None
            if arr is None or arr.shape != (self.out_channels,):
                raise SymdeconvError(f"bias must be True or an array of out_channels={self.out_channels} values")
            values = [as_coeff(v.item() if hasattr(v, "item") and not isinstance(v, sp.Basic) else v, f"bias[{c}]")
                      for c, v in enumerate(arr)]
        per = math.prod(self.output_shape(shape))
        return sp.Matrix([values[c] for c in range(self.out_channels) for _ in range(per)])

    # --- relations between layers -----------------------------------------------------------------
    def _params(self) -> dict:
        """Constructor arguments that reproduce this layer."""
        out = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation,
                   groups=self.groups, in_channels=self.in_channels, out_channels=self.out_channels,
                   convention=self.convention, ndim=self.ndim)
        if self.convention == "tf":
            out["data_format"] = self.data_layout
        if self.convention == "jax":
            out["dimension_numbers"] = self.dimension_numbers
        return out

    def _replace(self, **changes: Any) -> "Layer":
        bound = bool(changes.pop("_bound", False)) or getattr(self, "_bound", False)
        params = self._params()
        params.update(changes)
        if not bound:
            return type(self)(**params)
        _BINDING.active = True  # (a bound layer and what is derived from it skip the framework's padding rule)
        try:
            layer = type(self)(**params)
        finally:
            _BINDING.active = False
        layer._bound = True
        return layer

    @property
    def T(self) -> "Layer":
        """The transposed layer (same weight array): ``Conv`` ↔ ``ConvTranspose`` (PyTorch convention)."""
        return self.transpose()

    def transpose(self, input_shape: Any = None) -> "Layer":
        raise NotImplementedError

    # --- display ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = [f"kernel_size={_fmt(self.kernel_size)}"]
        if any(s != 1 for s in self.stride):
            parts.append(f"stride={_fmt(self.stride)}")
        pad = self.padding
        if isinstance(pad, str):
            parts.append(f"padding={pad!r}")
        elif pad and isinstance(pad[0], tuple) or any(pad):
            parts.append(f"padding={_fmt(pad) if not isinstance(pad[0], tuple) else pad}")
        if any(self.output_padding):
            parts.append(f"output_padding={_fmt(self.output_padding)}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation={_fmt(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if (self.in_channels, self.out_channels) != (1, 1):
            parts.append(f"in_channels={self.in_channels}, out_channels={self.out_channels}")
        if self.ndim > 1 and len(set(self.kernel_size)) == 1:
            parts.append(f"ndim={self.ndim}")
        if self.convention != "torch":
            parts.append(f"convention={self.convention!r}")
        if any(v != 1 for v in self.lhs_dilation):
            parts.append(f"lhs_dilation={_fmt(self.lhs_dilation)}")
        if self.output_shape_arg is not None:
            parts.append(f"output_shape={self.output_shape_arg}")
        if self.transpose_kernel:
            parts.append("transpose_kernel=True")
        return f"{self._kind}({', '.join(parts)})"

    def framework_call(self, input_shape: Any = None) -> str:
        """The call in the framework's own API that computes this layer (for docs and conversions)."""
        n = self.ndim
        if self.convention == "torch":
            return self._torch_call()
        if self.convention == "tf":
            return self._tf_call(input_shape)
        return self._jax_call()

    def _torch_call(self) -> str:
        n = self.ndim
        name = f"torch.nn.{self._kind}{n}d" if n <= 3 else f"torch.nn.functional.{self._kind.lower()}  # {n}-D"
        pad = self.padding
        args = [str(self.in_channels), str(self.out_channels), f"kernel_size={_fmt(self.kernel_size)}"]
        if any(s != 1 for s in self.stride):
            args.append(f"stride={_fmt(self.stride)}")
        note = ""
        if isinstance(pad, str):
            args.append(f"padding={pad!r}")
        elif isinstance(pad[0], tuple):
            if all(lo == hi for lo, hi in pad):
                args.append(f"padding={_fmt(tuple(lo for lo, _ in pad))}")
            else:
                note = (f"  # asymmetric padding {pad}: not a torch argument "
                        + ("(F.pad the input first)" if not self.transposed else "(crop the output)"))
        elif any(pad):
            args.append(f"padding={_fmt(pad)}")
        if any(self.output_padding):
            args.append(f"output_padding={_fmt(self.output_padding)}")
        if any(d != 1 for d in self.dilation):
            args.append(f"dilation={_fmt(self.dilation)}")
        if self.groups != 1:
            args.append(f"groups={self.groups}")
        return f"{name}({', '.join(args)}){note}"

    def _tf_call(self, input_shape: Any) -> str:
        n = self.ndim
        base = {1: "conv1d", 2: "conv2d", 3: "conv3d"}.get(n, "convolution")
        fmt = ("N" + _SPATIAL.get(n, "...") + "C") if self.data_layout == "channels_last" else ("NC" + _SPATIAL.get(n, "..."))
        if isinstance(self.padding, str):
            pad = self.padding
        elif self.data_layout == "channels_first":  # TF's explicit padding lists follow data_format: N, C first
            pad = [[0, 0], [0, 0]] + [list(p) for p in self.padding]
        else:
            pad = [[0, 0]] + [list(p) for p in self.padding] + [[0, 0]]
        # tf.nn.conv1d names its stride argument `stride`; every other tf.nn.conv* `strides`; tf.nn.conv3d
        # takes strides and dilations as lists of 5 (1 for the batch and channel axes)
        key = "stride" if n == 1 and not self.transposed else "strides"
        if n == 3 and not self.transposed:
            full = (lambda v: [1, 1, *v]) if self.data_layout == "channels_first" else (lambda v: [1, *v, 1])
            stride, dilation = full(self.stride), full(self.dilation)
        else:
            stride, dilation = _fmt(self.stride), _fmt(self.dilation)
        if n == 1 and not isinstance(self.padding, str):
            return self._tf_unit_axis_call(input_shape)
        args = [f"{key}={stride}", f"padding={pad!r}", f"data_format={fmt!r}"]
        if any(d != 1 for d in self.dilation):
            args.append(f"dilations={dilation}")
        if self.transposed:
            if self.output_shape_arg is not None:
                o = self.output_shape_arg
            elif input_shape is not None:
                o = self.output_shape(input_shape)
            else:  # the size rule itself, in terms of the input's spatial sizes
                o = self._tf_output_size_rule()
            spatial = o if isinstance(o, str) else ", ".join(map(str, o))
            shape = (f"(N, {spatial}, {self.out_channels})" if self.data_layout == "channels_last"
                     else f"(N, {self.out_channels}, {spatial})")
            return f"tf.nn.{base}_transpose(x, filters, output_shape={shape}, {', '.join(args)})"
        return f"tf.nn.{base}(x, filters, {', '.join(args)})"

    def _tf_unit_axis_call(self, input_shape: Any) -> str:
        """A 1-D layer with explicit padding: ``tf.nn.conv1d`` / ``conv1d_transpose`` refuse padding lists, so
        the call is ``tf.nn.conv2d`` / ``conv2d_transpose`` on a unit axis — ``x[:, None]`` (``x[:, :, None]``
        channels first), ``filters[None]`` (a 1 × k kernel) — and the unit axis dropped from the result."""
        last = self.data_layout == "channels_last"
        (lo, hi), = self.padding
        pad = [[0, 0], [0, 0], [lo, hi], [0, 0]] if last else [[0, 0], [0, 0], [0, 0], [lo, hi]]
        args = [f"strides=(1, {self.stride[0]})", f"padding={pad!r}", f"data_format={'NHWC' if last else 'NCHW'!r}"]
        if self.dilation[0] != 1:
            args.append(f"dilations=(1, {self.dilation[0]})")
        x, drop = ("x[:, None]", "[:, 0]") if last else ("x[:, :, None]", "[:, :, 0]")
        if not self.transposed:
            return f"tf.nn.conv2d({x}, filters[None], {', '.join(args)}){drop}"
        if self.output_shape_arg is not None:
            o = str(self.output_shape_arg[0])
        elif input_shape is not None:
            o = str(self.output_shape(input_shape)[0])
        else:
            o = self._tf_output_size_rule()
        shape = f"(N, 1, {o}, {self.out_channels})" if last else f"(N, {self.out_channels}, 1, {o})"
        return f"tf.nn.conv2d_transpose({x}, filters[None], output_shape={shape}, {', '.join(args)}){drop}"

    def _tf_output_size_rule(self) -> str:
        """TF's output size per spatial dimension, as text in the input sizes (for every input size)."""
        names = _SPATIAL.get(self.ndim, "")
        names = list(names) if len(names) == self.ndim else [f"i{d}" for d in range(self.ndim)]
        parts = []
        for name, k, s, d, op in zip(names, self.kernel_size, self.stride, self.dilation, self.output_padding):
            k_eff = (k - 1) * d + 1
            if self.keras_output_padding and isinstance(self.padding, str):  # Keras: (i − 1)s + k_eff − 2 pad + a
                rest = k_eff - 2 * (k_eff // 2 if self.padding == "SAME" else 0) + op
                parts.append(f"{s}*({name} - 1) + {rest}" if s != 1 else f"{name} + {rest - 1}")
                continue
            if self.padding == "SAME":
                rule = f"{s}*{name}" if s != 1 else name
            elif self.padding == "VALID":  # Keras: s·i + max(k_eff − s, 0)
                if s == 1:
                    rule = f"{name} + {k_eff - 1}"
                elif k_eff >= s:
                    rule = f"{s}*({name} - 1) + {k_eff}"
                else:
                    rule = f"{s}*{name}"
            else:  # explicit pairs: the forward convolution maps s·(i − 1) + k_eff − lo − hi samples onto i
                lo, hi = self.padding[len(parts)]
                base, rest = (name, k_eff - lo - hi - 1) if s == 1 else (f"{s}*({name} - 1)", k_eff - lo - hi)
                rule = base if rest == 0 else f"{base} {'+' if rest > 0 else '-'} {abs(rest)}"
            parts.append(rule + (f" + {op}" if op else ""))
        return ", ".join(parts)

    def _jax_call(self) -> str:
        pad = self.padding if isinstance(self.padding, str) else list(self.padding)
        dn = self.dimension_numbers
        if self.transposed:
            args = [f"strides={self.stride}", f"padding={pad!r}"]
            if any(d != 1 for d in self.dilation):
                args.append(f"rhs_dilation={self.dilation}")
            args.append(f"dimension_numbers={dn}")
            if self.transpose_kernel:
                args.append("transpose_kernel=True")
            return f"jax.lax.conv_transpose(x, w, {', '.join(args)})"
        args = [f"window_strides={self.stride}", f"padding={pad!r}"]
        if any(v != 1 for v in self.lhs_dilation):
            args.append(f"lhs_dilation={self.lhs_dilation}")
        if any(d != 1 for d in self.dilation):
            args.append(f"rhs_dilation={self.dilation}")
        args.append(f"dimension_numbers={dn}")
        if self.groups != 1:
            args.append(f"feature_group_count={self.groups}")
        return f"jax.lax.conv_general_dilated(x, w, {', '.join(args)})"


# the arguments after kernel_size (keyword-only), in the order they once had positionally; and the order of
# torch.nn.Conv{N}d / ConvTranspose{N}d after (in_channels, out_channels, kernel_size)
_KEYWORDS = {
    "Conv": ("stride", "padding", "dilation", "groups", "in_channels", "out_channels"),
    "ConvTranspose": ("stride", "padding", "output_padding", "dilation", "groups", "in_channels", "out_channels"),
}
_TORCH_ORDER = {
    "Conv": ("stride", "padding", "dilation", "groups", "bias", "padding_mode"),
    "ConvTranspose": ("stride", "padding", "output_padding", "groups", "bias", "dilation", "padding_mode"),
}
_FOREIGN_KEYWORDS = {
    "bias": "the bias is not part of the layer: pass it to the compiled function, f(x, weight, bias), or to "
            "layer.matrix(input_shape, bias=...)",
    "device": "the device is sd.compile(layer, 'cpu' / 'cuda')'s target",
    "dtype": "the compiled function computes in the dtype of x",
    "filters": "Keras's argument: use sd.keras.Conv2D / Conv2DTranspose (or out_channels=)",
    "strides": "Keras's / TensorFlow's spelling: use stride= (or sd.keras.Conv2D / Conv2DTranspose)",
    "dilation_rate": "Keras's spelling: use dilation= (or sd.keras.Conv2D / Conv2DTranspose)",
    "kernel": "use kernel_size=",
}


def _check_call(kind: str, kernel_size: Any, positional: tuple, unknown: dict, ndim: Any) -> None:
    """Refuse extra positional arguments and unknown keywords with a message that says what to write."""
    if positional:
        raise SymdeconvError(_positional_message(kind, kernel_size, positional, ndim))
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        hints = "; ".join(f"{k}: {_FOREIGN_KEYWORDS[k]}" for k in unknown if k in _FOREIGN_KEYWORDS)
        raise SymdeconvError(
            f"unexpected keyword argument(s) {names}: sd.{kind} takes kernel_size, then the keywords "
            f"{', '.join(_KEYWORDS[kind])}, convention, ndim, ..." + (f" ({hints})" if hints else "")
        )


def _positional_message(kind: str, kernel_size: Any, positional: tuple, ndim: Any) -> str:
    values = (kernel_size,) + positional
    shown = ", ".join(map(repr, values))
    message = (f"the arguments after kernel_size are keyword-only, got {len(positional)} more positional "
               f"argument(s) in sd.{kind}({shown})")
    kernel = positional[1] if len(positional) > 1 else None
    torch_like = (_is_int(kernel_size) and _is_int(positional[0])
                  and (_is_int(kernel) or (_is_seq(kernel) and len(kernel) > 0 and all(_is_int(v) for v in kernel))))
    if torch_like:
        # torch's (in_channels, out_channels, kernel_size, ...) order
        n = len(kernel) if _is_seq(kernel) else ndim if _is_int(ndim) else None
        name = f"{kind}{n or 2}d"
        rest = [f"{key}={v!r}" for key, v in zip(_TORCH_ORDER[kind], positional[2:]) if key != "bias"]
        keywords = ", ".join([f"in_channels={kernel_size!r}", f"out_channels={positional[0]!r}"] + rest
                             + ([f"ndim={n or 2}"] if _is_int(kernel) and ndim is None else []))
        message += (
            f". This reads like torch.nn.{name}(in_channels, out_channels, kernel_size, ...): write "
            f"sd.torch.{name}({shown}, ...){'' if n else ' (1d / 3d alike)'} or "
            f"sd.{kind}({kernel!r}, {keywords})"
        )
    old = ", ".join(f"{key}={v!r}" for key, v in zip(_KEYWORDS[kind], positional))
    if len(positional) <= len(_KEYWORDS[kind]):
        message += (f"{'; f' if torch_like else '. F'}or kernel_size={kernel_size!r}, {old}, name them: "
                    f"sd.{kind}({kernel_size!r}, {old})")
    return message


class Conv(Layer):
    """A convolution layer (what frameworks call conv: cross-correlation), PyTorch conventions by default.

    (``sd.Conv`` is this *layer*; ``sd.conv`` is the operator of a true convolution with given taps, see
    :func:`symdeconv.algebra.operators.conv`.  Torch's argument order: ``sd.torch.Conv2d``.)

    ``y[c', n] = Σ_{c ∈ group(c'), j} w[c', c mod (C_in/g), j] · x[c, s n + d j − p_lo]`` (``0 ≤ n < o``),
    ``o = ⌊(i + p_lo + p_hi − d(k − 1) − 1)/s⌋ + 1``.  As an operator: ``↓s ∘ xcorr(dilated w)``.

    Parameters follow ``torch.nn.Conv{N}d``'s names; every argument after ``kernel_size`` is keyword-only
    (``sd.Conv(3, stride=2, in_channels=64, out_channels=32)``; PyTorch's positional order is
    :mod:`symdeconv.torch`'s).  ``kernel_size`` (and any tuple argument) gives the number of
    spatial dimensions, or pass ``ndim=``.  ``padding``: an int or tuple (symmetric), ``((lo, hi), …)``,
    ``"same"`` / ``"valid"`` (PyTorch), ``"SAME"`` / ``"VALID"`` (``convention="tf"``; also ``"SAME_LOWER"``
    for ``"jax"``).  ``convention="tf"``: ``data_format`` (default channels-last), filters ``(*k, C_in/g, C_out)``.
    ``convention="jax"``: ``dimension_numbers`` (default ``('NCHW', 'OIHW', 'NCHW')``) and ``lhs_dilation``.

    >>> import symdeconv as sd
    >>> sd.Conv(3, stride=2, padding=1).output_shape((5,))
    (3,)
    """

    transposed = False
    _kind = "Conv"

    def __init__(self, kernel_size: Any, *positional: Any, stride: Any = 1, padding: Any = None,
                 dilation: Any = 1, groups: Any = 1, in_channels: Any = 1, out_channels: Any = 1,
                 convention: str = "torch", ndim: Any = None, padding_mode: str = "zeros", data_format: Any = None,
                 dimension_numbers: Any = None, lhs_dilation: Any = 1, **unknown: Any):
        with context("sd.Conv"):
            _check_call("Conv", kernel_size, positional, unknown, ndim)
            self._setup(kernel_size, stride, padding, dilation, groups, in_channels, out_channels,
                        convention=convention, ndim=ndim, padding_mode=padding_mode, data_format=data_format,
                        dimension_numbers=dimension_numbers, lhs_dilation=lhs_dilation)

    def _params(self) -> dict:
        out = super()._params()
        if self.convention == "jax":
            out["lhs_dilation"] = self.lhs_dilation
        return out

    def _pads(self, input_shape):
        pad, n = self.padding, self.ndim
        if isinstance(pad, tuple):
            return tuple(p if isinstance(p, tuple) else (p, p) for p in pad)
        if pad == "valid" or pad == "VALID":
            return ((0, 0),) * n
        if pad == "same":  # PyTorch: stride 1, total d(k−1), the odd sample on the high side
            return tuple(((ke - 1) // 2, ke - 1 - (ke - 1) // 2) for ke in self._ke)
        # TF / JAX SAME (on the undilated input size, as jax.lax.padtype_to_pads does)
        if input_shape is None:
            if all(s == 1 for s in self.stride):
                return tuple(shapes.same_padding(1, k, 1, d, pad == "SAME_LOWER")[1:]
                             for k, d in zip(self.kernel_size, self.dilation))
            return None
        return tuple(shapes.same_padding(i, k, s, d, pad == "SAME_LOWER")[1:]
                     for i, k, s, d in zip(input_shape, self.kernel_size, self.stride, self.dilation))

    def transpose(self, input_shape: Any = None) -> "ConvTranspose":
        """The PyTorch ``ConvTranspose`` with the same weight array whose operator is this operator's ``.T``.

        With ``input_shape``, its ``output_padding`` is chosen so that it maps this layer's output shape
        back to ``input_shape`` (then its matrix is this layer's matrix transposed).
        """
        with context("sd.Conv.transpose"):
            if self.convention != "torch":
                raise SymdeconvError(
                    f"transpose is defined for convention='torch' layers; use sd.convert(layer, to='torch') first "
                    f"(or layer.operator.T for the operator)"
                )
            pads = self._pads(None)
            padding = (tuple(lo for lo, _ in pads) if all(lo == hi for lo, hi in pads) else pads)
            a = 0 if input_shape is None else output_padding_for(self, input_shape)
            return ConvTranspose(self.kernel_size, stride=self.stride, padding=padding, output_padding=a,
                                 dilation=self.dilation, groups=self.groups,
                                 in_channels=self.out_channels, out_channels=self.in_channels, ndim=self.ndim)


class ConvTranspose(Layer):
    """A transposed convolution ("deconvolution"), PyTorch conventions by default.

    Each input sample scatters the kernel (a true convolution of the stride-upsampled input),
    ``full[c', s m + d j] += w[c, c' mod (C_out/g), j] · x[c, m]``, and the output is
    ``y[n] = full[n + p_lo]`` for ``0 ≤ n < o = (i − 1)s − p_lo − p_hi + d(k − 1) + a + 1``, ``a`` the
    ``output_padding`` (zeros past the full output).  As an operator: ``conv(dilated w, origin p_lo) ∘ ↑s``,
    the transpose of :class:`Conv`'s ``↓s ∘ xcorr``.

    Every argument after ``kernel_size`` is keyword-only: ``sd.ConvTranspose(3, stride=2, in_channels=64,
    out_channels=32, ndim=2)`` is PyTorch's ``ConvTranspose2d(64, 32, 3, stride=2)``, which
    ``sd.torch.ConvTranspose2d(64, 32, 3, stride=2)`` accepts as written (:mod:`symdeconv.torch`).

    ``convention="tf"``: ``tf.nn.conv{N}d_transpose`` with ``padding`` ``"SAME"`` / ``"VALID"`` and
    ``output_shape`` (spatial sizes; default Keras's ``i·s`` / ``i·s + max(k − s, 0)``), filters
    ``(*k, C_out, C_in)``.  ``convention="jax"``: ``jax.lax.conv_transpose`` with ``padding`` pairs of the
    dilated input or ``"SAME"`` / ``"VALID"``, ``transpose_kernel`` and ``dimension_numbers``
    (default channels-last, kernel ``HWIO``).

    >>> import symdeconv as sd
    >>> sd.ConvTranspose(3, stride=2, padding=1, output_padding=1).output_shape((3,))
    (6,)
    """

    transposed = True
    _kind = "ConvTranspose"

    def __init__(self, kernel_size: Any, *positional: Any, stride: Any = 1, padding: Any = None,
                 output_padding: Any = None, dilation: Any = 1, groups: Any = 1, in_channels: Any = 1,
                 out_channels: Any = 1, convention: str = "torch", ndim: Any = None, output_shape: Any = None,
                 transpose_kernel: bool = False, padding_mode: str = "zeros", data_format: Any = None,
                 dimension_numbers: Any = None, **unknown: Any):
        with context("sd.ConvTranspose"):
            _check_call("ConvTranspose", kernel_size, positional, unknown, ndim)
            self._setup(kernel_size, stride, padding, dilation, groups, in_channels, out_channels,
                        convention=convention, ndim=ndim, padding_mode=padding_mode, data_format=data_format,
                        dimension_numbers=dimension_numbers, output_padding=output_padding,
                        output_shape=output_shape, transpose_kernel=transpose_kernel)

    def _params(self) -> dict:
        out = super()._params()
        if self.convention == "torch":
            out["output_padding"] = self.output_padding
        if self.convention == "tf":
            out["output_shape"] = self.output_shape_arg
            if self.keras_output_padding:
                out["output_padding"] = self.output_padding
        if self.convention == "jax":
            out["transpose_kernel"] = self.transpose_kernel
        return out

    def _tf_geometry(self, input_shape):
        """TensorFlow: (output sizes, crops (lo, hi) of the full output, expected input sizes) or None."""
        if not isinstance(self.padding, str):  # explicit pairs (tf.nn.conv2d_transpose): the forward conv's
            top = tuple(lo for lo, _ in self.padding)
            if self.output_shape_arg is not None:
                o = self.output_shape_arg
            elif input_shape is not None:  # the size the forward convolution maps back onto i exactly
                o = tuple(s * (i - 1) + ke - lo - hi
                          for i, s, ke, (lo, hi) in zip(input_shape, self.stride, self._ke, self.padding))
            else:
                return None, top, None
            expected = tuple((v + lo + hi - ke) // s + 1 if v + lo + hi >= ke else 0
                             for v, s, ke, (lo, hi) in zip(o, self.stride, self._ke, self.padding))
            return o, top, expected
        ops = self.output_padding if self.keras_output_padding else (None,) * self.ndim
        if self.output_shape_arg is not None:
            o = self.output_shape_arg
        elif input_shape is not None:
            o = tuple(shapes.keras_conv_transpose_output_size(i, k, s, self.padding, d, a)
                      for i, k, s, d, a in zip(input_shape, self.kernel_size, self.stride, self.dilation, ops))
        else:
            o = None
        if o is None:  # Keras default output: the crop does not depend on the input size (take i = 1)
            o1 = tuple(shapes.keras_conv_transpose_output_size(1, k, s, self.padding, d, a)
                       for k, s, d, a in zip(self.kernel_size, self.stride, self.dilation, ops))
            geo = [shapes.tf_conv_transpose_padding(v, k, s, self.padding, d)
                   for v, k, s, d in zip(o1, self.kernel_size, self.stride, self.dilation)]
            return None, tuple(g[1] for g in geo), None
        geo = [shapes.tf_conv_transpose_padding(v, k, s, self.padding, d)
               for v, k, s, d in zip(o, self.kernel_size, self.stride, self.dilation)]
        return o, tuple(g[1] for g in geo), tuple(g[0] for g in geo)

    def _pads(self, input_shape):
        pad, n = self.padding, self.ndim
        if self.convention == "torch":
            pairs = tuple(p if isinstance(p, tuple) else (p, p) for p in pad)
            return tuple((shapes.transposed_padding(lo, ke), shapes.transposed_padding(hi, ke) + a)
                         for (lo, hi), ke, a in zip(pairs, self._ke, self.output_padding))
        if self.convention == "jax":
            if pad in ("SAME", "VALID"):
                return tuple(shapes.jax_conv_transpose_padding(ke, s, pad) for ke, s in zip(self._ke, self.stride))
            if isinstance(pad, str):  # the forward convolution's padding, at stride 1 (padtype_to_pads)
                mode = pad.upper()
                if mode == "VALID":
                    return ((0, 0),) * n
                return tuple(shapes.same_padding(1, ke, 1, 1, mode == "SAME_LOWER")[1:] for ke in self._ke)
            return pad
        # TensorFlow: the gradient of conv from output_shape
        o, crop, expected = self._tf_geometry(input_shape)
        lo = tuple(shapes.transposed_padding(c, ke) for c, ke in zip(crop, self._ke))
        if input_shape is None:
            return tuple((v, None) for v in lo)
        for d, (i, e) in enumerate(zip(input_shape, expected)):
            if i != e:
                raise SymdeconvError(
                    f"input size {i}{'' if n == 1 else f' along spatial dimension {d}'} does not match "
                    f"output_shape {o[d]}: tf.nn.conv_transpose is the gradient of a {self.padding} convolution "
                    f"from {o[d]} samples, which has {e} outputs (TensorFlow's rule: "
                    f"the input must be conv(output_shape))"
                )
        # hi such that the general form has exactly o outputs: o = l(i − 1) + lo + hi − (ke − 1) + 1
        return tuple((lo_d, o_d - s * (i - 1) - lo_d + ke - 2)
                     for lo_d, o_d, s, i, ke in zip(lo, o, self.stride, input_shape, self._ke))

    def _static_lo(self):
        pads = self._pads(None)
        return tuple(lo for lo, _ in pads)

    def transpose(self, input_shape: Any = None) -> Conv:
        """The PyTorch ``Conv`` with the same weight array whose operator is this operator's ``.T``."""
        with context("sd.ConvTranspose.transpose"):
            if self.convention != "torch":
                raise SymdeconvError(
                    "transpose is defined for convention='torch' layers; use sd.convert(layer, to='torch') first "
                    "(or layer.operator.T for the operator)"
                )
            for d, (a, s) in enumerate(zip(self.output_padding, self.stride)):
                if a >= s:
                    raise SymdeconvError(
                        f"output_padding={a} >= stride={s}: the convolution with the same parameters would give "
                        "more outputs than this layer's inputs, so no Conv has this layer as its transpose"
                    )
            return Conv(self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation,
                        groups=self.groups, in_channels=self.out_channels, out_channels=self.in_channels,
                        ndim=self.ndim)


def output_padding_for(layer: Layer, input_shape: Any, target_shape: Any = None) -> Any:
    """Solve the output-shape ambiguity of a transposed convolution.

    * PyTorch ``ConvTranspose``: the ``output_padding`` that makes ``input_shape`` give ``target_shape``
      (each entry ``0 ≤ a < max(stride, dilation)``), or :class:`SymdeconvError` listing the reachable sizes.
    * PyTorch ``Conv``: the ``output_padding`` of its transpose that maps ``layer.output_shape(input_shape)``
      back to ``input_shape`` — ``a = (i + 2p − d(k − 1) − 1) mod s`` (Dumoulin & Visin, relationship 14);
      ``target_shape``, if given, must equal ``input_shape``.
    * TensorFlow ``ConvTranspose``: the ``output_shape`` argument, checked against TensorFlow's rule.
    * JAX ``ConvTranspose``: explicit ``((lo, hi), …)`` padding pairs reaching ``target_shape``.
    """
    with context("sd.output_padding_for"):
        if not isinstance(layer, Layer):
            raise SymdeconvError(f"layer must be an sd.Conv or sd.ConvTranspose, got {type(layer).__name__}")
        shape = layer._check_input(input_shape)
        if not layer.transposed:
            if layer.convention != "torch":
                raise SymdeconvError("for a convolution, output_padding_for needs convention='torch' (its transpose)")
            if target_shape is not None and layer._check_input(target_shape) != shape:
                raise SymdeconvError("for a convolution, target_shape must equal input_shape (the transpose's output)")
            pads = layer._pads(shape)
            layer.output_shape(shape)
            return tuple((i + lo + hi - ke) % s for i, (lo, hi), ke, s in zip(shape, pads, layer._ke, layer.stride))
        if target_shape is None:
            raise SymdeconvError("target_shape is required for a transposed layer")
        target = layer._check_input(target_shape)
        n = layer.ndim
        if layer.convention == "torch":
            base = layer._replace(output_padding=0)
            out = []
            for d, (i, t) in enumerate(zip(shape, target)):
                low = base._pads(shape)[d]
                o0 = shapes.general_output_size(i, layer.kernel_size[d], 1, low[0], low[1], layer.dilation[d],
                                                layer.stride[d])
                a = t - o0
                limit = max(layer.stride[d], layer.dilation[d])
                if not 0 <= a < limit:
                    where = "" if n == 1 else f" along spatial dimension {d}"
                    raise SymdeconvError(
                        f"target size {t}{where} is not reachable from input size {i}: output_padding must be in "
                        f"0..{limit - 1} (smaller than either stride or dilation), giving sizes {o0}..{o0 + limit - 1}"
                    )
                out.append(a)
            return tuple(out)
        if layer.convention == "tf":
            candidate = layer._replace(output_shape=target)
            candidate.output_shape(shape)  # raises with TensorFlow's rule when impossible
            return target
        pads = layer._pads(shape)
        current = layer.output_shape(shape)
        return tuple((lo, hi + t - o) for (lo, hi), t, o in zip(pads, target, current))
