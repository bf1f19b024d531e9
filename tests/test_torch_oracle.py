"""A second autodiff as witness: the generated gradients against PyTorch autograd, in float64.

Weight mapping CS231n <-> torch: torch stores W_ih as (G*H, D), i.e. Wx transposed, with the LSTM
gate blocks in the order i, f, g, o (ours: the cell's gate order i, f, o, g), and has a second
bias b_hh, which we set to zero.  torch is a test-only dependency: without it these tests skip,
unless LSTMGEN_REQUIRE_TORCH=1 (as in CI), which makes them fail.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import scale_error

from lstmgen import cells

SOURCES = ["rendered", "generated"]
SHAPES = [(3, 3, 4, 5), (1, 1, 2, 1), (2, 4, 3, 2)]  # (N, T, D, H)
TORCH_GATE_ORDER = {"lstm": ["i", "f", "g", "o"], "rnn": ["h"]}
TOLERANCE = 1e-10  # both sides compute in float64; only rounding separates them


def block_order(cell: str) -> list[int]:
    """Indices of our gate blocks in torch's order (a permutation of the gate axis' blocks)."""
    ours = cells.load(cell).gate_order
    return [ours.index(gate) for gate in TORCH_GATE_ORDER[cell]]


def reorder(array: np.ndarray, order: list[int], inverse: bool = False) -> np.ndarray:
    """Permute the blocks of the last axis: ours -> torch, or torch -> ours with `inverse`."""
    blocks = np.split(array, len(order), axis=-1)
    if inverse:
        result = [None] * len(order)
        for position, index in enumerate(order):
            result[index] = blocks[position]
        return np.concatenate(result, axis=-1)
    return np.concatenate([blocks[index] for index in order], axis=-1)


def torch_layer(torch, cell: str, D: int, H: int, Wx, Wh, b, sequence: bool):
    """torch's module for `cell` carrying our weights."""
    nn = torch.nn
    if cell == "lstm":
        layer = (nn.LSTM(D, H, batch_first=True) if sequence else nn.LSTMCell(D, H)).double()
    else:
        layer = (nn.RNN(D, H, nonlinearity="tanh", batch_first=True) if sequence
                 else nn.RNNCell(D, H, nonlinearity="tanh")).double()
    suffix = "_l0" if sequence else ""
    order = block_order(cell)
    with torch.no_grad():
        getattr(layer, "weight_ih" + suffix).copy_(torch.from_numpy(reorder(Wx, order).T.copy()))
        getattr(layer, "weight_hh" + suffix).copy_(torch.from_numpy(reorder(Wh, order).T.copy()))
        getattr(layer, "bias_ih" + suffix).copy_(torch.from_numpy(reorder(b, order)))
        getattr(layer, "bias_hh" + suffix).zero_()
    return layer, suffix


def weight_gradients(layer, suffix: str, cell: str):
    """dWx, dWh, db in our layout from torch's parameter gradients."""
    order = block_order(cell)
    grad = {name: getattr(layer, name + suffix).grad.numpy() for name in ("weight_ih", "weight_hh", "bias_ih")}
    return (reorder(grad["weight_ih"].T, order, inverse=True), reorder(grad["weight_hh"].T, order, inverse=True),
            reorder(grad["bias_ih"], order, inverse=True))


def weights(cell, D, H, rng):
    G = len(cells.load(cell).gate_order)
    return rng.randn(D, G * H) * 0.5, rng.randn(H, G * H) * 0.5, rng.randn(G * H) * 0.5


