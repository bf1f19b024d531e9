"""Find the equations of a Markdown or LaTeX document, each with the 1-based line it starts on.

Markdown is read as CommonMark (markdown-it-py): display math is ``$$...$$`` (dollarmath),
a bare amsmath environment, a ```` ```math ```` fence, ``\\[...\\]`` or a display environment
in a paragraph; inline math is ``$...$`` and ``\\(...\\)``.  Code, HTML and escaped delimiters
hide nothing.  LaTeX is scanned for the same delimiters outside % comments.  A display block is
cut into rows at ``\\\\`` (layout environments such as aligned are blanks); a row or block that
begins with ``+``, ``-`` or ``=`` continues the previous display equation, which keeps the line
where it started.  Macros (\\newcommand, \\renewcommand, \\def) are expanded within bounds.
Every step takes time linear in the document.  Reading the math is the grammar's job (parse.py).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_block, amsmath_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.dollarmath.index import DOLLAR_EQNO_REV, math_block_dollar, math_inline_dollar

from . import macros

DISPLAY_ENVIRONMENTS = ("equation", "align", "gather", "multline", "eqnarray", "displaymath",
                        "flalign", "alignat")
LAYOUT_ENVIRONMENTS = ("aligned", "split", "gathered", "alignedat", "array", "cases")

_BEGIN = re.compile(r"\\begin\{(%s)(\*?)\}" % "|".join(DISPLAY_ENVIRONMENTS))
_LAYOUT = re.compile(r"\\(begin|end)\{(%s)\*?\}(\{[^{}]*\}|\[[a-z]\])?" % "|".join(LAYOUT_ENVIRONMENTS))
_MATRIX_EDGE = re.compile(r"\\(begin|end)\{([bpvBV]?matrix|smallmatrix)\}")
MATRIX_CHARS = 2000  # a matrix's rows are kept together when it closes within this many characters
_ROW_BREAK = re.compile(r"\\\\(\[[^\]]{0,20}\])?")  # the bound keeps a \\[ without ] from rescanning the row
_LEADING_SPACE = re.compile(r"^(\\q?quad(?![A-Za-z])|\\[,;:! ]|\\hspace\{[^{}]*\}|\s)+")
_BLANKS_AND_ALIGNMENT = re.compile(r"(?:[\s&]|\\label\{[^{}]*\}|\\tag\*?\{[^{}]*\}|\\nonumber|\\notag)*")  # not a row's start
_TEX_SPECIAL = re.compile(r"[$\\]")
_CONTROL_WORD = re.compile(r"\\[A-Za-z]+")


@dataclass
class Equation:
    """One equation: its text (rows joined), the 1-based line it starts on, and whether it sat
    inline in prose (``$...$`` or ``\\(...\\)``) rather than in display math."""

    text: str
    line: int
    inline: bool = False


@dataclass
class _Fragment:
    """What one pair of math delimiters encloses, and the 1-based line of its first character."""

    content: str
    line: int
    inline: bool


class _Lines:
    """1-based line of a character offset (binary search over the line starts)."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


class _Finder:
    """`str.find` that remembers its last answer per needle, so that looking for the closing
    delimiter from every opening one of a text stays linear in the text."""

    def __init__(self, text: str):
        self.text = text
        self.known: dict[str, tuple[int, int]] = {}

    def find(self, needle: str, start: int) -> int:
        found = self.known.get(needle)
        if found is not None and found[1] <= start and (found[0] < 0 or found[0] >= start):
            return found[0]
        at = self.text.find(needle, start)
        self.known[needle] = (at, start)
        return at


# ----------------------------------------------------------------------------- rows
def _strip_trailing(text: str) -> str:
    """text without trailing spacing commands (\\, \\; \\: \\!), blanks and sentence punctuation.

    A backward scan: the regex ``(\\\\[,;:!]|\\s|[.,;:])+$`` it replaces takes quadratic time on a
    row with a long run of blanks in its middle (100 kB of them kept `lstmgen check` busy for minutes)."""
    end = len(text)
    while end:
        if end >= 2 and text[end - 2] == "\\" and text[end - 1] in ",;:!":
            end -= 2
        elif text[end - 1].isspace() or text[end - 1] in ".,;:":
            end -= 1
        else:
            break
    return text[:end]


