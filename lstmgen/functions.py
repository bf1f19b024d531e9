"""Elementwise functions a cell may use, as SymPy functions that SymPy can differentiate."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import sympy
from sympy.printing.precedence import PRECEDENCE


class sigmoid(sympy.Function):  # noqa: N801 - named as it is printed
    """The logistic function 1 / (1 + exp(-z)); its derivative is sigmoid * (1 - sigmoid)."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_number:  # a constant: its value, so that no helper is called on a plain number
            return 1 / (1 + sympy.exp(-z))
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sympy.exp(-z))


# name -> (SymPy function, number of arguments)
BUILTIN = {
    "sigmoid": (sigmoid, 1),
    "tanh": (sympy.tanh, 1),
    "relu": (lambda z: relu(z), 1),
    "softsign": (lambda z: softsign(z), 1),
    "exp": (sympy.exp, 1),
    "log": (sympy.log, 1),
    "min": (sympy.Min, 2),  # for piecewise-linear definitions such as a hard sigmoid
    "max": (sympy.Max, 2),
}


class UserFunction(sympy.Function):
    """An elementwise function a cell file defines by a formula in one variable.

    Subclasses carry `formula` (a Lambda in the variable `VARIABLE`); SymPy differentiates the
    formula.  A function's identity is its class, never its name: every printer reaches it through
    the printing hooks below, so a cell-file function called ``Abs``, ``Add`` or ``Symbol`` is
    printed as the cell file's function, not as SymPy's class of that name.
    """

    nargs = 1
    formula: sympy.Lambda
    precedence = PRECEDENCE["Func"]  # else SymPy's precedence() looks the class name up (Float: a number)

    @classmethod
    def eval(cls, z):
        if z.is_number:  # relu(2) is 2: SymPy can compare it (max(relu(2), x)) and no helper gets a number
            return cls.formula(z)
        return None

    def fdiff(self, argindex=1):
        """The derivative in terms of the function itself where `in_terms_of_output` proves one (the
        softsign's (1 - |softsign(z)|)^2, as SymPy's tanh' is 1 - tanh^2), else the formula's."""
        in_output = in_terms_of_output(type(self))
        if in_output is not None:
            return in_output.xreplace({OUTPUT: self})
        variable = self.formula.variables[0]
        return sympy.diff(self.formula.expr, variable).xreplace({variable: self.args[0]})

    @classmethod
    def expand_formula(cls, arg):
        return cls.formula(arg)

    def _eval_evalf(self, prec):
        """The formula's value: SymPy's own evalf would look the name up in mpmath (Abs: fabs)."""
        return self.expand_formula(self.args[0])._eval_evalf(prec)

    @property
    def label(self) -> str:
        """The name the cell file gives the function."""
        return type(self).__name__

    # SymPy's printers call an expression's own hook (Printer.printmethod) before they look for a
    # _print_<class name> method: these hooks keep the name from choosing the printer method.
    def _numpycode(self, printer, **kwargs):
        return printer._print_UserFunction(self)

    def _lstmgen_latex(self, printer, **kwargs):
        return printer._print_UserFunction(self)

    def _sympystr(self, printer, **kwargs):
        return "%s(%s)" % (self.label, ", ".join(printer._print(arg) for arg in self.args))

    _sympyrepr = _sympystr

    def _latex(self, printer, **kwargs):
        return r"\operatorname{%s}\left(%s\right)" % (self.label, printer._print(self.args[0]))


VARIABLE = sympy.Symbol("z", real=True)  # every formula's variable, whatever the cell file calls it


def define(name: str, variable: sympy.Symbol, body: sympy.Expr) -> type:
    """A new UserFunction class labelled `name` with formula `variable -> body` (stored in `VARIABLE`)."""
    formula = sympy.Lambda(VARIABLE, body.xreplace({variable: VARIABLE}) if variable != VARIABLE else body)
    return type(name, (UserFunction,), {"formula": formula, "__module__": __name__})


relu = define("relu", VARIABLE, sympy.Max(0, VARIABLE))
softsign = define("softsign", VARIABLE, VARIABLE / (1 + sympy.Abs(VARIABLE)))


# ----------------------------------------------------------------------------- derivatives in terms of the output
OUTPUT = sympy.Symbol("y", real=True)  # a function's value, in `in_terms_of_output`'s answers
# Polynomials in the output that a derivative may be, simplest first: the odd squashing functions
# (softsign) need |y|, and the first basis that fits is the answer.
OUTPUT_BASES = ((sympy.Integer(1), OUTPUT, OUTPUT**2), (sympy.Integer(1), sympy.Abs(OUTPUT), OUTPUT**2))
_KINKS = (sympy.Min, sympy.Max, sympy.Piecewise, sympy.Heaviside, sympy.floor, sympy.ceiling)
_SIDE = sympy.Symbol("s", positive=True)
_SAMPLES = [sign * (0.3 + 0.37 * k) for k in range(8) for sign in (1, -1)]
_MOST_OPERATIONS = 40  # larger formulas are not tried
_MOST_TERMS = 400      # nor proofs whose expansion would have more terms (it grows as a power's binomials)
_proven: dict = {}


