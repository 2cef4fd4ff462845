"""Bad input gets one clear line and exit status 2, never a traceback; no DWARF still gives results."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from toolchain import compile_aarch64, need, run

SOURCE = """
__attribute__((noinline)) void far_away(void) { __asm__ volatile("nop"); }
void caller(int x) { if (x) far_away(); }
"""


def reachls(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reachls.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_object(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    (tmp / "small.c").write_text(SOURCE)
    return compile_aarch64(tmp / "small.c", tmp / "small.o", "-O1", "-ffunction-sections")


def test_not_elf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not an object file\n")
    assert_one_line_error(reachls("scan", path), str(path), "not an ELF file")


def test_missing_path(tmp_path):
    assert_one_line_error(reachls("scan", tmp_path / "nope.o"), "no such file")


def test_empty_build_dir(tmp_path):
    assert_one_line_error(reachls("scan", tmp_path), "no vmlinux.o or vmlinux")


@pytest.mark.parametrize("keep", [20, 0.5])
def test_truncated_elf(small_object, tmp_path, keep):
    data = small_object.read_bytes()
    cut = tmp_path / "cut.o"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    assert_one_line_error(reachls("scan", cut, "--engine", "model"), str(cut), "truncated")


def test_wrong_architecture(tmp_path):
    need("clang")
    (tmp_path / "m.c").write_text(SOURCE)
    run("clang", "--target=s390x-linux-gnu", "-c", tmp_path / "m.c", "-o", tmp_path / "m.o")
    assert_one_line_error(reachls("scan", tmp_path / "m.o"), "unsupported architecture EM_S390")


def test_x86_64_says_plainly_there_is_nothing_to_report(tmp_path):
    need("clang")
    (tmp_path / "x.c").write_text(SOURCE)
    run("clang", "--target=x86_64-linux-gnu", "-c", tmp_path / "x.c", "-o", tmp_path / "x.o")
    result = reachls("scan", tmp_path / "x.o", "--engine", "model")
    assert result.returncode == 0, result.stderr
    assert "x86-64 has no short-reach" in result.stdout


def test_no_linker_for_relink(small_object):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    assert_one_line_error(reachls("scan", small_object, "--engine", "relink", env=env), "no ld.lld found")


def test_unknown_script_construct(small_object, tmp_path):
    script = tmp_path / "bad.lds"
    script.write_text("SECTIONS {\n  .text : { *(.text*) }\n  FROBNICATE(3)\n}\n")
    assert_one_line_error(reachls("scan", small_object, "--engine", "model", "--script", script),
                          f"{script}:3", "FROBNICATE")


def test_missing_script(small_object, tmp_path):
    assert_one_line_error(reachls("scan", small_object, "--script", tmp_path / "gone.lds"), "linker script not found")


def test_no_dwarf_still_gives_symbol_and_offset(tmp_path):
    need("clang")
    (tmp_path / "nodebug.c").write_text(SOURCE)
    run("clang", "--target=aarch64-linux-gnu", "-O1", "-ffunction-sections", "-c", tmp_path / "nodebug.c",
        "-o", tmp_path / "nodebug.o")
    result = reachls("scan", tmp_path / "nodebug.o", "--engine", "model", "--all", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert any("no DWARF" in note for note in document["notes"])
    calls = [r for r in document["records"] if r["target"]["symbol"] == "far_away"]
    assert calls and all(r["site"]["symbol"] == "caller" and r["site"]["source"] is None for r in calls)


def test_relocations_for_a_section_that_does_not_exist(small_object, tmp_path):
    """A relocation table whose sh_info names no section is bad input, not a table silently skipped."""
    need("llvm-readelf")
    header = run("llvm-readelf", "-h", small_object).stdout
    table = int(re.search(r"Start of section headers:\s+(\d+)", header).group(1))
    entry = int(re.search(r"Size of section headers:\s+(\d+)", header).group(1))
    count = int(re.search(r"Number of section headers:\s+(\d+)", header).group(1))
    index = next(int(m.group(1)) for line in run("llvm-readelf", "-S", "--wide", small_object).stdout.splitlines()
                 if (m := re.match(r"^\s*\[\s*(\d+)\]\s+\.rela\.text\.caller\s", line)))
    data = bytearray(small_object.read_bytes())
    at = table + index * entry + 44  # Elf64_Shdr.sh_info
    data[at:at + 4] = (count + 7).to_bytes(4, "little")
    broken = tmp_path / "broken.o"
    broken.write_bytes(bytes(data))
    assert_one_line_error(reachls("scan", broken, "--engine", "model"), str(broken), ".rela.text.caller",
                          f"section {count + 7}")


def _extended_header(data: bytearray, count: int | None) -> bytearray:
    """Rewrite an ELF64 little-endian header as extended numbering writes it for more than 0xff00
    sections: e_shnum 0 and e_shstrndx SHN_XINDEX, the real values (`count`, default the true
    one) in section 0's sh_size and sh_link."""
    shoff, shnum, shstrndx = struct.unpack_from("<Q", data, 0x28)[0], *struct.unpack_from("<HH", data, 0x3C)
    struct.pack_into("<HH", data, 0x3C, 0, 0xFFFF)
    struct.pack_into("<Q", data, shoff + 0x20, shnum if count is None else count)
    struct.pack_into("<I", data, shoff + 0x28, shstrndx)
    return data


