"""NumPy printing: one Python expression per derivation expression, in batch-major (row) layout.

The derivation works on column vectors; generated code holds a batch of N samples as the rows
of an (N, H) array.  So the matrix structure of `lstmgen.ir` turns around:

* ``Dot(W, v)``     W v    ->  ``v @ W``
* ``TDot(W, e)``    Wᵀ e   ->  ``e @ W.T``
* ``Outer(e, v)``   e vᵀ   ->  ``v.T @ e``        (the product also sums over the batch)
* ``BatchSum(e)``   Σ_n e  ->  ``e.sum(axis=0)``  (the gradient of a bias broadcast over the batch)
* ``Stack(a, b)``    [a b]  ->  ``np.concatenate([a, b], axis=1)``  (gate blocks side by side)
* ``WeightGradient(W, e, v)``  e vᵀ stored like W  ->  ``v.T @ e``

A matrix listed in ``transposed`` is stored the other way round (PyTorch's (out, in) weights):
``v @ W.T``, ``e @ W`` and ``e.T @ v`` instead.

Everything elementwise prints as NumPy does it: ``*``, ``+``, ``**``, ``np.tanh``, and
``sigmoid(...)``, a numerically safe helper that every generated module defines.
"""
from __future__ import annotations

import keyword

import sympy
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from ..errors import LstmgenError
from ..functions import UserFunction
from ..ir import Dot, Outer, TDot

_MATMULS = (Dot, TDot, Outer)
# Powers whose two operands are both "simple" hug the operator, as black and ruff format them.
_SIMPLE = (sympy.Symbol, sympy.Integer)


class BatchSum(sympy.Function):
    """Σ_n e over the batch axis: how a per-sample gradient reaches a parameter that every sample shares."""

    nargs = 1


class Stack(sympy.Function):
    """Per-gate (N, H) blocks side by side along the last axis, in block order."""


class Split(sympy.Function):
    """Split(v, k, axis): v cut into k equal blocks along `axis` (1: gate blocks of an (N, k*H) array)."""

    nargs = 3


class ZerosLike(sympy.Function):
    """Zeros of v's shape and dtype: the gradient of a step input that the step does not read."""

    nargs = 1


class Copy(sympy.Function):
    """A copy of e (torch's two biases each get the one bias's gradient)."""

    nargs = 1


class WeightGradient(sympy.Function):
    """dL/dW = e vᵀ for the weight W of a product W v, to be printed in the shape W is stored in."""

    nargs = 3


