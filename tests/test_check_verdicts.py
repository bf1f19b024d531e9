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
