"""extract.equations: which math of a Markdown or LaTeX document is read, on which line, as one
equation or as the continuation of one, with its macros expanded, in time linear in the document."""
from __future__ import annotations

import pytest
from test_check import fail_instead_of_hanging

from lstmgen.checker import extract


def found(text, tex=False, inline=True):
    """(line, text, inline) of every equation the document holds."""
    equations, _ = extract.equations(text, tex=tex, inline=inline)
    return [(e.line, e.text, e.inline) for e in equations]


def unclosed(text, tex=False):
    return extract.equations(text, tex=tex)[1]


# ----------------------------------------------------------------------------- Markdown blocks
@pytest.mark.parametrize("text, expected", [
    ("$$\n\\frac{a}{b} = c\n$$\n", [(2, "\\frac{a}{b} = c", False)]),
    ("intro\n\n$$x = y$$\n", [(3, "x = y", False)]),
    ("$$a = b$$ (eq1)\n", [(1, "a = b", False)]),
    ("```math\n\na = b\n```\n", [(3, "a = b", False)]),
    ("~~~ math\nc = d\n~~~\n", [(2, "c = d", False)]),
    ("\\begin{align}\n a &= b \\\\\n c &= d\n\\end{align}\n", [(2, "a  = b", False), (3, "c  = d", False)]),
    ("text\n\\[\n a = b\n\\]\n", [(3, "a = b", False)]),
], ids=["dollars", "one-line", "label", "math-fence", "tilde-fence", "amsmath", "brackets"])
def test_display_math_in_markdown_is_found_on_the_line_of_its_content(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "```python\nx = 1\n$$a = b$$\n```\n",
    "```\n$$a = b$$\n```\n",
    "<!-- $$a = b$$ and $c = d$ -->\n",
    "<!--\n$$a = b$$\n-->\n",
    "text <!-- $c = d$ \\(e = f\\) --> more\n",
    "text `$c = d$` and ``\\(e = f\\)``\n",
    "    $$a = b$$\n    $c = d$\n",
    "escaped \\$c = d\\$ and \\\\(e = f)\n",
    "<div>\n$$a = b$$\n</div>\n",
], ids=["python-fence", "bare-fence", "html-comment", "multiline-comment", "inline-comment",
        "code-span", "indented-code", "escapes", "html-block"])
def test_code_and_html_hide_their_math(text):
    assert found(text) == []


def test_a_math_fence_is_display_math_and_other_fences_are_not():
    text = "```python\na = b\n```\n\n```math\nc = d\n```\n"
    assert found(text) == [(6, "c = d", False)]


# ----------------------------------------------------------------------------- Markdown inline
@pytest.mark.parametrize("text, expected", [
    ("We have $a = b$ here.\n", [(1, "a = b", True)]),
    ("- first $a = b$\n- second\n  $c = d$\n", [(1, "a = b", True), (3, "c = d", True)]),
    ("# Heading $h = 1$\n", [(1, "h = 1", True)]),
    ("Setext $s = 1$\nstill $t = 2$\n===\n", [(1, "s = 1", True), (2, "t = 2", True)]),
    ("> quoted\n> $q = 1$\n", [(2, "q = 1", True)]),
    ("| a | b |\n|---|---|\n| $m = 3$ | x |\n", [(3, "m = 3", True)]),
    ("see \\(u = v\\) and \\[w = z\\]\n", [(1, "u = v", True), (1, "w = z", False)]),
    ("then $$y = x$$ inside prose\n", [(1, "y = x", False)]),
    ("a [link $l = 1$](http://x) here\n", [(1, "l = 1", True)]),
], ids=["paragraph", "list-items", "heading", "setext", "block-quote", "table", "backslash-delimiters",
        "dollars-in-prose", "link-text"])
def test_inline_math_in_prose_is_found_and_marked_inline(text, expected):
    assert found(text) == expected


def test_inline_math_is_left_out_unless_asked_for():
    text = "We have $a = b$ and \\(c = d\\).\n\n$$e = f$$\n"
    assert found(text, inline=False) == [(3, "e = f", False)]


