"""``symdeconv verify``: run every kernel of ``generated/`` against its symbolic form."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..codegen import catalogue
from ..codegen.api import TARGETS, compile
from .check import CheckResult, check, table

__all__ = ["verify_catalogue", "table"]


def verify_catalogue(
    root: Path | None = None, targets: Iterable[str] = TARGETS, dtypes=(np.float64, np.float32),
    names: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Load each generated file and check it on its entry's sizes (every basis vector + random inputs).

    A file that is missing, or differs from what its entry emits today, is reported as a failure
    (``symdeconv generate`` rewrites it).
    """
    root = Path(root) if root is not None else catalogue.default_root()
    wanted = set(names) if names is not None else None
    fresh = catalogue.render()
    results = []
    for entry in catalogue.entries():
        if wanted is not None and entry.name not in wanted:
            continue
        obj = entry.obj()
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
                f = compile(obj, target, name=entry.name, path=path)
                results.append(check(f, obj, entry.sizes, dtype, rng=np.random.default_rng(1234), name=name))
    return results


def report(results: list[CheckResult]) -> str:
    ok = sum(r.ok for r in results)
    return table(results) + f"\n\n{ok}/{len(results)} kernel checks passed"
