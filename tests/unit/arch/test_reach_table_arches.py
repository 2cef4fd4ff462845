"""The 32-bit Arm (A32, Thumb-2), RISC-V 64 and PowerPC64 reach tables, checked at their edges
against the real linkers.

As in test_reach_table.py: for each relocation type a linker script puts four targets exactly at
the last reachable distance on each side of a site and one step beyond. ld.lld 14 (with
--noinhibit-exec) says which are out of range, with the value and range it checked; a thunk
symbol in the output says which it bridged. reachls must agree with both engines, on the status,
on the distance (which the test also knows from where it put the target), and on the range.
GNU ld, the second linker, must agree with the arch modules' `GNU_LD_THUNKS` on what it bridges,
and on the range of the types neither linker bridges.

ld.lld does not always print the distance itself: RISC-V branches are checked in halfwords,
auipc pairs on their rounded high 20 bits, Arm loads and ADR on the magnitude (`[0, 4095]`), and
an A32 ADR (ALU_PC_G0) is "unencodeable"; `PRINTED` converts a distance into what ld.lld prints.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from reachls.pipeline import ScanOptions, scan
from reachls.record import DEFAULT_THRESHOLD, RelocKind, Status
from toolchain import compile_for, link_noinhibit, lld_overflows, need, nm_symbols, run


@dataclass(frozen=True)
class Case:
    arch: str  # reachls.arch module
    kind: str
    site: str  # the referencing statement; {t} is the target symbol
    isa: str = ""  # ".arm" or ".thumb" on Arm
    addend: int = 0  # what the site's encoding carries (the PC bias on Arm: -8 A32, -4 Thumb)
    target: str = "code"  # "code": a function (Thumb bit set on Thumb); "data": a byte
    step: int = 1  # the spacing that site and target alignment allow between distances
    printed: str = "value"  # how ld.lld reports the checked value (see PRINTED)


def _inst(kind: str, encoding: str) -> str:
    return f".reloc ., {kind}, {{t}}\n  {encoding}"


CASES = [
    # 32-bit Arm, A32. PC24/PLT32 are what older assemblers emit for b/bl; .reloc gives them here.
    Case("arm", "R_ARM_JUMP24", "b {t}", ".arm", -8, step=4),
    Case("arm", "R_ARM_CALL", "bl {t}", ".arm", -8, step=4),
    Case("arm", "R_ARM_PC24", _inst("R_ARM_PC24", ".inst 0xeafffffe"), ".arm", -8, step=4),
    Case("arm", "R_ARM_PLT32", _inst("R_ARM_PLT32", ".inst 0xebfffffe"), ".arm", -8, step=4),
    Case("arm", "R_ARM_LDR_PC_G0", _inst("R_ARM_LDR_PC_G0", "ldr r0, [pc, #-8]"), ".arm", -8, "data",
         printed="magnitude"),
    Case("arm", "R_ARM_LDRS_PC_G0", _inst("R_ARM_LDRS_PC_G0", "ldrd r0, r1, [pc, #-8]"), ".arm", -8, "data",
         printed="magnitude"),
    Case("arm", "R_ARM_ALU_PC_G0", _inst("R_ARM_ALU_PC_G0", "sub r0, pc, #8"), ".arm", -8, "data",
         printed="unencodable"),
    # Thumb-2
    Case("arm", "R_ARM_THM_CALL", "bl {t}", ".thumb", -4, step=2),
    Case("arm", "R_ARM_THM_JUMP24", "b.w {t}", ".thumb", -4, step=2),
    Case("arm", "R_ARM_THM_JUMP19", "beq.w {t}", ".thumb", -4, step=2),
    Case("arm", "R_ARM_THM_JUMP11", _inst("R_ARM_THM_JUMP11", "b.n ."), ".thumb", -4, step=2),
    Case("arm", "R_ARM_THM_JUMP8", _inst("R_ARM_THM_JUMP8", "beq.n ."), ".thumb", -4, step=2),
    Case("arm", "R_ARM_THM_PC8", _inst("R_ARM_THM_PC8", "ldr r0, [pc, #1020]"), ".thumb", -4, "data", step=4),
    Case("arm", "R_ARM_THM_PC12", _inst("R_ARM_THM_PC12", "ldr.w r0, [pc, #-4]"), ".thumb", -4, "data",
         printed="magnitude"),
    Case("arm", "R_ARM_THM_ALU_PREL_11_0", _inst("R_ARM_THM_ALU_PREL_11_0", "subw r0, pc, #4"), ".thumb", -4,
         "data", printed="magnitude"),
    # RISC-V 64, without relaxation so that distances are what the script says
    Case("riscv64", "R_RISCV_BRANCH", "beq a0, a1, {t}", step=2, printed="halfwords"),
    Case("riscv64", "R_RISCV_JAL", "jal {t}", step=2, printed="halfwords"),
    # the assemblers widen c.beqz/c.j to another section; .reloc keeps the compressed forms
    Case("riscv64", "R_RISCV_RVC_BRANCH", _inst("R_RISCV_RVC_BRANCH", ".2byte 0xc101"), step=2, printed="halfwords"),
    Case("riscv64", "R_RISCV_RVC_JUMP", _inst("R_RISCV_RVC_JUMP", ".2byte 0xa001"), step=2, printed="halfwords"),
    Case("riscv64", "R_RISCV_CALL", "call {t}", step=2, printed="hi20"),
    Case("riscv64", "R_RISCV_CALL_PLT", "call {t}@plt", step=2, printed="hi20"),
    Case("riscv64", "R_RISCV_PCREL_HI20", "1: auipc a0, %pcrel_hi({t})\n  addi a0, a0, %pcrel_lo(1b)", target="data",
         printed="hi20"),
    # PowerPC64 ELFv2
    Case("ppc64", "R_PPC64_REL24", "b {t}", step=4),
    Case("ppc64", "R_PPC64_REL14", "beq 0, {t}", step=4),
    Case("ppc64", "R_PPC64_REL24_NOTOC", _inst("R_PPC64_REL24_NOTOC", ".long 0x48000001"), step=4),
    Case("ppc64", "R_PPC64_REL14_BRTAKEN", _inst("R_PPC64_REL14_BRTAKEN", ".long 0x41e20000"), step=4),
    Case("ppc64", "R_PPC64_REL14_BRNTAKEN", _inst("R_PPC64_REL14_BRNTAKEN", ".long 0x41c20000"), step=4),
]

#: The mnemonic reachls must name for each site (the spelling the source uses, without .w/.n).
MNEMONICS = {"R_ARM_JUMP24": "b", "R_ARM_CALL": "bl", "R_ARM_PC24": "b", "R_ARM_PLT32": "bl", "R_ARM_LDR_PC_G0": "ldr",
             "R_ARM_LDRS_PC_G0": "ldrd", "R_ARM_ALU_PC_G0": "adr", "R_ARM_THM_CALL": "bl", "R_ARM_THM_JUMP24": "b",
             "R_ARM_THM_JUMP19": "beq", "R_ARM_THM_JUMP11": "b", "R_ARM_THM_JUMP8": "beq", "R_ARM_THM_PC8": "ldr",
             "R_ARM_THM_PC12": "ldr", "R_ARM_THM_ALU_PREL_11_0": "adr", "R_RISCV_BRANCH": "beq", "R_RISCV_JAL": "jal",
             "R_RISCV_RVC_BRANCH": "c.beqz", "R_RISCV_RVC_JUMP": "c.j", "R_RISCV_CALL": "call",
             "R_RISCV_CALL_PLT": "call", "R_RISCV_PCREL_HI20": "auipc", "R_PPC64_REL24": "b", "R_PPC64_REL14": "beq",
             "R_PPC64_REL24_NOTOC": "bl", "R_PPC64_REL14_BRTAKEN": "beq", "R_PPC64_REL14_BRNTAKEN": "beq"}
TRIPLES = {"arm": ("armv7a-linux-gnueabihf", "arm-linux-gnueabihf-ld"),
           "riscv64": ("riscv64-linux-gnu", "riscv64-linux-gnu-ld"),
           "ppc64": ("powerpc64le-linux-gnu", "powerpc64le-linux-gnu-ld")}
HEADERS = {"arm": ".syntax unified", "riscv64": ".option norelax", "ppc64": ""}
RETURN = {".arm": "bx lr", ".thumb": "bx lr", "": "ret", "ppc64": "blr"}
#: 32-bit Arm keeps to 4 GiB; the others use addresses far apart, as test_reach_table.py does.
SITES = {"arm": (0x1000_0000, 0x1000_0000), "riscv64": (1 << 36, 1 << 34), "ppc64": (1 << 36, 1 << 34)}


def _signed64(value: int) -> int:
    """ld.lld prints a failed unsigned check of a negative value as its uint64 bit pattern."""
    return value - (1 << 64) if value >= 1 << 63 else value


def printed(case: Case, kind: RelocKind, distance: int) -> tuple[int, int | None, int | None]:
    """(value, lo, hi) as ld.lld 14's message shows a check of `distance` for this kind."""
    if case.printed == "magnitude":
        return abs(distance), 0, kind.hi
    if case.printed == "unencodable":
        return abs(distance), None, None
    if case.printed == "halfwords":
        return distance >> 1, kind.lo >> 1, kind.hi >> 1
    if case.printed == "hi20":
        return (distance + 0x800) >> 12, -(1 << 19), (1 << 19) - 1
    return distance, kind.lo, kind.hi


