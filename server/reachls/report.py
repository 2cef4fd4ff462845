"""Reports of the CLI: the text report grouped by source file, worst first, and the stable JSON."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from itertools import chain, zip_longest
from typing import Any

from .analysis import Analysis, UncheckedExample, UncheckedGroup, UncheckedReason
from .pipeline import FunctionPlacement, ScanResult
from .layout import Placement
from .record import ReachRecord, Status
from .sourcemap import SourceLocation

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


def _printable_json(text: str) -> str:
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
            f"{'relocatable' if analysis.placement.engine != 'linked' else 'linked image'}, "
            f"placed by {analysis.placement.placed_by}): {parts} — of {analysis.total + analysis.unresolved} "
            f"short-reach references{unchecked}")


def _unchecked_site(example: UncheckedExample) -> str:
    where = f"{example.section}+{example.offset:#x}"
    return f"{example.symbol} ({where}) → {example.target}" if example.symbol else f"{where} → {example.target}"


def unchecked_note(analysis: Analysis) -> str | None:
    """How many short-reach references were not checked, of which types, why, and a few of them."""
    if not analysis.unresolved:
        return None
    by_reason: dict[UncheckedReason, list[UncheckedGroup]] = defaultdict(list)
    for group in analysis.unchecked:
        by_reason[group.reason].append(group)
    lines = [f"{analysis.unresolved} short-reach references were not checked (`--fail-on` fails on them "
             "unless --allow-unchecked):"]
    for reason, groups in sorted(by_reason.items(), key=lambda kv: -sum(g.count for g in kv[1])):
        kinds = ", ".join(f"{g.kind} {g.count}" for g in groups)
        one_per_kind_first = [e for e in chain.from_iterable(zip_longest(*(g.examples for g in groups))) if e]
        examples = "; ".join(_unchecked_site(e) for e in one_per_kind_first[:3])
        lines.append(f"  {sum(g.count for g in groups)} {reason.value} ({kinds}): {reason.why}; e.g. {examples}")
    return "\n".join(lines)


def _nothing_reported(analysis: Analysis) -> str:
    """The last line of a report without records: never "nothing" where something went unchecked."""
    if analysis.total:
        return f"nothing to report among the {analysis.total} checked" if analysis.unresolved else "nothing to report"
    return "no short-reach reference could be checked" if analysis.unresolved else "no short-reach references found"


STATUS_PHRASES = {
    Status.OVERFLOW: "is out of reach",
    Status.VENEER: "needs a linker veneer",
    Status.AT_RISK: "is close to the limit",
    Status.FRAGILE: "is in reach, across input sections",
    Status.OK: "is in reach",
}


def built_at(mtime: float) -> str:
    """When an artefact was written, as the editor and its log show it."""
    return datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S")


def describe(record: ReachRecord) -> str:
    """One line a kernel developer reads at a glance: what, whether it reaches, how far it is, how
    much of the reach that uses, and the reach (and, for a record read from a linker log alone, that
    it is the linker's word, unchecked)."""
    insn = record.site.instruction or record.kind.short_name
    reach = f"{record.kind.short_name} reaches {record.kind.reach_text}"
    if record.distance is None:
        text = f"{insn} → {record.target.symbol} is out of range (the linker printed no distance); {reach}"
    else:
        text = (f"{insn} → {record.target.symbol} {STATUS_PHRASES[record.status]}: {record.distance} B "
                f"({record.distance_mib:.2f} MiB) away, {record.usage * 100:.0f} % of reach; {reach}")
    return text if record.verified else f"{text} — as the linker printed it, unverified (no object at hand)"


def linker_site(record: ReachRecord) -> str:
    """The site as ld.lld names it in its errors, object and input section + offset
    (`vmlinux.o:(.text+0x90)`); a linked image's site is its section + offset alone."""
    site = record.site
    where = f"{site.section}+{site.offset:#x}"
    obj = site.object or (Path(record.provenance.artefact).name if record.provenance.mode == "relocatable" else None)
    return f"{obj}:({where})" if obj else where


def _references(count: int) -> str:
    return f"{count} reference" + ("s" if count != 1 else "")


def target_summary(name: str, records: list[ReachRecord]) -> str:
    """The target side in one definite sentence: out of reach when any reference is, close to the
    limit only when every reference is in reach."""
    overflow = sum(r.status is Status.OVERFLOW for r in records)
    at_risk = sum(r.status is Status.AT_RISK for r in records)
    if overflow:
        more = f"; {at_risk} more close to the limit (at-risk)" if at_risk else ""
        return f"{name} is out of reach of {_references(overflow)} (overflow){more}"
    return f"{name} is close to the limit of {_references(at_risk)} (at-risk)"


def _second_line(record: ReachRecord, site_name: str) -> str:
    """Where site and target are: addresses, sections, headroom — what is known of them."""
    site, target = record.site, record.target
    target_where = _where(target.location)
    if not record.verified:
        return (f"site {site_name} in {site.object}, line as the linker printed it; target {target.symbol}"
                + (f" in {target.section}" if target.section else ""))
    return (f"site {site_name} at {site.address:#x}; target in {target.section or 'absolute'} at "
            f"{target.address:#x}" + (f" ({target_where})" if target_where else "") + f"; headroom {record.headroom} B")


def text_report(result: ScanResult, fix_hints: bool = True) -> str:
    """Records grouped by the source file of their site; files and records worst first."""
    groups: dict[str, list[ReachRecord]] = defaultdict(list)
    for record in result.analysis.records:
        key = display_path(record.site.location.file) if record.site.location else f"[{record.site.section}]"
        groups[key].append(record)
    lines = [f"reachls: {_summary(result)}"]
    unchecked = unchecked_note(result.analysis)
    lines += [f"note: {note}" for note in (*([unchecked] if unchecked else []), *result.analysis.notes, *result.notes)]
    for name, records in sorted(groups.items(), key=lambda kv: (kv[1][0].worst_first, kv[0])):
        lines += ["", name]
        for record in records:
            site = record.site
            in_section = f"{site.section}+{site.offset:#x}"
            offset = f"+{site.symbol_offset:#x}" if site.symbol_offset is not None else ""
            site_symbol = f"{site.symbol}{offset} ({in_section})" if site.symbol else in_section
            lines.append(f"  {record.status.value:<8} {_where(site.location) or site_symbol}  {describe(record)}"
                         f"  [{record.kind.name}]")
            lines.append(f"           {_second_line(record, site_symbol)}")
            hint = result.arch.fix_hint(record.kind, site.instruction)
            if fix_hints and hint and record.status in (Status.OVERFLOW, Status.AT_RISK, Status.FRAGILE):
                lines.append(f"           fix: {hint}")
    if not result.analysis.records:
        lines += ["", _nothing_reported(result.analysis)]
    return printable("\n".join(lines) + "\n")


def json_report(result: ScanResult) -> str:
    document: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "artefact": str(result.inputs.artefact),
        "arch": result.arch.name,
        "engine": result.analysis.placement.engine,
        "linker": result.analysis.placement.linker,
        "counts": {status.value: result.analysis.counts.get(status, 0) for status in Status},
        "unresolved": result.analysis.unresolved,
        "unchecked": [{"kind": g.kind, "reason": g.reason.value, "why": g.reason.why, "count": g.count,
                       "examples": [{"section": e.section, "offset": e.offset, "symbol": e.symbol, "target": e.target}
                                    for e in g.examples]} for g in result.analysis.unchecked],
        "notes": [*result.analysis.notes, *result.notes],
    }
    return _json_with_rows(document, "records", [record.to_json_line() for record in result.analysis.records])


def _json_with_rows(document: dict[str, Any], key: str, rows: list[str]) -> str:
    """`document` indented, with `rows` (each already `json.dumps`-encoded) as its last member, one
    compact row per line.

    An indented dump runs Python's pure-Python encoder (about 5x slower than the C one, and most
    of a `--all` scan of a kernel with 100 k records); rows dumped one by one without indent use
    the C encoder, and a row per line still reads well and diffs line by line."""
    head = json.dumps(document, indent=2)[:-2]
    if not rows:
        return _printable_json(f'{head},\n  "{key}": []\n}}\n')
    body = ",\n    ".join(rows)
    return _printable_json(f'{head},\n  "{key}": [\n    {body}\n  ]\n}}\n')


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
    return _json_with_rows(document, "functions", [json.dumps(
        {"name": f.name, "type": "func" if f.is_function else "notype", "address": f.address, "size": f.size,
         "output_section": f.output_section, "output_offset": f.output_offset}) for f in functions])
