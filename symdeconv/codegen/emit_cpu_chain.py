"""CPU emitter for chain plans (explicit taps): a plan → source of ``numba.njit`` kernels.

The kernel is a polyphase *gather*.  Output block ``j`` holds the outputs ``P j + p`` of every phase
``p``; phase ``p`` of output channel ``c'`` sums its taps, ``y[c', P j + p] = Σ a · x[c, Q j + offset]``,
with the tap offsets and numeric coefficients constants of the source.  Every output element is written
by exactly one iteration (no scatter, no atomics: deterministic) and no multiplication is by an
inserted zero.

Two kinds of block, decided per block from the plan's extreme tap offsets ``OFFSET_MIN`` /
``OFFSET_MAX`` (constants) and the input / output sizes (runtime):

* **interior blocks** — every tap reads inside ``x`` and every phase's output lands inside the output
  window.  Their code has no test at all: for a run of consecutive interior blocks, views of the
  input and output rows start at the run's first input / output position, so every index is a
  non-negative constant-stride expression ``Q i + k`` / ``P i + p`` of the loop counter ``i``, all
  phases of a block are computed together (outputs ``P i … P i + P − 1`` are contiguous) and each
  phase's taps are fused into one expression.  Numba / LLVM vectorise that loop (no wraparound test,
  no runtime stride).
* **border blocks** — the few blocks near the ends of a dimension.  Per tap offset and dimension a
  flag says whether the input position lies inside ``x``; a tap is added only where it does.

In 1-D the interior is cut into chunks of ``CHUNK`` blocks and one ``prange`` runs over
(batch × chunks), so two threads get long contiguous ranges; the border blocks run before it.  In
N-D the ``prange`` runs over (batch × blocks ``j0`` of the first dimension) and each output row of
the last dimension is split into border / interior / border blocks along that dimension when the
row's taps read inside ``x`` along the leading dimensions (otherwise the whole row is a border row).

Arithmetic is in float64 whatever the data type (inputs are widened on load, coefficients are
float64), then stored in ``y``'s dtype, as ``scipy.signal`` does.  The interior code is compiled with
``fastmath={"contract"}`` only: a multiply and the following add may become one fused multiply-add
(a single rounding instead of two — the sum is the same up to the last bit of each term, well within
every tolerance), never reassociated, so the order of the taps is the order of the normal form.
"""

from __future__ import annotations

from ._source import (
    Writer, axis_flags, chain_phase_body, coefficient, coefficients_function, dims, header, module_docstring,
    phase_banner, phase_text, plus, tap_comment, times,
)
from .plan import ChainTap, KernelPlan, PhasePlan

__all__ = ["emit_cpu_chain", "CHUNK", "offset_bounds"]

#: interior blocks per parallel work item of a 1-D kernel (≈ CHUNK · P outputs per item)
CHUNK = 2048


