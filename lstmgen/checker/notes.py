"""Answer notes: the stable, machine-readable codes that name what is wrong with an equation.

A note is what `diagnose` found (or the one reason an equation went unjudged), kept apart from the
prose of the message so that a gradebook or a class summary can count mistakes.  The codes are
part of the report's JSON schema (`lstmgen/schemas/check-report.schema.json`, an enum) and of the
README's table; tests hold all three to this table.
"""
from __future__ import annotations

from dataclasses import dataclass

# code -> what it means; the order is the README's.
MEANINGS = {
    "sign": "a term, or the whole side, has the opposite sign",
    "missing-transpose": "a symbol lacks a transpose (x_t where x_t^T is needed)",
    "extra-transpose": "a symbol carries a transpose it should not",
    "wrong-order": "the factors of a matrix product are in the wrong order",
    "wrong-layout": "the other layout's formula: the transpose of the gradient (δ x^T in a row-vector document)",
    "wrong-shape": "the side has the wrong shape, or its shapes do not fit, and no single repair explains it",
    "wrong-time-index": "a quantity at the wrong step (h_t where h_{t-1} is needed, ∂L/∂c_t for ∂L/∂c_{t+1})",
    "wrong-upstream": "the gradient of the wrong state flows in (∂L/∂c_t where ∂L/∂h_t is needed), "
                      "or the chain rule goes through the wrong state",
    "wrong-gate": "another gate's or state's value (f_t where i_t is needed), or another gate's bracket repeated",
    "wrong-weight": "another weight matrix or bias (W_x where W_h is needed)",
    "missing-sigma-derivative": "the σ' factor q(1-q) of a sigmoid gate q is missing",
    "wrong-sigma-derivative": "σ' written wrongly: q or 1-q instead of q(1-q)",
    "missing-tanh-derivative": "the tanh' factor 1-q² (or 1-tanh²(c)) is missing",
    "wrong-tanh-derivative": "tanh' written wrongly: 1-q, q or q² instead of 1-q²",
    "missing-factor": "another factor of a term is missing",
    "extra-factor": "a term has a factor that does not belong in it",
    "dropped-term": "a term of the gradient is missing",
    "extra-term": "a term that is not part of the gradient",
    "missing-sum": "one step's gradient where the sum over t is meant",
    "extra-sum": "a sum over t where one step's gradient is meant",
    "broken-chain": "a chain-rule product whose factors do not connect (∂L/∂h_t · ∂c_t/∂f_t)",
    "unknown": "incorrect, but no single repair the checker tries explains the difference",
    "unrecognized": "not judged: the checker could not read the equation or gave up on it (not scored)",
}
CODES = tuple(MEANINGS)


@dataclass(frozen=True)
class Note:
    """One answer note: its code, the diagnosis in words, and the link (1 for the first '=') it is about."""

    code: str
    text: str
    link: int = 1

    def __post_init__(self):
        if self.code not in MEANINGS:
            raise ValueError("unknown answer note %r" % self.code)

    def to_dict(self) -> dict:
        return {"code": self.code, "link": self.link, "text": self.text}
