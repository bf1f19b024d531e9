"""The generated code's line layout (lstmgen/generator/format.py) against ruff format itself.

Long statements of the shapes the printers make -- products and sums of many factors, one operator
joining two long bracketed operands, a call's arguments -- are laid out by `format.statement` at the
indents the generated modules use (a function body, a Numba kernel's double loop), and ruff format
must leave every one of them as it is.
"""
from __future__ import annotations

import ast
import shutil
import subprocess

import pytest

from lstmgen.generator import format as fmt

LONG = "dnext_state_total_of_the_step"

VALUES = [
    # many factors at the outermost level: wrapped in brackets, one factor per line if need be
    f"sigmoid_arg * {LONG} * (real(1) - keep) * (real(1) + real(1.702) * a_m * (real(1) - sigmoid_arg))",
    f"{LONG} * {LONG} * {LONG} * {LONG} * {LONG}",
    # a sum of products: split at the sum's operators, not the products'
    f"{LONG} * gate_one + {LONG} * gate_two - {LONG} * (real(1) - gate_three) + {LONG}",
    # one operator: split inside the last bracket pair
    f"{LONG} * (real(1) - {LONG} * {LONG} + {LONG} * {LONG} + {LONG} * real(2))",
    # no operator at all: a call split inside its brackets
    f"np.multiply({LONG} * (prev_h - n), {LONG} * (real(1) - {LONG}), out=dz_with_a_long_name)",
    # unary minus is not a split point
    f"-{LONG} * (-{LONG}) * {LONG} * (real(1) - {LONG}) ** 2 * {LONG}",
]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize("depth", [1, 3], ids=["function", "kernel"])
def test_long_statements_are_laid_out_as_ruff_format_lays_them_out(tmp_path, depth):
    heads = ["def step(a):", "    for row in range(a):", "        for col in range(a):"][:depth]
    indent = "    " * depth
    lines = heads + [line for k, value in enumerate(VALUES) for line in fmt.statement(indent, f"value_{k}", value)]
    assert any(len(line) > fmt.LINE_LENGTH for line in (indent + v for v in VALUES)), "the values must be long"
    path = tmp_path / "laid_out.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(["ruff", "format", "--diff", "--no-cache", "--line-length", str(fmt.LINE_LENGTH),
                           str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_operands_cut_before_the_loosest_outermost_operators_only():
    assert fmt._operands("a * b * (c + d)") == ["a", "* b", "* (c + d)"]
    assert fmt._operands("a * b + c * (d - e)") == ["a * b", "+ c * (d - e)"]
    assert fmt._operands("-a * f(b + c, -d)") == ["-a", "* f(b + c, -d)"]
    assert fmt._operands("f(a + b)") == ["f(a + b)"]
    assert fmt._items("a, f(b, c), [d, e]") == ["a", "f(b, c)", "[d, e]"]


# ----------------------------------------------------------------------------- the ruff pass over a module
HAS_RUFF = fmt._ruff() is not None
# a cell file whose derivative the generator's own layout does not lay out as ruff does: the nested
# conditional expressions of max's and relu's derivatives in a long sum, and exp(-z**2)
BUMPY = ("input x\nstate h output\nstate c\nfunction bump(z) = exp(-z * z)\n"
         "c = bump(sigmoid(W_c @ x + U_c @ h[t-1]))\n"
         "h = relu(min(x, max(2, c[t-1])) - h[t-1]) / (2 + tanh(h[t-1])) + tanh(W_h @ x + U_h @ h[t-1])\n")


def _ruff_format_check(tmp_path, source: str) -> subprocess.CompletedProcess:
    path = tmp_path / "checked.py"
    path.write_text(source, encoding="utf-8")
    return subprocess.run(["ruff", "format", "--check", "--diff", "--isolated", "--line-length", str(fmt.LINE_LENGTH),
                           str(path)], capture_output=True, text=True, check=False)


@pytest.mark.skipif(not HAS_RUFF or shutil.which("ruff") is None, reason="ruff is not installed")
def test_a_module_the_own_layout_gets_wrong_comes_out_as_ruff_formats_it(tmp_path, monkeypatch):
    from lstmgen import render

    cell = tmp_path / "bumpy.cell"
    cell.write_text(BUMPY, encoding="utf-8")
    for target in ("numpy", "numba"):
        source = render.render_module(str(cell), "cs231n", target)
        with monkeypatch.context() as patched:
            patched.setattr(fmt, "_ruff", lambda: None)
            own = render.render_module(str(cell), "cs231n", target)
        assert _ruff_format_check(tmp_path, own).returncode == 1, "the case must need the ruff pass"
        proc = _ruff_format_check(tmp_path, source)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # the pass changes the layout only: the fallback without ruff is the same program
        assert ast.dump(ast.parse(own)) == ast.dump(ast.parse(source))


@pytest.mark.skipif(not HAS_RUFF, reason="ruff is not installed")
@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_without_ruff_the_built_in_modules_are_byte_for_byte_the_same(monkeypatch, target):
    """An install without ruff gets the checked-in modules of the built-in cells: the own layout is
    ruff's for them."""
    from lstmgen import render

    for cell in ("lstm", "gru", "rnn", "peephole_lstm", "cifg_lstm", "mgu"):
        with_ruff = render.render_module(cell, "cs231n", target)
        with monkeypatch.context() as patched:
            patched.setattr(fmt, "_ruff", lambda: None)
            assert render.render_module(cell, "cs231n", target) == with_ruff, cell


@pytest.mark.skipif(not HAS_RUFF, reason="ruff is not installed")
def test_a_users_ruff_configuration_does_not_change_generated_code(tmp_path, monkeypatch):
    from lstmgen import render

    expected = render.render_module("gru")
    (tmp_path / "pyproject.toml").write_text('[tool.ruff]\nline-length = 60\n[tool.ruff.format]\nquote-style = "single"\n',
                                             encoding="utf-8")
    (tmp_path / "ruff.toml").write_text("line-length = 50\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert render.render_module("gru") == expected


@pytest.mark.skipif(not HAS_RUFF, reason="ruff is not installed")
def test_invalid_python_from_the_generator_is_an_error_not_a_module():
    with pytest.raises(RuntimeError, match="ruff format rejected a generated module"):
        fmt.formatted("def broken(:\n    pass\n")


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_the_project_s_own_code_passes_its_lint_rules():
    """lstmgen/, tests/ and benchmarks/ under pyproject.toml's rules (E, F, W, B), as the generated modules are."""
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    proc = subprocess.run(["ruff", "check", "--no-cache", "--config", str(root / "pyproject.toml"),
                           *(str(root / d) for d in ("lstmgen", "tests", "benchmarks"))],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
