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

from toolchain import build_example, copy_example

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "vscode-client"
VSIX_NAME = "reachls.vsix"
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
def example_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = copy_example(tmp_path_factory.mktemp("vscode"))
    build_example(tree, "overflow")
    return tree


def test_vsix_holds_the_bundle_and_the_marketplace_files(vsix: zipfile.ZipFile):
    names = set(vsix.namelist())
    assert {"extension/package.json", "extension/dist/extension.js", "extension/readme.md",
            "extension/LICENSE.txt", "extension/icon.png", "extension/language-configuration.json",
            "extension.vsixmanifest"} <= names
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
    assert {"onLanguage:c", "onLanguage:asm", "workspaceContains:**/vmlinux.o",
            "workspaceContains:**/vmlinux"} <= set(manifest["activationEvents"])
    contributes = manifest["contributes"]
    asm = next(language for language in contributes["languages"] if language["id"] == "asm")
    assert {".S", ".s"} <= set(asm["extensions"]) and "GNU Assembler" in asm["aliases"]
    assert {c["command"] for c in contributes["commands"]} == {
        "reachls.rescan", "reachls.showReport", "reachls.restartServer", "reachls.showServerLog"}
    properties = contributes["configuration"]["properties"]
    assert {"reachls.server.path", "reachls.server.pythonPath", "reachls.buildDirs", "reachls.threshold",
            "reachls.engine", "reachls.pathMappings", "reachls.severity.overflow", "reachls.severity.veneer",
            "reachls.severity.at-risk", "reachls.severity.fragile", "reachls.trace.server"} <= set(properties)
    assert properties["reachls.engine"]["enum"] == ["auto", "relink", "model"]
    assert properties["reachls.threshold"]["default"] == 0.75
    for status, default in (("overflow", "error"), ("veneer", "information"), ("at-risk", "warning"),
                            ("fragile", "information")):
        assert properties[f"reachls.severity.{status}"]["default"] == default


def test_server_start_and_settings_reach_the_real_server(build: Path, example_tree: Path):
    """Start-up through the extension's resolveServer, initializationOptions and
    didChangeConfiguration from its settings mapping, checked against the real server."""
    result = subprocess.run(["node", "test/server-plumbing.js", str(example_tree), sys.executable], cwd=build,
                            capture_output=True, text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "passed, 0 failed" in result.stdout.splitlines()[-1]
