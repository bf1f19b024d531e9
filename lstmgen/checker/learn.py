"""The notation of a document: its cell, learned from the forward equations it states, and how
its author writes that cell's symbols.

A forward equation is one whose left side is a vector at step t (``f_t``, ``\\Gamma_f^{\\langle t
\\rangle}``, ``h^{(t)}``) and whose right side has no derivative.  `ForwardReader` reads them with
the same grammar as every other equation; what a written product means is settled from what its
operands are (a capital letter before a vector is a matrix: ``W_f h_{t-1}``; after one, the row
layout: ``x_t U_f``).  The equations then become a Cell through `cells.from_equations`, the same
validation and derivation a cell file gets.  A matrix applied to a stacked vector,
``W_f [h_{t-1}, x_t]``, becomes one matrix per block (``W_f -> [W_{f,h}  W_{f,x}]``).
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass

import sympy

from .. import cells, ir, symbols
from ..errors import CellError
from .renaming import rename_onto, states_with_preactivations
from .notation import LOSS_LETTERS, Meaning, Notation, make_key, split_key
from .nodes import MATRIX_LETTERS, Stack, Unsupported
from .parse import build_side, sides_of
from .reader import AuthorsToIR

DEFAULT_CELL = "lstm"
MAX_FORWARD_EQUATIONS = 40


class NotForward(Unsupported):
    """An equation that is no forward equation (it has a derivative, or no vector at t on the left)."""


@dataclass
class _Product:
    """How a matrix product was written: the matrix first (column layout) or the vector first (row)."""

    row: bool
    star: bool


class ForwardReader(AuthorsToIR):
    """Reads a forward equation before the cell is known: every name with a time is a vector,
    every other name a parameter, keyed by how it is written."""

    def __init__(self, notation, flip=frozenset(), vectors_at_t=frozenset(), left_side=False):
        super().__init__(notation, flip)
        self.products: list[_Product] = []
        self.vectors: dict[str, set] = {}     # key -> times seen
        self.parameters: set[str] = set()
        self.untimed: set[str] = set()        # vectors written without a time (f = σ(...)): at t
        self.vectors_at_t = vectors_at_t      # keys some left side defines: untimed, they mean step t
        self.left_side = left_side

    def shape(self, expr):
        return ()  # shapes are what is being learned

    def lookup(self, key, time, name):
        if key in LOSS_LETTERS and time is None:
            raise NotForward("the loss")
        base, sub, sup = split_key(key)
        if time is not None and time.isdigit() and not sub:  # W_1, b_2: forward equations read steps t, t-1 only
            key, time = make_key(base, time, sup), None
        if time is None and (self.left_side or key in self.vectors_at_t):
            self.untimed.add(key)
            time = "t"
        if time is not None:
            if time not in ("t", "t-1"):
                raise NotForward("a forward equation reads steps t and t-1 only")
            self.vectors.setdefault(key, set()).add(time)
            return symbols.vector(ident(key), time)
        self.parameters.add(key)
        return symbols.parameter(ident(key))

    def _derivative(self, num, den):
        raise NotForward("a derivative")

    def gradient_name(self, differential):
        raise NotForward("a derivative")

    def product(self, a, b, how):
        if isinstance(a, sympy.Symbol) and _is_matrix(a) and _is_vectorial(b) and how != "hadamard":
            self.products.append(_Product(row=False, star=how == "star"))
            return ir.Dot(a, b)
        if isinstance(b, sympy.Symbol) and _is_matrix(b) and _is_vectorial(a) and how != "hadamard":
            self.products.append(_Product(row=True, star=how == "star"))
            return ir.Dot(b, a)
        return sympy.Mul(a, b, evaluate=False)

    def combine(self, a, b, sign):
        return sympy.Add(a, b if sign > 0 else -b, evaluate=False)

    def stack(self, parts):
        return Stack(*parts)


def ident(key: str) -> str:
    """An internal name for a written key: letters, digits and _ only (\\Gamma_f -> Gamma_f)."""
    text = re.sub(r"\\(tilde|hat|bar|check|breve|dot)\{([A-Za-z])\}", r"\2\1", key)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    if not text or not text[0].isalpha():
        text = "q" + text
    return text if text not in ("L", "ell") else text + "_"


def _is_matrix(sym) -> bool:
    """A parameter written with a capital (W, U, V, \\Theta): a matrix when it meets a vector."""
    return symbols.read(sym) is None and bool(MATRIX_LETTERS.match(sym.name)) and "_dot" not in sym.name


def _is_vectorial(expr) -> bool:
    return isinstance(expr, Stack) or any(symbols.read(s) is not None for s in expr.free_symbols)


# ----------------------------------------------------------------------------- learning
@dataclass
class _Forward:
    target: str          # written key of the left side
    expr: sympy.Expr     # right side over provisional symbols
    line: int
    reader: ForwardReader
    blocks: tuple = ()   # a(t) = W x(t) + ... = [\hat{i}(t); \hat{f}(t); ...]: the names of its blocks


def _left_side(text: str, provisional: Notation):
    """(sides, the key the left side defines, left-side reader) of a candidate forward equation, or None."""
    try:
        sides = sides_of(text)
    except Unsupported:
        return None
    if len(sides) < 2:
        return None
    lhs_reader = ForwardReader(provisional, left_side=True)
    try:
        lhs = build_side(sides[0], provisional, reader=lambda n, f: lhs_reader)
    except Unsupported:
        return None
    ref = symbols.read(lhs.expr) if isinstance(lhs.expr, sympy.Symbol) else None
    if ref is None or ref.time != "t" or len(lhs_reader.vectors) != 1:
        return None
    return sides, next(iter(lhs_reader.vectors)), lhs_reader


def _read_forward(text: str, line: int, provisional: Notation, defined: frozenset) -> list[_Forward]:
    """The forward equations in `text` (none when it is no forward equation); `defined` are the
    keys that left sides define (written without a time they mean step t).  A chained
    i_t = σ(W_i x_t + U_i h_{t-1}) = σ(\\hat{i}_t) also names the pre-activation \\hat{i}_t."""
    left = _left_side(text, provisional)
    if left is None:
        return []
    sides, target, lhs_reader = left
    reader = ForwardReader(provisional, vectors_at_t=defined)
    try:
        rhs = build_side(sides[1], provisional, reader=lambda n, f: reader)
    except Unsupported:
        return []
    if rhs.expr.has(ir.SumOverTime):
        return []  # L = \\sum_t \\ell_t: the loss, not a step of the cell
    reads_a_vector = any(symbols.read(s) is not None for s in rhs.expr.free_symbols)
    if not reads_a_vector and (lhs_reader.untimed or not rhs.expr.free_symbols):
        return []  # i_t = σ(a_i) may read only named blocks; an untimed W_f = [...] is no forward equation
    reader.untimed |= lhs_reader.untimed
    out = [_Forward(target, rhs.expr, line, reader)]
    for later in sides[2:]:
        named = _named_argument(later, rhs.expr, provisional)
        if named is not None:
            key, argument = named
            out = [_Forward(key, argument, line, reader), _Forward(target, rhs.expr.func(_vector(key)), line, reader)]
        blocks = _block_names(later, provisional)
        if blocks:
            out[-1].blocks = blocks
    return out


def _block_names(side, provisional: Notation) -> tuple:
    """The keys of `side` when it stacks new names at t: [\\hat{i}(t); \\hat{f}(t); ...]."""
    reader = ForwardReader(provisional, left_side=True)
    try:
        expr = build_side(side, provisional, reader=lambda n, f: reader).expr
    except Unsupported:
        return ()
    if not isinstance(expr, Stack) or not all(symbols.read(a) is not None for a in expr.args):
        return ()
    names = {ident(k): k for k in reader.vectors}
    return tuple(names[symbols.read(a).name] for a in expr.args)


def _argument_named(first: _Forward, again: _Forward) -> _Forward | None:
    """The equation of a pre-activation named by a second forward equation of the same quantity:
    first q_t = F(argument), again q_t = F(z_t) with z_t a new name -> z_t = argument."""
    if not (isinstance(first.expr, sympy.Function) and type(again.expr) is type(first.expr)
            and len(first.expr.args) == 1 and isinstance(again.expr.args[0], sympy.Symbol)):
        return None
    ref = symbols.read(again.expr.args[0])
    if ref is None or ref.time != "t":
        return None
    key = next((k for k in again.reader.vectors if ident(k) == ref.name), None)
    if key is None:
        return None
    argument = first.expr.args[0]
    first.expr = first.expr.func(again.expr.args[0])
    first.reader.vectors.setdefault(key, set()).add("t")
    return _Forward(key, argument, first.line, first.reader)


def _vector(key: str):
    return symbols.vector(ident(key))


def _named_argument(side, first, provisional: Notation):
    """(key, argument) when `side` is F(z_t) for the F(argument) of `first`, z_t a new name."""
    if not (isinstance(first, sympy.Function) and len(first.args) == 1):
        return None
    reader = ForwardReader(provisional, left_side=True)
    try:
        expr = build_side(side, provisional, reader=lambda n, f: reader).expr
    except Unsupported:
        return None
    if type(expr) is not type(first) or len(reader.vectors) != 1 or not isinstance(expr.args[0], sympy.Symbol):
        return None
    key = next(iter(reader.vectors))
    return (key, first.args[0]) if symbols.read(expr.args[0]) and symbols.read(expr.args[0]).time == "t" else None


def notation_of(equations, cell_option: str | None = None, text: str = "") -> Notation:
    """The notation a document is read in: the --cell option, else the cell its forward equations
    state, else the default cell.  `equations` are `extract.Equation`s in document order."""
    if cell_option is not None:
        notation = _given(cells.load(cell_option), equations, text)
    else:
        notation = None
        bare = _bare_superscript_times(text)
        found, stacking = _forward_equations(equations, bare)
        if found:
            try:
                notation = _learned(found, stacking)
                notation.bare_superscripts = bare
            except (CellError, Unsupported) as exc:
                notation = Notation.for_cell(cells.load(DEFAULT_CELL), "default")
                notation.notes.append("the forward equations on %s could not be read as a cell (%s); "
                                      "the %s cell was assumed" % (_span(found), _one_line(exc), DEFAULT_CELL))
        if notation is None:
            notation = Notation.for_cell(cells.load(DEFAULT_CELL), "default")
    _settle_printing(notation, text)
    return notation


def _given(cell, equations, text: str) -> Notation:
    """The notation of a document checked against the cell given with --cell: the document's own
    (learned from its forward equations) when those state that cell under other names or in rows,
    the cell file's otherwise, with a note when the document's layout is another."""
    notation = Notation.for_cell(cell, "option")
    bare = _bare_superscript_times(text)
    found, stacking = _forward_equations(equations, bare)
    try:
        learned = _learned(found, stacking) if found else None
    except (CellError, Unsupported):
        return notation
    if learned is None:
        return notation
    learned.bare_superscripts = bare
    renamed = rename_onto(learned, cell)
    if renamed is not None:
        renamed.notes.append("read in the document's own notation: its forward equations on %s state the %s cell"
                             % (_span(found), cell.name))
        return renamed
    if states_with_preactivations(learned.cell, cell):
        # the same cell with its pre-activations named: judged on the document's own cell, whose
        # derivation has the gradients of those names too and the given cell's everywhere else
        learned.notes.append("read in the document's own notation: its forward equations on %s state the %s cell "
                             "with named pre-activations" % (_span(found), cell.name))
        learned.given = cell.name
        return learned
    if learned.layout != notation.layout:
        notation.notes.append("the forward equations on %s write vectors as %ss, and --cell reads the document in "
                              "the cell file's %s layout: leave out --cell to have the document's own notation "
                              "learned" % (_span(found), learned.layout, notation.layout))
    return notation


def _bare_superscript_times(text: str) -> bool:
    """True when the document writes its times as bare superscripts (\\mathbf{h}^{t-1})."""
    bare = len(re.findall(r"\^\{\s*t\s*(?:[+-]\s*1\s*)?\}", text))
    subscripts = len(re.findall(r"_\{?\s*t\b", text))
    return bare >= 3 and bare > subscripts


_TEMPLATE = re.compile(r"[,;]?\s*(?:\\q?quad)?\s*\\ast\s*\\in\s*\\\{([^{}]{1,80})\\\}\s*[,.;]?")


def _instances(eq) -> list:
    """A templated equation, a_*^t = W_*^x x^t + ..., \\ast \\in \\{i, f, o, c\\}, once per letter."""
    match = _TEMPLATE.search(eq.text) if "\\ast" in eq.text else None
    if match is None:
        return [eq]
    body = eq.text[:match.start()] + eq.text[match.end():]
    letters = [part.strip() for part in match.group(1).split(",") if part.strip()]
    return [dataclasses.replace(eq, text=body.replace("\\ast", "{%s}" % letter)) for letter in letters]


def _forward_equations(equations, bare_superscripts: bool = False) -> tuple[list[_Forward], "_Stacking | None"]:
    provisional = Notation(cells.load(DEFAULT_CELL), bare_superscripts=bare_superscripts)
    candidates = [instance for eq in equations if "=" in eq.text and "\\partial" not in eq.text
                  for instance in _instances(eq)][:4 * MAX_FORWARD_EQUATIONS]
    # what left sides define, from the equations that are forward ones by their written times alone
    # (W_f = [W_f^x  W_f^h] in prose defines no vector)
    defined = frozenset(f.target for eq in candidates for f in _read_forward(eq.text, eq.line, provisional, frozenset()))
    found: dict[str, _Forward] = {}
    for eq in candidates:
        if len(found) >= MAX_FORWARD_EQUATIONS:
            break
        for forward in _read_forward(eq.text, eq.line, provisional, defined):
            first = found.setdefault(forward.target, forward)
            if first is not forward:  # r_t = σ(a^r_t) after r_t = σ(W x_t + ...): a^r names the argument
                named = _argument_named(first, forward)
                if named is not None and named.target not in found:
                    found[named.target] = named
    forwards, stacking = _stacked_gates(list(found.values()))
    return _used(forwards), stacking


@dataclass
class _Stacking:
    """A pre-activation for all gates cut into named blocks: a_t -> [a_i; a_f; a_o; a_g]."""

    target: str               # the author's key of the stacked vector (a)
    blocks: list              # the keys of its blocks, in order (a_i, a_f, a_o, a_g)
    parameters: list          # the keys of the stacked matrices and bias (W_x, W_h, b)


def _stacked_gates(found: list[_Forward]) -> tuple[list[_Forward], _Stacking | None]:
    """One pre-activation for all gates, a_t = x_t W_x + h_{t-1} W_h + b, cut into blocks that the
    gate equations use by name (i_t = σ(a_i)): one equation per block, each with its blocks of
    the matrices and the bias (W_x -> [W_x^{(i)}; W_x^{(f)}; ...]), the blocks in the order the
    gate equations first use them."""
    for stacked in found:
        base, sub, sup = split_key(stacked.target)
        if sub or sup or not stacked.expr.has(ir.Dot):
            continue
        blocks = list(stacked.blocks)
        for f in found if not blocks else ():
            for key in sorted(f.reader.parameters):
                if f is not stacked and split_key(key)[0] == base and split_key(key)[1] and key not in blocks:
                    blocks.append(key)
        if len(blocks) < 2:
            continue
        rest = [f for f in found if f is not stacked]
        as_vectors = {symbols.parameter(ident(k)): symbols.vector(ident(k)) for k in blocks}
        for f in rest:
            f.expr = symbols.replace(f.expr, as_vectors)
            f.reader.parameters -= set(blocks)
            f.reader.untimed |= set(blocks)
            for k in blocks:
                f.reader.vectors.setdefault(k, set()).add("t")
        per_block = []
        for k in blocks:
            label = _label(k)
            renamed = {symbols.parameter(ident(p)): symbols.parameter(ident(_block_key(p, label)))
                       for p in stacked.reader.parameters}
            reader = ForwardReader(stacked.reader.notation)
            reader.vectors = dict(stacked.reader.vectors)
            reader.products = list(stacked.reader.products)
            reader.parameters = {_block_key(p, label) for p in stacked.reader.parameters}
            per_block.append(_Forward(k, symbols.replace(stacked.expr, renamed), stacked.line, reader))
        return per_block + rest, _Stacking(stacked.target, blocks, sorted(stacked.reader.parameters))
    return found, None


def _label(block: str) -> str:
    """What tells a block apart: a_i -> i, \\hat{f} -> f."""
    sub = split_key(block)[1]
    return sub or re.sub(r"\\[A-Za-z]+\{([A-Za-z])\}", r"\1", split_key(block)[0])


def _block_key(key: str, label: str) -> str:
    """The written key of one gate's block of a stacked matrix: W_x -> W_x^{(i)}."""
    base, sub, sup = split_key(key)
    return make_key(base, sub, "(%s)" % label if not sup else "%s(%s)" % (sup, label))


