"""The model engine: place the input sections of a relocatable object the way ld.lld 14 would.

No toolchain is needed, so this is what runs where the build's linker is not installed. It
follows lld's own sequence, because every step moves addresses: assign input sections to the
script's output sections (first match wins, input order unless SORT), turn the rest into orphans
and insert them next to the output section of the closest rank, drop empty output sections,
then walk the commands with the location counter, repeating until forward references settle.
Without a script it builds lld's default image (prefix-named output sections sorted by rank,
PT_LOAD boundaries advanced by the maximum page size, image base 0x200000).

lld rebuilds .eh_frame (CIEs deduplicated, records padded) and .note.gnu.property: the model
sizes them to place what follows, but gives their input sections no address, as the relink
engine does. Merged string/constant sections get the start of their merged section (the relink
reads each piece back from its output; the model has none), except the objects' strings under
GNU ld, which are placed one by one as GNU ld merges them.
The linker's .got is a synthetic input section of 8 bytes per symbol the GOT-relative
relocations name (the caller counts them), placed like any input (`*(.got)`, or as an orphan), so
GOT-relative types are measured to its start as in the relink. Symbols the script defines are
in the placement (`Placement.symbols`), as evaluated by the final pass.
Given the objects a GCC kernel's final link reads (`members.py`), it places their sections, the
pieces of `vmlinux.o`'s merged ones among them, object by object, as that link does.
Not modelled (the relink engine is exact): range-extension thunks and erratum 843419 patches,
other synthetic sections (.plt, .rela.dyn, build-id), `--defsym`, string deduplication beyond
what `ld -r` already did, and TLS segment alignment.
"""

from __future__ import annotations

import bisect
import fnmatch
import operator
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..arch.base import Architecture
from ..elf import (SECTION_ABS, SECTION_COMMON, SHF_ALLOC, SHF_EXECINSTR, SHF_MERGE, SHF_STRINGS, SHN_UNDEF, SHT_NOBITS,
                   U64, ElfInput)
from ..errors import ReachlsError
from . import LINKER_NAMES, Placement
from .members import ObjectSection
from .script import (Assert, Assignment, Binary, Call, DataStatement, Expr, InputSectionDescription, LinkerScript, Num,
                     OutputSectionDescription, SectionPattern, Sym, Ternary, Unary)

SHF_WRITE, SHF_TLS, SHF_EXCLUDE = 0x1, 0x400, 0x80000000
SHT_PROGBITS, SHT_NOTE, SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY = 1, 7, 14, 15, 16
_NOT_INPUT_TYPES = {0, 2, 3, 4, 9, 11, 17, 18}  # null, symtab, strtab, rela, rel, dynsym, group, shndx
_DROPPED_NAMES = {".note.GNU-stack", ".note.gnu.split-stack", ".llvm_addrsig", ".llvm.call-graph-profile"}
_AFTER_EVERY_OBJECT = 1 << 62  # the input rank of a section no object gave
_DEFAULT_PREFIXES = (".text.", ".rodata.", ".data.rel.ro.", ".data.", ".bss.rel.ro.", ".bss.", ".init_array.",
                     ".fini_array.", ".ctors.", ".dtors.", ".tbss.", ".gcc_except_table.", ".tdata.")
_RELRO_NAMES = {".data.rel.ro", ".bss.rel.ro", ".ctors", ".dtors", ".jcr", ".eh_frame", ".fini_array",
                ".init_array", ".preinit_array", ".got", ".dynamic"}
_OPERATORS = {"*": operator.mul, "+": operator.add, "-": operator.sub, "<<": lambda a, b: a << (b & 63),
              ">>": lambda a, b: a >> (b & 63), "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "&": operator.and_, "|": operator.or_,
              "&&": lambda a, b: bool(a and b), "||": lambda a, b: bool(a or b),
              "/": operator.floordiv, "%": operator.mod}


@dataclass(eq=False, slots=True)
class _Input:
    """An input section as lld sees it (synthetic ones carry the index of the section they replace)."""

    index: int | None
    name: str
    flags: int
    sh_type: int
    align: int
    size: int
    order: int = 0
    merge_key: tuple[int, int, int] | None = None
    addr: int = 0
    output: _Output | None = None
    folded_into: _Input | None = None  # a merge section lld combined with an earlier one of its kind
    common_symbol: str | None = None  # lld gives each COMMON symbol a section of its own
    piece_offset: int = 0  # where this piece of an object starts in `ld -r`'s merged section `index`
    merge_share: bool = False  # a piece of a merge section: GNU ld sizes it by the entries it adds first
    synthetic: bool = False  # lld rewrites its contents, so its offsets mean nothing after the link
    discarded: bool = False


@dataclass(eq=False)
class _Output:
    name: str
    desc: OutputSectionDescription | None = None
    body: list = field(default_factory=list)  # lists of _Input and the description's other commands
    flags: int = 0
    sh_type: int = SHT_PROGBITS
    align: int = 1
    rank: int = 0
    region: _Region | None = None
    page_aligned: bool = False
    ignored: bool = False  # GNU ld: empty, no `. =`: its symbols see its address, the location counter does not move
    addr: int = 0
    size: int = 0

    @property
    def inputs(self) -> list[_Input]:
        return [inp for item in self.body if isinstance(item, list) for inp in item]

    def append(self, inp: _Input) -> None:
        if not (self.body and isinstance(self.body[-1], list)):
            self.body.append([])
        self.body[-1].append(inp)

    def finish(self) -> None:
        """Flags, type and alignment from the members, as lld's commitSection; merge inputs fold together."""
        inputs = self.inputs
        for inp in inputs:
            inp.output = self
        if inputs:
            self.flags = 0
            self.sh_type = inputs[0].sh_type if all(i.sh_type == inputs[0].sh_type for i in inputs) else SHT_PROGBITS
        for inp in inputs:
            self.flags |= inp.flags
            self.align = max(self.align, inp.align)
        section_type = self.desc.section_type if self.desc else None
        if section_type == "NOLOAD":
            self.sh_type = SHT_NOBITS
        elif section_type:
            self.flags &= ~SHF_ALLOC
        first_of_kind: dict[tuple[int, int, int], _Input] = {}
        for group in (item for item in self.body if isinstance(item, list)):
            for inp in list(group):
                if inp.merge_key is None:
                    continue
                if (first := first_of_kind.setdefault(inp.merge_key, inp)) is not inp:
                    first.size = _align_to(first.size, inp.align) + inp.size
                    first.align = max(first.align, inp.align)
                    inp.folded_into, inp.size = first, 0
                    group.remove(inp)

    @property
    def has_inputs(self) -> bool:
        return any(isinstance(item, list) and item for item in self.body)


