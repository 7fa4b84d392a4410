"""PyTorch-shaped layer constructors, ``sd.torch.ConvTranspose2d(64, 32, 3, stride=2)``, and
:func:`from_torch` for real ``torch.nn`` modules.

The constructors take exactly ``torch.nn``'s positional order and defaults and return the
:class:`~symdeconv.Conv` / :class:`~symdeconv.ConvTranspose` layer with ``convention="torch"``::

    Conv{1,2,3}d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode='zeros', device=None, dtype=None)
    ConvTranspose{1,2,3}d(in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                          groups=1, bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None)

so that ``sd.torch.ConvTranspose2d(64, 32, 3, stride=2)`` is ``sd.ConvTranspose(3, stride=2, in_channels=64,
out_channels=32, ndim=2)``.  An int ``kernel_size`` (or stride, ...) covers every spatial dimension, as in
PyTorch.

* ``bias``: an sd layer holds no parameters, so the layer is the same with ``bias=True`` or ``False``; the
  bias is an argument of the compiled function, ``f = sd.compile(layer); f(x, weight, bias)`` — leave it out
  (or pass ``None``) for ``bias=False``.
* ``device`` and ``dtype`` are accepted, so that code copied from PyTorch runs, and have no effect: no tensor
  is created.  The device is chosen by ``sd.compile(layer, "cpu" | "cuda")``, the dtype (float32 / float64)
  by the arrays passed to the compiled function.
* ``padding_mode`` other than ``'zeros'`` is refused (reflect / replicate / circular padding are not operators
  on sequences; PyTorch's ConvTranspose refuses them too).

This module never imports PyTorch; :func:`from_torch` imports it when called.
"""

from __future__ import annotations

from typing import Any

from ._frameworks import check_flag, check_spatial, constructor
from .algebra.layers import Conv, ConvTranspose, Layer
from .errors import SymdeconvError, context

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "from_torch"]

_HINT = "torch.nn's order: in_channels, out_channels, kernel_size, then stride, padding, ...; sd's own " \
        "kernel-first form is sd.Conv / sd.ConvTranspose"


def _conv(n: int):
    name = f"Conv{n}d"

    def build(in_channels: Any, out_channels: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0,
              dilation: Any = 1, groups: Any = 1, bias: Any = True, padding_mode: str = "zeros",
              device: Any = None, dtype: Any = None) -> Conv:
        check_flag(bias, "bias")
        check_spatial(n, f"torch.nn.{name}", kernel_size=kernel_size, stride=stride, padding=padding,
                      dilation=dilation)
        return Conv(kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    in_channels=in_channels, out_channels=out_channels, padding_mode=padding_mode, ndim=n)

    doc = (f"``torch.nn.{name}``'s arguments, in its order; returns ``sd.Conv(kernel_size, stride=..., ..., "
           f"ndim={n})``.\n\n    See :mod:`symdeconv.torch` for ``bias``, ``device`` and ``dtype``.\n\n"
           f"    >>> import symdeconv as sd\n    >>> sd.torch.{name}(4, 8, 3, stride=2, padding=1)\n"
           f"    Conv(kernel_size=3, stride=2, padding=1, in_channels=4, out_channels=8{', ndim=%d' % n if n > 1 else ''})\n")
    return constructor(build, f"sd.torch.{name}", doc, _HINT)


