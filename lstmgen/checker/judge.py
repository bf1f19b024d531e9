"""Verdicts: what an equation's left side means, the true value from the derivation, and a
diagnosis of every link of the equation that differs from it.

The truth comes from `lstmgen.reverse` (step gradients, state totals, summed gradients, local
derivatives) and the cell's own equations; the checker adds no derivative knowledge.  A link is
decided numerically at the witness points of `environment.POINTS` (several random draws with
D != H); when the numbers agree, `symbolic.equal` is asked too, and the verdict says whether SymPy
could show the equality (it never overrules the numbers).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import sympy

from .. import ir, symbols
from ..evaluate import EvaluationError, Evaluator, ShapeError, close
from ..functions import sigmoid
from ..rules import local_derivative
from ..printing.latex import derivative, latex
from ..reverse import derive
from . import environment as env
from . import symbolic
from .parse import (LOSS, STEP_LOSS, Chain, FreeSymbol, IllShaped, Partial, Unsupported, build_side,
                    parse_equation, ref_of, shape, show_shape, vocabulary)

MATRIX_NODES = (ir.Dot, ir.TDot, ir.Outer, ir.MatMul, ir.Transpose, ir.SumOverTime, Chain, Partial, IllShaped)


class BrokenChain(EvaluationError):
    """A chain-rule product whose factors do not connect (∂L/∂h_t · ∂c_t/∂f_t)."""


@dataclass
class Verdict:
    status: str                 # correct | incorrect | unrecognized
    lhs: str
    expected: str = ""
    message: str = ""
    warnings: list = field(default_factory=list)


# ----------------------------------------------------------------------------- printing
def to_latex(expr, cell_name: str, hadamard: str = "*") -> str:
    """LaTeX of an expected formula in the writer's notation ('' for None)."""
    if expr is None:
        return ""
    return latex(expr, derive(cell_name).cell, hadamard)


# ----------------------------------------------------------------------------- evaluation
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
        return Chain(expr)
    if not expr.args:
        return expr
    args = [lower(a) for a in expr.args]
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


class DocEvaluator(Evaluator):
    """Evaluates parsed documents: adds chain-rule products and shape problems."""

    def __init__(self, witness, t, cell_name, free=None):
        self.witness = witness
        self.cell_name = cell_name
        self.free = free or {}
        super().__init__(self._lookup, t, witness.T)

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
        return self.witness.lookup(symbol, t)

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
        if num_ref.name not in env.equation_targets(self.cell_name):
            if num == den:
                return upstream
            raise EvaluationError("%s has no equation to differentiate" % num_ref.name)
        at = self._time(num_ref)
        if isinstance(den, FreeSymbol):
            raise EvaluationError("unknown symbol %s" % den.name)
        den_ref = symbols.read(den)
        if den_ref is None:
            wrt = den
        else:
            offset = self._time(den_ref) - at
            if offset not in (0, -1):
                return self._zero(den)
            wrt = symbols.vector(den_ref.name, symbols.time_label(offset))
        gradient = env.local_gradient(self.cell_name, num_ref.name, wrt)
        inner = DocEvaluator(self.witness, at, self.cell_name, dict(self.free, **{"<upstream>": upstream}))
        value = inner(gradient)
        if np.shape(value) == () and float(value) == 0.0:
            return self._zero(den)
        return value

    def _zero(self, den):
        """The zero gradient: shaped like the quantity it is taken with respect to."""
        return np.zeros_like(np.asarray(self(den), dtype=float))

    def _eval_Chain(self, expr):
        parts = expr.args
        num, den = parts[0].args
        if num == LOSS:
            ref = symbols.read(den)
            if ref is None:  # ∂L/∂W on a right side: the gradient over the sequence
                d = derive(self.cell_name)
                if den.name not in d.step:
                    raise EvaluationError("%s is not a parameter" % den.name)
                current = self(d.summed(den.name))
            else:
                current = self(symbols.vector(ref.name, ref.time, "adjoint"))
        elif ref_of(num) is not None and ref_of(num).name == STEP_LOSS:
            current = self._step_loss(num, den)
        else:
            current = self._vjp(num, den, np.ones_like(np.asarray(self(num), dtype=float)))
        previous = den
        for part in parts[1:]:
            num, den = part.args
            if not self._same(num, previous):
                raise BrokenChain("the chain breaks: a factor ∂…/∂%s is followed by ∂%s/∂…"
                                  % (_plain(previous), _plain(num)))
            current = self._vjp(num, den, current)
            previous = den
        return current

    def _step_loss(self, num, den):
        d = derive(self.cell_name)
        num_ref, den_ref = symbols.read(num), symbols.read(den)
        if den_ref is None or den_ref.name != d.cell.output:
            raise EvaluationError("∂ℓ_t/∂… is understood for the output %s only" % d.cell.output)
        if self._time(num_ref) != self._time(den_ref):
            return self._zero(den)
        return self(symbols.vector(den_ref.name, den_ref.time, "upstream"))

    def _same(self, a, b) -> bool:
        if a == b:
            return True
        ra, rb = ref_of(a), ref_of(b)
        return bool(ra and rb and ra.name == rb.name and self._time(ra) == self._time(rb))


