"""CPU emitter, stencil path of a grouped plan: groups with ONE input and ONE output channel.

A layer whose groups each have a single input and a single output channel — a 1 → 1 layer, a
depthwise layer (``groups = C_in = C_out``) — is, per channel ``c``, a plain multi-phase stencil:

    y[c, P j + p − lo] = bias[c] + Σ_t w[s_t, 0, c] · x[c, Q j + off_t]      (taps t of phase p).

There is no channel reduction to block for, so the GEMM-like path of
:mod:`symdeconv.codegen.emit_cpu_layers` (zero-padded planes, channel blocks) only adds memory
traffic: the padding copy is a full extra read and write of the input.  This path reads ``x``
directly, as the chain emitter (:mod:`symdeconv.codegen.emit_cpu_chain`) does:

* **interior blocks** of the last dimension — every tap reads inside ``x`` and every phase's output
  lies inside the window.  Views of the input rows and of the output row start at the first block of
  the run, so every index is a non-negative constant-stride expression ``Q i + k`` / ``P i + p``; the
  ``P_last`` phases of the last dimension are computed together and written interleaved (contiguous
  outputs ``P i … P i + P − 1``), each phase's taps fused into one expression of scalar weights.
  Numba / LLVM vectorise that loop (no bounds test, no wraparound test, no runtime stride).
* **border blocks** — the few blocks at the ends of a row: a tap is added only where its input
  position lies inside ``x``.  Input rows (leading dimensions) outside ``x`` are replaced by a row of
  zeros, so a row of blocks is either computed by the same code or not at all (rows whose output lies
  outside the window).

A call's work items are (batch × channels × blocks of rows × chunks of the last dimension); a block
of rows holds about ``STENCIL_TARGET`` outputs, so a single large channel (N = 1, 1 → 1) still gives
hundreds of equal work items for the threads and a small channel (depthwise, 64²) is one item.
``rt_driver.stencil_geometry`` (plain Python, once per shape, from the plan) works out the items and a
geometry vector; ``stencil_range(i0, i1, thread, …)``, a serial Numba function over items
``i0 … i1 − 1``, is run by ``rt_driver.run_stencil`` on the runtime's native thread pool, as the GEMM-like
kernel is: no ``prange``, whose parallel lowering took as long to compile as the rows themselves.  An
output row loads the weights of its phases into scalars, so that only they are live in its interior
loop.  Accumulation is in the data's dtype, compiled with ``fastmath={"contract"}`` only
(multiply-adds may fuse; no reassociation).

Design choices of the row code (each measured; the figures are in ``benchmarks/README.md``):

* the row of zeros is allocated by the driver once per shape, and is empty in 1-D, where no row lies
  outside x;
* the border loop, which runs one or two blocks per row, has a second exit (the window's end) that
  keeps it scalar: vectorised with masked gathers and scatters, its set-up cost more than the blocks;
* ``stencil_rows`` allocates nothing and is compiled without reference counting (``_nrt=False``):
  Numba would otherwise count references to every row view with atomic operations;
* an output row loads only its own phases' weights, so that few broadcast registers are live in its
  interior loop;
* a large output (``stream_min`` bytes or more: ``machine.stream_min_bytes()``, passed by the driver) is
  written with streaming stores: each row's outputs of the work item go to a stack buffer first, by the
  same border and interior code, then whole 64-byte lines to the output by non-temporal stores, those of
  each step of ``STREAM_STEP`` interior blocks as soon as it is computed (``runtime.stream_ready``), so
  that the stores drain while the next step is computed, the rest at the row's end (``runtime.stream_row``).
  Only rows of whole lines, or long ones, are streamed: a row's ordinary stores to its first and last lines
  took away the gain of the others.

The path is chosen at run time by the module's ``run`` (``C_in = C_out = groups``), from the module's third
call per dtype in a process (``rt_driver.RUNTIME_CALLS``: the first ones run on the shared runtime, so that a
layer called once or twice compiles nothing of its own); plans with more
than ``STENCIL_MAX_TAPS`` taps (whose spelled-out source would be long and slow to compile) keep the
GEMM-like path for every channel configuration.
"""

from __future__ import annotations

import math

from ._alloc import LINE_BYTES
from ._source import Writer, assign_sum, phase_text, plus, times
from .layer_plan import STENCIL_MAX_TAPS
from .plan import KernelPlan

__all__ = ["emit_cpu_stencil", "has_stencil", "STENCIL_CHUNK", "STENCIL_TARGET", "STENCIL_MAX_TAPS"]

