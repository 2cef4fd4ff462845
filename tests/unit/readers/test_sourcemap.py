"""SourceMap against the real toolchain: expected lines come from marker comments in the sources
and from GNU aarch64-linux-gnu-addr2line on the linked image (it sorts line rows; llvm-addr2line
does not). Built for DWARF 4 and 5, since clang 14 defaults to 5 and kernels still use 4."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from reachls.elf import ElfInput
from reachls.record import SourceLocation
from reachls.sourcemap import SourceMap
from test_dwarfline import assert_rows_match_pyelftools, assert_subprograms_match_pyelftools
from toolchain import TARGET, function_symbols, gnu_addr2line, need, run, source_map

C_SOURCE = """\
extern int asm_func(int x);

static int counter;

__attribute__((noinline)) int helper_one(int x)   /* DECL:helper_one */
{
	counter += x;   /* SITE:h1_counter */
	return counter * 3;
}   /* END:helper_one */

__attribute__((noinline)) int helper_two(int x)   /* DECL:helper_two */
{
	return helper_one(x) + 7;   /* SITE:h2_call */
}   /* END:helper_two */

int entry(int x)   /* DECL:entry */
{
	int a = helper_two(x);   /* SITE:entry_call_two */
	int b = asm_func(a);   /* SITE:entry_call_asm */
	return a + b + counter;   /* SITE:entry_counter */
}   /* END:entry */
"""

# ALTERNATIVE-style: replacement code goes to `.subsection 1`, so the line rows step forward to it
# and back again for the instructions after `.previous`.
ASM_SOURCE = """\
	.text
	.globl	asm_func
	.type	asm_func, %function
	.p2align 2
asm_func:
	stp	x29, x30, [sp, #-16]!	// SITE:asm_push
	bl	helper_one		// SITE:asm_call_one
661:
	nop				// SITE:alt_orig
662:
	.subsection 1
663:
	bl	helper_two		// SITE:alt_repl
	adrp	x1, counter_ref		// SITE:alt_repl_adrp
664:
	.previous
	bl	entry			// SITE:asm_after_call
	ldp	x29, x30, [sp], #16	// SITE:asm_pop
	ret				// SITE:asm_ret
	.size	asm_func, .-asm_func

	.data
	.globl	counter_ref
counter_ref:
	.quad	asm_func
"""

# (section in combined.o, relocation symbol) -> marker on the line that makes the relocation
SITES = {(".text.helper_two", "helper_one"): "h2_call", (".text.entry", "helper_two"): "entry_call_two",
         (".text.entry", "asm_func"): "entry_call_asm", (".text", "helper_one"): "asm_call_one",
         (".text", "entry"): "asm_after_call"}


def marker_line(text: str, marker: str) -> int:
    """1-based line of the unique source line carrying `marker`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if re.search(re.escape(marker) + r"\b", line)]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


class Build:
    def __init__(self, root: Path, dwarf: int) -> None:
        need("clang", "ld.lld", "aarch64-linux-gnu-addr2line")
        self.root = root
        (root / "funcs.c").write_text(C_SOURCE)
        (root / "alt.S").write_text(ASM_SOURCE)
        self.c_path, self.s_path = os.path.normpath(root / "funcs.c"), os.path.normpath(root / "alt.S")
        cflags = [TARGET, f"-gdwarf-{dwarf}", "-c"]
        run("clang", *cflags, "-O1", "-ffunction-sections", "funcs.c", "-o", "funcs.o", cwd=root)
        run("clang", *cflags, "alt.S", "-o", "alt.o", cwd=root)
        # alt.o second: its debug relocations get non-zero addends in the `ld -r` output
        run("ld.lld", "-r", "funcs.o", "alt.o", "-o", "combined.o", cwd=root)
        run("ld.lld", "-e", "entry", "combined.o", "-o", "image", cwd=root)
        run("ld.lld", "-e", "entry", "--emit-relocs", "combined.o", "-o", "image_relocs", cwd=root)
        self.combined, self.image = root / "combined.o", root / "image"
        self.image_relocs = root / "image_relocs"

    def final_base(self, obj: ElfInput, image: ElfInput) -> dict[int, int]:
        """Final address of each code section of combined.o: a function's address in the image
        minus its offset in the section."""
        final = {name: value for name, _, value, _ in function_symbols(image)}
        return {sec: final[name] - value for name, sec, value, _ in function_symbols(obj)}

    def gnu(self, addresses: list[int], image: Path | None = None) -> list[SourceLocation | None]:
        """GNU addr2line's answers as SourceLocations (column unknown: 0); `?` line = None."""
        return [SourceLocation(os.path.normpath(f), n, 0) if n else None
                for f, n in gnu_addr2line(image or self.image, addresses)]


