"""docs/api.ipynb runs from top to bottom and shows what it says it shows."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "api.ipynb"


def test_the_api_notebook_runs_and_displays_math():
    if os.environ.get("LSTMGEN_REQUIRE_NOTEBOOK"):
        import nbclient
        import nbformat
    else:
        nbclient = pytest.importorskip("nbclient")
        nbformat = pytest.importorskip("nbformat")
        pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not any(out.get("output_type") == "error" for out in cell.outputs) for cell in code)
    shown = code[0].outputs[0]["data"]
    assert shown["text/latex"].startswith("$$ \\begin{aligned}") and "text/html" in shown
    assert "\\frac{\\partial L}{\\partial W_x^f}" in code[2].outputs[0]["data"]["text/latex"]
    assert "\\sum_{t=1}^T" in code[3].outputs[0]["data"]["text/latex"]
    assert "\\odot" in code[5].outputs[0]["data"]["text/latex"]
    rows = code[6].outputs[0]["data"]["text/latex"]
    assert "x_t^T" in rows and "g_t" in rows and r"\tilde" not in rows  # row vectors, the cell's own names
    assert r"\delta^{z}_t = " in code[7].outputs[0]["text"]
    assert "def gru_step_backward" in code[8].outputs[0]["text"]
