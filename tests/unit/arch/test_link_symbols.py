"""References to symbols the link defines outside the object (script assignments, aliases,
PROVIDE) are measured, on both engines and for both linkers: the linkers' own out-of-range
verdicts (`--noinhibit-exec`) are the answer key, and nothing is left unchecked. On the real
kernel builds, nothing is left unchecked but what the final link's kallsyms object defines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain import compile_aarch64, link_noinhibit, lld_overflows, need, run

SOURCE = """
.text
.globl _start
_start:
  adrp x0, script_sym      // in range
  adrp x1, prov_used       // PROVIDE at 0x1000: out of ADRP's 4 GiB
  bl   alias_fn            // `alias_fn = real_fn;`
  adr  x2, end_sym         // in range
  adr  x3, far_sym         // 2 MiB on: out of ADR's 1 MiB
  cbz  x0, far_alias       // 2 MiB on: out of CBZ's 1 MiB
  cbz  x0, text_start      // in range
  ret
.globl real_fn
real_fn: ret
"""
SCRIPT = """SECTIONS {
  . = 0xffff800008000000;
  text_start = .;
  .text : { *(.text) }
  script_sym = . + 0x100;
  alias_fn = real_fn;
  PROVIDE(prov_used = 0x1000);
  PROVIDE(prov_unused = 0x2000);
  far_sym = . + 0x200000;
  far_alias = far_sym;
  .data : { *(.data) end_sym = .; }
}
"""
_GNU_TRUNCATED = re.compile(r"relocation truncated to fit: (R_\w+) against symbol `([^']+)'")


def reachls(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reachls.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("clang", "ld.lld", "aarch64-linux-gnu-ld")
    root = tmp_path_factory.mktemp("link-symbols")
    (root / "source.s").write_text(SOURCE)
    (root / "script.lds").write_text(SCRIPT)
    compile_aarch64(root / "source.s", root / "object.o")
    return root


def linker_overflows(build: Path, linker: str) -> set[tuple[str, str]]:
    """(type, symbol) of each reference the linker itself says is out of range."""
    log = link_noinhibit(build / "script.lds", [build / "object.o"], build / f"image.{linker}", linker=linker)
    if linker == "ld.lld":
        return {(o.type, o.symbol) for o in lld_overflows(log)}
    return set(_GNU_TRUNCATED.findall(log))


@pytest.mark.parametrize("engine", ["relink", "model"])
@pytest.mark.parametrize("linker", ["ld.lld", "aarch64-linux-gnu-ld"])
def test_script_defined_symbols_measured_as_the_linker_does(build: Path, engine: str, linker: str):
    expected = linker_overflows(build, linker)
    assert {symbol for _, symbol in expected} == {"prov_used", "far_sym", "far_alias"}, expected
    result = reachls("scan", build / "object.o", "-T", build / "script.lds", "--engine", engine,
                     "--linker", "lld" if linker == "ld.lld" else "gnu", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["unresolved"] == 0 and report["unchecked"] == []
    found = {(r["kind"]["type"], r["target"]["symbol"]) for r in report["records"] if r["status"] == "overflow"}
    assert found == expected
    if linker == "ld.lld":  # it prints each distance too
        log = link_noinhibit(build / "script.lds", [build / "object.o"], build / "image.distances")
        assert {(o.type, o.symbol): o.distance for o in lld_overflows(log)} == {
            (r["kind"]["type"], r["target"]["symbol"]): r["distance"]
            for r in report["records"] if r["status"] == "overflow"}
    assert sum(report["counts"].values()) == SOURCE.count("//")


@pytest.mark.parametrize("engine", ["relink", "model"])
@pytest.mark.parametrize("name", ["clang-lto", "gcc"])
def test_real_kernel_has_nothing_unchecked_but_kallsyms(real_kernels: dict[str, Path], name: str, engine: str):
    build = real_kernels[name]
    result = reachls("scan", build, "--engine", engine, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kallsyms = [g for g in report["unchecked"] if g["reason"] == "weak-undefined-symbol"
                and all(e["target"].startswith("kallsyms_") for e in g["examples"])]
    assert report["unchecked"] == kallsyms
    assert report["unresolved"] == sum(g["count"] for g in kallsyms)


WEAK_SOURCE = """
.weak weak_fn
.weak weak_sym
.text
.globl _start
_start:
  bl   weak_fn
  b    weak_fn
  adrp x0, weak_sym
  adrp x0, :pg_hi21_nc:weak_sym
  adr  x1, weak_sym
  b.eq weak_fn
  cbz  x0, weak_fn
  tbz  x0, #1, weak_fn
  ldr  x2, weak_sym
  movz x3, #:prel_g1:weak_sym
  ret
