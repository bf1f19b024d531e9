"""Implementations, the cross-check, and the interleaved timing loop of benchmarks/speed.py."""
from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from . import numpy_peers
from .cells import ROOT, CELLS, Layout, load_module

SLEEP = 0.2  # seconds between implementations: OpenBLAS/OpenMP threads spin a while after the last GEMM
TARGET = 0.15  # a measurement repeats the call until it lasts about this long (small shapes)
PRIME_BELOW = 0.05  # calls shorter than this get one untimed call before each measurement (see _timed)
PROBE_SLOW = 1.3  # a round whose probe GEMM ran slower than this times the probes' median is discarded


def log(message):
    print("[%7.1fs] %s" % (time.perf_counter() - _START, message), file=sys.stderr, flush=True)


_START = time.perf_counter()


# ---- implementations -------------------------------------------------------------------------

@dataclass
class Impl:
    key: str  # short id
    label: str  # what the tables print
    ours: bool
    factory: object  # (x, h0, params, dh) -> runner with run() and result(); params in the peers' layout
    memory: str = "n/a"  # "tracemalloc", "numba" (tracemalloc unless NRT allocated), "xla", or "n/a"
    note: str = ""


class GeneratedRunner:
    """A generated module's <cell>_forward / <cell>_backward, positional arguments only."""

    def __init__(self, layout, x, h0, params, dh):
        self.layout = layout
        self.args = (x, h0, *[np.ascontiguousarray(p) for p in layout.to_module(params)])
        self.dh = dh

    def run(self):
        h, cache = self.layout.forward(*self.args)
        grads = self.layout.backward(self.dh, cache)
        return h, grads

    def result(self):
        h, grads = self.run()
        grads = list(grads)
        return np.asarray(h), grads[:2] + self.layout.to_peer(grads[2:])


class StepRunner:
    """The per-step (CS231n-style) NumPy implementation of speedkit.numpy_peers."""

    def __init__(self, cell, x, h0, params, dh):
        self.forward, self.backward = numpy_peers.sequence(cell.name, len(cell.states))
        self.args, self.dh = (x, h0, *params), dh

    def run(self):
        h, cache = self.forward(*self.args)
        return h, self.backward(self.dh, cache)

    def result(self):
        h, grads = self.run()
        return h, list(grads)


@dataclass
class CellSetup:
    cell: object
    impls: list = field(default_factory=list)
    layouts: dict = field(default_factory=dict)  # target -> Layout
    notes: list = field(default_factory=list)


class UserCodegen:
    """`python -m lstmgen codegen` of the benchmarks/cells files, started in the background at once
    (they overlap the imports) and collected when a cell is set up.  A module is replaced only when
    its text changed, so that Numba's cache, keyed by the file's time stamp, stays valid."""

    def __init__(self, cells, targets, folder):
        self.folder = folder
        self.jobs = {}
        for cell in cells:
            for target in targets:
                fresh = folder / (".%s_%s.new" % (cell.name, target))
                command = [sys.executable, "-m", "lstmgen", "codegen", "--cell", str(cell.cell_file()),
                           "-o", str(fresh)]
                if target != "numpy":
                    command += ["--target", target]
                proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                self.jobs[cell.name, target] = (proc, fresh)

    def module(self, cell, target):
        """(path or None, note)."""
        proc, fresh = self.jobs[cell.name, target]
        stdout, stderr = proc.communicate()
        if proc.returncode != 0 or not fresh.is_file():
            lines = (stderr or stdout).strip().splitlines()
            return None, "lstmgen codegen %s--cell %s failed: %s" % (
                "--target %s " % target if target != "numpy" else "", cell.cell_file().relative_to(ROOT),
                lines[-1] if lines else "exit %d" % proc.returncode)
        out = self.folder / ("%s_%s.py" % (cell.name, target))
        if out.is_file() and out.read_bytes() == fresh.read_bytes():
            fresh.unlink()
        else:
            fresh.replace(out)
        return out, ""


