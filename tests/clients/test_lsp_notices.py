"""What the server tells the user, with real clients on the example built for real: never a silent
zero (no build dir, no artefact, DWARF files outside the workspace), the workspace's own files
first, one log line per scan, and `reachls/scanStatus` for clients that show the state themselves.
Counts and figures come from ld.lld's `--noinhibit-exec` log of the same build."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import SERVER_COMMAND, collect_scan_status, referenced_lines, server_session, uri, wait_for
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
    the counts are references (ld.lld's errors), whatever number of diagnostics they make. Each
    scan is logged with what it read, how, how long, and what it found or why it failed."""
    build = tree / "out" / "overflow"
    empty, broken = tmp_path / "not-built-yet", tmp_path / "interrupted"
    empty.mkdir()
    broken.mkdir()
    artefact = (build / "vmlinux.o").read_bytes()
    (broken / "vmlinux.o").write_bytes(artefact[:len(artefact) // 2])
    workspace = _workspace_copy(tree, tmp_path)
    params = _params(workspace, statusNotifications=True, buildDirs=[str(build), str(empty), str(broken)])
    async with server_session(SERVER_COMMAND, params, prepare=lambda c: setattr(c, "statuses", collect_scan_status(c))
                              ) as client:
        status = (await wait_for(lambda: client.statuses, what="reachls/scanStatus"))[0]
        logged = [m.message for m in client.log_messages]
        shown = [m.message for m in client.messages]
    overflows = lld_overflows(_log(tree))
    assert status["buildDirs"] == [str(build), str(empty), str(broken)]
    assert status["counts"]["overflow"] == len(overflows) and status["counts"]["veneer"] == 0
    mtime = (build / "vmlinux.o").stat().st_mtime
    assert status["artefacts"] == [{"buildDir": str(build), "path": str(build / "vmlinux.o"), "mtime": mtime}]
    problems = {p["kind"]: p for p in status["problems"]}
    assert set(problems) == {"no-artefact", "unreadable"}
    assert problems["no-artefact"]["buildDir"] == str(empty) and "reachls.buildDirs" in problems["no-artefact"]["message"]
    assert problems["unreadable"]["buildDir"] == str(broken) and "truncated" in problems["unreadable"]["message"]
    for problem in problems.values():
        assert not [m for m in shown if problem["message"] in m]
        assert len([m for m in logged if problem["message"] in m]) == 1

    [scanned] = [m for m in logged if m.startswith(f"reachls: scanned {build}:")]
    written = datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S")
    assert f"{build / 'vmlinux.o'} (written {written})" in scanned
    assert "placed by relink (ld.lld)" in scanned  # the build's linker, as .vmlinux.cmd names it
    assert re.search(r", \d+\.\d\d s: ", scanned)
    assert f"{len(overflows)} overflow, 0 veneer, " in scanned and " unchecked, of " in scanned
    [failed] = [m for m in logged if m.startswith(f"reachls: scan of {broken} failed after ")]
    assert "truncated" in failed


@pytest.mark.asyncio
async def test_the_workspace_copy_gets_the_diagnostics(tree: Path, tmp_path: Path):
    """DWARF names the tree the build was made in, which still exists; the workspace is another copy
    of it: the diagnostics land on the workspace's files, on the lines ld.lld names, and the log says
    which prefix was mapped where."""
    build = tree / "out" / "overflow"
    workspace = _workspace_copy(tree, tmp_path)
    async with server_session(SERVER_COMMAND, _params(workspace, buildDirs=[str(build)])) as client:
        diagnostics = await wait_for(lambda: client.diagnostics.get(uri(workspace / ENTRY)),
                                     what="diagnostics on the workspace's entry.S")
        logged = [m.message for m in client.log_messages]
        on_original = client.diagnostics.get(uri(tree / ENTRY))
    expected = {line for file, line in referenced_lines(_log(tree)) if file == str(tree / ENTRY)}
    assert expected and {d.range.start.line + 1 for d in diagnostics
                         if d.severity == types.DiagnosticSeverity.Error} == expected
    assert not on_original
    assert [m for m in logged if f"mapped {tree} → {workspace}" in m]


@pytest.mark.asyncio
async def test_findings_outside_the_workspace_are_said(tree: Path, tmp_path: Path):
    """A workspace without the tree the build names: the diagnostics go to that tree's files (they
    exist), and a message says so, naming one of the files ld.lld names."""
    build = tree / "out" / "overflow"
    workspace = tmp_path / "elsewhere"
    workspace.mkdir()
    async with server_session(SERVER_COMMAND, _params(workspace, buildDirs=[str(build)])) as client:
        await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), what="diagnostics on the build's entry.S")
        shown = await wait_for(lambda: [m.message for m in client.messages if "outside the workspace" in m.message],
                               what="a message about files outside the workspace")
        logged = [m.message for m in client.log_messages if "outside the workspace" in m.message]
    files = {file for file, _ in referenced_lines(_log(tree))}
    assert len(shown) == 1 and any(file in shown[0] for file in files) and "pathMappings" in shown[0]
    assert len(logged) == 1