def same(ours: SourceLocation | None, gnu: SourceLocation | None) -> bool:
    if ours is None or gnu is None:
        return ours is gnu
    return (ours.file, ours.line) == (gnu.file, gnu.line)


@pytest.fixture(scope="module", params=[4, 5], ids=["dwarf4", "dwarf5"])
def build(request, tmp_path_factory) -> Build:
    return Build(tmp_path_factory.mktemp(f"dwarf{request.param}"), request.param)


def relocation_sites(obj: ElfInput) -> list[tuple[int, int, str]]:
    """(code section, offset, symbol name) of every relocation in a code section."""
    sites = []
    for target, relsec in obj.relocation_sections().items():
        if obj.sections[target].is_code:
            rel = obj.relocations(relsec)
            sites += [(target, int(o), obj.symbol_name(int(s))) for o, s in zip(rel.offset, rel.sym)]
    return sites


def test_every_relocation_site_matches_gnu_addr2line(build: Build) -> None:
    with ElfInput(build.combined) as obj, ElfInput(build.image) as image:
        sm, base = source_map(obj), build.final_base(obj, image)
        sites = relocation_sites(obj)
        assert len(sites) >= 10
        gnu = build.gnu([base[sec] + off for sec, off, _ in sites])
        for (sec, off, sym), expected in zip(sites, gnu):
            assert same(sm.line_for(sec, off), expected), (obj.sections[sec].name, off, sym)
        # and the lines are the ones the sources say
        sources = {build.c_path: C_SOURCE, build.s_path: ASM_SOURCE}
        checked = 0
        for sec, off, sym in sites:
            marker = SITES.get((obj.sections[sec].name, sym))
            if marker:
                loc = sm.line_for(sec, off)
                assert loc is not None and loc.line == marker_line(sources[loc.file], "SITE:" + marker), marker
                checked += 1
        assert checked == len(SITES)


def test_subsection_rows_stepping_back(build: Build) -> None:
    """Every instruction of the asm function, whose line rows go forward into `.subsection 1` and
    back: equal to GNU addr2line; the code after `.previous` gets its own lines. (clang 14 ends the
    sequence at the end of subsection 0, so the replacement code itself has no line, for GNU too.)"""
    need("llvm-dwarfdump")
    with ElfInput(build.combined) as obj, ElfInput(build.image) as image:
        sm, base = source_map(obj), build.final_base(obj, image)
        text = next(s.index for s in obj.sections if s.name == ".text")
        size = obj.sections[text].size
        offsets = list(range(0, size, 4))
        ours = [sm.line_for(text, off) for off in offsets]
        gnu = build.gnu([base[text] + off for off in offsets])
        assert all(same(a, b) for a, b in zip(ours, gnu)), list(zip(offsets, ours, gnu))
        for marker in ("asm_after_call", "asm_pop", "asm_ret", "asm_call_one"):
            assert marker_line(ASM_SOURCE, "SITE:" + marker) in [loc.line for loc in ours if loc]
    # the trap is really there: the raw .S sequence is not sorted by address
    dump = run("llvm-dwarfdump", "--debug-line", build.combined).stdout
    asm_rows = dump[dump.index("alt.S"):]
    addresses = [int(line.split()[0], 16) for line in asm_rows.splitlines() if line.startswith("0x")]
    assert any(b < a for a, b in zip(addresses, addresses[1:]))
    if shutil.which("llvm-addr2line"):  # informational: llvm-addr2line does not sort the rows
        llvm = run("llvm-addr2line", "-e", build.image, *(hex(base[text] + o) for o in offsets)).stdout
        print("llvm-addr2line differs from GNU at:", [ln for ln, g in zip(llvm.splitlines(), gnu)
                                                       if (g is None) != ln.startswith("??")
                                                       or (g and not ln.endswith(f":{g.line}"))])


def test_overlapping_sections_map_to_their_own_lines(build: Build) -> None:
    """helper_one and helper_two both start at offset 0 of their own `.text.*` section."""
    with ElfInput(build.combined) as obj, ElfInput(build.image) as image:
        sm, base = source_map(obj), build.final_base(obj, image)
        funcs = {name: (sec, value, size) for name, sec, value, size in function_symbols(obj)}
        firsts = []
        for name in ("helper_one", "helper_two"):
            sec, value, size = funcs[name]
            assert value == 0
            span = range(marker_line(C_SOURCE, "DECL:" + name), marker_line(C_SOURCE, "END:" + name) + 1)
            offsets = list(range(0, size, 4))
            ours = [sm.line_for(sec, off) for off in offsets]
            assert all(same(a, b) for a, b in zip(ours, build.gnu([base[sec] + o for o in offsets])))
            assert all(loc is not None and loc.file == build.c_path and loc.line in span for loc in ours)
            firsts.append(ours[0])
        assert firsts[0] != firsts[1]


