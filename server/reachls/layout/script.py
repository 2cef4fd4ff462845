"""Reader for the part of the GNU/lld linker script language that kernels and firmware use.

The model engine needs the script as data (what goes where, in which order, at which address),
not as text. Anything this reader does not understand is refused with its line number rather
than skipped: a silently ignored `INSERT` or `OVERLAY` would move every function after it and
the report would still look plausible.

Tokens follow lld: section names and patterns are read as "words" (so `.text.hot.*` and
`___ksymtab+*` stay whole), while expressions are read with operators split out (`a+b`).

Expressions are read and evaluated recursively, so their size is bounded (`MAX_EXPRESSION_NESTING`,
`MAX_EXPRESSION_TERMS`, far above a kernel's): a script nested thousands deep is refused at the
line it starts on instead of exhausting the stack. `check_size` bounds what any reader of the
script faces, this one or a linker (ld.lld takes time quadratic in an expression's length: 10 s
for 10 000 terms), without reading the grammar: no statement longer than `MAX_STATEMENT_CHARS`
and no parentheses nested deeper than `MAX_EXPRESSION_NESTING`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReachlsError

# --- expressions ------------------------------------------------------------------------------

#: Parentheses, unary operators, function calls and `?:` one inside another, in one expression.
MAX_EXPRESSION_NESTING = 64
#: Operands of one expression (a kernel's longest has a few dozen).
MAX_EXPRESSION_TERMS = 256
#: Characters between two of `;`, `{`, `}` outside comments (an arm64 kernel's longest: about 500).
MAX_STATEMENT_CHARS = 8192


@dataclass(frozen=True)
class Num:
    value: int


@dataclass(frozen=True)
class Sym:
    """A symbol, or `.` (the location counter)."""

    name: str
    line: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    line: int


@dataclass(frozen=True)
class Ternary:
    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True)
class Call:
    """A built-in function; section, region and symbol-name arguments are plain strings."""

    function: str
    args: tuple[Expr | str, ...]
    line: int


Expr = Num | Sym | Unary | Binary | Ternary | Call

# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """`sym = expr;`, `. = expr;` (name "."), `PROVIDE(...)`; compound `+=` etc. are expanded."""

    name: str
    expr: Expr
    line: int
    provide: bool = False
    hidden: bool = False


@dataclass(frozen=True)
class Assert:
    expr: Expr
    message: str
    line: int


@dataclass(frozen=True)
class SectionPattern:
    """Section-name globs sharing one EXCLUDE_FILE list and one SORT policy (None = input order)."""

    globs: tuple[str, ...]
    exclude_files: tuple[str, ...] = ()
    sort_outer: str | None = None
    sort_inner: str | None = None


@dataclass(frozen=True)
class InputSectionDescription:
    file_glob: str
    patterns: tuple[SectionPattern, ...]
    keep: bool
    line: int


@dataclass(frozen=True)
class DataStatement:
    """BYTE/SHORT/LONG/QUAD: `size` bytes of data at the location counter."""

    size: int
    expr: Expr
    line: int


SectionBodyCommand = Assignment | Assert | InputSectionDescription | DataStatement


@dataclass(frozen=True)
class OutputSectionDescription:
    name: str
    commands: tuple[SectionBodyCommand, ...]
    line: int
    address: Expr | None = None
    section_type: str | None = None
    lma: Expr | None = None
    align: Expr | None = None
    subalign: Expr | None = None
    region: str | None = None
    lma_region: str | None = None
    phdrs: tuple[str, ...] = ()
    fill: Expr | None = None


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    attributes: str
    origin: Expr
    length: Expr
    line: int


TopLevelCommand = Assignment | Assert | OutputSectionDescription


@dataclass(frozen=True)
class LinkerScript:
    """A parsed script; `commands` keeps top-level assignments and SECTIONS contents in order."""

    path: str
    commands: tuple[TopLevelCommand, ...]
    has_sections: bool
    entry: str | None = None
    memory: tuple[MemoryRegion, ...] = ()
    phdrs: tuple[str, ...] = ()


# --- lexer ------------------------------------------------------------------------------------

# lld's bare-word characters, minus '=' and ':' so that `a=.;` and `.text:{` also split.
_WORD = re.compile(r"(?:[A-Za-z0-9_.$\\~\[\]?!^]|/(?![*=])|[-+*](?!=))+")
_EXPR_TOKEN = re.compile(r'[A-Za-z0-9_.$]+|"[^"\n]*"|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/&|]=|[^\s]')
_SPACE = re.compile(r"\s*(?:/\*.*?\*/\s*)*", re.S)

_PRECEDENCE = {"*": 8, "/": 8, "%": 8, "+": 7, "-": 7, "<<": 6, ">>": 6, "<": 5, "<=": 5, ">": 5, ">=": 5,
               "==": 5, "!=": 5, "&": 4, "|": 3, "&&": 2, "||": 1}
_COMPOUND = {"+=", "-=", "*=", "/=", "<<=", ">>=", "&=", "|="}
_SORT_KINDS = {"SORT": "name", "SORT_BY_NAME": "name", "SORT_BY_ALIGNMENT": "alignment",
               "SORT_BY_INIT_PRIORITY": "priority", "SORT_NONE": "none"}
_DATA_SIZES = {"BYTE": 1, "SHORT": 2, "LONG": 4, "QUAD": 8}
_SECTION_TYPES = {"NOLOAD", "COPY", "INFO", "OVERLAY"}
_NAME_FUNCTIONS = {"ADDR", "LOADADDR", "SIZEOF", "ALIGNOF", "DEFINED", "ORIGIN", "LENGTH", "CONSTANT"}
_EXPR_FUNCTIONS = {"ABSOLUTE": (1, 1), "ALIGN": (1, 2), "MAX": (2, 2), "MIN": (2, 2), "LOG2CEIL": (1, 1),
                   "SEGMENT_START": (2, 2)}


class _Lexer:
    """Two reading modes over one text: bare words (names, globs) and expression tokens."""

    def __init__(self, text: str, path: str) -> None:
        self.text, self.path, self.pos = text, path, 0
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line(self, pos: int | None = None) -> int:
        return bisect.bisect_left(self._newlines, self.pos if pos is None else pos) + 1

    def error(self, message: str, pos: int | None = None) -> ReachlsError:
        return ReachlsError(message, f"{self.path}:{self.line(pos)}")

    def skip_space(self) -> int:
        match = _SPACE.match(self.text, self.pos)
        self.pos = match.end()
        if self.text.startswith("/*", self.pos):
            raise self.error("unterminated comment")
        return self.pos

    def at_end(self) -> bool:
        return self.skip_space() >= len(self.text)

    def _scan(self, expression: bool) -> tuple[str, int]:
        start = self.skip_space()
        if start >= len(self.text):
            return "", start
        if self.text[start] == '"':
            end = self.text.find('"', start + 1)
            if end < 0 or "\n" in self.text[start:end]:
                raise self.error("unterminated string")
            return self.text[start:end + 1], end + 1
        match = (_EXPR_TOKEN if expression else _WORD).match(self.text, start)
        return (match.group(), match.end()) if match else (self.text[start], start + 1)

    def peek(self, expression: bool = True) -> str:
        return self._scan(expression)[0]

    def next(self, expression: bool = True) -> str:
        token, self.pos = self._scan(expression)
        if not token:
            raise self.error("unexpected end of script")
        return token

    def word(self) -> str:
        return self.next(expression=False)

    def accept(self, token: str) -> bool:
        if self.peek() == token:
            self.next()
            return True
        return False

    def expect(self, token: str) -> None:
        start = self.skip_space()
        found = self.peek()
        if found != token:
            raise self.error(f"expected '{token}' but found '{found or 'end of script'}'", start)
        self.next()


# --- parser -----------------------------------------------------------------------------------


def _unsupported(lex: _Lexer, construct: str, pos: int) -> ReachlsError:
    shown = construct if len(construct) <= 40 else construct[:37] + "..."
    return lex.error(f"unsupported linker script construct '{shown}'", pos)


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.lex = _Lexer(text, path)
        self.path = path
        self._nesting = self._terms = 0
        self._expression_start = 0

    def script(self) -> LinkerScript:
        lex = self.lex
        commands: list[TopLevelCommand] = []
        memory: list[MemoryRegion] = []
        phdrs: list[str] = []
        entry: str | None = None
        has_sections = False
        while not lex.at_end():
            start = lex.skip_space()
            word = lex.word()
            if word == ";":
                continue
            if word == "SECTIONS":
                has_sections = True
                commands += self._sections()
            elif word == "ENTRY":
                lex.expect("(")
                entry = lex.word()
                lex.expect(")")
            elif word in ("OUTPUT_ARCH", "OUTPUT_FORMAT"):
                lex.expect("(")
                while lex.word() != ")":
                    pass
            elif word == "MEMORY":
                memory += self._memory()
            elif word == "PHDRS":
                phdrs += self._phdrs()
            elif (command := self._assignment(word, start)) is not None:
                commands.append(command)
            else:
                raise _unsupported(lex, word, start)
        return LinkerScript(self.path, tuple(commands), has_sections, entry, tuple(memory), tuple(phdrs))

    def _sections(self) -> list[TopLevelCommand]:
        lex = self.lex
        lex.expect("{")
        commands: list[TopLevelCommand] = []
        while not lex.accept("}"):
            start = lex.skip_space()
            word = lex.word()
            if word == ";":
                continue
            if word in ("INCLUDE", "OVERLAY", "INSERT"):
                raise _unsupported(lex, word, start)
            command = self._assignment(word, start)
            commands.append(command if command is not None else self._output_section(word, start))
        if lex.peek(expression=False) == "INSERT":
            raise _unsupported(lex, "INSERT", lex.pos)
        return commands

    def _assignment(self, word: str, start: int) -> Assignment | Assert | None:
        """An assignment or ASSERT starting with `word`, or None when `word` starts something else."""
        lex = self.lex
        line = lex.line(start)
        if word == "ASSERT":
            lex.expect("(")
            expr = self.expr()
            lex.expect(",")
            message = lex.next()
            lex.expect(")")
            lex.accept(";")
            return Assert(expr, message.strip('"'), line)
        if word in ("PROVIDE", "PROVIDE_HIDDEN", "HIDDEN"):
            lex.expect("(")
            assignment = self._symbol_assignment(lex.word(), line, provide=word != "HIDDEN",
                                                 hidden=word != "PROVIDE")
            lex.expect(")")
        elif lex.peek() == "=" or lex.peek() in _COMPOUND:
            assignment = self._symbol_assignment(word, line)
        else:
            return None
        lex.expect(";")
        return assignment

    def _symbol_assignment(self, name: str, line: int, provide: bool = False, hidden: bool = False) -> Assignment:
        lex = self.lex
        name = name.strip('"')
        operator = lex.next()
        if operator != "=" and operator not in _COMPOUND:
            raise lex.error(f"expected '=' after '{name}' but found '{operator}'")
        expr = self.expr()
        if operator in _COMPOUND:
            expr = Binary(operator[:-1], Sym(name, line), expr, line)
        return Assignment(name, expr, line, provide, hidden)

    def _output_section(self, name: str, start: int) -> OutputSectionDescription:
        lex = self.lex
        line = lex.line(start)
        if not _WORD.fullmatch(name):
            raise _unsupported(lex, name, start)
        address = section_type = None
        if lex.peek() != ":":
            if not self._section_type_follows():
                address = self.expr()
            if self._section_type_follows():
                lex.expect("(")
                section_type = lex.word()
                lex.expect(")")
        if lex.peek() != ":":  # not an output section after all, e.g. `FROBNICATE(3)`
            raise _unsupported(lex, name, start)
        lex.expect(":")
        lma = self._keyword_paren_expr("AT")
        align = self._keyword_paren_expr("ALIGN")
        subalign = self._keyword_paren_expr("SUBALIGN")
        if (following := lex.peek(expression=False)) != "{":  # ONLY_IF_RO, ALIGN_WITH_INPUT, ...
            raise _unsupported(lex, following, lex.skip_space())
        lex.expect("{")
        commands = self._section_body()
        region = lex.word() if lex.accept(">") else None
        lma_region = None
        if lex.peek(expression=False) == "AT":
            lex.word()
            lex.expect(">")
            lma_region = lex.word()
        phdrs = []
        while lex.peek() == ":":
            lex.next()
            phdrs.append(lex.word())
        fill = self.expr() if lex.accept("=") else None
        lex.accept(",")
        return OutputSectionDescription(name, tuple(commands), line, address, section_type, lma, align, subalign,
                                        region, lma_region, tuple(phdrs), fill)

    def _section_type_follows(self) -> bool:
        """True at `(NOLOAD)` and friends, which look like the start of a parenthesised address."""
        lex = self.lex
        saved = lex.pos
        is_type = lex.accept("(") and lex.peek(expression=False) in _SECTION_TYPES
        lex.pos = saved
        return is_type

    def _keyword_paren_expr(self, keyword: str) -> Expr | None:
        lex = self.lex
        if lex.peek(expression=False) != keyword:
            return None
        lex.word()
        lex.expect("(")
        expr = self.expr()
        lex.expect(")")
        return expr

    def _section_body(self) -> list[SectionBodyCommand]:
        lex = self.lex
        commands: list[SectionBodyCommand] = []
        while not lex.accept("}"):
            start = lex.skip_space()
            word = lex.word()
            line = lex.line(start)
            if word in (";", "CONSTRUCTORS"):
                continue
            if (assignment := self._assignment(word, start)) is not None:
                commands.append(assignment)
            elif word in _DATA_SIZES:
                lex.expect("(")
                commands.append(DataStatement(_DATA_SIZES[word], self.expr(), line))
                lex.expect(")")
                lex.accept(";")
            elif word == "FILL":
                lex.expect("(")
                self.expr()
                lex.expect(")")
                lex.accept(";")
            elif word == "SORT" and lex.accept("("):
                if lex.word() != "CONSTRUCTORS":
                    raise _unsupported(lex, "SORT", start)
                lex.expect(")")
            elif word == "KEEP":
                lex.expect("(")
                commands.append(self._input_description(lex.word(), line, keep=True))
                lex.expect(")")
            elif lex.peek() == "(" and word != "INPUT_SECTION_FLAGS":
                commands.append(self._input_description(word, line, keep=False))
            else:
                raise _unsupported(lex, word, start)
        return commands

    def _input_description(self, file_glob: str, line: int, keep: bool) -> InputSectionDescription:
        lex = self.lex
        lex.expect("(")
        patterns: list[SectionPattern] = []
        while not lex.accept(")"):
            outer = _SORT_KINDS.get(lex.peek(expression=False))
            inner = None
            if outer is None:
                patterns += self._pattern_list(None, None)
                continue
            lex.word()
            lex.expect("(")
            inner = _SORT_KINDS.get(lex.peek(expression=False))
            if inner is not None:
                lex.word()
                lex.expect("(")
                patterns += self._pattern_list(outer, inner)
                lex.expect(")")
            else:
                patterns += self._pattern_list(outer, None)
            lex.expect(")")
        return InputSectionDescription(file_glob, tuple(patterns), keep, line)

    def _pattern_list(self, outer: str | None, inner: str | None) -> list[SectionPattern]:
        """Globs up to `)` or the next SORT; each EXCLUDE_FILE starts a new group."""
        lex = self.lex
        groups: list[SectionPattern] = []
        while True:
            excludes: list[str] = []
            if lex.peek(expression=False) == "EXCLUDE_FILE":
                lex.word()
                lex.expect("(")
                while (word := lex.word()) != ")":
                    excludes.append(word)
            globs: list[str] = []
            while (token := lex.peek(expression=False)) not in (")", "EXCLUDE_FILE") and token not in _SORT_KINDS:
                start = lex.skip_space()
                glob = lex.word()
                if glob in ("(", "{", "}", ";", ",", ":", "="):
                    raise _unsupported(lex, glob, start)
                globs.append(glob)
            if globs:
                groups.append(SectionPattern(tuple(globs), tuple(excludes), outer, inner))
            elif excludes:
                raise lex.error("section pattern expected after EXCLUDE_FILE")
            if lex.peek(expression=False) != "EXCLUDE_FILE":
                return groups

    def _memory(self) -> list[MemoryRegion]:
        lex = self.lex
        lex.expect("{")
        regions = []
        while not lex.accept("}"):
            start = lex.skip_space()
            name = lex.word()
            attributes = ""
            if lex.accept("("):
                while (word := lex.word()) != ")":
                    attributes += word
            lex.expect(":")
            origin = self._memory_field(("ORIGIN", "org", "o"))
            lex.accept(",")
            length = self._memory_field(("LENGTH", "len", "l"))
            regions.append(MemoryRegion(name, attributes, origin, length, lex.line(start)))
        return regions

    def _memory_field(self, names: tuple[str, ...]) -> Expr:
        lex = self.lex
        start = lex.skip_space()
        if lex.word() not in names:
            raise lex.error(f"expected {names[0]} in MEMORY region", start)
        lex.expect("=")
        return self.expr()

    def _phdrs(self) -> list[str]:
        """PHDRS only matters to the model by existing (it changes orphan placement): keep the names."""
        lex = self.lex
        lex.expect("{")
        names = []
        while not lex.accept("}"):
            names.append(lex.word())
            while lex.next() != ";":
                pass
        return names

    # expressions, precedence climbing as in lld (ternary binds loosest)

    def expr(self) -> Expr:
        if self._nesting == 0:
            self._terms, self._expression_start = 0, self.lex.skip_space()
        with self._nested():
            condition = self._binary(self._primary(), 1)
            if not self.lex.accept("?"):
                return condition
            then = self.expr()
            self.lex.expect(":")
            return Ternary(condition, then, self.expr())

    @contextmanager
    def _nested(self) -> Iterator[None]:
        """One level deeper into the expression begun at `_expression_start`: bounded."""
        self._nesting += 1
        try:
            if self._nesting > MAX_EXPRESSION_NESTING:
                raise self.lex.error(f"expression nested more than {MAX_EXPRESSION_NESTING} deep",
                                     self._expression_start)
            yield
        finally:
            self._nesting -= 1

    def _binary(self, left: Expr, min_precedence: int) -> Expr:
        lex = self.lex
        while (op := lex.peek()) in _PRECEDENCE and _PRECEDENCE[op] >= min_precedence:
            line = lex.line(lex.skip_space())
            lex.next()
            right = self._primary()
            while (following := lex.peek()) in _PRECEDENCE and _PRECEDENCE[following] > _PRECEDENCE[op]:
                right = self._binary(right, _PRECEDENCE[following])
            left = Binary(op, left, right, line)
        return left

    def _primary(self) -> Expr:
        lex = self.lex
        start = lex.skip_space()
        line = lex.line(start)
        token = lex.next()
        self._terms += 1
        if self._terms > MAX_EXPRESSION_TERMS:
            raise lex.error(f"expression of more than {MAX_EXPRESSION_TERMS} terms", self._expression_start)
        if token in ("-", "~", "!", "+"):
            with self._nested():
                operand = self._primary()
            return operand if token == "+" else Unary(token, operand)
        if token == "(":
            inner = self.expr()
            lex.expect(")")
            return inner
        if token[0].isdigit():
            return Num(_parse_int(token, lex, start))
        if token.startswith('"'):
            return Sym(token[1:-1], line)
        if not re.fullmatch(r"[A-Za-z0-9_.$]+", token):
            raise lex.error(f"malformed expression at '{token}'", start)
        if lex.peek() != "(":
            if token == "SIZEOF_HEADERS":
                raise _unsupported(lex, token, start)
            return Sym(token, line)
        if token in _NAME_FUNCTIONS:
            lex.expect("(")
            name = lex.word()
            lex.expect(")")
            if token == "CONSTANT" and name not in ("MAXPAGESIZE", "COMMONPAGESIZE"):
                raise _unsupported(lex, f"CONSTANT({name})", start)
            return Call(token, (name,), line)
        if token not in _EXPR_FUNCTIONS:
            raise _unsupported(lex, token, start)
        lex.expect("(")
        args = [self.expr()]
        while lex.accept(","):
            args.append(self.expr())
        lex.expect(")")
        low, high = _EXPR_FUNCTIONS[token]
        if not low <= len(args) <= high:
            raise lex.error(f"{token} takes {low if low == high else f'{low} or {high}'} argument(s)", start)
        return Call(token, tuple(args), line)


def _parse_int(token: str, lex: _Lexer, start: int) -> int:
    """Integers as lld reads them: 0x hex, trailing h hex, decimal with K/M suffix."""
    lower = token.lower()
    try:
        if lower.startswith("0x"):
            return int(lower[2:], 16)
        if lower.endswith("h"):
            return int(lower[:-1], 16)
        if lower.endswith("k"):
            return int(lower[:-1], 10) * 1024
        if lower.endswith("m"):
            return int(lower[:-1], 10) * 1024 * 1024
        return int(lower, 10)
    except ValueError:
        raise lex.error(f"malformed number '{token}'", start) from None


def parse_linker_script(text: str, path: str) -> LinkerScript:
    """Parse a preprocessed linker script; unsupported constructs raise `ReachlsError` at their line."""
    return _Parser(text, path).script()


_BYTE_ORDER_MARK = b"\xef\xbb\xbf"
_STATEMENT_END = re.compile(rb"[;{}]")


def _without_comments(data: bytes) -> bytes:
    """`data` with each comment a space, in one pass (a lazy regex rescans to the end from every
    `/*` of an unterminated run); an unterminated comment ends the text, as the readers say."""
    code, position = [], 0
    while (start := data.find(b"/*", position)) >= 0:
        code.append(data[position:start])
        end = data.find(b"*/", start + 2)
        if end < 0:
            return b" ".join(code)
        position = end + 2
    code.append(data[position:])
    return b" ".join(code)


def check_size(data: bytes, where: str) -> None:
    """Refuse a script whose statements are longer, or parentheses deeper, than any real script's."""
    code = _without_comments(data)
    longest = max(map(len, _STATEMENT_END.split(code)))
    if longest > MAX_STATEMENT_CHARS:
        raise ReachlsError(f"a linker script statement of {longest} characters (more than {MAX_STATEMENT_CHARS})",
                           where)
    symbols = np.frombuffer(code, np.uint8)
    depth = np.cumsum((symbols == ord("(")).astype(np.int64) - (symbols == ord(")")))
    if depth.size and depth.max() > MAX_EXPRESSION_NESTING:
        raise ReachlsError(f"linker script parentheses nested more than {MAX_EXPRESSION_NESTING} deep", where)


def load_linker_script(path: Path | str) -> LinkerScript:
    """Read and parse a script file, turning I/O problems into one-line errors.

    The linkers read bytes: other than UTF-8 is fine in a comment (decoded leniently here), and a
    byte-order mark is refused, as ld.lld refuses it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ReachlsError("linker script not found", str(path)) from None
    except OSError as exc:
        raise ReachlsError(f"cannot read linker script: {exc.strerror or exc}", str(path)) from None
    if data.startswith(_BYTE_ORDER_MARK):
        raise ReachlsError("linker script starts with a byte-order mark (the linkers refuse it)", f"{path}:1")
    check_size(data, str(path))
    return parse_linker_script(data.decode("utf-8", "replace"), str(path))
