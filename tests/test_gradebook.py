"""`lstmgen check --csv` (a gradebook row per document) and `--gradescope` (Gradescope's
results.json), checked against the labels of tests/answer_notes/lstm_mistakes.md (proven by its
reference.py) and against Gradescope's documented format."""
from __future__ import annotations

import csv
import io
import json
import shutil

import jsonschema
import pytest

from lstmgen.checker import gradebook

from conftest import ROOT, assert_one_line_error, run_cli

FOLDER = ROOT / "tests" / "answer_notes"
LABELS = json.loads((FOLDER / "lstm_mistakes.md.expected.json").read_text(encoding="utf-8"))
LINES = (FOLDER / "lstm_mistakes.md").read_text(encoding="utf-8").splitlines()

# Gradescope's autograder results.json, as its specification describes it (score optional when
# each test has one; tests with name, score, max_score, status passed/failed, output; extra_data).
GRADESCOPE = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "output": {"type": "string"},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object", "required": ["name", "score", "max_score"],
            "properties": {"name": {"type": "string"}, "score": {"type": "number"}, "max_score": {"type": "number"},
                           "status": {"enum": ["passed", "failed"]}, "output": {"type": "string"}},
            "additionalProperties": False}},
    },
    "additionalProperties": False,
}


def line_of(label) -> int:
    return next(n for n, text in enumerate(LINES, 1) if label["match"] in text)


def expected_row(name: str) -> dict:
    """The gradebook row of lstm_mistakes.md, from its labels alone."""
    status = [label["status"] for label in LABELS]
    right, wrong = status.count("correct"), status.count("incorrect")
    notes = " ".join("%d:%s" % (line_of(label), label["note"]) for label in sorted(LABELS, key=line_of)
                     if "note" in label)
    return {"file": name, "score": str(right), "possible": str(right + wrong),
            "fraction": str(round(right / (right + wrong), 4)), "correct": str(right), "incorrect": str(wrong),
            "unrecognized": str(status.count("unrecognized")), "forward": "0", "notes": notes}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Two students' copies of the labelled document and an empty submission, checked once."""
    folder = tmp_path_factory.mktemp("class")
    for name in ("anna.md", "ben.md"):
        shutil.copy(FOLDER / "lstm_mistakes.md", folder / name)
    (folder / "cleo.md").write_text("I ran out of time.\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("out")
    proc = run_cli("check", folder, "--cell", "lstm", "--csv", out / "grades.csv", "--gradescope", out / "results.json")
    assert proc.returncode == 1, proc.stderr
    return folder, out


def test_the_gradebook_has_a_row_per_document_from_the_labels(graded):
    folder, out = graded
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text(encoding="utf-8"))))
    assert list(rows[0]) == list(gradebook.COLUMNS)
    assert rows[:2] == [expected_row(str(folder / "anna.md")), expected_row(str(folder / "ben.md"))]
    assert rows[2] == {"file": str(folder / "cleo.md"), "score": "0", "possible": "0", "fraction": "",
                       "correct": "0", "incorrect": "0", "unrecognized": "1", "forward": "0", "notes": "1:unrecognized"}


def test_a_file_name_never_becomes_a_spreadsheet_formula():
    document = {"file": "=HYPERLINK(\"http://x\")", "equations": []}
    [row] = list(csv.reader(io.StringIO(gradebook.csv_text([document]))))[1:]
    assert row[0] == "'=HYPERLINK(\"http://x\")"


def test_gradescope_results_follow_its_format_and_add_up(graded):
    _, out = graded
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, GRADESCOPE)
    tests = results["tests"]
    assert results["score"] == sum(t["score"] for t in tests) == 2 * [label["status"] for label in LABELS].count("correct")
    scored = [t for t in tests if t["max_score"] == 1]
    assert len(scored) == 2 * sum(1 for label in LABELS if label["status"] != "unrecognized")
    assert all(t["status"] == ("passed" if t["score"] == 1 else "failed") for t in scored)
    unjudged = [t for t in tests if t["max_score"] == 0]
    assert len(unjudged) == 2 + 1 and all("status" not in t and t["score"] == 0 for t in unjudged)
    assert all(t["output"].startswith("Not judged automatically") for t in unjudged)
    failed = [t for t in scored if t["status"] == "failed"]
    assert all("\nExpected: " in t["output"] for t in failed if "chain breaks" not in t["output"])
    assert results["extra_data"]["lstmgen"]["documents"] == 3


def test_an_output_folder_that_does_not_exist_is_one_line_before_any_check(tmp_path):
    proc = run_cli("check", FOLDER / "lstm_mistakes.md", "--csv", tmp_path / "no" / "grades.csv")
    assert_one_line_error(proc, "does not exist")
