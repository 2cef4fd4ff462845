"""The GNU as statement parser on kernel-style `.S` text: kinds, labels, operands, comments and
exact spans, since diagnostics and quick fixes are placed with them."""

from __future__ import annotations

import re

import pytest
from reachls.asmfile import AsmFile, AsmStatement
from reachls.edits import Span
from reachls.arch import aarch64, riscv64
from reachls.arch import arm as arm_arch
from reachls.sources.asm import parse_asm

A64 = aarch64.ARCH.asm_dialect

# A made-up excerpt in the style of arch/arm64/kvm/hyp/entry.S.
ENTRY_S = r"""/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Hypervisor entry, written for these tests.
 */
#include <linux/linkage.h>
#include <asm/alternative.h>
#include "hyp_macros.h"

#define CPU_XREG_OFFSET(x)	(CPU_USER_PT_REGS + 8*x)
#define SAVE_PAIR(a, b, off)	\
	stp	a, b, [sp, #off];	\
	nop

	.macro	adr_l, dst, sym
	adrp	\dst, \sym
	add	\dst, \dst, :lo12:\sym
	.endm

	.macro save_callee_saved_regs ctxt
	stp	x19, x20, [\ctxt, #CPU_XREG_OFFSET(19)]
1:	b.ne	1b
	.endm

	.text
	.pushsection	.hyp.text, "ax"

SYM_FUNC_START(__guest_enter)
	// x0: vcpu, x1: host context
	save_callee_saved_regs x1
	adr_l	x2, kvm_hyp_ctxt
#ifdef CONFIG_ARM64_PTR_AUTH
	ldr	x3, [x0, #VCPU_FLAGS]
#else
	mov	x3, xzr
#endif
1:	cbz	x0, hyp_panic		// no vcpu: give up
	adr	x1, hyp_panic; ldr x2, [x1]
	tbz	x3, #5, 2f
	ALTERNATIVE("nop", "dmb ish", ARM64_WORKAROUND_1508412)
	ALTERNATIVE_CB("b	.Lskip_\@", ARM64_ALWAYS_SYSTEM,
		       spectre_bhb_patch_loop_iter)
	/*
	 * A comment
	 * over several lines; with b 1f inside.
	 */
	ld1	{v0.16b-v3.16b}, [x0], #64
	ldp	x4, x5, [x2, #CPU_XREG_OFFSET(4)]	/* restore */
2:	b.ne	1b
3: 4:	eret
	ldr_l	x6, kimage_voffset
	ASM_BUG()
SYM_FUNC_END(__guest_enter)

	.popsection
	.subsection 1
.Lret_to_host:
	bl	__kvm_handle_stub_hvc
	.previous
	.globl	__hyp_stub_vectors
"""
LINES = ENTRY_S.split("\n")


@pytest.fixture(scope="module")
def entry() -> AsmFile:
    return parse_asm(ENTRY_S, A64, known_macros=["ldr_l"])


def line_of(needle: str) -> int:
    """1-based line of the only line containing `needle`."""
    (hit,) = [n for n, text in enumerate(LINES, 1) if needle in text]
    return hit


def at(span: Span, text: str = ENTRY_S) -> str:
    return text.split("\n")[span.line - 1][span.start : span.end]


def only(f: AsmFile, needle: str) -> AsmStatement:
    (s,) = f.statements_on(line_of(needle))
    return s


def test_preprocessor_lines(entry: AsmFile) -> None:
    pp = [s for s in entry.statements if s.kind == "preprocessor"]
    assert [s.mnemonic for s in pp] == ["#include"] * 3 + ["#define"] * 2 + ["#ifdef", "#else", "#endif"]
    assert entry.includes == ["linux/linkage.h", "asm/alternative.h", "hyp_macros.h"]
    xreg = only(entry, "#define CPU_XREG_OFFSET")
    assert [o.text for o in xreg.operands] == ["CPU_XREG_OFFSET(x)", "(CPU_USER_PT_REGS + 8*x)"]
    assert at(xreg.span) == "#define CPU_XREG_OFFSET(x)\t(CPU_USER_PT_REGS + 8*x)"
    assert [o.text for o in only(entry, "#ifdef").operands] == ["CONFIG_ARM64_PTR_AUTH"]
    assert only(entry, "#endif").operands == ()


