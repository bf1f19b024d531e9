"""The backward program: what one step computes, forward and backward, as statements on symbols.

Built once per cell and layout from the derivation; every code target prints it and none
differentiates or regroups anything.  A `Statement` assigns an expression of `lstmgen.ir` (plus the
code nodes of `lstmgen.printing.numpy`) to one or more symbols; its targets are the cell's own
vector symbols or tags (``delta:df``, ``stack:Wx``, ``dparam:Wx``, ``piece:a_f``) that the naming
stage turns into Python names.

The forward statements: the stacked pre-activation products and their split into gate blocks, then
the cell's equations with those blocks in place.  The backward statements, in an order where each
reads only what is computed before it:

* ``total``   dL/ds_t of a state that is also read inside the step (dnext_c + what h_t passes back)
* ``shared``  dL/dq_t of an intermediate the derivation gives a total of its own (`Derivation.shared`)
* ``gate``    one delta per gate, dq = dL/dP = (sum of the paths into q) * act'(P)
* ``stack``   a matrix group's deltas side by side (the delta of the one product a = x @ Wx + ...)
* ``vector``  dL/dv of the input and of the states at t-1: W^T-products of the stacks plus
              elementwise paths
* ``weight``  dL/dW = v^T @ stack of a matrix group;  ``bias`` / ``params``: batch sums
* ``adj``     the gradient of an intermediate that a matrix multiplies (MGU's r), through it

The derivation's own chain-rule terms are rewritten in these deltas and checked against them, so
every expression is still the derivation's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from .. import symbols
from ..ir import Dot, TDot, product, total
from ..printing.numpy import BatchSum, Copy, Split, Stack, WeightGradient, ZerosLike
from ..reverse import Term
from .layout import CellLayout, Gate, Group, same, tag


@dataclass
class Statement:
    """targets = expr.  `block` groups statements under one comment; `vias` are the (kind, item) pairs
    the comment is written from; `key` names what a forward statement states ("group:Wx",
    "equation:f", "split:b"), which comments quote; `about` describes each target (shape, role)."""

    targets: tuple[sympy.Symbol, ...]
    expr: sympy.Expr
    block: str = ""
    vias: list | str = field(default_factory=list)
    key: str = ""
    about: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> sympy.Symbol:
        return self.targets[0]


@dataclass
class Program:
    """The forward and backward statements of one step of a cell in one layout."""

    layout: CellLayout
    forward: list[Statement]
    backward: list[Statement]
    pieces: list[tuple]        # (members, tag, gate, group): the named sums of a gate's pre-activation
    inline: dict               # stack tag -> the one delta it is (no statement of its own)


def build(layout: CellLayout) -> Program:
    return _Builder(layout).program()


def flat_sum(expr: sympy.Expr) -> list[sympy.Expr]:
    """The terms of a (possibly nested, unevaluated) sum, in order."""
    if not isinstance(expr, sympy.Add):
        return [expr]
    return [term for arg in expr.args for term in flat_sum(arg)]


def elementwise_product(factors) -> sympy.Expr:
    """Elementwise product with the numbers in front, so that a -1 prints as a leading minus."""
    factors = list(factors)
    numbers = [f for f in factors if isinstance(f, sympy.Number)]
    coefficient = sympy.Mul(*numbers) if numbers else sympy.Integer(1)
    rest = [f for f in factors if not isinstance(f, sympy.Number)]
    if coefficient == 0:
        return sympy.Integer(0)
    return product(([coefficient] if coefficient != 1 else []) + rest)


def adjoint(name: str, time: str = "t") -> sympy.Symbol:
    """dL/dname_time: the total of a state at t, or a step result at t-1 (the input: at t)."""
    return symbols.vector(name, time, "adjoint")


def incoming(state: str) -> sympy.Symbol:
    """The step backward's argument dnext_s: dL/ds_t from outside the step."""
    return tag("arg", "dnext_" + state)


