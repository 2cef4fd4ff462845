"""PathMapper: DWARF paths of the build's tree onto the workspace's own files, learned once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reachls import findings
from reachls.findings import PathMapper

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
SWITCH = Path("arch/arm64/kvm/hyp/vhe/switch.c")


def _tree(root: Path) -> Path:
    for relative in (ENTRY, SWITCH):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(f"/* {relative} */\n")
    return root


def test_the_workspace_copy_wins_over_the_tree_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    original, workspace = _tree(tmp_path / "other" / "copy" / "linux"), _tree(tmp_path / "ws" / "linux")
    walks, walk = [], os.walk
    monkeypatch.setattr(findings.os, "walk", lambda *a, **k: walks.append(a) or walk(*a, **k))
    mapper = PathMapper((), (workspace,))
    assert mapper(str(original / ENTRY)) == workspace / ENTRY
    assert mapper(str(original / SWITCH)) == workspace / SWITCH
    assert len(walks) == 1  # the workspace is listed once, not per file
    [note] = mapper.take_notes()
    assert f"mapped {original} → {workspace}" in note
    assert mapper.take_notes() == [] and mapper.ambiguity() is None


def test_the_longest_common_tail_then_the_shallowest_file(tmp_path: Path):
    original = _tree(tmp_path / "build" / "linux")
    workspace = tmp_path / "ws"
    _tree(workspace / "linux")
    _tree(workspace / "linux" / "tools" / "linux")  # same tail `linux/arch/...`, deeper
    _tree(workspace / "arm")  # a shorter tail only
    mapper = PathMapper((), (workspace,))
    assert mapper(str(original / ENTRY)) == workspace / "linux" / ENTRY


def test_two_copies_at_equal_depth_ask_for_a_mapping(tmp_path: Path):
    original = _tree(tmp_path / "build" / "linux")
    workspace = tmp_path / "ws"
    first, second = _tree(workspace / "a" / "linux"), _tree(workspace / "b" / "linux")
    mapper = PathMapper((), (workspace,))
    assert mapper(str(original / ENTRY)) == original / ENTRY  # no automatic mapping
    said = mapper.ambiguity()
    # the longest common tail is `linux/arch/...`: the build's /build is ws/a or ws/b
    assert said is not None and f"{first.parent} and in {second.parent}" in said and "pathMappings" in said
    settled = PathMapper(((str(original), str(second)),), (workspace,))
    assert settled(str(original / ENTRY)) == second / ENTRY and settled.ambiguity() is None


def test_a_file_missing_from_the_mapped_copy_is_not_taken_from_the_other_tree(tmp_path: Path):
    original, workspace = _tree(tmp_path / "build" / "linux"), _tree(tmp_path / "ws" / "linux")
    (original / "init").mkdir()
    (original / "init" / "main.c").write_text("")
    mapper = PathMapper((), (workspace,))
    assert mapper(str(original / ENTRY)) == workspace / ENTRY
    assert mapper(str(original / "init" / "main.c")) is None
