"""The model engine measured against the real linker: ld.lld is the answer key, no address is typed in.

Small objects are built the way a kernel's vmlinux.o is (clang -ffunction-sections, then
`ld.lld -r`), linked with several scripts and without one, and every function the model places
must land exactly where ld.lld put it, as must every allocated output section.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from reachls.elf import ElfInput
from reachls.errors import ReachlsError
from reachls.arch import architecture_of
from reachls.layout.model import model_layout
from reachls.layout.script import (Assignment, InputSectionDescription, OutputSectionDescription,
                                   load_linker_script, parse_linker_script)
from toolchain import function_symbols

CLANG_FLAGS = ["--target=aarch64-linux-gnu", "-c", "-ffunction-sections", "-g", "-O2", "-fno-pic"]

MAIN_C = r"""
const char *msg(void) { return "hello"; }
int counter;
long jiffies_64;
int table[4] = {1, 2, 3, 4};
const int ctable[8] = {1, 2, 3, 4, 5, 6, 7, 8};
__attribute__((hot)) int hotf(int x) { return x * 3 + counter; }
__attribute__((cold)) int coldf(int x) { return x * 5 + table[x & 3]; }
__attribute__((aligned(64))) int aligned64(int x) { return ctable[x & 7]; }
int big(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * x ^ (s >> 3); return s; }
__attribute__((section(".init.text"))) int init_fn(int x) { return x + 7; }
__attribute__((section(".noinstr.text"))) int noinstr_fn(int x) { return x - 7; }
__attribute__((section(".exit.text"))) int c_exit_fn(int x) { return x * 11; }
static int helper_a(int x) { return x * x; }
int (*volatile keep_a)(int) = helper_a;
"""

OTHER_C = r"""
static const char *other(void) { return "world"; }
int bfunc(int y) { return y + 1 + (int)(long)other(); }
__attribute__((section(".entry.text"))) int entry_fn(int x) { return x ^ 1; }
__attribute__((aligned(128))) int aligned128(int x) { return x | 9; }
__attribute__((hot)) int hot_b(int x) { return x + 100; }
char big_buf[4096];
"""

ASM_S = r"""
.macro func name, section, align
.section \section,"ax",%progbits
.balign \align
.globl \name
.type \name,%function
\name: nop
 nop
 ret
.size \name, .-\name
.endm
func asm_one, .text.asm_one, 256
func head_fn, .head.text, 4
func hot_asm, .text.hot.asm, 32
func sort_c, .text.sortme.c, 8
func sort_a, .text.sortme.a, 64
func sort_b, .text.sortme.b, 16
func odd_fn, .odd.text, 4
func exit_fn, .exit.text, 4
.section .exitcall.exit,"aw"
.quad exit_fn
.section .data.rel.ro,"aw"
.balign 16
.quad asm_one
.section .discard.x,"a"
.byte 1
.section .sdata.x,"aw"
.balign 32
.quad 7
.section .init_array,"aw",%init_array
.balign 8
.quad asm_one
.section .rodata.cst16,"aM",%progbits,16
.balign 16
.quad 1, 2
.section .rodata.cst16.b,"aM",%progbits,16
.balign 16
.quad 3, 4
"""

COMMON_C = r"""
int common_var;
int common_big[100];
int f1(int x) { return x + common_var; }
__attribute__((aligned(32))) int f2(int x) { return x * common_big[3]; }
"""

SCRIPTS = {
    # shaped like arch/arm64/kernel/vmlinux.lds after preprocessing
    "kernel": r"""
