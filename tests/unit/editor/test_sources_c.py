"""C function definitions in kernel code: the name and the insertion points must be right even
where tree-sitter-c misreads the kernel's attribute macros."""

from __future__ import annotations

import pytest
from reachls.edits import Span
from reachls.sources.c import CFile, CFunction, parse_c

# A made-up excerpt in the style of arch/arm64/kvm/hyp/nvhe/switch.c.
SWITCH_C = """// SPDX-License-Identifier: GPL-2.0-only
/*
 * Written for these tests.
 */
#include <linux/kvm_host.h>
#include <asm/kvm_hyp.h>

DEFINE_PER_CPU(struct kvm_host_data, kvm_host_data);
static DEFINE_SPINLOCK(hyp_lock);

void __noreturn hyp_panic(void);
static bool fixup_guest_exit(struct kvm_vcpu *vcpu, u64 *exit_code);

static __always_inline void __activate_traps(struct kvm_vcpu *vcpu)
{
	u64 val = CPTR_EL2_DEFAULT;

	write_sysreg(val, cptr_el2);
}

/* Switch to the guest; returns the exit code. */
int __kvm_vcpu_run(struct kvm_vcpu *vcpu)
{
	u64 exit_code;

	__activate_traps(vcpu);
	do {
		exit_code = __guest_enter(vcpu);
	} while (fixup_guest_exit(vcpu, &exit_code));
	return exit_code;
}
NOKPROBE_SYMBOL(__kvm_vcpu_run);

#ifdef CONFIG_ARM64_PTR_AUTH
asmlinkage void __sched __hyp_ptrauth_check(void)
{
}
#endif

void __noreturn hyp_panic(void)
{
	u64 spsr = read_sysreg_el2(SYS_SPSR);

	__hyp_do_panic(spsr);
	unreachable();
}

static int __init
early_hyp_thing(char *p)
{
	return 0;
}
early_param("hyp_thing", early_hyp_thing);
"""
LINES = SWITCH_C.split("\n")


@pytest.fixture(scope="module")
def switch() -> CFile:
    return parse_c(SWITCH_C)


def at(span: Span, text: str) -> str:
    return text.split("\n")[span.line - 1][span.start : span.end]


def line_of(needle: str) -> int:
    (hit,) = [n for n, text in enumerate(LINES, 1) if needle in text]
    return hit


def test_finds_definitions_not_prototypes(switch: CFile) -> None:
    assert [f.name for f in switch.functions] == [
        "__activate_traps",
        "__kvm_vcpu_run",
        "__hyp_ptrauth_check",
        "hyp_panic",
        "early_hyp_thing",
    ]


def test_noreturn_function(switch: CFile) -> None:
    f = switch.function_named("hyp_panic")
    header = LINES.index("void __noreturn hyp_panic(void)") + 1  # the definition, not the prototype
    assert f.name_span == Span(header, len("void __noreturn "), len("void __noreturn hyp_panic"))
    assert at(f.specifiers_start, SWITCH_C) == "void"
    assert f.declarator_start == f.name_span
    assert f.definition_span == (Span(header, 0, 4), Span(line_of("unreachable();") + 1, 0, 1))
    assert not f.has_section_attribute


def test_function_at_line(switch: CFile) -> None:
    assert switch.function_at_line(line_of("__hyp_do_panic")).name == "hyp_panic"
    assert switch.function_at_line(line_of("int __kvm_vcpu_run")).name == "__kvm_vcpu_run"
    assert switch.function_at_line(line_of("static int __init")).name == "early_hyp_thing"
    assert switch.function_at_line(line_of("NOKPROBE_SYMBOL")) is None
    assert switch.function_at_line(line_of("/* Switch to the guest")) is None
    assert switch.function_at_line(1) is None
    assert switch.function_named("fixup_guest_exit") is None


def test_multiline_header_and_ifdef(switch: CFile) -> None:
    early = switch.function_named("early_hyp_thing")
    assert early.specifiers_start == Span(line_of("static int __init"), 0, 6)
    assert early.name_span == Span(line_of("early_hyp_thing(char"), 0, len("early_hyp_thing"))
    check = switch.function_named("__hyp_ptrauth_check")
    assert at(check.specifiers_start, SWITCH_C) == "asmlinkage"
    assert check.definition_span[0].line == line_of("asmlinkage")


