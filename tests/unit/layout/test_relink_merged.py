"""Relink and merged (SHF_MERGE) sections: ld.lld's map lists only the merged result, yet every
reference the model engine places, the relink places too, within the bound its note states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reachls.pipeline import ScanOptions, scan
from toolchain import compile_aarch64, link_noinhibit, need, objdump_targets, run

# Two files with strings, one of them shared (deduplicated by the link), a kernel-style
# __ksymtab_strings, and 8-byte constants; ADR and LDR (literal) reach them, so llvm-objdump
# decodes the exact address each reference got. `ld.lld -r` already merges each section name;
# the final link merges `.rodata.str1.1` with `.rodata.str.extra` (one kind, one output section),
# deduplicating across them and reordering by hash.
STRINGS = 12
PART_S = """
	.section .text.{name},"ax",%progbits
	.globl {name}
	.type {name},%function
{name}:
	adr x0, .Lshared
{adrs}
	adr x4, .Lextra
	adr x5, .Lagain
	adr x2, .Lksym
	ldr x3, .Lconst
	ret
	.size {name}, . - {name}
	.section .rodata.str1.1,"aMS",@progbits,1
{strings}
.Lshared:	.asciz "in both files"
	.section .rodata.str.extra,"aMS",@progbits,1
.Lextra:	.asciz "an extra string of {name}"
.Lagain:	.asciz "in both files"
	.section __ksymtab_strings,"aMS",@progbits,1
.Lksym:	.asciz "{name}"
	.section .rodata.cst8,"aM",@progbits,8
	.p2align 3
.Lconst:	.quad {value}
"""


def _part(name: str, value: int) -> str:
    adrs = "\n".join(f"\tadr x1, .Lown{k}" for k in range(STRINGS))
    strings = "\n".join(f'.Lown{k}:\t.asciz "string {k} of {name}"' for k in range(STRINGS))
    return PART_S.format(name=name, value=value, adrs=adrs, strings=strings)


SCRIPT = """ENTRY(first)
SECTIONS {
  . = 0x10000;
  .text : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
  __ksymtab_strings : { *(__ksymtab_strings) }
}
"""


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, Path, Path]:
    need("clang", "ld.lld", "llvm-objdump")
    tmp = tmp_path_factory.mktemp("merged")
    parts = []
    for name, value in (("first", 1), ("second", 2)):
        (tmp / f"{name}.s").write_text(_part(name, value))
        parts.append(compile_aarch64(tmp / f"{name}.s", tmp / f"{name}.o"))
    run("ld.lld", "-r", *parts, "-o", tmp / "merged.o")
    (tmp / "merged.lds").write_text(SCRIPT)
    link_noinhibit(tmp / "merged.lds", [tmp / "merged.o"], tmp / "merged.elf")
    return tmp / "merged.o", tmp / "merged.lds", tmp / "merged.elf"


def test_relink_places_each_string_and_constant_where_the_linker_put_it(build):
    """Every reference the model places, the relink places too, and exactly: the pieces are read
    back from its image (the model, which has no image, gives the merged section's start plus the
    offset, and does not model deduplication across input sections)."""
    obj, script, image = build
    results = {engine: scan(obj, ScanOptions(engine=engine, script=script, include_ok=True))
               for engine in ("relink", "model")}
    assert results["relink"].analysis.unresolved == results["model"].analysis.unresolved == 0
    sites = {engine: {(r.site.address, r.kind.name) for r in result.analysis.records}
             for engine, result in results.items()}
    assert sites["relink"] == sites["model"] and len(sites["relink"]) == 2 * (STRINGS + 5)
    linked = objdump_targets(image)
    relinked = {r.site.address: r.target.address for r in results["relink"].analysis.records}
    assert relinked == {address: linked[address][1] for address in relinked}
    assert not [n for n in results["relink"].analysis.notes if "merged" in n]


WIDE_S = """
	.section .text.wide,"ax",%progbits
	.globl wide
	.type wide,%function
wide:
	adr x0, .Lw1
	adr x1, .Lw2
	ret
	.size wide, . - wide
	.section .rodata.str2.2,"aMS",@progbits,2
	.p2align 1
.Lw1:	.short 0x61, 0x62, 0
.Lw2:	.short 0x63, 0
"""


def test_wide_strings_get_their_merged_section_and_a_stated_bound(tmp_path):
    """UTF-16 strings are not split into pieces: measured from the merged section's start, within
    the bound the note gives (llvm-objdump's decoded targets are the truth)."""
    need("clang", "ld.lld", "llvm-objdump")
    (tmp_path / "wide.s").write_text(WIDE_S)
    obj = compile_aarch64(tmp_path / "wide.s", tmp_path / "wide.o")
    (tmp_path / "wide.lds").write_text(SCRIPT.replace("ENTRY(first)", "ENTRY(wide)"))
    link_noinhibit(tmp_path / "wide.lds", [obj], tmp_path / "wide.elf")
    result = scan(obj, ScanOptions(engine="relink", script=tmp_path / "wide.lds", include_ok=True))
    assert result.analysis.unresolved == 0 and len(result.analysis.records) == 2
    note = next(n for n in result.analysis.notes if "wide strings" in n)
    bound = int(re.search(r"off by up to (0x[0-9a-f]+) bytes", note).group(1), 16)
    linked = objdump_targets(tmp_path / "wide.elf")
    for record in result.analysis.records:
        assert abs(record.target.address - linked[record.site.address][1]) <= bound
