"""A statement agrees with a record when it assembles into the record's instruction: every spelling
here is assembled by clang, its relocated word decoded as the scan decodes it, and the statement
as the parser reads it must agree with that record (and not with one for another instruction or
target)."""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from reachls.anchor import statement_agrees
from reachls.arch import Architecture
from reachls.arch.aarch64 import ARCH as AARCH64
from reachls.arch.riscv64 import ARCH as RISCV64
from reachls.record import Provenance, ReachRecord, Site, Status, Target
from reachls.sources.asm import parse_asm
from toolchain import compile_for

TARGET = "far_away"
SPELLINGS = [
    (AARCH64, "aarch64-linux-gnu", (), s) for s in (
        "cbz\tx0, far_away", "CBNZ w1, far_away", "tbnz\tx4, #3, far_away", "b.ne far_away", "bne far_away",
        "b.cs far_away", "b.hs far_away", "b.lo far_away", "b.cc far_away", "adr x1, far_away",
        "adrp x3, far_away", "ldr x2, far_away", "ldrsw x0, far_away", "prfm pldl1keep, far_away",
        "b far_away", "bl far_away")
] + [
    (RISCV64, "riscv64-linux-gnu", ("-march=rv64gc",), s) for s in (
        "call far_away", "tail far_away", "j far_away", "jal far_away", "beqz a0, far_away",
        "bnez a0, far_away", "blez a0, far_away", "bgtz a0, far_away", "beq a0, zero, far_away",
        "bgt a0, a1, far_away", "ble a0, a1, far_away", "bgtu a0, a1, far_away", "bleu a0, a1, far_away",
        "lla a0, far_away", "lw a0, far_away", "sd a0, far_away, t0")
]


def _decoded(arch: Architecture, triple: str, flags: tuple[str, ...], statement: str, tmp_path: Path) -> str:
    """The instruction the first short-reach relocation of the assembled statement patches, as the scan names it."""
    source = tmp_path / "one.S"
    source.write_text(f"\t.text\n\t{statement}\n")
    obj = compile_for(triple, source, tmp_path / "one.o", *flags)
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        code = elf.get_section_by_name(".text").data()
        relocation = next(r for r in elf.get_section_by_name(".rela.text").iter_relocations()
                          if r["r_info_type"] in arch.kinds)
        kind = arch.kinds[relocation["r_info_type"]]
        word = int.from_bytes(code[relocation["r_offset"]:relocation["r_offset"] + 4].ljust(4, b"\0"), "little")
    return arch.instruction(kind, word)


def _record(arch: Architecture, instruction: str, target: str = TARGET) -> ReachRecord:
    kind = next(iter(arch.kinds.values()))
    return ReachRecord(kind, Site(".text", 0, 0, 0, "f", 0, ".text", instruction, None),
                       Target(target, ".text", 2, 0, 0, 0, ".text", None), 0, Status.OVERFLOW,
                       Provenance("vmlinux.o", 0.0, "relocatable", "relink"))


def _statement(arch: Architecture, text: str):
    (statement,) = parse_asm(f"\t{text}\n", arch.asm_dialect).statements
    return statement


@pytest.mark.parametrize("arch, triple, flags, text", SPELLINGS, ids=[s[3] for s in SPELLINGS])
def test_each_spelling_agrees_with_what_it_assembles_into(arch, triple, flags, text, tmp_path: Path):
    decoded = _decoded(arch, triple, flags, text, tmp_path)
    assert decoded is not None
    assert statement_agrees(_statement(arch, text), _record(arch, decoded), arch)
    assert not statement_agrees(_statement(arch, text), _record(arch, decoded, "somewhere_else"), arch)


def test_a_different_instruction_on_the_line_does_not_agree(tmp_path: Path):
    """The inverted branch a quick fix wrote, and the `b` it added, are not the cbz the build holds."""
    cbz = _decoded(AARCH64, "aarch64-linux-gnu", (), "cbz x0, far_away", tmp_path)
    for text in ("cbnz x0, 9999f", "cbnz x0, far_away", "b far_away", "cbz x0, 1f"):
        assert not statement_agrees(_statement(AARCH64, text), _record(AARCH64, cbz), AARCH64), text