def edges(kind: RelocKind, case: Case) -> list[int]:
    """Last reachable distance on each side and one step past it, among the distances the
    alignment allows (a Thumb function's bit 0 and the PC bias shift them off multiples of the step)."""
    residue = (case.addend + (case.isa == ".thumb" and case.target == "code")) % case.step
    top = kind.hi - (kind.hi - residue) % case.step
    bottom = kind.lo + (residue - kind.lo) % case.step
    return [top, top + case.step, bottom, bottom - case.step]


def module(case: Case):
    return importlib.import_module(f"reachls.arch.{case.arch}")


def kind_of(case: Case) -> RelocKind:
    return next(k for k in module(case).KINDS.values() if k.name == case.kind)


def _target_lines(case: Case, i: int) -> list[str]:
    if case.target == "data":
        return [f'.section .target{i},"a"', f".globl target{i}", f"target{i}:", "  .byte 0"]
    lines = [f'.section .target{i},"ax"', case.isa, f".globl target{i}"]
    if case.arch == "arm":
        lines += [f".type target{i}, %function"] + ([".thumb_func"] if case.isa == ".thumb" else [])
    return lines + [f"target{i}:", "  " + RETURN["ppc64" if case.arch == "ppc64" else case.isa]]


@dataclass(frozen=True)
class Edges:
    case: Case
    kind: RelocKind
    distances: list[int]
    obj: Path
    script: Path
    tmp: Path


