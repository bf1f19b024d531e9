"""A learned notation re-pointed at the cell given with --cell.

A document that states its forward equations is read in its own notation (learn.py builds a cell
from them).  When the user also names the cell (`--cell lstm`), the document is judged against that
cell, but it should still be read as its author writes it: g_t for the candidate, x_t W_f in rows.
`rename_onto` finds the renaming of the learned cell's quantities onto the given cell's under which
every forward equation is the given cell's own (vectors matched by their role, then parameters by
what they multiply, each candidate proven by comparing the equations symbolically), and returns the
learned notation with its meanings renamed; None when no renaming makes the two cells one.
"""
from __future__ import annotations

import dataclasses
import itertools

import sympy

from .. import ir, symbols
from ..cells import Cell
from .notation import Notation, roles_of

MAX_CANDIDATES = 720  # renamings of the vectors tried (permutations within a role)


def rename_onto(learned: Notation, cell: Cell) -> Notation | None:
    """`learned` (a notation whose cell is the one the document states) read onto `cell`: the same
    written keys, meaning the given cell's quantities; None unless the two cells are one."""
    mapping = _renaming(learned.cell, cell)
    if mapping is None:
        return None
    return dataclasses.replace(
        learned, cell=cell, origin="option",
        names={key: _meaning(m, mapping) for key, m in learned.names.items()},
        aliases={key: _meaning(m, mapping) for key, m in learned.aliases.items()},
        definitions={key: rename(expr, mapping) for key, expr in learned.definitions.items()},
        inlined={mapping.get(name, name): rename(expr, mapping) for name, expr in learned.inlined.items()},
        implicit=set(learned.implicit), readings=dict(learned.readings), notes=list(learned.notes),
        written_forms={mapping[name]: learned.written(name) for name in mapping})


def states_with_preactivations(learned: Cell, given: Cell) -> bool:
    """True when `learned` is `given` with its gates' pre-activations named: the document writes
    \\hat{f}_t = W_f x_t + U_f h_{t-1} + b_f and then f_t = sigma(\\hat{f}_t), and once each
    such named sum is put back in its one use, some renaming makes the two cells one."""
    reduced = _inline_preactivations(learned)
    return reduced is not None and _renaming(reduced, given) is not None


def _inline_preactivations(cell: Cell) -> Cell | None:
    """`cell` with every named pre-activation -- an intermediate that is a sum with a matrix product
    in it and no function applied, read by exactly one later equation -- put in its place there;
    None when there is none.  (The CIFG's i = 1 - f and the MGU's r = f * h_{t-1} stay: they are
    the cell's own intermediates, not a name for a gate's argument.)"""
    from .environment import at_time

    equations = list(cell.equations)
    dropped = []
    for target in [eq.target for eq in cell.equations]:
        k = next(k for k, eq in enumerate(equations) if eq.target == target)
        eq = equations[k]
        if target in cell.states or target in (cell.output, cell.input) or _applies_function(eq.rhs) \
                or not eq.rhs.atoms(ir.Dot):
            continue
        readers = [j for j, other in enumerate(equations) if j != k and any(
            (ref := symbols.read(sym)) is not None and ref.name == target for sym in other.rhs.free_symbols)]
        if len(readers) != 1 or readers[0] < k:
            continue
        reader = equations[readers[0]]
        replacements = {sym: at_time(eq.rhs, ref.time) for sym in reader.rhs.free_symbols
                        if (ref := symbols.read(sym)) is not None and ref.name == target and ref.role == "value"}
        equations[readers[0]] = dataclasses.replace(reader, rhs=reader.rhs.xreplace(replacements), written=None)
        del equations[k]
        dropped.append(target)
    if not dropped:
        return None
    quantities = {name: q for name, q in cell.quantities.items() if name not in dropped}
    return dataclasses.replace(cell, equations=equations, quantities=quantities)


def _applies_function(expr) -> bool:
    """True when `expr` applies a function (sigma, tanh, a cell-file function) anywhere, products aside."""
    return any(not isinstance(f, (ir.Dot, ir.TDot)) for f in expr.atoms(sympy.Function))


