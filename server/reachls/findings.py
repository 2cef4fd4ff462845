"""Stage 3: reach records → findings per source file, with exact ranges, messages and fixes.

A finding is where an editor puts a diagnostic: the assembler statement of a site (range from
the statement parser), or the name of a C function that is the target of an overflow or
at-risk reference (range from tree-sitter). DWARF names files as the build machine saw them;
`PathMapper` maps them onto the workspace and says which it cannot find.

Each finding keeps the statement it is about as the scan read it, and the artefact's build time.
In a file changed since that build, DWARF lines are not trusted as they are: `anchor` matches
each record to the statement that agrees with it, or drops the record.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .anchor import (SourceTexts, changed_note, line_map, names_target, normalise, reanchor, statement_agrees,
                     target_name)
from .arch.base import Architecture
from .asmfile import AsmFile, AsmStatement, Dialect
from .edits import Fix, Span
from .fixes import lto_makefile_fix, section_attribute_fix
from .messages import describe, linker_site, target_summary
from .record import ReachRecord, Status
from .sources.asm import parse_asm
from .sources.c import CFile, CFunction, parse_c

ASM_SUFFIXES = (".S", ".s", ".asm")
C_SUFFIXES = (".c", ".h")
TARGET_STATUSES = (Status.OVERFLOW, Status.AT_RISK)
_MACRO_RE = re.compile(r"^\s*\.macro\s+([A-Za-z_.$][\w.$]*)", re.M)


WORKSPACE_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__", ".cache"})
MIN_TAIL_PARTS = 2  # a directory and a file: a bare file name matches too much to learn a tree from


def walk_workspace(roots: Iterable[Path], depth: int) -> Iterator[tuple[int, Path, list[str], list[str]]]:
    """(level, directory, subdirectory names, file names) of every directory at most `depth` levels
    into the workspace folders, skipping tool and VCS directories, in a stable order."""
    for root in roots:
        for current, dirs, files in os.walk(root):
            level = len(Path(current).relative_to(root).parts)
            dirs[:] = sorted(d for d in dirs if d not in WORKSPACE_SKIPPED_DIRS) if level < depth else []
            yield level, Path(current), dirs, files


class PathMapper:
    """Build-machine paths → workspace paths: the workspace's own files first.

    In order: explicit `mappings` (prefix → directory; they also settle ambiguity); a path inside
    a workspace folder, as it is; a path under a build prefix learned before, by that prefix; a
    path outside the workspace whose tail is a file in it: the prefix is learned once from the
    longest tail it has in common with a workspace file, the shallowest such file winning
    (two at equal depth: nothing learned, the ambiguity kept to be said); failing all, the path
    as it is, when it exists. A workspace copy is preferred even while the build's own tree still
    exists on disk. What was learned is queued in `notes`, each said once.
    """

    def __init__(self, mappings: tuple[tuple[str, str], ...] = (), roots: tuple[Path, ...] = (),
                 depth: int = 4) -> None:
        self.mappings = mappings
        self.roots = roots
        self.depth = depth
        self.learned: dict[Path, Path] = {}  # build prefix → workspace directory
        self.ambiguous: dict[Path, tuple[Path, ...]] = {}  # build prefix → workspace directories tied
        self.notes: list[str] = []
        self._dirs_by_name: dict[str, list[tuple[int, Path]]] | None = None

    def __call__(self, build_path: str) -> Path | None:
        for source, destination in self.mappings:
            if build_path == source or build_path.startswith(source.rstrip("/") + "/"):
                mapped = Path(destination) / build_path[len(source.rstrip("/")):].lstrip("/")
                if mapped.is_file():
                    return mapped
        path = Path(build_path)
        if not self.in_workspace(path):
            prefix = next((p for p in (*self.learned, *self.ambiguous) if path.is_relative_to(p)), None)
            if prefix is None:
                prefix = self._learn(path)
            if prefix in self.learned:
                mapped = self.learned[prefix] / path.relative_to(prefix)
                return mapped if mapped.is_file() else None
        return path if path.is_file() else None

    def in_workspace(self, path: Path) -> bool:
        """Whether `path` is in a workspace folder (every path is, without folders)."""
        return not self.roots or any(path.is_relative_to(root) for root in self.roots)

    def _learn(self, path: Path) -> Path | None:
        """The build prefix of `path` learned from a workspace file with the longest common tail."""
        parts = path.parts
        first = 1 if path.is_absolute() else 0
        for start in range(first, len(parts) - MIN_TAIL_PARTS + 1):
            tail = Path(*parts[start:])
            found = sorted((level, base) for level, base in self._workspace_dirs().get(parts[start], ())
                           if (base / tail).is_file())
            if not found:
                continue
            prefix = Path(*parts[:start]) if start else Path()
            tied = tuple(base for level, base in found if level == found[0][0])
            if len(tied) == 1:
                self.learned[prefix] = tied[0]
                self.notes.append(f"mapped {prefix} → {tied[0]} (DWARF names the build's tree; "
                                  f"the workspace has its files, e.g. {tail})")
            else:
                self.ambiguous[prefix] = tied
            return prefix
        return None

    def take_notes(self) -> list[str]:
        """The notes queued since the last call (each is said once)."""
        notes, self.notes = self.notes, []
        return notes

    def ambiguity(self) -> str | None:
        """The tied workspace directories, in words that ask for a mapping; None when there are none."""
        if not self.ambiguous:
            return None
        prefix, tied = next(iter(self.ambiguous.items()))
        return (f"files under {prefix} are in the workspace twice, in {' and in '.join(map(str, tied))}: "
                f'set reachls.pathMappings ({{"from": "{prefix}", "to": one of them}})')

    def _workspace_dirs(self) -> dict[str, list[tuple[int, Path]]]:
        """Directory name → (level, parent) for every directory at most `depth` levels into the
        workspace: listed once, so a tail is looked up, never searched for."""
        if self._dirs_by_name is None:
            self._dirs_by_name = defaultdict(list)
            for level, current, dirs, _ in walk_workspace(self.roots, self.depth):
                for name in dirs:
                    self._dirs_by_name[name].append((level, current))
        return self._dirs_by_name

    def kernel_root(self, source: Path) -> Path | None:
        """The kernel tree a source file belongs to (the nearest ancestor with include/linux)."""
        return next((parent for parent in source.parents if (parent / "include" / "linux").is_dir()), None)


@dataclass(frozen=True)
class Finding:
    path: Path
    span: Span
    role: str  # "site" | "target"
    records: tuple[ReachRecord, ...]
    message: str
    related: tuple[tuple[Path, int, str], ...]
    fixes: tuple[Fix, ...]
    statement: str  # the text under `span` when the scan read it, `normalise`d: what the finding is about
    built: float  # when the artefact was written (its mtime)

    @property
    def status(self) -> Status:
        return min((r.status for r in self.records), key=lambda s: s.rank)


@dataclass
class Findings:
    """All findings of one scan, by workspace file; `missing` are DWARF files not found. `texts`
    are the texts the findings' spans refer to; `as_built` those of files not changed since the
    artefact was written; `dropped` describes the records whose statement is gone from an edited file."""

    by_path: dict[Path, list[Finding]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    texts: dict[Path, str] = field(default_factory=dict)
    as_built: dict[Path, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    #: The sources `source_findings` read and parsed, for later stages of the same scan (lenses).
    sources: Sources | None = field(default=None, compare=False, repr=False)


class Sources:
    """Parsed sources, each read (editor buffer first) and parsed once per scan; what is read is
    kept in the findings' `texts`, which spans refer to."""

    def __init__(self, dialect: Dialect, texts: SourceTexts, findings: Findings) -> None:
        self._dialect = dialect
        self._texts = texts
        self._findings = findings
        self._asm: dict[Path, tuple[AsmFile, list[str], set[str]]] = {}
        self._c: dict[Path, CFile] = {}
        self._changed: dict[Path, bool] = {}
        self._lines: dict[Path, list[str]] = {}

    def text(self, path: Path) -> str:
        text = self._findings.texts[path] = self._texts.read(path)
        return text

    def lines(self, path: Path) -> list[str]:
        """The text's lines, split once per file however many findings it holds."""
        if path not in self._lines:
            self._lines[path] = self.text(path).split("\n")
        return self._lines[path]

    def changed(self, path: Path, built: float) -> bool:
        """Has the file changed since the artefact was built? Unchanged, its text is as built."""
        if path not in self._changed:
            self._changed[path] = self._texts.changed_since(path, built)
            if not self._changed[path]:
                self._findings.as_built[path] = self.text(path)
        return self._changed[path]

    def earlier(self, path: Path) -> str | None:
        return self._texts.earlier.get(path)

    def asm(self, path: Path, mapper: PathMapper) -> tuple[AsmFile, list[str], set[str]]:
        if path not in self._asm:
            text = self.text(path)
            asm = parse_asm(text, self._dialect)
            included = _included_macros(path, asm, mapper)
            if included:  # now known, their invocations parse as macro invocations, not instructions
                asm = parse_asm(text, self._dialect, known_macros=included)
            self._asm[path] = (asm, self.lines(path), asm.macros | included)
        return self._asm[path]

    def c(self, path: Path) -> CFile:
        if path not in self._c:
            self._c[path] = parse_c(self.text(path))
        return self._c[path]


