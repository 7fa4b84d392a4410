"""CUDA emitter: a kernel plan → Python source of a ``numba.cuda.jit(cache=True)`` kernel + launcher.

One thread per output element: the grid's x axis runs along the last output dimension (adjacent
threads write adjacent outputs: coalesced stores), its y axis over the flattened (batch, [output
channel,] leading output dimensions), with a grid-stride loop so any size fits the grid limits.  Each
thread finds its block ``j = ⌊(lo + t) / P⌋`` and phase ``p = lo + t − P j`` per dimension, then runs
that phase's taps, whose offsets are constants in the source.  Each output is written by exactly one
thread: no atomics, deterministic results (unlike the default scatter-add of cuDNN's transposed
convolution).

``launch(...)`` picks the grid (32 × 8 threads per block) and accepts device arrays or host NumPy
arrays (Numba copies the latter).  Accumulation is in float64, as in the CPU kernel.
"""

from __future__ import annotations

from ._source import (
    Writer, axis_flags, chain_phase_body, coefficients_function, dims, grouped_phase_body, header, module_docstring,
    phase_banner, times,
)
from .plan import KernelPlan

__all__ = ["emit_cuda", "THREADS"]

#: threads per block along (last output dimension, flattened rows)
THREADS = (32, 8)


def _phase_test(plan: KernelPlan, phase: tuple[int, ...]) -> str:
    tests = [f"p{d} == {phase[d]}" for d in dims(plan) if plan.P[d] != 1]
    return " and ".join(tests) if tests else "True"


def emit_cuda(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CUDA kernel module of ``plan`` (deterministic: same plan, same text)."""
    w = Writer()
    D = plan.ndim
    last = D - 1
    for line in header(plan, "cuda", title) + module_docstring(plan, "cuda"):
        w(line)
    w()
    w("import math")
    w()
    w("import numpy as np")
    w("from numba import cuda")
    w()
    w(f"NDIM = {plan.ndim}")
    w(f"P = {plan.P}  # output period (phases) per dimension")
    w(f"Q = {plan.Q}  # input period per dimension")
    w(f"THREADS = {THREADS}  # threads per block: (last output dimension, flattened rows)")
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
    w("@cuda.jit(cache=True)")
    w(f"def kernel({args}):")
    with w.indent():
        w('"""One thread per output element (grid-stride over rows); see the phase comments."""')
        w(f"t{last}, first_row = cuda.grid(2)")
        w(f"out{last} = y.shape[{last + 2}]")
        w(f"if t{last} >= out{last}:")
        w("    return  # this thread lies past the last output column of the grid")
        for d in dims(plan):
            w(f"n{d} = x.shape[{d + 2}]")
        for d in range(last):
            w(f"out{d} = y.shape[{d + 2}]")
        w("rows = y.shape[0] * y.shape[1]" if plan.kind == "grouped" else "rows = y.shape[0]")
        for d in range(last):
            w(f"rows *= out{d}")
        if plan.kind == "grouped":
            w("c_out = y.shape[1]")
            w("cin_g = x.shape[1] // groups  # input channels per group")
            w("cout_g = c_out // groups  # output channels per group")
        w("for row in range(first_row, rows, cuda.gridsize(2)[1]):")
        with w.indent():
            w("rest = row")
            for d in reversed(range(last)):
                w(f"t{d} = rest % out{d}")
                w(f"rest //= out{d}")
            if plan.kind == "grouped":
                w("co = rest % c_out")
                w("b = rest // c_out")
                w("ci0 = (co // cout_g) * cin_g  # first input channel of co's group")
            else:
                w("b = rest")
            for d in dims(plan):
                w(f"j{d} = (lo{d} + t{d}) // {plan.P[d]}" if plan.P[d] != 1 else f"j{d} = lo{d} + t{d}")
                if plan.P[d] != 1:
                    w(f"p{d} = lo{d} + t{d} - {plan.P[d]} * j{d}")
                w(f"base{d} = {times(plan.Q[d], f'j{d}')}")
            body = chain_phase_body if plan.kind == "chain" else grouped_phase_body
            if len(plan.phases) == 1:
                ph = plan.phases[0]
                w(f"# {phase_banner(plan, ph)}")
                for d in dims(plan):
                    axis_flags(plan, ph, d, w)
                body(plan, ph, w)
            else:
                for k, ph in enumerate(plan.phases):
                    if k == len(plan.phases) - 1:
                        w(f"else:  # {phase_banner(plan, ph)}")
                    else:
                        keyword = "if" if k == 0 else "elif"
                        w(f"{keyword} {_phase_test(plan, ph.phase)}:  # {phase_banner(plan, ph)}")
                    with w.indent():
                        for d in dims(plan):
                            axis_flags(plan, ph, d, w)
                        body(plan, ph, w)
    w()
    w()
    w(f"def launch({args}):")
    with w.indent():
        w('"""Launch one thread per output element: blocks of THREADS, enough to cover the output."""')
        w(f"columns = y.shape[{last + 2}]")
        w("rows = y.shape[0] * y.shape[1]" if plan.kind == "grouped" else "rows = y.shape[0]")
        for d in range(last):
            w(f"rows *= y.shape[{d + 2}]")
        w("if columns == 0 or rows == 0:")
        w("    return")
        w("blocks = (math.ceil(columns / THREADS[0]), min(math.ceil(rows / THREADS[1]), 65535))")
        w(f"kernel[blocks, THREADS]({args})")
    w()
    w()
    w("run = launch")
    return w.text()
