"""What every mode's record building shares: the status of a distance, the symbol lookup that
names sites and targets, the counts of references not checked, and the one place reported rows
become `ReachRecord`s (`ReportedRows` → `build_records`), sorted worst first and counted once.

The relocation modes (`analysis`, `linklog`) and the decoded mode (`decode`) each find their
references their own way; from the rows they report onwards the path is this one, so a record
reads the same whichever mode made it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice
from typing import NamedTuple

import numpy as np

from .arch.base import Architecture
from .elf import ElfInput
from .layout import Placement
from .progress import SILENT, Progress
from .record import Provenance, ReachRecord, RelocKind, Site, SourceLocation, Status, Target
from .sourcemap import SourceMap

#: A reference is `fragile` when its target sits in another input section (link order and
#: configuration can move it), it has no veneer to fall back on, its reach is under
#: FRAGILE_REACH, and it already uses FRAGILE_USAGE of it: a branch between two sections of
#: one assembly file at 1 % of its reach is not worth a word.
FRAGILE_REACH = 128 << 20
FRAGILE_USAGE = 0.25
#: Status by rank (`Status.rank`), for status arrays.
STATUS_CODES = tuple(Status)
#: Examples kept per (relocation type, reason) of unchecked references: enough to find the cause.
UNCHECKED_EXAMPLES = 3

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
#: Reasons by code (their index), for reason arrays; and each reason's code.
UNCHECKED_CODES = tuple(UncheckedReason)
UNCHECKED_CODE = {reason: code for code, reason in enumerate(UNCHECKED_CODES)}


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


def count_statuses(counts: Counter[Status], status: np.ndarray) -> None:
    """Add an array of status ranks to `counts`: every reference checked is counted, reported or not."""
    counts.update({STATUS_CODES[code]: n for code, n in enumerate(np.bincount(status).tolist()) if n})


def worst_first(records: list[ReachRecord]) -> list[ReachRecord]:
    """The report order of every mode: status, then usage (highest first), then address."""
    return sorted(records, key=lambda r: (r.worst_first, r.site.address or 0))


class ReportedRows:
    """Columns of the references a mode reports, gathered over its sections and kinds, so symbols,
    mnemonics and source lines are looked up once for all of them (`build_records`). A mode declares
    columns of its own (`extra`: name → dtype, such as a symbol index) to read back after gathering."""

    COLUMNS = {"kind": np.int64, "site_section": np.int64, "site_offset": np.int64, "place": np.uint64,
               "word": np.uint32, "target": np.uint64, "distance": np.int64, "status": np.int64}

    def __init__(self, **extra: type) -> None:
        self._dtypes = self.COLUMNS | extra
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in self._dtypes}

    def add(self, **columns: np.ndarray) -> None:
        for name, column in columns.items():
            self._parts[name].append(np.asarray(column, dtype=self._dtypes[name]))

    def columns(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate([np.zeros(0, dtype=self._dtypes[name]), *parts])
                for name, parts in self._parts.items()}


class TargetOf(NamedTuple):
    """A target as its mode names it: the name reports show, its input section and offset there
    (None outside a section), and the addend. A tuple: a kernel scan with --all makes 100 k."""

    name: str
    section: int | None
    offset: int | None
    addend: int = 0


def build_records(obj: ElfInput, arch: Architecture, placement: Placement, provenance: Provenance,
                  index: SymbolIndex, rows: dict[str, np.ndarray], targets: list[TargetOf],
                  sourcemap: SourceMap | None = None, linked: bool = False, ordered: bool = True,
                  progress: Progress = SILENT) -> list[ReachRecord]:
    """The one place reported rows become `ReachRecord`s, for every mode, in report order (as
    `worst_first` sorts them, here over the columns; `ordered` False: in row order): sites named by the symbol that encloses them,
    instructions by their mnemonic (once per distinct opcode), output sections from the placement,
    and with a `sourcemap` each site's line and each target's declaration (as final addresses in a
    linked image, as DWARF's own in a relocatable one), all looked up at once."""
    if ordered:
        order = _report_order(arch, rows)
        rows = {name: column[order] for name, column in rows.items()}
        targets = [targets[row] for row in order.tolist()]
    # By section index, one more for None (no section): a list index costs less than a lookup per row.
    section_names = [section.name for section in obj.sections] + [None]
    outputs = [placement.output_section.get(index) for index in range(len(obj.sections))] + [None]
    site_section, site_offset = rows["site_section"], rows["site_offset"]
    site_row, site_delta = index.enclosing_rows(site_section, site_offset)
    site_symbols = index.names(site_row)
    opcodes, opcode_of = np.unique(np.stack([rows["kind"], rows["word"] & np.uint32(arch.instruction_bits)]), axis=1,
                                   return_inverse=True)
    mnemonics = [arch.instruction(arch.kinds[kind], word) for kind, word in opcodes.T.tolist()]
    if sourcemap is not None:
        progress.begin("source")
    site_lines, target_lines = _source_lines(rows, targets, sourcemap, linked)
    kinds = [arch.kinds[kind] for kind in rows["kind"].tolist()]
    return [ReachRecord(
        kind=kind,
        site=Site(section_names[section], section, offset, place, symbol, delta, outputs[section],
                  mnemonics[opcode], site_line),
        target=Target(name, section_names[-1 if in_section is None else in_section], in_section, target_offset,
                      address, addend, outputs[-1 if in_section is None else in_section], target_line),
        distance=distance, status=STATUS_CODES[status], provenance=provenance)
        for kind, section, offset, place, symbol, delta, opcode, site_line, (name, in_section, target_offset, addend),
        address, target_line, distance, status in zip(
            kinds, site_section.tolist(), site_offset.tolist(), rows["place"].tolist(), site_symbols,
            site_delta.tolist(), opcode_of.ravel().tolist(), site_lines, targets, rows["target"].tolist(),
            target_lines, rows["distance"].tolist(), rows["status"].tolist())]


def _report_order(arch: Architecture, rows: dict[str, np.ndarray]) -> np.ndarray:
    """`worst_first`'s order of the rows: status, then usage (highest first), then address."""
    usage = np.zeros(len(rows["kind"]), dtype=np.float64)
    for number in np.unique(rows["kind"]).tolist():
        of_kind = rows["kind"] == number
        usage[of_kind] = usages(arch.kinds[number], rows["distance"][of_kind].astype(np.int64))
    return np.lexsort((rows["place"], -usage, rows["status"]))


def _source_lines(rows: dict[str, np.ndarray], targets: list[TargetOf], sourcemap: SourceMap | None,
                  linked: bool) -> tuple[list[SourceLocation | None], list[SourceLocation | None]]:
    count = len(targets)
    if sourcemap is None or not count:
        return [None] * count, [None] * count
    aimed = [row for row, target in enumerate(targets) if target.section is not None]
    if linked:
        sites, aimed_at = rows["place"], rows["target"][aimed]
    else:
        sites = sourcemap.code_addresses(rows["site_section"], rows["site_offset"])
        aimed_at = sourcemap.code_addresses([targets[row].section for row in aimed],
                                            [targets[row].offset for row in aimed])
    site_lines, aimed_lines = sourcemap.locations_for(sites, aimed_at)
    target_lines: list[SourceLocation | None] = [None] * count
    for row, line in zip(aimed, aimed_lines):
        target_lines[row] = line
    return site_lines, target_lines
