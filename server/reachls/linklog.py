"""Linker-log input: the overflows a failed (or `--noinhibit-exec`) link printed, as reach records.

Both linkers name, for each out-of-range relocation, the input object, the input section and
the offset in it, and the relocation type. That is enough to find the relocation in the
object's own relocation table, so when the object is at hand the record is built from it,
exactly as in the relocatable mode: kind, target symbol and addend from the table, the site's
file:line from the object's DWARF (section-aware, rows sorted), not the line the linker printed
(LLVM's line lookup does not sort rows, so `>>> referenced by` can name the wrong line).

* ld.lld prints the distance it range-checked (`relocation R_X out of range: D is not in
  [LO, HI]; references S`, or `references 'S'` in newer releases; `warning:` instead of
  `error:` under `--noinhibit-exec`); D is taken as is.
* GNU ld prints no number (`FILE:LINE:(SEC+0xOFF): relocation truncated to fit: R_X against
  symbol `S' defined in SEC section in OBJ`), so the distance is computed from a placement of
  the object (`pipeline.place`: relink or model, with the build's script) and a note says so.
  Its `... against undefined symbol `S'` lines follow `undefined reference` errors: a missing
  definition, not a reach problem; they are counted in a note, never reported as overflows.

An object the log names that is not at hand (a log copied from CI or a mailing list) gives
records of what the linker printed and nothing more: type, distance and range (ld.lld), target,
object, section+offset, function, and the linker's own source line as the site's location;
`verified` is false, addresses are None, and GNU ld's records have no distance. A note names the
object. A log that holds text but no linker diagnostic is bad input (an empty one is the output
of a link that had nothing to say).

The result is an ordinary `ScanResult`, so the text and JSON reports and the language server
read it unchanged. Records carry provenance mode `log`, engine `linker-log`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np

from .analysis import implicit_addends, relocation_targets
from .arch import architecture_of, for_relocation_type
from .arch.base import Architecture, checked_distance
from .elf import SECTION_ABS, SHN_UNDEF, U64, ElfInput
from .errors import ReachlsError
from .kbuild import ARTEFACTS, BuildInputs, find_inputs, read_link_command
from .layout import Placement
from .logparse import GNU, LLD, LoggedOverflow, parse_log
from .record import Provenance, ReachRecord, RelocKind, Site, SourceLocation, Status, Target
from .records import (Analysis, SymbolIndex, UncheckedExample, UncheckedReason, UncheckedTally, build_records, words_at,
                      worst_first)
from .sourcemap import SourceMap
from .stages import Mode, ScanResult, place

ENGINE = "linker-log"

_UNKNOWN_ARCH = Architecture("unknown", "", {}, lambda kind, word: None, lambda kind, insn: None)


def scan_log(log: Path, build_dir: Path | None, engine: str = "auto", script: Path | None = None,
             untrusted_roots: tuple[Path, ...] = ()):
    """Reach records of the overflows in a linker log (a `pipeline.ScanResult`). A linker inside
    `untrusted_roots` never runs to place the build's vmlinux.o (`ScanOptions.untrusted_roots`)."""

    log = log.resolve()
    build_dir = build_dir.resolve() if build_dir is not None else None
    if not log.is_file():  # a FIFO or device would block the read, or never end
        raise ReachlsError("not a regular file", str(log))
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReachlsError(f"cannot read the linker log: {exc.strerror}", str(log)) from None
    if build_dir is None and any((log.parent / name).exists() for name in (*ARTEFACTS, ".vmlinux.cmd")):
        build_dir = log.parent
    parsed = parse_log(text)
    if text.strip() and not (parsed.overflows or parsed.undefined or parsed.incomplete or parsed.skipped):
        # an empty log is a clean link's
        raise ReachlsError("no linker diagnostic in it (no `relocation ... out of range`, `relocation truncated "
                           "to fit` or undefined reference): not a linker log of a failed link", str(log))
    provenance = Provenance(str(log), log.stat().st_mtime, Mode.LOG.value, ENGINE)
    bases = list(dict.fromkeys(p for p in (log.parent, build_dir) if p is not None))
    notes: list[str] = []
    records: list[ReachRecord] = []
    unchecked = UncheckedTally()
    arch: Architecture | None = None
    has_dwarf = True
    by_object: dict[str, list[LoggedOverflow]] = {}
    for overflow in parsed.overflows:
        by_object.setdefault(overflow.obj, []).append(overflow)
    unverified = 0
    for name, overflows in by_object.items():
        path = _find_object(name, bases)
        absent = f"{name} is not there (looked in {', '.join(str(b) for b in bases)})"
        if path is not None:
            try:
                with ElfInput(path) as obj:
                    obj_arch = architecture_of(obj).for_linker(  # the linker that wrote the log
                        "gnu" if overflows[0].linker == GNU else "lld")
                    found, more_notes, lost, mapped = _object_records(obj, obj_arch, name, overflows, build_dir,
                                                                      engine, script, provenance, bases,
                                                                      untrusted_roots)
            except ReachlsError as exc:  # what the log says of it stands without it
                absent = f"{name} cannot be read as the object the linker read ({exc})"
            else:
                arch = arch or obj_arch
                if path.stat().st_mtime > provenance.artefact_mtime:
                    notes.append(f"{name} is newer than the log: the log may be from an earlier build")
                records += found
                notes += more_notes
                for type_name, reason, example in lost:
                    unchecked.add(type_name, reason, 1, [example])
                has_dwarf = has_dwarf and mapped
                continue
        # a log copied alone (or naming what is not its object): what the linker printed, marked as such
        found, more_notes, lost, printed_arch = _unverified_records(name, overflows, absent, provenance)
        records += found
        notes += more_notes
        for type_name, reason, example in lost:
            unchecked.add(type_name, reason, 1, [example])
        unverified += len(found)
        arch = arch or printed_arch
    if arch is None:
        arch = _build_arch(build_dir)
    linkers = parsed.linkers
    summary = (f"read from the linker log ({', '.join(linkers)}): {len(records)} of {len(parsed.overflows)} "
               f"out-of-range relocations reported") if linkers else "the linker log reports no out-of-range relocation"
    if unverified:
        summary += (f"; {unverified} of them as the linker printed them, unverified (their objects are not at hand), "
                    "the others checked against their objects" if unverified < len(records) else
                    "; all as the linker printed them, unverified (none of the objects it names is at hand)")
    notes.insert(0, summary)
    if parsed.undefined:
        shown = ", ".join(parsed.undefined[:5]) + (", …" if len(parsed.undefined) > 5 else "")
        noise = (f"; its {parsed.truncated_undefined} `relocation truncated to fit … against undefined symbol` "
                 "lines follow from the missing definitions" if parsed.truncated_undefined else "")
        notes.append(f"undefined references to {shown}: a missing definition, not a reach problem "
                     f"(not reported){noise}")
    notes += parsed.incomplete
    if (skipped := parsed.skipped_note()) is not None:
        notes.append(skipped)
        unchecked.add("unknown", UncheckedReason.LOG_LINE_UNREADABLE, len(parsed.lost),
                      (UncheckedExample(f"{log.name} line {line}", 0, None, "?") for line in parsed.lost))
    if not has_dwarf:
        notes.append("no DWARF line information: sites are given as symbol+offset (build with -g)")
    records = worst_first(records)
    counts = dict(Counter(r.status for r in records))
    analysis = Analysis(records, counts, unchecked.groups(), Placement(ENGINE, {}, {}, {}))
    inputs = BuildInputs(log, build_dir, script, read_link_command(build_dir) if build_dir else None)
    return ScanResult(inputs, arch, analysis, has_dwarf, Mode.LOG, tuple(dict.fromkeys(notes)))


