"""32-bit Arm (A32 and Thumb-2): reach table, implicit addends, instruction names, fix hints.

Ranges are the ones ld.lld 14 checks in `ARM::relocate` on the value S+A-P (or S+A-Pa, P rounded
down to a word, for the PC-relative loads and ADR): `checkInt` for the branches, and for the
loads and ADR a 12- or 8-bit magnitude with an add/subtract bit (ld.lld prints those as
`|value| is not in [0, N]`). The addend sits in the instruction (SHT_REL), so it includes the
PC bias: -8 for A32, -4 for Thumb. A Thumb function symbol has bit 0 set and ld.lld range-checks
the value with that bit in it, so distances to Thumb functions are odd; reachls keeps them so.

Veneers: ld.lld 14 bridges PC24, JUMP24, CALL, PLT32 (A32 B/BL/BLX, ±32 MiB) and THM_CALL,
THM_JUMP24, THM_JUMP19 (Thumb BL/BLX/B.W, ±16 MiB; B<cc>.W, ±1 MiB) with range-extension thunks
(`__ARMv7ABSLongThunk_*`, `__Thumbv7ABSLongThunk_*`); the 16-bit Thumb branches and every
PC-relative load and ADR fail. GNU ld differs (`GNU_LD_THUNKS`, `GNU_LD_RANGES`,
`GNU_LD_UNCHECKED`): no stub for PC24, no negative THM_PC12, no check at all on THM_PC8.

Not a plain range: `ALU_PC_G0` (A32 ADR) has no contiguous reach: ld.lld accepts
any distance whose magnitude is an 8-bit value rotated right by an even amount. The table gives
it the contiguous part, [-256, 256]; beyond that a reachls `overflow` is conservative (ld.lld
accepts e.g. 260 = 0x41 << 2). `LDR_PC_G1/G2` and `ALU_PC_G1/G2` check what is left after the
higher groups, not a distance, and are left out. `THM_JUMP6` (CBZ/CBNZ to another section) is
left out too: neither assembler emits it (gas: "branch out of range", clang: an error), ld.lld 14
rejects it as an unknown relocation, and GNU ld 2.40 cannot hold the PC bias in it (a cbz
linked by it lands 4 bytes past its target).
Implicit addends are decoded as the psABI and GNU ld do; ld.lld 14 drops the sign bit S of Thumb
B.W/BL addends (and of B<cc>.W ones), so for addends beyond ±8 MiB (±512 KiB) it branches
elsewhere than the source says. Compilers never emit such addends on branches.
Thumb BL/B.W reach ±16 MiB only in objects whose build attributes say Armv6T2 or later (what
`-march=armv7-a` and clang's armv7a triples write); for older ones both linkers use the ±4 MiB
encoding. The table is for Armv7 and later, as kernels are built.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..fixes import Fix, TextEdit
from ..record import RelocKind
from ..sources.asm import AsmFile, AsmStatement, Span
from . import Architecture


def _kind(name: str, number: int, lo: int, hi: int, alignment: int = 1, thunk: bool = False,
          formula: str = "prel") -> RelocKind:
    return RelocKind("arm", name, number, lo, hi, alignment, thunk, formula)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_ARM_PC24", 1, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_LDR_PC_G0", 4, -4095, 4095, formula="prel_pa"),
    _kind("R_ARM_THM_CALL", 10, -(1 << 24), (1 << 24) - 1, thunk=True),
    _kind("R_ARM_THM_PC8", 11, 0, 1023, alignment=4, formula="prel_pa"),
    _kind("R_ARM_PLT32", 27, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_CALL", 28, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_JUMP24", 29, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_THM_JUMP24", 30, -(1 << 24), (1 << 24) - 1, thunk=True),
    _kind("R_ARM_THM_JUMP19", 51, -(1 << 20), (1 << 20) - 1, thunk=True),
    _kind("R_ARM_THM_ALU_PREL_11_0", 53, -4095, 4095, formula="prel_pa"),
    _kind("R_ARM_THM_PC12", 54, -4095, 4095, formula="prel_pa"),
    _kind("R_ARM_ALU_PC_G0", 58, -256, 256, formula="prel_pa"),
    _kind("R_ARM_LDRS_PC_G0", 64, -255, 255, formula="prel_pa"),
    _kind("R_ARM_THM_JUMP11", 102, -2048, 2047),
    _kind("R_ARM_THM_JUMP8", 103, -256, 255),
)}

#: Whether GNU ld (binutils 2.40) bridges an out-of-range reference of this kind with a stub,
#: where that differs from ld.lld's `RelocKind.thunk`. Checked against the real linker in
#: tests/test_reach_table_arches.py. GNU ld has no stub for the legacy R_ARM_PC24 (it reports
#: "relocation truncated to fit"), which ld.lld bridges; both bridge the other branches alike.
GNU_LD_THUNKS: dict[str, bool] = {"R_ARM_PC24": False}

#: Kinds GNU ld does not range-check at all: an out-of-range R_ARM_THM_PC8 (narrow `ldr`/`adr`
#: from PC) links without a word, its offset wrapped, loading from the wrong address.
GNU_LD_UNCHECKED = frozenset({"R_ARM_THM_PC8"})

#: Ranges GNU ld checks differently from ld.lld: it refuses every negative R_ARM_THM_PC12
#: (`ldr.w rX, [pc, #-imm]`, which the instruction and ld.lld allow).
GNU_LD_RANGES: dict[str, tuple[int, int]] = {"R_ARM_THM_PC12": (0, 4095)}

_CONDITIONS = ("eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "", "")


def _sign_extend(value: np.ndarray, bits: int) -> np.ndarray:
    value = value.astype(np.int64) & ((1 << bits) - 1)
    return value - ((value >> (bits - 1)) << bits)


def implicit_addend(kind: RelocKind, words: np.ndarray) -> np.ndarray:
    """The addends of SHT_REL relocations of one kind, decoded from their instruction fields."""
    w = words.astype(np.int64)
    hw1, hw2 = w & 0xFFFF, (w >> 16) & 0xFFFF  # Thumb: first and second halfword
    name = kind.short_name
    if name in ("PC24", "PLT32", "CALL", "JUMP24"):
        return _sign_extend((w & 0xFFFFFF) << 2, 26)
    if name == "THM_JUMP8":
        return _sign_extend((hw1 & 0xFF) << 1, 9)
    if name == "THM_JUMP11":
        return _sign_extend((hw1 & 0x7FF) << 1, 12)
    if name == "THM_JUMP19":  # S:J2:J1:imm6:imm11:0
        return _sign_extend(((hw1 & 0x400) << 10) | ((hw2 & 0x800) << 8) | ((hw2 & 0x2000) << 5)
                            | ((hw1 & 0x3F) << 12) | ((hw2 & 0x7FF) << 1), 21)
    if name in ("THM_CALL", "THM_JUMP24"):  # S:I1:I2:imm10:imm11:0, I = NOT(J EOR S)
        s = (hw1 >> 10) & 1
        i1 = 1 - (((hw2 >> 13) & 1) ^ s)
        i2 = 1 - (((hw2 >> 11) & 1) ^ s)
        return _sign_extend((s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3FF) << 12) | ((hw2 & 0x7FF) << 1), 25)
    if name == "THM_PC8":  # imm8:00, with -4 encodable as 0xff (psABI)
        return ((((hw1 & 0xFF) << 2) + 4) & 0x3FF) - 4
    if name == "THM_PC12":
        imm = hw2 & 0xFFF
        return np.where(hw1 & 0x80, imm, -imm)
    if name == "THM_ALU_PREL_11_0":
        imm = ((hw1 & 0x400) << 1) | ((hw2 & 0x7000) >> 4) | (hw2 & 0xFF)
        return np.where(hw1 & 0xF0, -imm, imm)
    if name == "LDR_PC_G0":
        imm = w & 0xFFF
        return np.where(w & 0x800000, imm, -imm)
    if name == "LDRS_PC_G0":
        imm = ((w & 0xF00) >> 4) | (w & 0xF)
        return np.where(w & 0x800000, imm, -imm)
    if name == "ALU_PC_G0":  # 8-bit value rotated right by twice the 4-bit field
        rotate = ((w >> 8) & 0xF) * 2
        imm = w & 0xFF
        value = ((imm >> rotate) | (imm << ((32 - rotate) & 31))) & 0xFFFFFFFF
        return np.where(w & 0x400000, -value, value)
    return np.zeros(len(w), dtype=np.int64)


def pc_bias(kind: RelocKind) -> int:
    """What the PC reads ahead of the instruction: 8 bytes in A32, 4 in Thumb."""
    return -4 if kind.short_name.startswith("THM_") else -8


_THUMB_LOADS = {0xF85F: "ldr", 0xF81F: "ldrb", 0xF83F: "ldrh", 0xF91F: "ldrsb", 0xF93F: "ldrsh"}
_A32_EXTRA_LOADS = {(0xB, True): "ldrh", (0xD, True): "ldrsb", (0xF, True): "ldrsh", (0xD, False): "ldrd"}


def instruction(kind: RelocKind, word: int) -> str | None:
    """The mnemonic (without width suffix) of the A32 or Thumb instruction a relocation patches."""
    hw1, hw2 = word & 0xFFFF, (word >> 16) & 0xFFFF
    name = kind.short_name
    if name in ("PC24", "PLT32", "CALL", "JUMP24") and word & 0x0E000000 == 0x0A000000:
        cond = word >> 28
        if cond == 0xF:
            return "blx"
        return ("bl" if word & 0x01000000 else "b") + _CONDITIONS[cond]
    if name in ("THM_CALL", "THM_JUMP24", "THM_JUMP19") and hw1 & 0xF800 == 0xF000:
        if hw2 & 0xD000 == 0xD000:
            return "bl"
        if hw2 & 0xD000 == 0xC000:
            return "blx"
        if hw2 & 0xD000 == 0x9000:
            return "b"
        if hw2 & 0xD000 == 0x8000 and (hw1 >> 6) & 0xF < 0xE:
            return "b" + _CONDITIONS[(hw1 >> 6) & 0xF]
    if name == "THM_JUMP11" and hw1 & 0xF800 == 0xE000:
        return "b"
    if name == "THM_JUMP8" and hw1 & 0xF000 == 0xD000 and (hw1 >> 8) & 0xF < 0xE:
        return "b" + _CONDITIONS[(hw1 >> 8) & 0xF]
    if name == "THM_PC8":
        if hw1 & 0xF800 == 0x4800:
            return "ldr"
        if hw1 & 0xF800 == 0xA000:
            return "adr"
    if name == "THM_PC12" and hw1 & 0xFF7F in _THUMB_LOADS:
        return _THUMB_LOADS[hw1 & 0xFF7F]
    if name == "THM_ALU_PREL_11_0" and hw1 & 0xFBFF in (0xF20F, 0xF2AF):
        return "adr"
    if name == "LDR_PC_G0" and word & 0x0E5F0000 == 0x041F0000:
        return "ldrb" if word & 0x00400000 else "ldr"
    if name == "LDRS_PC_G0" and word & 0x0E4F0090 == 0x004F0090:
        return _A32_EXTRA_LOADS.get(((word >> 4) & 0xF, bool(word & 0x00100000)))
    if name == "ALU_PC_G0" and word & 0x0FFF0000 in (0x028F0000, 0x024F0000):
        return "adr"
    return None


def fix_hint(kind: RelocKind, insn: str | None) -> str | None:
    """The change kernel developers make for this reference when its target is out of reach."""
    if insn in ("adr", "ldr", "ldrb", "ldrh", "ldrd", "ldrsb", "ldrsh"):
        return f"use {'adr_l' if insn == 'adr' else 'ldr_l'} (movw/movt or add-pc sequence, ±4 GiB), " \
               "or place the target next to its user"
    if kind.short_name in ("THM_JUMP8", "THM_JUMP11"):
        return "use the 32-bit encoding (.w: b.w ±16 MiB, b<cc>.w ±1 MiB, both bridged by veneers)"
    if kind.thunk:
        return "the linker inserts a veneer; place the target closer to avoid it"
    return None


_INVERSE = {"eq": "ne", "ne": "eq", "cs": "cc", "cc": "cs", "hs": "lo", "lo": "hs", "mi": "pl", "pl": "mi",
            "vs": "vc", "vc": "vs", "hi": "ls", "ls": "hi", "ge": "lt", "lt": "ge", "gt": "le", "le": "gt"}
_NARROW_BRANCH = re.compile(r"b(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?\.n", re.IGNORECASE)


def asm_fixes(path: Path, statement: AsmStatement, line_text: str, asm: AsmFile, macros: set[str]) -> list[Fix]:
    """The rewrites of one out-of-reach Arm/Thumb assembly statement, preferred one first.

    `adr`/`ldr` of a label become the kernel's `adr_l`/`ldr_l` when in scope; a narrow Thumb
    branch (`b.n`, `beq.n`) becomes its 32-bit form (b.w ±16 MiB, b<cc>.w ±1 MiB, both veneered).
    """
    mnemonic, operands = statement.mnemonic.lower(), statement.operands
    span = statement.mnemonic_span
    base = mnemonic.removesuffix(".w")
    rename = {"adr": "adr_l", "ldr": "ldr_l"}.get(base)
    if rename and len(operands) == 2 and not operands[1].text.startswith(("[", "=", "#")):
        if rename not in macros:
            return []
        return [Fix(f"Use {rename} (movw/movt or add-pc sequence, ±4 GiB)",
                    (TextEdit(path, Span(span.line, span.start, span.end), rename),), preferred=True)]
    if _NARROW_BRANCH.fullmatch(mnemonic):
        wide = statement.mnemonic[:-2] + (".W" if statement.mnemonic[-1].isupper() else ".w")
        reach = "±16 MiB" if mnemonic in ("b.n", "bal.n") else "±1 MiB"
        return [Fix(f"Use {wide} ({reach}, bridged by veneers)",
                    (TextEdit(path, Span(span.line, span.start, span.end), wide),), preferred=True)]
    return []


ARCH = Architecture(
    name="arm",
    asm_dialect="arm",
    elf_machine="EM_ARM",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("arm32", "aarch32"),
    implicit_addend=implicit_addend,
    pc_bias=pc_bias,
)
