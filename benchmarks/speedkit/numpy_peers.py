"""Per-step NumPy forward and backward passes in the style of the CS231n assignment.

Each step computes its own input projection x_t @ Wx and, in the backward, its own three
weight-gradient products (dx_t, dWx_t, dWh_t), and a Python loop calls the steps in turn:
the classic code a student writes.  Parameters come in the layout of speedkit.cells; the
gate blocks sit along the last axis in the order declared there.
"""
from __future__ import annotations

import numpy as np


def sigmoid(z):
    with np.errstate(over="ignore"):  # exp(-z) -> inf for very negative z gives 0, the right limit
        return 1.0 / (1.0 + np.exp(-z))


def softsign(z):
    return z / (1.0 + np.abs(z))


# ---- LSTM: blocks i, f, o, c -------------------------------------------------------------

def lstm_step_forward(x, states, params):
    prev_h, prev_c = states
    Wx, Wh, b = params
    a = x @ Wx + prev_h @ Wh + b
    H = prev_h.shape[1]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return (next_h, next_c), (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dstates, cache):
    dnext_h, dnext_c = dstates
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                         dnext_h * tanh_c * o * (1 - o), dc * i * (1 - g ** 2)], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, (dprev_h, dc * f), (dWx, dWh, db)


# ---- GRU (PyTorch's equations): blocks r, z, n ---------------------------------------------

def gru_step_forward(x, states, params):
    (prev_h,) = states
    Wx, Wh, bx, bh = params
    H = prev_h.shape[1]
    gx = x @ Wx + bx
    gh = prev_h @ Wh + bh
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    gh_n = gh[:, 2 * H:]
    n = np.tanh(gx[:, 2 * H:] + r * gh_n)
    next_h = (1 - z) * n + z * prev_h
    return (next_h,), (x, prev_h, Wx, Wh, r, z, n, gh_n)


def gru_step_backward(dstates, cache):
    (dnext_h,) = dstates
    x, prev_h, Wx, Wh, r, z, n, gh_n = cache
    dan = dnext_h * (1 - z) * (1 - n ** 2)
    daz = dnext_h * (prev_h - n) * z * (1 - z)
    dar = dan * gh_n * r * (1 - r)
    dgx = np.concatenate([dar, daz, dan], axis=1)
    dgh = np.concatenate([dar, daz, dan * r], axis=1)
    dx = dgx @ Wx.T
    dprev_h = dgh @ Wh.T + dnext_h * z
    dWx = x.T @ dgx
    dWh = prev_h.T @ dgh
    return dx, (dprev_h,), (dWx, dWh, dgx.sum(axis=0), dgh.sum(axis=0))


# ---- vanilla RNN ---------------------------------------------------------------------------

def rnn_step_forward(x, states, params):
    (prev_h,) = states
    Wx, Wh, b = params
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return (next_h,), (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dstates, cache):
    (dnext_h,) = dstates
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, (da @ Wh.T,), (x.T @ da, prev_h.T @ da, da.sum(axis=0))


# ---- peephole LSTM: blocks i, f, o, c; peepholes i, f, o -----------------------------------

def peephole_lstm_step_forward(x, states, params):
    prev_h, prev_c = states
    Wx, Wh, b, p = params
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    p_i, p_f, p_o = p[:H], p[H:2 * H], p[2 * H:]
    i = sigmoid(a[:, :H] + p_i * prev_c)
    f = sigmoid(a[:, H:2 * H] + p_f * prev_c)
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    o = sigmoid(a[:, 2 * H:3 * H] + p_o * next_c)
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return (next_h, next_c), (x, prev_h, prev_c, Wx, Wh, p, i, f, o, g, next_c, tanh_c)


def peephole_lstm_step_backward(dstates, cache):
    dnext_h, dnext_c = dstates
    x, prev_h, prev_c, Wx, Wh, p, i, f, o, g, next_c, tanh_c = cache
    H = prev_h.shape[1]
    p_i, p_f, p_o = p[:H], p[H:2 * H], p[2 * H:]
    dao = dnext_h * tanh_c * o * (1 - o)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2) + dao * p_o
    dai = dc * g * i * (1 - i)
    daf = dc * prev_c * f * (1 - f)
    dag = dc * i * (1 - g ** 2)
    dprev_c = dc * f + dai * p_i + daf * p_f
    da = np.concatenate([dai, daf, dao, dag], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    dp = np.concatenate([(dai * prev_c).sum(axis=0), (daf * prev_c).sum(axis=0), (dao * next_c).sum(axis=0)])
    return dx, (dprev_h, dprev_c), (dWx, dWh, da.sum(axis=0), dp)


# ---- coupled input-forget gate LSTM: blocks f, o, c ----------------------------------------

def cifg_lstm_step_forward(x, states, params):
    prev_h, prev_c = states
    Wx, Wh, b = params
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    f = sigmoid(a[:, :H])
    o = sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:])
    next_c = f * prev_c + (1 - f) * g
    tanh_c = np.tanh(next_c)
    return (o * tanh_c, next_c), (x, prev_h, prev_c, Wx, Wh, f, o, g, tanh_c)


