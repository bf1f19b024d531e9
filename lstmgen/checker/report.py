"""Reports of `lstmgen check`: per-equation verdicts as objects, the versioned JSON report
(`envelope`, described by lstmgen/schemas/check-report.schema.json) and a human summary.

Scores: a backward or definition equation scores 1 when correct and 0 when incorrect; an
unrecognized one has no score (it is counted apart, so that a notation the checker cannot read
never costs marks silently), nor has a forward equation (one the cell was learned from, or one
judged against --cell's cell: a premise of the derivation, not a derivative claim).  A document's `score` is its points, `possible` the equations scored,
`fraction` their ratio (null when nothing was scored).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from importlib import resources

from .notes import Note

STATUSES = ("correct", "incorrect", "unrecognized")
SCHEMA, VERSION = "lstmgen-check", 2  # the report's "schema" and "version" fields


@dataclass
class EquationReport:
    """One equation's verdict; line is the 1-based line where the equation starts."""

    line: int
    lhs: str
    status: str
    expected: str = ""
    message: str = ""
    warnings: list = field(default_factory=list)
    kind: str = "backward"  # backward | definition (a name the document defines) | forward (one of the cell's)
    notes: list = field(default_factory=list)  # notes.Note per diagnosed mistake (an incorrect verdict's)

    def answer_notes(self) -> list:
        """The notes as reported: none when correct, one 'unrecognized' note when not judged, and
        'unknown' for an incorrect verdict that nothing explained."""
        if self.status == "correct":
            return []
        if self.status == "unrecognized":
            return [Note("unrecognized", self.message)]
        return list(self.notes) or [Note("unknown", self.message)]

    def to_dict(self) -> dict:
        return {"line": self.line, "lhs": self.lhs, "status": self.status, "kind": self.kind,
                "score": score_of(self.status, self.kind), "expected": self.expected, "message": self.message,
                "notes": [n.to_dict() for n in self.answer_notes()], "warnings": list(self.warnings)}


def score_of(status: str, kind: str) -> int | None:
    """An equation's score: 1 correct, 0 incorrect, None unrecognized or a forward equation."""
    if kind == "forward" or status == "unrecognized":
        return None
    return 1 if status == "correct" else 0


def tally(equations: list) -> dict:
    """A summary of equation dicts (`EquationReport.to_dict`): how many have each status, the
    forward equations (not scored), and the score over the rest."""
    counts = {k: sum(1 for e in equations if e["status"] == k) for k in STATUSES}
    scores = [score_of(e["status"], e.get("kind", "backward")) for e in equations]
    scored = [s for s in scores if s is not None]
    counts.update(forward=sum(1 for e in equations if e.get("kind") == "forward"), score=sum(scored),
                  possible=len(scored), fraction=round(sum(scored) / len(scored), 4) if scored else None)
    return counts


@dataclass
class FileReport:
    """All verdicts on one document."""

    file: str
    equations: list = field(default_factory=list)
    notation: object = None  # the checker's Notation: the cell used and how the document was read

    @property
    def summary(self) -> dict:
        """Counts per status, forward equations, score, possible and fraction (see `tally`)."""
        return tally([e.to_dict() for e in self.equations])

    @property
    def exit_code(self) -> int:
        """0 when every equation is correct, 1 otherwise (incorrect or unrecognized)."""
        return 0 if all(e.status == "correct" for e in self.equations) else 1

    def to_dict(self) -> dict:
        out = {"file": shown(self.file)}
        if self.notation is not None:
            out["cell"] = self.notation.to_dict()
        equations = [e.to_dict() for e in self.equations]
        out.update({"equations": equations, "summary": tally(equations)})
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FileReport":
        """The report that `to_dict` gave (from a cache, a JSON Lines file or a Dask worker); its
        notation is the stored record of the original, enough for every output."""
        equations = [EquationReport(e["line"], e["lhs"], e["status"], e.get("expected", ""), e.get("message", ""),
                                    list(e.get("warnings", [])), e.get("kind", "backward"),
                                    _stored_notes(e))
                     for e in data["equations"]]
        notation = StoredNotation(data["cell"]) if data.get("cell") is not None else None
        return cls(data["file"], equations, notation)

    def to_json(self) -> str:
        """The report as `lstmgen check --json` prints it for one file."""
        return to_json([self])

    # ---- notebook displays: one row per equation, the formulas as math -----------------------
    def _repr_markdown_(self) -> str:
        counts = _counts(self.summary)
        rows = ["**%s**: %s" % (_markdown_text(shown(self.file)), counts), "",
                "| line | equation | verdict | what is wrong, and the right formula |", "| --- | --- | --- | --- |"]
        for e in self.equations:
            expected = " expected: $%s$" % _math(e.expected) if e.expected and e.status != "correct" else ""
            rows.append("| %d | $%s$ | %s | %s%s |" % (e.line, _math(e.lhs), e.status, _markdown_text(e.message),
                                                      expected))
        return "\n".join(rows) + "\n"

    def _repr_html_(self) -> str:
        import html

        body = "".join("<tr><td>%d</td><td>$%s$</td><td>%s</td><td>%s</td></tr>" % (
            e.line, html.escape(e.lhs), e.status, html.escape(e.message)) for e in self.equations)
        counts = _counts(self.summary)
        return ("<p><b>%s</b>: %s</p><table><tr><th>line</th><th>equation</th><th>verdict</th><th>message</th></tr>"
                "%s</table>" % (html.escape(shown(self.file)), counts, body))