def _matrices(content: str) -> list[tuple[int, int]]:
    """The spans of the matrix environments of `content`, in order: each \\begin{X} with the
    first \\end{X} after it, within MATRIX_CHARS characters (the ends are found by bisection:
    many openers that never close cost no rescans)."""
    begins, ends = [], {}
    for match in _MATRIX_EDGE.finditer(content):
        if match.group(1) == "begin":
            begins.append(match)
        else:
            ends.setdefault(match.group(2), []).append(match.start())
    spans, after = [], 0
    for begin in begins:
        closing = ends.get(begin.group(2), [])
        index = bisect.bisect_left(closing, begin.end())
        if begin.start() >= after and index < len(closing) and closing[index] - begin.end() <= MATRIX_CHARS:
            after = closing[index] + len("\\end{%s}" % begin.group(2))
            spans.append((begin.start(), after))
    return spans


def _rows(fragment: _Fragment):
    """(line, row) for each row of a fragment, split at \\\\; layout environments become blanks.
    The line is that of the row's first character other than a blank or an alignment &."""
    content = fragment.content
    if "\\" in content:
        content = _LAYOUT.sub(lambda m: " " * len(m.group(0)), content)
    line, counted, start = fragment.line, 0, 0
    matrices = _matrices(content) if "matrix" in content else []
    starts = [a for a, _ in matrices]
    breaks = []
    for match in _ROW_BREAK.finditer(content) if "\\\\" in content else ():
        inside = bisect.bisect_left(starts, match.start()) - 1  # the last matrix opened before it
        if inside < 0 or matrices[inside][1] <= match.start():
            breaks.append(match)  # a matrix's rows are one expression
    for match in [*breaks, None]:
        end = match.start() if match else len(content)
        row = content[start:end]
        first = start + _BLANKS_AND_ALIGNMENT.match(row).end()
        line += content.count("\n", counted, first)
        counted = first
        yield line, row
        start = match.end() if match else end


@dataclass
class _Building:
    """An equation being assembled from its rows (joined once, at the end: repeated string
    concatenation would be quadratic in the number of continuation rows)."""

    line: int
    inline: bool
    parts: list


# A match starts at the separator's punctuation or at the first blank of a run (the lookbehind),
# never inside a run: trying every blank of a long run would rescan it from each (quadratic).
_SEPARATOR = re.compile(r"(?:[,;]|(?<![\s,;]))\s*\\q?quad(?![A-Za-z])\s*|[,;]\s*\\(text|mbox)\{\s*and\s*\}\s*|,\s*&")


def _separate(text: str) -> list[str]:
    """`i_t = \\sigma(a_i), \\quad f_t = \\sigma(a_f)`: several equations in one row, split where a
    \\quad (or ", and", or ", &" between align columns) stands outside every group and each piece
    has its own '='."""
    if "quad" not in text and "and" not in text and "&" not in text:
        return [text]
    cuts, depth, start = [], 0, 0
    for match in _SEPARATOR.finditer(text):
        depth += sum({"{": 1, "}": -1, "(": 1, ")": -1}.get(ch, 0) for ch in text[start:match.start()])
        start = match.start()
        if depth == 0:
            cuts.append(match.span())
    pieces, position = [], 0
    for a, b in cuts:
        pieces.append(text[position:a])
        position = b
    pieces.append(text[position:])
    pieces = [piece.strip() for piece in pieces if piece.strip()]
    return pieces if len(pieces) > 1 and all("=" in piece for piece in pieces) else [text]


def _assemble(fragments: list[_Fragment], defined: dict, with_inline: bool, most: int | None) -> list[Equation]:
    """The equations of the fragments: one per row, except rows that continue the previous one.
    A display row continues the last display equation; an inline row only its own fragment's.
    Past `most` equations (inline ones counted) the rest is left unread: most + 1 are returned."""
    budget = macros.Budget()
    built: list[_Building] = []
    last_display = None
    for fragment in fragments:
        previous = None if fragment.inline else last_display
        for line, row in _rows(fragment):
            if most is not None and len(built) > most:
                return [Equation(" ".join(b.parts), b.line, b.inline) for b in built]
            expanded = macros.expand(row, defined, budget)
            pieces = [_strip_trailing(piece.replace("&", " ").strip()) for piece in _separate(expanded)]
            for index, text in enumerate(p for p in pieces if p):
                unspaced = _LEADING_SPACE.sub("", text)
                if index == 0 and unspaced[:1] in ("+", "-", "=") and previous is not None:
                    previous.parts.append(unspaced)
                    continue
                previous = _Building(line, fragment.inline, [text])
                built.append(previous)
        if not fragment.inline:
            last_display = previous
    return [Equation(" ".join(b.parts), b.line, b.inline) for b in built if with_inline or not b.inline]


