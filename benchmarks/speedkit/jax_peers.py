"""JAX peers: every cell's forward as a lax.scan over time, the input projection of all steps
hoisted out of the scan as one matmul, and the backward by jax.vjp; forward and backward are
one jax.jit-compiled function.  Parameters are in the layout of speedkit.cells."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

jax.config.update("jax_enable_x64", True)  # the cross-check runs in float64; float32 inputs stay float32


def _scan(step, carry, xp):
    """Run `step` over the time axis of xp (N, T, k); returns h as (N, T, H)."""
    _, hs = lax.scan(step, carry, jnp.swapaxes(xp, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def lstm(params, x, h0):
    Wx, Wh, b = params

    def step(carry, xp_t):
        h, c = carry
        i, f, o, g = jnp.split(xp_t + h @ Wh, 4, axis=1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    return _scan(step, (h0, jnp.zeros_like(h0)), x @ Wx + b)


def gru(params, x, h0):
    Wx, Wh, bx, bh = params

    def step(h, xp_t):
        xr, xz, xn = jnp.split(xp_t, 3, axis=1)
        hr, hz, hn = jnp.split(h @ Wh + bh, 3, axis=1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, h

    return _scan(step, h0, x @ Wx + bx)


def rnn(params, x, h0):
    Wx, Wh, b = params

    def step(h, xp_t):
        h = jnp.tanh(xp_t + h @ Wh)
        return h, h

    return _scan(step, h0, x @ Wx + b)


def peephole_lstm(params, x, h0):
    Wx, Wh, b, p = params
    p_i, p_f, p_o = jnp.split(p, 3)

    def step(carry, xp_t):
        h, c = carry
        ai, af, ao, ag = jnp.split(xp_t + h @ Wh, 4, axis=1)
        i = jax.nn.sigmoid(ai + p_i * c)
        f = jax.nn.sigmoid(af + p_f * c)
        c = f * c + i * jnp.tanh(ag)
        h = jax.nn.sigmoid(ao + p_o * c) * jnp.tanh(c)
        return (h, c), h

    return _scan(step, (h0, jnp.zeros_like(h0)), x @ Wx + b)


def cifg_lstm(params, x, h0):
    Wx, Wh, b = params

    def step(carry, xp_t):
        h, c = carry
        af, ao, ag = jnp.split(xp_t + h @ Wh, 3, axis=1)
        f = jax.nn.sigmoid(af)
        c = f * c + (1 - f) * jnp.tanh(ag)
        h = jax.nn.sigmoid(ao) * jnp.tanh(c)
        return (h, c), h

    return _scan(step, (h0, jnp.zeros_like(h0)), x @ Wx + b)


def mgu(params, x, h0):
    Wx, Wh, Wr, b = params

    def step(h, xp_t):
        xf, xn = jnp.split(xp_t, 2, axis=1)
        f = jax.nn.sigmoid(xf + h @ Wh)
        n = jnp.tanh(xn + (f * h) @ Wr)
        h = (1 - f) * h + f * n
        return h, h

    return _scan(step, h0, x @ Wx + b)


def leaky_cifg(params, x, h0):
    Wx, Wh, b = params

    def step(carry, xp_t):
        h, c = carry
        af, ao, ag = jnp.split(xp_t + h @ Wh, 3, axis=1)
        f = jax.nn.sigmoid(af)
        o = jax.nn.sigmoid(ao)
        c = f * c + (1 - f) * jax.nn.soft_sign(ag)
        h = o * jax.nn.soft_sign(c) + (1 - o) * h
        return (h, c), h

    return _scan(step, (h0, jnp.zeros_like(h0)), x @ Wx + b)


FORWARD = {f.__name__: f for f in (lstm, gru, rnn, peephole_lstm, cifg_lstm, mgu, leaky_cifg)}


class JaxRunner:
    def __init__(self, cell, x, h0, params, dh):
        forward = FORWARD[cell.name]

        def forward_backward(params, x, h0, dh):
            h, vjp = jax.vjp(forward, params, x, h0)
            dparams, dx, dh0 = vjp(dh)
            return h, dx, dh0, dparams

        self.args = jax.device_put((tuple(params), x, h0, dh))
        self.fn = jax.jit(forward_backward)
        self.compiled = None  # compiled at the first call: the warm-up

    def run(self):
        if self.compiled is None:
            self.compiled = self.fn.lower(*self.args).compile()
        jax.block_until_ready(self.compiled(*self.args))

    def result(self):
        import numpy as np

        h, dx, dh0, dparams = self.fn(*self.args)
        return np.asarray(h), [np.asarray(dx), np.asarray(dh0)] + [np.asarray(d) for d in dparams]

    def memory(self):
        """XLA's static buffer assignment of the compiled function: arguments + outputs + temporaries."""
        if self.compiled is None:
            self.compiled = self.fn.lower(*self.args).compile()
        stats = self.compiled.memory_analysis()
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
                - stats.alias_size_in_bytes)
