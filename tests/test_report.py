"""The report of `lstmgen check`: one versioned JSON shape for one document or many, validated
against the JSON Schema the package ships; scores per equation and per document."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from lstmgen.checker import check_text, notes
from lstmgen.checker.report import envelope, json_schema

from conftest import ROOT, run_cli

SCHEMA_FILE = ROOT / "lstmgen" / "schemas" / "check-report.schema.json"

# The seed's correct formulas (typed from the customer's document) and a slip in one of them.
DO = r"\frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)]"
DC = r"\frac{\partial L}{\partial h_t} * o_t * (1 - \tanh^2 c_t) + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}"
FORWARD = [r"f_t = \sigma(W_x^f x_t + W_h^f h_{t-1} + b^f)", r"i_t = \sigma(W_x^i x_t + W_h^i h_{t-1} + b^i)",
           r"o_t = \sigma(W_x^o x_t + W_h^o h_{t-1} + b^o)", r"\tilde{c}_t = \tanh(W_x^c x_t + W_h^c h_{t-1} + b^c)",
           r"c_t = f_t * c_{t-1} + i_t * \tilde{c}_t", r"h_t = o_t * \tanh(c_t)"]
BACKWARD = [  # (equation, its status by the seed)
    (r"\frac{\partial L}{\partial b^o} = " + DO, "correct"),
    (r"\frac{\partial L}{\partial c_t} = " + DC, "correct"),
    (r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * f_t", "incorrect"),  # σ' as f_t
    (r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * \zeta_t", "unrecognized"),  # no ζ in a cell
]


def document(forward=True) -> str:
    return "\n\n".join("$$%s$$" % eq for eq in (FORWARD if forward else []) + [eq for eq, _ in BACKWARD]) + "\n"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """Three submissions: one with forward equations, one without, one that cannot be read."""
    folder = tmp_path_factory.mktemp("class")
    (folder / "a_forward.md").write_text(document(forward=True), encoding="utf-8")
    (folder / "b_plain.md").write_text(document(forward=False), encoding="utf-8")
    (folder / "c_binary.md").write_bytes(b"\x00\x01 not text")
    return folder


def counts_of(equations) -> dict:
    return {status: sum(1 for e in equations if e["status"] == status)
            for status in ("correct", "incorrect", "unrecognized")}


def test_the_shipped_schema_is_the_one_the_package_loads():
    assert json_schema() == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_the_schema_lists_every_answer_note_and_its_meaning():
    note = json_schema()["$defs"]["note"]["properties"]["code"]
    assert note["enum"] == list(notes.CODES)
    for code, meaning in notes.MEANINGS.items():
        assert "%s: %s" % (code, meaning) in note["description"]


def test_scores_count_backward_equations_and_set_forward_and_unrecognized_apart():
    report = check_text(document(forward=True), source="a.md")
    assert [e.kind for e in report.equations] == ["forward"] * len(FORWARD) + ["backward"] * len(BACKWARD)
    assert [e.status for e in report.equations[len(FORWARD):]] == [status for _, status in BACKWARD]
    data = report.to_dict()
    assert [e["score"] for e in data["equations"]] == [None] * len(FORWARD) + [1, 1, 0, None]
    assert data["summary"] == {"correct": len(FORWARD) + 2, "incorrect": 1, "unrecognized": 1,
                               "forward": len(FORWARD), "score": 2, "possible": 3, "fraction": 0.6667}


def test_forward_equations_judged_against_a_given_cell_are_not_scored_either():
    wrong = FORWARD[0].replace("h_{t-1}", "h_t")  # the seed's forget gate reads h_{t-1}
    data = check_text("$$%s$$\n\n$$%s$$\n" % (FORWARD[0], wrong), cell="lstm").to_dict()
    assert [(e["status"], e["kind"], e["score"]) for e in data["equations"]] == [
        ("correct", "forward", None), ("incorrect", "forward", None)]
    assert [n["code"] for n in data["equations"][1]["notes"]] == ["wrong-time-index"]
    assert data["summary"]["possible"] == 0 and data["summary"]["fraction"] is None


def test_one_document_is_the_envelope_and_the_document_at_once(validator, class_folder):
    proc = run_cli("check", class_folder / "a_forward.md", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    validator.validate(report)
    assert (report["schema"], report["version"]) == ("lstmgen-check", 2)
    [only] = report["documents"]
    assert {key: report[key] for key in only if key != "summary"} == {k: v for k, v in only.items() if k != "summary"}
    assert report["summary"] == dict(only["summary"], documents=1)
    assert {k: report["summary"][k] for k in counts_of(report["equations"])} == counts_of(report["equations"])


def test_many_documents_share_the_schema_and_the_summary_adds_them_up(validator, class_folder):
    proc = run_cli("check", class_folder, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    validator.validate(report)
    assert "file" not in report and "equations" not in report
    documents = report["documents"]
    assert [Path(d["file"]).name for d in documents] == ["a_forward.md", "b_plain.md", "c_binary.md"]
    assert "cell" not in documents[2] and documents[2]["equations"][0]["notes"][0]["code"] == "unrecognized"
    every = [e for d in documents for e in d["equations"]]
    for key, value in counts_of(every).items():
        assert report["summary"][key] == value
    assert report["summary"]["documents"] == 3
    # by hand: 2 + 2 + 0 points of 3 + 3 + 0 scored; the binary file's entry is not scored
    assert (report["summary"]["score"], report["summary"]["possible"], report["summary"]["fraction"]) == (4, 6, 0.6667)
    for d in documents:
        assert d["summary"] == {**counts_of(d["equations"]), **{k: d["summary"][k] for k in
                                                                ("forward", "score", "possible", "fraction")}}


def test_the_envelope_of_streamed_document_dicts_is_the_same_report(validator):
    parts = [check_text(document(forward=False), source=name).to_dict() for name in ("x.md", "y.md")]
    lines = [json.loads(json.dumps(part)) for part in parts]  # as a JSON Lines stream carries them
    assert envelope(lines) == envelope(parts)
    validator.validate(envelope(lines))
    validator.validate(envelope([]))
    assert envelope([])["summary"]["documents"] == 0


def _one_document():
    return envelope([check_text(document(forward=True), source="a.md").to_dict()])


@pytest.mark.parametrize("break_it", [
    lambda r: r.pop("file"),                                            # one document: its fields are required
    lambda r: r["documents"].append(copy.deepcopy(r["documents"][0])),  # two documents: no top-level file
    lambda r: r["equations"][-2].update(score=1),                       # an incorrect equation scores 0
    lambda r: r["equations"][-1].update(score=0),                       # an unrecognized one is not scored
    lambda r: r["equations"][0].update(score=1),                        # nor is a forward equation
    lambda r: r["equations"][-2]["notes"][0].update(code="typo"),        # codes come from the table
    lambda r: r["equations"][-2].update(notes=[]),                      # an incorrect equation has a note
    lambda r: r["equations"][-1]["notes"][0].update(code="sign"),        # an unrecognized one says so
    lambda r: r["equations"][-1].update(line=0),                        # lines are 1-based
    lambda r: r["summary"].update(fraction=1.5),
    lambda r: r.update(version=1),
], ids=["no_file", "two_with_file", "incorrect_scored", "unrecognized_scored", "forward_scored", "unknown_code",
        "incorrect_without_note", "unrecognized_noted_as_mistake", "line_zero", "fraction_over_one", "old_version"])
def test_the_schema_rejects_a_broken_report(validator, break_it):
    report = _one_document()
    validator.validate(report)
    break_it(report)
    assert not validator.is_valid(report)
