"""reachls as users install it: a wheel built from the tree, in a fresh venv outside the repository.

The wheel is the only source of reachls in that venv (its dependencies come from the package
index or pip's cache), and every command runs in a directory outside the repository, so
nothing can be read from the source tree: the C grammar query must travel in the wheel.
The answer key is ld.lld's own log of the example's link.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import apply_text_edits, server_session, uri, wait_for
from toolchain import ROOT, lld_overflows, run

SWITCH = Path("arch/arm64/kvm/hyp/vhe/switch.c")


def _clean_env() -> dict[str, str]:
    """The environment without anything that could point Python back at the repository."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`bin/` of a fresh venv holding reachls installed from its wheel, the wheel built by `pip wheel`."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.is_relative_to(ROOT)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", base / "dist", ROOT, cwd=base)
    wheels = list((base / "dist").glob("reachls-*.whl"))
    assert len(wheels) == 1, wheels
    run(sys.executable, "-m", "venv", base / "venv", cwd=base)
    bin_dir = base / "venv" / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "--quiet", wheels[0]], cwd=base, env=_clean_env(),
                   check=True, capture_output=True, text=True)
    where = subprocess.run([bin_dir / "python", "-c", "import reachls; print(reachls.__file__)"], cwd=base,
                           env=_clean_env(), check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(base / "venv"), where
    return bin_dir


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A working directory outside the repository."""
    return tmp_path_factory.mktemp("elsewhere")


def test_installed_scan_finds_the_linkers_overflows(installed: Path, outside: Path, tree: Path):
    build = tree / "out" / "overflow"
    expected = {(e.type, e.distance, e.symbol) for e in lld_overflows((build / "noinhibit.log").read_text())}
    assert expected
    result = subprocess.run([installed / "reachls", "scan", build, "--format", "json"], cwd=outside,
                            env=_clean_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    found = {(r["kind"]["type"], r["distance"], r["target"]["symbol"])
             for r in document["records"] if r["status"] == "overflow"}
    assert found == expected


@pytest.mark.asyncio(loop_scope="module")
async def test_installed_server_offers_the_c_fix(installed: Path, outside: Path, tree: Path):
    """The `__section(".text")` fix on hyp_panic needs the C grammar query to find the function."""
    params = types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=uri(tree),
                                    workspace_folders=[types.WorkspaceFolder(uri(tree), "hyp-lto")])
    async with server_session([str(installed / "reachls"), "serve"], params, cwd=outside, env=_clean_env()) as client:
        diagnostics = await wait_for(lambda: client.diagnostics.get(uri(tree / SWITCH)), timeout=60,
                                     what="diagnostics on switch.c")
        text = (tree / SWITCH).read_text()
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            types.TextDocumentIdentifier(uri(tree / SWITCH)), diagnostics[0].range,
            types.CodeActionContext(diagnostics)))
        edited = [apply_text_edits(text, list(action.edit.changes[uri(tree / SWITCH)])) for action in actions or []
                  if uri(tree / SWITCH) in (action.edit.changes or {})]
        assert any(re.search(r'__section\("\.text"\) hyp_panic\(', t) for t in edited), actions
