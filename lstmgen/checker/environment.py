"""Witness values: a random sequence run forward and backward through a cell, so that every
forward value, total gradient dL/ds_t and parameter holds a consistent numeric value.

Shapes: column vectors (batch 1), x_t is D x 1, every other vector H x 1, a matrix W with
W v in the equations is H x dim(v).  The backward pass uses the derivation's own recurrences
(`Derivation.state_total`, `Derivation.initial`), so the checker knows no derivative itself.

`local_gradient` is the vector-Jacobian product used for chain-rule factors such as
dc_t/df_t: the gradient of sum(upstream * target_t) with respect to one argument of the
target's own equation (a quantity the target does not depend on gets zero, so the seed's
dc_t/do_t is 0).  It and `adjoint_expr` are the derivation's own backward walk
(`reverse.backward`) seeded with an upstream vector instead of the states' totals.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from .. import ir, symbols
from ..cells import cell_cache
from ..evaluate import EvaluationError, Evaluator
from .. import reverse
from ..reverse import Derivation, Term, derive

# (D, H, T) of each random draw: D != H and both > 1, so a shape error never hides; T varies,
# so that a sum written out over a fixed number of steps is no identity.
DRAWS = ((3, 5, 4), (4, 2, 5), (2, 3, 3))
MIN_STEPS = min(T for _, _, T in DRAWS)
# (draw, t) at which a formula is compared: inner steps and a last one (t = T: nothing from t+1).
POINTS = ((0, 2), (0, 4), (1, 3), (1, 5), (2, 2))
LAST_POINTS = tuple((k, t) for k, t in POINTS if t == DRAWS[k][2]) + ((2, DRAWS[2][2]),)  # t = T
UPSTREAM = sympy.Symbol("upstream")  # the vector a vector-Jacobian product starts from


# ----------------------------------------------------------------------------- dimensions
def vector_dim(cell, name: str) -> str:
    """'D' for the input, 'H' for every other vector quantity."""
    return "D" if name == cell.input else "H"


@cell_cache
def _matrix_columns(cell: str) -> dict:
    d = derive(cell)
    out = {}
    for eq in d.cell.equations:
        for dot in eq.rhs.atoms(ir.Dot):
            ref = symbols.read(dot.args[1])
            out[dot.args[0].name] = vector_dim(d.cell, ref.name)
    return out


def parameter_shape(cell: str, name: str) -> tuple:
    """('H', 'D') for W_x^f, ('H', 1) for a bias or a diagonal weight."""
    cols = _matrix_columns(cell)
    return ("H", cols[name]) if name in cols else ("H", 1)


@cell_cache
def equation_targets(cell: str) -> frozenset:
    """Names of the quantities computed by an equation of the cell (not inputs or parameters)."""
    return frozenset(eq.target for eq in derive(cell).cell.equations)


def at_time(expr, time: str):
    """expr, written at step t, moved to `time` ('t+1', 't-1', or an absolute step such as '0')."""
    offset = symbols.time_offset(time)
    if offset is None:
        return symbols.retime(expr, lambda t: symbols.fix_time(t, int(time)))
    if offset == 0:
        return expr
    return symbols.retime(expr, lambda t: symbols.shift_time(t, offset))


def relative_to(den_ref, at: str):
    """The vector `den_ref` names, re-timed relative to step `at` of the quantity being
    differentiated (∂c_5/∂c_4 -> c[t-1]), which is how `local_gradient` is keyed; None when one
    time is a step index and the other is relative to t."""
    if (symbols.time_offset(at) is None) != (symbols.time_offset(den_ref.time) is None):
        return None
    offset = int(symbols.fix_time(den_ref.time, 2)) - int(symbols.fix_time(at, 2))
    return symbols.vector(den_ref.name, symbols.time_label(offset))



# ----------------------------------------------------------------------------- backward walk
def _backward(cell, seeds: dict, into_states: bool, follow: bool = True, shared: dict | None = None) -> dict:
    """`reverse.backward` seeded with {quantity name at t: upstream expression}: {symbol: gradient}
    (with `shared`, the walk stops at the intermediates it gives a total gradient of their own)."""
    terms = reverse.backward(cell, {name: [Term((name,), (up,))] for name, up in seeds.items()}, into_states, follow,
                             shared=shared)
    return {sym: ir.total(term.expr() for term in paths) for sym, paths in terms.items()}


@cell_cache
def local_gradient(cell: str, target: str, wrt: sympy.Symbol) -> sympy.Expr:
    """∂ sum(UPSTREAM * target_t) / ∂ wrt (wrt at t, t-1 or a parameter).

    When target's own equation uses wrt, this is the partial derivative of that equation: a
    chain-rule factor ∂c_t/∂f_t means exactly this, and paths through other quantities are
    other terms of the chain rule.  When it does not (∂h_t/∂h_{t-1} of the LSTM), it is the
    derivative through the step's other equations; 0 when target does not depend on wrt at
    all (the seed's ∂c_t/∂o_t).  ∂q_t/∂q_t is the identity: the upstream itself."""
    if wrt == symbols.vector(target):
        return UPSTREAM
    direct = _backward(cell, {target: UPSTREAM}, into_states=True, follow=False)
    if wrt in direct:
        return direct[wrt]
    reached = _backward(cell, {target: UPSTREAM}, into_states=True)
    return reached.get(wrt, sympy.Integer(0))


@cell_cache
def adjoint_expr(cell: str, name: str) -> sympy.Expr:
    """dL/dq_t of an intermediate q in terms of the states' total gradients at t."""
    d = derive(cell)
    seeds = {s: symbols.vector(s, "t", "adjoint") for s in d.cell.states}
    # the derivation's own walk, so the intermediates it shares are these (Derivation.shared),
    # whose totals the witnesses hold
    reached = _backward(cell, seeds, into_states=False, shared={})
    return reached.get(symbols.vector(name), sympy.Integer(0))


# ----------------------------------------------------------------------------- witness
@dataclass
class Witness:
    """One random draw: arrays keyed by (role, name, step) and parameters by name."""

    cell: str
    D: int
    H: int
    T: int
    vectors: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def dim(self, label):
        return {"D": self.D, "H": self.H, 1: 1}[label]

    def lookup(self, symbol: sympy.Symbol, t: int):
        ref = symbols.read(symbol)
        if ref is None:
            try:
                return self.params[symbol.name]
            except KeyError:
                raise EvaluationError("no value for %s" % symbol.name) from None
        step = int(symbols.fix_time(ref.time, t))
        key = (ref.role, ref.name, step)
        if key in self.vectors:
            return self.vectors[key]
        cell = derive(self.cell).cell
        if ref.role != "value" and step > self.T and ref.name in cell.quantities:
            return np.zeros((self.dim(vector_dim(cell, ref.name)), 1))
        if ref.role == "upstream" and ref.name in cell.quantities and 0 <= step:
            return np.zeros((self.dim(vector_dim(cell, ref.name)), 1))
        raise EvaluationError("no value for %s at step %d" % (ref.name, step))

    def evaluator(self, t: int) -> Evaluator:
        return Evaluator(self.lookup, t, self.T)


# (initial states, inputs) of the wide draws are this many times larger, one pair per draw: a
# second look where a term vanishes at the ordinary draws (a step far from 0, see evidence.py).
# Large states reach the next steps' states (c_t in the hundreds); large inputs saturate the gates.
WIDE_SCALES = ((1000.0, 1.0), (1000.0, 10.0), (100.0, 100.0))


@cell_cache
def witnesses(cell: str) -> tuple:
    """The random draws of `DRAWS` for a cell (seeded, so verdicts are reproducible)."""
    with np.errstate(all="ignore"):  # a cell's log of a negative value gives NaN, not a warning on stderr
        return tuple(_draw(cell, D, H, T, seed) for seed, (D, H, T) in enumerate(DRAWS))


@cell_cache
def wide_witnesses(cell: str) -> tuple:
    """The draws of `DRAWS` again with initial states and inputs scaled by `WIDE_SCALES` (other seeds)."""
    with np.errstate(all="ignore"):
        return tuple(_draw(cell, D, H, T, 100 + seed, *scales)
                     for seed, ((D, H, T), scales) in enumerate(zip(DRAWS, WIDE_SCALES)))


def _draw(cell: str, D: int, H: int, T: int, seed: int, state_scale: float = 1.0, input_scale: float = 1.0) -> Witness:
    d: Derivation = derive(cell)
    cell = d.cell
    rng = np.random.RandomState(1234 + seed)
    w = Witness(cell, D, H, T)
    for q in cell.parameters:
        rows, cols = parameter_shape(cell, q.name)
        fan_in = w.dim(cols)
        w.params[q.name] = rng.randn(w.dim(rows), w.dim(cols)) / np.sqrt(fan_in)
    last = T + 1  # one extra step, so that formulas at t = T can read values at t+1
    for step in range(1, last + 1):
        w.vectors[("value", cell.input, step)] = input_scale * rng.randn(D, 1)
    for state in cell.states:
        w.vectors[("value", state, 0)] = state_scale * rng.randn(H, 1)
    for step in range(1, last + 1):
        ev = w.evaluator(step)
        for eq in cell.equations:
            w.vectors[("value", eq.target, step)] = np.asarray(ev(eq.rhs), dtype=float).reshape(H, 1)
    for step in range(1, T + 1):
        w.vectors[("upstream", cell.output, step)] = rng.randn(H, 1)
    # the totals at each step, last step first: of the states, and of the intermediates with a
    # gradient of their own (Derivation.shared), each once what it reads is known
    totals = {state: d.state_total(state) for state in cell.states}
    totals.update({name: gradient.expr() for name, gradient in d.shared.items()})
    for step in range(T, 0, -1):
        todo = list(totals)
        for _ in range(len(totals) + 1):
            for name in list(todo):
                try:
                    value = w.evaluator(step)(totals[name])
                except EvaluationError:
                    continue
                w.vectors[("adjoint", name, step)] = value
                todo.remove(name)
        if todo:
            raise EvaluationError("cannot order the gradients of %s at step %d (%s)" % (cell.name, step, ", ".join(todo)))
    for state in cell.states:
        w.vectors[("adjoint", state, 0)] = w.evaluator(1)(d.initial(state))
    for step in range(1, T + 1):
        ev = w.evaluator(step)
        w.vectors[("adjoint", cell.input, step)] = ev(d.step_gradient(cell.input))
        for eq in cell.equations:
            if eq.target not in cell.states and eq.target not in d.shared:
                w.vectors[("adjoint", eq.target, step)] = ev(adjoint_expr(cell, eq.target))
    return w
