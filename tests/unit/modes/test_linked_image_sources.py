"""Source lines of a linked image's `--all` records on a real multi-file build, against the toolchain.

The input is generated C (`generated_c.py`) (many translation units, calls
near and far, loads of globals, top-level asm) compiled by clang with -g and linked by ld.lld,
cached under ${REACHLS_CACHE:-~/.cache/reachls} by a hash of the generator, its parameters and
the compiler. Answer keys: GNU addr2line for every site (it sorts line rows), llvm-symbolizer's
StartFileName/StartLine for the function at every target, GNU addr2line where there is none.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from reachls.pipeline import ScanOptions, scan
from reachls.record import SourceLocation
from reachls.sourcemap import SourceMap
from generated_c import Params, ensure, stamp_of
from toolchain import gnu_addr2line, llvm_function_starts, need, run

# ~70k short-reach instructions over 16 line programs / CUs: the shape of a kernel, a tenth its size.
PARAMS = Params(files=16, funcs_per_file=64, calls_per_func=48)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("clang", "ld.lld")
    cache = Path(os.environ.get("REACHLS_CACHE", Path.home() / ".cache" / "reachls"))
    out = cache / f"linked-sources-{hashlib.sha256(stamp_of(PARAMS).encode()).hexdigest()[:16]}"
    ensure(PARAMS, out, log=lambda message: None)
    linked = tmp_path_factory.mktemp("linked") / "vmlinux"
    run("ld.lld", "-T", out / "vmlinux.lds", out / "vmlinux.o", "-o", linked, "--noinhibit-exec")
    return linked


def expected(answer: tuple[str, int]) -> tuple[str, int] | None:
    file, line = answer
    return (os.path.normpath(file), line) if line else None


def executable_sections(image: Path) -> set[str]:
    """Names of the SHF_EXECINSTR sections, as llvm-readelf lists them."""
    listing = run("llvm-readelf", "-S", "--wide", image).stdout
    return {m.group(1) for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S*)", listing)
            if "X" in m.group(2)}


def ours(location: SourceLocation | None) -> tuple[str, int] | None:
    return (location.file, location.line) if location else None


def test_all_records_are_mapped_as_the_toolchain_maps_them(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("aarch64-linux-gnu-addr2line", "llvm-symbolizer", "llvm-readelf")
    one_at_a_time = []  # the per-address path: a walk over candidate line programs for one address
    single = SourceMap._lookup
    monkeypatch.setattr(SourceMap, "_lookup", staticmethod(
        lambda lines, address: one_at_a_time.append(address) or single(lines, address)))
    records = scan(image, ScanOptions(include_ok=True)).analysis.records
    assert len(records) > 50_000
    assert {(r.provenance.mode, r.provenance.engine) for r in records} == {("linked", "decoded")}
    assert len(one_at_a_time) < len(records) // 100, "source lines are looked up one record at a time"

    sites = gnu_addr2line(image, [r.site.address for r in records])
    wrong_sites = [(hex(r.site.address), ours(r.site.location), expected(gnu))
                   for r, gnu in zip(records, sites) if ours(r.site.location) != expected(gnu)]
    assert not wrong_sites, (len(wrong_sites), wrong_sites[:10])
    assert sum(r.site.location is not None for r in records) > len(records) // 2

    # The function's declaration, else the line of the code there (GNU addr2line's answer for data
    # is a variable's declaration, which reachls does not give: no source for a data target).
    aimed = [r for r in records if r.target.section_index is not None]
    addresses = [r.target.address for r in aimed]
    declared = llvm_function_starts(image, addresses)
    lines = gnu_addr2line(image, addresses)
    code = executable_sections(image)
    want = [expected(start) or (expected(line) if r.target.section in code else None)
            for r, start, line in zip(aimed, declared, lines)]
    wrong_targets = [(hex(r.target.address), ours(r.target.location), w)
                     for r, w in zip(aimed, want) if ours(r.target.location) != w]
    assert not wrong_targets, (len(wrong_targets), wrong_targets[:10])
    assert sum(start[1] > 0 for start in declared) > len(aimed) // 2  # most targets are C functions