def offset_bounds(plan: KernelPlan) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Smallest and largest tap offset per dimension over every phase and channel (0 when no tap)."""
    offsets = [off for ph in plan.phases for off in ph.offsets()]
    if not offsets:
        zero = (0,) * plan.ndim
        return zero, zero
    lo = tuple(min(off[d] for off in offsets) for d in dims(plan))
    hi = tuple(max(off[d] for off in offsets) for d in dims(plan))
    return lo, hi


def _block_range(plan: KernelPlan, ph: PhasePlan, d: int) -> tuple[str, str]:
    """``first{d}``, ``stop{d}``: blocks ``j`` with ``lo ≤ P j + p < lo + out`` (ceil divisions)."""
    P, p = plan.P[d], ph.phase[d]
    first = f"-(({plus(f'-lo{d}', p)}) // {P})" if P != 1 else f"lo{d}"
    stop = f"-(({plus(f'-lo{d} - out{d}', p)}) // {P})" if P != 1 else f"lo{d} + out{d}"
    return first, stop


def _floordiv(expr: str, k: int) -> str:
    return expr if k == 1 else f"({expr}) // {k}"


def _name(c_in: int, offset: int) -> str:
    """Local variable holding input ``x[c_in, Q i + offset]`` of the interior loop."""
    return f"x{c_in}_{'m' if offset < 0 else ''}{abs(offset)}"


def _sum(terms: list[str]) -> str:
    out = terms[0]
    for t in terms[1:]:
        out += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return out


def _product(coeff: str, x: str) -> str:
    return x if coeff == "1.0" else (f"-{x}" if coeff == "-1.0" else f"{coeff} * {x}")


def emit_cpu_chain(plan: KernelPlan, title: str | None = None) -> str:
    """The complete source of the CPU kernel module of a chain plan (deterministic: same plan, same text)."""
    if plan.kind != "chain":  # pragma: no cover - emit_cpu dispatches
        raise ValueError("emit_cpu_chain needs a chain plan")
    w = Writer()
    for line in header(plan, "cpu", title) + module_docstring(plan, "cpu"):
        w(line)
    omin, omax = offset_bounds(plan)
    w()
    w("import numba")
    w("import numpy as np")
    w("from numba import prange")
    w()
    w("from symdeconv.codegen.runtime import full_width")
    w()
    w(f"NDIM = {plan.ndim}")
    w(f"P = {plan.P}  # output period (phases) per dimension")
    w(f"Q = {plan.Q}  # input period per dimension")
    w(f"C_IN, C_OUT = {plan.c_in}, {plan.c_out}")
    w(f"SYMBOLS = {plan.symbols!r}")
    w(f"OFFSET_MIN = {omin}  # smallest tap offset per dimension (over all phases and channels)")
    w(f"OFFSET_MAX = {omax}  # largest tap offset per dimension")
    if plan.ndim == 1:
        w(f"CHUNK = {CHUNK}  # interior blocks per parallel work item")
    w()
    w()
    coefficients_function(plan, w)
    w()
    w()
    if plan.ndim == 1:
        _border_block(plan, w)
        w()
        w()
        _interior_1d(plan, omin, w)
        w()
        w()
        _kernel_1d(plan, omin, omax, w)
    else:
        _block_nd(plan, omin, omax, w)
        w()
        w()
        _kernel_nd(plan, w)
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    w()
    w()
    w(f"def run(x, y, c, {lo}):")
    with w.indent():
        w('"""Run the kernel (inputs already validated and laid out as documented above)."""')
        w(f"kernel(x, y, c, {lo})")
    return w.text()


# ==================================================================================================
# border blocks: every tap tested
# ==================================================================================================


def _border_block(plan: KernelPlan, w: Writer) -> None:
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    P0 = plan.P[0]
    w("@numba.njit(cache=True)")
    w(f"def block(x, y, c, b, j0, {lo}):")
    with w.indent():
        w('"""The output rows of block j0 (one per phase of the first dimension) of every output channel, batch')
        w("entry b, each tap tested against the input's bounds.\"\"\"")
        for d in dims(plan):
            w(f"n{d} = x.shape[{d + 2}]")
            w(f"out{d} = y.shape[{d + 2}]")
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


def _phase_block(plan: KernelPlan, ph: PhasePlan, w: Writer) -> None:
    """Loops over the later dimensions' blocks of one phase, then the phase's taps (all tested)."""
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
    chain_phase_body(plan, ph, w)
    for _ in range(opened):
        w.dedent()


# ==================================================================================================
# 1-D: interior runs of blocks, chunked over a prange
# ==================================================================================================


def _used_coefficients(plan: KernelPlan) -> list[int]:
    return sorted({t.coeff for ph in plan.phases for _, taps in ph.rows for t in taps if t.coeff >= 0})


def _fused(taps: tuple[ChainTap, ...], name) -> str:
    terms = []
    for t in taps:
        coeff = coefficient(t)
        coeff = f"c{t.coeff}" if t.coeff >= 0 else coeff
        terms.append(_product(coeff, name(t)))
    return _sum(terms)


