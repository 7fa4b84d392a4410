"""Conversion of layers between PyTorch, TensorFlow and JAX conventions, with the weight transform.

Two layers compute the same function iff their general forms (:mod:`symdeconv.algebra.shapes`) agree:
the same cross-correlation kernel ``w̃`` (channels, groups, taps), input dilation ``l``, window stride
``s``, kernel dilation ``d``, low padding ``lo`` — which fixes the operator — and the same number of outputs
for the input size (the high side).  :func:`convert` writes the source layer's general form in the target
framework's parameters, tries the target's ways of saying it (padding strings first, then explicit
values), and keeps the first whose ``lo`` and output sizes agree with the source: for every input size
when the source's padding does not depend on it, else for the given ``input_shape``.  When none agrees
the error says why — e.g. TensorFlow's ``SAME`` crops ``(0, 1)`` from a 3-tap stride-2 transposed
convolution's full output to reach 4 samples, which PyTorch's symmetric ``padding`` cannot express.

The weight transform maps the framework weight array of the source to that of the target: a permutation
of axes (PyTorch ``OIHW`` / ``IOHW``, TensorFlow ``HWIO`` / ``HWOI``, JAX per ``dimension_numbers``), a flip
of the spatial axes when one framework stores a scatter (true-convolution) kernel and the other a
cross-correlation kernel, and, with groups, a regrouping of the channel axes.
"""

from __future__ import annotations

import itertools

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SymdeconvError, context
from . import shapes
from .layers import CONVENTIONS, Conv, ConvTranspose, Layer

__all__ = ["convert", "Conversion", "WeightTransform"]

_CANONICAL = ("G", "CO", "CI")


def _components(layer: Layer) -> list[str]:
    return [c for axis in layer._axes for c in axis]


def to_canonical(layer: Layer, weight: Any) -> np.ndarray:
    """The weight array as ``w̃[g, c'_local, c_local, *j]``: cross-correlation orientation, groups split out."""
    arr = np.asarray(weight)
    if arr.shape != layer.weight_shape:
        raise SymdeconvError(f"weight must have shape {layer.weight_shape} (layout {layer.weight_layout}), got {arr.shape}")
    sizes = layer._component_sizes()
    comps = _components(layer)
    arr = arr.reshape([sizes[c] for c in comps])
    order = list(_CANONICAL) + [f"K{d}" for d in range(layer.ndim)]
    arr = np.transpose(arr, [comps.index(c) for c in order])
    if layer._flip:
        arr = np.flip(arr, axis=tuple(range(3, 3 + layer.ndim)))
    return arr


