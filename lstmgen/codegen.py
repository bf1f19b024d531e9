"""Code generation: a cell's derivation as finished strings for the NumPy module template.

The CS231n layout (``cs231n``) is batch-major and stacks the gates: every gate of the cell must
read ``act(W_x^g x_t + W_h^g h_{t-1} + b^g)``, and its parameters are stored side by side, one
block per gate in ``cell.gate_order``, grouped by what they multiply:

* the matrices that multiply the input x  ->  ``Wx`` of shape (D, G*H)
* the matrices that multiply a state s    ->  ``Ws`` of shape (H, G*H)  (``Wh`` for h)
* the biases                              ->  ``b``  of shape (G*H,)

so one product ``a = x @ Wx + prev_h @ Wh + b`` gives every gate's pre-activation, and in the
backward pass one concatenation ``da`` of the gates' deltas gives every input and weight
gradient.  Each expression is printed from the derivation by `lstmgen.printing.numpy`; this
module only decides names and structure, and checks that the derivation has the stacked form.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy

from . import symbols
from .errors import LstmgenError
from .ir import Dot, Outer, TDot, total
from .printing.numpy import BatchSum, identifier, print_numpy
from .reverse import Derivation, Term

TEMPLATE = "numpy_module.py.j2"
LAYOUTS = ("cs231n",)


class LayoutError(LstmgenError):
    """A cell whose equations do not fit the requested weight layout."""


def module_context(derivation: Derivation, layout: str = "cs231n") -> dict:
    """Everything `templates/numpy_module.py.j2` fills in, for `derivation` in `layout`."""
    if layout not in LAYOUTS:
        raise LstmgenError("unknown layout {!r}: use one of {}".format(layout, ", ".join(LAYOUTS)))
    return _Cs231nModule(derivation).context()


# ======================================================================== the stacked layout
@dataclass
class _Group:
    """One stacked parameter: the per-gate parameters that multiply the same vector (or the biases)."""

    name: str                      # Python name in the generated code: Wx, Wh, b
    vector: sympy.Symbol | None    # what the matrices multiply (x[t], h[t-1]); None for the biases
    members: dict[str, str]        # gate -> the cell's parameter name (W_x^f)
    rows: str                      # the first axis: 'D' or 'H'; '' for the bias

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.name)


@dataclass
class _Gate:
    name: str                      # the quantity, e.g. 'g'
    preactivation: sympy.Expr      # the sum W_x x + W_h h[t-1] + b inside its equation
    a_name: str                    # the Python name of the pre-activation: a_g (or a)
    delta_name: str                # the Python name of dL/d(pre-activation): dg (or da)
    terms: list[Term]              # the chain-rule paths whose sum is the delta


class _Cs231nModule:
    """Reads a derivation into the strings of one NumPy module in the CS231n layout."""

    def __init__(self, derivation: Derivation):
        self.d = derivation
        self.cell = cell = derivation.cell
        self.prefix = re.sub(r"\W", "_", cell.name).lower()
        self.py = {name: identifier(q.py) for name, q in cell.quantities.items()}
        self.gate_names = list(cell.gate_order)
        self.stacked = len(self.gate_names) > 1
        self.width = f"{len(self.gate_names)} * H" if self.stacked else "H"
        self.groups = self._groups()
        self.gates = [self._gate(name) for name in self.gate_names]
        self.names = self._names()
        self.backward_reads: set[str] = set()  # Python names the step backward reads (filled by _assign)

    # ---- reading the cell ----------------------------------------------------------------
    def _fail(self, message: str):
        raise LayoutError(f"cell {self.cell.name} does not fit the cs231n layout: {message}")

    def _groups(self) -> list[_Group]:
        """The stacked parameters, in the order of the vectors they multiply (input, states), bias last."""
        cell = self.cell
        vectors = [symbols.vector(cell.input)] + [symbols.vector(s, "t-1") for s in cell.states]
        groups = {v: _Group("W" + self.py[symbols.read(v).name], v, {},
                            "D" if symbols.read(v).name == cell.input else "H") for v in vectors}
        bias = _Group("b", None, {}, "")
        gate_params = set()
        for gate in self.gate_names:
            rhs = cell.equation(gate).rhs
            for dot in sorted(rhs.atoms(Dot), key=str):
                matrix, vec = dot.args
                if vec not in groups:
                    self._fail(f"gate {gate} multiplies {vec}, which is neither the input nor a state at t-1")
                if gate in groups[vec].members:
                    self._fail(f"gate {gate} has two matrices multiplying {vec}")
                groups[vec].members[gate] = matrix.name
                gate_params.add(matrix.name)
            for sym in sorted(rhs.free_symbols, key=str):
                quantity = cell.quantities.get(sym.name)
                if quantity is None or not quantity.is_parameter or quantity.kind == "matrix":
                    continue
                if quantity.kind != "bias" or gate in bias.members:
                    self._fail(f"gate {gate} has a parameter {sym} besides one matrix per vector and one bias")
                bias.members[gate] = sym.name
                gate_params.add(sym.name)
        used = [g for g in groups.values() if g.members] + ([bias] if bias.members else [])
        for group in used:
            missing = [gate for gate in self.gate_names if gate not in group.members]
            if missing:
                self._fail("{} has no block for gate {}".format(group.name, ", ".join(missing)))
        others = [q.name for q in cell.parameters if q.name not in gate_params]
        if others:
            self._fail("parameter {} is outside the gates {}".format(", ".join(others), ", ".join(self.gate_names)))
        if not used or used[0].vector != symbols.vector(cell.input):
            self._fail(f"no gate multiplies the input {cell.input}")
        return used

    def _gate(self, gate: str) -> _Gate:
        """A gate's pre-activation and the chain-rule terms of its delta (shared by all its parameters)."""
        rhs = self.cell.equation(gate).rhs
        parts = {symbols.parameter(g.members[gate]) if g.vector is None
                 else Dot(symbols.parameter(g.members[gate]), g.vector) for g in self.groups}
        found = [node for node in sympy.preorder_traversal(rhs) if isinstance(node, sympy.Add) and set(node.args) == parts]
        if not found:
            self._fail("the equation of gate {} does not contain the sum {}".format(gate, " + ".join(sorted(map(str, parts)))))
        params = [g.members[gate] for g in self.groups]
        terms = self.d.step[params[0]].terms
        for name in params[1:]:
            if [(t.chain, t.factors) for t in self.d.step[name].terms] != [(t.chain, t.factors) for t in terms]:
                self._fail(f"the gradients of {params[0]} and {name} have different deltas")
        py = self.py[gate]
        if self.stacked:
            return _Gate(gate, found[0], "a_" + py, identifier("d" + py), terms)
        return _Gate(gate, found[0], "a", "da", terms)

    def _names(self) -> dict[str, str]:
        """SymPy symbol name -> Python name inside the step functions."""
        cell = self.cell
        names = {symbols.vector(cell.input).name: self.py[cell.input]}
        for state in cell.states:
            names[symbols.vector(state, "t-1").name] = "prev_" + self.py[state]
            names[symbols.vector(state).name] = "next_" + self.py[state]
            names[symbols.vector(state, role="adjoint").name] = self._state_adjoint(state)
        for eq in cell.equations:
            if eq.target not in cell.states:
                names[symbols.vector(eq.target).name] = self.py[eq.target]
        for gate in self.gates:
            names[gate.a_name] = gate.a_name
            names[gate.delta_name] = gate.delta_name
        for group in self.groups:
            names[group.name] = group.name
        names["da"] = "da"
        taken = list(names.values())
        clashes = sorted({n for n in taken if taken.count(n) > 1})
        if clashes:
            self._fail("two quantities would share the Python name {}".format(", ".join(clashes)))
        for state in cell.states:  # the argument that a state's total starts from (the total itself if none)
            names[self._incoming(state).name] = self._incoming(state).name
        return names

    def _state_adjoint(self, state: str) -> str:
        """dL/ds_t inside the step: the argument itself, or a total when consumers inside the step add to it."""
        base = "dnext_" + self.py[state]
        return base + "_total" if self.d.within_step[state] else base

    def _incoming(self, state: str) -> sympy.Symbol:
        """The step backward's argument for state s: dL/ds_t from above and from step t+1."""
        return sympy.Symbol("dnext_" + self.py[state])

    def _print(self, expr: sympy.Expr) -> str:
        return print_numpy(expr, self.names)

    # ---- forward -------------------------------------------------------------------------
    def _stacked_preactivation(self) -> sympy.Expr:
        return total([g.symbol if g.vector is None else Dot(g.symbol, g.vector) for g in self.groups])

    def _target(self, name: str) -> str:
        return self.names[symbols.vector(name).name]

    def forward_equations(self) -> list[str]:
        """The cell's equations in order, each gate reading its slice of the stacked pre-activation."""
        by_gate = {g.name: g for g in self.gates}
        lines = []
        for eq in self.cell.equations:
            rhs = eq.rhs if eq.target in by_gate else eq.written
            if eq.target in by_gate:
                gate = by_gate[eq.target]
                rhs = rhs.xreplace({gate.preactivation: sympy.Symbol(gate.a_name)})
            lines.append(f"{self._target(eq.target)} = {self._print(rhs)}")
        return lines

    def _forward(self) -> dict:
        preactivation = "a = " + self._print(self._stacked_preactivation())
        split = None
        if self.stacked:
            split = "{} = np.split(a, {}, axis=1)".format(", ".join(g.a_name for g in self.gates), len(self.gates))
        return {"preactivation": preactivation, "split": split, "equations": self.forward_equations()}

    # ---- backward ------------------------------------------------------------------------
    def _equation_text(self, name: str) -> str:
        """The forward equation of quantity `name` as the step forward writes it."""
        return dict(zip([eq.target for eq in self.cell.equations], self.forward_equations()))[name]

    def _assign(self, target: str, expr: sympy.Expr) -> str:
        """One line `target = expr` of the step backward; remembers what it reads, for the cache."""
        self.backward_reads |= {self.names[symbol.name] for symbol in expr.free_symbols}
        return f"{target} = {self._print(expr)}"

    def _chain_comment(self, terms: list[Term]) -> str:
        """The forward equations a delta passes through, innermost first: 'through i = sigmoid(a_i) and next_c = ...'.

        A term with chain (c, i) entering via i passes through c's equation (towards i) and i's own."""
        passed = []
        for term in terms:
            for name in reversed(term.chain[:-1] + (term.via,)):
                if name not in passed:
                    passed.append(name)
        return "through " + " and ".join(self._equation_text(name) for name in passed)

    def _state_totals(self) -> list[dict]:
        """dL/ds_t = dnext_s + what consumers inside the step pass back, for the states that have such consumers."""
        cell, within = self.cell, self.d.within_step
        pending = [s for s in cell.states if within[s]]
        ordered = []
        while pending:
            for state in pending:
                needs = {symbols.read(sym).name for term in within[state] for sym in term.delta.free_symbols
                         if symbols.read(sym) and symbols.read(sym).role == "adjoint"}
                if not needs & (set(pending) - {state}):
                    ordered.append(state)
                    pending.remove(state)
                    break
            else:
                self._fail("the within-step gradients of {} depend on each other".format(", ".join(pending)))
        blocks = []
        for state in ordered:
            expr = total([self._incoming(state)] + [term.expr() for term in within[state]])
            blocks.append({"comment": self._chain_comment(within[state]),
                           "lines": [self._assign(self._state_adjoint(state), expr)]})
        return blocks

    def _gate_deltas(self) -> list[dict]:
        return [{"comment": self._chain_comment(gate.terms),
                 "lines": [self._assign(gate.delta_name, total(t.delta for t in gate.terms))]}
                for gate in self.gates]

    def _vector_gradient(self, name: str) -> tuple[sympy.Expr, list[Term]]:
        """dL/dv for the input or a state at t-1: one stacked product per group, plus elementwise terms."""
        gradient = self.d.step.get(name)
        if gradient is None:
            return None, []
        group = next((g for g in self.groups if g.vector is not None and symbols.read(g.vector).name == name), None)
        through_gates = [t for t in gradient.terms if t.form == "transposed"]
        elementwise = [t for t in gradient.terms if t.form == "elementwise"]
        if len(through_gates) + len(elementwise) != len(gradient.terms):
            self._fail(f"dL/d{name} has a term that is neither elementwise nor W^T delta")
        parts = []
        if through_gates and group is None:
            self._fail(f"dL/d{name} comes through a matrix, but no gate multiplies {name}")
        if through_gates:
            for gate in self.gates:
                mine = [(t.chain, t.factors, t.operand.name) for t in through_gates if t.via == gate.name]
                expected = [(t.chain, t.factors, group.members[gate.name]) for t in gate.terms]
                if mine != expected:
                    self._fail(f"dL/d{name} does not reach gate {gate.name} through its {group.name} block")
            parts.append(TDot(group.symbol, sympy.Symbol("da")))
        parts.extend(t.expr() for t in elementwise)
        return total(parts), elementwise

    def _parameter_gradient(self, group: _Group) -> sympy.Expr:
        """dL/dW for a stacked matrix (v.T @ da) or the bias (da summed over the batch), checked per block."""
        form = "elementwise" if group.vector is None else "outer"
        for gate in self.gates:
            terms = self.d.step[group.members[gate.name]].terms
            if [(t.chain, t.factors, t.form, t.operand) for t in terms] != \
                    [(t.chain, t.factors, form, group.vector) for t in gate.terms]:
                self._fail(f"dL/d{group.members[gate.name]} is not the delta of gate {gate.name}")
        if group.vector is None:
            return BatchSum(sympy.Symbol("da"))
        return Outer(sympy.Symbol("da"), group.vector)

    def _gradient_names(self) -> list[str]:
        """The step backward's results: d(input), dprev_<state>..., d<group>..., in the order of the step inputs."""
        return (["d" + self.py[self.cell.input]] + ["dprev_" + self.py[s] for s in self.cell.states]
                + ["d" + g.name for g in self.groups])

    def _backward(self) -> dict:
        cell = self.cell
        stacked_lines, elementwise_blocks = [], []
        if self.stacked:
            stacked_lines.append("da = np.concatenate([{}], axis=1)".format(", ".join(g.delta_name for g in self.gates)))
        for name, target in zip(cell.step_inputs, self._gradient_names()):
            expr, elementwise = self._vector_gradient(name)
            if expr is None:
                reference = self.names[symbols.vector(name, "t-1").name]
                elementwise_blocks.append({"comment": f"{reference} does not enter this step",
                                           "lines": [f"{target} = np.zeros_like({reference})"]})
            elif elementwise:
                elementwise_blocks.append({"comment": self._chain_comment(elementwise),
                                           "lines": [self._assign(target, expr)]})
            else:
                stacked_lines.append(self._assign(target, expr))
        for group, target in zip(self.groups, self._gradient_names()[len(cell.step_inputs):]):
            stacked_lines.append(self._assign(target, self._parameter_gradient(group)))
        stacked_comment = "a = " + self._print(self._stacked_preactivation())
        if self.stacked:
            stacked_comment += ", split into " + ", ".join(g.a_name for g in self.gates)
        blocks = self._state_totals() + self._gate_deltas() + [{"comment": stacked_comment, "lines": stacked_lines}]
        return {"blocks": blocks + elementwise_blocks, "results": self._gradient_names()}

    def _cache_fields(self) -> list[dict]:
        """The values the step backward reads: input, previous states, weights, then the step's quantities."""
        cell = self.cell
        candidates = ([(self.py[cell.input], "(N, D)", "input")]
                      + [("prev_" + self.py[s], "(N, H)", f"state {s} at t-1") for s in cell.states]
                      + [(g.name, self._shape(g), self._describe(g)) for g in self.groups]
                      + [(self._target(eq.target), "(N, H)", self._role(eq.target)) for eq in cell.equations])
        return [{"name": n, "shape": s, "about": a} for n, s, a in candidates if n in self.backward_reads]

    # ---- shapes and docs -----------------------------------------------------------------
    def _shape(self, group: _Group) -> str:
        return f"({self.width},)" if group.vector is None else f"({group.rows}, {self.width})"

    def _describe(self, group: _Group) -> str:
        blocks = f", gate blocks {', '.join(self.gate_names)}" if self.stacked else ""
        if group.vector is None:
            return "bias" + blocks
        return f"weights applied to {self.names[group.vector.name]}{blocks}"

    def _role(self, name: str) -> str:
        if name in self.cell.states:
            return f"state {name} at t"
        return f"gate {name}" if name in self.gate_names else f"{name} at t"

    def context(self) -> dict:
        cell, py = self.cell, self.py
        forward, backward = self._forward(), self._backward()
        camel = "".join(part.capitalize() for part in self.prefix.split("_"))
        x, output = py[cell.input], py[cell.output]
        states = [py[s] for s in cell.states]
        input_matrix = self.groups[0].name  # Wx: its rows give D, its columns G * H
        blocks_per_h = f" // {len(self.gates)}" if self.stacked else ""
        params = [{"name": g.name, "shape": self._shape(g), "ndim": 1 if g.vector is None else 2,
                   "about": self._describe(g)} for g in self.groups]
        param_names = [p["name"] for p in params]
        upstream = {s: symbols.vector(s, role="upstream") in self.d.state_total(s).free_symbols for s in cell.states}

        step_args = ([{"name": x, "shape": "(N, D)", "ndim": 2, "about": "input at step t"}]
                     + [{"name": "prev_" + py[s], "shape": "(N, H)", "ndim": 2, "about": f"state {s} at step t-1"}
                        for s in cell.states] + params)
        step_returns = [{"name": "next_" + py[s], "shape": "(N, H)", "about": f"state {s} at step t"}
                        for s in cell.states]
        gradient_args = [{"name": "dnext_" + py[s], "shape": "(N, H)", "ndim": 2,
                          "about": "dL/d{}_t {}".format(s, "from the layers above and from step t+1" if upstream[s]
                                                     else "from step t+1")} for s in cell.states]
        results = backward["results"]
        gradient_returns = ([{"name": results[0], "shape": "(N, D)", "about": f"dL/d{cell.input}_t"}]
                            + [{"name": "dprev_" + py[s], "shape": "(N, H)", "about": f"dL/d{s}_{{t-1}}"}
                               for s in cell.states]
                            + [{"name": "d" + p["name"], "shape": p["shape"], "about": "dL/d" + p["name"]}
                               for p in params])

        initial = {s: output + "0" if s == cell.output else None for s in cell.states}
        seq_args = ([{"name": x, "shape": "(N, T, D)", "ndim": 3, "about": "inputs of every step"},
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
        fields = self._cache_fields()
        return {
            "template": TEMPLATE,
            "title": cell.title,
            "prefix": self.prefix,
            "step_cache_class": camel + "StepCache",
            "cache_class": camel + "Cache",
            "gates": ", ".join(self.gate_names),
            "stacked": self.stacked,
            "width": self.width,
            "doc_equations": [forward["preactivation"]] + ([forward["split"]] if forward["split"] else [])
            + forward["equations"],
            # one step, forward
            "step_args": step_args,

            "step_dims": [f"N = {x}.shape[0]", f"D = {input_matrix}.shape[0]", f"H = prev_{output}.shape[1]"],
            "forward_lines": [line for line in [forward["preactivation"], forward["split"]] if line]
            + forward["equations"],
            "step_returns": step_returns,
            "cache_fields": fields,
            # one step, backward
            "gradient_args": gradient_args,

            "backward_dims": [f"N = cache.{x}.shape[0]", f"H = cache.{input_matrix}.shape[1]{blocks_per_h}"],
            "unpack": ", ".join(f["name"] for f in fields),
            "backward_blocks": backward["blocks"],
            "gradient_returns": gradient_returns,
            # the sequence
            "input": x,
            "output": output,
            "seq_args": seq_args,

            "seq_dims": [f"N, T = {x}.shape[:2]", f"D = {input_matrix}.shape[0]", f"H = {output}0.shape[1]"],
            "starts": starts,
            "initial_lines": initial_lines,
            "param_names": param_names,
            "step_call_args": ", ".join([f"{x}[:, t, :]"] + ["prev_" + s for s in states] + param_names),
            "state_update": "{} = {}".format(", ".join("prev_" + s for s in states), ", ".join("next_" + s for s in states)),
            "next_states": ", ".join("next_" + s for s in states),
            "seq_backward_dims": [f"N, T = first.{x}.shape[0], len(cache.steps)", f"D = first.{input_matrix}.shape[0]",
                                  f"H = first.{input_matrix}.shape[1]{blocks_per_h}"],
            "accumulators": [r for r in gradient_returns if r["name"] in ["d" + n for n in param_names]],
            "state_gradients": ["dprev_" + s for s in states],
            "recurrence": recurrence,
            "step_results": step_results,
            "input_gradient": results[0],
        }
