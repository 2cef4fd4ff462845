"""Reports of the CLI: the text report grouped by source file, worst first, and the stable JSON."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

from .pipeline import FunctionPlacement, ScanResult
from .layout import Placement
from .record import ReachRecord, Status
from .sourcemap import SourceLocation

JSON_SCHEMA = 1


def _where(location: SourceLocation | None) -> str | None:
    if location is None:
        return None
    return f"{_display_path(location.file)}:{location.line}" + (f":{location.column}" if location.column else "")


def _display_path(path: str) -> str:
    """Paths under the current directory are shown relative to it, the way compilers print them."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def _summary(result: ScanResult) -> str:
    counts = result.analysis.counts
    parts = ", ".join(f"{counts.get(status, 0)} {status.value}" for status in Status if status is not Status.OK)
    return (f"{result.inputs.artefact} ({result.arch.name}, "
            f"{'relocatable' if result.analysis.placement.engine != 'linked' else 'linked image'}, "
            f"placed by {result.analysis.placement.placed_by}): {parts} — of {result.analysis.total} "
            f"short-reach references")


def describe(record: ReachRecord) -> str:
    """One line a kernel developer reads at a glance: what, how far, how far it may go."""
    insn = record.site.instruction or record.kind.short_name
    return (f"{insn} → {record.target.symbol} is {record.distance} B ({record.distance_mib:.2f} MiB) away; "
            f"{record.kind.short_name} reaches {record.kind.reach_text} ({record.usage * 100:.0f} %)")


def text_report(result: ScanResult, fix_hints: bool = True) -> str:
    """Records grouped by the source file of their site; files and records worst first."""
    groups: dict[str, list[ReachRecord]] = defaultdict(list)
    for record in result.analysis.records:
        key = _display_path(record.site.location.file) if record.site.location else f"[{record.site.section}]"
        groups[key].append(record)
    lines = [f"reachls: {_summary(result)}"]
    lines += [f"note: {note}" for note in (*result.analysis.notes, *result.notes)]
    for name, records in sorted(groups.items(), key=lambda kv: (kv[1][0].status.rank, -kv[1][0].usage, kv[0])):
        lines += ["", name]
        for record in records:
            site = record.site
            in_section = f"{site.section}+{site.offset:#x}"
            site_symbol = f"{site.symbol}+{site.symbol_offset:#x} ({in_section})" if site.symbol else in_section
            lines.append(f"  {record.status.value:<8} {_where(site.location) or site_symbol}  {describe(record)}"
                         f"  [{record.kind.name}]")
            target_where = _where(record.target.location)
            lines.append(f"           site {site_symbol} at {site.address:#x}; target in "
                         f"{record.target.section or 'absolute'} at {record.target.address:#x}"
                         + (f" ({target_where})" if target_where else "")
                         + f"; headroom {record.headroom} B")
            hint = result.arch.fix_hint(record.kind, site.instruction)
            if fix_hints and hint and record.status in (Status.OVERFLOW, Status.AT_RISK, Status.FRAGILE):
                lines.append(f"           fix: {hint}")
    if not result.analysis.records:
        lines += ["", "nothing to report" if result.analysis.total else "no short-reach references found"]
    return "\n".join(lines) + "\n"


def json_report(result: ScanResult) -> str:
    document: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "artefact": str(result.inputs.artefact),
        "arch": result.arch.name,
        "engine": result.analysis.placement.engine,
        "linker": result.analysis.placement.linker,
        "counts": {status.value: result.analysis.counts.get(status, 0) for status in Status},
        "unresolved": result.analysis.unresolved,
        "notes": [*result.analysis.notes, *result.notes],
        "records": [record.to_json() for record in result.analysis.records],
    }
    return json.dumps(document, indent=2) + "\n"


def layout_text(placement: Placement, functions: list[FunctionPlacement]) -> str:
    lines = [f"{'address':>18}  {'offset':>10}  {'size':>8}  {'section':<12} function  (placed by {placement.placed_by})"]
    for fn in functions:
        offset = f"{fn.output_offset:#x}" if fn.output_offset is not None else "-"
        lines.append(f"{fn.address:#18x}  {offset:>10}  {fn.size:>8}  {fn.output_section or '-':<12} {fn.name}")
    lines += [f"note: {note}" for note in placement.notes]
    return "\n".join(lines) + "\n"


def layout_json(placement: Placement, functions: list[FunctionPlacement]) -> str:
    return json.dumps({
        "schema": JSON_SCHEMA,
        "engine": placement.engine,
        "linker": placement.linker,
        "functions": [{"name": f.name, "address": f.address, "size": f.size, "output_section": f.output_section,
                       "output_offset": f.output_offset} for f in functions],
        "notes": list(placement.notes),
    }, indent=2) + "\n"
