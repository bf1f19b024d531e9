"""The derivation against two independent witnesses: the seed's formulas (typed here, from the
customer's handwritten document, with its three mistakes corrected) and finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

from lstmgen import cells, reverse, symbols
from lstmgen.functions import UserFunction, sigmoid
from lstmgen.ir import Dot, Outer, SumOverTime, TDot

# ----------------------------------------------------------------------------- seed formulas
v = symbols.vector
P = symbols.parameter


def dL(name, time="t"):
    return v(name, time, "adjoint")


def seed_deltas(t="t", prev="t-1"):
    """The four bracketed factors of the seed, one per gate (written from the document)."""
    f, i, o, g, c = v("f", t), v("i", t), v("o", t), v("g", t), v("c", t)
    return {
        "f": dL("c", t) * v("c", prev) * (f * (1 - f)),
        "i": dL("c", t) * g * (i * (1 - i)),
        "o": dL("h", t) * sympy.tanh(c) * (o * (1 - o)),
        "c": dL("c", t) * i * (1 - g ** 2),
    }


def seed_step():
    """Part 1 of the seed (the o_t terms of dL/dx_t and dL/dh_{t-1} corrected: the seed writes
    dL/dc_t there, but o_t reaches L only through h_t = o_t * tanh(c_t), so dL/dh_t is needed)."""
    delta = seed_deltas()
    out = {"c": dL("c") * v("f")}
    for gate, d in delta.items():
        out["W_x^" + gate] = Outer(d, v("x"))
        out["W_h^" + gate] = Outer(d, v("h", "t-1"))
        out["b^" + gate] = d
    out["x"] = sum(TDot(P("W_x^" + gate), d) for gate, d in delta.items())
    out["h"] = sum(TDot(P("W_h^" + gate), d) for gate, d in delta.items())
    return out


def seed_h0():
    """The seed's dL/dh_0 (its C_1 is a typo for c_1)."""
    delta = seed_deltas("1", "0")
    return sum(TDot(P("W_h^" + gate), d) for gate, d in delta.items())


# ----------------------------------------------------------------------------- equivalence
def _split(expr):
    """Sum of terms -> {(form, operand): elementwise coefficient}."""
    parts = {}
    for term in sympy.Add.make_args(expr):
        for sub in sympy.Add.make_args(term):  # unevaluated sums nest
            if isinstance(sub, (Outer, TDot)):
                key = (type(sub).__name__, sub.args[1] if isinstance(sub, Outer) else sub.args[0])
                coeff = sub.args[0] if isinstance(sub, Outer) else sub.args[1]
            elif isinstance(sub, SumOverTime):
                inner = _split(sub.args[0])
                for k, c in inner.items():
                    parts[("sum",) + k] = parts.get(("sum",) + k, 0) + c
                continue
            else:
                key, coeff = ("elementwise",), sub
            parts[key] = parts.get(key, 0) + coeff
    return parts


def sympy_equivalent(a, b) -> bool:
    pa, pb = _split(sympy.sympify(a)), _split(sympy.sympify(b))
    if set(pa) != set(pb):
        return False
    return all(sympy.simplify(sympy.expand(pa[k] - pb[k])) == 0 for k in pa)


@pytest.fixture(scope="module")
def lstm():
    return reverse.derive("lstm")


@pytest.mark.parametrize("name", sorted(seed_step()))
def test_step_gradient_matches_seed_symbolically(lstm, name):
    assert sympy_equivalent(lstm.step_gradient(name), seed_step()[name]), (name, lstm.step_gradient(name))


@pytest.mark.parametrize("name", sorted(k for k in seed_step() if k[:2] in ("W_", "b^")))
def test_summed_family_matches_seed(lstm, name):
    assert sympy_equivalent(lstm.summed(name), SumOverTime(seed_step()[name]))


def test_dh0_matches_seed(lstm):
    assert sympy_equivalent(lstm.initial("h"), seed_h0())


def test_dc0_is_dc1_times_f1(lstm):
    assert sympy_equivalent(lstm.initial("c"), dL("c", "1") * v("f", "1"))


