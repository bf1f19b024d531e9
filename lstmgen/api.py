"""The Python API: a cell's derivation whose formulas you read by name, and the other three jobs.

    import lstmgen
    d = lstmgen.derive("lstm")
    d.grad("W_x^f").latex      # the step gradient dL/dW_x^f as the document prints it
    d.grad("h_{t-1}").sympy    # dL/dh_{t-1} as a SymPy expression of lstmgen.ir
    d                          # in a notebook: every gradient, typeset

In a notebook a `Derivation` and a `Formula` display as typeset math (`_repr_latex_`, and Markdown
and HTML for front ends that prefer those).  Names are written as the document writes them:
parameters as the cell file names them (``W_x^f``, ``b^f``), the input at t (``x_t``), each state at
t-1 (the step gradient), at t (its total, the recurrence) and at 0; braces and spaces are optional
(``h_{t-1}`` or ``h_t-1``).  Nothing here derives anything itself: every formula is read from the
one `reverse.Derivation` and printed by the document's LaTeX printer.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import sympy

from . import reverse, symbols
from .errors import LstmgenError
from .printing.latex import DEFAULT_STYLE, LOSS, Style, derivative, latex


@dataclass(frozen=True)
class Formula:
    """One gradient of a derivation: dL/d`name` = `sympy`, with both sides as LaTeX."""

    name: str
    lhs: str
    sympy: sympy.Expr
    latex: str

    def __str__(self) -> str:
        return f"{self.lhs} = {self.latex}"

    def _repr_latex_(self) -> str:
        return f"$$ {self} $$"

    def _repr_markdown_(self) -> str:
        return f"$$\n{self}\n$$"


class Derivation:
    """The backward pass of one cell: every gradient by name (`grad`), all of them (`formulas`).

    `style` is the LaTeX's notation (`lstmgen.printing.latex.Style`: the elementwise product's
    sign, the transpose's superscript, the cell file's names or plain ones, column or row vectors);
    `grad` takes the names in the cell file's own notation whatever the style."""

    def __init__(self, derivation: reverse.Derivation, style: Style = DEFAULT_STYLE):
        self.derivation = derivation
        self.cell = derivation.cell
        self.style = style
        self._table = self._formulas()

    @property
    def names(self) -> list[str]:
        """The names `grad` accepts, in the document's order."""
        return [formula.name for formula in self._table.values()]

    def formulas(self) -> list[Formula]:
        return list(self._table.values())

    def grad(self, name: str, *, summed: bool = False) -> Formula:
        """dL/d`name`: a parameter's step gradient (`summed`: its sum over t), the input's at t, or a
        state's at t-1 (step), t (total) or 0."""
        key = _key(name)
        if key not in self._table:
            raise LstmgenError("%s has no gradient named %r: use one of %s"
                               % (self.cell.name, name, ", ".join(self.names)))
        formula = self._table[key]
        if not summed:
            return formula
        if key not in self._parameters:
            raise LstmgenError("summed=True is for parameters (%s), not %s"
                               % (", ".join(self._table[k].name for k in self._parameters), name))
        expr = self.derivation.summed(self._parameters[key])
        return Formula(formula.name, formula.lhs, expr, self._latex(expr))

    # ---- display -----------------------------------------------------------------------------
    def _repr_latex_(self) -> str:
        rows = [f"{f.lhs} &= {f.latex}" for f in self._table.values()]
        return "$$ \\begin{aligned} %s \\end{aligned} $$" % r" \\ ".join(rows)

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.cell.title}**: the backward pass, one gradient per line", ""]
        lines += [f"$$\n{formula}\n$$\n" for formula in self._table.values()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(f"<li>$$ {html.escape(str(formula))} $$</li>" for formula in self._table.values())
        return f"<p><b>{html.escape(self.cell.title)}</b>: the backward pass</p><ul>{items}</ul>"

    def __repr__(self) -> str:
        return f"<Derivation of {self.cell.name}: {len(self._table)} gradients>"

    # ---- the table of formulas ------------------------------------------------------------
    def _latex(self, expr) -> str:
        return latex(expr, self.cell, self.style)

    def _formula(self, wrt: sympy.Expr, expr: sympy.Expr) -> Formula:
        name = latex(wrt, self.cell)
        return Formula(name, derivative(LOSS, wrt, self.cell, self.style), expr, self._latex(expr))

    def _formulas(self) -> dict[str, Formula]:
        d, cell = self.derivation, self.cell
        table, self._parameters = {}, {}
        def rank(item):  # parameters, then the input, then the previous states
            ref = symbols.read(item[1].wrt)
            return 0 if ref is None else 1 if ref.name == cell.input else 2

        for name, gradient in sorted(d.step.items(), key=rank):
            formula = self._formula(gradient.wrt, gradient.expr())
            table[_key(formula.name)] = formula
            if symbols.read(gradient.wrt) is None:
                self._parameters[_key(formula.name)] = name
        for state in cell.states:
            total = Formula(latex(symbols.vector(state, "t"), cell), self._latex(symbols.vector(state, "t", "adjoint")),
                            d.state_total(state), self._latex(d.state_total(state)))
            initial = Formula(latex(symbols.vector(state, "0"), cell), self._latex(symbols.vector(state, "0", "adjoint")),
                              d.initial(state), self._latex(d.initial(state)))
            table[_key(total.name)] = total
            table[_key(initial.name)] = initial
        return table


def _key(name: str) -> str:
    """A name as `grad` compares it: no spaces or braces, no leading dL/d."""
    key = "".join(ch for ch in name if ch not in " {}")
    return key.removeprefix("dL/d")


def derive(cell: str, hadamard: str = "*", transpose: str = "T", names: str = "cell",
           vectors: str = "column") -> Derivation:
    """The derivation of a built-in cell (its name) or a cell file (its path); the options are the
    LaTeX's notation, as `lstmgen derive` takes them (--hadamard, --transpose, --names, --vectors)."""
    from .render import style_of

    return Derivation(reverse.derive(cell), style_of(hadamard, transpose, names, vectors))


def document(cell: str, format: str = "tex", hadamard: str = "*", transpose: str = "T",  # noqa: A002
             names: str = "cell", vectors: str = "column", compact: bool = False) -> str:
    """The derivation document of `cell` as LaTeX ('tex'), Markdown ('md') or HTML ('html') source,
    in the notation the options ask for (those of `lstmgen derive`)."""
    from .render import render_document, style_of

    return render_document(cell, format, style_of(hadamard, transpose, names, vectors, compact))


def codegen(cell: str, layout: str = "cs231n", target: str = "numpy") -> str:
    """The source of the generated forward/backward module of `cell` (layout cs231n, torch or
    per-gate; target numpy or numba)."""
    from .render import render_module

    return render_module(cell, layout, target)