OUTPUT_ARCH(aarch64)
ENTRY(_text)
jiffies = jiffies_64;
SECTIONS
{
 /DISCARD/ : { *(.exitcall.exit) *(.discard) *(.discard.*) *(.eh_frame) *(.exit.text) }
 . = ((((-(((1)) << ((((48))) - 1)))) + (0x08000000)));
 .head.text : { _text = .; KEEP(*(.head.text)) }
 .text : ALIGN(0x00010000) {
  _stext = .;
  . = ALIGN(8); __entry_text_start = .; *(.entry.text) __entry_text_end = .;
  . = ALIGN(8); *(.text.hot .text.hot.*) *(.text .text.*) *(.text.unlikely .text.unlikely.*)
  . = ALIGN(8); __noinstr_text_start = .; *(.noinstr.text) __noinstr_text_end = .;
  *(.gnu.warning)
 }
 . = ALIGN(0x00010000);
 _etext = .;
 . = ALIGN(((1 << (12))));
 .rodata : AT(ADDR(.rodata) - 0xffff800008000000) { __start_rodata = .; *(.rodata) *(.rodata.*) . = ALIGN(8); }
 .rodata1 : AT(ADDR(.rodata1) - 0) { *(.rodata1) }
 . = ALIGN(0x00010000);
 .init.text : { _sinittext = .; *(.init.text .init.text.*) _einittext = .; }
 .init.data : { *(.init.data) *(.init_array) }
 .data : ALIGN(4096) { _sdata = .; *(.data .data.*) *(.data.rel.ro) _edata = .; }
 .bss (NOLOAD) : ALIGN(16) { __bss_start = .; *(.bss .bss.*) *(COMMON) __bss_stop = .; }
 _end = .;
 .comment 0 : { *(.comment) }
 .debug_info 0 : { *(.debug_info) }
}
ASSERT(_etext - _stext > 0, "no text")
""",
    # only .text and .text.* of the kernel's hot/normal split; the rest are orphans
    "kernel_text_only": r"""
SECTIONS {
  . = 0xffffffc010000000;
  .text : { *(.text.hot .text.hot.*) *(.text .text.*) }
}
""",
    "features": r"""
/* ALIGN, KEEP, SORT, EXCLUDE_FILE, SUBALIGN, data, PROVIDE, explicit addresses, forward references */
ENTRY(msg)
base = 0x40000000;
SECTIONS
{
  . = base + 0x1234;
  .head.text : { KEEP(*(.head.text)) BYTE(1) SHORT(2) LONG(3) QUAD(4) }
  .sorted ALIGN(0x100) : {
    PROVIDE(__sorted_start = .);
    *(SORT_BY_NAME(.text.sortme.*))
    . += 0x30;
    *(SORT_BY_ALIGNMENT(.text.hot.*) .text.big)
    . = ALIGN(0x40);
  } =0xd503201f
  .text : SUBALIGN(32) {
    text_start = .;
    *(EXCLUDE_FILE(*nomatch.o) .text .text.*)
    *(SORT_NONE(.odd.text) .init.text)
  }
  text_size = SIZEOF(.text);
  . = MAX(., ADDR(.text) + 0x2000) + (text_size > 0x10 ? 0x80 : 0x40);
  .entry.text 0x40100003 : { *(.entry.text) }
  .rodata : ALIGN(64) { *(.rodata .rodata.* ) }
  .empty_kept : { . = . + 0x10; }
  .empty_gone : { *(.nothing_here) PROVIDE(__unused_provide = .); }
  . = ALIGN(MIN(0x1000, 0x2000));
  .data : { *(.data) *(.sdata.*) *(.data.*) }
  .data.after : { *(.init_array) LONG(ALIGNOF(.data)) }
  .bss : { *(.bss) *(COMMON) }
  /DISCARD/ : { *(.exitcall.exit) *(.exit.text) *(.discard.*) }
}
""",
    "orphans": r"""
SECTIONS
{
  . = 0x80000;
  .text : { *(.text) }
  sym_after_text = .;
  .data : { *(.data) }
  . = ALIGN(0x1000);
  end_marker = .;
}
""",
    "memory": r"""
MEMORY
{
  rom (rx) : ORIGIN = 0x08000000, LENGTH = 512K
  ram (rw!x) : ORIGIN = 0x20000000, LENGTH = 128K
}
SECTIONS
{
  .vectors : { KEEP(*(.head.text)) } > rom
  .text : { *(.text .text.* .init.text .entry.text .noinstr.text .odd.text .exit.text) } > rom
  .rodata : { *(.rodata .rodata.*) . = ALIGN(4); } > rom
  .data : { _sdata = .; *(.data .data.* .sdata.*) _edata = .; } > ram AT > rom
  .bss (NOLOAD) : { *(.bss .bss.*) *(COMMON) } > ram
}
""",
    "notes": r"""
