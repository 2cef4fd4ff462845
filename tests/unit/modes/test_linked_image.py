"""Linked-image mode: reach records decoded from a final image without relocations, against the toolchain.

The answer keys: llvm-objdump's disassembly of the same image (every short-reach instruction,
its target, per-class counts), the thunk and veneer symbols ld.lld and GNU ld write (llvm-nm),
and the relocation path of reachls on the same link made with --emit-relocs.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from reachls.arch.aarch64 import ARCH
from reachls.decode import LinkedImage, resolve_veneer
from reachls.elf import ElfInput
from reachls.pipeline import ScanOptions, scan
from reachls.record import Status
from toolchain import EXAMPLE_VARIANTS, compile_aarch64, need, nm_symbols, objdump_targets, run

KIND = {"b": "JUMP26", "bl": "CALL26", "cbz": "CONDBR19", "cbnz": "CONDBR19", "tbz": "TSTBR14", "tbnz": "TSTBR14",
        "adr": "ADR_PREL_LO21", "adrp": "ADR_PREL_PG_HI21", "ldr": "LD_PREL_LO19", "ldrsw": "LD_PREL_LO19",
        "prfm": "LD_PREL_LO19"}
#: What a relocation decodes as once linked: the GOT and _NC forms patch the same instructions.
DECODED_AS = {"ADR_PREL_PG_HI21_NC": "ADR_PREL_PG_HI21", "ADR_GOT_PAGE": "ADR_PREL_PG_HI21",
              "GOT_LD_PREL19": "LD_PREL_LO19"}


def objdump_short_reach(image: Path) -> dict[int, tuple[str, str, int]]:
    """Address → (kind, mnemonic, target) of every short-reach instruction llvm-objdump decodes."""
    found = {}
    for address, (mnemonic, target) in objdump_targets(image).items():
        kind = "CONDBR19" if mnemonic.startswith("b.") else KIND.get(mnemonic)
        if kind is None or target is None:  # not short-reach; or a register-addressed ldr/prfm
            continue
        found[address] = (kind, mnemonic, target)
    return found


def assert_decoding_matches_objdump(image: Path) -> list:
    """Every short-reach instruction objdump sees is decoded, with its target and distance; nothing else is."""
    expected = objdump_short_reach(image)
    result = scan(image, ScanOptions(include_ok=True))
    records = {r.site.address: r for r in result.analysis.records}
    assert len(records) == len(result.analysis.records), "one record per site"
    assert all((r.provenance.mode, r.provenance.engine) == ("linked", "decoded") for r in records.values())
    assert Counter(r.kind.short_name for r in records.values()) == Counter(k for k, _, _ in expected.values())
    assert set(records) == set(expected)
    assert result.analysis.total == len(expected)
    for address, (kind, mnemonic, target) in expected.items():
        record = records[address]
        assert record.kind.short_name == kind, (hex(address), mnemonic)
        assert record.site.instruction == ("ldr" if kind == "LD_PREL_LO19" else mnemonic), (hex(address), mnemonic)
        assert record.target.address == target, (hex(address), mnemonic, hex(record.target.address))
        pc = address & ~0xFFF if mnemonic == "adrp" else address
        assert record.distance == target - pc, (hex(address), mnemonic)
        assert record.kind.in_range(record.distance)
    return result.analysis.records


@pytest.fixture(scope="module")
def builds(example_builds: dict[str, Path]) -> dict[str, Path]:
    return example_builds


@pytest.mark.parametrize("variant", EXAMPLE_VARIANTS)
def test_every_short_reach_instruction_matches_objdump(builds, variant):
    # The overflow image holds truncated fields at its out-of-range sites: both decoders read
    # the same bits, so those agree too (they are only not what the source asked for).
    records = assert_decoding_matches_objdump(builds[variant] / "vmlinux.noinhibit")
    assert len(records) > 50


def test_json_lines_encode_the_records_json(builds):
    """The report writes `to_json_line` (kind and provenance encoded once per run): the same text as
    encoding each record's documented `to_json`."""
    records = scan(builds["at-risk"] / "vmlinux.noinhibit", ScanOptions(include_ok=True)).analysis.records
    assert len({r.kind for r in records}) > 3
    assert all(record.to_json_line() == json.dumps(record.to_json()) for record in records)


