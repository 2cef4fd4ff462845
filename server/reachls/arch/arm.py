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

from ..asmfile import AsmFile, AsmStatement, Dialect
from ..edits import Fix, Span, TextEdit
from ..record import RelocKind
from .base import Architecture, Decoded, Decoder, SectionContext, instruction_starts, sign_extend


def _kind(name: str, number: int, lo: int, hi: int, alignment: int = 1, thunk: bool = False,
          place_alignment: int = 1) -> RelocKind:
    return RelocKind("arm", name, number, lo, hi, alignment, thunk, place_alignment=place_alignment)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_ARM_PC24", 1, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_LDR_PC_G0", 4, -4095, 4095, place_alignment=4),
    _kind("R_ARM_THM_CALL", 10, -(1 << 24), (1 << 24) - 1, thunk=True),
    _kind("R_ARM_THM_PC8", 11, 0, 1023, alignment=4, place_alignment=4),
    _kind("R_ARM_PLT32", 27, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_CALL", 28, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_JUMP24", 29, -(1 << 25), (1 << 25) - 1, thunk=True),
    _kind("R_ARM_THM_JUMP24", 30, -(1 << 24), (1 << 24) - 1, thunk=True),
    _kind("R_ARM_THM_JUMP19", 51, -(1 << 20), (1 << 20) - 1, thunk=True),
    _kind("R_ARM_THM_ALU_PREL_11_0", 53, -4095, 4095, place_alignment=4),
    _kind("R_ARM_THM_PC12", 54, -4095, 4095, place_alignment=4),
    _kind("R_ARM_ALU_PC_G0", 58, -256, 256, place_alignment=4),
    _kind("R_ARM_LDRS_PC_G0", 64, -255, 255, place_alignment=4),
    _kind("R_ARM_THM_JUMP11", 102, -2048, 2047),
    _kind("R_ARM_THM_JUMP8", 103, -256, 255),
)}

#: Whether GNU ld (binutils 2.40) bridges an out-of-range reference of this kind with a stub,
#: where that differs from ld.lld's `RelocKind.thunk`. Checked against the real linker in
#: tests/unit/arch/test_reach_table_arches.py. GNU ld has no stub for the legacy R_ARM_PC24 (it reports
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
    if name == "LDR_PC_G0" and word & 0x0E1F0000 == 0x041F0000:
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



# --- Linked-image decoding (decode.py) ---------------------------------------------------------



_K = {k.short_name: k.number for k in KINDS.values()}


def _field(value: np.ndarray, high: int, low: int, to: int = 0) -> np.ndarray:
    """Bits high..low of `value`, moved to start at bit `to`, as int64."""
    return ((value.astype(np.int64) >> low) & ((1 << (high - low + 1)) - 1)) << to


def _thumb_branch_offset(hw1: np.ndarray, hw2: np.ndarray) -> np.ndarray:
    """S:I1:I2:imm10:imm11:0 of Thumb-2 BL/BLX/B.W (I = NOT(J EOR S))."""
    s = _field(hw1, 10, 10)
    i1 = 1 - (_field(hw2, 13, 13) ^ s)
    i2 = 1 - (_field(hw2, 11, 11) ^ s)
    return _sign_extend((s << 24) | (i1 << 23) | (i2 << 22) | _field(hw1, 9, 0, 12) | _field(hw2, 10, 0, 1), 25)


def _rotated_immediate(word: np.ndarray) -> np.ndarray:
    rotate = _field(word, 11, 8) * 2
    imm = _field(word, 7, 0)
    return ((imm >> rotate) | (imm << ((32 - rotate) & 31))) & 0xFFFFFFFF


def _signed_by(word: np.ndarray, bit: int, magnitude: np.ndarray, add_when_set: bool = True) -> np.ndarray:
    """`magnitude` with the sign an add/subtract bit gives it."""
    set_ = ((word.astype(np.int64) >> bit) & 1) == 1
    return np.where(set_ == add_when_set, magnitude, -magnitude)


