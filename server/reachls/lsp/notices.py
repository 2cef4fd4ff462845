"""What the user is told about scans, so that no state of the server reads as a silent zero.

A problem (no build dir, a build dir without an artefact, an artefact that cannot be read, DWARF
files that map to no workspace file) is logged and shown once in words that say what to do, and
stays listed in `reachls/scanStatus` until it is gone. Each scan is logged with what it read and
found. Clients that show the state themselves (`"statusNotifications": true` in
initializationOptions) get no `window/showMessage` for problems: they show them with an action.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from ..findings import PathMapper
from ..kbuild import ARTEFACTS, LOG_NAME
from ..pipeline import ScanResult
from ..record import Status
from ..messages import built_at, unchecked_note

log = logging.getLogger("reachls.lsp")

SCAN_STATUS = "reachls/scanStatus"
COUNTED_STATUSES = (Status.OVERFLOW, Status.VENEER, Status.AT_RISK, Status.FRAGILE)
READABLE_NAMES = " or ".join((", ".join(ARTEFACTS), LOG_NAME))


class ProblemKind(str, Enum):
    NO_BUILD_DIR = "no-build-dir"
    NO_ARTEFACT = "no-artefact"
    UNREADABLE = "unreadable"
    UNMAPPED_SOURCES = "unmapped-sources"


@dataclass(frozen=True)
class Problem:
    """Something that leaves the editor without findings it should have, and what to do about it."""

    kind: ProblemKind
    message: str
    build_dir: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message,
                "buildDir": None if self.build_dir is None else str(self.build_dir)}


def no_build_dir(roots: list[Path], depth: int) -> Problem:
    where = ", ".join(str(root) for root in roots) or "the workspace (no folder is open)"
    return Problem(ProblemKind.NO_BUILD_DIR,
                   f"no build directory with {READABLE_NAMES} under {where} (searched {depth} levels); "
                   "set reachls.buildDirs to your O= directory")


def has_artefact(build_dir: Path) -> bool:
    """Whether there is anything to scan: a build dir with an artefact or a log (or an ELF file given as one)."""
    return build_dir.is_file() or any((build_dir / name).is_file() for name in (*ARTEFACTS, LOG_NAME))


def no_artefact(build_dir: Path) -> Problem:
    state = "does not exist" if not build_dir.is_dir() else f"holds no {READABLE_NAMES}"
    return Problem(ProblemKind.NO_ARTEFACT,
                   f"build directory {build_dir} {state}; build the kernel there (make O={build_dir} ...) "
                   "or set reachls.buildDirs to the directory that has them", build_dir)


def unreadable(build_dir: Path, error: Exception, keeping_last: bool) -> Problem:
    kept = "; the findings of the last good scan stay" if keeping_last else ""
    return Problem(ProblemKind.UNREADABLE, f"cannot read the build in {build_dir}: {error}{kept}; "
                                           "rebuild it and the scan runs again", build_dir)


def unmapped_sources(missing: set[str], outside: set[Path], ambiguity: str | None) -> Problem:
    """DWARF files no workspace folder holds (found nowhere, or found outside the workspace, where
    their diagnostics go), and build trees the workspace holds twice."""
    mapping = 'set reachls.pathMappings ({"from": <path in the build>, "to": <workspace folder>})'
    said = [f"{len(missing)} source file(s) named by DWARF are not in the workspace (e.g. {sorted(missing)[0]}); "
            f"open the tree the kernel was built from, or {mapping}"] if missing else []
    said += [f"{len(outside)} source file(s) with findings are outside the workspace (e.g. {sorted(outside)[0]}), "
             f"their diagnostics are there; open that tree, or {mapping}"] if outside else []
    return Problem(ProblemKind.UNMAPPED_SOURCES, "; ".join([*said, *([ambiguity] if ambiguity else [])]))


def artefact_mtime(result: ScanResult) -> float:
    """When the artefact read was written, taken as the scan completes; 0 if it is already gone."""
    try:
        return result.inputs.artefact.stat().st_mtime
    except OSError:
        return 0.0


def scan_log_line(build_dir: Path, result: ScanResult, mtime: float, seconds: float) -> str:
    """One scan as the log keeps it: what was read, how it was placed, how long it took, what it found."""
    analysis = result.analysis
    counts = ", ".join(f"{analysis.counts.get(status, 0)} {status.value}" for status in COUNTED_STATUSES)
    lines = [f"scanned {build_dir}: {result.inputs.artefact} (written {built_at(mtime)}), "
             f"placed by {analysis.placement.placed_by}, {seconds:.2f} s: {counts}, "
             f"{analysis.unresolved} unchecked, of {analysis.total + analysis.unresolved} short-reach references"]
    lines += [f"  note: {note}" for note in (*analysis.notes, *result.notes)]
    return "\n".join(lines)


class Notices:
    """The server's messages to the user: problems once, a log line per scan, the status notification."""

    def __init__(self, server: LanguageServer) -> None:
        self._server = server
        self.status_notifications = False
        self._problems: dict[tuple[ProblemKind, Path | None], Problem] = {}
        self._shown: set[Problem] = set()
        self._unchecked_shown: set[Path] = set()
        self._mtimes: dict[Path, float] = {}

    def log(self, message: str, level: lsp.MessageType = lsp.MessageType.Info) -> None:
        log.log(logging.WARNING if level is lsp.MessageType.Warning else logging.INFO, "%s", message)
        self._server.window_log_message(lsp.LogMessageParams(type=level, message=f"reachls: {message}"))

    def _warn(self, message: str, show: bool = True) -> None:
        """Logged as a warning, and shown where the user looks unless `show` is off."""
        self.log(message, lsp.MessageType.Warning)
        if show:
            self._server.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Warning,
                                                                   message=f"reachls: {message}"))

    def settings_refused(self, message: str) -> None:
        """Settings the user wrote that cannot be used: said each time they are sent, statusNotifications or not."""
        self._warn(message)

    def raise_problem(self, problem: Problem) -> None:
        """Keep `problem` listed until cleared; log and show it unless this very problem was already."""
        self._problems[(problem.kind, problem.build_dir)] = problem
        if problem in self._shown:
            return
        self._shown.add(problem)
        self._warn(problem.message, show=not self.status_notifications)

    def clear_problem(self, kind: ProblemKind, build_dir: Path | None = None) -> None:
        """The problem is gone: should it come back, it is shown again."""
        problem = self._problems.pop((kind, build_dir), None)
        self._shown.discard(problem)

    def forget_build_dirs(self, keep: list[Path]) -> None:
        """Problems of build dirs no longer scanned (settings changed) are no longer listed."""
        for key in [key for key in self._problems if key[1] is not None and key[1] not in keep]:
            self.clear_problem(*key)

    def mapped(self, mapper: PathMapper, missing: set[str], shown: set[Path]) -> None:
        """What source mapping learned (logged once, as learned) and what it could not map onto the
        workspace (a problem): files found nowhere, files `shown` with findings outside it, ties."""
        for note in mapper.take_notes():
            self.log(note)
        outside = {path for path in shown if not mapper.in_workspace(path)}
        ambiguity = mapper.ambiguity()
        if missing or outside or ambiguity:
            self.raise_problem(unmapped_sources(missing, outside, ambiguity))
        else:
            self.clear_problem(ProblemKind.UNMAPPED_SOURCES)

    def scanned(self, build_dir: Path, result: ScanResult, seconds: float) -> None:
        self.clear_problem(ProblemKind.NO_ARTEFACT, build_dir)
        self.clear_problem(ProblemKind.UNREADABLE, build_dir)
        self._mtimes[build_dir] = artefact_mtime(result)
        self.log(scan_log_line(build_dir, result, self._mtimes[build_dir], seconds))
        self._unchecked_once(build_dir, result)

    def scan_failed(self, build_dir: Path, error: Exception, seconds: float, keeping_last: bool) -> None:
        self.log(f"scan of {build_dir} failed after {seconds:.2f} s: {error}", lsp.MessageType.Error)
        self.raise_problem(unreadable(build_dir, error, keeping_last))

    def _unchecked_once(self, build_dir: Path, result: ScanResult) -> None:
        """References the scan could not check: said once per build dir, not again on each rebuild."""
        note = unchecked_note(result.analysis)
        if note is None or build_dir in self._unchecked_shown:
            return
        self._unchecked_shown.add(build_dir)
        self._warn(f"{build_dir}: {note}")

    def send_status(self, build_dirs: list[Path], results: dict[Path, ScanResult]) -> None:
        """`reachls/scanStatus` (documented in ARCHITECTURE.md, "LSP extensions"): the state after a scan."""
        counts = {status.value: sum(r.analysis.counts.get(status, 0) for r in results.values())
                  for status in COUNTED_STATUSES}
        self._server.protocol.notify(SCAN_STATUS, {
            "buildDirs": [str(d) for d in build_dirs],
            "scanning": False,
            "counts": counts,
            "unchecked": sum(r.analysis.unresolved for r in results.values()),
            "problems": [p.to_json() for p in self._problems.values()],
            "artefacts": [{"buildDir": str(d), "path": str(r.inputs.artefact), "mtime": self._mtimes.get(d, 0.0)}
                          for d, r in results.items()],
        })
