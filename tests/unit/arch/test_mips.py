"""MIPS, 32- and 64-bit, both byte orders, checked at the edges of every range against the real linkers.

As test_reach_table_arches.py: per relocation type, a linker script puts four targets at the last
value in range on each side of a site and one step beyond; each object is built by clang for the
four ABIs the kernel builds (`-mabi=32`/`-mabi=64`, big/little endian; `-fno-pic -mno-abicalls
-G0`). The answer keys: ld.lld's `out of range` lines (`--noinhibit-exec`), GNU ld's `relocation
truncated to fit` lines, and for R_MIPS_26, which ld.lld does not check, where the jump it wrote
lands (decoded from llvm-objdump's output here) against where the symbol is (llvm-nm).

The value checked is S+A-P for the PC-relative types (A holds -4 for a branch: the distance
from its delay slot) and, for R_MIPS_26, S+A minus the 256 MiB region of the delay slot P+4.
The same edge objects are scanned in relocatable mode (relink with either linker, model) and
log mode (each linker's log of the final link); linked images are checked against llvm-objdump;
MIPS64's packed r_info against llvm-readelf; the assembly fixes by assembling and linking them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.enums import ENUM_RELOC_TYPE_MIPS

from reachls.arch import architecture_of, mips
from reachls.elf import ElfInput
from reachls.errors import ReachlsError
from reachls.pipeline import ScanOptions, scan
from reachls.record import DEFAULT_THRESHOLD, Status
from reachls.sources.asm import parse_asm
from toolchain import (apply_edits, built_once, cache_root, compile_for, link_noinhibit, lld_overflows, need, nm_symbols,
                       relocations_of, run)

#: ABI → (clang triple, GNU ld emulation, -march for R6).
ABIS = {
    "mips": ("mips-linux-gnu", "elf32btsmip", "mips32r6"),
    "mipsel": ("mipsel-linux-gnu", "elf32ltsmip", "mips32r6"),
    "mips64": ("mips64-linux-gnuabi64", "elf64btsmip", "mips64r6"),
    "mips64el": ("mips64el-linux-gnuabi64", "elf64ltsmip", "mips64r6"),
}
GNU_LD = "mips-linux-gnu-ld"  # binutils' MIPS ld links every ABI and byte order (-m)
KERNEL_FLAGS = ("-fno-pic", "-mno-abicalls", "-G0")
REGION = 1 << 28


@dataclass(frozen=True)
class Case:
    kind: str
    site: str  # the statement; {t} is the target symbol
    mnemonic: str  # what reachls must name it
    lo: int  # the range of the checked value, as the linkers print it
    hi: int
    step: int = 4
    r6: bool = False
    abis: tuple[str, ...] = tuple(ABIS)


CASES = [
    Case("R_MIPS_PC16", "beqz $4, {t}", "beqz", -(1 << 17), (1 << 17) - 1),
    Case("R_MIPS_PC16", "bal {t}", "bal", -(1 << 17), (1 << 17) - 1),
    Case("R_MIPS_PC16", "b {t}", "b", -(1 << 17), (1 << 17) - 1),
    Case("R_MIPS_26", "jal {t}", "jal", 0, REGION - 1),
    Case("R_MIPS_26", "j {t}", "j", 0, REGION - 1),
    Case("R_MIPS_PC21_S2", "beqzc $4, {t}", "beqzc", -(1 << 22), (1 << 22) - 1, r6=True, abis=("mips", "mips64el")),
    Case("R_MIPS_PC26_S2", "balc {t}", "balc", -(1 << 27), (1 << 27) - 1, r6=True, abis=("mipsel", "mips64")),
    Case("R_MIPS_PC19_S2", "lwpc $2, {t}", "lwpc", -(1 << 20), (1 << 20) - 1, r6=True, abis=("mips", "mips64el")),
    Case("R_MIPS_PC18_S3", "ldpc $2, {t}", "ldpc", -(1 << 20), (1 << 20) - 1, step=8, r6=True,
         abis=("mips64", "mips64el")),
]
#: Sites per case: for R_MIPS_26 next to region boundaries (the last word of a region jumps from
#: the next one), for ldpc off a doubleword, else far apart.
SITES = {"R_MIPS_26": (0x1FFF_FFF8, 0x2FFF_FFF8, 0x4FFF_FFFC, 0x6000_0000),
         "R_MIPS_PC18_S3": (0x1000_0004, 0x2000_0004, 0x3000_0004, 0x4000_0004)}
DEFAULT_SITES = (0x1000_0000, 0x2000_0000, 0x3000_0000, 0x4000_0000)


def edges(case: Case) -> list[int]:
    """The checked values: last in range and first out, at the top and at the bottom."""
    top, bottom = case.hi - case.hi % case.step, case.lo
    return [top, top + case.step, bottom, bottom - case.step]


def target_address(case: Case, site: int, value: int) -> int:
    """Where the target goes for the checked value to be `value`."""
    if case.kind == "R_MIPS_26":  # the delay slot's region
        return ((site + 4) & ~(REGION - 1)) + value
    if case.kind == "R_MIPS_PC18_S3":  # ldpc reads the PC doubleword-aligned
        return (site & ~7) + value
    return site + value + (0 if case.kind == "R_MIPS_PC19_S2" else 4)  # a branch's -4 addend


@dataclass(frozen=True)
class Edges:
    case: Case
    abi: str
    values: list[int]
    obj: Path
    script: Path


def build(case: Case, abi: str) -> Edges:
    """The object (one section per site and per target, each site a lone instruction so that a
    target may follow it right at a region boundary) and the script placing site i and target i,
    built once in the cache, keyed by the source, the flags and clang's version."""
    triple, _, r6 = ABIS[abi]
    values = edges(case)
    sites = SITES.get(case.kind, DEFAULT_SITES)
    asm = [".set noreorder"]
    script = ["SECTIONS {"]
    for i, (site, value) in enumerate(zip(sites, values)):
        asm += [f'.section .site{i},"ax"', f".globl site{i}", f"site{i}:", "  " + case.site.format(t=f"target{i}"),
                f'.section .target{i},"ax"', f".globl target{i}", f"target{i}:", "  nop"]
        script += [f"  .site{i} {site:#x} : AT({2 * i + 1:#x}0000) {{ *(.site{i}) }}",  # small files
                   f"  .target{i} {target_address(case, site, value):#x} : AT({2 * i + 2:#x}0000) {{ *(.target{i}) }}"]
    script += ["  /DISCARD/ : { *(.reginfo) *(.MIPS.abiflags) *(.pdr) *(.gnu.attributes) }", "}"]
    flags = [f"--target={triple}", *KERNEL_FLAGS, *([f"-march={r6}"] if case.r6 else [])]
    stamp = "\n".join([*asm, *script, *flags, run("clang", "--version").stdout])
    out = cache_root() / "mips-edges" / hashlib.sha256(stamp.encode()).hexdigest()[:16]

    def make(work: Path) -> None:
        (work / "edges.S").write_text("\n".join(asm) + "\n")
        (work / "edges.lds").write_text("\n".join(script) + "\n")
        run("clang", *flags, "-c", work / "edges.S", "-o", work / "edges.o")

    built_once(out, make)
    return Edges(case, abi, values, out / "edges.o", out / "edges.lds")


