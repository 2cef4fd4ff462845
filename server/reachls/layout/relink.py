"""The exact layout engine: re-run the build's own linker on the pre-link object and read its map.

The linker is the one program that knows the layout for sure, and the build's own linker is the
one whose layout counts: ld.lld relinks a kernel's `vmlinux.o` in well under a second, GNU ld in
a few. It runs in a private temporary directory with `--noinhibit-exec` (out-of-range errors
become warnings and the output is still written) and `-Map`: the map names every input section
with its final address, which is exactly a `Placement` (each linker writes its own map format;
both are read into one), so the relink and the model feed the analysis through one interface
and the model can be measured against the relink section by section. The command line comes
from the build (`.vmlinux.cmd`) but is never handed to a shell: only the linker binary runs, and
only options known not to write elsewhere or to run anything are passed on (`linkopts.py`).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..elf import SHN_UNDEF, STB_LOCAL, ElfInput
from ..errors import ReachlsError
from . import LINKER_NAMES, Placement, undefined_symbols
from .linkopts import LinkCommand, build_flavour
from .members import final_link_inputs
from .merged import merge_inputs, place_merge_sections, unplaced_merge_sections
from .script import check_size

RELINK_TIMEOUT_SECONDS = 600
_MAP_LINE = re.compile(r"^\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\d+) (\s*)(\S.*)$")
_INPUT_SECTION = re.compile(r"^(.*):\((.*)\)$")
_OUTPUT_SECTION = re.compile(r"[^\s()]+")  # `.text`, `__ksymtab_strings`: one word, unlike assignments
#: ld.lld links with merging off at -O0 (the default is -O1): merge inputs then appear in its map.
_NO_MERGING = "-O0"
_GNU_OUTPUT = re.compile(r"^(\S+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+")
_GNU_INPUT = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+) (.+)$")
_GNU_NOT_AN_INPUT = ("*fill*", "COMMON", "*(")
_GNU_SYNTHETIC_FILE = "linker stubs"
_LLD_GOT = "<internal>:(.got)"


def find_linker(flavour: str, command: LinkCommand | None, gnu_ld: str | None,
                untrusted_roots: tuple[Path, ...] = ()) -> str:
    """The linker binary to relink with: the build's own when it is of `flavour`, else the
    flavour's usual one (`ld.lld`, or the architecture's GNU ld, `gnu_ld`).

    A relative path with a directory part is the build dir's (kbuild runs there). A linker that
    resolves inside one of `untrusted_roots` is refused, not replaced: the build asked for it."""
    build_linker = command.linker if command else None
    candidates = [build_linker] if build_linker and build_flavour(build_linker) == flavour else []
    candidates.append("ld.lld" if flavour == "lld" else gnu_ld)
    for name in candidates:
        if name and (found := _which(name, command.base_dir if command else Path("."))):
            _refuse_untrusted(name, Path(found), untrusted_roots)
            return found
    wanted = " or ".join(dict.fromkeys(n for n in candidates if n)) or f"a {LINKER_NAMES[flavour]}"
    raise ReachlsError(f"no {wanted} found to relink with (install it, or use --engine model)")


def _which(name: str, base_dir: Path) -> str | None:
    """`name` looked up on PATH, or, with a directory part, as a path from `base_dir`."""
    if "/" in name and not Path(name).is_absolute():
        name = str(base_dir / name)
    return shutil.which(name)


def _refuse_untrusted(name: str, found: Path, untrusted_roots: tuple[Path, ...]) -> None:
    real = found.resolve()
    for root in untrusted_roots:
        if real.is_relative_to(root.resolve()):
            raise ReachlsError(f"the linker {name} resolves to {real}, inside the untrusted {root}: "
                               "not run (use --engine model, or trust that folder)")


def relink_layout(obj: ElfInput, command: LinkCommand, linker: str) -> Placement:
    """Relink `obj` privately with the binary `linker` (of `command.flavour`) and return where
    every input section landed, read from that linker's map."""
    with tempfile.TemporaryDirectory(prefix="reachls-relink-") as tmp:
        arguments = [*command.flags, *_script_option(command), str(obj.path.resolve())]
        output = Path(tmp) / "relinked"
        relink = _Link(linker, arguments, output, command.flavour)
        # ld.lld's map leaves merge inputs out: the link that finds them (merging off) runs alongside.
        probe = _Link(linker, [*arguments, _NO_MERGING], Path(tmp) / "unmerged", "lld") \
            if command.flavour == "lld" and len(merge_inputs(obj)) else None
        try:
            text = relink.map_text()
            if command.flavour != "lld":
                placement = parse_gnu_map(text, obj)
            else:
                lines = _section_lines(text)
                placement = parse_lld_map(lines, obj)
                if probe and unplaced_merge_sections(obj, placement) and output.is_file():
                    unmerged = parse_lld_map(_section_lines(probe.map_text()), obj)
                    with ElfInput(output) as image:
                        placement = place_merge_sections(obj, placement, _merged_sections(lines), unmerged, image)
        finally:
            for link in (relink, probe):
                if link:
                    link.cancel()
        symbols = link_defined_symbols(obj, output)
    return dataclasses.replace(placement, notes=placement.notes + _not_replayed(command), symbols=symbols)


