"""lstmgen: derive, document, generate and check the backward pass of recurrent cells.

The API (see `lstmgen.api`): `derive(cell)` returns a `Derivation` whose formulas you read by name;
`document`, `codegen` and `check` do what the commands of the same names do, and return text or a
report object.  Imports are lazy, so that the command line starts fast.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["check", "codegen", "derive", "document"]


def derive(cell, hadamard="*", transpose="T", names="cell", vectors="column"):
    """The `lstmgen.api.Derivation` of a built-in cell (its name) or a cell file (its path), its
    LaTeX in the notation the options of `lstmgen derive` ask for."""
    from .api import derive as _derive

    return _derive(cell, hadamard=hadamard, transpose=transpose, names=names, vectors=vectors)


def document(cell, format="tex", hadamard="*", transpose="T", names="cell", vectors="column",  # noqa: A002
             compact=False):
    """The derivation document of `cell` as LaTeX ('tex'), Markdown ('md') or HTML ('html') source,
    with the notation options of `lstmgen derive`."""
    from .api import document as _document

    return _document(cell, format=format, hadamard=hadamard, transpose=transpose, names=names, vectors=vectors,
                     compact=compact)


def codegen(cell, layout="cs231n", target="numpy"):
    """The source of the generated forward/backward module of `cell`."""
    from .api import codegen as _codegen

    return _codegen(cell, layout=layout, target=target)


def check(text, cell=None, source="<text>"):
    """Check a handwritten derivation; see `lstmgen.checker.check_text`."""
    from .checker import check_text

    return check_text(text, cell=cell, source=source)