def _plain(sym) -> str:
    ref = ref_of(sym)
    if ref:
        return "%s_%s" % (ref.name, ref.time)
    return sym.name if isinstance(sym, sympy.Symbol) else "an expression"


def agree(a: list, b: list) -> bool:
    return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------------------- the left side
@dataclass
class Target:
    """What the left side denotes: the expected expression and how to describe it."""

    expr: object                      # expected SymPy expression (None: compare with the LHS itself)
    kind: str                         # gradient | summed | state | local | upstream | forward | identity | plain
    name: str = ""                    # quantity or parameter name
    time: str = "t"
    terms: list = field(default_factory=list)   # [(expr, family label, Term or None)]
    free: dict = field(default_factory=dict)


def _family(cell, via: str) -> str:
    q = cell.quantities.get(via)
    return "%s family" % symbols.with_time(q.latex, "t") if q else ""


def _gradient_terms(d, name, time, summed=False):
    out = []
    for term in d.step[name].terms:
        expr = env.at_time(term.expr(), time)
        out.append((ir.SumOverTime(expr) if summed else expr, _family(d.cell, term.via), term))
    return out


def target_of(lhs, sides, cell_name: str) -> Target:
    d = derive(cell_name)
    cell = d.cell
    targets = env.equation_targets(cell_name)
    summed = any(s.expr.has(ir.SumOverTime) for s in sides[1:])
    if isinstance(lhs, Partial):
        num, den = lhs.args
        if isinstance(den, FreeSymbol):
            if num.has(*MATRIX_NODES) or not num.free_symbols <= {den}:
                raise Unsupported("unknown symbol %s" % den.name)
            return Target(sympy.diff(num, den), "identity", den.name)
        den_ref = symbols.read(den)
        if num == LOSS:
            if den_ref is None:
                if den.name not in d.step:
                    raise Unsupported("%s is not a parameter of the cell" % den.name)
                if summed:
                    return Target(d.summed(den.name), "summed", den.name,
                                  terms=_gradient_terms(d, den.name, "t", summed=True))
                return Target(d.step_gradient(den.name), "gradient", den.name,
                              terms=_gradient_terms(d, den.name, "t"))
            name, time = den_ref.name, den_ref.time
            if name == cell.input:
                if symbols.time_offset(time) is None and not 1 <= int(time) <= env.MIN_STEPS:
                    raise Unsupported("%s at step %s is outside the sequence" % (name, time))
                return Target(env.at_time(d.step_gradient(name), time), "gradient", name, time,
                              terms=_gradient_terms(d, name, time))
            if name in cell.states:
                offset = symbols.time_offset(time)
                if offset is not None and offset < 0:
                    back = env.at_time(d.step_gradient(name), symbols.time_label(offset + 1))
                    return Target(back, "gradient", name, time,
                                  terms=_gradient_terms(d, name, symbols.time_label(offset + 1)))
                if time == "0":
                    return Target(d.initial(name), "gradient", name, time,
                                  terms=_gradient_terms(d, name, "1"))
                expr = env.at_time(d.state_total(name), time)
                return Target(expr, "state", name, time, terms=[(a, "", None) for a in _terms(expr)])
            if name in targets:
                expr = env.at_time(env.adjoint_expr(cell_name, name), time)
                return Target(expr, "state", name, time, terms=[(a, "", None) for a in _terms(expr)])
            raise Unsupported("∂L/∂%s is not a gradient the cell defines" % name)
        num_ref = ref_of(num)
        if num_ref is not None and num_ref.name == STEP_LOSS:
            if den_ref is None or den_ref.name != cell.output or den_ref.time != num_ref.time:
                raise Unsupported("∂ℓ_t/∂… is understood for the output %s_t only" % cell.output)
            return Target(symbols.vector(cell.output, den_ref.time, "upstream"), "upstream", cell.output)
        if num_ref is not None and num_ref.role == "value" and num_ref.name in targets:
            at = num_ref.time
            if den_ref is None:
                wrt_name, wrt = den.name, den
            else:
                wrt = env.relative_to(den_ref, at)
                if wrt is None:
                    raise Unsupported("a derivative mixing a step index and t")
                wrt_name = wrt.name
            direct = d.local.get((num_ref.name, wrt_name))
            if direct is not None:
                expr = direct.expr()
            else:
                expr = env.local_gradient(cell_name, num_ref.name, wrt).xreplace({env.UPSTREAM: sympy.Integer(1)})
            expr = env.at_time(expr, at)
            return Target(expr, "local", num_ref.name, at, terms=[(a, "", None) for a in _terms(expr)])
        if not num.has(*MATRIX_NODES) and isinstance(den, sympy.Symbol):
            return Target(sympy.diff(lower(num), den), "local", "", "")
        raise Unsupported("cannot read the derivative on the left side")
    lhs_ref = ref_of(lhs)
    if lhs_ref is not None and lhs_ref.role == "value" and lhs_ref.name in targets:
        expr = env.at_time(cell.equation(lhs_ref.name).rhs, lhs_ref.time)
        return Target(expr, "forward", lhs_ref.name, lhs_ref.time)
    return Target(None, "plain")


