"""A generated cache owns what it keeps, and a backward names a cache that is not its own.

The caller keeps its arrays: it may refill the input buffer for the next batch, scale a returned
state, or update the parameters in place before it calls the backward.  None of that may change the
gradients of a forward that has already run (PyTorch raises in this case; we copy).  The reference
is the same backward run on arrays that nobody touched.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_layouts import LAYOUT_CELLS, STATES, make_args

from lstmgen import render

TARGETS = render.TARGETS


def _spoil(arrays):
    """Overwrite every array in place, as a caller reusing its buffers would."""
    for k, array in enumerate(arrays):
        array[...] = 3.0 + k


@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_the_step_cache_owns_its_inputs_states_parameters_and_returned_states(module, layout, cell):
    mod = module(cell, layout, "numpy")
    forward, backward = getattr(mod, cell + "_step_forward"), getattr(mod, cell + "_step_backward")
    rng = np.random.RandomState(11)
    args = make_args(cell, layout, "step", 2, 1, 4, 3, rng)
    upstream = [rng.randn(2, 3) for _ in STATES[cell]]
    *_, cache = forward(*[a.copy() for a in args])
    expected = backward(*upstream, cache)

    *returned, cache = forward(*args)
    _spoil(args)
    _spoil(returned)
    for ours, theirs in zip(backward(*upstream, cache), expected):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shape", [(2, 3, 4, 3), (1, 3, 4, 3), (2, 1, 4, 3), (1, 1, 4, 3)],
                         ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_the_sequence_cache_owns_its_inputs_and_parameters(module, layout, cell, target, shape):
    """Including N = 1 and T = 1, where a transposed x is already contiguous and a view would do."""
    N, T, D, H = shape
    mod = module(cell, layout, target)
    forward, backward = getattr(mod, cell + "_forward"), getattr(mod, cell + "_backward")
    rng = np.random.RandomState(12)
    args = make_args(cell, layout, "sequence", N, T, D, H, rng)
    dh = rng.randn(N, T, H)
    h, cache = forward(*[a.copy() for a in args])
    expected = backward(dh, cache)

    h, cache = forward(*args)
    _spoil(args)
    h *= 5.0
    for ours, theirs in zip(backward(dh, cache), expected):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_backward_given_a_wrong_cache_names_the_cache(module, cell, target):
    mod = module(cell, "cs231n", target)
    rng = np.random.RandomState(13)
    step_args = make_args(cell, "cs231n", "step", 2, 1, 4, 3, rng)
    seq_args = make_args(cell, "cs231n", "sequence", 2, 3, 4, 3, rng)
    *_, step_cache = getattr(mod, cell + "_step_forward")(*step_args)
    _, seq_cache = getattr(mod, cell + "_forward")(*seq_args)
    upstream = [rng.randn(2, 3) for _ in STATES[cell]]
    wrong = [None, (1, 2, 3), {"x": 1}, seq_cache]
    for cache in wrong:
        with pytest.raises(ValueError, match=r"^cache: expected the \w+StepCache that %s_step_forward returns"
                           % cell):
            getattr(mod, cell + "_step_backward")(*upstream, cache)
    for cache in [None, tuple(seq_cache), step_cache]:
        with pytest.raises(ValueError, match=r"^cache: expected the \w+Cache that %s_forward returns" % cell):
            getattr(mod, cell + "_backward")(rng.randn(2, 3, 3), cache)
