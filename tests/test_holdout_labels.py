"""The held-out notation corpus (tests/notation_holdout/). It holds derivations in notations
that differ from tests/notation_corpus/, written to measure how well the checker generalises,
and never tuned to it. Every label is proven by the independent NumPy reference
tests/notation_holdout/reference.py, which uses central finite differences on a hand-written
forward step and no lstmgen. This test runs that proof one document at a time, and it does not
import lstmgen."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
HOLDOUT = TESTS / "notation_holdout"


def _load_reference():
    name = "notation_holdout_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HOLDOUT / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _load_reference()


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return names


@pytest.mark.parametrize("path", [HOLDOUT / "reference.py", TESTS / "notation_corpus" / "reference.py"],
                         ids=["holdout", "corpus machinery"])
def test_reference_is_independent_of_lstmgen(path):
    assert _imports(path) <= {"__future__", "importlib", "json", "re", "sys", "pathlib", "numpy"}, _imports(path)


def test_corpus_as_a_whole():
    assert reference.corpus_problems() == []


def test_every_document_on_disk_is_registered():
    on_disk = sorted(p.name for p in HOLDOUT.iterdir() if p.suffix in (".md", ".tex") and p.name != "README.md")
    assert on_disk == sorted(doc.file for doc in reference.DOCUMENTS)
    assert len(on_disk) >= 10


def test_html_comments_are_not_equations():
    doc = next(d for d in reference.DOCUMENTS if d.file == "blog_concat.md")
    text = doc.path.read_text(encoding="utf-8")
    assert "<!--" in text
    comment = text[text.index("<!--"):text.index("-->")]
    assert "\\frac{\\partial E}{\\partial o_t}" in comment
    assert all(u["start"] < text.index("<!--") or u["start"] > text.index("-->") for u in reference.units(text))


@pytest.mark.parametrize("doc", reference.DOCUMENTS, ids=[d.file for d in reference.DOCUMENTS])
def test_labels_are_proven(doc):
    result = reference.prove(doc)
    assert result.ok, "\n".join(result.problems)
    assert len(result.equations) == len(doc.equations)
    assert 6 <= len(doc.equations) <= 12
    assert {eq.status for eq in result.equations} >= {"incorrect"}
