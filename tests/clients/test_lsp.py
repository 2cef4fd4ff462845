"""The real server over stdio, driven by pytest-lsp, on the example built for real.

Expected lines come from ld.lld's `referenced by` answers; distances from its error messages;
every quick fix is applied to a copy of the tree, rebuilt and relinked, and the linker decides.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_support import SERVER_COMMAND, apply_workspace_edit, referenced_lines, uri, wait_for
from toolchain import LldOverflow, lld_overflows, lld_sites, need, run

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
SWITCH = Path("arch/arm64/kvm/hyp/vhe/switch.c")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER_COMMAND))
async def client(lsp_client: LanguageClient, tree: Path):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
        root_uri=uri(tree), workspace_folders=[types.WorkspaceFolder(uri(tree), "hyp-lto")]))
    yield
    await lsp_client.shutdown_session()


def _log(tree: Path) -> str:
    return (tree / "out" / "overflow" / "noinhibit.log").read_text()


async def _diagnostics(client: LanguageClient, path: Path) -> list[types.Diagnostic]:
    return await wait_for(lambda: client.diagnostics.get(uri(path)), what=f"diagnostics for {path.name}")


@pytest.mark.asyncio(loop_scope="module")
async def test_errors_on_the_lines_the_linker_names(client: LanguageClient, tree: Path):
    diagnostics = await _diagnostics(client, tree / ENTRY)
    errors = [d for d in diagnostics if d.severity == types.DiagnosticSeverity.Error]
    expected = {line for file, line in referenced_lines(_log(tree)) if file.endswith(str(ENTRY))}
    assert {d.range.start.line + 1 for d in errors} == expected
    lines = (tree / ENTRY).read_text().split("\n")
    codes = {d.code for d in errors}
    assert codes == {e.type for e in lld_overflows(_log(tree))}
    for diagnostic in errors:
        text = lines[diagnostic.range.start.line][diagnostic.range.start.character:diagnostic.range.end.character]
        assert text.split()[0] in ("cbz", "adr") and "hyp_panic" in text
        assert diagnostic.source == "reachls"
        assert diagnostic.related_information and diagnostic.related_information[0].location.uri == uri(tree / SWITCH)
    # The end of progress follows the diagnostics on the wire; wait for it rather than race it.
    await wait_for(lambda: any(p.kind == "end" for reports in client.progress_reports.values() for p in reports),
                   what="the end of the scan's progress")


@pytest.mark.asyncio(loop_scope="module")
async def test_target_function_is_marked(client: LanguageClient, tree: Path):
    diagnostics = await _diagnostics(client, tree / SWITCH)
    lines = (tree / SWITCH).read_text().split("\n")
    names = {lines[d.range.start.line][d.range.start.character:d.range.end.character] for d in diagnostics}
    assert names == {"hyp_panic"}
    assert {len(d.related_information) for d in diagnostics} == {len(lld_overflows(_log(tree)))}


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_carries_the_linker_distance(client: LanguageClient, tree: Path):
    diagnostics = await _diagnostics(client, tree / ENTRY)
    distances = {e.distance for e in lld_overflows(_log(tree))}
    for diagnostic in diagnostics:
        hover = await client.text_document_hover_async(types.HoverParams(
            types.TextDocumentIdentifier(uri(tree / ENTRY)), diagnostic.range.start))
        assert hover is not None
        assert any(f"{distance} B" in hover.contents.value for distance in distances)
        assert "placed by" in hover.contents.value and "vmlinux.o" in hover.contents.value


def _usage(overflow: LldOverflow) -> str:
    """Usage as ld.lld's own numbers give it: the distance over the bound on its side."""
    bound = overflow.hi if overflow.distance >= 0 else overflow.lo
    return f"{round(overflow.distance / bound * 100)} % of reach"


async def _hover(client: LanguageClient, path: Path, diagnostic: types.Diagnostic) -> str:
    hover = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri(path)), diagnostic.range.start))
    assert hover is not None
    return hover.contents.value


@pytest.mark.asyncio(loop_scope="module")
async def test_site_wording_is_the_linker_s(client: LanguageClient, tree: Path):
    """Each site's message and hover name the site as ld.lld prints it (`vmlinux.o:(.text+0x90)`),
    with ld.lld's distance, and usage as a figure of its own."""
    sites = {site.line: site for site in lld_sites(_log(tree)) if site.file.endswith(str(ENTRY))}
    errors = [d for d in await _diagnostics(client, tree / ENTRY) if d.severity == types.DiagnosticSeverity.Error]
    assert {d.range.start.line + 1 for d in errors} == set(sites)
    for diagnostic in errors:
        site = sites[diagnostic.range.start.line + 1]
        assert f"{site.overflow.distance} B" in diagnostic.message and "out of reach" in diagnostic.message
        assert _usage(site.overflow) in diagnostic.message
        assert not re.search(r"reaches [^;]*\(\d+ %\)", diagnostic.message)
        text = await _hover(client, tree / ENTRY, diagnostic)
        assert f"`{site.site}`" in text and f"{site.overflow.distance} B" in text and _usage(site.overflow) in text


