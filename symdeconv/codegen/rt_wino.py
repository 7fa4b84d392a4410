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
tile is the machine's (:func:`symdeconv.codegen.rt_layers.tile_shape`).  The functions:

1. :func:`weight_transform`: ``U[phase, k, t, ci, co] = Σ_a G[k, a] · w[slot(phase, a, t), ci, co]``;
2. :func:`block_rows`: rows of windows per block of work (fewest padded columns, then equal blocks);
3. ``_item`` (run by ``_parallel`` over batch × row blocks × groups × channel tiles, or ``_serial``):
   ``Bᵀ`` along both leading dimensions of each window's 16 input rows, read from ``x`` in place (a zero
   row outside it), into this thread's buffer ``V[ci, k, r · Lx + i]``; then, per phase and tile of
   columns, the register-tiled micro-kernel over ``V`` for every point (the point's products ``M_k``,
   with the phase's last-dimension taps), kept on the stack; then ``Aᵀ`` (the last leading dimension
   first), plus the bias, into the block's accumulators; then the phases of the last dimension are
   written interleaved.  Outputs of at least ``STREAM_MIN_BYTES`` have their rows of whole 64-byte
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
from .rt_layers import SERIAL_MAX_MACS, _machine_tile, acc_stride, split_item, tile_columns_of
from .runtime import LINE_BYTES, line_head, store_fence, stream_line, stream_pair, tile_codegen

__all__ = ["run_wino", "weight_transform", "block_rows", "BT", "G", "AT", "WINO_M", "WINO_COLS", "VEC",
           "STREAM_MIN_BYTES"]

#: Winograd's F(3, 2) along one dimension: the rows of Bᵀ (point k of the window's input), G (point k of the
#: filter) and Aᵀ (output e from the points).
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, -1, 0, 1))
G = ((1, 0), (Fraction(1, 2), Fraction(1, 2)), (Fraction(1, 2), Fraction(-1, 2)), (0, 1))
AT = ((1, 1, 1, 0), (0, 1, -1, 0), (0, 1, 1, 1))

#: outputs of a window per leading dimension (the m of F(m, 2)); a window reads WINO_M + 1 positions
WINO_M = len(AT)
_POINTS = (WINO_M + 1) ** 2  # transform points of a window (two leading dimensions)
_OUTS = WINO_M ** 2  # outputs of a window, per phase

#: columns (windows along the last dimension × rows) per block of work: the block's accumulators (phases of
#: the last dimension × 9 outputs × CO_BLOCK rows) stay in L2
WINO_COLS = 512

#: accumulator lengths are rounded up to a multiple of VEC elements (a multiple of every machine's tile
#: width), so the vectorised column loops never end in a scalar remainder loop
VEC = 64

#: outputs of at least this many bytes have the rows that are whole 64-byte lines written with
#: non-temporal stores (one or two last-dimension phases): such an output does not stay in L2 for a next
#: layer anyway, and the stores skip reading each line before it is written
STREAM_MIN_BYTES = 4 << 20

