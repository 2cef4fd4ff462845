"""Linker logs as text: the out-of-range messages ld.lld and GNU ld print, read into
`LoggedOverflow`s (`parse_log`), and whether a file holds any (`looks_like_log`, for build-dir
discovery). No ELF is read here; `linklog` turns what is parsed into reach records.

* ld.lld prints the distance it range-checked (`relocation R_X out of range: D is not in
  [LO, HI]; references S`, or `references 'S'` in newer releases; `warning:` instead of
  `error:` under `--noinhibit-exec`).
* GNU ld prints no number (`FILE:LINE:(SEC+0xOFF): relocation truncated to fit: R_X against
  symbol `S' defined in SEC section in OBJ`). Its `... against undefined symbol `S'` lines follow
  `undefined reference` errors: a missing definition, not a reach problem; they are counted.

Numbers are bounded in the patterns and lines over `MAX_LINE` are not matched; a line holding a
message that cannot be read is counted (`ParsedLog.skipped`), never the whole log.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

LLD = "ld.lld"
GNU = "GNU ld"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Numbers are bounded where they are read: an offset or addend fits 64 bits (16 hex digits), a
# distance or bound 20 decimal digits, a line number 10; a longer one is not a number a linker
# prints (and past 4 300 digits Python's int() refuses it), so its line is skipped.
_HEX = r"[0-9a-fA-F]{1,16}"
_INT = r"-?\d{1,20}"
_LINE = r"\d{1,10}"
# ld.lld: `[PROG: ]error|warning: OBJ:([function FN: ]SEC+0xOFF): relocation R_X out of range:
#          D is not in [LO, HI][; references S][; consider recompiling ...]` (S quoted in newer releases).
# Read in two parts, each in one pass: the message after `SEC` (the first place it matches), then
# the head before it split at the first `:(` and the last `: ` (one pattern for the whole line
# retries the lazy object and function names at every `:(` and `: `, quadratic in the line).
_LLD_SEVERITY = re.compile(r"^(?:\S+: )?(?P<severity>error|warning): ")
_LLD_RANGE = re.compile(
    rf"\+0x(?P<offset>{_HEX})\): relocation (?P<type>\S+) out of range: (?P<value>{_INT}) is not in "
    rf"\[(?P<lo>{_INT}), (?P<hi>{_INT})\](?:; references (?P<symbol>.*))?$")
_LLD_ADVICE = re.compile(r"; consider recompiling .*$")
_NOT_IN_SECTION_NAME = re.compile(r"[()\s]")
_LLD_REFERENCED = re.compile(rf"^>>> referenced by (?P<short>\S+?)(?::(?P<short_line>{_LINE}))?"
                             rf"(?: \((?P<path>.+):(?P<line>{_LINE})\))?$")
_LLD_DEFINED = re.compile(r"^>>> defined in (?P<obj>.+)$")
_LLD_UNDEFINED = re.compile(r"^(?:\S+: )?(?:error|warning): undefined (?:hidden )?symbol: (?P<symbol>.+)$")
_LLD_LIMIT = re.compile(r"too many errors emitted, stopping now")
# GNU ld: the program name prefixes its own errors (`aarch64-linux-gnu-ld: `), not the overflow lines.
_GNU_PROGRAM = re.compile(r"^(?:\S*/)?[\w.+-]*\bld(?:\.bfd)?: (?:warning: )?")
_GNU_FUNCTION = re.compile(r"^(?P<obj>.+?): in function [`'](?P<function>.*)':$")  # tried on `...':` only
_GNU_AT = re.compile(rf"^(?P<where>.*?)\((?P<section>[^()\s]+)\+0x(?P<offset>{_HEX})\): (?P<message>.*)$")
_GNU_WHERE_LINE = re.compile(r"(.*):(\d+)")
_GNU_TRUNCATED = re.compile(r"^relocation truncated to fit: (?P<type>\S+)(?: \((?P<qualifier>[^)]*)\))? "
                            r"against (?P<against>.*)$")
_GNU_UNDEFINED_SYMBOL = re.compile(rf"^undefined symbol [`'](?P<symbol>.+)'(?:\+{_HEX})?$")
_GNU_DEFINED_SYMBOL = re.compile(r"^symbol [`'](?P<symbol>.+?)' defined in (?P<section>\S+) section in "
                                 rf"(?P<obj>.+?)(?:\+(?P<addend>{_HEX}))?$")
_GNU_LOCAL = re.compile(rf"^[`'](?P<symbol>.+?)'(?:\+(?P<addend>{_HEX}))?$")
_GNU_UNDEFINED_REFERENCE = re.compile(r"undefined reference to [`'](?P<symbol>.+)'$")
_GNU_OMITTED = "additional relocation overflows omitted from the output"
# What an object (rather than a source file) looks like where GNU ld may print either first.
_OBJECT_NAME = re.compile(r"\.(?:o|obj|lo|a)(?:\(.*\))?$|(?:^|/)vmlinux(?:\.o)?$")
# The messages this module reads, found anywhere in a line: a line holding one that is not read
# in full is skipped and counted, never silently passed over.
_DIAGNOSTIC = re.compile(r"relocation \S+ out of range: |relocation truncated to fit: |undefined reference to |"
                         r"undefined symbol: ")
#: Characters of a log line read at most. Linkers print paths and symbol names, well under this;
#: a longer line is skipped (when it holds a diagnostic, counted), which bounds the matching work.
MAX_LINE = 16 << 10


@dataclass(frozen=True)
class LoggedOverflow:
    """One out-of-range relocation as a linker printed it (all fields from the log's text)."""

    linker: str
    line: int  # 1-based line of the log
    obj: str  # the object as the linker named it
    section: str  # input section of that object
    offset: int  # offset of the relocation in that section
    type: str  # R_<ARCH>_...
    symbol: str | None  # referenced symbol; None for a section symbol (ld.lld leaves it out)
    distance: int | None  # ld.lld's checked value; GNU ld prints none
    bounds: tuple[int, int] | None
    function: str | None
    printed_source: tuple[str, int] | None  # the file:line the linker printed for the site
    defined_in: str | None = None  # the object the linker says defines the symbol
    target_section: str | None = None  # the section GNU ld says defines the symbol
    addend: int | None = None  # GNU ld's `+ADDEND` after the symbol


@dataclass(frozen=True)
class ParsedLog:
    """Everything `parse_log` understood in a log; lines without a linker message are left alone."""

    overflows: tuple[LoggedOverflow, ...]
    undefined: tuple[str, ...] = field(default=())  # symbols with undefined references, in log order
    truncated_undefined: int = 0  # GNU ld's "relocation truncated" lines against undefined symbols
    incomplete: tuple[str, ...] = field(default=())  # why the log may not list every overflow
    skipped: tuple[int, ...] = field(default=())  # lines holding a linker message that could not be read
    lost: tuple[int, ...] = field(default=())  # those of them that were a message (not a `>>>` detail of one)

    @property
    def linkers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.linker for o in self.overflows))

    def skipped_note(self) -> str | None:
        """What the skipped lines cost: the overflows they may hold are not in the report."""
        if not self.skipped:
            return None
        shown = ", ".join(map(str, self.skipped[:5])) + (", …" if len(self.skipped) > 5 else "")
        return (f"{len(self.skipped)} line(s) of the log hold a linker message that could not be read, skipped "
                f"(line {shown}): over {MAX_LINE} characters, a number no linker prints, or not in the form "
                "ld.lld or GNU ld prints it; what they report is not in this report")


