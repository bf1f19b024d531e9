"""SymPy's verdict on a link: both sides brought to one canonical form and compared term by term.

A gradient formula is a sum of a few matrix shapes around elementwise algebra: Wᵀ e (a
transposed product), e vᵀ (an outer product), e itself, each possibly summed over t.  `canonical`
maps an expression to {(form, operand, summed): elementwise coefficient}, after moving
transposes inwards ((eᵀ W)ᵀ = Wᵀ e) and writing the chain rule out with the cell's own partial
derivatives (`environment.local_gradient`).  Two sides are equal when their keys agree and
every coefficient difference expands to 0.  Anything else returns None (no symbolic verdict;
the numeric comparison still decides).

Bounds: sides of more than `MAX_OPS` operations, and differences whose expansion would have more
than `MAX_EXPANDED_TERMS` terms (one sympy.expand of (a + ... + g)^64 runs for minutes and fills
gigabytes), are not compared; the steps between SymPy calls are checkpoints of `bounds`.
"""
from __future__ import annotations

import math

import sympy

from .. import ir, symbols
from ..reverse import derive
from . import bounds, environment as env
from .evaluation import BrokenChain, chain_links
from .nodes import LOSS, STEP_LOSS, Chain, IllShaped, Partial, ref_of

MAX_OPS = 600
MAX_EXPANDED_TERMS = 2_000
# ir.Dot is not among them: W v is a column, so it may sit inside an elementwise coefficient
# (the forward equation's σ(W_x^f x_t + ...)).
_MATRIX_FORMS = (ir.TDot, ir.Outer, ir.SumOverTime, ir.MatMul, ir.Transpose, Chain, Partial, IllShaped)


class NotCanonical(Exception):
    """An expression outside the forms SymPy compares here."""


def _is_parameter(expr, cell) -> bool:
    return isinstance(expr, sympy.Symbol) and symbols.read(expr) is None and expr.name in cell.quantities


def _is_elementwise(expr) -> bool:
    return not expr.has(*_MATRIX_FORMS, _Row, _RowT)


def chain_expr(chain: Chain, cell: str):
    """The chain rule written out with the cell's partial derivatives (a SymPy expression)."""
    d = derive(cell)
    try:
        links = chain_links(chain)
    except BrokenChain:
        raise NotCanonical("a broken chain") from None
    num, den = links[0]
    if num == LOSS and symbols.read(den) is not None:
        ref = symbols.read(den)
        current = symbols.vector(ref.name, ref.time, "adjoint")
    elif num == LOSS and den.name in d.step:
        current = d.summed(den.name)
    else:
        num_ref = ref_of(num)
        if num_ref is not None and num_ref.name == STEP_LOSS:
            den_ref = symbols.read(den)
            if den_ref is None or den_ref.name != d.cell.output or den_ref.time != num_ref.time:
                raise NotCanonical("∂ℓ/∂…")
            current = symbols.vector(den_ref.name, den_ref.time, "upstream")
        else:
            current = _step(num, den, sympy.Integer(1), cell)
    for num, den in links[1:]:
        current = _step(num, den, current, cell)
    return current


def _step(num, den, upstream, cell):
    """upstream · ∂num/∂den, symbolically (num a cell quantity at some time)."""
    cell = derive(cell).cell
    ref = ref_of(num)
    if ref is None or ref.role != "value" or ref.name not in env.equation_targets(cell):
        raise NotCanonical("not a quantity with an equation")
    den_ref = ref_of(den)
    if den_ref is None:
        if not _is_parameter(den, cell):
            raise NotCanonical("an unknown variable")
        wrt = den
    else:
        wrt = env.relative_to(den_ref, ref.time)
        if wrt is None:
            raise NotCanonical("mixed time indices")
    gradient = env.at_time(env.local_gradient(cell, ref.name, wrt), ref.time)
    return gradient.xreplace({env.UPSTREAM: upstream})


