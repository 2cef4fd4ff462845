"""ELF input: validated structure from pyelftools, bulk tables (sections, symbols, relocations) as numpy arrays.

A kernel's `vmlinux.o` has tens of thousands of sections and millions of relocations; one
Python object per entry would take minutes and gigabytes. pyelftools checks the file header;
the section header table and symbol table are read as structured numpy arrays straight from the
file (one `frombuffer` each), and the relocation tables of allocated sections all at once, in a
few long reads (`relocation_rows`). Relocation tables of debug sections are never read here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import ReachlsError

SHT_SYMTAB = 2
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHT_SYMTAB_SHNDX = 18
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_MERGE = 0x10
SHF_STRINGS = 0x20
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF
STT_NOTYPE = 0
STT_FUNC = 2
STT_SECTION = 3
STB_LOCAL = 0
STB_WEAK = 2

#: `ElfInput.symbol_sections` of symbols outside every section: the reserved index negated, so
#: that it can never be taken for a real index (which passes 0xff00 under extended numbering).
#: SHN_UNDEF stays 0: section 0 is never a place.
SECTION_ABS = -SHN_ABS
SECTION_COMMON = -SHN_COMMON

#: Prefixes a build puts before every symbol of some objects, mapping symbols included: arm64 KVM
#: renames its nVHE objects' symbols with `objcopy --prefix-symbols=__kvm_nvhe_` (the kernel's
#: kallsyms skips `__kvm_nvhe_$x` as it skips `$x`).
MAPPING_PREFIXES = (b"", b"__kvm_nvhe_")

#: Addresses are 64-bit and wrap as the linker's arithmetic does.
U64 = (1 << 64) - 1

ET_REL = 1
ET_EXEC = 2
ET_DYN = 3


def _dtypes(is64: bool, little: bool) -> dict[str, np.dtype]:
    """Structured dtypes of the ELF tables for one class and byte order."""
    e = "<" if little else ">"
    word = f"{e}u8" if is64 else f"{e}u4"
    if is64:
        shdr = [("name", f"{e}u4"), ("type", f"{e}u4"), ("flags", word), ("addr", word),
                ("offset", word), ("size", word), ("link", f"{e}u4"), ("info", f"{e}u4"),
                ("addralign", word), ("entsize", word)]
        sym = [("name", f"{e}u4"), ("info", "u1"), ("other", "u1"), ("shndx", f"{e}u2"),
               ("value", word), ("size", word)]
        rela = [("offset", word), ("info", word), ("addend", f"{e}i8")]
        rel = [("offset", word), ("info", word)]
    else:
        shdr = [("name", f"{e}u4"), ("type", f"{e}u4"), ("flags", word), ("addr", word),
                ("offset", word), ("size", word), ("link", f"{e}u4"), ("info", f"{e}u4"),
                ("addralign", word), ("entsize", word)]
        sym = [("name", f"{e}u4"), ("value", word), ("size", word), ("info", "u1"),
               ("other", "u1"), ("shndx", f"{e}u2")]
        rela = [("offset", word), ("info", word), ("addend", f"{e}i4")]
        rel = [("offset", word), ("info", word)]
    return {"shdr": np.dtype(shdr), "sym": np.dtype(sym), "rela": np.dtype(rela), "rel": np.dtype(rel)}


def strings_at(table: bytes, offsets: np.ndarray) -> list[str]:
    """The NUL-terminated strings at `offsets` of a string table, all at once: the NULs are found
    with one array search and each string cut by a slice (an ASCII table, the rule, decoded once).
    An offset past the table is the empty string; a string without its NUL ends with the table."""
    nuls = np.flatnonzero(np.frombuffer(table, dtype=np.uint8) == 0)
    starts = np.minimum(offsets.astype(np.int64), len(table))
    ends = np.append(nuls, len(table))[np.searchsorted(nuls, starts)]
    if table.isascii():
        text = table.decode("ascii")
        return [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
    return [table[a:b].decode("utf-8", "replace") for a, b in zip(starts.tolist(), ends.tolist())]


#: Tables this close in the file are read together (`_FileRuns`): one read instead of thousands, for
#: the price of the bytes between them (in a `vmlinux.o`, the code each relocation table follows).
RUN_GAP = 1 << 20


class _FileRuns:
    """Ranges of the file (relocation tables) read in a few long runs into one buffer, addressed as
    words of the ELF class: every table of a file located and read with array operations, not one
    read per table. A run lands in the buffer at the same offset modulo the word width as in the
    file, so entries keep their alignment and one word view per residue serves them all."""

    def __init__(self, elf: "ElfInput", starts: np.ndarray, ends: np.ndarray, what: str) -> None:
        self.width = 8 if elf.is64 else 4
        self.what, self.path = what, str(elf.path)
        if len(beyond := np.flatnonzero(ends > elf.size)):
            first = int(beyond[0])
            elf._slice(int(starts[first]), int(ends[first] - starts[first]), what)  # raises: truncated
        order = np.argsort(starts, kind="stable")
        begin, end = starts[order], ends[order]
        opens_run = np.r_[True, begin[1:] > np.maximum.accumulate(end)[:-1] + RUN_GAP] if len(begin) else begin > 0
        firsts = np.flatnonzero(opens_run)
        run_start = begin[firsts]
        run_end = np.maximum.reduceat(end, firsts) if len(firsts) else run_start
        slot_size = run_end - run_start + self.width
        slot = np.cumsum(slot_size) - slot_size
        placed = slot + (run_start - slot) % self.width
        self.buffer = np.empty(int(slot_size.sum()), dtype=np.uint8)
        window = memoryview(self.buffer)
        for file_at, length, at in zip(run_start.tolist(), (run_end - run_start).tolist(), placed.tolist()):
            elf._read_into(window[at:at + length], file_at, what)
        run_of = np.empty(len(starts), dtype=np.int64)
        run_of[order] = np.cumsum(opens_run) - 1
        self._shift = (placed - run_start)[run_of]
        dtype = np.dtype(f"{'<' if elf.little else '>'}u{self.width}")
        self._views = [self.buffer[r:r + (len(self.buffer) - r) // self.width * self.width].view(dtype)
                       for r in range(self.width)]

    def position(self, starts: np.ndarray) -> np.ndarray:
        """Buffer positions of the ranges' starts, in the order they were given."""
        return starts + self._shift

    def entries(self, starts: np.ndarray, lengths: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """The ranges at `starts` (`lengths` bytes, whole `dtype` entries each) as one array of
        entries, and the order of the ranges in it (by position). The words inside the ranges are
        picked out of the buffer with one mask (a mark at each range's ends, summed), never range
        by range; a range off the word alignment (never in a well-formed file) is picked with the
        others of its residue."""
        at = self.position(starts)
        order, picked = [], []
        for residue in np.unique(at % self.width).tolist():
            ranges = np.flatnonzero(at % self.width == residue)
            ranges = ranges[np.argsort(at[ranges], kind="stable")]
            view = self._views[residue]
            marks = np.zeros(len(view) + 1, dtype=np.int8)
            np.add.at(marks, (at[ranges] - residue) // self.width, 1)
            np.add.at(marks, (at[ranges] + lengths[ranges] - residue) // self.width, -1)
            order.append(ranges)
            picked.append(view[np.cumsum(marks[:-1], dtype=np.int8) > 0])
        words = np.concatenate(picked) if len(picked) != 1 else picked[0]
        if len(words) * self.width != int(lengths.sum()):
            raise ReachlsError(f"{self.what}s overlap in the file", self.path)
        return np.concatenate(order) if order else np.zeros(0, dtype=np.int64), words.view(dtype)


class InputSection(NamedTuple):
    """One section header of the file, in file order (index = section header index). A tuple:
    an allmodconfig `vmlinux.o` has hundreds of thousands."""

    index: int
    name: str
    sh_type: int
    flags: int
    addr: int
    offset: int
    size: int
    align: int
    link: int
    info: int
    entsize: int = 0

    @property
    def is_alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)

    @property
    def merge_kind(self) -> tuple[int, int, int] | None:
        """What ld.lld merges allocated SHF_MERGE sections by (flags, entry size, alignment of strings):
        all inputs of one kind in an output section become one synthetic section. None: not merged."""
        if not (self.flags & SHF_MERGE and self.is_alloc and self.entsize and self.size):
            return None
        return self.flags, self.entsize, self.align if self.flags & SHF_STRINGS else 0

    @property
    def is_code(self) -> bool:
        return bool(self.flags & SHF_ALLOC) and bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True)
class Relocations:
    """The relocations applying to one section, as parallel numpy arrays (no per-entry objects)."""

    section: int
    offset: np.ndarray
    sym: np.ndarray
    type: np.ndarray
    addend: np.ndarray
    explicit_addend: bool
    #: Entries whose type is composed with further types (`Architecture.relocation_info`); None: none.
    composed: np.ndarray | None = None


@dataclass(frozen=True)
class RelocationRows:
    """Chosen relocations of many tables at once, as parallel numpy arrays in file order of their
    tables: each row's site section and whether its table is SHT_RELA go with it."""

    section: np.ndarray
    offset: np.ndarray
    sym: np.ndarray
    type: np.ndarray
    addend: np.ndarray
    explicit_addend: np.ndarray
    composed: np.ndarray

    DTYPES: ClassVar[dict[str, type]] = {"section": np.int64, "offset": np.int64, "sym": np.int64, "type": np.int64,
                                         "addend": np.int64, "explicit_addend": bool, "composed": bool}


#: (r_info words, ELF64, little-endian) -> (symbol indices, relocation types, composed mask or None):
#: how an architecture packs r_info where it is not the standard split (`Architecture.relocation_info`).
RelocationInfo = Callable[[np.ndarray, bool, bool], tuple[np.ndarray, np.ndarray, "np.ndarray | None"]]


class ElfInput:
    """An ELF file opened for reach analysis; every problem with it is a `ReachlsError`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise ReachlsError(f"cannot open: {exc.strerror}", str(self.path)) from None
        size = self.path.stat().st_size
        if size < 16:
            raise ReachlsError("not an ELF file (too short for an ELF header)", str(self.path))
        if os.pread(self._file.fileno(), 4, 0) != b"\x7fELF":
            raise ReachlsError("not an ELF file (no ELF magic)", str(self.path))
        try:
            self.elffile = ELFFile(self._file)
            header = self.elffile.header
        except (ELFError, ValueError, OSError) as exc:
            raise ReachlsError(f"unreadable ELF header: {exc}", str(self.path)) from None
        except Exception as exc:  # construct raises its own error types on truncated headers
            raise ReachlsError(f"truncated ELF header ({type(exc).__name__})", str(self.path)) from None
        self.machine: str = header["e_machine"]
        self.elf_type: int = {"ET_REL": ET_REL, "ET_EXEC": ET_EXEC, "ET_DYN": ET_DYN}.get(header["e_type"], 0)
        self.is64 = self.elffile.elfclass == 64
        self.relocation_info: RelocationInfo | None = None  # set by `arch.architecture_of`
        self._last_rows: tuple[bytes, Future[RelocationRows]] | None = None
        self.little = self.elffile.little_endian
        self._dt = _dtypes(self.is64, self.little)
        self.size = size
        self.sections = self._read_sections(header)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ElfInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_relocatable(self) -> bool:
        return self.elf_type == ET_REL

    def _slice(self, offset: int, length: int, what: str) -> bytes:
        """Bytes of the file, read on demand (only the tables a scan needs are ever read)."""
        if offset + length > self.size:
            raise ReachlsError(
                f"truncated: {what} ends at byte {offset + length:#x}, file has {self.size:#x} bytes "
                "(a half-written ELF? the linker writes in place)",
                str(self.path),
            )
        return os.pread(self._file.fileno(), length, offset)

    def _read_into(self, window: memoryview, offset: int, what: str) -> None:
        """Fill `window` from the file at `offset`: the bulk read, without an intermediate copy."""
        if os.preadv(self._file.fileno(), [window], offset) != len(window):
            raise ReachlsError(f"truncated: {what} at byte {offset:#x} was cut short while being read (the file "
                               "is being rewritten?)", str(self.path))

    def _table(self, offset: int, length: int, dtype: np.dtype, what: str) -> np.ndarray:
        usable = length - length % dtype.itemsize
        return np.frombuffer(self._slice(offset, usable, what), dtype=dtype)

    def _read_sections(self, header: dict) -> list[InputSection]:
        shoff, shnum, shentsize = header["e_shoff"], header["e_shnum"], header["e_shentsize"]
        if shoff == 0:
            self.section_headers = np.zeros(0, dtype=self._dt["shdr"])
            return []
        dtype = self._dt["shdr"]
        if shentsize != dtype.itemsize:
            raise ReachlsError(f"unexpected section header size {shentsize}", str(self.path))
        first = self._table(shoff, dtype.itemsize, dtype, "section header table")
        if shnum == 0:  # more than 0xff00 sections: the real count sits in section 0's sh_size
            shnum = int(first["size"][0])
        table = self._table(shoff, shnum * dtype.itemsize, dtype, "section header table")
        self.section_headers = table
        shstrndx = header["e_shstrndx"]
        if shstrndx == SHN_XINDEX:  # the section name table's index did not fit: section 0's sh_link
            shstrndx = int(first["link"][0])
        if not 0 < shstrndx < shnum:
            raise ReachlsError(f"section name table is section {shstrndx}, the file has {shnum} sections",
                               str(self.path))
        names_hdr = table[shstrndx]
        names = self._slice(int(names_hdr["offset"]), int(names_hdr["size"]), "section name table")
        limit = np.uint64(U64 if self.is64 else 0xFFFFFFFF)
        addr, size = table["addr"].astype(np.uint64), table["size"].astype(np.uint64)
        past = ((table["flags"] & SHF_ALLOC) != 0) & (size > 0) & (size - np.uint64(1) > limit - addr)
        section_names = strings_at(names, table["name"])
        if past.any():
            i = int(np.argmax(past))
            raise ReachlsError(f"section {i} ({section_names[i]}) at {int(addr[i]):#x} of {int(size[i]):#x} bytes ends "
                               f"past the {64 if self.is64 else 32}-bit address space", str(self.path))
        return list(map(InputSection, range(len(table)), section_names, *(
            table[field].tolist() for field in ("type", "flags", "addr", "offset", "size")),
            np.maximum(table["addralign"], 1).tolist(), table["link"].tolist(), table["info"].tolist(),
            table["entsize"].tolist()))

    def section(self, index: int, named_by: str) -> InputSection:
        """Section `index` as a field of the file names it (sh_link, sh_info, st_shndx): the one place
        such an index is checked against the section header table."""
        if not 0 <= index < len(self.sections):
            raise ReachlsError(f"{named_by} names section {index}, the file has {len(self.sections)}",
                               str(self.path))
        return self.sections[index]

    def section_data(self, index: int) -> bytes:
        """The bytes of one section (empty for NOBITS)."""
        sec = self.section(index, "a reference to a section")
        if sec.sh_type == SHT_NOBITS:
            return b""
        return self._slice(sec.offset, sec.size, f"section {sec.name}")

    @cached_property
    def _symtab(self) -> InputSection | None:
        return next((s for s in self.sections if s.sh_type == SHT_SYMTAB), None)

    @cached_property
    def symbols(self) -> np.ndarray:
        """The static symbol table as one structured array (fields name, info, other, shndx, value, size)."""
        symtab = self._symtab
        if symtab is None:
            return np.zeros(0, dtype=self._dt["sym"])
        return self._table(symtab.offset, symtab.size, self._dt["sym"], "symbol table")

    @cached_property
    def symbol_string_table(self) -> bytes:
        symtab = self._symtab
        if symtab is None:
            return b""
        return self.section_data(self.section(symtab.link, f"the sh_link of {symtab.name}").index)

    @cached_property
    def symbol_sections(self) -> np.ndarray:
        """The section index of every symbol (int64), the one place extended numbering is resolved.

        With more than 0xff00 sections (`-ffunction-sections` kernels: hundreds of thousands) a
        symbol's st_shndx is SHN_XINDEX and its real index sits in `.symtab_shndx`
        (SHT_SYMTAB_SHNDX, linked to the symbol table). Undefined symbols are 0 (SHN_UNDEF),
        absolute and common ones SECTION_ABS / SECTION_COMMON, any other reserved index its
        negation; every other value is a real section of this file."""
        raw = self.symbols["shndx"].astype(np.int64)
        extended = raw == SHN_XINDEX
        sections = np.where(raw >= SHN_LORESERVE, -raw, raw)
        if extended.any():
            symtab = self._symtab
            table = next((s for s in self.sections if s.sh_type == SHT_SYMTAB_SHNDX and s.link == symtab.index), None)
            if table is None:
                raise ReachlsError("symbols with st_shndx SHN_XINDEX but no SHT_SYMTAB_SHNDX section "
                                   "for the symbol table", str(self.path))
            real = self._table(table.offset, table.size, np.dtype(("<" if self.little else ">") + "u4"),
                               f"section {table.name}")
            if len(real) < len(raw):
                raise ReachlsError(f"{table.name} holds {len(real)} entries for {len(raw)} symbols", str(self.path))
            sections = np.where(extended, real[:len(raw)].astype(np.int64), sections)
        if len(sections) and (beyond := int(sections.max())) >= len(self.sections):
            raise ReachlsError(f"a symbol names section {beyond}, the file has {len(self.sections)}", str(self.path))
        return sections

    def symbol_name(self, index: int) -> str:
        """Name of symbol `index`; section symbols are named after their section."""
        sym = self.symbols[index]
        if sym["info"] & 0xF == STT_SECTION:
            section = int(self.symbol_sections[index])
            return self.sections[section].name if section > 0 else ""
        start = int(sym["name"])
        end = self.symbol_string_table.find(b"\0", start)
        return self.symbol_string_table[start:end].decode("utf-8", "replace")

    def symbol_names(self, indices: np.ndarray) -> list[str]:
        """`symbol_name` of many symbols at once."""
        names = strings_at(self.symbol_string_table, self.symbols["name"][indices])
        for k in np.flatnonzero((self.symbols["info"][indices] & 0xF) == STT_SECTION).tolist():
            section = int(self.symbol_sections[indices[k]])
            names[k] = self.sections[section].name if section > 0 else ""
        return names

    def relocation_sections(self) -> dict[int, InputSection]:
        """Relocation sections keyed by the section they apply to (checked to be a section of the
        file); built once, from the header table as a whole (the dict is shared: read, never change it)."""
        return self._relocation_sections

    @cached_property
    def _relocation_sections(self) -> dict[int, InputSection]:
        tables, site = self._relocation_tables
        return dict(zip(site.tolist(), map(self.sections.__getitem__, tables.tolist())))

    @cached_property
    def _relocation_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(section index of each relocation table of the symbol table, the section it applies to),
        the sh_info of each checked to be a section of the file."""
        headers = self.section_headers
        symtab = self._symtab.index if self._symtab else -1
        tables = np.flatnonzero(((headers["type"] == SHT_RELA) | (headers["type"] == SHT_REL))
                                & (headers["link"] == symtab))
        site = headers["info"][tables].astype(np.int64)
        if len(site) and (beyond := int(site.max())) >= len(headers):
            self.section(beyond, f"the sh_info of {self.sections[int(tables[site.argmax()])].name}")
        return tables, site

    def relocations(self, rel_section: InputSection) -> Relocations:
        """One relocation table as arrays; `sym` and `type` split out of r_info for this ELF class."""
        explicit = rel_section.sh_type == SHT_RELA
        table = self._table(rel_section.offset, rel_section.size, self._dt["rela" if explicit else "rel"],
                            f"relocation section {rel_section.name}")
        sym, rtype, composed = self._split_info(table["info"])
        addend = table["addend"].astype(np.int64) if explicit else np.zeros(len(table), dtype=np.int64)
        return Relocations(rel_section.info, table["offset"].astype(np.int64), sym, rtype, addend, explicit, composed)

    def relocation_rows(self, types: np.ndarray) -> RelocationRows:
        """The relocations of `types` that apply to allocated sections, from every table at once.

        A `vmlinux.o` of an allmodconfig build has hundreds of thousands of relocation tables: they
        are read in a few large runs of the file (tables a short gap apart share one read), and
        their entries located, split and filtered as whole arrays, never table by table. The last
        read is kept: the layout (counting GOT slots) and the analysis ask for the same types."""
        if self._last_rows is None or self._last_rows[0] != np.asarray(types).tobytes():
            self._read_into_future(self._start_read(types), types)
        return self._last_rows[1].result()

    def read_relocation_rows_ahead(self, types: np.ndarray) -> None:
        """Start `relocation_rows(types)` on a thread of its own, which it then waits for. The
        reads and array operations release the GIL, so on a second core they run beside what
        the caller does meanwhile in Python (the model's layout of hundreds of thousands of
        sections, or waiting for the relink); an error is raised by `relocation_rows`."""
        threading.Thread(target=self._read_into_future, args=(self._start_read(types), types),
                         name="reachls-relocations", daemon=True).start()

    def _start_read(self, types: np.ndarray) -> Future[RelocationRows]:
        """The rows of `types`, to come: kept as the last read from now on."""
        read: Future[RelocationRows] = Future()
        self._last_rows = (np.asarray(types).tobytes(), read)
        return read

    def _read_into_future(self, read: Future[RelocationRows], types: np.ndarray) -> None:
        try:
            read.set_result(self._read_relocation_rows(types))
        except BaseException as exc:  # raised again where the rows are asked for
            read.set_exception(exc)

    def _read_relocation_rows(self, types: np.ndarray) -> RelocationRows:
        headers = self.section_headers
        tables, site = self._relocation_tables
        chosen = (headers["flags"][site] & SHF_ALLOC) != 0
        tables, site = tables[chosen], site[chosen]
        explicit = headers["type"][tables] == SHT_RELA
        entry = np.where(explicit, self._dt["rela"].itemsize, self._dt["rel"].itemsize)
        count = (headers["size"][tables] // entry).astype(np.int64)
        start = headers["offset"][tables].astype(np.int64)
        runs = _FileRuns(self, start, start + count * entry, "relocation section")
        by_kind = {is_rela: (of_kind, *runs.entries(start[of_kind], (count * entry)[of_kind],
                                                     self._dt["rela" if is_rela else "rel"]))
                   for is_rela in (True, False) if len(of_kind := np.flatnonzero(explicit == is_rela))}
        del runs  # the runs' bytes (the code between the tables too): only the entries are kept
        parts = []
        for is_rela, (of_kind, order, table) in by_kind.items():
            sym, rtype, composed = self._split_info(table["info"])
            wanted = np.zeros(int(types.max(initial=0)) + 2, dtype=bool)  # by type; the last: every other type
            wanted[types] = True
            keep = wanted[np.minimum(rtype, len(wanted) - 1)]
            kept = int(keep.sum())
            parts.append(RelocationRows(
                np.repeat(site[of_kind][order], count[of_kind][order])[keep], table["offset"][keep].astype(np.int64),
                sym[keep], rtype[keep], table["addend"][keep].astype(np.int64) if is_rela else np.zeros(kept, np.int64),
                np.full(kept, is_rela), composed[keep] if composed is not None else np.zeros(kept, dtype=bool)))
        if len(parts) == 1:
            return parts[0]
        return RelocationRows(*(np.concatenate([getattr(part, name) for part in parts] or [np.zeros(0, dtype)])
                                for name, dtype in RelocationRows.DTYPES.items()))

    def words_at(self, sections: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The 4 bytes at each (section, offset) as one word in the file's byte order, all at once:
        instruction fields are read from it (16-bit units read two). Bytes past a section's end
        (and every byte of a NOBITS section) read as zero."""
        headers = self.section_headers
        size = np.where(headers["type"][sections] == SHT_NOBITS, 0, headers["size"][sections]).astype(np.int64)
        offsets = np.clip(offsets, 0, size)
        start = headers["offset"][sections].astype(np.int64) + offsets
        runs = _FileRuns(self, start, start + np.minimum(size - offsets, 4), f"sections of {self.path.name}")
        at = runs.position(start)
        word = np.zeros(len(start), dtype=np.uint32)
        for k in range(4):
            present = offsets + k < size
            shift = 8 * k if self.little else 24 - 8 * k
            word[present] |= runs.buffer[at[present] + k].astype(np.uint32) << np.uint32(shift)
        return word

    def _split_info(self, info: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(symbol index, type, composed mask or None) of each r_info word, for this file's class
        and architecture (`relocation_info`)."""
        if self.relocation_info is not None:
            return self.relocation_info(info.astype(np.uint64), self.is64, self.little)
        if self.is64:
            return (info >> np.uint64(32)).astype(np.int64), (info & np.uint64(0xFFFFFFFF)).astype(np.int64), None
        return (info >> np.uint32(8)).astype(np.int64), (info & np.uint32(0xFF)).astype(np.int64), None

    def alloc_sections_by_name(self) -> dict[str, list[int]]:
        """Allocated section indices per name, in file order (a fresh dict): linker maps name input
        sections, and several of one name are placed in the order they appear in the file."""
        by_name: dict[str, list[int]] = {}
        for index in np.flatnonzero(self.section_headers["flags"] & SHF_ALLOC).tolist():
            by_name.setdefault(self.sections[index].name, []).append(index)
        return by_name

    def code_labels(self) -> list[CodeLabel]:
        """Every label defined in an executable section: function symbols and the untyped labels
        assembly entry points get (`SYM_CODE_START`, `SYM_INNER_LABEL`), not mapping symbols."""
        syms = self.symbols
        sections = self.symbol_sections
        executable = np.append((self.section_headers["flags"] & SHF_EXECINSTR) != 0, False)
        kind = syms["info"] & 0xF
        defined = sections > 0
        in_code = defined & executable[np.where(defined, sections, -1)]
        mask = (kind == STT_FUNC) | ((kind == STT_NOTYPE) & in_code & (syms["name"] != 0))
        rows = np.flatnonzero(mask & defined & (self.mapping_letters == 0))
        return list(map(CodeLabel, self.symbol_names(rows), sections[rows].tolist(), syms["value"][rows].tolist(),
                        syms["size"][rows].tolist(), (kind[rows] == STT_FUNC).tolist()))

    @cached_property
    def mapping_letters(self) -> np.ndarray:
        """Per symbol, the letter of a mapping symbol (`$x`, `$d`, `$a`, `$t`, `$x.42` → ord of the
        letter, also after a `MAPPING_PREFIXES` prefix), 0 for every other symbol: they mark what
        follows as code or data, not a label. One pass per prefix over the whole table."""
        strtab = np.frombuffer(self.symbol_string_table or b"\0", dtype=np.uint8)
        last = len(strtab) - 1
        name = self.symbols["name"].astype(np.int64)
        letters = np.zeros(len(name), dtype=np.uint8)
        for prefix in MAPPING_PREFIXES:
            start = name + len(prefix)
            prefixed = np.ones(len(name), dtype=bool)
            for k, byte in enumerate(prefix):
                prefixed &= strtab[np.minimum(name + k, last)] == byte
            c0, c1, c2 = (strtab[np.minimum(start + k, last)] for k in range(3))
            mapping = (prefixed & (c0 == ord("$")) & (c1 >= ord("a")) & (c1 <= ord("z"))
                       & ((c2 == 0) | (c2 == ord("."))) & (start + 2 <= last))
            letters = np.where(mapping, c1, letters).astype(np.uint8)
        return letters


class CodeLabel(NamedTuple):
    """A label in an executable section; `is_function` tells STT_FUNC from an untyped assembly label."""

    name: str
    section: int
    value: int
    size: int
    is_function: bool
