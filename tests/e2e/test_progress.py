"""The progress line of `reachls scan` and `layout`: drawn on a terminal, stage by stage, and nowhere else.

The command runs with its stderr on a pseudo-terminal (what a user at a shell has) and its stdout
on a pipe; what reaches the terminal is read back from the pty's other end. The same commands in
a pipe, or asked for JSON, must leave stderr exactly as it was without the feature: empty.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from reachls.progress import STAGES

CLI = [sys.executable, "-m", "reachls.cli"]


def _on_terminal(*argv: str | Path) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Run the CLI with stderr on an 80×24 pseudo-terminal: (the run, stdout piped; what the terminal got)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with subprocess.Popen([*CLI, *map(str, argv)], stdout=subprocess.PIPE, stderr=terminal) as process:
        os.close(terminal)
        shown = bytearray()
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the command closed the terminal's last open end
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read()
        process.wait()
    os.close(controller)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, None), bytes(shown)


def _piped(*argv: str | Path, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, *python, "-m", "reachls.cli", *map(str, argv)], capture_output=True)


@pytest.mark.parametrize(("command", "stages"), [("scan", STAGES), ("layout", ("read", "place"))])
def test_a_terminal_sees_each_stage_then_a_clean_line(tree: Path, command: str, stages: tuple[str, ...]):
    build = tree / "out" / "overflow"
    run, shown = _on_terminal(command, build)
    assert run.returncode == 0
    text = shown.decode()
    for stage in stages:
        assert f"reachls: {stage} ({STAGES.index(stage) + 1}/{len(STAGES)})" in text, text
    # Each line is erased as the next begins and the last as the scan ends: nothing is left
    # standing after the final carriage return, where the shell's prompt or an error goes.
    assert text.endswith("\r") and not text.rsplit("\r", 2)[-2].strip(), repr(text[-200:])
    # The report is what the same command writes into a pipe, byte for byte.
    assert run.stdout == _piped(command, build).stdout


def test_no_progress_in_a_pipe_nor_for_json(tree: Path):
    build = tree / "out" / "overflow"
    piped = _piped("scan", build)
    assert piped.returncode == 0 and piped.stdout and piped.stderr == b""
    run, shown = _on_terminal("scan", build, "--format", "json")
    assert run.returncode == 0 and run.stdout.startswith(b"{") and shown == b""
    run, shown = _on_terminal("layout", build, "--format", "json")
    assert run.returncode == 0 and run.stdout.startswith(b"{") and shown == b""
    # A scan in a pipe does not even load the progress library.
    imported = _piped("scan", build, python=("-X", "importtime")).stderr.decode()
    assert "reachls.pipeline" in imported and "tqdm" not in imported and "cliprogress" not in imported
