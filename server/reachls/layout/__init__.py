"""Layout of a relocatable input: where the final link puts each of its input sections.

Two engines fill the same `Placement`: `relink` (the build's own linker, exact) and `model`
(a linker-script reader and placement rules, no toolchain). Reach analysis only ever sees a
`Placement`, so the engines are interchangeable and can be measured against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Placement:
    """Final addresses of the input sections of one relocatable object.

    `section_address` maps an input section's index (in the relocatable ELF) to its final
    address; sections the link discards or leaves unallocated are absent. `output_section`
    names the output section each placed input section went into, and `output_start` gives
    each output section's start address, so a symbol's offset inside its output section can
    be reported ("where will my function land?"). `pieces`: merged (SHF_MERGE) input sections
    whose strings or constants the linker moved one by one (the relink reads them back): the
    sorted start offset of each piece in the input section and the piece's final address.
    """

    engine: str
    section_address: dict[int, int]
    output_section: dict[int, str]
    output_start: dict[str, int]
    notes: tuple[str, ...] = field(default=())
    pieces: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def piece_addresses(self, section: int, offsets: np.ndarray) -> np.ndarray:
        """Final addresses (uint64) of `offsets` into input section `section`, piece by piece."""
        starts, finals = self.pieces[section]
        piece = np.maximum(np.searchsorted(starts, offsets, side="right") - 1, 0)
        return finals[piece] + (offsets - starts[piece]).astype(np.uint64)
