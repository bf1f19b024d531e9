"""LaTeX printing: one string per formula, in the notation of the derivation we teach from.

`latex(expr, cell)` prints any expression of `lstmgen.ir` (and plain SymPy) the way the seed
document writes it: ``f_t``, ``c_{t-1}``, ``\\tilde{c}_t``; ``\\frac{\\partial L}{\\partial c_t}`` for a
total gradient and ``\\frac{\\partial \\ell_t}{\\partial h_t}`` for the loss's own gradient on an output;
``*`` (or ``\\odot``) for the elementwise product, ``(W_x^f)^T e`` and ``e x_t^T`` for the matrix
products, ``\\sum_{t=1}^T`` for a sum over time.  Grouping follows the seed: a product nested in a
product is bracketed, a sum inside a product parenthesised, and the brackets grow from the inside
out: ``( )``, then ``[ ]``, then ``\\{ \\}``, sized with ``\\left``/``\\right`` around fractions.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy.printing.latex import LatexPrinter as _SympyLatexPrinter

from .. import ir, symbols
from ..functions import sigmoid

HADAMARD = {"*": " * ", "odot": r" \odot ", "circ": r" \circ "}
# (opening, closing) by nesting level: 1 innermost, then 2, then 3 and more
_BRACKETS = {1: ("(", ")"), 2: ("[", "]")}
_BRACES = (r"\{", r"\}")
# elementwise functions printed as operator names, so that a power reads \tanh^2(c_t)
_FUNCTION_NAMES = {sigmoid: r"\sigma", sympy.tanh: r"\tanh"}
# the matrix-structure functions of lstmgen.ir: grouped like products when they meet one
_MATRIX_FORMS = (ir.Dot, ir.TDot, ir.Outer, ir.SumOverTime, ir.MatMul, ir.Blocks, ir.RowBlocks)

LOSS = sympy.Symbol("L")
TRANSPOSE = {"T": "T", "top": r"\top"}  # the --transpose option -> the superscript
NAMES = ("cell", "plain")   # the --names option: the cell file's latex lines (\tilde{c}_t), or its names (g_t)
VECTORS = ("column", "row")  # the --vectors option: W_x^f x_t (the seed), or x_t W_x^f (the code)


@dataclass(frozen=True)
class Style:
    """A document's notation options, every one printed from the same derivation.

    hadamard  the elementwise product's sign, a key of HADAMARD: '*', 'odot', 'circ'
    transpose the transpose's superscript, a key of TRANSPOSE: 'T' or 'top'
    names     'cell': quantities as the cell file's latex lines write them (\tilde{c}_t); 'plain':
              by their names in the cell file (g_t)
    vectors   'column': vectors are columns, W_x^f x_t (the seed); 'row': vectors are rows, x_t W_x^f
              (the generated code), every matrix the transpose of its column form
    compact   name each gate's delta once and write every gradient with it (read by the documenter;
              the printer ignores it)
    """

    hadamard: str = "*"
    transpose: str = "T"
    names: str = "cell"
    vectors: str = "column"
    compact: bool = False

    def __post_init__(self):
        for option, value, allowed in (("hadamard", self.hadamard, HADAMARD), ("transpose", self.transpose, TRANSPOSE),
                                       ("names", self.names, NAMES), ("vectors", self.vectors, VECTORS)):
            if value not in allowed:
                raise ValueError("%s %r: use one of %s" % (option, value, ", ".join(allowed)))

    def printer(self, cell=None, names: dict | None = None) -> "LatexPrinter":
        """A printer in this style; `names` adds LaTeX base forms of names the cell does not have."""
        forms = dict(names or {})
        if self.names == "plain" and cell is not None:
            forms.update({name: symbols.latex_name(name) for name in cell.quantities})
        return LatexPrinter(cell, self.hadamard, transpose=TRANSPOSE[self.transpose], names=forms)

    def oriented(self, expr):
        """`expr` (column convention, as derived) in this style's convention."""
        return ir.to_row(expr) if self.vectors == "row" else expr


DEFAULT_STYLE = Style()


