"""``njit`` for generated CPU modules: Numba's decorator, applied when a function is first called.

A generated layer module carries a stencil kernel for its one-channel-per-group calls; every other call
runs on the shared runtime (:mod:`.rt_driver`), which can run without Numba (:mod:`.native`).  Decorating
the stencil with ``numba.njit`` at import would import Numba (~0.5 s) in every process that loads the
module.  :func:`njit` here records the options instead; the first call of any such function in a module
imports Numba, replaces every lazy function of the module's globals by its Numba dispatcher (so that the
functions find each other as Numba functions when they compile) and binds ``prange`` to Numba's and ``rt``
to :mod:`symdeconv.codegen.runtime` (the runtime functions the generated code calls, as ``rt.name``).
Numba's ``cache=True`` works as before: the functions are still defined in the module's file.
"""

from __future__ import annotations

import functools
import threading

__all__ = ["njit", "prange", "rt", "LazyFunction"]

_lock = threading.RLock()


def prange(*args):
    """Stands for ``numba.prange`` in a generated module until Numba compiles its functions."""
    return range(*args)


class _Runtime:
    """Stands for :mod:`symdeconv.codegen.runtime` (which imports Numba) until Numba compiles the module."""

    def __getattr__(self, name):
        raise AttributeError(f"rt.{name}: the runtime is bound when Numba compiles the generated module")


rt = _Runtime()


class LazyFunction:
    """A Python function and the options Numba compiles it with on its first call."""

    def __init__(self, py_func, options: dict):
        self.py_func = py_func
        self.options = options
        self._dispatcher = None
        functools.update_wrapper(self, py_func)

    def dispatcher(self):
        """The Numba dispatcher of this function (created, with its module's others, on first use)."""
        if self._dispatcher is None:
            with _lock:
                if self._dispatcher is None:
                    _bind_module(self.py_func.__globals__)
        return self._dispatcher

    def __call__(self, *args):
        return self.dispatcher()(*args)


def _bind_module(namespace: dict) -> None:
    import numba

    if namespace.get("prange") is prange:
        namespace["prange"] = numba.prange
    if namespace.get("rt") is rt:
        from . import runtime

        namespace["rt"] = runtime
    lazy = {name: v for name, v in namespace.items() if isinstance(v, LazyFunction)}
    made = {name: numba.njit(**v.options)(v.py_func) for name, v in lazy.items()}
    namespace.update(made)  # (Numba compiles on the first call, once every name is rebound)
    for name, v in lazy.items():  # (then published: another thread's dispatcher() reads them unlocked)
        v._dispatcher = made[name]


def njit(**options):
    """``@njit(cache=True, …)``: as ``numba.njit(**options)``, applied on the first call."""
    return lambda py_func: LazyFunction(py_func, options)
