"""A generated function given one argument of a wrong shape blames that argument.

For every built-in cell, layout and forward function, the arguments are built from the shapes
the function's docstring documents; then each argument in turn gets a wrong extent on one axis
(one more, or twice as many) or is transposed.  The ValueError must start with that argument's
name when the size it breaks is held by two or more other arguments (the others outvote it); when
exactly one other argument holds that size, the two disagree and nothing says which is right, so
the message must name both.  A transposed matrix is called probably transposed.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from conftest import needs

from lstmgen import cells

SIZES = {"N": 2, "T": 3, "D": 7, "H": 5}  # no two alike, and no G * H equal to D
CASES = [(cell, layout) for cell in cells.builtin_names() for layout in ("cs231n", "torch", "per-gate")
         if layout != "torch" or "torch" in cells.load(cell).layout_orders]


def documented_axes(function) -> dict[str, list[tuple[int, str]]]:
    """{argument: [(multiple, size), ...]} from the docstring's Args lines, `x: (N, 4 * H) ...`."""
    args = inspect.getdoc(function).split("Args:")[1].split("Returns:")[0]
    out = {}
    for name, shape in re.findall(r"^\s*(\w+): \(([^)]*)\)", args, re.M):
        axes = []
        for part in filter(None, (p.strip() for p in shape.split(","))):
            multiple, _, size = part.rpartition("*")
            axes.append((int(multiple) if multiple.strip() else 1, size.strip()))
        out[name] = axes
    return out


def arguments(function, rng) -> tuple[dict, dict]:
    axes = documented_axes(function)
    names = list(inspect.signature(function).parameters)
    assert sorted(names) == sorted(axes), (names, sorted(axes))
    return {n: rng.randn(*[m * SIZES[s] for m, s in axes[n]]) for n in names}, axes


def wrong_shapes(axes: list) -> list[tuple[int, tuple]]:
    """(axis, shape): each axis one longer, then twice as long."""
    right = [m * SIZES[s] for m, s in axes]
    out = []
    for k in range(len(axes)):
        for extent in (right[k] + 1, right[k] * 2):
            shape = list(right)
            shape[k] = extent
            out.append((k, tuple(shape)))
    return out


def blame(function, args, name, bad) -> str:
    with pytest.raises(ValueError) as error:
        function(**dict(args, **{name: bad}))
    return str(error.value)


@pytest.mark.parametrize("target", ["numpy", "numba"])
@pytest.mark.parametrize("level", ["step", "sequence"])
@pytest.mark.parametrize("cell,layout", CASES, ids=["-".join(c) for c in CASES])
def test_the_wrong_argument_is_blamed(module, cell, layout, level, target):
    needs(target)
    generated = module(cell, layout, target)
    function = getattr(generated, f"{cell}_step_forward" if level == "step" else f"{cell}_forward")
    args, axes = arguments(function, np.random.RandomState(0))
    if target == "numpy":
        function(**args)  # the documented shapes are right
    checked = 0
    for name, own in axes.items():
        for k, shape in wrong_shapes(own):
            size = own[k][1]
            holders = [other for other, theirs in axes.items() if other != name and size in dict(theirs).values()]
            if not holders:
                continue  # T: only x holds it, so another T is no error
            message = blame(function, args, name, np.zeros(shape))
            if len(holders) >= 2:
                assert message.startswith(name + ": expected shape"), (name, shape, message)
                assert ";" not in message, message  # it alone
            else:
                assert message.split(":")[0] in (name, holders[0]) and name in message and holders[0] in message, \
                    (name, shape, message)
            checked += 1
        if len(own) == 2 and args[name].shape[0] != args[name].shape[1]:
            message = blame(function, args, name, args[name].T)
            assert message.startswith(name + ": expected shape") and "probably transposed" in message, message
            checked += 1
    assert checked >= 2 * len(axes)


def test_a_transposed_wx_is_not_blamed_on_x(module):
    forward = module("lstm").lstm_forward
    args, _ = arguments(forward, np.random.RandomState(1))
    message = blame(forward, args, "Wx", args["Wx"].T)
    assert message == "Wx: expected shape (7, 20), got (20, 7), probably transposed (Wx.T has the expected shape)"


def test_an_initial_state_of_the_wrong_width_is_blamed_on_itself(module):
    forward = module("lstm").lstm_forward
    args, _ = arguments(forward, np.random.RandomState(2))
    message = blame(forward, args, "h0", np.zeros((2, 6)))
    assert message == "h0: expected shape (2, 5), got (2, 6) (H = 5 as in Wx, Wh, b)"


def test_two_wrong_arguments_are_both_named(module):
    step = module("gru", "torch").gru_step_forward
    args, _ = arguments(step, np.random.RandomState(3))
    with pytest.raises(ValueError) as error:
        step(**dict(args, weight_hh=np.zeros((15, 6)), bias_ih=np.zeros(16)))
    assert str(error.value).startswith("weight_hh: expected shape (15, 5), got (15, 6)")
    assert "; bias_ih: expected shape (15,), got (16,)" in str(error.value)