@dataclass(eq=False)
class _Region:
    origin: int
    length: int
    flags: int
    negated_flags: int
    cursor: int = 0


def _align_to(value: int, align: int) -> int:
    return value if align <= 1 else (value + align - 1) // align * align


def _place_inputs(inputs: list[_Input], dot: int) -> int:
    """Give each input its aligned address from `dot` on; the location counter after them. The
    loop of the layout that runs once per input section per pass, so `_align_to` is written out."""
    for inp in inputs:
        align = inp.align
        if align > 1:
            dot = (dot + align - 1) // align * align
        inp.addr = dot
        dot += inp.size
    return dot


def _rank(out: _Output) -> int:
    """lld's getSectionRank (its RankFlags bits): notes first, then R, RX, RWX, RW; within RW
    RELRO, then TLS, then NOBITS last. The bit layout matters: orphans go by shared leading bits."""
    if not out.flags & SHF_ALLOC:
        return 1 << 27 | 1 << 26
    rank = 1 << 27 | 3 << 16  # address not set by -T, not a partition header
    if out.name == ".interp":
        return rank
    rank |= 1 << 15
    if out.sh_type == SHT_NOTE:
        return rank
    rank |= 1 << 14
    executable, writable = out.flags & SHF_EXECINSTR, out.flags & SHF_WRITE
    if executable:
        rank |= 1 << 12 if writable else 1 << 11
    elif writable:
        rank |= 1 << 13
    elif out.sh_type == SHT_PROGBITS:
        rank |= 1 << 10
    rank |= (not _is_relro(out)) << 9 | (not out.flags & SHF_TLS) << 8 | (out.sh_type == SHT_NOBITS) << 7
    return rank


def _is_relro(out: _Output) -> bool:
    if not (out.flags & SHF_ALLOC and out.flags & SHF_WRITE):
        return False
    return bool(out.flags & SHF_TLS) or out.sh_type in (SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY) \
        or out.name in _RELRO_NAMES


def _needs_load(out: _Output) -> bool:
    return bool(out.flags & SHF_ALLOC) and not (out.flags & SHF_TLS and out.sh_type == SHT_NOBITS)


def _segment_flags(out: _Output) -> tuple[bool, bool]:
    return bool(out.flags & SHF_WRITE), bool(out.flags & SHF_EXECINSTR)


# --- inputs -----------------------------------------------------------------------------------


def _no_got() -> int:
    return 0


def _input_sections(obj: ElfInput, got_entries: Callable[[], int], objects: list[ObjectSection] | None
                    ) -> list[_Input]:
    """lld's inputSections order: file sections, then COMMON symbols, then .eh_frame, .note.gnu.property;
    then the .got, when `got_entries` symbols need a slot in it.

    With `objects` (the sections of the objects the real link reads, `ld -r`'s pieces of `obj`
    among them), the file sections are those pieces and the other objects' sections, object by
    object (merge sections too: GNU ld gives each object's the entries it is the first to hold);
    a section no object gave stays whole, after them."""
    ordinary: list[tuple[tuple[int, int], _Input]] = []
    synthetic = []
    index_of = {name: indices[0] for name, indices in obj.alloc_sections_by_name().items()} if objects else {}
    first_piece: dict[int, tuple[int, int]] = {}
    split: dict[int, list[ObjectSection]] = {}
    for piece in objects or ():
        if (index := index_of.get(piece.name)) is None or piece.piece_of is None:
            if not (piece.flags & SHF_MERGE or piece.name in (".eh_frame", ".note.gnu.property")):
                ordinary.append(((piece.object_rank, piece.index), _Input(
                    None, piece.name, piece.flags, piece.sh_type, piece.align, piece.size)))
            continue
        first_piece.setdefault(index, (piece.object_rank, piece.index))
        split.setdefault(index, []).append(piece)
    headers = obj.section_headers
    candidates = np.flatnonzero(~np.isin(headers["type"], list(_NOT_INPUT_TYPES))
                                & ((headers["flags"] & SHF_EXCLUDE) == 0))
    for sec in map(obj.sections.__getitem__, candidates.tolist()):
        if sec.name in _DROPPED_NAMES:
            continue
        if sec.is_alloc and sec.name in (".eh_frame", ".note.gnu.property"):
            synthetic.append(_Input(sec.index, sec.name, sec.flags, sec.sh_type, sec.align, sec.size, synthetic=True))
        elif sec.index in split:
            ordinary += [((p.object_rank, p.index), _Input(sec.index, sec.name, sec.flags, sec.sh_type, p.align, p.size,
                                                           piece_offset=p.piece_of,
                                                           merge_share=sec.merge_kind is not None))
                         for p in split[sec.index]]
        else:
            ordinary.append((first_piece.get(sec.index, (_AFTER_EVERY_OBJECT, sec.index)), _Input(
                sec.index, sec.name, sec.flags, sec.sh_type, sec.align, sec.size, merge_key=sec.merge_kind)))
    # Without objects every key is (_AFTER_EVERY_OBJECT, index): already in order.
    ordinary = [inp for _, inp in (sorted(ordinary, key=lambda keyed: keyed[0]) if objects else ordinary)]
    syms = obj.symbols
    for i in np.flatnonzero(obj.symbol_sections == SECTION_COMMON).tolist():
        ordinary.append(_Input(None, "COMMON", SHF_ALLOC | SHF_WRITE, SHT_NOBITS, int(syms["value"][i]) or 1,
                               int(syms["size"][i]), common_symbol=obj.symbol_name(i)))
    inputs = ordinary + sorted(synthetic, key=lambda s: s.name)
    if slots := got_entries():
        inputs.append(_Input(None, ".got", SHF_ALLOC | SHF_WRITE, SHT_PROGBITS, 8, 8 * slots, synthetic=True))
    for order, inp in enumerate(inputs):
        inp.order = order
    return inputs


