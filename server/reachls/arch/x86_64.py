"""x86-64: every PC-relative branch and load reaches ±2 GiB, which no kernel image comes near."""

from ..asmfile import Dialect
from .base import Architecture

ARCH = Architecture(
    name="x86_64",
    max_page_size=0x1000,
    image_base=0x200000,
    dwarf_relocations={0: (0, "set"), 1: (8, "set"), 10: (4, "set"), 11: (4, "set")},  # NONE, 64, 32, 32S
    gnu_ld="x86_64-linux-gnu-ld",
    asm_dialect=Dialect("#", ";"),
    elf_machine="EM_X86_64",
    kinds={},
    instruction=lambda kind, word: None,
    fix_hint=lambda kind, insn: None,
    note="x86-64 has no short-reach branches or PC-relative loads worth a warning: "
         "rel32 reaches ±2 GiB, more than any kernel image spans",
)
