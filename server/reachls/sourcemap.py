"""Source lines for code locations, from DWARF, without decoding a whole kernel's DWARF.

Three traps shape this module:

* In a relocatable input (`.o`, `ld -r` output such as `vmlinux.o`) every code address in DWARF
  is a relocation against a code section + addend, and with -ffunction-sections all those
  sections start at 0. pyelftools' own relocation would make them all overlap, and not relocating
  breaks DWARF5's references between debug sections (non-zero addends after `ld -r`). So we apply
  the relocations ourselves and give each code section its own synthetic base address.
* A line sequence is not sorted by address when asm uses `.subsection 1` ... `.previous`
  (ALTERNATIVE): rows step forward and back. Rows are sorted per sequence before lookup
  (GNU addr2line does the same; llvm-addr2line does not).
* Decoding everything takes minutes for a kernel. The code relocations of the debug sections
  (sequence starts in .debug_line, low_pc & co. in .debug_info/.debug_addr/...) give, as plain
  numpy arrays, code addresses and the line program / CU they sit in. Of a line program only the
  sequence starting nearest below an address is decoded (its DW_LNE_set_address is relocated: the
  walk starts at the set_address before it, a line program of an allmodconfig unit has 100 k rows);
  of .debug_info the CU nearest below. Each once, into sorted arrays searched with `searchsorted`.
  Decoding goes below pyelftools (`dwarfline`): its objects per line row and per DIE cost seconds
  per unit.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from bisect import bisect_right
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DWARFInfo, DwarfConfig
from elftools.dwarf.structs import DWARFStructs

from .dwarfline import (Abbreviation, DamagedDwarf, LineRows, abbreviations, die_attributes, die_code, die_offsets,
                        dies_attributes, line_header, line_rows, sequence_rows, unit_header)
from .elf import SHF_ALLOC, SHF_EXECINSTR, U64, ElfInput
from .errors import ReachlsError
from .record import SourceLocation

SHF_COMPRESSED = 0x800
_OPERATIONS = ("set", "add", "sub")  # of `Architecture.dwarf_relocations`, numbered in this order
_SET, _ADD = 0, 1


def _read_fields(buf: np.ndarray, offsets: np.ndarray, widths: np.ndarray, little: bool) -> np.ndarray:
    """Unsigned integers of per-entry byte widths at byte offsets, gathered without a Python loop."""
    values = np.zeros(len(offsets), dtype=np.uint64)
    for i in range(8):
        present = widths > i
        shift = np.where(little, i, widths - 1 - i).astype(np.uint64)
        byte = buf[np.where(present, offsets + i, 0)].astype(np.uint64)
        values |= np.where(present, byte << (np.uint64(8) * shift), np.uint64(0))
    return values


def _write_fields(buf: np.ndarray, offsets: np.ndarray, widths: np.ndarray, values: np.ndarray, little: bool) -> None:
    for i in range(8):
        present = widths > i
        shift = np.where(little, i, widths - 1 - i).astype(np.uint64)
        buf[offsets[present] + i] = ((values >> (np.uint64(8) * shift)) & np.uint64(0xFF))[present].astype(np.uint8)


_DEBUG = (".debug_info", ".debug_abbrev", ".debug_line", ".debug_str", ".debug_line_str",
          ".debug_str_offsets", ".debug_addr", ".debug_ranges", ".debug_rnglists", ".debug_loc",
          ".debug_loclists")
_UNUSED = ("debug_aranges", "debug_frame", "eh_frame", "debug_pubtypes", "debug_pubnames", "debug_sup",
           "gnu_debugaltlink", "debug_types")
_ADDR_FORMS = ("DW_FORM_addr", "DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3",
               "DW_FORM_addrx4")
# Tags whose children (members, enumerators, subranges, parameter types) never hold code.
_TYPES = frozenset(("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type", "DW_TAG_enumeration_type",
                    "DW_TAG_array_type", "DW_TAG_subroutine_type"))
# What a top DIE's attributes (by name, else by form) refer to: the debug section they index.
_REFERS_TO = {"DW_AT_ranges": ".debug_ranges", "DW_AT_rnglists_base": ".debug_rnglists",
              "DW_AT_addr_base": ".debug_addr", "DW_AT_str_offsets_base": ".debug_str_offsets",
              "DW_AT_loclists_base": ".debug_loclists",
              "DW_FORM_rnglistx": ".debug_rnglists", "DW_FORM_loclistx": ".debug_loclists",
              **dict.fromkeys(("DW_FORM_strx", "DW_FORM_strx1", "DW_FORM_strx2", "DW_FORM_strx3", "DW_FORM_strx4"),
                              ".debug_str_offsets")}
_RANGE = frozenset(("DW_AT_low_pc", "DW_AT_high_pc"))
_DECL_REFS = ("DW_AT_specification", "DW_AT_abstract_origin")
_REF_FORMS = ("DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8", "DW_FORM_ref_udata", "DW_FORM_ref_addr")
_SYNTHETIC_START = 0x10000  # no code section at 0, so unresolved (S = 0) references never alias code

# One debug relocation table: r_offset, section of the symbol (-1: none/special), S + A (no base), type.
_Rel = namedtuple("_Rel", "offset section value type")
# A decoded line program (or some of its sequences): rows sorted by (sequence, address); sequence i
# covers [lo[i], hi[i]) and owns rows first[i]:first[i+1]; `files` (a `_FileTable`) names the file column.
_Lines = namedtuple("_Lines", "lo hi first addr line column file files")
# The sequence starts relocations show: per code relocation of .debug_line (the operand of a
# DW_LNE_set_address), sorted by code address: that address, its line program, the .debug_line offset
# of its opcode (-1 if the bytes before it are not one: then the whole program is decoded) and of the
# set_address opcode before it in the same program (-1: none, the walk starts at the program's first).
_Starts = namedtuple("_Starts", "address program opcode anchor")
# One CU, as its DIEs are read: where its top DIE starts in its bytes, its bytes (relocations
# applied), the offset of its abbreviation table and (address size, offset size, version).
_Unit = namedtuple("_Unit", "die data abbrev_offset sizes")


def _only_cover(lo: np.ndarray, hi: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For intervals [lo, hi) and points, all at once: (index of the interval with the greatest lo at
    or below each point if it holds the point, else -1; mask of the points that an interval further
    down (or listed earlier at the same lo) also holds, which the caller decides another way)."""
    order = np.argsort(lo, kind="stable")
    if not len(order):
        return np.full(len(points), -1, dtype=np.int64), np.zeros(len(points), dtype=bool)
    k = np.searchsorted(lo[order], points, "right") - 1
    at = np.maximum(k, 0)
    reach_below = np.concatenate([np.zeros(1, np.uint64), np.maximum.accumulate(hi[order])[:-1]])
    holds = (k >= 0) & (hi[order][at] > points)
    return np.where(holds, order[at], -1), (k > 0) & (reach_below[at] > points)


