"""Compile the shared CPU layer runtime into Numba's disk cache ahead of use.

``python -m symdeconv.codegen.precompile [float32] [float64]`` runs a few small layers through every
runtime path — the GEMM-like kernel on one thread and in parallel, the one-channel pass, the Winograd path,
each through Numba's dispatchers and natively (:mod:`.native`) — so that a later process (a notebook, a
server, a test worker) loads them instead of compiling them (the first compile costs about ten seconds per dtype;
see ``benchmarks/README.md``).  Useful when building an image or before running many processes at once:
each dtype can run in a process of its own.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["precompile"]


def precompile(dtype: str = "float32") -> None:
    """Run every path of the layer runtime once in ``dtype`` (small inputs; results are discarded): through
    Numba's dispatchers (serial and ``prange`` drivers), then natively (writing the object files of
    :mod:`.native` where the machine takes them)."""
    import symdeconv as sd

    from . import rt_driver

    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    gemm = sd.ConvTranspose((4, 4), stride=2, padding=1, in_channels=16, out_channels=16)
    wino = sd.ConvTranspose((4, 4, 4), stride=2, padding=1, in_channels=16, out_channels=8)
    one_channel = sd.ConvTranspose((2, 2, 2), stride=2, in_channels=2, out_channels=2, groups=2)  # (3-D: no stencil)
    cases = [  # (layer, input shapes): one call on one thread, one large enough for the parallel driver
        (gemm, [(1, 16, 2, 2), (2, 16, 32, 32)]),
        (wino, [(1, 16, 2, 3, 3), (1, 16, 20, 20, 20)]),
        (one_channel, [(1, 2, 3, 3, 3)]),
    ]
    native = rt_driver.NATIVE
    try:
        for rt_driver.NATIVE in (False, native):
            for layer, shapes in cases:
                f = sd.compile(layer, "cpu")
                w = rng.standard_normal(layer.weight_shape).astype(dt)
                for shape in shapes:
                    f(rng.standard_normal(shape).astype(dt), w)
    finally:
        rt_driver.NATIVE = native


def main(argv: list[str] | None = None) -> int:
    dtypes = (argv if argv is not None else sys.argv[1:]) or ["float32", "float64"]
    for dtype in dtypes:
        precompile(dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