@pytest.mark.asyncio(loop_scope="module")
async def test_target_wording_is_definite_and_lists_each_site_once(client: LanguageClient, tree: Path):
    sites = lld_sites(_log(tree))
    [marker] = await _diagnostics(client, tree / SWITCH)
    symbol = sites[0].overflow.symbol
    summary = f"{symbol} is out of reach of {len(sites)} references (overflow)"
    assert marker.message.startswith(summary) and "close to" not in marker.message
    text = await _hover(client, tree / SWITCH, marker)
    assert summary in text and "close to" not in text
    for site in sites:
        [row] = [line for line in text.split("\n") if f"`{site.site}`" in line]
        assert f"| {site.overflow.distance} B | {_usage(site.overflow).removesuffix(' of reach')} |" in row
    assert text.count("placed by") == 1


def _gcc_accepts(tree: Path, changed: list[Path]) -> None:
    """The edited sources still build with GCC for arm64, where Debian's cross GCC is installed."""
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        return
    for path in changed:
        if path.suffix not in (".c", ".S"):
            continue
        flags = ["-D__ASSEMBLY__"] if path.suffix == ".S" else [
            "-O2", "-ffreestanding", "-include", "include/linux/compiler_types.h", "-Werror=attributes"]
        run("aarch64-linux-gnu-gcc", "-c", "-nostdinc", "-Iarch/arm64/include", "-Iinclude", *flags, path,
            "-o", "/dev/null", cwd=tree)


@pytest.mark.asyncio(loop_scope="module")
async def test_every_quick_fix_removes_its_overflow(client: LanguageClient, tree: Path, tmp_path: Path):
    need("make")
    before = lld_overflows(_log(tree))
    sites = [d for d in await _diagnostics(client, tree / ENTRY) if d.severity == types.DiagnosticSeverity.Error]
    targets = await _diagnostics(client, tree / SWITCH)
    proven, titles = 0, set()
    for path, diagnostic in [*((tree / ENTRY, d) for d in sites), *((tree / SWITCH, d) for d in targets)]:
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            types.TextDocumentIdentifier(uri(path)), diagnostic.range, types.CodeActionContext([diagnostic])))
        assert actions, f"no fix for {diagnostic.message}"
        assert sum(bool(a.is_preferred) for a in actions) == 1
        for action in actions:
            copy = tmp_path / f"fix{proven}"
            shutil.copytree(tree, copy, symlinks=True)
            changed = apply_workspace_edit(action.edit, tree, copy)
            run("make", "-s", "-C", copy, "VARIANT=overflow", "vmlinux.o", "noinhibit")
            after = lld_overflows((copy / "out" / "overflow" / "noinhibit.log").read_text())
            assert len(after) < len(before), (action.title, after)
            if any(p.suffix != ".S" for p in changed):  # moves hyp_panic itself: every reference is fixed
                assert after == [], action.title
            else:
                assert sum(e.type == diagnostic.code for e in after) == sum(e.type == diagnostic.code for e in before) - 1
            _gcc_accepts(copy, changed)
            proven += 1
            titles.add(action.title.split()[0])
    assert proven >= len(sites) + 1
    assert {"Use", "Invert", "Place", "Take"} <= titles, titles


@pytest.mark.asyncio(loop_scope="module")
async def test_configuration_change_reaches_the_running_server(client: LanguageClient, tree: Path):
    errors = [d for d in await _diagnostics(client, tree / ENTRY) if d.severity == types.DiagnosticSeverity.Error]
    overflows = {(d.range.start.line, d.code) for d in errors}
    assert overflows and {code for _, code in overflows} <= {e.type for e in lld_overflows(_log(tree))}
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"reachls": {"severity": {"overflow": "hint"}}}))

    def as_hints() -> bool:
        shown = client.diagnostics[uri(tree / ENTRY)]
        return {(d.range.start.line, d.code) for d in shown if d.severity == types.DiagnosticSeverity.Hint} \
            == overflows and not any(d.severity == types.DiagnosticSeverity.Error for d in shown)

    await wait_for(as_hints, what="the same overflow diagnostics republished as hints")
