"""A scan against an earlier one: each reference matched to its counterpart, and the CI gate on it.

The earlier scan is a JSON report (`reachls scan --format json`) or a build dir / ELF / linker log
scanned again. References are matched by `SiteKey` (enclosing function + offset in it, relocation
type, target symbol), which survives a rebuild where addresses do not. Two references may share a
key (two static functions of one name); each key's references are then paired in the order of
their site (input section, offset), and what one side has more of is new or gone.

A reference's change: `new` (no counterpart), `gone` (the counterpart is not there any more),
`worse` / `better` (a worse or better status; with the same status, less or more headroom), `same`.
Both scans hold every checked reference, ok ones too (`--all`), so a reference that became ok
is `better`, never `gone`, and one that stopped being ok is `worse`, never `new`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import ReachlsError
from .pipeline import ScanOptions, ScanResult, scan
from .record import Formula, Provenance, ReachRecord, RelocKind, Site, SiteKey, SourceLocation, Status, Target


class Change(str, Enum):
    NEW = "new"
    WORSE = "worse"
    BETTER = "better"
    SAME = "same"
    GONE = "gone"

    @property
    def sarif_state(self) -> str:
        """SARIF's `baselineState` for a result of this change."""
        return {"new": "new", "same": "unchanged", "gone": "absent"}.get(self.value, "updated")


@dataclass(frozen=True)
class Baseline:
    """The earlier scan: where it was read from, its records, and its unchecked references.
    `complete` is false for a JSON report written without `--all` (its ok references are not in it)."""

    source: str
    records: list[ReachRecord]
    unresolved: int
    complete: bool


@dataclass(frozen=True)
class Pair:
    """A reference now and in the baseline (either None when it has no counterpart)."""

    now: ReachRecord | None
    before: ReachRecord | None
    change: Change


@dataclass
class Comparison:
    """Every reference of both scans, paired: those of the scan now in its order, then the gone ones."""

    baseline: Baseline
    pairs: list[Pair]
    _by_record: dict[int, Pair] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_record = {id(pair.now): pair for pair in self.pairs if pair.now is not None}

    def of(self, record: ReachRecord) -> Pair:
        """The pair of a record of the scan now."""
        return self._by_record[id(record)]

    def counts(self) -> dict[Change, int]:
        """How many references of each change, among those either scan reports (not ok)."""
        counts = dict.fromkeys(Change, 0)
        for pair in self.pairs:
            if any(record is not None and record.status is not Status.OK for record in (pair.now, pair.before)):
                counts[pair.change] += 1
        return counts

    def summary(self) -> str:
        """`baseline OLD: 1 new, 3 worse, …` over what either scan reports."""
        counts = self.counts()
        partial = "" if self.baseline.complete else (" (the baseline was written without --all: a reference it "
                                                      "had as ok counts as new)")
        return (f"baseline {self.baseline.source}: "
                + ", ".join(f"{n} {change.value}" for change, n in counts.items()) + partial)

    def no_longer_reported(self) -> list[Pair]:
        """References the baseline reported that are gone, or ok now: what a report no longer shows."""
        return [pair for pair in self.pairs if pair.before is not None and pair.before.status is not Status.OK
                and (pair.now is None or pair.now.status is Status.OK)]

    def tag(self, record: ReachRecord) -> str:
        """A record's change in a few words: `new`, `same`, `worse: was fragile, 28 %`."""
        pair = self.of(record)
        before = pair.before
        if before is None or pair.change is Change.SAME:
            return pair.change.value
        usage = "" if before.usage is None else f", {before.usage * 100:.0f} %"
        return f"{pair.change.value}: was {before.status.value}{usage}"

    def json_summary(self) -> dict[str, Any]:
        """The JSON report's top-level `baseline` member: source, counts, what is no longer reported."""
        return {"source": self.baseline.source, "complete": self.baseline.complete,
                "unresolved": self.baseline.unresolved,
                "counts": {change.value: n for change, n in self.counts().items()},
                "no_longer_reported": [{**pair_json(pair), "record": pair.before.to_json()}
                                       for pair in self.no_longer_reported()]}


def pair_json(pair: Pair) -> dict[str, Any]:
    """A pair's change in JSON: the change, the baseline's figures, and the status now (None: gone)."""
    before = pair.before
    usage = None if before is None else before.usage
    earlier = None if before is None else {"status": before.status.value, "distance": before.distance,
                                           "usage": round(usage, 6) if usage is not None and math.isfinite(usage)
                                           else None, "headroom": before.headroom}
    return {"change": pair.change.value, "before": earlier, "now": pair.now and pair.now.status.value}