class NumPyPrinter(StrPrinter):
    """Prints `lstmgen.ir` expressions as batch-major NumPy code.

    `names` maps every SymPy symbol name that may occur (``'c[t-1]'``, ``'dL/dc[t]'``, ``'Wx'``)
    to the Python expression that holds it in the generated function (``'prev_c'``, ...).
    """

    printmethod = "_numpycode"

    def __init__(self, names: dict[str, str], transposed=(), settings=None, copies=None):
        super().__init__(settings)
        self.names = dict(names)
        self.transposed = frozenset(transposed)  # symbol names of matrices stored as (out, in)
        self.copies = dict(copies or {})  # symbol name of a matrix -> Python name of its contiguous transpose

    # ---- precedence ------------------------------------------------------------------
    @staticmethod
    def _rank(expr) -> int:
        """Python precedence of the printed form: a matrix product binds like `*`."""
        if isinstance(expr, _MATMULS):
            return PRECEDENCE["Mul"]
        if isinstance(expr, WeightGradient):
            return PRECEDENCE["Mul"]
        if isinstance(expr, (BatchSum, Stack, Split, ZerosLike, Copy, sympy.core.numbers.Half)):  # 1/2 prints as 0.5, not 1 / 2
            return PRECEDENCE["Atom"]
        return precedence(expr)

    def _group(self, expr, below: int) -> str:
        """`expr` printed, in parentheses when it binds no tighter than `below`."""
        text = self._print(expr)
        return f"({text})" if self._rank(expr) <= below else text

    # ---- atoms -----------------------------------------------------------------------
    def _print_Symbol(self, expr):
        """A symbol prints as the Python name the generated function gives it."""
        try:
            return self.names[expr.name]
        except KeyError:
            raise LstmgenError(f"the NumPy printer has no Python name for {expr.name}") from None

    def _print_Integer(self, expr):
        """Integers print as Python ints, so that they keep the arrays' dtype."""
        return str(int(expr))

    def _print_Rational(self, expr):
        """p/q prints as a division of ints (a Python float keeps float32 arrays float32)."""
        return f"{expr.p} / {expr.q}"

    def _print_Half(self, expr):
        """1/2 prints as 0.5."""
        return "0.5"

    def _print_Exp1(self, expr):
        """e (what exp(1) becomes) -> np.e."""
        return "np.e"

    def _print_Float(self, expr):
        """A float prints with the shortest repr that round-trips."""
        return repr(float(expr))

    # ---- elementwise arithmetic --------------------------------------------------------
    def _print_Add(self, expr):
        """Terms in their stored order (unevaluated sums keep the derivation's order), minus signs pulled out."""
        out = []
        for index, term in enumerate(expr.args):
            negative, magnitude = self._signed(term)
            if index == 0:
                out.append("-" + magnitude if negative else magnitude)
            else:
                out.append(("- " if negative else "+ ") + magnitude)
        return " ".join(out)

    def _signed(self, term) -> tuple[bool, str]:
        """(is the term negative, the term printed without its minus sign)."""
        if isinstance(term, sympy.Number) and term.is_negative:
            return True, self._print(-term)
        if isinstance(term, sympy.Mul) and isinstance(term.args[0], sympy.Number) and term.args[0].is_negative:
            rest = term.args[1:] if term.args[0] == -1 else (-term.args[0], *term.args[1:])
            return True, self._factors(rest)
        if isinstance(term, sympy.Mul):
            return False, self._factors(term.args)
        return False, self._print(term)

    def _print_Mul(self, expr):
        """Elementwise `*` over the factors in their stored order; a factor that is itself a product keeps its
        brackets, as the derivation document groups it."""
        negative, magnitude = self._signed(expr)
        return "-" + magnitude if negative else magnitude

    def _factors(self, factors) -> str:
        """Factors joined by `*`; a reciprocal after the first divides (``a / b``, not ``a * 1 / b``)."""
        if len(factors) == 1:
            return self._group(factors[0], PRECEDENCE["Mul"] - 1)
        text = self._group(factors[0], PRECEDENCE["Mul"])
        for factor in factors[1:]:
            if isinstance(factor, sympy.Pow) and factor.exp.is_number and factor.exp.is_negative:
                text += " / " + self._group(self._reciprocal(factor), PRECEDENCE["Mul"])
            else:
                text += " * " + self._group(factor, PRECEDENCE["Mul"])
        return text

    @staticmethod
    def _reciprocal(power):
        """b**(-e) -> b**e, unevaluated (so that (x*y)**2 stays one power)."""
        base, exp = power.args
        return base if exp == -1 else sympy.Pow(base, -exp, evaluate=False)

    def _print_Pow(self, expr):
        """`**`, hugged between simple operands (``g**2``, ``np.tanh(c) ** 2``); x**(-2) as 1 / x**2, sqrt spelled out."""
        base, exp = expr.args
        if exp.is_number and exp.is_negative:
            return "1 / {}".format(self._group(self._reciprocal(expr), PRECEDENCE["Mul"]))
        if exp == sympy.S.Half:
            return f"np.sqrt({self._print(base)})"
        hug = isinstance(base, _SIMPLE) and isinstance(exp, _SIMPLE) and not (base.is_number and base < 0)
        return ("%s**%s" if hug else "%s ** %s") % (self._group(base, PRECEDENCE["Pow"]),
                                                    self._group(exp, PRECEDENCE["Pow"] - 1))

    # ---- elementwise functions -------------------------------------------------------
    def _call(self, name: str, expr) -> str:
        return "{}({})".format(name, ", ".join(self._print(arg) for arg in expr.args))

    def _print_sigmoid(self, expr):
        """sigmoid(z) calls the generated module's overflow-free helper."""
        return self._call("sigmoid", expr)

    def _print_tanh(self, expr):
        """tanh(z) -> np.tanh(z)."""
        return self._call("np.tanh", expr)

    def _print_exp(self, expr):
        """exp(z) -> np.exp(z)."""
        return self._call("np.exp", expr)

    def _print_log(self, expr):
        """log(z) -> np.log(z)."""
        return self._call("np.log", expr)

    def _print_Abs(self, expr):
        """|z| -> np.abs(z)."""
        return self._call("np.abs", expr)

    def _print_Max(self, expr):
        """Max(a, b) -> np.maximum(a, b), elementwise."""
        return self._pairwise("np.maximum", expr)

    def _print_Min(self, expr):
        """Min(a, b) -> np.minimum(a, b), elementwise."""
        return self._pairwise("np.minimum", expr)

    def _pairwise(self, name: str, expr) -> str:
        args = [self._print(arg) for arg in expr.args]
        text = args[0]
        for arg in args[1:]:
            text = f"{name}({text}, {arg})"
        return text

    def _print_sign(self, expr):
        """sign(z) -> np.sign(z)."""
        return self._call("np.sign", expr)

    def _print_Heaviside(self, expr):
        """The step function -> np.heaviside(z, value at 0) (SymPy's value at 0 is 1/2)."""
        args = list(expr.args) + [sympy.S.Half] * (2 - len(expr.args))
        return "np.heaviside({}, {})".format(self._print(args[0]), self._print(args[1]))

    def _print_UserFunction(self, expr):
        """A function the cell file defines calls the module's helper of that name (reached through the
        function's own printing hook, whatever its name: a cell's `Abs` is not np.abs)."""
        return self._call(expr.label, expr)

    def _print_Function(self, expr):
        """Any other function has no NumPy form here: say so instead of printing unrunnable code."""
        raise LstmgenError(f"the NumPy printer has no form for the function {type(expr).__name__}")

    # ---- matrix structure, batch-major -------------------------------------------------
    def _print_Dot(self, expr):
        """W v -> v @ W: a batch of row vectors times the (in, out) weight (v @ W.T for an (out, in) one)."""
        matrix, vec = expr.args
        if matrix.name in self.transposed and matrix.name in self.copies:
            return "{} @ {}".format(self._group(vec, PRECEDENCE["Mul"]), self.copies[matrix.name])
        if matrix.name in self.transposed:
            return "{} @ {}.T".format(self._group(vec, PRECEDENCE["Mul"]), self._group(matrix, PRECEDENCE["Func"]))
        return "{} @ {}".format(self._group(vec, PRECEDENCE["Mul"]), self._group(matrix, PRECEDENCE["Mul"]))

    def _print_TDot(self, expr):
        """Wᵀ e -> e @ W.T (e @ W for an (out, in) weight)."""
        matrix, delta = expr.args
        if matrix.name in self.transposed:
            return "{} @ {}".format(self._group(delta, PRECEDENCE["Mul"]), self._group(matrix, PRECEDENCE["Mul"]))
        if matrix.name in self.copies:
            return "{} @ {}".format(self._group(delta, PRECEDENCE["Mul"]), self.copies[matrix.name])
        return "{} @ {}.T".format(self._group(delta, PRECEDENCE["Mul"]), self._group(matrix, PRECEDENCE["Func"]))

    def _print_Outer(self, expr):
        """e vᵀ -> v.T @ e, which also sums the per-sample outer products over the batch (e.T @ v for an
        (out, in) weight)."""
        delta, vec = expr.args
        return "{}.T @ {}".format(self._group(vec, PRECEDENCE["Func"]), self._group(delta, PRECEDENCE["Mul"]))

    def _print_WeightGradient(self, expr):
        """dL/dW = e vᵀ in W's storage: v.T @ e for an (in, out) weight, e.T @ v for an (out, in) one."""
        matrix, delta, vec = expr.args
        if matrix.name in self.transposed:
            return "{}.T @ {}".format(self._group(delta, PRECEDENCE["Func"]), self._group(vec, PRECEDENCE["Mul"]))
        return self._print_Outer(Outer(delta, vec))

    def _print_Stack(self, expr):
        """Gate blocks side by side -> np.concatenate([a, b, ...], axis=1)."""
        return "np.concatenate([{}], axis=1)".format(", ".join(self._print(arg) for arg in expr.args))

    def _print_Split(self, expr):
        """v cut into k blocks -> np.split(v, k, axis=1) (np.split(v, k) along the only axis)."""
        source, parts, axis = expr.args
        return "np.split({}, {}{})".format(self._print(source), int(parts), ", axis=1" if int(axis) == 1 else "")

    def _print_ZerosLike(self, expr):
        return "np.zeros_like({})".format(self._print(expr.args[0]))

    def _print_Copy(self, expr):
        return "{}.copy()".format(self._group(expr.args[0], PRECEDENCE["Func"]))

    def _print_BatchSum(self, expr):
        """Σ_n e -> e.sum(axis=0)."""
        return "{}.sum(axis=0)".format(self._group(expr.args[0], PRECEDENCE["Func"]))


