"""Diagnoses: what is wrong with a side whose value differs from the truth, as answer notes
(`notes.Note`: a stable code and one phrase each).

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
from .notes import Note
from .nodes import LOSS, Chain, FreeSymbol, IllShaped, ref_of, shape, show_shape
from .parse import build_side
from .expected import to_latex, truth_shape
from .targets import Target, terms as _terms


def _doc(expr, notation: Notation, target: Target):
    """The values of a written expression, or None when it cannot be evaluated."""
    return safe(values, expr, notation, target.name if target.kind == "identity" else "", target.points)


def _true(expr, notation: Notation, target: Target):
    """The values of one of the derivation's expressions, or None."""
    return safe(truth_values, expr, notation, target.name if target.kind == "identity" else "", target.points)


def _tex(notation: Notation, target: Target):
    """An expression of the derivation as LaTeX in the document's notation."""
    return lambda e: to_latex(e, notation, target.points == LAST_POINTS)


def diagnose(expr, target, notation, got, truth, side=None) -> list[Note]:
    """What is wrong with a side whose value differs from the truth: its notes, in the order of the
    terms (none when nothing explains it)."""
    cell = notation.cell
    d = derive(cell)
    tex = _tex(notation, target)
    if target.expr is None:
        return [Note("unknown", "it differs from the left side")]
    if target.kind == "summed" and not expr.has(ir.SumOverTime):
        step = _true(d.step_gradient(target.name), notation, target)
        if step is not None and agree(got, step):
            return [Note("missing-sum", r"missing \sum_{t=1}^T: this is the gradient of one step only")]
        return [Note("missing-sum", r"missing \sum_{t=1}^T (and the step formula differs too)")]
    quantity = cell.quantities.get(target.name)
    if target.kind == "gradient" and quantity is not None and quantity.is_parameter and expr.has(ir.SumOverTime):
        return [Note("extra-sum", r"a \sum over t, where the step gradient is meant (no \sum on the right)")]
    wrong_shape = _shape_note(expr, target, notation)
    if wrong_shape:
        repair = _layout_repair(got, truth, notation) or \
            (side is not None and _transpose_repair(side, target, notation, truth)) or \
            _substitution(expr, target.expr, notation, target, tex) or _order_repair(expr, truth, notation, target)
        return [repair or wrong_shape]
    if opposite(got, truth):
        return [Note("sign", "has the opposite sign")]
    repair = (side is not None and _transpose_repair(side, target, notation, truth)) or \
        _layout_repair(got, truth, notation)  # a square gradient transposed keeps its shape
    if repair:
        return [repair]
    if not target.terms:
        found = _substitution(expr, target.expr, notation, target, tex) or _order_repair(expr, truth, notation, target)
        return [found] if found else []
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
                   or Note("unknown", "differs from the expected %s" % tex(target.terms[j][0])))
        if why is None:
            why = Note("extra-term", "is not part of the gradient")
        if j is not None:
            unmatched_e.remove(j)
        notes.append(dataclasses.replace(why, text="%s %s" % (label, why.text)))
    for j in unmatched_e:
        expr_j, family, _ = target.terms[j]
        notes.append(Note("dropped-term", "the %s term %s is missing" % (family, tex(expr_j)) if family
                          else "the term %s is missing" % tex(expr_j)))
    return notes


