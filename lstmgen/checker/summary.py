"""`lstmgen summary`: the teacher's view of a class, from per-document report dicts: for every
answer note, how many students (documents) and equations it was found in, which equations (their
left sides as written), and one example line.

Reports are read from `lstmgen check --json` files (the version-2 envelope, or a bare document
dict) and JSON Lines (one of either per line); they are untrusted input like the documents, so
each is parsed with `json` and checked field by field, and a bad one is one line naming the file
and the place.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from ..errors import DocumentError
from .notes import CODES, MEANINGS
from .report import SCHEMA, STATUSES, VERSION, tally

SUMMARY_SCHEMA, SUMMARY_VERSION = "lstmgen-summary", 1
REPORT_SUFFIXES = (".json", ".jsonl")
MAX_REPORT_BYTES = 500_000_000
SHOWN_EQUATIONS = 5  # the equations listed per note, most students first


def _fail(where: str, problem: str):
    raise DocumentError("%s: %s" % (where, problem))


def _check_document(document, where: str) -> dict:
    """`document` when it has what a summary reads (file, equations with line, lhs, status, notes)."""
    if not isinstance(document, dict) or not isinstance(document.get("file"), str) \
            or not isinstance(document.get("equations"), list):
        _fail(where, "not a document of an lstmgen check report (it needs a file and a list of equations)")
    for n, e in enumerate(document["equations"]):
        place = "%s: equations[%d]" % (where, n)
        if not isinstance(e, dict):
            _fail(place, "not an object")
        if not isinstance(e.get("line"), int) or isinstance(e.get("line"), bool) or e["line"] < 1:
            _fail(place, "line must be an integer from 1")
        if not isinstance(e.get("lhs"), str) or not isinstance(e.get("message", ""), str):
            _fail(place, "lhs and message must be text")
        if e.get("status") not in STATUSES:
            _fail(place, "status must be one of %s" % ", ".join(STATUSES))
        if e.get("kind", "backward") not in ("backward", "definition", "forward"):
            _fail(place, "kind must be backward, definition or forward")
        notes = e.get("notes")
        if not isinstance(notes, list) or not all(isinstance(note, dict) and note.get("code") in CODES
                                                  and isinstance(note.get("text", ""), str) for note in notes):
            _fail(place, "notes must be a list of answer notes with known codes")
    return document


def documents_of(data, where: str) -> list:
    """The documents of one parsed report: an envelope's, or a document dict itself."""
    if isinstance(data, dict) and "schema" in data:
        if data.get("schema") != SCHEMA or data.get("version") != VERSION:
            _fail(where, "a report of schema %r version %r; this lstmgen reads %s version %d"
                  % (data.get("schema"), data.get("version"), SCHEMA, VERSION))
        if not isinstance(data.get("documents"), list):
            _fail(where, "the report has no list of documents")
        return [_check_document(d, "%s: documents[%d]" % (where, n)) for n, d in enumerate(data["documents"])]
    return [_check_document(data, where)]


def read_report(path: Path) -> list:
    """The documents of a .json report or a .jsonl stream (blank lines skipped)."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            _fail(str(path), "larger than %d bytes" % MAX_REPORT_BYTES)
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        _fail(str(path), "cannot read it (%s)" % (exc.strerror or exc))
    except UnicodeDecodeError:
        _fail(str(path), "not UTF-8 text")
    chunks = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()] \
        if path.suffix.lower() == ".jsonl" else [(None, text)]
    documents = []
    for n, chunk in chunks:
        where = str(path) if n is None else "%s: line %d" % (path, n)
        try:
            data = json.loads(chunk)
        except (ValueError, RecursionError) as exc:
            _fail(where, "not JSON (%s)" % str(exc).splitlines()[0][:120])
        documents.extend(documents_of(data, where))
    return documents


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize(documents: list) -> dict:
    """The class summary of per-document dicts (see the module docstring)."""
    found = {}  # code -> {"documents": set of indexes, "equations": count, "where": Counter, "example": ...}
    for index, document in enumerate(documents):
        for e in document["equations"]:
            for note in e["notes"]:
                entry = found.setdefault(note["code"], {"documents": set(), "equations": 0, "lhs": {}, "example": None})
                entry["documents"].add(index)
                lhs = " ".join(e["lhs"].split()) or "(no equation read)"
                entry["lhs"].setdefault(lhs, set()).add(index)
                if entry["example"] is None:
                    entry["example"] = {"file": document["file"], "line": e["line"], "lhs": e["lhs"],
                                        "text": note.get("text", "")}
            for code in dict.fromkeys(note["code"] for note in e["notes"]):
                found[code]["equations"] += 1
    notes = []
    for code, entry in found.items():
        where = Counter({lhs: len(students) for lhs, students in entry["lhs"].items()})
        notes.append({"code": code, "meaning": MEANINGS[code], "documents": len(entry["documents"]),
                      "equations": entry["equations"],
                      "where": [{"lhs": lhs, "documents": n} for lhs, n in where.most_common(SHOWN_EQUATIONS)],
                      "example": entry["example"]})
    notes.sort(key=lambda n: (-n["documents"], -n["equations"], CODES.index(n["code"])))
    totals = dict(tally([e for document in documents for e in document["equations"]]), documents=len(documents))
    complete = sum(1 for d in documents if d["equations"] and all(e["status"] == "correct" for e in d["equations"]))
    return {"schema": SUMMARY_SCHEMA, "version": SUMMARY_VERSION, "summary": totals, "all_correct": complete,
            "notes": notes}


def _plural(n: int, word: str) -> str:
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def to_text(summary: dict) -> str:
    """The summary for a person: the totals, then each note with where it was found."""
    s = summary["summary"]
    head = "%s: %d correct, %d incorrect, %d unrecognized equations" % (
        _plural(s["documents"], "document"), s["correct"], s["incorrect"], s["unrecognized"])
    if s["forward"]:
        head += " (%d forward, not scored)" % s["forward"]
    if s["possible"]:
        head += "; score %d/%d (%.0f%%)" % (s["score"], s["possible"], 100 * s["fraction"])
    lines = [head, "%s with every equation correct" % _plural(summary["all_correct"], "document"), ""]
    if not summary["notes"]:
        lines.append("no mistakes found")
    for note in summary["notes"]:
        lines.append("%s: %s, %s: %s" % (note["code"], _plural(note["documents"], "student"),
                                         _plural(note["equations"], "equation"), note["meaning"]))
        lines.append("    in: " + "; ".join("%s (%d)" % (_short(w["lhs"], 60), w["documents"]) for w in note["where"]))
        example = note["example"]
        lines.append("    e.g. %s:%d: %s" % (example["file"], example["line"], _short(example["text"], 200)))
    return "\n".join(lines) + "\n"


def run_summary(paths: list, cell: str | None = None, as_json: bool = False) -> int:
    """The `lstmgen summary` command: exit code 0 (it reports; `check` judges), 2 on unusable input."""
    documents, to_check = [], []
    for name in paths:
        path = Path(name)
        if path.suffix.lower() in REPORT_SUFFIXES and path.is_file():
            documents.extend(read_report(path))
        else:
            to_check.append(name)
    if to_check:
        from . import check_all

        documents.extend(r.to_dict() for r in check_all(to_check, cell))
    summary = summarize(documents)
    sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n" if as_json else to_text(summary))
    sys.stdout.flush()
    return 0
