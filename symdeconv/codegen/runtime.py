"""Run-time support imported by emitted CPU kernels (Numba only; no SymPy, nothing of the algebra).

``stack_tile(like, rows, cols)`` gives a ``(rows, cols)`` array of ``like``'s dtype in the *stack frame*
of the calling Numba function (an LLVM ``alloca``), for the register tile of a micro-kernel.

Why a stack array: the accumulators of a GEMM-like micro-kernel must stay in vector registers while
the loop over input channels runs, and LLVM keeps a memory location in a register across a loop only
when it can prove that no other load or store in the loop touches it.  For a heap array (``np.empty``)
it cannot: the input and weight arrays might overlap it.  An ``alloca`` that never escapes overlaps
nothing, so after the column loop is vectorised the tile's loads and stores are hoisted out of the
channel loop (LICM scalar promotion) and each tap costs one fused multiply-add from registers (what
that gained is measured in ``benchmarks/README.md``).

The tile's contents are undefined until written; it lives until the calling function returns, and the
same storage is reused by every call of the statement in that function (a loop reuses one tile).

``line_head``, ``stream_line``, ``stream_pair``, ``stream_ready``, ``stream_row`` and ``store_fence`` write
output rows in whole 64-byte lines with non-temporal stores (see the section below); ``copy_even`` copies
every other element with masked vector loads and stores; ``gather_range`` / ``gather_parallel`` gather a
layer's weights into the kernels' slot layout (driven by ``rt_driver.gather_strided``).
"""

from __future__ import annotations

import platform

import llvmlite.ir as ir
import numba
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._alloc import LINE_BYTES  # the line a streaming store covers (bytes); outputs are allocated on one
from .machine import host_machine
from .rt_layout import source_hash

__all__ = ["full_width", "stack_tile", "stencil_item", "gather_range", "gather_parallel", "line_head", "stream_line",
           "stream_pair", "store_fence", "stream_row", "stream_ready", "copy_even", "refresh_stale_caches", "LINE_BYTES"]


@intrinsic
def full_width(typingctx):
    """Make LLVM vectorise the calling function with the machine's full vector width (a no-op statement).

    On Intel CPUs with AVX-512, LLVM's tuning prefers 256-bit vectors (``prefer-256-bit``): it then emits
    ymm code, and a register tile sized for 32 zmm registers (:mod:`.machine`) becomes twice as many ymm
    accumulators that spill.  Cores with two 512-bit FMA units run zmm code at about twice the FLOP rate
    (measured in ``benchmarks/README.md``).  The function attribute ``"prefer-vector-width"`` overrides the
    tuning for one function; it must be on every function its vector loops end up in after inlining.
    Nothing is added where the target is not AVX-512 (AMD Zen 4 already prefers 512 bits).  The generated
    stencils do without it: their interleaved phase writes ran slower as 512-bit code.
    """
    machine = host_machine()

    def codegen(context, builder, signature, args):
        if machine.isa == "avx512":
            # llvmlite's attribute set knows no "key"="value" attributes; its text is copied into the IR as is
            # (should a later llvmlite store attributes otherwise, the code is LLVM's choice again, not broken)
            try:
                set.add(builder.function.attributes, f'"prefer-vector-width"="{machine.vector_bits}"')
            except TypeError:
                pass
        return context.get_dummy_value()

    return types.none(), codegen


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
    return tile_type(like, rows, cols), tile_codegen(like.dtype, n_rows, n_cols)


def tile_codegen(dtype, n_rows: int, n_cols: int):
    """The code generator of an intrinsic returning a ``(n_rows, n_cols)`` C array of ``dtype`` on the stack."""
    tile_type = types.Array(dtype, 2, "C")

    def codegen(context, builder, signature, args):
        element = context.get_value_type(dtype)
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

    return codegen


# --- streaming (non-temporal) stores of output rows ------------------------------------------------------------
#
# A layer's output rows are written once and not read again by the kernel.  Written with ordinary stores,
# every 64-byte line is first read from memory into the cache ("read for ownership") and later written
# back, and it evicts the kernel's working set (the transformed input, the accumulators) from L2 on the
# way.  A non-temporal store of a whole, aligned line skips both: the line goes to memory from a
# write-combining buffer.  The Winograd path's row write (``rt_wino``) and the stencils use them for outputs
# of at least ``machine.stream_min_bytes()`` (4 MiB unless set), for the rows that are whole lines
# (``line_head(row) == 0`` and a whole number of lines long); other rows keep ordinary stores (measured in
# ``benchmarks/README.md``).  ``store_fence`` (x86 ``sfence``) at the end of each parallel work item orders
# the item's streaming stores before the parallel region's completion is signalled.  Outputs the API
# allocates start on a line (``_alloc``).


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _item_pointer(context, builder, aty, arr, index):
    ary = context.make_array(aty)(context, builder, arr)
    return cgutils.get_item_pointer2(
        context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
        strides=cgutils.unpack_tuple(builder, ary.strides), layout=aty.layout, inds=[index],
        wraparound=False, boundscheck=False,
    )


