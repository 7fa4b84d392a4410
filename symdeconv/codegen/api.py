"""``sd.emit`` and ``sd.compile``: from an operator chain or a layer to source text and to a callable.

>>> import numpy as np, symdeconv as sd
>>> f = sd.compile(sd.conv((1, 2, 1)) @ sd.up(2))          # doctest: +SKIP
>>> f(np.array([1.0, 10.0]))                               # doctest: +SKIP
array([ 1.,  2., 11., 20., 10.])

Chains: ``f(x)`` (or ``f(x, w)`` when the taps are symbolic, ``w`` the symbol values in the order of
``f.symbols``, or a ``{symbol: value}`` mapping) acts on the last ``ndim`` axes of ``x`` — preceded by
a channel axis when the operator has more than one input or output channel — every leading axis being
batch.  The output is the operator's natural output window (the rows of ``op.matrix(n)``).

Layers (anything with the layer contract: ``.operator``, ``.window(shape)``, ``.weight_symbols()``,
``.groups``, ``.data_layout``): ``f(x, weight, bias=None)`` with ``x`` of shape ``(N, C_in, *spatial)``
(or channels-last, as the layer says) and ``weight`` in the framework's own layout.

Importing this module does not import Numba; compiling does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..algebra.operators import Box, Operator, as_operator
from ..canonical.normalform import NormalForm, canonical
from ..errors import SymdeconvError, context
from . import cache
from .emit_cpu import emit_cpu
from .emit_cuda import emit_cuda
from .plan import KernelPlan, natural_key, plan_chain, plan_grouped

__all__ = ["emit", "compile", "plan", "CompiledChain", "CompiledLayer", "TARGETS", "is_layer", "LayerBinding"]

TARGETS = ("cpu", "cuda")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_EMITTERS = {"cpu": emit_cpu, "cuda": emit_cuda}


def _target(target: Any) -> str:
    if not isinstance(target, str) or target not in TARGETS:
        raise SymdeconvError(f"target must be one of {TARGETS}, got {target!r}")
    return target


def is_layer(obj: Any) -> bool:
    """Does ``obj`` follow the layer contract (a layer object, not a bare operator)?"""
    if isinstance(obj, (Operator, NormalForm)):
        return False
    cls = type(obj)  # look at the class: a layer's ``operator`` property may raise for size-dependent padding
    return (
        hasattr(cls, "operator")
        and callable(getattr(obj, "window", None))
        and callable(getattr(obj, "weight_symbols", None))
    )


# ==================================================================================================
# Layers: the grouped plan and the weight gather
# ==================================================================================================


class LayerBinding:
    """How a layer's framework weight becomes the kernel's ``w[slot, c_out, c_in_in_group]``.

    Built from the normal form of ``layer.operator``: every tap coefficient is ``const · symbol`` with
    ``symbol`` one entry of ``layer.weight_symbols()``.  The taps of each phase (union over all channel
    pairs) become the plan's slots; ``index[s, c', c]`` is the flat index of the weight entry feeding
    slot ``s`` for channels ``(c', c)`` of a group and ``scale[s, c', c]`` its numeric factor (``0`` where
    that channel pair has no such tap).  ``w = weight.reshape(-1)[index] * scale``.
    """

    def __init__(self, layer: Any, name: str | None = None):
        self.layer = layer
        self.ndim = int(layer.ndim)
        self.c_in, self.c_out, self.groups = int(layer.in_channels), int(layer.out_channels), int(layer.groups)
        if self.groups < 1 or self.c_in % self.groups or self.c_out % self.groups:
            raise SymdeconvError(
                f"layer: groups={self.groups} must divide in_channels={self.c_in} and out_channels={self.c_out}"
            )
        self.cin_g, self.cout_g = self.c_in // self.groups, self.c_out // self.groups
        self.weight_shape = tuple(int(v) for v in layer.weight_shape)
        self.layout = getattr(layer, "data_layout", "channels_first")
        if self.layout not in ("channels_first", "channels_last"):
            raise SymdeconvError(f"layer.data_layout must be 'channels_first' or 'channels_last', got {self.layout!r}")
        symbols = np.asarray(layer.weight_symbols(), dtype=object)
        if symbols.shape != self.weight_shape:
            raise SymdeconvError(
                f"layer.weight_symbols() has shape {symbols.shape} but layer.weight_shape is {self.weight_shape}"
            )
        flat_of: dict[sp.Symbol, int] = {}
        for flat, sym in enumerate(symbols.reshape(-1)):
            if isinstance(sym, sp.Symbol):
                flat_of[sym] = flat
        nf = canonical(layer.operator)
        if (nf.ndim, nf.c_in, nf.c_out) != (self.ndim, self.c_in, self.c_out):
            raise SymdeconvError("layer.operator does not match the layer's ndim / channel counts")
        self.form = nf
        entries: dict[tuple, list[tuple[int, int, int, float]]] = {}  # (phase, offset) -> [(co, cil, flat, c)]
        example: dict[tuple, sp.Expr] = {}
        for (p, co), row in nf.taps.items():
            g = co // self.cout_g
            for (ci, off), coeff in row.items():
                if not g * self.cin_g <= ci < (g + 1) * self.cin_g:
                    raise SymdeconvError(
                        f"layer.operator: output channel {co} reads input channel {ci} outside its group {g}"
                    )
                const, sym = coeff.as_coeff_Mul()
                if sym not in flat_of:
                    raise SymdeconvError(
                        f"layer.operator: tap coefficient {coeff} is not a number times one weight symbol"
                    )
                entries.setdefault((p, off), []).append((co, ci - g * self.cin_g, flat_of[sym], float(const)))
                if (co, ci - g * self.cin_g) == (0, 0):
                    example[(p, off)] = coeff
        slots_by_phase: dict[tuple, list] = {}
        for p, off in entries:
            slots_by_phase.setdefault(p, []).append(off)
        rate = ", ".join(f"{a}/{b}" for a, b in zip(nf.L, nf.M))
        periods = f"period {', '.join(map(str, nf.P))} (outputs) / {', '.join(map(str, nf.Q))} (inputs)"
        description = [
            f"rate {rate}, {periods} — for each channel pair (c', c) of a group; shown for c' = 0, c = 0,",
            "with w[s] the weight of slot s (gathered from the layer's weight per channel pair):",
        ]
        self.plan = plan_grouped(
            self.ndim, nf.P, nf.Q, slots_by_phase, name or _layer_name(layer), description
        )
        self.index = np.zeros((self.plan.n_slots, self.c_out, self.cin_g), dtype=np.intp)
        self.scale = np.zeros((self.plan.n_slots, self.c_out, self.cin_g), dtype=np.float64)
        lines = []
        for ph in self.plan.phases:
            terms = []
            for s, off in ph.slots:
                for co, cil, flat, const in entries[(ph.phase, off)]:
                    self.index[s, co, cil] = flat
                    self.scale[s, co, cil] = const
                pos = ", ".join(_pos_text(nf.Q[d], off[d], d, self.ndim) for d in range(self.ndim))
                coeff = example.get((ph.phase, off))
                terms.append(f"w[{s}]·x[{pos}]" + (f" (w[{s}] = {coeff})" if coeff is not None else ""))
            out = ", ".join(_pos_text(nf.P[d], ph.phase[d], d, self.ndim) for d in range(self.ndim))
            lines.append(f"  y[{out}] = " + (" + ".join(terms) if terms else "0"))
        self.plan = dataclasses.replace(self.plan, description=tuple(description + lines))

    def gather(self, weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """The kernel's weight array ``w[slot, c', c]`` from the framework weight."""
        w = weight.reshape(-1)[self.index] * self.scale
        return np.ascontiguousarray(w, dtype=dtype)


def _pos_text(scale: int, offset: int, d: int, ndim: int) -> str:
    m = "m" if ndim == 1 else f"m{d + 1}"
    term = m if scale == 1 else f"{scale}{m}"
    return term if offset == 0 else (f"{term} + {offset}" if offset > 0 else f"{term} − {-offset}")


def _layer_name(layer: Any) -> str:
    kind = "conv_transpose" if getattr(layer, "transposed", False) else "conv"
    parts = [f"{kind}{layer.ndim}d", getattr(layer, "convention", "")]
    for attr, tag in (("kernel_size", "k"), ("stride", "s"), ("dilation", "d")):
        value = getattr(layer, attr, None)
        if value is not None:
            value = tuple(value)
            parts.append(tag + "x".join(map(str, value)))
    return "_".join(p for p in parts if p)


# ==================================================================================================
# emit / plan
# ==================================================================================================


def plan(obj: Any, name: str | None = None) -> KernelPlan:
    """The kernel plan of a layer (grouped) or of an operator chain / normal form (explicit taps)."""
    if is_layer(obj):
        return LayerBinding(obj, name).plan
    return plan_chain(obj, name)


def emit(obj: Any, target: str = "cpu", name: str | None = None) -> str:
    """The source text of the kernel module for ``obj`` (a layer, an operator chain or a normal form).

    The text is deterministic — the same structure always gives byte-identical source — and starts
    with a header naming the normal form it was generated from.
    """
    with context("sd.emit"):
        target = _target(target)
        return _EMITTERS[target](plan(obj, name))


def emit_plan(p: KernelPlan, target: str, title: str | None = None) -> str:
    """The source of the kernel module of a plan; ``title`` adds a descriptive line to the header."""
    return _EMITTERS[_target(target)](p, title)


# ==================================================================================================
# compile
# ==================================================================================================

def _check_x(x: Any, where: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise SymdeconvError(f"{where} must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in DTYPES:
        raise SymdeconvError(f"{where} must have dtype float32 or float64, got {x.dtype}")
    if not x.flags.c_contiguous:
        raise SymdeconvError(
            f"{where} must be C-contiguous (got a strided view); pass np.ascontiguousarray({where})"
        )
    return x


def _load(p: KernelPlan, target: str, path: Any = None):
    """Emit, store in the cache and import; or, given ``path`` (e.g. a file of ``generated/``), import that."""
    if path is not None:
        from pathlib import Path

        path = Path(path)
        return path.read_text(), path, cache.load_module(path)
    source = emit_plan(p, target)
    path = cache.store(source, p.name, p.key(target), target)
    return source, path, cache.load_module(path)


class _Compiled:
    target: str
    plan: KernelPlan
    source: str
    path: Any
    module: Any

    def _launch(self, x: np.ndarray, y_shape: tuple[int, ...], *args: Any) -> np.ndarray:
        return self._run(self.module, x, y_shape, *args)

    def _run(self, module: Any, x: np.ndarray, y_shape: tuple[int, ...], *args: Any) -> np.ndarray:
        """Run a kernel module: ``args`` are the arrays and integers after ``x, y`` in its signature."""
        if self.target == "cpu":
            y = np.empty(y_shape, dtype=x.dtype)
            module.run(x, y, *args)
            return y
        from numba import cuda

        device_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        d_y = cuda.device_array(y_shape, dtype=x.dtype)
        module.launch(cuda.to_device(x), d_y, *device_args)
        return d_y.copy_to_host()

    def __repr__(self) -> str:
        return f"<symdeconv compiled {self.plan.kind} kernel {self.plan.name!r} ({self.target}) at {self.path}>"


class CompiledChain(_Compiled):
    """A compiled operator chain: ``f(x)`` or ``f(x, w)`` (symbolic taps)."""

    def __init__(self, obj: Any, target: str, name: str | None = None, path: Any = None):
        self.target = target
        if isinstance(obj, NormalForm):
            self.op, self.form = None, obj
        else:
            self.op = as_operator(obj, "obj")
            self.form = canonical(self.op)
        self.plan = plan_chain(self.form, name or "chain")
        self.symbols = tuple(sorted(_symbols_of(self.form), key=lambda s: natural_key(s.name)))
        self.source, self.path, self.module = _load(self.plan, target, path)
        self.multichannel = self.form.c_in != 1 or self.form.c_out != 1

    def window(self, n: tuple[int, ...]) -> Box:
        """The output window (operator positions per dimension) for an input of shape ``n``."""
        in_box = tuple((0, v) for v in n)
        if self.op is not None:
            return self.op.out_box(in_box)
        return _support_box(self.form, in_box)

    def _weights(self, w: Any, dtype: np.dtype) -> np.ndarray:
        if not self.symbols:
            if w is not None:
                raise SymdeconvError("w: this chain has numeric taps only; call f(x) without weights")
            return self.module.coefficients(np.zeros(0, dtype=dtype))
        if w is None:
            names = ", ".join(s.name for s in self.symbols)
            raise SymdeconvError(f"w: this chain has symbolic taps; call f(x, w) with values for ({names})")
        if isinstance(w, Mapping):
            values = []
            by_name = {(k.name if isinstance(k, sp.Symbol) else k): v for k, v in w.items()}
            unknown = set(by_name) - {s.name for s in self.symbols}
            if unknown:
                raise SymdeconvError(f"w: unknown symbol(s) {sorted(unknown)}; the chain's symbols are {self.symbols}")
            for s in self.symbols:
                if s.name not in by_name:
                    raise SymdeconvError(f"w: no value for symbol {s.name}")
                values.append(by_name[s.name])
            w = values
        arr = np.asarray(w)
        if arr.shape != (len(self.symbols),) or arr.dtype.kind not in "fiu":
            raise SymdeconvError(
                f"w must be {len(self.symbols)} real numbers, the values of {tuple(s.name for s in self.symbols)}, "
                f"got shape {arr.shape} dtype {arr.dtype}"
            )
        return np.ascontiguousarray(self.module.coefficients(arr.astype(dtype)), dtype=dtype)

    def __call__(self, x: Any, w: Any = None) -> np.ndarray:
        with context("compiled kernel"):
            x = _check_x(x)
            D = self.form.ndim
            need = D + (1 if self.multichannel else 0)
            if x.ndim < need:
                layout = "(..., C, *spatial)" if self.multichannel else "(..., *spatial)"
                raise SymdeconvError(
                    f"x must have at least {need} axes {layout} for this {D}-D operator, got shape {x.shape}"
                )
            spatial = x.shape[x.ndim - D:]
            if any(v < 1 for v in spatial):
                raise SymdeconvError(f"x must have at least one sample per spatial axis, got shape {x.shape}")
            if self.multichannel:
                if x.shape[-D - 1] != self.form.c_in:
                    raise SymdeconvError(
                        f"x has {x.shape[-D - 1]} channels (axis {-D - 1}) but the operator expects {self.form.c_in}"
                    )
                lead = x.shape[: x.ndim - D - 1]
            else:
                lead = x.shape[: x.ndim - D]
            c = self._weights(w, x.dtype)
            batch = int(np.prod(lead, dtype=np.int64))
            x3 = x.reshape((batch, self.form.c_in) + spatial)
            box = self.window(spatial)
            out = tuple(hi - lo for lo, hi in box)
            y = self._launch(x3, (batch, self.form.c_out) + out, c, *(lo for lo, _ in box))
            if self.multichannel:
                return y.reshape(lead + (self.form.c_out,) + out)
            return y.reshape(lead + out)


class CompiledLayer(_Compiled):
    """A compiled layer: ``f(x, weight, bias=None)`` in the layer's layout and weight layout.

    A layer whose padding depends on the input size (TensorFlow / JAX ``"SAME"`` with a stride) has one
    operator per input size: its kernel is planned per size on first use, through ``layer.bind(shape)``.
    """

    def __init__(self, layer: Any, target: str, name: str | None = None, path: Any = None):
        self.target = target
        self.layer = layer
        self.name = name
        self._per_shape: dict[tuple[int, ...], tuple] = {}
        try:
            layer.operator
        except SymdeconvError:
            if path is not None:
                raise
            self.binding = None  # planned per input shape
            self.plan = self.source = self.path = self.module = None
            return
        self.binding = LayerBinding(layer, name)
        self.plan = self.binding.plan
        self.source, self.path, self.module = _load(self.plan, target, path)

    def _for_shape(self, shape: tuple[int, ...]):
        if self.binding is not None:
            return self.binding, self.module
        if shape not in self._per_shape:
            binding = LayerBinding(self.layer.bind(shape), self.name)
            _, _, module = _load(binding.plan, self.target)
            self._per_shape[shape] = (binding, module)
        return self._per_shape[shape]

    def __call__(self, x: Any, weight: Any, bias: Any = None) -> np.ndarray:
        with context("compiled layer"):
            layer = self.layer
            D = int(layer.ndim)
            c_in, c_out = int(layer.in_channels), int(layer.out_channels)
            x = _check_x(x)
            if x.ndim not in (D + 1, D + 2):
                raise SymdeconvError(
                    f"x must have shape (N, C, *spatial) or (C, *spatial) with {D} spatial axes, got {x.shape}"
                )
            unbatched = x.ndim == D + 1
            xb = x[None] if unbatched else x
            last = getattr(layer, "data_layout", "channels_first") == "channels_last"
            channels = xb.shape[-1] if last else xb.shape[1]
            if channels != c_in:
                raise SymdeconvError(f"x has {channels} channels but the layer has in_channels={c_in}")
            spatial = tuple(int(v) for v in (xb.shape[1:-1] if last else xb.shape[2:]))
            if any(v < 1 for v in spatial):
                raise SymdeconvError(f"x must have at least one sample per spatial axis, got shape {x.shape}")
            weight = _check_x(weight, "weight")
            if weight.shape != tuple(layer.weight_shape):
                raise SymdeconvError(f"weight must have shape {tuple(layer.weight_shape)}, got {weight.shape}")
            if weight.dtype != x.dtype:
                raise SymdeconvError(f"weight has dtype {weight.dtype} but x has {x.dtype}; they must match")
            if bias is None:
                b = np.zeros(c_out, dtype=x.dtype)
            else:
                b = _check_x(bias, "bias")
                if b.shape != (c_out,):
                    raise SymdeconvError(f"bias must have shape ({c_out},), got {b.shape}")
                if b.dtype != x.dtype:
                    raise SymdeconvError(f"bias has dtype {b.dtype} but x has {x.dtype}; they must match")
            box = tuple(layer.window(spatial))  # raises SymdeconvError when the input is too small
            out = tuple(int(hi) - int(lo) for lo, hi in box)
            binding, module = self._for_shape(spatial)
            xc = np.ascontiguousarray(np.moveaxis(xb, -1, 1)) if last else xb
            y = self._run(module, xc, (xc.shape[0], c_out) + out, binding.gather(weight, x.dtype), b,
                          binding.groups, *(int(lo) for lo, _ in box))
            if last:
                y = np.ascontiguousarray(np.moveaxis(y, 1, -1))
            return y[0] if unbatched else y


def compile(  # noqa: A001 - the public name is sd.compile
    obj: Any, target: str = "cpu", name: str | None = None, path: Any = None
) -> CompiledChain | CompiledLayer:
    """Emit, cache and load the kernel of ``obj``; return a callable (see the module docstring).

    The source is written to the kernel cache (:mod:`symdeconv.codegen.cache`) under a hash of its
    plan, so Numba's ``cache=True`` keeps the compiled code for the next process.  Kernels are compiled
    by Numba on first call, once per dtype (float32 / float64).  ``path`` loads an already emitted
    module instead (a file of the ``generated/`` catalogue), wrapped with the same argument checks.
    """
    with context("sd.compile"):
        target = _target(target)
        if is_layer(obj):
            return CompiledLayer(obj, target, name, path)
        if not isinstance(obj, NormalForm):
            as_operator(obj, "obj")
        return CompiledChain(obj, target, name, path)


# --- helpers ----------------------------------------------------------------------------------------


def _symbols_of(nf: NormalForm) -> set[sp.Symbol]:
    out: set[sp.Symbol] = set()
    for row in nf.taps.values():
        for coeff in row.values():
            out |= coeff.free_symbols
    return out


def _support_box(nf: NormalForm, in_box: Box) -> Box:
    """Output positions a normal form can make non-zero from inputs in ``in_box`` (hull, per dimension)."""
    out = []
    for d, (lo, hi) in enumerate(in_box):
        first = last = None
        for (p, _), row in nf.taps.items():
            for (_, off) in row:
                j_lo = -((off[d] - lo) // nf.Q[d])
                j_hi = -((off[d] - hi) // nf.Q[d])
                if j_hi <= j_lo:
                    continue
                a, b = nf.P[d] * j_lo + p[d], nf.P[d] * (j_hi - 1) + p[d] + 1
                first = a if first is None else min(first, a)
                last = b if last is None else max(last, b)
        if first is None:
            first = last = 0
        out.append((first, last))
    return tuple(out)
