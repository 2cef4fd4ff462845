"""`--format sarif`: a scan as SARIF 2.1.0, the format code-scanning forges read.

One result per reported record. Its rule is its status and relocation type (`overflow/R_AARCH64_CONDBR19`),
with help text; its location the site's statement (the source parser's span on the DWARF line,
else the DWARF line and column), the enclosing function as logical location; the target is a
related location; distance, range, usage and headroom are properties; the assembly rewrites and
the C/Makefile fixes the editor offers (`findings.source_findings`) are SARIF `fixes`. Paths are
relative to a source root named in `originalUriBaseIds` (`SRCROOT`), so a forge places them in
its checkout. `partialFingerprints` carries the `SiteKey`, the identity that survives a rebuild;
with a baseline, `baselineState` says what changed, and references no longer reported are
results of the baseline's scan, `absent`.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from . import __version__
from .baseline import Comparison, Pair, pair_json
from .findings import Finding, PathMapper, source_findings
from .fixes import Fix
from .messages import STATUS_PHRASES, describe, linker_site, unchecked_note
from .pipeline import ScanResult
from .record import ReachRecord, SourceLocation, Status
from .report import printable_json

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
ROOT_ID = "SRCROOT"
FINGERPRINT = "reachlsSiteKey/v1"
LEVELS = {Status.OVERFLOW: "error", Status.VENEER: "note", Status.AT_RISK: "warning", Status.FRAGILE: "note",
          Status.OK: "none"}
STATUS_HELP = {
    Status.OVERFLOW: "The distance the linker range-checks is outside the reach of the relocation, and no linker "
                     "bridges this type with a veneer: the final link fails (ld.lld: \"relocation … out of range\").",
    Status.VENEER: "The target is out of the instruction's reach; the linker bridges the branch with a veneer "
                   "(an extra jump), which costs a few instructions and moves with the layout.",
    Status.AT_RISK: "In reach, but the distance uses at least the threshold (default 75 %) of the reach: a little "
                    "more code between site and target and the link fails.",
    Status.FRAGILE: "In reach, to a target in another input section, already using at least 25 % of the reach: "
                    "link order or configuration can move it out of reach.",
    Status.OK: "In reach.",
}


def default_source_root(result: ScanResult) -> Path:
    """The tree the build came from: the kernel tree (the nearest directory with include/linux) of
    the first site that DWARF names, else the directory all sites and targets share, else the
    current directory."""
    files = [loc.file for r in result.analysis.records for loc in (r.site.location, r.target.location) if loc]
    mapper = PathMapper()
    for file in files:
        root = mapper.kernel_root(Path(file))
        if root is not None:
            return root
    absolute = [str(Path(f).parent) for f in files if Path(f).is_absolute()]
    if absolute:
        common = Path(os.path.commonpath(absolute))
        if common != Path(common.anchor):
            return common
    return Path.cwd()


class _Locations:
    """Paths as SARIF artifact locations: under the source root as a relative URI against `SRCROOT`,
    elsewhere as an absolute file URI. DWARF paths are mapped onto the source root's files first,
    as the editor maps them onto a workspace."""

    def __init__(self, root: Path, mapper: PathMapper) -> None:
        self.root = root.resolve()
        self.mapper = mapper

    def artifact(self, path: Path | str) -> dict[str, Any]:
        path = Path(path)
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return {"uri": path.as_uri()}
        return {"uri": urllib.parse.quote_from_bytes(os.fsencode(relative.as_posix())), "uriBaseId": ROOT_ID}

    def source(self, location: SourceLocation) -> tuple[dict[str, Any], dict[str, Any]]:
        """Artifact location and region of a DWARF location (mapped onto the source root when it can be)."""
        region: dict[str, Any] = {"startLine": location.line}
        if location.column:
            region["startColumn"] = location.column
        return self.artifact(self.mapper(location.file) or location.file), region


def sarif_report(result: ScanResult, source_root: Path, comparison: Comparison | None = None) -> str:
    """The scan as one SARIF 2.1.0 log with one run."""
    mapper = PathMapper(roots=(source_root.resolve(),))
    records = result.analysis.records
    findings = source_findings(records, result.arch, mapper)
    site_findings = {id(f.records[0]): f for found in findings.by_path.values() for f in found if f.role == "site"}
    locations = _Locations(source_root, mapper)
    emitted: list[tuple[ReachRecord, Pair | None]] = [
        (record, comparison.of(record) if comparison else None) for record in records]
    if comparison is not None:
        emitted += [(pair.before, pair) for pair in comparison.no_longer_reported()]
    rules = _rules(result, [record for record, _ in emitted])
    occurrences: Counter = Counter()
    results = []
    for record, pair in emitted:
        key = str(record.site_key)
        occurrences[key] += 1
        fingerprint = key if occurrences[key] == 1 else f"{key} #{occurrences[key]}"
        results.append(_result(record, rules, locations, site_findings.get(id(record)), fingerprint, pair))
    notes = [note for note in (unchecked_note(result.analysis), *result.analysis.notes, *result.notes) if note]
    if comparison is not None:
        notes.append(comparison.summary())
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "reachls", "version": __version__, "semanticVersion": __version__,
                            "rules": [rule for rule, _ in rules.values()]}},
        "originalUriBaseIds": {ROOT_ID: {"uri": source_root.resolve().as_uri() + "/",
                                         "description": {"text": "The source tree the build came from."}}},
        "columnKind": "unicodeCodePoints",
        "invocations": [{"executionSuccessful": True,
                         "toolExecutionNotifications": [{"level": "note", "message": {"text": note}}
                                                        for note in notes]}],
        "results": results,
        "properties": {"artefact": str(result.inputs.artefact), "arch": result.arch.name,
                       "engine": result.analysis.placement.engine, "linker": result.analysis.placement.linker,
                       "counts": {s.value: result.analysis.counts.get(s, 0) for s in Status},
                       "unresolved": result.analysis.unresolved},
    }
    document = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return printable_json(json.dumps(document, indent=2) + "\n")


def _rule_id(record: ReachRecord) -> str:
    return f"{record.status.value}/{record.kind.name}"


def _rules(result: ScanResult, records: list[ReachRecord]) -> dict[str, tuple[dict[str, Any], int]]:
    """Rule id → (rule, index) for each status × relocation type among `records`, worst status first."""
    by_rule: dict[str, list[ReachRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.status.rank, r.kind.name)):
        by_rule[_rule_id(record)].append(record)
    rules = {}
    for index, (rule_id, group) in enumerate(by_rule.items()):
        kind, status = group[0].kind, group[0].status
        hints = [h for h in dict.fromkeys(result.arch.fix_hint(kind, r.site.instruction) for r in group) if h]
        reach = (f"{kind.name} ({kind.short_name}) reaches {kind.reach_text}: the linker checks the value "
                 f"[{kind.lo}, {kind.hi}]" + (f", a multiple of {kind.alignment}" if kind.alignment > 1 else "")
                 + (", and bridges it with a veneer when out of range" if kind.thunk else ""))
        fix = f"Fix: {'; '.join(hints)}." if hints and status is not Status.OK else ""
        text = " ".join(part for part in (STATUS_HELP[status], reach + ".", fix) if part)
        rules[rule_id] = ({
            "id": rule_id,
            "name": "".join(word.capitalize() for word in f"{status.value}-{kind.short_name}".replace("_", "-").split("-")),
            "shortDescription": {"text": f"{kind.short_name} reference {STATUS_PHRASES[status]}"},
            "fullDescription": {"text": f"{STATUS_HELP[status]} {reach}."},
            "help": {"text": text},
            "defaultConfiguration": {"level": LEVELS[status]},
            "properties": {"tags": ["reach", status.value, kind.arch], "relocation": kind.name,
                           "range": [kind.lo, kind.hi], "veneer": kind.thunk},
        }, index)
    return rules


def _result(record: ReachRecord, rules: dict[str, tuple[dict[str, Any], int]], locations: _Locations,
            finding: Finding | None, fingerprint: str, pair: Pair | None) -> dict[str, Any]:
    """`pair`: with a baseline, the record's pair; a record of the baseline's (`pair.before`) is
    no longer reported: `absent`, its properties saying what it is now."""
    rule_id = _rule_id(record)
    related = _related(record, locations, finding)
    message = describe(record) + (f" (target: [{record.target.symbol}](1))" if related else "")
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": rules[rule_id][1],
        "level": LEVELS[record.status],
        "message": {"text": message},
        "locations": [_site_location(record, locations, finding)],
        "partialFingerprints": {FINGERPRINT: fingerprint},
        "properties": _properties(record),
    }
    if related:
        result["relatedLocations"] = related
    if finding is not None and finding.fixes:
        result["fixes"] = [_fix(fix, locations) for fix in finding.fixes]
    if pair is not None:
        absent = record is pair.before
        result["baselineState"] = "absent" if absent else pair.change.sarif_state
        result["properties"]["baseline"] = pair_json(pair)
    return result


def _site_location(record: ReachRecord, locations: _Locations, finding: Finding | None) -> dict[str, Any]:
    """The statement the finding is on (exact columns), else the DWARF line, else the artefact's address."""
    site = record.site
    location: dict[str, Any] = {}
    if finding is not None:
        span = finding.span
        region = {"startLine": span.line, "startColumn": span.start + 1}
        if span.end > span.start:
            region["endColumn"] = span.end + 1
        location["physicalLocation"] = {"artifactLocation": locations.artifact(finding.path), "region": region}
    elif site.location is not None:
        artifact, region = locations.source(site.location)
        location["physicalLocation"] = {"artifactLocation": artifact, "region": region}
    else:
        address: dict[str, Any] = {"kind": "instruction", "name": linker_site(record)}
        if site.address is not None:
            address["absoluteAddress"] = site.address
        location["physicalLocation"] = {"artifactLocation": locations.artifact(record.provenance.artefact),
                                        "address": address}
    if site.symbol is not None:
        name = site.symbol if site.symbol_offset is None else f"{site.symbol}+{site.symbol_offset:#x}"
        location["logicalLocations"] = [{"name": site.symbol, "fullyQualifiedName": name, "kind": "function"}]
    return location