class LatexPrinter(_SympyLatexPrinter):
    """SymPy's LaTeX printer with our symbols, products, brackets and matrix forms."""

    printmethod = "_lstmgen_latex"

    def __init__(self, cell=None, hadamard: str = "*", settings=None, *, time=symbols.with_time,
                 loss: str = "L", differential: str = r"\partial", transpose: str = "T", names=None):
        super().__init__(settings)
        if hadamard not in HADAMARD:
            raise ValueError("hadamard must be one of %s, not %r" % (", ".join(HADAMARD), hadamard))
        self._quantities = dict(cell.quantities) if cell is not None else {}
        self._names = dict(names or {})  # quantity name -> LaTeX base form, over the cell's own
        self._times = HADAMARD[hadamard]
        self._with_time = time          # (base, time) -> LaTeX: c_{t-1}, or c^{(t-1)} in a reader's notation
        self._loss = loss
        self._d = differential
        self._transpose = transpose
        self._levels: list[int] = []  # bracket nesting of each expression being printed
        self._last_level = 0

    # ---- bracket bookkeeping -------------------------------------------------------------
    def _print(self, expr, **kwargs) -> str:
        """Dispatch as SymPy does, recording how deeply the printed text nests its brackets."""
        self._levels.append(0)
        try:
            text = super()._print(expr, **kwargs)
        finally:
            level = self._levels.pop()
        if self._levels:
            self._levels[-1] = max(self._levels[-1], level)
        self._last_level = level
        return text

    def _bracket(self, expr) -> str:
        """`expr` in brackets one level above the deepest ones it contains."""
        text = self._print(expr)
        level = self._last_level + 1
        if self._levels:
            self._levels[-1] = max(self._levels[-1], level)
        opening, closing = _BRACKETS.get(level, _BRACES)
        if r"\frac" in text or r"\sum" in text:
            return r"\left%s %s \right%s" % (opening, text, closing)
        if level > 2:
            return r"%s %s %s" % (opening, text, closing)
        return "%s%s%s" % (opening, text, closing)

    def _operand(self, expr) -> str:
        """`expr` as a factor of a product: bracketed unless it is a single symbol, number or call."""
        return self._bracket(expr) if _needs_grouping(expr) else self._print(expr)

    def _transposed(self, expr) -> str:
        """expr^T, grouping what a superscript would not bind to as a whole."""
        if isinstance(expr, sympy.Symbol):
            text = self._print(expr)
            if r"\frac" in text:
                return r"\left(%s\right)^%s" % (text, self._transpose)
            if "^" in text:
                return "(%s)^%s" % (text, self._transpose)
            return text + "^" + self._transpose
        return self._bracket(expr) + "^" + self._transpose

    # ---- symbols ---------------------------------------------------------------------------
    def _base(self, name: str) -> str:
        if name in self._names:
            return self._names[name]
        quantity = self._quantities.get(name)
        return quantity.latex if quantity is not None else symbols.latex_name(name)

    def _print_Symbol(self, expr, style="plain"):
        """Vector symbols with their time index (c_{t-1}), gradients as fractions, parameters by name."""
        ref = symbols.read(expr)
        if expr == LOSS:
            return self._loss
        if ref is None:
            if expr.name in self._quantities or expr.name in self._names or "_" in expr.name or "^" in expr.name:
                return self._base(expr.name)
            return super()._print_Symbol(expr, style)
        value = self._with_time(self._base(ref.name), ref.time)
        if ref.role == "adjoint":
            return r"\frac{%s %s}{%s %s}" % (self._d, self._loss, self._d, value)
        if ref.role == "upstream":
            return r"\frac{%s %s}{%s %s}" % (self._d, self._with_time(r"\ell", ref.time), self._d, value)
        return value

    def _print_Derivative(self, expr):
        """d(expr)/d(var) as a partial-derivative fraction (the gradient of sum(expr) for a vector)."""
        numerator = self._operand(expr.expr) if isinstance(expr.expr, (sympy.Add, sympy.Mul)) \
            else self._print(expr.expr)
        order = sum(count for _, count in expr.variable_count)
        denominator = " ".join(r"%s %s" % (self._d, self._print(var)) + ("^{%d}" % count if count > 1 else "")
                               for var, count in expr.variable_count)
        power = "^{%d}" % order if order > 1 else ""
        return r"\frac{%s%s %s}{%s}" % (self._d, power, numerator, denominator)

    # ---- elementwise algebra ---------------------------------------------------------------
    def _print_Add(self, expr, order=None):
        """Terms in their stored order (nested sums flattened), negative ones as subtractions."""
        return " ".join(self.terms(expr))

    def terms(self, expr) -> list[str]:
        """The top-level terms of `expr`, each with its sign: ['a', '+ b', '- c']."""
        out = []
        for index, term in enumerate(_flat_terms(expr)):
            negative, magnitude = _split_sign(term)
            text = self._bracket(magnitude) if isinstance(magnitude, sympy.Add) else self._print(magnitude)
            if index == 0:
                out.append("-" + text if negative else text)
            else:
                out.append(("- " if negative else "+ ") + text)
        return out

    def _print_Mul(self, expr):
        """Factors joined by * (or \\odot) in their stored order; nested products and sums grouped."""
        negative, magnitude = _split_sign(expr)
        if magnitude is not expr:  # numeric signs taken out (they may cancel)
            sign = "-" if negative else ""
            if isinstance(magnitude, sympy.Mul):
                return sign + self._print_Mul(magnitude)
            if isinstance(magnitude, sympy.Add) and negative:
                return sign + self._bracket(magnitude)
            return sign + self._print(magnitude)
        factors = list(expr.args)
        if _is_canonical(expr):
            denominator = [f for f in factors if _is_reciprocal(f)]
            if denominator:
                numerator = [f for f in factors if not _is_reciprocal(f)]
                return r"\frac{%s}{%s}" % (self._print(ir.product(numerator)),
                                           self._print(ir.product([1 / f for f in denominator])))
            # SymPy's own order puts sums first; the seed writes sigma * (1 - sigma)
            factors = ([f for f in factors if f.is_number] + [f for f in factors if not f.is_number
                        and not isinstance(f, sympy.Add)] + [f for f in factors if isinstance(f, sympy.Add)])
        return self._times.join(self._operand(f) for f in factors)

    def _print_Pow(self, expr):
        """Powers as c_t^2, \\tanh^2(c_t) and \\frac{1}{x} rather than SymPy's default forms."""
        base, exponent = expr.args
        if exponent.is_number and exponent.is_negative:
            return r"\frac{1}{%s}" % self._print(sympy.Pow(base, -exponent))
        if exponent == sympy.Rational(1, 2):
            return r"\sqrt{%s}" % self._print(base)
        power = self._print(exponent)
        power = power if len(power) == 1 else "{%s}" % power
        if type(base) in _FUNCTION_NAMES and exponent.is_Integer:
            return self._call(_FUNCTION_NAMES[type(base)] + "^" + power, base.args[0])
        if isinstance(base, sympy.Symbol):
            text = self._print(base)
            if r"\frac" in text:
                return r"\left(%s\right)^%s" % (text, power)
            if "^" in text:
                return "(%s)^%s" % (text, power)
            return "%s^%s" % (text, power)
        return self._operand(base) + "^" + power if _needs_grouping(base) \
            else "{%s}^%s" % (self._print(base), power)

    # ---- elementwise functions -------------------------------------------------------------
    def _call(self, name: str, argument) -> str:
        return r"%s(%s)" % (name, self._print(argument))

    def _print_sigmoid(self, expr):
        """The logistic function as \\sigma(z)."""
        return self._call(r"\sigma", expr.args[0])

    def _print_tanh(self, expr):
        """tanh as \\tanh(z) with plain parentheses."""
        return self._call(r"\tanh", expr.args[0])

    def _print_UserFunction(self, expr):
        """A cell file's own function by its name, \\operatorname{gelu}(z), reached through the
        function's own printing hook (so a cell's `Abs` never prints as |z|)."""
        return self._call(r"\operatorname{%s}" % expr.label, expr.args[0])

    def _print_Heaviside(self, expr):
        """The unit step (relu's derivative) as \\operatorname{step}(z), not SymPy's theta(z)."""
        return self._call(r"\operatorname{step}", expr.args[0])

    # ---- matrix structure (lstmgen.ir) -----------------------------------------------------
    def _print_Dot(self, expr):
        """W v as W_x^f x_t."""
        matrix, vector = expr.args
        return "%s %s" % (self._print(matrix), self._operand(vector))

    def _print_TDot(self, expr):
        """W^T e as (W_x^f)^T \\left\\{ e \\right\\}."""
        matrix, delta = expr.args
        return "%s %s" % (self._transposed(matrix), self._operand(delta))

    def _print_Outer(self, expr):
        """e v^T as \\left\\{ e \\right\\} x_t^T."""
        delta, vector = expr.args
        return "%s %s" % (self._operand(delta), self._transposed(vector))

    def _print_SumOverTime(self, expr):
        """The sum over the sequence as \\sum_{t=1}^T e."""
        (summand,) = expr.args
        grouped = isinstance(summand, (sympy.Add, sympy.Mul)) or _split_sign(summand)[0]
        return r"\sum_{t=1}^T %s" % (self._bracket(summand) if grouped else self._print(summand))

    def _print_Transpose(self, expr):
        """a^T, parenthesising anything but a symbol."""
        return self._transposed(expr.args[0])

    def _print_MatMul(self, expr):
        """The matrix product a b by juxtaposition."""
        return " ".join(self._operand(arg) for arg in expr.args)

    def _print_Stack(self, expr):
        """Stacked vectors as [h_{t-1}, x_t]."""
        return "[%s]" % ", ".join(self._print(arg) for arg in expr.args)

    def _print_RowBlocks(self, expr):
        """Matrices stacked row-wise as \\begin{bmatrix} A \\\\ B \\end{bmatrix}."""
        return r"\begin{bmatrix} %s \end{bmatrix}" % r" \\ ".join(self._print(arg) for arg in expr.args)

    def _print_Blocks(self, expr):
        """Matrices side by side as \\begin{bmatrix} A & B \\end{bmatrix}."""
        return r"\begin{bmatrix} %s \end{bmatrix}" % " & ".join(self._print(arg) for arg in expr.args)


