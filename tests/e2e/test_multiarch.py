"""The examples/multiarch trees (32-bit Arm, RISC-V 64, PowerPC64, MIPS), built for real: reachls
against ld.lld, GNU ld, GNU addr2line and llvm-objdump.

Every expected value comes from the toolchain: the overflows ld.lld prints with --noinhibit-exec
(in its own units: RISC-V branches in halfwords, converted as test_reach_table_arches.py does),
the thunks it writes (llvm-nm, llvm-objdump), GNU ld's "relocation truncated to fit" lines, GNU
addr2line's lines on the linked image.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from reachls.asmfile import fold_mnemonic
from reachls.errors import ReachlsError
from reachls.findings import PathMapper, source_findings
from reachls.pipeline import ScanOptions, scan
from reachls.record import Status
from toolchain import ROOT, lld_overflows, need, nm_symbols, run

EXAMPLES = ROOT / "examples" / "multiarch"
VARIANTS = ("overflow", "at-risk", "safe")
ENGINES = ("relink", "model")


@dataclass(frozen=True)
class Tree:
    triple: str  # GNU binutils prefix: <triple>-ld, <triple>-addr2line
    halfwords: frozenset[str] = frozenset()  # types ld.lld checks (and prints) in halfwords


TREES = {
    "arm": Tree("arm-linux-gnueabihf"),
    "riscv64": Tree("riscv64-linux-gnu", frozenset({"R_RISCV_BRANCH", "R_RISCV_JAL", "R_RISCV_RVC_BRANCH",
                                                    "R_RISCV_RVC_JUMP"})),
    "ppc64": Tree("powerpc64le-linux-gnu"),
    "mips": Tree("mips-linux-gnu"),
}
THUNK_PREFIXES = ("__long_branch_", "__ARMv7ABSLongThunk_", "__Thumbv7ABSLongThunk_")  # ld.lld 14's names
_LLD_SITE = re.compile(r"\(function [^:]+: (\S+)\+0x([0-9a-f]+)\): relocation (R_\w+) out of range")


def copy_tree(destination: Path) -> Path:
    """A private copy of examples/multiarch (without build outputs)."""
    tree = destination / "multiarch"
    shutil.copytree(EXAMPLES, tree, ignore=shutil.ignore_patterns("out"))
    return tree


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Every tree built once: (arch, variant) → its build dir (vmlinux.o, build.log, noinhibit.log)."""
    need("clang", "ld.lld", "make", "arm-linux-gnueabihf-as")
    tree = copy_tree(tmp_path_factory.mktemp("multiarch"))
    for arch in TREES:
        run("make", "-s", "-C", tree / arch, "all-variants")
    return {(arch, variant): tree / arch / "out" / variant for arch in TREES for variant in VARIANTS}


def printed(record) -> int:
    """The value ld.lld prints for this record's distance."""
    tree = TREES[record.kind.arch]
    return record.distance >> 1 if record.kind.name in tree.halfwords else record.distance


def lld_sites(log: str) -> set[tuple[str, int, str, int, str]]:
    """(section, offset, type, printed value, target) of every overflow ld.lld printed."""
    values = lld_overflows(log)
    sites = _LLD_SITE.findall(log)
    assert len(sites) == len(values), log
    return {(sec, int(off, 16), o.type, o.distance, o.symbol) for (sec, off, _), o in zip(sites, values)}


def found(records, *statuses: Status) -> set[tuple[str, int, str, int, str]]:
    return {(r.site.section, r.site.offset, r.kind.name, printed(r), r.target.symbol)
            for r in records if r.status in statuses}


def _functions(image: Path) -> set[str]:
    """Names of the FUNC symbols of an image (llvm-readelf), thunks excluded."""
    names = set()
    for line in run("llvm-readelf", "-s", "--wide", image).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[3] == "FUNC" and not fields[7].startswith(THUNK_PREFIXES):
            names.add(fields[7])
    return names