def _eh_frame_size(obj: ElfInput, index: int, live_sections: set[int], flavour: str) -> int:
    """Size of the linker's rebuilt .eh_frame: CIEs deduplicated, FDEs of discarded code dropped;
    ld.lld also pads every record to 8 bytes and adds a 4-byte terminator, GNU ld does neither
    (GNU ld also trims trailing DW_CFA_nop padding of a record, which is not modelled)."""
    data = bytes(obj.section_data(index))
    rel_section = obj.relocation_sections().get(index)
    table = obj.relocations(rel_section) if rel_section else None
    relocs = sorted(zip(table.offset.tolist(), table.sym.tolist())) if table else []
    cies: dict[tuple[bytes, int | None], list[int]] = {}
    cie_at: dict[int, tuple[bytes, int | None]] = {}
    offset, next_reloc = 0, 0
    while offset + 8 <= len(data):
        length, ident = struct.unpack_from("<II" if obj.little else ">II", data, offset)
        size = length + 4
        if length == 0 or offset + size > len(data):
            break
        while next_reloc < len(relocs) and relocs[next_reloc][0] < offset:
            next_reloc += 1
        target = relocs[next_reloc][1] if next_reloc < len(relocs) and relocs[next_reloc][0] < offset + size else None
        if ident == 0:
            cie_at[offset] = key = (data[offset:offset + size], target)
            cies.setdefault(key, [])
        elif (key := cie_at.get(offset + 4 - ident)) is not None and target is not None \
                and target < len(obj.symbols) and int(obj.symbol_sections[target]) in live_sections:
            cies[key].append(size)
        offset += size
    pad, terminator = (8, 4) if flavour == "lld" else (1, 0)
    return sum(_align_to(len(key[0]), pad) + sum(_align_to(s, pad) for s in fdes)
               for key, fdes in cies.items()) + terminator


# --- glob matching ----------------------------------------------------------------------------


def _glob_regex(glob: str) -> re.Pattern[str]:
    """lld's glob: `*`, `?`, `[...]` with `!` or `^` negation; a quoted glob is a literal name."""
    if _is_quoted(glob):
        return re.compile(re.escape(glob[1:-1]), re.S)
    return re.compile(fnmatch.translate(glob.replace("[^", "[!")))


def _is_quoted(glob: str) -> bool:
    return len(glob) > 1 and glob[0] == glob[-1] == '"'


def _literal_prefix(glob: str) -> str:
    if _is_quoted(glob):
        return glob[1:-1]
    return re.match(r"[^*?\[]*", glob).group()


class _FirstMatch:
    """For each section name, the smallest key among the globs matching it, computed for all names
    at once (a kernel has ~10^5 sections and ~10^3 globs): the names are sorted, so the names a
    glob can match, those starting with the literal text before its first wildcard, are one range
    of them. A literal glob or `prefix*` (most of a kernel script) settles its range with one array
    operation; any other glob is tried on the names of its range only."""

    def __init__(self) -> None:
        self._globs: list[tuple[tuple[int, ...], str]] = []

    def add(self, key: tuple[int, ...], glob: str) -> None:
        self._globs.append((key, glob))

    def first(self, names: list[str]) -> list[tuple[int, ...] | None]:
        """The smallest matching key of each name (None: no glob matches it)."""
        keys = sorted({key for key, _ in self._globs})
        rank_of = {key: rank for rank, key in enumerate(keys)}
        order = sorted(range(len(names)), key=names.__getitem__)
        ordered = [names[i] for i in order]
        best = np.full(len(names), len(keys), dtype=np.int64)  # in sorted order; len(keys): no match
        for key, glob in self._globs:
            rank = rank_of[key]
            prefix = _literal_prefix(glob)
            lo = bisect.bisect_left(ordered, prefix)
            if prefix == glob or _is_quoted(glob):
                hi = bisect.bisect_right(ordered, prefix, lo)
            else:
                hi = _prefix_end(ordered, prefix, lo)
                if glob != prefix + "*":
                    regex = _glob_regex(glob)
                    rows = lo + np.flatnonzero([regex.fullmatch(name) is not None for name in ordered[lo:hi]])
                    best[rows] = np.minimum(best[rows], rank)
                    continue
            best[lo:hi] = np.minimum(best[lo:hi], rank)
        found: list[tuple[int, ...] | None] = [None] * len(names)
        for i, rank in zip(order, best.tolist()):
            if rank < len(keys):
                found[i] = keys[rank]
        return found


def _prefix_end(ordered: list[str], prefix: str, lo: int) -> int:
    """The end of the range of sorted names, from `lo` on, that start with `prefix`."""
    if not prefix:
        return len(ordered)
    return bisect.bisect_left(ordered, prefix[:-1] + chr(ord(prefix[-1]) + 1), lo)


# --- layout -----------------------------------------------------------------------------------


