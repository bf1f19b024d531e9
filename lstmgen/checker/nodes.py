"""The nodes and shapes of a parsed equation: what the reader (reader.py) builds and the judge reads.

`Partial` (∂A/∂B as written), `Chain` (the chain rule), `IllShaped` (operands that do not fit),
`FreeSymbol` (a symbol the cell does not have); shapes are symbolic ('D', 'H', 1, 'H+D') in the
author's layout.
"""
from __future__ import annotations

import re

import sympy

from .. import ir, symbols
from .environment import parameter_shape, vector_dim
from .notation import Notation

LOSS = sympy.Symbol("L")               # the scalar loss
STEP_LOSS = "ell"                      # \ell_t: the loss's own term at step t
TRANSPOSE_MARKS = {"T", r"\top", r"\intercal", r"\mathsf{T}", r"\mathrm{T}", r"\text{T}", "Tr", r"\mathrm{Tr}",
                   r"\textsf{T}", r"\rm{T}", r"\rmT", r"\mathtt{T}"}


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


Stack, Blocks = ir.Stack, ir.Blocks
MATRIX_LETTERS = re.compile(r"^(\\)?[A-Z]")  # W, U, V, \Theta: a capital names a matrix when written before a vector


# ----------------------------------------------------------------------------- shapes
def shape(expr, notation: Notation, memo=None) -> tuple:
    """Symbolic shape in the author's layout: () for a scalar, (rows, cols) with 'D', 'H', 1 or a
    sum such as 'H+D' ('?' once ill-shaped).  Column layout: a vector is (n, 1); row layout (1, n)."""
    if memo is not None and expr in memo:
        return memo[expr]
    out = _shape(expr, notation)
    if memo is not None:
        memo[expr] = out
    return out


def _oriented(notation: Notation, column_shape: tuple) -> tuple:
    """A leaf's shape in the author's layout, from its column-layout shape."""
    return (column_shape[1], column_shape[0]) if notation.layout == "row" else column_shape


def _length(vector_shape: tuple):
    """The length of a vector shaped (n, 1) or (1, n)."""
    return vector_shape[0] if vector_shape[1] == 1 else vector_shape[1]


def _add_dims(dims) -> str:
    dims = [str(d) for d in dims]
    return dims[0] if len(dims) == 1 else "+".join(dims)


def _shape(expr, notation: Notation) -> tuple:
    cell = notation.cell
    if expr.is_Number:
        return ()
    if isinstance(expr, FreeSymbol):
        return ("Z", 1)
    if isinstance(expr, sympy.Symbol):
        if expr == LOSS:
            return ()
        ref = symbols.read(expr)
        if ref is None:
            return _oriented(notation, parameter_shape(cell, expr.name))
        if ref.name == STEP_LOSS:
            return ()
        return _oriented(notation, (vector_dim(cell, ref.name), 1))
    if isinstance(expr, Stack):
        return _oriented(notation, (_add_dims(1 if a.is_Number else _length(_shape(a, notation))
                                              for a in expr.args), 1))
    if isinstance(expr, Blocks):
        return _oriented(notation, ("H", _add_dims(parameter_shape(cell, a.name)[1] for a in expr.args)))
    if isinstance(expr, ir.RowBlocks):
        rows = [parameter_shape(cell, a.name) for a in expr.args]
        return _oriented(notation, (_add_dims(r[0] for r in rows), rows[0][1]))
    if isinstance(expr, ir.Slice):
        length = str(sympy.expand(expr.args[2] - expr.args[1] + 1))
        return _oriented(notation, (length, 1))
    if isinstance(expr, Partial):
        return shape(expr.args[1], notation)
    if isinstance(expr, Chain):
        return shape(expr.args[-1].args[1], notation)
    if isinstance(expr, IllShaped):
        return ("?", "?")
    if isinstance(expr, ir.Transpose):
        s = shape(expr.args[0], notation)
        return s if s == () else (s[1], s[0])
    if isinstance(expr, ir.MatMul):
        a, b = shape(expr.args[0], notation), shape(expr.args[1], notation)
        return b if a == () else a if b == () else (a[0], b[1])
    if isinstance(expr, ir.Dot):
        a, b = _shape(expr.args[0], notation), _shape(expr.args[1], notation)
        return (a[0], b[1])
    if isinstance(expr, ir.TDot):
        return (_shape(expr.args[0], notation)[1], 1)
    if isinstance(expr, ir.Outer):
        return (_shape(expr.args[0], notation)[0], _shape(expr.args[1], notation)[0])
    if isinstance(expr, (ir.SumOverTime, sympy.Pow)):
        return shape(expr.args[0], notation)
    shapes = [s for s in (shape(a, notation) for a in expr.args) if s != ()]
    return shapes[0] if shapes else ()


def show_shape(s: tuple) -> str:
    """'H×D', '(H+D)×1', 'a scalar'."""
    if s == ():
        return "a scalar"
    return "×".join("(%s)" % d if "+" in str(d) else str(d) for d in s)


