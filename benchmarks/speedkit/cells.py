"""The cells the speed benchmark knows, and how their parameters map onto a generated module.

Every hand-written peer (PyTorch, JAX, per-step NumPy) takes its parameters in the layout
declared here: a matrix applied to a vector v is stored (len(v), blocks * H) and used as
v @ W, a vector parameter is (blocks * H,), and the gate blocks sit along the last axis in the
order of `Param.blocks`.  Blocks are named by the superscript of the cell file's symbols
(W_x^c is block "c").  A generated module may order its blocks differently: `Layout` reads
the order from the module's docstring and permutes, so the cross-check compares like with like.
"""
from __future__ import annotations

import importlib.util
import sys
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILTIN_CELL_DIR = ROOT / "lstmgen" / "cell_files"
USER_CELL_DIR = HERE.parent / "cells"


@dataclass(frozen=True)
class Param:
    name: str  # the generated signature's positional name
    kind: str  # "x": matrix on the input; "rec": matrix on a per-step recurrent vector; "vec": bias or diagonal
    blocks: tuple[str, ...]  # gate blocks along the last axis, in the peers' order
    rows: str | None = None  # "D" or "H" for a matrix

    def shape(self, D, H):
        cols = len(self.blocks) * H
        if self.kind == "vec":
            return (cols,)
        return ({"D": D, "H": H}[self.rows], cols)


@dataclass(frozen=True)
class Cell:
    name: str
    title: str
    states: tuple[str, ...]  # the first one is the output h
    params: tuple[Param, ...]  # in the generated signature's order, after x and h0
    cached: tuple[str, ...]  # per-step (N, H) arrays the backward needs besides h (memory floor)
    torch_nn: str | None = None  # torch.nn module computing the same cell, if any
    torch_order: tuple[str, ...] | None = None  # its gate block order
    user: bool = False  # a cell file of benchmarks/cells/, generated at benchmark start

    @property
    def gates(self):
        """Gate pre-activation blocks per step: the blocks of the input matrix."""
        return len(next(p for p in self.params if p.kind == "x").blocks)

    def cell_file(self):
        folder = USER_CELL_DIR if self.user else BUILTIN_CELL_DIR
        return folder / (self.name + ".cell")


def _lstm_like(name, title, blocks, cached, extra=(), **kw):
    params = (Param("Wx", "x", blocks, "D"), Param("Wh", "rec", blocks, "H"), Param("b", "vec", blocks)) + extra
    return Cell(name, title, ("h", "c"), params, cached, **kw)


CELLS = {
    "lstm": _lstm_like("lstm", "LSTM", ("i", "f", "o", "c"), ("i", "f", "o", "g", "c"),
                       torch_nn="LSTM", torch_order=("i", "f", "c", "o")),
    "gru": Cell("gru", "GRU (PyTorch's equations)", ("h",),
                (Param("Wx", "x", ("r", "z", "n"), "D"), Param("Wh", "rec", ("r", "z", "n"), "H"),
                 Param("bx", "vec", ("r", "z", "n")), Param("bh", "vec", ("r", "z", "n"))),
                ("r", "z", "n", "W_h^n h + b_h^n"), torch_nn="GRU", torch_order=("r", "z", "n")),
    "rnn": Cell("rnn", "vanilla RNN", ("h",),
                (Param("Wx", "x", ("h",), "D"), Param("Wh", "rec", ("h",), "H"), Param("b", "vec", ("h",))),
                (), torch_nn="RNN", torch_order=("h",)),
    "peephole_lstm": _lstm_like("peephole_lstm", "peephole LSTM", ("i", "f", "o", "c"), ("i", "f", "o", "g", "c"),
                                extra=(Param("p", "vec", ("i", "f", "o")),)),
    "cifg_lstm": _lstm_like("cifg_lstm", "coupled input-forget gate LSTM", ("f", "o", "c"), ("f", "o", "g", "c")),
    "mgu": Cell("mgu", "minimal gated unit", ("h",),
                (Param("Wx", "x", ("f", "n"), "D"), Param("Wh", "rec", ("f",), "H"), Param("Wr", "rec", ("n",), "H"),
                 Param("b", "vec", ("f", "n"))),
                ("f", "n")),  # r = f * h[t-1] is recomputed from f and h
    "leaky_cifg": _lstm_like("leaky_cifg", "coupled-gate LSTM with softsign activations and a leaky output",
                             ("f", "o", "c"), ("f", "o", "g", "c"), user=True),
}
BUILTIN = [name for name, cell in CELLS.items() if not cell.user]


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's cached kernels look their module up by name
    spec.loader.exec_module(module)
    return module