def thunked_sites(image: Path) -> dict[int, str]:
    """Site address → final target of every branch ld.lld sent through one of its thunks (llvm-objdump)."""
    thunks = {address: name for name, address in nm_symbols(image).items()
              if name.startswith(THUNK_PREFIXES)}
    sites = {}
    line = re.compile(r"^\s*([0-9a-f]+):\s+\S+.*\b0x([0-9a-f]+)\b")
    for text in run("llvm-objdump", "-d", "--no-show-raw-insn", image).stdout.splitlines():
        if (m := line.match(text)) and int(m[2], 16) in thunks:
            name = thunks[int(m[2], 16)]
            sites[int(m[1], 16)] = name[len(next(p for p in THUNK_PREFIXES if name.startswith(p))):]
    return sites


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", TREES)
def test_overflows_are_exactly_what_lld_prints(builds, arch, variant, engine):
    build = builds[arch, variant]
    expected = lld_sites((build / "noinhibit.log").read_text())
    result = scan(build, ScanOptions(engine=engine))
    assert result.arch.name == arch
    assert found(result.analysis.records, Status.OVERFLOW) == expected
    assert bool(expected) == (variant == "overflow" and arch != "ppc64")  # ld.lld bridges every ppc64 branch
    # the veneers: exactly the branches ld.lld sent through a thunk because they are out of range
    # (on Arm a conditional A32 `b` to a Thumb function goes through a thunk in any case, to switch
    # modes: those are in range in the image itself, site to final target)
    # Sites are compared as function+offset: ld.lld puts the ppc64 thunks at the start of .text,
    # which the model engine does not know, so its addresses there are off by their size.
    image = build / "vmlinux.noinhibit"
    symbols = nm_symbols(image)
    functions = sorted((a, n) for n, a in symbols.items() if n in _functions(image))
    kinds = {(r.site.symbol, r.site.symbol_offset): r.kind
             for r in scan(build, ScanOptions(engine="relink", include_ok=True)).analysis.records}
    out_of_range = set()
    for address, target in thunked_sites(image).items():
        start, function = max((a, n) for a, n in functions if a <= address)
        if not kinds[function, address - start].in_range((symbols[target] & ~1) - address):
            out_of_range.add((function, address - start, target))
    veneers = {(r.site.symbol, r.site.symbol_offset, r.target.symbol)
               for r in result.analysis.records if r.status is Status.VENEER}
    assert veneers == out_of_range
    assert bool(veneers) == (variant == "overflow" and arch == "ppc64")


@pytest.mark.parametrize("log", [
    "noinhibit.log", "build.log"])
@pytest.mark.parametrize("arch", ["arm", "riscv64", "ppc64", "mips"])
def test_log_mode_finds_what_the_relocatable_mode_finds(builds, arch, log):
    build = builds[arch, "overflow"]
    relocatable = {(r.site.address, r.kind.name, r.distance, r.target.symbol)
                   for r in scan(build, ScanOptions(engine="relink")).analysis.records if r.status is Status.OVERFLOW}
    logged = scan(build, ScanOptions(log=log)).analysis.records
    assert all(r.provenance.mode == "log" for r in logged)
    assert found(logged, Status.OVERFLOW) == lld_sites((build / log).read_text())
    assert {(r.site.address, r.kind.name, r.distance, r.target.symbol) for r in logged} == relocatable
    if (build / log).stat().st_size:  # ppc64's logs are empty: ld.lld bridged every branch
        assert {(r.site.address, r.kind.name, r.distance, r.target.symbol)
                for r in scan(build / log).analysis.records} == relocatable


@pytest.mark.parametrize("arch", TREES)
def test_at_risk_variant_reports_the_references_that_overflow(builds, arch):
    """The references that are out of reach in the overflow variant (ld.lld's errors; on ppc64 its
    thunked branches) are exactly the at-risk ones in the at-risk variant; the safe one has none."""
    overflow = scan(builds[arch, "overflow"], ScanOptions(engine="relink")).analysis.records
    intended = {(r.site.section, r.site.offset, r.kind.name, r.target.symbol)
                for r in overflow if r.status in (Status.OVERFLOW, Status.VENEER)}
    assert intended
    for engine in ENGINES:
        at_risk = scan(builds[arch, "at-risk"], ScanOptions(engine=engine)).analysis.records
        assert {(r.site.section, r.site.offset, r.kind.name, r.target.symbol)
                for r in at_risk if r.status is Status.AT_RISK} == intended
        assert all(0.75 <= r.usage < 1 for r in at_risk if r.status is Status.AT_RISK)
        assert not [r for r in at_risk if r.status in (Status.OVERFLOW, Status.VENEER)]
        safe = scan(builds[arch, "safe"], ScanOptions(engine=engine)).analysis.records
        assert not [r for r in safe if r.status in (Status.OVERFLOW, Status.VENEER, Status.AT_RISK)]


