"""The bad-input contract every fuzz family checks, and the tally a campaign prints.

An input may be fine (a result) or bad (a `ReachlsError` whose message is one line); anything
else — another exception, or running past the time limit — breaks the contract. Each case's
outcome is appended to $REACHLS_FUZZ_TALLY (JSON lines) when set, so `make fuzz` can print the
table of a campaign: family, cases, ok, clean error, traceback, hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from reachls.errors import ReachlsError

T = TypeVar("T")

#: Seconds one case may take in process before it counts as a hang.
CASE_SECONDS = float(os.environ.get("REACHLS_FUZZ_CASE_SECONDS", "20"))
OUTCOMES = ("ok", "clean error", "traceback", "hang")


class Hang(Exception):
    """Raised by the alarm when a case runs past CASE_SECONDS."""


def tally(family: str, outcome: str, detail: str = "") -> None:
    path = os.environ.get("REACHLS_FUZZ_TALLY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"family": family, "outcome": outcome, "detail": detail[-2000:]}) + "\n")


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def holds(family: str, case: Callable[[], T], seconds: float = CASE_SECONDS) -> T | ReachlsError:
    """Run one case in process under the contract; its result, or the clean error it raised.

    Fails the test (AssertionError with the traceback) on any other exception or a hang."""
    try:
        with _alarm(seconds):
            result = case()
    except ReachlsError as error:
        message = str(error)
        if not message or "\n" in message.strip():
            tally(family, "traceback", f"error message is not one line: {message!r}")
            raise AssertionError(f"a bad input's error must be one line, got {message!r}") from error
        tally(family, "clean error", message)
        return error
    except Hang as error:
        tally(family, "hang", traceback.format_exc())
        raise AssertionError(f"hang: {error}") from error
    except Exception as error:  # the contract: nothing but ReachlsError may escape
        tally(family, "traceback", traceback.format_exc())
        raise AssertionError(f"traceback:\n{traceback.format_exc()}") from error
    tally(family, "ok")
    return result


def cli_holds(family: str, arguments: Sequence[str], seconds: float = CASE_SECONDS, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`reachls ARGS` as a process: exit 0/1 with a report, or exit 2 with one line on stderr; never
    a traceback, never past `seconds`. Output is decoded leniently: the check is on its shape."""
    command = [sys.executable, "-m", "reachls.cli", *arguments]
    try:
        process = subprocess.run(command, capture_output=True, timeout=seconds, cwd=cwd, check=False,
                                 env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        tally(family, "hang", " ".join(arguments))
        raise AssertionError(f"hang: reachls {' '.join(arguments)}") from error
    stdout, stderr = (process.stdout.decode(errors="replace"), process.stderr.decode(errors="replace"))
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if "Traceback" in stderr or process.returncode not in (0, 1, 2):
        tally(family, "traceback", stderr)
        raise AssertionError(f"reachls {' '.join(arguments)} exited {process.returncode}:\n{stderr}")
    if process.returncode == 2:
        if len(stderr.strip().splitlines()) != 1:
            tally(family, "traceback", f"not one line: {stderr!r}")
            raise AssertionError(f"exit 2 must say one line, got:\n{stderr}")
        tally(family, "clean error", stderr.strip())
    else:
        tally(family, "ok")
    return result


def regression_cases(family: str) -> list[Path]:
    """Reproducers the campaigns found, kept as files under tests/fuzz/regressions/<family>/."""
    directory = Path(__file__).resolve().parent / "regressions" / family
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def summary(tally_path: Path) -> str:
    """The campaign table from a tally file."""
    counts: dict[str, dict[str, int]] = {}
    for line in tally_path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        counts.setdefault(entry["family"], dict.fromkeys(OUTCOMES, 0))[entry["outcome"]] += 1
    rows = ["| family | cases | " + " | ".join(OUTCOMES) + " |", "|---|---:|" + "---:|" * len(OUTCOMES)]
    for family, by_outcome in sorted(counts.items()):
        rows.append(f"| {family} | {sum(by_outcome.values())} | " + " | ".join(str(by_outcome[o]) for o in OUTCOMES) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
