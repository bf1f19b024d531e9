"""Every built-in cell in every layout: central finite differences and PyTorch autograd as witnesses.

The tables below state, independently of lstmgen, how each layout stores a cell's parameters (the
cs231n groups and their gate blocks, PyTorch's weight_ih/weight_hh/bias_ih/bias_hh, the per-gate
names), and the torch forward functions restate each cell's published equations.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_gradients, functions, load_module, needs, run_all, scale_error

from lstmgen import cli, render

SHAPES = [(3, 3, 4, 5), (1, 1, 2, 1), (2, 4, 3, 2)]  # (N, T, D, H): D != H, and N = T = H = 1
TOLERANCE_FD = 1e-8
TOLERANCE_TORCH = 1e-10
FD_STEP = 1e-5

# cs231n groups: argument -> the cell-file parameters stored in it, block by block, in gate order
GROUPS = {
    "lstm": {"Wx": ["W_x^i", "W_x^f", "W_x^o", "W_x^c"], "Wh": ["W_h^i", "W_h^f", "W_h^o", "W_h^c"],
             "b": ["b^i", "b^f", "b^o", "b^c"]},
    "rnn": {"Wx": ["W_x"], "Wh": ["W_h"], "b": ["b"]},
    "gru": {"Wx": ["W_x^r", "W_x^z", "W_x^n"], "Wh": ["W_h^r", "W_h^z", "W_h^n"],
            "bx": ["b_x^r", "b_x^z", "b_x^n"], "bh": ["b_h^r", "b_h^z", "b_h^n"]},
    "peephole_lstm": {"Wx": ["W_x^i", "W_x^f", "W_x^o", "W_x^c"], "Wh": ["W_h^i", "W_h^f", "W_h^o", "W_h^c"],
                      "b": ["b^i", "b^f", "b^o", "b^c"], "p": ["p^i", "p^f", "p^o"]},
    "cifg_lstm": {"Wx": ["W_x^f", "W_x^o", "W_x^c"], "Wh": ["W_h^f", "W_h^o", "W_h^c"], "b": ["b^f", "b^o", "b^c"]},
    "mgu": {"Wx": ["W_x^f", "W_x^n"], "Wh": ["W_h^f"], "Wr": ["W_h^n"], "b": ["b^f", "b^n"]},
}
STATES = {"lstm": ["h", "c"], "rnn": ["h"], "gru": ["h"], "peephole_lstm": ["h", "c"], "cifg_lstm": ["h", "c"],
          "mgu": ["h"]}
# PyTorch's gate order of weight_ih & co. (the cs231n order of lstm is i, f, o, g)
TORCH = {"lstm": ["W_x^i", "W_x^f", "W_x^c", "W_x^o"], "gru": ["W_x^r", "W_x^z", "W_x^n"], "rnn": ["W_x"]}
LAYOUT_CELLS = [("cs231n", cell) for cell in GROUPS] + [("torch", cell) for cell in TORCH] + [
    ("per-gate", cell) for cell in GROUPS]
# the numba target's step functions are the numpy target's: its sequence functions are tested
LEVEL_TARGETS = [("step", "numpy"), ("sequence", "numpy"), ("sequence", "numba")]


def test_build_covers_every_built_in_cell():
    assert set(render.BUILD_CELLS) == set(GROUPS)
    names = set(render.artifacts())
    for cell in GROUPS:
        assert {cell + "_numpy.py", cell + "_derivation.md", cell + "_derivation.tex"} <= names
    assert {"lstm_torch_numpy.py", "gru_torch_numpy.py"} <= names


# =========================================================================== parameters per layout
def _rows(name: str, D: int, H: int) -> int:
    """A matrix multiplies x (D rows) or a vector of H (h[t-1], c[t-1], mgu's r)."""
    return D if name.startswith("W_x") else H


def parameter_shapes(cell: str, layout: str, D: int, H: int) -> list[tuple[str, tuple]]:
    groups = GROUPS[cell]
    if layout == "cs231n":
        return [(key, (_rows(members[0], D, H), len(members) * H) if key.startswith("W") else (len(members) * H,))
                for key, members in groups.items()]
    if layout == "torch":
        G = len(TORCH[cell])
        return [("weight_ih", (G * H, D)), ("weight_hh", (G * H, H)), ("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
    return [(name.replace("^", "_"), (_rows(name, D, H), H) if name.startswith("W") else (H,))
            for members in groups.values() for name in members]


def make_args(cell, layout, level, N, T, D, H, rng):
    """Arguments of <cell>_step_forward (level 'step') or <cell>_forward ('sequence')."""
    if level == "step":
        args = [rng.randn(N, D)] + [rng.randn(N, H) for _ in STATES[cell]]
    else:
        args = [rng.randn(N, T, D), rng.randn(N, H)]
    return args + [rng.randn(*shape) * 0.5 for _, shape in parameter_shapes(cell, layout, D, H)]


def per_gate_parameters(cell, layout, params, H, split):
    """cell-file parameter name -> array (or tensor), batch-major (in, out), from a layout's arguments.
    `split(array, k, axis)` cuts k equal blocks (numpy or torch)."""
    out = {}
    if layout == "per-gate":
        names = [name for members in GROUPS[cell].values() for name in members]
        return dict(zip(names, params))
    if layout == "cs231n":
        for members, array in zip(GROUPS[cell].values(), params):
            out.update(zip(members, split(array, len(members), -1)))
        return out
    weight_ih, weight_hh, bias_ih, bias_hh = params
    gates = [name.partition("^")[2] for name in TORCH[cell]]
    sup = [("^" + g if g else "") for g in gates]
    for s, w_ih, w_hh, b_ih, b_hh in zip(sup, split(weight_ih, len(gates), 0), split(weight_hh, len(gates), 0),
                                          split(bias_ih, len(gates), 0), split(bias_hh, len(gates), 0)):
        out["W_x" + s], out["W_h" + s] = w_ih.T, w_hh.T
        if cell == "gru":
            out["b_x" + s], out["b_h" + s] = b_ih, b_hh
        else:
            out["b" + s] = b_ih + b_hh
    return out


# =========================================================================== modules
@pytest.mark.parametrize("level,target", LEVEL_TARGETS, ids=lambda v: v)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_gradients_match_finite_differences(module, layout, cell, shape, level, target):
    rng = np.random.RandomState(40)
    forward, backward = functions(module(cell, layout, target), cell, level)
    assert_gradients(forward, backward, make_args(cell, layout, level, *shape, rng), rng, TOLERANCE_FD, FD_STEP)


def test_torch_layout_is_refused_for_cells_pytorch_lacks(capsys):
    assert cli.main(["codegen", "--cell", "mgu", "--layout", "torch"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "torch" in err


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_signatures_are_pytorchs(cell):
    import inspect

    mod = _load_generated(cell + "_torch_numpy")
    weights = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    states = ["prev_h", "prev_c"] if cell == "lstm" else ["prev_h"]
    assert list(inspect.signature(getattr(mod, cell + "_step_forward")).parameters) == ["x", *states, *weights]
    assert list(inspect.signature(getattr(mod, cell + "_forward")).parameters) == ["x", "h0", *weights]


def _load_generated(name):
    from conftest import ROOT

    return load_module(ROOT / "generated" / (name + ".py"), "lstmgen_generated_" + name)


# =========================================================================== PyTorch: nn modules and our torch forward
def torch_step(torch, cell, x, states, P):
    """One step of `cell`, restated from its published equations (batch-major: x @ W)."""
    sig, tanh = torch.sigmoid, torch.tanh
    if cell == "rnn":
        return (tanh(x @ P["W_x"] + states[0] @ P["W_h"] + P["b"]),)
    if cell == "gru":  # PyTorch's GRU: the reset gate scales W_hn h + b_hn
        (h,) = states
        r = sig(x @ P["W_x^r"] + P["b_x^r"] + h @ P["W_h^r"] + P["b_h^r"])
        z = sig(x @ P["W_x^z"] + P["b_x^z"] + h @ P["W_h^z"] + P["b_h^z"])
        n = tanh(x @ P["W_x^n"] + P["b_x^n"] + r * (h @ P["W_h^n"] + P["b_h^n"]))
        return ((1 - z) * n + z * h,)
    if cell == "mgu":  # Zhou et al.: the forget gate also resets the candidate's recurrent input
        (h,) = states
        f = sig(x @ P["W_x^f"] + h @ P["W_h^f"] + P["b^f"])
        n = tanh(x @ P["W_x^n"] + (f * h) @ P["W_h^n"] + P["b^n"])
        return ((1 - f) * h + f * n,)
    h, c = states

    def gate(q, act, peep=None):
        pre = x @ P["W_x^" + q] + h @ P["W_h^" + q] + P["b^" + q]
        return act(pre if peep is None else pre + P["p^" + q] * peep)

    peephole = cell == "peephole_lstm"
    f = gate("f", sig, c if peephole else None)
    i = 1 - f if cell == "cifg_lstm" else gate("i", sig, c if peephole else None)
    g = gate("c", tanh)
    c_next = f * c + i * g
    o = gate("o", sig, c_next if peephole else None)
    return o * tanh(c_next), c_next


def torch_forward(torch, cell, layout, level, tensors, H):
    """Our torch restatement over the layout's arguments: outputs of <cell>_step_forward / <cell>_forward."""
    n_states = len(STATES[cell])
    if level == "step":
        x, states, params = tensors[0], list(tensors[1:1 + n_states]), tensors[1 + n_states:]
    else:
        x, h0, params = tensors[0], tensors[1], tensors[2:]
    P = per_gate_parameters(cell, layout, params, H, lambda a, k, axis: torch.chunk(a, k, dim=axis))
    if level == "step":
        return list(torch_step(torch, cell, x, states, P))
    states = [h0] + [torch.zeros_like(h0)] * (n_states - 1)
    hs = []
    for t in range(x.shape[1]):
        states = list(torch_step(torch, cell, x[:, t, :], states, P))
        hs.append(states[0])
    return [torch.stack(hs, dim=1)]


def nn_forward(torch, cell, level, tensors, D, H):
    """torch.nn's own module carrying the torch-layout arguments (the reference for --layout torch)."""
    nn, n_states = torch.nn, len(STATES[cell])
    kind = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[cell]
    x, rest = tensors[0], tensors[1:]
    states = rest[:n_states] if level == "step" else rest[:1]
    weights = rest[n_states:] if level == "step" else rest[1:]
    layer = (getattr(nn, kind + "Cell")(D, H) if level == "step" else getattr(nn, kind)(D, H, batch_first=True)).double()
    suffix = "" if level == "step" else "_l0"
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        delattr(layer, name + suffix)
    for name, tensor in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights):
        setattr(layer, name + suffix, tensor)
    if level == "step":
        out = layer(x, tuple(states)) if n_states > 1 else layer(x, states[0])
        return list(out) if n_states > 1 else [out]
    initial = (states[0][None], torch.zeros_like(states[0])[None]) if cell == "lstm" else states[0][None]
    out, _ = layer(x, initial)
    return [out]


@pytest.mark.parametrize("level,target", LEVEL_TARGETS, ids=lambda v: v)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_gradients_match_torch_autograd(torch, module, layout, cell, shape, level, target):
    N, T, D, H = shape
    rng = np.random.RandomState(41)
    forward, backward = functions(module(cell, layout, target), cell, level)
    args = make_args(cell, layout, level, N, T, D, H, rng)
    *ours, cache = forward(*args)
    upstream = [rng.randn(*out.shape) for out in ours]
    our_grads = backward(*upstream, cache)

    tensors = [torch.tensor(a, requires_grad=True) for a in args]
    if layout == "torch":
        outputs = nn_forward(torch, cell, level, tensors, D, H)
    else:
        outputs = torch_forward(torch, cell, layout, level, tensors, H)
    sum((out * torch.from_numpy(up)).sum() for out, up in zip(outputs, upstream)).backward()

    for mine, theirs in zip(ours, outputs):
        assert scale_error(mine, theirs.detach().numpy()) < TOLERANCE_TORCH
    for index, (mine, tensor) in enumerate(zip(our_grads, tensors)):
        theirs = tensor.grad.numpy() if tensor.grad is not None else np.zeros_like(mine)
        assert mine.shape == theirs.shape
        assert scale_error(mine, theirs) < TOLERANCE_TORCH, f"gradient {index}"


# =========================================================================== a cell nobody wrote code for
NEW_CELL = """
# Two states, a user-defined activation and a relu: nothing built in looks like this.
cell twin
title "twin-state test cell"
input x
state h output
state m
function gelu(z) = z * sigmoid(1.702 * z)
k = sigmoid(W_x^k @ x + W_h^k @ h[t-1] + b^k)
m = k * m[t-1] + (1 - k) * gelu(W_x^u @ x + W_h^u @ h[t-1] + b^u)
h = relu(W_x^h @ x + W_m^h @ m[t-1] + b^h) + softsign(m)
"""


@pytest.fixture(scope="module")
def new_cell(tmp_path_factory):
    folder = tmp_path_factory.mktemp("newcell")
    path = folder / "twin.cell"
    path.write_text(NEW_CELL, encoding="utf-8")
    loaded = {}
    for layout in ("cs231n", "per-gate"):
        for target in ("numpy", "numba"):
            name = "twin_{}_{}".format(layout.replace("-", "_"), target)
            out = folder / f"{name}.py"
            assert cli.main(["codegen", "--cell", str(path), "--layout", layout, "--target", target, "-o", str(out)]) == 0
            if target == "numpy":
                loaded[layout] = load_module(out, "lstmgen_" + name)
            else:
                loaded[layout, target] = out
    return loaded


def _new_cell_args(mod, level, N, T, D, H, rng, cell="twin"):
    import inspect

    forward = functions(mod, cell, level)[0]
    names = list(inspect.signature(forward).parameters)
    args = []
    for name in names:  # shapes from the module's own docstring: (N, D), (D, 3 * H), ...
        shape = forward.__doc__.split(f"        {name}: (", 1)[1].split(")", 1)[0]
        dims = [eval(part, {}, {"N": N, "T": T, "D": D, "H": H}) for part in shape.split(",") if part.strip()]  # noqa: S307 - test-only, our docstring
        args.append(rng.randn(*dims) * 0.5)
    return args


@pytest.mark.parametrize("level,target", LEVEL_TARGETS, ids=lambda v: v)
@pytest.mark.parametrize("layout", ["cs231n", "per-gate"])
def test_a_new_cell_from_a_file_has_correct_gradients(new_cell, layout, level, target):
    rng = np.random.RandomState(42)
    mod = new_cell[layout]
    if target == "numba":
        needs(target)
        mod = load_module(new_cell[layout, target], "lstmgen_twin_numba_" + layout.replace("-", "_"))
    forward, backward = functions(mod, "twin", level)
    assert_gradients(forward, backward, _new_cell_args(mod, level, 3, 3, 4, 5, rng), rng, TOLERANCE_FD, FD_STEP)
    text = open(mod.__file__, encoding="utf-8").read()
    assert "def gelu(z):" in text and "def relu(z):" in text


def test_a_new_cell_matches_an_independent_forward(new_cell):
    """The forward pass of the cs231n module against the cell's equations restated in NumPy."""
    mod = new_cell["cs231n"]
    rng = np.random.RandomState(43)
    N, D, H = 3, 4, 5
    x, h, m, Wx, Wh, Wm, b = _new_cell_args(mod, "step", N, 1, D, H, rng)

    def sig(z):
        return 1 / (1 + np.exp(-z))

    # blocks: Wx k, a^m (u), a^h (h); Wh k, a^m; Wm a^h; b k, u, h
    k = sig(x @ Wx[:, :H] + h @ Wh[:, :H] + b[:H])
    u = x @ Wx[:, H:2 * H] + h @ Wh[:, H:] + b[H:2 * H]
    m_next = k * m + (1 - k) * u * sig(1.702 * u)
    h_next = np.maximum(0, x @ Wx[:, 2 * H:] + m @ Wm + b[2 * H:]) + m_next / (1 + np.abs(m_next))
    got_h, got_m, _ = mod.twin_step_forward(x, h, m, Wx, Wh, Wm, b)
    np.testing.assert_allclose(got_m, m_next, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_h, h_next, rtol=1e-12, atol=1e-12)


# =========================================================================== robustness and style, every cell and layout
@pytest.mark.parametrize("target", ["numpy", "numba"])
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_float32_stays_float32_and_inputs_stay_untouched(module, layout, cell, target):
    mod = module(cell, layout, target)
    rng = np.random.RandomState(44)
    step = [a.astype(np.float32) for a in make_args(cell, layout, "step", 3, 3, 4, 5, rng)]
    sequence = [a.astype(np.float32) for a in make_args(cell, layout, "sequence", 3, 3, 4, 5, rng)]
    before = [a.copy() for a in step + sequence]
    results = run_all(mod, cell, step, sequence, rng)
    assert all(out.dtype == np.float32 for out in results)
    for old, new in zip(before, step + sequence):
        np.testing.assert_array_equal(old, new)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("target", ["numpy", "numba"])
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_saturated_gates_raise_no_warnings(module, layout, cell, target):
    """Weights and inputs scaled by 300: a naive sigmoid would overflow."""
    mod = module(cell, layout, target)
    rng = np.random.RandomState(45)
    step = [a * 300 for a in make_args(cell, layout, "step", 3, 3, 4, 5, rng)]
    sequence = [a * 300 for a in make_args(cell, layout, "sequence", 3, 3, 4, 5, rng)]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        results = run_all(mod, cell, step, sequence, rng)
    assert all(np.all(np.isfinite(out)) for out in results)


@pytest.mark.skipif(__import__("shutil").which("ruff") is None, reason="ruff is not installed")
def test_every_module_is_lint_clean_and_formatted(tmp_path, new_cell):
    import subprocess

    from conftest import ROOT

    for layout, cell in LAYOUT_CELLS:
        for target in render.TARGETS:
            (tmp_path / "{}_{}_{}.py".format(cell, layout.replace("-", "_"), target)).write_text(
                render.render_module(cell, layout, target), encoding="utf-8")
    for key, mod in new_cell.items():
        source = mod if not hasattr(mod, "__file__") else mod.__file__
        (tmp_path / "new_{}.py".format("_".join(key if isinstance(key, tuple) else [key]).replace("-", "_"))).write_text(
            open(source, encoding="utf-8").read())
    for command in (["ruff", "check", "--no-cache", str(tmp_path)],
                    ["ruff", "format", "--check", "--no-cache", str(tmp_path)]):
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# =========================================================================== unusual but valid cells
UNUSUAL = {  # name -> equations (input x, output state h): special cases of the code generator; residual_input used to crash
    "no_recurrent_matrix": "f = sigmoid(W_x^f @ x + b^f)\ng = tanh(W_x^g @ x + W_h^g @ h[t-1] + b^g)\n"
                           "h = f * h[t-1] + (1 - f) * g",
    "no_bias": "h = tanh(W_x @ x + W_h @ h[t-1])",
    "constants": "h = 0.5 * tanh(0.5 * (W_x @ x) + W_h @ h[t-1] + b + 1) + 0.5 * h[t-1]",
    "exp_log": "a = exp(0.1 * (W_x @ x + W_h @ h[t-1] + b))\nh = log(1 + a)",
    "residual_input": "h = tanh(W_x @ x + W_h @ h[t-1] + b) + 0.5 * x",
    "multiplicative": "h = tanh((W_x @ x) * (W_h @ h[t-1]) + b)",
    "two_activations": "h = sigmoid(W_x @ x + b) * tanh(W_h @ h[t-1])",
    "three_states": "state c\nstate m\nf = sigmoid(W_x^f @ x + W_h^f @ h[t-1] + b^f)\n"
                    "g = tanh(W_x^g @ x + W_c^g @ c[t-1] + b^g)\nc = f * c[t-1] + (1 - f) * g\n"
                    "m = 0.5 * m[t-1] + 0.5 * c\nh = tanh(c + m)",
}
UNUSUAL_CASES = [(name, layout) for name in UNUSUAL for layout in ("cs231n", "per-gate")] + [
    (name, "torch") for name in ("exp_log", "constants", "residual_input", "multiplicative")]


@pytest.mark.parametrize("level,target", LEVEL_TARGETS, ids=lambda v: v)
@pytest.mark.parametrize("name,layout", UNUSUAL_CASES, ids=lambda v: v)
def test_an_unusual_cell_has_correct_gradients(tmp_path, name, layout, level, target):
    from lstmgen import cells, generator, reverse

    needs(target)
    body = UNUSUAL[name]
    head = [line for line in body.splitlines() if line.startswith("state ")]
    equations = [line for line in body.splitlines() if not line.startswith("state ")]
    cell = cells.parse("\n".join(["cell u", "input x", "state h output", *head, *equations]) + "\n", default_name="u")
    context = generator.module_context(reverse.derive_cell(cell), layout=layout, target=target)
    path = tmp_path / "u.py"
    path.write_text(render.environment().get_template(context["template"]).render(**context), encoding="utf-8")
    mod = load_module(path, "lstmgen_unusual_{}_{}_{}".format(name, layout.replace("-", "_"), target))
    rng = np.random.RandomState(46)
    forward, backward = functions(mod, "u", level)
    # D = 4, H = 5 from the docstring's shapes; x + h (residual_input) must make x and W_x say (N, H), (H, H)
    assert_gradients(forward, backward, _new_cell_args(mod, level, 3, 3, 4, 5, rng, cell="u"), rng,
                     TOLERANCE_FD, FD_STEP)
