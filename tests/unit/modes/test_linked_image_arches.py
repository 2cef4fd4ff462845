"""Linked-image mode for 32-bit Arm (A32 + Thumb-2), RISC-V 64 (with RVC) and PowerPC64, against the toolchain.

As test_linked_image.py does for AArch64: llvm-objdump's disassembly is the answer key for every
short-reach instruction (its class, target and distance, and the count per class), the linkers'
thunk symbols say which branches go through a veneer, and the relocation path of reachls on the
same link made with --emit-relocs must give the same distances. The parsers of objdump's text
here are the tests' own; ISA (Arm) comes from the mapping symbols llvm-nm lists, instruction size
from the raw bytes objdump shows.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from reachls.arch import arm, ppc64, riscv64
from reachls.decode import LinkedImage, resolve_veneer
from reachls.elf import ElfInput
from reachls.pipeline import ScanOptions, scan
from reachls.record import Status
from toolchain import compile_for, need, nm_symbols, run

TRIPLES = {"arm": "armv7a-linux-gnueabihf", "riscv64": "riscv64-linux-gnu", "ppc64": "powerpc64le-linux-gnu"}
GNU_LD = {"arm": "arm-linux-gnueabihf-ld", "riscv64": "riscv64-linux-gnu-ld", "ppc64": "powerpc64le-linux-gnu-ld"}
FLAGS = {"arm": ["-mthumb"], "riscv64": ["-mno-relax"], "ppc64": []}

C_SOURCE = """\
int counter;
const char *names[] = {"a", "b"};
extern int helper(int);
__attribute__((section(".text.cold"), noinline)) int other(int x) { return x * 3 + counter; }
__attribute__((noinline)) int helper(int x) { if (x > 10) return other(x - 1); return x + 1; }
int loop(int n) {
  int s = 0;
  for (int i = 0; i < n; i++) {
    if (i & 1) s += helper(i); else s -= other(i);
    if (s > 1000) s = *names[i & 1];
  }
  return s;
}
"""

ASM = {
    "arm": """\