def gnu_addr2line(triple: str, image: Path, addresses: list[int]) -> list[tuple[str, int]]:
    need(f"{triple}-addr2line")
    out = run(f"{triple}-addr2line", "-e", image, *(f"{a:#x}" for a in addresses)).stdout.splitlines()
    located = []
    for line in out:
        file, _, number = line.rpartition(":")
        located.append((file, int(number.split()[0]) if number.split()[0].isdigit() else 0))
    return located


@pytest.mark.parametrize("arch", TREES)
def test_every_site_line_equals_gnu_addr2line(builds, arch):
    build = builds[arch, "overflow"]
    records = scan(build, ScanOptions(engine="relink", include_ok=True)).analysis.records
    answers = gnu_addr2line(TREES[arch].triple, build / "vmlinux.noinhibit", [r.site.address for r in records])
    for record, (file, line) in zip(records, answers):
        if line == 0:
            assert record.site.location is None, record
            continue
        assert (record.site.location.file, record.site.location.line) == (file, line), record
    assert any(Path(r.site.location.file).suffix == ".S" for r in records if r.status is not Status.OK)


_MIPS_BRANCH = re.compile(r"^\s*([0-9a-f]+):\s+(b\w*|j|jal)\s+(?:[^<]*,\s*)?(-?\d+) <")
MIPS_REGION = 1 << 28


def objdump_branches(image: Path) -> dict[int, int]:
    """Address → decoded target of every instruction llvm-objdump prints one for. On MIPS it
    prints a branch's offset from P in decimal, and a j/jal's field times 4: the low 28 bits of
    the target, whose high bits are the delay slot's (P+4)."""
    decoded = {}
    line = re.compile(r"^\s*([0-9a-f]+):\s+\S+.*?\b0x([0-9a-f]+)\b")
    for text in run("llvm-objdump", "-d", "--no-show-raw-insn", image).stdout.splitlines():
        if m := _MIPS_BRANCH.match(text):
            site, number = int(m[1], 16), int(m[3])
            decoded[site] = ((site + 4) & ~(MIPS_REGION - 1)) | number if m[2] in ("j", "jal") else site + number
        elif m := line.match(text):
            decoded[int(m[1], 16)] = int(m[2], 16)
    return decoded


@pytest.mark.parametrize("variant", ("at-risk", "safe"))
@pytest.mark.parametrize("arch", TREES)
def test_linked_image_decoding_matches_objdump(builds, arch, variant):
    """Every short-reach reference of the relocatable scan is decoded from the image, to the target
    llvm-objdump decodes, at that distance (target − P, or the relocatable record's S+A−P on Arm,
    with the same PC bias as the relocatable record's S+A−P and the target's Thumb bit)."""
    image = builds[arch, variant] / "vmlinux.noinhibit"
    try:
        decoded = scan(image, ScanOptions(include_ok=True)).analysis.records
    except ReachlsError as exc:
        if "emit-relocs" in str(exc):
            pytest.skip(f"{arch}: no linked-image decoder yet ({exc})")
        raise
    objdump = objdump_branches(image)
    relocatable = {r.site.address: r for r in scan(builds[arch, variant], ScanOptions(
        engine="relink", include_ok=True)).analysis.records}
    by_site = {r.site.address: r for r in decoded}
    checked = 0
    for address, record in by_site.items():
        if address not in objdump:
            continue  # a load or an auipc pair: objdump prints no target
        checked += 1
        target = objdump[address]
        assert record.target.address & ~1 == target, (hex(address), record)
        expected = target - address
        if arch == "mips":  # a branch's -4 addend (from the delay slot); a jump's place is its region
            expected = target - ((address + 4) & ~(MIPS_REGION - 1)) if record.kind.name == "R_MIPS_26" else expected - 4
        if arch == "arm":  # the value ld.lld checks, S+A-P: A holds the PC bias, -4 Thumb, -8 A32
            expected += -4 if record.kind.name.startswith("R_ARM_THM_") else -8
        if arch == "arm" and address in relocatable:  # S+A-P: the Thumb bit and the PC bias, as relocated
            rel = relocatable[address]
            bias = rel.distance - (rel.target.address - address)
            # straight to the function: its S (Thumb bit included); through an A32 thunk: the thunk's
            expected = rel.distance if target == rel.target.address & ~1 else target - address + bias
        assert record.distance == expected, (hex(address), record)
    assert checked >= 5  # at least the entry file's branches
    missing = [hex(a) for a, r in relocatable.items() if r.site.instruction is not None and a not in by_site
               and a in objdump]
    assert not missing, f"short-reach instructions not decoded: {missing}"


