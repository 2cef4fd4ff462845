"""Stage 3: reach records → findings per source file, with exact ranges, messages and fixes.

A finding is where an editor puts a diagnostic: the assembler statement of a site (range from
the statement parser), or the name of a C function that is the target of an overflow or
at-risk reference (range from tree-sitter). DWARF names files as the build machine saw them;
`PathMapper` maps them onto the workspace and says which it cannot find.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .arch import Architecture
from .fixes import Fix, lto_makefile_fix, section_attribute_fix
from .record import ReachRecord, Status
from .report import describe, linker_site, target_summary
from .sources.asm import AsmFile, Span, parse_asm
from .sources.c import CFile, parse_c

ASM_SUFFIXES = (".S", ".s", ".asm")
C_SUFFIXES = (".c", ".h")
TARGET_STATUSES = (Status.OVERFLOW, Status.AT_RISK)
_MACRO_RE = re.compile(r"^\s*\.macro\s+([A-Za-z_.$][\w.$]*)", re.M)


WORKSPACE_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__", ".cache"})
MIN_TAIL_PARTS = 2  # a directory and a file: a bare file name matches too much to learn a tree from


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
        if self.roots and not any(path.is_relative_to(root) for root in self.roots):
            prefix = next((p for p in (*self.learned, *self.ambiguous) if path.is_relative_to(p)), None)
            if prefix is None:
                prefix = self._learn(path)
            if prefix in self.learned:
                mapped = self.learned[prefix] / path.relative_to(prefix)
                return mapped if mapped.is_file() else None
        return path if path.is_file() else None

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
            for root in self.roots:
                for current, dirs, _ in os.walk(root):
                    level = len(Path(current).relative_to(root).parts)
                    dirs[:] = sorted(d for d in dirs if d not in WORKSPACE_SKIPPED_DIRS) if level < self.depth else []
                    for name in dirs:
                        self._dirs_by_name[name].append((level, Path(current)))
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

    @property
    def status(self) -> Status:
        return min((r.status for r in self.records), key=lambda s: s.rank)


@dataclass
class Findings:
    """All findings of one scan, by workspace file; `missing` are DWARF files not found."""

    by_path: dict[Path, list[Finding]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)


class _Sources:
    """Parsed sources, each parsed once per scan."""

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect
        self._asm: dict[Path, tuple[AsmFile, list[str], set[str]]] = {}
        self._c: dict[Path, CFile] = {}

    def asm(self, path: Path, mapper: PathMapper) -> tuple[AsmFile, list[str], set[str]]:
        if path not in self._asm:
            text = path.read_text(errors="replace")
            asm = parse_asm(text, self._dialect)
            included = _included_macros(path, asm, mapper)
            if included:  # now known, their invocations parse as macro invocations, not instructions
                asm = parse_asm(text, self._dialect, known_macros=included)
            self._asm[path] = (asm, text.split("\n"), asm.macros | included)
        return self._asm[path]

    def c(self, path: Path) -> CFile:
        if path not in self._c:
            self._c[path] = parse_c(path.read_text(errors="replace"))
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


def source_findings(records: list[ReachRecord], arch: Architecture, mapper: PathMapper) -> Findings:
    findings = Findings()
    sources = _Sources(arch.asm_dialect)
    by_target: dict[tuple[Path, int], list[ReachRecord]] = defaultdict(list)
    for record in records:
        if record.status is Status.OK:
            continue
        site = _site_finding(record, arch, mapper, sources, findings.missing)
        if site is not None:
            findings.by_path.setdefault(site.path, []).append(site)
        target = record.target.location
        if record.status in TARGET_STATUSES and target is not None:
            path = mapper(target.file)
            if path is None:
                findings.missing.add(target.file)
            elif path.suffix in C_SUFFIXES:
                by_target[(path, target.line)].append(record)
    for (path, line), targets in by_target.items():
        finding = _target_finding(path, line, targets, mapper, sources)
        if finding is not None:
            findings.by_path.setdefault(path, []).append(finding)
    return findings


def _site_finding(record: ReachRecord, arch: Architecture, mapper: PathMapper, sources: _Sources,
                  missing: set[str]) -> Finding | None:
    location = record.site.location
    if location is None:
        return None
    path = mapper(location.file)
    if path is None:
        missing.add(location.file)
        return None
    message = describe(record)
    fixes: list[Fix] = []
    span = None
    if path.suffix in ASM_SUFFIXES:
        asm, lines, macros = sources.asm(path, mapper)
        statement = asm.instruction_on(location.line, record.site.instruction) or asm.instruction_on(location.line)
        if statement is not None:
            span = statement.span
            if statement.kind == "macro":
                message += f" — inside the expansion of {statement.mnemonic}: no automatic fix, edit the macro"
            elif record.status is not Status.VENEER:
                fixes += arch.asm_fixes(path, statement, lines[statement.line - 1], asm, macros)
    if span is None:
        span = _line_span(path, location.line)
    fixes += _target_fixes(record, mapper, sources)
    related = _related_target(record, mapper)
    return Finding(path, span, "site", (record,), message, related, tuple(fixes))


def _line_span(path: Path, line: int) -> Span:
    """The text of a line without its indentation: where a diagnostic goes without a statement."""
    lines = path.read_text(errors="replace").split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Span(line, len(text) - len(text.lstrip()), len(text.rstrip()))


def _related_target(record: ReachRecord, mapper: PathMapper) -> tuple[tuple[Path, int, str], ...]:
    target = record.target.location
    path = mapper(target.file) if target else None
    if target is None or path is None:
        return ()
    return ((path, target.line, f"{record.target.symbol} is here, in {record.target.section}"),)


def _target_fixes(record: ReachRecord, mapper: PathMapper, sources: _Sources) -> list[Fix]:
    """Fixes on the target side: pin the C function into .text, or take its directory out of LTO."""
    target = record.target.location
    path = mapper(target.file) if target else None
    if target is None or path is None or path.suffix not in C_SUFFIXES or record.status not in TARGET_STATUSES:
        return []
    function = sources.c(path).function_at_line(target.line)
    kernel_tree = mapper.kernel_root(path) is not None
    fixes = [section_attribute_fix(path, function, kernel_tree) if function else None,
             lto_makefile_fix(path) if kernel_tree else None]
    return [fix for fix in fixes if fix is not None]


def _target_finding(path: Path, line: int, records: list[ReachRecord], mapper: PathMapper,
                    sources: _Sources) -> Finding | None:
    function = sources.c(path).function_at_line(line)
    if function is None:
        return None
    worst = min(records, key=lambda r: r.worst_first)
    callers = ", ".join(dict.fromkeys(r.site.symbol or r.site.section for r in records))
    message = f"{target_summary(function.name, records)}, from {callers}"
    related = []
    for record in records:
        site = record.site.location
        site_path = mapper(site.file) if site else None
        if site is not None and site_path is not None:
            related.append((site_path, site.line, f"{linker_site(record)}: {describe(record)}"))
    fixes = _target_fixes(worst, mapper, sources)
    if fixes:  # on the function itself, pinning it into .text is the fix of choice
        fixes[0] = dataclasses.replace(fixes[0], preferred=True)
    return Finding(path, function.name_span, "target", tuple(records), message, tuple(related), tuple(fixes))
