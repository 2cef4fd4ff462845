"""MIPS (32- and 64-bit, either byte order): reach table of the branches and jumps, instruction
names, fix hints, MIPS64's packed relocation types, linked-image decoding.

The Linux kernel builds MIPS as o32 (`-mabi=32`: ELF32, SHT_REL, the addend in the instruction)
or n64 (`-mabi=64`: ELF64, SHT_RELA), non-PIC (`-fno-pic -mno-abicalls -G0`); both byte orders.
Ranges are the ones the linkers check (ld.lld 14 `MIPS::relocate`, binutils 2.40
`mips_elf_calculate_relocation`), confirmed at their edges by tests/unit/arch/test_mips.py:

- `R_MIPS_PC16` (`b`, `beq`, `bnez`, `bal`, …): S+A-P in 18 signed bits, a multiple of 4. The
  assembler puts -4 in the addend, so the checked value is the distance from the delay slot (P+4),
  which is what the 16-bit word offset encodes. Both linkers check it and neither bridges it.
- `R_MIPS_26` (`j`, `jal`): not a distance: the 26-bit field replaces the low 28 bits of the
  delay slot's address, so the target must lie in the 256 MiB region of P+4 (a `jal` in the last
  word of a region jumps into the next one). Expressed as the place P+4 rounded down to 256 MiB,
  reach [0, 256 MiB). GNU ld reports a jump out of its region (`relocation truncated to fit`);
  ld.lld 14 does not check it at all and writes a jump into the wrong region, so reachls's
  `overflow` is there the only warning (checked against the jump llvm-objdump decodes).
- MIPS R6: `R_MIPS_PC21_S2` (`beqzc`/`bnezc`, ±4 MiB), `R_MIPS_PC26_S2` (`bc`/`balc`, ±128 MiB),
  both with -4 in the addend like PC16; `R_MIPS_PC19_S2` (`lwpc`/`addiupc`/`lapc`, ±1 MiB from P);
  `R_MIPS_PC18_S3` (`ldpc`, ±1 MiB from P rounded down to 8), which GNU ld checks and ld.lld 14
  does not know at all (`LLD_UNSUPPORTED`: "unknown relocation", whatever the distance).
- microMIPS types are left out: they exist only in o32 objects (SHT_REL), and their addend lives in
  halfwords whose order in a 32-bit read depends on the byte order, which `implicit_addend` is not
  given; such references are not reported rather than reported wrongly.

Neither linker bridges a MIPS branch or jump for range. ld.lld's only MIPS thunk (LA25) sets up
$t9 for a call from non-PIC into PIC code, which a kernel never has.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..asmfile import AsmFile, AsmStatement, Dialect, branch_over_fix
from ..edits import Fix, Span, TextEdit
from ..record import RelocKind
from .base import Architecture, Decoded, Decoder, SectionContext

R_MIPS_26, R_MIPS_PC16, R_MIPS_PC21_S2, R_MIPS_PC26_S2, R_MIPS_PC18_S3, R_MIPS_PC19_S2 = 4, 10, 60, 61, 62, 63
REGION = 1 << 28  # what a j/jal reaches: the 256 MiB region of its delay slot


def _kind(name: str, number: int, field_bits: int, shift: int) -> RelocKind:
    """A PC-relative field of `field_bits` signed bits counting units of 1 << `shift` bytes."""
    reach = 1 << (field_bits + shift - 1)
    return RelocKind("mips", name, number, -reach, reach - 1, 1 << shift, False)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    # S+A minus the region of the delay slot: (P+4) rounded down to 256 MiB, in [0, 256 MiB).
    RelocKind("mips", "R_MIPS_26", R_MIPS_26, 0, REGION - 1, 4, False, place_offset=4, place_alignment=REGION),
    _kind("R_MIPS_PC16", R_MIPS_PC16, 16, 2),
    _kind("R_MIPS_PC21_S2", R_MIPS_PC21_S2, 21, 2),
    _kind("R_MIPS_PC26_S2", R_MIPS_PC26_S2, 26, 2),
    # ldpc reads the PC doubleword-aligned: S+A - (P rounded down to 8).
    RelocKind("mips", "R_MIPS_PC18_S3", R_MIPS_PC18_S3, -(1 << 20), (1 << 20) - 1, 8, False, place_alignment=8),
    _kind("R_MIPS_PC19_S2", R_MIPS_PC19_S2, 19, 2),
)}

#: Kinds ld.lld 14 rejects as "unknown relocation" whatever the distance.
LLD_UNSUPPORTED = frozenset({"R_MIPS_PC18_S3"})

#: GNU ld stubs nothing here either.
GNU_LD_THUNKS: dict[str, bool] = {}

#: The field each kind's implicit (o32) addend is read from: (bits, unit shift).
_FIELDS = {R_MIPS_26: (26, 2), R_MIPS_PC16: (16, 2), R_MIPS_PC21_S2: (21, 2), R_MIPS_PC26_S2: (26, 2),
           R_MIPS_PC18_S3: (18, 3), R_MIPS_PC19_S2: (19, 2)}
#: Kinds whose assembler-made addend is -4: the delay slot (or next instruction) the field counts from.
_FROM_NEXT = frozenset({R_MIPS_PC16, R_MIPS_PC21_S2, R_MIPS_PC26_S2})


def _sext(value: np.ndarray, bits: int) -> np.ndarray:
    value = value.astype(np.int64) & ((1 << bits) - 1)
    return value - ((value >> (bits - 1)) << bits)


def implicit_addend(kind: RelocKind, words: np.ndarray) -> np.ndarray:
    """The o32 (SHT_REL) addends, from the field each type patches: sign-extended and scaled as
    ld.lld reads them (R_MIPS_26's field too, as a signed 28-bit byte offset)."""
    bits, shift = _FIELDS[kind.number]
    return _sext(words.astype(np.int64) & ((1 << bits) - 1), bits) << shift


def pc_bias(kind: RelocKind) -> int:
    """The -4 of a branch's addend that only says "from the delay slot": not part of the target."""
    return -4 if kind.number in _FROM_NEXT else 0


def relocation_info(info: np.ndarray, is64: bool, little: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MIPS64's r_info: r_sym (32 bits), r_ssym, r_type3, r_type2, r_type (a byte each), in that
    order in the file whatever its byte order, so a little-endian read (uint64) holds r_sym in its
    low half and r_type in its top byte, a big-endian one r_sym in its high half and r_type in its
    low byte. Returns (symbol, r_type, whether r_type2 or r_type3 composes another operation);
    ELF32 (o32) packs r_info as every architecture does."""
    if not is64:
        return (info >> np.uint64(8)).astype(np.int64), (info & np.uint64(0xFF)).astype(np.int64), None
    if little:
        sym = info & np.uint64(0xFFFF_FFFF)
        rtype, type2, type3 = info >> np.uint64(56), (info >> np.uint64(48)) & 0xFF, (info >> np.uint64(40)) & 0xFF
    else:
        sym = info >> np.uint64(32)
        rtype, type2, type3 = info & 0xFF, (info >> np.uint64(8)) & 0xFF, (info >> np.uint64(16)) & 0xFF
    return sym.astype(np.int64), rtype.astype(np.int64), (type2 != 0) | (type3 != 0)


_REGIMM = {0: "bltz", 1: "bgez", 2: "bltzl", 3: "bgezl", 16: "bltzal", 17: "bgezal", 18: "bltzall", 19: "bgezall"}
_PC16_OPCODES = {4: "beq", 5: "bne", 6: "blez", 7: "bgtz", 20: "beql", 21: "bnel", 22: "blezl", 23: "bgtzl"}
_PCREL_R6 = {0: "addiupc", 1: "lwpc", 2: "lwupc"}


def instruction(kind: RelocKind, word: int) -> str | None:
    """The mnemonic, as the assembler's pseudo-instruction where there is one (`b`, `beqz`, `bal`)."""
    opcode, rs, rt = word >> 26, (word >> 21) & 0x1F, (word >> 16) & 0x1F
    number = kind.number
    if number == R_MIPS_PC16:
        if opcode in (4, 5, 20, 21):
            base = _PC16_OPCODES[opcode]
            if opcode == 4 and rs == 0 and rt == 0:
                return "b"
            return base[:3] + "z" + base[3:] if rt == 0 else base
        if opcode in (6, 7, 22, 23) and rt == 0:
            return _PC16_OPCODES[opcode]
        if opcode == 1 and rt in _REGIMM:
            return "bal" if rt == 17 and rs == 0 else _REGIMM[rt]
        if opcode == 17 and rs == 8:  # COP1 branches
            return "bc1" + ("t" if rt & 1 else "f") + ("l" if rt & 2 else "")
    if number == R_MIPS_26 and opcode in (2, 3, 29):
        return {2: "j", 3: "jal", 29: "jalx"}[opcode]
    if number == R_MIPS_PC21_S2 and opcode in (0x36, 0x3E) and rs:
        return "beqzc" if opcode == 0x36 else "bnezc"
    if number == R_MIPS_PC26_S2 and opcode in (0x32, 0x3A):
        return "bc" if opcode == 0x32 else "balc"
    if number == R_MIPS_PC19_S2 and opcode == 0x3B and (word >> 19) & 3 in _PCREL_R6:
        return _PCREL_R6[(word >> 19) & 3]
    if number == R_MIPS_PC18_S3 and opcode == 0x3B and (word >> 18) & 7 == 6:
        return "ldpc"
    return None


#: What `instruction` names → the other ways a source writes it: `b` is `beq $0, $0`, `beqz rs`
#: is `beq rs, $0`, `bal` is `bgezal $0`; `bc`/`balc` are what `b`/`bal` become on R6.
MNEMONIC_SPELLINGS: dict[str, tuple[str, ...]] = {
    "b": ("beq", "beqz", "bc"), "beqz": ("beq",), "bnez": ("bne",), "beqzl": ("beql",), "bnezl": ("bnel",),
    "bal": ("bgezal", "balc"), "bc": ("b",), "balc": ("bal",), "beqzc": ("beqz",), "bnezc": ("bnez",),
    "lapc": ("addiupc",), "addiupc": ("lapc",),
}


def fix_hint(kind: RelocKind, insn: str | None) -> str | None:
    """The change kernel developers make for this reference when its target is out of reach."""
    if kind.number == R_MIPS_26:
        return ("a j/jal reaches only its own 256 MiB region (ld.lld does not check it): "
                "load the address and jump through a register (PTR_LA t9, sym; jalr t9)")
    if kind.number == R_MIPS_PC16:
        if insn in ("b", "bal"):
            return f"use {'jal' if insn == 'bal' else 'j'} (the 256 MiB region), or jump through a register"
        return "invert the branch over a j (the 256 MiB region), or over a jump through a register"
    if kind.number == R_MIPS_PC21_S2:
        return "invert the compact branch over a bc (±128 MiB)"
    if kind.number == R_MIPS_PC26_S2:
        return "load the address and jump through a register (jic/jialc)"
    if kind.number in (R_MIPS_PC19_S2, R_MIPS_PC18_S3):
        return "load the address absolutely (la/dla: lui/addiu) and access through the register"
    return None


_INVERSE = {"beq": "bne", "bne": "beq", "beqz": "bnez", "bnez": "beqz", "bltz": "bgez", "bgez": "bltz",
            "blez": "bgtz", "bgtz": "blez", "blt": "bge", "bge": "blt", "bltu": "bgeu", "bgeu": "bltu",
            "bgt": "ble", "ble": "bgt", "bgtu": "bleu", "bleu": "bgtu"}


def asm_fixes(path: Path, statement: AsmStatement, line_text: str, asm: AsmFile, macros: set[str]) -> list[Fix]:
    """The rewrites of one out-of-reach MIPS assembly statement, preferred one first.

    `b`/`bal` become `j`/`jal` (the 256 MiB region); a conditional branch becomes the inverted
    branch over a `j`; a `j`/`jal` leaving its region loads the address into $t9 and jumps
    through it (`jr`/`jalr`), as the kernel does with `PTR_LA t9, sym` (offered where the file
    knows `PTR_LA`; plain `la` is for o32, n64 wants `dla`). The new statements are
    written for the assembler's default `reorder` mode, where it fills the delay slots itself.
    """
    mnemonic, operands = statement.mnemonic.lower(), statement.operands
    if not operands:
        return []
    gap = line_text[statement.mnemonic_span.end:operands[0].span.start]
    whole = Span(statement.line, statement.span.start, statement.span.end)
    target = operands[-1].text
    if mnemonic in ("b", "bal") and len(operands) == 1:
        jump = "j" if mnemonic == "b" else "jal"
        return [Fix(f"Use {jump} (the 256 MiB region)", (TextEdit(path, whole, f"{jump}{gap}{target}"),),
                    preferred=True)]
    if mnemonic in ("j", "jal") and len(operands) == 1:
        through = "jr" if mnemonic == "j" else "jalr"
        load = "PTR_LA" if "ptr_la" in {m.lower() for m in macros} else "la"  # asm/asm.h: la or dla
        text = f"{load}{gap}$t9, {target}\n{statement.indent}{through}{gap}$t9"
        return [Fix(f"Load the address into $t9 and {through} (any distance)", (TextEdit(path, whole, text),),
                    preferred=True)]
    inverse = _INVERSE.get(mnemonic)
    if inverse is None:
        return []
    return [branch_over_fix(path, statement, line_text, asm, inverse, [op.text for op in operands[:-1]], "j",
                            "the 256 MiB region")]


# --- Linked-image decoding (decode.py) ---------------------------------------------------------


def decode(words: np.ndarray, context: SectionContext) -> list[Decoded]:
    """Every PC16 branch (`beq`…`bgtzl`, REGIMM `bltz`…`bgezall`, `bc1f`/`bc1t`) and `j`/`jal`
    of a section, per class, with their targets: a branch's from its delay slot (P+4) plus the
    word offset; a jump's the region of P+4 with the low 28 bits from its field. Displacements
    are the checked values: S-(P+4) for a branch (S+A-P, A being -4; its target given), the
    field's low 28 bits for a jump (S minus the region: `place_base` of R_MIPS_26).

    R6's compact branches reuse pre-R6 opcodes (LWC2, SWC2, …) and are not decoded: nothing in
    the words tells the revisions apart.
    """
    opcode, rs, rt = words >> np.uint32(26), (words >> np.uint32(21)) & 0x1F, (words >> np.uint32(16)) & 0x1F
    delay_slot = np.arange(len(words), dtype=np.uint64) * np.uint64(4) + np.uint64(context.address + 4)
    found = []
    branch = np.flatnonzero(np.isin(opcode, (4, 5, 20, 21)) | (np.isin(opcode, (6, 7, 22, 23)) & (rt == 0))
                            | ((opcode == 1) & np.isin(rt, list(_REGIMM))) | ((opcode == 17) & (rs == 8)))
    offset = _sext(words[branch] & np.uint32(0xFFFF), 16) << 2
    found.append(Decoded(R_MIPS_PC16, branch, offset, target=delay_slot[branch] + offset.view(np.uint64)))
    jump = np.flatnonzero(np.isin(opcode, (2, 3)))
    found.append(Decoded(R_MIPS_26, jump, (words[jump].astype(np.int64) & 0x03FF_FFFF) << 2))
    return [d for d in found if len(d.index)]


DECODER = Decoder(
    decode=decode,
    veneer_target=lambda read, address, little: None,  # no linker bridges a MIPS branch for range
    instruction_byteorder=None,
    data_mapping=None,
    context=True,
    notes=("MIPS: a branch counts from its delay slot (P+4); a j/jal reaches its delay slot's 256 MiB "
           "region, so a decoded one always lands in it",),
)

ARCH = Architecture(
    name="mips",
    gnu_ld="mips-linux-gnu-ld",
    asm_dialect=Dialect("#", ";"),
    elf_machine="EM_MIPS",
    page_size=0x1000,
    max_page_size=0x10000,
    image_base=0x10000,
    # NONE, 32, 64 (n64: the first of the packed types; o32 is SHT_REL: the addend is the field's content)
    dwarf_relocations={0: (0, "set"), 2: (4, "set"), 18: (8, "set")},
    relocation_info=relocation_info,
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("mipsel", "mips64", "mips64el"),
    implicit_addend=implicit_addend,
    pc_bias=pc_bias,
    mnemonic_spellings=MNEMONIC_SPELLINGS,
    decoder=DECODER,
)
