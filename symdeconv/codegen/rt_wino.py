"""Once-compiled runtime of the Winograd F(3, 2) path of 3-D layer kernels.

Applies to a layer whose normal form has, in every output phase and along both leading dimensions,
exactly **two taps at consecutive input positions**, every combination of them present (the phase's
taps are the product of per-dimension tap pairs and one set of last-dimension taps), and no input
phases (``Q = 1``): the sub-pixel form of every 3-D transposed convolution with ``kernel = 2 · stride``
(k4 s2, k6 s3, …) and of every stride-1 convolution with a kernel of 2 along the leading dimensions.
:meth:`~symdeconv.codegen.layer_plan.LayerPlan.wino_tables` finds that structure and its tables.

Along one dimension, a phase whose taps ``g0, g1`` read plane positions ``u + s`` and ``u + s + 1``
(for block position ``u``) gives three neighbouring outputs from the *window* ``d = (d0, …, d3)`` of
four plane positions starting at ``3τ = u + s − e``, ``e ∈ {0, 1, 2}``, with four multiplications
instead of six (Winograd's minimal filtering algorithm F(3, 2) [Winograd 1980; Lavin & Gray 2016],
interpolation points 0, 1, −1 and ∞):

::

    point k:      0          1               2               3
    input  V_k:   d0 − d2    d1 + d2         d2 − d1         d3 − d1          (Bᵀ d)
    weight U_k:   g0         (g0 + g1) / 2   (g0 − g1) / 2   g1               (G g)
    output:       y_0 = M_0 + M_1 + M_2,  y_1 = M_1 − M_2,  y_2 = M_1 + M_2 + M_3,  M_k = U_k · V_k   (Aᵀ M)

Bᵀ and Aᵀ are 0 or ±1 (exact additions) and G halves, which is exact in binary floating point: the
only change against the direct sum is the order in which roundings happen.  The windows start at
multiples of three plane positions for *every* phase, so one input transform serves all phases.  Along
the two leading dimensions that is 16 products for 9 outputs instead of 36, times the phase's taps
along the last dimension, which stay direct (unit-stride, vectorised along the last dimension).

Nothing here depends on a layer: the tap tables, periods and shapes are runtime arrays, and the register
tile is the machine's (:func:`symdeconv.codegen.rt_layout.tile_shape`).  The functions:

1. :func:`weight_transform`: ``U[phase, k, t, ci, co] = Σ_a G[k, a] · w[slot(phase, a, t), ci, co]``;
2. ``block_rows`` (in the driver, :mod:`.rt_driver`): rows of windows per block of work;
3. ``_item`` (run by ``run_parallel`` over batch × row blocks × groups × channel tiles, or ``run_range``):
   ``Bᵀ`` along both leading dimensions of each window's 16 input rows, read from ``x`` in place (a zero
   row outside it), into this thread's buffer ``V[ci, k, r · Lx + i]``; then, per phase and tile of
   columns, the register-tiled micro-kernel over ``V`` for every point (the point's products ``M_k``,
   with the phase's last-dimension taps; on AVX2, ``machine.asm_tiles()``, the assembly kernel
   ``rt_asm.wino_fma`` with tiles of three vectors), kept on the stack; then ``Aᵀ`` (the last leading dimension
   first), plus the bias, into the block's accumulators; then the phases of the last dimension are
   written interleaved.  Outputs of at least ``machine.stream_min_bytes()`` have their rows of whole 64-byte
   lines written with non-temporal stores.

Why each design choice was made (F(3, 2) rather than F(2, 2), the factored ``Aᵀ``, per-block input
transforms, streaming stores) is measured in ``benchmarks/README.md``.
"""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .machine import CO_BLOCK
from .rt_layers import _machine_tile, split_item, tile_columns_of
from .rt_asm import VECTOR_BYTES, wino_fma
from .rt_layout import (OUTS, POINTS, VEC, W_A0, W_A1, W_A2, W_ASM, W_AT_SHIFT1, W_AT_XSHIFT, W_BLOCK_ROWS, W_GROUPS,
                        W_JLO0, W_JLO1, W_JLO2, W_LO0, W_LO1, W_LO2, W_LX, W_NX, W_P0, W_P1, W_PL, W_ROWS, W_STREAM,
                        W_T1, WG_SIZE, WINO_M)