#: blocks of the last dimension per work item (long 1-D signals are cut into chunks of this many blocks)
STENCIL_CHUNK = 4096

#: outputs a work item aims at: rows of blocks are grouped until an item holds about this many
STENCIL_TARGET = 16384

#: output rows are streamed when they are whole 64-byte lines (an aligned output whose rows are a whole number
#: of lines long), or at least this long: short rows whose first and last lines take ordinary stores gain
#: nothing from streaming the rest (measured in benchmarks/README.md)
STREAM_MIN_ROW = 1024

#: interior blocks of a row computed at a time: in a streamed row, the lines they finish are streamed before
#: the next step is computed, so that the writes drain while the CPU computes (streaming a row only after all
#: of it was computed was slower; steps of 64 and 256 measured as 128: benchmarks/README.md)
STREAM_STEP = 128

#: most dimensions for which the module carries a stencil: in 1-D and 2-D the benchmarks show it paying
#: (1 -> 1 and depthwise layers, ``benchmarks/README.md``); a 3-D stencil's unrolled rows were ~500 lines
#: of the module and slow to compile, and 3-D layers with one channel per group take the runtime's
#: one-channel pass instead
STENCIL_MAX_NDIM = 2


def has_stencil(plan: KernelPlan) -> bool:
    """Does the layer module of ``plan`` carry a stencil path (for one channel per group)?"""
    return plan.kind == "grouped" and plan.n_taps <= STENCIL_MAX_TAPS and plan.ndim <= STENCIL_MAX_NDIM


def _ceil_div_neg(expr: str, k: int, negated: str) -> str:
    """``-((expr) // k)``: ``ceil(−expr / k)`` without floats; ``negated`` (−expr) when ``k`` is 1."""
    return f"-(({expr}) // {k})" if k != 1 else negated


