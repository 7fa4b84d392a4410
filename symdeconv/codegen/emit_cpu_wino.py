"""CPU emitter, Winograd path of grouped plans: F(3, 2) along the leading dimensions.

Applies to a layer whose normal form has, in every output phase and along every dimension but the
last, exactly **two taps at consecutive input positions**, every combination of them present (the
phase's taps are the product of per-dimension tap pairs and one set of last-dimension taps), and no
input phases (``Q = 1``), in three or more dimensions (``MIN_NDIM``).  That is the sub-pixel form of
every transposed convolution with ``kernel = 2 · stride`` (k4 s2, k6 s3, …) and of every stride-1
convolution with a kernel of 2 along the leading dimensions.

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
multiples of three plane positions for *every* phase (a phase's outputs start at ``u = 3τ + e − s``),
so one input transform serves all phases.  Along ``D − 1`` leading dimensions that is ``4^(D−1)``
products for ``3^(D−1)`` outputs (16 for 9 in 3-D, instead of 36), times the phase's taps along the
last dimension, which stay direct: the products keep the direct kernel's unit-stride, vectorised
layout along the last dimension.  For the ConvTranspose3d k4 s2 p1 of benchmark case e the two phases
of a leading dimension need its plane positions 0 … 31 and 1 … 32: 11 windows of three cover them
(F(2, 2) needed 17 windows of two), so per output the Winograd path does (4/3 · 33/32)² · 2 = 3.8
instead of (3/2 · 34/32)² · 2 = 5.1 multiplications (direct: 8; not counting the padded columns of
the last dimension, the same for both), 26 % fewer than with F(2, 2).

The emitted functions (in the layer's module, beside the direct ``kernel``):

1. ``wino_weight``: ``U[phase, k, t, ci, co] = Σ_a G[k, a] · w[slot(phase, a, t), ci, co]``;
2. ``wino_block_rows``: rows of windows per block of work (fewest padded columns, then equal blocks);
3. ``wino_kernel`` (parallel over batch × row blocks × groups; a row is the flattened leading
   windows ``(τ_0, …, τ_{D−2})``).  First ``Bᵀ`` along every leading dimension of each window's
   ``4^(D−1)`` input rows, read from ``x`` in place (a zero row outside it), into this thread's
   buffer ``V[ci, k, r · Lx + x]`` — per point ``k``, the block's rows, each row the plane positions
   of the last dimension.  Then, for each block of ``CO_BLOCK`` output channels, per phase and tile
   of columns, the direct kernel's register-tiled micro-kernel over ``V`` for every point (the
   point's products ``M_k``, with the phase's last-dimension taps), each tile kept on the stack;
   then ``Aᵀ`` along every leading dimension, factored (the last dimension first, in one column
   loop; dimension 0 one output row per loop), plus the bias, into the block's accumulators; then
   the phases of the last dimension are written interleaved, as in the direct kernel.

``run`` takes this path when a group has at least ``WINO_MIN_CIN`` input channels and a multiple of
``CO_BLOCK`` output channels (``layer_plan.choose_strategy``); otherwise the runtime's GEMM-like kernel runs.  Scratch buffers are kept in
``run``'s ``work`` dict, and the per-thread ones are indexed by ``numba.get_thread_id()`` (no
allocation in the parallel loop).

Why each design choice was made (F(3, 2) rather than F(2, 2), the factored ``Aᵀ``, per-block input
transforms, streaming stores) is measured in ``benchmarks/README.md``.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

from ._layer_source import emit_border_flags, emit_row_position, emit_row_write, emit_tap_loops, emit_work_cache
from ._source import Writer, dims, tuple_text
from .layer_plan import WINO_MIN_CIN
from .plan import KernelPlan

__all__ = ["wino_geometry", "wino_streams", "emit_wino", "MIN_NDIM", "MAX_NDIM", "WINO_MIN_CIN", "WINO_COLS", "WINO_M", "STREAM_MIN_BYTES", "BT", "G", "AT"]

#: fewest dimensions for which the generator emits the path.  With one leading dimension (2-D layers)
#: F(2, 2) saves a quarter of the products, and the transforms (a pass over the input, the additions
#: into the outputs) cost about as much: the 64→64 and 256→128 ConvTranspose2d k4 s2 of benchmark cases
#: b and d measured the same either way.  With two (3-D) it saves 44 %.
MIN_NDIM = 3

#: ... and up to this many: in 3-D a benchmark shows the path paying (a 16 -> 16 ConvTranspose3d k4 s2 at 32³,
#: same process, 2 threads: 4.1-5.7 ms against 8.7-13.3 ms with the runtime GEMM-like kernel); a 4-D
#: module's Winograd kernel took ~100 s of a cold test run, mostly compiling, and no benchmark measures it,
#: so 4-D layers run the runtime kernel
MAX_NDIM = 3


#: columns (windows along the last dimension × rows) per block of work of ``wino_kernel``: the
#: block's output accumulators (phases of the last dimension × 2^(D−1) × CO_BLOCK rows) stay in L2.
WINO_COLS = 512

#: Winograd's F(3, 2) along one dimension: three outputs of a 2-tap correlation from a window of four
#: inputs with four multiplications [Winograd 1980; Lavin & Gray 2016, interpolation points 0, 1, −1 and
#: ∞]: the rows of Bᵀ (point k of the window's input), G (point k of the filter) and Aᵀ (output e from
#: the points).  Bᵀ and Aᵀ are 0 or ±1 (exact additions); G is 0, ±½ or 1, and halving is exact in binary
#: floating point, so only the order of the roundings differs from the direct sum.
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, -1, 0, 1))
G = ((1, 0), (Fraction(1, 2), Fraction(1, 2)), (Fraction(1, 2), Fraction(-1, 2)), (0, 1))
AT = ((1, 1, 1, 0), (0, 1, -1, 0), (0, 1, 1, 1))

#: outputs of a window per leading dimension (the m of F(m, 2)); a window reads WINO_M + 1 positions.
WINO_M = len(AT)

#: outputs of at least this many bytes have the rows that are whole 64-byte lines written with
#: non-temporal stores (plans of one or two last-dimension phases, ``wino_streams``; the stores are in
#: :mod:`symdeconv.codegen.runtime`): such an output does not stay in L2 for a next layer anyway, and the
#: stores skip reading each line before it is written and leave the transformed input and the
#: accumulators in the caches.  Same process, interleaved with torch calls, 2 threads: benchmark case e
#: (16 → 16 channels at 32³, 16 MB) 5.6 → 4.7 ms; 32 → 32 at 32³ 18.2 → 15.1 ms; 64 → 64 at 16³
#: 10.8 → 10.4 ms; 32 → 32 at 24³ unchanged.  The direct kernel does not stream: its outputs are a smaller
#: share of its time, and benchmark cases b and h measured ~10 % slower with streaming.
STREAM_MIN_BYTES = 4 << 20


def wino_streams(plan: KernelPlan) -> bool:
    """Whether the plan's Winograd path can write rows with streaming stores (one or two phases along the
    last dimension: ``stream_line`` / ``stream_pair``)."""
    return plan.P[plan.ndim - 1] <= 2


def wino_geometry(plan: KernelPlan, geo: dict) -> dict | None:
    """The Winograd tables of a grouped plan, or ``None`` when the plan does not have that structure.

    ``geo`` is :func:`symdeconv.codegen.emit_cpu_layers.layer_geometry` of the plan (its per-slot plane
    shifts).  Returned: ``shift0[d][p]`` — the plane shift of the first tap of phase component ``p``
    along leading dimension ``d``; ``slots[k][a][t]`` — the slot of leading tap combination ``a`` and
    last-dimension tap ``t`` of phase ``k``; ``xshift[k][t]`` — that tap's plane shift along the last
    dimension; ``nx`` — last-dimension taps per phase.
    """
    D = plan.ndim
    if not MIN_NDIM <= D <= MAX_NDIM or any(q != 1 for q in plan.Q) or not plan.phases:
        return None
    last = D - 1
    shift0: list[dict[int, int]] = [{} for _ in range(D - 1)]
    slots, xshift, nx = [], [], None
    for ph in plan.phases:
        if not ph.slots:
            return None
        shifts = {s: geo["shift"][s] for s, _ in ph.slots}
        first = []
        for d in range(D - 1):
            values = sorted({sh[d] for sh in shifts.values()})
            if len(values) != 2 or values[1] != values[0] + 1:
                return None
            if shift0[d].setdefault(ph.phase[d], values[0]) != values[0]:
                return None
            first.append(values[0])
        xs = sorted({sh[last] for sh in shifts.values()})
        if nx is None:
            nx = len(xs)
        if len(xs) != nx or len(shifts) != 2 ** (D - 1) * nx:
            return None
        table = {}
        for s, sh in shifts.items():
            table[(tuple(sh[d] - first[d] for d in range(D - 1)), sh[last])] = s
        if len(table) != len(shifts):  # distinct keys, as many as combinations: every combination present
            return None
        slots.append([[table[(a, x)] for x in xs] for a in itertools.product((0, 1), repeat=D - 1)])
        xshift.append(xs)
    return {
        "shift0": [[shift0[d][p] for p in range(plan.P[d])] for d in range(D - 1)],
        "slots": slots, "xshift": xshift, "nx": nx,
        "m": WINO_M, "points": (WINO_M + 1) ** (D - 1), "outs": WINO_M ** (D - 1),
    }


def emit_wino(plan: KernelPlan, geo: dict, wg: dict, w: Writer) -> None:
    """Tables, ``wino_run``, ``wino_block_rows``, ``wino_weight`` and ``wino_kernel`` of the module."""
    _emit_tables(plan, wg, w)
    w()
    w()
    _emit_run(plan, wg, w)
    w()
    w()
    _emit_block_rows(w)
    w()
    w()
    _emit_weight(plan, wg, w)
    w()
    w()
    _emit_kernel(plan, geo, wg, w)


# --- tables ------------------------------------------------------------------------------------------


def _emit_tables(plan: KernelPlan, wg: dict, w: Writer) -> None:
    D = plan.ndim
    L = D - 1  # leading dimensions
    m = wg["m"]
    combos = list(itertools.product((0, 1), repeat=L))
    points = list(itertools.product(range(m + 1), repeat=L))
    w(f"# --- Winograd F({m}, 2) path (see wino_run) ---")
    w(f"WINO_MIN_CIN = {WINO_MIN_CIN}  # input channels per group from which run() takes the Winograd path")
    w(f"WINO_COLS = {WINO_COLS}  # columns per block of wino_kernel")
    if wino_streams(plan):
        w(f"STREAM_MIN_BYTES = {STREAM_MIN_BYTES}  # outputs this large: rows of whole lines written with non-temporal stores")
    w(f"WINO_M = {m}  # outputs of a window per leading dimension; a window reads WINO_M + 1 plane positions")
    w(f"WINO_POINTS = {wg['points']}  # (WINO_M + 1)^(D−1) transform points of a window")
    w(f"WINO_OUTS = {wg['outs']}  # WINO_M^(D−1) outputs of a window, per phase")
    w(f"WINO_NX = {wg['nx']}  # last-dimension taps per phase")
    for d in range(L):
        w(f"WINO_SHIFT{d} = np.array({wg['shift0'][d]}, dtype=np.int64)  # first tap's plane shift, per phase along {d}")
    w(f"WINO_SHIFT_MAX = {tuple_text(max(wg['shift0'][d]) for d in range(L))}")
    w("# WINO_SLOTS[k, a, t]: weight slot of leading tap combination a (C order over (0, 1)^(D−1)) and")
    w("# last-dimension tap t of phase k; WINO_XSHIFT[k, t]: that tap's plane shift along the last dimension")
    w(f"WINO_SLOTS = np.array({wg['slots']}, dtype=np.int64).reshape({len(plan.phases)}, {len(combos)}, {wg['nx']})")
    w(f"WINO_XSHIFT = np.array({wg['xshift']}, dtype=np.int64)")
    g_lists = []
    for k in points:
        terms = [(i, math.prod(Fraction(G[k[d]][a[d]]) for d in range(L))) for i, a in enumerate(combos)]
        g_lists.append([(i, c) for i, c in terms if c])
    # (G's entries are 0, ±½ or 1: a point's weight is a sum of tap weights times ±2^−j, exact scalings)
    assert all(c.numerator in (1, -1) and c.denominator & (c.denominator - 1) == 0 for _, c in itertools.chain(*g_lists))
    gw = max(len(v) for v in g_lists)
    w(f"# G, per leading dimension: point k of a tap pair (g0, g1) is {', '.join(_lin(r, 'g') for r in G)};")
    w(f"# Aᵀ: the outputs of a window are {', '.join(_lin(r, 'M') for r in AT)}.  Point k (C order over")
    w("# (0 … WINO_M)^(D−1)) is the sum of the weights of the tap combinations WINO_G[k, :WINO_G_N[k]], times")
    w("# WINO_GC[k, :WINO_G_N[k]]")
    w(f"WINO_G = np.array({[[i for i, _ in v] + [0] * (gw - len(v)) for v in g_lists]}, dtype=np.int64)")
    w(f"WINO_GC = np.array({[[float(c) for _, c in v] + [0.0] * (gw - len(v)) for v in g_lists]})")
    w(f"WINO_G_N = np.array({[len(v) for v in g_lists]}, dtype=np.int64)")


def _lin(row, name: str) -> str:
    """``(1, ½, -1)`` → ``"g0 + ½ g1 − g2"``: a row of G or Aᵀ as text."""
    out = []
    for i, c in enumerate(row):
        if not c:
            continue
        mag = abs(Fraction(c))
        term = f"{name}{i}" if mag == 1 else f"{mag} {name}{i}".replace("1/2 ", "½ ")
        out.append(("− " if c < 0 else "+ ") + term)
    text = " ".join(out)
    return text[2:] if text.startswith("+ ") else "−" + text[2:]


# --- the Python driver -----------------------------------------------------------------------------


def _emit_run(plan: KernelPlan, wg: dict, w: Writer) -> None:
    D = plan.ndim
    L = D - 1
    last = D - 1
    lo = ", ".join(f"lo[{d}]" for d in dims(plan))
    w("def wino_run(x, y, w, bias, groups, jlo, jhi, length, lo, work):")
    with w.indent():
        w('"""The Winograd path of ``run`` (same arguments, block ranges already computed).')
        w()
        w("Along leading dimension ``d`` the windows ``τ = 0 … T_d − 1`` cover the block positions")
        w("``u = WINO_M τ + e − shift`` of every phase (``0 ≤ e < WINO_M``); window ``τ`` reads plane")
        w("positions ``WINO_M τ … WINO_M τ + WINO_M``, which hold input ``position + jlo + E_MIN`` (zero")
        w("outside ``x``).")
        w('"""')
        w("cin_g = x.shape[1] // groups")
        if wino_streams(plan):
            w("stream = y.nbytes >= STREAM_MIN_BYTES  # rows of whole lines bypass the caches")
        else:
            w("stream = False  # (rows of three or more interleaved phases: ordinary stores)")
        w("# windows per leading dimension")
        w(f"T = [(jhi[d] - jlo[d] - 1 + WINO_SHIFT_MAX[d]) // WINO_M + 1 for d in range({L})]")
        w(f"Lx = length[{last}]  # plane positions along the last dimension")
        w("rows = 1")
        w("for t in T:")
        w("    rows *= t")
        with emit_work_cache(w, "('wino', x.shape, x.dtype.str, lo, y.shape, w.shape)", "scratch"):
            w("threads = numba.config.NUMBA_NUM_THREADS  # numba.get_thread_id() < threads")
            w("block_rows = wino_block_rows(rows, Lx)")
            w("M = -(-(block_rows * Lx) // VEC) * VEC")
            w("S = acc_stride(M, y.itemsize, CO_BLOCK)  # a row holds CO_BLOCK channel rows, S apart")
            w(f"n_rows = {plan.P[last]} * WINO_OUTS  # the outputs of a window, per last-dimension phase")
            w("scratch = (")
            w(f"    np.zeros((threads, cin_g, WINO_POINTS, M + E_SPAN[{last}]), dtype=x.dtype),  # a block's V")
            w("    np.empty(threads, dtype=np.int64),  # the block each thread's V holds")
            w(f"    np.zeros(x.shape[{last + 2}], dtype=x.dtype),  # stands for an input row outside x")
            w("    np.empty((threads, n_rows, CO_BLOCK * S), dtype=y.dtype),")
            w(f"    np.empty(({len(plan.phases)}, WINO_POINTS, WINO_NX, cin_g, y.shape[1]), dtype=y.dtype),  # U")
            w("    block_rows,")
            w(")")
        w("vb, tags, zrow, acc, u, block_rows = scratch")
        w("wino_weight(w, u)")
        w("tags[:] = -1  # no thread holds a block of this call's input yet")
        ts = ", ".join(f"T[{d}]" for d in range(L))
        a = ", ".join(f"jlo[{d}] + E_MIN[{d}]" for d in dims(plan))
        js = ", ".join(f"jlo[{d}]" for d in dims(plan))
        w(f"wino_kernel(x, vb, tags, zrow, {a}, y, u, bias, acc, groups, rows, block_rows, {ts}, Lx, {js}, {lo}, stream)")


