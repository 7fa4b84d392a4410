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

``ctypes`` releases the GIL during a call, so a call's work items run on a pool of Python threads
(:func:`parallel_for`), split the way Numba's ``prange`` splits them: one contiguous range per thread.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import platform
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import SymdeconvError
from .cache import cache_dir

__all__ = ["enabled", "artifact_key", "artifact_path", "write", "load", "NativeFunction", "parallel_for",
           "max_threads", "num_threads", "RUNTIME_SOURCES"]

#: the files whose code (and its callees') the native objects are compiled from: any change makes a new key
RUNTIME_SOURCES = ("rt_layers.py", "rt_wino.py", "runtime.py", "machine.py", "rt_driver.py")

#: helpers of Numba's own C runtime that a loaded object may name but never calls on the native path
_STUBBED_PREFIXES = ("numba_", "NRT_")

_ARRAY_FIELDS = 5  # meminfo, parent, nitems, itemsize, data — then shape and strides


def enabled() -> bool:
    """Whether native objects are written and loaded here: Linux on x86-64 / AArch64, not switched off."""
    if os.environ.get("SYMDECONV_NATIVE", "1") == "0":
        return False
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64", "aarch64")


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


@functools.lru_cache(maxsize=None)
def _source_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in RUNTIME_SOURCES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _target(cpu_env: str, features_env: str) -> tuple[str, str, str]:
    """(triple, CPU name, features) as Numba's JIT reads them: ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``
    when set, else the host's."""
    import llvmlite.binding as llvm

    cpu = cpu_env if cpu_env and cpu_env != "host" else llvm.get_host_cpu_name()
    features = features_env or llvm.get_host_cpu_features().flatten()
    return llvm.get_process_triple(), cpu, features


def artifact_key(entry: str, dtype: str) -> str:
    """The hash that names the object file of ``entry`` for ``dtype`` on this machine and installation."""
    parts = (entry, dtype, _source_hash(), *_versions(), sys.version.split()[0], sys.implementation.cache_tag,
             *_target(os.environ.get("NUMBA_CPU_NAME", ""), os.environ.get("NUMBA_CPU_FEATURES", "")))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def artifact_path(entry: str, dtype: str) -> Path:
    return cache_dir() / "native" / f"{entry}-{dtype}-{artifact_key(entry, dtype)}"


def write(entry: str, dtype: str, obj: bytes, symbol: str, args: list) -> Path:
    """Store an object file and what calling it needs (``args``: ``"i64"`` or ``[ndim, dtype]`` per
    argument); atomic, so a reader never sees half a file."""
    base = artifact_path(entry, dtype)
    base.parent.mkdir(parents=True, exist_ok=True)
    meta = {"symbol": symbol, "args": args, "sha256": hashlib.sha256(obj).hexdigest()}
    for suffix, data in ((".o", obj), (".json", json.dumps(meta).encode())):  # the .json last: it marks "done"
        tmp = base.with_name(f".{base.name}{suffix}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, base.with_suffix(suffix))
    return base


# --- loading -------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_engines: list = []  # the MCJIT engines of loaded objects (kept alive: their code is called)
_loaded: dict[Path, NativeFunction | None] = {}


def load(entry: str, dtype: str, retry: bool = False) -> NativeFunction | None:
    """The native function of ``entry`` for ``dtype``, or ``None`` when there is no usable file (never an
    error: the caller then runs Numba's).  A missing file is remembered; ``retry`` looks again."""
    if not enabled():
        return None
    path = artifact_path(entry, dtype)
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
        address = getattr(process, name, None) if not name.startswith(_STUBBED_PREFIXES) else None
        if address is not None:
            llvm.add_symbol(name, ctypes.cast(address, ctypes.c_void_p).value)
        elif name.startswith(_STUBBED_PREFIXES):
            llvm.add_symbol(name, _trap_address())
        else:  # a symbol nothing here defines: linking would fail (LLVM aborts the process on that)
            return None
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    address = engine.get_function_address(meta["symbol"])
    if not address:
        return None
    _engines.append(engine)
    return NativeFunction(address, meta["args"])


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
    """A runtime function loaded from its object file, called like its Numba dispatcher: ``f(*args)`` with
    NumPy arrays (C-contiguous, of the compiled dtype and rank) and integers."""

    def __init__(self, address: int, args: list):
        self.args = args
        kinds: list = [ctypes.c_void_p, ctypes.c_void_p]  # &ret, &excinfo
        for a in args:
            kinds += [ctypes.c_int64] if a == "i64" else (
                [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
                + [ctypes.c_int64] * (2 * a[0]))
        self.raw = ctypes.CFUNCTYPE(ctypes.c_int32, *kinds)(address)  # (CFUNCTYPE releases the GIL)
        self._dtypes = [None if a == "i64" else np.dtype(a[1]) for a in args]

    def flat(self, values) -> list:
        """The C arguments of ``values`` (without the two leading pointers); refuses what was not compiled for."""
        if len(values) != len(self.args):
            raise SymdeconvError(f"native runtime: {len(values)} arguments, compiled for {len(self.args)}")
        out = []
        for v, a, dt in zip(values, self.args, self._dtypes):
            if dt is None:
                out.append(int(v))
                continue
            if not (isinstance(v, np.ndarray) and v.ndim == a[0] and v.dtype == dt and v.flags.c_contiguous
                    and v.flags.writeable):
                raise SymdeconvError(f"native runtime: an argument is not a writeable C-contiguous {a[0]}-D {dt} "
                                     "array (the compiled signature)")
            out += [None, None, v.size, v.itemsize, v.__array_interface__["data"][0], *v.shape, *v.strides]
        return out

    def call_flat(self, flat: list) -> None:
        ret = ctypes.c_int64(0)
        exc = ctypes.c_void_p(0)
        status = self.raw(ctypes.addressof(ret), ctypes.addressof(exc), *flat)
        if status not in (0, -2):  # Numba's OK and "returned None"
            raise SymdeconvError(f"native runtime: the compiled function failed (status {status})")

    def __call__(self, *values) -> None:
        self.call_flat(self.flat(values))


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


_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:  # a forked child has none of the parent's threads: it starts its own pool
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def parallel_for(fn: NativeFunction, n_items: int, values: tuple) -> None:
    """``fn(i0, i1, thread, *values)`` over items ``0 … n_items − 1``: one contiguous range per thread
    (thread ``t`` uses its own scratch, index ``t``), the calling thread taking the first."""
    global _pool
    threads = max(1, min(num_threads(), n_items))
    flat = fn.flat((0, 0, 0) + tuple(values))[3:]
    bounds = [n_items * t // threads for t in range(threads + 1)]
    if threads == 1:
        fn.call_flat([0, n_items, 0] + flat)
        return
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max_threads() - 1, thread_name_prefix="symdeconv")
    futures = [_pool.submit(fn.call_flat, [bounds[t], bounds[t + 1], t] + flat) for t in range(1, threads)]
    error = None
    try:
        fn.call_flat([bounds[0], bounds[1], 0] + flat)
    except SymdeconvError as err:
        error = err
    for f in futures:
        try:
            f.result()
        except SymdeconvError as err:
            error = error or err
    if error is not None:
        raise error