def _stream_store(builder, value, pointer):
    vector = value.type
    store = builder.store(value, builder.bitcast(pointer, vector.as_pointer()), align=LINE_BYTES)
    store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))


def _float_row(array) -> bool:
    return isinstance(array, types.Array) and array.ndim == 1 and isinstance(array.dtype, types.Float)


@intrinsic
def line_head(typingctx, row):
    """Elements of the 1-D array ``row`` before its first ``LINE_BYTES`` boundary (``0 … lanes − 1``), or
    ``-1`` when ``row``'s address is not a multiple of its itemsize (then its lines hold no whole elements)."""
    if not _float_row(row):
        return None

    def codegen(context, builder, signature, args):
        (aty,) = signature.args
        ary = context.make_array(aty)(context, builder, args[0])
        itemsize = context.get_abi_sizeof(context.get_value_type(aty.dtype))
        address = builder.ptrtoint(ary.data, ir.IntType(64))
        line = ir.Constant(ir.IntType(64), LINE_BYTES)
        gap = builder.urem(builder.sub(line, builder.urem(address, line)), line)  # bytes to the boundary
        whole = builder.icmp_unsigned("==", builder.urem(address, ir.Constant(ir.IntType(64), itemsize)),
                                      ir.Constant(ir.IntType(64), 0))
        elements = builder.udiv(gap, ir.Constant(ir.IntType(64), itemsize))
        return builder.select(whole, elements, ir.Constant(ir.IntType(64), -1))

    return types.int64(row), codegen