def _emit_block_rows(w: Writer) -> None:
    w("def wino_block_rows(rows, Lx):")
    with w.indent():
        w('"""Rows of windows per block of work: the fewest padded columns, then the most equal blocks.')
        w()
        w("A block holds at most ``WINO_COLS // Lx`` rows (its buffers stay in L2); the candidates split the")
        w("rows into 1 to 2 times the fewest such blocks, as equally as they can.  A block's columns are")
        w("rounded up to a multiple of VEC, so the row count decides the padded columns.  Of two candidates")
        w("as long, the one whose last block is fuller wins (its threads get more equal work).  E.g. 121")
        w("rows of 34 columns: 11 blocks of 11 rows, 384 columns each (9 blocks of 14 rows would be 512")
        w("columns each; 10 of 13 rows give as many columns, but a last block of 4 rows).")
        w('"""')
        w("most = max(1, WINO_COLS // Lx)")
        w("fewest = -(-rows // most)  # blocks")
        w("best, best_rows = (-1, -1), most")
        w("for n in range(fewest, min(rows, 2 * fewest) + 1):")
        with w.indent():
            w("per = -(-rows // n)  # rows per block")
            w("full = rows // per  # blocks of per rows; the last one has the rest")
            w("columns = full * -(-(per * Lx) // VEC) * VEC + -(-((rows - full * per) * Lx) // VEC) * VEC")
            w("cost = (columns, -(-rows // per) * per - rows)  # then the rows the last block lacks")
            w("if best[0] < 0 or cost < best:")
            w("    best, best_rows = cost, per")
        w("return best_rows")


