"""The AVX2 micro-kernels of the GEMM-like layer path and of the Winograd path's products, written as x86
assembly (LLVM inline-asm intrinsics).

With 16 vector registers the Numba micro-kernel (``rt_layers._tile_pass``) holds ``CO_BLOCK × 16`` float32
accumulators in 8 ymm registers.  Two FMA pipes of 4-cycle latency need 8 independent chains, so each
load that waits stalls them: ~70 % of the FMA peak.  12 accumulators (``CO_BLOCK`` rows × 3 vectors)
leave slack, but LLVM issues a step's weight broadcasts before its FMAs and then spills accumulators.  The
loop below is written out instead: per input channel and tap, three input vectors are loaded and each of
the ``CO_BLOCK`` weights is broadcast into the one remaining register just before its three FMAs (as
BLIS's AVX2 kernels do).  Measured in ``benchmarks/README.md``.

A tile's three vectors need not be adjacent: vector ``v`` starts at column ``vecs[i + v]``, so the tiles
of a phase run across the rows of a block without padding (a row of 32 outputs is four vectors; tiles of
three adjacent ones would compute 36).  Taps come ``TAP_GROUP`` at a time (one pass over the input
channels for four taps, as the Numba kernel groups them) or one at a time.

``tile_fma(tile, xflat, offs, w, t, co, cin_g, vecs, i, nv, g)`` adds to ``tile[r, v·lanes + e]`` (for
``r < CO_BLOCK``, ``v < nv``, ``e < lanes``, ``lanes`` = 32 bytes / itemsize) the sum over the input
channels ``ci < cin_g`` (at least one) and the taps ``t … t + g − 1`` of ``w[tap, ci, co + r] ·
xflat[ci, offs[tap] + vecs[i + v] + e]``.  ``nv`` (1–3) and ``g`` (1 or ``TAP_GROUP``) are literal
integers; rows of ``xflat`` and ``w`` are contiguous.  It needs x86-64 with AVX2 and FMA and LLVM's
assembly parser (initialised on import): the driver takes this path only there (:func:`.machine.asm_tiles`);
elsewhere the intrinsic compiles to nothing.

``wino_fma(prod, vb, uk, point, t, da, db, cin_g, cw, init, nt, nv)`` is the same loop for the Winograd
path's products (:mod:`.rt_wino`): ``CO_BLOCK × nv`` accumulators (12 for three vectors, where the Numba
kernel's tile has 8, each then taking two dependent multiply-adds per channel: no slack for a late load),
held in registers for the whole call and written once, to rows ``CO_BLOCK · point + r`` of ``prod``:
``prod[CO_BLOCK · point + r, e] = Σ_ci Σ_{q < nt} uk[t + q, ci, cw + r] · vb[ci, point, d_q + e]`` for
``e < nv · lanes``, ``d_0 = da``, ``d_1 = db``, plus what the rows held before when ``init`` is not 0.
``nt`` (1 or 2) and ``nv`` (2 or 3) are literal integers; ``cin_g`` is at least one (the Winograd path takes
layers of ``WINO_MIN_CIN`` input channels per group or more).
"""

from __future__ import annotations

import platform

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .machine import CO_BLOCK, asm_parser

__all__ = ["tile_fma", "tile_buffer", "wino_fma", "TILE_VECTORS", "TAP_GROUP", "VECTOR_BYTES"]

#: bytes of one vector: a ymm register (AVX2; on AVX-512 machines the same code runs, when asked for)
VECTOR_BYTES = 32

#: input vectors per tile: CO_BLOCK × TILE_VECTORS accumulators, TILE_VECTORS loaded inputs and one
#: broadcast weight fill the 16 ymm registers
TILE_VECTORS = 3

#: taps per pass over the input channels (one pointer per tap in a general register)
TAP_GROUP = 4

_REGISTERS = 16
_X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# LLVM turns inline assembly into machine code only with the target's assembly parser (initialised here)
_PARSER = asm_parser()


