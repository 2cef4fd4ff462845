"""Headroom history through the CLI, on three successive real builds of one build dir.

Each build's headroom is read from its own linked image (llvm-nm for the function, llvm-objdump
for the instruction's decoded target) against the reach the AArch64 ELF psABI gives the
relocation type; the rate and the builds left are this test's own arithmetic on those figures.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reachls.history import Build, SiteTrend
from reachls.record import SiteKey
from toolchain import nm_symbols, objdump_targets

CLI = [sys.executable, "-m", "reachls.cli"]
HISTORY = ".reachls-history.sqlite"
#: The largest forward distance each type encodes (AArch64 ELF psABI: imm19 × 4 for CONDBR19,
#: imm21 for ADR_PREL_LO21, both checked as -2^20 <= X < 2^20).
REACH_HI = {"R_AARCH64_CONDBR19": (1 << 20) - 1, "R_AARCH64_ADR_PREL_LO21": (1 << 20) - 1}


def reachls(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=env)


def history_json(build: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    done = reachls("history", build, *args, "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def image_headroom(image: Path, function: str, offset: int, relocation: str) -> int:
    """The headroom of the instruction at function+offset in a linked image, from the toolchain."""
    address = nm_symbols(image)[function] + offset
    _, target = objdump_targets(image)[address]
    return REACH_HI[relocation] - (target - address)


def oracle_trends(images: list[Path], sites: list[dict]) -> dict[tuple, list[int]]:
    return {(s["function"], s["offset"], s["relocation"]): [image_headroom(i, s["function"], s["offset"], s["relocation"])
                                                          for i in images] for s in sites}


def test_history_reads_back_each_builds_headroom(growing_builds):
    tree, build, images = growing_builds
    got = history_json(build)
    assert len(got["builds"]) == 3 and len({b["identity"] for b in got["builds"]}) == 3
    hyp_panic = nm_symbols(images[-1])["hyp_panic"]
    aimed = [a for a, (m, t) in objdump_targets(images[-1]).items() if t == hyp_panic and m in ("cbz", "adr")]
    sites = [s for s in got["sites"] if s["target"] == "hyp_panic"]
    assert len(sites) == len(aimed) >= 3
    expected = oracle_trends(images, sites)
    for site in sites:
        headrooms = expected[(site["function"], site["offset"], site["relocation"])]
        assert site["headroom"] == headrooms
        rate = (headrooms[-1] - headrooms[0]) / 2
        assert rate < 0 and site["rate"] == pytest.approx(rate)
        assert site["builds_to_overflow"] == math.floor(headrooms[-1] / -rate) + 1


def test_worst_and_one_site(growing_builds):
    tree, build, images = growing_builds
    sites = history_json(build)["sites"]
    expected = oracle_trends(images, [s for s in sites if s["relocation"] in REACH_HI])
    worst_key = min(expected, key=lambda key: expected[key][-1])
    worst = history_json(build, "--worst", "1")["sites"]
    assert [(s["function"], s["offset"], s["relocation"]) for s in worst] == [worst_key]
    text = reachls("history", build, "--worst", "1").stdout.splitlines()
    assert len([line for line in text if "→ hyp_panic" in line]) == 1
    assert " → ".join(map(str, expected[worst_key])) in text[-1]
    function, offset, relocation = next(key for key in expected if key != worst_key)
    one = history_json(build, f"{function}+{offset:#x}")["sites"]
    assert {(s["function"], s["offset"]) for s in one} == {(function, offset)}
    assert any(s["headroom"] == expected[(function, offset, relocation)] for s in one)


def _copy_build(build: Path, destination: Path, with_history: bool = True) -> Path:
    """A copy of a build dir (to record more in, leaving the shared one as it is)."""
    copy = destination / "build"
    shutil.copytree(build, copy, symlinks=True,
                    ignore=None if with_history else shutil.ignore_patterns(f"{HISTORY}*"))
    return copy


def test_rescanning_a_build_is_not_a_new_build_and_keep_bounds_it(growing_builds, tmp_path):
    _, build, _ = growing_builds
    copy = _copy_build(build, tmp_path)
    before = history_json(copy)
    assert reachls("scan", "--record", "--threshold", "0.5", copy).returncode == 0
    again = history_json(copy)
    assert [b["identity"] for b in again["builds"]] == [b["identity"] for b in before["builds"]]
    assert [s["headroom"] for s in again["sites"]] == [s["headroom"] for s in before["sites"]]
    assert reachls("scan", "--record", "--threshold", "0.5", "--keep", "2", copy).returncode == 0
    kept = history_json(copy)
    assert [b["identity"] for b in kept["builds"]] == [b["identity"] for b in before["builds"]][1:]
    assert all(len(s["headroom"]) == 2 for s in kept["sites"])


RECORDER = """
import sys
from pathlib import Path
from reachls.history import BuildIdentity, open_history
from reachls.pipeline import ScanOptions, scan

build, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
records = scan(build, ScanOptions(threshold=0.5)).analysis.records
for i in range(count):
    history, _ = open_history(build, writing=True)
    with history:
        history.record(BuildIdentity(f"test:{name}-{i}", str(build), 0.0, None), records, keep=1000)
"""


def test_two_processes_record_at_once(growing_builds, tmp_path):
    """Two writers on one history (the CLI and the editor, say): every build of both is kept."""
    _, build, _ = growing_builds
    copy = _copy_build(build, tmp_path, with_history=False)
    count = 25
    writers = [subprocess.Popen([sys.executable, "-c", RECORDER, str(copy), name, str(count)],
                                stderr=subprocess.PIPE, text=True) for name in ("cli", "editor")]
    both = reachls("scan", "--record", copy)  # and a third, through the CLI, meanwhile
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    assert both.returncode == 0, both.stderr
    database = sqlite3.connect(copy / HISTORY)
    assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert database.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    identities = [row[0] for row in database.execute("SELECT identity FROM builds")]
    assert sorted(i for i in identities if i.startswith("test:")) == sorted(
        f"test:{name}-{i}" for name in ("cli", "editor") for i in range(count))
    assert len(identities) == 2 * count + 1


def test_a_build_dir_that_cannot_hold_the_history_falls_back_to_the_cache(growing_builds, tmp_path):
    _, build, images = growing_builds
    copy = _copy_build(build, tmp_path, with_history=False)
    (copy / HISTORY).mkdir()  # where the database would go, something else is
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = reachls("scan", "--record", copy, env=env)
    assert done.returncode == 0, done.stderr
    cached = list((tmp_path / "cache" / "reachls" / "history").glob("*.sqlite"))
    assert len(cached) == 1 and str(cached[0]) in done.stderr
    got = history_json(copy, env=env)
    assert len(got["builds"]) == 1
    sites = [s for s in got["sites"] if s["relocation"] in REACH_HI]
    expected = oracle_trends(images[-1:], sites)
    assert sites and all(s["headroom"] == expected[(s["function"], s["offset"], s["relocation"])] for s in sites)


def test_a_read_only_build_dir_falls_back_to_the_cache(growing_builds, tmp_path):
    _, build, _ = growing_builds
    copy = _copy_build(build, tmp_path, with_history=False)
    copy.chmod(0o555)
    try:
        if os.access(copy, os.W_OK):
            pytest.skip("this user writes into a read-only directory (root)")
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        done = reachls("scan", "--record", copy, env=env)
        assert done.returncode == 0 and "cannot be written" in done.stderr, done.stderr
        assert not (copy / HISTORY).exists()
        assert reachls("history", copy, env=env).returncode == 0
    finally:
        copy.chmod(0o755)


def test_history_bad_input_is_one_line(growing_builds, tmp_path):
    _, build, _ = growing_builds
    for args in (("history", tmp_path), ("history", build, "no_such_function"), ("history", build, "x+zz"),
                 ("history", build, "--worst", "0")):
        done = reachls(*args)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, args
    copy = _copy_build(build, tmp_path)
    with sqlite3.connect(copy / HISTORY) as database:
        database.execute("PRAGMA user_version = 99")
    for args in (("history", copy), ("scan", "--record", copy)):
        done = reachls(*args)
        assert done.returncode == 2 and "schema 99" in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_trend_arithmetic_with_a_build_missing():
    """A site absent from one build: the rate runs first to last figure, the change over the last
    builds that have one; growing headroom never runs out, a negative one is out now."""
    builds = tuple(Build(n, n, f"test:{n}", 0.0, None, 0.0) for n in range(1, 5))
    key = SiteKey("f", 0, "R_AARCH64_CONDBR19", "t")
    shrinking = SiteTrend(key, 0, builds, (1000, None, 400, 100), ("ok", None, "ok", "at-risk"))
    assert shrinking.rate == pytest.approx((100 - 1000) / 3)
    assert (shrinking.change, shrinking.span) == (100 - 400, 2)
    assert shrinking.builds_to_overflow == 1  # 100 - 300 < 0 after one more build
    growing = SiteTrend(key, 0, builds[:2], (100, 200), ("ok", "ok"))
    assert growing.builds_to_overflow is None and growing.rate == 100
    over = SiteTrend(key, 0, builds[:2], (100, -5), ("ok", "overflow"))
    assert over.builds_to_overflow == 0
    single = SiteTrend(key, 0, builds[:1], (100,), ("ok",))
    assert single.rate is None and single.change is None and single.builds_to_overflow is None
