"""The derivation document: the seed's formulas (typed here from the customer's handwritten
derivation, as witnesses), its structure, both formats, LaTeX compilation and determinism."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstmgen import cells, render, reverse
from lstmgen.documenter import document_context
from lstmgen.errors import LstmgenError
from lstmgen.printing.latex import HADAMARD, Style, latex

ROOT = Path(__file__).resolve().parent.parent

# The seed's correct Part 1 lines, verbatim.  Its b^c line wraps the whole right-hand side in
# redundant \left[ \right] (we print the bare product); its Part 2 o_t lines write C_t for c_t.
SEED_PART1 = r"""
\frac{\partial f_t}{\partial x_t} = (W_x^f)^T [f_t * (1 - f_t)]
\frac{\partial f_t}{\partial W_x^f} = [f_t * (1 - f_t)] x_t^T
\frac{\partial f_t}{\partial h_{t-1}} = (W_h^f)^T [f_t * (1 - f_t)]
\frac{\partial f_t}{\partial W_h^f} = [f_t * (1 - f_t)] h_{t-1}^T
\frac{\partial f_t}{\partial b^f} = f_t * (1 - f_t)
\frac{\partial \tilde{c}_t}{\partial x_t} = (W_x^c)^T (1 - \tilde{c}_t^2)
\frac{\partial \tilde{c}_t}{\partial W_x^c} = (1 - \tilde{c}_t^2) x_t^T
\frac{\partial \tilde{c}_t}{\partial h_{t-1}} = (W_h^c)^T (1 - \tilde{c}_t^2)
\frac{\partial \tilde{c}_t}{\partial W_h^c} = (1 - \tilde{c}_t^2) h_{t-1}^T
\frac{\partial \tilde{c}_t}{\partial b^c} = 1 - \tilde{c}_t^2
\frac{\partial L}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial c_{t-1}} = \frac{\partial L}{\partial c_t} * f_t
\frac{\partial L}{\partial W_x^f} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial W_x^f} = \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)] \right\} x_t^T
\frac{\partial L}{\partial W_h^f} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial W_h^f} = \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)] \right\} h_{t-1}^T
\frac{\partial L}{\partial b^f} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial b^f} = \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)]
\frac{\partial L}{\partial W_x^i} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial i_t} \cdot \frac{\partial i_t}{\partial W_x^i} = \left\{ \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)] \right\} x_t^T
\frac{\partial L}{\partial W_h^i} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial i_t} \cdot \frac{\partial i_t}{\partial W_h^i} = \left\{ \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)] \right\} h_{t-1}^T
\frac{\partial L}{\partial b^i} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial i_t} \cdot \frac{\partial i_t}{\partial b^i} = \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)]
\frac{\partial L}{\partial W_x^o} = \frac{\partial L}{\partial h_t} \cdot \frac{\partial h_t}{\partial o_t} \cdot \frac{\partial o_t}{\partial W_x^o} = \left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\} x_t^T
\frac{\partial L}{\partial W_h^o} = \frac{\partial L}{\partial h_t} \cdot \frac{\partial h_t}{\partial o_t} \cdot \frac{\partial o_t}{\partial W_h^o} = \left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\} h_{t-1}^T
\frac{\partial L}{\partial b^o} = \frac{\partial L}{\partial h_t} \cdot \frac{\partial h_t}{\partial o_t} \cdot \frac{\partial o_t}{\partial b^o} = \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)]
\frac{\partial L}{\partial W_x^c} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial \tilde{c}_t} \cdot \frac{\partial \tilde{c}_t}{\partial W_x^c} = \left[\frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2) \right] x_t^T
\frac{\partial L}{\partial W_h^c} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial \tilde{c}_t} \cdot \frac{\partial \tilde{c}_t}{\partial W_h^c} = \left[\frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2) \right] h_{t-1}^T
\frac{\partial L}{\partial b^c} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial \tilde{c}_t} \cdot \frac{\partial \tilde{c}_t}{\partial b^c} = \frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2)
""".strip().splitlines()

SEED_PART2 = r"""
\frac{\partial L}{\partial W_x^f} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)] \right\} x_t^T
\frac{\partial L}{\partial W_h^f} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)] \right\} h_{t-1}^T
\frac{\partial L}{\partial b^f} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1-f_t)] \right\}
\frac{\partial L}{\partial W_x^i} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)] \right\} x_t^T
\frac{\partial L}{\partial W_h^i} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)] \right\} h_{t-1}^T
\frac{\partial L}{\partial b^i} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * \tilde{c}_t * [i_t * (1-i_t)] \right\}
\frac{\partial L}{\partial W_x^c} = \sum_{t=1}^T \left[\frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2) \right] x_t^T
\frac{\partial L}{\partial W_h^c} = \sum_{t=1}^T \left[\frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2) \right] h_{t-1}^T
\frac{\partial L}{\partial b^c} = \sum_{t=1}^T \left[\frac{\partial L}{\partial c_t} * i_t * (1-\tilde{c}_t^2) \right]
\frac{\partial L}{\partial W_x^o} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\} x_t^T
\frac{\partial L}{\partial W_h^o} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\} h_{t-1}^T
\frac{\partial L}{\partial b^o} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1-o_t)] \right\}
""".strip().splitlines()

# The seed's dL/dh_0 (its C_1 corrected to c_1), as one sum.
SEED_DH0 = (r"\frac{\partial L}{\partial h_0} = (W_h^f)^T \left\{ \frac{\partial L}{\partial c_1} * c_0 * [f_1 * (1-f_1)] \right\}"
            r" + (W_h^i)^T \left\{ \frac{\partial L}{\partial c_1} * \tilde{c}_1 * [i_1 * (1-i_1)] \right\}"
            r" + (W_h^o)^T \left\{ \frac{\partial L}{\partial h_1} * \tanh(c_1) * [o_1 * (1-o_1)] \right\}"
            r" + (W_h^c)^T \left[ \frac{\partial L}{\partial c_1} * i_1 * (1-\tilde{c}_1^2) \right]")


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def md_equations(text: str) -> list[str]:
    """The $$ blocks of a Markdown document, with the aligned layout (&, \\\\) removed."""
    blocks = re.findall(r"^\$\$(.*)\$\$$", text, flags=re.M)
    return [_squeeze(_unalign(block)) for block in blocks]


def tex_equations(text: str) -> list[str]:
    """The equations of a LaTeX document's align* blocks: one per row, with the rows that continue
    it (starting with &) joined to it, the alignment removed."""
    equations = []
    for block in re.findall(r"\\begin\{align\*\}(.*?)\\end\{align\*\}", text, flags=re.S):
        for row in (row.strip() for row in block.split("\\\\")):
            if row.startswith("&") and equations:
                equations[-1] += " " + row
            elif row:
                equations.append(row)
    return [_squeeze(_unalign(equation)) for equation in equations]


def _unalign(block: str) -> str:
    return block.replace(r"\begin{aligned}", "").replace(r"\end{aligned}", "").replace("\\\\", " ").replace("&", " ")


@pytest.fixture(scope="module")
def lstm_md():
    return render.render_document("lstm", "md")


@pytest.fixture(scope="module")
def lstm_tex():
    return render.render_document("lstm", "tex")


@pytest.fixture(scope="module")
def rnn_docs():
    return {fmt: render.render_document("rnn", fmt) for fmt in render.TEXT_FORMATS}


# ----------------------------------------------------------------------------- the seed's formulas
@pytest.mark.parametrize("line", SEED_PART1, ids=[ln.split(" = ")[0] for ln in SEED_PART1])
def test_part1_reproduces_the_seed(lstm_md, lstm_tex, line):
    assert _squeeze(line) in md_equations(lstm_md)
    assert _squeeze(line) in tex_equations(lstm_tex)


@pytest.mark.parametrize("line", SEED_PART2, ids=[ln.split(" = ")[0] for ln in SEED_PART2])
def test_part2_reproduces_the_seed(lstm_md, line):
    assert _squeeze(line) in md_equations(lstm_md)


def test_dh0_matches_the_seed(lstm_md):
    assert _squeeze(SEED_DH0) in md_equations(lstm_md)


def test_family_line_exactly_as_printed(lstm_md):
    """One family formula in full, spacing included (the seed's notation, our spacing)."""
    expected = (r"$$\frac{\partial L}{\partial W_x^f} = \frac{\partial L}{\partial c_t} \cdot "
                r"\frac{\partial c_t}{\partial f_t} \cdot \frac{\partial f_t}{\partial W_x^f} = "
                r"\left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * [f_t * (1 - f_t)] \right\} x_t^T$$")
    assert expected in lstm_md.splitlines()


def test_tex_family_is_a_chain_split_at_its_equal_signs(lstm_tex):
    expected = "\n".join([
        r"\begin{align*}",
        (r"  \frac{\partial L}{\partial W_x^c} & = \frac{\partial L}{\partial c_t} \cdot "
         r"\frac{\partial c_t}{\partial \tilde{c}_t} \cdot \frac{\partial \tilde{c}_t}{\partial W_x^c} \\"),
        r"  & = \left[ \frac{\partial L}{\partial c_t} * i_t * (1 - \tilde{c}_t^2) \right] x_t^T \\",
    ])
    assert expected in lstm_tex


def test_identities_come_from_sympy(lstm_md):
    assert r"$$\frac{\partial \sigma(\theta)}{\partial \theta} = \sigma(\theta) * (1 - \sigma(\theta))$$" in lstm_md
    assert r"$$\frac{\partial \tanh(\theta)}{\partial \theta} = 1 - \tanh^2(\theta)$$" in lstm_md


def test_closing_gradients_use_dh_for_the_output_gate(lstm_md):
    """The seed's own mistake: the o_t path of dL/dx_t goes through h_t, not c_t."""
    dx = next(eq for eq in md_equations(lstm_md) if eq.startswith(_squeeze(r"\frac{\partial L}{\partial x_t}=\frac")))
    assert _squeeze(r"+ \frac{\partial L}{\partial h_t} \cdot \frac{\partial h_t}{\partial o_t} \cdot "
                    r"\frac{\partial o_t}{\partial x_t}") in dx
    assert _squeeze(r"+ (W_x^o)^T \left\{ \frac{\partial L}{\partial h_t} * \tanh(c_t) * [o_t * (1 - o_t)] \right\}") in dx


def test_recurrences_and_initial_states(lstm_md):
    equations = md_equations(lstm_md)
    dc_total = _squeeze(r"\frac{\partial L}{\partial c_t} = \frac{\partial L}{\partial h_t} * [o_t * (1 - \tanh^2(c_t))]"
                        r" + \frac{\partial L}{\partial c_{t+1}} * f_{t+1}")
    assert dc_total in equations
    dh_total = next(eq for eq in equations if eq.startswith(_squeeze(r"\frac{\partial L}{\partial h_t}=")))
    assert dh_total.startswith(_squeeze(r"\frac{\partial L}{\partial h_t} = \frac{\partial \ell_t}{\partial h_t} + (W_h^f)^T"))
    assert _squeeze(r"\frac{\partial L}{\partial c_0} = \frac{\partial L}{\partial c_1} * f_1") in equations


# ----------------------------------------------------------------------------- every formula is printed
def test_context_formulas_are_the_printers_output():
    d = reverse.derive("lstm")
    context = document_context(d, fmt="md")
    summed = [row for family in context["summed_families"] for eq in family["equations"] for row in eq["rows"]]
    for quantity in d.cell.parameters:
        assert any(row.endswith(" = " + latex(d.summed(quantity.name), d.cell)) for row in summed), quantity.name


def test_both_formats_hold_the_same_equations(lstm_md, lstm_tex, rnn_docs):
    assert md_equations(lstm_md) == tex_equations(lstm_tex)
    assert md_equations(rnn_docs["md"]) == tex_equations(rnn_docs["tex"])


def test_part_structure_in_equation_order(lstm_md):
    headings = re.findall(r"^#+ (.*)$", lstm_md, flags=re.M)
    families = [h for h in headings if h.endswith("family")]
    assert families == [r"$f_t$ family", r"$i_t$ family", r"$o_t$ family", r"$\tilde{c}_t$ family"] * 2
    assert headings.index("1. Step backward") < headings.index("2. Full backward")


# ----------------------------------------------------------------------------- layout rules
def test_md_blocks_are_balanced_and_one_per_line(lstm_md, rnn_docs):
    for text in (lstm_md, rnn_docs["md"]):
        for line in text.splitlines():
            assert line.count("$$") in (0, 2), line
            if "$$" in line:
                assert line.startswith("$$") and line.endswith("$$"), line
        assert text.count("$$") % 2 == 0


def test_no_block_starts_with_a_continuation(lstm_md, lstm_tex, rnn_docs):
    for equations in (md_equations(lstm_md), tex_equations(lstm_tex), md_equations(rnn_docs["md"])):
        assert equations
        for eq in equations:
            assert not eq.startswith(("+", "=", "-")), eq
            assert "=" in eq, eq


def test_tex_is_article_with_packages_of_texlive_latex_base_only(lstm_tex):
    """geometry (wider text, so that long rows fit) and amsmath: both in Debian's texlive-latex-base."""
    assert r"\documentclass{article}" in lstm_tex
    assert re.findall(r"\\usepackage(?:\[[^]]*\])?\{([^}]*)\}", lstm_tex) == ["geometry", "amsmath"]
    assert lstm_tex.count(r"\[") == lstm_tex.count(r"\]")
    assert lstm_tex.rstrip().endswith(r"\end{document}")


def test_rnn_document(rnn_docs):
    equations = md_equations(rnn_docs["md"])
    assert _squeeze(r"\frac{\partial L}{\partial W_x} = \sum_{t=1}^T \left[ \frac{\partial L}{\partial h_t} * (1 - h_t^2) \right] x_t^T") in equations
    assert _squeeze(r"\frac{\partial L}{\partial h_0} = W_h^T \left[ \frac{\partial L}{\partial h_1} * (1 - h_1^2) \right]") in equations
    assert _squeeze(r"\frac{\partial h_t}{\partial h_{t-1}} = W_h^T (1 - h_t^2)") in equations
    assert r"\sigma" not in rnn_docs["md"] and r"c_t" not in rnn_docs["md"]


def test_odot_option():
    text = render.render_document("lstm", "md", render.style_of(hadamard="odot"))
    equations = md_equations(text)
    assert _squeeze(r"\frac{\partial L}{\partial b^f} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} \odot "
                    r"c_{t-1} \odot [f_t \odot (1 - f_t)] \right\}") in equations
    assert not any("*" in eq for eq in equations)
    assert r"$\odot$ is the elementwise product" in text


def test_custom_cell_document_works():
    """A cell with a peephole and no separate candidate gate: nothing LSTM-specific is assumed."""
    from lstmgen import cells

    cell = cells.parse("cell peep\ninput x\nstate h output\nstate c\n"
                       "f = sigmoid(W_xf @ x + W_hf @ h[t-1] + p_f * c[t-1] + b_f)\n"
                       "c = f * c[t-1] + (1 - f) * tanh(W_xc @ x + b_c)\nh = tanh(c)\n")
    context = document_context(reverse.derive_cell(cell), fmt="tex")
    text = render.environment().get_template("derivation.tex.j2").render(command="lstmgen derive", **context)
    assert r"\frac{\partial L}{\partial p_f}" in text and r"\frac{\partial L}{\partial c_0}" in text


# ----------------------------------------------------------------------------- determinism
def test_deterministic_across_processes(tmp_path):
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / ("doc%s.tex" % seed)
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "lstmgen", "derive", "--cell", "lstm", "--format", "tex", "-o", str(out)],
                       cwd=str(ROOT), env=env, check=True, capture_output=True, timeout=120)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] == render.render_document("lstm", "tex").encode("utf-8")


