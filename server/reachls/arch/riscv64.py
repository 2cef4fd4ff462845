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

from ..fixes import Fix, TextEdit
from ..record import RelocKind
from ..sources.asm import AsmFile, AsmStatement, Span
from . import Architecture

_HI20 = (-(1 << 31) - 0x800, (1 << 31) - 0x800 - 1)


def _kind(name: str, number: int, bounds: tuple[int, int], alignment: int = 1) -> RelocKind:
    return RelocKind("riscv64", name, number, bounds[0], bounds[1], alignment, False, "prel")


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
    label = asm.fresh_numeric_label(statement.line + 1)
    kept = [op.text for op in operands[:-1]]
    branch = f"{inverse}{gap}{', '.join([*kept, label + 'f'])}"
    after = f"\n{statement.indent}j{gap}{operands[-1].text}\n{label}:"
    line_end = len(line_text)
    return [Fix(f"Invert to {inverse} over a j (±1 MiB)",
                (TextEdit(path, whole, branch), TextEdit(path, Span(statement.line, line_end, line_end), after)),
                preferred=True)]


ARCH = Architecture(
    name="riscv64",
    asm_dialect="riscv",
    elf_machine="EM_RISCV",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("riscv",),
)
