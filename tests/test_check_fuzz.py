"""Property test: mutated and random LaTeX gives only the documented outcomes.

A document either raises DocumentError (unusable input) or yields a report whose every entry
has a valid status and line; the judge never falls into its last-resort handler (which would
mean an unexpected exception while reading an equation)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmgen.checker import check_text
from lstmgen.checker.judge import judge
from lstmgen.errors import DocumentError

STATUSES = {"correct", "incorrect", "unrecognized"}
LAST_RESORT = "could not judge this equation"

SEEDS = [
    r"\frac{\partial L}{\partial W_x^f} = \sum_{t=1}^T \left\{ \frac{\partial L}{\partial c_t} * c_{t-1} * "
    r"[f_t * (1-f_t)] \right\} x_t^T",
    r"\frac{\partial L}{\partial x_t} = \frac{\partial L}{\partial c_t} \cdot \frac{\partial c_t}{\partial f_t} "
    r"\cdot \frac{\partial f_t}{\partial x_t} + (W_x^o)^T \left\{ \frac{\partial L}{\partial h_t} * \tanh(C_t) * "
    r"[o_t * (1-o_t)] \right\}",
    r"\frac{\partial \sigma(\theta)}{\partial \theta} = \sigma(\theta) \cdot [1 - \sigma(\theta)]",
    r"\frac{\partial \tanh \theta}{\partial \theta} = 1 - \tanh^2 \theta",
    r"\frac{\partial f_t}{\partial x_t} = (W_x^f)^T [f_t * (1 - f_t)]",
    r"c_t = f_t \odot c_{t-1} + i_t \odot \tilde{c}_t",
    r"\frac{dL}{dh_{t-1}} = \left( \Big[\frac{\partial L}{\partial c_t} \circ i_t\Big]^\top W_h^c \right)^T",
]
TOKENS = [r"\frac", r"\partial", "L", "x_t", "h_{t-1}", "c_t", r"\tilde{c}_t", "W_x^f", "W^f_h", "b^o", "{", "}",
          "(", ")", "[", "]", r"\{", r"\}", r"\left", r"\right", r"\big", "*", r"\odot", r"\cdot", r"\circ", "^T",
          r"^\top", "^2", "_t", "_{t+1}", "=", "+", "-", "1", "0.5", r"\sigma", r"\tanh", r"\sum_{t=1}^T", r"\theta",
          r"\ell_t", r"\text{so}", r"\,", r"\quad", "&", r"\\", r"\mathbf{h}", r"\boldsymbol{x}", "/", "C_t",
          r"\alpha", "$", "%", "#", "~", "'", r"\begin{aligned}", r"\end{aligned}", "\n", "é", "∂"]

tokens = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        action = draw(st.sampled_from(["delete", "insert", "duplicate", "char"]))
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif action == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + draw(st.characters(blacklist_categories=("Cs",))) + text[i:]
    return text


def _assert_documented(verdict):
    if verdict is None:
        return
    assert verdict.status in STATUSES
    assert isinstance(verdict.message, str) and isinstance(verdict.expected, str)
    assert LAST_RESORT not in verdict.message, verdict.message


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated())
def test_mutated_equations(text):
    _assert_documented(judge(text, "lstm"))


@FUZZ
@given(tokens)
def test_random_token_equations(text):
    _assert_documented(judge(text, "lstm"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(), tokens, st.text(max_size=30)), max_size=5),
       st.sampled_from(["$$%s$$", "\\[%s\\]", "\\begin{align}%s\\end{align}", "$%s$", "%s", "$$%s"]))
def test_random_documents(pieces, wrapper):
    text = "\n\n".join(wrapper % p for p in pieces)
    try:
        report = check_text(text, cell="lstm", source="fuzz.md")
    except DocumentError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1  # a lone CR ends a line too
    for entry in report.equations:
        assert entry.status in STATUSES
        assert 1 <= entry.line <= lines
        assert LAST_RESORT not in entry.message, entry.message
    summary = report.summary
    assert sum(summary[status] for status in STATUSES) == len(report.equations)
    scored = [e for e in report.equations if e.kind != "forward" and e.status != "unrecognized"]
    assert summary["possible"] == len(scored)
    assert summary["score"] == sum(e.status == "correct" for e in scored)