class _Layout:
    """The output sections and location counter of one link, evaluated as lld 14 assigns addresses."""

    def __init__(self, obj: ElfInput, script: LinkerScript | None, arch: Architecture, flavour: str,
                 got_entries: Callable[[], int],
                 objects: list[ObjectSection] | None) -> None:
        self.obj = obj
        self.arch = arch  # its page sizes and image base: ld.lld's defaults for the target
        self.flavour = flavour
        self.where = script.path if script else str(obj.path)
        self.object_symbols, undefined = _global_symbols(obj)
        self.inputs = _input_sections(obj, got_entries, objects)  # the GOT slots counted last: see `model_layout`
        self.by_index: dict[int, list[_Input]] = {}  # several: the objects' pieces, by offset
        for inp in sorted((i for i in self.inputs if i.index is not None), key=lambda i: i.piece_offset):
            self.by_index.setdefault(inp.index, []).append(inp)
        self.commons = {inp.common_symbol: inp for inp in self.inputs if inp.common_symbol}
        self.commands: list = []
        #: (piece, offset in it, piece holding that string, offset there) per string, by merged section
        self.string_places: dict[int, list[tuple[_Input, int, _Input, int]]] = {}
        self.outputs: dict[str, _Output] = {}
        self.regions: dict[str, _Region] = {}
        self.notes: list[str] = []
        self.dot, self.strict, self.start = 0, False, 0
        referenced = {e.name for e in _expressions(script) if isinstance(e, Sym)} if script else set()
        self.declared = {cmd.name for cmd in _assignments(script) if cmd.name != "." and (
            not cmd.provide or (cmd.name not in self.object_symbols and cmd.name not in self.commons
                                and cmd.name in undefined | referenced))} \
            if script else set()
        self.symbols: dict[str, int] = dict.fromkeys(self.declared, 0)

    # expressions

    def value(self, expr: Expr) -> int:
        match expr:
            case Num(number):
                return number
            case Sym(".", _):
                return self.dot
            case Sym(name, line):
                return self._symbol(name, line)
            case Unary(op, operand):
                operand_value = self.value(operand)
                return {"-": -operand_value, "~": ~operand_value, "!": int(operand_value == 0)}[op] & U64
            case Binary(op, left, right, line):
                left_value, right_value = self.value(left), self.value(right)
                if op in ("/", "%") and right_value == 0:
                    return self._fail("division by zero", line)
                return int(_OPERATORS[op](left_value, right_value)) & U64
            case Ternary(condition, then, otherwise):
                return self.value(then) if self.value(condition) else self.value(otherwise)
            case Call():
                return self._call(expr)
        raise AssertionError(expr)

    def _fail(self, message: str, line: int) -> int:
        """An error in the final pass; earlier passes see forward references as 0, like lld."""
        if self.strict:
            raise ReachlsError(message, f"{self.where}:{line}")
        return 0

    def _symbol(self, name: str, line: int) -> int:
        if name in self.symbols:
            return self.symbols[name]
        if name in self.commons:
            return self.commons[name].addr
        if name in self.object_symbols:
            section, value = self.object_symbols[name]
            return value if section == SECTION_ABS else self._address(section, value)
        return self._fail(f"symbol '{name}' is not defined", line)

    def _address(self, section: int, offset: int) -> int:
        """Where `offset` in the input section `section` lands: in the piece that holds it."""
        pieces = self.by_index.get(section)
        if not pieces:
            return 0
        piece = pieces[max(bisect.bisect_right([p.piece_offset for p in pieces], offset) - 1, 0)]
        return piece.addr + offset - piece.piece_offset

    def _call(self, call: Call) -> int:
        name, args = call.function, call.args
        if name in ("ADDR", "LOADADDR", "SIZEOF", "ALIGNOF"):
            out = self.outputs.get(args[0])
            if out is None and name != "SIZEOF":
                return self._fail(f"undefined section '{args[0]}'", call.line)
            return 0 if out is None else {"SIZEOF": out.size, "ALIGNOF": out.align}.get(name, out.addr)
        if name == "DEFINED":
            return int(args[0] in self.declared or args[0] in self.object_symbols or args[0] in self.commons)
        if name in ("ORIGIN", "LENGTH"):
            region = self.regions.get(args[0])
            if region is None:
                return self._fail(f"memory region '{args[0]}' is not declared", call.line)
            return region.origin if name == "ORIGIN" else region.length
        if name == "CONSTANT":
            return self.arch.max_page_size if args[0] == "MAXPAGESIZE" else self.arch.page_size
        if name == "SEGMENT_START":
            return self.value(args[1])
        values = [self.value(arg) for arg in args]
        if name == "ALIGN":
            base, align = (self.dot, values[0]) if len(values) == 1 else values
            return _align_to(base, self._alignment(align, call.line))
        return {"ABSOLUTE": lambda: values[0], "MAX": lambda: max(values), "MIN": lambda: min(values),
                "LOG2CEIL": lambda: max(values[0] - 1, 0).bit_length()}[name]()

    def _alignment(self, value: int, line: int) -> int:
        value = max(value, 1)
        if value & (value - 1):
            return self._fail(f"alignment must be a power of 2, not {value:#x}", line) or 1
        return value

    # address assignment

    def assign_addresses(self) -> None:
        """Walk the commands until symbol and section values stop changing, then once more strictly."""
        previous = None
        for _ in range(10):
            self._pass()
            state = (dict(self.symbols), [(c.addr, c.size) for c in self.commands if isinstance(c, _Output)])
            if state == previous:
                break
            previous = state
        self.strict = True
        self._pass()

    def _pass(self) -> None:
        self.dot = self.start
        for region in self.regions.values():
            region.cursor = region.origin
        for command in self.commands:
            if isinstance(command, _Output):
                self._place(command)
            elif isinstance(command, Assignment):
                self._assign(command, None)
            else:
                self._check(command)

    def _place(self, out: _Output) -> None:
        desc, saved = out.desc, self.dot
        explicit_address = desc is not None and desc.address is not None
        if out.flags & SHF_ALLOC:
            if out.region:
                self.dot = out.region.cursor
            if explicit_address:
                self.dot = self.value(desc.address)
            elif out.page_aligned:
                self.dot = _align_to(self.dot, self.arch.max_page_size) + self.dot % self.arch.max_page_size
            if out.region:
                out.region.cursor = max(out.region.cursor, self.dot)
        position = self.dot
        align = out.align
        if desc is not None and desc.align is not None:
            align = max(align, self._alignment(self.value(desc.align), desc.line))
        out.addr = self.dot if explicit_address else _align_to(self.dot, align)
        self.dot = out.addr
        for item in out.body:
            if isinstance(item, list):
                self.dot = _place_inputs(item, self.dot)
            elif isinstance(item, Assignment):
                self._assign(item, out)
            elif isinstance(item, DataStatement):
                self.dot += item.size
            else:
                self._check(item)
        out.size = self.dot - out.addr
        if out.ignored:
            self.dot = saved
            return
        if out.region:
            out.region.cursor += self.dot - position
        if not _needs_load(out):
            self.dot = saved

    def _assign(self, command: Assignment, section: _Output | None) -> None:
        if command.name != ".":
            if command.name in self.declared:
                self.symbols[command.name] = self.value(command.expr)
            return
        value = self.value(command.expr)
        if section is not None and value < self.dot:
            self._fail(f"unable to move location counter backward in {section.name}", command.line)
        self.dot = value

    def _check(self, command: Assert) -> None:
        if self.strict and not self.value(command.expr):
            self.notes.append(f"ASSERT failed at {self.where}:{command.line}: {command.message}")

    def placement(self) -> Placement:
        placed = [c for c in self.commands if isinstance(c, _Output) and c.flags & SHF_ALLOC]
        output_start = {}
        for out in placed:
            output_start.setdefault(out.name, out.addr)
        placed_ids = {id(out) for out in placed}
        section_address, output_section, pieces = {}, {}, {}
        for index, inputs in self.by_index.items():
            placed_inputs = [i for i in inputs if not i.synthetic and i.flags & SHF_ALLOC and id(i.output) in placed_ids]
            if not placed_inputs:
                continue
            first = placed_inputs[0]
            section_address[index] = (first.folded_into or first).addr - first.piece_offset
            output_section[index] = first.output.name
            if index in self.string_places:
                places = self.string_places[index]
                pieces[index] = (np.array([piece.piece_offset + offset for piece, offset, _, _ in places], np.uint64),
                                 np.array([holder.addr + at for _, _, holder, at in places], np.uint64))
            elif len(inputs) > 1:
                sized = [i for i in placed_inputs if i.size] or placed_inputs
                pieces[index] = (np.array([i.piece_offset for i in sized], np.uint64),
                                 np.array([i.addr for i in sized], np.uint64))
        got = next((inp for inp in self.inputs if inp.index is None and inp.name == ".got"), None)
        return Placement("model", section_address, output_section, output_start, tuple(self.notes),
                         LINKER_NAMES[self.flavour], pieces, symbols=dict(self.symbols),
                         got_address=got.addr if got is not None and id(got.output) in placed_ids else None)


