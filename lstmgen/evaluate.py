"""Numeric evaluation of `lstmgen.ir` expressions on NumPy column vectors and matrices.

Symbols are looked up through a callback (the checker's witness environment supplies forward
values, total gradients and parameters); elementwise SymPy algebra maps to NumPy elementwise
operations and the matrix nodes of `lstmgen.ir` to ``@``.  Shapes are checked, never
broadcast silently: adding an H-vector to a D-vector raises `ShapeError`.

Values are float64 2-D arrays (a vector is a column, shape (n, 1)) or Python floats (scalars).
"""
from __future__ import annotations

import functools
import operator
from typing import Callable

import numpy as np
import sympy

from .functions import UserFunction


class EvaluationError(Exception):
    """An expression that cannot be evaluated (an unknown function, a missing symbol)."""


class ShapeError(EvaluationError):
    """Operands whose shapes do not fit the operation."""


def _describe(shape: tuple) -> str:
    return "scalar" if not shape else "%s" % "x".join(str(n) for n in shape)


def _elementwise_shapes(values, what: str) -> None:
    shapes = {np.shape(v) for v in values if np.shape(v) != ()}
    if len(shapes) > 1:
        raise ShapeError("%s of shapes %s" % (what, ", ".join(_describe(s) for s in sorted(shapes))))


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow warnings


_ELEMENTWISE: dict[str, Callable] = {
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "exp": np.exp,
    "log": np.log,
    "Abs": np.abs,
    "sign": np.sign,
    "Heaviside": lambda z: np.heaviside(z, 0.5),
}


class Evaluator:
    """Evaluate expressions at time step `t` (an int) of a sequence of length `T`.

    lookup(symbol, t) returns the array of a symbol at step t (the symbol's own time label,
    e.g. 't-1', is resolved by the callback).  Subclasses add ``_eval_<Class>`` methods for
    their own node types.
    """

    def __init__(self, lookup: Callable, t: int, T: int):
        self.lookup = lookup
        self.t = t
        self.T = T

    def at(self, t: int) -> "Evaluator":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.t = t
        return clone

    def __call__(self, expr):
        if isinstance(expr, sympy.Symbol):
            return self.lookup(expr, self.t)
        if expr.is_Number:
            if not expr.is_finite:
                raise EvaluationError("the number %s is not finite" % expr)
            return float(expr)
        if isinstance(expr, UserFunction):  # a cell file's own function, whatever its name: its formula
            return self(expr.expand_formula(expr.args[0]))
        method = getattr(self, "_eval_" + type(expr).__name__, None)
        if method is not None:
            return method(expr)
        name = getattr(expr.func, "__name__", type(expr).__name__)
        if isinstance(expr, sympy.Heaviside):  # its second argument is SymPy's value at 0, 1/2
            return _ELEMENTWISE[name](self(expr.args[0]))
        if isinstance(expr, sympy.Function) and name in _ELEMENTWISE and len(expr.args) == 1:
            return _ELEMENTWISE[name](self(expr.args[0]))
        raise EvaluationError("cannot evaluate %s" % name)

    # ---- elementwise algebra ------------------------------------------------------------
    def _fold(self, expr, combine: Callable, what: str):
        """combine(...combine(a0, a1)..., an) over the evaluated arguments, of one shape."""
        values = [self(a) for a in expr.args]
        _elementwise_shapes(values, what)
        return functools.reduce(combine, values)

    def _eval_Add(self, expr):
        return self._fold(expr, operator.add, "a sum")

    def _eval_Mul(self, expr):
        return self._fold(expr, operator.mul, "an elementwise product")

    def _eval_Max(self, expr):
        return self._fold(expr, np.maximum, "a maximum")

    def _eval_Min(self, expr):
        return self._fold(expr, np.minimum, "a minimum")

    def _eval_Pow(self, expr):
        base, exponent = self(expr.args[0]), self(expr.args[1])
        _elementwise_shapes([base, exponent], "a power")  # a cell may raise to a vector, elementwise
        with np.errstate(all="ignore"):
            if np.shape(base) or np.shape(exponent):
                return np.power(np.asarray(base, dtype=float), exponent)
            return float(base) ** exponent

    # ---- matrix structure ---------------------------------------------------------------
    def _matmul(self, a, b, what: str):
        if np.shape(a) == () or np.shape(b) == ():
            return a * b
        if np.shape(a)[1] != np.shape(b)[0]:
            raise ShapeError("%s of shapes %s and %s" % (what, _describe(np.shape(a)), _describe(np.shape(b))))
        return a @ b

    def _eval_Dot(self, expr):
        return self._matmul(self(expr.args[0]), self(expr.args[1]), "a matrix product")

    def _eval_TDot(self, expr):
        return self._matmul(np.transpose(self(expr.args[0])), self(expr.args[1]), "a transposed product")

    def _eval_Outer(self, expr):
        return self._matmul(self(expr.args[0]), np.transpose(self(expr.args[1])), "an outer product")

    def _eval_MatMul(self, expr):
        return self._matmul(self(expr.args[0]), self(expr.args[1]), "a matrix product")

    def _eval_Transpose(self, expr):
        value = self(expr.args[0])
        return value if np.shape(value) == () else np.transpose(value)

    def _eval_SumOverTime(self, expr):
        """Σ_{t=1}^T: the argument's own t is bound by the sum."""
        values = [self.at(step)(expr.args[0]) for step in range(1, self.T + 1)]
        _elementwise_shapes(values, "a sum over t")
        return functools.reduce(operator.add, values)


def close(a, b, rtol: float = 1e-9) -> bool:
    """Equal shapes and values within rtol of the larger magnitude (floored at 1e-3).

    Both sides are float64 sums of O(1) random values, so a right formula lands within ~1e-14;
    a tight tolerance keeps a wrong formula that is off by a small term from slipping through."""
    if np.shape(a) != np.shape(b) and () not in (np.shape(a), np.shape(b)):
        return False
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = max(1e-3, float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return float(np.max(np.abs(a - b), initial=0.0)) <= rtol * scale
