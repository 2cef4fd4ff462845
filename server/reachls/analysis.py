"""Reach analysis: relocations + placement → reach records, computed over whole tables at once.

Distances and statuses are computed with numpy over every short-reach relocation of every
allocated section; `ReachRecord` objects are made only for what will be reported (everything
not `ok`, unless all records are asked for), so a `vmlinux.o` with millions of relocations
costs array operations, not millions of Python objects.

A short-reach reference that cannot be checked (its site or target has no final address, its
symbol is undefined, …) is never dropped: it is counted per relocation type and reason, with a
few examples, in `Analysis.unchecked`, so "0 overflow" can only mean that everything was checked.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from .arch.base import Architecture, checked_distance
from .elf import SECTION_ABS, SHN_UNDEF, STB_WEAK, STT_SECTION, U64, ElfInput, RelocationRows
from .errors import ReachlsError
from .layout import Placement, undefined_symbols
from .progress import SILENT, Progress
from .record import DEFAULT_THRESHOLD, Provenance, Status
from .records import (UNCHECKED_CODE, UNCHECKED_CODES, UNCHECKED_EXAMPLES, Analysis, ReportedRows, SymbolIndex,
                      TargetOf, UncheckedExample, UncheckedGroup, UncheckedReason, UncheckedTally, build_records,
                      count_statuses, statuses)
from .sourcemap import SourceMap

#: What scripts/kallsyms.c defines in the object link-vmlinux.sh adds to the final link after
#: vmlinux.o: in vmlinux.o they are weak and undefined, but the final link defines them.
KALLSYMS_SYMBOLS = frozenset({"kallsyms_addresses", "kallsyms_offsets", "kallsyms_relative_base",
                              "kallsyms_num_syms", "kallsyms_names", "kallsyms_markers", "kallsyms_token_table",
                              "kallsyms_token_index", "kallsyms_seqs_of_names"})
#: Symbols named in the note on weak undefined references checked as the linker resolves them.
WEAK_NOTE_NAMES = 3


def analyse(obj: ElfInput, arch: Architecture, placement: Placement, provenance: Provenance,
            threshold: float = DEFAULT_THRESHOLD, include_ok: bool = False,
            sourcemap: SourceMap | None = None, progress: Progress = SILENT) -> Analysis:
    """Every short-reach relocation of every allocated section, with exact distances and statuses;
    with a `sourcemap`, each record's site line and target declaration too.

    All relocation tables are read and measured at once (`ElfInput.relocation_rows`); the only
    loops are over relocation types and over the records reported."""
    linked = not obj.is_relocatable
    # Addresses are unsigned 64-bit (kernel text sits at 0xffff8000…): all address arithmetic is
    # done in uint64, where it wraps exactly like the linker's, and distances are read as int64.
    base, is_placed = section_bases(obj, placement)
    syms = obj.symbols
    sym_shndx = obj.symbol_sections
    defined_by_link, link_address, resolvable_weak = resolve_undefined(obj, placement)
    sym_value = np.where(defined_by_link, link_address, syms["value"].astype(np.uint64))
    weak_offset = undefined_weak_offsets(arch, placement.linker)
    got_start = placement.got_address if placement.got_address is not None else placement.output_start.get(".got")
    # GOT-relative types are measured to the .got, so their symbol does not decide whether they are checked.
    is_got_type = np.zeros(max(arch.kinds, default=0) + 1, dtype=bool)
    is_got_type[[n for n, kind in arch.kinds.items() if kind.formula.is_got]] = True
    index = SymbolIndex(obj, linked)
    relocs = obj.relocation_rows(short_reach_types(arch))
    reason = unchecked_reasons(obj, relocs, is_placed, defined_by_link, resolvable_weak, weak_offset, is_got_type,
                               got_start is not None)
    missed = np.flatnonzero(reason >= 0)
    unchecked = unchecked_groups(obj, arch, index, linked, relocs, missed, reason)
    del reason
    if len(missed):  # the checked ones; most often all of them, kept without a copy
        relocs = RelocationRows(*(np.delete(getattr(relocs, field.name), missed)
                                  for field in dataclasses.fields(relocs)))
    site_section, offsets, sym, types, addend, explicit = (relocs.section, relocs.offset, relocs.sym, relocs.type,
                                                           relocs.addend, relocs.explicit_addend)
    del relocs
    target_shndx = sym_shndx[sym]
    # Outside a section: absolute, or (GOT types only) undefined or reserved; S is then the symbol's value.
    in_section = (target_shndx > SHN_UNDEF) & (target_shndx < len(base))
    implicit = ~explicit if arch.implicit_addend is not None and not linked else np.zeros(len(sym), dtype=bool)
    if implicit.any():
        addend = addend.copy()  # the rows are the reader's, kept for the next reader
        addend[implicit] = implicit_addends(obj, arch, site_section[implicit], offsets[implicit], types[implicit])
    target = sym_value[sym] + addend.astype(np.uint64) + base[np.where(in_section, target_shndx, 0)]
    if placement.pieces:
        target = piece_targets(obj, placement, sym, target_shndx, addend, target)
    place = offsets.astype(np.uint64) + base[site_section] if linked else \
        placement.addresses_in(site_section, offsets.astype(np.uint64))
    weak_rows = resolvable_weak[sym] & ~is_got_type[types]
    if weak_rows.any():  # what the linker writes: the place, or the next instruction
        target[weak_rows] = place[weak_rows] + weak_offset[types[weak_rows]].astype(np.uint64)
    # The PC bias in an addend as the assembler wrote it, in the instruction (-8 for A32) or in a
    # RELA entry (-4 for a MIPS64 branch), is not part of what is referenced.
    biased = (implicit | explicit) if arch.pc_bias else np.zeros(len(sym), dtype=bool)
    counts: Counter[Status] = Counter()
    reported = ReportedRows(row=np.int64, bias=np.int64)
    for number in np.flatnonzero(np.bincount(types)).tolist():
        kind = arch.kinds[number]
        rows = np.flatnonzero(types == number)
        kind_target = target[rows]
        if kind.formula.is_got:  # checked only when the layout has a .got
            kind_target = np.full_like(kind_target, np.uint64(got_start))
        distance = checked_distance(kind, kind_target, place[rows], arch.page_size)
        status = statuses(kind, distance, target_shndx[rows] != site_section[rows], threshold)
        count_statuses(counts, status)
        keep = slice(None) if include_ok else status != Status.OK.rank
        reported.add(kind=np.full(len(rows[keep]), number), site_section=site_section[rows[keep]],
                     site_offset=offsets[rows[keep]], place=place[rows[keep]], target=target[rows[keep]],
                     distance=distance[keep], status=status[keep], row=rows[keep],
                     bias=np.where(biased[rows[keep]], arch.pc_bias(kind) if arch.pc_bias else 0, 0))
    columns = reported.columns()
    row, bias = columns.pop("row"), columns.pop("bias")
    columns["target"] -= bias.astype(np.uint64)
    columns["sym"], columns["addend"] = sym[row], addend[row] - bias
    if linked:
        section_start = obj.section_headers["addr"][columns["site_section"]].astype(np.uint64)
        columns["site_offset"] = (columns["site_offset"].astype(np.uint64) - section_start).view(np.int64)
    columns["word"] = obj.words_at(columns["site_section"], columns["site_offset"])
    records = build_records(obj, arch, placement, provenance, index, columns,
                            relocation_targets(obj, placement, index, linked, columns), sourcemap, linked,
                            progress=progress)
    notes = placement.notes + weak_note(obj, placement.linker, sym[weak_rows]) + ((arch.note,) if arch.note else ())
    return Analysis(records, dict(counts), unchecked, placement, notes)


def section_bases(obj: ElfInput, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Per section of `obj`: what its offsets are added to (its final address in a relocatable
    input; 0 in a linked image, whose offsets are addresses) and whether the link placed it."""
    if max(placement.section_address.values(), default=0) > U64:
        # sizes near 2**64 in a relocatable input: no link can place what follows them
        index, address = max(placement.section_address.items(), key=lambda item: item[1])
        raise ReachlsError(f"section {obj.sections[index].name} would be placed at {address:#x}, past the "
                           "64-bit address space (a section size near 2**64?)", str(obj.path))
    index, address = placement.section_arrays
    base = np.zeros(len(obj.sections), dtype=np.uint64)
    is_placed = np.zeros(len(obj.sections), dtype=bool)
    if obj.is_relocatable:
        base[index] = address
    is_placed[index] = True
    return base, is_placed