def _find_object(name: str, bases: list[Path]) -> Path | None:
    """The object a log names, relative to the log's directory or the build dir; archive members
    of thin archives (kbuild's built-in.a) are read from the member's own file."""
    candidates = [name]
    if (m := re.fullmatch(r"(?P<archive>.+?\.a)\((?P<member>.+)\)", name)) is not None:
        archive = Path(m["archive"])
        candidates = [str(archive.parent / m["member"]), m["member"]]
    for candidate in candidates:
        path = Path(candidate)
        for base in ([Path("/")] if path.is_absolute() else bases):
            try:
                if (base / path).is_file():
                    return (base / path).resolve()
            except OSError:  # a name the file system cannot hold (ENAMETOOLONG) or reach: not at hand
                continue
    return None


def _unverified_records(name: str, overflows: list[LoggedOverflow], absent: str, provenance: Provenance
                        ) -> tuple[list[ReachRecord], list[str], list[tuple[str, UncheckedReason, UncheckedExample]],
                                   Architecture | None]:
    """Records of the overflows in an object that is not at hand (a log copied from CI or a mailing
    list): type, distance and range, target, section+offset and source line exactly as the linker
    printed them, marked unverified; `absent` says why the object is not used. (records, notes, the overflows
    of unknown types, architecture of the types.)"""
    records: list[ReachRecord] = []
    notes: list[str] = []
    skipped: list[tuple[str, UncheckedReason, UncheckedExample]] = []
    arch: Architecture | None = None
    for overflow in overflows:
        machine = for_relocation_type(overflow.type)
        if machine is None:
            notes.append(f"{name}:({overflow.section}+{overflow.offset:#x}): {overflow.type} is not a PC-relative "
                         "reach kind reachls knows (not reported)")
            skipped.append((overflow.type, UncheckedReason.LOG_TYPE_UNKNOWN, UncheckedExample(
                overflow.section, overflow.offset, overflow.function, overflow.symbol or "?")))
            continue
        machine = machine.for_linker("gnu" if overflow.linker == GNU else "lld")
        arch = arch or machine
        kind = next(k for k in machine.kinds.values() if k.name == overflow.type)
        if overflow.bounds is not None and _printed_scale(kind, overflow.bounds) is None:
            kind = dataclasses.replace(kind, lo=overflow.bounds[0], hi=overflow.bounds[1])  # the linker's own check
        source = SourceLocation(overflow.printed_source[0], overflow.printed_source[1], 0) \
            if overflow.printed_source else None
        site = Site(overflow.section, None, overflow.offset, None, overflow.function, None, None, None, source, name)
        target = Target(overflow.symbol or "(a section symbol)", overflow.target_section, None, None, None,
                        overflow.addend, None, None)
        records.append(ReachRecord(kind, site, target, _printed_distance(kind, overflow), Status.OVERFLOW,
                                   provenance, verified=False))
    linkers = " and ".join(dict.fromkeys(o.linker for o in overflows))
    notes.insert(0, f"{absent}: its {len(records)} out-of-range relocation(s) are "
                    f"as {linkers} printed them (type, distance and range, target, section+offset, and the "
                    f"linker's own source line), unverified; put {name} next to the log to check them")
    missing = sum(r.distance is None for r in records)
    if missing:
        notes.insert(1, f"GNU ld prints no distance and {name} is not at hand to compute one: {missing} record(s) "
                        "without a distance (JSON \"distance\": null)")
    return records, notes, skipped, arch


