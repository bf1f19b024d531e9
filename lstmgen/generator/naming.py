"""Python names for the symbols of a backward program, and the checks that no two things share one.

    x, prev_h, next_c          the input and the states at t-1 and t
    dnext_c, dnext_c_total     dL/dc_t from outside the step, and with what h_t passes back
    df, da, dgx                a gate's delta, the stacked delta of a group
    dx, dprev_h, dWx, db       the step's results
    Wx, b_f, a_f, gx_r         arguments, split blocks, named pieces of pre-activations
"""
from __future__ import annotations

import builtins
import keyword

import sympy

from .. import symbols
from ..errors import CellError
from ..functions import UserFunction
from ..printing.numpy import identifier
from .program import Program, adjoint, dparam_tag, incoming, param_tag, stack_tag

# Names the template and the context give the module's own functions, variables and imports.  A cell
# quantity (or a function of the cell file) printed under one of them would silently shadow it, or be
# shadowed (a bias named H replaced by the hidden size); the initial state h0 is added per cell.
TEMPLATE_NAMES = frozenset({"np", "NamedTuple", "numba", "sigmoid", "_blocks", "_add_scaled", "_checked", "_check_cache", "_check_shape", "_check_shapes", "_blame", "_axes", "N", "D", "H", "T",
                            "t", "dtype", "cache", "step_cache", "steps", "first", "row", "col"})
# Python's own names: a keyword cannot be a variable, and a builtin the generated code calls (range,
# reversed, len, ValueError, ...) must not be shadowed by one.
PYTHON_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
# The sequence functions name their buffers after the step's names: x_all, da_rows, a_sigmoid.
SEQUENCE_SUFFIXES = ("_all", "_rows", "_sigmoid", "_tanh", "_exp")


def user_functions(cell) -> dict[str, type]:
    """The functions the cell file defines that its equations use, directly or inside each other, by name:
    in the canonical form and as written, which the module prints and in which a function of a constant
    stays (softsign(h - (h - 0.25)) is 0.2 in the canonical form)."""
    found, pending = {}, [form for eq in cell.equations for form in (eq.rhs, eq.written)]
    while pending:
        for node in sympy.preorder_traversal(pending.pop()):
            if isinstance(node, UserFunction) and type(node).__name__ not in found:
                found[type(node).__name__] = type(node)
                pending.append(type(node).formula.expr)
    return found


def python_names(program: Program, extra_names=frozenset()) -> dict[str, str]:
    """{symbol name: Python name} for every symbol the program's statements read or assign.
    A LayoutError when two things would share a name, or a name is the generated code's own
    (TEMPLATE_NAMES and `extra_names`, the target's)."""
    m = program.layout
    cell, py, names = m.cell, m.py, {}
    names[symbols.vector(cell.input).name] = py[cell.input]
    names[adjoint(cell.input).name] = "d" + py[cell.input]
    for state in cell.states:
        names[symbols.vector(state, "t-1").name] = "prev_" + py[state]
        names[symbols.vector(state).name] = "next_" + py[state]
        names[adjoint(state).name] = "dnext_" + py[state] + ("_total" if m.d.within_step[state] else "")
        names[incoming(state).name] = "dnext_" + py[state]
        names[adjoint(state, "t-1").name] = "dprev_" + py[state]
    for eq in cell.equations:
        if eq.target not in cell.states:
            names[symbols.vector(eq.target).name] = py[eq.target]
    for name in m.d.shared:  # dL/dq_t of an intermediate with a total of its own
        names[adjoint(name).name] = identifier("d" + py[name] + "_total")
    for gate in m.gates.values():
        names[gate.delta.name] = _suffix(gate.delta)
    for group in m.groups:
        names[group.symbol.name] = group.args[0] if len(group.args) == 1 else group.key
        for arg in group.args:
            names[param_tag(arg).name] = arg
            names[dparam_tag(arg).name] = "d" + arg
        if m.layout == "per-gate":
            names[group.members[next(iter(group.members))]] = group.args[0]
        elif group.kind != "matrix":
            for param in group.members.values():
                names[param] = group.args[0] if len(group.members) == 1 and len(group.args) == 1 else py[param]
        if group.kind == "matrix":
            if m.is_intermediate(group.vector):
                ref = symbols.read(group.vector)
                names["adj:" + ref.name] = identifier("d" + py[ref.name])
            if stack_tag(group) not in program.inline:
                names[stack_tag(group).name] = "da" if m.fast else "dg" + group.vkey
    for statement in program.forward:
        for target in statement.targets:
            if target.name.startswith(("pre:", "piece:")):
                names[target.name] = _suffix(target)
    for _members, sym, _gate, _group in program.pieces:
        if sym.name.startswith("piece:"):
            names.setdefault(sym.name, _suffix(sym))
    _check_clashes(program, names, extra_names)
    return names


