"""Read the parse tree of one side of an equation into SymPy expressions over the cell's symbols,
in the document's notation (`Notation`): one Transformer method per grammar rule, building
expressions programmatically (the text is never eval'ed or sympify'd).

* names are split into a key and a time (``\\Gamma_f^{\\langle t-1 \\rangle}`` -> ``\\Gamma_f``, t-1) and
  looked up in the notation; a symbol differing only in case is accepted with a warning; an
  unknown one is a free symbol or an `Unsupported` with a message saying what to do;
* ``\\frac{\\partial A}{\\partial B}`` -> `Partial(A, B)`; products of derivative fractions
  (``\\cdot``, juxtaposition, ``*``) -> `Chain(...)`, the chain rule; ``dW_f`` -> ∂L/∂W_f;
* juxtaposition and ``\\cdot`` are matrix products where the shapes need one, elementwise
  products otherwise; a mismatch is an `IllShaped` node that the judge reports.

`ToIR` reads grammars/latex.lark (the project's own notation), `AuthorsToIR` adds the rules of
its extension grammars/authors.lark.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy
from lark import Transformer

from .. import ir, symbols
from ..functions import sigmoid
from .environment import at_time
from .nodes import (LOSS, STEP_LOSS, TRANSPOSE_MARKS, Blocks, Chain, FreeSymbol, IllShaped, Partial, Stack,
                    Unsupported, shape, show_shape)
from .notation import Notation, make_key, normal_key, script_text, time_of

MAX_EXPONENT = 8
_script_text = script_text
MAX_NUMBER_CHARS = 30  # a longer literal is no coefficient of a derivation; 5000 digits hit int limits
MAX_NUMBER_BITS = 1000  # a power of a number past this (nested powers grow it eightfold each) is refused

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
    """d X in \\frac{dL}{dh_t}, or a gradient's name dW_f."""

    of: object


@dataclass
class _Group:
    """An expression in brackets (kept apart so that \\tanh(c_t)^2 can square the tanh)."""

    expr: object


@dataclass
class _Scripted:
    """A bracketed expression with superscripts, applied once it is known what they bind to."""

    head: object
    scripts: list


@dataclass
class _PendingPrefix:
    """`a d`: a product ending in a bare d (or \\delta) that may be the start of a gradient's name."""

    left: object
    prefix: object


@dataclass
class _Operator:
    """\\frac{d}{dz}: a derivative waiting for what it acts on."""

    wrt: object


def _plain_text(obj) -> str:
    """A short readable form of a parsed piece, for messages (no Python reprs)."""
    if isinstance(obj, _Name):
        return obj.written()
    if isinstance(obj, sympy.Symbol):
        return obj.name
    return "an expression"


def unknown_symbol(notation: Notation, written: str, key: str) -> str:
    """What to tell a writer whose symbol the notation does not have, and what to do about it."""
    cell = notation.cell
    known = notation.known_symbols()
    listed = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
    if notation.origin == "learned":
        return "%s is not a symbol of the cell stated in the document's forward equations (it has %s)" % (
            written, listed)
    return ("%s is not a quantity of the %s %s cell (it has %s); state the forward equations in the "
            "document or pass --cell FILE" % (written, "assumed" if notation.origin == "default" else "given",
                                              cell.name, listed))


def definition_at(expr, time: str):
    """A defined name's expression (written at t) at another time."""
    return expr if time == "t" else at_time(expr, time)


PRIMES = {"'", r"\prime"}
_ADJOINT = re.compile(r"^\\(?:bar|overline)\{([A-Za-z])\}(.*)$")  # \bar{v}: the adjoint of v
_SLICE = re.compile(r"^([DH0-9+\-]+):([DH0-9+\-]+)$")


def _time_then_transpose(script: str) -> list:
    """'(t)\\top' -> ['(t)', '\\top']: a time and a transpose written in one superscript."""
    for mark in sorted(TRANSPOSE_MARKS, key=len, reverse=True):
        if script.endswith(mark) and len(script) > len(mark) and time_of(script[:-len(mark)], superscript=True):
            return [script[:-len(mark)], mark]
    return [script]


