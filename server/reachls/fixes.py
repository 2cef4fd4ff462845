"""Fixes as plain text edits: the quick fixes kernel developers apply to out-of-reach references.

Architecture-specific rewrites of assembly live in each `arch/` module (`asm_fixes`); the C and
Makefile fixes here are the same on every architecture. A fix is data (file, span, new text);
the language server only translates it into a WorkspaceEdit.
"""

from __future__ import annotations

import re
from pathlib import Path

from .edits import Fix, Span, TextEdit
from .sources.c import CFunction

#: The kernel's spelling of "take this directory out of LTO" (as in the 2021 hyp fix).
LTO_REMOVE_LINE = "ccflags-remove-y += $(CC_FLAGS_LTO)"
_KBUILD_RE = re.compile(r"^\s*(obj|lib)-[\w$()]*\s*[:+]?=", re.M)


def section_attribute_fix(path: Path, function: CFunction, kernel_tree: bool) -> Fix | None:
    """Pin a C function into `.text`, among the declaration specifiers.

    `void f(void) __section(".text") {` is rejected by GCC and warned about by clang; placed
    before the declarator (`void __noreturn __section(".text") hyp_panic(void)`) both accept
    it. Outside a kernel tree the attribute is spelled out, as `__section` is a kernel macro.
    """
    if function.has_section_attribute:
        return None
    attribute = '__section(".text")' if kernel_tree else '__attribute__((__section__(".text")))'
    at = function.declarator_start
    return Fix(f"Place {function.name} in .text ({attribute})",
               (TextEdit(path, Span(at.line, at.start, at.start), attribute + " "),))


def lto_makefile_fix(source: Path) -> Fix | None:
    """Take the source's directory out of LTO, when its Makefile is a kbuild one."""
    makefile = source.parent / "Makefile"
    if not makefile.is_file():
        return None
    text = makefile.read_text(errors="replace")
    if not _KBUILD_RE.search(text) or LTO_REMOVE_LINE in text:
        return None
    lines = text.split("\n")  # the end of the file: after its last newline, or after its last character
    end = Span(len(lines), len(lines[-1]), len(lines[-1]))
    addition = ("" if text.endswith("\n") or not text else "\n") + LTO_REMOVE_LINE + "\n"
    return Fix(f"Take {source.parent.name}/ out of LTO ({LTO_REMOVE_LINE})", (TextEdit(makefile, end, addition),))