@dataclass(frozen=True)
class _LineIndex:
    """The sequences and rows of several decoded pieces of line programs (whole programs, or the few
    sequences `SourceMap._sequences` decodes), concatenated in order."""

    lo: np.ndarray
    hi: np.ndarray
    piece: np.ndarray  # per sequence: the key of its piece (a line program's offset, a sequence start)
    first: np.ndarray  # sequence i owns rows first[i]:first[i+1]
    addr: np.ndarray
    line: np.ndarray
    column: np.ndarray
    table: np.ndarray  # per row: index into `tables`
    file: np.ndarray  # per row: the file number, into its table
    tables: list[_FileTable]

    @classmethod
    def of(cls, decoded: list[tuple[int, _Lines]]) -> _LineIndex:
        rows = np.cumsum([0] + [len(d.addr) for _, d in decoded])

        def joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate([np.zeros(0, dtype)] + arrays)
        return cls(joined([d.lo for _, d in decoded], np.uint64), joined([d.hi for _, d in decoded], np.uint64),
                   joined([np.full(len(d.lo), p, np.int64) for p, d in decoded], np.int64),
                   joined([d.first[:-1] + rows[k] for k, (_, d) in enumerate(decoded)] + [rows[-1:]], np.int64),
                   joined([d.addr for _, d in decoded], np.uint64), joined([d.line for _, d in decoded], np.int64),
                   joined([d.column for _, d in decoded], np.int64),
                   joined([np.full(len(d.addr), k, np.int64) for k, (_, d) in enumerate(decoded)], np.int64),
                   joined([d.file for _, d in decoded], np.int64), [d.files for _, d in decoded])

    def piece_of(self, sequences: np.ndarray) -> np.ndarray:
        """Piece of each sequence index, -1 for -1."""
        return np.append(self.piece, -1)[sequences]

    def rows_at(self, sequences: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Row with the greatest address at or below each point in its sequence (of equal addresses the
        last): a binary search within each sequence's rows, all points stepping together."""
        lo, hi = self.first[sequences], self.first[sequences + 1]
        last = max(len(self.addr) - 1, 0)
        while (active := lo < hi).any():
            mid = (lo + hi) // 2
            below = active & (self.addr[np.minimum(mid, last)] <= points)
            lo, hi = np.where(below, mid + 1, lo), np.where(active & ~below, mid, hi)
        return lo - 1

    def locations(self, rows: np.ndarray) -> list[SourceLocation | None]:
        """The rows as source locations; line 0 means "no line" (GNU addr2line prints `?`)."""
        return [SourceLocation(self.tables[table].path(file), line, column) if line else None
                for line, table, file, column in zip(self.line[rows].tolist(), self.table[rows].tolist(),
                                                     self.file[rows].tolist(), self.column[rows].tolist())]


class _FileTable:
    """A line program's file table, each path (comp_dir / include dir / name, normalised) made when
    first asked for: a kernel unit's table names hundreds of headers, a lookup needs a few."""

    def __init__(self, comp_dir: Callable[[], str], dirs: list[str], files: list[tuple[bytes, int] | None]) -> None:
        """`files`: (name, directory index) by file number, None for a number naming no file."""
        self._comp_dir, self._dirs, self._files = functools.cache(comp_dir), dirs, files
        self._paths: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._files)

    def path(self, number: int) -> str:
        """The path of file `number`; "" if it names none."""
        if (found := self._paths.get(number)) is None:
            entry = self._files[number] if 0 <= number < len(self._files) else None
            found = self._paths[number] = "" if entry is None else os.path.normpath(os.path.join(
                self._comp_dir(), self._dirs[entry[1] or 0] if (entry[1] or 0) < len(self._dirs) else "",
                _text(entry[0])))
        return found


class _LazyStream:
    """Stands in for a section stream and builds the (patched) bytes only when pyelftools reads it."""

    def __init__(self, make: Callable[[], bytes | memoryview]) -> None:
        self._make, self._io = make, None

    def __getattr__(self, name: str):  # only reached for the io methods (seek, read, tell, ...)
        if self._io is None:
            self._io = io.BytesIO(self._make())
        return getattr(self._io, name)


def _memo(method: Callable) -> Callable:
    """Per-instance cache of a method by its arguments: each unit is decoded once, for every site."""
    def cached(self, *args):
        memo = self.__dict__.setdefault("_memo", {})
        if (key := (method.__name__, *args)) not in memo:
            memo[key] = method(self, *args)
        return memo[key]
    return cached


#: What reading one unit's untrusted bytes raises when they are not DWARF: the walks here and in
#: `dwarfline`, and pyelftools (its parse errors, and the asserts, lookups and attribute accesses it
#: makes on values it did not check). Caught per unit (`_per_unit`), never around the whole scan.
_UNREADABLE = (DamagedDwarf, ELFError, DWARFError, struct.error, zlib.error, IndexError, KeyError, ValueError,
               TypeError, OverflowError, ZeroDivisionError, AssertionError, AttributeError)


def _damage(error: Exception) -> str:
    """One line on what is wrong with a unit."""
    if isinstance(error, DamagedDwarf):
        return str(error)
    said = " ".join(str(error).split())[:120]
    return f"unreadable ({type(error).__name__}{': ' + said if said else ''})"


def _per_unit(section: str, empty: Callable[[], Any]) -> Callable[[Callable], Callable]:
    """A decoder of one unit of `section` (a line program, a CU) by its offset (and where in it):
    bytes of that unit that do not read as DWARF cost what it covers — `empty()` stands for it, and
    `SourceMap.notes` says which unit and why — while every other unit is read as usual."""
    def wrap(decode: Callable) -> Callable:
        @functools.wraps(decode)
        def guarded(self: SourceMap, offset: int, *where: int) -> Any:
            try:
                return decode(self, offset, *where)
            except _UNREADABLE as error:
                self._damaged.setdefault(section, {}).setdefault(offset, _damage(error))
                return empty()
        return guarded
    return wrap


def _no_lines() -> _Lines:
    empty = np.zeros(0, np.uint64)
    return _Lines(empty, empty, np.zeros(1, np.int64), empty, *(np.zeros(0, np.int64),) * 3, _no_files())


def _no_files() -> _FileTable:
    return _FileTable(str, [], [])


def _no_subprograms() -> tuple[np.ndarray, np.ndarray, list[int]]:
    return np.zeros(0, np.uint64), np.zeros(0, np.uint64), []


def _text(value: bytes | str | None) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value or "")


@dataclass
class LineStats:
    """How much of .debug_line the lookups have decoded so far: what keeps a scan's source step
    proportional to its sites rather than to the size of the line programs they sit in."""

    programs: int = 0  # whole line programs
    sequences: int = 0  # sequences decoded (those walked only to find their end not counted)
    rows: int = 0  # their rows
    walked: int = 0  # opcode bytes read, those of the dropped rows too