# ----------------------------------------------------------------------------- LaTeX compiles
def _pdflatex():
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("LSTMGEN_REQUIRE_TEX") == "1":
            pytest.fail("pdflatex is not installed but LSTMGEN_REQUIRE_TEX=1")
        pytest.skip("pdflatex is not installed (set LSTMGEN_REQUIRE_TEX=1 to make this a failure)")
    return exe


NOTATIONS = [(hadamard, "T") for hadamard in sorted(HADAMARD)] + [("odot", "top")]
# every notation option of `lstmgen derive`, alone and all at once
STYLES = [Style(hadamard, transpose) for hadamard, transpose in NOTATIONS] + [
    Style(names="plain"), Style(vectors="row"), Style(compact=True), Style("circ", "top", "plain", "row", True)]


@pytest.mark.parametrize("style", STYLES, ids=str)
@pytest.mark.parametrize("cell", cells.builtin_names())
def test_tex_compiles_with_pdflatex_and_no_line_is_wider_than_the_text(tmp_path, cell, style):
    exe = _pdflatex()
    source = tmp_path / "doc.tex"
    source.write_text(render.render_document(cell, "tex", style), encoding="utf-8")
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", source.name],
                          check=False, cwd=str(tmp_path), capture_output=True, text=True, errors="replace", timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace") if (tmp_path / "doc.log").exists() else proc.stdout
    assert proc.returncode == 0, log[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    overfull = re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide\)", log)
    assert not [width for width in overfull if float(width) > 1], overfull


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("cell,fmt,hadamard,transpose", [
    (cell, fmt, hadamard, transpose) for cell in cells.builtin_names() for fmt in ("tex", "md")
    for hadamard, transpose in NOTATIONS])
