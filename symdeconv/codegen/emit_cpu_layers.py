"""CPU emitter for *grouped* (deep-learning layer) plans: a small module over the shared runtime.

The normal form of a layer says, per output phase ``p`` and for every channel pair ``(c', c)`` of a
group, ``y[c', P j + p] = Σ_s w[s, c, c'] · x[c, Q j + off_s]``: per phase, the layer is an ordinary
(un-strided, un-dilated) convolution of the input with the phase's taps — the *sub-pixel* form of a
transposed convolution [Shi et al. 2016], the *space-to-depth* form of a strided one.

The emitted module holds that statement as data — a :class:`~symdeconv.codegen.layer_plan.LayerPlan`
literal: the periods and, per phase, its tap offsets, each commented with the normal form's terms —
and a ``run`` driver.  The loops live in :mod:`symdeconv.codegen.rt_layers`, compiled by Numba once
per machine and dtype and shared by every layer (a new layer costs no compilation there):

1. per block of work, the input band it reads is copied into zero-padded *flattened planes* (one per
   input phase ``r = off mod Q``): every tap becomes a unit-stride read at a constant offset;
2. a ``CO_BLOCK × TILE`` register tile (sized from the machine's vector registers) gathers a phase's
   taps over the group's input channels, like a GEMM micro-kernel;
3. the phases of the last dimension are written interleaved into the output rows.

Two specialised paths are emitted with the module where the plan's structure allows them, and
:func:`~symdeconv.codegen.layer_plan.choose_strategy` picks one per call (its docstring gives the
rules): the *stencil* of :mod:`symdeconv.codegen.emit_cpu_stencil` for one input and one output
channel per group, and the Winograd F(3, 2) path of :mod:`symdeconv.codegen.emit_cpu_wino` for 3-D
layers with paired taps.  Numba compiles them on their first call only.

Every multiplication is by a real kernel tap, every output element is written by exactly one work
item (no atomics: deterministic).  Accumulation is in the data's dtype, as PyTorch/oneDNN do, with
``fastmath={"contract"}`` only (multiply-adds may fuse; no reassociation).
"""

from __future__ import annotations

from ._source import Writer, dims, header, module_docstring, phase_text, plus, tuple_text
from .emit_cpu_stencil import emit_cpu_stencil, has_stencil
from .emit_cpu_wino import emit_wino, wino_geometry, wino_streams
from .layer_plan import LayerPlan
from .machine import CO_BLOCK
from .plan import KernelPlan

__all__ = ["emit_cpu_layers", "layer_geometry", "layer_plan", "TILE_SHAPE", "VEC"]

#: accumulator lengths of the Winograd path are rounded up to a multiple of VEC elements: its vectorised
#: loops then never end in a scalar remainder loop.
VEC = 64

#: the Winograd path's register tile (output channels, columns): CO_BLOCK × 64 float32 accumulators are
#: 16 AVX-512 registers.
TILE_SHAPE = (CO_BLOCK, 64)


def layer_plan(plan: KernelPlan) -> LayerPlan:
    """The typed plan of a grouped kernel plan, with the special paths its structure allows."""
    paths = ["gemm"]
    if has_stencil(plan):
        paths.append("stencil")
    if wino_geometry(plan, layer_geometry(plan)) is not None:
        paths.append("winograd")
    return LayerPlan.from_kernel_plan(plan, tuple(paths))


def layer_geometry(plan: KernelPlan) -> dict:
    """Per-slot input plane and block shift of a grouped plan (the Winograd emitter's view of the plan)."""
    lp = LayerPlan.from_kernel_plan(plan)
    _, plane, shift = lp.tables()
    return {
        "e_min": lp.e_min, "e_span": lp.e_span, "n_planes": lp.n_planes,
        "plane": {s: int(plane[s]) for s in range(lp.n_slots)},
        "shift": {s: tuple(int(v) for v in shift[s]) for s in range(lp.n_slots)},
        "co_block": TILE_SHAPE[0], "tile": TILE_SHAPE[1], "max_taps": lp.max_taps,
    }


