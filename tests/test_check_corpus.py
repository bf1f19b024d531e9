"""The labelled corpus: documents with the errors students make, each with a sidecar
`<name>.expected.json` listing every verdict (line, status, and for the key ones a piece of the
diagnosis).  The verdicts were worked out by hand when the documents were written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstmgen.checker import check_file

CORPUS = Path(__file__).parent / "corpus"
DOCUMENTS = sorted(p for p in CORPUS.iterdir() if p.suffix in (".md", ".tex"))


def test_corpus_is_big_enough():
    assert len(DOCUMENTS) >= 10
    assert all(doc.with_name(doc.name + ".expected.json").is_file() for doc in DOCUMENTS)
    statuses = {v["status"] for doc in DOCUMENTS
                for v in json.loads(doc.with_name(doc.name + ".expected.json").read_text())["verdicts"]}
    assert statuses == {"correct", "incorrect", "unrecognized"}


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_corpus_document(doc):
    sidecar = json.loads(doc.with_name(doc.name + ".expected.json").read_text(encoding="utf-8"))
    report = check_file(doc, cell=sidecar["cell"])
    got = [(e.line, e.status) for e in report.equations]
    want = [(v["line"], v["status"]) for v in sidecar["verdicts"]]
    assert got == want, "\n".join("%d %s %s" % (e.line, e.status, e.message) for e in report.equations)
    for verdict, entry in zip(sidecar["verdicts"], report.equations, strict=True):
        if "message" in verdict:
            text = entry.message + " " + " ".join(entry.warnings)
            assert verdict["message"] in text, (doc.name, entry.line, entry.message)
        if entry.status == "incorrect":
            assert entry.expected, "an incorrect equation must show the expected formula"