def test_function_declaration(build: Build) -> None:
    """In the relocatable input and in both linked images (all CUs / indexed by --emit-relocs)."""
    with ElfInput(build.combined) as obj, ElfInput(build.image) as image, \
            ElfInput(build.image_relocs) as image_relocs:
        sm, linked = source_map(obj), [(source_map(i), i) for i in (image, image_relocs)]
        final = {name: (sec, value) for name, sec, value, _ in function_symbols(image)}
        for name, sec, value, size in function_symbols(obj):
            if name == "asm_func":  # assembler DWARF has no DW_TAG_subprogram
                continue
            want = (build.c_path, marker_line(C_SOURCE, "DECL:" + name))
            for off in (value, value + size - 4):  # starts at, and contains
                decl = sm.function_declaration(sec, off)
                assert decl is not None and (decl.file, decl.line) == want, name
            isec, address = final[name]
            for smi, img in linked:
                decl = smi.function_declaration(isec, address - img.sections[isec].addr)
                assert decl is not None and (decl.file, decl.line) == want, name


def test_linked_image_lines_at(build: Build) -> None:
    for path in (build.image, build.image_relocs):  # all line programs / indexed by relocations
        with ElfInput(path) as image:
            sm = source_map(image)
            assert sm.has_dwarf()
            addresses = [s.addr + off for s in image.sections if s.is_code for off in range(0, s.size, 4)]
            ours = sm.lines_at(np.array(addresses, dtype=np.uint64))
            assert all(same(a, b) for a, b in zip(ours, build.gnu(addresses, path)))
            assert sum(loc is not None for loc in ours) > len(addresses) // 2
            assert sm.lines_at(np.array([0], dtype=np.uint64)) == [None]


def test_without_dwarf(tmp_path: Path) -> None:
    need("clang", "ld.lld")
    (tmp_path / "funcs.c").write_text(C_SOURCE)
    run("clang", TARGET, "-O1", "-ffunction-sections", "-c", "funcs.c", "-o", "funcs.o", cwd=tmp_path)
    run("ld.lld", "-r", "funcs.o", "-o", "combined.o", cwd=tmp_path)
    with ElfInput(tmp_path / "combined.o") as obj:
        sm = source_map(obj)
        assert not sm.has_dwarf()
        code = [s.index for s in obj.sections if s.is_code]
        assert code
        assert all(sm.line_for(sec, 0) is None and sm.function_declaration(sec, 0) is None for sec in code)


def test_only_the_needed_units_are_decoded_once(build: Build) -> None:
    """Trap 3: a site in funcs.c decodes sequences of funcs.c's line program and its CU (offset 0:
    first in combined.o), not alt.S's, and no whole program; rows are kept sorted per sequence."""
    with ElfInput(build.combined) as obj:
        sm = source_map(obj)
        entry = next(sec for name, sec, _, _ in function_symbols(obj) if name == "entry")
        assert sm.line_for(entry, 0) is not None and sm.line_for(entry, 4) is not None
        assert sm.function_declaration(entry, 0) is not None
        units = [k for k in sm._memo if k[0] in ("_lines", "_sequences", "_subprograms")]
        assert [k[:2] for k in units] == [("_sequences", 0), ("_subprograms", 0)]
        assert sm.decoded.programs == 0 and sm.decoded.sequences == 1
        lines = sm._memo[units[0]]
        for s in range(len(lines.lo)):
            rows = lines.addr[lines.first[s]:lines.first[s + 1]]
            assert (np.diff(rows.astype(np.int64)) >= 0).all()


def _many_functions(first: int, count: int) -> str:
    return "".join(f"""
__attribute__((noinline)) int f{i}(int x)
{{
\tint y = x * {i + 3};
\tif (y & 1)
\t\ty += f{i}(x - 1);
\treturn y ^ {i};
}}
""" for i in range(first, first + count))


def _sequences_in_dump(dump: str) -> list[tuple[int, int, int]]:
    """(first address, end address, rows with the end_sequence row) of each sequence `llvm-dwarfdump
    --debug-line` prints."""
    found, rows = [], []
    for line in dump.splitlines():
        if line.startswith("0x"):
            rows.append(int(line.split()[0], 16))
            if "end_sequence" in line.split():
                found.append((rows[0], rows[-1], len(rows)))
                rows = []
    return found