# ----------------------------------------------------------------------------- LaTeX
def _strip_tex_comments(text: str) -> str:
    """Blank out % comments (keeping offsets, so line numbers stay right)."""
    return re.sub(r"(?<!\\)%[^\n]*", lambda m: " " * len(m.group(0)), text)


def _display_opener(text: str, at: int) -> tuple[int, str] | None:
    """(where the content starts, the closing delimiter) when display math opens at `at`."""
    if text.startswith("$$", at):
        return at + 2, "$$"
    if text.startswith("\\[", at):
        return at + 2, "\\]"
    match = _BEGIN.match(text, at)
    if match:
        return match.end(), "\\end{%s%s}" % (match.group(1), match.group(2))
    return None


def _inline_dollar_end(text: str, find, at: int) -> int:
    """Where the inline math opened by the $ at `at` closes, or -1 for a lone dollar ("$5"):
    inline math neither crosses a blank line nor closes on $$."""
    end = find("$", at + 1)
    if end < 0 or text.startswith("$$", end):
        return -1
    paragraph = find("\n\n", at + 1)
    return -1 if 0 <= paragraph < end else end


def _latex_math(text: str) -> tuple[list[_Fragment], list[int]]:
    """The math fragments of a LaTeX document (comments already blank), and the lines of display
    blocks that never close (the first one ends the scan: it swallows the rest)."""
    find = _Finder(text).find
    line_of = _Lines(text)
    fragments, unclosed = [], []
    at = 0
    while (special := _TEX_SPECIAL.search(text, at)) is not None:
        at = special.start()
        display = _display_opener(text, at)
        if display:
            start, closing = display
            end = find(closing, start)
            if end < 0:
                unclosed.append(line_of(start))
                break
            fragments.append(_Fragment(text[start:end], line_of(start), False))
            at = end + len(closing)
        elif text.startswith("\\(", at):
            end = find("\\)", at + 2)
            if end >= 0:
                fragments.append(_Fragment(text[at + 2:end], line_of(at + 2), True))
            at = end + 2 if end >= 0 else at + 2
        elif text[at] == "$":
            end = _inline_dollar_end(text, find, at)
            if end >= 0:
                fragments.append(_Fragment(text[at + 1:end], line_of(at + 1), True))
            at = end + 1 if end >= 0 else at + 1
        else:  # a control sequence: \$ and \\[ open nothing
            word = _CONTROL_WORD.match(text, at)
            at = word.end() if word else at + 2
    return fragments, unclosed


# ----------------------------------------------------------------------------- Markdown
_PLAIN = re.compile(r"(?:[^$\\`<]+|\\(?!begin\{)[^(\[]|<(?![\w.!#$%&'*+/=?^`{|}~-]))+")
_ANY_BEGIN = re.compile(r"\\begin\{([A-Za-z]+\*?)\}")
_END_OF_ENVIRONMENT = re.compile(r"\\end\{([A-Za-z]+\*?)\}\s*$")
_AMSMATH_ALT = ["paragraph", "reference", "blockquote", "list", "footnote_def"]
_INLINE_MATH_TOKENS = {"math_inline": True, "math_inline_double": False,
                       "math_tex_inline": True, "math_tex_display": False}


