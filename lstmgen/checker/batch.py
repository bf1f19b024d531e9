"""`lstmgen check` on many documents: a class's submissions, checked in parallel and streamed.

Data flows one way:

* `find`       the documents the command line names, each with its key: its path relative to the
               folder it was found in (a file given by itself: its name).  Keys order every output
               and the shards, so that both are the same on every machine;
* `shard`      the K-th of N slices of that order: every N-th document from the K-th;
* a pool       checks them, every document through `Job`: read, look up in the cache, check,
               keep.  `LocalPool` (--jobs N): N threads, each driving its own bounds worker, a
               forked process that bounds.py kills past a time limit, whose address space is
               capped, and that is replaced when it is killed or dies.  `DaskPool`
               (--scheduler): the same checks on a Dask cluster;
* outputs      as each document finishes: the progress bar (a terminal only) and the JSON Lines
               stream; when all have (or on Ctrl-C, those that have): the text report, the JSON,
               or the JSON Lines in key order.

A thread per job rather than a process pool: the checking already runs in the bounds worker
process, so a thread only waits on its pipe; benchmarks/check_pool.py measures it against
concurrent.futures.ProcessPoolExecutor.
"""
from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, cells
from ..errors import DocumentError, UsageError
from . import bounds
from . import gradebook
from .report import EquationReport, FileReport, json_line, to_json, to_text
from .results_cache import ResultsCache, cell_identity

SUFFIXES = (".md", ".tex", ".markdown")
ORDERS = ("finished", "sorted")  # the two parts of a --jsonl stream (README, "Grading a class")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the check after the finished documents were written (the CLI's exit 130)."""


@dataclass(frozen=True)
class Document:
    path: Path
    key: str  # the path relative to its folder argument (posix), or a file argument's name
    text: str | None = None  # standard input's document, read once; a file is read when checked


def find(paths: list) -> tuple[list[Document], bool]:
    """The documents that the files and folders in `paths` name, in key order (ties: by path),
    and whether there are several (more than one, or any folder: a class).  The name "-" reads
    one document from standard input."""
    from . import STDIN, STDIN_SOURCE, read_stdin

    out = []
    if sum(str(name) == STDIN for name in paths) > 1:
        raise UsageError("%s (standard input) is given more than once" % STDIN)
    for name in paths:
        path = Path(name)
        if str(name) == STDIN:
            out.append(Document(Path(STDIN_SOURCE), STDIN_SOURCE, read_stdin()))
        elif path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES]
            if not found:
                raise DocumentError("%s: a folder with no .md or .tex documents" % name)
            out.extend(Document(p, p.relative_to(path).as_posix()) for p in found)
        elif path.is_file():
            out.append(Document(path, path.name))
        elif path.exists():
            raise DocumentError("%s: not a regular file" % name)
        else:
            raise DocumentError("%s: no such file or folder" % name)
    if not out:
        raise DocumentError("no documents to check")
    out.sort(key=lambda d: (d.key, str(d.path)))
    return out, len(out) > 1 or any(Path(p).is_dir() for p in paths)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError("--shard %s: write it K/N, e.g. 2/8" % text) from None
    if not 1 <= k <= n:
        raise UsageError("--shard %s: K must be between 1 and N" % text)
    return k, n


def shard(documents: list, k: int, n: int) -> list:
    """The K-th of N slices of the key order: documents K, K+N, K+2N, ... (1-based)."""
    return documents[k - 1::n]


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- one document
@dataclass
class Outcome:
    """A document's result: its report (always set), the DocumentError when it was unusable,
    and whether it came from the cache."""

    index: int
    report: FileReport
    error: DocumentError | None = None
    cached: bool = False


@dataclass
class _Read:
    index: int
    source: str
    text: str
    key: str | None


def _unusable(index: int, source: str, error: Exception) -> Outcome:
    report = FileReport(source, [EquationReport(1, "", "unrecognized", "", str(error).splitlines()[0])])
    return Outcome(index, report, error if isinstance(error, DocumentError) else None)


class Job:
    """What every document goes through: read, the cache, the check, the cache again."""

    def __init__(self, cell: str | None, cache: ResultsCache | None):
        self.cell, self.cache = cell, cache

    def prepare(self, index: int, document: Document) -> Outcome | _Read:
        """The document's text to check, or its outcome when it is unusable or cached."""
        from . import _read

        source = str(document.path)
        try:
            text = document.text if document.text is not None else _read(document.path)
        except DocumentError as exc:
            return _unusable(index, source, exc)
        key = self.cache.key(text, source) if self.cache is not None else None
        if key is not None:
            report = self.cache.get(key, source)
            if report is not None:
                return Outcome(index, report, cached=True)
        return _Read(index, source, text, key)

    def finish(self, read: _Read, report: FileReport) -> Outcome:
        if read.key is not None:
            self.cache.put(read.key, report)
        return Outcome(read.index, report)

    def run(self, index: int, document: Document) -> Outcome:
        """The whole way, here (a pool thread; the check itself runs in its bounds worker)."""
        from . import check_text

        read = self.prepare(index, document)
        if isinstance(read, Outcome):
            return read
        try:
            report = check_text(read.text, self.cell, read.source)
        except DocumentError as exc:
            return _unusable(index, read.source, exc)
        except Exception as exc:  # noqa: BLE001 - one document's failure must not stop the class
            return _unusable(index, read.source, "could not check this document (%s: %s)"
                             % (type(exc).__name__, str(exc)[:200]))
        return self.finish(read, report)


