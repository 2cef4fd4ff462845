"""What moved a reference between two builds of one tree (`reachls diff OLD NEW`).

References are matched by `SiteKey` (function + offset, relocation type, target symbol). For each
one whose distance changed, the distance is taken apart in each build into the units of that
build's layout — the input sections of a relocatable input where its `Placement` puts them, or
the function and object symbols of a linked image — and the gaps between them. With the units of
one build sorted by address, the site at offset oP of unit p and the target at offset oT of unit t:

    distance = ±Σ (size_i + gap_i) over the units i from min(p, t) up to max(p, t), exclusive,
               + oT − oP                                   (+ when p ≤ t, − otherwise)

which is an identity (the sum telescopes to start_t − start_p) whatever the units' sizes. Each
unit's share (its size signed by the direction, the bytes past the site or before the target at
an end) is compared with the share of its counterpart in the other build; each gap counts as
alignment padding or as bytes the link placed itself; ADRP's page rounding is its own share. The
shares' changes therefore add up to the change of distance exactly, by construction.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .arch import architecture_of
from .elf import SHF_ALLOC, STT_FUNC, ElfInput
from .errors import ReachlsError
from .kbuild import find_log
from .layout import Placement
from .pipeline import ScanOptions, ScanResult, scan
from .record import ReachRecord, SiteKey, SourceLocation, Status
from .sourcemap import SourceMap

STT_OBJECT = 1
PADDING = "alignment padding"
LINK_PLACED = "bytes the link placed between sections (script assignments, output section starts, thunks, .got)"
UNSIZED = "bytes no sized symbol covers (alignment, labels without a size, linker-created code)"
PAGE_ROUNDING = "page rounding (the distance counts 4 KiB pages)"
FORMULA_OFFSET = "the relocation formula's own offset from the address difference"

#: Section name prefixes compilers choose for a function by what they know of it, and the attribute
#: that asks for each: what a move into such a section says about its cause.
SECTION_CAUSES = (
    (".text.unlikely", "the compiler's section for cold code", "cold"),
    (".text.hot", "the compiler's section for hot code", "hot"),
    (".text.split", "cold blocks split out of their function (-fsplit-machine-functions)", None),
    (".text.startup", "the compiler's section for code run once at startup", None),
)


@dataclass(frozen=True)
class Units:
    """The pieces a build's distances are made of, in address order: the placed input sections
    of a relocatable input, or the function and object symbols of a linked image (`kind`).

    `keys` match a unit with its counterpart in the other build (a section's name, with `#n` for
    the n-th of one name; a symbol's name likewise). `gap[i]` is the bytes from unit i's end to
    unit i+1's start (negative where they overlap, 0 after the last); `padding[i]` tells alignment
    padding (the next unit in the same output section, fewer bytes than its alignment) from bytes
    the link put there itself. `section`/`offset` locate each unit's start in the ELF for DWARF."""

    kind: str
    keys: np.ndarray
    names: np.ndarray
    address: np.ndarray
    size: np.ndarray
    gap: np.ndarray
    padding: np.ndarray
    section: np.ndarray
    offset: np.ndarray
    position_of_section: np.ndarray  # ELF section index → position of its unit, -1 (sections only)
    cumulative_size: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative_size", np.concatenate(([0], np.cumsum(self.size))))

    def __len__(self) -> int:
        return len(self.keys)

    def at(self, address: int) -> int:
        """Position of the last unit starting at or before `address` (0 before the first)."""
        return max(int(np.searchsorted(self.address, np.uint64(address), side="right")) - 1, 0)


def _keyed(names: np.ndarray) -> np.ndarray:
    """Each name, with `#n` added to the n-th (n ≥ 1, in address order) of names that repeat."""
    inverse = np.unique(names, return_inverse=True)[1].ravel()
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], inverse[order])
    occurrence = np.empty(len(names), dtype=np.int64)
    occurrence[order] = np.arange(len(names)) - starts
    keys = names.copy()
    for row in np.flatnonzero(occurrence).tolist():
        keys[row] = f"{names[row]}#{occurrence[row]}"
    return keys


