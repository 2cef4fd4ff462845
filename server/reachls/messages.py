"""The words a finding is said in, shared by the text report, the editor's diagnostics and hover,
so a reference reads the same everywhere: `describe` (status, distance, usage, reach), the site as
the linker names it, one sentence for a target, the unchecked-references note, an artefact's time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import chain, zip_longest
from pathlib import Path

from .record import ReachRecord, Status
from .records import Analysis, UncheckedExample, UncheckedGroup, UncheckedReason


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