def _emit_weight(plan: KernelPlan, wg: dict, w: Writer) -> None:
    w("@numba.njit(cache=True)")
    w("def wino_weight(w, u):")
    with w.indent():
        w('"""U[k, point, t, ci, co] = Σ_j WINO_GC[point, j] · w[WINO_SLOTS[k, WINO_G[point, j], t], ci, co] (G g)."""')
        w("for k in range(u.shape[0]):")
        with w.indent():
            w("for point in range(u.shape[1]):")
            with w.indent():
                w("for t in range(WINO_NX):")
                with w.indent():
                    w("dst = u[k, point, t]")
                    w("dst[:, :] = 0.0")
                    w("for j in range(WINO_G_N[point]):")
                    with w.indent():
                        w("src = w[WINO_SLOTS[k, WINO_G[point, j], t]]")
                        w("scale = WINO_GC[point, j]")
                        w("for ci in range(dst.shape[0]):")
                        w("    for co in range(dst.shape[1]):")
                        w("        dst[ci, co] += scale * src[ci, co]")


def _emit_block_transform(L: int, n: int, w: Writer) -> None:
    """Inside the column loop: ``o{k}[i] = (Bᵀ ⊗ … ⊗ Bᵀ s)[k]`` from the ``n^L`` input rows ``s{j}``.

    One leading dimension at a time, the last first; a point whose Bᵀ row is a single +1 is a name
    for its input, not a new value.  Rows and points are named by their indices joined with ``_``.
    """
    grid = list(itertools.product(range(n), repeat=L))
    name = lambda prefix, t: prefix + "_".join(str(v) for v in t)  # noqa: E731
    w("; ".join(f"{name('r', t)} = {name('s', t)}[i]" for t in grid))
    values = {t: name("r", t) for t in grid}  # (dims < d raw, dims ≥ d transformed) → expression name
    for d in range(L - 1, -1, -1):
        new = {}
        lines = []
        for t in grid:
            terms = [(c, values[t[:d] + (j,) + t[d + 1:]]) for j, c in enumerate(BT[t[d]]) if c]
            if len(terms) == 1 and terms[0][0] == 1:
                new[t] = terms[0][1]
                continue
            new[t] = name(f"h{d}_", t)
            plus = [v for c, v in terms if c > 0]
            minus = [v for c, v in terms if c < 0]
            lines.append(f"{new[t]} = " + " + ".join(plus) + "".join(f" - {v}" for v in minus))
        w("; ".join(lines))
        values = new
    for k, t in enumerate(grid):
        w(f"o{k}[i] = {values[t]}")