PARAMS = [(case, abi) for case in CASES for abi in case.abis]


@pytest.fixture(scope="module", params=PARAMS, ids=lambda p: f"{p[1]}:{p[0].mnemonic}")
def edge_case(request) -> Edges:
    need("clang")
    return build(*request.param)


_JUMP = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} ){4}\s*(j|jal)\s+(\d+)", re.M)


def objdump_jumps(image: Path) -> dict[int, int]:
    """Site → where the j/jal llvm-objdump decodes lands: it prints the field times 4, which
    replaces the low 28 bits of the delay slot's address."""
    text = run("llvm-objdump", "-d", image).stdout
    return {int(m[1], 16): ((int(m[1], 16) + 4) & ~(REGION - 1)) | int(m[3]) for m in _JUMP.finditer(text)}


def lld_errors(e: Edges, tmp: Path) -> dict[str, tuple[str, int, int, int]]:
    """Target → (type, value, lo, hi) of each reference ld.lld reports, or, for R_MIPS_26, of each
    jump it wrote that does not land on its target."""
    image = tmp / "lld.elf"
    log = link_noinhibit(e.script, [e.obj], image)
    errors = {o.symbol: (o.type, o.distance, o.lo, o.hi) for o in lld_overflows(log)}
    if e.case.kind == "R_MIPS_26":
        assert not errors, log  # ld.lld 14 does not check R_MIPS_26
        symbols, landed = nm_symbols(image), objdump_jumps(image)
        for i, value in enumerate(e.values):
            if landed[symbols[f"site{i}"]] != symbols[f"target{i}"]:
                errors[f"target{i}"] = (e.case.kind, value, e.case.lo, e.case.hi)
    return errors


