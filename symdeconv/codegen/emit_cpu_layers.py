"""CPU emitter for *grouped* (deep-learning layer) plans: a small module over the shared runtime.

The normal form of a layer says, per output phase ``p`` and for every channel pair ``(c', c)`` of a
group, ``y[c', P j + p] = Σ_s w[s, c, c'] · x[c, Q j + off_s]``: per phase, the layer is an ordinary
(un-strided, un-dilated) convolution of the input with the phase's taps — the *sub-pixel* form of a
transposed convolution [Shi et al. 2016], the *space-to-depth* form of a strided one.

The emitted module holds that statement as data — a :class:`~symdeconv.codegen.layer_plan.LayerPlan`
literal: the periods and, per phase, its tap offsets, each commented with the normal form's terms —
and a ``run`` driver.  The loops live in :mod:`symdeconv.codegen.rt_layers`, compiled by Numba once
per machine and dtype and shared by every layer (a new layer costs no compilation there), and run by
:mod:`symdeconv.codegen.rt_driver` (from their native object files, without Numba, where the machine has them):

1. per block of work, the input band it reads is copied into zero-padded *flattened planes* (one per
   input phase ``r = off mod Q``): every tap becomes a unit-stride read at a constant offset;
2. a ``CO_BLOCK × TILE`` register tile (sized from the machine's vector registers) gathers a phase's
   taps over the group's input channels, like a GEMM micro-kernel;
3. the phases of the last dimension are written interleaved into the output rows.

:func:`~symdeconv.codegen.layer_plan.choose_strategy` picks the path of a call (its docstring gives the
rules).  Besides the GEMM-like kernel, the runtime has the Winograd F(3, 2) path of
:mod:`symdeconv.codegen.rt_wino` for 3-D layers with paired taps (``LayerPlan.wino_tables``); the one
kernel emitted with the module, where the plan allows it, is the *stencil* of
:mod:`symdeconv.codegen.emit_cpu_stencil` for one input and one output channel per group in 1-D and
2-D (Numba is imported and compiles it on its first call only: :mod:`symdeconv.codegen.lazyjit`).

Every multiplication is by a real kernel tap, every output element is written by exactly one work
item (no atomics: deterministic).  Accumulation is in the data's dtype, as PyTorch/oneDNN do, with
``fastmath={"contract"}`` only (multiply-adds may fuse; no reassociation).
"""

from __future__ import annotations

from ._source import Writer, dims, emit_layer_plan, header, module_docstring, tuple_text
from .emit_cpu_stencil import emit_cpu_stencil, has_stencil
from .layer_plan import LayerPlan
from .plan import KernelPlan

__all__ = ["emit_cpu_layers", "layer_plan"]


def layer_plan(plan: KernelPlan) -> LayerPlan:
    """The typed plan of a grouped kernel plan, with the special paths its structure allows."""
    paths = ["gemm"]
    if has_stencil(plan):
        paths.append("stencil")
    if LayerPlan.from_kernel_plan(plan).wino_tables() is not None:
        paths.append("winograd")
    return LayerPlan.from_kernel_plan(plan, tuple(paths))


def emit_cpu_layers(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of a grouped plan (deterministic)."""
    lp = layer_plan(plan)
    w = Writer()
    for line in header(plan, "cpu", title) + module_docstring(plan, "cpu"):
        w(line)
    w()
    w("from symdeconv.codegen import rt_driver")
    if "stencil" in lp.paths:  # Numba is imported when the stencil first runs, not with the module
        w("from symdeconv.codegen.lazyjit import njit, rt")
    w("from symdeconv.codegen.layer_plan import LayerPlan, Phase" + (", choose_strategy" if len(lp.paths) > 1 else ""))
    w()
    w(f"N_SLOTS = {plan.n_slots}")
    w()
    emit_layer_plan(plan, lp, w)
    w()
    w()
    _emit_run(plan, lp, w)
    if "stencil" in lp.paths:  # one input and one output channel per group: emit_cpu_stencil's path
        w()
        w()
        emit_cpu_stencil(plan, w)
    return w.text()


def _emit_run(plan: KernelPlan, lp: LayerPlan, w: Writer) -> None:
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    los = tuple_text(f"lo{d}" for d in dims(plan))
    w(f"def run(x, y, w, bias, groups, {lo}, work=None):")
    with w.indent():
        w('"""Write the layer on ``x`` into ``y``; ``work`` (a dict) keeps geometry and scratch between calls.')
        w()
        w("The path (GEMM-like runtime kernel, stencil or Winograd) is chosen from the plan, the channels per")
        w("group and the machine by ``choose_strategy``.  Returns what ``rt_driver.run_layer`` returns (a replay")
        w("of the call for arrays of the same shapes), or None.")
        w('"""')
        if len(lp.paths) > 1:
            w("path = choose_strategy(PLAN, x.shape[1] // groups, y.shape[1] // groups).path")
            if "stencil" in lp.paths:
                w('if path == "stencil":  # (the first calls run on the shared runtime: rt_driver.RUNTIME_CALLS)')
                w(f"    return rt_driver.run_stencil(PLAN, stencil_range, STENCIL_WORK, x, y, w, bias, groups, {los}, work)")
            if "winograd" in lp.paths:
                w('if path == "winograd":')
                w(f"    return rt_driver.run_wino(PLAN, x, y, w, bias, groups, {los}, work)")
        w(f"return rt_driver.run_layer(PLAN, x, y, w, bias, groups, {los}, work)")
