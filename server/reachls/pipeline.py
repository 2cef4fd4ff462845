"""The stages wired together: artefact → placement → reach records → records with source lines.

The CLI and the language server both call `scan` and `function_layout`; neither reimplements a
stage. Each stage is a function of the previous one's output (see ARCHITECTURE.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .analysis import analyse, short_reach_types
from .decode import analyse_decoded
from .errors import ReachlsError
from .kbuild import find_log
from .layout import Placement
from .linklog import scan_log
from .progress import SILENT, Progress
from .record import Provenance
from .sourcemap import SourceMap
from .stages import ENGINES, Mode, ScanOptions, ScanResult, open_input, place

#: What the front ends (CLI, language server, reports) use: they reach no stage below this module.
__all__ = ["ENGINES", "FunctionPlacement", "Mode", "ScanOptions", "ScanResult", "function_layout", "scan"]


def scan(path: Path, options: ScanOptions = ScanOptions(), progress: Progress = SILENT) -> ScanResult:
    """Reach records of the artefact at `path` (a build dir or an ELF file), with source lines;
    each stage told to `progress` as it begins."""
    try:
        with _no_cycle_collection():
            return _scan(path, options, progress)
    finally:
        progress.end()


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Run a stage without Python's cycle collector. A scan builds hundreds of thousands of
    long-lived objects (sections, the layout's inputs) and no garbage cycles: the collector, set off
    by the allocations, would walk all of them again and again, half the time of a 700 k-section
    scan. Reference counting still frees everything; collection resumes after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _scan(path: Path, options: ScanOptions, progress: Progress) -> ScanResult:
    progress.begin("read")
    log = find_log(path, options.log)
    if log is not None:  # a linker log: the overflows it names, read back from their objects
        return scan_log(log, path if path.is_dir() else None, options.engine, options.script, options.untrusted_roots)
    inputs, obj, arch, flavour = open_input(path, options)
    with obj:
        decoded = not obj.is_relocatable and not any(
            obj.sections[target].is_code for target in obj.relocation_sections())
        if decoded and arch.decoder is None:
            raise ReachlsError("linked image without relocations: link it with --emit-relocs, "
                               "or scan the pre-link vmlinux.o", str(inputs.artefact))
        if not decoded:  # every table, beside the layout; `obj` keeps them for its GOT count and the analysis
            obj.read_relocation_rows_ahead(short_reach_types(arch))
        progress.begin("place")
        placement = place(obj, inputs, options.engine, flavour, options.untrusted_roots)
        provenance = Provenance(str(inputs.artefact), inputs.artefact.stat().st_mtime,
                                (Mode.RELOCATABLE if obj.is_relocatable else Mode.LINKED).value,
                                "decoded" if decoded else placement.engine, placement.linker)
        progress.begin("analyse")
        sourcemap = SourceMap(obj, arch.dwarf_relocations)
        has_dwarf = sourcemap.has_dwarf()
        # No relocations left: decode the short-reach instructions themselves (decode.py).
        analyse_mode = analyse_decoded if decoded else analyse
        analysis = analyse_mode(obj, arch, placement, provenance, options.threshold, options.include_ok,
                                sourcemap if has_dwarf else None, progress)
        notes = sourcemap.notes if has_dwarf else (
            "no DWARF line information: sites are given as symbol+offset (build with -g)",)
    return ScanResult(inputs, arch, analysis, has_dwarf, Mode.RELOCATABLE if obj.is_relocatable else Mode.LINKED, notes)


class FunctionPlacement(NamedTuple):
    """Where one code label lands; `is_function` is False for an untyped assembly label. A tuple:
    an allmodconfig kernel has hundreds of thousands."""

    name: str
    address: int
    size: int
    output_section: str | None
    output_offset: int | None
    is_function: bool = True


def function_layout(path: Path, options: ScanOptions = ScanOptions(), progress: Progress = SILENT
                    ) -> tuple[Placement, list[FunctionPlacement]]:
    """Where every code label (function symbols and assembly entry points) lands, and its offset
    from the start of its output section; each stage told to `progress` as it begins."""
    try:
        with _no_cycle_collection():
            placement, functions = _function_layout(path, options, progress)
    finally:
        progress.end()
    functions.sort(key=lambda f: (f.address, f.name))
    return placement, functions


def _function_layout(path: Path, options: ScanOptions, progress: Progress
                     ) -> tuple[Placement, list[FunctionPlacement]]:
    progress.begin("read")
    inputs, obj, _, flavour = open_input(path, options)
    with obj:
        progress.begin("place")
        placement = place(obj, inputs, options.engine, flavour, options.untrusted_roots)
        labels = [label for label in obj.code_labels() if label.section in placement.section_address]
    values = np.array([label.value for label in labels], dtype=np.uint64)
    addresses = (placement.addresses_in(np.array([label.section for label in labels], dtype=np.int64), values)
                 if obj.is_relocatable else values).tolist()
    outputs = [placement.output_section.get(label.section) for label in labels]
    starts = [placement.output_start.get(output) if output else None for output in outputs]
    return placement, [FunctionPlacement(label.name, address, label.size, output,
                                         address - start if start is not None else None, label.is_function)
                       for label, address, output, start in zip(labels, addresses, outputs, starts)]