def build(case: Case, tmp: Path, distances: list[int]) -> Edges:
    """The object and the script putting target i at distance i from site i."""
    kind = kind_of(case)
    base, spacing = SITES[case.arch]
    thumb_bit = int(case.isa == ".thumb" and case.target == "code")
    asm, script = [HEADERS[case.arch]], ["SECTIONS {"]
    for i, distance in enumerate(distances):
        site = base + i * spacing
        asm += [f'.section .site{i},"ax"', case.isa, f".globl site{i}", f"site{i}:",
                "  " + case.site.format(t=f"target{i}")] + _target_lines(case, i)
        target = site + distance - case.addend - thumb_bit  # S + A - P = distance, S with its Thumb bit
        script += [f"  .site{i} {site:#x} : AT({2 * i + 1:#x}0000) {{ *(.site{i}) }}",
                   f"  .target{i} {target:#x} : AT({2 * i + 2:#x}0000) {{ *(.target{i}) }}"]
    (tmp / "edges.S").write_text("\n".join(asm) + "\n")
    (tmp / "edges.lds").write_text("\n".join(script) + "\n}\n")
    triple = TRIPLES[case.arch][0]
    obj = compile_for(triple, tmp / "edges.S", tmp / "edges.o", *(["-mno-relax"] if case.arch == "riscv64" else []))
    return Edges(case, kind, distances, obj, tmp / "edges.lds", tmp)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.kind)