_TRUNCATED = re.compile(r"relocation truncated to fit: (R_\w+) against `([^']+)'")


def gnu_errors(e: Edges, tmp: Path) -> set[str]:
    need(GNU_LD)
    log = link_noinhibit(e.script, [e.obj], tmp / "gnu.elf", "-m", ABIS[e.abi][1], linker=GNU_LD)
    return {m[2] for m in _TRUNCATED.finditer(log) if m[1] == e.case.kind}


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_statuses_agree_with_lld_at_the_edges(edge_case: Edges, engine: str, tmp_path: Path) -> None:
    e = edge_case
    if e.case.kind in mips.LLD_UNSUPPORTED:
        log = link_noinhibit(e.script, [e.obj], tmp_path / "lld.elf", require_output=False)
        assert "unknown relocation (62)" in log, log  # R_MIPS_PC18_S3 is type 62 in the psABI
        pytest.skip(f"ld.lld 14 does not know {e.case.kind} (GNU ld is checked below)")
    errors = lld_errors(e, tmp_path)
    result = scan(e.obj, ScanOptions(engine=engine, script=e.script, include_ok=True))
    assert result.arch.name == "mips"
    records = {r.target.symbol: r for r in result.analysis.records}
    assert sorted(records) == [f"target{i}" for i in range(4)]
    for i, value in enumerate(e.values):
        symbol, record = f"target{i}", records[f"target{i}"]
        assert (record.kind.name, record.distance, record.site.instruction) == (e.case.kind, value, e.case.mnemonic)
        assert record.target.address == target_address(e.case, SITES.get(e.case.kind, DEFAULT_SITES)[i], value)
        if symbol in errors:
            assert record.status is Status.OVERFLOW
            assert errors[symbol] == (e.case.kind, value, e.case.lo, e.case.hi)
        else:
            assert e.case.lo <= value <= e.case.hi
            assert record.status is (Status.AT_RISK if record.kind.usage(value) >= DEFAULT_THRESHOLD else Status.OK)
    assert len(errors) == 2, "each side has exactly one edge crossed"


def test_gnu_ld_fails_exactly_at_the_edges(edge_case: Edges, tmp_path: Path) -> None:
    """GNU ld checks every type here (R_MIPS_26 too) on the same range, and bridges none."""
    e = edge_case
    errors = gnu_errors(e, tmp_path)
    assert errors == {f"target{i}" for i, v in enumerate(e.values) if not e.case.lo <= v <= e.case.hi}
    records = scan(e.obj, ScanOptions(engine="relink", script=e.script, include_ok=True, linker="gnu"))
    assert {r.target.symbol for r in records.analysis.records if r.status is Status.OVERFLOW} == errors


# --- linked-image mode ---------------------------------------------------------------------------

C_SOURCE = """\
int counter;
extern int helper(int);
__attribute__((section(".text.cold"), noinline)) int other(int x) { return x * 3 + counter; }
__attribute__((noinline)) int helper(int x) { if (x > 10) return other(x - 1); return x + 1; }
int loop(int n) {
  int s = 0;
  for (int i = 0; i < n; i++) {
    if (i & 1) s += helper(i); else s -= other(i);
    if (s > 1000) s = counter;
  }
  return s;
}
"""
ASM_SOURCE = """\
.section .text.m,"ax"
.globl mfunc
.type mfunc, @function
mfunc:
  beq $4, $5, 1f
  bne $4, $0, loop
  beqz $4, mfunc
  bnez $5, 1f
  blez $4, 1f
  bgtz $4, other
  bltz $4, 1f
  bgez $4, 1f
  bltzal $4, helper
  bgezal $4, helper
  bal helper
  b 1f
  jal helper
  j other
  beql $4, $5, 1f
  bc1t 1f
  bc1f 1f
1: jr $ra
"""
_DECODED = re.compile(r"^\s*([0-9a-f]+):\s+(b[a-z0-9]*|j|jal)\s+(?:[^<]*,\s*)?(-?\d+) <", re.M)


