"""Every relocation table of a file read at once (`ElfInput.relocation_rows`), against llvm-readobj.

An allmodconfig `vmlinux.o` has ~300 k relocation tables: they are read in long runs of the file
and their entries picked out with one mask, never table by table. The answer key is
`llvm-readobj -r --expand-relocs` (each entry's offset, type, symbol index and addend) with
`llvm-readelf -S` (which section each table applies to, and whether that one is allocated), on the
shapes the reader meets: 100 000 RELA tables under extended numbering, and 32-bit SHT_REL tables.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import many_sections
from reachls.analysis import short_reach_types
from reachls.arch import architecture_of
from reachls.elf import ElfInput
from toolchain import compile_for, need, run

_SECTION = re.compile(r"^\s*\[\s*(\d+)\] (\S*)\s+(\S+)\s+[0-9a-f]+ [0-9a-f]+ [0-9a-f]+ [0-9a-f]+\s+([A-Za-z]*)\s+\d+\s+(\d+)",
                      re.M)
_TABLE = re.compile(r"^  Section \((\d+)\) \S+ \{$")
_FIELD = re.compile(r"^      (Offset|Type|Symbol|Addend): (.*)$")


def readobj_rows(path: Path, types: np.ndarray) -> Counter[tuple[int, int, int, int, int]]:
    """(section applied to, offset, symbol index, type, addend) of every relocation of `types` in a
    table that applies to an allocated section, as the LLVM tools print them."""
    need("llvm-readobj", "llvm-readelf")
    applies_to, allocated = {}, set()
    for match in _SECTION.finditer(run("llvm-readelf", "-S", "--wide", path).stdout):
        index, kind, flags, info = int(match.group(1)), match.group(3), match.group(4), int(match.group(5))
        if "A" in flags:
            allocated.add(index)
        if kind in ("RELA", "REL"):
            applies_to[index] = info
    wanted = set(types.tolist())
    rows: Counter[tuple[int, int, int, int, int]] = Counter()
    site, entry = None, {}
    for line in run("llvm-readobj", "-r", "--expand-relocs", path).stdout.splitlines():
        if table := _TABLE.match(line):
            site = applies_to[int(table.group(1))]
        elif field := _FIELD.match(line):
            entry[field.group(1)] = field.group(2)
        elif line.strip() == "}" and "Type" in entry:
            rtype = int(re.search(r"\((\d+)\)$", entry["Type"]).group(1))
            symbol = int(re.search(r"\((\d+)\)$", entry["Symbol"]).group(1))
            addend = int(entry.get("Addend", "0"), 0)  # SHT_REL: none in the entry
            if site in allocated and rtype in wanted:
                rows[(site, int(entry["Offset"], 16), symbol, rtype, addend)] += 1
            entry = {}
    return rows


def ours(path: Path) -> tuple[Counter[tuple[int, int, int, int, int]], np.ndarray]:
    with ElfInput(path) as obj:
        types = short_reach_types(architecture_of(obj))
        rows = obj.relocation_rows(types)
        return Counter(zip(rows.section.tolist(), rows.offset.tolist(), rows.sym.tolist(), rows.type.tolist(),
                           rows.addend.tolist())), types


def test_a_hundred_thousand_tables_under_extended_numbering() -> None:
    need("clang", "ld.lld")
    path = many_sections.build() / "many.o"
    found, types = ours(path)
    expected = readobj_rows(path, types)
    assert len(expected) > 200_000
    assert found == expected


@pytest.mark.parametrize("triple", ["armv7a-linux-gnueabihf", "mipsel-linux-gnu"])
def test_32_bit_rel_tables(tmp_path: Path, triple: str) -> None:
    source = tmp_path / "calls.c"
    source.write_text("".join(f"void f{i}(void);\n" for i in range(40))
                      + "".join(f"void g{i}(void) {{ f{i}(); f{(i + 1) % 40}(); }}\n" for i in range(40)))
    path = compile_for(triple, source, tmp_path / "calls.o", "-O1", "-ffunction-sections", "-fno-pic")
    found, types = ours(path)
    expected = readobj_rows(path, types)
    assert len(expected) >= 80
    assert found == expected
