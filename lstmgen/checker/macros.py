"""TeX macros a document defines (\\newcommand, \\renewcommand, \\providecommand, \\def), read
and expanded inside its equations, within bounds: an equation whose expansion would exceed them
(or that lacks an argument) is left as written, and the grammar reports it unrecognized."""
from __future__ import annotations

import re
from dataclasses import dataclass

MAX_EXPANSIONS = 10_000                # macro expansions in one equation
MAX_EXPANDED_CHARS = 50_000            # characters the expansions of one equation insert
MAX_DOCUMENT_EXPANSIONS = 100_000      # and in the whole document, so that many equations stay cheap
MAX_DOCUMENT_EXPANDED_CHARS = 5_000_000


@dataclass(frozen=True)
class Macro:
    """A defined macro: its parameter count, its optional first argument's default, its body tokens."""

    parameters: int
    default: tuple[str, ...] | None
    body: tuple[str, ...]


class _CannotExpand(Exception):
    """An equation whose macros cannot be expanded within the bounds (or lack an argument)."""


_DEFINITION_HEAD = re.compile(r"\\(?:(?:re)?newcommand|providecommand|def)(?![A-Za-z])")
_MACRO_NAME = r"\\(?:[A-Za-z]+|[^A-Za-z\s])"
_NEWCOMMAND_TAIL = re.compile(r"\*?\s*(?:\{\s*(%s)\s*\}|(%s))\s*(?:\[\s*([1-9])\s*\]\s*(?:\[([^\]]{0,200})\]\s*)?)?\{"
                              % (_MACRO_NAME, _MACRO_NAME))
_DEF_TAIL = re.compile(r"\s*(%s)((?:#[1-9])*)\s*\{" % _MACRO_NAME)
_BRACE = re.compile(r"\\[\\{}]|[{}]")
_TEX_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|#[1-9]|[{}\[\]]|\s+|[^\\{}\[\]#\s]+|[#\\]", re.S)


def _group_end(text: str, opening: int) -> int:
    """The offset just past the } that closes the { at `opening`, or -1."""
    depth = 0
    for match in _BRACE.finditer(text, opening):
        if match.group() == "{":
            depth += 1
        elif match.group() == "}":
            depth -= 1
            if depth == 0:
                return match.end()
    return -1


def _definition_at(text: str, head) -> tuple[str, int, tuple[str, ...] | None, int] | None:
    """(name, parameter count, default of the optional first argument, where the body's { is)
    of the definition command matched by `head`, or None when what follows is not one."""
    if head.group() == "\\def":
        tail = _DEF_TAIL.match(text, head.end())
        parameters = len(tail.group(2)) // 2 if tail else 0
        if not tail or tail.group(2) != "".join("#%d" % k for k in range(1, parameters + 1)):
            return None
        return tail.group(1), parameters, None, tail.end() - 1
    tail = _NEWCOMMAND_TAIL.match(text, head.end())
    if not tail:
        return None
    default = None if tail.group(4) is None else tuple(_TEX_TOKEN.findall(tail.group(4)))
    return tail.group(1) or tail.group(2), int(tail.group(3) or 0), default, tail.end() - 1


def definitions(text: str) -> tuple[dict[str, Macro], list[tuple[int, int]]]:
    """The macros `text` defines (the last definition of a name wins, \\providecommand never
    replaces one), and the spans of their definitions.  A definition inside another's body is
    part of that body; an unclosed body swallows the rest of the text, as in TeX."""
    macros: dict[str, Macro] = {}
    spans = []
    scanned = 0
    for head in _DEFINITION_HEAD.finditer(text):
        if head.start() < scanned:
            continue
        found = _definition_at(text, head)
        if found is None:
            continue
        name, parameters, default, opening = found
        end = _group_end(text, opening)
        if end < 0:
            break
        if head.group() != "\\providecommand" or name not in macros:
            macros[name] = Macro(parameters, default, tuple(_TEX_TOKEN.findall(text[opening + 1:end - 1])))
        spans.append((head.start(), end))
        scanned = end
    return macros, spans