def test_a_lone_dollar_is_not_math():
    text = "It costs $5 per student, $3 more or $5-$10.\n\n$$a = b$$\n\nAnd $3 more: $$c = d$$\n"
    assert found(text) == [(3, "a = b", False), (5, "c = d", False)]


def test_display_math_inside_list_items():
    text = "1. item\n\n   $$\n   a = b\n   $$\n2. other\n   - nested\n\n     $$c = d$$\n"
    assert found(text) == [(4, "a = b", False), (9, "c = d", False)]


def test_inline_math_across_lines_starts_where_its_content_does():
    text = "first line\nsecond $\n  x = 1$ and $ y = 2 $\n"
    assert found(text) == []  # pandoc's rule: no blank right inside the delimiters
    text = "first line\nsecond $x\n= 1$ and \\(\n  y = 2\\)\n"
    assert found(text) == [(2, "x\n= 1", True), (4, "y = 2", True)]


# ----------------------------------------------------------------------------- LaTeX
def test_latex_display_and_inline_math():
    text = ("intro $x = 1$ and \\(y = 2\\)\n\\begin{align}\n a &= b \\\\\n &+ c \\\\\n d &= e\n\\end{align}\n"
            "\\[ f = g \\]\n% $$ h = i $$ commented out\n")
    assert [(line, text.replace(" ", ""), inline) for line, text, inline in found(text, tex=True)] == [
        (1, "x=1", True), (1, "y=2", True), (3, "a=b+c", False), (5, "d=e", False), (7, "f=g", False)]


def test_a_latex_row_break_outside_math_opens_nothing():
    text = "a table row \\\\[2pt] next \\$5 and $p = q$\n\\begin{equation*}\n  r = s.\n\\end{equation*}\n"
    assert found(text, tex=True) == [(1, "p = q", True), (3, "r = s", False)]


def test_inline_dollars_do_not_cross_a_blank_line_in_latex():
    assert found("a $5\n\nb $$c = d$$\n", tex=True) == [(3, "c = d", False)]


# ----------------------------------------------------------------------------- rows
def test_continuation_rows_and_blocks_join_the_previous_display_equation():
    text = ("$$a_t = x_t$$\n\nwhere $x_t$ is the input\n\n$$+ y_t$$\n\n$$\\qquad = z_t$$\n\n"
            "$$\nb = 1 \\\\[2pt]\n- 2 \\\\\nc = 3,\n$$\n")
    assert found(text) == [(1, "a_t = x_t + y_t = z_t", False), (3, "x_t", True),
                           (10, "b = 1 - 2", False), (12, "c = 3", False)]


def test_inline_math_never_continues_display_math():
    assert found("$$a = b$$\n\nthe value $-1$ and $= c$\n") == [
        (1, "a = b", False), (3, "-1", True), (3, "= c", True)]


def test_a_row_starts_on_the_line_of_its_first_character_after_the_alignment_mark():
    assert found("$$&\n  x = y$$\n") == [(2, "x = y", False)]


def test_an_equation_is_display_math_unless_marked_inline():
    assert extract.Equation("a = b", 3).inline is False


def test_layout_environments_are_blanks():
    text = "$$\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}$$\n"
    assert found(text) == [(1, "a  = b", False), (1, "c  = d", False)]


# ----------------------------------------------------------------------------- unterminated
@pytest.mark.parametrize("text, tex, lines", [
    ("text\n\n$$\na = b\n", False, [3]),
    ("ok $$a = b$$\n\nthen \\[ c = d\n\nlast \\begin{equation} e\n", False, [3, 5]),
    ("\\begin{align}\n a = b\n", False, [1]),
    ("intro\n\\[ a = b\n", True, [2]),
    ("$$a = b$$\n\\begin{equation}\n c = d\n", True, [2]),
], ids=["dollars", "several", "amsmath", "latex-brackets", "latex-environment"])
def test_display_blocks_that_never_close_are_reported(text, tex, lines):
    assert unclosed(text, tex) == lines


