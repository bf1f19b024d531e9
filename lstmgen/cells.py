"""Cell definitions: a cell file is parsed into named SymPy equations, one per quantity at t.

A cell is data, not code: the built-in cells are cell files shipped in ``cell_files/`` and a
user's own cell is a file of the same format (see the README).  The file is parsed with the
grammar in ``grammars/cell.lark``; nothing in it is evaluated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import lark
import sympy

from . import symbols
from .errors import CellError
from .functions import BUILTIN, UserFunction, define
from .ir import Dot

CELL_DIR = Path(__file__).parent / "cell_files"
GRAMMAR = Path(__file__).parent / "grammars" / "cell.lark"
# Bounds on a cell file (the README's "Cell-file limits"): each is checked as the file is read, and
# past it the file is refused with a one-line CellError.  Together they keep any file under the size
# limit within seconds of derivation and generation.
MAX_CELL_FILE_BYTES = 64_000
MAX_EQUATIONS = 64         # equations of a cell (with the pre-activations that get a name)
MAX_FUNCTIONS = 16         # `function` lines
MAX_EXPRESSION_SIZE = 400  # operations in one equation, a cell file's function counted as its formula
MAX_DEPTH = 12             # nesting of one equation's operations, likewise
MAX_EXPONENT = 64          # a larger constant power (2 ** 10**100) would make SymPy compute a huge integer
MAX_CONSTANT = 1e15        # |constant|, as written and once SymPy folds the constants of an equation
MAX_TITLE = 200            # characters of a title
MAX_LATEX = 80             # characters of a `latex` form
# names the documents and the checker already give a meaning
RESERVED = {"L": "the loss", "ell": "the loss term of one step",
            "T": "the sequence length: the documents' last step and the generated code's number of steps"}
# What a `latex` line may contain: letters, digits, scripts, braces, primes and commas, and these
# commands (Greek letters, accents, math fonts), nothing that TeX would do rather than typeset.
_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi "
          "varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi "
          "Sigma Upsilon Phi Psi Omega")
# What `lstmgen check` reads back as one symbol (a `latex` form must be one): these accents and fonts
# over a letter, and Greek letters but these (the documents give them another meaning, or the reader has none)
READABLE_ACCENTS = ("tilde", "hat", "bar", "vec", "dot", "breve", "check", "widetilde", "widehat", "overline",
                    "mathbf", "mathit", "boldsymbol", "mathcal")
VECTOR_FONTS = ("mathbf", "boldsymbol", "bm", "mathit", "mathrm", "vec", "pmb", "mathnormal")  # c as a vector: still c
UNREADABLE_SYMBOLS = {"sigma": "is the sigmoid", "Sigma": "reads as a sum", "ell": "is the loss term of one step",
                      "varsigma": "is not read back", "varpi": "is not read back", "varrho": "is not read back",
                      "Upsilon": "is not read back"}
LATEX_COMMANDS = frozenset((_GREEK + " tilde hat bar vec dot ddot breve check acute grave widetilde widehat "
                            "overline underline mathrm mathbf mathit mathsf mathtt mathcal boldsymbol ell imath "
                            "jmath prime ast star circ dagger").split())
_LATEX_TOKEN = re.compile(r"\\([A-Za-z]+)|[A-Za-z0-9_^{}', ]")


@dataclass(frozen=True)
class Equation:
    """target_t = rhs, where rhs is a SymPy expression over symbols of `lstmgen.symbols`.

    `rhs` is SymPy's canonical form, for the algebra; `written` is the same expression with
    sums and products in the order the cell file writes them, for printers to quote.
    """

    target: str
    rhs: sympy.Expr
    line: int
    written: sympy.Expr | None = None

    def __post_init__(self):
        if self.written is None:
            object.__setattr__(self, "written", self.rhs)


def _canonical(expr: sympy.Expr) -> sympy.Expr:
    """Evaluate the unevaluated sums and products of a parsed expression."""
    if not expr.args:
        return expr
    return expr.func(*[_canonical(arg) for arg in expr.args])


@dataclass(eq=False)
class Cell:
    """A recurrent cell: its input, states, parameters and forward equations in order.

    Two cells are equal when their content is (`key`), whatever they are called or where they
    came from (a cell file, a document's forward equations): every cache is keyed on a Cell.
    """

    name: str
    title: str
    input: str
    states: list[str]
    output: str
    gate_order: list[str]
    equations: list[Equation]
    quantities: dict[str, symbols.Quantity] = field(default_factory=dict)
    layout_orders: dict[str, list[str]] = field(default_factory=dict)  # e.g. {"torch": [i, f, g, o]}

    @property
    def key(self) -> tuple:
        """The cell's content, as a hashable value (computed once)."""
        cached = self.__dict__.get("_key")
        if cached is None:
            functions = sorted({(type(f).__name__, sympy.srepr(f.formula)) for eq in self.equations
                                for f in eq.rhs.atoms(UserFunction)})
            cached = (self.name, self.title, self.input, tuple(self.states), self.output, tuple(self.gate_order),
                      tuple((eq.target, sympy.srepr(eq.rhs), sympy.srepr(eq.written)) for eq in self.equations),
                      tuple(sorted((q.name, q.kind, q.latex) for q in self.quantities.values())),
                      tuple(sorted((k, tuple(v)) for k, v in self.layout_orders.items())), tuple(functions))
            self.__dict__["_key"] = cached
        return cached

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Cell) and self.key == other.key

    def equation(self, target: str) -> Equation:
        """The equation whose left side is `target` (StopIteration for a name without one)."""
        return next(eq for eq in self.equations if eq.target == target)

    @property
    def parameters(self) -> list[symbols.Quantity]:
        """Parameters in order of first use in the equations."""
        return [q for q in self.quantities.values() if q.is_parameter]

    @property
    def step_inputs(self) -> list[str]:
        """The vectors a step receives: the input and every state at t-1."""
        return [self.input, *self.states]


