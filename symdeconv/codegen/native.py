"""The shared runtime's machine code, loaded from the disk cache without Numba.

Numba keeps what it compiled in its own cache, but loading anything from there needs Numba itself:
importing it and initialising its compiler take ~0.5 s of a new process, more than the whole call a
user waits for.  The functions of the CPU layer runtime (:mod:`.rt_layers`, :mod:`.rt_wino`, the weight
gather of :mod:`.runtime`) do not depend on a layer, so their machine code can be kept a second time, as
plain object files: when Numba has compiled (or loaded) one of them, :mod:`.native_build` writes its
object code next to the kernel cache (``<cache dir>/native/``), and a later process loads that file with
llvmlite's MCJIT linker and calls it through ``ctypes`` (~10 ms, Numba never imported).

What is loaded is exactly Numba's compiled function, called with Numba's own calling convention
(``status = f(&ret, &excinfo, *args)``, every array argument flattened into its data model's fields:
``meminfo, parent, nitems, itemsize, data, *shape, *strides``).  The object also holds the function's
Python wrapper, which names helpers that only Numba's start-up gives to LLVM (``numba_gil_ensure``,
``NRT_Free``, …); those are never called on the native path (the wrapper is not used, the runtime's
functions allocate nothing and raise nothing), and are linked to a function that stops the process
with a trap rather than run on.  A non-zero status from a runtime function raises a
:class:`~symdeconv.errors.SymdeconvError`.

A file is used only where it was made: its name holds a hash of the runtime's sources, the Numba,
llvmlite and Python versions, and the CPU name and features Numba compiles for.  Linux ELF objects on
x86-64 and AArch64 only; anywhere else (or with ``SYMDECONV_NATIVE=0``) every call goes through Numba.

Each loaded function is called through a small trampoline that takes one argument, the address of its
flattened arguments kept by a :class:`Prepared` call.  ``ctypes`` releases the GIL during a call, so a
call's work items run on a pool of Python threads (:func:`parallel_for`) that wait for tasks in native
code, split the way Numba's ``prange`` splits them: one contiguous range per thread.

The same trampoline also calls functions Numba compiled in this process (:func:`from_compiled`: a
layer module's own stencil, which has no object file), so that they run on the same thread pool.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import json
import os
import platform
import struct
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np

from ..errors import SymdeconvError
from .cache import cache_dir
from .machine import numba_target
from .rt_layout import RUNTIME_SOURCES, source_hash  # (what the object files are keyed by)

__all__ = ["enabled", "artifact_key", "artifact_path", "write", "load", "from_compiled", "NativeFunction", "Prepared",
           "parallel_for", "max_threads", "num_threads", "source_hash", "RUNTIME_SOURCES"]

#: helpers of Numba's own C runtime that a loaded object may name but never calls on the native path
_STUBBED_PREFIXES = ("numba_", "NRT_")

_ARRAY_FIELDS = 5  # meminfo, parent, nitems, itemsize, data — then shape and strides

#: where a NumPy array object keeps its data pointer (``PyArrayObject_fields.data``, after the object header);
#: checked on an array before anything is loaded (:func:`enabled`)
_DATA_OFFSET = 16


def enabled() -> bool:
    """Whether native objects are written and loaded here: Linux on x86-64 / AArch64 with the array object
    layout the trampolines read, not switched off (``SYMDECONV_NATIVE=0``)."""
    if os.environ.get("SYMDECONV_NATIVE", "1") == "0":
        return False
    return _platform_ok()


@functools.lru_cache(maxsize=None)
def _platform_ok() -> bool:
    if not (sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64", "aarch64")):
        return False
    probe = np.zeros(3)
    return ctypes.c_void_p.from_address(id(probe) + _DATA_OFFSET).value == probe.__array_interface__["data"][0]


@functools.lru_cache(maxsize=None)
def _versions() -> tuple[str, ...]:
    from importlib import metadata

    out = []
    for dist in ("numba", "llvmlite"):
        try:
            out.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            out.append("-")
    return tuple(out)


def artifact_key(entry: str, dtype: str) -> str:
    """The hash that names the object file of ``entry`` for ``dtype`` on this machine and installation."""
    import llvmlite.binding as llvm

    parts = (entry, dtype, source_hash(), *_versions(), sys.version.split()[0], sys.implementation.cache_tag,
             llvm.get_process_triple(),
             *numba_target(os.environ.get("NUMBA_CPU_NAME", ""), os.environ.get("NUMBA_CPU_FEATURES", "")))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def artifact_path(entry: str, dtype: str) -> Path:
    return cache_dir() / "native" / f"{entry}-{dtype}-{artifact_key(entry, dtype)}"


def write(entry: str, dtype: str, obj: bytes, symbol: str, args: list, head: int) -> Path:
    """Store an object file and what calling it needs (``args``: ``"i64"`` or ``[ndim, dtype]`` per
    argument; ``head``: 3 for a range function, whose ``i0, i1, thread`` each thread passes itself, else 0);
    atomic, so a reader never sees half a file."""
    base = artifact_path(entry, dtype)
    base.parent.mkdir(parents=True, exist_ok=True)
    meta = {"symbol": symbol, "args": args, "head": head, "sha256": hashlib.sha256(obj).hexdigest()}
    for suffix, data in ((".o", obj), (".json", json.dumps(meta).encode())):  # the .json last: it marks "done"
        tmp = base.with_name(f".{base.name}{suffix}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, base.with_suffix(suffix))
    return base


# --- loading -------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_engines: list = []  # the MCJIT engines of loaded objects (kept alive: their code is called)
_loaded: dict[Path, NativeFunction | None] = {}
_paths: dict[tuple, Path] = {}


def load(entry: str, dtype: str, retry: bool = False) -> NativeFunction | None:
    """The native function of ``entry`` for ``dtype``, or ``None`` when there is no usable file (never an
    error: the caller then runs Numba's).  A missing file is remembered; ``retry`` looks again."""
    if not enabled():
        return None
    env = (entry, dtype, os.environ.get("SYMDECONV_CACHE_DIR"), os.environ.get("NUMBA_CPU_NAME"),
           os.environ.get("NUMBA_CPU_FEATURES"))
    path = _paths.get(env)
    if path is None:  # (the key hashes the runtime's sources: worked out once per setting, not per call)
        path = _paths[env] = artifact_path(entry, dtype)
    with _lock:
        if path not in _loaded or (retry and _loaded[path] is None):
            _loaded[path] = _load(path)
        return _loaded[path]


def _load(base: Path) -> NativeFunction | None:
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        obj = base.with_suffix(".o").read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(obj).hexdigest() != meta.get("sha256"):
        return None
    undefined = _elf_undefined(obj)
    if undefined is None:
        return None
    import llvmlite.binding as llvm

    _init_llvm()
    process = ctypes.CDLL(None)
    for name in undefined:
        if llvm.address_of_symbol(name):
            continue
        if name.startswith(_STUBBED_PREFIXES):
            llvm.add_symbol(name, _trap_address())
            continue
        address = getattr(process, name, None)
        if address is None:  # a symbol nothing here defines: linking would fail (LLVM aborts the process on that)
            return None
        llvm.add_symbol(name, ctypes.cast(address, ctypes.c_void_p).value)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    address = engine.get_function_address(meta["symbol"])
    if not address:
        return None
    args, head = meta["args"], meta.get("head")
    if head not in (0, 3) or args[:head] != ["i64"] * head:
        return None
    engine.add_module(llvm.parse_assembly(_trampoline(address, head, args[head:])))
    engine.finalize_object()
    _engines.append(engine)
    return NativeFunction(engine.get_function_address("trampoline"), args, head)


def from_compiled(address: int, args: list, head: int, keep=None) -> NativeFunction:
    """A function Numba compiled in this process (its entry point, Numba's calling convention, at
    ``address``) called as a loaded one is: through a trampoline, with a :class:`Prepared` call.
    ``keep``: what owns the code at ``address`` (Numba's code library), held as long as the function."""
    import llvmlite.binding as llvm

    _init_llvm()
    with _lock:
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_trampoline(address, head, args[head:])),
                                            _target_machine())
        engine.finalize_object()
        _engines.append(engine)
        return NativeFunction(engine.get_function_address("trampoline"), args, head, keep)


