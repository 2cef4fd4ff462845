"""The exact layout engine: re-run the build's own linker on the pre-link object and read its map.

The linker is the one program that knows the layout for sure, and ld.lld relinks a kernel's
`vmlinux.o` in well under a second. It runs in a private temporary directory with
`--noinhibit-exec` (out-of-range errors become warnings and the output is still written) and
`-Map`: the map names every input section with its final address, which is exactly a
`Placement`, so the relink and the model feed the analysis through one interface and the model
can be measured against the relink section by section. The command line comes from the build
(`.vmlinux.cmd`) but is never handed to a shell: only the linker binary runs, and only flags
known not to write elsewhere or to run anything are passed on.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..elf import ElfInput
from ..errors import ReachlsError
from . import Placement
from .merged import place_merge_sections, unplaced_merge_sections

RELINK_TIMEOUT_SECONDS = 600

_FLAGS = {"-EL", "-EB", "--no-undefined", "-X", "--discard-locals", "-x", "--discard-all", "--pic-veneer",
          "--fix-cortex-a53-843419", "--fix-cortex-a53-835769", "--no-relax", "--relax", "-pie", "--pie",
          "-shared", "--no-pie", "-static", "-Bstatic", "--no-dynamic-linker", "--gc-sections",
          "--no-gc-sections", "-n", "-N", "--no-apply-dynamic-relocs", "--use-android-relr-tags",
          "--be8", "--build-id", "--no-warn-rwx-segments", "-Bsymbolic", "--emit-relocs", "-q"}
_FLAGS_WITH_VALUE = {"-m", "-z", "--defsym", "--section-start", "-e", "--entry", "--image-base",
                     "--sort-section", "--hash-style", "--pack-dyn-relocs", "--build-id", "-Ttext",
                     "-Tdata", "-Tbss"}
_SCRIPT_FLAGS = {"-T", "--script"}
_OUTPUT_FLAGS = {"-o", "--output", "-Map", "--Map"}
_MAP_LINE = re.compile(r"^\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\d+) (\s*)(\S.*)$")
_INPUT_SECTION = re.compile(r"^(.*):\((.*)\)$")
_OUTPUT_SECTION = re.compile(r"[^\s()]+")  # `.text`, `__ksymtab_strings`: one word, unlike assignments
#: ld.lld links with merging off at -O0 (the default is -O1): merge inputs then appear in its map.
_NO_MERGING = "-O0"


@dataclass(frozen=True)
class LinkCommand:
    """The build's final link, reduced to what is safe and relevant to re-run."""

    linker: str
    flags: tuple[str, ...]
    script: Path | None
    dropped: tuple[str, ...] = field(default=())


def safe_link_command(tokens: list[str], base_dir: Path) -> LinkCommand:
    """Keep the linker and the layout-relevant flags of an already split command line.

    Input files, the output and map names are replaced by the relink's own; plugins and any
    other unknown flag are dropped and listed in `dropped`, so a report can say what the
    relink did not replay.
    """
    if not tokens:
        raise ReachlsError("empty link command")
    linker, rest = tokens[0], tokens[1:]
    flags: list[str] = []
    dropped: list[str] = []
    script: Path | None = None
    i = 0
    while i < len(rest):
        token = rest[i]
        name, eq, value = token.partition("=")
        if token in _SCRIPT_FLAGS and i + 1 < len(rest):
            script, i = _resolve(rest[i + 1], base_dir), i + 2
            continue
        if name in _SCRIPT_FLAGS and eq:
            script, i = _resolve(value, base_dir), i + 1
            continue
        if token.startswith("-T") and len(token) > 2 and not token.startswith(("-Ttext", "-Tdata", "-Tbss")):
            script, i = _resolve(token[2:], base_dir), i + 1
            continue
        if token in _OUTPUT_FLAGS or not token.startswith("-"):
            i += 2 if token.startswith("-") else 1  # the build's output, map and inputs: ours replace them
            continue
        if eq and name in _OUTPUT_FLAGS:
            i += 1
            continue
        if token in _FLAGS or (eq and name in _FLAGS_WITH_VALUE):
            flags.append(token)
        elif token in _FLAGS_WITH_VALUE and i + 1 < len(rest):
            flags += [token, rest[i + 1]]
            i += 1
        elif token.startswith("-m") and len(token) > 2 and token[2:].isidentifier():
            flags.append(token)
        else:
            dropped.append(token)
        i += 1
    return LinkCommand(linker, tuple(flags), script, tuple(dropped))


