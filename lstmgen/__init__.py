"""lstmgen: derive, document, generate and check the backward pass of recurrent cells."""

__version__ = "0.1.0"


def check(text, cell=None, source="<text>"):
    """Check a handwritten derivation; see `lstmgen.checker.check_text`."""
    from .checker import check_text

    return check_text(text, cell=cell, source=source)
