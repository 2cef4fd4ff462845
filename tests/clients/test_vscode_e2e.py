"""The packaged extension in a real VS Code: code-server with the .vsix installed, driven in
headless Chromium by vscode-client/test/e2e.js against the example build, checked against
ld.lld's own answers.

Needs code-server (vscode-client/scripts/install-code-server.sh installs it from npm, about two
minutes; REACHLS_INSTALL_CODE_SERVER=1 makes this test run that script) and Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_vscode_client import CLIENT, VSIX_NAME, package_extension
from toolchain import copy_example, lld_overflows, need, run

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
INSTALL_SCRIPT = CLIENT / "scripts" / "install-code-server.sh"
#: A user's assembly highlighting extension, as ARM64 Assembly is: its own language id for
#: `.S`/`.s` and a grammar (here one that knows the branch mnemonics the test looks at).
HIGHLIGHTING = {
    "name": "arm64-highlighting", "publisher": "fixture", "version": "1.0.0", "engines": {"vscode": "^1.60.0"},
    "description": "AArch64 assembly highlighting for the reachls tests",
    "contributes": {
        "languages": [{"id": "arm64", "aliases": ["ARM64 (test grammar)"], "extensions": [".S", ".s"]}],
        "grammars": [{"language": "arm64", "scopeName": "source.arm64.fixture", "path": "./arm64.tmLanguage.json"}],
    },
}
GRAMMAR = {
    "scopeName": "source.arm64.fixture",
    "patterns": [{"match": r"\b(?:cbz|cbnz|adr|adrp|b|bl|ret)\b", "name": "keyword.control.arm64"},
                 {"match": "//.*$", "name": "comment.line.double-slash.arm64"}],
}


def code_server() -> str | None:
    """$REACHLS_CODE_SERVER, the install script's location, or code-server on PATH."""
    if os.environ.get("REACHLS_CODE_SERVER"):
        return os.environ["REACHLS_CODE_SERVER"]
    prefix = Path(os.environ.get("REACHLS_CODE_SERVER_DIR", Path.home() / ".cache" / "reachls" / "code-server"))
    installed = prefix / "node_modules" / ".bin" / "code-server"
    if installed.is_file():
        return str(installed)
    if shutil.which("code-server"):
        return shutil.which("code-server")
    if os.environ.get("REACHLS_INSTALL_CODE_SERVER") == "1":
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip().splitlines()[-1]
    return None