# ----------------------------------------------------------------------------- pools
class LocalPool:
    """`jobs` threads on this machine, each checking one document at a time in its own bounds
    worker process (bounds.py: the time limits kill it, its memory is capped, a new one is forked
    when it was killed or died).  Ctrl-C kills every worker at once (bounds.cancel)."""

    def __init__(self, jobs: int):
        self.jobs = jobs

    def run(self, job: Job, items: list, finished) -> None:
        """finished(outcome) on the calling thread as each document finishes; on Ctrl-C, the
        workers are killed, the documents finished meanwhile handed over, and the
        KeyboardInterrupt raised again."""
        tasks, results, stop = queue.SimpleQueue(), queue.SimpleQueue(), threading.Event()
        for item in items:
            tasks.put(item)
        threads = [threading.Thread(target=self._serve, args=(job, tasks, results, stop), daemon=True,
                                    name="lstmgen-check-%d" % n) for n in range(min(self.jobs, len(items)))]
        for thread in threads:
            thread.start()
        try:
            for _ in items:
                finished(self._next(results, threads))
        except KeyboardInterrupt:
            self._stop(stop, threads)
            while not results.empty():  # finished between Ctrl-C and the kill: kept
                finished(results.get())
            raise
        finally:
            self._stop(stop, threads)

    @staticmethod
    def _next(results, threads) -> Outcome:
        while True:
            try:
                return results.get(timeout=0.5)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and results.empty():
                    raise RuntimeError("every checking thread has ended before its documents") from None

    @staticmethod
    def _stop(stop: threading.Event, threads) -> None:
        bounds.cancel(stop)
        for thread in threads:
            thread.join()

    @staticmethod
    def _serve(job: Job, tasks, results, stop: threading.Event) -> None:
        with bounds.cancellable(stop):
            try:
                while not stop.is_set():
                    try:
                        index, document = tasks.get_nowait()
                    except queue.Empty:
                        return
                    results.put(job.run(index, document))
            except bounds.Cancelled:
                pass
            finally:
                bounds.release()

    def close(self) -> None:
        pass


class DaskPool:
    """The documents checked on a Dask cluster (lstmgen[dask]): this process reads each document
    and its cache entry; a Dask worker checks it with the same limits (in its own bounds worker,
    where the Dask worker may have children: see README) and returns the report's dict."""

    def __init__(self, address: str):
        try:
            import distributed
        except ImportError:
            raise UsageError("--scheduler needs Dask: pip install 'lstmgen[dask]'") from None
        self.distributed = distributed
        try:
            self.client = distributed.Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError("--scheduler %s: cannot connect (%s)" % (address, str(exc).splitlines()[0])) from None

    def run(self, job: Job, items: list, finished) -> None:
        cell = _shipped_cell(job.cell)
        window = 2 * max(1, sum(self.client.nthreads().values())) + 2
        pending = {}
        waiting = self.distributed.as_completed(loop=self.client.loop)  # this client's, not a default one
        todo = iter(items)

        def submit_next() -> bool:
            for index, document in todo:
                read = job.prepare(index, document)
                if isinstance(read, Outcome):
                    finished(read)
                    continue
                future = self.client.submit(check_remote, read.text, cell, read.source, pure=False)
                pending[future] = read
                waiting.add(future)
                return True
            return False

        try:
            while len(pending) < window and submit_next():
                pass
            for future in waiting:
                read = pending.pop(future)
                finished(self._outcome(job, read, future))
                submit_next()
        except KeyboardInterrupt:
            self.client.cancel(list(pending))
            raise

    @staticmethod
    def _outcome(job: Job, read: _Read, future) -> Outcome:
        try:
            answer = future.result()
        except Exception as exc:  # noqa: BLE001 - a lost Dask worker (KilledWorker), say: this document only
            return _unusable(read.index, read.source, "the Dask worker checking it failed (%s: %s)"
                             % (type(exc).__name__, str(exc)[:200]))
        if "unusable" in answer:
            return _unusable(read.index, read.source, DocumentError(answer["unusable"]))
        report = FileReport.from_dict(answer["report"])
        return job.finish(read, report)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - the cluster is already gone
            pass


def _shipped_cell(cell: str | None):
    """The cell as a Dask worker can load it: a name, or a cell file's name and text (the workers
    may not see this machine's files)."""
    if cell is None or cell in cells.builtin_names():
        return cell
    return (Path(cell).name, Path(cell).read_text(encoding="utf-8-sig"))


