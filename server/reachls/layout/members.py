"""The objects a GNU `ld -r` read to make `vmlinux.o`, and where each object's piece sits in it.

A GCC kernel's final link reads those objects (`vmlinux.a`), not `vmlinux.o`: each object's
section is an input section of its own, aligned on its own, where `ld -r` had concatenated the
sections of one name into one section aligned like its most aligned member. The model engine
places the objects' pieces, so it needs them without running a linker.

Which archive members `ld -r` took is worked out the way GNU ld decides it, by symbol resolution
over each archive's index: `--whole-archive` takes every member in order; otherwise a member is
loaded when the index names it for a symbol still undefined (a weak reference pulls nothing),
the index is rescanned until nothing more loads, and a `--start-group` repeats its archives until
none loads anything. That is exact where STT_FILE symbols are not: they hold source basenames,
which repeat across directories (and are absent from objects built without them). The result is
checked: the pieces, concatenated per name in input order with each one's alignment, must give
`vmlinux.o`'s section sizes, or the caller is told why they do not.
"""

from __future__ import annotations

import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..elf import SHF_ALLOC, SHN_UNDEF, STB_LOCAL, STB_WEAK, ElfInput
from ..errors import ReachlsError
from .linkopts import LinkCommand

_AR_HEADER = 60
_LONG_NAME = re.compile(r"/(\d+)")
_DEFINED, _UNDEFINED, _UNDEFINED_WEAK = 0, 1, 2


@dataclass(frozen=True)
class ObjectSection:
    """One allocated section of one object, as the final link reads it."""

    object_rank: int  # the object's position in the link's input order
    index: int  # the section's index in its object: an object's sections go in this order
    name: str
    flags: int
    sh_type: int
    align: int
    size: int
    piece_of: int | None = None  # where `ld -r` put it inside vmlinux.o's section of the same name


@dataclass(frozen=True)
class _Archive:
    path: Path
    members: list[Path]  # in archive order
    index: list[tuple[str, int]]  # (symbol, member number), in the index's order


def _regular(path: Path) -> Path:
    """`path`, once known to be a regular file: an archive names its members, which may be anything
    (opening a FIFO blocks)."""
    try:
        is_regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as exc:
        raise ReachlsError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    except ValueError:  # a NUL byte in the name
        raise ReachlsError("not a file name", repr(str(path))) from None
    if not is_regular:
        raise ReachlsError("not a regular file", str(path))
    return path


def _read_archive(path: Path) -> _Archive:
    """A thin GNU archive (kbuild's `ar cDPrST`): its members are paths beside it, not contents."""
    try:
        data = _regular(path).read_bytes()
    except OSError as exc:
        raise ReachlsError(f"cannot read the archive: {exc.strerror}", str(path)) from None
    if not data.startswith(b"!<thin>\n"):
        raise ReachlsError("not a thin archive (the model reads kbuild's thin archives only)", str(path))
    try:
        return _parse_thin_archive(path, data)
    except (ValueError, struct.error) as exc:  # a size that is not a number, a name not found or not UTF-8
        raise ReachlsError(f"malformed archive: {exc}", str(path)) from None


def _parse_thin_archive(path: Path, data: bytes) -> _Archive:
    position, long_names, raw_index, raw_index_width = 8, b"", b"", 4
    members: list[Path] = []
    member_at: dict[int, int] = {}
    while position + _AR_HEADER <= len(data):
        header = data[position:position + _AR_HEADER]
        name, size = header[:16].decode("latin-1").rstrip(), int(header[48:58])
        body = position + _AR_HEADER
        if name in ("/", "/SYM64/"):
            raw_index, raw_index_width = data[body:body + size], 8 if name == "/SYM64/" else 4
        elif name == "//":
            long_names = data[body:body + size]
        else:
            if long_name := _LONG_NAME.match(name):  # `/offset`, what follows the digits is not the name
                start = int(long_name.group(1))
                name = long_names[start:long_names.index(b"/\n", start)].decode()
            member_at[position] = len(members)
            members.append(path.parent / name.removesuffix("/"))
            position = body  # a thin member's contents live in its own file
            continue
        position = body + size + (size & 1)
    return _Archive(path, members, _archive_index(raw_index, raw_index_width, member_at, path))


def _archive_index(raw: bytes, width: int, member_at: dict[int, int], path: Path) -> list[tuple[str, int]]:
    if not raw:
        return []
    count = struct.unpack_from(">I" if width == 4 else ">Q", raw)[0]
    offsets = np.frombuffer(raw, ">u4" if width == 4 else ">u8", count, width).tolist()
    names = raw[width * (count + 1):].split(b"\0")[:count]
    try:
        return [(name.decode(), member_at[offset]) for name, offset in zip(names, offsets)]
    except KeyError:
        raise ReachlsError("the archive index names a member that is not there", str(path)) from None


def _symbol_states(obj: ElfInput) -> tuple[list[str], list[tuple[str, int]]]:
    """The global symbols `obj` defines, and those it references without defining (with their binding)."""
    syms = obj.symbols
    binding = syms["info"] >> 4
    named_global = (binding != STB_LOCAL) & (syms["name"] != 0)
    undefined = obj.symbol_sections == SHN_UNDEF
    defined = [obj.symbol_name(i) for i in np.flatnonzero(named_global & ~undefined).tolist()]
    referenced = [(obj.symbol_name(i), _UNDEFINED_WEAK if binding[i] == STB_WEAK else _UNDEFINED)
                  for i in np.flatnonzero(named_global & undefined).tolist()]
    return defined, referenced


