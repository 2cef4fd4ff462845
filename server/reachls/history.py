"""Headroom over time: each recorded scan of a build dir kept in a SQLite database, and the trend
of each reference across the builds recorded.

A reference at 91 % of its reach is news when it was at 60 % a few builds ago. So a scan can be
recorded (`reachls scan --record`, and every completed scan of the language server): the build
it read, identified by what is there (the ELF build-id, else a hash of the artefact's bytes; its
mtime and the tree's git commit kept beside), and each reference by its rebuild-stable
`SiteKey` (function + offset, relocation type, target), which survives a rebuild where an address
does not. A scan of the build recorded last replaces that build's rows: rescanning is not building.

Where: `.reachls-history.sqlite` inside the build dir. It then belongs to the build (it goes
with `make clean`/`rm -rf O=`), the CLI and the editor find the same file without agreeing on a
key, and SQLite's WAL files sit beside it on the build's own filesystem. A build dir that cannot
be written (a read-only mount, another user's tree) falls back to the user's cache, keyed by
the build dir's resolved path, with a note saying so; reading looks in both.

Both the CLI and the server may write at once: WAL mode, a busy timeout, and every write in one
`BEGIN IMMEDIATE` transaction. What is kept is what the scan reported (`--all`: every reference;
a lower `--threshold` starts trends earlier), at most `MAX_SITES_PER_BUILD` per build (worst
first), and the newest `keep` builds: the size is bounded. Scanning ok references too by default
was measured against this: on a real arm64 kernel it took a scan from 3.4 s to 11 s and 90 to
400 MB, and none of them was past half its reach.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import ReachlsError
from .pipeline import ScanResult
from .record import ReachRecord, SiteKey

HISTORY_NAME = ".reachls-history.sqlite"
DEFAULT_KEEP = 100  # builds kept per build dir
MAX_KEEP = 100_000
MAX_SITES_PER_BUILD = 10_000
TREND_BUILDS = 3  # the hover's "over the last 3 builds"
BUSY_SECONDS = 10.0
GIT_SECONDS = 5.0

#: Schema versions (PRAGMA user_version): MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS = (
    """
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        identity TEXT NOT NULL,
        artefact TEXT NOT NULL,
        artefact_mtime REAL NOT NULL,
        git_commit TEXT,
        recorded_at REAL NOT NULL
    );
    CREATE TABLE sites (
        build INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
        function TEXT NOT NULL,
        offset INTEGER,
        relocation TEXT NOT NULL,
        target TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        status TEXT NOT NULL,
        distance INTEGER,
        headroom INTEGER,
        usage REAL,
        file TEXT,
        line INTEGER
    );
    CREATE INDEX sites_by_build ON sites(build);
    CREATE INDEX sites_by_key ON sites(function, relocation, target, offset, ordinal);
    """,
)


class CannotWrite(ReachlsError):
    """The history cannot be made or written where it was looked for (the cache is the fallback)."""


@dataclass(frozen=True)
class BuildIdentity:
    """What a build is: `identity` (`build-id:…` or `sha256:…`) decides; the rest describes it."""

    identity: str
    artefact: str
    artefact_mtime: float
    git_commit: str | None


@dataclass(frozen=True)
class Build:
    """One recorded build, numbered from 1 (oldest kept) in `number`; `id` is its row."""

    number: int
    id: int
    identity: str
    artefact_mtime: float
    git_commit: str | None
    recorded_at: float


@dataclass(frozen=True)
class SiteTrend:
    """One reference's headroom over the builds recorded (`headrooms[i]` in `builds[i]`, None where
    it was not recorded or had no distance), oldest first.

    `rate`: bytes of headroom gained per build (negative: shrinking), from the first to the last
    build that has a headroom; `change`: the gain over the last `span` builds (at most
    `TREND_BUILDS`); `builds_to_overflow`: at that rate, how many more builds until it is out of
    range (0: it is now; None: it is not shrinking, or there is only one figure)."""

    key: SiteKey
    ordinal: int
    builds: tuple[Build, ...]
    headrooms: tuple[int | None, ...]
    statuses: tuple[str | None, ...]

    @property
    def points(self) -> list[tuple[int, int]]:
        """(position among the builds, headroom) where there is a headroom."""
        return [(i, h) for i, h in enumerate(self.headrooms) if h is not None]

    @property
    def headroom(self) -> int | None:
        return self.headrooms[-1]

    @property
    def rate(self) -> float | None:
        points = self.points
        if len(points) < 2:
            return None
        (first, old), (last, new) = points[0], points[-1]
        return (new - old) / (last - first)

    @property
    def _recent(self) -> list[tuple[int, int]]:
        """The points among the last TREND_BUILDS builds."""
        return [(i, h) for i, h in self.points if i >= len(self.headrooms) - TREND_BUILDS]

    @property
    def span(self) -> int:
        """How many of the last builds `change` is over (from the earliest of the last TREND_BUILDS with a figure)."""
        recent = self._recent
        return len(self.headrooms) - recent[0][0] if recent else 0

    @property
    def change(self) -> int | None:
        recent = self._recent
        if self.headroom is None or len(recent) < 2:
            return None
        return recent[-1][1] - recent[0][1]

    @property
    def builds_to_overflow(self) -> int | None:
        headroom, rate = self.headroom, self.rate
        if headroom is None:
            return None
        if headroom < 0:
            return 0
        if rate is None or rate >= 0:
            return None
        return int(headroom // -rate) + 1


@dataclass(frozen=True)
class Recorded:
    """A scan recorded: where, as which build, the trend of each of its recorded references (by
    record), and a note to show (the fallback location), or None."""

    path: Path
    build: Build
    trends: dict[ReachRecord, SiteTrend]
    note: str | None


def history_paths(build_dir: Path) -> tuple[Path, Path]:
    """The database inside the build dir, and its fallback in the user's cache."""
    resolved = build_dir.resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reachls" / "history"
    key = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:24]
    return resolved / HISTORY_NAME, cache / f"{key}.sqlite"