def emit_cpu_stencil(plan: KernelPlan, w: Writer) -> None:
    """Append the stencil of ``plan`` (a grouped plan, ``has_stencil(plan)``) to ``w``: its work-split
    constants, ``stencil_rows`` and the range function ``stencil_range``."""
    D = plan.ndim
    last = D - 1
    P, Q = plan.P, plan.Q
    slots = [(s, off) for ph in plan.phases for s, off in ph.slots]
    o_min = min((off[last] for _, off in slots), default=0)
    o_max = max((off[last] for _, off in slots), default=0)
    lead_offsets = sorted({off[:last] for _, off in slots})
    row_of = {e: i for i, e in enumerate(lead_offsets)}
    lead_phases = sorted({ph.phase[:last] for ph in plan.phases})
    phase_of = {ph.phase: ph for ph in plan.phases}
    names = ", ".join(f"lo{d}" for d in range(D))
    PL, QL = P[last], Q[last]

    w(f"STENCIL_CHUNK = {STENCIL_CHUNK}  # blocks of the last dimension per work item")
    w(f"STENCIL_TARGET = {STENCIL_TARGET}  # outputs per work item (rows of blocks are grouped)")
    w(f"STREAM_MIN_ROW = {STREAM_MIN_ROW}  # a large output's rows are streamed when whole lines or this long")
    w(f"STREAM_STEP = {STREAM_STEP}  # interior blocks computed before the finished lines of a streamed row go out")
    w("STENCIL_WORK = (STENCIL_CHUNK, STENCIL_TARGET, STREAM_MIN_ROW)  # how rt_driver.stencil_geometry splits a call")
    w()
    w()
    js = ", ".join(f"jlo{d}, jhi{d}" for d in range(last))
    ns = ", ".join(f"n{d}, out{d}" for d in range(D))
    extra = ", ".join(a for a in (js, ns, names) if a)
    # counting references to the row views cost 7 % of a 1 → 1 layer's time on 256² (numba marks its own
    # hot helpers _nrt=False too)
    w("# _nrt=False: no reference counting of the row views made here (this function allocates nothing)")
    w("@njit(cache=True, fastmath={'contract'}, _nrt=False)")
    w(f"def stencil_rows(xc, yc, w, c, bv, zrow, stream, r0, r1, ja, jb, kA, kB, {extra}):")
    with w.indent():
        w('"""Rows r0 … r1 − 1 of blocks of one channel: yc (its output) from xc (its input) and w[:, 0, c].')
        w()
        w("Blocks ja … kA − 1 and kB … jb − 1 of the last dimension are border blocks (each tap tested),")
        w("kA … kB − 1 interior blocks (one vectorised loop, all last-dimension phases written interleaved).")
        w("When ``stream``, a row's outputs tb … te − 1 go to the buffer rb first (output t at rb[t − tb]),")
        w("then to the row, whole lines by streaming stores: those each step of STREAM_STEP interior blocks")
        w("finished while the next step is computed, the rest at the row's end.  An output row loads the")
        w("weights of its phases only (few registers live in its interior loop).")
        w('"""')
        w(f"rb = rt.stack_tile(yc, 1, {PL * STENCIL_CHUNK})[0]  # a streamed row's outputs")
        w(f"tb = max(0, {times(PL, 'ja')} - lo{last}) if stream else 0  # the first output of the chunk")
        w(f"te = min(out{last}, {times(PL, 'jb')} - lo{last})  # … and its end")
        w("for r in range(r0, r1):")
        with w.indent():
            if D == 1:
                w("xr0 = xc")
            else:
                if last > 1:
                    w("u = r")
                    for d in range(last - 1, 0, -1):
                        w(f"j{d} = jlo{d} + u % (jhi{d} - jlo{d})")
                        w(f"u = u // (jhi{d} - jlo{d})")
                w("j0 = jlo0 + " + ("u" if last > 1 else "r"))
                for e, i in row_of.items():
                    pos = [plus(times(Q[d], f"j{d}"), e[d]) for d in range(last)]
                    if last == 1:
                        w(f"xr{i} = rt.row_or(xc, {pos[0]}, zrow)  # input row x[{pos[0]}, :], or zeros")
                        continue
                    cond = " and ".join(f"0 <= {p} < n{d}" for d, p in enumerate(pos))
                    w(f"if {cond}:  # input row x[{', '.join(pos)}, :]")
                    w(f"    xr{i} = xc[{', '.join(pos)}]")
                    w("else:")
                    w(f"    xr{i} = zrow")
            for lp in lead_phases:
                opened = 0
                if D > 1:
                    ts = [plus(times(P[d], f"j{d}"), lp[d]) + f" - lo{d}" for d in range(last)]
                    for d in range(last):
                        w(f"t{d} = {ts[d]}")
                    cond = " and ".join(f"0 <= t{d} < out{d}" for d in range(last))
                    w(f"if {cond}:  # output row of leading phase {phase_text(lp)}")
                    w.indent()
                    opened = 1
                yo = f"yc[{', '.join(f't{d}' for d in range(last))}]" if D > 1 else "yc"
                w(f"yr = rb if stream else {yo}")
                for p in range(PL):
                    ss = [s_ for s_, _ in phase_of[lp + (p,)].slots]
                    for k in range(0, len(ss), 4):  # (four weights to a line)
                        group = ss[k:k + 4]
                        w(", ".join(f"w{s_}" for s_ in group) + " = " + ", ".join(f"w[{s_}, 0, c]" for s_ in group))
                _emit_row(plan, lp, phase_of, row_of, o_min, yo, w)
                w("if stream:")
                w(f"    rt.stream_row({yo}, tb, rb, te - tb, done)")
                for _ in range(opened):
                    w.dedent()
    w()
    w()
    w("# nogil: without the native runtime, rt_driver runs the work items on Python threads")
    w("@njit(cache=True, nogil=True, _nrt=False)")
    w("def stencil_range(i0, i1, thread, x, y, w, bias, zrow, g):")
    with w.indent():
        w('"""Work items i0 … i1 − 1 (batch, channel, block of rows of blocks, chunk of the last dimension) of')
        w(f"a call with one input and one output channel per group: y[b, c] from x[b, c] alone, x read in place.")
        w(f"Tap offsets along the last dimension lie in [{o_min}, {o_max}]; ``g``: ``rt_driver.stencil_geometry``'s")
        w("vector; ``zrow``: zeros; ``thread``: unused (the runtime's range-function signature).  Each item runs")
        w('``stencil_rows``; the items\' streaming stores are ordered before the function returns."""')
        used = [(f"jlo{d}", 2 * d) for d in range(last)] + [(f"jhi{d}", 2 * d + 1) for d in range(last)]
        used += [(f"lo{d}", 2 * D + 6 + d) for d in range(D)] + [("stream", 3 * D + 8)]
        for k in range(0, len(used), 4):
            group = used[k:k + 4]
            w(", ".join(n for n, _ in group) + " = " + ", ".join(f"g[{i}]" for _, i in group))
        w("channels = y.shape[1]")
        w(", ".join(f"n{d}" for d in range(D)) + " = " + ", ".join(f"x.shape[{d + 2}]" for d in range(D)))
        w(", ".join(f"out{d}" for d in range(D)) + " = " + ", ".join(f"y.shape[{d + 2}]" for d in range(D)))
        w("for item in range(i0, i1):")
        with w.indent():
            w("b, c, r0, r1, ja, jb, kA, kB = rt.stencil_item(g, item, channels, STENCIL_CHUNK)")
            w("stencil_rows(x[b, c], y[b, c], w, c, bias[c], zrow, stream, r0, r1, ja, jb, kA, kB,")
            w(f"             {extra})")
        w("rt.store_fence()  # the items' streaming stores, before the call returns")