def chromium() -> str | None:
    return next(filter(None, (shutil.which(name) for name in ("chromium", "chromium-browser"))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def example_tree(private_tree: Path) -> Path:
    """The workspace: its own copy, as the extension writes `.vscode/settings.json` into it."""
    return private_tree


def highlighting_extension(build: Path, where: Path) -> Path:
    """HIGHLIGHTING packaged as a .vsix by the extension's own vsce."""
    where.mkdir()
    (where / "package.json").write_text(json.dumps(HIGHLIGHTING))
    (where / "arm64.tmLanguage.json").write_text(json.dumps(GRAMMAR))
    (where / "README.md").write_text("Test grammar.\n")
    run(build / "node_modules" / ".bin" / "vsce", "package", "--allow-missing-repository", "--skip-license",
        "--out", where / "highlighting.vsix", cwd=where)
    return where / "highlighting.vsix"


@pytest.fixture(scope="module")
def vscode(tmp_path_factory: pytest.TempPathFactory, example_tree: Path):
    """code-server on 127.0.0.1 (no auth) with the freshly packaged extension; its URL."""
    executable = code_server()
    if executable is None:
        pytest.skip(f"code-server is not installed (run {INSTALL_SCRIPT.relative_to(CLIENT.parent)})")
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    build = package_extension(tmp_path_factory)
    home = tmp_path_factory.mktemp("code-server")
    user, extensions = home / "user-data", home / "extensions"
    (user / "User").mkdir(parents=True)
    (user / "User" / "settings.json").write_text(json.dumps({
        "reachls.server.pythonPath": sys.executable,
        "workbench.startupEditor": "none",
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "workbench.tips.enabled": False,
    }))
    dirs = ["--user-data-dir", str(user), "--extensions-dir", str(extensions)]
    run(executable, *dirs, "--install-extension", build / VSIX_NAME)
    run(executable, *dirs, "--install-extension", highlighting_extension(build, home / "highlighting"))
    port = free_port()
    log = (home / "code-server.log").open("w")
    server = subprocess.Popen(
        [executable, *dirs, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}", "--disable-telemetry",
         "--disable-update-check", "--disable-workspace-trust", "--disable-getting-started-override",
         str(example_tree)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (home / "code-server.log").read_text()
                time.sleep(0.3)
        yield url, build
    finally:
        # code-server, its extension hosts and file watchers, and the reachls servers they
        # started: all in the session started for it.
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_diagnostics_hover_and_quick_fix_in_vscode(vscode: tuple[str, Path], example_tree: Path, tmp_path: Path):
    need("make")
    build_dir = example_tree / "out" / "overflow"
    overflows = lld_overflows((build_dir / "noinhibit.log").read_text())
    assert overflows
    # The sources alone: the build they belong to is outside this workspace (as an O= build is).
    nobuild = copy_example(tmp_path / "sources")
    url, build = vscode
    result = subprocess.run(["node", "test/e2e.js", url, str(example_tree), str(tmp_path), chromium(), str(nobuild),
                             str(build_dir)], cwd=build, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nscreenshots in {tmp_path}"
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    # The status bar counts the overflows as ld.lld does: references, not diagnostics.
    assert re.fullmatch(rf"reachls\s+{len(overflows)} overflows?\s+\d+ at risk", seen["status"]), seen["status"]

    # entry.S keeps the language and highlighting of the user's assembly extension.
    assert seen["language"]["mode"] == HIGHLIGHTING["contributes"]["languages"][0]["aliases"][0], seen["language"]
    assert seen["language"]["cbzClass"] not in (None, seen["language"]["plainClass"]), seen["language"]

    # Rescan Now spun the status bar item while the server's work-done progress ran;
    # Show Report opened the CLI's text report.
    assert seen["spinner"] is True
    assert "entry.S" in seen["report"] and f"{len(overflows)} overflow" in seen["report"]

    # The Problems view lists reachls errors carrying each distance ld.lld printed.
    problems = [p for p in seen["problems"] if "reachls" in p and p.startswith("Error")]
    assert len(problems) >= len(overflows)
    for overflow in overflows:
        assert any(f"{overflow.distance} B" in p for p in problems), (overflow, problems)

    # Hovering the cbz shows its distance (the one ld.lld printed for a CONDBR19) and the engine.
    condbr = {o.distance for o in overflows if o.type == "R_AARCH64_CONDBR19"}
    assert any(f"{distance} B" in seen["hover"] for distance in condbr), seen["hover"]
    assert "placed by" in seen["hover"]

    # A quick fix was offered, applied and saved; the linker agrees it removed an overflow.
    assert seen["applied"] in seen["fixes"]
    lines = (example_tree / ENTRY).read_text().split("\n")
    assert not re.match(r"\s*cbz\s+x0,\s*hyp_panic", lines[seen["cbzLine"] - 1])
    run("make", "-s", "-C", example_tree, "VARIANT=overflow", "vmlinux.o", "noinhibit")
    after = lld_overflows((example_tree / "out" / "overflow" / "noinhibit.log").read_text())
    assert len(after) == len(overflows) - 1, after

    # Every setting is listed in the Settings editor's User tab; path mappings are edited there
    # as a table, not "Edit in settings.json".
    manifest = json.loads((build / "package.json").read_text())
    assert set(seen["userTab"]["keys"]) == set(manifest["contributes"]["configuration"]["properties"]), seen["userTab"]
    assert seen["userTab"]["pathMappings"] == {"editAsJson": 0, "addItem": 1}, seen["userTab"]

    # Through the Settings editor, without a restart: overflows become warnings...
    severities = [row.split(" ", 1)[0] for row in seen["afterSeverityChange"] if "hyp_panic" in row]
    assert severities and "Error" not in severities, seen["afterSeverityChange"]

    # The sources without their build: a warning-coloured item says so, a notification offers
    # the fix; the item's action asks for the build dir, writes it to the workspace settings,
    # and the counts are ld.lld's.
    no_build = seen["noBuildDir"]
    assert no_build["status"]["text"].endswith("reachls: no build dir"), no_build
    assert "warning-kind" in no_build["status"]["className"].split(), no_build
    assert "reachls" in no_build["message"] and no_build["buttons"] == ["Set Build Directory…"], no_build
    assert re.fullmatch(rf"reachls\s+{len(overflows)} overflows?\s+\d+ at risk", no_build["after"]), no_build
    # ...as Add Path Mapping… wrote its pair, the folder picked where its picker opened.
    settings = json.loads((nobuild / ".vscode" / "settings.json").read_text())
    assert settings["reachls.buildDirs"] == [str(build_dir)], settings
    assert Path(seen["addPathMapping"]["picked"].rstrip("/")) == nobuild, seen["addPathMapping"]
    assert settings["reachls.pathMappings"] == {"/build/linux": "${workspaceFolder}"}, settings
    # ...and a missing interpreter is explained with the install command; the button opens the settings.
    missing = seen["missingServer"]
    assert "/nonexistent/python3" in missing["message"] and "pip install" in missing["message"], missing
    assert "reachls.server" in missing["query"]
