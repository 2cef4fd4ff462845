"""Linker-log mode against the real linkers: ld.lld's and GNU ld's logs of the example's failing link.

Every log here is real linker output (ld.lld's `build.log` and `noinhibit.log` of the example,
GNU ld's log of the same final link, GNU ld's log of a link missing an object); the two edited
forms are made from a real ld.lld line by quoting its symbol or dropping its function, the way
newer ld.lld and ld.lld without a function symbol print it. Expected values come from the
tests' own log parser (toolchain.py), from the relocatable-mode scan, and from the symbols of
GNU ld's own `--noinhibit-exec` image. A log copied alone (no objects at hand) must give back
exactly what the linker printed, read here with the tests' own regular expressions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import SERVER_COMMAND, referenced_lines, server_session, uri, wait_for
from reachls.pipeline import ScanOptions, scan
from reachls.record import Status
from toolchain import build_example, copy_example, final_link, lld_overflows, need, nm_symbols, run

GNU_LD = "aarch64-linux-gnu-ld"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """The overflow variant with its failing final link's `build.log` and `noinhibit.log` (both ld.lld)."""
    tree = copy_example(tmp_path_factory.mktemp("linklog"))
    build = build_example(tree, "overflow")
    run("make", "-s", "-C", tree, "VARIANT=overflow", "vmlinux", check=False)
    assert lld_overflows((build / "build.log").read_text()), "the overflow variant's final link fails"
    return build


@pytest.fixture(scope="module")
def gnu_log(build: Path) -> Path:
    """GNU ld running the build's own final link (same script, flags and vmlinux.o) instead of ld.lld."""
    need(GNU_LD)
    argv = [GNU_LD, *final_link(build)[1:]]
    argv[argv.index("-o") + 1] = "vmlinux.gnu"
    result = run(*argv, cwd=build, check=False)
    assert result.returncode != 0 and "relocation truncated to fit" in result.stderr, result.stderr
    assert "syntax error" not in result.stderr  # GNU ld accepts the example's linker script
    log = build / "gnu.log"
    log.write_text(result.stdout + result.stderr)
    # GNU ld's own layout, for checking the distances computed for its log
    run(*argv[:argv.index("-o")], "--noinhibit-exec", "-o", "vmlinux.gnu-noinhibit", "vmlinux.o", cwd=build,
        check=False)
    return log


def _overflows(result) -> list:
    return [r for r in result.analysis.records if r.status is Status.OVERFLOW]


def _findings(result) -> set[tuple[str, str, str, int, int]]:
    return {(r.kind.name, r.target.symbol, r.site.location.file, r.site.location.line, r.distance)
            for r in _overflows(result)}


@pytest.mark.parametrize("log", ["build.log", "noinhibit.log"])
def test_lld_log_gives_what_lld_printed_and_what_the_relocatable_mode_finds(build, log):
    expected = {(e.type, e.distance, e.symbol) for e in lld_overflows((build / log).read_text())}
    result = scan(build, ScanOptions(log=log))
    assert {(r.kind.name, r.distance, r.target.symbol) for r in _overflows(result)} == expected
    assert len(_overflows(result)) == len(expected) == len(result.analysis.records)
    assert all(r.provenance.mode == "log" and r.provenance.engine == "linker-log" for r in result.analysis.records)
    assert all(r.provenance.artefact == str(build / log) for r in result.analysis.records)
    assert _findings(result) == _findings(scan(build, ScanOptions(engine="relink")))
    assert all(Path(r.site.location.file).name == "entry.S" for r in _overflows(result))
    assert any("input sections" in note and "vmlinux.o" in note for note in result.notes)


def test_a_log_file_as_path_is_read_as_a_log(build):
    by_dir = scan(build, ScanOptions(log="noinhibit.log"))
    by_file = scan(build / "noinhibit.log")
    assert _findings(by_file) == _findings(by_dir)
    assert _findings(scan(build / "vmlinux.o", ScanOptions(log="noinhibit.log"))) == _findings(by_dir)
    assert scan(build).analysis.records[0].provenance.mode == "relocatable"  # no --log: vmlinux.o


