"""Reverse-mode derivation: one backward equation per quantity of a cell, step and sequence.

Conventions (those of the derivation we teach from): vectors are columns; dL/dX is the total
gradient of the scalar loss L; dL/dc_t and dL/dh_t are the totals reaching the states at t,
which the step formulas keep as symbols.  Every other intermediate (the gates) is expanded
into the chain that reaches it, so dL/dW_x^f reads  {dL/dc_t * c_{t-1} * [f_t*(1-f_t)]} x_t^T.

Expanding every path is exponential in a cell whose quantities each read the two before them, so
an intermediate that more than `SHARE_PATHS` paths reach (or paths longer than `SHARE_FACTORS`
factors, or of more than `SHARE_SIZE` operations in all) gets its own total gradient dL/dq_t
(`Derivation.shared`), as a state has: the paths below it start from that symbol.  No built-in
cell comes near these bounds, so their formulas are the expanded ones.  Whatever the cell, the walk
refuses (CellError) once it holds more than `MAX_TERMS` terms or terms of more than `MAX_SIZE`
operations in all.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import sympy

from . import cells, symbols
from .errors import CellError
from .ir import Dot, SumOverTime, product, total
from .rules import CONTRACTIONS, diff, local_derivative, opaque_products

SHARE_PATHS = 8      # more paths than this into an intermediate: it gets its own dL/dq_t
SHARE_FACTORS = 6    # a path of more factors (or links) than this into an intermediate: likewise
SHARE_SIZE = 64      # paths of more operations than this in all (built-in cells: at most 19)
MAX_TERMS = 5_000    # chain-rule terms one backward walk may hold, over all quantities
MAX_SIZE = 10_000    # and the operations of their factors: what documents and code print


@dataclass(frozen=True)
class Term:
    """One chain-rule path's share of a gradient.

    chain   quantities from the one whose total gradient is a symbol down to the one
            differentiated, e.g. ('c', 'f') for dL/dc_t . dc_t/df_t . df_t/dW_x^f
    factors elementwise factors whose product is the path's delta (an H-vector)
    form    'elementwise' (delta itself), 'outer' (delta operand^T) or 'transposed' (operand^T delta)
    operand the vector of an outer product or the matrix of a transposed one
    via     the equation the path enters through (its delta is that equation's gradient)
    """

    chain: tuple[str, ...]
    factors: tuple[sympy.Expr, ...]
    form: str = "elementwise"
    operand: sympy.Symbol | None = None
    via: str = ""
    size: int = field(default=1, compare=False, repr=False)  # operations of its factors (for the walk's bounds)

    @property
    def delta(self) -> sympy.Expr:
        return product(self.factors)

    def expr(self) -> sympy.Expr:
        """The term as one expression of `lstmgen.ir`."""
        if self.form == "outer":
            return CONTRACTIONS["matrix"](self.delta, None, self.operand)
        if self.form == "transposed":
            return CONTRACTIONS["vector"](self.delta, self.operand, None)
        return self.delta


@dataclass
class Gradient:
    """dL/d`wrt` as a list of terms; `wrt` is a parameter name or a vector at t / t-1."""

    wrt: sympy.Symbol
    terms: list[Term] = field(default_factory=list)

    def expr(self) -> sympy.Expr:
        return total(term.expr() for term in self.terms)


@dataclass(frozen=True)
class PreActivation:
    """An equation q = act(P) whose P holds parameters, read as act of its pre-activation P.

    slope   act'(P), written with q where possible (q * (1 - q) for the sigmoid); 1 when q = P
    is_pre  the equation is q = P itself (no activation to peel off)
    """

    target: str
    pre: sympy.Expr
    slope: sympy.Expr
    is_pre: bool

    def inner(self, wrt: sympy.Expr) -> sympy.Expr:
        """dP/dwrt for a symbol or a product Dot(W, v) inside P."""
        return _inner(self.pre, wrt)


@dataclass
class Derivation:
    """Everything the printers and the checker need about one cell's backward pass."""

    cell: cells.Cell
    step: dict[str, Gradient]            # keyed by name: parameters, the input, the states at t-1
    within_step: dict[str, list[Term]]   # per state: its share of dL/ds_t from consumers inside step t
    local: dict[tuple[str, str], Gradient]  # (target, wrt symbol name) -> d sum(target_t) / d wrt
    pre_activations: dict[str, PreActivation] = field(default_factory=dict)  # per equation with parameters
    # intermediates with a total gradient of their own (see the module docstring), consumers first:
    # dL/dq_t = the sum of its terms, each ending in q; empty for every built-in cell
    shared: dict[str, Gradient] = field(default_factory=dict)

    # -- sequence level ------------------------------------------------------------------
    def step_gradient(self, name: str) -> sympy.Expr:
        return self.step[name].expr()

    def summed(self, name: str) -> sympy.Expr:
        """dL/dparam over the sequence: the step gradient summed over t = 1..T."""
        return SumOverTime(self.step_gradient(name))

    def state_total(self, state: str) -> sympy.Expr:
        """dL/ds_t: the loss's own gradient (outputs only), what consumers at t pass back, and
        what step t+1 passes back through s_t."""
        parts = []
        if state == self.cell.output:
            parts.append(symbols.vector(state, "t", "upstream"))
        parts.extend(term.expr() for term in self.within_step[state])
        parts.append(symbols.retime(self.step_gradient(state), lambda t: symbols.shift_time(t, 1)))
        return total(parts)

    def initial(self, state: str) -> sympy.Expr:
        """dL/ds_0: the step gradient of s_{t-1} at t = 1."""
        return symbols.retime(self.step_gradient(state), lambda t: symbols.fix_time(t, 1))


def derive(cell: cells.Cell | str) -> Derivation:
    """The derivation of a Cell, a built-in cell's name or a cell file's path (cached on the
    cell's content, so an edited file is derived anew)."""
    return derive_cell(cell if isinstance(cell, cells.Cell) else cells.load(cell))


@cells.cell_cache
def derive_cell(cell: cells.Cell) -> Derivation:
    """Walk the equations from the states back to the inputs, collecting one Term per path (a path
    that reaches a shared intermediate stops there, and one starts from its dL/dq_t)."""
    seeds = {s: [Term((s,), (symbols.vector(s, "t", "adjoint"),))] for s in cell.states}
    step: dict[str, Gradient] = {}
    within_step: dict[str, list[Term]] = {s: [] for s in cell.states}
    shared: dict[str, Gradient] = {}
    for wrt, terms in backward(cell, seeds, shared=shared).items():
        ref = symbols.read(wrt)
        if ref is None or ref.time == "t-1" or ref.name == cell.input:  # a parameter or a step input
            name = wrt.name if ref is None else ref.name
            step.setdefault(name, Gradient(wrt)).terms.extend(terms)
        elif ref.name in cell.states:  # a state at t: a share of its total gradient
            within_step[ref.name].extend(replace(term, chain=term.chain + (ref.name,)) for term in terms)
    local: dict[tuple[str, str], Gradient] = {}
    for eq in cell.equations:  # d sum(target_t) / d wrt: the upstream is all ones
        for wrt, form, operand, slope in shares(eq):
            local.setdefault((eq.target, wrt.name), Gradient(wrt)).terms.append(Term((), (slope,), form, operand))
    _order(cell, step)
    pre = {eq.target: _pre_activation(cell, eq) for eq in cell.equations}
    return Derivation(cell, step, within_step, local, {name: p for name, p in pre.items() if p is not None},
                      shared)


def _pre_activation(cell: cells.Cell, eq: cells.Equation) -> PreActivation | None:
    """q = act(P) with all of the equation's parameters inside P (and only numbers beside it), else q = P."""
    params = [s for s in eq.rhs.free_symbols if is_parameter(cell, s)]
    if not params:
        return None
    rhs = eq.rhs
    inside = [a for a in rhs.args if a.has(*params)]
    single = (isinstance(rhs, sympy.Function) and not isinstance(rhs, Dot) and len(inside) == 1
              and all(a.is_number for a in rhs.args if a is not inside[0])
              and all(a.has(p) for a in inside for p in params))
    if not single:
        return PreActivation(eq.target, rhs, sympy.Integer(1), True)
    pre = inside[0]
    z = sympy.Dummy("z", real=True)
    slope = local_derivative(rhs.func(*[z if a is pre else a for a in rhs.args]), z, symbols.vector(eq.target))
    return PreActivation(eq.target, pre, slope.xreplace({z: pre}), False)


def is_parameter(cell: cells.Cell, sym) -> bool:
    """`sym` is one of the cell's parameters (not a vector at some time)."""
    q = cell.quantities.get(getattr(sym, "name", None))
    return q is not None and q.is_parameter and symbols.read(sym) is None


@functools.lru_cache(maxsize=4096)
def _inner(pre: sympy.Expr, wrt: sympy.Expr) -> sympy.Expr:
    """dP/dwrt, the products W v of P opaque (memoized: layouts and deltas ask for the same again and again)."""
    stand, back = opaque_products(pre)
    target = next((u for u, dot in back.items() if dot == wrt), wrt) if isinstance(wrt, Dot) else wrt
    return sympy.factor_terms(diff(stand, target)).xreplace(back)


@cells.cell_cache
def shares(eq: cells.Equation) -> tuple:
    """How an equation's gradient reaches each symbol it reads elementwise and both sides of each
    product W v: (operand, form, other operand, local derivative), form as in `Term`."""
    output = symbols.vector(eq.target)
    rhs, stand_ins = opaque_products(eq.rhs)
    out = [(wrt, "elementwise", None, local_derivative(rhs, wrt, output).xreplace(stand_ins))
           for wrt in sorted(rhs.free_symbols - set(stand_ins), key=str)]
    for stand_in, dot in stand_ins.items():
        matrix, vec = dot.args
        slope = local_derivative(rhs, stand_in, output).xreplace(stand_ins)
        out += [(matrix, "outer", vec, slope), (vec, "transposed", matrix, slope)]
    return tuple(out)


def backward(cell: cells.Cell, seeds: dict, into_states: bool = False, follow: bool = True,
             shared: dict | None = None) -> dict:
    """The backward walk: push `seeds` ({quantity at t: [Term]}, each an upstream gradient) back
    through the step's equations, from outputs to inputs.

    Returns {symbol: [Term]} for every symbol reached (values at t and t-1, the input,
    parameters), one Term per path.  What reaches an intermediate at t flows on through its own
    equation; a state at t flows on only with `into_states` (else its seed is a total and it is a
    leaf); with `follow` False only the seeds' own equations are differentiated.  The derivation
    seeds it with the states' total gradients; the checker with an upstream vector, for the
    vector-Jacobian products of chain-rule factors.  With a dict `shared`, an intermediate that too
    many or too long paths reach gets its own total gradient (stored there, by name) and flows on
    from that symbol; without it, a walk that outgrows MAX_TERMS or MAX_FACTORS is refused."""
    pending = {name: list(terms) for name, terms in seeds.items()}
    reached: dict = {}
    budget = _Budget(cell)
    for eq in reversed(cell.equations):
        upstream = pending.pop(eq.target, None)
        if not upstream:
            continue
        if shared is not None and eq.target not in seeds and _too_many(upstream):
            shared[eq.target] = Gradient(symbols.vector(eq.target), upstream)
            upstream = [Term((eq.target,), (symbols.vector(eq.target, "t", "adjoint"),))]
        for wrt, form, operand, slope in shares(eq):
            size = _size(slope)
            for up in upstream:
                term = Term(up.chain, up.factors + (slope,), form, operand, eq.target, up.size + size)
                budget.spend(term)
                reached.setdefault(wrt, []).append(term)
                ref = symbols.read(wrt)
                if not follow or ref is None or ref.time != "t" or ref.name == cell.input:
                    continue
                if ref.name in cell.states and not into_states:
                    continue
                factors = term.factors if term.form == "elementwise" else (term.expr(),)
                pending.setdefault(ref.name, []).append(Term(term.chain + (ref.name,), factors, size=term.size))
    if shared is not None:  # consumers first, as the walk met them
        ordered = {name: shared[name] for name in reversed([eq.target for eq in cell.equations]) if name in shared}
        shared.clear()
        shared.update(ordered)
    return reached


def _too_many(paths: list[Term]) -> bool:
    """More paths, or a longer one, than an expanded formula should hold."""
    return (len(paths) > SHARE_PATHS or sum(t.size for t in paths) > SHARE_SIZE
            or max(max(len(t.factors), len(t.chain)) for t in paths) > SHARE_FACTORS)


def _size(expr: sympy.Expr) -> int:
    """The number of operations and atoms of an expression (a local derivative: a tree of a few hundred)."""
    return sum(1 for _ in sympy.preorder_traversal(expr))


class _Budget:
    """The walk's size, checked as it grows: a one-line CellError past MAX_TERMS or MAX_SIZE."""

    def __init__(self, cell: cells.Cell):
        self.cell, self.terms, self.size = cell, 0, 0

    def spend(self, term: Term) -> None:
        self.terms += 1
        self.size += term.size
        if self.terms > MAX_TERMS or self.size > MAX_SIZE:
            raise CellError("cell %s: its backward pass has more than %d chain-rule terms or %d operations; "
                            "the cell is too large to derive" % (self.cell.name, MAX_TERMS, MAX_SIZE))


def _order(cell: cells.Cell, step: dict[str, Gradient]) -> None:
    """Order terms as the cell file orders its equations (f, i, o, c~ for the LSTM)."""
    rank = {eq.target: k for k, eq in enumerate(cell.equations)}
    for gradient in step.values():
        gradient.terms.sort(key=lambda term: rank.get(term.via, -1))
