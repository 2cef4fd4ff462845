"""LoongArch64: reach table of the branch relocations, instruction names, fix hints.

No toolchain here targets LoongArch (clang/ld.lld 14 predate it, Debian 12 has no LoongArch
binutils), so this table follows the LoongArch ELF psABI (v2.x) rather than a linker run:
B16 (`beq`…`bgeu`, 16-bit word offset, ±128 KiB), B21 (`beqz`/`bnez`/`bceqz`/`bcnez`, 21-bit
word offset, ±4 MiB) and B26 (`b`/`bl`, 26-bit word offset, ±128 MiB), each on S+A-P, which
must be a multiple of 4. Neither GNU ld nor ld.lld (LoongArch support since 17) bridges
LoongArch branches; out-of-range `bl` in kernel modules is handled by the module loader's PLT,
not by the linker.
"""

from __future__ import annotations

from ..asmfile import Dialect
from ..record import RelocKind
from .base import Architecture


def _kind(name: str, number: int, bits: int) -> RelocKind:
    """A branch whose field holds `bits` signed bits of S+A-P >> 2."""
    return RelocKind("loongarch64", name, number, -(1 << (bits + 1)), (1 << (bits + 1)) - 1, 4, False)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_LARCH_B16", 64, 16),
    _kind("R_LARCH_B21", 65, 21),
    _kind("R_LARCH_B26", 66, 26),
)}

GNU_LD_THUNKS: dict[str, bool] = {}

_B16 = {0x16: "beq", 0x17: "bne", 0x18: "blt", 0x19: "bge", 0x1A: "bltu", 0x1B: "bgeu"}


def instruction(kind: RelocKind, word: int) -> str | None:
    """The mnemonic of the branch a relocation patches, from its 6-bit major opcode."""
    opcode = word >> 26
    if kind.short_name == "B16" and opcode in _B16:
        return _B16[opcode]
    if kind.short_name == "B21":
        if opcode == 0x10:
            return "beqz"
        if opcode == 0x11:
            return "bnez"
        if opcode == 0x12 and (word >> 8) & 3 in (0, 1):
            return "bcnez" if (word >> 8) & 3 else "bceqz"
    if kind.short_name == "B26" and opcode in (0x14, 0x15):
        return "bl" if opcode == 0x15 else "b"
    return None


def fix_hint(kind: RelocKind, insn: str | None) -> str | None:
    if kind.short_name in ("B16", "B21"):
        return "invert the branch over an unconditional b (±128 MiB)"
    if kind.short_name == "B26":
        return "use a far call (pcaddu18i+jirl, ±128 GiB: `call36`/`tail36`)"
    return None


ARCH = Architecture(
    name="loongarch64",
    max_page_size=0x10000,
    image_base=0x10000,
    gnu_ld="loongarch64-linux-gnu-ld",
    asm_dialect=Dialect("#", ";"),
    elf_machine="EM_LOONGARCH",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    aliases=("loongarch",),
)