@intrinsic
def stream_line(typingctx, dst, j, src, i):
    """``dst[j : j + lanes] = src[i : i + lanes]`` (``lanes = LINE_BYTES / itemsize``) as one non-temporal
    store of a whole line; ``dst[j]`` must start a line (see ``line_head``) and both ranges lie in the arrays."""
    if not (_float_row(dst) and _float_row(src) and dst.dtype == src.dtype):
        return None
    if not (isinstance(j, types.Integer) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        dty, _, sty, _ = signature.args
        element = context.get_value_type(dty.dtype)
        lanes = LINE_BYTES // context.get_abi_sizeof(element)
        vector = ir.VectorType(element, lanes)
        source = builder.bitcast(_item_pointer(context, builder, sty, args[2], args[3]), vector.as_pointer())
        value = builder.load(source, align=context.get_abi_sizeof(element))
        _stream_store(builder, value, _item_pointer(context, builder, dty, args[0], args[1]))
        return context.get_dummy_value()

    return types.void(dst, j, src, i), codegen


@intrinsic
def stream_pair(typingctx, dst, j, a, ia, b, ib):
    """``dst[j + 2 t] = a[ia + t]``, ``dst[j + 2 t + 1] = b[ib + t]`` for ``t < lanes / 2``: two rows
    interleaved into one whole line, one non-temporal store; ``dst[j]`` must start a line."""
    if not (_float_row(dst) and _float_row(a) and _float_row(b) and dst.dtype == a.dtype == b.dtype):
        return None
    if not all(isinstance(v, types.Integer) for v in (j, ia, ib)):
        return None

    def codegen(context, builder, signature, args):
        dty, _, aty, _, bty, _ = signature.args
        element = context.get_value_type(dty.dtype)
        size = context.get_abi_sizeof(element)
        half = LINE_BYTES // size // 2
        vector = ir.VectorType(element, half)
        pa = builder.bitcast(_item_pointer(context, builder, aty, args[2], args[3]), vector.as_pointer())
        pb = builder.bitcast(_item_pointer(context, builder, bty, args[4], args[5]), vector.as_pointer())
        va, vb = builder.load(pa, align=size), builder.load(pb, align=size)
        mask = [v for t in range(half) for v in (t, half + t)]
        value = builder.shuffle_vector(va, vb, ir.Constant(ir.VectorType(ir.IntType(32), 2 * half), mask))
        _stream_store(builder, value, _item_pointer(context, builder, dty, args[0], args[1]))
        return context.get_dummy_value()

    return types.void(dst, j, a, ia, b, ib), codegen


@intrinsic
def copy_even(typingctx, dst, j, src, i, count):
    """``dst[j + t] = src[i + 2 t]`` for ``t < count`` (``count ≤ lanes = LINE_BYTES / itemsize``): every other
    element of ``src[i : i + 2 count − 1]`` by one masked vector load and a shuffle, stored by one masked
    store; nothing outside those ranges is read or written.  (A loop with stride 2 in its index runs element
    by element: LLVM cannot prove that the doubled index does not wrap.)"""
    if not (_float_row(dst) and _float_row(src) and dst.dtype == src.dtype):
        return None
    if not all(isinstance(v, types.Integer) for v in (j, i, count)):
        return None

    def codegen(context, builder, signature, args):
        dty, _, sty, _, cty = signature.args
        element = context.get_value_type(dty.dtype)
        size = context.get_abi_sizeof(element)
        lanes = LINE_BYTES // size
        i32, i1 = ir.IntType(32), ir.IntType(1)
        n = builder.trunc(context.cast(builder, args[4], cty, types.int64), i32)

        def below(width, limit):  # the lanes t < limit, as an <width x i1> mask
            vec = ir.VectorType(i32, width)
            splat = builder.insert_element(ir.Constant(vec, ir.Undefined), limit, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(splat, ir.Constant(vec, ir.Undefined), ir.Constant(vec, [0] * width))
            return builder.icmp_signed("<", ir.Constant(vec, list(range(width))), splat)

        wide, narrow = ir.VectorType(element, 2 * lanes), ir.VectorType(element, lanes)
        source = _item_pointer(context, builder, sty, args[2], args[3])
        target = _item_pointer(context, builder, dty, args[0], args[1])
        suffix = "f32" if size == 4 else "f64"
        load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(wide, [source.type, i32, ir.VectorType(i1, 2 * lanes), wide]),
            f"llvm.masked.load.v{2 * lanes}{suffix}.p0")
        last = builder.sub(builder.add(n, n), ir.Constant(i32, 1))  # the loaded elements: 0 … 2 count − 2
        value = builder.call(load, [source, ir.Constant(i32, size), below(2 * lanes, last),
                                    ir.Constant(wide, ir.Undefined)])
        even = builder.shuffle_vector(value, ir.Constant(wide, ir.Undefined),
                                      ir.Constant(ir.VectorType(i32, lanes), [2 * t for t in range(lanes)]))
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [narrow, target.type, i32, ir.VectorType(i1, lanes)]),
            f"llvm.masked.store.v{lanes}{suffix}.p0")
        builder.call(store, [even, target, ir.Constant(i32, size), below(lanes, n)])
        return context.get_dummy_value()

    return types.void(dst, j, src, i, count), codegen


@intrinsic
def store_fence(typingctx):
    """Order this thread's earlier (non-temporal) stores before its later ones: x86 ``sfence``."""

    def codegen(context, builder, signature, args):
        if _X86:
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence"), [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@numba.njit(cache=True, nogil=True, _nrt=False, inline="always")
def row_or(x, r, zeros):
    """``x[r]``, or ``zeros`` (a row of zeros, as long as a row of ``x``) where ``r`` lies outside ``x``."""
    if 0 <= r < x.shape[0]:
        return x[r]
    return zeros


