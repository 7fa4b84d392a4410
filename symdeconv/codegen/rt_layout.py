"""The layouts the CPU runtime's kernels and their driver share: geometry vectors, tiles, block sizes.

Plain Python (no Numba): the driver (:mod:`.rt_driver`) fills a call's geometry vector from these in a
process that may never import Numba; the kernels (:mod:`.rt_layers`, :mod:`.rt_wino`) read the same
fields, frozen as constants when Numba compiles them.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from .machine import CO_BLOCK, host_machine, tile_columns

__all__ = ["MAX_NDIM", "G_FIELDS", "G_SIZE", "tile_shape", "WINO_M", "WINO_COLS", "VEC", "WG_SIZE", "RUNTIME_SOURCES",
           "source_hash"]

# --- the runtime's sources ----------------------------------------------------------------------------------

#: the files the compiled runtime is built from (the kernels, and the constants Numba freezes into them):
#: the native objects (:mod:`.native`) and Numba's cache of the runtime (``runtime.refresh_stale_caches``)
#: are keyed by their digest, so any change compiles them again
RUNTIME_SOURCES = ("rt_layers.py", "rt_wino.py", "rt_asm.py", "runtime.py", "rt_layout.py", "machine.py", "_alloc.py",
                   "_env.py")


@functools.lru_cache(maxsize=None)
def source_hash() -> str:
    """A digest of ``RUNTIME_SOURCES`` (names and contents)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in RUNTIME_SOURCES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return h.hexdigest()


# --- the GEMM-like kernel (rt_layers) -----------------------------------------------------------------------

#: spatial dimensions the flattened geometry vector has room for (a layer with more is refused by run_layer)
MAX_NDIM = 8

#: the geometry vector ``g``: scalars first, then per-dimension fields of MAX_NDIM entries each
_SCALARS = ("ndim", "n_planes", "n_phases", "PL", "rows", "block_rows", "row_blocks", "band", "cin_g", "cout_g",
            "groups", "wide", "per_group", "Lrow", "S0", "tile", "co_group", "asm", "at_taps", "at_offs",
            "at_first", "at_stop")
_VECTORS = ("P", "Q", "L", "S", "J", "jlo", "xa", "n", "ns", "out", "os", "lo")
G_FIELDS = {name: i for i, name in enumerate(_SCALARS)}
for _k, _name in enumerate(_VECTORS):
    G_FIELDS[_name] = len(_SCALARS) + _k * MAX_NDIM
G_SIZE = len(_SCALARS) + len(_VECTORS) * MAX_NDIM
(_NDIM, _NPLANES, _NPHASES, _PL, _ROWS, _BLOCK_ROWS, _ROW_BLOCKS, _BAND, _CIN_G, _COUT_G, _GROUPS, _WIDE,
 _PER_GROUP, _LROW, _S0, _TILE, _CO_GROUP, _ASM, _AT_TAPS, _AT_OFFS, _AT_FIRST, _AT_STOP) = range(len(_SCALARS))
_P, _Q, _L, _S, _J, _JLO, _XA, _N, _NS, _OUT, _OS, _LO = (G_FIELDS[v] for v in _VECTORS)


def tile_shape(itemsize: int) -> tuple[int, int]:
    """The register tile (output channels, columns) of this machine for a dtype of ``itemsize`` bytes."""
    return CO_BLOCK, tile_columns(host_machine(), itemsize)


# the tile widths the micro-kernel is compiled with (read once: Numba freezes them into the compiled code)
TILE_F32 = tile_shape(4)[1]
TILE_F64 = tile_shape(8)[1]

#: blocks of CO_BLOCK output channels per work item: each tile of input columns is multiplied by all of them
#: in turn while it is in L1 (one block per item streamed the tile's inputs from L2 for every block).  The
#: compiled runtime reads it from the geometry vector (``co_group``), not as a constant, so that the driver
#: could choose it per call
CO_GROUP = 4

# --- the Winograd path (rt_wino) ----------------------------------------------------------------------------

#: outputs of a window per leading dimension (the m of F(m, 2)); a window reads WINO_M + 1 positions
WINO_M = 3
POINTS = (WINO_M + 1) ** 2  # transform points of a window (two leading dimensions)
OUTS = WINO_M ** 2  # outputs of a window, per phase

#: columns (windows along the last dimension × rows) per block of work: the block's accumulators (phases of
#: the last dimension × 9 outputs × CO_BLOCK rows) stay in L2
WINO_COLS = 512

#: accumulator lengths are rounded up to a multiple of VEC elements (a multiple of every machine's tile
#: width), so the vectorised column loops never end in a scalar remainder loop
VEC = 64

# the Winograd geometry vector of a call (scalars), followed by the tables shift0, shift1 and xshift; W_ASM: the
# products by the assembly kernel (machine.asm_tiles)
(W_GROUPS, W_ROWS, W_BLOCK_ROWS, W_T1, W_LX, W_JLO0, W_JLO1, W_JLO2, W_LO0, W_LO1, W_LO2, W_A0, W_A1, W_A2, W_STREAM,
 W_P0, W_P1, W_PL, W_NX, W_AT_SHIFT1, W_AT_XSHIFT, W_ASM) = range(22)
WG_SIZE = 22
