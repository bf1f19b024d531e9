"""Line layout of the generated code: long signatures, calls and assignments split as ruff format splits
them, so that `ruff format --check` passes on every generated module.  Kept by hand (a few rules on
bracketed lists) instead of calling a formatter at build time: the build then needs no formatter
installed, and the test suite checks the result against the real one.
"""
from __future__ import annotations

LINE_LENGTH = 120  # ruff's line-length for the generated code (pyproject.toml)


def fits(indent: str, text: str) -> bool:
    return len(indent) + len(text) <= LINE_LENGTH


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


def statement(indent: str, target: str, value: str) -> list[str]:
    """target = value; a long value split inside its last bracket pair (or wrapped in one), as ruff does."""
    line = f"{target} = {value}"
    if fits(indent, line) or "#" in value:
        return [indent + line]
    inner = indent + "    "
    if value.endswith(")"):
        depth = 0
        for position in range(len(value) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(value[position], 0)
            if depth == 0:
                break
        head, body = value[:position + 1], value[position + 1:-1]
        if position > 0 and fits(indent, f"{target} = {head}") and fits(inner, body):
            return [indent + f"{target} = {head}", inner + body, indent + ")"]
    if fits(inner, value):
        return [indent + f"{target} = (", inner + value, indent + ")"]
    return [indent + line]
