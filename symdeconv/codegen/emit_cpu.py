"""CPU emitter: a kernel plan → Python source of a ``numba.njit(parallel=True, cache=True)`` kernel.

The kernel is a polyphase *gather*: for each output phase ``p`` (one block of source per phase, its tap
offsets constants), for each block ``j`` whose output ``P j + p`` lies in the requested window, it sums
the phase's taps ``coefficient · x[Q j + offset]``.  Every output element is written by exactly one
iteration (no scatter, no atomics: deterministic), and no multiplication is by an inserted zero.

Work is split with ``prange`` over (batch × rows of the first spatial dimension) for chains and over
(batch × output channels × rows) for grouped layer kernels.  Bounds checks happen only at the border:
an output whose taps all read inside ``x`` takes the unchecked branch (the test compares the block
against the phase's constant offset range).

Accumulation is in float64 (then stored in ``y``'s dtype), as ``scipy.signal`` does; the performance
work of issue 5 (row blocking, several output channels per pass) plugs in per phase without changing
this contract.
"""

from __future__ import annotations

from ._source import (
    Writer, chain_phase_body, coefficients_function, dims, grouped_phase_body, header, module_docstring,
    phase_banner, plus, times,
)
from .plan import KernelPlan

__all__ = ["emit_cpu"]


def _block_range(plan: KernelPlan, ph, d: int) -> tuple[str, str]:
    """``first{d}``, ``stop{d}``: blocks ``j`` with ``lo ≤ P j + p < lo + out`` (ceil divisions)."""
    P, p = plan.P[d], ph.phase[d]
    first = f"-(({plus(f'-lo{d}', p)}) // {P})" if P != 1 else f"lo{d}"
    stop = f"-(({plus(f'-lo{d} - out{d}', p)}) // {P})" if P != 1 else f"lo{d} + out{d}"
    return first, stop


def _position(plan: KernelPlan, ph, d: int, w: Writer) -> None:
    w(f"t{d} = {plus(times(plan.P[d], f'j{d}'), ph.phase[d])} - lo{d}")
    w(f"base{d} = {times(plan.Q[d], f'j{d}')}")


def emit_cpu(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of ``plan`` (deterministic: same plan, same text)."""
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
    w("@numba.njit(parallel=True, cache=True)")
    w(f"def kernel({args}):")
    with w.indent():
        w('"""Polyphase gather: every output is one phase\'s taps summed; see the phase comments."""')
        w("batch = x.shape[0]")
        for d in dims(plan):
            w(f"n{d} = x.shape[{d + 2}]")
            w(f"out{d} = y.shape[{d + 2}]")
        if plan.kind == "grouped":
            w("c_out = y.shape[1]")
            w("cin_g = x.shape[1] // groups  # input channels per group")
            w("cout_g = c_out // groups  # output channels per group")
        for ph in plan.phases:
            w()
            w(f"# --- {phase_banner(plan, ph)}")
            for d in dims(plan):
                first, stop = _block_range(plan, ph, d)
                w(f"first{d} = {first}")
                w(f"stop{d} = {stop}")
            w("rows = max(stop0 - first0, 0)")
            if plan.kind == "chain":
                w("for item in prange(batch * rows):")
                w.indent()
                w("b = item // rows")
                w("j0 = first0 + item - b * rows")
            else:
                w("for item in prange(batch * c_out * rows):")
                w.indent()
                w("b = item // (c_out * rows)")
                w("rest = item - b * (c_out * rows)")
                w("co = rest // rows")
                w("j0 = first0 + rest - co * rows")
                w("ci0 = (co // cout_g) * cin_g  # first input channel of co's group")
            _position(plan, ph, 0, w)
            opened = 1
            for d in range(1, plan.ndim):
                w(f"for j{d} in range(first{d}, stop{d}):")
                w.indent()
                opened += 1
                _position(plan, ph, d, w)
            if plan.kind == "chain":
                chain_phase_body(plan, ph, w)
            else:
                grouped_phase_body(plan, ph, w)
            for _ in range(opened):
                w.dedent()
    w()
    w()
    w(f"def run({args}):")
    with w.indent():
        w('"""Run the kernel (inputs already validated and laid out as documented above)."""')
        w(f"kernel({args})")
    return w.text()
