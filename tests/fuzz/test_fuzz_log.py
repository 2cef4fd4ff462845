"""Linker logs, mutated line by line: every log gives a report (text and JSON) or one clean line.

The logs mutated are real: ld.lld's `noinhibit.log` of the example's `--noinhibit-exec` link and
GNU ld's log of the same link (its `.vmlinux.cmd` command, `--noinhibit-exec` too). A case drops,
repeats, swaps, truncates or splices lines, puts a long object name or a huge number in one,
adds bytes that are not UTF-8, mixes CR and LF, or grows a line to a megabyte, then does what the
CLI does with the log: scan it (copied alone, as from CI, and in the build dir beside vmlinux.o),
and write the text report to a strict UTF-8 stream and the JSON report, which must parse. Some cases
run the CLI itself with PYTHONIOENCODING=utf-8:strict. Reproducers are kept under
regressions/log/ and replayed both ways.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import cli_holds, holds, regression_cases
from reachls.records import UncheckedReason
from reachls.errors import ReachlsError
from reachls.logparse import MAX_LINE
from reachls.pipeline import ScanOptions, ScanResult, scan
from reachls.record import Status
from reachls.report import json_report, text_report
from toolchain import build_example, copy_example, final_link, lld_overflows, need, run

FAMILY = "log"
GNU_LD = "aarch64-linux-gnu-ld"
STRICT_UTF8 = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's overflow variant: vmlinux.o and ld.lld's `--noinhibit-exec` log of its final link."""
    build = build_example(copy_example(tmp_path_factory.mktemp("fuzz-log")), "overflow")
    assert lld_overflows((build / "noinhibit.log").read_text())
    return build


@pytest.fixture(scope="module")
def logs(build: Path) -> dict[str, bytes]:
    """The real logs a case starts from: ld.lld's, and GNU ld's where it is installed."""
    found = {"lld": (build / "noinhibit.log").read_bytes()}
    if shutil.which(GNU_LD):
        argv = [GNU_LD, *final_link(build)[1:]]
        argv[argv.index("-o") + 1] = "vmlinux.gnu-noinhibit"
        linked = run(*argv, "--noinhibit-exec", cwd=build, check=False)
        assert "relocation truncated to fit" in linked.stderr, linked.stderr
        found["gnu"] = (linked.stdout + linked.stderr).encode()
    return found


# ----- mutations of a log's lines (bytes, without their line ends) -----