class _ClosingLines:
    """The 0-based lines on which a $$ block or an amsmath environment can close, found once, so
    that a block opener without a closing line is refused at once instead of scanning to the end
    of the document (which made many such openers quadratic)."""

    def __init__(self, text: str):
        self.dollars: list[int] = []
        self.environments: dict[str, list[int]] = {}
        for number, line in enumerate(text.split("\n")):
            if "$$" in line:
                tail = line.rstrip()
                if tail.endswith("$$") or DOLLAR_EQNO_REV.match(tail[::-1]):
                    self.dollars.append(number)
            if "\\end{" in line:
                ending = _END_OF_ENVIRONMENT.search(line)
                if ending:
                    self.environments.setdefault(ending.group(1), []).append(number)

    @staticmethod
    def any_between(lines: list[int], first: int, stop: int) -> bool:
        index = bisect.bisect_left(lines, first)
        return index < len(lines) and lines[index] < stop


def _dollar_block_if_closed(rule):
    """dollarmath's $$ block rule, tried only when the block closes on its opening line or on a
    later line of its container."""
    def dollar_block(state, start_line, end_line, silent):
        start = state.bMarks[start_line] + state.tShift[start_line]
        if not state.src.startswith("$$", start):
            return False
        opening = state.src[start:state.eMarks[start_line]].strip()
        closes_here = len(opening) > 3 and (opening.endswith("$$") or DOLLAR_EQNO_REV.match(opening[::-1]))
        closings = state.env["closing_lines"]
        if not closes_here and not closings.any_between(closings.dollars, start_line + 1, end_line):
            return False
        return rule(state, start_line, end_line, silent)
    return dollar_block


def _amsmath_if_ended(state, start_line, end_line, silent):
    """amsmath's environment rule, tried only when the environment ends inside its container."""
    start = state.bMarks[start_line] + state.tShift[start_line]
    if not state.src.startswith("\\begin{", start):
        return False
    opening = _ANY_BEGIN.match(state.src, start)
    closings = state.env["closing_lines"]
    ends = closings.environments.get(opening.group(1), []) if opening else []
    if not closings.any_between(ends, start_line, end_line):
        return False
    return amsmath_block(state, start_line, end_line, silent)


def _noting_offset(rule):
    """An inline math rule that also records where its content starts in the inline source."""
    def math_with_offset(state, silent):
        start = state.pos
        if not rule(state, silent):
            return False
        if not silent:
            token = state.tokens[-1]
            token.meta["content_offset"] = start + len(token.markup)
        return True
    return math_with_offset


def _plain_text(state, silent):
    """The text rule, skipping everything that cannot start math, a code span, HTML or an
    autolink; an escaped character is plain.  (The stock rule stops at every punctuation mark,
    which made documents dense in them slow.)"""
    match = _PLAIN.match(state.src, state.pos, state.posMax)
    if not match:
        return False
    if not silent:
        state.append_pending(match.group())
    state.pos = match.end()
    return True


def _push_math(state, kind: str, content: str, content_offset: int):
    token = state.push(kind, "math", 0)
    token.content = content
    token.meta["content_offset"] = content_offset


def _unmatched_dollars(state, silent):
    """A dollar that dollarmath did not pair: $$ opens a display block that never closes, $ is text."""
    pos = state.pos
    if state.src[pos] != "$":
        return False
    if state.src.startswith("$$", pos):
        if not silent:
            _push_math(state, "math_unclosed", "", pos)
        state.pos = pos + 2
        return True
    if not silent:
        state.append_pending("$")
    state.pos = pos + 1
    return True


def _finder_for(state) -> _Finder:
    """The finder of this inline source (kept in the parse's env, one per source)."""
    finders = state.env["finders"]
    finder = finders.get(id(state.src))
    if finder is None or finder.text is not state.src:
        finder = finders[id(state.src)] = _Finder(state.src)
    return finder


def _backslash_opener(src: str, pos: int) -> tuple[int, str, bool] | None:
    """(where the content starts, the closing delimiter, inline?) when \\(, \\[ or a display
    environment opens at `pos`."""
    if not src.startswith("\\", pos):
        return None
    if src.startswith("\\(", pos):
        return pos + 2, "\\)", True
    display = _display_opener(src, pos)
    return None if display is None else (*display, False)