@lru_cache(maxsize=4)
def _string_table(obj: ElfInput) -> tuple[np.ndarray, np.ndarray]:
    """(start offset, string) of every string of `obj`'s symbol string table, split once."""
    table = obj.symbol_string_table or b"\0"
    lengths = np.fromiter(map(len, table.split(b"\0")), dtype=np.int64)
    strings = np.array(table.decode("utf-8", "replace").split("\0"), dtype=object)
    return np.concatenate(([0], np.cumsum(lengths + 1)[:-1])), strings


def symbol_names(obj: ElfInput, rows: np.ndarray) -> np.ndarray:
    """Names (object array) of the symbols at `rows`, from one split of the string table rather than
    a lookup per symbol; a name that is the tail of another string is sliced from it."""
    starts, strings = _string_table(obj)
    if len(strings) != len(starts):  # a replaced byte sequence never holds a NUL; kept exact anyway
        return np.array([obj.symbol_name(int(row)) for row in rows], dtype=object)
    offsets = obj.symbols["name"][rows].astype(np.int64)
    string = np.searchsorted(starts, offsets, side="right") - 1
    names = strings[string]
    for row in np.flatnonzero(starts[string] != offsets).tolist():
        names[row] = obj.symbol_name(int(rows[row]))
    return names


def _gaps(address: np.ndarray, size: np.ndarray, align: np.ndarray,
          output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`Units.gap` and `Units.padding` of units sorted by address."""
    gap = np.zeros(len(address), dtype=np.int64)
    gap[:-1] = (address[1:] - address[:-1]).view(np.int64) - size[:-1]
    padding = np.zeros(len(address), dtype=bool)
    padding[:-1] = (output[1:] == output[:-1]) & (gap[:-1] >= 0) & (gap[:-1] < np.maximum(align[1:], 1))
    return gap, padding


def section_units(obj: ElfInput, placement: Placement) -> Units:
    """The placed input sections of a relocatable input, where `placement` puts them."""
    indices = np.fromiter(placement.section_address.keys(), dtype=np.int64, count=len(placement.section_address))
    address = np.fromiter(placement.section_address.values(), dtype=np.uint64, count=len(indices))
    order = np.lexsort((indices, address))
    indices, address = indices[order], address[order]
    sizes = np.fromiter((s.size for s in obj.sections), dtype=np.int64, count=len(obj.sections))
    aligns = np.fromiter((s.align for s in obj.sections), dtype=np.int64, count=len(obj.sections))
    names = np.array([s.name for s in obj.sections], dtype=object)
    outputs = np.full(len(obj.sections), None, dtype=object)
    outputs[np.fromiter(placement.output_section.keys(), dtype=np.int64, count=len(placement.output_section))] = \
        np.array(list(placement.output_section.values()), dtype=object)
    gap, padding = _gaps(address, sizes[indices], aligns[indices], outputs[indices])
    position = np.full(len(obj.sections), -1, dtype=np.int64)
    position[indices] = np.arange(len(indices))
    return Units("section", _keyed(names[indices]), names[indices], address, sizes[indices], gap, padding,
                 indices, np.zeros(len(indices), dtype=np.int64), position)


def symbol_units(obj: ElfInput) -> Units:
    """The function and object symbols (with a size) of a linked image, one per address."""
    syms, sections = obj.symbols, obj.symbol_sections
    alloc = np.fromiter((bool(s.flags & SHF_ALLOC) for s in obj.sections), dtype=bool, count=len(obj.sections))
    kind = syms["info"] & 0xF
    rows = np.flatnonzero((sections > 0) & ((kind == STT_FUNC) | (kind == STT_OBJECT)) & (syms["size"] > 0)
                          & alloc[np.maximum(sections, 0)])
    address = syms["value"][rows].astype(np.uint64)
    order = np.lexsort((-syms["size"][rows].astype(np.int64), address))
    rows, address = rows[order], address[order]
    first = np.unique(address, return_index=True)[1]  # aliases: the largest symbol at an address
    rows, address = rows[first], address[first]
    section = sections[rows]
    bases = np.fromiter((s.addr for s in obj.sections), dtype=np.uint64, count=len(obj.sections))
    names = symbol_names(obj, rows)
    size = syms["size"][rows].astype(np.int64)
    outputs = np.array([s.name for s in obj.sections], dtype=object)[section]
    gap, padding = _gaps(address, size, np.ones(len(rows), dtype=np.int64), outputs)
    return Units("symbol", _keyed(names), names, address, size, gap, padding, section,
                 (address - bases[section]).view(np.int64), np.full(len(obj.sections), -1, dtype=np.int64))


def first_symbols(obj: ElfInput, sections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(name or None, offset) of the first function, object or label symbol in each section: what
    names an input section of `vmlinux.o`, where `ld -r` has merged the objects' sections."""
    syms, symbol_sections = obj.symbols, obj.symbol_sections
    kind = syms["info"] & 0xF
    rows = np.flatnonzero(np.isin(symbol_sections, sections) & (kind <= STT_FUNC) & (syms["name"] != 0)
                          & (obj.mapping_letters == 0))
    rows = rows[np.lexsort((-(kind[rows] == STT_FUNC).astype(np.int64), syms["value"][rows], symbol_sections[rows]))]
    names = np.full(len(sections), None, dtype=object)
    offsets = np.zeros(len(sections), dtype=np.int64)
    if not len(rows):
        return names, offsets
    held, first = np.unique(symbol_sections[rows], return_index=True)
    found = np.minimum(np.searchsorted(held, sections), len(held) - 1)
    has = held[found] == sections
    chosen = rows[first[found[has]]]
    names[has] = symbol_names(obj, chosen)
    offsets[has] = syms["value"][chosen].astype(np.int64)
    return names, offsets


def _labels(obj: ElfInput, section: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, offsets) of the function, object and label symbols of `section`, by offset."""
    syms, kind = obj.symbols, obj.symbols["info"] & 0xF
    rows = np.flatnonzero((obj.symbol_sections == section) & (kind <= STT_FUNC) & (syms["name"] != 0)
                          & (obj.mapping_letters == 0))
    rows = rows[np.argsort(syms["value"][rows], kind="stable")]
    return _keyed(symbol_names(obj, rows)), syms["value"][rows].astype(np.int64)


def section_regions(old: tuple[ElfInput, int, int], new: tuple[ElfInput, int, int]) -> list[Region]:
    """Where a section's size change (each side: object, section index, size) went, largest first.
    Its symbols found in both builds, in NEW's order and never going back in OLD's, are anchors with
    the section's start and end: the change of each stretch between two anchors telescopes to the
    size change, so the regions add up to it exactly."""
    old_keys, old_offsets = _labels(old[0], old[1])
    new_keys, new_offsets = _labels(new[0], new[1])
    order = np.argsort(old_keys)
    found = np.minimum(np.searchsorted(old_keys[order], new_keys), max(len(old_keys) - 1, 0))
    common = (old_keys[order][found] == new_keys) if len(old_keys) else np.zeros(len(new_keys), dtype=bool)
    old_at = old_offsets[order][found[common]]
    keep = old_at >= np.maximum.accumulate(old_at) if len(old_at) else old_at.astype(bool)
    anchors = np.concatenate(([None], new_keys[common][keep], [None]))
    new_anchor = np.concatenate(([0], new_offsets[common][keep], [new[2]]))
    old_anchor = np.concatenate(([0], old_at[keep], [old[2]]))
    growth = np.diff(new_anchor) - np.diff(old_anchor)
    gone = ~np.isin(old_keys, new_keys[common])
    regions = []
    for k in np.flatnonzero(growth).tolist():
        fresh = ~common & (new_offsets >= new_anchor[k]) & (new_offsets < new_anchor[k + 1])
        lost = gone & (old_offsets >= old_anchor[k]) & (old_offsets < old_anchor[k + 1])
        regions.append(Region(int(growth[k]), anchors[k], anchors[k + 1], tuple(new_keys[fresh].tolist()),
                              tuple(old_keys[lost].tolist())))
    return sorted(regions, key=lambda r: -abs(r.bytes))


@dataclass(frozen=True)
class Build:
    """One side of the diff: its scan, its units, and the ELF they were read from (kept open for names)."""

    result: ScanResult
    obj: ElfInput
    units: Units
    sourcemap: SourceMap

    @property
    def placement(self) -> Placement:
        return self.result.analysis.placement


@dataclass(frozen=True)
class Span:
    """A reference's distance in one build, taken apart: the units from `lo` up to `hi` (exclusive)
    lie between its ends (their sizes signed by `sign`), the site at `site_offset` into unit
    `site`, the target (the address measured to) at `target_offset` into unit `target`, and what
    the formula adds to the address difference (`rounding`: ADRP counts pages)."""

    site: int
    target: int
    site_offset: int
    target_offset: int
    rounding: int

    @property
    def sign(self) -> int:
        return 1 if self.site <= self.target else -1

    @property
    def lo(self) -> int:
        return min(self.site, self.target)

    @property
    def hi(self) -> int:
        return max(self.site, self.target)

    def share(self, units: Units, position: int) -> int:
        """The bytes unit `position` adds to the distance."""
        inside = self.sign * int(units.size[position]) if self.lo <= position < self.hi else 0
        return (inside - (self.site_offset if position == self.site else 0)
                + (self.target_offset if position == self.target else 0))

    def role(self, position: int) -> str:
        if position < 0:
            return "absent"
        if position == self.site == self.target:
            return "site and target"
        if position == self.site:
            return "site"
        if position == self.target:
            return "target"
        return "between" if self.lo < position < self.hi else "outside"


@dataclass(frozen=True)
class Side:
    """One unit in one build: its role for the reference (`site`, `target`, `between`, `outside`,
    `absent`), its size, and the bytes it adds to the distance."""

    role: str
    size: int
    share: int


@dataclass(frozen=True)
class Region:
    """Where inside a section that changed size the bytes went: between two of its symbols found in
    both builds (`after`, `before`; None for the section's start or end), with the symbols that are
    new there (in NEW) or gone (from OLD), and the file DWARF gives for the region's first bytes in
    NEW. A section's regions add up to its size change (`section_regions`)."""

    bytes: int
    after: str | None
    before: str | None
    new_symbols: tuple[str, ...]
    gone_symbols: tuple[str, ...]
    file: str | None = None


@dataclass(frozen=True)
class Contribution:
    """A share of the change of distance: a unit (section or symbol) whose share changed, or a
    bucket of gaps (`name` None, `what` says which). `inside`: for a section that changed size,
    where in it (`vmlinux.o`'s `.text` holds every object's)."""

    bytes: int
    what: str
    name: str | None = None
    symbol: str | None = None
    file: str | None = None
    old: Side | None = None
    new: Side | None = None
    inside: tuple[Region, ...] = ()

    @property
    def summary(self) -> str:
        """What happened to it, in a few words."""
        if self.old is None or self.new is None:
            return self.what
        old, new = self.old, self.new
        if old.role == new.role == "between":
            if old.size != new.size:
                verb = "grew" if new.size > old.size else "shrank"
                return f"{verb} by {abs(new.size - old.size)} B ({old.size} → {new.size} B), between site and target"
            return "between site and target in both, the other way round"
        if new.role == "between":
            return f"{'new' if old.role == 'absent' else 'now'} between site and target ({new.size} B)"
        if old.role == "between":
            return f"{'gone' if new.role == 'absent' else 'no longer'} between site and target ({old.size} B)"
        if old.role == new.role and old.role in ("site", "target"):
            edge = "its end" if (old.role == "site") == (old.share >= 0) else "its start"
            return (f"holds the {old.role}: {abs(old.share)} → {abs(new.share)} B between the {old.role} and {edge}"
                    f"{f' ({old.size} → {new.size} B)' if old.size != new.size else ''}")
        return f"{old.role} ({old.share:+} B) → {new.role} ({new.share:+} B)"


@dataclass(frozen=True)
class Change:
    """A reference whose distance changed, the units between its ends in each build (count, bytes),
    the moves of its ends from section to section, and the contributions, largest first."""

    key: SiteKey
    old: ReachRecord
    new: ReachRecord
    between: tuple[tuple[int, int], tuple[int, int]]
    moves: tuple[Move, ...]
    contributions: tuple[Contribution, ...]

    @property
    def change(self) -> int:
        return self.new.distance - self.old.distance


@dataclass(frozen=True)
class Diff:
    """The changes, and the references in one build only (`only_old`/`only_new`: those reported,
    not ok, unless every reference was asked for)."""

    old: ScanResult
    new: ScanResult
    unit_kind: str
    matched: int
    only_old: tuple[ReachRecord, ...]
    only_new: tuple[ReachRecord, ...]
    changes: tuple[Change, ...]


def open_build(path: Path, options: ScanOptions) -> Build:
    """A build's scan, every reference included, and its units; a linker log has no layout to take apart."""
    if find_log(path) is not None:
        raise ReachlsError("diff reads an ELF artefact (vmlinux.o or vmlinux), not a linker log", str(path))
    result = scan(path, options)
    obj = ElfInput(result.inputs.artefact)
    units = section_units(obj, result.analysis.placement) if obj.is_relocatable else symbol_units(obj)
    if not len(units):
        obj.close()
        raise ReachlsError("nothing placed: no section or symbol to take a distance apart into", str(path))
    return Build(result, obj, units, SourceMap(obj, architecture_of(obj).dwarf_relocations))


def _measured_address(record: ReachRecord, placement: Placement) -> int:
    """The address the distance is measured to: the target, or the .got for GOT-relative types."""
    if record.kind.formula.startswith("got"):  # the analysis checks these only where the layout has a .got
        return placement.got_address if placement.got_address is not None else placement.output_start[".got"]
    return record.target.address


def span(build: Build, record: ReachRecord) -> Span:
    """`record`'s distance in `build`, taken apart: its ends are in the units of their input sections
    (a linked image, or an end outside any placed section: the unit starting at or before it)."""
    units = build.units
    site_address, target_address = record.site.address, _measured_address(record, build.placement)
    site = units.position_of_section[record.site.section_index] if units.kind == "section" else -1
    site = int(site) if site >= 0 else units.at(site_address)
    target = -1
    if units.kind == "section" and record.target.section_index is not None and record.kind.formula in ("prel", "page"):
        target = int(units.position_of_section[record.target.section_index])
    target = target if target >= 0 else units.at(target_address)
    difference = (target_address - site_address + (1 << 63)) % (1 << 64) - (1 << 63)
    return Span(site, target, (site_address - int(units.address[site])) % (1 << 64),
                (target_address - int(units.address[target])) % (1 << 64), record.distance - difference)


def _shares(units: Units, part: Span) -> tuple[np.ndarray, np.ndarray]:
    """(positions, bytes) of every unit that adds to the distance (a position may repeat)."""
    positions = np.concatenate((np.arange(part.lo, part.hi), [part.site, part.target]))
    shares = np.concatenate((part.sign * units.size[part.lo:part.hi], [-part.site_offset, part.target_offset]))
    return positions, shares


def _gap_buckets(units: Units, part: Span) -> tuple[int, int]:
    """(alignment padding, link-placed bytes) the distance holds, signed by its direction."""
    gap, padding = units.gap[part.lo:part.hi], units.padding[part.lo:part.hi]
    return part.sign * int(gap[padding].sum()), part.sign * int(gap[~padding].sum())


def _between(units: Units, part: Span) -> tuple[int, int]:
    """(count, bytes) of the units strictly between the two ends."""
    if part.hi - part.lo < 2:
        return 0, 0
    return part.hi - part.lo - 1, int(units.cumulative_size[part.hi] - units.cumulative_size[part.lo + 1])


@dataclass(frozen=True)
class Move:
    """An end of the reference (`site` or `target`) in another section than before: `hyp_panic` from
    `.text.hyp_panic` to `.text.unlikely.hyp_panic`. `cause` is what the new section's name says
    (the compiler's section for cold code), `attribute` the spelling and `where` (file, line) of the
    declaration that asks for it, when the source at hand has one."""

    role: str
    symbol: str
    old_section: str
    new_section: str
    cause: str | None = None
    attribute: str | None = None
    where: tuple[str, int] | None = None


def _section_move(role: str, symbol: str, old: str | None, new: str | None,
                  location: SourceLocation | None) -> Move | None:
    if old == new or old is None or new is None:
        return None
    for prefix, meaning, attribute in SECTION_CAUSES:
        if new.startswith(prefix) and not old.startswith(prefix):
            spelled = _attribute_in_source(symbol, location, attribute) if attribute else None
            return Move(role, symbol, old, new, meaning, *(spelled or (None, None)))
    return Move(role, symbol, old, new)


def _attribute_in_source(symbol: str, location: SourceLocation | None,
                         attribute: str) -> tuple[str, tuple[str, int]] | None:
    """(`__cold`, (file, line)) where a declaration of `symbol` in the file DWARF declares it
    in spells the attribute (on its line or the line above)."""
    if location is None or not location.file:
        return None
    try:
        lines = Path(location.file).read_text(errors="replace").splitlines()
    except OSError:
        return None
    spelling = re.compile(rf"\b(__{attribute}\b|__attribute__\s*\(\(\s*(__)?{attribute}(__)?\s*\)\))")
    declares = re.compile(rf"\b{re.escape(symbol)}\s*\(")
    for number, line in enumerate(lines, 1):
        above = lines[number - 2] if number > 1 else ""
        if declares.search(line) and (found := spelling.search(line) or spelling.search(above)):
            return found.group(1), (location.file, number)
    return None


def _pair(old: list[ReachRecord], new: list[ReachRecord]) -> tuple[list[tuple[ReachRecord, ReachRecord]],
                                                                   list[ReachRecord], list[ReachRecord]]:
    """Records matched by site key, in order where keys repeat; and those only in one build."""
    waiting: dict[SiteKey, list[ReachRecord]] = {}
    for record in old:
        waiting.setdefault(record.site_key, []).append(record)
    pairs, only_new = [], []
    for record in new:
        queue = waiting.get(record.site_key)
        if queue:
            pairs.append((queue.pop(0), record))
        else:
            only_new.append(record)
    return pairs, [record for queue in waiting.values() for record in queue], only_new


def _by_address(records: list[ReachRecord]) -> list[ReachRecord]:
    return sorted(records, key=lambda r: (r.site.address, r.kind.name, r.target.symbol))


def diff_builds(old_path: Path, new_path: Path, options: ScanOptions = ScanOptions(),
                include_ok: bool = False) -> Diff:
    """Every reference whose distance changed from `old_path` to `new_path` (build dirs or ELF files),
    what moved it, contributions summing to the change; `include_ok` also those in reach in both
    builds (by default only those reported, not ok, in one of them)."""
    options = dataclasses.replace(options, include_ok=True)
    old = open_build(old_path, options)
    try:
        new = open_build(new_path, options)
    except ReachlsError:
        old.obj.close()
        raise
    with old.obj, new.obj:
        if old.units.kind != new.units.kind or old.result.arch.name != new.result.arch.name:
            raise ReachlsError(f"the two builds differ in kind ({old.units.kind}s of {old.result.arch.name} "
                               f"vs {new.units.kind}s of {new.result.arch.name}): diff two builds of one tree",
                               str(new_path))
        pairs, only_old, only_new = _pair(_by_address(old.result.analysis.records),
                                          _by_address(new.result.analysis.records))
        changed = [(a, b) for a, b in pairs if a.distance != b.distance
                   and (include_ok or a.status is not Status.OK or b.status is not Status.OK)]
        changes = _explain(old, new, changed)
    return Diff(old.result, new.result, old.units.kind, len(pairs), _reported(only_old, include_ok),
                _reported(only_new, include_ok), changes)


def _reported(records: list[ReachRecord], include_ok: bool) -> tuple[ReachRecord, ...]:
    """The records a scan reports (all with `include_ok`), worst first."""
    return tuple(sorted((r for r in records if include_ok or r.status is not Status.OK), key=lambda r: r.worst_first))


def _explain(old: Build, new: Build, changed: list[tuple[ReachRecord, ReachRecord]]) -> tuple[Change, ...]:
    new_position = {key: position for position, key in enumerate(new.units.keys.tolist())}
    old_to_new = np.array([new_position.get(key, -1) for key in old.units.keys.tolist()], dtype=np.int64)
    new_to_old = np.full(len(new.units), -1, dtype=np.int64)
    new_to_old[old_to_new[old_to_new >= 0]] = np.flatnonzero(old_to_new >= 0)
    shared = len(new.units)  # one numbering of units: new positions, then old positions past them
    drafts = []
    for old_record, new_record in changed:
        old_span, new_span = span(old, old_record), span(new, new_record)
        old_positions, old_shares = _shares(old.units, old_span)
        new_positions, new_shares = _shares(new.units, new_span)
        ids = np.concatenate((np.where(old_to_new[old_positions] >= 0, old_to_new[old_positions],
                                       shared + old_positions), new_positions))
        unit_ids, inverse = np.unique(ids, return_inverse=True)
        delta = np.zeros(len(unit_ids), dtype=np.int64)
        np.add.at(delta, inverse.ravel(), np.concatenate((-old_shares, new_shares)))
        moved = [(int(i), int(d)) for i, d in zip(unit_ids[delta != 0].tolist(), delta[delta != 0].tolist())]
        formula = PAGE_ROUNDING if new_record.kind.formula.endswith("page") else FORMULA_OFFSET
        gaps = LINK_PLACED if old.units.kind == "section" else UNSIZED
        buckets = [(what, new_value - old_value) for what, old_value, new_value in zip(
            (PADDING, gaps, formula), (*_gap_buckets(old.units, old_span), old_span.rounding),
            (*_gap_buckets(new.units, new_span), new_span.rounding))]
        drafts.append((old_record, new_record, old_span, new_span, moved, [b for b in buckets if b[1]]))
    old_names = _unit_names(old, {shared_id - shared if shared_id >= shared else int(new_to_old[shared_id])
                                  for draft in drafts for shared_id, _ in draft[4]} - {-1})
    new_names = _unit_names(new, {shared_id for draft in drafts for shared_id, _ in draft[4] if shared_id < shared})
    changes = []
    regions: dict[tuple[int, int], tuple[Region, ...]] = {}
    for old_record, new_record, old_span, new_span, moved, buckets in drafts:
        contributions = []
        for shared_id, delta in moved:
            new_at = shared_id if shared_id < shared else -1
            old_at = shared_id - shared if shared_id >= shared else int(new_to_old[shared_id])
            build, at, names = (new, new_at, new_names) if new_at >= 0 else (old, old_at, old_names)
            symbol, file = names[at]
            old_side, new_side = _side(old.units, old_span, old_at), _side(new.units, new_span, new_at)
            inside: tuple[Region, ...] = ()
            if build.units.kind == "section" and min(old_at, new_at) >= 0 and old_side.size != new_side.size:
                pair = int(old.units.section[old_at]), int(new.units.section[new_at])
                if pair not in regions:  # one section's regions, for every reference it lies between
                    regions[pair] = tuple(_located(new, pair[1], section_regions(
                        (old.obj, pair[0], old_side.size), (new.obj, pair[1], new_side.size))))
                inside = regions[pair]
            contributions.append(Contribution(delta, build.units.kind, str(build.units.names[at]), symbol, file,
                                              old_side, new_side, inside))
        contributions += [Contribution(delta, what) for what, delta in buckets]
        contributions.sort(key=lambda c: (-abs(c.bytes), c.name or "~", c.what))
        moves = tuple(m for m in (
            _section_move("target", new_record.target.symbol, old_record.target.section, new_record.target.section,
                          new_record.target.location),
            _section_move("site", new_record.site.symbol or new_record.site.section, old_record.site.section,
                          new_record.site.section, None)) if m)
        changes.append(Change(new_record.site_key, old_record, new_record,
                              (_between(old.units, old_span), _between(new.units, new_span)), moves,
                              tuple(contributions)))
    return tuple(sorted(changes, key=lambda c: (min(c.old.worst_first, c.new.worst_first), -abs(c.change),
                                                str(c.key))))


def _side(units: Units, part: Span, position: int) -> Side:
    """Unit `position` (-1: none) in the build `part` was taken apart in."""
    if position < 0:
        return Side("absent", 0, 0)
    return Side(part.role(position), int(units.size[position]), part.share(units, position))


def _located(build: Build, section: int, regions: list[Region]) -> list[Region]:
    """The regions with the file DWARF gives for each (code only): at its first new symbol, else at its start."""
    sourcemap = build.sourcemap
    if not regions or not build.obj.sections[section].is_code or not sourcemap.has_dwarf():
        return regions
    keys, offsets = _labels(build.obj, section)
    at = dict(zip(keys.tolist(), offsets.tolist()))
    # The first new symbol's bytes, where the region holds one (they are what came); else its start.
    starts = [at[r.new_symbols[0]] if r.new_symbols else at.get(r.after, 0) for r in regions]
    found = sourcemap.lines_at(sourcemap.code_addresses([section] * len(regions), starts))
    return [dataclasses.replace(r, file=location.file if location else None) for r, location in zip(regions, found)]


def _unit_names(build: Build, positions: set[int]) -> dict[int, tuple[str | None, str | None]]:
    """(first symbol, source file) of each unit at `positions`: for a section, the function or label
    it starts with and the file DWARF gives for its first bytes; for a symbol, the file alone."""
    if not positions:
        return {}
    at = np.array(sorted(positions), dtype=np.int64)
    units = build.units
    if units.kind == "section":
        symbols, offsets = first_symbols(build.obj, units.section[at])
    else:
        symbols, offsets = np.full(len(at), None, dtype=object), units.offset[at]
    sourcemap = build.sourcemap
    files = [None] * len(at)
    if sourcemap.has_dwarf():
        code = np.array([build.obj.sections[int(s)].is_code for s in units.section[at]], dtype=bool)
        found = sourcemap.lines_at(sourcemap.code_addresses(units.section[at][code], offsets[code]))
        for row, location in zip(np.flatnonzero(code).tolist(), found):
            files[row] = location.file if location else None
    return {int(p): (s, f) for p, s, f in zip(at.tolist(), symbols.tolist(), files)}