def test_block_mapping_round_trips():
    order = block_order("lstm")
    assert order == [0, 1, 3, 2]
    array = np.arange(8.0)
    assert list(reorder(array, order)) == [0, 1, 2, 3, 6, 7, 4, 5]
    np.testing.assert_array_equal(reorder(reorder(array, order), order, inverse=True), array)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_step_matches_torch(torch, numpy_module, cell, shape, source):
    N, _, D, H = shape
    rng = np.random.RandomState(20)
    module = numpy_module(cell, source)
    n_states = len(cells.load(cell).states)
    x, states = rng.randn(N, D), [rng.randn(N, H) for _ in range(n_states)]
    Wx, Wh, b = weights(cell, D, H, rng)
    upstream = [rng.randn(N, H) for _ in range(n_states)]

    *ours, cache = getattr(module, cell + "_step_forward")(x, *states, Wx, Wh, b)
    our_grads = getattr(module, cell + "_step_backward")(*upstream, cache)

    layer, suffix = torch_layer(torch, cell, D, H, Wx, Wh, b, sequence=False)
    tx = torch.tensor(x, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in states]
    outputs = layer(tx, tuple(tstates)) if n_states > 1 else (layer(tx, tstates[0]),)
    loss = sum((out * torch.from_numpy(up)).sum() for out, up in zip(outputs, upstream))
    loss.backward()

    for mine, theirs in zip(ours, outputs):
        assert scale_error(mine, theirs.detach().numpy()) < TOLERANCE
    expected = [tx.grad.numpy()] + [s.grad.numpy() for s in tstates] + list(weight_gradients(layer, suffix, cell))
    for index, (mine, theirs) in enumerate(zip(our_grads, expected)):
        assert mine.shape == theirs.shape
        assert scale_error(mine, theirs) < TOLERANCE, f"gradient {index}"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_sequence_matches_torch(torch, numpy_module, cell, shape, source):
    N, T, D, H = shape
    rng = np.random.RandomState(21)
    module = numpy_module(cell, source)
    x, h0 = rng.randn(N, T, D), rng.randn(N, H)
    Wx, Wh, b = weights(cell, D, H, rng)
    dh = rng.randn(N, T, H)

    h, cache = getattr(module, cell + "_forward")(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = getattr(module, cell + "_backward")(dh, cache)

    layer, suffix = torch_layer(torch, cell, D, H, Wx, Wh, b, sequence=True)
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    initial = (th0[None], torch.zeros(1, N, H, dtype=torch.float64)) if cell == "lstm" else th0[None]
    out, _ = layer(tx, initial)
    (out * torch.from_numpy(dh)).sum().backward()

    assert scale_error(h, out.detach().numpy()) < TOLERANCE
    expected = [tx.grad.numpy(), th0.grad.numpy(), *weight_gradients(layer, suffix, cell)]
    for index, (mine, theirs) in enumerate(zip([dx, dh0, dWx, dWh, db], expected)):
        assert mine.shape == theirs.shape
        assert scale_error(mine, theirs) < TOLERANCE, f"gradient {index}"


# ---------------------------------------------------------------- the torch layout: an nn module's arrays as they are
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_checked_in_torch_modules_take_an_nn_modules_arrays(torch, cell):
    """The user story of --layout torch: hand weight_ih_l0 & co. of an nn.LSTM / nn.GRU straight in."""
    from conftest import ROOT, load_module

    module = load_module(ROOT / "generated" / f"{cell}_torch_numpy.py", f"lstmgen_test_torch_{cell}")
    N, T, D, H = 2, 4, 3, 5
    torch.manual_seed(0)
    layer = getattr(torch.nn, cell.upper())(D, H, batch_first=True).double()
    rng = np.random.RandomState(22)
    x, h0, dh = rng.randn(N, T, D), rng.randn(N, H), rng.randn(N, T, H)
    arrays = [getattr(layer, name + "_l0").detach().numpy() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    h, cache = getattr(module, cell + "_forward")(x, h0, *arrays)
    dx, dh0, *dweights = getattr(module, cell + "_backward")(dh, cache)

    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    initial = (th0[None], torch.zeros(1, N, H, dtype=torch.float64)) if cell == "lstm" else th0[None]
    out, _ = layer(tx, initial)
    (out * torch.from_numpy(dh)).sum().backward()
    assert scale_error(h, out.detach().numpy()) < TOLERANCE
    expected = [tx.grad.numpy(), th0.grad.numpy()] + [
        getattr(layer, name + "_l0").grad.numpy() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    for index, (mine, theirs) in enumerate(zip([dx, dh0, *dweights], expected)):
        assert mine.shape == theirs.shape
        assert scale_error(mine, theirs) < TOLERANCE, f"gradient {index}"