def build_dir_of(result: ScanResult) -> Path:
    """The directory a scan's history belongs to: its build dir, or the artefact's directory."""
    return result.inputs.build_dir or result.inputs.artefact.parent


def build_identity(artefact: Path) -> BuildIdentity:
    """The build at `artefact`: its GNU build-id when a linked image has one, else the SHA-256 of its bytes."""
    try:
        with open(artefact, "rb") as stream:
            identity = _build_id(stream)
            if identity is None:
                stream.seek(0)
                identity = "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()
            mtime = os.fstat(stream.fileno()).st_mtime
    except OSError as exc:
        raise ReachlsError(f"cannot read for the history: {exc.strerror or exc}", str(artefact)) from None
    return BuildIdentity(identity, str(artefact), mtime, git_commit(artefact.parent))


def _build_id(stream) -> str | None:
    """The NT_GNU_BUILD_ID of a linked ELF image, from its PT_NOTE segments (a relocatable object
    has none; its section list, 100 k entries in a kernel's vmlinux.o, is never walked here)."""
    try:
        elf = ELFFile(stream)
        for segment in elf.iter_segments(type="PT_NOTE"):
            for note in segment.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return f"build-id:{note['n_desc']}"
    except (ELFError, ValueError, KeyError, OSError):  # not an ELF (a linker log), or damaged notes: hash it
        return None
    return None


def git_commit(directory: Path) -> str | None:
    """HEAD of the git tree holding `directory` (a kbuild O= dir: its `source` link's tree), or None.

    git runs without a shell, with a time limit, reading no input, and with the options that could
    make it run a program from the tree's own config turned off."""
    git = shutil.which("git")
    source = directory / "source"
    tree = source.resolve() if source.is_symlink() and source.is_dir() else directory
    if git is None:
        return None
    try:
        done = subprocess.run([git, "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-C", str(tree),
                               "rev-parse", "--verify", "--quiet", "HEAD"],
                              capture_output=True, text=True, timeout=GIT_SECONDS, stdin=subprocess.DEVNULL,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) in (40, 64) else None


def recorded_records(records: list[ReachRecord]) -> list[ReachRecord]:
    """What a build keeps of a scan's records: the worst MAX_SITES_PER_BUILD."""
    return sorted(records, key=lambda r: r.worst_first)[:MAX_SITES_PER_BUILD]


def keyed(records: list[ReachRecord]) -> list[tuple[SiteKey, int, ReachRecord]]:
    """Each record with its key and its ordinal among the records sharing that key (in site order),
    so that two references with one key pair up in order across builds."""
    ordered = sorted(records, key=lambda r: (r.site.section, r.site.offset))
    seen: dict[SiteKey, int] = defaultdict(int)
    rows = []
    for record in ordered:
        key = record.site_key
        rows.append((key, seen[key], record))
        seen[key] += 1
    return rows


