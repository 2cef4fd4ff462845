"""The VS Code extension (vscode-client/): built, linted, type-checked and packaged as a user
installs it, and its server start-up and settings plumbing run against the real server.

The plumbing half is a Node script (vscode-client/test/server-plumbing.js) that imports the
extension's own bundled settings mapping and server resolution, so what reaches the server
here is what the extension sends.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from reachls.layout.linkopts import LINKERS
from reachls.kbuild import ARTEFACTS, LOG_NAME
from reachls.pipeline import ENGINES
from toolchain import ROOT

CLIENT = ROOT / "vscode-client"
VSIX_NAME = "reachls.vsix"
#: The language ids of the assembly highlighting extensions users have: x86-64 Assembly (asm),
#: GNU Assembler x86 (gas), ARM (arm), ARM64 Assembly (arm64), RISC-V Support (riscv), ASM Code Lens
#: (asm-collection).
ASSEMBLY_LANGUAGES = ("asm", "gas", "arm", "arm64", "riscv", "asm-collection")
#: Configuration scopes the Settings editor lists in the User tab of a remote window (code-server's
#: is one): application, window, resource, language-overridable.
USER_TAB_SCOPES = {"application", "window", "resource", "language-overridable"}
STEPS = (("ci", "--no-audit", "--no-fund"), ("run", "lint"), ("run", "typecheck"), ("run", "package"))


def npm(build: Path, *args: str, timeout: float = 600) -> str:
    result = subprocess.run(["npm", *args], cwd=build, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "npm_config_update_notifier": "false"})
    if result.returncode != 0:
        raise AssertionError(f"npm {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result.stdout


@functools.cache
def _package(build: Path) -> dict[str, float]:
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(CLIENT, build, ignore=shutil.ignore_patterns("node_modules", "dist", "out", "*.vsix"))
    timings = {}
    for step in STEPS:
        started = time.monotonic()
        npm(build, *step)
        timings[step[1] if step[0] == "run" else step[0]] = round(time.monotonic() - started, 1)
    print(f"vscode-client build timings (s): {timings}")
    return timings


def package_extension(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of vscode-client/ where `npm ci`, lint, typecheck and `npm run package` have run,
    once per session (a copy: the work tree is left alone, and parallel runs do not collide).
    Skips where npm is missing."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node are not installed: the VS Code extension cannot be built")
    build = tmp_path_factory.getbasetemp() / "vscode-client-build"
    _package(build)
    return build


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_extension(tmp_path_factory)


@pytest.fixture(scope="module")
def vsix(build: Path) -> zipfile.ZipFile:
    assert (build / VSIX_NAME).is_file()
    with zipfile.ZipFile(build / VSIX_NAME) as archive:
        yield archive


@pytest.fixture(scope="module")
def example_tree(tree: Path) -> Path:
    return tree


def test_vsix_holds_the_bundle_and_the_marketplace_files(vsix: zipfile.ZipFile):
    names = set(vsix.namelist())
    assert {"extension/package.json", "extension/dist/extension.js", "extension/readme.md",
            "extension/LICENSE.txt", "extension/icon.png", "extension.vsixmanifest"} <= names
    # Bundled: no sources, no node_modules, no test or build scripts in the package.
    assert not [n for n in names if n.startswith(("extension/node_modules/", "extension/src/", "extension/test/",
                                                  "extension/scripts/", "extension/out/"))]
    bundle = vsix.read("extension/dist/extension.js").decode()
    assert "vscode-languageclient" in bundle or "LanguageClient" in bundle
    assert 'require("vscode")' in bundle
    icon = vsix.read("extension/icon.png")
    assert icon[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", icon[16:24]) == (128, 128)


def test_vsix_manifest_contributes(vsix: zipfile.ZipFile):
    manifest = json.loads(vsix.read("extension/package.json"))
    assert manifest["engines"]["vscode"].startswith("^1.")
    assert manifest["publisher"] and manifest["repository"] and manifest["license"] == "MIT"
    assert manifest["main"] == "./dist/extension.js"
    contributes = manifest["contributes"]
    assert {c["command"] for c in contributes["commands"]} == {
        "reachls.rescan", "reachls.showReport", "reachls.showLayout", "reachls.restartServer", "reachls.showServerLog",
        "reachls.setBuildDirectory", "reachls.addPathMapping"}
    properties = contributes["configuration"]["properties"]
    assert {"reachls.server.path", "reachls.server.pythonPath", "reachls.buildDirs", "reachls.threshold",
            "reachls.engine", "reachls.linker", "reachls.pathMappings", "reachls.severity.overflow",
            "reachls.severity.veneer", "reachls.severity.at-risk", "reachls.severity.fragile",
            "reachls.trace.server", "reachls.history", "reachls.historyBuilds", "reachls.codeLens"} <= set(properties)
    assert properties["reachls.engine"]["enum"] == list(ENGINES)
    assert properties["reachls.linker"]["enum"] == list(LINKERS)


def test_activates_on_a_build_and_on_the_languages_users_have(vsix: zipfile.ZipFile):
    """A workspace holding a build or assembly sources (an `O=` build elsewhere) starts the
    extension before any file is opened; so does a C file, or an assembly file in the language of
    any common highlighting extension. Not every start-up of VS Code."""
    events = set(json.loads(vsix.read("extension/package.json"))["activationEvents"])
    assert {f"workspaceContains:**/{name}" for name in (*ARTEFACTS, ".vmlinux.cmd", LOG_NAME, "*.S")} <= events
    assert {f"onLanguage:{language}" for language in ("c", "cpp", *ASSEMBLY_LANGUAGES)} <= events
    assert not events & {"*", "onStartupFinished"}


def test_contributes_no_language_without_a_grammar(vsix: zipfile.ZipFile):
    """A language without a grammar takes `.S` files away from the user's highlighting extension."""
    contributes = json.loads(vsix.read("extension/package.json"))["contributes"]
    with_grammar = {grammar["language"] for grammar in contributes.get("grammars", []) if "language" in grammar}
    assert [language["id"] for language in contributes.get("languages", [])
            if language["id"] not in with_grammar] == []