def objdump_expected(image: Path) -> dict[int, tuple[str, str, int, int]]:
    """Site → (kind, mnemonic, target, checked value) of every branch and j/jal llvm-objdump
    decodes: it prints a branch's offset from P (the delay slot's offset + 4) and a jump's field
    times 4 (the low 28 bits of the target)."""
    found = {}
    for m in _DECODED.finditer(run("llvm-objdump", "-d", "--no-show-raw-insn", image).stdout):
        site, mnemonic, number = int(m[1], 16), m[2], int(m[3])
        if mnemonic in ("j", "jal"):
            region = (site + 4) & ~(REGION - 1)
            found[site] = ("R_MIPS_26", mnemonic, region | number, number)
        else:
            found[site] = ("R_MIPS_PC16", mnemonic, site + number, number - 4)
    return found


@pytest.mark.parametrize("linker", ["ld.lld", GNU_LD])
@pytest.mark.parametrize("abi", ABIS)
def test_linked_image_decoding_matches_objdump(abi: str, linker: str, tmp_path: Path) -> None:
    """Every branch and jump of a linked image: its class, mnemonic, target and checked value as
    llvm-objdump decodes them, and the target's name as llvm-nm has it. For n64 (SHT_RELA) the
    relocation path of the same link (--emit-relocs) agrees. An o32 image's relocations are
    SHT_REL, whose addends the link has overwritten (a jump to a local label is a section symbol
    plus that addend), so the decoded path is the one to trust there."""
    need("clang", linker, "llvm-objdump")
    triple, emulation, _ = ABIS[abi]
    (tmp_path / "a.c").write_text(C_SOURCE)
    (tmp_path / "b.S").write_text(ASM_SOURCE)
    objects = [compile_for(triple, tmp_path / "a.c", tmp_path / "a.o", "-O2", "-ffunction-sections", *KERNEL_FLAGS),
               compile_for(triple, tmp_path / "b.S", tmp_path / "b.o", *KERNEL_FLAGS)]
    image = tmp_path / "image.elf"
    run(linker, *(["-m", emulation] if linker == GNU_LD else []), "-e", "mfunc", *objects, "-o", image)
    expected = objdump_expected(image)
    result = scan(image, ScanOptions(include_ok=True))
    records = {r.site.address: r for r in result.analysis.records}
    assert all((r.provenance.mode, r.provenance.engine) == ("linked", "decoded") for r in records.values())
    assert {a: (r.kind.name, r.site.instruction, r.target.address, r.distance) for a, r in records.items()} == expected
    symbols = nm_symbols(image)
    named = [r for r in records.values() if "+" not in r.target.symbol]
    assert len(named) >= 8 and all(symbols[r.target.symbol] == r.target.address for r in named)
    if not abi.startswith("mips64"):
        return
    relinked = tmp_path / "relocs.elf"
    run(linker, *(["-m", emulation] if linker == GNU_LD else []), "--emit-relocs", "-e", "mfunc", *objects,
        "-o", relinked)
    relocated = scan(relinked, ScanOptions(include_ok=True)).analysis.records
    assert relocated and all(r.provenance.engine == "linked" for r in relocated)
    assert {r.site.address: (r.kind.name, r.distance) for r in relocated} \
        == {a: expected[a][0::3] for a in (r.site.address for r in relocated)}


# --- assembly fixes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FixCase:
    line: str  # the out-of-reach statement, referencing `far`
    title: str  # the start of the fix's title
    before: str  # the relocation of the original statement
    after: str  # the relocation that references `far` once fixed
    far: int  # where `far` goes: beyond the original reach from .text at 0x100000


FIX_CASES = [
    FixCase("beqz $4, far  # retry", "Invert to bnez", "R_MIPS_PC16", "R_MIPS_26", 0x100000 + (1 << 18)),
    FixCase("bne $4, $5, far", "Invert to beq", "R_MIPS_PC16", "R_MIPS_26", 0x100000 + (1 << 18)),
    FixCase("bltz $4, far", "Invert to bgez", "R_MIPS_PC16", "R_MIPS_26", 0x100000 + (1 << 18)),
    FixCase("b far", "Use j", "R_MIPS_PC16", "R_MIPS_26", 0x100000 + (1 << 18)),
    FixCase("bal far", "Use jal", "R_MIPS_PC16", "R_MIPS_26", 0x100000 + (1 << 18)),
    FixCase("jal far", "Load the address into $t9 and jalr", "R_MIPS_26", "R_MIPS_HI16", 0x100000 + REGION),
    FixCase("j far  # tail", "Load the address into $t9 and jr", "R_MIPS_26", "R_MIPS_HI16", 0x100000 + REGION),
]


