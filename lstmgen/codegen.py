"""Code generation: a cell's derivation as finished strings for the NumPy module template.

One derivation, three renderings (``LAYOUTS``); the layout only decides how parameters are stored
and named, never the math:

* ``cs231n``: batch-major, parameters grouped by what they do, one block per gate side by side
  along the last axis, in the cell file's gate order:

  - matrices that multiply the input x         ->  ``Wx`` (D, G*H)
  - matrices that multiply h[t-1] (a state)     ->  ``Wh`` (H, G*H)
  - matrices that multiply another vector v     ->  ``W<v>`` (H, G*H), e.g. ``Wr`` for the MGU
  - bias vectors, by their subscript            ->  ``b`` for b^f, ``bx`` for b_x^r, ``bh`` for b_h^r
  - diagonal (peephole) vectors, likewise       ->  ``p`` for p^i, p^f, p^o

  A group holds a block only for the gates that have a member (G counts those).
* ``torch``: PyTorch's ``weight_ih`` (G*H, D), ``weight_hh`` (G*H, H), ``bias_ih``, ``bias_hh``, in
  the cell file's ``order torch`` (a single bias b^g is bias_ih_g + bias_hh_g).
* ``per-gate``: one argument per parameter, named as in the derivation document (``W_x_f``).

Every gate is an equation  q = act(P)  whose pre-activation P holds its parameters.  The backward
pass names one delta per gate, dq = dL/dP; the delta of each product W v in P is dq times dP/d(W v)
(r * dn for GRU's W_h^n), and a group's deltas stacked in block order give the gradients of its
weights and of the vector it multiplies.  The derivation's own chain-rule terms are rewritten in
these deltas (and checked against them), so every expression is still printed from the derivation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from . import symbols
from .errors import LayoutError, LstmgenError
from .functions import UserFunction
from .ir import Dot, TDot, product, total
from .printing.numpy import BatchSum, Stack, WeightGradient, identifier, print_numpy
from .reverse import Derivation, Term
from .rules import local_derivative, opaque_products

TEMPLATE = "numpy_module.py.j2"
LAYOUTS = ("cs231n", "torch", "per-gate")
TITLES = {"cs231n": "the CS231n layout", "torch": "PyTorch's layout", "per-gate": "one argument per parameter"}


def module_context(derivation: Derivation, layout: str = "cs231n") -> dict:
    """Everything `templates/numpy_module.py.j2` fills in, for `derivation` in `layout`."""
    if layout not in LAYOUTS:
        raise LstmgenError("unknown layout {!r}: use one of {}".format(layout, ", ".join(LAYOUTS)))
    return _Module(derivation, layout).context()


# ============================================================================ helpers
# Names the template and the context give the module's own functions, variables and imports.  A cell
# quantity (or a function of the cell file) printed under one of them would silently shadow it, or be
# shadowed (a bias named H replaced by the hidden size); the initial state h0 is added per cell.
TEMPLATE_NAMES = frozenset({"np", "NamedTuple", "sigmoid", "_checked", "_check_shape", "N", "D", "H", "T", "t",
                            "dtype", "cache", "step_cache", "steps", "first"})


def _user_functions(cell) -> dict[str, type]:
    """The functions the cell file defines that its equations use, directly or inside each other, by name."""
    found, pending = {}, [eq.rhs for eq in cell.equations]
    while pending:
        for node in sympy.preorder_traversal(pending.pop()):
            if isinstance(node, UserFunction) and type(node).__name__ not in found:
                found[type(node).__name__] = type(node)
                pending.append(type(node).formula.expr)
    return found


def _tag(kind: str, name: str) -> sympy.Symbol:
    """A symbol of the generated code (a delta, a piece, a group): never confused with the cell's own."""
    return sympy.Symbol(f"{kind}:{name}")


def _flat_sum(expr: sympy.Expr) -> list[sympy.Expr]:
    """The terms of a (possibly nested, unevaluated) sum, in order."""
    if not isinstance(expr, sympy.Add):
        return [expr]
    return [term for arg in expr.args for term in _flat_sum(arg)]


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    return sympy.expand(a - b) == 0


def _product(factors) -> sympy.Expr:
    """Elementwise product with the numbers in front, so that a -1 prints as a leading minus."""
    factors = list(factors)
    numbers = [f for f in factors if isinstance(f, sympy.Number)]
    coefficient = sympy.Mul(*numbers) if numbers else sympy.Integer(1)
    rest = [f for f in factors if not isinstance(f, sympy.Number)]
    if coefficient == 0:
        return sympy.Integer(0)
    return product(([coefficient] if coefficient != 1 else []) + rest)


@dataclass
class _Gate:
    """An equation q = act(P) whose pre-activation P holds parameters."""

    name: str
    py: str
    pre: sympy.Expr           # P, canonical
    slope: sympy.Expr         # act'(P), written with q where possible (q * (1 - q)); 1 when q = P
    params: list[str]         # parameter names in P
    is_pre: bool              # the equation is q = P itself
    delta: sympy.Symbol | None = None  # dL/dP, named by _Module._name_gates once the layout is known


@dataclass
class _Group:
    """One argument of the generated functions: the parameters stored side by side (or one parameter)."""

    key: str                       # Wx, Wh, Wr, b, bx, p ... (per-gate: the parameter's py name)
    kind: str                      # matrix, bias, diagonal
    members: dict[str, str]        # gate -> parameter name, in block order
    vector: sympy.Symbol | None = None  # what the matrices multiply
    vkey: str = ""                 # the vector's short name: x, h, r
    rows: str = "H"                # D for the input's matrices
    fused: "_Group | None" = None  # the bias group added to this matrix group's product
    args: list[str] = field(default_factory=list)  # argument name(s) in the generated functions
    transposed: bool = False       # stored (G*H, rows) as in PyTorch

    @property
    def symbol(self) -> sympy.Symbol:
        return _tag("group", self.key)


@dataclass
class _Line:
    """One assignment of the step backward."""

    target: str
    expr: sympy.Expr | None
    block: str                 # lines with the same block (other than gate: and total:) share one comment
    comment: str | list        # a finished comment, or the (kind, item) pairs `_comment` writes it from
    text: str = ""             # a finished right-hand side instead of expr