def test_spliced_define_body_is_not_statements(entry: AsmFile) -> None:
    define = only(entry, "#define SAVE_PAIR")
    assert [o.text for o in define.operands] == ["SAVE_PAIR(a, b, off)", "stp\ta, b, [sp, #off]; nop"]
    assert define.span == Span(line_of("#define SAVE_PAIR"), 0, len("#define SAVE_PAIR(a, b, off)"))
    body_line = define.line + 1  # the body starts after the first splice; its span stays on its first line
    assert define.operands[1].span == Span(body_line, 1, len("\tstp\ta, b, [sp, #off];"))
    assert entry.statements_on(line_of("stp\ta, b, [sp, #off]")) == []
    assert entry.statements_on(line_of("SAVE_PAIR") + 2) == []


def test_macro_definitions(entry: AsmFile) -> None:
    assert entry.macros == {"adr_l", "save_callee_saved_regs"}
    head = only(entry, ".macro\tadr_l")
    assert (head.kind, head.in_macro_definition) == ("directive", False)
    assert [o.text for o in head.operands] == ["adr_l", "dst", "sym"]
    assert [o.text for o in only(entry, ".macro save_callee").operands] == ["save_callee_saved_regs", "ctxt"]
    body = only(entry, "adrp\t\\dst")
    assert (body.kind, body.in_macro_definition) == ("instruction", True)
    assert [o.text for o in only(entry, "add\t\\dst").operands] == ["\\dst", "\\dst", ":lo12:\\sym"]
    inner = only(entry, "1:\tb.ne\t1b")
    assert inner.in_macro_definition and inner.labels == ("1",)
    ends = [s for s in entry.statements if s.mnemonic == ".endm"]
    assert len(ends) == 2 and not any(s.in_macro_definition for s in ends)
    assert not only(entry, "\t.text").in_macro_definition
    assert [s.line for s in entry.statements if s.in_macro_definition] == [
        line_of("adrp\t\\dst"),
        line_of("add\t\\dst"),
        line_of("stp\tx19"),
        line_of("1:\tb.ne\t1b"),
    ]


def test_macro_invocations(entry: AsmFile) -> None:
    start = only(entry, "SYM_FUNC_START")
    assert (start.kind, start.mnemonic, start.indent) == ("macro", "SYM_FUNC_START", "")
    assert [o.text for o in start.operands] == ["__guest_enter"]
    assert at(start.span) == "SYM_FUNC_START(__guest_enter)"
    assert only(entry, "save_callee_saved_regs x1").kind == "macro"  # defined in this file
    adr_l = only(entry, "adr_l\tx2")
    assert (adr_l.kind, [o.text for o in adr_l.operands]) == ("macro", ["x2", "kvm_hyp_ctxt"])
    assert only(entry, "ldr_l").kind == "macro"  # from a header, via known_macros
    assert parse_asm("\tldr_l\tx6, sym\n", A64).statements[0].kind == "instruction"
    alt = only(entry, "ARM64_WORKAROUND_1508412")
    assert alt.kind == "macro"
    assert [o.text for o in alt.operands] == ['"nop"', '"dmb ish"', "ARM64_WORKAROUND_1508412"]
    bug = only(entry, "ASM_BUG")
    assert (bug.kind, bug.operands, at(bug.span)) == ("macro", (), "ASM_BUG()")


def test_c_macro_call_over_two_lines(entry: AsmFile) -> None:
    first, second = line_of("ALTERNATIVE_CB"), line_of("spectre_bhb_patch_loop_iter")
    cb = only(entry, "ALTERNATIVE_CB")
    assert [o.text for o in cb.operands] == ['"b\t.Lskip_\\@"', "ARM64_ALWAYS_SYSTEM", "spectre_bhb_patch_loop_iter"]
    assert [o.span.line for o in cb.operands] == [first, first, second]
    assert at(cb.operands[2].span) == "spectre_bhb_patch_loop_iter"
    assert at(cb.span) == 'ALTERNATIVE_CB("b\t.Lskip_\\@", ARM64_ALWAYS_SYSTEM,'  # cut at its first line
    assert entry.statements_on(second) == []


