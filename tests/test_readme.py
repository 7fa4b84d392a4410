"""The README's Python examples run to the end, as a user would paste them (the torch one where PyTorch is
installed).  Each block's own ``assert`` statements are its checks; printed output is not compared."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 3
    assert "sd.compile(layer)" in BLOCKS[0] and "f(x, w)" in BLOCKS[0]  # the first example runs a kernel


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    pytest.importorskip("numba")
    code = BLOCKS[index]
    if re.search(r"^import .*\btorch\b", code, flags=re.M):
        pytest.importorskip("torch")
    if "scipy" in code:
        pytest.importorskip("scipy")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"README.md example {index + 1}", "exec"), {})  # noqa: S102 - the project's own README