def unchecked_reasons(obj: ElfInput, relocs: RelocationRows, is_placed: np.ndarray, defined_by_link: np.ndarray,
                      resolvable_weak: np.ndarray, weak_offset: np.ndarray, is_got_type: np.ndarray,
                      has_got: bool) -> np.ndarray:
    """Per relocation, the code in `UncheckedReason` of why it cannot be checked, or -1."""
    sym, types = relocs.sym, relocs.type
    in_table = sym < len(obj.symbols)
    reason = unchecked_symbol_reasons(obj, is_placed, defined_by_link)[np.minimum(sym, len(obj.symbols))]
    linker_resolves = np.append(resolvable_weak, False)[np.minimum(sym, len(obj.symbols))] \
        & (weak_offset[types] >= 0) & (relocs.addend == 0)
    reason[linker_resolves] = -1
    reason[is_got_type[types] & in_table] = -1 if has_got else UNCHECKED_CODE[UncheckedReason.GOT_UNKNOWN]
    reason[relocs.composed] = UNCHECKED_CODE[UncheckedReason.COMPOSED]
    reason[~is_placed[relocs.section]] = UNCHECKED_CODE[UncheckedReason.SITE_NOT_PLACED]
    return reason


def relocation_targets(obj: ElfInput, placement: Placement, index: SymbolIndex, linked: bool,
                        rows: dict[str, np.ndarray]) -> list[TargetOf]:
    """Each reported relocation's target as reports name it: its symbol, plus the addend; a section
    symbol (a reference into a section, such as a string literal's) by the symbol there."""
    targets = []
    for sym, addend, address in zip(rows["sym"].tolist(), rows["addend"].tolist(), rows["target"].tolist()):
        section = int(obj.symbol_sections[sym])
        in_section = section > 0
        offset = address - (placement.section_address.get(section, 0) if in_section else 0)
        if in_section and not linked:  # S+A: the offset in its input section, wherever its piece went
            offset = int(obj.symbols["value"][sym]) + addend
        name = obj.symbol_name(sym)
        if obj.symbols["info"][sym] & 0xF == STT_SECTION and in_section:
            near, delta = index.enclosing(section, offset)
            name = near if near and delta == 0 else f"{near or name}+{delta:#x}" if near else f"{name}+{offset:#x}"
        elif addend:
            name = f"{name}{addend:+#x}"
        targets.append(TargetOf(name, section if in_section else None, offset, addend))
    return targets


