"""Work-done progress of the server's scans, seen by a pytest-lsp client on the example built for real.

A client that declares `window.workDoneProgress` is asked for a token, then gets a begin, a report
as each stage of the scan begins (its name, and a percentage of the whole scan that only grows),
and an end. A client that does not declare it, or refuses the token, gets no `$/progress` and
its diagnostics all the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pytest_lsp import LanguageClient

from lsp_support import SERVER_COMMAND, collect_scan_status, server_session, uri, wait_for
from reachls.progress import STAGES

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
CREATE = types.WINDOW_WORK_DONE_PROGRESS_CREATE


def _params(tree: Path, work_done_progress: bool) -> types.InitializeParams:
    window = types.WindowClientCapabilities(work_done_progress=True) if work_done_progress else None
    return types.InitializeParams(capabilities=types.ClientCapabilities(window=window), root_uri=uri(tree),
                                  workspace_folders=[types.WorkspaceFolder(uri(tree), "hyp-lto")])


def _answering_creates(client: LanguageClient, answer: Any = None) -> None:
    """Record each token the server asks to create, with what had arrived on it before (nothing, if
    the request comes first); then accept it as pytest-lsp does, or call `answer` instead."""
    features = client.protocol.fm.features
    accept = features[CREATE]
    client.created = []  # type: ignore[attr-defined]
    client.statuses = collect_scan_status(client)  # type: ignore[attr-defined]

    def on_create(params: types.WorkDoneProgressCreateParams) -> None:
        client.created.append((params.token, list(client.progress_reports.get(params.token, []))))
        return (answer or accept)(params)

    features[CREATE] = on_create


@pytest.mark.asyncio
async def test_each_stage_is_reported_with_a_growing_percentage(tree: Path):
    async with server_session(SERVER_COMMAND, _params(tree, True), prepare=_answering_creates) as client:
        await wait_for(lambda: any(p.kind == "end" for reports in client.progress_reports.values() for p in reports),
                       what="the end of the scan's progress")
        [(token, before)] = client.created
        values = client.progress_reports[token]
        assert await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), what="diagnostics")
    assert before == []
    begin, *reports, end = values
    assert (begin.kind, end.kind) == ("begin", "end") and {r.kind for r in reports} == {"report"}
    assert begin.percentage == 0
    assert list(dict.fromkeys(r.message for r in reports)) == list(STAGES)
    percentages = [r.percentage for r in reports]
    assert percentages == sorted(set(percentages)) and 0 <= percentages[0] and percentages[-1] < 100
    assert {r.message: r.percentage for r in reversed(reports)}["analyse"] == 50


@pytest.mark.asyncio
async def test_no_progress_without_the_capability(tree: Path):
    async with server_session(SERVER_COMMAND, _params(tree, False), prepare=_answering_creates) as client:
        await wait_for(lambda: client.statuses, what="reachls/scanStatus")
        assert await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), what="diagnostics")
        assert client.created == [] and client.progress_reports == {}


def _refuse(params: types.WorkDoneProgressCreateParams) -> None:
    raise JsonRpcInternalError("no progress here")


@pytest.mark.asyncio
async def test_a_refused_token_costs_the_progress_not_the_scan(tree: Path):
    async with server_session(SERVER_COMMAND, _params(tree, True),
                              prepare=lambda client: _answering_creates(client, _refuse)) as client:
        await wait_for(lambda: client.statuses, what="reachls/scanStatus")
        assert await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), what="diagnostics")
        assert len(client.created) == 1 and client.progress_reports == {}


@pytest.mark.asyncio
async def test_several_build_dirs_share_one_progress(tree: Path, tmp_path: Path):
    """Two build dirs in one rescan: each stage named with its dir, the percentage of the whole rescan."""
    first = tree / "out" / "overflow"
    second = Path(shutil.copytree(first, tmp_path / "second"))
    params = _params(tree, True)
    params.initialization_options = {"buildDirs": [str(first), str(second)]}
    async with server_session(SERVER_COMMAND, params, prepare=_answering_creates) as client:
        await wait_for(lambda: any(p.kind == "end" for reports in client.progress_reports.values() for p in reports),
                       what="the end of the scan's progress")
        [(token, _)] = client.created
        reports = [r for r in client.progress_reports[token] if r.kind == "report"]
    expected = [f"{build.name}: {stage}" for build in (first, second) for stage in STAGES]
    assert list(dict.fromkeys(r.message for r in reports)) == expected
    percentages = [r.percentage for r in reports]
    assert percentages == sorted(set(percentages)) and percentages[-1] < 100
    assert {r.message: r.percentage for r in reversed(reports)}["second: read"] == 50
