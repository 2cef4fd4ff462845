"""ELF / DWARF fuzz family: mutated real builds through what `reachls scan` does, under the contract.

Each case takes one of the small real inputs (elf_inputs.py), makes one to three structure-aware
mutations (ELF header, section header, symbol and relocation fields, a cut at any offset; DWARF
unit headers and bytes, huge LEB128s, debug sections cut short, debug relocations), and runs the
scan in process — the model engine for a relocatable input, linked-image mode for `vmlinux`,
source lines attached, every record kept (`--all`) — with the text and JSON reports rendered. The
contract: a result, or a `ReachlsError` of one line. Some cases run as `reachls scan` processes.
Every reproducer a campaign found is a JSON file under regressions/elf/, replayed here.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import cli_holds, holds, regression_cases
from elf_inputs import INPUTS, SCRIPT, Layout, Mutation, apply, build, dwarf_mutation, elf_mutation
from reachls.errors import ReachlsError
from reachls.pipeline import ScanOptions, scan
from reachls.report import json_report, text_report
from toolchain import gnu_addr2line, need, run

FAMILY = "elf"


@cache
def layout(name: str) -> Layout:
    return Layout(build() / name)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("clang", "ld.lld", "make")
    build()
    return tmp_path_factory.mktemp("fuzz-elf")


def options(name: str) -> ScanOptions:
    """What the CLI is asked for each input: the model engine (with the build's script for
    vmlinux.o; a linked image is read as linked), every record."""
    script = build() / SCRIPT if name == "vmlinux.o" else None
    return ScanOptions(engine="model", script=script, include_ok=True)


def scan_and_render(path: Path, name: str) -> tuple[str, str]:
    result = scan(path, options(name))
    return text_report(result), json_report(result)


def run_case(workdir: Path, name: str, mutations: list[Mutation]) -> tuple[str, str] | ReachlsError:
    path = workdir / name
    path.write_bytes(apply(layout(name), mutations))
    return holds(FAMILY, lambda: scan_and_render(path, name))


def cases(mutation: object, max_mutations: int = 3) -> st.SearchStrategy[tuple[str, list[Mutation]]]:
    """An input and up to `max_mutations` mutations of it drawn from `mutation(layout)`."""
    return st.sampled_from(INPUTS).flatmap(lambda name: st.tuples(
        st.just(name), st.lists(mutation(layout(name)), min_size=1, max_size=max_mutations)))


@given(case=cases(elf_mutation))
def test_elf_structure(workdir: Path, case: tuple[str, list[Mutation]]) -> None:
    run_case(workdir, *case)


@given(case=cases(dwarf_mutation))
def test_dwarf_sections(workdir: Path, case: tuple[str, list[Mutation]]) -> None:
    run_case(workdir, *case)


@given(case=cases(lambda layout: st.one_of(elf_mutation(layout), dwarf_mutation(layout)), 2),
       text=st.booleans())
@settings(max_examples=max(settings().max_examples // 12, 3))
def test_cli_process(workdir: Path, case: tuple[str, list[Mutation]], text: bool) -> None:
    name, mutations = case
    path = workdir / f"cli-{name}"
    path.write_bytes(apply(layout(name), mutations))
    script = ["--script", str(build() / SCRIPT)] if name == "vmlinux.o" else []
    cli_holds(FAMILY, ["scan", str(path), "--engine", "model", "--all", "--format", "text" if text else "json",
                       *script])


@pytest.mark.parametrize("reproducer", regression_cases(FAMILY), ids=lambda path: path.stem)
def test_regression(workdir: Path, reproducer: Path) -> None:
    """Each reproducer holds the contract; one that damages only DWARF (`"expect": "result"`) gets the
    scan's result, with a note on what the damage cost."""
    case = json.loads(reproducer.read_text())
    outcome = run_case(workdir, case["input"], case["mutations"])
    if case.get("expect") == "result":
        assert not isinstance(outcome, ReachlsError), outcome
        text, _ = outcome
        assert "note: .debug_" in text or "note: DWARF not usable" in text, text


