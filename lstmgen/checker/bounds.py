"""Time and memory bounds of `lstmgen check`: limits that no `except` can lose, from any thread.

The limits (README, "Limits"): `SECONDS_PER_EQUATION` for judging one equation (and for learning
the document's cell, and for reading the names it defines), `SECONDS_PER_DOCUMENT` for a whole
document, `MAX_MEMORY_BYTES` for the process that checks it.  The environment variables
``LSTMGEN_SECONDS_PER_EQUATION`` and ``LSTMGEN_SECONDS_PER_DOCUMENT`` can lower the time limits
(never raise them; the tests use them to stay fast).

Two layers, because neither alone holds:

* A cooperative budget.  `limit(seconds)` opens a deadline for the calling thread (limits nest;
  the nearest one counts).  `check()` raises `OutOfTime` once a deadline has passed; the
  evaluator calls it for every node it evaluates, the symbolic comparison between SymPy calls,
  the judge between links.  `OutOfTime` is a BaseException, so the diagnosis code's
  ``except Exception`` (a repair that fails means "not this fix") cannot swallow it, and it
  names the limit that expired, so the equation's handler answers "gave up" while the
  document's deadline passes through it.  It holds on any thread (no signals) and gives the
  verdict with its reason, but it cannot stop one long call: SymPy expanding (a + ... + g)^64
  (minutes, gigabytes) or a C-level computation between two checkpoints.
* A worker process with a hard kill (Linux).  `run` forks a worker per thread at its first
  document (kept for the next ones: its caches stay warm) that does the checking and sends its
  events back in batches (`_Outbox`: every `FLUSH_SECONDS` at most, and with its answer); each
  phase it starts (the learning, one equation) is written with its limit to a slot of memory the
  parent shares (`_PhaseSlot`), so that starting a phase wakes nobody.  When a phase overruns its
  limit by `GRACE` seconds, or the document its own, the parent kills the worker and tells its
  caller which phase was lost; the caller resumes in a new worker, which redoes what had not been
  sent.  The worker's address space is capped (RLIMIT_AS), so an expression that grows past
  `MAX_MEMORY_BYTES` fails with a MemoryError in the worker instead of taking the machine.

Measured (2 shared cores): forking a worker and its first round trip take 30-45 ms, a warm
worker's round trip 0.3 ms, and the corpus documents check as fast through it as in-process
(~145 ms each).  An event per message (some 200 for a 60-equation document) woke the parent as
often; with both cores checking (--jobs 2) those wake-ups took 4-5% of the wall time
(benchmarks/check_pool.py), which batches and the phase slot give back.  A thread's first check
warms its new worker's caches (~0.3 s, like a process's first check).  A killed phase costs one
fork: the next worker is handed the document's equations and notation when they had been sent,
and judges every equation with no verdict yet but the lost one.  Elsewhere than Linux (no safe fork) only the
cooperative layer runs, in the calling process, and so it does in a daemonic process (a Dask
worker started with daemon=True), which multiprocessing forbids to have children.

Stopping a batch (checker/batch.py): a thread that runs `run` inside `cancellable(event)` has
its worker killed by `cancel(event)` from any thread, and its `run` then raises `Cancelled`
instead of resuming in a new worker; `release()` ends the calling thread's worker at once.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass

SECONDS_PER_EQUATION = 5.0
SECONDS_PER_DOCUMENT = 120.0
MAX_MEMORY_BYTES = 1_000_000_000  # address space (and so resident memory) of the worker that checks a document
MIN_MEMORY_GROWTH = 256_000_000   # what the worker may add when its parent already maps more
GRACE = 0.5                       # seconds past a limit before the worker is killed
FLUSH_SECONDS = 0.1               # the worker sends its events at least this often (and at the end)
USE_WORKER = sys.platform.startswith("linux")


def seconds_per_equation() -> float:
    return _lowered("LSTMGEN_SECONDS_PER_EQUATION", SECONDS_PER_EQUATION)


def seconds_per_document() -> float:
    return _lowered("LSTMGEN_SECONDS_PER_DOCUMENT", SECONDS_PER_DOCUMENT)


def _lowered(variable: str, default: float) -> float:
    """The limit, or the lower one the environment sets (a malformed value is ignored)."""
    try:
        value = float(os.environ.get(variable, default))
    except ValueError:
        return default
    return min(default, value) if value > 0 else default


# ----------------------------------------------------------------------------- cooperative budget
class OutOfTime(BaseException):
    """A limit has passed (raised at a checkpoint).  Not an Exception: no `except Exception`
    catches it; whoever opened `limit` does, and lets every other limit's pass."""

    def __init__(self, limit: "Limit"):
        super().__init__(limit.what)
        self.limit = limit


