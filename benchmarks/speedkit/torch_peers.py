"""PyTorch peers: torch.nn.LSTM/GRU/RNN, and every cell written as an eager nn.Module.

The hand-written modules are what a careful person writes: the gates stacked in one weight
matrix, the input projection of all steps in one matmul, a Python loop over t for the
recurrence, autograd for the backward.  Their parameters are in the layout of speedkit.cells
(x @ Wx with Wx of shape (D, blocks * H)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Eager(nn.Module):
    def __init__(self, names, arrays):
        super().__init__()
        self.names = list(names)
        for name, array in zip(names, arrays):
            self.register_parameter(name, nn.Parameter(torch.from_numpy(array.copy())))

    def project(self, x, W, b=None):
        """The input projection of every step as one (N*T, D) x (D, k) product, back to (N, T, k).

        The loops take its steps with xp.unbind(1): indexing xp[:, t] instead would make autograd
        build a zero tensor of xp's full size in the backward of every step."""
        N, T, D = x.shape
        flat = x.reshape(N * T, D)
        out = flat @ W if b is None else torch.addmm(b, flat, W)
        return out.view(N, T, -1)


class LSTM(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.b)
        h, c = h0, torch.zeros_like(h0)
        outs = []
        for xp_t in xp.unbind(1):
            i, f, o, g = (xp_t + h @ self.Wh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=1)


class GRU(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.bx)
        h = h0
        outs = []
        for xp_t in xp.unbind(1):
            xr, xz, xn = xp_t.chunk(3, dim=1)
            hr, hz, hn = torch.addmm(self.bh, h, self.Wh).chunk(3, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            outs.append(h)
        return torch.stack(outs, dim=1)


class RNN(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.b)
        h = h0
        outs = []
        for xp_t in xp.unbind(1):
            h = torch.tanh(xp_t + h @ self.Wh)
            outs.append(h)
        return torch.stack(outs, dim=1)


class PeepholeLSTM(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.b)
        p_i, p_f, p_o = self.p.chunk(3)
        h, c = h0, torch.zeros_like(h0)
        outs = []
        for xp_t in xp.unbind(1):
            ai, af, ao, ag = (xp_t + h @ self.Wh).chunk(4, dim=1)
            i = torch.sigmoid(ai + p_i * c)
            f = torch.sigmoid(af + p_f * c)
            c = f * c + i * torch.tanh(ag)
            h = torch.sigmoid(ao + p_o * c) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=1)


class CifgLSTM(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.b)
        h, c = h0, torch.zeros_like(h0)
        outs = []
        for xp_t in xp.unbind(1):
            af, ao, ag = (xp_t + h @ self.Wh).chunk(3, dim=1)
            f = torch.sigmoid(af)
            c = f * c + (1 - f) * torch.tanh(ag)
            h = torch.sigmoid(ao) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, dim=1)


class MGU(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.b)
        h = h0
        outs = []
        for xp_t in xp.unbind(1):
            xf, xn = xp_t.chunk(2, dim=1)
            f = torch.sigmoid(xf + h @ self.Wh)
            n = torch.tanh(xn + (f * h) @ self.Wr)
            h = (1 - f) * h + f * n
            outs.append(h)
        return torch.stack(outs, dim=1)


class LeakyCifg(_Eager):
    def forward(self, x, h0):
        xp = self.project(x, self.Wx, self.b)
        h, c = h0, torch.zeros_like(h0)
        outs = []
        for xp_t in xp.unbind(1):
            af, ao, ag = (xp_t + h @ self.Wh).chunk(3, dim=1)
            f = torch.sigmoid(af)
            o = torch.sigmoid(ao)
            c = f * c + (1 - f) * F.softsign(ag)
            h = o * F.softsign(c) + (1 - o) * h
            outs.append(h)
        return torch.stack(outs, dim=1)


EAGER = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "peephole_lstm": PeepholeLSTM, "cifg_lstm": CifgLSTM,
         "mgu": MGU, "leaky_cifg": LeakyCifg}


class _Runner:
    """Forward + backward of a torch module with autograd; the gradients land in .grad."""

    def __init__(self, x, h0, dh):
        self.x = torch.from_numpy(x.copy()).requires_grad_(True)
        self.h0 = torch.from_numpy(h0.copy()).requires_grad_(True)
        self.dh = torch.from_numpy(dh.copy())

    def _zero(self):
        self.x.grad = self.h0.grad = None
        self.module.zero_grad(set_to_none=True)

    def run(self):
        self._zero()
        self.call().backward(self.dh)


class EagerRunner(_Runner):
    def __init__(self, cell, x, h0, params, dh):
        super().__init__(x, h0, dh)
        self.module = EAGER[cell.name]([p.name for p in cell.params], params)

    def call(self):
        return self.module(self.x, self.h0)

    def result(self):
        self.run()
        with torch.no_grad():
            h = self.call()
        grads = [self.x.grad, self.h0.grad] + [getattr(self.module, n).grad for n in self.module.names]
        return h.numpy(), [g.numpy() for g in grads]


class NNRunner(_Runner):
    """torch.nn.LSTM / GRU / RNN (tanh), batch_first; b_hh = 0 except for the GRU's bh."""

    def __init__(self, cell, x, h0, params, dh):
        from .cells import reorder

        super().__init__(x, h0, dh)
        self.cell = cell
        D, H = x.shape[2], h0.shape[1]
        kind = getattr(nn, cell.torch_nn)
        extra = {"nonlinearity": "tanh"} if cell.torch_nn == "RNN" else {}
        self.module = kind(D, H, batch_first=True, **extra).to(self.x.dtype)
        named = dict(zip([p.name for p in cell.params], params))
        order = [p for p in cell.params if p.name == "Wx"][0].blocks

        def tt(array):  # peer layout -> torch layout: blocks i, f, c, o stacked along the first axis
            return torch.from_numpy(reorder(array, order, cell.torch_order).T.copy())

        with torch.no_grad():
            self.module.weight_ih_l0.copy_(tt(named["Wx"]))
            self.module.weight_hh_l0.copy_(tt(named["Wh"]))
            self.module.bias_ih_l0.copy_(tt(named["bx"] if "bx" in named else named["b"]))
            self.module.bias_hh_l0.copy_(tt(named["bh"]) if "bh" in named else torch.zeros_like(self.module.bias_hh_l0))
        self.order = order

    def call(self):
        h0 = self.h0.unsqueeze(0)
        state = (h0, torch.zeros_like(h0)) if self.cell.torch_nn == "LSTM" else h0
        return self.module(self.x, state)[0]

    def result(self):
        from .cells import reorder

        self.run()
        with torch.no_grad():
            h = self.call()
        m = self.module

        def back(grad):
            return reorder(grad.numpy().T, self.cell.torch_order, self.order)

        grads = [self.x.grad.numpy(), self.h0.grad.numpy(), back(m.weight_ih_l0.grad), back(m.weight_hh_l0.grad),
                 back(m.bias_ih_l0.grad)]
        if self.cell.name == "gru":
            grads.append(back(m.bias_hh_l0.grad))
        return h.numpy(), grads