def _build_arch(build_dir: Path | None) -> Architecture:
    """The architecture of the build's artefact, for a log that names no object."""
    for name in ARTEFACTS:
        if build_dir is not None and (build_dir / name).is_file():
            with ElfInput(build_dir / name) as obj:
                return architecture_of(obj)
    return _UNKNOWN_ARCH


def _placement(obj: ElfInput, name: str, build_dir: Path | None, engine: str, script: Path | None,
               need_distance: bool, untrusted_roots: tuple[Path, ...]) -> tuple[Placement | None, str]:
    """Where the link puts the object's sections, when that can be known, and how it was found."""

    if obj.path.name in ARTEFACTS and obj.path.parent == build_dir:
        placement = place(obj, dataclasses.replace(find_inputs(build_dir, script), artefact=obj.path), engine,
                          untrusted_roots=untrusted_roots)
        return placement, f"placed by {placement.engine} of {name} with the build's linker script"
    if need_distance and obj.is_relocatable:
        placement = place(obj, BuildInputs(obj.path, None, script, None), "model")
        return placement, (f"placed by a model of {name} alone (it is not the build's vmlinux.o), "
                           "so they are not the final link's")
    return None, (f"{name} is not the build's vmlinux.o, so its final layout is not known: "
                  "its addresses are offsets in their input sections")


