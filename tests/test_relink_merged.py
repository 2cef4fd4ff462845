"""Relink and merged (SHF_MERGE) sections: ld.lld's map lists only the merged result, yet every
reference the model engine places, the relink places too, within the bound its note states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from reachls.pipeline import ScanOptions, scan
from toolchain import compile_aarch64, link_noinhibit, need, objdump_targets, run

# Two files with strings, one of them shared (deduplicated by the link), a kernel-style
# __ksymtab_strings, and 8-byte constants; ADR and LDR (literal) reach them, so llvm-objdump
# decodes the exact address each reference got.
PART_S = """
	.section .text.{name},"ax",%progbits
	.globl {name}
	.type {name},%function
{name}:
	adr x0, .Lshared
	adr x1, .Lown
	adr x2, .Lksym
	ldr x3, .Lconst
	ret
	.size {name}, . - {name}
	.section .rodata.str1.1,"aMS",@progbits,1
.Lown:	.asciz "only in {name}, a longer string than the others"
.Lshared:	.asciz "in both files"
	.section __ksymtab_strings,"aMS",@progbits,1
.Lksym:	.asciz "{name}"
	.section .rodata.cst8,"aM",@progbits,8
	.p2align 3
.Lconst:	.quad {value}
"""
SCRIPT = """ENTRY(first)
SECTIONS {
  . = 0x10000;
  .text : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
  __ksymtab_strings : { *(__ksymtab_strings) }
}
"""
MERGED = {".rodata", "__ksymtab_strings"}


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, Path, Path]:
    need("clang", "ld.lld", "llvm-objdump")
    tmp = tmp_path_factory.mktemp("merged")
    parts = []
    for name, value in (("first", 1), ("second", 2)):
        (tmp / f"{name}.s").write_text(PART_S.format(name=name, value=value))
        parts.append(compile_aarch64(tmp / f"{name}.s", tmp / f"{name}.o"))
    run("ld.lld", "-r", *parts, "-o", tmp / "merged.o")
    (tmp / "merged.lds").write_text(SCRIPT)
    link_noinhibit(tmp / "merged.lds", [tmp / "merged.o"], tmp / "merged.elf")
    return tmp / "merged.o", tmp / "merged.lds", tmp / "merged.elf"


def test_relink_places_what_the_model_places_within_the_stated_bound(build):
    obj, script, image = build
    results = {engine: scan(obj, ScanOptions(engine=engine, script=script, include_ok=True))
               for engine in ("relink", "model")}
    assert results["relink"].analysis.unresolved == results["model"].analysis.unresolved == 0
    sites = {engine: {(r.site.address, r.kind.name) for r in result.analysis.records}
             for engine, result in results.items()}
    assert sites["relink"] == sites["model"] and len(sites["relink"]) == 8
    with open(image, "rb") as stream:
        outputs = {s.name: (s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in ELFFile(stream).iter_sections()
                   if s.name in MERGED}
    notes = [n for n in results["relink"].analysis.notes if n.startswith("merged ")]
    bounds = {re.search(r"into (\S+) at", n).group(1): int(re.search(r"off by up to (0x[0-9a-f]+)", n).group(1), 16)
              for n in notes}
    assert set(bounds) == MERGED
    linked = objdump_targets(image)
    for record in results["relink"].analysis.records:
        true_target = linked[record.site.address][1]
        output = record.target.output_section
        lo, hi = outputs[output]
        assert lo <= true_target < hi, record
        assert abs(record.target.address - true_target) <= bounds[output], (record, hex(true_target))
