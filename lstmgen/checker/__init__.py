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
* report.py    prints the verdicts as text or JSON (notes.py: the answer notes' codes), with
               scores; gradebook.py writes a CSV gradebook and Gradescope's results.json, and
               summary.py the teacher's view of a class (which mistakes, how many students).

batch.py checks many documents (a class) in parallel, streamed, sharded and cached
(results_cache.py); merge.py joins the JSON Lines of shards.

bounds.py keeps the time and memory limits of all of it: a budget the steps check cooperatively,
and a worker process that is killed past a limit (README, "Limits").
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import cells
from ..errors import CellError, DocumentError
from . import bounds, definitions, extract, learn
from .bounds import OutOfTime, Phase
from .judge import judge
from .report import EquationReport, FileReport

__all__ = ["check_text", "check_file", "check_all", "run_check", "EquationReport", "FileReport"]

MAX_DOCUMENT_BYTES = 2_000_000
MAX_EQUATIONS = 2_000
SECONDS_PER_DOCUMENT = bounds.SECONDS_PER_DOCUMENT  # past this, the remaining equations are reported, not judged


def check_text(text: str, cell: str | None = None, source: str = "<text>") -> FileReport:
    """Judge every equation of `text` (Markdown or LaTeX) against the cell its forward equations
    state, or `cell` (a built-in name or a .cell file) when given, or the default lstm.

    Within the limits of `bounds` (README, "Limits"): an equation that takes longer than its
    limit is reported as given up, those left when the document's limit passes as not judged."""
    if cell is not None:
        cells.load(cell)  # CellError for an unknown cell, before anything is read
    if not isinstance(text, str):
        raise DocumentError("%s: the document must be text" % source)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise DocumentError("%s: larger than %d bytes" % (source, MAX_DOCUMENT_BYTES))
    if "\x00" in text:
        raise DocumentError("%s: a binary file, not a Markdown or LaTeX document" % source)
    per_equation, per_document = bounds.seconds_per_equation(), bounds.seconds_per_document()
    progress = _Progress()
    started = time.monotonic()
    while not progress.overrun and progress.unfinished():
        left = per_document - (time.monotonic() - started)
        lost = bounds.run(_check, (text, cell, source, progress.resumed(), per_equation, left), progress.take, left)
        if lost is None:
            break
        if lost.why == "document" or not progress.lose(lost, per_equation):
            progress.overrun = True
            break
    return progress.report(source, text, cell, per_document)


@dataclass
class _Learned:
    """The event that carries the notation and the names the document defines (the notation is
    left out when it cannot be pickled, e.g. holding a cell file's own functions)."""

    notation: object
    notes: list
    defining: dict

    def without_unpicklable(self):
        return _Learned(None, list(self.notes), self.defining)


@dataclass
class _Progress:
    """What a check has found so far, from the events of `_check`: enough to resume it in a new
    worker after one was lost (at the equations with no entry yet, without reading the document
    again when its equations had arrived)."""

    found: list | None = None      # the document's extract.Equations
    unterminated: list = field(default_factory=list)
    learned: _Learned | None = None
    entries: dict = field(default_factory=dict)  # index -> EquationReport, or None: not reported
    given_up: dict = field(default_factory=dict)  # index -> why, of the equations a lost worker was judging
    done: frozenset = frozenset()  # in a resumed check: the indices that have their entries
    skip: dict = field(default_factory=dict)     # a phase lost once ("learning", "definitions") -> why
    empty: bool = False
    overrun: bool = False          # the document's limit passed

    def take(self, event) -> None:
        if isinstance(event, _Learned):
            self.learned = event
        elif isinstance(event, Phase):
            pass  # its limit is the worker's business (bounds.py)
        elif event[0] == "equations":
            self.found, self.unterminated = event[1], event[2]
        elif event[0] == "entry":
            self.entries[event[1]] = event[2]
        elif event[0] == "empty":
            self.empty = True
        elif event[0] == "overrun":
            self.overrun = True

    def unfinished(self) -> bool:
        return self.found is None or len(self.entries.keys() | self.given_up.keys()) < len(self.found)

    def resumed(self) -> "_Progress":
        """What the next worker needs (the notation only where it could be pickled)."""
        learned = self.learned if self.learned is not None and self.learned.notation is not None else None
        return _Progress(self.found, self.unterminated, learned, done=frozenset(self.entries.keys() | self.given_up.keys()), skip=dict(self.skip))

    def lose(self, lost: bounds.Lost, per_equation: float) -> bool:
        """Record the phase a killed or dead worker lost; False when there is nothing to resume."""
        why = ("they took longer than %g s" % per_equation if lost.why == "time"
               else "they needed more than %d MB of memory" % (bounds.MAX_MEMORY_BYTES // 1_000_000))
        if isinstance(lost.key, tuple):  # ("equation", index); its line is known once the equations are
            self.given_up[lost.key[1]] = ("gave up after %g s on this equation" % per_equation if lost.why == "time"
                                          else "gave up on this equation: it needs more than %d MB of memory"
                                          % (bounds.MAX_MEMORY_BYTES // 1_000_000))
            return True
        if lost.key in ("learning", "definitions"):
            self.skip[lost.key] = why
            return True
        return False  # lost while reading the document

    def report(self, source: str, text: str, cell, per_document: float) -> FileReport:
        if self.learned is not None and self.learned.notation is not None:
            notation = self.learned.notation
        else:  # never learned, or not picklable: the --cell option's (or the default) notation
            notation = learn.notation_of([], cell, text)
            notation.notes = list(self.learned.notes) if self.learned is not None else []
        report = FileReport(source, notation=notation)
        if self.empty:
            report.equations.append(EquationReport(1, "", "unrecognized", "", "the document is empty"))
            return report
        not_judged = "not judged: the document took longer than %g s" % per_document
        for index, eq in enumerate(self.found or ()):
            if index in self.given_up:
                report.equations.append(EquationReport(eq.line, "", "unrecognized", "", self.given_up[index]))
            elif index in self.entries:
                if self.entries[index] is not None:
                    report.equations.append(self.entries[index])
            elif self.overrun and not eq.inline:
                report.equations.append(EquationReport(eq.line, "", "unrecognized", "", not_judged))
        if self.overrun and self.found is None:
            report.equations.append(EquationReport(1, "", "unrecognized", "", not_judged))
        for line in self.unterminated:
            report.equations.append(EquationReport(line, "", "unrecognized", "",
                                                   "a display-math block opened here is never closed"))
        if not report.equations:
            report.equations.append(EquationReport(
                1, "", "unrecognized", "", "no display equations found (write them in $$...$$, \\[...\\] or an "
                "equation/align environment)"))
        report.equations.sort(key=lambda e: e.line)
        return report


def _check(emit, text, cell, source, progress: _Progress, per_equation: float, left: float) -> None:
    """The check itself, in the worker or here, from where `progress` stands: emits
    ("equations", found, unterminated), a _Learned, and ("entry", index, EquationReport | None)
    per equation; the learning, the definitions and each equation judged open a Phase first;
    ("overrun",) when the document's limit passes."""
    with bounds.limit(left, "document") as document:
        try:
            _check_from(emit, text, cell, source, progress, per_equation)
        except OutOfTime as exc:
            if exc.limit is not document:
                raise
            emit(("overrun",))


def _check_from(emit, text, cell, source, progress: _Progress, per_equation: float) -> None:
    tex = source.endswith(".tex") or r"\begin{document}" in text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    found = progress.found
    if found is None:
        found, unterminated = extract.equations(text, tex=tex, inline=True, most=MAX_EQUATIONS)
        if len(found) > MAX_EQUATIONS:
            raise DocumentError("%s: more than %d equations" % (source, MAX_EQUATIONS))
        emit(("equations", found, unterminated))
    learned = progress.learned
    if learned is None:
        notation = _notation(emit, found, cell, text, progress.skip, per_equation)
        if not text.strip():
            emit(_Learned(notation, notation.notes, {}))
            emit(("empty",))
            return
        defining = _definitions(emit, found, notation, progress.skip, per_equation)
        learned = _Learned(notation, notation.notes, defining)
        emit(learned)
    notation, defining = learned.notation, learned.defining
    for index, eq in enumerate(found):
        if index in progress.done:
            continue
        if eq.line in notation.forward:  # the cell was learned from them, or proven the given one's
            why = "the cell was learned from it" if notation.origin == "learned" and not notation.given else \
                "the given cell's, in the document's notation"
            emit(("entry", index, EquationReport(eq.line, eq.text.split("=")[0].strip()[:200], "correct", "",
                                                 "a forward equation: " + why, kind="forward")))
            continue
        emit(Phase(("equation", index), per_equation))
        verdict = judge(eq.text, notation, defining.get(index, ""), seconds=per_equation)
        if verdict is None or eq.inline and not (verdict.claim and verdict.status != "unrecognized"):
            emit(("entry", index, None))  # inline math is prose unless it is a derivative claim the checker can read
            continue
        emit(("entry", index, EquationReport(eq.line, verdict.lhs, verdict.status, verdict.expected, verdict.message,
                                             list(verdict.warnings),
                                             kind="definition" if index in defining else
                                             "forward" if verdict.forward else "backward",
                                             notes=list(verdict.notes))))


def _notation(emit, found, cell, text, skip: dict, per_equation: float):
    """The document's notation (learn.py), or the default one with a note saying why."""
    why = skip.get("learning")
    if why is None:
        emit(Phase("learning", per_equation))
        try:
            with bounds.limit(per_equation, "learning") as mine:
                return learn.notation_of(found, cell, text)
        except (CellError, DocumentError):
            raise
        except OutOfTime as exc:
            if exc.limit is not mine:
                raise
            why = "they took longer than %g s" % per_equation
        except Exception as exc:  # noqa: BLE001 - a document the learner cannot read is checked in the default notation
            why = type(exc).__name__
    notation = learn.notation_of([], cell, text)
    notation.notes.append("the forward equations could not be read (%s); the default cell is assumed" % why)
    return notation


def _definitions(emit, found, notation, skip: dict, per_equation: float) -> dict:
    """{index: name} of the equations that define a name (definitions.py), or none, with a note."""
    why = skip.get("definitions")
    if why is None:
        emit(Phase("definitions", per_equation))
        try:
            with bounds.limit(per_equation, "definitions") as mine:
                return definitions.define_names(found, notation)
        except OutOfTime as exc:
            if exc.limit is not mine:
                raise
            why = "they took longer than %g s" % per_equation
        except Exception as exc:  # noqa: BLE001 - names that cannot be read are left undefined, and say so
            why = type(exc).__name__
    notation.notes.append("the names the document defines could not be read (%s)" % why)
    return {}


STDIN = "-"  # the file name that reads standard input
STDIN_SOURCE = "<stdin>"  # how its report names it


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise DocumentError("%s: larger than %d bytes" % (path, MAX_DOCUMENT_BYTES))
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)  # no more, should it grow after the stat
    except OSError as exc:
        raise DocumentError("%s: cannot read it (%s)" % (path, exc.strerror or exc)) from None
    return _decoded(raw, str(path))


def read_stdin() -> str:
    """The document on standard input (`lstmgen check -`), within the same bounds as a file's."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise DocumentError("%s: no standard input to read" % STDIN_SOURCE)
    try:
        raw = stream.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise DocumentError("%s: cannot read it (%s)" % (STDIN_SOURCE, exc.strerror or exc)) from None
    return _decoded(raw, STDIN_SOURCE)


def _decoded(raw: bytes, name: str) -> str:
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise DocumentError("%s: larger than %d bytes" % (name, MAX_DOCUMENT_BYTES))
    if b"\x00" in raw:
        raise DocumentError("%s: a binary file, not a Markdown or LaTeX document" % name)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError("%s: not UTF-8 text" % name) from None


def check_file(path, cell: str | None = None) -> FileReport:
    path = Path(path)
    return check_text(_read(path), cell=cell, source=str(path))


def check_all(paths: list, cell: str | None = None) -> list[FileReport]:
    """The reports on the documents of `paths` (files, folders of .md/.tex), one after another in
    this process (`lstmgen check` uses batch.run's pool).  An unusable single document raises
    DocumentError; of several, an unreadable one becomes an 'unrecognized' entry."""
    from .batch import find

    if cell is not None:
        cells.load(cell)
    documents, several = find(list(paths))
    reports = []
    for document in documents:
        try:
            text = document.text if document.text is not None else _read(document.path)
            reports.append(check_text(text, cell=cell, source=str(document.path)))
        except DocumentError as exc:
            if not several:
                raise
            reports.append(FileReport(str(document.path), [EquationReport(1, "", "unrecognized", "", str(exc))]))
    return reports


def run_check(paths: list, cell: str | None = None, as_json: bool = False, **options) -> int:
    """The `lstmgen check` command (batch.run: the options --jobs, --jsonl, --shard, --cache and
    --scheduler).  Exit code 0 when every equation of every document is correct, 1 when any is
    incorrect or unrecognized, 130 when interrupted; an unusable single document raises
    DocumentError (the CLI's exit 2)."""
    from . import batch

    return batch.run(paths, cell, output="json" if as_json else options.pop("output", "text"), **options)
