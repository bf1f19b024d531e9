"""Parse one equation: the text cut into its sides by the grammar (grammars/authors.lark, an
extension of latex.lark), each side read in the document's notation (reader.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import lark
import sympy

from .nodes import Unsupported
from .notation import Notation
from .reader import ELEMENTWISE_FUNCTIONS, AuthorsToIR

GRAMMAR = Path(__file__).resolve().parent.parent / "grammars" / "authors.lark"  # extends latex.lark
MAX_EQUATION_CHARS = 20_000
MAX_NESTING = 40


# ----------------------------------------------------------------------------- parsing
@lru_cache(maxsize=1)
def parser() -> lark.Lark:
    return lark.Lark.open(str(GRAMMAR), parser="lalr", propagate_positions=True, maybe_placeholders=False)


@dataclass
class Side:
    """One side of a (chained) equality: its text, expression and what reading it noticed."""

    text: str
    expr: object = None
    tree: object = None
    warnings: list = field(default_factory=list)
    free: set = field(default_factory=set)
    names: list = field(default_factory=list)   # (position, written) of every cell symbol read
    differentials: list = field(default_factory=list)  # what a dX name was read as the gradient of
    last_step: bool = False  # it writes the last step T


def _nesting(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]":
            depth -= 1
    return best


# How the grammar's terminals read in a message about what was expected.
_TERMINAL_NAMES = {"RBRACE": r"'\}'", "RPAR": "')'", "RSQB": "']'", "__ANON_0": "'}'", "$END": "the end",
                   "EQUAL": "'='", "SCRIPT_ARG": "a sub- or superscript", "LETTER": "a symbol",
                   "FRAC": r"'\frac'", "LPAR": "'('", "NUMBER": "a number"}


def describe_parse_error(exc, text: str) -> str:
    """One line: what was found where, and (for a misplaced token) what was expected there."""
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        snippet = text[exc.pos_in_stream:exc.pos_in_stream + 12]
        return "cannot read '%s' at column %d" % (snippet.split("\n")[0], exc.column)
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        found = "the end of the equation" if exc.token.type == "$END" else "'%s'" % str(exc.token)
        expected = sorted({_TERMINAL_NAMES[t] for t in exc.expected if t in _TERMINAL_NAMES})
        where = "at column %s" % exc.column if exc.token.type != "$END" else ""
        hint = "; expected %s" % " or ".join(expected[:4]) if expected and len(exc.expected) <= 4 else ""
        return " ".join(("unexpected %s" % found, where)).strip() + hint
    if isinstance(exc, lark.exceptions.UnexpectedEOF):
        return "the equation ends too early"
    return "cannot parse the equation"


_MATRIX_ENV = re.compile(r"\\begin\{([bpv]?matrix|Bmatrix|smallmatrix)\}(.{0,2000}?)\\end\{\1\}", re.S)


def _stacked_matrices(text: str) -> str:
    """\\begin{bmatrix} h_{t-1} \\\\ x_t \\end{bmatrix} -> [h_{t-1}; x_t]: a column written as a matrix
    is the author's stacked vector (the grammar ignores \\\\, so the rows are joined here)."""
    def column(match):
        rows = [r.strip() for r in re.split(r"\\\\|&", match.group(2)) if r.strip()]
        return "[%s]" % "; ".join(rows)
    return _MATRIX_ENV.sub(column, text)


_DECORATIONS = re.compile(r"\\(boxed|fbox|bbox(\[[^\]]{0,40}\])?|colorbox\{[^{}]{0,40}\}|textcolor\{[^{}]{0,40}\})\s*\{")


def _unwrapped(text: str) -> str:
    """\\boxed{...} and its kin removed around their content, which may be a whole equation."""
    out, position = [], 0
    for match in _DECORATIONS.finditer(text):
        if match.start() < position:
            continue
        depth, end = 1, match.end()
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0) if text[end - 1] != "\\" else 0
            end += 1
        if depth:
            break
        out.append(text[position:match.start()] + " " + text[match.end():end - 1] + " ")
        position = end
    return "".join(out) + text[position:] if out else text


_TIME_IN_BRACKETS = re.compile(r"(\\[A-Za-z]+)?([A-Za-z}])\s*(\[|\()\s*(t|t\s*[+-]\s*\d+|T)\s*(\]|\))")


