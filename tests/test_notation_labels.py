"""The notation corpus (tests/notation_corpus/): handwritten LSTM-style derivations in other
people's notations, each with a sidecar of labels.  Every label is proven by the independent
NumPy reference tests/notation_corpus/reference.py (central finite differences on a hand-written
forward step, no lstmgen); this test runs that proof, one document at a time."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent / "notation_corpus"


def _load_reference():
    name = "notation_corpus_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CORPUS / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _load_reference()


def test_reference_is_independent_of_lstmgen():
    tree = ast.parse((CORPUS / "reference.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "json", "re", "sys", "pathlib", "numpy"}, imported


def test_corpus_as_a_whole():
    assert reference.corpus_problems() == []


@pytest.mark.parametrize("doc", reference.DOCUMENTS, ids=[d.file for d in reference.DOCUMENTS])
def test_labels_are_proven(doc):
    result = reference.prove(doc)
    assert result.ok, "\n".join(result.problems)
    assert len(result.equations) == len(doc.equations)
    assert {eq.status for eq in result.equations} >= {"incorrect"}
