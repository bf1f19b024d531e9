"""A document's notation: which cell it is about and how its author writes that cell's symbols.

One `Notation` is built per document (by `learn.notation_of`) and handed to every later stage:
the reader resolves written names through `Notation.meaning`, the judge asks it for the cell and
the layout, the printers for the author's letters, product sign and time style.  Nothing here
knows derivatives; it only maps written symbols onto the cell's quantities.

A written name is split into a *key* and a *time*: ``\\Gamma_f^{\\langle t-1 \\rangle}`` has the
key ``\\Gamma_f`` and the time ``t-1``; ``h_{t-1}`` the key ``h``; ``W_x^f`` the key ``W_x^f`` and
no time.  Keys map to a `Meaning`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from .. import symbols
from ..cells import VECTOR_FONTS, Cell
from ..functions import UserFunction, sigmoid

# ----------------------------------------------------------------------------- time scripts
# t, t-1, t+1, 0, 3, T, and the same in (..) or <..> / \langle..\rangle; prev / next (CS231n names).
_TIME_CORE = r"t|t[+-]\d+|\d+|T|T[+-]\d+"
_TIME_PLAIN = re.compile(r"^(%s)$" % _TIME_CORE)
_TIME_WRAPPED = re.compile(r"^(?:\((%s)\)|<(%s)>|\\langle(%s)\\rangle)$" % (_TIME_CORE, _TIME_CORE, _TIME_CORE))
_BARE_SUPERSCRIPT_TIME = re.compile(r"^(t|t[+-]\d+)$")
_TIME_WORDS = {"prev": "t-1", "next": "t", "new": "t", "old": "t-1"}


def script_text(text: str) -> str:
    """A script without its outer braces and blanks: '{ t-1 }' -> 't-1'."""
    text = re.sub(r"\s+", "", str(text))
    while text.startswith("{") and text.endswith("}") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def time_of(script: str, superscript: bool, bare_superscripts: bool = False) -> str | None:
    """The time a script states ('t', 't-1', '0', 'T'), or None when it is not a time.

    A bare t is a time only as a subscript; as a superscript it must be wrapped, (t) or <t>,
    so that x_t^T keeps its transpose and W^f its gate -- unless the document writes its times
    as bare superscripts (h^{t-1}, `bare_superscripts`), where only a lowercase t is a time."""
    text = script_text(script)
    wrapped = _TIME_WRAPPED.match(text)
    if wrapped:
        return next(g for g in wrapped.groups() if g)
    if superscript:
        return text if bare_superscripts and _BARE_SUPERSCRIPT_TIME.match(text) else None
    if _TIME_PLAIN.match(text):
        return text
    return _TIME_WORDS.get(text)


# ----------------------------------------------------------------------------- meanings
@dataclass(frozen=True)
class Meaning:
    """What a written key stands for.

    kind:  vector    a vector quantity of the cell (needs a time), `name` the cell's name
           parameter a parameter of the cell, `name`
           blocks    a matrix the author applies to a stacked vector: the cell's parameters
                     `parts` side by side (W_f [h_{t-1}, x_t] -> [W_h^f  W_x^f])
           loss      the scalar loss (L, J, E, \\mathcal{L}); with a time, the loss term of a step
           defined   a name the document defines (\\delta_o^{(t)} = ...); `name` is its key
    """

    kind: str
    name: str = ""
    parts: tuple = ()
    role: str = ""


LOSS_LETTERS = ("L", r"\mathcal{L}", "J", r"\mathcal{J}", "E", r"\mathcal{E}", r"\ell", r"\mathcal{C}", r"\mathcal{O}")


@dataclass(eq=False)
class Notation:
    """How one document writes one cell (see the module docstring).

    cell      the Cell the backward equations are judged against
    origin    'learned' (from the document's forward equations), 'option' (--cell) or 'default'
    lines     first and last line of the forward equations it was learned from
    names     written key -> Meaning
    layout    'column' (W x, the seed) or 'row' (x W)
    star      'elementwise' or 'matrix': what `*` between a matrix and a vector means
    hadamard  the author's elementwise sign, for printing: '*', 'odot' or 'circ'
    time      how the author writes a time index: 'sub' (h_{t-1}), 'paren' (h^{(t-1)}), 'angle'
    loss      the author's loss symbol, for printing
    definitions  key of a name the document defines -> its (written) expression at t
    notes     what was assumed, for the report
    """

    cell: Cell
    origin: str = "default"
    lines: tuple = ()
    names: dict = field(default_factory=dict)
    layout: str = "column"
    star: str = "elementwise"
    hadamard: str = "*"
    transpose: str = "T"
    time: str = "sub"
    loss: str = "L"
    differential: str = r"\partial"
    definitions: dict = field(default_factory=dict)
    implicit: set = field(default_factory=set)   # defined names read from their form alone (ε_C: ∂J/∂C_t)
    readings: dict = field(default_factory=dict)  # a family of defined names (δ) -> 'preactivation' or 'value'
    notes: list = field(default_factory=list)
    aliases: dict = field(default_factory=dict)  # other spellings of the cell's names (W_f^h for a block of W_f)
    forward: tuple = ()  # lines of the forward equations the cell was learned from
    bare_superscripts: bool = False  # times written as bare superscripts: h^{t-1}
    inlined: dict = field(default_factory=dict)  # cell names the author never wrote -> their expressions
    untimed: frozenset = frozenset()  # vectors the forward equations write without a time (f for f_t)
    # cell name -> how the author writes it, where that is not the cell's own LaTeX (a document read in
    # its own notation against the cell given with --cell: Gamma_f for the lstm's f)
    written_forms: dict = field(default_factory=dict)
    given: str = ""  # learned, and proven the cell given with --cell once its named pre-activations are put back

    # ---- building ------------------------------------------------------------------------
    @classmethod
    def for_cell(cls, cell: Cell, origin: str = "default") -> "Notation":
        """The project's own notation for `cell`: its LaTeX forms (W_x^f, \\tilde{c}_t, L)."""
        notation = cls(cell, origin)
        for q in cell.quantities.values():
            if q.is_parameter:
                for form in parameter_forms(q.name):
                    notation.names.setdefault(form, Meaning("parameter", q.name))
            else:
                notation.names[normal_key(q.latex)] = Meaning("vector", q.name)
        # a vector also by its cell-file name (g_t for \tilde{c}_t: `lstmgen derive --names plain`),
        # unless that is another quantity's form
        for q in cell.quantities.values():
            if not q.is_parameter:
                notation.names.setdefault(normal_key(symbols.latex_name(q.name)), Meaning("vector", q.name))
        return notation

    @property
    def functions(self) -> dict:
        """The cell's own functions by name (a cell file's gelu), for the reader."""
        return {type(f).__name__: type(f) for eq in self.cell.equations for f in eq.rhs.atoms(UserFunction)}

    def meaning(self, key: str) -> Meaning | None:
        """The meaning of a written key; None when the notation has no such symbol."""
        if key in self.names:
            return self.names[key]
        if key in self.aliases:
            return self.aliases[key]
        if key in self.definitions:
            return Meaning("defined", key)
        if key in LOSS_LETTERS and key not in self.names:
            return Meaning("loss")
        return None

    def written(self, name: str) -> str:
        """How the author writes the cell quantity `name` (its LaTeX base)."""
        if name in self.written_forms:
            return self.written_forms[name]
        q = self.cell.quantities.get(name)
        return q.latex if q is not None else name

    def folded(self, key: str) -> tuple[str, Meaning] | None:
        """(key as the notation writes it, meaning) for a key that differs only in case (C_t for c_t)."""
        lower = key.lower()
        for known, meaning in list(self.names.items()) + list(self.aliases.items()):
            if known.lower() == lower:
                return known, meaning
        return None

    def known_symbols(self) -> list[str]:
        """The written keys of the cell's parameters, for messages ('it has W_x^f, W_h^f, b^f')."""
        seen, out = set(), []
        for key, meaning in self.names.items():
            if meaning.kind in ("parameter", "blocks") and meaning.name not in seen:
                seen.add(meaning.name)
                out.append(key)
        return out

    # ---- printing the author's notation ----------------------------------------------------
    def with_time(self, latex: str, time: str) -> str:
        """A base LaTeX form at a time index, in the author's style: c_{t-1}, c^{(t-1)}, c^{\\langle t-1 \\rangle}."""
        if self.time == "paren":
            return "%s^{(%s)}" % (latex, time)
        if self.time == "sup":
            return "%s^{%s}" % (latex, time)
        if self.time == "angle":
            return r"%s^{\langle %s \rangle}" % (latex, time)
        return symbols.with_time(latex, time)

    # ---- the report ------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: which cell, where it came from, how its parts are written."""
        where = {"learned": "learned from %s" % _lines(self.lines) + (
                     " (the %s cell given with --cell, its pre-activations named)" % self.given if self.given else ""),
                 "option": "%s, given with --cell" % self.cell.name,
                 "default": "%s, assumed: the document states no forward equations (state them, or pass "
                            "--cell)" % self.cell.name}[self.origin]
        return "cell: %s: %s" % (where, self.summary())

    def summary(self) -> str:
        """'LSTM, input [h_{t-1}, x_t] concatenated, gates Γ_f Γ_u Γ_o, candidate c̃'-like text."""
        parts = [self.kind()]
        blocks = [m for m in self.names.values() if m.kind == "blocks"]
        if blocks:
            parts.append("weights on stacked vectors")
        roles = self.roles()
        gates = [k for k, r in roles.items() if r.endswith("gate")]
        if gates:
            parts.append("gates " + " ".join(gates))
        candidate = [k for k, r in roles.items() if r == "candidate"]
        if candidate:
            parts.append("candidate " + candidate[0])
        parts.append("%s layout" % self.layout)
        return ", ".join(parts)

    def kind(self) -> str:
        """A name for the structure the cell has (LSTM, GRU, ...), else its title."""
        return self.cell.title if self.origin != "learned" else structure_name(self.cell)

    def roles(self) -> dict:
        """written key -> the part of the cell it names (input gate, hidden state, ...)."""
        cell_roles = roles_of(self.cell)
        out = {}
        for key, meaning in self.names.items():
            if meaning.kind == "vector" and meaning.name in cell_roles and meaning.name not in out.values():
                out[key] = cell_roles[meaning.name]
        return out

    def symbol_map(self) -> dict:
        """written key -> how it was read, for the report ('Γ_u' -> 'input gate')."""
        out = {}
        roles = self.roles()
        for key, meaning in self.names.items():
            if meaning.kind == "vector":
                out.setdefault(key, roles.get(key) or "vector %s" % meaning.name)
            elif meaning.kind == "parameter":
                q = self.cell.quantities.get(meaning.name)
                out.setdefault(key, "parameter (%s)" % q.kind if q else "parameter")
            elif meaning.kind == "blocks":
                out[key] = "[%s]" % " ".join(self._written_parameter(p) for p in meaning.parts)
        for key in self.definitions:
            out[key] = "defined in the document"
        return out

    def _written_parameter(self, name: str) -> str:
        q = self.cell.quantities.get(name)
        return q.latex if q else name

    def to_dict(self) -> dict:
        return {"name": self.cell.name, "kind": self.kind(), "source": self.origin,
                "lines": list(self.lines), "description": self.describe(),
                "notation": {"layout": self.layout, "elementwise": self.hadamard, "star": self.star,
                             "time": self.time, "loss": self.loss, "symbols": self.symbol_map(),
                             "assumptions": list(self.notes)}}


def _lines(lines: tuple) -> str:
    if not lines:
        return "the document"
    first, last = lines[0], lines[-1]
    return "line %d" % first if first == last else "lines %d–%d" % (first, last)


# ----------------------------------------------------------------------------- keys
_ONE_NAME = re.compile(r"^(\\[A-Za-z]+\{[A-Za-z]\}|\\[A-Za-z]+|[A-Za-z])((?:[_^](?:[A-Za-z0-9]|\{[^{}]*\}))*)$")
_SCRIPT = re.compile(r"([_^])([A-Za-z0-9]|\{[^{}]*\})")


def normal_key(latex: str) -> str:
    """A written name in one spelling: fonts dropped, \\widetilde as \\tilde, scripts as `make_key`
    writes them (a^{h} and a^h are one key)."""
    text = _plain_base(latex)
    match = _ONE_NAME.match(text)
    if not match:
        return text
    scripts = {"_": "", "^": ""}
    for mark, script in _SCRIPT.findall(match.group(2)):
        scripts[mark] = scripts[mark] or script_text(script)
    return make_key(match.group(1), scripts["_"], scripts["^"])


def _plain_base(latex: str) -> str:
    text = re.sub(r"\\(%s)\{([^{}]*)\}" % "|".join(VECTOR_FONTS), r"\2", latex)
    text = re.sub(r"\\widetilde", r"\\tilde", text)
    text = re.sub(r"\\widehat", r"\\hat", text)
    text = re.sub(r"\\overline", r"\\bar", text)
    text = re.sub(r"\\(tilde|hat|bar|check|breve|dot)\s*([A-Za-z])(?![A-Za-z{])", r"\\\1{\2}", text)
    return text.replace(" ", "")


def make_key(base: str, sub: str, sup: str) -> str:
    """base_sub^sup with one-character scripts bare and longer ones braced."""
    key = _plain_base(base)
    for mark, script in (("_", sub), ("^", sup)):
        if script:
            key += mark + (script if len(script) == 1 else "{%s}" % script)
    return key


def split_key(key: str) -> tuple[str, str, str]:
    """base, subscript and superscript of a written key: '\\Gamma_f' -> ('\\Gamma', 'f', '')."""
    match = re.match(r"^(\\[A-Za-z]+\{[A-Za-z]\}|\\[A-Za-z]+|[A-Za-z])(.*)$", key)
    base, rest = (match.group(1), match.group(2)) if match else (key, "")
    scripts = {"_": "", "^": ""}
    for mark, script in _SCRIPT.findall(rest):
        scripts[mark] = scripts[mark] or script_text(script)
    return base, scripts["_"], scripts["^"]


GRADIENT_BASES = (r"\delta", r"\epsilon", r"\varepsilon", r"\Delta")  # δ_o, ε_C: names of gradients


def parameter_forms(name: str) -> list[str]:
    """The ways a parameter of a cell file is written: W_x^f, W^f_x, W_{xf}, W_{fx}."""
    base, _, sup = name.partition("^")
    head, _, sub = base.partition("_")
    forms = [make_key(head, sub, sup)]
    if sup and sub:
        forms += [make_key(head, sub + sup, ""), make_key(head, sup + sub, ""), make_key(head, sup, sub)]
    elif sup:
        forms += [make_key(head, sup, "")]
    return forms


# ----------------------------------------------------------------------------- structure
def roles_of(cell: Cell) -> dict:
    """Cell name -> role, read off the equations' structure (for the report only)."""
    out = {cell.input: "input", cell.output: "hidden state"}
    for state in cell.states:
        out.setdefault(state, "cell state")
    gates = [eq.target for eq in cell.equations if isinstance(eq.rhs, sigmoid)]
    for eq in cell.equations:
        if isinstance(eq.rhs, sympy.tanh) and eq.target not in cell.states:
            out.setdefault(eq.target, "candidate")
    for state in cell.states:
        rhs = cell.equation(state).rhs
        for term in sympy.Add.make_args(rhs):
            names = {symbols.read(s).name + ("[t-1]" if symbols.read(s).time == "t-1" else "")
                     for s in term.free_symbols if symbols.read(s)}
            for gate in gates:
                if gate not in names or gate in out:
                    continue
                if "%s[t-1]" % state in names:
                    out[gate] = "forget gate"
                elif any(out.get(n) == "candidate" for n in names):
                    out[gate] = "input gate"
                elif state == cell.output:
                    out[gate] = "output gate"
    for gate in gates:
        out.setdefault(gate, "gate")
    return out


def structure_name(cell: Cell) -> str:
    """'LSTM' when the cell has an LSTM's parts, 'GRU'-like otherwise by counts, else 'cell'."""
    roles = set(roles_of(cell).values())
    if {"forget gate", "input gate", "output gate", "candidate"} <= roles and len(cell.states) == 2:
        return "LSTM"
    if len(cell.states) == 2:
        return "two-state cell"
    return "one-state cell"
