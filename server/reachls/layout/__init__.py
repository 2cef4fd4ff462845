"""Layout of a relocatable input: where the final link puts each of its input sections.

Two engines fill the same `Placement`: `relink` (the build's own linker, exact) and `model`
(a linker-script reader and placement rules, no toolchain). Reach analysis only ever sees a
`Placement`, so the engines are interchangeable and can be measured against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import record

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
    """

    engine: str
    section_address: dict[int, int]
    output_section: dict[int, str]
    output_start: dict[str, int]
    notes: tuple[str, ...] = field(default=())
    linker: str | None = None

    @property
    def placed_by(self) -> str:
        return record.placed_by(self.engine, self.linker)
