"""dwarfline's byte walks against pyelftools as the oracle: line rows equal `get_entries()` state
rows, subprogram DIE offsets equal `iter_DIEs()` filtered, on objects from clang and GCC (DWARF 4
and 5, relocatable and linked) and on generated opcode streams."""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from elftools.dwarf.lineprogram import LineProgram
from elftools.dwarf.structs import DWARFStructs

from reachls.dwarfline import die_offsets, line_rows, sequence_rows
from reachls.elf import ElfInput
from toolchain import TARGET, need, run, source_map, uleb128

HEADER_H = """\
static inline int mix(int a, int b)
{
	int r = a * 31 + b;
	for (int i = 0; i < (b & 7); i++)
		r ^= r << 3;
	return r;
}
"""

SOURCE_C = """\
#include "mix.h"
extern int table[4096];
struct big { int v[300]; };

int walk(int n)
{
	int s = 0;
	for (int i = 0; i < n; i++) {
		switch (i % 5) {
		case 0: s += mix(s, i); break;
		case 1: s -= table[i & 4095]; break;
		case 2: s ^= mix(i, s) >> 2; break;
		default: s += i;
		}
	}
	return s;
}

static int fill(struct big *b, int k)
{
	struct big local = { { 1, 2, 3 } };
	for (int i = 0; i < 300; i++)
		local.v[i] += k * i;
	*b = local;
	return b->v[k % 300];
}

int entry(int x)
{
	struct big b;
	return walk(x) + fill(&b, x) + mix(x, x);
}
"""

# GCC only: a nested function is a DW_TAG_subprogram inside a DW_TAG_subprogram; two structs, so
# one is not the last DIE at its level and gets a DW_AT_sibling.
NESTED_C = """\
struct pair { int a, b; };
struct triple { int a, b, c; };

int outer(int x)
{
	__attribute__((noinline)) int inner(int y) { return y * x + 1; }
	return inner(x) + inner(x + 1);
}

int sum(struct pair *p, struct triple *t)
{
	return p->a + p->b + t->c;
}
"""

ASM_S = """\
	.text
	.globl	asm_func
	.type	asm_func, %function
asm_func:
	nop
	.skip	4000
	ret
	.size	asm_func, .-asm_func
"""


def _objects(root: Path) -> list[Path]:
    """Relocatable and linked objects from clang and GCC, DWARF 4 and 5."""
    need("clang", "ld.lld")
    (root / "mix.h").write_text(HEADER_H)
    (root / "walk.c").write_text(SOURCE_C)
    (root / "nested.c").write_text(NESTED_C)
    (root / "asm.S").write_text(ASM_S)
    made = []
    for dwarf in (4, 5):
        for opt in ("-O0", "-O2"):
            out = f"walk{dwarf}{opt}.o"
            run("clang", TARGET, f"-gdwarf-{dwarf}", opt, "-ffunction-sections", "-c", "walk.c", "-o", out, cwd=root)
        run("clang", TARGET, f"-gdwarf-{dwarf}", "-c", "asm.S", "-o", f"asm{dwarf}.o", cwd=root)
        made.append(root / f"walk{dwarf}-O0.o")
        inputs = [f"walk{dwarf}-O2.o", f"asm{dwarf}.o"]
        if shutil.which("aarch64-linux-gnu-gcc"):
            for name in ("walk", "nested"):
                out = f"gcc_{name}{dwarf}.o"
                run("aarch64-linux-gnu-gcc", f"-gdwarf-{dwarf}", "-O2", "-ffunction-sections",
                    "-fno-asynchronous-unwind-tables", "-c", f"{name}.c", "-o", out, cwd=root)
                made.append(root / out)
        run("ld.lld", "-r", *inputs, "-o", f"combined{dwarf}.o", cwd=root)
        run("ld.lld", "-e", "entry", "--unresolved-symbols=ignore-all", *inputs, "-o", f"image{dwarf}", cwd=root)
        made += [root / f"combined{dwarf}.o", root / f"image{dwarf}"]
    return made


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> list[Path]:
    return _objects(tmp_path_factory.mktemp("dwarfline"))


HEADER_KEYS = ("version", "minimum_instruction_length", "maximum_operations_per_instruction", "line_base",
               "line_range", "opcode_base", "standard_opcode_lengths", "include_directory")


def as_list(value: object) -> object:
    return list(value) if isinstance(value, (list, tuple)) else value


