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
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import islice
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .arch.base import Architecture, checked_distance
from .elf import SECTION_ABS, SHN_UNDEF, STB_WEAK, STT_SECTION, U64, ElfInput
from .errors import ReachlsError
from .layout import Placement, undefined_symbols
from .record import DEFAULT_THRESHOLD, Provenance, ReachRecord, RelocKind, Site, Status, Target
from .sourcemap import SourceMap

#: A reference is `fragile` when its target sits in another input section (link order and
#: configuration can move it), it has no veneer to fall back on, its reach is under
#: FRAGILE_REACH, and it already uses FRAGILE_USAGE of it: a branch between two sections of
#: one assembly file at 1 % of its reach is not worth a word.
FRAGILE_REACH = 128 << 20
FRAGILE_USAGE = 0.25
_STATUS_CODES = list(Status)
#: Examples kept per (relocation type, reason) of unchecked references: enough to find the cause.
UNCHECKED_EXAMPLES = 3
#: What scripts/kallsyms.c defines in the object link-vmlinux.sh adds to the final link after
#: vmlinux.o: in vmlinux.o they are weak and undefined, but the final link defines them.
KALLSYMS_SYMBOLS = frozenset({"kallsyms_addresses", "kallsyms_offsets", "kallsyms_relative_base",
                              "kallsyms_num_syms", "kallsyms_names", "kallsyms_markers", "kallsyms_token_table",
                              "kallsyms_token_index", "kallsyms_seqs_of_names"})
#: Symbols named in the note on weak undefined references checked as the linker resolves them.
WEAK_NOTE_NAMES = 3


class UncheckedReason(str, Enum):
    """Why a short-reach reference was not checked; the value is its code in the JSON report."""

    SITE_NOT_PLACED = "site-not-placed"
    TARGET_NOT_PLACED = "target-not-placed"
    TARGET_SECTION_UNKNOWN = "target-section-unknown"
    UNDEFINED = "undefined-symbol"
    WEAK_UNDEFINED = "weak-undefined-symbol"
    SYMBOL_OUT_OF_RANGE = "symbol-index-out-of-range"
    GOT_UNKNOWN = "got-slot-unknown"
    COMPOSED = "composed-relocation"
    LOG_TYPE_UNKNOWN = "log-type-unknown"
    LOG_RELOCATION_NOT_FOUND = "log-relocation-not-found"
    LOG_NO_PLACEMENT = "log-no-placement"
    LOG_LINE_UNREADABLE = "log-line-unreadable"

    @property
    def why(self) -> str:
        """What a reader needs to know to judge these references."""
        return _UNCHECKED_WHY[self]


_UNCHECKED_WHY = {
    UncheckedReason.SITE_NOT_PLACED: "the site's section has no final address (discarded by the link, or "
                                     "rebuilt by the linker like .eh_frame)",
    UncheckedReason.TARGET_NOT_PLACED: "the target's section has no final address (discarded, merged, or not "
                                       "allocated)",
    UncheckedReason.TARGET_SECTION_UNKNOWN: "the target symbol's section index is not a section of the object "
                                            "(SHN_COMMON or another reserved index)",
    UncheckedReason.UNDEFINED: "the target symbol is undefined here and the layout's link does not define it "
                               "(another input of the final link does, or the link fails)",
    UncheckedReason.WEAK_UNDEFINED: "the target symbol is weak and undefined here: either the final link defines "
                                    "it after vmlinux.o (the kallsyms tables: link-vmlinux.sh adds the kallsyms "
                                    "object), or what the linker resolves it to is not known for this type",
    UncheckedReason.SYMBOL_OUT_OF_RANGE: "the relocation names a symbol past the end of the symbol table",
    UncheckedReason.GOT_UNKNOWN: "a GOT-relative type and the layout has no .got to measure to",
    UncheckedReason.COMPOSED: "the entry composes this type with further ones applied to its result (ELF64 "
                              "MIPS r_type2/r_type3): the field the linker checks is not this type's alone",
    UncheckedReason.LOG_TYPE_UNKNOWN: "the linker log names a relocation type reachls has no reach for",
    UncheckedReason.LOG_RELOCATION_NOT_FOUND: "the object has no such relocation where the log says (the log "
                                              "is from another build)",
    UncheckedReason.LOG_NO_PLACEMENT: "GNU ld printed no distance and the site or target has no placement to "
                                      "compute it from",
    UncheckedReason.LOG_LINE_UNREADABLE: "a line of the linker log holds a linker message that could not be read "
                                         "(too long, a number no linker prints, or not in the form ld.lld or GNU "
                                         "ld prints it)",
}
_UNCHECKED_CODES = list(UncheckedReason)
_UNCHECKED_CODE = {reason: code for code, reason in enumerate(_UNCHECKED_CODES)}