.syntax unified
.section .text.thumb,"ax"
.thumb
.globl tfunc
.type tfunc, %function
.thumb_func
tfunc:
  ldr r0, lit
  ldr.w r1, lit
  ldr.w r1, [pc, #-4]
  adr r2, lit
  adr.w r3, lit
  cmp r0, #0
  beq 1f
  bne.w helper
  blt.w afunc2
  b.n 1f
  b.w tfunc
  bl afunc
  bl helper
  bl loop
1: bx lr
  .align 2
lit: .word 0xf000f000
  .word 0xd0fee7fe
.arm
.section .text.arm,"ax"
.globl afunc
.type afunc, %function
afunc:
  ldr r0, alit
  ldrb r0, alit
  ldr r0, [pc, #-8]
  adr r1, alit
  bl tfunc
  blne afunc
  b afunc
  bl afunc2
  ldrh r2, alit
  ldrd r2, r3, alit
  bx lr
alit: .word 0xebfffffe
.section .text.arm2,"ax"
.globl afunc2
.type afunc2, %function
afunc2:
  bl helper
  b tfunc
  bx lr
""",
    "riscv64": """\
.section .text.r,"ax"
.globl rfunc
.type rfunc, @function
rfunc:
  beq a0, a1, 1f
  c.beqz a0, 1f
  bltu a1, a0, rfunc
  bgeu a1, a0, loop
  c.bnez a1, 1f
  c.j 1f
  jal rfunc
  j other
  call helper
  tail helper
1: lla a0, rdata
  lw a1, 0(a0)
2: auipc a2, %pcrel_hi(rdata)
  addi a3, a3, 1
  ld a4, %pcrel_lo(2b)(a2)
3: auipc a5, %pcrel_hi(rdata + 8)
  sw a1, %pcrel_lo(3b)(a5)
  ret
.data
rdata: .quad 1, 2
""",
    "ppc64": """\
.abiversion 2
.section .text.p,"ax"
.globl pfunc
.type pfunc, @function
pfunc:
  cmpdi 0, 3, 0
  beq 0, 1f
  bne 0, other
  bdnz pfunc
  bgt 1, loop
  bl helper
  nop
  b other
  beqlr 0
1: blr
""",
}


# --- the answer key: llvm-objdump -------------------------------------------------------------

_LINE = re.compile(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(\S+)\s*(.*)$")
_HEX = re.compile(r"0x([0-9a-f]+)")
_REG_BASE = re.compile(r"(-?\d+)\((\w+)\)$")


def _objdump(image: Path) -> list[tuple[int, int, str, str]]:
    """(address, size in bytes, mnemonic, operands and comment) of every instruction objdump decodes."""
    need("llvm-objdump")
    rows = []
    for text in run("llvm-objdump", "-d", image).stdout.splitlines():
        match = _LINE.match(text)
        if match and not match.group(3).startswith("."):  # .word/.short: data
            rows.append((int(match.group(1), 16), len(match.group(2).split()), match.group(3), match.group(4)))
    return rows


def _odd_functions(image: Path) -> set[int]:
    """Addresses of function symbols with bit 0 set (Thumb functions), bit cleared, read with pyelftools."""
    with open(image, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s["st_value"] & ~1 for s in symtab.iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_value"] & 1 and s["st_shndx"] != "SHN_UNDEF"}


def _arm_isa(image: Path) -> list[tuple[int, str]]:
    """Sorted (address, 'a'|'t'|'d') from the mapping symbols llvm-nm lists."""
    marks = [(address, name[1]) for name, address in _all_symbols(image) if re.fullmatch(r"\$[atd](\..*)?", name)]
    return sorted(marks)


def _all_symbols(image: Path) -> list[tuple[str, int]]:
    return [(parts[2], int(parts[0], 16)) for parts in (line.split() for line in run("llvm-nm", "--special-syms", image).stdout.splitlines())
            if len(parts) == 3]


_COND = "(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)"


def expected_arm(image: Path) -> dict[int, tuple[str, int, int]]:
    """Address → (kind, target, distance) of every short-reach A32/Thumb instruction objdump decodes."""
    marks, odd = _arm_isa(image), _odd_functions(image)
    found = {}
    in_it = 0  # instructions left in an IT block: there b<c> is the unconditional encoding (b.w / b.n)
    for address, size, mnemonic, rest in _objdump(image):
        conditional_encoding = in_it == 0
        in_it = len(mnemonic) - 1 if re.fullmatch(r"it[te]{0,3}", mnemonic) else max(in_it - 1, 0)
        isa = next((m for a, m in reversed(marks) if a <= address), "a")
        if isa == "d":
            continue
        thumb = isa == "t"
        mnemonic = mnemonic.removesuffix(".w").removesuffix(".n")
        bias, pc, aligned = (4, address + 4, (address + 4) & ~3) if thumb else (8, address + 8, address + 8)
        operands = re.sub(r"\s*<[^>]*>", "", rest.split("@")[0]).strip()
        comment = _HEX.search(rest.split("@")[1]) if "@" in rest else None
        branch = _HEX.fullmatch(operands)
        kind = target = None
        into_thumb = False
        if branch and re.fullmatch(rf"bl?x?{_COND}?", mnemonic):
            target = int(branch.group(1), 16)
            if thumb:
                if mnemonic in ("bl", "blx"):
                    kind, into_thumb = "THM_CALL", mnemonic == "bl"
                elif mnemonic == "b" or not conditional_encoding:
                    kind, into_thumb = ("THM_JUMP24" if size == 4 else "THM_JUMP11"), True
                else:
                    kind, into_thumb = ("THM_JUMP19" if size == 4 else "THM_JUMP8"), True
            else:
                kind = "CALL" if mnemonic in ("bl", "blx") else "JUMP24"
                into_thumb = mnemonic == "blx"
        elif re.fullmatch(r"ldr(b|h|sb|sh|d)?", mnemonic) and "[pc" in operands and comment:
            target = int(comment.group(1), 16)
            if thumb:
                kind = "THM_PC8" if size == 2 else "THM_PC12"
            else:
                kind = "LDR_PC_G0" if mnemonic in ("ldr", "ldrb") else "LDRS_PC_G0"
        elif (mnemonic == "adr" and re.fullmatch(r"r\d+, #-?\d+", operands)) or (
                mnemonic in ("add", "sub", "addw", "subw") and re.fullmatch(r"r\d+, pc, #\d+", operands)):
            imm = re.search(r"#(-?\d+)$", operands)
            value = int(imm.group(1)) * (-1 if mnemonic.startswith("sub") else 1)
            target = (aligned if thumb else pc) + value
            kind = ("THM_PC8" if size == 2 else "THM_ALU_PREL_11_0") if thumb else "ALU_PC_G0"
        if kind is None:
            continue
        base = (address & ~3) if kind in ("THM_PC8", "THM_PC12", "THM_ALU_PREL_11_0", "LDR_PC_G0", "LDRS_PC_G0",
                                          "ALU_PC_G0") else address
        bit = int(into_thumb and target in odd)
        found[address] = (kind, target, target + bit - bias - base)
    return found


_RV_BRANCH = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez", "blez", "bgez", "bltz", "bgtz", "bgt", "ble",
              "bgtu", "bleu"}


def expected_riscv64(image: Path) -> dict[int, tuple[str, int, int]]:
    """Branches, jal/j, their compressed forms, and auipc paired with the instruction using its register."""
    rows = _objdump(image)
    found = {}
    for i, (address, size, mnemonic, rest) in enumerate(rows):
        target = _HEX.search(rest)
        if mnemonic in _RV_BRANCH and target:
            kind = "BRANCH" if size == 4 else "RVC_BRANCH"
        elif mnemonic in ("jal", "j") and target:
            kind = ("JAL" if size == 4 else "RVC_JUMP")
        elif mnemonic == "auipc":
            register, high = (x.strip() for x in rest.split(","))
            high_bytes = ((int(high) ^ 0x80000) - 0x80000) << 12
            kind, low = "PCREL_HI20", 0
            for j, (_, _, next_mnemonic, next_rest) in enumerate(rows[i + 1:i + 5], 1):
                operands = [x.strip() for x in next_rest.split(",")]
                base = _REG_BASE.search(operands[-1])
                if base and base.group(2) == register and (next_mnemonic in ("jalr", "jr") or len(operands) == 2):
                    low = int(base.group(1))
                    kind = "CALL" if j == 1 and next_mnemonic in ("jalr", "jr") else kind
                    break
                if next_mnemonic == "addi" and len(operands) == 3 and operands[1] == register:
                    low = int(operands[2])
                    break
                if operands and operands[0] == register:
                    break
            found[address] = (kind, address + high_bytes + low, high_bytes + low)
            continue
        else:
            continue
        value = int(target.group(1), 16)
        found[address] = (kind, value, value - address)
    return found


def expected_ppc64(image: Path) -> dict[int, tuple[str, int, int]]:
    """I-form b/bl (REL24) and every B-form conditional branch with a target (REL14)."""
    found = {}
    for address, _, mnemonic, rest in _objdump(image):
        target = _HEX.search(rest.split("<")[0])
        if not target or not mnemonic.startswith("b") or mnemonic.endswith("a") or mnemonic in ("blr", "bctr"):
            continue
        value = int(target.group(1), 16)
        found[address] = ("REL24" if mnemonic in ("b", "bl") else "REL14", value, value - address)
    return found


EXPECTED = {"arm": expected_arm, "riscv64": expected_riscv64, "ppc64": expected_ppc64}


def assert_matches_objdump(arch: str, image: Path) -> list:
    expected = EXPECTED[arch](image)
    result = scan(image, ScanOptions(include_ok=True))
    assert result.analysis.records[0].kind.arch == arch
    records = {r.site.address: r for r in result.analysis.records}
    assert len(records) == len(result.analysis.records), "one record per site"
    assert all((r.provenance.mode, r.provenance.engine) == ("linked", "decoded") for r in records.values())
    assert Counter(r.kind.short_name for r in records.values()) == Counter(k for k, _, _ in expected.values())
    assert set(records) == set(expected), sorted(hex(a) for a in set(records) ^ set(expected))
    assert result.analysis.total == len(expected)
    for address, (kind, target, distance) in expected.items():
        record = records[address]
        assert (record.kind.short_name, record.target.address, record.distance) == (kind, target, distance), (
            hex(address), record.site.instruction, hex(record.target.address), record.distance)
        assert record.kind.in_range(record.distance)
        assert record.site.instruction is not None, hex(address)
    return result.analysis.records


# --- the images -------------------------------------------------------------------------------

def _objects(arch: str, tmp: Path) -> list[Path]:
    (tmp / "a.c").write_text(C_SOURCE)
    (tmp / "b.S").write_text(ASM[arch])
    return [compile_for(TRIPLES[arch], tmp / "a.c", tmp / "a.o", "-O2", "-ffunction-sections", "-fno-pic",
                        *FLAGS[arch]),
            compile_for(TRIPLES[arch], tmp / "b.S", tmp / "b.o", *FLAGS[arch])]


ENTRY = {"arm": "tfunc", "riscv64": "rfunc", "ppc64": "pfunc"}


def _link(arch: str, linker: str, objects: list[Path], output: Path, *flags: str) -> Path:
    argv = ["ld.lld"] if linker == "lld" else [GNU_LD[arch]]
    need(argv[0])
    run(*argv, *flags, "-e", ENTRY[arch], *objects, "-o", output)
    return output


CASES = [(arch, linker) for arch in TRIPLES for linker in ("lld", "gnu")]


@pytest.mark.parametrize("arch, linker", CASES)
def test_every_short_reach_instruction_matches_objdump(tmp_path, arch, linker):
    image = _link(arch, linker, _objects(arch, tmp_path), tmp_path / "image.elf")
    records = assert_matches_objdump(arch, image)
    kinds = {r.kind.short_name for r in records}
    assert kinds >= {"arm": {"CALL", "JUMP24", "LDR_PC_G0", "LDRS_PC_G0", "ALU_PC_G0", "THM_CALL", "THM_JUMP24",
                             "THM_JUMP19", "THM_JUMP11", "THM_JUMP8", "THM_PC8", "THM_PC12", "THM_ALU_PREL_11_0"},
                     "riscv64": {"BRANCH", "JAL", "RVC_BRANCH", "RVC_JUMP", "PCREL_HI20"} | (
                         {"CALL"} if linker == "lld" else set()),  # GNU ld relaxes call/tail to jal/j
                     "ppc64": {"REL24", "REL14"}}[arch]


def _local_entry_offset(image: Path) -> dict[int, int]:
    """ELFv2: global entry address → bytes to the local entry (st_other bits 5-7), where nonzero."""
    with open(image, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s["st_value"]: ((1 << (s["st_other"]["local"] if isinstance(s["st_other"]["local"], int) else 0)) >> 2) << 2
                for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"}


DECODED_AS = {"CALL_PLT": "CALL", "PLT32": "CALL", "PC24": "JUMP24"}


@pytest.mark.parametrize("arch", sorted(TRIPLES))
def test_decoded_distances_equal_the_relocation_path(tmp_path, arch):
    """One ld.lld link with and one without --emit-relocs: both paths give the same distances.

    32-bit Arm is REL: in a linked image the linker has overwritten the implicit addends, and the
    relocation path takes them as 0, dropping the PC bias (-8 A32, -4 Thumb) that ld.lld's check
    and the relocatable path include; the decoded path keeps it, so they differ by exactly
    `pc_bias`. PowerPC64: a call into a function with a local entry lands past the global entry
    the relocation path measures to."""
    objects = _objects(arch, tmp_path)
    relocated_image = _link(arch, "lld", objects, tmp_path / "relocs.elf", "--emit-relocs")
    plain = _link(arch, "lld", objects, tmp_path / "plain.elf")
    relocated = scan(relocated_image, ScanOptions(include_ok=True)).analysis.records
    decoded = {r.site.address: r for r in scan(plain, ScanOptions(include_ok=True)).analysis.records}
    module = {"arm": arm, "riscv64": riscv64, "ppc64": ppc64}[arch]
    local_entry = _local_entry_offset(plain) if arch == "ppc64" else {}
    checked = 0
    for record in relocated:
        assert record.provenance.engine == "linked"
        twin = decoded[record.site.address]
        kind = DECODED_AS.get(record.kind.short_name, record.kind.short_name)
        assert twin.kind.short_name == kind, record
        if twin.status is Status.VENEER:
            assert twin.target.symbol == record.target.symbol.split("+")[0]
            continue
        bias = module.pc_bias(record.kind) if arch == "arm" else 0
        landing = twin.target.address - record.target.address if arch == "ppc64" else 0
        assert landing in (0, local_entry.get(record.target.address, 0))
        assert twin.distance == record.distance + bias + landing, (record, twin)
        assert twin.target.address == (record.target.address & ~1 if arch == "arm" else record.target.address) + landing
        assert twin.site.instruction == record.site.instruction
        checked += 1
    assert checked >= 5


# --- veneers ----------------------------------------------------------------------------------

FAR = {
    "arm": ("""\
.syntax unified
.section .text.near,"ax"
.arm
.globl _start
.type _start, %function
_start:
  bl far_arm
  b far_arm
  bl far_thumb
  bl near_func
  bx lr
.thumb
.type tnear, %function
.thumb_func
tnear:
  bl far_thumb
  b.w far_thumb
  bl far_arm
  bx lr
.arm
.align 2
.type near_func, %function
near_func: bx lr
.section .text.far,"ax"
.arm
.globl far_arm
.type far_arm, %function
far_arm:
  bl _start
  bx lr
.thumb
.globl far_thumb
.type far_thumb, %function
.thumb_func
far_thumb:
  bl tnear
  bx lr
""", 0x100000, 0x8000000),
    "ppc64": ("""\
.abiversion 2
.section .text.near,"ax"
.globl _start
.type _start, @function
_start:
  bl far_func
  nop
  b far_func
  bne 0, far_func
  bl near_func
  blr
.type near_func, @function
near_func: blr
.section .text.far,"ax"
.globl far_func
.type far_func, @function
far_func:
  bl _start
  nop
  blr
""", 0x10000000, 0x18000000),
}

#: (linker, flags, veneer-symbol pattern per final target)
VENEER_LINKS = {
    "arm": [("lld", [], r"__(ARM|Thumb)v7ABSLongThunk_{}"), ("lld", ["-pie"], r"__(ARM|Thumb)V7PILongThunk_{}"),
            ("gnu", [], r"__{}_(veneer|from_arm)")],
    "ppc64": [("lld", [], r"__long_branch_{}"), ("gnu", [], r"[0-9a-f]{{8}}\.(plt|long)_branch\.{}")],
}
#: final target of each far reference: site symbol+offset → final target
FAR_REFERENCES = {
    "arm": {("_start", 0): "far_arm", ("_start", 4): "far_arm", ("_start", 8): "far_thumb", ("tnear", 0): "far_thumb",
            ("tnear", 4): "far_thumb", ("tnear", 8): "far_arm", ("far_arm", 0): "_start", ("far_thumb", 0): "tnear"},
    "ppc64": {("_start", 0): "far_func", ("_start", 8): "far_func", ("_start", 12): "far_func",
              ("far_func", 0): "_start"},
}


@pytest.mark.parametrize("arch, linker, flags, pattern",
                         [(a, *link) for a, links in VENEER_LINKS.items() for link in links],
                         ids=lambda v: v if isinstance(v, str) else " ".join(v) or "-")
def test_branch_through_a_veneer(tmp_path, arch, linker, flags, pattern):
    """Branches to a function 128 MiB away (Arm) / 128 MiB (PowerPC): the linker inserts veneers;
    each record says `veneer`, points at the veneer, and names the final target."""
    source, near, far = FAR[arch]
    (tmp_path / "far.S").write_text(source)
    (tmp_path / "far.lds").write_text(f"SECTIONS {{\n  .text {near:#x} : AT(0x10000) {{ *(.text.near) }}\n"
                                      f"  .far {far:#x} : AT(0x20000) {{ *(.text.far) }}\n}}\n")
    obj = compile_for(TRIPLES[arch], tmp_path / "far.S", tmp_path / "far.o")
    argv = ["ld.lld"] if linker == "lld" else [GNU_LD[arch]]
    need(argv[0])
    image = tmp_path / "far.elf"
    run(*argv, *flags, "-T", tmp_path / "far.lds", obj, "-o", image)
    assert image.stat().st_size < 1 << 20
    records = assert_matches_objdump(arch, image)
    symbols = nm_symbols(image)
    veneers = {(r.site.symbol, r.site.symbol_offset): r for r in records if r.status is Status.VENEER}
    assert {k: r.target.symbol for k, r in veneers.items()} == FAR_REFERENCES[arch]
    for r in veneers.values():
        names = [n for n, a in symbols.items() if a & ~1 == r.target.address]
        assert any(re.fullmatch(pattern.format(r.target.symbol), n) for n in names), (r, names)
    assert all(r.status is Status.OK for r in records if r.site.symbol == "_start" and "near_func" in r.target.symbol)
    reported = scan(image).analysis.records
    assert sorted(r.site.address for r in reported if r.status is Status.VENEER) == sorted(
        r.site.address for r in veneers.values())
    if arch == "arm":  # every Arm veneer here computes its target in code: decoded, not taken from its name
        with ElfInput(image) as elf:
            linked = LinkedImage(elf)
            for r in veneers.values():
                assert resolve_veneer(linked, arm.ARCH.decoder, r.target.address) == symbols[r.target.symbol] & ~1


def test_riscv_far_call_is_measured_on_the_auipc(tmp_path):
    """No RISC-V linker has veneers: a call 1 GiB away is an auipc+jalr pair, decoded as CALL with
    the full distance (high part plus jalr's low 12 bits), its usage of the ±2 GiB reach right."""
    (tmp_path / "far.S").write_text(".section .text.near,\"ax\"\n.globl _start\n_start:\n  call far_func\n"
                                    "  tail far_func\n1: auipc a0, %pcrel_hi(far_data)\n  ld a0, %pcrel_lo(1b)(a0)\n"
                                    "  ret\n.section .text.far,\"ax\"\n.globl far_func\nfar_func:\n  ret\n"
                                    ".section .far_data,\"a\"\nfar_data: .quad 0\n")
    (tmp_path / "far.lds").write_text("SECTIONS {\n  .text 0x10000000 : AT(0x10000) { *(.text.near) }\n"
                                      "  .far 0x50000800 : AT(0x20000) { *(.text.far) }\n"
                                      "  .data 0x8fff0000 : AT(0x30000) { *(.far_data) }\n}\n")
    obj = compile_for(TRIPLES["riscv64"], tmp_path / "far.S", tmp_path / "far.o", "-mno-relax")
    for linker in ("ld.lld", GNU_LD["riscv64"]):
        need(linker)
        image = tmp_path / f"far-{linker}.elf"
        run(linker, "--no-relax" if linker != "ld.lld" else "--Bstatic", "-T", tmp_path / "far.lds", obj, "-o", image)
        records = {r.site.offset: r for r in assert_matches_objdump("riscv64", image)}
        assert {o: (r.kind.short_name, r.site.instruction, r.distance) for o, r in records.items()} == {
            0: ("CALL", "call", 0x40000800), 8: ("CALL", "tail", 0x40000800 - 8),
            16: ("PCREL_HI20", "auipc", 0x8fff0000 - 0x10000010)}
        assert records[16].status is Status.AT_RISK and records[0].status is Status.OK
