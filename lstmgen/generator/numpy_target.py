"""The NumPy target: a backward program printed into the context of `templates/numpy_module.py.j2`.

Step functions in the CS231n form (one forward and one backward per time step, a cache per step);
sequence functions built on them.  Everything printed here comes from the program's statements.
"""
from __future__ import annotations


import sympy

from .. import symbols
from ..printing.numpy import Split, docstring_text, print_numpy
from . import format as fmt
from .layout import Group
from .naming import python_names, transposed_matrices, user_functions
from .program import Program, Statement
from .sequence import Recurrence, SequencePlan

TEMPLATE = "numpy_module.py.j2"
TITLES = {"cs231n": "the CS231n layout", "torch": "PyTorch's layout", "per-gate": "one argument per parameter"}


class StepPrinter:
    """The program's statements as lines of Python, with the comments that quote the forward pass."""

    def __init__(self, program: Program, extra_names=frozenset()):
        self.program = program
        self.m = program.layout
        self.names = python_names(program, extra_names)
        self.transposed = transposed_matrices(program)
        self.forward_lines, self.forward_defs = [], {}
        self.group_text, self.split_text, self.equation_text = {}, {}, {}
        self._print_forward()

    def print(self, expr: sympy.Expr) -> str:
        return print_numpy(expr, self.names, self.transposed)

    def target(self, statement: Statement) -> str:
        return ", ".join(self.names[t.name] for t in statement.targets)

    def line(self, statement: Statement) -> str:
        return "{} = {}".format(self.target(statement), self.print(statement.expr))

    # ---- the forward pass ----------------------------------------------------------------
    def _print_forward(self):
        """Forward lines, the texts comments quote, and what each forward local holds (for the cache)."""
        statements = self.program.forward
        for k, statement in enumerate(statements):
            text = self.line(statement)
            kind, _, key = statement.key.partition(":")
            if kind == "equation" and self.print(statement.expr) == self.target(statement):
                continue  # q = P where P is already named q
            self.forward_lines.append(text)
            for target, about in zip(statement.targets, statement.about):
                self.forward_defs.setdefault(self.names[target.name], about)
            if kind == "equation":
                self.equation_text[key] = text
            elif kind == "split":
                self.split_text[key] = text
            elif kind in ("product", "group"):
                following = statements[k + 1] if k + 1 < len(statements) else None
                if following is not None and following.key.startswith(("product-split", "group-split")):
                    text += ", split into " + self.target(following)
                if kind == "product":
                    for group in self.m.groups:  # every matrix group's comment quotes the one product
                        if group.kind == "matrix":
                            self.group_text[group.key] = text
                else:
                    self.group_text[key] = text

    # ---- comments --------------------------------------------------------------------
    def comment(self, vias) -> str:
        if isinstance(vias, str):
            return vias
        if len(vias) == 1 and vias[0][0] in ("group", "params"):  # a block of parameters: quote their use
            return self._comment_texts(vias)[0]
        return "through " + " and ".join(self._comment_texts(vias))

    def _comment_texts(self, vias) -> list[str]:
        texts = []
        for kind, item in vias:
            if kind == "group":
                candidates = [self.group_text.get(item.key) or self._gate_text(item)]
            elif kind == "params":
                candidates = [self._params_text(item)]
            else:
                candidates = [self.equation_text[name] for name in reversed(item) if name in self.equation_text]
            for text in candidates:
                if text not in texts:
                    texts.append(text)
        return texts

    def _gate_text(self, group: Group) -> str:
        gate = next(iter(group.members))
        return self.equation_text.get(gate, gate)

    def _params_text(self, group: Group) -> str:
        """A per-gate parameter: its gate's equation; a stacked vector: how the forward pass splits it."""
        if self.m.layout == "per-gate":
            return self.equation_text[next(iter(group.members))]
        return self.split_text.get(group.key) or self.equation_text[next(iter(group.members))]

    def reads(self, statements) -> set[str]:
        """The Python names that `statements` read."""
        return {self.names[s.name] for st in statements for s in st.expr.free_symbols if s.name in self.names}


