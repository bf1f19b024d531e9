"""Backward rules: local derivatives of elementwise equations and the contractions of W v.

The elementwise part is SymPy's own `diff`; the rule table only says how a matrix product
hands its gradient on.  A new cell needs new equations, never a new rule.
"""
from __future__ import annotations

import sympy

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


def local_derivative(rhs: sympy.Expr, wrt: sympy.Symbol, output: sympy.Symbol) -> sympy.Expr:
    """d rhs / d wrt, elementwise, rewritten in terms of the equation's output where possible.

    For ``f = sigmoid(a)`` SymPy gives ``sigmoid(a)*(1 - sigmoid(a))``; since that contains the
    right-hand side itself, it becomes ``f*(1 - f)`` (likewise ``1 - g**2`` for a tanh).  A
    function whose derivative does not contain it (relu) keeps its pre-activation.
    """
    derivative = sympy.diff(rhs, wrt)
    if isinstance(rhs, sympy.Function) and derivative.has(rhs):
        derivative = derivative.xreplace({rhs: output})
    return sympy.factor_terms(derivative)
