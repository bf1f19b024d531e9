"""`lstmgen merge FILE.jsonl...`: the JSON Lines of `lstmgen check --jsonl` runs (the shards of one
class) joined into one report.

Each file is read line by line as JSON (never evaluated).  Refused, with one line naming the file
and line: a line that is not a document of `check --jsonl`; lines of one file from different runs;
a document whose two lines in one file (its "finished" and "sorted" ones) differ; files from
different runs (another lstmgen version, cell, number of shards or of documents); a shard given
twice; a document in the wrong shard; and documents missing (a shard not given, or cut short by
Ctrl-C).  An empty file is a shard that had no documents.  What is left is every document once, in the key order of the whole class.
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from ..errors import DocumentError
from .batch import ORDERS, JsonLines
from .report import FileReport, to_json, to_text

RUN_FIELDS = ("lstmgen", "cell", "shard", "documents")  # one run's; a line adds index, key and order


def _problem(where: str, text: str) -> DocumentError:
    return DocumentError("%s: %s" % (where, text))


def _document(where: str, line: str) -> dict:
    """A line's object, checked to be a document of `check --jsonl` (FileReport.from_dict reads it)."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise _problem(where, "not JSON (%s)" % str(exc).splitlines()[0]) from None
    batch = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(batch, dict) or not all(k in batch for k in RUN_FIELDS + ("index", "key", "order")):
        raise _problem(where, "not a line of `lstmgen check --jsonl` (no \"batch\" object with %s)"
                       % ", ".join(RUN_FIELDS + ("index", "key", "order")))
    shard = batch["shard"]
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(v) is int for v in shard)
            and 1 <= shard[0] <= shard[1]) or type(batch["documents"]) is not int or type(batch["index"]) is not int \
            or batch["order"] not in ORDERS:
        raise _problem(where, "a \"batch\" object that `lstmgen check --jsonl` does not write")
    try:
        FileReport.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise _problem(where, "not a document report (file, equations with line, lhs and status)") from None
    return data


def read(path: str) -> tuple[dict, dict]:
    """(the file's run: RUN_FIELDS -> value, {index: (document object, key)}) of one JSON Lines file."""
    run, documents, first_line = None, {}, {}
    try:
        handle = Path(path).open(encoding="utf-8")
    except OSError as exc:
        raise _problem(path, "cannot read it (%s)" % (exc.strerror or exc)) from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = "%s:%d" % (path, number)
                data = _document(where, line)
                batch = data.pop("batch")
                this_run = {k: batch[k] for k in RUN_FIELDS}
                if run is None:
                    run = this_run
                elif this_run != run:
                    raise _problem(where, "from another run than the file's first line (%s)" % _differences(run, this_run))
                k, n = run["shard"]
                index = batch["index"]
                if not 0 <= index < run["documents"] or index % n != k - 1:
                    raise _problem(where, "document %d does not belong to shard %d/%d of %d documents"
                                   % (index, k, n, run["documents"]))
                if index in documents and documents[index] != (data, batch["key"]):
                    raise _problem(where, "%s differs from its line %d" % (data.get("file"), first_line[index]))
                documents.setdefault(index, (data, batch["key"]))
                first_line.setdefault(index, number)
        except UnicodeDecodeError:
            raise _problem(path, "not UTF-8 text") from None
    return run, documents  # run None: an empty file (a shard with no documents)


def _differences(one: dict, other: dict) -> str:
    return ", ".join("%s %s, not %s" % (k, json.dumps(other[k]), json.dumps(one[k])) for k in one if one[k] != other[k])


def merged(paths: list) -> tuple[dict, list]:
    """(the run, [(document object, key)] of every document of the shards in `paths`, once each,
    in key order); DocumentError for inputs that do not make one whole run."""
    first, shards, documents = None, {}, {}
    for path in paths:
        run, found = read(path)
        if run is None:
            continue
        whole = dict(run, shard=run["shard"][1])  # what every shard of one run shares
        if first is None:
            first = (path, whole)
        elif whole != first[1]:
            raise _problem(path, "from another run than %s (%s)" % (first[0], _differences(first[1], whole)))
        k, n = run["shard"]
        if k in shards:
            raise _problem(path, "shard %d/%d is also in %s" % (k, n, shards[k]))
        shards[k] = path
        documents.update(found)
    if first is None:
        raise DocumentError("no documents in %s" % ", ".join(paths))
    n, total = first[1]["shard"], first[1]["documents"]
    needed = min(n, total)  # shards past the number of documents have none
    if len(shards) < needed:  # (n and total come from the files: never counted up to, they may be huge)
        absent = list(itertools.islice((k for k in range(1, needed + 1) if k not in shards), 5))
        raise DocumentError("%d of %d shards missing (%s%s): %d of %d documents" % (
            needed - len(shards), n, ", ".join("shard %d/%d" % (k, n) for k in absent),
            ", ..." if needed - len(shards) > 5 else "", total - len(documents), total))
    if len(documents) < total:
        gap = next(index for index in range(total) if index not in documents)
        short = gap % n + 1
        raise _problem(shards[short], "shard %d/%d is incomplete (a run cut short?): %d of %d documents missing, "
                       "the first: number %d in key order" % (short, n, total - len(documents), total, gap + 1))
    return first[1], [documents[index] for index in range(total)]


def run(paths: list, output: str = "text") -> int:
    """The `lstmgen merge` command: the text report, --json (as `check --json` of the class) or
    --jsonl (one "sorted" line per document, as one unsharded run); exit codes as `lstmgen check`'s."""
    whole, documents = merged(list(paths))
    reports = [FileReport.from_dict(data) for data, _ in documents]
    if output == "jsonl":
        stream = JsonLines(sys.stdout, whole["cell"], (1, 1), whole["documents"], version=whole["lstmgen"])
        for index, (report, (_, key)) in enumerate(zip(reports, documents)):
            stream.write(report, "sorted", index, key)
    elif output == "json":
        sys.stdout.write(to_json(reports))
    else:
        sys.stdout.write(to_text(reports))
    sys.stdout.flush()
    return max(r.exit_code for r in reports)
