"""One module per architecture, each filling `Architecture`: reach table, instruction names, fix hints.

The way ld.lld keeps `Arch/AArch64.cpp`: everything that differs between architectures lives
in that architecture's module; the analysis stages are generic over this interface.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..elf import U64
from ..errors import ReachlsError
from ..layout.linkopts import build_flavour
from ..record import RelocKind
from ..sources.asm import fold_mnemonic

if TYPE_CHECKING:
    from ..decode import Decoder


@dataclass(frozen=True)
class Architecture:
    """What the generic stages need to know about one ELF machine.

    `kinds` maps relocation type numbers to their reach; `instruction` names the instruction
    a relocation patches (from its encoded word) for messages like `cbz → hyp_panic`;
    `fix_hint` says in one line what kernel developers do about an out-of-range reference.
    `asm_fixes` turns an out-of-reach assembly statement into the rewrites kernel developers
    use (see `fixes.py` for the edit types). `note` is said plainly when the architecture has
    nothing worth reporting.

    `implicit_addend(kind, words)` reads the addends of SHT_REL relocations (32-bit Arm) out of
    the instructions they patch, for a whole array at once: `words` holds the four bytes at each
    site read in the file's byte order as uint32 (a Thumb-2 instruction's first halfword is the
    low 16 bits of a little-endian read); None for RELA-only architectures. `pc_bias(kind)` is
    the part of such an addend that only compensates for the PC reading ahead (-8 in A32, -4 in
    Thumb): distances keep it, as the linker does, but the target a record names does not.
    """

    name: str
    elf_machine: str
    kinds: dict[int, RelocKind]
    instruction: Callable[[RelocKind, int], str | None]
    fix_hint: Callable[[RelocKind, str | None], str | None]
    asm_fixes: Callable[..., list] = field(default=lambda *args: [])
    note: str | None = None
    asm_dialect: str = "aarch64"  # comment and separator characters of its GNU as (sources.asm.DIALECTS)
    page_size: int = 4096
    aliases: tuple[str, ...] = field(default=())
    implicit_addend: Callable[[RelocKind, np.ndarray], np.ndarray] | None = None
    pc_bias: Callable[[RelocKind], int] | None = None
    #: The word bits `instruction` reads: words equal in them are named once (linked-image mode).
    instruction_bits: int = 0xFFFFFFFF
    #: Linked-image mode (decode.py): decodes short-reach instructions and linker veneers; None: unsupported.
    decoder: Decoder | None = None
    #: Where GNU ld differs from ld.lld (whose behaviour `kinds` describe): types it does or does not
    #: bridge with a stub, and ranges it checks differently.
    gnu_ld_thunks: dict[str, bool] = field(default_factory=dict)
    gnu_ld_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: The GNU ld binary of this architecture, to relink with when the build names none.
    gnu_ld: str | None = None
    #: Per linker ("ld.lld", "GNU ld"), the types whose reference to a weak symbol nothing defines
    #: the linker resolves to a known address near the place, as that address minus the place
    #: (a branch to the next instruction: 4). Types not listed stay unchecked.
    undefined_weak_targets: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Decoded mnemonic (folded: lower case, no dots) → the other spellings a source statement that
    #: assembles into it may use: condition-code synonyms, pseudo-instructions, compressed forms.
    mnemonic_spellings: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def source_spellings(self, decoded: str) -> set[str]:
        """The folded mnemonics of the statements that can assemble into the `decoded` instruction."""
        folded = fold_mnemonic(decoded)
        return {folded, *self.mnemonic_spellings.get(folded, ())}

    def for_linker(self, linker: str) -> "Architecture":
        """This architecture as the build's linker sees it: `veneer` versus `overflow` depends on it."""
        if linker != "gnu" or not (self.gnu_ld_thunks or self.gnu_ld_ranges):
            return self
        kinds = {}
        for number, kind in self.kinds.items():
            lo, hi = self.gnu_ld_ranges.get(kind.name, (kind.lo, kind.hi))
            kinds[number] = dataclasses.replace(kind, lo=lo, hi=hi, thunk=self.gnu_ld_thunks.get(kind.name, kind.thunk))
        return dataclasses.replace(self, kinds=kinds)


def sign_extend(value: int, bits: int) -> int:
    """An instruction field of `bits` bits read as two's complement (veneer followers)."""
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def checked_distance(kind: RelocKind, target: np.ndarray, place: np.ndarray, page_size: int) -> np.ndarray:
    """The value the linker range-checks, from uint64 S+A (`target`) and P (`place`), as int64.

    `prel_pa` is S+A-Pa, Pa being P rounded down to a multiple of 4 (Arm's PC-relative loads and
    ADR, which read the PC word-aligned)."""
    if kind.formula == "prel_pa":
        return (target - (place & np.uint64(0xFFFF_FFFF_FFFF_FFFC))).view(np.int64)
    if kind.formula in ("page", "got_page"):
        mask = np.uint64(~(page_size - 1) & U64)
        return ((target & mask) - (place & mask)).view(np.int64)
    return (target - place).view(np.int64)


LINKERS = ("auto", "lld", "gnu")


def linker_flavour(requested: str, build_linker: str | None) -> str:
    """`lld` or `gnu`: as asked, else from the build's link command (`ld.lld` vs `*-ld`/`ld.bfd`)."""
    return requested if requested != "auto" else build_flavour(build_linker)


def _architectures() -> tuple[Architecture, ...]:
    from . import aarch64, arm, loongarch64, ppc64, riscv64, x86_64

    return aarch64.ARCH, x86_64.ARCH, arm.ARCH, riscv64.ARCH, ppc64.ARCH, loongarch64.ARCH


def for_relocation_type(name: str) -> Architecture | None:
    """The architecture whose reach table has the relocation type `name` (`R_AARCH64_CONDBR19`):
    all a linker log without its objects tells about the machine."""
    return next((arch for arch in _architectures() if any(k.name == name for k in arch.kinds.values())), None)


def for_machine(elf_machine: str, where: str) -> Architecture:
    """The architecture module for an ELF `e_machine`, or a clear error naming what we support."""
    known = {arch.elf_machine: arch for arch in _architectures()}
    if elf_machine not in known:
        supported = ", ".join(sorted(a.name for a in known.values()))
        raise ReachlsError(f"unsupported architecture {elf_machine} (supported: {supported})", where)
    return known[elf_machine]