def _flat_count(args: list) -> int:
    return sum(1 if a == "i64" else _ARRAY_FIELDS + 2 * a[0] for a in args)


def _trampoline(address: int, head: int, kinds: list) -> str:
    """IR of ``int32 trampoline(i64 a0, i64 a1, i64 a2, i64 block)``: calls the function at ``address`` with
    Numba's convention — ``(&ret, &excinfo, a0 … a{head − 1}, block[0], block[1], …)``.

    One ``ctypes`` argument (the block's address) instead of ~80: the block of flattened arguments lives
    in a NumPy array that a prepared call (:class:`Prepared`) keeps and updates.  An array's data field
    in the block holds the array *object*'s address, and the trampoline reads the data pointer from the
    object (``PyArrayObject.data``, at ``_DATA_OFFSET``): a call then only stores ``id(array)``.  Every
    argument is passed as a 64-bit integer, which is how the x86-64 and AArch64 calling conventions pass
    pointers too."""
    from llvmlite import ir

    i32, i64 = ir.IntType(32), ir.IntType(64)
    module = ir.Module(name="symdeconv_trampoline")
    fn = ir.Function(module, ir.FunctionType(i32, [i64] * 4), "trampoline")
    b = ir.IRBuilder(fn.append_basic_block())
    block = b.inttoptr(fn.args[3], i64.as_pointer())
    ret = b.alloca(i64, ir.Constant(i32, 4))
    exc = b.alloca(i64, ir.Constant(i32, 4))
    values = [b.ptrtoint(ret, i64), b.ptrtoint(exc, i64)] + list(fn.args[:head])
    at = 0
    for kind in kinds:
        n = 1 if kind == "i64" else _ARRAY_FIELDS + 2 * kind[0]
        for k in range(at, at + n):
            value = b.load(b.gep(block, [ir.Constant(i64, k)]))
            if kind != "i64" and k == at + 4:  # the data field: read it from the array object
                value = b.load(b.inttoptr(b.add(value, ir.Constant(i64, _DATA_OFFSET)), i64.as_pointer()))
            values.append(value)
        at += n
    callee = b.inttoptr(ir.Constant(i64, address), ir.FunctionType(i32, [i64] * len(values)).as_pointer())
    b.ret(b.call(callee, values))
    return str(module)


