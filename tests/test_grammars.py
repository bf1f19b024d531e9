"""grammars/latex.lark (the notation lstmgen prints) and grammars/authors.lark (its extension with
what other authors write): the dialect is an extension, and lstmgen's own documents need only
the base grammar."""
from pathlib import Path

import lark
import pytest

from lstmgen.checker import extract
from lstmgen.checker.parse import parser

GRAMMARS = Path(__file__).resolve().parent.parent / "lstmgen" / "grammars"
GENERATED = Path(__file__).resolve().parent.parent / "generated"


@pytest.fixture(scope="module")
def base():
    return lark.Lark.open(str(GRAMMARS / "latex.lark"), parser="lalr", maybe_placeholders=False)


@pytest.mark.parametrize("document", sorted(GENERATED.glob("*_derivation.md")), ids=lambda p: p.name)
def test_our_own_documents_need_only_the_base_grammar(base, document):
    found, _ = extract.equations(document.read_text(encoding="utf-8"))
    assert found
    for eq in found:
        base.parse(eq.text)


@pytest.mark.parametrize("text", [
    r"\delta_o^{(t)} := \frac{\partial L}{\partial o_t}",
    r"x = [h_{t-1}, x_t]^T",
    r"\sigma'(z) = \sigma(z)(1 - \sigma(z))",
    r"\boxed{a} = \underbrace{b}_{\text{forget}}",
    r"\frac{\partial}{\partial z} \tanh(z) = 1",
    r"W' x = \delta_{\tilde{c}}^{\langle t \rangle}",
])
def test_what_other_authors_write_is_the_dialects(base, text):
    with pytest.raises(lark.exceptions.LarkError):
        base.parse(text)
    parser().parse(text)
