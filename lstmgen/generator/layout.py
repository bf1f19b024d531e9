"""How a cell's parameters become the arguments of the generated functions, in one of three layouts.

The layout only decides how parameters are stored and named, never the math:

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

Every gate is an equation  q = act(P)  whose pre-activation P holds its parameters (`Gate`); a
`Group` is one argument: the parameters of several gates stored side by side.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from .. import symbols
from ..errors import LayoutError, LstmgenError
from ..ir import Dot
from ..printing.numpy import identifier
from ..reverse import Derivation, is_parameter

LAYOUTS = ("cs231n", "torch", "per-gate")


def tag(kind: str, name: str) -> sympy.Symbol:
    """A symbol of the generated code (a delta, a piece, a group): never confused with the cell's own."""
    return sympy.Symbol(f"{kind}:{name}")


def _outside_products(expr: sympy.Expr, x: sympy.Symbol) -> bool:
    """`x` occurs in `expr` other than as the vector of a product W x (no rebuilding: x - x stays)."""
    if isinstance(expr, Dot):
        return False
    return expr == x or any(_outside_products(arg, x) for arg in expr.args)


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    return sympy.expand(a - b) == 0


@dataclass
class Gate:
    """An equation q = act(P) whose pre-activation P holds parameters."""

    name: str
    py: str
    pre: sympy.Expr           # P, canonical
    slope: sympy.Expr         # act'(P), written with q where possible (q * (1 - q)); 1 when q = P
    params: list[str]         # parameter names in P
    is_pre: bool              # the equation is q = P itself
    delta: sympy.Symbol | None = None  # dL/dP, named by CellLayout._name_gates once the layout is known


@dataclass
class Group:
    """One argument of the generated functions: the parameters stored side by side (or one parameter)."""

    key: str                       # Wx, Wh, Wr, b, bx, p ... (per-gate: the parameter's py name)
    kind: str                      # matrix, bias, diagonal
    members: dict[str, str]        # gate -> parameter name, in block order
    vector: sympy.Symbol | None = None  # what the matrices multiply
    vkey: str = ""                 # the vector's short name: x, h, r
    rows: str = "H"                # D for the input's matrices
    fused: "Group | None" = None  # the bias group added to this matrix group's product
    args: list[str] = field(default_factory=list)  # argument name(s) in the generated functions
    transposed: bool = False       # stored (G*H, rows) as in PyTorch

    @property
    def symbol(self) -> sympy.Symbol:
        return tag("group", self.key)


