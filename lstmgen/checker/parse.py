"""Parse one display equation (LaTeX) into SymPy expressions over the cell's symbols.

The grammar is ``lstmgen/grammars/latex.lark``; `ToIR` has one method per rule and builds
expressions programmatically (the text is never eval'ed or sympify'd):

* symbols come from the cell's table (`Vocabulary`): ``h_{t-1}`` -> ``symbols.vector('h','t-1')``,
  ``W^f_x`` -> ``symbols.parameter('W_x^f')``; a symbol differing only in case is accepted
  with a warning; anything else is kept as a free symbol and reported by the judge;
* ``\\frac{\\partial A}{\\partial B}`` -> `Partial(A, B)`; products of derivative fractions
  (``\\cdot``, juxtaposition, ``*``) -> `Chain(...)`, the chain rule;
* juxtaposition and ``\\cdot`` are matrix products where the shapes need one
  (``(W_x^f)^T \\delta``, ``\\delta x_t^T``), elementwise products otherwise; shapes are symbolic
  ('D', 'H', 1) and a mismatch is an `IllShaped` node that the judge reports.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import lark
import sympy
from lark import Transformer

from .. import ir, symbols
from ..cells import cell_cache
from ..functions import UserFunction, sigmoid
from ..reverse import derive
from .environment import parameter_shape, vector_dim

GRAMMAR = Path(__file__).resolve().parent.parent / "grammars" / "latex.lark"
MAX_EQUATION_CHARS = 20_000
MAX_NESTING = 40
MAX_EXPONENT = 8
MAX_NUMBER_CHARS = 30  # a longer literal is no coefficient of a derivation; 5000 digits hit int limits

LOSS = sympy.Symbol("L")               # the scalar loss
STEP_LOSS = "ell"                      # \ell_t: the loss's own term at step t
TRANSPOSE_MARKS = {"T", r"\top", r"\intercal", r"\mathsf{T}", r"\mathrm{T}"}


class Unsupported(Exception):
    """A construct or symbol the checker cannot read; the equation becomes 'unrecognized'."""


# ----------------------------------------------------------------------------- nodes
class Partial(sympy.Function):
    """∂A/∂B as written: A = L (the loss), ℓ_t, a cell vector or an expression; B a symbol."""

    nargs = 2
    is_commutative = True


class Chain(sympy.Function):
    """∂A/∂B · ∂B/∂C · ...: the chain rule, evaluated as vector-Jacobian products."""

    is_commutative = True


class IllShaped(sympy.Function):
    """Operands whose shapes do not fit; args: the operands and a Symbol with the message."""

    is_commutative = True


class FreeSymbol(sympy.Symbol):
    """A symbol not in the cell (θ of a calculus identity, or a typo)."""


def ref_of(expr):
    """The `symbols.Ref` of a cell vector symbol; None for a parameter, a free symbol or an expression."""
    if isinstance(expr, sympy.Symbol) and not isinstance(expr, FreeSymbol):
        return symbols.read(expr)
    return None


# ----------------------------------------------------------------------------- vocabulary
@dataclass
class Vocabulary:
    """The cell's symbols by their written form."""

    cell_name: str
    vectors: dict = field(default_factory=dict)     # latex base ('\\tilde{c}') -> name ('g')
    parameters: dict = field(default_factory=dict)  # (base, sub, sup) -> name ('W_x^f')
    functions: dict = field(default_factory=dict)   # name -> the cell file's own function class ('gelu')

    @property
    def cell(self):
        return derive(self.cell_name).cell


@cell_cache
def vocabulary(cell_name: str) -> Vocabulary:
    cell = derive(cell_name).cell
    vocab = Vocabulary(cell_name)
    for q in cell.quantities.values():
        if q.is_parameter:
            base, _, sup = q.name.partition("^")
            head, _, sub = base.partition("_")
            forms = [(head, sub, sup)]
            if sup and sub:
                forms += [(head, sub + sup, ""), (head, sup + sub, "")]
            elif sup:
                forms += [(head, sup, "")]
            for form in forms:
                vocab.parameters.setdefault(form, q.name)
        else:
            vocab.vectors[_normal_base(q.latex)] = q.name
    for eq in cell.equations:
        for applied in eq.rhs.atoms(UserFunction):
            vocab.functions[type(applied).__name__] = type(applied)
    return vocab


