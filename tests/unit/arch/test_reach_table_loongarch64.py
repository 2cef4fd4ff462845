"""LoongArch64: no toolchain here targets it (clang/ld.lld 14 predate it, Debian 12 has no LoongArch
binutils), so the table is checked against the psABI's numbers, and the pipeline is driven end to
end on a real relocatable ELF re-labelled as LoongArch: a RISC-V object (same class, byte order
and RELA layout) whose e_machine and relocation types are rewritten, placed by the model engine.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from reachls.arch import for_machine
from reachls.arch.loongarch64 import KINDS, instruction
from reachls.elf import ElfInput
from reachls.pipeline import ScanOptions, scan
from reachls.record import Status
from toolchain import compile_for

#: LoongArch ELF psABI: type number, reach, and an instruction of each kind (offset field zero).
PSABI = {"R_LARCH_B16": (64, 128 << 10, 0x58000000, "beq"),  # beq $a0, $zero
         "R_LARCH_B21": (65, 4 << 20, 0x40000000, "beqz"),  # beqz $zero
         "R_LARCH_B26": (66, 128 << 20, 0x54000000, "bl")}  # bl
EM_LOONGARCH, R_RISCV_32 = 258, 1


def test_table_is_the_psabi() -> None:
    arch = for_machine("EM_LOONGARCH", "x")
    assert arch.name == "loongarch64" and not arch.implicit_addend
    for name, (number, reach, word, mnemonic) in PSABI.items():
        kind = KINDS[number]
        assert (kind.name, kind.lo, kind.hi + 1, kind.alignment, kind.thunk) == (name, -reach, reach, 4, False)
        assert instruction(kind, word) == mnemonic


@pytest.mark.parametrize("word, number, mnemonic", [
    (0x5C000000, 64, "bne"), (0x6C000000, 64, "bgeu"), (0x44000000, 65, "bnez"), (0x48000000, 65, "bceqz"),
    (0x48000100, 65, "bcnez"), (0x50000000, 66, "b"), (0x4C000000, 66, None)])
def test_instruction_names(word: int, number: int, mnemonic: str | None) -> None:
    assert instruction(KINDS[number], word) == mnemonic


def _relabel(obj: Path, types: dict[str, int]) -> None:
    """Rewrite e_machine, and each R_RISCV_32 in `.rela.<section>` to `types[section]`, in place."""
    with ElfInput(obj) as elf:
        rela = {s.name.removeprefix(".rela"): s for s in elf.sections if s.sh_type == 4}
    data = bytearray(obj.read_bytes())
    data[18:20] = struct.pack("<H", EM_LOONGARCH)
    for section, number in types.items():
        table = rela[section]
        for at in range(table.offset, table.offset + table.size, 24):
            info = struct.unpack_from("<Q", data, at + 8)[0]
            assert info & 0xFFFFFFFF == R_RISCV_32
            struct.pack_into("<Q", data, at + 8, (info & ~0xFFFFFFFF) | number)
    obj.write_bytes(data)


@pytest.mark.parametrize("name", sorted(PSABI))
def test_scan_at_the_psabi_edges(tmp_path: Path, name: str) -> None:
    """The model engine (ld.lld 14 cannot link LoongArch) at the last reachable distance and beyond."""
    number, reach, word, mnemonic = PSABI[name]
    distances = [reach - 4, reach, -reach, -reach - 4]
    asm, script = [], ["SECTIONS {"]
    for i, distance in enumerate(distances):
        site = (1 << 36) + i * (1 << 34)
        asm += [f'.section .site{i},"ax"', f"site{i}:", f"  .reloc ., R_RISCV_32, target{i}", f"  .4byte {word:#x}",
                f'.section .target{i},"ax"', f".globl target{i}", f"target{i}:", "  .4byte 0"]
        script += [f"  .site{i} {site:#x} : {{ *(.site{i}) }}", f"  .target{i} {site + distance:#x} : {{ *(.target{i}) }}"]
    (tmp_path / "b.S").write_text("\n".join(asm) + "\n")
    (tmp_path / "b.lds").write_text("\n".join(script) + "\n}\n")
    obj = compile_for("riscv64-linux-gnu", tmp_path / "b.S", tmp_path / "b.o", "-mno-relax")
    _relabel(obj, {f".site{i}": number for i in range(4)})
    result = scan(obj, ScanOptions(engine="model", script=tmp_path / "b.lds", include_ok=True))
    assert result.arch.name == "loongarch64"
    found = {r.target.symbol: (r.kind.name, r.distance, r.status, r.site.instruction) for r in result.analysis.records}
    expected = [Status.AT_RISK, Status.OVERFLOW, Status.AT_RISK, Status.OVERFLOW]
    assert found == {f"target{i}": (name, d, s, mnemonic) for i, (d, s) in enumerate(zip(distances, expected))}