def from_canonical(layer: Layer, canonical: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_canonical` for ``layer``'s layout."""
    arr = np.asarray(canonical)
    if layer._flip:
        arr = np.flip(arr, axis=tuple(range(3, 3 + layer.ndim)))
    order = list(_CANONICAL) + [f"K{d}" for d in range(layer.ndim)]
    comps = _components(layer)
    arr = np.transpose(arr, [order.index(c) for c in comps])
    return np.ascontiguousarray(arr).reshape(layer.weight_shape)


@dataclass(frozen=True)
class WeightTransform:
    """Maps a weight array in the source layer's layout to the target's: ``target_w = transform(source_w)``.

    ``perm`` / ``flip_axes``: when the transform is ``np.flip(np.transpose(w, perm), flip_axes)`` (always,
    without groups), else ``None`` (grouped channel axes are regrouped; see :meth:`__str__`).
    """

    source: Layer = field(repr=False)
    target: Layer = field(repr=False)
    perm: tuple[int, ...] | None
    flip_axes: tuple[int, ...] | None

    def __call__(self, weight: Any) -> np.ndarray:
        return from_canonical(self.target, to_canonical(self.source, weight))

    @property
    def is_identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm or ()))) and not self.flip_axes and self.perm is not None

    def __str__(self) -> str:
        src, dst = self.source.weight_layout, self.target.weight_layout
        if self.perm is None:
            return (f"regroup {src} {self.source.weight_shape} -> {dst} {self.target.weight_shape}: split the "
                    f"channel axes into (groups, per-group), swap input/output roles, merge back"
                    + (", and reverse the spatial axes" if self.source._flip != self.target._flip else ""))
        if self.is_identity:
            return f"w unchanged ({src})"
        text = "w" if self.perm == tuple(range(len(self.perm))) else f"np.transpose(w, {self.perm})"
        if self.flip_axes:
            text = f"np.flip({text}, axis={self.flip_axes})"
        return f"{text}   ({src} -> {dst}{', kernel flipped' if self.flip_axes else ''})"


def _weight_transform(src: Layer, dst: Layer) -> WeightTransform:
    size = int(np.prod(src.weight_shape))
    probe = np.arange(size).reshape(src.weight_shape)
    mapped = from_canonical(dst, to_canonical(src, probe))
    trivial = {"G"} if src.groups == 1 else set()

    def key(axis: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(c for c in axis if c not in trivial) or axis

    src_keys = [key(a) for a in src._axes]
    perm: list[int] = []
    for axis in dst._axes:
        k = key(axis)
        if k not in src_keys:
            return WeightTransform(src, dst, None, None)
        perm.append(src_keys.index(k))
    flips = tuple(i for i, axis in enumerate(dst._axes) if axis[0].startswith("K")) if src._flip != dst._flip else ()
    candidate = np.transpose(probe, perm)
    if flips:
        candidate = np.flip(candidate, axis=flips)
    if candidate.shape != mapped.shape or not np.array_equal(candidate, mapped):
        return WeightTransform(src, dst, None, None)
    return WeightTransform(src, dst, tuple(perm), flips)


@dataclass(frozen=True)
class Conversion:
    """The result of :func:`convert`: ``layer`` (target convention) and ``weight`` (the weight transform).

    ``input_shape`` is ``None`` when the layers agree for every input size, else the one size they were
    matched for.  Unpacks as ``layer, weight = sd.convert(...)``.
    """

    source: Layer
    layer: Layer
    weight: WeightTransform
    input_shape: tuple[int, ...] | None = None

    def __iter__(self):
        return iter((self.layer, self.weight))

    def __str__(self) -> str:
        scope = "for every input size" if self.input_shape is None else f"for input size {self.input_shape}"
        return (f"{self.source.framework_call(self.input_shape)}\n  == {self.layer.framework_call(self.input_shape)}"
                f"   ({scope})\n  weights: {self.weight}")


# ==================================================================================================


def _signature(layer: Layer, shape: tuple[int, ...]) -> Any:
    """What fixes the layer's function on inputs of this size: low padding and output sizes (or the error)."""
    try:
        out = layer.output_shape(shape)
        lo = tuple(p for p, _ in layer._pads(shape))
    except SymdeconvError:
        return "error"
    return lo, out


def _probe_shapes(src: Layer) -> list[tuple[int, ...]]:
    span = max(src._ke) + 2 * max(src._l) * max(src._s) + 3
    return [(i,) * src.ndim for i in range(1, span + 1)]


def _agrees(src: Layer, dst: Layer, shape: tuple[int, ...] | None) -> bool:
    if shape is not None:
        sig = _signature(src, shape)
        return sig != "error" and sig == _signature(dst, shape)
    probes = _probe_shapes(src)
    sigs = [_signature(src, p) for p in probes]
    return any(s != "error" for s in sigs) and all(s == _signature(dst, p) for s, p in zip(sigs, probes))


def _source_is_static(layer: Layer) -> bool:
    pads = layer._pads(None)
    return pads is not None and all(hi is not None for _, hi in pads)


def _pairs(layer: Layer, shape: tuple[int, ...] | None) -> tuple[tuple[int, int], ...] | None:
    if _source_is_static(layer):
        return layer._pads(None)
    return None if shape is None else layer._pads(shape)


def _common(layer: Layer) -> dict:
    return dict(kernel_size=layer.kernel_size, dilation=layer.dilation, groups=layer.groups,
                in_channels=layer.in_channels, out_channels=layer.out_channels, ndim=layer.ndim)


def _attempt(factory, reasons: list[str]) -> Layer | None:
    try:
        return factory()
    except SymdeconvError as err:
        reasons.append(str(err))
        return None


def _kind(layer: Layer) -> str:
    """``"conv"`` (input dilation 1) or ``"transposed"`` (window stride 1) — or both when both are 1."""
    l1 = all(v == 1 for v in layer._l)
    s1 = all(v == 1 for v in layer._s)
    if l1 and s1:
        return "transposed" if layer.transposed else "conv"
    if l1:
        return "conv"
    if s1:
        return "transposed"
    return "both"


def _torch_candidates(src: Layer, shape, reasons):
    kind, com = _kind(src), _common(src)
    pairs = _pairs(src, shape)
    if kind == "both":
        reasons.append("an input dilation and a window stride both > 1 have no PyTorch layer")
        return
    if pairs is None:
        reasons.append("the padding depends on the input size: pass input_shape=")
        return
    lo = tuple(p for p, _ in pairs)
    if kind == "conv":
        if all(s == 1 for s in src._s):
            yield lambda: Conv(padding="same", **com)
        if any(v < 0 for v in lo):
            reasons.append(f"the low padding {lo} is negative (a crop): PyTorch's Conv padding must be >= 0")
            return
        yield lambda: Conv(stride=src._s, padding=lo, **com)
        return
    p = tuple(shapes.transposed_padding(v, ke) for v, ke in zip(lo, src._ke))
    if any(v < 0 for v in p):
        reasons.append(f"it would need PyTorch padding {p} < 0 (the source pads its dilated input by more than "
                       "the kernel span)")
        return
    hi = tuple(h for _, h in pairs)
    a = tuple(h - v for h, v in zip(hi, lo))
    if any(not 0 <= v < max(l, d) for v, l, d in zip(a, src._l, src.dilation)):
        crops = tuple((c, shapes.transposed_padding(h, ke)) for c, h, ke in zip(p, hi, src._ke))
        reasons.append(
            f"it crops {crops} (low, high) from the full transposed output: PyTorch crops `padding` from both "
            "sides and adds output_padding (0 <= output_padding < max(stride, dilation)) on the high side only, "
            f"which would need output_padding={a}"
        )
        return
    yield lambda: ConvTranspose(stride=src._l, padding=p, output_padding=a, **com)


def _tf_candidates(src: Layer, shape, reasons):
    kind, com = _kind(src), _common(src)
    if kind == "both":
        reasons.append("an input dilation and a window stride both > 1 have no TensorFlow layer")
        return
    pairs = _pairs(src, shape)
    if kind == "conv":
        for mode in ("VALID", "SAME"):
            yield lambda mode=mode: Conv(stride=src._s, padding=mode, convention="tf", **com)
        if pairs is not None:
            yield lambda: Conv(stride=src._s, padding=pairs, convention="tf", **com)
        return
    for mode in ("SAME", "VALID"):
        yield lambda mode=mode: ConvTranspose(stride=src._l, padding=mode, convention="tf", **com)
    for mode in ("SAME", "VALID"):  # Keras's output_padding sizes (a < stride), for every input size
        for a in itertools.product(*(range(v) for v in src._l)):
            yield lambda mode=mode, a=a: ConvTranspose(stride=src._l, padding=mode, output_padding=a,
                                                       convention="tf", **com)
    if src.ndim <= 2 and pairs is not None and all(hi is not None for _, hi in pairs):
        # tf.nn.conv2d_transpose with explicit padding (in 1-D on a unit axis): the forward convolution's
        # pads are what the general form's (lo, hi) leave of the kernel span, k_eff − 1 − lo and k_eff − 1 − hi
        explicit = tuple((ke - 1 - lo, ke - 1 - hi) for (lo, hi), ke in zip(pairs, src._ke))
        if all(a >= 0 and b >= 0 for a, b in explicit):
            yield lambda: ConvTranspose(stride=src._l, padding=explicit, convention="tf", **com)
    if shape is not None:
        out = src.output_shape(shape)
        for mode in ("SAME", "VALID"):
            yield lambda mode=mode: ConvTranspose(stride=src._l, padding=mode, convention="tf", output_shape=out,
                                                  **com)
    else:
        reasons.append("Keras's default output sizes do not fit; TensorFlow's output_shape= form is tried for one "
                       "input size when input_shape= is given")


def _jax_candidates(src: Layer, shape, reasons, transpose_kernel: bool):
    kind, com = _kind(src), _common(src)
    pairs = _pairs(src, shape)
    if kind == "transposed" and src.groups == 1:
        for mode in ("SAME", "VALID"):
            yield lambda mode=mode: ConvTranspose(stride=src._l, padding=mode, convention="jax",
                                                  transpose_kernel=transpose_kernel, **com)
        if pairs is not None:
            yield lambda: ConvTranspose(stride=src._l, padding=pairs, convention="jax",
                                        transpose_kernel=transpose_kernel, **com)
        return
    strings = ("VALID", "SAME", "SAME_LOWER") if all(v == 1 for v in src._l) else ()
    for mode in strings[:2]:
        yield lambda mode=mode: Conv(stride=src._s, padding=mode, convention="jax", **com)
    if pairs is not None:  # conv_general_dilated with lhs_dilation = the transposed stride, when grouped
        yield lambda: Conv(stride=src._s, padding=pairs, convention="jax", lhs_dilation=src._l, **com)
    else:
        reasons.append("the padding depends on the input size: pass input_shape=")
    for mode in strings[2:]:
        yield lambda mode=mode: Conv(stride=src._s, padding=mode, convention="jax", **com)


def convert(layer: Layer, to: str, input_shape: Any = None, transpose_kernel: bool = True) -> Conversion:
    """The equivalent layer in another framework's convention, and the weight transform.

    ``to`` is ``"torch"``, ``"tf"`` or ``"jax"``.  The result agrees with ``layer`` for every input size
    when possible; layers whose padding or output size depends on the input size (TF/JAX ``SAME`` with
    strides, TF ``output_shape``) need ``input_shape`` (spatial sizes) or are matched for the one input
    size they accept.  Transposed layers become ``jax.lax.conv_transpose`` with ``transpose_kernel``
    (default ``True``: the weight keeps the scatter orientation, only its axes move); grouped ones become
    ``conv_general_dilated`` with ``lhs_dilation = stride``.  Raises :class:`SymdeconvError` with the reason
    when the target framework has no exact equivalent.

    >>> import symdeconv as sd
    >>> layer, weight = sd.convert(sd.ConvTranspose(4, stride=2, padding=1, ndim=2), to="tf")
    >>> layer
    ConvTranspose(kernel_size=4, stride=2, padding='SAME', ndim=2, convention='tf')
    >>> weight.perm, weight.flip_axes
    ((2, 3, 1, 0), ())
    """
    with context("sd.convert"):
        if not isinstance(layer, Layer):
            raise SymdeconvError(f"layer must be an sd.Conv or sd.ConvTranspose, got {type(layer).__name__}")
        if to not in CONVENTIONS:
            raise SymdeconvError(f"to must be one of {CONVENTIONS}, got {to!r}")
        shape = None if input_shape is None else layer._check_input(input_shape)
        if shape is None and layer.convention == "tf" and layer.transposed and layer.output_shape_arg is not None:
            _, _, expected = layer._tf_geometry(None)
            shape = expected  # tf.nn.conv_transpose accepts exactly one input size
        if shape is not None:
            layer.output_shape(shape)
        if to == layer.convention:
            return Conversion(layer, layer, _weight_transform(layer, layer), None)
        reasons: list[str] = []
        if to == "torch":
            candidates = list(_torch_candidates(layer, shape, reasons))
        elif to == "tf":
            candidates = list(_tf_candidates(layer, shape, reasons))
        else:
            candidates = list(_jax_candidates(layer, shape, reasons, bool(transpose_kernel)))
        scopes = [None] + ([shape] if shape is not None else [])
        built = [(c, _attempt(c, reasons)) for c in candidates]
        for scope in scopes:
            for _, target in built:
                if target is not None and _agrees(layer, target, scope):
                    return Conversion(layer, target, _weight_transform(layer, target), scope)
        tried = [t for _, t in built if t is not None]
        detail = "; ".join(dict.fromkeys(reasons))
        if tried:
            detail = (detail + "; " if detail else "") + "tried " + ", ".join(
                f"{t!r} ({_mismatch(layer, t, scopes)})" for t in tried)
        raise SymdeconvError(
            f"{layer!r} has no exact equivalent with convention={to!r}"
            + (f" for input size {shape}" if shape is not None else "") + (f": {detail}" if detail else "")
        )


def _mismatch(src: Layer, dst: Layer, scopes) -> str:
    probes = [s for s in scopes if s is not None] or _probe_shapes(src)
    for p in probes:
        a, b = _signature(src, p), _signature(dst, p)
        if a != b:
            if "error" in (a, b):
                return f"input {p}: one of them rejects it"
            if a[0] != b[0]:
                if _kind(src) == "transposed":  # say it as the crop of the full transposed output
                    crop = [tuple(shapes.transposed_padding(v, ke) for v, ke in zip(sig[0], src._ke)) for sig in (a, b)]
                    return f"input {p}: it crops {crop[1]} from the low side, this layer {crop[0]}"
                return f"input {p}: low padding {b[0]} vs {a[0]}"
            return f"input {p}: output {a[1]} vs {b[1]}"
    return "differs"