def _normal_base(latex: str) -> str:
    text = re.sub(r"\\(mathbf|boldsymbol|bm|mathit|mathrm|vec)\{([^{}]*)\}", r"\2", latex)
    text = re.sub(r"\\widetilde", r"\\tilde", text)
    text = re.sub(r"\\widehat", r"\\hat", text)
    text = re.sub(r"\\overline", r"\\bar", text)
    return text.replace(" ", "")


_TIME = re.compile(r"^(t([+-]\d+)?|\d+)$")


def _script_text(token: str) -> str:
    text = str(token).strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return re.sub(r"\s+", "", text)


# ----------------------------------------------------------------------------- shapes
def shape(expr, cell_name: str, memo=None) -> tuple:
    """Symbolic shape: () for a scalar, (rows, cols) with 'D', 'H' or 1 ('?' once ill-shaped)."""
    if memo is not None and expr in memo:
        return memo[expr]
    out = _shape(expr, cell_name)
    if memo is not None:
        memo[expr] = out
    return out


def _shape(expr, cell_name: str) -> tuple:
    cell = derive(cell_name).cell
    if expr.is_Number:
        return ()
    if isinstance(expr, FreeSymbol):
        return ("Z", 1)
    if isinstance(expr, sympy.Symbol):
        if expr == LOSS:
            return ()
        ref = symbols.read(expr)
        if ref is None:
            return parameter_shape(cell_name, expr.name)
        if ref.name == STEP_LOSS:
            return ()
        return (vector_dim(cell, ref.name), 1)
    if isinstance(expr, Partial):
        return _shape(expr.args[1], cell_name)
    if isinstance(expr, Chain):
        return _shape(expr.args[-1].args[1], cell_name)
    if isinstance(expr, IllShaped):
        return ("?", "?")
    if isinstance(expr, ir.Transpose):
        s = _shape(expr.args[0], cell_name)
        return s if s == () else (s[1], s[0])
    if isinstance(expr, (ir.MatMul, ir.Dot)):
        a, b = _shape(expr.args[0], cell_name), _shape(expr.args[1], cell_name)
        return b if a == () else a if b == () else (a[0], b[1])
    if isinstance(expr, ir.TDot):
        return (_shape(expr.args[0], cell_name)[1], 1)
    if isinstance(expr, ir.Outer):
        return (_shape(expr.args[0], cell_name)[0], _shape(expr.args[1], cell_name)[0])
    if isinstance(expr, (ir.SumOverTime, sympy.Pow)):
        return _shape(expr.args[0], cell_name)
    shapes = [s for s in (_shape(a, cell_name) for a in expr.args) if s != ()]
    return shapes[0] if shapes else ()


def show_shape(s: tuple) -> str:
    return "a scalar" if s == () else "%s×%s" % s


# ----------------------------------------------------------------------------- transformer
@dataclass
class _Name:
    """A written name before its scripts are known: base 'c', '\\tilde{c}', '\\theta'."""

    base: str
    subs: list = field(default_factory=list)
    sups: list = field(default_factory=list)
    position: int | None = None  # where it starts in the equation text (for `flip`)

    def written(self) -> str:
        text = self.base
        for mark, scripts in (("_", self.subs), ("^", self.sups)):
            for s in scripts:
                s = str(s).strip()
                text += mark + (s if len(s) == 1 or s.startswith(("{", "\\")) else "{%s}" % s)
        return text


@dataclass
class _Differential:
    """d X in \\frac{dL}{dh_t}."""

    of: object