def module_context(program: Program, fusion=None) -> dict:
    """Everything the NumPy template fills in (`fusion`: the fused target's regrouping of the loops)."""
    p = StepPrinter(program)
    m, cell, py = p.m, p.m.cell, p.m.py
    camel = "".join(part.capitalize() for part in m.prefix.split("_"))
    x, output = py[cell.input], py[cell.output]
    states = [py[s] for s in cell.states]
    input_group = next(g for g in m.groups if g.kind == "matrix" and symbols.read(g.vector).name == cell.input)
    params = []
    for group in m.groups:
        for arg in group.args:
            params.append({"name": arg, "shape": _shape(m, group), "ndim": 1 if group.kind != "matrix" else 2,
                           "about": _describe(p, group)})
    param_names = [q["name"] for q in params]
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
    results = ["d" + x] + ["dprev_" + s for s in states] + ["d" + q for q in param_names]
    gradient_returns = ([{"name": results[0], "shape": f"(N, {width})", "about": f"dL/d{cell.input}_t"}]
                        + [{"name": "dprev_" + py[s], "shape": "(N, H)", "about": f"dL/d{s}_{{t-1}}"}
                           for s in cell.states]
                        + [{"name": "d" + q["name"], "shape": q["shape"], "about": "dL/d" + q["name"]}
                           for q in params])

    # the cache: what the backward lines read, in the order of the arguments, then of the forward locals
    backward = program.backward
    reads = {x, p.names[input_group.symbol.name]} | p.reads(backward)
    defined_back = {p.names[t.name] for st in backward for t in st.targets} | {a["name"] for a in gradient_args}
    fields = []
    for arg in step_args:
        if arg["name"] in reads:
            fields.append({"name": arg["name"], "shape": arg["shape"], "about": cached.get(arg["name"], arg["about"])})
    for name, (shape, about) in p.forward_defs.items():
        if name in reads and name not in defined_back and name not in [f["name"] for f in fields]:
            fields.append({"name": name, "shape": shape, "about": about})
    missing = reads - defined_back - {f["name"] for f in fields}
    missing = {n for n in missing if not n.startswith("d")} | (missing & set(p.forward_defs))
    if missing:
        m.fail("the backward pass reads {} which the forward pass does not keep".format(", ".join(sorted(missing))))

    blocks = []
    for statement in backward:
        lines = fmt.statement("    ", p.target(statement), p.print(statement.expr))
        if blocks and blocks[-1]["key"] == statement.block and not statement.block.startswith(("gate:", "total:")):
            blocks[-1]["lines"].extend(lines)
        else:
            blocks.append({"key": statement.block, "comment": p.comment(statement.vias), "lines": lines})

    dims = _dims(input_group)
    initial = {s: output + "0" if s == cell.output else None for s in cell.states}
    seq_args = ([{"name": x, "shape": f"(N, T, {width})", "ndim": 3, "about": "inputs of every step"},
                 {"name": output + "0", "shape": "(N, H)", "ndim": 2, "about": f"initial state {cell.output}"}]
                + params)
    starts = ", ".join(f"{s}_0 = {initial[s] or 0}" for s in cell.states)

    plan = SequencePlan(p, [f["name"] for f in fields], fusion)
    seq_fields = plan.cache_fields(fields)
    recurrence = [Recurrence(f"dnext_{py[s]}", f"d{py[s]}" if upstream[s] else None, f"dprev_{py[s]}")
                  for s in cell.states]
    zeros = [f"dprev_{py[s]} = np.zeros((N, H), dtype=dtype)" for s in cell.states]
    first_state = plan.cache_fields(fields)[1]["name"]
    seq_backward_dims = [f"T, N = {x}_all.shape[:2]"] + ([f"D = {x}_all.shape[2]"] if width == "D" else []) + [
        f"H = {first_state}.shape[2]"]
    seq_names = [a["name"] for a in seq_args]
    # arrays the caller holds too (its arguments, the step's returned states): the cache keeps copies, so that
    # refilling an input buffer or scaling a returned state in place cannot change the gradients
    caller_owned = _with_views(program, p.names, {a["name"] for a in step_args} | {r["name"] for r in step_returns})
    seq_owned = _with_views(program, p.names, set(seq_names))
    plan.column_major &= seq_owned  # the copies it makes: a transposed one where the backward wants it
    seq_fields = [dict(f, about=f["about"] + " (kept column by column)") if f["name"] in plan.column_major else f
                  for f in seq_fields]
    code = {  # the lines whose length decides their layout
        "step_forward_def": fmt.bracketed("", f"def {m.prefix}_step_forward(", [a["name"] for a in step_args], "):"),
        "cache": fmt.bracketed("    ", f"cache = {camel}StepCache(", [_owned(f["name"], caller_owned) for f in fields],
                               ")"),
        "unpack": fmt.unpack("    ", [f["name"] for f in fields], "cache"),
        "step_backward_return": fmt.return_values("    ", [r["name"] for r in gradient_returns]),
        "forward_def": fmt.bracketed("", f"def {m.prefix}_forward(", seq_names, "):"),
        "dtype": fmt.bracketed("    ", "dtype = np.result_type(", seq_names, ")"),
        "seq_cache": fmt.bracketed("    ", f"cache = {camel}Cache(", [_owned(f["name"], seq_owned, plan.column_major)
                                                                for f in seq_fields],
                                   ")"),
        "seq_unpack": fmt.unpack("    ", [f["name"] for f in seq_fields], "cache"),
        "backward_return": fmt.return_values("    ", [results[0], "d" + output + "0"] + ["d" + n for n in param_names]),
        "step_sizes": _shape_checks(step_args, len(params)),
        "seq_sizes": _shape_checks(seq_args, len(params)),
    }
    return {
        "code": code,
        "kernels": [],
        "scalar_helpers": [],
        "target_title": "NumPy",
        "template": TEMPLATE,
        "title": docstring_text(cell.title),
        "layout_title": TITLES[m.layout],
        "prefix": m.prefix,
        "step_cache_class": camel + "StepCache",
        "cache_class": camel + "Cache",
        "layout_notes": _layout_notes(m),
        "helpers": _helpers(cell),
        "column_major_copy": bool(plan.column_major),
        "doc_equations": p.forward_lines,
        "step_args": step_args,
        "forward_lines": p.forward_lines,
        "step_returns": step_returns,
        "cache_fields": fields,
        "gradient_args": gradient_args,
        "backward_dims": [f"N = cache.{x}.shape[0]", f"H = cache.{dims['H']}"],
        "backward_blocks": [{"comment": fmt.comment("    ", b["comment"]), "lines": b["lines"]} for b in blocks],
        "gradient_returns": gradient_returns,
        "input": x,
        "output": output,
        "seq_args": seq_args,
        "starts": starts,
        "accumulators": [r for r in gradient_returns if r["name"] in ["d" + n for n in param_names]],
        "seq_cache_fields": seq_fields,
        "seq_forward_lines": plan.forward_lines(),
        "seq_backward_dims": seq_backward_dims,
        "seq_backward_lines": plan.backward_lines(recurrence, zeros, {r["name"]: r["shape"] for r in gradient_returns}),
        "input_gradient": results[0],
        "seq_input_shape": seq_args[0]["shape"],
    }


