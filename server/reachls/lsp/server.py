"""`reachls serve`: the engine's findings in any LSP editor, kept current while the build runs.

This layer translates; it computes nothing about reach. A scan (pipeline.scan → findings) runs
on a worker thread; its result replaces the published snapshot in one assignment, so hover and
code actions always answer from the last completed scan and never wait for a running one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .. import __version__
from ..errors import ReachlsError
from ..findings import WORKSPACE_SKIPPED_DIRS, Finding, Findings, PathMapper, source_findings
from ..kbuild import ARTEFACTS, LOG_NAME
from ..linklog import looks_like_log
from ..pipeline import ScanOptions, ScanResult, scan
from ..record import DEFAULT_THRESHOLD
from ..report import text_report
from ..sources.asm import Span
from .hover import hover_markdown
from .notices import Notices, ProblemKind, has_artefact, no_artefact, no_build_dir
from .watch import BuildWatcher

DEFAULT_SEVERITY = {"overflow": "error", "veneer": "information", "at-risk": "warning", "fragile": "information"}
SEVERITIES = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
              "information": lsp.DiagnosticSeverity.Information, "hint": lsp.DiagnosticSeverity.Hint}


@dataclass(frozen=True)
class Settings:
    """Client settings (initializationOptions, or the `reachls` section of didChangeConfiguration)."""

    build_dirs: tuple[Path, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    engine: str = "auto"
    linker: str = "auto"
    path_mappings: tuple[tuple[str, str], ...] = ()
    severity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    discovery_depth: int = 4
    debounce_seconds: float = 0.5

    @classmethod
    def from_json(cls, options: Any) -> "Settings":
        options = options if isinstance(options, dict) else {}
        options = options.get("reachls", options)
        mappings = tuple((m["from"], m["to"]) for m in options.get("pathMappings", []) if "from" in m and "to" in m)
        return cls(
            build_dirs=tuple(Path(os.path.expanduser(d)) for d in options.get("buildDirs", [])),
            threshold=float(options.get("threshold", DEFAULT_THRESHOLD)),
            engine=options.get("engine", "auto"),
            linker=options.get("linker", "auto"),
            path_mappings=mappings,
            severity={**DEFAULT_SEVERITY, **options.get("severity", {})},
            discovery_depth=int(options.get("discoveryDepth", 4)),
            debounce_seconds=float(options.get("debounceSeconds", 0.5)),
        )


@dataclass(frozen=True)
class Published:
    """One completed scan of every build dir: what the editor sees until the next one completes."""

    results: dict[Path, ScanResult] = field(default_factory=dict)
    by_uri: dict[str, list[tuple[Finding, lsp.Diagnostic]]] = field(default_factory=dict)


def discover_build_dirs(roots: list[Path], depth: int) -> list[Path]:
    """Directories under the workspace holding a vmlinux.o or vmlinux, or a `build.log` with linker
    diagnostics (a log copied from CI), at most `depth` levels down."""
    found = []
    for root in roots:
        for current, dirs, files in os.walk(root):
            level = len(Path(current).relative_to(root).parts)
            dirs[:] = sorted(d for d in dirs if d not in WORKSPACE_SKIPPED_DIRS) if level < depth else []
            if any(name in files for name in ARTEFACTS) or (
                    LOG_NAME in files and looks_like_log(Path(current) / LOG_NAME)):
                found.append(Path(current))
    return found


def _range(span: Span) -> lsp.Range:
    return lsp.Range(lsp.Position(span.line - 1, span.start), lsp.Position(span.line - 1, span.end))


def _line_range(line: int) -> lsp.Range:
    return lsp.Range(lsp.Position(line - 1, 0), lsp.Position(line - 1, 0))


class ReachServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("reachls", __version__)
        self.settings = Settings()
        self.roots: list[Path] = []
        self.published = Published()
        self.build_dirs: list[Path] = []
        self.notices = Notices(self)
        self.mapper = PathMapper()
        self.scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reachls-scan")
        self.watcher: BuildWatcher | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- scans -------------------------------------------------------------------------------

    def restart(self) -> None:
        """(Re)discover build dirs, (re)start the watcher, rescan everything."""
        self.build_dirs = list(self.settings.build_dirs) or discover_build_dirs(self.roots,
                                                                                self.settings.discovery_depth)
        self.mapper = PathMapper(self.settings.path_mappings, tuple(self.roots), self.settings.discovery_depth)
        self.notices.forget_build_dirs(self.build_dirs)
        if self.build_dirs:
            self.notices.clear_problem(ProblemKind.NO_BUILD_DIR)
        else:
            self.notices.raise_problem(no_build_dir(self.roots, self.settings.discovery_depth))
        if self.watcher is not None:
            self.watcher.stop()
        self.watcher = BuildWatcher(self.build_dirs, self.settings.debounce_seconds, self._artefact_changed)
        self.watcher.start()
        asyncio.ensure_future(self.rescan())

    def _artefact_changed(self, build_dir: Path) -> None:
        """Called from the watcher's thread once an artefact is completely written."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.rescan([build_dir])))

    async def rescan(self, build_dirs: list[Path] | None = None) -> None:
        build_dirs = build_dirs or self.build_dirs
        token = await self._begin_progress(f"Scanning {len(build_dirs)} build dir(s)")
        try:
            results = {d: r for d, r in self.published.results.items() if d in self.build_dirs}
            for build_dir in build_dirs:
                await self._scan_into(build_dir, results)
            mapper = self.mapper
            findings, missing = await asyncio.get_running_loop().run_in_executor(
                self.scanner, self._findings, results, mapper)
            self.notices.mapped(mapper, missing)
            self._publish(Published(results, findings))
            self.notices.send_status(self.build_dirs, results)
        finally:
            self._end_progress(token)

    async def _scan_into(self, build_dir: Path, results: dict[Path, ScanResult]) -> None:
        """Scan one build dir into `results`; a dir that cannot be scanned keeps its last good result."""
        if not has_artefact(build_dir):
            self.notices.raise_problem(no_artefact(build_dir))
            return
        options = ScanOptions(engine=self.settings.engine, linker=self.settings.linker,
                              threshold=self.settings.threshold)
        started = time.monotonic()
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.scanner, scan, build_dir, options)
        except ReachlsError as exc:
            self.notices.scan_failed(build_dir, exc, time.monotonic() - started, build_dir in results)
            return
        results[build_dir] = result
        self.notices.scanned(build_dir, result, time.monotonic() - started)

    def _findings(self, results: dict[Path, ScanResult], mapper: PathMapper
                  ) -> tuple[dict[str, list[tuple[Finding, lsp.Diagnostic]]], set[str]]:
        """Diagnostics by document URI, and the DWARF files found in no workspace folder."""
        by_uri: dict[str, list[tuple[Finding, lsp.Diagnostic]]] = {}
        missing: set[str] = set()
        for result in results.values():
            findings: Findings = source_findings(result.analysis.records, result.arch, mapper)
            missing |= findings.missing
            for path, items in findings.by_path.items():
                uri = from_fs_path(str(path))
                by_uri.setdefault(uri, []).extend((f, self._diagnostic(f)) for f in items)
        return by_uri, missing

    def _diagnostic(self, finding: Finding) -> lsp.Diagnostic:
        worst = min(finding.records, key=lambda r: r.worst_first)
        related = [lsp.DiagnosticRelatedInformation(lsp.Location(from_fs_path(str(path)), _line_range(line)), message)
                   for path, line, message in finding.related]
        severity = SEVERITIES.get(self.settings.severity.get(finding.status.value, "warning"),
                                  lsp.DiagnosticSeverity.Warning)
        return lsp.Diagnostic(range=_range(finding.span), message=finding.message, severity=severity,
                              code=worst.kind.name, source="reachls", related_information=related or None)

    def _publish(self, published: Published) -> None:
        previous = set(self.published.by_uri)
        self.published = published
        for uri, items in published.by_uri.items():
            self.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[d for _, d in items]))
        for uri in previous - set(published.by_uri):
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    async def _begin_progress(self, title: str) -> str | None:
        capabilities = self.client_capabilities.window
        if not capabilities or not capabilities.work_done_progress:
            return None
        token = f"reachls-scan-{uuid.uuid4()}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception:  # a client may refuse the token; the scan goes on without progress
            return None
        self.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title="reachls", message=title))
        return token

    def _end_progress(self, token: str | None) -> None:
        if token is not None:
            self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message="scan complete"))

    # -- queries (answered from the last completed scan) ------------------------------------

    def findings_at(self, uri: str, position: lsp.Position) -> list[tuple[Finding, lsp.Diagnostic]]:
        return [(f, d) for f, d in self.published.by_uri.get(uri, [])
                if d.range.start.line == position.line
                and (f.role == "site" or d.range.start.character <= position.character <= d.range.end.character)]

    def code_actions(self, uri: str, span: lsp.Range) -> list[lsp.CodeAction]:
        actions = []
        for finding, diagnostic in self.published.by_uri.get(uri, []):
            if not (span.start.line <= diagnostic.range.start.line <= span.end.line):
                continue
            for fix in finding.fixes:
                changes: dict[str, list[lsp.TextEdit]] = {}
                for edit in fix.edits:
                    changes.setdefault(from_fs_path(str(edit.path)), []).append(
                        lsp.TextEdit(_range(edit.span), edit.new_text))
                actions.append(lsp.CodeAction(title=fix.title, kind=lsp.CodeActionKind.QuickFix,
                                              diagnostics=[diagnostic], is_preferred=fix.preferred or None,
                                              edit=lsp.WorkspaceEdit(changes=changes)))
        return actions

    def report(self) -> str:
        return "\n".join(text_report(result) for result in self.published.results.values()) or \
            "reachls: no build directory scanned yet\n"