def decode(units: np.ndarray, context: SectionContext) -> list[Decoded]:
    """Every short-reach A32 and Thumb instruction of a section of halfwords, per class, vectorised.

    The mapping symbol in force picks the instruction set of each halfword: `$a` (or none at
    all) A32, word-aligned; `$t` Thumb, whose 16/32-bit boundaries come from `instruction_starts`
    (first halfword 0b11101/0b11110/0b11111…: 32-bit), resynchronised at every symbol. Distances
    are what ld.lld checks, S+A-P (S+A-Pa for loads and ADR) with the PC bias in A (-8 A32, -4
    Thumb, `pc_bias`), and bit 0 of S for a branch into a Thumb function (a function symbol with
    bit 0 set at the target); targets are the addresses the instructions go to.
    """
    n = len(units)
    if not n:
        return []
    half = units.astype(np.uint32) & np.uint32(0xFFFF)
    second = np.append(half[1:], np.uint32(0))
    word = half | (second << np.uint32(16))
    hw1, hw2 = half, second
    place = np.int64(context.address) + 2 * np.arange(n, dtype=np.int64)
    aligned = place & ~3
    letter = context.mapping
    a32 = ((letter == ord("a")) | (letter == 0)) & (place % 4 == 0)
    a32[-1] = False
    long = (half & np.uint32(0xF800)) >= np.uint32(0xE800)
    thumb = instruction_starts(long, context.anchors) & (letter == ord("t"))
    wide, narrow = thumb & long, thumb & ~long
    wide[-1] = False
    odd = context.odd_functions.view(np.int64) if len(context.odd_functions) else context.odd_functions
    found: list[Decoded] = []

    def add(kind: str, mask: np.ndarray, target, base: np.ndarray, bias: int,
            thumb_target: np.ndarray | bool = False) -> None:
        """One class: `target(i)` computes the targets of the instructions at units `i` only."""
        index = np.flatnonzero(mask)
        if not len(index):
            return
        at = target(index)
        into_thumb = np.asarray(thumb_target)[index] if np.ndim(thumb_target) else np.full(len(index), thumb_target)
        bit = (into_thumb & np.isin(at, odd)).astype(np.int64)
        found.append(Decoded(_K[kind], index, at + bit + bias - base[index], target=at.view(np.uint64)))

    # A32: b/bl/blx (imm24, from P+8), ldr/ldrb and ldrh/ldrsb/ldrsh/ldrd literal, adr (add/sub rd, pc, #imm)
    cond = word >> 28
    branch = a32 & ((word & 0x0E000000) == 0x0A000000)
    blx = branch & (cond == 0xF)
    call = branch & (cond == 0xE) & ((word & 0x01000000) != 0)

    def a32_branch(i: np.ndarray) -> np.ndarray:
        w = word[i]
        return place[i] + 8 + _sign_extend(_field(w, 23, 0, 2), 26) + np.where(cond[i] == 0xF, _field(w, 24, 24, 1), 0)

    add("CALL", call | blx, a32_branch, place, -8, blx)
    add("JUMP24", branch & ~call & ~blx, a32_branch, place, -8)
    a32 &= cond != 0xF
    load = a32 & ((word & 0x0F3F0000) == 0x051F0000)
    add("LDR_PC_G0", load, lambda i: aligned[i] + 8 + _signed_by(word[i], 23, _field(word[i], 11, 0)), aligned, -8)
    extra = a32 & ((word & 0x0F6F0090) == 0x014F0090)
    extra &= np.where((word & 0x00100000) != 0, (word & 0x60) != 0, (word & 0x60) == 0x40)
    add("LDRS_PC_G0", extra, lambda i: aligned[i] + 8 + _signed_by(
        word[i], 23, _field(word[i], 11, 8, 4) | _field(word[i], 3, 0)), aligned, -8)
    adr = a32 & (((word & 0x0FFF0000) == 0x028F0000) | ((word & 0x0FFF0000) == 0x024F0000))
    add("ALU_PC_G0", adr, lambda i: aligned[i] + 8 + _signed_by(word[i], 22, _rotated_immediate(word[i]),
                                                                 add_when_set=False), aligned, -8)

    # Thumb, 16-bit: b<c>.n, b.n, ldr rX, [pc, #imm] and adr (from Align(P+4, 4))
    top = half >> np.uint32(11)
    conditional = narrow & ((half >> np.uint32(12)) == 0xD) & (((half >> np.uint32(8)) & 0xF) < 0xE)
    add("THM_JUMP8", conditional, lambda i: place[i] + 4 + _sign_extend(_field(hw1[i], 7, 0, 1), 9), place, -4, True)
    add("THM_JUMP11", narrow & (top == 0x1C), lambda i: place[i] + 4 + _sign_extend(_field(hw1[i], 10, 0, 1), 12),
        place, -4, True)
    add("THM_PC8", narrow & ((top == 0x09) | (top == 0x14)), lambda i: aligned[i] + 4 + _field(hw1[i], 7, 0, 2),
        aligned, -4)

    # Thumb, 32-bit: bl, blx, b.w, b<c>.w, ldr.w (and ldrb/ldrh/ldrsb/ldrsh) literal, adr.w
    control = wide & (top == 0x1E) & ((second & 0x8000) != 0)
    kind = second & 0xD000
    bl, to_arm = control & (kind == 0xD000), control & (kind == 0xC000)
    add("THM_CALL", bl | to_arm, lambda i: np.where(kind[i] == 0xC000, aligned[i], place[i]) + 4
        + _thumb_branch_offset(hw1[i], hw2[i]), place, -4, bl)
    add("THM_JUMP24", control & (kind == 0x9000), lambda i: place[i] + 4 + _thumb_branch_offset(hw1[i], hw2[i]),
        place, -4, True)
    jump19 = control & (kind == 0x8000) & (((half >> np.uint32(6)) & 0xF) < 0xE)

    def offset19(i: np.ndarray) -> np.ndarray:
        a, b = hw1[i], hw2[i]
        return place[i] + 4 + _sign_extend(_field(a, 10, 10, 20) | _field(b, 11, 11, 19) | _field(b, 13, 13, 18)
                                           | _field(a, 5, 0, 12) | _field(b, 10, 0, 1), 21)

    add("THM_JUMP19", jump19, offset19, place, -4, True)
    literal = wide & np.isin(half & 0xFF7F, list(_THUMB_LOADS))
    add("THM_PC12", literal, lambda i: aligned[i] + 4 + _signed_by(hw1[i], 7, _field(hw2[i], 11, 0)), aligned, -4)
    wide_adr = wide & (((half & 0xFBFF) == 0xF20F) | ((half & 0xFBFF) == 0xF2AF)) & ((second & 0x8000) == 0)

    def adr_w(i: np.ndarray) -> np.ndarray:
        a, b = hw1[i], hw2[i]
        magnitude = _field(a, 10, 10, 11) | _field(b, 14, 12, 8) | _field(b, 7, 0)
        return aligned[i] + 4 + _signed_by(a, 7, magnitude, add_when_set=False)

    add("THM_ALU_PREL_11_0", wide_adr, adr_w, aligned, -4)
    return found


