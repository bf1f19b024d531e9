"""The command line: exit codes, one-line errors, never a traceback."""
import pytest
from conftest import assert_one_line_error as assert_usage_error
from conftest import run_cli as run


@pytest.mark.parametrize("command", ["build", "derive", "codegen", "check"])
def test_help_on_every_command(command):
    proc = run(command, "--help")
    assert proc.returncode == 0 and "usage: lstmgen " + command in proc.stdout


@pytest.mark.parametrize("args,fragment", [
    (["frobnicate"], "invalid choice"),
    (["derive", "--cell", "nosuchcell"], "unknown cell 'nosuchcell'"),
    (["codegen", "--cell", "nosuchcell"], "unknown cell"),
    (["derive", "--format", "docx"], "invalid choice: 'docx' (choose from 'tex', 'md', 'html', 'pdf')"),
    (["derive", "--hadamard", "x"], "--hadamard"),
    (["codegen", "--layout", "fortran"], "invalid choice: 'fortran' (choose from 'cs231n', 'torch', 'per-gate')"),
    (["codegen", "--target", "cuda"], "invalid choice: 'cuda'"),
    (["derive", "--cell", "missing.cell"], "no such file"),
], ids=["subcommand", "derive-cell", "codegen-cell", "format", "hadamard", "layout", "target", "cell-file"])
def test_bad_usage_is_one_line_exit_2(args, fragment):
    assert_usage_error(run(*args), fragment)


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_usage_error(run("codegen", "--cell", "rnn", "-o", blocker / "sub" / "out.py"), "cannot write")


def test_cell_file_error_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.cell"
    bad.write_text("input x\nstate h\nh = tanh(W @ x +)\n")
    assert_usage_error(run("derive", "--cell", bad), "bad.cell:3:")


def test_no_command_prints_help():
    proc = run()
    assert proc.returncode == 2 and "usage: lstmgen" in proc.stdout


def test_build_a_cell_file(tmp_path):
    cell = tmp_path / "tiny.cell"
    cell.write_text("cell tiny\ninput x\nstate h output\nh = tanh(W_x @ x + W_h @ h[t-1] + b)\n")
    out = tmp_path / "out"
    proc = run("build", "--cell", cell, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "tiny_derivation.html", "tiny_derivation.md", "tiny_derivation.tex", "tiny_numba.py", "tiny_numpy.py"]


def _subparsers():
    import argparse

    from lstmgen import cli

    parser = cli._parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, sub.choices


def test_every_option_that_takes_a_value_says_its_default():
    _, commands = _subparsers()
    assert set(commands) == {"build", "derive", "codegen", "check", "merge", "summary"}
    for name, command in commands.items():
        for action in command._actions:
            if action.option_strings and action.nargs != 0 and action.dest != "help":
                assert "default" in (action.help or ""), (name, action.option_strings)


def test_the_help_lists_the_built_in_cells_and_the_exit_codes():
    from lstmgen import cells
    from lstmgen.cli import EXIT_CODES

    names = cells.builtin_names()
    top = run("--help").stdout
    assert "built-in cells: " + ", ".join(names) in top
    for code, _ in EXIT_CODES:
        assert "\n  %-4d " % code in top
    for command in ("derive", "codegen", "check"):
        shown = " ".join(run(command, "--help").stdout.split())  # argparse wraps the lines
        assert all(name in shown for name in names), command
    assert "{cs231n,torch,per-gate}" in run("codegen", "--help").stdout


def test_the_readme_exit_code_table_is_the_cli_s():
    import re

    from conftest import ROOT

    from lstmgen.cli import EXIT_CODES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", readme, flags=re.M))
    assert sorted(map(int, table)) == sorted(code for code, _ in EXIT_CODES)


def test_a_document_on_standard_input(tmp_path):
    import json

    from conftest import ROOT

    seed = (ROOT / "docs" / "examples" / "seed.md").read_text(encoding="utf-8")
    from_file = json.loads(run("check", ROOT / "docs" / "examples" / "seed.md", "--json").stdout)
    proc = run("check", "-", "--json", input=seed)
    assert proc.returncode == 1 and proc.stderr == ""
    from_stdin = json.loads(proc.stdout)
    assert from_stdin["file"] == "<stdin>"
    assert from_stdin["equations"] == from_file["equations"]
    assert_usage_error(run("check", "-", "-", input=seed), "- (standard input) is given more than once")
    assert_usage_error(run("check", "-", input="a\0b"), "<stdin>: a binary file")
    assert_usage_error(run("check", "-", input=b"\xff\xfe x"), "<stdin>: not UTF-8 text")
