"""Compare generated modules' sequence forward + backward by CPU time, for a quick before/after.

    OPENBLAS_NUM_THREADS=1 python benchmarks/compare_modules.py lstm OLD.py NEW.py [MORE.py ...]

Each module's <cell>_forward and <cell>_backward run on the same float32 arrays, interleaved (the
order alternates), 7 times after a warm-up; the figure is the median of the calling thread's CPU
time (time.thread_time), which other processes on a shared machine disturb far less than the wall
clock -- with one BLAS thread it is all the work.  Ratios are to the first module.  This is not the
benchmark (benchmarks/speed.py, with peers and floors); it says whether a change made code faster.
Shapes: SHAPES="N,T,D,H ..." (default: the benchmark's five).
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import time

import numpy as np

SHAPES = "64,50,128,128 64,100,512,512 32,200,256,256 1,500,256,256 128,20,1024,1024"


def load(path: str, index: int):
    spec = importlib.util.spec_from_file_location("compared_%d" % index, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arguments(forward, sizes: dict, rng) -> list:
    """Random float32 arrays in the shapes the forward's docstring gives ("x: (N, T, D) ...")."""
    out = []
    for name in inspect.signature(forward).parameters:
        shape = re.search(r"^\s+%s: \(([^)]*)\)" % re.escape(name), forward.__doc__, re.M).group(1)
        dims = []
        for dim in filter(None, (d.strip() for d in shape.split(","))):
            factor, _, symbol = dim.rpartition("*")
            dims.append(int(factor or 1) * sizes[symbol.strip()])
        scale = 1.0 if name in ("x", "h0") else 0.1
        out.append((rng.standard_normal(dims) * scale).astype(np.float32))
    return out


def main(cell: str, paths: list[str]) -> None:
    modules = [load(path, k) for k, path in enumerate(paths)]
    for shape in os.environ.get("SHAPES", SHAPES).split():
        N, T, D, H = map(int, shape.split(","))
        rng = np.random.default_rng(0)
        args = arguments(getattr(modules[0], cell + "_forward"), {"N": N, "T": T, "D": D, "H": H}, rng)
        dh = rng.standard_normal((N, T, H)).astype(np.float32)
        times = [[] for _ in modules]
        for rep in range(8):
            order = list(enumerate(modules)) if rep % 2 else list(enumerate(modules))[::-1]
            for k, module in order:
                started = time.thread_time()
                _, cache = getattr(module, cell + "_forward")(*args)
                getattr(module, cell + "_backward")(dh, cache)
                if rep:  # the first round is the warm-up
                    times[k].append(time.thread_time() - started)
        base = np.median(times[0])
        print(shape, "  ".join("%s %.1f ms (%.2f)" % (os.path.basename(p), np.median(t) * 1e3, np.median(t) / base)
                               for p, t in zip(paths, times)))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
