"""The parsed form of a GNU assembler file: what the parser (`sources/asm.py`) produces and what
each architecture's fix templates read and rewrite. Plain values, so `arch/` can use them without
loading any parser."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .edits import Fix, Span, TextEdit

_NUMERIC_REF_RE = re.compile(r"(?<![\w.$\\])(\d+)([bf])\b")


@dataclass(frozen=True)
class Operand:
    text: str
    span: Span


@dataclass(frozen=True)
class AsmStatement:
    """One statement. A statement continued onto later lines (a spliced line, or a C macro call
    whose parentheses stay open) has `span` cut at the end of its first line; its operands carry
    their own lines. `labels` are all labels defined earlier on the same line."""

    line: int
    span: Span
    mnemonic: str
    mnemonic_span: Span
    operands: tuple[Operand, ...]
    labels: tuple[str, ...]
    indent: str
    comment: str | None
    kind: str  # "instruction" | "directive" | "macro" | "preprocessor"
    in_macro_definition: bool


@dataclass(frozen=True)
class Dialect:
    """What gas itself treats as a comment or separator; cpp has already removed `//` and `/* */`.

    A comment char starts a comment anywhere, except that `#` as the first non-blank of a line
    is cpp's and `\\@` (a macro's invocation counter) is not a comment."""

    comment_chars: str
    separators: str


@dataclass
class AsmFile:
    statements: list[AsmStatement]
    macros: set[str]  # .macro names defined in this file
    includes: list[str]  # #include targets without <> or ""
    label_lines: dict[str, list[int]] = field(default_factory=dict)  # label -> lines defining it

    def statements_on(self, line: int) -> list[AsmStatement]:
        return [s for s in self.statements if s.line == line]

    def instruction_on(self, line: int, mnemonic: str | None = None) -> AsmStatement | None:
        """The first instruction or macro invocation on `line` (a macro such as `adr_l` is where
        its expansion's instructions are reported). Mnemonics compare case-insensitively and
        without dots, so `b.ne`, `B.NE` and the arm32 spelling `bne` all match."""
        want = fold_mnemonic(mnemonic) if mnemonic else None
        return next(
            (
                s
                for s in self.statements_on(line)
                if s.kind in ("instruction", "macro") and want in (None, fold_mnemonic(s.mnemonic))
            ),
            None,
        )

    def labels(self) -> set[str]:
        return set(self.label_lines)

    def fresh_numeric_label(self, near_line: int) -> str:
        """A numeric local label to define on a new line just before `near_line`.

        Counting down from 9999 keeps clear of the small numbers kernel code uses; the first
        number whose new definition there changes the target of no existing `Nb`/`Nf` wins (a
        number the file never mentions always does). References inside `.macro` bodies count
        too, conservatively."""
        refs: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for s in self.statements:
            if s.kind != "preprocessor":
                for op in s.operands:
                    for m in _NUMERIC_REF_RE.finditer(op.text):
                        refs[m[1]].append((s.line, m[2]))
        for number in map(str, range(9999, 0, -1)):
            defs = self.label_lines.get(number, [])
            if not any(_rebinds(near_line, line, way, defs) for line, way in refs[number]):
                return number
        raise LookupError(f"no numeric label 1..9999 can be added before line {near_line}")


def fold_mnemonic(mnemonic: str) -> str:
    """A mnemonic as spellings compare: lower case, without dots (`B.NE`, `b.ne`, `bne`)."""
    return mnemonic.lower().replace(".", "")


def _rebinds(at: int, ref_line: int, way: str, defs: list[int]) -> bool:
    """Would a label defined just before line `at` capture the reference on `ref_line`? Only if
    no existing definition lies strictly between them (same-line ones count as not between)."""
    if way == "b":
        return ref_line >= at and not any(at <= d < ref_line for d in defs)
    return ref_line < at and not any(ref_line < d < at for d in defs)


def branch_over_fix(path: Path, statement: AsmStatement, line_text: str, asm: AsmFile, inverse: str,
                    kept: list[str], jump: str, reach: str) -> Fix:
    """`<inverse> kept…, Nf` / `<jump> target` / `N:`: the conditional branch skips an unconditional one.

    The common rewrite of every architecture: the line keeps its indentation, its spacing after
    the mnemonic and its comment; N is a numeric local label that rebinds no existing `Nb`/`Nf`.
    """
    operands = statement.operands
    label = asm.fresh_numeric_label(statement.line + 1)
    gap = line_text[statement.mnemonic_span.end:operands[0].span.start]
    branch = f"{inverse}{gap}{', '.join([*kept, label + 'f'])}"
    after = f"\n{statement.indent}{jump}{gap}{operands[-1].text}\n{label}:"
    line_end = len(line_text)
    return Fix(f"Invert to {inverse} over an unconditional {jump} ({reach})",
               (TextEdit(path, Span(statement.line, statement.span.start, statement.span.end), branch),
                TextEdit(path, Span(statement.line, line_end, line_end), after)), preferred=True)
