"""Write a runtime function's machine code, as Numba compiled it, to the native object cache (:mod:`.native`).

Called by the runtime driver the first time a process needs a runtime function for a dtype that has no
object file yet: Numba compiles the function (or loads it from its own cache), and its object code is
then either held by the code library (compiled here, with ``cache=True``'s object caching) or in
Numba's cache file, from which it was just loaded.  A function that cannot be written (no object code
kept, an unexpected change of Numba's internals) is not: the driver then runs Numba's dispatcher.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import from_dtype, types

from . import native

__all__ = ["build", "in_process"]


def _signature(values) -> tuple | None:
    sig = []
    for v in values:
        if isinstance(v, np.ndarray):
            if not v.flags.c_contiguous:
                return None
            sig.append(types.Array(from_dtype(v.dtype), v.ndim, "C"))
        elif isinstance(v, (int, np.integer)):
            sig.append(types.int64)
        else:
            return None
    return tuple(sig)


def _object_code(dispatcher, sig, cres) -> bytes | None:
    library = cres.library
    try:
        obj = library._get_compiled_object()  # compiled in this process: the library keeps it
        if obj:
            return bytes(obj)
    except (AttributeError, RuntimeError, ValueError):
        pass
    cache = getattr(dispatcher, "_cache", None)  # loaded from Numba's cache: read the entry again
    try:
        data = cache._cache_file.load(cache._index_key(sig, cres.target_context.codegen()))
    except Exception:  # noqa: BLE001 - Numba internals: any failure means "cannot save"
        return None

    def find(o):
        if isinstance(o, tuple) and len(o) == 3 and o[1] == "object" and isinstance(o[2], tuple):
            return o[2][0]
        if isinstance(o, (tuple, list)):
            for e in o:
                found = find(e)
                if found is not None:
                    return found
        return None

    found = find(data)
    return bytes(found) if found is not None else None


def _overload(dispatcher, values):
    """``dispatcher``'s overload for the types of ``values`` (compiled, or loaded from Numba's cache, first),
    with its signature and argument kinds (``"i64"`` / ``[ndim, dtype]``); None when the types are not the
    native runtime's (C-contiguous arrays and integers)."""
    sig = _signature(values)
    if sig is None:
        return None
    cres = dispatcher.overloads.get(sig)
    if cres is None:
        dispatcher.compile(sig)
        cres = dispatcher.overloads.get(sig)
    if cres is None:
        return None
    args = ["i64" if isinstance(t, types.Integer) else [t.ndim, str(np.dtype(t.dtype.name))] for t in sig]
    return sig, cres, args


def build(entry: str, dispatcher, values, dtype: str, head: int) -> bool:
    """Write ``dispatcher``'s overload for the types of ``values`` (compiled, or loaded from Numba's cache,
    first) as the native object of ``entry`` (``head``: see :func:`.native.write`); False when it cannot be."""
    if not native.enabled():
        return False
    found = _overload(dispatcher, values)
    if found is None:
        return False
    sig, cres, args = found
    obj = _object_code(dispatcher, sig, cres)
    if obj is None:
        return False
    try:
        native.write(entry, dtype, obj, cres.fndesc.llvm_func_name, args, head)
    except OSError as err:
        warnings.warn(f"symdeconv: cannot write the native runtime cache ({err})", RuntimeWarning, stacklevel=2)
        return False
    return True


def in_process(dispatcher, values, head: int) -> native.NativeFunction | None:
    """``dispatcher``'s overload for the types of ``values`` (compiled, or loaded from Numba's cache, first)
    as a native function of this process (no object file: a layer module's own function, which the driver
    runs on the native thread pool); None when the types are not the native runtime's."""
    found = _overload(dispatcher, values)
    if found is None:
        return None
    _, cres, args = found
    address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    if not address:
        return None
    return native.from_compiled(address, args, head, keep=cres.library)