_TRUNCATED = re.compile(r"\((\S+)\+0x([0-9a-f]+)\): relocation truncated to fit: (R_\w+) against (?:symbol )?`([^']+)'")


@pytest.mark.parametrize("arch", TREES)
def test_gnu_ld_log_gives_the_same_findings_as_lld(builds, arch):
    """GNU ld running the build's final link (same script, vmlinux.o) instead of ld.lld."""
    build = builds[arch, "overflow"]
    linker = f"{TREES[arch].triple}-ld"
    need(linker)
    argv = [linker, *shlex.split((build / ".vmlinux.cmd").read_text().partition(":=")[2])[1:]]
    argv[argv.index("-o") + 1] = "vmlinux.gnu"
    result = run(*argv, cwd=build, check=False)
    text = result.stdout + result.stderr
    assert "syntax error" not in text, text  # GNU ld accepts the tree's linker script
    (build / "gnu.log").write_text(text)
    gnu_printed = {(sec, int(off, 16), kind) for sec, off, kind, _ in _TRUNCATED.findall(text)}
    if arch == "ppc64":  # GNU ld stubs REL14 as ld.lld thunks it: the link succeeds, nothing to report
        assert result.returncode == 0 and not gnu_printed and not lld_sites((build / "noinhibit.log").read_text())
        return
    lld = scan(build / "noinhibit.log").analysis.records
    gnu = scan(build / "gnu.log").analysis.records
    key = lambda records: {(r.site.section, r.site.offset, r.kind.name, r.target.symbol, r.distance)  # noqa: E731
                           for r in records}
    assert {(s, o, k) for s, o, k, _, _ in key(gnu)} == gnu_printed
    assert result.returncode != 0 and all(r.status is Status.OVERFLOW for r in gnu)
    if arch == "riscv64":
        # GNU ld's RISC-V backend stops relocating a section at its first overflow: one line.
        # (Compared with the relocatable mode: the ld.lld log's RISC-V distances are halved, see above.)
        assert len(gnu_printed) == 1
        assert key(gnu) <= key(scan(build, ScanOptions(engine="relink")).analysis.records)
    else:
        assert key(gnu) == key(lld) and len(gnu) == len(lld_sites((build / "noinhibit.log").read_text()))


@pytest.mark.parametrize("arch", ["riscv64", "mips"])
def test_each_overflowing_entry_statement_gets_a_finding_with_a_fix(builds, arch):
    """Each out-of-reach branch of the entry file, in relocatable and linked-image mode, is a site
    finding on the line GNU addr2line gives, on a statement the decoded mnemonic may be spelled as
    (`mnemonic_spellings`), with the architecture's rewrite first among its fixes. (The Arm tree's
    sites are `b.n`, whose width suffix the spelling table does not list; ppc64's are veneers.)"""
    build = builds[arch, "overflow"]
    tree = build.parent.parent
    for artefact in (build, build / "vmlinux.noinhibit"):
        result = scan(artefact, ScanOptions(engine="relink") if artefact.is_dir() else ScanOptions())
        records = [r for r in result.analysis.records if r.status is Status.OVERFLOW]
        lines = gnu_addr2line(TREES[arch].triple, build / "vmlinux.noinhibit", [r.site.address for r in records])
        expected = {(Path(file).name, line) for (file, line), r in zip(lines, records) if file.endswith(".S")}
        findings = source_findings(result.analysis.records, result.arch, PathMapper(roots=(tree,)))
        sites = [f for items in findings.by_path.values() for f in items if f.role == "site"]
        assert {(f.path.name, f.span.line) for f in sites if f.status is Status.OVERFLOW} == expected
        for finding in sites:
            (record,) = finding.records
            assert fold_mnemonic(finding.statement.split()[0]) in result.arch.source_spellings(record.site.instruction)
            assert finding.fixes and finding.fixes[0].preferred, finding
