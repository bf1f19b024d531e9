"""The numeric reading of a parsed equation: its value at the witness points.

`DocEvaluator` extends the shared `lstmgen.evaluate.Evaluator` with what documents add: chain-rule
products (vector-Jacobian products through the cell's own local gradients), stacked vectors and
block matrices, and the author's layout (in the row layout every vector and matrix is the
transpose of its column-layout value, so a row-layout formula is compared with the transposed
truth).  Values of the derivation's own expressions (`truth`) are computed in the column layout and
then turned into the author's.

Bounds (README, "Limits"): every node evaluated is a checkpoint of the time budget
(`bounds.check`); sums over t nest at most `MAX_NESTED_SUMS` deep (each one multiplies the work
by T); a matrix product may have at most `MAX_ENTRIES` entries (a stacked vector of thousands of
blocks times its transpose would fill gigabytes in one NumPy call).
"""
from __future__ import annotations

import numpy as np
import sympy

from .. import ir, symbols
from ..evaluate import EvaluationError, Evaluator, ShapeError, close
from ..reverse import derive
from . import bounds, environment as env
from .notation import Notation
from .nodes import LOSS, STEP_LOSS, Blocks, Chain, FreeSymbol, IllShaped, Partial, Stack, ref_of

MAX_NESTED_SUMS = 3
MAX_ENTRIES = 100_000
MATRIX_NODES = (ir.Dot, ir.TDot, ir.Outer, ir.MatMul, ir.Transpose, ir.SumOverTime, Chain, Partial, IllShaped,
                Stack, Blocks, ir.RowBlocks, ir.Slice)


class BrokenChain(EvaluationError):
    """A chain-rule product whose factors do not connect (∂L/∂h_t · ∂c_t/∂f_t)."""


def lower(expr):
    """∂L/∂v (v a cell vector) -> the adjoint symbol dL/dv; any other ∂A/∂B (∂ℓ_t/∂h_t, ∂L/∂W,
    ∂f_t/∂x_t) -> a one-factor Chain, which the evaluator reads as a vector-Jacobian product."""
    if isinstance(expr, Chain):
        return expr
    if isinstance(expr, Partial):
        num, den = expr.args
        ref = ref_of(den)
        if num == LOSS and ref is not None:
            return symbols.vector(ref.name, ref.time, "adjoint")
        if num == LOSS and isinstance(den, Stack) and all(ref_of(a) for a in den.args):
            return Stack(*[lower(Partial(LOSS, a)) for a in den.args])  # the gradient of [a_i; a_f] is stacked too
        return Chain(expr)
    if not expr.args:
        return expr
    args = [lower(a) for a in expr.args]
    return ir.rebuild(expr, args)


def _oriented(value, row: bool):
    return np.transpose(value) if row and np.shape(value) != () else value


