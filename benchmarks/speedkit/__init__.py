"""Helpers of benchmarks/speed.py: the benchmarked cells, their hand-written peers (PyTorch,
JAX, per-step NumPy), the GEMM and memory floors, and the report.  Nothing here imports
numpy, torch or jax at import time of this package: speed.py pins the thread counts first."""