# ============================================================================ the module
class _Module:
    """Reads a derivation into the strings of one NumPy module in one layout."""

    def __init__(self, derivation: Derivation, layout: str):
        self.d = derivation
        self.cell = cell = derivation.cell
        self.layout = layout
        self.prefix = re.sub(r"\W", "_", cell.name).lower()
        self.py = {name: identifier(q.py) for name, q in cell.quantities.items()}
        self.eq = {eq.target: eq for eq in cell.equations}
        self._inner_cache: dict[tuple, sympy.Expr] = {}
        self.input_width = self._input_width()
        self.gates = self._gates()
        self.groups = self._groups()
        self._fuse_biases()
        self.stacked = layout != "per-gate"
        self.fast = self.stacked and self._fits_one_product()
        if self.fast:  # the biases are part of the one product
            for group in self.groups:
                group.fused = None
        self._layout()
        self._name_gates()

    # ---- reading the cell ----------------------------------------------------------------
    def _fail(self, message: str):
        raise LayoutError(f"cell {self.cell.name} does not fit the {self.layout} layout: {message}")

    def _is_param(self, sym) -> bool:
        q = self.cell.quantities.get(getattr(sym, "name", None))
        return q is not None and q.is_parameter and symbols.read(sym) is None

    def _gates(self) -> dict[str, _Gate]:
        """Every equation with parameters, in block order: the cell file's gate order, then the others."""
        cell, found = self.cell, {}
        for eq in cell.equations:
            params = sorted({s.name for s in eq.rhs.free_symbols if self._is_param(s)})
            if not params:
                continue
            rhs = eq.rhs
            inside = [a for a in rhs.args if a.has(*[symbols.parameter(p) for p in params])]
            single = (isinstance(rhs, sympy.Function) and not isinstance(rhs, Dot) and len(inside) == 1
                      and all(a.is_number for a in rhs.args if a is not inside[0])
                      and all(a.has(symbols.parameter(p)) for a in inside for p in params))
            if single:
                pre = inside[0]
                z = sympy.Dummy("z", real=True)
                slope = local_derivative(rhs.func(*[z if a is pre else a for a in rhs.args]), z,
                                         symbols.vector(eq.target)).xreplace({z: pre})
            else:
                pre, slope = rhs, sympy.Integer(1)
            found[eq.target] = _Gate(eq.target, self.py[eq.target], pre, slope, params, not single)
        for name in list(found):
            for other in found:
                if other != name and set(found[name].params) & set(found[other].params):
                    self._fail(f"a parameter of {name} is also used by {other}")

        def rank(name):
            owner = name if name in cell.gate_order else next(
                (g for g in cell.gate_order if self.eq[g].rhs.has(symbols.vector(name))), None)
            position = [eq.target for eq in cell.equations].index(name)
            return (cell.gate_order.index(owner), position) if owner else (len(cell.gate_order), position)

        return {name: found[name] for name in sorted(found, key=rank)}

    def _input_width(self) -> str:
        """D; H when the input also enters elementwise (a residual ... + x): then the shape checks of x
        and of its matrices say so, instead of NumPy failing to broadcast x against a state."""
        x = symbols.vector(self.cell.input)
        elementwise = any(eq.rhs.xreplace({dot: sympy.Dummy() for dot in eq.rhs.atoms(Dot)}).has(x)
                          for eq in self.cell.equations)
        return "H" if elementwise else "D"

    def _vector_key(self, vec: sympy.Symbol) -> str:
        return self.py[symbols.read(vec).name]

    def _groups(self) -> list[_Group]:
        """The cs231n groups in argument order: matrices by vector, then biases, then diagonals."""
        cell = self.cell
        matrices: dict[sympy.Symbol, _Group] = {}
        elementwise: dict[str, _Group] = {}
        for gate in self.gates.values():
            for dot in sorted(gate.pre.atoms(Dot), key=str):
                matrix, vec = dot.args
                ref = symbols.read(vec)
                key = self._vector_key(vec)
                group = matrices.setdefault(vec, _Group("W" + key, "matrix", {}, vec, key,
                                                        self.input_width if ref.name == cell.input else "H"))
                if gate.name in group.members:
                    self._fail(f"gate {gate.name} has two matrices multiplying {vec}")
                group.members[gate.name] = matrix.name
            for name in gate.params:
                kind = cell.quantities[name].kind
                if kind == "matrix":
                    continue
                base, mark, _ = name.partition("^")
                # b_f in gate f (or a^f) names the gate; a list, not a set: both may match (b_a_f in a^f),
                # and the longer one must win in every process whatever its hash seed
                for marker in (gate.py, gate.name.rpartition("^")[2]):
                    if not mark and base.endswith("_" + marker):
                        base = base[: -len(marker) - 1]
                        break
                key = base.replace("_", "")
                group = elementwise.setdefault(key, _Group(key, kind, {}))
                if group.kind != kind:
                    self._fail(f"{name} is a {kind} but other parameters named {key} are not")
                if gate.name in group.members:
                    self._fail(f"gate {gate.name} has two parameters grouped as {key}")
                group.members[gate.name] = name
        if symbols.vector(cell.input) not in matrices:
            self._fail(f"no gate multiplies the input {cell.input}")
        order = [symbols.vector(cell.input)] + [symbols.vector(s, "t-1") for s in cell.states]
        order += [symbols.vector(eq.target) for eq in cell.equations]
        matrix_groups = [matrices[v] for v in order if v in matrices]
        keys = [g.vkey for g in matrix_groups]
        biases = sorted((g for g in elementwise.values() if g.kind == "bias"),
                        key=lambda g: keys.index(g.key[1:]) if g.key[1:] in keys else len(keys))
        diagonals = [g for g in elementwise.values() if g.kind == "diagonal"]
        groups = matrix_groups + biases + diagonals
        gate_rank = list(self.gates)
        for group in groups:
            group.members = {g: group.members[g] for g in sorted(group.members, key=gate_rank.index)}
        return groups

    def _inner(self, gate: _Gate, wrt: sympy.Expr) -> sympy.Expr:
        """dP/dwrt for a symbol or a product Dot(W, v) inside the gate's pre-activation (memoized: the
        layout, the deltas and the checks ask for the same derivatives again and again)."""
        key = (gate.name, wrt)
        if key not in self._inner_cache:
            stand, back = opaque_products(gate.pre)
            target = next((u for u, dot in back.items() if dot == wrt), wrt) if isinstance(wrt, Dot) else wrt
            self._inner_cache[key] = sympy.factor_terms(sympy.diff(stand, target)).xreplace(back)
        return self._inner_cache[key]

    def _member_expr(self, group: _Group, gate: str) -> sympy.Expr:
        """What a group's member contributes to the gate's pre-activation: W v, b or p."""
        param = symbols.parameter(group.members[gate])
        return Dot(param, group.vector) if group.kind == "matrix" else param

    def _fuse_biases(self):
        """A bias group joins the product of the matrix group its subscript names (b: the input's)
        when it covers the same gates and every block has the same delta."""
        matrix_groups = [g for g in self.groups if g.kind == "matrix"]
        for bias in [g for g in self.groups if g.kind == "bias"]:
            sub = bias.key[1:] or matrix_groups[0].vkey
            partner = next((g for g in matrix_groups if g.vkey == sub and g.fused is None), None)
            if partner is None or list(partner.members) != list(bias.members):
                continue
            if all(_same(self._inner(self.gates[q], self._member_expr(partner, q)),
                         self._inner(self.gates[q], self._member_expr(bias, q))) for q in bias.members):
                partner.fused = bias

    def _fits_one_product(self) -> bool:
        """True when a = x @ Wx + prev_h @ Wh + b gives every gate's pre-activation block."""
        cell, gates = self.cell, list(self.gates)
        for group in self.groups:
            if group.kind == "diagonal":
                continue
            if list(group.members) != gates:
                return False
            if group.vector is not None:
                ref = symbols.read(group.vector)
                if not (ref.name == cell.input or (ref.time == "t-1" and ref.name in cell.states)):
                    return False
            for gate in gates:
                if self._inner(self.gates[gate], self._member_expr(group, gate)) != 1:
                    return False
        return True

    # ---- layouts -----------------------------------------------------------------------------
    def _layout(self):
        """Argument names, storage and block order of the groups in the requested layout."""
        cell = self.cell
        self.block_order = list(self.gates)
        # which bias joins which product, gate by gate (decided on the cs231n groups, kept by every layout)
        self.matrix_fusion = {(g.vkey, gate): g.fused.members[gate] for g in self.groups
                              if g.kind == "matrix" and g.fused is not None for gate in g.members}
        if self.layout == "cs231n":
            for group in self.groups:
                group.args = [group.key]
        elif self.layout == "torch":
            order = cell.layout_orders.get("torch") or (list(self.gates) if len(self.gates) == 1 else None)
            if not order:
                raise LayoutError(f"cell {cell.name} has no torch gate order (a line `order torch ...` in its "
                                  "cell file): PyTorch has modules only for LSTM, GRU and RNN")
            if sorted(order) != sorted(self.gates):
                self._fail("the torch order must name the gates " + " ".join(self.gates))
            self.block_order = list(order)
            names = {cell.input: "ih", cell.output: "hh"}
            for group in self.groups:
                if list(sorted(group.members)) != sorted(self.gates):
                    self._fail(f"{group.key} does not have a block for every gate")
                if group.kind == "matrix":
                    ref = symbols.read(group.vector)
                    if ref.name not in names or (ref.name != cell.input and ref.time != "t-1"):
                        self._fail(f"PyTorch has no weight for {group.key}")
                    group.args, group.transposed = ["weight_" + names[ref.name]], True
                elif group.kind == "bias":
                    sub = group.key[1:]
                    owner = {self.py[cell.input]: "ih", self.py[cell.output]: "hh"}.get(sub)
                    if sub and owner is None:
                        self._fail(f"PyTorch has no bias for {group.key}")
                    group.args = ["bias_" + owner] if sub else ["bias_ih", "bias_hh"]
                else:
                    self._fail(f"PyTorch has no diagonal weights such as {group.key}")
            if [arg for group in self.groups for arg in group.args] != ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
                self._fail("PyTorch's arguments are weight_ih, weight_hh, bias_ih and bias_hh")
        else:  # per-gate: every parameter its own argument
            split = []
            for group in self.groups:
                for gate, param in group.members.items():
                    one = _Group(self.py[param], group.kind, {gate: param}, group.vector, group.vkey, group.rows)
                    one.args = [one.key]
                    split.append(one)
            self.groups = split
        for group in self.groups:
            group.members = {g: group.members[g] for g in self.block_order if g in group.members}

    def _name_gates(self):
        for gate in self.gates.values():
            gate.delta = _tag("delta", "da" if self.fast and len(self.gates) == 1 else identifier("d" + gate.py))

    # ---- names ---------------------------------------------------------------------------------
    def _width(self, group: _Group) -> str:
        return "H" if len(group.members) == 1 else f"{len(group.members)} * H"

    def _blocks(self, group: _Group) -> str:
        return ", ".join(self.py[g] if not g.startswith("a^") else g for g in group.members)

    def _piece_name(self, group: _Group, gate: str) -> str:
        return "g{}_{}".format(group.vkey, self.py[gate])

    def context(self) -> dict:
        return _Printer(self).context()