def print_numpy(expr: sympy.Expr, names: dict[str, str], transposed=(), copies=None) -> str:
    """`expr` as one NumPy expression, its symbols named by `names` (symbol name -> Python name);
    the matrices named in `transposed` are stored (out, in); `copies` names contiguous copies of
    matrices' transposes, which products with the transpose use instead."""
    return NumPyPrinter(names, transposed, copies=copies).doprint(expr)


def docstring_text(text: str) -> str:
    """Prose from a cell file for a docstring: its backslashes doubled, so that Python reads no escape
    (``\\N`` or ``\\x`` would not even compile) and the docstring says what the cell file says."""
    return text.replace("\\", "\\\\")


def identifier(name: str) -> str:
    """`name` made safe as a Python variable: a keyword gets a trailing underscore (PEP 8)."""
    return name + "_" if keyword.iskeyword(name) else name


# Elementwise functions with a NumPy ufunc (or the module's sigmoid helper) that writes into `out=`.
_UFUNCS = {"sigmoid": "sigmoid", "tanh": "np.tanh", "exp": "np.exp", "log": "np.log", "Abs": "np.abs",
           "sign": "np.sign"}


def numpy_call_into(expr: sympy.Expr, out: str, names: dict[str, str], transposed=(), copies=None):
    """`expr` evaluated into the existing array `out`: its outermost operation as a ufunc call with
    ``out=``, as (function, [arguments]) -- ``("np.multiply", ["a", "b * c", "out=di"])`` -- so no new
    array is allocated for the result; None when that operation has no ufunc."""
    printer = NumPyPrinter(names, transposed, copies=copies)
    p = printer.doprint
    target = f"out={out}"
    if isinstance(expr, sympy.Add) and len(expr.args) > 1:
        *rest, last = expr.args
        head = sympy.Add(*rest, evaluate=False) if len(rest) > 1 else rest[0]
        negative, magnitude = printer._signed(last)
        return ("np.subtract" if negative else "np.add"), [p(head), magnitude, target]
    if isinstance(expr, sympy.Mul) and len(expr.args) > 1:
        *rest, last = expr.args
        if rest == [sympy.Integer(-1)]:
            return "np.negative", [p(last), target]
        head = sympy.Mul(*rest, evaluate=False) if len(rest) > 1 else rest[0]
        if isinstance(last, sympy.Pow) and last.exp.is_number and last.exp.is_negative:
            return "np.divide", [p(head), p(NumPyPrinter._reciprocal(last)), target]
        return "np.multiply", [p(head), p(last), target]
    if isinstance(expr, sympy.Pow) and expr.exp == 2:
        return "np.square", [p(expr.base), target]
    if type(expr).__name__ in _UFUNCS and not isinstance(expr, UserFunction) and len(expr.args) == 1:
        return _UFUNCS[type(expr).__name__], [p(expr.args[0]), target]
    if isinstance(expr, Stack):
        return "np.concatenate", ["[{}]".format(", ".join(p(arg) for arg in expr.args)), "axis=1", target]
    return None


