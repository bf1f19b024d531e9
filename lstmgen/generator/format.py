"""Line layout of the generated code, in two steps.

1. The generator's own layout (the functions below): long signatures, calls and assignments split as
   ruff format splits them, by a few rules on bracketed lists and on a statement's loosest operators.
   For the built-in cells this alone is what ruff format writes (tests/test_format.py).
2. `formatted`: ruff format itself over the whole module, when the ruff package is installed (it is
   a dependency).  The rules of step 1 do not cover every expression a cell file can produce: before
   this step, 76 of 329 modules of 300 random cell files failed `ruff format --check` (nested
   conditional expressions of relu's derivative, a sum inside a product inside a call, -z**2).
   Without ruff the module keeps the layout of step 1: it runs the same, and only a rare long line
   differs from ruff's.
"""
from __future__ import annotations

import functools
import subprocess
import tempfile
import textwrap
from pathlib import Path

LINE_LENGTH = 120  # ruff's line-length for the generated code (pyproject.toml)
TARGET_VERSION = "py310"  # the oldest Python lstmgen supports (pyproject.toml's requires-python)


@functools.cache
def _ruff() -> str | None:
    """The ruff executable of the installed ruff package (not whatever `ruff` is first on PATH, whose
    version might lay out code differently), or None."""
    try:
        import ruff
        return ruff.find_ruff_bin()
    except (ImportError, FileNotFoundError):
        return None


def formatted(source: str) -> str:
    """The module `source` as ruff format lays it out at LINE_LENGTH for TARGET_VERSION, reading no
    configuration file (a user's pyproject.toml must not change generated code); `source` unchanged
    when ruff is not installed.  A RuntimeError when ruff rejects it: the generator wrote invalid Python."""
    return formatted_all([source])[0]


def formatted_all(sources: list[str]) -> list[str]:
    """`formatted` of each source, by one ruff process (a build's 18 modules: 0.14 s by one process
    each); the modules are written to a temporary folder of their own, which ruff formats in place."""
    executable = _ruff()
    if executable is None or not sources:
        return list(sources)
    with tempfile.TemporaryDirectory(prefix="lstmgen-format-") as folder:
        paths = [Path(folder) / f"module_{k}.py" for k in range(len(sources))]
        for path, source in zip(paths, sources):
            path.write_text(source, encoding="utf-8")
        command = [executable, "format", "--isolated", "--no-cache", "--quiet", "--line-length", str(LINE_LENGTH),
                   "--target-version", TARGET_VERSION, *map(str, paths)]
        result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", timeout=120)
        if result.returncode != 0:
            raise RuntimeError("ruff format rejected a generated module (a bug of lstmgen): " + result.stderr.strip())
        return [path.read_text(encoding="utf-8") for path in paths]


def fits(indent: str, text: str) -> bool:
    return len(indent) + len(text) <= LINE_LENGTH


def comment(indent: str, text: str) -> list[str]:
    """`text` as the lines of a comment at `indent`, wrapped at the line length between words (ruff
    format leaves comments alone, so a long one would stay long)."""
    return textwrap.wrap(text, LINE_LENGTH - len(indent) - 2, break_long_words=False, break_on_hyphens=False)


def bracketed(indent: str, head: str, items: list[str], tail: str) -> list[str]:
    """head item, item tail -- on one line, or split inside the brackets as ruff format does."""
    inner = indent + "    "
    joined = ", ".join(items)
    if fits(indent, head + joined + tail):
        return [indent + head + joined + tail]
    if fits(inner, joined):
        return [indent + head, inner + joined, indent + tail]
    return [indent + head] + [inner + item + "," for item in items] + [indent + tail]


def assign_call(indent: str, targets: list[str], function: str, args: list[str]) -> list[str]:
    """targets = function(args), laid out as ruff format lays out a long assignment."""
    lhs, call = ", ".join(targets), "{}({})".format(function, ", ".join(args))
    if fits(indent, f"{lhs} = {call}"):
        return [indent + f"{lhs} = {call}"]
    if fits(indent, f"{lhs} = {function}("):
        return bracketed(indent, f"{lhs} = {function}(", args, ")")
    if fits(indent, f"{lhs} = (") and fits(indent + "    ", call):
        return [indent + f"{lhs} = (", indent + "    " + call, indent + ")"]
    return bracketed(indent, "(", targets, f") = {call}")


def unpack(indent: str, targets: list[str], value: str) -> list[str]:
    text = ", ".join(targets) + ("," if len(targets) == 1 else "")
    if fits(indent, f"{text} = {value}"):
        return [indent + f"{text} = {value}"]
    return bracketed(indent, "(", targets, f") = {value}")


def return_values(indent: str, values: list[str]) -> list[str]:
    if fits(indent, "return " + ", ".join(values)):
        return [indent + "return " + ", ".join(values)]
    return bracketed(indent, "return (", values, ")")


# Binary operators by how loosely they bind, as ruff format (after black) ranks its split points.
_PRIORITY = {"+": 5, "-": 5, "*": 4, "/": 4, "@": 4, "%": 4}


def _operands(value: str) -> list[str]:
    """`value` cut before each of its outermost binary operators of the loosest kind ("a * b * (c + d)"
    -> ["a", "* b", "* (c + d)"]); [value] when it has none.  Operators are the printer's spaced ones,
    so a unary minus (-x) is never one."""
    depth, cuts = 0, []
    for position, char in enumerate(value):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if (depth == 0 and char in _PRIORITY and value[position - 1:position] == " "
                and value[position + 1:position + 2] == " "):
            cuts.append((_PRIORITY[char], position))
    if not cuts:
        return [value]
    loosest = max(priority for priority, _ in cuts)
    starts = [position for priority, position in cuts if priority == loosest]
    bounds = [0] + starts + [len(value)]
    return [value[a:b].strip() for a, b in zip(bounds, bounds[1:])]


def _items(body: str) -> list[str]:
    """`body` cut at its outermost commas ("a, f(b, c)" -> ["a", "f(b, c)"])."""
    depth, items, start = 0, [], 0
    for position, char in enumerate(body):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if depth == 0 and char == ",":
            items.append(body[start:position].strip())
            start = position + 1
    return items + [body[start:].strip()]


def _inside(indent: str, body: str) -> list[str]:
    """The lines of what stands inside a bracket pair at `indent`: on one line if it fits, else one item
    per line with a trailing comma, or one operand per line cut before its loosest operators."""
    if fits(indent, body):
        return [indent + body]
    items = _items(body)
    if len(items) > 1:
        return [indent + item + "," for item in items]
    operands = _operands(body)
    return [indent + operand for operand in operands] if len(operands) > 1 else [indent + body]


def statement(indent: str, target: str, value: str) -> list[str]:
    """target = value; a long value split as ruff format splits it: inside its last bracket pair when it
    has at most one outermost operator of its loosest kind and what precedes the pair fits, else wrapped
    in brackets; what stands inside the brackets is split again when it does not fit on its line."""
    line = f"{target} = {value}"
    if fits(indent, line) or "#" in value:
        return [indent + line]
    inner = indent + "    "
    if len(_operands(value)) <= 2 and value.endswith(")"):
        depth = 0
        for position in range(len(value) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(value[position], 0)
            if depth == 0:
                break
        head, body = value[:position + 1], value[position + 1:-1]
        if position > 0 and fits(indent, f"{target} = {head}"):
            return [indent + f"{target} = {head}"] + _inside(inner, body) + [indent + ")"]
    return [indent + f"{target} = ("] + _inside(inner, value) + [indent + ")"]
