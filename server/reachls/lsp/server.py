"""`reachls serve`: the engine's findings in any LSP editor, kept current while the build runs.

This layer translates; it computes nothing about reach. A scan (pipeline.scan → findings) runs
on a worker thread; its result replaces the published snapshot in one assignment, so hover and
code actions always answer from the last completed scan and never wait for a running one.
Open documents are tracked (incremental sync): diagnostics, hovers and code actions follow
unsaved edits through `documents.Documents`, in the position encoding the client negotiated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import ChainMap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path

from .. import __version__
from ..anchor import SourceTexts
from ..errors import ReachlsError
from ..findings import Findings, PathMapper, source_findings, walk_workspace
from ..history import SiteTrend, record_scan
from ..kbuild import ARTEFACTS, LOG_NAME
from ..lenses import FunctionLens, function_lenses
from ..logparse import looks_like_log
from ..picture import layout_picture, picture_html
from ..pipeline import ScanOptions, ScanResult, scan
from ..progress import SILENT, Progress
from ..record import ReachRecord
from ..report import text_report
from .documents import Documents, Shown, local_path
from .hover import hover_markdown, lens_title
from .notices import Notices, ProblemKind, has_artefact, no_artefact, no_build_dir
from .progress import begin_rescan_progress
from .settings import DEFAULT_SETTINGS, read_settings
from .watch import BuildWatcher
from .wire import ReachProtocol, start_stdio

SEVERITIES = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
              "information": lsp.DiagnosticSeverity.Information, "hint": lsp.DiagnosticSeverity.Hint}
#: How long after the last keystroke diagnostics are moved to follow an unsaved edit.
EDIT_SETTLE_SECONDS = 0.15
T = TypeVar("T")
_JSON = get_converter()
#: The command of a function lens: arguments (uri, position, locations), as `editor.action.showReferences` takes them.
SHOW_REFERENCES = "reachls.showReferences"


@dataclass(frozen=True)
class Published:
    """One completed scan of every build dir: what the editor sees until the next one completes."""

    results: dict[Path, ScanResult] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)
    trends: dict[Path, dict[ReachRecord, SiteTrend]] = field(default_factory=dict)  # per build dir, from its history
    lenses: dict[Path, list[FunctionLens]] = field(default_factory=dict)  # per workspace file, with `codeLens` on


def discover_build_dirs(roots: list[Path], depth: int) -> list[Path]:
    """Directories under the workspace holding a vmlinux.o or vmlinux, or a `build.log` with linker
    diagnostics (a log copied from CI), at most `depth` levels down."""
    return [current for _, current, _, files in walk_workspace(roots, depth)
            if any(name in files for name in ARTEFACTS) or (LOG_NAME in files and looks_like_log(current / LOG_NAME))]


def workspace_roots(params: lsp.InitializeParams) -> tuple[list[Path], list[str]]:
    """The local folders of the workspace (its folders, else rootUri, else rootPath), and the URIs
    of those that are not local folders (searched for nothing; said in the log)."""
    uris = [f.uri for f in params.workspace_folders or []] or [
        u for u in (params.root_uri or (params.root_path and from_fs_path(params.root_path)),) if u]
    paths = {uri: local_path(uri) for uri in uris}
    return [p for p in paths.values() if p is not None], [uri for uri, p in paths.items() if p is None]


def _line_range(line: int) -> lsp.Range:
    return lsp.Range(lsp.Position(line - 1, 0), lsp.Position(line - 1, 0))


class ReachServer(LanguageServer):
    protocol: ReachProtocol

    def __init__(self) -> None:
        super().__init__("reachls", __version__, protocol_cls=ReachProtocol)
        self.settings = DEFAULT_SETTINGS
        self.roots: list[Path] = []
        self.published = Published()
        self.documents = Documents(self)
        self.as_built: dict[Path, str] = {}  # per file, its text at the last scan that found it unchanged since its build
        self.shown: dict[str, list[Shown]] = {}
        self._settling: dict[str, asyncio.TimerHandle] = {}
        self.build_dirs: list[Path] = []
        self.notices = Notices(self)
        self.mapper = PathMapper()
        self.scanner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reachls-scan")
        self.watcher: BuildWatcher | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._scans: set[asyncio.Task[None]] = set()

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        start_stdio(self, stdin, stdout)

    def apply_settings(self, options: Any) -> None:
        """Take the settings in `options`; refused keys keep their value and are said in one message."""
        read = read_settings(options, self.settings)
        self.settings = read.settings
        if read.refused:
            self.notices.settings_refused(read.refused)

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
        self.start_rescan()

    def start_rescan(self, build_dirs: list[Path] | None = None) -> None:
        """A rescan in the background, kept so that `shutdown` can stop it."""
        task = asyncio.ensure_future(self.rescan(build_dirs))
        self._scans.add(task)
        task.add_done_callback(self._scans.discard)

    def stop_scans(self) -> None:
        """`shutdown`: no scan may go on using the worker that is being shut down."""
        for task in self._scans:
            task.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        self.scanner.shutdown(wait=False, cancel_futures=True)

    def _artefact_changed(self, build_dir: Path) -> None:
        """Called from the watcher's thread once an artefact is completely written."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.start_rescan, [build_dir])

    async def rescan(self, build_dirs: list[Path] | None = None) -> None:
        build_dirs = build_dirs or self.build_dirs
        progress = await begin_rescan_progress(self, f"Scanning {len(build_dirs)} build dir(s)", len(build_dirs))
        try:
            results = {d: r for d, r in self.published.results.items() if d in self.build_dirs}
            trends = {d: t for d, t in self.published.trends.items() if d in self.build_dirs}
            for index, build_dir in enumerate(build_dirs):
                await self._scan_into(build_dir, results, trends,
                                      progress.stages(index, build_dir) if progress is not None else SILENT)
            mapper = self.mapper
            findings, lenses = await self._in_worker(self._findings, results, mapper)
            self.notices.mapped(mapper, findings.missing, set(findings.by_path))
            self._publish(Published(results, findings, trends, lenses))
            self.notices.send_status(self.build_dirs, results)
        finally:
            if progress is not None:
                progress.end()

    async def _scan_into(self, build_dir: Path, results: dict[Path, ScanResult],
                         trends: dict[Path, dict[ReachRecord, SiteTrend]], progress: Progress) -> None:
        """Scan one build dir into `results` and record it in its history (`trends`), its stages
        told to `progress`; a dir that cannot be scanned keeps its last good result."""
        if not has_artefact(build_dir):
            self.notices.raise_problem(no_artefact(build_dir))
            return
        options = ScanOptions(engine=self.settings.engine, linker=self.settings.linker,
                              threshold=self.settings.threshold, untrusted_roots=self.linker_untrusted_roots())
        started = time.monotonic()
        try:
            result = await self._in_worker(scan, build_dir, options, progress)
        except ReachlsError as exc:
            self.notices.scan_failed(build_dir, exc, time.monotonic() - started, build_dir in results)
            return
        seconds = time.monotonic() - started
        trends[build_dir] = await self._recorded(result) if self.settings.history else {}
        results[build_dir] = result
        self.notices.scanned(build_dir, result, seconds)

    async def _recorded(self, result: ScanResult) -> dict[ReachRecord, SiteTrend]:
        """Record a scan in its build dir's history; the trend of each reference. A history that
        cannot be written costs the trends, never the scan: said in the log."""
        try:
            recorded = await self._in_worker(record_scan, result, self.settings.history_builds)
        except ReachlsError as exc:
            self.notices.log(f"not recorded in the history: {exc}", lsp.MessageType.Warning)
            return {}
        if recorded.note:
            self.notices.log(recorded.note)
        return recorded.trends

    def linker_untrusted_roots(self) -> tuple[Path, ...]:
        """The folders no linker may be run from: the workspace's, unless `allowWorkspaceLinker`
        (opening an unreviewed tree in an editor must not run a program from it)."""
        return () if self.settings.allow_workspace_linker else tuple(self.roots)

    async def _in_worker(self, function: Callable[..., T], *args: Any) -> T:
        """`function` on the scan worker. After `shutdown` the worker is gone and the scan is
        abandoned (cancelled), wherever it was: a cancellation racing a finished await can be lost."""
        if self.protocol.shut_down:
            raise asyncio.CancelledError
        return await asyncio.get_running_loop().run_in_executor(self.scanner, function, *args)

    def _findings(self, results: dict[Path, ScanResult],
                  mapper: PathMapper) -> tuple[Findings, dict[Path, list[FunctionLens]]]:
        """The findings of every build dir, read against the editor's buffers and the texts as
        built; and, with `codeLens` on, their function lenses."""
        texts = SourceTexts(self.documents.buffers(), dict(self.as_built))
        merged = Findings()
        lenses: dict[Path, list[FunctionLens]] = {}
        for result in results.values():
            findings: Findings = source_findings(result.analysis.records, result.arch, mapper, texts)
            if self.settings.code_lens:
                for path, items in function_lenses(result.analysis.records, findings, mapper).items():
                    lenses.setdefault(path, []).extend(items)
            for path, items in findings.by_path.items():
                merged.by_path.setdefault(path, []).extend(items)
            merged.missing |= findings.missing
            merged.texts.update(findings.texts)
            merged.as_built.update(findings.as_built)
            merged.dropped += findings.dropped
        return merged, lenses

    def _diagnostic(self, shown: Shown) -> lsp.Diagnostic:
        finding = shown.finding
        worst = min(finding.records, key=lambda r: r.worst_first)
        related = [lsp.DiagnosticRelatedInformation(
            lsp.Location(from_fs_path(str(path)), _line_range(self.documents.line_now(path, line) or line)), message)
            for path, line, message in finding.related]
        severity = SEVERITIES.get(self.settings.severity.get(finding.status.value, "warning"),
                                  lsp.DiagnosticSeverity.Warning)
        return lsp.Diagnostic(range=shown.range, message=finding.message, severity=severity,
                              code=worst.kind.name, source="reachls", related_information=related or None)

    def _publish(self, published: Published) -> None:
        lenses_shown = bool(self.published.lenses)
        self.published = published
        self.documents.rescanned(published.findings.texts)
        self.as_built.update(published.findings.as_built)
        dropped = published.findings.dropped
        if dropped:
            note = (f"{len(dropped)} finding(s) not shown: their statement is gone from a source edited since "
                    f"the build (e.g. {dropped[0]})")
            self.notices.log(note)
        for uri in set(self.shown) | {from_fs_path(str(path)) for path in published.findings.by_path}:
            self._show(uri)
        workspace = self.client_capabilities.workspace
        if (published.lenses or lenses_shown) and workspace and workspace.code_lens and workspace.code_lens.refresh_support:
            self.workspace_code_lens_refresh(None)  # the client asks again: new lenses, or none now

    def _show(self, uri: str) -> None:
        """(Re)publish the diagnostics of `uri` where its findings are in the text the editor has now."""
        self._settling.pop(uri, None)
        shown = self._shown(uri)
        if shown:
            self.shown[uri] = shown
        elif self.shown.pop(uri, None) is None and local_path(uri) not in self.published.findings.by_path:
            return  # nothing was shown there and nothing is: no message
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[self._diagnostic(s) for s in shown]))

    def _shown(self, uri: str) -> list[Shown]:
        path = local_path(uri)
        findings = self.published.findings.by_path.get(path, []) if path is not None else []
        return self.documents.show(path, findings) if findings else []

    def edited(self, uri: str) -> None:
        """An open document changed: move its diagnostics once the typing settles."""
        if uri not in self.shown and local_path(uri) not in self.published.findings.by_path:
            return
        if (pending := self._settling.pop(uri, None)) is not None:
            pending.cancel()
        self._settling[uri] = asyncio.get_running_loop().call_later(EDIT_SETTLE_SECONDS, self._show, uri)

    # -- queries (answered from the last completed scan) ------------------------------------

    def findings_at(self, uri: str, position: lsp.Position) -> list[Shown]:
        """Findings under a position in the current text (a site anywhere on its line); both in client units."""
        return [s for s in self._shown(uri) if s.range.start.line == position.line
                and (s.finding.role == "site" or s.range.start.character <= position.character <= s.range.end.character)]

    def code_actions(self, uri: str, span: lsp.Range) -> list[lsp.CodeAction]:
        """Fixes of the findings on the requested lines, only where the current text (buffer or
        disk) under a finding is still its statement, with edits moved to where their lines are now."""
        actions = []
        for shown in self._shown(uri):
            if not (span.start.line <= shown.range.start.line <= span.end.line):
                continue
            diagnostic = self._diagnostic(shown)
            for fix in shown.finding.fixes:
                changes: dict[str, list[lsp.TextEdit]] = {}
                for edit in fix.edits:
                    moved = self.documents.edit_range(edit.path, edit.span)
                    if moved is None:
                        break
                    changes.setdefault(from_fs_path(str(edit.path)), []).append(lsp.TextEdit(moved, edit.new_text))
                else:
                    actions.append(lsp.CodeAction(title=fix.title, kind=lsp.CodeActionKind.QuickFix,
                                                  diagnostics=[diagnostic], is_preferred=fix.preferred or None,
                                                  edit=lsp.WorkspaceEdit(changes=changes)))
        return actions

    def code_lenses(self, uri: str) -> list[lsp.CodeLens]:
        """Function lenses of `uri` (with `codeLens` on), where their lines are in the current text."""
        path = local_path(uri)
        if not self.settings.code_lens or path is None:
            return []
        lenses = []
        for lens in self.published.lenses.get(path, []):
            span = self.documents.edit_range(path, lens.span)
            if span is None:
                continue
            locations = [lsp.Location(from_fs_path(str(place)), _line_range(self.documents.line_now(place, line) or line))
                         for place, line in lens.references]
            arguments = [uri, span.start, locations]
            command = lsp.Command(title=lens_title(lens), command=SHOW_REFERENCES,
                                  arguments=_JSON.unstructure(arguments))
            lenses.append(lsp.CodeLens(range=span, command=command))
        return lenses

    async def picture(self, build_dir: Any = None) -> str:
        """The layout picture (HTML) of the last completed scan of `build_dir` (default: the first
        one scanned), its source paths mapped onto the workspace as the diagnostics' are. Drawn on
        the scan worker, where the path mapper is used too."""
        results = self.published.results
        if isinstance(build_dir, str):
            wanted = Path(build_dir).resolve()
            result = next((r for d, r in results.items() if d.resolve() == wanted), None)
            if result is None:
                raise ReachlsError("no completed scan of this build directory", build_dir)
        elif results:
            result = next(iter(results.values()))
        else:
            raise ReachlsError("no build directory scanned yet")
        mapper = self.mapper
        return await self._in_worker(lambda: picture_html(layout_picture(result),
                                                          lambda file: str(mapper(file) or file)))

    def report(self) -> str:
        return "\n".join(text_report(result) for result in self.published.results.values()) or \
            "reachls: no build directory scanned yet\n"