class _Unreadable(Exception):
    """A line holding a linker message that cannot be read in full: it is skipped and counted.
    `detail`: the line is a `>>>` detail of a message read already, which stands without it."""

    def __init__(self, detail: bool = False) -> None:
        super().__init__()
        self.detail = detail


class _LogReader:
    """The state of a log read line by line: overflows so far, GNU ld's function context, and
    whether `>>>` lines belong to the last ld.lld overflow."""

    def __init__(self) -> None:
        self.overflows: list[LoggedOverflow] = []
        self.undefined: list[str] = []
        self.truncated_undefined = 0
        self.incomplete: list[str] = []
        self.header_obj: str | None = None  # GNU ld's `OBJ: in function `FN':` applies until the next one
        self.header_function: str | None = None
        self.in_block = False  # the `>>>` lines that follow belong to the last overflow

    def read(self, number: int, line: str) -> None:
        """Take in one line (ANSI colours and trailing blanks removed); `_Unreadable` when it holds a
        linker message in a form that cannot be read."""
        self.in_block = self.in_block and line.startswith(">>> ")
        if (overflow := _lld_range(number, line)) is not None:
            self.in_block = True
            self.overflows.append(overflow)
        elif line.startswith(">>> "):  # the lines under an ld.lld message, here the last range error
            if self.in_block:
                self._lld_detail(line)
        elif (m := _LLD_UNDEFINED.match(line)) is not None:
            self.undefined.append(m["symbol"].strip("'"))
        elif _LLD_LIMIT.search(line):
            self.incomplete.append("ld.lld stopped after its error limit (link with --error-limit=0 to see every "
                                   "error)")
        elif not self._gnu(number, _GNU_PROGRAM.sub("", line, count=1)) and _DIAGNOSTIC.search(line):
            raise _Unreadable

    def _lld_detail(self, line: str) -> None:
        last = self.overflows[-1]
        if (m := _LLD_REFERENCED.match(line)) is not None:
            if last.printed_source is None:
                source = (m["path"], int(m["line"])) if m["path"] else (
                    (m["short"], int(m["short_line"])) if m["short_line"] else None)
                self.overflows[-1] = dataclasses.replace(last, printed_source=source)
        elif (m := _LLD_DEFINED.match(line)) is not None:
            self.overflows[-1] = dataclasses.replace(last, defined_in=m["obj"])
        elif line.startswith(">>> referenced by "):
            raise _Unreadable(detail=True)

    def _gnu(self, number: int, body: str) -> bool:
        """Read a GNU ld line; whether it was one of its messages."""
        if body.endswith("':") and (m := _GNU_FUNCTION.match(body)) is not None:
            self.header_obj, self.header_function = m["obj"], m["function"]
            return True
        if (m := _GNU_UNDEFINED_REFERENCE.search(body)) is not None:
            self.undefined.append(m["symbol"])
            return True
        if (m := _GNU_AT.match(body)) is None:
            return False
        message = m["message"]
        if message.startswith(_GNU_OMITTED):
            self.incomplete.append("GNU ld omitted further relocation overflows from its output")
            return True
        if (t := _GNU_TRUNCATED.match(message)) is None:
            return False
        against = t["against"]
        if (u := _GNU_UNDEFINED_SYMBOL.match(against)) is not None:
            self.truncated_undefined += 1
            self.undefined.append(u["symbol"])
            return True
        d = _GNU_DEFINED_SYMBOL.match(against) or _GNU_LOCAL.match(against)
        found = d.groupdict() if d is not None else {}
        symbol, defined_in, addend = found.get("symbol"), found.get("obj"), found.get("addend")
        obj, source, own_header = _gnu_site(m["where"], self.header_obj)
        if obj is None:  # no `in function` line before it to say which object
            raise _Unreadable
        self.overflows.append(LoggedOverflow(
            GNU, number, obj, m["section"], int(m["offset"], 16), t["type"], symbol, None, None,
            None if own_header else self.header_function, source, defined_in, found.get("section"),
            int(addend, 16) if addend else None))
        if own_header:  # GNU ld forgets its function context after printing an object inline
            self.header_obj = self.header_function = None
        return True


