#!/usr/bin/env python3
"""Independent numerical proof of the labels of the HELD-OUT notation corpus (NumPy only, no lstmgen).

This folder is a second labelled corpus. Its notations were chosen to differ from
tests/notation_corpus/, and nothing in it was tuned to the checker. The engine and the meaning
of a transcription are the same as in ``tests/notation_corpus/reference.py``. This file
imports that module by path and uses its generic parts: ``Instance`` (random draws and central
finite differences), ``Namespace`` (the names a right side may use), ``rel_error``,
``compile_rhs``, ``transcription``, ``uses_next_step`` and the constants T, SIZES and the two
tolerances. What is written here, by hand, is:

* for every document, the forward step exactly as the document states it, in its own layout
  (column vectors, or row vectors for ``textbook_row.tex``, ``mgu_row.tex`` and
  ``assignment_row.md``), as ``step(P, x, S, v)``;
* for every labelled equation, in sidecar order, a transcription ``(lhs, rhs)``:
  ``node:NAME`` (dL/d of a value of step t, total), ``param:NAME`` (step-t contribution) or
  ``sum:NAME`` (whole sequence, right side summed over t = 1..T). See the docstring of the
  corpus reference for the names a right side may use (``d_X``, ``_n`` for step t+1, ``u``...);
* the proving loop and the structure checks. The held-out documents use forms of equation
  that the corpus does not use: ```` ```math ```` fences, ``align`` rows, ``aligned`` rows with
  continuation lines, inline equations in list items and in prose, and HTML comments that
  hold an equation which is not labelled. So an "equation unit" is defined here:

  - the math regions are: ```` ```math ```` fences, ``$$...$$``, ``\\[...\\]``,
    ``\\begin{equation|align|gather}[*]...\\end``, and inline ``$...$``. Anything inside an
    HTML comment ``<!-- -->`` is ignored.
  - a display is cut into rows at the top-level ``\\\\`` (also inside ``aligned``/``gathered``,
    but never inside a matrix). A row that starts with ``+``/``-`` (after ``&`` and
    ``\\quad``), or that has no ``=`` and no ``\\equiv``, continues the row before it.
  - the first ``forward`` display units are the forward step. They contain no match.
  - every later display unit, and every inline ``$...$`` containing ``=`` or ``\\equiv`` that
    comes after the last forward unit, is a labelled equation, in document order. Inline
    equations before that point (notation in the introduction) are not labelled.
  - each match occurs exactly once in the whole file (comments included), on the first line
    of its unit. A line that holds only an opening (``$$``, ``\\begin{aligned}``...) does not
    count as the first line.

The proof works as in the corpus. There are 3 instances (D, H) = (3, 4), (5, 2), (2, 3) with
T = 4. The loss is L = sum_t <u_t, out_t>. A correct label needs an error below 1e-6 at every
point, an incorrect one an error above 1e-3 at every point. There is also a mutant self-test
on every correct equation.

    python tests/notation_holdout/reference.py        # one summary line, exit 0 when all proven
    python tests/notation_holdout/reference.py -v     # every equation's errors
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS_REFERENCE = HERE.parent / "notation_corpus" / "reference.py"


def _load_corpus_reference():
    name = "notation_corpus_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CORPUS_REFERENCE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_ref = _load_corpus_reference()
Instance, Namespace, rel_error = _ref.Instance, _ref.Namespace, _ref.rel_error
compile_rhs, transcription, uses_next_step = _ref.compile_rhs, _ref.transcription, _ref.uses_next_step
T, SIZES = _ref.T, _ref.SIZES
CORRECT_TOL, INCORRECT_TOL = _ref.CORRECT_TOL, _ref.INCORRECT_TOL
STATUSES = ("correct", "incorrect")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Document:
    """One held-out document and its independent reference (duck-compatible with the corpus)."""

    def __init__(self, file, family, layout, forward, states, output, params, step, equations):
        self.file, self.family, self.layout, self.forward = file, family, layout, forward
        self.states, self.output, self.params, self.step, self.equations = states, output, params, step, equations

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


def shapes(gates, w, u=None, b=None):
    """{W<g>: w, U<g>: u, b<g>: b} for every gate name g (u, b optional)."""
    out = {}
    for g in gates:
        out["W" + g] = w
        if u is not None:
            out["U" + g] = u
        if b is not None:
            out["b" + g] = b
    return out


# =============================================================================== the documents

# --- 1. blog_concat.md: W_f . [h_{t-1}, x_t] + b_f, cell C_t, candidate \tilde{C}_t, `*`, E -----
def blog_concat_params(D, H):
    return shapes(("f", "i", "C", "o"), (H, H + D), b=(H, 1))


def blog_concat_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    C_prev = v("C_prev", S["C"])
    hx = v("hx", np.vstack([h_prev, x]))  # [h_{t-1}, x_t], h on top
    f = v("f", sigmoid(v("zf", P["Wf"] @ hx + P["bf"])))
    i = v("i", sigmoid(v("zi", P["Wi"] @ hx + P["bi"])))
    Ct = v("Ct", np.tanh(v("zC", P["WC"] @ hx + P["bC"])))
    C = v("C", f * C_prev + i * Ct)
    o = v("o", sigmoid(v("zo", P["Wo"] @ hx + P["bo"])))
    h = v("h", o * np.tanh(C))
    return {"h": h, "C": C}


BLOG_CONCAT = [
    ("node:o", "d_h * np.tanh(C)"),
    ("node:C", "d_h * o * (1 - np.tanh(C)**2) + d_C_n * f_n"),
    ("node:Ct", "d_C * i"),
    ("node:i", "d_C * Ct"),
    ("node:f", "d_h * C_prev"),
    ("param:Wf", "(d_f * f * (1 - f)) @ hx.T"),
    ("param:WC", "(d_Ct * (1 - Ct)) @ hx.T"),
    ("param:bo", "d_o * o * (1 - o)"),
    ("node:h_prev", "Wf[:, :H].T @ (d_f * f * (1 - f)) + Wi[:, :H].T @ (d_i * i * (1 - i))"
                    " + WC[:, :H].T @ (d_Ct * (1 - Ct**2)) + Wo[:, :H].T @ (d_o * o * (1 - o))"),
    ("node:C_prev", "d_C * f"),
    ("node:x", "Wf[:, H:].T @ (d_f * f * (1 - f)) + Wi[:, H:].T @ (d_i * i * (1 - i))"
               " + WC[:, H:].T @ (d_Ct * (1 - Ct**2))"),
]


# --- 2. textbook_row.tex: rows, X_t W_{xi} + H_{t-1} W_{hi} + b_i, capitals I F O, \bar{C}_t ---
def textbook_row_params(D, H):
    out = {}
    for g in "ifoc":
        out["Wx" + g] = (D, H)
        out["Wh" + g] = (H, H)
        out["b" + g] = (1, H)
    return out


def textbook_row_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])   # H_{t-1}
    C_prev = v("C_prev", S["C"])
    I = v("I", sigmoid(v("zI", x @ P["Wxi"] + h_prev @ P["Whi"] + P["bi"])))  # noqa: E741 - the document's own letter
    F = v("F", sigmoid(v("zF", x @ P["Wxf"] + h_prev @ P["Whf"] + P["bf"])))
    O = v("O", sigmoid(v("zO", x @ P["Wxo"] + h_prev @ P["Who"] + P["bo"])))  # noqa: E741 - the document's own letter
    Cb = v("Cb", np.tanh(v("zC", x @ P["Wxc"] + h_prev @ P["Whc"] + P["bc"])))
    C = v("C", F * C_prev + I * Cb)
    h = v("h", O * np.tanh(C))     # H_t
    return {"h": h, "C": C}


TEXTBOOK_ROW = [
    ("node:O", "d_h * np.tanh(C)"),
    ("node:C", "d_h * O * (1 - np.tanh(C)**2) + d_C_n * F"),
    ("node:F", "d_C * C_prev"),
    ("node:Cb", "d_C * I"),
    ("param:Wxf", "x.T @ (d_F * F * (1 - F))"),
    ("param:Whi", "(d_C * Cb * I * (1 - I)).T @ h_prev"),
    ("param:Whc", "h_prev.T @ (d_Cb * (1 - Cb**2))"),
    ("param:bo", "d_O * O * (1 - O)"),
    ("node:x", "(d_C * Cb * I * (1 - I)) @ Wxi.T + (d_F * F * (1 - F)) @ Wxf.T"
               " + (d_O * O * (1 - O)) @ Wxo.T + (d_Cb * (1 - Cb**2)) @ Wxc.T"),
    ("node:h_prev", "(d_C * Cb * I * (1 - I)) @ Whf.T + (d_F * F * (1 - F)) @ Whf.T"
                    " + (d_O * O * (1 - O)) @ Who.T + (d_Cb * (1 - Cb**2)) @ Whc.T"),
    ("node:C_prev", "d_C * F"),
]


# --- 3. thesis_peephole.tex: bold, W x + U h + v (.) c_{t-1}, o peeps at c_t, \hat{c}, deltas --
def thesis_peephole_params(D, H):
    out = shapes("ifco", (H, D), (H, H), (H, 1))
    out.update({"v" + g: (H, 1) for g in "ifo"})
    return out


def thesis_peephole_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    i = v("i", sigmoid(v("ai", P["Wi"] @ x + P["Ui"] @ h_prev + P["vi"] * c_prev + P["bi"])))
    f = v("f", sigmoid(v("af", P["Wf"] @ x + P["Uf"] @ h_prev + P["vf"] * c_prev + P["bf"])))
    ch = v("ch", np.tanh(v("ac", P["Wc"] @ x + P["Uc"] @ h_prev + P["bc"])))
    c = v("c", f * c_prev + i * ch)
    o = v("o", sigmoid(v("ao", P["Wo"] @ x + P["Uo"] @ h_prev + P["vo"] * c + P["bo"])))
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


THESIS_PEEPHOLE = [
    ("node:ao", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + vo * d_ao + vi * d_ai_n + vf * d_af_n + d_c_n * f_n"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * ch * i * (1 - i)"),
    ("node:ac", "d_c * i"),
    ("param:vf", "d_af * c_prev"),
    ("param:vo", "d_ao * c_prev"),
    ("param:Ui", "d_ai @ h_prev.T"),
    ("param:Wo", "d_ao @ x.T"),
    ("node:c_prev", "d_c * f + vi * d_ai + vf * d_af"),
    ("node:h_prev", "Ui.T @ d_ai + Uf.T @ d_af + Uo.T @ d_ao + Uc.T @ (d_c * i * (1 - ch**2))"),
]


# --- 4. gru_cho.md: z weighs h_{t-1}, reset after U_h h_{t-1}, dJ/dh_t, \circ ------------------
def gru_cho_params(D, H):
    return shapes("zrh", (H, D), (H, H), (H, 1))


def gru_cho_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    z = v("z", sigmoid(v("az", P["Wz"] @ x + P["Uz"] @ h_prev + P["bz"])))
    r = v("r", sigmoid(v("ar", P["Wr"] @ x + P["Ur"] @ h_prev + P["br"])))
    hh = v("hh", np.tanh(v("ah", P["Wh"] @ x + r * (P["Uh"] @ h_prev) + P["bh"])))
    h = v("h", z * h_prev + (1 - z) * hh)
    return {"h": h}


GRU_CHO = [
    ("node:hh", "d_h * (1 - z)"),
    ("node:z", "d_h * (hh - h_prev)"),
    ("node:r", "d_hh * (1 - hh**2) * (Uh @ h_prev)"),
    ("param:Uh", "(d_hh * (1 - hh**2) * r) @ h_prev.T"),
    ("param:Wh", "(d_hh * (1 - hh**2)) @ x.T"),
    ("param:Ur", "(d_r * r * (1 - r)) @ h_prev.T"),
    ("param:bz", "d_z * (1 - z)"),
    ("node:h_prev", "d_h * z + Uz.T @ (d_z * z * (1 - z)) + Ur.T @ (d_r * r * (1 - r))"
                    " + Uh.T @ (d_hh * (1 - hh**2) * r)"),
    ("node:x", "Wz.T @ (d_z * z * (1 - z)) + Wr.T @ (d_r * r * (1 - r)) + Wh.T @ (d_hh * (1 - hh**2) * r)"),
]


# --- 5. mgu_row.tex: minimal gated unit, rows, \cdot element-wise, ^{\intercal}, <t> angles -----
def mgu_row_params(D, H):
    return shapes("fh", (D, H), (H, H), (1, H))


def mgu_row_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    f = v("f", sigmoid(v("af", x @ P["Wf"] + h_prev @ P["Uf"] + P["bf"])))
    fh = v("fh", f * h_prev)
    hh = v("hh", np.tanh(v("ah", x @ P["Wh"] + fh @ P["Uh"] + P["bh"])))
    h = v("h", (1 - f) * h_prev + f * hh)
    return {"h": h}


MGU_ROW = [
    ("node:hh", "d_h * f"),
    ("node:f", "d_h * (hh - h_prev) + ((d_hh * (1 - hh**2)) @ Uh.T) * h_prev"),
    ("param:Wf", "x.T @ (d_f * f * (1 - f))"),
    ("param:Uh", "(f * h_prev).T @ (d_hh * (1 - hh**2))"),
    ("param:Uf", "h_prev.T @ (d_h * f * (1 - f))"),
    ("param:bh", "d_hh * (1 - hh**2)"),
    ("node:h_prev", "d_h * (1 - f) + ((d_hh * (1 - hh**2)) @ Uh.T) * f + (d_f * f * (1 - f)) @ Uf"),
    ("node:x", "(d_f * f * (1 - f)) @ Wf.T + (d_hh * (1 - hh**2)) @ Wh.T"),
]


# --- 6. vanilla_rnn_qa.md: h_t = tanh(W_hh h + W_xh x + b_h), sums over t, delta_t in prose ----
def vanilla_params(D, H):
    return {"Whh": (H, H), "Wxh": (H, D), "bh": (H, 1)}


def vanilla_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    h = v("h", np.tanh(v("a", P["Whh"] @ h_prev + P["Wxh"] @ x + P["bh"])))
    return {"h": h}


VANILLA = [
    ("node:h", "u + Whh.T @ (d_h_n * (1 - h_n**2))"),
    ("sum:Whh", "(d_h * (1 - h**2)) @ h_prev.T"),
    ("node:a", "d_h * (1 - h**2)"),
    ("node:a", "(u + Whh.T @ d_a_n) * (1 - h**2)"),
    ("sum:Wxh", "d_a @ x.T"),
    ("sum:bh", "u * (1 - h**2)"),
    ("node:x", "Wxh.T @ d_a"),
    ("node:h_prev", "Whh @ d_a"),
    ("param:Whh", "d_a @ h.T"),
]


# --- 7. lecture_sum.tex: cell m, output y, named z_f..z_o, L = sum l_t, sum_{t=1}^T gradients ---
def lecture_params(D, H):
    return shapes("figo", (H, D), (H, H), (H, 1))


def lecture_step(P, x, S, v):
    x = v("x", x)
    y_prev = v("y_prev", S["y"])
    m_prev = v("m_prev", S["m"])
    f = v("f", sigmoid(v("zf", P["Wf"] @ x + P["Uf"] @ y_prev + P["bf"])))
    i = v("i", sigmoid(v("zi", P["Wi"] @ x + P["Ui"] @ y_prev + P["bi"])))
    g = v("g", np.tanh(v("zg", P["Wg"] @ x + P["Ug"] @ y_prev + P["bg"])))
    o = v("o", sigmoid(v("zo", P["Wo"] @ x + P["Uo"] @ y_prev + P["bo"])))
    m = v("m", f * m_prev + i * g)
    y = v("y", o * np.tanh(m))
    return {"y": y, "m": m}


LECTURE = [
    ("node:m", "d_y * o * (1 - np.tanh(m)**2) + d_m_n * f_n"),
    ("node:zo", "d_y * np.tanh(m) * o * (1 - o)"),
    ("node:zf", "d_m * m_prev * f * (1 - f)"),
    ("node:zi", "d_m * g * i * (1 - i)"),
    ("node:zg", "d_m * i * (1 - g**2)"),
    ("sum:Wf", "d_zf @ x.T"),
    ("sum:Uo", "d_zo @ y.T"),
    ("sum:bg", "d_m * i"),
    ("sum:Ui", "d_zi @ y_prev.T"),
    ("node:y_prev", "Uf.T @ d_zf + Ui.T @ d_zi + Ug.T @ d_zg + Uo @ d_zo"),
    ("node:m_prev", "d_m * f"),
    ("node:x", "Wf.T @ d_zf + Wi.T @ d_zi + Wg.T @ d_zg + Wo.T @ d_zo"),
]


# --- 8. course_dgamma.md: Gamma gates, <t>, W [a; x] (bmatrix), dX names, dGamma = pre-act ------
def course_params(D, H):
    return shapes("fuco", (H, H + D), b=(H, 1))


def course_step(P, x, S, v):
    x = v("x", x)
    a_prev = v("a_prev", S["a"])
    c_prev = v("c_prev", S["c"])
    ax = v("ax", np.vstack([a_prev, x]))  # a^{<t-1>} above x^{<t>}
    gf = v("gf", sigmoid(v("zf", P["Wf"] @ ax + P["bf"])))
    gu = v("gu", sigmoid(v("zu", P["Wu"] @ ax + P["bu"])))
    cc = v("cc", np.tanh(v("zc", P["Wc"] @ ax + P["bc"])))
    c = v("c", gf * c_prev + gu * cc)
    go = v("go", sigmoid(v("zo", P["Wo"] @ ax + P["bo"])))
    a = v("a", go * np.tanh(c))
    return {"a": a, "c": c}


COURSE = [
    ("node:zo", "d_a * np.tanh(c) * go * (1 - go)"),
    ("node:c", "d_a * go * (1 - np.tanh(c)**2) + d_c_n * gf_n"),
    ("node:zc", "d_c * gu * (1 - cc**2)"),
    ("node:zu", "d_c * cc * gu * (1 - gu)"),
    ("node:zf", "d_c * c_prev * gf * (1 - gf)"),
    ("param:Wf", "d_zf @ ax.T"),
    ("param:Wo", "d_zo @ np.vstack([a, x]).T"),
    ("param:bc", "d_zc"),
    ("node:c_prev", "d_c * gf + d_a * go * (1 - np.tanh(c)**2) * gf"),
    ("node:a_prev", "Wf[:, :H].T @ d_zf + Wu[:, :H].T @ d_zu + Wc[:, :H].T @ d_zc + Wo[:, :H].T @ d_zo"),
    ("node:x", "Wf[:, H:].T @ d_zf + Wu[:, H:].T @ d_zu + Wc[:, H:].T @ d_zc + Wo[:, H:].T @ d_zo"),
]


# --- 9. assignment_row.md: rows, one stacked a_t = x W_x + h W_h + b (4H), blocks i f o g -------
def assignment_params(D, H):
    return {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (1, 4 * H)}


def assignment_step(P, x, S, v):
    H = P["Wh"].shape[0]
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    a = v("a", x @ P["Wx"] + h_prev @ P["Wh"] + P["b"])
    i = v("i", sigmoid(v("ai", a[:, 0:H])))
    f = v("f", sigmoid(v("af", a[:, H:2 * H])))
    o = v("o", sigmoid(v("ao", a[:, 2 * H:3 * H])))
    g = v("g", np.tanh(v("ag", a[:, 3 * H:4 * H])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


ASSIGNMENT = [
    ("node:o", "d_h * np.tanh(c)"),
    ("node:c", "d_c_n * f_n + d_h * o * (1 - np.tanh(c)**2)"),
    ("node:ao", "d_o * o * (1 - o)"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * g * i * (1 - i)"),
    ("node:ag", "d_c * i * (1 - g)**2"),
    ("node:c_prev", "d_c * f"),
    ("param:Wx", "x.T @ d_a"),
    ("param:Wh", "h.T @ d_a"),
    ("param:b", "d_a"),
    ("node:h_prev", "d_a @ Wh.T + d_c * f"),
    ("node:x", "d_a @ Wx.T"),
]


# --- 10. hat_preacts.md: hatted pre-activations, candidate a_t, output s_t, delta-prefix, \circ --
def hat_params(D, H):
    return shapes("aifo", (H, D), (H, H), (H, 1))


def hat_step(P, x, S, v):
    x = v("x", x)
    s_prev = v("s_prev", S["s"])
    c_prev = v("c_prev", S["c"])
    a = v("a", np.tanh(v("ah", P["Wa"] @ x + P["Ua"] @ s_prev + P["ba"])))
    i = v("i", sigmoid(v("ih", P["Wi"] @ x + P["Ui"] @ s_prev + P["bi"])))
    f = v("f", sigmoid(v("fh", P["Wf"] @ x + P["Uf"] @ s_prev + P["bf"])))
    o = v("o", sigmoid(v("oh", P["Wo"] @ x + P["Uo"] @ s_prev + P["bo"])))
    c = v("c", i * a + f * c_prev)
    s = v("s", o * np.tanh(c))
    return {"s": s, "c": c}


HAT = [
    ("node:o", "d_s * np.tanh(c)"),
    ("node:c", "d_s * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:a", "d_c * i"),
    ("node:f", "d_c * c_prev"),
    ("node:ah", "d_a * (1 - a**2)"),
    ("node:fh", "d_f * f * (1 - f)"),
    ("node:oh", "d_o * o * (1 - o)"),
    ("node:ih", "d_s * a * i * (1 - i)"),
    ("param:Wi", "(d_c * a * i * (1 - i)) @ x.T"),
    ("param:Ua", "d_ah @ s_prev.T"),
    ("node:s_prev", "Ua.T @ d_ah + Ui.T @ (d_c * a * i * (1 - i)) + Uf.T @ d_fh + Uo.T @ d_oh"),
    ("node:c_prev", "d_c * i"),
]


# --- 11. folded_epsilon.tex: W [x; z; 1], time ^{(t)}, cell C, hidden z, epsilon deltas, J ------
def folded_params(D, H):
    return shapes("fiog", (H, D + H + 1))


def folded_step(P, x, S, v):
    x = v("x", x)
    z_prev = v("z_prev", S["z"])
    C_prev = v("C_prev", S["C"])
    xi = v("xi", np.vstack([x, z_prev, np.ones((1, 1))]))  # [x; z^{(t-1)}; 1]
    f = v("f", sigmoid(v("af", P["Wf"] @ xi)))
    i = v("i", sigmoid(v("ai", P["Wi"] @ xi)))
    o = v("o", sigmoid(v("ao", P["Wo"] @ xi)))
    g = v("g", np.tanh(v("ag", P["Wg"] @ xi)))
    C = v("C", f * C_prev + i * g)
    z = v("z", o * np.tanh(C))
    return {"z": z, "C": C}


FOLDED = [
    ("node:ao", "d_z * np.tanh(C) * o * (o - 1)"),
    ("node:C", "d_z * o * (1 - np.tanh(C)**2) + d_C_n * f_n"),
    ("node:af", "d_C * C_prev * f * (1 - f)"),
    ("node:ai", "d_C * g * i * (1 - i)"),
    ("node:ag", "d_C * i * (1 - g * g)"),
    ("param:Wf", "d_af @ xi.T"),
    ("sum:Wi", "d_ai @ xi.T"),
    ("sum:Wg", "d_ag @ xi.T"),
    ("node:z_prev", "(Wf.T @ d_af + Wi.T @ d_ai + Wg.T @ d_ag)[D:D+H]"),
    ("node:x", "(Wf.T @ d_af + Wi.T @ d_ai + Wg.T @ d_ag + Wo.T @ (d_z * np.tanh(C) * o * (1 - o)))[:D]"),
    ("node:C_prev", "d_C * f"),
]


DOCUMENTS = [
    Document("blog_concat.md", "1. blog: W_f . [h_{t-1}, x_t] + b_f, C_t / \\tilde{C}_t, `*`, E, ```math fences, HTML comment",
             "column", 6, ("h", "C"), "h", blog_concat_params, blog_concat_step, BLOG_CONCAT),
    Document("textbook_row.tex", "2. textbook: rows X_t W_{xi} + H_{t-1} W_{hi}, capitals I F O, \\bar{C}_t, align &=, ^{\\mathsf{T}}",
             "row", 6, ("h", "C"), "h", textbook_row_params, textbook_row_step, TEXTBOOK_ROW),
    Document("thesis_peephole.tex", "3. thesis: bold, W U + v (.) c peepholes, \\hat{c}, \\delta^f_t :=, \\equiv, \\tag, \\boxed",
             "column", 6, ("h", "c"), "h", thesis_peephole_params, thesis_peephole_step, THESIS_PEEPHOLE),
    Document("gru_cho.md", "4. lecture: original GRU (z on h_{t-1}, reset after U_h h), dJ/dh_t, \\circ",
             "column", 4, ("h",), "h", gru_cho_params, gru_cho_step, GRU_CHO),
    Document("mgu_row.tex", "5. paper supplement: minimal gated unit, rows, \\cdot element-wise, <t> angles, \\ell",
             "row", 3, ("h",), "h", mgu_row_params, mgu_row_step, MGU_ROW),
    Document("vanilla_rnn_qa.md", "6. Q&A answer: vanilla RNN, \\sum_{t=1}^T, delta_t in prose, list items",
             "column", 2, ("h",), "h", vanilla_params, vanilla_step, VANILLA),
    Document("lecture_sum.tex", "7. lecture notes: cell m_t, output y_t, z_f named pre-activations, L = sum l_t, sums",
             "column", 11, ("y", "m"), "y", lecture_params, lecture_step, LECTURE),
    Document("course_dgamma.md", "8. course write-up: Gamma, <t>, W [a; x] bmatrix, dX names, dGamma = pre-activation",
             "column", 6, ("a", "c"), "a", course_params, course_step, COURSE),
    Document("assignment_row.md", "9. assignment notes: rows, stacked a_t = x W_x + h W_h + b, dh_t / da_o / dc_{prev}",
             "row", 4, ("h", "c"), "h", assignment_params, assignment_step, ASSIGNMENT),
    Document("hat_preacts.md", "10. blog: hatted pre-activations, candidate a_t, output s_t, delta-prefix names, \\circ",
             "column", 10, ("s", "c"), "s", hat_params, hat_step, HAT),
    Document("folded_epsilon.tex", "11. technical note: W [x; z; 1] folded bias, ^{(t)}, C^{(t)}, z^{(t)}, epsilon, J",
             "column", 7, ("z", "C"), "z", folded_params, folded_step, FOLDED),
]


def instances(doc):
    seed0 = 50_000 + 1000 * (DOCUMENTS.index(doc) + 1)
    return [Instance(doc, D, H, seed0 + k) for k, (D, H) in enumerate(SIZES)]


# ============================================================================ structure checks
COMMENT = re.compile(r"<!--.*?-->", re.S)
MATH = re.compile(
    r"```math[ \t]*\n(?P<fence>.*?)```"
    r"|\$\$(?P<dollars>.*?)\$\$"
    r"|\\\[(?P<bracket>.*?)\\\]"
    r"|\\begin\{(?P<env>(?:equation|align|gather)\*?)\}(?P<envbody>.*?)\\end\{(?P=env)\}"
    r"|(?<![\\$])\$(?P<inline>[^$\n]+?)\$",
    re.S)
TOKEN = re.compile(r"\\begin\{([A-Za-z*]+)\}|\\end\{([A-Za-z*]+)\}|\\\\")
ROW_ENVS = {"aligned", "gathered", "align", "align*", "gather", "gather*"}
BARE_OPENING = re.compile(r"^\s*(\$\$|\\\[|```math|\\begin\{[A-Za-z]+\*?\})+\s*$")
CONTINUATION = re.compile(r"^\s*&?\s*(\\q?quad\s*)*[+\-]")


def _blank_comments(text):
    return COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _rows(body, start):
    """(offset, text) of the top-level rows of a display body."""
    rows, stack, last = [], [], 0
    for m in TOKEN.finditer(body):
        if m.group(1):
            stack.append(m.group(1))
        elif m.group(2):
            if stack:
                stack.pop()
        elif not stack or stack[-1] in ROW_ENVS:
            rows.append((start + last, body[last:m.start()]))
            last = m.end()
    rows.append((start + last, body[last:]))
    return [(off, txt) for off, txt in rows if re.sub(r"\\(begin|end)\{[A-Za-z*]+\}|\\nonumber|\s", "", txt)]


def _is_equation(text):
    return "=" in text or r"\equiv" in text


def units(text):
    """Equation units of a document: dicts with start offset, source text, inline flag."""
    clean = _blank_comments(text)
    out = []
    for m in MATH.finditer(clean):
        if m.group("inline") is not None:
            if _is_equation(m.group("inline")):
                out.append({"start": m.start("inline"), "text": m.group("inline"), "inline": True})
            continue
        name = next(g for g in ("fence", "dollars", "bracket", "envbody") if m.group(g) is not None)
        merged = []
        for off, row in _rows(m.group(name), m.start(name)):
            stripped = re.sub(r"\\(begin|end)\{[A-Za-z*]+\}", "", row)
            if merged and (CONTINUATION.match(stripped) or not _is_equation(stripped)):
                merged[-1]["text"] += "\\\\" + row
            else:
                merged.append({"start": off, "text": row, "inline": False})
        out.extend(merged)
    return out


def first_line(text, unit):
    """The source line (whole, from the document) on which the unit's first line stands."""
    offset = unit["start"]
    for line in unit["text"].splitlines(keepends=True):
        if line.strip() and not BARE_OPENING.match(line):
            break
        offset += len(line)
    begin = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[begin:end if end >= 0 else len(text)].strip()


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
    found = units(text)
    displayed = [u for u in found if not u["inline"]]
    if len(displayed) < doc.forward:
        return problems + [f"{doc.file}: only {len(displayed)} display units, {doc.forward} forward expected"]
    forward = displayed[:doc.forward]
    end = forward[-1]["start"] + len(forward[-1]["text"])
    labelled = [u for u in found if u["start"] >= end]
    if len(labelled) != len(entries):
        problems.append(f"{doc.file}: {len(labelled)} equations after the forward step, {len(entries)} labelled")
    for j, unit in enumerate(forward):
        if any(e.get("match", "\0") in unit["text"] for e in entries):
            problems.append(f"{doc.file}: forward unit {j + 1} contains a match")
    for entry, unit in zip(entries, labelled):
        line = first_line(text, unit)
        if entry.get("match", "\0") not in line:
            problems.append(f"{doc.file}: match {entry.get('match')!r} is not on the first line of its equation "
                            f"(in order): {line[:80]!r}")
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
    corpus_files = {p.name for p in CORPUS_REFERENCE.parent.iterdir()}
    if registered & corpus_files:
        problems.append(f"file names shared with tests/notation_corpus/: {sorted(registered & corpus_files)}")
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
        self.doc, self.problems, self.equations, self.points, self.mutants = doc, [], [], 0, 0

    @property
    def ok(self):
        return not self.problems