def _backslash_math(state, silent):
    """\\(...\\), \\[...\\] and display environments inside a paragraph.  An unclosed \\( is
    text; an unclosed display opener is reported as never closing."""
    src, pos = state.src, state.pos
    opener = _backslash_opener(src, pos)
    if opener is None:
        return False
    start, closing, inline = opener
    end = _finder_for(state).find(closing, start)
    if 0 <= end and end + len(closing) <= state.posMax:
        if not silent:
            _push_math(state, "math_tex_inline" if inline else "math_tex_display", src[start:end], start)
        state.pos = end + len(closing)
    else:
        if not silent and inline:
            state.append_pending(src[pos:start])
        elif not silent:
            _push_math(state, "math_unclosed", "", pos)
        state.pos = start
    return True


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    """CommonMark with tables, dollar math, amsmath environments and TeX delimiters.  Inline $
    follows pandoc's rule (no blank just inside a dollar, no digit just outside), so prices are
    prose.  Emphasis, links, images, entities and soft breaks are off: they never hide math, and
    their rules made documents dense in punctuation slow."""
    md = MarkdownIt("commonmark").enable("table")
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True)
    md.use(amsmath_plugin)
    md.block.ruler.at("math_block", _dollar_block_if_closed(math_block_dollar(allow_blank_lines=True)))
    md.block.ruler.at("amsmath", _amsmath_if_ended, {"alt": _AMSMATH_ALT})
    md.inline.ruler.at("text", _plain_text)
    md.inline.ruler.at("math_inline", _noting_offset(
        math_inline_dollar(allow_space=False, allow_digits=False, allow_double=True)))
    md.inline.ruler.after("math_inline", "unmatched_dollars", _unmatched_dollars)
    md.inline.ruler.before("escape", "backslash_math", _backslash_math)
    md.disable(["newline", "emphasis", "link", "image", "entity"])
    return md


def _environment_fragment(content: str, line: int) -> list[_Fragment]:
    """The body of an amsmath block (``\\begin{env}...\\end{env}``), if env is display math."""
    opening = _BEGIN.match(content)
    if not opening:
        return []
    end = content.rfind("\\end{%s%s}" % (opening.group(1), opening.group(2)))
    return [_Fragment(content[opening.end():end], line, False)] if end >= 0 else []


def _inline_fragments(token, fragments: list[_Fragment], unclosed: list[int]):
    """The math inside one inline token (a paragraph, heading or table cell)."""
    line_of = None
    for child in token.children or ():
        if child.type not in _INLINE_MATH_TOKENS and child.type != "math_unclosed":
            continue
        line_of = line_of or _Lines(token.content)
        line = token.map[0] + line_of(child.meta["content_offset"])
        if child.type == "math_unclosed":
            unclosed.append(line)
        else:
            fragments.append(_Fragment(child.content, line, _INLINE_MATH_TOKENS[child.type]))


def _markdown_math(text: str) -> tuple[list[_Fragment], list[int]]:
    """The math fragments of a Markdown document, and the lines of display blocks that never close."""
    env = {"closing_lines": _ClosingLines(text), "finders": {}}
    fragments, unclosed = [], []
    for token in _markdown().parse(text, env):
        if token.type in ("math_block", "math_block_label"):
            fragments.append(_Fragment(token.content, token.map[0] + 1, False))
        elif token.type == "amsmath":
            fragments += _environment_fragment(token.content, token.map[0] + 1)
        elif token.type == "fence" and token.info.split()[:1] == ["math"]:
            fragments.append(_Fragment(token.content, token.map[0] + 2, False))
        elif token.type == "inline" and token.map is not None:
            _inline_fragments(token, fragments, unclosed)
    return fragments, unclosed


# ----------------------------------------------------------------------------- entry point
def equations(text: str, tex: bool = False, inline: bool = False,
              most: int | None = None) -> tuple[list[Equation], list[int]]:
    """The display equations of a document (with `inline`, also its inline math, marked
    `Equation.inline`), in document order, and the lines of display blocks that never close.
    With `most`, reading stops once there are more than that many (a document its reader refuses)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if tex:
        source = _strip_tex_comments(text)
        defined, spans = macros.definitions(source)
        fragments, unclosed = _latex_math(macros.blanked(source, spans))
    else:
        fragments, unclosed = _markdown_math(text)
        defined = {}
        for fragment in (f for f in fragments if "\\" in f.content):
            found, spans = macros.definitions(fragment.content)
            defined.update(found)
            fragment.content = macros.blanked(fragment.content, spans)
    return _assemble(fragments, defined, inline, most), unclosed
