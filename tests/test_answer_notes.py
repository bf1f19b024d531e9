"""Answer notes: every code of `lstmgen.checker.notes` is reported for an equation whose mistake is
of that kind.  The mistakes are in tests/answer_notes/lstm_mistakes.md; its sidecar labels each
with its note, and tests/answer_notes/reference.py proves every label independently of lstmgen
(finite differences of a NumPy LSTM: the wrong side differs everywhere, the note's repair agrees)."""
from __future__ import annotations

import importlib.util
import json
import re

import jsonschema
import pytest

from lstmgen import cells, ir
from lstmgen.checker import diagnose, notes
from lstmgen.checker.notation import Notation
from lstmgen.checker.report import json_schema
from lstmgen.checker.targets import Target
from lstmgen.reverse import derive

from conftest import ROOT, run_cli

FOLDER = ROOT / "tests" / "answer_notes"
DOCUMENT = FOLDER / "lstm_mistakes.md"
LABELS = json.loads((FOLDER / "lstm_mistakes.md.expected.json").read_text(encoding="utf-8"))
LINES = DOCUMENT.read_text(encoding="utf-8").splitlines()
NOT_IN_A_DOCUMENT = {"extra-sum"}  # no equation reaches it today (a right side with a sum makes the target summed)


def line_of(label) -> int:
    [line] = [n for n, text in enumerate(LINES, 1) if label["match"] in text]
    return line


@pytest.fixture(scope="module")
def report():
    proc = run_cli("check", DOCUMENT, "--cell", "lstm", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    jsonschema.validate(data, json_schema(), cls=jsonschema.Draft202012Validator)
    return {e["line"]: e for e in data["equations"]}


def test_the_reference_proves_every_label():
    spec = importlib.util.spec_from_file_location("answer_notes_reference", FOLDER / "reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    assert reference.prove() == []


def test_every_code_has_a_labelled_mistake_or_a_reason():
    labelled = {label["note"] for label in LABELS if "note" in label}
    assert labelled | NOT_IN_A_DOCUMENT == set(notes.CODES)
    assert not labelled & NOT_IN_A_DOCUMENT


@pytest.mark.parametrize("label", LABELS, ids=[label.get("note", "correct-%d" % n) for n, label in enumerate(LABELS)])
def test_the_note_names_the_mistake(report, label):
    entry = report[line_of(label)]
    assert entry["status"] == label["status"], (label["why"], entry["message"])
    expected = [(label["note"], label.get("link", 1))] if "note" in label else []
    assert [(n["code"], n["link"]) for n in entry["notes"]] == expected, (label["why"], entry["message"])


def test_nothing_else_in_the_document_is_reported():
    assert sorted(line_of(label) for label in LABELS) == sorted(
        n for n, text in enumerate(LINES, 1) if text.startswith("$$"))


def test_a_sum_over_t_where_the_step_gradient_is_meant_is_an_extra_sum():
    """Straight to `diagnose`: the target of a step gradient, a side with a sum (the seed's dW_x^f summed)."""
    cell = cells.load("lstm")
    step = derive(cell).step_gradient("W_x^f")
    target = Target(step, "gradient", "W_x^f")
    found = diagnose.diagnose(ir.SumOverTime(step), target, Notation.for_cell(cell, "option"), got=None, truth=None)
    assert [n.code for n in found] == ["extra-sum"]


def test_the_readme_lists_every_code_with_its_meaning():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z-]+)` \| (.+) \|$", readme, re.M)
    assert [(code, meaning) for code, meaning in rows if code in notes.MEANINGS] == list(notes.MEANINGS.items())
