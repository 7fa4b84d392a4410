"""Emitted-source pieces shared by the CPU layer paths (the direct kernel of ``emit_cpu_layers`` and the
Winograd path of ``emit_cpu_wino``): the scratch cache of ``run``, the rows' positions, the register tile's
column loops and the interleaved row write."""

from __future__ import annotations

from contextlib import contextmanager

from ._source import Writer

__all__ = ["TAP_GROUP", "emit_row_position", "emit_tap_loops", "emit_border_flags", "emit_row_write", "emit_work_cache"]

#: taps per column loop of the micro-kernel.  With all of a phase's taps in one loop, LLVM hoists all
#: CO_BLOCK × taps weight broadcasts out of it: 32 registers for 8 taps, more than the 16 the tile
#: leaves, and the spills made (4, 64) lose to (4, 32) with 8–9 taps.  In loops of TAP_GROUP taps (the
#: tile stays in registers across them, and each tap is still one FMA onto it, in the same order) only
#: CO_BLOCK × TAP_GROUP broadcasts are live at a time.  Measured (kernel alone, 2 threads): the
#: 9-tap stride-2 Conv2d of benchmark case h 21.6 → 17.5 ms against (4, 32) in one loop; the 8-tap
#: ConvTranspose3d of case e unchanged (6.8–7.0 ms; its rows of 32 outputs now take the flat mode); in
#: float64 h 44.0 → 39.5 ms and e 19.6 → 15.5 ms.  Groups of 3 and 4 measured within 2 %, of 2 a few
#: per cent slower, of 1 more than twice as slow.
TAP_GROUP = 4


@contextmanager
def emit_work_cache(w: Writer, key: str, var: str):
    """``{var}``, kept in the ``work`` dict of ``run`` under the key ``key`` (one entry at a time).

    The lines emitted inside the ``with`` block build ``{var}``; they run when the dict does not hold it.
    """
    w(f"key = {key}")
    w(f"{var} = work.get(key) if work is not None else None")
    w(f"if {var} is None:")
    with w.indent():
        yield
        w("if work is not None:")
        w("    work.clear()")
        w(f"    work[key] = {var}")


def emit_row_position(n_lead: int, row: str, w: Writer, index: str = "u", extent: str = "L") -> None:
    """``{index}0 … {index}{n_lead−1}``: the position along each leading dimension of row ``q0 + row``.

    A block's rows flatten the leading dimensions in C order; ``{extent}{d}`` is the extent of
    dimension ``d`` (plane positions ``L`` in the direct kernel, windows ``T`` in the Winograd path).
    """
    w(f"q = q0 + {row}")
    for d in range(n_lead - 1, 0, -1):
        w(f"{index}{d} = q % {extent}{d}")
        w(f"q = q // {extent}{d}")
    w(f"{index}0 = q")


def emit_tap_loops(T: int, width: int, load, w: Writer) -> None:
    """The register tile's column loops for ``T`` taps, ``TAP_GROUP`` taps per loop.

    ``load(t)`` is the expression of tap ``t``'s input at column ``m``; the weights ``w{c}_{t}`` are
    loop invariants set by the caller.  Each tap is one (fused) multiply-add onto the tile row of
    every output channel ``c < width``, in tap order whatever the grouping.
    """
    groups = [range(g, min(g + TAP_GROUP, T)) for g in range(0, T, TAP_GROUP)]
    for taps in groups:
        if len(groups) > 1:
            which = f"taps {taps[0]}–{taps[-1]}" if len(taps) > 1 else f"tap {taps[0]}"
            w(f"# {which}: the tile stays in registers between the column loops")
        w("for m in range(TILE):")
        with w.indent():
            w("; ".join(f"v{t} = {load(t)}" for t in taps))
            for c in range(width):
                w(f"tile[{c}, m] = tile[{c}, m] + " + " + ".join(f"w{c}_{t} * v{t}" for t in taps))