@dataclass(eq=False)  # told apart by identity: `exc.limit is mine`
class Limit:
    seconds: float
    what: str
    deadline: float


_local = threading.local()  # per thread: the open limits, innermost last, and the earliest deadline


def _open() -> list:
    if not hasattr(_local, "limits"):
        _local.limits, _local.deadline = [], float("inf")
    return _local.limits


@contextlib.contextmanager
def limit(seconds: float, what: str):
    """A deadline `seconds` from now for the code inside, on this thread; yields the Limit that
    an `OutOfTime` names when this deadline is the one that passed."""
    limits = _open()
    entry = Limit(seconds, what, time.monotonic() + seconds)
    limits.append(entry)
    _local.deadline = min(_local.deadline, entry.deadline)
    try:
        yield entry
    finally:
        limits.remove(entry)
        _local.deadline = min((e.deadline for e in limits), default=float("inf"))


def check() -> None:
    """Raise OutOfTime when a deadline of this thread has passed (the earliest one)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise OutOfTime(min(_local.limits, key=lambda e: e.deadline))


# ----------------------------------------------------------------------------- the worker
@dataclass
class Phase:
    """An event a check emits when it starts work that has its own limit (a key its caller
    recognizes, e.g. ("equation", 3), that pickles to at most `_PhaseSlot.KEY_BYTES`); the next
    Phase ends it."""

    key: object
    seconds: float


@dataclass
class Lost:
    """A phase that did not finish: killed past its own limit ("time") or past the whole call's
    ("document"), or its worker died ("memory": most likely the address-space cap)."""

    key: object
    why: str


_workers = threading.local()
_forking = threading.Lock()
CANCEL_SLICE = 0.2  # seconds: how soon a waiting thread notices cancel()
_every_worker: "weakref.WeakSet[_Worker]" = weakref.WeakSet()


def run(function, args: tuple, emit, seconds: float) -> Lost | None:
    """function(emit, *args) under the limits: in this thread's worker process where one can
    be forked, else here.  `function` emits events (picklable; a Phase starts a phase with its
    own limit) and opens its own cooperative limits, the document's included; `seconds` bounds
    the whole call.  Returns None when it finished, else the Lost phase; what it raises is
    raised here."""
    if not USE_WORKER or getattr(_workers, "inside", False) or multiprocessing.current_process().daemon:
        function(emit, *args)
        return None
    cancel = getattr(_workers, "cancel", None)
    for attempt in range(2):
        worker = _worker()
        if cancel is not None and cancel.is_set():  # after the fork: cancel() kills every worker made before
            _discard(worker)
            raise Cancelled()
        try:
            lost = worker.run(function, args, emit, seconds)
            if lost is not None and cancel is not None and cancel.is_set():
                raise Cancelled()  # killed by cancel(), not by a limit
            return lost
        except _StaleWorker:
            _discard(worker)  # a fresh fork knows what the request names
            if attempt:
                raise RuntimeError("the checker's worker cannot run %s" % function.__name__) from None
        except BaseException:
            _discard(worker)  # killed, died or interrupted: its state is unknown
            raise


class Cancelled(BaseException):
    """The batch that the calling thread works for is stopping (see `cancellable`)."""


@contextlib.contextmanager
def cancellable(event: threading.Event):
    """`run` on this thread, inside, is stopped by `cancel(event)`: its worker is killed and it
    raises Cancelled."""
    _workers.cancel = event
    try:
        yield
    finally:
        _workers.cancel = None


def cancel(event: threading.Event) -> None:
    """Set `event` and kill the workers of every thread inside `cancellable(event)`."""
    event.set()
    for worker in list(_every_worker):
        if worker.cancel is event:
            worker.stop()


def release() -> None:
    """Kill the calling thread's worker now (a pool thread that has no more documents)."""
    worker = getattr(_workers, "worker", None)
    if worker is not None:
        _discard(worker)


def _worker() -> "_Worker":
    worker = getattr(_workers, "worker", None)
    if worker is None or worker.owner != os.getpid() or not worker.process.is_alive():
        worker = _workers.worker = _Worker()
    return worker


def _discard(worker: "_Worker") -> None:
    worker.stop()
    if getattr(_workers, "worker", None) is worker:
        _workers.worker = None


class _Lose(Exception):
    def __init__(self, lost: Lost):
        self.lost = lost


class _StaleWorker(Exception):
    pass


