"""The Numba target: the NumPy module with each time step's elementwise arithmetic fused into compiled loops.

The sequence functions keep NumPy for what NumPy does best -- the matrix products (BLAS) and the
gates' activations over whole pre-activation blocks (NumPy's vectorised tanh and exp) -- and give
the rest of each step's elementwise statements to one Numba-compiled loop over the (N, H) entries:
one pass over memory instead of one per operation, and no temporaries.  (A fully fused kernel was
slower: LLVM's scalar tanh and exp are not vectorised.)

`Fusion` regroups a loop body's entries: the elementwise ones, moved as early as their inputs allow,
become kernels; a kernel loads each input entry into a scalar, computes every statement in the
step's own names and formulas, and stores what the rest of the loop reads.  A kernel takes a stacked
array whole and slices each row's blocks itself (`_stacks`), and the loss's (N, T, H) gradient whole
with the step t (`plan.upstream_arrays`): Numba then knows every row to be contiguous.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import sympy

from ..printing.numpy import numpy_call_into, print_scalar
from . import format as fmt
from . import numpy_target
from .naming import user_functions
from .program import Program
from .sequence import Entry, _Into, transcendental

TEMPLATE = numpy_target.TEMPLATE


def module_context(program: Program) -> dict:
    fusion = Fusion(program)
    context = numpy_target.module_context(program, fusion=fusion)
    context["kernels"] = fusion.kernels
    context["scalar_helpers"] = fusion.scalar_helpers(program)
    context["sigmoid_scalar"] = any("_sigmoid_scalar(" in line for k in fusion.kernels for line in k.lines) or any(
        "_sigmoid_scalar(" in h["body"] for h in context["scalar_helpers"])
    context["add_scaled"] = any("_add_scaled(" in line for line in context["seq_forward_lines"])
    context["target_title"] = "NumPy with fused Numba loops"
    return context


@dataclass
class Kernel:
    """One compiled loop: `name`(inputs..., outputs...) over the entries of (N, H) arrays."""

    name: str
    about: str
    params: list[str]
    direction: str
    lines: list[str] = field(default_factory=list)

    @property
    def signature(self) -> list[str]:
        return fmt.bracketed("", f"def {self.name}(", self.params, "):")


class Fusion:
    """Turns runs of elementwise loop entries into Numba kernels (see the module docstring)."""

    def __init__(self, program: Program):
        self.program = program
        self.kernels: list[Kernel] = []
        self.workspaces: dict[str, list[str]] = {"forward": [], "backward": []}

    def fuse(self, plan, entries: list[Entry], direction: str, carried: set[str], aliases: dict) -> list:
        """The loop body's items with its elementwise entries fused; `carried` are the names the next
        step reads (the states' gradients), which are arrays allocated before the loop and which a
        kernel writes in place; `aliases` the upstream gradients that are such an array under another
        name (dnext_c = dprev_c), which must be read before it is written."""
        groups = _schedule(self._hoisted(plan, entries, direction), aliases)
        items = []
        for k, group in enumerate(groups):
            if not isinstance(group, list):
                items.extend(group.items)
                continue
            if _one_call(group):
                items.extend(group[0].items)  # one ufunc call into its array: a kernel would only add a call
                continue
            later = set().union(*[g.reads for g in _flatten(groups[k + 1:])]) if k + 1 < len(groups) else set()
            items.append(self._kernel(plan, group, direction, later, carried))
        return items

    def _hoisted(self, plan, entries: list[Entry], direction: str) -> list[Entry]:
        """The entries with every transcendental function of an elementwise entry taken out into a NumPy
        call over the whole (N, H) block: NumPy's tanh and exp are vectorised, LLVM's scalar ones are not.
        A statement that is one such call, r = sigmoid(gx_r + gh_r), becomes the loop's r = gx_r + gh_r
        and then sigmoid(r, out=r); a call inside a formula, tanh(next_c) in the LSTM's backward, is
        computed into a workspace first, once per step however often the step reads it."""
        out, computed = [], {}  # application -> the symbol of its workspace
        taken = {name for key, name in plan.names.items() if not key.startswith("hoisted:")}

        def call(application, into: str) -> Entry:
            argument = plan.names[application.args[0].name]
            item = numpy_call_into(application, into, plan.names, plan.p.transposed)
            return Entry([_Into(None, *item) if item else f"{into}[...] = {plan.print(application)}"],
                         {argument}, {into})

        def argument_entry(entry, name: str, symbol, argument) -> Entry:
            """name = argument, computed by the loop into the array `stored` (or a workspace)."""
            return Entry([], plan._reads(argument), {name},
                         dataclasses.replace(entry.statement, targets=(symbol,), expr=argument), True, entry.stored)

        for entry in entries:
            if not entry.elementwise or entry.statement is None:
                out.append(entry)
                continue
            expr = entry.statement.expr
            for application in transcendental(expr):
                if application in computed:
                    continue
                inner = application.func(*(a.xreplace(computed) for a in application.args))
                if application == expr:  # the whole statement: computed into its own target
                    target = next(iter(entry.writes))
                    array = entry.stored or target
                    if isinstance(inner.args[0], sympy.Symbol):
                        if entry.stored is None:
                            self.workspaces[direction].append(f"{target} = np.empty((N, H), dtype=dtype)")
                        out.append(call(inner, array))
                    else:
                        out.append(argument_entry(entry, target, entry.statement.target, inner.args[0]))
                        out.append(call(inner.func(entry.statement.target), array))
                    entry = None
                    break
                if not isinstance(inner.args[0], sympy.Symbol):  # a compound argument: computed first
                    name = _fresh(f"{_name(inner)}_arg", taken)
                    symbol = self._workspace(plan, name, direction)
                    out.append(argument_entry(dataclasses.replace(entry, stored=name), name, symbol, inner.args[0]))
                    inner = inner.func(symbol)
                name = _fresh(f"{_name(inner)}_{plan.names[inner.args[0].name]}", taken)
                computed[application] = self._workspace(plan, name, direction)
                out.append(call(inner, name))
            if entry is None:
                continue
            if computed:
                expr = expr.xreplace(computed)
                items = [plan._into(expr, entry.stored)] if entry.stored else []
                entry = dataclasses.replace(entry, statement=dataclasses.replace(entry.statement, expr=expr),
                                            reads=plan._reads(expr), items=items)
            out.append(entry)
        return out

    def _workspace(self, plan, name: str, direction: str) -> sympy.Symbol:
        """A new (N, H) array `name`, allocated before the loop, and the symbol that stands for it."""
        symbol = sympy.Symbol("hoisted:" + name)
        plan.names[symbol.name] = name
        self.workspaces[direction].append(f"{name} = np.empty((N, H), dtype=dtype)")
        return symbol

    def _kernel(self, plan, group: list[Entry], direction: str, later: set[str], carried: set[str]) -> _Into:
        written, inputs = set(), []
        for entry in group:
            for name in sorted(entry.reads):
                if name not in written and name not in inputs:
                    inputs.append(name)
            written |= entry.writes
        outputs = []  # (scalar name, the array it is stored into)
        sums = []  # (scalar name, the array it is summed into, its row there)
        for entry in group:
            name = next(iter(entry.writes))
            if entry.summed_into is not None:
                sums.append((name, *entry.summed_into))
            elif entry.stored is not None:
                outputs.append((name, entry.stored))
            elif name in later or name in carried or name in plan.after_names():
                if name not in carried:
                    self.workspaces[direction].append(f"{name} = np.empty((N, H), dtype=dtype)")
                outputs.append((name, name))
        one_d = _vectors(self.program, plan.names)
        stacks = _stacks(plan, direction)
        arrays = list(dict.fromkeys(inputs + [array for _, array in outputs]))
        # each array's (kernel parameter, call argument, the row's slice of it for a block of a stack)
        places = {}
        upstream = [name for name in arrays if name in plan.upstream_arrays]
        for name in arrays:
            if name in upstream:  # a loss's (N, T, H) gradient, taken whole: its row at step t
                places[name] = (name, name, f"{name}_[row, t_]")
            elif name in stacks:
                param, argument, index, count = stacks[name]
                start = "" if index == 0 else "H" if index == 1 else f"{index} * H"
                stop = "" if index == count - 1 else "H" if index == 0 else f"{index + 1} * H"
                places[name] = (param, argument, f"{param}_[row, {_slice(start, stop)}]")
            else:
                places[name] = (name, name, f"{name}_[row]")
        for _, array, _ in sums:
            places.setdefault(array, (array, array, None))
        params = list(dict.fromkeys(param for param, _, _ in places.values())) + (["t"] if upstream else [])
        arguments = list(dict.fromkeys(argument for _, argument, _ in places.values())) + (["t"] if upstream else [])
        count = sum(1 for k in self.kernels if k.direction == direction)
        kernel = Kernel("_{}_{}_step{}".format(self.program.layout.prefix, direction, "" if not count else count + 1),
                        "One step of {}_{}, entry by entry: {}{}.".format(
                            self.program.layout.prefix, direction, ", ".join(name for name, _ in outputs),
                            ", and the sums of " + ", ".join(n for n, _, _ in sums) if sums else ""),
                        [param + "_" for param in params], direction)
        scalars = set(inputs) | {n for n, _ in outputs} | written
        own = {p + "_" for p in params} | {n + "_row" for n in arrays} | {"row", "col", "real", "H", "t_"}
        clash = sorted(scalars & ({n + "_" for n in scalars} | own))
        if clash:
            self.program.layout.fail(f"the Numba kernel uses the name {clash[0]} for its own (an array of the "
                                     "step, or an index), and so does the cell: rename it in the cell file")
        plain = [name for name in arrays if name not in one_d and name not in stacks and name not in upstream]
        if plain:
            rows, columns = f"{places[plain[0]][0]}_.shape[0]", f"{places[plain[0]][0]}_.shape[1]"
        elif any(name in stacks for name in arrays):  # blocks of stacked arrays: a block is the stack's width over its count
            param, _, _, blocks = stacks[next(name for name in arrays if name in stacks)]
            rows, columns = f"{param}_.shape[0]", f"{param}_.shape[1] // {blocks}"
        else:
            rows, columns = f"{upstream[0]}_.shape[0]", f"{upstream[0]}_.shape[2]"
        inner = " " * 12  # function body, two loops
        body = [f"    H = {columns}", f"    for row in range({rows}):",
                "        # the row of each array as a contiguous 1-d array: LLVM vectorises the loop over it"]
        body += [f"        {name}_row = {places[name][2]}" for name in arrays if name not in one_d]
        body.append("        for col in range(H):")
        for name in inputs:
            body.append(f"{inner}{name} = {name}_[col]" if name in one_d else f"{inner}{name} = {name}_row[col]")
        for entry in group:
            body += fmt.statement(inner, next(iter(entry.writes)), print_scalar(entry.statement.expr, plan.names))
        for name, array in outputs:
            body.append(f"{inner}{array}_row[col] = {name}")
        for name, array, row in sums:
            body.append(f"{inner}{array}_[{row}, col] += {name}")
        if any("real(" in line for line in body):
            first = places[plain[0]][0] if plain else params[0]
            body.insert(0, f"    real = {first}_.dtype.type  # constants as real(1): float32 arrays stay float32 math")
        kernel.lines = body
        self.kernels.append(kernel)
        return _Into(None, kernel.name, arguments)

    def scalar_helpers(self, program: Program) -> list[dict]:
        """The scalar forms of the cell file's functions, for the kernels."""
        out = []
        for name, function in sorted(user_functions(program.layout.cell).items()):
            variable = function.formula.variables[0]
            out.append({"name": f"_{name}_scalar", "arg": variable.name,
                        "body": print_scalar(function.formula.expr, {variable.name: variable.name})})
        return out


def _one_call(group: list[Entry]) -> bool:
    """Whether the kernel of `group` would replace a single NumPy call (and so gain nothing)."""
    return len(group) == 1 and len(group[0].items) == 1 and _ufunc_calls(group[0]) <= 1


def _ufunc_calls(entry: Entry) -> int:
    """How many NumPy calls the entry's statement makes when printed as NumPy: one per operation
    (next_c = f * prev_c + i * g makes three, and two temporaries), what one kernel call replaces."""
    return sympy.count_ops(entry.statement.expr) if entry.statement is not None else 1


def _name(application) -> str:
    return type(application).__name__


def _fresh(name: str, taken: set[str]) -> str:
    """`name`, or name_2, name_3, ... if the step already uses it; taken gets the result."""
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate)
    return candidate


