"""`lstmgen check`: a table of equations with known verdicts, the witness values against finite
differences, the document reader, the Python API and the CLI (the derive -> check round trip is
in test_document.py)."""
from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

import numpy as np
import pytest

import lstmgen
from lstmgen import cells, symbols
from lstmgen.checker import check_text, environment, extract
from lstmgen.checker.judge import judge
from lstmgen.errors import DocumentError
from lstmgen.evaluate import Evaluator

from conftest import assert_one_line_error, run_cli

# The seed's bracketed factors, typed from the customer's document (independent witnesses).
DF = r"\left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)] \right\}"
DI = r"\left\{ \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)] \right\}"
DG = r"\left[ \frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2) \right]"
DO = r"\left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\}"
DO_WRONG = r"\left\{ \frac{\partial L}{\partial c_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\}"
DX = r"(W_x^f)^T %s + (W_x^i)^T %s + (W_x^c)^T %s + (W_x^o)^T %s" % (DF, DI, DG, DO)

# (id, cell, latex, expected status, a piece of the message or None)
TABLE = [
    # the seed's correct formulas
    ("seed_local_f_x", "lstm", r"\frac{\partial f_t}{\partial x_t} = (W_x^f)^T [f_t * (1 - f_t)]", "correct", None),
    ("seed_local_g_b", "lstm", r"\frac{\partial \tilde{c}_t}{\partial b^c} = 1 - \tilde{c}_t^2", "correct", None),
    ("seed_dc_prev_chain", "lstm", r"\frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} \cdot "
     r"\frac{\partial c_t}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t", "correct", None),
    ("seed_dWxf_chain", "lstm", r"\frac{\partial L}{\partial W_x^f} = \frac{\partial L}{\partial c_t} \cdot "
     r"\frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial W_x^f} = %s x_t^T" % DF, "correct", None),
    ("seed_dWho_summed", "lstm", r"\frac{\partial L}{\partial W_h^o} = \sum_{t=1}^T %s h_{t-1}^T" % DO,
     "correct", None),
    ("seed_dx", "lstm", r"\frac{\partial L}{\partial x_t} = " + DX, "correct", None),
    ("seed_sigma_identity", "lstm", r"\frac{\partial \sigma(\theta)}{\partial \theta} = \sigma(\theta) \cdot "
     r"[1 - \sigma(\theta)]", "correct", None),
    ("seed_tanh_identity", "lstm", r"\frac{\partial \tanh \theta}{\partial \theta} = 1 - \tanh^2 \theta",
     "correct", None),
    # rearrangements that must pass
    ("commuted_factors", "lstm", r"\frac{\partial L}{\partial b^f} = [(1-f_t) f_t] \odot c_{t-1} \odot "
     r"\frac{\partial L}{\partial c_t}", "correct", None),
    ("transposed_product", "lstm", r"\frac{\partial L}{\partial x_t} = \left(%s^T W_x^f + %s^T W_x^i + %s^T W_x^c "
     r"+ %s^T W_x^o\right)^T" % (DF, DI, DG, DO), "correct", None),
    ("sum_distributed", "lstm", r"\frac{\partial L}{\partial W_x^f} = \sum_{t=1}^T \frac{\partial L}{\partial c_t} "
     r"* c_{t-1} * f_t x_t^T - \sum_{t=1}^T \frac{\partial L}{\partial c_t} * c_{t-1} * f_t^2 x_t^T", "correct", None),
    ("odot_and_top", "lstm", r"\frac{\partial L}{\partial W_h^o} = \Big(\frac{\partial L}{\partial \mathbf{h}_t} "
     r"\odot \tanh(\mathbf{c}_t) \odot \mathbf{o}_t \odot (1-\mathbf{o}_t)\Big) \mathbf{h}_{t-1}^\top",
     "correct", None),
    ("gate_superscript_first", "lstm", r"\frac{\partial L}{\partial W^f_h} = %s h_{t-1}^T" % DF, "correct", None),
    ("dfrac_d_notation", "lstm", r"\frac{dL}{db^o} = \frac{dL}{dh_t} \, \tanh(c_t) \, o_t \, (1 - o_t)",
     "correct", None),
    ("forward_equation", "lstm", r"c_t = f_t \odot c_{t-1} + i_t \odot \tilde{c}_t", "correct", None),
    ("state_total", "lstm", r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} * o_t * "
     r"(1 - \tanh^2 c_t) + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}", "correct", None),
    ("initial_state", "lstm", r"\frac{\partial L}{\partial c_0} = \frac{\partial L}{\partial c_1} * f_1",
     "correct", None),
    ("step_loss", "rnn", r"\frac{\partial L}{\partial h_t} = \frac{\partial \ell_t}{\partial h_t} + W_h^T "
     r"\left[\frac{\partial L}{\partial h_{t+1}} \odot (1 - h_{t+1}^2)\right]", "correct", None),
    ("text_and_spacing", "rnn", r"\frac{\partial L}{\partial b} = \frac{\partial L}{\partial h_t} \odot (1 - h_t^2) "
     r"\quad \text{(one step)} \, ,", "correct", None),
    ("capital_c_warning", "lstm", r"\frac{\partial L}{\partial b^o} = \frac{\partial L}{\partial h_t} * \tanh(C_t) "
     r"* [o_t * (1-o_t)]", "correct", "C_t"),
    ("chain_through_gate_gradient", "lstm", r"\frac{\partial L}{\partial W_x^f} = \frac{\partial L}{\partial f_t} "
     r"\frac{\partial f_t}{\partial W_x^f}", "correct", None),
    ("gate_total_gradient", "lstm",
     r"\frac{\partial L}{\partial o_t} = \frac{\partial L}{\partial h_t} \odot \tanh(c_t)", "correct", None),
    ("chain_across_steps", "lstm", r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} "
     r"\frac{\partial h_t}{\partial c_t} + \frac{\partial L}{\partial c_{t+1}} \frac{\partial c_{t+1}}{\partial c_t}",
     "correct", None),
    ("jacobian_through_the_step", "lstm", r"\frac{\partial h_t}{\partial h_{t-1}} = (W_h^o)^T [o_t (1-o_t) \tanh(c_t)] "
     r"+ (W_h^f)^T [o_t (1 - \tanh^2 c_t) c_{t-1} f_t (1-f_t)] "
     r"+ (W_h^i)^T [o_t (1 - \tanh^2 c_t) \tilde{c}_t i_t (1-i_t)]"
     r" + (W_h^c)^T [o_t (1 - \tanh^2 c_t) i_t (1-\tilde{c}_t^2)]", "correct", None),
    ("unrelated_is_zero", "lstm", r"\frac{\partial c_t}{\partial o_t} = 0", "correct", None),
    ("absolute_steps", "lstm", r"\frac{\partial L}{\partial b^o} = \sum_{t=1}^T \frac{\partial L}{\partial h_t} * "
     r"\tanh(c_t) * [o_t * (1-o_t)] = " + " + ".join(
         r"\frac{\partial L}{\partial h_%d} * \tanh(c_%d) * [o_%d * (1-o_%d)]" % (k, k, k, k) for k in range(1, 5)),
     "incorrect", None),  # the witness has T = 4 steps, but T is not 4 in general: the sum is no identity
    ("peephole_forward", "peephole_lstm", r"f_t = \sigma(W_x^f x_t + W_h^f h_{t-1} + p^f \odot c_{t-1} + b^f)",
     "correct", None),
    ("gru_update_gate", "gru", r"\frac{\partial h_t}{\partial z_t} = h_{t-1} - n_t", "correct", None),
    ("local_at_absolute_steps", "lstm", r"\frac{\partial c_3}{\partial c_2} = f_3", "correct", "SymPy"),
    # the seed's three mistakes
    ("seed_wrong_o_term", "lstm", r"\frac{\partial L}{\partial x_t} = (W_x^f)^T %s + (W_x^i)^T %s + (W_x^c)^T %s + "
     r"(W_x^o)^T %s" % (DF, DI, DG, DO_WRONG), "incorrect", r"uses \frac{\partial L}{\partial c_t} where"),
    ("seed_repeated_f_term", "lstm", r"\frac{\partial L}{\partial x_t} = (W_x^f)^T %s + (W_x^i)^T %s + (W_x^c)^T %s "
     r"+ (W_x^o)^T %s" % (DF, DF, DG, DO), "incorrect", "repeats the bracket of the f_t family"),
    ("seed_chain_dc_do", "lstm", r"\frac{\partial L}{\partial b^o} = \frac{\partial L}{\partial c_t} \cdot "
     r"\frac{\partial c_t}{\partial o_t} \cdot \frac{\partial o_t}{\partial b^o}", "incorrect", r"\partial h_t"),
    # other student errors
    ("sigma_prime_as_gate", "lstm",
     r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * f_t", "incorrect", "as f_t"),
    ("tanh_prime_without_square", "lstm", r"\frac{\partial L}{\partial b^c} = \frac{\partial L}{\partial c_t} * i_t "
     r"* (1 - \tilde{c}_t)", "incorrect", r"\tanh' as 1 - \tilde{c}_t"),
    ("missing_transpose_x", "lstm", r"\frac{\partial L}{\partial W_x^f} = %s x_t" % DF, "incorrect",
     "missing transpose on x_t"),
    ("missing_transpose_W", "lstm", r"\frac{\partial f_t}{\partial h_{t-1}} = W_h^f [f_t * (1 - f_t)]", "incorrect",
     "missing transpose on W_h^f"),
    ("missing_sum", "lstm", r"\frac{\partial L}{\partial W_x^f} = \sum_{t=1}^T %s x_t^T = %s x_t^T" % (DF, DF),
     "incorrect", r"missing \sum"),
    ("missing_term", "lstm", r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} * o_t * "
     r"(1 - \tanh^2 c_t)", "incorrect", "is missing"),
    ("wrong_time_index", "lstm", r"f_t = \sigma(W_x^f x_t + W_h^f h_t + b^f)", "incorrect", "h_{t-1} is needed"),
    ("opposite_sign", "lstm", r"\frac{\partial L}{\partial b^f} = - \frac{\partial L}{\partial c_t} * c_{t-1} * "
     r"[f_t * (1 - f_t)]", "incorrect", "opposite sign"),
    ("broken_chain", "lstm", r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial h_t} \cdot "
     r"\frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial b^f}", "incorrect", "chain breaks"),
    ("wrong_weight", "rnn", r"\frac{\partial L}{\partial h_{t-1}} = W_x^T \left[\frac{\partial L}{\partial h_t} * "
     r"(1 - h_t^2)\right]", "incorrect", "uses W_x where W_h is needed"),
    ("local_at_the_wrong_step", "lstm", r"\frac{\partial c_3}{\partial c_2} = f_2", "incorrect", "f_3"),
    ("wrong_identity", "lstm", r"\frac{\partial \tanh \theta}{\partial \theta} = 1 - \tanh \theta", "incorrect", None),
    # notation read as its author means it (the checker must not misread a correct equation)
    ("tanh_of_c_squared", "lstm", r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} * o_t * "
     r"(1 - \tanh(c_t)^2) + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}", "correct", None),
    ("tanh_left_right_squared", "lstm", r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} * o_t "
     r"* (1 - \tanh\left(c_t\right)^2) + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}", "correct", None),
    ("sigma_squared", "lstm", r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * "
     r"(\sigma(W_x^f x_t + W_h^f h_{t-1} + b^f) - \sigma(W_x^f x_t + W_h^f h_{t-1} + b^f)^2)", "correct", None),
    ("upright_d", "lstm", r"\frac{\mathrm{d}L}{\mathrm{d}c_{t-1}} = \frac{\mathrm{d}L}{\mathrm{d}c_t} * f_t", "correct",
     None),
    ("text_d", "lstm", r"\frac{\text{d}L}{\text{d}c_{t-1}} = \frac{\text{d}L}{\text{d}c_t} * f_t", "correct", None),
    ("sigma_prime", "lstm", r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * "
     r"\sigma'(W_x^f x_t + W_h^f h_{t-1} + b^f)", "correct", None),
    ("d_dz_operator", "lstm", r"\frac{d}{dz} \tanh(z) = 1 - \tanh^2(z)", "correct", None),
    ("sigma_prime_identity", "lstm", r"\sigma'(z) = \sigma(z) (1 - \sigma(z))", "correct", None),
    ("prime_transpose", "lstm", r"\frac{\partial L}{\partial W_x^f} = %s x_t'" % DF, "correct", None),
    ("superscript_time", "lstm", r"\frac{\partial L}{\partial c^{(t-1)}} = \frac{\partial L}{\partial c^{(t)}} "
     r"* f^{(t)}", "correct", None),
    ("angle_time", "lstm", r"\frac{\partial L}{\partial c^{\langle t-1 \rangle}} = \frac{\partial L}{\partial "
     r"c^{\langle t \rangle}} * f^{\langle t \rangle}", "correct", None),
    ("last_step", "lstm", r"\frac{\partial L}{\partial h_T} = \frac{\partial \ell_T}{\partial h_T}", "correct", None),
    ("gradient_name", "lstm", r"dc_{prev} = dc_{next} * f_t", "correct", None),
    ("boxed_equation", "lstm", r"\boxed{\frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t} "
     r"\tag{3}", "correct", None),
    ("underbrace", "lstm", r"\frac{\partial L}{\partial c_{t-1}} = \underbrace{\frac{\partial L}{\partial c_t}}_{"
     r"\text{total}} * f_t", "correct", None),
    ("definition_sign", "lstm", r"\frac{\partial L}{\partial c_{t-1}} \overset{\text{def}}{=} \frac{\partial L}"
     r"{\partial c_t} * f_t", "correct", None),
    ("missing_partial_below", "lstm", r"\frac{\partial L}{c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t",
     "correct", "partial"),
    # what the checker cannot read
    ("unknown_symbol", "lstm", r"\frac{\partial L}{\partial b^f} = \delta_t * f_t", "unrecognized", r"\delta_t"),
    # a missing time index is a slip: read as t, with a warning, and the equation is still judged
    ("no_time_index", "lstm", r"\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c} * f_t",
     "incorrect", "no time index; read as c_t"),
    ("sigma_placeholder", "lstm", r"\sigma(\cdot) = 1", "unrecognized", "notation"),
    ("unbalanced", "lstm", r"\frac{\partial L}{\partial b^f} = \left\{ f_t", "unrecognized", None),
    ("odd_sum_limits", "lstm", r"\frac{\partial L}{\partial b^f} = \sum_{t=2}^T f_t", "unrecognized", "t = 1..T"),
    ("deep_nesting", "lstm", "x_t = " + "(" * 60 + "x_t" + ")" * 60, "unrecognized", "nested"),
    ("deep_sum_nesting", "lstm", r"\frac{\partial L}{\partial W_x^f} = " + r"\sum_t " * 500 + "x_t",
     "unrecognized", "nested"),
    ("long_number", "lstm", "h_t = " + "9" * 5000 + " x_t", "unrecognized", "too long"),
    ("step_index_mixed_with_t", "lstm", r"\frac{\partial c_3}{\partial c_{t-1}} = f_t", "unrecognized",
     "mixing a step index and t"),
    ("merged_exponent", "lstm", "h_t = " + "(" * 20 + "(c_t + h_t)" + "^8)" * 20, "unrecognized", "too large"),
    # a quantity's derivative with respect to itself is the identity
    ("self_derivative", "lstm", r"\frac{\partial h_t}{\partial h_t} = 1", "correct", None),
    ("identity_in_chain", "lstm", r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial c_t} \cdot "
     r"\frac{\partial c_t}{\partial c_t}", "correct", None),
]


