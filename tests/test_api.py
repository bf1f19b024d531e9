"""The Python API: formulas by name, as the document prints them, and notebook displays."""
from __future__ import annotations

from pathlib import Path

import pytest

import lstmgen
from lstmgen import render
from lstmgen.errors import LstmgenError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cell", render.BUILD_CELLS)
def test_every_formula_is_the_one_the_document_prints(cell):
    d = lstmgen.derive(cell)
    text = " ".join(lstmgen.document(cell, "md").replace("&", "").replace("\\\\", " ").split())
    assert len(d.names) == len(set(d.names)) >= 4
    for formula in d.formulas():
        assert " ".join(formula.latex.split()) in text, formula.name  # the right-hand side, as printed there
        assert d.grad(formula.name) == formula


def test_names_are_read_with_or_without_braces_and_with_dL_d():
    d = lstmgen.derive("lstm")
    assert d.grad("h_{t-1}") == d.grad("h_t-1") == d.grad("dL/dh_{t-1}")
    assert d.grad("W_x^f").lhs == r"\frac{\partial L}{\partial W_x^f}"
    assert d.grad("W_x^f").sympy == d.derivation.step["W_x^f"].expr()
    assert d.grad("c_0").sympy == d.derivation.initial("c")
    assert d.grad("h_t").sympy == d.derivation.state_total("h")
    assert d.names[0].startswith(("W", "b")) and "x_t" in d.names


def test_summed_is_the_sum_over_t_of_the_step_gradient():
    d = lstmgen.derive("gru")
    summed = d.grad("W_h^z", summed=True)
    assert summed.latex.startswith(r"\sum_{t=1}^T") and d.grad("W_h^z").latex in summed.latex
    with pytest.raises(LstmgenError, match="summed=True is for parameters"):
        d.grad("x_t", summed=True)


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(LstmgenError, match=r"lstm has no gradient named 'W_z': use one of .*W_x\^f"):
        lstmgen.derive("lstm").grad("W_z")


@pytest.mark.parametrize("hadamard,sign", [("*", " * "), ("odot", r"\odot"), ("circ", r"\circ")])
def test_notebook_displays_are_typeset_math_in_the_documents_notation(hadamard, sign):
    d = lstmgen.derive("lstm", hadamard=hadamard)
    latex = d._repr_latex_()
    assert latex.startswith("$$ \\begin{aligned}") and latex.endswith("\\end{aligned} $$")
    assert sign in latex and "operatorname" not in latex and "Outer" not in latex
    assert d.grad("x_t")._repr_latex_() == "$$ %s $$" % d.grad("x_t")
    assert d._repr_markdown_().count("$$") == 2 * len(d.names)
    assert d._repr_html_().count("<li>") == len(d.names) and "&amp;" not in d._repr_html_()


def test_codegen_and_document_return_the_commands_text():
    assert lstmgen.codegen("rnn") == render.render_module("rnn")
    assert lstmgen.document("rnn", "tex") == render.render_document("rnn", "tex")
    with pytest.raises(LstmgenError, match="unknown hadamard"):
        lstmgen.derive("rnn", hadamard="x")


def test_a_check_report_displays_in_a_notebook_and_serialises_to_the_documented_json():
    import json

    from lstmgen.checker.report import to_json

    text = (ROOT / "docs" / "examples" / "seed.md").read_text(encoding="utf-8")
    report = lstmgen.check(text, source="seed.md")
    assert json.loads(report.to_json()) == json.loads(to_json([report]))
    markdown = report._repr_markdown_()
    assert markdown.startswith("**seed.md**: 38 correct, 3 incorrect, 0 unrecognized")
    assert markdown.count("\n| ") == len(report.equations) + 2  # header, rule, a row per equation
    assert report._repr_html_().count("<tr>") == len(report.equations) + 1


def test_a_hostile_document_stays_inert_in_the_notebook_displays():
    hostile = "$$\\frac{\\partial L}{\\partial <img src=x onerror=alert(1)> $ | } = 1$$\n"
    report = lstmgen.check(hostile, cell="lstm", source="<script>x</script>.md")
    html, markdown = report._repr_html_(), report._repr_markdown_()
    assert "<img" not in html and "<script" not in html
    assert "<img" not in markdown and "<script" not in markdown