SIZES = "NTDH"  # the sizes of the generated functions' arguments: batch, steps, input width, state width


def _shape_checks(arguments: list[dict], parameters: int) -> list[str]:
    """The sizes read off the arguments and the check of every argument's shape, the parameters (the
    last `parameters` arguments) first, as the most trusted when shapes disagree:

        N, D, H = x.shape[0], Wx.shape[0], Wh.shape[0]
        _check_shapes(("Wx", Wx, (D, 4 * H), "D 4H"), ..., ("x", x, (N, D), "N D"), ...)
    """
    split = len(arguments) - parameters
    trusted = arguments[split:] + arguments[:split]
    axes = {a["name"]: [part.split(" * ") for part in a["shape"].strip("(),").split(", ")] for a in arguments}
    sources = {}  # size -> the first axis that holds it (a multiple of it if no axis holds it alone)
    for alone in (True, False):
        for a in trusted:
            for k, part in enumerate(axes[a["name"]]):
                if part[-1] not in sources and (len(part) == 1) == alone:
                    sources[part[-1]] = f"{a['name']}.shape[{k}]" + ("" if alone else f" // {part[0]}")
    used = [size for size in SIZES if size in sources]
    checks = ['("{0}", {0}, {1}, "{2}")'.format(a["name"], a["shape"], " ".join("".join(p) for p in axes[a["name"]]))
              for a in trusted]
    return fmt.statement("    ", ", ".join(used), ", ".join(sources[size] for size in used)) + \
        fmt.bracketed("    ", "_check_shapes(", checks, ")")


