"""Verdicts that must not be false alarms or vacuous, each as a class of equations (issue 9):
a power after a function's bracket, one symbol read one way on both sides of an equation (and
the tautology it makes), the chain rule written right to left, and terms the witness points
cannot see.  The references are the checker's verdicts on the same formulas written the plain
way (themselves tested against finite differences in test_check.py), and SymPy/NumPy values
computed here."""
from __future__ import annotations

import itertools

import pytest

from lstmgen import cells
from lstmgen.checker import check_text
from lstmgen.checker.judge import judge
from lstmgen.checker.notation import Notation


def notation_of(cell: str) -> Notation:
    return Notation.for_cell(cells.load(cell), "option")


def d(num: str, den: str) -> str:
    return r"\frac{\partial %s}{\partial %s}" % (num, den)


# ----------------------------------------------------------------------------- the chain rule's order
# (cell, left side, factors left to right: each numerator is the previous denominator); every
# product is a correct step gradient or local derivative, a single path through the cell.
CHAINS = [
    ("lstm", d("L", "b^f"), [d("L", "c_t"), d("c_t", "f_t"), d("f_t", "b^f")]),
    ("lstm", d("L", "W_x^i"), [d("L", "c_t"), d("c_t", "i_t"), d("i_t", "W_x^i")]),
    ("lstm", d("L", r"W_h^c"), [d("L", "c_t"), d("c_t", r"\tilde{c}_t"), d(r"\tilde{c}_t", "W_h^c")]),
    ("lstm", d("L", "b^o"), [d("L", "h_t"), d("h_t", "o_t"), d("o_t", "b^o")]),
    ("lstm", d("L", "W_h^o"), [d("L", "o_t"), d("o_t", "W_h^o")]),
    ("lstm", d("L", "c_{t-1}"), [d("L", "c_t"), d("c_t", "c_{t-1}")]),
    ("lstm", d("c_t", "b^f"), [d("c_t", "f_t"), d("f_t", "b^f")]),
    ("gru", d("L", "W_x^z"), [d("L", "z_t"), d("z_t", "W_x^z")]),
    ("gru", d("L", "b_h^r"), [d("L", "r_t"), d("r_t", "b_h^r")]),
    ("rnn", d("L", "W_x"), [d("L", "h_t"), d("h_t", "W_x")]),
    ("rnn", d("L", "b"), [d("L", "h_t"), d("h_t", "b")]),
    ("peephole_lstm", d("L", "p^f"), [d("L", "c_t"), d("c_t", "f_t"), d("f_t", "p^f")]),
]
PRODUCT_SIGNS = [r" \cdot ", " ", r" \, ", " * "]


