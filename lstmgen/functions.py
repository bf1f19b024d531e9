"""Elementwise functions a cell may use, as SymPy functions that SymPy can differentiate."""
from __future__ import annotations

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