def _long_name(draw: st.DrawFn) -> bytes:
    """An object name longer than a file name may be (255), or than a path (4096)."""
    part = draw(st.sampled_from([b"a", b"dir/", b"built-in.a(", b"\xff"]))
    return part * draw(st.integers(256 // len(part), 5000 // len(part))) + b".o"


def _mutate(draw: st.DrawFn, lines: list[bytes]) -> list[bytes]:
    """One mutation of the lines, chosen by `draw`."""
    lines = list(lines) or [b""]
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    at = draw(st.integers(0, len(line)))
    kind = draw(st.sampled_from(["drop", "duplicate", "swap", "long name", "huge number", "non-utf8", "line end",
                                 "truncate", "megabyte", "splice", "repeat", "ansi"]))
    if kind == "drop":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(j, line)
    elif kind == "swap":
        lines[i], lines[j] = lines[j], line
    elif kind == "long name":
        names = [m for m in re.finditer(rb"[^\s:()`']+", line) if m[0].endswith((b".o", b".a", b".S", b".c"))]
        names = names or [re.match(rb"", line)]
        name = names[draw(st.integers(0, len(names) - 1))]
        lines[i] = line[:name.start()] + _long_name(draw) + line[name.end():]
    elif kind == "huge number":
        numbers = list(re.finditer(rb"-?(?:0x)?[0-9a-fA-F]+", line)) or [re.match(rb"", line)]
        number = numbers[draw(st.integers(0, len(numbers) - 1))]
        digits = draw(st.sampled_from([b"9", b"0", b"f", b"7"])) * draw(st.integers(1, 5000))
        lines[i] = line[:number.start()] + draw(st.sampled_from([b"", b"-", b"0x"])) + digits + line[number.end():]
    elif kind == "non-utf8":
        lines[i] = line[:at] + draw(st.binary(min_size=1, max_size=8)) + line[at:]
    elif kind == "line end":
        lines[i] = line + draw(st.sampled_from([b"\r", b"\r\r", b"\r\n", b"\x0b", b"\x85", b"\xe2\x80\xa8"]))
    elif kind == "truncate":
        lines[i] = line[:at]
    elif kind == "megabyte":
        filler = (line[at:] or b"x") * ((1 << 20) // max(1, len(line) - at) + 1)
        lines.insert(j, line[:at] + filler[: 1 << 20])
    elif kind == "splice":
        other = lines[j]
        start = draw(st.integers(0, len(other)))
        lines[i] = line[:at] + other[start:start + draw(st.integers(0, 200))] + line[at:]
    elif kind == "repeat":  # a fragment repeated up to the longest line read: the matching work stays bounded
        fragment = line[at:at + draw(st.integers(1, 40))] or b":("
        lines[i] = line[:at] + fragment * (MAX_LINE // len(fragment)) + line[at:]
    else:
        lines[i] = line[:at] + b"\x1b[" + draw(st.sampled_from([b"1;31m", b"0m", b"K", b"9999999999"])) + line[at:]
    return lines


@st.composite
def mutated_logs(draw: st.DrawFn, logs: dict[str, bytes]) -> bytes:
    """A real log after one to four mutations of its lines."""
    lines = logs[draw(st.sampled_from(sorted(logs)))].split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        lines = _mutate(draw, lines)
    return b"\n".join(lines)


# ----- what the CLI does with a log -----


def _reports(result: ScanResult) -> None:
    """Write both reports as the CLI does: the text to a strict UTF-8 stream, the JSON parseable with
    every string one a strict UTF-8 reader takes (no lone surrogates)."""
    text_report(result).encode("utf-8")
    document = json.loads(json_report(result))
    json.dumps(document, ensure_ascii=False).encode("utf-8")


def _scan_and_report(log: Path) -> ScanResult:
    result = scan(log, ScanOptions(engine="model"))
    _reports(result)
    return result


def _alone(directory: Path, content: bytes) -> Path:
    """The log alone in a directory of its own, as a user gets it from CI or a mailing list."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "build.log"
    log.write_bytes(content)
    return log


def _beside_the_objects(build: Path, content: bytes) -> Path:
    log = build / "fuzz.log"
    log.write_bytes(content)
    return log


def _check_both_ways(build: Path, scratch: Path, content: bytes) -> None:
    holds(FAMILY, lambda: _scan_and_report(_alone(scratch / "alone", content)))
    holds(FAMILY, lambda: _scan_and_report(_beside_the_objects(build, content)))


def test_mutated_logs_keep_the_contract(build, logs, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("mutated")

    @given(mutated_logs(logs))
    def case(content: bytes) -> None:
        _check_both_ways(build, scratch, content)

    case()


def test_mutated_logs_keep_the_contract_on_a_strict_utf8_stdout(build, logs, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("strict")

    @settings(max_examples=max(3, settings().max_examples // 20))
    @given(mutated_logs(logs), st.sampled_from(["text", "json"]))
    def case(content: bytes, format: str) -> None:
        for log in (_alone(scratch / "alone", content), _beside_the_objects(build, content)):
            ran = cli_holds(FAMILY, ["scan", str(log), "--engine", "model", "--format", format], env=STRICT_UTF8)
            if ran.returncode != 2 and format == "json":
                json.loads(ran.stdout)

    case()


@pytest.mark.parametrize("reproducer", regression_cases(FAMILY), ids=lambda path: path.name)
def test_reproducers_keep_the_contract(build, tmp_path, reproducer):
    _check_both_ways(build, tmp_path, reproducer.read_bytes())


# ----- the defects the campaigns found, each on a real log -----


def _first_message(build: Path) -> list[str]:
    """ld.lld's first out-of-range warning with its `>>>` lines, as it printed them."""
    return (build / "noinhibit.log").read_text().split("\n\n")[0].splitlines()


def test_an_object_name_longer_than_a_file_name_is_an_object_not_at_hand(build, tmp_path):
    lines = _first_message(build)
    name = "d" * 300 + ".o"
    lines[0] = lines[0].replace("vmlinux.o:(", f"{name}:(", 1)
    assert name in lines[0]
    for log in (_alone(tmp_path, "\n".join(lines).encode()), _beside_the_objects(build, "\n".join(lines).encode())):
        result = scan(log)
        [record] = result.analysis.records
        assert record.site.object == name and record.verified is False
        assert any(f"{name} is not there" in note for note in result.notes), result.notes


def test_a_number_no_linker_prints_costs_its_line(build, tmp_path):
    """A 5 000-digit source line (past Python's int() limit) in `>>> referenced by`: that line is
    skipped and counted; the overflow above it stands, without the linker's source line."""
    lines = _first_message(build)
    [referenced] = [k for k, line in enumerate(lines) if line.startswith(">>> referenced by ")]
    lines[referenced] = re.sub(r":\d+\)$", ":" + "9" * 5000 + ")", lines[referenced])
    result = scan(_alone(tmp_path, "\n".join(lines).encode()))
    [record] = result.analysis.records
    assert (record.kind.name, record.distance) == (lld_overflows(lines[0])[0].type, lld_overflows(lines[0])[0].distance)
    assert record.site.location is None
    [note] = [n for n in result.notes if "could not be read" in n]
    assert note.startswith("1 line(s)") and f"(line {referenced + 1})" in note
    assert result.analysis.unresolved == 0  # the overflow it details was read and reported


def test_a_gnu_ld_message_without_its_object_costs_its_line(build, logs, tmp_path):
    """GNU ld names the object of a `relocation truncated to fit` line before `(SEC+0xOFF)` or in an
    `in function` line before it; a message with neither is skipped and counted, the others are read."""
    if "gnu" not in logs:
        need(GNU_LD)
    lines = logs["gnu"].decode().splitlines()
    truncated = [line for line in lines if "relocation truncated to fit" in line]
    assert truncated and all(line.startswith("/") for line in truncated)  # FILE:LINE:(SEC+0xOFF): ...
    bare = truncated[0][truncated[0].index("("):]
    result = scan(_alone(tmp_path, "\n".join([bare, *lines]).encode()))
    skipped = [n for n in result.notes if "could not be read" in n]
    assert len(skipped) == 1 and skipped[0].startswith("1 line(s)") and "(line 1)" in skipped[0], result.notes
    assert result.analysis.unresolved == 1  # the overflow it held is unchecked, and `--fail-on` says so
    assert sum(r.status is Status.OVERFLOW for r in result.analysis.records) == len(truncated)


def test_a_named_file_that_is_not_an_object_gives_what_the_linker_printed(build, logs, tmp_path):
    """Without its `in function` line, GNU ld's message starts with the source file, taken for the
    object; that file is no ELF object, so its overflows are as printed (a note says why), not an error."""
    if "gnu" not in logs:
        need(GNU_LD)
    lines = logs["gnu"].decode().splitlines()
    headers = [k for k, line in enumerate(lines) if ": in function `" in line]
    del lines[headers[0]]
    result = scan(_beside_the_objects(build, "\n".join(lines).encode()))
    assert sum(not r.verified for r in result.analysis.records) >= 1
    assert any("cannot be read as the object the linker read" in n and "not an ELF file" in n
               for n in result.notes), result.notes


def test_bounds_without_zero_cost_their_line(build, tmp_path):
    """ld.lld's bounds always hold 0 (a reach either side of the place); `[5, 0]` is no reach at all."""
    lines = _first_message(build)
    lines[0] = re.sub(r"is not in \[-?\d+, -?\d+\]", "is not in [5, 0]", lines[0])
    result = scan(_alone(tmp_path, "\n".join(lines).encode()))
    assert result.analysis.records == []
    assert any(n.startswith("1 line(s)") and "(line 1)" in n for n in result.notes), result.notes


def test_long_lines_cost_time_in_proportion(build, tmp_path):
    """A megabyte of lines just under the length read, each an ld.lld message with `:(function `
    repeated in its function name and its closing `]` lost: a pattern retrying the object and
    function names at every repeat is quadratic (half a second a line). Those lines are skipped and
    counted, the real message after them read."""
    message = _first_message(build)
    head, _, tail = message[0].partition("(function ")
    repeats = (MAX_LINE - len(head) - len(tail)) // len("x: a:(function ") - 1
    near_miss = (head + "(function " + "x: a:(function " * repeats + tail).replace("]", "", 1)
    assert len(near_miss) <= MAX_LINE and "relocation R_" in near_miss
    count = (1 << 20) // MAX_LINE
    log = _alone(tmp_path, "\n".join([near_miss] * count + message).encode())
    started = time.perf_counter()
    result = scan(log)
    assert time.perf_counter() - started < 3
    [record] = result.analysis.records
    assert (record.kind.name, record.distance) == (lld_overflows(message[0])[0].type,
                                                   lld_overflows(message[0])[0].distance)
    assert any(n.startswith(f"{count} line(s)") for n in result.notes), result.notes


def test_a_log_of_nothing_but_unreadable_messages_is_a_result_with_a_note(build, tmp_path):
    """Not "no linker diagnostic": the log holds them, and the note says none could be read."""
    lines = _first_message(build)
    lines[0] = lines[0] + "x" * MAX_LINE
    result = scan(_alone(tmp_path, "\n".join(lines).encode()))
    assert result.analysis.records == []
    assert any(n.startswith("1 line(s)") and f"over {MAX_LINE} characters" in n for n in result.notes)
    assert [(g.reason, g.count) for g in result.analysis.unchecked] == [(UncheckedReason.LOG_LINE_UNREADABLE, 1)]
    clean = tmp_path / "clean"
    _alone(clean, b"make: Nothing to be done for 'all'.\n" + b"x" * (2 * MAX_LINE) + b"\n")
    with pytest.raises(ReachlsError, match="no linker diagnostic"):
        scan(clean, ScanOptions(log="build.log"))
