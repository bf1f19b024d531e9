#!/usr/bin/env python3
"""Independent numerical proof of the labels of the BLIND notation corpus (NumPy only, no lstmgen).

This folder is a third labelled corpus. Its documents were written without ever running the
checker on them, in notations that differ from both tests/notation_corpus/ and
tests/notation_holdout/. The engine and the meaning of a transcription are the same as in
``tests/notation_corpus/reference.py``; this file imports that module by path and uses its
generic parts only: ``Instance`` (random draws, central finite differences), ``Namespace``
(the names a right side may use), ``rel_error``, ``compile_rhs``, ``transcription``,
``uses_next_step`` and the constants T, SIZES and the two tolerances. Written here by hand:

* for every document, its forward step exactly as the document states it, in its own layout
  (column vectors, or row vectors for ``blog_cdot_row.md``), as ``step(P, x, S, v)``;
* for every labelled equation, in sidecar order, a transcription ``(lhs, rhs)``: ``node:NAME``
  (dL/d of a value of step t, the total), ``param:NAME`` (step t's contribution) or
  ``sum:NAME`` (whole sequence, right side summed over t = 1..T);
* the proving loop and the structure checks. An "equation unit" is defined as follows:

  - the math regions are ```` ```math ```` fences, ``$$...$$``, ``\\[...\\]``,
    ``\\begin{equation|align|gather|eqnarray|multline}[*]...\\end`` and inline ``$...$``.
    Ignored, because they are not rendered math: HTML comments ``<!-- -->``, Markdown code
    (fenced blocks other than ```` ```math ````, and inline code spans), and in ``.tex`` files
    ``%`` comments.
  - a display is cut into rows at the top-level ``\\\\`` (also inside ``aligned``, ``split``,
    ``gathered``, ``eqnarray``, never inside a matrix). A row that starts with ``+``/``-``
    (after any ``&`` and ``\\quad``), or that has no ``=`` and no ``\\equiv``, continues the
    row before it.
  - an inline ``$...$`` is a unit when it holds ``=`` or ``\\equiv``.
  - the first ``forward`` units of the document, display rows and inline equations alike,
    are the forward step and its notation (``\\sigma'(z) = ...``, ``W = [W_i; ...]``,
    ``L = \\sum_t \\ell_t``). They contain no match. Every later unit is a labelled equation,
    in document order.
  - each match occurs exactly once in the whole file (comments and code included), on the
    first line of its unit. A line holding only an opening (``$$``, ``\\begin{aligned}``,
    ``\\label{...}``) does not count as the first line.

The proof is the corpus's: 3 instances (D, H) = (3, 4), (5, 2), (2, 3), T = 4, loss
L = sum_t <u_t, out_t>; a correct label needs an error below 1e-6 at every point, an
incorrect one above 1e-3 at every point; a mutant self-test runs on every correct equation.

    python tests/notation_blind/reference.py        # one summary line, exit 0 when all proven
    python tests/notation_blind/reference.py -v     # every equation's errors
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
OTHER_CORPORA = (HERE.parent / "notation_corpus", HERE.parent / "notation_holdout")


def _load_corpus_reference():
    name = "notation_corpus_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CORPUS_REFERENCE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_ref = _load_corpus_reference()


def _load_holdout_reference():
    name = "notation_holdout_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "notation_holdout" / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_holdout = _load_holdout_reference()
Instance, Namespace, rel_error = _ref.Instance, _ref.Namespace, _ref.rel_error
compile_rhs, transcription, uses_next_step = _ref.compile_rhs, _ref.transcription, _ref.uses_next_step
T, SIZES = _ref.T, _ref.SIZES
CORRECT_TOL, INCORRECT_TOL = _ref.CORRECT_TOL, _ref.INCORRECT_TOL
STATUSES = ("correct", "incorrect")
MIN_DOCUMENTS, MIN_INCORRECT = 8, 20


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Document:
    """One blind document and its independent reference (duck-compatible with the corpus)."""

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


def shapes(gates, w, u=None, b=None, prefix=("W", "U", "b")):
    """{<prefix><g>: shape} for every gate name g (u, b optional)."""
    out = {}
    for g in gates:
        out[prefix[0] + g] = w
        if u is not None:
            out[prefix[1] + g] = u
        if b is not None:
            out[prefix[2] + g] = b
    return out


# =============================================================================== the documents

# --- 1. vignette_bold.md: R vignette, \mathbf{W}_{f} on x, \mathbf{U}_{f} on h, E = sum_t E_t ---
def vignette_params(D, H):
    return shapes("fiog", (H, D), (H, H), (H, 1))


def vignette_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    f = v("f", sigmoid(v("af", P["Wf"] @ x + P["Uf"] @ h_prev + P["bf"])))
    i = v("i", sigmoid(v("ai", P["Wi"] @ x + P["Ui"] @ h_prev + P["bi"])))
    o = v("o", sigmoid(v("ao", P["Wo"] @ x + P["Uo"] @ h_prev + P["bo"])))
    g = v("g", np.tanh(v("ag", P["Wg"] @ x + P["Ug"] @ h_prev + P["bg"])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


VIGNETTE = [
    ("node:h", "u + Uf.T @ (d_f_n * f_n * (1 - f_n)) + Ui.T @ (d_i_n * i_n * (1 - i_n))"
               " + Ug.T @ (d_g_n * (1 - g_n**2)) + Uo.T @ (d_o_n * o_n * (1 - o_n))"),
    ("node:o", "d_h * np.tanh(c)"),
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:g", "d_c * i"),
    ("node:i", "d_c * g"),
    ("node:f", "d_c * c"),
    ("sum:Wf", "(d_f * f * (1 - f)) @ x.T"),
    ("sum:Uo", "(u * np.tanh(c) * o * (1 - o)) @ h_prev.T"),
    ("sum:bg", "d_g * (1 - g**2)"),
    ("sum:Ui", "(d_i * i) @ h_prev.T"),
    ("node:x", "Wf.T @ (d_f * f * (1 - f)) + Wi.T @ (d_i * i * (1 - i)) + Wg.T @ (d_g * (1 - g**2))"
               " + Wo.T @ (d_o * o * (1 - o))"),
]


# --- 2. thesis_delta.tex: time as superscript h^{t}, W^{x}_{*} / W^{h}_{*}, \boldsymbol{\delta}, \Delta X ---
def thesis_params(D, H):
    return shapes("ifoc", (H, D), (H, H), (H, 1), prefix=("Wx", "Wh", "b"))


def thesis_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    i = v("i", sigmoid(v("ai", P["Wxi"] @ x + P["Whi"] @ h_prev + P["bi"])))
    f = v("f", sigmoid(v("af", P["Wxf"] @ x + P["Whf"] @ h_prev + P["bf"])))
    o = v("o", sigmoid(v("ao", P["Wxo"] @ x + P["Who"] @ h_prev + P["bo"])))
    ct = v("ct", np.tanh(v("ac", P["Wxc"] @ x + P["Whc"] @ h_prev + P["bc"])))
    c = v("c", f * c_prev + i * ct)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


THESIS = [
    ("node:h", "u + Whi.T @ d_ai_n + Whf.T @ d_af_n + Whc.T @ d_ac_n"),
    ("node:ao", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * ct * i * (1 - i)"),
    ("node:ac", "d_c * i * (1 - ct * ct)"),
    ("sum:Wxf", "d_af @ x.T"),
    ("sum:Who", "d_ao @ h_prev.T"),
    ("sum:bi", "d_ai * i * (1 - i)"),
    ("node:x", "Wxi.T @ d_ai + Wxf.T @ d_af + Wxo.T @ d_ao + Wxc.T @ d_ac"),
    ("node:h_prev", "Whi.T @ d_af + Whf.T @ d_ai + Who.T @ d_ao + Whc.T @ d_ac"),
    ("node:c_prev", "d_c * f"),
]


# --- 3. qa_inline.md: Q&A, inline math only, output y_t, cell s_t, \circ, ^T --------------------
def qa_params(D, H):
    return shapes("fios", (H, D), (H, H), (H, 1))


def qa_step(P, x, S, v):
    x = v("x", x)
    y_prev = v("y_prev", S["y"])
    s_prev = v("s_prev", S["s"])
    f = v("f", sigmoid(v("af", P["Wf"] @ x + P["Uf"] @ y_prev + P["bf"])))
    i = v("i", sigmoid(v("ai", P["Wi"] @ x + P["Ui"] @ y_prev + P["bi"])))
    o = v("o", sigmoid(v("ao", P["Wo"] @ x + P["Uo"] @ y_prev + P["bo"])))
    st = v("st", np.tanh(v("zs", P["Ws"] @ x + P["Us"] @ y_prev + P["bs"])))
    s = v("s", f * s_prev + i * st)
    y = v("y", o * np.tanh(s))
    return {"y": y, "s": s}


QA = [
    ("node:s", "d_y * o * (1 - np.tanh(s)**2) + d_s_n * f"),
    ("node:o", "d_y * np.tanh(s)"),
    ("node:st", "d_y * i"),
    ("node:i", "d_s * st"),
    ("node:f", "d_s * s_prev"),
    ("param:Uf", "(d_f * f * (1 - f)) @ y_prev.T"),
    ("param:Ws", "(d_st * (1 - st**2)) @ x.T"),
    ("param:bo", "d_o * o * (1 - o)"),
    ("node:s_prev", "d_s * f"),
    ("node:y_prev", "Uf.T @ (d_f * f * (1 - f)) + Ui.T @ (d_i * i * (1 - i)) + Us.T @ d_st"
                    " + Uo.T @ (d_o * o * (1 - o))"),
]


# --- 4. handout_align.tex: numbered align + \nonumber, z_{f,t} named, \sigma'(z), \otimes ------
def handout_params(D, H):
    return shapes("figo", (H, D), (H, H), (H, 1))


def handout_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    f = v("f", sigmoid(v("zf", P["Wf"] @ x + P["Uf"] @ h_prev + P["bf"])))
    i = v("i", sigmoid(v("zi", P["Wi"] @ x + P["Ui"] @ h_prev + P["bi"])))
    g = v("g", np.tanh(v("zg", P["Wg"] @ x + P["Ug"] @ h_prev + P["bg"])))
    o = v("o", sigmoid(v("zo", P["Wo"] @ x + P["Uo"] @ h_prev + P["bo"])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


HANDOUT = [
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:zo", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:zf", "d_c * c_prev * (1 / (1 + np.exp(-f))) * (1 - 1 / (1 + np.exp(-f)))"),
    ("node:zi", "d_c * g * i * (1 - i)"),
    ("node:zg", "d_c * i * (1 - g**2)"),
    ("sum:Wi", "d_zi @ x.T"),
    ("sum:Uf", "d_zf @ h_prev.T"),
    ("sum:bo", "d_h * o * (1 - o)"),
    ("sum:Ug", "d_zg @ h.T"),
    ("node:h_prev", "Uf.T @ d_zf + Ui.T @ d_zi + Ug.T @ d_zg + Uo.T @ d_zo"),
    ("node:x", "Wf.T @ d_zf + Wi.T @ d_zi + Wg.T @ d_zg + Wo.T @ d_zo"),
    ("node:c_prev", "d_c * f"),
]


# --- 5. blog_cdot_row.md: ROW vectors, x[t] . W_f + h[t-1] . U_f, \cdot matmul, \odot, \nabla ---
def blog_params(D, H):
    return shapes("figo", (D, H), (H, H), (1, H))


def blog_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    f = v("f", sigmoid(v("af", x @ P["Wf"] + h_prev @ P["Uf"] + P["bf"])))
    i = v("i", sigmoid(v("ai", x @ P["Wi"] + h_prev @ P["Ui"] + P["bi"])))
    g = v("g", np.tanh(v("ag", x @ P["Wg"] + h_prev @ P["Ug"] + P["bg"])))
    o = v("o", sigmoid(v("ao", x @ P["Wo"] + h_prev @ P["Uo"] + P["bo"])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


BLOG = [
    ("node:c", "d_h * (1 - np.tanh(c)**2) + d_c_n * f_n"),
    ("node:ao", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ai", "d_c * g * i * (1 - i)"),
    ("node:ag", "d_c * i * (1 - g * g)"),
    ("param:Wf", "x.T @ d_af"),
    ("param:Uo", "h_prev.T @ d_ao"),
    ("param:Ui", "d_ai.T @ h_prev"),
    ("param:bg", "d_c * i * (1 - np.tanh(g)**2)"),
    ("node:h_prev", "d_af @ Uf.T + d_ai @ Ui.T + d_ag @ Ug.T + d_ao @ Uo.T"),
    ("node:x", "d_af @ Wf.T + d_ai @ Wi.T + d_ag @ Wg.T + d_ao @ Wo.T"),
    ("node:c_prev", "d_c * f"),
]


# --- 6. gru_pytorch.md: torch.nn.GRU convention, r (.) (W_hn h + b_hn), z weighs h_{t-1}, bars ---
def gru_params(D, H):
    out = {}
    for g in "rzn":
        out["Wi" + g] = (H, D)
        out["bi" + g] = (H, 1)
        out["Wh" + g] = (H, H)
        out["bh" + g] = (H, 1)
    return out


def gru_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    r = v("r", sigmoid(v("ar", P["Wir"] @ x + P["bir"] + P["Whr"] @ h_prev + P["bhr"])))
    z = v("z", sigmoid(v("az", P["Wiz"] @ x + P["biz"] + P["Whz"] @ h_prev + P["bhz"])))
    hn = v("hn", P["Whn"] @ h_prev + P["bhn"])
    ng = v("ng", np.tanh(v("an", P["Win"] @ x + P["bin"] + r * hn)))  # n_t (d_n would read as "d at t+1")
    h = v("h", (1 - z) * ng + z * h_prev)
    return {"h": h}


GRU = [
    ("node:ng", "d_h * (1 - z)"),
    ("node:z", "d_h * (h_prev - ng)"),
    ("node:an", "d_ng * (1 - ng**2)"),
    ("node:r", "d_an * (Whn @ h_prev + bhn)"),
    ("node:ar", "d_r * r * (1 - r)"),
    ("node:az", "d_z * z * (1 - z)"),
    ("param:Win", "d_an @ x.T"),
    ("param:Whn", "d_an @ h_prev.T"),
    ("param:bhn", "d_an"),
    ("param:bin", "d_an"),
    ("node:h_prev", "d_h * z + Whr.T @ d_ar + Whz.T @ d_az + Whn.T @ (r * d_an)"),
    ("node:x", "Wir.T @ d_ar + Wiz.T @ d_az + Win.T @ (r * d_an)"),
]


# --- 7. peephole_graves.tex: eqnarray, W_{xi} W_{hi}, diagonal w_{ci} (.) c_{t-1}, w_{co} on c_t --
def peephole_params(D, H):
    out = shapes("ifco", (H, D), (H, H), (H, 1), prefix=("Wx", "Wh", "b"))
    out.update({"wc" + g: (H, 1) for g in "ifo"})
    return out


def peephole_step(P, x, S, v):
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    i = v("i", sigmoid(v("ai", P["Wxi"] @ x + P["Whi"] @ h_prev + P["wci"] * c_prev + P["bi"])))
    f = v("f", sigmoid(v("af", P["Wxf"] @ x + P["Whf"] @ h_prev + P["wcf"] * c_prev + P["bf"])))
    g = v("g", np.tanh(v("ag", P["Wxc"] @ x + P["Whc"] @ h_prev + P["bc"])))  # unnamed in the forward
    c = v("c", f * c_prev + i * g)
    o = v("o", sigmoid(v("ao", P["Wxo"] @ x + P["Who"] @ h_prev + P["wco"] * c + P["bo"])))
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


PEEPHOLE = [
    ("node:o", "d_h * np.tanh(c)"),
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + wco * d_o * o * (1 - o) + d_c_n * f_n"
               " + wci * d_i_n * i_n * (1 - i_n) + wcf * d_f_n * f_n * (1 - f_n)"),
    ("node:g", "d_c * i"),
    ("node:i", "d_c * g"),
    ("node:f", "d_c * c_prev"),
    ("param:wci", "d_i * i * (1 - i) * c_prev"),
    ("param:wcf", "d_f * (1 - f) * c_prev"),
    ("param:wco", "d_o * o * (1 - o) * c"),
    ("param:Whc", "(d_g * (1 - g**2)) @ h_prev.T"),
    ("node:c_prev", "d_c * f"),
    ("node:h_prev", "Whi.T @ (d_i * i * (1 - i)) + Whf.T @ (d_f * f * (1 - f)) + Whc.T @ (d_g * (1 - g**2))"
                    " + Who.T @ (d_o * o * (1 - o))"),
]


# --- 8. stacked_rowwise.tex: W = [W_i; W_f; W_o; W_g] (4H x D), time as argument h(t-1) ---------
def stacked_params(D, H):
    return {"W": (4 * H, D), "U": (4 * H, H), "b": (4 * H, 1)}


def stacked_step(P, x, S, v):
    H = P["U"].shape[1]
    x = v("x", x)
    h_prev = v("h_prev", S["h"])
    c_prev = v("c_prev", S["c"])
    a = v("a", P["W"] @ x + P["U"] @ h_prev + P["b"])
    i = v("i", sigmoid(v("ai", a[0:H])))
    f = v("f", sigmoid(v("af", a[H:2 * H])))
    o = v("o", sigmoid(v("ao", a[2 * H:3 * H])))
    g = v("g", np.tanh(v("ag", a[3 * H:4 * H])))
    c = v("c", f * c_prev + i * g)
    h = v("h", o * np.tanh(c))
    return {"h": h, "c": c}


STACKED = [
    ("node:c", "d_h * o * (1 - np.tanh(c)**2) + d_c_n"),
    ("node:ai", "d_c * g * i * (1 - i)"),
    ("node:af", "d_c * c_prev * f * (1 - f)"),
    ("node:ao", "d_h * np.tanh(c) * o * (1 - o)"),
    ("node:ag", "d_c * i * (1 - g**2)"),
    ("node:a", "np.vstack([d_af, d_ai, d_ao, d_ag])"),
    ("sum:W", "d_a @ x.T"),
    ("sum:U", "d_a @ h_prev.T"),
    ("sum:b", "d_a"),
    ("node:x", "W.T @ d_a"),
    ("node:h_prev", "U.T @ d_a"),
    ("node:c_prev", "d_c * f"),
]


DOCUMENTS = [
    Document("vignette_bold.md", "1. R package vignette: bold \\mathbf{W}_{f}, E = sum_t E_t, knitr chunks with `$`",
             "column", 7, ("h", "c"), "h", vignette_params, vignette_step, VIGNETTE),
    Document("thesis_delta.tex", "2. thesis chapter: time superscript h^{t}, W^{x}_{*}, \\boldsymbol{\\delta}, \\Delta X, % comment",
             "column", 5, ("h", "c"), "h", thesis_params, thesis_step, THESIS),
    Document("qa_inline.md", "3. Q&A answer: inline math only, output y_t, cell s_t, \\circ",
             "column", 7, ("y", "s"), "y", qa_params, qa_step, QA),
    Document("handout_align.tex", "4. lecture handout: numbered align, \\nonumber, z_{f,t}, \\sigma'(z), \\otimes",
             "column", 8, ("h", "c"), "h", handout_params, handout_step, HANDOUT),
    Document("blog_cdot_row.md", "5. blog: ROW vectors, \\cdot matrix product, \\odot, time x[t], \\nabla_{v} L",
             "row", 6, ("h", "c"), "h", blog_params, blog_step, BLOG),
    Document("gru_pytorch.md", "6. GRU in torch.nn.GRU's convention, adjoint bars \\bar{h}_t, `*` Hadamard",
             "column", 7, ("h",), "h", gru_params, gru_step, GRU),
    Document("peephole_graves.tex", "7. paper note: eqnarray, peephole w_{ci} (.) c_{t-1}, unnamed candidate",
             "column", 5, ("h", "c"), "h", peephole_params, peephole_step, PEEPHOLE),
    Document("stacked_rowwise.tex", "8. technical note: W = [W_i; W_f; W_o; W_g] stacked row-wise, time h(t)",
             "column", 6, ("h", "c"), "h", stacked_params, stacked_step, STACKED),
]


def instances(doc):
    seed0 = 90_000 + 1000 * (DOCUMENTS.index(doc) + 1)
    return [Instance(doc, D, H, seed0 + k) for k, (D, H) in enumerate(SIZES)]


# ============================================================================ structure checks
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
CODE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})(?!math\b)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")
TEX_COMMENT = re.compile(r"(?<!\\)%[^\n]*")
MATH = re.compile(
    r"```math[ \t]*\n(?P<fence>.*?)```"
    r"|\$\$(?P<dollars>.*?)\$\$"
    r"|\\\[(?P<bracket>.*?)\\\]"
    r"|\\begin\{(?P<env>(?:equation|align|gather|eqnarray|multline)\*?)\}(?P<envbody>.*?)\\end\{(?P=env)\}"
    r"|(?<![\\$])\$(?P<inline>[^$\n]+?)\$",
    re.S)
TOKEN = re.compile(r"\\begin\{([A-Za-z*]+)\}|\\end\{([A-Za-z*]+)\}|\\\\")
ROW_ENVS = {"aligned", "gathered", "split", "align", "align*", "gather", "gather*", "eqnarray", "eqnarray*"}
BARE_OPENING = re.compile(r"^\s*(\$\$|\\\[|```math|\\begin\{[A-Za-z]+\*?\}|\\label\{[^}]*\})+\s*$")
CONTINUATION = re.compile(r"^\s*(&\s*)*(\\q?quad\s*)*[+\-]")
EMPTY_ROW = re.compile(r"\\(begin|end)\{[A-Za-z*]+\}|\\nonumber|\\notag|\\label\{[^}]*\}|\s")


def _blank(pattern, text):
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def clean_text(text, tex):
    """The document with everything that is not rendered math source blanked (offsets kept)."""
    text = _blank(HTML_COMMENT, text)
    if tex:
        return _blank(TEX_COMMENT, text)
    text = _blank(CODE_FENCE, text)
    return _blank(CODE_SPAN, text)


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
    return [(off, txt) for off, txt in rows if EMPTY_ROW.sub("", txt)]


def _is_equation(text):
    return "=" in text or r"\equiv" in text


def units(text, tex=False):
    """Equation units of a document: dicts with start offset, source text, inline flag."""
    clean = clean_text(text, tex)
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


def doc_units(doc):
    return units(doc.path.read_text(encoding="utf-8"), tex=doc.file.endswith(".tex"))


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
    if not 6 <= len(entries) <= 12:
        problems.append(f"{doc.file}: {len(entries)} labelled equations, 6-12 expected")
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
    found = doc_units(doc)
    if len(found) < doc.forward:
        return problems + [f"{doc.file}: only {len(found)} equation units, {doc.forward} forward expected"]
    forward, labelled = found[:doc.forward], found[doc.forward:]
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
    if len(DOCUMENTS) < MIN_DOCUMENTS:
        problems.append(f"only {len(DOCUMENTS)} documents")
    incorrect = sum(e.get("status") == "incorrect" for doc in DOCUMENTS if doc.sidecar.is_file()
                    for e in load_sidecar(doc))
    if incorrect < MIN_INCORRECT:
        problems.append(f"only {incorrect} incorrect equations")
    for folder in OTHER_CORPORA:
        shared = registered & {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        if shared:
            problems.append(f"file names shared with tests/{folder.name}/: {sorted(shared)}")
    return problems


# ===================================================================================== proof
def prove(doc: Document):
    """The held-out corpus's proof, with this corpus's structure checks, sidecars and draws."""
    return _holdout.prove(doc, structure_problems, load_sidecar, instances, seed=13)


def main(argv):
    return _ref.summarise("blind notation corpus", DOCUMENTS, prove, corpus_problems(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
