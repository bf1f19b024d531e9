"""`lstmgen check --cell C` on a document that states its forward equations in its own notation:
the learned cell is renamed onto C (checker/renaming.py) when the two are one cell, so the document
is read as its author writes it and judged against C; otherwise C's own notation is used, with a
note when the document's layout differs."""
from __future__ import annotations

from pathlib import Path

import pytest

import lstmgen
from lstmgen import cells, render
from lstmgen.checker import check_file, check_text
from lstmgen.checker.renaming import rename_onto
from lstmgen.printing.latex import Style

ROOT = Path(__file__).resolve().parent
CORPORA = [ROOT / name for name in ("notation_corpus", "notation_holdout", "notation_blind")]
DOCUMENTS = sorted(p for folder in CORPORA for p in folder.iterdir() if p.suffix in (".md", ".tex")
                   and p.name != "README.md")


def _statuses(report):
    return {(e.line, e.lhs): e.status for e in report.equations}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_the_given_cell_changes_no_verdict_when_it_is_the_documents(path):
    """Every corpus document whose forward equations are a built-in cell's gets the same verdicts
    with that cell given as with the cell learned (the corpora's labels prove the latter)."""
    learned = check_file(path)
    if learned.notation.origin != "learned":
        pytest.skip("states no cell")
    renamed = [name for name in cells.builtin_names() if any(
        note.startswith("read in the document's own notation") for note in check_file(path, name).notation.notes)]
    if not renamed:
        pytest.skip("its cell is no built-in cell under a renaming (folded biases, ...)")
    assert len(renamed) == 1, renamed  # one cell at most is the document's
    given = check_file(path, renamed[0])
    assert _statuses(given) == _statuses(learned)


def test_a_document_of_another_cell_is_read_in_the_given_cells_notation():
    gru_doc = render.render_document("gru", "md", Style(vectors="row"))
    report = check_text(gru_doc, cell="lstm")
    assert not any(note.startswith("read in the document's own notation") for note in report.notation.notes)
    assert any("write vectors as rows" in note for note in report.notation.notes)


def test_renaming_maps_every_quantity_by_its_role():
    text = render.render_document("lstm", "md", Style(names="plain", vectors="row"))
    report = check_text(text)  # learned: the cell is the document's, with its names
    lstm = cells.load("lstm")
    renamed = rename_onto(report.notation, lstm)
    assert renamed is not None and renamed.cell is lstm
    vectors = {key: m.name for key, m in renamed.names.items() if m.kind == "vector"}
    assert vectors["g"] == "g" and vectors["f"] == "f" and vectors["c"] == "c"
    assert renamed.layout == "row"
    assert renamed.written("g") == "g"  # the author's form, for the expected formulas


def test_renaming_refuses_a_cell_with_another_structure():
    report = check_text(render.render_document("lstm", "md"))
    assert rename_onto(report.notation, cells.load("peephole_lstm")) is None
    assert rename_onto(report.notation, cells.load("cifg_lstm")) is None
    assert rename_onto(report.notation, cells.load("gru")) is None


def test_a_wrong_equation_is_still_wrong_with_the_cell_given():
    text = render.render_document("lstm", "md", Style(names="plain", vectors="row"))
    right = r"\frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t"
    assert right in text
    report = lstmgen.check(text.replace(right, right[:-3] + "i_t"), cell="lstm")
    wrong = [e for e in report.equations if e.status != "correct"]
    assert len(wrong) == 1 and wrong[0].status == "incorrect"
    assert "f_t" in wrong[0].expected  # the right formula, in the document's letters


# Two notations that name every gate's pre-activation before squashing it: column vectors with
# a^f_t, and row vectors with z_t^f (x_t W_f + h_{t-1} U_f).  Each has one planted mistake: a
# missing sigma-derivative.
COLUMN_PREACTIVATIONS = r"""
$$a^i_t = W^i x_t + U^i h_{t-1} + b^i$$
$$a^f_t = W^f x_t + U^f h_{t-1} + b^f$$
$$a^o_t = W^o x_t + U^o h_{t-1} + b^o$$
$$a^g_t = W^g x_t + U^g h_{t-1} + b^g$$
$$i_t = \sigma(a^i_t)$$
$$f_t = \sigma(a^f_t)$$
$$o_t = \sigma(a^o_t)$$
$$g_t = \tanh(a^g_t)$$
$$c_t = f_t \odot c_{t-1} + i_t \odot g_t$$
$$h_t = o_t \odot \tanh(c_t)$$

Write $\delta v$ for $\partial L / \partial v$, the total gradient.

$$\delta a^o_t = \delta h_t \odot \tanh(c_t) \odot o_t \odot (1 - o_t)$$
$$\delta a^g_t = \delta c_t \odot i_t \odot (1 - g_t^2)$$
$$\delta a^i_t = \delta c_t \odot g_t$$
$$\frac{\partial L}{\partial U^o} = \sum_t \delta a^o_t \, h_{t-1}^T$$
$$\frac{\partial L}{\partial b^g} = \sum_t \delta a^g_t$$
"""

