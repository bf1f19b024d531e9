"""Elementwise functions a cell may use, as SymPy functions that SymPy can differentiate."""
from __future__ import annotations

import sympy


class sigmoid(sympy.Function):  # noqa: N801 - named as it is printed
    """The logistic function 1 / (1 + exp(-z)); its derivative is sigmoid * (1 - sigmoid)."""

    nargs = 1

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

    Subclasses carry `formula` (a Lambda); SymPy differentiates the formula, and the printers
    show the function by name.
    """

    nargs = 1
    formula: sympy.Lambda

    def fdiff(self, argindex=1):
        variable = self.formula.variables[0]
        return sympy.diff(self.formula.expr, variable).xreplace({variable: self.args[0]})

    @classmethod
    def expand_formula(cls, arg):
        return cls.formula(arg)


def define(name: str, variable: sympy.Symbol, body: sympy.Expr) -> type:
    """A new UserFunction class `name` with formula `variable -> body`."""
    return type(name, (UserFunction,), {"formula": sympy.Lambda(variable, body), "__module__": __name__})


_z = sympy.Symbol("z", real=True)
relu = define("relu", _z, sympy.Max(0, _z))
softsign = define("softsign", _z, _z / (1 + sympy.Abs(_z)))