def change_of(now: ReachRecord, before: ReachRecord) -> Change:
    """Worse or better by status first, then by headroom (bytes left to the bound on its side)."""
    if now.status is not before.status:
        return Change.WORSE if now.status.rank < before.status.rank else Change.BETTER
    if now.headroom is None or before.headroom is None or now.headroom == before.headroom:
        return Change.SAME
    return Change.WORSE if now.headroom < before.headroom else Change.BETTER


def _site_order(record: ReachRecord) -> tuple[str, int]:
    return record.site.section, record.site.offset


def compare(records: list[ReachRecord], baseline: Baseline) -> Comparison:
    """Pair each record with its baseline counterpart by `SiteKey`, equal keys in site order."""
    earlier: dict[SiteKey, list[ReachRecord]] = defaultdict(list)
    for record in baseline.records:
        earlier[record.site_key].append(record)
    current: dict[SiteKey, list[ReachRecord]] = defaultdict(list)
    for record in records:
        current[record.site_key].append(record)
    partner: dict[int, ReachRecord] = {}
    for key, group in current.items():
        for now, before in zip(sorted(group, key=_site_order), sorted(earlier.get(key, ()), key=_site_order)):
            partner[id(now)] = before
    pairs = [Pair(record, partner[id(record)], change_of(record, partner[id(record)])) if id(record) in partner
             else Pair(record, None, Change.NEW) for record in records]
    for key, group in earlier.items():
        gone = sorted(group, key=_site_order)[len(current.get(key, ())):]
        pairs += [Pair(None, record, Change.GONE) for record in gone]
    return Comparison(baseline, pairs)


def load_baseline(path: Path, options: ScanOptions) -> Baseline:
    """An earlier JSON report, or anything `scan` reads (scanned with every reference, ok ones too)."""
    if path.is_file() and _looks_like_json(path):
        return _report_baseline(path)
    result = scan(path, _with_ok(options))
    return Baseline(str(path), result.analysis.records, result.analysis.unresolved, complete=True)


def _with_ok(options: ScanOptions) -> ScanOptions:
    return dataclasses.replace(options, include_ok=True)


def scan_against(path: Path, baseline: Path, options: ScanOptions) -> tuple[ScanResult, Comparison]:
    """Scan `path` and compare it with `baseline`. Both are scanned with their ok references (what
    a reference that became ok, or stopped being ok, is matched to); the result keeps them only
    when `options.include_ok` asks for them."""
    earlier = load_baseline(baseline, options)
    result = scan(path, _with_ok(options))
    comparison = compare(result.analysis.records, earlier)
    if not options.include_ok:
        reported = [r for r in result.analysis.records if r.status is not Status.OK]
        result = dataclasses.replace(result, analysis=dataclasses.replace(result.analysis, records=reported))
    return result, comparison