def _related(record: ReachRecord, locations: _Locations, finding: Finding | None) -> list[dict[str, Any]]:
    """The target: the line the editor links to (a C function's name), else its DWARF line."""
    target = record.target
    text = f"{target.symbol} is here, in {target.section or 'an absolute symbol'}"
    if finding is not None and finding.related:
        path, line, text = finding.related[0]
        physical = {"artifactLocation": locations.artifact(path), "region": {"startLine": line}}
    elif target.location is not None:
        artifact, region = locations.source(target.location)
        physical = {"artifactLocation": artifact, "region": region}
    else:
        return []
    return [{"id": 1, "physicalLocation": physical, "message": {"text": text},
             "logicalLocations": [{"name": target.symbol, "kind": "function"}]}]


def _properties(record: ReachRecord) -> dict[str, Any]:
    usage = record.usage
    if usage is not None and not math.isfinite(usage):  # a step back of a forward-only reach: no JSON number
        usage = None
    return {"status": record.status.value, "relocation": record.kind.name, "instruction": record.site.instruction,
            "distance": record.distance, "range": [record.kind.lo, record.kind.hi],
            "usage": None if usage is None else round(usage, 6), "headroom": record.headroom,
            "site": linker_site(record), "target": record.target.symbol, "targetSection": record.target.section,
            "verified": record.verified, "siteKey": str(record.site_key)}


def _fix(fix: Fix, locations: _Locations) -> dict[str, Any]:
    """A fix's text edits, grouped per file in their order, as SARIF replacements."""
    by_path: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    for edit in fix.edits:
        region = {"startLine": edit.span.line, "startColumn": edit.span.start + 1, "endColumn": edit.span.end + 1}
        by_path[edit.path].append({"deletedRegion": region, "insertedContent": {"text": edit.new_text}})
    return {"description": {"text": fix.title},
            "artifactChanges": [{"artifactLocation": locations.artifact(path), "replacements": replacements}
                                for path, replacements in by_path.items()]}