class History:
    """One build dir's history database, open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
                raise CannotWrite(f"cannot be written there ({exc})", str(path)) from None
            raise ReachlsError(f"history database unusable: {exc}", str(path)) from None

    def close(self) -> None:
        if getattr(self, "_db", None) is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): a second writer waits its turn
        (busy timeout) instead of failing midway on a lock upgrade."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ReachlsError(f"history database has schema {version}, newer than this reachls reads "
                               f"({len(MIGRATIONS)})", str(self.path))
        if version == len(MIGRATIONS):
            return
        with self._writing() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated meanwhile
            for step in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {step + 1}")

    def record(self, identity: BuildIdentity, records: list[ReachRecord], keep: int = DEFAULT_KEEP) -> int:
        """Record a build's references (`recorded_records` of them); the id of its build row. The build
        recorded last, seen again, has its rows replaced; older builds beyond the newest `keep` are dropped."""
        rows = keyed(recorded_records(records))
        try:
            with self._writing() as db:
                last = db.execute("SELECT id, identity FROM builds ORDER BY id DESC LIMIT 1").fetchone()
                if last is not None and last[1] == identity.identity:
                    build = last[0]
                    db.execute("UPDATE builds SET artefact = ?, artefact_mtime = ?, git_commit = ?, recorded_at = ? "
                               "WHERE id = ?", (identity.artefact, identity.artefact_mtime, identity.git_commit,
                                                time.time(), build))
                    db.execute("DELETE FROM sites WHERE build = ?", (build,))
                else:
                    build = db.execute("INSERT INTO builds (identity, artefact, artefact_mtime, git_commit, recorded_at) "
                                       "VALUES (?, ?, ?, ?, ?)", (identity.identity, identity.artefact,
                                                                  identity.artefact_mtime, identity.git_commit,
                                                                  time.time())).lastrowid
                db.executemany("INSERT INTO sites VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                    (build, key.function, key.offset, key.relocation, key.target, ordinal, record.status.value,
                     record.distance, record.headroom, record.usage,
                     record.site.location.file if record.site.location else None,
                     record.site.location.line if record.site.location else None)
                    for key, ordinal, record in rows])
                db.execute("DELETE FROM builds WHERE id NOT IN (SELECT id FROM builds ORDER BY id DESC LIMIT ?)",
                           (max(1, keep),))
        except sqlite3.Error as exc:
            raise ReachlsError(f"cannot record in the history: {exc}", str(self.path)) from None
        return build

    def builds(self) -> tuple[Build, ...]:
        rows = self._read("SELECT id, identity, artefact_mtime, git_commit, recorded_at FROM builds ORDER BY id")
        return tuple(Build(n, *row) for n, row in enumerate(rows, 1))

    def _read(self, query: str, parameters: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(query, parameters).fetchall()
        except sqlite3.Error as exc:
            raise ReachlsError(f"cannot read the history: {exc}", str(self.path)) from None

    def trends(self, build: int | None = None) -> list[SiteTrend]:
        """The trend of every reference recorded in `build` (default: the latest), worst headroom first."""
        ids = [row[0] for row in self._read("SELECT id FROM builds ORDER BY id")]
        if not ids:
            return []
        build = ids[-1] if build is None else build
        position = {build_id: i for i, build_id in enumerate(ids)}
        rows = self._read(
            "SELECT s.build, s.function, s.offset, s.relocation, s.target, s.ordinal, s.headroom, s.status "
            "FROM sites AS now JOIN sites AS s ON s.function = now.function AND s.relocation = now.relocation "
            "AND s.target = now.target AND s.offset IS now.offset AND s.ordinal = now.ordinal "
            "WHERE now.build = ?", (build,))
        builds = self.builds()
        series: dict[tuple[SiteKey, int], tuple[list[int | None], list[str | None]]] = {}
        for build_id, function, offset, relocation, target, ordinal, headroom, status in rows:
            headrooms, statuses = series.setdefault((SiteKey(function, offset, relocation, target), ordinal),
                                                    ([None] * len(ids), [None] * len(ids)))
            headrooms[position[build_id]], statuses[position[build_id]] = headroom, status
        last = position[build] + 1
        trends = [SiteTrend(key, ordinal, builds[:last], tuple(h[:last]), tuple(s[:last]))
                  for (key, ordinal), (h, s) in series.items()]
        return sorted(trends, key=lambda t: (t.headroom is None, t.headroom or 0, str(t.key), t.ordinal))


def open_history(build_dir: Path, writing: bool) -> tuple[History, str | None] | None:
    """The history of `build_dir` and a note when it is the fallback in the cache. Writing: the one
    inside the build dir when it can be written there, else the cache's (made as needed). Reading:
    whichever exists (the build dir's first); None when there is none."""
    inside, cached = history_paths(build_dir)
    if not writing:
        for path in (inside, cached):
            if path.is_file():
                return History(path), None
        return None
    try:
        if not os.access(inside.parent, os.W_OK) or inside.exists() and not os.access(inside, os.W_OK):
            raise CannotWrite("the build dir cannot be written", str(build_dir))
        return History(inside), None
    except CannotWrite as exc:
        reason = str(exc)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReachlsError(f"cannot keep a history: {reason}, and the cache cannot be made "
                           f"({exc.strerror or exc})", str(cached.parent)) from None
    return History(cached), f"history of {build_dir} kept in {cached} ({reason})"


def record_scan(result: ScanResult, keep: int = DEFAULT_KEEP) -> Recorded:
    """Record a completed scan in its build dir's history; the trends of its references."""
    build_dir = build_dir_of(result)
    identity = build_identity(result.inputs.artefact)
    history, note = open_history(build_dir, writing=True)
    with history:
        build = history.record(identity, result.analysis.records, keep)
        trends = {(t.key, t.ordinal): t for t in history.trends(build)}
        builds = history.builds()
    recorded = keyed(recorded_records(result.analysis.records))
    return Recorded(history.path, next(b for b in builds if b.id == build),
                    {record: trends[(key, ordinal)] for key, ordinal, record in recorded if (key, ordinal) in trends},
                    note)