def setup_cell(name, codegen, have_numba, want):
    """The implementations of one cell that exist here; `want` filters implementation keys."""
    cell = CELLS[name]
    setup = CellSetup(cell)
    for target in ("numpy", "numba"):
        if target == "numba" and not have_numba:
            setup.notes.append("numba is not installed: no numba target")
            continue
        if cell.user:
            path, note = codegen.module(cell, target)
            if path is None:
                setup.notes.append(note + "; the %s target is skipped" % target)
                continue
        else:
            path = ROOT / "generated" / ("%s_%s.py" % (name, target))
            if not path.is_file():
                setup.notes.append("no %s: the %s target is skipped" % (path.relative_to(ROOT), target))
                continue
        try:
            module = load_module(path, "bench_%s_%s" % (name, target))
            layout = Layout(cell, module)
        except Exception as exc:  # noqa: BLE001 - any failure to import skips the target, with its reason
            setup.notes.append("%s does not import (%s: %s); skipped" % (path.name, type(exc).__name__, exc))
            continue
        setup.notes += ["%s: %s" % (path.name, n) for n in layout.notes]
        setup.layouts[target] = layout
        setup.impls.append(Impl(target, "generated %s" % target, True,
                                lambda x, h0, p, dh, layout=layout: GeneratedRunner(layout, x, h0, p, dh),
                                "tracemalloc" if target == "numpy" else "numba"))
    try:
        from . import torch_peers
    except ImportError as exc:
        setup.notes.append("torch does not import (%s): no torch peers" % exc)
        torch_peers = None
    if torch_peers is not None:
        if cell.torch_nn:
            setup.impls.append(Impl("torch.nn", "torch.nn." + cell.torch_nn, False,
                                    lambda x, h0, p, dh: torch_peers.NNRunner(cell, x, h0, p, dh)))
        setup.impls.append(Impl("torch", "torch eager (hand-written)", False,
                                lambda x, h0, p, dh: torch_peers.EagerRunner(cell, x, h0, p, dh)))
    try:
        from . import jax_peers
    except ImportError as exc:
        setup.notes.append("jax does not import (%s): no JAX peer" % exc)
    else:
        setup.impls.append(Impl("jax", "jax.jit(scan)+vjp", False,
                                lambda x, h0, p, dh: jax_peers.JaxRunner(cell, x, h0, p, dh), "xla"))
    setup.impls.append(Impl("cs231n", "numpy per-step (CS231n)", False,
                            lambda x, h0, p, dh: StepRunner(cell, x, h0, p, dh), "tracemalloc"))
    if want:
        setup.impls = [i for i in setup.impls if i.key in want]
    order = ["torch.nn", "torch", "jax", "cs231n", "numpy", "numba"]
    setup.impls.sort(key=lambda i: order.index(i.key))
    return setup


