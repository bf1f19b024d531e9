"""Hostile and careless cell files: one test per class of what went wrong (issue 9).

Every cell file either gives documents and modules that are right -- the module imports, its forward
agrees with a NumPy transcription where one is written here, its gradients with central finite
differences in float64 -- or is refused in one line (CellError / LstmgenError, exit code 2 from the
command line).  `generated_module` and `assert_cell_gradients` are shared with the fuzzer
(tests/test_cell_fuzz.py).
"""
from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, numerical_gradient, run_cli

from lstmgen import cells, generator, render, reverse
from lstmgen.errors import LstmgenError

DIMS = {"N": 2, "T": 3, "D": 3, "H": 4}
# A wall-clock bound for "does not hang" only (issue 9's floor is 10 s per file on a quiet machine).
NO_HANG = 60.0


# ----------------------------------------------------------------------------- harness
def write_cell(tmp_path: Path, text: str, name: str = "hostile") -> str:
    path = tmp_path / (name + ".cell")
    path.write_text(text, encoding="utf-8")
    return str(path)


_LOADED = [0]


def generated_module(cell: str, layout: str = "cs231n", target: str = "numpy"):
    """(module, context): the module of `cell` rendered now and imported under a fresh name."""
    text = render.render_module(cell, layout, target)
    compile(text, "<generated>", "exec")  # a SyntaxError names the line
    _LOADED[0] += 1
    name = "lstmgen_hostile_%d" % _LOADED[0]
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(text, name + ".py", "exec"), module.__dict__)  # noqa: S102 - our own generated code
    sys.modules.pop(name, None)
    return module, generator.module_context(reverse.derive(cell), layout, target)


def shape(text: str) -> tuple:
    """'(N, 3 * H)' -> (2, 12) with the sizes of DIMS (the shapes the generated docstrings state)."""
    out = []
    for part in text.strip("()").split(","):
        if part.strip():
            value = 1
            for factor in part.split("*"):
                factor = factor.strip()
                value *= int(factor) if factor.isdigit() else DIMS[factor]
            out.append(value)
    return tuple(out)


def random_arguments(arguments: list[dict], rng) -> list[np.ndarray]:
    return [rng.randn(*shape(a["shape"])) * 0.5 for a in arguments]


def assert_cell_gradients(forward, backward, args, rng, step=1e-6):
    """backward agrees with central differences of L = sum(outputs * upstream), for every argument,
    to 1e-6 of the largest gradient (a gradient that vanishes through a deep chain is compared
    absolutely, not relatively: its finite differences are only noise)."""
    *outputs, cache = forward(*args)
    assert all(np.all(np.isfinite(out)) for out in outputs)
    upstream = [rng.randn(*out.shape) for out in outputs]
    grads = backward(*upstream, cache)
    assert len(grads) == len(args)

    def loss(*a):
        return sum(float(np.sum(out * up)) for out, up in zip(forward(*a)[:-1], upstream))

    scale = max(1.0, max(float(np.max(np.abs(g))) for g in grads))
    for k, (arg, grad) in enumerate(zip(args, grads)):
        assert grad.shape == arg.shape, (k, grad.shape, arg.shape)
        error = float(np.max(np.abs(numerical_gradient(loss, args, k, step) - grad)))
        assert error < 1e-6 * scale, f"gradient {k}: error {error:.2e} (scale {scale:.2e})"


def assert_module_is_right(cell: str, layout: str = "cs231n", target: str = "numpy", seed: int = 0):
    """The module of `cell` imports and both its step and its sequence gradients agree with finite differences."""
    module, context = generated_module(cell, layout, target)
    rng = np.random.RandomState(seed)
    prefix = context["prefix"]
    assert_cell_gradients(getattr(module, prefix + "_step_forward"), getattr(module, prefix + "_step_backward"),
                          random_arguments(context["step_args"], rng), rng)
    assert_cell_gradients(getattr(module, prefix + "_forward"), getattr(module, prefix + "_backward"),
                          random_arguments(context["seq_args"], rng), rng)
    return module, context


