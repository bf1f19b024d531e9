"""The shared symbol table: every quantity's SymPy name, LaTeX form and Python identifier.

A vector quantity lives at a time index: ``t``, ``t-1``, ``t+1`` or an absolute step such
as ``0`` or ``1``.  Three roles exist for it, each a plain SymPy symbol whose name we build
(and can therefore read back):

* ``value``    -- ``c[t-1]``     the forward value c_{t-1}
* ``adjoint``  -- ``dL/dc[t]``   the total gradient dL/dc_t reaching c_t
* ``upstream`` -- ``dl/dh[t]``   the loss's own gradient on an output, dl_t/dh_t

Parameters (weights, biases, peepholes) carry no time index; their symbol name is their
cell-file name, e.g. ``W_x^f``.  Every symbol is real, so that SymPy differentiates |z| and
max(0, z) the way a network does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy

from . import ir

ROLES = ("value", "adjoint", "upstream")
_PREFIX = {"value": "", "adjoint": "dL/d", "upstream": "dl/d"}
# t, t-1, t+1, a step (0, 1, ...) and, in printed documents only, the last step T or T-1
_VECTOR_NAME = re.compile(r"^(dL/d|dl/d)?([A-Za-z][A-Za-z0-9_^]*)\[(t|t[+-]\d+|\d+|T|T[+-]\d+)\]$")


@dataclass(frozen=True)
class Quantity:
    """One named thing of a cell: a vector (input, state, gate) or a parameter.

    kind is one of: input, state, intermediate (vectors); matrix, bias, diagonal (parameters).
    latex is the base form without a time index (``\\tilde{c}``); py the Python identifier.
    """

    name: str
    kind: str
    latex: str
    py: str

    @property
    def is_parameter(self) -> bool:
        return self.kind in ("matrix", "bias", "diagonal")


@dataclass(frozen=True)
class Ref:
    """What a vector symbol's name says: its role, quantity name and time index."""

    role: str
    name: str
    time: str


def time_label(offset: int) -> str:
    """0 -> 't', -1 -> 't-1', 1 -> 't+1'."""
    if offset == 0:
        return "t"
    return "t%+d" % offset


def time_offset(time: str) -> int | None:
    """'t-1' -> -1; an absolute time such as '0' -> None."""
    if time == "t":
        return 0
    if time.startswith("t"):
        return int(time[1:])
    return None


def shift_time(time: str, by: int) -> str:
    """Move a time label by `by` steps: shift_time('t-1', 1) == 't', shift_time('0', 1) == '1'."""
    offset = time_offset(time)
    if offset is None:
        return str(int(time) + by)
    return time_label(offset + by)


def fix_time(time: str, t_value: int) -> str:
    """Replace the symbolic t by a concrete step: fix_time('t-1', 1) == '0'."""
    offset = time_offset(time)
    return time if offset is None else str(t_value + offset)


def vector(name: str, time: str = "t", role: str = "value") -> sympy.Symbol:
    """The SymPy symbol of quantity `name` at `time` in `role` (see the module docstring)."""
    return sympy.Symbol("%s%s[%s]" % (_PREFIX[role], name, time), real=True)


def parameter(name: str) -> sympy.Symbol:
    """The SymPy symbol of a parameter (no time index): parameter('W_x^f')."""
    return sympy.Symbol(name, real=True)


def read(symbol: sympy.Symbol) -> Ref | None:
    """The Ref of a vector symbol built by `vector`, or None for a parameter symbol."""
    match = _VECTOR_NAME.match(symbol.name)
    if not match:
        return None
    prefix, name, time = match.groups()
    role = {None: "value", "dL/d": "adjoint", "dl/d": "upstream"}[prefix]
    return Ref(role, name, time)


def retime(expr: sympy.Expr, how) -> sympy.Expr:
    """Apply `how(time) -> time` to every vector symbol of `expr` (e.g. shift t -> t+1)."""
    mapping = {}
    for symbol in expr.free_symbols:
        ref = read(symbol)
        if ref is not None:
            mapping[symbol] = vector(ref.name, how(ref.time), ref.role)
    return replace(expr, mapping)


def replace(expr: sympy.Expr, mapping: dict) -> sympy.Expr:
    """Like xreplace, but products and sums keep the grouping and order the printers rely on."""
    if expr in mapping:
        return mapping[expr]
    if not expr.args:
        return expr
    return ir.rebuild(expr, [replace(arg, mapping) for arg in expr.args])


def latex_name(name: str) -> str:
    """Cell-file name -> LaTeX: 'W_x^f' -> 'W_x^f', 'b_hn' -> 'b_{hn}', 'W_hr^z' -> 'W_{hr}^z'."""
    base, _, sup = name.partition("^")
    head, _, sub = base.partition("_")
    out = head
    if sub:
        out += "_" + (sub if len(sub) == 1 else "{%s}" % sub)
    if sup:
        out += "^" + (sup if len(sup) == 1 else "{%s}" % sup)
    return out


def python_name(name: str) -> str:
    """Cell-file name -> Python identifier: 'W_x^f' -> 'W_x_f'."""
    return name.replace("^", "_")


def with_time(latex: str, time: str) -> str:
    """Attach a time subscript to a base LaTeX form: ('c', 't-1') -> 'c_{t-1}'."""
    sub = time if len(time) == 1 else "{%s}" % time
    if "_" in latex:  # the base already has a subscript: keep it readable
        return "{%s}_%s" % (latex, sub)
    return "%s_%s" % (latex, sub)
