"""Every notebook in notebooks/ runs from top to bottom without an error.

The notebooks are stored without outputs; executing them here keeps them true to the
current code. Each is meant to finish in well under 30 seconds.
"""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat")
    nbclient = pytest.importorskip("nbclient", reason="pip install nbclient ipykernel")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}")


def test_generated_notebooks_are_stored_without_outputs():
    """The notebooks written by tools/make_notebooks_core.py (regenerate them after editing)."""
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat")
    for path in [NOTEBOOK_DIR / "01_autograd_from_the_inside.ipynb", NOTEBOOK_DIR / "02_gradient_checking.ipynb"]:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"