def _slice(start: str, stop: str) -> str:
    """start:stop spaced as ruff format spaces a slice: around the colon when a bound is not a name
    or a number ("H:", "H : 2 * H", "3 * H :")."""
    if all(bound == "" or bound.isidentifier() or bound.isdigit() for bound in (start, stop)):
        return f"{start}:{stop}"
    return f"{start} : {stop}".strip()


def _stacks(plan, direction: str) -> dict[str, tuple[str, str, int, int]]:
    """{block name: (kernel parameter, call argument, index, count)} for the (N, H) blocks of the
    stacked C-contiguous arrays of a step (the LSTM's i, f, o, g of a_all[t]; in the backward, the
    deltas di, ... of da): a kernel takes the whole array and slices each row's blocks itself, which
    Numba then knows to be contiguous and LLVM vectorises (measured: the LSTM's backward kernel
    25.6 -> 13.2 us at N, H = 64, 128 against the same loop over the blocks' strided views)."""
    out = {}
    sources = {b.name: name for name, b in plan.buffers.items() if not name.startswith("state:")}
    for name, (buffer, index, count) in plan.blocks.items():
        if buffer.name in sources:
            out[name] = (sources[buffer.name], f"{buffer.name}[t]", index, count)
    if direction == "backward" and plan.primary is not None:
        stack = plan.name(plan.primary.target)
        for name, (_buffer, index, count) in plan.delta_blocks.items():
            out[name] = (stack, stack, index, count)
    return out


