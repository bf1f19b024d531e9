"""Verdicts that must not be false alarms or vacuous, each as a class of equations (issue 9):
a power after a function's bracket, one symbol read one way on both sides of an equation (and
the tautology it makes), the chain rule written right to left, and terms the witness points
cannot see.  The references are the checker's verdicts on the same formulas written the plain
way (themselves tested against finite differences in test_check.py), and SymPy/NumPy values
computed here."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    for p in params:
        q = next(q for q in params[::-1] if q.split("^")[-1] != p.split("^")[-1])
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


# ----------------------------------------------------------------------------- a power after a function
# F(a)^2 is (F(a))^2, as in \tanh(c_t)^2 and \tanh^2(c_t); F a^2 with no bracket is F(a^2).  For every
# function a notation knows, however it is spelled and bracketed.  The reference is the product
# F(a) ⊙ F(a), which reads no power at all.
CUSTOM = {
    "gelu": "input x\nstate h output\nfunction gelu(z) = z * sigmoid(1.702 * z)\nh = gelu(W_x @ x + W_h @ h[t-1] + b)\n",
    "softsign": "input x\nstate h output\nh = softsign(W_x @ x + W_h @ h[t-1] + b)\n",
    "relu": "input x\nstate h output\nh = relu(W_x @ x + W_h @ h[t-1] + b)\n",
}
# (cell, spelled function, argument): log and ln of a gate (positive), the rest of anything
FUNCTIONS = [("lstm", f, a) for f in (r"\sigma", r"\tanh", r"\exp", r"\operatorname{sigmoid}", r"\mathrm{tanh}",
                                      r"\text{tanh}", r"\textrm{sigmoid}", r"\operatorname{sigm}", r"\text{exp}")
             for a in ("c_t", r"W_x^f x_t + b^f", r"\theta")] \
    + [("lstm", f, a) for f in (r"\log", r"\ln", r"\operatorname{log}") for a in ("f_t", r"\sigma(c_t)")] \
    + [(cell, w % cell, a) for cell in CUSTOM for w in (r"\operatorname{%s}", r"\mathrm{%s}", r"\text{%s}", r"\textrm{%s}")
       for a in ("x_t", "W_x x_t + b")]  # x_t: of either sign (relu(h_t)^2 = relu(h_t^2), h_t >= 0)
BRACKETS = [("(", ")"), (r"\left(", r"\right)"), ("[", "]"), (r"\left[", r"\right]"), (r"\{", r"\}"),
            (r"\left\{", r"\right\}"), (r"\bigl(", r"\bigr)"), (r"\Big[", r"\Big]"), (r"\left\lbrace ", r"\right\rbrace "),
            ("{(", ")}"), (r"\!\left(", r"\right)")]
POWERS = [("^2", 2), ("^{2}", 2), ("^ 2", 2), ("^{ 2 }", 2), ("^3", 3)]


@pytest.fixture(scope="module")
def notations(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    out = {"lstm": notation_of("lstm")}
    for name, text in CUSTOM.items():
        path = folder / (name + ".cell")
        path.write_text(text)
        out[name] = notation_of(str(path))
    return out


def _applied(function, argument, brackets):
    return "%s%s %s %s" % (function, brackets[0], argument, brackets[1])


def _ids(value):
    return value if isinstance(value, str) else None


@pytest.mark.parametrize("cell, function, argument", FUNCTIONS, ids=_ids)
def test_a_power_after_a_functions_bracket_is_the_functions_power(cell, function, argument, notations):
    notation = notations[cell]
    failures = []
    for index, (brackets, (written, k)) in enumerate(itertools.product(BRACKETS, POWERS)):
        applied = _applied(function, argument, brackets)
        product = r" \odot ".join([applied] * k)
        forms = ("%s%s = %s" % (applied, written, product), "%s = %s%s" % (product, applied, written),
                 "%s%s %s = %s" % (function, written, _applied("", argument, brackets), product))
        equation = forms[index % len(forms)]  # every form meets every bracket, in turn
        verdict = judge(equation, notation)
        if verdict.status != "correct":
            failures.append((equation, verdict.message))
    for brackets in BRACKETS:
        applied = _applied(function, argument, brackets)
        squared_inside = _applied(function, "(%s)^2" % argument, brackets)
        verdict = judge("%s^2 = %s" % (applied, squared_inside), notation)
        if verdict.status != "incorrect":
            failures.append(("F(a)^2 = F(a^2)", applied, verdict.status, verdict.message))
    assert not failures, failures[:5]


SPACES = ["", " ", r"\,", r"\!", r"\;", "~"]


@st.composite
def spelled_powers(draw):
    """(cell, F(a)^k spelled at random, F(a) ⊙ ... ⊙ F(a) spelled plainly)."""
    cell, function, argument = draw(st.sampled_from(FUNCTIONS))
    opening, closing = draw(st.sampled_from(BRACKETS))
    written, k = draw(st.sampled_from(POWERS))
    gap = lambda: draw(st.sampled_from(SPACES))  # noqa: E731
    power_first = draw(st.booleans())
    bracketed = "%s%s%s%s%s" % (opening, gap(), argument, gap(), closing)
    spelled = (function + written + gap() + bracketed) if power_first else (function + gap() + bracketed + gap() + written)
    plain = r" \odot ".join(["%s(%s)" % (function, argument)] * k)
    return cell, spelled, plain


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                                     HealthCheck.function_scoped_fixture])
@given(spelled_powers())
def test_any_spelling_of_a_functions_power_is_the_functions_power(notations, case):
    cell, spelled, plain = case
    for equation in ("%s = %s" % (spelled, plain), "%s = %s" % (plain, spelled)):
        verdict = judge(equation, notations[cell])
        assert verdict.status == "correct", (equation, verdict.message)


@pytest.mark.parametrize("cell, function", sorted({(c, f) for c, f, _ in FUNCTIONS}), ids=_ids)
def test_a_power_on_an_unbracketed_argument_is_the_arguments(cell, function, notations):
    """\\tanh c_t^2 is \\tanh(c_t^2), not (\\tanh c_t)^2."""
    argument = "f_t" if "log" in function or "ln" in function else ("x_t" if cell != "lstm" else "c_t")
    notation = notations[cell]
    inside = judge(r"%s %s^2 = %s(%s \odot %s)" % (function, argument, function, argument, argument), notation)
    outside = judge(r"%s %s^2 = %s(%s) \odot %s(%s)" % (function, argument, function, argument, function, argument),
                    notation)
    assert (inside.status, outside.status) == ("correct", "incorrect"), (inside.message, outside.message)


TANH_SQUARED = [r"\tanh(c_t)^2", r"\tanh\left(c_t\right)^2", r"\tanh^2(c_t)", r"\tanh^{2} c_t", r"\tanh[c_t]^2",
                r"\tanh\left[c_t\right]^{2}", r"\tanh\{c_t\}^2", r"(\tanh c_t)^2", r"\tanh\bigl(c_t\bigr)^2",
                r"\text{tanh}(c_t)^2", r"\operatorname{tanh}(c_t)^2", r"\mathrm{tanh}\left(c_t\right)^2",
                r"\tanh(\mathbf{c}_t)^2"]


@pytest.mark.parametrize("square", TANH_SQUARED)
@pytest.mark.parametrize("sign", [" * ", r" \odot ", " "], ids=["star", "odot", "juxt"])
def test_the_state_gradient_with_a_squared_tanh_is_correct(square, sign):
    rest = sign.join([d("L", "h_t"), "o_t", "(1 - %s)" % square])
    verdict = judge(r"%s = %s + %s" % (d("L", "c_t"), rest, sign.join([d("L", "c_{t+1}"), "f_{t+1}"])),
                    notation_of("lstm"))
    assert verdict.status == "correct", verdict.message


@pytest.mark.parametrize("spelled", [r"\sigma(a_f)^2", r"\sigma\left(a_f\right)^2", r"\sigma^2(a_f)", r"\sigma[a_f]^{2}"])
def test_a_squared_sigma_of_a_named_preactivation(spelled):
    """σ(a)^2 in a document that names the gate's pre-activation a_f (learned from its forward equations)."""
    document = "\n".join([
        "$$a_f = W_f x_t + U_f h_{t-1} + b_f$$", "$$f_t = \\sigma(a_f)$$",
        "$$i_t = \\sigma(W_i x_t + U_i h_{t-1} + b_i)$$", "$$o_t = \\sigma(W_o x_t + U_o h_{t-1} + b_o)$$",
        "$$\\tilde{c}_t = \\tanh(W_c x_t + U_c h_{t-1} + b_c)$$", "$$c_t = f_t \\odot c_{t-1} + i_t \\odot \\tilde{c}_t$$",
        "$$h_t = o_t \\odot \\tanh(c_t)$$", "",
        "$$%s = %s \\odot c_{t-1} \\odot (\\sigma(a_f) - %s)$$" % (d("L", "b_f"), d("L", "c_t"), spelled), ""])
    report = check_text(document)
    backward = [e for e in report.equations if e.kind == "backward"]
    assert [e.status for e in backward] == ["correct"], [(e.line, e.message) for e in backward]


