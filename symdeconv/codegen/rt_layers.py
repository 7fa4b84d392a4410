"""Once-compiled runtime of the CPU layer kernels: every grouped plan runs on these functions.

A generated layer module (``generated/cpu/conv*.py``) holds its plan's tables — per phase, the weight
slots of its taps, the input plane and block shift of each — and a small driver; the loops live here,
compiled by Numba once per machine and dtype (``cache=True``) and shared by every layer.  Nothing below
depends on a layer: tap counts, offsets, periods and dimensions are runtime arrays.  What must be known
at compile time — the register tile's shape — depends only on the machine (:mod:`.machine`) and the dtype.

The computation (see :mod:`symdeconv.codegen.layer_plan` for the geometry): the input is copied, per
block of work, into zero-padded *flattened planes* (one per input phase ``r = offset mod Q``), so that
every tap of every phase is a unit-stride read at a constant, non-negative offset; a register tile of
``CO_BLOCK × TILE`` accumulators gathers a phase's taps over the group's input channels (a GEMM
micro-kernel whose K loop — input channels × taps — runs over runtime tables), for up to ``CO_GROUP``
blocks of ``CO_BLOCK`` output channels in turn on each tile of input columns (whose inputs are then read
from L1 after the first block); the phases of the last dimension are then written interleaved into the
output rows.  Where the geometry says ``asm`` (AVX2 machines, :func:`.machine.asm_tiles`), the micro-kernel
is the assembly loop of :mod:`.rt_asm` instead, on tiles of three vectors that may lie in different rows
(``_phase_vectors``).

Arrays are passed flattened over their spatial axes — ``x3 (N, C_in, Πn)``, ``y3 (N, C_out, Πout)`` —
so one compiled function serves layers of 1 to ``MAX_NDIM`` (8) dimensions.  The geometry of a call is one
int64 vector ``g`` (:data:`~.rt_layout.G_FIELDS`) and a few tables; ``work_item`` is one block of work, run
by ``run_parallel`` (``prange``) or ``run_range`` (a range of items on one thread: calls too small to wake
threads for, and each thread of the native runtime, :mod:`.native`).  The driver that sizes a call is :mod:`.rt_driver`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from .machine import CO_BLOCK
from .rt_layout import (_AT_FIRST, _AT_OFFS, _AT_STOP, _AT_TAPS, _BAND, _BLOCK_ROWS, _CIN_G, _COUT_G, _GROUPS, _J,
                        _JLO, _L, _LO, _LROW, _N, _NDIM, _NPHASES, _NPLANES, _NS, _OS, _OUT, _P, _PER_GROUP, _PL, _Q,
                        _ROW_BLOCKS, _ROWS, _S0, _TILE, _WIDE, _XA, _CO_GROUP, _ASM, G_FIELDS, MAX_NDIM, TILE_F32,
                        TILE_F64)
from .rt_asm import TAP_GROUP, TILE_VECTORS, VECTOR_BYTES, tile_buffer, tile_fma
from .runtime import LINE_BYTES, copy_even, full_width, refresh_stale_caches, stack_tile, tile_codegen

__all__ = ["run_range", "run_parallel", "fill_planes", "work_item", "NARROW_CHUNK"]

#: columns per chunk of the one-channel pass (all phases of a chunk run before the next chunk)
NARROW_CHUNK = 2048

#: column vectors of a phase listed before the assembly micro-kernel runs on them (a multiple of its tile's)
VECTOR_LIST = 384


def tile_columns_of(like) -> int | None:
    """At typing time: the machine's tile columns for the float array type ``like``'s dtype (``None`` for
    any other type, which makes the intrinsics below refuse it)."""
    if not isinstance(like, types.Array) or not isinstance(like.dtype, types.Float):
        return None
    return TILE_F32 if like.dtype.bitwidth == 32 else TILE_F64


@intrinsic
def _machine_tile(typingctx, like):
    """A ``(CO_BLOCK, TILE)`` array of ``like.dtype`` on the caller's stack (see ``runtime.stack_tile``),
    ``TILE`` the machine's tile columns for that dtype: LLVM keeps it in vector registers over the K loop."""
    n_cols = tile_columns_of(like)
    if n_cols is None:
        return None
    return types.Array(like.dtype, 2, "C")(like), tile_codegen(like.dtype, CO_BLOCK, n_cols)


