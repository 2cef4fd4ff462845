"""`reachls diff` as text (what moved each reference, largest contribution first) and as JSON."""

from __future__ import annotations

import json
from typing import Any

from .diff import Change, Contribution, Diff, Move, Region, Side
from .record import ReachRecord, format_size
from .report import JSON_SCHEMA, display_path, json_with_rows, printable

#: Contributions listed per reference in the text report; the rest are summed on one line.
SHOWN = 12
#: Regions listed under a section that changed size.
SHOWN_REGIONS = 3


def _bytes(count: int) -> str:
    """`+98304 B (96 KiB)`: exact, with the size people say when it is over a KiB."""
    return f"{count:+} B" + (f" ({'-' if count < 0 else '+'}{format_size(abs(count))})" if abs(count) >= 1024 else "")


def _state(record: ReachRecord) -> str:
    return f"{record.status.value} {record.usage * 100:.0f} %"


def _unit(contribution: Contribution) -> str:
    if contribution.name is None:
        return contribution.what
    named = [f"`{contribution.symbol}`"] if contribution.symbol and contribution.symbol != contribution.name else []
    if contribution.file:
        named.append(display_path(contribution.file))
    return f"`{contribution.name}`" + (f" ({', '.join(named)})" if named else "") + f": {contribution.summary}"


def _names(symbols: tuple[str, ...], shown: int = 5) -> str:
    listed = ", ".join(f"`{s}`" for s in symbols[:shown])
    return listed + (f" and {len(symbols) - shown} more" if len(symbols) > shown else "")


def region_text(region: Region) -> str:
    """`+1048608 B (+1 MiB) between `a` and `b`: new `x`, `y` (file)`."""
    if region.after is None:
        where = f"before `{region.before}`" if region.before else "in the section"
    else:
        where = f"between `{region.after}` and `{region.before}`" if region.before else f"after `{region.after}`"
    came = [f"{what} {_names(symbols)}" for what, symbols in (("new", region.new_symbols), ("gone", region.gone_symbols))
            if symbols]
    file = f" ({display_path(region.file)})" if region.file else ""
    return f"{_bytes(region.bytes)} {where}" + (f": {'; '.join(came)}" if came else "") + file


def move_text(move: Move) -> str:
    """the target `hyp_panic` moved from `.text.hyp_panic` to `.text.unlikely.hyp_panic` (why)."""
    text = f"the {move.role} `{move.symbol}` moved from `{move.old_section}` to `{move.new_section}`"
    if move.cause is None:
        return text
    spelled = f": attribute `{move.attribute}` at {display_path(move.where[0])}:{move.where[1]}" if move.where else ""
    return f"{text} ({move.cause}{spelled})"


def _change_lines(change: Change, kind: str) -> list[str]:
    old, new = change.old, change.new
    where = new.site.location
    lines = [f"{change.key}" + (f"  ({display_path(where.file)}:{where.line})" if where else ""),
             f"  distance {old.distance} → {new.distance} ({_bytes(change.change)}): {_state(old)} → {_state(new)} "
             f"of {new.kind.reach_text}"]
    (old_count, old_bytes), (new_count, new_bytes) = change.between
    lines.append(f"  between site and target: {old_count} {kind}s ({old_bytes} B) in OLD, "
                 f"{new_count} ({new_bytes} B) in NEW")
    lines += [f"  {move_text(move)}" for move in change.moves]
    for contribution in change.contributions[:SHOWN]:
        lines.append(f"  {_bytes(contribution.bytes)}: {_unit(contribution)}")
        lines += [f"      {region_text(region)}" for region in contribution.inside[:SHOWN_REGIONS]]
        if len(contribution.inside) > SHOWN_REGIONS:
            lines.append(f"      … {len(contribution.inside) - SHOWN_REGIONS} more regions")
    rest = change.contributions[SHOWN:]
    if rest:
        lines.append(f"  {_bytes(sum(c.bytes for c in rest))}: {len(rest)} more contributions "
                     "(--format json lists them)")
    lines.append(f"  = {_bytes(sum(c.bytes for c in change.contributions))}")
    return lines


def diff_text(diff: Diff) -> str:
    old, new = diff.old.analysis.placement, diff.new.analysis.placement
    lines = [f"reachls diff: OLD {display_path(str(diff.old.inputs.artefact))} (placed by {old.placed_by}) → NEW "
             f"{display_path(str(diff.new.inputs.artefact))} (placed by {new.placed_by}): "
             f"{len(diff.changes)} references changed "
             f"distance, of {diff.matched} matched; {len(diff.only_old)} only in OLD, {len(diff.only_new)} only in NEW"]
    for side, records in (("OLD", diff.only_old), ("NEW", diff.only_new)):
        if records:
            lines += ["", f"only in {side}:"]
            lines += [f"  {record.status.value:<8} {record.site_key}  distance {record.distance}" for record in records]
    for change in diff.changes:
        lines += ["", *_change_lines(change, diff.unit_kind)]
    if not diff.changes:
        lines += ["", "no reported reference changed distance"]
    return printable("\n".join(lines) + "\n")


def _side_json(side: Side | None) -> dict[str, Any] | None:
    return None if side is None else {"role": side.role, "size": side.size, "bytes": side.share}


def _change_json(change: Change) -> dict[str, Any]:
    def state(record: ReachRecord, between: tuple[int, int]) -> dict[str, Any]:
        return {"distance": record.distance, "status": record.status.value, "usage": round(record.usage, 6),
                "site_address": record.site.address, "target_address": record.target.address,
                "site_section": record.site.section, "target_section": record.target.section,
                "between": {"units": between[0], "bytes": between[1]}}

    where = change.new.site.location
    return {"site": {"function": change.key.function, "offset": change.key.offset,
                     "source": None if where is None else {"file": where.file, "line": where.line}},
            "type": change.key.relocation, "target": change.key.target,
            "old": state(change.old, change.between[0]), "new": state(change.new, change.between[1]),
            "change": change.change,
            "moves": [{"role": m.role, "symbol": m.symbol, "old_section": m.old_section, "new_section": m.new_section,
                       "cause": m.cause, "attribute": m.attribute,
                       "declaration": None if m.where is None else {"file": m.where[0], "line": m.where[1]}}
                      for m in change.moves],
            "contributions": [{"bytes": c.bytes, "what": c.what, "name": c.name, "symbol": c.symbol, "file": c.file,
                               "summary": c.summary, "old": _side_json(c.old), "new": _side_json(c.new),
                               "inside": [{"bytes": r.bytes, "after": r.after, "before": r.before,
                                           "new_symbols": list(r.new_symbols), "gone_symbols": list(r.gone_symbols),
                                           "file": r.file} for r in c.inside]}
                              for c in change.contributions]}


def diff_json(diff: Diff) -> str:
    document = {"schema": JSON_SCHEMA, "old": str(diff.old.inputs.artefact), "new": str(diff.new.inputs.artefact),
                "units": diff.unit_kind, "matched": diff.matched,
                "only_old": [record.to_json() for record in diff.only_old],
                "only_new": [record.to_json() for record in diff.only_new]}
    return json_with_rows(document, "changes", [json.dumps(_change_json(change)) for change in diff.changes])