@pytest.mark.parametrize("case", FIX_CASES, ids=lambda c: c.line.split()[0])
def test_fix_assembles_and_links_beyond_the_old_reach(case: FixCase, tmp_path: Path) -> None:
    """The rewrite assembles (o32, the default reorder mode), references `far` by the longer-reach
    relocation, and both linkers link it with `far` beyond the original instruction's reach."""
    need("clang", "ld.lld", GNU_LD, "llvm-readelf")
    text = f".text\n.globl f\nf:\n\t{case.line}\n\tnop\n" '.section .far,"ax"\n.globl far\nfar:\n\tnop\n'
    asm = parse_asm(text, mips.ARCH.asm_dialect)
    line_no = text.split("\n").index(f"\t{case.line}") + 1
    source = tmp_path / "fix.S"
    source.write_text(text)
    triple, emulation, _ = ABIS["mips"]
    compile_for(triple, source, tmp_path / "original.o", *KERNEL_FLAGS)
    assert (case.before, "far") in relocations_of(tmp_path / "original.o")
    fixes = mips.asm_fixes(source, asm.instruction_on(line_no), text.split("\n")[line_no - 1], asm, asm.macros)
    assert fixes and fixes[0].preferred and fixes[0].title.startswith(case.title), fixes
    fixed = apply_edits(text, fixes[0].edits)
    if "#" in case.line:
        assert case.line[case.line.index("#"):] in fixed, "the comment stays"
    source.write_text(fixed)
    obj = compile_for(triple, source, tmp_path / "fix.o", *KERNEL_FLAGS)
    relocations = relocations_of(obj)
    assert (case.after, "far") in relocations and not any(k == case.before and s == "far" for k, s in relocations)
    script = tmp_path / "fix.lds"
    script.write_text(f"SECTIONS {{ .text 0x100000 : {{ *(.text) }} .far {case.far:#x} : {{ *(.far) }} "
                      "/DISCARD/ : { *(.reginfo) *(.MIPS.abiflags) *(.pdr) } }\n")
    assert lld_overflows(link_noinhibit(script, [obj], tmp_path / "fix.elf")) == []
    gnu = link_noinhibit(script, [obj], tmp_path / "fix.gnu", "-m", emulation, linker=GNU_LD)
    assert "truncated" not in gnu, gnu
    original = link_noinhibit(script, [tmp_path / "original.o"], tmp_path / "original.gnu", "-m", emulation,
                              linker=GNU_LD)
    assert "truncated" in original, "far is out of the original's reach"


# --- log mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("linker", ["ld.lld", GNU_LD])
def test_log_mode_reports_what_the_linker_printed(edge_case: Edges, linker: str, tmp_path: Path) -> None:
    """The edge object as a build dir's vmlinux.o, linked by its recorded command: the log scan
    names exactly the references the linker's log names, with the distances the relocatable
    scan measures (ld.lld prints them; for GNU ld they come from placing vmlinux.o)."""
    e = edge_case
    need(linker)
    if linker == "ld.lld" and e.case.kind in mips.LLD_UNSUPPORTED:
        pytest.skip(f"ld.lld 14 does not know {e.case.kind}")
    build = tmp_path / "build"
    build.mkdir()
    (build / "vmlinux.o").write_bytes(e.obj.read_bytes())
    (build / "vmlinux.lds").write_text(e.script.read_text())
    argv = [linker, *(["-m", ABIS[e.abi][1]] if linker == GNU_LD else []), "-T", "vmlinux.lds"]
    (build / ".vmlinux.cmd").write_text(f"savedcmd_vmlinux := {' '.join(argv)} -o vmlinux vmlinux.o\n")
    result = run(*argv, "--noinhibit-exec", "-o", "vmlinux", "vmlinux.o", cwd=build, check=False)
    (build / "link.log").write_text(result.stdout + result.stderr)
    printed = ({o.symbol for o in lld_overflows(result.stderr)} if linker == "ld.lld"
               else {m[2] for m in _TRUNCATED.finditer(result.stderr)})
    out_of_range = {f"target{i}" for i, v in enumerate(e.values) if not e.case.lo <= v <= e.case.hi}
    assert printed == (set() if linker == "ld.lld" and e.case.kind == "R_MIPS_26" else out_of_range)
    if not printed:  # ld.lld and R_MIPS_26: nothing in the log; the relocatable scan is what finds them
        with pytest.raises(ReachlsError, match="no linker diagnostic"):
            scan(build, ScanOptions(log="link.log"))
        return
    logged = scan(build, ScanOptions(log="link.log")).analysis.records
    assert all(r.provenance.mode == "log" and r.status is Status.OVERFLOW for r in logged)
    assert {r.target.symbol: (r.kind.name, r.distance) for r in logged} == {
        f"target{i}": (e.case.kind, v) for i, v in enumerate(e.values) if f"target{i}" in printed}


