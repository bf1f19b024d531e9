"""The matrix structure around elementwise SymPy algebra: products with weights, and time sums.

Everything elementwise (``*``, ``+``, sigmoid, tanh, powers) is ordinary commutative SymPy on
symbols that stand for whole vectors.  The few places where shapes meet are unevaluated
SymPy functions, so one expression tree serves the printers, the checker and the evaluator:

* ``Dot(W, v)``      W v      -- a weight matrix times a vector (forward)
* ``TDot(W, e)``     Wᵀ e     -- the gradient reaching v through W v
* ``Outer(e, v)``    e vᵀ     -- the gradient reaching W through W v (summed over a batch)
* ``SumOverTime(e)`` Σ_t e    -- a step gradient summed over t = 1..T
* ``Transpose(a)``   aᵀ       -- only in parsed documents
* ``MatMul(a, b)``   a b      -- only in parsed documents
* ``Stack(a, x)``    [a, x]   -- vectors stacked into one, only in parsed documents
* ``Blocks(U, W)``   [U  W]   -- matrices side by side, only in parsed documents
* ``RowBlocks(W, U)`` [W; U]  -- matrices stacked row-wise (one matrix for all gates), likewise
* ``Slice(v, a, b)`` [v]_{a:b} -- entries a..b of a stacked vector, only in parsed documents
"""
from __future__ import annotations

import sympy


class Dot(sympy.Function):
    """W v: a parameter matrix times a vector; opaque to the elementwise algebra."""

    nargs = 2


class TDot(sympy.Function):
    """Wᵀ e: the backward of Dot towards its vector."""

    nargs = 2


class Outer(sympy.Function):
    """e vᵀ: the backward of Dot towards its matrix."""

    nargs = 2


class SumOverTime(sympy.Function):
    """Σ_{t=1}^{T} e."""

    nargs = 1


class Transpose(sympy.Function):
    """aᵀ of a parsed document's expression."""

    nargs = 1


class MatMul(sympy.Function):
    """a b, the matrix product of a parsed document's expression."""

    nargs = 2


class Stack(sympy.Function):
    """[a, x]: vectors stacked into one (an author's concatenated input); a 1 folds in a bias."""

    is_commutative = True


class Blocks(sympy.Function):
    """[W_h^f  W_x^f]: matrices side by side, an author's one W_f on a stacked vector."""

    is_commutative = True


class RowBlocks(sympy.Function):
    """[W^i; W^f; ...]: matrices stacked row-wise, an author's one W_x for all gates (W_x x_t is the
    stacked pre-activation of the gates, as in the CS231n layout); also a stacked bias."""

    is_commutative = True


class Slice(sympy.Function):
    """[v]_{a:b}: entries a to b (from 1) of a stacked vector; a and b are expressions in D and H."""

    nargs = 3
    is_commutative = True


def rebuild(expr, args) -> sympy.Expr:
    """`expr` with new arguments; sums and products stay unevaluated, so printers keep their order."""
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def product(factors) -> sympy.Expr:
    """The elementwise product of `factors`, unevaluated so that printers keep their grouping."""
    factors = [f for f in factors if f != 1]
    if not factors:
        return sympy.Integer(1)
    if len(factors) == 1:
        return factors[0]
    return sympy.Mul(*factors, evaluate=False)


def total(terms) -> sympy.Expr:
    """The sum of `terms`, unevaluated so that printers keep their order."""
    terms = list(terms)
    if not terms:
        return sympy.Integer(0)
    if len(terms) == 1:
        return terms[0]
    return sympy.Add(*terms, evaluate=False)


def to_row(expr) -> sympy.Expr:
    """A column-convention expression in the row convention (vectors as rows, every matrix the
    transpose of its column form): W v -> v W, W^T e -> e W^T, e v^T -> v^T e."""
    if isinstance(expr, Dot):
        return MatMul(to_row(expr.args[1]), expr.args[0])
    if isinstance(expr, TDot):
        return MatMul(to_row(expr.args[1]), Transpose(expr.args[0]))
    if isinstance(expr, Outer):
        return MatMul(Transpose(to_row(expr.args[1])), to_row(expr.args[0]))
    if isinstance(expr, (Blocks, RowBlocks)):  # side by side becomes stacked, and back
        return (RowBlocks if isinstance(expr, Blocks) else Blocks)(*[to_row(a) for a in expr.args])
    if not expr.args:
        return expr
    return rebuild(expr, [to_row(a) for a in expr.args])
