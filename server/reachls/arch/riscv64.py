"""RISC-V 64: reach table of the PC-relative relocations, instruction names, fix hints.

Ranges are the ones ld.lld 14 checks in `RISCV::relocate`. The branches are checked in units of
halfwords (`checkInt(val >> 1, N)` plus a 2-byte alignment check), so ld.lld prints the value
halved and the range in halfwords: `R_RISCV_BRANCH out of range: 2048 is not in [-2048, 2047]`
is a distance of 4096 bytes. The auipc-based pairs (PCREL_HI20, CALL, CALL_PLT) are checked on
the rounded high part, `(val + 0x800) >> 12` in 20 signed bits, so they reach
[-2 GiB - 2 KiB, +2 GiB - 2 KiB) and ld.lld prints that high part.

No linker bridges a RISC-V branch: ld.lld 14 has no RISC-V thunks and GNU ld no stubs; both
fail. Linker relaxation (R_RISCV_RELAX, GNU ld only: ld.lld 14 does not relax) shrinks
call/jump sequences while linking and so moves code inside input sections; the relink engine
with ld.lld is exact for an ld.lld build, and a GNU ld build can come out shorter than measured.
RV32 shares EM_RISCV; there the auipc pairs wrap at 4 GiB and never overflow, the rest is alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..asmfile import AsmFile, AsmStatement, Dialect, branch_over_fix
from ..edits import Fix, Span, TextEdit
from ..record import RelocKind
from .base import Architecture, Decoded, Decoder, SectionContext, instruction_starts

_HI20 = (-(1 << 31) - 0x800, (1 << 31) - 0x800 - 1)


def _kind(name: str, number: int, bounds: tuple[int, int], alignment: int = 1) -> RelocKind:
    return RelocKind("riscv64", name, number, bounds[0], bounds[1], alignment, False)


def _halfwords(bits: int) -> tuple[int, int]:
    """The byte range of a `checkInt(val >> 1, bits)` check."""
    return -(1 << bits), (1 << bits) - 1


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_RISCV_BRANCH", 16, _halfwords(12), alignment=2),
    _kind("R_RISCV_JAL", 17, _halfwords(20), alignment=2),
    _kind("R_RISCV_CALL", 18, _HI20),
    _kind("R_RISCV_CALL_PLT", 19, _HI20),
    _kind("R_RISCV_PCREL_HI20", 23, _HI20),
    _kind("R_RISCV_RVC_BRANCH", 44, _halfwords(8), alignment=2),
    _kind("R_RISCV_RVC_JUMP", 45, _halfwords(11), alignment=2),
)}

#: GNU ld has no RISC-V stubs either: nothing differs from `RelocKind.thunk`.
GNU_LD_THUNKS: dict[str, bool] = {}

_BRANCHES = {0: "beq", 1: "bne", 4: "blt", 5: "bge", 6: "bltu", 7: "bgeu"}


def instruction(kind: RelocKind, word: int) -> str | None:
    """The mnemonic (the assembler's pseudo-instruction where it has one) a relocation patches."""
    name = kind.short_name
    if name == "BRANCH" and word & 0x7F == 0x63 and (word >> 12) & 7 in _BRANCHES:
        mnemonic = _BRANCHES[(word >> 12) & 7]
        rs1, rs2 = (word >> 15) & 0x1F, (word >> 20) & 0x1F
        if rs2 == 0 and mnemonic in ("beq", "bne", "blt", "bge"):
            return mnemonic + "z"
        if rs1 == 0 and mnemonic in ("blt", "bge"):
            return {"blt": "bgtz", "bge": "blez"}[mnemonic]
        return mnemonic
    if name == "JAL" and word & 0x7F == 0x6F:
        return "j" if (word >> 7) & 0x1F == 0 else "jal"
    if name in ("CALL", "CALL_PLT", "PCREL_HI20") and word & 0x7F == 0x17:
        rd = (word >> 7) & 0x1F
        if name != "PCREL_HI20":
            return {1: "call", 6: "tail"}.get(rd, "auipc")
        return "auipc"
    half = word & 0xFFFF
    if name == "RVC_BRANCH" and half & 0xC003 == 0xC001:
        return "c.bnez" if half & 0x2000 else "c.beqz"
    if name == "RVC_JUMP" and half & 0x6003 == 0x2001:
        return "c.j" if half & 0x8000 else "c.jal"
    return None


#: What `instruction` names → the other ways an assembly source writes it: base forms of the
#: pseudo-instructions, operand-swapped branches, the forms the assembler compresses, and the
#: pseudo-instructions (`la`, `call`, loads and stores of a symbol) that begin with an auipc.
MNEMONIC_SPELLINGS: dict[str, tuple[str, ...]] = {
    "beqz": ("beq",), "bnez": ("bne",), "blez": ("bge",), "bgtz": ("blt",),
    "blt": ("bgt",), "bge": ("ble",), "bltu": ("bgtu",), "bgeu": ("bleu",),
    "j": ("jal",), "cj": ("j", "jal"), "cjal": ("jal",), "cbeqz": ("beqz", "beq"), "cbnez": ("bnez", "bne"),
    "call": ("auipc",), "tail": ("auipc",),
    "auipc": ("la", "lla", "lga", "call", "tail", "lb", "lbu", "lh", "lhu", "lw", "lwu", "ld",
              "sb", "sh", "sw", "sd", "flw", "fld", "fsw", "fsd"),
}


def fix_hint(kind: RelocKind, insn: str | None) -> str | None:
    """The change kernel developers make for this reference when its target is out of reach."""
    name = kind.short_name
    if name == "BRANCH":
        return "invert the branch over a j (±1 MiB), or over a tail/call for more"
    if name == "JAL":
        return "use call (or tail for j): auipc+jalr, ±2 GiB"
    if name in ("RVC_BRANCH", "RVC_JUMP"):
        return "use the uncompressed instruction (beqz/bnez ±4 KiB, j/jal ±1 MiB)"
    return None


_INVERSE = {"beq": "bne", "bne": "beq", "blt": "bge", "bge": "blt", "bltu": "bgeu", "bgeu": "bltu",
            "beqz": "bnez", "bnez": "beqz", "blez": "bgtz", "bgtz": "blez", "bltz": "bgez", "bgez": "bltz",
            "bgt": "ble", "ble": "bgt", "bgtu": "bleu", "bleu": "bgtu"}
_UNCOMPRESSED = {"c.beqz": "beqz", "c.bnez": "bnez", "c.j": "j", "c.jal": "jal"}


def asm_fixes(path: Path, statement: AsmStatement, line_text: str, asm: AsmFile, macros: set[str]) -> list[Fix]:
    """The rewrites of one out-of-reach RISC-V assembly statement, preferred one first.

    A conditional branch becomes the inverted branch over a `j` (±1 MiB); `jal sym` becomes
    `call sym` and `j sym` becomes `tail sym` (auipc+jalr, ±2 GiB; tail uses t1 as scratch);
    a compressed instruction becomes its uncompressed form.
    """
    mnemonic, operands = statement.mnemonic.lower(), statement.operands
    span = statement.mnemonic_span
    if mnemonic in _UNCOMPRESSED:
        return [Fix(f"Use {_UNCOMPRESSED[mnemonic]} (uncompressed, longer reach)",
                    (TextEdit(path, Span(span.line, span.start, span.end), _UNCOMPRESSED[mnemonic]),),
                    preferred=True)]
    gap = line_text[span.end:operands[0].span.start] if operands else " "
    whole = Span(statement.line, statement.span.start, statement.span.end)
    if mnemonic in ("jal", "j") and operands:
        link = operands[0].text.lower() if len(operands) == 2 else ("ra" if mnemonic == "jal" else "zero")
        replacement = {"ra": "call", "x1": "call", "zero": "tail", "x0": "tail"}.get(link)
        if replacement is None:
            return []
        title = "call (auipc+jalr, ±2 GiB)" if replacement == "call" else "tail (auipc+jr, ±2 GiB; uses t1)"
        return [Fix(f"Use {title}", (TextEdit(path, whole, f"{replacement}{gap}{operands[-1].text}"),),
                    preferred=True)]
    inverse = _INVERSE.get(mnemonic)
    if inverse is None or not operands:
        return []
    return [branch_over_fix(path, statement, line_text, asm, inverse, [op.text for op in operands[:-1]], "j",
                            "±1 MiB")]


# --- Linked-image decoding (decode.py) ---------------------------------------------------------




_BRANCH_KIND, _JAL_KIND, _CALL_KIND, _HI20_KIND, _RVC_BRANCH_KIND, _RVC_JUMP_KIND = 16, 17, 18, 23, 44, 45
#: How many instructions after an `auipc` are searched for the one that adds its low 12 bits.
_PAIR_WINDOW = 4


def _bits(word: np.ndarray, high: int, low: int, to: int) -> np.ndarray:
    """Bits high..low of `word`, moved to start at bit `to`, as int64."""
    return ((word.astype(np.int64) >> low) & ((1 << (high - low + 1)) - 1)) << to


def _sext(value: np.ndarray, bits: int) -> np.ndarray:
    value = value.astype(np.int64) & ((1 << bits) - 1)
    return value - ((value >> (bits - 1)) << bits)


def _i_immediate(word: np.ndarray) -> np.ndarray:
    return _sext(word.astype(np.int64) >> 20, 12)


def _s_immediate(word: np.ndarray) -> np.ndarray:
    return _sext(_bits(word, 31, 25, 5) | _bits(word, 11, 7, 0), 12)


def _auipc_pairs(word: np.ndarray, starts: np.ndarray, sites: np.ndarray, long: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(low 12 bits, whether it is a call) completing each `auipc` at `sites` (positions in `starts`).

    The low part is the immediate of the first of the next `_PAIR_WINDOW` instructions that uses
    the auipc's rd as its base: `jalr` (right after it: a call/tail, R_RISCV_CALL), `addi`, a load or
    a store (%pcrel_lo). The search stops at a control transfer or at an instruction that writes
    rd; without a consumer the low part is 0 (the auipc's own reach, rounded to 4 KiB).
    """
    rd = (word[starts[sites]] >> np.uint32(7)) & np.uint32(0x1F)
    low = np.zeros(len(sites), dtype=np.int64)
    call = np.zeros(len(sites), dtype=bool)
    open_ = rd != 0
    for step in range(1, _PAIR_WINDOW + 1):
        at = sites + step
        valid = open_ & (at < len(starts))
        unit = starts[np.minimum(at, len(starts) - 1)]
        w, wide = word[unit], long[unit]
        opcode, rs1, dest = w & 0x7F, (w >> np.uint32(15)) & 0x1F, (w >> np.uint32(7)) & 0x1F
        uses = wide & (rs1 == rd)
        jalr = uses & (opcode == 0x67) & (((w >> np.uint32(12)) & 7) == 0)
        itype = uses & (((opcode == 0x13) & (((w >> np.uint32(12)) & 7) == 0)) | (opcode == 0x03) | (opcode == 0x07))
        stype = uses & ((opcode == 0x23) | (opcode == 0x27))
        hit = valid & (jalr | itype | stype)
        low[hit] = np.where(stype[hit], _s_immediate(w[hit]), _i_immediate(w[hit]))
        call |= hit & jalr & (step == 1)
        control = wide & ((opcode == 0x63) | (opcode == 0x6F) | (opcode == 0x67))
        writes = np.where(wide, (dest == rd) & (opcode != 0x63) & (opcode != 0x23) & (opcode != 0x27),
                          dest == rd)
        open_ &= ~hit & ~control & ~writes
    return low, call


def decode(units: np.ndarray, context: SectionContext) -> list[Decoded]:
    """Every branch, jal, c.beqz/c.bnez, c.j and auipc pair in a section of halfwords, per class.

    Instruction boundaries come from `instruction_starts` (low bits 0b11: a 32-bit instruction;
    resynchronised at every symbol), all vectorised; 48-bit and longer encodings are not used by
    RV64GC code. The 32-bit word at each unit is the unit and the next one, read at once.
    """
    if not len(units):
        return []
    half = units.astype(np.uint32) & np.uint32(0xFFFF)
    long = (half & 3) == 3
    starts_mask = instruction_starts(long, context.anchors)
    word = half | (np.append(half[1:], np.uint32(0)) << np.uint32(16))
    wide, narrow = starts_mask & long, starts_mask & ~long
    wide[-1] = False  # a 32-bit instruction cannot start in the last halfword
    opcode, funct3 = word & 0x7F, (word >> np.uint32(12)) & 7
    found = []

    branch = np.flatnonzero(wide & (opcode == 0x63) & (funct3 != 2) & (funct3 != 3))
    w = word[branch]
    found.append(Decoded(_BRANCH_KIND, branch, _sext(_bits(w, 31, 31, 12) | _bits(w, 7, 7, 11) | _bits(w, 30, 25, 5)
                                                   | _bits(w, 11, 8, 1), 13)))
    jal = np.flatnonzero(wide & (opcode == 0x6F))
    w = word[jal]
    found.append(Decoded(_JAL_KIND, jal, _sext(_bits(w, 31, 31, 20) | _bits(w, 19, 12, 12) | _bits(w, 20, 20, 11)
                                              | _bits(w, 30, 21, 1), 21)))
    rvc_branch = np.flatnonzero(narrow & ((half & 0xC003) == 0xC001))
    h = half[rvc_branch]
    found.append(Decoded(_RVC_BRANCH_KIND, rvc_branch, _sext(_bits(h, 12, 12, 8) | _bits(h, 6, 5, 6) | _bits(h, 2, 2, 5)
                                                            | _bits(h, 11, 10, 3) | _bits(h, 4, 3, 1), 9)))
    rvc_jump = np.flatnonzero(narrow & ((half & 0xE003) == 0xA001))  # c.j; c.jal (0x2001) is c.addiw on RV64
    h = half[rvc_jump]
    found.append(Decoded(_RVC_JUMP_KIND, rvc_jump, _sext(
        _bits(h, 12, 12, 11) | _bits(h, 8, 8, 10) | _bits(h, 10, 9, 8) | _bits(h, 6, 6, 7) | _bits(h, 7, 7, 6)
        | _bits(h, 2, 2, 5) | _bits(h, 11, 11, 4) | _bits(h, 5, 3, 1), 12)))
    starts = np.flatnonzero(starts_mask)
    sites = np.flatnonzero(wide[starts] & (opcode[starts] == 0x17))
    if len(sites):
        low, call = _auipc_pairs(word, starts, sites, long)
        auipc = starts[sites]
        distance = _sext(word[auipc] & np.uint32(0xFFFFF000), 32) + low
        found += [Decoded(_CALL_KIND, auipc[call], distance[call]), Decoded(_HI20_KIND, auipc[~call], distance[~call])]
    return [d for d in found if len(d.index)]


DECODER = Decoder(
    decode=decode,
    veneer_target=lambda read, address, little: None,  # no RISC-V linker inserts veneers
    word_size=2,
    context=True,
    notes=(("RISC-V auipc pairs: the distance is the auipc's high part plus the low 12 bits of the "
            "instruction that uses it (addi/load/store/jalr within the next 4 instructions)"),),
)


ARCH = Architecture(
    name="riscv64",
    max_page_size=0x1000,
    image_base=0x10000,
    # Line tables describe address differences as ADD/SUB pairs, even without linker relaxation.
    dwarf_relocations={0: (0, "set"), 1: (4, "set"), 2: (8, "set"), 51: (0, "set"),  # NONE, 32, 64, RELAX
                       33: (1, "add"), 34: (2, "add"), 35: (4, "add"), 36: (8, "add"),
                       37: (1, "sub"), 38: (2, "sub"), 39: (4, "sub"), 40: (8, "sub"),
                       54: (1, "set"), 55: (2, "set"), 56: (4, "set")},  # SET8/16/32
    gnu_ld="riscv64-linux-gnu-ld",
    asm_dialect=Dialect("#", ";"),
    elf_machine="EM_RISCV",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("riscv",),
    mnemonic_spellings=MNEMONIC_SPELLINGS,
    decoder=DECODER,
)
