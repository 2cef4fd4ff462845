"""Statements of GNU assembler `.S` files (kernel style), with exact spans for diagnostics and edits.

No tree-sitter grammar for GNU as can be installed here, so this is a hand-written statement
parser with the shape a grammar-backed one would have: `parse_asm(text, dialect) -> AsmFile`. It reads a
line the way the toolchain does: cpp splices backslash-newlines and turns `//` and `/* */`
comments into blanks (joining the lines a block comment spans), then gas splits statements at
the dialect's separator and drops its comment character. Macros are not expanded: an invocation
is one statement of kind "macro", and statements inside a `.macro` body are flagged because
their addresses belong to the invocations.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator

from ..asmfile import AsmFile, AsmStatement, Dialect, Operand
from ..edits import Span

# Symbol names, including macro-body forms: `\arg`, `\@` (invocation counter), `\()` (separator).
_NAME = r"(?:[A-Za-z_.$]|\\(?:\(\)|@)?)(?:[\w.$]|\\(?:\(\)|@)?)*"
_NAME_RE = re.compile(_NAME)
_WORD_RE = re.compile(r"[^\s,(]+|\S")
_LABEL_RE = re.compile(rf"(\d+|{_NAME}):")  # gas wants the colon right after the name
_UPPER_RE = re.compile(r"_*[A-Z][A-Z0-9_]*")
_DIRECTIVE_RE = re.compile(r"#\s*(\w*)")
_DEFINE_RE = re.compile(r"([A-Za-z_]\w*)(\([^)]*\))?")
_MACRO_PARAM_RE = re.compile(r"[^\s,=]+(?:\s*=\s*[^\s,]*)?")
_OPEN, _CLOSE = "([{", ")]}"


def parse_asm(text: str, dialect: Dialect, known_macros: Iterable[str] = ()) -> AsmFile:
    """Parse a `.S` file. `known_macros` names `.macro`s from headers the file includes, so their
    invocations are kind "macro" rather than "instruction"."""
    return _Parser(text, dialect, known_macros).parse()


class _Parser:
    def __init__(self, text: str, dialect: Dialect, known_macros: Iterable[str]) -> None:
        self.text, self.dialect = text, dialect
        self.clean, comments, self.joined = _blank_comments(text, dialect)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.trailing: dict[int, str] = {}
        for a in comments:
            line, col = self.pos(a)
            if line not in self.trailing and col >= len(self.clean_line(line).rstrip()):
                self.trailing[line] = self.raw_line(line)[col:].rstrip()
        self.pending: list[tuple[dict, bool | None]] = []  # statement fields, and `call` for _kind
        self.macros: set[str] = set()
        self.invocable = {m.lower() for m in known_macros}  # .macro and #define names
        self.includes: list[str] = []
        self.label_lines: dict[str, list[int]] = {}
        self.line_labels: dict[int, list[str]] = defaultdict(list)
        self.macro_depth = 0

    def pos(self, i: int) -> tuple[int, int]:
        row = bisect_right(self.line_starts, i) - 1
        return row + 1, i - self.line_starts[row]

    def _line(self, s: str, line: int) -> str:
        end = self.line_starts[line] - 1 if line < len(self.line_starts) else len(s)
        return s[self.line_starts[line - 1] : end]

    def raw_line(self, line: int) -> str:
        return self._line(self.text, line)

    def clean_line(self, line: int) -> str:
        return self._line(self.clean, line)

    def span(self, a: int, b: int) -> Span:
        (line, start), (end_line, end) = self.pos(a), self.pos(b)
        if end_line != line:
            end = len(self.clean_line(line).rstrip())
        return Span(line, start, end)

    def operand(self, a: int, b: int) -> Operand:
        a = _skip_ws(self.clean, a, b)
        b = _rstrip(self.clean, a, b)
        text = self.clean[a:b]
        return Operand(re.sub(r"\s*\n\s*", " ", text) if "\n" in text else text, self.span(a, b))

    def split(self, a: int, b: int) -> tuple[Operand, ...]:
        """Operands at top-level commas: brackets, braces, parentheses and strings stay whole."""
        if _skip_ws(self.clean, a, b) == b:
            return ()
        cuts = [i for i, c, depth in _walk(self.clean, a, b) if depth == 0 and c == ","]
        return tuple(self.operand(s, e) for s, e in zip([a] + [c + 1 for c in cuts], cuts + [b]))

    def parse(self) -> AsmFile:
        for a, b in _logical_lines(self.clean, self.joined):
            p = _skip_ws(self.clean, a, b)
            if p == b:
                continue
            if self.clean[p] == "#":
                self.preprocessor(p, b)
                continue
            cuts = [
                i for i, c, depth in _walk(self.clean, p, b) if depth == 0 and c in self.dialect.separators
            ]
            for s, e in zip([p] + [c + 1 for c in cuts], cuts + [b]):
                self.statement(s, e)
        invocable = self.invocable | {m.lower() for m in self.macros}
        statements = [AsmStatement(**kw, kind=_kind(kw, call, invocable)) for kw, call in self.pending]
        return AsmFile(statements, self.macros, self.includes, self.label_lines)

    def add(
        self, start: int, end: int, mnemonic: str, mnemonic_end: int, operands: Iterable[Operand],
        call: bool | None,
    ) -> None:
        """Queue a statement; its kind waits until every `.macro` and `#define` name is known."""
        line = self.pos(start)[0]
        self.pending.append(
            (
                dict(
                    line=line,
                    span=self.span(start, end),
                    mnemonic=mnemonic,
                    mnemonic_span=self.span(start, mnemonic_end),
                    operands=tuple(operands),
                    labels=tuple(self.line_labels.get(line, ())),
                    indent=re.match(r"[ \t]*", self.raw_line(line)).group(),
                    comment=self.trailing.get(line),
                    in_macro_definition=self.macro_depth > 0,
                ),
                call,
            )
        )

    def preprocessor(self, p: int, b: int) -> None:
        t = self.clean
        m = _DIRECTIVE_RE.match(t, p, b)
        j, end = m.end(), _rstrip(t, p, b)
        define = _DEFINE_RE.match(t, _skip_ws(t, j, b), b) if m[1] == "define" else None
        if define:
            self.invocable.add(define[1].lower())
            operands = [self.operand(define.start(), define.end())]
            operands += [self.operand(define.end(), b)] if define.end() < end else []
        else:
            operands = [self.operand(j, b)] if j < end else []
        if m[1] == "include" and operands:
            self.includes.append(operands[0].text.strip('<>"'))
        self.add(p, end, "#" + m[1], j, operands, None)

    def statement(self, a: int, b: int) -> None:
        t = self.clean
        i = _skip_ws(t, a, b)
        while label := _LABEL_RE.match(t, i, b):
            line = self.pos(i)[0]
            self.label_lines.setdefault(label[1], []).append(line)
            self.line_labels[line].append(label[1])
            i = _skip_ws(t, label.end(), b)
        if i == b:
            return
        m = _NAME_RE.match(t, i, b) or _WORD_RE.match(t, i, b)
        mnemonic, j, end = m.group(), m.end(), _rstrip(t, i, b)
        k = _skip_ws(t, j, b)
        directive = mnemonic.startswith(".")
        call = not directive and k < b and t[k] == "(" and (k == j or bool(_UPPER_RE.fullmatch(mnemonic)))
        if call:  # a C macro call: its arguments are the operands
            close = next((x for x, c, depth in _walk(t, k, b) if c == ")" and depth == 0), b)
            operands = self.split(k + 1, close)
        elif mnemonic.lower() == ".macro":  # `.macro name a, b=0` or `.macro name a b`
            operands = tuple(self.operand(p.start(), p.end()) for p in _MACRO_PARAM_RE.finditer(t, j, b))
            if operands:
                self.macros.add(operands[0].text)
        else:
            operands = self.split(j, b)
        if mnemonic.lower() == ".endm":
            self.macro_depth = max(self.macro_depth - 1, 0)
        self.add(i, end, mnemonic, j, operands, call)
        if mnemonic.lower() == ".macro":
            self.macro_depth += 1


def _kind(kw: dict, call: bool | None, invocable: set[str]) -> str:
    if call is None:
        return "preprocessor"
    if kw["mnemonic"].startswith("."):
        return "directive"
    return "macro" if call or kw["mnemonic"].lower() in invocable else "instruction"


def _blank_comments(text: str, dialect: Dialect) -> tuple[str, list[int], set[int]]:
    """The text with every comment and splicing backslash blanked to spaces (so columns survive),
    where each comment starts, and the newlines that no longer end a line: spliced ones and, as
    in cpp, those inside a block comment."""
    out, starts, joined = list(text), [], set()
    n, i = len(text), 0
    fresh = True  # nothing but blanks yet on this logical line
    directive = False  # this logical line is a cpp directive: `#` there is not a comment
    while i < n:
        c = text[i]
        splice = c == "\\" and re.match(r"\r?\n", text[i + 1 : i + 3])
        if splice:
            j = i + 1 + splice.end()
        elif c == '"':
            j = _string_end(text, i, n)
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i) or (
            c in dialect.comment_chars and not (c == "#" and (fresh or directive)) and text[i - 1 : i] != "\\"
        ):
            j = text.find("\n", i)
            j = n if j < 0 else j
        else:
            if c == "\n":
                fresh, directive = True, False
            elif not c.isspace():
                directive = directive or (fresh and c == "#")
                fresh = False
            i += 1
            continue
        if c == '"':
            fresh = False
        else:
            if not splice:
                starts.append(i)
            for k in range(i, j):
                if text[k] == "\n":
                    joined.add(k)
                else:
                    out[k] = " "
        i = j
    return "".join(out), starts, joined


def _string_end(s: str, i: int, end: int) -> int:
    """Index just past the string literal opening at `i` (or its line's end, if unterminated)."""
    j = i + 1
    while j < end and s[j] not in '"\n':
        j += 2 if s[j] == "\\" else 1
    return min(j + 1, end) if j < end and s[j] == '"' else min(j, end)


def _walk(s: str, start: int, end: int) -> Iterator[tuple[int, str, int]]:
    """(index, char, bracket depth around the char) for each char of s[start:end] outside strings."""
    depth, i = 0, start
    while i < end:
        c = s[i]
        if c == '"':
            i = _string_end(s, i, end)
            continue
        if c in _CLOSE:
            depth = max(depth - 1, 0)
        yield i, c, depth
        depth += c in _OPEN
        i += 1


def _open_depth(s: str, start: int, end: int) -> int:
    depth = 0
    for _, c, d in _walk(s, start, end):
        depth = d + (c in _OPEN)
    return depth


def _logical_lines(clean: str, joined: set[int]) -> list[tuple[int, int]]:
    """Ranges of the lines gas sees: physical lines joined at `joined` newlines, and a C macro
    call's open parentheses carrying on to the next lines as cpp does, though never across a
    blank line or a cpp directive."""
    out: list[list] = []  # [start, end, parentheses still open]
    start = 0
    for end in [i for i, c in enumerate(clean) if c == "\n" and i not in joined] + [len(clean)]:
        code = clean[start:end].strip()
        statement = bool(code) and not code.startswith("#")
        if out and out[-1][2] and statement:
            out[-1][1:] = [end, _open_depth(clean, out[-1][0], end) > 0]
        else:
            out.append([start, end, statement and _open_depth(clean, start, end) > 0])
        start = end + 1
    return [(a, b) for a, b, _ in out]


def _skip_ws(s: str, i: int, end: int) -> int:
    while i < end and s[i].isspace():
        i += 1
    return i


def _rstrip(s: str, start: int, end: int) -> int:
    while end > start and s[end - 1].isspace():
        end -= 1
    return end