def _emit_output_transform(L: int, n: int, cb: int, w: Writer) -> None:
    """Aᵀ along every leading dimension: ``acc[p · WINO_OUTS + e, c · S + mc + m]`` from ``prod``, plus the bias.

    Per channel, one column loop applies Aᵀ along the leading dimensions but the first (the last
    first) to the ``n^L`` points' products, into the stack rows ``zt[k0 · R + j]`` (``k0`` the point
    along dimension 0, ``j`` the outputs along the others, C order, ``R = WINO_M^(L−1)``); then Aᵀ along
    dimension 0 writes each output row ``e = e0 · R + j`` in a loop of its own, a single store stream
    (several would need run-time aliasing checks, and LLVM would not vectorise the loop).  Within the
    first loop a row's terms are ordered so that rows share their partial sums (``M1 + M2`` in F(3, 2)),
    which LLVM computes once.  Measured on benchmark case e (same process, 41 interleaved calls), this
    split was 3–5 % faster at 1 thread than computing every output in the first loop and copying the
    stack rows out.  ``L ≥ 2``: the path is emitted from three dimensions on (``MIN_NDIM``).
    """
    assert L >= 2, "the Winograd path has at least two leading dimensions"
    mo = len(AT)
    R = mo ** (L - 1)
    grid = list(itertools.product(range(n), repeat=L))
    freq = [sum(1 for row in AT if row[k]) for k in range(n)]
    order = sorted(range(n), key=lambda k: (-freq[k], k))
    name = lambda prefix, t: prefix + "_".join(str(v) for v in t)  # noqa: E731

    def combination(terms) -> str:
        text = ("" if terms[0][0] > 0 else "-") + terms[0][1]
        return text + "".join(f" {'+' if c > 0 else '-'} {v}" for c, v in terms[1:])

    w("# Aᵀ: the window outputs of the column tile, plus the bias")
    w("for c in range(CO_BLOCK):")
    with w.indent():
        along = "along dimension 1" if L == 2 else f"along dimensions {L - 1} … 1"
        w(f"for m in range(TILE):  # {along}, into zt[k0 · {R} + j]")
        with w.indent():
            w("; ".join(f"{name('m', t)} = prod[{cb * k} + c, m]" for k, t in enumerate(grid)))
            values = {t: name("m", t) for t in grid}  # index tuple (outputs along dims ≥ d) → expression name
            shape = [n] * L
            for d in range(L - 1, 0, -1):
                new, lines = {}, []
                for t in itertools.product(*(range(v) for v in shape[:d] + [mo] + shape[d + 1:])):
                    terms = [(AT[t[d]][k], values[t[:d] + (k,) + t[d + 1:]]) for k in order if AT[t[d]][k]]
                    new[t] = name(f"z{d}_", t)
                    lines.append(f"{new[t]} = {combination(terms)}")
                w("; ".join(lines))
                values = new
                shape[d] = mo
            rest = list(itertools.product(range(mo), repeat=L - 1))
            w("; ".join(f"zt[{k0 * R + j}, m] = {values[(k0,) + t]}" for k0 in range(n) for j, t in enumerate(rest)))
        w("bc = bias[cw + c]")
        w(f"for j in range({R}):  # along dimension 0: output row e0 · {R} + j, one per loop (a single store stream)")
        with w.indent():
            for e0 in range(mo):
                w(f"ac = acc[p * WINO_OUTS + {e0 * R} + j, c * S + mc:]")
                terms = [(AT[e0][k], f"zt[{k * R} + j, m]") for k in range(n) if AT[e0][k]]
                w("for m in range(TILE):")
                w(f"    ac[m] = {combination(terms)} + bc")