def _tied(g: int) -> list[str]:
    """The loop's operands it advances (outputs tied to inputs): the tap pointers, the weight pointers (one
    per pair of taps) and the channel count."""
    return [f"x{t}" for t in range(g)] + [f"w{k}" for k in range(-(-g // 2))] + ["count"]


def _operands(g: int) -> dict[str, int]:
    """The operand numbers of the loop: the advanced ones (``_tied``) first, then the strides, the vector
    offsets and the tile."""
    names = _tied(g) + ["wst", "sx", "sw"] + [f"d{v}" for v in range(1, TILE_VECTORS)] + ["tile"]
    return {name: i for i, name in enumerate(names)}


def _text(nv: int, g: int, size: int) -> str:
    """The loop in AT&T syntax: ``nv`` vectors, ``g`` taps per pass, elements of ``size`` bytes."""
    op = {k: f"${v}" for k, v in _operands(g).items()}
    reg = "ymm"
    s = "s" if size == 4 else "d"
    row = TILE_VECTORS * VECTOR_BYTES  # bytes of a tile row
    acc = [(r, v) for r in range(CO_BLOCK) for v in range(nv)]
    lines = [f"vmovup{s} {r * row + v * VECTOR_BYTES}({op['tile']}), %{reg}{i}" for i, (r, v) in enumerate(acc)]
    lines.append("2:")
    inputs, weight = len(acc), _REGISTERS - 1
    for t in range(g):
        wt = f"({op[f'w{t // 2}']})" if t % 2 == 0 else f"({op[f'w{t // 2}']},{op['wst']},1)"  # w + t · stride
        for v in range(nv):
            at = f"({op[f'x{t}']})" if v == 0 else f"({op[f'x{t}']},{op[f'd{v}']},1)"
            lines.append(f"vmovup{s} {at}, %{reg}{inputs + v}")
        for r in range(CO_BLOCK):
            lines.append(f"vbroadcasts{s} {r * size}{wt}, %{reg}{weight}")
            for v in range(nv):
                lines.append(f"vfmadd231p{s} %{reg}{inputs + v}, %{reg}{weight}, %{reg}{r * nv + v}")
    lines += [f"addq {op['sx']}, {op[f'x{t}']}" for t in range(g)]
    lines += [f"addq {op['sw']}, {op[f'w{k}']}" for k in range(-(-g // 2))]
    lines += [f"decq {op['count']}", "jnz 2b"]
    lines += [f"vmovup{s} %{reg}{i}, {r * row + v * VECTOR_BYTES}({op['tile']})" for i, (r, v) in enumerate(acc)]
    assert inputs + nv <= weight  # registers 0 … weight − 1 hold accumulators and inputs
    return "\n".join(lines)


def _constraints(g: int) -> str:
    ops, tied = _operands(g), _tied(g)
    clobbers = [f"~{{ymm{i}}}" for i in range(_REGISTERS)]
    return ",".join(["=r"] * len(tied) + ["r"] * (len(ops) - len(tied)) + [str(ops[k]) for k in tied] + clobbers
                    + ["~{memory}", "~{dirflag}", "~{fpsr}", "~{flags}"])


@intrinsic
def tile_buffer(typingctx, like):
    """A ``(CO_BLOCK, TILE_VECTORS · lanes)`` stack array of ``like``'s float dtype: ``tile_fma``'s tile."""
    if not isinstance(like, types.Array) or not isinstance(like.dtype, types.Float):
        return None
    from .runtime import tile_codegen

    lanes = VECTOR_BYTES // (like.dtype.bitwidth // 8)
    return types.Array(like.dtype, 2, "C")(like), tile_codegen(like.dtype, CO_BLOCK, TILE_VECTORS * lanes)


@intrinsic
def tile_fma(typingctx, tile, xflat, offs, w, t, co, cin_g, vecs, i, nv, g):
    """See the module docstring."""
    if not (isinstance(nv, types.IntegerLiteral) and isinstance(g, types.IntegerLiteral)):
        return None
    n_vec, n_taps = nv.literal_value, g.literal_value
    if not (1 <= n_vec <= TILE_VECTORS and n_taps in (1, TAP_GROUP)):
        return None
    arrays = (tile, xflat, offs, w, vecs)
    if not all(isinstance(a, types.Array) for a in arrays):
        return None
    if (tile.ndim, xflat.ndim, offs.ndim, w.ndim, vecs.ndim) != (2, 2, 1, 3, 1):
        return None
    if not (isinstance(tile.dtype, types.Float) and tile.dtype == xflat.dtype == w.dtype
            and isinstance(offs.dtype, types.Integer) and isinstance(vecs.dtype, types.Integer)):
        return None
    size = tile.dtype.bitwidth // 8
    text, constraints = _text(n_vec, n_taps, size), _constraints(n_taps)
    ops = _operands(n_taps)
    sig = types.none(tile, xflat, offs, w, t, co, cin_g, vecs, i, nv, g)

    def codegen(context, builder, signature, args):
        if not (_X86_64 and _PARSER):  # never called there (the driver checks machine.asm_tiles)
            return context.get_dummy_value()
        i64 = ir.IntType(64)
        const = lambda v: ir.Constant(i64, v)  # noqa: E731
        tile_a, x_a, o_a, w_a, v_a = [context.make_array(signature.args[k])(context, builder, args[k])
                                      for k in (0, 1, 2, 3, 7)]
        tv, cov, cinv, iv = [context.cast(builder, args[k], signature.args[k], types.int64) for k in (4, 5, 6, 8)]

        def item(array, dtype, k):  # array[k] as an int64
            return context.cast(builder, builder.load(builder.gep(array.data, [k])), dtype, types.int64)

        starts = [item(v_a, vecs.dtype, builder.add(iv, const(v))) for v in range(n_vec)]
        xs = cgutils.unpack_tuple(builder, x_a.strides, 2)
        ws = cgutils.unpack_tuple(builder, w_a.strides, 3)
        xdata = builder.ptrtoint(x_a.data, i64)
        value = {}
        for q in range(n_taps):  # tap q's input pointer at vector 0
            off = item(o_a, offs.dtype, builder.add(tv, const(q)))
            value[f"x{q}"] = builder.add(xdata, builder.mul(builder.add(off, starts[0]), const(size)))
        w0 = builder.add(builder.ptrtoint(w_a.data, i64),  # w[t, 0, co]
                         builder.add(builder.mul(tv, ws[0]), builder.mul(cov, const(size))))
        for k in range(-(-n_taps // 2)):  # taps 2k and 2k + 1 from one pointer
            value[f"w{k}"] = builder.add(w0, builder.mul(ws[0], const(2 * k)))
        value.update(count=cinv, wst=ws[0], sx=xs[0], sw=ws[1], tile=builder.ptrtoint(tile_a.data, i64))
        for v in range(1, TILE_VECTORS):  # vector v's byte offset from vector 0 (unused ones: 0)
            value[f"d{v}"] = builder.mul(builder.sub(starts[v], starts[0]), const(size)) if v < n_vec else const(0)
        tied = _tied(n_taps)
        fty = ir.FunctionType(ir.LiteralStructType([i64] * len(tied)), [i64] * len(ops))
        inputs = [value[k] for k in ops if k not in tied] + [value[k] for k in tied]  # (ops: in operand order)
        builder.call(ir.InlineAsm(fty, text, constraints, side_effect=True), inputs)
        return context.get_dummy_value()

    return sig, codegen


def _wino_text(nv: int, nt: int, size: int) -> str:
    """``wino_fma``'s loop in AT&T syntax.  Operands: 0 – 4 the tap pointers, the weight pointers and the channel
    count (advanced), 5 and 6 the channel strides of ``vb`` and ``uk``, then the ``CO_BLOCK`` ``prod`` rows, then
    ``init``.  The count (``cin_g``) is at least 1."""
    s = "s" if size == 4 else "d"
    first_input = CO_BLOCK * nv  # registers: accumulators, then the nv loaded vectors; the last, a broadcast
    weight = _REGISTERS - 1
    acc = [(r, v, r * nv + v) for r in range(CO_BLOCK) for v in range(nv)]
    flag = f"${7 + CO_BLOCK}"
    lines = [f"testq {flag}, {flag}", "jz 1f"]  # init: the rows' sums so far, else zeros
    lines += [f"vmovup{s} {v * VECTOR_BYTES}(${7 + r}), %ymm{a}" for r, v, a in acc]
    lines += ["jmp 3f", "1:"] + [f"vxorps %ymm{a}, %ymm{a}, %ymm{a}" for _, _, a in acc] + ["3:", "2:"]
    for q in range(nt):
        x, w = ("$0", "$2") if q == 0 else ("$1", "$3")
        lines += [f"vmovup{s} {v * VECTOR_BYTES}({x}), %ymm{first_input + v}" for v in range(nv)]
        for r in range(CO_BLOCK):
            lines.append(f"vbroadcasts{s} {r * size}({w}), %ymm{weight}")
            lines += [f"vfmadd231p{s} %ymm{first_input + v}, %ymm{weight}, %ymm{r * nv + v}" for v in range(nv)]
    lines += ["addq $5, $0", "addq $5, $1", "addq $6, $2", "addq $6, $3", "decq $4", "jnz 2b"]
    lines += [f"vmovup{s} %ymm{a}, {v * VECTOR_BYTES}(${7 + r})" for r, v, a in acc]
    assert first_input + nv <= weight
    return "\n".join(lines)


_WINO_CONSTRAINTS = ",".join(["=r"] * 5 + ["r"] * (3 + CO_BLOCK) + [str(k) for k in range(5)]
                             + [f"~{{ymm{i}}}" for i in range(_REGISTERS)] + ["~{memory}", "~{dirflag}", "~{fpsr}", "~{flags}"])


@intrinsic
def wino_fma(typingctx, prod, vb, uk, point, t, da, db, cin_g, cw, init, nt, nv):
    """See the module docstring."""
    if not all(isinstance(a, types.IntegerLiteral) for a in (nt, nv)):
        return None
    n_t, n_v = nt.literal_value, nv.literal_value
    if not (n_t in (1, 2) and n_v in (2, 3)):
        return None
    if not all(isinstance(a, types.Array) for a in (prod, vb, uk)) or (prod.ndim, vb.ndim, uk.ndim) != (2, 3, 3):
        return None
    if not (isinstance(prod.dtype, types.Float) and prod.dtype == vb.dtype == uk.dtype):
        return None
    size = prod.dtype.bitwidth // 8
    text = _wino_text(n_v, n_t, size)
    sig = types.none(prod, vb, uk, point, t, da, db, cin_g, cw, init, nt, nv)

    def codegen(context, builder, signature, args):
        if not (_X86_64 and _PARSER):  # never called there (the driver checks machine.asm_tiles)
            return context.get_dummy_value()
        i64 = ir.IntType(64)
        const = lambda v: ir.Constant(i64, v)  # noqa: E731
        p_a, v_a, u_a = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 1, 2)]
        pv, tv, dav, dbv, cinv, cwv, initv = [context.cast(builder, args[k], signature.args[k], types.int64)
                                              for k in (3, 4, 5, 6, 7, 8, 9)]
        vs = cgutils.unpack_tuple(builder, v_a.strides, 3)
        us = cgutils.unpack_tuple(builder, u_a.strides, 3)
        ps = cgutils.unpack_tuple(builder, p_a.strides, 2)
        row = builder.add(builder.ptrtoint(v_a.data, i64), builder.mul(pv, vs[1]))  # vb[0, point]
        xa = builder.add(row, builder.mul(dav, const(size)))
        xb = builder.add(row, builder.mul(dbv, const(size)))
        wa = builder.add(builder.ptrtoint(u_a.data, i64),  # uk[t, 0, cw]
                         builder.add(builder.mul(tv, us[0]), builder.mul(cwv, const(size))))
        wb = builder.add(wa, us[0])
        p0 = builder.add(builder.ptrtoint(p_a.data, i64), builder.mul(builder.mul(pv, const(CO_BLOCK)), ps[0]))
        rows = [builder.add(p0, builder.mul(const(r), ps[0])) for r in range(CO_BLOCK)]
        fty = ir.FunctionType(ir.LiteralStructType([i64] * 5), [i64] * (8 + CO_BLOCK))
        builder.call(ir.InlineAsm(fty, text, _WINO_CONSTRAINTS, side_effect=True),
                     [vs[0], us[1]] + rows + [initv, xa, xb, wa, wb, cinv])
        return context.get_dummy_value()

    return sig, codegen
