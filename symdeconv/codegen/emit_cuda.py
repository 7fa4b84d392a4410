"""CUDA emitter: a kernel plan → Python source of a ``numba.cuda.jit(cache=True)`` kernel + launcher.

Two strategies, chosen at generation time from the plan's structure (:func:`tile_layout`); the module
names its choice in ``STRATEGY``.  Both keep every multiplication a real kernel tap, write each output
from exactly one thread (no atomics: deterministic results, unlike the default scatter-add of cuDNN's
transposed convolution) and have the same ``launch`` signature.

**Tiled** (1-D and 2-D plans whose input tile fits in shared memory).  The normal form

    y[c', P j + p] = Σ a[p][c, off] · x[c, Q j + off]

says that the outputs of a *block* ``j`` (all phases ``p``) read only the inputs ``Q j + off`` with
``off`` between the smallest and largest tap offsets ``low ≤ off ≤ high`` of the plan.  A CUDA thread
block therefore owns a tile of ``TILE`` consecutive blocks ``j`` (each thread computes all phases of
one block, or of ``ROWS`` blocks stacked along dimension 0 in 2-D layer kernels), and

1. cooperatively stages the input tile ``x[Q J + low … Q (J + TILE − 1) + high]`` into
   ``cuda.shared.array`` of compile-time shape, zero-filled outside the input, so the tap loop has no
   bounds tests (layers stage ``CHANNELS`` input channels at a time, with their weights);
2. ``cuda.syncthreads()``, then each thread reads every distinct tap position of its block(s) once
   from shared memory and accumulates all phases, the phases' taps being constants in the source.
   With ``ROWS`` blocks per thread, the slot weights of a channel are read once into registers and
   serve every block, and the input rows shared by vertically adjacent blocks are read once —
   register blocking, as in a GEMM micro-kernel, so shared-memory loads do not bound the FMAs;
3. stages the ``P × TILE`` outputs in shared memory and stores them cooperatively, consecutive threads
   writing consecutive output columns (coalesced).  When the last dimension has one phase the threads'
   own outputs are already consecutive and are stored directly.

Layer (grouped) kernels — tiled and simple — accumulate in the data's dtype (float32 for float32
data, as cuDNN does: the running sum starts as the bias); chain kernels, whose numeric taps are
float64 literals, accumulate in float64.  A tiled module also holds ``kernel_simple``: ``launch``
sends a window with fewer than half a tile of blocks along the last dimension there, since most
threads of a tile would idle.

**Simple** (the fallback: 3-D plans, tiles too large for shared memory — huge halos or many channels
of a chain — or plans without taps).  One thread per output element: the grid's x axis runs along the
last output dimension (adjacent threads write adjacent outputs), its y axis over the flattened (batch,
[output channel,] leading output dimensions), with a grid-stride loop so any size fits the grid limits.
Each thread finds its block ``j = ⌊(lo + t) / P⌋`` and phase ``p`` per dimension and runs that phase's
taps, testing only the input positions that can fall outside ``x``.  A layer kernel starts its running
sum from the bias, in the data's dtype, and adds the taps one by one; a chain kernel accumulates in
float64.

``launch(...)`` picks the grid and accepts device arrays or host NumPy arrays (Numba copies the
latter).

**Layer modules read the typed plan.**  For a grouped plan everything emitted — periods, phases, tap
offsets, slot numbers, tap extents — comes from its :class:`~symdeconv.codegen.layer_plan.LayerPlan`
(:func:`layer_view`), the plan the CPU layer module is written from, and the module holds it as the
same ``PLAN = LayerPlan(...)`` literal (one comment per phase), so the normal form reads as data in
both targets.  Chain modules spell out their taps as before.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ._source import (
    Writer, axis_flags, chain_phase_body, coefficient, coefficients_function, dims, emit_layer_plan,
    assign_sum, grouped_phase_body, header, module_docstring, phase_banner, phase_text, plus, times,
)
from ..errors import SymdeconvError
from .layer_plan import LayerPlan
from .plan import KernelPlan, PhasePlan

__all__ = ["emit_cuda", "layer_view", "tile_layout", "TileLayout", "THREADS", "SHARED_LIMIT"]

#: threads per block of the simple kernel: (last output dimension, flattened rows)
THREADS = (32, 8)
#: blocks ``j`` per thread block of a tiled kernel, per dimension (dimension 0 first)
TILE = {1: (128,), 2: (8, 32)}
#: the same for 2-D layer kernels, whose threads compute ROWS blocks each along dimension 0
LAYER_TILE_2D = (16, 32)
#: blocks ``j`` per thread along dimension 0 in 2-D layer kernels: each weight read from shared memory
#: serves ROWS blocks, and vertically adjacent blocks share their input rows (register blocking)
ROWS = 4
#: static shared memory a tiled kernel may use, counted for float64 data (CUDA's static limit is 48 KiB)
SHARED_LIMIT = 40 * 1024
#: input channels a layer kernel stages per step: the largest of these whose tile fits
CHANNEL_STEPS = (8, 4, 2, 1)
#: more accumulators per thread than this spill registers: use the simple kernel
MAX_ACCUMULATORS = 64


# ==================================================================================================
# Layer plans: the typed plan the grouped code path reads
# ==================================================================================================


def layer_view(plan: KernelPlan) -> tuple[KernelPlan, LayerPlan]:
    """A grouped plan as the CUDA emitter reads it: its :class:`LayerPlan`, and the plan rebuilt from it.

    Periods, phases, tap offsets and slot numbers (phase by phase, in order) all come from the
    ``LayerPlan`` — the typed plan the CPU module is written from and that both modules print as their
    ``PLAN`` literal; the rebuilt :class:`KernelPlan` only gives them the shape the kernel writers
    (shared with chain plans) take.  ``LayerPlan.from_kernel_plan`` refuses slots numbered otherwise.
    """
    lp = LayerPlan.from_kernel_plan(plan)
    phases, first = [], 0
    for ph in lp.phases:
        phases.append(PhasePlan(ph.phase, slots=tuple(enumerate(ph.offsets, first))))
        first += len(ph.offsets)
    view = dataclasses.replace(plan, ndim=lp.ndim, P=lp.P, Q=lp.Q, phases=tuple(phases), n_slots=lp.n_slots)
    return view, lp


def _tap_offsets(plan: KernelPlan) -> list[tuple[int, ...]]:
    """Every tap offset of the plan (a grouped plan's from its ``LayerPlan``), with repeats."""
    if plan.kind == "grouped":
        return [off for ph in LayerPlan.from_kernel_plan(plan).phases for off in ph.offsets]
    return [off for ph in plan.phases for off in ph.offsets()]


# ==================================================================================================
# Choosing the strategy
# ==================================================================================================


@dataclass(frozen=True)
class TileLayout:
    """Geometry of a tiled kernel, all compile-time constants of the emitted source.

    Attributes
    ----------
    tile : blocks ``j`` per thread block along each dimension (one thread per block ``j``).
    low, high : smallest and largest tap offset per dimension, over all phases.
    channels : input channels staged per step (a chain stages all of its ``C_IN`` at once).
    rows : blocks ``j`` per thread along dimension 0 (``tile[0]`` is a multiple of it).
    """

    tile: tuple[int, ...]
    low: tuple[int, ...]
    high: tuple[int, ...]
    channels: int
    rows: int = 1

    @property
    def steps(self) -> tuple[int, ...]:
        """Threads per dimension (dimension 0 first): ``tile`` with dimension 0 divided by ``rows``."""
        return (self.tile[0] // self.rows,) + self.tile[1:]

    def span(self, plan: KernelPlan) -> tuple[int, ...]:
        """Shape of the staged input tile per dimension: ``Q (TILE − 1) + high − low + 1``."""
        return tuple(q * (t - 1) + hi - lo + 1 for q, t, lo, hi in zip(plan.Q, self.tile, self.low, self.high))

    def y_span(self, plan: KernelPlan) -> tuple[int, ...]:
        """Outputs of a tile per dimension: every phase of every block, ``P · TILE``."""
        return tuple(p * t for p, t in zip(plan.P, self.tile))

    def staged(self, plan: KernelPlan) -> bool:
        """Outputs go through shared memory so that a warp stores consecutive columns (``P_last > 1``)."""
        return plan.P[-1] > 1

    def x_shape(self, plan: KernelPlan) -> tuple[int, ...]:
        return (self.channels,) + self.span(plan)

    def w_shape(self, plan: KernelPlan) -> tuple[int, ...]:
        return (plan.n_slots, self.channels)

    def y_shape(self, plan: KernelPlan) -> tuple[int, ...]:
        return ((plan.c_out,) if plan.kind == "chain" else ()) + self.y_span(plan)

    def shared_bytes(self, plan: KernelPlan, itemsize: int = 8) -> int:
        n = math.prod(self.x_shape(plan))
        if plan.kind == "grouped":
            n += math.prod(self.w_shape(plan))
        if self.staged(plan):
            n += math.prod(self.y_shape(plan))
        return n * itemsize


def tile_layout(plan: KernelPlan, tile: tuple[int, ...] | None = None, rows: int | None = None) -> TileLayout | None:
    """The tiled kernel's geometry for ``plan``, or ``None`` where the simple kernel is emitted.

    Tiling applies to 1-D and 2-D plans with at least one tap whose shared-memory tiles (input with
    halo, weights, staged outputs) fit in :data:`SHARED_LIMIT` bytes at float64 and whose threads keep
    at most :data:`MAX_ACCUMULATORS` running sums (phases × output channels of a chain).  ``tile``
    replaces the default blocks ``j`` per thread block (:data:`TILE`, :data:`LAYER_TILE_2D`) and
    ``rows`` the blocks per thread along dimension 0 (:data:`ROWS` for 2-D layers, else 1); the tests
    use small tiles so that the CUDA simulator, which runs every thread in Python, crosses tile borders
    cheaply.
    """
    if plan.ndim not in TILE:
        return None
    blocked = plan.kind == "grouped" and plan.ndim == 2
    if tile is None:
        tile = LAYER_TILE_2D if blocked else TILE[plan.ndim]
    if rows is None:
        rows = ROWS if blocked else 1
    tile, rows = tuple(int(t) for t in tile), int(rows)
    if len(tile) != plan.ndim or min(tile) < 1:
        raise SymdeconvError(f"tile must be {plan.ndim} positive block counts (one per dimension), got {tile}")
    if rows < 1 or tile[0] % rows or (rows > 1 and not blocked):
        raise SymdeconvError(
            f"rows={rows}: blocks per thread must divide tile[0]={tile[0]} (and exceed 1 only for 2-D layer kernels)"
        )
    if math.prod(tile) // rows > 1024:
        raise SymdeconvError(f"tile {tile} with rows={rows} needs more than 1024 threads per block")
    offsets = _tap_offsets(plan)
    if not offsets:
        return None
    accumulators = len(plan.phases) * (plan.c_out if plan.kind == "chain" else 1)
    if accumulators > MAX_ACCUMULATORS:
        return None
    low = tuple(min(o[d] for o in offsets) for d in dims(plan))
    high = tuple(max(o[d] for o in offsets) for d in dims(plan))
    steps = (plan.c_in,) if plan.kind == "chain" else CHANNEL_STEPS
    for channels in steps:
        layout = TileLayout(tile, low, high, channels, rows)
        if layout.shared_bytes(plan) <= SHARED_LIMIT:
            return layout
    return None


# ==================================================================================================
# Source
# ==================================================================================================


def emit_cuda(
    plan: KernelPlan, title: str | None = None, *, tile: tuple[int, ...] | None = None, rows: int | None = None,
    tiled: bool = True,
) -> str:
    """The complete source of the CUDA kernel module of ``plan`` (deterministic: same plan, same text).

    ``tile`` / ``rows`` override the blocks ``j`` per thread block / per thread of a tiled kernel
    (:func:`tile_layout`); ``tiled=False`` forces the
    simple kernel (both for tests and comparisons; ``sd.emit`` / ``sd.compile`` use the defaults).
    """
    lp = None
    if plan.kind == "grouped":  # everything below reads the layer's typed plan
        plan, lp = layer_view(plan)
    layout = tile_layout(plan, tile, rows) if tiled else None
    w = Writer()
    for line in header(plan, "cuda", title) + module_docstring(plan, "cuda"):
        w(line)
    w()
    w("import math")
    w()
    w("import numpy as np")
    w("from numba import cuda")
    w()
    if lp is not None:
        w("from symdeconv.codegen.layer_plan import LayerPlan, Phase")
        w()
    w(f"NDIM = {plan.ndim}")
    w(f"P = {plan.P}  # output period (phases) per dimension")
    w(f"Q = {plan.Q}  # input period per dimension")
    if plan.kind == "chain":
        w(f"C_IN, C_OUT = {plan.c_in}, {plan.c_out}")
        w(f"SYMBOLS = {plan.symbols!r}")
    else:
        w(f"N_SLOTS = {plan.n_slots}")
    if layout is None:
        w('STRATEGY = "simple"  # one thread per output element, taps read from global memory')
        w(f"THREADS = {THREADS}  # threads per block: (last output dimension, flattened rows)")
    else:
        _tiled_constants(plan, layout, w)
    if lp is not None:  # the normal form as data, the CPU module's literal (emit_cpu_layers)
        w()
        emit_layer_plan(plan, lp, w)
        w("# (PLAN.paths names the CPU runtime's paths; this module's kernels are the ones STRATEGY names.)")
    w()
    w()
    if plan.kind == "chain":
        coefficients_function(plan, w)
        w()
        w()
    if layout is None:
        _simple_kernel(plan, w)
    else:
        _tiled_kernel(plan, layout, w)
        w()
        w()
        _simple_kernel(plan, w, "_simple")
    w()
    w()
    w("run = launch")
    return w.text()


def _args(plan: KernelPlan) -> str:
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    return f"x, y, c, {lo}" if plan.kind == "chain" else f"x, y, w, bias, groups, {lo}"


# --- simple kernel (fallback) -----------------------------------------------------------------------


def _phase_test(plan: KernelPlan, phase: tuple[int, ...]) -> str:
    tests = [f"p{d} == {phase[d]}" for d in dims(plan) if plan.P[d] != 1]
    return " and ".join(tests) if tests else "True"


def _simple_kernel(plan: KernelPlan, w: Writer, suffix: str = "") -> None:
    """``kernel{suffix}`` and ``launch{suffix}``: one thread per output element."""
    last = plan.ndim - 1
    args = _args(plan)
    threads = "THREADS" if not suffix else "SIMPLE_THREADS"
    w("@cuda.jit(cache=True)")
    w(f"def kernel{suffix}({args}):")
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
    w(f"def launch{suffix}({args}):")
    with w.indent():
        w(f'"""Launch one thread per output element: blocks of {threads} threads, enough to cover the output;')
        w('a block is no wider than the output (a power of two), its other threads take more rows."""')
        w(f"columns = y.shape[{last + 2}]")
        w("rows = y.shape[0] * y.shape[1]" if plan.kind == "grouped" else "rows = y.shape[0]")
        for d in range(last):
            w(f"rows *= y.shape[{d + 2}]")
        w("if columns == 0 or rows == 0:")
        w("    return")
        w(f"wide = min({threads}[0], 1 << (columns - 1).bit_length())")
        w(f"shape = (wide, {threads}[0] * {threads}[1] // wide)")
        w("blocks = (math.ceil(columns / wide), min(math.ceil(rows / shape[1]), 65535))")
        w(f"kernel{suffix}[blocks, shape]({args})")


# --- tiled kernel -----------------------------------------------------------------------------------


def _tag(offset: tuple[int, ...]) -> str:
    """``(-1, 0)`` → ``m1_0``: the name part of a tap position relative to ``Q j``."""
    return "_".join(f"m{-o}" if o < 0 else str(o) for o in offset)


def _acc(plan: KernelPlan, ph: PhasePlan, co: int | None = None) -> str:
    """Name of the running sum of phase ``ph`` (and output channel ``co`` of a multi-channel chain)."""
    name = "acc" if co is None or plan.c_out == 1 else f"acc{co}"
    return f"{name}_{_tag(ph.phase)}"


def _value(plan: KernelPlan, c_in: int | None, offset: tuple[int, ...]) -> str:
    """Name of the staged input ``x[c, Q j + offset]`` a thread reads from shared memory."""
    if c_in is None or plan.c_in == 1:
        return f"x_{_tag(offset)}"
    return f"x{c_in}_{_tag(offset)}"


def _where(plan: KernelPlan, offset: tuple[int, ...]) -> str:
    return ", ".join(plus(f"{plan.Q[d]}·j{d}" if plan.Q[d] != 1 else f"j{d}", offset[d]) for d in dims(plan))


def _tiled_constants(plan: KernelPlan, layout: TileLayout, w: Writer) -> None:
    D = plan.ndim
    threads = tuple(reversed(layout.steps))
    w('STRATEGY = "tiled"  # a thread block per tile of blocks j; input tile staged in shared memory')
    if layout.rows == 1:
        w(f"TILE = {layout.tile}  # blocks j per thread block per dimension (one thread per block, all phases)")
    else:
        w(f"TILE = {layout.tile}  # blocks j per thread block per dimension (all phases of each)")
        w(f"ROWS = {layout.rows}  # blocks j per thread along dimension 0: weights and input rows reused in registers")
    w(f"THREADS = {threads}  # CUDA block shape: x along the last dimension" + (", y along dimension 0" if D == 2 else ""))
    w(f"BLOCK_THREADS = {math.prod(threads)}")
    w(f"LOW = {layout.low}  # smallest tap offset per dimension: the tile's halo before Q·J")
    w(f"HIGH = {layout.high}  # largest tap offset per dimension: the halo after Q·(J + TILE − 1)")
    what = "all input channels" if plan.kind == "chain" else "input channels staged per step"
    w(f"CHANNELS = {layout.channels}  # {what}")
    w(f"X_TILE = {layout.x_shape(plan)}  # (CHANNELS, Q·(TILE − 1) + HIGH − LOW + 1 per dimension)")
    if plan.kind == "grouped":
        w(f"W_TILE = {layout.w_shape(plan)}  # (N_SLOTS, CHANNELS): the staged channels' weights of one c_out")
        w(f"W_SIZE = {math.prod(layout.w_shape(plan))}")
    w(f"SIMPLE_THREADS = {THREADS}  # kernel_simple (planes smaller than half a tile): (last dimension, rows)")
    if layout.staged(plan):
        shape_text = "(C_OUT, P·TILE per dimension)" if plan.kind == "chain" else "P·TILE per dimension"
        w(f"Y_TILE = {layout.y_shape(plan)}  # the tile's outputs, {shape_text}")


def _tiled_kernel(plan: KernelPlan, layout: TileLayout, w: Writer) -> None:
    D, last = plan.ndim, plan.ndim - 1
    args = _args(plan)
    chain = plan.kind == "chain"
    staged = layout.staged(plan)
    T = layout.tile

    w("@cuda.jit(cache=True)")
    w(f"def kernel({args}):")
    with w.indent():
        who = "one thread per block j" if layout.rows == 1 else "one thread per ROWS blocks j along dimension 0"
        w(f'"""Tiled gather: a thread block per tile of TILE blocks j, {who}')
        w("(all phases).")
        w("")
        w("Stage the tile's inputs (with halo, zero outside x) in shared memory, sync, accumulate every")
        w("phase from shared memory with the taps as constants, then store (coalesced).")
        w('"""')
        w("x_tile = cuda.shared.array(X_TILE, x.dtype)  # inputs Q·J + LOW … Q·(J + TILE − 1) + HIGH")
        if not chain:
            w("w_tile = cuda.shared.array(W_TILE, x.dtype)  # weights of the staged channels")
        if staged:
            w("y_tile = cuda.shared.array(Y_TILE, y.dtype)  # outputs, staged for coalesced stores")
        for d in dims(plan):
            w(f"n{d} = x.shape[{d + 2}]")
        for d in dims(plan):
            w(f"out{d} = y.shape[{d + 2}]")
        if chain:
            w("planes = y.shape[0]  # batch")
        else:
            w("c_out = y.shape[1]")
            w("planes = y.shape[0] * c_out  # (batch, output channel) pairs")
            w("cin_g = x.shape[1] // groups  # input channels per group")
            w("cout_g = c_out // groups  # output channels per group")
        w("# Blocks j = first … last hold the window's outputs lo … lo + out − 1 (lo may be negative).")
        for d in dims(plan):
            w(f"first{d} = lo{d} // {plan.P[d]}" if plan.P[d] != 1 else f"first{d} = lo{d}")
            w(f"last{d} = (lo{d} + out{d} - 1) // {plan.P[d]}" if plan.P[d] != 1 else f"last{d} = lo{d} + out{d} - 1")
        for d in range(last):
            w(f"tiles{d} = (last{d} - first{d} + {T[d]}) // {T[d]}  # tiles of TILE[{d}] blocks along dimension {d}")
        w("# This thread's block within its tile, and its rank among the thread block's threads.")
        if D == 1:
            w("u0 = cuda.threadIdx.x")
            w("rank = u0")
        else:
            w("u0 = cuda.threadIdx.y")
            w("u1 = cuda.threadIdx.x")
            w(f"rank = u0 * {T[1]} + u1")
        w("# No early return: every thread takes part in the staging and in cuda.syncthreads().")
        w("for plane in range(cuda.blockIdx.z, planes, cuda.gridDim.z):")
        w.indent()
        if chain:
            w("b = plane")
        else:
            w("b = plane // c_out")
            w("co = plane % c_out")
            w("ci0 = (co // cout_g) * cin_g  # first input channel of co's group")
        if D == 2:
            w("for tile0 in range(cuda.blockIdx.y, tiles0, cuda.gridDim.y):")
            w.indent()
            w(f"J0 = first0 + {T[0]} * tile0  # the tile's first block j")
        w(f"J{last} = first{last} + {T[last]} * cuda.blockIdx.x" + ("  # the tile's first block j" if D == 1 else ""))
        for d in dims(plan):
            w(f"used{d} = min({T[d]}, last{d} - J{d} + 1)  # blocks of the tile inside the window, along {d}")
        R = layout.rows
        if R == 1:
            active = " and ".join(f"u{d} < used{d}" for d in dims(plan))
            w(f"active = {active}  # this thread's block holds outputs of the window")
        else:
            w(f"active = {R} * u0 < used0 and u1 < used1  # this thread's first block holds outputs of the window")
            w(f"cover0 = {R} * ((used0 + {R - 1}) // {R})  # blocks along 0 of the threads that compute (ROWS each)")
        for d in dims(plan):
            origin = plus(times(plan.Q[d], f"J{d}"), layout.low[d])
            w(f"origin{d} = {origin}  # input position of x_tile[:, {', '.join(['0'] * D)}] along {d}")
        for d in dims(plan):
            halo = layout.high[d] - layout.low[d] + 1
            blocks = "cover0" if (d == 0 and R > 1) else f"used{d}"
            w(f"extent{d} = {plus(times(plan.Q[d], blocks), halo - plan.Q[d])}"
              f"  # staged inputs along {d}: Q·({blocks} − 1) + HIGH − LOW + 1")
        for d in dims(plan):
            step = plan.Q[d] * (R if d == 0 else 1)  # x_tile rows / columns between threads' first blocks
            w(f"r{d} = {times(step, f'u{d}')}  # x_tile index of this thread's (first) block's Q·j + LOW along {d}")
        if chain:
            for ph in plan.phases:
                for co, _ in ph.rows:
                    w(f"{_acc(plan, ph, co)} = 0.0  # channel {co}, phase {phase_text(ph.phase)}")
            _chain_stage_and_taps(plan, layout, w)
        else:
            for r in range(R):
                for ph in plan.phases:
                    w(f"{_acc_row(plan, ph, r, R)} = bias[co]  # phase {phase_text(ph.phase)}"
                      + (f" of block J + ({R}·u0 + {r}, u1)" if R > 1 else ""))
            _grouped_stage_and_taps(plan, layout, w)
        _store(plan, layout, staged, w)
        if D == 2:
            w.dedent()
        w.dedent()
    w()
    w()
    _tiled_launch(plan, layout, args, w)


def _stage_input(plan: KernelPlan, layout: TileLayout, channel: str, w: Writer) -> None:
    """The cooperative load of staged channel ``k`` of ``x_tile`` (zero outside ``x``).

    Thread ``u`` loads positions ``u, u + threads, …`` of each dimension: consecutive threads read
    consecutive columns of ``x`` (coalesced) and no index is divided.
    """
    steps = layout.steps
    for d in dims(plan):
        w(f"for a{d} in range(u{d}, extent{d}, {steps[d]}):")
        w.indent()
        w(f"i{d} = origin{d} + a{d}")
    inside = " and ".join(f"i{d} >= 0 and i{d} < n{d}" for d in dims(plan))
    spatial = ", ".join(f"i{d}" for d in dims(plan))
    local = ", ".join(["k"] + [f"a{d}" for d in dims(plan)])
    w(f"if {inside}:")
    w(f"    x_tile[{local}] = x[b, {channel}, {spatial}]")
    w("else:")
    w(f"    x_tile[{local}] = 0  # outside the input: the signal is zero there")
    for _ in dims(plan):
        w.dedent()


def _tap_index(plan: KernelPlan, layout: TileLayout, channel: str, offset: tuple[int, ...]) -> str:
    spatial = ", ".join(plus(f"r{d}", offset[d] - layout.low[d]) for d in dims(plan))
    return f"x_tile[{channel}, {spatial}]"


def _grouped_stage_and_taps(plan: KernelPlan, layout: TileLayout, w: Writer) -> None:
    w("for c_start in range(0, cin_g, CHANNELS):")
    with w.indent():
        w("steps = min(CHANNELS, cin_g - c_start)  # channels staged in this step")
        w("if c_start > 0:")
        w("    cuda.syncthreads()  # every thread is done with the previous channels")
        w("# Stage the tile of `steps` input channels, and their weights for output channel co.")
        w("for k in range(steps):")
        with w.indent():
            _stage_input(plan, layout, "ci0 + c_start + k", w)
        w("for e in range(rank, W_SIZE, BLOCK_THREADS):")
        with w.indent():
            w("slot = e // CHANNELS")
            w("k = e % CHANNELS")
            w("if k < steps:")
            w("    w_tile[slot, k] = w[slot, c_start + k, co]")
        w("cuda.syncthreads()")
        w("if active:")
        with w.indent():
            w("for k in range(steps):  # every tap reads shared memory: no bounds tests")
            with w.indent():
                if layout.rows > 1:
                    _blocked_taps(plan, layout, w)
                    return
                offsets = sorted({off for ph in plan.phases for off in ph.offsets()})
                for off in offsets:
                    w(f"{_value(plan, None, off)} = {_tap_index(plan, layout, 'k', off)}  # x[{_where(plan, off)}]")
                for ph in plan.phases:
                    if not ph.slots:
                        continue
                    terms = " + ".join(f"w_tile[{s}, k] * {_value(plan, None, off)}" for s, off in ph.slots)
                    w(f"{_acc(plan, ph)} += {terms}")


def _acc_row(plan: KernelPlan, ph: PhasePlan, r: int, rows: int) -> str:
    """Running sum of phase ``ph`` of the thread's block ``r`` (of ``rows``) in a layer kernel."""
    return _acc(plan, ph) if rows == 1 else f"acc_r{r}_{_tag(ph.phase)}"


def _blocked_taps(plan: KernelPlan, layout: TileLayout, w: Writer) -> None:
    """The taps of ROWS blocks per thread: each slot weight and each staged input read once per channel.

    Block ``r`` of the thread reads x_tile row ``r0 + Q0·r + offset0 − LOW0``; the rows of adjacent
    blocks overlap, so each distinct (row, column offset) is one register ``row{a}_{column}``.
    """
    R, Q0, low = layout.rows, plan.Q[0], layout.low
    w(f"# the weights of channel k, one register per slot (used by all {R} blocks)")
    for ph in plan.phases:
        for slot, _ in ph.slots:
            w(f"w{slot} = w_tile[{slot}, k]")
    needed = sorted({(Q0 * r + off[0] - low[0], off[1]) for r in range(R) for ph in plan.phases for _, off in ph.slots})
    w(f"# input rows of the thread's {R} blocks: row<a>_<c> = x_tile[k, r0 + a, r1 + c − LOW1],")
    w(f"# which block r reads as its tap offset (a + LOW0 − Q0·r, c)")
    for a, col in needed:
        w(f"row{a}_{_tag((col,))} = x_tile[k, {plus('r0', a)}, {plus('r1', col - low[1])}]")
    for r in range(R):
        for ph in plan.phases:
            if not ph.slots:
                continue
            terms = " + ".join(
                f"w{slot} * row{Q0 * r + off[0] - low[0]}_{_tag((off[1],))}" for slot, off in ph.slots
            )
            assign_sum(w, _acc_row(plan, ph, r, R), "+=", terms)


def _chain_stage_and_taps(plan: KernelPlan, layout: TileLayout, w: Writer) -> None:
    w("# Stage the tile of every input channel.")
    w("for k in range(C_IN):")
    with w.indent():
        _stage_input(plan, layout, "k", w)
    w("cuda.syncthreads()")
    w("if active:  # every tap reads shared memory: no bounds tests")
    with w.indent():
        used = sorted({(t.c_in, t.offset) for ph in plan.phases for _, taps in ph.rows for t in taps})
        for c_in, off in used:
            channel = f"x{c_in}" if plan.c_in > 1 else "x"
            w(f"{_value(plan, c_in, off)} = {_tap_index(plan, layout, str(c_in), off)}  # {channel}[{_where(plan, off)}]")
        for ph in plan.phases:
            for co, taps in ph.rows:
                for tap in taps:
                    w(f"{_acc(plan, ph, co)} += {_product(coefficient(tap), _value(plan, tap.c_in, tap.offset))}")


def _product(coeff: str, value: str) -> str:
    return value if coeff == "1.0" else (f"-{value}" if coeff == "-1.0" else f"{coeff} * {value}")


def _store(plan: KernelPlan, layout: TileLayout, staged: bool, w: Writer) -> None:
    chain = plan.kind == "chain"
    steps = layout.steps
    R = layout.rows
    rows = [(co, str(co)) for co in range(plan.c_out)] if chain else [(None, "co")]
    inside = " and ".join(f"t{d} >= 0 and t{d} < out{d}" for d in dims(plan))
    spatial = ", ".join(f"t{d}" for d in dims(plan))
    if staged:
        w("# Stage the outputs (phase p of block u at P·u + p), then store them with consecutive")
        w("# threads writing consecutive output columns.")
        w("if active:")
        with w.indent():
            for r in range(R):
                for ph in plan.phases:
                    for co, _ in rows:
                        lead = [str(co)] if chain else []
                        # block (R·u0 + r, u1) of the tile: its phase p is y_tile[P·block + p]
                        local = [plus(times(plan.P[d] * (R if d == 0 else 1), f"u{d}"),
                                      plan.P[d] * (r if d == 0 else 0) + ph.phase[d]) for d in dims(plan)]
                        acc = _acc(plan, ph, co) if chain else _acc_row(plan, ph, r, R)
                        w(f"y_tile[{', '.join(lead + local)}] = {acc}")
        w("cuda.syncthreads()  # also: every thread is done with x_tile before the next tile is staged")
        if chain:
            w("for co in range(C_OUT):")
            w.indent()
        for d in dims(plan):
            w(f"for a{d} in range(u{d}, {times(plan.P[d], f'used{d}')}, {steps[d]}):")
            w.indent()
            w(f"t{d} = {times(plan.P[d], f'J{d}')} + a{d} - lo{d}")
        local = ", ".join((["co"] if chain else []) + [f"a{d}" for d in dims(plan)])
        w(f"if {inside}:  # the window may start or end inside a block")
        w(f"    y[b, co, {spatial}] = y_tile[{local}]")
        for _ in dims(plan):
            w.dedent()
        if chain:
            w.dedent()
        w("# (The next tile's first cuda.syncthreads() comes before anything overwrites y_tile.)")
        return
    w("# The last dimension has one phase: consecutive threads own consecutive output columns.")
    w("if active:")
    with w.indent():
        for r in range(R):
            for d in dims(plan):
                block = f"u{d}" if (d or R == 1) else plus(f"{R} * u0", r)
                w(f"j{d} = J{d} + {block}")
            for ph in plan.phases:
                for d in dims(plan):
                    w(f"t{d} = {plus(times(plan.P[d], f'j{d}'), ph.phase[d])} - lo{d}")
                w(f"if {inside}:  # phase {phase_text(ph.phase)}; the window may start or end inside a block")
                with w.indent():
                    for co, name in rows:
                        acc = _acc(plan, ph, co) if chain else _acc_row(plan, ph, r, R)
                        w(f"y[b, {name}, {spatial}] = {acc}")
    w("cuda.syncthreads()  # every thread is done with x_tile before the next tile is staged")


def _tiled_launch(plan: KernelPlan, layout: TileLayout, args: str, w: Writer) -> None:
    D, last = plan.ndim, plan.ndim - 1
    T = layout.tile
    w("def blocks_j(lo, out, period):")
    with w.indent():
        w('"""How many blocks j = ⌊lo / P⌋ … ⌊(lo + out − 1) / P⌋ hold the outputs lo … lo + out − 1."""')
        w("return (lo + out - 1) // period - lo // period + 1")
    w()
    w()
    w(f"def launch({args}):")
    with w.indent():
        w('"""A thread block of THREADS per tile of TILE blocks j; small planes go to kernel_simple.')
        w("")
        w("When the window has fewer than half a tile of blocks along the last dimension, most threads")
        w("of a tile would idle: the simple kernel, which packs rows of several planes into one thread")
        w("block, does the work instead.")
        w('"""')
        w("planes = y.shape[0] * y.shape[1]" if plan.kind == "grouped" else "planes = y.shape[0]")
        w("if planes == 0 or min(y.shape) == 0:")
        w("    return")
        for d in dims(plan):
            w(f"blocks{d} = blocks_j(lo{d}, y.shape[{d + 2}], {plan.P[d]})")
        w(f"if 2 * blocks{last} < {T[last]}:  # fewer than half a tile of blocks j along the last dimension")
        w(f"    launch_simple({args})")
        w("    return")
        grid = [f"math.ceil(blocks{last} / {T[last]})"]
        grid.append(f"min(math.ceil(blocks0 / {T[0]}), 65535)" if D == 2 else "1")
        grid.append("min(planes, 65535)")
        w("# (tiles along the last dimension, tiles along dimension 0, planes)")
        w(f"grid = ({', '.join(grid)})")
        w(f"kernel[grid, THREADS]({args})")
