"""Code generation: the NumPy modules are correct (finite differences, an independent forward),
robust (dtypes, saturation, bad shapes, NaN) and read like careful human code."""
from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import sympy
from conftest import ROOT, assert_gradients, assert_one_line_error, functions, load_module, run_all, run_cli

from lstmgen import cells, cli, generator, render, reverse, symbols
from lstmgen.errors import LstmgenError
from lstmgen.functions import sigmoid
from lstmgen.ir import Dot, Outer, TDot
from lstmgen.printing.numpy import BatchSum, print_numpy

SOURCES = ["rendered", "generated"]
SHAPES = [(3, 3, 4, 5), (1, 1, 2, 1), (2, 4, 3, 2)]  # (N, T, D, H): D != H, and N = T = H = 1
GATES = {"lstm": 4, "rnn": 1}
STATES = {"lstm": 2, "rnn": 1}

# A third cell that no code path knows about: two gates and an elementwise path through h[t-1].
MGU = """
cell mgu
input x
state h output
gates z n
z = sigmoid(W_x^z @ x + W_h^z @ h[t-1] + b^z)
n = tanh(W_x^n @ x + W_h^n @ h[t-1] + b^n)
h = (1 - z) * h[t-1] + z * n
"""


# =========================================================================== independent witnesses
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference_lstm_step(x, prev_h, prev_c, Wx, Wh, b):
    """The textbook LSTM step, CS231n layout (gate blocks i, f, o, g)."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    return o * np.tanh(next_c), next_c


def reference_rnn_step(x, prev_h, Wx, Wh, b):
    """The textbook vanilla RNN step."""
    return (np.tanh(x @ Wx + prev_h @ Wh + b),)


def reference_mgu_step(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    z, n = _sigmoid(a[:, :H]), np.tanh(a[:, H:])
    return ((1 - z) * prev_h + z * n,)


REFERENCE = {"lstm": reference_lstm_step, "rnn": reference_rnn_step, "mgu": reference_mgu_step}


def reference_sequence(cell, x, h0, Wx, Wh, b):
    states = [h0] + [np.zeros_like(h0)] * (STATES.get(cell, 1) - 1)
    out = []
    for t in range(x.shape[1]):
        states = list(REFERENCE[cell](x[:, t, :], *states, Wx, Wh, b))
        out.append(states[0])
    return np.stack(out, axis=1)


# =========================================================================== helpers
def step_args(cell, N, D, H, rng, dtype=np.float64):
    G, S = GATES.get(cell, 2), STATES.get(cell, 1)
    arrays = [rng.randn(N, D)] + [rng.randn(N, H) for _ in range(S)]
    arrays += [rng.randn(D, G * H) * 0.5, rng.randn(H, G * H) * 0.5, rng.randn(G * H) * 0.5]
    return [a.astype(dtype) for a in arrays]


def sequence_args(cell, N, T, D, H, rng, dtype=np.float64):
    G = GATES.get(cell, 2)
    arrays = [rng.randn(N, T, D), rng.randn(N, H), rng.randn(D, G * H) * 0.5, rng.randn(H, G * H) * 0.5,
              rng.randn(G * H) * 0.5]
    return [a.astype(dtype) for a in arrays]


@pytest.fixture(scope="module")
def mgu_module(tmp_path_factory):
    cell = cells.parse(MGU, default_name="mgu")
    path = tmp_path_factory.mktemp("mgu") / "mgu_numpy.py"
    derivation = reverse.derive_cell(cell)
    context = generator.module_context(derivation)
    path.write_text(render.environment().get_template(context["template"]).render(**context), encoding="utf-8")
    return load_module(path, "lstmgen_test_mgu")


# =========================================================================== gradients
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", sorted(GATES))
def test_step_gradients_match_finite_differences(numpy_module, cell, shape, source):
    N, _, D, H = shape
    rng = np.random.RandomState(0)
    forward, backward = functions(numpy_module(cell, source), cell, "step")
    assert_gradients(forward, backward, step_args(cell, N, D, H, rng), rng)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", sorted(GATES))
def test_sequence_gradients_match_finite_differences(numpy_module, cell, shape, source):
    rng = np.random.RandomState(1)
    forward, backward = functions(numpy_module(cell, source), cell, "sequence")
    assert_gradients(forward, backward, sequence_args(cell, *shape, rng), rng)


@pytest.mark.parametrize("level", ["step", "sequence"])
def test_a_cell_no_code_knows_about_is_generated_correctly(mgu_module, level):
    rng = np.random.RandomState(2)
    forward, backward = functions(mgu_module, "mgu", level)
    args = step_args("mgu", 3, 4, 5, rng) if level == "step" else sequence_args("mgu", 3, 3, 4, 5, rng)
    assert_gradients(forward, backward, args, rng)
    if level == "sequence":
        np.testing.assert_allclose(forward(*args)[0], reference_sequence("mgu", *args), rtol=1e-12, atol=1e-12)


# =========================================================================== forward
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", sorted(GATES))
def test_forward_matches_an_independent_forward(numpy_module, cell, shape, source):
    N, T, D, H = shape
    rng = np.random.RandomState(3)
    module = numpy_module(cell, source)
    step_forward, _ = functions(module, cell, "step")
    args = step_args(cell, N, D, H, rng)
    for ours, theirs in zip(step_forward(*args)[:-1], REFERENCE[cell](*args)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    forward, _ = functions(module, cell, "sequence")
    args = sequence_args(cell, N, T, D, H, rng)
    h, _ = forward(*args)
    assert h.shape == (N, T, H)
    np.testing.assert_allclose(h, reference_sequence(cell, *args), rtol=1e-12, atol=1e-12)


# =========================================================================== dtypes and saturation
@pytest.mark.parametrize("cell", sorted(GATES))
def test_float32_in_float32_out(numpy_module, cell):
    module = numpy_module(cell)
    results = {}
    for dtype in (np.float32, np.float64):
        rng = np.random.RandomState(4)
        step, sequence = step_args(cell, 3, 4, 5, rng, dtype), sequence_args(cell, 3, 3, 4, 5, rng, dtype)
        results[dtype] = run_all(module, cell, step, sequence, np.random.RandomState(5))
    assert all(out.dtype == np.float32 for out in results[np.float32])
    for single, double in zip(results[np.float32], results[np.float64]):
        np.testing.assert_allclose(single, double, rtol=1e-3, atol=1e-4)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(GATES))
def test_saturated_gates_raise_no_warnings(numpy_module, cell, dtype):
    """Pre-activations in the hundreds: a naive 1 / (1 + exp(-z)) would overflow."""
    module = numpy_module(cell)
    rng = np.random.RandomState(6)
    step = [a * 300 for a in step_args(cell, 3, 4, 5, rng, dtype)]
    sequence = [a * 300 for a in sequence_args(cell, 3, 3, 4, 5, rng, dtype)]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        results = run_all(module, cell, step, sequence, rng)
    assert all(np.all(np.isfinite(out)) and out.dtype == dtype for out in results)
    assert np.max(np.abs(step[0] @ step[-3] + step[1] @ step[-2])) > 100


@pytest.mark.parametrize("cell", sorted(GATES))
def test_inputs_are_not_modified(numpy_module, cell):
    module = numpy_module(cell)
    rng = np.random.RandomState(7)
    step, sequence = step_args(cell, 3, 4, 5, rng), sequence_args(cell, 3, 3, 4, 5, rng)
    before = [a.copy() for a in step + sequence]
    step_forward, step_backward = functions(module, cell, "step")
    forward, backward = functions(module, cell, "sequence")
    *states, step_cache = step_forward(*step)
    upstream = [np.ones_like(s) for s in states]
    saved = [u.copy() for u in upstream]
    step_backward(*upstream, step_cache)
    h, cache = forward(*sequence)
    dh = np.ones_like(h)
    backward(dh, cache)
    for old, new in zip(before + saved + [np.ones_like(h)], step + sequence + upstream + [dh]):
        np.testing.assert_array_equal(old, new)


# =========================================================================== bad input
def _lstm_step_inputs():
    rng = np.random.RandomState(8)
    return dict(zip(["x", "prev_h", "prev_c", "Wx", "Wh", "b"], step_args("lstm", 3, 4, 5, rng)))


BAD_STEP = {  # argument -> (wrong array, message)
    "Wx_wrong_H": ("Wx", np.zeros((4, 24)), "Wx: expected shape (4, 20), got (4, 24)"),
    "x_wrong_D": ("x", np.zeros((3, 5)), "x: expected shape (3, 4), got (3, 5)"),
    "b_length_1": ("b", np.zeros(1), "b: expected shape (20,), got (1,)"),
    "b_2d": ("b", np.zeros((1, 20)), "b: expected a 1-D array, got shape (1, 20)"),
    "prev_c_wrong_N": ("prev_c", np.zeros((2, 5)), "prev_c: expected shape (3, 5), got (2, 5)"),
    "Wh_wrong_rows": ("Wh", np.zeros((4, 20)), "Wh: expected shape (5, 20), got (4, 20)"),
    "x_integer": ("x", np.zeros((3, 4), dtype=int), "x: expected a floating-point array"),
}


@pytest.mark.parametrize("case", sorted(BAD_STEP))
def test_step_forward_names_the_bad_argument(numpy_module, case):
    name, wrong, message = BAD_STEP[case]
    inputs = _lstm_step_inputs()
    inputs[name] = wrong
    with pytest.raises(ValueError, match=re.escape(message)):
        numpy_module("lstm").lstm_step_forward(**inputs)


@pytest.mark.parametrize("cell", sorted(GATES))
def test_sequence_functions_reject_bad_shapes(numpy_module, cell):
    module = numpy_module(cell)
    forward, backward = functions(module, cell, "sequence")
    x, h0, Wx, Wh, b = sequence_args(cell, 2, 3, 4, 5, np.random.RandomState(9))
    with pytest.raises(ValueError, match=re.escape("x: expected shape (2, 3, 4), got (2, 3, 6)")):
        forward(np.zeros((2, 3, 6)), h0, Wx, Wh, b)
    with pytest.raises(ValueError, match=re.escape("b: expected shape")):
        forward(x, h0, Wx, Wh, b[:1])
    with pytest.raises(ValueError, match="at least one time step"):
        forward(x[:, :0], h0, Wx, Wh, b)
    _, cache = forward(x, h0, Wx, Wh, b)
    with pytest.raises(ValueError, match=re.escape("dh: expected shape (2, 3, 5), got (2, 2, 5)")):
        backward(np.zeros((2, 2, 5)), cache)
    step_forward, step_backward = functions(module, cell, "step")
    *states, step_cache = step_forward(*step_args(cell, 2, 4, 5, np.random.RandomState(9)))
    with pytest.raises(ValueError, match=re.escape("dnext_h: expected shape (2, 5), got (2, 4)")):
        step_backward(np.zeros((2, 4)), *states[1:], step_cache)


def _quietly(function, *args):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return function(*args)


@pytest.mark.parametrize("cell", sorted(GATES))
def test_nan_stays_in_its_sample(numpy_module, cell):
    module = numpy_module(cell)
    rng = np.random.RandomState(10)
    step_forward, step_backward = functions(module, cell, "step")
    step = step_args(cell, 3, 4, 5, rng)
    step[0][1, 2] = np.nan
    *states, step_cache = _quietly(step_forward, *step)
    grads = _quietly(step_backward, *[np.ones_like(s) for s in states], step_cache)
    for array in states + list(grads[:1 + len(states)]):  # the next states, dx and every dprev
        assert np.all(np.isnan(array[1])) and np.all(np.isfinite(array[[0, 2]]))
    forward, backward = functions(module, cell, "sequence")
    sequence = sequence_args(cell, 2, 3, 4, 5, rng)
    sequence[0][1, 1, 0] = np.nan
    h, cache = _quietly(forward, *sequence)
    assert np.all(np.isfinite(h[0])) and np.all(np.isfinite(h[1, 0])) and np.all(np.isnan(h[1, 1:]))
    dx, dh0, *_ = _quietly(backward, np.ones_like(h), cache)
    assert np.all(np.isfinite(dx[0])) and np.all(np.isfinite(dh0[0])) and np.all(np.isnan(dh0[1]))


# =========================================================================== the code itself
@pytest.mark.parametrize("cell", sorted(GATES))
def test_header_docstrings_and_loops(cell):
    text = render.render_module(cell)
    header = text.splitlines()[0]
    assert "Generated" in header and "templates/numpy_module.py.j2" in header and "lstmgen build" in header
    assert "do not edit" in header
    # the four functions' own loops (the shape checks' helpers loop over the arguments, never over data)
    functions_text = "\n".join(re.findall(rf"^def {cell}_.*?(?=^def |^class |\Z)", text, re.M | re.S))
    loops = [line.strip() for line in functions_text.splitlines() if line.strip().startswith(("for ", "while "))]
    assert loops == ["for t in range(T):", "for t in reversed(range(T)):"], "only the time loop may be a Python loop"
    assert "(N, D)" in text and "(N, T, H)" in text
    assert re.search(r"^\s+x, prev_h, .*= cache$", text, re.MULTILINE), "the cache is unpacked by field name"


def test_lstm_backward_reads_like_the_cs231n_solution():
    text = render.render_module("lstm")
    for name in ("di", "df", "do", "dg"):
        assert re.search(rf"^    {name} = ", text, re.MULTILINE), name
    assert "    da = np.concatenate([di, df, do, dg], axis=1)" in text
    for line in ("dx = da @ Wx.T", "dprev_h = da @ Wh.T", "dWx = x.T @ da", "dWh = prev_h.T @ da",
                 "db = da.sum(axis=0)", "a = x @ Wx + prev_h @ Wh + b", "dnext_c = dprev_c",
                 "dnext_h = dh[:, t, :] + dprev_h"):
        assert "    " + line + "\n" in text, line
    body = text[text.index("def lstm_step_backward"):text.index("def lstm_forward")]
    blocks = body.split("= cache\n", 1)[1].strip().split("\n\n")
    assert all(block.strip().startswith("#") for block in blocks[:-1]), "every backward block opens with a comment"


def test_rendering_is_deterministic_and_checked_in():
    render.environment.cache_clear()
    for cell in GATES:
        text = render.render_module(cell)
        assert text == render.render_module(cell)
        assert (ROOT / "generated" / (cell + "_numpy.py")).read_text(encoding="utf-8") == text, \
            "generated/ is stale; refresh it with `lstmgen build`"


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize("cell", sorted(GATES))
def test_generated_code_is_lint_clean_and_formatted(cell, tmp_path):
    path = tmp_path / (cell + "_numpy.py")
    path.write_text(render.render_module(cell), encoding="utf-8")
    for command in (["ruff", "check", "--no-cache", str(path)], ["ruff", "format", "--check", "--no-cache", str(path)]):
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_codegen_command_writes_the_module(tmp_path):
    out = tmp_path / "rnn.py"
    assert cli.main(["codegen", "--cell", "rnn", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render.render_module("rnn")


def test_layouts_that_do_not_fit_are_refused():
    shared = cells.parse("""
