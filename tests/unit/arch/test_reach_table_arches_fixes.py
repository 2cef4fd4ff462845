"""The assembly rewrites of the Arm, RISC-V and PowerPC64 modules, proven by the toolchain: the
rewritten file assembles, the far reference now has the longer-reach relocation, and ld.lld links
it with the target placed beyond the original instruction's reach without an error."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from reachls.sources.asm import parse_asm
from toolchain import apply_edits, link_noinhibit, lld_overflows, need, relocations_of, run


@dataclass(frozen=True)
class FixCase:
    arch: str
    line: str  # the out-of-reach statement, referencing `far`
    title: str  # the start of the fix's title
    before: str  # the relocation of the original statement
    after: str  # the relocation that references `far` once fixed
    reach: int  # the original reach: `far` is put twice as far


CASES = [
    FixCase("riscv64", "beq a0, a1, far  # retry", "Invert to bne", "R_RISCV_BRANCH", "R_RISCV_JAL", 4 << 10),
    FixCase("riscv64", "bnez t0, far", "Invert to beqz", "R_RISCV_BRANCH", "R_RISCV_JAL", 4 << 10),
    FixCase("riscv64", "jal far", "Use call", "R_RISCV_JAL", "R_RISCV_CALL", 1 << 20),
    FixCase("riscv64", "j far", "Use tail", "R_RISCV_JAL", "R_RISCV_CALL", 1 << 20),
    # Both assemblers widen a c.beqz to another section themselves (RVC_BRANCH comes from branches
    # within a section assembled for relaxation), so the original is not assembled here.
    FixCase("riscv64", "c.beqz a0, far", "Use beqz", "", "R_RISCV_BRANCH", 256),
    FixCase("ppc64", "beq 0, far  # retry", "Invert to bne", "R_PPC64_REL14", "R_PPC64_REL24", 32 << 10),
    FixCase("ppc64", "bdnz far", "Invert to bdz", "R_PPC64_REL14", "R_PPC64_REL24", 32 << 10),
    FixCase("ppc64", "bc 12, 2, far", "Invert to bc", "R_PPC64_REL14", "R_PPC64_REL24", 32 << 10),
    FixCase("arm", "b.n far  @ retry", "Use b.w", "R_ARM_THM_JUMP11", "R_ARM_THM_JUMP24", 2 << 10),
    FixCase("arm", "bne.n far", "Use bne.w", "R_ARM_THM_JUMP8", "R_ARM_THM_JUMP19", 256),
    FixCase("arm", "adr r0, far", "Use adr_l", "", "R_ARM_THM_MOVW_ABS_NC", 4 << 10),
]
HEADER = {"riscv64": ".option norelax\n.option rvc\n", "ppc64": "", "arm": ".syntax unified\n.thumb\n"}
#: Our adr_l, with the kernel's interface (arch/arm/include/asm/assembler.h has its own).
ARM_MACROS = ".macro adr_l, dst, sym\n  movw \\dst, #:lower16:\\sym\n  movt \\dst, #:upper16:\\sym\n.endm\n"
ASSEMBLE = {"riscv64": ("clang", "--target=riscv64-linux-gnu", "-mno-relax", "-c"),
            "ppc64": ("clang", "--target=powerpc64le-linux-gnu", "-c"),
            "arm": ("arm-linux-gnueabihf-as",)}  # clang widens b.n to another section by itself; gas does not


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.arch}:{c.line.split()[0]}")
def test_fix_assembles_and_links_beyond_the_old_reach(case: FixCase, tmp_path: Path) -> None:
    need(ASSEMBLE[case.arch][0], "ld.lld", "llvm-readelf")
    arch = importlib.import_module(f"reachls.arch.{case.arch}").ARCH
    macros = ARM_MACROS if case.arch == "arm" else ""
    text = (f"{HEADER[case.arch]}{macros}.text\n.globl f\nf:\n\t{case.line}\n\tnop\n"
            f'.section .far,"ax"\n.globl far\n' + (".type far, %function\n.thumb_func\n" if case.arch == "arm" else "")
            + "far:\n\tnop\n")
    asm = parse_asm(text, arch.asm_dialect, known_macros={"adr_l"} if macros else ())
    line_no = text.split("\n").index(f"\t{case.line}") + 1
    statement = asm.instruction_on(line_no)
    source = tmp_path / "fix.S"
    if case.before:  # the case is what the assembler makes of the original statement
        source.write_text(text)
        run(*ASSEMBLE[case.arch], source, "-o", tmp_path / "original.o")
        assert (case.before, "far") in relocations_of(tmp_path / "original.o")
    fixes = arch.asm_fixes(source, statement, text.split("\n")[line_no - 1], asm, asm.macros)
    assert fixes and fixes[0].preferred and fixes[0].title.startswith(case.title), fixes
    fixed = apply_edits(text, fixes[0].edits)
    if "#" in case.line or "@" in case.line:
        assert case.line[case.line.index("  ") + 2:] in fixed, "the comment stays"
    source.write_text(fixed)
    obj = tmp_path / "fix.o"
    run(*ASSEMBLE[case.arch], source, "-o", obj)
    relocations = relocations_of(obj)
    assert (case.after, "far") in relocations or (case.after + "_PLT", "far") in relocations, relocations
    assert not any(symbol == "far" and kind == case.before for kind, symbol in relocations)
    script = tmp_path / "fix.lds"
    script.write_text(f"SECTIONS {{ .text 0x100000 : {{ *(.text) }} .far {0x100000 + 2 * case.reach:#x} : "
                      "{ *(.far) } }\n")
    log = link_noinhibit(script, [obj], tmp_path / "fix.elf")
    assert lld_overflows(log) == [], log