def _lld_range(number: int, line: str) -> LoggedOverflow | None:
    """ld.lld's out-of-range message on a line, if it is one; `_Unreadable` when its bounds are not
    bounds (ld.lld's always hold 0: a reach either side of the place)."""
    if (severity := _LLD_SEVERITY.match(line)) is None or (m := _LLD_RANGE.search(line, severity.end())) is None:
        return None
    obj, opened, site = line[severity.end():m.start()].partition(":(")
    function, section = None, site
    if site.startswith("function "):
        function, _, section = site[len("function "):].rpartition(": ")
    if not (obj and opened and section) or _NOT_IN_SECTION_NAME.search(section):
        return None
    lo, hi = int(m["lo"]), int(m["hi"])
    if not lo <= 0 < hi:
        raise _Unreadable
    symbol = _LLD_ADVICE.sub("", m["symbol"]) if m["symbol"] else None
    if symbol and symbol.startswith("section "):
        symbol = None
    return LoggedOverflow(LLD, number, obj, section, int(m["offset"], 16), m["type"],
                          _unquote(symbol) if symbol else None, int(m["value"]), (lo, hi),
                          _unquote(function) if function else None, None)


def parse_log(text: str) -> ParsedLog:
    """The overflows of an ld.lld and/or GNU ld log, in log order (repeats of one site dropped:
    a log may hold several links, such as the kernel's kallsyms passes). A line holding a linker
    message that cannot be read costs that line (`ParsedLog.skipped`), never the rest."""
    reader = _LogReader()
    skipped: list[int] = []
    lost: list[int] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if len(raw) > MAX_LINE:
            reader.in_block = False
            if _DIAGNOSTIC.search(raw):
                skipped.append(number)
                if not raw.startswith(">>> "):
                    lost.append(number)
            continue
        try:
            reader.read(number, _ANSI.sub("", raw).rstrip())
        except _Unreadable as unreadable:
            reader.in_block = False
            skipped.append(number)
            if not unreadable.detail:
                lost.append(number)
    unique: dict[tuple[str, str, int, str], LoggedOverflow] = {}
    for overflow in reader.overflows:
        unique.setdefault((overflow.obj, overflow.section, overflow.offset, overflow.type), overflow)
    return ParsedLog(tuple(unique.values()), tuple(dict.fromkeys(reader.undefined)), reader.truncated_undefined,
                     tuple(dict.fromkeys(reader.incomplete)), tuple(skipped), tuple(lost))


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text