def line_program_ranges(image: Path) -> dict[int, list[tuple[int, int]]]:
    """Per line program offset, the [start, end) addresses of each of its sequences, from llvm-dwarfdump."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    program, start = -1, None
    for line in run("llvm-dwarfdump", "--debug-line", image).stdout.splitlines():
        if match := re.match(r"debug_line\[(0x[0-9a-f]+)\]", line):
            program, start = int(match.group(1), 16), None
            ranges[program] = []
        elif match := re.match(r"(0x[0-9a-f]{16})\s", line):
            address = int(match.group(1), 16)
            start = address if start is None else start
            if "end_sequence" in line:
                ranges[program].append((start, address))
                start = None
    return ranges


def test_a_damaged_line_program_costs_only_the_lines_it_covers(workdir: Path) -> None:
    need("llvm-dwarfdump", "aarch64-linux-gnu-addr2line")
    pristine = build() / "vmlinux"
    programs = line_program_ranges(pristine)
    sites = [r.site.address for r in scan(pristine, options("vmlinux")).analysis.records]
    covers = {unit: [a for a in sites if any(lo <= a < hi for lo, hi in programs[offset])]
              for unit, offset in enumerate(sorted(programs))}
    unit = max(covers, key=lambda k: len(covers[k]))  # the line program of most sites: zero its line_range
    path = workdir / "damaged-vmlinux"
    path.write_bytes(apply(layout("vmlinux"), [{"where": "unit", "section": ".debug_line", "unit": unit,
                                                "field": "line_range", "value": 0}]))
    result = holds(FAMILY, lambda: scan(path, options("vmlinux")))
    assert not isinstance(result, ReachlsError), result
    offset = sorted(programs)[unit]
    assert f".debug_line: 1 damaged unit (at {offset:#x}: line program header with line_range 0)" in " ".join(
        result.notes)
    records = result.analysis.records
    lost = set(covers[unit])
    assert lost and len(lost) < len(records)
    for record, (file, line) in zip(records, gnu_addr2line(pristine, [r.site.address for r in records])):
        found = (record.site.location.file, record.site.location.line) if record.site.location else None
        assert found == (None if record.site.address in lost or not line else (os.path.normpath(file), line))


@pytest.mark.parametrize("name, mutation, says", [
    ("vmlinux.o", {"where": "section", "section": ".symtab", "field": "link", "value": 500},
     "the sh_link of .symtab names section 500, the file has {sections}"),
    ("vmlinux.o", {"where": "section", "section": ".rela.text", "field": "info", "value": 4000},
     "the sh_info of .rela.text names section 4000, the file has {sections}"),
    ("vmlinux", {"where": "section", "section": ".text", "field": "size", "value": (1 << 64) - 16},
     "(.text) at 0x{address:x} of 0xfffffffffffffff0 bytes ends past the 64-bit address space"),
    ("vmlinux.o", {"where": "section", "section": ".text", "field": "size", "value": (1 << 64) - 16},
     "past the 64-bit address space (a section size near 2**64?)"),
])
def test_a_bad_table_field_is_one_line_naming_file_and_field(workdir: Path, name: str, mutation: Mutation,
                                                             says: str) -> None:
    path = workdir / f"field-{name}"
    path.write_bytes(apply(layout(name), [mutation]))
    script = ["--script", str(build() / SCRIPT)] if name == "vmlinux.o" else []
    result = cli_holds(FAMILY, ["scan", str(path), "--engine", "model", *script])
    assert result.returncode == 2 and result.stderr.startswith(f"reachls: error: {path}: ")
    pristine = layout(name)
    address = int.from_bytes(pristine.data[pristine.field({**mutation, "field": "addr"})[0]:][:8], "little")
    assert says.format(sections=len(pristine.sections), address=address) in result.stderr, result.stderr