def test_labels(entry: AsmFile) -> None:
    cbz = only(entry, "cbz")
    assert (cbz.mnemonic, cbz.labels) == ("cbz", ("1",))
    assert cbz.span == Span(cbz.line, 3, 3 + len("cbz\tx0, hyp_panic"))
    eret = only(entry, "eret")
    assert (eret.labels, at(eret.span), eret.operands) == (("3", "4"), "eret", ())
    assert entry.statements_on(line_of(".Lret_to_host:")) == []
    assert entry.label_lines[".Lret_to_host"] == [line_of(".Lret_to_host:")]
    assert entry.label_lines["1"] == [line_of("1:\tb.ne\t1b"), line_of("1:\tcbz")]
    assert entry.labels() == {"1", "2", "3", "4", ".Lret_to_host"}


def test_separated_statements(entry: AsmFile) -> None:
    adr, ldr = entry.statements_on(line_of("adr\tx1, hyp_panic"))
    assert (adr.mnemonic, [o.text for o in adr.operands]) == ("adr", ["x1", "hyp_panic"])
    assert (ldr.mnemonic, [o.text for o in ldr.operands]) == ("ldr", ["x2", "[x1]"])
    assert (at(adr.span), at(ldr.span)) == ("adr\tx1, hyp_panic", "ldr x2, [x1]")
    assert adr.indent == ldr.indent == "\t"


def test_operands_keep_brackets_and_braces(entry: AsmFile) -> None:
    assert [o.text for o in only(entry, "ld1").operands] == ["{v0.16b-v3.16b}", "[x0]", "#64"]
    ldp = only(entry, "ldp")
    assert [o.text for o in ldp.operands] == ["x4", "x5", "[x2, #CPU_XREG_OFFSET(4)]"]
    assert [o.text for o in only(entry, "tbz").operands] == ["x3", "#5", "2f"]
    assert [o.text for o in only(entry, "stp\tx19").operands] == ["x19", "x20", "[\\ctxt, #CPU_XREG_OFFSET(19)]"]


def test_comments(entry: AsmFile) -> None:
    assert only(entry, "cbz").comment == "// no vcpu: give up"
    assert only(entry, "ldp").comment == "/* restore */"
    assert only(entry, "tbz").comment is None
    assert entry.statements_on(line_of("over several lines")) == []  # `b 1f` inside a comment
    assert entry.statements_on(line_of("// x0: vcpu")) == []
    assert entry.statements_on(1) == []


def test_directives(entry: AsmFile) -> None:
    push = only(entry, ".pushsection")
    assert (push.kind, [o.text for o in push.operands]) == ("directive", [".hyp.text", '"ax"'])
    assert [o.text for o in only(entry, ".subsection").operands] == ["1"]
    for name in ("\t.text", ".popsection", ".previous"):
        assert only(entry, name).operands == ()
    assert [o.text for o in only(entry, ".globl").operands] == ["__hyp_stub_vectors"]
    assert only(entry, "bl\t__kvm").kind == "instruction"


def test_instruction_on(entry: AsmFile) -> None:
    line = line_of("2:\tb.ne")
    assert entry.instruction_on(line).mnemonic == "b.ne"
    assert entry.instruction_on(line, "B.NE") is entry.instruction_on(line, "bne") is entry.instruction_on(line)
    assert entry.instruction_on(line, "cbz") is None
    assert entry.instruction_on(line_of(".pushsection")) is None
    assert entry.instruction_on(line_of("adr\tx1"), "ldr").mnemonic == "ldr"
    assert entry.instruction_on(line_of("adr_l\tx2"), "adr_l").kind == "macro"
    assert entry.instruction_on(len(LINES) + 10) is None