.data
  .word  weak_sym - .
  .hword weak_sym - .
"""
WEAK_SCRIPT = "SECTIONS { . = 0xffff800008000000; .text : { *(.text) } .data : { *(.data) } }\n"
_DECODED = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")


def resolved_distances(image: Path) -> dict[int, int]:
    """Place → the distance the linker wrote there, read back from the image: the decoded target
    of each instruction (an ADRP's page from the place's page; a NOP, GNU ld's rewritten B/BL,
    reaches nothing: 0) and the PC-relative data words."""
    distances = {}
    for line in run("llvm-objdump", "-d", "--no-show-raw-insn", image).stdout.splitlines():
        if not (m := _DECODED.match(line)):
            continue
        place, mnemonic, operands = int(m.group(1), 16), m.group(2), m.group(3)
        if mnemonic == "nop":
            distances[place] = 0
        elif mnemonic == "adr":
            distances[place] = int(operands.rsplit("#", 1)[1], 0)
        elif (absolute := re.findall(r"0x([0-9a-f]+)", operands.split("<")[0])):
            target = int(absolute[-1], 16)
            distances[place] = target - (place & ~0xFFF) if mnemonic == "adrp" else target - place
    dump = run("llvm-objdump", "-s", "-j", ".data", image).stdout.splitlines()
    row = next(line.split() for line in dump if re.match(r"^\s*ffff", line))
    start, data = int(row[0], 16), bytes.fromhex("".join(row[1:3]))
    distances[start] = int.from_bytes(data[0:4], "little", signed=True)
    distances[start + 4] = int.from_bytes(data[4:6], "little", signed=True)
    return distances


@pytest.mark.parametrize("engine", ["relink", "model"])
@pytest.mark.parametrize("linker", ["ld.lld", "aarch64-linux-gnu-ld"])
def test_weak_undefined_references_checked_as_the_linker_resolves_them(tmp_path: Path, linker: str, engine: str):
    """Each short-reach type to a weak symbol nothing defines gets the distance the linker gave it;
    a type whose resolution is not known (MOVW_PREL_G1) stays unchecked."""
    need("clang", "llvm-objdump", linker)
    (tmp_path / "weak.s").write_text(WEAK_SOURCE)
    (tmp_path / "weak.lds").write_text(WEAK_SCRIPT)
    compile_aarch64(tmp_path / "weak.s", tmp_path / "weak.o")
    link_noinhibit(tmp_path / "weak.lds", [tmp_path / "weak.o"], tmp_path / "image", linker=linker)
    written = resolved_distances(tmp_path / "image")
    result = reachls("scan", tmp_path / "weak.o", "-T", tmp_path / "weak.lds", "--engine", engine, "--all",
                     "--linker", "lld" if linker == "ld.lld" else "gnu", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    measured = {r["site"]["address"]: r["distance"] for r in report["records"]}
    assert len(measured) == 11 and measured == {place: written[place] for place in measured}
    assert [(g["kind"], g["reason"], g["count"]) for g in report["unchecked"]] == [
        ("R_AARCH64_MOVW_PREL_G1", "weak-undefined-symbol", 1)]
    assert [n for n in report["notes"] if n.startswith("11 references to weak undefined symbols")]
