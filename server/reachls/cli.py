"""`reachls scan` and `reachls layout`: the command-line front end over the shared pipeline.

Exit status: 0 clean (or below `--fail-on`), 1 when a record reaches the `--fail-on` status or,
with `--fail-on`, when some short-reach reference could not be checked (unless `--allow-unchecked`),
2 for bad input — always one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
from pathlib import Path

from . import __version__
from .layout.linkopts import LINKERS
from .errors import ReachlsError
from .kbuild import LOG_NAME
from .pipeline import ENGINES, ScanOptions, function_layout, scan
from .record import DEFAULT_THRESHOLD, Status
from .report import json_report, layout_json, layout_text, printable, text_report

FAIL_ON = {"overflow": Status.OVERFLOW, "veneer": Status.VENEER, "at-risk": Status.AT_RISK}


def _threshold(text: str) -> float:
    """A fraction (0.75) or a percentage (75%)."""
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("threshold is a fraction (0.75) or a percentage (75%)")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="build directory (holding vmlinux.o or vmlinux) or an ELF file")
    parser.add_argument("--script", "-T", type=Path, help="linker script (default: from .vmlinux.cmd or "
                        "arch/*/kernel/vmlinux.lds in the build dir)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="layout of a relocatable input: relink with the build's linker (exact), model (no "
                             "toolchain), auto = relink when that linker is available, else the model")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--linker", choices=LINKERS, default="auto",
                        help="whose layout and veneers: lld, gnu, or auto = the build's linker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reachls", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reachls {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    scan_parser = commands.add_parser("scan", help="report branches and PC-relative loads near or out of reach")
    _common(scan_parser)
    scan_parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                             help="usage from which a reference is at-risk (default 0.75 = 75%%)")
    scan_parser.add_argument("--log", nargs="?", const=LOG_NAME, metavar="NAME",
                             help=f"read the overflows from the linker log NAME in the build dir (default "
                                  f"{LOG_NAME}) instead of vmlinux.o; a PATH that is a log file is read as one")
    scan_parser.add_argument("--all", action="store_true", help="include references that are ok")
    scan_parser.add_argument("--fail-on", choices=tuple(FAIL_ON), help="exit 1 when a reference has this "
                             "status or a worse one, or when a short-reach reference could not be checked")
    scan_parser.add_argument("--allow-unchecked", action="store_true", help="with --fail-on: references that "
                             "could not be checked (listed in the report's note) do not fail the scan")
    layout_parser = commands.add_parser("layout", help="where every function lands (address, offset in its "
                                        "output section)")
    _common(layout_parser)
    layout_parser.add_argument("--symbol", action="append", help="only this function (repeatable)")
    commands.add_parser("serve", help="run the language server on stdio")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .lsp.server import serve

        serve()
        return 0
    # A one-shot command builds a record, and a JSON row, of small objects per reference (100 k on a
    # kernel with --all) and keeps them to the end: with the default young-generation threshold
    # (700 allocations) the collector rescans them over and over, ~15% of such a run.
    gc.set_threshold(50_000, 10, 10)
    # A report is all text; what the stream's encoding cannot write (an ASCII locale's `→`) is
    # written as a backslash escape rather than ending the command.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    options = ScanOptions(engine=args.engine, script=args.script, threshold=getattr(args, "threshold", DEFAULT_THRESHOLD),
                          include_ok=getattr(args, "all", False), log=getattr(args, "log", None),
                          linker=args.linker)
    try:
        if args.command == "scan":
            result = scan(args.path, options)
            sys.stdout.write(json_report(result) if args.format == "json" else text_report(result))
            worst = FAIL_ON.get(args.fail_on or "")
            if worst and (any(r.status.rank <= worst.rank for r in result.analysis.records)
                          or (result.analysis.unresolved and not args.allow_unchecked)):
                return 1
            return 0
        placement, functions = function_layout(args.path, options)
        if args.symbol:
            missing = sorted(set(args.symbol) - {f.name for f in functions})
            if missing:
                raise ReachlsError(f"no function named {', '.join(missing)}", str(args.path))
            functions = [f for f in functions if f.name in args.symbol]
        sys.stdout.write(layout_json(placement, functions) if args.format == "json" else layout_text(placement, functions))
        return 0
    except ReachlsError as exc:
        print(printable(f"reachls: error: {exc}"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
