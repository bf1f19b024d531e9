"""Reports of `lstmgen check`: per-equation verdicts as objects, JSON and a human summary."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

STATUSES = ("correct", "incorrect", "unrecognized")


@dataclass
class EquationReport:
    """One equation's verdict; line is the 1-based line where the equation starts."""

    line: int
    lhs: str
    status: str
    expected: str = ""
    message: str = ""
    warnings: list = field(default_factory=list)
    kind: str = "backward"  # backward | definition (a name the document defines) | forward (the cell's own)

    def to_dict(self) -> dict:
        return {"line": self.line, "lhs": self.lhs, "status": self.status, "kind": self.kind,
                "expected": self.expected, "message": self.message, "warnings": list(self.warnings)}


@dataclass
class FileReport:
    """All verdicts on one document."""

    file: str
    equations: list = field(default_factory=list)
    notation: object = None  # the checker's Notation: the cell used and how the document was read

    @property
    def summary(self) -> dict:
        return {k: sum(1 for e in self.equations if e.status == k) for k in STATUSES}

    @property
    def exit_code(self) -> int:
        """0 when every equation is correct, 1 otherwise (incorrect or unrecognized)."""
        return 0 if all(e.status == "correct" for e in self.equations) else 1

    def to_dict(self) -> dict:
        out = {"file": shown(self.file)}
        if self.notation is not None:
            out["cell"] = self.notation.to_dict()
        out.update({"equations": [e.to_dict() for e in self.equations], "summary": self.summary})
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FileReport":
        """The report that `to_dict` gave (from a cache, a JSON Lines file or a Dask worker); its
        notation is the stored record of the original, enough for every output."""
        equations = [EquationReport(e["line"], e["lhs"], e["status"], e.get("expected", ""), e.get("message", ""),
                                    list(e.get("warnings", [])), e.get("kind", "backward"))
                     for e in data["equations"]]
        notation = StoredNotation(data["cell"]) if data.get("cell") is not None else None
        return cls(data["file"], equations, notation)

    def to_json(self) -> str:
        """The report as `lstmgen check --json` prints it for one file."""
        return to_json([self], as_list=False)

    # ---- notebook displays: one row per equation, the formulas as math -----------------------
    def _repr_markdown_(self) -> str:
        counts = ", ".join("%d %s" % (n, status) for status, n in self.summary.items())
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
        counts = ", ".join("%d %s" % (n, status) for status, n in self.summary.items())
        return ("<p><b>%s</b>: %s</p><table><tr><th>line</th><th>equation</th><th>verdict</th><th>message</th></tr>"
                "%s</table>" % (html.escape(shown(self.file)), counts, body))


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


def to_json(reports: list, as_list: bool) -> str:
    data = [r.to_dict() for r in reports] if as_list else reports[0].to_dict()
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


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
        s = report.summary
        lines.append("%s: %d correct, %d incorrect, %d unrecognized" % (
            name, s["correct"], s["incorrect"], s["unrecognized"]))
        lines.append("")
    if len(reports) > 1:
        width = max(len("file"), *(len(shown(r.file)) for r in reports))
        lines.append("%-*s  %7s  %9s  %12s" % (width, "file", "correct", "incorrect", "unrecognized"))
        for r in reports:
            s = r.summary
            lines.append("%-*s  %7d  %9d  %12d" % (width, shown(r.file), s["correct"], s["incorrect"], s["unrecognized"]))
        lines.append("")
    return "\n".join(lines)