cell shared
input x
state h output
f = sigmoid(W @ x + b)
h = f * tanh(W @ x + U @ h[t-1])
""", default_name="shared")
    with pytest.raises(LstmgenError, match="does not fit the cs231n layout: a parameter of"):
        generator.module_context(reverse.derive_cell(shared))
    clash = cells.parse("""
cell clash
input x
state h output
b = sigmoid(W_x^b @ x + W_h^b @ h[t-1])
h = tanh(W_x^n @ x + W_h^n @ h[t-1] + b^n + b)
""", default_name="clash")
    with pytest.raises(LstmgenError, match="would share the Python name b"):
        generator.module_context(reverse.derive_cell(clash))
    with pytest.raises(LstmgenError, match="no torch gate order"):
        generator.module_context(reverse.derive("mgu"), layout="torch")
    with pytest.raises(LstmgenError, match="unknown layout"):
        generator.module_context(reverse.derive("lstm"), layout="fortran")


RESERVED = {  # cell file -> the name it takes from the generated module (each generated code that crashed or
    # silently read the wrong array: a bias H replaced by the hidden size, a function H called as an int);
    # T is refused earlier, by the cell file itself, for every command (tests/test_cell_names.py)
    "bias_H": ("f = sigmoid(W_x @ x + W_h @ h[t-1] + H)\nh = f * h[t-1]", "H"),
    "input_N": ("f = sigmoid(W_x @ N + W_h @ h[t-1] + b)\nh = f * h[t-1]", "N"),
    "intermediate_t": ("f = sigmoid(W_x @ x + W_h @ h[t-1] + b)\nt = f * h[t-1]\nh = t + f", "t"),
    "function_D": ("function D(z) = z * sigmoid(z)\nh = D(W_x @ x + W_h @ h[t-1] + b)", "D"),
    "function_f_and_gate_f": ("function f(z) = z * sigmoid(z)\nf = f(W_x @ x + W_h @ h[t-1] + b)\n"
                              "h = f * h[t-1]", "f"),
}


@pytest.mark.parametrize("layout", generator.LAYOUTS)
@pytest.mark.parametrize("case", sorted(RESERVED))
def test_a_name_the_generated_module_uses_itself_is_refused(case, layout):
    body, name = RESERVED[case]
    uses = "N" if case == "input_N" else "x"
    cell = cells.parse(f"cell c\ninput {uses}\nstate h output\n{body}\n", default_name="c")
    with pytest.raises(LstmgenError, match=rf"the Python name {name} is already used by the generated code"):
        generator.module_context(reverse.derive_cell(cell), layout=layout)


def test_codegen_command_refuses_a_reserved_name_in_one_line(tmp_path):
    path = tmp_path / "c.cell"
    path.write_text("cell c\ninput x\nstate h output\n" + RESERVED["bias_H"][0] + "\n", encoding="utf-8")
    assert_one_line_error(run_cli("codegen", "--cell", path, "--layout", "torch"), "the Python name H")


def test_a_peephole_cell_with_subscript_names_is_grouped_by_kind():
    """b_f, p_f: a subscript that names the gate groups like a superscript (b, p), so the LSTM fast path stays."""
    peephole = cells.parse("""
