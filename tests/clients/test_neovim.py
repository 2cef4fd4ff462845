"""A real headless Neovim as the LSP client, on the example built for real.

pytest-lsp (test_lsp.py) proves the protocol; this proves an actual editor shows it: Neovim's
own client starts `reachls serve`, and tests/clients/nvim/init.lua writes what Neovim received (its
vim.diagnostic entries, the hover text, the code actions) as JSON. ld.lld is the answer key,
and the preferred fix is applied to a copy of the tree and relinked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_support import SERVER_COMMAND, apply_workspace_edit, referenced_lines, uri
from toolchain import copy_example, lld_overflows, need, run

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
INIT = Path(__file__).resolve().parent / "nvim" / "init.lua"


@pytest.fixture(scope="module")
def got(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Neovim received after opening entry.S, asking hover and code actions at the first error."""
    need("nvim")
    return neovim_session(tree, tree / ENTRY, tmp_path_factory.mktemp("nvim-out") / "got.json")


def neovim_session(root: Path, file: Path, output: Path, scenario: str = "findings",
                   **environment: str) -> dict[str, Any]:
    """Run a scenario of tests/clients/nvim/init.lua in a clean headless Neovim; its JSON, or a failure
    showing Neovim's output."""
    env = {**os.environ, "REACHLS_CMD": json.dumps(SERVER_COMMAND), "REACHLS_ROOT": str(root),
           "REACHLS_FILE": str(file), "REACHLS_OUT": str(output), "REACHLS_SCENARIO": scenario, **environment}
    process = subprocess.run(["nvim", "--headless", "--clean", "-n", "-u", str(INIT)], env=env, cwd=root,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, check=False)
    assert output.is_file(), f"Neovim wrote nothing (exit {process.returncode}):\n{process.stdout}\n{process.stderr}"
    return json.loads(output.read_text())


def _log(tree: Path) -> str:
    return (tree / "out" / "overflow" / "noinhibit.log").read_text()


def _errors(got: dict[str, Any]) -> list[dict[str, Any]]:
    """Neovim's error diagnostics; an empty list fails with the step init.lua stopped at."""
    errors = [d for d in got.get("diagnostics", []) if d["severity"] == 1]
    assert errors, got.get("error", got)
    return errors


def test_errors_on_the_lines_the_linker_names(got: dict[str, Any], tree: Path) -> None:
    errors = _errors(got)
    expected = {line for file, line in referenced_lines(_log(tree)) if file.endswith(str(ENTRY))}
    assert expected and {d["lnum"] + 1 for d in errors} == expected
    assert {d["source"] for d in errors} == {"reachls"}
    assert {d["code"] for d in errors} <= {e.type for e in lld_overflows(_log(tree))}
    lines = (tree / ENTRY).read_text().split("\n")
    for d in errors:
        assert "hyp_panic" in lines[d["lnum"]][d["col"]:d["end_col"]] and "hyp_panic" in d["message"]


def test_hover_carries_the_linker_distance(got: dict[str, Any], tree: Path) -> None:
    assert got.get("hover"), got.get("error", got)
    assert any(f"{e.distance} B" in got["hover"] for e in lld_overflows(_log(tree))), got["hover"]


def _workspace_edit(changes: dict[str, list[dict[str, Any]]]) -> types.WorkspaceEdit:
    def position(p: dict[str, int]) -> types.Position:
        return types.Position(p["line"], p["character"])

    return types.WorkspaceEdit(changes={file_uri: [
        types.TextEdit(types.Range(position(e["range"]["start"]), position(e["range"]["end"])), e["newText"])
        for e in edits] for file_uri, edits in changes.items()})


def test_preferred_fix_reduces_the_overflows(got: dict[str, Any], tree: Path, tmp_path: Path) -> None:
    need("make")
    line = _errors(got)[0]["lnum"]
    assert got.get("actions"), got.get("error", got)
    preferred = [a for a in got["actions"] if a["isPreferred"]]
    assert len(preferred) == 1, got["actions"]
    changes = preferred[0]["changes"] or {}
    assert any(e["range"]["start"]["line"] == line for e in changes.get(uri(tree / ENTRY), [])), changes
    copy = tmp_path / "fixed"
    shutil.copytree(tree, copy, symlinks=True)
    apply_workspace_edit(_workspace_edit(changes), tree, copy)
    run("make", "-s", "-C", copy, "VARIANT=overflow", "vmlinux.o", "noinhibit")
    after = lld_overflows((copy / "out" / "overflow" / "noinhibit.log").read_text())
    assert len(after) < len(lld_overflows(_log(tree))), (preferred[0]["title"], after)


def _error_lines(diagnostics: list[dict[str, Any]]) -> set[int]:
    return {d["lnum"] + 1 for d in diagnostics if d["severity"] == 1}


def test_an_unsaved_edit_moves_the_diagnostics(tree: Path, tmp_path: Path) -> None:
    """Lines inserted in the buffer, not saved: the errors follow their statements, with no rescan."""
    need("nvim")
    inserted = 3
    on_disk = (tree / ENTRY).read_text()
    got = neovim_session(tree, tree / ENTRY, tmp_path / "got.json", "edit", REACHLS_INSERT_LINES=str(inserted))
    assert "error" not in got and got["modified"], got
    expected = {line for file, line in referenced_lines(_log(tree)) if file.endswith(str(ENTRY))}
    assert _error_lines(got["before"]) == expected
    assert _error_lines(got["after"]) == {line + inserted for line in expected}
    assert (tree / ENTRY).read_text() == on_disk


def test_a_build_outside_the_workspace_is_not_a_silent_zero(tree: Path, tmp_path: Path) -> None:
    """An O= build the server cannot find: Neovim is told, in words, what to set."""
    need("nvim")
    workspace = copy_example(tmp_path)
    got = neovim_session(workspace, workspace / ENTRY, tmp_path / "got.json", "messages", REACHLS_TIMEOUT_MS="20000")
    assert "error" not in got, got
    warnings = [m["message"] for m in got["show_messages"] if m["type"] == types.MessageType.Warning]
    assert any("buildDirs" in message for message in warnings), got["show_messages"]
    assert any("buildDirs" in m["message"] for m in got["log_messages"]), got["log_messages"]