def resolve_undefined(obj: ElfInput, placement: Placement) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per symbol: whether the link defines it outside the object, its address there, and whether
    it is a weak undefined symbol nothing defines (so the linker resolves references to it itself).
    The names of the undefined symbols are looked up once, for the whole table."""
    count = len(obj.symbols)
    defined_by_link = np.zeros(count, dtype=bool)
    address = np.zeros(count, dtype=np.uint64)
    final_link_defines = np.zeros(count, dtype=bool)
    for index, name in undefined_symbols(obj).items():
        if (value := placement.symbols.get(name)) is not None:
            defined_by_link[index], address[index] = True, value
        final_link_defines[index] = obj.is_relocatable and name in KALLSYMS_SYMBOLS
    undefined_weak = (obj.symbol_sections == SHN_UNDEF) & ((obj.symbols["info"] >> 4) == STB_WEAK)
    return defined_by_link, address, undefined_weak & ~defined_by_link & ~final_link_defines


def undefined_weak_offsets(arch: Architecture, linker: str | None) -> np.ndarray:
    """Per relocation type number, where `linker` resolves a reference to a weak symbol nothing
    defines, relative to the place; -1 where that is not known (or no linker: a linked image)."""
    offsets = np.full(max(arch.kinds, default=0) + 1, -1, dtype=np.int64)
    known = arch.undefined_weak_targets.get(linker or "", {})
    for number, kind in arch.kinds.items():
        offsets[number] = known.get(kind.name, -1)
    return offsets


def weak_note(obj: ElfInput, linker: str | None, symbols: np.ndarray) -> tuple[str, ...]:
    """One note on the references to weak undefined symbols checked as the linker resolves them."""
    if not len(symbols):
        return ()
    names = [obj.symbol_name(int(i)) for i in np.unique(symbols)[:WEAK_NOTE_NAMES + 1]]
    shown = ", ".join(names[:WEAK_NOTE_NAMES]) + (", ..." if len(names) > WEAK_NOTE_NAMES else "")
    return (f"{len(symbols)} references to weak undefined symbols ({shown}) were checked as {linker} resolves "
            "them (at the place or the next instruction; GNU ld turns B and BL into a NOP)",)


def unchecked_symbol_reasons(obj: ElfInput, is_placed: np.ndarray, defined_by_link: np.ndarray) -> np.ndarray:
    """Per symbol, the index in `UncheckedReason` of why a reference to it cannot be checked, or -1;
    one more row, for symbol indices past the end of the table. Computed once for the whole table.
    A symbol the link defines outside the object (`defined_by_link`) is checked."""
    syms = obj.symbols
    shndx = obj.symbol_sections
    in_section = (shndx > SHN_UNDEF) & (shndx < len(is_placed))
    undefined = (shndx == SHN_UNDEF) & ~defined_by_link
    weak = (syms["info"] >> 4) == STB_WEAK
    reason = np.full(len(syms) + 1, -1, dtype=np.int64)
    code = UNCHECKED_CODE
    reason[:-1][((shndx < SHN_UNDEF) | (shndx >= len(is_placed))) & (shndx != SECTION_ABS)] = code[UncheckedReason.TARGET_SECTION_UNKNOWN]
    reason[:-1][in_section & ~is_placed[np.where(in_section, shndx, 0)]] = code[UncheckedReason.TARGET_NOT_PLACED]
    reason[:-1][undefined & weak] = code[UncheckedReason.WEAK_UNDEFINED]
    reason[:-1][undefined & ~weak] = code[UncheckedReason.UNDEFINED]
    reason[-1] = code[UncheckedReason.SYMBOL_OUT_OF_RANGE]
    return reason


def got_entries(obj: ElfInput, arch: Architecture) -> int:
    """How many symbols GOT-relative relocations of allocated sections name: the slots of the .got."""
    got_types = [n for n, kind in arch.kinds.items() if kind.formula.is_got]
    if not got_types:
        return 0
    relocs = obj.relocation_rows(short_reach_types(arch))  # the rows the analysis reads next
    return len(np.unique(relocs.sym[np.isin(relocs.type, got_types)]))


def short_reach_types(arch: Architecture) -> np.ndarray:
    """The relocation types the analysis measures, in the one form every reader asks for them."""
    return np.array(sorted(arch.kinds), dtype=np.int64)


def unchecked_groups(obj: ElfInput, arch: Architecture, index: SymbolIndex, linked: bool, relocs: RelocationRows,
                     rows: np.ndarray, reason: np.ndarray) -> tuple[UncheckedGroup, ...]:
    """The unchecked relocations (`rows` of `relocs`) counted per (type, reason) at once; the first
    few of each group, in table order, named as its examples."""
    if not len(rows):
        return ()
    rtype, why = relocs.type[rows], reason[rows]
    width = int(rtype.max()) + 1
    key = why * width + rtype
    order = np.argsort(key, kind="stable")
    groups, starts, sizes = np.unique(key[order], return_index=True, return_counts=True)
    tally = UncheckedTally()
    for group, start, size in zip(groups.tolist(), starts.tolist(), sizes.tolist()):
        examples = rows[order[start:start + min(size, UNCHECKED_EXAMPLES)]].tolist()
        tally.add(arch.kinds[group % width].name, UNCHECKED_CODES[group // width], size,
                  [unchecked_example(obj, index, linked, int(relocs.section[r]), int(relocs.offset[r]),
                                     int(relocs.sym[r]), int(relocs.addend[r])) for r in examples])
    return tally.groups()


def unchecked_example(obj: ElfInput, index: SymbolIndex, linked: bool, site_section: int, r_offset: int,
                      sym: int, addend: int) -> UncheckedExample:
    """Site and target of one relocation, named as the report names them."""
    section = obj.sections[site_section]
    offset = (r_offset - section.addr) & U64 if linked else r_offset
    symbol, delta = index.enclosing(site_section, offset)
    target = obj.symbol_name(sym) if sym < len(obj.symbols) else f"symbol #{sym}"
    return UncheckedExample(section.name, offset, f"{symbol}+{delta:#x}" if symbol else None,
                            f"{target}{addend:+#x}" if addend else target)


def piece_targets(obj: ElfInput, placement: Placement, sym: np.ndarray, sections: np.ndarray, addend: np.ndarray,
                  target: np.ndarray) -> np.ndarray:
    """`target` with references into merged sections moved to where their piece landed, as the
    linker computes them: a section symbol (a string literal) reaches the piece holding
    value + addend; a named symbol, the piece holding its value, plus the addend."""
    target = target.copy()
    for section, rows in placement.rows_in_pieces(sections):
        value = obj.symbols["value"][sym[rows]].astype(np.int64)
        is_section = (obj.symbols["info"][sym[rows]] & 0xF) == STT_SECTION
        target[rows] = (placement.addresses(section, (value + np.where(is_section, addend[rows], 0)).astype(np.uint64))
                        + np.where(is_section, 0, addend[rows]).astype(np.uint64))
    return target


def implicit_addends(obj: ElfInput, arch: Architecture, sections: np.ndarray, offsets: np.ndarray,
                     types: np.ndarray) -> np.ndarray:
    """SHT_REL addends, read out of the patched instructions (4 bytes at each site, zero-padded at
    its section's end) and decoded per kind by the architecture, all at once.

    Only for relocatable input: in a linked image the linker has overwritten the field."""
    words = obj.words_at(sections, offsets)
    addend = np.zeros(len(types), dtype=np.int64)
    for number in np.unique(types).tolist():
        rows = types == number
        addend[rows] = arch.implicit_addend(arch.kinds[number], words[rows])
    return addend
