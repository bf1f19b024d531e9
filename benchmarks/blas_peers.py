"""The GEMM floor of a cell with NumPy's BLAS and with torch's, side by side (issue 8).

    python benchmarks/blas_peers.py [--cell lstm] [--shapes 64x100x512x512 ...]

benchmarks/speed.py measures its floor with NumPy's BLAS, the one the generated modules call.
torch.nn.LSTM multiplies with the BLAS linked into torch (MKL on these wheels).  This script times
the same list of GEMMs (speedkit.floors.gemm_list: the batched input products, the T recurrent
products each way and the weight gradients) with both, interleaved, each product into a buffer it
reuses, in the operands' row-major order, median of 5 rounds, and prints both sums and their ratio:
where torch's BLAS is faster, no module built on NumPy's BLAS can match torch.nn.LSTM by being
as GEMM-bound as it is.  Thread counts: both libraries at the machine's cores.  Prints figures;
asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedkit.cells import CELLS, load_module  # noqa: E402
from speedkit.floors import _median_time, gemm_list  # noqa: E402
from speedkit.harness import Layout  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["64x50x128x128", "64x100x512x512", "32x200x256x256", "1x500x256x256", "128x20x1024x1024"]


def _seconds(run, repeat=3) -> float:
    """Median seconds of `repeat` calls of `run` after one untimed call."""
    run()
    return _median_time(run, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=sorted(c for c in CELLS if not CELLS[c].user))
    parser.add_argument("--shapes", nargs="+", default=SHAPES, metavar="NxTxDxH")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    cell = CELLS[args.cell]
    layout = Layout(cell, load_module(ROOT / "generated" / f"{args.cell}_numpy.py", "blas_" + args.cell))
    print(f"{args.cell}: GEMM floor per forward + backward, float32, {threads} threads; NumPy "
          f"{np.__version__} (its BLAS), torch {torch.__version__} ({torch.__config__.show().count('MKL')} "
          f"mentions of MKL in its build); load average {os.getloadavg()[0]:.2f} at the start")
    rng = np.random.default_rng(0)
    for text in args.shapes:
        N, T, D, H = (int(v) for v in text.split("x"))
        gemms = gemm_list(cell, layout, N, T, D, H)
        operands = []
        for g in gemms:
            a = rng.standard_normal((g.m, g.k)).astype(np.float32)
            b = rng.standard_normal((g.k, g.n)).astype(np.float32)
            c = np.empty((g.m, g.n), np.float32)
            operands.append((g, a, b, c, torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)))
        rounds = {"numpy": [], "torch": []}
        for _ in range(args.rounds):
            for library in ("numpy", "torch") if len(rounds["numpy"]) % 2 == 0 else ("torch", "numpy"):
                total = 0.0
                for g, a, b, c, ta, tb, tc in operands:
                    if library == "numpy":
                        def run(a=a, b=b, c=c, count=g.count):
                            for _ in range(count):
                                np.matmul(a, b, out=c)
                    else:
                        def run(a=ta, b=tb, c=tc, count=g.count):
                            for _ in range(count):
                                torch.mm(a, b, out=c)
                    total += _seconds(run)
                rounds[library].append(total)
                time.sleep(0.2)  # the BLAS threads spin for a while after the last product
        numpy_ms, torch_ms = (1e3 * float(np.median(rounds[k])) for k in ("numpy", "torch"))
        spread = {k: "%.1f-%.1f" % (1e3 * min(v), 1e3 * max(v)) for k, v in rounds.items()}
        print(f"({N},{T},{D},{H}): NumPy's BLAS {numpy_ms:.1f} ms [{spread['numpy']}], torch's BLAS "
              f"{torch_ms:.1f} ms [{spread['torch']}]; torch / NumPy {torch_ms / numpy_ms:.2f}")


if __name__ == "__main__":
    main()