# --- MIPS64's packed r_info ----------------------------------------------------------------------

PIC_SOURCE = "extern int g;\nint f(int x) { return x + g; }\n"  # n64 PIC: GPREL16/SUB/HI16 and /LO16 chains
MIPS_TYPE_NAMES = {number: name for name, number in ENUM_RELOC_TYPE_MIPS.items()}


def readelfrelocations_of(obj: Path) -> list[tuple[int, tuple[str, ...], str]]:
    """(offset, the type names, symbol) of every relocation, from llvm-readelf, in table order."""
    rows = []
    for line in run("llvm-readelf", "-r", obj).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[2].startswith("R_MIPS_"):
            rows.append((int(parts[0], 16), tuple(parts[2].split("/")), parts[4]))
    return rows


@pytest.mark.parametrize("abi", ["mips64", "mips64el"])
def test_packed_relocation_info_reads_as_llvm_readelf_shows_it(abi: str, tmp_path: Path) -> None:
    """Every r_info of an n64 object split as llvm-readelf splits it: the symbol, the first type,
    and whether a second or third type composes with it, in either byte order."""
    need("clang", "llvm-readelf")
    (tmp_path / "pic.c").write_text(PIC_SOURCE)
    (tmp_path / "b.S").write_text(ASM_SOURCE)
    triple = ABIS[abi][0]
    objects = [compile_for(triple, tmp_path / "pic.c", tmp_path / "pic.o", "-fpic", "-O2"),
               compile_for(triple, tmp_path / "b.S", tmp_path / "b.o", *KERNEL_FLAGS)]
    composed_seen = 0
    for path in objects:
        with ElfInput(path) as obj:
            architecture_of(obj)
            read = []
            for rel_section in obj.relocation_sections().values():
                relocs = obj.relocations(rel_section)
                composed = relocs.composed if relocs.composed is not None else np.zeros(len(relocs.type), bool)
                read += [(int(o), MIPS_TYPE_NAMES[int(t)], obj.symbol_name(int(s)), bool(c))
                         for o, t, s, c in zip(relocs.offset, relocs.type, relocs.sym, composed)]
        expected = [(o, types[0], symbol, types[1:] != ("R_MIPS_NONE", "R_MIPS_NONE"))
                    for o, types, symbol in readelfrelocations_of(path)]
        assert sorted(read) == sorted(expected)
        composed_seen += sum(c for *_, c in expected)
    assert composed_seen >= 2  # the PIC object's GPREL16/SUB/HI16 and GPREL16/SUB/LO16


@pytest.mark.parametrize("abi", ["mips64", "mips64el"])
def test_a_composed_short_reach_relocation_is_counted_unchecked(abi: str, tmp_path: Path) -> None:
    """A PC16 whose r_type2 is set (patched here to R_MIPS_64, as llvm-readelf then shows) is
    neither measured as a plain PC16 nor dropped: it is counted unchecked, composed-relocation."""
    need("clang", "llvm-readelf")
    e = build(CASES[0], abi)
    data = bytearray(e.obj.read_bytes())
    with ElfInput(e.obj) as obj:
        architecture_of(obj)
        rela = next(s for s in obj.relocation_sections().values() if obj.sections[s.info].name == ".site0")
        entry = rela.offset  # the first entry of .rela.site0: the branch of site 0
    data[entry + 8 + 6] = 18  # r_info's bytes: r_sym (4), r_ssym, r_type3, r_type2, r_type
    patched = tmp_path / "composed.o"
    patched.write_bytes(bytes(data))
    assert readelfrelocations_of(patched)[0][1] == ("R_MIPS_PC16", "R_MIPS_64", "R_MIPS_NONE")
    analysis = scan(patched, ScanOptions(engine="model", script=e.script, include_ok=True)).analysis
    assert sorted(r.target.symbol for r in analysis.records) == ["target1", "target2", "target3"]
    (group,) = analysis.unchecked
    assert (group.kind, group.reason.value, group.count) == ("R_MIPS_PC16", "composed-relocation", 1)