def _resolve(path: str, base_dir: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base_dir / candidate


def find_linker(preferred: str | None) -> str:
    """The linker binary to run: the build's own when it is ld.lld, else ld.lld on PATH."""
    for name in (preferred, "ld.lld"):
        if name and Path(name).name.startswith("ld.lld") and (found := shutil.which(name)):
            return found
    raise ReachlsError("no ld.lld found to relink with (install lld, or use --engine model)")


def relink_layout(obj: ElfInput, command: LinkCommand) -> Placement:
    """Relink `obj` privately and return where every input section landed."""
    linker = find_linker(command.linker)
    with tempfile.TemporaryDirectory(prefix="reachls-relink-") as tmp:
        out, map_path = Path(tmp) / "relinked", Path(tmp) / "relinked.map"
        argv = [linker, *command.flags]
        if command.script is not None:
            if not command.script.is_file():
                raise ReachlsError("linker script not found", str(command.script))
            argv += ["-T", str(command.script.resolve())]
        argv += [str(obj.path.resolve()), "--noinhibit-exec", "--error-limit=0", "--strip-debug"]
        text = _link([*argv, "-o", str(out), "-Map", str(map_path)], map_path, tmp)
        placement = parse_lld_map(text, obj)
        if unplaced_merge_sections(obj, placement):  # which merged section holds them: ask the linker
            probe_map = Path(tmp) / "unmerged.map"
            probe = parse_lld_map(_link([*argv, "-o", str(out) + ".unmerged", "-Map", str(probe_map), _NO_MERGING],
                                        probe_map, tmp), obj)
            with ElfInput(out) as image:
                placement = place_merge_sections(obj, placement, _merged_sections(text), probe, image)
    notes = tuple(f"relink did not replay {flag!r}" for flag in command.dropped)
    return dataclasses.replace(placement, notes=placement.notes + notes)


def _link(argv: list[str], map_path: Path, cwd: str) -> str:
    """Run the linker; the map it wrote, or the linker's first error."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=RELINK_TIMEOUT_SECONDS,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ReachlsError(f"relink took longer than {RELINK_TIMEOUT_SECONDS} s", argv[0]) from None
    if not map_path.is_file():
        first_error = next((ln for ln in result.stderr.splitlines() if "error" in ln), result.stderr.strip())
        raise ReachlsError(f"relink failed: {first_error}", argv[0])
    return map_path.read_text()


def _merged_sections(text: str) -> dict[str, list[tuple[int, int]]]:
    """Output section → (address, size) of each merged section in it: ld.lld names those
    `<internal>:(<output section>)`, one per merge kind."""
    found: dict[str, list[tuple[int, int]]] = {}
    current = None
    for line in text.splitlines()[1:]:
        if not (match := _MAP_LINE.match(line)):
            continue
        indent, name = len(match.group(5)), match.group(6)
        if indent == 0:
            current = name
        elif indent <= 8 and name == f"<internal>:({current})":
            found.setdefault(current, []).append((int(match.group(1), 16), int(match.group(3), 16)))
    return found


def parse_lld_map(text: str, obj: ElfInput) -> Placement:
    """Turn an ld.lld map into a `Placement` for the sections of `obj`.

    Input sections are named by `file:(name)`; several sections of one name are matched to the
    object's sections of that name in file order, which is the order the linker places them.
    """
    by_name: dict[str, list[int]] = {}
    for section in obj.sections:
        if section.is_alloc:
            by_name.setdefault(section.name, []).append(section.index)
    section_address: dict[int, int] = {}
    output_section: dict[int, str] = {}
    output_start: dict[str, int] = {}
    current: str | None = None
    for line in text.splitlines()[1:]:
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
            input_match = _INPUT_SECTION.match(name)
            if not input_match or input_match.group(1).startswith("<internal>"):
                continue
            candidates = by_name.get(input_match.group(2))
            if candidates:
                index = candidates.pop(0)
                section_address[index] = address
                output_section[index] = current
    return Placement("relink", section_address, output_section, output_start)