# ----------------------------------------------------------------------------- judging
SECONDS_PER_EQUATION = 5


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: int):
    """Bound the time spent on one equation (where the platform has SIGALRM, main thread only)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise _Timeout()

    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)  # a caller's own alarm, kept running
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 1e-3))


def judge(text: str, cell_name: str, hadamard: str = "*") -> Verdict | None:
    """The verdict on one equation's text; None when the text has no '=' (not an equation).

    Documents are untrusted: whatever goes wrong while reading one equation makes that
    equation 'unrecognized' with a one-line reason, never an exception."""
    lhs_text = " ".join(text.split("=")[0].split())[:200]  # before parsing: messages need a left side
    try:
        with _time_limit(SECONDS_PER_EQUATION):
            return _judge(text, cell_name, hadamard, lhs_text)
    except _Timeout:
        return Verdict("unrecognized", lhs_text, message="gave up after %d s on this equation" % SECONDS_PER_EQUATION)
    except RecursionError:
        return Verdict("unrecognized", lhs_text, message="the equation is nested too deeply")
    except Exception as exc:  # noqa: BLE001 - untrusted input must never end in a traceback
        return Verdict("unrecognized", lhs_text,
                       message="could not judge this equation (%s: %s)" % (type(exc).__name__, str(exc)[:120]))


def _judge(text: str, cell_name: str, hadamard: str, lhs_text: str) -> Verdict | None:
    try:
        sides = parse_equation(text, cell_name)
    except Unsupported as exc:
        return Verdict("unrecognized", lhs_text, message=str(exc))
    if len(sides) < 2:
        return None
    lhs_text = sides[0].text
    warnings = []
    for side in sides:
        warnings.extend(w for w in side.warnings if w not in warnings)
    free = set().union(*(side.free for side in sides))
    try:
        target = target_of(sides[0].expr, sides, cell_name)
        if free and target.kind != "identity":
            raise Unsupported("unknown symbol%s %s" % ("s" if len(free) > 1 else "", ", ".join(sorted(free))))
        if target.kind == "identity" and not free <= {target.name}:
            raise Unsupported("unknown symbols %s" % ", ".join(sorted(free - {target.name})))
    except Unsupported as exc:
        return Verdict("unrecognized", lhs_text, message=str(exc), warnings=warnings)
    return _judge_links(sides, target, cell_name, hadamard, lhs_text, warnings)


def _identity_points(name):
    rng = np.random.RandomState(7)
    return [{name: rng.randn(3, 1)} for _ in range(3)]


def _values(expr, cell_name, target) -> list:
    """The value of expr at every witness point (a list of arrays); for a calculus identity,
    at random values of its free variable."""
    draws = env.witnesses(cell_name)
    if target.kind == "identity":
        return [DocEvaluator(draws[0], 2, cell_name, free)(expr) for free in _identity_points(target.name)]
    with np.errstate(all="ignore"):
        return [DocEvaluator(draws[k], t, cell_name)(expr) for k, t in env.POINTS]


def _writer_order(target, side_expr):
    """The expected formula with its terms in the order the writer used (matched by weight)."""
    if len(target.terms) < 2 or any(term is None for _, _, term in target.terms):
        return target.expr
    order = []
    for w in _terms(side_expr):
        params = {s for s in w.free_symbols if symbols.read(s) is None}
        for j, (_, _, term) in enumerate(target.terms):
            if j not in order and term.form == "transposed" and term.operand in params:
                order.append(j)
                break
    order += [j for j in range(len(target.terms)) if j not in order]
    return ir.total(target.terms[j][0] for j in order)


def _judge_links(sides, target, cell_name, hadamard, lhs_text, warnings) -> Verdict:
    shown = _writer_order(target, lower(sides[-1].expr)) if target.expr is not None else None
    expected_latex = to_latex(shown, cell_name, hadamard) if shown is not None else ""
    try:  # the truth: the derivation's value, or for a plain equation its own left side
        truth = _values(target.expr if target.expr is not None else lower(sides[0].expr), cell_name, target)
    except (EvaluationError, ArithmeticError, ValueError, TypeError) as exc:
        return Verdict("unrecognized", lhs_text, expected_latex,
                       "cannot evaluate the left side (%s)" % exc, warnings)
    if not all(np.all(np.isfinite(np.asarray(value, dtype=float))) for value in truth):
        # e.g. a cell's log of a negative witness value: no side could be shown right or wrong
        return Verdict("unrecognized", lhs_text, expected_latex,
                       "the left side is not finite at the random witness points (NaN or overflow)", warnings)
    problems, by_sympy = [], 0
    unreadable = []
    for index in range(1, len(sides)):
        side = sides[index]
        expr = lower(side.expr)
        try:
            got = _values(expr, cell_name, target)
        except BrokenChain as exc:
            problems.append((index, str(exc)))
            continue
        except ShapeError as exc:
            problems.append((index, _transpose_repair(side, target, cell_name, truth, str(exc))
                             or "the shapes do not fit: %s" % exc))
            continue
        except (EvaluationError, ArithmeticError, ValueError, TypeError) as exc:
            unreadable.append("side %d: %s" % (index + 1, exc))
            continue
        if agree(got, truth):
            if target.expr is not None and symbolic.equal(expr, target.expr, cell_name):
                by_sympy += 1
            continue
        problems.append((index, diagnose(expr, target, cell_name, hadamard, got, truth, side)))
    links = len(sides) - 1
    note = "; ".join(warnings)
    if problems:
        parts = []
        for index, why in problems:
            label = _link_label(index, links, sides[index].expr)
            parts.append("%s: %s" % (label, why) if why else "%s differs from the expected formula" % label)
        message = "; ".join(parts)
        if note:
            message += " (" + note + ")"
        return Verdict("incorrect", lhs_text, expected_latex, message, warnings)
    if unreadable:
        return Verdict("unrecognized", lhs_text, expected_latex, "cannot evaluate " + "; ".join(unreadable), warnings)
    how = "SymPy and " if by_sympy == links else ""
    message = "%s checked (%snumerically at %d random points)" % (
        "all %d links" % links if links > 1 else "the right side", how, len(truth))
    if note:
        message += "; " + note
    return Verdict("correct", lhs_text, expected_latex, message, warnings)


def _link_label(index, links, expr) -> str:
    kind = "the chain-rule form" if expr.has(Chain) else "the closed form"
    if links == 1:
        return "the right side"
    return "link %d (%s, after the %s '=')" % (index, kind, _ordinal(index))


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(n, "%dth" % n)


# ----------------------------------------------------------------------------- diagnosis
def _terms(expr) -> list:
    """Top-level terms in the writer's order (a sum over t distributes over its terms)."""
    if isinstance(expr, ir.SumOverTime):
        return [ir.SumOverTime(a) for a in _terms(expr.args[0])]
    if isinstance(expr, sympy.Add):
        out = []
        for a in expr.args:
            out.extend(_terms(a))
        return out
    return [expr]