def test_gnu_ld_log_gives_the_same_findings_as_lld(build, gnu_log):
    lld = scan(build / "build.log")
    gnu = scan(gnu_log)
    assert _findings(gnu) == _findings(lld)
    assert len(_overflows(gnu)) == len(lld_overflows((build / "build.log").read_text()))
    assert any("GNU ld prints no distance" in note for note in gnu.notes)
    # the computed distances are GNU ld's own: target minus site in the image it wrote
    symbols = nm_symbols(build / "vmlinux.gnu-noinhibit")
    for record in _overflows(gnu):
        assert record.kind.formula == "prel"
        site = symbols[record.site.symbol] + record.site.symbol_offset
        assert record.distance == symbols[record.target.symbol] - site, record


def test_newer_lld_forms_parse(build, tmp_path):
    """Newer ld.lld quotes the symbol (`references 'S'`); without an enclosing function it prints
    `OBJ:(SEC+0xOFF)`. Both are made from the real log's lines; `noinhibit.log` is the warning form."""
    real = (build / "build.log").read_text()
    assert "warning: " in (build / "noinhibit.log").read_text()
    quoted = re.sub(r"; references (\S+)$", r"; references '\1'", real, flags=re.M)
    no_function = re.sub(r":\(function [^:]+: ", ":(", real)
    assert quoted != real and no_function != real
    expected = _findings(scan(build / "build.log"))
    for name, text in (("quoted.log", quoted), ("nofunction.log", no_function)):
        (build / name).write_text(text)
        assert _findings(scan(build, ScanOptions(log=name))) == expected, name


