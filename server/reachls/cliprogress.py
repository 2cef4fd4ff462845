"""The command line's progress: a line on the terminal for each stage of a scan, drawn with tqdm.

`cli` loads this module only when the line will be drawn (stderr a terminal, a text report), so a
scan in a pipe, in CI or for a program reading JSON or SARIF imports no progress library at all.
"""

from __future__ import annotations

import threading
from typing import TextIO

from tqdm import tqdm

from .progress import STAGES, Progress

#: A stage's line counts percent of that stage.
PERCENT = 100
#: How often the line is redrawn while its stage tells nothing (the relink waits on the linker):
#: its elapsed time keeps moving, so a long stage does not look like a hung one.
REDRAW_SECONDS = 0.5


class TerminalProgress(Progress):
    """One line per stage, each replacing the one before and erased when the scan ends (finished or
    failed), so the report, or the error line, starts on a clean line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.line: tqdm | None = None
        self.lock = threading.Lock()  # the line is replaced by the scan and redrawn by the timer
        self.ended = threading.Event()
        threading.Thread(target=self._redraw, name="reachls-progress", daemon=True).start()

    def begin(self, stage: str) -> None:
        with self.lock:
            self._erase()
            self.line = tqdm(total=PERCENT, desc=f"reachls: {stage} ({STAGES.index(stage) + 1}/{len(STAGES)})",
                             file=self.stream, leave=False, dynamic_ncols=True,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")

    def advance(self, fraction: float) -> None:
        with self.lock:
            if self.line is not None:
                self.line.update(round(min(max(fraction, 0.0), 1.0) * PERCENT) - self.line.n)

    def end(self) -> None:
        self.ended.set()
        with self.lock:
            self._erase()

    def _redraw(self) -> None:
        while not self.ended.wait(REDRAW_SECONDS):
            with self.lock:
                if self.line is not None:
                    self.line.refresh()

    def _erase(self) -> None:
        if self.line is not None:
            self.line.close()
            self.line = None