def tidy(expr, cell: str):
    """Chains written out, transposes moved inwards, W v / Wᵀ e / e vᵀ as Dot / TDot / Outer."""
    bounds.check()
    cell = derive(cell).cell
    if isinstance(expr, Chain):
        return tidy(chain_expr(expr, cell), cell)
    if isinstance(expr, Partial):
        return tidy(Chain(expr), cell)
    if isinstance(expr, IllShaped):
        raise NotCanonical("ill-shaped")
    if not expr.args:
        return expr
    if isinstance(expr, ir.Transpose):
        inner = tidy(expr.args[0], cell)
        return _transpose(inner, cell)
    args = [tidy(a, cell) for a in expr.args]
    if isinstance(expr, ir.MatMul):
        return _matmul(args[0], args[1], cell)
    return expr.func(*args)


class _Row(sympy.Function):
    """eᵀ, a transposed column (only while tidying)."""

    nargs = 1


class _RowT(sympy.Function):
    """eᵀ W, the transpose of Wᵀ e (only while tidying)."""

    nargs = 2


def _transpose(a, cell):
    if isinstance(a, ir.Transpose):
        return a.args[0]
    if isinstance(a, _Row):
        return a.args[0]
    if isinstance(a, _RowT):
        return ir.TDot(a.args[1], a.args[0])
    if isinstance(a, ir.TDot):
        return _RowT(a.args[1], a.args[0])
    if isinstance(a, ir.Outer):
        return ir.Outer(a.args[1], a.args[0]) if _is_elementwise(a.args[1]) else ir.Transpose(a)
    if isinstance(a, sympy.Add):
        return sympy.Add(*[_transpose(t, cell) for t in a.args])
    if isinstance(a, ir.SumOverTime):
        return ir.SumOverTime(_transpose(a.args[0], cell))
    if a.is_Number:
        return a
    if isinstance(a, sympy.Mul):
        numbers = [f for f in a.args if f.is_Number]
        rest = [f for f in a.args if not f.is_Number]
        if numbers and len(rest) == 1:
            return sympy.Mul(*numbers) * _transpose(rest[0], cell)
    if _is_parameter(a, cell):
        return ir.Transpose(a)
    if _is_elementwise(a):
        return _Row(a)
    raise NotCanonical("a transpose")


def _matmul(a, b, cell):
    if isinstance(a, ir.Transpose) and _is_parameter(a.args[0], cell) and _is_elementwise(b):
        return ir.TDot(a.args[0], b)
    if _is_parameter(a, cell) and _is_elementwise(b):
        return ir.Dot(a, b)
    if _is_elementwise(a) and isinstance(b, _Row):
        return ir.Outer(a, b.args[0])
    if isinstance(a, _Row) and _is_parameter(b, cell):
        return _RowT(a.args[0], b)
    raise NotCanonical("a matrix product")


def canonical(expr, cell: str) -> dict:
    """{(form, operand, summed): coefficient} of a tidied expression (see the module docstring)."""
    out: dict = {}

    def add(key, coefficient):
        out[key] = out.get(key, 0) + coefficient

    def walk(e, scale, summed):
        bounds.check()
        if isinstance(e, sympy.Add):
            for a in e.args:
                walk(a, scale, summed)
            return
        if isinstance(e, ir.SumOverTime):
            if summed:
                raise NotCanonical("a double sum")
            walk(e.args[0], scale, True)
            return
        if isinstance(e, sympy.Mul) and not _is_elementwise(e):
            numbers = [f for f in e.args if f.is_Number]
            rest = [f for f in e.args if not f.is_Number]
            if len(rest) != 1:
                raise NotCanonical("a product of matrix forms")
            walk(rest[0], scale * sympy.Mul(*numbers), summed)
            return
        if isinstance(e, ir.TDot) and _is_elementwise(e.args[1]):
            add(("T", e.args[0], summed), scale * e.args[1])
            return
        if isinstance(e, ir.Outer) and _is_elementwise(e.args[0]) and isinstance(e.args[1], sympy.Symbol):
            add(("O", e.args[1], summed), scale * e.args[0])
            return
        if _is_elementwise(e):
            add(("E", None, summed), scale * e)
            return
        raise NotCanonical(type(e).__name__)

    walk(tidy(expr, cell), sympy.Integer(1), False)
    return out


