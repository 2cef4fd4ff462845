"""Linked-image mode: reach records decoded from the instructions of a final image without relocations.

A `vmlinux` or a firmware image linked without `--emit-relocs` has no relocations left, but
every short-reach instruction still holds its displacement: the architecture's decoder reads
one executable section at a time as a single word array and returns, per instruction class,
the word indices and sign-extended displacements, computed with array operations (masks on
the opcode bits, shifts, sign extension) — never one instruction at a time in Python.

Each decoded instruction is mapped to the relocation kind the linker would have resolved for
it (`cbz` → CONDBR19, `bl` → CALL26, …), so the records are the same `ReachRecord`s the
relocation path produces, with provenance mode `linked` and engine `decoded`. A decoded
distance is in range by construction (the linker wrote it); what it tells is how much of its
reach each reference uses, and which branches go through a linker veneer: a branch whose
target is a veneer (a linker thunk symbol, or an address in a `.stub` section) gets status
`veneer`, with the veneer's address as target and the final target, decoded from the veneer's
code or taken from its symbol name, as the target's name.

Mapping symbols are honoured: words in a data region of code (`$d` on AArch64) are not decoded.

Architectures whose instructions are not all one word (Thumb-2, RISC-V with RVC) read a section
as 16-bit units and get a `SectionContext`: the section's address, the mapping symbol in force
at each unit (Arm chooses A32 or Thumb by it) and the units where symbols sit, where the decoder
can resynchronise its instruction boundaries (`instruction_starts`). Where symbol values of code
carry the instruction set in bit 0 (Arm's Thumb bit), thunk symbols and the symbols that name
sites and targets are looked up with that bit cleared.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from .arch.base import Architecture, Decoder, SectionContext, place_base
from .elf import SHT_NOBITS, U64, ElfInput
from .layout import Placement
from .progress import SILENT, Progress
from .record import DEFAULT_THRESHOLD, Provenance, Status
from .records import Analysis, ReportedRows, SymbolIndex, TargetOf, build_records, count_statuses, statuses, words_at
from .sourcemap import SourceMap

DECODED_NOTE = ("linked image without relocations: references decoded from its instructions, each within "
                "reach as linked (scan vmlinux.o, or link with --emit-relocs, to see overflows)")


class LinkedImage:
    """Address lookups over the allocated sections of a linked image (sorted by address)."""

    def __init__(self, obj: ElfInput) -> None:
        self.obj = obj
        alloc = sorted((s for s in obj.sections if s.is_alloc and s.size), key=lambda s: (s.addr, s.index))
        self.sections = alloc
        self.starts = np.array([s.addr for s in alloc], dtype=np.uint64)
        self.ends = np.array([s.addr + s.size for s in alloc], dtype=np.uint64)
        self.indices = np.array([s.index for s in alloc], dtype=np.int64)
        self._data: dict[int, bytes] = {}

    def section_of(self, addresses: np.ndarray) -> np.ndarray:
        """Section header index holding each address, -1 where none does."""
        if not len(self.sections):
            return np.full(len(addresses), -1, dtype=np.int64)
        pos = np.searchsorted(self.starts, addresses, side="right") - 1
        safe = np.maximum(pos, 0)
        inside = (pos >= 0) & (addresses < self.ends[safe])
        return np.where(inside, self.indices[safe], -1)

    def read(self, address: int, length: int) -> bytes | None:
        """`length` bytes of the image at `address`, or None when they are not all in one section."""
        index = int(self.section_of(np.array([address], dtype=np.uint64))[0])
        if index < 0:
            return None
        section = self.obj.sections[index]
        if section.sh_type == SHT_NOBITS or address + length > section.addr + section.size:
            return None
        if index not in self._data:
            self._data[index] = self.obj.section_data(index)
        offset = address - section.addr
        return self._data[index][offset:offset + length]


def _mapping_symbols(obj: ElfInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(section, offset in it, letter) of every defined mapping symbol, sorted by section and offset;
    at one offset code wins over data (an empty data region): data sorts first, the last one counts."""
    letters, sections = obj.mapping_letters, obj.symbol_sections
    rows = np.flatnonzero((letters != 0) & (sections > 0))
    section, letter = sections[rows], letters[rows]
    addr = np.array([s.addr for s in obj.sections], dtype=np.uint64)
    value = (obj.symbols["value"][rows].astype(np.uint64) - addr[section]).view(np.int64)
    order = np.lexsort((letter != ord("d"), value, section))
    return section[order], value[order], letter[order]


