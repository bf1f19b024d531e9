"""Cell files: parsing, parameter shapes from use, and one-line errors that name the place."""
import pytest

from lstmgen import cells
from lstmgen.errors import CellError

PEEPHOLE = """
cell peep
input x
state h output
state c
f = sigmoid(W_xf @ x + W_hf @ h[t-1] + p_f * c[t-1] + b_f)
c = f * c[t-1] + (1 - f) * tanh(W_xc @ x + b_c)
h = tanh(c)
"""


def test_builtin_cells_load():
    assert {"lstm", "rnn"} <= set(cells.builtin_names())
    lstm = cells.load("lstm")
    assert lstm.states == ["h", "c"] and lstm.output == "h" and lstm.input == "x"
    assert lstm.gate_order == ["i", "f", "o", "g"]
    assert lstm.quantities["g"].latex == r"\tilde{c}"
    assert [eq.target for eq in lstm.equations] == ["f", "i", "o", "g", "c", "h"]


def test_parameters_are_shaped_from_their_use():
    cell = cells.parse(PEEPHOLE)
    kinds = {q.name: q.kind for q in cell.parameters}
    assert kinds == {"W_xf": "matrix", "W_hf": "matrix", "p_f": "diagonal", "b_f": "bias",
                     "W_xc": "matrix", "b_c": "bias"}


def test_cell_file_by_path(tmp_path):
    path = tmp_path / "peep.cell"
    path.write_text(PEEPHOLE)
    assert cells.load(str(path)).name == "peep"


@pytest.mark.parametrize("text,fragment", [
    ("input x\nstate h\nh = tanh(W @ x +)\n", ":3:"),
    ("input x\nstate h\nh = tanh(W @ q)\n", "q"),
    ("input x\nstate h\nh = frob(W @ x)\n", "unknown function frob"),
    ("input x\nstate h\nh = tanh(W @ x)\nh = x\n", "defined twice"),
    ("input x\nstate h\nstate c\nh = tanh(c)\n", "state c has no equation"),
    ("state h\nh = tanh(h[t-1])\n", "no `input` line"),
    ("input x\nstate h\nh = tanh(W @ x + a)\na = h * 2\n", "cycle"),
    ("input x\nstate h\nh = x[t-1]\n", "only states have a previous value"),
    ("input x\nstate h\nh = tanh(W @ x + U @ h[t-1]) * 2 ** 10 ** 100\n", "exponent 100 is larger"),
    ("input x\nstate h\nh = tanh(W @ x + U @ h[t-1] + " + "-" * 20000 + "b)\n", "nested more than 12 deep"),
    ("input x\nstate h\nh = tanh(W @ x + U @ h[t-1]) / 0\n", "not finite"),
    ("input x\nstate h\nh = tanh(W @ x + U @ h[t-1]) * (0 - 1) ** 0.5\n", "not real"),
    ("input x\nstate h\nh = tanh(W @ x)\n", "never used as h[t-1]"),
    ("input x\nstate h\ngates h h\nh = tanh(W @ x + U @ h[t-1])\n", "h listed twice"),
    ("input x\nstate h\nh = tanh(U @ h[t-1])\n", "input x is never used"),
    ("input x\nstate h\nq = tanh(V @ x)\nh = tanh(W @ x + U @ h[t-1])\n", ":3: q is computed but never used"),
    ("input x\nstate h\nh = tanh(b @ x + U @ h[t-1] + b)\n", "b is used both as a matrix and elementwise"),
    ("input x\nstate h\nh = tanh(L @ x + U @ h[t-1])\n", "L is reserved (the loss)"),
    ('input x\nstate h\nlatex h "h}"\nh = tanh(W @ x + U @ h[t-1])\n', ':3:9: the LaTeX form "h}" has unbalanced braces'),
    ("input x\nstate h\nq = tanh(V @ x + b)\nh = tanh(b @ x + U @ h[t-1] + q)\n",
     ":3: b is used both as a matrix and elementwise"),
], ids=["syntax", "unknown-vector", "unknown-function", "twice", "missing-state", "no-input", "cycle", "prev-of-input",
        "huge-exponent", "deep-nesting", "division-by-zero", "imaginary", "state-not-recurrent", "gate-twice",
        "input-unused", "dead-equation", "matrix-and-bias", "reserved", "latex-braces", "bias-then-matrix"])
def test_errors_name_the_problem(text, fragment):
    with pytest.raises(CellError) as info:
        cells.parse(text, source="bad.cell")
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_a_file_name_that_is_no_cell_name_needs_a_cell_line(tmp_path):
    path = tmp_path / "1x.cell"
    path.write_text(PEEPHOLE.replace("cell peep\n", ""))
    with pytest.raises(CellError, match="add a line `cell NAME`"):
        cells.load(str(path))
    path.write_text(PEEPHOLE)
    assert cells.load(str(path)).name == "peep"


def test_unknown_cell_name():
    with pytest.raises(CellError, match="unknown cell"):
        cells.load("nosuchcell")


@pytest.mark.parametrize("name", ["Wn", "fh"])
def test_names_must_print_as_one_symbol(name):
    """A document writes Wn as W times n; the checker could not read its own output back."""
    text = "input x\nstate h output\nh = tanh(%s @ x + h[t-1])\n" % name if name == "Wn" else \
        "input x\nstate h output\nfh = 2 * h[t-1]\nh = tanh(W @ x + fh)\n"
    with pytest.raises(CellError, match="reads as a product of letters"):
        cells.parse(text)


def test_a_latex_line_makes_a_long_name_usable():
    cell = cells.parse('input x\nstate h output\nlatex fh "\\hat{h}"\nfh = 2 * h[t-1]\nh = tanh(W @ x + fh)\n')
    assert cell.quantities["fh"].latex == r"\hat{h}"


def test_a_matrix_cannot_multiply_vectors_of_two_sizes():
    with pytest.raises(CellError, match="use two matrices"):
        cells.parse("input x\nstate h output\nh = tanh(W @ x + W @ h[t-1])\n")
