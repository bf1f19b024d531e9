"""What the left side of an equation denotes, and the derivation's expression for it.

`target_of` maps a parsed left side (∂L/∂W_x^f, ∂L/∂h_{t-1}, ∂c_t/∂f_t, a forward quantity, a
name the document defines) to a `Target`: the expected expression, taken from `lstmgen.reverse`
and the cell's own equations, with its terms labelled by the gate family they come through.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy

from .. import ir, symbols
from ..ir import to_row
from ..reverse import derive
from ..rules import local_derivative
from . import environment as env
from .evaluation import MATRIX_NODES, lower
from .notation import Notation, split_key
from .nodes import LOSS, STEP_LOSS, Blocks, Chain, FreeSymbol, Partial, Stack, Unsupported, ref_of

@dataclass
class Target:
    """What the left side denotes: the expected expression and how to describe it."""

    expr: object                      # expected SymPy expression (None: compare with the LHS itself)
    kind: str                         # gradient | summed | state | local | upstream | forward | identity | plain
    name: str = ""                    # quantity or parameter name
    time: str = "t"
    terms: list = field(default_factory=list)   # [(expr, family label, Term or None)]
    free: dict = field(default_factory=dict)
    points: tuple | None = None       # the witness points it is judged at (None: all; the last steps for h_T)


def _family(notation: Notation, via: str) -> str:
    q = notation.cell.quantities.get(via)
    return "%s family" % notation.with_time(q.latex, "t") if q else ""


def _gradient_terms(notation: Notation, name, time, summed=False):
    out = []
    for term in derive(notation.cell).step[name].terms:
        expr = env.at_time(term.expr(), time)
        out.append((ir.SumOverTime(expr) if summed else expr, _family(notation, term.via), term))
    return out


def target_of(lhs, sides, notation: Notation) -> Target:
    cell = notation.cell
    d = derive(cell)
    targets = env.equation_targets(cell)
    summed = any(s.expr.has(ir.SumOverTime) for s in sides[1:])
    if isinstance(lhs, Partial):
        num, den = lhs.args
        if isinstance(den, FreeSymbol):
            if num.has(*MATRIX_NODES) or not num.free_symbols <= {den}:
                raise Unsupported("unknown symbol %s" % den.name)
            return Target(sympy.diff(num, den), "identity", den.name)
        if isinstance(den, Blocks):
            return _blocks_target(d, den, num, summed)
        if isinstance(den, Stack) and num == LOSS and all(ref_of(a) for a in den.args):
            expr = lower(Partial(num, den))  # the gradient of [a_i; a_f; ...] is stacked too
            return Target(expr, "state", "", "t", terms=[])
        if isinstance(den, ir.RowBlocks):
            if num != LOSS:
                raise Unsupported("a derivative of something other than the loss with respect to a stacked matrix")
            expr = ir.RowBlocks(*[d.step_gradient(p.name) for p in den.args])
            return Target(ir.SumOverTime(expr) if summed else expr, "summed" if summed else "gradient", den.args[0].name)
        den_ref = symbols.read(den)
        if num == LOSS:
            if den_ref is None:
                if den.name not in d.step:
                    raise Unsupported("%s is not a parameter of the cell" % den.name)
                if summed:
                    return Target(d.summed(den.name), "summed", den.name,
                                  terms=_gradient_terms(notation, den.name, "t", summed=True))
                return Target(d.step_gradient(den.name), "gradient", den.name,
                              terms=_gradient_terms(notation, den.name, "t"))
            name, time = den_ref.name, den_ref.time
            if name == cell.input:
                if symbols.time_offset(time) is None and not 1 <= int(time) <= env.MIN_STEPS:
                    raise Unsupported("%s at step %s is outside the sequence" % (name, time))
                return Target(env.at_time(d.step_gradient(name), time), "gradient", name, time,
                              terms=_gradient_terms(notation, name, time))
            if name in cell.states:
                offset = symbols.time_offset(time)
                if offset is not None and offset < 0:
                    back = env.at_time(d.step_gradient(name), symbols.time_label(offset + 1))
                    return Target(back, "gradient", name, time,
                                  terms=_gradient_terms(notation, name, symbols.time_label(offset + 1)))
                if time == "0":
                    return Target(d.initial(name), "gradient", name, time,
                                  terms=_gradient_terms(notation, name, "1"))
                expr = env.at_time(d.state_total(name), time)
                return Target(expr, "state", name, time, terms=[(a, "", None) for a in _terms(expr)])
            if name in targets:
                expr = env.at_time(env.adjoint_expr(cell, name), time)
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
                expr = env.local_gradient(cell, num_ref.name, wrt).xreplace({env.UPSTREAM: sympy.Integer(1)})
            expr = env.at_time(expr, at)
            return Target(expr, "local", num_ref.name, at, terms=[(a, "", None) for a in _terms(expr)])
        if not num.has(*MATRIX_NODES) and isinstance(den, sympy.Symbol):
            return Target(sympy.diff(lower(num), den), "local", "", "")
        raise Unsupported("cannot read the derivative on the left side")
    lhs_ref = ref_of(lhs)
    if lhs_ref is not None and lhs_ref.role == "value" and lhs_ref.name in targets:
        expr = env.at_time(cell.equation(lhs_ref.name).rhs, lhs_ref.time)
        return Target(expr, "forward", lhs_ref.name, lhs_ref.time)
    variables = {s for s in lhs.free_symbols if isinstance(s, FreeSymbol)}
    if len(variables) == 1 and variables == lhs.free_symbols and not lhs.has(*MATRIX_NODES) \
            and not isinstance(lhs, sympy.Symbol):  # \sigma'(z) = ..., not t = 1
        return Target(None, "identity", next(iter(variables)).name)  # \sigma'(z) = ...: a calculus identity
    return Target(None, "plain")




def read_like_left(sides, target: Target, notation: Notation) -> list:
    """The right sides with ∂L/∂W read as the left side reads it.  An equation with no \\sum on
    its right is about one step, so its left ∂L/∂W is that step's gradient, and so is every
    ∂L/∂W (a parameter or a block of them) standing on its right; elsewhere it is the gradient
    over the sequence.  Without this, dW_x^f = ∂L/∂W_x^f would compare a step with the sum."""
    quantity = notation.cell.quantities.get(target.name)
    if target.kind != "gradient" or quantity is None or not quantity.is_parameter:
        return sides
    d = derive(notation.cell)
    layout = to_row if notation.layout == "row" else (lambda expr: expr)

    def is_parameter(p):
        return isinstance(p, sympy.Symbol) and ref_of(p) is None and not isinstance(p, FreeSymbol) and p.name in d.step

    def per_step(expr):
        if isinstance(expr, Partial) and expr.args[0] == LOSS:
            den = expr.args[1]
            if is_parameter(den):
                return layout(d.step_gradient(den.name))
            if isinstance(den, (Blocks, ir.RowBlocks)) and all(is_parameter(p) for p in den.args):
                return layout(den.func(*[d.step_gradient(p.name) for p in den.args]))
            return expr
        if isinstance(expr, (Chain, ir.SumOverTime)) or not expr.args:
            return expr
        return ir.rebuild(expr, [per_step(a) for a in expr.args])

    return [sides[0]] + [replace(side, expr=per_step(side.expr)) for side in sides[1:]]


def _blocks_target(d, den, num, summed) -> Target:
    """∂L/∂W_f of the author's W_f on a stacked vector: the gradients of its blocks side by side
    (written δ [h_{t-1}, x_t]^T when every block's gradient is one outer product with one δ)."""
    if num != LOSS:
        raise Unsupported("a derivative of something other than the loss with respect to a stacked matrix")
    names = [p.name for p in den.args]
    gradients = [d.step[name] for name in names]
    deltas = {term.delta for g in gradients for term in g.terms}
    if all(len(g.terms) == 1 for g in gradients) and len(deltas) == 1 and \
            all(g.terms[0].form in ("outer", "elementwise") for g in gradients):
        operands = [g.terms[0].operand if g.terms[0].form == "outer" else sympy.Integer(1) for g in gradients]
        expr = ir.Outer(next(iter(deltas)), Stack(*operands))
    else:
        expr = Blocks(*[g.expr() for g in gradients])
    if summed:
        return Target(ir.SumOverTime(expr), "summed", den.args[0].name)
    return Target(expr, "gradient", den.args[0].name)


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


terms = _terms


# ----------------------------------------------------------------------------- defined names
def preactivation_gradient(cell, name: str):
    """∂L/∂z_t of a gate q_t = F(z_t) (F sigmoid, tanh, ...): dL/dq_t * F'(z_t), written with q_t;
    None when q's equation is not one function applied to an argument."""
    rhs = cell.equation(name).rhs
    if not (isinstance(rhs, sympy.Function) and len(rhs.args) == 1 and not rhs.args[0].is_Number):
        return None
    u = sympy.Dummy("u", real=True)
    slope = local_derivative(rhs.func(u), u, symbols.vector(name))
    if slope.has(u):
        return None
    return ir.product([value_gradient(cell, name), slope])


def value_gradient(cell, name: str):
    if name in cell.states:
        return symbols.vector(name, "t", "adjoint")
    return env.adjoint_expr(cell, name)


def definition_readings(key: str, notation: Notation, prefer_preactivation: bool, tagged: bool = False) -> list:
    """The gradients a defined name such as δ_o or dΓ_o may stand for, the likeliest first:
    [(description, expression)] (with `tagged`, [(tag, description, expression)], the tag
    'preactivation' or 'value').  The subscript (or the name after d) picks the quantity; when
    the document's names of this family agree on a reading (`Notation.readings`), only that one."""
    cell = notation.cell
    wanted = _gradient_named(key, notation) or _named_quantity(key, notation)
    quantities = [wanted] if wanted else [q.name for q in cell.quantities.values()
                                         if not q.is_parameter and q.name != cell.input]
    family = notation.readings.get("d" if key.startswith("d") else split_key(key)[0])
    readings = []
    for name in quantities:
        written = notation.written(name)
        pre = preactivation_gradient(cell, name)
        value = ("value", "the gradient with respect to %s" % written, value_gradient(cell, name))
        if pre is None:
            readings.append(value)
            continue
        preact = ("preactivation", "the gradient with respect to the pre-activation of %s" % written, pre)
        pair = [preact, value] if prefer_preactivation else [value, preact]
        readings += [r for r in pair if family is None or r[0] == family]
    return readings if tagged else [(description, expr) for _, description, expr in readings]


def _gradient_named(key: str, notation: Notation):
    """The quantity of a gradient's name: dΓ_o -> Γ_o (None for a δ name)."""
    meaning = notation.meaning(key[1:]) if key.startswith("d") else None
    return meaning.name if meaning is not None and meaning.kind == "vector" else None


def _named_quantity(key: str, notation: Notation):
    """The cell quantity a defined name points at: δ_o -> o, δ^{f} -> f, δ_{\\tilde{c}} -> the
    candidate, ε_C -> C; also a gate written with a subscript, δ_u -> Γ_u."""
    from .notation import normal_key
    _, sub, sup = split_key(key)
    part = sub or sup
    if not part:
        return None
    wanted = {part, normal_key(part)}
    activated = {}  # a named pre-activation (a_c) -> the quantity it is the argument of (\tilde{c})
    for eq in notation.cell.equations:
        argument = eq.rhs.args[0] if isinstance(eq.rhs, sympy.Function) and len(eq.rhs.args) == 1 else None
        if isinstance(argument, sympy.Symbol) and symbols.read(argument):
            activated[symbols.read(eq.rhs.args[0]).name] = eq.target
    for written, meaning in notation.names.items():  # δ_c for the candidate whose pre-activation is a_c
        if meaning.kind == "vector" and meaning.name in activated and split_key(written)[1] in wanted:
            return activated[meaning.name]
    for written, meaning in notation.names.items():
        if meaning.kind == "vector" and written in wanted:
            return meaning.name
    for written, meaning in notation.names.items():
        if meaning.kind == "vector" and split_key(written)[1] in wanted and split_key(written)[1]:
            return meaning.name
    return None