def _used(found: list[_Forward]) -> list[_Forward]:
    """Drop equations nothing else uses (an output layer y_t = V h_t, an error term), keeping the
    states (the targets read at t-1)."""
    while True:
        read = {}
        for f in found:
            for s in f.expr.free_symbols:
                ref = symbols.read(s)
                if ref is not None:
                    read.setdefault(ref.name, set()).add(ref.time)
        states = {ident(f.target) for f in found if "t-1" in read.get(ident(f.target), set())}
        keep = [f for f in found if ident(f.target) in states or "t" in read.get(ident(f.target), set())]
        if not keep or len(keep) == len(found):
            return keep
        found = keep


def _learned(found: list[_Forward], stacking: _Stacking | None = None) -> Notation:
    """A Notation whose cell is the one the forward equations `found` state.  An equation that only
    stacks vectors (ξ_t = [x_t; h_{t-1}; 1]) is substituted where ξ_t is used: the cell multiplies
    its matrices by the stack itself."""
    lines = sorted(f.line for f in found)
    stacks = {f.target: f.expr for f in found if isinstance(f.expr, Stack)}
    seen: dict[str, set] = {}
    parameters: set[str] = set()
    for f in found:
        for key, times in f.reader.vectors.items():
            if key not in stacks:
                seen.setdefault(key, set()).update(times)
        parameters |= f.reader.parameters
    stacked = {symbols.vector(ident(key)): stack for key, stack in stacks.items()}
    found = [dataclasses.replace(f, expr=symbols.replace(f.expr, stacked)) for f in found if f.target not in stacks]
    targets = {f.target for f in found}
    states = [f.target for f in found if "t-1" in seen.get(f.target, set())]
    missing = sorted(k for k, times in seen.items() if "t-1" in times and k not in targets)
    if missing:
        raise CellError("%s is read at t-1 but no equation defines it" % missing[0])
    inputs = sorted(k for k in seen if k not in targets)
    if len(inputs) != 1:
        raise CellError("the forward equations read %s, which no equation defines; one input vector is understood"
                        % (", ".join(inputs) if inputs else "no vector"))
    if not states:
        raise CellError("no quantity is read at t-1, so the equations state no recurrent cell")
    names: dict[str, Meaning] = {}
    latex = {}
    for key in [inputs[0], *[f.target for f in found]]:
        names[key] = Meaning("vector", ident(key))
        latex[ident(key)] = key
    blocks = _Blocks(names, latex, parameters)
    equations = []
    for f in found:
        rhs = blocks.split(f.expr, f.line)
        equations += blocks.extra + [(ident(f.target), rhs, f.line)]
        blocks.extra = []
    for key in sorted(parameters):
        if ident(key) not in blocks.split_matrices:
            names.setdefault(key, Meaning("parameter", ident(key)))
            latex[ident(key)] = key
    output = _output_state(found, states)
    cell = cells.from_equations(equations, name="learned", title="the document's cell", input=ident(inputs[0]),
                                states=[ident(s) for s in states], output=ident(output), latex=latex,
                                source="forward equations", line=found[0].line)
    products = [p for f in found for p in f.reader.products]
    layout = "row" if products and sum(p.row for p in products) > len(products) / 2 else "column"
    notation = Notation(cell, "learned", (lines[0], lines[-1]), names, layout=layout,
                        star="matrix" if any(p.star for p in products) else "elementwise")
    notation.forward = tuple(lines)
    for key, stack in stacks.items():  # ξ_t in a backward equation is the stack it names
        notation.definitions[key] = stack
        notation.implicit.add(key)
    notation.untimed = frozenset(key for f in found for key in f.reader.untimed)
    if stacking is not None:  # a_t, W_x, b: the gates' blocks stacked, as the author writes them
        labels = [_label(block) for block in stacking.blocks]
        for key in stacking.parameters:
            names[key] = Meaning("rowblocks", ident(key), tuple(ident(_block_key(key, label)) for label in labels))
            base, sub, sup = split_key(key)
            for label in labels:  # one gate's block as an author may name it: W_i, W_x^i, W_{xi}
                for alias in _block_aliases(base, sub, sup, label) if (sub or sup) else [make_key(base, label, "")]:
                    notation.aliases.setdefault(alias, Meaning("parameter", ident(_block_key(key, label))))
        notation.definitions[stacking.target] = Stack(*[symbols.vector(ident(block)) for block in stacking.blocks])
        notation.implicit.add(stacking.target)
    notation.inlined = blocks.inlined
    notation.aliases = {k: m for k, m in blocks.aliases.items() if k not in names}
    if any(p.star for p in products):
        notation.notes.append("* is a matrix product where the shapes need one (the forward equations use it so)")
    return notation


