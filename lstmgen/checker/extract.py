"""Find the display equations of a Markdown or LaTeX document, with the line each starts on.

Display math is ``$$...$$``, ``\\[...\\]`` and the environments equation, align, gather,
multline, eqnarray, displaymath (starred or not); ``aligned``/``split`` inside them are layout.
Rows (split at ``\\\\``) and blocks that begin with ``+``, ``-`` or ``=`` continue the
previous equation, which keeps the line where it started.  Inline ``$...$`` math is prose.
Markdown code fences and LaTeX comments are skipped.  This module only cuts text; reading
the math is the grammar's job (`parse.py`).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

DISPLAY_ENVIRONMENTS = ("equation", "align", "gather", "multline", "eqnarray", "displaymath",
                        "flalign", "alignat")
LAYOUT_ENVIRONMENTS = ("aligned", "split", "gathered", "alignedat", "array", "cases")
_BEGIN = re.compile(r"\\begin\{(%s)(\*?)\}" % "|".join(DISPLAY_ENVIRONMENTS))
_LAYOUT = re.compile(r"\\(begin|end)\{(%s)\*?\}(\{[^{}]*\}|\[[a-z]\])?" % "|".join(LAYOUT_ENVIRONMENTS))
_ROW_BREAK = re.compile(r"\\\\(\[[^\]]*\])?")
_LEADING_SPACE = re.compile(r"^(\\q?quad(?![A-Za-z])|\\[,;:! ]|\\hspace\{[^{}]*\}|\s)+")


@dataclass
class Equation:
    """One equation: its text (rows joined), the 1-based line it starts on."""

    text: str
    line: int


class _Lines:
    """1-based line of a character offset (binary search over the line starts)."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


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


def _strip_tex_comments(text: str) -> str:
    """Blank out % comments (keeping offsets, so line numbers stay right)."""
    return re.sub(r"(?<!\\)%[^\n]*", lambda m: " " * len(m.group(0)), text)


def _blank_code_fences(text: str) -> str:
    out, inside = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            inside = not inside
            out.append(" " * len(line))
        else:
            out.append(" " * len(line) if inside else line)
    return "\n".join(out)


def display_blocks(text: str, tex: bool) -> list[tuple[int, str]]:
    """(offset of the content, content) of every display-math block, in document order."""
    text = _strip_tex_comments(text) if tex else _blank_code_fences(text)
    blocks = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and text.startswith("\\$", i):
            i += 2
            continue
        if text.startswith("$$", i):
            end = text.find("$$", i + 2)
            if end < 0:
                blocks.append((i + 2, None))  # unterminated: reported by the caller
                break
            blocks.append((i + 2, text[i + 2:end]))
            i = end + 2
            continue
        if ch == "$":  # inline math: prose for the checker
            end = text.find("$", i + 1)
            paragraph = text.find("\n\n", i + 1)
            if end < 0 or text.startswith("$$", end) or 0 <= paragraph < end:
                i += 1  # a lone dollar ("$5"): inline math neither crosses a paragraph nor opens on $$
            else:
                i = end + 1
            continue
        if text.startswith("\\[", i):
            end = text.find("\\]", i + 2)
            if end < 0:
                blocks.append((i + 2, None))
                break
            blocks.append((i + 2, text[i + 2:end]))
            i = end + 2
            continue
        if ch == "\\" and text.startswith("\\begin{", i):
            match = _BEGIN.match(text, i)
            if match:
                closing = "\\end{%s%s}" % (match.group(1), match.group(2))
                end = text.find(closing, match.end())
                if end < 0:
                    blocks.append((match.end(), None))
                    break
                blocks.append((match.end(), text[match.end():end]))
                i = end + len(closing)
                continue
        i += 1
    return blocks


def _rows(content: str, offset: int) -> list[tuple[int, str]]:
    """Split a block at \\\\ into (offset, row text); layout environments become blanks."""
    content = _LAYOUT.sub(lambda m: " " * len(m.group(0)), content)
    rows, start = [], 0
    for match in _ROW_BREAK.finditer(content):
        rows.append((offset + start, content[start:match.start()]))
        start = match.end()
    rows.append((offset + start, content[start:]))
    return rows


def equations(text: str, tex: bool = False) -> tuple[list[Equation], list[int]]:
    """The equations of a document, and the lines of display blocks that never close."""
    found: list[Equation] = []
    unterminated = []
    _line_of = _Lines(text)
    for offset, content in display_blocks(text, tex):
        if content is None:
            unterminated.append(_line_of(offset))
            continue
        for row_offset, row in _rows(content, offset):
            body = row.replace("&", " ")
            stripped = body.strip()
            if not stripped:
                continue
            lead = len(body) - len(body.lstrip())
            line = _line_of(row_offset + len(row) - len(row.lstrip()) if row.strip() else row_offset + lead)
            stripped = _strip_trailing(stripped)
            if not stripped:
                continue
            if _LEADING_SPACE.sub("", stripped)[:1] in ("+", "-", "=") and found:
                stripped = _LEADING_SPACE.sub("", stripped)
                found[-1].text += " " + stripped
                continue
            found.append(Equation(stripped, line))
    return found, unterminated