def _emit_kernel(plan: KernelPlan, geo: dict, wg: dict, w: Writer) -> None:
    D = plan.ndim
    L = D - 1
    last = D - 1
    P = plan.P
    PL = P[last]
    FL = math.prod(P[:L])
    cb, tile = geo["co_block"], geo["tile"]
    nx = wg["nx"]
    ts = ", ".join(f"T{d}" for d in range(L))
    js = ", ".join(f"jlo{d}" for d in dims(plan))
    lo = ", ".join(f"lo{d}" for d in dims(plan))
    index = {ph.phase: k for k, ph in enumerate(plan.phases)}
    w("# WINO_PHASE[f, p]: the phase whose leading components are f (C order) and last component p")
    table = [[index[f + (p,)] for p in range(PL)] for f in itertools.product(*(range(P[d]) for d in range(L)))]
    w(f"WINO_PHASE = np.array({table}, dtype=np.int64)")
    w()
    w()
    m, n = wg["m"], wg["m"] + 1
    a_args = ", ".join(f"a{d}" for d in dims(plan))
    w("@numba.njit(parallel=True, cache=True, fastmath={'contract'})")
    w(f"def wino_kernel(x, vb_all, tags, zrow, {a_args}, y, u, bias, acc_all, groups, rows, block_rows, {ts}, Lx, {js}, {lo}, stream):")
    with w.indent():
        w('"""One parallel iteration per (batch, row block, group, block of CO_BLOCK output channels).')
        w()
        w("A block is the window rows q0 … q0 + nq − 1 (row = leading windows τ, flattened).  Its input,")
        w("transformed by Bᵀ along every leading dimension, is ``vb[ci, point, r · Lx + i]`` in this thread's")
        w("buffer (window τ reads plane positions ``WINO_M τ … WINO_M τ + WINO_M``; plane position ``p`` along")
        w("``d`` holds input ``p + a_d``, zero outside ``x``).  It is computed when the thread's previous")
        w("iteration had another block (``tags``: the thread's block; -1 at the start of a call), so the")
        w("iterations of a block's output channels on one thread share it.  This thread's rows")
        w("``acc[p · WINO_OUTS + e, c · S + m]`` hold output e of the windows of column m, for channel c of")
        w("the block and last-dimension phase p.  Per leading phase f, phase p and tile of TILE columns, each")
        w("point's products (the register tile, over the group's input channels and the phase's last-dimension")
        w("taps) are kept on the stack (``prod``); Aᵀ turns them into the windows' outputs, plus the bias,")
        w("in ``acc``.  Then the block's outputs of the leading phase f are written.")
        w('"""')
        w("batch, c_out = y.shape[0], y.shape[1]")
        w("cin_g = x.shape[1] // groups  # input channels per group")
        w("cout_g = c_out // groups  # output channels per group (a multiple of CO_BLOCK)")
        w("wide = cout_g // CO_BLOCK")
        w("row_blocks = (rows + block_rows - 1) // block_rows")
        w("S = acc_all.shape[2] // CO_BLOCK  # distance of a block's channel rows")
        w(f"first = max(0, -a{last})  # plane positions along the last dimension that hold inputs")
        w(f"stop = max(first, min(Lx, x.shape[{last + 2}] - a{last}))")
        w("for item in prange(batch * row_blocks * groups * wide):")
        with w.indent():
            w("b = item // (row_blocks * groups * wide)")
            w("i = item - b * (row_blocks * groups * wide)")
            w("rb = i // (groups * wide)")
            w("i = i - rb * (groups * wide)")
            w("g = i // wide")
            w("kb = i - g * wide")
            w("q0 = rb * block_rows")
            w("nq = min(block_rows, rows - q0)")
            w("ci0 = g * cin_g")
            w("M = -(-(nq * Lx) // VEC) * VEC  # nq whole rows (and < VEC columns more, unused)")
            w("co = g * cout_g + kb * CO_BLOCK")
            w("cw = max(0, co)  # (non-negative: constant offsets cw + c)")
            w("thread = numba.get_thread_id()")
            w("acc = acc_all[thread]  # this thread's rows")
            w("vb = vb_all[thread]  # this thread's transformed block")
            w(f"tile = stack_tile(y, {cb}, {tile})")
            w(f"prod = stack_tile(y, {cb * wg['points']}, {tile})  # a column tile's products: row CO_BLOCK · point + c")
            zt_rows = (wg["m"] + 1) * wg["m"] ** (L - 1)
            w(f"zt = stack_tile(y, {zt_rows}, {tile})  # a channel's column tile after Aᵀ along dimensions > 0")
            w("block = (b * row_blocks + rb) * groups + g")
            w("if tags[thread] != block:  # Bᵀ of the block's windows along every leading dimension")
            with w.indent():
                w("tags[thread] = block")
                w("for ci in range(cin_g):")
                with w.indent():
                    w("xc = x[b, ci0 + ci]")
                    w("for r in range(nq):")
                    with w.indent():
                        emit_row_position(L, "r", w, index="tau", extent="T")
                        for d in range(L):
                            w(f"p{d} = {m} * tau{d} + a{d}  # the window's first plane position, as an input index")
                        w("# the window's input rows (zrow outside x)")
                        for j in itertools.product(range(n), repeat=L):
                            idx = ", ".join(f"p{d} + {j[d]}" if j[d] else f"p{d}" for d in range(L))
                            inside = " and ".join(
                                f"0 <= {f'p{d} + {j[d]}' if j[d] else f'p{d}'} < x.shape[{d + 2}]" for d in range(L))
                            name = "x" + "_".join(str(v) for v in j)
                            w(f"{name} = xc[{idx}] if {inside} else zrow")
                        w("seg = r * Lx")
                        w("# positions first … stop − 1 of the row; the others hold no input and stay zero (the buffer")
                        w("# is allocated zero for this geometry and nothing else is written); slice views first:")
                        w("# non-negative indices (the loop vectorises)")
                        grid = list(itertools.product(range(n), repeat=L))
                        for j in grid:
                            suffix = "_".join(str(v) for v in j)
                            w(f"s{suffix} = x{suffix}[first + a{last}:]")
                        for k in range(len(grid)):
                            w(f"o{k} = vb[ci, {k}, seg + first:]")
                        w("for i in range(stop - first):")
                        with w.indent():
                            _emit_block_transform(L, n, w)
            w(f"for f in range({FL}):  # leading phase components (C order)")
            with w.indent():
                rest = "f"
                for d in range(L - 1, -1, -1):
                    if d == 0:
                        w(f"f0 = {rest}")
                    else:
                        w(f"f{d} = {rest} % {P[d]}")
                        w(f"ff = {rest} // {P[d]}")
                        rest = "ff"
                w(f"for p in range({PL}):")
                with w.indent():
                    w("k = WINO_PHASE[f, p]")
                    w("; ".join(f"sx{t} = max(0, WINO_XSHIFT[k, {t}])" for t in range(nx)))
                    w("for tc in range(M // TILE):  # TILE columns at a time: the tile stays in vector registers")
                    with w.indent():
                        w("mc = tc * TILE")
                        w("; ".join(f"d{t} = max(0, mc + sx{t})" for t in range(nx)))
                        w("for point in range(WINO_POINTS):")
                        with w.indent():
                            w("for m in range(TILE):")
                            with w.indent():
                                for c in range(cb):
                                    w(f"tile[{c}, m] = 0.0")
                            w("for ci in range(cin_g):")
                            with w.indent():
                                w("vr = vb[ci, point]")
                                w("ur = u[k, point]")
                                for c in range(cb):
                                    w("; ".join(f"w{c}_{t} = ur[{t}, ci, cw + {c}]" for t in range(nx)))
                                emit_tap_loops(nx, cb, lambda t: f"vr[d{t} + m]", w)
                            w("# the point's products, kept on the stack for Aᵀ (row CO_BLOCK · point + c)")
                            w("for m in range(TILE):")
                            with w.indent():
                                for c in range(cb):
                                    w(f"prod[{cb} * point + {c}, m] = tile[{c}, m]")
                        _emit_output_transform(L, n, cb, w)
                _emit_write(plan, wg, w)
            if wino_streams(plan):
                w("if stream:")
                w("    store_fence()  # the item's non-temporal stores, ordered before the region ends")