def _with_symbol_section(data: bytearray, name: str, shndx: int) -> bytearray:
    """Set st_shndx of symbol `name` (ELF64 little-endian)."""
    with io.BytesIO(bytes(data)) as stream:
        symtab = ELFFile(stream).get_section_by_name(".symtab")
        index = next(i for i, sym in enumerate(symtab.iter_symbols()) if sym.name == name)
        offset = symtab["sh_offset"] + index * symtab["sh_entsize"] + 6
    struct.pack_into("<H", data, offset, shndx)
    return data


def test_section_count_held_by_section_zero(small_object, tmp_path):
    """Read as the same object: same sections (llvm-readelf, the oracle), same records and layout."""
    need("llvm-readelf", "ld.lld")
    extended = tmp_path / "extended.o"
    extended.write_bytes(_extended_header(bytearray(small_object.read_bytes()), None))
    listings = [run("llvm-readelf", "-S", "--wide", path).stdout for path in (small_object, extended)]
    assert listings[0].split("[ 1]")[1] == listings[1].split("[ 1]")[1]  # section 0 holds the count
    assert "Number of section headers:         0" in run("llvm-readelf", "-h", extended).stdout
    for engine in ("relink", "model"):
        documents = [json.loads(reachls("scan", path, "--all", "--format", "json", "--engine", engine).stdout)
                     for path in (small_object, extended)]
        layouts = [json.loads(reachls("layout", path, "--format", "json", "--engine", engine).stdout)
                   for path in (small_object, extended)]
        records = [[{k: v for k, v in r.items() if k != "provenance"} for r in d["records"]] for d in documents]
        assert records[0] and records[0] == records[1]
        assert layouts[0]["functions"] and layouts[0]["functions"] == layouts[1]["functions"]


def test_section_zero_without_the_count(small_object, tmp_path):
    bad = tmp_path / "nocount.o"
    bad.write_bytes(_extended_header(bytearray(small_object.read_bytes()), 0))
    assert_one_line_error(reachls("scan", bad, "--engine", "model"), str(bad), "section name table")


def test_symbol_in_an_extended_section_without_its_table(small_object, tmp_path):
    bad = tmp_path / "noxindex.o"
    bad.write_bytes(_with_symbol_section(bytearray(small_object.read_bytes()), "far_away", 0xFFFF))
    assert_one_line_error(reachls("scan", bad, "--engine", "model"), str(bad), "SHN_XINDEX", "SHT_SYMTAB_SHNDX")


def test_symbol_in_a_section_past_the_last(small_object, tmp_path):
    bad = tmp_path / "beyond.o"
    bad.write_bytes(_with_symbol_section(bytearray(small_object.read_bytes()), "far_away", 0xFE00))
    assert_one_line_error(reachls("layout", bad, "--engine", "model"), str(bad), "section 65024")


