"""Run-time support imported by emitted CPU kernels (Numba only; no SymPy, nothing of the algebra).

``stack_tile(like, rows, cols)`` gives a ``(rows, cols)`` array of ``like``'s dtype in the *stack frame*
of the calling Numba function (an LLVM ``alloca``), for the register tile of a micro-kernel.

Why a stack array: the accumulators of a GEMM-like micro-kernel must stay in vector registers while
the loop over input channels runs, and LLVM keeps a memory location in a register across a loop only
when it can prove that no other load or store in the loop touches it.  For a heap array (``np.empty``)
it cannot: the input and weight arrays might overlap it.  An ``alloca`` that never escapes overlaps
nothing, so after the column loop is vectorised the tile's loads and stores are hoisted out of the
channel loop (LICM scalar promotion) and each tap costs one fused multiply-add from registers.  On the
project's 2-core AVX-512 machine this took the 256→128-channel transposed convolution (benchmark case d)
from ~110 to ~180 useful GFLOP/s, and a stand-alone micro-kernel of the same form to ~220 (see
``benchmarks/``).

The tile's contents are undefined until written; it lives until the calling function returns, and the
same storage is reused by every call of the statement in that function (a loop reuses one tile).
"""

from __future__ import annotations

import numba
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["stack_tile", "gather_strided"]


@intrinsic
def stack_tile(typingctx, like, rows, cols):
    """A ``(rows, cols)`` C-contiguous array of ``like.dtype`` on the caller's stack (undefined values).

    ``rows`` and ``cols`` must be literal integers in the calling source (compile-time constants).
    """
    if not isinstance(like, types.Array):
        return None
    if not isinstance(rows, types.IntegerLiteral) or not isinstance(cols, types.IntegerLiteral):
        return None
    n_rows, n_cols = rows.literal_value, cols.literal_value
    if n_rows <= 0 or n_cols <= 0:
        return None
    tile_type = types.Array(like.dtype, 2, "C")
    sig = tile_type(like, rows, cols)

    def codegen(context, builder, signature, args):
        element = context.get_value_type(like.dtype)
        itemsize = context.get_abi_sizeof(element)
        # alloca_once places the allocation in the function's entry block: one slot per frame,
        # whatever loop the statement is in (LLVM's SROA / LICM only reason about such allocas)
        data = cgutils.alloca_once(builder, element, size=n_rows * n_cols)
        tile = context.make_array(tile_type)(context, builder)
        intp = lambda v: context.get_constant(types.intp, v)  # noqa: E731
        context.populate_array(
            tile, data=data, shape=[intp(n_rows), intp(n_cols)], strides=[intp(n_cols * itemsize), intp(itemsize)],
            itemsize=intp(itemsize), meminfo=None,
        )
        return tile._getvalue()

    return sig, codegen


# below this many gathered entries the weight gather runs on one thread: a parallel region wakes the
# pool's sleeping threads (tens of µs with OMP_WAIT_POLICY=PASSIVE), more than a 1→1-channel layer's
# 16-entry gather costs, and the kernel's own parallel region then pays the wake-up again
GATHER_PARALLEL_MIN = 1 << 15


def gather_strided(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out):
    """``out[s, c, g·cout_g + o] = scale[s] · flat[base[s] + g·stride_g + o·stride_o + c·stride_c]``.

    The kernels' weight array ``w[slot, c_in_in_group, c_out]`` gathered from a framework weight
    (flattened) whose entry feeding slot ``s`` of channel pair ``(c' = g·cout_g + o, c)`` is at that
    affine index — true for every layer of the three conventions (see ``LayerBinding``).  One pass over
    (group, input channel), in parallel from ``GATHER_PARALLEL_MIN`` entries on; each destination row
    ``out[s, c, g·cout_g : (g + 1)·cout_g]`` is written contiguously, and in PyTorch's
    transposed-convolution layout ``(C_in, C_out/G, *k)`` the source of one input channel is a
    contiguous block that stays in L1 while its slots are copied out (a 2 MB weight of a
    256→128-channel layer in ~0.1 ms on 2 cores; one strided NumPy copy per slot took ~1.5 ms).
    """
    run = _gather_parallel if out.size >= GATHER_PARALLEL_MIN else _gather_serial
    run(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out)


@numba.njit(cache=True)
def _gather_item(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, item):
    """The rows of ``out`` of one (group, input channel in the group) ``item``."""
    cin_g = out.shape[1]
    g = item // cin_g
    c = item - g * cin_g
    source = g * stride_g + c * stride_c
    for s in range(out.shape[0]):
        row = out[s, c, g * cout_g:(g + 1) * cout_g]
        at = base[s] + source
        factor = scale[s]
        for o in range(cout_g):
            row[o] = flat[at + o * stride_o] * factor


@numba.njit(parallel=True, cache=True)
def _gather_parallel(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out):
    for item in prange(out.shape[2] // cout_g * out.shape[1]):
        _gather_item(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, item)


@numba.njit(cache=True)
def _gather_serial(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out):
    for item in range(out.shape[2] // cout_g * out.shape[1]):
        _gather_item(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, item)
