"""Diagnoses: one line saying what is wrong with a side whose value differs from the truth.

Each diagnosis is a repair that makes the written formula right: the opposite sign, a missing
transpose, one symbol confused with another (h_t for h_{t-1}, ∂L/∂h for ∂L/∂c), a factor left
out, a σ' or tanh' written wrongly, a term missing or extra, the other layout's formula.  A
repair is tried numerically at the witness points, so only an actual fix is reported.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sympy

from .. import ir, symbols
from ..functions import sigmoid
from ..reverse import derive
from ..rules import local_derivative
from . import environment as env
from .environment import LAST_POINTS
from .evaluation import MATRIX_NODES, agree, lower, opposite, safe, truth as truth_values, values
from .notation import Notation
from .nodes import LOSS, Chain, FreeSymbol, ref_of, shape, show_shape
from .parse import build_side
from .expected import to_latex, truth_shape
from .targets import Target, terms as _terms


def _doc(expr, notation: Notation, target: Target):
    """The values of a written expression, or None when it cannot be evaluated."""
    return safe(values, expr, notation, target.name if target.kind == "identity" else "", target.points)


def _true(expr, notation: Notation, target: Target):
    """The values of one of the derivation's expressions, or None."""
    return safe(truth_values, expr, notation, target.name if target.kind == "identity" else "", target.points)