@pytest.fixture(scope="module", params=[4, 5], ids=["dwarf4", "dwarf5"])
def many(request, tmp_path_factory) -> Path:
    """40 functions in two line programs of a `ld -r` object `combined.o` (one sequence each), and
    `image`, it linked."""
    need("clang", "ld.lld")
    root = tmp_path_factory.mktemp(f"many{request.param}")
    (root / "a.c").write_text(_many_functions(0, 20))
    (root / "b.c").write_text(_many_functions(20, 20))
    for name in ("a", "b"):
        run("clang", TARGET, f"-gdwarf-{request.param}", "-O1", "-ffunction-sections", "-c", f"{name}.c", cwd=root)
    run("ld.lld", "-r", "a.o", "b.o", "-o", "combined.o", cwd=root)
    run("ld.lld", "-e", "f0", "combined.o", "-o", "image", cwd=root)
    return root


PICKED = ("f0", "f7", "f39")  # the first function of the first program, one inside, the last of the second


def _lines_of_picked(root: Path, sm_of: Callable[[ElfInput], SourceMap]) -> SourceMap:
    """Map every instruction of the picked functions of `combined.o` with the source map `sm_of`
    gives: lines equal GNU addr2line's on the linked image. The source map, for what it decoded."""
    with ElfInput(root / "combined.o") as obj, ElfInput(root / "image") as image:
        final = {name: value for name, _, value, _ in function_symbols(image)}
        functions = {name: (sec, size) for name, sec, _, size in function_symbols(obj)}
        sm = sm_of(obj)
        sites = [(name, off) for name in PICKED for off in range(0, functions[name][1], 4)]
        ours = sm.lines_at(sm.code_addresses([functions[name][0] for name, _ in sites], [off for _, off in sites]))
        gnu = gnu_addr2line(root / "image", [final[name] + off for name, off in sites])
        assert [(loc.file, loc.line) if loc else None for loc in ours] == \
            [(os.path.normpath(f), n) if n else None for f, n in gnu]
        assert all(ours)
        return sm


def test_only_the_sequences_holding_the_sites_are_decoded(many: Path) -> None:
    """The lines of every instruction of 3 of the 40 functions equal GNU addr2line's, and the rows
    decoded are exactly those llvm-dwarfdump prints for the 3 sequences holding them, no whole
    program."""
    need("llvm-dwarfdump", "aarch64-linux-gnu-addr2line")
    sequences = _sequences_in_dump(run("llvm-dwarfdump", "--debug-line", many / "image").stdout)
    assert len(sequences) == 40
    sm = _lines_of_picked(many, source_map)
    with ElfInput(many / "image") as image:
        final = {name: value for name, _, value, _ in function_symbols(image)}
    holding = [next(rows for lo, hi, rows in sequences if lo <= final[name] < hi) for name in PICKED]
    assert (sm.decoded.programs, sm.decoded.sequences, sm.decoded.rows) == (0, 3, sum(holding))


def test_a_walk_starting_inside_the_wanted_sequence_restarts_at_the_program(many: Path) -> None:
    """Where the DW_LNE_set_address before a sequence's own lies in that same sequence (an assembler
    may restate the address inside one), the walk from it finds no sequence end before the wanted
    one: it starts again at the program's first opcode. Made so here by giving every sequence start
    its own opcode as the one before: same lines, each program's sequences up to the wanted one."""
    need("aarch64-linux-gnu-addr2line")

    def restating(obj: ElfInput) -> SourceMap:
        sm = source_map(obj)
        starts = sm._starts
        sm.__dict__["_starts"] = starts._replace(anchor=np.where(starts.opcode >= 0, starts.opcode, starts.anchor))
        return sm
    sm = _lines_of_picked(many, restating)
    # f0 is the first sequence of a.c's program, f7 the eighth, f39 the last of b.c's (20 sequences)
    assert (sm.decoded.programs, sm.decoded.sequences) == (0, 1 + 8 + 20)


def test_fast_decoders_equal_pyelftools(build: Build) -> None:
    """dwarfline's line rows and subprogram DIEs are pyelftools' (the oracle), for every line program
    and CU of the relocatable input and both linked images."""
    for path in (build.combined, build.image, build.image_relocs):
        assert assert_rows_match_pyelftools(path) > 0
        assert assert_subprograms_match_pyelftools(path)[0] == 3  # helper_one, helper_two, entry
