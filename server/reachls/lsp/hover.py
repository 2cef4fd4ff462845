"""Hover text of a finding, as Markdown: each figure once.

A site's hover is its one reference in full: the site as ld.lld names it, target, distance,
usage, reach, headroom, who placed it and from which artefact. A target's hover says in one
sentence what the references do to it, then one row per referencing site (site, instruction,
distance, usage), the facts they share said once around the table. Where the build dir's history
holds earlier builds, one line says how the headroom moved (`trend_report.trend_phrase`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..findings import Finding
from ..history import SiteTrend
from ..lenses import FunctionLens
from ..record import MIB, ReachRecord
from ..messages import STATUS_PHRASES, built_at, linker_site, target_summary
from ..trend_report import signed_size, trend_phrase


def hover_markdown(finding: Finding, trends: Mapping[ReachRecord, SiteTrend]) -> str:
    """`trends`: the history's trend of each record that has one."""
    if finding.role == "target":
        return _target_markdown(list(finding.records), trends)
    return "\n\n---\n\n".join(_site_markdown(r, trends.get(r)) for r in finding.records)


def lens_title(lens: FunctionLens) -> str:
    """`reachls: worst 82 % of reach (CONDBR19 → hyp_panic), headroom 179 KiB · 3 references`."""
    worst = lens.worst
    count = len(lens.records)
    usage = "" if worst.usage is None else f"worst {worst.usage * 100:.0f} % of reach "
    headroom = "" if worst.headroom is None else f", headroom {signed_size(worst.headroom)}"
    return (f"reachls: {usage}({worst.kind.short_name} → {worst.target.symbol}){headroom} · "
            f"{count} reference{'' if count == 1 else 's'}")


def _built(record: ReachRecord) -> str:
    return f"`{record.provenance.artefact}`, written {built_at(record.provenance.artefact_mtime)}"


def _distance(record: ReachRecord) -> str:
    if record.distance is None:
        return "not printed by the linker"
    return f"{record.distance} B ({record.distance / MIB:.2f} MiB)"


def _usage(record: ReachRecord) -> str:
    return "—" if record.usage is None else f"{record.usage * 100:.0f} %"


def _reach(record: ReachRecord) -> str:
    kind = record.kind
    return f"{kind.name}: {kind.reach_text} `[{kind.lo}, {kind.hi}]`" + (", veneer possible" if kind.thunk else "")


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _site_markdown(record: ReachRecord, trend: SiteTrend | None) -> str:
    site, target = record.site, record.target
    insn = site.instruction or record.kind.short_name
    if not record.verified:  # read from a linker log alone: only what the linker printed
        rows = [
            ("site", f"`{linker_site(record)}` in `{site.symbol or '?'}`; line as the linker printed it"),
            ("target", f"`{target.symbol}`" + (f", {target.section}" if target.section else "")),
            ("distance", _distance(record)),
            ("reach", _reach(record)),
            ("verified", "no: the object is not at hand, this is the linker's log as printed"),
            ("artefact", _built(record)),
        ]
        return "\n".join([f"**{insn} → {target.symbol}: {record.status.value}**", "", *_table(rows)])
    headroom = record.headroom
    rows = [
        ("site", f"`{linker_site(record)}`" + (f", in `{site.symbol}+{site.symbol_offset:#x}`" if site.symbol else "")
                 + f" at `{site.address:#x}` → {site.output_section}"),
        ("target", f"`{target.symbol}` at `{target.address:#x}`, {target.section} → {target.output_section}"),
        ("distance", _distance(record)),
        ("usage", f"{_usage(record)} of reach"),
        ("reach", _reach(record)),
        ("headroom", f"{abs(headroom)} B {'over' if headroom < 0 else 'left'}"),
        ("placed by", record.provenance.placed_by),
        ("artefact", _built(record)),
    ]
    phrase = trend_phrase(trend) if trend is not None else None
    if phrase:
        rows.insert(rows.index(("placed by", record.provenance.placed_by)), ("trend", phrase))
    title = f"**{insn} → {target.symbol} {STATUS_PHRASES[record.status]}** ({record.status.value})"
    return "\n".join([title, "", *_table(rows)])


def _target_markdown(records: list[ReachRecord], trends: Mapping[ReachRecord, SiteTrend]) -> str:
    worst = min(records, key=lambda r: r.worst_first)
    target = worst.target
    where = (f"`{target.symbol}` at `{target.address:#x}`, {target.section} → {target.output_section}; "
             if worst.verified else "")
    lines = [f"**{target_summary(target.symbol, records)}**", "",
             f"{where}placed by {worst.provenance.placed_by}; {_built(worst)}", "",
             "| site | instruction | distance | usage |", "|---|---|---|---|"]
    for record in sorted(records, key=lambda r: r.worst_first):
        site = record.site
        function = f" in `{site.symbol}`" if site.symbol else ""
        insn = f"{site.instruction or record.kind.short_name} ({record.kind.short_name})"
        distance = "—" if record.distance is None else f"{record.distance} B"
        lines.append(f"| `{linker_site(record)}`{function} | {insn} | {distance} | {_usage(record)} |")
    kinds = {record.kind.short_name: record.kind.reach_text for record in records}
    lines += ["", "; ".join(f"{name} reaches {reach}" for name, reach in kinds.items())]
    trend = trends.get(worst)
    if trend is not None and (phrase := trend_phrase(trend)):
        lines += ["", f"trend of `{linker_site(worst)}`: {phrase}"]
    return "\n".join(lines)