def _walk(expr: Expr) -> Iterator[Expr]:
    """Every node of `expr`, parents first, without recursion."""
    children = {Unary: ("operand",), Binary: ("left", "right"), Ternary: ("condition", "then", "otherwise")}
    pending = [expr]
    while pending:
        node = pending.pop()
        yield node
        pending += reversed([getattr(node, attr) for attr in children.get(type(node), ())])
        if isinstance(node, Call):
            pending += reversed([arg for arg in node.args if not isinstance(arg, str)])


def _command_expressions(command) -> list[Expr]:
    if isinstance(command, OutputSectionDescription):
        own = [command.address, command.lma, command.align, command.subalign, command.fill]
        return [e for e in own if e is not None] + [e for c in command.commands for e in _command_expressions(c)]
    return [command.expr] if isinstance(command, (Assignment, Assert, DataStatement)) else []


def _expressions(script: LinkerScript):
    for command in script.commands:
        for expr in _command_expressions(command):
            yield from _walk(expr)
    for region in script.memory:
        yield from _walk(region.origin)
        yield from _walk(region.length)


def _assignments(script: LinkerScript):
    for command in script.commands:
        if isinstance(command, Assignment):
            yield command
        elif isinstance(command, OutputSectionDescription):
            yield from (c for c in command.commands if isinstance(c, Assignment))


def _global_symbols(obj: ElfInput) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """Defined global symbols (name -> (section, value)) and undefined ones: what a script can see."""
    syms = obj.symbols
    rows = np.flatnonzero(syms["info"] >> 4 != 0)  # not STB_LOCAL
    sections = obj.symbol_sections[rows]
    names = obj.symbol_names(rows)
    defining = np.flatnonzero((sections > 0) | (sections == SECTION_ABS))
    defined = dict(zip([names[k] for k in defining.tolist()],
                       zip(sections[defining].tolist(), syms["value"][rows[defining]].tolist())))
    return defined, {names[k] for k in np.flatnonzero(sections == SHN_UNDEF).tolist()}


# --- the two ways of building the command list -----------------------------------------------


def _default_output_name(name: str) -> str:
    if name == "COMMON":
        return ".bss"
    return next((p[:-1] for p in _DEFAULT_PREFIXES if name.startswith(p) or name == p[:-1]), name)


def _default_layout(layout: _Layout) -> None:
    """No SECTIONS: lld's built-in rules, with the headers and PT_LOAD page steps that go with them."""
    for inp in layout.inputs:
        name = _default_output_name(inp.name)
        layout.outputs.setdefault(name, _Output(name)).append(inp)
    _finish_outputs(layout, list(layout.outputs.values()))
    layout.commands = sorted(layout.outputs.values(), key=lambda o: o.rank)
    loaded = [o for o in layout.commands if _needs_load(o)]
    relro_end = next((o for prev, o in zip(loaded, loaded[1:]) if _is_relro(prev) and not _is_relro(o)), None)
    headers = 3  # PT_PHDR, the PT_LOAD holding the headers, PT_GNU_STACK
    flags = (False, False)
    for out in loaded:
        if _segment_flags(out) != flags or out is relro_end:
            out.page_aligned, flags = True, _segment_flags(out)
            headers += 1
    headers += any(o.flags & SHF_TLS for o in layout.commands) + any(map(_is_relro, layout.commands))
    headers += ".note.gnu.property" in layout.outputs  # PT_GNU_PROPERTY
    previous = None
    for out in layout.commands:
        is_note = out.sh_type == SHT_NOTE and bool(out.flags & SHF_ALLOC)
        headers += is_note and (previous is None or previous.align != out.align)
        previous = out if is_note else None
    elf_header, program_header = (64, 56) if layout.obj.is64 else (52, 32)
    layout.start = layout.arch.image_base + elf_header + program_header * headers


