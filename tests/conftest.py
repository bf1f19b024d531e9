"""Shared test helpers: optional witnesses that CI makes mandatory, loading generated modules, and
running the command line."""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def require(module: str, flag: str):
    """Import `module`, or skip the calling test with the reason; fail instead when the environment
    variable `flag` is 1 (CI sets it, so a missing witness never passes silently there)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get(flag) == "1":
            pytest.fail(f"{module} is required ({flag}=1) but cannot be imported: {exc}")
        pytest.skip(f"{module} cannot be imported ({exc}); set {flag}=1 to turn this skip into a failure")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the independent autodiff oracle (see `require`)."""
    return require("torch", "LSTMGEN_REQUIRE_TORCH")


def needs(target: str) -> None:
    """Skip (or, in CI, fail) a test of the numba target where Numba is missing (see `require`)."""
    if target == "numba":
        require("numba", "LSTMGEN_REQUIRE_NUMBA")


@pytest.fixture(scope="session")
def module(tmp_path_factory):
    """module(cell, layout, target): the generated module of a built-in cell, rendered now, loaded once."""
    from lstmgen import render

    loaded = {}

    def load(cell: str, layout: str = "cs231n", target: str = "numpy"):
        needs(target)
        if (cell, layout, target) not in loaded:
            name = "{}_{}_{}".format(cell, layout.replace("-", "_"), target)
            path = tmp_path_factory.mktemp("modules") / f"{name}.py"
            path.write_text(render.render_module(cell, layout, target), encoding="utf-8")
            loaded[cell, layout, target] = load_module(path, "lstmgen_module_" + name)
        return loaded[cell, layout, target]

    return load


def load_module(path: Path, name: str):
    """Import the Python file at `path` as a module called `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def numpy_module(tmp_path_factory):
    """numpy_module(cell, source): the NumPy module of `cell`, either rendered now by
    render.render_module (source "rendered") or the checked-in generated/<cell>_numpy.py ("generated")."""
    from lstmgen import render

    loaded = {}

    def load(cell: str, source: str = "rendered"):
        if (cell, source) not in loaded:
            if source == "rendered":
                path = tmp_path_factory.mktemp("codegen") / f"{cell}_numpy.py"
                path.write_text(render.render_module(cell), encoding="utf-8")
            else:
                path = ROOT / "generated" / f"{cell}_numpy.py"
            loaded[cell, source] = load_module(path, f"lstmgen_test_{source}_{cell}")
        return loaded[cell, source]

    return load


def run_cli(*args, cwd=None, input: str | bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m lstmgen ARGS` in a fresh interpreter, UTF-8 output captured as text; `input` is
    its standard input (text is sent as UTF-8), else none."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    raw = input.encode("utf-8") if isinstance(input, str) else input
    proc = subprocess.run([sys.executable, "-m", "lstmgen", *map(str, args)], capture_output=True, input=raw,
                          stdin=None if raw is not None else subprocess.DEVNULL, env=env, cwd=cwd or ROOT,
                          timeout=300)
    proc.stdout, proc.stderr = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    return proc


def assert_one_line_error(proc, fragment: str = "") -> None:
    """Exit code 2, no traceback, exactly one line on stderr, and that line names `fragment`."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]


# ----------------------------------------------------------------------------- gradient checks
def scale_error(numeric, analytic) -> float:
    """max |difference| relative to the larger array's largest entry (never elementwise: an entry
    that is zero by cancellation would turn finite-difference noise into a huge 'relative' error)."""
    import numpy as np

    scale = max(np.max(np.abs(numeric)), np.max(np.abs(analytic)), 1e-12)
    return float(np.max(np.abs(np.asarray(numeric) - np.asarray(analytic))) / scale)


def functions(module, cell: str, level: str):
    """(forward, backward) of a generated module at one level: 'step' or 'sequence'."""
    if level == "step":
        return getattr(module, cell + "_step_forward"), getattr(module, cell + "_step_backward")
    return getattr(module, cell + "_forward"), getattr(module, cell + "_backward")


def numerical_gradient(loss, args, k, step=1e-6):
    """Central differences in float64 of loss(*args) with respect to args[k], on private copies."""
    import numpy as np

    args = [a.copy() for a in args]
    grad = np.zeros_like(args[k])
    for index in np.ndindex(args[k].shape):
        old = args[k][index]
        args[k][index] = old + step
        plus = loss(*args)
        args[k][index] = old - step
        minus = loss(*args)
        args[k][index] = old
        grad[index] = (plus - minus) / (2 * step)
    return grad


def assert_gradients(forward, backward, args, rng, tolerance=1e-7, step=1e-6):
    """Every gradient of `backward` against central differences of L = sum(outputs * upstream),
    with random upstream gradients; then once more along one random direction through all inputs."""
    import numpy as np

    *outputs, cache = forward(*args)
    upstream = [rng.randn(*out.shape) for out in outputs]
    grads = backward(*upstream, cache)
    assert len(grads) == len(args)

    def loss(*a):
        return sum(float(np.sum(out * up)) for out, up in zip(forward(*a)[:-1], upstream))

    for k, (arg, grad) in enumerate(zip(args, grads)):
        assert grad.shape == arg.shape, (k, grad.shape, arg.shape)
        error = scale_error(numerical_gradient(loss, args, k, step), grad)
        assert error < tolerance, f"gradient {k}: error {error:.2e}"
    direction = [rng.randn(*a.shape) for a in args]
    norm = np.sqrt(sum(float(np.sum(v * v)) for v in direction))
    direction = [v / norm for v in direction]  # a unit step, as accurate as the per-entry ones
    plus = loss(*[a + step * v for a, v in zip(args, direction)])
    minus = loss(*[a - step * v for a, v in zip(args, direction)])
    numeric = (plus - minus) / (2 * step)
    analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, direction))
    assert abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12) < tolerance


def run_all(module, cell: str, step, sequence, rng):
    """Call a generated module's four functions with random upstream gradients; return every
    array they produce (caches excepted)."""
    step_forward, step_backward = functions(module, cell, "step")
    forward, backward = functions(module, cell, "sequence")
    *states, step_cache = step_forward(*step)
    step_grads = step_backward(*[rng.randn(*s.shape).astype(s.dtype) for s in states], step_cache)
    h, cache = forward(*sequence)
    grads = backward(rng.randn(*h.shape).astype(h.dtype), cache)
    return [*states, *step_grads, h, *grads]


# ----------------------------------------------------------------------------- slow tests
def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than 10 s (the real limits); runs with LSTMGEN_SLOW=1 or -m slow")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow are skipped unless LSTMGEN_SLOW=1 or `-m` names them."""
    if os.environ.get("LSTMGEN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set LSTMGEN_SLOW=1 (or pass -m slow) to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