def _interior_1d(plan: KernelPlan, omin: tuple[int, ...], w: Writer) -> None:
    P, Q, o0 = plan.P[0], plan.Q[0], omin[0]
    w('@numba.njit(cache=True, fastmath={"contract"})')
    w("def interior(x, y, c, b, ja, count, lo0):")
    with w.indent():
        w(f'"""Interior blocks j = ja … ja + count − 1 of batch entry b: every tap reads inside x, every output')
        w("lands inside y, so nothing is tested.  Views start at the first input / output of the run: block")
        w(f"ja + i reads xv[{times(Q, 'i')} + offset − OFFSET_MIN] and writes yv[{times(P, 'i')} + phase].\"\"\"")
        w("full_width()  # the machine's full vector width, whatever LLVM's tuning prefers (runtime.full_width)")
        start_x = plus(times(Q, "ja"), o0)
        for ci in range(plan.c_in):
            w(f"xv{ci} = x[b, {ci}, {start_x}:]")
        for co in range(plan.c_out):
            w(f"yv{co} = y[b, {co}, {times(P, 'ja')} - lo0:]")
        for k in _used_coefficients(plan):
            w(f"c{k} = np.float64(c[{k}])")
        w("for i in range(count):")
        with w.indent():
            loads = sorted({(t.c_in, t.offset[0]) for ph in plan.phases for _, taps in ph.rows for t in taps})
            for ci, off in loads:
                where = plus(f"{Q}·j" if Q != 1 else "j", off)
                w(f"{_name(ci, off)} = np.float64(xv{ci}[{plus(times(Q, 'i'), off - o0)}])  # x{ci if plan.c_in > 1 else ''}[{where}]")
            for ph in plan.phases:
                p = ph.phase[0]
                for co, taps in ph.rows:
                    target = f"yv{co}[{plus(times(P, 'i'), p)}]"
                    label = f"phase {p}" + (f", output channel {co}" if plan.c_out > 1 else "")
                    if not taps:
                        w(f"{target} = 0.0  # {label}: no tap")
                        continue
                    w(f"{target} = {_fused(taps, lambda t: _name(t.c_in, t.offset[0]))}  # {label}")