def relink_objects_layout(obj: ElfInput, command: LinkCommand, partial: LinkCommand, linker: str) -> Placement:
    """The layout of a build whose final link reads the objects (`vmlinux.a`) that `obj`
    (`vmlinux.o`) was made of with `ld -r` (`partial`): both links are replayed with GNU ld,
    each with a map. The `ld -r` map gives where each object's piece starts inside `obj`'s
    merged sections, the final map where that piece went, in the same order per object and name.
    """
    objects = final_link_inputs(partial, command.base_dir)
    with tempfile.TemporaryDirectory(prefix="reachls-relink-") as tmp:
        merged_map = _link(linker, [*partial.flags, *partial.inputs], Path(tmp) / "partial", "gnu")
        final_map = _link(linker, [*command.flags, *_script_option(command), *objects], Path(tmp) / "final", "gnu")
        symbols = link_defined_symbols(obj, Path(tmp) / "final")
    pieces_at: dict[tuple[str, str], list[int]] = {}
    output_of: dict[tuple[str, str], list[str]] = {}
    final = read_gnu_map(final_map)
    for output, name, address, size, file in final.entries:
        if size:
            pieces_at.setdefault((file, name), []).append(address)
            output_of.setdefault((file, name), []).append(output)
    index_of = {name: indices[0] for name, indices in obj.alloc_sections_by_name().items()}
    starts: dict[int, list[tuple[int, int]]] = {}
    output_section: dict[int, str] = {}
    for merged, name, offset, size, file in read_gnu_map(merged_map).entries:
        if size and merged in index_of and pieces_at.get((file, name)):
            index = index_of[merged]
            starts.setdefault(index, []).append((offset, pieces_at[file, name].pop(0)))
            output_section.setdefault(index, output_of[file, name].pop(0))
    pieces = {index: (np.array([o for o, _ in pairs], np.uint64), np.array([a for _, a in pairs], np.uint64))
              for index, pairs in starts.items()}
    section_address = {index: pairs[0][1] - pairs[0][0] for index, pairs in starts.items()}
    return Placement("relink", section_address, output_section, final.output_starts, _not_replayed(command),
                     LINKER_NAMES["gnu"], pieces, symbols, final.got_address)


def link_defined_symbols(obj: ElfInput, image_path: Path) -> dict[str, int]:
    """The addresses the relinked image gives the symbols `obj` leaves undefined.

    Read from the image's symbol table, not the map: ld.lld's map prints the location counter
    beside an assignment (`alias = real_fn` shows `.`), not the value, and omits `--defsym`. A
    name the image defines once globally wins; a name only local, and more than once, is
    ambiguous and left out. No image written (an error --noinhibit-exec keeps), no symbols."""
    wanted = set(undefined_symbols(obj).values())
    if not wanted or not image_path.is_file():
        return {}
    global_value: dict[str, int] = {}
    local_values: dict[str, list[int]] = {}
    with ElfInput(image_path) as image:
        syms = image.symbols
        defined = (image.symbol_sections != SHN_UNDEF) & ((syms["info"] & 0xF) <= 2) & (syms["name"] != 0)
        is_local = (syms["info"] >> 4) == STB_LOCAL
        rows = np.flatnonzero(defined)
        for index, name in zip(rows.tolist(), image.symbol_names(rows)):
            if name in wanted:
                value = int(syms["value"][index])
                if is_local[index]:
                    local_values.setdefault(name, []).append(value)
                else:
                    global_value[name] = value
    return {name: values[0] for name, values in local_values.items() if len(values) == 1} | global_value


