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
from toolchain import build_example, copy_example, lld_overflows, need, run

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
INSTALL_SCRIPT = CLIENT / "scripts" / "install-code-server.sh"


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
def example_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = copy_example(tmp_path_factory.mktemp("vscode-e2e"))
    build_example(tree, "overflow")
    return tree


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
    overflows = lld_overflows((example_tree / "out" / "overflow" / "noinhibit.log").read_text())
    assert overflows
    url, build = vscode
    result = subprocess.run(["node", "test/e2e.js", url, str(example_tree), str(tmp_path), chromium()],
                            cwd=build, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nscreenshots in {tmp_path}"
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    # The status bar counts the errors of the scan: one per overflow, and the target marker.
    counts = re.search(r"reachls\D*(\d+)\D*(\d+)", seen["status"])
    assert counts and int(counts.group(1)) >= len(overflows), seen["status"]

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

    # Through the Settings editor, without a restart: overflows become warnings...
    assert re.search(r"reachls\s*0\s*[1-9]", seen["afterSeverityChange"]), seen["afterSeverityChange"]
    # ...and a missing interpreter is explained with the install command; the button opens the settings.
    missing = seen["missingServer"]
    assert "/nonexistent/python3" in missing["message"] and "pip install" in missing["message"], missing
    assert "reachls.server" in missing["query"]