def _dimension(bound: str):
    """'D+1' -> D + 1 (a SymPy expression in the symbols D and H)."""
    total, sign, number = sympy.Integer(0), 1, ""
    for ch in bound + "+":
        if ch.isdigit():
            number += ch
            continue
        if number:
            total += sign * int(number)
            number = ""
        if ch in "DH":
            total += sign * sympy.Symbol(ch)
        elif ch in "+-":
            sign = 1 if ch == "+" else -1
    return total
BATCH_INDICES = {"batch", r"\text{batch}", r"\mathrm{batch}", "samples", r"\text{samples}", "n", "N", "m"}
GRADIENT_PREFIXES = ("d", r"\delta", r"\Delta")  # dW_f, \delta a_t: the loss's gradient with respect to what follows
ELEMENTWISE_FUNCTIONS = {"sigma": sigmoid, "sigmoid": sigmoid, "sigm": sigmoid, "tanh": sympy.tanh,
                         "exp": sympy.exp, "log": sympy.log, "ln": sympy.log, "step": sympy.Heaviside,
                         "sign": sympy.sign}
SCALAR_OR_VECTOR = ((), ("H", 1), ("D", 1), (1, "H"), (1, "D"), ("Z", 1))


class ToIR(Transformer):
    """Parse tree of one side of an equation -> SymPy expression (see the module docstring)."""

    def __init__(self, notation: Notation, flip=frozenset()):
        super().__init__()
        self.notation = notation
        self.cell = notation.cell
        self.warnings: list[str] = []
        self.free: set[str] = set()
        self.memo: dict = {}
        self.flip = flip          # positions of names whose transpose is toggled (diagnosis)
        self.names: list = []     # (position, written name) of every cell symbol read
        self.differentials: list = []  # what a dX name was read as the gradient of
        self.last_step = False    # a time written T (h_T): the equation is about the last step

    # ---- helpers --------------------------------------------------------------------
    def value(self, obj):
        if isinstance(obj, _Name):
            return self.resolve(obj)
        if isinstance(obj, _Differential):
            return self.gradient_name(obj)
        if isinstance(obj, _Group):
            return obj.expr
        if isinstance(obj, _Scripted):
            return self.apply_scripts(self.value(obj.head), obj.scripts)
        if isinstance(obj, _PendingPrefix):
            return self.product(self.value(obj.left), self.value(obj.prefix), "juxt")
        if isinstance(obj, _Operator):
            raise Unsupported(r"a derivative operator \frac{d}{d%s} with nothing to act on" % obj.wrt)
        return obj

    def shape(self, expr):
        return shape(expr, self.notation, self.memo)

    def split(self, name: _Name) -> tuple[str, str | None, list]:
        """(key, time or None, trailing marks: 'T', "'" or an exponent) of a written name."""
        subs = [_script_text(s) for s in name.subs]
        sups = [_script_text(s) for s in name.sups]
        if len(subs) > 2 or len(sups) > 3:
            raise Unsupported("%s has too many scripts" % name.written()[:40])
        post, time, kept = [], None, []
        sups = [part for s in sups for part in _time_then_transpose(s)]
        for s in sups:
            if s in TRANSPOSE_MARKS:
                post.append("T")
            elif s in PRIMES:
                post.append("'")
            elif s.isdigit():
                post.append(int(s))
            elif time is None and time_of(s, True, self.notation.bare_superscripts):
                time = time_of(s, True, self.notation.bare_superscripts)
            elif not kept and not post:
                kept.append(s)
            else:
                raise Unsupported("cannot read the superscript ^%s of %s" % (s, name.written()))
        kept_subs = []
        # the outer subscript is the time: {g_1}_t (a name with a subscript of its own, at t)
        sup = kept[0] if kept else ""
        for s in reversed(subs):
            if time is None and time_of(s, superscript=False) and not (
                    len(subs) == 1 and s.isdigit() and self.notation.meaning(make_key(name.base, s, sup)) is not None):  # W_1
                time = time_of(s, superscript=False)
                time = time_of(s, superscript=False)
            elif time is None and "," in s and time_of(s.rsplit(",", 1)[1], superscript=False):
                head, tail = s.rsplit(",", 1)
                kept_subs.insert(0, head)
                time = time_of(tail, superscript=False)
            else:
                kept_subs.insert(0, s)
        if len(kept_subs) > 1:
            raise Unsupported("%s has two subscripts" % name.written()[:40])
        return make_key(name.base, kept_subs[0] if kept_subs else "", sup), time, post

    def resolve(self, name: _Name):
        key, time, post = self.split(name)
        expr = self.lookup(key, time, name)
        for p in post:
            if p == "T" or p == "'":
                expr = ir.Transpose(expr)
            else:
                expr = self._power(expr, p)
        if name.position is not None and name.position in self.flip:
            expr = expr.args[0] if isinstance(expr, ir.Transpose) else ir.Transpose(expr)
        return expr

    def lookup(self, key: str, time: str | None, name: _Name):
        """The expression a written key at a time stands for in this document's notation."""
        notation = self.notation
        meaning = notation.meaning(key)
        if meaning is None:
            folded = notation.folded(key)
            if folded is not None:
                known, meaning = folded
                shown = notation.with_time(known, time) if time and meaning.kind == "vector" else known
                self.warnings.append("warning: %s read as %s (the symbols differ only in case)"
                                     % (name.written(), shown))
        if meaning is None:
            adjoint = _ADJOINT.match(key)
            if adjoint and notation.meaning(adjoint.group(1) + adjoint.group(2)) is not None:
                # \bar{n}_t, \bar{W}_{in}: the adjoint (the loss's gradient) of a symbol of the cell
                of = self.lookup(adjoint.group(1) + adjoint.group(2), time, name)
                self.differentials.append(of)
                return Partial(LOSS, of)
            if time is not None and key not in ("d",):
                raise Unsupported(unknown_symbol(notation, name.written(), key))
            if name.subs or name.sups:
                raise Unsupported(unknown_symbol(notation, name.written(), key))
            self.free.add(name.written())
            return FreeSymbol(name.written())
        if meaning.kind == "loss":
            return LOSS if time is None else symbols.vector(STEP_LOSS, self._time(time, name))
        if meaning.kind == "defined":
            return definition_at(notation.definitions[key], self._time(time or "t", name))
        if time is not None and meaning.kind != "vector":
            raise Unsupported("%s has a time index, but %s is a parameter" % (name.written(), key))
        self.names.append((name.position, name.written()))
        if meaning.kind == "parameter":
            return symbols.parameter(meaning.name)
        if meaning.kind == "blocks":
            return Blocks(*[symbols.parameter(p) for p in meaning.parts])
        if meaning.kind == "rowblocks":
            return ir.RowBlocks(*[symbols.parameter(p) for p in meaning.parts])
        if time is None:
            if key not in notation.untimed:
                self.warnings.append("warning: %s has no time index; read as %s" % (
                    name.written(), notation.with_time(key, "t")))
            time = "t"
        return symbols.vector(meaning.name, self._time(time, name))

    def _time(self, time: str, name: _Name) -> str:
        if time.startswith("T"):  # the last step: judged at the witness points where t is the last step
            self.last_step = True
            return "t" + time[1:]
        return time

    def gradient_name(self, differential):
        """dW_f, da_{prev}, d\\Gamma_o standing alone (CS231n-style names): the gradient of the
        loss with respect to what follows the d."""
        of = self.value(differential.of)
        if not isinstance(of, (sympy.Symbol, Blocks, ir.RowBlocks, Stack)) or of == LOSS:
            raise Unsupported("cannot read d%s as the name of a gradient" % _plain_text(of))
        ref = symbols.read(of) if isinstance(of, sympy.Symbol) else None
        if ref is not None and ref.role == "value":
            defined = "d" + normal_key(self.notation.written(ref.name))
            if defined in self.notation.definitions:  # dΓ_o as the document defined it
                return definition_at(self.notation.definitions[defined], ref.time)
        self.differentials.append(of)
        if ref is not None and ref.name not in self.cell.states and ref.name != self.cell.input:
            self.warnings.append("warning: d%s read as the gradient of the loss with respect to %s itself"
                                 % (self.notation.with_time(self.notation.written(ref.name), ref.time),
                                    self.notation.with_time(self.notation.written(ref.name), ref.time)))
        return Partial(LOSS, of)

    def _power(self, expr, exponent):
        if abs(exponent) > MAX_EXPONENT:
            raise Unsupported("the exponent %s is too large" % str(exponent)[:20])
        if isinstance(expr, sympy.Rational) and max(abs(expr.p).bit_length(), expr.q.bit_length()) * abs(exponent) > MAX_NUMBER_BITS:
            raise Unsupported("a power of a number larger than 2^%d" % MAX_NUMBER_BITS)  # ((9^8)^8)^8...: SymPy computes it at once
        out = sympy.Pow(expr, exponent)
        # SymPy merges (a^8)^8 into a^64: bound the merged exponent too, or nested powers reach
        # a^(8^20), whose numeric repair attempts (2a)^(8^20) compute a gigantic integer
        if isinstance(out, sympy.Pow) and out.exp.is_Number and abs(out.exp) > MAX_EXPONENT:
            raise Unsupported("the exponent %s is too large" % str(out.exp)[:20])
        return out

    def product(self, a, b, how: str):
        """a (how) b where how is 'hadamard', 'star', 'cdot' or 'juxt'."""
        if isinstance(a, (Partial, Chain)) and isinstance(b, (Partial, Chain)):
            parts = (a.args if isinstance(a, Chain) else (a,)) + (b.args if isinstance(b, Chain) else (b,))
            return Chain(*parts)
        if how == "star":  # * is elementwise, or a matrix product where the document's forward says so
            how = "juxt" if self.notation.star == "matrix" else "hadamard"
        sa, sb = self.shape(a), self.shape(b)
        if "?" in sa + sb:
            return IllShaped(a, b, sympy.Symbol("shape"))
        if sa == () or sb == ():
            return sympy.Mul(a, b)
        if how == "hadamard":
            if sa == sb:
                return sympy.Mul(a, b)
            return self.ill(a, b, "an elementwise product of %s and %s" % (show_shape(sa), show_shape(sb)))
        if sa[1] == sb[0] and not (sa == sb and 1 in sa):
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

    def stack(self, parts):
        """[a, x]: the author's stacked vector (a 1 folds in a bias)."""
        for part in parts:
            if not part.is_Number and self.shape(part) not in (("H", 1), ("D", 1), (1, "H"), (1, "D")):
                raise Unsupported("only vectors (and a 1) can be stacked in [ , ]")
        return Stack(*parts)

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
        how = "star" if str(children[1]).strip() in ("*", r"\ast") else "hadamard"
        return self.product(self.value(children[0]), self.value(children[2]), how)

    def cdot(self, children):
        return self.product(self.value(children[0]), self.value(children[2]), "cdot")

    def juxt(self, children):
        a, b = children
        if isinstance(a, _Name) and a.base in GRADIENT_PREFIXES and not a.subs and not a.sups \
                and self.notation.meaning(a.base) is None \
                and (a.base == "d" or isinstance(b, _Name) and self._is_known_name(b)):
            return _Differential(b)  # dh_t, and \delta a_t: the gradient's name
        if isinstance(a, _Operator):
            return self._derivative(b, a.wrt)
        if isinstance(a, _PendingPrefix):  # W^T d \Gamma_f: the d belongs to what follows it
            return self.product(self.value(a.left), self.value(self.juxt([a.prefix, b])), "juxt")
        if isinstance(b, _Name) and b.base in GRADIENT_PREFIXES and not b.subs and not b.sups:
            return _PendingPrefix(a, b)
        return self.product(self.value(a), self.value(b), "juxt")

    def _is_known_name(self, name: _Name) -> bool:
        """A vector or a parameter of the cell (what \\delta before it makes a gradient's name of)."""
        try:
            key, time, _ = self.split(name)
        except Unsupported:
            return False
        meaning = self.notation.meaning(key)
        return meaning is not None and meaning.kind in ("vector", "parameter", "blocks", "rowblocks", "defined")

    def divide(self, children):
        a, b = self.value(children[0]), self.value(children[1])
        if self.shape(b) != () and self.shape(a) != self.shape(b) and self.shape(a) != ():
            return self.ill(a, b, "a division of %s by %s" % (show_shape(self.shape(a)), show_shape(self.shape(b))))
        return sympy.Mul(a, sympy.Pow(b, -1))

    def sum_over(self, children):
        limits, body = (children[1], children[2]) if len(children) == 3 else (None, children[1])
        if limits is not None:
            lower, upper = limits
            if lower in BATCH_INDICES and upper is None:
                self.warnings.append("warning: the sum over the batch is read for one sample (column vectors)")
                return self.value(body)
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
        """\\mathbf{h}: the wrapper changes nothing; \\mathcal{L} is a letter of its own (a loss)."""
        inner = children[1]
        if str(children[0]) in (r"\mathcal", r"\mathscr") and isinstance(inner, _Name) and not inner.subs \
                and not inner.sups:
            return _Name(r"\mathcal{%s}" % inner.base, position=inner.position)
        return inner

    def scripted(self, children):
        head, scripts = children[0], children[1:]
        if isinstance(head, _Name):
            for kind, text in scripts:
                (head.subs if kind == "sub" else head.sups).append(str(text))
            return head
        return _Scripted(head, scripts)

    def apply_scripts(self, expr, scripts):
        """(expr)^T, (expr)^2, (expr)': the superscripts of a group; [v]_{1:D}: a slice of it."""
        for kind, text in scripts:
            text = _script_text(text)
            if kind == "sub":
                expr = self._slice(expr, text)
                continue
            if text in TRANSPOSE_MARKS or text in PRIMES:
                expr = ir.Transpose(expr)
            elif text.isdigit():
                expr = self._power(expr, int(text))
            else:
                raise Unsupported("cannot read the superscript ^%s" % text)
        return expr

    def _slice(self, expr, text: str):
        """[v]_{D+1:D+H}: entries of a stacked vector, bounds written with D, H and integers."""
        match = _SLICE.match(text)
        if not match:
            raise Unsupported("a subscript _%s on an expression" % text)
        lo, hi = (_dimension(bound) for bound in match.groups())
        length = sympy.expand(hi - lo + 1)
        shown = {sympy.Symbol("D"): "D", sympy.Symbol("H"): "H"}.get(length)
        if shown is None or self.shape(expr) not in (("H+D", 1), ("D+H", 1), (1, "H+D"), (1, "D+H")) \
                and not str(self.shape(expr)[0]).count("+"):
            raise Unsupported("a slice _{%s} of something that is no stacked vector" % text)
        return ir.Slice(expr, lo, hi)

    def subscript(self, children):
        return ("sub", children[0])

    def superscript(self, children):
        return ("sup", children[0])

    def power(self, children):
        return _script_text(children[0])

    # ---- rules: groups -----------------------------------------------------------------
    def paren(self, children):
        return _Group(self.value(children[0]))

    def bracket(self, children):
        return _Group(self.value(children[0]))

    def absolute(self, children):
        return sympy.Abs(self.value(children[1]))

    def brace(self, children):
        return _Group(self.value(children[1]))

    def group(self, children):
        return children[0]  # TeX grouping: {W}_x^f keeps being a name

    def placeholder(self, children):
        raise Unsupported(r"\sigma(\cdot) is notation, not a formula")

    # ---- rules: functions and derivatives ----------------------------------------------
    def _function_of(self, token: str):
        kind = re.sub(r"^\\(operatorname|mathrm|text|textrm|mathit)\{\s*|\s*\}$", "", token).lstrip("\\")
        function = ELEMENTWISE_FUNCTIONS.get(kind) or self.notation.functions.get(kind)
        if function is None:
            raise Unsupported("unknown function %s" % token)
        return function

    def _argument(self, token, child):
        """The argument of a function, and the scripts that belong to the function's value:
        \tanh(c_t)^2 is (\tanh c_t)^2, as everyone means it."""
        scripts = []
        if isinstance(child, _Scripted) and isinstance(child.head, _Group):
            child, scripts = child.head, child.scripts
        argument = self.value(child)
        if "?" in self.shape(argument) or self.shape(argument) not in SCALAR_OR_VECTOR:
            raise Unsupported("%s of a matrix" % token)
        return argument, scripts

    def function(self, children):
        token = str(children[0])
        exponent = children[1] if len(children) == 3 else None
        argument, scripts = self._argument(token, children[-1])
        out = self._function_of(token)(argument)
        if exponent is not None:
            if exponent.isdigit():
                out = self._power(out, int(exponent))
            else:
                raise Unsupported("cannot read %s^%s" % (token, exponent))
        return self.apply_scripts(out, scripts)

    def fraction(self, children):
        num, den = children[1], children[2]
        if isinstance(num, _Differential) and isinstance(den, _Differential):
            return self._derivative(num.of, den.of)
        if isinstance(num, _Name) and num.base == "d" and not num.subs and not num.sups \
                and isinstance(den, _Differential):
            return _Operator(den.of)  # \frac{d}{dz}: applied to what follows
        if isinstance(den, _Differential) and not isinstance(num, _Differential):
            self.warnings.append("warning: read \\frac{%s}{d...} as a derivative (its numerator has no d)"
                                 % _plain_text(num))
            return self._derivative(num, den.of)
        num, den = self.value(num), self.value(den)
        sa, sb = self.shape(num), self.shape(den)
        if isinstance(num, sympy.Symbol) and num == LOSS and sb != ():
            self.warnings.append("warning: read \\frac{L}{...} as a derivative (a \\partial is missing)")
            return self._derivative(num, den)
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
        if isinstance(den, (Blocks, ir.RowBlocks, Stack)) or isinstance(den, sympy.Symbol) and den != LOSS:
            return Partial(num, den)
        raise Unsupported("a derivative with respect to %s" % _plain_text(den))