def test_an_unknown_text_function_is_not_dropped_as_a_remark():
    """\\text{foo}(c_t) is a function application the notation does not know, not a remark before (c_t)."""
    verdict = judge(r"\text{foo}(c_t) = c_t", notation_of("lstm"))
    assert verdict.status == "unrecognized" and "unknown function" in verdict.message
    assert judge(r"%s = %s \quad \text{(one step)}" % (d("L", "b^o"), r"\frac{\partial L}{\partial h_t} * \tanh(c_t) "
                                                       r"* o_t * (1 - o_t)"), notation_of("lstm")).status == "correct"


# ----------------------------------------------------------------------------- what the witness points see
# Correct equations of several kinds; a term added to (or multiplying) one of them that is 0, or one
# branch of a step, at every witness point must not leave it "correct": the numbers never saw it.
# (cell, the variable v of the extra terms, the equation with a slot @ where they go)
CORRECT = [
    ("lstm", "c", d("L", "b^f") + r" = %s * c_{t-1} * f_t * (1 - f_t)@" % d("L", "c_t")),
    ("lstm", "c", d("L", "c_t") + r" = %s * o_t * (1 - \tanh^2 c_t) + %s * f_{t+1}@" % (d("L", "h_t"), d("L", "c_{t+1}"))),
    ("lstm", "c", d("L", "W_x^f") + r" = \left[%s * c_{t-1} * f_t * (1 - f_t)@\right] x_t^T" % d("L", "c_t")),
    ("lstm", "c", d("f_t", "b^f") + " = f_t * (1 - f_t)@"),
    ("lstm", "c", r"c_t = f_t * c_{t-1} + i_t * \tilde{c}_t@"),
    ("lstm", "z", r"\sigma'(z) = \sigma(z) (1 - \sigma(z))@"),
    ("rnn", "h", d("L", "b") + r" = %s \odot (1 - h_t^2)@" % d("L", "h_t")),
    ("gru", "h", d("L", "b_h^z") + r" = %s \odot (h_{t-1} - n_t) \odot z_t \odot (1 - z_t)@" % d("L", "h_t")),
]
# what is added or multiplied, in the variable v (the state, or the identity's z); FAR is far
# beyond any witness point, even the wide ones (1000 times larger inputs and states)
FAR = "1000000"
UNSEEN = [
    ("added_step", r" + \operatorname{step}(v - %s)" % FAR),
    ("added_mathrm_step", r" + \mathrm{step}(v - %s)" % FAR),
    ("added_abs", r" + \left| v + %s \right| - %s - v" % (FAR, FAR)),
    ("added_tiny", r" + \exp(-1000) v"),
    ("times_step", r" * \operatorname{step}(v + %s)" % FAR),
    ("times_sign", r" * \operatorname{sign}(v + %s)" % FAR),
    ("times_sign_of_positive", r" * \operatorname{sign}(\sigma(v))"),
]


