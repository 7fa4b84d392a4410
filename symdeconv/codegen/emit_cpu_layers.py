"""CPU emitter for *grouped* (deep-learning layer) plans: GEMM-like polyphase gather kernels.

The normal form of a layer says, per output phase ``p`` and for every channel pair ``(c', c)`` of a
group, ``y[c', P j + p] = Σ_s w[s, c, c'] · x[c, Q j + off_s]``: per phase, the layer is an ordinary
(un-strided, un-dilated) convolution of the input with the phase's taps — the *sub-pixel* form of a
transposed convolution [Shi et al. 2016], the *space-to-depth* form of a strided one.  The emitted
kernel computes it the way a GEMM micro-kernel would:

1. **input planes**: the input is copied into reusable scratch buffers of *flattened planes*, one
   plane per input phase ``r = off mod Q`` (a plain zero-padded copy when ``Q = 1``).  Writing
   ``off = Q e + r``, the tap ``x[Q j + off]`` is ``plane_r[j + e]``: every tap of every phase becomes
   a *constant-offset, unit-stride* read of a plane, and the offsets are non-negative, so the hot loop
   has no bounds tests and no negative indices.  In 1-D and 2-D (``BLOCK_FILL_MAX_NDIM``) each block
   of work (below) copies the band of the planes it reads into the calling thread's buffer (``fill``),
   once per block and thread: the block's output-channel blocks that the thread runs one after the
   other share the copy.  From 3-D on, a parallel pass (``pad``, over batch × channels) copies the
   whole input into planes first (a 3-D block's taps read rows a whole plane apart, and copying those
   per block measured slower);
2. **blocks of work** (``kernel``): one ``prange`` over (batch × row blocks × groups × output-channel
   blocks).  A row block is ``R`` consecutive rows of the flattened planes (``R`` chosen so that a
   block holds about ``ROW_TARGET`` outputs: the accumulators stay in L1/L2).  Per block and phase the
   columns are either the block's flattened rows in one long unit-stride line (*flat*: a few columns
   per row, the planes' zero border, are computed and thrown away) or, when that takes fewer tiles,
   exactly the phase's output columns of each row that holds outputs of the phase (*row-exact*);
3. **micro-kernel**: for each phase, the block's columns are taken ``TILE`` at a time into a *register
   tile* of ``CO_BLOCK × TILE`` accumulators (a stack array, :func:`symdeconv.codegen.runtime.stack_tile`,
   which LLVM keeps in vector registers for the whole loop over the group's input channels — a heap
   array it would load and store once per input channel).  Per input channel, the phase's taps are
   fused into one expression per output channel (``TAP_GROUP`` taps per column loop), read at constant,
   provably non-negative offsets of the channel's flattened planes: ``CO_BLOCK`` fused multiply-adds
   per loaded input vector and tap (``a = (a + w₀v₀) + w₁v₁ + …``).  Channels left
   over (``C_out/G`` not a multiple of ``CO_BLOCK``) take a one-channel pass.  The block's results go to
   ``acc`` rows padded to a multiple of ``VEC`` (whole tiles) and ``acc_stride`` apart (no x86 "4K
   aliasing" between rows);
4. **interleaved write**: the phases of the last dimension are written together, row by row,
   ``y[..., P k + p − lo]`` for ``p = 0 … P−1`` in one loop (the few border outputs where not every
   phase is in range are written by short scalar loops).

Every multiplication is by a real kernel tap (the normal form's taps), every output element is written
by exactly one iteration (no atomics: deterministic).  Accumulation is in the data's dtype — float32
data accumulate in float32, as PyTorch/oneDNN do — and the micro-kernel is compiled with
``fastmath={"contract"}`` only: multiply-adds may become fused FMAs (one rounding instead of two), no
reassociation, so results differ from an un-fused evaluation by at most one rounding per tap.

Groups with one input and one output channel (1 → 1 and depthwise layers) have no channel reduction
to block for: ``run`` hands them to the ``stencil`` kernel of :mod:`symdeconv.codegen.emit_cpu_stencil`
(``x`` read in place, no padding copy), emitted in the same module.  Plans of three or more
dimensions whose phases pair their taps along every leading dimension also get the Winograd F(3, 2)
path of :mod:`symdeconv.codegen.emit_cpu_wino` (``wino_run``, taken from ``WINO_MIN_CIN`` input
channels per group), which reuses this module's micro-kernel column loops and row write (both in
:mod:`symdeconv.codegen._layer_source`) on transformed planes.
"""

from __future__ import annotations

import math

from ._layer_source import (
    TAP_GROUP, emit_border_flags, emit_row_position, emit_row_write, emit_tap_loops, emit_work_cache,
)
from ._source import Writer, dims, header, module_docstring, phase_banner, phase_text, tuple_text
from .emit_cpu_stencil import emit_cpu_stencil, has_stencil
from .emit_cpu_wino import emit_wino, wino_geometry, wino_streams
from .plan import KernelPlan

__all__ = [
    "emit_cpu_layers", "layer_geometry", "emit_tap_loops", "emit_border_flags", "emit_row_write",
    "TILE_SHAPE", "TAP_GROUP", "ROW_TARGET", "BLOCK_FILL_MAX_NDIM",
]

#: outputs (per channel and phase) a block of work aims at: the accumulators of all phases stay in L2,
#: and few blocks mean little rounding of a block up to whole tiles (2048 beat 1024 and 4096 by 3–7 %).
ROW_TARGET = 2048