def _included_macros(source: Path, asm: AsmFile, mapper: PathMapper) -> set[str]:
    """`.macro` names from the headers a `.S` file includes (kernel include dirs and its own dir)."""
    root = mapper.kernel_root(source)
    dirs = [source.parent] + ([root / "include", *sorted((root / "arch").glob("*/include"))] if root else [])
    names: set[str] = set()
    for include in asm.includes:
        header = next((d / include for d in dirs if (d / include).is_file()), None)
        if header is not None:
            names |= set(_MACRO_RE.findall(header.read_text(errors="replace")))
    return names


def source_findings(records: list[ReachRecord], arch: Architecture, mapper: PathMapper,
                    texts: SourceTexts | None = None) -> Findings:
    """Findings of one artefact's records. `texts` gives editors' unsaved buffers and the texts of
    earlier scans; without it the files on disk are read."""
    findings = Findings()
    sources = findings.sources = Sources(arch.asm_dialect, texts or SourceTexts(), findings)
    reported = [r for r in records if r.status is not Status.OK]
    sites = _anchored_sites(reported, arch, mapper, sources, findings)
    by_target: dict[tuple[Path, CFunction], list[ReachRecord]] = defaultdict(list)
    for index, record in enumerate(reported):
        if index in sites:
            site = _site_finding(record, *sites[index], arch, mapper, sources)
            findings.by_path.setdefault(site.path, []).append(site)
        target = record.target.location
        if record.status in TARGET_STATUSES and target is not None:
            path = mapper(target.file)
            if path is None:
                findings.missing.add(target.file)
            elif path.suffix in C_SUFFIXES and (function := _target_function(path, record, sources)) is not None:
                by_target[(path, function)].append(record)
    site_lines = {id(reported[index]): place for index, place in sites.items()}
    for (path, function), targets in by_target.items():
        finding = _target_finding(path, function, targets, site_lines, mapper, sources)
        findings.by_path.setdefault(path, []).append(finding)
    return findings


