"""Benchmarks: where `lstmgen build` and `lstmgen check` spend their time, and how fast the
generated NumPy code is next to its peers.  Prints figures and ratios; asserts nothing.

    python benchmarks/bench.py            # everything
    python benchmarks/bench.py build      # one part: build, check or numpy
"""
from __future__ import annotations

import os

# one BLAS thread, like torch.set_num_threads(1) below: a fair ratio, and no thread spinning on
# a shared 2-core machine
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib.util  # noqa: E402 - after the thread settings above
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed" / "lstm_backward_handwritten.md"


def wall(command, repeat=3, ok=(0,)):
    """Best wall time of a fresh interpreter running `command` (which must exit with a code in `ok`)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if proc.returncode not in ok:
            raise SystemExit("%s failed (exit %d): %s" % (" ".join(command[1:]), proc.returncode, proc.stderr[-500:]))
    return best


def bench_build():
    with tempfile.TemporaryDirectory() as out:
        cold = wall([sys.executable, "-m", "lstmgen", "build", "--out", out])
    bare = wall([sys.executable, "-c", "import sympy, numpy, jinja2, lark"])
    print("lstmgen build, cold process:         %6.2f s" % cold)
    print("  of which Python + sympy/numpy/jinja2/lark imports: %5.2f s" % bare)
    start = time.perf_counter()
    from lstmgen import render, reverse
    imported = time.perf_counter()
    derivations = {name: reverse.derive(name) for name in render.BUILD_CELLS}
    derived = time.perf_counter()
    docs = {name: [render.render_document(name, fmt) for fmt in render.FORMATS] for name in render.BUILD_CELLS}
    documented = time.perf_counter()
    modules = {name: render.render_module(name) for name in render.BUILD_CELLS}
    generated = time.perf_counter()
    print("  in-process: import lstmgen %.2f s, derive %d cells %.2f s, documents %.2f s, modules %.2f s"
          % (imported - start, len(derivations), derived - imported, documented - derived, generated - documented))
    del docs, modules


def bench_check():
    if not SEED.is_file():
        print("check: the seed document is not beside the project; skipped")
        return
    cold = wall([sys.executable, "-m", "lstmgen", "check", str(SEED), "--json"], ok=(1,))  # 1: it finds the errors
    startup = wall([sys.executable, "-c", "import lstmgen.checker, lstmgen.reverse"])
    print("lstmgen check seed, cold process:    %6.2f s (start-up and imports %.2f s)" % (cold, startup))
    from lstmgen import check
    text = SEED.read_text(encoding="utf-8")
    start = time.perf_counter()
    check(text, cell="lstm")
    first = time.perf_counter() - start
    start = time.perf_counter()
    check(text, cell="lstm")
    again = time.perf_counter() - start
    print("  in-process: first check %.2f s (builds the numeric witnesses), again %.2f s" % (first, again))
    bench_check_notation()


def bench_check_notation():
    """A document in another author's notation, 60 backward equations: the cell is learned from
    its forward equations first, so every run pays for that (median of 5, after one warm-up)."""
    from lstmgen import check
    source = (ROOT / "tests" / "notation_corpus" / "gamma_course.md").read_text(encoding="utf-8")
    head, _, backward = source.partition("## Backward")
    per_copy = backward.count("$$") // 2
    text = head + ("## Backward" + backward) * -(-60 // per_copy)
    report = check(text)
    count = sum(1 for e in report.equations if e.kind != "forward")
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        check(text)
        runs.append(time.perf_counter() - start)
    runs.sort()
    print("  a %d-equation document in its own notation (the cell learned from it): %.2f s median "
          "(min %.2f, max %.2f)" % (count, runs[2], runs[0], runs[-1]))


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best(fn, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_numpy(N=32, T=50, D=64, H=128):
    """Generated modules against torch.nn with autograd, forward + backward over a sequence."""
    print("forward + backward, N=%d T=%d D=%d H=%d, float64, one thread each:" % (N, T, D, H))
    for cell, gates in (("lstm", 4), ("gru", 3)):
        _compare_with_torch(cell, gates, N, T, D, H)


def _compare_with_torch(cell, gates, N, T, D, H):
    rng = np.random.default_rng(0)
    x, h0, dh = rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), rng.standard_normal((N, T, H))
    module = _load(ROOT / "generated" / (cell + "_torch_numpy.py"))
    weights = [rng.standard_normal((gates * H, D)) * 0.1, rng.standard_normal((gates * H, H)) * 0.1,
               np.zeros(gates * H), np.zeros(gates * H)]
    forward, backward = getattr(module, cell + "_forward"), getattr(module, cell + "_backward")

    def ours():
        h, cache = forward(x, h0, *weights)
        backward(dh, cache)

    ours_s = _best(ours)
    line = "  generated %s (torch layout): %6.1f ms" % (cell, ours_s * 1e3)
    try:
        import torch
    except ImportError:
        print(line + "   (torch is not installed: no ratio)")
        return
    torch.set_num_threads(1)
    layer = getattr(torch.nn, cell.upper())(D, H, batch_first=True).double()
    xt, h0t, dht = torch.tensor(x, requires_grad=True), torch.tensor(h0[None]), torch.tensor(dh)
    state = (h0t, torch.zeros_like(h0t)) if cell == "lstm" else h0t

    def theirs():
        out, _ = layer(xt, state)
        out.backward(dht)

    torch_s = _best(theirs)
    print(line + "   torch.nn.%s + autograd: %6.1f ms   generated/torch = %.2f"
          % (cell.upper(), torch_s * 1e3, ours_s / torch_s))


if __name__ == "__main__":
    parts = sys.argv[1:] or ["build", "check", "numpy"]
    for part in parts:
        {"build": bench_build, "check": bench_check, "numpy": bench_numpy}[part]()
