"""How much the witness values show: the parts of a written side that the witness points cannot
see, and a second look at wider-ranged points where they may.

Agreement at a few random points is strong evidence for the smooth algebra of a gradient formula:
an expression built from sums, products, σ, tanh, exp and log that agrees with the truth at
random points agrees everywhere (it is analytic).  Two things break that argument, and only they
are looked for here, in the author's own side (not in the derivation's formulas it reads through
chain-rule factors):

* a sub-term that is 0 at every point (every entry below the comparison's tolerance) without
  owing that to the cell (∂L/∂h_{T+1}, a factor ∂c_t/∂o_t the cell makes 0) or to algebra SymPy
  can show (σ(z_f) - f_t): whatever it multiplies is never compared (e^{-1000}, a step far from
  the witness range);
* a step, sign, |·|, max or min whose argument has one sign at every point: the points see one
  branch of it, a constant or a linear function there (step(c_t + 100) is 1 at every point and 0
  wherever c_t < -100).

Each such blind spot has a *stand-in*: what the points cannot tell it from (0, or its one branch).
`second_look` judges the side at the wide draws of `environment.wide_witnesses` (states and inputs
up to 1000 times larger): the side is wrong if it differs from the truth there, and a blind spot
is seen if the side with the stand-in differs from the side there.  The judge never calls a side
correct on an agreement that a stand-in would share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy

from .. import symbols
from ..evaluate import EvaluationError, close
from ..functions import UserFunction
from . import environment as env
from . import symbolic
from .evaluation import DocEvaluator, identity_points
from .nodes import Chain, IllShaped, Partial
from .notation import Notation

RTOL = 1e-9              # the comparison's tolerance (`evaluate.close`): a term below it is unseen
WIDE_RTOL = 1e-6         # a difference at the wide points must be larger than float noise at 1000x
MAX_WATCHED = 400        # sub-terms of one side that are watched
BRANCHING = (sympy.Heaviside, sympy.sign, sympy.Abs, sympy.Max, sympy.Min)
_KINDS = {sympy.Heaviside: "a step function", sympy.sign: "a sign function", sympy.Abs: "an absolute value",
          sympy.Max: "a maximum", sympy.Min: "a minimum"}


@dataclass(frozen=True)
class BlindSpot:
    """A sub-term of the written side the points cannot see: `node`, `how` ('zero': 0 at every
    point; 'branch': one branch at every point) and the `stand_in` they cannot tell it from."""

    node: object
    how: str
    stand_in: object
    expected: bool = False  # a part of the expected formula (the derivation's), not of the written side


@dataclass(frozen=True)
class SecondLook:
    """What the wide points say: 'differs' (the side is wrong there), 'seen' (they see every blind
    spot and agree) or 'blind' (they agree and still cannot see `spots`); `points`: how many."""

    outcome: str
    points: int
    spots: tuple


# ----------------------------------------------------------------------------- watching an evaluation
class _Watching(DocEvaluator):
    """A DocEvaluator that remembers, for the watched sub-terms, every value they took and whether
    it came through a zero the cell itself makes (a gradient past the last step, a factor that does
    not depend on what it is taken with respect to), and the signs of branch arguments."""

    def __init__(self, witness, t, cell, watched, free=None, row=False, stand_ins=None):
        super().__init__(witness, t, cell, free, row)
        self.watched = watched
        self.stand_ins = stand_ins or {}  # node -> what to evaluate in its place (shaped like it)
        self.memo: dict = {}      # (expr, t) -> (value, through a cell's zero)
        self.frames: list = []    # one flag per expression being evaluated: a cell's zero was met
        self.values: dict = {}    # watched node -> [(value, through a cell's zero)]
        self.signs: dict = {}     # branching node -> signs its argument took

    def __call__(self, expr):
        key = (expr, self.t)
        if key in self.memo:
            value, structural = self.memo[key]
        else:
            self.frames.append(False)
            try:
                value = self._stand_in(expr) if expr in self.stand_ins else super().__call__(expr)
            finally:
                structural = self.frames.pop()
            self.memo[key] = (value, structural)
            if expr in self.watched:
                self.values.setdefault(expr, []).append((value, structural))
                if isinstance(expr, BRANCHING):
                    self.signs.setdefault(expr, set()).update(_signs(self._switch(expr)))
        if structural and self.frames:
            self.frames[-1] = True
        return value

    def _stand_in(self, node):
        """The stand-in's value in the node's place, in the node's shape (0 stands for a zero array)."""
        actual = np.asarray(super().__call__(node), dtype=float)
        stand = np.asarray(super().__call__(self.stand_ins[node]), dtype=float)
        return np.broadcast_to(stand, actual.shape).copy() if actual.shape else float(stand)

    def _switch(self, node):
        """The value whose sign picks the branch: the argument, or a - b of max(a, b)."""
        if isinstance(node, (sympy.Heaviside, sympy.sign, sympy.Abs)):
            return self(node.args[0])
        if len(node.args) == 2:
            return np.asarray(self(node.args[0]), dtype=float) - np.asarray(self(node.args[1]), dtype=float)
        return np.zeros(1)  # max of three: not followed (seen as two branches)

    def _structural_zero(self):
        if self.frames:
            self.frames[-1] = True

    def _zero(self, den):
        self._structural_zero()
        return super()._zero(den)

    def _lookup(self, symbol, t):
        value = super()._lookup(symbol, t)
        ref = symbols.read(symbol)
        if ref is not None and ref.role != "value":
            step = int(symbols.fix_time(ref.time, t))
            if (ref.role, ref.name, step) not in self.witness.vectors:  # 0 by convention (past T)
                self._structural_zero()
        return value