def _printed_scale(kind: RelocKind, bounds: tuple[int, int]) -> int | None:
    """The unit ld.lld printed a value in, when its bounds are the byte range divided by it."""
    for scale in (2, 4):
        if (kind.lo, kind.hi + 1) == (bounds[0] * scale, (bounds[1] + 1) * scale):
            return scale
    return None


def _printed_distance(kind: RelocKind, overflow: LoggedOverflow) -> int | None:
    """The distance the linker printed, in bytes: ld.lld checks some types in units (RISC-V branches
    in halfwords) and prints them so; None when it printed none (GNU ld)."""
    if overflow.distance is None or overflow.bounds is None:
        return overflow.distance
    return overflow.distance * (_printed_scale(kind, overflow.bounds) or 1)


def _object_records(obj: ElfInput, arch: Architecture, name: str, overflows: list[LoggedOverflow],
                    build_dir: Path | None, engine: str, script: Path | None, provenance: Provenance,
                    bases: list[Path], untrusted_roots: tuple[Path, ...]
                    ) -> tuple[list[ReachRecord], list[str], list[tuple[str, UncheckedReason, UncheckedExample]], bool]:
    """Records of one object's logged overflows: (records, notes, the overflows not read back with
    their type and why, has DWARF)."""
    by_name = {kind.name: kind for kind in arch.kinds.values()}
    rel_sections = obj.relocation_sections()
    tables: dict[int, object] = {}
    notes: list[str] = []
    placement: Placement | None = None
    need_distance = any(o.distance is None for o in overflows)
    try:
        placement, how = _placement(obj, name, build_dir, engine, script, need_distance, untrusted_roots)
    except ReachlsError as exc:
        if need_distance:
            raise
        how = f"{name}: no placement ({exc}); its addresses are offsets in their input sections"
    if placement is None:
        notes.append(how)
        placement = Placement("none", {}, {}, {})
    if obj.path.name == "vmlinux.o" and any(o.linker == LLD for o in overflows):
        notes.append(f"{name}: the sections ld.lld names (e.g. {overflows[0].section}+{overflows[0].offset:#x}) are "
                     f"{name}'s own input sections (the `ld -r` merge of every object's), so the offsets are "
                     "not those of the .o files; sites are mapped through its DWARF")
    index = SymbolIndex(obj, False)
    syms = obj.symbols
    read_back: list[tuple] = []  # (overflow, kind, site section, place, target, distance, symbol, addend)
    skipped: list[tuple[str, UncheckedReason, UncheckedExample]] = []
    computed = False
    for overflow in overflows:
        where = f"{name}:({overflow.section}+{overflow.offset:#x})"
        example = UncheckedExample(overflow.section, overflow.offset, overflow.function, overflow.symbol or "?")
        kind = by_name.get(overflow.type)
        if kind is None:
            notes.append(f"{where}: {overflow.type} is not a PC-relative reach kind reachls knows (not reported)")
            skipped.append((overflow.type, UncheckedReason.LOG_TYPE_UNKNOWN, example))
            continue
        match = _find_relocation(obj, rel_sections, tables, overflow, kind.number)
        if match is None:
            notes.append(f"{where}: no {overflow.type} relocation there in {obj.path}; the log does not match "
                         "this build of the object (not reported)")
            skipped.append((overflow.type, UncheckedReason.LOG_RELOCATION_NOT_FOUND, example))
            continue
        section, row = match
        relocs = tables[section]
        sym, addend, bias = int(relocs.sym[row]), int(relocs.addend[row]), 0
        if sym >= len(obj.symbol_sections):
            notes.append(f"{where}: its relocation names symbol {sym}, past the symbol table of {obj.path} "
                         "(not reported)")
            skipped.append((overflow.type, UncheckedReason.SYMBOL_OUT_OF_RANGE, example))
            continue
        if not relocs.explicit_addend and arch.implicit_addend is not None:  # SHT_REL: the addend is in the code
            rows = slice(row, row + 1)
            addend = int(implicit_addends(obj, arch, section, relocs.offset[rows], relocs.type[rows])[0])
        if arch.pc_bias and (relocs.explicit_addend or arch.implicit_addend is not None):
            bias = arch.pc_bias(kind)  # as in analysis: the PC bias is not the target
        target_section = int(obj.symbol_sections[sym])
        base = placement.section_address
        place = base.get(section, 0) + overflow.offset
        target_known = target_section == SECTION_ABS or target_section in base
        section_base = 0 if target_section == SECTION_ABS else base.get(target_section, 0)
        target = (int(syms["value"][sym]) + addend + section_base if target_section != SHN_UNDEF else 0) & U64
        distance = overflow.distance
        if distance is None:
            if not target_known or section not in base:
                notes.append(f"{where}: {overflow.type} against {overflow.symbol}: no placement for "
                             f"{'the target' if section in base else 'the site'} in {name}, so no distance "
                             "(GNU ld prints none; not reported)")
                skipped.append((overflow.type, UncheckedReason.LOG_NO_PLACEMENT, example))
                continue
            kind_target = target
            if kind.formula.is_got and placement.output_start.get(".got") is not None:
                kind_target = placement.output_start[".got"]
            distance = int(checked_distance(kind, np.array([kind_target], dtype=np.uint64),
                                            np.array([place], dtype=np.uint64), arch.page_size)[0])
            computed = True
            if kind.in_range(distance):
                notes.append(f"{where}: GNU ld says {overflow.type} overflows, but the placement gives {distance} "
                             f"(in range): the {placement.engine} layout differs from GNU ld's")
        else:
            distance = _printed_distance(kind, overflow)
            if overflow.bounds not in (None, (kind.lo, kind.hi)) and not _printed_scale(kind, overflow.bounds):
                notes.append(f"{where}: ld.lld checks {overflow.type} against {list(overflow.bounds)}, "
                             f"reachls's table says {[kind.lo, kind.hi]}")
        read_back.append((overflow, kind, section, place & U64, (target - bias) & U64, distance, sym, addend - bias))
    if computed:
        notes.insert(0, f"GNU ld prints no distance: those from {name} are computed, {how}")
    sourcemap = SourceMap(obj, arch.dwarf_relocations)
    mapped = sourcemap.has_dwarf()
    records = _read_back_records(obj, arch, placement, provenance, index, name, read_back, sourcemap if mapped else None)
    if mapped:
        for record, (overflow, *_) in zip(records, read_back):
            said, ours = overflow.printed_source, record.site.location
            if said and ours and (Path(said[0]).name, said[1]) != (Path(ours.file).name, ours.line):
                notes.append(f"{overflow.linker} printed {said[0]}:{said[1]} for {record.site.symbol}"
                             f"+{record.site.symbol_offset:#x}; the DWARF line table (rows sorted) says "
                             f"{ours.file}:{ours.line}")
    if records:
        records = _targets_elsewhere(records, [overflow for overflow, *_ in read_back], bases)
    return records, notes, skipped, mapped