class CellLayout:
    """A derivation's cell read into gates and argument groups in one layout.

    gates   {equation target: Gate}, in block order
    groups  the arguments' groups, in argument order
    fast    every gate's pre-activation is one block of a = x @ Wx + prev_h @ Wh + b
    """

    def __init__(self, derivation: Derivation, layout: str):
        if layout not in LAYOUTS:
            raise LstmgenError("unknown layout {!r}: use one of {}".format(layout, ", ".join(LAYOUTS)))
        self.d = derivation
        self.cell = cell = derivation.cell
        self.layout = layout
        self.prefix = re.sub(r"\W", "_", cell.name).lower()
        self.py = {name: identifier(q.py) for name, q in cell.quantities.items()}
        self.eq = {eq.target: eq for eq in cell.equations}
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
    def fail(self, message: str):
        raise LayoutError(f"cell {self.cell.name} does not fit the {self.layout} layout: {message}")

    def _gates(self) -> dict[str, Gate]:
        """Every equation with parameters, in block order: the cell file's gate order, then the others."""
        cell, found = self.cell, {}
        for eq in cell.equations:
            fact = self.d.pre_activations.get(eq.target)
            if fact is None:
                continue
            params = sorted({s.name for s in eq.rhs.free_symbols if is_parameter(cell, s)})
            found[eq.target] = Gate(eq.target, self.py[eq.target], fact.pre, fact.slope, params, fact.is_pre)
        for name in list(found):
            for other in found:
                if other != name and set(found[name].params) & set(found[other].params):
                    self.fail(f"a parameter of {name} is also used by {other}")

        def rank(name):
            owner = self._owner(name)
            position = [eq.target for eq in cell.equations].index(name)
            return (cell.gate_order.index(owner), position) if owner else (len(cell.gate_order), position)

        return {name: found[name] for name in sorted(found, key=rank)}

    def _owner(self, name: str) -> str | None:
        """The gate of the cell file's gate order that the equation `name` is the gate of: itself, or
        the listed gate that reads it (g for the a^g that g = gelu(a^g) names); None for neither."""
        order = self.cell.gate_order
        if name in order:
            return name
        return next((g for g in order if self.eq[g].rhs.has(symbols.vector(name))), None)

    def _input_width(self) -> str:
        """D; H when the input also enters elementwise (a residual ... + x): then the shape checks of x
        and of its matrices say so, instead of NumPy failing to broadcast x against a state."""
        x = symbols.vector(self.cell.input)
        elementwise = any(_outside_products(form, x)  # as written too: x - x prints, though it cancels
                          for eq in self.cell.equations for form in (eq.rhs, eq.written))
        return "H" if elementwise else "D"

    def _vector_key(self, vec: sympy.Symbol) -> str:
        return self.py[symbols.read(vec).name]

    def _groups(self) -> list[Group]:
        """The cs231n groups in argument order: matrices by vector, then biases, then diagonals."""
        cell = self.cell
        matrices: dict[sympy.Symbol, Group] = {}
        elementwise: dict[str, Group] = {}
        for gate in self.gates.values():
            for dot in sorted(gate.pre.atoms(Dot), key=str):
                matrix, vec = dot.args
                ref = symbols.read(vec)
                key = self._vector_key(vec)
                group = matrices.setdefault(vec, Group("W" + key, "matrix", {}, vec, key,
                                                        self.input_width if ref.name == cell.input else "H"))
                if gate.name in group.members:
                    self.fail(f"gate {gate.name} has two matrices multiplying {vec}")
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
                key = identifier(base.replace("_", ""))  # a Python name (lambda_ for a bias lambda)
                group = elementwise.setdefault(key, Group(key, kind, {}))
                if group.kind != kind:
                    self.fail(f"{name} is a {kind} but other parameters named {key} are not")
                if gate.name in group.members:
                    self.fail(f"gate {gate.name} has two parameters grouped as {key}")
                group.members[gate.name] = name
        if symbols.vector(cell.input) not in matrices:
            self.fail(f"no gate multiplies the input {cell.input}")
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

    def inner(self, gate: Gate, wrt: sympy.Expr) -> sympy.Expr:
        """dP/dwrt for a symbol or a product Dot(W, v) inside the gate's pre-activation, as the derivation says."""
        return self.d.pre_activations[gate.name].inner(wrt)

    def member_expr(self, group: Group, gate: str) -> sympy.Expr:
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
            if all(same(self.inner(self.gates[q], self.member_expr(partner, q)),
                         self.inner(self.gates[q], self.member_expr(bias, q))) for q in bias.members):
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
                if self.inner(self.gates[gate], self.member_expr(group, gate)) != 1:
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
            # the order names the cell file's gates; a block is the gate's own or its pre-activation's (a^g of g)
            owners = {self._owner(gate) or gate: gate for gate in self.gates}
            order = cell.layout_orders.get("torch") or (list(owners) if len(self.gates) == 1 else None)
            if not order:
                raise LayoutError(f"cell {cell.name} has no torch gate order (a line `order torch ...` in its "
                                  "cell file): PyTorch has modules only for LSTM, GRU and RNN")
            if len(owners) != len(self.gates) or sorted(order) != sorted(owners):
                self.fail("the torch order must name the gates " + " ".join(owners) + " (one block each)")
            self.block_order = [owners[gate] for gate in order]
            names = {cell.input: "ih", cell.output: "hh"}
            for group in self.groups:
                if list(sorted(group.members)) != sorted(self.gates):
                    self.fail(f"{group.key} does not have a block for every gate")
                if group.kind == "matrix":
                    ref = symbols.read(group.vector)
                    if ref.name not in names or (ref.name != cell.input and ref.time != "t-1"):
                        self.fail(f"PyTorch has no weight for {group.key}")
                    group.args, group.transposed = ["weight_" + names[ref.name]], True
                elif group.kind == "bias":
                    sub = group.key[1:]
                    owner = {self.py[cell.input]: "ih", self.py[cell.output]: "hh"}.get(sub)
                    if sub and owner is None:
                        self.fail(f"PyTorch has no bias for {group.key}")
                    group.args = ["bias_" + owner] if sub else ["bias_ih", "bias_hh"]
                else:
                    self.fail(f"PyTorch has no diagonal weights such as {group.key}")
            if [arg for group in self.groups for arg in group.args] != ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
                self.fail("PyTorch's arguments are weight_ih, weight_hh, bias_ih and bias_hh")
        else:  # per-gate: every parameter its own argument
            split = []
            for group in self.groups:
                for gate, param in group.members.items():
                    one = Group(self.py[param], group.kind, {gate: param}, group.vector, group.vkey, group.rows)
                    one.args = [one.key]
                    split.append(one)
            self.groups = split
        for group in self.groups:
            group.members = {g: group.members[g] for g in self.block_order if g in group.members}

    def _name_gates(self):
        """df for gate f; da for the one gate of a single product, and da_h for a state's own
        pre-activation (dh is dL/dh, which the sequence functions take as an argument), likewise da_q
        for a gate that a matrix multiplies (dq is its gradient through the matrix)."""
        multiplied = {symbols.read(g.vector).name for g in self.groups if g.kind == "matrix"}
        taken = set()
        for gate in self.gates.values():
            if self.fast and len(self.gates) == 1:
                name = "da"
            elif gate.name in self.cell.states or gate.name in multiplied:
                name = "da_" + gate.py
            else:
                name = identifier("d" + gate.py)
            if name in taken:  # da_h of state h next to the delta of a pre-activation a^h
                name = "dpre_" + gate.py
            if name in taken:
                self.fail(f"the deltas of two gates would both be named {name}")
            taken.add(name)
            gate.delta = tag("delta", name)

    def is_intermediate(self, vec: sympy.Symbol) -> bool:
        """A vector at t that is neither the input nor a state (MGU's r = f * h[t-1])."""
        ref = symbols.read(vec)
        return ref.time == "t" and ref.name != self.cell.input and ref.name not in self.cell.states

    # ---- names ---------------------------------------------------------------------------------
    def width(self, group: Group) -> str:
        return "H" if len(group.members) == 1 else f"{len(group.members)} * H"

    def block_names(self, group: Group) -> str:
        return ", ".join(self.py[g] if not g.startswith("a^") else g for g in group.members)

    def piece_name(self, group: Group, gate: str) -> str:
        return "g{}_{}".format(group.vkey, self.py[gate])