SECTIONS {
  . = 0x100000;
  .text : { *(.text .text.*) }
  .notes : { __start_notes = .; KEEP(*(.note.*)) __stop_notes = .; }
  .rodata : { *(.rodata .rodata.*) }
  .tail : { *(.data .data.*) *(.bss) }
}
""",
}


def _run(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stderr}"


@pytest.fixture(scope="module")
def toolchain() -> None:
    if shutil.which("clang") is None or shutil.which("ld.lld") is None:
        pytest.skip("clang and ld.lld are needed to measure the model against the real linker")


def _relocatable(directory: Path, sources: dict[str, str], extra_flags: list[str]) -> Path:
    """Compile `sources` and combine them with `ld.lld -r`, as a kernel build makes vmlinux.o."""
    directory.mkdir()
    objects = []
    for name, text in sources.items():
        (directory / name).write_text(text)
        _run(["clang", *CLANG_FLAGS, *extra_flags, name, "-o", f"{name}.o"], directory)
        objects.append(f"{name}.o")
    _run(["ld.lld", "-r", *objects, "-o", "combined.o"], directory)
    return directory / "combined.o"


@pytest.fixture(scope="module")
def objects(toolchain: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layout")
    return {
        "mixed": _relocatable(root / "mixed", {"main.c": MAIN_C, "other.c": OTHER_C, "funcs.S": ASM_S}, []),
        # BTI notes become lld's synthetic .note.gnu.property; -fcommon leaves COMMON symbols
        "bti_common": _relocatable(root / "bti", {"common.c": COMMON_C, "main.c": MAIN_C},
                                   ["-fcommon", "-mbranch-protection=standard"]),
    }


def _link(obj: Path, script_name: str | None) -> Path:
    out = obj.parent / f"linked-{script_name or 'default'}"
    argv = ["ld.lld", str(obj), "-o", str(out)]
    if script_name is None:
        argv.append("-static")
    else:
        script = obj.parent / f"{script_name}.lds"
        script.write_text(SCRIPTS[script_name])
        argv += ["-T", str(script)]
    _run(argv, obj.parent)
    return out


def _linked_layout(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Function addresses and allocated section addresses of a linked image, straight from its ELF."""
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        functions = {sym.name: sym["st_value"] for sym in elf.get_section_by_name(".symtab").iter_symbols()
                     if sym["st_info"]["type"] == "STT_FUNC"}
        sections = {sec.name: sec["sh_addr"] for sec in elf.iter_sections() if sec["sh_flags"] & 0x2}
    return functions, sections


CASES = [("mixed", None), ("mixed", "kernel"), ("mixed", "kernel_text_only"), ("mixed", "features"),
         ("mixed", "orphans"), ("mixed", "memory"), ("bti_common", None), ("bti_common", "notes"),
         ("bti_common", "kernel")]


@pytest.mark.parametrize(("object_name", "script_name"), CASES)
def test_model_matches_lld(objects: dict[str, Path], object_name: str, script_name: str | None) -> None:
    obj_path = objects[object_name]
    expected_functions, expected_sections = _linked_layout(_link(obj_path, script_name))
    script = None
    if script_name is not None:
        script = load_linker_script(obj_path.parent / f"{script_name}.lds")
    with ElfInput(obj_path) as obj:
        placement = model_layout(obj, script, architecture_of(obj))
        functions = function_symbols(obj)
    names = [name for name, *_ in functions]
    assert len(names) == len(set(names)), "test sources must not repeat a function name"
    modelled = {name: placement.section_address[shndx] + value
                for name, shndx, value, _ in functions if shndx in placement.section_address}
    assert placement.engine == "model"
    assert len(modelled) >= 8
    assert {k: hex(v) for k, v in modelled.items()} == {k: hex(v) for k, v in expected_functions.items()}
    assert {k: hex(v) for k, v in placement.output_start.items()} == \
        {k: hex(v) for k, v in expected_sections.items()}


def test_model_reports_orphans_and_failed_asserts(objects: dict[str, Path]) -> None:
    script = parse_linker_script('SECTIONS { .text : { *(.text) } }\nASSERT(ADDR(.text) > 0x1000, "too low")\n',
                                 "t.lds")
    with ElfInput(objects["mixed"]) as obj:
        notes = model_layout(obj, script, architecture_of(obj)).notes
    assert any("orphan" in note for note in notes)
    assert any(note.startswith("ASSERT failed at t.lds:2") and "too low" in note for note in notes)