@functools.lru_cache(maxsize=None)
def _init_llvm() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.lru_cache(maxsize=None)
def _target_machine():
    import llvmlite.binding as llvm

    return llvm.Target.from_default_triple().create_target_machine(codemodel="jitdefault")


@functools.lru_cache(maxsize=None)
def _trap_address() -> int:
    """A function that stops the process (``llvm.trap``): what the never-called Numba helpers link to."""
    import llvmlite.binding as llvm

    ir = ("declare void @llvm.trap()\n"
          "define void @symdeconv_native_trap() {\n  call void @llvm.trap()\n  unreachable\n}\n")
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(ir), _target_machine())
    engine.finalize_object()
    _engines.append(engine)
    return engine.get_function_address("symdeconv_native_trap")


def _elf_undefined(obj: bytes) -> list[str] | None:
    """The undefined symbols an ELF64 little-endian relocatable object names (``None``: not such a file)."""
    if obj[:4] != b"\x7fELF" or len(obj) < 64 or obj[4] != 2 or obj[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for k in range(size // (entsize or 24)):
            name, _, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", obj, offset + k * (entsize or 24))
            if shndx == 0 and name:  # SHN_UNDEF
                start = strtab + name
                names.append(obj[start:obj.index(b"\0", start)].decode())
    return names


class NativeFunction:
    """A runtime function loaded from its object file (or compiled by Numba in this process:
    :func:`from_compiled`), called through a :class:`Prepared` call:
    ``f.prepare(args)`` with the arguments after its head (NumPy arrays, C-contiguous, of the compiled dtype
    and rank, and integers), then ``.run(i0, i1, thread)``.  The flattened arguments are kept between calls
    (the driver keeps one prepared call per call shape): a call then only updates the data addresses of
    arrays that are not the ones it saw last time."""

    def __init__(self, address: int, args: list, head: int, keep=None):
        self.args = args
        self.head = head  # leading integers passed directly (a range function's i0, i1, thread)
        self.address = address  # the trampoline's
        self.raw = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_int64] * 4)(address)  # (releases the GIL)
        self._dtypes = [None if a == "i64" else np.dtype(a[1]) for a in args]
        self.keep = keep  # what owns the code it calls, where that is not a loaded object file

    def prepare(self, values) -> Prepared:
        return Prepared(self, values)