class _Blocks:
    """Splits W [h_{t-1}, x_t] into W_{,h} h_{t-1} + W_{,x} x_t and records W -> its blocks."""

    def __init__(self, names: dict, latex: dict, parameter_keys: set):
        self.names, self.latex = names, latex
        self.aliases: dict = {}
        self.written = {ident(key): key for key in parameter_keys}
        self.split_matrices: set[str] = set()
        self.extra: list = []      # equations of the expressions a matrix multiplies: U (r_t ⊙ h_{t-1})
        self.inlined: dict = {}    # their names -> their expressions, printed in their place

    def _named(self, expr, line: int):
        """A vector for an expression a matrix multiplies (the cell model multiplies vectors only)."""
        for name, known in self.inlined.items():
            if known == expr:
                return symbols.vector(name)
        name = "xi%d" % (len(self.inlined) + 1)
        self.inlined[name] = expr
        self.latex[name] = r"\xi^{%d}" % len(self.inlined)
        self.extra.append((name, expr, line))
        return symbols.vector(name)

    def split(self, expr, line: int):
        if isinstance(expr, ir.Dot) and isinstance(expr.args[1], Stack):
            return self._split_dot(expr.args[0], expr.args[1], line)
        if isinstance(expr, ir.Dot) and not isinstance(expr.args[1], sympy.Symbol):
            return ir.Dot(expr.args[0], self._named(self.split(expr.args[1], line), line))
        if not expr.args:
            return expr
        args = [self.split(a, line) for a in expr.args]
        return ir.rebuild(expr, args)

    def _split_dot(self, matrix, stack, line):
        key = self.written.get(matrix.name, matrix.name)
        base, sub, sup = split_key(key)
        parts, terms = [], []
        for part in stack.args:
            if part.is_Number:
                if part != 1:
                    raise CellError("line %d: a stacked vector holds vectors and a 1 (for a bias)" % line)
                label = "1"
            else:
                ref = symbols.read(part)
                if ref is None:
                    raise CellError("line %d: only vectors can be stacked" % line)
                label = next(k for k, m in self.names.items() if m.kind == "vector" and m.name == ref.name)
                label = re.sub(r"\\[A-Za-z]+\{([A-Za-z])\}", r"\1", label)
            written = make_key(base, "%s,%s" % (sub, label) if sub else label, sup)
            name = ident(written)
            if name in {p for p in parts}:
                raise CellError("line %d: a vector is stacked twice" % line)
            parts.append(name)
            self.latex[name] = written
            for alias in _block_aliases(base, sub, sup, label):  # how an author names one block: W_f^h, W_{hf}
                self.aliases.setdefault(alias, Meaning("parameter", name))
            terms.append(symbols.parameter(name) if part.is_Number else ir.Dot(symbols.parameter(name), part))
        previous = self.names.get(key)
        if previous is not None and previous.parts != tuple(parts):
            raise CellError("line %d: %s multiplies two different stacked vectors" % (line, key))
        self.names[key] = Meaning("blocks", ident(key), tuple(parts))
        self.split_matrices.add(ident(key))
        return sympy.Add(*terms, evaluate=False)


