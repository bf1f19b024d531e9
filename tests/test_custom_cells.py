"""A user's own cell file works end to end: derive -> check is clean, from the CLI too."""
import subprocess
import sys
from pathlib import Path

import pytest

from lstmgen import checker, render

ROOT = Path(__file__).resolve().parent.parent

CELLS = {
    # two states, a cell-defined GELU and a plain sigmoid gate
    "gelu_two_state": """
cell gelu_two_state
input x
state h output
state m
function gelu(z) = z * sigmoid(1.702 * z)
a = sigmoid(W_x^a @ x + W_h^a @ h[t-1] + b^a)
m = a * m[t-1] + (1 - a) * gelu(W_x^m @ x + b^m)
h = tanh(W_m @ m + p * h[t-1])
""",
    # relu's derivative cannot be written with its output: the pre-activation gets a name
    "relu_rnn": """
input x
state h output
h = relu(W_x @ x + W_h @ h[t-1] + b)
""",
    "softsign_rnn": """
input x
state h output
h = softsign(W_x @ x + W_h @ h[t-1] + b)
""",
}


@pytest.fixture(params=sorted(CELLS))
def cell_file(request, tmp_path):
    path = tmp_path / (request.param + ".cell")
    path.write_text(CELLS[request.param])
    return path


@pytest.mark.parametrize("fmt", ["md", "tex"])
def test_derive_then_check_is_clean(cell_file, fmt):
    text = render.render_document(str(cell_file), fmt)
    report = checker.check_text(text, cell=str(cell_file))
    statuses = [e.status for e in report.equations]
    assert statuses and set(statuses) == {"correct"}, [(e.line, e.status, e.message) for e in report.equations
                                                       if e.status != "correct"]


def test_cli_checks_against_a_cell_file(tmp_path):
    cell = tmp_path / "gelu.cell"
    cell.write_text(CELLS["gelu_two_state"])
    doc = tmp_path / "notes.md"
    doc.write_text(render.render_document(str(cell), "md"))
    proc = subprocess.run([sys.executable, "-m", "lstmgen", "check", str(doc), "--cell", str(cell)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "0 incorrect, 0 unrecognized" in proc.stdout


def test_a_wrong_equation_against_a_cell_file_is_caught(tmp_path):
    cell = tmp_path / "relu.cell"
    cell.write_text(CELLS["relu_rnn"])
    wrong = r"$$\frac{\partial L}{\partial b} = \frac{\partial L}{\partial h_t} * \operatorname{step}(h_t)$$" + "\n"
    right = r"$$\frac{\partial L}{\partial b} = \frac{\partial L}{\partial h_t} * \operatorname{step}(a^{h}_t)$$" + "\n"
    assert [e.status for e in checker.check_text(wrong, cell=str(cell)).equations] == ["incorrect"]
    assert [e.status for e in checker.check_text(right, cell=str(cell)).equations] == ["correct"]