cell peep
input x
state h output
state c
f = sigmoid(W_xf @ x + W_hf @ h[t-1] + p_f * c[t-1] + b_f)
c = f * c[t-1] + (1 - f) * tanh(W_xc @ x + W_hc @ h[t-1] + b_c)
h = tanh(c)
""", default_name="peep")
    context = generator.module_context(reverse.derive_cell(peephole))
    assert [arg["name"] for arg in context["step_args"]] == ["x", "prev_h", "prev_c", "Wx", "Wh", "b", "p"]
    assert context["forward_lines"][0] == "a = x @ Wx + prev_h @ Wh + b"
    assert "f = sigmoid(a_f + p * prev_c)" in context["forward_lines"]


# =========================================================================== the printer
V = {name: symbols.vector(name) for name in ("x", "f", "g")}
NAMES = {"x[t]": "x", "f[t]": "f", "g[t]": "g", "W": "W", "e": "e", "dL/dc[t]": "dnext_c"}
W, E = symbols.parameter("W"), sympy.Symbol("e")


@pytest.mark.parametrize("expr,expected", [
    (Dot(W, V["x"]), "x @ W"),
    (TDot(W, E), "e @ W.T"),
    (Outer(E, V["x"]), "x.T @ e"),
    (BatchSum(E), "e.sum(axis=0)"),
    (BatchSum(sympy.Mul(E, V["f"], evaluate=False)), "(e * f).sum(axis=0)"),
    (sympy.Mul(symbols.vector("c", role="adjoint"), V["f"] * (1 - V["f"]), evaluate=False),
     "dnext_c * (f * (1 - f))"),
    (1 - V["g"] ** 2, "1 - g**2"),
    (1 - sympy.tanh(V["g"]) ** 2, "1 - np.tanh(g) ** 2"),
    (sigmoid(V["x"]), "sigmoid(x)"),
    (-V["x"] * (V["f"] + V["g"]), "-x * (f + g)"),
    (sympy.Mul(sympy.S.Half, sympy.tanh(V["g"]), evaluate=False), "0.5 * np.tanh(g)"),
    (sympy.Mul(E, 1 / (1 + V["f"]), V["g"], evaluate=False), "e / (1 + f) * g"),
    (sympy.Mul(1 / V["f"], E, evaluate=False), "1 / f * e"),
    (sympy.Mul(-1, V["f"] ** -2, E, evaluate=False), "-1 / f**2 * e"),  # ruff formats -f**(-2) otherwise
    (sympy.Mul(E, V["f"] ** -2, evaluate=False), "e / f**2"),
], ids=["dot", "tdot", "outer", "batchsum", "batchsum-product", "grouping", "power", "power-call", "sigmoid",
        "minus", "half-unbracketed", "divide", "reciprocal-first", "negative-power-first", "negative-power"])
def test_numpy_printer(expr, expected):
    assert print_numpy(expr, NAMES) == expected


def test_numpy_printer_refuses_what_it_cannot_print():
    with pytest.raises(LstmgenError, match="no Python name for h"):
        print_numpy(sympy.Symbol("h[t]"), NAMES)
    with pytest.raises(LstmgenError, match="no form for the function erf"):
        print_numpy(sympy.erf(V["x"]), NAMES)


def test_numpy_printer_new_constructs():
    from lstmgen.functions import define
    from lstmgen.printing.numpy import Stack, WeightGradient

    x, f = V["x"], V["f"]
    assert print_numpy(Stack(E, sympy.Mul(f, E, evaluate=False)), NAMES) == "np.concatenate([e, f * e], axis=1)"
    assert print_numpy(WeightGradient(W, E, x), NAMES) == "x.T @ e"
    # a matrix stored (out, in), as PyTorch stores weight_ih
    assert print_numpy(WeightGradient(W, E, x), NAMES, transposed={"W"}) == "e.T @ x"
    assert print_numpy(Dot(W, x), NAMES, transposed={"W"}) == "x @ W.T"
    assert print_numpy(TDot(W, E), NAMES, transposed={"W"}) == "e @ W"
    assert print_numpy(sympy.Heaviside(x), NAMES) == "np.heaviside(x, 0.5)"
    assert print_numpy(sympy.sign(x), NAMES) == "np.sign(x)"
    z = sympy.Symbol("z", real=True)
    swish = define("swish", z, z * sigmoid(z))
    assert print_numpy(swish(x), NAMES) == "swish(x)"
