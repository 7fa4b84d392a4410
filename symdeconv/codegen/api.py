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
import threading
from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..algebra.operators import Box, Operator, as_operator, periodic_out_box
from ..canonical.normalform import NormalForm, canonical
from ..errors import SymdeconvError, context, in_context
from . import cache
from ._alloc import output_empty
from ._source import PLAN_KEY_LABEL
from .emit_cpu import emit_cpu
from .emit_cuda import emit_cuda
from .plan import KernelPlan, natural_key, plan_chain, plan_grouped

__all__ = ["emit", "compile", "plan", "CompiledChain", "CompiledLayer", "TARGETS", "is_layer", "LayerBinding"]

TARGETS = ("cpu", "cuda")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: weights of at most this many entries are remembered by their bytes (see CompiledLayer._gathered): comparing
#: 256 KiB of bytes takes ~20 µs, gathering them into the kernels' layout several times that
WEIGHT_MEMO_MAX = 1 << 16
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
    """How a layer's framework weight becomes the kernel's ``w[slot, c_in_in_group, c_out]``.

    Every tap coefficient of the layer's normal form is ``const · symbol`` with ``symbol`` one entry of
    ``layer.weight_symbols()``, and every channel pair ``(c', c)`` of a group has the same spatial tap
    pattern.  So the plan is made from a **one-channel stand-in** of the layer (same kernel size,
    stride, padding, dilation and convention; ``in_channels = out_channels = groups = 1``): its normal
    form gives the phases' slots and, per slot, the spatial kernel tap ``j`` and constant it comes from.
    The channel pairs are then filled in from the layer's own weight-index → (c', c, j) map, without
    the normal form of the full multi-channel operator (whose cost grows with C_in · C_out: seconds at
    32 → 32 channels).  ``index[s, c', c]`` is the flat index of the weight entry feeding slot ``s`` for
    channels ``(c', c)`` of a group and ``scale[s, c', c]`` its numeric factor; the kernel's array is
    ``(weight.reshape(-1)[index] * scale).transpose(0, 2, 1)``: output channels innermost, so that a
    micro-kernel reads the weights of consecutive output channels from consecutive addresses.
    ``from_normal_form=True`` derives everything from the full normal form instead (the definition; the
    tests check both agree).
    """

    def __init__(self, layer: Any, name: str | None = None, from_normal_form: bool = False):
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
        stand_in = None if from_normal_form else _stand_in(layer)
        if stand_in is None:
            entries, example, nf = self._entries_from_normal_form(layer)
        else:
            entries, example, nf = self._entries_from_stand_in(layer, stand_in)
        self.P, self.Q = nf.P, nf.Q
        slots_by_phase: dict[tuple, list] = {}
        for p, off in entries:
            slots_by_phase.setdefault(p, []).append(off)
        rate = ", ".join(f"{a}/{b}" for a, b in zip(nf.L, nf.M))
        periods = f"period {', '.join(map(str, nf.P))} (outputs) / {', '.join(map(str, nf.Q))} (inputs)"
        description = [
            f"rate {rate}, {periods};",
            "for each channel pair (c', c) of a group, shown for c' = 0, c = 0, with w[s] the weight of slot s",
            "(gathered from the layer's weight per channel pair):",
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
        if stand_in is not None:
            self._fill_from_stand_in()
        self._strided = self._strided_gather()

    def _fill_from_stand_in(self) -> None:
        """index / scale for every channel pair: the stand-in's slots of each weight entry's spatial tap."""
        slots_of, (co, cil, taps) = self._fill
        slot = {(ph.phase, off): s for ph in self.plan.phases for s, off in ph.slots}
        flat = np.arange(co.size)
        kernel = tuple(int(v) for v in taps.max(axis=0) + 1) if taps.size else ()
        tap_flat = np.ravel_multi_index(tuple(taps.T), kernel) if taps.size else flat
        for j, targets in slots_of.items():
            hit = tap_flat == np.ravel_multi_index(j, kernel)
            for key, const in targets:
                self.index[slot[key], co[hit], cil[hit]] = flat[hit]
                self.scale[slot[key], co[hit], cil[hit]] = const
        del self._fill

    # --- the two derivations of the slot entries --------------------------------------------------------
    def _flat_of(self, layer: Any) -> dict[sp.Symbol, int]:
        symbols = np.asarray(layer.weight_symbols(), dtype=object)
        if symbols.shape != tuple(int(v) for v in layer.weight_shape):
            raise SymdeconvError(
                f"layer.weight_symbols() has shape {symbols.shape} but layer.weight_shape is {tuple(layer.weight_shape)}"
            )
        return {sym: flat for flat, sym in enumerate(symbols.reshape(-1)) if isinstance(sym, sp.Symbol)}

    def _taps_of(self, layer: Any, nf: NormalForm, flat_of: dict[sp.Symbol, int]):
        """(phase, offset) → [(c', c − g·C_in/G, flat weight index, const)] from a normal form."""
        cout_g, cin_g = int(layer.out_channels) // int(layer.groups), int(layer.in_channels) // int(layer.groups)
        entries: dict[tuple, list[tuple[int, int, int, float]]] = {}
        example: dict[tuple, sp.Expr] = {}
        for (p, co), row in nf.taps.items():
            g = co // cout_g
            for (ci, off), coeff in row.items():
                if not g * cin_g <= ci < (g + 1) * cin_g:
                    raise SymdeconvError(
                        f"layer.operator: output channel {co} reads input channel {ci} outside its group {g}"
                    )
                const, sym = coeff.as_coeff_Mul()
                if sym not in flat_of:
                    raise SymdeconvError(
                        f"layer.operator: tap coefficient {coeff} is not a number times one weight symbol"
                    )
                entries.setdefault((p, off), []).append((co, ci - g * cin_g, flat_of[sym], float(const)))
                if (co, ci - g * cin_g) == (0, 0):
                    example[(p, off)] = coeff
        return entries, example

    def _entries_from_normal_form(self, layer: Any):
        nf = canonical(layer.operator)
        if (nf.ndim, nf.c_in, nf.c_out) != (self.ndim, self.c_in, self.c_out):
            raise SymdeconvError("layer.operator does not match the layer's ndim / channel counts")
        entries, example = self._taps_of(layer, nf, self._flat_of(layer))
        return entries, example, nf

    def _entries_from_stand_in(self, layer: Any, stand_in: Any):
        nf = canonical(stand_in.operator)
        if (nf.ndim, nf.c_in, nf.c_out) != (self.ndim, 1, 1):
            raise SymdeconvError("layer.operator does not match the layer's ndim / channel counts")
        one, example = self._taps_of(stand_in, nf, self._flat_of(stand_in))
        # the stand-in's weight entry → its spatial tap j; j → the slots (phase, offset) it feeds
        tap_of = {flat: j for flat, (_, _, _, j) in enumerate(stand_in._taps())}
        slots_of: dict[tuple, list[tuple[tuple, float]]] = {}
        for key, items in one.items():
            for _, _, flat, const in items:
                slots_of.setdefault(tap_of[flat], []).append((key, const))
        self._fill = (slots_of, _weight_map(layer))
        entries = {key: [] for key in one}  # filled in vectorised form by _fill_from_stand_in
        return entries, example, nf

    # --- the weight gather -------------------------------------------------------------------------------
    def _strided_gather(self):
        """Per slot, is the gather a strided view of the weight (one scale per slot)?

        For every layer of the three conventions it is: ``index[s, g·C_out/G + o, c] = base_s + g·S_g +
        o·S_o + c·S_c``.  Then the gather is ``n_slots`` strided copies (fast), not a fancy-index of
        n_slots · C_out · C_in/G entries.  Returns ``(base, scale, strides)`` or ``None``.
        """
        if self.index.size == 0:
            return None
        base = self.index[:, :1, :1]
        pattern = self.index - base
        scale = self.scale[:, 0, 0]
        if not (pattern == pattern[:1]).all() or not (self.scale == scale[:, None, None]).all():
            return None
        p = pattern[0].reshape(self.groups, self.cout_g, self.cin_g)
        strides = tuple(int(p[(slice(None),) * a + (1,)].flat[0]) if p.shape[a] > 1 else 0 for a in range(3))
        g, o, c = np.ogrid[: self.groups, : self.cout_g, : self.cin_g]
        if not (p == g * strides[0] + o * strides[1] + c * strides[2]).all():
            return None
        return np.ascontiguousarray(base.reshape(-1), dtype=np.int64), scale, strides

    def gather(self, weight: np.ndarray, dtype: np.dtype, out: np.ndarray | None = None,
               calls: dict | None = None) -> np.ndarray:
        """The kernel's weight array ``w[slot, c, c']`` from the framework weight (into ``out`` if given;
        ``calls``: where the runtime keeps its prepared call between gathers)."""
        shape = (self.plan.n_slots, self.cin_g, self.c_out)
        if out is None or out.shape != shape or out.dtype != dtype:
            out = np.empty(shape, dtype=dtype)
        flat = np.ascontiguousarray(weight, dtype=dtype).reshape(-1)
        if self._strided is None:
            index = self.index.transpose(0, 2, 1)
            np.multiply(flat[index], self.scale.transpose(0, 2, 1), out=out, casting="unsafe")
            return out
        from .rt_driver import gather_strided

        base, scale, strides = self._strided
        gather_strided(flat, base, scale.astype(dtype), *strides, self.cout_g, out, calls)
        return out


def _weight_map(layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every flat weight index: (output channel c', input channel within its group, spatial tap j).

    Vectorised form of ``layer._taps()`` (the layer's own map from weight entries to taps).
    """
    sizes = layer._component_sizes()
    comp: dict[str, np.ndarray] = {}
    for axis, v in zip(layer._axes, np.indices(layer.weight_shape).reshape(len(layer.weight_shape), -1)):
        v = v.copy()
        for c in reversed(axis):
            comp[c] = v % sizes[c]
            v //= sizes[c]
    zero = np.zeros_like(comp["CO"])
    g = comp.get("G", zero)
    j = np.stack([comp[f"K{d}"] for d in range(layer.ndim)], axis=1)
    if layer._flip:
        j = np.asarray(layer.kernel_size)[None, :] - 1 - j
    return g * sizes["CO"] + comp["CO"], comp["CI"], j


def _stand_in(layer: Any) -> Any:
    """The layer with one input and one output channel (same spatial structure), or ``None``."""
    needed = ("_replace", "_taps", "_axes", "_component_sizes", "_flip", "kernel_size")
    if not all(hasattr(layer, attr) for attr in needed):
        return None
    if int(layer.in_channels) == 1 and int(layer.out_channels) == 1:
        return layer
    return layer._replace(in_channels=1, out_channels=1, groups=1)


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

def _cpu_output(y_shape: tuple[int, ...], dtype: np.dtype, out: np.ndarray | None) -> np.ndarray:
    """The array a CPU kernel writes: ``out`` (validated) in the kernel's shape, else a new one — a large new
    output starts on a 64-byte line, so that its rows can be written as whole lines (``runtime.py``)."""
    if out is None:
        return output_empty(y_shape, dtype)
    return out if out.shape == y_shape else out.reshape(y_shape)


def _copied_output(y: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``y`` in a new output (a large one from the pool, as ``_cpu_output``'s)."""
    copy = output_empty(y.shape, y.dtype)
    np.copyto(copy, y)
    return copy


def _check_x(x: Any, where: str = "x", like: np.dtype | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float32 / float64 NumPy array.

    Arrays keep their dtype (float32 or float64, else refused: no silent change of precision); strided
    views are copied.  Python scalars, lists and other array-likes are taken as NumPy takes them and,
    holding no dtype of their own, converted to ``like`` (the input's dtype, for weights and biases) or,
    for integers and booleans, to float64.
    """
    if not isinstance(x, np.ndarray):
        if is_device_array(x):
            raise SymdeconvError(f"{where} is a device array; this function takes host (NumPy) arrays here")
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:  # e.g. ragged nested lists
            raise SymdeconvError(f"{where} must be a NumPy array or array-like of numbers, got "
                                 f"{type(x).__name__} ({err})") from None
        if arr.dtype.kind == "f" and arr.dtype not in DTYPES:  # (float16, long double: as for arrays)
            raise _dtype_error(arr.dtype, where)
        if arr.dtype.kind in "biuf":
            arr = arr.astype(like if like is not None else (arr.dtype if arr.dtype in DTYPES else np.float64))
        elif arr.dtype.kind == "O":
            raise SymdeconvError(f"{where} must be a NumPy array or array-like of numbers, got {type(x).__name__} "
                                 "whose values NumPy holds only as Python objects (e.g. integers beyond 64 bits)")
        elif arr.dtype.kind != "c":
            raise SymdeconvError(f"{where} must be a NumPy array or array-like of numbers, got {type(x).__name__}")
        x = arr
    if x.dtype not in DTYPES:
        raise _dtype_error(x.dtype, where)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)  # a strided view: the kernels read unit-stride rows
    return x


def _dtype_error(dtype: Any, where: str) -> SymdeconvError:
    """The refusal of an array, host or device, whose dtype is not one of ``DTYPES`` (float32, float64)."""
    return SymdeconvError(f"{where} must have dtype float32 or float64, got {dtype}")


def is_device_array(a: Any) -> bool:
    """An array in GPU memory: a Numba device array (also the simulator's), or anything with
    ``__cuda_array_interface__`` (CuPy, torch CUDA tensors) that is not a NumPy array."""
    return not isinstance(a, np.ndarray) and (
        getattr(a, "__cuda_ndarray__", False) or hasattr(a, "__cuda_array_interface__")
    )


def _device_view(a: Any, where: str):
    """``a`` as a Numba device array (no copy), checked like ``_check_x`` checks host arrays."""
    from numba import cuda

    try:
        d = a if getattr(a, "__cuda_ndarray__", False) else cuda.as_cuda_array(a)
    except Exception as err:  # noqa: BLE001 - any failure to view the memory is the caller's array
        raise SymdeconvError(f"{where}: cannot use this device array ({type(a).__name__}): {err}") from err
    if np.dtype(d.dtype) not in DTYPES:
        raise _dtype_error(d.dtype, where)
    if not d.is_c_contiguous():
        raise SymdeconvError(f"{where} must be C-contiguous (got a strided device view)")
    return d


def _check_out_fits(got_shape: tuple[int, ...], got_dtype: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """What ``out=`` must be on the host and on the device alike: exactly the output's shape and dtype."""
    if tuple(got_shape) != tuple(shape):
        raise SymdeconvError(f"out must have shape {tuple(shape)} (the output's), got {tuple(got_shape)}")
    if np.dtype(got_dtype) != dtype:
        raise SymdeconvError(f"out has dtype {got_dtype} but the output is {dtype}; they must match")


def _check_out_apart(overlaps: bool, inputs: str) -> None:
    """``out=`` must not share memory with ``inputs`` (the kernel reads them while it writes the output)."""
    if overlaps:
        raise SymdeconvError(f"out must not overlap {inputs} (the kernel is not in-place)")


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """Validate a preallocated output buffer: exactly ``shape`` and ``dtype``, C-contiguous, writeable,
    and not overlapping an input (the kernel reads its inputs while writing the output)."""
    if not isinstance(out, np.ndarray):
        raise SymdeconvError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        _check_out_fits(out.shape, out.dtype, shape, dtype)
    flags = out.flags
    if not flags.c_contiguous:
        raise SymdeconvError("out must be C-contiguous (got a strided view)")
    if not flags.writeable:
        raise SymdeconvError("out must be writeable")
    for a in inputs:  # (all C-contiguous: their bounds are their memory, so the bounds test is exact)
        _check_out_apart(np.may_share_memory(out, a), "the input or the weights")
    return out


def _load(p: KernelPlan, target: str, path: Any = None):
    """Emit, store in the cache and import; or, given ``path`` (e.g. a file of ``generated/``), import that."""
    if path is not None:
        from pathlib import Path

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SymdeconvError(f"path: cannot read {str(path)!r} ({err.__class__.__name__}: {err})") from None
        _check_plan_key(text, p, target, path)
        return text, path, cache.load_module(path)
    source = emit_plan(p, target)
    path = cache.store(source, p.name, p.key(target), target)
    return source, path, cache.load_module(path)


def _check_plan_key(text: str, p: KernelPlan, target: str, path: Any) -> None:
    """Refuse a file that was not emitted from ``p`` for ``target`` by this emitter version (read from its
    header, before anything of the file runs)."""
    want = p.structure_key(target)
    found = None
    for line in text.splitlines()[:200]:
        if line.startswith("# " + PLAN_KEY_LABEL):
            found = (line[len("# " + PLAN_KEY_LABEL):].split() or [""])[0]
            break
    if found != want:
        what = "has no plan key (not a module emitted by this version of symdeconv)" if found is None else (
            f"was emitted from another plan, target or emitter version (plan key {found}, this object's {want})")
        raise SymdeconvError(
            f"path: {str(path)!r} {what}; pass the file emitted for this object and target "
            f"(sd.emit(obj, {target!r}) or `symdeconv generate`), or drop path= to compile it"
        )


def _host_copy(a: Any, where: str) -> Any:
    """A device array's contents on the host (weights and biases are gathered there); others unchanged."""
    return _device_view(a, where).copy_to_host() if is_device_array(a) else a


def _device_span(a: Any) -> tuple[int, int] | None:
    """The byte range ``[start, stop)`` a device array's data occupies (``None``: no address, e.g. the
    simulator's arrays)."""
    if not hasattr(a, "__cuda_array_interface__"):
        return None
    start = int(a.__cuda_array_interface__["data"][0])
    return start, start + int(np.prod(a.shape, dtype=np.int64)) * np.dtype(a.dtype).itemsize


def _check_device_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, x: Any = None):
    """``out`` for a device input: a C-contiguous device array of exactly ``shape`` and ``dtype``, not
    overlapping ``x`` (the kernel reads its input while it writes the output)."""
    if not is_device_array(out):
        raise SymdeconvError(f"out must be a device array when x is one, got {type(out).__name__}")
    d = _device_view(out, "out")
    _check_out_fits(d.shape, d.dtype, shape, dtype)
    if x is not None:
        spans = _device_span(d), _device_span(x)
        overlap = None not in spans and spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
        _check_out_apart(d is x or out is x or overlap, "the input")
    return d


class _Compiled:
    target: str
    plan: KernelPlan
    source: str
    path: Any
    module: Any

    def _launch(self, x: np.ndarray, y_shape: tuple[int, ...], *args: Any, out: np.ndarray | None = None) -> np.ndarray:
        return self._run(self.module, x, y_shape, *args, out=out)

    def _run(
        self, module: Any, x: np.ndarray, y_shape: tuple[int, ...], *args: Any, out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Run a kernel module: ``args`` are the arrays and integers after ``x, y`` in its signature.

        ``out``: an already validated C-contiguous array of ``y_shape``'s size and ``x``'s dtype to write into.
        (A CPU layer module, which keeps scratch between calls, is run by ``CompiledLayer._apply`` itself.)
        """
        if self.target == "cpu":
            y = _cpu_output(y_shape, x.dtype, out)
            module.run(x, y, *args)
            return y
        from numba import cuda

        device_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        if is_device_array(x):  # the caller's data is on the device: so is the result, with no host copy
            d_y = out.reshape(y_shape) if out is not None else cuda.device_array(y_shape, dtype=x.dtype)
            module.launch(x, d_y, *device_args)
            return d_y
        d_y = cuda.device_array(y_shape, dtype=x.dtype)
        module.launch(cuda.to_device(x), d_y, *device_args)
        y = output_empty(y_shape, x.dtype) if out is None else out.reshape(y_shape)
        d_y.copy_to_host(y)
        return y

    def _scratches(self, module: Any) -> tuple[dict, dict]:
        """This thread's two dicts for ``module``: one in which the kernel keeps its scratch buffers between
        calls, one in which the API keeps its gathered weights and the replay of its last call."""
        local = self.__dict__.get("_local")
        if local is None:
            local = self.__dict__.setdefault("_local", threading.local())
        try:
            store = local.work
        except AttributeError:
            store = local.work = {}
        pair = store.get(id(module))
        if pair is None:
            pair = store[id(module)] = ({}, {})
        return pair

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

    def __call__(self, x: Any, w: Any = None, out: Any = None) -> np.ndarray:
        """Apply the chain; ``out`` (optional): a preallocated array of the output's shape and dtype,
        C-contiguous, written and returned (reuse it across calls to skip allocating the output).  Without
        it, a new host output of 1 MiB or more reuses the memory of an earlier output that no array refers to
        any more (``symdeconv.codegen._alloc.OutputPool``)."""
        with context("compiled kernel"):
            device = self.target == "cuda" and is_device_array(x)
            x = _device_view(x, "x") if device else _check_x(x)
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
            size = tuple(hi - lo for lo, hi in box)
            shape = lead + ((self.form.c_out,) if self.multichannel else ()) + size
            if out is not None:
                out = _check_device_out(out, shape, x.dtype, x) if device else _check_out(out, shape, x.dtype, (x,))
            y = self._launch(x3, (batch, self.form.c_out) + size, c, *(lo for lo, _ in box), out=out)
            return out if out is not None else y.reshape(shape)


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
        self._recipes: dict[tuple, _LayerRecipe] = {}
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

    def _recipe(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> _LayerRecipe:
        """Validate the shapes and dtypes of a call and work out everything that depends only on them."""
        layer = self.layer
        D = int(layer.ndim)
        c_in, c_out = int(layer.in_channels), int(layer.out_channels)
        if x.ndim not in (D + 1, D + 2):
            raise SymdeconvError(
                f"x must have shape (N, C, *spatial) or (C, *spatial) with {D} spatial axes, got {x.shape}"
            )
        unbatched = x.ndim == D + 1
        xb_shape = (1,) + x.shape if unbatched else x.shape
        last = getattr(layer, "data_layout", "channels_first") == "channels_last"
        channels = xb_shape[-1] if last else xb_shape[1]
        if channels != c_in:
            raise SymdeconvError(f"x has {channels} channels but the layer has in_channels={c_in}")
        spatial = tuple(int(v) for v in (xb_shape[1:-1] if last else xb_shape[2:]))
        if any(v < 1 for v in spatial):
            raise SymdeconvError(f"x must have at least one sample per spatial axis, got shape {x.shape}")
        if weight.shape != tuple(layer.weight_shape):
            raise SymdeconvError(f"weight must have shape {tuple(layer.weight_shape)}, got {weight.shape}")
        if weight.dtype != x.dtype:
            raise SymdeconvError(f"weight has dtype {weight.dtype} but x has {x.dtype}; they must match")
        if bias is not None:
            if bias.shape != (c_out,):
                raise SymdeconvError(f"bias must have shape ({c_out},), got {bias.shape}")
            if bias.dtype != x.dtype:
                raise SymdeconvError(f"bias has dtype {bias.dtype} but x has {x.dtype}; they must match")
        box = tuple(layer.window(spatial))  # raises SymdeconvError when the input is too small
        size = tuple(int(hi) - int(lo) for lo, hi in box)
        n = xb_shape[0]
        shape = ((n,) if not unbatched else ()) + ((size + (c_out,)) if last else ((c_out,) + size))
        binding, module = self._for_shape(spatial)
        return _LayerRecipe(
            unbatched, last, (n, c_out) + size, shape, tuple(int(lo) for lo, _ in box), binding, module,
            np.zeros(c_out, dtype=x.dtype),
        )

    def __call__(self, x: Any, weight: Any, bias: Any = None, out: Any = None) -> np.ndarray:
        """Apply the layer; ``out`` (optional): a preallocated array of the output's shape (in the layer's
        layout) and dtype, C-contiguous, written and returned.  Without it, a new host output of 1 MiB or more
        reuses the memory of an earlier output that no array refers to any more (so a loop ``y = f(x, w)``
        does not page-fault a fresh output every call: ``symdeconv.codegen._alloc.OutputPool``).

        The checks and the bookkeeping that depend only on the shapes and dtypes of the arguments run
        once per combination (a :class:`_LayerRecipe`, cached); a call with the shapes of an earlier one
        only checks the arrays themselves (type, contiguity, overlap) before it gathers the weight and
        runs the kernel.
        """
        try:
            return self._apply(x, weight, bias, out)
        except SymdeconvError as err:  # (not ``with context(…)``: no generator on this hot path)
            raise in_context(err, "compiled layer")

    def _apply(self, x: Any, weight: Any, bias: Any, out: Any) -> np.ndarray:
        device = self.target == "cuda" and is_device_array(x)
        if device:  # x on the device: the weights are gathered on the host (small), the result stays there
            x = _device_view(x, "x")
            weight = _host_copy(weight, "weight")
            bias = None if bias is None else _host_copy(bias, "bias")
            if getattr(self.layer, "data_layout", "channels_first") == "channels_last":
                raise SymdeconvError("x: a channels-last layer takes host arrays (NumPy); device arrays must be "
                                     "channels first")
        else:
            x = _check_x(x)
        weight = _check_x(weight, "weight", x.dtype)
        b = None if bias is None else _check_x(bias, "bias", x.dtype)
        # after _check_x every dtype is native float32 or float64, told apart by its one-letter code
        key = (x.shape, x.dtype.char, weight.shape, weight.dtype.char, None if b is None else (b.shape, b.dtype.char))
        recipe = self._recipes.get(key)
        if recipe is None:
            recipe = self._recipe(x, weight, b)
            if len(self._recipes) >= 64:  # a bounded cache: forget the oldest combination
                self._recipes.pop(next(iter(self._recipes)))
            self._recipes[key] = recipe
        if b is None:
            b = recipe.zero_bias
        if out is not None:
            out = (_check_device_out(out, recipe.shape, x.dtype, x) if device
                   else _check_out(out, recipe.shape, x.dtype, (x, weight) + (() if bias is None else (b,))))
        xb = x.reshape((1,) + tuple(x.shape)) if recipe.unbatched else x
        xc = np.ascontiguousarray(np.moveaxis(xb, -1, 1)) if recipe.last else xb
        binding, module = recipe.binding, recipe.module
        direct = out is not None and not recipe.last
        if self.target == "cpu":
            # the gathered weight is remembered in a dict of its own: kernels clear theirs when shapes change
            scratch, weights = self._scratches(module)
            w = self._gathered(binding, weight, weights)
            y = _cpu_output(recipe.y_shape, x.dtype, out if direct else None)
            # this thread's replay of its last call of the module, if the call had this recipe's shapes
            replay = weights.get("replay")
            if replay is None or replay[0] is not recipe or not replay[1](xc, y, w, b):
                again = module.run(xc, y, w, b, binding.groups, *recipe.lo, work=scratch)
                weights["replay"] = None if again is None else (recipe, again)
        else:  # (CUDA kernels keep no scratch)
            w = self._gathered(binding, weight, None)
            y = self._run(module, xc, recipe.y_shape, w, b, binding.groups, *recipe.lo, out=out if direct else None)
        if recipe.last:
            y = np.moveaxis(y, 1, -1)
            if out is not None:
                np.copyto(out.reshape(out.shape if not recipe.unbatched else (1,) + out.shape), y)
                return out
            if not y.flags.c_contiguous:  # (the layout's copy: a new output too)
                y = _copied_output(y)
        if out is not None:
            return out
        return y[0] if recipe.unbatched else y

    def _gathered(self, binding: LayerBinding, weight: np.ndarray, scratch: dict | None) -> np.ndarray:
        """The kernel's weight array for ``weight``: gathered into the buffer kept in ``scratch`` (if any).

        A weight of at most ``WEIGHT_MEMO_MAX`` entries is remembered by its bytes: a call whose weight has
        the same bytes, dtype and binding as the last one reuses the gathered array (the gather is a
        function of exactly those) — for small calls, where the gather costs as much as the layer.
        """
        if scratch is None:
            return binding.gather(weight, weight.dtype)
        memo = (binding, weight.dtype, weight.tobytes()) if weight.size <= WEIGHT_MEMO_MAX else None
        if memo is not None and scratch.get("weight_memo") == memo:  # (a binding equals only itself)
            return scratch["weights"]
        w = binding.gather(weight, weight.dtype, scratch.get("weights"), scratch.setdefault("calls", {}))
        scratch["weights"] = w
        scratch["weight_memo"] = memo
        return w


@dataclasses.dataclass(frozen=True)
class _LayerRecipe:
    """What a call of a :class:`CompiledLayer` needs that depends only on its arguments' shapes and dtypes."""

    unbatched: bool  # x has no batch axis (and neither has the result)
    last: bool  # channels-last layout: x is moved to channels-first for the kernel, the result back
    y_shape: tuple[int, ...]  # the kernel's output, (N, C_out, *size)
    shape: tuple[int, ...]  # the result's shape in the layer's layout
    lo: tuple[int, ...]  # the window's first operator output position per dimension
    binding: Any  # the LayerBinding (weight gather) of the input's spatial shape
    module: Any  # the kernel module
    zero_bias: np.ndarray  # the bias when none is given (the kernels never write their bias)


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
        require_numba(target)
        if is_layer(obj):
            return CompiledLayer(obj, target, name, path)
        if not isinstance(obj, NormalForm):
            as_operator(obj, "obj")
        return CompiledChain(obj, target, name, path)


# --- helpers ----------------------------------------------------------------------------------------


def require_numba(target: str = "cpu") -> None:
    """A ``SymdeconvError`` naming the extra to install when Numba (or numba-cuda for CUDA) is missing."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        raise SymdeconvError("compiled kernels need Numba: pip install 'symdeconv[codegen]'")
    if target == "cuda" and importlib.util.find_spec("numba.cuda") is None:
        raise SymdeconvError("target='cuda' needs numba-cuda: pip install 'symdeconv[codegen]'")


def _symbols_of(nf: NormalForm) -> set[sp.Symbol]:
    out: set[sp.Symbol] = set()
    for row in nf.taps.values():
        for coeff in row.values():
            out |= coeff.free_symbols
    return out


def _support_box(nf: NormalForm, in_box: Box) -> Box:
    """Output positions a normal form can make non-zero from inputs in ``in_box`` (hull, per dimension)."""
    return periodic_out_box(nf.P, nf.Q, nf.taps, in_box)
