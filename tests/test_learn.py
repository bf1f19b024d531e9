"""checker/learn.py: the cell a document's forward equations state, built with the cell machinery,
and the names the document defines."""
import pytest

from lstmgen import cells
from lstmgen.checker import check_text, extract, learn
from lstmgen.errors import CellError

LSTM_CONCAT = r"""
$$f_t = \sigma(W_f [h_{t-1}, x_t] + b_f)$$
$$i_t = \sigma(W_i [h_{t-1}, x_t] + b_i)$$
$$o_t = \sigma(W_o [h_{t-1}, x_t] + b_o)$$
$$g_t = \tanh(W_g [h_{t-1}, x_t] + b_g)$$
$$c_t = f_t \odot c_{t-1} + i_t \odot g_t$$
$$h_t = o_t \odot \tanh(c_t)$$
"""

ROW_GRU = r"""
$$z_t = \sigma(x_t U_z + h_{t-1} W_z)$$
$$r_t = \sigma(x_t U_r + h_{t-1} W_r)$$
$$n_t = \tanh(x_t U_n + (r_t * h_{t-1}) W_n)$$
$$h_t = (1 - z_t) * h_{t-1} + z_t * n_t$$
"""


def _notation(text, cell=None):
    found, _ = extract.equations(text)
    return learn.notation_of(found, cell, text)


def test_a_concatenated_lstm_is_learned_with_blocks():
    notation = _notation(LSTM_CONCAT)
    cell = notation.cell
    assert notation.origin == "learned" and notation.layout == "column" and notation.hadamard == "odot"
    assert (cell.input, cell.output, sorted(cell.states)) == ("x", "h", ["c", "h"])
    blocks = notation.meaning("W_f")
    assert blocks.kind == "blocks" and len(blocks.parts) == 2
    shapes = [cell.quantities[p].kind for p in blocks.parts]
    assert shapes == ["matrix", "matrix"]
    assert notation.meaning("W_f^h").name == blocks.parts[0]  # a block named as an author names it
    assert notation.kind() == "LSTM"
    assert notation.forward == (2, 3, 4, 5, 6, 7)


def test_a_row_layout_gru_with_an_expression_under_a_matrix():
    notation = _notation(ROW_GRU)
    assert notation.layout == "row" and notation.cell.states == ["h"]
    assert notation.inlined, "r_t * h_{t-1} under W_n gets a name of its own"
    report = check_text(ROW_GRU + r"$$\frac{\partial L}{\partial n_t} = \frac{\partial L}{\partial h_t} * z_t$$")
    assert [e.status for e in report.equations if e.kind == "backward"] == ["correct"]


def test_the_learned_cell_goes_through_the_cell_validation():
    broken = r"""
$$f_t = \sigma(W_f x_t + U_f y_t)$$
$$c_t = f_t \odot c_{t-1}$$
"""
    notation = _notation(broken)
    assert notation.origin == "default"
    assert any("could not be read as a cell" in note for note in notation.notes)
    with pytest.raises(CellError):
        cells.from_equations([], name="x", title="x", input="x", states=["h"], output="h", latex={},
                             source="test")


def test_cell_option_overrides_the_forward_equations():
    notation = _notation(LSTM_CONCAT, cell="gru")
    assert notation.origin == "option" and notation.cell.name == "gru"


def test_no_forward_equations_means_the_default_lstm_and_the_report_says_so():
    report = check_text(r"$$\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * f_t * (1 - f_t)$$")
    assert report.notation.origin == "default" and report.notation.cell.name == "lstm"
    assert "assumed" in report.to_dict()["cell"]["description"]
    assert report.equations[0].status == "correct"


def test_untimed_gate_names_in_the_forward_mean_step_t():
    text = r"""
$$f = \sigma(W_f x_t + U_f h_{t-1})$$
$$h_t = f \odot h_{t-1} + (1 - f) \odot \tanh(W x_t)$$
$$\frac{\partial L}{\partial f} = \frac{\partial L}{\partial h_t} \odot (h_{t-1} - \tanh(W x_t))$$
"""
    report = check_text(text)
    assert report.notation.origin == "learned"
    backward = [e for e in report.equations if e.kind == "backward"]
    assert [e.status for e in backward] == ["correct"] and not backward[0].warnings


def test_cells_hash_by_content():
    learned = _notation(LSTM_CONCAT).cell
    again = _notation(LSTM_CONCAT.replace("$$\n$$", "$$\n\n$$")).cell
    assert learned == again and hash(learned) == hash(again)
    assert learned != cells.load("lstm")


def test_definitions_are_read_in_order_and_judged():
    text = LSTM_CONCAT + r"""
$$\delta_f = \frac{\partial L}{\partial c_t} \odot c_{t-1} \odot f_t \odot (1 - f_t)$$
$$\frac{\partial L}{\partial b_f} = \delta_f$$
$$\delta_o := \frac{\partial L}{\partial h_t} \odot \tanh(c_t)$$
$$\frac{\partial L}{\partial b_o} = \delta_o$$
"""
    report = check_text(text)
    by_kind = [(e.kind, e.status) for e in report.equations if e.kind != "forward"]
    # δ_o as written is the gate value's gradient: a reading that makes it right; b_o then needs σ'
    assert by_kind == [("definition", "correct"), ("backward", "correct"), ("definition", "correct"),
                       ("backward", "incorrect")]
    assert any("read as the gradient with respect to o" in w for w in report.equations[-2].warnings)