def _anchored_sites(records: list[ReachRecord], arch: Architecture, mapper: PathMapper, sources: Sources,
                    findings: Findings) -> dict[int, tuple[Path, int]]:
    """Index into `records` → the workspace file and line of its statement now. The DWARF line as
    it is where the file has not changed since the build; else `reanchor`ed. Records whose
    statement is gone are counted in `findings.dropped`."""
    by_path: dict[Path, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        location = record.site.location
        if location is None:
            continue
        path = mapper(location.file)
        if path is None:
            findings.missing.add(location.file)
        else:
            by_path[path].append(index)
    anchored: dict[int, tuple[Path, int]] = {}
    for path, indices in by_path.items():
        dwarf_lines = [records[i].site.location.line for i in indices]
        if not sources.changed(path, records[indices[0]].provenance.artefact_mtime):
            anchored.update((i, (path, line)) for i, line in zip(indices, dwarf_lines))
            continue
        text = sources.text(path)
        earlier = sources.earlier(path)
        blocks = line_map(earlier, text) if earlier is not None else None
        group = [records[i] for i in indices]
        placed = reanchor(group, dwarf_lines, _agreement(path, arch, mapper, sources), text.count("\n") + 1, blocks)
        anchored.update((indices[k], (path, line)) for k, line in placed.items())
        findings.dropped += [f"{path}:{dwarf_lines[k]} {_what(group[k])}" for k in range(len(group)) if k not in placed]
    return anchored


def _agreement(path: Path, arch: Architecture, mapper: PathMapper, sources: Sources):
    """Does line N of `path` hold a statement the record can be about? In assembly, one that
    `statement_agrees`; elsewhere (C), a line naming the target."""
    if path.suffix in ASM_SUFFIXES:
        asm = sources.asm(path, mapper)[0]
        by_line: dict[int, list[AsmStatement]] = defaultdict(list)
        for statement in asm.statements:
            by_line[statement.line].append(statement)
        return lambda line, record: any(statement_agrees(s, record, arch) for s in by_line.get(line, ()))
    lines = sources.lines(path)
    return lambda line, record: names_target(_line(lines, line), record)


def _what(record: ReachRecord) -> str:
    return f"{record.site.instruction or record.kind.short_name} → {record.target.symbol}"


def _site_finding(record: ReachRecord, path: Path, line: int, arch: Architecture, mapper: PathMapper,
                  sources: Sources) -> Finding:
    """The finding on the statement at `line` (where the record's statement is now)."""
    built = record.provenance.artefact_mtime
    changed = sources.changed(path, built)
    message = describe(record)
    fixes: list[Fix] = []
    span = None
    if path.suffix in ASM_SUFFIXES:
        asm, lines, macros = sources.asm(path, mapper)
        statement = next((s for s in asm.statements_on(line) if statement_agrees(s, record, arch)), None) if changed \
            else asm.instruction_on(line, record.site.instruction) or asm.instruction_on(line)
        if statement is not None:
            span = statement.span
            if statement.kind == "macro":
                message += f" — inside the expansion of {statement.mnemonic}: no automatic fix, edit the macro"
            elif record.status is not Status.VENEER:
                fixes += arch.asm_fixes(path, statement, lines[statement.line - 1], asm, macros)
    if span is None:
        span = _line_span(sources.lines(path), line)
    if changed:
        message += changed_note(built)
    fixes += _target_fixes(record, mapper, sources)
    related = _related_target(record, mapper, sources)
    return Finding(path, span, "site", (record,), message, related, tuple(fixes),
                   normalise(_line(sources.lines(path), span.line)[span.start:span.end]), built)


def _line(lines: list[str], line: int) -> str:
    """Line `line` (1-based); empty past the end (a DWARF line the file does not have)."""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _line_span(lines: list[str], line: int) -> Span:
    """The text of a line without its indentation: where a diagnostic goes without a statement."""
    text = _line(lines, line)
    return Span(line, len(text) - len(text.lstrip()), len(text.rstrip()))


def _target_function(path: Path, record: ReachRecord, sources: Sources) -> CFunction | None:
    """The C function the record's target is: the one at its DWARF line, or, in a file changed
    since the build, the one of the target's name wherever it is now."""
    cfile = sources.c(path)
    function = cfile.function_at_line(record.target.location.line)
    if not sources.changed(path, record.provenance.artefact_mtime):
        return function
    name = target_name(record)
    if function is not None and function.name == name:
        return function
    return cfile.function_named(name) if name else None


def _related_target(record: ReachRecord, mapper: PathMapper, sources: Sources) -> tuple[tuple[Path, int, str], ...]:
    target = record.target.location
    path = mapper(target.file) if target else None
    if target is None or path is None:
        return ()
    function = _target_function(path, record, sources) if path.suffix in C_SUFFIXES else None
    line = function.name_span.line if function is not None else target.line
    return ((path, line, f"{record.target.symbol} is here, in {record.target.section}"),)


def _target_fixes(record: ReachRecord, mapper: PathMapper, sources: Sources) -> list[Fix]:
    """Fixes on the target side: pin the C function into .text, or take its directory out of LTO."""
    target = record.target.location
    path = mapper(target.file) if target else None
    if target is None or path is None or path.suffix not in C_SUFFIXES or record.status not in TARGET_STATUSES:
        return []
    function = _target_function(path, record, sources)
    kernel_tree = mapper.kernel_root(path) is not None
    fixes = [section_attribute_fix(path, function, kernel_tree) if function else None,
             lto_makefile_fix(path) if kernel_tree else None]
    return [fix for fix in fixes if fix is not None]


def _target_finding(path: Path, function: CFunction, records: list[ReachRecord],
                    site_lines: dict[int, tuple[Path, int]], mapper: PathMapper, sources: Sources) -> Finding:
    """The marker on the C function's name; related: each referencing site still in the source."""
    worst = min(records, key=lambda r: r.worst_first)
    callers = ", ".join(dict.fromkeys(r.site.symbol or r.site.section for r in records))
    message = f"{target_summary(function.name, records)}, from {callers}"
    built = worst.provenance.artefact_mtime
    if sources.changed(path, built):
        message += changed_note(built)
    related = [(*site_lines[id(record)], f"{linker_site(record)}: {describe(record)}")
               for record in records if id(record) in site_lines]
    fixes = _target_fixes(worst, mapper, sources)
    if fixes:  # on the function itself, pinning it into .text is the fix of choice
        fixes[0] = dataclasses.replace(fixes[0], preferred=True)
    return Finding(path, function.name_span, "target", tuple(records), message, tuple(related), tuple(fixes),
                   function.name, built)