def test_every_span_is_the_text_as_written(entry: AsmFile) -> None:
    """Property: a statement's span holds its mnemonic and operands exactly as written."""
    checked = 0
    for s in entry.statements:
        assert at(s.mnemonic_span) == s.mnemonic or s.kind == "preprocessor"
        assert at(s.span).startswith(at(s.mnemonic_span))
        assert LINES[s.line - 1].startswith(s.indent)
        for op in s.operands:
            assert op.span.line > s.line or op.span.start >= s.mnemonic_span.end
            if "\n" not in op.text and op.span.line == s.line and s.mnemonic != "#define":
                assert at(op.span) == op.text
        if s.kind == "instruction":
            written = re.sub(r"\s", "", at(s.span))
            assert written == re.sub(r"\s", "", s.mnemonic + ",".join(o.text for o in s.operands))
            checked += 1
    assert checked >= 15


def test_fresh_numeric_label() -> None:
    assert parse_asm(ENTRY_S, A64).fresh_numeric_label(30) == "9999"
    text = "9999:\tnop\n\tb\t9999b\n\tb\t9998f\n\tnop\n9998:\tret\n"
    f = parse_asm(text, A64)
    assert f.fresh_numeric_label(2) == "9998"  # 9999 there would capture `b 9999b`
    assert f.fresh_numeric_label(4) == "9999"  # 9998 would capture `b 9998f`; 9999 is past its use
    assert f.fresh_numeric_label(3) == "9999"
    assert parse_asm("\tld1\t{v0.16b}, [x0]\n9999:\n\tb 9999b\n", A64).fresh_numeric_label(1) == "9999"


def test_dialects() -> None:
    arm = parse_asm("1:\tldr\tr0, =foo @ load it\n\tbne\t1b\n.L\\@:\tmov r0, #1\n", arm_arch.ARCH.asm_dialect)
    assert [(s.mnemonic, s.comment) for s in arm.statements] == [("ldr", "@ load it"), ("bne", None), ("mov", None)]
    assert arm.instruction_on(2, "b.ne").mnemonic == "bne"
    assert arm.label_lines == {"1": [1], ".L\\@": [3]}
    a64 = parse_asm("\tmov\tx0, #1 @ kept\n", A64)
    assert [o.text for o in a64.statements[0].operands] == ["x0", "#1 @ kept"]
    rv = parse_asm("#include <asm/asm.h>\n\tli\ta0, 1 # set\n#define STR(x) #x\n", riscv64.ARCH.asm_dialect)
    assert [(s.kind, s.comment) for s in rv.statements] == [
        ("preprocessor", None),
        ("instruction", "# set"),
        ("preprocessor", None),
    ]
    assert rv.statements[2].operands[1].text == "#x"


def test_strings_and_odd_text() -> None:
    f = parse_asm('\t.asciz\t"a;b // c, d"\t// real\n', A64)
    (s,) = f.statements
    assert ([o.text for o in s.operands], s.comment) == (['"a;b // c, d"'], "// real")
    crlf = parse_asm("\tmov x0, x1 // c\r\n1:\tret\r\n", A64)
    assert [(s.mnemonic, s.comment, at(s.span, "\tmov x0, x1 // c\n1:\tret\n")) for s in crlf.statements] == [
        ("mov", "// c", "mov x0, x1"),
        ("ret", None, "ret"),
    ]
    assert parse_asm("\tnop /* never closed\n\tret\n", A64).statements[0].comment == "/* never closed"
    assert len(parse_asm('\t.ascii "open\n\tnop\n', A64).statements) == 2
    assert parse_asm("", A64).statements == []


def test_block_comment_joins_lines_like_cpp() -> None:
    """cpp turns a block comment into one space, so code on either side is one line for gas."""
    f = parse_asm("\tmov\tx0, /* dst\n\t src */ x1\n\tret\n", A64)
    mov, ret = f.statements
    assert [o.text for o in mov.operands] == ["x0", "x1"]
    assert (mov.line, mov.operands[1].span, ret.line) == (1, Span(2, 9, 11), 3)
    f = parse_asm("\tmov x0, x1 /* a\n b */\n\tret\n", A64)
    assert [(s.mnemonic, s.line, s.comment) for s in f.statements] == [("mov", 1, "/* a"), ("ret", 3, None)]


def test_unbalanced_parenthesis_stops_at_blank_line() -> None:
    f = parse_asm("\tFOO(a,\n\tb\n\n\tret\n", A64)
    assert [o.text for o in f.statements[0].operands] == ["a", "b"]
    assert f.statements[1].mnemonic == "ret"