def shape_error(side, expr, target, notation, truth, problem: str) -> Note:
    """The note on a side whose shapes do not fit (`problem` says where): the transpose, the order
    of a product or the symbol whose repair makes it right, else the problem itself."""
    found = _transpose_repair(side, target, notation, truth, problem) or _order_repair(expr, truth, notation, target)
    if found is None and target.expr is not None:
        found = _substitution(expr, target.expr, notation, target, _tex(notation, target))
    return found or Note("wrong-shape", "the shapes do not fit: %s" % problem)


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
        return Note("sign", "has the opposite sign")
    # 1. the chain-rule form goes through the wrong state
    if isinstance(w, Chain) and term is not None:
        path = [symbols.read(p.args[1]).name for p in w.args[:-1]
                if isinstance(p.args[1], sympy.Symbol) and symbols.read(p.args[1])]
        wanted = list(term.chain)
        if path != wanted and len(path) == len(wanted):
            def show(names):
                vectors = [LOSS] + [symbols.vector(n) for n in names]
                return r" \cdot ".join(tex(sympy.Derivative(a, b, evaluate=False)) for a, b in zip(vectors[:-1], vectors[1:], strict=True))
            return Note("wrong-upstream", "uses %s where %s is needed" % (show(path), show(wanted)))
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
                return Note("wrong-upstream", "uses %s where %s is needed" % (tex(a), tex(b)))
    # 3. the bracket of another family's term
    if term is not None and isinstance(w, ir.MatMul):
        inner = _doc(w.args[1], notation, target)
        for _, family2, term2 in target.terms:
            if term2 is None or term2 is term:
                continue
            other_delta = _true(env.at_time(term2.delta, target.time if target.kind != "summed" else "t"),
                                notation, target)
            if inner is not None and other_delta is not None and agree(inner, other_delta):
                return Note("wrong-gate", "repeats the bracket of the %s term, %s, where %s is needed" % (
                    family2, tex(term2.delta), tex(term.delta)))
    # 4. a derivative of sigma or tanh written wrongly
    if w_val is None:
        return None
    for wrong, piece, (variant, name, key) in _variants(e_expr, term, target, _derivative_slips):
        wrong_val = _true(wrong, notation, target)
        if wrong_val is not None and agree(wrong_val, w_val):
            return Note("wrong-%s-derivative" % key, "writes %s' as %s instead of %s" % (name, tex(variant), tex(piece)))
    # 5. a factor left out (inside a matrix product too: δ x^T without σ')
    for wrong, piece, _ in _variants(e_expr, term, target, lambda piece: ((sympy.Integer(1), None),)):
        wrong_val = _true(wrong, notation, target)
        if wrong_val is not None and agree(wrong_val, w_val):
            return _missing(piece, tex)
    # 6. a factor too many: one factor of a written product that, left out, makes the term right
    if e_val is not None:
        for node in sympy.preorder_traversal(w):
            if not isinstance(node, sympy.Mul):
                continue
            for k, arg in enumerate(node.args):
                if not arg.free_symbols:
                    continue
                squared = arg.is_Pow and arg.exp.is_Integer and arg.exp > 1  # c_{t-1}^2 where c_{t-1} is meant
                extra, rest = (arg.base, arg.base ** (arg.exp - 1)) if squared else (arg, sympy.Integer(1))
                fewer = sympy.Mul(*[rest if n == k else a for n, a in enumerate(node.args)])
                fixed = _doc(w.xreplace({node: fewer}), notation, target)
                if fixed is not None and agree(fixed, e_val):
                    return Note("extra-factor", "has the factor %s too many" % tex(extra))
    return None


def _missing(factor, tex) -> Note:
    """The note on a factor left out: a σ' or tanh' has a code of its own."""
    form = _derivative_form(factor)
    return Note("missing-%s-derivative" % form[0] if form else "missing-factor", "misses the factor %s" % tex(factor))


def _variants(e_expr, term, target, change):
    """The expected term with one piece changed: (wrong expression, the piece, what `change` said).
    A piece is one elementwise factor of the term's delta (of the term itself, when it has no
    derivation's Term and no matrix product), or one factor of such a factor that is a product
    (o_t and 1 - tanh²(c_t) of o_t (1 - tanh²(c_t))); `change(piece)` gives pairs (replacement,
    what to say).  A Term's variant is placed like the target (summed, or at its step)."""
    if term is not None:
        factors = term.factors
    elif isinstance(e_expr, sympy.Mul) and not e_expr.has(*MATRIX_NODES):
        factors = e_expr.args
    else:
        return
    for k, factor in enumerate(factors):
        inner = factor.args if isinstance(factor, sympy.Mul) else ()
        pieces = [(None, factor)] + [(i, a) for i, a in enumerate(inner) if a.free_symbols]
        for i, piece in pieces:
            for replacement, said in change(piece):
                changed = list(factors)
                changed[k] = replacement if i is None else sympy.Mul(*(replacement if n == i else a
                                                                       for n, a in enumerate(inner)))
                if term is None:
                    yield sympy.Mul(*changed), piece, said
                    continue
                wrong = dataclasses.replace(term, factors=tuple(changed)).expr()
                if target.kind == "summed":
                    wrong = ir.SumOverTime(wrong)
                elif target.time not in ("t", ""):
                    wrong = env.at_time(wrong, target.time)
                yield wrong, piece, said


