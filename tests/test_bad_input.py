"""Bad input gets one clear line and exit status 2, never a traceback; no DWARF still gives results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain import compile_aarch64, need, run

SOURCE = """
__attribute__((noinline)) void far_away(void) { __asm__ volatile("nop"); }
void caller(int x) { if (x) far_away(); }
"""


def reachls(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reachls.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_object(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    (tmp / "small.c").write_text(SOURCE)
    return compile_aarch64(tmp / "small.c", tmp / "small.o", "-O1", "-ffunction-sections")


def test_not_elf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not an object file\n")
    assert_one_line_error(reachls("scan", path), str(path), "not an ELF file")


def test_missing_path(tmp_path):
    assert_one_line_error(reachls("scan", tmp_path / "nope.o"), "no such file")


def test_empty_build_dir(tmp_path):
    assert_one_line_error(reachls("scan", tmp_path), "no vmlinux.o or vmlinux")


@pytest.mark.parametrize("keep", [20, 0.5])
def test_truncated_elf(small_object, tmp_path, keep):
    data = small_object.read_bytes()
    cut = tmp_path / "cut.o"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    assert_one_line_error(reachls("scan", cut, "--engine", "model"), str(cut), "truncated")


def test_wrong_architecture(tmp_path):
    need("clang")
    (tmp_path / "m.c").write_text(SOURCE)
    run("clang", "--target=mips-linux-gnu", "-c", tmp_path / "m.c", "-o", tmp_path / "m.o")
    assert_one_line_error(reachls("scan", tmp_path / "m.o"), "unsupported architecture EM_MIPS")


def test_x86_64_says_plainly_there_is_nothing_to_report(tmp_path):
    need("clang")
    (tmp_path / "x.c").write_text(SOURCE)
    run("clang", "--target=x86_64-linux-gnu", "-c", tmp_path / "x.c", "-o", tmp_path / "x.o")
    result = reachls("scan", tmp_path / "x.o", "--engine", "model")
    assert result.returncode == 0, result.stderr
    assert "x86-64 has no short-reach" in result.stdout


def test_no_linker_for_relink(small_object):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    assert_one_line_error(reachls("scan", small_object, "--engine", "relink", env=env), "no ld.lld found")


def test_unknown_script_construct(small_object, tmp_path):
    script = tmp_path / "bad.lds"
    script.write_text("SECTIONS {\n  .text : { *(.text*) }\n  FROBNICATE(3)\n}\n")
    assert_one_line_error(reachls("scan", small_object, "--engine", "model", "--script", script),
                          f"{script}:3", "FROBNICATE")


def test_missing_script(small_object, tmp_path):
    assert_one_line_error(reachls("scan", small_object, "--script", tmp_path / "gone.lds"), "linker script not found")


def test_no_dwarf_still_gives_symbol_and_offset(tmp_path):
    need("clang")
    (tmp_path / "nodebug.c").write_text(SOURCE)
    run("clang", "--target=aarch64-linux-gnu", "-O1", "-ffunction-sections", "-c", tmp_path / "nodebug.c",
        "-o", tmp_path / "nodebug.o")
    result = reachls("scan", tmp_path / "nodebug.o", "--engine", "model", "--all", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert any("no DWARF" in note for note in document["notes"])
    calls = [r for r in document["records"] if r["target"]["symbol"] == "far_away"]
    assert calls and all(r["site"]["symbol"] == "caller" and r["site"]["source"] is None for r in calls)


def test_relocations_for_a_section_that_does_not_exist(small_object, tmp_path):
    """A relocation table whose sh_info names no section is bad input, not a table silently skipped."""
    need("llvm-readelf")
    header = run("llvm-readelf", "-h", small_object).stdout
    table = int(re.search(r"Start of section headers:\s+(\d+)", header).group(1))
    entry = int(re.search(r"Size of section headers:\s+(\d+)", header).group(1))
    count = int(re.search(r"Number of section headers:\s+(\d+)", header).group(1))
    index = next(int(m.group(1)) for line in run("llvm-readelf", "-S", "--wide", small_object).stdout.splitlines()
                 if (m := re.match(r"^\s*\[\s*(\d+)\]\s+\.rela\.text\.caller\s", line)))
    data = bytearray(small_object.read_bytes())
    at = table + index * entry + 44  # Elf64_Shdr.sh_info
    data[at:at + 4] = (count + 7).to_bytes(4, "little")
    broken = tmp_path / "broken.o"
    broken.write_bytes(bytes(data))
    assert_one_line_error(reachls("scan", broken, "--engine", "model"), str(broken), ".rela.text.caller",
                          f"section {count + 7}")
