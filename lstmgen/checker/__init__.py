"""`lstmgen check`: one verdict per handwritten equation (correct, incorrect, unrecognized).

The stages, in the order a document meets them:

* extract.py   finds the equations of a Markdown or LaTeX document, with their lines (macros.py
               expands the document's TeX macros);
* learn.py     builds the document's `Notation` (notation.py): the cell its forward equations
               state (or --cell, or the default), how it writes that cell's symbols, its products
               and layout; definitions.py adds the names the document defines (δ_o = ...);
* parse.py     cuts each equation into sides with the grammar (grammars/authors.lark, extending
               latex.lark); reader.py reads them in that notation into nodes (nodes.py);
* judge.py     compares it with the derivation: targets.py says what its left side means,
               evaluation.py gives every side's values at the witness points (environment.py),
               symbolic.py asks SymPy, diagnose.py explains a difference, expected.py prints the
               right formula in the author's notation;
* report.py    prints the verdicts as text or JSON.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import cells
from ..errors import CellError, DocumentError
from . import definitions, extract, learn
from .judge import judge
from .report import EquationReport, FileReport, to_json, to_text

__all__ = ["check_text", "check_file", "run_check", "EquationReport", "FileReport"]

MAX_DOCUMENT_BYTES = 2_000_000
MAX_EQUATIONS = 2_000
SECONDS_PER_DOCUMENT = 120  # past this, the remaining equations are reported, not judged
SUFFIXES = (".md", ".tex", ".markdown")


def check_text(text: str, cell: str | None = None, source: str = "<text>") -> FileReport:
    """Judge every equation of `text` (Markdown or LaTeX) against the cell its forward equations
    state, or `cell` (a built-in name or a .cell file) when given, or the default lstm."""
    if cell is not None:
        cells.load(cell)  # CellError for an unknown cell, before anything is read
    if not isinstance(text, str):
        raise DocumentError("%s: the document must be text" % source)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise DocumentError("%s: larger than %d bytes" % (source, MAX_DOCUMENT_BYTES))
    if "\x00" in text:
        raise DocumentError("%s: a binary file, not a Markdown or LaTeX document" % source)
    tex = source.endswith(".tex") or r"\begin{document}" in text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    found, unterminated = extract.equations(text, tex=tex, inline=True)
    if len(found) > MAX_EQUATIONS:
        raise DocumentError("%s: more than %d equations" % (source, MAX_EQUATIONS))
    try:
        notation = learn.notation_of(found, cell, text)
    except (CellError, DocumentError):
        raise
    except Exception as exc:  # noqa: BLE001 - a document the learner cannot read is checked in the default notation
        notation = learn.notation_of([], cell, text)
        notation.notes.append("the forward equations could not be read (%s); the default cell is assumed"
                              % type(exc).__name__)
    report = FileReport(source, notation=notation)
    if not text.strip():
        report.equations.append(EquationReport(1, "", "unrecognized", "", "the document is empty"))
        return report
    try:
        defining = definitions.define_names(found, notation)
    except Exception as exc:  # noqa: BLE001 - names that cannot be read are left undefined, and say so
        defining = {}
        notation.notes.append("the names the document defines could not be read (%s)" % type(exc).__name__)
    deadline = time.monotonic() + SECONDS_PER_DOCUMENT
    for index, eq in enumerate(found):
        if notation.origin == "learned" and eq.line in notation.forward:
            report.equations.append(EquationReport(eq.line, eq.text.split("=")[0].strip()[:200], "correct", "",
                                                   "a forward equation: the cell was learned from it", kind="forward"))
            continue
        if time.monotonic() > deadline:
            report.equations.append(EquationReport(eq.line, "", "unrecognized", "",
                                                   "not judged: the document took longer than %d s"
                                                   % SECONDS_PER_DOCUMENT))
            continue
        verdict = judge(eq.text, notation, defining.get(index, ""))
        if verdict is None or eq.inline and not (verdict.claim and verdict.status != "unrecognized"):
            continue  # inline math is prose unless it is a derivative claim the checker can read
        report.equations.append(EquationReport(eq.line, verdict.lhs, verdict.status, verdict.expected,
                                               verdict.message, list(verdict.warnings),
                                               kind="definition" if index in defining else "backward"))
    for line in unterminated:
        report.equations.append(EquationReport(line, "", "unrecognized", "",
                                               "a display-math block opened here is never closed"))
    if not report.equations:
        report.equations.append(EquationReport(
            1, "", "unrecognized", "", "no display equations found (write them in $$...$$, \\[...\\] or an "
            "equation/align environment)"))
    report.equations.sort(key=lambda e: e.line)
    return report


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentError("%s: larger than %d bytes" % (path, MAX_DOCUMENT_BYTES))
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError("%s: cannot read it (%s)" % (path, exc.strerror or exc)) from None
    if b"\x00" in raw:
        raise DocumentError("%s: a binary file, not a Markdown or LaTeX document" % path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError("%s: not UTF-8 text" % path) from None


def check_file(path, cell: str | None = None) -> FileReport:
    path = Path(path)
    return check_text(_read(path), cell=cell, source=str(path))


def _documents(paths: list) -> list[Path]:
    out = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise DocumentError("%s: a folder with no .md or .tex documents" % name)
            out.extend(found)
        elif path.is_file():
            out.append(path)
        elif path.exists():
            raise DocumentError("%s: not a regular file" % name)
        else:
            raise DocumentError("%s: no such file or folder" % name)
    if not out:
        raise DocumentError("no documents to check")
    return out


def run_check(paths: list, cell: str | None = None, as_json: bool = False) -> int:
    """The `lstmgen check` command.

    Exit code 0 when every equation of every document is correct, 1 when any is incorrect or
    unrecognized; an unusable single document raises DocumentError (the CLI's exit 2).  With
    several documents (a class's submissions) an unreadable one becomes an 'unrecognized' entry
    so that the others are still checked."""
    if cell is not None:
        cells.load(cell)
    documents = _documents(list(paths))
    several = len(documents) > 1 or any(Path(p).is_dir() for p in paths)
    reports = []
    for path in documents:
        try:
            reports.append(check_file(path, cell))
        except DocumentError as exc:
            if not several:
                raise
            reports.append(FileReport(str(path), [EquationReport(1, "", "unrecognized", "", str(exc))]))
    sys.stdout.write(to_json(reports, several) if as_json else to_text(reports))
    sys.stdout.flush()
    return max(r.exit_code for r in reports)