@lru_cache(maxsize=1)
def _builtin_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in CELL_DIR.glob("*.cell")))


def builtin_names() -> list[str]:
    """The names of the cells shipped in cell_files/, sorted."""
    return list(_builtin_names())


CACHED_CELLS = 64  # cells whose derived facts stay cached (built-in, files, documents' learned cells)


def cell_cache(function):
    """functools.lru_cache for a function of a Cell.  A Cell hashes by its content, so an edited
    cell file or a document that states another cell never meets a stale entry."""
    return lru_cache(maxsize=CACHED_CELLS)(function)


def load(name_or_path: str) -> Cell:
    """A built-in cell by name (``lstm``) or a cell file by path (``my_cell.cell``)."""
    path = Path(name_or_path)
    if name_or_path in builtin_names():
        return _load_builtin(name_or_path)
    if path.suffix == ".cell" or path.exists():
        if not path.is_file():
            raise CellError("cell file %s: %s" % (name_or_path, "not a file" if path.exists() else "no such file"))
        try:
            info = path.stat()
            if info.st_size > MAX_CELL_FILE_BYTES:  # before reading: a huge file is never read whole
                raise CellError("cell file %s: larger than %d bytes" % (name_or_path, MAX_CELL_FILE_BYTES))
            return _load_file(str(path), info.st_mtime_ns, info.st_size)
        except OSError as exc:
            raise CellError("cell file %s: cannot read it (%s)" % (name_or_path, exc.strerror)) from None
    raise CellError("unknown cell %r: use one of %s or the path of a .cell file"
                    % (name_or_path, ", ".join(builtin_names())))


@lru_cache(maxsize=CACHED_CELLS)
def _load_file(path: str, mtime_ns: int, size: int) -> Cell:
    """A cell file, parsed once per version of it on disk (its stamp is part of the key)."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CELL_FILE_BYTES + 1)
    if len(raw) > MAX_CELL_FILE_BYTES:
        raise CellError("cell file %s: larger than %d bytes" % (path, MAX_CELL_FILE_BYTES))
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is accepted, as documents accept one
    except UnicodeDecodeError:
        raise CellError("cell file %s: not UTF-8 text" % path) from None
    return parse(text, source=path, default_name=Path(path).stem)


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> Cell:
    path = CELL_DIR / (name + ".cell")
    return parse(path.read_text(encoding="utf-8"), source=path.name, default_name=name)


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True)


def parse(text: str, source: str = "<cell>", default_name: str = "cell") -> Cell:
    """Parse cell-file text; raise CellError naming line and column on any problem.  Lines may end
    in \\n, \\r\\n or \\r alone; a leading byte-order mark is ignored."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        tree = _parser().parse(text + "\n")
    except lark.exceptions.UnexpectedInput as exc:
        found = getattr(exc, "token", None) or getattr(exc, "char", None)
        expected = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])
        raise CellError("%s:%d:%d: unexpected %s; expected one of %s"
                        % (source, exc.line, exc.column, _show(found), ", ".join(expected[:8]) or "end of line")) from None
    try:
        return _Builder(source, default_name).build(tree)
    except RecursionError:  # e.g. 20 000 unary minus signs: the tree is deeper than Python's stack
        raise CellError("%s: an expression is nested too deeply" % source) from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # SymPy refusing to form an expression
        raise CellError("%s: SymPy cannot form an expression of this file (%s)"
                        % (source, str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)) from None