def _block_aliases(base: str, sub: str, sup: str, label: str) -> list[str]:
    """The names a writer may give the block of W_f that multiplies h: W_f^h, W_{f,h}, W_{fh}, W_{hf}, W_h^f."""
    if label == "1":
        return []
    gate = sub or sup
    if not gate:
        return [make_key(base, label, "")]
    return [make_key(base, gate, label), make_key(base, "%s,%s" % (gate, label), ""), make_key(base, gate + label, ""),
            make_key(base, label + gate, ""), make_key(base, label, gate)]


def _output_state(found: list[_Forward], states: list[str]) -> str:
    """The state the loss sees: the one multiplied by a matrix, as a hidden state is."""
    through_matrix = []
    for f in found:
        for dot in f.expr.atoms(ir.Dot):
            for s in dot.args[1].free_symbols if not isinstance(dot.args[1], Stack) else dot.args[1].free_symbols:
                ref = symbols.read(s)
                if ref is not None and ref.time == "t-1":
                    through_matrix.append(ref.name)
    for state in reversed(states):
        if ident(state) in through_matrix:
            return state
    return states[-1]


def _span(found) -> str:
    first, last = found[0].line, found[-1].line
    return "line %d" % first if first == last else "lines %d–%d" % (first, last)


def _one_line(exc) -> str:
    return " ".join(str(exc).split())[:160]


