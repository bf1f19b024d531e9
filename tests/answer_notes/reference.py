#!/usr/bin/env python3
"""Independent proof of the labels of lstm_mistakes.md (NumPy only, no lstmgen).

Each label of `lstm_mistakes.md.expected.json` names what its equation's left side denotes and
transcribes its right side into NumPy, by hand:

``lhs``     ``param:P`` the gradient of L with respect to parameter P as step t uses it (step t's
            share); ``sum:P`` over the whole sequence; ``node:V`` with respect to the value V that
            step t computes (``node:c``, ``node:h``: the total gradients reaching the states);
            ``back:h`` / ``back:c`` with respect to the previous state as step t reads it (what
            flows from step t back to t-1).
``rhs``     a correct equation's right side; ``wrong`` the side a mistake's note is about;
            ``repair`` that side with the mistake the note names repaired.  A transcription that
            starts with ``SUM`` is summed over t = 1..T.

Names a transcription may use, all column vectors (n x 1) or matrices: the values of step t
(x, h_p, c_p for h_{t-1}, c_{t-1}; f, i, o, g for the candidate, c, h), the same with ``_n`` at
step t+1 and ``_p`` at step t-1; ``d_V`` (and ``d_V_n``) for the true node:V gradient at t (t+1);
the seed's bracketed deltas dF, dI, dG, dO (dL/dc_t * c_{t-1} * f_t (1 - f_t), ...); the
parameters (Wxf, Whf, bf, ...); ``np``.

The cell is the seed's LSTM: f = σ(W_x^f x + W_h^f h_p + b^f) and likewise i, o; g = tanh(...);
c = f c_p + i g; h = o tanh(c); the loss L = Σ_t u_t · h_t with random u_t.  Three instances
(D, H) = (3, 4), (5, 2), (2, 3), T = 4 steps, random parameters and initial states.  Every true
gradient is computed by central finite differences in float64 (step 1e-6).  A label's sides are
evaluated at every step where the names of all of them exist (a dropped term about step t+1 is no
mistake at t = T, where there is no step t+1).  Error at a point: max|true - side| / max(max|true|, max|side|),
or infinite when the side has another shape or its products do not fit.

Proven means: a correct label's rhs has error < 1e-6 at every point; a mistake's ``wrong`` side
has error > 1e-4 at every point and its ``repair`` (where the label gives one) < 1e-6 at every
point, so the note's repair is the fix; a correct rhs times 1.1 has error > 1e-4 everywhere
(the points can tell a near miss); ``wrong-shape`` needs the wrong side's shape to differ; a
``broken-chain`` label's chain rule has a factor ∂A/∂B followed by ∂C/∂D with B ≠ C (read from
the document's text).  Each ``match`` must occur exactly once in the document.

    python tests/answer_notes/reference.py        # one summary line, exit 0 when all proven
    python tests/answer_notes/reference.py -v     # every label's errors
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DOCUMENT = HERE / "lstm_mistakes.md"
LABELS = HERE / "lstm_mistakes.md.expected.json"
T = 4
SIZES = ((3, 4), (5, 2), (2, 3))
EPS = 1e-6
RIGHT, WRONG = 1e-6, 1e-4  # finite differences are good to ~1e-7 here
GATES = {"f": "f", "i": "i", "o": "o", "g": "c"}  # value -> the letter of its parameters (W_x^c, b^c for g)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def instance(D: int, H: int, seed: int) -> dict:
    """Parameters, inputs, initial states and loss weights of one random sequence."""
    rng = np.random.default_rng(seed)
    out = {}
    for letter in GATES.values():
        out["Wx" + letter] = rng.normal(0, 0.6, (H, D))
        out["Wh" + letter] = rng.normal(0, 0.6, (H, H))
        out["b" + letter] = rng.normal(0, 0.3, (H, 1))
    out["xs"] = [rng.normal(0, 1, (D, 1)) for _ in range(T)]
    out["us"] = [rng.normal(0, 1, (H, 1)) for _ in range(T)]
    out["h0"], out["c0"] = rng.normal(0, 0.5, (H, 1)), rng.normal(0, 0.5, (H, 1))
    return out


def run(data: dict, nudge=lambda t, key, value: value):
    """The loss and each step's values; every parameter, read state and computed value of step t
    passes through nudge(t, key, value) (keys: parameter names, 'h_in', 'c_in', f i o g c h)."""
    h, c, loss, steps = data["h0"], data["c0"], 0.0, []
    for t in range(1, T + 1):
        P = {k: nudge(t, k, data[k]) for k in data if k[0] in "Wb"}
        h_in, c_in = nudge(t, "h_in", h), nudge(t, "c_in", c)
        x = data["xs"][t - 1]
        v = {"x": x, "h_p": h_in, "c_p": c_in}
        for gate, letter in GATES.items():
            act = np.tanh if gate == "g" else sigmoid
            v[gate] = nudge(t, gate, act(P["Wx" + letter] @ x + P["Wh" + letter] @ h_in + P["b" + letter]))
        v["c"] = nudge(t, "c", v["f"] * c_in + v["i"] * v["g"])
        v["h"] = nudge(t, "h", v["o"] * np.tanh(v["c"]))
        h, c = v["h"], v["c"]
        loss += float(np.sum(data["us"][t - 1] * h))
        steps.append(v)
    return loss, steps


def nudged_loss(data: dict, key: str, steps: set, index: tuple, change: float) -> float:
    """The loss with entry `index` of `key` moved by `change` at each step of `steps`."""
    def nudge(t, k, value):
        if k != key or t not in steps:
            return value
        value = np.array(value, dtype=float)
        value[index] += change
        return value
    return run(data, nudge)[0]


def gradient(data: dict, key: str, steps: set, shape) -> np.ndarray:
    """dL/d(key) by central differences, the same change applied at each step of `steps`."""
    grad = np.zeros(shape)
    for index in np.ndindex(*shape):
        grad[index] = (nudged_loss(data, key, steps, index, EPS) - nudged_loss(data, key, steps, index, -EPS)) / (2 * EPS)
    return grad


def truth(data: dict, lhs: str, t: int, steps: list) -> np.ndarray:
    kind, name = lhs.split(":")
    if kind == "param":
        return gradient(data, name, {t}, data[name].shape)
    if kind == "sum":
        return gradient(data, name, set(range(1, T + 1)), data[name].shape)
    if kind == "node":
        return gradient(data, name, {t}, steps[t - 1][name].shape)
    return gradient(data, name + "_in", {t}, steps[t - 1][name + "_p"].shape)  # back:h, back:c


def namespace(data: dict, steps: list, t: int, node_grads: dict) -> dict | None:
    """The names a transcription may use at step t (see the module docstring)."""
    space = {"np": np, **{k: v for k, v in data.items() if k[0] in "Wb"}}
    for offset, suffix in ((0, ""), (1, "_n"), (-1, "_p")):
        k = t + offset
        if not 1 <= k <= T:
            continue
        for name, value in steps[k - 1].items():
            if offset == 0 or name not in ("x", "h_p", "c_p"):
                space[name + suffix] = value
        for name, grad in node_grads[k].items():
            space["d_" + name + suffix] = grad
    d_c, d_h = space["d_c"], space["d_h"]
    f, i, o, g, c, c_p = (space[k] for k in ("f", "i", "o", "g", "c", "c_p"))
    space.update(dF=d_c * c_p * f * (1 - f), dI=d_c * g * i * (1 - i), dG=d_c * i * (1 - g ** 2),
                 dO=d_h * np.tanh(c) * o * (1 - o))
    return space


def side(text: str, data: dict, steps: list, t: int, node_grads: dict):
    """A transcription's value at step t; None when its names do not exist at t."""
    summed = text.startswith("SUM ")
    expr = text[4:] if summed else text
    spaces = [namespace(data, steps, k, node_grads) for k in (range(1, T + 1) if summed else [t])]
    try:
        values = [eval(expr, {"__builtins__": {}}, space) for space in spaces]  # noqa: S307 - our own transcriptions
    except NameError:
        return None
    except ValueError:  # a matrix product whose shapes do not fit
        return "does not fit"
    return sum(values[1:], values[0])


