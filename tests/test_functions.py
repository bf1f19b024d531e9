"""Derivatives of cell-file functions in terms of their output (functions.in_terms_of_output),
checked against central finite differences of the formula itself, and the functions it must
refuse: no fit may pass for a proof."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

from lstmgen import derive
from lstmgen.functions import OUTPUT, VARIABLE, define, in_terms_of_output, relu, sigmoid, softsign

z, y = VARIABLE, OUTPUT

# formula -> the derivative in terms of y that it has (derived by hand from the formula)
HAS_ONE = {
    "softsign": (z / (1 + sympy.Abs(z)), (1 - sympy.Abs(y)) ** 2),
    "logistic": (1 / (1 + sympy.exp(-z)), y - y**2),
    "scaled_tanh": (2 * sympy.tanh(z / 2), 1 - y**2 / 4),
    "sigmoid_via_tanh": ((sympy.tanh(z / 2) + 1) / 2, y - y**2),
    "exp": (sympy.exp(z), y),
    "sigmoid_of_ours": (sigmoid(z), y - y**2),
}
# none exists (swish, isru, softplus, a square), or a fit cannot be trusted (a kink beyond the points)
HAS_NONE = {
    "swish": z / (1 + sympy.exp(-z)),
    "isru": z / sympy.sqrt(1 + z**2),
    "softplus": sympy.log(1 + sympy.exp(z)),
    "square": z**2,
    "cube": z**3,
    "linear": 2 * z,
    "far_kink": sympy.Min(z, 1000),
    "elliott": z / (2 * (1 + sympy.Abs(z))) + sympy.Rational(1, 2),
    "abs": sympy.Abs(z),
}


def _numeric(expr, values):
    return np.array([float(expr.subs(z, v)) for v in values])


@pytest.mark.parametrize("name", sorted(HAS_ONE))
def test_a_derivative_in_terms_of_the_output_matches_finite_differences(name):
    formula, expected = HAS_ONE[name]
    function = define("f_" + name, z, formula)
    found = in_terms_of_output(function)
    assert sympy.expand(found - expected) == 0
    points = np.concatenate([-np.geomspace(0.01, 30, 25), np.geomspace(0.01, 30, 25)])
    step = 1e-6
    slopes = (_numeric(formula, points + step) - _numeric(formula, points - step)) / (2 * step)
    outputs = _numeric(formula, points)
    claimed = np.array([float(found.subs(y, v)) for v in outputs])
    np.testing.assert_allclose(claimed, slopes, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(HAS_NONE))
def test_no_derivative_in_terms_of_the_output_is_claimed_without_one(name):
    assert in_terms_of_output(define("g_" + name, z, HAS_NONE[name])) is None


def test_the_built_in_functions():
    assert in_terms_of_output(softsign) == (1 - sympy.Abs(y)) ** 2
    assert in_terms_of_output(relu) is None  # max(0, z): a kink
    a = sympy.Symbol("a")
    assert softsign(a).diff(a) == (1 - sympy.Abs(softsign(a))) ** 2


def test_a_softsign_gate_s_gradient_reads_the_gate(tmp_path):
    """As for a tanh gate: dL/da^g is written with g, not with the pre-activation."""
    cell = tmp_path / "softsign_gate.cell"
    cell.write_text("input x\nstate h output\nstate c\ngates f g\n"
                    "f = sigmoid(W_x^f @ x + W_h^f @ h[t-1] + b^f)\n"
                    "g = softsign(W_x^c @ x + W_h^c @ h[t-1] + b^c)\n"
                    "c = f * c[t-1] + (1 - f) * g\nh = tanh(c)\n")
    gradient = derive(str(cell)).grad("b^c").sympy
    assert any(isinstance(node, sympy.Abs) and node.args[0].is_Symbol and node.args[0].name.startswith("g")
               for node in sympy.preorder_traversal(gradient)), gradient
    assert not gradient.has(sympy.sign), gradient


# Cell files are untrusted: a formula whose proof would be costly, or whose values overflow the fit,
# gets no claim, at once (a "does not hang" bound, not a speed test).
COSTLY_OR_OVERFLOWING = {
    "nearly_tanh": sympy.tanh(z) + sympy.Float(1e-20) * (sympy.tanh(z) + 2) ** 4,
    "power_64": (z / (1 + sympy.Abs(z)) + 2) ** 64,
    "product_of_powers": (sympy.tanh(z) + sympy.exp(z) + z + 1) ** 8 * (z + 2) ** 8,
    "exp_160": sympy.exp(160 * z),
}


@pytest.mark.parametrize("name", sorted(COSTLY_OR_OVERFLOWING))
def test_a_costly_or_overflowing_formula_gets_no_claim_at_once(name):
    import time

    started = time.monotonic()
    assert in_terms_of_output(define("c_" + name, z, COSTLY_OR_OVERFLOWING[name])) is None
    assert time.monotonic() - started < 5


def test_a_cell_whose_function_overflows_the_fit_still_generates(tmp_path):
    from lstmgen import codegen

    cell = tmp_path / "fast.cell"
    cell.write_text("input x\nstate h output\nfunction fast(z) = exp(160 * z)\n"
                    "a = W @ x + U @ h[t-1]\nh = fast(a)\n")
    assert "def fast(" in codegen(str(cell))