class Prepared:
    """The flattened arguments of one call of a :class:`NativeFunction` (after its ``head`` integers)."""

    def __init__(self, fn: NativeFunction, values):
        self.fn = fn
        kinds = fn.args[fn.head:]
        if len(values) != len(kinds):
            raise SymdeconvError(f"native runtime: {len(values)} arguments, compiled for {len(kinds)}")
        self.block = np.zeros(_flat_count(kinds), dtype=np.int64)
        self.address = self.block.__array_interface__["data"][0]
        self.last: list = [None] * len(values)  # per argument: the integer, or a weak reference to the array
        self.shapes: list = [None] * len(values)
        self.at: list[int] = []  # per argument: its first entry in the block
        self.kinds: list = []  # per argument: None (an integer) or (ndim, dtype)
        at = 0
        for v, a in zip(values, kinds):
            self.at.append(at)
            if a == "i64":
                self.kinds.append(None)
                at += 1
            else:
                self.kinds.append((a[0], np.dtype(a[1])))
                at += _ARRAY_FIELDS + 2 * a[0]
        self.update(values)

    def update(self, values) -> None:
        """Take this call's arguments: integers and arrays that differ from the last call's (an array of the
        last one's shape only changes its data address).  Arrays are remembered by weak reference: a
        prepared call never keeps a caller's array alive."""
        block, last, shapes = self.block, self.last, self.shapes
        for k, v in enumerate(values):
            kind = self.kinds[k]
            if kind is None:
                if v != last[k]:
                    block[self.at[k]] = last[k] = v
                continue
            ref = last[k]
            if ref is not None and ref() is v:
                continue
            ndim, dt = kind
            if not (isinstance(v, np.ndarray) and v.ndim == ndim and v.dtype == dt and v.flags.c_contiguous):
                raise SymdeconvError(f"native runtime: argument {k} is not a C-contiguous {ndim}-D {dt} array "
                                     "(the compiled signature)")
            at = self.at[k]
            if v.shape == shapes[k]:  # (C-contiguous: the same strides too)
                block[at + 4] = id(v)
            else:
                block[at + 2:at + _ARRAY_FIELDS + 2 * ndim] = (
                    v.size, v.itemsize, id(v), *v.shape, *v.strides)
                shapes[k] = v.shape
            last[k] = weakref.ref(v)

    def swap(self, k: int, v: np.ndarray) -> None:
        """Take array ``v`` for argument ``k`` without any check: the caller guarantees that ``v`` has the
        memory layout (itemsize, size, C-contiguous shape) of the array the argument last had, possibly
        under another shape of the same layout (a 4-D array for a 3-D argument).  The call reads the data
        pointer from ``v`` itself.  (A replayed call's new input and output, see ``rt_driver.Replay``.)"""
        self.block[self.at[k] + 4] = id(v)
        self.last[k] = None  # (a later update() compares nothing with it)

    def run(self, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        status = self.fn.raw(a0, a1, a2, self.address)
        if status not in (0, -2):  # Numba's OK and "returned None"
            raise SymdeconvError(f"native runtime: the compiled function failed (status {status})")


# --- threads -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def max_threads() -> int:
    """The most threads a call uses: ``NUMBA_NUM_THREADS`` when set, else the CPUs this process may run
    on (what Numba's own default is)."""
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def num_threads() -> int:
    """Threads for the next call: Numba's setting when Numba is in use (``numba.set_num_threads``), else
    :func:`max_threads`."""
    numba = sys.modules.get("numba")
    if numba is not None and hasattr(numba, "get_num_threads"):
        return min(max_threads(), numba.get_num_threads())
    return max_threads()


# --- the worker pool: Python threads that wait for work in native code ------------------------------------------
#
# Handing a task to a sleeping Python thread costs two futex wake-ups and a GIL hand-over (30–80 µs here,
# measured with a no-op task), as much as a small layer's whole call.  So a worker, once it has run a
# task, waits for the next one in native code for a while (spinning on its control block, the GIL
# released), and the caller posts a task and waits for its end the same way; only a worker idle for longer
# falls back to sleeping on an Event.  Control block (int64): [0] state (0 idle, 1 posted, 2 done),
# [1..3] the task's i0, i1, thread, [4] the trampoline's address, [5] the argument block's, [6] its status.

_IDLE, _POSTED, _DONE, _QUIT = 0, 1, 2, 3

#: spin iterations (one ``pause`` each, ~20–50 ns) a worker waits for a next task before it sleeps, and
#: the caller for a worker's end before it polls with sleeps
SPINS = 1 << 13


def _pool_ir() -> str:
    from llvmlite import ir

    i32, i64 = ir.IntType(32), ir.IntType(64)
    module = ir.Module(name="symdeconv_pool")
    if platform.machine().lower() in ("x86_64", "amd64"):
        pause = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        relax = lambda b: b.call(pause, [])  # noqa: E731
    else:  # AArch64: YIELD
        hint = ir.Function(module, ir.FunctionType(ir.VoidType(), [i32]), "llvm.aarch64.hint")
        relax = lambda b: b.call(hint, [ir.Constant(i32, 1)])  # noqa: E731

    def field(b, ctl, k):
        return b.gep(ctl, [ir.Constant(i64, k)])

    def spin(name, wanted, on_match):
        """``i64 name(i64 ctl, i64 spins)``: wait until ``ctl[0] == wanted``, then ``on_match`` (which gives
        the value to return, or None to wait again); 0 after ``spins`` iterations without a match, _QUIT
        when told to stop."""
        fn = ir.Function(module, ir.FunctionType(i64, [i64, i64]), name)
        entry, loop, match, idle, more, timeout, stop = (
            fn.append_basic_block(n) for n in ("entry", "loop", "match", "idle", "more", "timeout", "stop"))
        b = ir.IRBuilder(entry)
        ctl = b.inttoptr(fn.args[0], i64.as_pointer())
        b.branch(loop)
        b.position_at_end(loop)
        n = b.phi(i64)
        n.add_incoming(ir.Constant(i64, 0), entry)
        state = b.load_atomic(field(b, ctl, 0), "acquire", 8)
        b.cbranch(b.icmp_signed("==", state, ir.Constant(i64, wanted)), match, idle)
        b.position_at_end(match)
        value = on_match(b, ctl)
        if value is None:
            n.add_incoming(ir.Constant(i64, 0), b.block)
            b.branch(loop)
        else:
            b.ret(value)
        b.position_at_end(idle)
        relax(b)
        n1 = b.add(n, ir.Constant(i64, 1))
        b.cbranch(b.icmp_signed("==", state, ir.Constant(i64, _QUIT)), stop, more)
        b.position_at_end(more)
        n.add_incoming(n1, more)
        b.cbranch(b.icmp_signed("<", n1, fn.args[1]), loop, timeout)
        b.position_at_end(timeout)
        b.ret(ir.Constant(i64, 0))
        b.position_at_end(stop)
        b.ret(ir.Constant(i64, _QUIT))

    def run_task(b, ctl):  # the posted task, its status, then "done"
        args = [b.load(field(b, ctl, k)) for k in (1, 2, 3, 5)]
        target = b.inttoptr(b.load(field(b, ctl, 4)), ir.FunctionType(i32, [i64] * 4).as_pointer())
        b.store(b.sext(b.call(target, args), i64), field(b, ctl, 6))
        b.store_atomic(ir.Constant(i64, _DONE), field(b, ctl, 0), "release", 8)
        return None

    spin("sd_work", _POSTED, run_task)  # a worker: runs posted tasks until idle for `spins` iterations
    spin("sd_wait", _DONE, lambda b, ctl: ir.Constant(i64, 1))  # the caller: 1 once the task is done

    # void sd_post(i64 ctl, i64 i0, i64 i1, i64 thread, i64 target, i64 block): the task, then "posted"
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64] * 6), "sd_post")
    b = ir.IRBuilder(fn.append_basic_block())
    ctl = b.inttoptr(fn.args[0], i64.as_pointer())
    for k, a in zip((1, 2, 3, 4, 5), fn.args[1:]):
        b.store(a, field(b, ctl, k))
    b.store_atomic(ir.Constant(i64, _POSTED), field(b, ctl, 0), "release", 8)
    b.ret_void()
    return str(module)


