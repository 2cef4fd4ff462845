"""Reach analysis: relocations + placement → reach records, computed over whole tables at once.

Distances and statuses are computed with numpy over every short-reach relocation of every
allocated section; `ReachRecord` objects are made only for what will be reported (everything
not `ok`, unless all records are asked for), so a `vmlinux.o` with millions of relocations
costs array operations, not millions of Python objects.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .arch import Architecture, checked_distance
from .elf import SHN_ABS, SHN_LORESERVE, SHN_UNDEF, STT_SECTION, U64, ElfInput
from .layout import Placement
from .record import DEFAULT_THRESHOLD, Provenance, ReachRecord, RelocKind, Site, Status, Target
from .sourcemap import SourceMap

#: A reference is `fragile` when its target sits in another input section (link order and
#: configuration can move it), it has no veneer to fall back on, its reach is under
#: FRAGILE_REACH, and it already uses FRAGILE_USAGE of it: a branch between two sections of
#: one assembly file at 1 % of its reach is not worth a word.
FRAGILE_REACH = 128 << 20
FRAGILE_USAGE = 0.25
_STATUS_CODES = list(Status)


@dataclass(frozen=True)
class Analysis:
    """The reach records of one artefact, worst first, and counts over all references examined."""

    records: list[ReachRecord]
    counts: dict[Status, int]
    unresolved: int
    placement: Placement
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class SymbolIndex:
    """Nearest named symbol at or before a (section, offset): names sites and section-relative targets."""

    def __init__(self, obj: ElfInput, linked: bool) -> None:
        syms = obj.symbols
        strtab = np.frombuffer(obj.symbol_string_table or b"\0", dtype=np.uint8)
        first_char = strtab[np.minimum(syms["name"].astype(np.int64), len(strtab) - 1)]
        kind = syms["info"] & 0xF
        usable = ((syms["shndx"] != SHN_UNDEF) & (syms["shndx"] < SHN_LORESERVE) & (kind <= 2)
                  & (syms["name"] != 0) & (first_char != ord("$")))
        self._obj = obj
        self._index = np.flatnonzero(usable)
        shndx = syms["shndx"][self._index].astype(np.int64)
        value = syms["value"][self._index].astype(np.uint64)
        if linked:
            value = value - np.array([s.addr for s in obj.sections], dtype=np.uint64)[shndx]
        value = value.view(np.int64)
        order = np.lexsort((-(kind[self._index] == 2).astype(np.int64), value, shndx))
        self._index, self._shndx, self._value = self._index[order], shndx[order], value[order]

    def enclosing(self, section: int, offset: int) -> tuple[str | None, int]:
        """(name, offset from it) of the last symbol at or before `offset` in `section`."""
        lo, hi = np.searchsorted(self._shndx, [section, section + 1])
        pos = int(np.searchsorted(self._value[lo:hi], offset, side="right")) - 1
        if pos < 0:
            return None, offset
        pos += int(lo)
        return self._obj.symbol_name(int(self._index[pos])), offset - int(self._value[pos])


def analyse(obj: ElfInput, arch: Architecture, placement: Placement, provenance: Provenance,
            threshold: float = DEFAULT_THRESHOLD, include_ok: bool = False) -> Analysis:
    """Every short-reach relocation of every allocated section, with exact distances and statuses."""
    linked = not obj.is_relocatable
    # Addresses are unsigned 64-bit (kernel text sits at 0xffff8000…): all address arithmetic is
    # done in uint64, where it wraps exactly like the linker's, and distances are read as int64.
    base = np.zeros(len(obj.sections), dtype=np.uint64)
    is_placed = np.zeros(len(obj.sections), dtype=bool)
    for index, address in placement.section_address.items():
        base[index] = 0 if linked else address
        is_placed[index] = True
    syms = obj.symbols
    sym_shndx = syms["shndx"].astype(np.int64)
    sym_value = syms["value"].astype(np.uint64)
    kind_numbers = np.array(sorted(arch.kinds), dtype=np.int64)
    got_start = placement.output_start.get(".got")
    index = SymbolIndex(obj, linked)
    counts: Counter[Status] = Counter()
    records: list[ReachRecord] = []
    unresolved = 0
    for site_section, rel_section in sorted(obj.relocation_sections().items()):
        if site_section >= len(obj.sections) or not is_placed[site_section] or not len(kind_numbers):
            continue
        relocs = obj.relocations(rel_section)
        chosen = np.flatnonzero(np.isin(relocs.type, kind_numbers))
        if not len(chosen):
            continue
        sym = relocs.sym[chosen]
        target_shndx = sym_shndx[sym]
        absolute = target_shndx == SHN_ABS
        placed = absolute | ((target_shndx != SHN_UNDEF) & (target_shndx < len(base))
                             & is_placed[np.minimum(target_shndx, len(base) - 1)])
        unresolved += int(np.count_nonzero(~placed))
        chosen, sym, target_shndx, absolute = chosen[placed], sym[placed], target_shndx[placed], absolute[placed]
        types = relocs.type[chosen]
        addend = relocs.addend[chosen]
        implicit = not relocs.explicit_addend and arch.implicit_addend is not None and not linked
        if implicit:
            addend = implicit_addends(obj, arch, site_section, relocs.offset[chosen], types)
        target = sym_value[sym] + addend.astype(np.uint64) + np.where(absolute, np.uint64(0), base[np.where(absolute, 0, target_shndx)])
        place = relocs.offset[chosen].astype(np.uint64) + base[site_section]
        for number in np.unique(types):
            kind = arch.kinds[int(number)]
            rows = np.flatnonzero(types == number)
            kind_target = target[rows]
            if kind.formula.startswith("got") and got_start is not None:
                kind_target = np.full_like(kind_target, np.uint64(got_start))
            distance = checked_distance(kind, kind_target, place[rows], arch.page_size)
            status = statuses(kind, distance, target_shndx[rows] != site_section, threshold)
            counts.update({_STATUS_CODES[code]: int(n) for code, n in zip(*np.unique(status, return_counts=True))})
            keep = np.ones(len(rows), dtype=bool) if include_ok else status != Status.OK.rank
            for j in np.flatnonzero(keep).tolist():
                row = int(rows[j])
                # The PC bias in an implicit addend (-8 for A32) is not part of what is referenced.
                bias = arch.pc_bias(kind) if implicit and arch.pc_bias else 0
                records.append(make_record(obj, arch, kind, index, linked, site_section, int(relocs.offset[chosen[row]]),
                                       int(place[row]), int(sym[row]), int(addend[row]) - bias,
                                       int(target[row]) - bias, int(distance[j]), _STATUS_CODES[int(status[j])],
                                       placement, provenance))
    records.sort(key=lambda r: (r.status.rank, -r.usage, r.site.address))
    notes = placement.notes + ((arch.note,) if arch.note else ())
    return Analysis(records, dict(counts), unresolved, placement, notes)


def implicit_addends(obj: ElfInput, arch: Architecture, section: int, offsets: np.ndarray,
                      types: np.ndarray) -> np.ndarray:
    """SHT_REL addends, read out of the patched instructions (4 bytes at each site, zero-padded at
    the section's end) and decoded per kind by the architecture, all at once.

    Only for relocatable input: in a linked image the linker has overwritten the field."""
    data = np.frombuffer(obj.section_data(section) + bytes(4), dtype=np.uint8)
    at = np.clip(offsets.astype(np.int64), 0, len(data) - 4)[:, None] + np.arange(4)
    byte = data[at].astype(np.uint32)
    order = (0, 1, 2, 3) if obj.little else (3, 2, 1, 0)
    words = (byte[:, order[0]] | (byte[:, order[1]] << 8) | (byte[:, order[2]] << 16)
             | (byte[:, order[3]] << 24)).astype(np.uint32)
    addend = np.zeros(len(types), dtype=np.int64)
    for number in np.unique(types):
        rows = types == number
        addend[rows] = arch.implicit_addend(arch.kinds[int(number)], words[rows])
    return addend


def statuses(kind: RelocKind, distance: np.ndarray, cross_section: np.ndarray, threshold: float) -> np.ndarray:
    """Status rank per reference: outside the range, near its bound, or movable by the link."""
    in_range = (distance >= kind.lo) & (distance <= kind.hi) & (distance % kind.alignment == 0)
    usage = np.where(distance >= 0, distance / kind.hi, distance / kind.lo if kind.lo else np.inf)
    status = np.full(len(distance), Status.OK.rank, dtype=np.int64)
    if not kind.thunk and kind.hi < FRAGILE_REACH:
        status[cross_section & (usage >= FRAGILE_USAGE)] = Status.FRAGILE.rank
    status[usage >= threshold] = Status.AT_RISK.rank
    status[~in_range] = (Status.VENEER if kind.thunk else Status.OVERFLOW).rank
    return status


def make_record(obj: ElfInput, arch: Architecture, kind: RelocKind, index: SymbolIndex, linked: bool,
            site_section: int, r_offset: int, place: int, sym: int, addend: int, target_address: int,
            distance: int, status: Status, placement: Placement, provenance: Provenance) -> ReachRecord:
    section = obj.sections[site_section]
    site_offset = (r_offset - section.addr) & U64 if linked else r_offset  # r_offset is int64
    word = int.from_bytes(bytes(obj.section_data(site_section)[site_offset:site_offset + 4]),
                          "little" if obj.little else "big")
    site_symbol, site_symbol_offset = index.enclosing(site_section, site_offset)
    target_section_index = int(obj.symbols["shndx"][sym])
    in_section = 0 < target_section_index < len(obj.sections)
    target_section = obj.sections[target_section_index] if in_section else None
    target_offset = target_address - (placement.section_address.get(target_section_index, 0) if in_section else 0)
    name = obj.symbol_name(sym)
    if obj.symbols["info"][sym] & 0xF == STT_SECTION and in_section:
        near, delta = index.enclosing(target_section_index, target_offset)
        name = near if near and delta == 0 else f"{near or name}+{delta:#x}" if near else f"{name}+{target_offset:#x}"
    elif addend:
        name = f"{name}{addend:+#x}"
    return ReachRecord(
        kind=kind,
        site=Site(section.name, site_section, site_offset, place, site_symbol, site_symbol_offset,
                  placement.output_section.get(site_section), arch.instruction(kind, word), None),
        target=Target(name, target_section.name if target_section else None,
                      target_section_index if in_section else None, target_offset, target_address, addend,
                      placement.output_section.get(target_section_index), None),
        distance=distance, status=status, provenance=provenance)


def attach_sources(records: list[ReachRecord], sourcemap: SourceMap, linked: bool) -> list[ReachRecord]:
    """Stage 2: give each site its file:line and each target its declaration line, from DWARF, all
    records at once (`SourceMap.locations_for`)."""
    aimed = [r for r in records if r.target.section_index is not None]
    if linked:
        sites = np.array([r.site.address for r in records], dtype=np.uint64)
        targets = np.array([r.target.address for r in aimed], dtype=np.uint64)
    else:
        sites = sourcemap.code_addresses([r.site.section_index for r in records], [r.site.offset for r in records])
        targets = sourcemap.code_addresses([r.target.section_index for r in aimed], [r.target.offset for r in aimed])
    site_lines, target_lines = sourcemap.locations_for(sites, targets)
    target_of = dict(zip(map(id, aimed), target_lines))
    return [dataclasses.replace(record, site=dataclasses.replace(record.site, location=site_line),
                                target=dataclasses.replace(record.target, location=target_of.get(id(record))))
            for record, site_line in zip(records, site_lines)]