@numba.njit(cache=True, nogil=True, _nrt=False)
def stencil_item(g, item, channels, chunk):
    """Where work item ``item`` of a generated stencil's call lies: ``(b, c, r0, r1, ja, jb, kA, kB)`` —
    batch and channel, rows ``r0 … r1 − 1`` of blocks, blocks ``ja … jb − 1`` of the last dimension of which
    ``kA … kB − 1`` are interior.  ``g``: ``rt_driver.stencil_geometry``'s vector (``3 D + 9`` entries for
    ``D`` dimensions); ``chunk``: the module's ``STENCIL_CHUNK``."""
    at = 2 * ((g.shape[0] - 9) // 3)  # (after jlo, jhi of every dimension)
    jlo, jhi = g[at - 2], g[at - 1]  # (of the last dimension)
    iA, iB, rows, chunks, block_rows, per_plane = g[at], g[at + 1], g[at + 2], g[at + 3], g[at + 4], g[at + 5]
    bc, k = item // per_plane, item % per_plane
    q, ch = k // chunks, k % chunks
    ja = jlo + ch * chunk
    jb = min(ja + chunk, jhi)
    kA = min(max(ja, iA), jb)  # border ja … kA − 1, interior kA … kB − 1, border kB … jb − 1
    r0 = q * block_rows
    return bc // channels, bc % channels, r0, min(r0 + block_rows, rows), ja, jb, kA, max(kA, min(jb, iB))


@numba.njit(cache=True, nogil=True, _nrt=False)
def stream_ready(yr, start, src, ready, done):
    """Stream the whole 64-byte lines of ``yr[start + i] = src[i]`` that lie in ``i < ready`` and are not among
    the first ``done`` lines of the range (streamed before); return how many lines are streamed now.

    A generated stencil calls it while it computes a long row into its stack buffer, so that the finished
    lines go to memory while the rest is computed; ``stream_row`` then writes the rest of the row."""
    y = yr[start:]
    head = line_head(y)
    if head < 0:  # (the row's address is not a multiple of its itemsize: stream_row writes it all)
        return done
    lanes = LINE_BYTES // y.itemsize
    lines = (ready - head) // lanes if ready > head else 0
    for k in range(done, lines):
        stream_line(y, head + k * lanes, src, head + k * lanes)
    return max(done, lines)


@numba.njit(cache=True, nogil=True, _nrt=False)
def stream_row(yr, start, src, count, done):
    """``yr[start + i] = src[i]`` for ``i < count``: the whole 64-byte lines of that range with non-temporal
    stores (``stream_line``) but the first ``done`` (already streamed by ``stream_ready``), the elements
    before its first line boundary and after its last with ordinary ones.  The generated stencils write a
    streamed row through it from the stack buffer it was computed in."""
    y = yr[start:]
    lines = stream_ready(yr, start, src, count, done)  # every whole line of the range, streamed now
    head = line_head(y)  # (-1: the row's address is not a multiple of its itemsize; nothing was streamed)
    e0 = min(head, count) if head >= 0 else 0  # elements before the streamed lines
    e1 = e0 + lines * (LINE_BYTES // y.itemsize) if head >= 0 else 0  # end of the streamed lines
    for e in range(e0):
        y[e] = src[e]
    for e in range(e1, count):
        y[e] = src[e]


@numba.njit(cache=True, nogil=True, _nrt=False, inline="always")
def _gather_item(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, item):
    """The rows of ``out`` of one (group, input channel in the group) ``item`` (see ``rt_driver.gather_strided``)."""
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
def gather_parallel(n_items, flat, base, scale, stride_g, stride_o, stride_c, cout_g, out):
    for item in prange(n_items):
        _gather_item(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, item)


@numba.njit(cache=True, nogil=True, _nrt=False)
def gather_range(i0, i1, thread, flat, base, scale, stride_g, stride_o, stride_c, cout_g, out):
    """Items ``i0 … i1 − 1`` of the gather (``thread`` unused: the signature of every runtime range)."""
    for item in range(i0, i1):
        _gather_item(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, item)


# --- Numba's disk cache and the files a module's compiled code depends on -------------------------------------


def refresh_stale_caches(namespace: dict, *dependencies: str) -> None:
    """Make Numba's disk cache of a module's functions follow the files their compiled code depends on.

    Numba keys its cache of a function by the stamp of the function's own file only, so a module whose
    compiled code freezes constants or intrinsics of its sibling modules (field indices, tile widths, the
    assembly micro-kernel) would otherwise keep running the old values after only those siblings change.
    Here the stamp of every cached function defined in the module is extended by a digest of
    ``dependencies`` (file names in this package, or absolute paths), by default of the runtime's sources
    (``rt_layout.RUNTIME_SOURCES``, the digest the native objects are keyed by; a test checks that the
    list holds every module the runtime imports): an entry saved under other dependencies is then stale to
    Numba, which compiles the function again and saves it under the new stamp.  (This sets Numba's private
    ``_cache._cache_file._source_stamp``; where a Numba version lacks it, nothing changes.)  Called at the
    end of such modules, before any of their functions is loaded.
    """
    if dependencies:
        import hashlib
        import os

        here = os.path.dirname(os.path.abspath(__file__))
        h = hashlib.sha1()
        for name in dependencies:
            with open(os.path.join(here, name), "rb") as f:
                h.update(f.read())
        digest = h.hexdigest()
    else:
        digest = source_hash()
    module = namespace["__name__"]
    for value in list(namespace.values()):
        if getattr(getattr(value, "py_func", None), "__module__", None) != module:
            continue
        index = getattr(getattr(value, "_cache", None), "_cache_file", None)
        if index is not None and hasattr(index, "_source_stamp"):
            index._source_stamp = (index._source_stamp, digest)


refresh_stale_caches(globals())
