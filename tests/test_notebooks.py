"""Execute every documentation notebook (jupytext percent-format ``docs/*.py``) in a real kernel.

The notebooks assert each step of their derivations, so a wrong library result fails here.  Notebooks
added to ``docs/`` later are picked up by the glob.  The kernel is the ``python3`` kernel of the
running interpreter (jupyter_client starts ``sys.executable`` for it), with the repository root as its
working directory and on ``PYTHONPATH``, so it imports this checkout of symdeconv even when the package
is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "docs").glob("*.py"))


def _first_error(nb) -> str:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}\n" + "\n".join(output.get("traceback", []))
    return ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel process inherits this environment: make the checkout importable from it.
    pythonpath = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), pythonpath) if p))
    nb = jupytext.read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(REPO)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # keep the cell's own traceback readable
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    assert not _first_error(nb), _first_error(nb)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.get("execution_count") for cell in code_cells), f"{path.name}: cells not run"


def test_notebooks_found() -> None:
    """The glob must not silently match nothing (e.g. after a move of ``docs/``)."""
    assert any(p.name == "algebra.py" for p in NOTEBOOKS)
