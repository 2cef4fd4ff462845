"""Reports of the CLI: the text report grouped by source file, worst first, and the stable JSON."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from typing import Any

from .baseline import Comparison, pair_json
from .layout import Placement
from .messages import describe, unchecked_note
from .pipeline import FunctionPlacement, ScanResult
from .record import ReachRecord, SourceLocation, Status
from .records import Analysis

JSON_SCHEMA = 1

# A byte of a name that is not UTF-8 (a symbol, a DWARF file name, a path) is kept in a `str` as a
# lone surrogate by `surrogateescape`; no UTF-8 stream can write one, and strict JSON readers refuse
# its `\udcXX` escape. Reports write such a byte as the four characters `\xNN`.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# In `json`'s ASCII output: an escaped backslash, a surrogate pair (a real character), or a lone
# escaped byte; scanned left to right, so `\\udcff` (a backslash, then text) is never taken for one.
_JSON_ESCAPES = re.compile(r"\\\\|\\ud[89ab][0-9a-f]{2}\\udc[0-9a-f]{2}|\\udc([89a-f][0-9a-f])")


def printable(text: str) -> str:
    """`text` with each byte that was not UTF-8 written `\\xNN`: what any UTF-8 stream can write."""
    return _ESCAPED_BYTE.sub(lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}", text)


def printable_json(text: str) -> str:
    """JSON text (ASCII, as `json` writes it) whose strings say a byte that was not UTF-8 as `\\xNN`,
    as the text report does, instead of a lone surrogate escape."""
    if "\\udc" not in text:
        return text
    return _JSON_ESCAPES.sub(lambda m: f"\\\\x{m[1]}" if m[1] else m[0], text)


def _where(location: SourceLocation | None) -> str | None:
    if location is None:
        return None
    return f"{display_path(location.file)}:{location.line}" + (f":{location.column}" if location.column else "")


def display_path(path: str) -> str:
    """Paths under the current directory are shown relative to it, the way compilers print them."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def _summary(result: ScanResult) -> str:
    analysis = result.analysis
    counts = analysis.counts
    parts = ", ".join(f"{counts.get(status, 0)} {status.value}" for status in Status if status is not Status.OK)
    unchecked = f" ({analysis.unresolved} not checked: see note)" if analysis.unresolved else ""
    return (f"{result.inputs.artefact} ({result.arch.name}, "
            f"{result.mode.described}, "
            f"placed by {analysis.placement.placed_by}): {parts} — of {analysis.total + analysis.unresolved} "
            f"short-reach references{unchecked}")


def _nothing_reported(analysis: Analysis) -> str:
    """The last line of a report without records: never "nothing" where something went unchecked."""
    if analysis.total:
        return f"nothing to report among the {analysis.total} checked" if analysis.unresolved else "nothing to report"
    return "no short-reach reference could be checked" if analysis.unresolved else "no short-reach references found"


def _second_line(record: ReachRecord, site_name: str) -> str:
    """Where site and target are: addresses, sections, headroom — what is known of them."""
    site, target = record.site, record.target
    target_where = _where(target.location)
    if not record.verified:
        return (f"site {site_name} in {site.object}, line as the linker printed it; target {target.symbol}"
                + (f" in {target.section}" if target.section else ""))
    return (f"site {site_name} at {site.address:#x}; target in {target.section or 'absolute'} at "
            f"{target.address:#x}" + (f" ({target_where})" if target_where else "") + f"; headroom {record.headroom} B")