def rename(expr, mapping: dict, keep_order: bool = True):
    """`expr` with every quantity of the learned cell under its name in the given one (`keep_order`:
    sums and products keep their written grouping; else SymPy's canonical form, to compare)."""
    if not isinstance(expr, sympy.Basic):
        return expr
    replacements = {}
    for sym in expr.free_symbols:
        ref = symbols.read(sym)
        if ref is not None and ref.name in mapping:
            replacements[sym] = symbols.vector(mapping[ref.name], ref.time, ref.role)
        elif ref is None and sym.name in mapping:
            replacements[sym] = symbols.parameter(mapping[sym.name])
    if not replacements:
        return expr
    return symbols.replace(expr, replacements) if keep_order else expr.xreplace(replacements)


def _meaning(meaning, mapping: dict):
    return dataclasses.replace(meaning, name=mapping.get(meaning.name, meaning.name),
                               parts=tuple(mapping.get(part, part) for part in meaning.parts))


def _kinds(cell: Cell) -> list:
    return sorted(q.kind for q in cell.quantities.values())


def _renaming(learned: Cell, given: Cell) -> dict | None:
    """learned name -> given name under which every equation of `learned` is the given one's."""
    if _kinds(learned) != _kinds(given) or len(learned.equations) != len(given.equations) \
            or len(learned.states) != len(given.states):
        return None
    for vectors in itertools.islice(_vector_renamings(learned, given), MAX_CANDIDATES):
        mapping = _with_parameters(learned, given, vectors)
        if mapping is not None:
            return mapping
    return None


def _vector_renamings(learned: Cell, given: Cell):
    """Candidate renamings of the vectors: input to input, output to output, then every other
    state and intermediate onto one of the same role (the roles read off the equations)."""
    fixed = {learned.input: given.input, learned.output: given.output}
    learned_roles, given_roles = roles_of(learned), roles_of(given)

    def rest(cell):
        return [eq.target for eq in cell.equations if eq.target not in (cell.input, cell.output)]

    groups: dict[tuple, tuple[list, list]] = {}
    for name in rest(learned):
        key = (learned_roles.get(name, ""), name in learned.states)
        groups.setdefault(key, ([], []))[0].append(name)
    for name in rest(given):
        key = (given_roles.get(name, ""), name in given.states)
        groups.setdefault(key, ([], []))[1].append(name)
    if any(len(mine) != len(theirs) for mine, theirs in groups.values()):
        return
    choices = [[list(zip(mine, order)) for order in itertools.permutations(theirs)] for mine, theirs in groups.values()]
    for combination in itertools.product(*choices):
        yield dict(fixed, **{a: b for pairs in combination for a, b in pairs})


def _with_parameters(learned: Cell, given: Cell, vectors: dict) -> dict | None:
    """`vectors` completed with the parameters, equation by equation: a matrix maps onto the matrix
    that multiplies the same vector, the rest onto the rest in some order; None when an equation
    differs under every choice."""
    mapping = dict(vectors)
    targets = {eq.target: eq for eq in given.equations}
    for eq in learned.equations:
        theirs = targets.get(vectors.get(eq.target))
        if theirs is None:
            return None
        found = _equation_parameters(eq.rhs, theirs.rhs, mapping, learned, given)
        if found is None:
            return None
        mapping = found
    return mapping


def _parameters(expr, cell: Cell) -> list[str]:
    return sorted(s.name for s in expr.free_symbols if symbols.read(s) is None and s.name in cell.quantities
                  and cell.quantities[s.name].is_parameter)


def _equation_parameters(mine, theirs, mapping: dict, learned: Cell, given: Cell) -> dict | None:
    """`mapping` extended by the parameters of one equation so that `mine` renamed is `theirs`."""
    mapping = dict(mapping)
    for dot in mine.atoms(ir.Dot):  # a matrix maps onto the matrix of the same vector
        matrix, vector = dot.args
        partners = [d.args[0] for d in theirs.atoms(ir.Dot) if d.args[1] == rename(vector, mapping, keep_order=False)
                    and isinstance(matrix, sympy.Symbol) and isinstance(d.args[0], sympy.Symbol)]
        if len(partners) == 1 and isinstance(matrix, sympy.Symbol):
            if mapping.setdefault(matrix.name, partners[0].name) != partners[0].name:
                return None
    open_mine = [p for p in _parameters(mine, learned) if p not in mapping]
    open_theirs = [p for p in _parameters(theirs, given) if p not in mapping.values()]
    if len(open_mine) != len(open_theirs) or len(open_mine) > 5:
        return None
    for order in itertools.permutations(open_theirs):
        candidate = dict(mapping, **dict(zip(open_mine, order)))
        if sympy.expand(rename(mine, candidate, keep_order=False) - theirs) == 0:
            return candidate
    return None
