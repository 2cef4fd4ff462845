"""The hyp-lto example, built for real: reachls against ld.lld, llvm-objdump and GNU addr2line.

Every expected value comes from the toolchain: the overflows ld.lld prints with
--noinhibit-exec, the addresses llvm-nm and llvm-objdump read from the linked image, the lines
GNU addr2line gives for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from reachls.findings import PathMapper, source_findings
from reachls.pipeline import ScanOptions, function_layout, scan
from reachls.record import Status
from toolchain import EXAMPLE_VARIANTS, gnu_addr2line, lld_overflows, nm_symbols, objdump_targets

ENGINES = ("relink", "model")


@pytest.fixture(scope="module")
def builds(example_builds: dict[str, Path]) -> dict[str, Path]:
    return example_builds


def _image(build: Path) -> Path:
    return build / "vmlinux.noinhibit"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", EXAMPLE_VARIANTS)
def test_overflows_are_exactly_what_lld_prints(builds, variant, engine):
    build = builds[variant]
    expected = {(e.type, e.distance, e.symbol) for e in lld_overflows((build / "noinhibit.log").read_text())}
    result = scan(build, ScanOptions(engine=engine))
    found = {(r.kind.name, r.distance, r.target.symbol) for r in result.analysis.records if r.status is Status.OVERFLOW}
    assert found == expected
    assert all(r.provenance.engine == engine for r in result.analysis.records)
    if variant == "overflow":
        assert {t for t, _, _ in expected} == {"R_AARCH64_CONDBR19", "R_AARCH64_ADR_PREL_LO21"}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", EXAMPLE_VARIANTS)
def test_every_distance_matches_the_linked_instruction(builds, variant, engine):
    """Each record's site holds that instruction in the linked image, and it reaches that target."""
    decoded = objdump_targets(_image(builds[variant]))
    result = scan(builds[variant], ScanOptions(engine=engine, include_ok=True))
    checked = 0
    for record in result.analysis.records:
        if record.site.instruction is None or record.status is Status.OVERFLOW:
            continue  # data words; and out-of-range fields hold whatever the linker truncated
        mnemonic, decoded_target = decoded[record.site.address]
        if (mnemonic, record.site.instruction) == ("nop", "adrp"):
            # ld.lld relaxes an in-range adrp+add into nop+adr: the adr then holds the full target
            if decoded[record.site.address + 4][0] == "adr":
                assert decoded[record.site.address + 4] == ("adr", record.target.address), record
            continue
        assert mnemonic == record.site.instruction
        if decoded_target is None:
            continue
        expected = record.target.address & ~0xFFF if mnemonic == "adrp" else record.target.address
        assert decoded_target == expected, record
        assert record.distance == (decoded_target - record.site.address if mnemonic != "adrp"
                                   else decoded_target - (record.site.address & ~0xFFF))
        checked += 1
    assert checked >= 10


def test_at_risk_variant_reports_the_hyp_panic_references(builds):
    result = scan(builds["at-risk"], ScanOptions(engine="relink"))
    at_risk = [r for r in result.analysis.records if r.status is Status.AT_RISK]
    assert {r.target.symbol for r in at_risk} == {"hyp_panic"}
    assert all(0.75 <= r.usage < 1 for r in at_risk)
    assert not [r for r in scan(builds["safe"]).analysis.records if r.status in (Status.OVERFLOW, Status.AT_RISK)]


@pytest.mark.parametrize("variant", EXAMPLE_VARIANTS)
def test_model_places_every_function_where_the_linker_does(builds, variant):
    image = _image(builds[variant])
    linked = nm_symbols(image)
    with open(image, "rb") as stream:
        starts = {s.name: s["sh_addr"] for s in ELFFile(stream).iter_sections()}
    for engine in ENGINES:
        placement, functions = function_layout(builds[variant], ScanOptions(engine=engine))
        assert len(functions) > 20
        for function in functions:
            assert function.address == linked[function.name], (engine, function)
            assert function.output_offset == function.address - starts[function.output_section], (engine, function)


