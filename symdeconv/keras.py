"""Keras-shaped layer constructors, ``sd.keras.Conv2DTranspose(32, 3, strides=2, padding="same",
in_channels=64)``, and :func:`from_keras` for real, built Keras layers.

The constructors take Keras 3's positional order and defaults (``keras.layers.Conv{1,2,3}D`` /
``Conv{1,2,3}DTranspose``)::

    Conv{N}D(filters, kernel_size, strides=1, padding='valid', data_format=None, dilation_rate=1, groups=1,
             activation=None, use_bias=True, kernel_initializer=..., ..., *, in_channels=1, **kwargs)
    Conv{1,2}DTranspose(filters, kernel_size, strides=1, padding='valid', output_padding=None, data_format=None,
                        dilation_rate=1, activation=None, use_bias=True, ..., *, in_channels=1, **kwargs)
    Conv3DTranspose(filters, kernel_size, strides=1, padding='valid', data_format=None, output_padding=None, ...)

(Keras's own order: ``Conv3DTranspose`` puts ``data_format`` before ``output_padding``.)  They return the
:class:`~symdeconv.Conv` / :class:`~symdeconv.ConvTranspose` with ``convention="tf"`` — Keras's TensorFlow
semantics, including ``"same"`` padding with strides and Keras's output-size rule of a transposed layer with
and without ``output_padding``.  Data are channels-last by default (``x`` of shape ``(N, *spatial, C)``); the
weight is Keras's ``kernel``: ``(*kernel_size, C_in / groups, filters)``, or ``(*kernel_size, filters, C_in)``
for a transposed layer.

* ``in_channels`` (keyword only, default 1): a Keras layer learns its input channels when it is built on the
  first input; an sd layer needs them up front.  ``input_shape=`` (Keras's first-layer keyword) gives them too.
* ``padding="causal"`` (``Conv1D``): left padding ``dilation_rate·(kernel_size − 1)``, returned as the
  equivalent ``convention="jax"`` layer with Keras's layouts (``dimension_numbers=("NHC", "HIO", "NHC")``).
* ``activation`` must be ``None`` (or ``"linear"``): an sd layer is linear; apply the activation to the
  compiled function's output.  ``use_bias``: the layer is the same either way — the bias is an argument of the
  compiled function, ``f(x, weight, bias)`` (leave it out for ``use_bias=False``).
* Initialisers, regularisers, constraints, ``name``, ``dtype`` and ``trainable`` are accepted and have no
  effect (an sd layer holds no weights).  ``data_format=None`` means ``"channels_last"`` (Keras's default
  ``image_data_format``; this module does not read your Keras configuration).

This module never imports Keras; :func:`from_keras` imports it when called.
"""

from __future__ import annotations

import inspect
from typing import Any

from ._frameworks import as_float_array, check_flag, check_spatial, constructor
from .algebra.layers import Conv, ConvTranspose, Layer
from .errors import SymdeconvError, context

__all__ = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "from_keras"]

_HINT = ("Keras's order: filters, kernel_size, strides, padding, ...; the input channels are the keyword "
         "in_channels=")
_IGNORED = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
            "activity_regularizer", "kernel_constraint", "bias_constraint")
_IGNORED_KWARGS = ("name", "dtype", "trainable", "autocast")
_P = inspect.Parameter


def _signature(n: int, transposed: bool) -> inspect.Signature:
    """Keras 3's signature of ``Conv{n}D`` / ``Conv{n}DTranspose``, plus the keyword-only ``in_channels``."""
    ones = 1 if n == 1 else (1,) * n
    head = [("filters", _P.empty), ("kernel_size", _P.empty), ("strides", ones), ("padding", "valid")]
    if transposed:
        layout = [("output_padding", None), ("data_format", None)]
        head += (layout[::-1] if n == 3 else layout) + [("dilation_rate", ones)]
    else:
        head += [("data_format", None), ("dilation_rate", ones), ("groups", 1)]
    head += [("activation", None), ("use_bias", True), ("kernel_initializer", "glorot_uniform"),
             ("bias_initializer", "zeros")] + [(k, None) for k in _IGNORED[2:]]
    params = [_P(k, _P.POSITIONAL_OR_KEYWORD, default=d) for k, d in head]
    params += [_P("in_channels", _P.KEYWORD_ONLY, default=1), _P("kwargs", _P.VAR_KEYWORD)]
    return inspect.Signature(params)