def assert_rows_match_pyelftools(path: Path) -> int:
    """Every line program of `path`: our rows == pyelftools' state rows; returns the row count."""
    total = 0
    with ElfInput(path) as obj:
        sm, mask = source_map(obj), (1 << (64 if obj.is64 else 32)) - 1
        for offset in sm._unit_starts(".debug_line").tolist():
            program = sm._program(offset)
            rows = sm._rows(offset)
            assert rows is not None and len(rows.defined) == 0
            states = [e.state for e in program.get_entries() if e.state is not None]
            header = sm._header(offset)  # dwarfline's reading of the header == pyelftools'
            assert {key: as_list(header[key]) for key in HEADER_KEYS} == {key: as_list(program.header[key])
                                                                         for key in HEADER_KEYS}
            assert header["file_entry"] == [(f.name, f.dir_index) for f in program.header["file_entry"]]
            assert (header["program_start"], header["program_end"]) == (program.program_start_offset,
                                                                        program.program_end_offset)
            assert rows.address.tolist() == [s.address & mask for s in states], (path.name, offset)
            assert rows.file.tolist() == [s.file for s in states]
            assert rows.line.tolist() == [s.line for s in states]
            assert rows.column.tolist() == [s.column for s in states]
            assert rows.end.tolist() == [bool(s.end_sequence) for s in states]
            total += len(states)
    return total


def test_line_rows_equal_pyelftools(objects: list[Path]) -> None:
    counts = {path.name: assert_rows_match_pyelftools(path) for path in objects}
    assert all(counts.values()), counts


