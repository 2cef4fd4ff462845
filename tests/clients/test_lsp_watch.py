"""The watcher, end to end: the server republishes on its own when the build writes a new artefact.

A rebuild interrupted halfway (a truncated vmlinux.o) leaves the last good diagnostics and is
reported once; a real fix, rebuilt with the real toolchain, clears the diagnostics.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_support import SERVER_COMMAND, uri, wait_for
from toolchain import lld_overflows, run

@pytest.fixture(scope="module")
def tree(private_tree: Path) -> Path:
    """This module rewrites its artefact and sources: its own copy."""
    return private_tree


ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
SWITCH = Path("arch/arm64/kvm/hyp/vhe/switch.c")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER_COMMAND))
async def client(lsp_client: LanguageClient, tree: Path):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=uri(tree),
        initialization_options={"buildDirs": [str(tree / "out" / "overflow")], "debounceSeconds": 0.3}))
    yield
    await lsp_client.shutdown_session()


def _errors(client: LanguageClient, tree: Path) -> list[types.Diagnostic]:
    return [d for d in client.diagnostics.get(uri(tree / ENTRY), []) if d.severity == types.DiagnosticSeverity.Error]


@pytest.mark.asyncio(loop_scope="module")
async def test_interrupted_rebuild_keeps_diagnostics_and_says_so_once(client: LanguageClient, tree: Path):
    await wait_for(lambda: _errors(client, tree), what="first diagnostics")
    before = list(client.diagnostics[uri(tree / ENTRY)])
    artefact = tree / "out" / "overflow" / "vmlinux.o"
    good = artefact.read_bytes()
    def failed_scans() -> int:
        return sum("failed after" in m.message and "truncated" in m.message for m in client.log_messages)

    for attempt in (1, 2):  # the same broken artefact scanned twice is still one message
        artefact.write_bytes(good[: len(good) // 2])
        await wait_for(lambda: failed_scans() >= attempt, what=f"failed scan {attempt} logged")
    assert failed_scans() == 2
    assert len([m for m in client.messages if "truncated" in m.message]) == 1
    assert list(client.diagnostics[uri(tree / ENTRY)]) == before
    artefact.write_bytes(good)


@pytest.mark.asyncio(loop_scope="module")
async def test_fixed_and_rebuilt_clears_diagnostics_without_a_request(client: LanguageClient, tree: Path):
    await wait_for(lambda: _errors(client, tree), what="diagnostics before the fix")
    source = tree / SWITCH
    source.write_text(source.read_text().replace("void __noreturn hyp_panic(void)",
                                                 'void __noreturn __section(".text") hyp_panic(void)'))
    run("make", "-s", "-C", tree, "VARIANT=overflow", "vmlinux.o", "noinhibit")
    assert lld_overflows((tree / "out" / "overflow" / "noinhibit.log").read_text()) == []
    await wait_for(lambda: not _errors(client, tree), timeout=60, what="diagnostics to clear")
    assert not client.diagnostics.get(uri(source))
