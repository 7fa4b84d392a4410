"""CPU emitter: a kernel plan → Python source of a ``numba.njit(parallel=True, cache=True)`` kernel.

The kernel is a polyphase *gather*: for each output phase ``p`` (one block of source per phase, its tap
offsets constants), for each block ``j`` whose output ``P j + p`` lies in the requested window, it sums
the phase's taps ``coefficient · x[Q j + offset]``.  Every output element is written by exactly one
iteration (no scatter, no atomics: deterministic), and no multiplication is by an inserted zero.

One ``prange`` loop splits the work over (batch × blocks ``j0`` of the first dimension) for chains and
over (batch × output channels × blocks) for grouped layer kernels; inside a block, each phase of the
first dimension writes its output row, looping over the later dimensions' blocks of every phase.  (A
single parallel loop keeps Numba's compile time low: each ``prange`` costs about a second.)  Bounds are
tested by per-dimension flags, computed once per block and tap offset where they are loop-invariant;
a tap is added only where its input lies inside ``x``.

Accumulation is in float64 (then stored in ``y``'s dtype), as ``scipy.signal`` does; the performance
work of issue 5 (row blocking, several output channels per pass) plugs in per phase without changing
this contract.
"""

from __future__ import annotations

from ._source import (
    Writer, axis_flags, chain_phase_body, coefficients_function, dims, grouped_phase_body, header, module_docstring,
    phase_banner, phase_text, plus, times,
)
from .emit_cpu_layers import emit_cpu_layers
from .plan import KernelPlan

__all__ = ["emit_cpu"]


def _block_range(plan: KernelPlan, ph, d: int) -> tuple[str, str]:
    """``first{d}``, ``stop{d}``: blocks ``j`` with ``lo ≤ P j + p < lo + out`` (ceil divisions)."""
    P, p = plan.P[d], ph.phase[d]
    first = f"-(({plus(f'-lo{d}', p)}) // {P})" if P != 1 else f"lo{d}"
    stop = f"-(({plus(f'-lo{d} - out{d}', p)}) // {P})" if P != 1 else f"lo{d} + out{d}"
    return first, stop


def emit_cpu(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of ``plan`` (deterministic: same plan, same text).

    Grouped (layer) plans get the blocked kernels of :mod:`symdeconv.codegen.emit_cpu_layers`.
    """
    if plan.kind == "grouped":
        return emit_cpu_layers(plan, title)
    w = Writer()
    for line in header(plan, "cpu", title) + module_docstring(plan, "cpu"):
        w(line)
    w()
    w("import numba")
    w("import numpy as np")
    w("from numba import prange")
    w()
    w(f"NDIM = {plan.ndim}")
    w(f"P = {plan.P}  # output period (phases) per dimension")
    w(f"Q = {plan.Q}  # input period per dimension")
    if plan.kind == "chain":
        w(f"C_IN, C_OUT = {plan.c_in}, {plan.c_out}")
        w(f"SYMBOLS = {plan.symbols!r}")
    else:
        w(f"N_SLOTS = {plan.n_slots}")
    w()
    w()
    if plan.kind == "chain":
        coefficients_function(plan, w)
        w()
        w()
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    args = f"x, y, c, {lo}" if plan.kind == "chain" else f"x, y, w, bias, groups, {lo}"
    P0 = plan.P[0]
    if plan.kind == "chain":
        block_args = f"x, y, c, b, j0, {lo}"
    else:
        block_args = f"x, y, w, bias, cin_g, cout_g, b, co, j0, {lo}"
    w("@numba.njit(cache=True)")
    w(f"def block({block_args}):")
    with w.indent():
        what = "every output channel" if plan.kind == "chain" else "output channel co"
        w(f'"""The output rows of block j0 (one per phase of the first dimension) of {what}, batch entry b."""')
        for d in dims(plan):
            w(f"n{d} = x.shape[{d + 2}]")
            w(f"out{d} = y.shape[{d + 2}]")
        if plan.kind == "grouped":
            w("ci0 = (co // cout_g) * cin_g  # first input channel of co's group")
        w(f"base0 = {times(plan.Q[0], 'j0')}")
        for p0 in range(P0):
            group = [ph for ph in plan.phases if ph.phase[0] == p0]
            w()
            w(f"# output row t0 = {plus(times(P0, 'j0'), p0)} - lo0: phase{'s' if len(group) > 1 else ''} "
              + ", ".join(phase_text(ph.phase) for ph in group))
            w(f"t0 = {plus(times(P0, 'j0'), p0)} - lo0")
            w("if t0 >= 0 and t0 < out0:")
            with w.indent():
                for ph in group:
                    _phase_block(plan, ph, w)
    w()
    w()
    w("@numba.njit(parallel=True, cache=True)")
    w(f"def kernel({args}):")
    with w.indent():
        w('"""Polyphase gather: one parallel iteration per (batch, [channel,] block j0 of P0 output rows)."""')
        w("batch = x.shape[0]")
        w("out0 = y.shape[2]")
        w(f"# blocks j0 whose outputs {times(P0, 'j0')} + p0 (0 <= p0 < {P0}) meet the window [lo0, lo0 + out0)")
        w(f"block0 = lo0 // {P0}" if P0 != 1 else "block0 = lo0")
        w(f"blocks = -((-lo0 - out0) // {P0}) - block0" if P0 != 1 else "blocks = out0")
        if plan.kind == "chain":
            w("for item in prange(batch * blocks):")
            with w.indent():
                w("b = item // blocks")
                w(f"block({block_args.replace('j0', 'block0 + item - b * blocks')})")
        else:
            w("c_out = y.shape[1]")
            w("cin_g = x.shape[1] // groups  # input channels per group")
            w("cout_g = c_out // groups  # output channels per group")
            w("for item in prange(batch * c_out * blocks):")
            with w.indent():
                w("b = item // (c_out * blocks)")
                w("rest = item - b * (c_out * blocks)")
                w("co = rest // blocks")
                w(f"block({block_args.replace('j0', 'block0 + rest - co * blocks')})")
    w()
    w()
    w(f"def run({args}):")
    with w.indent():
        w('"""Run the kernel (inputs already validated and laid out as documented above)."""')
        w(f"kernel({args})")
    return w.text()


def _phase_block(plan: KernelPlan, ph, w: Writer) -> None:
    """Loops over the later dimensions' blocks of one phase, then the phase's taps."""
    w(f"# {phase_banner(plan, ph)}")
    axis_flags(plan, ph, 0, w)
    opened = 0
    for d in range(1, plan.ndim):
        first, stop = _block_range(plan, ph, d)
        w(f"for j{d} in range({first}, {stop}):")
        w.indent()
        opened += 1
        w(f"t{d} = {plus(times(plan.P[d], f'j{d}'), ph.phase[d])} - lo{d}")
        w(f"base{d} = {times(plan.Q[d], f'j{d}')}")
        axis_flags(plan, ph, d, w)
    if plan.kind == "chain":
        chain_phase_body(plan, ph, w)
    else:
        grouped_phase_body(plan, ph, w)
    for _ in range(opened):
        w.dedent()