def make_inputs(cell, N, T, D, H, dtype, seed=0):
    """x, h0, the parameters (peers' layout) and the upstream gradient dh."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((N, H))).astype(dtype)
    params = []
    for p in cell.params:
        shape = p.shape(D, H)
        scale = 1 / math.sqrt(shape[0]) if p.kind != "vec" else 0.3
        params.append((scale * rng.standard_normal(shape)).astype(dtype))
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    return x, h0, params, dh


# ---- the cross-check ---------------------------------------------------------------------------

CHECK_SHAPE = (3, 7, 5, 4)  # N, T, D, H: all different, so that a transposed product cannot pass
CHECK_RTOL = 1e-8


def _rel(a, ref):
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return math.inf
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-300))


def cross_check(setup):
    """Every implementation against the generated numpy module (or, without one, the first
    implementation) at CHECK_SHAPE in float64; the NumPy ones also once in float32, for the dtype
    they return.
    Returns {key: (ok, text)}; failing implementations are removed from setup.impls."""
    cell = setup.cell
    names = ["h", "dx", "dh0"] + ["d" + p.name for p in cell.params]
    x, h0, params, dh = make_inputs(cell, *CHECK_SHAPE, np.float64, seed=7)
    x32, h032, params32, dh32 = make_inputs(cell, *CHECK_SHAPE, np.float32, seed=7)
    results, verdicts = {}, {}
    for impl in setup.impls:
        try:
            h, grads = impl.factory(x, h0, params, dh).result()
            results[impl.key] = [h] + list(grads)
            if impl.key in ("numpy", "numba", "cs231n"):  # torch and JAX keep float32 by construction
                h32, grads32 = impl.factory(x32, h032, params32, dh32).result()
                wrong = [n for n, a in zip(names, [h32] + list(grads32)) if np.asarray(a).dtype != np.float32]
                impl.note = "returns %s for float32 inputs" % ", ".join(wrong) if wrong else ""
        except Exception as exc:  # noqa: BLE001 - a failing implementation is reported and excluded
            verdicts[impl.key] = (False, "raised %s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200]))
    ref_key = "numpy" if "numpy" in results else next(iter(results), None)
    for impl in setup.impls:
        if impl.key not in results:
            continue
        got, ref = results[impl.key], results[ref_key]
        if len(got) != len(ref):
            verdicts[impl.key] = (False, "returned %d arrays, the reference %d" % (len(got), len(ref)))
            continue
        errors = {n: _rel(a, b) for n, a, b in zip(names, got, ref)}
        worst = max(errors, key=errors.get)
        ok = errors[worst] <= CHECK_RTOL
        text = "max rel. error %.1e (%s)" % (errors[worst], worst)
        if not ok:
            text += "; off: " + ", ".join("%s %.1e" % (n, e) for n, e in errors.items() if e > CHECK_RTOL)
        if impl.key == ref_key:
            text = "the reference"
        verdicts[impl.key] = (ok, text + ("; " + impl.note if impl.note else ""))
    setup.impls = [i for i in setup.impls if verdicts.get(i.key, (False,))[0]]
    return verdicts, ref_key


# ---- timing ------------------------------------------------------------------------------------

class Probe:
    """A fixed GEMM timed before and after each round; its median over the run is the reference."""

    def __init__(self, n=768):
        rng = np.random.default_rng(3)
        self.a = rng.standard_normal((n, n)).astype(np.float32)
        self.b = rng.standard_normal((n, n)).astype(np.float32)
        self.c = np.empty((n, n), np.float32)
        self.history = []
        for _ in range(10):
            self()

    def __call__(self):
        runs = []
        for _ in range(3):  # the best of three back-to-back: jitter of the probe itself is not noise
            start = time.perf_counter()
            np.matmul(self.a, self.b, out=self.c)
            runs.append(time.perf_counter() - start)
        self.history.append(min(runs))
        return min(runs)

    def ratio(self, value):
        return value / float(np.median(self.history))


class CpuMeter:
    """The CPU time other processes (and the hypervisor, as steal time) took while we measured,
    as a fraction of the machine: from /proc/stat, less this process's own CPU time.  On a
    shared 2-core machine a busy neighbour slows a 2-thread GEMM far more than its share."""

    LIMIT = 0.05  # a measurement during which others used more than 5% of the machine is noisy

    def __init__(self):
        try:
            self.tick = os.sysconf("SC_CLK_TCK")
            self.cpus = os.cpu_count() or 1
            self._busy()
            self.available = True
        except (OSError, ValueError):
            self.available = False

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        return user + nice + system + irq + softirq + steal

    def start(self):
        if self.available:
            t = os.times()
            self._state = (time.perf_counter(), self._busy(), t.user + t.system)

    def others(self):
        """Share of the machine others used since start() (0 when /proc/stat is not there)."""
        if not self.available:
            return 0.0
        wall0, busy0, own0 = self._state
        t = os.times()
        wall = time.perf_counter() - wall0
        own = t.user + t.system - own0
        others = (self._busy() - busy0) / self.tick - own
        slack = 3.0 / self.tick  # the counters tick at 1/CLK_TCK: forgive three ticks
        return max(0.0, others - slack) / max(wall * self.cpus, 1e-9)


@dataclass
class Timing:
    rounds: dict  # key -> per-call seconds, one per kept round
    reps: dict  # key -> calls per measurement
    attempted: int
    slow_probe: int  # rounds discarded because the probe ran slow
    busy: int  # rounds discarded because other processes used the CPU
    noisy_kept: int = 0  # noisy rounds kept because too few clean ones came

    @property
    def discarded(self):
        return self.attempted - self.kept

    @property
    def kept(self):
        return len(next(iter(self.rounds.values())))

    def median(self, key):
        return float(np.median(self.rounds[key]))

    def spread(self, key):
        return min(self.rounds[key]), max(self.rounds[key])

    def text(self):
        out = "rounds kept %d of %d" % (self.kept, self.attempted)
        if self.slow_probe or self.busy:
            out += " (discarded: %d slow probe, %d other processes busy)" % (self.slow_probe, self.busy)
        if self.noisy_kept:
            out += ", %d NOISY rounds kept for want of clean ones" % self.noisy_kept
        return out


def _timed(runner, reps, prime=False):
    """Seconds per call of `reps` back-to-back calls.  With `prime`, one untimed call first: after
    the pause between implementations the thread pools are asleep, and the first call of a
    millisecond-long function pays their wake-up (10 ms for torch.nn.LSTM at small shapes here)."""
    gc.disable()  # no collection inside the timed calls
    try:
        if prime:
            runner.run()
        start = time.perf_counter()
        for _ in range(reps):
            runner.run()
        return (time.perf_counter() - start) / reps
    finally:
        gc.enable()


def measure(runners, rounds, probe, meter, label, sleep=SLEEP, target=TARGET):
    """runners: {key: runner}.  Warm-up (compiles), then rounds until `rounds` clean ones are kept
    (at most 2 * rounds + 2): each round runs every implementation once in turn, the first one
    rotating, with the probe GEMM before and after and the CPU meter over the whole round."""
    reps, prime = {}, {}
    for key, runner in runners.items():
        runner.run()  # compile / first touch
        time.sleep(min(sleep, 0.05))  # the call count only needs a rough time
        once = _timed(runner, 1, prime=True)
        reps[key] = max(1, min(50, math.ceil(target / max(once, 1e-6))))
        prime[key] = once < PRIME_BELOW
    keys = list(runners)
    clean, noisy = [], []  # (noise score, times)
    slow_probe = busy = attempted = 0
    limit = 2 * rounds + 2
    gc.collect(1)  # the young generations; a full collection costs 0.3 s with torch and jax loaded
    time.sleep(sleep)
    while len(clean) < rounds and attempted < limit:
        meter.start()
        before = probe()
        times = {}
        first = attempted % len(keys)
        for key in keys[first:] + keys[:first]:
            time.sleep(sleep)
            times[key] = _timed(runners[key], reps[key], prime[key])
        time.sleep(sleep)
        after = probe()
        others = meter.others()
        attempted += 1
        worst = max(probe.ratio(before), probe.ratio(after))
        if worst > PROBE_SLOW:
            slow_probe += 1
        elif others > CpuMeter.LIMIT:
            busy += 1
        else:
            clean.append((0.0, times))
            continue
        noisy.append((worst + 10 * others, times))
        log("  %s: round %d discarded (probe %.2fx its median, other processes %.0f%% of the CPUs)"
            % (label, attempted, worst, 100 * others))
    noisy.sort(key=lambda item: item[0])
    fill = noisy[:max(0, rounds - len(clean))]
    if fill:
        log("  %s: only %d clean rounds; keeping the %d least noisy others" % (label, len(clean), len(fill)))
    kept = clean + fill
    timing = Timing({key: [times[key] for _, times in kept] for key in keys}, reps, attempted, slow_probe, busy,
                    len(fill))
    return timing


def numba_allocates(module):
    """Whether a module's compiled Numba functions allocate arrays in Numba's runtime, which
    tracemalloc does not see: True, False, or None when it cannot tell.  Read from the LLVM IR of
    every compiled signature (NRT_MemInfo_alloc* is how Numba allocates an array's memory)."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return None
    dispatchers = [v for v in vars(module).values() if isinstance(v, CPUDispatcher)]
    if not dispatchers:
        return None
    try:
        for dispatcher in dispatchers:
            for ir in dispatcher.inspect_llvm().values():
                if "NRT_MemInfo_alloc" in ir:
                    return True
    except Exception:  # noqa: BLE001 - e.g. a signature loaded from the cache without its IR
        return None
    return False


def peak_memory(runner, kind):
    """Peak bytes of one forward + backward: bytes of the inputs + tracemalloc's peak; None when
    the implementation allocates where tracemalloc cannot see (Numba's runtime), or may."""
    inputs = sum(a.nbytes for a in runner.args) + runner.dh.nbytes
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        runner.run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if kind == "numba" and numba_allocates(runner.layout.module) is not False:
        return None
    return inputs + peak