def _kernel_1d(plan: KernelPlan, omin: tuple[int, ...], omax: tuple[int, ...], w: Writer) -> None:
    P, Q = plan.P[0], plan.Q[0]
    w("@numba.njit(parallel=True, cache=True)")
    w("def kernel(x, y, c, lo0):")
    with w.indent():
        w('"""Border blocks one by one (tested), then the interior in chunks of CHUNK blocks, in parallel."""')
        w("batch = x.shape[0]")
        w("n0 = x.shape[2]")
        w("out0 = y.shape[2]")
        w(f"# blocks j whose outputs {times(P, 'j')} + p (0 <= p < {P}) meet the window [lo0, lo0 + out0)")
        w(f"first = {_floordiv('lo0', P)}")
        w(f"end = -((-lo0 - out0) // {P})" if P != 1 else "end = lo0 + out0")
        w(f"# interior: {times(Q, 'j')} + OFFSET_MIN >= 0, {times(Q, 'j')} + OFFSET_MAX < n0, "
          f"{times(P, 'j')} >= lo0, {plus(times(P, 'j'), P - 1)} < lo0 + out0")
        ja_x = -(omin[0] // Q)
        ja_y = f"-((-lo0) // {P})" if P != 1 else "lo0"
        w(f"ja = min(max({ja_x}, {ja_y}), end)")
        jb_x = plus("(" + plus("n0", -1 - omax[0]) + f") // {Q}", 1) if Q != 1 else plus("n0", -omax[0])
        jb_y = _floordiv("lo0 + out0", P)
        w(f"jb = max(min({jb_x}, {jb_y}, end), ja)")
        w("for b in range(batch):")
        with w.indent():
            w("for j0 in range(first, ja):")
            w("    block(x, y, c, b, j0, lo0)")
            w("for j0 in range(jb, end):")
            w("    block(x, y, c, b, j0, lo0)")
        w("count = jb - ja")
        w("full = count // CHUNK")
        w("rest = count - full * CHUNK")
        w("pieces = full + (1 if rest > 0 else 0)")
        w("for item in prange(batch * pieces):")
        with w.indent():
            w("full_width()")
            w("b = item // pieces")
            w("k = item - b * pieces")
            w("interior(x, y, c, b, ja + k * CHUNK, CHUNK if k < full else rest, lo0)")


# ==================================================================================================
# N-D: rows along the last dimension, split into border / interior / border blocks
# ==================================================================================================


def _tag(offset: tuple[int, ...]) -> str:
    return "_".join(f"{'m' if o < 0 else ''}{abs(o)}" for o in offset)


def _flags(d: int, offsets: list[int], w: Writer) -> None:
    """Validity flags ``in{d}_{o}`` of input positions ``base{d} + o`` (names as in :func:`tap_ok`)."""
    for o in sorted(set(offsets)):
        pos = plus(f"base{d}", o)
        w(f"in{d}_{'m' if o < 0 else ''}{abs(o)} = ({pos} >= 0) & ({pos} < n{d})")


def _block_nd(plan: KernelPlan, omin: tuple[int, ...], omax: tuple[int, ...], w: Writer) -> None:
    L = plan.ndim - 1
    PL, QL = plan.P[L], plan.Q[L]
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    w('@numba.njit(cache=True, fastmath={"contract"})')
    w(f"def block(x, y, c, b, j0, {lo}):")
    with w.indent():
        w('"""The outputs of block j0 of the first dimension (every output channel, batch entry b), row by row')
        w(f"along the last dimension: border blocks j{L} tested tap by tap, interior blocks j{L} fused and untested.\"\"\"")
        w("full_width()  # the machine's full vector width, whatever LLVM's tuning prefers (runtime.full_width)")
        for d in dims(plan):
            w(f"n{d} = x.shape[{d + 2}]")
            w(f"out{d} = y.shape[{d + 2}]")
        w(f"# blocks j{L} whose outputs meet the window of the last dimension, and the interior among them")
        w(f"first = {_floordiv(f'lo{L}', PL)}")
        w(f"end = -((-lo{L} - out{L}) // {PL})" if PL != 1 else f"end = lo{L} + out{L}")
        ja_y = f"-((-lo{L}) // {PL})" if PL != 1 else f"lo{L}"
        w(f"ja_in = min(max({-(omin[L] // QL)}, {ja_y}), end)")
        jb_x = plus("(" + plus(f"n{L}", -1 - omax[L]) + f") // {QL}", 1) if QL != 1 else plus(f"n{L}", -omax[L])
        w(f"jb_in = max(min({jb_x}, {_floordiv(f'lo{L} + out{L}', PL)}, end), ja_in)")
        w(f"base0 = {times(plan.Q[0], 'j0')}")
        prefixes = sorted({ph.phase[:L] for ph in plan.phases})
        for prefix in prefixes:
            group = [ph for ph in plan.phases if ph.phase[:L] == prefix]
            _row_group(plan, prefix, group, omin, w)


def _row_group(plan: KernelPlan, prefix: tuple[int, ...], group: list[PhasePlan], omin, w: Writer) -> None:
    L = plan.ndim - 1
    PL, QL = plan.P[L], plan.Q[L]
    taps = [(co, t) for ph in group for co, ts in ph.rows for t in ts]
    star = ", ".join(map(str, prefix)) + ", *"
    w()
    w(f"# rows of phases ({star}): {len(taps)} taps per block of {PL} output{'s' if PL > 1 else ''}")
    w(f"t0 = {plus(times(plan.P[0], 'j0'), prefix[0])} - lo0")
    w("if t0 >= 0 and t0 < out0:")
    w.indent()
    opened = 1
    _flags(0, [t.offset[0] for _, t in taps], w)
    for d in range(1, L):
        P, p = plan.P[d], prefix[d]
        first = f"-(({plus(f'-lo{d}', p)}) // {P})" if P != 1 else f"lo{d}"
        stop = f"-(({plus(f'-lo{d} - out{d}', p)}) // {P})" if P != 1 else f"lo{d} + out{d}"
        w(f"for j{d} in range({first}, {stop}):")
        w.indent()
        opened += 1
        w(f"t{d} = {plus(times(P, f'j{d}'), p)} - lo{d}")
        w(f"base{d} = {times(plan.Q[d], f'j{d}')}")
        _flags(d, [t.offset[d] for _, t in taps], w)
    outer = sorted({f"in{d}_{'m' if t.offset[d] < 0 else ''}{abs(t.offset[d])}" for _, t in taps for d in range(L)})
    w("# the row reads inside x along the leading dimensions: its interior blocks need no test")
    w(f"row_ok = {' & '.join(outer) if outer else 'True'}")
    w("ja, jb = (ja_in, jb_in) if row_ok else (end, end)")
    # border blocks: [first, ja) then [jb, end), one loop body
    w(f"for k in range((ja - first) + (end - jb)):  # border blocks j{L}: first … ja − 1, then jb … end − 1")
    with w.indent():
        w(f"j{L} = first + k if first + k < ja else jb + (k - (ja - first))")
        w(f"base{L} = {times(QL, f'j{L}')}")
        _flags(L, [t.offset[L] for _, t in taps], w)
        for ph in group:
            w(f"t{L} = {plus(times(PL, f'j{L}'), ph.phase[L])} - lo{L}")
            w(f"if t{L} >= 0 and t{L} < out{L}:")
            with w.indent():
                w(f"# {phase_banner(plan, ph)}")
                chain_phase_body(plan, ph, w)
    # interior blocks
    w(f"if jb > ja:  # interior blocks j{L} = ja + i: views start at the first input / output of the run")
    with w.indent():
        rows = sorted({(t.c_in, t.offset[:L]) for _, t in taps})
        for ci, off in rows:
            idx = ", ".join(plus(f"base{d}", off[d]) for d in range(L))
            w(f"xv{ci}_{_tag(off)} = x[b, {ci}, {idx}, {plus(times(QL, 'ja'), omin[L])}:]")
        touts = ", ".join(f"t{d}" for d in range(L))
        for co in range(plan.c_out):
            w(f"yv{co} = y[b, {co}, {touts}, {times(PL, 'ja')} - lo{L}:]")
        for k in sorted({t.coeff for _, t in taps if t.coeff >= 0}):
            w(f"c{k} = np.float64(c[{k}])")
        w("for i in range(jb - ja):")
        with w.indent():
            for ci, off in sorted({(t.c_in, t.offset) for _, t in taps}):
                w(f"x{ci}_{_tag(off)} = np.float64(xv{ci}_{_tag(off[:L])}[{plus(times(QL, 'i'), off[L] - omin[L])}])"
                  f"  # {tap_comment(plan, ChainTap(ci, off, '1.0'))}")
            for ph in group:
                for co, ts in ph.rows:
                    target = f"yv{co}[{plus(times(PL, 'i'), ph.phase[L])}]"
                    label = f"phase {phase_text(ph.phase)}" + (f", output channel {co}" if plan.c_out > 1 else "")
                    if not ts:
                        w(f"{target} = 0.0  # {label}: no tap")
                    else:
                        w(f"{target} = {_fused(ts, lambda t: f'x{t.c_in}_{_tag(t.offset)}')}  # {label}")
    for _ in range(opened):
        w.dedent()


def _kernel_nd(plan: KernelPlan, w: Writer) -> None:
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    P0 = plan.P[0]
    w("@numba.njit(parallel=True, cache=True)")
    w(f"def kernel(x, y, c, {lo}):")
    with w.indent():
        w('"""Polyphase gather: one parallel iteration per (batch, block j0 of P0 output rows)."""')
        w("batch = x.shape[0]")
        w("out0 = y.shape[2]")
        w(f"# blocks j0 whose outputs {times(P0, 'j0')} + p0 (0 <= p0 < {P0}) meet the window [lo0, lo0 + out0)")
        w(f"block0 = lo0 // {P0}" if P0 != 1 else "block0 = lo0")
        w(f"blocks = -((-lo0 - out0) // {P0}) - block0" if P0 != 1 else "blocks = out0")
        w("for item in prange(batch * blocks):")
        with w.indent():
            w("full_width()")
            w("b = item // blocks")
            w(f"block(x, y, c, b, block0 + item - b * blocks, {lo})")
