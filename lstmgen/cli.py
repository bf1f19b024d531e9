"""The command line: build, derive, codegen, check, merge, summary.  Exit codes: 0 fine, 1 a check
found wrong equations, 2 unusable input or usage (one line on stderr, never a traceback), 130
interrupted (Ctrl-C; a check writes the documents it finished).

Output never tracebacks: characters standard output cannot encode are written as backslash
escapes (an ASCII or Latin-1 terminal; a file name that is not UTF-8); a failed write (a full
disk, ``> /dev/full``) is one line on stderr and exit code 2.  A closed pipe (``| head``) ends
the command quietly, with exit code 141 (128 + SIGPIPE), as it ends cat or grep.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, render
from .errors import LstmgenError, OutputError, UsageError

PIPE_CLOSED = 141  # the exit code of a Unix tool that SIGPIPE ended
INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError("%s (see %s --help)" % (message, self.prog))  # main() adds "lstmgen: error:"


EXIT_CODES = (  # the README's table says the same
    (0, "done; for check and merge: every equation correct (summary reports: 0)"),
    (1, "check and merge: some equation incorrect or unrecognized"),
    (2, "unusable input or usage: one line on stderr naming the problem and the place"),
    (INTERRUPTED, "interrupted (Ctrl-C); check writes the documents it finished"),
    (PIPE_CLOSED, "standard output was closed (| head): ended quietly"),
)


def _cell_help(default: str) -> str:
    return "built-in cell (%s) or .cell file (default: %s)" % (", ".join(render.BUILD_CELLS), default)


def _parser() -> argparse.ArgumentParser:
    epilog = "built-in cells: %s\n\nexit codes:\n%s" % (
        ", ".join(render.BUILD_CELLS), "\n".join("  %-4d %s" % row for row in EXIT_CODES))
    parser = _Parser(prog="lstmgen", description="Derive, document, generate and check the backward "
                     "pass of recurrent cells.", epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="lstmgen " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    build = sub.add_parser("build", help="regenerate every document and NumPy module",
                           description="Regenerate the derivation documents and NumPy modules of the "
                                       "built-in cells (or of the cells given with --cell) into DIR (default generated/).")
    build.add_argument("--out", default="generated", metavar="DIR", help="output folder (default: generated)")
    build.add_argument("--cell", action="append", metavar="CELL",
                       help="build only this cell: a built-in one (%s) or a .cell file; may be repeated "
                            "(default: every built-in cell)" % ", ".join(render.BUILD_CELLS))

    derive = sub.add_parser("derive", help="write the derivation document of a cell",
                            description="Derive a cell's backward pass and write it as LaTeX or Markdown.")
    derive.add_argument("--cell", default="lstm", help=_cell_help("lstm"))
    derive.add_argument("--format", default=None, choices=render.FORMATS,
                        help="tex (standalone LaTeX), md (Markdown), html (one page, MathML) or pdf (LaTeX "
                             "compiled by pdflatex); default: from the -o file's suffix, else tex")
    derive.add_argument("--hadamard", default="*", choices=render.HADAMARD, help="symbol of the elementwise product (default: *)")
    derive.add_argument("--transpose", default="T", choices=render.TRANSPOSE, help="x^T (default) or x^\\top")
    derive.add_argument("--names", default="cell", choices=render.NAMES,
                        help="cell: quantities as the cell file's latex lines write them (\\tilde{c}_t, the default); "
                             "plain: by their names in the cell file (g_t)")
    derive.add_argument("--vectors", default="column", choices=render.VECTORS,
                        help="column: W x, as the seed (default); row: x W, as the generated code")
    derive.add_argument("--compact", action="store_true",
                        help="name each gate's delta once and write every gradient with it")
    derive.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")

    codegen = sub.add_parser("codegen", help="write the NumPy forward/backward module of a cell",
                             description="Generate a NumPy module with the step and sequence forward "
                                         "and backward functions of a cell (--target numba: with each "
                                         "step's elementwise work fused into Numba loops; needs lstmgen[fast]).")
    codegen.add_argument("--cell", default="lstm", help=_cell_help("lstm"))
    codegen.add_argument("--layout", default="cs231n", choices=render.LAYOUTS,
                         help="weight layout: cs231n (the gates' blocks side by side: Wx (D, G*H); the default), "
                              "torch (PyTorch's weight_ih, weight_hh, bias_ih, bias_hh) or per-gate (one "
                              "argument per parameter)")
    codegen.add_argument("--target", default="numpy", choices=render.TARGETS,
                         help="numpy (readable, the default) or numba (fused loops; needs lstmgen[fast])")
    codegen.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")

    check = sub.add_parser("check", help="check a handwritten derivation, equation by equation",
                           description="Read LaTeX/Markdown derivations and judge every equation; a folder's "
                                       "documents (a class) in parallel. Exit 0: all correct; 1: some incorrect "
                                       "or unrecognized; 2: unusable input; 130: interrupted (Ctrl-C).")
    check.add_argument("files", nargs="+", metavar="FILE", help=".md/.tex files or folders of them; - reads "
                                                               "one document from standard input")
    check.add_argument("--cell", default=None,
                       help=_cell_help("the cell the document's forward equations state, else lstm"))
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON (default: text)")
    output.add_argument("--jsonl", action="store_true",
                        help="JSON Lines: a line per document as each finishes, then every document again in "
                             "path order (README, \"Grading a class\")")
    check.add_argument("--jobs", type=_positive, default=None, metavar="N",
                       help="documents checked at once, each in its own process (default: the usable cores)")
    check.add_argument("--shard", default=None, metavar="K/N",
                       help="check only the K-th of N slices of the documents in path order (K, K+N, ...; "
                            "default: 1/1, all)")
    check.add_argument("--cache", default=None, metavar="DIR",
                       help="keep results by the content of each document (and cell, limits, lstmgen version); "
                            "an unchanged document is not checked again (default: no cache)")
    check.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="check on this Dask cluster (tcp://host:8786; needs lstmgen[dask]; default: the "
                            "--jobs processes here)")

    check.add_argument("--csv", metavar="FILE", help="also write the gradebook: one CSV row per document (score, counts, "
                                                    "answer notes; default: none)")
    check.add_argument("--gradescope", metavar="FILE",
                       help="also write Gradescope's autograder results.json (all the documents as one submission; "
                            "default: none)")


    merge = sub.add_parser("merge", help="join the JSON Lines of check --jsonl --shard runs into one report",
                           description="Merge the --jsonl results of the shards of one class into one report; "
                                       "refuses inputs from different runs, shards given twice and missing documents. "
                                       "Exit codes as check's.")
    merge.add_argument("files", nargs="+", metavar="FILE.jsonl", help="JSON Lines files of lstmgen check --jsonl")
    merged = merge.add_mutually_exclusive_group()
    merged.add_argument("--json", action="store_true", help="print the report as JSON (default: text)")
    merged.add_argument("--jsonl", action="store_true", help="print one JSON Lines file, as one unsharded run")

    summary = sub.add_parser("summary", help="a class's mistakes: which, how many students, an example of each",
                             description="The teacher's view of a class: every answer note with the students and "
                                         "equations it was found in and an example line. Reads the reports of "
                                         "`lstmgen check --json` (.json) or their JSON Lines (.jsonl), or checks the "
                                         ".md/.tex documents and folders given.")
    summary.add_argument("files", nargs="+", metavar="FILE", help="REPORT.json, REPORT.jsonl, documents or folders "
                                                                 "(- : one document on standard input)")
    summary.add_argument("--cell", default=None, help="for documents: as `lstmgen check --cell` (default: the "
                                                      "cell each document states, else lstm)")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON (default: text)")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number: %r" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1: %r" % text)
    return value


def _emit(text: str, output: str | None) -> None:
    if output:
        render.write(Path(output), text)
    else:
        sys.stdout.write(text)


class _ClosedPipe(Exception):
    """Standard output's reader went away (not an LstmgenError: it has no error line)."""