def _safe_values(expr, cell_name, target):
    """Values for a diagnosis attempt; None when the attempt cannot be evaluated."""
    try:
        return _values(expr, cell_name, target)
    except Exception:  # noqa: BLE001 - a failed repair attempt only means "not this fix"
        return None


def diagnose(expr, target, cell_name, hadamard, got, truth, side=None) -> str:
    """One line saying what is wrong with a side whose value differs from the truth."""
    d = derive(cell_name)
    cell = d.cell
    tex = lambda e: to_latex(e, cell_name, hadamard)  # noqa: E731
    if target.expr is None:
        return "it differs from the left side"
    if target.kind == "summed" and not expr.has(ir.SumOverTime):
        step = _safe_values(d.step_gradient(target.name), cell_name, target)
        if step is not None and agree(got, step):
            return r"missing \sum_{t=1}^T: this is the gradient of one step only"
        return r"missing \sum_{t=1}^T (and the step formula differs too)"
    quantity = cell.quantities.get(target.name)
    if target.kind == "gradient" and quantity is not None and quantity.is_parameter and expr.has(ir.SumOverTime):
        return r"a \sum over t, where the step gradient is meant (no \sum on the right)"
    wrong_shape = _shape_note(expr, target, cell_name)
    if wrong_shape:
        repair = (side is not None and _transpose_repair(side, target, cell_name, truth)) or \
            _substitution(expr, target.expr, cell_name, target, tex) or _order_repair(expr, truth, cell_name, target)
        return repair or wrong_shape
    if _opposite(got, truth):
        return "has the opposite sign"
    repair = side is not None and _transpose_repair(side, target, cell_name, truth)
    if repair:
        return repair
    if not target.terms:
        return (_substitution(expr, target.expr, cell_name, target, tex)
                or _order_repair(expr, truth, cell_name, target) or "")
    written = _terms(expr)
    w_vals = [_safe_values(w, cell_name, target) for w in written]
    e_vals = [_safe_values(e, cell_name, target) for e, _, _ in target.terms]
    unmatched_e = list(range(len(target.terms)))
    unmatched_w = []
    for i, wv in enumerate(w_vals):
        hit = next((j for j in unmatched_e if wv is not None and e_vals[j] is not None and agree(wv, e_vals[j])), None)
        if hit is None:
            unmatched_w.append(i)
        else:
            unmatched_e.remove(hit)
    notes = []
    for i in unmatched_w:
        w = written[i]
        j = _partner(w, unmatched_e, target, cell_name)
        label = "term %d" % (i + 1)
        if j is not None and target.terms[j][1]:
            label += " (%s)" % target.terms[j][1]
        if len(written) == 1 and len(target.terms) == 1:
            label = "it"
        why = _explain(w, w_vals[i], j, target, cell_name, tex)
        if why is None and j is not None:
            why = (_substitution(w, target.terms[j][0], cell_name, target, tex)
                   or "differs from the expected %s" % tex(target.terms[j][0]))
        if why is None:
            why = "is not part of the gradient"
        if j is not None:
            unmatched_e.remove(j)
        notes.append("%s %s" % (label, why))
    for j in unmatched_e:
        expr_j, family, _ = target.terms[j]
        notes.append("the %s term %s is missing" % (family or "", tex(expr_j)) if family
                     else "the term %s is missing" % tex(expr_j))
    return "; ".join(notes)


