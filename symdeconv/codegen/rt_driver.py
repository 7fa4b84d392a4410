"""The Python side of the CPU layer runtime: a call's geometry and scratch, and which compiled code runs it.

Generated layer modules call :func:`run_layer` (the GEMM-like kernel of :mod:`.rt_layers`) and
:func:`run_wino` (the Winograd path of :mod:`.rt_wino`); the API gathers weights with
:func:`gather_strided`.  Each works out, once per shape, the geometry vector and scratch buffers of a
call (plain Python and NumPy), then runs one of the runtime's compiled functions over the call's work
items: on the calling thread when the call is small (``SERIAL_MAX_MACS``), else on every thread.
:func:`run_stencil` does the same with a layer module's own range function (a one-channel layer's
stencil, compiled for that layer once the module has had ``runtime_calls()`` calls), called natively
as Numba compiled it in this process (:func:`.native.from_compiled`).

The compiled code is Numba's, run one of two ways:

* **native** (Linux on x86-64 / AArch64, :mod:`.native`): the range function's object file, loaded
  with llvmlite and called through ``ctypes``, on a pool of Python threads for a parallel call.  A
  process that only runs layers whose runtime functions have object files never imports Numba.  The
  first process on a machine that needs a function without one has Numba compile it (or load it from
  Numba's cache) and writes it (:mod:`.native_build`);
* **Numba**'s dispatchers otherwise (other systems, ``SYMDECONV_NATIVE=0``, or when no object file could
  be written): the range function for a serial call, the ``prange`` driver for a parallel one.

This module imports neither Numba nor SymPy.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings
import weakref

import numpy as np

from ..errors import SymdeconvError
from . import lazyjit, native  # (lazyjit imports Numba only when its functions run)
from ._env import whole_number
from ._alloc import LINE_BYTES
from .machine import CO_BLOCK, asm_tiles, l2_bytes, stream_min_bytes
from .rt_layout import (CO_GROUP, G_FIELDS, G_SIZE, MAX_NDIM, OUTS, POINTS, TILE_F32, TILE_F64, VEC,
                        W_A0, W_ASM, W_AT_SHIFT1, W_AT_XSHIFT, W_BLOCK_ROWS, W_GROUPS, W_JLO0, W_LO0, W_LX, W_NX, W_P0,
                        W_P1, W_PL, W_ROWS, W_STREAM, W_T1, WG_SIZE, WINO_COLS, WINO_M)

__all__ = ["run_layer", "Replay", "run_stencil", "stencil_geometry", "own_kernels_at_once", "own_kernel_due", "runtime_calls",
           "RUNTIME_CALLS", "run_wino", "gather_strided", "acc_stride", "block_rows",
           "SERIAL_MAX_MACS", "ROW_TARGET", "NARROW_SCALE", "GATHER_PARALLEL_MIN"]

#: outputs (per channel and phase) a block of work aims at: the accumulators of all phases stay in L2
ROW_TARGET = 2048

#: blocks of groups with one input channel aim at this many times ROW_TARGET outputs per phase
NARROW_SCALE = 8

#: multiply-adds below which a call runs on the calling thread (waking the pool costs tens of µs)
SERIAL_MAX_MACS = 1 << 18

#: below this many gathered entries the weight gather runs on one thread: waking the pool's threads costs
#: more than a small layer's gather (a 2 MB weight of a 256→128-channel layer takes ~0.1 ms on 2 cores)
GATHER_PARALLEL_MIN = 1 << 18


# ==================================================================================================
# Which compiled function runs: native object or Numba
# ==================================================================================================

# entry → (module, range function, prange driver or None): every range function has the signature
# (i0, i1, thread, *arrays and integers); the prange driver (n_items, *the same)
_ENTRIES = {
    "layers": ("rt_layers", "run_range", "run_parallel"),
    "wino": ("rt_wino", "run_range", "run_parallel"),
    "gather": ("runtime", "gather_range", "gather_parallel"),
    "wino_weights": ("rt_wino", "weight_transform", None),
}

#: run the native objects where this machine has them (False: always Numba's compiled functions; the
#: tests switch it off to check Numba's drivers, and ``precompile`` to fill Numba's cache)
NATIVE = True

_tried: set[tuple[str, str]] = set()  # (entry, dtype) whose native object this process tried to write
_build_lock = threading.Lock()


def _numba_function(entry: str, parallel: bool):
    module, range_name, parallel_name = _ENTRIES[entry]
    mod = importlib.import_module(f"{__package__}.{module}")
    return getattr(mod, parallel_name if parallel else range_name)


def _native(entry: str, dtype: np.dtype, args: tuple, head: int) -> native.NativeFunction | None:
    """The native function of ``entry``: loaded from its object file; else, once per process, compiled
    by Numba (or loaded from Numba's cache), written as an object file and loaded from there."""
    if not (NATIVE and native.enabled()):
        return None
    fn = native.load(entry, dtype.name)
    if fn is not None or (entry, dtype.name) in _tried:
        return fn
    with _build_lock:
        if (entry, dtype.name) not in _tried:
            _tried.add((entry, dtype.name))
            try:
                from .native_build import build

                if build(entry, _numba_function(entry, False), args, dtype.name, head):
                    fn = native.load(entry, dtype.name, retry=True)
            except Exception as err:  # noqa: BLE001 - a cache that cannot be written never fails a call
                warnings.warn(f"symdeconv: the native runtime was not built ({err!r}); running Numba's",
                              RuntimeWarning, stacklevel=3)
    return fn


def _run(entry: str, dtype: np.dtype, n_items: int | None, serial: bool, values: tuple,
         calls: dict | None = None) -> native.Prepared | None:
    """Items ``0 … n_items − 1`` of the range function ``entry`` over ``values``, on this thread
    (``serial``) or on every thread; ``n_items`` None: ``entry`` is a plain function of ``values``.
    ``calls`` (kept with a call shape's scratch) holds its prepared native calls between calls.
    Returns the prepared native call that ran, or None (Numba ran it)."""
    head = () if n_items is None else (0, n_items, 0)
    call = calls.get((entry, dtype.char)) if calls is not None and NATIVE else None  # (an earlier call's)
    if call is not None:
        call.update(values)
    else:
        fn = _native(entry, dtype, head + tuple(values), len(head))
        if fn is not None:
            call = fn.prepare(values)
            if calls is not None:
                calls[(entry, dtype.char)] = call
    if call is not None:
        if n_items is None or serial or n_items == 1:
            call.run(*head)
        else:
            native.parallel_for(call, n_items)
    elif n_items is None or serial or n_items == 1:
        _numba_function(entry, False)(*head, *values)
    else:
        _numba_function(entry, True)(n_items, *values)
    return call


def acc_stride(n: int, itemsize: int, rows: int) -> int:
    """Distance (elements) between accumulator rows: ``n`` rounded up to 16, then stepped past 4 KiB aliasing.

    Rows a multiple of 4 KiB apart make the CPU see false dependencies between the stores to one
    accumulator row and the loads of another ("4K aliasing"), which slowed the micro-kernel by ~30 %.
    """
    first = ((n + 15) // 16) * 16
    for stride in range(first, first + 256 * 16, 16):
        if all(256 <= (k * stride * itemsize) % 4096 <= 4096 - 256 for k in range(1, rows)):
            return stride
    return first


# ==================================================================================================
# The weight gather
# ==================================================================================================


def gather_strided(flat, base, scale, stride_g, stride_o, stride_c, cout_g, out, calls=None):
    """``out[s, c, g·cout_g + o] = scale[s] · flat[base[s] + g·stride_g + o·stride_o + c·stride_c]``.

    The kernels' weight array ``w[slot, c_in_in_group, c_out]`` gathered from a framework weight
    (flattened) whose entry feeding slot ``s`` of channel pair ``(c' = g·cout_g + o, c)`` is at that
    affine index — true for every layer of the three conventions (see ``LayerBinding``).  One pass over
    (group, input channel), in parallel from ``GATHER_PARALLEL_MIN`` entries on; each destination row
    ``out[s, c, g·cout_g : (g + 1)·cout_g]`` is written contiguously, and in PyTorch's
    transposed-convolution layout ``(C_in, C_out/G, *k)`` the source of one input channel is a
    contiguous block that stays in L1 while its slots are copied out (one strided NumPy copy per slot
    took ~15 times as long).  ``calls``: a dict kept between gathers (see ``_run``).
    """
    n_items = out.shape[2] // cout_g * out.shape[1]
    _run("gather", out.dtype, n_items, out.size < GATHER_PARALLEL_MIN,
         (flat, base, scale, stride_g, stride_o, stride_c, cout_g, out), calls)


# ==================================================================================================
# The GEMM-like kernel: a call's geometry from the plan's tables and the shapes (cached per shape)
# ==================================================================================================


def _geometry(t, x_shape, y_shape, groups, lo, tile, itemsize):
    """Everything a call needs that depends only on the shapes: the geometry vector and the tables."""
    D = t.ndim
    n, out = x_shape[2:], y_shape[2:]
    cin, cout = x_shape[1], y_shape[1]
    jlo, jhi, L = t.blocks(out, lo)
    J = [jhi[d] - jlo[d] for d in range(D)]
    S = [1] * D
    for d in range(D - 2, -1, -1):
        S[d] = S[d + 1] * L[d + 1]
    ns, os_ = [1] * D, [1] * D
    for d in range(D - 2, -1, -1):
        ns[d] = ns[d + 1] * n[d + 1]
        os_[d] = os_[d + 1] * out[d + 1]
    rows = J[0]
    # one input channel per group: little work per output, so larger blocks (fewer, cheaper work items)
    target = ROW_TARGET * (NARROW_SCALE if cin // groups == 1 else 1)
    block_rows = max(1, target // S[0])
    # every block of output channels reads the block's input planes again: they stay in half of L2
    block_rows = min(block_rows, max(1, l2_bytes() // 2 // ((cin // groups) * t.n_planes * S[0] * itemsize)))
    block_rows = max(1, -(-rows // max(1, -(-rows // block_rows))))  # equal blocks
    row_blocks = -(-rows // block_rows)
    half = max(1, tile // 2)  # the kernel computes whole tiles, then at most two half tiles (work_item's M)
    m_max = -(-(block_rows * S[0]) // half) * half
    plane_reach = sum(t.e_span[d] * S[d] for d in range(D))
    band = m_max + plane_reach
    cin_g, cout_g = cin // groups, cout // groups
    wide = cout_g // CO_BLOCK  # whole blocks of output channels, CO_GROUP per work item
    per_group = -(-wide // CO_GROUP) + (1 if cout_g % CO_BLOCK else 0)
    g = np.zeros(G_SIZE, dtype=np.int64)
    scal = dict(ndim=D, n_planes=t.n_planes, n_phases=t.n_phases, PL=t.P[-1], rows=rows, block_rows=block_rows,
                row_blocks=row_blocks, band=band, cin_g=cin_g, cout_g=cout_g, groups=groups, wide=wide,
                per_group=per_group, Lrow=L[-1], S0=S[0], tile=tile, co_group=CO_GROUP,
                asm=int(asm_tiles()))
    for k, v in scal.items():
        g[G_FIELDS[k]] = v
    vecs = dict(P=t.P, Q=t.Q, L=L, S=S, J=J, jlo=jlo, xa=[jlo[d] + t.e_min[d] for d in range(D)], n=n, ns=ns,
                out=out, os=os_, lo=lo)
    for k, v in vecs.items():
        g[G_FIELDS[k]:G_FIELDS[k] + D] = v
    phase_taps, slot_plane, slot_shift = t.tables()
    offs = slot_plane * band + (slot_shift * np.asarray(S, dtype=np.int64)).sum(axis=1)
    Pl, jl, ll, ol = t.P[-1], jlo[-1], lo[-1], out[-1]
    pl_first = np.array([max(0, -((pl - ll) // Pl) - jl) for pl in range(Pl)], dtype=np.int64)
    pl_stop = np.array([min(J[-1], -((pl - ll - ol) // Pl) - jl) for pl in range(Pl)], dtype=np.int64)
    n_items = x_shape[0] * row_blocks * groups * per_group
    macs = x_shape[0] * cout * cin_g * int(np.prod(J)) * t.n_slots
    tables = [phase_taps, offs.astype(np.int64), pl_first, pl_stop]
    at = G_SIZE
    for name, table in zip(("at_taps", "at_offs", "at_first", "at_stop"), tables):
        g[G_FIELDS[name]] = at
        at += len(table)
    g = np.concatenate([g] + tables)
    return g, n_items, macs, (cin_g, t.n_planes * band), m_max


def run_layer(plan, x, y, w, bias, groups, lo, work=None):
    """``y`` = the layer of ``plan`` (a :class:`~symdeconv.codegen.layer_plan.LayerPlan`) on ``x``.

    ``x (N, C_in, *n)`` and ``y (N, C_out, *out)`` are C-contiguous, channels first; ``w[slot, ci, co]``
    the gathered weight, ``bias (C_out,)``; ``lo`` the window's first operator output position per
    dimension.  ``work`` (a dict, kept by the caller between calls) holds the geometry and scratch
    buffers of the last shapes seen.

    Returns a :class:`Replay` of the call when the native runtime ran it (else None): the same call on
    other arrays of the same shapes and dtype, without this function's bookkeeping.
    """
    t = plan
    if x.shape[0] == 0:  # an empty batch: nothing to write
        return
    if t.ndim > MAX_NDIM:
        raise SymdeconvError(f"layer: {t.ndim} spatial dimensions; the CPU runtime takes at most {MAX_NDIM}")
    key = (x.shape, x.dtype.char, tuple(lo), y.shape, groups)
    state = work.get(key) if work is not None else None
    if state is None:
        threads = native.max_threads()
        # the tile width the compiled micro-kernel was built with (fixed at import, as Numba froze it)
        tile = TILE_F32 if x.itemsize == 4 else TILE_F64
        g, n_items, macs, xb_shape, m_max = _geometry(t, x.shape, y.shape, groups, lo, tile, x.itemsize)
        serial = macs < SERIAL_MAX_MACS or n_items == 1
        nbuf = 1 if serial else threads
        xb = np.empty((nbuf,) + xb_shape, dtype=x.dtype)
        rows = CO_BLOCK * CO_GROUP
        acc = np.empty((nbuf, t.n_phases, rows, acc_stride(m_max, x.itemsize, rows)), dtype=x.dtype)
        tags = np.empty(nbuf, dtype=np.int64)
        state = (serial, n_items, g, xb, acc, tags, {})
        if work is not None:
            work.clear()
            work[key] = state
    serial, n_items, g, xb, acc, tags, calls = state
    tags.fill(-1)  # no thread's buffer holds a block of this call's input yet
    # (1-D arrays are passed as they are: a view made every call is a new object for the prepared call)
    x3 = x if x.ndim == 3 else x.reshape(x.shape[0], x.shape[1], -1)
    y3 = y if y.ndim == 3 else y.reshape(y.shape[0], y.shape[1], -1)
    call = _run("layers", x.dtype, n_items, serial, (x3, xb, acc, tags, y3, w, bias, g), calls)
    return None if call is None else Replay(call, n_items, serial, xb, acc, tags, g)


class Replay:
    """A native call of :func:`run_layer` for given shapes, dtype, window and groups, run again on new
    arrays of those shapes: ``replay(x, y, w, bias)`` → True, or False (and nothing done) when the native
    runtime has been switched off since.  The caller guarantees the shapes (the API keys it by its recipe).
    For a small layer the bookkeeping of a call costs as much as the layer: this skips the path choice and
    the geometry lookup."""

    # xb, acc and g are held here because the prepared call holds its arrays by weak reference only
    __slots__ = ("call", "n_items", "serial", "xb", "acc", "tags", "g")

    def __init__(self, call, n_items, serial, xb, acc, tags, g):
        self.call, self.n_items, self.serial = call, n_items, serial or n_items == 1
        self.xb, self.acc, self.tags, self.g = xb, acc, tags, g

    def __call__(self, x, y, w, bias) -> bool:
        if not NATIVE:
            return False
        self.tags.fill(-1)
        call = self.call
        # x, y: the shapes the call was prepared with, unviewed (the native call reads their data pointers);
        # w, bias: the API's arrays of the recipe's shapes
        call.swap(0, x)
        call.swap(4, y)
        call.swap(5, w)
        call.swap(6, bias)
        if self.serial:
            call.run(0, self.n_items, 0)
        else:
            native.parallel_for(call, self.n_items)
        return True


#: calls per dtype and process that run on the shared runtime before a kernel compiled for one structure is
#: used: a layer module's stencil (one channel per group), an ``sd.signal`` filter structure's chain kernel
#: (``SYMDECONV_RUNTIME_CALLS`` overrides it; 0: that kernel from the first call).  Such a kernel takes 2–5 s
#: per dtype to compile, against nothing for a call on the runtime, and a layer or filter called once or
#: twice — a test, a conversion check, a notebook cell — never repays that; one called again and again does
#: from its third call on (the stencil is ~2× faster than the runtime on large one-channel layers:
#: benchmarks/README.md).
RUNTIME_CALLS = 2

_stencil_counts: dict[tuple[int, str], int] = {}  # (id(plan), dtype char) → calls on the runtime; -1: stencil
_at_once = 0  # > 0 inside ``own_kernels_at_once()`` (process-wide: verify's threads all check own kernels)
_at_once_lock = threading.Lock()


def runtime_calls() -> int:
    """Calls per kernel and dtype that run on the shared runtime first (see ``RUNTIME_CALLS``)."""
    if _at_once:
        return 0
    return whole_number("SYMDECONV_RUNTIME_CALLS", RUNTIME_CALLS, "calls",
                        "calls of a layer stencil's or a signal filter's structure that run on the shared runtime "
                        "before its own kernel is compiled; 0: at once")


@contextlib.contextmanager
def own_kernels_at_once():
    """Within the block, stencils and chain kernels run from their first call (``symdeconv verify``: the path
    it checks is the module's own)."""
    global _at_once
    with _at_once_lock:
        _at_once += 1
    try:
        yield
    finally:
        with _at_once_lock:
            _at_once -= 1


def own_kernel_due(counts: dict, key) -> bool:
    """Does this call (``key`` in ``counts``: a kernel and dtype) run the kernel compiled for its structure?
    Counts the call when it does not (it then runs on the shared runtime); once due, always."""
    n = counts.get(key, 0)
    if n < 0:
        return True
    if _at_once or n >= runtime_calls():
        counts[key] = -1
        return True
    counts[key] = n + 1
    return False


# a module's stencil dispatcher → {its arguments' (dtype, ndim)s: its native function, or None}; weak: a
# dropped module takes its entries with it, and a dispatcher is its own key (no id to be reused)
_stencil_fns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_stencil_plans: dict[int, object] = {}  # id(plan) → plan: the call counts' keys name one plan each
_thread_pool = None  # Python threads for the stencils' work items where no native function runs them
_thread_pool_lock = threading.Lock()


def stencil_geometry(plan, x_shape, y_shape, itemsize: int, lo, split) -> tuple[np.ndarray, int, int]:
    """The work of a stencil call of these shapes: the geometry vector ``g`` its range function reads, the
    number of work items, and the length of the row of zeros that stands for input rows outside x.

    ``split``: the module's ``(STENCIL_CHUNK, STENCIL_TARGET, STREAM_MIN_ROW)``.  Blocks ``j`` of dimension
    ``d`` whose outputs ``P j + p − lo`` meet ``[0, out)`` are ``jlo ≤ j < jhi``; the last dimension's
    interior blocks ``iA ≤ j < iB`` have every phase's output inside the window and every tap inside x;
    a work item is (batch, channel, a block of rows of blocks of about ``STENCIL_TARGET`` outputs, a chunk
    of ``STENCIL_CHUNK`` blocks of the last dimension).  ``g`` = (jlo, jhi per dimension, iA, iB, rows,
    chunks, block_rows, per_plane, lo per dimension, line_rows, long_rows, stream); its last entry is set
    per call (streamed rows depend on the output's address)."""
    chunk, target, min_row = split
    P, Q = plan.P, plan.Q
    D = len(P)
    last = D - 1
    offs = [off[last] for ph in plan.phases for off in ph.offsets]
    o_min, o_max = min(offs, default=0), max(offs, default=0)
    n, out = x_shape[2:], y_shape[2:]
    jlo = [-((P[d] - 1 - lo[d]) // P[d]) for d in range(D)]
    jhi = [-((-lo[d] - out[d]) // P[d]) for d in range(D)]
    iA = max(-((-lo[last]) // P[last]), -(o_min // Q[last]))
    iB = max(iA, min(-((P[last] - 1 - lo[last] - out[last]) // P[last]), (n[last] - 1 - o_max) // Q[last] + 1))
    rows = 1
    for d in range(last):
        rows *= jhi[d] - jlo[d]
    span = jhi[last] - jlo[last]
    chunks = -(-span // chunk)
    block_rows = max(1, target // max(1, min(span, chunk) * int(np.prod(P))))
    per_plane = -(-rows // block_rows) * chunks
    g = [v for d in range(D) for v in (jlo[d], jhi[d])] + [iA, iB, rows, chunks, block_rows, per_plane, *lo]
    g += [int(out[last] * itemsize % LINE_BYTES == 0), int(out[last] >= min_row), 0]
    return np.array(g, dtype=np.int64), y_shape[0] * y_shape[1] * per_plane, (0 if D == 1 else n[last])


def run_stencil(plan, kernel, split, x, y, w, bias, groups, lo, work=None):
    """A call with one input and one output channel per group: the module's stencil once the module has had
    ``runtime_calls()`` calls of this dtype in this process, :func:`run_layer` (the shared runtime, nothing
    compiled for the layer) before.

    The stencil is a serial range function ``kernel(i0, i1, thread, x, y, w, bias, zrow, g)`` over the
    call's work items (:func:`stencil_geometry` gives ``g``, their count and the zero row's length, once
    per shape; ``split``: the module's work-split constants): run on the calling thread when the call has
    fewer than ``SERIAL_MAX_MACS`` multiply-adds, else on the runtime's native thread pool (its
    Numba-compiled code called through :mod:`.native`, as :func:`run_layer`'s) or, without it, on Python
    threads (the function releases the GIL).  No ``prange``: Numba's parallel lowering doubled the stencil's compile
    time.  Rows are streamed when the output has ``stream_min_bytes()`` bytes or more (an argument read
    per call, so that setting it compiles nothing again).  Returns None: a counted call keeps no replay,
    so that the next call is counted too."""
    _stencil_plans.setdefault(id(plan), plan)
    if not own_kernel_due(_stencil_counts, (id(plan), x.dtype.char)):
        run_layer(plan, x, y, w, bias, groups, lo, work)
        return None
    if x.shape[0] == 0:  # an empty batch: nothing to write
        return None
    key = ("stencil", x.shape, x.dtype.char, y.shape, tuple(lo), w.dtype.char, bias.dtype.char)
    state = work.get(key) if work is not None else None
    if state is None:
        g, n_items, zlen = stencil_geometry(plan, x.shape, y.shape, x.itemsize, tuple(lo), split)
        # (+ the prepared native call, the kernel and NATIVE it was made for, and the native function)
        state = [g, n_items, np.zeros(zlen, dtype=x.dtype), None, None, None, None]
        if work is not None:
            work.clear()
            work[key] = state
    g, n_items, zrow = state[0], state[1], state[2]
    aligned = y.__array_interface__["data"][0] % LINE_BYTES == 0
    g[-1] = int(y.nbytes >= stream_min_bytes() and ((aligned and g[-3] != 0) or g[-2] != 0))
    values = (x, y, w, bias, zrow, g)
    serial = y.size * plan.n_slots < SERIAL_MAX_MACS * plan.n_phases or n_items == 1
    if isinstance(kernel, lazyjit.LazyFunction):  # (its module's first call: the global is rebound after it)
        kernel = kernel.dispatcher()
    if state[4] is not kernel or state[5] is not NATIVE:
        state[3:] = None, kernel, NATIVE, _stencil_native(kernel, values)
    fn = state[6]
    call = state[3]
    if fn is not None:
        try:
            if call is None:
                call = state[3] = fn.prepare(values)
            else:
                call.update(values)
        except SymdeconvError:  # (arrays not of the compiled layout: a direct caller's; Numba takes them)
            fn = None
    if fn is not None:
        if serial:
            call.run(0, n_items, 0)
        else:
            native.parallel_for(call, n_items)
    elif serial:
        kernel(0, n_items, 0, *values)
    else:
        _on_threads(kernel, n_items, values)
    return None


def _stencil_native(dispatcher, values) -> native.NativeFunction | None:
    """The native function of a module's stencil range function (its Numba ``dispatcher``) for ``values``'
    types: Numba's compiled code (compiled now, or loaded from its cache) called through
    :mod:`.native`'s trampoline; None where the native runtime is off or cannot take the arguments."""
    if not (NATIVE and native.enabled() and hasattr(dispatcher, "overloads")):  # (a Numba dispatcher)
        return None
    arrays = [v for v in values if isinstance(v, np.ndarray)]
    if not all(v.flags.c_contiguous for v in arrays):  # (the trampoline passes C-contiguous arrays only)
        return None
    signature = tuple((v.dtype.char, v.ndim) for v in arrays)
    fns = _stencil_fns.setdefault(dispatcher, {})
    if signature not in fns:
        fn = None
        try:
            from .native_build import in_process

            fn = in_process(dispatcher, (0, 0, 0) + tuple(values), 3)
        except Exception as err:  # noqa: BLE001 - Numba internals: the call then runs Numba's dispatcher
            warnings.warn(f"symdeconv: a stencil runs without the native thread pool ({err!r})",
                          RuntimeWarning, stacklevel=3)
        fns[signature] = fn
    return fns[signature]


def _on_threads(kernel, n_items: int, values: tuple) -> None:
    """Items ``0 … n_items − 1`` of a range function that releases the GIL, one contiguous range per thread
    (Python threads; the calling thread takes the first).  Returns once every range has finished, also
    when one raised: then raises the calling thread's error, else the lowest-numbered thread's (an
    interrupt while waiting is raised once the others are done)."""
    import concurrent.futures

    global _thread_pool
    threads = max(1, min(native.num_threads(), n_items))
    if threads == 1:
        kernel(0, n_items, 0, *values)
        return
    with _thread_pool_lock:
        if _thread_pool is None:
            _thread_pool = concurrent.futures.ThreadPoolExecutor(native.max_threads())
        pool = _thread_pool
    bounds = [n_items * t // threads for t in range(threads + 1)]
    futures = []
    error = interrupt = None
    try:
        for t in range(1, threads):
            futures.append(pool.submit(kernel, bounds[t], bounds[t + 1], t, *values))
        kernel(bounds[0], bounds[1], 0, *values)
    except Exception as err:  # noqa: BLE001 - raised below, once the other threads are done with y
        error = err
    except BaseException as err:  # noqa: BLE001 - (KeyboardInterrupt, SystemExit): the same
        interrupt = err
    while True:  # (the other threads write y: wait for them, also when interrupted)
        try:
            concurrent.futures.wait(futures)
            break
        except BaseException as err:  # noqa: BLE001
            interrupt = interrupt or err
    if error is None:
        error = next((f.exception() for f in futures if f.exception() is not None), None)
    if interrupt is not None:
        if error is not None and interrupt.__context__ is None:
            interrupt.__context__ = error
        raise interrupt
    if error is not None:
        raise error


def _forget_thread_pool() -> None:  # (a forked child has none of the parent's threads)
    global _thread_pool, _thread_pool_lock
    _thread_pool = None
    _thread_pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_forget_thread_pool)


# ==================================================================================================
# The Winograd path (calls of fewer than SERIAL_MAX_MACS multiply-adds run on the calling thread, as the
# GEMM-like path's do)
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

    Arguments as :func:`run_layer`.  Along leading dimension ``d`` the windows
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
        threads = 1 if serial else native.max_threads()
        g = np.zeros(WG_SIZE, dtype=np.int64)
        g[[W_GROUPS, W_ROWS, W_BLOCK_ROWS, W_T1, W_LX]] = groups, rows, per, T[1], Lx
        g[W_JLO0:W_JLO0 + 3] = jlo
        g[W_LO0:W_LO0 + 3] = lo
        g[W_A0:W_A0 + 3] = [jlo[d] + plan.e_min[d] for d in range(3)]
        g[[W_STREAM, W_P0, W_P1, W_PL, W_NX, W_ASM]] = 0, plan.P[0], plan.P[1], plan.P[2], tabs.nx, int(asm_tiles())
        g[W_AT_SHIFT1] = WG_SIZE + plan.P[0]
        g[W_AT_XSHIFT] = WG_SIZE + plan.P[0] + plan.P[1]
        g = np.concatenate([g, np.asarray(tabs.shift[0], np.int64), np.asarray(tabs.shift[1], np.int64),
                            tabs.xshift.ravel()])
        state = (
            serial, n_items, g, tabs,
            np.zeros((threads, cin_g, POINTS, M + plan.e_span[2]), dtype=x.dtype),  # a block's V
            np.empty(threads, dtype=np.int64),  # the block each thread's V holds
            np.zeros(x.shape[4], dtype=x.dtype),  # stands for an input row outside x
            np.empty((threads, plan.P[2] * OUTS, CO_BLOCK * S), dtype=y.dtype),  # accumulators
            np.empty((plan.n_phases, POINTS, tabs.nx, cin_g, y.shape[1]), dtype=y.dtype),  # U
            {},  # prepared native calls
        )
        if work is not None:
            work.clear()
            work[key] = state
    serial, n_items, g, tabs, vb, tags, zrow, acc, u, calls = state
    # streaming stores only for one or two last-dimension phases (whole lines of one or two rows)
    g[W_STREAM] = int(y.nbytes >= stream_min_bytes() and plan.P[2] <= 2)
    _run("wino_weights", x.dtype, None, True, (w, u, tabs.slots, tabs.nx), calls)
    tags.fill(-1)  # no thread's buffer holds a block of this call's input yet
    _run("wino", x.dtype, n_items, serial, (x, vb, tags, zrow, y, u, bias, acc, g), calls)