# "    Wx (D, 4 * H): W_x^i, W_x^f, W_x^o, W_x^c  (gates i, f, o, g)" in the module docstring
_BLOCK_LINE = re.compile(r"^\s+(\w+) \(([^)]*)\):\s*(.*?)\s*\(gates [^)]*\)\s*$")
# "        Wx: (D, 4 * H) weights applied to x, gate blocks i, f, o, g" in the forward's docstring
_ARG_LINE = re.compile(r"^\s+(\w+): \(([^)]*)\)\s*(.*)$")


def _dims(text, D, H):
    """'D, 4 * H' -> (D, 4H); None when the text is not such a product list."""
    out = []
    for part in [p.strip() for p in text.split(",")]:
        if not part:
            continue
        value = 1
        for factor in [f.strip() for f in part.split("*")]:
            if factor.isdigit():
                value *= int(factor)
            elif factor in ("D", "H"):
                value *= {"D": D, "H": H}[factor]
            else:
                return None
        out.append(value)
    return tuple(out)


class Layout:
    """What a generated module says about its parameters, and the block permutation to the peers' layout.

    `notes` collects every place where the module's own description could not be read and the
    declaration above was assumed instead."""

    def __init__(self, cell: Cell, module):
        self.cell = cell
        self.module = module
        self.notes = []
        self.forward = getattr(module, cell.name + "_forward")
        self.backward = getattr(module, cell.name + "_backward")
        names = [p.name for p in inspect.signature(self.forward).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        expected = ["x", "h0"] + [p.name for p in cell.params]
        if names != expected:
            self.notes.append("signature %s(%s), expected (%s); arguments passed by position"
                              % (self.forward.__name__, ", ".join(names), ", ".join(expected)))
        doc = inspect.getdoc(module) or ""
        self.order, self._shape_text = {}, {}
        for line in doc.splitlines():
            m = _BLOCK_LINE.match(line)
            if m:
                symbols = [s.strip() for s in m.group(3).split(",")]
                self.order[m.group(1)] = tuple(s.split("^", 1)[1] if "^" in s else s for s in symbols)
                self._shape_text[m.group(1)] = m.group(2)
        self.applied = {}  # matrix name -> the vector it multiplies, as the forward's docstring says
        for line in (inspect.getdoc(self.forward) or "").splitlines():
            m = _ARG_LINE.match(line)
            if m:
                self._shape_text.setdefault(m.group(1), m.group(2))
                a = re.search(r"applied to (\w+)", m.group(3))
                if a:
                    self.applied[m.group(1)] = a.group(1)
        for p in cell.params:
            if len(p.blocks) == 1:
                self.order[p.name] = p.blocks
            elif p.name not in self.order:
                self.notes.append("no block order for %s in the module docstring; assumed %s" % (p.name, " ".join(p.blocks)))
                self.order[p.name] = p.blocks
            elif sorted(self.order[p.name]) != sorted(p.blocks):
                self.notes.append("%s blocks %s in the module, %s declared; assumed the declared order"
                                  % (p.name, " ".join(self.order[p.name]), " ".join(p.blocks)))
                self.order[p.name] = p.blocks

    def shape(self, param, D, H):
        """The module's stated shape of a parameter, else the declared one."""
        text = self._shape_text.get(param.name)
        dims = _dims(text, D, H) if text else None
        if dims is None:
            return param.shape(D, H)
        if dims != param.shape(D, H):
            self.notes.append("%s: module says (%s), declared %s" % (param.name, text, param.shape(D, H)))
        return dims

    def is_input_matrix(self, param):
        """True when the matrix multiplies the input x (one batched product over all steps)."""
        applied = self.applied.get(param.name)
        if applied is None:
            return param.kind == "x"
        return applied == "x"

    # block permutations; arrays carry the blocks along their last axis
    @staticmethod
    def _permute(array, source, target):
        import numpy as np

        if tuple(source) == tuple(target):
            return array
        width = array.shape[-1] // len(source)
        parts = {name: array[..., k * width:(k + 1) * width] for k, name in enumerate(source)}
        return np.concatenate([parts[name] for name in target], axis=-1)

    def to_peer(self, params):
        """Module-layout parameter list -> the peers' layout."""
        return [self._permute(a, self.order[p.name], p.blocks) for p, a in zip(self.cell.params, params)]

    def to_module(self, params):
        return [self._permute(a, p.blocks, self.order[p.name]) for p, a in zip(self.cell.params, params)]


def reorder(array, source, target):
    """Blocks along the last axis from `source` order to `target` order (used for torch.nn's layout)."""
    return Layout._permute(array, source, target)