def test_document_checks_clean(cell, fmt, hadamard, transpose):
    """`lstmgen check`, reading the text back with its own grammar, accepts every equation, in every
    notation the printer can write."""
    import lstmgen

    text = render.render_document(cell, fmt, render.style_of(hadamard, transpose))
    report = lstmgen.check(text, cell=cell, source="derivation." + fmt)
    wrong = [(e.line, e.status, e.message) for e in report.equations if e.status != "correct"]
    assert not wrong
    assert len(report.equations) == len(md_equations(text) if fmt == "md" else tex_equations(text))


def test_the_document_opens_with_the_forward_step():
    """The forward equations as the seed's notation writes them, before part 1."""
    text = render.render_document("lstm", "md")
    forward = text.index("## The forward step")
    assert forward < text.index("## 1. Step backward")
    for line in (r"$$f_t = \sigma(W_x^f x_t + W_h^f h_{t-1} + b^f)$$",
                 r"$$\tilde{c}_t = \tanh(W_x^c x_t + W_h^c h_{t-1} + b^c)$$",
                 r"$$c_t = f_t * c_{t-1} + i_t * \tilde{c}_t$$",
                 r"$$h_t = o_t * \tanh(c_t)$$"):
        assert line in text[forward:], line


# ----------------------------------------------------------------------------- PDF
def test_derive_writes_a_pdf_whose_first_page_is_not_blank(tmp_path):
    """`lstmgen derive -o FILE.pdf` compiles with pdflatex; pdftoppm renders page 1 for a look."""
    _pdflatex()
    pdftoppm = shutil.which("pdftoppm")
    out = tmp_path / "lstm.pdf"
    proc = subprocess.run([sys.executable, "-m", "lstmgen", "derive", "--cell", "lstm", "-o", str(out)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    if pdftoppm is None:
        if os.environ.get("LSTMGEN_REQUIRE_TEX") == "1":
            pytest.fail("pdftoppm (poppler-utils) is not installed but LSTMGEN_REQUIRE_TEX=1")
        pytest.skip("pdftoppm is not installed")
    subprocess.run([pdftoppm, "-f", "1", "-l", "1", "-r", "40", "-gray", str(out), str(tmp_path / "page")],
                   check=True, timeout=60)
    page = next(tmp_path.glob("page*.pgm")).read_bytes()
    header_end = page.index(b"255\n") + 4  # binary PGM: P5, width height, 255, then one byte per pixel
    pixels = page[header_end:]
    assert sum(1 for value in pixels if value < 200) > 0.01 * len(pixels)  # ink on the page (a blank page: 0)


def test_a_tex_error_names_the_offending_line(monkeypatch):
    _pdflatex()
    broken = render.render_document("rnn", "tex").replace(r"\frac{\partial L}", r"\frac{\partial L}\undefinedmacro", 1)
    monkeypatch.setattr(render, "render_document", lambda *args, **kwargs: broken)
    with pytest.raises(LstmgenError, match=r"pdflatex failed at line \d+ of the document: Undefined control "
                                           r"sequence\., in: .*undefinedmacro"):
        render.pdf_document("rnn")


def test_the_format_comes_from_the_suffix_and_a_missing_folder_is_an_error(tmp_path):
    for suffix, start in ((".md", "<!--"), (".html", "<!DOCTYPE html>"), (".tex", "% Generated")):
        out = tmp_path / ("doc" + suffix)
        proc = subprocess.run([sys.executable, "-m", "lstmgen", "derive", "--cell", "rnn", "-o", str(out)],
                              cwd=str(ROOT), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and out.read_text(encoding="utf-8").startswith(start), proc.stderr
    for output, message in ((tmp_path / "nowhere" / "doc.md", "does not exist"),
                            (tmp_path / "doc.docx", "cannot tell the format")):
        proc = subprocess.run([sys.executable, "-m", "lstmgen", "derive", "-o", str(output)],
                              cwd=str(ROOT), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()
