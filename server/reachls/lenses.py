"""Function lenses: above each function that holds or is the target of a reported reference, the
worst of those references, and where each of them is.

Built from a scan's findings (the lines their sites are on now) and the source parsers' function
ranges: tree-sitter's C function definitions (`sources/c.py`), the assembler's symbol definitions
(`SYM_FUNC_START(name)`, `name:`; `sources/asm.py`). Plain data, for the language server to
translate into code lenses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .edits import Span
from .findings import ASM_SUFFIXES, C_SUFFIXES, Findings, PathMapper, Sources
from .record import ReachRecord, Status


@dataclass(frozen=True)
class FunctionLens:
    """One function's lens: its name where it is defined (`span`), the reported references it holds
    or is the target of, and the places (file, 1-based line) of their sites and targets."""

    path: Path
    name: str
    span: Span
    records: tuple[ReachRecord, ...]
    references: tuple[tuple[Path, int], ...]

    @property
    def worst(self) -> ReachRecord:
        return min(self.records, key=lambda r: r.worst_first)


class _Definitions:
    """Where a function is defined in a workspace file, from the sources the findings parsed."""

    def __init__(self, sources: Sources, mapper: PathMapper) -> None:
        self._sources = sources
        self._mapper = mapper

    def find(self, path: Path, name: str | None, line: int | None) -> tuple[str, Span] | None:
        """The function `name` (C: else the one holding `line`) in `path`, with its name's span."""
        if path.suffix in C_SUFFIXES:
            cfile = self._sources.c(path)
            function = (cfile.function_named(name) if name else None) or (
                cfile.function_at_line(line) if line is not None else None)
            return (function.name, function.name_span) if function is not None else None
        if path.suffix in ASM_SUFFIXES and name:
            span = self._sources.asm(path, self._mapper)[0].definition(name)
            return (name, span) if span is not None else None
        return None


def function_lenses(records: list[ReachRecord], findings: Findings, mapper: PathMapper
                    ) -> dict[Path, list[FunctionLens]]:
    """The lenses of one artefact's reported `records`, by workspace file, from their `findings`
    (`source_findings`: its parsed sources are reused). Sites are where `findings` put them (a site
    whose statement is gone has no lens); targets where their DWARF file names them. Texts read for
    the lenses are added to `findings.texts` (spans refer to them)."""
    site_lines = {id(record): (path, finding.span.line) for path, items in findings.by_path.items()
                  for finding in items if finding.role == "site" for record in finding.records}
    assert findings.sources is not None, "findings made by source_findings"
    definitions = _Definitions(findings.sources, mapper)
    held: dict[tuple[Path, str, Span], list[ReachRecord]] = defaultdict(list)
    target_lines: dict[int, tuple[Path, int]] = {}
    for record in records:
        if record.status is Status.OK:
            continue
        site = site_lines.get(id(record))
        if site is not None:
            found = definitions.find(site[0], record.site.symbol, site[1])
            if found is not None:
                held[(site[0], *found)].append(record)
        location = record.target.location
        path = mapper(location.file) if location is not None else None
        if path is not None:
            found = definitions.find(path, record.target.symbol, location.line)
            if found is not None:
                held[(path, *found)].append(record)
                target_lines[id(record)] = (path, found[1].line)
    lenses: dict[Path, list[FunctionLens]] = defaultdict(list)
    for (path, name, span), holding in held.items():
        places = [place for record in holding for place in (site_lines.get(id(record)), target_lines.get(id(record)))
                  if place is not None]
        lenses[path].append(FunctionLens(path, name, span, tuple(dict.fromkeys(holding, None)),
                                         tuple(dict.fromkeys(places))))
    return dict(lenses)
