"""Compile emitted CUDA kernels to PTX without a GPU, to catch typing errors the simulator misses.

The CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs kernels as Python, so it accepts code that Numba's
CUDA type inference would reject.  :func:`compile_module_ptx` type-checks and lowers the real kernel
with ``numba.cuda.compile_ptx`` (NVVM from ``numba-cuda[cu13]``; no driver or device needed) for both
float32 and float64.  It must run in a process where the simulator is *off* — the test suite starts
one with ``NUMBA_ENABLE_CUDASIM`` removed from the environment (``python -m symdeconv.verify.ptx``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import SymdeconvError

__all__ = ["signature", "compile_module_ptx", "main"]

CC = (8, 0)


def signature(module, dtype_name: str):
    """The kernel's argument types for ``dtype_name`` ("float32" / "float64"), from the module's constants."""
    from numba import types

    dtype = getattr(types, dtype_name)
    ndim = int(module.NDIM)
    arr = types.Array(dtype, ndim + 2, "C")
    lo = (types.int64,) * ndim
    if hasattr(module, "N_SLOTS"):  # grouped layer kernel: x, y, w, bias, groups, lo...
        return (arr, arr, types.Array(dtype, 3, "C"), types.Array(dtype, 1, "C"), types.int64) + lo
    return (arr, arr, types.Array(dtype, 1, "C")) + lo


#: the kernels an emitted module can hold: ``kernel`` always, ``kernel_simple`` beside a tiled ``kernel``
KERNELS = ("kernel", "kernel_simple")


def compile_module_ptx(path: str | Path, dtypes=("float32", "float64")) -> dict[str, str]:
    """PTX of every kernel of an emitted CUDA module (``kernel``, and ``kernel_simple`` if any), per dtype.

    Keys are ``"<kernel> <dtype>"``.
    """
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise SymdeconvError("compile_module_ptx needs NUMBA_ENABLE_CUDASIM unset (the simulator has no PTX)")
    from numba import cuda

    from ..codegen.cache import load_module

    module = load_module(Path(path))
    out = {}
    for kernel in KERNELS:
        if not hasattr(module, kernel):
            continue
        for name in dtypes:
            ptx, _ = cuda.compile_ptx(getattr(module, kernel).py_func, signature(module, name), cc=CC)
            out[f"{kernel} {name}"] = ptx
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m symdeconv.verify.ptx FILE...``: compile each emitted CUDA module; print one line each."""
    paths = list(sys.argv[1:] if argv is None else argv)
    failed = 0
    for path in paths:
        try:
            ptx = compile_module_ptx(path)
            size = ", ".join(f"{k} {len(v)} chars" for k, v in ptx.items())
            print(f"ok   {path}: PTX {size}")
        except Exception as err:  # noqa: BLE001 - report every failing file, then fail
            failed += 1
            print(f"FAIL {path}: {type(err).__name__}: {err}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