def test_at_risk_references_found_in_the_linked_image(builds):
    result = scan(builds["at-risk"] / "vmlinux.noinhibit")
    at_risk = [r for r in result.analysis.records if r.status is Status.AT_RISK]
    assert {(r.site.symbol, r.site.instruction, r.target.symbol) for r in at_risk} == {
        ("__guest_enter", "cbz", "hyp_panic"), ("__guest_enter", "adr", "hyp_panic"),
        ("__guest_exit", "cbz", "hyp_panic")}
    assert all(0.75 <= r.usage < 1 for r in at_risk)
    assert all(r.status is not Status.OK for r in result.analysis.records), "only what is not ok by default"
    assert result.analysis.counts[Status.OK] > 50
    assert not [r for r in scan(builds["safe"] / "vmlinux.noinhibit").analysis.records if r.status is Status.AT_RISK]


def _link(build: Path, output: str, *extra: str) -> Path:
    """The build's own final link (from .vmlinux.cmd), to another output, with extra flags."""
    line = (build / ".vmlinux.cmd").read_text().split(":=", 1)[1]
    argv = shlex.split(line)
    argv[argv.index("-o") + 1] = output
    run(*argv, "--noinhibit-exec", *extra, cwd=build, check=False)
    assert (build / output).is_file()
    return build / output


NOP = 0xD503201F


def _word_at(image: Path) -> Callable[[int], int]:
    """The little-endian word at an address of the image's code sections."""
    with ElfInput(image) as elf:
        code = [(s.addr, elf.section_data(s.index)) for s in elf.sections if s.is_code]

    def word(address: int) -> int:
        start, data = next((start, data) for start, data in code if start <= address < start + len(data))
        return int.from_bytes(data[address - start:address - start + 4], "little")
    return word


@pytest.mark.parametrize("variant", EXAMPLE_VARIANTS)
def test_decoded_distances_equal_the_relocation_path(builds, variant):
    """vmlinux.o linked twice, with and without --emit-relocs: both paths give the same distances."""
    with_relocs = _link(builds[variant], "vmlinux.relocs", "--emit-relocs")
    plain = _link(builds[variant], "vmlinux.plain")
    with ElfInput(with_relocs) as a, ElfInput(plain) as b:
        code = [s for s in a.sections if s.is_code]
        assert [(s.name, s.addr) for s in code] == [(s.name, s.addr) for s in b.sections if s.is_code]
        assert all(a.section_data(s.index) == b.section_data(s.index) for s in code)
    relocated = scan(with_relocs, ScanOptions(include_ok=True)).analysis.records
    decoded = {r.site.address: r for r in scan(plain, ScanOptions(include_ok=True)).analysis.records}
    assert all(r.provenance.engine == "linked" for r in relocated)
    assert all(r.provenance.engine == "decoded" for r in decoded.values())
    word = _word_at(plain)
    checked = 0
    for record in relocated:
        kind = DECODED_AS.get(record.kind.short_name, record.kind.short_name)
        if kind not in KIND.values() or record.status is Status.OVERFLOW:
            continue  # data relocations; and an overflow's field holds whatever the linker truncated
        if word(record.site.address) == NOP and kind == "ADR_PREL_PG_HI21":
            continue  # ld.lld relaxed this adrp (+add) to nop (+adr)
        twin = decoded[record.site.address]
        assert (twin.kind.short_name, twin.distance, twin.status) == (kind, record.distance, record.status), record
        assert (twin.site.offset, twin.site.symbol, twin.site.instruction) == (
            record.site.offset, record.site.symbol, record.site.instruction), record
        expected = record.target.address & ~0xFFF if record.kind.formula == "page" else record.target.address
        assert twin.target.address == expected
        checked += 1
    assert checked >= 20