@dataclass(frozen=True)
class UncheckedExample:
    """One unchecked reference: its site (input section, offset, enclosing symbol) and target."""

    section: str
    offset: int
    symbol: str | None  # `name+0x10`
    target: str


@dataclass(frozen=True)
class UncheckedGroup:
    """The unchecked references of one relocation type for one reason."""

    kind: str
    reason: UncheckedReason
    count: int
    examples: tuple[UncheckedExample, ...]


class UncheckedTally:
    """Counts of unchecked references per (relocation type, reason), keeping the first few of each."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, UncheckedReason]] = Counter()
        self._examples: dict[tuple[str, UncheckedReason], list[UncheckedExample]] = defaultdict(list)

    def add(self, kind: str, reason: UncheckedReason, count: int, examples: Iterable[UncheckedExample]) -> None:
        """`count` more references; only as many `examples` are taken (lazily) as there is room for."""
        key = (kind, reason)
        self._counts[key] += count
        self._examples[key] += islice(examples, max(UNCHECKED_EXAMPLES - len(self._examples[key]), 0))

    def groups(self) -> tuple[UncheckedGroup, ...]:
        """Largest group first."""
        return tuple(sorted((UncheckedGroup(kind, reason, n, tuple(self._examples[(kind, reason)]))
                             for (kind, reason), n in self._counts.items()),
                            key=lambda g: (-g.count, g.reason.value, g.kind)))


@dataclass(frozen=True)
class Analysis:
    """The reach records of one artefact, worst first, counts over all references checked, and
    the short-reach references that could not be checked."""

    records: list[ReachRecord]
    counts: dict[Status, int]
    unchecked: tuple[UncheckedGroup, ...]
    placement: Placement
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Short-reach references checked."""
        return sum(self.counts.values())

    @property
    def unresolved(self) -> int:
        """Short-reach references not checked (the JSON's `unresolved`)."""
        return sum(group.count for group in self.unchecked)


