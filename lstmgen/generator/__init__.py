"""Code generation, one stage per module, data flowing one way:

    layout.py        the cell's gates and argument groups in a layout (cs231n, torch, per-gate)
    program.py       the backward program: forward and backward statements on symbols, built once
    naming.py        Python names for the program's symbols, with the clash checks
    format.py        line layout: long signatures and assignments, then ruff format over the module
    sequence.py      the batched sequence functions: what is hoisted, where each value lives
    numpy_target.py  the program printed into the NumPy module template
    numba_target.py  the same, each step's elementwise work fused into Numba loops

A target reads the program; it never differentiates or regroups anything.
"""
from __future__ import annotations

from ..reverse import Derivation
from . import numba_target, numpy_target
from .layout import LAYOUTS, CellLayout
from .program import Program, build

TARGETS = {"numpy": numpy_target, "numba": numba_target}


def program(derivation: Derivation, layout: str = "cs231n") -> Program:
    """The backward program of `derivation`'s cell in `layout`."""
    return build(CellLayout(derivation, layout))


def module_context(derivation: Derivation, layout: str = "cs231n", target: str = "numpy") -> dict:
    """Everything the target's template fills in, for `derivation` in `layout`."""
    if target not in TARGETS:
        from ..errors import LstmgenError

        raise LstmgenError("unknown target {!r}: use one of {}".format(target, ", ".join(TARGETS)))
    return TARGETS[target].module_context(program(derivation, layout))


__all__ = ["LAYOUTS", "TARGETS", "Program", "module_context", "program"]
