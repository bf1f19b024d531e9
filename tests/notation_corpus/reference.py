#!/usr/bin/env python3
"""Independent numerical proof of the labels of the notation corpus (NumPy only, no lstmgen).

For every document of this folder the module holds, written by hand:

* the cell's forward step exactly as the document states it, in the document's own layout
  (column vectors, or row vectors for ``row_layout_uw.tex``), as a function
  ``step(P, x, S, v)`` that passes every value it computes through ``v(name, value)``;
* for every labelled equation, in the order of the sidecar ``<document>.expected.json``, a
  transcription ``(lhs, rhs)``: what the left side denotes and the right side as a NumPy
  expression (compiled into a function of a namespace of arrays).

What a left side denotes (L is the loss of the whole sequence, L = sum_t <u_t, h_t>):

``node:NAME``   the gradient of L with respect to the value NAME computed in step t, every
                later value (the rest of step t and all later steps) depending on it.  So
                ``node:c`` / ``node:h`` are the TOTAL gradients reaching the states at t, a gate
                or a pre-activation gives the gradient w.r.t. that value (a "delta"), ``node:x``
                is dL/dx_t, and ``node:h_prev`` / ``node:c_prev`` (the previous state as step t
                reads it) are the part of the gradient that flows from step t back to t-1.
``param:NAME``  the gradient w.r.t. parameter NAME used in step t only (the step-t contribution).
``sum:NAME``    the gradient w.r.t. parameter NAME over the whole sequence; the right side is
                summed over t = 1..T.

Names a right side may use: every value of step t by its name (``f``, ``c``, ``c_prev``, ...),
the same with ``_n`` for step t+1 (and ``_p`` for t-1); the parameters; ``d_NAME`` (and
``d_NAME_n``) for the true ``node:NAME`` gradient at t (t+1); ``u`` = d l_t / d h_t (the loss of
step t alone); ``D``, ``H``; ``np``.

The proof: 3 random instances (D, H) = (3, 4), (5, 2), (2, 3), sequences of T = 4 steps, random
initial states and random u_t.  Every true left side and every ``d_NAME`` is computed by central
finite differences in float64 (step 1e-5) on the forward step above.  Each equation is checked
at every step t where it is defined (t = 1..4, or 1..3 when it mentions step t+1; a ``sum:``
equation once per instance).  Error at a point = max|true - claimed| / max(max|true|,
max|claimed|).  A "correct" label needs error < 1e-6 at every point, an "incorrect" one > 1e-3 at
every point; the claimed value must have the true value's shape.  Mutant self-test: for every
correct equation, the right side times 1.1 and the right side with 1e-2 of its scale added to one
entry must both come out > 1e-3, and 1e-5 added to one entry must come out > 1e-6.  Structure
checks: the sidecar has one entry per transcription with the same transcription text, each
``match`` occurs exactly once in its document, on the first line of a display equation; the
document's first ``forward`` displays are the forward step and contain no match, and every later
display is labelled, in order.

    python tests/notation_corpus/reference.py        # one summary line, exit 0 when all proven
    python tests/notation_corpus/reference.py -v     # every equation's errors
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
T = 4
SIZES = ((3, 4), (5, 2), (2, 3))  # (D, H); D != H in every instance
EPS = 1e-5
CORRECT_TOL = 1e-6
INCORRECT_TOL = 1e-3
STATUSES = ("correct", "incorrect")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Document:
    """One document of the corpus and its independent reference."""

    def __init__(self, file, family, layout, forward, states, output, params, step, equations):
        self.file = file            # file name in this folder
        self.family = family        # the notation it imitates (for the report)
        self.layout = layout        # "column" or "row"
        self.forward = forward      # number of forward display equations at the top
        self.states = states        # recurrent states, each of length H
        self.output = output        # the state the loss reads
        self.params = params        # (D, H) -> {name: shape}
        self.step = step            # (P, x, S, v) -> new states
        self.equations = equations  # [(lhs, rhs)] in sidecar order

    def vec(self, n):
        return (n, 1) if self.layout == "column" else (1, n)

    @property
    def path(self):
        return HERE / self.file

    @property
    def sidecar(self):
        return HERE / (self.file + ".expected.json")

    def __repr__(self):
        return self.file


# =============================================================================== the documents
# Each step function mirrors the document's forward equations line by line.

# --- 1. gamma_course.md: course style, concatenated [a; x], Gamma gates, cost J, `*` -----------
def gamma_course_params(D, H):
    shapes = {}
    for g in "fuco":
        shapes["W" + g] = (H, H + D)
        shapes["b" + g] = (H, 1)
    return shapes


def gamma_course_step(P, x, S, v):
    a_prev = v("a_prev", S["a"])
    c_prev = v("c_prev", S["c"])
    x = v("x", x)
    ax = v("ax", np.vstack([a_prev, x]))  # [a<t-1>, x<t>], a first
    gf = v("gf", sigmoid(v("zf", P["Wf"] @ ax + P["bf"])))
    gu = v("gu", sigmoid(v("zu", P["Wu"] @ ax + P["bu"])))
    cc = v("cc", np.tanh(v("zc", P["Wc"] @ ax + P["bc"])))
    c = v("c", gu * cc + gf * c_prev)
    go = v("go", sigmoid(v("zo", P["Wo"] @ ax + P["bo"])))
    a = v("a", go * np.tanh(c))
    return {"a": a, "c": c}


GAMMA_COURSE = [
    ("node:go", "d_a * np.tanh(c)"),
    ("node:c", "d_a * go * (1 - np.tanh(c)) + d_c_n * gf_n"),
    ("node:cc", "d_c * gu"),
    ("node:gu", "d_c * cc"),
    ("node:gf", "d_c * c"),
    ("param:Wf", "(d_c * c_prev * gf * (1 - gf)) @ ax.T"),
    ("param:Wu", "(d_c * cc * gu * (1 - gu)) @ ax.T"),
    ("param:Wc", "(d_c * gf * (1 - cc**2)) @ ax.T"),
    ("param:bo", "d_a * np.tanh(c) * go * (1 - go)"),
    ("node:c_prev", "d_c * gf"),
    ("node:a_prev", "Wf[:, :H].T @ (d_c * c_prev * gf * (1 - gf)) + Wu[:, :H].T @ (d_c * cc * gu * (1 - gu))"
                    " + Wc[:, :H].T @ (d_c * gu * (1 - cc**2)) + Wo[:, :H].T @ (d_a * np.tanh(c) * go * (1 - go))"),
]


# --- 2. row_layout_uw.tex: row vectors, x_t U + h_{t-1} W, hats for pre-activations -----------
def row_layout_params(D, H):
    shapes = {}
    for g in "figo":
        shapes["U" + g] = (D, H)
        shapes["W" + g] = (H, H)
        shapes["b" + g] = (1, H)
    return shapes


def row_layout_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    f = v("f", sigmoid(v("af", x @ P["Uf"] + h_prev @ P["Wf"] + P["bf"])))
    i = v("i", sigmoid(v("ai", x @ P["Ui"] + h_prev @ P["Wi"] + P["bi"])))
    g = v("g", np.tanh(v("ag", x @ P["Ug"] + h_prev @ P["Wg"] + P["bg"])))
    o = v("o", sigmoid(v("ao", x @ P["Uo"] + h_prev @ P["Wo"] + P["bo"])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


ROW_LAYOUT = [
    ("node:o", "d_h * np.tanh(c)"),
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * g"),
    ("node:ag", "d_c * i * (1 - g**2)"),
    ("node:ao", "d_h * np.tanh(c) * o * (1 - o)"),
    ("param:Uf", "x.T @ d_af"),
    ("param:Wo", "d_ao.T @ h_prev"),
    ("param:bi", "d_ai"),
    ("node:h_prev", "d_af @ Wf.T + d_ai @ Wi.T + d_ag @ Wg.T + d_ao @ Wo.T"),
    ("node:x", "d_af @ Uf.T + d_ai @ Ui.T + d_ag @ Ug.T"),
    ("node:c_prev", "d_c * f"),
]


# --- 3. superscript_time.md: h^{(t)}, U on x, W on h, bias first, gates f g q, candidate e ------
def superscript_params(D, H):
    shapes = {}
    for g in "fgqe":
        shapes["U" + g] = (H, D)
        shapes["W" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    return shapes


def superscript_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    s_prev = v("s_prev", S["s"])
    f = v("f", sigmoid(v("af", P["bf"] + P["Uf"] @ x + P["Wf"] @ h_prev)))
    g = v("g", sigmoid(v("ag", P["bg"] + P["Ug"] @ x + P["Wg"] @ h_prev)))
    q = v("q", sigmoid(v("aq", P["bq"] + P["Uq"] @ x + P["Wq"] @ h_prev)))
    e = v("e", np.tanh(v("ae", P["be"] + P["Ue"] @ x + P["We"] @ h_prev)))
    s = v("s", f * s_prev + g * e)
    h = v("h", q * np.tanh(s))
    return {"h": h, "s": s}


SUPERSCRIPT = [
    ("node:h", "u + Wf.T @ (d_s_n * s * f_n * (1 - f_n)) + Wg.T @ (d_s_n * e_n * g_n * (1 - g_n))"
               " + We.T @ (d_s_n * g_n * (1 - e_n**2)) + Wq.T @ (d_h_n * np.tanh(s_n) * q_n * (1 - q_n))"),
    ("node:s", "d_h * q * (1 - np.tanh(s)**2) + d_s_n * f"),
    ("node:q", "d_h * np.tanh(s)"),
    ("node:e", "d_s * g"),
    ("sum:Uf", "(d_s * s_prev * f * (1 - f)) @ x.T"),
    ("sum:Wq", "(d_h * np.tanh(s) * q * (1 - q)) @ h.T"),
    ("sum:We", "(d_s * g * (1 - e**2)) @ h_prev.T"),
    ("sum:bg", "d_s * e * g * (1 - g)"),
    ("node:x", "Uf.T @ (d_s * s_prev * f * (1 - f)) + Ug.T @ (d_s * e * g * (1 - g))"
               " + Ue.T @ (d_s * g * (1 - e**2)) + Uq.T @ (d_h * np.tanh(s) * q * (1 - q))"),
    ("node:s_prev", "d_h * f"),
]


# --- 4. d_notation.tex: dL/dh_t, \mathrm{d}, \text{d}; W on x, V on h, candidate \bar{c} --------
def d_notation_params(D, H):
    shapes = {}
    for g in "fico":
        shapes["W" + g] = (H, D)
        shapes["V" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    return shapes


def d_notation_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    f = v("f", sigmoid(v("af", P["Wf"] @ x + P["Vf"] @ h_prev + P["bf"])))
    i = v("i", sigmoid(v("ai", P["Wi"] @ x + P["Vi"] @ h_prev + P["bi"])))
    cb = v("cb", np.tanh(v("ac", P["Wc"] @ x + P["Vc"] @ h_prev + P["bc"])))
    o = v("o", sigmoid(v("ao", P["Wo"] @ x + P["Vo"] @ h_prev + P["bo"])))
    c = v("c", f * c_prev + i * cb)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


D_NOTATION = [
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:f", "d_c * c_prev"),
    ("node:i", "d_c * cb"),
    ("node:cb", "d_c * i"),
    ("param:Wf", "(d_f * f * (1 - f)) @ x.T"),
    ("param:Vi", "(d_i * i * (1 - i)) @ h.T"),
    ("param:Wc", "(d_cb * (1 - cb)) @ x.T"),
    ("param:bo", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:h_prev", "Vf.T @ (d_f * f * (1 - f)) + Vi.T @ (d_i * i * (1 - i)) + Vc.T @ (d_cb * (1 - cb**2))"
                    " + Vo @ (d_h * np.tanh(c) * o * (1 - o))"),
    ("node:c_prev", "d_c * f"),
]


# --- 5. delta_names.md: deltas = pre-activation gradients; W on h, U on x ----------------------
def delta_names_params(D, H):
    shapes = {}
    for g in "fioc":
        shapes["W" + g] = (H, H)
        shapes["U" + g] = (H, D)
        shapes["b" + g] = (H, 1)
    return shapes


def delta_names_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    f = v("f", sigmoid(v("af", P["Wf"] @ h_prev + P["Uf"] @ x + P["bf"])))
    i = v("i", sigmoid(v("ai", P["Wi"] @ h_prev + P["Ui"] @ x + P["bi"])))
    o = v("o", sigmoid(v("ao", P["Wo"] @ h_prev + P["Uo"] @ x + P["bo"])))
    cc = v("cc", np.tanh(v("ac", P["Wc"] @ h_prev + P["Uc"] @ x + P["bc"])))
    c = v("c", f * c_prev + i * cc)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


DELTA_NAMES = [
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:ao", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * cc * i * (1 - i)"),
    ("node:ac", "d_c * i * (1 - cc**2)"),
    ("param:Wo", "d_ao @ h_prev.T"),
    ("param:Uf", "(d_af * c_prev) @ x.T"),
    ("param:Wi", "h_prev @ d_ai.T"),
    ("param:bc", "d_ac"),
    ("node:x", "Uf.T @ d_af + Ui.T @ d_ai + Uc.T @ d_ac + Uo.T @ d_ao"),
    ("node:h", "u + Wf.T @ d_af_n + Wc.T @ d_ac_n + Wo.T @ d_ao_n"),
]


# --- 6. per_gate_weights.tex: W_{xf}, W_{hf}, b_f, loss E, equation environments ----------------
def per_gate_params(D, H):
    shapes = {}
    for g in "ifog":
        shapes["Wx" + g] = (H, D)
        shapes["Wh" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    return shapes


def per_gate_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    i = v("i", sigmoid(v("ai", P["Wxi"] @ x + P["Whi"] @ h_prev + P["bi"])))
    f = v("f", sigmoid(v("af", P["Wxf"] @ x + P["Whf"] @ h_prev + P["bf"])))
    o = v("o", sigmoid(v("ao", P["Wxo"] @ x + P["Who"] @ h_prev + P["bo"])))
    g = v("g", np.tanh(v("ag", P["Wxg"] @ x + P["Whg"] @ h_prev + P["bg"])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


PER_GATE = [
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:g", "d_c * i"),
    ("node:i", "d_c * g"),
    ("param:Wxf", "(d_c * c_prev * f * (1 - f)) @ x.T"),
    ("param:Whf", "(d_c * c_prev * i * (1 - i)) @ h_prev.T"),
    ("param:Whg", "(d_g * (1 - g**2)) @ h_prev.T"),
    ("param:bo", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:x", "Wxi.T @ (d_i * i * (1 - i)) + Wxi.T @ (d_c * c_prev * f * (1 - f)) + Wxg.T @ (d_g * (1 - g**2))"
               " + Wxo.T @ (d_h * np.tanh(c) * o * (1 - o))"),
    ("node:h_prev", "Whi.T @ (d_i * i * (1 - i)) + Whf.T @ (d_c * c_prev * f * (1 - f)) + Whg.T @ (d_g * (1 - g**2))"
                    " + Who.T @ (d_h * np.tanh(c) * o * (1 - o))"),
    ("node:c_prev", "d_c * f"),
]


# --- 7. gru.md: z weighs the candidate, reset applied before U ---------------------------------
def gru_params(D, H):
    shapes = {}
    for g in ("z", "r", ""):
        shapes["W" + g] = (H, D)
        shapes["U" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    return shapes


def gru_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    z = v("z", sigmoid(v("az", P["Wz"] @ x + P["Uz"] @ h_prev + P["bz"])))
    r = v("r", sigmoid(v("ar", P["Wr"] @ x + P["Ur"] @ h_prev + P["br"])))
    rh = v("rh", r * h_prev)
    hh = v("hh", np.tanh(v("ah", P["W"] @ x + P["U"] @ rh + P["b"])))
    h = v("h", (1 - z) * h_prev + z * hh)
    return {"h": h}


GRU = [
    ("node:hh", "d_h * z"),
    ("node:z", "d_h * (h_prev - hh)"),
    ("node:r", "(U.T @ (d_hh * (1 - hh**2))) * h_prev"),
    ("param:W", "(d_hh * (1 - hh**2)) @ x.T"),
    ("param:U", "(d_hh * (1 - hh**2)) @ h_prev.T"),
    ("param:Uz", "(d_z * z * (1 - z)) @ h_prev.T"),
    ("param:br", "d_r * r * (1 - r)"),
    ("node:h_prev", "d_h * (1 - z) + Uz.T @ (d_z * z * (1 - z)) + Ur.T @ (d_r * r * (1 - r))"
                    " + r * (U.T @ (d_hh * (1 - hh**2)))"),
    ("node:x", "Wz.T @ (d_z * z * (1 - z)) + Wr.T @ (d_r * r * (1 - r)) + W.T @ (d_hh * (1 - hh))"),
]


# --- 8. peephole.tex: p_i, p_f read c_{t-1}, p_o reads c_t; block output y; bars ----------------
def peephole_params(D, H):
    shapes = {}
    for g in "zifo":
        shapes["W" + g] = (H, D)
        shapes["R" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    for g in "ifo":
        shapes["p" + g] = (H, 1)
    return shapes


def peephole_step(P, x, S, v):
    x = v("x", x)
    y_prev = v("y_prev", S["y"])
    c_prev = v("c_prev", S["c"])
    z = v("z", np.tanh(v("az", P["Wz"] @ x + P["Rz"] @ y_prev + P["bz"])))
    i = v("i", sigmoid(v("ai", P["Wi"] @ x + P["Ri"] @ y_prev + P["pi"] * c_prev + P["bi"])))
    f = v("f", sigmoid(v("af", P["Wf"] @ x + P["Rf"] @ y_prev + P["pf"] * c_prev + P["bf"])))
    c = v("c", z * i + c_prev * f)
    o = v("o", sigmoid(v("ao", P["Wo"] @ x + P["Ro"] @ y_prev + P["po"] * c + P["bo"])))
    y = v("y", np.tanh(c) * o)
    return {"y": y, "c": c}


PEEPHOLE = [
    ("node:ao", "d_y * np.tanh(c) * o * (1 - o)"),
    ("node:c", "d_y * o * (1 - np.tanh(c)**2) + po * d_ao + pi * d_ai_n + pf * d_af_n + d_c_n * f_n"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * z * i * (1 - i)"),
    ("node:az", "d_c * i"),
    ("param:po", "d_ao * c_prev"),
    ("param:pf", "d_af * c_prev"),
    ("node:c_prev", "d_c * f + pi * d_ai"),
    ("param:Rz", "d_az @ y_prev.T"),
    ("node:x", "Wz.T @ d_az + Wi.T @ d_ai + Wf.T @ d_af + Wo.T @ d_ao"),
    ("node:y_prev", "Rz.T @ d_az + Ri.T @ d_ai + Rf.T @ d_af + Ro.T @ d_ao"),
]


# --- 9. coupled_gate.md: input gate = 1 - f; state s, output z, candidate \tilde{s}, cost J ------
def coupled_params(D, H):
    shapes = {}
    for g in "fos":
        shapes["W" + g] = (H, D)
        shapes["U" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    return shapes


def coupled_step(P, x, S, v):
    x = v("x", x)
    z_prev = v("z_prev", S["z"])
    s_prev = v("s_prev", S["s"])
    f = v("f", sigmoid(v("af", P["Wf"] @ x + P["Uf"] @ z_prev + P["bf"])))
    o = v("o", sigmoid(v("ao", P["Wo"] @ x + P["Uo"] @ z_prev + P["bo"])))
    st = v("st", np.tanh(v("a_s", P["Ws"] @ x + P["Us"] @ z_prev + P["bs"])))
    s = v("s", f * s_prev + (1 - f) * st)
    z = v("z", o * np.tanh(s))
    return {"z": z, "s": s}


COUPLED = [
    ("node:s", "d_z * o * (1 - np.tanh(s)**2) + d_s_n * f_n"),
    ("node:f", "d_s * (s_prev - st)"),
    ("node:st", "d_s * f"),
    ("param:Wf", "(d_s * (s_prev + st) * f * (1 - f)) @ x.T"),
    ("param:Us", "(d_s * (1 - f) * (1 - st**2)) @ z_prev.T"),
    ("param:bo", "d_z * np.tanh(s) * o * (1 - o)"),
    ("param:Uo", "(d_s * np.tanh(s) * o * (1 - o)) @ z_prev.T"),
    ("node:s_prev", "d_s * f"),
    ("node:z_prev", "Uf.T @ (d_s * (s_prev - st) * f * (1 - f)) + Us.T @ (d_s * (1 - f) * (1 - st**2))"
                    " + Uo.T @ (d_z * np.tanh(s) * o * (1 - o))"),
]


# --- 10. bias_folded.tex: W [x_t; h_{t-1}; 1], last column = bias, candidate g, \circ ------------
def bias_folded_params(D, H):
    return {"W" + g: (H, D + H + 1) for g in "fiog"}


def bias_folded_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    xh1 = v("xh1", np.vstack([x, h_prev, np.ones((1, 1))]))  # [x_t; h_{t-1}; 1]
    f = v("f", sigmoid(v("af", P["Wf"] @ xh1)))
    i = v("i", sigmoid(v("ai", P["Wi"] @ xh1)))
    o = v("o", sigmoid(v("ao", P["Wo"] @ xh1)))
    g = v("g", np.tanh(v("ag", P["Wg"] @ xh1)))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


BIAS_FOLDED = [
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:o", "d_h * np.tanh(c)"),
    ("param:Wf", "(d_c * c_prev * f * (1 - f)) @ xh1.T"),
    ("param:Wo", "(d_h * np.tanh(c) * (1 - o)) @ xh1.T"),
    ("param:Wg", "(d_c * i * (1 - g**2)) @ xh1.T"),
    ("param:Wi", "(d_c * g * i * (1 - i)) @ xh1.T"),
    ("node:h_prev", "Wf[:, D:D+H].T @ (d_h * c_prev * f * (1 - f)) + Wi[:, D:D+H].T @ (d_c * g * i * (1 - i))"
                    " + Wg[:, D:D+H].T @ (d_c * i * (1 - g**2)) + Wo[:, D:D+H].T @ (d_h * np.tanh(c) * o * (1 - o))"),
    ("node:x", "Wf[:, :D].T @ (d_c * c_prev * f * (1 - f)) + Wi[:, :D].T @ (d_c * g * i * (1 - i))"
               " + Wg[:, :D].T @ (d_c * i * (1 - g**2)) + Wo[:, :D].T @ (d_h * np.tanh(c) * o * (1 - o))"),
    ("node:c_prev", "d_c * f"),
]


# --- 11. slash_greek.md: \partial L / \partial h_t, gates iota phi omega, cell C_t ---------------
def slash_greek_params(D, H):
    shapes = {}
    for g in ("i", "phi", "om", "C"):
        shapes["W" + g] = (H, D)
        shapes["U" + g] = (H, H)
        shapes["b" + g] = (H, 1)
    return shapes


def slash_greek_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    C_prev = v("C_prev", S["C"])
    iota = v("iota", sigmoid(v("a_iota", P["Wi"] @ x + P["Ui"] @ h_prev + P["bi"])))
    phi = v("phi", sigmoid(v("a_phi", P["Wphi"] @ x + P["Uphi"] @ h_prev + P["bphi"])))
    om = v("om", sigmoid(v("a_om", P["Wom"] @ x + P["Uom"] @ h_prev + P["bom"])))
    Ct = v("Ct", np.tanh(v("a_C", P["WC"] @ x + P["UC"] @ h_prev + P["bC"])))
    C = v("C", phi * C_prev + iota * Ct)
    h = v("h", om * np.tanh(C))
    return {"h": h, "C": C}


SLASH_GREEK = [
    ("node:om", "d_h * np.tanh(C)"),
    ("node:C", "d_h * om * (1 - np.tanh(C)**2) + d_C_n * phi_n"),
    ("node:iota", "d_C * Ct"),
    ("node:Ct", "d_C * iota"),
    ("param:Wphi", "(d_C * C_prev * phi * (1 - phi)) @ x.T"),
    ("param:UC", "d_Ct @ h_prev.T"),
    ("param:bom", "d_om * om * (1 - om)"),
    ("node:h_prev", "Ui.T @ (d_iota * iota * (1 - iota)) + Uphi.T @ (d_C * C_prev * phi * (1 - phi))"
                    " + UC.T @ (d_Ct * (1 - Ct**2)) + Uom.T @ (d_om * om * (1 - om))"),
    ("node:C_prev", "d_C * iota"),
]


DOCUMENTS = [
    Document("gamma_course.md", "1. course style: Gamma gates, <t>, concatenated [a, x], cost J, *",
             "column", 6, ("a", "c"), "a", gamma_course_params, gamma_course_step, GAMMA_COURSE),
    Document("row_layout_uw.tex", "2. row vectors, x_t U + h_{t-1} W, hatted pre-activations, \\top",
             "row", 10, ("h", "c"), "h", row_layout_params, row_layout_step, ROW_LAYOUT),
    Document("superscript_time.md", "3. superscript time h^{(t)}, \\mathcal{L} = sum J^{(t)}, U on x, W on h",
             "column", 6, ("h", "s"), "h", superscript_params, superscript_step, SUPERSCRIPT),
    Document("d_notation.tex", "4. d-notation dL/dh_t, \\mathrm{d}, \\text{d}; V recurrent",
             "column", 6, ("h", "c"), "h", d_notation_params, d_notation_step, D_NOTATION),
    Document("delta_names.md", "5. delta names (pre-activation gradients), :=, \\equiv",
             "column", 6, ("h", "c"), "h", delta_names_params, delta_names_step, DELTA_NAMES),
    Document("per_gate_weights.tex", "6. per-gate W_{xf}, W_{hf}, b_f, loss E, \\odot, equation envs",
             "column", 6, ("h", "c"), "h", per_gate_params, per_gate_step, PER_GATE),
    Document("gru.md", "7. GRU (z weighs the candidate, reset before U)",
             "column", 4, ("h",), "h", gru_params, gru_step, GRU),
    Document("peephole.tex", "8. peephole LSTM (p_i, p_f on c_{t-1}, p_o on c_t), output y",
             "column", 10, ("y", "c"), "y", peephole_params, peephole_step, PEEPHOLE),
    Document("coupled_gate.md", "9. coupled-gate LSTM (input gate 1 - f), state s, output z, cost J",
             "column", 5, ("z", "s"), "z", coupled_params, coupled_step, COUPLED),
    Document("bias_folded.tex", "10. bias folded W [x; h; 1], candidate g, \\circ",
             "column", 6, ("h", "c"), "h", bias_folded_params, bias_folded_step, BIAS_FOLDED),
    Document("slash_greek.md", "11. inline slashes dL / dh, Greek gates iota phi omega, cell C_t, \\top",
             "column", 6, ("h", "C"), "h", slash_greek_params, slash_greek_step, SLASH_GREEK),
]


# ============================================================================ numerical engine
class Instance:
    """One random draw: parameters, a sequence of T inputs, initial states, loss weights u_t."""

    def __init__(self, doc: Document, D: int, H: int, seed: int):
        self.doc, self.D, self.H = doc, D, H
        rng = np.random.default_rng(seed)
        self.P = {name: rng.normal(0.0, 0.6, shape) for name, shape in doc.params(D, H).items()}
        self.x = {t: rng.normal(0.0, 1.0, doc.vec(D)) for t in range(1, T + 1)}
        self.u = {t: rng.normal(0.0, 1.0, doc.vec(H)) for t in range(1, T + 1)}
        self.S = {0: {s: rng.normal(0.0, 0.7, doc.vec(H)) for s in doc.states}}
        self.rec = {}
        for t in range(1, T + 1):
            values = {}

            def record(name, value, values=values):
                assert name not in values, f"{doc.file}: value {name} computed twice"
                values[name] = value
                return value

            self.S[t] = doc.step(self.P, self.x[t], self.S[t - 1], record)
            self.rec[t] = values
        self._grads = {}

    def loss_from(self, t0, nudge=None, params_t0=None, params_all=None):
        """sum_{t >= t0} <u_t, out_t> (the earlier terms do not change), with `nudge` added to
        values of step t0, step t0 run with `params_t0`, or every step with `params_all`."""
        S, total = self.S[t0 - 1], 0.0
        for t in range(t0, T + 1):
            P = params_all if params_all is not None else (params_t0 if (params_t0 is not None and t == t0) else self.P)
            add = nudge if t == t0 else None

            def v(name, value, add=add):
                return value + add[name] if add is not None and name in add else value

            S = self.doc.step(P, self.x[t], S, v)
            total += float(np.sum(self.u[t] * S[self.doc.output]))
        return total

    def grad_node(self, name, t):
        key = ("node", name, t)
        if key not in self._grads:
            if name not in self.rec[t]:
                raise NameError(f"{self.doc.file}: no value {name!r} in step {t}")
            base = self.rec[t][name]
            grad = np.zeros_like(base)
            for index in np.ndindex(base.shape):
                e = np.zeros_like(base)
                e[index] = EPS
                grad[index] = (self.loss_from(t, nudge={name: e}) - self.loss_from(t, nudge={name: -e})) / (2 * EPS)
            self._grads[key] = grad
        return self._grads[key]

    def grad_param(self, name, t=None):
        """Step-t contribution (t given) or gradient over the sequence (t None)."""
        key = ("param", name, t)
        if key not in self._grads:
            base = self.P[name]
            grad = np.zeros_like(base)
            for index in np.ndindex(base.shape):
                losses = []
                for sign in (1.0, -1.0):
                    moved = dict(self.P)
                    moved[name] = base.copy()
                    moved[name][index] += sign * EPS
                    if t is None:
                        losses.append(self.loss_from(1, params_all=moved))
                    else:
                        losses.append(self.loss_from(t, params_t0=moved))
                grad[index] = (losses[0] - losses[1]) / (2 * EPS)
            self._grads[key] = grad
        return self._grads[key]

    def true_lhs(self, lhs, t):
        kind, name = lhs.split(":")
        if kind == "node":
            return self.grad_node(name, t)
        if kind == "param":
            return self.grad_param(name, t)
        if kind == "sum":
            return self.grad_param(name, None)
        raise ValueError(f"unknown left side {lhs!r}")


class Namespace(dict):
    """The arrays a right side may name, at step t (looked up lazily; see the module docstring)."""

    def __init__(self, inst: Instance, t: int):
        super().__init__()
        self.inst, self.t = inst, t

    def __missing__(self, key):
        inst, t, base = self.inst, self.t, key
        if key in ("D", "H"):
            return getattr(inst, key)
        if key in inst.P:
            return inst.P[key]
        if key.endswith("_n"):
            base, t = key[:-2], t + 1
        elif key.endswith("_p"):
            base, t = key[:-2], t - 1
        if not 1 <= t <= T:
            raise NameError(f"{key} at step {self.t} is outside the sequence 1..{T}")
        if base == "u":
            return inst.u[t]
        if base.startswith("d_"):
            return inst.grad_node(base[2:], t)
        if base in inst.rec[t]:
            return inst.rec[t][base]
        raise KeyError(key)  # not ours: let eval look in the globals (np), else NameError


GLOBALS = {"np": np, "__builtins__": {}}


def transcription(lhs, rhs):
    return f"{lhs} = {rhs}"


def compile_rhs(rhs):
    """The right side as a function of a namespace of arrays."""
    code = compile(rhs, "<rhs>", "eval")
    return lambda ns: eval(code, GLOBALS, ns)  # noqa: S307 - our own transcriptions


def uses_next_step(rhs):
    return re.search(r"\b\w+_n\b", rhs) is not None


def rel_error(true, claimed):
    true, claimed = np.asarray(true, float), np.asarray(claimed, float)
    scale = max(float(np.max(np.abs(true))), float(np.max(np.abs(claimed))), 1e-300)
    return float(np.max(np.abs(true - claimed)) / scale)


def instances(doc):
    seed0 = 1000 * (DOCUMENTS.index(doc) + 1)
    return [Instance(doc, D, H, seed0 + k) for k, (D, H) in enumerate(SIZES)]


# ============================================================================ structure checks
DISPLAY = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\begin\{(equation\*?|align\*?)\}(.+?)\\end\{\3\}", re.S)


def displays(text):
    """(first line, whole body) of every display equation, in document order."""
    out = []
    for m in DISPLAY.finditer(text):
        body = m.group(1) if m.group(1) is not None else (m.group(2) if m.group(2) is not None else m.group(4))
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        out.append((lines[0] if lines else "", body))
    return out


def load_sidecar(doc):
    return json.loads(doc.sidecar.read_text(encoding="utf-8"))


def structure_problems(doc):
    problems = []
    if not doc.path.is_file():
        return [f"{doc.file}: document missing"]
    if not doc.sidecar.is_file():
        return [f"{doc.file}: sidecar {doc.sidecar.name} missing"]
    text = doc.path.read_text(encoding="utf-8")
    entries = load_sidecar(doc)
    if not isinstance(entries, list):
        return [f"{doc.file}: the sidecar must be a JSON list"]
    if len(entries) != len(doc.equations):
        problems.append(f"{doc.file}: {len(entries)} sidecar entries but {len(doc.equations)} transcriptions")
    for k, entry in enumerate(entries):
        where = f"{doc.file} entry {k + 1}"
        if set(entry) != {"match", "status", "why", "transcription"}:
            problems.append(f"{where}: keys {sorted(entry)}")
            continue
        if entry["status"] not in STATUSES:
            problems.append(f"{where}: status {entry['status']!r}")
        if not entry["why"].strip():
            problems.append(f"{where}: empty why")
        if text.count(entry["match"]) != 1:
            problems.append(f"{where}: match {entry['match']!r} occurs {text.count(entry['match'])} times")
        if k < len(doc.equations) and entry["transcription"] != transcription(*doc.equations[k]):
            problems.append(f"{where}: transcription differs from reference.py:\n  {entry['transcription']}\n"
                            f"  {transcription(*doc.equations[k])}")
    blocks = displays(text)
    if len(blocks) != doc.forward + len(entries):
        problems.append(f"{doc.file}: {len(blocks)} display equations, expected {doc.forward} forward "
                        f"+ {len(entries)} labelled")
    for j, (_first, body) in enumerate(blocks[:doc.forward]):
        if any(e.get("match", "\0") in body for e in entries):
            problems.append(f"{doc.file}: forward display {j + 1} contains a match")
    for entry, (first, _body) in zip(entries, blocks[doc.forward:]):
        if entry.get("match", "\0") not in first:
            problems.append(f"{doc.file}: match {entry.get('match')!r} is not on the first line of its display "
                            f"(in order): {first[:80]!r}")
    if entries and not any(e.get("status") == "incorrect" for e in entries):
        problems.append(f"{doc.file}: no incorrect equation")
    return problems


def corpus_problems():
    problems = []
    registered = {doc.file for doc in DOCUMENTS}
    on_disk = {p.name for p in HERE.iterdir() if p.suffix in (".md", ".tex") and p.name != "README.md"}
    if registered != on_disk:
        problems.append(f"documents on disk {sorted(on_disk - registered)} not registered, "
                        f"registered {sorted(registered - on_disk)} missing")
    if len(DOCUMENTS) < 10:
        problems.append(f"only {len(DOCUMENTS)} documents")
    incorrect = sum(e.get("status") == "incorrect" for doc in DOCUMENTS if doc.sidecar.is_file()
                    for e in load_sidecar(doc))
    if incorrect < 25:
        problems.append(f"only {incorrect} incorrect equations")
    return problems


# ===================================================================================== proof
class EquationResult:
    def __init__(self, index, lhs, rhs, status, match):
        self.index, self.lhs, self.rhs, self.status, self.match = index, lhs, rhs, status, match
        self.errors = []        # (instance, t, error)
        self.problems = []

    @property
    def ok(self):
        return not self.problems


class DocumentResult:
    def __init__(self, doc):
        self.doc = doc
        self.problems = []
        self.equations = []
        self.points = 0
        self.mutants = 0

    @property
    def ok(self):
        return not self.problems


def prove(doc: Document) -> DocumentResult:
    result = DocumentResult(doc)
    result.problems.extend(structure_problems(doc))
    if result.problems:
        return result
    entries = load_sidecar(doc)
    draws = instances(doc)
    mutant_rng = np.random.default_rng(7)
    for k, ((lhs, rhs), entry) in enumerate(zip(doc.equations, entries)):
        eq = EquationResult(k + 1, lhs, rhs, entry["status"], entry["match"])
        result.equations.append(eq)
        fn = compile_rhs(rhs)
        kind = lhs.split(":")[0]
        steps = [None] if kind == "sum" else list(range(1, T if uses_next_step(rhs) else T + 1))
        for n, inst in enumerate(draws):
            for t in steps:
                true = inst.true_lhs(lhs, t)
                where = f"instance {n + 1} (D={inst.D}, H={inst.H}) " + ("sum over t" if t is None else f"t={t}")
                try:
                    if kind == "sum":
                        claimed = sum(fn(Namespace(inst, s)) for s in range(1, T + 1))
                    else:
                        claimed = fn(Namespace(inst, t))
                except ValueError as exc:  # non-conformable matrix product
                    eq.problems.append(f"{where}: right side cannot be evaluated: {exc}")
                    continue
                claimed = np.asarray(claimed, float)
                if claimed.shape != true.shape:
                    eq.problems.append(f"{where}: right side has shape {claimed.shape}, left side {true.shape}")
                    continue
                err = rel_error(true, claimed)
                eq.errors.append((n + 1, t, err))
                result.points += 1
                if eq.status == "correct":
                    if not err < CORRECT_TOL:
                        eq.problems.append(f"{where}: labelled correct but error {err:.2e}")
                    # mutant self-test: a wrong right side near this one must be caught
                    scale = float(np.max(np.abs(claimed)))
                    idx = tuple(int(mutant_rng.integers(s)) for s in claimed.shape)
                    bumped = claimed.copy()
                    bumped[idx] += 1e-2 * scale
                    nudged = claimed.copy()
                    nudged[idx] += 1e-5 * scale
                    for label, mutant, floor in (("x1.1", 1.1 * claimed, INCORRECT_TOL),
                                                 ("+1e-2 entry", bumped, INCORRECT_TOL),
                                                 ("+1e-5 entry", nudged, CORRECT_TOL)):
                        merr = rel_error(true, mutant)
                        result.mutants += 1
                        if not merr > floor:
                            eq.problems.append(f"{where}: mutant {label} not detected (error {merr:.2e})")
                elif not err > INCORRECT_TOL:
                    eq.problems.append(f"{where}: labelled incorrect but error only {err:.2e}")
        result.problems.extend(f"{doc.file} eq {eq.index} ({entry['match']}): {p}" for p in eq.problems)
    return result


def summarise(title, documents, prove, problems, argv):
    """Prove every document's labels, print one summary line (each equation's errors with -v);
    0 when every label is proven.  The held-out and blind corpora call this with their own
    documents and proof."""
    verbose = "-v" in argv
    n_eq = n_bad = n_points = n_mutants = 0
    worst_correct, best_incorrect = 0.0, np.inf
    for doc in documents:
        result = prove(doc)
        problems.extend(result.problems)
        n_points += result.points
        n_mutants += result.mutants
        if verbose:
            print(f"{doc.file}  [{doc.family}]  {'proven' if result.ok else 'NOT PROVEN'}")
        for eq in result.equations:
            n_eq += 1
            n_bad += eq.status == "incorrect"
            errs = [e for _, _, e in eq.errors]
            if errs and eq.status == "correct":
                worst_correct = max(worst_correct, max(errs))
            if errs and eq.status == "incorrect":
                best_incorrect = min(best_incorrect, min(errs))
            if verbose:
                shown = " ".join(f"{e:.1e}" for e in errs)
                print(f"  {eq.index:2d} {eq.status:9s} {'ok ' if eq.ok else 'BAD'} {eq.lhs:13s} errors: {shown}")
    for p in problems:
        print("PROBLEM:", p)
    status = "all labels proven" if not problems else f"{len(problems)} problem(s)"
    print(f"{title}: {len(documents)} documents, {n_eq} equations ({n_eq - n_bad} correct, {n_bad} incorrect), "
          f"{n_points} points, {n_mutants} mutants; worst correct error {worst_correct:.1e}, smallest incorrect error "
          f"{best_incorrect:.1e}; {status}")
    return 0 if not problems else 1


def main(argv):
    return summarise("notation corpus", DOCUMENTS, prove, corpus_problems(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
