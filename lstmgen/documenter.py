"""The derivation document's content: every formula of a cell's backward pass as finished LaTeX.

`document_context` walks a `reverse.Derivation` in the order of the seed document and hands the
templates (``templates/derivation.tex.j2`` / ``derivation.md.j2``) lists of display equations.
Part 1 is the step backward: the derivatives of the elementwise functions (from SymPy), the local
derivatives of every gate, the easy state gradients, one family of parameter gradients per gate
with the chain rule written out, and the gradients of the input and the previous states.  Part 2
is the full backward: the sums over t, the recurrences of the state gradients and their values at
t = 0.  Each display equation has rows: one row, or several rows of an aligned block (a chained
equality broken at its = signs, a long sum broken before each +).

Every notation option (`printing.latex.Style`) prints the same derivation.  The compact style reads
the backward program of `generator.program` (its per-gate layout) instead of the chain rule: each
gate's delta, the gradient of L with respect to its pre-activation, is named once (δ^f_t = ...) and
every parameter and vector gradient is written with the deltas, as the generated code computes it.
"""
from __future__ import annotations

import sympy
from sympy.core.function import Application

from . import ir, symbols
from .errors import LstmgenError
from .generator.layout import CellLayout, tag
from .generator.program import build, dparam_tag, flat_sum, incoming
from .ir import TDot
from .printing.latex import DEFAULT_STYLE, HADAMARD, LOSS, Style, chain_product, derivative, latex, latex_terms
from .rules import local_derivative