def in_terms_of_output(function: type) -> sympy.Expr | None:
    """f' as a polynomial R in y = f(z) with R(f(z)) = f'(z) for every real z, or None.

    The coefficients are proposed by a least-squares fit at 16 points and then proven: on each
    side of 0 (z = s and z = -s with s > 0, which resolves |z| and sign(z)), f'(z) - R(f(z))
    cancels to 0.  A formula with a kink (min, max) is never tried: a fit cannot see a kink
    beyond its points.  Computed once per function."""
    if function not in _proven:
        _proven[function] = _output_form(function.formula.expr.xreplace({function.formula.variables[0]: VARIABLE}))
    return _proven[function]


def _output_form(formula: sympy.Expr) -> sympy.Expr | None:
    from .evaluate import EvaluationError, Evaluator  # evaluate imports this module

    derivative = sympy.diff(formula, VARIABLE)
    if not derivative.has(VARIABLE) or formula.has(*_KINKS) or sympy.count_ops(formula) > _MOST_OPERATIONS:
        return None
    points = np.array(_SAMPLES).reshape(-1, 1)
    walk = Evaluator(lambda symbol, t: points, 0, 1)
    try:
        with np.errstate(all="ignore"):
            values, slopes = (np.broadcast_to(walk(e), points.shape).ravel() for e in (formula, derivative))
    except (EvaluationError, ArithmeticError, TypeError, ValueError):
        return None
    if not (np.all(np.abs(values) < 1e100) and np.all(np.abs(slopes) < 1e100)):  # not finite, or y**2 would not be
        return None
    at_outputs = Evaluator(lambda symbol, t: values.reshape(-1, 1), 0, 1)  # OUTPUT is the formula's values
    for basis in OUTPUT_BASES:
        columns = np.stack([np.broadcast_to(at_outputs(term), points.shape).ravel() for term in basis], axis=1)
        try:
            fitted = np.linalg.lstsq(columns, slopes, rcond=None)[0]
        except np.linalg.LinAlgError:
            return None
        coefficients = [Fraction(c).limit_denominator(12) for c in fitted]
        if any(abs(float(q) - c) > 1e-9 * (1 + abs(c)) for q, c in zip(coefficients, fitted)):
            continue
        candidate = sympy.Add(*[sympy.Rational(q.numerator, q.denominator) * b for q, b in zip(coefficients, basis)])
        if all(_cancels(derivative, formula, candidate, side) for side in (1, -1)):
            return _tidy(candidate)
    return None


def _cancels(derivative, formula, candidate, side: int) -> bool:
    """On z = side * s (s > 0): derivative - candidate(formula) is 0, shown by cancelling."""
    on_side = {VARIABLE: side * _SIDE}
    try:
        gap = derivative.xreplace(on_side) - candidate.xreplace({OUTPUT: formula.xreplace(on_side)})
        gap = gap.doit().rewrite(sympy.exp)
        if gap.has(*_KINKS) or any(node.args[0].has(_SIDE) for node in gap.atoms(sympy.Abs, sympy.sign)):
            return False  # |.| of something whose sign SymPy cannot tell on this side
        if _terms_after_expanding(gap) > _MOST_TERMS:
            return False  # too costly to show: no claim (a cell file must not hang the derivation)
        expanded = sympy.expand(gap)
        if sympy.count_ops(expanded) > 2 * _MOST_TERMS:
            return False
        return sympy.expand(sympy.numer(sympy.together(expanded))) == 0
    except Exception:  # noqa: BLE001 - a proof SymPy cannot carry out is no proof
        return False


def _terms_after_expanding(expr: sympy.Expr) -> int:
    """An upper bound on the terms of sympy.expand(expr): sums add, products multiply, a sum of k
    terms to the n-th power has at most C(n + k - 1, k - 1) (a function's argument: its own)."""
    if expr.is_Add:
        return sum(_terms_after_expanding(arg) for arg in expr.args)
    if expr.is_Mul:
        return math.prod(_terms_after_expanding(arg) for arg in expr.args)
    if expr.is_Pow and expr.exp.is_Integer and abs(int(expr.exp)) > 1:
        k = _terms_after_expanding(expr.base)
        return math.comb(min(abs(int(expr.exp)), 10_000) + k - 1, k - 1) if k < 10_000 else 10**9
    return max([_terms_after_expanding(arg) for arg in expr.args], default=1)


def _tidy(candidate: sympy.Expr) -> sympy.Expr:
    """(1 - |y|)^2 rather than 1 - 2|y| + y^2; plain polynomials as they are."""
    if not candidate.has(sympy.Abs(OUTPUT)):
        return candidate
    magnitude = sympy.Symbol("m", nonnegative=True)
    factored = sympy.factor(candidate.xreplace({OUTPUT**2: magnitude**2, sympy.Abs(OUTPUT): magnitude}))
    factored = factored.replace(  # (1 - m)^2, not (m - 1)^2
        lambda e: e.is_Pow and e.exp.is_even and e.base.is_Add and e.base.as_coeff_Add()[0].is_negative,
        lambda e: (-e.base) ** e.exp)
    return factored.xreplace({magnitude: sympy.Abs(OUTPUT)})
