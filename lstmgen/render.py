"""Rendering: finished strings from the printers go through the Jinja templates in templates/."""
from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

import jinja2

from . import cells, reverse
from .errors import LstmgenError, OutputError, UsageError
from .printing.latex import DEFAULT_STYLE, HADAMARD, NAMES, TRANSPOSE, VECTORS, Style  # noqa: F401 (the CLI's choices)

FORMATS = ("tex", "md", "html", "pdf")
TEXT_FORMATS = ("tex", "md", "html")
PDF_CELLS = ("lstm",)  # generated/ carries the PDF of these (lstmgen build, where pdflatex is installed)
TEX_SECONDS = 60  # pdflatex's time limit for one document
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


def format_of(path: str | None, fmt: str | None) -> str:
    """The document format: `fmt` if given, else the output file's suffix, else tex."""
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lstrip(".").lower() if path else ""
    if path and suffix not in FORMATS:
        raise UsageError("cannot tell the format of %s from its suffix: use --format %s" % (path, "|".join(FORMATS)))
    return suffix or "tex"


def pdf_document(cell: str, style: Style = DEFAULT_STYLE) -> bytes:
    """The LaTeX document compiled by pdflatex (no shell escape, halting at the first error); a TeX
    error is an LstmgenError quoting TeX's message and the offending source line."""
    import subprocess
    import tempfile

    exe = shutil.which("pdflatex")
    if exe is None:
        raise LstmgenError("--format pdf needs pdflatex (TeX Live; Debian: apt-get install texlive-latex-base "
                           "texlive-latex-recommended)")
    source = render_document(cell, "tex", style)
    with tempfile.TemporaryDirectory(prefix="lstmgen-tex-") as folder:
        tex = Path(folder) / "derivation.tex"
        tex.write_text(source, encoding="utf-8")
        try:
            # a fixed date in the PDF, so that the same document gives the same bytes
            env = dict(os.environ, SOURCE_DATE_EPOCH="0", FORCE_SOURCE_DATE="1")
            proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                                   tex.name], cwd=folder, env=env, capture_output=True, timeout=TEX_SECONDS,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise LstmgenError("pdflatex did not finish in %d s" % TEX_SECONDS) from None
        pdf = Path(folder) / "derivation.pdf"
        if proc.returncode != 0 or not pdf.exists():
            log = (Path(folder) / "derivation.log").read_text(encoding="utf-8", errors="replace") \
                if (Path(folder) / "derivation.log").exists() else proc.stdout.decode(errors="replace")
            raise LstmgenError(_tex_error(log, source))
        return pdf.read_bytes()


def _tex_error(log: str, source: str) -> str:
    """TeX's first error message and the source line it names, on one line.  TeX reads a display
    environment (align*) whole and names its \\end line; the offending formula is then the row of
    the block that holds the last token TeX read (the context line after the message)."""
    import re

    log_lines = log.splitlines()
    first = next((k for k, line in enumerate(log_lines) if line.startswith("! ")), None)
    if first is None:
        return "pdflatex failed: unknown error"
    message = log_lines[first][2:].strip()
    where = re.search(r"^l\.(\d+)", "\n".join(log_lines[first:]), re.M)
    if not where:
        return "pdflatex failed: %s" % message
    number = int(where.group(1))
    lines = source.splitlines()
    if 0 < number <= len(lines) and lines[number - 1].strip().startswith("\\end{"):
        context = log_lines[first + 1].split("> ", 1)[-1].split() if first + 1 < len(log_lines) else []
        start = next((k for k in range(number - 1, 0, -1) if lines[k - 1].strip().startswith("\\begin{")), number)
        row = next((k for k in range(start, number) if context and context[-1] in lines[k - 1]), None)
        number = row or number
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return "pdflatex failed at line %d of the document: %s, in: %s" % (number, message, text[:200])


def style_of(hadamard: str = "*", transpose: str = "T", names: str = "cell", vectors: str = "column",
             compact: bool = False) -> Style:
    """The notation options as a Style; an unknown value is an LstmgenError naming the option."""
    try:
        return Style(hadamard, transpose, names, vectors, bool(compact))
    except ValueError as exc:
        raise LstmgenError("unknown %s" % exc) from None


def render_document(cell: str, fmt: str = "tex", style: Style = DEFAULT_STYLE) -> str:
    """The derivation document of `cell` (a name or .cell path) as LaTeX, Markdown or HTML text
    (`pdf_document` compiles the LaTeX), in the notation `style` asks for."""
    if fmt == "pdf":
        raise LstmgenError("a PDF is not text: pdf_document compiles the LaTeX")
    if fmt not in FORMATS:
        raise LstmgenError("unknown format %r: use one of %s" % (fmt, ", ".join(FORMATS)))
    derivation = reverse.derive(cell)
    from .documenter import document_context

    if fmt == "html":
        markdown = render_document(cell, "md", style)
        return _html_page(markdown, "Backward pass of the %s cell" % derivation.cell.title,
                          _command(cell, fmt, style))
    context = document_context(derivation, fmt=fmt, style=style)
    context["command"] = _command(cell, fmt, style)
    return environment().get_template("derivation.%s.j2" % fmt).render(**context)


