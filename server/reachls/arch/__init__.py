"""The registry of architectures: one module per architecture, each filling `base.Architecture`.

The way ld.lld keeps `Arch/AArch64.cpp`: everything that differs between architectures lives in
that architecture's module; the stages above are generic over the interface in `base.py`. Adding
an architecture is its module and one line here.
"""

from __future__ import annotations

from ..elf import ElfInput
from ..errors import ReachlsError
from . import aarch64, arm, loongarch64, mips, ppc64, riscv64, x86_64
from .base import Architecture

ARCHITECTURES: tuple[Architecture, ...] = (
    aarch64.ARCH, x86_64.ARCH, arm.ARCH, riscv64.ARCH, ppc64.ARCH, loongarch64.ARCH, mips.ARCH,
)


def for_relocation_type(name: str) -> Architecture | None:
    """The architecture whose reach table has the relocation type `name` (`R_AARCH64_CONDBR19`):
    all a linker log without its objects tells about the machine."""
    return next((arch for arch in ARCHITECTURES if any(k.name == name for k in arch.kinds.values())), None)


def for_machine(elf_machine: str, where: str) -> Architecture:
    """The architecture module for an ELF `e_machine`, or a clear error naming what we support."""
    known = {arch.elf_machine: arch for arch in ARCHITECTURES}
    if elf_machine not in known:
        supported = ", ".join(sorted(a.name for a in known.values()))
        raise ReachlsError(f"unsupported architecture {elf_machine} (supported: {supported})", where)
    return known[elf_machine]


def architecture_of(obj: ElfInput) -> Architecture:
    """The architecture of `obj` (a clear error for one not supported); `obj` then reads its relocation
    tables the way that architecture packs r_info."""
    arch = for_machine(obj.machine, str(obj.path))
    obj.relocation_info = arch.relocation_info
    return arch