from .runtime import (LINE_BYTES, full_width, line_head, refresh_stale_caches, stack_tile, store_fence, stream_line,
                      stream_pair, tile_codegen)

__all__ = ["run_range", "run_parallel", "weight_transform", "BT", "G", "AT", "WINO_M"]

#: Winograd's F(3, 2) along one dimension: the rows of Bᵀ (point k of the window's input), G (point k of the
#: filter) and Aᵀ (output e from the points).
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, -1, 0, 1))
G = ((1, 0), (Fraction(1, 2), Fraction(1, 2)), (Fraction(1, 2), Fraction(-1, 2)), (0, 1))
AT = ((1, 1, 1, 0), (0, 1, -1, 0), (0, 1, 1, 1))

# point k (C order over (0 … 3)²) of the weight: Σ_j _GC[k, j] · (tap combination _GI[k, j]), from G ⊗ G
_GI = np.zeros((POINTS, 4), dtype=np.int64)
_GC = np.zeros((POINTS, 4), dtype=np.float64)
_GN = np.zeros(POINTS, dtype=np.int64)
for _k0 in range(WINO_M + 1):
    for _k1 in range(WINO_M + 1):
        _k = _k0 * (WINO_M + 1) + _k1
        for _a in range(4):  # tap combination (a0, a1), C order over (0, 1)²
            _c = Fraction(G[_k0][_a // 2]) * Fraction(G[_k1][_a % 2])  # ±1, ±½ or ±¼: exact scalings
            if _c:
                _GI[_k, _GN[_k]] = _a
                _GC[_k, _GN[_k]] = float(_c)
                _GN[_k] += 1



@intrinsic
def _tile_rows(typingctx, like, rows):
    """A ``(rows, TILE)`` array of ``like.dtype`` on the caller's stack, ``TILE`` the machine's tile width."""
    n_cols = tile_columns_of(like)
    if n_cols is None or not isinstance(rows, types.IntegerLiteral):
        return None
    return types.Array(like.dtype, 2, "C")(like, rows), tile_codegen(like.dtype, rows.literal_value, n_cols)


@numba.njit(cache=True, nogil=True, _nrt=False)
def weight_transform(w, u, slots, nx):
    """``U[k, point, t, ci, co] = Σ_j GC[point, j] · w[slots[k, GI[point, j], t], ci, co]`` (G g, per phase k)."""
    full_width()
    for k in range(u.shape[0]):
        for point in range(u.shape[1]):
            for t in range(nx):
                dst = u[k, point, t]
                dst[:, :] = 0.0
                for j in range(_GN[point]):
                    src = w[slots[k, _GI[point, j], t]]
                    scale = _GC[point, j]
                    for ci in range(dst.shape[0]):
                        for co in range(dst.shape[1]):
                            dst[ci, co] += scale * src[ci, co]


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False)
def _transform_input(xc, vb, ci, zrow, q0, nq, g, first, stop):
    """``vb[ci, point, r · Lx + i]``: Bᵀ along both leading dimensions of the windows of rows ``q0 …``."""
    full_width()
    T1 = g[W_T1]
    Lx = g[W_LX]
    a0 = g[W_A0]
    a1 = g[W_A1]
    a2 = g[W_A2]
    n0 = xc.shape[0]
    n1 = xc.shape[1]
    for r in range(nq):
        q = q0 + r
        p0 = WINO_M * (q // T1) + a0  # the window's first plane position, as an input index
        p1 = WINO_M * (q % T1) + a1
        # the window's 16 input rows (zrow outside x)
        x0_0 = xc[p0, p1] if 0 <= p0 < n0 and 0 <= p1 < n1 else zrow
        x0_1 = xc[p0, p1 + 1] if 0 <= p0 < n0 and 0 <= p1 + 1 < n1 else zrow
        x0_2 = xc[p0, p1 + 2] if 0 <= p0 < n0 and 0 <= p1 + 2 < n1 else zrow
        x0_3 = xc[p0, p1 + 3] if 0 <= p0 < n0 and 0 <= p1 + 3 < n1 else zrow
        x1_0 = xc[p0 + 1, p1] if 0 <= p0 + 1 < n0 and 0 <= p1 < n1 else zrow
        x1_1 = xc[p0 + 1, p1 + 1] if 0 <= p0 + 1 < n0 and 0 <= p1 + 1 < n1 else zrow
        x1_2 = xc[p0 + 1, p1 + 2] if 0 <= p0 + 1 < n0 and 0 <= p1 + 2 < n1 else zrow
        x1_3 = xc[p0 + 1, p1 + 3] if 0 <= p0 + 1 < n0 and 0 <= p1 + 3 < n1 else zrow
        x2_0 = xc[p0 + 2, p1] if 0 <= p0 + 2 < n0 and 0 <= p1 < n1 else zrow
        x2_1 = xc[p0 + 2, p1 + 1] if 0 <= p0 + 2 < n0 and 0 <= p1 + 1 < n1 else zrow
        x2_2 = xc[p0 + 2, p1 + 2] if 0 <= p0 + 2 < n0 and 0 <= p1 + 2 < n1 else zrow
        x2_3 = xc[p0 + 2, p1 + 3] if 0 <= p0 + 2 < n0 and 0 <= p1 + 3 < n1 else zrow
        x3_0 = xc[p0 + 3, p1] if 0 <= p0 + 3 < n0 and 0 <= p1 < n1 else zrow
        x3_1 = xc[p0 + 3, p1 + 1] if 0 <= p0 + 3 < n0 and 0 <= p1 + 1 < n1 else zrow
        x3_2 = xc[p0 + 3, p1 + 2] if 0 <= p0 + 3 < n0 and 0 <= p1 + 2 < n1 else zrow
        x3_3 = xc[p0 + 3, p1 + 3] if 0 <= p0 + 3 < n0 and 0 <= p1 + 3 < n1 else zrow
        # positions first … stop − 1 of the row hold inputs; the others stay zero (the buffer is allocated
        # zero for this geometry and nothing else writes them).  Views from 0: non-negative indices, so
        # the loop vectorises.
        s = first + a2
        s0_0 = x0_0[s:]
        s0_1 = x0_1[s:]
        s0_2 = x0_2[s:]
        s0_3 = x0_3[s:]
        s1_0 = x1_0[s:]
        s1_1 = x1_1[s:]
        s1_2 = x1_2[s:]
        s1_3 = x1_3[s:]
        s2_0 = x2_0[s:]
        s2_1 = x2_1[s:]
        s2_2 = x2_2[s:]
        s2_3 = x2_3[s:]
        s3_0 = x3_0[s:]
        s3_1 = x3_1[s:]
        s3_2 = x3_2[s:]
        s3_3 = x3_3[s:]
        o0 = vb[ci, 0, r * Lx + first:]
        o1 = vb[ci, 1, r * Lx + first:]
        o2 = vb[ci, 2, r * Lx + first:]
        o3 = vb[ci, 3, r * Lx + first:]
        o4 = vb[ci, 4, r * Lx + first:]
        o5 = vb[ci, 5, r * Lx + first:]
        o6 = vb[ci, 6, r * Lx + first:]
        o7 = vb[ci, 7, r * Lx + first:]
        o8 = vb[ci, 8, r * Lx + first:]
        o9 = vb[ci, 9, r * Lx + first:]
        o10 = vb[ci, 10, r * Lx + first:]
        o11 = vb[ci, 11, r * Lx + first:]
        o12 = vb[ci, 12, r * Lx + first:]
        o13 = vb[ci, 13, r * Lx + first:]
        o14 = vb[ci, 14, r * Lx + first:]
        o15 = vb[ci, 15, r * Lx + first:]
        for i in range(stop - first):
            # Bᵀ along dimension 1 (the second index), then along dimension 0
            h0_0 = s0_0[i] - s0_2[i]
            h0_1 = s0_1[i] + s0_2[i]
            h0_2 = s0_2[i] - s0_1[i]
            h0_3 = s0_3[i] - s0_1[i]
            h1_0 = s1_0[i] - s1_2[i]
            h1_1 = s1_1[i] + s1_2[i]
            h1_2 = s1_2[i] - s1_1[i]
            h1_3 = s1_3[i] - s1_1[i]
            h2_0 = s2_0[i] - s2_2[i]
            h2_1 = s2_1[i] + s2_2[i]
            h2_2 = s2_2[i] - s2_1[i]
            h2_3 = s2_3[i] - s2_1[i]
            h3_0 = s3_0[i] - s3_2[i]
            h3_1 = s3_1[i] + s3_2[i]
            h3_2 = s3_2[i] - s3_1[i]
            h3_3 = s3_3[i] - s3_1[i]
            o0[i] = h0_0 - h2_0
            o1[i] = h0_1 - h2_1
            o2[i] = h0_2 - h2_2
            o3[i] = h0_3 - h2_3
            o4[i] = h1_0 + h2_0
            o5[i] = h1_1 + h2_1
            o6[i] = h1_2 + h2_2
            o7[i] = h1_3 + h2_3
            o8[i] = h2_0 - h1_0
            o9[i] = h2_1 - h1_1
            o10[i] = h2_2 - h1_2
            o11[i] = h2_3 - h1_3
            o12[i] = h3_0 - h1_0
            o13[i] = h3_1 - h1_1
            o14[i] = h3_2 - h1_2
            o15[i] = h3_3 - h1_3


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False, inline="always")
def _products(prod, vb, point, uk, xs, nx, mc, cin_g, cw):
    """``prod[CO_BLOCK · point + c, m]`` = Σ over input channels ``ci`` and last-dimension taps ``t`` of
    ``uk[t, ci, cw + c] · vb[ci, point, xs[t] + mc + m]``: the register-tiled micro-kernel of one point.

    The tile is this function's own stack array (an argument could alias the inputs, and LLVM would then
    not keep it in registers over the channel loop)."""
    tile = _machine_tile(prod)
    T = tile.shape[1]
    for m in range(T):
        tile[0, m] = 0.0
        tile[1, m] = 0.0
        tile[2, m] = 0.0
        tile[3, m] = 0.0
    t = 0
    while t + 2 <= nx:  # taps two at a time: two loads per eight multiply-adds
        d0 = max(0, mc + xs[t])
        d1 = max(0, mc + xs[t + 1])
        ua = uk[t]
        ub = uk[t + 1]
        for ci in range(cin_g):
            vr = vb[ci, point]
            ra = ua[ci]
            rb = ub[ci]
            w0_0 = ra[cw]
            w1_0 = ra[cw + 1]
            w2_0 = ra[cw + 2]
            w3_0 = ra[cw + 3]
            w0_1 = rb[cw]
            w1_1 = rb[cw + 1]
            w2_1 = rb[cw + 2]
            w3_1 = rb[cw + 3]
            for m in range(T):
                v0 = vr[d0 + m]
                v1 = vr[d1 + m]
                tile[0, m] = tile[0, m] + w0_0 * v0 + w0_1 * v1
                tile[1, m] = tile[1, m] + w1_0 * v0 + w1_1 * v1
                tile[2, m] = tile[2, m] + w2_0 * v0 + w2_1 * v1
                tile[3, m] = tile[3, m] + w3_0 * v0 + w3_1 * v1
        t += 2
    if t < nx:
        d0 = max(0, mc + xs[t])
        ua = uk[t]
        for ci in range(cin_g):
            vr = vb[ci, point]
            ra = ua[ci]
            w0 = ra[cw]
            w1 = ra[cw + 1]
            w2 = ra[cw + 2]
            w3 = ra[cw + 3]
            for m in range(T):
                v0 = vr[d0 + m]
                tile[0, m] += w0 * v0
                tile[1, m] += w1 * v0
                tile[2, m] += w2 * v0
                tile[3, m] += w3 * v0
    for c in range(CO_BLOCK):
        pr = prod[CO_BLOCK * point + c]
        for m in range(T):
            pr[m] = tile[c, m]


@numba.njit(cache=True, nogil=True, _nrt=False, inline="always")
def _products_asm(prod, vb, point, uk, xs, nx, mc, cin_g, cw, three):
    """``_products`` by the assembly kernel (``rt_asm.wino_fma``, AVX2): three vectors of columns (``three``)
    or two; the taps in pairs (then one), the first call starting from zero, later ones adding to ``prod``."""
    t = 0
    while t < nx:
        da = max(0, mc + xs[t])
        if t + 2 <= nx:
            db = max(0, mc + xs[t + 1])
            if three:
                wino_fma(prod, vb, uk, point, t, da, db, cin_g, cw, t, 2, 3)
            else:
                wino_fma(prod, vb, uk, point, t, da, db, cin_g, cw, t, 2, 2)
            t += 2
        else:
            if three:
                wino_fma(prod, vb, uk, point, t, da, da, cin_g, cw, t, 1, 3)
            else:
                wino_fma(prod, vb, uk, point, t, da, da, cin_g, cw, t, 1, 2)
            t += 1


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False, inline="always")
def _window_outputs(prod, zt, acc, bias, p, cw, S, mc, T):
    """Aᵀ: the window outputs of a column tile (``T`` columns from ``mc``), plus the bias, into the block's
    accumulators (last-dimension phase ``p``)."""
    for c in range(CO_BLOCK):
        for m in range(T):  # along dimension 1, into zt[3 k0 + j]
            for r in range(4):
                q0_ = prod[16 * r + c, m]
                q1_ = prod[16 * r + 4 + c, m]
                q2_ = prod[16 * r + 8 + c, m]
                q3_ = prod[16 * r + 12 + c, m]
                zt[3 * r, m] = q1_ + q2_ + q0_
                zt[3 * r + 1, m] = q1_ - q2_
                zt[3 * r + 2, m] = q1_ + q2_ + q3_
        bc = bias[cw + c]
        for j in range(3):  # along dimension 0: output row 3 e0 + j, one per loop (one store stream)
            ac = acc[p * OUTS + j, c * S + mc:]
            for m in range(T):
                ac[m] = zt[j, m] + zt[3 + j, m] + zt[6 + j, m] + bc
            ac = acc[p * OUTS + 3 + j, c * S + mc:]
            for m in range(T):
                ac[m] = zt[3 + j, m] - zt[6 + j, m] + bc
            ac = acc[p * OUTS + 6 + j, c * S + mc:]
            for m in range(T):
                ac[m] = zt[3 + j, m] + zt[6 + j, m] + zt[9 + j, m] + bc


