"""Open documents, and where a scan's findings are in the text the editor shows now.

A scan reads each source once (an open buffer first) and its spans refer to that text. The
editor's text then moves on: unsaved edits arrive as incremental `didChange`s (kept by pygls's
workspace), saves change the file on disk. A finding follows its line through a line diff from
the scanned text to the current one; a finding whose line was edited is not shown until the
next scan. Columns are `str` indices here and client units (UTF-16 unless negotiated otherwise)
on the wire: the workspace's PositionCodec converts, against the line they are on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from ..anchor import line_map, moved_line, normalise
from ..edits import Span
from ..findings import Finding


def local_path(uri: str) -> Path | None:
    """The file a `file:` URI names; None for any other scheme (an untitled buffer, a remote file)
    and for a name no file can have (a NUL byte)."""
    path = to_fs_path(uri)
    return Path(path) if path and "\0" not in path else None


@dataclass(frozen=True)
class Shown:
    """A finding where it is in the current text: its span there (str columns) and LSP range."""

    finding: Finding
    span: Span
    range: lsp.Range


class Documents:
    """The scanned text of each file with findings against what the editor has now."""

    def __init__(self, server: LanguageServer) -> None:
        self._server = server
        self.scanned: dict[Path, str] = {}
        self._moves: dict[Path, tuple[str, list | None]] = {}
        self._disk: dict[Path, tuple[tuple[int, int], str]] = {}  # path → ((mtime_ns, size), text)

    def buffers(self) -> dict[Path, str]:
        """The text of every open `file:` document, as the editor holds it."""
        documents = dict(self._server.workspace.text_documents)  # one copy: didOpen may add to it meanwhile
        paths = {uri: local_path(uri) for uri in documents}
        return {path: documents[uri].source for uri, path in paths.items() if path is not None}

    def current(self, path: Path) -> str:
        """The open buffer's text, else the file on disk ('' once it is gone)."""
        document = self._server.workspace.text_documents.get(from_fs_path(str(path)))
        if document is not None:
            return document.source
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            cached = self._disk.get(path)
            if cached is None or cached[0] != key:
                cached = self._disk[path] = (key, path.read_text(errors="replace"))
            return cached[1]
        except OSError:
            return ""

    def rescanned(self, texts: dict[Path, str]) -> None:
        """A new scan's texts replace the old: spans now refer to them."""
        self.scanned = dict(texts)
        self._moves.clear()

    def _line_now(self, path: Path, line: int, now: str) -> int | None:
        scanned = self.scanned.get(path)
        if scanned is None or scanned == now:
            return line
        cached = self._moves.get(path)
        if cached is None or cached[0] != now:
            cached = self._moves[path] = (now, line_map(scanned, now))
        return moved_line(cached[1], line)

    def line_now(self, path: Path, line: int) -> int | None:
        """Where a line of the scanned text is in the current text; None if it was edited."""
        return self._line_now(path, line, self.current(path))

    def locate(self, path: Path, span: Span, now: str | None = None) -> Span | None:
        """`span` of the scanned text in the current text `now`; None if its line was edited."""
        line = self._line_now(path, span.line, self.current(path) if now is None else now)
        return None if line is None else Span(line, span.start, span.end)

    def to_range(self, lines: list[str], span: Span) -> lsp.Range:
        """A span of the current text (`lines`) as an LSP range in the negotiated position encoding."""
        return self._server.workspace.position_codec.range_to_client_units(
            lines, lsp.Range(lsp.Position(span.line - 1, span.start), lsp.Position(span.line - 1, span.end)))

    def edit_range(self, path: Path, span: Span) -> lsp.Range | None:
        """Where an edit made against the scanned text goes in the current one; None if its line was edited."""
        now = self.current(path)
        moved = self.locate(path, span, now)
        return None if moved is None else self.to_range(now.split("\n"), moved)

    def show(self, path: Path, findings: list[Finding]) -> list[Shown]:
        """The findings of `path` still on their statement in the current text (buffer or disk)."""
        now = self.current(path)
        lines = now.split("\n")
        shown = []
        for finding in findings:
            span = self.locate(path, finding.span, now)
            if span is not None and _holds(lines, span, finding.statement):
                shown.append(Shown(finding, span, self.to_range(lines, span)))
        return shown


def _holds(lines: list[str], span: Span, statement: str) -> bool:
    """Is the text under `span` the statement a finding is about?"""
    return 0 < span.line <= len(lines) and normalise(lines[span.line - 1][span.start:span.end]) == statement
