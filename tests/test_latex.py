"""The LaTeX printer, construct by construct: expected strings are written here by hand, in the
seed document's notation (they are the witnesses; the printer never sees them)."""
from __future__ import annotations

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmgen import cells, ir, symbols
from lstmgen.functions import sigmoid
from lstmgen.printing.latex import LOSS, LatexPrinter, Style, chain_product, derivative, latex, latex_terms

LSTM = cells.load("lstm")
RNN = cells.load("rnn")

v = symbols.vector
P = symbols.parameter
f, i, o, g, c, x = v("f"), v("i"), v("o"), v("g"), v("c"), v("x")
c_prev, h_prev = v("c", "t-1"), v("h", "t-1")
dc, dh = v("c", "t", "adjoint"), v("h", "t", "adjoint")
theta = sympy.Symbol("theta")


def mul(*factors):
    return sympy.Mul(*factors, evaluate=False)


def add(*terms):
    return sympy.Add(*terms, evaluate=False)


CASES = [
    # symbols
    ("value", f, "f_t"),
    ("previous value", c_prev, "c_{t-1}"),
    ("next value", v("f", "t+1"), "f_{t+1}"),
    ("candidate from the cell's latex table", g, r"\tilde{c}_t"),
    ("absolute time", v("h", "0"), "h_0"),
    ("adjoint", dc, r"\frac{\partial L}{\partial c_t}"),
    ("adjoint at t-1", v("c", "t-1", "adjoint"), r"\frac{\partial L}{\partial c_{t-1}}"),
    ("adjoint at 1", v("c", "1", "adjoint"), r"\frac{\partial L}{\partial c_1}"),
    ("upstream", v("h", "t", "upstream"), r"\frac{\partial \ell_t}{\partial h_t}"),
    ("upstream at t+1", v("h", "t+1", "upstream"), r"\frac{\partial \ell_{t+1}}{\partial h_{t+1}}"),
    ("matrix", P("W_x^f"), "W_x^f"),
    ("bias", P("b^c"), "b^c"),
    ("plain sympy symbol", theta, r"\theta"),
    ("loss", LOSS, "L"),
    # elementwise products and sums
    ("evaluated sigma'", f * (1 - f), "f_t * (1 - f_t)"),
    ("evaluated tanh'", 1 - g ** 2, r"1 - \tilde{c}_t^2"),
    ("seed family delta", mul(dc, c_prev, f * (1 - f)), r"\frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1 - f_t)]"),
    ("candidate delta", mul(dc, i, 1 - g ** 2), r"\frac{\partial L}{\partial c_t} * i_t * (1 - \tilde{c}_t^2)"),
    ("given order kept", mul(c_prev, dc), r"c_{t-1} * \frac{\partial L}{\partial c_t}"),
    ("nested product bracketed", mul(dc, mul(o, 1 - sympy.tanh(c) ** 2)),
     r"\frac{\partial L}{\partial c_t} * [o_t * (1 - \tanh^2(c_t))]"),
    ("number times symbol", 2 * f, "2 * f_t"),
    ("minus one as a sign", -f, "-f_t"),
    ("negative coefficient", -3 * f, "-3 * f_t"),
    ("difference", f - i, "f_t - i_t"),
    ("negative first term", add(-f, i), "-f_t + i_t"),
    ("negated sum", mul(-1, add(f, i)), "-(f_t + i_t)"),
    ("double negation cancels", mul(-1, mul(f, -1)), "f_t"),
    ("subtracting a negated term", add(f, mul(-1, mul(i, -1))), "f_t + i_t"),
    ("unevaluated sum keeps order", add(dc, f), r"\frac{\partial L}{\partial c_t} + f_t"),
    ("nested sums flattened", add(f, add(i, o)), "f_t + i_t + o_t"),
    ("quotient", f / i, r"\frac{f_t}{i_t}"),
    ("reciprocal", 1 / f, r"\frac{1}{f_t}"),
    ("half", sympy.Rational(1, 2) * f, r"\frac{1}{2} * f_t"),
    # functions and powers
    ("sigmoid", sigmoid(theta), r"\sigma(\theta)"),
    ("tanh", sympy.tanh(c), r"\tanh(c_t)"),
    ("tanh squared", sympy.tanh(c) ** 2, r"\tanh^2(c_t)"),
    ("sigma' of theta", sigmoid(theta) * (1 - sigmoid(theta)), r"\sigma(\theta) * (1 - \sigma(\theta))"),
    ("power of a parameter", P("b^f") ** 2, "(b^f)^2"),
    ("power of a sum", (f + i) ** 2, "(f_t + i_t)^2"),
    ("power of an adjoint", dc ** 2, r"\left(\frac{\partial L}{\partial c_t}\right)^2"),
    # matrix structure
    ("TDot of a product", ir.TDot(P("W_x^f"), f * (1 - f)), "(W_x^f)^T [f_t * (1 - f_t)]"),
    ("TDot of a sum", ir.TDot(P("W_x^c"), 1 - g ** 2), r"(W_x^c)^T (1 - \tilde{c}_t^2)"),
    ("TDot of a symbol", ir.TDot(P("W_h^f"), dc), r"(W_h^f)^T \frac{\partial L}{\partial c_t}"),
    ("TDot of the seed delta", ir.TDot(P("W_x^f"), mul(dc, c_prev, f * (1 - f))),
     r"(W_x^f)^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1 - f_t)] \right\}"),
    ("Outer seed f family", ir.Outer(mul(dc, c_prev, f * (1 - f)), x),
     r"\left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1 - f_t)] \right\} x_t^T"),
    ("Outer seed candidate family", ir.Outer(mul(dc, i, 1 - g ** 2), h_prev),
     r"\left[ \frac{\partial L}{\partial c_t} * i_t * (1 - \tilde{c}_t^2) \right] h_{t-1}^T"),
    ("Outer local", ir.Outer(f * (1 - f), x), "[f_t * (1 - f_t)] x_t^T"),
    ("Dot", ir.Dot(P("W_x^f"), x), "W_x^f x_t"),
    ("SumOverTime of an outer", ir.SumOverTime(ir.Outer(mul(dc, i, 1 - g ** 2), x)),
     r"\sum_{t=1}^T \left[ \frac{\partial L}{\partial c_t} * i_t * (1 - \tilde{c}_t^2) \right] x_t^T"),
    ("SumOverTime of a product", ir.SumOverTime(mul(dc, c_prev, f * (1 - f))),
     r"\sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1 - f_t)] \right\}"),
    ("Transpose of a vector", ir.Transpose(x), "x_t^T"),
    ("Transpose of a parameter", ir.Transpose(P("W_x^f")), "(W_x^f)^T"),
    ("Transpose of a sum", ir.Transpose(add(f, i)), "(f_t + i_t)^T"),
    ("MatMul", ir.MatMul(ir.Transpose(P("W_x^f")), f * (1 - f)), "(W_x^f)^T [f_t * (1 - f_t)]"),
    ("MatMul of a row", ir.MatMul(ir.Transpose(mul(dc, f)), P("W_x^f")),
     r"\left( \frac{\partial L}{\partial c_t} * f_t \right)^T W_x^f"),
    ("derivative", sympy.Derivative(f, x, evaluate=False), r"\frac{\partial f_t}{\partial x_t}"),
    ("derivative of a function", sympy.Derivative(sigmoid(theta), theta, evaluate=False),
     r"\frac{\partial \sigma(\theta)}{\partial \theta}"),
]


