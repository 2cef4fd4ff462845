"""PowerPC64 (ELFv2): reach table of the branch relocations, instruction names, fix hints.

Ranges are the ones ld.lld 14 checks in `PPC64::relocate`: REL24 (`b`/`bl`, ±32 MiB) and REL14
(`bc` and its extended forms, ±32 KiB), each `checkInt` on S+A-P plus a 4-byte alignment check.
ld.lld 14 bridges both with long-branch thunks (`__long_branch_<sym>`; REL24_NOTOC gets
`__gep_setup_<sym>`), so an out-of-range conditional branch is a veneer, not an error.
REL14_BRTAKEN/BRNTAKEN (REL14 with a static prediction; neither assembler emits them for `beq+`)
are unknown relocations to ld.lld 14, whatever the distance (`LLD_UNSUPPORTED`); their `thunk`
follows GNU ld, which handles them like REL14, with stubs (`*.long_branch.*`,
`*.plt_branch.*`). No linker differs on a type both support, so `GNU_LD_THUNKS` adds nothing.

A call to a function with a local entry point lands past its global entry (st_other); the
tables measure to the symbol, which is where ld.lld measures for a call from another TOC.
Big-endian ELFv1 uses the same types; the instruction words are read in the file's byte order.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..asmfile import AsmFile, AsmStatement, Dialect, branch_over_fix
from ..edits import Fix
from ..elf import U64
from ..record import RelocKind
from .base import Architecture, Decoded, Decoder

_REL24 = (-(1 << 25), (1 << 25) - 1)
_REL14 = (-(1 << 15), (1 << 15) - 1)


def _kind(name: str, number: int, bounds: tuple[int, int]) -> RelocKind:
    return RelocKind("ppc64", name, number, bounds[0], bounds[1], 4, True)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_PPC64_REL24", 10, _REL24),
    _kind("R_PPC64_REL14", 11, _REL14),
    _kind("R_PPC64_REL14_BRTAKEN", 12, _REL14),
    _kind("R_PPC64_REL14_BRNTAKEN", 13, _REL14),
    _kind("R_PPC64_REL24_NOTOC", 116, _REL24),
)}

#: Kinds ld.lld 14 rejects as "unknown relocation" whatever the distance.
LLD_UNSUPPORTED = frozenset({"R_PPC64_REL14_BRTAKEN", "R_PPC64_REL14_BRNTAKEN"})

#: GNU ld (binutils 2.40) stubs every type here as ld.lld does: nothing differs.
GNU_LD_THUNKS: dict[str, bool] = {}

_CR_TRUE = ("lt", "gt", "eq", "so")
_CR_FALSE = ("ge", "le", "ne", "ns")


def _conditional(bo: int, bi: int) -> str:
    """The extended mnemonic of `bc BO,BI` (without the link suffix), or `bc`."""
    if bo & 0x14 == 0x14:
        return "b"
    if bo & 0x1C == 0x0C:
        return "b" + _CR_TRUE[bi & 3]
    if bo & 0x1C == 0x04:
        return "b" + _CR_FALSE[bi & 3]
    if bo & 0x14 == 0x10:
        return "bdz" if bo & 0x02 else "bdnz"
    return "bc"


def instruction(kind: RelocKind, word: int) -> str | None:
    """The mnemonic (extended form where there is one) of the branch a relocation patches."""
    opcode, link, absolute = word >> 26, word & 1, word & 2
    if kind.short_name.startswith("REL24") and opcode == 18:
        return "b" + ("l" if link else "") + ("a" if absolute else "")
    if kind.short_name.startswith("REL14") and opcode == 16:
        return _conditional((word >> 21) & 0x1F, (word >> 16) & 0x1F) + ("l" if link else "")
    return None


def fix_hint(kind: RelocKind, insn: str | None) -> str | None:
    """The change kernel developers make for this reference when its target is out of reach."""
    if kind.name in LLD_UNSUPPORTED:
        return "ld.lld 14 does not know this type: drop the +/- prediction hint (plain REL14)"
    if kind.short_name.startswith("REL14"):
        return "the linker inserts a stub; to avoid it, invert the branch over an unconditional b (±32 MiB)"
    return "the linker inserts a stub; place the target closer to avoid it"


_INVERSE = {"lt": "ge", "ge": "lt", "gt": "le", "le": "gt", "eq": "ne", "ne": "eq", "so": "ns", "ns": "so",
            "un": "nu", "nu": "un", "nl": "lt", "ng": "gt", "dnz": "dz", "dz": "dnz"}
_EXTENDED = re.compile(r"b(lt|ge|gt|le|eq|ne|so|ns|un|nu|nl|ng|dnz|dz)(l?)([+-]?)", re.IGNORECASE)


def _inverted(mnemonic: str, operands: list[str]) -> tuple[str, list[str], bool] | None:
    """(inverted mnemonic, its leading operands, links) for a conditional branch, else None."""
    match = _EXTENDED.fullmatch(mnemonic)
    if match:
        return "b" + _INVERSE[match[1].lower()], operands, bool(match[2])
    if mnemonic.lower() in ("bc", "bcl") and len(operands) == 2:
        try:
            bo = int(operands[0], 0)
        except ValueError:
            return None
        if bo & 0x14 == 0x14:
            return None
        flipped = bo ^ (0x02 if bo & 0x14 == 0x10 else 0x08)
        return "bc", [str(flipped), operands[1]], mnemonic.lower() == "bcl"
    return None


def asm_fixes(path: Path, statement: AsmStatement, line_text: str, asm: AsmFile, macros: set[str]) -> list[Fix]:
    """A conditional branch becomes the inverted branch over an unconditional `b` (or `bl` for
    the linking forms), which reaches ±32 MiB and gets a stub beyond."""
    operands = statement.operands
    if not operands:
        return []
    inverted = _inverted(statement.mnemonic, [op.text for op in operands[:-1]])
    if inverted is None:
        return []
    mnemonic, kept, links = inverted
    return [branch_over_fix(path, statement, line_text, asm, mnemonic, kept, "bl" if links else "b", "±32 MiB")]


# --- Linked-image decoding (decode.py) ---------------------------------------------------------




_REL24_KIND, _REL14_KIND = 10, 11


def _sext(value: np.ndarray, bits: int) -> np.ndarray:
    value = value.astype(np.int64) & ((1 << bits) - 1)
    return value - ((value >> (bits - 1)) << bits)


def decode(words: np.ndarray) -> list[Decoded]:
    """Every relative `b`/`bl` (I-form, opcode 18) and `bc`/`bcl` (B-form, opcode 16), per class.

    The absolute forms (AA set: `ba`, `bca`) have no PC-relative reach and are left out.
    """
    opcode, relative = words >> np.uint32(26), (words & np.uint32(2)) == 0
    found = []
    rel24 = np.flatnonzero((opcode == 18) & relative)
    found.append(Decoded(_REL24_KIND, rel24, _sext(words[rel24] & np.uint32(0x03FFFFFC), 26)))
    rel14 = np.flatnonzero((opcode == 16) & relative)
    found.append(Decoded(_REL14_KIND, rel14, _sext(words[rel14] & np.uint32(0xFFFC), 16)))
    return [d for d in found if len(d.index)]


def veneer_target(read, address: int, little: bool) -> int | None:
    """Follow a stub whose target is in its code: a plain `b` (GNU ld's long_branch stub when the
    stub is in reach), or `lis/ori/sldi/oris/ori` + `mtctr; bctr` absolute address building.
    TOC-relative stubs (`addis r12, r2, …; ld r12, …; mtctr; bctr`, reading `.branch_lt`) need r2
    and are named from their symbol instead."""
    registers: dict[int, int] = {}
    pc = address
    for _ in range(8):
        raw = read(pc, 4)
        if raw is None or len(raw) < 4:
            return None
        word = int.from_bytes(raw, "little" if little else "big")
        opcode, rt, ra = word >> 26, (word >> 21) & 31, (word >> 16) & 31
        immediate = word & 0xFFFF
        if opcode == 18 and not word & 3:  # b
            offset = word & 0x03FFFFFC
            return (pc + offset - ((offset & 0x02000000) << 1)) & U64
        if opcode == 15 and ra == 0:  # lis
            registers[rt] = ((immediate ^ 0x8000) - 0x8000) << 16 & U64
        elif opcode == 24 and rt in registers:  # ori ra, rs, imm (rs is the rt field)
            registers[ra] = registers[rt] | immediate
        elif opcode == 25 and rt in registers:  # oris
            registers[ra] = registers[rt] | (immediate << 16)
        elif opcode == 30 and (word >> 2) & 7 == 0 and rt in registers:  # rldicr (sldi)
            shift = ((word >> 11) & 31) | ((word >> 1) & 1) << 5
            mask_end = ((word >> 6) & 31) | ((word >> 5) & 1) << 5
            registers[ra] = (registers[rt] << shift) & U64 & ~((1 << (63 - mask_end)) - 1)
        elif word & 0xFC1FFFFF == 0x7C0903A6 and rt in registers:  # mtctr
            registers[-1] = registers[rt]
        elif word == 0x4E800420:  # bctr
            return registers.get(-1)
        else:
            return None
        pc += 4
    return None



DECODER = Decoder(
    decode=decode,
    veneer_target=veneer_target,
    thunk_symbols=(re.compile(rb"__(?:long_branch|plt|gep_setup)_([^\0]+)"),
                   re.compile(rb"[0-9a-f]{8}\.(?:long_branch|plt_branch|plt_call)(?:_r2off|_notoc|_both)?"
                              rb"\.([^\0+]+)(?:\+[0-9a-f]+)?")),
    instruction_byteorder=None,
    data_mapping=None,
)


ARCH = Architecture(
    name="ppc64",
    max_page_size=0x10000,
    image_base=0x10000000,
    dwarf_relocations={0: (0, "set"), 1: (4, "set"), 38: (8, "set")},  # NONE, ADDR32, ADDR64
    gnu_ld="powerpc64le-linux-gnu-ld",
    asm_dialect=Dialect("#", ";"),
    elf_machine="EM_PPC64",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("powerpc", "powerpc64", "ppc64le"),
    decoder=DECODER,
)