def edge_case(request, tmp_path_factory) -> Edges:
    case = request.param
    return build(case, tmp_path_factory.mktemp(case.kind), edges(kind_of(case), case))


_UNENCODABLE = re.compile(r"\((\.site\d+)\+0x0\): unencodeable immediate (\d+) for relocation (R_\w+)")


def lld_verdicts(e: Edges) -> tuple[dict[str, tuple[str, int, int | None, int | None]], set[str]]:
    """ld.lld's errors by target symbol, as (type, value, lo, hi), and the targets it bridged."""
    image = e.tmp / "edges.elf"
    log = link_noinhibit(e.script, [e.obj], image, require_output=e.case.printed != "unencodable")
    errors = {o.symbol: (o.type, _signed64(o.distance), o.lo, o.hi) for o in lld_overflows(log)}
    for match in _UNENCODABLE.finditer(log):
        errors["target" + match[1].removeprefix(".site")] = (match[3], int(match[2]), None, None)
    own = set(nm_symbols(e.obj)) if image.is_file() else set()
    bridged = {f"target{i}" for i in range(len(e.distances)) if image.is_file()
               and any(n.endswith(f"_target{i}") and n not in own for n in nm_symbols(image))}
    return errors, bridged


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_statuses_agree_with_lld_at_the_edges(edge_case: Edges, engine: str) -> None:
    e = edge_case
    if e.case.kind in getattr(module(e.case), "LLD_UNSUPPORTED", ()):
        pytest.skip(f"ld.lld 14 does not support {e.case.kind} (GNU ld is checked below)")
    errors, bridged = lld_verdicts(e)
    result = scan(e.obj, ScanOptions(engine=engine, script=e.script, include_ok=True))
    records = {r.target.symbol: r for r in result.analysis.records}
    assert sorted(records) == [f"target{i}" for i in range(len(e.distances))]
    for i, distance in enumerate(e.distances):
        symbol, record = f"target{i}", records[f"target{i}"]
        assert (record.kind, record.distance) == (e.kind, distance)
        assert record.site.instruction == MNEMONICS[e.kind.name]
        assert record.to_json_line() == json.dumps(record.to_json())  # usage at the edges: inf for THM_PC8
        if symbol in errors:
            assert record.status is Status.OVERFLOW
            assert errors[symbol] == (e.kind.name, *printed(e.case, e.kind, distance))
        elif symbol in bridged:
            assert record.status is Status.VENEER and e.kind.thunk
            assert not e.kind.in_range(distance)
        else:
            assert e.kind.in_range(distance), f"ld.lld accepted {distance} for {e.kind.name} without a thunk"
            assert record.status is (Status.AT_RISK if e.kind.usage(distance) >= DEFAULT_THRESHOLD else Status.OK)
    crossed = [r for r in records.values() if r.status in (Status.OVERFLOW, Status.VENEER)]
    assert len(crossed) == 2, "each side has exactly one edge crossed"


_TRUNCATED = re.compile(r"relocation truncated to fit: (R_\w+) against (?:symbol )?`([^']+)'")


def gnu_ld_errors(e: Edges, name: str) -> set[str]:
    linker = TRIPLES[e.case.arch][1]
    log = link_noinhibit(e.script, [e.obj], e.tmp / f"{name}.elf", linker=linker, require_output=False)
    return {m[2] for m in _TRUNCATED.finditer(log) if m[1] == e.kind.name}