def from_equations(equations: list, *, name: str, title: str, input: str, states: list[str], output: str,
                   latex: dict[str, str], source: str, line: int = 1) -> Cell:
    """A Cell from equations that were read elsewhere (a document's forward equations):
    [(target, SymPy expression over `symbols`, line)], validated exactly like a cell file."""
    builder = _Builder(source, name)
    builder.title, builder.input, builder.states, builder.output = title, input, list(states), output
    builder.latex = dict(latex)
    targets = [target for target, _, _ in equations]
    for state in states:
        if state not in targets:
            builder.fail(line, "state %s has no equation" % latex.get(state, state))
    return builder.assemble(equations, line)


def _show(found) -> str:
    if found is None:
        return "end of input"
    text = str(found)
    return repr(text) if text.strip() else "end of line"


class _Builder:
    """Turns the parse tree into a validated Cell."""

    def __init__(self, source: str, default_name: str):
        self.source = source
        self.name = default_name
        self.title = ""
        self.input = None
        self.states: list[str] = []
        self.output = None
        self.gate_order: list[str] = []
        self.layout_orders: dict[str, list[str]] = {}
        self.latex: dict[str, str] = {}
        self.latex_lines: dict[str, lark.Token] = {}  # name -> the form on its `latex` line, for errors
        self.functions = dict(BUILTIN)
        self.sizes: dict[str, tuple] = {}  # a cell file's function -> (operations, depth) of its formula, calls expanded
        self.raw_equations: list[tuple[str, lark.Tree, int]] = []

    def fail(self, node, message: str):
        if isinstance(node, int):  # a line number
            raise CellError("%s:%d: %s" % (self.source, node, message))
        meta = getattr(node, "meta", None)
        line = getattr(node, "line", None) or (getattr(meta, "line", None) if meta else None) or 1
        column = getattr(node, "column", None) or (getattr(meta, "column", None) if meta else None) or 1
        raise CellError("%s:%d:%d: %s" % (self.source, line, column, message))

    def build(self, tree: lark.Tree) -> Cell:
        for stmt in tree.children:
            getattr(self, "_" + stmt.data)(stmt)
        if not _CELL_NAME.match(self.name):  # a file name such as 1x.cell: generated code and files are named after it
            self.fail(tree, "the cell name %r is not a letter followed by letters, digits and _; add a line `cell NAME`"
                      % self.name[:40])
        if self.input is None:
            self.fail(tree, "no `input` line: name the input vector, e.g. `input x`")
        if not self.states:
            self.fail(tree, "no `state` line: name at least one recurrent state, e.g. `state h output`")
        self.output = self.output or self.states[0]
        targets = [target for target, _, _ in self.raw_equations]
        for state in self.states:
            if state not in targets:
                self.fail(tree, "state %s has no equation `%s = ...`" % (state, state))
        known_vectors = {self.input, *self.states, *targets}
        cell = self.assemble([(target, self._expr(node, known_vectors), line)
                              for target, node, line in self.raw_equations], tree)
        printed = {}  # what each quantity prints as, to the checker's eye (fonts dropped): no two alike
        for q in sorted(cell.quantities.values(), key=lambda q: (q.name not in self.latex_lines, q.name)):
            other = printed.setdefault(_printed_key(q.latex), q.name)
            if other != q.name:
                first, second = sorted((other, q.name), key=lambda n: n not in self.latex_lines)
                self.fail(self.latex_lines.get(first, tree), "%s (%s) and %s (%s) read as one symbol in a checked "
                          "document; give one another `latex` form" % (first, cell.quantities[first].latex, second,
                                                                       cell.quantities[second].latex))
        return cell

    def assemble(self, written_equations: list, where=None) -> Cell:
        """The validated Cell of equations (target, SymPy expression as written, line); the
        checks every cell passes, whether its equations come from a cell file or a document."""
        tree = where
        equations = [Equation(target, _canonical(written), line, written) for target, written, line in written_equations]
        for eq in equations:
            if eq.rhs.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
                raise CellError("%s:%d: the equation of %s is not finite (a division by zero?)"
                                % (self.source, eq.line, eq.target))
            if eq.rhs.has(sympy.I):  # (0 - 1) ** 0.5: the generated code would print SymPy's I
                raise CellError("%s:%d: the equation of %s is not real" % (self.source, eq.line, eq.target))
            for number in _constants(eq.rhs) | _constants(eq.written):
                problem = _constant_problem(number)
                if problem:
                    raise CellError("%s:%d: the equation of %s has the constant %s, %s"
                                    % (self.source, eq.line, eq.target, sympy.sstr(number)[:24], problem))
        equations = self._name_preactivations(equations)
        if len(equations) > MAX_EQUATIONS:
            raise CellError("%s: %d equations (with the named pre-activations); a cell may have at most %d"
                            % (self.source, len(equations), MAX_EQUATIONS))
        equations = self._topological(equations)
        varying = {self.input, *self.states}
        for eq in equations:  # what depends on no vector is one value for every sample: a parameter
            if not any(ref.name in varying for ref in map(symbols.read, eq.rhs.free_symbols) if ref):
                raise CellError("%s:%d: %s depends on neither the input nor a state; a constant or a function of "
                                "parameters is no quantity of a step: write it where it is used"
                                % (self.source, eq.line, eq.target))
            varying.add(eq.target)
        used = {(ref.name, ref.time) for eq in equations for ref in map(symbols.read, eq.rhs.free_symbols) if ref}
        if (self.input, "t") not in used:  # else it has no gradient dL/dx_t
            self.fail(tree, "the input %s is never used" % self.input)
        for eq in equations:  # a quantity nothing consumes would have no gradient dL/dq
            if eq.target not in self.states and (eq.target, "t") not in used:
                raise CellError("%s:%d: %s is computed but never used" % (self.source, eq.line, eq.target))
        previous = {name for name, time in used if time == "t-1"}
        for state in self.states:
            if state not in previous:  # else it has no gradient dL/ds_{t-1} and the recurrence breaks
                raise CellError("%s:%d: state %s is never used as %s[t-1]; a state must feed the next step"
                                % (self.source, next(eq.line for eq in equations if eq.target == state),
                                   state, state))
        quantities = self._quantities(equations)
        for name in sorted(RESERVED.keys() & quantities.keys()):
            self.fail(tree, "%s is reserved (%s); choose another name" % (name, RESERVED[name]))
        gate_order = self.gate_order or [eq.target for eq in equations if eq.rhs.has(Dot)]
        for gate in gate_order:
            if gate not in {eq.target for eq in equations}:
                self.fail(tree, "`gates` names %s, which has no equation" % gate)
        for layout, order in self.layout_orders.items():
            if sorted(order) != sorted(gate_order):
                self.fail(tree, "`order %s` must list the gates %s in some order" % (layout, " ".join(gate_order)))
        return Cell(self.name, self.title or self.name, self.input, self.states, self.output,
                    gate_order, equations, quantities, self.layout_orders)

    # ---- statements -------------------------------------------------------------------
    def _cell_name(self, stmt):
        self.name = str(stmt.children[0])

    def _title(self, stmt):
        title = str(stmt.children[0])[1:-1]
        if len(title) > MAX_TITLE:
            self.fail(stmt.children[0], "the title is longer than %d characters" % MAX_TITLE)
        bad = next((ch for ch in title if not ch.isprintable()), None)
        if bad is not None:
            self.fail(stmt.children[0], "the title contains the unprintable character %r" % bad)
        self.title = title

    def _name(self, token) -> str:
        """A name the file gives a quantity, refused at its line and column when it is reserved."""
        name = str(token)
        if name in RESERVED:
            self.fail(token, "%s is reserved (%s); choose another name" % (name, RESERVED[name]))
        return name

    def _input_decl(self, stmt):
        if self.input is not None:
            self.fail(stmt, "a second `input` line; a cell has one input vector")
        self.input = self._name(stmt.children[0])

    def _state_decl(self, stmt):
        name = self._name(stmt.children[0])
        if name in self.states:
            self.fail(stmt, "state %s declared twice" % name)
        self.states.append(name)
        if len(stmt.children) > 1:
            if self.output is not None:
                self.fail(stmt, "a second `output` state; exactly one state is the output")
            self.output = name

    def _gate_order(self, stmt):
        self.gate_order = self._distinct(stmt, [str(tok) for tok in stmt.children])

    def _layout_order(self, stmt):
        self.layout_orders[str(stmt.children[0])] = self._distinct(stmt, [str(tok) for tok in stmt.children[1:]])

    def _distinct(self, stmt, names: list[str]) -> list[str]:
        """A gate order names every gate once: a repeated name would stack its block twice."""
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            self.fail(stmt, "%s listed twice" % ", ".join(repeated))
        return names

    def _latex_decl(self, stmt):
        form = str(stmt.children[1])[1:-1]
        problem = _latex_problem(form)
        if problem:
            self.fail(stmt.children[1], "the LaTeX form %s %s" % (str(stmt.children[1])[:40], problem))
        depth = 0
        for ch in form.replace(r"\{", "").replace(r"\}", ""):  # every document prints it: it must nest
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth < 0:
                break
        if depth != 0:
            self.fail(stmt.children[1], "the LaTeX form %s has unbalanced braces" % str(stmt.children[1]))
        problem = _symbol_problem(form)  # documents print it, and the checker must read it back as one symbol
        if problem:
            self.fail(stmt.children[1], "the LaTeX form %s of %s does not read as one symbol: %s; write one letter "
                      "with accents and scripts, such as \\tilde{c}, \\hat{h} or c_{in}"
                      % (str(stmt.children[1]), stmt.children[0], problem))
        self.latex[str(stmt.children[0])] = form
        self.latex_lines[str(stmt.children[0])] = stmt.children[1]

    def _function_def(self, stmt):
        fname, var, body = str(stmt.children[0]), str(stmt.children[1]), stmt.children[2]
        if fname in BUILTIN:
            self.fail(stmt.children[0], "%s is a built-in function; choose another name" % fname)
        if fname in self.functions:
            self.fail(stmt.children[0], "the function %s is defined twice" % fname)
        if not fname.isidentifier():  # generated code defines a helper of this name
            self.fail(stmt.children[0], "the function name %s may use letters, digits and _ only" % fname)
        if len(self.sizes) >= MAX_FUNCTIONS:
            self.fail(stmt.children[0], "more than %d functions" % MAX_FUNCTIONS)
        z = sympy.Symbol(var, real=True)
        expr, size = self._expr(body, {var}, local={var: z}, sized=True)
        for number in _constants(_canonical(expr)) | _constants(expr):
            problem = _constant_problem(number)
            if problem:
                self.fail(stmt.children[0], "the function %s has the constant %s, %s"
                          % (fname, sympy.sstr(number)[:24], problem))
        self.functions[fname] = (define(fname, z, _canonical(expr)), 1)
        self.sizes[fname] = size

    def _equation(self, stmt):
        target = self._name(stmt.children[0])
        if len(self.raw_equations) >= MAX_EQUATIONS:
            self.fail(stmt, "more than %d equations; a cell may have at most %d" % (MAX_EQUATIONS, MAX_EQUATIONS))
        if any(target == t for t, _, _ in self.raw_equations):
            self.fail(stmt, "%s is defined twice" % target)
        if target == self.input:
            self.fail(stmt, "%s is the input; it cannot have an equation" % target)
        self.raw_equations.append((target, stmt.children[1], stmt.meta.line))

    # ---- expressions ------------------------------------------------------------------
    def _expr(self, node, known_vectors, local=None, sized=False):
        """The SymPy expression of a parse tree (with `sized`, also its size and depth: operations and
        nesting, a call of a cell file's function counted as its formula); a CellError past
        MAX_EXPRESSION_SIZE or MAX_DEPTH."""
        size, depth, deepest = 0, 0, 0

        def grow(n, by=1, deeper=0):
            nonlocal size, deepest
            size += by
            deepest = max(deepest, depth + deeper)
            if size > MAX_EXPRESSION_SIZE:
                self.fail(n, "the expression is larger than %d operations (a cell file's function counts as "
                          "its formula)" % MAX_EXPRESSION_SIZE)
            if depth + deeper > MAX_DEPTH:
                self.fail(n, "the expression is nested more than %d deep (a cell file's function counts as "
                          "its formula)" % MAX_DEPTH)

        def chain(n, kinds):
            """a + b - c (or a * b * c) as one flat unevaluated sum (product) in the written order: one
            level of nesting, however long, and no recursion down the grammar's left-nested chain."""
            links = []
            while _tree_kind(n) in kinds:
                links.append(n)
                n = n.children[0]
            grow(n, len(links) - 1)
            operands = [walk(n)]
            for link in reversed(links):
                operand = walk(link.children[1])
                operands.append(-operand if link.data == "sub" else operand)
            return (sympy.Add if kinds[0] == "add" else sympy.Mul)(*operands, evaluate=False)

        def walk(n):
            nonlocal depth
            depth += 1
            try:
                return visit(n)
            finally:
                depth -= 1

        def visit(n):
            if isinstance(n, lark.Token):
                self.fail(n, "unexpected %r" % str(n))
            kind = n.data
            grow(n)
            if kind == "number":
                text = str(n.children[0])
                if len(text) > 30:
                    self.fail(n.children[0], "number %s... is too long" % text[:12])
                number = sympy.Float(text) if "." in text or "e" in text.lower() else sympy.Integer(text)
                problem = _constant_problem(number)  # a Float prints as written: 1.702, not 851/500
                if problem:
                    self.fail(n.children[0], "the constant %s is %s" % (text, problem.removeprefix("which is ")))
                return number
            if kind in ("add", "sub") or kind == "mul" and _tree_kind(n.children[0]) == "mul":
                return chain(n, ("add", "sub") if kind != "mul" else ("mul",))
            if kind in ("add", "sub", "mul", "div", "pow"):
                a, b = walk(n.children[0]), walk(n.children[1])
                # unevaluated, so that documents and code keep the order the author wrote
                return {"add": lambda: sympy.Add(a, b, evaluate=False),
                        "sub": lambda: sympy.Add(a, -b, evaluate=False),
                        "mul": lambda: sympy.Mul(a, b, evaluate=False),
                        "div": lambda: a / b, "pow": lambda: self._power(n, a, b)}[kind]()
            if kind == "neg":
                return -walk(n.children[0])
            if kind == "call":
                fname = str(n.children[0])
                if fname not in self.functions:
                    self.fail(n.children[0], "unknown function %s (known: %s)"
                              % (fname, ", ".join(sorted(self.functions))))
                function, arity = self.functions[fname]
                grow(n, *self.sizes.get(fname, (0, 0)))
                if len(n.children) - 1 != arity:
                    self.fail(n.children[0], "%s takes %d argument%s, got %d"
                              % (fname, arity, "" if arity == 1 else "s", len(n.children) - 1))
                return function(*[walk(arg) for arg in n.children[1:]])
            if kind == "dot":
                matrix = self._name(n.children[0])
                if local is not None:
                    self.fail(n.children[0], "a function definition cannot contain @")
                if matrix in known_vectors:
                    self.fail(n.children[0], "%s is a vector; the left side of @ must be a weight matrix" % matrix)
                vec = walk(n.children[1])
                if symbols.read(vec) is None:
                    self.fail(n.children[1], "%s is not a vector: the right side of @ must be the input, a state "
                              "or a quantity with an equation" % vec)
                return Dot(symbols.parameter(matrix), vec)
            if kind == "ref":
                name = str(n.children[0])
                previous = len(n.children) > 1
                if local is not None:
                    if name not in local or previous:
                        self.fail(n.children[0], "a function definition may use only its variable %s"
                                  % next(iter(local)))
                    return local[name]
                self._name(n.children[0])
                if previous:
                    if name not in self.states:
                        self.fail(n.children[0], "%s[t-1]: only states have a previous value" % name)
                    return symbols.vector(name, "t-1")
                if name in known_vectors:
                    return symbols.vector(name, "t")
                if name in self.functions:
                    self.fail(n.children[0], "%s is a function; call it as %s(...)" % (name, name))
                return symbols.parameter(name)
            self.fail(n, "unsupported construct %s" % kind)

        expr = walk(node)
        return (expr, (size, deepest)) if sized else expr

    def _power(self, node, base, exponent):
        """base ** exponent, refusing a constant exponent so large that SymPy would hang on it."""
        if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
            self.fail(node, "the exponent %s is larger than %d" % (sympy.sstr(exponent)[:20], MAX_EXPONENT))
        if exponent.is_Number and base.is_Number and abs(base) > 2 ** MAX_EXPONENT:
            self.fail(node, "a power of a constant larger than 2**%d" % MAX_EXPONENT)
        return base ** exponent

    def _name_preactivations(self, equations: list[Equation]) -> list[Equation]:
        """Give a name to the argument of a function whose derivative cannot be written with
        its output (relu, softsign, a user's gelu): `h = relu(W @ x)` becomes `a^h = W @ x`
        and `h = relu(a^h)`, so that backward formulas can refer to a^h_t.  The name is one the
        file does not use (in the file, in LaTeX or in Python): a^h, else a^h2, a^h3, ..."""
        taken = _Taken(self, equations)
        out = []
        for eq in equations:
            rhs, extra = eq.rhs, []
            while True:  # innermost first, on the equation as it is now (relu(W x) + W x inside softsign)
                candidates = [node for node in sorted(rhs.atoms(sympy.Function), key=sympy.default_sort_key)
                              if _needs_a_name(node, rhs)]
                inner = [n for n in candidates if not any(c != n and n.args[0].has(c) for c in candidates)]
                if not inner:
                    break
                node = inner[0]
                name, form = taken.fresh(eq.target, self.latex.get(eq.target))
                self.latex[name] = form
                extra.append(Equation(name, node.args[0], eq.line))
                rhs = rhs.xreplace({node.args[0]: symbols.vector(name)})
            out.extend(extra)
            out.append(Equation(eq.target, rhs, eq.line, eq.written if not extra else rhs))
        return out

    def _topological(self, equations: list[Equation]) -> list[Equation]:
        """Order equations so that every quantity at t is computed before it is used."""
        by_target = {eq.target: eq for eq in equations}
        ordered, visiting, done = [], set(), set()

        def visit(eq):
            if eq.target in done:
                return
            if eq.target in visiting:
                raise CellError("%s:%d: the equations form a cycle through %s" % (self.source, eq.line, eq.target))
            visiting.add(eq.target)
            for sym in sorted(eq.rhs.free_symbols, key=str):
                ref = symbols.read(sym)
                if ref and ref.time == "t" and ref.name in by_target:
                    visit(by_target[ref.name])
            visiting.discard(eq.target)
            done.add(eq.target)
            ordered.append(eq)

        for eq in equations:
            visit(eq)
        return ordered

    def _quantities(self, equations: list[Equation]) -> dict[str, symbols.Quantity]:
        """Name every quantity and shape every parameter from its use."""
        out: dict[str, symbols.Quantity] = {}

        def add(name, kind):
            if name not in out:
                latex = self.latex.get(name, symbols.latex_name(name))
                if not _ONE_SYMBOL.match(latex):
                    raise CellError("%s: the name %s would print as %s, which reads as a product of letters; "
                                    "use one letter with scripts (such as %s_%s) or give it a `latex` line"
                                    % (self.source, name, latex, name[0], name[1:].replace("_", "")))
                out[name] = symbols.Quantity(name, kind, latex, symbols.python_name(name))

        add(self.input, "input")
        for state in self.states:
            add(state, "state")
        for eq in equations:
            add(eq.target, "state" if eq.target in self.states else "intermediate")
        vector_rank = {name: k for k, name in enumerate([self.input, *self.states])}
        matrices = {dot.args[0] for eq in equations for dot in eq.rhs.atoms(Dot)}
        widths = {}  # a matrix multiplies vectors of one size only: D (the input) or H
        for eq in equations:
            for matrix, vec in (dot.args for dot in eq.rhs.atoms(Dot)):
                width = "D" if symbols.read(vec).name == self.input else "H"
                if widths.setdefault(matrix, width) != width:
                    raise CellError("%s:%d: %s multiplies both the input %s and a vector of the state size; "
                                    "use two matrices" % (self.source, eq.line, matrix, self.input))
        for eq in equations:
            dots = sorted(eq.rhs.atoms(Dot), key=lambda d: (
                vector_rank.get(symbols.read(d.args[1]).name, len(vector_rank)), str(d.args[0])))
            for dot in dots:
                add(dot.args[0].name, "matrix")
            # the symbols used elementwise: what is left once every W @ v is set aside
            elementwise = eq.rhs.xreplace({dot: sympy.Dummy() for dot in dots}).free_symbols
            for sym in sorted(elementwise, key=str):
                if symbols.read(sym) is not None or isinstance(sym, sympy.Dummy):
                    continue
                if sym in matrices:
                    raise CellError("%s:%d: %s is used both as a matrix and elementwise" % (self.source, eq.line, sym))
                add(sym.name, "diagonal" if _is_scaling(eq.rhs, sym) else "bias")
        return out