def transposed_matrices(program: Program) -> set[str]:
    """Symbol names of the matrices stored (out, in), as PyTorch stores them."""
    return {g.symbol.name for g in program.layout.groups if g.transposed}


def _suffix(tagged: sympy.Symbol) -> str:
    return tagged.name.split(":", 1)[1]


def _check_clashes(program: Program, names: dict[str, str], extra_names) -> None:
    """Two different things must not share a Python name (a quantity called `b` next to the bias b)."""
    m = program.layout
    args = {arg for group in m.groups for arg in group.args}
    own_names = {names[symbols.vector(g.name).name] for g in m.gates.values() if g.is_pre}
    sole = {next(iter(g.members.values())): g.symbol.name for g in m.groups if len(g.members) == 1}
    owners: dict[str, set] = {}
    for key, value in names.items():
        ref = symbols.read(sympy.Symbol(key)) if "/" in key or "[" in key else None
        if key in own_names or (ref is not None and ref.role == "value" and value in own_names):
            role = "vector " + value
        elif value in args and key.startswith(("group:", "param:")):
            role = "argument"
        elif value in args and ref is None and ":" not in key:
            role = "argument"  # a parameter of a one-member group is its argument
        elif key.startswith("stack:") or (m.fast and value == "da"):
            role = "stack"  # one gate: its delta is the whole stacked delta
        elif key.startswith("piece:") and value in own_names:
            role = "vector " + value  # q = P: the block of a is q itself
        elif key.startswith("arg:dnext_") or (ref is not None and ref.role == "adjoint" and ref.time == "t"
                                               and ref.name in m.cell.states):
            role = "adjoint " + value.removesuffix("_total")
        else:
            role = sole.get(key, key)
        owners.setdefault(value, set()).add(role)
    clashes = sorted(name for name, roles in owners.items() if len(roles) > 1)
    if clashes:
        m.fail("two quantities would share the Python name {}".format(", ".join(clashes)))
    helpers = set(user_functions(m.cell))
    output = m.py[m.cell.output]
    sequence = {output, output + "0", "d" + output + "0", "d" + output}  # the sequence functions' h, h0, dh0, dh
    functions = {m.prefix + "_" + f for f in ("step_forward", "step_backward", "forward", "backward")}
    module_names = TEMPLATE_NAMES | set(extra_names) | {output + "0"} | functions
    every = set(owners) | helpers | sequence
    unusable = sorted(n for n in every if not n.isidentifier() or n in PYTHON_NAMES)
    if unusable:
        raise CellError("cell {}: the Python name {} is a Python keyword or built-in name (or no identifier), which "
                        "generated code cannot use: rename it in the cell file".format(m.cell.name, ", ".join(unusable)))
    derived = {name + suffix for name in every for suffix in SEQUENCE_SUFFIXES}
    taken = sorted(((set(owners) | helpers) & module_names) | ((set(owners) | sequence) & helpers)
                   | (every & derived))
    if taken:
        m.fail("the Python name {} is already used by the generated code (array sizes, loop "
               "variables, helpers, buffers): rename it in the cell file".format(", ".join(taken)))
