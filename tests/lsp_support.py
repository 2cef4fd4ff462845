"""Shared pieces of the language-server tests: the server command, waiting, applying edits."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path
from pytest_lsp import LanguageClient, make_test_lsp_client

SERVER_COMMAND = [sys.executable, "-m", "reachls.cli", "serve"]
_REFERENCED_BY = re.compile(r">>> referenced by \S+ \((.+):(\d+)\)")


SCAN_STATUS = "reachls/scanStatus"


@attrs.define
class _PlainNotification:
    """A notification whose params stay the JSON object sent (pygls turns unknown methods' params
    into namedtuples, renaming keys such as "at-risk")."""

    method: str
    jsonrpc: str
    params: Any = None


def collect_scan_status(client: LanguageClient) -> list[dict]:
    """Every `reachls/scanStatus` the server sends `client`, as sent, in order of arrival."""
    received: list[dict] = []
    protocol = client.protocol
    message_type = protocol.get_message_type
    protocol.get_message_type = lambda method: _PlainNotification if method == SCAN_STATUS else message_type(method)
    protocol._converter.register_structure_hook(_PlainNotification, lambda data, cls: cls(**data))

    @client.feature(SCAN_STATUS)
    def on_scan_status(_client: LanguageClient, params: Any) -> None:
        received.append(params)

    return received


def uri(path: Path) -> str:
    return from_fs_path(str(path))


async def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    """Poll `condition` on the event loop until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def referenced_lines(log: str) -> set[tuple[str, int]]:
    """(file, line) of every `>>> referenced by` line of an ld.lld log: the linker's own answer."""
    return {(m.group(1), int(m.group(2))) for m in _REFERENCED_BY.finditer(log)}


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP text edits (positions in the original text), last first."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def offset(position: types.Position) -> int:
        return offsets[position.line] + position.character

    for edit in sorted(edits, key=lambda e: offset(e.range.start), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


def apply_workspace_edit(edit: types.WorkspaceEdit, source_root: Path, target_root: Path) -> list[Path]:
    """Apply a workspace edit made for files under `source_root` to the same files under `target_root`."""
    changed = []
    for file_uri, edits in (edit.changes or {}).items():
        path = target_root / Path(to_fs_path(file_uri)).relative_to(source_root)
        path.write_text(apply_text_edits(path.read_text(), list(edits)))
        changed.append(path)
    return changed


@contextlib.asynccontextmanager
async def server_session(command: list[str], params: types.InitializeParams,
                         prepare: Callable[[LanguageClient], object] | None = None, **popen: object):
    """A pytest-lsp client on a server started by `command` (`popen`: cwd, env), initialized with
    `params`; `prepare` is called on the client before it starts (to add handlers). Shut down
    afterwards even when the test failed (a live server would keep `stop` waiting)."""
    client = make_test_lsp_client()
    if prepare is not None:
        prepare(client)
    await client.start_io(*command, **popen)
    try:
        await client.initialize_session(params)
        yield client
    finally:
        with contextlib.suppress(Exception):  # the server may be gone already: stopping is enough then
            await asyncio.wait_for(client.shutdown_session(), 10)
        await client.stop()