def _needs_grouping(expr) -> bool:
    """True for what must be bracketed as a factor: sums, products, matrix forms, negative numbers."""
    if isinstance(expr, (sympy.Add, sympy.Mul) + _MATRIX_FORMS):
        return True
    return bool(expr.is_Number and expr.is_negative)


def _flat_terms(expr) -> list:
    """The terms of a sum, with sums nested inside it (unevaluated) spliced in place."""
    if not isinstance(expr, sympy.Add):
        return [expr]
    out = []
    for arg in expr.args:
        out.extend(_flat_terms(arg))
    return out


def _split_sign(expr):
    """(True, -expr) when expr carries a negative numeric factor, else (False, expr); order kept.

    Signs of nested products cancel: (-1) * (f * -1) is (False, f)."""
    negative = False
    while True:
        flipped = _negate_factor(expr)
        if flipped is None:
            return negative, expr
        negative, expr = not negative, flipped


def _negate_factor(expr):
    """expr with its first negative numeric factor made positive, or None when it has none."""
    if expr.is_Number:
        return -expr if expr.is_negative else None
    if isinstance(expr, sympy.Mul):
        args = list(expr.args)
        for index, arg in enumerate(args):
            if arg.is_Number and arg.is_negative:
                args[index] = -arg
                return ir.product(args)
    return None