def test_every_site_line_equals_gnu_addr2line(builds):
    build = builds["overflow"]
    records = scan(build, ScanOptions(include_ok=True)).analysis.records
    assert any(r.site.symbol == "__guest_exit" for r in records), "the .subsection function is covered"
    answers = gnu_addr2line(_image(build), [r.site.address for r in records])
    for record, (file, line) in zip(records, answers):
        if line == 0:
            assert record.site.location is None, record
            continue
        assert record.site.location is not None, record
        assert (record.site.location.file, record.site.location.line) == (file, line), record


def test_target_functions_map_to_their_declaration(builds):
    records = scan(builds["overflow"]).analysis.records
    overflow = [r for r in records if r.status is Status.OVERFLOW]
    source = Path(overflow[0].target.location.file)
    assert source.name == "switch.c"
    line = source.read_text().splitlines()[overflow[0].target.location.line - 1]
    assert "hyp_panic(void)" in line


def test_cli_text_and_json(builds):
    build = builds["overflow"]
    cli = [sys.executable, "-m", "reachls.cli", "scan", str(build)]
    errors = lld_overflows((build / "noinhibit.log").read_text())
    relative = subprocess.run([*cli[:-1], build.name], capture_output=True, text=True, cwd=build.parent)
    assert relative.returncode == 0 and f"{len(errors)} overflow" in relative.stdout, relative.stderr
    text = subprocess.run(cli, capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    for error in errors:
        assert f"is out of reach: {error.distance} B" in text.stdout
    assert text.stdout.index("entry.S") < text.stdout.index("overflow ")
    failing = subprocess.run([*cli, "--fail-on", "overflow"], capture_output=True, text=True)
    assert failing.returncode == 1
    document = json.loads(subprocess.run([*cli, "--format", "json", "--all"], capture_output=True, text=True).stdout)
    assert document["schema"] == 1
    overflow = [r for r in document["records"] if r["status"] == "overflow"]
    assert sorted(r["distance"] for r in overflow) == sorted(e.distance for e in errors)
    assert document["counts"]["ok"] == sum(r["status"] == "ok" for r in document["records"])
    record = overflow[0]
    assert set(record) == {"kind", "site", "target", "distance", "usage", "headroom", "status", "provenance",
                           "verified"}
    assert record["verified"] is True
    assert record["kind"]["range"] == [errors[0].lo, errors[0].hi]


def test_layout_cli_answers_where_a_function_lands(builds):
    build = builds["overflow"]
    out = subprocess.run([sys.executable, "-m", "reachls.cli", "layout", str(build), "--symbol", "hyp_panic",
                          "--format", "json", "--engine", "model"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    functions = json.loads(out.stdout)["functions"]
    assert [f["name"] for f in functions] == ["hyp_panic"]
    assert functions[0]["address"] == nm_symbols(_image(build))["hyp_panic"]


def test_the_target_side_is_definite(builds):
    """The target's sentence follows ld.lld: "out of reach" with the number of errors ld.lld printed
    for the overflow build; "close to the limit" for the at-risk build, which ld.lld links without
    an error — the same references, the same code with less filler between them."""
    errors = lld_overflows((builds["overflow"] / "noinhibit.log").read_text())
    assert errors and lld_overflows((builds["at-risk"] / "noinhibit.log").read_text()) == []
    symbol = errors[0].symbol
    expected = {"overflow": f"{symbol} is out of reach of {len(errors)} references (overflow),",
                "at-risk": f"{symbol} is close to the limit of {len(errors)} references (at-risk),"}
    for variant, sentence in expected.items():
        result = scan(builds[variant])
        found = source_findings(result.analysis.records, result.arch, PathMapper((), (builds[variant].parent.parent,)))
        [target] = [f for items in found.by_path.values() for f in items if f.role == "target"]
        assert target.message.startswith(sentence), target.message
        assert ("close to" in target.message) == (variant == "at-risk")
