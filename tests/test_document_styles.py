"""The notation options of `lstmgen derive`: names (cell | plain), vectors (column | row), the compact
style, with --hadamard and --transpose; each printed from the one derivation and read back by the
checker, equation by equation (the round trip), and each wrong formula still caught in it."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

import lstmgen
from lstmgen import cells, render
from lstmgen.errors import LstmgenError
from lstmgen.printing.latex import Style

OPTIONS = {  # option name -> the Style it asks for
    "names plain": Style(names="plain"),
    "vectors row": Style(vectors="row"),
    "compact": Style(compact=True),
    "compact, rows, plain names, odot, top": Style("odot", "top", "plain", "row", True),
}


def _not_correct(text: str, fmt: str, cell: str | None):
    report = lstmgen.check(text, cell=cell, source="derivation." + fmt)
    return report, [(e.line, e.lhs[:40], e.status, e.message) for e in report.equations if e.status != "correct"]


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("cell", ["lstm", "gru", "mgu"])
def test_every_option_reads_back_with_its_notation_learned(cell, option):
    text = render.render_document(cell, "md", OPTIONS[option])
    report, wrong = _not_correct(text, "md", None)
    assert not wrong
    assert report.summary["correct"] >= 12


@pytest.mark.parametrize("cell", cells.builtin_names())
def test_all_options_at_once_read_back_for_every_cell_in_latex(cell):
    text = render.render_document(cell, "tex", OPTIONS["compact, rows, plain names, odot, top"])
    _, wrong = _not_correct(text, "tex", None)
    assert not wrong


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("cell", cells.builtin_names())
def test_every_option_reads_back_with_the_cell_given(cell, option):
    """With --cell the document is still read in its own notation: its forward equations are proven
    to state the given cell under the document's names and layout."""
    report, wrong = _not_correct(render.render_document(cell, "md", OPTIONS[option]), "md", cell)
    assert not wrong
    assert report.notation.origin == "option"
    assert any(note.startswith("read in the document's own notation") for note in report.notation.notes)


# ---- the options print what they say -------------------------------------------------------------
def test_plain_names_write_the_cell_files_names():
    default, plain = (render.render_document("lstm", "md", Style(names=n)) for n in ("cell", "plain"))
    assert r"\tilde{c}_t" in default and r"\tilde" not in plain
    assert "g_t = \\tanh(W_x^c x_t" in plain


def test_row_vectors_put_the_vector_first_and_transpose_the_contractions():
    text = render.render_document("lstm", "md", Style(vectors="row"))
    assert "Vectors are rows" in text and "Vectors are columns" not in text
    assert r"f_t = \sigma(x_t W_x^f + h_{t-1} W_h^f + b^f)" in text
    summed = next(line for line in text.splitlines() if line.startswith(r"$$\frac{\partial L}{\partial W_x^f} = \sum"))
    assert r"\sum_{t=1}^T x_t^T \left\{" in summed  # x^T delta, where the column form has delta x^T
    column = render.render_document("lstm", "md")
    assert r"W_x^f x_t" in column and r"x_t W_x^f" not in column


def test_compact_names_each_delta_once_and_uses_it():
    text = render.render_document("gru", "md", Style(compact=True))
    definitions = re.findall(r"^\$\$\\delta\^\{(\w)\}_t = ", text, re.M)
    assert sorted(definitions) == ["n", "r", "z"]
    assert r"\frac{\partial L}{\partial W_x^z} = \delta^{z}_t x_t^T" in text
    assert r"\delta^{r}_t = \delta^{n}_t * (W_h^n h_{t-1} + b_h^n) * [r_t * (1 - r_t)]" in text
    assert r"\cdot" not in text  # no chain products: every gradient is written with the deltas
    assert len(text) < 0.7 * len(render.render_document("gru", "md"))


def test_compact_recurrences_reach_back_through_the_next_steps_deltas():
    text = render.render_document("lstm", "md", Style(compact=True))
    assert r"(W_h^f)^T \delta^{f}_{t+1}" in text
    assert r"\frac{\partial L}{\partial h_0} = " in text and r"\delta^{f}_1" in text


# ---- the round trip can fail ---------------------------------------------------------------------
MUTATIONS = [  # (style, a correct piece of the document, a wrong one)
    (Style(compact=True), r"\delta^{f}_t = \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1 - f_t)]",
     r"\delta^{f}_t = \frac{\partial L}{\partial c_t} * c_{t} * [f_t * (1 - f_t)]"),
    (Style(compact=True), r"\frac{\partial L}{\partial W_h^o} = \delta^{o}_t h_{t-1}^T",
     r"\frac{\partial L}{\partial W_h^o} = \delta^{i}_t h_{t-1}^T"),
    (Style(vectors="row"), r"\sum_{t=1}^T x_t^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1}",
     r"\sum_{t=1}^T x_t^T \left\{ \frac{\partial L}{\partial c_t} * c_t"),
    (Style(names="plain"), r"\frac{\partial g_t}{\partial b^c} = 1 - g_t^2",
     r"\frac{\partial g_t}{\partial b^c} = 1 - g_t"),
]


@pytest.mark.parametrize("style,right,wrong", MUTATIONS)
def test_a_wrong_formula_in_any_style_is_reported_incorrect(style, right, wrong):
    text = render.render_document("lstm", "md", style)
    assert right in text
    mutated = text.replace(right, wrong, 1)
    line = mutated[:mutated.index(wrong)].count("\n") + 1
    report = lstmgen.check(mutated, source="mutated.md")
    statuses = {e.line: e.status for e in report.equations}
    assert statuses[line] == "incorrect"
    # the rest stays correct, but for what uses a wrong delta as the document defines it
    name = wrong.split(" = ")[0].replace("_t", "") if wrong.startswith(r"\delta") else None
    lines = mutated.splitlines()
    others = [e for e in report.equations if e.line != line and e.status != "correct"
              and not (name and name in "\n".join(lines[e.line - 1:e.line + 1]))]
    assert not others


# ---- the command line -----------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lstmgen", *args], capture_output=True, text=True, check=False)


def test_the_provenance_line_regenerates_the_document(tmp_path):
    out = tmp_path / "doc.md"
    proc = _cli("derive", "--cell", "mgu", "--names", "plain", "--vectors", "row", "--compact",
                "--hadamard", "circ", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    command = re.search(r"Generated by `([^`]+)`", out.read_text(encoding="utf-8")).group(1)
    assert command == "lstmgen derive --cell mgu --format md --hadamard circ --names plain --vectors row --compact"
    again = _cli(*command.split()[1:])
    assert again.returncode == 0 and again.stdout == out.read_text(encoding="utf-8")


@pytest.mark.parametrize("args,named", [(["--names", "greek"], "--names"), (["--vectors", "diagonal"], "--vectors")])
def test_an_unknown_option_value_is_one_line_and_exit_2(args, named):
    proc = _cli("derive", *args)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and named in proc.stderr and "Traceback" not in proc.stderr


def test_the_python_api_takes_the_same_options():
    assert lstmgen.document("rnn", "md", vectors="row", compact=True) == \
        render.render_document("rnn", "md", Style(vectors="row", compact=True))
    d = lstmgen.derive("lstm", names="plain", vectors="row")
    assert d.grad("W_x^f").latex.startswith(r"x_t^T")
    with pytest.raises(LstmgenError, match="names"):
        lstmgen.derive("lstm", names="greek")