def blanked(text: str, spans: list[tuple[int, int]]) -> str:
    """text with the spans replaced by blanks (newlines kept, so line numbers stay right)."""
    pieces, done = [], 0
    for start, end in spans:
        pieces += [text[done:start], re.sub(r"[^\n]", " ", text[start:end])]
        done = end
    return "".join(pieces) + text[done:]


class Budget:
    """The expansions and inserted characters the whole document may still spend."""

    def __init__(self):
        self.expansions = MAX_DOCUMENT_EXPANSIONS
        self.chars = MAX_DOCUMENT_EXPANDED_CHARS

    def limits(self) -> tuple[int, int]:
        """(expansions, inserted characters) one more equation may spend."""
        return min(MAX_EXPANSIONS, self.expansions), min(MAX_EXPANDED_CHARS, self.chars)

    def spend(self, expansions: int, chars: int):
        self.expansions -= expansions
        self.chars -= chars


def _skip_blanks(pending: list[str]):
    while pending and pending[-1].isspace():
        pending.pop()


def _argument(pending: list[str]) -> list[str]:
    """The next undelimited argument (the next stack entry is the next token): a brace group's
    tokens, or one token (one character of a run of text)."""
    _skip_blanks(pending)
    if not pending or pending[-1] == "}":
        raise _CannotExpand
    token = pending.pop()
    if token == "{":
        return _until(pending, "}")
    if len(token) > 1 and token[0] not in "\\#":
        pending.append(token[1:])
        return [token[0]]
    return [token]


def _until(pending: list[str], closing: str) -> list[str]:
    """The tokens before the next `closing` at brace depth 0; that one is consumed too."""
    depth, group = 0, []
    while pending:
        token = pending.pop()
        if token == closing and depth == 0:
            return group
        depth += (token == "{") - (token == "}")
        if depth < 0:
            break
        group.append(token)
    raise _CannotExpand


def _arguments(pending: list[str], macro: Macro) -> list[list[str]]:
    """The macro's arguments, taken from the pending tokens: an optional [first] one (else its
    default), then undelimited ones."""
    arguments = []
    if macro.default is not None:
        _skip_blanks(pending)
        if pending and pending[-1] == "[":
            pending.pop()
            arguments.append(_until(pending, "]"))
        else:
            arguments.append(list(macro.default))
    while len(arguments) < macro.parameters:
        arguments.append(_argument(pending))
    return arguments


def _substituted(body: tuple[str, ...], arguments: list[list[str]], room: int) -> list[str]:
    """The body with #1..#9 replaced by the arguments; _CannotExpand past `room` characters."""
    sizes = [sum(map(len, argument)) for argument in arguments]
    out, used = [], 0
    for token in body:
        index = int(token[1]) - 1 if len(token) == 2 and token[0] == "#" else -1
        if 0 <= index < len(arguments):
            out += arguments[index]
            used += sizes[index]
        else:
            out.append(token)
            used += len(token)
        if used > room:
            raise _CannotExpand
    return out


def _joined(tokens: list[str]) -> str:
    """The tokens as text, with a blank where a control word would otherwise run into a letter."""
    pieces, previous = [], ""
    for token in tokens:
        if token[:1].isalpha() and previous[:1] == "\\" and previous[1:2].isalpha():
            pieces.append(" ")
        pieces.append(token)
        previous = token
    return "".join(pieces)


def expand(text: str, macros: dict[str, Macro], budget: Budget) -> str:
    """text with its macros expanded; unchanged when that would exceed the bounds (or a macro
    lacks an argument): the grammar then reports the equation unrecognized."""
    if not macros or "\\" not in text:
        return text
    pending = _TEX_TOKEN.findall(text)
    if not any(token in macros for token in pending):
        return text
    pending.reverse()
    most_expansions, room = budget.limits()
    out, expansions, inserted = [], 0, 0
    try:
        while pending:
            token = pending.pop()
            macro = macros.get(token)
            if macro is None:
                out.append(token)
                continue
            expansions += 1
            if expansions > most_expansions:
                raise _CannotExpand
            body = _substituted(macro.body, _arguments(pending, macro), room - inserted)
            inserted += sum(map(len, body))
            pending += reversed(body)
    except _CannotExpand:
        return text
    finally:
        budget.spend(expansions, inserted)
    return _joined(out)