class _Taken:
    """The names a cell file uses, as written, in Python and in LaTeX, so that a name the parser gives
    (a pre-activation's a^g) is never one of them, nor prints or runs as one of them."""

    def __init__(self, builder: "_Builder", equations: list[Equation]):
        names = {builder.input, *builder.states, *builder.latex, *builder.functions}
        names |= {eq.target for eq in equations}
        names |= {(symbols.read(s).name if symbols.read(s) else s.name) for eq in equations for s in eq.rhs.free_symbols}
        self.keys = set()
        for name in names:
            self.keys |= _keys(name, builder.latex.get(name, symbols.latex_name(name)))

    def fresh(self, target: str, target_latex: str | None) -> tuple[str, str]:
        """The name and LaTeX form of the next pre-activation of `target`: a^g, a^{g}; then a^g2, a^{g,2}.
        The form is a^{the target's latex} where that reads as one symbol (a^{\\hat{h}} does not)."""
        for k in range(1, MAX_EQUATIONS + 2):
            name = "a^%s%s" % (target, "" if k == 1 else k)
            form = "a^{%s}" % (target_latex or target)
            if k > 1 or not _ONE_SYMBOL.match(form):
                form = "a^{%s}" % target if k == 1 else "a^{%s,%d}" % (target, k)
            keys = _keys(name, form)
            if not keys & self.keys:
                self.keys |= keys
                return name, form
        raise CellError("no free name for a pre-activation of %s" % target)  # more than MAX_EQUATIONS taken


