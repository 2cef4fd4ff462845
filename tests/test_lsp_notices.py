"""What the server tells the user, with real clients on the example built for real: never a silent
zero (no build dir, no artefact, DWARF files outside the workspace), the workspace's own files
first, one log line per scan, and `reachls/scanStatus` for clients that show the state themselves.
Counts and figures come from ld.lld's `--noinhibit-exec` log of the same build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import SERVER_COMMAND, collect_scan_status, server_session, uri, wait_for
from toolchain import lld_overflows

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")


def _workspace_copy(tree: Path, destination: Path) -> Path:
    """The example's sources without its build: the workspace of an `O=` build made elsewhere."""
    return Path(shutil.copytree(tree, destination / tree.name, ignore=shutil.ignore_patterns("out")))


def _params(workspace: Path, **options: object) -> types.InitializeParams:
    return types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=uri(workspace),
                                  workspace_folders=[types.WorkspaceFolder(uri(workspace), workspace.name)],
                                  initialization_options=options)


@pytest.mark.asyncio
async def test_no_build_dir_is_said_where_the_user_looks(tree: Path, tmp_path: Path):
    workspace = _workspace_copy(tree, tmp_path)
    async with server_session(SERVER_COMMAND, _params(workspace),
                              prepare=lambda c: setattr(c, "statuses", collect_scan_status(c))
                              ) as client:
        status = (await wait_for(lambda: client.statuses, what="reachls/scanStatus"))[0]
        shown = await wait_for(lambda: client.messages, what="window/showMessage")
        logged = [m for m in client.log_messages if "no build directory" in m.message]
    assert status["buildDirs"] == [] and status["artefacts"] == [] and status["scanning"] is False
    assert status["counts"] == {"overflow": 0, "veneer": 0, "at-risk": 0, "fragile": 0} and status["unchecked"] == 0
    [problem] = status["problems"]
    assert problem["kind"] == "no-build-dir" and problem["buildDir"] is None
    assert str(workspace) in problem["message"] and "reachls.buildDirs" in problem["message"]
    [message] = shown
    assert message.type == types.MessageType.Warning and problem["message"] in message.message
    assert len(logged) == 1 and problem["message"] in logged[0].message


def _log(tree: Path) -> str:
    return (tree / "out" / "overflow" / "noinhibit.log").read_text()


@pytest.mark.asyncio
async def test_scan_status_counts_what_the_linker_counts(tree: Path, tmp_path: Path):
    """A client showing the state itself gets the problems in `reachls/scanStatus`, not as messages;
    the counts are references (ld.lld's errors), whatever number of diagnostics they make."""
    build = tree / "out" / "overflow"
    empty = tmp_path / "not-built-yet"
    empty.mkdir()
    workspace = _workspace_copy(tree, tmp_path)
    params = _params(workspace, statusNotifications=True, buildDirs=[str(build), str(empty)])
    async with server_session(SERVER_COMMAND, params, prepare=lambda c: setattr(c, "statuses", collect_scan_status(c))
                              ) as client:
        status = (await wait_for(lambda: client.statuses, what="reachls/scanStatus"))[0]
        logged = [m.message for m in client.log_messages]
        shown = list(client.messages)
    overflows = lld_overflows(_log(tree))
    assert status["buildDirs"] == [str(build), str(empty)]
    assert status["counts"]["overflow"] == len(overflows) and status["counts"]["veneer"] == 0
    assert status["artefacts"] == [{"buildDir": str(build), "path": str(build / "vmlinux.o"),
                                    "mtime": (build / "vmlinux.o").stat().st_mtime}]
    [problem] = [p for p in status["problems"] if p["kind"] == "no-artefact"]
    assert problem["buildDir"] == str(empty) and "reachls.buildDirs" in problem["message"]
    assert not [m for m in shown if problem["message"] in m.message]
    assert [m for m in logged if problem["message"] in m]