def _partner(w, candidates, target, cell_name):
    """The expected term a written term was meant to be: same weight matrix, else most symbols."""
    if not candidates:
        return None
    params = {s for s in w.free_symbols if symbols.read(s) is None}
    for j in candidates:
        term = target.terms[j][2]
        if term is not None and term.operand is not None and term.operand in params and term.form == "transposed":
            return j
    if len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda j: len(target.terms[j][0].free_symbols & w.free_symbols))


def _explain(w, w_val, j, target, cell_name, tex):
    d = derive(cell_name)
    cell = d.cell
    if j is None:
        return None
    e_expr, family, term = target.terms[j]
    e_val = _safe_values(e_expr, cell_name, target)
    if w_val is not None and e_val is not None and _opposite(w_val, e_val):
        return "has the opposite sign"
    # 1. the chain-rule form goes through the wrong state
    if isinstance(w, Chain) and term is not None:
        path = [symbols.read(p.args[1]).name for p in w.args[:-1]
                if isinstance(p.args[1], sympy.Symbol) and symbols.read(p.args[1])]
        wanted = list(term.chain)
        if path != wanted and len(path) == len(wanted):
            def show(names):
                vectors = [LOSS] + [symbols.vector(n) for n in names]
                return r" \cdot ".join(derivative(a, b, cell) for a, b in zip(vectors[:-1], vectors[1:], strict=True))
            return "uses %s where %s is needed" % (show(path), show(wanted))
    # 2. a total gradient of the wrong state
    adjoints = [s for s in w.free_symbols if ref_of(s) is not None and ref_of(s).role == "adjoint"]
    for a in adjoints:
        ra = symbols.read(a)
        for other in cell.states:
            if other == ra.name:
                continue
            b = symbols.vector(other, ra.time, "adjoint")
            swapped = _safe_values(w.xreplace({a: b}), cell_name, target)
            if swapped is not None and e_val is not None and agree(swapped, e_val):
                return "uses %s where %s is needed" % (tex(a), tex(b))
    # 3. the bracket of another family's term
    if term is not None and isinstance(w, ir.MatMul):
        inner = _safe_values(w.args[1], cell_name, target)
        for _, family2, term2 in target.terms:
            if term2 is None or term2 is term:
                continue
            other_delta = _safe_values(env.at_time(term2.delta, target.time if target.kind != "summed" else "t"),
                                       cell_name, target)
            if inner is not None and other_delta is not None and agree(inner, other_delta):
                return "repeats the bracket of the %s term, %s, where %s is needed" % (
                    family2, tex(term2.delta), tex(term.delta))
    # 4. a factor left out
    if w_val is not None and not e_expr.has(*MATRIX_NODES) and isinstance(e_expr, sympy.Mul):
        for factor in e_expr.args:
            rest = _safe_values(sympy.Mul(*[a for a in e_expr.args if a is not factor]), cell_name, target)
            if rest is not None and agree(rest, w_val):
                return "misses the factor %s" % tex(factor)
    # 5. a derivative of sigma or tanh written wrongly
    if term is not None and w_val is not None:
        for wrong, name, variant, factor in _slipped_terms(term, target):
            wrong_val = _safe_values(wrong, cell_name, target)
            if wrong_val is not None and agree(wrong_val, w_val):
                return "writes %s' as %s instead of %s" % (name, tex(variant), tex(factor))
    return None