class ToIR(Transformer):
    """Parse tree of one side of an equation -> SymPy expression (see the module docstring)."""

    def __init__(self, vocab: Vocabulary, flip=frozenset()):
        super().__init__()
        self.vocab = vocab
        self.cell = vocab.cell
        self.warnings: list[str] = []
        self.free: set[str] = set()
        self.memo: dict = {}
        self.flip = flip          # positions of names whose transpose is toggled (diagnosis)
        self.names: list = []     # (position, written name) of every cell symbol read

    # ---- helpers --------------------------------------------------------------------
    def value(self, obj):
        if isinstance(obj, _Name):
            return self.resolve(obj)
        if isinstance(obj, _Differential):
            return self.product(self.resolve(_Name("d")), self.value(obj.of), "juxt")
        return obj

    def shape(self, expr):
        return shape(expr, self.vocab.cell_name, self.memo)

    def resolve(self, name: _Name):
        subs = [_script_text(s) for s in name.subs]
        sups = [_script_text(s) for s in name.sups]
        if len(subs) > 1 or len(sups) > 2:
            raise Unsupported("%s has too many scripts" % name.written()[:40])
        sub = subs[0] if subs else ""
        post = []  # what trailing superscripts mean: 'T' or an exponent
        gate_sup = ""
        for s in sups:
            if s in TRANSPOSE_MARKS:
                post.append("T")
            elif s.isdigit():
                post.append(int(s))
            elif not gate_sup and not post:
                gate_sup = s
            else:
                raise Unsupported("cannot read the superscript ^%s of %s" % (s, name.written()))
        base = _normal_base(name.base)
        expr = self._lookup(base, sub, gate_sup, name)
        for p in post:
            if p == "T":
                expr = ir.Transpose(expr)
            else:
                expr = self._power(expr, p)
        if name.position is not None and name.position in self.flip:
            expr = expr.args[0] if isinstance(expr, ir.Transpose) else ir.Transpose(expr)
        return expr

    def _lookup(self, base, sub, sup, name, fold_case=False):
        vocab = self.vocab
        key = lambda s: s.lower() if fold_case else s  # noqa: E731
        if not sub and not sup and base in ("L", r"\mathcal{L}") or (fold_case and base == "l" and not sub):
            return LOSS
        if base in (r"\ell", "l") and _TIME.match(sub) and not sup:
            return symbols.vector(STEP_LOSS, sub)
        for (pbase, psub, psup), pname in vocab.parameters.items():
            if key(pbase) == key(base) and key(psub) == key(sub) and key(psup) == key(sup):
                self.names.append((name.position, name.written()))
                return self._found(symbols.parameter(pname), name, fold_case, symbols.latex_name(pname))
        scripted = "%s^{%s}" % (base, sup) if sup else base  # a named pre-activation a^{h}_t
        for vbase, vname in vocab.vectors.items():
            if key(vbase) == key(scripted):
                if not sub:
                    raise Unsupported("%s has no time index (write %s_t, %s_{t-1}, ...)"
                                      % (name.written(), base, base))
                if not _TIME.match(sub):
                    raise Unsupported("cannot read the time index of %s (understood: t, t-1, t+1, 0, 1, ...)"
                                      % name.written())
                sym = symbols.vector(vname, sub)
                self.names.append((name.position, name.written()))
                return self._found(sym, name, fold_case, symbols.with_time(self.cell.quantities[vname].latex, sub))
        if not fold_case:
            return self._lookup(base, sub, sup, name, fold_case=True)
        if sub and not _TIME.match(sub) or sup:
            raise Unsupported("unknown symbol %s" % name.written())
        self.free.add(name.written())
        return FreeSymbol(name.written())

    def _found(self, sym, name, folded, proper):
        if folded:
            self.warnings.append("warning: %s read as %s (the symbols differ only in case)" % (name.written(), proper))
        return sym

    def _power(self, expr, exponent):
        if abs(exponent) > MAX_EXPONENT:
            raise Unsupported("the exponent %s is too large" % str(exponent)[:20])
        out = sympy.Pow(expr, exponent)
        # SymPy merges (a^8)^8 into a^64: bound the merged exponent too, or nested powers reach
        # a^(8^20), whose numeric repair attempts (2a)^(8^20) compute a gigantic integer
        if isinstance(out, sympy.Pow) and out.exp.is_Number and abs(out.exp) > MAX_EXPONENT:
            raise Unsupported("the exponent %s is too large" % str(out.exp)[:20])
        return out

    def product(self, a, b, how: str):
        """a (how) b where how is 'hadamard', 'cdot' or 'juxt'."""
        if isinstance(a, (Partial, Chain)) and isinstance(b, (Partial, Chain)):
            parts = (a.args if isinstance(a, Chain) else (a,)) + (b.args if isinstance(b, Chain) else (b,))
            return Chain(*parts)
        sa, sb = self.shape(a), self.shape(b)
        if "?" in sa + sb:
            return IllShaped(a, b, sympy.Symbol("shape"))
        if sa == () or sb == ():
            return sympy.Mul(a, b)
        if how == "hadamard":
            if sa == sb:
                return sympy.Mul(a, b)
            return self.ill(a, b, "an elementwise product of %s and %s" % (show_shape(sa), show_shape(sb)))
        if sa[1] == sb[0] and not (sa == sb and sa[1] == 1):
            return ir.MatMul(a, b)
        if sa == sb:
            return sympy.Mul(a, b)
        return self.ill(a, b, "a product of %s and %s" % (show_shape(sa), show_shape(sb)))

    def ill(self, a, b, message):
        return IllShaped(a, b, sympy.Symbol(message))

    def combine(self, a, b, sign):
        sa, sb = self.shape(a), self.shape(b)
        b = b if sign > 0 else -b
        if "?" in sa + sb:
            return IllShaped(a, b, sympy.Symbol("shape"))
        if sa != sb and () not in (sa, sb):
            return self.ill(a, b, "a sum of %s and %s" % (show_shape(sa), show_shape(sb)))
        return sympy.Add(a, b, evaluate=False)  # unevaluated: the writer's term order is kept

    # ---- rules: sums and products ---------------------------------------------------
    def add(self, children):
        return self.combine(self.value(children[0]), self.value(children[1]), +1)

    def sub(self, children):
        return self.combine(self.value(children[0]), self.value(children[1]), -1)

    def neg(self, children):
        return -self.value(children[0])

    def pos(self, children):
        return self.value(children[0])

    def hadamard(self, children):
        return self.product(self.value(children[0]), self.value(children[2]), "hadamard")

    def cdot(self, children):
        return self.product(self.value(children[0]), self.value(children[2]), "cdot")

    def juxt(self, children):
        a, b = children
        if isinstance(a, _Name) and a.base == "d" and not a.subs and not a.sups:
            return _Differential(b)
        return self.product(self.value(a), self.value(b), "juxt")

    def divide(self, children):
        a, b = self.value(children[0]), self.value(children[1])
        if self.shape(b) != () and self.shape(a) != self.shape(b) and self.shape(a) != ():
            return self.ill(a, b, "a division of %s by %s" % (show_shape(self.shape(a)), show_shape(self.shape(b))))
        return sympy.Mul(a, sympy.Pow(b, -1))

    def sum_over(self, children):
        limits, body = (children[1], children[2]) if len(children) == 3 else (None, children[1])
        if limits is not None:
            lower, upper = limits
            if lower not in ("t", "t=1") or upper not in (None, "T"):
                raise Unsupported("only sums over t = 1..T are understood (found _{%s}^{%s})" % (lower, upper))
        return ir.SumOverTime(self.value(body))

    def limits(self, children):
        return (_script_text(children[0]), _script_text(children[1]) if len(children) > 1 else None)

    def limits_swapped(self, children):
        return (_script_text(children[1]), _script_text(children[0]))

    # ---- rules: names and scripts ----------------------------------------------------
    def letter(self, children):
        return _Name(str(children[0]), position=children[0].start_pos)

    greek = letter

    def number(self, children):
        text = str(children[0])
        if len(text) > MAX_NUMBER_CHARS:
            raise Unsupported("the number %s... is too long" % text[:12])
        return sympy.Rational(text) if "." in text else sympy.Integer(text)

    def accent(self, children):
        inner = children[1]
        if isinstance(inner, _Name) and not inner.subs and not inner.sups:
            accent = str(children[0])
            accent = {r"\widetilde": r"\tilde", r"\widehat": r"\hat", r"\overline": r"\bar"}.get(accent, accent)
            return _Name("%s{%s}" % (accent, inner.base), position=inner.position)
        raise Unsupported("%s{...} is understood on a single letter only" % children[0])

    def accent_letter(self, children):
        return _Name("%s{%s}" % (children[0], children[1]), position=children[1].start_pos)

    def font(self, children):
        return children[1]  # \mathbf{h}: the wrapper changes nothing

    def scripted(self, children):
        head, scripts = children[0], children[1:]
        if isinstance(head, _Name):
            for kind, text in scripts:
                (head.subs if kind == "sub" else head.sups).append(str(text))
            return head
        expr = self.value(head)
        for kind, text in scripts:
            text = _script_text(text)
            if kind == "sub":
                raise Unsupported("a subscript _%s on an expression" % text)
            if text in TRANSPOSE_MARKS:
                expr = ir.Transpose(expr)
            elif text.isdigit():
                expr = self._power(expr, int(text))
            else:
                raise Unsupported("cannot read the superscript ^%s" % text)
        return expr

    def subscript(self, children):
        return ("sub", children[0])

    def superscript(self, children):
        return ("sup", children[0])

    def power(self, children):
        return _script_text(children[0])

    # ---- rules: groups -----------------------------------------------------------------
    def paren(self, children):
        return self.value(children[0])

    def bracket(self, children):
        return self.value(children[0])

    def absolute(self, children):
        return sympy.Abs(self.value(children[1]))

    def brace(self, children):
        return self.value(children[1])

    def group(self, children):
        return children[0]  # TeX grouping: {W}_x^f keeps being a name

    def placeholder(self, children):
        raise Unsupported(r"\sigma(\cdot) is notation, not a formula")

    # ---- rules: functions and derivatives ----------------------------------------------
    def function(self, children):
        token = str(children[0])
        exponent = children[1] if len(children) == 3 else None
        argument = self.value(children[-1])
        kind = re.sub(r"^\\(operatorname|mathrm|text|textrm|mathit)\{\s*|\s*\}$", "", token).lstrip("\\")
        function = {"sigma": sigmoid, "sigmoid": sigmoid, "sigm": sigmoid, "tanh": sympy.tanh,
                    "exp": sympy.exp, "log": sympy.log, "ln": sympy.log, "step": sympy.Heaviside,
                    "sign": sympy.sign}.get(kind) or self.vocab.functions.get(kind)
        if function is None:
            raise Unsupported("unknown function %s" % token)
        if "?" in self.shape(argument) or self.shape(argument) not in ((), ("H", 1), ("D", 1), ("Z", 1)):
            raise Unsupported("%s of a matrix" % token)
        out = function(argument)
        if exponent is not None:
            if exponent.isdigit():
                out = self._power(out, int(exponent))
            else:
                raise Unsupported("cannot read %s^%s" % (token, exponent))
        return out

    def fraction(self, children):
        num, den = children[1], children[2]
        if isinstance(num, _Differential) and isinstance(den, _Differential):
            return self._derivative(num.of, den.of)
        num, den = self.value(num), self.value(den)
        sa, sb = self.shape(num), self.shape(den)
        if sb != () and sa != sb and sa != ():
            return self.ill(num, den, "a fraction of %s over %s" % (show_shape(sa), show_shape(sb)))
        return sympy.Mul(num, sympy.Pow(den, -1))

    def derivative(self, children):
        return self._derivative(children[2], children[4])

    def derivative_inline(self, children):
        return self._derivative(children[1], children[3])

    def _derivative(self, num, den):
        num, den = self.value(num), self.value(den)
        if isinstance(den, ir.Transpose):
            den = den.args[0]
        if not isinstance(den, sympy.Symbol) or den == LOSS:
            raise Unsupported("a derivative with respect to %s" % sympy.sstr(den))
        return Partial(num, den)