def diagnose(expr, target, notation, got, truth, side=None) -> str:
    """One line saying what is wrong with a side whose value differs from the truth."""
    cell = notation.cell
    d = derive(cell)
    tex = lambda e: to_latex(e, notation, target.points == LAST_POINTS)  # noqa: E731
    if target.expr is None:
        return "it differs from the left side"
    if target.kind == "summed" and not expr.has(ir.SumOverTime):
        step = _true(d.step_gradient(target.name), notation, target)
        if step is not None and agree(got, step):
            return r"missing \sum_{t=1}^T: this is the gradient of one step only"
        return r"missing \sum_{t=1}^T (and the step formula differs too)"
    quantity = cell.quantities.get(target.name)
    if target.kind == "gradient" and quantity is not None and quantity.is_parameter and expr.has(ir.SumOverTime):
        return r"a \sum over t, where the step gradient is meant (no \sum on the right)"
    wrong_shape = _shape_note(expr, target, notation)
    if wrong_shape:
        repair = _layout_repair(got, truth, notation) or \
            (side is not None and _transpose_repair(side, target, notation, truth)) or \
            _substitution(expr, target.expr, notation, target, tex) or _order_repair(expr, truth, notation, target)
        return repair or wrong_shape
    if opposite(got, truth):
        return "has the opposite sign"
    repair = side is not None and _transpose_repair(side, target, notation, truth)
    if repair:
        return repair
    if not target.terms:
        return (_substitution(expr, target.expr, notation, target, tex)
                or _order_repair(expr, truth, notation, target) or "")
    written = _terms(expr)
    w_vals = [_doc(w, notation, target) for w in written]
    e_vals = [_true(e, notation, target) for e, _, _ in target.terms]
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
        j = _partner(w, unmatched_e, target)
        label = "term %d" % (i + 1)
        if j is not None and target.terms[j][1]:
            label += " (%s)" % target.terms[j][1]
        if len(written) == 1 and len(target.terms) == 1:
            label = "it"
        why = _explain(w, w_vals[i], j, target, notation, tex)
        if why is None and j is not None:
            why = (_substitution(w, target.terms[j][0], notation, target, tex)
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


def _partner(w, candidates, target):
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


def _explain(w, w_val, j, target, notation, tex):
    cell = notation.cell
    if j is None:
        return None
    e_expr, family, term = target.terms[j]
    e_val = _true(e_expr, notation, target)
    if w_val is not None and e_val is not None and opposite(w_val, e_val):
        return "has the opposite sign"
    # 1. the chain-rule form goes through the wrong state
    if isinstance(w, Chain) and term is not None:
        path = [symbols.read(p.args[1]).name for p in w.args[:-1]
                if isinstance(p.args[1], sympy.Symbol) and symbols.read(p.args[1])]
        wanted = list(term.chain)
        if path != wanted and len(path) == len(wanted):
            def show(names):
                vectors = [LOSS] + [symbols.vector(n) for n in names]
                return r" \cdot ".join(tex(sympy.Derivative(a, b, evaluate=False)) for a, b in zip(vectors[:-1], vectors[1:], strict=True))
            return "uses %s where %s is needed" % (show(path), show(wanted))
    # 2. a total gradient of the wrong state
    adjoints = [s for s in w.free_symbols if ref_of(s) is not None and ref_of(s).role == "adjoint"]
    for a in adjoints:
        ra = symbols.read(a)
        for other in cell.states:
            if other == ra.name:
                continue
            b = symbols.vector(other, ra.time, "adjoint")
            swapped = _doc(w.xreplace({a: b}), notation, target)
            if swapped is not None and e_val is not None and agree(swapped, e_val):
                return "uses %s where %s is needed" % (tex(a), tex(b))
    # 3. the bracket of another family's term
    if term is not None and isinstance(w, ir.MatMul):
        inner = _doc(w.args[1], notation, target)
        for _, family2, term2 in target.terms:
            if term2 is None or term2 is term:
                continue
            other_delta = _true(env.at_time(term2.delta, target.time if target.kind != "summed" else "t"),
                                notation, target)
            if inner is not None and other_delta is not None and agree(inner, other_delta):
                return "repeats the bracket of the %s term, %s, where %s is needed" % (
                    family2, tex(term2.delta), tex(term.delta))
    # 4. a factor left out
    if w_val is not None and not e_expr.has(*MATRIX_NODES) and isinstance(e_expr, sympy.Mul):
        for factor in e_expr.args:
            rest = _true(sympy.Mul(*[a for a in e_expr.args if a is not factor]), notation, target)
            if rest is not None and agree(rest, w_val):
                return "misses the factor %s" % tex(factor)
    # 5. a derivative of sigma or tanh written wrongly
    if term is not None and w_val is not None:
        for wrong, name, variant, factor in _slipped_terms(term, target):
            wrong_val = _true(wrong, notation, target)
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


def _order_repair(expr, truth, notation, target):
    """'a matrix product in the wrong order' when swapping the factors of one product repairs it."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, ir.MatMul):
            swapped = expr.xreplace({node: ir.MatMul(node.args[1], node.args[0])})
            got = _doc(swapped, notation, target)
            if got is not None and agree(got, truth):
                return "the factors of a matrix product are in the wrong order (the vector with ^T goes last)"
    return None


def _transpose_repair(side, target, notation, truth, problem=""):
    """'missing transpose on x_t' when toggling one symbol's transpose repairs the side."""
    for position, written in side.names:
        if position is None:
            continue
        trial = type(side)(side.text, tree=side.tree)
        try:
            build_side(trial, notation, flip=frozenset({position}))
            got = _doc(lower(trial.expr), notation, target)
        except Exception:  # noqa: BLE001 - a failed repair attempt only means "not this fix"
            continue
        if agree(got, truth):
            had = written.endswith(("^T", "^{T}", "^\\top", "^{\\top}"))
            shown = written.rsplit("^", 1)[0] if had else written
            return "%s transpose on %s%s" % ("extra" if had else "missing", shown, " (%s)" % problem if problem else "")
    return None


def _shape_note(expr, target, notation):
    """'has shape 1×D where H×D is needed' when the whole side has the wrong shape."""
    if target.expr is None:
        return None
    try:
        got, want = shape(expr, notation), truth_shape(target.expr, notation)
    except Exception:  # noqa: BLE001
        return None
    if got != want and () not in (got, want) and "?" not in got + want and "Z" not in got + want:
        return "has shape %s where %s is needed" % (show_shape(got), show_shape(want))
    return None


def _alternatives(sym, cell):
    """Symbols a writer may have confused with `sym`: other times, other states, other weights."""
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


def _substitution(w, e_expr, notation, target, tex):
    """'uses h_t where h_{t-1} is needed' when replacing one symbol repairs the written term."""
    if w.has(Chain):  # a chain-rule product: its path is explained by _explain, not by renaming
        return None
    e_val = _true(e_expr, notation, target)
    if e_val is None:
        return None
    tried = 0
    for sym in sorted(w.free_symbols, key=lambda s: s.name):
        if isinstance(sym, FreeSymbol):
            continue
        for alt in _alternatives(sym, notation.cell):
            tried += 1
            if tried > 80:
                return None
            fixed = _doc(w.xreplace({sym: alt}), notation, target)
            if fixed is not None and agree(fixed, e_val):
                return "uses %s where %s is needed" % (tex(sym), tex(alt))
    return None


def _layout_repair(got, truth, notation):
    """'the other layout's formula' when the written value is the transpose of the truth: δ x^T
    written in a row-layout document (x^T δ is meant), or the reverse."""
    if got is None or not truth or any(np.shape(value) == () for value in truth):
        return None
    if agree(got, [np.transpose(value) for value in truth]) and not agree(got, truth):
        other = "column" if notation.layout == "row" else "row"
        return ("this is the %s-layout formula, the transpose of the gradient; the document's forward equations "
                "use the %s layout (%s)" % (other, notation.layout, "x W" if notation.layout == "row" else "W x"))
    return None