def _keys(name: str, latex: str) -> set:
    """What must tell two quantities apart: their names in the file and in Python, and their LaTeX."""
    return {("name", name), ("python", symbols.python_name(name)), ("latex", _printed_key(latex))}


def _printed_key(latex: str) -> str:
    """A LaTeX form as a reader tells symbols apart: without braces and spaces, and without the fonts
    that mark a vector (\\mathbf{c} is c), so a^{g} and a^g, \\vec{c} and c are one symbol."""
    text = re.sub(r"\\(%s)\s*\{([^{}]*)\}" % "|".join(VECTOR_FONTS), r"\2", latex)
    return re.sub(r"[{}\s]", "", text)


def _needs_a_name(node, rhs) -> bool:
    """A function of a product W v whose derivative cannot be written with its output (unless it is
    the whole equation q = f(P) of a function such as the sigmoid, whose derivative uses q)."""
    if isinstance(node, Dot) or len(node.args) != 1 or not node.args[0].has(Dot):
        return False
    z = sympy.Dummy("z", real=True)
    expressible = sympy.diff(node.func(z), z).has(node.func(z))
    return not (node == rhs and expressible)


def _tree_kind(node) -> str | None:
    return node.data if isinstance(node, lark.Tree) else None


_CELL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _constants(expr: sympy.Expr) -> set:
    """The numbers of an expression and its constant subexpressions (exp(1000), 2 ** 0.5 * 3)."""
    return {node for node in sympy.preorder_traversal(expr) if node.is_number}