class _Worker:
    """A forked process that runs checks one at a time for the thread that made it."""

    def __init__(self):
        context = multiprocessing.get_context("fork")
        self.connection, child = context.Pipe()
        self.slot = _PhaseSlot(context)
        self.process = context.Process(target=_serve, args=(child, self.slot), daemon=True, name="lstmgen-check")
        self.cancel = getattr(_workers, "cancel", None)
        # Ctrl-C reaches the whole process group: blocked in the forking thread, the child is born
        # with it blocked until it ignores it (_serve), so it never dies of one half-started.
        # One fork at a time, the child's end closed before the next: a worker forked by another
        # thread in between would hold this pipe open, and this worker's death would go unseen.
        with _forking:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                self.process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            child.close()
        self.owner = os.getpid()
        if not _every_worker:  # after multiprocessing's own exit handler, so that it runs first
            atexit.unregister(_stop_every_worker)
            atexit.register(_stop_every_worker)
        _every_worker.add(self)

    def run(self, function, args, emit, seconds):
        document_end = time.monotonic() + seconds
        self.slot.clear()  # the worker is idle: no write of its own can overlap this one
        self.connection.send((function, args))
        try:
            while True:
                for event in self._next(document_end):
                    if isinstance(event, _Done):
                        return None
                    if isinstance(event, _Failed):
                        raise event.error
                    if isinstance(event, _Stale):
                        raise _StaleWorker()
                    emit(event)
        except _Lose as lose:
            _discard(self)
            if time.monotonic() > document_end:
                return Lost(lose.lost.key, "document")
            return lose.lost

    def _next(self, document_end: float) -> list:
        """The worker's next batch of events; _Lose when its phase (as the slot has it now) or the
        document overran, when cancel() was called, or when the worker died.  Waited for in
        slices, so that cancel() from another thread, and a phase begun meanwhile, are seen within
        one."""
        while True:
            phase, phase_end = self.slot.read()
            end = min(phase_end, document_end) + GRACE
            if self._poll(min(max(end - time.monotonic(), 0.0), CANCEL_SLICE)):
                break
            if self.cancel is not None and self.cancel.is_set():
                raise _Lose(Lost(phase, "time"))  # run() then raises Cancelled
            if time.monotonic() >= end:
                raise _Lose(Lost(phase, "time"))
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            raise _Lose(Lost(self.slot.read()[0], "memory")) from None

    def _poll(self, seconds: float) -> bool:
        try:
            return self.connection.poll(seconds)
        except OSError:  # closed by cancel() from another thread: recv() below reports it
            return True

    def stop(self):
        """Kill the process (when this process made it) and close the connection."""
        try:
            if self.owner == os.getpid() and self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - already closed
            pass

    def __del__(self):  # the thread that owned it ended
        try:
            self.stop()
        except BaseException:  # noqa: BLE001 - late at interpreter exit, modules may be gone
            pass


def _stop_every_worker() -> None:
    """At exit: kill the idle workers (faster than multiprocessing's terminate-and-join)."""
    for worker in list(_every_worker):
        worker.stop()


@dataclass
class _Done:
    pass


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Stale:
    """The worker cannot read the request: it was forked before what the request names existed."""


class _PhaseSlot:
    """The phase a worker is in, in memory it shares with its parent: the worker writes each Phase
    it starts (its key pickled, its start and its end on the system-wide monotonic clock), the
    parent reads it when it decides whether to kill.  A write happens between two steps of a count
    (a seqlock: odd while a write is under way), so that a read never mixes two phases."""

    KEY_BYTES = 240

    def __init__(self, context):
        self._count = context.RawValue(ctypes.c_uint64, 0)
        self._end = context.RawValue(ctypes.c_double, float("inf"))
        self._length = context.RawValue(ctypes.c_uint32, 0)  # 0: no phase yet
        self._key = context.RawArray(ctypes.c_char, self.KEY_BYTES)

    def write(self, phase: Phase) -> None:
        key = pickle.dumps(phase.key)
        if len(key) > self.KEY_BYTES:
            raise ValueError("a phase key that pickles to more than %d bytes: %r" % (self.KEY_BYTES, phase.key))
        end = time.monotonic() + phase.seconds
        self._count.value += 1
        try:
            self._key[: len(key)] = key
            self._length.value = len(key)
            self._end.value = end
        finally:  # even after a MemoryError: an odd count would leave every read without a phase
            self._count.value += 1

    def clear(self) -> None:
        self._count.value += 1
        self._length.value = 0
        self._end.value = float("inf")
        self._count.value += 1

    def read(self) -> tuple:
        """(key, end) of the phase, or (None, inf) before the first one (or when the worker died
        in the middle of a write)."""
        for _ in range(10_000):
            count = self._count.value
            if count % 2:
                time.sleep(0)  # the worker is between the two steps of a write: a few microseconds
                continue
            length, end = self._length.value, self._end.value
            key = self._key.raw[:length]
            if self._count.value == count:
                try:
                    return (pickle.loads(key) if length else None), end
                except Exception:  # noqa: BLE001 - a torn read on a machine that reorders stores: read again
                    continue
        return None, float("inf")