def _signs(value) -> set:
    value = np.asarray(value, dtype=float)
    return {int(s) for s in np.unique(np.sign(value[np.isfinite(value)]))} or {0, 1, -1}


def _watched(expr) -> tuple[set, dict]:
    """The written sub-terms worth watching (the side, the terms of every sum, the factors of every
    product, every function and its argument; chain-rule factors as whole values), and for a node
    inside a cell file's function (the max in relu's formula) the application it belongs to."""
    out, owner = set(), {}

    def walk(node, owned_by):
        if len(out) > MAX_WATCHED or node.is_Number:
            return
        out.add(node)
        if owned_by is not None:
            owner.setdefault(node, owned_by)
        if isinstance(node, (Chain, Partial, IllShaped)) or not node.args:
            return
        if isinstance(node, UserFunction):
            walk(node.expand_formula(node.args[0]), owned_by or node)
        for arg in node.args:
            walk(arg, owned_by)

    walk(expr, None)
    return out, owner


def _settings(notation: Notation, target, wide: bool) -> list:
    """(witness, t, free values) of every point a side is judged at, ordinary or wide."""
    identity = target.name if target.kind == "identity" else ""
    draws = env.wide_witnesses(notation.cell) if wide else env.witnesses(notation.cell)
    if identity:
        scales = [max(pair) for pair in env.WIDE_SCALES] if wide else [1.0] * len(identity_points(identity))
        return [(draws[0], 2, {identity: scale * point[identity]}) for scale, point in zip(scales, identity_points(identity))]
    return [(draws[k], t, None) for k, t in (target.points or env.POINTS)]


def _truth(notation: Notation, target, left, setting):
    witness, t, free = setting
    evaluator = DocEvaluator(witness, t, notation.cell, free, notation.layout == "row")
    return evaluator.truth(target.expr) if target.expr is not None else evaluator(left)


def _value(expr, notation: Notation, setting, watched=frozenset(), expected=False, stand_ins=None):
    """The value of a written side (or, `expected`, of one of the derivation's formulas, in the
    column layout, as `DocEvaluator.truth` reads them) at one point, and its watcher; `stand_ins`
    puts other values in the place of some nodes."""
    witness, t, free = setting
    watcher = _Watching(witness, t, notation.cell, watched, free, notation.layout == "row" and not expected, stand_ins)
    value = watcher(expr)
    return (np.transpose(value) if expected and notation.layout == "row" and np.shape(value) else value), watcher


def _scale(*values) -> float:
    return max(1e-3, *(float(np.max(np.abs(np.asarray(v, dtype=float)), initial=0.0)) for v in values))


def _finite(value) -> bool:
    return bool(np.all(np.isfinite(np.asarray(value, dtype=float))))


# ----------------------------------------------------------------------------- blind spots
def blind_spots(expr, notation: Notation, target, left=None, expected=False) -> tuple:
    """The parts of a written side (lowered) that the ordinary witness points cannot see; `left`
    is the lowered left side, the truth of a plain equation.  With `expected`, those of the
    expected formula `expr` (a truth that vanishes or takes one branch everywhere is as blind)."""
    watched, owner = _watched(expr)
    zero, signs = {}, {}
    with np.errstate(all="ignore"):
        for setting in _settings(notation, target, wide=False):
            try:
                got, watcher = _value(expr, notation, setting, watched, expected)
                truth = _truth(notation, target, left, setting)
            except (EvaluationError, ArithmeticError, ValueError, TypeError):
                return ()
            tolerance = RTOL * _scale(got, truth)
            for node, seen in watcher.values.items():
                small = all(np.all(np.abs(np.asarray(v, dtype=float)) <= tolerance) for v, _ in seen)
                structural = any(s for _, s in seen)
                was_small, was_structural = zero.get(node, (True, True))
                zero[node] = (was_small and small, was_structural and structural)
            for node, found in watcher.signs.items():
                signs.setdefault(node, set()).update(found)
    spots = {}
    for node, (small, structural) in zero.items():
        if small and not structural:
            spots[node] = ("zero", sympy.Integer(0))
    for node, found in signs.items():
        one = found - {0}
        if node not in spots and len(one) == 1:
            spots[node] = ("branch", _branch(node, one.pop()))
    innermost = [node for node in spots if not any(other != node and node.has(other) for other in spots)]
    out = []
    for node in innermost:
        how, stand_in = spots[node]
        if how == "zero" and symbolic.is_zero(node, notation.cell):
            continue
        shown = owner.get(node)
        if shown is not None:  # relu(h_t - 100): the max in its formula stands for the application
            stand_in = shown.expand_formula(shown.args[0]).xreplace({node: stand_in})
            node = shown
        elif stand_in == 0:
            stand_in = sympy.Integer(0)
        if all(spot.node != node for spot in out):
            out.append(BlindSpot(node, how, stand_in, expected))
    return tuple(out)


