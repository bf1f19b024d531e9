"""`lstmgen check --cache DIR`: verdicts kept by the content of what decides them.

A document's key is the SHA-256 of everything its verdicts depend on: the document's text, whether
it is read as LaTeX (a .tex name), the cell (a built-in's name, or a cell file's bytes), the time
and memory limits, lstmgen's version and a fingerprint of its own code and grammars, and the
versions of the libraries that judge (SymPy, NumPy, Lark, markdown-it-py).  An entry is the report's
JSON (`FileReport.to_dict()` without the file name) in DIR/<2 hex>/<key>.json, written to a
temporary name and renamed, so that two runs sharing DIR never read half an entry; an entry that
cannot be read is a miss.  Reports that a time or memory limit cut short are not kept: they depend
on the machine's load, not on the document.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from .. import __version__, cells
from . import bounds
from .report import FileReport

FORMAT = 1  # of an entry; a change of it is a change of every key
JUDGING_LIBRARIES = ("sympy", "numpy", "lark", "markdown-it-py", "mdit-py-plugins")
LIMITED = ("gave up", "not judged:")  # how the checker's messages for a limit begin (checker/__init__.py, judge.py)


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of lstmgen's own source, grammars and built-in cell files (a code change without a
    new version number still changes every key)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in (".py", ".lark", ".cell")):
        digest.update(path.relative_to(package).as_posix().encode("utf-8"))
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _library_versions() -> str:
    out = []
    for name in JUDGING_LIBRARIES:
        try:
            out.append("%s=%s" % (name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append("%s=none" % name)
    return ",".join(out)


def cell_identity(cell: str | None) -> str:
    """The cell as a key part: 'auto' (the document's own), a built-in's name, or a cell file's name
    and the SHA-256 of its bytes (the same file elsewhere gives the same identity)."""
    if cell is None:
        return "auto"
    if cell in cells.builtin_names():
        return cell
    return "%s sha256:%s" % (Path(cell).name, hashlib.sha256(Path(cell).read_bytes()).hexdigest())


class ResultsCache:
    """Reports by key in a folder (created when missing)."""

    def __init__(self, folder, cell: str | None):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from ..errors import UsageError

            raise UsageError("--cache %s: cannot use it as a folder (%s)" % (folder, exc.strerror or exc)) from None
        self.context = "\n".join([
            "lstmgen-check-cache %d" % FORMAT, __version__, code_fingerprint(), _library_versions(),
            cell_identity(cell), "%r %r %r" % (bounds.seconds_per_equation(), bounds.seconds_per_document(),
                                               bounds.MAX_MEMORY_BYTES)])

    def key(self, text: str, source: str) -> str:
        digest = hashlib.sha256(self.context.encode("utf-8"))
        digest.update(b"\ntex\n" if source.endswith(".tex") else b"\nmd\n")
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / (key + ".json")

    def get(self, key: str, source: str) -> FileReport | None:
        """The kept report, named `source`, or None."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            data["file"] = source
            return FileReport.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None  # missing, or not an entry this version wrote: checked again and overwritten

    def put(self, key: str, report: FileReport) -> bool:
        """Keep the report unless a limit cut it short; False when it was not kept."""
        if any(e.message.startswith(LIMITED) for e in report.equations):
            return False
        data = report.to_dict()
        del data["file"]
        path = self._path(key)
        try:
            path.parent.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        except OSError:
            return False  # a read-only cache: the verdict stands, it is not kept
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False)
            os.replace(temporary, path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)  # a full disk: not kept
            return False
        return True