def _in_channels(in_channels: Any, kwargs: dict, data_format: str) -> Any:
    unknown = [k for k in kwargs if k not in _IGNORED_KWARGS + ("input_shape",)]
    if unknown:
        raise SymdeconvError(f"unexpected keyword argument(s) {', '.join(map(repr, unknown))} ({_HINT})")
    shape = kwargs.get("input_shape")
    if shape is None:
        return in_channels
    try:
        channels = shape[-1] if data_format == "channels_last" else shape[0]
    except (TypeError, IndexError):
        raise SymdeconvError(f"input_shape must be a tuple such as (H, W, C), got {shape!r}") from None
    if in_channels != 1 and in_channels != channels:
        raise SymdeconvError(f"in_channels={in_channels} but input_shape={tuple(shape)} has {channels} channels")
    return channels


def _layer(n: int, transposed: bool, *, filters: Any, kernel_size: Any, strides: Any, padding: Any,
           data_format: Any, dilation_rate: Any, activation: Any, use_bias: Any, in_channels: Any, kwargs: dict,
           groups: Any = 1, output_padding: Any = None, **ignored: Any) -> Layer:
    """The sd layer of a Keras ``Conv{n}D`` (``transposed``: ``Conv{n}DTranspose``) with these arguments."""
    name = f"keras.layers.Conv{n}D{'Transpose' if transposed else ''}"
    check_flag(use_bias, "use_bias")
    if not (activation is None or activation == "linear" or getattr(activation, "__name__", None) == "linear"):
        raise SymdeconvError(
            f"activation={getattr(activation, '__name__', activation)!r}: an sd layer is linear; build it with "
            "activation=None and apply the activation to the compiled function's output"
        )
    fmt = "channels_last" if data_format is None else data_format
    if fmt not in ("channels_last", "channels_first"):
        raise SymdeconvError(f"data_format must be 'channels_last' or 'channels_first' (or None), got {fmt!r}")
    in_channels = _in_channels(in_channels, kwargs, fmt)
    check_spatial(n, name, kernel_size=kernel_size, strides=strides, dilation_rate=dilation_rate,
                  output_padding=output_padding)
    modes = ("valid", "same") + (("causal",) if n == 1 and not transposed else ())
    mode = padding.lower() if isinstance(padding, str) else None
    if mode not in modes:
        raise SymdeconvError(f"padding={padding!r}: {name} takes {' / '.join(map(repr, modes))}")
    as_tuple = (lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * n)
    if max(as_tuple(strides)) > 1 and max(as_tuple(dilation_rate)) > 1:
        raise SymdeconvError(
            f"strides={strides!r} with dilation_rate={dilation_rate!r}: Keras does not combine strides > 1 with "
            "dilation_rate > 1 (Keras's rule)"
        )
    common = dict(stride=strides, dilation=dilation_rate, in_channels=in_channels, out_channels=filters, ndim=n)
    if transposed:
        return ConvTranspose(kernel_size, padding=mode.upper(), output_padding=output_padding, convention="tf",
                             data_format=fmt, **common)
    if mode == "causal":  # Keras pads d·(k − 1) zeros on the left; TF's conv1d takes no padding pairs, JAX's does
        k, d = as_tuple(kernel_size)[0], as_tuple(dilation_rate)[0]
        lhs = "NHC" if fmt == "channels_last" else "NCH"
        return Conv(kernel_size, padding=((d * (k - 1), 0),), groups=groups, convention="jax",
                    dimension_numbers=(lhs, "HIO", lhs), **common)
    return Conv(kernel_size, padding=mode.upper(), groups=groups, convention="tf", data_format=fmt, **common)