THETA = sympy.Symbol("theta", real=True)
X = sympy.Symbol("x")  # the prose's example of a transpose
_MATRIX_FORMS = (ir.Dot, ir.TDot, ir.Outer, ir.SumOverTime, ir.Transpose, ir.MatMul)
# a sum whose LaTeX source is longer than this is broken into one row per term
LONG_SUM = 120
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
# Prose in Markdown: what CommonMark (or the HTML it becomes) would read as markup, and $ (math)
_MARKDOWN_SPECIAL = {**{ch: "\\" + ch for ch in "\\`*_[]#|~$!{}"}, "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def document_context(d, fmt: str = "tex", style: Style = DEFAULT_STYLE) -> dict:
    """Everything the derivation templates fill in, for derivation `d` of `lstmgen.reverse`."""
    doc = _Document(d, fmt, style)
    cell = d.cell
    gates = [eq.target for eq in cell.equations if eq.target in cell.gate_order]
    families = _families(d)
    # every step input has a step gradient (cells.parse refuses an unused input or state)
    easy = [s for s in cell.states if all(t.form == "elementwise" for t in d.step[s].terms)]
    closing = [name for name in cell.step_inputs if name not in easy]
    context = {
        "title": doc.text(cell.title),
        "times": HADAMARD[style.hadamard].strip(),
        "transposed_x": doc.symbol(ir.Transpose(X)),
        "rows": style.vectors == "row",
        "example_product": doc.symbol(ir.Dot(symbols.parameter("W"), symbols.vector(cell.input))),
        "output": doc.symbol(symbols.vector(cell.output)),
        "upstream": doc.symbol(symbols.vector(cell.output, "t", "upstream")),
        "loss": doc.symbol(LOSS),
        "forward": [doc.forward(eq) for eq in cell.equations],
        "identities": [doc.identity(applied) for applied in _functions(cell)],
        "compact": style.compact,
        "previous_names": [doc.symbol(symbols.vector(s, "t-1", "adjoint")) for s in cell.states],
    }
    if style.compact:
        context.update(_Compact(doc, families).context())
        return context
    context.update({
        "local_derivatives": [{"name": doc.symbol(symbols.vector(gate)), "equations": doc.local(gate)}
                              for gate in gates],
        "shared_steps": [doc.shared(name) for name in d.shared],
        "state_steps": [doc.step(s) for s in easy],
        "families": [{"name": doc.symbol(symbols.vector(target)),
                      "equations": [doc.step(p) for p in params]} for target, params in families],
        "closing_steps": [doc.step(name) for name in closing],
        "summed_families": [{"name": doc.symbol(symbols.vector(target)),
                             "equations": [doc.summed(p) for p in params]} for target, params in families],
        "recurrences": [doc.recurrence(s) for s in cell.states],
        "input_total": doc.plain_step(cell.input),
        "initials": [doc.initial(s) for s in cell.states],
    })
    return context


class _Document:
    """Prints equations of one derivation in one format."""

    def __init__(self, d, fmt: str, style: Style):
        self.d = d
        self.cell = d.cell
        self.fmt = fmt
        self.style = style
        self.names: dict[str, str] = {}  # LaTeX of names the document adds (the compact style's deltas)
        # LaTeX pages are narrow: a chained equality gets one row per link there
        self.split_links = fmt == "tex"

    # ---- printing helpers ------------------------------------------------------------------
    def symbol(self, expr) -> str:
        return latex(expr, self.cell, self.style, self.names)

    def terms(self, expr) -> list[str]:
        return latex_terms(expr, self.cell, self.style, self.names)

    def derivative(self, of, wrt) -> str:
        """d of / d wrt as a fraction of two symbols (`of` may be LOSS)."""
        return derivative(of, wrt, self.cell, self.style, self.names)

    def text(self, words: str) -> str:
        """Prose from a cell file, escaped for LaTeX or Markdown: it reads as the characters it is."""
        special = _TEX_SPECIAL if self.fmt == "tex" else _MARKDOWN_SPECIAL
        return "".join(special.get(ch, ch) for ch in words)

    def equation(self, lhs: str, links: list[list[str]]) -> dict:
        """lhs = link = link ...; each link a list of signed terms ('a', '+ b'): `rows` for a display
        of its own, `aligned_rows` with the & before the first = for a block of equations."""
        links = [link if len(" ".join(link)) > LONG_SUM else [" ".join(link)] for link in links]
        single = all(len(link) == 1 for link in links) and (len(links) == 1 or not self.split_links)
        if single:
            return {"aligned": False, "rows": [" = ".join([lhs] + [link[0] for link in links])],
                    "aligned_rows": ["%s & = %s" % (lhs, " = ".join(link[0] for link in links))]}
        rows = []
        for index, link in enumerate(links):
            rows.append(("%s & = %s" % (lhs, link[0])) if index == 0 else "& = %s" % link[0])
            rows.extend("& %s" % term for term in link[1:])
        return {"aligned": True, "rows": rows, "aligned_rows": rows}

    def chain(self, gradient, ends_at_wrt: bool = False) -> list[str]:
        """Each term's chain-rule product, dL/dq_t . dq_t/dr_t . ... . dr_t/dwrt, as a signed term
        (`ends_at_wrt`: the chains end in wrt itself, as those of a shared gradient do)."""
        out = []
        for term in gradient.terms:
            factors = [symbols.vector(term.chain[0], "t", "adjoint")]
            factors += [sympy.Derivative(symbols.vector(a), symbols.vector(b), evaluate=False)
                        for a, b in zip(term.chain, term.chain[1:])]
            if not ends_at_wrt:
                factors.append(sympy.Derivative(symbols.vector(term.chain[-1]), gradient.wrt, evaluate=False))
            text = chain_product(factors, self.cell, self.style, self.names)
            out.append(text if not out else "+ " + text)
        return out

    # ---- the equations ---------------------------------------------------------------------
    def forward(self, eq) -> dict:
        """One equation of the forward step, as the cell file writes it."""
        return self.equation(self.symbol(symbols.vector(eq.target)), [self.terms(eq.written)])

    def identity(self, applied) -> dict:
        """d f(theta)/d theta = f'(theta), differentiated by SymPy."""
        slope = local_derivative(applied, THETA, applied)
        return self.equation(self.derivative(applied, THETA), [self.terms(slope)])

    def local(self, gate: str) -> list[dict]:
        """d sum(gate_t) / d v for every v the gate's equation uses directly."""
        entries = [(wrt, gradient) for (target, wrt), gradient in self.d.local.items() if target == gate]
        entries.sort(key=lambda entry: _local_rank(self.cell, entry[1]))
        output = symbols.vector(gate)
        return [self.equation(self.derivative(output, gradient.wrt), [self.terms(gradient.expr())])
                for _, gradient in entries]

    def step(self, name: str) -> dict:
        """dL/dv at step t with its chain rule: dL/dv = chain products = result."""
        gradient = self.d.step[name]
        lhs = self.derivative(LOSS, gradient.wrt)
        return self.equation(lhs, [self.chain(gradient), self.terms(gradient.expr())])

    def shared(self, name: str) -> dict:
        """dL/dq_t of an intermediate with a gradient of its own: its chain rule and its value."""
        gradient = self.d.shared[name]
        lhs = self.symbol(symbols.vector(name, "t", "adjoint"))
        return self.equation(lhs, [self.chain(gradient, ends_at_wrt=True), self.terms(gradient.expr())])

    def plain_step(self, name: str) -> dict:
        gradient = self.d.step[name]
        return self.equation(self.derivative(LOSS, gradient.wrt), [self.terms(gradient.expr())])

    def summed(self, name: str) -> dict:
        """dL/dparam = sum over t of the step gradient; a long one as one sum per term, each a row
        (a bracket around a sum cannot be broken across lines)."""
        gradient = self.d.step[name]
        whole = self.terms(self.d.summed(name))
        if len(" ".join(whole)) > LONG_SUM and len(gradient.terms) > 1:
            whole = self.terms(ir.total(ir.SumOverTime(term.expr()) for term in gradient.terms))
        return self.equation(self.derivative(LOSS, gradient.wrt), [whole])

    def recurrence(self, state: str) -> dict:
        lhs = self.symbol(symbols.vector(state, "t", "adjoint"))
        return self.equation(lhs, [self.terms(self.d.state_total(state))])

    def initial(self, state: str) -> dict:
        lhs = self.symbol(symbols.vector(state, "0", "adjoint"))
        return self.equation(lhs, [self.terms(self.d.initial(state))])


def _functions(cell) -> list:
    """f(theta) for every elementwise function the cell's equations apply, in order of first use."""
    found, seen = [], set()
    for eq in cell.equations:
        for node in sympy.preorder_traversal(eq.rhs):
            if not isinstance(node, Application) or isinstance(node, _MATRIX_FORMS) or node.func in seen:
                continue
            arguments = [THETA if arg.free_symbols else arg for arg in node.args]
            if arguments.count(THETA) == 1:  # one variable argument: relu's Max(0, z) counts
                seen.add(node.func)
                found.append(node.func(*arguments))
    return found


def _families(d) -> list[tuple[str, list[str]]]:
    """Parameters grouped by the equation their gradient enters through, in equation order."""
    by_target: dict[str, list[str]] = {}
    for quantity in d.cell.parameters:
        gradient = d.step.get(quantity.name)
        if gradient is None or not gradient.terms:
            continue
        by_target.setdefault(gradient.terms[0].via, []).append(quantity.name)
    return [(eq.target, by_target[eq.target]) for eq in d.cell.equations if eq.target in by_target]


def _local_rank(cell, gradient) -> tuple:
    """Order of the local derivatives as the seed writes them: x_t, W_x, h_{t-1}, W_h, then biases."""
    vectors = {name: k for k, name in enumerate(cell.step_inputs)}
    parameters = {q.name: k for k, q in enumerate(cell.parameters)}
    term = gradient.terms[0]
    if term.form == "transposed":
        return (0, vectors.get(symbols.read(gradient.wrt).name, len(vectors)), 0, str(gradient.wrt))
    if term.form == "outer":
        return (0, vectors.get(symbols.read(term.operand).name, len(vectors)), 1, str(gradient.wrt))
    ref = symbols.read(gradient.wrt)
    if ref is None:
        return (1, parameters.get(gradient.wrt.name, len(parameters)), 0, str(gradient.wrt))
    return (2, vectors.get(ref.name, len(vectors)), 0, str(gradient.wrt))


class _Compact:
    """The compact style's equations, read from the per-gate backward program: one delta per gate
    (named once, δ^q_t = dL/dP of its pre-activation P), then every gradient written with them."""

    def __init__(self, doc: _Document, families):
        self.doc, self.d, self.cell, self.families = doc, doc.d, doc.cell, families
        try:
            self.program = build(CellLayout(self.d, "per-gate"))
        except LstmgenError as exc:
            raise LstmgenError("the compact style needs the per-gate backward program: %s" % exc) from None
        m = self.program.layout
        self.mapping, self.parameter_of = {}, {}
        for gate in m.gates.values():
            delta = symbols.vector("delta^" + gate.name)
            doc.names["delta^" + gate.name] = r"\delta^{%s}" % doc.style.printer(self.cell)._base(gate.name)
            self.mapping[gate.delta] = delta
        for group in m.groups:
            (parameter,) = group.members.values()
            self.mapping[group.symbol] = symbols.parameter(parameter)
            for arg in group.args:
                self.parameter_of[dparam_tag(arg)] = parameter
        for members, piece, _gate, _group in self.program.pieces:
            self.mapping[piece] = ir.total(sorted(members, key=lambda m: (not isinstance(m, ir.Dot), sympy.default_sort_key(m))))
        for name in list(self.cell.quantities):
            self.mapping[tag("adj", name)] = symbols.vector(name, "t", "adjoint")
        self.incoming = {incoming(state) for state in self.cell.states}
        self.equation_order = {eq.target: k for k, eq in enumerate(self.cell.equations)}
        self.statements = {statement.block: statement for statement in self.program.backward}
        self.by_target = {statement.target: statement for statement in self.program.backward}

    def expr(self, code) -> sympy.Expr:
        """A statement's expression in the document's terms: deltas and parameters by their names,
        v^T-contractions as outer products, a batch sum as the one vector it sums."""
        from .printing.numpy import BatchSum, WeightGradient, ZerosLike

        if code in self.mapping:
            return self.mapping[code]
        if isinstance(code, WeightGradient):
            _, delta, vector = code.args
            return ir.Outer(self.expr(delta), self.expr(vector))
        if isinstance(code, BatchSum):
            return self.expr(code.args[0])
        if isinstance(code, ZerosLike):
            return sympy.Integer(0)
        if isinstance(code, sympy.Symbol):
            if ":" in code.name:
                raise LstmgenError("the compact style cannot print %s of the backward program" % code.name)
            return code
        if not code.args:
            return code
        return ir.rebuild(code, [self.expr(arg) for arg in code.args])

    def vector(self, name: str) -> sympy.Expr:
        """dL/dv of the input at t, or of a state at t-1, in deltas: the elementwise paths first,
        then one W^T-product per gate in the order of the cell's equations."""
        time = "t" if name == self.cell.input else "t-1"
        terms = flat_sum(self.by_target[symbols.vector(name, time, "adjoint")].expr)
        order = [self.mapping[gate.delta] for gate in sorted(self.program.layout.gates.values(),
                                                             key=lambda gate: self.equation_order[gate.name])]

        def rank(term):
            deltas = [k for k, delta in enumerate(order) if self.expr(term).has(delta)]
            return (isinstance(term, TDot), min(deltas, default=-1))
        return ir.total(self.expr(term) for term in sorted(terms, key=rank))

    def parameter(self, name: str) -> sympy.Expr:
        statement = next(s for s in self.program.backward for t in s.targets if self.parameter_of.get(t) == name)
        return self.expr(statement.expr)

    def within_step(self, state: str) -> list:
        """What the consumers inside step t pass back to state s_t (the total's terms but dnext_s)."""
        statement = self.statements.get("total:" + state)
        if statement is None:
            return []
        return [self.expr(term) for term in flat_sum(statement.expr) if term not in self.incoming]

    def context(self) -> dict:
        doc, cell = self.doc, self.cell
        loss_of = lambda wrt, expr: doc.equation(doc.derivative(LOSS, wrt), [doc.terms(expr)])  # noqa: E731
        deltas, adjoints = [], []
        for statement in self.program.backward:
            if statement.block.startswith("gate:"):
                deltas.append(doc.equation(doc.symbol(self.mapping[statement.target]), [doc.terms(self.expr(statement.expr))]))
            elif statement.block.startswith(("adj:", "shared:")):
                adjoints.append(doc.equation(doc.symbol(self.expr(statement.target)), [doc.terms(self.expr(statement.expr))]))
        families = [{"name": doc.symbol(symbols.vector(target)),
                     "equations": [loss_of(symbols.parameter(p), self.parameter(p)) for p in params]}
                    for target, params in self.families]
        summed = []
        for target, params in self.families:
            equations = []
            for p in params:
                terms = ir.total(ir.SumOverTime(t) for t in flat_sum(self.parameter(p)))
                whole = doc.terms(ir.SumOverTime(self.parameter(p)))
                if len(" ".join(whole)) > LONG_SUM and len(flat_sum(self.parameter(p))) > 1:
                    whole = doc.terms(terms)
                equations.append(doc.equation(doc.derivative(LOSS, symbols.parameter(p)), [whole]))
            summed.append({"name": doc.symbol(symbols.vector(target)), "equations": equations})
        step_vectors = [(name, symbols.vector(name, "t" if name == cell.input else "t-1")) for name in cell.step_inputs]
        recurrences = []
        for state in cell.states:
            parts = [symbols.vector(state, "t", "upstream")] if state == cell.output else []
            parts += self.within_step(state)
            parts.append(symbols.retime(self.vector(state), lambda t: symbols.shift_time(t, 1)))
            lhs = doc.symbol(symbols.vector(state, "t", "adjoint"))
            recurrences.append(doc.equation(lhs, [doc.terms(ir.total(parts))]))
        initials = [doc.equation(doc.symbol(symbols.vector(state, "0", "adjoint")),
                                 [doc.terms(symbols.retime(self.vector(state), lambda t: symbols.fix_time(t, 1)))])
                    for state in cell.states]
        return {
            "deltas": deltas,
            "shared_steps": adjoints,
            "state_steps": [],
            "families": families,
            "closing_steps": [loss_of(wrt, self.vector(name)) for name, wrt in step_vectors],
            "summed_families": summed,
            "recurrences": recurrences,
            "input_total": loss_of(symbols.vector(cell.input), self.vector(cell.input)),
            "initials": initials,
        }