# (option, the Style field, its default): the derive options a provenance line repeats
_OPTIONS = (("--hadamard", "hadamard", "*"), ("--transpose", "transpose", "T"), ("--names", "names", "cell"),
            ("--vectors", "vectors", "column"))


def _command(cell: str, fmt: str, style: Style = DEFAULT_STYLE) -> str:
    """The command that regenerates a document, for its provenance line: the cell as it was given
    (a built-in name, or the cell file's path as the caller wrote it) and the options that differ
    from their defaults."""
    cell_arg = cell if not isinstance(cell, cells.Cell) else cell.name
    quoted = cell_arg if all(ch.isalnum() or ch in "._-/" for ch in cell_arg) else "'%s'" % cell_arg.replace("'", "")
    options = "".join(" %s %s" % (flag, getattr(style, field)) for flag, field, default in _OPTIONS
                      if getattr(style, field) != default)
    options += " --compact" if style.compact else ""
    return "lstmgen derive --cell %s --format %s%s" % (quoted, fmt, options)


def _html_page(markdown: str, title: str, command: str) -> str:
    """The Markdown document as a self-contained HTML page, its $$ formulas as MathML."""
    import html

    from latex2mathml.converter import convert
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    def mathml(latex: str, options: dict) -> str:
        return convert(latex, display="block" if options.get("display_mode") else "inline")

    text = markdown.split("-->", 1)[1] if markdown.startswith("<!--") else markdown  # our provenance comment
    parser = MarkdownIt("commonmark", {"html": False}).use(dollarmath_plugin, renderer=mathml)
    return environment().get_template("derivation.html.j2").render(
        body=parser.render(text).rstrip("\n"), title=html.escape(title), command=command)


def render_module(cell: str, layout: str = "cs231n", target: str = "numpy") -> str:
    """The forward/backward module of `cell` in `layout`, for `target` (numpy, or numba: the same module
    with each step's elementwise work fused into compiled loops)."""
    from .generator.format import formatted

    return formatted(_module_source(cell, layout, target))


def _module_source(cell: str, layout: str, target: str) -> str:
    """render_module's text before ruff format lays it out."""
    if layout not in LAYOUTS:
        raise LstmgenError("unknown layout %r: use one of %s" % (layout, ", ".join(LAYOUTS)))
    if target not in TARGETS:
        raise LstmgenError("unknown target %r: use one of %s" % (target, ", ".join(TARGETS)))
    derivation = reverse.derive(cell)
    from .generator import module_context

    context = module_context(derivation, layout=layout, target=target)
    return environment().get_template(context["template"]).render(**context)


def artifacts(cell_names=BUILD_CELLS) -> dict[str, str]:
    """File name -> content of everything `lstmgen build` writes for `cell_names` (built-in
    names or .cell paths): each cell's documents and its cs231n modules for every target, and its
    PyTorch-layout modules when its cell file gives a torch gate order."""
    from .generator.format import formatted_all

    out, sources, modules = {}, {}, {}
    for name in dict.fromkeys(cell_names):  # the same cell given twice is built once
        cell = cells.load(name)
        key = cell.name.lower()  # file names and the modules' function names; lstm and LSTM clash on some disks
        if key in sources:
            raise LstmgenError("two cells named %s in one build (%s and %s): their files would overwrite each "
                               "other; give one a `cell` line with another name" % (cell.name, sources[key], name))
        sources[key] = name
        for target in TARGETS:  # (laid out by ruff below, all in one process)
            modules["%s_%s.py" % (cell.name, target)] = _module_source(name, "cs231n", target)
            if "torch" in cell.layout_orders:
                modules["%s_torch_%s.py" % (cell.name, target)] = _module_source(name, "torch", target)
        for fmt in TEXT_FORMATS:
            out["%s_derivation.%s" % (cell.name, fmt)] = render_document(name, fmt)
        if cell.name in PDF_CELLS and shutil.which("pdflatex"):  # the PDF where TeX is present
            out["%s_derivation.pdf" % cell.name] = pdf_document(name)
    out.update(zip(modules, formatted_all(list(modules.values()))))
    return out


def write(path: Path, content: str | bytes) -> None:
    """Write text (UTF-8, \\n line ends) or bytes to `path`, whose folder must exist; OutputError
    when that is impossible."""
    folder = path.parent
    if str(folder) not in ("", ".") and not folder.is_dir():
        raise OutputError("cannot write %s: the folder %s does not exist" % (path, folder))
    try:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise OutputError("cannot write %s: %s" % (path, exc.strerror or exc)) from None


def build(out_dir: Path, cell_names=BUILD_CELLS) -> list[Path]:
    """Render everything first, then write: a failing cell leaves `out_dir` untouched."""
    rendered = artifacts(cell_names)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot create %s: %s" % (out_dir, exc.strerror or exc)) from None
    written = []
    for name, text in rendered.items():
        target = out_dir / name
        write(target, text)
        written.append(target)
    return written
