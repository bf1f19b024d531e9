"""checker/notation.py: written names split into key and time, keys in one spelling, the
project's own notation of a cell, the report's description."""
import pytest

from lstmgen import cells
from lstmgen.checker.notation import Notation, make_key, normal_key, parameter_forms, roles_of, time_of


@pytest.mark.parametrize("script, superscript, time", [
    ("t", False, "t"), ("{t-1}", False, "t-1"), ("{t+1}", False, "t+1"), ("0", False, "0"),
    ("{(t)}", True, "t"), ("{(t-1)}", True, "t-1"), (r"{\langle t \rangle}", True, "t"),
    (r"{\langle t-1 \rangle}", True, "t-1"), ("{<t>}", True, "t"), ("{prev}", False, "t-1"),
    ("{next}", False, "t"),
    ("T", True, None),      # x_t^T: a transpose, not the last step
    ("t", True, None),      # W^t is no time: a superscript time is always wrapped
    ("f", False, None), ("{xf}", False, None),
])
def test_time_of(script, superscript, time):
    assert time_of(script, superscript) == time


@pytest.mark.parametrize("written, key", [
    (r"a^{h}", "a^h"), (r"\tilde{c}", r"\tilde{c}"), (r"\tilde c", r"\tilde{c}"), (r"\widetilde{c}", r"\tilde{c}"),
    (r"W_{x}^{f}", "W_x^f"), (r"\mathbf{W}_f", "W_f"), (r"W_{xf}", "W_{xf}"),
])
def test_normal_key(written, key):
    assert normal_key(written) == key


def test_make_key_braces_long_scripts_only():
    assert make_key(r"\Gamma", "f", "") == r"\Gamma_f"
    assert make_key("W", "xf", "") == "W_{xf}"
    assert make_key("W", "x", "f") == "W_x^f"


def test_parameter_forms_cover_the_ways_authors_write_a_gate_weight():
    assert set(parameter_forms("W_x^f")) == {"W_x^f", "W_{xf}", "W_{fx}", "W_f^x"}
    assert parameter_forms("b^f") == ["b^f", "b_f"]


def test_the_projects_own_notation_of_the_lstm():
    notation = Notation.for_cell(cells.load("lstm"), "option")
    assert notation.meaning("W_x^f").name == "W_x^f"
    assert notation.meaning("W_{xf}").name == "W_x^f"
    assert notation.meaning(r"\tilde{c}").kind == "vector"
    assert notation.meaning("J").kind == "loss" and notation.meaning("L").kind == "loss"
    assert notation.meaning("W_f") is None
    assert notation.folded("C")[1].name == "c"


def test_roles_of_the_lstm_and_its_description():
    lstm = cells.load("lstm")
    roles = roles_of(lstm)
    assert (roles["f"], roles["i"], roles["o"], roles["g"]) == ("forget gate", "input gate", "output gate", "candidate")
    assert (roles["h"], roles["c"], roles["x"]) == ("hidden state", "cell state", "input")
    text = Notation.for_cell(lstm, "default").describe()
    assert "assumed" in text and "lstm" in text


@pytest.mark.parametrize("style, printed", [("sub", "c_{t-1}"), ("paren", "c^{(t-1)}"),
                                            ("angle", r"c^{\langle t-1 \rangle}")])
def test_time_is_printed_in_the_authors_style(style, printed):
    notation = Notation.for_cell(cells.load("lstm"))
    notation.time = style
    assert notation.with_time("c", "t-1") == printed