def _bracketed_times(text: str) -> str:
    """x[t], h[t-1], \\hat{i}(t): a time written as an index or an argument, as a subscript
    (h_{t-1}); a function's argument (\\sigma(t)) stays as it is."""
    def subscript(match):
        command, last, opening, time, closing = match.groups()
        if command is not None and last != "}" or (opening, closing) not in (("[", "]"), ("(", ")")):
            return match.group(0)
        return "%s%s_{%s}" % (command or "", last, time.replace(" ", ""))
    return _TIME_IN_BRACKETS.sub(subscript, text) if ("[" in text or "(" in text) else text


def sides_of(text: str) -> list:
    """Parse `text` (one equation) into its sides, unread; raise Unsupported with a one-line reason."""
    if len(text) > MAX_EQUATION_CHARS:
        raise Unsupported("the equation is longer than %d characters" % MAX_EQUATION_CHARS)
    if _nesting(text) > MAX_NESTING:
        raise Unsupported("brackets nested deeper than %d levels" % MAX_NESTING)
    text = _bracketed_times(_stacked_matrices(_unwrapped(text)))
    try:
        tree = parser().parse(text)
    except lark.exceptions.LarkError as exc:
        raise Unsupported(describe_parse_error(exc, text)) from None
    sides = []
    for child in tree.children:
        meta = child.meta if isinstance(child, lark.Tree) else child
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        sides.append(Side(text[start:end].strip() if start is not None else text.strip(), tree=child))
    return sides


_WRAPPERS = {"paren", "bracket", "brace", "group", "decorated"}  # (X), [X], \\{X\\}, {X}, \\boxed{X}: X


def spelling(tree):
    """A side's parse without the brackets around its parts: two sides with one spelling write the
    same thing the same way, (∂L/∂h_t) and ∂L/∂h_t alike (dh_t and ∂L/∂h_t are two spellings)."""
    if not isinstance(tree, lark.Tree):
        return tree
    rule = tree.data.rsplit("__", 1)[-1]
    parts = [spelling(c) for c in tree.children]
    inner = [c for c in parts if isinstance(c, lark.Tree)]
    if rule in _WRAPPERS and len(inner) == 1:
        return inner[0]
    return lark.Tree(rule, parts)


_TEXT_WORD = re.compile(r"\\(?:text|textrm)\{\s*([A-Za-z][A-Za-z0-9]*)\s*\}")


def _functions_in_text(text: str, notation: Notation) -> str:
    """\\text{gelu} z: a function of the notation written upright with \\text, as \\mathrm{gelu} (the
    grammar drops a \\text{...} remark, which would leave z alone)."""
    if r"\text" not in text:
        return text
    known = set(ELEMENTWISE_FUNCTIONS) | set(notation.functions)
    return _TEXT_WORD.sub(lambda m: r"\mathrm{%s}" % m.group(1) if m.group(1) in known else m.group(0), text)


def parse_equation(text: str, notation: Notation) -> list:
    """Parse and read one equation in the document's notation: its sides with expressions."""
    sides = sides_of(_functions_in_text(text, notation))
    for side in sides:
        build_side(side, notation)
    return sides


def build_side(side: Side, notation: Notation, flip=frozenset(), reader=None):
    """Transform one side's subtree into side.expr (and its warnings).  Raises Unsupported."""
    transformer = (reader or AuthorsToIR)(notation, flip)
    tree = side.tree
    try:
        if isinstance(tree, lark.Token):
            if tree.type == "LETTER":
                out = transformer.value(transformer.letter([tree]))
            elif tree.type == "GREEK":
                out = transformer.value(transformer.greek([tree]))
            elif tree.type == "NUMBER":
                out = transformer.number([tree])
            else:
                raise Unsupported("cannot read '%s'" % str(tree))
        else:
            out = transformer.value(transformer.transform(tree))
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, Unsupported):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise Unsupported("the expression is nested too deeply") from None
        raise Unsupported("cannot build the expression (%s)" % type(exc.orig_exc).__name__) from None
    except RecursionError:
        raise Unsupported("the expression is nested too deeply") from None
    if not isinstance(out, sympy.Basic):
        raise Unsupported("cannot read the expression")
    side.expr = out
    side.warnings = transformer.warnings
    side.free = transformer.free
    side.names = transformer.names
    side.differentials = transformer.differentials
    side.last_step = transformer.last_step
    return side
