"""The checker on the notation corpus (tests/notation_corpus/): every labelled equation of every
document judged as its label says, with no --cell (each document states its forward equations).

The labels are proven independently of lstmgen by tests/notation_corpus/reference.py (central
finite differences of a NumPy transcription of each document); test_notation_labels.py runs that
proof.  Here only the checker is under test."""
import json
import re
from pathlib import Path

import pytest

from lstmgen.checker import check_file

CORPUS = Path(__file__).parent / "notation_corpus"
DOCUMENTS = sorted(p for p in CORPUS.iterdir() if p.suffix in (".md", ".tex") and p.name != "README.md")
_BARE_OPENING = re.compile(r"^\s*(\$\$|\\\[|\\begin\{[A-Za-z]+\*?\})+\s*$")


def _labelled(doc: Path):
    lines = doc.read_text(encoding="utf-8").split("\n")
    for label in json.loads((CORPUS / (doc.name + ".expected.json")).read_text(encoding="utf-8")):
        line = next(i + 1 for i, text in enumerate(lines) if label["match"] in text)
        where = {line}
        k = line - 1
        while k >= 1 and _BARE_OPENING.match(lines[k - 1]):
            where.add(k)
            k -= 1
        yield label, line, where


@pytest.fixture(scope="module")
def reports():
    return {doc.name: check_file(doc) for doc in DOCUMENTS}


def test_the_corpus_is_large_enough():
    labels = [label for doc in DOCUMENTS for label, _, _ in _labelled(doc)]
    assert len(DOCUMENTS) >= 10
    assert sum(label["status"] == "incorrect" for label in labels) >= 25


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.name)
def test_every_label_is_judged_right(reports, doc):
    report = reports[doc.name]
    assert report.notation.origin == "learned", report.notation.describe()
    wrong = []
    for label, line, where in _labelled(doc):
        found = [e for e in report.equations if e.line in where]
        if not found or any(e.status != label["status"] for e in found):
            wrong.append("line %d: want %s (%s), got %s" % (
                line, label["status"], label["why"], [(e.status, e.message) for e in found]))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.name)
def test_nothing_unlabelled_is_incorrect(reports, doc):
    allowed = set()
    for label, _, where in _labelled(doc):
        if label["status"] == "incorrect":
            allowed |= where
    stray = [e for e in reports[doc.name].equations if e.status == "incorrect" and e.line not in allowed]
    assert not stray, [(e.line, e.message) for e in stray]