def stack_tag(group: Group) -> sympy.Symbol:
    return tag("stack", group.key)


def param_tag(arg: str) -> sympy.Symbol:
    """An argument of the generated functions (a group may have two, torch's bias_ih and bias_hh)."""
    return tag("param", arg)


def dparam_tag(arg: str) -> sympy.Symbol:
    return tag("dparam", arg)


def piece_tag(name: str) -> sympy.Symbol:
    return tag("piece", name)


class _Builder:
    """Reads a CellLayout's derivation into a Program."""

    def __init__(self, layout: CellLayout):
        self.m = layout
        self.cell = layout.cell
        self.py = layout.py
        self.pieces = self._pieces()
        self.used_pieces: set[sympy.Symbol] = set()
        self.inline: dict = {}

    def program(self) -> Program:
        backward = self._backward()
        forward = self._forward(backward)
        return Program(self.m, forward, backward, self.pieces, self.inline)

    # ---- named pieces of the pre-activations -----------------------------------------------
    def fast_piece(self, gate: Gate) -> sympy.Symbol:
        """A gate's block of a: a_f; the quantity itself when its equation is q = P and P is all block
        (not when P adds more, as in q = W x + h[t-1]: the block is then only a part of q)."""
        if gate.is_pre and set(flat_sum(gate.pre)) == set(self._block_members(gate)):
            return symbols.vector(gate.name)
        return piece_tag("a" if len(self.m.gates) == 1 else "a_" + gate.py)

    def _block_members(self, gate: Gate) -> list:
        """What the one product a = x @ Wx + ... + b contributes to the gate's pre-activation."""
        m = self.m
        return [m.member_expr(g, gate.name) for g in m.groups if g.kind != "diagonal" and gate.name in g.members]

    def _pieces(self):
        """(members, symbol, gate, group): the sums of one gate's pre-activation that get a name."""
        m, out = self.m, []
        if m.fast:
            for gate in m.gates.values():
                out.append((frozenset(self._block_members(gate)), self.fast_piece(gate), gate.name, None))
            return out
        for group in m.groups:
            if group.kind != "matrix":
                continue
            for gate in group.members:
                members = {m.member_expr(group, gate)}
                fused = m.matrix_fusion.get((group.vkey, gate))
                if fused is not None:
                    members.add(symbols.parameter(fused))
                out.append((frozenset(members), piece_tag(m.piece_name(group, gate)), gate, group))
        return out

    def substitute(self, expr: sympy.Expr, track: bool = True, only=None) -> sympy.Expr:
        """expr with the named pieces in place of the sums they name (`only`: just these pieces)."""
        pieces = [p for p in self.pieces if only is None or p[1] in only]

        def walk(e):
            if isinstance(e, Dot):
                for members, sym, _, _ in pieces:
                    if members == {e}:
                        if track:
                            self.used_pieces.add(sym)
                        return sym
                return e
            if not e.args:
                return e
            if isinstance(e, sympy.Add):
                terms = flat_sum(e)
                changed = False
                for members, sym, _, _ in pieces:
                    if len(members) > 1 and members <= set(terms):
                        first = min(terms.index(x) for x in members)
                        terms = [sym if k == first else t for k, t in enumerate(terms) if k == first or t not in members]
                        changed = True
                        if track:
                            self.used_pieces.add(sym)
                if changed:
                    return total([walk(t) for t in terms])
                return sympy.Add(*[walk(a) for a in e.args], evaluate=False)
            if isinstance(e, sympy.Mul):
                return sympy.Mul(*[walk(a) for a in e.args], evaluate=False)
            return e.func(*[walk(a) for a in e.args])

        return walk(expr)

    # ---- the chain-rule terms, rewritten in gate deltas ----------------------------------------------
    @staticmethod
    def _normalize(term: Term, wrt: sympy.Expr, within: bool):
        """(path, factors, wrt): factors[0] is the adjoint of path[offset]; then one derivative per link."""
        path = tuple(term.chain)
        if within and term.form == "elementwise":
            path = path[:-1]
        if term.form == "outer":
            wrt = Dot(wrt, term.operand)
        elif term.form == "transposed":
            wrt = Dot(term.operand, wrt)
        return path, tuple(term.factors), wrt

    def _collapse(self, path, factors, wrt, complete=True):
        """The term with its longest prefix replaced by a gate delta (or an intermediate's adjoint)."""
        m = self.m
        factors, path = list(factors), list(path)
        offset = len(path) - (len(factors) - (1 if complete else 0))
        if offset > 0:
            if not isinstance(factors[0], TDot):
                m.fail("a chain-rule term has an unexpected form")
            factors[0] = tag("adj", path[offset])
            path = path[offset:]
        last = len(path) - 1 if complete else len(path) - 2
        for j in range(last, -1, -1):
            gate = m.gates.get(path[j])
            if gate is None:
                continue
            nxt = wrt if j == len(path) - 1 else symbols.vector(path[j + 1])
            outside = self.cell.equation(gate.name).rhs.xreplace({gate.pre: sympy.Dummy()})
            if not gate.pre.has(nxt) or outside.has(nxt):
                continue
            inner = m.inner(gate, nxt)
            if not same(factors[j + 1], gate.slope * inner):
                continue
            return tuple(path[j:]), (gate.delta,) + ((inner,) if inner != 1 else ()) + tuple(factors[j + 2:])
        return tuple(path), tuple(factors)

    def _collapsed(self, terms, wrt, within=False, complete=True):
        out = []
        for term in terms:
            path, factors, target = self._normalize(term, wrt, within)
            if not complete:
                factors = factors[:-1]
            key = self._collapse(path, factors, target, complete) + (term.form, target, term.via)
            if key not in out:
                out.append(key)
        return out

    def _gate_delta(self, gate: Gate) -> tuple[sympy.Expr, list]:
        """dq = (sum of the paths into q) * act'(P), from the terms of one of the gate's parameters."""
        param = gate.params[0]
        terms = [t for t in self.m.d.step[param].terms if t.via == gate.name]
        prefixes = self._collapsed(terms, symbols.parameter(param), complete=False)
        if len(prefixes) == 1:
            return elementwise_product([*prefixes[0][1], gate.slope]), prefixes
        return elementwise_product([total(elementwise_product(p[1]) for p in prefixes), gate.slope]), prefixes

    def member_delta(self, group: Group, gate: str, delta_first: bool = False) -> sympy.Expr:
        """dL/d(the member's share of P), (N, H): the gate's delta times dP/d(W v) or dP/db (r * dn for
        GRU's W_h^n); `delta_first` prints the delta first (dn * r), as a bias's gradient reads."""
        g = self.m.gates[gate]
        inner = self.m.inner(g, self.m.member_expr(group, gate))
        if inner == 1:
            return g.delta
        return elementwise_product([g.delta, inner] if delta_first else [inner, g.delta])

    def _check_parameter(self, group: Group, gate: str):
        """The derivation's gradient of each parameter is the block's delta (times v^T for a matrix)."""
        param = group.members[gate]
        got = self._collapsed(self.m.d.step[param].terms, symbols.parameter(param))
        g = self.m.gates[gate]
        inner = self.m.inner(g, self.m.member_expr(group, gate))
        expected = (g.delta,) + ((inner,) if inner != 1 else ())
        if len(got) != 1 or got[0][1] != expected:
            self.m.fail(f"the gradient of {param} is not the delta of gate {gate}")

    def _vector_gradient(self, terms, wrt, within=False):
        """Sum of W^T-products (one per group, stacked) and elementwise terms; also the vias for comments."""
        parts, covered, vias = [], {}, []
        for path, factors, form, target, _via in self._collapsed(terms, wrt, within):
            if form == "transposed":
                matrix = target.args[0]
                group = next(g for g in self.m.groups if g.kind == "matrix" and matrix.name in g.members.values())
                gate = next(q for q, p in group.members.items() if p == matrix.name)
                if not same(elementwise_product(factors), self.member_delta(group, gate)):
                    self.m.fail(f"the gradient through {matrix} is not the delta of gate {gate}")
                if group.key not in covered:
                    covered[group.key] = set()
                    parts.append(("group", group))
                    vias.append(("group", group))
                covered[group.key].add(gate)
            else:
                parts.append(("term", elementwise_product(factors)))
                vias.append(("path", path))
        for kind, item in parts:
            if kind == "group" and covered[item.key] != set(item.members):
                self.m.fail(f"the gradient of {wrt} does not reach every block of {item.key}")
        expr = total([TDot(item.symbol, stack_tag(item)) if kind == "group" else item for kind, item in parts])
        return expr, vias

    def _shared_gradient(self, name: str, terms, through: dict):
        """dL/dq_t of a shared intermediate q: its elementwise paths, rewritten in gate deltas, plus its
        gradient through the matrices that multiply it (what tag adj:q holds)."""
        via_matrix = [t for t in terms if len(t.chain) > 1 and len(t.factors) == 1 and isinstance(t.factors[0], TDot)]
        elementwise = [t for t in terms if not any(t is u for u in via_matrix)]
        expr, vias = self._vector_gradient(elementwise, symbols.vector(name), within=True) if elementwise \
            else (sympy.Integer(0), [])
        if via_matrix:
            if name not in through:
                self.m.fail(f"the gradient of {name} through a matrix has no statement")
            expr = total([expr, tag("adj", name)]) if elementwise else tag("adj", name)
            vias = vias + [("group", g) for g in through[name]]
        return expr, vias

    # ---- backward statements ------------------------------------------------------------------
    def _backward(self) -> list[Statement]:
        m, cell, out = self.m, self.cell, []
        # gradients reaching the states from inside the step
        for state in cell.states:
            if not m.d.within_step[state]:
                continue
            expr, vias = self._vector_gradient(m.d.within_step[state], symbols.vector(state), within=True)
            out.append(Statement((adjoint(state),), total([incoming(state), expr]), "total:" + state, vias))
        # intermediates multiplied by a matrix: their gradient through it (through every matrix that
        # multiplies it: one group in a stacked layout, one per matrix in the per-gate one)
        through: dict[str, list[Group]] = {}
        for group in m.groups:
            if group.kind == "matrix" and self.m.is_intermediate(group.vector):
                through.setdefault(symbols.read(group.vector).name, []).append(group)
        for name, groups in through.items():
            out.append(Statement((tag("adj", name),), total([TDot(g.symbol, stack_tag(g)) for g in groups]),
                                 "adj:" + name, [("group", g) for g in groups]))
        # intermediates with a total gradient of their own, from what their consumers pass back
        for name, gradient in m.d.shared.items():
            expr, vias = self._shared_gradient(name, gradient.terms, through)
            out.append(Statement((adjoint(name),), expr, "shared:" + name, vias))
        # one delta per gate
        for gate in m.gates.values():
            expr, prefixes = self._gate_delta(gate)
            out.append(Statement((gate.delta,), expr, "gate:" + gate.name,
                                 [("path", p[0]) for p in prefixes] + [("path", (gate.name,))]))
        for group in m.groups:
            for gate in group.members:
                self._check_parameter(group, gate)
        fused_done, vectors = set(), {}
        for name in cell.step_inputs:
            wrt = symbols.vector(name) if name == cell.input else symbols.vector(name, "t-1")
            target = adjoint(name, "t" if name == cell.input else "t-1")
            if name not in m.d.step:
                vectors[name] = Statement((target,), ZerosLike(wrt), "vec:" + name,
                                          f"{name} does not enter this step")
                continue
            expr, vias = self._vector_gradient(m.d.step[name].terms, wrt)
            vectors[name] = Statement((target,), expr, "vec:" + name, vias)
        # per matrix group: stacked delta, vector gradient through it alone, weight gradient, fused bias
        matrix_groups = [g for g in m.groups if g.kind == "matrix"]
        for group in matrix_groups:
            block = "stacked" if m.fast else "group:" + group.key
            deltas = [self.member_delta(group, g) for g in group.members]
            stack = stack_tag(group)
            if m.fast and group is not matrix_groups[0]:
                pass  # one stacked delta, da, serves every group
            elif len(deltas) > 1 or not (deltas[0].is_Symbol or m.layout == "per-gate"):
                out.append(Statement((stack,), Stack(*deltas) if len(deltas) > 1 else deltas[0], block,
                                     [("group", group)]))
            else:
                self.inline[stack] = deltas[0]  # no statement: the stacked delta is the one delta itself
            for name, statement in list(vectors.items()):
                reads_only_stacks = m.fast and all(isinstance(t, TDot) for t in flat_sum(statement.expr))
                if statement.expr == TDot(group.symbol, stack) or reads_only_stacks:
                    statement.block = block
                    out.append(vectors.pop(name))
            out.append(self._param_statement(group.args[0], WeightGradient(group.symbol, stack, group.vector),
                                             block, group))
            biases = [g for g in m.groups if g.kind == "bias"] if m.fast and group is matrix_groups[-1] else []
            biases += [group.fused] if group.fused is not None else []
            for bias in biases:
                source = stack_tag(matrix_groups[0]) if m.fast else stack
                for statement in self._bias_gradient(bias, BatchSum(source)):
                    statement.block, statement.vias = block, [("group", group)]
                    out.append(statement)
                fused_done.add(bias.key)
        out.extend(vectors.values())
        for group in m.groups:
            if group.kind == "matrix" or group.key in fused_done:
                continue
            deltas = [self.member_delta(group, gate, delta_first=True) for gate in group.members]
            expr = BatchSum(Stack(*deltas) if len(deltas) > 1 else deltas[0])
            for statement in self._bias_gradient(group, expr):
                out.append(self._param_statement(None, statement.expr, "params:" + group.key, group,
                                                 statement.targets))
        if m.layout == "per-gate":  # the gradients of one gate's parameters side by side
            gates = list(m.gates)
            params = sorted([s for s in out if s.block.startswith("gate-params:")],
                            key=lambda s: gates.index(s.block.split(":", 1)[1]))
            out = [s for s in out if not s.block.startswith("gate-params:")] + params
        for statement in out:
            statement.expr = self.substitute(statement.expr.xreplace(self.inline))
        return _sorted(out, m)

    def _param_statement(self, arg, expr, block, group, targets=None) -> Statement:
        targets = targets or (dparam_tag(arg),)
        if self.m.layout == "per-gate":
            gate = next(iter(group.members))
            return Statement(targets, expr, "gate-params:" + gate, [("params", group)])
        return Statement(targets, expr, block, [("group", group)] if group.kind == "matrix" else [("params", group)])

    @staticmethod
    def _bias_gradient(group: Group, expr) -> list[Statement]:
        out = [Statement((dparam_tag(group.args[0]),), expr)]
        for arg in group.args[1:]:  # torch: b = bias_ih + bias_hh, both get dL/db
            out.append(Statement((dparam_tag(arg),), Copy(dparam_tag(group.args[0]))))
        return out

    # ---- forward statements ------------------------------------------------------------------
    def _forward(self, backward: list[Statement]) -> list[Statement]:
        """The step forward: stacked products, their split into gate blocks, then the cell's equations."""
        m, cell, out = self.m, self.cell, []
        if m.fast:
            pieces = [self.fast_piece(m.gates[g]) for g in m.block_order]
            products = total([Dot(g.symbol, g.vector) if g.kind == "matrix" else g.symbol
                              for g in m.groups if g.kind != "diagonal"])
            abouts = tuple(("(N, H)", f"pre-activation of {g}") for g in m.block_order)
            if len(pieces) > 1:
                out.append(Statement((tag("pre", "a"),), products, key="product",
                                     about=((f"(N, {len(pieces)} * H)", "the stacked pre-activations"),)))
                out.append(Statement(tuple(pieces), Split(tag("pre", "a"), len(pieces), 1), key="product-split",
                                     about=abouts))
            else:
                out.append(Statement(tuple(pieces), products, key="product", about=abouts))
        for group in m.groups:  # elementwise groups: split into per-gate vectors
            if group.kind == "matrix" or m.layout == "per-gate":
                continue
            if len(group.args) > 1:
                out.insert(0, Statement((group.symbol,), total([param_tag(a) for a in group.args]),
                                        key="sum:" + group.key,
                                        about=((f"({m.width(group)},)", " + ".join(group.args)),)))
            if len(group.members) > 1 and not (m.fast and group.kind == "bias") and not (
                    group.kind == "bias" and any(g.fused is group for g in m.groups)):
                params = tuple(symbols.parameter(p) for p in group.members.values())
                out.append(Statement(params, Split(group.symbol, len(params), 0), key="split:" + group.key,
                                     about=tuple(("(H,)", f"{p}, the block of gate {gate}")
                                                 for gate, p in group.members.items())))
        products = {}
        if not m.fast:
            for group in m.groups:
                if group.kind != "matrix":
                    continue
                mine = [p for p in self.pieces if p[3] is group]
                if m.layout == "per-gate":
                    for members, sym, gate, _ in mine:
                        if sym in self.used_pieces:
                            products.setdefault(gate, []).append(Statement(
                                (sym,), total(sorted(members, key=_dot_first)), key="piece:" + gate,
                                about=(("(N, H)", f"the part of {gate}'s pre-activation from {group.vkey}"),)))
                    continue
                product_ = total([Dot(group.symbol, group.vector)] + ([group.fused.symbol] if group.fused else []))
                first = min(group.members, key=[eq.target for eq in cell.equations].index)
                parts = tuple(p[1] for p in mine)
                abouts = tuple(("(N, H)", f"the part of {gate}'s pre-activation from {group.vkey}")
                               for _, _, gate, _ in mine)
                if len(mine) > 1:
                    stacked = tag("pre", "g" + group.vkey)
                    products.setdefault(first, []).extend([
                        Statement((stacked,), product_, key="group:" + group.key,
                                  about=((f"(N, {m.width(group)})", f"{group.key} times {group.vkey}"),)),
                        Statement(parts, Split(stacked, len(parts), 1), key="group-split:" + group.key, about=abouts)])
                else:
                    products.setdefault(first, []).append(Statement(parts, product_, key="group:" + group.key,
                                                                    about=abouts))
        only = self.used_pieces if m.layout == "per-gate" else None
        for eq in cell.equations:
            out.extend(products.get(eq.target, []))
            target = symbols.vector(eq.target)
            expr = self.substitute(eq.written, track=False, only=only)
            role = (f"state {eq.target} at t" if eq.target in cell.states
                    else f"gate {eq.target}" if eq.target in m.gates else f"{eq.target} at t")
            out.append(Statement((target,), expr, key="equation:" + eq.target, about=(("(N, H)", role),)))
        return out


def _sorted(statements: list[Statement], layout: CellLayout) -> list[Statement]:
    """The statements in their given order, each moved after the statements it reads."""
    defined = {t for s in statements for t in s.targets}
    reads = {id(s): (s.expr.free_symbols & defined) - set(s.targets) for s in statements}
    done, out, pending = set(), [], list(statements)
    while pending:
        for statement in pending:
            if reads[id(statement)] <= done:
                out.append(statement)
                done.update(statement.targets)
                pending.remove(statement)
                break
        else:
            layout.fail("the backward lines depend on each other in a cycle")
    return out


def _dot_first(expr) -> tuple:
    return (0 if isinstance(expr, Dot) else 1, str(expr))