#: plane rows whose geometry ``fill_planes`` works out before it copies them, channel by channel
GEO_ROWS = 128


@numba.njit(cache=True, nogil=True, _nrt=False)
def fill_planes(x3, xb, b, ci0, m0, g):
    """``xb[ci, r·band + i]`` = input of channel ``ci0 + ci`` at plane ``r``'s flat position ``m0 + i``.

    Plane position ``u`` (per dimension) of plane ``r`` holds ``x[Q (u + xa) + r]``, zero outside the
    input or past the planes' extent ``L``; ``i < band``.

    The geometry of up to GEO_ROWS plane rows is worked out first (its divisions cost more than copying a
    short row), then those rows are copied channel by channel: each channel's input is read as a few
    sequential streams, which the hardware prefetches (with the channel loop innermost, every row of the
    block came from another channel, 64 KB or more apart, and a stride-2 layer's fill ran at 4 GB/s).
    """
    full_width()
    D = g[_NDIM]
    last = D - 1
    band = g[_BAND]
    Lrow = g[_LROW]
    Ql = g[_Q + last]
    xal = g[_XA + last]
    nl = g[_N + last]
    C = xb.shape[0]
    lanes = LINE_BYTES // xb.itemsize  # elements per copy_even
    geo = stack_tile(g, GEO_ROWS, 5)  # per plane row: destination, zeros before, inputs, zeros after, source
    rho_first = m0 // Lrow
    rows = -(-(m0 + band) // Lrow) - rho_first  # plane rows per plane in the band
    first = max(0, -xal)
    for p0 in range(0, g[_NPLANES] * rows, GEO_ROWS):
        count = min(GEO_ROWS, g[_NPLANES] * rows - p0)
        for p in range(count):  # plane by plane, row by row
            r = (p0 + p) // rows
            rho = rho_first + (p0 + p) - r * rows
            rl = r % Ql
            # positions i of a plane row (last dimension) that hold inputs: 0 ≤ Q (i + xa) + r < n
            stop = min(Lrow, max(first, (nl - rl + Ql - 1) // Ql - xal))
            i0 = max(0, m0 - rho * Lrow)
            i1 = min(Lrow, m0 + band - rho * Lrow)
            # the leading dimensions' positions of this row, and its input row (if inside x)
            inside = True
            src = 0
            rem = rho
            rr = r // Ql
            for d in range(last - 1, -1, -1):
                Ld = g[_L + d]
                u = rem % Ld
                rem //= Ld
                Qd = g[_Q + d]
                rd = rr % Qd
                rr //= Qd
                s = Qd * (u + g[_XA + d]) + rd
                if s < 0 or s >= g[_N + d]:
                    inside = False
                src += s * g[_NS + d]
            if rem > 0:  # past the planes (the band's tail)
                inside = False
            c0 = min(max(first, i0), i1)
            c1 = max(c0, min(stop, i1))
            if not inside:
                c0 = c1 = i1
            geo[p, 0] = r * band + rho * Lrow + i0 - m0
            geo[p, 1] = c0 - i0
            geo[p, 2] = c1 - c0
            geo[p, 3] = i1 - c1
            geo[p, 4] = max(0, src + Ql * (c0 + xal) + rl)
        q = np.uint64(Ql)
        for ci in range(C):
            dst = xb[ci]
            xc = x3[b, ci0 + ci]
            for p in range(count):
                # unsigned indices: no negative-index wraparound code in these short loops
                head = np.uint64(geo[p, 0])
                body = head + np.uint64(geo[p, 1])
                tail = body + np.uint64(geo[p, 2])
                start = np.uint64(geo[p, 4])
                n = geo[p, 2]
                for i in range(geo[p, 1]):
                    dst[head + np.uint64(i)] = 0.0
                if Ql == 1:  # unit stride: a vectorised copy
                    for i in range(n):
                        dst[body + np.uint64(i)] = xc[start + np.uint64(i)]
                elif Ql == 2 and n >= lanes:  # stride 2: a vector at a time, the last one masked (shorter
                    # rows element by element: their masked stores slowed the planes' reads after them)
                    for k in range(0, n, lanes):
                        copy_even(dst, body + np.uint64(k), xc, start + np.uint64(2 * k), min(lanes, n - k))
                else:
                    for i in range(n):
                        dst[body + np.uint64(i)] = xc[start + q * np.uint64(i)]
                for i in range(geo[p, 3]):
                    dst[tail + np.uint64(i)] = 0.0


@intrinsic
def _half_tile(typingctx, like):
    """A ``(CO_BLOCK, TILE / 2)`` stack array (see ``_machine_tile``): the last tile of a short block."""
    n_cols = tile_columns_of(like)
    if n_cols is None:
        return None
    return types.Array(like.dtype, 2, "C")(like), tile_codegen(like.dtype, CO_BLOCK, max(1, n_cols // 2))


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False)
def _tile_pass(tile, acc, xflat, wk, ok, nt, co, cin_g, mc, b0, b1, b2, b3):
    """``acc[c, mc + m]`` for the ``tile.shape[1]`` columns from ``mc``: the register-tiled micro-kernel.

    LLVM inlines it into ``_phase_wide`` (checked in the generated assembly), where ``tile`` is that
    function's own stack array: only then can it keep the tile in vector registers over the channel loop
    (an array argument might alias the inputs).  Numba's IR inlining (``inline="always"``) would guarantee
    it, but doubled the runtime's first compile."""
    full_width()
    T = tile.shape[1]
    for m in range(T):
        tile[0, m] = b0
        tile[1, m] = b1
        tile[2, m] = b2
        tile[3, m] = b3
    # taps four at a time, then one at a time: a group's loads and multiply-adds are one straight block
    # per input channel, as a hand-written micro-kernel would have them.  (A group of two kept the tile on
    # the stack, a load and a store per multiply-add pair, in LLVM's code; see benchmarks/README.md.)
    t = 0
    while t + 4 <= nt:
        d0 = max(0, ok[t] + mc)
        d1 = max(0, ok[t + 1] + mc)
        d2 = max(0, ok[t + 2] + mc)
        d3 = max(0, ok[t + 3] + mc)
        wa = wk[t]
        wb = wk[t + 1]
        wc = wk[t + 2]
        wd = wk[t + 3]
        for ci in range(cin_g):
            ra = wa[ci]
            rb = wb[ci]
            rc = wc[ci]
            rd = wd[ci]
            a0 = ra[co]
            a1 = ra[co + 1]
            a2 = ra[co + 2]
            a3 = ra[co + 3]
            b0_ = rb[co]
            b1_ = rb[co + 1]
            b2_ = rb[co + 2]
            b3_ = rb[co + 3]
            c0 = rc[co]
            c1 = rc[co + 1]
            c2 = rc[co + 2]
            c3 = rc[co + 3]
            e0 = rd[co]
            e1 = rd[co + 1]
            e2 = rd[co + 2]
            e3 = rd[co + 3]
            for m in range(T):
                va = xflat[ci, d0 + m]
                vb = xflat[ci, d1 + m]
                vc = xflat[ci, d2 + m]
                vd = xflat[ci, d3 + m]
                tile[0, m] = tile[0, m] + a0 * va + b0_ * vb + c0 * vc + e0 * vd
                tile[1, m] = tile[1, m] + a1 * va + b1_ * vb + c1 * vc + e1 * vd
                tile[2, m] = tile[2, m] + a2 * va + b2_ * vb + c2 * vc + e2 * vd
                tile[3, m] = tile[3, m] + a3 * va + b3_ * vb + c3 * vc + e3 * vd
        t += 4
    while t < nt:
        d0 = max(0, ok[t] + mc)
        wa = wk[t]
        for ci in range(cin_g):
            ra = wa[ci]
            a0 = ra[co]
            a1 = ra[co + 1]
            a2 = ra[co + 2]
            a3 = ra[co + 3]
            for m in range(T):
                va = xflat[ci, d0 + m]
                tile[0, m] += a0 * va
                tile[1, m] += a1 * va
                tile[2, m] += a2 * va
                tile[3, m] += a3 * va
        t += 1
    for c in range(CO_BLOCK):
        row = acc[c, mc:]
        for m in range(T):
            row[m] = tile[c, m]


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False)
def _phase_wide(acc, xflat, w, bias, offs, t0, nt, co, cin_g, base, span, blocks):
    """``acc[c, m]`` = bias + Σ over the group's input channels and the phase's taps ``t0 … t0 + nt − 1``
    of ``w[t, ci, co + c] · xflat[ci, offs[t] + m]``, for ``c < blocks · CO_BLOCK`` and
    ``base ≤ m < base + span``.

    ``TILE`` columns at a time in a register tile (``_machine_tile``): per input channel and tap, TILE
    input values are loaded once and multiplied by ``CO_BLOCK`` broadcast weights.  The columns past the
    whole tiles take one or two half tiles (``_half_tile``; the last ends at ``base + span`` and may
    overlap the one before): short blocks compute fewer padded columns.  ``span`` is at least a half tile.
    """
    full_width()
    tile = _machine_tile(acc)
    half = _half_tile(acc)
    T = tile.shape[1]
    H = half.shape[1]
    co = max(0, co)
    # the phase's taps as views from 0: their indices below are provably non-negative (no wraparound code)
    wk = w[max(0, t0):]
    ok = offs[max(0, t0):]
    full = span // T
    # the rest: one half tile ending at base + span, after another one when the rest is longer than H
    rest = span - full * T
    n_half = (1 if rest > H else 0) + (1 if rest > 0 else 0)
    for tc in range(full + n_half):
        for k in range(blocks):  # every block of channels on this tile's inputs, while they are in L1
            c = co + k * CO_BLOCK
            a = acc[k * CO_BLOCK:]
            if tc < full:
                _tile_pass(tile, a, xflat, wk, ok, nt, c, cin_g, base + tc * T,
                           bias[c], bias[c + 1], bias[c + 2], bias[c + 3])
            else:
                i = tc - full
                mc = base + full * T if i + 1 < n_half else base + span - H
                _tile_pass(half, a, xflat, wk, ok, nt, c, cin_g, max(0, mc),
                           bias[c], bias[c + 1], bias[c + 2], bias[c + 3])


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False)
def _phase_one(acc, xflat, w, bias, offs, t0, nt, co, cin_g, base, M):
    """The one-output-channel form of ``_phase_wide`` (``acc[0, m]``): channels left over from whole
    tiles, and groups with one output channel (depthwise and 1 → 1 layers).

    Taps four at a time in one pass over the row (then two, then one), so the accumulator row is read and
    written once per four taps rather than once per tap.  Columns ``base … base + M − 1``.
    """
    full_width()
    a = acc[0, max(0, base):]
    bv = bias[co]
    for m in range(M):
        a[m] = bv
    co = max(0, co)
    wk = w[max(0, t0):]
    ok = offs[max(0, t0):]
    for ci in range(cin_g):
        xr = xflat[ci]
        t = 0
        while t + 4 <= nt:
            w0 = wk[t, ci, co]
            w1 = wk[t + 1, ci, co]
            w2 = wk[t + 2, ci, co]
            w3 = wk[t + 3, ci, co]
            x0 = xr[max(0, ok[t] + base):]
            x1 = xr[max(0, ok[t + 1] + base):]
            x2 = xr[max(0, ok[t + 2] + base):]
            x3 = xr[max(0, ok[t + 3] + base):]
            for m in range(M):
                a[m] = a[m] + w0 * x0[m] + w1 * x1[m] + w2 * x2[m] + w3 * x3[m]
            t += 4
        if t + 2 <= nt:
            w0 = wk[t, ci, co]
            w1 = wk[t + 1, ci, co]
            x0 = xr[max(0, ok[t] + base):]
            x1 = xr[max(0, ok[t + 1] + base):]
            for m in range(M):
                a[m] = a[m] + w0 * x0[m] + w1 * x1[m]
            t += 2
        if t < nt:
            w0 = wk[t, ci, co]
            x0 = xr[max(0, ok[t] + base):]
            for m in range(M):
                a[m] += w0 * x0[m]


@numba.njit(cache=True, nogil=True, _nrt=False, inline="always")
def _tile_taps(tile, xflat, ok, wk, t, c, cin_g, vecs, i, nv, g):
    """``tile_fma`` for ``nv`` vectors and ``g`` taps (1 or TAP_GROUP), which it needs as literals."""
    if g == 1:
        if nv == 1:
            tile_fma(tile, xflat, ok, wk, t, c, cin_g, vecs, i, 1, 1)
        elif nv == 2:
            tile_fma(tile, xflat, ok, wk, t, c, cin_g, vecs, i, 2, 1)
        else:
            tile_fma(tile, xflat, ok, wk, t, c, cin_g, vecs, i, 3, 1)
    elif nv == 1:
        tile_fma(tile, xflat, ok, wk, t, c, cin_g, vecs, i, 1, TAP_GROUP)
    elif nv == 2:
        tile_fma(tile, xflat, ok, wk, t, c, cin_g, vecs, i, 2, TAP_GROUP)
    else:
        tile_fma(tile, xflat, ok, wk, t, c, cin_g, vecs, i, 3, TAP_GROUP)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _phase_vectors(acc, xflat, w, bias, offs, t0, nt, co, cin_g, vecs, n, blocks):
    """``_phase_wide`` by the assembly micro-kernel (:mod:`.rt_asm`; the ``asm`` field of ``g``): the columns
    are ``n`` vectors, the one starting at column ``vecs[i]`` for ``i < n``, up to ``TILE_VECTORS`` per tile
    whatever rows they lie in.  Per tile, every block of channels runs on its inputs while they are in L1."""
    tile = tile_buffer(acc)
    lanes = tile.shape[1] // TILE_VECTORS
    co = max(0, co)
    wk = w[max(0, t0):]
    ok = offs[max(0, t0):]
    for i in range(0, n, TILE_VECTORS):
        nv = min(TILE_VECTORS, n - i)
        for k in range(blocks):
            c = co + k * CO_BLOCK
            for r in range(CO_BLOCK):
                b = bias[c + r]
                for e in range(tile.shape[1]):
                    tile[r, e] = b
            t = 0 if cin_g > 0 else nt  # (the assembly loop runs at least once: no channels, no call)
            while t < nt:
                g = TAP_GROUP if t + TAP_GROUP <= nt else 1
                _tile_taps(tile, xflat, ok, wk, t, c, cin_g, vecs, i, nv, g)
                t += g
            a = acc[k * CO_BLOCK:]
            for r in range(CO_BLOCK):
                row = a[r]
                tr = tile[r]
                for v in range(nv):
                    at = vecs[i + v]
                    for e in range(lanes):
                        row[at + e] = tr[v * lanes + e]


@numba.njit(cache=True, nogil=True, _nrt=False)
def _row_base(rho, lead, g):
    """Flat output index of plane row ``rho``'s output row for leading phase ``lead``; −1 when that row
    is outside the output (or holds no block of the output: past ``J``, or past the planes)."""
    last = g[_NDIM] - 1
    ybase = 0
    rem = rho
    ph = lead
    for d in range(last - 1, -1, -1):
        Ld = g[_L + d]
        u = rem % Ld
        rem //= Ld
        Pd = g[_P + d]
        pd = ph % Pd
        ph //= Pd
        if u >= g[_J + d]:
            return -1
        t = Pd * (u + g[_JLO + d]) + pd - g[_LO + d]
        if t < 0 or t >= g[_OUT + d]:
            return -1
        ybase += t * g[_OS + d]
    if rem > 0:
        return -1
    return ybase


@numba.njit(cache=True, nogil=True, _nrt=False)
def _write_rows(y3, acc, b, co_first, width, m0, cols, g, pl_first, pl_stop):
    """Write the block's accumulators (flat plane positions ``m0 … m0 + cols − 1``) to the output.

    Phases ``k = lead · PL + pl`` (C order: the last dimension's phase ``pl`` varies fastest); per
    leading phase and plane row, the ``PL`` phases of the last dimension are written interleaved:
    ``y[…, P (i + jlo) + pl − lo]`` for the row's columns ``i``.  ``pl_first[pl] ≤ i < pl_stop[pl]``
    are the columns of phase ``pl`` inside the output.
    """
    full_width()
    D = g[_NDIM]
    last = D - 1
    PL = g[_PL]
    Lrow = g[_LROW]
    Pl = g[_P + last]
    jlol = g[_JLO + last]
    lol = g[_LO + last]
    # columns where every last-dimension phase is inside the output: one interleaved loop
    kA = 0
    kB = Lrow
    for pl in range(PL):
        kA = max(kA, pl_first[pl])
        kB = min(kB, pl_stop[pl])
    # plane row by plane row, all its leading phases: the output rows of one plane row are neighbours
    # (rows P u + p), so the stores run in long sequential streams
    for rho in range(m0 // Lrow, -(-(m0 + cols) // Lrow)):
        i0 = max(0, m0 - rho * Lrow)
        i1 = min(Lrow, m0 + cols - rho * Lrow)
        seg = rho * Lrow - m0  # acc column of the row's position 0
        a = max(i0, kA)
        e = max(a, min(i1, kB))
        for lead in range(g[_NPHASES] // PL):
            ybase = _row_base(rho, lead, g)
            if ybase < 0:
                continue
            k0 = lead * PL
            for c in range(width):
                yrow = y3[b, co_first + c]
                if e > a:
                    start = max(0, ybase + Pl * (a + jlol) - lol)
                    yv = yrow[start:]
                    if PL == 1:
                        av = acc[k0, c, max(0, seg + a):]
                        for i in range(e - a):
                            yv[i] = av[i]
                    elif PL == 2:
                        av0 = acc[k0, c, max(0, seg + a):]
                        av1 = acc[k0 + 1, c, max(0, seg + a):]
                        for i in range(e - a):
                            yv[2 * i] = av0[i]
                            yv[2 * i + 1] = av1[i]
                    elif PL == 3:
                        av0 = acc[k0, c, max(0, seg + a):]
                        av1 = acc[k0 + 1, c, max(0, seg + a):]
                        av2 = acc[k0 + 2, c, max(0, seg + a):]
                        for i in range(e - a):
                            yv[3 * i] = av0[i]
                            yv[3 * i + 1] = av1[i]
                            yv[3 * i + 2] = av2[i]
                    else:
                        for pl in range(PL):
                            av = acc[k0 + pl, c, max(0, seg + a):]
                            yp = yv[pl:]
                            for i in range(e - a):
                                yp[PL * i] = av[i]
                # border columns where only some phases are inside the output
                for pl in range(PL):
                    lo_i = max(i0, pl_first[pl])
                    hi_i = min(i1, pl_stop[pl])
                    for i in range(lo_i, min(hi_i, a)):
                        yrow[ybase + Pl * (i + jlol) + pl - lol] = acc[k0 + pl, c, seg + i]
                    for i in range(max(lo_i, e), hi_i):
                        yrow[ybase + Pl * (i + jlol) + pl - lol] = acc[k0 + pl, c, seg + i]


@numba.njit(cache=True, nogil=True, _nrt=False)
def split_item(item, row_blocks, groups, per_group):
    """``(batch, row block, group, channel item)`` of a parallel work item (C order over those four): channel
    item ``kb`` is blocks ``kb·CO_GROUP …`` of CO_BLOCK channels, or, past them, the channels left over."""
    b = item // (row_blocks * groups * per_group)
    i = item - b * (row_blocks * groups * per_group)
    rb = i // (groups * per_group)
    i -= rb * (groups * per_group)
    grp = i // per_group
    return b, rb, grp, i - grp * per_group


# inlined into its callers (Numba IR): compiled once inside run_range, not also as a library of its own
# that run_range would link and compile again (~3 s of a first use per dtype)
@numba.njit(cache=True, nogil=True, _nrt=False, inline="always")
def work_item(item, thread, x3, xb_all, acc_all, tags, y3, w, bias, g):
    """One block of work: (batch, block of plane rows, group, CO_GROUP blocks of CO_BLOCK output channels or
    the channels left over), run by ``thread`` (its index into the per-thread buffers:
    ``numba.get_thread_id()`` is called by the parallel driver only, since the symbol exists once the threading
    layer has started)."""
    full_width()
    # the plan's tables follow the geometry in g (one array: fewer arguments to type-check per call)
    phase_taps = g[g[_AT_TAPS]:g[_AT_OFFS]]
    offs = g[g[_AT_OFFS]:g[_AT_FIRST]]
    pl_first = g[g[_AT_FIRST]:g[_AT_STOP]]
    pl_stop = g[g[_AT_STOP]:]
    row_blocks = g[_ROW_BLOCKS]
    groups = g[_GROUPS]
    per_group = g[_PER_GROUP]
    cin_g = g[_CIN_G]
    cout_g = g[_COUT_G]
    wide = g[_WIDE]
    b, rb, grp, kb = split_item(item, row_blocks, groups, per_group)
    q0 = rb * g[_BLOCK_ROWS]
    nq = min(g[_BLOCK_ROWS], g[_ROWS] - q0)
    S0 = g[_S0]
    m0 = q0 * S0
    cols = nq * S0
    xb = xb_all[thread]
    block = (b * row_blocks + rb) * groups + grp
    if tags[thread] != block:  # this thread's buffer holds another block's planes: copy this one's
        tags[thread] = block
        fill_planes(x3, xb, b, grp * cin_g, m0, g)
    acc = acc_all[thread]
    H = max(1, g[_TILE] // 2)
    M = -(-cols // H) * H  # whole half tiles (the kernel takes whole tiles, then at most one half tile)
    n_phases = g[_NPHASES]
    G = g[_CO_GROUP]
    if kb * G < wide:
        co = grp * cout_g + kb * G * CO_BLOCK
        blocks = min(G, wide - kb * G)
        width = blocks * CO_BLOCK
        T = g[_TILE]
        Lrow = g[_LROW]
        PL = g[_PL]
        n_rows = cols // Lrow  # whole plane rows (from 2-D on; in 1-D a block is part of the one row)
        asm = g[_ASM] != 0
        if asm:  # the assembly micro-kernel's tiles are vectors of 32 bytes, anywhere in the block
            T = VECTOR_BYTES // y3.itemsize
            vecs = stack_tile(g, 1, VECTOR_LIST)[0]  # the column vectors of a phase, in batches
        for k in range(n_phases):
            t0 = phase_taps[k]
            nt = phase_taps[k + 1] - t0
            pl = k % PL
            cf = pl_first[pl]
            span = pl_stop[pl] - cf
            # row by row, the phase's output columns only, when that takes fewer tiles than the flat block
            rowwise = g[_NDIM] > 1 and span >= T and n_rows * (-(-span // T)) * T < M
            if asm:
                n = 0
                for r in range(n_rows if rowwise else 1):
                    if rowwise and _row_base(m0 // Lrow + r, k // PL, g) < 0:
                        continue
                    start = r * Lrow + cf if rowwise else 0
                    length = span if rowwise else M
                    for j in range(-(-length // T)):  # the last vector of a row ends at the row's end
                        if n == VECTOR_LIST:
                            _phase_vectors(acc[k], xb, w, bias, offs, t0, nt, co, cin_g, vecs, n, blocks)
                            n = 0
                        vecs[n] = start + min(j * T, length - T)
                        n += 1
                _phase_vectors(acc[k], xb, w, bias, offs, t0, nt, co, cin_g, vecs, n, blocks)
            elif rowwise:
                rho0 = m0 // Lrow
                for r in range(n_rows):
                    if _row_base(rho0 + r, k // PL, g) >= 0:
                        _phase_wide(acc[k], xb, w, bias, offs, t0, nt, co, cin_g, r * Lrow + cf, span, blocks)
            else:
                # (np.int64(0), not the literal 0: a literal argument would compile a second specialisation)
                _phase_wide(acc[k], xb, w, bias, offs, t0, nt, co, cin_g, np.int64(0), M, blocks)
    else:
        co = grp * cout_g + wide * CO_BLOCK
        width = cout_g - wide * CO_BLOCK
        # column chunks that keep the planes' rows they read in L1 across all phases
        for c0 in range(0, M, NARROW_CHUNK):
            n = min(NARROW_CHUNK, M - c0)
            for c in range(width):
                for k in range(n_phases):
                    _phase_one(acc[k, c:], xb, w, bias, offs, phase_taps[k], phase_taps[k + 1] - phase_taps[k],
                               co + c, cin_g, c0, n)
    _write_rows(y3, acc, b, co, width, m0, cols, g, pl_first, pl_stop)


@numba.njit(parallel=True, cache=True)
def run_parallel(n_items, x3, xb_all, acc_all, tags, y3, w, bias, g):
    """Every item on Numba's threads (``tags`` reset by the caller, as for ``run_range``)."""
    for item in prange(n_items):
        work_item(item, numba.get_thread_id(), x3, xb_all, acc_all, tags, y3, w, bias, g)


@numba.njit(cache=True, nogil=True, _nrt=False)
def run_range(i0, i1, thread, x3, xb_all, acc_all, tags, y3, w, bias, g):
    """Items ``i0 … i1 − 1`` on one thread (``thread``: its buffers), ``tags[thread]`` reset by the caller.

    The serial driver (``run_range(0, n_items, 0, …)``), and what the native runtime (:mod:`.native`)
    runs on each of its threads."""
    for item in range(i0, i1):
        work_item(item, thread, x3, xb_all, acc_all, tags, y3, w, bias, g)


# (after the functions above: their Numba cache follows the modules they freeze values of)
refresh_stale_caches(globals())