def _a32_veneer(read, address: int) -> int | None:
    """ld.lld's A32 thunks (movw/movt ip [+ add ip, ip, pc]; bx ip) and GNU ld's stubs (ldr pc/ip
    from a literal, bx ip, b)."""
    registers: dict[int, int] = {}
    pc = address
    for _ in range(6):
        raw = read(pc, 4)
        if raw is None or len(raw) < 4:
            return None
        word = int.from_bytes(raw, "little")
        if word >> 28 != 0xE:
            return None
        rd = (word >> 12) & 15
        if word & 0x0FF00000 == 0x03000000:  # movw
            registers[rd] = ((word >> 4) & 0xF000) | (word & 0xFFF)
        elif word & 0x0FF00000 == 0x03400000:  # movt
            registers[rd] = (registers.get(rd, 0) & 0xFFFF) | ((((word >> 4) & 0xF000) | (word & 0xFFF)) << 16)
        elif word & 0x0FE00FF0 == 0x00800000:  # add rd, rn, rm
            values = [pc + 8 if r == 15 else registers.get(r) for r in ((word >> 16) & 15, word & 15)]
            if None in values:
                return None
            registers[rd] = (values[0] + values[1]) & 0xFFFFFFFF
        elif word & 0x0F7F0000 == 0x051F0000:  # ldr rd, [pc, #±imm]
            literal = read(pc + 8 + (word & 0xFFF if word & 0x00800000 else -(word & 0xFFF)), 4)
            if literal is None or len(literal) < 4:
                return None
            registers[rd] = int.from_bytes(literal, "little")
            if rd == 15:
                return registers[rd] & ~1
        elif word & 0x0FFFFFF0 == 0x012FFF10:  # bx rm
            value = registers.get(word & 15)
            return None if value is None else value & ~1
        elif word & 0x0F000000 == 0x0A000000:  # b
            return pc + 8 + sign_extend((word & 0xFFFFFF) << 2, 26)
        else:
            return None
        pc += 4
    return None


