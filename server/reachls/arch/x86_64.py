"""x86-64: every PC-relative branch and load reaches ±2 GiB, which no kernel image comes near."""

from . import Architecture

ARCH = Architecture(
    name="x86_64",
    gnu_ld="x86_64-linux-gnu-ld",
    asm_dialect="x86",
    elf_machine="EM_X86_64",
    kinds={},
    instruction=lambda kind, word: None,
    fix_hint=lambda kind, insn: None,
    note="x86-64 has no short-reach branches or PC-relative loads worth a warning: "
         "rel32 reaches ±2 GiB, more than any kernel image spans",
)
