"""Speed of the generated forward + backward passes against their peers.  Prints figures; asserts
nothing about speed.

    python benchmarks/speed.py                 # every cell, five shapes; writes docs/benchmark.{md,png}
    python benchmarks/speed.py --quick         # a smoke run: two small shapes, few rounds, no files
    python benchmarks/speed.py --cells lstm gru --shapes 64x50x128x128 --rounds 9 --threads 1 --no-write

For each cell (the built-in ones and benchmarks/cells/*.cell) and shape (N, T, D, H), in float32,
one process times forward + backward of the sequence (dh a random upstream gradient) of:
  * torch.nn.LSTM / GRU / RNN with autograd (the cells PyTorch has a module for);
  * the cell as a hand-written eager PyTorch module with autograd;
  * the cell in JAX: jax.jit of a lax.scan forward and its jax.vjp (compile time excluded);
  * the cell as per-step NumPy in the CS231n assignment's style;
  * our generated targets: generated/<cell>_numpy.py, generated/<cell>_numba.py if present (user
    cells are generated into a temporary folder with `python -m lstmgen codegen` first).
Before timing, a float64 cross-check at a small shape requires every implementation to give the
generated numpy module's h and gradients to 1e-8 relative; any that does not is excluded.
Timing: warm-up, then rounds that run every implementation once in turn (0.2 s apart), median of
the kept rounds; a probe GEMM before and after each round, and the CPU time other processes took
during it (/proc/stat), discard the rounds the machine was busy in.
Floors: the GEMMs the cell minimally needs at the shape, timed with NumPy's BLAS, plus its
minimal elementwise traffic over a measured bandwidth (see speedkit/floors.py); memory against
the minimum the cache needs.  Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

FULL_SHAPES = [(64, 50, 128, 128), (64, 100, 512, 512), (32, 200, 256, 256), (1, 500, 256, 256),
               (128, 20, 1024, 1024)]
QUICK_SHAPES = [(16, 20, 64, 64), (4, 40, 32, 32)]
SWEEP_H = [(32, 50, h, h) for h in (64, 128, 256, 512)]
SWEEP_T = [(32, t, 256, 256) for t in (10, 25, 50, 100, 200)]
QUICK_SWEEP_H = [(8, 10, h, h) for h in (16, 32)]
QUICK_SWEEP_T = [(8, t, 16, 16) for t in (5, 10)]
IMPL_KEYS = ["torch.nn", "torch", "jax", "cs231n", "numpy", "numba"]


def _shape(text):
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError("a shape is NxTxDxH, e.g. 64x50x128x128; got %r" % text)
    return tuple(int(p) for p in parts)


def parse_args(argv=None):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small shapes, two rounds, no sweep and no files "
                        "unless --write (a smoke run)")
    parser.add_argument("--cells", nargs="+", metavar="CELL", help="cells to run (default: all)")
    parser.add_argument("--shapes", nargs="+", type=_shape, metavar="NxTxDxH", help="shapes to run")
    parser.add_argument("--rounds", type=int, help="kept rounds per shape (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=cores, help="threads for BLAS, torch, XLA, numba "
                        "(default: all cores, %d here)" % cores)
    parser.add_argument("--impls", nargs="+", choices=IMPL_KEYS, help="only these implementations")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmark.md and .png")
    parser.add_argument("--write", action="store_true", help="write the docs even with --quick")
    parser.add_argument("--no-sweep", action="store_true", help="skip the LSTM H and T sweeps of the plot")
    args = parser.parse_args(argv)
    args.cores = cores
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    args.write = (args.write or not args.quick) and not args.no_write
    return args


def _openblas_loaded():
    try:
        with open("/proc/self/maps") as maps:
            return "openblas" in maps.read().lower()
    except OSError:
        return "numpy" in sys.modules


def unset_coretype():
    """OPENBLAS_CORETYPE forces a kernel; OpenBLAS reads it when it loads, so it must go before
    numpy does: unset it, and re-execute the script if a BLAS is already loaded."""
    value = os.environ.pop("OPENBLAS_CORETYPE", None)
    if value is None:
        return os.environ.pop("SPEED_UNSET_CORETYPE", None)
    os.environ["SPEED_UNSET_CORETYPE"] = value
    if "numpy" in sys.modules or _openblas_loaded():
        os.execv(sys.executable, [sys.executable] + sys.argv)
    return os.environ.pop("SPEED_UNSET_CORETYPE")


def pin_threads(threads, cores):
    """Thread counts of every library, set before any of them loads.  Returns what was done."""
    done = []
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["NUMBA_NUM_THREADS"] = str(min(threads, cores))
    done.append("OPENBLAS/OMP/MKL_NUM_THREADS=%d, NUMBA_NUM_THREADS=%d" % (threads, min(threads, cores)))
    if threads < cores and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)
        done.append("process pinned to CPUs %s" % ",".join(map(str, cpus)))
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    if os.environ.get("XLA_FLAGS"):
        done.append("XLA_FLAGS=%s" % os.environ["XLA_FLAGS"])
    else:
        done.append("XLA: default thread pool (all %d cores)" % cores)
    if threads > cores:
        done.append("more threads than cores: oversubscribed")
    return done


def work_folder():
    """A folder of the system's temporary directory, kept between runs: the user cells' generated
    modules and Numba's cache (cache=True would otherwise write into generated/__pycache__).  A run
    compiles only what changed; compile time is excluded from the figures either way."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.gettempdir()) / "lstmgen-speed"
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(folder / "numba-cache"))
    return folder


