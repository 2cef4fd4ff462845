"""Findings follow the source the editor shows, not just the lines the build's DWARF remembers.

The real server over stdio on the example built for real. Unsaved edits (incremental didChange)
move diagnostics, hovers and quick fixes; a quick fix saved without a rebuild leaves no finding
on a wrong line when the old build is scanned again; columns are in the client's units (UTF-16).
Expected lines come from ld.lld's `referenced by` answers and from where each statement's text
is in the edited file.
"""

from __future__ import annotations

import difflib
import os
from datetime import datetime
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_support import SERVER_COMMAND, apply_workspace_edit, referenced_lines, server_session, uri, wait_for
from toolchain import build_example, copy_example

@pytest.fixture(scope="module")
def tree(private_tree: Path) -> Path:
    """This module saves its fixes into the tree and rebuilds it: its own copy."""
    return private_tree


ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
INSERTED = "\t// three lines typed above the adr, not saved\n\tnop\n\tnop\n"


def _params(tree: Path, **general: object) -> types.InitializeParams:
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            general=types.GeneralClientCapabilities(**general) if general else None),
        root_uri=uri(tree), workspace_folders=[types.WorkspaceFolder(uri(tree), "hyp-lto")])


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER_COMMAND))
async def client(lsp_client: LanguageClient, tree: Path):
    await lsp_client.initialize_session(_params(tree))
    yield
    await lsp_client.shutdown_session()


def _referenced(tree: Path) -> dict[int, str]:
    """ld.lld's answer: line → text of each entry.S line it names, in the source the build read."""
    lines = (tree / ENTRY).read_text().split("\n")
    log = (tree / "out" / "overflow" / "noinhibit.log").read_text()
    return {line: lines[line - 1].strip() for file, line in referenced_lines(log) if file.endswith(str(ENTRY))}


def _errors(client: LanguageClient, tree: Path) -> dict[int, types.Diagnostic]:
    """Error diagnostics of entry.S by 1-based line."""
    return {d.range.start.line + 1: d for d in client.diagnostics.get(uri(tree / ENTRY), [])
            if d.severity == types.DiagnosticSeverity.Error}


async def _actions(client: LanguageClient, tree: Path, line: int) -> list[types.CodeAction]:
    at = types.Range(types.Position(line - 1, 0), types.Position(line - 1, 0))
    return await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(uri(tree / ENTRY)), at, types.CodeActionContext([]))) or []


async def _hover(client: LanguageClient, tree: Path, line: int) -> types.Hover | None:
    return await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri(tree / ENTRY)), types.Position(line - 1, 1)))


@pytest.mark.asyncio(loop_scope="module")
async def test_unsaved_edit_moves_diagnostic_hover_and_fix(client: LanguageClient, tree: Path):
    referenced = _referenced(tree)
    await wait_for(lambda: set(_errors(client, tree)) == set(referenced), what="diagnostics on ld.lld's lines")
    adr = next(line for line, text in referenced.items() if text.startswith("adr"))
    text = (tree / ENTRY).read_text()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri(tree / ENTRY), "asm", 1, text)))
    at = types.Position(adr - 1, 0)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=2, uri=uri(tree / ENTRY)),
        [types.TextDocumentContentChangePartial(range=types.Range(at, at), text=INSERTED)]))
    moved = adr + INSERTED.count("\n")
    await wait_for(lambda: moved in _errors(client, tree) and adr not in _errors(client, tree),
                   what="the adr diagnostic to follow the unsaved edit")
    assert set(_errors(client, tree)) == {line if line < adr else line + INSERTED.count("\n") for line in referenced}

    hover = await _hover(client, tree, moved)
    assert hover is not None and "ADR_PREL_LO21" in hover.contents.value
    assert hover.range.start.line == moved - 1
    assert await _hover(client, tree, adr) is None
    actions = await _actions(client, tree, moved)
    here = [e for a in actions for e in a.edit.changes.get(uri(tree / ENTRY), [])]
    assert here and all(e.range.start.line == moved - 1 for e in here)
    assert await _actions(client, tree, adr) == []

    # The statement itself edited: the finding is about something else now, until the next scan.
    line_text = text.split("\n")[adr - 1]
    operand = line_text.index("hyp_panic")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=3, uri=uri(tree / ENTRY)),
        [types.TextDocumentContentChangePartial(range=types.Range(types.Position(moved - 1, operand),
                                                                  types.Position(moved - 1, len(line_text))),
                                                text="__guest_exit")]))
    await wait_for(lambda: moved not in _errors(client, tree), what="the diagnostic of the edited statement to go")
    assert await _actions(client, tree, moved) == []

    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri(tree / ENTRY))))
    await wait_for(lambda: set(_errors(client, tree)) == set(referenced), what="disk positions after the close")