ROW_PREACTIVATIONS = r"""
$$z_t^f = x_t W_f + h_{t-1} U_f + b_f, \qquad f_t = \sigma(z_t^f)$$
$$z_t^i = x_t W_i + h_{t-1} U_i + b_i, \qquad i_t = \sigma(z_t^i)$$
$$z_t^o = x_t W_o + h_{t-1} U_o + b_o, \qquad o_t = \sigma(z_t^o)$$
$$z_t^c = x_t W_c + h_{t-1} U_c + b_c, \qquad \tilde{c}_t = \tanh(z_t^c)$$
$$c_t = f_t \odot c_{t-1} + i_t \odot \tilde{c}_t$$
$$h_t = o_t \odot \tanh(c_t)$$

Row vectors; $\delta v$ is $\partial L / \partial v$.

$$\delta z_t^o = \delta h_t \odot \tanh(c_t)$$
$$\delta z_t^f = \delta c_t \odot c_{t-1} \odot f_t \odot (1 - f_t)$$
$$\frac{\partial L}{\partial W_f} = \sum_t x_t^T \delta z_t^f$$
"""


@pytest.mark.parametrize("text", [COLUMN_PREACTIVATIONS, ROW_PREACTIVATIONS], ids=["column", "row"])
def test_named_preactivations_are_read_in_the_documents_notation_with_the_cell_given(text):
    """A document that names each pre-activation (a^f_t = W^f x_t + ..., f_t = sigma(a^f_t)) states
    the LSTM once those sums are put back: with --cell lstm it is read as its author writes it, and
    every verdict is the one the document's own cell gives (before, the pre-activations were
    unknown names and their equations unrecognized)."""
    learned = check_text(text)
    given = check_text(text, cell="lstm")
    assert any("with named pre-activations" in note for note in given.notation.notes)
    assert _statuses(given) == _statuses(learned)
    statuses = [e.status for e in given.equations]
    assert "unrecognized" not in statuses
    wrong = [e for e in given.equations if e.status == "incorrect"]
    assert len(wrong) == 1 and "(1 -" in wrong[0].expected  # the missing sigma-derivative, in its letters


def test_named_preactivations_of_another_cell_are_not_the_given_cell():
    """The same naming over a GRU's equations is no LSTM: --cell lstm keeps the cell file's notation."""
    text = r"""
$$a^r_t = W^r x_t + b^r + U^r h_{t-1} + c^r$$
$$r_t = \sigma(a^r_t)$$
$$a^z_t = W^z x_t + b^z + U^z h_{t-1} + c^z$$
$$z_t = \sigma(a^z_t)$$
$$n_t = \tanh(W^n x_t + b^n + r_t \odot (U^n h_{t-1} + c^n))$$
$$h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$$
"""
    report = check_text(text, cell="lstm")
    assert not any(note.startswith("read in the document's own notation") for note in report.notation.notes)
    assert any(note.startswith("read in the document's own notation") for note in check_text(text, cell="gru")
               .notation.notes)


@pytest.mark.parametrize("cell,text", [
    ("mgu", r"""
$$a_t = W_f x_t + U_f h_{t-1} + b_f$$
$$f_t = \sigma(a_t)$$
$$r_t = f_t \odot h_{t-1}$$
$$m_t = W_n x_t + U_n r_t + b_n$$
$$\tilde{h}_t = \tanh(m_t)$$
$$h_t = (1 - f_t) \odot h_{t-1} + f_t \odot \tilde{h}_t$$

$$\frac{\partial L}{\partial m_t} = \frac{\partial L}{\partial h_t} \odot f_t \odot (1 - \tilde{h}_t^2)$$
"""),
    ("cifg_lstm", r"""
$$z^f_t = W_f x_t + U_f h_{t-1} + b_f$$
$$f_t = \sigma(z^f_t)$$
$$i_t = 1 - f_t$$
$$z^o_t = W_o x_t + U_o h_{t-1} + b_o$$
$$o_t = \sigma(z^o_t)$$
$$\tilde{c}_t = \tanh(W_c x_t + U_c h_{t-1} + b_c)$$
$$c_t = f_t \odot c_{t-1} + i_t \odot \tilde{c}_t$$
$$h_t = o_t \odot \tanh(c_t)$$

$$\frac{\partial L}{\partial z^o_t} = \frac{\partial L}{\partial h_t} \odot \tanh(c_t) \odot o_t \odot (1 - o_t)$$
"""),
], ids=["mgu", "cifg_lstm"])
def test_named_preactivations_beside_the_cells_own_intermediates(cell, text):
    """The MGU's r = f * h_{t-1} and the CIFG's i = 1 - f are the cells' own intermediates, not names
    of a gate's argument: only the named sums are put back, and the document is the given cell."""
    report = check_text(text, cell=cell)
    assert report.notation.given == cell
    assert "the %s cell given with --cell" % cell in report.notation.describe()
    assert [e.status for e in report.equations if e.kind != "forward"] == ["correct"]