def _emit_write(plan: KernelPlan, wg: dict, w: Writer) -> None:
    """acc[p · WINO_OUTS + e, c · S + r · Lx + k − jlo_last] → y[b, co + c, t_0, …, P k + p − lo] (phase f)."""
    D = plan.ndim
    L = D - 1
    last = D - 1
    P = plan.P
    PL = P[last]
    w(f"# write: outputs y[..., {PL} k + p − lo{last}] of all {PL} last-dimension phase(s) p, row by row")
    for p in range(PL):
        w(f"first{p} = -(({p} - lo{last}) // {PL})")
        w(f"stop{p} = -(({p} - lo{last} - y.shape[{last + 2}]) // {PL})")
    w("first_all = " + (f"max({', '.join(f'first{p}' for p in range(PL))})" if PL > 1 else "first0"))
    w("stop_all = " + (f"min({', '.join(f'stop{p}' for p in range(PL))})" if PL > 1 else "stop0"))
    w(f"k0 = jlo{last}")
    w("k1 = k0 + Lx")
    w("kA = max(k0, first_all)")
    w("kB = max(kA, min(k1, stop_all))")
    emit_border_flags(PL, w)
    w("for r in range(nq):")
    with w.indent():
        emit_row_position(L, "r", w, index="tau", extent="T")
        w("seg = r * Lx")
        w("for e in range(WINO_OUTS):")
        with w.indent():
            rest = "e"
            for d in range(L - 1, -1, -1):
                if d == 0:
                    w(f"e0 = {rest}")
                else:
                    w(f"e{d} = {rest} % WINO_M")
                    w(f"ee = {rest} // WINO_M")
                    rest = "ee"
            conds = []
            for d in range(L):
                w(f"t{d} = {P[d]} * (jlo{d} + WINO_M * tau{d} + e{d} - WINO_SHIFT{d}[f{d}]) + f{d} - lo{d}")
                conds.append(f"t{d} < 0 or t{d} >= y.shape[{d + 2}]")
            w(f"if {' or '.join(conds)}:")
            w("    continue")
            w("for c in range(CO_BLOCK):")
            with w.indent():
                yrow = "y[b, co + c" + "".join(f", t{d}" for d in range(L))
                emit_row_write(PL, last, yrow, lambda p: f"acc[{p} * WINO_OUTS + e, c * S + seg", w, streaming=True)