# point k (C order over (0 … 3)²) of the weight: Σ_j _GC[k, j] · (tap combination _GI[k, j]), from G ⊗ G
_GI = np.zeros((_POINTS, 4), dtype=np.int64)
_GC = np.zeros((_POINTS, 4), dtype=np.float64)
_GN = np.zeros(_POINTS, dtype=np.int64)
for _k0 in range(WINO_M + 1):
    for _k1 in range(WINO_M + 1):
        _k = _k0 * (WINO_M + 1) + _k1
        for _a in range(4):  # tap combination (a0, a1), C order over (0, 1)²
            _c = Fraction(G[_k0][_a // 2]) * Fraction(G[_k1][_a % 2])  # ±1, ±½ or ±¼: exact scalings
            if _c:
                _GI[_k, _GN[_k]] = _a
                _GC[_k, _GN[_k]] = float(_c)
                _GN[_k] += 1

# the geometry vector of a call (scalars), followed by the tables shift0, shift1 and xshift
(_GROUPS, _ROWS, _BLOCK_ROWS, _T1, _LX, _JLO0, _JLO1, _JLO2, _LO0, _LO1, _LO2, _A0, _A1, _A2, _STREAM, _P0, _P1,
 _PL, _NX, _AT_SHIFT1, _AT_XSHIFT) = range(21)
_G_SIZE = 21


@intrinsic
def _tile_rows(typingctx, like, rows):
    """A ``(rows, TILE)`` array of ``like.dtype`` on the caller's stack, ``TILE`` the machine's tile width."""
    n_cols = tile_columns_of(like)
    if n_cols is None or not isinstance(rows, types.IntegerLiteral):
        return None
    return types.Array(like.dtype, 2, "C")(like, rows), tile_codegen(like.dtype, rows.literal_value, n_cols)


@numba.njit(cache=True)
def weight_transform(w, u, slots, nx):
    """``U[k, point, t, ci, co] = Σ_j GC[point, j] · w[slots[k, GI[point, j], t], ci, co]`` (G g, per phase k)."""
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
    T1 = g[_T1]
    Lx = g[_LX]
    a0 = g[_A0]
    a1 = g[_A1]
    a2 = g[_A2]
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


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, _nrt=False)
def _item(item, thread, x, vb_all, tags, zrow, y, u, bias, acc_all, g):
    """One block of work: (batch, block of window rows, group, block of CO_BLOCK output channels).

    A block is the window rows ``q0 … q0 + nq − 1`` (row = the two leading windows τ, flattened).  Its
    input, transformed by Bᵀ, is ``vb[ci, point, r · Lx + i]`` in this thread's buffer, computed when the
    thread's previous item had another block (``tags``), so the items of a block's output channels on one
    thread share it.  This thread's rows ``acc[p · 9 + e, c · S + m]`` hold output ``e`` of the windows of
    column ``m``, for channel ``c`` and last-dimension phase ``p``.
    """
    groups = g[_GROUPS]
    rows = g[_ROWS]
    brows = g[_BLOCK_ROWS]
    T1 = g[_T1]
    Lx = g[_LX]
    P1 = g[_P1]
    PL = g[_PL]
    nx = g[_NX]
    shift0 = g[_G_SIZE:g[_AT_SHIFT1]]
    shift1 = g[g[_AT_SHIFT1]:g[_AT_XSHIFT]]
    xshift = g[g[_AT_XSHIFT]:]
    cin_g = x.shape[1] // groups
    cout_g = y.shape[1] // groups
    wide = cout_g // CO_BLOCK
    row_blocks = (rows + brows - 1) // brows
    S = acc_all.shape[2] // CO_BLOCK  # distance of a block's channel rows
    a2 = g[_A2]
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
    block = (b * row_blocks + rb) * groups + grp
    if tags[thread] != block:
        tags[thread] = block
        for ci in range(cin_g):
            _transform_input(x[b, ci0 + ci], vb, ci, zrow, q0, nq, g, first, stop)
    out0 = y.shape[2]
    out1 = y.shape[3]
    out2 = y.shape[4]
    lo2 = g[_LO2]
    k0 = g[_JLO2]
    # the columns where every last-dimension phase's output is inside the row: one interleaved loop
    kA = k0
    kB = k0 + Lx
    for p in range(PL):
        kA = max(kA, -((p - lo2) // PL))
        kB = min(kB, -((p - lo2 - out2) // PL))
    kB = max(kA, kB)
    for f in range(g[_P0] * P1):  # leading phase components (C order)
        f0 = f // P1
        f1 = f % P1
        for p in range(PL):
            k = f * PL + p
            uk = u[k]
            xs = xshift[k * nx:(k + 1) * nx]
            for tc in range(M // T):  # T columns at a time: the tile stays in vector registers
                mc = tc * T
                for point in range(_POINTS):
                    _products(prod, vb, point, uk[point], xs, nx, mc, cin_g, cw)
                # Aᵀ: the window outputs of the column tile, plus the bias
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
                        ac = acc[p * _OUTS + j, c * S + mc:]
                        for m in range(T):
                            ac[m] = zt[j, m] + zt[3 + j, m] + zt[6 + j, m] + bc
                        ac = acc[p * _OUTS + 3 + j, c * S + mc:]
                        for m in range(T):
                            ac[m] = zt[3 + j, m] - zt[6 + j, m] + bc
                        ac = acc[p * _OUTS + 6 + j, c * S + mc:]
                        for m in range(T):
                            ac[m] = zt[3 + j, m] + zt[6 + j, m] + zt[9 + j, m] + bc
        # write: outputs y[..., PL (k0 + i) + p − lo2] of every last-dimension phase p, row by row
        for r in range(nq):
            q = q0 + r
            tau0 = q // T1
            tau1 = q % T1
            seg = r * Lx
            for e in range(_OUTS):
                t0 = g[_P0] * (g[_JLO0] + WINO_M * tau0 + e // WINO_M - shift0[f0]) + f0 - g[_LO0]
                t1 = P1 * (g[_JLO1] + WINO_M * tau1 + e % WINO_M - shift1[f1]) + f1 - g[_LO1]
                if t0 < 0 or t0 >= out0 or t1 < 0 or t1 >= out1:
                    continue
                for c in range(CO_BLOCK):
                    yr = y[b, co + c, t0, t1]
                    _write_row(yr, acc, e, c * S + seg - k0, kA, kB, k0, Lx, PL, lo2, g[_STREAM])
    if g[_STREAM]:
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
            av1 = acc[_OUTS + e, start:]
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
                av = acc[p * _OUTS + e, start:]
                yp = yv[p:]
                for i in range(kB - kA):
                    yp[PL * i] = av[i]
    # border outputs, where not every phase is inside the row
    for p in range(PL):
        lo_p = max(k0, -((p - lo2) // PL))
        hi_p = min(k0 + Lx, -((p - lo2 - out2) // PL))
        for k in range(lo_p, min(hi_p, kA)):
            yr[PL * k + p - lo2] = acc[p * _OUTS + e, col + k]
        for k in range(max(lo_p, kB), hi_p):
            yr[PL * k + p - lo2] = acc[p * _OUTS + e, col + k]


@numba.njit(parallel=True, cache=True)
def _parallel(n_items, x, vb_all, tags, zrow, y, u, bias, acc_all, g):
    for i in range(tags.size):  # no thread's buffer holds a block of this call's input yet
        tags[i] = -1
    for item in numba.prange(n_items):
        _item(item, numba.get_thread_id(), x, vb_all, tags, zrow, y, u, bias, acc_all, g)


@numba.njit(cache=True)
def _serial(n_items, x, vb_all, tags, zrow, y, u, bias, acc_all, g):
    tags[0] = -1
    for item in range(n_items):
        _item(item, 0, x, vb_all, tags, zrow, y, u, bias, acc_all, g)


# ==================================================================================================
# The driver (plain Python, geometry cached per shape; calls of fewer than rt_layers.SERIAL_MAX_MACS
# multiply-adds run on the calling thread, as the GEMM-like path's do)
# ==================================================================================================


def block_rows(rows: int, Lx: int) -> int:
    """Rows of windows per block of work: the fewest padded columns, then the most equal blocks.

    A block holds at most ``WINO_COLS // Lx`` rows (its buffers stay in L2); the candidates split the
    rows into 1 to 2 times the fewest such blocks, as equally as they can.  A block's columns are
    rounded up to a multiple of VEC, so the row count decides the padded columns.  Of two candidates
    as long, the one whose last block is fuller wins (its threads get more equal work).  E.g. 121
    rows of 34 columns: 11 blocks of 11 rows, 384 columns each (9 blocks of 14 rows would be 512
    columns each; 10 of 13 rows give as many columns, but a last block of 4 rows).
    """
    most = max(1, WINO_COLS // Lx)
    fewest = -(-rows // most)  # blocks
    best, best_rows = (-1, -1), most
    for n in range(fewest, min(rows, 2 * fewest) + 1):
        per = -(-rows // n)  # rows per block
        full = rows // per  # blocks of per rows; the last one has the rest
        columns = full * -(-(per * Lx) // VEC) * VEC + -(-((rows - full * per) * Lx) // VEC) * VEC
        cost = (columns, -(-rows // per) * per - rows)  # then the rows the last block lacks
        if best[0] < 0 or cost < best:
            best, best_rows = cost, per
    return best_rows


def run_wino(plan, x, y, w, bias, groups, lo, work=None):
    """``y`` = the layer of ``plan`` on ``x`` by the Winograd path (``plan.wino_tables()`` not ``None``).

    Arguments as :func:`symdeconv.codegen.rt_layers.run_layer`.  Along leading dimension ``d`` the windows
    ``τ = 0 … T_d − 1`` cover the block positions ``u = 3τ + e − shift`` of every phase (``0 ≤ e < 3``);
    window ``τ`` reads plane positions ``3τ … 3τ + 3``, which hold input ``position + jlo + e_min`` (zero
    outside ``x``).
    """
    if x.shape[0] == 0:  # an empty batch: nothing to write
        return
    key = ("wino", x.shape, x.dtype.char, tuple(lo), y.shape, groups)
    state = work.get(key) if work is not None else None
    if state is None:
        tabs = plan.wino_tables()
        jlo, jhi, length = plan.blocks(y.shape[2:], lo)
        T = [(jhi[d] - jlo[d] - 1 + max(tabs.shift[d])) // WINO_M + 1 for d in range(2)]
        Lx = length[2]
        rows = T[0] * T[1]
        cin_g = x.shape[1] // groups
        per = block_rows(rows, Lx)
        M = -(-(per * Lx) // VEC) * VEC
        S = acc_stride(M, y.itemsize, CO_BLOCK)  # a row holds CO_BLOCK channel rows, S apart
        n_items = x.shape[0] * (-(-rows // per)) * groups * ((y.shape[1] // groups) // CO_BLOCK)
        macs = x.shape[0] * y.shape[1] * cin_g * int(np.prod(y.shape[2:])) * plan.max_taps
        serial = macs < SERIAL_MAX_MACS or n_items == 1
        threads = 1 if serial else numba.config.NUMBA_NUM_THREADS
        g = np.zeros(_G_SIZE, dtype=np.int64)
        g[[_GROUPS, _ROWS, _BLOCK_ROWS, _T1, _LX]] = groups, rows, per, T[1], Lx
        g[_JLO0:_JLO0 + 3] = jlo
        g[_LO0:_LO0 + 3] = lo
        g[_A0:_A0 + 3] = [jlo[d] + plan.e_min[d] for d in range(3)]
        g[[_STREAM, _P0, _P1, _PL, _NX]] = 0, plan.P[0], plan.P[1], plan.P[2], tabs.nx
        g[_AT_SHIFT1] = _G_SIZE + plan.P[0]
        g[_AT_XSHIFT] = _G_SIZE + plan.P[0] + plan.P[1]
        g = np.concatenate([g, np.asarray(tabs.shift[0], np.int64), np.asarray(tabs.shift[1], np.int64),
                            tabs.xshift.ravel()])
        state = (
            _serial if serial else _parallel, n_items, g, tabs,
            np.zeros((threads, cin_g, _POINTS, M + plan.e_span[2]), dtype=x.dtype),  # a block's V
            np.empty(threads, dtype=np.int64),  # the block each thread's V holds
            np.zeros(x.shape[4], dtype=x.dtype),  # stands for an input row outside x
            np.empty((threads, plan.P[2] * _OUTS, CO_BLOCK * S), dtype=y.dtype),  # accumulators
            np.empty((plan.n_phases, _POINTS, tabs.nx, cin_g, y.shape[1]), dtype=y.dtype),  # U
        )
        if work is not None:
            work.clear()
            work[key] = state
    run, n_items, g, tabs, vb, tags, zrow, acc, u = state
    # streaming stores only for one or two last-dimension phases (whole lines of one or two rows)
    g[_STREAM] = int(y.nbytes >= STREAM_MIN_BYTES and plan.P[2] <= 2)
    weight_transform(w, u, tabs.slots, tabs.nx)
    run(n_items, x, vb, tags, zrow, y, u, bias, acc, g)