def test_seed_o_term_with_dc_is_wrong(lstm):
    """The seed's Part 1 dL/dx_t uses dL/dc_t in the o_t term: not equivalent to ours."""
    delta = seed_deltas()
    wrong = delta.copy()
    wrong["o"] = dL("c") * sympy.tanh(v("c")) * (v("o") * (1 - v("o")))
    seed_dx = sum(TDot(P("W_x^" + g), d) for g, d in wrong.items())
    assert not sympy_equivalent(lstm.step_gradient("x"), seed_dx)


def test_seed_part2_i_term_repeating_f_is_wrong(lstm):
    """The seed's Part 2 dL/dx_t repeats the f_t bracket in the i_t term."""
    delta = seed_deltas()
    wrong = dict(delta, i=delta["f"])
    seed_dx = sum(TDot(P("W_x^" + g), d) for g, d in wrong.items())
    assert not sympy_equivalent(lstm.step_gradient("x"), seed_dx)


def test_recurrences_state_what_the_seed_leaves_implicit(lstm):
    c, o = v("c"), v("o")
    expected_c = dL("c", "t+1") * v("f", "t+1") + dL("h") * o * (1 - sympy.tanh(c) ** 2)
    assert sympy_equivalent(lstm.state_total("c"), expected_c)
    nxt = seed_deltas("t+1", "t")
    expected_h = v("h", "t", "upstream") + sum(TDot(P("W_h^" + g), d) for g, d in nxt.items())
    assert sympy_equivalent(lstm.state_total("h"), expected_h)


# ----------------------------------------------------------------------------- finite differences
def _evaluate(expr, env):
    """A small evaluator written for this test: column vectors, elementwise algebra."""
    if isinstance(expr, sympy.Symbol):
        return env[expr.name]
    if expr.is_Number:
        return float(expr)
    args = [_evaluate(a, env) for a in expr.args]
    if isinstance(expr, sympy.Add):
        return sum(args[1:], args[0])
    if isinstance(expr, sympy.Mul):
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if isinstance(expr, sympy.Pow):
        return args[0] ** args[1]
    if isinstance(expr, UserFunction):
        return _evaluate(expr.expand_formula(expr.args[0]), env)
    simple = {sigmoid: lambda z: 1 / (1 + np.exp(-z)), sympy.tanh: np.tanh, sympy.exp: np.exp,
              sympy.log: np.log, sympy.Abs: np.abs, sympy.sign: np.sign,
              sympy.Heaviside: lambda z: np.heaviside(z, 0.5)}
    if type(expr) in simple:
        return simple[type(expr)](args[0])
    if isinstance(expr, (sympy.Max, sympy.Min)):
        out = args[0]
        for a in args[1:]:
            out = (np.maximum if isinstance(expr, sympy.Max) else np.minimum)(out, a)
        return out
    if isinstance(expr, Dot):
        return args[0] @ args[1]
    if isinstance(expr, TDot):
        return args[0].T @ args[1]
    if isinstance(expr, Outer):
        return args[0] @ args[1].T
    raise TypeError(type(expr))


# A cell no built-in resembles: two states, a piecewise-linear gate, a user-defined GELU, a
# softsign output with a peephole-like diagonal weight.
CUSTOM_CELL = """
cell twostate
input x
state h output
state m
function hard_sigmoid(z) = max(0, min(1, 0.2 * z + 0.5))
function gelu(z) = z * sigmoid(1.702 * z)
a = hard_sigmoid(W_x^a @ x + W_h^a @ h[t-1] + b^a)
m = a * m[t-1] + (1 - a) * gelu(W_x^m @ x + b^m)
h = softsign(W_m @ m + p * h[t-1])
"""