def emit_cpu_layers(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of a grouped plan (deterministic)."""
    lp = layer_plan(plan)
    geo = layer_geometry(plan)
    wg = wino_geometry(plan, geo) if "winograd" in lp.paths else None
    special = len(lp.paths) > 1
    D = plan.ndim
    w = Writer()
    for line in header(plan, "cpu", title) + module_docstring(plan, "cpu"):
        w(line)
    w()
    if special:
        w("import numba")
        w("import numpy as np")
        w("from numba import prange")
        w()
    w("from symdeconv.codegen import rt_layers")
    w("from symdeconv.codegen.layer_plan import LayerPlan, Phase, choose_strategy")
    if wg is not None:
        names = ["stack_tile"]
        if wino_streams(plan):  # the Winograd path streams the whole lines of large outputs
            names = ["LINE_BYTES", "line_head", "stack_tile", "store_fence", "stream_line" if plan.P[D - 1] == 1 else "stream_pair"]
        w(f"from symdeconv.codegen.runtime import {', '.join(names)}")
        w("from symdeconv.codegen.rt_layers import acc_stride")
    w()
    w(f"N_SLOTS = {plan.n_slots}")
    if wg is not None:
        w(f"E_MIN = {tuple_text(lp.e_min)}  # smallest tap block offset floor(offset / Q), per dimension")
        w(f"E_SPAN = {tuple_text(lp.e_span)}  # largest minus smallest, per dimension")
        w(f"CO_BLOCK = {TILE_SHAPE[0]}  # output channels per register tile")
        w(f"VEC = {VEC}  # accumulator lengths are multiples of VEC (no scalar remainder loop)")
        w(f"TILE = {TILE_SHAPE[1]}  # columns of the register tile (a divisor of VEC)")
    w()
    _emit_plan(plan, lp, w)
    w()
    w()
    _emit_run(plan, lp, w)
    if wg is not None:  # two consecutive taps per phase along every leading dimension: emit_cpu_wino's path
        w()
        w()
        emit_wino(plan, geo, wg, w)
    if "stencil" in lp.paths:  # one input and one output channel per group: emit_cpu_stencil's path
        w()
        w()
        emit_cpu_stencil(plan, w)
    return w.text()


def _emit_plan(plan: KernelPlan, lp: LayerPlan, w: Writer) -> None:
    """``PLAN = LayerPlan(...)``: per phase its tap offsets, commented with the normal form's terms."""
    w("# The normal form as data: per output phase p, the offsets of its taps, y[P j + p] = Σ w[s]·x[Q j + offset]")
    w("# (weight slots s numbered phase by phase, in this order).")
    w("PLAN = LayerPlan(")
    with w.indent():
        w(f"P={tuple_text(lp.P)},")
        w(f"Q={tuple_text(lp.Q)},")
        w("phases=(")
        with w.indent():
            s = 0
            for ph in lp.phases:
                out = ", ".join(plus(f"{plan.P[d]}·j{d}" if plan.P[d] != 1 else f"j{d}", ph.phase[d]) for d in dims(plan))
                terms = []
                for off in ph.offsets:
                    pos = ", ".join(plus(f"{plan.Q[d]}·j{d}" if plan.Q[d] != 1 else f"j{d}", off[d]) for d in dims(plan))
                    terms.append(f"w[{s}]·x[{pos}]")
                    s += 1
                w(f"# y[{out}] = " + (" + ".join(terms) if terms else "bias only"))
                offsets = ", ".join(tuple_text(o) for o in ph.offsets)
                w(f"Phase({tuple_text(ph.phase)}, ({offsets}{',' if len(ph.offsets) == 1 else ''})),")
        w("),")
        w(f"paths={tuple_text(repr(v) for v in lp.paths)},")
    w(")")


def _emit_run(plan: KernelPlan, lp: LayerPlan, w: Writer) -> None:
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    los = tuple_text(f"lo{d}" for d in dims(plan))
    w(f"def run(x, y, w, bias, groups, {lo}, work=None):")
    with w.indent():
        w('"""Write the layer on ``x`` into ``y``; ``work`` (a dict) keeps geometry and scratch between calls.')
        w()
        w("The path (GEMM-like runtime kernel, stencil or Winograd) is chosen from the plan, the channels per")
        w("group and the machine by ``choose_strategy``.")
        w('"""')
        if len(lp.paths) > 1:
            w("path = choose_strategy(PLAN, x.shape[1] // groups, y.shape[1] // groups).path")
            if "stencil" in lp.paths:
                w('if path == "stencil":')
                w(f"    return stencil(x, y, w, bias, {lo})")
            if "winograd" in lp.paths:
                w('if path == "winograd":')
                w(f"    jlo, jhi, length = PLAN.blocks(y.shape[2:], {los})")
                w(f"    return wino_run(x, y, w, bias, groups, jlo, jhi, length, {los}, work)")
        w(f"rt_layers.run_layer(PLAN, x, y, w, bias, groups, {los}, work)")
