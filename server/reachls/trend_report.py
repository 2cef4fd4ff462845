"""The words and tables of headroom history: `reachls history` (text and JSON) and the hover's trend line.

The figures come from `history.SiteTrend`; this only says them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .history import Build, SiteTrend
from .messages import built_at
from .report import printable

MINUS = "\u2212"


def signed_size(nbytes: float) -> str:
    """A headroom or a change of it as people read it: `212 KiB`, `−38 KiB`, `+512 B`."""
    sign = MINUS if nbytes < 0 else ""
    magnitude = abs(nbytes)
    text = f"{magnitude:.0f} B" if magnitude < 1024 else f"{magnitude / 1024:.0f} KiB"
    return sign + text


def _builds_phrase(count: int) -> str:
    return f"{count} build" + ("" if count == 1 else "s")


def overflow_phrase(trend: SiteTrend) -> str | None:
    """`out of range now`, `out of range in 2 builds at this rate`, or None when it is not shrinking."""
    remaining = trend.builds_to_overflow
    if remaining is None:
        return None
    return "out of range now" if remaining == 0 else f"out of range in {_builds_phrase(remaining)} at this rate"


def trend_phrase(trend: SiteTrend) -> str | None:
    """One line for a hover: `headroom 212 KiB, −38 KiB over the last 3 builds; out of range in 5 builds
    at this rate`; None without at least two recorded figures."""
    change, headroom = trend.change, trend.headroom
    if change is None or headroom is None:
        return None
    sign = "+" if change > 0 else ""
    line = f"headroom {signed_size(headroom)}, {sign}{signed_size(change)} over the last {_builds_phrase(trend.span)}"
    ending = overflow_phrase(trend)
    return f"{line}; {ending}" if ending else line


def _build_line(build: Build) -> str:
    commit = f"  git {build.git_commit[:12]}" if build.git_commit else ""
    return f"  #{build.number}  artefact written {built_at(build.artefact_mtime)}  {build.identity[:23]}{commit}"


def _rate(trend: SiteTrend) -> str:
    rate = trend.rate
    if rate is None:
        return "one figure"
    sign = "+" if rate > 0 else MINUS if rate < 0 else ""
    return f"{sign}{abs(rate):.0f} B per build"


def history_text(build_dir: Path, builds: tuple[Build, ...], trends: list[SiteTrend]) -> str:
    """Each reference's headroom (bytes) over the builds, oldest first, its rate per build and how
    many builds until it is out of range at that rate."""
    lines = [f"reachls history of {build_dir}: {_builds_phrase(len(builds))} recorded, oldest first", *map(_build_line, builds)]
    if not trends:
        lines.append("no reference recorded in the newest build")
    for trend in trends:
        figures = " → ".join("—" if h is None else str(h) for h in trend.headrooms)
        ending = overflow_phrase(trend)
        lines.append(f"{trend.key}: headroom {figures} B; {_rate(trend)}" + (f"; {ending}" if ending else ""))
    return printable("\n".join(lines) + "\n")


def history_json(build_dir: Path, builds: tuple[Build, ...], trends: list[SiteTrend]) -> str:
    document: dict[str, Any] = {
        "build_dir": str(build_dir),
        "builds": [{"number": b.number, "identity": b.identity, "artefact_mtime": b.artefact_mtime,
                    "git_commit": b.git_commit, "recorded_at": b.recorded_at} for b in builds],
        "sites": [{"function": t.key.function, "offset": t.key.offset, "relocation": t.key.relocation,
                   "target": t.key.target, "ordinal": t.ordinal, "headroom": list(t.headrooms),
                   "status": list(t.statuses), "rate": t.rate, "builds_to_overflow": t.builds_to_overflow}
                  for t in trends],
    }
    return printable(json.dumps(document, indent=1)) + "\n"
