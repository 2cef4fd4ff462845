"""What every mode's scan shares: how to scan (`ScanOptions`), opening the input with its
architecture and linker flavour, placing it (`place`: a linked image's own layout, the relink or
the model), and the result (`ScanResult`, with its `Mode`). The relocatable and linked modes run
through `pipeline.scan`; the log mode (`linklog`) places each object it reads back the same way.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from .analysis import got_entries
from .arch import Architecture, architecture_of
from .elf import ElfInput
from .errors import ReachlsError
from .kbuild import BuildInputs, find_inputs
from .layout import LINKER_NAMES, Placement
from .layout.linkopts import LinkCommand, linker_flavour
from .layout.members import final_link_sections
from .layout.model import model_layout
from .layout.relink import find_linker, relink_layout, relink_objects_layout
from .layout.script import load_linker_script
from .record import DEFAULT_THRESHOLD
from .records import Analysis

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


class Mode(str, Enum):
    """Which artefact the records were read from; the value is `Provenance.mode`."""

    RELOCATABLE = "relocatable"  # vmlinux.o, placed by a relink or the model
    LINKED = "linked"  # a final image: its own layout, its relocations or its decoded instructions
    LOG = "log"  # a linker's out-of-range messages, read back from their objects

    @property
    def described(self) -> str:
        return {"relocatable": "relocatable", "linked": "linked image", "log": "linker log"}[self.value]


@dataclass(frozen=True)
class ScanResult:
    inputs: BuildInputs
    arch: Architecture
    analysis: Analysis
    has_dwarf: bool
    mode: Mode
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
    entries = functools.partial(got_entries, obj, arch)  # counted as late as the layout can: see `model_layout`
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
