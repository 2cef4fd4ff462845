"""Merged sections in a relink: where each string or constant of an SHF_MERGE input landed.

ld.lld combines all allocated SHF_MERGE inputs of one kind (flags, entry size, string
alignment) in an output section into one synthetic section, deduplicating their pieces (strings
or fixed-size constants) and reordering them; its map prints only that section, as
`<internal>:(<output section>)`, one per kind in the order the kinds first occur, and no address
per input. Which output section each input went to is read from a second map of the same link
with merging off (`-O0`), where merge inputs are listed like any other; where each piece landed
is read from the relinked image itself: every distinct piece is stored once, so a piece's bytes
(a NUL-terminated string starting right after a NUL, or an aligned constant) find its address.
Only what cannot be found that way (a string that tail merging, ld.lld `-O2`, stored as the end
of a longer one; wide strings) keeps the start of the merged section, and a note says how far off
that can be.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..elf import SHF_ALLOC, SHF_MERGE, SHF_STRINGS, ElfInput
from . import Placement


def merge_inputs(obj: ElfInput) -> np.ndarray:
    """The allocated merge inputs (`InputSection.merge_kind`), from the header table at once."""
    headers = obj.section_headers
    return np.flatnonzero(((headers["flags"] & SHF_MERGE) != 0) & ((headers["flags"] & SHF_ALLOC) != 0)
                          & (headers["entsize"] != 0) & (headers["size"] != 0))


def unplaced_merge_sections(obj: ElfInput, placement: Placement) -> list[int]:
    """Allocated merge inputs the map gave no address."""
    return [index for index in merge_inputs(obj).tolist() if index not in placement.section_address]


def _pieces(data: np.ndarray, strings: bool, stride: int, starts_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each piece of a merge section's bytes: NUL-terminated strings, or constants
    of `stride` bytes. `starts_only`: every offset a string could start at (after any NUL, since
    alignment padding is NULs too), as in a merged section."""
    if not strings:
        starts = np.arange(0, len(data) - len(data) % stride, stride)
        return starts, starts + stride
    nul = np.flatnonzero(data == 0)
    starts = np.r_[0, nul + 1][:len(nul)] if starts_only else np.r_[0, nul[:-1] + 1]
    return starts, nul[np.searchsorted(nul, starts)] + 1


def _piece_addresses(obj: ElfInput, index: int, merged: bytes, start: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(piece starts in input section `index`, final address of each, how many were not found
    whole in the merged bytes and got the merged section's start)."""
    section = obj.sections[index]
    strings = bool(section.flags & SHF_STRINGS)
    raw = bytes(obj.section_data(index))
    starts, ends = _pieces(np.frombuffer(raw, dtype=np.uint8), strings, section.entsize, starts_only=False)
    # constants sit at multiples of the merged section's alignment: at least the input's, at most entsize
    stride = min(section.entsize, section.align)
    at: dict[bytes, int] = {}
    for lo, hi in zip(*(a.tolist() for a in _pieces(np.frombuffer(merged, dtype=np.uint8), strings,
                                                     stride if not strings else 1, starts_only=True))):
        at.setdefault(merged[lo:hi] if strings else merged[lo:lo + section.entsize], lo)
    offsets = np.array([at.get(raw[lo:hi], -1) for lo, hi in zip(starts.tolist(), ends.tolist())], dtype=np.int64)
    missing = offsets < 0  # measured from the merged section's start plus the offset in the input
    finals = np.uint64(start) + np.where(missing, starts, offsets).astype(np.uint64)  # kernel addresses pass int64
    return starts.astype(np.int64), finals, int(np.count_nonzero(missing))


def _image_bytes(image: ElfInput, address: int, size: int) -> bytes | None:
    """`size` bytes of the linked image at `address`, if one section holds them all."""
    for section in image.sections:
        if section.is_alloc and section.addr <= address and address + size <= section.addr + section.size:
            data = image.section_data(section.index)
            return bytes(data[address - section.addr:address - section.addr + size]) if data else None
    return None


def place_merge_sections(obj: ElfInput, placement: Placement, synthetic: dict[str, list[tuple[int, int]]],
                         probe: Placement, image: ElfInput) -> Placement:
    """`placement` with the merge inputs added, each piece where the relinked `image` holds it.

    `synthetic`: (address, size) of the merged sections of each output section, in map order;
    `probe`: the placement of the same link with merging off."""
    by_output: dict[str, list[int]] = {}
    for index in sorted(unplaced_merge_sections(obj, placement), key=lambda i: probe.section_address.get(i, 0)):
        if (output := probe.output_section.get(index)) is not None:
            by_output.setdefault(output, []).append(index)
    section_address, output_section = dict(placement.section_address), dict(placement.output_section)
    pieces = dict(placement.pieces)
    notes = []
    for output, members in by_output.items():
        kinds = list(dict.fromkeys(obj.sections[i].merge_kind for i in members))
        if len(kinds) != len(synthetic.get(output, ())):
            names = ", ".join(sorted({obj.sections[i].name for i in members}))
            notes.append(f"merged {names} (SHF_MERGE) into {output}, but the linker's map shows "
                         f"{len(synthetic.get(output, ()))} merged sections there for {len(kinds)} kinds: "
                         "references into them are not placed (counted as unresolved)")
            continue
        for kind, (start, size) in zip(kinds, synthetic[output]):
            held = [i for i in members if obj.sections[i].merge_kind == kind]
            merged = _image_bytes(image, start, size)
            missed, wide = 0, kind[0] & SHF_STRINGS and kind[1] != 1
            for index in held:
                section_address[index], output_section[index] = start, output
                if merged is not None and not wide:
                    starts, finals, not_found = _piece_addresses(obj, index, merged, start)
                    pieces[index] = (starts, finals)
                    missed += not_found
            if missed or wide or merged is None:
                largest = max([size, *(obj.sections[i].size for i in held)])
                names = ", ".join(sorted({obj.sections[i].name for i in held}))
                which = "its wide strings are" if wide else "its bytes are" if merged is None else \
                    f"{missed} of its pieces are"
                notes.append(f"merged {names} (SHF_MERGE) into {output} at {start:#x} ({size:#x} bytes): {which} "
                             "not found whole in the relinked image (a tail-merged string lies inside a longer "
                             f"one), so references into them are measured from {start:#x} plus their offset in "
                             f"the input section and may be off by up to {largest:#x} bytes")
    return dataclasses.replace(placement, section_address=section_address, output_section=output_section,
                               notes=placement.notes + tuple(notes), pieces=pieces)
