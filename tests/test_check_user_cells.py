"""`derive` then `check` for cells a user writes: names with subscripts of their own (g_1, W_1, which
a document writes {g_1}_t and W_1) and a cell large enough that the derivation gives intermediates a
total gradient of their own (`Derivation.shared`); read back with the cell given and learned."""
from __future__ import annotations

import pytest

import lstmgen
from lstmgen import render, reverse
from lstmgen.printing.latex import Style

SUBSCRIPTED = """cell subscripted
input x
state h output
g_1 = sigmoid(W_1 @ x + U_1 @ h[t-1] + b_1)
g_2 = tanh(W_2 @ x + U_2 @ h[t-1] + b_2)
h = g_1 * h[t-1] + (1 - g_1) * g_2
"""


def two_before(gates: int) -> str:
    """Each gate reads the two before it: the paths multiply, so the derivation shares gradients."""
    lines = ["cell twobefore", "input x", "state h output", "g_1 = sigmoid(W_1 @ x + U_1 @ h[t-1] + b_1)",
             "g_2 = sigmoid(W_2 @ x + U_2 @ h[t-1] + g_1)"]
    lines += ["g_%d = tanh(g_%d + g_%d)" % (k, k - 1, k - 2) for k in range(3, gates + 1)]
    return "\n".join(lines + ["h = g_%d * h[t-1] + g_%d" % (gates, gates - 1)]) + "\n"


@pytest.fixture(params=["subscripted", "shared"])
def cell_file(request, tmp_path):
    path = tmp_path / (request.param + ".cell")
    path.write_text(SUBSCRIPTED if request.param == "subscripted" else two_before(8), encoding="utf-8")
    return str(path)


def test_the_sharing_cell_shares(tmp_path):
    path = tmp_path / "shared.cell"
    path.write_text(two_before(8), encoding="utf-8")
    assert reverse.derive(str(path)).shared


@pytest.mark.parametrize("style", [Style(), Style(compact=True), Style(vectors="row")], ids=["full", "compact", "rows"])
@pytest.mark.parametrize("given", [True, False], ids=["cell given", "cell learned"])
def test_a_user_cells_document_reads_back_clean(cell_file, style, given):
    text = render.render_document(cell_file, "md", style)
    report = lstmgen.check(text, cell=cell_file if given else None)
    assert [(e.line, e.message) for e in report.equations if e.status != "correct"] == []
    assert report.summary["correct"] >= 15


def test_a_wrong_formula_of_a_sharing_cell_is_caught(tmp_path):
    path = tmp_path / "shared.cell"
    path.write_text(two_before(8), encoding="utf-8")
    text = render.render_document(str(path), "md")
    right = r"\frac{\partial {g_1}_t}{\partial b_1} = {g_1}_t * (1 - {g_1}_t)"
    assert right in text
    mutated = text.replace(right, r"\frac{\partial {g_1}_t}{\partial b_1} = {g_1}_t * {g_1}_t", 1)
    assert mutated != text
    report = lstmgen.check(mutated, cell=str(path))
    assert [e.status for e in report.equations].count("incorrect") >= 1
    assert all(e.status == "correct" or r"\partial b_1" in e.lhs for e in report.equations)
