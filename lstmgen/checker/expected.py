"""Expected formulas in the author's notation: their letters, product sign, time style, loss
letter and layout (a row-layout document gets x_t^T δ where the derivation has δ x_t^T)."""
from __future__ import annotations

from ..ir import to_row
from ..printing.latex import LatexPrinter
from .notation import Notation


def to_latex(expr, notation: Notation, last_step: bool = False) -> str:
    """LaTeX of one of the derivation's expressions as the author would write it ('' for None);
    with `last_step`, at the step the author wrote as T."""
    if expr is None:
        return ""
    if last_step:
        from .. import symbols
        expr = symbols.retime(expr, lambda time: "T" + time[1:] if time.startswith("t") else time)
    if notation.inlined:
        expr = _inline(expr, notation.inlined)
    if notation.layout == "row":
        expr = to_row(expr)
    printer = LatexPrinter(notation.cell, notation.hadamard, time=notation.with_time, loss=notation.loss,
                           differential=notation.differential, transpose=notation.transpose,
                           names=notation.written_forms)
    return printer.doprint(expr)


def _inline(expr, inlined: dict):
    """The cell's own names for what the author wrote as an expression (r_t ⊙ h_{t-1}) replaced by it."""
    from .. import symbols
    from .environment import at_time
    mapping = {}
    for sym in expr.free_symbols:
        ref = symbols.read(sym)
        if ref is not None and ref.role == "value" and ref.name in inlined:
            mapping[sym] = at_time(inlined[ref.name], ref.time)
    return symbols.replace(expr, mapping) if mapping else expr


def truth_shape(expr, notation: Notation) -> tuple:
    """The shape of one of the derivation's expressions in the author's layout."""
    from .nodes import shape
    column = shape(expr, Notation(notation.cell))
    return (column[1], column[0]) if notation.layout == "row" and len(column) == 2 else column