def _vectors(program: Program, names: dict[str, str]) -> set[str]:
    """Python names of the (H,) parameters that elementwise statements read (a peephole block p_f)."""
    out = set()
    for group in program.layout.groups:
        if group.kind == "matrix":
            continue
        out.add(names.get(group.symbol.name, ""))
        for param in group.members.values():
            out.add(names.get(param, ""))
    return out - {""}


def _schedule(entries: list[Entry], aliases: dict | None = None) -> list:
    """Entries regrouped: lists of elementwise entries (each list one kernel) and single other entries, in
    an order that respects every read-after-write and write-after-read between them; an elementwise
    entry runs as early as its inputs allow, so that as few kernels as possible remain, except that a
    kernel that would be one NumPy call alone waits for a later one when another entry can run first
    (the LSTM's dnext_h = dh[:, t, :] + dprev_h waits for tanh(next_c) and joins the kernel that reads
    it).  An entry that
    writes a carried array runs after (or in the kernel of) every entry that reads it under an alias
    (`aliases`: {dnext_c: dprev_c}): a kernel writes that array in place."""
    depends = []
    for k, entry in enumerate(entries):
        before = entries[:k]
        depends.append({id(e) for e in before if (e.writes & entry.reads) or (e.reads & entry.writes)})
        overwritten = {alias for alias, array in (aliases or {}).items() if array in entry.writes}
        depends[-1] |= {id(e) for e in entries if e is not entry and e.reads & overwritten}
    done, pending, out = set(), list(entries), []
    while pending:
        kernel, progress = [], True
        while progress:
            progress = False
            for entry in pending:
                if entry.elementwise and depends[entries.index(entry)] <= done:
                    kernel.append(entry)
                    done.add(id(entry))
                    pending.remove(entry)
                    progress = True
                    break
        if _one_call(kernel) and any(e.elementwise for e in pending) and any(
                not e.elementwise and depends[entries.index(e)] <= done - {id(kernel[0])} for e in pending):
            done.discard(id(kernel[0]))  # it waits: the next round of elementwise entries may take it along
            pending.insert(0, kernel.pop())
        if kernel:
            out.append(kernel)
        for entry in pending:
            if not entry.elementwise and depends[entries.index(entry)] <= done:
                out.append(entry)
                done.add(id(entry))
                pending.remove(entry)
                break
        else:
            if not kernel and pending:
                raise AssertionError("the loop body's statements depend on each other in a cycle")
    return out


def _flatten(groups) -> list[Entry]:
    return [e for g in groups for e in (g if isinstance(g, list) else [g])]