def _slipped_terms(term, target):
    """`term` with one σ' or tanh' factor replaced by a common slip, placed like the target:
    (wrong expression, function name, the slip, the right factor)."""
    for k, factor in enumerate(term.factors):
        for variant, name in _derivative_slips(factor):
            factors = list(term.factors)
            factors[k] = variant
            wrong = dataclasses.replace(term, factors=tuple(factors)).expr()
            if target.kind == "summed":
                wrong = ir.SumOverTime(wrong)
            elif target.time not in ("t", ""):
                wrong = env.at_time(wrong, target.time)
            yield wrong, name, variant, factor


# The slips people make writing the derivative of a function in terms of its output q:
# (function, its LaTeX name, the wrong factors written instead of the right one).
_SLIPS = ((sigmoid, r"\sigma", lambda q: (q, 1 - q)), (sympy.tanh, r"\tanh", lambda q: (1 - q, q, q ** 2)))


@functools.lru_cache(maxsize=512)  # factors come from the derivation's terms: few, and met in every diagnosis
def _derivative_slips(factor) -> tuple:
    """Common wrong versions of a σ' or tanh' factor: f instead of f(1-f), 1-g instead of 1-g^2;
    pairs (wrong factor, name of the function whose derivative it should be).  The right factor
    is SymPy's derivative written with the output (`rules.local_derivative`), as in the derivation."""
    syms = [s for s in factor.free_symbols if symbols.read(s)]
    if len(syms) != 1 or factor.has(*MATRIX_NODES):
        return ()
    q = syms[0]
    z = sympy.Dummy("z", real=True)
    for function, name, slips in _SLIPS:
        if sympy.expand(factor - local_derivative(function(z), z, q)) == 0:
            return tuple((variant, name) for variant in slips(q))
    return ()