def _per_section(section: np.ndarray, *columns: np.ndarray) -> dict[int, tuple[np.ndarray, ...]]:
    """Split columns sorted by `section` into one slice per section."""
    bounds = np.flatnonzero(np.diff(section)) + 1
    return {int(section[lo]): tuple(column[lo:hi] for column in columns)
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(section)]) if hi > lo}


def mapping_regions(obj: ElfInput, decoder: Decoder) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per section: (sorted offsets of mapping symbols, whether each starts data), found with array ops."""
    if decoder.data_mapping is None or not len(obj.symbols):
        return {}
    section, value, letter = _mapping_symbols(obj)
    return _per_section(section, value, letter == decoder.data_mapping[1])


def thunk_symbols(obj: ElfInput, decoder: Decoder) -> dict[int, tuple[str, str]]:
    """Address (Thumb bit cleared where `code_bit0`) → (veneer symbol, final target's name) of every
    linker thunk symbol."""
    syms = obj.symbols
    raw = obj.symbol_string_table
    if not decoder.thunk_symbols or not len(syms) or not raw:
        return {}
    found: dict[int, tuple[str, str]] = {}
    for pattern in decoder.thunk_symbols:
        anchored = re.compile(rb"(?<=\0)(?:" + pattern.pattern + rb")(?=\0)")
        starts = {m.start(): m for m in anchored.finditer(raw)}
        if not starts:
            continue
        rows = np.flatnonzero(np.isin(syms["name"].astype(np.int64), np.fromiter(starts, dtype=np.int64))
                              & (obj.symbol_sections > 0))
        for row in rows.tolist():
            match = starts[int(syms["name"][row])]
            value = int(syms["value"][row]) & (~1 if decoder.code_bit0 else ~0)
            found.setdefault(value,
                             (match.group(0).decode("utf-8", "replace"), match.group(1).decode("utf-8", "replace")))
    return found


class _CodeSymbolIndex(SymbolIndex):
    """`SymbolIndex` of a linked image whose function symbols carry the Thumb bit: looked up with it cleared."""

    def __init__(self, obj: ElfInput) -> None:
        super().__init__(obj, linked=True)
        func = (obj.symbols["info"][self._index] & 0xF) == 2
        value = np.where(func, self._value & ~1, self._value)
        order = np.lexsort((-func.astype(np.int64), value, self._shndx))
        self._index, self._shndx, self._value = self._index[order], self._shndx[order], value[order]


def _odd_functions(obj: ElfInput) -> np.ndarray:
    """Sorted addresses (bit 0 cleared) of defined function symbols whose value has bit 0 set."""
    syms = obj.symbols
    if not len(syms):
        return np.zeros(0, dtype=np.uint64)
    odd = ((syms["info"] & 0xF) == 2) & (syms["value"] & 1 == 1) & (obj.symbol_sections > 0)
    return np.unique(syms["value"][odd].astype(np.uint64) & np.uint64(U64 - 1))


def _section_context(obj: ElfInput, section, units: int, unit: int,
                     marks: tuple[np.ndarray, np.ndarray] | None, letters: tuple[np.ndarray, np.ndarray] | None,
                     odd_functions: np.ndarray) -> SectionContext:
    """Per-unit mapping letters and the symbol anchors of one section (array ops only)."""
    mapping = np.zeros(units, dtype=np.uint8)
    anchors = [np.zeros(0, dtype=np.int64)]
    if letters is not None:
        offsets, codes = letters
        position = np.arange(units, dtype=np.int64) * unit
        pos = np.searchsorted(offsets, position, side="right") - 1
        mapping = np.where(pos >= 0, codes[np.maximum(pos, 0)], 0).astype(np.uint8)
        anchors.append(offsets // unit)
    syms = obj.symbols
    if len(syms):
        here = (obj.symbol_sections == section.index) & ((syms["info"] & 0xF) <= 2)
        value = (syms["value"][here].astype(np.uint64) & np.uint64(U64 - 1)) - np.uint64(section.addr)
        anchors.append((value.view(np.int64)) // unit)
    joined = np.unique(np.concatenate(anchors))
    return SectionContext(section.addr, mapping, joined[(joined >= 0) & (joined < units)], odd_functions)


def _mapping_letters(obj: ElfInput) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per section: sorted offsets of its mapping symbols and the letter of each (`$t` → ord('t'))."""
    if not len(obj.symbols):
        return {}
    return _per_section(*_mapping_symbols(obj))


def _symbols_at(index: SymbolIndex, image: LinkedImage, addresses: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Nearest symbol at or before each address: `name`, `name+0x10`, `section+0x10` or the bare
    address; and whether a symbol sits exactly there. One sorted lookup for all addresses."""
    addresses = np.asarray(addresses, dtype=np.uint64)
    section = image.section_of(addresses)
    inside = section >= 0
    base = np.array([s.addr for s in image.obj.sections], dtype=np.uint64)
    offset = (addresses - base[np.maximum(section, 0)]).view(np.int64)
    row, delta = index.enclosing_rows(np.maximum(section, 0), offset)
    row = np.where(inside, row, -1)
    names = index.names(row)
    section_names = [s.name for s in image.obj.sections]
    shown = [name if name is not None and d == 0 else f"{name}+{d:#x}" if name is not None
             else f"{section_names[sec]}+{off:#x}" if sec >= 0 else f"{address:#x}"
             for name, d, sec, off, address in zip(names, delta.tolist(), section.tolist(), offset.tolist(),
                                                    addresses.tolist())]
    return shown, (row >= 0) & (delta == 0)


def resolve_veneer(image: LinkedImage, decoder: Decoder, address: int) -> int | None:
    """Final target of the veneer at `address`, decoded from its code."""
    return decoder.veneer_target(image.read, address, image.obj.little)


def analyse_decoded(obj: ElfInput, arch: Architecture, placement: Placement, provenance: Provenance,
                    threshold: float = DEFAULT_THRESHOLD, include_ok: bool = False,
                    sourcemap: SourceMap | None = None, progress: Progress = SILENT) -> Analysis:
    """Every short-reach instruction of every executable section, decoded, with usage and statuses;
    with a `sourcemap`, each record's site line and target declaration too."""
    decoder = arch.decoder
    if decoder is None:
        raise ValueError(f"{arch.name} has no instruction decoder")
    image = LinkedImage(obj)
    index = _CodeSymbolIndex(obj) if decoder.code_bit0 else SymbolIndex(obj, linked=True)
    regions = mapping_regions(obj, decoder)
    letters = _mapping_letters(obj) if decoder.context else {}
    odd_functions = _odd_functions(obj) if decoder.context else np.zeros(0, dtype=np.uint64)
    thunks = thunk_symbols(obj, decoder)
    thunk_addresses = np.array(sorted(thunks), dtype=np.uint64)
    stubs = [s for s in image.sections if decoder.stub_sections and decoder.stub_sections.fullmatch(s.name)]
    order = decoder.instruction_byteorder or ("<" if obj.little else ">")
    word_dtype = np.dtype(f"{order}u{decoder.word_size}")
    counts: Counter[Status] = Counter()
    reported = ReportedRows(via_veneer=np.bool_)
    unmapped: list[str] = []
    for section in obj.sections:
        if not section.is_code or section.sh_type == SHT_NOBITS or section.size < decoder.word_size:
            continue
        data = obj.section_data(section.index)
        words = np.frombuffer(data, dtype=word_dtype, count=len(data) // decoder.word_size)
        if decoder.data_mapping is not None and section.index not in regions:
            unmapped.append(section.name)
        marks = regions.get(section.index)
        units = words.astype(np.uint32, copy=False)
        if decoder.context:
            context = _section_context(obj, section, len(units), decoder.word_size, marks,
                                       letters.get(section.index), odd_functions)
            classes = decoder.decode(units, context)
        else:
            classes = decoder.decode(units)
        padded = np.frombuffer(data + bytes(4), dtype=np.uint8)
        for found in classes:
            kind = arch.kinds[found.kind]
            offset = found.index.astype(np.int64) * decoder.word_size
            displacement = found.displacement.astype(np.int64)
            relaxed = found.relaxed if found.relaxed is not None else np.zeros(len(offset), dtype=bool)
            explicit = found.target
            if marks is not None:
                pos = np.searchsorted(marks[0], offset, side="right") - 1
                code = (pos < 0) | ~marks[1][np.maximum(pos, 0)]
                offset, displacement, relaxed = offset[code], displacement[code], relaxed[code]
                explicit = explicit[code] if explicit is not None else None
            if not len(offset):
                continue
            place = offset.astype(np.uint64) + np.uint64(section.addr)
            base = place_base(kind, place, arch.page_size)
            target = explicit.astype(np.uint64) if explicit is not None else base + displacement.view(np.uint64)
            cross = image.section_of(target) != section.index
            status = statuses(kind, displacement, cross, threshold)
            status[relaxed] = Status.OK.rank
            via_veneer = np.zeros(len(target), dtype=bool)
            if kind.thunk:
                via_veneer = np.isin(target, thunk_addresses)
                for stub in stubs:
                    via_veneer |= (target >= np.uint64(stub.addr)) & (target < np.uint64(stub.addr + stub.size))
                status[via_veneer] = Status.VENEER.rank
            count_statuses(counts, status)
            keep = np.ones(len(status), dtype=bool) if include_ok else status != Status.OK.rank
            reported.add(kind=np.full(int(keep.sum()), found.kind), site_section=np.full(int(keep.sum()), section.index),
                         site_offset=offset[keep], place=place[keep], word=words_at(padded, offset[keep], order == "<"),
                         target=target[keep], distance=displacement[keep], status=status[keep],
                         via_veneer=via_veneer[keep])
    rows = reported.columns()
    targets = _decoded_targets(image, index, decoder, thunks, rows["target"], rows["via_veneer"])
    records = build_records(obj, arch, placement, provenance, index, rows, targets, sourcemap, linked=True,
                            progress=progress)
    notes = placement.notes + ((arch.note,) if arch.note else ()) + decoder.notes
    notes += (DECODED_NOTE,)
    if unmapped:
        notes += (f"no mapping symbols in {', '.join(unmapped)}: data in code there is decoded as instructions",)
    return Analysis(records, dict(counts), (), placement, notes)


def _decoded_targets(image: LinkedImage, index: SymbolIndex, decoder: Decoder, thunks: dict[int, tuple[str, str]],
                     target: np.ndarray, via_veneer: np.ndarray) -> list[TargetOf]:
    """Each decoded instruction's target: the symbol at its address (one lookup for all of them), or
    for a branch to a veneer, what the veneer branches to (each veneer followed once)."""
    names, _ = _symbols_at(index, image, target)
    veneers = {address: _final_target(image, decoder, index, thunks, address)
               for address in np.unique(target[via_veneer]).tolist()}
    for row in np.flatnonzero(via_veneer).tolist():
        names[row] = veneers[int(target[row])]
    section = image.section_of(target)
    base = np.array([s.addr for s in image.obj.sections], dtype=np.uint64)
    offset = np.where(section >= 0, target - base[np.maximum(section, 0)], target)
    return [TargetOf(name, sec if sec >= 0 else None, off)
            for name, sec, off in zip(names, section.tolist(), offset.tolist())]


def _final_target(image: LinkedImage, decoder: Decoder, index: SymbolIndex, thunks: dict[int, tuple[str, str]],
                  veneer: int) -> str:
    """The name of what the veneer at `veneer` branches to: decoded from its code, else from its symbol."""
    final = resolve_veneer(image, decoder, veneer)
    named = thunks[veneer][1] if veneer in thunks else None
    if final is not None:
        (decoded,), (exact,) = _symbols_at(index, image, np.array([final], dtype=np.uint64))
        if exact or named is None:
            return decoded
    return named or f"{veneer:#x}"