def test_settings_are_user_settings_with_the_servers_defaults(vsix: zipfile.ZipFile):
    """Every setting shows in the Settings editor's User tab, remote windows included (VS Code
    lists `machine` and `machine-overridable` settings only under Remote there); path mappings are a string → string object, which the Settings editor
    edits as a table (a list of objects it only offers to edit as JSON)."""
    properties = json.loads(vsix.read("extension/package.json"))["contributes"]["configuration"]["properties"]
    assert {key: p["scope"] for key, p in properties.items()
            if p.get("scope", "window") not in USER_TAB_SCOPES} == {}
    mappings = properties["reachls.pathMappings"]
    assert mappings["type"] == "object" and mappings["additionalProperties"] == {"type": "string"}


def test_untrusted_workspaces_run_no_linker(vsix: zipfile.ZipFile):
    """VS Code asks before running an extension in a workspace nobody trusted: reachls runs there,
    limited (the model engine, forced in the settings it sends; see the plumbing test), and a
    workspace's own settings cannot pick the server binary or allow a linker from inside it."""
    manifest = json.loads(vsix.read("extension/package.json"))
    untrusted = manifest["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    assert "linker" in untrusted["description"] and "model" in untrusted["description"]
    assert set(untrusted["restrictedConfigurations"]) == {
        "reachls.server.path", "reachls.server.pythonPath", "reachls.allowWorkspaceLinker"}
    assert set(untrusted["restrictedConfigurations"]) <= set(manifest["contributes"]["configuration"]["properties"])
    bundle = vsix.read("extension/dist/extension.js").decode()
    assert "isTrusted" in bundle and "onDidGrantWorkspaceTrust" in bundle


def test_server_start_and_settings_reach_the_real_server(build: Path, example_tree: Path):
    """Start-up through the extension's resolveServer, initializationOptions and
    didChangeConfiguration from its settings mapping, checked against the real server."""
    result = subprocess.run(["node", "test/server-plumbing.js", str(example_tree), sys.executable], cwd=build,
                            capture_output=True, text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "passed, 0 failed" in result.stdout.splitlines()[-1]
