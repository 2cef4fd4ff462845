"""AArch64: reach table of the PC-relative relocations, instruction names, fix hints.

Ranges and distance formulas are the ones ld.lld range-checks in `AArch64::relocate`
(checkInt/checkIntUInt on S+A-P, or on the page delta for ADRP), so an overflow here reports
the number the linker prints. Only the branch relocations are bridged by linker veneers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..asmfile import AsmFile, AsmStatement, Dialect, branch_over_fix
from ..edits import Fix, Span, TextEdit
from ..elf import U64
from ..record import Formula, RelocKind
from .base import Architecture, Decoded, Decoder, sign_extend


def _signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _kind(name: str, number: int, bounds: tuple[int, int], alignment: int = 1, thunk: bool = False,
          formula: Formula = Formula.PREL) -> RelocKind:
    return RelocKind("aarch64", name, number, bounds[0], bounds[1], alignment, thunk, formula)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_AARCH64_PREL16", 0x106, (-(1 << 15), (1 << 16) - 1)),
    _kind("R_AARCH64_PREL32", 0x105, (-(1 << 31), (1 << 32) - 1)),
    _kind("R_AARCH64_LD_PREL_LO19", 0x111, _signed_range(21), alignment=4),
    _kind("R_AARCH64_ADR_PREL_LO21", 0x112, _signed_range(21)),
    _kind("R_AARCH64_ADR_PREL_PG_HI21", 0x113, _signed_range(33), formula=Formula.PAGE),
    _kind("R_AARCH64_ADR_PREL_PG_HI21_NC", 0x114, _signed_range(33), formula=Formula.PAGE),
    _kind("R_AARCH64_TSTBR14", 0x117, _signed_range(16), alignment=4),
    _kind("R_AARCH64_CONDBR19", 0x118, _signed_range(21), alignment=4),
    _kind("R_AARCH64_JUMP26", 0x11A, _signed_range(28), alignment=4, thunk=True),
    _kind("R_AARCH64_CALL26", 0x11B, _signed_range(28), alignment=4, thunk=True),
    _kind("R_AARCH64_MOVW_PREL_G0", 0x11F, _signed_range(17)),
    _kind("R_AARCH64_MOVW_PREL_G1", 0x121, _signed_range(33)),
    _kind("R_AARCH64_MOVW_PREL_G2", 0x123, _signed_range(49)),
    _kind("R_AARCH64_GOT_LD_PREL19", 0x135, _signed_range(21), alignment=4, formula=Formula.GOT),
    _kind("R_AARCH64_ADR_GOT_PAGE", 0x137, _signed_range(33), formula=Formula.GOT_PAGE),
)}

_CONDITIONS = ("eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", "nv")


def instruction(kind: RelocKind, word: int) -> str | None:
    """The mnemonic of the instruction a relocation patches, decoded from its fixed opcode bits."""
    if kind.short_name == "CONDBR19":
        if word & 0xFF000010 == 0x54000000:
            return f"b.{_CONDITIONS[word & 0xF]}"
        if word & 0x7E000000 == 0x34000000:
            return "cbnz" if word & 0x01000000 else "cbz"
    if kind.short_name == "TSTBR14" and word & 0x7E000000 == 0x36000000:
        return "tbnz" if word & 0x01000000 else "tbz"
    if kind.short_name in ("JUMP26", "CALL26") and word & 0x7C000000 == 0x14000000:
        return "bl" if word & 0x80000000 else "b"
    if kind.short_name == "ADR_PREL_LO21" and word & 0x9F000000 == 0x10000000:
        return "adr"
    if kind.formula.is_page and word & 0x9F000000 == 0x90000000:
        return "adrp"
    if kind.short_name in ("LD_PREL_LO19", "GOT_LD_PREL19") and word & 0x3B000000 == 0x18000000:
        return "ldr"
    return None


def fix_hint(kind: RelocKind, insn: str | None) -> str | None:
    """The change kernel developers make for this reference when its target is out of reach."""
    if insn == "adr":
        return "use adr_l (adrp+add, ±4 GiB), or place the target in .text"
    if insn == "ldr" and kind.short_name == "LD_PREL_LO19":
        return "use ldr_l (adrp+ldr, ±4 GiB)"
    if insn in ("cbz", "cbnz", "tbz", "tbnz") or (insn or "").startswith("b."):
        return "invert the branch over an unconditional b (±128 MiB), or place the target in .text"
    if kind.thunk:
        return "the linker inserts a veneer; place the target closer to avoid it"
    return None


_INVERSE = {"eq": "ne", "ne": "eq", "hs": "lo", "lo": "hs", "cs": "cc", "cc": "cs", "mi": "pl", "pl": "mi",
            "vs": "vc", "vc": "vs", "hi": "ls", "ls": "hi", "ge": "lt", "lt": "ge", "gt": "le", "le": "gt"}
_INVERSE_MNEMONIC = {"cbz": "cbnz", "cbnz": "cbz", "tbz": "tbnz", "tbnz": "tbz"}


def _inverted(mnemonic: str) -> str | None:
    """`cbz` → `cbnz`, `b.ne` → `b.eq`; None when there is no inverse (`b.al`)."""
    lower = mnemonic.lower()
    if lower in _INVERSE_MNEMONIC:
        return _INVERSE_MNEMONIC[lower]
    if lower.startswith("b.") and lower[2:] in _INVERSE:
        return "b." + _INVERSE[lower[2:]]
    return None


def asm_fixes(path: Path, statement: AsmStatement, line_text: str, asm: AsmFile, macros: set[str]) -> list[Fix]:
    """The rewrites of one out-of-reach assembly statement, preferred one first.

    `adr`/`ldr` literal become the kernel's `adr_l`/`ldr_l` (adrp-based, ±4 GiB) when those
    assembler macros are in scope; a conditional branch becomes the inverted branch over an
    unconditional `b` (±128 MiB, veneer-able), keeping the line's indentation and comment.
    """
    mnemonic, operands = statement.mnemonic.lower(), statement.operands
    rename = {"adr": "adr_l", "ldr": "ldr_l"}.get(mnemonic)
    if rename and len(operands) == 2 and not operands[1].text.startswith(("[", "=", "#")):
        if rename not in macros:
            return []
        span = statement.mnemonic_span
        return [Fix(f"Use {rename} ({mnemonic} reaches ±1 MiB, {rename} ±4 GiB)",
                    (TextEdit(path, Span(span.line, span.start, span.end), rename),), preferred=True)]
    inverse = _inverted(mnemonic)
    if inverse is None or not operands:
        return []
    return [branch_over_fix(path, statement, line_text, asm, inverse, [op.text for op in operands[:-1]], "b",
                            "±128 MiB")]


# --- Linked-image mode: short-reach instructions decoded from a final image (see decode.py) ---




_CONDBR19, _TSTBR14, _JUMP26, _CALL26, _ADR, _LD_LO19, _ADRP = 0x118, 0x117, 0x11A, 0x11B, 0x112, 0x111, 0x113
_NOP = 0xD503201F


def _top_byte_classes() -> np.ndarray:
    """Instruction class by bits [31:24]: every short-reach A64 class is told apart by its top byte.

    b/bl: 000101/100101 + imm26; b.cond (and bc.cond): 01010100; cbz/cbnz: sf 011010 op;
    tbz/tbnz: b5 011011 op; adr/adrp: op immlo 10000; literal loads: opc 011 V 00, where
    opc=11 with V=1 is unallocated (opc=11, V=0 is prfm).
    """
    table = np.zeros(256, dtype=np.int16)
    table[0x14:0x18] = _JUMP26
    table[0x94:0x98] = _CALL26
    table[[0x54, 0x34, 0x35, 0xB4, 0xB5]] = _CONDBR19
    table[[0x36, 0x37, 0xB6, 0xB7]] = _TSTBR14
    table[[0x10, 0x30, 0x50, 0x70]] = _ADR
    table[[0x90, 0xB0, 0xD0, 0xF0]] = _ADRP
    table[[0x18, 0x58, 0x98, 0xD8, 0x1C, 0x5C, 0x9C]] = _LD_LO19
    return table


_CLASS_OF_TOP_BYTE = _top_byte_classes()


def _sext(field: np.ndarray, bits: int) -> np.ndarray:
    value = field.astype(np.int64)
    return (value ^ (1 << (bits - 1))) - (1 << (bits - 1))


def _displacement(kind: int, words: np.ndarray) -> np.ndarray:
    """Byte displacement (target − P, or the page delta for adrp) encoded in words of one class."""
    if kind in (_JUMP26, _CALL26):
        return _sext(words & np.uint32(0x3FFFFFF), 26) << 2
    if kind in (_CONDBR19, _LD_LO19):
        return _sext((words >> np.uint32(5)) & np.uint32(0x7FFFF), 19) << 2
    if kind == _TSTBR14:
        return _sext((words >> np.uint32(5)) & np.uint32(0x3FFF), 14) << 2
    immediate = _sext(((words >> np.uint32(3)) & np.uint32(0x1FFFFC)) | ((words >> np.uint32(29)) & np.uint32(3)), 21)
    return immediate << 12 if kind == _ADRP else immediate


def decode(words: np.ndarray) -> list[Decoded]:
    """Every b/bl/b.cond/cbz/cbnz/tbz/tbnz/adr/adrp/literal load in `words`, per class, vectorised."""
    classes = _CLASS_OF_TOP_BYTE[words >> np.uint32(24)]
    candidates = np.flatnonzero(classes)
    grouped = candidates[np.argsort(classes[candidates], kind="stable")]
    kinds, starts = np.unique(classes[grouped], return_index=True)
    found = []
    for kind, index in zip(kinds.tolist(), np.split(grouped, starts[1:])):
        relaxed = None
        if kind == _ADR:  # ld.lld relaxes an in-range `adrp; add` into `nop; adr`
            relaxed = (index > 0) & (words[np.maximum(index - 1, 0)] == np.uint32(_NOP))
        found.append(Decoded(kind, index, _displacement(kind, words[index]), relaxed))
    return found


def veneer_target(read, address: int, little: bool) -> int | None:
    """Follow a linker veneer's code to its final target, evaluating the few instructions veneers use.

    Covers ld.lld's thunks (`ldr x16, literal; br x16`, `adrp x16; add x16, x16, #lo12; br x16`)
    and GNU ld's stubs (the same adrp form; `ldr x16, literal; adr x17, #0; add x16, x16, x17;
    br x16` with a pc-relative literal), hint instructions (nop, bti) skipped, or a plain `b`.
    """
    registers: dict[int, int] = {}
    pc = address
    for _ in range(8):
        raw = read(pc, 4)
        if raw is None or len(raw) < 4:
            return None
        word = int.from_bytes(raw, "little")
        rd, rn = word & 31, (word >> 5) & 31
        if word & 0xFFFFF01F == 0xD503201F:  # hint: nop, bti, pac*
            pass
        elif word & 0x1F000000 == 0x10000000:  # adr / adrp
            immediate = sign_extend(((word >> 3) & 0x1FFFFC) | ((word >> 29) & 3), 21)
            registers[rd] = ((pc & ~0xFFF) + (immediate << 12) if word & 0x80000000 else pc + immediate) & U64
        elif word & 0xFF000000 == 0x58000000:  # ldr x, literal
            literal = read(pc + (sign_extend((word >> 5) & 0x7FFFF, 19) << 2), 8)
            if literal is None or len(literal) < 8:
                return None
            registers[rd] = int.from_bytes(literal, "little" if little else "big")
        elif word & 0xFF800000 == 0x91000000 and rn in registers:  # add x, x, #imm{, lsl #12}
            registers[rd] = (registers[rn] + (((word >> 10) & 0xFFF) << (12 if word & 0x400000 else 0))) & U64
        elif word & 0xFFE00000 == 0x8B000000 and rn in registers and (word >> 16) & 31 in registers:
            amount = (word >> 10) & 63  # add x, x, x{, lsl #amount}
            registers[rd] = (registers[rn] + (registers[(word >> 16) & 31] << amount)) & U64
        elif word & 0xFFFFFC1F == 0xD61F0000:  # br x
            return registers.get(rn)
        elif word & 0xFC000000 == 0x14000000:  # b
            return (pc + (sign_extend(word & 0x3FFFFFF, 26) << 2)) & U64
        else:
            return None
        pc += 4
    return None



DECODER = Decoder(
    decode=decode,
    veneer_target=veneer_target,
    thunk_symbols=(re.compile(rb"__AArch64\w*Thunk_([^\0]+)"), re.compile(rb"__([^\0]+)_veneer")),
    stub_sections=re.compile(r"(.*\.)?stub"),
)


ARCH = Architecture(
    name="aarch64",
    max_page_size=0x10000,
    image_base=0x200000,
    dwarf_relocations={0: (0, "set"), 256: (0, "set"), 257: (8, "set"), 258: (4, "set")},  # NONE (both), ABS64, ABS32
    asm_dialect=Dialect("", ";"),
    gnu_ld="aarch64-linux-gnu-ld",
    elf_machine="EM_AARCH64",
    kinds=KINDS,
    instruction=instruction,
    instruction_bits=0xFF00001F,  # what `instruction` tests: the opcode bits and b.cond's condition
    fix_hint=fix_hint,
    # b.hs/b.lo are also spelled b.cs/b.cc; a literal load decoded as ldr may be ldrsw or prfm
    mnemonic_spellings={"bhs": ("bcs",), "blo": ("bcc",), "ldr": ("ldrsw", "prfm")},
    asm_fixes=asm_fixes,
    aliases=("arm64",),
    # What ld.lld 14 and GNU ld write for a reference to a weak symbol that stays undefined
    # (tests/unit/modes/test_unchecked.py links one of each and reads the result back): ld.lld branches to
    # the next instruction and points ADRP, ADR, literal loads and data at the place; GNU ld
    # turns B/BL into a NOP and resolves the rest to the place.
    undefined_weak_targets={
        "ld.lld": {"R_AARCH64_CALL26": 4, "R_AARCH64_JUMP26": 4, "R_AARCH64_CONDBR19": 4, "R_AARCH64_TSTBR14": 4,
                   **dict.fromkeys(("R_AARCH64_ADR_PREL_PG_HI21", "R_AARCH64_ADR_PREL_PG_HI21_NC",
                                    "R_AARCH64_ADR_PREL_LO21", "R_AARCH64_LD_PREL_LO19", "R_AARCH64_PREL16",
                                    "R_AARCH64_PREL32"), 0)},
        "GNU ld": dict.fromkeys(("R_AARCH64_CALL26", "R_AARCH64_JUMP26", "R_AARCH64_CONDBR19", "R_AARCH64_TSTBR14",
                                 "R_AARCH64_ADR_PREL_PG_HI21", "R_AARCH64_ADR_PREL_PG_HI21_NC",
                                 "R_AARCH64_ADR_PREL_LO21", "R_AARCH64_LD_PREL_LO19", "R_AARCH64_PREL16",
                                 "R_AARCH64_PREL32"), 0),
    },
    decoder=DECODER,
)