@pytest.mark.parametrize("cell,latex,status,fragment", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_table(cell, latex, status, fragment):
    verdict = judge(latex, cell)
    assert verdict is not None
    assert verdict.status == status, verdict
    if fragment is not None:
        assert fragment in verdict.message + " ".join(verdict.warnings), verdict.message
    if status == "incorrect":
        assert verdict.expected


def test_table_ids_are_unique():
    ids = [row[0] for row in TABLE]
    assert len(ids) == len(set(ids))


def test_display_without_equals_sign_is_not_an_equation():
    assert judge(r"\sigma(z)", "lstm") is None


# ----------------------------------------------------------------------------- witness
@pytest.mark.parametrize("cell", cells.builtin_names())
def test_witness_gradients_match_finite_differences(cell):
    """The witness adjoints are true gradients of L = sum_t <dl/dh_t, h_t> (central differences)."""
    w = environment.witnesses(cell)[0]
    d_cell = cells.load(cell)
    T = w.T

    def loss(params, h0_states):
        vectors = dict(h0_states)
        total = 0.0
        for step in range(1, T + 1):
            def lookup(sym, t, vectors=vectors):
                ref = symbols.read(sym)
                if ref is None:
                    return params[sym.name]
                return vectors[(ref.name, int(symbols.fix_time(ref.time, t)))]
            ev = Evaluator(lookup, step, T)
            for eq in d_cell.equations:
                vectors[(eq.target, step)] = ev(eq.rhs)
            total += float(np.sum(w.vectors[("upstream", d_cell.output, step)] * vectors[(d_cell.output, step)]))
        return total

    params = {k: v.copy() for k, v in w.params.items()}
    start = {(d_cell.input, k): w.vectors[("value", d_cell.input, k)] for k in range(1, T + 1)}
    start.update({(s, 0): w.vectors[("value", s, 0)].copy() for s in d_cell.states})
    d = environment.derive(cell)
    rng = np.random.RandomState(0)
    for name in sorted(params)[:4]:
        direction = rng.randn(*params[name].shape)
        eps = 1e-6
        plus = {k: (v + eps * direction if k == name else v) for k, v in params.items()}
        minus = {k: (v - eps * direction if k == name else v) for k, v in params.items()}
        numeric = (loss(plus, start) - loss(minus, start)) / (2 * eps)
        analytic = float(np.sum(w.evaluator(1)(d.summed(name)) * direction))
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (name, numeric, analytic)
    for state in d_cell.states:
        direction = rng.randn(*start[(state, 0)].shape)
        eps = 1e-6
        plus, minus = dict(start), dict(start)
        plus[(state, 0)] = start[(state, 0)] + eps * direction
        minus[(state, 0)] = start[(state, 0)] - eps * direction
        numeric = (loss(params, plus) - loss(params, minus)) / (2 * eps)
        analytic = float(np.sum(w.vectors[("adjoint", state, 0)] * direction))
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (state, numeric, analytic)


# ----------------------------------------------------------------------------- documents
def test_continuation_blocks_join_the_previous_equation():
    text = "$$a_t = x_t$$\n\n$$+ y_t$$\n\n$$\\qquad = z_t$$\n\n$$b = 1$$\n"
    found, _ = extract.equations(text)
    assert [(e.line, e.text) for e in found] == [(1, "a_t = x_t + y_t = z_t"), (7, "b = 1")]


def test_aligned_rows_and_environments():
    text = ("intro $x = 1$ inline\n\\begin{align}\n a &= b \\\\\n &+ c \\\\\n d &= e\n\\end{align}\n"
            "\\[ f = g \\]\n% $$ h = i $$ commented out\n")
    found, _ = extract.equations(text, tex=True)
    assert [(e.line, e.text.replace(" ", "")) for e in found] == [(3, "a=b+c"), (5, "d=e"), (7, "f=g")]


def test_a_lone_dollar_in_prose_hides_no_display_math():
    text = "It costs $5 per student.\n\n$$a = b$$\n\nAnd $3 more: $$c = d$$\n"
    found, _ = extract.equations(text)
    assert [(e.line, e.text) for e in found] == [(3, "a = b"), (5, "c = d")]


def test_code_fences_are_not_math():
    found, _ = extract.equations("```\n$$a = b$$\n```\n$$c = d$$\n")
    assert [(e.line, e.text) for e in found] == [(4, "c = d")]


def test_python_api_returns_objects():
    text = r"$$\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * f_t$$"
    report = lstmgen.check(text, cell="lstm")
    assert report.summary == {"correct": 0, "incorrect": 1, "unrecognized": 0, "forward": 0, "score": 0,
                              "possible": 1, "fraction": 0.0}
    entry = report.equations[0]
    assert (entry.line, entry.status) == (1, "incorrect") and entry.expected and entry.lhs
    data = report.to_dict()
    assert set(data) == {"file", "cell", "equations", "summary"}
    assert data["cell"]["source"] == "option" and data["cell"]["name"] == "lstm"
    assert set(data["equations"][0]) == {"line", "lhs", "status", "kind", "score", "expected", "message", "notes",
                                         "warnings"}
    assert [n["code"] for n in data["equations"][0]["notes"]] == ["wrong-sigma-derivative"]


def test_empty_and_prose_documents_are_unrecognized():
    assert [e.status for e in check_text("").equations] == ["unrecognized"]
    assert [e.status for e in check_text("just prose, no math").equations] == ["unrecognized"]


def test_binary_and_oversized_documents_are_refused():
    with pytest.raises(DocumentError):
        check_text("abc\x00def")
    with pytest.raises(DocumentError):
        check_text("x" * 2_100_000)


@contextlib.contextmanager
def fail_instead_of_hanging(seconds):
    """A guard, not a measurement (speed is measured in benchmarks/bench.py): a regression that
    makes the call take minutes fails here instead of stalling the suite."""
    def expire(signum, frame):
        raise AssertionError("still running after %d s: a regression to super-linear time?" % seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("filler", [" ", "."], ids=["blanks", "dots"])
def test_long_runs_inside_a_row_are_read_in_linear_time(filler):
    """A 300 kB run inside one row once made the row trimming quadratic (minutes)."""
    with fail_instead_of_hanging(120):
        report = check_text("$$a" + filler * 300_000 + "b = c$$\n")
    assert [e.status for e in report.equations] == ["unrecognized"]


def test_a_document_of_forty_long_equations_checks_correct():
    text = "\n\n".join("$$\\frac{\\partial L}{\\partial x_t} = %s$$" % DX for _ in range(40))
    report = check_text(text, cell="lstm")
    assert report.summary["correct"] == 40


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    (folder / "good.md").write_text("$$\\frac{\\partial L}{\\partial b^o} = \\frac{\\partial L}{\\partial h_t} * "
                                    "\\tanh(c_t) * [o_t * (1-o_t)]$$\n", encoding="utf-8")
    (folder / "bad.tex").write_text("\\[ \\frac{\\partial L}{\\partial b^f} = \\frac{\\partial L}{\\partial c_t} * "
                                    "c_{t-1} * f_t \\]\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not a document", encoding="utf-8")
    return folder


def test_cli_exit_codes_and_json_schema(docs):
    good = run_cli("check", docs / "good.md", "--json")
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["file"].endswith("good.md") and report["summary"]["correct"] == 1
    bad = run_cli("check", docs / "bad.tex", "--json")
    assert bad.returncode == 1
    entry = json.loads(bad.stdout)["equations"][0]
    assert entry["status"] == "incorrect" and entry["line"] == 1 and entry["expected"]


def test_cli_folder_gives_the_documents_and_a_table(docs):
    proc = run_cli("check", docs, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [Path(d["file"]).name for d in report["documents"]] == ["bad.tex", "good.md"]
    assert "file" not in report and report["summary"]["documents"] == 2
    human = run_cli("check", docs)
    table = [ln.split() for ln in human.stdout.splitlines()]
    assert ["file", "correct", "incorrect", "unrecognized", "score"] in table
    assert [Path(row[0]).name for row in table if len(row) == 5 and row[-1] in ("0/1", "1/1")] == ["bad.tex", "good.md"]
    assert "✓" in human.stdout and "✗" in human.stdout


@pytest.mark.parametrize("args", [
    ("check", "no_such_file.md"),
    ("check", "README.md", "--cell", "no_such_cell"),
], ids=["missing_file", "unknown_cell"])
def test_cli_one_line_errors(args):
    assert_one_line_error(run_cli(*args))


def test_cli_empty_folder(tmp_path):
    assert_one_line_error(run_cli("check", tmp_path))


def test_cli_binary_file(tmp_path):
    target = tmp_path / "garbage.md"
    target.write_bytes(bytes(range(256)) * 10)
    assert_one_line_error(run_cli("check", target))


# ----------------------------------------------------------------------------- SymPy's verdict
@pytest.mark.parametrize("latex", [
    r"\frac{\partial L}{\partial x_t} = \left(%s^T W_x^f + %s^T W_x^i + %s^T W_x^c + %s^T W_x^o\right)^T"
    % (DF, DI, DG, DO),
    r"\frac{\partial L}{\partial W_x^f} = \sum_{t=1}^T \frac{\partial L}{\partial c_t} * c_{t-1} * f_t x_t^T "
    r"- \sum_{t=1}^T \frac{\partial L}{\partial c_t} * c_{t-1} * f_t^2 x_t^T",
    r"\frac{\partial L}{\partial W_x^f} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial f_t} "
    r"\cdot \frac{\partial f_t}{\partial W_x^f}",
    r"\frac{\partial \sigma(\theta)}{\partial \theta} = \sigma(\theta) \cdot [1 - \sigma(\theta)]",
    r"f_t = \sigma(W_x^f x_t + W_h^f h_{t-1} + b^f)",
], ids=["transposed_products", "distributed_sum", "chain_rule", "identity", "forward"])
def test_sympy_decides_rearrangements(latex):
    verdict = judge(latex, "lstm")
    assert verdict.status == "correct" and "SymPy" in verdict.message, verdict


def test_a_tiny_extra_term_does_not_slip_through():
    """The numeric witnesses compare tightly: a wrong term of 1e-8 * h_t is caught."""
    wrong = r"$$\frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t + 0.00000001 * h_t$$"
    assert [e.status for e in lstmgen.check(wrong).equations] == ["incorrect"]


def test_checking_keeps_a_callers_alarm():
    """The per-equation time limit borrows SIGALRM; a caller's own alarm must survive it."""
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        check_text(r"$$\frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t$$")
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 30 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
