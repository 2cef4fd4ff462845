"""Hover text of a finding: the figures of its records, as Markdown."""

from __future__ import annotations

from datetime import datetime

from ..findings import Finding
from ..record import MIB, ReachRecord, format_size


def hover_markdown(finding: Finding) -> str:
    return "\n\n---\n\n".join(record_markdown(r) for r in finding.records)


def record_markdown(record: ReachRecord) -> str:
    site, target, kind = record.site, record.target, record.kind
    built = datetime.fromtimestamp(record.provenance.artefact_mtime).strftime("%Y-%m-%d %H:%M:%S")
    reach = ("reach", f"{kind.reach_text} `[{kind.lo}, {kind.hi}]`" + (", veneer possible" if kind.thunk else ""))
    if not record.verified:  # read from a linker log alone: only what the linker printed
        rows = [
            ("distance", "not printed by the linker" if record.distance is None else
                         f"{record.distance} B ({record.distance / MIB:.2f} MiB)"),
            reach,
            ("site", f"`{site.symbol or '?'}`, {site.section}+{site.offset:#x} in `{site.object}`; "
                     "line as the linker printed it"),
            ("target", f"`{target.symbol}`" + (f", {target.section}" if target.section else "")),
            ("verified", "no: the object is not at hand, this is the linker's log as printed"),
            ("artefact", f"`{record.provenance.artefact}`, written {built}"),
        ]
    else:
        rows = [
            ("distance", f"{record.distance} B ({record.distance / MIB:.2f} MiB)"),
            reach,
            ("usage", f"{record.usage * 100:.1f} %"),
            ("headroom", f"{record.headroom} B ({format_size(abs(record.headroom))}"
                         f"{' over' if record.headroom < 0 else ' left'})"),
            ("site", f"`{site.symbol}+{site.symbol_offset:#x}` at `{site.address:#x}`, {site.section} → "
                     f"{site.output_section}"),
            ("target", f"`{target.symbol}` at `{target.address:#x}`, {target.section} → {target.output_section}"),
            ("placed by", record.provenance.placed_by),
            ("artefact", f"`{record.provenance.artefact}`, built {built}"),
        ]
    title = f"**{site.instruction or kind.short_name} → {target.symbol}: {record.status.value}** ({kind.name})"
    return "\n".join([title, "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
