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
        pytest.skip("its cell is no built-in cell under a renaming (named pre-activations, folded biases, ...)")
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