@pytest.mark.parametrize("cell, lhs, factors", CHAINS, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("sign", PRODUCT_SIGNS, ids=["cdot", "juxt", "thin", "star"])
def test_a_chain_written_right_to_left_reads_like_left_to_right(cell, lhs, factors, sign):
    notation = notation_of(cell)
    forward = judge("%s = %s" % (lhs, sign.join(factors)), notation)
    backward = judge("%s = %s" % (lhs, sign.join(reversed(factors))), notation)
    assert forward.status == "correct", forward.message
    assert backward.status == "correct", backward.message


@pytest.mark.parametrize("cell, lhs, factors", [c for c in CHAINS if len(c[2]) == 3],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_chain_in_neither_order_still_breaks(cell, lhs, factors):
    notation = notation_of(cell)
    for order in itertools.permutations(factors):
        if list(order) in (factors, factors[::-1]):
            continue
        verdict = judge("%s = %s" % (lhs, r" \cdot ".join(order)), notation)
        assert verdict.status == "incorrect" and "chain breaks" in verdict.message, (order, verdict.message)


@pytest.mark.parametrize("wrong", [
    # a factor through the wrong quantity: ∂L/∂h_t where the path goes through c_t
    [d("f_t", "b^f"), d("c_t", "f_t"), d("L", "h_t")],
    # the right path to the wrong parameter
    [d("i_t", "b^i"), d("c_t", "i_t"), d("L", "c_t")],
    # the right path at the wrong step
    [d("f_t", "b^f"), d("c_t", "f_t"), d("L", "c_{t+1}")],
], ids=["wrong_quantity", "wrong_parameter", "wrong_step"])
def test_a_wrong_chain_right_to_left_is_incorrect(wrong):
    verdict = judge("%s = %s" % (d("L", "b^f"), r" \cdot ".join(wrong)), notation_of("lstm"))
    assert verdict.status == "incorrect", verdict.message


# ----------------------------------------------------------------------------- one reading per symbol
def _parameters(cell: str) -> list:
    return [q.latex for q in cells.load(cell).quantities.values() if q.is_parameter]


PARAMETERS = [(cell, p) for cell in ("lstm", "gru", "rnn") for p in _parameters(cell)]


@pytest.mark.parametrize("cell, p", PARAMETERS)
def test_a_parameter_gradient_reads_alike_on_both_sides(cell, p):
    """dW = ∂L/∂W, ∂L/∂W = dW, dL/dW = ∂L/∂W: one gradient in two spellings, correct (the
    left side was read as one step's gradient and the right as the sum over t)."""
    notation = notation_of(cell)
    for equation in ("d%s = %s" % (p, d("L", p)), "%s = d%s" % (d("L", p), p),
                     r"\frac{dL}{d%s} = %s" % (p, d("L", p))):
        verdict = judge(equation, notation)
        assert verdict.status == "correct", (equation, verdict.message)


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole_lstm"])
def test_another_parameters_gradient_is_still_incorrect(cell):
    """∂L/∂W of another gate's parameter (the GRU's b_x^r and b_h^r have one gradient: other gates only)."""
    notation = notation_of(cell)
    params = _parameters(cell)
    for p, q in itertools.product(params, params):
        if p.split("^")[-1] == q.split("^")[-1]:
            continue
        verdict = judge("d%s = %s" % (p, d("L", q)), notation)
        assert verdict.status == "incorrect", (p, q, verdict.message)


def _left_sides(cell: str) -> list:
    cell_ = cells.load(cell)
    out = []
    for q in cell_.quantities.values():
        if q.is_parameter:
            out += [d("L", q.latex), "d%s" % q.latex, r"\frac{dL}{d%s}" % q.latex]
        else:
            out += [d("L", q.latex + "_t"), d("L", q.latex + "_{t-1}"), q.latex + "_t"]
    for eq in cell_.equations:
        for s in eq.rhs.free_symbols:
            arg = cell_.quantities.get(s.name.split("[")[0])
            if arg is not None and not arg.is_parameter:
                out.append(d(cell_.quantities[eq.target].latex + "_t", arg.latex + "_t"))
    return sorted(set(out))


TAUTOLOGIES = [(cell, lhs) for cell in ("lstm", "gru", "rnn") for lhs in _left_sides(cell)]
WRAPPINGS = ["%s", r"\left(%s\right)", "[%s]", "{%s}", r"\boxed{%s}", r"\Big( %s \Big)"]


@pytest.mark.parametrize("cell, lhs", TAUTOLOGIES)
def test_a_tautology_is_reported_as_one(cell, lhs):
    """A = A states nothing: neither correct nor incorrect, and the message says why."""
    notation = notation_of(cell)
    for wrapping in WRAPPINGS:
        equation = "%s = %s" % (lhs, wrapping % lhs)
        verdict = judge(equation, notation)
        assert verdict.status == "unrecognized" and "tautology" in verdict.message, (equation, verdict.message)


@pytest.mark.parametrize("right, status", [
    (r"\frac{\partial L}{\partial h_t} * o_t * (1 - \tanh^2 c_t) + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}",
     "correct"),
    (r"\frac{\partial L}{\partial h_t} * o_t * (1 - \tanh c_t) + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}",
     "incorrect"),
])
def test_a_repeated_left_side_in_a_chain_of_equalities_leaves_the_rest_judged(right, status):
    lhs = d("L", "c_t")
    verdict = judge("%s = %s = %s" % (lhs, lhs, right), notation_of("lstm"))
    assert verdict.status == status, verdict.message


def test_a_tautology_in_a_document_is_not_counted_correct():
    report = check_text("$$%s = %s$$\n" % (d("L", "W_x^f"), d("L", "W_x^f")), cell="lstm")
    assert [e.status for e in report.equations] == ["unrecognized"]
    assert report.exit_code == 1
