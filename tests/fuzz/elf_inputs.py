"""The ELF / DWARF family's inputs and mutators.

Inputs are small real builds: the example tree's `vmlinux.o` and linked `vmlinux` (no filler:
~15 KB and ~270 KB, with DWARF 5), a RISC-V object (DWARF 5 with ADD/SUB debug relocations), a
32-bit Arm object (REL tables, DWARF 4) and an arm64 object with zlib-compressed debug sections. They are built once with the real toolchain and cached
under ${REACHLS_CACHE:-~/.cache/reachls}/fuzz-elf-<hash of sources, recipe and toolchain>.

A mutation is plain JSON data naming what it changes by structure — a header field, a field of
the section named so, of symbol N, of relocation N of a table, a field of DWARF unit N, bytes at an
offset of a section, the file's length — so a reproducer stays meaningful as a file under
regressions/elf/ when a newer toolchain moves the bytes. `apply` turns mutations into file bytes
using the pristine file's layout as pyelftools reads it (the test's own reading, not reachls's).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile
from hypothesis import strategies as st

from toolchain import EXAMPLE, built_once, cache_root, uleb128

Mutation = dict[str, Any]

SMALL_C = """
__attribute__((noinline)) static int far_away(int x) { return x * 3 + 1; }
int table[4] = {1, 2, 3, 4};
int caller(int x) { if (x > 2) return far_away(x) + table[x & 3]; return table[0]; }
int other(int y) { return caller(y) - far_away(y); }
"""

#: name → (how the input is built, ELF file name in the cache dir).
OBJECTS = {
    "rv64.o": ("clang", "--target=riscv64-linux-gnu", "-O1", "-g", "-c"),
    "arm.o": ("clang", "--target=armv7a-linux-gnueabihf", "-O1", "-gdwarf-4", "-c"),
    "gz.o": ("clang", "--target=aarch64-linux-gnu", "-O1", "-g", "-gz=zlib", "-c"),
}
INPUTS = ("vmlinux.o", "vmlinux", *OBJECTS)
SCRIPT = "vmlinux.lds"

# Field name → (offset, width) per ELF class: the ELF header, a section header, a symbol, a relocation.
EHDR = {64: {"e_type": (16, 2), "e_machine": (18, 2), "e_phoff": (32, 8), "e_shoff": (40, 8), "e_flags": (48, 4),
             "e_ehsize": (52, 2), "e_phentsize": (54, 2), "e_phnum": (56, 2), "e_shentsize": (58, 2),
             "e_shnum": (60, 2), "e_shstrndx": (62, 2), "ei_class": (4, 1), "ei_data": (5, 1)},
        32: {"e_type": (16, 2), "e_machine": (18, 2), "e_phoff": (28, 4), "e_shoff": (32, 4), "e_flags": (36, 4),
             "e_ehsize": (40, 2), "e_phentsize": (42, 2), "e_phnum": (44, 2), "e_shentsize": (46, 2),
             "e_shnum": (48, 2), "e_shstrndx": (50, 2), "ei_class": (4, 1), "ei_data": (5, 1)}}
SHDR = {64: {"name": (0, 4), "type": (4, 4), "flags": (8, 8), "addr": (16, 8), "offset": (24, 8), "size": (32, 8),
             "link": (40, 4), "info": (44, 4), "addralign": (48, 8), "entsize": (56, 8)},
        32: {"name": (0, 4), "type": (4, 4), "flags": (8, 4), "addr": (12, 4), "offset": (16, 4), "size": (20, 4),
             "link": (24, 4), "info": (28, 4), "addralign": (32, 4), "entsize": (36, 4)}}
SYM = {64: {"name": (0, 4), "info": (4, 1), "other": (5, 1), "shndx": (6, 2), "value": (8, 8), "size": (16, 8)},
       32: {"name": (0, 4), "value": (4, 4), "size": (8, 4), "info": (12, 1), "other": (13, 1), "shndx": (14, 2)}}
# r_info split into its symbol index and type (little-endian files: the type is the low part).
RELOC = {64: {"offset": (0, 8), "type": (8, 4), "sym": (12, 4), "addend": (16, 8)},
         32: {"offset": (0, 4), "type": (4, 1), "sym": (5, 3), "addend": (8, 4)}}
# DWARF unit header fields (32-bit DWARF): offset from the unit's start, width, by version.
LINE_HEADER = {5: {"unit_length": (0, 4), "version": (4, 2), "address_size": (6, 1), "header_length": (8, 4),
                   "minimum_instruction_length": (12, 1), "maximum_operations_per_instruction": (13, 1),
                   "line_base": (15, 1), "line_range": (16, 1), "opcode_base": (17, 1),
                   "directory_format_count": (30, 1)},
               4: {"unit_length": (0, 4), "version": (4, 2), "header_length": (6, 4),
                   "minimum_instruction_length": (10, 1), "maximum_operations_per_instruction": (11, 1),
                   "line_base": (13, 1), "line_range": (14, 1), "opcode_base": (15, 1)}}
INFO_HEADER = {5: {"unit_length": (0, 4), "version": (4, 2), "unit_type": (6, 1), "address_size": (7, 1),
                   "debug_abbrev_offset": (8, 4), "first_abbrev_code": (12, 1)},
               4: {"unit_length": (0, 4), "version": (4, 2), "debug_abbrev_offset": (6, 4), "address_size": (10, 1),
                   "first_abbrev_code": (11, 1)}}
DWARF_SECTIONS = (".debug_line", ".debug_info", ".debug_abbrev", ".debug_str", ".debug_line_str", ".debug_addr",
                  ".debug_str_offsets", ".debug_rnglists", ".debug_ranges")


def cache_dir() -> Path:
    """Where the inputs are built, named by a hash of what they are made from and the toolchain."""
    key = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(p for p in EXAMPLE.rglob("*") if p.is_file() and "out" not in p.relative_to(EXAMPLE).parts):
        key.update(str(path.relative_to(EXAMPLE)).encode() + path.read_bytes())
    for tool in ("clang", "ld.lld"):
        key.update(subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.encode())
    return cache_root() / f"fuzz-elf-{key.hexdigest()[:16]}"


def build() -> Path:
    """The pristine inputs (INPUTS and the example's linker script), built once per cache key."""
    return built_once(cache_dir(), _make_inputs)


def _make_inputs(work: Path) -> None:
    tree = work / "hyp-lto"
    shutil.copytree(EXAMPLE, tree, ignore=shutil.ignore_patterns("out"))
    # The example without its generated filler: the same kernel-like layout, a few KB.
    subprocess.run(["make", "-s", "-C", tree, "VARIANT=safe", "FILLER_FILES_safe=0", "vmlinux.o", "vmlinux"],
                   check=True, capture_output=True)
    built = tree / "out" / "safe"
    for name, source in (("vmlinux.o", "vmlinux.o"), ("vmlinux", "vmlinux"),
                         (SCRIPT, "arch/arm64/kernel/vmlinux.lds")):
        shutil.copyfile(built / source, work / name)
    shutil.rmtree(tree)
    (work / "small.c").write_text(SMALL_C)
    for name, command in OBJECTS.items():
        subprocess.run([*command, work / "small.c", "-o", work / name], check=True, capture_output=True)


@dataclass(frozen=True)
class Unit:
    """One DWARF unit: where it starts in its section and its version."""

    start: int
    version: int


class Layout:
    """Where every mutable field of one pristine ELF file is, as pyelftools reads the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            self.bits = elf.elfclass
            self.shoff, self.shentsize = elf["e_shoff"], elf["e_shentsize"]
            self.sections = [(s.name, s["sh_type"], s["sh_offset"], s["sh_size"], s["sh_entsize"])
                             for s in elf.iter_sections()]
        self.index = {name: i for i, (name, *_) in enumerate(self.sections)}

    def section(self, name: str) -> tuple[int, int, int]:
        """(index, file offset, size) of the section named so."""
        i = self.index[name]
        return i, self.sections[i][2], self.sections[i][3]

    @cached_property
    def symtab(self) -> tuple[int, int, int]:
        """(file offset, entry size, entry count) of the symbol table."""
        _, _, offset, size, entsize = next(s for s in self.sections if s[1] == "SHT_SYMTAB")
        return offset, entsize, size // entsize

    @cached_property
    def relocation_tables(self) -> list[str]:
        return [s[0] for s in self.sections if s[1] in ("SHT_RELA", "SHT_REL")]

    @cached_property
    def debug_sections(self) -> list[str]:
        return [name for name in DWARF_SECTIONS if name in self.index]

    def units(self, name: str) -> list[Unit]:
        """The units of .debug_line or .debug_info, by their unit_length fields."""
        _, offset, size = self.section(name)
        body, found, pos = self.data[offset:offset + size], [], 0
        while pos + 6 <= len(body):
            length = int.from_bytes(body[pos:pos + 4], "little")
            found.append(Unit(pos, int.from_bytes(body[pos + 4:pos + 6], "little")))
            pos += 4 + length
        return found

    def field(self, mutation: Mutation) -> tuple[int, int]:
        """(file offset, width) of the field a mutation sets."""
        where = mutation["where"]
        if where == "header":
            return EHDR[self.bits][mutation["field"]]
        if where == "section":
            at, width = SHDR[self.bits][mutation["field"]]
            return self.shoff + self.index[mutation["section"]] * self.shentsize + at, width
        if where == "symbol":
            offset, entsize, _ = self.symtab
            at, width = SYM[self.bits][mutation["field"]]
            return offset + mutation["symbol"] * entsize + at, width
        if where == "relocation":
            _, offset, _ = self.section(mutation["table"])
            entsize = self.sections[self.index[mutation["table"]]][4]
            at, width = RELOC[self.bits][mutation["field"]]
            return offset + mutation["entry"] * entsize + at, width
        if where == "unit":
            _, offset, _ = self.section(mutation["section"])
            unit = self.units(mutation["section"])[mutation["unit"]]
            headers = LINE_HEADER if mutation["section"] == ".debug_line" else INFO_HEADER
            at, width = headers[5 if unit.version >= 5 else 4][mutation["field"]]
            return offset + unit.start + at, width
        raise ValueError(f"not a field mutation: {mutation}")


def apply(layout: Layout, mutations: list[Mutation]) -> bytes:
    """The pristine file with the mutations made, in order."""
    data = bytearray(layout.data)
    for mutation in mutations:
        if mutation["where"] == "truncate":
            del data[mutation["length"]:]
        elif mutation["where"] == "bytes":
            _, offset, size = layout.section(mutation["section"])
            patch = bytes.fromhex(mutation["data"])
            start = offset + min(mutation["at"], max(size - 1, 0))
            data[start:start + len(patch)] = patch
        else:
            offset, width = layout.field(mutation)
            value = mutation["value"] % (1 << (8 * width))
            if offset + width <= len(data):
                data[offset:offset + width] = value.to_bytes(width, "little")
    return bytes(data)


def _values(width: int, original: int, *counts: int) -> st.SearchStrategy[int]:
    """Values worth trying in a field `width` bytes wide: edges of its range, counts it is measured
    against (and their neighbours), the original nudged or with a bit flipped, anything."""
    top = (1 << (8 * width)) - 1
    edges = [0, 1, 2, top, top - 1, top >> 1, (top >> 1) + 1, 0x7F, 0x80, 0xFF, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF,
             0xFFFFFFFF, 1 << 32, top - 0xFFF]
    near = [c + d for c in counts for d in (-1, 0, 1, 8)]
    return st.one_of(st.sampled_from([v & top for v in edges + near]),
                     st.integers(-16, 16).map(lambda d: (original + d) & top),
                     st.integers(0, 8 * width - 1).map(lambda bit: original ^ (1 << bit)),
                     st.integers(0, top))


def _original(layout: Layout, mutation: Mutation) -> int:
    offset, width = layout.field(mutation)
    return int.from_bytes(layout.data[offset:offset + width], "little")


@st.composite
def _field(draw: st.DrawFn, layout: Layout, mutation: Mutation, *counts: int) -> Mutation:
    _, width = layout.field(mutation)
    return {**mutation, "value": draw(_values(width, _original(layout, mutation), *counts))}


def _relocation_field(layout: Layout, table: str, *counts: int) -> st.SearchStrategy[Mutation]:
    """A field of one relocation of `table`: its offset, type, symbol index or (RELA) addend."""
    _, sh_type, _, size, entsize = layout.sections[layout.index[table]]
    fields = [f for f in sorted(RELOC[layout.bits]) if f != "addend" or sh_type == "SHT_RELA"]
    return st.tuples(st.integers(0, max(size // entsize - 1, 0)), st.sampled_from(fields)).flatmap(
        lambda pick: _field(layout, {"where": "relocation", "table": table, "entry": pick[0], "field": pick[1]},
                            *counts, size))


def elf_mutation(layout: Layout) -> st.SearchStrategy[Mutation]:
    """One change to the ELF structure: a header, section header, symbol or relocation field, or a cut."""
    size, sections = len(layout.data), len(layout.sections)
    _, _, symbols = layout.symtab
    names = [name for name, *_ in layout.sections]
    header = st.sampled_from(sorted(EHDR[layout.bits])).flatmap(
        lambda name: _field(layout, {"where": "header", "field": name}, sections, size))
    section = st.tuples(st.sampled_from(names), st.sampled_from(sorted(SHDR[layout.bits]))).flatmap(
        lambda pick: _field(layout, {"where": "section", "section": pick[0], "field": pick[1]}, sections, symbols,
                            size, size - layout.sections[layout.index[pick[0]]][2]))
    symbol = st.tuples(st.integers(0, symbols - 1), st.sampled_from(sorted(SYM[layout.bits]))).flatmap(
        lambda pick: _field(layout, {"where": "symbol", "symbol": pick[0], "field": pick[1]}, sections, symbols))
    relocations = [st.sampled_from(layout.relocation_tables).flatmap(
        lambda table: _relocation_field(layout, table, symbols, sections))] if layout.relocation_tables else []
    truncate = st.integers(0, size - 1).map(lambda length: {"where": "truncate", "length": length})
    return st.one_of(header, section, symbol, truncate, *relocations)


def dwarf_mutation(layout: Layout) -> st.SearchStrategy[Mutation]:
    """One change to the debug sections: bytes flipped or overwritten (huge LEB128s among them), a unit
    header field (zero line_range, lengths past the end, ...), a section cut short, a debug relocation."""
    sections = layout.debug_sections
    size_of = {name: layout.section(name)[2] for name in sections}
    patch = st.one_of(st.binary(min_size=1, max_size=8),
                      st.integers(0, 1 << 70).map(uleb128),
                      st.integers(1, 40).map(lambda n: b"\xff" * n + b"\x01"),
                      st.sampled_from([b"\0", b"\0\0\0\0", b"\xff\xff\xff\xff", b"\xff\xff\xff\xff\xff\xff\xff\x7f"]))
    raw = st.sampled_from(sections).flatmap(lambda name: st.fixed_dictionaries(
        {"where": st.just("bytes"), "section": st.just(name), "at": st.integers(0, max(size_of[name] - 1, 0)),
         "data": patch.map(bytes.hex)}))
    unit_choices = [(name, k, field) for name in (".debug_line", ".debug_info") if name in sections
                    for k, unit in enumerate(layout.units(name))
                    for field in (LINE_HEADER if name == ".debug_line" else INFO_HEADER)[5 if unit.version >= 5 else 4]]
    unit = st.sampled_from(unit_choices).flatmap(lambda pick: _field(
        layout, {"where": "unit", "section": pick[0], "unit": pick[1], "field": pick[2]}, size_of[pick[0]]))
    cut = st.sampled_from(sections).flatmap(lambda name: st.integers(0, size_of[name]).map(
        lambda size: {"where": "section", "section": name, "field": "size", "value": size}))
    debug_tables = [name for name in layout.relocation_tables if ".debug_" in name]
    relocations = [st.sampled_from(debug_tables).flatmap(
        lambda table: _relocation_field(layout, table, layout.symtab[2], max(size_of.values())))] if debug_tables else []
    return st.one_of(raw, raw, unit, cut, *relocations)