def _constant_problem(number) -> str:
    """Why a constant cannot go into generated code ('' when it can): finite, at most MAX_CONSTANT in
    magnitude (a fraction's numerator and denominator too), and not a nonzero that float64 loses."""
    if not number.is_Number:  # a constant expression: its value
        try:
            number = sympy.Float(float(number.evalf(30)))
        except (TypeError, ValueError, OverflowError):
            return "which is no finite real number"
    if not number.is_finite:
        return "which is not finite"
    parts = [number.p, number.q] if number.is_Rational else [number]
    if any(abs(part) > MAX_CONSTANT for part in parts):
        return "which is larger than %g" % MAX_CONSTANT
    if number != 0 and float(number) == 0:
        return "which is too small for float64"
    return ""


def _latex_problem(form: str) -> str:
    """Why a `latex` form cannot be typeset as inert text ('' when it can): see LATEX_COMMANDS."""
    if len(form) > MAX_LATEX:
        return "is longer than %d characters" % MAX_LATEX
    if "^^" in form:  # TeX reads ^^5c as a backslash
        return "uses ^^, which TeX reads as a character code"
    position = 0
    while position < len(form):
        match = _LATEX_TOKEN.match(form, position)
        if match is None:
            return ("uses `%s`; a latex form may hold letters, digits, _ ^ { } ' , and commands such as "
                    "\\tilde, \\hat, \\mathrm and Greek letters" % form[position])
        if match.group(1) is not None and match.group(1) not in LATEX_COMMANDS:
            return "uses \\%s, which is not allowed (Greek letters, accents and math fonts only)" % match.group(1)
        position = match.end()
    return ""