def test_undefined_references_are_not_reach_problems(build, tmp_path):
    """GNU ld without switch.o: `undefined reference` errors, each followed by truncation noise."""
    need(GNU_LD)
    objects = ["arch/arm64/kernel/head.o", "arch/arm64/kvm/hyp/entry.o", "arch/arm64/kvm/hyp/fpsimd.o",
               *sorted(str(p) for p in (build.parent / "filler").rglob("filler_*.o")), "init/main.o"]
    flags = final_link(build)[1:-3]  # without `-o vmlinux vmlinux.o`
    result = run(GNU_LD, *flags, "-o", tmp_path / "undefined.img", *objects, cwd=build, check=False)
    text = result.stdout + result.stderr
    assert "undefined reference to `hyp_panic'" in text
    assert "relocation truncated to fit: R_AARCH64_JUMP26 against undefined symbol `hyp_panic'" in text
    log = build / "undefined.log"
    log.write_text(text)
    scanned = scan(log)
    assert scanned.analysis.records == []
    assert scanned.arch.name == "aarch64"
    assert any("undefined references to hyp_panic" in note and "not a reach problem" in note
               for note in scanned.notes), scanned.notes
    cli = subprocess.run([sys.executable, "-m", "reachls.cli", "scan", str(log), "--fail-on", "overflow"],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "not a reach problem" in cli.stdout, cli.stderr


# The tests' own reading of the two linkers' messages, independent of reachls's parser.
_LLD_MESSAGE = re.compile(
    r"^ld\.lld: (?:error|warning): (?P<obj>\S+):\(function (?P<function>\S+): (?P<section>\S+)\+0x(?P<offset>[0-9a-f]+)\): "
    r"relocation (?P<type>R_\w+) out of range: (?P<distance>-?\d+) is not in \[(?P<lo>-?\d+), (?P<hi>-?\d+)\]; "
    r"references (?P<symbol>\S+)\n>>> referenced by \S+ \((?P<file>.+):(?P<line>\d+)\)$", re.M)
_GNU_MESSAGE = re.compile(
    r"^(?P<file>/.+):(?P<line>\d+):\((?P<section>[^+]+)\+0x(?P<offset>[0-9a-f]+)\): relocation truncated to fit: "
    r"(?P<type>R_\w+) against symbol `(?P<symbol>[^']+)' defined in (?P<target_section>\S+) section in \S+$", re.M)


def _alone(log: Path, directory: Path) -> Path:
    """The log copied alone into an empty directory, as a user gets it from CI or a mailing list."""
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / "build.log"
    copy.write_text(log.read_text())
    return copy


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reachls.cli", *map(str, args)], capture_output=True, text=True)


def _printed(record: dict) -> tuple:
    site, target = record["site"], record["target"]
    return (record["kind"]["type"], record["distance"], tuple(record["kind"]["range"]), target["symbol"],
            site["object"], site["symbol"], site["section"], site["offset"],
            site["source"]["file"], site["source"]["line"])


def test_an_lld_log_alone_gives_what_lld_printed_unverified(build, tmp_path):
    log = _alone(build / "build.log", tmp_path / "ci")
    expected = {(m["type"], int(m["distance"]), (int(m["lo"]), int(m["hi"])), m["symbol"], m["obj"],
                 m["function"], m["section"], int(m["offset"], 16), m["file"], int(m["line"]))
                for m in _LLD_MESSAGE.finditer(log.read_text())}
    assert len(expected) == len(lld_overflows(log.read_text())) > 0
    cli = _cli("scan", log, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    document = json.loads(cli.stdout)
    assert {_printed(r) for r in document["records"]} == expected
    assert len(document["records"]) == len(expected) == document["counts"]["overflow"]
    assert all(r["verified"] is False and r["status"] == "overflow" for r in document["records"])
    assert all(r["site"]["address"] is None and r["target"]["address"] is None for r in document["records"])
    assert any("vmlinux.o is not there" in n and "unverified" in n for n in document["notes"]), document["notes"]
    text = _cli("scan", log)
    assert text.returncode == 0 and text.stdout.count("as the linker printed it, unverified") == len(expected)
    assert _cli("scan", log, "--fail-on", "overflow").returncode == 1


def test_a_gnu_ld_log_alone_says_it_has_no_distance(build, gnu_log, tmp_path):
    log = _alone(gnu_log, tmp_path / "ci")
    text = log.read_text()
    functions = re.findall(r"^vmlinux\.o: in function `(\S+)':$", text, re.M)
    messages = list(_GNU_MESSAGE.finditer(text))
    assert messages and len(functions) == len(set(functions)) >= 1
    expected = {(m["type"], m["symbol"], m["target_section"], m["section"], int(m["offset"], 16), m["file"],
                 int(m["line"])) for m in messages}
    cli = _cli("scan", log, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    document = json.loads(cli.stdout)
    records = document["records"]
    assert {(r["kind"]["type"], r["target"]["symbol"], r["target"]["section"], r["site"]["section"],
             r["site"]["offset"], r["site"]["source"]["file"], r["site"]["source"]["line"]) for r in records} == expected
    assert len(records) == len(messages)
    assert {r["site"]["symbol"] for r in records} == set(functions)
    assert all(r["distance"] is None and r["usage"] is None and r["headroom"] is None and r["verified"] is False
               for r in records)
    assert any("GNU ld prints no distance" in n and "null" in n for n in document["notes"]), document["notes"]
    report = _cli("scan", log)
    assert report.returncode == 0 and report.stdout.count("the linker printed no distance") == len(messages)
    assert _cli("scan", log, "--fail-on", "overflow").returncode == 1


def test_json_lines_of_log_records_encode_their_json(build, gnu_log, tmp_path):
    """Records read from a log alone hold nulls (GNU ld: no distance, usage or headroom; no addresses):
    the report's row of each is still the text `json` gives for its documented `to_json`."""
    for name, log in (("lld", build / "build.log"), ("gnu", gnu_log)):
        records = scan(_alone(log, tmp_path / name)).analysis.records
        assert records and any(r.site.address is None for r in records)
        assert all(record.to_json_line() == json.dumps(record.to_json()) for record in records)


def test_objects_at_hand_are_checked_the_others_printed(build, tmp_path):
    """One log holding two links: the separate objects' (entry.o is at hand) and vmlinux.o's (it is not)."""
    need("ld.lld")
    objects = ["arch/arm64/kernel/head.o", "arch/arm64/kvm/hyp/entry.o", "arch/arm64/kvm/hyp/fpsimd.o",
               *sorted(str(p.relative_to(build.parent)) for p in (build.parent / "filler").rglob("filler_*.o")),
               "init/main.o", "arch/arm64/kvm/hyp/vhe/switch.o"]
    flags = final_link(build)[1:-3]
    inputs = [o if (build / o).is_file() else f"../{o}" for o in objects]  # relative, as kbuild links
    separate = run("ld.lld", *flags, "-o", tmp_path / "separate.img", *inputs, cwd=build, check=False).stderr
    assert "arch/arm64/kvm/hyp/entry.o:(function" in separate
    ci = tmp_path / "ci"
    (ci / "arch/arm64/kvm/hyp").mkdir(parents=True)
    shutil.copy(build / "arch/arm64/kvm/hyp/entry.o", ci / "arch/arm64/kvm/hyp/entry.o")
    log = ci / "build.log"
    log.write_text(separate + (build / "build.log").read_text())
    result = scan(log)
    by_object = {}
    for record in result.analysis.records:
        by_object.setdefault(record.site.object, set()).add(record.verified)
    assert by_object == {"arch/arm64/kvm/hyp/entry.o": {True}, "vmlinux.o": {False}}, by_object
    assert sorted(r.distance for r in result.analysis.records) == sorted(
        e.distance for e in lld_overflows(log.read_text()))
    assert any("vmlinux.o is not there" in n for n in result.notes)
    assert not any("entry.o is not there" in n for n in result.notes)
    assert "the others checked against their objects" in result.notes[0]


def test_a_file_without_linker_diagnostics_is_one_line_and_exit_2(build, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("make: Entering directory '/src/linux'\n  LD      vmlinux.o\nall good\n")
    for argv in (("scan", notes, "--log"), ("scan", tmp_path, "--log=notes.txt")):
        cli = _cli(*argv)
        assert cli.returncode == 2, (argv, cli.stdout)
        lines = cli.stderr.strip().splitlines()
        assert len(lines) == 1 and "no linker diagnostic" in lines[0] and str(notes) in lines[0], lines
    (tmp_path / "build.log").write_text(notes.read_text())  # a build dir holding only a clean log
    cli = _cli("scan", tmp_path)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "no linker diagnostic" in cli.stderr
    (tmp_path / "build.log").write_text("")  # a link that printed nothing had nothing out of range
    empty = _cli("scan", tmp_path)
    assert empty.returncode == 0 and "0 overflow" in empty.stdout, empty.stderr
    no_log = _cli("scan", build, "--log=nope.log")
    assert no_log.returncode == 2 and len(no_log.stderr.strip().splitlines()) == 1, no_log.stderr
    assert "no linker log nope.log" in no_log.stderr


def test_build_dir_without_vmlinux_o_reads_its_log_per_object(build, tmp_path):
    """A link of the separate objects (no vmlinux.o): each overflow is read from the object the log
    names, at that object's own section offset, and mapped through that object's DWARF."""
    need("ld.lld")
    objs = tmp_path / "objs"
    for part in ("arch", "init"):
        shutil.copytree(build / part, objs / part)
    shutil.copytree(build.parent / "filler" / "drivers", objs / "drivers")
    order = ["arch/arm64/kernel/head.o", "arch/arm64/kvm/hyp/entry.o", "arch/arm64/kvm/hyp/fpsimd.o",
             *sorted(str(p.relative_to(objs)) for p in objs.rglob("filler_*.o")), "init/main.o",
             "arch/arm64/kvm/hyp/vhe/switch.o"]
    flags = final_link(build)[1:-3]
    result = run("ld.lld", *flags, "-o", "vmlinux", *order, cwd=objs, check=False)
    (objs / "build.log").write_text(result.stdout + result.stderr)
    printed = lld_overflows(result.stderr)
    assert printed and "arch/arm64/kvm/hyp/entry.o:(function" in result.stderr
    scanned = scan(objs)  # no vmlinux.o: the build dir's build.log is read
    assert {(r.kind.name, r.distance, r.target.symbol) for r in _overflows(scanned)} == {
        (e.type, e.distance, e.symbol) for e in printed}
    def where(records):  # site and target lines: entry.o's DWARF for the site, switch.o's for the target
        return {(r.kind.name, r.site.location.file, r.site.location.line, r.target.section, r.target.location)
                for r in records}

    assert where(_overflows(scanned)) == where(_overflows(scan(build)))


def test_cli_reports_a_log_like_a_scan(build):
    cli = [sys.executable, "-m", "reachls.cli", "scan", str(build), "--log"]
    text = subprocess.run(cli, capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    for error in lld_overflows((build / "build.log").read_text()):
        assert f"is out of reach: {error.distance} B" in text.stdout
    assert "entry.S" in text.stdout
    failing = subprocess.run([*cli, "--fail-on", "overflow"], capture_output=True, text=True)
    assert failing.returncode == 1
    document = json.loads(subprocess.run([*cli, "--format", "json"], capture_output=True, text=True).stdout)
    assert {r["provenance"]["mode"] for r in document["records"]} == {"log"}
    assert document["counts"]["overflow"] == len(lld_overflows((build / "build.log").read_text()))


def test_an_overflow_the_object_does_not_hold_is_counted_unchecked(build):
    """A real ld.lld message moved to an offset where vmlinux.o has no such relocation (a log from
    another build): not reported as an overflow, but counted, and `--fail-on` fails on it."""
    first = (build / "noinhibit.log").read_text().split("\n\n")[0]
    moved = first.replace(".text+0x0)", ".text+0x2)", 1)
    assert moved != first
    relocations = run("llvm-readelf", "-r", "--wide", build / "vmlinux.o").stdout
    text_table = relocations.split("Relocation section '.rela.text' ")[1].split("Relocation section")[0]
    assert not re.search(r"^0+2\s", text_table, flags=re.M)  # nothing at .text+0x2
    (build / "moved.log").write_text(moved + "\n")
    cli = [sys.executable, "-m", "reachls.cli", "scan", str(build), "--log=moved.log"]
    document = json.loads(subprocess.run([*cli, "--format", "json"], capture_output=True, text=True).stdout)
    assert document["records"] == [] and document["unresolved"] == 1
    assert [(g["kind"], g["reason"], g["count"]) for g in document["unchecked"]] == [
        (lld_overflows(first)[0].type, "log-relocation-not-found", 1)]
    assert subprocess.run([*cli, "--fail-on", "overflow"], capture_output=True, text=True).returncode == 1
    assert subprocess.run([*cli, "--fail-on", "overflow", "--allow-unchecked"], capture_output=True,
                          text=True).returncode == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_language_server_shows_a_log_alone_on_the_linkers_lines(build, tmp_path):
    """A checkout elsewhere than the build machine's tree, holding only the CI log: the server finds the
    log, maps the linker's paths with pathMappings, and puts each overflow on the line ld.lld named."""
    built_tree = build.parent.parent
    checkout = copy_example(tmp_path)
    log = _alone(build / "build.log", checkout / "ci")
    entry = checkout / "arch/arm64/kvm/hyp/entry.S"
    expected = {line for file, line in referenced_lines(log.read_text())
                if file == str(built_tree / "arch/arm64/kvm/hyp/entry.S")}
    assert expected
    params = types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=uri(checkout),
        workspace_folders=[types.WorkspaceFolder(uri(checkout), "checkout")],
        initialization_options={"pathMappings": [{"from": str(built_tree), "to": str(checkout)}]})
    async with server_session(SERVER_COMMAND, params) as client:
        diagnostics = await wait_for(lambda: client.diagnostics.get(uri(entry)), timeout=60,
                                     what="diagnostics on the checkout's entry.S")
        assert {d.range.start.line + 1 for d in diagnostics} == expected
        assert all("as the linker printed it, unverified" in d.message for d in diagnostics)
        assert {d.code for d in diagnostics} == {e.type for e in lld_overflows(log.read_text())}
        hover = await client.text_document_hover_async(types.HoverParams(
            types.TextDocumentIdentifier(uri(entry)), diagnostics[0].range.start))
        assert hover is not None and "the object is not at hand" in hover.contents.value