@pytest.mark.parametrize("cell", cells.builtin_names() + ["custom"])
def test_step_gradients_match_finite_differences(cell):
    """L = <a_h, h_t> + <a_c, c_t>: its exact gradients are the step formulas with the adjoint
    symbols dL/dh_t = a_h + (what h_t's consumers in the step add) and so on."""
    d = reverse.derive_cell(cells.parse(CUSTOM_CELL)) if cell == "custom" else reverse.derive(cell)
    rng = np.random.RandomState(0)
    D, H = 4, 3
    env = {q.name: rng.randn(H, 1) for q in d.cell.parameters}
    for eq in d.cell.equations:
        for dot in eq.rhs.atoms(Dot):
            matrix, vec = dot.args
            env[matrix.name] = rng.randn(H, D if symbols.read(vec).name == d.cell.input else H)
    env["x[t]"] = rng.randn(D, 1)
    for s in d.cell.states:
        env[s + "[t-1]"] = rng.randn(H, 1)
    seeds = {s: rng.randn(H, 1) for s in d.cell.states}

    def forward(values):
        local = dict(values)
        for eq in d.cell.equations:
            local[eq.target + "[t]"] = _evaluate(eq.rhs, local)
        return local

    def loss(values):
        out = forward(values)
        return sum(float(np.sum(seeds[s] * out[s + "[t]"])) for s in d.cell.states)

    values = forward(env)
    # totals of the states at t: the seed on s_t plus what consumers inside the step add
    totals = {}
    for eq in reversed(d.cell.equations):
        if eq.target in d.cell.states:
            s = eq.target
            within = sum((_evaluate(term.expr(), {**values, **totals}) for term in d.within_step[s]), 0)
            totals["dL/d%s[t]" % s] = seeds[s] + within
    numeric_env = {**values, **totals}
    eps = 1e-6
    # every parameter and every step input gets a step gradient: none is skipped below
    assert set(d.step) == {q.name for q in d.cell.parameters} | set(d.cell.step_inputs)
    for name in sorted(d.step):
        key = name if name in env else name + ("[t]" if name == d.cell.input else "[t-1]")
        analytic = _evaluate(d.step[name].expr(), numeric_env)
        numeric = np.zeros_like(env[key])
        for ix in np.ndindex(env[key].shape):
            plus, minus = dict(env), dict(env)
            plus[key] = env[key].copy()
            minus[key] = env[key].copy()
            plus[key][ix] += eps
            minus[key][ix] -= eps
            numeric[ix] = (loss(plus) - loss(minus)) / (2 * eps)
        scale = max(1.0, float(np.max(np.abs(numeric))))
        assert np.max(np.abs(analytic - numeric)) / scale < 1e-7, name


def _random_step_values(d, rng, D=4, H=3):
    """Random values for every symbol of a step formula (column vectors; gates in (0, 1))."""
    values = {}
    for q in d.cell.parameters:
        values[q.name] = rng.randn(H, 1)
    for eq in d.cell.equations:
        for matrix, vec in (dot.args for dot in eq.rhs.atoms(Dot)):
            values[matrix.name] = rng.randn(H, D if symbols.read(vec).name == d.cell.input else H)
    for time in ("t-1", "t", "t+1", "0", "1"):
        for name in d.cell.quantities:
            if not d.cell.quantities[name].is_parameter:
                size = D if name == d.cell.input else H
                values["%s[%s]" % (name, time)] = rng.uniform(0.05, 0.95, (size, 1))
                values["dL/d%s[%s]" % (name, time)] = rng.randn(size, 1)
                values["dl/d%s[%s]" % (name, time)] = rng.randn(size, 1)
    return values


@pytest.mark.parametrize("name", sorted(seed_step()))
def test_step_gradient_matches_seed_numerically(lstm, name):
    """The same comparison as the SymPy one, at random values, with the evaluator of this file."""
    rng = np.random.RandomState(7)
    for _ in range(3):
        values = _random_step_values(lstm, rng)
        ours, seed = _evaluate(lstm.step_gradient(name), values), _evaluate(seed_step()[name], values)
        assert np.allclose(ours, seed, rtol=1e-12, atol=1e-12), name


def test_h0_matches_seed_numerically(lstm):
    values = _random_step_values(lstm, np.random.RandomState(8))
    assert np.allclose(_evaluate(lstm.initial("h"), values), _evaluate(seed_h0(), values), rtol=1e-12)