def _looks_like_json(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(64).lstrip()[:1] == b"{"
    except OSError as exc:
        raise ReachlsError(f"cannot read: {exc.strerror or exc}", str(path)) from None


def _report_baseline(path: Path) -> Baseline:
    try:
        document = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except (OSError, ValueError) as exc:
        raise ReachlsError(f"not a reachls JSON report: {exc}", str(path)) from None
    if not isinstance(document, dict) or document.get("schema") != 1 or not isinstance(document.get("records"), list):
        raise ReachlsError("not a reachls JSON report (schema 1 with records)", str(path))
    records = []
    for index, row in enumerate(document["records"]):
        try:
            records.append(record_from_json(row))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReachlsError(f"record {index} cannot be read ({type(exc).__name__}: {exc})", str(path)) from None
    counts = document.get("counts") or {}
    has_ok = any(r.status is Status.OK for r in records)
    complete = has_ok or not counts.get(Status.OK.value)
    return Baseline(str(path), records, int(document.get("unresolved") or 0), complete)


def record_from_json(row: dict[str, Any]) -> ReachRecord:
    """A record from its JSON form (`ReachRecord.to_json`): the inverse, but for section indices
    (never in the JSON; nothing downstream of a report needs them)."""
    kind, site, target, provenance = row["kind"], row["site"], row["target"], row["provenance"]
    lo, hi = kind["range"]
    return ReachRecord(
        kind=RelocKind(kind["arch"], kind["type"], int(kind["number"]), int(lo), int(hi), int(kind["alignment"]),
                       bool(kind["thunk"]), Formula(kind["formula"]), int(kind["place_offset"]),
                       int(kind["place_alignment"])),
        site=Site(site["section"], None, int(site["offset"]), _optional_int(site["address"]), site["symbol"],
                  _optional_int(site["symbol_offset"]), site["output_section"], site["instruction"],
                  _location(site["source"]), site.get("object")),
        target=Target(target["symbol"], target["section"], None, _optional_int(target["offset"]),
                      _optional_int(target["address"]), _optional_int(target["addend"]), target["output_section"],
                      _location(target["source"])),
        distance=_optional_int(row["distance"]),
        status=Status(row["status"]),
        provenance=Provenance(provenance["artefact"], float(provenance["artefact_mtime"]), provenance["mode"],
                              provenance["engine"], provenance.get("linker")),
        verified=bool(row.get("verified", True)),
    )


def _optional_int(value: Any) -> int | None:
    if value is not None and not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _location(source: dict[str, Any] | None) -> SourceLocation | None:
    return None if source is None else SourceLocation(source["file"], int(source["line"]), int(source["column"]))


# --fail-on: a status (any reference of it or worse), new-STATUS (one the baseline did not have at
# it or worse), or worse-than=AMOUNT (one that came closer to its limit than AMOUNT since the baseline).
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)%|(\d+)(KiB|MiB)?")
_UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20}
FAIL_STATUSES = {"overflow": Status.OVERFLOW, "veneer": Status.VENEER, "at-risk": Status.AT_RISK}
FAIL_ON_FORMS = ("overflow", "veneer", "at-risk", "new-overflow", "new-veneer", "new-at-risk",
                 "worse-than=N% (of its reach)", "worse-than=BYTES[KiB|MiB]")


@dataclass(frozen=True)
class FailOn:
    """One `--fail-on` condition. `status`: a reference of this status or worse fails; with `new`,
    only one the baseline did not have at this status or worse. `points` / `nbytes`: a reference
    reported now that came more than that much (percentage points of its reach, or bytes of
    headroom) closer to its limit than its baseline counterpart; one the baseline did not have
    fails when it is at-risk or worse."""

    text: str
    status: Status | None = None
    new: bool = False
    points: float | None = None
    nbytes: int | None = None

    @property
    def needs_baseline(self) -> bool:
        return self.new or self.status is None

    def fails(self, record: ReachRecord, comparison: Comparison | None) -> bool:
        if self.status is not None and not self.new:
            return record.status.rank <= self.status.rank
        pair = comparison.of(record)
        before = pair.before
        if self.new:
            return record.status.rank <= self.status.rank and (before is None or before.status.rank > self.status.rank)
        if record.status is Status.OK:
            return False
        if before is None:
            return record.status.rank <= Status.AT_RISK.rank
        if self.points is not None:
            return None not in (record.usage, before.usage) and (record.usage - before.usage) * 100 > self.points
        return None not in (record.headroom, before.headroom) and before.headroom - record.headroom > self.nbytes


def parse_fail_on(text: str) -> FailOn:
    """`--fail-on`'s value (argparse type): one of `FAIL_ON_FORMS`."""
    name = text.removeprefix("new-")
    if name in FAIL_STATUSES:
        return FailOn(text, FAIL_STATUSES[name], new=text.startswith("new-"))
    amount = _AMOUNT.fullmatch(text.removeprefix("worse-than=")) if text.startswith("worse-than=") else None
    if amount is None:
        raise ValueError(f"--fail-on takes one of: {', '.join(FAIL_ON_FORMS)}")
    if amount[1] is not None:
        return FailOn(text, points=float(amount[1]))
    return FailOn(text, nbytes=int(amount[2]) * _UNITS[amount[3]])


def failing(records: list[ReachRecord], conditions: list[FailOn], comparison: Comparison | None) -> list[ReachRecord]:
    """The records that fail any of the conditions."""
    return [r for r in records if any(c.fails(r, comparison) for c in conditions)]


def fails_unchecked(result: ScanResult, conditions: list[FailOn], comparison: Comparison | None,
                    allow_unchecked: bool) -> bool:
    """Whether the unchecked references fail the scan: with a status condition any, with only
    baseline ones more than the baseline had; never with `--allow-unchecked`."""
    if allow_unchecked or not conditions:
        return False
    unresolved = result.analysis.unresolved
    if any(not c.needs_baseline for c in conditions):
        return unresolved > 0
    return unresolved > comparison.baseline.unresolved