@pytest.mark.parametrize("expr,expected", [(e, s) for _, e, s in CASES], ids=[name for name, _, _ in CASES])
def test_prints_in_seed_notation(expr, expected):
    assert latex(expr, LSTM) == expected


@pytest.mark.parametrize("expr,expected", [
    (ir.TDot(P("W_x"), mul(v("h", "t", "adjoint"), 1 - v("h") ** 2)),
     r"W_x^T \left[ \frac{\partial L}{\partial h_t} * (1 - h_t^2) \right]"),
    (ir.Outer(mul(v("h", "t", "adjoint"), 1 - v("h") ** 2), v("h", "t-1")),
     r"\left[ \frac{\partial L}{\partial h_t} * (1 - h_t^2) \right] h_{t-1}^T"),
], ids=["rnn TDot", "rnn Outer"])
def test_rnn_parameters_need_no_parentheses_to_transpose(expr, expected):
    assert latex(expr, RNN) == expected


def test_odot():
    expr = ir.Outer(mul(dc, c_prev, f * (1 - f)), x)
    assert latex(expr, LSTM, Style(hadamard="odot")) == \
        r"\left\{ \frac{\partial L}{\partial c_t} \odot c_{t-1} \odot [f_t \odot (1 - f_t)] \right\} x_t^T"


