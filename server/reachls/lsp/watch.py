"""Watches build dirs for new artefacts and says when one is completely written.

ld.lld writes its output to a temporary file and renames it; GNU ld and `ld -r` in some builds
write in place, so a file can be seen half-written. An artefact is handed on only after a quiet
period with no events (debouncing a build's burst of writes) and once its size and mtime have
stopped changing. A file that then is still incomplete (an interrupted build) is refused by the
ELF reader, whose truncation check the server reports once while keeping the last good results.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..kbuild import ARTEFACTS

WATCHED_NAMES = frozenset((*ARTEFACTS, "build.log"))
STABLE_CHECKS = 2
STABLE_INTERVAL = 0.2


def wait_until_stable(path: Path, checks: int = STABLE_CHECKS, interval: float = STABLE_INTERVAL) -> bool:
    """Wait until size and mtime hold still for `checks` intervals; False if the file vanished."""
    last = None
    steady = 0
    while steady < checks:
        try:
            stat = path.stat()
        except OSError:
            return False
        current = (stat.st_size, stat.st_mtime_ns)
        steady = steady + 1 if current == last else 0
        last = current
        time.sleep(interval)
    return True


class BuildWatcher(FileSystemEventHandler):
    """Calls `on_ready(build_dir)` once per burst of artefact writes, after they settle."""

    def __init__(self, build_dirs: list[Path], debounce_seconds: float, on_ready: Callable[[Path], None]) -> None:
        self._dirs = {d.resolve(): d for d in build_dirs if d.is_dir()}
        self._debounce = debounce_seconds
        self._on_ready = on_ready
        self._timers: dict[Path, threading.Timer] = {}
        self._changed: dict[Path, set[Path]] = {}
        self._lock = threading.Lock()
        self._observer = Observer()

    def start(self) -> None:
        for directory in self._dirs:
            self._observer.schedule(self, str(directory), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
        self._observer.stop()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw)).resolve()
        if path.name not in WATCHED_NAMES or path.parent not in self._dirs:
            return
        with self._lock:
            self._changed.setdefault(path.parent, set()).add(path)
            if path.parent in self._timers:
                self._timers[path.parent].cancel()
            timer = threading.Timer(self._debounce, self._settle, args=(path.parent,))
            timer.daemon = True
            self._timers[path.parent] = timer
            timer.start()

    def _settle(self, directory: Path) -> None:
        with self._lock:
            changed = self._changed.pop(directory, set())
            self._timers.pop(directory, None)
        ready = [path for path in changed if wait_until_stable(path)]
        if ready:
            self._on_ready(self._dirs[directory])