def _finish_outputs(layout: _Layout, outputs: list[_Output]) -> None:
    """Size the synthetic .eh_frame (it depends on what was discarded), then settle each output."""
    live = {inp.index for inp in layout.inputs if not inp.discarded}
    for inp in layout.inputs:
        if inp.name == ".eh_frame" and inp.index is not None and not inp.discarded:
            inp.size = _eh_frame_size(layout.obj, inp.index, live, layout.flavour)
    for out in outputs:
        out.finish()
        out.rank = _rank(out)
    if layout.flavour == "gnu":
        _gnu_merge(layout)


def _gnu_merge(layout: _Layout) -> None:
    """GNU ld merges SHF_MERGE sections in the final link (its `ld -r` leaves duplicates in): the
    first section of each kind takes the size of the merged contents; read object by object, each
    object's section takes the size of the entries it holds first."""
    _gnu_merge_shares(layout)
    groups: dict[int, list[_Input]] = {}
    for inp in layout.inputs:
        if inp.merge_key is not None and inp.index is not None and not inp.discarded:
            head = inp.folded_into or inp
            groups.setdefault(id(head), [head]).extend([inp] if inp is not head else [])
    for members in groups.values():
        head = members[0]
        sections = [layout.obj.sections[m.index] for m in members]
        entsize = layout.obj.elffile.get_section(head.index)["sh_entsize"]
        if not entsize or any(s.size % entsize for s in sections):
            continue  # GNU ld leaves such a section unmerged
        if head.flags & SHF_STRINGS:
            head.size = _gnu_merged_strings([layout.obj.section_data(s.index) for s in sections], entsize, head.align)
        else:
            head.size = entsize * len({data[i:i + entsize] for s in sections
                                       for data in (layout.obj.section_data(s.index),)
                                       for i in range(0, len(data), entsize)})
        if all(s.size % head.align == 0 for s in sections):  # inputs padded to their alignment: so is the output
            head.size = _align_to(head.size, head.align)


def _gnu_merge_shares(layout: _Layout) -> None:
    """The pieces of one merge section in one output section, in input order, sized as GNU ld does:
    each by the entries first seen in it (from its own start); one that adds none takes no room.
    Each string's place is kept (`string_places`): a string deduplicated away is where its copy is."""
    groups: dict[tuple[int, int], list[_Input]] = {}
    for inp in layout.inputs:
        if inp.merge_share and not inp.discarded:
            groups.setdefault((id(inp.output), inp.index), []).append(inp)
    for members in groups.values():
        entsize = layout.obj.elffile.get_section(members[0].index)["sh_entsize"]
        data = layout.obj.section_data(members[0].index)
        contents = [bytes(data[m.piece_offset:m.piece_offset + m.size]) for m in members]
        if not entsize or any(len(piece) % entsize for piece in contents):
            continue  # GNU ld leaves such sections unmerged
        if members[0].flags & SHF_STRINGS:
            shares, places = _gnu_string_shares(contents, entsize, max(m.align for m in members))
            layout.string_places[members[0].index] = [(members[n], offset, members[holder], at)
                                                      for n, offset, holder, at in places]
        else:
            first_seen: dict[bytes, int] = {}
            for number, piece in enumerate(contents):
                for i in range(0, len(piece), entsize):
                    first_seen.setdefault(piece[i:i + entsize], number)
            shares = [entsize * n for n in np.bincount(list(first_seen.values()), minlength=len(contents)).tolist()]
        for member, share in zip(members, shares):
            member.size = share
            member.align = member.align if share else 1


@dataclass
class _GnuStrings:
    """GNU ld's merged strings: each distinct string once, in first-seen order, with its alignment
    (the largest power of two dividing its input offset, up to the section's) and the number of
    the section it was first seen in; `tail_of` the longer kept string each dropped one is the tail
    of; `occurrences` (section number, offset, string) of every string in the inputs."""

    alignment: dict[bytes, int]
    first_seen: dict[bytes, int]
    tail_of: dict[bytes, bytes]
    occurrences: list[tuple[int, int, bytes]]


def _gnu_strings(contents: list[bytes], entsize: int, section_align: int) -> _GnuStrings:
    """Read the strings as GNU ld does: the first run of padding at an aligned offset adds an empty
    string; a string is dropped when it is the tail of a longer one at an offset its alignment allows."""
    terminator = bytes(entsize)
    alignment: dict[bytes, int] = {}
    first_seen: dict[bytes, int] = {}
    occurrences = []
    for number, data in enumerate(contents):
        offset, padded = 0, False
        while offset < len(data):
            end = _unit_at(data, terminator, offset)
            string = data[offset:end]
            align = min(offset & -offset or section_align, section_align)
            alignment[string] = max(alignment.get(string, 0), align)
            first_seen.setdefault(string, number)
            occurrences.append((number, offset, string))
            offset = end + entsize
            while data[offset:offset + entsize] == terminator:  # padding up to the next string
                if not padded and offset % section_align == 0:
                    padded = True
                    alignment[b""] = max(alignment.get(b"", 0), section_align)
                    first_seen.setdefault(b"", number)
                offset += entsize
    uniform = len(set(alignment.values())) == 1 and next(iter(alignment.values()), 0) > entsize
    order = sorted(alignment, key=lambda t: ((len(t) & (alignment[t] - 1)) if uniform else 0, t[::-1], len(t)))
    tail_of = {}
    holder = order[-1] if order else None
    for string in reversed(order[:-1]):
        gap = len(holder) - len(string)
        if alignment[holder] >= alignment[string] and gap > 0 and gap % alignment[string] == 0 \
                and holder.endswith(string):
            tail_of[string] = holder
        else:
            holder = string
    return _GnuStrings(alignment, first_seen, tail_of, occurrences)