def _conv_transpose(n: int):
    name = f"ConvTranspose{n}d"

    def build(in_channels: Any, out_channels: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0,
              output_padding: Any = 0, groups: Any = 1, bias: Any = True, dilation: Any = 1,
              padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> ConvTranspose:
        check_flag(bias, "bias")
        check_spatial(n, f"torch.nn.{name}", kernel_size=kernel_size, stride=stride, padding=padding,
                      output_padding=output_padding, dilation=dilation)
        return ConvTranspose(kernel_size, stride=stride, padding=padding, output_padding=output_padding,
                             dilation=dilation, groups=groups, in_channels=in_channels, out_channels=out_channels,
                             padding_mode=padding_mode, ndim=n)

    doc = (f"``torch.nn.{name}``'s arguments, in its order; returns ``sd.ConvTranspose(kernel_size, stride=..., "
           f"..., ndim={n})``.\n\n    See :mod:`symdeconv.torch` for ``bias``, ``device`` and ``dtype``.\n\n"
           f"    >>> import symdeconv as sd\n    >>> sd.torch.{name}(64, 32, 4, 2, 1)\n"
           f"    ConvTranspose(kernel_size=4, stride=2, padding=1, in_channels=64, out_channels=32"
           f"{', ndim=%d' % n if n > 1 else ''})\n")
    return constructor(build, f"sd.torch.{name}", doc, _HINT)


Conv1d, Conv2d, Conv3d = (_conv(n) for n in (1, 2, 3))
ConvTranspose1d, ConvTranspose2d, ConvTranspose3d = (_conv_transpose(n) for n in (1, 2, 3))


def from_torch(module: Any) -> tuple[Layer, Any, Any]:
    """``(layer, weight, bias)`` of a real ``torch.nn.Conv{1,2,3}d`` / ``ConvTranspose{1,2,3}d`` module.

    ``layer`` is the :class:`~symdeconv.Conv` / :class:`~symdeconv.ConvTranspose` (``convention="torch"``) with
    the module's geometry; ``weight`` and ``bias`` are NumPy copies of its parameters (float32, or float64 for a
    double module; half precision widens to float32), ``bias`` is ``None`` when the module has none.  So ::

        layer, w, b = sd.from_torch(m)
        f = sd.compile(layer)
        f(x, w, b)          # == m(torch.from_numpy(x)).detach().numpy(), x of shape (N, C_in, *spatial)

    The ``output_size`` argument of ``ConvTranspose*d.forward`` is a per-call ``output_padding``: give that
    ``output_padding`` to the layer (:func:`~symdeconv.output_padding_for` finds it).  Refused with
    :class:`SymdeconvError`: other modules (including subclasses that override ``forward``), uninitialised
    lazy modules (run one forward pass first) and ``padding_mode`` other than ``'zeros'``.
    """
    with context("sd.from_torch"):
        try:
            import torch  # the real PyTorch (an absolute import)
        except ImportError as err:
            raise SymdeconvError(f"PyTorch is not installed ({err}): pip install torch") from None
        nn = torch.nn
        classes = {nn.Conv1d: (Conv, 1), nn.Conv2d: (Conv, 2), nn.Conv3d: (Conv, 3),
                   nn.ConvTranspose1d: (ConvTranspose, 1), nn.ConvTranspose2d: (ConvTranspose, 2),
                   nn.ConvTranspose3d: (ConvTranspose, 3)}
        base = next((cls for cls in classes if isinstance(module, cls)), None)
        if base is None:
            raise SymdeconvError(
                f"module must be a torch.nn.Conv1d/2d/3d or ConvTranspose1d/2d/3d, got {type(module).__name__}"
            )
        name = type(module).__name__
        if isinstance(module, nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
            raise SymdeconvError(f"{name} has uninitialised parameters: run one forward pass first")
        for method in ("forward", "_conv_forward"):
            if getattr(type(module), method, None) is not getattr(base, method, None):
                raise SymdeconvError(
                    f"{name} overrides {base.__name__}.{method}: its output need not be a {base.__name__}'s"
                )
        kind, n = classes[base]
        params = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=module.groups,
                      in_channels=module.in_channels, out_channels=module.out_channels,
                      padding_mode=module.padding_mode, ndim=n)
        if kind is ConvTranspose:
            params["output_padding"] = module.output_padding
        layer = kind(tuple(module.kernel_size), **params)
        weight = _numpy(module.weight, "weight")
        bias = None if module.bias is None else _numpy(module.bias, "bias")
        return layer, weight, bias


def _numpy(param: Any, name: str) -> Any:
    """A parameter as a NumPy copy: float64 stays, other floating dtypes become float32 (exact widening)."""
    t = param.detach().cpu()
    if not t.is_floating_point():
        raise SymdeconvError(f"{name} has dtype {t.dtype}: compiled layers compute in float32 or float64")
    if str(t.dtype) != "torch.float64":
        t = t.float()
    return t.numpy().copy()