# inlined into its callers, like rt_layers.work_item: compiled once, inside run_range
@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False, inline="always")
def _item(item, thread, x, vb_all, tags, zrow, y, u, bias, acc_all, g):
    """One block of work: (batch, block of window rows, group, block of CO_BLOCK output channels).

    A block is the window rows ``q0 … q0 + nq − 1`` (row = the two leading windows τ, flattened).  Its
    input, transformed by Bᵀ, is ``vb[ci, point, r · Lx + i]`` in this thread's buffer, computed when the
    thread's previous item had another block (``tags``), so the items of a block's output channels on one
    thread share it.  This thread's rows ``acc[p · 9 + e, c · S + m]`` hold output ``e`` of the windows of
    column ``m``, for channel ``c`` and last-dimension phase ``p``.
    """
    full_width()
    groups = g[W_GROUPS]
    rows = g[W_ROWS]
    brows = g[W_BLOCK_ROWS]
    T1 = g[W_T1]
    Lx = g[W_LX]
    P1 = g[W_P1]
    PL = g[W_PL]
    nx = g[W_NX]
    shift0 = g[WG_SIZE:g[W_AT_SHIFT1]]
    shift1 = g[g[W_AT_SHIFT1]:g[W_AT_XSHIFT]]
    xshift = g[g[W_AT_XSHIFT]:]
    cin_g = x.shape[1] // groups
    cout_g = y.shape[1] // groups
    wide = cout_g // CO_BLOCK
    row_blocks = (rows + brows - 1) // brows
    S = acc_all.shape[2] // CO_BLOCK  # distance of a block's channel rows
    a2 = g[W_A2]
    first = max(0, -a2)  # plane positions along the last dimension that hold inputs
    stop = max(first, min(Lx, x.shape[4] - a2))
    b, rb, grp, kb = split_item(item, row_blocks, groups, wide)
    q0 = rb * brows
    nq = min(brows, rows - q0)
    ci0 = grp * cin_g
    M = -(-(nq * Lx) // VEC) * VEC  # nq whole rows (and < VEC columns more, unused)
    co = grp * cout_g + kb * CO_BLOCK
    cw = max(0, co)  # (non-negative: constant offsets cw + c)
    acc = acc_all[thread]
    vb = vb_all[thread]
    prod = _tile_rows(y, 64)  # a column tile's products: row CO_BLOCK · point + c
    zt = _tile_rows(y, 12)  # a channel's column tile after Aᵀ along dimension 1
    T = zt.shape[1]
    asm = g[W_ASM] != 0  # (the assembly kernel's tiles: up to three vectors of lanes columns)
    lanes = VECTOR_BYTES // y.itemsize
    prod_a = stack_tile(y, 64, 24)
    zt_a = stack_tile(y, 12, 24)
    block = (b * row_blocks + rb) * groups + grp
    if tags[thread] != block:
        tags[thread] = block
        for ci in range(cin_g):
            _transform_input(x[b, ci0 + ci], vb, ci, zrow, q0, nq, g, first, stop)
    out0 = y.shape[2]
    out1 = y.shape[3]
    out2 = y.shape[4]
    lo2 = g[W_LO2]
    k0 = g[W_JLO2]
    # the columns where every last-dimension phase's output is inside the row: one interleaved loop
    kA = k0
    kB = k0 + Lx
    for p in range(PL):
        kA = max(kA, -((p - lo2) // PL))
        kB = min(kB, -((p - lo2 - out2) // PL))
    kB = max(kA, kB)
    for f in range(g[W_P0] * P1):  # leading phase components (C order)
        f0 = f // P1
        f1 = f % P1
        for p in range(PL):
            k = f * PL + p
            uk = u[k]
            xs = xshift[k * nx:(k + 1) * nx]
            if asm:  # column tiles of three vectors (then two, to end on a multiple of VEC): 12 accumulators
                mc = 0
                while mc < M:
                    left = (VEC - mc % VEC) // lanes  # vectors to the end of this VEC columns
                    three = left >= 5 or left == 3
                    for point in range(POINTS):
                        _products_asm(prod_a, vb, point, uk[point], xs, nx, mc, cin_g, cw, three)
                    width = (3 if three else 2) * lanes
                    _window_outputs(prod_a, zt_a, acc, bias, p, cw, S, mc, width)
                    mc += width
            else:
                for tc in range(M // T):  # T columns at a time: the tile stays in vector registers
                    mc = tc * T
                    for point in range(POINTS):
                        _products(prod, vb, point, uk[point], xs, nx, mc, cin_g, cw)
                    _window_outputs(prod, zt, acc, bias, p, cw, S, mc, T)
        # write: outputs y[..., PL (k0 + i) + p − lo2] of every last-dimension phase p, row by row
        for r in range(nq):
            q = q0 + r
            tau0 = q // T1
            tau1 = q % T1
            seg = r * Lx
            for e in range(OUTS):
                t0 = g[W_P0] * (g[W_JLO0] + WINO_M * tau0 + e // WINO_M - shift0[f0]) + f0 - g[W_LO0]
                t1 = P1 * (g[W_JLO1] + WINO_M * tau1 + e % WINO_M - shift1[f1]) + f1 - g[W_LO1]
                if t0 < 0 or t0 >= out0 or t1 < 0 or t1 >= out1:
                    continue
                for c in range(CO_BLOCK):
                    yr = y[b, co + c, t0, t1]
                    _write_row(yr, acc, e, c * S + seg - k0, kA, kB, k0, Lx, PL, lo2, g[W_STREAM])
    if g[W_STREAM]:
        store_fence()  # the item's non-temporal stores, ordered before the region ends


@numba.njit(cache=True, nogil=True, _nrt=False, inline="always")
def _write_row(yr, acc, e, col, kA, kB, k0, Lx, PL, lo2, stream):
    """Output row ``yr`` from the accumulators' output ``e`` (column ``col + k`` holds block position ``k``)."""
    out2 = yr.shape[0]
    if kB > kA:
        yv = yr[max(0, PL * kA - lo2):]
        start = max(0, col + kA)
        if PL == 1:
            av = acc[e, start:]
            if stream and (kB - kA) % (LINE_BYTES // yv.itemsize) == 0 and line_head(yv) == 0:
                for at in range(0, kB - kA, LINE_BYTES // yv.itemsize):
                    stream_line(yv, at, av, at)
            else:
                for i in range(kB - kA):
                    yv[i] = av[i]
        elif PL == 2:
            av0 = acc[e, start:]
            av1 = acc[OUTS + e, start:]
            per = LINE_BYTES // yv.itemsize // 2  # outputs of each phase in a 64-byte line
            if stream and (kB - kA) % per == 0 and line_head(yv) == 0:
                for at in range(0, kB - kA, per):
                    stream_pair(yv, 2 * at, av0, at, av1, at)
            else:
                # unsigned indices: no negative-index wraparound code, so LLVM vectorises the loop
                for i in range(kB - kA):
                    iu = np.uint64(i)
                    yv[np.uint64(2 * i)] = av0[iu]
                    yv[np.uint64(2 * i + 1)] = av1[iu]
        else:
            for p in range(PL):
                av = acc[p * OUTS + e, start:]
                yp = yv[p:]
                for i in range(kB - kA):
                    yp[PL * i] = av[i]
    # border outputs, where not every phase is inside the row
    for p in range(PL):
        lo_p = max(k0, -((p - lo2) // PL))
        hi_p = min(k0 + Lx, -((p - lo2 - out2) // PL))
        for k in range(lo_p, min(hi_p, kA)):
            yr[PL * k + p - lo2] = acc[p * OUTS + e, col + k]
        for k in range(max(lo_p, kB), hi_p):
            yr[PL * k + p - lo2] = acc[p * OUTS + e, col + k]


# fastmath "contract" here, not only on the inlined _products: Numba compiles inlined IR with the flags of the
# function it is inlined into (without them, the products were separate multiplies and adds)
@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def run_parallel(n_items, x, vb_all, tags, zrow, y, u, bias, acc_all, g):
    """Every item on Numba's threads (``tags`` reset by the caller, as for ``run_range``)."""
    for item in numba.prange(n_items):
        _item(item, numba.get_thread_id(), x, vb_all, tags, zrow, y, u, bias, acc_all, g)


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False)
def run_range(i0, i1, thread, x, vb_all, tags, zrow, y, u, bias, acc_all, g):
    """Items ``i0 … i1 − 1`` on one thread (see ``rt_layers.run_range``)."""
    for item in range(i0, i1):
        _item(item, thread, x, vb_all, tags, zrow, y, u, bias, acc_all, g)


# (after the functions above: their Numba cache follows the modules they freeze values of)
refresh_stale_caches(globals())
