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

from toolchain import ROOT, compile_aarch64, link_noinhibit, lld_overflows, need

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
    assert sum(report["counts"].values()) == SOURCE.count("//")


def real_kernel_builds() -> dict[str, Path]:
    """The real kernel builds named in ../KERNELS.txt (`name path` per line)."""
    listing = ROOT.parent / "KERNELS.txt"
    if not listing.is_file():
        pytest.fail(f"{listing} is missing: it names the real kernel builds")
    return {name: Path(path) for name, path in (line.split() for line in listing.read_text().splitlines() if line)}


@pytest.mark.parametrize("engine", ["relink", "model"])
@pytest.mark.parametrize("name", ["clang-lto", "gcc"])
def test_real_kernel_has_nothing_unchecked_but_kallsyms(name: str, engine: str):
    build = real_kernel_builds()[name]
    if not (build / "vmlinux.o").is_file():
        pytest.fail(f"{build}/vmlinux.o is missing")
    result = reachls("scan", build, "--engine", engine, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kallsyms = [g for g in report["unchecked"] if g["reason"] == "weak-undefined-symbol"
                and all(e["target"].startswith("kallsyms_") for e in g["examples"])]
    assert report["unchecked"] == kallsyms
    assert report["unresolved"] == sum(g["count"] for g in kallsyms)
