"""Every `lstmgen` command in the README's sh blocks works on a fresh clone.

Each runs as `python -m lstmgen ...` in a scratch folder holding a copy of docs/examples (what a
clone has), with the source tree on the path; it must exit as a command of its kind does (0, or 1
for a check that finds wrong equations), write what it says it writes, and print no traceback.
The install commands (pip) are what CI itself runs.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            command = re.split(r"\s#", line, maxsplit=1)[0].strip()
            for part in command.split("&&"):
                part = part.strip()
                if part.startswith("lstmgen "):
                    out.append(part)
    return out


def test_the_readme_has_commands_to_run():
    commands = _commands()
    assert any(c.startswith("lstmgen check docs/examples/") for c in commands)
    assert "lstmgen build" in commands


@pytest.mark.parametrize("command", _commands())
def test_a_readme_command_works_on_a_fresh_clone(tmp_path, command):
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    args = shlex.split(command)[1:]
    if "pdf" in command and not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "lstmgen", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    allowed = (0, 1) if args[0] == "check" else (0,)
    assert proc.returncode in allowed, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if "-o" in args:
        assert (tmp_path / args[args.index("-o") + 1]).stat().st_size > 0
    if args[0] == "build":
        assert len(list((tmp_path / "generated").iterdir())) >= 30
    if args[0] == "check":
        assert "docs/examples/" in proc.stdout