def check_remote(text: str, cell, source: str) -> dict:
    """On a Dask worker: {"report": FileReport.to_dict()} or {"unusable": the one-line reason}."""
    from . import check_text

    if isinstance(cell, tuple):
        cell = _cell_file_here(*cell)
    try:
        return {"report": check_text(text, cell, source).to_dict()}
    except DocumentError as exc:
        return {"unusable": str(exc).splitlines()[0]}


def _cell_file_here(name: str, text: str) -> str:
    """A shipped cell file written once on this worker (under a folder named by its content, so that
    the cell keeps its file's name)."""
    import hashlib

    folder = Path(tempfile.gettempdir()) / ("lstmgen-cell-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24])
    path = folder / name
    if not path.is_file():
        folder.mkdir(exist_ok=True)
        temporary = folder / (name + ".%d.part" % os.getpid())
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    return str(path)


# ----------------------------------------------------------------------------- outputs
class JsonLines:
    """The --jsonl stream: a line per document as each finishes (order "finished"), then, at the
    end, one per document again in key order (order "sorted").  A line is the document's
    `FileReport.to_dict()` with a "batch" object: lstmgen's version, the cell, the shard [K, N],
    the number of documents before sharding, the document's key and its index in the key order of
    all of them (what `lstmgen merge` checks and orders by)."""

    def __init__(self, stream, cell_id: str, shard_of: tuple[int, int], documents: int, version: str = __version__):
        self.stream = stream
        self.batch = {"lstmgen": version, "cell": cell_id, "shard": list(shard_of), "documents": documents}

    def write(self, report: FileReport, order: str, index: int, key: str) -> None:
        line = dict(report.to_dict(), batch=dict(self.batch, index=index, key=key, order=order))
        self.stream.write(json_line(line))
        self.stream.flush()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int):
    """A progress bar on standard error when it is a terminal, else nothing."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if not terminal:
        return _Silent()
    from tqdm import tqdm

    try:
        sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except OSError:
        sized = False
    # a terminal that reports no size (a pty nobody sized, as in some containers) gets 80 x 24:
    # tqdm would fit its bar into 0 columns and hide it below row 0
    return tqdm(total=total, file=sys.stderr, unit="doc", desc="lstmgen check",
                dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 24)


def run(paths: list, cell: str | None = None, output: str = "text", jobs: int | None = None,
        shard_of: tuple[int, int] = (1, 1), cache: str | None = None, scheduler: str | None = None,
        csv_file: str | None = None, gradescope_file: str | None = None) -> int:
    """The `lstmgen check` command: output "text", "json" or "jsonl" on standard output.

    Exit code 0 when every equation of every document is correct, 1 when any is incorrect or
    unrecognized; after Ctrl-C, Interrupted once the finished documents are written; an unusable
    single document raises DocumentError (exit 2).  Of several documents (a class) an unusable one
    is an 'unrecognized' entry, and the others are still checked."""
    if cell is not None:
        cells.load(cell)  # CellError before anything is read
    gradebook.writable(csv_file)  # an unwritable gradebook is refused before any work
    gradebook.writable(gradescope_file)
    documents, several = find(list(paths))
    total = len(documents)
    documents = shard(documents, *shard_of)
    job = Job(cell, ResultsCache(cache, cell) if cache else None)
    pool = DaskPool(scheduler) if scheduler else LocalPool(jobs or usable_cores())
    stream = JsonLines(sys.stdout, cell_identity(cell), shard_of, total) if output == "jsonl" else None
    outcomes: dict[int, Outcome] = {}
    progress = _progress(len(documents))

    def write(outcome: Outcome, order: str) -> None:  # index: in the key order of all the shards
        index = shard_of[0] - 1 + outcome.index * shard_of[1]
        stream.write(outcome.report, order, index, documents[outcome.index].key)

    def finished(outcome: Outcome) -> None:
        outcomes[outcome.index] = outcome
        if stream is not None and (several or outcome.error is None):
            write(outcome, "finished")
        progress.update()

    interrupted = False
    try:
        pool.run(job, list(enumerate(documents)), finished)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        pool.close()
    done = [outcomes[i] for i in sorted(outcomes)]
    if not several and done and done[0].error is not None:
        raise done[0].error
    reports = [o.report for o in done]
    gradebook.write([r.to_dict() for r in reports], csv_file, gradescope_file)
    if stream is not None:
        for outcome in done:
            write(outcome, "sorted")
    elif output == "json" and reports:
        sys.stdout.write(to_json(reports))
    elif reports:
        sys.stdout.write(to_text(reports))
    sys.stdout.flush()
    if interrupted:
        raise Interrupted("interrupted: %d of %d documents checked, their results written" % (len(done), len(documents)))
    return max((r.exit_code for r in reports), default=0)
