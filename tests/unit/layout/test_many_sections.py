"""More than 65 280 sections (extended numbering), checked against ld.lld on a generated input.

The input (`many_sections.py`: 100 000 code sections, 200 009 in all) is built once and cached;
`ld.lld --noinhibit-exec` on it is the answer key for overflows and `llvm-nm`/`llvm-readelf` on
its link for where every code label lands.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import many_sections
from reachls.pipeline import ScanOptions, function_layout, scan
from reachls.record import Status
from toolchain import lld_overflows, need, run

ENGINES = ("relink", "model")


@pytest.fixture(scope="module")
def many() -> Path:
    need("clang", "ld.lld")
    return many_sections.build()


def _options(many: Path, engine: str) -> ScanOptions:
    return ScanOptions(engine=engine, script=many / "many.lds")


def test_the_input_needs_extended_numbering(many: Path) -> None:
    with open(many / "many.o", "rb") as stream:
        header = ELFFile(stream).header
    assert header["e_shnum"] == 0 and header["e_shstrndx"] == 0xFFFF
    sections = run("llvm-readelf", "-S", "--wide", many / "many.o").stdout
    assert sections.count(" .text.f") >= 100_000
    assert " .symtab_shndx " in sections and "SYMTAB SECTION INDICES" in sections


@pytest.mark.parametrize("engine", ENGINES)
def test_every_overflow_the_linker_reports_is_found_with_its_distance(many: Path, engine: str) -> None:
    expected = {(e.type, e.distance, e.symbol) for e in lld_overflows((many / "many.log").read_text())}
    assert {t for t, _, _ in expected} == {"R_AARCH64_TSTBR14", "R_AARCH64_CONDBR19", "R_AARCH64_ADR_PREL_LO21"}
    result = scan(many / "many.o", _options(many, engine))
    found = {(r.kind.name, r.distance, r.target.symbol) for r in result.analysis.records if r.status is Status.OVERFLOW}
    assert found == expected
    assert result.analysis.unresolved == 0
    assert not [r for r in result.analysis.records if r.status is not Status.OVERFLOW]
    # every short-reach reference of the generator (B, TBZ, CBZ, ADR, ADRP, LDR literal) was checked
    relocations = run("llvm-readelf", "-r", many / "many.o").stdout
    short = sum(relocations.count(f" R_AARCH64_{name} ") for name in (
        "CALL26", "TSTBR14", "CONDBR19", "ADR_PREL_LO21", "ADR_PREL_PG_HI21", "LD_PREL_LO19"))
    assert result.analysis.total == short
    if engine == "relink":  # every string and constant found in the relinked image: nothing approximate
        assert not [note for note in result.analysis.notes if "merged" in note]


def _linked_code_symbols(image: Path) -> dict[str, tuple[int, str]]:
    """name → (address, FUNC or NOTYPE) of every symbol llvm-nm lists as text, mapping symbols aside."""
    text = {name for name, kind in (line.split()[1:3][::-1] for line in
                                    run("llvm-nm", "--defined-only", image).stdout.splitlines())
            if kind in "Tt" and not name.startswith("$")}
    symbols = {}
    for line in run("llvm-readelf", "-s", "--wide", image).stdout.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[7] in text:
            symbols[parts[7]] = (int(parts[1], 16), parts[3])
    return symbols


@pytest.mark.parametrize("engine", ENGINES)
def test_layout_lists_every_code_label_where_the_linker_puts_it(many: Path, engine: str) -> None:
    need("llvm-nm", "llvm-readelf")
    expected = _linked_code_symbols(many / "many.elf")
    assert sum(1 for _, kind in expected.values() if kind == "NOTYPE") == many_sections.FUNCTIONS // 1000
    _, functions = function_layout(many / "many.o", _options(many, engine))
    assert {f.name: (f.address, "FUNC" if f.is_function else "NOTYPE") for f in functions} == expected