def test_unknown_hadamard_is_refused():
    with pytest.raises(ValueError):
        LatexPrinter(LSTM, hadamard="x")


def test_brackets_escalate_beyond_braces():
    deep = mul(dc, mul(f, mul(i, 1 - o)))
    assert latex(deep, LSTM) == r"\frac{\partial L}{\partial c_t} * \{ f_t * [i_t * (1 - o_t)] \}"


def test_without_a_cell_names_come_from_the_symbol_table():
    assert latex(mul(v("g", "t-1"), P("W_hr^z")), None) == "g_{t-1} * W_{hr}^z"


def test_terms_carry_their_signs():
    assert latex_terms(add(f, -i, mul(dc, o)), LSTM) == \
        ["f_t", "- i_t", r"+ \frac{\partial L}{\partial c_t} * o_t"]


def test_derivative_and_chain_helpers():
    assert derivative(LOSS, P("W_x^f"), LSTM) == r"\frac{\partial L}{\partial W_x^f}"
    chain = [dc, sympy.Derivative(c, f, evaluate=False), sympy.Derivative(f, P("W_x^f"), evaluate=False)]
    assert chain_product(chain, LSTM) == \
        r"\frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial W_x^f}"


def test_every_override_has_a_docstring():
    overrides = [name for name in vars(LatexPrinter) if name.startswith("_print_")]
    assert overrides
    for name in overrides:
        assert (getattr(LatexPrinter, name).__doc__ or "").strip(), name


# ----------------------------------------------------------------------------- any expression prints
_LEAVES = st.sampled_from([f, i, c_prev, g, dc, v("h", "t", "upstream"), v("h", "0"), P("b^f"), theta,
                           sympy.Integer(2), sympy.Integer(-1), sympy.Rational(1, 2), sympy.Integer(1)])
_MATRICES = st.sampled_from([P("W_x^f"), P("W_h^c")])


def _extend(children):
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda args: mul(*args)),
        st.lists(children, min_size=2, max_size=3).map(lambda args: add(*args)),
        st.lists(children, min_size=2, max_size=3).map(lambda args: sympy.Mul(*args)),
        st.lists(children, min_size=2, max_size=3).map(lambda args: sympy.Add(*args)),
        children.map(lambda a: -a),
        children.map(sigmoid), children.map(lambda a: sympy.tanh(a, evaluate=False)), children.map(lambda a: a ** 2),
        st.tuples(_MATRICES, children).map(lambda wa: ir.TDot(*wa)),
        st.tuples(children, st.sampled_from([x, h_prev])).map(lambda av: ir.Outer(*av)),
        st.tuples(_MATRICES, children).map(lambda wa: ir.Dot(*wa)),
        children.map(ir.SumOverTime), children.map(ir.Transpose),
        st.tuples(children, children).map(lambda ab: ir.MatMul(*ab)),
    )


_EXPRESSIONS = st.recursive(_LEAVES, _extend, max_leaves=10)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text.replace(r"\{", "(").replace(r"\}", ")").replace("[", "(").replace("]", ")"):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0 and text.count("{") == text.count("}")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_EXPRESSIONS, st.sampled_from(["*", "odot"]))
def test_any_expression_prints_with_balanced_brackets(expr, hadamard):
    text = latex(expr, LSTM, Style(hadamard=hadamard))
    assert text and _balanced(text), text
    assert "+ -" not in text and "- -" not in text, text