def error(true: np.ndarray, got) -> float:
    if isinstance(got, str) or np.shape(got) != true.shape:
        return float("inf")
    scale = max(np.max(np.abs(true)), np.max(np.abs(got)), 1e-12)
    return float(np.max(np.abs(true - got)) / scale)


def chain_breaks(line: str) -> bool:
    """Whether the first chain rule of the right side has ∂A/∂B followed by ∂C/∂D with B != C."""
    parts = re.findall(r"\\frac\{\\partial ([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}\{\\partial ([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}",
                       line.split("=", 1)[1])
    return any(below != above for (_, below), (above, _) in zip(parts, parts[1:]))


def prove(verbose: bool = False) -> list[str]:
    """The labels not proven, each with why (empty: all proven)."""
    text = DOCUMENT.read_text(encoding="utf-8").splitlines()
    labels = json.loads(LABELS.read_text(encoding="utf-8"))
    failures = []
    for label in labels:
        hits = [line for line in text if label["match"] in line]
        if len(hits) != 1 or hits[0].count(label["match"]) != 1:
            failures.append("%r occurs %d times in the document" % (label["match"], len(hits)))
    instances = []
    for n, (D, H) in enumerate(SIZES):
        data = instance(D, H, seed=100 + n)
        _, steps = run(data)
        node_grads = {t: {name: gradient(data, name, {t}, steps[t - 1][name].shape) for name in ("f", "i", "o", "g", "c", "h")}
                      for t in range(1, T + 1)}
        instances.append((data, steps, node_grads))
    for label in labels:
        name = "%s (%s)" % (label["match"], label.get("note", label["status"]))
        if label.get("note") == "broken-chain":
            [line] = [line for line in text if label["match"] in line]
            if not chain_breaks(line):
                failures.append("%s: the chain rule connects" % name)
            continue
        if "lhs" not in label:
            continue  # unrecognized: nothing to prove
        claims = [("rhs", "right")] if label["status"] == "correct" else [("wrong", "wrong")]
        if "repair" in label:
            claims.append(("repair", "right"))
        if label["status"] == "correct":  # self-test: the points must tell a slightly wrong side apart
            label = dict(label, mutant="1.1 * (%s)" % label["rhs"])
            claims.append(("mutant", "wrong"))
        for field, want in claims:
            errors = []
            for data, steps, node_grads in instances:
                for t in range(1, T + 1):
                    if any(side(label[other], data, steps, t, node_grads) is None for other, _ in claims):
                        continue
                    got = side(label[field], data, steps, t, node_grads)
                    true = truth(data, label["lhs"], t, steps)
                    if label.get("note") == "wrong-shape" and field == "wrong" and np.shape(got) == true.shape:
                        failures.append("%s: the wrong side has the right shape" % name)
                    errors.append(error(true, got))
            if not errors:
                failures.append("%s: %s is defined at no step" % (name, field))
            elif want == "right" and max(errors) >= RIGHT:
                failures.append("%s: %s is off by %.2g" % (name, field, max(errors)))
            elif want == "wrong" and min(errors) <= WRONG:
                failures.append("%s: %s is right somewhere (error %.2g)" % (name, field, min(errors)))
            if verbose and errors:
                print("%-60s %-7s error %.2g .. %.2g" % (name[:60], field, min(errors), max(errors)))
    return failures


def main(argv: list[str]) -> int:
    failures = prove(verbose="-v" in argv)
    count = len(json.loads(LABELS.read_text(encoding="utf-8")))
    for failure in failures:
        print("not proven: " + failure)
    print("%d labels, %d not proven" % (count, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