def _is_canonical(expr) -> bool:
    """True when a product is in SymPy's own order (evaluated), so its order carries no meaning."""
    return sympy.Mul(*expr.args).args == expr.args


def _is_reciprocal(expr) -> bool:
    return isinstance(expr, sympy.Pow) and expr.exp.is_number and expr.exp.is_negative


def latex(expr, cell=None, style: Style = DEFAULT_STYLE, names: dict | None = None) -> str:
    """`expr` (lstmgen.ir or plain SymPy) as LaTeX; `cell` supplies the symbols' LaTeX base forms
    (`names` those of further names)."""
    return style.printer(cell, names).doprint(style.oriented(expr))


def latex_terms(expr, cell=None, style: Style = DEFAULT_STYLE, names: dict | None = None) -> list[str]:
    """The top-level terms of `expr` printed one by one, with their signs: ['a', '+ b', '- c']."""
    printer = style.printer(cell, names)
    return [printer._str(term) for term in printer.terms(style.oriented(expr))]


def derivative(of, wrt, cell=None, style: Style = DEFAULT_STYLE, names: dict | None = None) -> str:
    """\\frac{\\partial of}{\\partial wrt} for two symbols (`of` may be `LOSS`)."""
    return latex(sympy.Derivative(of, wrt, evaluate=False), cell, style, names)


def chain_product(factors, cell=None, style: Style = DEFAULT_STYLE, names: dict | None = None) -> str:
    """The chain rule written out: derivative fractions (or gradient symbols) joined by \\cdot."""
    return r" \cdot ".join(latex(factor, cell, style, names) for factor in factors)