# The LaTeX of a quantity must read as ONE symbol (checked documents are parsed back): a letter,
# a Greek letter or an accented letter, then optional sub- and superscripts.
_ONE_SYMBOL = re.compile(r"^([A-Za-z]|\\[A-Za-z]+|\\[A-Za-z]+\{[A-Za-z]\})"
                         r"(_([A-Za-z0-9]|\{[^{}]*\}))?(\^([A-Za-z0-9]|\{[^{}]*\}))?"
                         r"(_([A-Za-z0-9]|\{[^{}]*\}))?$")


def _symbol_problem(form: str) -> str:
    """Why `lstmgen check` would not read a `latex` form back as one symbol ('' when it would): a
    letter, a Greek letter or an accented letter (READABLE_ACCENTS), with scripts."""
    if "'" in form or "\\prime" in form:
        return "a prime reads as a transpose"
    match = _ONE_SYMBOL.match(form)
    if not match:
        if re.search(r"\\mathrm\{[^{}]{2,}\}", form):
            return "\\mathrm of several letters reads as the name of a function"
        return "it reads as a product of letters"
    head = re.match(r"\\([A-Za-z]+)", form)
    command = head.group(1) if head else None
    if command in UNREADABLE_SYMBOLS:
        return "\\%s %s" % (command, UNREADABLE_SYMBOLS[command])
    if command and "{" not in form[: head.end() + 1] and command not in _GREEK.split():
        return "\\%s is not a letter" % command
    if command and form[head.end():].startswith("{") and command not in READABLE_ACCENTS:
        return "the checker reads no \\%s; these accents and fonts it reads: %s" % (
            command, ", ".join("\\" + a for a in READABLE_ACCENTS))
    if re.search(r"_\{[^{}]*,", form):
        return "a comma in a subscript reads as two subscripts"
    return ""


def _is_scaling(expr: sympy.Expr, sym: sympy.Symbol) -> bool:
    """True when `sym` multiplies something elementwise (a peephole), False when it is added."""
    return any(isinstance(node, sympy.Mul) and sym in node.args and
               any(not a.is_number for a in node.args if a != sym)
               for node in sympy.preorder_traversal(expr))