# ============================================================================ printing a module
class _Printer:
    """The forward and backward lines of one module."""

    def __init__(self, module: _Module):
        self.m = m = module
        self.cell = m.cell
        self.py = m.py
        self.names: dict[str, str] = {}
        self.transposed = set()
        self.forward_defs: dict[str, tuple[str, str]] = {}  # python name -> (shape, about), forward locals
        self._base_names()
        self.pieces = self._pieces()          # list of (members frozenset, symbol, gate, group)
        self.used_pieces: set[sympy.Symbol] = set()
        self.backward = self._backward_lines()
        self.forward = self._forward_lines()

    # ---- names -----------------------------------------------------------------------------
    def _base_names(self):
        m, cell, names = self.m, self.cell, self.names
        names[symbols.vector(cell.input).name] = self.py[cell.input]
        for state in cell.states:
            names[symbols.vector(state, "t-1").name] = "prev_" + self.py[state]
            names[symbols.vector(state).name] = "next_" + self.py[state]
            names[symbols.vector(state, role="adjoint").name] = (
                "dnext_" + self.py[state] + ("_total" if m.d.within_step[state] else ""))
            names[_tag("arg", "dnext_" + self.py[state]).name] = "dnext_" + self.py[state]
        for eq in cell.equations:
            if eq.target not in cell.states:
                names[symbols.vector(eq.target).name] = self.py[eq.target]
        for gate in m.gates.values():
            names[gate.delta.name] = gate.delta.name.split(":", 1)[1]
        for group in m.groups:
            names[group.symbol.name] = group.args[0] if len(group.args) == 1 else group.key
            if group.transposed:
                self.transposed.add(group.symbol.name)
            if m.layout == "per-gate":
                names[group.members[next(iter(group.members))]] = group.args[0]
            elif group.kind != "matrix":
                for param in group.members.values():
                    names[param] = group.args[0] if len(group.members) == 1 and len(group.args) == 1 else self.py[param]
        for vec in {g.vector for g in m.groups if g.vector is not None}:
            ref = symbols.read(vec)
            if ref.time == "t" and ref.name != cell.input and ref.name not in cell.states:
                names[_tag("adj", ref.name).name] = identifier("d" + self.py[ref.name])
        for group in m.groups:
            if group.kind == "matrix":
                names[_tag("stack", group.key).name] = "da" if m.fast else "dg" + group.vkey
        if m.fast:
            for gate in m.gates.values():
                names[_tag("piece", "a_" + gate.py).name] = self._fast_piece(gate)
        self._check_clashes()

    def _check_clashes(self):
        """Two different things must not share a Python name (a quantity called `b` next to the bias b)."""
        args = {arg for group in self.m.groups for arg in group.args}
        own_names = {self.names[symbols.vector(g.name).name] for g in self.m.gates.values() if g.is_pre}
        sole = {next(iter(g.members.values())): g.symbol.name for g in self.m.groups if len(g.members) == 1}
        owners: dict[str, set] = {}
        for key, value in self.names.items():
            if value is None:
                continue
            ref = symbols.read(sympy.Symbol(key)) if "/" in key or "[" in key else None
            if key in own_names or (ref is not None and ref.role == "value" and value in own_names):
                role = "vector " + value
            elif value in args and not key.startswith(("delta:", "piece:", "adj:")) and ref is None:
                role = "argument"
            elif key.startswith("stack:") or (self.m.fast and value == "da"):
                role = "stack"  # one gate: its delta is the whole stacked delta
            elif key.startswith("piece:") and value in own_names:
                role = "vector " + value  # q = P: the block of a is q itself
            elif key.startswith("arg:dnext_") or (ref is not None and ref.role == "adjoint"):
                role = "adjoint " + value.removesuffix("_total")
            else:
                role = sole.get(key, key)
            owners.setdefault(value, set()).add(role)
        clashes = sorted(name for name, roles in owners.items() if len(roles) > 1)
        if clashes:
            self.m._fail("two quantities would share the Python name {}".format(", ".join(clashes)))
        helpers = set(_user_functions(self.cell))
        module_names = TEMPLATE_NAMES | {self.py[self.cell.output] + "0"}
        taken = sorted(((set(owners) | helpers) & module_names) | (set(owners) & helpers))
        if taken:
            self.m._fail("the Python name {} is already used by the generated code (array sizes, loop "
                         "variables, helpers): rename it in the cell file".format(", ".join(taken)))

    def _print(self, expr: sympy.Expr) -> str:
        return print_numpy(expr, self.names, self.transposed)

    def _fast_piece(self, gate: _Gate) -> str:
        """The name of a gate's block of a: a_f; the quantity itself when its equation is q = P."""
        if gate.is_pre:
            return gate.py
        return "a" if len(self.m.gates) == 1 else "a_" + gate.py

    def _pieces(self):
        """(members, symbol, gate, group): the sums of one gate's pre-activation that get a name."""
        m, out = self.m, []
        if m.fast:
            for gate in m.gates.values():
                members = frozenset(m._member_expr(g, gate.name) for g in m.groups
                                    if g.kind != "diagonal" and gate.name in g.members)
                out.append((members, _tag("piece", "a_" + gate.py), gate.name, None))
            return out
        for group in m.groups:
            if group.kind != "matrix":
                continue
            for gate in group.members:
                members = {m._member_expr(group, gate)}
                fused = m.matrix_fusion.get((group.vkey, gate))
                if fused is not None:
                    members.add(symbols.parameter(fused))
                name = m._piece_name(group, gate)
                self.names[_tag("piece", name).name] = name
                out.append((frozenset(members), _tag("piece", name), gate, group))
        return out

    def _substitute(self, expr: sympy.Expr, track: bool = True, only=None) -> sympy.Expr:
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
                terms = _flat_sum(e)
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
    def _normalize(self, term: Term, wrt: sympy.Expr, within: bool):
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
                self.m._fail("a chain-rule term has an unexpected form")
            factors[0] = _tag("adj", path[offset])
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
            inner = m._inner(gate, nxt)
            if not _same(factors[j + 1], gate.slope * inner):
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

    def _gate_delta(self, gate: _Gate) -> tuple[sympy.Expr, list]:
        """dq = (sum of the paths into q) * act'(P), from the terms of one of the gate's parameters."""
        param = gate.params[0]
        terms = [t for t in self.m.d.step[param].terms if t.via == gate.name]
        prefixes = self._collapsed(terms, symbols.parameter(param), complete=False)
        if len(prefixes) == 1:
            return _product([*prefixes[0][1], gate.slope]), prefixes
        return _product([total(_product(p[1]) for p in prefixes), gate.slope]), prefixes

    def _member_delta(self, group: _Group, gate: str, delta_first: bool = False) -> sympy.Expr:
        """dL/d(the member's share of P), (N, H): the gate's delta times dP/d(W v) or dP/db (r * dn for
        GRU's W_h^n); `delta_first` prints the delta first (dn * r), as a bias's gradient reads."""
        g = self.m.gates[gate]
        inner = self.m._inner(g, self.m._member_expr(group, gate))
        if inner == 1:
            return g.delta
        return _product([g.delta, inner] if delta_first else [inner, g.delta])

    def _check_parameter(self, group: _Group, gate: str):
        """The derivation's gradient of each parameter is the block's delta (times v^T for a matrix)."""
        param = group.members[gate]
        wrt = symbols.parameter(param)
        got = self._collapsed(self.m.d.step[param].terms, wrt)
        g = self.m.gates[gate]
        inner = self.m._inner(g, self.m._member_expr(group, gate))
        expected = (g.delta,) + ((inner,) if inner != 1 else ())
        if len(got) != 1 or got[0][1] != expected:
            self.m._fail(f"the gradient of {param} is not the delta of gate {gate}")

    def _vector_gradient(self, terms, wrt, within=False):
        """Sum of W^T-products (one per group, stacked) and elementwise terms; also the vias for comments."""
        parts, covered, vias = [], {}, []
        for path, factors, form, target, _via in self._collapsed(terms, wrt, within):
            if form == "transposed":
                matrix = target.args[0]
                group = next(g for g in self.m.groups if g.kind == "matrix" and matrix.name in g.members.values())
                gate = next(q for q, p in group.members.items() if p == matrix.name)
                expected = self._member_delta(group, gate)
                if not _same(_product(factors), expected):
                    self.m._fail(f"the gradient through {matrix} is not the delta of gate {gate}")
                if group.key not in covered:
                    covered[group.key] = set()
                    parts.append(("group", group))
                    vias.append(("group", group))
                covered[group.key].add(gate)
            else:
                parts.append(("term", _product(factors)))
                vias.append(("path", path))
        for kind, item in parts:
            if kind == "group" and covered[item.key] != set(item.members):
                self.m._fail(f"the gradient of {wrt} does not reach every block of {item.key}")
        expr = total([TDot(item.symbol, _tag("stack", item.key)) if kind == "group" else item for kind, item in parts])
        return expr, vias

    # ---- backward lines ------------------------------------------------------------------
    def _backward_lines(self) -> list[_Line]:
        m, cell, lines = self.m, self.cell, []
        # gradients reaching the states from inside the step
        for state in cell.states:
            if not m.d.within_step[state]:
                continue
            expr, vias = self._vector_gradient(m.d.within_step[state], symbols.vector(state), within=True)
            lines.append(_Line(self.names[symbols.vector(state, role="adjoint").name],
                               total([_tag("arg", "dnext_" + self.py[state]), expr]), "total:" + state, vias))
        # intermediates multiplied by a matrix: their gradient through it
        for group in m.groups:
            if group.kind == "matrix":
                ref = symbols.read(group.vector)
                if _tag("adj", ref.name).name in self.names:
                    lines.append(_Line(self.names[_tag("adj", ref.name).name],
                                       TDot(group.symbol, _tag("stack", group.key)), "adj:" + ref.name,
                                       [("group", group)]))
        # one delta per gate
        for gate in m.gates.values():
            expr, prefixes = self._gate_delta(gate)
            lines.append(_Line(self.names[gate.delta.name], expr, "gate:" + gate.name,
                               [("path", p[0]) for p in prefixes] + [("path", (gate.name,))]))
        for group in m.groups:
            for gate in group.members:
                self._check_parameter(group, gate)
        results, vector_lines, inline = {}, {}, {}
        for name in cell.step_inputs:
            target = "d" + self.py[name] if name == cell.input else "dprev_" + self.py[name]
            wrt = symbols.vector(name) if name == cell.input else symbols.vector(name, "t-1")
            if name not in m.d.step:
                reference = self.names[wrt.name]
                vector_lines[name] = _Line(target, None, "vec:" + name, f"{reference} does not enter this step",
                                           f"np.zeros_like({reference})")
                continue
            expr, vias = self._vector_gradient(m.d.step[name].terms, wrt)
            vector_lines[name] = _Line(target, expr, "vec:" + name, vias)
        # per matrix group: stacked delta, vector gradient through it alone, weight gradient, fused bias
        for group in m.groups:
            if group.kind != "matrix":
                continue
            block = "stacked" if m.fast else "group:" + group.key
            deltas = [self._member_delta(group, g) for g in group.members]
            stack = _tag("stack", group.key)
            if m.fast and group is not m.groups[0]:
                pass  # one stacked delta, da, serves every group
            elif len(deltas) > 1 or not (deltas[0].is_Symbol or m.layout == "per-gate"):
                lines.append(_Line(self.names[stack.name], Stack(*deltas) if len(deltas) > 1 else deltas[0],
                                   block, [("group", group)]))
            else:
                self.names[stack.name] = None  # no line: the stacked delta is the one delta itself
                inline[stack] = deltas[0]
            for name, line in list(vector_lines.items()):
                if line.expr is not None and line.expr == TDot(group.symbol, stack) or (
                        m.fast and line.expr is not None and _only_groups(line.expr)):
                    line.block = block
                    lines.append(vector_lines.pop(name))
            lines.append(self._param_line("d" + group.args[0], WeightGradient(group.symbol, stack, group.vector),
                                          block, group))
            if m.fast and group is [g for g in m.groups if g.kind == "matrix"][-1]:
                for bias in [g for g in m.groups if g.kind == "bias"]:
                    for target, expr in self._bias_gradient(bias, BatchSum(_tag("stack", m.groups[0].key))):
                        lines.append(_Line(target, expr, block, [("group", group)]))
                    results[bias.key] = True
            if group.fused is not None:
                bias = group.fused
                for target, expr in self._bias_gradient(bias, BatchSum(stack)):
                    lines.append(_Line(target, expr, block, [("group", group)]))
                results[bias.key] = True
        lines.extend(vector_lines.values())
        for group in m.groups:
            if group.kind == "matrix" or group.key in results:
                continue
            deltas = [self._member_delta(group, gate, delta_first=True) for gate in group.members]
            expr = BatchSum(Stack(*deltas) if len(deltas) > 1 else deltas[0])
            for target, e in self._bias_gradient(group, expr):
                lines.append(self._param_line(target, e, "params:" + group.key, group))
        if m.layout == "per-gate":  # the gradients of one gate's parameters side by side
            gates = list(m.gates)
            params = sorted([line for line in lines if line.block.startswith("gate-params:")],
                            key=lambda line: gates.index(line.block.split(":", 1)[1]))
            lines = [line for line in lines if not line.block.startswith("gate-params:")] + params
        for line in lines:
            if isinstance(line.expr, sympy.Basic):
                line.expr = self._substitute(line.expr.xreplace(inline))
        return self._sorted(lines)

    def _param_line(self, target, expr, block, group) -> _Line:
        if self.m.layout == "per-gate":
            gate = next(iter(group.members))
            return _Line(target, expr, "gate-params:" + gate, [("params", group)])
        return _Line(target, expr, block, [("group", group)] if group.kind == "matrix" else [("params", group)])

    def _bias_gradient(self, group: _Group, expr):
        out = [("d" + group.args[0], expr)]
        for arg in group.args[1:]:  # torch: b = bias_ih + bias_hh, both get dL/db
            out.append(("d" + arg, "d{}.copy()".format(group.args[0])))
        return out

    def _sorted(self, lines: list[_Line]) -> list[_Line]:
        """The lines in their given order, each moved after the lines it reads."""
        for line in lines:
            if isinstance(line.expr, str):
                line.text, line.expr = line.expr, None
        defined = {line.target for line in lines}
        reads = {}
        for line in lines:
            names = set()
            if line.expr is not None:
                names = {self.names.get(s.name) for s in line.expr.free_symbols}
            elif line.text:
                names = set(re.findall(r"\w+", line.text))
            reads[id(line)] = (names & defined) - {line.target}
        done, out, pending = set(), [], list(lines)
        while pending:
            for line in pending:
                if reads[id(line)] <= done:
                    out.append(line)
                    done.add(line.target)
                    pending.remove(line)
                    break
            else:
                self.m._fail("the backward lines depend on each other in a cycle")
        return out

    # ---- forward lines ------------------------------------------------------------------
    def _forward_lines(self) -> list[str]:
        """The step forward's lines; also records which locals exist (for the cache)."""
        m, cell = self.m, self.cell
        lines, self.split_text, self.group_text = [], {}, {}
        # named pre-activations that the backward pass reads (e.g. inside a relu's step function)
        needed = set()
        for line in self.backward:
            if line.expr is not None:
                needed |= {s for s in line.expr.free_symbols}
        if m.fast:
            pieces = [self._fast_piece(m.gates[g]) for g in m.block_order]
            product_ = total([Dot(g.symbol, g.vector) if g.kind == "matrix" else g.symbol
                              for g in m.groups if g.kind != "diagonal"])
            lines.append("{} = {}".format("a" if len(pieces) > 1 else pieces[0], self._print(product_)))
            text = lines[-1]
            if len(pieces) > 1:
                lines.append("{} = np.split(a, {}, axis=1)".format(", ".join(pieces), len(pieces)))
                text += ", split into " + ", ".join(pieces)
            for group in m.groups:  # every matrix group's comment quotes the one product
                if group.kind == "matrix":
                    self.group_text[group.key] = text
            for g in m.block_order:
                self.forward_defs[self._fast_piece(m.gates[g])] = ("(N, H)", f"pre-activation of {g}")
        for group in m.groups:  # elementwise groups: split into per-gate vectors
            if group.kind == "matrix" or m.layout == "per-gate":
                continue
            if len(group.args) > 1:
                lines.insert(0, "{} = {}".format(group.key, " + ".join(group.args)))
                self.forward_defs[group.key] = ("({},)".format(m._width(group)), "bias_ih + bias_hh")
            if len(group.members) > 1 and not (m.fast and group.kind == "bias") and not (
                    group.kind == "bias" and any(g.fused is group for g in m.groups)):
                names = [self.py[p] for p in group.members.values()]
                self.split_text[group.key] = "{} = np.split({}, {})".format(
                    ", ".join(names), self.names[group.symbol.name], len(names))
                lines.append(self.split_text[group.key])
                for gate, p in group.members.items():
                    self.forward_defs[self.py[p]] = ("(H,)", f"{p}, the block of gate {gate}")
        group_lines = {}
        if not m.fast:
            for group in m.groups:
                if group.kind != "matrix":
                    continue
                mine = [p for p in self.pieces if p[3] is group]
                if m.layout == "per-gate":
                    mine = [p for p in mine if p[1] in self.used_pieces]
                    for members, sym, gate, _ in mine:
                        name = sym.name.split(":", 1)[1]
                        group_lines.setdefault(gate, []).append(f"{name} = {self._print(total(sorted(members, key=_dot_first)))}")
                        self.forward_defs[name] = ("(N, H)", f"the part of {gate}'s pre-activation from {group.vkey}")
                    continue
                product_ = total([Dot(group.symbol, group.vector)] + ([group.fused.symbol] if group.fused else []))
                order = [eq.target for eq in cell.equations]
                first = min(group.members, key=order.index)
                stacked = "g" + group.vkey
                if len(mine) > 1:
                    text = [f"{stacked} = {self._print(product_)}",
                            "{} = np.split({}, {}, axis=1)".format(", ".join(p[1].name.split(":", 1)[1] for p in mine),
                                                                   stacked, len(mine))]
                    self.forward_defs[stacked] = (f"(N, {m._width(group)})", f"{group.key} times {group.vkey}")
                else:
                    text = ["{} = {}".format(mine[0][1].name.split(":", 1)[1], self._print(product_))]
                for _members, sym, gate, _ in mine:
                    self.forward_defs[sym.name.split(":", 1)[1]] = ("(N, H)", f"the part of {gate}'s pre-activation from {group.vkey}")
                group_lines.setdefault(first, []).extend(text)
                self.group_text[group.key] = text[0] + (", split into " + ", ".join(p[1].name.split(":", 1)[1] for p in mine)
                                                        if len(mine) > 1 else "")
        self.equation_text = {}
        for eq in cell.equations:
            lines.extend(group_lines.get(eq.target, []))
            target = self.names[symbols.vector(eq.target).name]
            only = self.used_pieces if m.layout == "per-gate" else None
            line = f"{target} = {self._print(self._substitute(eq.written, track=False, only=only))}"
            if line.split(" = ", 1)[1] != target:  # q = P where P is already named q
                lines.append(line)
                self.equation_text[eq.target] = line
            self.forward_defs.setdefault(target, ("(N, H)", self._role(eq.target)))
        return lines

    def _role(self, name: str) -> str:
        if name in self.cell.states:
            return f"state {name} at t"
        return f"gate {name}" if name in self.m.gates else f"{name} at t"

    # ---- comments --------------------------------------------------------------------
    def _comment(self, vias) -> str:
        if isinstance(vias, str):
            return vias
        if len(vias) == 1 and vias[0][0] in ("group", "params"):  # a block of parameters: quote their use
            return self._comment_texts(vias)[0]
        return "through " + " and ".join(self._comment_texts(vias))

    def _comment_texts(self, vias) -> list[str]:
        texts = []
        for kind, item in vias:
            if kind == "group":
                candidates = [self.group_text.get(item.key) or self._per_gate_text(item)]
            elif kind == "params":
                candidates = [self._params_text(item)]
            else:
                candidates = [self.equation_text[name] for name in reversed(item) if name in self.equation_text]
            for text in candidates:
                if text not in texts:
                    texts.append(text)
        return texts

    def _per_gate_text(self, group: _Group) -> str:
        gate = next(iter(group.members))
        return self.equation_text.get(gate, gate)

    def _params_text(self, group: _Group) -> str:
        """A per-gate parameter: its gate's equation; a stacked vector: how the forward pass splits it."""
        if self.m.layout == "per-gate":
            return self.equation_text[next(iter(group.members))]
        return self.split_text.get(group.key) or self.equation_text[next(iter(group.members))]

    # ---- context -----------------------------------------------------------------------
    def context(self) -> dict:
        m, cell, py = self.m, self.cell, self.py
        camel = "".join(part.capitalize() for part in m.prefix.split("_"))
        x, output = py[cell.input], py[cell.output]
        states = [py[s] for s in cell.states]
        input_group = next(g for g in m.groups if g.kind == "matrix" and symbols.read(g.vector).name == cell.input)
        params = []
        for group in m.groups:
            for arg in group.args:
                params.append({"name": arg, "shape": self._shape(group), "ndim": 1 if group.kind != "matrix" else 2,
                               "about": self._describe(group, arg)})
        param_names = [p["name"] for p in params]
        upstream = {s: symbols.vector(s, role="upstream") in m.d.state_total(s).free_symbols for s in cell.states}

        cached = {x: "input", **{"prev_" + py[s]: f"state {s} at t-1" for s in cell.states}}
        width = m.input_width
        step_args = ([{"name": x, "shape": f"(N, {width})", "ndim": 2, "about": "input at step t"}]
                     + [{"name": "prev_" + py[s], "shape": "(N, H)", "ndim": 2, "about": f"state {s} at step t-1"}
                        for s in cell.states] + params)
        step_returns = [{"name": "next_" + py[s], "shape": "(N, H)", "about": f"state {s} at step t"}
                        for s in cell.states]
        gradient_args = [{"name": "dnext_" + py[s], "shape": "(N, H)", "ndim": 2,
                          "about": "dL/d{}_t {}".format(s, "from the layers above and from step t+1" if upstream[s]
                                                     else "from step t+1")} for s in cell.states]
        results = ["d" + x] + ["dprev_" + s for s in states] + ["d" + p for p in param_names]
        gradient_returns = ([{"name": results[0], "shape": f"(N, {width})", "about": f"dL/d{cell.input}_t"}]
                            + [{"name": "dprev_" + py[s], "shape": "(N, H)", "about": f"dL/d{s}_{{t-1}}"}
                               for s in cell.states]
                            + [{"name": "d" + p["name"], "shape": p["shape"], "about": "dL/d" + p["name"]}
                               for p in params])

        # the cache: what the backward lines read, in the order of the arguments, then of the forward locals
        reads = {x, self.names[input_group.symbol.name]}
        for line in self.backward:
            if line.expr is not None:
                reads |= {self.names[s.name] for s in line.expr.free_symbols if self.names.get(s.name)}
            elif line.text:
                reads |= set(re.findall(r"\w+", line.text))
        defined_back = {line.target for line in self.backward} | {a["name"] for a in gradient_args}
        fields = []
        for arg in step_args:
            if arg["name"] in reads:
                fields.append({"name": arg["name"], "shape": arg["shape"],
                               "about": cached.get(arg["name"], arg["about"])})
        for name, (shape, about) in self.forward_defs.items():
            if name in reads and name not in defined_back and name not in [f["name"] for f in fields]:
                fields.append({"name": name, "shape": shape, "about": about})
        missing = reads - defined_back - {f["name"] for f in fields} - {"np", "copy"}
        missing = {n for n in missing if not n.startswith("d")} | (missing & set(self.forward_defs))
        if missing:
            self.m._fail("the backward pass reads {} which the forward pass does not keep".format(", ".join(sorted(missing))))

        blocks = []
        for line in self.backward:
            text = line.text or self._print(line.expr)
            comment = self._comment(line.comment)
            if blocks and blocks[-1]["key"] == line.block and not line.block.startswith(("gate:", "total:")):
                blocks[-1]["lines"].extend(_statement("    ", line.target, text))
            else:
                blocks.append({"key": line.block, "comment": comment, "lines": _statement("    ", line.target, text)})

        dims = self._dims(input_group)

        def size_d(owner: str) -> list[str]:
            """The line that reads D, if anything uses D (an input of width H does not)."""
            return [f"D = {owner}{dims['D']}"] if width == "D" else []

        initial = {s: output + "0" if s == cell.output else None for s in cell.states}
        seq_args = ([{"name": x, "shape": f"(N, T, {width})", "ndim": 3, "about": "inputs of every step"},
                     {"name": output + "0", "shape": "(N, H)", "ndim": 2, "about": f"initial state {cell.output}"}]
                    + params)
        initial_lines = ["prev_{} = {}".format(py[s], initial[s] or "np.zeros((N, H), dtype=dtype)") for s in cell.states]
        starts = ", ".join(f"{s}_0 = {initial[s] or 0}" for s in cell.states)

        recurrence = []
        for state in cell.states:
            parts = [sympy.Symbol("dprev_" + py[state])]
            if upstream[state]:
                parts.insert(0, symbols.vector(state, role="upstream"))
            names = {p.name: p.name for p in parts}
            names[symbols.vector(state, role="upstream").name] = f"d{py[state]}[:, t, :]"
            recurrence.append(f"dnext_{py[state]} = {print_numpy(total(parts), names)}")
        step_results = ([results[0] + "_t"] + results[1:1 + len(states)]
                        + [name + "_t" for name in results[1 + len(states):]])
        seq_names = [a["name"] for a in seq_args]
        step_call_args = [f"{x}[:, t, :]"] + ["prev_" + s for s in states] + param_names
        code = {  # the lines whose length decides their layout
            "step_forward_def": _bracketed("", f"def {m.prefix}_step_forward(", [a["name"] for a in step_args], "):"),
            "cache": _bracketed("    ", f"cache = {camel}StepCache(", [f"{f['name']}={f['name']}" for f in fields], ")"),
            "unpack": _unpack("    ", [f["name"] for f in fields], "cache"),
            "step_backward_return": _return("    ", [r["name"] for r in gradient_returns]),
            "forward_def": _bracketed("", f"def {m.prefix}_forward(", seq_names, "):"),
            "dtype": _bracketed("    ", "dtype = np.result_type(", seq_names, ")"),
            "step_call": _assign_call("        ", ["next_" + s for s in states] + ["step_cache"],
                                      f"{m.prefix}_step_forward", step_call_args),
            "step_backward_call": _assign_call("        ", step_results, f"{m.prefix}_step_backward",
                                               [a["name"] for a in gradient_args] + ["cache.steps[t]"]),
            "backward_return": _return("    ", [results[0], "d" + output + "0"] + ["d" + n for n in param_names]),
        }
        return {
            "code": code,
            "template": TEMPLATE,
            "title": cell.title,
            "layout_title": TITLES[m.layout],
            "prefix": m.prefix,
            "step_cache_class": camel + "StepCache",
            "cache_class": camel + "Cache",
            "layout_notes": self._layout_notes(),
            "helpers": self._helpers(),
            "doc_equations": self.forward,
            "step_args": step_args,
            "step_dims": [f"N = {x}.shape[0]", *size_d(""), f"H = prev_{output}.shape[1]"],
            "forward_lines": self.forward,
            "step_returns": step_returns,
            "cache_fields": fields,
            "gradient_args": gradient_args,
            "backward_dims": [f"N = cache.{x}.shape[0]", f"H = cache.{dims['H']}"],
            "backward_blocks": [{"comment": b["comment"], "lines": b["lines"]} for b in blocks],
            "gradient_returns": gradient_returns,
            "input": x,
            "output": output,
            "seq_args": seq_args,
            "seq_dims": [f"N, T = {x}.shape[:2]", *size_d(""), f"H = {output}0.shape[1]"],
            "starts": starts,
            "initial_lines": initial_lines,
            "state_update": "{} = {}".format(", ".join("prev_" + s for s in states), ", ".join("next_" + s for s in states)),
            "seq_backward_dims": [f"N, T = first.{x}.shape[0], len(cache.steps)", *size_d("first."),
                                  f"H = first.{dims['H']}"],
            "accumulators": [r for r in gradient_returns if r["name"] in ["d" + n for n in param_names]],
            "state_gradients": ["dprev_" + s for s in states],
            "recurrence": recurrence,
            "input_gradient": results[0],
            "seq_input_shape": seq_args[0]["shape"],
        }

    def _dims(self, group: _Group) -> dict:
        """Python expressions for D and H read off the input's weights."""
        arg, blocks = group.args[0], len(group.members)
        per = f" // {blocks}" if blocks > 1 else ""
        if group.transposed:
            return {"D": f"{arg}.shape[1]", "H": f"{arg}.shape[0]{per}"}
        return {"D": f"{arg}.shape[0]", "H": f"{arg}.shape[1]{per}"}

    def _shape(self, group: _Group) -> str:
        width = self.m._width(group)
        if group.kind != "matrix":
            return f"({width},)"
        return f"({width}, {group.rows})" if group.transposed else f"({group.rows}, {width})"

    def _describe(self, group: _Group, arg: str) -> str:
        blocks = self.m._blocks(group)
        if self.m.layout == "per-gate":
            param = next(iter(group.members.values()))
            applied = f", applied to {self.names[group.vector.name]}" if group.vector is not None else ""
            return f"{param} of gate {next(iter(group.members))}{applied}"
        what = {"bias": "bias", "diagonal": "diagonal (peephole) weights"}.get(group.kind)
        if what is None:
            what = f"weights applied to {self.names[group.vector.name]}"
        if len(group.args) > 1:
            what += " (added to the other bias)"
        if len(group.members) > 1:
            return f"{what}, gate blocks {blocks}"
        return f"{what} of gate {blocks}" if len(self.m.gates) > 1 else what

    def _layout_notes(self) -> list[str]:
        """The module docstring's paragraph on how the layout stores the parameters, ending in a blank
        line; none when every argument holds one parameter of the cs231n layout."""
        m = self.m
        if m.layout == "per-gate":
            return ["Every parameter is its own argument, named as in the derivation document; matrices",
                    "are stored (inputs, H), so that a batch of row vectors multiplies them from the left.", ""]
        if all(len(g.members) == 1 for g in m.groups):
            return []
        notes = ["Each argument below stores the parameters of several gates side by side along its",
                 "{} axis, one block of H per gate:".format("first" if m.layout == "torch" else "last"), ""]
        for group in m.groups:
            for arg in group.args:
                notes.append("    {} {}: {}  (gates {})".format(arg, self._shape(group), ", ".join(group.members.values()),
                                                             m._blocks(group)))
        if m.layout == "torch":
            notes += ["", "so that the arrays of a torch.nn module can be handed in as they are."]
            if any(len(g.args) > 1 for g in m.groups):
                notes += ["The cell has one bias per gate: it is bias_ih + bias_hh, and both get its gradient."]
        return notes + [""]

    def _helpers(self) -> list[dict]:
        """The functions the cell file defines, printed from their formulas."""
        found = _user_functions(self.cell)
        out = []
        for name in sorted(found):
            formula = found[name].formula
            variable = formula.variables[0]
            body = print_numpy(formula.expr, {variable.name: variable.name})
            out.append({"name": name, "arg": variable.name, "body": body})
        return out


