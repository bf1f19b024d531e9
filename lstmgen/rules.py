"""Backward rules: local derivatives of elementwise equations and the contractions of W v.

The elementwise part is SymPy's own `diff`; the rule table only says how a matrix product
hands its gradient on.  A new cell needs new equations, never a new rule.
"""
from __future__ import annotations

import sympy
from sympy.core.function import ArgumentIndexError

from .ir import Dot, Outer, TDot

# How the gradient `delta` of a product W v reaches each of its operands (column vectors;
# over a batch the outer product also sums over the samples).
CONTRACTIONS = {
    "matrix": lambda delta, matrix, vec: Outer(delta, vec),   # dL/dW = delta v^T
    "vector": lambda delta, matrix, vec: TDot(matrix, delta),  # dL/dv = W^T delta
}


def opaque_products(rhs: sympy.Expr) -> tuple[sympy.Expr, dict]:
    """rhs with every Dot(W, v) replaced by a fresh symbol; also the symbol -> Dot map."""
    stand_ins = {}
    for index, dot in enumerate(sorted(rhs.atoms(Dot), key=str)):
        stand_ins[sympy.Dummy("u%d" % index, real=True)] = dot
    return rhs.xreplace({dot: u for u, dot in stand_ins.items()}), stand_ins


def diff(expr: sympy.Expr, wrt: sympy.Symbol) -> sympy.Expr:
    """d expr / d wrt, as SymPy's diff gives it, but with the sum and product rules applied only to the
    terms and factors that contain wrt: SymPy's own product rule differentiates every factor of an
    n-factor product (n**2 work per symbol, n**3 for an equation's symbols)."""
    if not expr.has(wrt):
        return sympy.Integer(0)
    if isinstance(expr, sympy.Add):
        return sympy.Add(*[diff(arg, wrt) for arg in expr.args if arg.has(wrt)])
    if isinstance(expr, sympy.Mul):
        args = list(expr.args)
        return sympy.Add(*[sympy.Mul(*(args[:i] + [diff(arg, wrt)] + args[i + 1:]))
                           for i, arg in enumerate(args) if arg.has(wrt)])
    if isinstance(expr, sympy.Pow) and not expr.exp.has(wrt):  # as SymPy's Pow._eval_derivative writes it
        return expr * diff(expr.base, wrt) * expr.exp / expr.base
    if isinstance(expr, sympy.Function) and not isinstance(expr, (Dot, TDot, Outer)):
        try:  # the chain rule, as SymPy's Function._eval_derivative writes it
            return sympy.Add(*[expr.fdiff(i + 1) * diff(arg, wrt) for i, arg in enumerate(expr.args) if arg.has(wrt)])
        except ArgumentIndexError:
            pass
    return sympy.diff(expr, wrt)


def local_derivative(rhs: sympy.Expr, wrt: sympy.Symbol, output: sympy.Symbol) -> sympy.Expr:
    """d rhs / d wrt, elementwise, rewritten in terms of the equation's output where possible.

    For ``f = sigmoid(a)`` SymPy gives ``sigmoid(a)*(1 - sigmoid(a))``; since that contains the
    right-hand side itself, it becomes ``f*(1 - f)`` (likewise ``1 - g**2`` for a tanh).  A
    function whose derivative does not contain it (relu) keeps its pre-activation.
    """
    derivative = diff(rhs, wrt)
    if isinstance(rhs, sympy.Function) and derivative.has(rhs):
        derivative = derivative.xreplace({rhs: output})
    return sympy.factor_terms(derivative)
