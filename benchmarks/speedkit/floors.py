"""Floors a forward + backward cannot go below on this machine: the GEMMs a cell minimally
needs, timed with NumPy's BLAS, plus its minimal elementwise memory traffic at a measured
bandwidth; and the memory the cache minimally needs.

GEMMs, per matrix parameter W of shape (rows, cols) (read from the generated module):
  * W multiplies the input x: one batched product over all steps each for the forward
    (T*N, rows) x (rows, cols), the input gradient (T*N, cols) x (cols, rows) and the weight
    gradient (rows, T*N) x (T*N, cols);
  * W multiplies a recurrent per-step vector (h[t-1], or r = f * h[t-1] in the MGU): T products
    (N, rows) x (rows, cols) in the forward and T products (N, cols) x (cols, rows) in the
    backward (each step needs the previous one), and one batched weight gradient
    (rows, T*N) x (T*N, cols), since all steps' vectors are there once the backward is done.
Each distinct GEMM is timed alone with np.matmul(out=) in the fastest storage order of its
operands (median of several runs); the floor is NumPy's BLAS, so an implementation with a
faster BLAS or fused kernels can run above 100% of it.

Elementwise traffic, in (N, H) blocks per step: the forward reads the G gate pre-activations
and writes h and the K other per-step arrays the backward needs; the backward reads dh, h
and those K arrays, and writes the G pre-activation gradients the GEMMs consume:
(2G + 2K + 3) * T * N * H * itemsize bytes, over the bandwidth of a large single-threaded
np.add(a, b, out=c) (three arrays of bytes counted, write-allocate not).

Memory floor of forward + backward: x, h0, the parameters and dh (inputs); h (output);
dx, dh0 and the parameter gradients (returned); and the K per-step arrays of the cache,
T * N * K * H * itemsize.  Measured peak = bytes of the inputs + tracemalloc's peak during the
call (which sees NumPy's allocations, not the inputs allocated before it started).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Gemm:
    m: int
    k: int
    n: int
    count: int
    what: str

    def text(self):
        times = "%d x " % self.count if self.count > 1 else ""
        return "%s(%d,%d)x(%d,%d) %s" % (times, self.m, self.k, self.k, self.n, self.what)


def gemm_list(cell, layout, N, T, D, H):
    out = []
    for p in cell.params:
        shape = layout.shape(p, D, H)
        if len(shape) != 2:
            continue
        rows, cols = shape
        if layout.is_input_matrix(p):
            out += [Gemm(T * N, rows, cols, 1, p.name + " forward"), Gemm(T * N, cols, rows, 1, "d_input via " + p.name),
                    Gemm(rows, T * N, cols, 1, "d" + p.name)]
        else:
            out += [Gemm(N, rows, cols, T, p.name + " forward"), Gemm(N, cols, rows, T, "d_state via " + p.name),
                    Gemm(rows, T * N, cols, 1, "d" + p.name)]
    return out


def _median_time(fn, repeat):
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return float(np.median(runs))


_GEMM_MEMO = {}


def _one_gemm(g, dtype, meter):
    """Median seconds of `count` products (m,k)x(k,n) with np.matmul(out=), in the fastest of the
    four storage orders of the operands (a GEMV is much faster on one of them).  Measured again
    (up to three times) while the CPU meter sees other processes busy."""
    key = (g.m, g.k, g.n, g.count, np.dtype(dtype).str)
    if key in _GEMM_MEMO:
        return _GEMM_MEMO[key]
    rng = np.random.default_rng(1)
    a_c = rng.standard_normal((g.m, g.k)).astype(dtype)
    b_c = rng.standard_normal((g.k, g.n)).astype(dtype)
    c = np.empty((g.m, g.n), dtype=dtype)
    variants = [(a, b) for a in (a_c, np.asfortranarray(a_c)) for b in (b_c, np.asfortranarray(b_c))]
    trial = min(g.count, 50)

    def calls(a, b, count):
        def run():
            for _ in range(count):
                np.matmul(a, b, out=c)
        return run

    for a, b in variants:
        calls(a, b, 1)()  # warm-up
    for _ in range(3):
        meter.start()
        best = min(variants, key=lambda ab: _median_time(calls(*ab, trial), 3))
        run = calls(*best, g.count)
        once = _median_time(run, 1)
        value = _median_time(run, max(3, min(7, int(0.3 / max(once, 1e-9)))))
        if meter.others() <= meter.LIMIT:
            break
    _GEMM_MEMO[key] = value
    return value


def time_gemms(gemms, dtype, meter):
    """The GEMM floor: sum over the list of each GEMM's median time (as often as it occurs)."""
    return sum(_one_gemm(g, dtype, meter) for g in gemms)


def bandwidth(megabytes=256, repeat=7):
    """Bytes per second of np.add(a, b, out=c) over arrays of `megabytes` each (best of `repeat`)."""
    n = megabytes * 2 ** 20 // 4
    a, b, c = np.ones(n, np.float32), np.ones(n, np.float32), np.empty(n, np.float32)
    np.add(a, b, out=c)
    best = min(_median_time(lambda: np.add(a, b, out=c), 1) for _ in range(repeat))
    return 3 * a.nbytes / best


def elementwise_bytes(cell, N, T, H, itemsize):
    return (2 * cell.gates + 2 * len(cell.cached) + 3) * T * N * H * itemsize


def memory_floor(cell, layout, N, T, D, H, itemsize):
    params = sum(int(np.prod(layout.shape(p, D, H))) for p in cell.params)
    inputs = N * T * D + N * H + params + N * T * H  # x, h0, parameters, dh
    outputs = N * T * H  # h
    grads = N * T * D + N * H + params  # dx, dh0, parameter gradients
    cache = T * N * len(cell.cached) * H
    return (inputs + outputs + grads + cache) * itemsize
