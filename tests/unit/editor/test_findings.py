"""Findings and fixes on a small kernel-style tree: ranges, macro-awareness, path mapping, and
rewrites that the assembler accepts and that turn into the intended relocations."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import apply_text_edits
from reachls.arch.aarch64 import ARCH, KINDS
from reachls.findings import PathMapper, source_findings
from reachls.record import Provenance, ReachRecord, Site, Status, Target
from reachls.record import SourceLocation
from toolchain import compile_aarch64, run

ASSEMBLER_H = """/* our adr_l, as the kernel's */
\t.macro\tadr_l, dst, sym
\tadrp\t\\dst, \\sym
\tadd\t\\dst, \\dst, :lo12:\\sym
\t.endm
\t.macro\tldr_l, dst, sym
\tadrp\t\\dst, \\sym
\tldr\t\\dst, [\\dst, :lo12:\\sym]
\t.endm
"""
ENTRY_S = """#include <asm/assembler.h>
\t.text
\t.globl\tf
f:
\tb.ne\tfar_away\t\t// retry later
\tadr\tx1, far_away
\tldr_l\tx2, far_away
\ttbz\tw3, #4, far_away
1:\tret
"""


#: These records stand for an artefact built after every edit a test makes: DWARF lines hold as they are.
BUILT_AFTER_EDITS = float("inf")


def _record(kind: str, file: Path, line: int, instruction: str) -> ReachRecord:
    relkind = next(k for k in KINDS.values() if k.short_name == kind)
    distance = relkind.hi * 2
    return ReachRecord(
        relkind,
        Site(".text", 0, 0, 0x1000, "f", 0, ".text", instruction, SourceLocation(str(file), line, 0)),
        Target("far_away", ".text.far_away", 2, 0, 0x1000 + distance, 0, ".text", None),
        distance, Status.OVERFLOW, Provenance("vmlinux.o", BUILT_AFTER_EDITS, "relocatable", "model"))


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "include" / "linux").mkdir(parents=True)
    (tmp_path / "arch/arm64/include/asm").mkdir(parents=True)
    (tmp_path / "arch/arm64/include/asm/assembler.h").write_text(ASSEMBLER_H)
    (tmp_path / "entry.S").write_text(ENTRY_S)
    return tmp_path


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n"), 1) if needle in line)


def _findings(tree: Path, *records: ReachRecord, mapper: PathMapper | None = None):
    found = source_findings(list(records), ARCH, mapper or PathMapper())
    return {f.span.line: f for f in found.by_path[tree / "entry.S"]}


def _apply(path: Path, fix) -> None:
    edits = [types.TextEdit(types.Range(types.Position(e.span.line - 1, e.span.start),
                                        types.Position(e.span.line - 1, e.span.end)), e.new_text) for e in fix.edits]
    path.write_text(apply_text_edits(path.read_text(), edits))


def test_branch_fixes_assemble_to_an_inverted_branch_over_b(tree: Path):
    entry = tree / "entry.S"
    records = [_record("CONDBR19", entry, _line_of(ENTRY_S, "b.ne"), "b.ne"),
               _record("TSTBR14", entry, _line_of(ENTRY_S, "tbz"), "tbz")]
    for record in records:
        entry.write_text(ENTRY_S)
        finding = _findings(tree, record)[record.site.location.line]
        assert entry.read_text().split("\n")[finding.span.line - 1][finding.span.start:].startswith(
            record.site.instruction)
        (fix,) = finding.fixes
        assert fix.preferred
        _apply(entry, fix)
        text = entry.read_text()
        assert "// retry later" in text and "\n\tb\tfar_away\n" in text
        obj = compile_aarch64(entry, tree / "entry.o", f"-I{tree}/arch/arm64/include", "-D__ASSEMBLY__")
        dump = run("llvm-objdump", "-dr", obj).stdout
        assert "R_AARCH64_JUMP26\tfar_away" in dump
        assert {"b.ne": "b.eq", "tbz": "tbnz"}[record.site.instruction] in dump


def test_adr_becomes_adr_l_only_where_the_macro_is_in_scope(tree: Path):
    entry = tree / "entry.S"
    record = _record("ADR_PREL_LO21", entry, _line_of(ENTRY_S, "adr\t"), "adr")
    (fix,) = _findings(tree, record)[record.site.location.line].fixes
    _apply(entry, fix)
    obj = compile_aarch64(entry, tree / "entry.o", f"-I{tree}/arch/arm64/include", "-D__ASSEMBLY__")
    assert "R_AARCH64_ADR_PREL_PG_HI21\tfar_away" in run("llvm-objdump", "-dr", obj).stdout
    entry.write_text(ENTRY_S.replace("#include <asm/assembler.h>\n", ""))
    assert _findings(tree, record)[record.site.location.line].fixes == ()


def test_a_site_inside_a_macro_invocation_gets_no_fix_but_says_why(tree: Path):
    record = _record("ADR_PREL_PG_HI21", tree / "entry.S", _line_of(ENTRY_S, "ldr_l"), "adrp")
    finding = _findings(tree, record)[record.site.location.line]
    assert finding.fixes == ()
    assert "inside the expansion of ldr_l" in finding.message


def test_build_machine_paths_are_mapped_and_missing_files_reported(tree: Path):
    line = _line_of(ENTRY_S, "b.ne")
    moved = _record("CONDBR19", Path("/build/linux/entry.S"), line, "b.ne")
    assert source_findings([moved], ARCH, PathMapper()).missing == {"/build/linux/entry.S"}
    found = _findings(tree, moved, mapper=PathMapper((("/build/linux", str(tree)),)))
    assert found[line].path == tree / "entry.S"