def _thumb_veneer(read, address: int) -> int | None:
    """ld.lld's Thumb-2 thunks (movw/movt ip [+ add ip, pc]; bx ip) and GNU ld's (ldr.w pc, literal; b.w;
    `bx pc` into an A32 stub)."""
    registers: dict[int, int] = {}
    pc = address
    for _ in range(6):
        raw = read(pc, 4) or read(pc, 2)
        if raw is None or len(raw) < 2:
            return None
        hw1 = int.from_bytes(raw[:2], "little")
        hw2 = int.from_bytes(raw[2:4], "little") if len(raw) >= 4 else 0
        if hw1 & 0xFBF0 in (0xF240, 0xF2C0) and not hw2 & 0x8000:  # movw / movt
            value = ((hw1 & 0xF) << 12) | ((hw1 >> 10 & 1) << 11) | ((hw2 >> 12 & 7) << 8) | (hw2 & 0xFF)
            rd = (hw2 >> 8) & 15
            registers[rd] = (value if hw1 & 0xFBF0 == 0xF240
                             else (registers.get(rd, 0) & 0xFFFF) | (value << 16))
            pc += 4
            continue
        if hw1 & 0xFF00 == 0x4400:  # add rdn, rm
            rdn, rm = (hw1 & 7) | ((hw1 >> 4) & 8), (hw1 >> 3) & 15
            values = [pc + 4 if r == 15 else registers.get(r) for r in (rdn, rm)]
            if None in values:
                return None
            registers[rdn] = (values[0] + values[1]) & 0xFFFFFFFF
            pc += 2
            continue
        if hw1 == 0x4778:  # bx pc: GNU ld's Thumb-to-A32 stubs continue in A32 at the next word
            return _a32_veneer(read, (pc + 4) & ~3)
        if hw1 & 0xFF87 == 0x4700:  # bx rm
            value = registers.get((hw1 >> 3) & 15)
            return None if value is None else value & ~1
        if hw1 & 0xFF7F == 0xF85F and hw2 >> 12 == 15:  # ldr.w pc, [pc, #±imm]
            offset = hw2 & 0xFFF
            literal = read(((pc + 4) & ~3) + (offset if hw1 & 0x80 else -offset), 4)
            return None if literal is None or len(literal) < 4 else int.from_bytes(literal, "little") & ~1
        if hw1 & 0xF800 == 0xF000 and hw2 & 0xD000 == 0x9000:  # b.w
            s = (hw1 >> 10) & 1
            i1, i2 = 1 - (((hw2 >> 13) & 1) ^ s), 1 - (((hw2 >> 11) & 1) ^ s)
            return pc + 4 + sign_extend((s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3FF) << 12) | ((hw2 & 0x7FF) << 1),
                                    25)
        return None
    return None


def veneer_target(read, address: int, little: bool) -> int | None:
    """Follow an Arm or Thumb veneer's code to its final target's address (Thumb bit cleared)."""
    found = _a32_veneer(read, address)
    return found if found is not None else _thumb_veneer(read, address)


DECODER = Decoder(
    decode=decode,
    veneer_target=veneer_target,
    thunk_symbols=(re.compile(rb"__(?:ARM|Thumb)[vV]\d\w*?Thunk_([^\0]+)"),
                   re.compile(rb"__([^\0]+?)_(?:veneer|from_arm|from_thumb|change_to_arm)")),
    word_size=2,
    context=True,
    code_bit0=True,
)


ARCH = Architecture(
    name="arm",
    max_page_size=0x10000,
    image_base=0x10000,
    dwarf_relocations={0: (0, "set"), 2: (4, "set")},  # NONE, ABS32 (REL: the addend is the field's content)
    gnu_ld="arm-linux-gnueabihf-ld",
    asm_dialect=Dialect("@", ";"),
    elf_machine="EM_ARM",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("arm32", "aarch32"),
    implicit_addend=implicit_addend,
    pc_bias=pc_bias,
    gnu_ld_thunks=GNU_LD_THUNKS,
    gnu_ld_ranges=GNU_LD_RANGES,
    decoder=DECODER,
)