@pytest.mark.parametrize(("text", "message", "line"), [
    ("SECTIONS {\n .text : { *(.text.big) . = 0; }\n}\n", "location counter backward", 2),
    ("SECTIONS {\n .text : { *(.text) }\n . = missing_symbol + 4;\n}\n", "'missing_symbol' is not defined", 3),
    ("SECTIONS {\n .text : ALIGN(3) { *(.text) }\n}\n", "power of 2", 2),
])
def test_model_errors_name_the_script_line(objects: dict[str, Path], text: str, message: str, line: int) -> None:
    with ElfInput(objects["mixed"]) as obj, pytest.raises(ReachlsError) as caught:
        model_layout(obj, parse_linker_script(text, "bad.lds"), architecture_of(obj))
    assert message in str(caught.value)
    assert caught.value.where == f"bad.lds:{line}"


# --- the reader alone (no toolchain needed) ---------------------------------------------------


def test_reader_builds_a_plain_ast() -> None:
    script = parse_linker_script(SCRIPTS["kernel"], "vmlinux.lds")
    assert script.has_sections and script.entry == "_text"
    text = next(c for c in script.commands if isinstance(c, OutputSectionDescription) and c.name == ".text")
    descriptions = [c for c in text.commands if isinstance(c, InputSectionDescription)]
    assert descriptions[1].patterns[0].globs == (".text.hot", ".text.hot.*")
    assert text.align is not None and text.line == 10
    assert isinstance(script.commands[0], Assignment) and script.commands[0].name == "jiffies"
    features = parse_linker_script(SCRIPTS["features"], "f.lds")
    sorted_section = next(c for c in features.commands if getattr(c, "name", "") == ".sorted")
    patterns = [p for c in sorted_section.commands if isinstance(c, InputSectionDescription) for p in c.patterns]
    assert [(p.globs, p.sort_outer) for p in patterns] == [((".text.sortme.*",), "name"),
                                                           ((".text.hot.*",), "alignment"), ((".text.big",), None)]


@pytest.mark.parametrize(("text", "construct", "line"), [
    ("SECTIONS {\n .text : { *(.text) }\n OVERLAY : { .a { *(.a) } }\n}\n", "OVERLAY", 3),
    ("/* header */\nINCLUDE common.lds\n", "INCLUDE", 2),
    ("SECTIONS {\n .text : { *(.text) }\n} INSERT AFTER .data;\n", "INSERT", 3),
    ("SECTIONS\n{\n .text : { *(.text) }\n . = FROB(4);\n}\n", "FROB", 4),
    ("SECTIONS\n{\n .text : { . = SIZEOF_HEADERS; }\n}\n", "SIZEOF_HEADERS", 3),
    ("TARGET(binary)\n", "TARGET", 1),
    ("SECTIONS {\n .text : ONLY_IF_RO { *(.text) }\n}\n", "ONLY_IF_RO", 2),
])
def test_unsupported_constructs_are_refused_with_their_line(text: str, construct: str, line: int) -> None:
    with pytest.raises(ReachlsError) as caught:
        parse_linker_script(text, "x.lds")
    assert str(caught.value) == f"x.lds:{line}: unsupported linker script construct '{construct}'"


@pytest.mark.parametrize(("text", "message", "line"), [
    ("SECTIONS {\n .text : { *(.text) }\n/* never closed\n", "unterminated comment", 3),
    ("SECTIONS {\n .text : { *(.text) \n", "unexpected end of script", 3),
    ("SECTIONS {\n x = 0x1G;\n}\n", "malformed number '0x1G'", 2),
    ("SECTIONS {\n .text : { *(.text) } .data : {\n", "unexpected end of script", 3),
])
def test_malformed_scripts_give_one_line_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(ReachlsError) as caught:
        parse_linker_script(text, "x.lds")
    assert message in str(caught.value) and caught.value.where == f"x.lds:{line}"
    assert "\n" not in str(caught.value)


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(ReachlsError, match="linker script not found"):
        load_linker_script(tmp_path / "absent.lds")
