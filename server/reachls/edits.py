"""Edits as plain data (file, span, new text): the quick fixes, which the language server only
translates into a WorkspaceEdit and the reports print."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """A range on one line: 1-based line, 0-based columns in `str` indices, end exclusive."""

    line: int
    start: int
    end: int


@dataclass(frozen=True)
class TextEdit:
    path: Path
    span: Span
    new_text: str


@dataclass(frozen=True)
class Fix:
    title: str
    edits: tuple[TextEdit, ...]
    preferred: bool = False
