"""The stages wired together: artefact → placement → reach records → records with source lines.

The CLI and the language server both call `scan` and `function_layout`; neither reimplements a
stage. Each stage is a function of the previous one's output (see ARCHITECTURE.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import Analysis, analyse, attach_sources, got_entries
from .arch import Architecture, architecture_of
from .layout.linkopts import linker_flavour
from .decode import analyse_decoded
from .elf import ElfInput
from .errors import ReachlsError
from .kbuild import BuildInputs, find_inputs, find_log
from .layout import LINKER_NAMES, Placement
from .layout.members import final_link_sections
from .layout.model import model_layout
from .layout.linkopts import LinkCommand
from .layout.relink import find_linker, relink_layout, relink_objects_layout
from .layout.script import load_linker_script
from .record import DEFAULT_THRESHOLD, Provenance
from .sourcemap import SourceMap

ENGINES = ("auto", "relink", "model")


@dataclass(frozen=True)
class ScanOptions:
    """How to scan.

    `untrusted_roots`: directories whose programs must not run. The relink runs the linker the
    build recorded (`.vmlinux.cmd`) only when it resolves, on PATH or as a path, outside all of
    them; otherwise `--engine relink` fails saying so and `auto` uses the model with a note. The
    language server passes its workspace folders (opening an unreviewed tree must not run a
    binary from it); the CLI passes none: the build dir the user names is the user's choice.
    """

    engine: str = "auto"
    script: Path | None = None
    threshold: float = DEFAULT_THRESHOLD
    include_ok: bool = False
    log: str | None = None  # read this linker log of a build dir (or PATH itself) instead of the ELF
    linker: str = "auto"  # whose veneers and ranges decide veneer vs overflow: lld, gnu, or from the build
    untrusted_roots: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    inputs: BuildInputs
    arch: Architecture
    analysis: Analysis
    has_dwarf: bool
    notes: tuple[str, ...] = field(default=())


def open_input(path: Path, options: ScanOptions) -> tuple[BuildInputs, ElfInput, Architecture, str]:
    """The inputs, the opened ELF, its architecture as the build's linker sees it, and that linker's
    flavour (`lld`/`gnu`: `--linker`, else the build's own)."""
    inputs = find_inputs(path, options.script)
    obj = ElfInput(inputs.artefact)
    arch = architecture_of(obj)
    flavour = linker_flavour(options.linker, inputs.link_command and inputs.link_command.linker)
    return inputs, obj, arch.for_linker(flavour), flavour


def place(obj: ElfInput, inputs: BuildInputs, engine: str, flavour: str | None = None,
          untrusted_roots: tuple[Path, ...] = ()) -> Placement:
    """Where every input section lands: read from a linked image, or from one of the two engines.

    `flavour` (`lld`/`gnu`, default: the build's linker) decides whose layout: the relink runs
    that linker, the model follows its placement rules. `auto` relinks when that linker is
    installed, and falls back to the model, saying why in a note, when it is not or when the
    relink fails for a reason of its own (the relink never fails for reach: --noinhibit-exec).
    A linker inside `untrusted_roots` never runs (`ScanOptions.untrusted_roots`).
    """
    if engine not in ENGINES:
        raise ReachlsError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    if not obj.is_relocatable:
        return linked_placement(obj)
    flavour = flavour or linker_flavour("auto", inputs.link_command and inputs.link_command.linker)
    placement = _place_relocatable(obj, architecture_of(obj), inputs, engine, flavour,
                                   untrusted_roots)
    if inputs.links_objects and not placement.pieces:
        placement = dataclasses.replace(placement, notes=(*placement.notes, LINKS_OBJECTS_NOTE))
    return placement


LINKS_OBJECTS_NOTE = ("this build's final link reads vmlinux.a, not vmlinux.o: these are the addresses of a link "
                      "of vmlinux.o, which can differ from the real vmlinux's by alignment padding (ld -r merged "
                      "each section name into one section, aligned like its most aligned object); the relink "
                      "with GNU ld replays the real link")


def _replays_objects(inputs: BuildInputs, flavour: str) -> bool:
    """Whether the layout is the final link of the objects vmlinux.o was made of: a GNU ld build
    whose final link reads them (`BuildInputs.links_objects`), laid out as GNU ld."""
    return inputs.partial_link is not None and flavour == "gnu" == inputs.partial_link.flavour


def _place_relocatable(obj: ElfInput, arch: Architecture, inputs: BuildInputs, engine: str,
                       flavour: str, untrusted_roots: tuple[Path, ...]) -> Placement:
    if engine == "model":
        return _model(obj, arch, inputs, flavour)
    command = inputs.link_command or LinkCommand(LINKER_NAMES[flavour], (), inputs.script, flavour=flavour)
    command = command.for_flavour(flavour)
    if inputs.script is not None:
        command = dataclasses.replace(command, script=inputs.script)
    try:
        linker = find_linker(flavour, inputs.link_command, arch.gnu_ld, untrusted_roots)
        if _replays_objects(inputs, flavour):
            return relink_objects_layout(obj, command, inputs.partial_link, linker)
        return relink_layout(obj, command, linker)
    except ReachlsError as exc:
        if engine == "relink":
            raise
        placement = _model(obj, arch, inputs, flavour)
        return dataclasses.replace(placement, notes=(f"placed by the model: the relink did not run ({exc})",
                                                     *placement.notes))


def _model(obj: ElfInput, arch: Architecture, inputs: BuildInputs, flavour: str) -> Placement:
    """The model's layout; of the objects themselves where the final link reads them (with GNU ld,
    whose `ld -r` made vmlinux.o), else of `obj` whole, saying why when the objects could not be read."""
    script = load_linker_script(inputs.script) if inputs.script else None
    entries = got_entries(obj, arch)
    notes: tuple[str, ...] = ()
    if _replays_objects(inputs, flavour):
        try:
            objects = final_link_sections(obj, inputs.partial_link, inputs.partial_link.base_dir)
            return model_layout(obj, script, arch, flavour, entries, objects)
        except ReachlsError as exc:
            notes = (f"the model could not read the objects vmlinux.o was made of ({exc})",)
    placement = model_layout(obj, script, arch, flavour, entries)
    return dataclasses.replace(placement, notes=(*notes, *placement.notes))


def linked_placement(obj: ElfInput) -> Placement:
    """A linked image already has its layout: every allocated section at its own address."""
    placed = [s for s in obj.sections if s.is_alloc]
    return Placement("linked", {s.index: s.addr for s in placed}, {s.index: s.name for s in placed},
                     {s.name: s.addr for s in placed})


def scan(path: Path, options: ScanOptions = ScanOptions()) -> ScanResult:
    """Reach records of the artefact at `path` (a build dir or an ELF file), with source lines."""
    log = find_log(path, options.log)
    if log is not None:  # a linker log: the overflows it names, read back from their objects
        from .linklog import scan_log

        return scan_log(log, path if path.is_dir() else None, options.engine, options.script, options.untrusted_roots)
    inputs, obj, arch, flavour = open_input(path, options)
    with obj:
        decoded = not obj.is_relocatable and not any(
            obj.sections[target].is_code for target in obj.relocation_sections())
        if decoded and arch.decoder is None:
            raise ReachlsError("linked image without relocations: link it with --emit-relocs, "
                               "or scan the pre-link vmlinux.o", str(inputs.artefact))
        placement = place(obj, inputs, options.engine, flavour, options.untrusted_roots)
        provenance = Provenance(str(inputs.artefact), inputs.artefact.stat().st_mtime,
                                "relocatable" if obj.is_relocatable else "linked",
                                "decoded" if decoded else placement.engine, placement.linker)
        sourcemap = SourceMap(obj, arch.dwarf_relocations)
        has_dwarf = sourcemap.has_dwarf()
        if decoded:  # no relocations left: decode the short-reach instructions themselves (decode.py)
            analysis = analyse_decoded(obj, arch, placement, provenance, options.threshold, options.include_ok,
                                       sourcemap if has_dwarf else None)
        else:
            analysis = analyse(obj, arch, placement, provenance, options.threshold, options.include_ok)
        if has_dwarf and not decoded:
            analysis = dataclasses.replace(
                analysis, records=attach_sources(analysis.records, sourcemap, not obj.is_relocatable))
        notes = sourcemap.notes if has_dwarf else (
            "no DWARF line information: sites are given as symbol+offset (build with -g)",)
    return ScanResult(inputs, arch, analysis, has_dwarf, notes)


@dataclass(frozen=True)
class FunctionPlacement:
    """Where one code label lands; `is_function` is False for an untyped assembly label."""

    name: str
    address: int
    size: int
    output_section: str | None
    output_offset: int | None
    is_function: bool = True


def function_layout(path: Path, options: ScanOptions = ScanOptions()) -> tuple[Placement, list[FunctionPlacement]]:
    """Where every code label (function symbols and assembly entry points) lands, and its offset
    from the start of its output section."""
    inputs, obj, _, flavour = open_input(path, options)
    with obj:
        placement = place(obj, inputs, options.engine, flavour, options.untrusted_roots)
        functions = []
        for label in obj.code_labels():
            if label.section not in placement.section_address:
                continue
            address = label.value if not obj.is_relocatable else \
                int(placement.addresses(label.section, np.array([label.value], np.uint64))[0])
            output = placement.output_section.get(label.section)
            start = placement.output_start.get(output) if output else None
            functions.append(FunctionPlacement(label.name, address, label.size, output,
                                               address - start if start is not None else None, label.is_function))
    functions.sort(key=lambda f: (f.address, f.name))
    return placement, functions