class _Outbox:
    """The worker's side of one request's events: kept, and sent as one message at most
    `FLUSH_SECONDS` after the first of them, and at the end with the answer; a Phase also goes to
    the slot.  A courier thread sends what waits while the check is inside one long phase, so that
    a kill there loses nothing emitted before it (the GIL permitting: SymPy hands it over every few
    milliseconds, one long C call does not)."""

    def __init__(self, connection, slot: _PhaseSlot):
        self.connection, self.slot = connection, slot
        self.events, self.lock, self.finished = [], threading.Lock(), threading.Event()
        self.courier = threading.Thread(target=self._deliver, daemon=True, name="lstmgen-outbox")
        try:
            self.courier.start()
        except RuntimeError:  # no thread to be had (the address-space cap): sent at the end only
            self.courier = None

    def emit(self, event) -> None:
        if isinstance(event, Phase):
            self.slot.write(event)
        with self.lock:
            self.events.append(event)

    def _deliver(self) -> None:
        while not self.finished.wait(FLUSH_SECONDS):
            with self.lock:
                if self.events:
                    batch, self.events = self.events, []
                    _send(self.connection, batch)

    def close(self, answer) -> None:
        """Send what is left with the answer; the courier stops first."""
        self.finished.set()
        if self.courier is not None:
            self.courier.join()
        with self.lock:
            batch, self.events = self.events + [answer], []
        _send(self.connection, batch)


def _serve(connection, slot: _PhaseSlot) -> None:
    """The worker: run each request, sending its events, until the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the fork (_Worker)
    _workers.inside = True
    _workers.worker = None
    threading.stack_size(1 << 18)  # the outboxes' couriers: a small stack under the address-space cap
    for other in list(_every_worker):  # the parent's ends of other workers' pipes, copied by the fork:
        other.stop()                   # closed (not killed: not ours), so that those workers see EOF
    _cap_memory()
    try:
        while _answer(connection, slot):
            pass
    except (OSError, EOFError):
        pass  # the parent went away, or killed this worker's phase and closed the pipe


def _answer(connection, slot: _PhaseSlot) -> bool:
    """Run one request; False when there will be no more."""
    try:
        function, args = connection.recv()
    except (EOFError, OSError):
        return False
    except Exception:  # noqa: BLE001 - a function defined after this worker was forked, say
        connection.send([_Stale()])
        return False
    outbox = _Outbox(connection, slot)
    try:
        function(outbox.emit, *args)
        answer = _Done()
    except OutOfTime:
        answer = _Done()  # a limit the function did not catch: what it emitted stands
    except Exception as exc:  # noqa: BLE001 - raised again in the parent, as it would be without a worker
        answer = _Failed(_picklable_error(exc))
    outbox.close(answer)
    return True


def _send(connection, batch: list) -> None:
    """Send a batch of events; one that cannot be pickled (a notation holding a cell file's own
    function classes) as its `without_unpicklable()` (pickling fails before anything is written)."""
    try:
        connection.send(batch)
    except Exception:  # noqa: BLE001 - PicklingError, or the AttributeError / TypeError pickle raises for some objects
        connection.send([_picklable(event) for event in batch])


def _picklable(event):
    try:
        pickle.dumps(event)
        return event
    except Exception:  # noqa: BLE001 - as in _send
        if not hasattr(event, "without_unpicklable"):
            raise
        return event.without_unpicklable()


def _picklable_error(exc: Exception) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError("%s: %s" % (type(exc).__name__, exc))


def _cap_memory() -> None:
    """Cap the address space at MAX_MEMORY_BYTES, so that resident memory (never more than the
    address space) stays under it; a worker whose parent already maps more may still grow by
    MIN_MEMORY_GROWTH.  (The address space at the fork plus what was not yet resident, the cap
    before, came to 1.13 GB here: the mapped pages not yet touched could become resident on top.)"""
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as lines:
            status = dict(line.split(":", 1) for line in lines if ":" in line)
        size = int(status["VmSize"].split()[0]) * 1024
        limit = max(MAX_MEMORY_BYTES, size + MIN_MEMORY_GROWTH)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    except (OSError, ValueError, KeyError, ImportError):
        pass  # no /proc or no RLIMIT_AS: the time limits still hold