def cifg_lstm_step_backward(dstates, cache):
    dnext_h, dnext_c = dstates
    x, prev_h, prev_c, Wx, Wh, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    da = np.concatenate([dc * (prev_c - g) * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
                         dc * (1 - f) * (1 - g ** 2)], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    return dx, (dprev_h, dc * f), (dWx, dWh, da.sum(axis=0))


# ---- minimal gated unit: Wx blocks f, n; Wh gate f; Wr gate n ------------------------------

def mgu_step_forward(x, states, params):
    (prev_h,) = states
    Wx, Wh, Wr, b = params
    H = prev_h.shape[1]
    gx = x @ Wx + b
    f = sigmoid(gx[:, :H] + prev_h @ Wh)
    r = f * prev_h
    n = np.tanh(gx[:, H:] + r @ Wr)
    next_h = (1 - f) * prev_h + f * n
    return (next_h,), (x, prev_h, Wx, Wh, Wr, f, r, n)


def mgu_step_backward(dstates, cache):
    (dnext_h,) = dstates
    x, prev_h, Wx, Wh, Wr, f, r, n = cache
    dan = dnext_h * f * (1 - n ** 2)
    dr = dan @ Wr.T
    daf = (dnext_h * (n - prev_h) + dr * prev_h) * f * (1 - f)
    dgx = np.concatenate([daf, dan], axis=1)
    dx = dgx @ Wx.T
    dprev_h = dnext_h * (1 - f) + dr * f + daf @ Wh.T
    dWx = x.T @ dgx
    dWh = prev_h.T @ daf
    dWr = r.T @ dan
    return dx, (dprev_h,), (dWx, dWh, dWr, dgx.sum(axis=0))


# ---- benchmarks/cells/leaky_cifg.cell: blocks f, o, c; softsign; leaky output --------------

def leaky_cifg_step_forward(x, states, params):
    prev_h, prev_c = states
    Wx, Wh, b = params
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    f = sigmoid(a[:, :H])
    o = sigmoid(a[:, H:2 * H])
    g = softsign(a[:, 2 * H:])
    next_c = f * prev_c + (1 - f) * g
    s = softsign(next_c)
    next_h = o * s + (1 - o) * prev_h
    return (next_h, next_c), (x, prev_h, prev_c, Wx, Wh, f, o, g, s)


def leaky_cifg_step_backward(dstates, cache):
    dnext_h, dnext_c = dstates
    x, prev_h, prev_c, Wx, Wh, f, o, g, s = cache
    # softsign'(z) = 1 / (1 + |z|)^2 = (1 - |softsign(z)|)^2
    dc = dnext_c + dnext_h * o * (1 - np.abs(s)) ** 2
    da = np.concatenate([dc * (prev_c - g) * f * (1 - f), dnext_h * (s - prev_h) * o * (1 - o),
                         dc * (1 - f) * (1 - np.abs(g)) ** 2], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T + dnext_h * (1 - o)
    dWx = x.T @ da
    dWh = prev_h.T @ da
    return dx, (dprev_h, dc * f), (dWx, dWh, da.sum(axis=0))


STEPS = {name: (globals()[name + "_step_forward"], globals()[name + "_step_backward"])
         for name in ("lstm", "gru", "rnn", "peephole_lstm", "cifg_lstm", "mgu", "leaky_cifg")}


def sequence(name, n_states):
    """(forward, backward) over a sequence, built from the cell's step functions."""
    step_forward, step_backward = STEPS[name]

    def forward(x, h0, *params):
        N, T, _ = x.shape
        states = (h0,) + tuple(np.zeros_like(h0) for _ in range(n_states - 1))
        h = np.empty((N, T, h0.shape[1]), dtype=x.dtype)
        caches = []
        for t in range(T):
            states, cache = step_forward(x[:, t, :], states, params)
            h[:, t, :] = states[0]
            caches.append(cache)
        return h, (caches, params, x.shape)

    def backward(dh, cache):
        caches, params, x_shape = cache
        dx = np.empty(x_shape, dtype=dh.dtype)
        dparams = [np.zeros_like(p) for p in params]
        dstates = tuple(np.zeros_like(dh[:, 0, :]) for _ in range(n_states))
        for t in reversed(range(len(caches))):
            dstates = (dstates[0] + dh[:, t, :],) + dstates[1:]
            dx_t, dstates, dparams_t = step_backward(dstates, caches[t])
            dx[:, t, :] = dx_t
            for total, part in zip(dparams, dparams_t):
                total += part
        return (dx, dstates[0], *dparams)

    return forward, backward
