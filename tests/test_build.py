"""`lstmgen build` is deterministic and the checked-in generated/ is what it produces."""
import difflib
from pathlib import Path

import pytest

from lstmgen import render

GENERATED = Path(__file__).resolve().parent.parent / "generated"


@pytest.fixture(scope="module")
def fresh():
    return render.artifacts()


def test_build_writes_every_artifact(tmp_path):
    written = render.build(tmp_path)
    names = {path.name for path in written}
    for cell in render.BUILD_CELLS:
        assert {cell + "_numpy.py", cell + "_derivation.tex", cell + "_derivation.md"} <= names


def test_two_builds_are_identical(fresh):
    render.environment.cache_clear()
    assert render.artifacts() == fresh


def test_generated_folder_is_up_to_date(fresh):
    """Text files byte for byte; a PDF is compared through its .tex (its bytes depend on the TeX version)."""
    stale = []
    for name, text in sorted(fresh.items()):
        if name.endswith(".pdf"):
            assert name.removesuffix(".pdf") + ".tex" in fresh and (GENERATED / name).exists(), name
            continue
        path = GENERATED / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            diff = "".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                "generated/" + name, "fresh build", n=1))
            stale.append(diff[:2000] or "generated/%s is missing" % name)
    assert not stale, "generated/ is stale; refresh it with `lstmgen build`\n" + "\n".join(stale)


def test_generated_folder_has_nothing_a_build_does_not_write(fresh):
    pdfs = {"%s_derivation.pdf" % cell for cell in render.PDF_CELLS}  # written only where TeX is present
    extra = sorted(p.name for p in GENERATED.iterdir() if p.is_file() and p.name not in set(fresh) | pdfs)
    assert not extra, "generated/ holds files that `lstmgen build` no longer writes: %s" % extra