# The slips people make writing the derivative of a function in terms of its output q:
# (function, its LaTeX name, its key in the notes' codes, the wrong factors written instead of the right one).
_SLIPS = ((sigmoid, r"\sigma", "sigma", lambda q: (q, 1 - q)),
          (sympy.tanh, r"\tanh", "tanh", lambda q: (1 - q, q, q ** 2)))


@functools.lru_cache(maxsize=512)  # factors come from the derivation's terms: few, and met in every diagnosis
def _derivative_form(factor):
    """(key, LaTeX name, output q) when `factor` is σ' or tanh' written with the function's output q
    (a gate's symbol, or tanh(c_t) itself), else None.  The right factor is SymPy's derivative
    written with the output (`rules.local_derivative`), as in the derivation."""
    if factor.has(*MATRIX_NODES):
        return None
    syms = [s for s in factor.free_symbols if symbols.read(s)]
    outputs = syms[:1] if len(syms) == 1 else []
    outputs += sorted(factor.atoms(sigmoid, sympy.tanh), key=sympy.default_sort_key)
    z = sympy.Dummy("z", real=True)
    for q in outputs:
        for function, name, key, _ in _SLIPS:
            if sympy.expand(factor - local_derivative(function(z), z, q)) == 0:
                return key, name, q
    return None


def _derivative_slips(factor) -> tuple:
    """Common wrong versions of a σ' or tanh' factor: f instead of f(1-f), 1-g instead of 1-g^2;
    pairs (wrong factor, (the wrong factor, the function's LaTeX name, its key))."""
    form = _derivative_form(factor)
    if form is None:
        return ()
    key, name, q = form
    slips = next(slips for _, _, k, slips in _SLIPS if k == key)
    return tuple((variant, (variant, name, key)) for variant in slips(q))


def _order_repair(expr, truth, notation, target):
    """'a matrix product in the wrong order' when swapping the factors of one product repairs it."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (ir.MatMul, IllShaped)):  # IllShaped: a product the reader found did not fit
            swapped = expr.xreplace({node: ir.MatMul(node.args[1], node.args[0])})
            got = _doc(swapped, notation, target)
            if got is not None and agree(got, truth):
                return Note("wrong-order", "the factors of a matrix product are in the wrong order "
                            "(the vector with ^T goes last)")
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
            return Note("extra-transpose" if had else "missing-transpose", "%s transpose on %s%s" % (
                "extra" if had else "missing", shown, " (%s)" % problem if problem else ""))
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
        return Note("wrong-shape", "has shape %s where %s is needed" % (show_shape(got), show_shape(want)))
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
                return Note(_swap_code(sym, alt), "uses %s where %s is needed" % (tex(sym), tex(alt)))
    return None


def _swap_code(written, meant) -> str:
    """The answer note of one symbol written for another (see `_alternatives`)."""
    ref, other = symbols.read(written), symbols.read(meant)
    if ref is None or other is None:
        return "wrong-weight"
    if ref.name == other.name:
        return "wrong-time-index"
    return "wrong-upstream" if ref.role == "adjoint" else "wrong-gate"


def _layout_repair(got, truth, notation):
    """'the other layout's formula' when the written value is the transpose of the truth: δ x^T
    written in a row-layout document (x^T δ is meant), or the reverse."""
    if got is None or not truth or any(np.shape(value) == () for value in truth):
        return None
    if agree(got, [np.transpose(value) for value in truth]) and not agree(got, truth):
        other = "column" if notation.layout == "row" else "row"
        return Note("wrong-layout", "this is the %s-layout formula, the transpose of the gradient; the document's "
                    "forward equations use the %s layout (%s)"
                    % (other, notation.layout, "x W" if notation.layout == "row" else "W x"))
    return None