class AuthorsToIR(ToIR):
    """The rules grammars/authors.lark adds to latex.lark: what other authors write."""

    def nabla(self, children):
        """\\nabla_{h_t} L: ∂L/∂h_t."""
        wrt = children[1]
        if getattr(wrt, "type", None) == "LETTER":
            wrt = self.letter([wrt])
        return self._derivative(children[2], wrt)

    def prime(self, children):
        return ("sup", "'")

    def stacked(self, children):
        return self.stack([self.value(c) for c in children])

    def decorated(self, children):
        return children[-1]  # \boxed{X}, \underbrace{X}_{...}, \color{red}{X}: X itself

    def underbraced(self, children):
        return children[1]

    def function_prime(self, children):
        """\\sigma'(z), \\tanh'(z): the function's derivative at z."""
        token = str(children[0])
        argument, scripts = self._argument(token, children[-1])
        z = sympy.Dummy("z", real=True)
        slope = sympy.diff(self._function_of(token)(z), z).xreplace({z: argument})
        return self.apply_scripts(slope, scripts)

    def derivative_operator(self, children):
        return _Operator(children[-1])  # \frac{\partial}{\partial z}

    def derivative_half(self, children):
        """\\frac{\\partial L}{h_t}: a \\partial left out below."""
        self.warnings.append("warning: read the derivative as if its denominator had a \\partial")
        return self._derivative(children[2], children[3])


def _namespaced(transformer_class, prefix: str) -> None:
    """Lark prefixes the rules a grammar imports (latex__scripted): the same methods under those
    names, as `lark.visitors.merge_transformers` does for an instance."""
    for name, method in list(vars(transformer_class).items()):
        if callable(method) and not name.startswith("_"):
            setattr(transformer_class, "%s__%s" % (prefix, name), method)


_namespaced(ToIR, "latex")