def assert_refused(call, fragment: str = ""):
    """`call()` raises an LstmgenError with a one-line message that names `fragment`."""
    with pytest.raises(LstmgenError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    return message


RNN_WITH = "input x\nstate h output\n{lines}h = {function}(W @ x + U @ h[t-1] + b)\n"


# ----------------------------------------------------------------------------- names are data
# Names of SymPy's classes, of lstmgen's own expression classes and printer methods: a cell file's
# function of one of these names once printed as that class (Abs as np.abs) or crashed the printers.
CLASS_NAMES = ["Abs", "Max", "Min", "sign", "Heaviside", "Add", "Mul", "Pow", "Integer", "Float", "Rational",
               "Symbol", "Dummy", "Function", "Derivative", "Lambda", "Tuple", "Piecewise", "Sum", "Matrix",
               "Expr", "Basic", "Number", "Half", "Zero", "NaN", "Infinity", "Dot", "TDot", "Outer", "Transpose",
               "MatMul", "Stack", "Split", "Copy", "BatchSum", "ZerosLike", "WeightGradient", "SumOverTime",
               "UserFunction", "Blocks", "RowBlocks", "Slice", "Not", "Mod", "Relational", "Equality",
               "UnevaluatedExpr", "NegativeInfinity", "Indexed"]


def swish(z):
    return z / (1 + np.exp(-z))


def swish_rnn(x, prev_h, Wx, Wh, b):
    """The cells of RNN_WITH in NumPy: h = a * sigmoid(a), a = x Wx + h_{t-1} Wh + b."""
    return swish(x @ Wx + prev_h @ Wh + b)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_a_function_named_after_a_class_is_the_cell_files_function(tmp_path, name):
    """Applied alone, as a factor and as the base of a power (where SymPy once looked its name up)."""
    text = ("input x\nstate h output\nfunction %s(z) = z * sigmoid(z)\n"
            "h = %s(W @ x + U @ h[t-1] + b) * 2 + %s(h[t-1]) ** 2 * %s(2 * h[t-1])\n") % ((name,) * 4)
    cell = write_cell(tmp_path, text)
    module, context = assert_module_is_right(cell)
    x, prev_h, Wx, Wh, b = args = random_arguments(context["step_args"], np.random.RandomState(3))
    expected = swish(x @ Wx + prev_h @ Wh + b) * 2 + swish(prev_h) ** 2 * swish(2 * prev_h)
    np.testing.assert_allclose(module.hostile_step_forward(*args)[0], expected, rtol=1e-12, atol=1e-12)
    assert r"\operatorname{%s}" % name in render.render_document(cell, "tex")
    assert r"\operatorname{%s}" % name in render.render_document(cell, "md")


@pytest.mark.parametrize("name", ["Abs", "sin", "cos", "sqrt", "gamma", "erf", "Max"])
def test_a_functions_numeric_value_is_its_formula_not_its_names(tmp_path, name):
    """SymPy's evalf once looked a function's name up in mpmath: a cell's Abs(z) = 2 z - 10 gave |3|."""
    import sympy

    from lstmgen.functions import UserFunction

    cell = cells.load(write_cell(tmp_path, RNN_WITH.format(lines="function %s(z) = 2 * z - 10\n" % name,
                                                            function=name)))
    (function,) = {type(f) for eq in cell.equations for f in eq.rhs.atoms(UserFunction)}
    q = sympy.Symbol("q")
    assert float(function(q).evalf(subs={q: 3})) == -4.0
    assert function(3) == -4  # a constant argument: the formula's value at once


@pytest.mark.parametrize("name", ["list", "str", "dict", "int", "set", "range", "len", "reversed", "zip", "print",
                                  "ValueError", "np", "lambda", "def", "None", "True", "hostile_forward"])
def test_a_function_named_like_python_or_the_module_is_refused_in_code_not_in_documents(tmp_path, name):
    cell = write_cell(tmp_path, RNN_WITH.format(lines="function %s(z) = z * sigmoid(z)\n" % name, function=name))
    assert_refused(lambda: render.render_module(cell), "Python name %s" % name)
    assert r"\operatorname{%s}" % name in render.render_document(cell, "md")


def test_a_function_named_like_a_built_in_one_is_refused(tmp_path):
    cell = write_cell(tmp_path, RNN_WITH.format(lines="function sigmoid(z) = z\n", function="sigmoid"))
    assert_refused(lambda: cells.load(cell), "sigmoid is a built-in function")


@pytest.mark.parametrize("variable", ["lambda", "def", "np", "range", "x", "h", "b", "W", "self"])
def test_a_functions_variable_is_only_a_placeholder(tmp_path, variable):
    text = RNN_WITH.format(lines="function swish(%s) = %s * sigmoid(%s)\n" % (variable, variable, variable),
                           function="swish")
    module, context = assert_module_is_right(write_cell(tmp_path, text))
    args = random_arguments(context["step_args"], np.random.RandomState(1))
    np.testing.assert_allclose(module.hostile_step_forward(*args)[0], swish_rnn(*args), rtol=1e-12, atol=1e-12)


def test_a_function_name_with_a_caret_is_refused(tmp_path):
    cell = write_cell(tmp_path, RNN_WITH.format(lines="function f^2(z) = z * z\n", function="f^2"))
    assert_refused(lambda: cells.load(cell), "letters, digits and _")


# (a cell file, a fragment of the refusal or None when the module must work)
QUANTITY_NAMES = {
    "keyword-parameter": ('input x\nstate h output\nlatex lambda "\\lambda"\nh = tanh(W @ x + U @ h[t-1] + lambda)\n',
                          None),
    "keyword-gate": ('input x\nstate h output\nlatex if "\\iota"\nif = sigmoid(W @ x + U @ h[t-1])\n'
                     'h = if * h[t-1] + tanh(V @ x)\n', None),
    "d-plus-name-is-a-keyword": ('input x\nstate h output\nlatex el "\\epsilon"\nh = tanh(W @ x + U @ h[t-1] + el)\n',
                                 "del"),
    "builtin-parameter": ('input x\nstate h output\nlatex range "r"\nh = tanh(W @ x + U @ h[t-1] + range)\n',
                          "range"),
    "builtin-gate": ('input x\nstate h output\nlatex len "l"\nlen = sigmoid(W @ x + U @ h[t-1])\n'
                     'h = len * h[t-1] + tanh(V @ x)\n', "len"),
    "numpy-alias": ('input x\nstate h output\nlatex np "n"\nh = tanh(W @ x + U @ h[t-1] + np)\n', "np"),
    "builtin-state": ('input x\nstate abs output\nlatex abs "a"\nabs = tanh(W @ x + U @ abs[t-1])\n', "abs"),
    "sequence-buffer": ('input x\nstate h output\nlatex h_all "q"\nh_all = sigmoid(W @ x + U @ h[t-1])\n'
                        'h = h_all * h[t-1] + tanh(V @ x)\n', "h_all"),
    "loop-variable": ('input x\nstate h output\nlatex t "\\tau"\nh = tanh(W @ x + U @ h[t-1] + t)\n', "t"),
    "input-keyword": ('input for\nlatex for "x"\nstate h output\nh = tanh(W @ for + U @ h[t-1])\n', None),
}


@pytest.mark.parametrize("case", sorted(QUANTITY_NAMES))
@pytest.mark.parametrize("layout", ["cs231n", "per-gate"])
def test_names_that_are_python_words_are_mangled_or_refused(tmp_path, case, layout):
    text, refusal = QUANTITY_NAMES[case]
    cell = write_cell(tmp_path, text)
    if refusal is None:
        assert_module_is_right(cell, layout)
    else:
        assert_refused(lambda: render.render_module(cell, layout), refusal)


# ----------------------------------------------------------------------------- unusual structure
# Cells the fuzzer found wrong or refused by mistake, one per class.
STRUCTURES = {
    # per-gate: r's gradient through two matrices was assigned twice, the first lost
    "intermediate-times-two-matrices": "input x\nstate h output\nf = sigmoid(W_x^f @ x + W_h^f @ h[t-1])\n"
                                       "r = f * h[t-1]\nn = tanh(W_x^n @ x + W_r^n @ r)\nm = tanh(W_x^m @ x + W_r^m @ r)\n"
                                       "h = n * m + h[t-1]\n",
    # q = P with more than its block of the product: the block and q shared one name, the sequence
    # functions cached the block
    "pre-activation-beyond-its-block": "input x\nstate h output\nstate c\nh = softsign(c[t-1] + W_1 @ x + h[t-1])\n"
                                       "c = softsign(x + W_2 @ x + c[t-1])\n",
    # a function of a product inside another: the outer pre-activation was named from the old form
    "nested-functions-of-products": "input x\nstate h output\nh = softsign(relu(W @ x) + U @ h[t-1])\n",
    "one-product-in-two-functions": "input x\nstate h output\nh = tanh(relu(W @ x) + softsign(W @ x) + U @ h[t-1])\n",
    # a gate that a matrix multiplies: its delta and its gradient through the matrix shared a name
    "gate-times-a-matrix": "input x\nstate h output\ng = sigmoid(W @ x + U @ h[t-1])\nh = tanh(V @ g) + h[t-1]\n",
    # x - x cancels in SymPy's form but is printed as written: x must have the state's width
    "input-that-cancels": "input x\nstate h output\nstate c\nh = softsign(p + W_1 @ x + h[t-1])\n"
                          "c = sigmoid(x - x + W_2 @ x + c[t-1])\n",
    # functions of constants: max(relu(2), b) could not be formed, sigmoid(1) called the array helper
    "functions-of-constants": "input x\nstate h output\nfunction f(z) = z * 2\n"
                              "h = tanh(W @ x + U @ h[t-1] + max(relu(2), b) + sigmoid(1) * f(3) + softsign(-1)"
                              " + sigmoid(exp(tanh(0.5))) * f(exp(1)))\n",
    # a function of a sum that cancels to a constant: SymPy's form folds softsign(0.25) to 0.2, the
    # module prints the formula as written and did not define softsign (found by the long fuzz run)
    "function-of-a-sum-that-cancels": "input x\nstate h output\n"
                                      "h = tanh(softsign((h[t-1]) - ((h[t-1]) - (0.25))) + W @ x + h[t-1])\n",
}


@pytest.mark.parametrize("case", sorted(STRUCTURES))
@pytest.mark.parametrize("layout", ["cs231n", "per-gate"])
def test_unusual_structures_give_right_code(tmp_path, case, layout):
    assert_module_is_right(write_cell(tmp_path, STRUCTURES[case]), layout)


@pytest.mark.parametrize("layout", ["cs231n", "per-gate"])
def test_a_cell_function_of_an_activation_gives_right_numba_code(tmp_path, layout):
    """bump(sigmoid(a)): the Numba target computes sigmoid(a) into a workspace before the kernel, and
    printed bump's call on it with a printer that did not know the workspace's name (refused with
    "no Python name for hoisted:sigmoid_a_c"; found by the ruff scan of random cell files)."""
    pytest.importorskip("numba")
    text = ("input x\nstate h output\nstate c\nfunction bump(z) = exp(-z * z)\n"
            "c = bump(sigmoid(W_c @ x + U_c @ h[t-1]))\nh = tanh(W_h @ x + U_h @ h[t-1]) * c[t-1]\n")
    assert_module_is_right(write_cell(tmp_path, text), layout, "numba")


@pytest.mark.parametrize("line", ["q = p_1", "q = 0.5", "q = tanh(b) * 2"])
def test_an_intermediate_that_depends_on_no_vector_is_refused(tmp_path, line):
    """One value for all samples and steps: the generated code gave it the shape of a parameter."""
    text = "input x\nstate h output\n%s\nh = tanh(W @ x + U @ h[t-1] + V @ q)\n" % line
    assert_refused(lambda: cells.load(write_cell(tmp_path, text)), ":3: q depends on neither the input nor a state")


def test_a_function_named_like_the_output_state_is_refused(tmp_path):
    cell = write_cell(tmp_path, RNN_WITH.format(lines="function h(z) = z * 2\n", function="h"))
    assert_refused(lambda: render.render_module(cell), "Python name h")


# ----------------------------------------------------------------------------- strings are escaped
TITLES = ["a \\N b", "\\x41 and \\u1234", "back\\slash\\", "50% & $x$ #1 _a_ ^b ~c {d}", "<script>alert(1)</script>",
          "*bold* [link](http://x) `code` | pipe", "\\input{/etc/passwd}", "\\write18{ls}", "spaces  and · ünïcode"]


@pytest.mark.parametrize("title", TITLES)
def test_a_title_lands_as_text_in_python_tex_and_markdown(tmp_path, title):
    text = 'title "%s"\ninput x\nstate h output\nh = tanh(W @ x + U @ h[t-1])\n' % title
    cell = write_cell(tmp_path, text)
    module, _ = generated_module(cell)
    assert title in module.__doc__ and title in module.hostile_step_forward.__doc__
    tex = render.render_document(cell, "tex")
    heading = re.search(r"\\title\{Backward pass of the (.*) cell\}\n", tex).group(1)
    assert _untex(heading) == title
    md = render.render_document(cell, "md")
    assert _markdown_heading(md) == "Backward pass of the %s cell" % title


def _untex(text: str) -> str:
    """Undo the title's TeX escapes; whatever else is left must be plain characters."""
    macros = {r"\textbackslash{}": "\\", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^",
              r"\textless{}": "<", r"\textgreater{}": ">", r"\textbar{}": "|"}
    out, position = [], 0
    while position < len(text):
        macro = next((m for m in macros if text.startswith(m, position)), None)
        if macro:
            out.append(macros[macro])
            position += len(macro)
        elif text[position] == "\\":
            assert text[position + 1] in "&%$#_{}", text
            out.append(text[position + 1])
            position += 2
        else:
            assert text[position] not in "\\&%$#_{}~^", text
            out.append(text[position])
            position += 1
    return "".join(out)


def _markdown_heading(md: str) -> str:
    """The text of the document's first heading as CommonMark reads it (markdown-it-py)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(md)
    inline = next(tokens[k + 1] for k, t in enumerate(tokens) if t.type == "heading_open")
    assert all(child.type == "text" for child in inline.children), [c.type for c in inline.children]
    return "".join(child.content for child in inline.children)


@pytest.mark.parametrize("title", ["a\x00b", "a\x1bb", "tab\tbed", "line\u2028break", "x" * 201])
def test_a_title_with_control_characters_or_too_long_is_refused(tmp_path, title):
    cell = write_cell(tmp_path, 'title "%s"\ninput x\nstate h output\nh = tanh(W @ x + U @ h[t-1])\n' % title)
    assert_refused(lambda: cells.load(cell), ":1:")


# ----------------------------------------------------------------------------- TeX injection
LATEX_REFUSED = [r"\input{/etc/passwd}", r"h_{\input x}", r"\write18{ls}", r"\immediate", r"\openin", r"\read",
                 r"\csname foo\endcsname", r"\def\h{x}", r"\catcode", r"\newcommand", r"\let", r"\expandafter",
                 r"\include{x}", r"\jobname", r"\special{x}", r"h^^5cinput", "h%", "$h$", r"h\\", r"\,h", "h&", "h#",
                 "h~", r"\text{h}", r"\operatorname{h}", r"\alphainput", "h" * 81]


@pytest.mark.parametrize("form", LATEX_REFUSED)
def test_a_latex_line_with_anything_but_math_markup_is_refused(tmp_path, form):
    text = 'input x\nstate h output\nlatex h "%s"\nh = tanh(W @ x + U @ h[t-1])\n' % form
    assert_refused(lambda: cells.load(write_cell(tmp_path, text)), ":3:")


@pytest.mark.parametrize("form", [r"\tilde{h}", r"\hat{h}", r"\mathcal{h}", r"\alpha", r"\Gamma_o", r"\bar{h}^{a,1}",
                                  r"\mathbf{h}"])
def test_a_latex_line_of_math_markup_is_used(tmp_path, form):
    cell = write_cell(tmp_path, 'input x\nstate h output\nlatex h "%s"\nh = tanh(W @ x + U @ h[t-1])\n' % form)
    assert cells.load(cell).quantities["h"].latex == form
    assert form in render.render_document(cell, "tex")


def test_documents_hold_only_the_commands_of_the_templates_and_the_whitelist(tmp_path):
    """Whatever a cell file writes, the TeX of its document uses only known control sequences."""
    known = set(cells.LATEX_COMMANDS)
    for path in (ROOT / "generated").glob("*_derivation.tex"):
        known |= set(re.findall(r"\\([A-Za-z]+)", path.read_text(encoding="utf-8")))
    text = ('title "\\\\input{x} <b> $y$"\ninput x\nstate h output\nlatex g "\\mathcal{G}"\n'
            'function Abs(z) = z * sigmoid(z)\ng = sigmoid(W_x^g @ x + W_h^g @ h[t-1])\nh = g * h[t-1] + Abs(V @ x)\n')
    tex = render.render_document(write_cell(tmp_path, text), "tex")
    assert set(re.findall(r"\\([A-Za-z]+)", tex)) <= known | {"textbackslash", "textless", "textgreater", "operatorname"}


# ----------------------------------------------------------------------------- constants
@pytest.mark.parametrize("constant,fragment", [("1e400", "larger than"), ("1e-400", "too small"),
                                               ("(2**64)**64", "larger than"), ("10**15 * 10**15", "larger than"),
                                               ("2 ** 10 ** 100", "exponent"), ("1 / 1e-300", "larger than"),
                                               ("(1000000 * h[t-1]) ** 64", "larger than"),
                                               ("123456789012345678901234567890123", "too long"),
                                               ("exp(1000)", "not finite"), ("exp(40) * 1e10 + 0", "larger than")])
def test_constants_are_finite_and_bounded(tmp_path, constant, fragment):
    text = "input x\nstate h output\nh = tanh(W @ x + U @ h[t-1]) * %s\n" % constant
    assert_refused(lambda: cells.load(write_cell(tmp_path, text)), fragment)


def test_a_constant_at_the_bound_prints_exactly(tmp_path):
    cell = write_cell(tmp_path, "input x\nstate h output\nh = tanh(W @ x + U @ h[t-1]) * 1e15 / 999999999999999\n")
    module, _ = assert_module_is_right(cell)
    source = render.render_module(cell)
    assert "inf" not in source and "nan" not in source


def test_a_function_with_a_huge_constant_is_refused(tmp_path):
    cell = write_cell(tmp_path, RNN_WITH.format(lines="function f(z) = z * 1e300\n", function="f"))
    assert_refused(lambda: cells.load(cell), "larger than")


# ----------------------------------------------------------------------------- derivation size
def reads_two_before(gates: int) -> str:
    """Each gate reads the two before it: one chain-rule path per Fibonacci number."""
    lines = ["input x", "state h output", "g_1 = sigmoid(W_1 @ x + U_1 @ h[t-1] + b_1)",
             "g_2 = sigmoid(W_2 @ x + U_2 @ h[t-1] + g_1)"]
    lines += ["g_%d = tanh(g_%d + g_%d)" % (k, k - 1, k - 2) for k in range(3, gates + 1)]
    return "\n".join(lines + ["h = g_%d * h[t-1] + g_%d" % (gates, gates - 1)]) + "\n"


def reads_the_one_before(gates: int) -> str:
    lines = ["input x", "state h output", "g_1 = sigmoid(W_1 @ x + U_1 @ h[t-1] + b_1)"]
    lines += ["g_%d = sigmoid(W_%d @ x + V_%d @ g_%d)" % (k, k, k, k - 1) for k in range(2, gates + 1)]
    return "\n".join(lines + ["h = g_%d * h[t-1]" % gates]) + "\n"


@pytest.mark.parametrize("text", [reads_two_before(24), reads_two_before(60), reads_the_one_before(24)],
                         ids=["two-before-24", "two-before-60", "chain-through-matrices-24"])
def test_a_cell_with_exponentially_many_paths_derives_in_linear_size(tmp_path, text):
    """Once exponential (24 gates did not finish in 300 s): intermediates that many paths reach get
    their own gradient, so documents and code stay small, and the code is right."""
    cell = write_cell(tmp_path, text)
    start = time.perf_counter()
    derivation = reverse.derive(cell)
    assert derivation.shared  # the walk shared the gradients of the intermediates many paths reach
    assert sum(len(g.terms) for g in derivation.step.values()) < 40 * len(derivation.cell.equations)
    documents = [render.render_document(cell, fmt) for fmt in ("tex", "md")]
    assert_module_is_right(cell)
    assert_module_is_right(cell, "per-gate")
    assert time.perf_counter() - start < NO_HANG
    assert all(len(doc) < 2_000_000 for doc in documents)


def test_the_derivation_of_a_built_in_cell_shares_nothing():
    for name in cells.builtin_names():
        assert reverse.derive(name).shared == {}


@pytest.mark.parametrize("text,fragment", [
    (reads_the_one_before(64), "at most 64"),
    ("input x\nstate h output\nh = tanh(W @ x + U @ h[t-1] + " + " + ".join("p_%d" % k for k in range(400)) + ")\n",
     "larger than 400 operations"),
    ("input x\nstate h output\na = sigmoid(W @ x + U @ h[t-1])\nh = " + " * ".join(["a"] + ["p_%d" % k for k in range(190)])
     + " * h[t-1]\n", "too large to derive"),
    ("input x\nstate h output\nh = " + "tanh(" * 13 + "W @ x + U @ h[t-1]" + ")" * 13 + "\n", "nested more than 12"),
    ("input x\nstate h output\nfunction f_1(z) = tanh(z) * sigmoid(z)\n"
     + "".join("function f_%d(z) = f_%d(f_%d(z))\n" % (k, k - 1, k - 1) for k in range(2, 9))
     + "h = f_8(W @ x + U @ h[t-1])\n", "the expression is"),
    ("input x\nstate h output\n" + "".join("function f_%d(z) = tanh(z)\n" % k for k in range(17))
     + "h = f_1(W @ x + U @ h[t-1])\n", "more than 16 functions"),
    ("input x\nstate h output\ng_1 = tanh(W @ x + U @ h[t-1])\n"
     + "".join("g_%d = tanh(%s)\n" % (k, " + ".join("g_%d" % j for j in range(1, k))) for k in range(2, 40))
     + "h = g_39 * h[t-1]\n", "too large to derive"),
], ids=["equations", "expression-size", "product-of-190", "nesting", "functions-calling-twice", "functions",
        "each-reads-all-before"])
def test_a_cell_beyond_the_bounds_is_refused_in_one_line(tmp_path, text, fragment):
    cell = write_cell(tmp_path, text)
    start = time.perf_counter()
    assert_refused(lambda: render.artifacts([cell]), fragment)
    assert time.perf_counter() - start < NO_HANG
    assert_one_line_error(run_cli("derive", "--cell", cell, "-o", Path(cell).with_suffix(".tex")), fragment)


def test_a_huge_cell_file_is_refused_by_its_size_before_it_is_read(tmp_path):
    path = tmp_path / "huge.cell"
    with open(path, "wb") as handle:  # sparse: 3 GB on paper, nothing on disk
        handle.truncate(3 * 2 ** 30)
    assert_refused(lambda: cells.load(str(path)), "larger than %d bytes" % cells.MAX_CELL_FILE_BYTES)
    assert_one_line_error(run_cli("codegen", "--cell", path), "larger than")


# ----------------------------------------------------------------------------- cell-file details
LSTM_TEXT = (ROOT / "lstmgen" / "cell_files" / "lstm.cell").read_text(encoding="utf-8")


@pytest.mark.parametrize("encode", [lambda t: "\ufeff" + t, lambda t: t.replace("\n", "\r"),
                                    lambda t: t.replace("\n", "\r\n"), lambda t: "\ufeff" + t.replace("\n", "\r\n")],
                         ids=["bom", "cr", "crlf", "bom-crlf"])
def test_byte_order_marks_and_line_ends_read_as_plain_lines(tmp_path, encode):
    path = tmp_path / "lstm_copy.cell"
    path.write_bytes(encode(LSTM_TEXT).encode("utf-8"))
    assert cells.load(str(path)) == cells.load("lstm")


def test_an_error_in_a_cr_only_file_names_the_right_line(tmp_path):
    path = tmp_path / "bad.cell"
    path.write_bytes(b"input x\rstate h output\rh = tanh(W @ x +)\r")
    assert_refused(lambda: cells.load(str(path)), "bad.cell:3:")


def test_two_cells_of_one_name_in_one_build_are_an_error(tmp_path):
    other = tmp_path / "other.cell"
    other.write_text(LSTM_TEXT.replace("f = sigmoid", "f = tanh"), encoding="utf-8")
    proc = run_cli("build", "--cell", "lstm", "--cell", other, "--out", tmp_path / "out")
    assert_one_line_error(proc, "two cells named lstm")
    assert not (tmp_path / "out").exists()  # nothing written: the first is not silently lost
    assert run_cli("build", "--cell", "rnn", "--cell", "rnn", "--out", tmp_path / "twice").returncode == 0


@pytest.mark.parametrize("stem", ["a b", "a-->b", "a%b", "x\u00e9", "a\\b"])
def test_a_file_name_that_is_no_identifier_needs_a_cell_line(tmp_path, stem):
    """Documents and modules are named after the cell: a name from a file name must be an identifier."""
    path = tmp_path / (stem + ".cell")
    path.write_text("input x\nstate h output\nh = tanh(W @ x + U @ h[t-1])\n", encoding="utf-8")
    assert_refused(lambda: cells.load(str(path)), "add a line `cell NAME`")