def _gnu_merged_strings(contents: list[bytes], entsize: int, section_align: int) -> int:
    """The size of GNU ld's merged strings (before padding): the kept strings in first-seen order."""
    strings = _gnu_strings(contents, entsize, section_align)
    size = 0
    for string, align in strings.alignment.items():
        if string not in strings.tail_of:
            size = _align_to(size, align) + len(string) + entsize
    return size


def _gnu_string_shares(contents: list[bytes], entsize: int, section_align: int
                       ) -> tuple[list[int], list[tuple[int, int, int, int]]]:
    """How much of GNU ld's merged strings each section holds (the kept strings first seen in it,
    from its own start), and where each string of the inputs went: (section number, offset in it,
    number of the section holding it, offset there)."""
    strings = _gnu_strings(contents, entsize, section_align)
    shares = [0] * len(contents)
    held: dict[bytes, tuple[int, int]] = {}
    for string, align in strings.alignment.items():
        if string not in strings.tail_of:
            number = strings.first_seen[string]
            start = _align_to(shares[number], align)
            held[string] = (number, start)
            shares[number] = start + len(string) + entsize
    for string, holder in strings.tail_of.items():
        number, start = held[holder]
        held[string] = (number, start + len(holder) - len(string))
    return shares, [(number, offset, *held[string]) for number, offset, string in strings.occurrences]


def _unit_at(data: bytes, unit: bytes, start: int) -> int:
    """The offset of the first `unit` at or after `start` on a unit boundary (from `start`), else the end."""
    position = start
    while (position := data.find(unit, position)) >= 0 and (position - start) % len(unit):
        position += 1
    return position if position >= 0 else len(data)


def _script_layout(layout: _Layout, script: LinkerScript) -> None:
    """Assign inputs to the script's output sections, add orphans, drop empty sections, place orphans."""
    matcher = _FirstMatch()
    described: list[_Output] = []
    for command in script.commands:
        if not isinstance(command, OutputSectionDescription):
            layout.commands.append(command)
            continue
        out = _Output(command.name, command)
        layout.outputs.setdefault(command.name, out)
        layout.commands.append(out)
        described.append(out)
        for d, item in enumerate(command.commands):
            if isinstance(item, InputSectionDescription) and _file_matches(item.file_glob, layout.obj.path):
                for p, pattern in enumerate(item.patterns):
                    if not any(_file_matches(f, layout.obj.path) for f in pattern.exclude_files):
                        for glob in pattern.globs:
                            matcher.add((len(described) - 1, d, p), glob)
    matched: dict[tuple[int, int], list[tuple[int, _Input]]] = {}
    unmatched: list[_Input] = []
    for inp, key in zip(layout.inputs, matcher.first([inp.name for inp in layout.inputs])):
        if key is None:
            unmatched.append(inp)
        else:
            matched.setdefault(key[:2], []).append((key[2], inp))
    for o, out in enumerate(described):
        subalign = layout.value(out.desc.subalign) if out.desc.subalign is not None else None
        for d, item in enumerate(out.desc.commands):
            if not isinstance(item, InputSectionDescription):
                out.body.append(item)
                continue
            members = _order_description(matched.get((o, d), []), item.patterns)
            for inp in members:
                inp.discarded = out.name == "/DISCARD/"
                inp.align = inp.align if subalign is None else subalign
            out.body.append(members)
    orphans: list[_Output] = []
    for inp in unmatched:
        name = ".bss" if inp.name == "COMMON" else inp.name
        if name not in layout.outputs:
            layout.outputs[name] = _Output(name)
            orphans.append(layout.outputs[name])
        layout.outputs[name].append(inp)
    layout.commands = [c for c in layout.commands if not (isinstance(c, _Output) and c.name == "/DISCARD/")]
    layout.commands += orphans
    _finish_outputs(layout, [c for c in layout.commands if isinstance(c, _Output)])
    _drop_empty_sections(layout, script)
    _place_orphans(layout.commands, orphans, bool(script.phdrs or script.memory))
    if placed := [o.name for o in orphans if o.flags & SHF_ALLOC]:
        layout.notes.append(f"{len(placed)} orphan output section(s) placed by lld's orphan rules ({placed[0]}, ...)"
                            + ("; GNU ld's differ and are not modelled" if layout.flavour == "gnu" else ""))
    _assign_regions(layout, script)


def _file_matches(glob: str, path) -> bool:
    if glob == "*":
        return True
    regex = _glob_regex(glob)
    return bool(regex.fullmatch(str(path)) or regex.fullmatch(path.name))


def _order_description(members: list[tuple[int, _Input]], patterns: tuple[SectionPattern, ...]) -> list[_Input]:
    """lld's computeInputSections: unsorted runs in input order, each SORT pattern's matches sorted."""
    ordered: list[_Input] = []
    run: list[_Input] = []
    for p, pattern in enumerate(patterns):
        matches = [inp for q, inp in members if q == p]
        if pattern.sort_outer is None:
            run += matches
            continue
        ordered += sorted(run, key=lambda i: i.order)
        run = []
        if pattern.sort_outer != "none":
            for policy in (pattern.sort_inner, pattern.sort_outer):
                if policy in ("name", "alignment", "priority"):
                    matches.sort(key={"name": lambda i: i.name.encode(), "alignment": lambda i: -i.align,
                                      "priority": lambda i: _init_priority(i.name)}[policy])
        ordered += matches
    return ordered + sorted(run, key=lambda i: i.order)


def _init_priority(name: str) -> int:
    before, dot, suffix = name.rpartition(".")
    return int(suffix) if dot and suffix.isdigit() else 65536