def _gnu_site(where: str, header_obj: str | None) -> tuple[str | None, tuple[str, int] | None, bool]:
    """(object, printed file:line, object printed inline) from what GNU ld prints before `(SEC+0xOFF)`.

    GNU ld prints `FILE:LINE:` (or `FILE:`, or nothing) after an `OBJ: in function` line, and
    `OBJ:[FILE:][LINE:]` when it found no function; an object is recognised by its name.
    """
    where = where.removesuffix(":")
    line = None
    if (m := _GNU_WHERE_LINE.fullmatch(where)) is not None:
        if len(m[2]) > 10:  # no source file has that many lines
            raise _Unreadable
        where, line = m[1], int(m[2])
    obj, _, file = where.partition(":")
    if where and (_OBJECT_NAME.search(obj) or header_obj is None):
        return obj, (file, line) if file and line else None, True
    return header_obj, (where, line) if where and line else None, False


def looks_like_log(path: Path) -> bool:
    """A text file holding a linker diagnostic this module reads (looked for in its first MiB and
    last 4 MiB: a whole build's output ends with the failed link)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(1 << 20)
            if head.startswith(b"\x7fELF"):
                return False
            size = stream.seek(0, 2)
            stream.seek(max(len(head), size - (4 << 20)))
            text = (head + b"\n" + stream.read()).decode("utf-8", "replace")
    except OSError:
        return False
    return _DIAGNOSTIC.search(text) is not None
