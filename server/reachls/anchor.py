"""Which statement a record is about, once the source has changed since the artefact was built.

DWARF gives the line a statement had when the artefact was built. When the file (or an editor's
unsaved buffer) is newer, that line may now hold something else: each record is matched to the
statement that agrees with it (the instruction decoded from the binary, spelled as the source may
spell it, and the target it names). With the text of an earlier scan made when the file matched
its build, a line diff says precisely where each line went; without it, the nearest agreeing
statement is taken, each statement claimed by one group of records only. A record that finds no
agreeing statement is dropped, never shown on whatever sits on its old line now.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .arch.base import Architecture
from .asmfile import AsmStatement, fold_mnemonic
from .record import ReachRecord

_SPACES_RE = re.compile(r"\s+")
_COMMA_RE = re.compile(r"\s*,\s*")
_WORD_RE = re.compile(r"[A-Za-z_.$][\w.$]*")


def normalise(text: str) -> str:
    """A statement's text as compared across edits: blanks collapsed, one space after each comma."""
    return _COMMA_RE.sub(", ", _SPACES_RE.sub(" ", text.strip()))


def changed_note(built: float) -> str:
    """What a finding in a file edited since the build says about itself."""
    return f" (source changed since the build at {datetime.fromtimestamp(built).strftime('%H:%M')})"


@dataclass
class SourceTexts:
    """The text of each source file as a scan should read it: an editor's unsaved buffer over the
    file on disk. `earlier` holds, per file, the text of the last scan made while the file was not
    newer than its artefact: the text the DWARF lines of a later scan of that build refer to."""

    buffers: dict[Path, str] = field(default_factory=dict)
    earlier: dict[Path, str] = field(default_factory=dict)
    _disk: dict[Path, str] = field(default_factory=dict)

    def disk(self, path: Path) -> str:
        if path not in self._disk:
            self._disk[path] = path.read_text(errors="replace")
        return self._disk[path]

    def read(self, path: Path) -> str:
        return self.buffers[path] if path in self.buffers else self.disk(path)

    def changed_since(self, path: Path, built: float) -> bool:
        """Saved after the artefact was written, or edited in an unsaved buffer."""
        return os.stat(path).st_mtime > built or (path in self.buffers and self.buffers[path] != self.disk(path))


def line_map(old: str, new: str) -> list[tuple[int, int, int, int, bool]]:
    """The line diff old → new as 1-based half-open blocks (old start, old end, new start, new end,
    equal): every old line lies in exactly one block."""
    matcher = difflib.SequenceMatcher(None, old.split("\n"), new.split("\n"), autojunk=False)
    return [(i1 + 1, i2 + 1, j1 + 1, j2 + 1, tag == "equal")
            for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "insert"]


def moved_line(blocks: list[tuple[int, int, int, int, bool]], line: int) -> int | None:
    """Where an unchanged old line is now; None if the edit touched it."""
    for i1, i2, j1, _, equal in blocks:
        if i1 <= line < i2:
            return j1 + line - i1 if equal else None
    return None


def target_name(record: ReachRecord) -> str | None:
    """The name a source statement spells for the record's target, where one must: not a section,
    nor an offset into a symbol (the source names a local label there)."""
    symbol = record.target.symbol
    if not symbol or symbol.startswith(".") or "+" in symbol:
        return None
    return symbol.split(".llvm.")[0]


def names_target(text: str, record: ReachRecord) -> bool:
    name = target_name(record)
    return name is not None and name in _WORD_RE.findall(text)


def statement_agrees(statement: AsmStatement, record: ReachRecord, arch: Architecture) -> bool:
    """Could this statement have assembled into the record's instruction? A macro invocation is
    judged by the target it names; an instruction by its mnemonic too."""
    operands = " ".join(op.text for op in statement.operands)
    if statement.kind == "macro":
        return names_target(operands, record)
    if statement.kind != "instruction":
        return False
    decoded = record.site.instruction
    if decoded is not None and fold_mnemonic(statement.mnemonic) not in arch.source_spellings(decoded):
        return False
    return names_target(operands, record) or target_name(record) is None


def reanchor(records: Sequence[ReachRecord], lines: Sequence[int], agrees: Callable[[int, ReachRecord], bool],
             line_count: int, blocks: list[tuple[int, int, int, int, bool]] | None) -> dict[int, int]:
    """Index into `records` → the line its statement is on now (records missing are dropped).

    `lines` are the records' DWARF lines. Records with one line, instruction and target move
    together. With `blocks` (the diff from the text the DWARF lines refer to), a line left as it
    was is followed exactly and an edited one is looked for only among the lines that replaced
    it; without, anywhere in the file. Nearest first, each statement taken by one group only."""
    groups: dict[tuple[int, str | None, str], list[int]] = {}
    for index, (record, line) in enumerate(zip(records, lines)):
        groups.setdefault((line, record.site.instruction, record.target.symbol), []).append(index)
    pairs = []
    for key, members in groups.items():
        line, record = key[0], records[members[0]]
        expected, window = line, range(1, line_count + 1)
        if blocks is not None:
            block = next(((i1, i2, j1, j2, eq) for i1, i2, j1, j2, eq in blocks if i1 <= line < i2), None)
            if block is None:
                continue
            i1, _, j1, j2, equal = block
            expected = j1 + line - i1
            window = range(expected, expected + 1) if equal else range(j1, j2)
        pairs += [(abs(candidate - expected), candidate, key) for candidate in window if agrees(candidate, record)]
    placed: dict[int, int] = {}
    claimed: set[tuple[int, str | None, str]] = set()
    done: set[tuple[int, str | None, str]] = set()
    for _, candidate, key in sorted(pairs, key=lambda p: (p[0], p[1])):
        claim = (candidate, key[1], key[2])
        if key in done or claim in claimed:
            continue
        done.add(key)
        claimed.add(claim)
        placed.update((index, candidate) for index in groups[key])
    return placed
