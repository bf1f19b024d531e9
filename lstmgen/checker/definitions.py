"""The names a document defines and reads: δ_o^{(t)} = ..., δ_t := ..., dΓ_o = ... (a gate's
gradient name, used later as the author defined it), the names read from their form alone (ε_C
for ∂J/∂C_t), and the reading a family of them shares (δ_f, δ_i, δ_o: pre-activation gradients).
They become part of the document's `Notation` (`Notation.definitions`), in document order."""
from __future__ import annotations

from collections import Counter

from .. import symbols
from .nodes import Chain, Partial
from .notation import GRADIENT_BASES, Notation, make_key, split_key
from .parse import build_side, sides_of
from .reader import _ADJOINT, AuthorsToIR

_DERIVATIVE_NODES = (Chain, Partial)


def define_names(equations, notation: Notation) -> dict:
    """Read the names the document defines into `notation.definitions`, in document order so that
    a definition may use earlier ones: δ_o^{(t)} = ..., δ_t := ..., and a gate's gradient name
    dΓ_o = ... (which later equations use as the author defined it, whether the gradient of the
    gate or of its pre-activation).  Returns {index of the defining equation: the defined key}."""
    from .evaluation import lower
    defining = {}
    _implicit_gradients(equations, notation)
    for index, eq in enumerate(equations):
        if "=" not in eq.text and "equiv" not in eq.text and "coloneqq" not in eq.text:
            continue
        try:
            sides = sides_of(eq.text)
            if len(sides) < 2:
                continue
            key = _defined_key(sides[0], notation)
            if key is None:
                continue
            rhs = build_side(sides[1], notation)
        except Exception:  # noqa: BLE001 - an unreadable equation defines nothing; the judge reports it
            continue
        expr = lower(rhs.expr)
        if not any(symbols.read(s) is not None and symbols.read(s).role != "value" for s in expr.free_symbols) \
                and not expr.has(*_DERIVATIVE_NODES):
            continue  # no gradient on the right: not a derivative claim (a forward quantity, a constant)
        notation.definitions[key] = expr
        notation.implicit.discard(key)
        defining[index] = key
    _family_readings(notation, defining)
    return defining


def _implicit_gradients(equations, notation: Notation) -> None:
    """Names of gradients read from their form (ε_C^{(t)} for ∂J/∂C^{(t)}, introduced in prose): a
    state's total gradient, or a gate's pre-activation gradient.  An equation that defines the name
    replaces this reading from there on (its own right side may use it: ε_C^{(t+1)})."""
    from .targets import preactivation_gradient, value_gradient
    text = " ".join(eq.text for eq in equations)
    cell = notation.cell
    for written, meaning in list(notation.names.items()):
        if meaning.kind != "vector" or meaning.name == cell.input:
            continue
        short = split_key(written)[1] or written
        for base in GRADIENT_BASES:
            if base not in text:
                continue
            # in a fixed order (not a set's, which changes with the hash seed and so the report)
            for key in dict.fromkeys([make_key(base, short, ""), make_key(base, "", short),
                                      make_key(base, written, ""), make_key(base, "", written)]):
                if key in notation.names or key in notation.definitions:
                    continue
                pre = None if meaning.name in cell.states else preactivation_gradient(cell, meaning.name)
                notation.definitions[key] = pre if pre is not None else value_gradient(cell, meaning.name)
                notation.implicit.add(key)


def _family_readings(notation: Notation, defining: dict) -> None:
    """The reading a family of defined names shares (δ_f, δ_i, δ_o: all pre-activation gradients),
    when its definitions agree on one: a member that fits only the other reading is then wrong."""
    from .evaluation import agree, truth, values
    from .targets import definition_readings
    votes: dict = {}
    for key in defining.values():
        base = split_key(key)[0] if not key.startswith("d") else "d"
        try:
            got = values(notation.definitions[key], notation)
        except Exception:  # noqa: BLE001 - an unevaluable definition casts no vote
            continue
        try:
            readings = definition_readings(key, notation, prefer_preactivation=True, tagged=True)
        except Exception:  # noqa: BLE001 - a name no reading fits casts no vote
            continue
        for tag, _, expr in readings:
            try:
                if agree(got, truth(expr, notation)):
                    votes.setdefault(base, []).append(tag)
                    break
            except Exception:  # noqa: BLE001
                continue
    for base, tags in votes.items():
        counts = Counter(tags)
        if len(tags) >= 2 and len(counts) >= 1:
            best, n = counts.most_common(1)[0]
            if n > len(tags) - n and n >= 2:
                notation.readings[base] = best


def _defined_key(left, notation: Notation) -> str | None:
    """The key a left side defines: a new name at t (δ_o^{(t)}), or the gradient name of a gate
    (dΓ_o, δ o_t); None for anything else."""
    from .reader import _Differential, _Name
    reader = AuthorsToIR(notation)
    raw = reader.transform(left.tree) if not hasattr(left.tree, "type") else reader.letter([left.tree])
    if isinstance(raw, _Differential) and isinstance(raw.of, _Name):
        key, time, post = reader.split(raw.of)
        meaning = notation.meaning(key)
        if post or time not in ("t", None) or meaning is None or meaning.kind != "vector":
            return None
        if meaning.name in notation.cell.states or meaning.name == notation.cell.input:
            return None  # dh_t, dc_t: total gradients, judged as such
        return "d" + key
    if not isinstance(raw, _Name):
        return None
    key, time, post = reader.split(raw)
    if post or time not in ("t", None) or (notation.meaning(key) is not None and key not in notation.implicit):
        return None
    adjoint = _ADJOINT.match(key)
    if adjoint and notation.meaning(adjoint.group(1) + adjoint.group(2)) is not None:
        return None  # \bar{W}_{in}: the adjoint of a symbol of the cell, a gradient claim like ∂L/∂W_{in}
    return key