class _Resolution:
    """GNU ld's symbol table while it loads inputs: enough of it to tell which members it loads."""

    def __init__(self) -> None:
        self.state: dict[str, int] = {}
        self.loaded: list[Path] = []

    def load(self, path: Path) -> None:
        with ElfInput(_regular(path)) as obj:
            defined, referenced = _symbol_states(obj)
        for name in defined:
            self.state[name] = _DEFINED
        for name, kind in referenced:
            if self.state.get(name, _UNDEFINED_WEAK) != _DEFINED:
                self.state[name] = min(self.state.get(name, kind), kind)
        self.loaded.append(path)

    def search(self, archive: _Archive, taken: set[tuple[Path, int]]) -> bool:
        """One archive's turn: load each member the index names for an undefined symbol, rescanning
        the index until nothing more loads. Whether anything loaded."""
        any_loaded, loaded = False, True
        while loaded:
            loaded = False
            for name, member in archive.index:
                if (archive.path, member) not in taken and self.state.get(name) == _UNDEFINED:
                    taken.add((archive.path, member))
                    self.load(archive.members[member])
                    loaded = any_loaded = True
        return any_loaded


def linked_objects(inputs: tuple[str, ...]) -> list[Path]:
    """The objects a GNU ld link of `inputs` (files and the options grouping them) loads, in order."""
    resolution = _Resolution()
    taken: set[tuple[Path, int]] = set()
    whole, group = False, None
    for word in inputs:
        if word in ("--whole-archive", "--no-whole-archive"):
            whole = word == "--whole-archive"
        elif word in ("--start-group", "-("):
            group = []
        elif word in ("--end-group", "-)"):
            while group and any([resolution.search(archive, taken) for archive in group]):
                pass
            group = None
        elif word.startswith("-"):
            raise ReachlsError(f"the model cannot read the link input option {word!r}")
        elif Path(word).suffix == ".a":
            archive = _read_archive(Path(word))
            if whole:
                for member, path in enumerate(archive.members):
                    taken.add((archive.path, member))
                    resolution.load(path)
            elif group is not None:
                group.append(archive)
                resolution.search(archive, taken)
            else:
                resolution.search(archive, taken)
        else:
            resolution.load(Path(word))
    return resolution.loaded


def final_link_inputs(partial: LinkCommand, base_dir: Path) -> list[str]:
    """What the final link of a GCC kernel reads: `vmlinux.o`'s own inputs (`partial`, its `ld -r`),
    with init/version-timestamp.o, which link-vmlinux.sh links right after vmlinux.a."""
    inputs = list(partial.inputs)
    version = base_dir / "init/version-timestamp.o"
    if version.is_file() and (archive := str(base_dir / "vmlinux.a")) in inputs:
        inputs.insert(inputs.index(archive) + 1, str(version))
    return inputs


def final_link_sections(merged: ElfInput, partial: LinkCommand, base_dir: Path) -> list[ObjectSection]:
    """The allocated sections the final link of a GCC kernel reads, `merged` (vmlinux.o)'s with
    where `ld -r` put them in it (`piece_of`): each object at its place in the final link."""
    members = linked_objects(partial.inputs)
    rank = {path: position for position, path in enumerate(linked_objects(final_link_inputs(partial, base_dir)))}
    if missing := [path for path in members if path not in rank]:
        raise ReachlsError(f"{missing[0]} is in vmlinux.o but not in the final link", str(merged.path))
    in_merged = set(members)
    pieces = partial_link_pieces(merged, object_sections([(rank[path], path) for path in members]))
    return pieces + object_sections([(r, path) for path, r in rank.items() if path not in in_merged])


def object_sections(objects: list[tuple[int, Path]]) -> list[ObjectSection]:
    """Every allocated section of `objects` (rank, path), object by object, each object's in its own order."""
    sections = []
    for rank, path in objects:
        with ElfInput(_regular(path)) as obj:
            sections += [ObjectSection(rank, s.index, s.name, s.flags, s.sh_type, s.align, s.size)
                         for s in obj.sections if s.flags & SHF_ALLOC]
    return sections


def partial_link_pieces(merged: ElfInput, sections: list[ObjectSection]) -> list[ObjectSection]:
    """`sections` with where `ld -r` put each in `merged` (vmlinux.o): its default script and its
    orphan rule both gather the sections of one name, in input order, each at its own alignment."""
    by_name = merged.alloc_sections_by_name()
    cursor: dict[str, int] = {}
    placed = []
    for section in sections:
        start = cursor.get(section.name, 0)
        start += -start % max(section.align, 1)
        cursor[section.name] = start + section.size
        placed.append(ObjectSection(section.object_rank, section.index, section.name, section.flags,
                                    section.sh_type, section.align, section.size, start))
    for name, size in cursor.items():
        targets = [merged.sections[index] for index in by_name.get(name, [])]
        if len(targets) != 1 or targets[0].size != size:
            found = ", ".join(f"{t.size:#x}" for t in targets) or "none"
            raise ReachlsError(f"the objects' {name} sections add up to {size:#x} bytes, "
                               f"vmlinux.o's {name} has {found}", str(merged.path))
    return placed
