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
    (["codegen", "--layout", "fortran"], "unknown layout 'fortran'"),
    (["derive", "--cell", "missing.cell"], "no such file"),
], ids=["subcommand", "derive-cell", "codegen-cell", "format", "hadamard", "layout", "cell-file"])
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
