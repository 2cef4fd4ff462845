"""Work-done progress of a rescan: the client's progress bar follows each build dir's scan stage by stage.

The stages are told (`reachls.progress.Progress`) on the scan worker's thread, while pygls writes
to the client from the event loop; every report is therefore handed to the loop, which sends it
unless the progress has ended. Nothing here waits on the client or can fail a scan: a client
that refuses the token, or does not answer in time, gets no progress at all.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from ..progress import Progress

#: How long a client may take to accept a progress token before the scan goes on without progress.
PROGRESS_ANSWER_SECONDS = 10.0


class RescanProgress:
    """One rescan's token (event-loop side): begun with percentage 0, reported to by the stages of
    each build dir's scan, ended once. The percentage is of the whole rescan, so it only grows."""

    def __init__(self, server: LanguageServer, token: str, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.server = server
        self.token = token
        self.loop = loop
        self.count = count
        self.ended = False

    def stages(self, index: int, build_dir: Path) -> Progress:
        """What the scan of the `index`-th of the rescan's build dirs tells its stages to (on the worker)."""
        return BuildDirStages(self, index, build_dir.name if self.count > 1 else None)

    def report(self, message: str, percentage: int) -> None:
        """Called on the event loop: a report, unless the progress ended (a scan abandoned at shutdown)."""
        if not self.ended:
            self.server.work_done_progress.report(self.token, lsp.WorkDoneProgressReport(message=message,
                                                                                          percentage=percentage))

    def end(self) -> None:
        """Called on the event loop when the rescan is over, whether it completed or not."""
        self.ended = True
        self.server.work_done_progress.end(self.token, lsp.WorkDoneProgressEnd(message="scan complete"))
        self.server.work_done_progress.tokens.pop(self.token, None)


class BuildDirStages(Progress):
    """The stages of one build dir's scan, told on the worker thread, sent through the event loop.

    The message is the stage (with several build dirs, the dir's name first); a report is sent
    only when its percentage or message changes, so a stage advancing in small steps costs the
    wire a hundred messages at most."""

    def __init__(self, rescan: RescanProgress, index: int, label: str | None) -> None:
        self.rescan = rescan
        self.index = index
        self.label = label
        self.stage: str | None = None
        self.sent: tuple[str, int] | None = None

    def begin(self, stage: str) -> None:
        self.stage = stage
        self._report(stage, 0.0)

    def advance(self, fraction: float) -> None:
        if self.stage is not None:
            self._report(self.stage, fraction)

    def _report(self, stage: str, fraction: float) -> None:
        message = stage if self.label is None else f"{self.label}: {stage}"
        percentage = int(100 * (self.index + Progress.overall(stage, fraction)) / self.rescan.count)
        if (message, percentage) == self.sent:
            return
        self.sent = (message, percentage)
        try:
            self.rescan.loop.call_soon_threadsafe(self.rescan.report, message, percentage)
        except RuntimeError:  # the event loop is closed: the server is going away, the scan need not know
            pass


async def begin_rescan_progress(server: LanguageServer, title: str, count: int) -> RescanProgress | None:
    """A work-done progress for a rescan of `count` build dirs, when the client declared
    `window.workDoneProgress` and accepts the token in time; otherwise None (no progress)."""
    capabilities = server.client_capabilities.window
    if not capabilities or not capabilities.work_done_progress:
        return None
    token = f"reachls-scan-{uuid.uuid4()}"
    try:
        await asyncio.wait_for(server.work_done_progress.create_async(token), PROGRESS_ANSWER_SECONDS)
    except Exception:  # a client may refuse the token, or not answer; the scan goes on without progress
        return None
    server.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title="reachls", message=title, percentage=0))
    return RescanProgress(server, token, asyncio.get_running_loop(), count)
