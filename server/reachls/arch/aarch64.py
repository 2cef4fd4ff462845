"""AArch64: reach table of the PC-relative relocations, instruction names, fix hints.

Ranges and distance formulas are the ones ld.lld range-checks in `AArch64::relocate`
(checkInt/checkIntUInt on S+A-P, or on the page delta for ADRP), so an overflow here reports
the number the linker prints. Only the branch relocations are bridged by linker veneers.
"""

from __future__ import annotations

from pathlib import Path

from ..fixes import Fix, TextEdit
from ..record import RelocKind
from ..sources.asm import AsmFile, AsmStatement, Span
from . import Architecture


def _signed(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _kind(name: str, number: int, bounds: tuple[int, int], alignment: int = 1, thunk: bool = False,
          formula: str = "prel") -> RelocKind:
    return RelocKind("aarch64", name, number, bounds[0], bounds[1], alignment, thunk, formula)


KINDS: dict[int, RelocKind] = {k.number: k for k in (
    _kind("R_AARCH64_PREL16", 0x106, (-(1 << 15), (1 << 16) - 1)),
    _kind("R_AARCH64_PREL32", 0x105, (-(1 << 31), (1 << 32) - 1)),
    _kind("R_AARCH64_LD_PREL_LO19", 0x111, _signed(21), alignment=4),
    _kind("R_AARCH64_ADR_PREL_LO21", 0x112, _signed(21)),
    _kind("R_AARCH64_ADR_PREL_PG_HI21", 0x113, _signed(33), formula="page"),
    _kind("R_AARCH64_ADR_PREL_PG_HI21_NC", 0x114, _signed(33), formula="page"),
    _kind("R_AARCH64_TSTBR14", 0x117, _signed(16), alignment=4),
    _kind("R_AARCH64_CONDBR19", 0x118, _signed(21), alignment=4),
    _kind("R_AARCH64_JUMP26", 0x11A, _signed(28), alignment=4, thunk=True),
    _kind("R_AARCH64_CALL26", 0x11B, _signed(28), alignment=4, thunk=True),
    _kind("R_AARCH64_MOVW_PREL_G0", 0x11F, _signed(17)),
    _kind("R_AARCH64_MOVW_PREL_G1", 0x121, _signed(33)),
    _kind("R_AARCH64_MOVW_PREL_G2", 0x123, _signed(49)),
    _kind("R_AARCH64_GOT_LD_PREL19", 0x135, _signed(21), alignment=4, formula="got"),
    _kind("R_AARCH64_ADR_GOT_PAGE", 0x137, _signed(33), formula="got_page"),
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
    if kind.formula in ("page", "got_page") and word & 0x9F000000 == 0x90000000:
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
    label = asm.fresh_numeric_label(statement.line + 1)
    gap = line_text[statement.mnemonic_span.end:operands[0].span.start]
    kept = [op.text for op in operands[:-1]]
    branch = f"{inverse}{gap}{', '.join([*kept, label + 'f'])}"
    after = f"\n{statement.indent}b{gap}{operands[-1].text}\n{label}:"
    line_end = len(line_text)
    return [Fix(f"Invert to {inverse} over an unconditional b (±128 MiB)",
                (TextEdit(path, Span(statement.line, statement.span.start, statement.span.end), branch),
                 TextEdit(path, Span(statement.line, line_end, line_end), after)), preferred=True)]


ARCH = Architecture(
    name="aarch64",
    elf_machine="EM_AARCH64",
    kinds=KINDS,
    instruction=instruction,
    fix_hint=fix_hint,
    asm_fixes=asm_fixes,
    aliases=("arm64",),
)