#: up to this many dimensions each block of work copies its own input planes (``fill``, into a per-thread
#: buffer shared by the block's output-channel blocks on that thread); from 3-D on a parallel pass copies the
#: whole input into planes first (``pad``).  Measured (2 threads, same-process A/B against the pass):
#: benchmark case h (stride-2 Conv2d, 64→64, 8 × 128²) 17.0–17.6 → 13.7–13.9 ms, a 64→64 ConvTranspose1d
#: (8 × 16384) 26.1 → 23.6 ms, cases b and d unchanged; but a 3-D block reads input rows a whole plane apart
#: along dimension 0 (one band of rows per tap offset there), and copying those per block made 3-D direct
#: kernels 8–30 % slower (8 → 8 and 16 → 16 ConvTranspose3d at 32³, 64 → 64 at 16³).
BLOCK_FILL_MAX_NDIM = 2


def _fills(plan: KernelPlan) -> bool:
    """Whether the plan's blocks copy their own input planes (``fill``) rather than read ``pad``'s."""
    return plan.ndim <= BLOCK_FILL_MAX_NDIM

#: accumulator lengths are rounded up to a multiple of VEC elements: the vectorised loop (vector width ×
#: unroll ≤ 64 float32) then never ends in a scalar remainder loop.
VEC = 64

#: the wide micro-kernel's register tile (output channels per pass, columns): CO_BLOCK × TILE float32
#: accumulators are 16 AVX-512 registers, leaving 16 for the input vectors and broadcast weights of
#: an input channel.  TILE divides VEC.  Measured on the 2-core AVX-512 machine (benchmarks/): (4, 64)
#: beat (8, 32) by ~15 % with 4 taps.
TILE_SHAPE = (4, 64)


