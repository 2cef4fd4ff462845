"""Layout of a relocatable input: where the final link puts each of its input sections.

Two engines fill the same `Placement`: `relink` (the build's own linker, exact) and `model`
(a linker-script reader and placement rules, no toolchain). Reach analysis only ever sees a
`Placement`, so the engines are interchangeable and can be measured against each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .. import record
from ..elf import SHN_UNDEF, ElfInput

#: The two linkers whose layouts the engines give, by flavour (`--linker lld|gnu`).
LINKER_NAMES = {"lld": "ld.lld", "gnu": "GNU ld"}


@dataclass(frozen=True)
class Placement:
    """Final addresses of the input sections of one relocatable object.

    `section_address` maps an input section's index (in the relocatable ELF) to its final
    address; sections the link discards or leaves unallocated are absent. `output_section`
    names the output section each placed input section went into, and `output_start` gives
    each output section's start address, so a symbol's offset inside its output section can
    be reported ("where will my function land?"). `linker` names the linker whose layout this
    is ("ld.lld" or "GNU ld": the one relinked with, or the one whose rules the model follows);
    None for a linked image, whose layout is its own.

    `pieces` is for an input section that the final link does not place whole, as the offsets in
    it where each piece starts (ascending) and each piece's final address; `addresses` maps
    offsets through them. Two cases: a merged (SHF_MERGE) section, whose strings or constants
    the linker deduplicates one by one (the relink reads them back), and a section that `ld -r`
    merged from the objects' sections of one name while the real link reads the objects (a GCC
    kernel links vmlinux.a).

    `symbols` holds the final addresses of the symbols the link defines outside the object
    (linker-script assignments such as `_text = .` and arm64's `__kvm_nvhe_X = X;` aliases,
    PROVIDEs the object references, `--defsym`), by name: a reference to a symbol undefined in
    the object is measured to it, as the linker resolves it. `got_address` is where the linker's
    own .got landed (kernels put it inside `.text`), which GOT-relative types are measured to;
    None when the link made none.
    """

    engine: str
    section_address: dict[int, int]
    output_section: dict[int, str]
    output_start: dict[str, int]
    notes: tuple[str, ...] = field(default=())
    linker: str | None = None
    pieces: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    symbols: dict[str, int] = field(default_factory=dict)
    got_address: int | None = None

    def addresses(self, section: int, offsets: np.ndarray) -> np.ndarray:
        """Final addresses (uint64) of `offsets` (uint64) in the placed input section `section`."""
        if section not in self.pieces:
            return offsets + np.uint64(self.section_address[section])
        starts, placed = self.pieces[section]
        piece = np.maximum(np.searchsorted(starts, offsets, side="right") - 1, 0)
        return placed[piece] + (offsets - starts[piece])

    def addresses_in(self, sections: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """`addresses` of many (placed section, offset) pairs at once; loops only over the few
        sections placed in pieces."""
        addresses = offsets + self._dense_addresses[sections]
        for section, rows in self.rows_in_pieces(sections):
            addresses[rows] = self.addresses(section, offsets[rows])
        return addresses

    def rows_in_pieces(self, sections: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(section, the rows of `sections` naming it) for each section placed in pieces: found
        with one array test over the rows, never a set of every section they name."""
        if not self.pieces:
            return
        in_pieces = np.flatnonzero(np.isin(sections, np.fromiter(self.pieces, dtype=np.int64)))
        for section in np.unique(sections[in_pieces]).tolist():
            yield section, in_pieces[sections[in_pieces] == section]

    @cached_property
    def section_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """`section_address` as arrays: (input section indices, final addresses as uint64)."""
        count = len(self.section_address)
        return (np.fromiter(self.section_address.keys(), dtype=np.int64, count=count),
                np.fromiter(self.section_address.values(), dtype=np.uint64, count=count))

    @cached_property
    def _dense_addresses(self) -> np.ndarray:
        """Final address by input section index (0 where not placed)."""
        index, address = self.section_arrays
        dense = np.zeros(int(index.max()) + 1 if len(index) else 0, dtype=np.uint64)
        dense[index] = address
        return dense

    @property
    def placed_by(self) -> str:
        return record.placed_by(self.engine, self.linker)


def undefined_symbols(obj: ElfInput) -> dict[int, str]:
    """Index → name of each named symbol `obj` references but does not define: what the rest of
    the link (script, `--defsym`, other inputs) may define."""
    rows = np.flatnonzero((obj.symbol_sections == SHN_UNDEF) & (obj.symbols["name"] != 0))
    return dict(zip(rows.tolist(), obj.symbol_names(rows)))