@pytest.mark.parametrize("cell, v, equation", CORRECT, ids=lambda x: x if len(x) < 12 else None)
def test_the_plain_equations_are_correct(cell, v, equation):
    assert judge(equation.replace("@", ""), notation_of(cell)).status == "correct"


@pytest.mark.parametrize("name, extra", UNSEEN, ids=[u[0] for u in UNSEEN])
@pytest.mark.parametrize("cell, v, equation", CORRECT, ids=range(len(CORRECT)))
def test_agreement_the_witness_points_cannot_see_is_never_correct(cell, v, equation, name, extra):
    variable = {"c": "c_t", "h": "h_t", "z": "z"}[v]
    verdict = judge(equation.replace("@", extra.replace("v", variable)), notation_of(cell))
    assert verdict.status != "correct", verdict.message
    assert "shapes" not in verdict.message, verdict.message  # wrong for the right reason
    if verdict.status == "unrecognized":
        assert "cannot decide" in verdict.message and "every witness point" in verdict.message, verdict.message


@pytest.mark.parametrize("cell, v, equation", CORRECT[:5], ids=range(5))
@pytest.mark.parametrize("extra", [r" + \operatorname{step}(c_t - 100)", r" + \left| c_t + 100 \right| - 100 - c_t",
                                   r" + \operatorname{step}(c_{t-1} - 150)"], ids=["step", "abs", "step_previous"])
def test_a_term_the_wide_points_see_makes_the_equation_incorrect(cell, v, equation, extra):
    """c_t passes 100 at the wide draws (initial states 1000 times larger): the term is seen to be
    no 0 there, so the equation is wrong, and the verdict says where the agreement came from."""
    verdict = judge(equation.replace("@", extra), notation_of(cell))
    assert verdict.status == "incorrect", verdict.message
    assert "only because" in verdict.message and "larger values" in verdict.message


@pytest.mark.parametrize("extra", [
    r" + (\sigma(W_x^f x_t + W_h^f h_{t-1} + b^f) - f_t) * c_t",    # 0 by the forward equation: SymPy shows it
    r" + (c_t - f_t * c_{t-1} - i_t * \tilde{c}_t) * o_t",
    r" + (h_{t-1} - o_{t-1} * \tanh(c_{t-1}))",
], ids=["gate", "state", "previous_output"])
def test_a_term_that_is_zero_by_the_cell_keeps_the_equation_correct(extra):
    verdict = judge(CORRECT[0][2].replace("@", extra), notation_of("lstm"))
    assert verdict.status == "correct", verdict.message


