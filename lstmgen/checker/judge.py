"""Verdicts: one per equation, from the meaning of its left side (`targets`), the numeric values
of every side at the witness points (`evaluation`), SymPy's word where it can give one
(`symbolic`) and a diagnosis of every link that differs (`diagnose`).

The truth comes from `lstmgen.reverse` (step gradients, state totals, summed gradients, local
derivatives) and the cell's own equations; the checker adds no derivative knowledge.  A link is
decided numerically at the witness points of `environment.POINTS` (several random draws with
D != H); when the numbers agree, `symbolic.equal` is asked too, and the verdict says whether SymPy
could show the equality (it never overrules the numbers).  Where the author's notation allows two
readings (a `*` that may be a matrix product, a dΓ_o that may mean the pre-activation's gradient)
and one makes the equation right, it is judged under that reading, with a warning that says so.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .. import cells, ir, symbols
from ..evaluate import EvaluationError, ShapeError
from . import bounds, evidence, symbolic
from .bounds import OutOfTime
from .diagnose import diagnose, shape_error
from .environment import LAST_POINTS
from .evaluation import BrokenChain, agree, lower, truth as truth_values, values
from .expected import to_latex
from .notation import Notation
from .notes import Note
from .nodes import Chain, Unsupported
from .parse import parse_equation, spelling
from .targets import (Target, definition_readings, preactivation_gradient, read_like_left, target_of,
                      terms as _terms)


@dataclass
class Verdict:
    status: str                 # correct | incorrect | unrecognized
    lhs: str
    expected: str = ""
    message: str = ""
    warnings: list = field(default_factory=list)
    claim: bool = False         # its left side is a gradient or a defined name: a derivative claim
    forward: bool = False       # it states one of the cell's forward equations (a premise, not scored)
    notes: list = field(default_factory=list)  # notes.Note per diagnosed mistake of an incorrect verdict


CLAIMS = ("gradient", "summed", "state", "local", "upstream")


# ----------------------------------------------------------------------------- judging
SECONDS_PER_EQUATION = bounds.SECONDS_PER_EQUATION


def judge(text: str, notation: Notation | str = "lstm", definition: str = "",
          seconds: float | None = None) -> Verdict | None:
    """The verdict on one equation's text; None when the text has no '=' (not an equation).

    Documents are untrusted: whatever goes wrong while reading one equation makes that
    equation 'unrecognized' with a one-line reason, never an exception.  Judging stops after
    `seconds` (default `bounds.seconds_per_equation()`), on any thread (the cooperative budget
    of `bounds`; a document's check also kills its worker past the limit)."""
    if isinstance(notation, str):  # a cell's name or file: its own notation
        notation = Notation.for_cell(cells.load(notation), "option")
    seconds = bounds.seconds_per_equation() if seconds is None else seconds
    lhs_text = " ".join(text.split("=")[0].split())[:200]  # before parsing: messages need a left side
    try:
        with bounds.limit(seconds, "equation") as mine:
            return _judge(text, notation, lhs_text, definition)
    except OutOfTime as exc:
        if exc.limit is not mine:
            raise  # the document's deadline: its check reports the rest
        return Verdict("unrecognized", lhs_text, message="gave up after %g s on this equation" % seconds)
    except RecursionError:
        return Verdict("unrecognized", lhs_text, message="the equation is nested too deeply")
    except MemoryError:
        return Verdict("unrecognized", lhs_text, message="gave up on this equation: it needs too much memory")
    except Exception as exc:  # noqa: BLE001 - untrusted input must never end in a traceback
        return Verdict("unrecognized", lhs_text,
                       message="could not judge this equation (%s: %s)" % (type(exc).__name__, str(exc)[:120]))


def _judge(text: str, notation: Notation, lhs_text: str, definition: str) -> Verdict | None:
    try:
        sides = parse_equation(text, notation)
    except Unsupported as exc:
        return Verdict("unrecognized", lhs_text, message=str(exc))
    if len(sides) < 2:
        return None
    lhs_text = sides[0].text
    warnings = []
    for side in sides:
        warnings.extend(w for w in side.warnings if w not in warnings)
    if all(_repeats_left(side, sides) for side in sides[1:]):
        return Verdict("unrecognized", lhs_text, message="a tautology: the right side is the left side written again, "
                       "so the equation states nothing to check", warnings=warnings)
    if definition:
        return dataclasses.replace(_judge_definition(sides, definition, notation, lhs_text, warnings), claim=True)
    free = set().union(*(side.free for side in sides))
    try:
        target = target_of(sides[0].expr, sides, notation)
        if any(side.last_step for side in sides):
            target = _at_last_step(target)
        if free and target.kind != "identity":
            raise Unsupported(_unknown(notation, sorted(free)))
        if target.kind == "identity" and not free <= {target.name}:
            raise Unsupported(_unknown(notation, sorted(free - {target.name})))
    except Unsupported as exc:
        return Verdict("unrecognized", lhs_text, message=str(exc), warnings=warnings)
    sides = read_like_left(sides, target, notation)
    verdict = _judge_links(sides, target, notation, lhs_text, warnings)
    if verdict.status == "incorrect":
        verdict = _other_reading(text, sides, target, notation, lhs_text, warnings) or verdict
    return dataclasses.replace(verdict, claim=target.kind in CLAIMS, forward=target.kind == "forward")


def _repeats_left(side, sides) -> bool:
    """The side is the left side written again: read alike and spelled alike (spacing, sizing and
    brackets aside; dh_t for ∂L/∂h_t is a change of notation, not a repetition)."""
    left = sides[0]
    return side.expr == left.expr and side.tree is not None and left.tree is not None \
        and spelling(side.tree) == spelling(left.tree)


def _at_last_step(target: Target) -> Target:
    """The target of an equation written at the last step T: judged where t = T, without the
    terms from step T+1 (there is none)."""
    def vanishes(expr):
        return any((symbols.read(s) and symbols.read(s).time == "t+1") for s in expr.free_symbols)
    kept = [term for term in target.terms if not vanishes(term[0])]
    expr = target.expr
    if expr is not None and kept != target.terms and kept:
        expr = ir.total(term[0] for term in kept)
    return dataclasses.replace(target, expr=expr, terms=kept, points=LAST_POINTS)


def _unknown(notation: Notation, names: list) -> str:
    from .reader import unknown_symbol
    return unknown_symbol(notation, ", ".join(names), names[0])


def _other_reading(text, sides, target, notation, lhs_text, warnings) -> Verdict | None:
    """The verdict under another reasonable reading of the author's notation, when it makes the
    equation right: dΓ_o as the gradient of Γ_o's pre-activation; `*` as a matrix product."""
    for differential in sides[0].differentials:
        ref = symbols.read(differential) if hasattr(differential, "name") else None
        if ref is None or ref.name not in notation.cell.quantities or ref.name == notation.cell.input:
            continue
        pre = preactivation_gradient(notation.cell, ref.name) if ref.name not in notation.cell.states else None
        if pre is None:
            continue
        from .environment import at_time
        expr = at_time(pre, ref.time)
        alternative = Target(expr, "state", ref.name, ref.time, terms=[(a, "", None) for a in _terms(expr)])
        note = ("warning: d%s read as the gradient with respect to the pre-activation of %s (as some authors "
                "use it); read as the gradient of %s itself it would be wrong"
                % (notation.written(ref.name), notation.written(ref.name), notation.written(ref.name)))
        kept = [w for w in warnings if "itself" not in w]
        verdict = _judge_links(sides, alternative, notation, lhs_text, kept + [note])
        if verdict.status == "correct":
            return verdict
    if "*" in text and notation.star == "elementwise":
        other = dataclasses.replace(notation, star="matrix")
        try:
            resides = parse_equation(text, other)
            retarget = target_of(resides[0].expr, resides, other)
        except Unsupported:
            return None
        if [side.expr for side in resides] == [side.expr for side in sides]:
            return None  # every * joins equal shapes: both readings are one
        resides = read_like_left(resides, retarget, other)
        note = "warning: * read as a matrix product here (read as elementwise the equation would be wrong)"
        verdict = _judge_links(resides, retarget, other, lhs_text, warnings + [note])
        if verdict.status == "correct":
            return verdict
    return None


def _judge_definition(sides, key, notation, lhs_text, warnings) -> Verdict:
    """A name the document defines (δ_o^{(t)} = ...): its right side is a claim about a gradient;
    judged under the reading it fits (the pre-activation's gradient first, for a δ)."""
    readings = definition_readings(key, notation, prefer_preactivation=not key.startswith("d"))
    if not readings:
        return Verdict("unrecognized", lhs_text, message="cannot tell which gradient %s names" % key, warnings=warnings)
    if len(sides) == 2 and key in notation.definitions:  # as read when it was defined (ε_C^{(t+1)} not unrolled)
        sides = [sides[0], dataclasses.replace(sides[1], expr=notation.definitions[key])]
    try:
        got = values(lower(sides[1].expr), notation)
    except (EvaluationError, ArithmeticError, ValueError, TypeError) as exc:
        return Verdict("unrecognized", lhs_text, message="cannot evaluate the definition (%s)" % exc,
                       warnings=warnings)
    chosen = readings[0]
    for description, expr in readings:
        try:
            if agree(got, truth_values(expr, notation)):
                chosen = (description, expr)
                break
        except (EvaluationError, ArithmeticError, ValueError, TypeError):
            continue
    description, expr = chosen
    if len(readings) > 1:
        warnings = warnings + ["%s read as %s" % (key, description)]
    target = Target(expr, "state", key, "t", terms=[(a, "", None) for a in _terms(expr)])
    definition_sides = [sides[0].__class__(sides[0].text, expr=expr)] + list(sides[1:])
    return _judge_links(definition_sides, target, notation, lhs_text, warnings)


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


def _judge_links(sides, target, notation, lhs_text, warnings) -> Verdict:
    shown = _writer_order(target, lower(sides[-1].expr)) if target.expr is not None else None
    expected_latex = to_latex(shown, notation, target.points == LAST_POINTS) if shown is not None else ""
    identity = target.name if target.kind == "identity" else ""
    try:  # the truth: the derivation's value, or for a plain equation its own left side
        truth = (truth_values(target.expr, notation, identity, target.points) if target.expr is not None
                 else values(lower(sides[0].expr), notation, identity, target.points))
    except (EvaluationError, ArithmeticError, ValueError, TypeError) as exc:
        return Verdict("unrecognized", lhs_text, expected_latex,
                       "cannot evaluate the left side (%s)" % exc, warnings)
    if not all(np.all(np.isfinite(np.asarray(value, dtype=float))) for value in truth):
        # e.g. a cell's log of a negative witness value: no side could be shown right or wrong
        return Verdict("unrecognized", lhs_text, expected_latex,
                       "the left side is not finite at the random witness points (NaN or overflow)", warnings)
    problems, by_sympy = [], 0
    unreadable, weak, seen = [], [], []
    show = lambda e: to_latex(e, notation, target.points == LAST_POINTS)  # noqa: E731
    left = lower(sides[0].expr) if target.expr is None else None
    for index in range(1, len(sides)):
        bounds.check()
        side = sides[index]
        expr = lower(side.expr)
        try:
            got = values(expr, notation, identity, target.points)
        except BrokenChain as exc:
            problems.append((index, [Note("broken-chain", str(exc))]))
            continue
        except ShapeError as exc:
            problems.append((index, [shape_error(side, expr, target, notation, truth, str(exc))]))
            continue
        except (EvaluationError, ArithmeticError, ValueError, TypeError) as exc:
            unreadable.append("side %d: %s" % (index + 1, exc))
            continue
        if agree(got, truth):
            if target.expr is not None and notation.layout == "column" and symbolic.equal(expr, target.expr, notation.cell):
                by_sympy += 1
                continue
            worth, why = evidence.weigh(expr, notation, target, show, left)  # numbers alone: what did they see?
            if worth == "incorrect":
                problems.append((index, [Note("unknown", why)]))
            {"weak": weak, "seen": seen}.get(worth, []).append((index, why))
            continue
        problems.append((index, diagnose(expr, target, notation, got, truth, side)))
    links = len(sides) - 1
    note = "; ".join(warnings)
    if problems:
        parts, notes = [], []
        for index, found in problems:
            label = _link_label(index, links, sides[index].expr)
            if found:
                parts.append("%s: %s" % (label, "; ".join(n.text for n in found)))
            else:
                parts.append("%s differs from the expected formula" % label)
                found = [Note("unknown", "differs from the expected formula")]
            notes.extend(dataclasses.replace(n, link=index) for n in found)
        message = "; ".join(parts)
        if note:
            message += " (" + note + ")"
        return Verdict("incorrect", lhs_text, expected_latex, message, warnings, notes=notes)
    if unreadable:
        return Verdict("unrecognized", lhs_text, expected_latex, "cannot evaluate " + "; ".join(unreadable), warnings)
    if weak:  # agreement the witness points could not help: never a 'correct'
        message = "; ".join("%s: %s" % (_link_label(index, links, sides[index].expr), why) for index, why in weak)
        return Verdict("unrecognized", lhs_text, expected_latex, message + (" (" + note + ")" if note else ""), warnings)
    how = "SymPy and numerically" if by_sympy == links else "numerically only: SymPy could not show it"
    message = "%s checked (%s, at %d random points%s)" % (
        "all %d links" % links if links > 1 else "the right side", how, len(truth),
        "".join(" " + why for _, why in seen[:1]))
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