server = ReachServer()


@server.feature(lsp.INITIALIZE)
def on_initialize(ls: ReachServer, params: lsp.InitializeParams) -> None:
    options = params.initialization_options
    ls.apply_settings(options)
    ls.notices.status_notifications = isinstance(options, dict) and options.get("statusNotifications") is True
    ls.roots, elsewhere = workspace_roots(params)
    if elsewhere:
        ls.notices.log(f"not searched for build dirs (not local folders): {', '.join(elsewhere)}")


@server.feature(lsp.INITIALIZED)
def on_initialized(ls: ReachServer, params: lsp.InitializedParams) -> None:
    ls.loop = asyncio.get_running_loop()
    ls.restart()


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
def on_configuration(ls: ReachServer, params: lsp.DidChangeConfigurationParams) -> None:
    if params.settings not in (None, {}):
        ls.apply_settings(params.settings)
    ls.restart()


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: ReachServer, params: lsp.HoverParams) -> lsp.Hover | None:
    found = ls.findings_at(params.text_document.uri, params.position)
    if not found:
        return None
    trends = ChainMap(*ls.published.trends.values())
    text = "\n\n---\n\n".join(hover_markdown(s.finding, trends) for s in found)
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=found[0].range)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def on_code_action(ls: ReachServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    return ls.code_actions(params.text_document.uri, params.range)


@server.feature(lsp.TEXT_DOCUMENT_CODE_LENS, lsp.CodeLensOptions(resolve_provider=False))
def on_code_lens(ls: ReachServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
    return ls.code_lenses(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def on_did_open(ls: ReachServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.edited(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def on_did_change(ls: ReachServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.edited(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def on_did_close(ls: ReachServer, params: lsp.DidCloseTextDocumentParams) -> None:
    """Unsaved edits are gone with the buffer: the file on disk is the text again."""
    ls.edited(params.text_document.uri)


@server.command("reachls.rescan")
async def on_rescan(ls: ReachServer, *args: Any) -> str:
    await ls.rescan()
    return ls.report()


@server.command(SHOW_REFERENCES)
def on_show_references(ls: ReachServer, *args: Any) -> list[Any]:
    """A lens clicked in a client that runs server commands: the references' locations, for the
    client to show (VS Code's extension turns the lens into `editor.action.showReferences` itself)."""
    return args[2] if len(args) == 3 and isinstance(args[2], list) else []


@server.command("reachls.report")
def on_report(ls: ReachServer, *args: Any) -> str:
    return ls.report()


@server.command("reachls.picture")
async def on_picture(ls: ReachServer, *args: Any) -> str:
    """`[buildDir]` → the HTML page of `reachls picture` for it."""
    return await ls.picture(*args[:1])


@server.feature(lsp.SHUTDOWN)
def on_shutdown(ls: ReachServer, params: None) -> None:
    ls.stop_scans()


def serve() -> None:
    """Run the server on stdio."""
    logging.basicConfig(level=os.environ.get("REACHLS_LOG", "WARNING"))
    server.start_io()