def _public(n: int, transposed: bool):
    name = f"Conv{n}D{'Transpose' if transposed else ''}"
    kind = "ConvTranspose" if transposed else "Conv"
    doc = (f"``keras.layers.{name}``'s arguments, in its order, and ``in_channels=``; returns "
           f"``sd.{kind}(kernel_size, ..., convention='tf', ndim={n})``.\n\n"
           "    See :mod:`symdeconv.keras` for in_channels, causal padding, activation and the ignored arguments.\n")

    def build(**arguments: Any) -> Layer:
        return _layer(n, transposed, **arguments)

    return constructor(build, f"sd.keras.{name}", doc, _HINT, _signature(n, transposed))


Conv1D, Conv2D, Conv3D = (_public(n, False) for n in (1, 2, 3))
Conv1DTranspose, Conv2DTranspose, Conv3DTranspose = (_public(n, True) for n in (1, 2, 3))


def from_keras(layer: Any, ignore_activation: bool = False) -> tuple[Layer, Any, Any]:
    """``(sd_layer, weight, bias)`` of a built ``keras.layers.Conv{1,2,3}D`` / ``Conv{1,2,3}DTranspose``.

    ``weight`` is the layer's ``kernel`` as a NumPy copy (Keras's layout is the sd layer's: no transposition;
    float32, or float64 for a float64 layer), ``bias`` its bias or ``None`` (``use_bias=False``).  So ::

        sd_layer, w, b = sd.from_keras(k)
        f = sd.compile(sd_layer)
        f(x, w, b)          # == k(x), x channels-last (N, *spatial, C) unless k.data_format says otherwise

    A Keras layer has weights only once built: build it (``k.build(input_shape)``) or call it on an input
    first.  A non-linear ``activation`` is refused unless ``ignore_activation=True``, in which case the result
    is the layer before its activation.
    """
    with context("sd.from_keras"):
        try:
            import keras  # the real Keras (an absolute import)
        except ImportError as err:
            raise SymdeconvError(f"Keras is not installed ({err}): pip install keras (or tensorflow)") from None
        kl = keras.layers
        classes = {kl.Conv1D: (1, False), kl.Conv2D: (2, False), kl.Conv3D: (3, False),
                   kl.Conv1DTranspose: (1, True), kl.Conv2DTranspose: (2, True), kl.Conv3DTranspose: (3, True)}
        base = next((cls for cls in classes if type(layer) is cls), None)
        base = base or next((cls for cls in classes if isinstance(layer, cls)), None)
        if base is None:
            raise SymdeconvError(
                f"layer must be a keras.layers.Conv1D/2D/3D or Conv1D/2D/3DTranspose, got {type(layer).__name__}"
            )
        name = type(layer).__name__
        if type(layer).call is not base.call:
            raise SymdeconvError(f"{name} overrides {base.__name__}.call: its output need not be a {base.__name__}'s")
        if not layer.built:
            raise SymdeconvError(
                f"{name} {layer.name!r} is not built, so it has no weights yet: build it (layer.build(input_shape)) "
                "or call it once on an input"
            )
        n, transposed = classes[base]
        activation = None if check_flag(ignore_activation, "ignore_activation") else layer.activation
        kernel = _numpy(keras, layer.kernel, "kernel")
        in_channels = kernel.shape[-1] if transposed else kernel.shape[-2] * layer.groups
        extra = dict(output_padding=layer.output_padding) if transposed else dict(groups=layer.groups)
        sd_layer = _layer(n, transposed, filters=layer.filters, kernel_size=tuple(layer.kernel_size),
                          strides=tuple(layer.strides), padding=layer.padding, data_format=layer.data_format,
                          dilation_rate=tuple(layer.dilation_rate), activation=activation, use_bias=True,
                          in_channels=int(in_channels), kwargs={}, **extra)
        bias = _numpy(keras, layer.bias, "bias") if layer.use_bias else None
        return sd_layer, kernel, bias


def _numpy(keras: Any, value: Any, name: str) -> Any:
    """A Keras variable or tensor as a NumPy float32 / float64 copy (``.numpy()`` where it has one: NumPy 2
    warns about ``np.array`` of a Keras variable)."""
    return as_float_array(value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value), name)