def _branch(node, sign: int):
    """The one branch of a step, sign, |·|, max or min that the points saw (its argument's sign)."""
    if isinstance(node, sympy.Heaviside):
        return sympy.Integer(1 if sign > 0 else 0)
    if isinstance(node, sympy.sign):
        return sympy.Integer(sign)
    if isinstance(node, sympy.Abs):
        return node.args[0] if sign > 0 else -node.args[0]
    a, b = node.args[:2]
    if isinstance(node, sympy.Max):
        return a if sign > 0 else b
    return b if sign > 0 else a


def second_look(expr, notation: Notation, target, spots: tuple, left=None) -> SecondLook:
    """The side judged again at the wide draws: wrong there, or do they see its blind spots (the
    side, or the expected formula, with a stand-in differing from itself there)?"""
    rows = []
    with np.errstate(all="ignore"):
        for setting in _settings(notation, target, wide=True):
            try:
                got, _ = _value(expr, notation, setting)
                truth = _truth(notation, target, left, setting)
                others = {spot: _value(target.expr if spot.expected else expr, notation, setting, expected=spot.expected,
                                       stand_ins={spot.node: spot.stand_in})[0] for spot in spots}
            except (EvaluationError, ArithmeticError, ValueError, TypeError):
                continue
            if _finite(got) and _finite(truth):
                rows.append((got, truth, others))
    if any(not close(got, truth, WIDE_RTOL) for got, truth, _ in rows):
        return SecondLook("differs", len(rows), spots)

    def seen(spot):
        return any(_finite(others[spot]) and not close(truth if spot.expected else got, others[spot], WIDE_RTOL)
                   for got, truth, others in rows)

    blind = tuple(spot for spot in spots if not seen(spot))
    return SecondLook("blind" if blind else "seen", len(rows), blind)


# ----------------------------------------------------------------------------- the verdict's words
def weigh(expr, notation: Notation, target, show, left=None) -> tuple:
    """What a side's agreement at the witness points is worth: ('', '') when the points see all of
    it; else (verdict, why) with verdict 'incorrect' (the wide points show it wrong), 'weak' (no
    point can see a part of it) or 'seen' (the wide points see it and agree).  `show` prints a node."""
    spots = blind_spots(expr, notation, target, left)
    if target.expr is not None:
        spots += blind_spots(target.expr, notation, target, expected=True)
    if not spots:
        return "", ""
    look = second_look(expr, notation, target, spots, left)
    compared = "the expected formula" if target.expr is not None else "the left side"
    if look.outcome == "differs":
        return "incorrect", ("it agrees with %s at the witness points only because %s; at %d witness points with "
                             "larger values it differs" % (compared, _listed(spots, show), look.points))
    if look.outcome == "blind":
        return "weak", ("the numbers cannot decide it: %s (and %d points with larger values do not help), so the "
                        "agreement with %s says nothing about it, and SymPy could not show the equation"
                        % (_listed(look.spots, show), look.points, compared))
    return "seen", "and at %d with larger values, since %s" % (look.points, _listed(spots, show))


def _listed(spots, show) -> str:
    return "; ".join(describe(spot, show) for spot in spots[:3]) + ("; ..." if len(spots) > 3 else "")


def describe(spot: BlindSpot, show) -> str:
    """'\\operatorname{step}(c_t - 100) is 0 at every witness point' (show: a node's LaTeX)."""
    try:
        written = show(spot.node)
    except Exception:  # noqa: BLE001 - a node the printer cannot show is named by its kind
        written = ""
    if not written or len(written) > 80:
        written = _KINDS.get(type(spot.node), "a term")
    where = "the expected formula's " if spot.expected else ""
    if spot.how == "zero":
        return "%s%s is 0 at every witness point" % (where, written)
    return "%s%s takes one branch at every witness point" % (where, written)