# ============================================================================ line layout
LINE_LENGTH = 120  # ruff's line-length for the generated code (pyproject.toml)


def _fits(indent: str, text: str) -> bool:
    return len(indent) + len(text) <= LINE_LENGTH


def _bracketed(indent: str, head: str, items: list[str], tail: str) -> list[str]:
    """head item, item tail -- on one line, or split inside the brackets as ruff format does."""
    inner = indent + "    "
    joined = ", ".join(items)
    if _fits(indent, head + joined + tail):
        return [indent + head + joined + tail]
    if _fits(inner, joined):
        return [indent + head, inner + joined, indent + tail]
    return [indent + head] + [inner + item + "," for item in items] + [indent + tail]


def _assign_call(indent: str, targets: list[str], function: str, args: list[str]) -> list[str]:
    """targets = function(args), laid out as ruff format lays out a long assignment."""
    lhs, call = ", ".join(targets), "{}({})".format(function, ", ".join(args))
    if _fits(indent, f"{lhs} = {call}"):
        return [indent + f"{lhs} = {call}"]
    if _fits(indent, f"{lhs} = {function}("):
        return _bracketed(indent, f"{lhs} = {function}(", args, ")")
    if _fits(indent, f"{lhs} = (") and _fits(indent + "    ", call):
        return [indent + f"{lhs} = (", indent + "    " + call, indent + ")"]
    return _bracketed(indent, "(", targets, f") = {call}")