def equal(a, b, cell: str):
    """True when SymPy shows a == b; None when it cannot say (never False: numbers decide)."""
    try:
        if sympy.count_ops(a) + sympy.count_ops(b) > MAX_OPS:
            return None
        left, right = canonical(a, cell), canonical(b, cell)
        keys = set(left) | set(right)
        for key in keys:
            bounds.check()
            difference = sympy.sympify(left.get(key, 0) - right.get(key, 0))
            if expanded_terms(difference) > MAX_EXPANDED_TERMS or sympy.expand(difference) != 0:
                return None
        return True
    except (NotCanonical, TypeError, ValueError, AttributeError, RecursionError):
        return None


def is_zero(expr, cell: str) -> bool:
    """True when SymPy shows expr is 0 once the cell's forward equations are written in (σ(z_f) - f_t
    is 0; step(c_t - 100) is not); False when it cannot."""
    try:
        if sympy.count_ops(expr) > MAX_OPS:
            return False
        return all(_forward_written_in(c, cell) == 0 for c in canonical(expr, cell).values())
    except (NotCanonical, TypeError, ValueError, AttributeError, RecursionError):
        return False


def _forward_written_in(expr, cell: str):
    """expr with the quantities of its latest step written as their equations (until none of that
    step is left), then those of the step before, expanded; None when it grows too large."""
    cell = derive(cell).cell
    targets = env.equation_targets(cell)

    def computed(e):
        return {sym: symbols.read(sym) for sym in e.free_symbols
                if symbols.read(sym) is not None and symbols.read(sym).role == "value" and symbols.read(sym).name in targets}

    for _ in range(2):
        if sympy.expand(expr) == 0:
            return sympy.Integer(0)
        found = computed(expr)
        if not found:
            break
        latest = max(int(symbols.fix_time(ref.time, 100)) for ref in found.values())
        for _ in range(len(cell.equations) + 1):  # within one step the equations are acyclic
            mapping = {sym: env.at_time(cell.equation(ref.name).rhs, ref.time) for sym, ref in computed(expr).items()
                       if int(symbols.fix_time(ref.time, 100)) == latest}
            if not mapping:
                break
            expr = expr.xreplace(mapping)
            if sympy.count_ops(expr) > 10 * MAX_OPS:
                return None
    return sympy.expand(expr)


def expanded_terms(expr) -> int:
    """An upper bound of the terms sympy.expand(expr) builds in any of its subexpressions (a
    function's argument is expanded too); counting stops past MAX_EXPANDED_TERMS."""
    def terms(e) -> int:
        if isinstance(e, sympy.Add):
            count = sum(terms(a) for a in e.args)
        elif isinstance(e, sympy.Mul):
            count = 1
            for a in e.args:
                count *= terms(a)
                if count > MAX_EXPANDED_TERMS:
                    break
        elif isinstance(e, sympy.Pow) and e.exp.is_Rational:
            base, power = terms(e.base), abs(int(e.exp))  # (a + b)^(5/2) expands as (a + b)^2 sqrt(a + b)
            count = math.comb(base + power - 1, power)  # the terms of a multinomial
        else:
            for a in e.args:
                terms(a)
            count = 1
        if count > MAX_EXPANDED_TERMS:
            raise _TooMany()
        return count

    try:
        return terms(expr)
    except _TooMany:
        return MAX_EXPANDED_TERMS + 1


class _TooMany(Exception):
    pass