class DocEvaluator(Evaluator):
    """Evaluates parsed documents: adds chain-rule products and shape problems."""

    def __init__(self, witness, t, cell, free=None, row: bool = False, sums: int = 0):
        self.witness = witness
        self.cell = cell
        self.free = free or {}
        self.row = row  # the author's row layout: every looked-up value transposed
        self.sums = sums  # the sums over t this evaluation is inside
        super().__init__(self._lookup, t, witness.T)

    def __call__(self, expr):
        bounds.check()
        return super().__call__(expr)

    def _eval_SumOverTime(self, expr):
        if self.sums >= MAX_NESTED_SUMS:
            raise EvaluationError("sums over t nested more than %d deep" % MAX_NESTED_SUMS)
        self.sums += 1  # the evaluators of the sum's steps are copies of this one
        try:
            return super()._eval_SumOverTime(expr)
        finally:
            self.sums -= 1

    def _matmul(self, a, b, what: str):
        if np.shape(a) != () and np.shape(b) != () and np.shape(a)[0] * np.shape(b)[1] > MAX_ENTRIES:
            raise EvaluationError("%s of %d x %d entries is too large" % (what, np.shape(a)[0], np.shape(b)[1]))
        return super()._matmul(a, b, what)

    def _lookup(self, symbol, t):
        if isinstance(symbol, FreeSymbol):
            if symbol.name in self.free:
                return self.free[symbol.name]
            raise EvaluationError("unknown symbol %s" % symbol.name)
        if symbol == env.UPSTREAM:
            return self.free["<upstream>"]
        ref = symbols.read(symbol)
        if ref is not None and ref.name == STEP_LOSS:
            raise EvaluationError("ℓ_t is a scalar loss term")
        return _oriented(self.witness.lookup(symbol, t), self.row)

    def truth(self, expr):
        """The value of one of the derivation's expressions (column layout), in the author's layout."""
        if not self.row:
            return self(expr)
        column = DocEvaluator(self.witness, self.t, self.cell, self.free, row=False, sums=self.sums)
        return _oriented(column(expr), True)

    def _eval_Stack(self, expr):
        """[a, x]: stacked along the vectors' length."""
        parts = [np.ones((1, 1)) if a.is_Number else np.asarray(self(a), dtype=float) for a in expr.args]
        return np.hstack(parts) if self.row else np.vstack(parts)

    def _eval_Slice(self, expr):
        """[v]_{a:b} with a, b in D and H (entries counted from 1)."""
        dims = {sympy.Symbol("D"): self.witness.D, sympy.Symbol("H"): self.witness.H}
        lo, hi = (int(bound.xreplace(dims)) for bound in expr.args[1:])
        value = np.asarray(self(expr.args[0]), dtype=float)
        return value[:, lo - 1:hi] if self.row else value[lo - 1:hi, :]

    def _eval_RowBlocks(self, expr):
        """[W^i; W^f]: the blocks stacked row-wise (side by side, in the row layout)."""
        parts = [np.asarray(self(a), dtype=float) for a in expr.args]
        return np.hstack(parts) if self.row else np.vstack(parts)

    def _eval_Blocks(self, expr):
        """[W_h^f  W_x^f]: the blocks side by side (stacked, in the row layout)."""
        parts = [np.asarray(self(a), dtype=float) for a in expr.args]
        return np.vstack(parts) if self.row else np.hstack(parts)

    def _eval_IllShaped(self, expr):
        raise ShapeError(str(expr.args[2]))

    def _eval_Partial(self, expr):
        return self._eval_Chain(Chain(expr))

    def _time(self, ref) -> int:
        return int(symbols.fix_time(ref.time, self.t))

    def _vjp(self, num, den, upstream):
        """upstream · ∂num/∂den (gradient of sum(upstream * num) with respect to den)."""
        num_ref = ref_of(num)
        if num_ref is None or num_ref.role != "value":
            if isinstance(num, sympy.Symbol):
                raise EvaluationError("∂%s/∂…: not a quantity with an equation" % num)
            if num.has(*MATRIX_NODES):
                raise EvaluationError("a derivative of a matrix expression")
            slope = sympy.diff(num, den)
            return upstream * self(slope)
        if num_ref.name not in env.equation_targets(self.cell):
            if num == den:
                return upstream
            raise EvaluationError("%s has no equation to differentiate" % num_ref.name)
        at = self._time(num_ref)
        if isinstance(den, FreeSymbol):
            raise EvaluationError("unknown symbol %s" % den.name)
        if isinstance(den, Blocks):
            raise EvaluationError("a chain-rule factor with respect to a stacked matrix")
        den_ref = symbols.read(den)
        if den_ref is None:
            wrt = den
        else:
            offset = self._time(den_ref) - at
            if offset not in (0, -1):
                return self._zero(den)
            wrt = symbols.vector(den_ref.name, symbols.time_label(offset))
        gradient = env.local_gradient(self.cell, num_ref.name, wrt)
        inner = DocEvaluator(self.witness, at, self.cell, dict(self.free, **{"<upstream>": _oriented(upstream, self.row)}))
        value = inner(gradient)
        if np.shape(value) == () and float(value) == 0.0:
            return self._zero(den)
        return _oriented(value, self.row)

    def _zero(self, den):
        """The zero gradient: shaped like the quantity it is taken with respect to."""
        return np.zeros_like(np.asarray(self(den), dtype=float))

    def _eval_Chain(self, expr):
        """The chain rule as vector-Jacobian products, from the loss (or the first factor) down."""
        num, den = chain_links(expr)[0]
        if num == LOSS:
            ref = symbols.read(den)
            if ref is None:  # ∂L/∂W on a right side: the gradient over the sequence
                d = derive(self.cell)
                if isinstance(den, (Blocks, ir.RowBlocks)):
                    current = self.truth(ir.SumOverTime(den.func(*[d.step_gradient(p.name) for p in den.args])))
                elif den.name not in d.step:
                    raise EvaluationError("%s is not a parameter" % den.name)
                else:
                    current = self.truth(d.summed(den.name))
            else:
                current = self(symbols.vector(ref.name, ref.time, "adjoint"))
        elif ref_of(num) is not None and ref_of(num).name == STEP_LOSS:
            current = self._step_loss(num, den)
        else:
            current = self._vjp(num, den, np.ones_like(np.asarray(self(num), dtype=float)))
        for num, den in chain_links(expr)[1:]:
            current = self._vjp(num, den, current)
        return current

    def _step_loss(self, num, den):
        d = derive(self.cell)
        num_ref, den_ref = symbols.read(num), symbols.read(den)
        if den_ref is None or den_ref.name != d.cell.output:
            raise EvaluationError("∂ℓ_t/∂… is understood for the output %s only" % d.cell.output)
        if self._time(num_ref) != self._time(den_ref):
            return self._zero(den)
        return self(symbols.vector(den_ref.name, den_ref.time, "upstream"))