def _dims(group: Group) -> dict:
    """Python expressions for D and H read off the input's weights."""
    arg, blocks = group.args[0], len(group.members)
    per = f" // {blocks}" if blocks > 1 else ""
    if group.transposed:
        return {"D": f"{arg}.shape[1]", "H": f"{arg}.shape[0]{per}"}
    return {"D": f"{arg}.shape[0]", "H": f"{arg}.shape[1]{per}"}


def _shape(m, group: Group) -> str:
    width = m.width(group)
    if group.kind != "matrix":
        return f"({width},)"
    return f"({width}, {group.rows})" if group.transposed else f"({group.rows}, {width})"


def _describe(p: StepPrinter, group: Group) -> str:
    m = p.m
    blocks = m.block_names(group)
    if m.layout == "per-gate":
        param = next(iter(group.members.values()))
        applied = f", applied to {p.names[group.vector.name]}" if group.vector is not None else ""
        return f"{param} of gate {next(iter(group.members))}{applied}"
    what = {"bias": "bias", "diagonal": "diagonal (peephole) weights"}.get(group.kind)
    if what is None:
        what = f"weights applied to {p.names[group.vector.name]}"
    if len(group.args) > 1:
        what += " (added to the other bias)"
    if len(group.members) > 1:
        return f"{what}, gate blocks {blocks}"
    return f"{what} of gate {blocks}" if len(m.gates) > 1 else what


def _layout_notes(m) -> list[str]:
    """The module docstring's paragraph on how the layout stores the parameters, ending in a blank
    line; none when every argument holds one parameter of the cs231n layout."""
    if m.layout == "per-gate":
        return ["Every parameter is its own argument, named as in the derivation document; matrices",
                "are stored (inputs, H), so that a batch of row vectors multiplies them from the left.", ""]
    if all(len(g.members) == 1 for g in m.groups):
        return []
    notes = ["Each argument below stores the parameters of several gates side by side along its",
             "{} axis, one block of H per gate:".format("first" if m.layout == "torch" else "last"), ""]
    for group in m.groups:
        for arg in group.args:
            notes.append("    {} {}: {}  (gates {})".format(arg, _shape(m, group), ", ".join(group.members.values()),
                                                         m.block_names(group)))
    if m.layout == "torch":
        notes += ["", "so that the arrays of a torch.nn module can be handed in as they are."]
        if any(len(g.args) > 1 for g in m.groups):
            notes += ["The cell has one bias per gate: it is bias_ih + bias_hh, and both get its gradient."]
    return notes + [""]


def _helpers(cell) -> list[dict]:
    """The functions the cell file defines, printed from their formulas."""
    found = user_functions(cell)
    out = []
    for name in sorted(found):
        formula = found[name].formula
        variable = formula.variables[0]
        out.append({"name": name, "arg": variable.name, "body": print_numpy(formula.expr, {variable.name: variable.name})})
    return out


def _owned(name: str, caller_owned, column_major=()) -> str:
    """A cache field's keyword argument: the array itself, or a copy of one the caller holds too
    (stored column by column when the backward multiplies by its transpose)."""
    if name not in caller_owned:
        return f"{name}={name}"
    return f"{name}=_column_major_copy({name})" if name in column_major else f"{name}={name}.copy()"


def _with_views(program: Program, names: dict[str, str], owned: set[str]) -> set[str]:
    """`owned` and the blocks the forward splits off them (p_i of a peephole vector p): views of them."""
    out = set(owned)
    for statement in program.forward:
        if isinstance(statement.expr, Split) and names.get(statement.expr.args[0].name) in out:
            out |= {names[t.name] for t in statement.targets}
    return out