def _mutants(claimed, rng):
    scale = float(np.max(np.abs(claimed)))
    idx = tuple(int(rng.integers(s)) for s in claimed.shape)
    bumped, nudged = claimed.copy(), claimed.copy()
    bumped[idx] += 1e-2 * scale
    nudged[idx] += 1e-5 * scale
    return (("x1.1", 1.1 * claimed, INCORRECT_TOL), ("+1e-2 entry", bumped, INCORRECT_TOL),
            ("+1e-5 entry", nudged, CORRECT_TOL))


def prove(doc: Document, checks=None, sidecar=None, draws_of=None, seed: int = 11) -> DocumentResult:
    """Prove one document's labels.  The blind corpus calls this with its own structure checks,
    sidecar reader and draws (`checks`, `sidecar`, `draws_of`; default: this corpus's)."""
    result = DocumentResult(doc)
    result.problems.extend((checks or structure_problems)(doc))
    if result.problems:
        return result
    entries = (sidecar or load_sidecar)(doc)
    draws = (draws_of or instances)(doc)
    mutant_rng = np.random.default_rng(seed)
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
                except (ValueError, NameError) as exc:  # non-conformable product, step outside 1..T
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
                    for label, mutant, floor in _mutants(claimed, mutant_rng):
                        merr = rel_error(true, mutant)
                        result.mutants += 1
                        if not merr > floor:
                            eq.problems.append(f"{where}: mutant {label} not detected (error {merr:.2e})")
                elif not err > INCORRECT_TOL:
                    eq.problems.append(f"{where}: labelled incorrect but error only {err:.2e}")
        result.problems.extend(f"{doc.file} eq {eq.index} ({entry['match']}): {p}" for p in eq.problems)
    return result


def main(argv):
    return _ref.summarise("held-out notation corpus", DOCUMENTS, prove, corpus_problems(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