def test_gnu_ld_bridges_what_the_table_says(edge_case: Edges, tmp_path: Path) -> None:
    """Far out of range: GNU ld reports the reference, or bridges it as `GNU_LD_THUNKS` says."""
    case, kind = edge_case.case, edge_case.kind
    need(TRIPLES[case.arch][1])
    thunk = module(case).GNU_LD_THUNKS.get(kind.name, kind.thunk)
    unchecked = kind.name in getattr(module(case), "GNU_LD_UNCHECKED", ())
    span, (top, _, bottom, _) = kind.hi - kind.lo + 1, edges(kind, case)
    far = build(case, tmp_path, [top + 3 * span // case.step * case.step, bottom - 3 * span // case.step * case.step])
    errors = gnu_ld_errors(far, "far")
    assert errors == (set() if thunk or unchecked else {"target0", "target1"})
    if not unchecked:  # reachls told the build links with GNU ld says what GNU ld does
        records = scan(far.obj, ScanOptions(engine="relink", script=far.script, include_ok=True, linker="gnu"))
        statuses = {r.target.symbol: r.status for r in records.analysis.records if r.kind.name == kind.name}
        assert statuses == {t: Status.OVERFLOW if t in errors else Status.VENEER for t in ("target0", "target1")}


def test_gnu_ld_range_matches_where_nothing_is_bridged(edge_case: Edges) -> None:
    """Without stubs nothing moves: GNU ld must fail exactly at the edges of the table, or of
    its `GNU_LD_RANGES` entry where GNU ld checks another range."""
    e, arch = edge_case, module(edge_case.case)
    need(TRIPLES[e.case.arch][1])
    if arch.GNU_LD_THUNKS.get(e.kind.name, e.kind.thunk) or e.kind.name in getattr(arch, "GNU_LD_UNCHECKED", ()):
        pytest.skip("bridged by GNU ld, or not range-checked by it")
    lo, hi = getattr(arch, "GNU_LD_RANGES", {}).get(e.kind.name, (e.kind.lo, e.kind.hi))
    errors = gnu_ld_errors(e, "gnu")
    assert errors == {f"target{i}" for i, d in enumerate(e.distances) if not lo <= d <= hi}
    records = scan(e.obj, ScanOptions(engine="relink", script=e.script, include_ok=True, linker="gnu"))
    assert {r.target.symbol for r in records.analysis.records
            if r.kind.name == e.kind.name and r.status is Status.OVERFLOW} == errors


@pytest.mark.parametrize("isa, statement, addend", [
    (".thumb", "bl far + 0x400002", 0x400002), (".thumb", "b.w far - 0x7ffffe", -0x7FFFFE),
    (".thumb", "beq.w far + 0x3fffe", 0x3FFFE), (".thumb", "beq.w far - 0x80000", -0x80000),
    (".arm", "b far + 0x1000004", 0x1000004), (".arm", "bl far - 0x1000000", -0x1000000)])
def test_implicit_addends_are_read_from_the_instruction(tmp_path: Path, isa: str, statement: str, addend: int) -> None:
    """SHT_REL: the addend the source wrote comes back out of the encoded field, PC bias removed.

    Decoded as the psABI (and GNU ld) says; ld.lld 14 drops the sign bit S of Thumb B.W/BL and
    B<cc>.W addends, so it misreads those beyond ±8 MiB / ±512 KiB (the -0x7ffffe, -0x80000 rows)."""
    source = tmp_path / "a.S"
    source.write_text(f'.syntax unified\n.text\n{isa}\n.globl f\nf:\n  {statement}\n'
                      f'.section .far,"ax"\n.globl far\nfar:\n  bx lr\n')
    need("arm-linux-gnueabihf-as")  # clang 14 refuses an addend on a Thumb conditional branch
    obj = tmp_path / "a.o"
    run("arm-linux-gnueabihf-as", "-march=armv7-a", source, "-o", obj)
    script = tmp_path / "a.lds"
    script.write_text("SECTIONS { .text 0x1000000 : { *(.text) } .far 0x2000000 : { *(.far) } }\n")
    (record,) = scan(obj, ScanOptions(engine="model", script=script, include_ok=True)).analysis.records
    far = 0x2000000  # a plain label: no Thumb bit
    assert (record.target.addend, record.target.address) == (addend, far + addend)
    assert record.distance == far + addend - 0x1000000 + (-4 if isa == ".thumb" else -8)