def emit_border_flags(PL: int, w: Writer) -> None:
    """``lo_p``/``hi_p``: the border outputs of phase ``p`` outside the interleaved range ``[kA, kB)``.

    At most one per phase and side, since first_p (stop_p) = ceil((lo − p) / P) (ceil((lo + out − p) / P))
    differ by at most 1 over p; the same in every row of a block, and usually none (``border``).
    """
    w("# border outputs where not every phase is in range: at most one per phase and side, since")
    w("# first_p (stop_p) = ceil((lo − p) / P) (ceil((lo + out − p) / P)) differ by at most 1 over p")
    for p in range(PL):
        w(f"lo_{p} = max(k0, first{p})  # written when < kA")
        w(f"hi_{p} = kB if kB < min(k1, stop{p}) else -1  # written when ≥ 0")
    w("border = " + " or ".join(f"lo_{p} < kA or hi_{p} >= 0" for p in range(PL)))


def emit_row_write(PL: int, last: int, yrow: str, src, w: Writer, streaming: bool = False) -> None:
    """One output row: ``{yrow}, P k + p − lo]`` ← ``{src(p)} + k − k0]`` for the ``PL`` last-dimension phases.

    ``yrow`` is the row's index prefix into ``y`` (without the last index), ``src(p)`` that of phase
    ``p``'s results (column ``k − k0`` of the row).  Interleaved over ``[kA, kB)`` in one loop over views
    made once per row (non-negative indices: the loop vectorises), then the border outputs.  With
    ``streaming`` (the Winograd path: see ``emit_cpu_wino.STREAM_MIN_BYTES``), one or two phases, the
    kernel's flag ``stream`` set (a large output) and a row that
    is whole 64-byte lines (it starts on a line boundary, ``line_head``, and is a multiple of a line long:
    every row when ``y`` is aligned and its rows are, as in benchmark case e), the row is written with
    non-temporal stores (``stream_line`` / ``stream_pair`` of :mod:`symdeconv.codegen.runtime`).  Other
    rows take the plain loop.  Tried and dropped: streaming the whole lines of any row, its partial
    first and last lines with ordinary stores.  On NumPy's usual 16-byte-aligned outputs that was slower
    than the plain loop.  Beside the streaming branch LLVM no longer proved the plain loop's indices
    non-negative, kept Numba's negative-index wraparound and did not vectorise it (case e's kernel took
    6.5–8.0 instead of 5.3 ms at 2 threads on an unaligned output): the loop indexes with unsigned
    integers, for which Numba emits no wraparound.
    """
    first = f"{PL} * kA - lo{last}" if PL != 1 else f"kA - lo{last}"
    w(f"yv = {yrow}, {first}:]")
    for p in range(PL):
        w(f"av{p} = {src(p)} + kA - k0:]")

    if not streaming or PL > 2:
        w("for i in range(kB - kA):")
        with w.indent():
            for p in range(PL):
                w(f"yv[{PL} * i + {p}] = av{p}[i]")
    else:
        half = "" if PL == 1 else " // 2"
        w(f"per = LINE_BYTES // yv.itemsize{half}  # outputs of {'each phase' if PL == 2 else 'the row'} in a 64-byte line")
        w("if stream and (kB - kA) % per == 0 and line_head(yv) == 0:  # whole lines: they bypass the caches")
        w("    for at in range(0, kB - kA, per):")
        w("        stream_line(yv, at, av0, at)" if PL == 1 else "        stream_pair(yv, 2 * at, av0, at, av1, at)")
        w("else:")
        with w.indent():
            w("# unsigned indices: Numba emits no negative-index wraparound (beside the branch above, LLVM kept")
            w("# it and did not vectorise the loop)")
            w("for i in range(kB - kA):")
            with w.indent():
                w("iu = np.uint64(i)")
                if PL == 1:
                    w("yv[iu] = av0[iu]")
                else:
                    w("yv[np.uint64(2 * i)] = av0[iu]")
                    w("yv[np.uint64(2 * i + 1)] = av1[iu]")
    w("if border:")
    with w.indent():
        w(f"yr = {yrow}]")
        for p in range(PL):
            yi = (lambda k: f"{PL} * {k} + {p} - lo{last}" if PL != 1 else f"{k} - lo{last}")
            w(f"if lo_{p} < kA:")
            w(f"    yr[{yi(f'lo_{p}')}] = {src(p)} + lo_{p} - k0]")
            w(f"if hi_{p} >= 0:")
            w(f"    yr[{yi(f'hi_{p}')}] = {src(p)} + hi_{p} - k0]")