# ----------------------------------------------------------------------------- printing conventions
_ELEMENTWISE_SIGNS = {"odot": r"\odot", "circ": r"\circ", "*": "*"}


def _settle_printing(notation: Notation, text: str) -> None:
    """The author's product sign, time style, loss letter and derivative sign, for messages."""
    counts = {name: text.count(sign) for name, sign in _ELEMENTWISE_SIGNS.items()}
    if notation.star == "matrix":
        counts["*"] = 0
    best = max(counts, key=lambda k: (counts[k], k == "*"))
    notation.hadamard = best if counts[best] else "*"
    times = Counter()
    times["angle"] = len(re.findall(r"\^\{?\s*\\langle", text))
    times["paren"] = len(re.findall(r"\^\{\s*\(\s*t", text))
    times["sub"] = len(re.findall(r"_\{?\s*t\b", text))
    times["sup"] = len(re.findall(r"\^\{\s*t\s*(?:[+-]\s*1\s*)?\}", text)) if notation.bare_superscripts else 0
    notation.time = max(("sub", "paren", "angle", "sup"), key=lambda k: (times[k], k == "sub"))
    losses = Counter()
    for letter in LOSS_LETTERS:
        escaped = re.escape(letter)
        losses[letter] = len(re.findall(r"(\\partial|\bd|\\mathrm\{d\}|\\text\{d\})\s*%s(?![A-Za-z])" % escaped, text))
    if notation.cell.quantities:
        for letter in list(losses):
            if letter in notation.names:
                del losses[letter]
    best_loss = max(losses, key=lambda k: (losses[k], k == "L")) if losses else "L"
    notation.loss = best_loss if losses.get(best_loss) else "L"
    partial = text.count(r"\partial")
    plain_d = len(re.findall(r"\\frac\{\s*(d|\\mathrm\{d\}|\\text\{d\})\s*[A-Za-z\\]", text))
    notation.differential = r"\partial" if partial >= plain_d else (
        r"\mathrm{d}" if r"\mathrm{d}" in text else "d")