def _read_back_records(obj: ElfInput, arch: Architecture, placement: Placement, provenance: Provenance,
                       index: SymbolIndex, name: str, read_back: list[tuple], sourcemap: SourceMap | None
                       ) -> list[ReachRecord]:
    """The overflows found in `obj`'s relocation tables as records, in log order, built as every mode
    builds them; the site names the object the linker named. A distance is kept as the linker printed
    it, whatever its size."""
    if not read_back:
        return []
    overflows, kinds, sections, places, targets, distances, syms, addends = zip(*read_back)
    offsets = np.array([overflow.offset for overflow in overflows], dtype=np.int64)
    sections_ = np.array(sections, dtype=np.int64)
    words = np.zeros(len(read_back), dtype=np.uint32)
    for row, section in enumerate(sections):  # one word per record: where the linker said
        data = np.frombuffer(obj.section_data(section) + bytes(4), dtype=np.uint8)
        words[row] = words_at(data, np.clip(offsets[row:row + 1], 0, len(data) - 4), obj.little)[0]
    rows = {"kind": np.array([kind.number for kind in kinds], dtype=np.int64), "site_section": sections_,
            "site_offset": offsets, "place": np.array(places, dtype=np.uint64), "word": words,
            "target": np.array(targets, dtype=np.uint64), "distance": np.array(distances, dtype=object),
            "status": np.full(len(read_back), Status.OVERFLOW.rank), "sym": np.array(syms, dtype=np.int64),
            "addend": np.array(addends, dtype=np.int64)}
    records = build_records(obj, arch, placement, provenance, index, rows,  # in log order: sorted with the rest
                            relocation_targets(obj, placement, index, False, rows), sourcemap, ordered=False)
    return [dataclasses.replace(record, site=dataclasses.replace(record.site, object=name)) for record in records]