class ScalarPrinter(NumPyPrinter):
    """Prints elementwise expressions on the scalars of one array entry, inside a compiled (Numba) loop:
    the module's sigmoid and the cell file's functions are their scalar helpers ``_sigmoid_scalar``,
    ``_gelu_scalar``; the step function is a conditional expression (NumPy's heaviside does not compile)."""

    # Constants print as real(c), `real` being the arrays' float type: a Python number would make Numba
    # compute float32 entries in float64 (integer powers stay literals: float32 ** 2 is float32).
    def _print_Integer(self, expr):
        return f"real({int(expr)})"

    def _print_Rational(self, expr):
        return f"real({expr.p} / {expr.q})"

    def _print_Half(self, expr):
        return "real(0.5)"

    def _print_Float(self, expr):
        return f"real({float(expr)!r})"

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp.is_Integer and exp > 0:  # hugged as ruff format hugs it: only a simple base
            hug = isinstance(base, _SIMPLE) and not (base.is_number and base < 0)
            return ("{}**{}" if hug else "{} ** {}").format(self._group(base, PRECEDENCE["Pow"]), int(exp))
        if exp.is_number and exp.is_negative:
            return "real(1) / {}".format(self._group(self._reciprocal(expr), PRECEDENCE["Mul"]))
        return super()._print_Pow(expr)

    def _print_sigmoid(self, expr):
        return self._call("_sigmoid_scalar", expr)

    def _print_Heaviside(self, expr):
        z = self._print(expr.args[0])
        at_zero = self._print(expr.args[1] if len(expr.args) > 1 else sympy.S.Half)
        return f"(real(0) if {z} < 0 else ({at_zero} if {z} == 0 else real(1)))"

    def _print_UserFunction(self, expr):
        """A cell file's function calls its scalar helper ``_<name>_scalar``."""
        return self._call("_{}_scalar".format(expr.label), expr)


def print_scalar(expr: sympy.Expr, names: dict[str, str]) -> str:
    """`expr` as a scalar expression of a compiled loop (see `ScalarPrinter`)."""
    return ScalarPrinter(names).doprint(expr)
