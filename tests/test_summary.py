"""`lstmgen summary`: a class's answer notes with how many students and equations, from documents,
.json reports or JSON Lines; its JSON validates against the shipped schema; bad reports are one
line, exit 2."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import jsonschema
import pytest
from referencing import Registry, Resource

from lstmgen.checker.report import json_schema

from conftest import ROOT, assert_one_line_error, run_cli

FOLDER = ROOT / "tests" / "answer_notes"
LABELS = json.loads((FOLDER / "lstm_mistakes.md.expected.json").read_text(encoding="utf-8"))
SLIP = r"$$\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * f_t$$" + "\n"  # σ' as f_t


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """Two students with the labelled document, one with the seed's sigma' slip only."""
    folder = tmp_path_factory.mktemp("class")
    for name in ("anna.md", "ben.md"):
        shutil.copy(FOLDER / "lstm_mistakes.md", folder / name)
    (folder / "cleo.md").write_text(SLIP, encoding="utf-8")
    return folder


def expected_notes() -> dict:
    """code -> (students, equations), from the labels: every code twice, the slip once more."""
    per_document = Counter(label["note"] for label in LABELS if "note" in label)
    out = {code: (2, 2 * n) for code, n in per_document.items()}
    out["wrong-sigma-derivative"] = (3, 2 * per_document["wrong-sigma-derivative"] + 1)
    return out


def validator():
    registry = Registry().with_resource("urn:lstmgen:check-report:2", Resource.from_contents(json_schema()))
    return jsonschema.Draft202012Validator(json_schema("check-summary"), registry=registry)


def summary_of(*args) -> dict:
    proc = run_cli("summary", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    validator().validate(data)
    return data


def test_the_summary_counts_students_and_equations_per_note(klass):
    data = summary_of(klass, "--cell", "lstm")
    assert {n["code"]: (n["documents"], n["equations"]) for n in data["notes"]} == expected_notes()
    assert [n["documents"] for n in data["notes"]] == sorted((n["documents"] for n in data["notes"]), reverse=True)
    slip = next(n for n in data["notes"] if n["code"] == "wrong-sigma-derivative")
    assert slip["where"][0] == {"lhs": r"\frac{\partial L}{\partial b^f}", "documents": 3}
    assert slip["example"]["line"] >= 1 and "as f_t" in slip["example"]["text"]
    assert data["summary"]["documents"] == 3 and data["all_correct"] == 0


def test_reports_and_json_lines_summarize_like_the_documents(klass, tmp_path):
    direct = summary_of(klass, "--cell", "lstm")
    report = run_cli("check", klass, "--cell", "lstm", "--json")
    (tmp_path / "class.json").write_text(report.stdout, encoding="utf-8")
    documents = json.loads(report.stdout)["documents"]
    (tmp_path / "class.jsonl").write_text("\n".join(json.dumps(d) for d in documents) + "\n\n", encoding="utf-8")
    assert summary_of(tmp_path / "class.json") == direct
    assert summary_of(tmp_path / "class.jsonl") == direct


def test_the_text_names_each_note_with_an_example(klass):
    proc = run_cli("summary", klass, "--cell", "lstm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3 documents: ")
    heads = [line.split(":")[0] for line in proc.stdout.splitlines() if line and not line.startswith((" ", "3 ", "0 "))]
    assert sorted(heads) == sorted(expected_notes())
    assert proc.stdout.count("    e.g. ") == len(expected_notes())


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not JSON"),
    ('{"schema": "lstmgen-check", "version": 1, "documents": []}', "version 1"),
    ('[{"file": "a.md", "equations": []}]', "not a document"),
    ('{"file": "a.md", "equations": [{"line": 0, "lhs": "", "status": "correct", "notes": []}]}', "equations[0]: line"),
    ('{"file": "a.md", "equations": [{"line": 3, "lhs": "x", "status": "incorrect", "notes": [{"code": "oops"}]}]}',
     "known codes"),
    ("[" * 100_000, "not JSON"),
], ids=["not_json", "old_version", "a_list", "line_zero", "unknown_code", "nested_deeply"])
def test_a_bad_report_is_one_line_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    proc = run_cli("summary", path)
    assert_one_line_error(proc, fragment)
    assert "bad.json" in proc.stderr


def test_a_bad_line_of_json_lines_is_named_by_its_number(tmp_path):
    path = tmp_path / "class.jsonl"
    path.write_text('{"file": "a.md", "equations": []}\n{"file": 3}\n', encoding="utf-8")
    assert_one_line_error(run_cli("summary", path), "class.jsonl: line 2")