HEADERS = [
    # (definition, name, first specifier, declarator starts with, has section)
    ("void __noreturn hyp_panic(void)", "hyp_panic", "void", "hyp_panic", False),
    ("static __always_inline int f(void)", "f", "static", "f", False),
    ("asmlinkage void __sched foo(void)", "foo", "asmlinkage", "foo", False),
    ("asmlinkage __visible void __noreturn __sched do_x(void)", "do_x", "asmlinkage", "do_x", False),
    ("int __must_check check_it(void)", "check_it", "int", "check_it", False),
    ("__visible noinstr void el1_irq(struct pt_regs *regs)", "el1_irq", "__visible", "el1_irq", False),
    ("static __always_inline __attribute_const__ u64 g(void)", "g", "static", "g", False),
    ("static unsigned long __hyp_text run(struct kvm_vcpu *vcpu)", "run", "static", "run", False),
    ("void __iomem *map_it(void)", "map_it", "void", "*", False),
    ("static const struct foo **bars(int n)", "bars", "static", "*", False),
    ("static void (*get_handler(int nr))(struct pt_regs *)", "get_handler", "static", "(", False),
    ("typeof(int) __pure b(void)", "b", "typeof", "b", False),
    ('static void __section(".text") bar(int x)', "bar", "static", "bar", True),
    ('void __noreturn __section(".hyp.text") panic2(void)', "panic2", "void", "panic2", True),
    ('void __attribute__((section(".x"))) baz(void)', "baz", "void", "baz", True),
    ('int __attribute__ ((__section__(".x"), used)) q(void)', "q", "int", "q", True),
    ("int /* not __section(\".x\") */ commented(void)", "commented", "int", "commented", False),
    ("static void lock_it(struct x *x) __acquires(&x->lock)", "lock_it", "static", "lock_it", False),
    ("int\nsplit_header(void)", "split_header", "int", "split_header", False),
]


@pytest.mark.parametrize(("header", "name", "first", "declarator", "section"), HEADERS)
def test_kernel_headers(header: str, name: str, first: str, declarator: str, section: bool) -> None:
    text = f"/* x */\n{header}\n{{\n\treturn 0;\n}}\n"
    (f,) = parse_c(text).functions
    assert (f.name, f.has_section_attribute) == (name, section)
    assert at(f.name_span, text) == name
    assert at(f.specifiers_start, text) == first and f.specifiers_start.line == 2
    assert at(f.declarator_start, text) == declarator
    assert f.definition_span == (f.specifiers_start, Span(5 + header.count("\n"), 0, 1))


@pytest.mark.parametrize("header", [h for h, *_, section in HEADERS if not section])
def test_section_fix_round_trip(header: str) -> None:
    """Inserting `__section(".text") ` at declarator_start yields what the fix wants, and the
    function still reads the same."""
    text = f"{header}\n{{\n}}\n"
    (f,) = parse_c(text).functions
    lines = text.split("\n")
    line, col = f.declarator_start.line - 1, f.declarator_start.start
    lines[line] = lines[line][:col] + '__section(".text") ' + lines[line][col:]
    (g,) = parse_c("\n".join(lines)).functions
    assert (g.name, g.has_section_attribute) == (f.name, True)
    assert g.specifiers_start == f.specifiers_start


def test_hyp_panic_fix_text() -> None:
    text = "void __noreturn hyp_panic(void)\n{\n}\n"
    f: CFunction = parse_c(text).functions[0]
    at_ = f.declarator_start.start
    assert text[:at_] + '__section(".text") ' + text[at_:] == 'void __noreturn __section(".text") hyp_panic(void)\n{\n}\n'


def test_earlier_statements_stay_out_of_the_header() -> None:
    text = "EXPORT_SYMBOL(x)\n\nvoid __noreturn f(void) { }\nint y; void __cold g(void) { }\n"
    f, g = parse_c(text).functions
    assert (f.name, at(f.specifiers_start, text)) == ("f", "void")
    assert (g.name, g.specifiers_start) == ("g", Span(4, 7, 11))


def test_blocks_inside_a_lost_definition_are_not_functions() -> None:
    """With `__iomem __section(...)` tree-sitter-c keeps no definition, only bare blocks."""
    text = 'void __iomem __section(".text") *map_it(int x)\n{\n\tif (x) {\n\t\twhile (x--) { y(); }\n\t}\n\treturn 0;\n}\n'
    (f,) = parse_c(text).functions
    assert (f.name, at(f.declarator_start, text), f.has_section_attribute) == ("map_it", "*", True)
    assert f.definition_span == (Span(1, 0, 4), Span(7, 0, 1))


def test_columns_count_characters_not_bytes() -> None:
    text = "/* héllo wörld */ static int __init ünïcode_ok(void) { return 0; }\n"
    (f,) = parse_c(text).functions
    assert f.name == "ünïcode_ok"
    assert at(f.name_span, text) == "ünïcode_ok"
    assert f.specifiers_start == Span(1, len("/* héllo wörld */ "), len("/* héllo wörld */ static"))


def test_nothing_to_find() -> None:
    assert parse_c("").functions == []
    assert parse_c("void foo(void);\nint x = 3;\n#define F(x) ((x) + 1)\n").functions == []