def test_an_unclosed_inline_delimiter_is_prose():
    assert unclosed("a \\( b and $c\n") == [] and found("a \\( b and $c\n") == []


# ----------------------------------------------------------------------------- macros
def test_macros_with_arguments_are_expanded_in_latex():
    text = ("\\newcommand{\\dd}[2]{\\frac{\\partial #1}{\\partial #2}}\n\\def\\g#1{\\gamma_{#1}}\n"
            "\\renewcommand\\s{\\sigma}\n\\newcommand{\\v}[2][x]{#1_{#2}}\n"
            "$$\\dd{L}{h_t} = \\g t \\s \\v{t} \\v[h]{t}$$\n")
    assert found(text, tex=True) == [(5, "\\frac{\\partial L}{\\partial h_t} = \\gamma_{t} \\sigma x_{t} h_{t}", False)]


def test_nested_macros_and_a_control_word_before_a_letter():
    text = "\\def\\a{\\b}\n\\def\\b{\\alpha}\n\\def\\f#1{#1x}\n$$\\a y = \\f\\alpha$$\n"
    assert found(text, tex=True) == [(4, "\\alpha y = \\alpha x", False)]


def test_macros_defined_in_markdown_math_apply_everywhere():
    text = "$$\\f{x} = 1$$\n\n```math\n\\newcommand{\\f}[1]{f(#1)}\n```\n\nprose $\\def\\g{g}\\g = 2$\n"
    assert found(text) == [(1, "f(x) = 1", False), (7, "g = 2", True)]


@pytest.mark.parametrize("definition", ["\\def\\a{\\a}", "\\def\\a{\\a\\a}", "\\def\\a{x\\a}",
                                        "\\newcommand{\\a}[1]{\\a{#1#1}}"])
def test_recursive_macros_are_left_as_written(definition):
    text = "$$%s$$\n\n$$\\a{y} = 1$$\n\n$$b = 2$$\n" % definition
    with fail_instead_of_hanging(10):
        assert found(text) == [(3, "\\a{y} = 1", False), (5, "b = 2", False)]


def test_a_macro_missing_its_argument_is_left_as_written():
    assert found("\\def\\f#1{(#1)}\n$$a = \\f$$\n", tex=True) == [(2, "a = \\f", False)]


# ----------------------------------------------------------------------------- linear time
MB = 1_000_000


def repeated(unit, size):
    return (unit * (size // len(unit) + 1))[:size]


@pytest.mark.parametrize("text, tex", [
    (repeated("we have $a_t = b$ and ", 2 * MB), False),
    (repeated("we have $a_t = b$ and ", 2 * MB), True),
    (repeated("\\\\[", 2 * MB), False),
    (repeated("\\\\[", 2 * MB), True),
    ("$$a = b " + repeated("\\\\[", MB // 2) + "$$", False),
    (repeated("$5 ", MB), False),
    (repeated("$$ a\n# h\n", MB // 5), False),
    (repeated("\\begin{align}\nx\n", MB // 2), False),
    (repeated("\\(", MB), False),
    (repeated("\\newcommand{\\a}{", MB), True),
    (repeated("$$+ a$$\n", MB // 2), False),
    ("$$\\def\\a{\\a\\a}$$\n" + repeated("$\\a = 1$ ", MB // 4), False),
], ids=["inline-md", "inline-tex", "row-breaks-md", "row-breaks-tex", "row-breaks-in-display",
        "lone-dollars", "unclosed-dollar-blocks", "unclosed-environments", "unclosed-parens",
        "unclosed-definitions", "continuations", "recursive-macro-everywhere"])
def test_adversarial_documents_are_read_in_linear_time(text, tex):
    """A guard, not a measurement: each input aims at a step (a scan ahead from every opening
    delimiter, a regex that rescans a row, a join, a macro budget) that takes minutes on it
    when it is quadratic."""
    with fail_instead_of_hanging(10):
        extract.equations(text, tex=tex, inline=True)