def _drop_empty_sections(layout: _Layout, script: LinkerScript) -> None:
    """lld's adjustSectionsBeforeSorting: empty sections inherit the previous flags or vanish.

    GNU ld instead ignores every described section of size 0 that does not assign to `.`, symbol
    assignments or not: the symbols in it get the address it would have, and the location counter
    stays where it was (ld.lld keeps such a section, and moves the counter to its alignment)."""
    used = {e.args[0] for e in _expressions(script) if isinstance(e, Call) and e.function in ("ADDR", "LOADADDR")}
    flags, kept = SHF_ALLOC, []
    for command in layout.commands:
        if isinstance(command, _Output):
            if layout.flavour == "gnu" and command.desc is not None and _gnu_ignores(command):
                command.ignored = True
            elif command.has_inputs:
                flags = command.flags
            else:
                non_alloc = command.desc is not None and command.desc.section_type not in (None, "NOLOAD")
                command.flags = flags & ((0 if non_alloc else SHF_ALLOC) | SHF_WRITE | SHF_EXECINSTR)
                command.rank = _rank(command)
                if _discardable(command, layout.declared, used):
                    if layout.outputs.get(command.name) is command:
                        del layout.outputs[command.name]
                    continue
        kept.append(command)
    layout.commands = kept


def _gnu_ignores(out: _Output) -> bool:
    """GNU ld's test for a section it leaves out of the layout: nothing in it has a size, and
    nothing in it assigns to the location counter."""
    return not any(inp.size for inp in out.inputs) and not any(
        isinstance(c, DataStatement) or (isinstance(c, Assignment) and c.name == ".") for c in out.desc.commands)


def _discardable(out: _Output, declared: set[str], used: set[str]) -> bool:
    """lld's isDiscardable for an empty described section: nothing but input descriptions and
    unreferenced PROVIDEs, no symbol in its expressions, not named by ADDR/LOADADDR."""
    if out.name in used or any(isinstance(e, Sym) and e.name != "."
                               for x in _command_expressions(out.desc) for e in _walk(x)):
        return False
    return all(isinstance(c, InputSectionDescription) or
               (isinstance(c, Assignment) and c.name != "." and c.name not in declared)
               for c in out.desc.commands)


def _proximity(orphan: _Output, command) -> int:
    if not (isinstance(command, _Output) and command.has_inputs):
        return -1
    return 32 - (orphan.rank ^ command.rank).bit_length()


def _skippable(command) -> bool:
    return isinstance(command, Assignment) and command.name != "."


def _place_orphans(commands: list, orphans: list[_Output], constrained: bool) -> None:
    """lld's sortSections: orphans (stably sorted by rank) go after the last section of the
    closest rank, in groups of equal rank."""
    if not orphans:
        return
    first_orphan = len(commands) - len(orphans)
    commands[first_orphan:] = sorted(orphans, key=lambda o: o.rank)
    begin = next((i for i, c in enumerate(commands) if not _skippable(c)), len(commands))
    if begin < len(commands) and not isinstance(commands[begin], _Output):
        begin += 1
    current = first_orphan
    while current < len(commands):
        orphan = commands[current]
        end = current + 1
        while end < len(commands) and commands[end].rank == orphan.rank:
            end += 1
        position = _orphan_position(commands, begin, current, orphan, constrained)
        commands[position:end] = commands[current:end] + commands[position:current]
        current = end


def _orphan_position(commands: list, begin: int, end: int, orphan: _Output, constrained: bool) -> int:
    """lld's findOrphanPos."""
    if begin >= end:
        return end
    found = max(range(begin, end), key=lambda i: _proximity(orphan, commands[i]))
    if not isinstance(commands[found], _Output):
        return end
    proximity = _proximity(orphan, commands[found])
    rank = max(orphan.rank, commands[found].rank) if constrained else orphan.rank
    i = found
    while i < end:
        command = commands[i]
        if isinstance(command, _Output) and command.has_inputs and (
                _proximity(orphan, command) != proximity or rank < command.rank):
            break
        i += 1
    while i > begin and _proximity(orphan, commands[i - 1]) < 0:
        i -= 1
    if all(_proximity(orphan, c) < 0 for c in commands[i:end]):
        return end
    while i < end and _skippable(commands[i]):
        i += 1
    return i


def _assign_regions(layout: _Layout, script: LinkerScript) -> None:
    """lld's findMemoryRegion: the named region, else an orphan continues the previous one, else
    the first region whose attributes fit the section's flags."""
    for region in script.memory:
        flags = negated = 0
        invert = False
        for char in region.attributes.lower():
            bit = {"w": SHF_WRITE, "x": SHF_EXECINSTR, "a": SHF_ALLOC}.get(char, 0)
            invert ^= char == "!"
            if invert:
                negated |= bit
            else:
                flags |= bit
        layout.regions[region.name] = _Region(layout.value(region.origin), layout.value(region.length), flags, negated)
    previous = None
    for out in (c for c in layout.commands if isinstance(c, _Output)):
        if not out.flags & SHF_ALLOC:
            out.region = None
        elif out.desc is not None and out.desc.region is not None:
            if out.desc.region not in layout.regions:
                raise ReachlsError(f"memory region '{out.desc.region}' not declared", f"{script.path}:{out.desc.line}")
            out.region = layout.regions[out.desc.region]
        elif layout.regions:
            out.region = previous if out.desc is None and previous else next(
                (r for r in layout.regions.values() if r.flags & out.flags and not r.negated_flags & out.flags), None)
            if out.region is None:
                raise ReachlsError(f"no memory region fits section '{out.name}'", script.path)
        previous = out.region


def model_layout(obj: ElfInput, script: LinkerScript | None, arch: Architecture, flavour: str = "lld",
                 got_entries: Callable[[], int] = _no_got, objects: list[ObjectSection] | None = None) -> Placement:
    """Where ld.lld 14 (`flavour` "lld") or GNU ld ("gnu") would put each allocated input section
    of `obj` when linking it with `script`; `got_entries()` symbols have a slot in the linker's .got
    (asked for once every section is read, so counting them, which reads every relocation table,
    can run beside that).
    With `objects`, the link reads those objects' sections instead of `obj` (a GCC kernel's
    vmlinux.a): `obj`'s sections are placed piece by piece (`Placement.pieces`)."""
    layout = _Layout(obj, script, arch, flavour, got_entries, objects)
    if script is None or not script.has_sections:
        _default_layout(layout)
    else:
        _script_layout(layout, script)
    layout.assign_addresses()
    layout.notes.append("range-extension thunks and erratum patches are not modelled; "
                        "addresses after a thunk shift by its size")
    return layout.placement()
