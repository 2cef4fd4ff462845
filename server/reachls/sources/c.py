"""C function definitions in kernel sources, found with tree-sitter-c, for placing edits.

tree-sitter-c does not know the kernel's attribute macros. In `void __noreturn hyp_panic(void)`
it takes `void __noreturn` for a declaration missing its `;` and starts the definition at
`hyp_panic`; in `int __must_check foo(void)` it makes `foo` the type and `(void)` an abstract
declarator; in `void __section(".text") bar(void)` it names the function `__section`, and with
`noinstr` or `__iomem` before `__section(...)` it finds no definition at all, only a bare block.
So the tree (queried with grammars/c/functions.scm, package data of reachls.grammars) only locates bodies, which it does reliably;
each header is read from the tokens before its body, back to the previous `;`, `}`, directive,
comment line or blank line. The name is the identifier right before the last top-level
parameter list: GCC rejects attributes after the declarator of a definition, and the sparse
lock annotations the kernel does put there (`__acquires(x)`) are skipped.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from itertools import accumulate

import tree_sitter_c
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from ..edits import Span

_LANGUAGE = Language(tree_sitter_c.language())
_QUERY = Query(_LANGUAGE, files("reachls.grammars").joinpath("c/functions.scm").read_text())
_TOKEN_RE = re.compile(
    r"""(?P<directive>^[ \t]*\#(?:\\\r?\n|[^\n])*)
      | (?P<comment>/\*.*?\*/|//[^\n]*)
      | "(?:\\.|[^"\\\n])*" | '(?:\\.|[^'\\\n])*' | [^\W\d]\w* | \d\w* | \S""",
    re.S | re.M | re.X,
)
_IDENT_RE = re.compile(r"[^\W\d]\w*")
_TRAILING_RE = re.compile(r"__(?:acquires|releases|must_hold|cond_acquires|cond_releases)(?:_shared)?")
_NOT_NAMES = {"if", "for", "while", "switch", "return", "sizeof", "typeof", "__attribute__", "do", "else"}
_BLANK_LINE_RE = re.compile(r"\n[ \t\r]*\n")


@dataclass(frozen=True)
class CFunction:
    """A function definition. Every span covers one token and its `start` is where to insert
    before it: `declarator_start.start` is where `__section(".text") ` goes, after the last
    declaration specifier (`void __noreturn __section(".text") hyp_panic(void)`)."""

    name: str
    name_span: Span
    definition_span: tuple[Span, Span]  # first token of the header, closing brace of the body
    specifiers_start: Span  # first declaration specifier
    declarator_start: Span  # the name, or the first `*` (or `(`) of the declarator before it
    has_section_attribute: bool  # already carries __section(...) or __attribute__((section(...)))


@dataclass
class CFile:
    functions: list[CFunction]

    def function_named(self, name: str) -> CFunction | None:
        return next((f for f in self.functions if f.name == name), None)

    def function_at_line(self, line: int) -> CFunction | None:
        return next(
            (f for f in self.functions if f.definition_span[0].line <= line <= f.definition_span[1].line), None
        )


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    kind: str  # "directive", "comment" or "code"


def parse_c(text: str) -> CFile:
    source = _Source(text)
    tree = Parser(_LANGUAGE).parse(text.encode())
    matches = QueryCursor(_QUERY).matches(tree.root_node)
    bodies = {body.start_byte: body for _, captures in matches for body in captures["body"]}
    functions, covered_until = [], -1
    for start in sorted(bodies):
        if start < covered_until:  # a block inside a body tree-sitter could not place
            continue
        function = _function(source, bodies[start])
        if function is not None:
            functions.append(function)
            covered_until = bodies[start].end_byte
    return CFile(functions)


class _Source:
    """The text, its tokens, and positions: tree-sitter counts bytes, spans count `str` indices."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        ends = None if text.isascii() else list(accumulate(len(c.encode()) for c in text))
        self.char: Callable[[int], int] = (lambda b: b) if ends is None else (lambda b: bisect_right(ends, b))
        self.tokens = [_Token(m.start(), m.end(), m[0], m.lastgroup or "code") for m in _TOKEN_RE.finditer(text)]
        self.token_starts = [t.start for t in self.tokens]

    def span(self, start: int, end: int) -> Span:
        row = bisect_right(self.line_starts, start) - 1
        return Span(row + 1, start - self.line_starts[row], end - self.line_starts[row])

    def header(self, brace: int) -> list[_Token]:
        """The code tokens before the body opening at `brace`, back to the previous `;`, `}` or
        `{`, directive, comment ending its line (a comment inside the header is skipped), or
        blank line: that is where tree-sitter loses the start of kernel definitions."""
        k = bisect_left(self.token_starts, brace)
        header: list[_Token] = []
        depth = 0
        for j in range(k - 1, -1, -1):
            token = self.tokens[j]
            after = header[-1].start if header else brace
            gap = self.text[token.end : after]
            if token.kind == "directive" or _BLANK_LINE_RE.search(gap):
                break
            if token.kind == "comment":
                if "\n" in gap:
                    break
                continue
            depth += (token.text == ")") - (token.text == "(")
            if depth < 0 or (depth == 0 and token.text in (";", "}", "{")):
                break
            header.append(token)
        return header[::-1]


def _function(source: _Source, body: Node) -> CFunction | None:
    tokens = source.header(source.char(body.start_byte))
    words = [t.text for t in tokens]
    name_k = _name_index(words)
    if name_k is None:
        return None
    decl_k = name_k
    while decl_k and words[decl_k - 1] in ("*", "("):
        decl_k -= 1
    pairs = list(zip(words, words[1:]))
    has_section = any(w == "__section" and n == "(" for w, n in pairs) or (
        "__attribute__" in words and any(w in ("section", "__section__") and n == "(" for w, n in pairs)
    )
    close = source.char(body.end_byte)  # just past the `}` (which tree-sitter may report missing)
    first, name, declarator = (source.span(tokens[k].start, tokens[k].end) for k in (0, name_k, decl_k))
    return CFunction(
        name=words[name_k],
        name_span=name,
        definition_span=(first, source.span(close - (source.text[close - 1 : close] == "}"), close)),
        specifiers_start=first,
        declarator_start=declarator,
        has_section_attribute=has_section,
    )


def _name_index(words: list[str], lo: int = 0, hi: int | None = None) -> int | None:
    """Index of the identifier before the last top-level parenthesized group of words[lo:hi]
    that is not a trailing lock annotation; a parenthesized declarator before that group, as in
    `(*handler(int nr))(void)`, is searched the same way."""
    hi = len(words) if hi is None else hi
    groups: list[list[int]] = []  # [open, close]
    depth = 0
    for k in range(lo, hi):
        if words[k] == "(":
            if depth == 0:
                groups.append([k, hi])
            depth += 1
        elif words[k] == ")":
            depth -= 1
            if depth == 0 and groups:
                groups[-1][1] = k
    while groups and groups[-1][0] > lo and _TRAILING_RE.fullmatch(words[groups[-1][0] - 1]):
        groups.pop()
    if not groups or groups[-1][0] == lo:
        return None
    k = groups[-1][0] - 1
    if words[k] == ")" and len(groups) > 1 and groups[-2][1] == k:
        return _name_index(words, groups[-2][0] + 1, k)
    return k if _IDENT_RE.fullmatch(words[k]) and words[k] not in _NOT_NAMES else None