# A symbol and a DWARF file name holding bytes that are not UTF-8 (clang writes the `.file` string's
# `\377` as the byte 0xff, and a quoted symbol name's raw bytes as they are).
NOT_UTF8_SOURCE = (b'.file 1 "/src/dir\\377" "name\\376.S"\n.text\n.globl "far\xff\xfe"\n'
                   b'.type "far\xff\xfe", %function\n"far\xff\xfe":\n.loc 1 5\n  nop\n  ret\n'
                   b'.globl caller\n.type caller, %function\ncaller:\n.loc 1 10\n  cbz x0, "far\xff\xfe"\n  ret\n')


def _shown(raw: bytes) -> str:
    """How a report writes a name: each byte that is not UTF-8 as `\\xNN`."""
    return raw.decode("utf-8", "backslashreplace")


def test_names_that_are_not_utf8_are_written_on_a_strict_utf8_stdout(tmp_path):
    """Every report (text, JSON, layout) of an object whose symbol, DWARF file names and path are
    not UTF-8, on the stdout of most desktop locales (strict UTF-8): written, and the JSON valid."""
    need("clang", "llvm-nm", "llvm-dwarfdump")
    directory = tmp_path / os.fsdecode(b"out\xfd")
    directory.mkdir()
    (directory / "v.s").write_bytes(NOT_UTF8_SOURCE)
    obj = compile_aarch64(directory / "v.s", directory / "v.o")
    raw_symbols = subprocess.run(["llvm-nm", obj], capture_output=True, check=True).stdout
    [far] = [line.split()[-1] for line in raw_symbols.splitlines() if line.split()[-1].startswith(b"far")]
    assert far == b"far\xff\xfe"
    line_table = subprocess.run(["llvm-dwarfdump", "--debug-line", obj], capture_output=True, check=True).stdout
    octal = re.compile(rb"\\([0-7]{3})")  # llvm-dwarfdump prints such a byte as an octal escape
    names = list(dict.fromkeys(octal.sub(lambda m: bytes([int(m[1], 8)]), m[1]) for m in re.finditer(
        rb'(?:include_directories\[\s*1\] =|name:) "([^"]*)"', line_table)))
    assert names == [b"/src/dir\xff", b"name\xfe.S"], names
    source = _shown(names[0] + b"/" + names[1])
    symbol_forms = {_shown(far), far.decode("utf-8", "replace")}  # kept as bytes, or replaced, by the reader
    strict = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}

    text = reachls("scan", obj, "--all", "--engine", "model", env=strict)
    assert text.returncode == 0 and not text.stderr, text.stderr
    assert f"{source}:10" in text.stdout and _shown(bytes(obj)) in text.stdout.splitlines()[0]
    assert any(f"cbz → {symbol} " in text.stdout for symbol in symbol_forms), text.stdout

    scanned = reachls("scan", obj, "--all", "--engine", "model", "--format", "json", env=strict)
    assert scanned.returncode == 0 and not scanned.stderr, scanned.stderr
    document = json.loads(scanned.stdout)
    json.dumps(document, ensure_ascii=False).encode("utf-8")  # every string is one UTF-8 can hold
    [record] = document["records"]
    assert (record["site"]["source"]["file"], record["target"]["source"]["file"]) == (source, source)
    assert record["target"]["symbol"] in symbol_forms
    assert document["artefact"] == _shown(bytes(obj))

    ascii_only = reachls("scan", obj, "--all", "--engine", "model", env={**strict, "PYTHONIOENCODING": "ascii:strict"})
    assert ascii_only.returncode == 0 and not ascii_only.stderr, ascii_only.stderr
    assert f"{source}:10" in ascii_only.stdout and "cbz \\u2192 far" in ascii_only.stdout  # `→` escaped

    for layout in (("layout", obj, "--engine", "model"), ("layout", obj, "--engine", "model", "--format", "json")):
        listed = reachls(*layout, env=strict)
        assert listed.returncode == 0 and not listed.stderr, listed.stderr
        shown = {f["name"] for f in json.loads(listed.stdout)["functions"]} if "json" in layout else listed.stdout
        assert any(symbol in shown for symbol in symbol_forms), shown
