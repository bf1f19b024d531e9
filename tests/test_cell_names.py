"""Names in cell files: the names lstmgen gives (a pre-activation's a^g) always work, whatever the
file calls its quantities and however its `latex` lines write them; a form the documents cannot
print as one symbol, and the reserved T, are refused at their line.

The witnesses are hand-written NumPy forward passes of the cells below and central finite
differences; the documents are read back by the checker.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_gradients, assert_one_line_error, load_module, run_cli

import lstmgen
from lstmgen import cells, render
from lstmgen.errors import CellError

# an LSTM whose candidate g has a custom activation: g = gelu(P) gets its pre-activation named
GELU_LSTM = r"""cell gelu_lstm
input x
state h output
state c
gates i f o g
order torch i f g o
latex g "{form}"
function gelu(z) = z * sigmoid(1.702 * z)
f = sigmoid(W_x^f @ x + W_h^f @ h[t-1] + b^f)
i = sigmoid(W_x^i @ x + W_h^i @ h[t-1] + b^i)
o = sigmoid(W_x^o @ x + W_h^o @ h[t-1] + b^o)
g = gelu(W_x^c @ x + W_h^c @ h[t-1] + b^c)
c = f * c[t-1] + i * g
h = o * tanh(c)
"""
READABLE_FORMS = [r"\tilde{c}", r"\hat{h}", r"g_{in}", r"\gamma", r"\mathbf{q}^{x}"]
UNREADABLE_FORMS = {"g'": "a prime reads as a transpose",
                    r"\mathrm{cand}": r"\mathrm of several letters reads as the name of a function",
                    "cd": "a product of letters",
                    r"\mathrm{c}": r"the checker reads no \mathrm",
                    r"\sigma": "is the sigmoid",
                    r"g_{1,2}": "a comma in a subscript",
                    r"\mathbf{c}": r"g (\mathbf{c}) and c (c) read as one symbol"}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def gelu(z):
    return z * sigmoid(1.702 * z)


def write(tmp_path, text, name="my.cell"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def module_of(tmp_path, path, layout):
    out = tmp_path / ("module_%s.py" % layout.replace("-", "_"))
    out.write_text(render.render_module(str(path), layout), encoding="utf-8")
    return load_module(out, "lstmgen_names_%s_%s" % (tmp_path.name, layout.replace("-", "_")))


@pytest.mark.parametrize("form", READABLE_FORMS)
def test_a_custom_activation_under_a_latex_line_documents_and_checks(tmp_path, form):
    path = write(tmp_path, GELU_LSTM.replace("{form}", form))
    document = lstmgen.document(str(path), "md")
    assert ("a^{g}_t" in document or "a^{%s}_t" % form in document) and "a_^g" not in document
    assert "{%s}_t" % form in document or "%s_t" % form in document
    report = lstmgen.check(document, cell=str(path))
    assert report.summary["incorrect"] == 0 and report.summary["unrecognized"] == 0, report.summary
    assert report.summary["correct"] > 20


@pytest.mark.parametrize("form", READABLE_FORMS[:2])
def test_a_custom_activation_under_a_latex_line_generates_every_layout(tmp_path, form):
    path = write(tmp_path, GELU_LSTM.replace("{form}", form))
    N, D, H = 3, 4, 5
    rng = np.random.RandomState(0)
    x, h, c = rng.randn(N, D), rng.randn(N, H), rng.randn(N, H)
    weight_ih, weight_hh = rng.randn(4 * H, D) * 0.5, rng.randn(4 * H, H) * 0.5
    bias_ih, bias_hh = rng.randn(4 * H) * 0.5, rng.randn(4 * H) * 0.5
    a = x @ weight_ih.T + h @ weight_hh.T + bias_ih + bias_hh  # PyTorch's blocks: i, f, g, o
    i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), gelu(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    c_next = f * c + i * g
    h_next = o * np.tanh(c_next)

    torch_layout = module_of(tmp_path, path, "torch")
    args = (x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    got_h, got_c, _ = torch_layout.gelu_lstm_step_forward(*args)
    np.testing.assert_allclose(got_h, h_next, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_c, c_next, rtol=1e-12, atol=1e-12)
    assert_gradients(torch_layout.gelu_lstm_step_forward, torch_layout.gelu_lstm_step_backward, list(args), rng)

    blocks = {gate: slice(k * H, (k + 1) * H) for k, gate in enumerate("ifgo")}
    bias = bias_ih + bias_hh
    cs231n = module_of(tmp_path, path, "cs231n")  # gates i f o g, weights (in, 4H)
    order = [blocks[gate] for gate in "ifog"]
    got_h, got_c, _ = cs231n.gelu_lstm_step_forward(
        x, h, c, np.concatenate([weight_ih[s].T for s in order], axis=1),
        np.concatenate([weight_hh[s].T for s in order], axis=1), np.concatenate([bias[s] for s in order]))
    np.testing.assert_allclose(got_h, h_next, rtol=1e-12, atol=1e-12)
    per_gate = module_of(tmp_path, path, "per-gate")
    names = {"W_x_%s": weight_ih, "W_h_%s": weight_hh}
    kwargs = {pattern % (gate if gate != "g" else "c"): matrix[blocks[gate]].T
              for pattern, matrix in names.items() for gate in "ifog"}
    kwargs.update({"b_%s" % (gate if gate != "g" else "c"): bias[blocks[gate]] for gate in "ifog"})
    got_h, _, _ = per_gate.gelu_lstm_step_forward(x=x, prev_h=h, prev_c=c, **kwargs)
    np.testing.assert_allclose(got_h, h_next, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", sorted(UNREADABLE_FORMS))
def test_a_latex_form_that_is_not_one_symbol_is_refused_at_its_line(tmp_path, form):
    path = write(tmp_path, GELU_LSTM.replace("{form}", form))
    for command in ("derive", "codegen"):
        proc = run_cli(command, "--cell", path)
        assert_one_line_error(proc, "my.cell:7:9: ")
        assert UNREADABLE_FORMS[form] in proc.stderr and "a^g" not in proc.stderr and "a_^g" not in proc.stderr


@pytest.mark.parametrize("accent", cells.READABLE_ACCENTS)
def test_every_accent_the_parser_takes_reads_back(tmp_path, accent):
    """What a `latex` line may write, `lstmgen check --cell` reads back: each accent and font..."""
    lstm = (cells.CELL_DIR / "lstm.cell").read_text(encoding="utf-8")
    path = write(tmp_path, lstm.replace(r'latex g "\tilde{c}"', r'latex g "\%s{q}"' % accent))
    report = lstmgen.check(lstmgen.document(str(path), "md"), cell=str(path))
    assert report.summary["incorrect"] == 0 and report.summary["unrecognized"] == 0, report.summary


def test_every_greek_letter_the_parser_takes_reads_back(tmp_path):
    """... and each Greek letter it does not refuse."""
    lstm = (cells.CELL_DIR / "lstm.cell").read_text(encoding="utf-8")
    for k, letter in enumerate(name for name in cells._GREEK.split() if name not in cells.UNREADABLE_SYMBOLS):
        path = write(tmp_path, lstm.replace(r'latex g "\tilde{c}"', r'latex g "\%s"' % letter), "greek%d.cell" % k)
        report = lstmgen.check(lstmgen.document(str(path), "md"), cell=str(path))
        assert report.summary["incorrect"] == 0 and report.summary["unrecognized"] == 0, (letter, report.summary)


CLASHING = """cell clash
input x
state h output
function gelu(z) = z * sigmoid(1.702 * z)
a^g = sigmoid(W_x^a @ x + W_h^a @ h[t-1] + a_g2)
g = gelu(W_x @ x + W_h @ h[t-1] + b)
h = g * h[t-1] + a^g
"""


def test_a_generated_name_never_takes_a_name_of_the_file(tmp_path):
    """The file has its own a^g, and a bias a_g2 (a^g2 in Python): the pre-activation of g is named
    a^g3, and the file's a^g keeps its equation."""
    path = write(tmp_path, CLASHING)
    cell = cells.load(str(path))
    assert "sigmoid" in str(cell.equation("a^g").rhs)
    named = [eq.target for eq in cell.equations if eq.target not in ("a^g", "g", "h")]
    assert named == ["a^g3"]
    per_gate = module_of(tmp_path, path, "per-gate")
    N, D, H = 2, 3, 4
    rng = np.random.RandomState(1)
    p = {"W_x_a": rng.randn(D, H), "W_h_a": rng.randn(H, H), "a_g2": rng.randn(H),
         "W_x": rng.randn(D, H), "W_h": rng.randn(H, H), "b": rng.randn(H)}
    x, h = rng.randn(N, D), rng.randn(N, H)
    mine = sigmoid(x @ p["W_x_a"] + h @ p["W_h_a"] + p["a_g2"])
    g = gelu(x @ p["W_x"] + h @ p["W_h"] + p["b"])
    got, _ = per_gate.clash_step_forward(x=x, prev_h=h, **p)
    np.testing.assert_allclose(got, g * h + mine, rtol=1e-12, atol=1e-12)
    report = lstmgen.check(lstmgen.document(str(path), "md"), cell=str(path))
    assert report.summary["incorrect"] == 0 and report.summary["unrecognized"] == 0, report.summary


