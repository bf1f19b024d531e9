"""The generated code's line layout (lstmgen/generator/format.py) against ruff format itself.

Long statements of the shapes the printers make -- products and sums of many factors, one operator
joining two long bracketed operands, a call's arguments -- are laid out by `format.statement` at the
indents the generated modules use (a function body, a Numba kernel's double loop), and ruff format
must leave every one of them as it is.
"""
from __future__ import annotations

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