class SourceMap:
    """file:line for (section, offset) of a relocatable input or addresses of a linked image."""

    def __init__(self, obj: ElfInput, relocation_operations: Mapping[int, tuple[int, str]]) -> None:
        """`relocation_operations`: what each relocation type of the debug sections writes, from the
        file's architecture (`Architecture.dwarf_relocations`)."""
        self.obj = obj
        self._relocation_operations = relocation_operations
        self._index = {s.name: s.index for s in obj.sections if s.name in _DEBUG and s.size}
        self._e = "<" if obj.little else ">"
        code = SHF_ALLOC | SHF_EXECINSTR
        self._is_code = np.append((obj.section_headers["flags"] & code) == code, False)  # [-1] (no section): False
        self._damaged: dict[str, dict[int, str]] = {}  # section → unit offset → what is wrong with it
        self._unusable: str | None = None  # why no source line could be given at all
        self.decoded = LineStats()

    def has_dwarf(self) -> bool:
        return ".debug_line" in self._index

    @property
    def notes(self) -> tuple[str, ...]:
        """What damaged DWARF cost the lookups so far: one note per debug section (its damaged units,
        the first few named), or one for DWARF that could not be used at all."""
        if self._unusable is not None:
            return (f"DWARF not usable ({self._unusable}): no source lines are given",)
        found = []
        for section, units in sorted(self._damaged.items()):
            shown = "; ".join(f"at {offset:#x}: {why}" for offset, why in list(units.items())[:3])
            more = f"; and {len(units) - 3} more" if len(units) > 3 else ""
            found.append(f"{section}: {len(units)} damaged unit{'s' if len(units) > 1 else ''} ({shown}{more}): "
                         "the source lines of the code they cover are not given")
        return tuple(found)

    def code_addresses(self, sections: np.ndarray | list[int], offsets: np.ndarray | list[int]) -> np.ndarray:
        """Addresses as DWARF gives them of (section index, offset) pairs: final addresses in a linked
        image, synthetic ones in a relocatable input (trap 1)."""
        base = self._bases[np.asarray(sections, dtype=np.int64)]
        if not isinstance(offsets, np.ndarray):  # a record's offset is any int (an addend may wrap past 2**63)
            offsets = np.array([offset & U64 for offset in offsets], dtype=np.uint64)
        return base + offsets.astype(np.uint64)

    def locations_for(self, sites: np.ndarray, targets: np.ndarray) -> tuple[list[SourceLocation | None],
                                                                               list[SourceLocation | None]]:
        """The line of each site address, and for each target address the declaration of the function
        there, else its line; addresses as `code_addresses` gives them, all looked up at once.
        DWARF whose tables cannot be used at all (a debug section or its relocations unreadable)
        gives no line, said in `notes`; a damaged unit costs only the addresses it covers."""
        targets = np.asarray(targets, dtype=np.uint64)
        try:
            declared = self.declarations_at(targets)
            undeclared = [i for i, loc in enumerate(declared) if loc is None]
            for i, loc in zip(undeclared, self.lines_at(targets[undeclared])):
                declared[i] = loc
            return self.lines_at(sites), declared
        except DamagedDwarf as damage:
            self._unusable = str(damage)
            return [None] * len(sites), [None] * len(targets)

    def line_for(self, section_index: int, offset: int) -> SourceLocation | None:
        """Line of the code at `offset` in section `section_index` (any ELF type)."""
        return self.lines_at(self.code_addresses([section_index], [offset]))[0]

    def function_declaration(self, section_index: int, offset: int) -> SourceLocation | None:
        """DW_AT_decl_file/line of the function starting at (else the smallest containing) the location."""
        return self.declarations_at(self.code_addresses([section_index], [offset]))[0]

    def lines_at(self, addresses: np.ndarray) -> list[SourceLocation | None]:
        """Line of the code at each address: the line programs needed decoded once, then one sorted
        lookup for all addresses."""
        points = np.asarray(addresses, dtype=np.uint64)
        found: list[SourceLocation | None] = [None] * len(points)
        if not self.has_dwarf() or not len(points):
            return found
        index, seq, alone = self._sequences_at(points) if self._starts is None else self._started_at(points)
        for i in np.flatnonzero(alone).tolist():
            found[i] = self._line_at(int(points[i]))
        chosen = np.flatnonzero(seq >= 0)
        for i, loc in zip(chosen.tolist(), index.locations(index.rows_at(seq[chosen], points[chosen]))):
            found[i] = loc
        return found

    def _sequences_at(self, points: np.ndarray) -> tuple[_LineIndex, np.ndarray, np.ndarray]:
        """Without relocations to tell where sequences start: (every line program, the sequence holding
        each point, else -1; the points held by several, to look up one at a time with `_line_at`)."""
        index = self._every_line
        seq, several = _only_cover(index.lo, index.hi, points)
        return index, np.where((seq >= 0) & ~several, seq, -1), several

    def _started_at(self, points: np.ndarray) -> tuple[_LineIndex, np.ndarray, np.ndarray]:
        """With relocations: (the sequences starting nearest below the points, decoded; the one holding
        each point as far as decided at once, else -1; the points to look up one at a time with
        `_line_at`: those held by several sequences or not by the one starting nearest below)."""
        starts = self._starts
        k = np.searchsorted(starts.address, points, "right") - 1
        nearest = np.where((k >= 0) & (starts.address[np.maximum(k, 0)] >= self._floor(points)), k, -1)
        index = _LineIndex.of([(k, self._span(k)) for k in np.unique(nearest[nearest >= 0]).tolist()])
        seq, several = _only_cover(index.lo, index.hi, points)
        taken = (seq >= 0) & ~several & (index.piece_of(seq) == nearest)
        return index, np.where(taken, seq, -1), ~taken & (nearest >= 0)

    def _floor(self, points: np.ndarray) -> np.ndarray:
        """The lowest address a sequence holding each point can start at: in a relocatable input the
        start of the code section's synthetic range it falls in (a sequence runs within the section
        its DW_LNE_set_address names), in a linked image 0."""
        if not self.obj.is_relocatable:
            return np.zeros(len(points), np.uint64)
        code = self._code_bases
        k = np.searchsorted(code, points, "right") - 1
        return np.where(k >= 0, code[np.maximum(k, 0)] if len(code) else 0, 0).astype(np.uint64)

    @cached_property
    def _code_bases(self) -> np.ndarray:
        """The synthetic bases of the code sections, in order."""
        return np.sort(self._bases[self._is_code[:-1]])

    def declarations_at(self, addresses: np.ndarray) -> list[SourceLocation | None]:
        """DW_AT_decl_file/line of the function starting at (else the smallest containing) each address.
        The CU to search: with relocations to tell, the one nearest below (others as in `lines_at`);
        in a linked image without them, the CU whose line program covers the address."""
        points = np.asarray(addresses, dtype=np.uint64)
        found: list[SourceLocation | None] = [None] * len(points)
        if ".debug_info" not in self._index or not len(points):
            return found
        nearest = self._nearest_unit(self._cu_table, points)
        if nearest is None:
            owner = self._program_covering(points)
            nearest = np.array([self._cu_of_program.get(p, -1) for p in owner.tolist()], dtype=np.int64)
        tables = [(int(cu), *self._subprograms(int(cu))) for cu in np.unique(nearest[nearest >= 0])]
        low = np.concatenate([np.zeros(0, np.uint64)] + [t[1] for t in tables])
        high = np.concatenate([np.zeros(0, np.uint64)] + [t[2] for t in tables])
        unit = np.concatenate([np.full(len(t[1]), t[0], np.int64) for t in tables] + [[-1]])  # [-1]: none
        dies = [(t[0], d) for t in tables for d in t[3]]
        which, several = _only_cover(low, high, points)
        taken = (which >= 0) & ~several & (unit[which] == nearest)
        for i in np.flatnonzero(~taken & (nearest >= 0)).tolist():
            candidates = [int(nearest[i])] if self._cu_table is None else self._near(self._cu_table, ".debug_info", points[i])
            found[i] = self._declaration_in(candidates, points[i])
        for i in np.flatnonzero(taken).tolist():
            found[i] = self._declared(*dies[which[i]])
        return found

    def _declaration_in(self, cus: list[int], address: np.uint64) -> SourceLocation | None:
        """The first of `cus` with a function around `address`: the one starting there, else the innermost."""
        for cu in cus:
            low, high, dies = self._subprograms(cu)
            inside = np.flatnonzero((low <= address) & (address < high))
            if len(inside):
                return self._declared(cu, dies[inside[np.argmin(np.where(low[inside] == address, 0,
                                                                         high[inside] - low[inside]))]])
        return None

    def _line_at(self, address: int) -> SourceLocation | None:
        """The line of one address from the first piece of a line program around it that covers it: one
        of the sequences starting below it (nearest first, as far back as 256 starts in 4 programs),
        or, without relocations to tell, every program."""
        if self._starts is None:
            pieces = (self._lines(program) for program in self._unit_starts(".debug_line").tolist())
        else:
            pieces = (self._span(k) for k in self._candidates(address))
        for lines in pieces:
            covered, loc = self._lookup(lines, address)
            if covered:
                return loc
        return None

    def _candidates(self, address: int) -> list[int]:
        """Sequence starts (indexes into `_starts`) that may begin the sequence holding `address`,
        nearest first: the 256 below it in its section, of the 4 line programs nearest."""
        starts, point = self._starts, np.array([address], np.uint64)
        k = int(np.searchsorted(starts.address, point[0], "right"))
        window = np.arange(k - 1, max(k - 257, -1), -1)
        window = window[starts.address[window] >= self._floor(point)[0]]
        programs = list(dict.fromkeys(starts.program[window].tolist()))[:4]
        return window[np.isin(starts.program[window], programs)].tolist()

    @staticmethod
    def _nearest_unit(table: tuple[np.ndarray, np.ndarray] | None, points: np.ndarray) -> np.ndarray | None:
        """Per address, the unit of the code address nearest at or below it (-1: none); None if no
        relocations tell (every unit is a candidate)."""
        if table is None:
            return None
        addrs, units = table
        k = np.searchsorted(addrs, points, "right")
        return np.where(k > 0, units[np.maximum(k - 1, 0)] if len(units) else -1, -1).astype(np.int64)

    @cached_property
    def _every_line(self) -> _LineIndex:
        """All line programs: what a linked image without relocations needs for any address."""
        return _LineIndex.of([(program, self._lines(program)) for program in
                              self._unit_starts(".debug_line").tolist()])

    def _program_covering(self, points: np.ndarray) -> np.ndarray:
        """Without relocations: line program whose sequence holds each address (-1: none, or not
        decided at once)."""
        index, seq, _ = self._sequences_at(points)
        return index.piece_of(seq)

    def _near(self, table: tuple[np.ndarray, np.ndarray] | None, name: str, address: int) -> list[int]:
        """Units to try for `address`: those with a known code address nearest at or below it (a unit
        covering it starts there), or, without relocations to tell, every unit of section `name`."""
        if table is None:
            return self._unit_starts(name).tolist()
        addrs, units = table
        k = int(np.searchsorted(addrs, np.uint64(address), "right"))
        return list(dict.fromkeys(units[max(0, k - 256):k][::-1].tolist()))[:4]

    # ----- section bytes, relocations, synthetic addresses (trap 1) -----

    @_memo
    def _raw(self, name: str) -> memoryview | bytes:
        """Section bytes (zero-copy from the mapping), inflated if SHF_COMPRESSED (zlib, as -gz makes)."""
        sec = self.obj.sections[self._index[name]]
        try:
            data = self.obj.section_data(sec.index)
        except ReachlsError as error:  # cut short: what ElfInput finds, as damage to this debug section only
            raise DamagedDwarf(str(error).removeprefix(f"{error.where}: ")) from None
        if not sec.flags & SHF_COMPRESSED:
            return data
        if len(data) < 4 or struct.unpack_from(self._e + "I", data)[0] != 1:  # ch_type ELFCOMPRESS_ZLIB
            raise DamagedDwarf(f"{name}: compressed, not with zlib")
        try:
            return zlib.decompress(data[24 if self.obj.is64 else 12:])
        except zlib.error as error:
            raise DamagedDwarf(f"{name}: does not inflate ({error})") from None

    @_memo
    def _bytes(self, name: str) -> bytes:
        """Section bytes, relocations applied, as `bytes`: for searching and slicing them."""
        return bytes(self._patched(name))

    @cached_property
    def _symbol_sections(self) -> np.ndarray:
        """Section of each symbol (extended numbering resolved by `ElfInput`); -1 if none."""
        sections = self.obj.symbol_sections
        return np.where(sections > 0, sections, -1)

    @cached_property
    def _bases(self) -> np.ndarray:
        """Address of each section as DWARF sees it: sh_addr in a linked image; in a relocatable input
        disjoint synthetic ranges for code sections (0 for the rest), so that DWARF addresses of
        different sections never coincide and map back to (section, offset)."""
        headers = self.obj.section_headers
        if not self.obj.is_relocatable:
            return headers["addr"].astype(np.uint64)
        # Each code section gets a slot of its size rounded up to one alignment (16 bytes up to a
        # page, the largest of theirs), laid end to end at once; the ranges only need to be apart.
        code = np.flatnonzero((headers["flags"] & (SHF_ALLOC | SHF_EXECINSTR)) == (SHF_ALLOC | SHF_EXECINSTR))
        align = np.uint64(min(max(int(headers["addralign"][code].max(initial=0)), 16), 4096))
        slot = (np.maximum(headers["size"][code].astype(np.uint64), 1) + align - np.uint64(1)) // align * align
        bases = np.zeros(len(headers), dtype=np.uint64)
        bases[code] = np.uint64(_SYNTHETIC_START) + np.cumsum(slot) - slot
        return bases

    @_memo
    def _relocs(self, name: str) -> _Rel | None:
        """The relocations of debug section `name` as arrays, or None if it has none."""
        relsec = self.obj.relocation_sections().get(self._index.get(name, -1))
        if relsec is None:
            return None
        r = self.obj.relocations(relsec)
        if len(r.sym) and (beyond := int(r.sym.max())) >= len(self.obj.symbols):
            raise DamagedDwarf(f"{relsec.name}: a relocation names symbol {beyond}, the symbol table has "
                               f"{len(self.obj.symbols)}")
        addend = r.addend
        if not r.explicit_addend:  # REL: the addend is what the field holds
            width, _ = self._operations(name, r.type)
            raw = np.frombuffer(self._raw(name), dtype=np.uint8)
            self._check_inside(name, r.offset, width, len(raw))
            addend = _read_fields(raw, r.offset, width, self.obj.little).view(np.int64)
        value = self.obj.symbols["value"][r.sym].astype(np.int64) + addend
        return _Rel(r.offset, self._symbol_sections[r.sym], value, r.type)

    def _operations(self, name: str, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(width, operation: an index into `_OPERATIONS`) per relocation, looked up in the sorted few
        known types at once; an unknown type is a clear error, never a wrong line."""
        known = self._relocation_operations
        kinds = np.array(sorted(known), dtype=np.int64)
        which = np.minimum(np.searchsorted(kinds, types), max(len(kinds) - 1, 0))
        unknown = kinds[which] != types if len(kinds) else np.ones(len(types), dtype=bool)
        if unknown.any():
            raise DamagedDwarf(f"{name}: relocation type(s) {sorted(set(types[unknown].tolist()))} not used in debug "
                               f"sections of {self.obj.machine}")
        width = np.array([known[kind][0] for kind in kinds.tolist()] + [0], dtype=np.int64)
        operation = np.array([_OPERATIONS.index(known[kind][1]) for kind in kinds.tolist()] + [0], dtype=np.int8)
        return width[which], operation[which]

    def _check_inside(self, name: str, offsets: np.ndarray, width: np.ndarray, size: int) -> None:
        if ((offsets + width > size) | (offsets < 0)).any():
            raise DamagedDwarf(f"{name}: a relocation outside the section")

    @_memo
    def _patched(self, name: str) -> bytes | memoryview:
        """Debug section bytes with relocations applied: S + A, S of code symbols on synthetic bases.
        Vectorised here because pyelftools relocates entry by entry (slow) and onto 0-based code
        addresses; DWARF only uses data relocations (ABS32/ABS64 and the like). Linked images: as is."""
        data, rel = self._raw(name), self._relocs(name) if self.obj.is_relocatable else None
        return data if rel is None else self._apply(name, data, rel)

    def _patched_slice(self, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of debug section `name`, relocations applied as `_patched` applies them:
        the few units of a kernel's .debug_info (millions of relocations) a lookup reads, not all."""
        data, rel = self._raw(name), self._relocs(name) if self.obj.is_relocatable else None
        if rel is None:
            return bytes(data[start:end])
        order, offsets = self._by_offset(name)
        lo, hi = np.searchsorted(offsets, [start, end])
        pick = order[lo:hi]
        return self._apply(name, data[start:end], _Rel(rel.offset[pick] - start, *(field[pick] for field in rel[1:])))

    @_memo
    def _by_offset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(the order of the relocations of `name` by offset, their offsets in that order), each
        checked to fall inside the section; a linker writes them in order: then no sort."""
        rel = self._relocs(name)
        self._check_inside(name, rel.offset, self._operations(name, rel.type)[0], len(self._raw(name)))
        if (np.diff(rel.offset.astype(np.int64)) >= 0).all():
            return np.arange(len(rel.offset)), rel.offset
        order = np.argsort(rel.offset, kind="stable")
        return order, rel.offset[order]

    def _apply(self, name: str, data: bytes | memoryview, rel: _Rel) -> bytes:
        """`data` with the relocations `rel` (offsets into `data`) applied."""
        width, operation = self._operations(name, rel.type)
        self._check_inside(name, rel.offset, width, len(data))
        base = np.where(rel.section >= 0, self._bases[np.maximum(rel.section, 0)], np.uint64(0))
        value = rel.value.astype(np.uint64) + base
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        little = self._e == "<"
        sets = (operation == _SET) & (width > 0)
        _write_fields(buf, rel.offset[sets], width[sets], value[sets], little)
        pairs = operation != _SET  # ADD/SUB: several may hit one field, so sum them per field first
        if pairs.any():
            fields, slot = np.unique(rel.offset[pairs], return_inverse=True)
            field_width = np.zeros(len(fields), dtype=np.int64)
            field_width[slot] = width[pairs]
            delta = np.zeros(len(fields), dtype=np.uint64)
            np.add.at(delta, slot, np.where(operation[pairs] == _ADD, value[pairs], np.uint64(0) - value[pairs]))
            _write_fields(buf, fields, field_width, _read_fields(buf, fields, field_width, little) + delta, little)
        return buf.tobytes()

    @cached_property
    def _dwarf(self) -> DWARFInfo:
        """pyelftools DWARFInfo over our own section bytes, each patched only when first read."""
        def desc(name: str) -> DebugSectionDescriptor | None:
            if name not in self._index:
                return None
            sec = self.obj.sections[self._index[name]]
            size = len(self._raw(name)) if sec.flags & SHF_COMPRESSED else sec.size
            return DebugSectionDescriptor(_LazyStream(lambda: self._patched(name)), name, sec.offset, size, 0)
        config = DwarfConfig(self.obj.little, self.obj.elffile.get_machine_arch(), 8 if self.obj.is64 else 4)
        return DWARFInfo(config=config, **{f"{n[1:]}_sec": desc(n) for n in _DEBUG},
                         **{f"{n}_sec": None for n in _UNUSED})

    # ----- which units cover which code section (trap 3) -----

    @_memo
    def _unit_starts(self, name: str) -> np.ndarray:
        """Offsets of the units of .debug_line / .debug_info, from the unit_length fields alone."""
        data, starts, off = self._raw(name), [], 0
        while off + 4 <= len(data):
            length = struct.unpack_from(self._e + "I", data, off)[0]
            wide = length == 0xFFFFFFFF  # 64-bit DWARF
            if wide and off + 12 > len(data):
                break
            starts.append(off)
            off += 12 + struct.unpack_from(self._e + "Q", data, off + 4)[0] if wide else 4 + length
        return np.array(starts, dtype=np.int64)

    def _owner(self, name: str, offsets: np.ndarray) -> np.ndarray:
        """The unit of `name` holding each offset (of a relocation, or a pointer into the section)."""
        starts = self._unit_starts(name)
        k = np.searchsorted(starts, offsets, "right") - 1
        if len(offsets) and (not len(starts) or (k < 0).any()):
            raise DamagedDwarf(f"{name} has {len(starts)} units and its relocations point before them")
        return starts[k]

    def _code_addresses(self, rel: _Rel) -> tuple[np.ndarray, np.ndarray]:
        """(mask of relocations against code, the code addresses they produce, as DWARF will see them)."""
        m = self._is_code[rel.section]
        base = self._bases[rel.section[m]] if self.obj.is_relocatable else np.uint64(0)
        return m, rel.value[m].astype(np.uint64) + base

    @staticmethod
    def _table(addrs: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(addrs, kind="stable")
        return addrs[order], units[order]

    @cached_property
    def _starts(self) -> _Starts | None:
        """Where sequences start, from the code relocations of .debug_line (each the operand of a
        DW_LNE_set_address, the first address of a sequence) as whole arrays; None: no relocations
        (a linked image), every program is decoded."""
        if (rel := self._relocs(".debug_line")) is None:
            if not self.obj.is_relocatable:
                return None
            none = np.zeros(0, np.int64)
            return _Starts(np.zeros(0, np.uint64), none, none, none)
        raw = np.frombuffer(self._raw(".debug_line"), dtype=np.uint8)
        self._check_inside(".debug_line", rel.offset, self._operations(".debug_line", rel.type)[0], len(raw))
        m, addrs = self._code_addresses(rel)
        at = rel.offset[m].astype(np.int64)
        program = self._owner(".debug_line", at)
        width, _ = self._operations(".debug_line", rel.type[m])
        before = np.maximum(at, 3)[:, None] - np.arange(3, 0, -1)  # extended opcode: 0, length, 2
        is_set = (at >= 3) & (raw[before[:, 0]] == 0) & (raw[before[:, 1]] == width + 1) & (raw[before[:, 2]] == 2)
        opcode = np.where(is_set, at - 3, -1)
        by_offset = np.argsort(at, kind="stable")
        previous = np.concatenate([[-1], opcode[by_offset][:-1]])
        same = np.concatenate([[False], program[by_offset][1:] == program[by_offset][:-1]])
        anchor = np.empty(len(at), np.int64)
        anchor[by_offset] = np.where(same, previous, -1)
        order = np.argsort(addrs, kind="stable")
        return _Starts(addrs[order], program[order], opcode[order], anchor[order])

    @cached_property
    def _cu_table(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(code address, CU) sorted by address: code relocations in .debug_info belong to the CU they
        sit in; those in .debug_addr/.debug_rnglists/.debug_ranges to the CU whose pointer into that
        section (addr_base, rnglists_base, DW_AT_ranges: .debug_info relocations against it) precedes."""
        if (info := self._relocs(".debug_info")) is None:
            return (np.zeros(0, np.uint64),) * 2 if self.obj.is_relocatable else None
        owner = self._owner(".debug_info", info.offset)
        m, addrs = self._code_addresses(info)
        keys, values = [addrs], [owner[m]]
        for name in (".debug_addr", ".debug_rnglists", ".debug_ranges"):
            if (rel := self._relocs(name)) is None:
                continue
            to_sec = info.section == self._index[name]
            pointers, cus = self._table(info.value[to_sec], owner[to_sec])
            m, addrs = self._code_addresses(rel)
            k = np.searchsorted(pointers, rel.offset[m], "right") - 1
            keys.append(addrs[k >= 0])
            values.append(cus[k[k >= 0]])
        return self._table(np.concatenate(keys), np.concatenate(values))

    @cached_property
    def _cu_of_program(self) -> dict[int, int]:
        """{line program offset: CU offset}, for DWARF<5 comp_dir; from relocations when present."""
        info = self._relocs(".debug_info")
        if info is not None and ".debug_line" in self._index:
            m = info.section == self._index[".debug_line"]
            return dict(zip(info.value[m].tolist(), self._owner(".debug_info", info.offset[m]).tolist()))
        found = {}
        for cu in self._unit_starts(".debug_info").tolist() if ".debug_info" in self._index else ():
            if (stmt := self._stmt_list(cu)) is not None:
                found[stmt] = cu
        return found

    # ----- decoding, cached (trap 2) -----

    def _program(self, offset: int):
        """pyelftools LineProgram at `offset`, via the private `_parse_line_program_at_offset`: the
        public route (`line_program_for_CU`) would decode the CU first."""
        length = struct.unpack_from(self._e + "I", self._raw(".debug_line"), offset)[0]
        structs = DWARFStructs(self.obj.little, 64 if length == 0xFFFFFFFF else 32, 8 if self.obj.is64 else 4)
        return self._dwarf._parse_line_program_at_offset(offset, structs)

    @_memo
    def _header(self, offset: int) -> dict:
        """Header of the line program at `offset`: dwarfline's reading, pyelftools' for forms it does not read."""
        if (found := line_header(self._bytes(".debug_line"), offset, self.obj.little, self._string)) is not None:
            return found
        program = self._program(offset)
        return {**program.header, "file_entry": [(f.name, f.dir_index) for f in program.header["file_entry"]],
                "program_start": program.program_start_offset, "program_end": program.program_end_offset}

    def _string(self, name: str, offset: int) -> bytes:
        strings = self._bytes(name)
        return strings[offset:strings.find(b"\0", offset)]

    @_memo
    @_per_unit(".debug_line", _no_files)
    def _files(self, offset: int) -> _FileTable:
        return self._file_paths(offset)

    def _file_paths(self, offset: int, defined: list[tuple[bytes, int]] | tuple = ()) -> _FileTable:
        """File table of a line program; `defined`: (name, dir_index) of DW_LNE_define_file entries,
        appended."""
        header = self._header(offset)
        dirs = [_text(d) for d in header["include_directory"]]
        entries = header["file_entry"] + list(defined)
        if header["version"] >= 5:  # directory 0 is comp_dir, file indexes start at 0
            comp = dirs[0] if dirs else ""
            return _FileTable(lambda: comp, [""] + dirs[1:], entries)
        # directory 0 is the CU's comp_dir, file indexes start at 1
        return _FileTable(functools.partial(self._comp_dir, offset), [""] + dirs, [None] + entries)

    @_per_unit(".debug_line", str)
    def _comp_dir(self, program: int) -> str:
        if (cu := self._cu_of_program.get(program)) is None:
            return ""
        form, value = self._top_die(cu).get("DW_AT_comp_dir", (None, None))
        if form in ("DW_FORM_strp", "DW_FORM_line_strp"):
            value = self._string(".debug_str" if form == "DW_FORM_strp" else ".debug_line_str", value)
        elif form not in (None, "DW_FORM_string"):  # strx: the string offsets table, as pyelftools reads it
            value = self._dwarf.get_CU_at(cu).get_top_DIE().attributes["DW_AT_comp_dir"].value
        return _text(value)

    @_memo
    @_per_unit(".debug_line", _no_lines)
    def _lines(self, offset: int) -> _Lines:
        """Rows of one whole line program, sorted as `_sorted`."""
        rows, header = self._rows(offset), self._header(offset)
        self._count(rows, header["program_end"] - header["program_start"])
        self.decoded.programs += 1
        return self._sorted(offset, rows)

    def _span(self, start: int) -> _Lines:
        """The rows decoded for sequence start `start` (an index into `_starts`)."""
        starts = self._starts
        return self._sequences(int(starts.program[start]), int(starts.anchor[start]), int(starts.opcode[start]))

    @_memo
    @_per_unit(".debug_line", _no_lines)
    def _sequences(self, offset: int, anchor: int, until: int) -> _Lines:
        """Rows of the sequence of the line program at `offset` whose DW_LNE_set_address opcode is at
        `until` (and of any between it and the one before): decoded from the set_address opcode before
        it, `anchor` (-1: the program's first opcode), or, where that is not enough, from the
        program's first opcode. The whole program where the bytes do not show a set_address opcode,
        for VLIW programs, and where the file table is extended by DW_LNE_define_file (rows before
        the walk may have done so)."""
        if until < 0:
            return self._lines(offset)
        header, data, mask = self._header(offset), self._bytes(".debug_line"), self._mask
        start = header["program_start"] if anchor < 0 else anchor
        found = sequence_rows(data, header, self.obj.little, mask, start, until)
        if found is not None and found.first > until:  # the set_address before is in the same sequence
            start = header["program_start"]
            found = sequence_rows(data, header, self.obj.little, mask, start, until)
        if found is None or found.rows.defined or (found.rows.file >= len(self._files(offset))).any():
            return self._lines(offset)
        self._count(found.rows, found.stop - start)
        return self._sorted(offset, found.rows)

    def _count(self, rows: LineRows, walked: int) -> None:
        self.decoded.sequences += int(rows.end.sum())
        self.decoded.rows += len(rows.end)
        self.decoded.walked += walked

    def _sorted(self, offset: int, rows: LineRows) -> _Lines:
        """Rows of the line program at `offset`, each sequence sorted by address (stable: of rows at one
        address the last one wins, as in GNU addr2line); end_sequence rows only bound their sequence."""
        addr, file, line, column, end, defined = rows
        seq = np.concatenate([[0], np.cumsum(end)[:-1]]).astype(np.int64) if len(end) else end.astype(np.int64)
        hi = addr[end]
        if len(end) and not end[-1]:  # a sequence without its end: the program was cut short
            raise DamagedDwarf("line program ends inside a sequence (no DW_LNE_end_sequence after its last rows)")
        keep = ~end
        idx = np.flatnonzero(keep)[np.lexsort((addr[keep], seq[keep]))]  # lexsort is stable
        first = np.searchsorted(seq[idx], np.arange(len(hi) + 1))
        lo, nonempty = hi.copy(), first[:-1] < first[1:]
        lo[nonempty] = addr[idx[first[:-1][nonempty]]]
        files = self._file_paths(offset, defined) if defined else self._files(offset)
        return _Lines(lo, hi, first, addr[idx], line[idx], column[idx], file[idx], files)

    def _rows(self, offset: int) -> LineRows:
        """Rows of the line program at `offset` in program order: dwarfline's decoder on the relocated
        bytes; pyelftools' `get_entries()` only for VLIW programs (op_index)."""
        header, mask = self._header(offset), (1 << (64 if self.obj.is64 else 32)) - 1
        body = self._bytes(".debug_line")[header["program_start"]:header["program_end"]]
        if (rows := line_rows(body, header, self.obj.little, mask)) is not None:
            return rows
        states = [s for e in self._program(offset).get_entries() if (s := e.state) is not None]
        regs = np.array([(s.file, s.line, s.column) for s in states], dtype=np.int64).reshape(-1, 3)
        return LineRows(np.array([s.address & mask for s in states], dtype=np.uint64), regs[:, 0], regs[:, 1],
                        regs[:, 2], np.array([s.end_sequence for s in states], dtype=bool), [])

    @staticmethod
    def _lookup(lines: _Lines, address: int) -> tuple[bool, SourceLocation | None]:
        """(covered, row with the greatest address <= `address` in a sequence covering it); line 0
        rows mean "no line" (GNU addr2line prints `?`)."""
        a = np.uint64(address)
        for s in np.flatnonzero((lines.lo <= a) & (a < lines.hi)):
            r0, r1 = int(lines.first[s]), int(lines.first[s + 1])
            i = r0 + int(np.searchsorted(lines.addr[r0:r1], a, "right")) - 1
            if (line := int(lines.line[i])) == 0:
                return True, None
            return True, SourceLocation(lines.files.path(int(lines.file[i])), line, int(lines.column[i]))
        return False, None

    @_memo
    @_per_unit(".debug_info", _no_subprograms)
    def _subprograms(self, cu_offset: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(low_pc, high_pc, .debug_info offset) of every DW_TAG_subprogram with code in one CU; the
        declarations of those a lookup picks: `_declared`."""
        self._check_references(cu_offset)
        lows, highs = [], []
        offsets, unit = self._subprogram_offsets(cu_offset), self._unit(cu_offset)
        ranges = dies_attributes(unit.data, [offset - cu_offset for offset in offsets],
                                 self._abbreviations(unit.abbrev_offset), *unit.sizes, self.obj.little, _RANGE)
        for offset, read in zip(offsets, ranges):
            at = self._die(offset) if read is None else read
            low = self._address(cu_offset, at["DW_AT_low_pc"])
            hp = at.get("DW_AT_high_pc")
            lows.append(low)
            highs.append(low + 1 if hp is None else self._address(cu_offset, hp) if hp[0] in _ADDR_FORMS
                         else (low + hp[1]) & self._mask)
        return np.array(lows, dtype=np.uint64), np.array(highs, dtype=np.uint64), offsets

    @_memo
    @_per_unit(".debug_info", lambda: None)
    def _declared(self, cu_offset: int, offset: int) -> SourceLocation | None:
        """Where the subprogram DIE at `offset` (in CU `cu_offset`) is declared: its own
        DW_AT_decl_file/line, else those of the declaring DIE its DW_AT_specification /
        DW_AT_abstract_origin chain leads to (out-of-line copies, definitions of declarations)."""
        decl_offset, decl = offset, self._die(offset)
        seen = {offset}
        while "DW_AT_decl_line" not in decl and (ref := next((r for r in _DECL_REFS if r in decl), None)):
            form, value = decl[ref]
            if form not in _REF_FORMS:
                break
            decl_offset = value if form == "DW_FORM_ref_addr" else self._cu_of(decl_offset) + value
            if decl_offset in seen:
                break
            seen.add(decl_offset)
            decl = self._die(decl_offset)
        return self._declaration(decl_offset, decl)

    def _subprogram_offsets(self, cu_offset: int) -> list[int]:
        """.debug_info offsets of the DW_TAG_subprogram DIEs with a DW_AT_low_pc of one CU, in file
        order: `dwarfline.die_offsets` skips the other DIEs by their abbreviations (iterating every DIE
        through pyelftools takes seconds per CU); pyelftools' walk only for a form it does not size."""
        unit = self._unit(cu_offset)
        found = die_offsets(unit.data, unit.die, self._abbreviations(unit.abbrev_offset), lambda decl: decl.tag ==
                            "DW_TAG_subprogram" and any(n == "DW_AT_low_pc" for n, _, _ in decl.specs),
                            *unit.sizes, self.obj.little, lambda decl: decl.tag in _TYPES)
        if found is None:
            return [d.offset for d in self._dwarf.get_CU_at(cu_offset).iter_DIEs()
                    if d.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in d.attributes]
        return [cu_offset + off for off in found]

    @_memo
    def _unit(self, cu_offset: int) -> _Unit:
        """The CU at `cu_offset`, its bytes relocated alone (pyelftools would parse its header from the
        whole relocated section: seconds for a kernel's .debug_info)."""
        size = unit_header(self._raw(".debug_info"), cu_offset, self.obj.little).size
        if cu_offset + size > len(self._raw(".debug_info")):
            raise DamagedDwarf(f"unit at {cu_offset:#x}: unit_length runs past the end of .debug_info")
        data = self._patched_slice(".debug_info", cu_offset, cu_offset + size)
        header = unit_header(data, 0, self.obj.little)
        return _Unit(header.die, data, header.abbrev_offset, (header.address_size, header.offset_size,
                                                               header.version))

    @_memo
    def _abbreviations(self, offset: int) -> dict[int, Abbreviation]:
        return abbreviations(self._bytes(".debug_abbrev"), offset)

    def _die(self, offset: int, abbrev: dict[int, Abbreviation] | None = None) -> dict[str, tuple[str, int | None]]:
        """Attribute name → (form, raw value) of the DIE at .debug_info `offset`: read by `dwarfline`
        (`abbrev`: its unit's abbreviations, if not all of them), by pyelftools for a form dwarfline
        does not size."""
        cu_offset = self._cu_of(offset)
        unit = self._unit(cu_offset)
        found = die_attributes(unit.data, offset - cu_offset, abbrev or self._abbreviations(unit.abbrev_offset),
                               *unit.sizes, self.obj.little)
        if found is None:
            die = self._dwarf.get_CU_at(cu_offset).get_DIE_from_refaddr(offset)
            found = {name: (a.form, a.raw_value) for name, a in die.attributes.items()}
        return found

    def _check_references(self, cu_offset: int) -> None:
        """A CU whose top DIE refers to a debug section (its ranges, address or string offsets table)
        that the file lacks or cannot read is damaged, though a lookup may not read that section."""
        version = self._unit(cu_offset).sizes[2]
        for name, (form, _) in self._top_die(cu_offset).items():
            if (section := _REFERS_TO.get(name) or _REFERS_TO.get(form)) == ".debug_ranges" and version >= 5:
                section = ".debug_rnglists"
            if section is not None and section not in self._index:
                raise DamagedDwarf(f"its {name} refers to {section}, which the file does not have")
            if section is not None:
                self._raw(section)

    @_memo
    def _top_die(self, cu_offset: int) -> dict[str, tuple[str, int | None]]:
        """Attributes of a CU's top DIE, its abbreviation table read only as far as its code (a line
        lookup needs comp_dir of a few hundred CUs, not their whole tables)."""
        unit = self._unit(cu_offset)
        return self._die(cu_offset + unit.die, abbreviations(self._bytes(".debug_abbrev"), unit.abbrev_offset,
                                                             die_code(unit.data, unit.die)))

    def _cu_of(self, offset: int) -> int:
        """The CU holding .debug_info `offset` (one offset per DIE read: a bisect, not a numpy call)."""
        if (k := bisect_right(self._cu_starts, offset) - 1) < 0:
            raise DamagedDwarf(f"DIE at {offset:#x} is in no unit of .debug_info")
        return self._cu_starts[k]

    @cached_property
    def _cu_starts(self) -> list[int]:
        return self._unit_starts(".debug_info").tolist()

    @_memo
    @_per_unit(".debug_info", lambda: None)
    def _stmt_list(self, cu_offset: int) -> int | None:
        """DW_AT_stmt_list of a CU: the line program whose file table its declarations index."""
        stmt = self._top_die(cu_offset).get("DW_AT_stmt_list")
        return None if stmt is None else stmt[1]

    def _address(self, cu_offset: int, value: tuple[str, int | None]) -> int:
        """An address-class attribute value: as is, or through .debug_addr for the DW_FORM_addrx forms
        (from the CU's DW_AT_addr_base, as pyelftools' `get_addr` reads it; pyelftools without one)."""
        form, raw = value
        if form == "DW_FORM_addr":
            return raw
        if (base := self._top_die(cu_offset).get("DW_AT_addr_base")) is None or ".debug_addr" not in self._index:
            return self._dwarf.get_addr(self._dwarf.get_CU_at(cu_offset), raw)
        size, table = self._unit(cu_offset).sizes[0], self._bytes(".debug_addr")
        at = base[1] + raw * size
        if at + size > len(table):
            raise DamagedDwarf(f".debug_addr: address index {raw} past its end")
        return int.from_bytes(table[at:at + size], "little" if self.obj.little else "big")

    @cached_property
    def _mask(self) -> int:
        return (1 << (64 if self.obj.is64 else 32)) - 1

    def _declaration(self, offset: int, at: dict[str, tuple[str, int | None]]) -> SourceLocation | None:
        """File and line the DIE at `offset` declares; files from its own CU's line program."""
        if "DW_AT_decl_line" not in at or "DW_AT_decl_file" not in at:
            return None
        stmt = self._stmt_list(self._cu_of(offset))
        path = self._files(stmt).path(at["DW_AT_decl_file"][1]) if stmt is not None else ""
        column = at["DW_AT_decl_column"][1] if "DW_AT_decl_column" in at else 0
        return SourceLocation(path, at["DW_AT_decl_line"][1], column)