class _Stdout:
    """Standard output that writes what its encoding cannot as backslash escapes and turns a
    failed write into an OutputError (after which nothing more reaches the stream)."""

    def __init__(self, stream):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
        self.stream = stream

    def write(self, text: str) -> int:
        return self._guarded("write", text)

    def flush(self) -> None:
        self._guarded("flush")

    def _guarded(self, operation: str, *args):
        if self.stream is None:  # started with standard output closed (>&-)
            if operation == "flush":
                return None
            raise OutputError("cannot write to standard output (it is closed)")
        try:
            return getattr(self.stream, operation)(*args)
        except OSError as exc:
            self._silence()
            if isinstance(exc, BrokenPipeError):
                raise _ClosedPipe("standard output was closed") from None
            raise OutputError("cannot write to standard output (%s)" % (exc.strerror or exc)) from None

    def _silence(self) -> None:
        """Point the stream's file at /dev/null, so that the unwritten rest fails no flush at exit."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None) -> int:
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except _ClosedPipe:
        return PIPE_CLOSED
    except OutputError as exc:
        print("lstmgen: error: %s" % str(exc).splitlines()[0], file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


def _main(argv) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help()
            return 2
        if args.command == "build":
            written = render.build(Path(args.out), args.cell or render.BUILD_CELLS)
            print("wrote %d files to %s" % (len(written), args.out))
            return 0
        if args.command == "derive":
            fmt = render.format_of(args.output, args.format)
            if fmt == "pdf" and not args.output:
                raise UsageError("--format pdf writes a file: give -o FILE.pdf")
            style = render.style_of(args.hadamard, args.transpose, args.names, args.vectors, args.compact)
            document = render.pdf_document(args.cell, style) if fmt == "pdf" else \
                render.render_document(args.cell, fmt, style)
            _emit(document, args.output)
            return 0
        if args.command == "codegen":
            _emit(render.render_module(args.cell, args.layout, args.target), args.output)
            return 0
        if args.command == "summary":
            from .checker.summary import run_summary

            return run_summary(args.files, cell=args.cell, as_json=args.json)
        output = "json" if args.json else "jsonl" if args.jsonl else "text"
        if args.command == "merge":
            from .checker import merge

            return merge.run(args.files, output)
        from .checker import batch

        return batch.run(args.files, cell=args.cell, output=output, jobs=args.jobs,
                         shard_of=batch.parse_shard(args.shard) if args.shard else (1, 1), cache=args.cache,
                         scheduler=args.scheduler, csv_file=args.csv, gradescope_file=args.gradescope)
    except LstmgenError as exc:
        print("lstmgen: error: %s" % str(exc).splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a check says how far it got (batch.Interrupted)
        print("lstmgen: %s" % (str(exc) or "interrupted"), file=sys.stderr)
        return INTERRUPTED
