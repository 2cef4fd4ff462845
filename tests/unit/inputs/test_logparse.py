"""The linker-log parser on literal text: lines as ld.lld 14 and GNU ld 2.40 printed them for the
example's overflow build, the real kernel's and small links of our own (copied from their output),
each field read back as the line spells it."""

from __future__ import annotations

from reachls.logparse import GNU, LLD, MAX_LINE, looks_like_log, parse_log

LLD_LOG = """\
ld.lld: error: vmlinux.o:(function __guest_enter: .text+0x0): relocation R_AARCH64_CONDBR19 out of range: 2017888 is not in [-1048576, 1048575]; references hyp_panic
>>> referenced by entry.S:30 (/work/main/examples/hyp-lto/arch/arm64/kvm/hyp/entry.S:30)
>>> defined in vmlinux.o

ld.lld: error: vmlinux.o:(.text+0x300): relocation R_AARCH64_ADR_PREL_LO21 out of range: 3358336 is not in [-1048576, 1048575]; references jiffies_64
>>> referenced by reachls_out_of_range.S:12 (/root/.cache/reachls/kernel/24dbbdd998c93768/src/arch/arm64/kernel/reachls_out_of_range.S:12)
>>> defined in vmlinux.o
"""

GNU_LOG = """\
a.o: in function `_start':
/tmp/gl/a.S:4:(.text+0x0): relocation truncated to fit: R_AARCH64_CONDBR19 against symbol `far' defined in .far section in a.o
aarch64-linux-gnu-ld: u.o: in function `f':
u.c:(.text+0x8): undefined reference to `far'
"""


def test_lld_lines_give_object_section_offset_type_distance_and_symbol() -> None:
    first, second = parse_log(LLD_LOG).overflows
    assert (first.linker, first.line, first.obj, first.section, first.offset) == (LLD, 1, "vmlinux.o", ".text", 0)
    assert (first.type, first.distance, first.bounds) == ("R_AARCH64_CONDBR19", 2017888, (-1048576, 1048575))
    assert (first.symbol, first.function, first.defined_in) == ("hyp_panic", "__guest_enter", "vmlinux.o")
    assert first.printed_source == ("/work/main/examples/hyp-lto/arch/arm64/kvm/hyp/entry.S", 30)
    assert (second.line, second.offset, second.function) == (5, 0x300, None)
    assert (second.type, second.distance, second.symbol) == ("R_AARCH64_ADR_PREL_LO21", 3358336, "jiffies_64")


def test_gnu_lines_give_the_site_and_target_but_no_distance() -> None:
    parsed = parse_log(GNU_LOG)
    (overflow,) = parsed.overflows
    assert (overflow.linker, overflow.line, overflow.obj, overflow.section, overflow.offset) == (GNU, 2, "a.o", ".text", 0)
    assert (overflow.type, overflow.symbol, overflow.distance) == ("R_AARCH64_CONDBR19", "far", None)
    assert (overflow.function, overflow.target_section, overflow.defined_in) == ("_start", ".far", "a.o")
    assert overflow.printed_source == ("/tmp/gl/a.S", 4)
    assert parsed.undefined == ("far",)


def test_an_overlong_line_is_counted_never_matched() -> None:
    line = LLD_LOG.splitlines()[0]
    parsed = parse_log(line.replace("hyp_panic", "x" * MAX_LINE) + "\n" + LLD_LOG)
    assert len(parsed.overflows) == 2 and parsed.skipped == (1,) and parsed.lost == (1,)


def test_a_log_is_told_from_other_text(tmp_path) -> None:
    (log := tmp_path / "build.log").write_text("  CC      init/main.o\n" + GNU_LOG)
    (other := tmp_path / "notes.txt").write_text("relocation out of range is what this tool finds\n")
    assert looks_like_log(log) and not looks_like_log(other)
