"""The long run of the document fuzzer (issue 9): 10,000 mutated and random documents.

Marked slow (LSTMGEN_SLOW=1, which CI sets): every document gives a report of documented
outcomes or a one-line DocumentError, never the judge's last resort (an unexpected exception),
and none takes longer than the document limit plus a second.  The documents come from a seeded
generator, so a failure names a document that can be made again.
"""
from __future__ import annotations

import random
import time

import pytest
from test_check_fuzz import LAST_RESORT, SEEDS, STATUSES, TOKENS

from lstmgen.checker import bounds, check_text
from lstmgen.errors import DocumentError

DOCUMENTS = 10_000
WRAPPERS = ["$$%s$$", "\\[%s\\]", "\\begin{align}%s\\end{align}", "$%s$", "%s", "$$%s", "```math\n%s\n```"]


def _mutated(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        j = rng.randint(i, min(len(text), i + 12))
        action = rng.choice(("delete", "insert", "duplicate", "char"))
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif action == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i] + chr(rng.choice([rng.randint(32, 126), rng.randint(160, 0xD7FF)])) + text[i:]
    return text


def document(seed: int) -> str:
    """Document number `seed`: one to four pieces (mutated seed equations, random tokens, or random
    characters), each in a random math wrapper."""
    rng = random.Random(seed)
    pieces = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.6:
            piece = _mutated(rng, rng.choice(SEEDS))
        elif kind < 0.85:
            piece = " ".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 40)))
        else:
            piece = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 30)))
        pieces.append(rng.choice(WRAPPERS) % piece)
    return "\n\n".join(pieces)


@pytest.mark.slow
def test_ten_thousand_documents_give_documented_outcomes_in_time():
    slowest, refused, judged = 0.0, 0, 0
    for seed in range(DOCUMENTS):
        text = document(seed)
        started = time.monotonic()
        try:
            report = check_text(text, cell="lstm", source="fuzz-%d.md" % seed)
        except DocumentError as exc:
            assert str(exc) and "\n" not in str(exc), seed
            refused += 1
            continue
        finally:
            slowest = max(slowest, time.monotonic() - started)
        for entry in report.equations:
            assert entry.status in STATUSES, seed
            assert LAST_RESORT not in entry.message, (seed, entry.message)
        judged += len(report.equations)
        assert slowest <= bounds.SECONDS_PER_DOCUMENT + 1, (seed, slowest)
    print("\n%d documents: %d refused, %d equations judged, slowest %.2f s" % (DOCUMENTS, refused, judged, slowest))
    assert judged > DOCUMENTS  # the generator reaches the judge, not only the refusals
