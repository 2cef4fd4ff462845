"""The interface each architecture module fills (`Architecture`, as lld's `TargetInfo`), the types
its linked-image decoder returns, and the bit and distance helpers they share.

Everything that differs between architectures lives in that architecture's module and reaches the
engine only through these types; nothing here names an architecture.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..asmfile import Dialect, fold_mnemonic
from ..elf import U64, RelocationInfo
from ..record import RelocKind

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
    the part of an addend, as the assembler writes it in the instruction or in a RELA entry, that
    only says where the PC counts from (-8 in A32, -4 in Thumb, -4 for a MIPS branch: its delay
    slot): distances keep it, as the linker does, but the target a record names does not.
    """

    name: str
    elf_machine: str
    kinds: dict[int, RelocKind]
    instruction: Callable[[RelocKind, int], str | None]
    fix_hint: Callable[[RelocKind, str | None], str | None]
    asm_fixes: Callable[..., list] = field(default=lambda *args: [])
    note: str | None = None
    #: The comment and separator characters of its GNU as.
    asm_dialect: Dialect = Dialect("#", ";")
    #: ld.lld's defaults for the target: the common page size (ADRP pages), the maximum page size
    #: (`MAXPAGESIZE`, segment alignment) and the image base of a script that sets none (the model).
    page_size: int = 4096
    max_page_size: int = 0x10000
    image_base: int = 0x200000
    #: The data relocation types of its debug sections: type -> (byte width, "set" | "add" | "sub").
    #: "set" writes S+A, "add"/"sub" add S+A to (subtract it from) what is there; width 0 writes nothing.
    dwarf_relocations: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: Splits r_info words (as read, in the file's byte order) into symbol indices, relocation types and
    #: a mask of relocations composed with others (counted unchecked); None: the standard ELF split.
    relocation_info: RelocationInfo | None = None
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


def place_base(kind: RelocKind, place: np.ndarray, page_size: int) -> np.ndarray:
    """What the linker subtracts from S+A for `kind` at uint64 places P (see `Formula`)."""
    if kind.formula.is_page:
        return place & np.uint64(~(page_size - 1) & U64)
    if kind.place_offset == 0 and kind.place_alignment == 1:
        return place
    return (place + np.uint64(kind.place_offset & U64)) & np.uint64(~(kind.place_alignment - 1) & U64)


def checked_distance(kind: RelocKind, target: np.ndarray, place: np.ndarray, page_size: int) -> np.ndarray:
    """The value the linker range-checks, from uint64 S+A (`target`) and P (`place`), as int64."""
    if kind.formula.is_page:
        target = target & np.uint64(~(page_size - 1) & U64)
    return (target - place_base(kind, place, page_size)).view(np.int64)


@dataclass(frozen=True)
class Decoded:
    """One instruction class found in a section: the relocation kind it corresponds to, where, how far.

    `index` holds word indices into the section; `displacement` is what the instruction encodes,
    in bytes: target − P for `prel` kinds, Page(target) − Page(P) for `page` kinds.
    `relaxed` marks instructions a linker relaxation made out of a longer sequence (ld.lld's
    `nop; adr` for an in-range `adrp; add`): out of reach, the linker keeps the long form, so
    they are never at risk.
    """

    kind: int
    index: np.ndarray
    displacement: np.ndarray
    relaxed: np.ndarray | None = None
    #: Absolute target addresses (uint64), where they are not P (or its page) + displacement: Arm,
    #: whose checked distance keeps the PC bias and a Thumb function's bit 0 that the target has not.
    target: np.ndarray | None = None


@dataclass(frozen=True)
class SectionContext:
    """What a decoder of 16-bit units may need beyond the units themselves (`Decoder.context`).

    `mapping` holds per unit the letter of the mapping symbol in force (`ord('t')` for `$t`, …;
    0 before the first one); `anchors` the sorted unit indices where a symbol of the section sits
    (an instruction or data starts there); `odd_functions` the addresses, bit 0 cleared, of the
    function symbols whose value has bit 0 set (Arm Thumb functions).
    """

    address: int
    mapping: np.ndarray
    anchors: np.ndarray
    odd_functions: np.ndarray


def instruction_starts(long: np.ndarray, anchors: np.ndarray | None = None) -> np.ndarray:
    """Which units of a stream of one- and two-unit instructions start an instruction, vectorised.

    `long[i]` says whether unit i, if an instruction starts there, starts a two-unit one (RISC-V:
    low bits 0b11; Thumb-2: top bits 0b11101/0b11110/0b11111). Walking the stream is a serial
    dependency, but it collapses: a unit after a short unit always starts an instruction (either
    the short unit was an instruction, or it was the second half of a long one), and so does unit
    0 and every anchor (a symbol or mapping symbol). From such a start, through a run of long
    units, starts alternate. So unit i starts an instruction iff the distance to the last "sure
    start" at or before it is even: one `maximum.accumulate` over the sure starts, no loop.
    """
    n = len(long)
    sure = np.ones(n, dtype=bool)
    sure[1:] = ~long[:-1]
    if anchors is not None and len(anchors):
        sure[anchors[(anchors >= 0) & (anchors < n)]] = True
    position = np.arange(n, dtype=np.int64)
    last = np.maximum.accumulate(np.where(sure, position, 0))
    return ((position - last) & 1) == 0


@dataclass(frozen=True)
class Decoder:
    """What linked-image mode needs from an architecture.

    `decode(words)` takes the words of one executable section (uint32, host order) and returns
    a `Decoded` per instruction class; with `context`, `decode(units, SectionContext)`, the units
    being `word_size` bytes each (16-bit units for Thumb-2 and RVC streams), indices in units. `veneer_target(read, address, little)` follows the code
    of a linker veneer at `address` to its final target (`read(address, n)` gives image bytes,
    or None outside the image). `thunk_symbols` match the names linkers give veneers (group 1 is
    the final target's name), anchored to one whole string of the string table.
    `stub_sections` matches output sections that hold only veneers. Mapping symbols
    `<data_mapping>` / `<data_mapping>.N` start data, any other `$<letter>[.N]` starts code.
    """

    decode: Callable[[np.ndarray], list[Decoded]]
    veneer_target: Callable[[Callable[[int, int], bytes | None], int, bool], int | None]
    thunk_symbols: tuple[re.Pattern[bytes], ...] = ()
    stub_sections: re.Pattern[str] | None = None
    word_size: int = 4
    instruction_byteorder: str | None = "<"  # None: the ELF's byte order
    data_mapping: bytes | None = b"$d"
    notes: tuple[str, ...] = field(default=())
    context: bool = False
    #: Symbol values of code carry the instruction set in bit 0 (32-bit Arm: Thumb).
    code_bit0: bool = False