def test_data_in_code_is_not_decoded(tmp_path):
    """Words in a `$d` region of .text are data, even when they look like a bl or b.cond."""
    (tmp_path / "data.S").write_text("\n".join([
        ".text", ".globl _start", "_start:", "  bl helper", "  ldr x0, table", "  b 1f",
        "table:", "  .word 0x94000010", "  .word 0x54000041", "  .quad 0x17ffffff14000002",
        "1:", "  cbz x0, _start", "  adrp x1, table", "  ret",
        "helper:", "  tbnz w0, #2, _start", "  ret", ""]))
    obj = compile_aarch64(tmp_path / "data.S", tmp_path / "data.o")
    need("ld.lld")
    run("ld.lld", "-e", "_start", "-Ttext=0xffff800010000000", obj, "-o", tmp_path / "data.elf")
    records = assert_decoding_matches_objdump(tmp_path / "data.elf")
    table = nm_symbols(tmp_path / "data.elf")["table"]
    assert not [r for r in records if table <= r.site.address < table + 16]
    assert len(records) == 6


LINKERS = {
    # name: (linker argv prefix, far-section address, extra flags, veneer symbol pattern for far_func)
    "lld-abslong": (["ld.lld"], 0x30000000, [], "__AArch64AbsLongThunk_{}"),
    "lld-adrp": (["ld.lld"], 0x30000000, ["-pie"], "__AArch64ADRPThunk_{}"),
    "lld-abslong-8g": (["ld.lld"], 0x200000000, [], "__AArch64AbsLongThunk_{}"),
    "gnu-adrp": (["aarch64-linux-gnu-ld"], 0x30000000, [], "__{}_veneer"),
    "gnu-long": (["aarch64-linux-gnu-ld"], 0x200000000, [], "__{}_veneer"),
}


@pytest.mark.parametrize("linker", sorted(LINKERS))
def test_branch_through_a_veneer(tmp_path, linker):
    """`bl`/`b` to a function > 128 MiB away: the linker inserts a veneer; the record says so."""
    argv, far, flags, veneer_name = LINKERS[linker]
    need(argv[0])
    (tmp_path / "far.S").write_text("\n".join([
        '.section .text.near,"ax"', ".globl _start", ".type _start, %function", "_start:",
        "  bl far_func", "  b far_func", "  bl near_func", "  ret",
        ".type near_func, %function", "near_func:", "  ret",
        '.section .text.far,"ax"', ".globl far_func", ".type far_func, %function", "far_func:",
        "  bl _start", "  ret", ""]))
    (tmp_path / "far.lds").write_text(
        "SECTIONS {\n  .text 0x10000000 : AT(0x10000) { *(.text.near) }\n"
        f"  .far {far:#x} : AT(0x20000) {{ *(.text.far) }}\n}}\n")
    obj = compile_aarch64(tmp_path / "far.S", tmp_path / "far.o")
    image = tmp_path / "far.elf"
    run(*argv, *flags, "-T", tmp_path / "far.lds", obj, "-o", image)
    assert image.stat().st_size < 1 << 20
    symbols = nm_symbols(image)
    to_far, to_start = symbols[veneer_name.format("far_func")], symbols[veneer_name.format("_start")]

    records = assert_decoding_matches_objdump(image)
    veneers = {(r.site.address, r.site.instruction): r for r in records if r.status is Status.VENEER}
    start = symbols["_start"]
    assert {k: (r.target.address, r.target.symbol) for k, r in veneers.items()} == {
        (start, "bl"): (to_far, "far_func"), (start + 4, "b"): (to_far, "far_func"),
        (symbols["far_func"], "bl"): (to_start, "_start")}
    assert {r.kind.short_name for r in veneers.values()} == {"CALL26", "JUMP26"}
    near = next(r for r in records if r.site.address == start + 8)
    assert (near.status, near.target.symbol) == (Status.OK, "near_func")

    reported = scan(image).analysis.records  # by default: only what is not ok
    assert sorted(r.site.address for r in reported) == sorted(a for a, _ in veneers)
    with ElfInput(image) as elf:  # the final target is decoded from the veneer's code, not its name
        linked = LinkedImage(elf)
        assert resolve_veneer(linked, ARCH.decoder, to_far) == symbols["far_func"]
        assert resolve_veneer(linked, ARCH.decoder, to_start) == start