def assert_subprograms_match_pyelftools(path: Path) -> tuple[int, bool]:
    """Every CU of `path`: the subprogram DIEs we find == pyelftools' walk over all DIEs; returns
    their count and whether one was nested in another subprogram."""
    count, nested = 0, False
    with ElfInput(path) as obj:
        sm = source_map(obj)
        for cu_offset in sm._unit_starts(".debug_info").tolist():
            cu = sm._dwarf.get_CU_at(cu_offset)
            unit = sm._unit(cu_offset)  # the header as dwarfline reads it, its bytes relocated alone
            assert (unit.die, unit.abbrev_offset, unit.sizes) == (
                cu.cu_die_offset - cu_offset, cu["debug_abbrev_offset"],
                (cu["address_size"], cu.structs.dwarf_format // 8, cu["version"]))
            assert unit.data == bytes(sm._patched(".debug_info")[cu_offset:cu_offset + cu.size])
            assert sm._top_die(cu_offset) == sm._die(cu.cu_die_offset)
            want = [d for d in cu.iter_DIEs() if d.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in d.attributes]
            assert [sm._address(cu_offset, sm._die(d.offset)["DW_AT_low_pc"]) for d in want] == \
                [d.attributes["DW_AT_low_pc"].value for d in want]
            assert sm._subprogram_offsets(cu_offset) == [d.offset for d in want], (path.name, cu_offset)
            top = cu.get_top_DIE().attributes
            if "DW_AT_stmt_list" in top and "DW_AT_comp_dir" in top:
                assert sm._comp_dir(top["DW_AT_stmt_list"].value) == top["DW_AT_comp_dir"].value.decode()
            for die in want + [cu.get_top_DIE()]:  # the values read for them: pyelftools' raw values
                assert sm._die(die.offset) == {name: (a.form, None if isinstance(a.raw_value, list) or a.form ==
                                                      "DW_FORM_flag_present" else a.raw_value)
                                               for name, a in die.attributes.items()}
            count += len(want)
            nested |= any(d.get_parent().tag == "DW_TAG_subprogram" for d in want)
    return count, nested


def test_subprogram_dies_equal_pyelftools(objects: list[Path]) -> None:
    found = {path.name: assert_subprograms_match_pyelftools(path) for path in objects}
    assert all(count for count, _ in found.values()), found
    if shutil.which("aarch64-linux-gnu-gcc"):
        assert found["gcc_nested4.o"][1] and found["gcc_nested5.o"][1]


def test_children_of_types_are_jumped_over(objects: list[Path]) -> None:
    """GCC gives a struct with members a DW_AT_sibling (unless it is the last DIE at its level): a
    walk told to skip the children of structures reaches fewer of the members pyelftools finds,
    and no other DIE (the subprograms such walks find are checked against pyelftools above)."""
    need("aarch64-linux-gnu-gcc")
    members, reached = set(), set()
    for path in (p for p in objects if p.name.startswith("gcc_")):
        with ElfInput(path) as obj:
            sm = source_map(obj)
            for cu_offset in sm._unit_starts(".debug_info").tolist():
                unit = sm._unit(cu_offset)
                here = [d.offset - cu_offset for d in sm._dwarf.get_CU_at(cu_offset).iter_DIEs()
                        if d.tag == "DW_TAG_member"]
                walk = (unit.data, unit.die, sm._abbreviations(unit.abbrev_offset), lambda decl: decl.tag ==
                        "DW_TAG_member", *unit.sizes, obj.little)
                assert die_offsets(*walk) == here
                members |= {(path.name, cu_offset, o) for o in here}
                reached |= {(path.name, cu_offset, o)
                            for o in die_offsets(*walk, lambda decl: decl.tag == "DW_TAG_structure_type")}
    assert reached < members


# ----- generated opcode streams -----

def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _random_program(rng: random.Random, base: int, marks: dict[int, list[int]] | None = None) -> bytes:
    """400 random opcodes; `marks`, if given, gets the offset of each DW_LNE_set_address (under 2)
    and DW_LNE_end_sequence (under 1) opcode."""
    out = bytearray()
    for _ in range(400):
        kind = rng.randrange(16)
        if marks is not None and kind in (5, 6):
            marks.setdefault(7 - kind, []).append(len(out))
        if kind < 5:
            out.append(rng.randrange(base, 256))  # special
        elif kind == 5:
            out += b"\x00" + uleb128(9) + b"\x02" + rng.choice(
                [0x10000, 0xFFFFFFFFFFFFFFF0, rng.getrandbits(64)]).to_bytes(8, "little")  # set_address
        elif kind == 6:
            out += b"\x00\x01\x01"  # end_sequence
        elif kind == 7:
            out += b"\x02" + uleb128(rng.choice([rng.randrange(300), 2 ** 64 - 8, 2 ** 70]))  # advance_pc
        elif kind == 8:
            out += b"\x03" + _sleb(rng.randrange(-70000, 70000))  # advance_line
        elif kind == 9:
            out += bytes([rng.choice([4, 5])]) + uleb128(rng.randrange(400))  # set_file, set_column
        elif kind == 10:
            out.append(rng.choice([1, 6, 7, 8] + [op for op in (10, 11) if op < base]))
        elif kind == 11:
            out += b"\x09" + rng.randrange(65536).to_bytes(2, "little")  # fixed_advance_pc
        elif kind == 12 and base > 12:
            out += b"\x0c" + uleb128(rng.randrange(1000))  # set_isa
        elif kind == 13:
            name = b"gen%d.c\x00" % rng.randrange(100)
            body = b"\x03" + name + uleb128(rng.randrange(3)) + uleb128(rng.randrange(999)) + uleb128(77)
            out += b"\x00" + uleb128(len(body)) + body  # define_file
        elif kind == 14:
            out += b"\x00\x02\x04" + uleb128(rng.randrange(100))[:1]  # set_discriminator (one byte)
        else:
            out += b"\x00\x04\x80abc"  # an unknown extended opcode, skipped by its length
    return bytes(out)


def _random_header(rng: random.Random, base: int) -> dict:
    return {"opcode_base": base, "line_range": rng.choice([12, 14, 16]), "line_base": rng.choice([-5, -3]),
            "minimum_instruction_length": rng.choice([1, 4]), "maximum_operations_per_instruction": 1,
            "default_is_stmt": 1, "standard_opcode_lengths": [0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1][:base - 1],
            "file_entry": []}


def _oracle(program: bytes, header: dict) -> tuple[LineProgram, list]:
    """pyelftools' reading of a generated program: the program and its state rows."""
    oracle = LineProgram(dict(header, file_entry=[]), io.BytesIO(program), DWARFStructs(True, 32, 8),
                         0, len(program))
    return oracle, [e.state for e in oracle.get_entries() if e.state is not None]


@pytest.mark.parametrize("base", [10, 13])  # DWARF 2 (10 standard opcodes) and 3+ (13)
@pytest.mark.parametrize("seed", range(6))
def test_generated_programs_equal_pyelftools(base: int, seed: int) -> None:
    rng = random.Random(seed * 100 + base)
    program = _random_program(rng, base)
    header = _random_header(rng, base)
    oracle, states = _oracle(program, header)
    rows = line_rows(program, header, True, 2 ** 64 - 1)
    assert rows.address.tolist() == [s.address & (2 ** 64 - 1) for s in states]
    assert rows.address.dtype == np.uint64 and max(s.address for s in states) >= 2 ** 64  # wrapped
    assert [rows.file.tolist(), rows.line.tolist(), rows.column.tolist(), rows.end.tolist()] == \
        [[s.file for s in states], [s.line for s in states], [s.column for s in states],
         [bool(s.end_sequence) for s in states]]
    assert rows.defined == [(f.name, f.dir_index) for f in oracle.header["file_entry"]]


@pytest.mark.parametrize("base", [10, 13])
@pytest.mark.parametrize("seed", range(4))
def test_sequences_decoded_from_inside_the_one_before(base: int, seed: int) -> None:
    """`sequence_rows` from any DW_LNE_set_address to the end of the sequence holding any later one:
    the rows of pyelftools' whole-program decoding from the first end_sequence after the start to the
    first one after `until`; `first` past `until` when no end_sequence lies between them."""
    rng = random.Random(seed * 100 + base + 7)
    marks: dict[int, list[int]] = {}
    program = _random_program(rng, base, marks)
    header = dict(_random_header(rng, base), program_start=0, program_end=len(program))
    _, states = _oracle(program, header)
    ends = marks[1]
    checked = 0
    for start in marks[2]:
        for until in [u for u in marks[2] if u >= start][:6]:
            found = sequence_rows(program, header, True, 2 ** 64 - 1, start, until)
            after = [k for k, end in enumerate(ends) if end > start]
            if not after or ends[after[0]] > until:  # start and until in one sequence
                assert found.first > until
                continue
            first, last = after[0] + 1, next((k for k, end in enumerate(ends) if end > until), len(ends))
            assert found.first == ends[first - 1] + 3
            assert found.stop == (ends[last] + 3 if last < len(ends) else len(program))
            row_ends = [k for k, s in enumerate(states) if s.end_sequence]
            want = states[row_ends[first - 1] + 1:row_ends[last] + 1 if last < len(ends) else len(states)]
            assert [found.rows.address.tolist(), found.rows.line.tolist(), found.rows.file.tolist(),
                    found.rows.column.tolist(), found.rows.end.tolist()] == \
                [[s.address & (2 ** 64 - 1) for s in want], [s.line for s in want], [s.file for s in want],
                 [s.column for s in want], [bool(s.end_sequence) for s in want]]
            checked += 1
    assert checked > 20


def test_unknown_standard_opcode_skipped_by_declared_length() -> None:
    """pyelftools stops at an opcode it does not know; the header says how many LEB128 operands
    opcode 13 of an opcode_base-15 producer has, so it is skipped."""
    header = {"opcode_base": 15, "line_range": 14, "line_base": -5, "minimum_instruction_length": 4,
              "maximum_operations_per_instruction": 1, "default_is_stmt": 1,
              "standard_opcode_lengths": [0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 2, 0]}
    plain = b"\x00\x09\x02" + (0x1000).to_bytes(8, "little") + b"\x05\x07\x01" + b"\x20" + b"\x02\x02\x00\x01\x01"
    extra = plain[:14] + b"\x0d" + uleb128(300) + uleb128(5) + b"\x0e" + plain[14:]
    a, b = line_rows(plain, header, True, 2 ** 64 - 1), line_rows(extra, header, True, 2 ** 64 - 1)
    assert a.address.tolist() == b.address.tolist() == [0x1000, 0x1000 + 4 * ((0x20 - 15) // 14), 0x1000 + 4 * (
        (0x20 - 15) // 14) + 8]
    assert a.line.tolist() == b.line.tolist() and a.column.tolist() == [7, 7, 7]
    assert a.end.tolist() == [False, False, True]


def test_vliw_programs_are_left_to_pyelftools() -> None:
    assert line_rows(b"\x01", {"maximum_operations_per_instruction": 4}, True, 2 ** 64 - 1) is None


def test_fallbacks_to_pyelftools_agree(objects: list[Path], monkeypatch) -> None:
    """VLIW line programs and unsized forms go through pyelftools: same rows, DIEs, subprogram ranges
    and declarations."""
    path = next(p for p in objects if p.name == "combined5.o")
    with ElfInput(path) as obj:
        fast = source_map(obj)
        lines = [fast._rows(o) for o in fast._unit_starts(".debug_line").tolist()]
        units = fast._unit_starts(".debug_info").tolist()
        dies = [fast._subprograms(c) for c in units]
        declared = [[fast._declared(c, offset) for offset in found[2]] for c, found in zip(units, dies)]
        assert any(declared)
        monkeypatch.setattr("reachls.sourcemap.line_rows", lambda *args: None)
        monkeypatch.setattr("reachls.sourcemap.die_offsets", lambda *args: None)
        monkeypatch.setattr("reachls.sourcemap.die_attributes", lambda *args: None)
        monkeypatch.setattr("reachls.sourcemap.dies_attributes", lambda unit, positions, *args: [None] * len(positions))
        slow = source_map(obj)
        for ours, theirs in zip(lines, (slow._rows(o) for o in slow._unit_starts(".debug_line").tolist())):
            assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
        for ours, theirs in zip(dies, (slow._subprograms(c) for c in slow._unit_starts(".debug_info").tolist())):
            assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1]) and ours[2] == theirs[2]
        assert declared == [[slow._declared(c, offset) for offset in found[2]] for c, found in zip(units, dies)]