def _expected_after_fix(old: str, new: str, referenced: dict[int, str], fixed: int) -> tuple[set[int], set[int]]:
    """Lines the edit wrote (no finding may sit there) and where each other referenced statement is now."""
    matcher = difflib.SequenceMatcher(None, old.split("\n"), new.split("\n"), autojunk=False)
    written = {j + 1 for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal" for j in range(j1, j2)}
    new_lines = [line.strip() for line in new.split("\n")]
    followed = set()
    for line, text in referenced.items():
        if line != fixed:
            assert new_lines.count(text) == 1, text
            followed.add(new_lines.index(text) + 1)
    return written, followed


async def _check_after_fix(client: LanguageClient, tree: Path, written: set[int], followed: set[int]) -> None:
    built = datetime.fromtimestamp(os.stat(tree / "out" / "overflow" / "vmlinux.o").st_mtime).strftime("%H:%M")
    errors = _errors(client, tree)
    assert set(errors) == followed
    assert not written & {d.range.start.line + 1 for d in client.diagnostics.get(uri(tree / ENTRY), [])}
    lines = (tree / ENTRY).read_text().split("\n")
    for line, diagnostic in errors.items():
        assert f"source changed since the build at {built}" in diagnostic.message
        statement = lines[line - 1][diagnostic.range.start.character:diagnostic.range.end.character]
        assert statement.split()[0] in ("cbz", "adr") and "hyp_panic" in statement
    for line in written:
        assert await _hover(client, tree, line) is None
    titles = [a.title for line in range(1, len(lines) + 1) for a in await _actions(client, tree, line)]
    assert titles and not [t for t in titles if t.startswith("Invert to cbz ")]


@pytest.mark.asyncio(loop_scope="module")
async def test_fix_saved_then_old_build_rescanned(client: LanguageClient, tree: Path):
    referenced = _referenced(tree)
    await wait_for(lambda: set(_errors(client, tree)) == set(referenced), what="diagnostics on ld.lld's lines")
    fixed = min(line for line, text in referenced.items() if text.startswith("cbz"))
    (invert,) = [a for a in await _actions(client, tree, fixed) if a.is_preferred]
    assert invert.title.startswith("Invert to cbnz over an unconditional b")
    old = (tree / ENTRY).read_text()
    apply_workspace_edit(invert.edit, tree, tree)
    new = (tree / ENTRY).read_text()
    written, followed = _expected_after_fix(old, new, referenced, fixed)

    await client.workspace_execute_command_async(types.ExecuteCommandParams("reachls.rescan"))
    await _check_after_fix(client, tree, written, followed)

    # A server that never saw the source as built matches statements without a diff, to the same end.
    async with server_session(SERVER_COMMAND, _params(tree)) as fresh:
        await wait_for(lambda: _errors(fresh, tree), what="diagnostics of a fresh server")
        await _check_after_fix(fresh, tree, written, followed)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.asyncio(loop_scope="module")
async def test_columns_in_the_negotiated_encoding(tmp_path: Path):
    tree = copy_example(tmp_path)
    source = tree / ENTRY
    text = source.read_text()
    statement = next(line.strip() for line in text.split("\n") if line.strip().startswith("cbz"))
    source.write_text(text.replace(f"\t{statement}", f"\t/* süß 🙂 */ {statement}", 1))
    build_example(tree, "overflow")
    (line,) = [line for line, text in _referenced(tree).items() if text.startswith("/* süß")]
    line_text = source.read_text().split("\n")[line - 1]
    start, end = line_text.index(statement), line_text.index(statement) + len(statement)
    for encodings, units in (((), _utf16), ((types.PositionEncodingKind.Utf32,), len)):
        params = _params(tree, position_encodings=list(encodings)) if encodings else _params(tree)
        async with server_session(SERVER_COMMAND, params) as session:
            await wait_for(lambda: line in _errors(session, tree), what="the diagnostic on the commented line")
            got = _errors(session, tree)[line].range
            assert (got.start.character, got.end.character) == (units(line_text[:start]), units(line_text[:end]))
