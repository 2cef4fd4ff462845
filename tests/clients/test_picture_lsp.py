"""`reachls.picture` (workspace/executeCommand): the language server hands out the HTML page
`reachls picture` writes, with source paths mapped onto the workspace as its diagnostics are."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from lsp_support import SERVER_COMMAND, referenced_lines, server_session, uri, wait_for
from toolchain import build_example, copy_example, lld_overflows


@pytest.mark.asyncio
async def test_picture_command_maps_sources_onto_the_workspace(tmp_path: Path):
    build = build_example(copy_example(tmp_path / "built"), "overflow")
    built_tree = build.parent.parent
    checkout = copy_example(tmp_path / "checkout")
    log = (build / "noinhibit.log").read_text()
    expected = {line for file, line in referenced_lines(log) if file == str(built_tree / "arch/arm64/kvm/hyp/entry.S")}
    params = types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=uri(checkout),
        workspace_folders=[types.WorkspaceFolder(uri(checkout), "checkout")],
        initialization_options={"buildDirs": [str(build)],
                                "pathMappings": [{"from": str(built_tree), "to": str(checkout)}]})
    async with server_session(SERVER_COMMAND, params) as client:
        entry = checkout / "arch/arm64/kvm/hyp/entry.S"
        await wait_for(lambda: client.diagnostics.get(uri(entry)), timeout=90, what="diagnostics on entry.S")
        page = await client.workspace_execute_command_async(types.ExecuteCommandParams("reachls.picture", [str(build)]))
        with pytest.raises(JsonRpcException, match="no completed scan"):
            await client.workspace_execute_command_async(types.ExecuteCommandParams("reachls.picture",
                                                                                    [str(tmp_path)]))

    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy and policy[1].startswith("default-src 'none';"), page[:500]
    svg = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")])
    records = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "record"]
    assert len(records) == len(lld_overflows(log))
    assert {r.get("data-site-file") for r in records} == {str(entry)}
    assert {int(r.get("data-site-line")) for r in records} == expected
    assert all(Path(r.get("data-target-file")).is_relative_to(checkout) for r in records)
