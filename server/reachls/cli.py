"""`reachls scan`, `layout`, `diff`, `history`, `picture` and `serve`: the command-line front end over the shared pipeline.

Exit status: 0 clean (or below `--fail-on`), 1 when a record meets a `--fail-on` condition (a status;
with `--baseline`, new at a status or worse than the baseline by an amount) or, with `--fail-on`, when
short-reach references could not be checked (with baseline conditions only: more than the baseline had;
never with `--allow-unchecked`), 2 for bad input — always one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
from pathlib import Path

from . import __version__
from .baseline import FailOn, failing, fails_unchecked, parse_fail_on, scan_against
from .errors import ReachlsError
from .history import DEFAULT_KEEP, MAX_KEEP, open_history, record_scan
from .kbuild import LOG_NAME
from .layout.linkopts import LINKERS
from .pipeline import ENGINES, ScanOptions, function_layout, scan
from .progress import SILENT, Progress
from .record import DEFAULT_THRESHOLD
from .report import json_report, layout_json, layout_text, printable, text_report


def _threshold(text: str) -> float:
    """A fraction (0.75) or a percentage (75%)."""
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("threshold is a fraction (0.75) or a percentage (75%)")
    return value


def _fail_on(text: str) -> FailOn:
    try:
        return parse_fail_on(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _keep(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_KEEP:
        raise argparse.ArgumentTypeError(f"keep from 1 to {MAX_KEEP} builds")
    return value


def _common(parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json")) -> None:
    parser.add_argument("path", type=Path, help="build directory (holding vmlinux.o or vmlinux) or an ELF file")
    parser.add_argument("--script", "-T", type=Path, help="linker script (default: from .vmlinux.cmd or "
                        "arch/*/kernel/vmlinux.lds in the build dir)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="layout of a relocatable input: relink with the build's linker (exact), model (no "
                             "toolchain), auto = relink when that linker is available, else the model")
    if formats:
        parser.add_argument("--format", choices=formats, default="text")
    parser.add_argument("--linker", choices=LINKERS, default="auto",
                        help="whose layout and veneers: lld, gnu, or auto = the build's linker")


def _reported(parser: argparse.ArgumentParser) -> None:
    """Which references a scan reports."""
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                        help="usage from which a reference is at-risk (default 0.75 = 75%%)")
    parser.add_argument("--all", action="store_true", help="include references that are ok")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reachls", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reachls {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    scan_parser = commands.add_parser("scan", help="report branches and PC-relative loads near or out of reach")
    _common(scan_parser, formats=("text", "json", "sarif"))
    _reported(scan_parser)
    scan_parser.add_argument("--log", nargs="?", const=LOG_NAME, metavar="NAME",
                             help=f"read the overflows from the linker log NAME in the build dir (default "
                                  f"{LOG_NAME}) instead of vmlinux.o; a PATH that is a log file is read as one")
    scan_parser.add_argument("--fail-on", type=_fail_on, action="append", default=[], metavar="CONDITION",
                             help="exit 1 when a reference has this status or a worse one (overflow, veneer, "
                                  "at-risk), one the baseline did not have (new-overflow, …), or one that came "
                                  "closer to its limit than the baseline by more than worse-than=N%% of its reach "
                                  "or worse-than=BYTES; or when a short-reach reference could not be checked "
                                  "(with a baseline condition only: more than in the baseline); repeatable")
    scan_parser.add_argument("--baseline", type=Path, metavar="OLD", help="compare with an earlier scan: a JSON "
                             "report (--format json, best with --all) or a build dir or ELF file, scanned now")
    scan_parser.add_argument("--source-root", type=Path, metavar="DIR", help="SARIF paths are relative to DIR "
                             "(default: the tree the build came from)")
    scan_parser.add_argument("--allow-unchecked", action="store_true", help="with --fail-on: references that "
                             "could not be checked (listed in the report's note) do not fail the scan")
    scan_parser.add_argument("--record", action="store_true", help="record the references this scan reports (with "
                             "--all, every one) in the build dir's history (.reachls-history.sqlite), for "
                             "`reachls history`")
    scan_parser.add_argument("--keep", type=_keep, default=DEFAULT_KEEP, metavar="N",
                             help=f"with --record: keep the newest N builds (default {DEFAULT_KEEP})")
    history_parser = commands.add_parser("history", help="each reference's headroom over the recorded builds, its "
                                         "rate of change and the builds left until it is out of range")
    history_parser.add_argument("path", type=Path, help="build directory (or its artefact) scanned with --record")
    which = history_parser.add_mutually_exclusive_group()
    which.add_argument("--worst", type=int, metavar="N", help="only the N references with the least headroom now")
    which.add_argument("site", nargs="?", help="only the references at FUNCTION or FUNCTION+OFFSET (0x..)")
    history_parser.add_argument("--format", choices=("text", "json"), default="text")
    layout_parser = commands.add_parser("layout", help="where every function lands (address, offset in its "
                                        "output section)")
    _common(layout_parser)
    layout_parser.add_argument("--symbol", action="append", help="only this function (repeatable)")
    diff_parser = commands.add_parser("diff", help="what moved each reference whose distance changed between "
                                      "two builds of one tree: the sections that grew, shrank or moved, to the byte")
    diff_parser.add_argument("old", type=Path, help="the earlier build (build directory or ELF file)")
    diff_parser.add_argument("new", type=Path, help="the later build")
    diff_parser.add_argument("--engine", choices=ENGINES, default="auto", help="layout of each relocatable input "
                             "(as for scan)")
    diff_parser.add_argument("--linker", choices=LINKERS, default="auto", help="whose layout (as for scan)")
    diff_parser.add_argument("--format", choices=("text", "json"), default="text")
    _reported(diff_parser)
    picture_parser = commands.add_parser("picture", help="draw the layout to scale with each reported reference: "
                                         "an SVG, or an HTML page whose hover shows the record")
    _common(picture_parser, formats=())
    _reported(picture_parser)
    picture_parser.add_argument("-o", "--output", type=Path, required=True,
                                help="the file to write: .svg, or .html (self-contained, loads nothing)")
    commands.add_parser("serve", help="run the language server on stdio")
    return parser


def _progress(args: argparse.Namespace) -> Progress:
    """A progress line on stderr while the scan runs, only where someone watches it: stderr a
    terminal and the report text (JSON and SARIF are for programs, whose stderr stays as it was)."""
    if getattr(args, "format", "text") != "text" or not sys.stderr.isatty():
        return SILENT
    from .cliprogress import TerminalProgress

    return TerminalProgress(sys.stderr)


def _scan(args: argparse.Namespace, options: ScanOptions) -> int:
    """The report on stdout; 1 when a `--fail-on` condition holds."""
    needs_baseline = next((c.text for c in args.fail_on if c.needs_baseline), None)
    if needs_baseline and args.baseline is None:
        raise ReachlsError(f"--fail-on {needs_baseline} compares with an earlier scan: give --baseline OLD")
    comparison = None
    if args.baseline is not None:
        result, comparison = scan_against(args.path, args.baseline, options)
    else:
        result = scan(args.path, options, _progress(args))
    if args.record:
        note = record_scan(result, args.keep).note
        if note:
            print(printable(f"reachls: {note}"), file=sys.stderr)
    if args.format == "sarif":
        from .sarif import default_source_root, sarif_report

        sys.stdout.write(sarif_report(result, args.source_root or default_source_root(result), comparison))
    elif args.format == "json":
        sys.stdout.write(json_report(result, comparison))
    else:
        sys.stdout.write(text_report(result, comparison=comparison))
    if failing(result.analysis.records, args.fail_on, comparison) or fails_unchecked(
            result, args.fail_on, comparison, args.allow_unchecked):
        return 1
    return 0


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
    try:
        if args.command == "history":
            return _history(args)
        options = ScanOptions(engine=args.engine, script=getattr(args, "script", None),
                              threshold=getattr(args, "threshold", DEFAULT_THRESHOLD),
                              include_ok=getattr(args, "all", False), log=getattr(args, "log", None),
                              linker=args.linker)
        if args.command == "scan":
            return _scan(args, options)
        if args.command == "diff":
            from .diff import diff_builds
            from .diffreport import diff_json, diff_text

            diff = diff_builds(args.old, args.new, options, include_ok=args.all)
            sys.stdout.write(diff_json(diff) if args.format == "json" else diff_text(diff))
            return 0
        if args.command == "picture":
            from .picture import write_picture

            write_picture(scan(args.path, options, _progress(args)), args.output)
            return 0
        placement, functions = function_layout(args.path, options, _progress(args))
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


def _history(args: argparse.Namespace) -> int:
    build_dir = args.path if args.path.is_dir() else args.path.parent
    if args.worst is not None and args.worst < 1:
        raise ReachlsError("--worst takes a count of 1 or more")
    opened = open_history(build_dir, writing=False)
    if opened is None:
        raise ReachlsError("no history recorded here: scan it with `reachls scan --record` first", str(build_dir))
    with opened[0] as history:
        builds, trends = history.builds(), history.trends()
    if args.site:
        function, _, offset = args.site.partition("+")
        trends = [t for t in trends if t.key.function == function
                  and (not offset or t.key.offset == _offset(offset))]
        if not trends:
            raise ReachlsError(f"no reference recorded at {args.site} in the newest build", str(build_dir))
    elif args.worst is not None:
        trends = trends[:args.worst]
    from .trend_report import history_json, history_text

    sys.stdout.write(history_json(build_dir, builds, trends) if args.format == "json"
                     else history_text(build_dir, builds, trends))
    return 0


def _offset(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ReachlsError(f"a site's offset is a number (0x20 or 32), not {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