TINY = "input x\nstate h output\n{line}h = tanh(W @ x + U @ h[t-1]{extra})\n"
T_PLACES = {  # where T is written -> (the file, line:column of the T)
    "input": (TINY.format(line="", extra="").replace("x", "T"), "1:7"),
    "state": ("input x\nstate T output\nT = tanh(W @ x + U @ T[t-1])\n", "2:7"),
    "target": (TINY.format(line="T = tanh(V @ x)\n", extra=" + T"), "3:1"),
    "bias": (TINY.format(line="", extra=" + T"), "3:31"),
    "matrix": ("input x\nstate h output\nh = tanh(T @ x + U @ h[t-1])\n", "3:10"),
}


@pytest.mark.parametrize("place", sorted(T_PLACES))
def test_T_is_refused_at_its_line(tmp_path, place):
    text, where = T_PLACES[place]
    with pytest.raises(CellError, match=r"^<cell>:%s: T is reserved \(the sequence length" % where):
        cells.parse(text)


@pytest.mark.parametrize("command", ["derive", "codegen", "check", "build"])
def test_every_command_refuses_T(tmp_path, command):
    path = write(tmp_path, T_PLACES["bias"][0])
    extra = {"check": ["docs/examples/seed.md"], "build": ["--out", tmp_path / "out"]}.get(command, [])
    assert_one_line_error(run_cli(command, "--cell", path, *extra), "my.cell:3:31: T is reserved")
    assert not (tmp_path / "out").exists()
