"""`reachls scan --baseline`: two real builds of the example, every reference classified new / gone /
worse / better / same, checked against the toolchain: ld.lld's --noinhibit-exec errors for the
overflows (function, offset, distance), llvm-nm and llvm-objdump of both linked images for the rest.

Builds: the safe variant (the last good build), the overflow variant of the same tree (the same
code, further apart), and the overflow variant of a tree whose entry.S gained a function with a
`cbz` to hyp_panic and whose `b hyp_panic` in __guest_bad_ctxt became `b __guest_exit`.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reachls.baseline import Change, load_baseline, scan_against
from reachls.cli import main
from reachls.pipeline import ScanOptions
from reachls.record import SiteKey, Status
from test_sarif import assert_valid_sarif
from toolchain import build_example, copy_example, nm_symbols, objdump_targets

BRANCHES = re.compile(r"b|bl|cbn?z|tbn?z|b\.\w+|adr")
_LLD_ERROR = re.compile(r"\(function (\S+): (\S+)\+0x([0-9a-f]+)\): relocation (R_\w+) out of range: (-?\d+) is not "
                        r"in \[(-?\d+), (-?\d+)\]; references '?([^'\s]+)'?")
NEW_FUNCTION = """
SYM_CODE_START(__guest_recheck)
	cbz	x0, hyp_panic
	ret