def _opposite(a, b) -> bool:
    return bool(a) and bool(b) and agree(a, [-x for x in b]) and not agree(a, b)


def _order_repair(expr, truth, cell_name, target):
    """'a matrix product in the wrong order' when swapping the factors of one product repairs it."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, ir.MatMul):
            swapped = expr.xreplace({node: ir.MatMul(node.args[1], node.args[0])})
            got = _safe_values(swapped, cell_name, target)
            if got is not None and agree(got, truth):
                return "the factors of a matrix product are in the wrong order (the vector with ^T goes last)"
    return None


def _transpose_repair(side, target, cell_name, truth, problem=""):
    """'missing transpose on x_t' when toggling one symbol's transpose repairs the side."""
    vocab = vocabulary(cell_name)
    for position, written in side.names:
        if position is None:
            continue
        trial = type(side)(side.text, tree=side.tree)
        try:
            build_side(trial, vocab, flip=frozenset({position}))
            got = _values(lower(trial.expr), cell_name, target)
        except Exception:  # noqa: BLE001 - a failed repair attempt only means "not this fix"
            continue
        if agree(got, truth):
            had = written.endswith(("^T", "^{T}", "^\\top", "^{\\top}"))
            shown = written.rsplit("^", 1)[0] if had else written
            return "%s transpose on %s%s" % ("extra" if had else "missing", shown, " (%s)" % problem if problem else "")
    return None


def _shape_note(expr, target, cell_name):
    """'has shape 1×D where H×D is needed' when the whole side has the wrong shape."""
    if target.expr is None:
        return None
    try:
        got, want = shape(expr, cell_name), shape(target.expr, cell_name)
    except Exception:  # noqa: BLE001
        return None
    if got != want and () not in (got, want) and "?" not in got + want and "Z" not in got + want:
        return "has shape %s where %s is needed" % (show_shape(got), show_shape(want))
    return None


def _alternatives(sym, cell_name):
    """Symbols a writer may have confused with `sym`: other times, other states, other weights."""
    cell = derive(cell_name).cell
    ref = symbols.read(sym)
    out = []
    if ref is None:
        if sym.name not in cell.quantities:
            return out
        kind = cell.quantities[sym.name].kind
        for q in cell.quantities.values():
            if q.is_parameter and q.name != sym.name and q.kind == kind:
                out.append(symbols.parameter(q.name))
        return out
    offset = symbols.time_offset(ref.time)
    if offset is not None:
        for other in (offset - 1, offset + 1):
            if -1 <= other <= 1:
                out.append(symbols.vector(ref.name, symbols.time_label(other), ref.role))
    names = list(cell.states) if ref.role == "adjoint" else [
        q.name for q in cell.quantities.values() if not q.is_parameter and q.name != cell.input]
    for name in names:
        if name != ref.name and ref.name != cell.input:
            out.append(symbols.vector(name, ref.time, ref.role))
    return out


def _substitution(w, e_expr, cell_name, target, tex):
    """'uses h_t where h_{t-1} is needed' when replacing one symbol repairs the written term."""
    if w.has(Chain):  # a chain-rule product: its path is explained by _explain, not by renaming
        return None
    e_val = _safe_values(e_expr, cell_name, target)
    if e_val is None:
        return None
    tried = 0
    for sym in sorted(w.free_symbols, key=lambda s: s.name):
        if isinstance(sym, FreeSymbol):
            continue
        for alt in _alternatives(sym, cell_name):
            tried += 1
            if tried > 80:
                return None
            fixed = _safe_values(w.xreplace({sym: alt}), cell_name, target)
            if fixed is not None and agree(fixed, e_val):
                return "uses %s where %s is needed" % (tex(sym), tex(alt))
    return None