def layer_geometry(plan: KernelPlan) -> dict:
    """Emit-time constants of a grouped plan: input planes, per-slot plane and block offsets.

    A slot's offset ``off`` (per dimension) is split as ``off = Q e + r`` with ``0 ≤ r < Q``; ``e − e_min``
    is the slot's (non-negative) offset in the planes, ``r`` picks the plane.
    """
    D = plan.ndim
    offs = [off for ph in plan.phases for _, off in ph.slots]
    e = [[o[d] // plan.Q[d] for o in offs] for d in range(D)]
    e_min = tuple(min(v) if v else 0 for v in e)
    e_span = tuple((max(v) - min(v)) if v else 0 for v in e)
    n_planes = math.prod(plan.Q)
    slot_plane, slot_shift = {}, {}
    for ph in plan.phases:
        for s, off in ph.slots:
            r = [off[d] % plan.Q[d] for d in range(D)]
            flat = 0
            for d in range(D):
                flat = flat * plan.Q[d] + r[d]
            slot_plane[s] = flat
            slot_shift[s] = tuple(off[d] // plan.Q[d] - e_min[d] for d in range(D))
    taps = max((len(ph.slots) for ph in plan.phases), default=0)
    return {
        "e_min": e_min, "e_span": e_span, "n_planes": n_planes, "plane": slot_plane, "shift": slot_shift,
        "co_block": TILE_SHAPE[0], "tile": TILE_SHAPE[1], "max_taps": taps,
    }


def emit_cpu_layers(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of a grouped plan (deterministic)."""
    geo = layer_geometry(plan)
    wg = wino_geometry(plan, geo)  # None: no Winograd path for this plan
    D = plan.ndim
    w = Writer()
    for line in header(plan, "cpu", title) + module_docstring(plan, "cpu"):
        w(line)
    w()
    w("import numba")
    w("import numpy as np")
    w("from numba import prange")
    w()
    if wg is not None and wino_streams(plan):  # the Winograd path streams the whole lines of large outputs
        names = ["LINE_BYTES", "line_head", "stack_tile", "store_fence", "stream_line" if plan.P[D - 1] == 1 else "stream_pair"]
        w(f"from symdeconv.codegen.runtime import {', '.join(names)}")
    else:
        w("from symdeconv.codegen.runtime import stack_tile")
    w()
    w(f"NDIM = {D}")
    w(f"P = {tuple_text(plan.P)}  # output period (phases) per dimension")
    w(f"Q = {tuple_text(plan.Q)}  # input period per dimension")
    w(f"N_SLOTS = {plan.n_slots}")
    w(f"N_PLANES = {geo['n_planes']}  # input planes: one per input phase r = offset mod Q")
    w(f"E_MIN = {tuple_text(geo['e_min'])}  # smallest tap block offset floor(offset / Q), per dimension")
    w(f"E_SPAN = {tuple_text(geo['e_span'])}  # largest minus smallest, per dimension")
    w(f"CO_BLOCK = {geo['co_block']}  # output channels per pass of block_wide")
    w(f"ROW_TARGET = {ROW_TARGET}  # outputs per channel and phase in one block of work")
    w(f"VEC = {VEC}  # accumulator lengths are multiples of VEC (no scalar remainder loop)")
    w(f"TILE = {geo['tile']}  # columns of block_wide's register tile (a divisor of VEC)")
    w()
    w()
    _emit_run(plan, geo, w, wg is not None)
    w()
    w()
    _emit_tables(plan, geo, w)
    w()
    w()
    if _fills(plan):
        _emit_fill(plan, w)
    else:
        _emit_pad(plan, w)
    w()
    w()
    _emit_acc_stride(w)
    w()
    w()
    _emit_kernel(plan, geo, w)
    if wg is not None:  # two consecutive taps per phase along every leading dimension: emit_cpu_wino's path
        w()
        w()
        emit_wino(plan, geo, wg, w)
    if has_stencil(plan):  # one input and one output channel per group: emit_cpu_stencil's path
        w()
        w()
        emit_cpu_stencil(plan, w)
    return w.text()


# --- the Python driver ---------------------------------------------------------------------------------


def _emit_run(plan: KernelPlan, geo: dict, w: Writer, wino: bool = False) -> None:
    D = plan.ndim
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    w(f"def run(x, y, w, bias, groups, {lo}, work=None):")
    with w.indent():
        w('"""Run the kernel on ``x`` (its scratch buffers kept in the dict ``work`` between calls).')
        w()
        w("Block ``j`` of dimension ``d`` is needed when some phase's output ``P j + p − lo`` lies in")
        w("``[0, out)``: ``jlo ≤ j < jhi``.  Plane position ``u`` holds input ``Q (u + jlo + E_MIN) + r``, so")
        w("a tap with block offset ``e`` reads plane position ``j − jlo + e − E_MIN ≥ 0``.")
        w('"""')
        if has_stencil(plan):
            w("if x.shape[1] == groups and y.shape[1] == groups:  # one channel per group: the stencil path")
            w(f"    return stencil(x, y, w, bias, {lo})")
        w("out = y.shape[2:]")
        w(f"lo = ({lo},)")
        w("jlo, jhi, length = [], [], []")
        w("for d in range(NDIM):")
        with w.indent():
            w("first = [-((p - lo[d]) // P[d]) for p in range(P[d])]")
            w("stop = [-((p - lo[d] - out[d]) // P[d]) for p in range(P[d])]")
            w("jlo.append(min(first))")
            w("jhi.append(max(stop))")
            w("length.append(jhi[d] - jlo[d] + E_SPAN[d])")
        if wino:
            w("if x.shape[1] // groups >= WINO_MIN_CIN and (y.shape[1] // groups) % CO_BLOCK == 0:")
            w("    return wino_run(x, y, w, bias, groups, jlo, jhi, length, lo, work)  # Winograd F(3, 2) path")
        w("stride = [1] * NDIM  # strides of the flattened planes")
        w("for d in range(NDIM - 2, -1, -1):")
        w("    stride[d] = stride[d + 1] * length[d + 1]")
        js = ", ".join(f"jlo[{d}]" for d in dims(plan))
        ls = ", ".join(f"length[{d}]" for d in dims(plan))
        if _fills(plan):
            _emit_block_rows(plan, w)
            if D == 1:
                w("M = -(-block_rows // VEC) * VEC  # a block's columns, at most")
            else:
                w(f"M = -(-(block_rows * length[{D - 1}]) // VEC) * VEC  # a block's columns, at most")
            w("# a block reads its M columns plus the taps' reach: its band of the planes (fill)")
            w("band = M + sum(E_SPAN[d] * stride[d] for d in range(NDIM))")
            with emit_work_cache(w, "(x.shape, x.dtype.str, lo, out, groups)", "scratch"):
                w("threads = numba.config.NUMBA_NUM_THREADS  # numba.get_thread_id() < threads")
                w("scratch = (")
                w("    np.empty((threads, x.shape[1] // groups, N_PLANES, band), dtype=x.dtype),  # block buffers")
                w("    np.empty(threads, dtype=np.int64),  # the block each thread's buffer holds")
                w(")")
            w("xb, tags = scratch")
            w("tags[:] = -1  # no thread holds a block of this call's input yet")
            xa = ", ".join(f"jlo[{d}] + E_MIN[{d}]" for d in dims(plan))
            w(f"kernel(x, xb, tags, y, w, bias, groups, rows, block_rows, band, {js}, {ls}, {lo}, {xa})")
        else:
            w("# reads run past the last row by at most the taps' reach along the later dimensions")
            w("# (plus VEC: a block's accumulator length is rounded up to a multiple of VEC)")
            w("size = length[0] * stride[0] + sum(E_SPAN[d] * stride[d] for d in range(1, NDIM)) + VEC")
            with emit_work_cache(w, "(x.shape, x.dtype.str, lo, out)", "xs"):
                w("# zeros once: pad() rewrites the same interior every call, the border stays zero")
                w("xs = np.zeros((x.shape[0], x.shape[1], N_PLANES, size), dtype=x.dtype)")
            offsets = ", ".join(f"jlo[{d}] + E_MIN[{d}]" for d in dims(plan))
            w("# pad: plane r holds x[Q (u + a) + r] at u (a = jlo + E_MIN), zero where that is outside x")
            w(f"pad(x, xs, {offsets}, {ls})")
            _emit_block_rows(plan, w)
            w(f"kernel(xs, y, w, bias, groups, rows, block_rows, {js}, {ls}, {lo})")


def _emit_block_rows(plan: KernelPlan, w: Writer) -> None:
    """``rows`` (of the flattened planes holding outputs) and ``block_rows`` (per block of work) in ``run``."""
    D = plan.ndim
    if D == 1:
        w("rows = jhi[0] - jlo[0]  # 1-D: a row is one block position")
        w("block_rows = ROW_TARGET")
    else:
        inner = " * ".join(f"length[{d}]" for d in range(1, D - 1))
        w(f"rows = (jhi[0] - jlo[0]){' * ' + inner if inner else ''}  # rows of the planes holding outputs")
        w(f"block_rows = max(1, ROW_TARGET // length[{D - 1}])")
    w("block_rows = max(1, -(-rows // max(1, -(-rows // block_rows))))  # equal blocks")


# --- phase tables ----------------------------------------------------------------------------------------


def _by_taps(plan: KernelPlan) -> dict[int, list[int]]:
    """Phase indices grouped by their number of taps (phases without taps are left out: bias only)."""
    out: dict[int, list[int]] = {}
    for k, ph in enumerate(plan.phases):
        if ph.slots:
            out.setdefault(len(ph.slots), []).append(k)
    return dict(sorted(out.items()))


def _emit_tables(plan: KernelPlan, geo: dict, w: Writer) -> None:
    """Per number of taps T: the phases with T taps, their slots, input planes and plane shifts.

    One vectorised loop per T (not per phase) keeps the compile time of a layer kernel low; the
    tables are module constants (Numba freezes them into the compiled code).
    """
    D = plan.ndim
    for T, ks in _by_taps(plan).items():
        w(f"# phases with {T} tap{'s' if T != 1 else ''}: index into the phases (C order of the phase tuples)")
        w(f"PHASES_{T} = np.array({[k for k in ks]}, dtype=np.int64)")
        w(f"# SLOTS_{T}[i, t]: weight slot of tap t of phase PHASES_{T}[i]; PLANES_{T}: its input plane;")
        w(f"# SHIFT_{T}[i, t, d]: its block offset floor(offset / Q) − E_MIN along d (non-negative)")
        w(f"SLOTS_{T} = np.array([")
        for k in ks:
            ph = plan.phases[k]
            w(f"    {[s for s, _ in ph.slots]},  # phase {phase_text(ph.phase)}: {phase_banner(plan, ph).split(': ', 1)[1]}")
        w("], dtype=np.int64)")
        w(f"PLANES_{T} = np.array([" + ", ".join(str([geo['plane'][s] for s, _ in plan.phases[k].slots]) for k in ks)
          + "], dtype=np.int64)")
        w(f"SHIFT_{T} = np.array([")
        for k in ks:
            w("    " + str([list(geo["shift"][s]) for s, _ in plan.phases[k].slots]) + ",")
        w(f"], dtype=np.int64).reshape({len(ks)}, {T}, {D})")


# --- the kernel ---

def _emit_row_inputs(plan: KernelPlan, a: str, w: Writer) -> None:
    """``first``, ``stop{p}``, ``stop_all``: the positions ``first … stop_p − 1`` of a row of plane ``p`` (last
    dimension) that hold inputs, ``Q (i + a_last) + p`` in ``[0, n_last)``; ``stop_all`` the least ``stop_p``."""
    last = plan.ndim - 1
    QL = plan.Q[last]
    w(f"first = max(0, -{a}{last})  # the same for every plane and row")
    for p_ in range(QL):
        bound = f"-(({p_} - x.shape[{last + 2}]) // {QL}) - {a}{last}"
        w(f"stop{p_} = max(first, min(L{last}, {bound}))  # {QL} (i + a) + {p_} < n")
    w(f"stop_all = min({', '.join(f'stop{p_}' for p_ in range(QL))})" if QL > 1 else "stop_all = stop0")


def _emit_deal_row(plan: KernelPlan, start: str, a: str, at: str, count: str, w: Writer) -> None:
    """Deal the inputs of row positions ``start … start + count − 1`` of the input ``row`` out to the
    ``Q_last`` planes' rows ``dst{p}`` (from their position ``at``): plane ``p`` gets ``row[Q (i + a) + p]``."""
    last = plan.ndim - 1
    QL = plan.Q[last]
    w("# slice views first: the loop's indices are provably non-negative (it vectorises)")
    w(f"src = row[{QL} * ({start} + {a}{last}):]" if QL > 1 else f"src = row[{start} + {a}{last}:]")
    for p_ in range(QL):
        w(f"out{p_} = dst{p_}[{at}:]")
    w(f"for i in range({count}):")
    with w.indent():
        for p_ in range(QL):
            w(f"out{p_}[i] = src[{QL} * i + {p_}]" if QL > 1 else "out0[i] = src[i]")


def _emit_pad(plan: KernelPlan, w: Writer) -> None:
    """``pad``: copy ``x`` into its zero-bordered input planes, one parallel iteration per (batch, channel).

    Plane ``r`` (input phase ``r = (r_0, …)``, C order) holds ``x[Q (u + a) + r]`` at plane position
    ``u``; only positions inside ``x`` are written (the border keeps the zeros it was allocated with).
    Along the last dimension an input row is read once and dealt out to its ``Q_last`` planes
    (de-interleaved) in one loop; every plane starts at the same position, and the few positions at the
    high end where not every plane is in range are copied one by one.
    """
    D = plan.ndim
    last = D - 1
    QL = plan.Q[last]
    a_args = ", ".join(f"a{d}" for d in dims(plan))
    l_args = ", ".join(f"L{d}" for d in dims(plan))
    w("@numba.njit(parallel=True, cache=True)")
    w(f"def pad(x, xs, {a_args}, {l_args}):")
    with w.indent():
        w('"""xs[b, c, r, flat(u)] = x[b, c, Q (u + a) + r] for every u with 0 ≤ u < L and the input inside x."""')
        for d in range(D - 1, -1, -1):
            w(f"S{d} = {'1' if d == D - 1 else f'S{d + 1} * L{d + 1}'}  # plane stride of dimension {d}")
        w("for item in prange(x.shape[0] * x.shape[1]):")
        with w.indent():
            w("b = item // x.shape[1]")
            w("c = item - b * x.shape[1]")
            w("xc = x[b, c]")
            _emit_row_inputs(plan, "a", w)
            w("r = 0  # the plane of (r_0, …, r_{D−2}, 0)")
            for d in range(D - 1):
                w(f"for r{d} in range(Q[{d}]):")
                w.indent()
            for d in range(D - 1):
                w(f"u{d}_first = max(0, -a{d})")
                w(f"u{d}_stop = min(L{d}, -((r{d} - xc.shape[{d}]) // Q[{d}]) - a{d})  # Q (u + a) + r < n")
            for d in range(D - 1):
                w(f"for u{d} in range(u{d}_first, u{d}_stop):")
                w.indent()
            src = "xc[" + ", ".join(f"Q[{d}] * (u{d} + a{d}) + r{d}" for d in range(D - 1)) + "]" if D > 1 else "xc"
            row0 = " + ".join(f"u{d} * S{d}" for d in range(D - 1)) if D > 1 else "0"
            w(f"row = {src}")
            w(f"at = {row0}")
            for p_ in range(QL):
                w(f"dst{p_} = xs[b, c, r + {p_}, at:]")
            _emit_deal_row(plan, "first", "a", "first", "stop_all - first", w)
            if QL > 1:
                w("# the high end, where not every plane is in range (at most one position per plane)")
                for p_ in range(QL):
                    w(f"for u in range(stop_all, stop{p_}):")
                    w(f"    dst{p_}[u] = row[{QL} * (u + a{last}) + {p_}]")
            for d in range(D - 1):
                w.dedent()
            w(f"r += {QL}")
            for d in range(D - 1):
                w.dedent()


def _emit_fill(plan: KernelPlan, w: Writer) -> None:
    """``fill`` (1-D and 2-D): one block's input planes, copied from ``x`` into the calling thread's buffer.

    A block of work (``m0`` its first plane position) reads the plane positions ``m0 + m + Σ_d e_d S_d``
    (``m < M``, ``e`` a tap's block offset): the ``band`` positions from ``m0``.  Plane ``r`` holds
    ``x[Q (u + a) + r]`` at plane position ``u``; every position of the band is written, zero where that
    is outside ``x`` or past the planes (the buffer serves every block).  Along the last dimension an
    input row is read once and dealt out to its ``Q_last`` planes (de-interleaved) in one loop.
    """
    D = plan.ndim
    last = D - 1
    QL = plan.Q[last]
    assert _fills(plan)
    a_args = ", ".join(f"xa{d}" for d in dims(plan))
    l_args = ", ".join(f"L{d}" for d in dims(plan))
    w("@numba.njit(cache=True)")
    w(f"def fill(x, xb, b, ci0, m0, band, {a_args}, {l_args}):")
    with w.indent():
        w('"""xb[ci, r, i] = x[b, ci0 + ci, Q (u + a) + r] at the plane position u of flat index m0 + i, i < band')
        w('(zero outside x and past the planes)."""')
        _emit_row_inputs(plan, "xa", w)
        w("for ci in range(xb.shape[0]):")
        with w.indent():
            w("xc = x[b, ci0 + ci]")
            w(f"for rho in range(m0 // L{last}, -(-(m0 + band) // L{last})):  # rows of the last dimension")
            with w.indent():
                w(f"i0 = max(0, m0 - rho * L{last})  # the row's positions i0 … i1 − 1 are in the band")
                w(f"i1 = min(L{last}, m0 + band - rho * L{last})")
                w(f"at = rho * L{last} + i0 - m0")
                if D == 1:
                    w("inside = rho == 0  # past the line: zero")
                else:
                    w("u0 = rho  # (≥ L0: past the planes)")
                w("r = 0  # the plane of (r_0, …, r_{D−2}, 0)")
                for d in range(D - 1):
                    w(f"for r{d} in range(Q[{d}]):")
                    w.indent()
                for p_ in range(QL):
                    w(f"dst{p_} = xb[ci, r + {p_}, at:at + i1 - i0]")
                if D > 1:
                    for d in range(D - 1):
                        w(f"s{d} = Q[{d}] * (u{d} + xa{d}) + r{d}  # the input row's index along {d}")
                    inside = " and ".join(["u0 < L0"] + [f"0 <= s{d} < x.shape[{d + 2}]" for d in range(D - 1)])
                    w(f"inside = {inside}")
                w("if not inside:")
                with w.indent():
                    w("for i in range(i1 - i0):")
                    with w.indent():
                        for p_ in range(QL):
                            w(f"dst{p_}[i] = 0.0")
                w("else:")
                with w.indent():
                    src = "xc[" + ", ".join(f"s{d}" for d in range(D - 1)) + "]" if D > 1 else "xc"
                    w(f"row = {src}")
                    w("for i in range(i0, min(first, i1)):  # before the input")
                    with w.indent():
                        for p_ in range(QL):
                            w(f"dst{p_}[i - i0] = 0.0")
                    w("c0 = max(first, i0)")
                    w("c1 = max(c0, min(stop_all, i1))")
                    _emit_deal_row(plan, "c0", "xa", "c0 - i0", "c1 - c0", w)
                    w("for i in range(c1, i1):  # the high end: past the input (where not every plane is, one by one)")
                    with w.indent():
                        for p_ in range(QL):
                            val = f"row[{QL} * (i + xa{last}) + {p_}]" if QL > 1 else f"row[i + xa{last}]"
                            w(f"dst{p_}[i - i0] = {val} if i < stop{p_} else 0.0")
                w(f"r += {QL}")
                for d in range(D - 1):
                    w.dedent()


def _emit_acc_stride(w: Writer) -> None:
    w("@numba.njit(cache=True)")
    w("def acc_stride(n, itemsize, rows):")
    with w.indent():
        w('"""Distance (elements) between the accumulator rows of a block: ``n`` or a little more.')
        w()
        w("A multiple of 16 elements (whole cache lines for float32) such that no two of ``rows``")
        w("consecutive rows start within 256 bytes of a multiple of 4 KiB of each other.  Rows exactly")
        w("4 KiB apart (e.g. 510 float32 columns: 2 rows = 4080 bytes) make the CPU see false")
        w("dependencies between the stores to one channel's accumulator and the loads of another's")
        w("(\"4K aliasing\"), which slowed the micro-kernel by ~30 % on x86.")
        w('"""')
        w("stride = ((n + 15) // 16) * 16")
        w("for _ in range(256):")
        with w.indent():
            w("ok = True")
            w("for k in range(1, rows):")
            with w.indent():
                w("r = (k * stride * itemsize) % 4096")
                w("if r < 256 or r > 4096 - 256:")
                w("    ok = False")
            w("if ok:")
            w("    return stride")
            w("stride += 16")
        w("return ((n + 15) // 16) * 16")


# --- the kernel ------------------------------------------------------------------------------------------


def _tap_offset(plan: KernelPlan, T: int, t: int) -> str:
    """Source text: tap ``t``'s offset in its plane from the block's first plane position ``m0`` — in the
    block's band (``fill``, 1-D and 2-D) or in the whole planes (``pad``, from 3-D on: ``m0 +`` …)."""
    D = plan.ndim
    shift = " + ".join([f"SHIFT_{T}[i, {t}, {d}] * S{d}" for d in range(D - 1)] + [f"SHIFT_{T}[i, {t}, {D - 1}]"])
    return shift if _fills(plan) else f"m0 + {shift}"


def _emit_accumulate_one(plan: KernelPlan, T: int, w: Writer) -> None:
    """The fused loop of the phases with ``T`` taps for the one output channel ``co`` (row ``c0`` of acc).

    acc[k, c0, m] += Σ_ci Σ_t w[s_t, ci, co] · plane_{r_t}[ci0 + ci][m0 + o_t + m]   (m < M)

    Used for the channels left over when ``C_out/G`` is not a multiple of ``CO_BLOCK``: per input
    channel, the phase's taps are fused into one expression over contiguous slices of the planes.
    """
    w(f"for i in range(PHASES_{T}.shape[0]):  # every phase with {T} tap{'s' if T != 1 else ''}")
    with w.indent():
        w(f"k = PHASES_{T}[i]")
        w("a0 = acc[k, c0 + 0]")
        for t in range(T):
            w(f"o{t} = {_tap_offset(plan, T, t)}")
        w("; ".join(f"s{t} = SLOTS_{T}[i, {t}]" for t in range(T)))
        w("; ".join(f"r{t} = PLANES_{T}[i, {t}]" for t in range(T)))
        w("for ci in range(cin_g):")
        with w.indent():
            w("xp = xb[ci]" if _fills(plan) else "xp = xs[b, ci0 + ci]")
            for t in range(T):
                w(f"x{t} = xp[r{t}, o{t}:o{t} + M]")
            w("; ".join(f"w0_{t} = w[s{t}, ci, co]" for t in range(T)))
            w("for m in range(M):")
            with w.indent():
                w("; ".join(f"v{t} = x{t}[m]" for t in range(T)))
                w("a0[m] += " + " + ".join(f"w0_{t} * v{t}" for t in range(T)))


def _emit_accumulate_wide(plan: KernelPlan, T: int, width: int, w: Writer) -> None:
    """The block_wide micro-kernel of the phases with ``T`` taps: ``width`` output channels from ``co``.

    acc[k, c, m] = bias[co + c] + Σ_ci Σ_t w[s_t, ci, co + c] · plane_{r_t}[ci0 + ci][m0 + o_t + m]

    A *register tile*, like a GEMM micro-kernel: the columns are taken ``TILE`` at a time, and for each
    such chunk the ``width × TILE`` accumulators (``width × TILE / 16`` AVX-512 registers for float32)
    live in ``tile``, a stack array (:func:`symdeconv.codegen.runtime.stack_tile`), for the whole loop
    over the group's input channels: LLVM proves that nothing else in the loop touches a stack array
    and keeps it in registers, so per input channel and tap there is one load of ``TILE`` input
    columns and ``width`` fused multiply-adds per vector, and no accumulator load or store.  The taps
    are taken ``TAP_GROUP`` at a time, one column loop per group, so that only the group's
    ``width · TAP_GROUP`` weights (loop invariants of its column loop) need registers beside the tile.
    The taps are added one by one onto the accumulator, ``a = ((a + w_0 v_0) + w_1 v_1) + …``, in the
    same order whatever the grouping, so with ``fastmath={"contract"}`` every tap is one fused
    multiply-add.  The rows of ``acc`` (the block's
    results, which the write step reads) lie ``acc_stride`` elements apart (no 4 KiB aliasing).

    Which columns are tiled is chosen per block and phase, at run time, by counting tiles:

    * *flat*: the block's ``M`` flattened columns, whole rows including the planes' border columns
      (whose results are thrown away) — few, long lines of work, best when rows are short;
    * *row-exact* (D ≥ 2, and the phase's outputs in a row span at least ``TILE`` columns): per row that
      holds outputs of the phase, exactly its output columns ``[cf, cs)``, in tiles starting at
      ``cf, cf + TILE, …``, the last one moved back to end at ``cs`` (it recomputes a few columns of
      its neighbour, and stores the same values).  Rows and border columns without outputs of the
      phase are skipped: ~20 % less work on a 3-D layer whose rows are 32 outputs long.

    Every tile starts from the bias (not from ``acc``), so a column computed twice gets the same value.
    """
    D = plan.ndim
    last = D - 1
    w(f"for i in range(PHASES_{T}.shape[0]):  # every phase with {T} tap{'s' if T != 1 else ''}")
    with w.indent():
        w(f"k = PHASES_{T}[i]")
        w("# tap t reads x at flat position xo_t + m of an input channel's planes, and weight w[s_t, ci, co + c];")
        w("# max(0, ·) tells the compiler these are non-negative (no negative-index wraparound in the loops)")
        for t in range(T):
            w(f"xo{t} = max(0, PLANES_{T}[i, {t}] * plane + {_tap_offset(plan, T, t)})")
        w("; ".join(f"s{t} = max(0, SLOTS_{T}[i, {t}])" for t in range(T)))
        if D == 1:
            w("lines = 1  # 1-D: the block's positions are one line of work")
            w("span = M")
        else:
            w(f"# the phase's output columns [cf, cs) in a row of acc (position j − jlo{last} of the last dimension)")
            w(f"p{last} = k % {plan.P[last]}")
            w(f"cf = max(0, -((p{last} - lo{last}) // {plan.P[last]}) - jlo{last})")
            w(f"cs = min(L{last}, -((p{last} - lo{last} - y.shape[{last + 2}]) // {plan.P[last]}) - jlo{last})")
            w("row_exact = cs - cf >= TILE and nq * (-(-(cs - cf) // TILE)) < M // TILE  # fewer tiles")
            w("lines = nq if row_exact else 1")
            w("span = cs - cf if row_exact else M")
        w("for line in range(lines):")
        with w.indent():
            w("base = 0")
            if D > 1:
                w("if row_exact:")
                with w.indent():
                    w("# skip a row without outputs of this phase (its position j is outside the phase's range)")
                    emit_row_position(D - 1, "line", w)
                    w(f"kk = k // {plan.P[last]}")
                    w("ok = True")
                    for d in range(D - 2, -1, -1):
                        w(f"p{d} = kk % {plan.P[d]}")
                        w(f"kk = kk // {plan.P[d]}")
                        w(f"t{d} = {plan.P[d]} * (jlo{d} + u{d}) + p{d} - lo{d}")
                        w(f"if t{d} < 0 or t{d} >= y.shape[{d + 2}]:")
                        w("    ok = False")
                    w("if not ok:")
                    w("    continue")
                    w(f"base = line * L{last} + cf")
            w("for tc in range(-(-span // TILE)):  # TILE columns at a time: the tile stays in vector registers")
            with w.indent():
                w("mc = base + min(tc * TILE, span - TILE)")
                w("for m in range(TILE):")
                with w.indent():
                    for c in range(width):
                        w(f"tile[{c}, m] = bias[cw + {c}]")
                w("; ".join(f"d{t} = max(0, xo{t} + mc)" for t in range(T)))
                w("for ci in range(cin_g):")
                with w.indent():
                    if not _fills(plan):
                        w("c_in = ci0 + ci")
                    for c in range(width):
                        w("; ".join(f"w{c}_{t} = w[s{t}, ci, cw + {c}]" for t in range(T)))
                    read = "xflat[ci, " if _fills(plan) else "xflat[b, c_in, "
                    emit_tap_loops(T, width, lambda t: f"{read}d{t} + m]", w)
                w("acc[k, :, mc:mc + TILE] = tile")


def _emit_write(plan: KernelPlan, w: Writer) -> None:
    """acc[phase, c, row · L_last + k − jlo_last] → y[b, co + c, …, P k + p − lo] for c < width.

    Row by row, the phases of the last dimension are written together (interleaved); the border
    outputs where not every phase is in range are written one by one.
    """
    D, P = plan.ndim, plan.P
    last = D - 1
    PL = P[last]
    w(f"# write: outputs y[..., {PL} k + p − lo{last}] of all {PL} last-dimension phase(s) p, row by row")
    for p in range(PL):
        w(f"first{p} = -(({p} - lo{last}) // {PL})")
        w(f"stop{p} = -(({p} - lo{last} - y.shape[{last + 2}]) // {PL})")
    if PL == 1:
        w("first_all = first0")
        w("stop_all = stop0")
    else:
        w("first_all = max(" + ", ".join(f"first{p}" for p in range(PL)) + ")")
        w("stop_all = min(" + ", ".join(f"stop{p}" for p in range(PL)) + ")")
    outer_phases = sorted({ph.phase[:last] for ph in plan.phases})
    index = {ph.phase: k for k, ph in enumerate(plan.phases)}
    if D == 1:
        w("for r in range(1):")
        w.indent()
        w("k0 = jlo0 + q0  # the block's positions")
        w("k1 = k0 + nq")
        w("seg = 0")
    else:
        w("for r in range(nq):")
        w.indent()
        emit_row_position(D - 1, "r", w)
        for d in range(D - 1):
            w(f"j{d} = jlo{d} + u{d}")
        w(f"k0 = jlo{last}")
        w(f"k1 = k0 + L{last}")
        w(f"seg = r * L{last}")
    w("kA = max(k0, first_all)")
    w("kB = min(k1, stop_all)")
    w("if kB < kA:")
    w("    kB = kA")
    emit_border_flags(PL, w)
    for op in outer_phases:
        opened = 0
        if D > 1:
            conds = []
            for d in range(D - 1):
                w(f"t{d} = {P[d]} * j{d} + {op[d]} - lo{d}" if P[d] != 1 else f"t{d} = j{d} - lo{d}")
                conds.append(f"t{d} >= 0 and t{d} < y.shape[{d + 2}]")
            w(f"if {' and '.join(conds)}:  # output phase{'s' if PL > 1 else ''} "
              + ", ".join(phase_text(op + (p,)) for p in range(PL)))
            w.indent()
            opened += 1
        ks = [index[op + (p,)] for p in range(PL)]
        w("for c in range(width):")
        with w.indent():
            ts = "".join(f", t{d}" for d in range(D - 1))
            emit_row_write(PL, last, f"y[b, co_first + c{ts}", lambda p: f"acc[{ks[p]}, c, seg", w)
        for _ in range(opened):
            w.dedent()
    w.dedent()


def _emit_kernel(plan: KernelPlan, geo: dict, w: Writer) -> None:
    D = plan.ndim
    last = D - 1
    ls = ", ".join(f"L{d}" for d in dims(plan))
    js = ", ".join(f"jlo{d}" for d in dims(plan))
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    n_ph = len(plan.phases)
    by_taps = _by_taps(plan)
    w("@numba.njit(parallel=True, cache=True, fastmath={'contract'})")
    fused = _fills(plan)
    xa = ", ".join(f"xa{d}" for d in dims(plan))
    if fused:
        w(f"def kernel(x, xb_all, tags, y, w, bias, groups, rows, block_rows, band, {js}, {ls}, {lo}, {xa}):")
    else:
        w(f"def kernel(xs, y, w, bias, groups, rows, block_rows, {js}, {ls}, {lo}):")
    with w.indent():
        w('"""One parallel iteration per (batch, row block, group, block of CO_BLOCK output channels).')
        w()
        if fused:
            w("A block of work is the rows q0 … q0 + nq − 1 of the planes.  Its input planes are copied from x")
            w("(``fill``) into this thread's block buffer when the thread's previous iteration had another block")
            w("(``tags``; -1 at the start of a call), so the iterations of a block's output channels on one")
            w("thread share the copy.  For every phase, the accumulators acc[phase, c, m] start at the bias and")
            w("gather the phase's taps over the group's input channels; then they are written to y.")
        else:
            w("A block of work is the rows q0 … q0 + nq − 1 of the planes (``xs``, from ``pad``): for every phase,")
            w("the accumulators acc[phase, c, m] start at the bias and gather the phase's taps over the group's")
            w("input channels; then they are written to y.")
        w('"""')
        w("batch, c_out = y.shape[0], y.shape[1]")
        w(f"cin_g = {'x' if fused else 'xs'}.shape[1] // groups  # input channels per group")
        w("cout_g = c_out // groups  # output channels per group")
        w("wide = cout_g // CO_BLOCK  # blocks of CO_BLOCK channels per group")
        w("rest = cout_g - wide * CO_BLOCK  # remaining channels, one at a time")
        w("per_group = wide + (1 if rest > 0 else 0)")
        w("row_blocks = (rows + block_rows - 1) // block_rows")
        for d in range(D - 1, -1, -1):
            w(f"S{d} = {'1' if d == last else f'S{d + 1} * L{d + 1}'}  # plane stride of dimension {d}")
        if fused:
            w("plane = xb_all.shape[3]  # elements per plane of a block buffer")
        else:
            w("xflat = xs.reshape(xs.shape[0], xs.shape[1], xs.shape[2] * xs.shape[3])  # a channel's planes, flat")
            w("plane = xs.shape[3]  # elements per plane")
        w("for item in prange(batch * row_blocks * groups * per_group):")
        with w.indent():
            w("b = item // (row_blocks * groups * per_group)")
            w("i = item - b * (row_blocks * groups * per_group)")
            w("rb = i // (groups * per_group)")
            w("i = i - rb * (groups * per_group)")
            w("g = i // per_group")
            w("kb = i - g * per_group")
            w("q0 = rb * block_rows")
            w("nq = min(block_rows, rows - q0)")
            w("ci0 = g * cin_g")
            if D == 1:
                w("M = -(-nq // VEC) * VEC  # 1-D: block positions q0 … q0 + nq − 1 (and a few more, unused)")
                w("m0 = q0")
            else:
                w(f"M = -(-(nq * L{last}) // VEC) * VEC  # nq whole rows (and < VEC columns more, unused)")
                w(f"m0 = q0 * L{last}  # first plane position of the block")
            if fused:
                w("thread = numba.get_thread_id()")
                w("xb = xb_all[thread]  # this thread's block buffer")
                w("block = (b * row_blocks + rb) * groups + g")
                w("if tags[thread] != block:")
                w("    tags[thread] = block")
                w(f"    fill(x, xb, b, ci0, m0, band, {xa}, {ls})")
                w("xflat = xb.reshape(cin_g, xb.shape[1] * xb.shape[2])  # the block's planes of an input channel, flat")
            w("if kb < wide:")
            w("    co_first = g * cout_g + kb * CO_BLOCK")
            w("    width = CO_BLOCK")
            w("else:")
            w("    co_first = g * cout_g + wide * CO_BLOCK")
            w("    width = rest")
            w("# accumulator rows acc[k, c, :M], acc_stride(M) ≥ M apart (no 4 KiB aliasing between rows)")
            w(f"acc = np.empty(({n_ph}, CO_BLOCK, acc_stride(M, y.itemsize, CO_BLOCK)), dtype=y.dtype)")
            no_taps = [k for k, ph in enumerate(plan.phases) if not ph.slots]
            w("if kb < wide:")
            with w.indent():
                if no_taps:
                    w(f"for k in {tuple_text(no_taps)}:  # phases without taps: bias only (the tiles start from the bias)")
                    w("    for c in range(width):")
                    w("        acc[k, c, :] = bias[co_first + c]")
                w(f"# CO_BLOCK = {geo['co_block']} output channels per pass; their register tile (stack array)")
                w(f"tile = stack_tile(y, {geo['co_block']}, {geo['tile']})")
                w("co = co_first")
                w("cw = max(0, co)  # (non-negative: constant offsets cw + c)")
                if not by_taps:
                    w("pass  # no phase has a tap: bias only")
                for T in by_taps:
                    _emit_accumulate_wide(plan, T, geo["co_block"], w)
            w("else:")
            with w.indent():
                w(f"for k in range({n_ph}):  # the one-channel pass adds onto the bias")
                w("    for c in range(width):")
                w("        acc[k, c, :] = bias[co_first + c]")
                w("for c0 in range(rest):  # the remaining channels, one per pass")
                with w.indent():
                    w("co = co_first + c0")
                    if not by_taps:
                        w("pass  # no phase has a tap: bias only")
                    for T in by_taps:
                        _emit_accumulate_one(plan, T, w)
            _emit_write(plan, w)