SYM_CODE_END(__guest_recheck)
"""


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    good = copy_example(tmp_path_factory.mktemp("good"))
    grown = copy_example(tmp_path_factory.mktemp("grown"))
    entry = grown / "arch/arm64/kvm/hyp/entry.S"
    text = entry.read_text()
    bad_ctxt = "\tb\thyp_panic\nSYM_CODE_END(__guest_bad_ctxt)\n"
    assert bad_ctxt in text
    entry.write_text(text.replace(bad_ctxt, "\tb\t__guest_exit\nSYM_CODE_END(__guest_bad_ctxt)\n" + NEW_FUNCTION))
    return {"safe": build_example(good, "safe"), "overflow": build_example(good, "overflow"),
            "grown": build_example(grown, "overflow")}


def lld_keys(build: Path) -> dict[SiteKey, int]:
    """Each reference ld.lld says is out of range, keyed by function + offset in it (from the section
    offset it prints and llvm-nm's value of that function in vmlinux.o), with its distance."""
    in_object = nm_symbols(build / "vmlinux.o")
    return {SiteKey(m[1], int(m[3], 16) - in_object[m[1]], m[4], m[8]): int(m[5])
            for m in _LLD_ERROR.finditer((build / "noinhibit.log").read_text())}


@functools.cache
def _linked(build: Path) -> tuple[dict[str, int], dict[int, tuple[str, int | None]]]:
    """llvm-nm's symbols and llvm-objdump's decoded instructions of a build's linked image, read once."""
    return nm_symbols(build / "vmlinux.noinhibit"), objdump_targets(build / "vmlinux.noinhibit")


def linked_distance(build: Path, key: SiteKey) -> int | None:
    """The distance of a branch or adr at `key` in the linked image, as llvm-objdump decodes it;
    None when that instruction does not decode to the key's target there."""
    symbols, decoded = _linked(build)
    if key.function not in symbols or key.target not in symbols:
        return None
    address = symbols[key.function] + key.offset
    mnemonic, target = decoded.get(address, ("", None))
    return target - address if BRANCHES.fullmatch(mnemonic) and target == symbols[key.target] else None


def _changes(comparison) -> dict[SiteKey, Change]:
    return {(p.now or p.before).site_key: p.change for p in comparison.pairs}


@pytest.mark.parametrize("form", ["json", "build-dir"])
def test_new_gone_worse_and_same_against_the_toolchain(builds, tmp_path, form, capsys):
    baseline = builds["safe"]
    if form == "json":
        assert main(["scan", str(baseline), "--all", "--format", "json"]) == 0
        baseline = tmp_path / "good.json"
        baseline.write_text(capsys.readouterr().out)
    result, comparison = scan_against(builds["grown"], baseline, ScanOptions(engine="relink", include_ok=True))
    changes = _changes(comparison)
    overflows = lld_keys(builds["grown"])
    assert len(overflows) == 4
    for key, distance in overflows.items():
        pair = next(p for p in comparison.pairs if p.now is not None and p.now.site_key == key)
        assert (pair.now.status, pair.now.distance) == (Status.OVERFLOW, distance)
        before = linked_distance(builds["safe"], key)
        if key.function == "__guest_recheck":
            assert before is None and pair.change is Change.NEW
        else:  # the same code, further from hyp_panic: worse, from what the good build had
            assert 0 < before < distance and pair.change is Change.WORSE
            assert pair.before.distance == before
    bad_ctxt = {(key.target, change) for key, change in changes.items() if key.function == "__guest_bad_ctxt"}
    assert bad_ctxt == {("hyp_panic", Change.GONE), ("__guest_exit", Change.NEW)}
    assert linked_distance(builds["safe"], SiteKey("__guest_bad_ctxt", 4, "R_AARCH64_JUMP26", "hyp_panic")) is not None
    assert linked_distance(builds["grown"], SiteKey("__guest_bad_ctxt", 4, "R_AARCH64_JUMP26", "__guest_exit")) is not None
    checked = {Change.SAME: 0, Change.WORSE: 0, Change.BETTER: 0}
    for pair in comparison.pairs:
        if pair.now is None or pair.before is None or pair.now.site_key in overflows:
            continue
        key = pair.now.site_key
        now, before = linked_distance(builds["grown"], key), linked_distance(builds["safe"], key)
        if now is None or before is None:
            continue
        headroom_now, headroom_before = pair.now.kind.headroom(now), pair.now.kind.headroom(before)
        expected = (Change.SAME if headroom_now == headroom_before
                    else Change.WORSE if headroom_now < headroom_before else Change.BETTER)
        assert pair.change is expected, pair
        checked[expected] += 1
    assert checked[Change.SAME] >= 10 and checked[Change.WORSE] + checked[Change.BETTER] >= 1, checked


def test_fail_on_new_overflow_fails_only_on_what_the_baseline_did_not_have(builds, capsys):
    grown, safe = str(builds["grown"]), str(builds["safe"])
    assert main(["scan", grown, "--baseline", safe, "--fail-on", "new-overflow"]) == 1
    assert main(["scan", grown, "--baseline", grown, "--fail-on", "new-overflow"]) == 0  # the overflows are old
    assert main(["scan", grown, "--baseline", grown, "--fail-on", "overflow"]) == 1
    text = capsys.readouterr().out
    assert "0 new, 0 worse, 0 better, 4 same, 0 gone" in text


def test_fail_on_worse_than_an_amount_of_headroom_or_reach(builds):
    """The same code further apart: each hyp_panic reference lost exactly what ld.lld's distance
    grew by over the good build's decoded one; only a budget below that fails."""
    lost = [distance - linked_distance(builds["safe"], key) for key, distance in lld_keys(builds["overflow"]).items()]
    reach = 1 << 20  # CONDBR19 and ADR_PREL_LO21: ±1 MiB, the bound on the positive side is 2^20 - 1
    points = [loss / (reach - 1) * 100 for loss in lost]
    overflow, safe = str(builds["overflow"]), str(builds["safe"])
    assert main(["scan", overflow, "--baseline", safe, "--fail-on", f"worse-than={min(lost) - 1}"]) == 1
    assert main(["scan", overflow, "--baseline", safe, "--fail-on", f"worse-than={max(lost)}"]) == 0
    assert main(["scan", overflow, "--baseline", safe, "--fail-on", f"worse-than={int(min(points)) - 1}%"]) == 1
    assert main(["scan", overflow, "--baseline", safe, "--fail-on", f"worse-than={int(max(points)) + 1}%"]) == 0
    # A reference the baseline did not have fails once it is out of reach, whatever the budget.
    grown = str(builds["grown"])
    new_overflows = lld_keys(builds["grown"]).keys() - lld_keys(builds["overflow"]).keys()
    assert {key.function for key in new_overflows} == {"__guest_recheck"}
    assert main(["scan", grown, "--baseline", overflow, "--fail-on", "worse-than=1MiB"]) == 1
    assert main(["scan", grown, "--baseline", grown, "--fail-on", "worse-than=0"]) == 0


def test_json_and_text_and_sarif_carry_the_change(builds, capsys):
    grown, safe = str(builds["grown"]), str(builds["safe"])
    main(["scan", grown, "--baseline", safe, "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    assert document["baseline"]["source"] == safe
    assert document["baseline"]["counts"] == {"new": 1, "worse": 3, "better": 0, "same": 0, "gone": 0}
    by_function = {(r["site"]["symbol"], r["baseline"]["change"]) for r in document["records"]}
    assert by_function == {("__guest_recheck", "new"), ("__guest_enter", "worse"), ("__guest_exit", "worse")}
    assert all(r["baseline"]["before"]["status"] == "fragile" for r in document["records"]
               if r["baseline"]["change"] == "worse")
    main(["scan", grown, "--baseline", safe])
    text = capsys.readouterr().out
    assert f"baseline {safe}: 1 new, 3 worse, 0 better, 0 same, 0 gone" in text
    assert text.count("(baseline: worse: was fragile, 28 %)") == 3 and text.count("(baseline: new)") == 1
    # The other way round: the new overflow is gone, the others better; SARIF says absent and updated.
    main(["scan", safe, "--baseline", grown])
    assert f"baseline {grown}: 0 new, 0 worse, 3 better, 0 same, 1 gone" in capsys.readouterr().out
    main(["scan", safe, "--baseline", grown, "--format", "sarif"])
    sarif = json.loads(capsys.readouterr().out)
    assert_valid_sarif(sarif)
    states = sorted((r["baselineState"], r["locations"][0]["logicalLocations"][0]["name"])
                    for r in sarif["runs"][0]["results"])
    assert states == [("absent", "__guest_recheck"), ("updated", "__guest_enter"), ("updated", "__guest_enter"),
                      ("updated", "__guest_exit")]


def test_a_baseline_that_is_not_a_report_is_one_line(builds, tmp_path):
    broken = tmp_path / "old.json"
    broken.write_text('{"schema": 1, "records": [{"kind": {}}]}')
    for argv, says in (([ "--baseline", str(broken)], f"{broken}: record 0 cannot be read"),
                       (["--fail-on", "new-overflow"], "--fail-on new-overflow compares with an earlier scan"),
                       (["--fail-on", "worse-than=lots"], "--fail-on takes one of")):
        result = subprocess.run([sys.executable, "-m", "reachls.cli", "scan", str(builds["safe"]), *argv],
                                capture_output=True, text=True)
        assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_json_baseline_without_ok_references_says_so(builds, tmp_path, capsys):
    main(["scan", str(builds["safe"]), "--format", "json"])
    partial = tmp_path / "partial.json"
    partial.write_text(capsys.readouterr().out)
    assert not load_baseline(partial, ScanOptions()).complete
    main(["scan", str(builds["grown"]), "--baseline", str(partial)])
    assert "the baseline was written without --all" in capsys.readouterr().out
