"""Settings as a user may write them: each bad key is named once, keeps its previous value, and the
other keys are taken (read_settings in process; the message over the wire from the real server)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import SERVER_COMMAND, collect_scan_status, server_session, uri, wait_for
from reachls.lsp.server import ReachServer
from reachls.lsp.settings import DEFAULT_SETTINGS, read_settings
from test_relink import build_dir_with_its_own_linker

PREVIOUS = replace(DEFAULT_SETTINGS, threshold=0.5, engine="model", path_mappings=(("/b", "/w"),),
                    severity={"overflow": "warning", "veneer": "hint", "at-risk": "warning", "fragile": "hint"},
                    discovery_depth=2)


@pytest.mark.parametrize("key, value, named", [
    ("threshold", "abc", "reachls.threshold"),
    ("threshold", 0, "reachls.threshold"),
    ("threshold", True, "reachls.threshold"),
    ("pathMappings", [None], "reachls.pathMappings[0]"),
    ("pathMappings", [{"from": "/a"}], "reachls.pathMappings[0].to"),
    ("severity", {"overflow": "fatal"}, "reachls.severity['overflow']"),
    ("severity", {"sometimes": "error"}, "reachls.severity['sometimes']"),
    ("buildDirs", "out", "reachls.buildDirs"),
    ("buildDirs", ["out", 3], "reachls.buildDirs[1]"),
    ("engine", "fast", "reachls.engine"),
    ("discoveryDepth", 2.5, "reachls.discoveryDepth"),
    ("discoveryDepth", -1, "reachls.discoveryDepth"),
    ("debounceSeconds", "1", "reachls.debounceSeconds"),
    ("allowWorkspaceLinker", "yes", "reachls.allowWorkspaceLinker"),
])
def test_a_bad_key_keeps_its_value_and_the_rest_is_taken(key: str, value: object, named: str):
    read = read_settings({"reachls": {key: value, "linker": "gnu"}}, PREVIOUS)
    assert read.refused is not None and named in read.refused and "\n" not in read.refused
    field = {"buildDirs": "build_dirs", "pathMappings": "path_mappings", "discoveryDepth": "discovery_depth",
             "debounceSeconds": "debounce_seconds", "allowWorkspaceLinker": "allow_workspace_linker"}.get(key, key)
    assert getattr(read.settings, field) == getattr(PREVIOUS, field)
    assert read.settings.linker == "gnu"


def test_every_bad_key_is_named_in_one_message():
    read = read_settings({"threshold": "abc", "pathMappings": [None], "engine": "relink"}, PREVIOUS)
    assert read.refused is not None
    assert "reachls.threshold" in read.refused and "reachls.pathMappings[0]" in read.refused
    assert read.settings.engine == "relink" and read.settings.threshold == PREVIOUS.threshold


@pytest.mark.parametrize("options", [{"reachls": None}, {"reachls": [1]}, 5, "abc"])
def test_a_section_that_is_not_an_object_changes_nothing(options: object):
    read = read_settings(options, PREVIOUS)
    assert read.settings == PREVIOUS and read.refused is not None and "expected an object" in read.refused


def test_good_settings_are_taken_and_absent_keys_take_their_defaults():
    read = read_settings({"reachls": {"threshold": 0.9, "pathMappings": [{"from": "/x", "to": "/y"}],
                                      "severity": {"veneer": "error"}, "allowWorkspaceLinker": True}}, PREVIOUS)
    assert read.refused is None
    assert read.settings == replace(DEFAULT_SETTINGS, threshold=0.9, path_mappings=(("/x", "/y"),), allow_workspace_linker=True,
                                     severity={**DEFAULT_SETTINGS.severity, "veneer": "error"})
    assert read_settings(None, PREVIOUS) == read_settings({}, PREVIOUS)


@pytest.mark.asyncio
async def test_the_server_names_the_bad_key_once_and_goes_on(tmp_path: Path):
    (tmp_path / "a.c").write_text("int x;\n")
    params = types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=uri(tmp_path),
                                    initialization_options={"threshold": "abc", "engine": "model"})
    async with server_session(SERVER_COMMAND, params) as client:
        await wait_for(lambda: any("reachls.threshold" in m.message for m in client.messages), what="the message")
        hover = await client.text_document_hover_async(types.HoverParams(
            types.TextDocumentIdentifier(uri(tmp_path / "a.c")), types.Position(0, 0)))
        assert hover is None
        shown = [m.message for m in client.messages if "settings" in m.message]
        assert len(shown) == 1 and 'expected a number, got "abc" @ reachls.threshold' in shown[0]
        assert any("reachls.threshold" in m.message for m in client.log_messages)


def test_no_linker_from_the_workspace_unless_allowed(tmp_path: Path):
    server = ReachServer()
    server.roots = [tmp_path / "linux", tmp_path / "other"]
    server.settings = read_settings({}, DEFAULT_SETTINGS).settings
    assert server.linker_untrusted_roots() == (tmp_path / "linux", tmp_path / "other")
    server.settings = read_settings({"allowWorkspaceLinker": True}, DEFAULT_SETTINGS).settings
    assert server.linker_untrusted_roots() == ()


@pytest.mark.asyncio
@pytest.mark.parametrize("allowed", [False, True], ids=["default", "allowWorkspaceLinker"])
async def test_a_linker_inside_the_workspace_runs_only_when_allowed(tree: Path, tmp_path: Path, allowed: bool):
    """Opening a tree whose build names a program of its own as the linker runs nothing from it;
    the user may allow it. The oracle is the program itself: it leaves a mark when it runs."""
    build, mark = build_dir_with_its_own_linker(tree, tmp_path)
    statuses: list[list[dict]] = []
    params = types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=uri(tmp_path),
                                    initialization_options={"buildDirs": [str(build)], "engine": "relink",
                                                            "allowWorkspaceLinker": allowed})
    async with server_session(SERVER_COMMAND, params, prepare=lambda c: statuses.append(collect_scan_status(c))):
        status = await wait_for(lambda: statuses[0] and statuses[0][0], timeout=120, what="reachls/scanStatus")
    problems = [p["message"] for p in status["problems"] if p["kind"] == "unreadable"]
    if allowed:
        assert mark.exists() and problems == []
    else:
        assert not mark.exists()
        assert any("ld.lld-wrapper" in p and "untrusted" in p for p in problems), problems