@functools.lru_cache(maxsize=None)
def _pool_functions():
    import llvmlite.binding as llvm

    _init_llvm()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_pool_ir()), _target_machine())
    engine.finalize_object()
    _engines.append(engine)
    c64 = ctypes.c_int64
    work = ctypes.CFUNCTYPE(c64, c64, c64)(engine.get_function_address("sd_work"))
    wait = ctypes.CFUNCTYPE(c64, c64, c64)(engine.get_function_address("sd_wait"))
    post = ctypes.CFUNCTYPE(None, *[c64] * 6)(engine.get_function_address("sd_post"))
    return work, wait, post


class _Worker:
    """One pool thread and its control block.

    The control block is memory that is never freed (``malloc``): a worker may still be spinning on it
    while the interpreter shuts down, after every Python object is gone.  At exit the workers are told
    to stop (``_QUIT``)."""

    def __init__(self, index: int):
        libc = ctypes.CDLL(None)
        libc.calloc.restype = ctypes.c_void_p
        self.address = libc.calloc(8, 8)
        if not self.address:
            raise MemoryError("native runtime: no memory for a worker's control block")
        self.ctl = np.ctypeslib.as_array((ctypes.c_int64 * 8).from_address(self.address))
        self.wake = threading.Event()
        self.sleeping = False
        threading.Thread(target=self._loop, name=f"symdeconv-{index}", daemon=True).start()

    def _loop(self) -> None:
        work = _pool_functions()[0]
        while work(self.address, SPINS) != _QUIT:  # runs tasks until idle for SPINS iterations
            self.sleeping = True
            if self.ctl[0] == _POSTED:  # posted while this thread stopped spinning: run it
                self.sleeping = False
                continue
            self.wake.wait()
            self.wake.clear()
            self.sleeping = False
            if self.ctl[0] == _QUIT:
                return

    def post(self, call: Prepared, i0: int, i1: int, thread: int) -> None:
        _pool_functions()[2](self.address, i0, i1, thread, call.fn.address, call.address)
        if self.sleeping:  # (a set Event the worker no longer needs only makes it spin once more)
            self.sleeping = False
            self.wake.set()

    def result(self) -> tuple[int, BaseException | None]:
        """The posted task's status, once it has ended: waited for even through a ``KeyboardInterrupt``
        (returned, for the caller to raise), since the task is using the call's buffers."""
        wait = _pool_functions()[1]
        interrupted = None
        while not wait(self.address, SPINS):
            try:
                time.sleep(2e-5)
            except BaseException as err:  # noqa: BLE001 - re-raised by the caller once every task ended
                interrupted = interrupted or err
        status = int(self.ctl[6])
        self.ctl[0] = _IDLE
        return status, interrupted

    def stop(self) -> None:
        self.ctl[0] = _QUIT
        self.wake.set()


