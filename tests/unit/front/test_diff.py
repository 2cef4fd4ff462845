"""`reachls diff` on real builds: the hyp-lto example's at-risk build against three builds that each
differ by one change (a grown function, a filler object linked after the target, hyp_panic made
`__cold`). ld.lld is the answer key: the distances come from the addresses llvm-nm reads in each
linked image, the section sizes from llvm-readelf; the contributions must add up to the change of
distance exactly, for every reference whose distance changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reachls.diff import diff_builds
from reachls.pipeline import ScanOptions
from toolchain import build_example, build_real_kernels, copy_example, lld_overflows, nm_symbols, run

BASE = "at-risk"
CHANGED = ("grown", "moved", "cold")
ENTRY_TO_HYP_PANIC = {("__guest_enter", 0x0), ("__guest_enter", 0x20), ("__guest_exit", 0x14)}
_SECTION_HEADER = re.compile(r"\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s")


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    tree = copy_example(tmp_path_factory.mktemp("example"))
    return {variant: build_example(tree, variant) for variant in (BASE, *CHANGED)}


def _section_sizes(obj: Path) -> dict[str, int]:
    """Section name → size, from llvm-readelf."""
    return {m.group(1): int(m.group(2), 16)
            for m in _SECTION_HEADER.finditer(run("llvm-readelf", "-S", "--wide", obj).stdout)}


def _lld_distance(symbols: dict[str, int], function: str, offset: int, target: str, relocation: str) -> int | None:
    """The distance in ld.lld's image: target address − site address (in 4 KiB pages for ADRP), or
    None where a name is not a symbol of the image."""
    if function not in symbols or target not in symbols:
        return None
    site = symbols[function] + offset
    if relocation.endswith("ADR_PREL_PG_HI21"):
        return (symbols[target] & ~0xFFF) - (site & ~0xFFF)
    return symbols[target] - site


@pytest.mark.parametrize("engine", ("relink", "model", "linked"))
@pytest.mark.parametrize("variant", CHANGED)
def test_contributions_add_up_to_each_change_lld_measured(builds, variant, engine):
    """Every reference whose distance changed: its change is ld.lld's, and its contributions sum
    to it to the byte; no reference whose distance ld.lld changed is missing. `linked`: the two
    images ld.lld linked, decoded, their symbols as the units."""
    if engine == "linked":
        diff = diff_builds(builds[BASE] / "vmlinux.noinhibit", builds[variant] / "vmlinux.noinhibit", include_ok=True)
    else:
        diff = diff_builds(builds[BASE], builds[variant], ScanOptions(engine=engine), include_ok=True)
    old_nm, new_nm = nm_symbols(builds[BASE] / "vmlinux.noinhibit"), nm_symbols(builds[variant] / "vmlinux.noinhibit")
    assert diff.changes
    checked = 0
    for change in diff.changes:
        assert sum(c.bytes for c in change.contributions) == change.change, change.key
        assert all(c.bytes for c in change.contributions)
        key = change.key
        old = _lld_distance(old_nm, key.function, key.offset, key.target, key.relocation)
        new = _lld_distance(new_nm, key.function, key.offset, key.target, key.relocation)
        if old is not None and new is not None:
            assert (change.old.distance, change.new.distance) == (old, new), key
            checked += 1
    assert checked >= 4
    changed = {change.key for change in diff.changes}
    for record in diff.new.analysis.records:
        key = record.site_key
        old = _lld_distance(old_nm, key.function, key.offset, key.target, key.relocation)
        new = _lld_distance(new_nm, key.function, key.offset, key.target, key.relocation)
        if old is not None and new is not None and old != new:
            assert key in changed


def _entry_changes(diff):
    changes = [c for c in diff.changes if (c.key.function, c.key.offset) in ENTRY_TO_HYP_PANIC]
    assert {(c.key.function, c.key.offset) for c in changes} == ENTRY_TO_HYP_PANIC
    return changes


def test_grown_function_is_the_whole_change(builds):
    diff = diff_builds(builds[BASE], builds["grown"], ScanOptions(engine="relink"))
    old_size = _section_sizes(builds[BASE] / "vmlinux.o")[".text.__hyp_do_panic"]
    new_size = _section_sizes(builds["grown"] / "vmlinux.o")[".text.__hyp_do_panic"]
    assert new_size > old_size
    for change in _entry_changes(diff):
        assert change.change == new_size - old_size
        (grown,) = change.contributions
        assert (grown.name, grown.bytes, grown.old.role, grown.new.role) == \
            (".text.__hyp_do_panic", new_size - old_size, "between", "between")
        assert grown.file.endswith("arch/arm64/kvm/hyp/vhe/switch.c")
        assert grown.summary.startswith(f"grew by {new_size - old_size} B")


def test_moved_sections_left_the_interval(builds):
    diff = diff_builds(builds[BASE], builds["moved"], ScanOptions(engine="relink"))
    sizes = _section_sizes(builds["moved"] / "vmlinux.o")
    moved = {name: size for name, size in sizes.items() if name.startswith(".text.filler_08_")}
    assert len(moved) == 4
    for change in _entry_changes(diff):
        assert {c.name: -c.bytes for c in change.contributions} == moved
        assert [abs(c.bytes) for c in change.contributions] == sorted(moved.values(), reverse=True)
        assert all(c.summary.startswith("no longer between site and target") for c in change.contributions)
        assert all(c.file.endswith("drivers/filler/filler_08.c") for c in change.contributions)


def test_cold_attribute_moves_the_target(builds):
    diff = diff_builds(builds[BASE], builds["cold"], ScanOptions(engine="relink"))
    assert ".text.unlikely.hyp_panic" in _section_sizes(builds["cold"] / "vmlinux.o")
    old_nm, new_nm = nm_symbols(builds[BASE] / "vmlinux.noinhibit"), nm_symbols(builds["cold"] / "vmlinux.noinhibit")
    for change in _entry_changes(diff):
        (move,) = change.moves
        assert (move.role, move.symbol, move.old_section, move.new_section, move.attribute) == \
            ("target", "hyp_panic", ".text.hyp_panic", ".text.unlikely.hyp_panic", "__cold")
        file, line = move.where
        assert "__cold hyp_panic(" in Path(file).read_text().splitlines()[line - 1]
        assert change.new.distance == new_nm["hyp_panic"] - new_nm[change.key.function] - change.key.offset < 0
        assert change.old.distance == old_nm["hyp_panic"] - old_nm[change.key.function] - change.key.offset > 0
        left = [c for c in change.contributions if c.summary.startswith("no longer between")]
        assert {c.name for c in left} >= {f".text.filler_0{i}_0" for i in range(9)}


def test_a_site_that_changed_section_counts_its_own_bytes(builds):
    """hyp_panic's call of __hyp_do_panic: backward from `.text.hyp_panic` in the at-risk build (the
    bytes before the site count against the distance), forward from `.text.unlikely.hyp_panic` in
    the cold one (the bytes after it count for it); section sizes from llvm-readelf."""
    diff = diff_builds(builds[BASE], builds["cold"], ScanOptions(engine="relink"), include_ok=True)
    (change,) = [c for c in diff.changes if c.key.function == "hyp_panic" and c.key.target == "__hyp_do_panic"]
    old_size = _section_sizes(builds[BASE] / "vmlinux.o")[".text.hyp_panic"]
    new_size = _section_sizes(builds["cold"] / "vmlinux.o")[".text.unlikely.hyp_panic"]
    by_name = {c.name: c for c in change.contributions}
    old_section, new_section = by_name[".text.hyp_panic"], by_name[".text.unlikely.hyp_panic"]
    assert (old_section.old.role, old_section.old.share, old_section.new.role) == ("site", -change.key.offset, "absent")
    assert (new_section.old.role, new_section.new.role, new_section.new.share) == \
        ("absent", "site", new_size - change.key.offset)
    assert (old_section.bytes, new_section.bytes) == (change.key.offset, new_size - change.key.offset)
    assert old_size == new_size
    assert sum(c.bytes for c in change.contributions) == change.change


def test_cli_diff_json_and_text(builds):
    json_run = subprocess.run([sys.executable, "-m", "reachls.cli", "diff", str(builds[BASE]), str(builds["moved"]),
                               "--format", "json", "--all"], capture_output=True, text=True)
    assert json_run.returncode == 0, json_run.stderr
    document = json.loads(json_run.stdout)
    assert document["changes"]
    for change in document["changes"]:
        assert sum(c["bytes"] for c in change["contributions"]) == change["change"] == \
            change["new"]["distance"] - change["old"]["distance"]
    text = subprocess.run([sys.executable, "-m", "reachls.cli", "diff", str(builds[BASE]), str(builds["moved"])],
                          capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    assert "`.text.filler_08_0` (`filler_08_0`" in text.stdout
    cold = subprocess.run([sys.executable, "-m", "reachls.cli", "diff", str(builds[BASE]), str(builds["cold"])],
                          capture_output=True, text=True)
    assert "the target `hyp_panic` moved from `.text.hyp_panic` to `.text.unlikely.hyp_panic` (the compiler's " \
           "section for cold code: attribute `__cold` at " in cold.stdout
    moved = sum(size for name, size in _section_sizes(builds["moved"] / "vmlinux.o").items()
                if name.startswith(".text.filler_08_"))
    assert text.stdout.count(f"\n  = -{moved} B") == 3  # a total line per entry.S → hyp_panic reference


def test_cli_diff_bad_input_is_one_line(builds, tmp_path):
    """Not ELF; a linker log (no layout to take apart); a relocatable against a linked image."""
    not_elf = tmp_path / "vmlinux.o"
    not_elf.write_text("not an object\n")
    log = tmp_path / "build.log"
    log.write_text("ld.lld: error: vmlinux.o:(.text+0x0): relocation R_AARCH64_CONDBR19 out of range: 2017888 is "
                   "not in [-1048576, 1048575]; references hyp_panic\n")
    for old, new, says in ((builds[BASE], not_elf, "not an ELF file"), (builds[BASE], log, "not a linker log"),
                           (builds[BASE], builds["moved"] / "vmlinux.noinhibit", "differ in kind")):
        result = subprocess.run([sys.executable, "-m", "reachls.cli", "diff", str(old), str(new)],
                                capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("reachls: error:"), result.stderr
        assert says in result.stderr


def _names_in(obj: Path, section: str) -> set[str]:
    """Names of the symbols llvm-nm lists as defined in `section` of `obj`."""
    names = set()
    for line in run("llvm-nm", "--format=sysv", "--defined-only", obj).stdout.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 7 and fields[6] == section and not fields[0].startswith("$"):
            names.add(fields[0])
    return names


def test_real_kernel_text_growth_is_found_where_it_came(tmp_path):
    """The ThinLTO kernel against the same tree with one assembly file added (1 MiB of `.text`,
    which `ld -r` merged into vmlinux.o's one `.text`): every changed distance sums exactly, and
    `.text`'s share is its size change (llvm-readelf), found between two of its symbols, where the
    file's symbols (new in llvm-nm's listing) are. Its references are only in the new build: the
    ones out of reach are the errors ld.lld printed for its link."""
    kernels = build_real_kernels()
    old, new = kernels["clang-lto"], kernels["clang-lto-overflow"]
    diff = diff_builds(old, new, ScanOptions(engine="relink"), include_ok=True)
    growth = _section_sizes(new / "vmlinux.o")[".text"] - _section_sizes(old / "vmlinux.o")[".text"]
    came = _names_in(new / "vmlinux.o", ".text") - _names_in(old / "vmlinux.o", ".text")
    assert growth > 0 and came
    between = 0
    for change in diff.changes:
        assert sum(c.bytes for c in change.contributions) == change.change, change.key
        for text in (c for c in change.contributions if c.name == ".text"):
            assert sum(region.bytes for region in text.inside) == growth
            assert set(text.inside[0].new_symbols) == came
            if text.old.role == text.new.role == "between":
                assert text.bytes == growth * (1 if change.new.distance > 0 else -1)
                between += 1
    assert between
    assert not diff.only_old
    errors = lld_overflows((new / "build.log").read_text())
    assert errors
    assert sorted((r.kind.name, r.distance, r.target.symbol) for r in diff.only_new if r.status.value == "overflow") \
        == sorted((e.type, e.distance, e.symbol) for e in errors)