def _floor_plus_one(name: str, c: int, k: int) -> str:
    """``(name + c) // k + 1``, simplified where ``k`` is 1."""
    return f"({plus(name, c)}) // {k} + 1" if k != 1 else plus(name, c + 1)


def _emit_row(plan: KernelPlan, lp: tuple, phase_of: dict, row_of: dict, o_min: int, yo: str, w: Writer) -> None:
    """Border and interior blocks of one output row (leading phase ``lp``): outputs yr[P j + p − lo].  The
    interior runs in steps of ``STREAM_STEP`` blocks; in a streamed row (``yr`` is the buffer rb, ``yo`` the
    output row) the lines finished by each step are streamed before the next is computed."""
    D = plan.ndim
    last = D - 1
    PL, QL = plan.P[last], plan.Q[last]
    phases = [phase_of[lp + (p,)] for p in range(PL)]
    w("for side in range(2):  # border blocks: each tap tested against the input's extent")
    with w.indent():
        w("for j in range(ja if side == 0 else kB, kA if side == 0 else jb):")
        with w.indent():
            # a guard that is never true below jhi, but a second exit keeps the compiler from vectorising
            # the loop: vectorised, with masked gathers and scatters, its set-up cost more per row than
            # the one or two blocks it runs
            w(f"if {times(PL, 'j')} - lo{last} >= out{last}:  # past the window (never, for j < jhi): a second exit,")
            w("    break  # which keeps this loop of a few blocks scalar")
            for p, ph in enumerate(phases):
                w(f"t = {plus(times(PL, 'j'), p)} - lo{last}  # phase {phase_text(ph.phase)}")
                w(f"if 0 <= t < out{last}:")
                with w.indent():
                    w("acc = bv")
                    # one bounds test per input column: the taps reading it, from any input row, follow it
                    by_column: dict[int, list[str]] = {}
                    for s, off in ph.slots:
                        u = plus(times(QL, "j"), off[last])
                        by_column.setdefault(u, []).append(f"w{s} * xr{row_of[off[:last]]}[{u}]")
                    for u, terms in by_column.items():
                        w(f"if 0 <= {u} < n{last}:")
                        for k in range(0, len(terms), 4):
                            w(f"    acc += {' + '.join(terms[k:k + 4])}")
                    w("yr[t - tb] = acc")
    used_rows = sorted({row_of[off[:last]] for ph in phases for _, off in ph.slots})
    values = sorted({(row_of[off[:last]], off[last]) for ph in phases for _, off in ph.slots})

    w("done = 0  # lines of a streamed row already streamed")
    w("step = STREAM_STEP if stream and kB - kA > STREAM_STEP else kB - kA")
    w("i0 = kA")
    w("while i0 < kB:  # interior blocks j = i0 + i: views start at the step's first input / output")
    with w.indent():
        for rid in used_rows:
            w(f"xv{rid} = xr{rid}[{plus(times(QL, 'i0'), o_min)}:]")
        w(f"yv = yr[{times(PL, 'i0')} - lo{last} - tb:]")
        w("for i in range(min(step, kB - i0)):")
        with w.indent():
            for rid, o in values:
                w(f"v{rid}_{_tag(o)} = xv{rid}[{plus(times(QL, 'i'), o - o_min)}]")
            for p, ph in enumerate(phases):
                terms = " + ".join(f"w{s} * v{row_of[off[:last]]}_{_tag(off[last])}" for s, off in ph.slots)
                assign_sum(w, f"yv[{plus(times(PL, 'i'), p)}]", "=", "bv" + (f" + {terms}" if terms else ""),
                           f"phase {phase_text(ph.phase)}")
        w("if stream and i0 + step < kB:  # the finished lines go out while the next step is computed")
        w(f"    done = rt.stream_ready({yo}, tb, rb, {times(PL, 'i0 + step')} - lo{last} - tb, done)")
        w("i0 += step")


def _tag(o: int) -> str:
    return f"m{-o}" if o < 0 else str(o)