def main(argv=None):
    args = parse_args(argv)
    coretype = unset_coretype()
    pinned = pin_threads(args.threads, args.cores)
    work = work_folder()

    import datetime
    import importlib.util
    import subprocess
    import time

    started = time.perf_counter()

    # the user cells' modules are generated while the libraries below load
    from speedkit.cells import BUILTIN, CELLS, ROOT, USER_CELL_DIR
    from speedkit.harness import UserCodegen

    names = args.cells or BUILTIN + sorted(p.stem for p in USER_CELL_DIR.glob("*.cell"))
    have_numba = importlib.util.find_spec("numba") is not None
    codegen = UserCodegen([CELLS[n] for n in names if n in CELLS and CELLS[n].user],
                          ["numpy", "numba"] if have_numba else ["numpy"], work / "cells")

    import numpy as np

    from speedkit import floors, harness, report
    from speedkit.harness import log

    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(args.threads)
        pinned.append("torch.set_num_threads(%d)" % args.threads)
    if have_numba:
        import numba  # noqa: F401 - loaded now so that threadpoolctl lists its threading layer

    def out(line=""):
        print(line, flush=True)

    # ---- what runs where -----------------------------------------------------------------------
    cpu = _cpu_model()
    blas = _blas_info()
    versions = _versions()
    out("speed benchmark: forward + backward, float32; %d thread(s) on %d core(s) of %s" % (args.threads, args.cores, cpu))
    if coretype is not None:
        out("OPENBLAS_CORETYPE=%s was set: unset before NumPy loaded, so OpenBLAS picks its own kernel" % coretype)
    out("threads: " + "; ".join(pinned))
    out("BLAS: " + blas["numpy"])
    for line in blas["others"]:
        out("  also loaded: " + line)
    out("versions: " + ", ".join("%s %s" % kv for kv in versions))

    unknown = [n for n in names if n not in CELLS]
    for n in unknown:
        out("note: no hand-written peers for cell %r (known: %s); skipped" % (n, ", ".join(CELLS)))
    names = [n for n in names if n in CELLS]
    shapes = args.shapes or (QUICK_SHAPES if args.quick else FULL_SHAPES)
    # a smoke run trades some hygiene for speed: shorter pauses and measurements
    pace = {"sleep": 0.05, "target": 0.01} if args.quick else {"sleep": harness.SLEEP, "target": harness.TARGET}

    probe = harness.Probe()
    meter = harness.CpuMeter()
    bandwidth = floors.bandwidth(64 if args.quick else 256)
    out("memory bandwidth (single-threaded np.add, 3 arrays counted): %.1f GB/s; probe GEMM median %.2f ms"
        % (bandwidth / 1e9, float(np.median(probe.history)) * 1e3))

    # ---- set-up and cross-check ----------------------------------------------------------------
    setups, checks, notes = {}, [], []
    out("")
    out("cross-check: float64, (N,T,D,H) = %s, h and every gradient against the generated numpy module, "
        "relative tolerance %.0e" % (report.shape_text(harness.CHECK_SHAPE), harness.CHECK_RTOL))
    for name in names:
        log("set-up and cross-check of %s" % name)
        setup = harness.setup_cell(name, codegen, have_numba, args.impls)
        for note in setup.notes:
            out("  note (%s): %s" % (name, note))
            notes.append("%s: %s" % (name, note))
        if not any(i.ours for i in setup.impls):
            out("  %s: none of our targets is available; cell skipped" % name)
            continue
        labels = {i.key: i.label for i in setup.impls}
        verdicts, ref = harness.cross_check(setup)
        if ref != "numpy":
            out("  !!! %s: no generated numpy module to check against; the reference is %s" % (name, labels.get(ref)))
            notes.append("%s: cross-check reference is %s (no generated numpy module)" % (name, labels.get(ref)))
        for key, label in labels.items():
            ok, text = verdicts.get(key, (False, "no result"))
            out("  %-14s %-28s %s  %s" % (name, label, "pass" if ok else "FAIL", text))
            checks.append((name, label, ok, text))
            if not ok:
                out("  !!! %s %s DISAGREES with the reference: EXCLUDED from the timings" % (name, label))
                notes.append("%s: %s EXCLUDED, it disagrees with the reference (%s)" % (name, label, text))
        if any(i.ours for i in setup.impls):
            setups[name] = setup
        else:
            out("  !!! %s: none of our targets passed the cross-check; cell skipped" % name)

    # ---- timing --------------------------------------------------------------------------------
    results, labels_of = {}, {}
    for name, setup in setups.items():
        cell = setup.cell
        labels_of[name] = {i.key: i.label for i in setup.impls}
        results[name] = []
        layout = setup.layouts.get("numpy") or next(iter(setup.layouts.values()))
        for shape in shapes:
            N, T, D, H = shape
            log("%s %s: warm-up and %d rounds of %s" % (name, report.shape_text(shape), args.rounds,
                                                          ", ".join(labels_of[name].values())))
            x, h0, params, dh = harness.make_inputs(cell, N, T, D, H, np.float32)
            runners = {i.key: i.factory(x, h0, params, dh) for i in setup.impls}
            timing = harness.measure(runners, args.rounds, probe, meter, "%s %s" % (name, report.shape_text(shape)),
                                     **pace)
            gemms = floors.gemm_list(cell, layout, N, T, D, H)
            gemm_s = floors.time_gemms(gemms, np.float32, meter)
            elem_s = floors.elementwise_bytes(cell, N, T, H, 4) / bandwidth
            floor_bytes = floors.memory_floor(cell, layout, N, T, D, H, 4)
            memory = {}
            for impl in setup.impls:
                runner = runners[impl.key]
                try:
                    if impl.memory in ("tracemalloc", "numba"):
                        peak = harness.peak_memory(runner, impl.memory)
                        memory[impl.key] = None if peak is None else peak / floor_bytes
                    elif impl.memory == "xla":
                        memory[impl.key] = (runner.memory() / floor_bytes, "xla")
                except Exception as exc:  # noqa: BLE001 - a figure we cannot get is reported as n/a
                    log("  memory of %s: %s" % (impl.label, exc))
            result = report.ShapeResult(shape, timing, labels_of[name], {i.key for i in setup.impls if i.ours},
                                        gemm_s, elem_s, gemms, memory)
            results[name].append(result)
            report.print_shape(name, result, out)
            del runners

    if results:
        report.print_summary(results, labels_of, out)

    # ---- LSTM sweeps for the plot, and the files ---------------------------------------------
    sweeps = {}
    if args.write and not args.no_sweep and "lstm" in setups:
        setup = setups["lstm"]
        labels = {i.key: i.label for i in setup.impls}
        h_points, t_points = (QUICK_SWEEP_H, QUICK_SWEEP_T) if args.quick else (SWEEP_H, SWEEP_T)
        sweep_rounds = args.rounds if args.quick else max(3, args.rounds // 2)
        panels = (("H sweep: N=%d, T=%d, D=H" % h_points[0][:2], h_points),
                  ("T sweep: N=%d, D=H=%d" % (t_points[0][0], t_points[0][3]), t_points))
        for panel, points in panels:
            sweeps[panel] = []
            for shape in points:
                log("lstm sweep %s" % report.shape_text(shape))
                x, h0, params, dh = harness.make_inputs(setup.cell, *shape, np.float32)
                runners = {i.key: i.factory(x, h0, params, dh) for i in setup.impls}
                timing = harness.measure(runners, sweep_rounds, probe, meter, "sweep " + report.shape_text(shape), **pace)
                sweeps[panel].append((shape, report.median_times(timing, labels)))
        out("")
        out("LSTM sweeps (median ms):")
        for line in report.sweep_table(sweeps).splitlines():
            out("  " + line)

    elapsed = time.perf_counter() - started
    out("")
    out("total run time %.0f s" % elapsed)
    if args.write and results:
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        machine = [("CPU", cpu), ("cores", "%d (os.cpu_count %s)" % (args.cores, os.cpu_count())),
                   ("threads", "%d: %s" % (args.threads, "; ".join(pinned))),
                   ("BLAS (NumPy)", blas["numpy"])] + [("also loaded", b) for b in blas["others"]]
        if coretype is not None:
            machine.append(("OPENBLAS_CORETYPE", "%s in the environment, unset before NumPy loaded" % coretype))
        machine += [("memory bandwidth", "%.1f GB/s (single-threaded np.add)" % (bandwidth / 1e9)),
                    ("versions", ", ".join("%s %s" % kv for kv in versions)),
                    ("code", _git_state(ROOT, subprocess)),
                    ("date", datetime.datetime.now().astimezone().isoformat(timespec="minutes")),
                    ("run time", "%.0f s, load average at the end %s" % (elapsed, _loadavg()))]
        context = {
            "command": " ".join(["python", "benchmarks/speed.py"] + (argv if argv is not None else sys.argv[1:])),
            "machine": machine,
            "method": _method_lines(args, harness, pace),
            "check_shape": report.shape_text(harness.CHECK_SHAPE),
            "checks": checks,
            "notes": notes,
            "sweep": report.sweep_table(sweeps) if sweeps else "",
        }
        (docs / "benchmark.md").write_text(report.markdown(results, labels_of, context), encoding="utf-8")
        if sweeps:
            report.plot(sweeps, docs / "benchmark.png", "LSTM forward + backward, float32, %d thread(s), %s"
                        % (args.threads, cpu))
        out("wrote %s%s" % ((docs / "benchmark.md").relative_to(ROOT), " and docs/benchmark.png" if sweeps else ""))
    elif args.quick and not args.no_write:
        out("(--quick writes no files; add --write to write docs/benchmark.md)")
    return 0


def _method_lines(args, harness, pace):
    return [
        "forward + backward of the sequence functions, float32, every implementation in one process; "
        "dh is a random upstream gradient",
        "per shape: one warm-up call per implementation (JAX compiles and Numba compiles there), then rounds; "
        "a round runs each implementation once in turn, the first one rotating, %.2g s apart; a measurement "
        "repeats the call until it lasts about %.2g s (at most 50 calls) and takes the mean; a call shorter than "
        "%.0f ms is preceded by one untimed call, because after the pause the thread pools sleep and the first "
        "call pays their wake-up (measured: torch.nn.LSTM at (16,20,64,64) takes 12 ms after a 0.1 s pause, 0.7 ms "
        "back to back)" % (pace["sleep"], pace["target"], 1e3 * harness.PRIME_BELOW),
        "a probe GEMM (768x768x768, best of 3) runs before and after every round; a round in which it ran "
        "slower than %.1fx the median of all probes is discarded and replaced (up to %d attempts for %d kept rounds); "
        "so is a round in which other processes (or the hypervisor, as steal time) used more than %.0f%% of the CPUs, "
        "from /proc/stat less this process's CPU time; when too few clean rounds come, the least noisy are kept and "
        "counted as NOISY" % (harness.PROBE_SLOW, 2 * args.rounds + 2, args.rounds, 100 * harness.CpuMeter.LIMIT),
        "time = median of the kept rounds, [min-max] their spread",
        "ratio = time / the fastest peer's time at that shape (peers: torch.nn, hand-written torch eager, JAX, "
        "per-step NumPy; our targets are not counted)",
        "floor = GEMMs + elementwise traffic; GEMMs: per matrix parameter (rows, cols) of the generated module, "
        "a matrix on x costs one batched forward product (T*N,rows)x(rows,cols), one input-gradient product "
        "(T*N,cols)x(cols,rows) and one weight-gradient product (rows,T*N)x(T*N,cols); a matrix on a recurrent "
        "vector costs T products (N,rows)x(rows,cols) forward, T products (N,cols)x(cols,rows) backward and one "
        "batched weight-gradient product; each distinct GEMM timed alone with NumPy's BLAS at this thread count, "
        "in the fastest storage order of its operands (median of 3-7 runs). The floor is NumPy's BLAS: an "
        "implementation with a faster BLAS for some of these products (torch's own, XLA's) can exceed 100%",
        "elementwise traffic = (2G + 2K + 3)*T*N*H*4 bytes (G gate pre-activation blocks, K per-step arrays the "
        "backward needs besides h) over the single-threaded np.add bandwidth; fraction of the floor = floor / time",
        "memory floor = inputs (x, h0, parameters, dh) + output h + returned gradients (dx, dh0, parameter "
        "gradients) + the per-step arrays the backward cannot recompute, T*N*K*H*4 bytes; peak = bytes of the "
        "inputs + tracemalloc's peak during one forward + backward (NumPy implementations); JAX: XLA's "
        "compile-time buffer assignment (arguments + outputs + temporaries), marked (XLA); torch: n/a; "
        "Numba: tracemalloc's figure when the compiled loops allocate no arrays (no NRT_MemInfo_alloc in their "
        "LLVM IR), else n/a (tracemalloc does not see Numba's runtime)",
        "the cross-check compares in float64 at (N,T,D,H) = (3,7,5,4); our targets and the per-step NumPy are "
        "also checked to return float32 for float32 inputs",
    ]


def _cpu_model():
    model, family, number = "unknown CPU", "", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and model == "unknown CPU":
                    model = value
                elif key == "cpu family" and not family:
                    family = value
                elif key == "model" and not number:
                    number = value
    except OSError:
        pass
    return "%s (family %s, model %s)" % (model, family, number) if family else model


def _blas_info():
    import numpy as np  # noqa: F401 - threadpoolctl only lists loaded libraries

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"numpy": "threadpoolctl is not installed (pip install threadpoolctl): kernel unknown", "others": []}
    numpy_line, others = None, []
    for info in threadpool_info():
        text = "%s %s, architecture %s, num_threads %s (%s)" % (
            info.get("internal_api"), info.get("version") or "", info.get("architecture", "-"),
            info.get("num_threads"), info.get("prefix"))
        if numpy_line is None and info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            numpy_line = text
        else:
            others.append(text)
    torch_line = _torch_blas()
    if torch_line:
        others.append(torch_line)
    return {"numpy": numpy_line or "not found", "others": others}


def _torch_blas():
    """torch links its BLAS in (threadpoolctl does not list it): what torch.__config__ says."""
    try:
        import torch
    except ImportError:
        return None
    text = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", text)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", text)
    isa = re.search(r"CPU capability usage: (\w+)", text)
    return "torch: BLAS_INFO=%s%s, CPU capability %s, %d threads" % (
        blas.group(1) if blas else "?", " (MKL %s, linked into torch)" % mkl.group(1) if mkl else "",
        isa.group(1) if isa else "?", torch.get_num_threads())


def _versions():
    import importlib.metadata
    import platform

    out = [("python", platform.python_version())]
    for name in ("numpy", "torch", "jax", "jaxlib", "numba", "sympy", "threadpoolctl"):
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def _git_state(root, subprocess):
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "generated", "lstmgen", "templates"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    if not head:
        return "not a git checkout"
    return "commit %s%s" % (head, ", with uncommitted changes in generated/, lstmgen/ or templates/" if dirty else "")


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