class SymbolIndex:
    """Nearest named symbol at or before a (section, offset): names sites and section-relative targets."""

    def __init__(self, obj: ElfInput, linked: bool) -> None:
        syms = obj.symbols
        strtab = np.frombuffer(obj.symbol_string_table or b"\0", dtype=np.uint8)
        first_char = strtab[np.minimum(syms["name"].astype(np.int64), len(strtab) - 1)]
        kind = syms["info"] & 0xF
        usable = (obj.symbol_sections > 0) & (kind <= 2) & (syms["name"] != 0) & (first_char != ord("$"))
        self._obj = obj
        self._index = np.flatnonzero(usable)
        shndx = obj.symbol_sections[self._index]
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

    def enclosing_rows(self, sections: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`enclosing` for many (section, offset) pairs at once: the row of each one's symbol (-1: none,
        see `names`) and the offset from it (from the section's start where none). The queries are
        merged into the sorted symbols, queries after symbols at equal offsets, and each takes the
        last symbol before it in that order when that symbol is in its section."""
        sections, offsets = np.asarray(sections, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
        count = len(self._value)
        is_query = np.r_[np.zeros(count, dtype=bool), np.ones(len(offsets), dtype=bool)]
        order = np.lexsort((is_query, np.r_[self._value, offsets], np.r_[self._shndx.astype(np.int64), sections]))
        last = np.maximum.accumulate(np.where(is_query[order], -1, order))
        row = np.empty(len(offsets), dtype=np.int64)
        row[order[is_query[order]] - count] = last[is_query[order]]
        row = np.where((row >= 0) & (self._shndx[np.maximum(row, 0)] == sections) if count else False, row, -1)
        return row, offsets - np.where(row >= 0, self._value[np.maximum(row, 0)] if count else 0, 0)

    def names(self, rows: np.ndarray) -> list[str | None]:
        """Symbol name of each row from `enclosing_rows` (None for -1), each distinct symbol read once."""
        distinct, inverse = np.unique(rows, return_inverse=True)
        named = [self._obj.symbol_name(int(self._index[r])) if r >= 0 else None for r in distinct.tolist()]
        return [named[i] for i in inverse.ravel().tolist()]


def analyse(obj: ElfInput, arch: Architecture, placement: Placement, provenance: Provenance,
            threshold: float = DEFAULT_THRESHOLD, include_ok: bool = False) -> Analysis:
    """Every short-reach relocation of every allocated section, with exact distances and statuses."""
    linked = not obj.is_relocatable
    # Addresses are unsigned 64-bit (kernel text sits at 0xffff8000…): all address arithmetic is
    # done in uint64, where it wraps exactly like the linker's, and distances are read as int64.
    base = np.zeros(len(obj.sections), dtype=np.uint64)
    is_placed = np.zeros(len(obj.sections), dtype=bool)
    for index, address in placement.section_address.items():
        if address > U64:  # sizes near 2**64 in a relocatable input: no link can place what follows them
            raise ReachlsError(f"section {obj.sections[index].name} would be placed at {address:#x}, past the "
                               "64-bit address space (a section size near 2**64?)", str(obj.path))
        base[index] = 0 if linked else address
        is_placed[index] = True
    syms = obj.symbols
    sym_shndx = obj.symbol_sections
    defined_by_link, link_address, resolvable_weak = resolve_undefined(obj, placement)
    sym_value = np.where(defined_by_link, link_address, syms["value"].astype(np.uint64))
    weak_offset = undefined_weak_offsets(arch, placement.linker)
    weak_checked: list[np.ndarray] = []  # symbols of the weak undefined references checked
    kind_numbers = np.array(sorted(arch.kinds), dtype=np.int64)
    got_start = placement.got_address if placement.got_address is not None else placement.output_start.get(".got")
    # GOT-relative types are measured to the .got, so their symbol does not decide whether they are checked.
    is_got_type = np.zeros(max(arch.kinds, default=0) + 1, dtype=bool)
    is_got_type[[n for n, kind in arch.kinds.items() if kind.formula.is_got]] = True
    got_reason = -1 if got_start is not None else _UNCHECKED_CODE[UncheckedReason.GOT_UNKNOWN]
    symbol_reason = unchecked_symbol_reasons(obj, is_placed, defined_by_link)
    index = SymbolIndex(obj, linked)
    counts: Counter[Status] = Counter()
    records: list[ReachRecord] = []
    missed: list[tuple[np.ndarray, ...]] = []  # per table: (site section, offset, sym, addend, type, reason)
    for site_section, rel_section in sorted(obj.relocation_sections().items()):
        if not obj.sections[site_section].is_alloc or not len(kind_numbers):
            continue  # not part of the image: nothing the linker checks
        relocs = obj.relocations(rel_section)
        chosen = np.flatnonzero(np.isin(relocs.type, kind_numbers))
        if not len(chosen):
            continue
        sym = relocs.sym[chosen]
        if is_placed[site_section]:
            reason = symbol_reason[np.minimum(sym, len(syms))]
            in_table = sym < len(syms)
            linker_resolves = np.append(resolvable_weak, False)[np.minimum(sym, len(syms))] \
                & (weak_offset[relocs.type[chosen]] >= 0) & (relocs.addend[chosen] == 0)
            reason[linker_resolves] = -1
            reason[is_got_type[relocs.type[chosen]] & in_table] = got_reason
            if relocs.composed is not None:
                reason[relocs.composed[chosen]] = _UNCHECKED_CODE[UncheckedReason.COMPOSED]
        else:
            reason = np.full(len(chosen), _UNCHECKED_CODE[UncheckedReason.SITE_NOT_PLACED])
        checked = reason < 0
        if not checked.all():
            rows = chosen[~checked]
            missed.append((np.full(len(rows), site_section), relocs.offset[rows], relocs.sym[rows],
                           relocs.addend[rows], relocs.type[rows], reason[~checked]))
            chosen, sym = chosen[checked], sym[checked]
            if not len(chosen):
                continue
        target_shndx = sym_shndx[sym]
        # Outside a section: absolute, or (GOT types only) undefined or reserved; S is then the symbol's value.
        in_section = (target_shndx > SHN_UNDEF) & (target_shndx < len(base))
        types = relocs.type[chosen]
        addend = relocs.addend[chosen]
        implicit = not relocs.explicit_addend and arch.implicit_addend is not None and not linked
        if implicit:
            addend = implicit_addends(obj, arch, site_section, relocs.offset[chosen], types)
        target = sym_value[sym] + addend.astype(np.uint64) + base[np.where(in_section, target_shndx, 0)]
        if placement.pieces:
            target = piece_targets(obj, placement, sym, target_shndx, addend, target)
        place = (relocs.offset[chosen].astype(np.uint64) + base[site_section] if linked else
                 placement.addresses(site_section, relocs.offset[chosen].astype(np.uint64)))
        weak_rows = resolvable_weak[sym] & ~is_got_type[types]
        if weak_rows.any():  # what the linker writes: the place, or the next instruction
            target[weak_rows] = place[weak_rows] + weak_offset[types[weak_rows]].astype(np.uint64)
            weak_checked.append(sym[weak_rows])
        for number in np.unique(types):
            kind = arch.kinds[int(number)]
            rows = np.flatnonzero(types == number)
            kind_target = target[rows]
            if kind.formula.is_got:  # checked only when the layout has a .got
                kind_target = np.full_like(kind_target, np.uint64(got_start))
            distance = checked_distance(kind, kind_target, place[rows], arch.page_size)
            status = statuses(kind, distance, target_shndx[rows] != site_section, threshold)
            counts.update({_STATUS_CODES[code]: int(n) for code, n in zip(*np.unique(status, return_counts=True))})
            keep = np.ones(len(rows), dtype=bool) if include_ok else status != Status.OK.rank
            for j in np.flatnonzero(keep).tolist():
                row = int(rows[j])
                # The PC bias in an addend as the assembler wrote it, in the instruction (-8 for A32)
                # or in a RELA entry (-4 for a MIPS64 branch), is not part of what is referenced.
                bias = arch.pc_bias(kind) if (implicit or relocs.explicit_addend) and arch.pc_bias else 0
                records.append(make_record(obj, arch, kind, index, linked, site_section, int(relocs.offset[chosen[row]]),
                                       int(place[row]), int(sym[row]), int(addend[row]) - bias,
                                       int(target[row]) - bias, int(distance[j]), _STATUS_CODES[int(status[j])],
                                       placement, provenance))
    records.sort(key=lambda r: (r.worst_first, r.site.address))
    notes = placement.notes + weak_note(obj, placement.linker, weak_checked) + ((arch.note,) if arch.note else ())
    return Analysis(records, dict(counts), unchecked_groups(obj, arch, index, linked, missed), placement, notes)


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


def weak_note(obj: ElfInput, linker: str | None, checked: list[np.ndarray]) -> tuple[str, ...]:
    """One note on the references to weak undefined symbols checked as the linker resolves them."""
    if not checked:
        return ()
    symbols = np.concatenate(checked)
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
    code = _UNCHECKED_CODE
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
    tables = [obj.relocations(table) for site, table in obj.relocation_sections().items()
              if obj.sections[site].is_alloc]
    if not tables:
        return 0
    types = np.concatenate([relocs.type for relocs in tables])
    symbols = np.concatenate([relocs.sym for relocs in tables])
    return len(np.unique(symbols[np.isin(types, got_types)]))


def unchecked_groups(obj: ElfInput, arch: Architecture, index: SymbolIndex, linked: bool,
                     missed: list[tuple[np.ndarray, ...]]) -> tuple[UncheckedGroup, ...]:
    """The unchecked references of every table counted per (type, reason) at once; the first few
    of each group, in table order, named as its examples."""
    if not missed:
        return ()
    section, offset, sym, addend, rtype, reason = (np.concatenate(column) for column in zip(*missed))
    width = int(rtype.max()) + 1
    key = reason * width + rtype
    order = np.argsort(key, kind="stable")
    groups, starts, sizes = np.unique(key[order], return_index=True, return_counts=True)
    tally = UncheckedTally()
    for group, start, size in zip(groups.tolist(), starts.tolist(), sizes.tolist()):
        rows = order[start:start + min(size, UNCHECKED_EXAMPLES)].tolist()
        tally.add(arch.kinds[group % width].name, _UNCHECKED_CODES[group // width], size,
                  [unchecked_example(obj, index, linked, int(section[r]), int(offset[r]), int(sym[r]), int(addend[r]))
                   for r in rows])
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
    for section in set(placement.pieces) & set(np.unique(sections).tolist()):
        rows = np.flatnonzero(sections == section)
        value = obj.symbols["value"][sym[rows]].astype(np.int64)
        is_section = (obj.symbols["info"][sym[rows]] & 0xF) == STT_SECTION
        target[rows] = (placement.addresses(section, (value + np.where(is_section, addend[rows], 0)).astype(np.uint64))
                        + np.where(is_section, 0, addend[rows]).astype(np.uint64))
    return target


def implicit_addends(obj: ElfInput, arch: Architecture, section: int, offsets: np.ndarray,
                      types: np.ndarray) -> np.ndarray:
    """SHT_REL addends, read out of the patched instructions (4 bytes at each site, zero-padded at
    the section's end) and decoded per kind by the architecture, all at once.

    Only for relocatable input: in a linked image the linker has overwritten the field."""
    data = np.frombuffer(obj.section_data(section) + bytes(4), dtype=np.uint8)
    words = words_at(data, np.clip(offsets.astype(np.int64), 0, len(data) - 4), obj.little)
    addend = np.zeros(len(types), dtype=np.int64)
    for number in np.unique(types):
        rows = types == number
        addend[rows] = arch.implicit_addend(arch.kinds[int(number)], words[rows])
    return addend


def words_at(padded: np.ndarray, offsets: np.ndarray, little: bool) -> np.ndarray:
    """The 4 bytes at each offset of `padded` (a section's bytes with 4 zero bytes after them) as
    one word, all at once: instruction fields are read from it (16-bit units read two)."""
    picked = padded[offsets[:, None] + np.arange(4)].astype(np.uint32)
    shifts = np.arange(4, dtype=np.uint32) * 8
    return (picked << (shifts if little else shifts[::-1])).sum(axis=1, dtype=np.uint32)


def usages(kind: RelocKind, distance: np.ndarray) -> np.ndarray:
    """`RelocKind.usage` of each distance."""
    return np.where(distance >= 0, distance / kind.hi, distance / kind.lo if kind.lo else np.inf)


def statuses(kind: RelocKind, distance: np.ndarray, cross_section: np.ndarray, threshold: float) -> np.ndarray:
    """Status rank per reference: outside the range, near its bound, or movable by the link."""
    in_range = (distance >= kind.lo) & (distance <= kind.hi) & (distance % kind.alignment == 0)
    usage = usages(kind, distance)
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
    target_section_index = int(obj.symbol_sections[sym])
    in_section = target_section_index > 0
    target_section = obj.sections[target_section_index] if in_section else None
    target_offset = target_address - (placement.section_address.get(target_section_index, 0) if in_section else 0)
    if in_section and not linked:  # S+A: the offset in its input section, wherever its piece went
        target_offset = int(obj.symbols["value"][sym]) + addend
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