def chain_links(chain: Chain) -> list:
    """The factors (numerator, denominator) of a chain-rule product, checked to connect: each
    factor's numerator is the previous one's denominator (∂L/∂c_t · ∂c_t/∂f_t).  Written right to
    left (∂f_t/∂b · ∂c_t/∂f_t · ∂L/∂c_t, the denominator layout's order) it is the same product,
    read in the order that connects.  The one rule for when factors connect, shared by the numeric
    walk here and the symbolic one (`symbolic`)."""
    links = [part.args for part in chain.args]
    broken = _break_in(links)
    if broken is None:
        return links
    if len(links) > 1 and _break_in(links[::-1]) is None:
        return links[::-1]
    previous, num = broken
    raise BrokenChain("the chain breaks: a factor ∂…/∂%s is followed by ∂%s/∂…" % (_plain(previous), _plain(num)))


def _break_in(links: list):
    """(denominator, next numerator) of the first pair of factors that do not connect, or None."""
    for (_, previous), (num, _) in zip(links, links[1:]):
        ra, rb = ref_of(previous), ref_of(num)
        if previous != num and not (ra and rb and ra.name == rb.name and ra.time == rb.time):
            return previous, num
    return None


def _plain(sym) -> str:
    ref = ref_of(sym)
    if ref:
        return "%s_%s" % (ref.name, ref.time)
    return sym.name if isinstance(sym, sympy.Symbol) else "an expression"


def agree(a: list, b: list) -> bool:
    """True when two lists of values (None: not evaluable) agree at every point."""
    if a is None or b is None:
        return False
    return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))




# ----------------------------------------------------------------------------- values
def identity_points(name):
    rng = np.random.RandomState(7)
    return [{name: rng.randn(3, 1)} for _ in range(3)]


def values(expr, notation: Notation, identity: str = "", points=None) -> list:
    """The value of a document's expression at every witness point (a list of arrays); for a
    calculus identity in the variable `identity`, at random values of it."""
    draws = env.witnesses(notation.cell)
    row = notation.layout == "row"
    with np.errstate(all="ignore"):
        if identity:
            # elementwise in one variable: the same in either layout
            return [DocEvaluator(draws[0], 2, notation.cell, free)(expr) for free in identity_points(identity)]
        return [DocEvaluator(draws[k], t, notation.cell, row=row)(expr) for k, t in points or env.POINTS]


def truth(expr, notation: Notation, identity: str = "", points=None) -> list:
    """The value of one of the derivation's expressions at every witness point, in the author's layout."""
    draws = env.witnesses(notation.cell)
    row = notation.layout == "row"
    with np.errstate(all="ignore"):
        if identity:
            return [DocEvaluator(draws[0], 2, notation.cell, free).truth(expr) for free in identity_points(identity)]
        return [DocEvaluator(draws[k], t, notation.cell, row=row).truth(expr) for k, t in points or env.POINTS]


def safe(function, *args):
    """function(*args), or None when the attempt cannot be evaluated (a repair that does not apply)."""
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a failed repair attempt only means "not this fix"
        return None


def opposite(a, b) -> bool:
    return bool(a) and bool(b) and agree(a, [-x for x in b]) and not agree(a, b)