_workers: list[_Worker] = []
_pool_lock = threading.Lock()


def _forget_pool() -> None:  # a forked child has none of the parent's threads: it starts its own pool
    global _workers, _pool_lock
    _workers = []
    _pool_lock = threading.Lock()


def _stop_workers() -> None:
    for worker in _workers:
        worker.stop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
atexit.register(_stop_workers)


def parallel_for(call: Prepared, n_items: int) -> None:
    """A prepared range function over items ``0 … n_items − 1``: one contiguous range per thread (thread
    ``t`` uses its own scratch, index ``t``), the calling thread taking the first.  While another thread
    of the program uses the pool, the call runs on the calling thread alone."""
    threads = max(1, min(num_threads(), n_items))
    if threads == 1 or not _pool_lock.acquire(blocking=False):
        call.run(0, n_items, 0)
        return
    posted: list[_Worker] = []
    error: BaseException | None = None
    statuses = []
    try:
        while len(_workers) < threads - 1:
            _workers.append(_Worker(len(_workers) + 1))
        bounds = [n_items * t // threads for t in range(threads + 1)]
        for t in range(1, threads):
            _workers[t - 1].post(call, bounds[t], bounds[t + 1], t)
            posted.append(_workers[t - 1])
        call.run(bounds[0], bounds[1], 0)
    except BaseException as err:  # noqa: BLE001 - raised below, once no worker uses the call's buffers
        error = err
    finally:
        for worker in posted:
            status, interrupted = worker.result()
            statuses.append(status)
            error = error or interrupted
        _pool_lock.release()
    if error is not None:
        raise error
    bad = [v for v in statuses if v not in (0, -2)]
    if bad:
        raise SymdeconvError(f"native runtime: the compiled function failed (status {bad[0]})")