# ----------------------------------------------------------------------------- parsing
@lru_cache(maxsize=1)
def parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                     maybe_placeholders=False)


@dataclass
class Side:
    """One side of a (chained) equality: its text, expression and what reading it noticed."""

    text: str
    expr: object = None
    tree: object = None
    warnings: list = field(default_factory=list)
    free: set = field(default_factory=set)
    names: list = field(default_factory=list)   # (position, written) of every cell symbol read


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
        return "cannot read %r at column %d" % (snippet, exc.column)
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        found = "the end of the equation" if exc.token.type == "$END" else repr(str(exc.token))
        expected = sorted({_TERMINAL_NAMES[t] for t in exc.expected if t in _TERMINAL_NAMES})
        where = "at column %s" % exc.column if exc.token.type != "$END" else ""
        hint = "; expected %s" % " or ".join(expected[:4]) if expected and len(exc.expected) <= 4 else ""
        return " ".join(("unexpected %s" % found, where)).strip() + hint
    if isinstance(exc, lark.exceptions.UnexpectedEOF):
        return "the equation ends too early"
    return "cannot parse the equation"


def parse_equation(text: str, cell_name: str) -> list:
    """Parse `text` (one equation) into its sides; raise Unsupported with a one-line reason."""
    if len(text) > MAX_EQUATION_CHARS:
        raise Unsupported("the equation is longer than %d characters" % MAX_EQUATION_CHARS)
    if _nesting(text) > MAX_NESTING:
        raise Unsupported("brackets nested deeper than %d levels" % MAX_NESTING)
    try:
        tree = parser().parse(text)
    except lark.exceptions.LarkError as exc:
        raise Unsupported(describe_parse_error(exc, text)) from None
    vocab = vocabulary(cell_name)
    sides = []
    for child in tree.children:
        meta = child.meta if isinstance(child, lark.Tree) else child
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        side = Side(text[start:end].strip() if start is not None else text.strip(), tree=child)
        build_side(side, vocab)
        sides.append(side)
    return sides


def build_side(side: Side, vocab: Vocabulary, flip=frozenset()):
    """Transform one side's subtree into side.expr (and its warnings).  Raises Unsupported."""
    transformer = ToIR(vocab, flip)
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
                raise Unsupported("cannot read %r" % str(tree))
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
    return side
