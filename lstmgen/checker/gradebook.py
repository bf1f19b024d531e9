"""Gradebooks from per-document report dicts (`FileReport.to_dict`): a CSV row per document
(`lstmgen check --csv FILE`) and Gradescope's autograder results.json (`--gradescope FILE`).

Both read only the equations' status, kind, line, left side, message and notes, so they work
as well on dicts merged from JSON Lines streams as on a check run here; scores are `report.tally`'s.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import OutputError
from .report import score_of, tally

COLUMNS = ("file", "score", "possible", "fraction", "correct", "incorrect", "unrecognized", "forward", "notes")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a cell starting so is a formula to a spreadsheet


def writable(path: str | None) -> None:
    """OutputError now, before any document is checked, when `path`'s folder does not exist."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise OutputError("cannot write %s: the folder %s does not exist" % (path, Path(path).parent))


def note_list(document: dict) -> str:
    """'73:wrong-upstream 85:wrong-upstream 135:wrong-gate': each non-correct equation's line and
    the distinct codes of its notes, in the document's order."""
    items = []
    for e in document["equations"]:
        for code in dict.fromkeys(n["code"] for n in e.get("notes", [])):
            items.append("%d:%s" % (e["line"], code))
    return " ".join(items)


def _inert(text: str) -> str:
    """A value a spreadsheet shows as text: a leading ' where it would start a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(documents: list) -> str:
    """The gradebook: a header, then one row per document with its score and counts (`COLUMNS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for document in documents:
        s = tally(document["equations"])
        writer.writerow([_inert(document["file"]), s["score"], s["possible"],
                         "" if s["fraction"] is None else s["fraction"], s["correct"], s["incorrect"],
                         s["unrecognized"], s["forward"], note_list(document)])
    return out.getvalue()


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def gradescope(documents: list) -> dict:
    """Gradescope's results.json for one submission (all `documents` are its files): a test per
    equation (the correct forward equations aside), 1 point each when scored, 0 of 0 when not;
    the top-level score is the points, `extra_data.lstmgen` the report's summary."""
    tests = []
    for document in documents:
        for e in document["equations"]:
            score = score_of(e["status"], e.get("kind", "backward"))
            if e.get("kind") == "forward" and e["status"] == "correct":
                continue
            test = {"name": _short("%s:%d %s" % (document["file"], e["line"], e["lhs"] or "(no equation read)")),
                    "score": score or 0, "max_score": 0 if score is None else 1}
            if e["status"] == "unrecognized":
                test["output"] = "Not judged automatically (it is graded by hand): %s" % e["message"]
            else:
                test["status"] = "passed" if e["status"] == "correct" else "failed"
                test["output"] = e["message"]
                if e["status"] == "incorrect" and e["expected"]:
                    test["output"] += "\nExpected: %s" % e["expected"]
            if e.get("kind") == "forward":
                test["output"] = "A forward equation (not scored). " + test["output"]
            tests.append(test)
    s = tally([e for document in documents for e in document["equations"]])
    output = "%d of %d scored equations correct" % (s["score"], s["possible"])
    if s["unrecognized"]:
        output += "; %d not judged automatically (graded by hand, not counted)" % s["unrecognized"]
    return {"score": float(s["score"]), "output": output + ".", "tests": tests,
            "extra_data": {"lstmgen": dict(s, documents=len(documents))}}


def write(documents: list, csv_file: str | None = None, gradescope_file: str | None = None) -> None:
    """Write the CSV gradebook and/or Gradescope's results.json of `documents` (OutputError when
    a file cannot be written)."""
    from ..render import write as write_file

    if csv_file is not None:
        write_file(Path(csv_file), csv_text(documents))
    if gradescope_file is not None:
        write_file(Path(gradescope_file), json.dumps(gradescope(documents), indent=2, ensure_ascii=False) + "\n")