def _counts(summary: dict) -> str:
    """'38 correct, 3 incorrect, 0 unrecognized; score 38/41'."""
    counts = ", ".join("%d %s" % (summary[status], status) for status in STATUSES)
    return counts + ("; score %d/%d" % (summary["score"], summary["possible"]) if summary["possible"] else "")


def _stored_notes(equation: dict) -> list:
    """The diagnosed notes of a stored incorrect equation (answer_notes adds the rest again)."""
    notes = [Note(n["code"], n["text"], n.get("link", 1)) for n in equation.get("notes", [])]
    if equation["status"] != "incorrect" or [n.code for n in notes] == ["unknown"]:
        return []
    return notes


@dataclass
class StoredNotation:
    """A notation as `Notation.to_dict()` wrote it: what the reports print of one."""

    data: dict

    @property
    def origin(self) -> str:
        return self.data["source"]

    @property
    def notes(self) -> list:
        return list(self.data["notation"]["assumptions"])

    def describe(self) -> str:
        return self.data["description"]

    def symbol_map(self) -> dict:
        return dict(self.data["notation"]["symbols"])

    def to_dict(self) -> dict:
        return self.data


def _cell(text: str) -> str:
    """Text inside a Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _math(latex: str) -> str:
    """A document's formula between $ signs in Markdown: it cannot close the math, the table cell or
    open HTML (<, > as \\lt, \\gt)."""
    return _cell(latex).replace("$", r"\$").replace("<", r"\lt ").replace(">", r"\gt ")


def _markdown_text(text: str) -> str:
    """Prose from a document or a message, inert in Markdown (no markup, no HTML)."""
    out = _cell(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]#":
        out = out.replace(ch, "\\" + ch)
    return out


def shown(name: str) -> str:
    """A file name as printable text: the bytes of a name that is not UTF-8 (which Python keeps
    as surrogate escapes) written as \\xNN."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate of another kind
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def envelope(documents: list) -> dict:
    """The report of one check, whatever was checked: {"schema", "version", "summary",
    "documents"} from per-document dicts (`FileReport.to_dict`, or lines of a JSON Lines stream).
    With exactly one document the top level carries its fields too ("file", "cell", "equations").
    The summary counts the equations of all documents (`tally`) and the documents."""
    out = {"schema": SCHEMA, "version": VERSION}
    if len(documents) == 1:
        out.update((key, value) for key, value in documents[0].items() if key != "summary")
    out["summary"] = dict(tally([e for document in documents for e in document["equations"]]),
                          documents=len(documents))
    out["documents"] = list(documents)
    return out


_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_line(data) -> str:
    """`data` as one line of JSON Lines, its newline included.  JSON may hold U+0085, U+2028 and
    U+2029 raw, but Python's str.splitlines (and JavaScript before ES2019) end a line there: they
    are escaped, as the control characters are."""
    text = json.dumps(data, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text + "\n"


def to_json(reports: list) -> str:
    """`lstmgen check --json`: the envelope of the reports, one or many."""
    return json.dumps(envelope([r.to_dict() for r in reports]), indent=2, ensure_ascii=False) + "\n"


def json_schema(name: str = "check-report") -> dict:
    """A JSON Schema shipped in the package (lstmgen/schemas/NAME.schema.json): check-report (this
    module's report) or check-summary (`lstmgen summary --json`, which refers to the report's by $id)."""
    return json.loads(resources.files("lstmgen").joinpath("schemas", name + ".schema.json").read_text("utf-8"))


def _marks() -> dict:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
        return {"correct": "✓", "incorrect": "✗", "unrecognized": "?"}
    except (UnicodeEncodeError, LookupError):
        return {"correct": "ok", "incorrect": "X", "unrecognized": "?"}


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def to_text(reports: list) -> str:
    """file:line, a mark, the left side; for ✗ the diagnosis and the expected formula."""
    marks = _marks()
    lines = []
    for report in reports:
        name = shown(report.file)
        if report.notation is not None:
            lines.append("%s: %s" % (name, report.notation.describe()))
            if report.notation.origin == "learned":
                symbol_map = report.notation.symbol_map()
                parts = ["%s → %s" % (k, v) for k, v in symbol_map.items() if not v.startswith("parameter")]
                parameters = [k for k, v in symbol_map.items() if v.startswith("parameter")]
                if parameters:
                    parts.append("parameters " + " ".join(parameters))
                lines.append("    read: %s" % _short(", ".join(parts), 300))
            for note in report.notation.notes:
                lines.append("    %s" % note)
        for e in report.equations:
            lines.append("%s:%d: %s %s" % (name, e.line, marks[e.status], _short(e.lhs)))
            if e.status != "correct":
                lines.append("    %s" % e.message)
                if e.status == "incorrect" and e.expected:
                    lines.append("    expected: %s" % e.expected)
            for w in e.warnings:
                if w not in e.message or e.status == "correct":
                    lines.append("    %s" % w)
        lines.append("%s: %s" % (name, _counts(report.summary)))
        lines.append("")
    if len(reports) > 1:
        width = max(len("file"), *(len(shown(r.file)) for r in reports))
        lines.append("%-*s  %7s  %9s  %12s  %7s" % (width, "file", "correct", "incorrect", "unrecognized", "score"))
        for r in reports:
            s = r.summary
            lines.append("%-*s  %7d  %9d  %12d  %7s" % (width, shown(r.file), s["correct"], s["incorrect"],
                                                      s["unrecognized"], "%d/%d" % (s["score"], s["possible"])))
        lines.append("")
    return "\n".join(lines)