def _script_option(command: LinkCommand) -> list[str]:
    """`-T script`, once the script is known to be one the linker reads in bounded time."""
    if command.script is None:
        return []
    if not command.script.is_file():
        raise ReachlsError("linker script not found", str(command.script))
    try:
        check_size(command.script.read_bytes(), str(command.script))
    except OSError as exc:
        raise ReachlsError(f"cannot read linker script: {exc.strerror or exc}", str(command.script)) from None
    return ["-T", str(command.script.resolve())]


def _not_replayed(command: LinkCommand) -> tuple[str, ...]:
    return tuple(f"relink did not replay {flag!r}" for flag in command.dropped)


class _Link:
    """One link to `output` in its directory, with `--noinhibit-exec` and a map: started at once,
    its map read when wanted, so two links (a relink and its probe with merging off) run side by
    side. The linker's messages go to a file, not a pipe, so a link with a million warnings never
    waits for its reader."""

    def __init__(self, linker: str, arguments: list[str], output: Path, flavour: str) -> None:
        self.linker, self.map_path = linker, output.with_suffix(".map")
        argv = [linker, *arguments, "-o", str(output), "-Map", str(self.map_path), "--noinhibit-exec", "--strip-debug"]
        if flavour == "lld":
            argv.append("--error-limit=0")
        self._messages = open(output.with_suffix(".messages"), "w+b")  # closed once the link is over
        try:
            self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._messages,
                                             stdin=subprocess.DEVNULL, cwd=output.parent)
        except OSError as exc:  # E2BIG: the build's options are too many or too long to pass on
            self._messages.close()
            raise ReachlsError(f"cannot run the linker: {exc.strerror or exc}", linker) from None
        except ValueError as exc:  # an option with a NUL byte
            self._messages.close()
            raise ReachlsError(f"cannot run the linker: {exc}", linker) from None

    def map_text(self) -> str:
        """The map, once the link has finished. The map is the layout, even when an error
        --noinhibit-exec does not downgrade (ld.lld's unencodeable immediates) kept the output
        from being written. No map: the link failed."""
        try:
            returncode = self._process.wait(timeout=RELINK_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise ReachlsError(f"relink took longer than {RELINK_TIMEOUT_SECONDS} s", self.linker) from None
        with self._messages:
            self._messages.seek(0)
            messages = self._messages.read().decode(errors="replace")  # the linker echoes the script's bytes
        if not self.map_path.is_file() or not self.map_path.stat().st_size:
            lines = messages.splitlines()
            first_error = next((ln for ln in lines if "error" in ln), lines[0] if lines else f"exit {returncode}")
            raise ReachlsError(f"relink failed: {first_error}", self.linker)
        return self.map_path.read_text(errors="replace")

    def cancel(self) -> None:
        """Stop the link if it still runs (its map is not wanted)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._messages.close()


def _link(linker: str, arguments: list[str], output: Path, flavour: str) -> str:
    """Run one link to `output` (see `_Link`); the map's text."""
    return _Link(linker, arguments, output, flavour).map_text()


def _merged_sections(lines: list[str]) -> dict[str, list[tuple[int, int]]]:
    """Output section → (address, size) of each merged section in it, from a map's section
    lines: ld.lld names those `<internal>:(<output section>)`, one per merge kind."""
    found: dict[str, list[tuple[int, int]]] = {}
    current = None
    for line in lines:
        if not (match := _MAP_LINE.match(line)):
            continue
        indent, name = len(match.group(5)), match.group(6)
        if indent == 0:
            current = name
        elif indent <= 8 and name == f"<internal>:({current})":
            found.setdefault(current, []).append((int(match.group(1), 16), int(match.group(3), 16)))
    return found


def _section_lines(text: str) -> list[str]:
    """The lines of an ld.lld map after its header, but the symbol lines (most of a kernel's map)
    left out by one slice each: their name starts at the header's `Symbol` column, so the text
    from its `Out` column up to there is blank. A line whose numbers outgrew their columns has a
    digit there and is kept, as is any line of a map without that header."""
    lines = text.splitlines()
    header = lines[0] if lines else ""
    out, symbol = header.find(" Out ") + 1, header.find(" Symbol")
    if not 0 < out < symbol:
        return lines[1:]
    return [line for line in lines[1:] if not line[out:symbol].isspace()]


def parse_lld_map(lines: list[str], obj: ElfInput) -> Placement:
    """Turn an ld.lld map's section lines (`_section_lines`) into a `Placement` for the sections of `obj`.

    Input sections are named by `file:(name)`; several sections of one name are matched to the
    object's sections of that name in file order, which is the order the linker places them.
    """
    by_name = obj.alloc_sections_by_name()
    section_address: dict[int, int] = {}
    output_section: dict[int, str] = {}
    output_start: dict[str, int] = {}
    got_address = None
    current: str | None = None
    for line in lines:
        match = _MAP_LINE.match(line)
        if not match:
            continue
        address, indent, name = int(match.group(1), 16), len(match.group(5)), match.group(6)
        if indent == 0:
            if not _OUTPUT_SECTION.fullmatch(name):  # `. = 0x…`, `_text = .`, ASSERT(…)
                continue
            current = name
            output_start.setdefault(name, address)
        elif indent <= 8 and current is not None:
            if name == _LLD_GOT and got_address is None:
                got_address = address
            input_match = _INPUT_SECTION.match(name)
            if not input_match or input_match.group(1).startswith("<internal>"):
                continue
            candidates = by_name.get(input_match.group(2))
            if candidates:
                index = candidates.pop(0)
                section_address[index] = address
                output_section[index] = current
    return Placement("relink", section_address, output_section, output_start, linker=LINKER_NAMES["lld"],
                     got_address=got_address)


def parse_gnu_map(text: str, obj: ElfInput) -> Placement:
    """Turn a GNU ld map (`-Map`) into a `Placement` for the sections of `obj`.

    Several sections of one name are matched in file order, as for ld.lld. The linker's own
    stubs are not sections of `obj`.
    """
    by_name = obj.alloc_sections_by_name()
    section_address: dict[int, int] = {}
    output_section: dict[int, str] = {}
    gnu_map = read_gnu_map(text)
    for output, name, address, _, file in gnu_map.entries:
        candidates = by_name.get(name)
        if candidates and file != _GNU_SYNTHETIC_FILE:
            index = candidates.pop(0)
            section_address[index] = address
            output_section[index] = output
    return Placement("relink", section_address, output_section, gnu_map.output_starts,
                     linker=LINKER_NAMES["gnu"], got_address=gnu_map.got_address)


def _gnu_memory_map(text: str) -> list[str]:
    """The lines after "Linker script and memory map" (the discarded sections before it have no address)."""
    _, found, body = text.partition("Linker script and memory map")
    if not found:
        raise ReachlsError("the GNU ld map has no memory map")
    return list(_unwrap_gnu_map(body.splitlines()))


@dataclass(frozen=True)
class GnuMap:
    """What a GNU ld map says, read in one pass: `entries` holds (output section, input section,
    address, size, file) for each input section; `output_starts` each output section's first address."""

    entries: list[tuple[str, str, int, int, str]]
    output_starts: dict[str, int]

    @property
    def got_address(self) -> int | None:
        """Where GNU ld put its .got (an input section it attributes to the first object), if it made one."""
        return next((address for _, name, address, size, _ in self.entries if name == ".got" and size), None)


def read_gnu_map(text: str) -> GnuMap:
    """Output sections start in column 0, input sections in column 1; a name too long for its
    column ends its line, and its address and size follow on the next. `*fill*`, patterns,
    symbol lines and COMMON are not input sections."""
    entries: list[tuple[str, str, int, int, str]] = []
    output_starts: dict[str, int] = {}
    current = None
    for line in _gnu_memory_map(text):
        if (output := _GNU_OUTPUT.match(line)) is not None:
            current = output.group(1)
            output_starts.setdefault(current, int(output.group(2), 16))
        elif (entry := _GNU_INPUT.match(line)) is not None and current is not None \
                and not entry.group(1).startswith(_GNU_NOT_AN_INPUT):
            entries.append((current, entry.group(1), int(entry.group(2), 16), int(entry.group(3), 16),
                            entry.group(4).strip()))
    return GnuMap(entries, output_starts)


def _unwrap_gnu_map(lines: list[str]):
    """The map's lines, a long section name joined to the address line that follows it."""
    i = 0
    while i < len(lines):
        line = lines[i]
        follower = lines[i + 1] if i + 1 < len(lines) else ""
        if _is_bare_name(line) and follower[:1] == " " and follower.lstrip().startswith("0x"):
            yield line + follower
            i += 2
        else:
            yield line
            i += 1


def _is_bare_name(line: str) -> bool:
    """A section name alone on its line, in column 0 (output) or 1 (input)."""
    name = line.removeprefix(" ")
    return bool(name) and not name[0].isspace() and name[0] != "*" and " " not in name.rstrip()
