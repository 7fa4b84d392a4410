"""``symdeconv verify``: run every kernel of ``generated/`` against its symbolic form."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from ..codegen import catalogue
from ..codegen.api import TARGETS, compile
from ..codegen.rt_driver import own_kernels_at_once
from .check import CheckResult, check, table

__all__ = ["verify_catalogue", "table"]


def verify_catalogue(
    root: Path | None = None, targets: Iterable[str] = TARGETS, dtypes=(np.float64, np.float32),
    names: Iterable[str] | None = None, progress=None,
) -> list[CheckResult]:
    """Load each generated file and check it on its entry's sizes (every basis vector + random inputs).

    A file that is missing, or differs from what its entry emits today, is reported as a failure
    (``symdeconv generate`` rewrites it).  ``progress`` (optional) is called with a line per kernel check
    once it has run (name and path, target, dtype, status, seconds — compilation included).
    """
    root = Path(root) if root is not None else catalogue.default_root()
    wanted = set(names) if names is not None else None
    fresh = catalogue.render()
    results = []
    for entry in catalogue.entries():
        if wanted is not None and entry.name not in wanted:
            continue
        for target in targets:
            rel = f"{target}/{entry.name}.py"
            path = root / rel
            for dtype in dtypes:
                name = entry.name
                if not path.is_file():
                    results.append(CheckResult(name, target, np.dtype(dtype).name, detail=f"{path} missing"))
                    continue
                if path.read_text() != fresh[rel]:
                    results.append(CheckResult(name, target, np.dtype(dtype).name, detail="stale (run symdeconv generate)"))
                    continue
                # CPU layer modules carry several paths: every configuration of the entry (one per path);
                # a CUDA module has one kernel, checked on the entry's own configuration
                checks = entry.checks() if target == "cpu" else entry.checks()[:1]
                for obj, sizes in checks:
                    f = compile(obj, target, name=entry.name, path=path)
                    label = name + (f" [{path_of(f, obj)}]" if target == "cpu" and hasattr(f, "binding") else "")
                    start = time.perf_counter()
                    # (a stencil path from its first call: a layer's first calls run on the shared runtime)
                    with _compilations() as compiled, own_kernels_at_once():
                        result = check(f, obj, sizes, dtype, rng=np.random.default_rng(1234), name=label)
                    results.append(result)
                    if progress is not None:
                        status = "ok" if result.ok else "FAILED"
                        how = "simulated" if target == "cuda" and _simulated() else (
                            "compiled" if compiled else "cached")
                        progress(f"{label:40s} {target:4s} {np.dtype(dtype).name:7s} {status:6s} {how:9s} "
                                 f"{time.perf_counter() - start:6.2f} s")
    return results


@contextlib.contextmanager
def _compilations():
    """A list that holds, once the block has run, the Numba compilations it caused (none when every
    function came from Numba's disk cache)."""
    from numba.core import event

    found: list = []
    with event.install_recorder("numba:compile") as recorder:
        yield found
    found.extend(e for _, e in recorder.buffer if e.is_start)


def _simulated() -> bool:
    import os

    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def shorten_gil_switches() -> None:
    """For a process that simulates CUDA kernels: a 0.1 ms GIL switch interval.

    The simulator runs each GPU thread of a block as a Python thread and polls them in a loop that keeps
    the GIL for whole switch intervals (5 ms by default), so simulated kernels mostly wait; with 0.1 ms
    they run ~4× faster.  Called by ``symdeconv verify``, ``make demo`` and the test suite only (their own
    processes): a library does not change its caller's interpreter settings.
    """
    import sys

    if _simulated():
        sys.setswitchinterval(1e-4)


def path_of(f, layer) -> str:
    """The path (``gemm`` / ``stencil`` / ``winograd``) a compiled CPU layer takes for ``layer``'s channels."""
    from ..codegen.layer_plan import choose_strategy

    groups = int(layer.groups)
    return choose_strategy(f.module.PLAN, int(layer.in_channels) // groups, int(layer.out_channels) // groups).path


def report(results: list[CheckResult]) -> str:
    ok = sum(r.ok for r in results)
    return table(results) + f"\n\n{ok}/{len(results)} kernel checks passed"