def _unpack(indent: str, targets: list[str], value: str) -> list[str]:
    text = ", ".join(targets) + ("," if len(targets) == 1 else "")
    if _fits(indent, f"{text} = {value}"):
        return [indent + f"{text} = {value}"]
    return _bracketed(indent, "(", targets, f") = {value}")


def _return(indent: str, values: list[str]) -> list[str]:
    if _fits(indent, "return " + ", ".join(values)):
        return [indent + "return " + ", ".join(values)]
    return _bracketed(indent, "return (", values, ")")


def _statement(indent: str, target: str, value: str) -> list[str]:
    """target = value; a long value split inside its last bracket pair (or wrapped in one), as ruff does."""
    line = f"{target} = {value}"
    if _fits(indent, line) or "#" in value:
        return [indent + line]
    inner = indent + "    "
    if value.endswith(")"):
        depth = 0
        for position in range(len(value) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(value[position], 0)
            if depth == 0:
                break
        head, body = value[:position + 1], value[position + 1:-1]
        if position > 0 and _fits(indent, f"{target} = {head}") and _fits(inner, body):
            return [indent + f"{target} = {head}", inner + body, indent + ")"]
    if _fits(inner, value):
        return [indent + f"{target} = (", inner + value, indent + ")"]
    return [indent + line]


def _only_groups(expr) -> bool:
    return all(isinstance(t, TDot) for t in _flat_sum(expr))


def _dot_first(expr) -> tuple:
    return (0 if isinstance(expr, Dot) else 1, str(expr))
