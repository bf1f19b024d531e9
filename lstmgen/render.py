"""Rendering: finished strings from the printers go through the Jinja templates in templates/."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from . import cells, reverse
from .errors import LstmgenError, OutputError

FORMATS = ("tex", "md")
HADAMARD = ("*", "odot")
LAYOUTS = ("cs231n", "torch", "per-gate")
TARGETS = ("numpy", "numba")
BUILD_CELLS = tuple(cells.builtin_names())  # every built-in cell: documents and cs231n module


def template_dir() -> Path:
    """templates/ of the source tree, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise LstmgenError("the templates/ folder of lstmgen is missing from this installation")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_document(cell: str, fmt: str = "tex", hadamard: str = "*") -> str:
    """The derivation document of `cell` (a name or .cell path) as LaTeX or Markdown."""
    if fmt not in FORMATS:
        raise LstmgenError("unknown format %r: use one of %s" % (fmt, ", ".join(FORMATS)))
    if hadamard not in HADAMARD:
        raise LstmgenError("unknown --hadamard %r: use one of %s" % (hadamard, ", ".join(HADAMARD)))
    derivation = reverse.derive(cell)
    from .document import document_context

    context = document_context(derivation, fmt=fmt, hadamard=hadamard)
    return environment().get_template("derivation.%s.j2" % fmt).render(**context)


def render_module(cell: str, layout: str = "cs231n", target: str = "numpy") -> str:
    """The forward/backward module of `cell` in `layout`, for `target` (numpy, or numba: the same module
    with each step's elementwise work fused into compiled loops)."""
    if layout not in LAYOUTS:
        raise LstmgenError("unknown layout %r: use one of %s" % (layout, ", ".join(LAYOUTS)))
    if target not in TARGETS:
        raise LstmgenError("unknown target %r: use one of %s" % (target, ", ".join(TARGETS)))
    derivation = reverse.derive(cell)
    from .codegen import module_context

    context = module_context(derivation, layout=layout, target=target)
    return environment().get_template(context["template"]).render(**context)


def artifacts(cell_names=BUILD_CELLS) -> dict[str, str]:
    """File name -> content of everything `lstmgen build` writes for `cell_names` (built-in
    names or .cell paths): each cell's documents and its cs231n modules for every target, and its
    PyTorch-layout modules when its cell file gives a torch gate order."""
    out, sources = {}, {}
    for name in dict.fromkeys(cell_names):  # the same cell given twice is built once
        cell = cells.load(name)
        key = cell.name.lower()  # file names and the modules' function names; lstm and LSTM clash on some disks
        if key in sources:
            raise LstmgenError("two cells named %s in one build (%s and %s): their files would overwrite each "
                               "other; give one a `cell` line with another name" % (cell.name, sources[key], name))
        sources[key] = name
        for target in TARGETS:
            out["%s_%s.py" % (cell.name, target)] = render_module(name, "cs231n", target)
            if "torch" in cell.layout_orders:
                out["%s_torch_%s.py" % (cell.name, target)] = render_module(name, "torch", target)
        for fmt in FORMATS:
            out["%s_derivation.%s" % (cell.name, fmt)] = render_document(name, fmt)
    return out


def write(path: Path, text: str) -> None:
    """Write `text` to `path` (UTF-8, \\n line ends); OutputError when that is impossible."""
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise OutputError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def build(out_dir: Path, cell_names=BUILD_CELLS) -> list[Path]:
    """Render everything first, then write: a failing cell leaves `out_dir` untouched."""
    written = []
    for name, text in artifacts(cell_names).items():
        target = out_dir / name
        write(target, text)
        written.append(target)
    return written