def test_terms_past_the_last_step_keep_the_equation_correct():
    """At t = T, ∂L/∂c_{T+1} is 0 by definition (nothing comes after T): no blind spot."""
    verdict = judge(d("L", "c_T") + r" = %s * o_T * (1 - \tanh^2 c_T) + %s * f_{T+1}" % (d("L", "h_T"), d("L", "c_{T+1}")),
                    notation_of("lstm"))
    assert verdict.status == "correct", verdict.message


# A cell whose own derivative takes one branch at every ordinary witness point: relu of a
# pre-activation shifted by +20 (positive unless the inputs are large).
SHIFTED_RELU = "input x\nstate h output\nh = relu(W_x @ x + b + 20) + p * h[t-1]\n"


@pytest.fixture(scope="module")
def shifted_relu(tmp_path_factory):
    path = tmp_path_factory.mktemp("cells") / "shifted_relu.cell"
    path.write_text(SHIFTED_RELU)
    return notation_of(str(path))


@pytest.mark.parametrize("lhs, right, wrong", [
    (d("L", "b"), r"%s * \operatorname{step}(a^{h}_t)" % d("L", "h_t"), d("L", "h_t")),
    (d("L", "W_x"), r"\left(%s * \operatorname{step}(a^{h}_t)\right) x_t^T" % d("L", "h_t"), r"%s x_t^T" % d("L", "h_t")),
], ids=["bias", "weight"])
def test_an_expected_formula_on_one_branch_is_no_evidence_either(lhs, right, wrong, shifted_relu):
    """Leaving out the step of the relu's derivative agrees at every ordinary point (the step is 1
    there); the wide draws take the pre-activation below 0, and show it wrong."""
    assert judge("%s = %s" % (lhs, right), shifted_relu).status == "correct"
    verdict = judge("%s = %s" % (lhs, wrong), shifted_relu)
    assert verdict.status == "incorrect" and "expected formula's" in verdict.message, verdict.message


def test_an_unseen_term_in_a_document_is_reported_and_not_counted_correct():
    equation = CORRECT[0][2].replace("@", r" + \operatorname{step}(c_t - %s)" % FAR)
    report = check_text("$$%s$$\n\n$$%s$$\n" % (CORRECT[0][2].replace("@", ""), equation), cell="lstm")
    assert [e.status for e in report.equations] == ["correct", "unrecognized"]
    assert "numbers cannot decide" in report.equations[1].message and report.exit_code == 1


# ----------------------------------------------------------------------------- in the row layout
def test_the_classes_hold_in_a_row_layout_document():
    """x_t U_f + h_{t-1} W_f (row vectors, tests/notation_corpus/row_layout_uw.tex's forward step):
    dU_f = ∂L/∂U_f, a chain right to left, a squared tanh and unseen terms, as in the column layout."""
    from pathlib import Path
    source = (Path(__file__).parent / "notation_corpus" / "row_layout_uw.tex").read_text()
    forward = source[:source.index(r"\section*{Backward step}")]
    fhat = d("L", r"\hat{f}_t")
    cases = [
        (r"dU_f = %s" % d("L", "U_f"), "correct"),
        (r"%s = dU_f" % d("L", "U_f"), "correct"),
        (r"%s = %s" % (d("L", "U_f"), d("L", "U_f")), "unrecognized"),
        (r"%s = %s %s" % (d("L", "b_f"), d(r"\hat{f}_t", "b_f"), fhat), "correct"),
        (r"%s = %s %s" % (d("L", "U_f"), d(r"\hat{f}_t", "U_f"), fhat), "correct"),
        (r"%s = %s \odot o_t \odot (1 - \tanh(c_t)^2) + %s \odot f_{t+1}" % (d("L", "c_t"), d("L", "h_t"), d("L", "c_{t+1}")),
         "correct"),
        (r"%s = x_t^\top %s + x_t^\top (\operatorname{step}(c_t - 100) \odot %s)" % (d("L", "U_f"), fhat, fhat), "incorrect"),
        (r"%s = x_t^\top %s + x_t^\top (\operatorname{step}(c_t - %s) \odot %s)" % (d("L", "U_f"), fhat, FAR, fhat),
         "unrecognized"),
    ]
    body = "\n".join(r"\[ %s \]" % equation for equation, _ in cases)
    report = check_text(forward + body + "\n\\end{document}\n", source="row.tex")
    backward = [e for e in report.equations if e.kind != "forward"]
    assert report.notation.layout == "row"
    assert [e.status for e in backward] == [status for _, status in cases], [(e.line, e.message) for e in backward]