def _targets_elsewhere(records: list[ReachRecord], overflows: list[LoggedOverflow],
                       bases: list[Path]) -> list[ReachRecord]:
    """Section and declaration line of targets another object defines (the linker names it)."""
    out = []
    for record, overflow in zip(records, overflows):
        target, other = record.target, overflow.defined_in
        elsewhere = target.section_index is None and other and other != overflow.obj
        defining_path = _find_object(other, bases) if elsewhere else None
        if defining_path is not None:
            try:
                with ElfInput(defining_path) as defining:
                    found = _defined_symbol(defining, overflow.symbol or target.symbol.split("+")[0])
                    if found is not None:
                        sourcemap = SourceMap(defining, architecture_of(defining).dwarf_relocations)
                        location = sourcemap.function_declaration(*found) or sourcemap.line_for(*found)
                        target = dataclasses.replace(target, section=defining.sections[found[0]].name,
                                                     location=location)
            except ReachlsError:
                pass  # the target's line is a courtesy: the site and distance stand without it
        out.append(dataclasses.replace(record, target=target))
    return out


def _defined_symbol(obj: ElfInput, name: str) -> tuple[int, int] | None:
    """(section index, value) of the defined symbol `name`, found through the string table
    (names may be tail-merged: `hyp_panic` can start inside `.text.hyp_panic`)."""
    strtab = obj.symbol_string_table
    wanted = name.encode() + b"\0"
    offsets, start = set(), 0
    while (at := strtab.find(wanted, start)) >= 0:
        offsets.add(at)
        start = at + 1
    if not offsets:
        return None
    syms = obj.symbols
    rows = np.flatnonzero(np.isin(syms["name"], list(offsets)) & (obj.symbol_sections > 0))
    return (int(obj.symbol_sections[rows[0]]), int(syms["value"][rows[0]])) if len(rows) else None


def _find_relocation(obj: ElfInput, rel_sections: dict, tables: dict, overflow: LoggedOverflow,
                     number: int) -> tuple[int, int] | None:
    """(section index, row) of the relocation of type `number` at the logged section+offset.

    GNU ld appends `[group]` to the names of sections in a COMDAT group; several sections may
    share a name, and the one whose relocation references the logged symbol wins.
    """
    names = {overflow.section, re.sub(r"\[[^\]]*\]$", "", overflow.section)}
    matches: list[tuple[int, int]] = []
    for section in obj.sections:
        if section.name not in names or section.index not in rel_sections:
            continue
        if section.index not in tables:
            tables[section.index] = obj.relocations(rel_sections[section.index])
        relocs = tables[section.index]
        rows = np.flatnonzero((relocs.offset == overflow.offset) & (relocs.type == number))
        matches += [(section.index, int(row)) for row in rows]
    if len(matches) > 1 and overflow.symbol:
        named = [(s, r) for s, r in matches if int(tables[s].sym[r]) < len(obj.symbol_sections)
                 and obj.symbol_name(int(tables[s].sym[r])) == overflow.symbol]
        matches = named or matches
    return matches[0] if matches else None