def text_report(result: ScanResult, fix_hints: bool = True, comparison: Comparison | None = None) -> str:
    """Records grouped by the source file of their site; files and records worst first. With a
    baseline, each record's change, and what the baseline reported that is gone or ok now."""
    groups: dict[str, list[ReachRecord]] = defaultdict(list)
    for record in result.analysis.records:
        key = display_path(record.site.location.file) if record.site.location else f"[{record.site.section}]"
        groups[key].append(record)
    lines = [f"reachls: {_summary(result)}"]
    unchecked = unchecked_note(result.analysis)
    lines += [f"note: {note}" for note in (*([unchecked] if unchecked else []), *result.analysis.notes, *result.notes)]
    if comparison is not None:
        lines.append(f"note: {comparison.summary()}")
    for name, records in sorted(groups.items(), key=lambda kv: (kv[1][0].worst_first, kv[0])):
        lines += ["", name]
        for record in records:
            site = record.site
            in_section = f"{site.section}+{site.offset:#x}"
            offset = f"+{site.symbol_offset:#x}" if site.symbol_offset is not None else ""
            site_symbol = f"{site.symbol}{offset} ({in_section})" if site.symbol else in_section
            change = f"  (baseline: {comparison.tag(record)})" if comparison is not None else ""
            lines.append(f"  {record.status.value:<8} {_where(site.location) or site_symbol}  {describe(record)}"
                         f"  [{record.kind.name}]{change}")
            lines.append(f"           {_second_line(record, site_symbol)}")
            hint = result.arch.fix_hint(record.kind, site.instruction)
            if fix_hints and hint and record.status in (Status.OVERFLOW, Status.AT_RISK, Status.FRAGILE):
                lines.append(f"           fix: {hint}")
    if not result.analysis.records:
        lines += ["", _nothing_reported(result.analysis)]
    absent = comparison.no_longer_reported() if comparison is not None else []
    if absent:
        lines += ["", "no longer reported (since the baseline)"]
        lines += [f"  {pair.change.value:<8} {_where(pair.before.site.location) or pair.before.site_key}  "
                  f"was: {describe(pair.before)}" + (f"; now {pair.now.status.value}" if pair.now else "")
                  for pair in absent]
    return printable("\n".join(lines) + "\n")


def json_report(result: ScanResult, comparison: Comparison | None = None) -> str:
    """The stable JSON (schema 1); with a baseline, a top-level `baseline` and each record's change."""
    document: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "artefact": str(result.inputs.artefact),
        "arch": result.arch.name,
        "mode": result.mode.value,
        "engine": result.analysis.placement.engine,
        "linker": result.analysis.placement.linker,
        "counts": {status.value: result.analysis.counts.get(status, 0) for status in Status},
        "unresolved": result.analysis.unresolved,
        "unchecked": [{"kind": g.kind, "reason": g.reason.value, "why": g.reason.why, "count": g.count,
                       "examples": [{"section": e.section, "offset": e.offset, "symbol": e.symbol, "target": e.target}
                                    for e in g.examples]} for g in result.analysis.unchecked],
        "notes": [*result.analysis.notes, *result.notes],
    }
    rows = [record.to_json_line() for record in result.analysis.records]
    if comparison is not None:
        document["baseline"] = comparison.json_summary()
        rows = [f'{row[:-1]}, "baseline": {json.dumps(pair_json(comparison.of(record)))}}}'
                for row, record in zip(rows, result.analysis.records)]
    return json_with_rows(document, "records", rows)


def json_with_rows(document: dict[str, Any], key: str, rows: list[str]) -> str:
    """`document` indented, with `rows` (each already `json.dumps`-encoded) as its last member, one
    compact row per line.

    An indented dump runs Python's pure-Python encoder (about 5x slower than the C one, and most
    of a `--all` scan of a kernel with 100 k records); rows dumped one by one without indent use
    the C encoder, and a row per line still reads well and diffs line by line."""
    head = json.dumps(document, indent=2)[:-2]
    if not rows:
        return printable_json(f'{head},\n  "{key}": []\n}}\n')
    body = ",\n    ".join(rows)
    return printable_json(f'{head},\n  "{key}": [\n    {body}\n  ]\n}}\n')


def layout_text(placement: Placement, functions: list[FunctionPlacement]) -> str:
    lines = [f"{'address':>18}  {'offset':>10}  {'size':>8}  {'section':<12} function  (placed by "
             f"{placement.placed_by}; `notype`: an assembly label without a function type)"]
    for fn in functions:
        offset = f"{fn.output_offset:#x}" if fn.output_offset is not None else "-"
        kind = "" if fn.is_function else "  notype"
        lines.append(f"{fn.address:#18x}  {offset:>10}  {fn.size:>8}  {fn.output_section or '-':<12} {fn.name}{kind}")
    lines += [f"note: {note}" for note in placement.notes]
    return printable("\n".join(lines) + "\n")


def layout_json(placement: Placement, functions: list[FunctionPlacement]) -> str:
    document = {"schema": JSON_SCHEMA, "engine": placement.engine, "linker": placement.linker,
                "notes": list(placement.notes)}
    return json_with_rows(document, "functions", [json.dumps(
        {"name": f.name, "type": "func" if f.is_function else "notype", "address": f.address, "size": f.size,
         "output_section": f.output_section, "output_offset": f.output_offset}) for f in functions])
