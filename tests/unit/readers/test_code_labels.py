"""`reachls layout` lists every code label: function symbols and the untyped labels of assembly
entry points (SYM_CODE_START, SYM_INNER_LABEL), not mapping symbols; llvm-nm and llvm-readelf on
the linked image are the oracle for names, addresses and types."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain import compile_aarch64, link_noinhibit, run

# As the kernel's linkage macros expand: SYM_CODE_START(vectors) is `.globl vectors; .balign 4;
# vectors:` (no .type), SYM_INNER_LABEL a bare global label, SYM_CODE_START_LOCAL a local one;
# SYM_FUNC_START adds `.type f, %function`. A literal pool makes `$d` mapping symbols.
ENTRY_S = r"""
	.text
	.globl	vectors
	.balign	2048
vectors:
	b	el1_sync
	.balign	128
el1_sync_local:
	b	el1_sync
	.balign	128
	.globl	el1_sync
el1_sync:
	mov	x0, #1
	.globl	__guest_exit
__guest_exit:
	ldr	x1, =0x1234567890
	ret
	.ltorg

	.section .text.helper, "ax", %progbits
	.globl	helper
	.type	helper, %function
helper:
	bl	vectors
	.word	0x12345678
	ret
	.size	helper, . - helper

	.data
	.globl	not_code
not_code:
	.quad	vectors
"""
SCRIPT = "SECTIONS {\n  . = 0x10000;\n  .text : { *(.text .text.*) }\n  .data : { *(.data) }\n}\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("labels")
    (tmp / "entry.S").write_text(ENTRY_S)
    (tmp / "labels.lds").write_text(SCRIPT)
    obj = compile_aarch64(tmp / "entry.S", tmp / "entry.o")
    link_noinhibit(tmp / "labels.lds", [obj], tmp / "entry.elf")
    return obj, tmp / "labels.lds", tmp / "entry.elf"


def _linked_code_labels(image: Path) -> dict[str, tuple[int, str]]:
    """name → (address, `func` or `notype`) of each text symbol llvm-nm lists, mapping symbols aside."""
    text = set()
    for line in run("llvm-nm", "--defined-only", "--special-syms", image).stdout.splitlines():
        _, kind, name = line.split()
        if kind in "Tt" and not name.startswith("$"):
            text.add(name)
    types = {"FUNC": "func", "NOTYPE": "notype"}
    labels = {}
    for line in run("llvm-readelf", "-s", "--wide", image).stdout.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[7] in text:
            labels[parts[7]] = (int(parts[1], 16), types[parts[3]])
    return labels


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_layout_lists_entry_points_and_says_which_are_not_functions(built, engine):
    obj, script, image = built
    expected = _linked_code_labels(image)
    assert {name for name, (_, kind) in expected.items() if kind == "notype"} == \
        {"vectors", "el1_sync_local", "el1_sync", "__guest_exit"}
    out = subprocess.run([sys.executable, "-m", "reachls.cli", "layout", str(obj), "--script", str(script),
                          "--engine", engine, "--format", "json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listed = {f["name"]: (f["address"], f["type"]) for f in json.loads(out.stdout)["functions"]}
    assert listed == expected
    text = subprocess.run([sys.executable, "-m", "reachls.cli", "layout", str(obj), "--script", str(script),
                           "--engine", engine], capture_output=True, text=True).stdout
    assert [line.split()[-2] for line in text.splitlines() if line.endswith("  notype")] == \
        ["vectors", "el1_sync_local", "el1_sync", "__guest_exit"]