server = ReachServer()


@server.feature(lsp.INITIALIZE)
def on_initialize(ls: ReachServer, params: lsp.InitializeParams) -> None:
    ls.settings = Settings.from_json(params.initialization_options)
    ls.notices.status_notifications = isinstance(params.initialization_options, dict) and bool(
        params.initialization_options.get("statusNotifications"))
    folders = params.workspace_folders or []
    ls.roots = [Path(to_fs_path(f.uri)) for f in folders] or (
        [Path(to_fs_path(params.root_uri))] if params.root_uri else [])


@server.feature(lsp.INITIALIZED)
def on_initialized(ls: ReachServer, params: lsp.InitializedParams) -> None:
    ls.loop = asyncio.get_running_loop()
    ls.restart()


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
def on_configuration(ls: ReachServer, params: lsp.DidChangeConfigurationParams) -> None:
    if isinstance(params.settings, dict) and params.settings:
        ls.settings = Settings.from_json(params.settings)
    ls.restart()


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: ReachServer, params: lsp.HoverParams) -> lsp.Hover | None:
    found = ls.findings_at(params.text_document.uri, params.position)
    if not found:
        return None
    text = "\n\n---\n\n".join(hover_markdown(f) for f, _ in found)
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=found[0][1].range)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def on_code_action(ls: ReachServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    return ls.code_actions(params.text_document.uri, params.range)


@server.command("reachls.rescan")
async def on_rescan(ls: ReachServer, *args: Any) -> str:
    await ls.rescan()
    return ls.report()


@server.command("reachls.report")
def on_report(ls: ReachServer, *args: Any) -> str:
    return ls.report()


@server.feature(lsp.SHUTDOWN)
def on_shutdown(ls: ReachServer, params: None) -> None:
    if ls.watcher is not None:
        ls.watcher.stop()
    ls.scanner.shutdown(wait=False, cancel_futures=True)


def serve() -> None:
    """Run the server on stdio."""
    logging.basicConfig(level=os.environ.get("REACHLS_LOG", "WARNING"))
    server.start_io()
