"""The blind notation corpus (tests/notation_blind/). Its eight derivations are written in
notations that differ from tests/notation_corpus/ and tests/notation_holdout/, and the checker
was never run on them while they were written. Every label is proven by the independent NumPy
reference tests/notation_blind/reference.py, which uses central finite differences on a
hand-written forward step and no lstmgen. This test runs that proof one document at a time. It
does not import lstmgen."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
BLIND = TESTS / "notation_blind"


def _load_reference():
    name = "notation_blind_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BLIND / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _load_reference()
DOCS = {doc.file: doc for doc in reference.DOCUMENTS}


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return names


@pytest.mark.parametrize("path", [BLIND / "reference.py", TESTS / "notation_corpus" / "reference.py",
                                  Path(__file__)], ids=["blind", "corpus machinery", "this test"])
def test_nothing_here_imports_lstmgen(path):
    allowed = {"__future__", "ast", "importlib", "json", "re", "subprocess", "sys", "pathlib", "numpy", "pytest"}
    assert _imports(path) <= allowed, _imports(path)


def test_corpus_as_a_whole():
    assert reference.corpus_problems() == []


def test_every_document_on_disk_is_registered_and_listed_in_the_readme():
    on_disk = sorted(p.name for p in BLIND.iterdir() if p.suffix in (".md", ".tex") and p.name != "README.md")
    assert on_disk == sorted(DOCS)
    assert len(on_disk) >= 8
    readme = (BLIND / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert sorted(row.split("`")[1] for row in rows) == on_disk


def test_no_document_is_named_like_one_of_the_other_corpora():
    for folder in ("notation_corpus", "notation_holdout"):
        assert not set(DOCS) & {p.name for p in (TESTS / folder).iterdir()}


def test_code_is_not_math():
    """R chunks with `$` (`toy$x, y = toy$y`) and code spans like `fit$W_f` hold no equation."""
    doc = DOCS["vignette_bold.md"]
    text = doc.path.read_text(encoding="utf-8")
    assert "y = toy$y" in text and "`fit$W_f`" in text
    chunks = [(m.start(), m.end()) for m in reference.CODE_FENCE.finditer(text)]
    assert len(chunks) == 3
    spans = chunks + [(m.start(), m.end()) for m in reference.CODE_SPAN.finditer(text)]
    assert all(not a <= u["start"] < b for u in reference.doc_units(doc) for a, b in spans)


def test_tex_comments_are_not_math():
    doc = DOCS["thesis_delta.tex"]
    text = doc.path.read_text(encoding="utf-8")
    comment = next(line for line in text.splitlines() if line.startswith("% TODO"))
    assert "\\Delta\\mathbf{b}_{o} =" in comment
    start = text.index(comment)
    assert all(not start <= u["start"] < start + len(comment) for u in reference.doc_units(doc))


def test_the_qa_answer_is_inline_only():
    units = reference.doc_units(DOCS["qa_inline.md"])
    assert units and all(u["inline"] for u in units)


@pytest.mark.parametrize("doc", reference.DOCUMENTS, ids=[d.file for d in reference.DOCUMENTS])
def test_labels_are_proven(doc):
    result = reference.prove(doc)
    assert result.ok, "\n".join(result.problems)
    assert len(result.equations) == len(doc.equations)
    assert 6 <= len(doc.equations) <= 12
    assert {eq.status for eq in result.equations} >= {"incorrect"}


def test_the_script_prints_one_line_and_never_loads_lstmgen():
    code = ("import runpy, sys\n"
            f"module = runpy.run_path({str(BLIND / 'reference.py')!r})\n"
            "rc = module['main']([])\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'lstmgen'], 'lstmgen was imported'\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith("all labels proven"), proc.stdout
