"""The DWARF byte walks source mapping needs, done below pyelftools for speed.

pyelftools makes Python objects per item: a construct parse and a `LineState` copy for every line
row (~2.4 s for one kernel-sized line program of 44k rows), a `DIE` with every attribute value
decoded for every entry of a CU (~1.8 s to find one CU's subprograms), a construct per file entry
of a line program header and per attribute spec of an abbreviation table (together ~9 s of a
tinyconfig kernel's 1 100 line programs). The loops here read the bytes directly and keep only
what source mapping needs: line program headers and opcodes, abbreviation tables, a DIE skipper,
the attribute values of the few DIEs kept. pyelftools stays the fallback for what is not read
here (VLIW line programs, DW_FORM_indirect, DWARF 5 strx file names) and the oracle in
tests/unit/readers/test_dwarfline.py."""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np
from elftools.dwarf.enums import ENUM_DW_AT, ENUM_DW_FORM, ENUM_DW_TAG

# Rows of a line program in program order: the state registers (address, file, line, column) at
# each DW_LNS_copy, special opcode and DW_LNE_end_sequence (end=True); `defined` holds the
# (name, dir_index) of DW_LNE_define_file entries, which continue the header's file table.
LineRows = namedtuple("LineRows", "address file line column end defined")


class DamagedDwarf(Exception):
    """Bytes of a debug section that do not read as DWARF, said in a few words: they cost the source
    lines of the unit holding them, never the scan."""


F = TypeVar("F", bound=Callable[..., Any])


def _reading(what: str) -> Callable[[F], F]:
    """A byte walk over `what` that runs off the end of its bytes (IndexError, a string without its
    terminator) or meets a number no table can hold is damaged DWARF: said once, here, for every
    read in the walk."""
    def wrap(walk: F) -> F:
        @functools.wraps(walk)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                return walk(*args, **kwargs)
            except IndexError:
                raise DamagedDwarf(f"{what} runs past the end of its bytes") from None
            except ValueError:
                raise DamagedDwarf(f"{what} has a string without its terminating NUL") from None
            except OverflowError:
                raise DamagedDwarf(f"{what} holds a number too large for its field") from None
        return checked  # type: ignore[return-value]
    return wrap


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _sleb(data: bytes, pos: int) -> tuple[int, int]:
    start = pos
    value, pos = _uleb(data, pos)
    bits = 7 * (pos - start)
    return (value - (1 << bits) if value >> (bits - 1) & 1 else value), pos


@_reading("line program")
def line_rows(program: bytes, header: Any, little: bool, mask: int) -> LineRows | None:
    """Decode the opcodes of one line program (`program`: its bytes after the header, relocations
    applied; `header`: pyelftools' parsed header) as pyelftools' `get_entries()` does, addresses
    wrapped to `mask`. None if maximum_operations_per_instruction != 1 (VLIW op_index: not here)."""
    decoded = _decode(program, header, little, mask, 0, len(program), len(program), resumed=False)
    return None if decoded is None else decoded.rows


class Sequences(NamedTuple):
    """The rows `sequence_rows` decoded, and which bytes it read to get them."""

    rows: LineRows  # whole sequences, the registers as the header starts them
    first: int  # where the first of them starts: just after the end of the sequence the walk began in
    stop: int  # just after the DW_LNE_end_sequence of the last


@_reading("line program")
def sequence_rows(data: bytes, header: Any, little: bool, mask: int, start: int, until: int) -> Sequences | None:
    """The sequences of the line program `header` describes (`program_start`/`program_end`: where its
    opcodes lie in `data`) from `start` to the end of the one holding byte `until`, without decoding
    the rest: `start` is the program's first opcode, or an opcode inside a sequence (such as a
    DW_LNE_set_address): a sequence starts from the header's initial registers, so the rows of the
    one `start` falls in are walked only to find its end, and dropped. `first` > `until` says `start`
    was in the sequence of `until` itself. None for VLIW programs, as `line_rows`."""
    return _decode(data, header, little, mask, start, header["program_end"], until,
                   resumed=start != header["program_start"])


def _decode(program: bytes, header: Any, little: bool, mask: int, pos: int, stop: int, until: int,
            resumed: bool) -> Sequences | None:
    """The opcode walk of `line_rows` and `sequence_rows`, from byte `pos` to `stop` or to the end of the
    sequence holding `until`; `resumed`: `pos` is inside a sequence whose rows are dropped."""
    if header["maximum_operations_per_instruction"] != 1:
        return None
    if header["line_range"] == 0:
        raise DamagedDwarf("line program header with line_range 0")
    base, span, unit = header["opcode_base"], header["line_range"], header["minimum_instruction_length"]
    operands = header["standard_opcode_lengths"]
    step, lstep = [0] * 256, [0] * 256  # special opcodes: address and line advance
    for op in range(base, 256):
        step[op], lstep[op] = (op - base) // span * unit, header["line_base"] + (op - base) % span
    const_add, order = (255 - base) // span * unit, "little" if little else "big"
    if resumed:  # the rows up to the first end_sequence: only skipped over
        at, pos = _end_of_sequence(program, pos, stop, base, operands)
        if at > until:  # `pos` was inside the sequence of `until`: nothing to decode
            stop = pos
    first = pos
    addrs: list[int] = []
    regs: list[int] = []  # file, line, column of each row, flat: numpy converts that 3x faster than tuples
    ends: list[int] = []
    defined: list[tuple[bytes, int]] = []
    address, file, line, column = 0, 1, 1, 0
    while pos < stop:
        op = program[pos]
        pos += 1
        if op >= base:  # special opcode: advance, then a row (the opcodes below, most frequent first)
            address += step[op]
            line += lstep[op]
        elif op == 5:  # DW_LNS_set_column (one-byte ULEB128 inline)
            column = program[pos]
            pos += 1
            if column >= 0x80:
                column, pos = _uleb(program, pos - 1)
            continue
        elif op == 1:  # DW_LNS_copy
            pass
        elif op == 6:  # DW_LNS_negate_stmt (GCC toggles is_stmt often): no operand, no row
            continue
        elif op == 0:  # extended: length, sub-opcode, operands
            at = pos - 1
            n, pos = _uleb(program, pos)
            sub, nxt = program[pos], pos + n
            pos = nxt  # DW_LNE_set_discriminator and unknown ones: skipped
            if sub == 1:  # DW_LNE_end_sequence: a row, then the registers reset
                ends.append(len(addrs))
                addrs.append(address)
                regs.extend((file, line, column))
                address, file, line, column = 0, 1, 1, 0
                if at > until:
                    break
            elif sub == 2:  # DW_LNE_set_address, operand of the address size
                address = int.from_bytes(program[nxt - n + 1:nxt], order)
            elif sub == 3:  # DW_LNE_define_file: name, directory, mtime, length
                end = program.index(0, nxt - n + 1)
                dir_index, _ = _uleb(program, end + 1)
                defined.append((program[nxt - n + 1:end], dir_index))
            continue
        elif op == 2:  # DW_LNS_advance_pc
            n, pos = _uleb(program, pos)
            address += n * unit
            continue
        elif op == 3:  # DW_LNS_advance_line (one-byte SLEB128 inline)
            n = program[pos]
            if n < 0x80:
                line += n - 0x80 if n & 0x40 else n
                pos += 1
            else:
                n, pos = _sleb(program, pos)
                line += n
            continue
        elif op == 4:  # DW_LNS_set_file
            file, pos = _uleb(program, pos)
            continue
        elif op == 8:  # DW_LNS_const_add_pc
            address += const_add
            continue
        elif op == 9:  # DW_LNS_fixed_advance_pc: uhalf operand
            address += int.from_bytes(program[pos:pos + 2], order)
            pos += 2
            continue
        else:  # basic_block, prologue_end, epilogue_begin: nothing; set_isa: one;
            for _ in range(1 if op == 12 else 0 if op < 12 else operands[op - 1]):  # unknown: as declared
                _, pos = _uleb(program, pos)
            continue
        addrs.append(address)
        regs.extend((file, line, column))
    if addrs and max(addrs) > mask:  # a step back is a wrapping DW_LNS_advance_pc
        addrs = [a & mask for a in addrs]
    table = np.array(regs, dtype=np.int64).reshape(-1, 3)
    end_flags = np.zeros(len(addrs), dtype=bool)
    end_flags[ends] = True
    rows = LineRows(np.array(addrs, dtype=np.uint64), table[:, 0], table[:, 1], table[:, 2], end_flags, defined)
    return Sequences(rows, first, pos)


# LEB128 operands of the standard opcodes that have them and no other kind (DWARF 5, 6.2.5.2); those
# past 12 as the header declares, 9 (fixed_advance_pc) a uhalf.
_LEB_OPERANDS = {2: 1, 3: 1, 4: 1, 5: 1, 12: 1}


def _end_of_sequence(program: bytes, pos: int, stop: int, base: int, operands: list[int]) -> tuple[int, int]:
    """(where the first DW_LNE_end_sequence from `pos` is, where the bytes after it start), by opcode
    lengths alone: no registers, no rows; (stop, stop) if the program ends first."""
    lebs = [_LEB_OPERANDS.get(op, 0) if op <= 12 else operands[op - 1] for op in range(base)]
    while pos < stop:
        op = program[pos]
        pos += 1
        if op >= base:
            continue
        if op == 0:
            n, at = _uleb(program, pos)
            if program[at] == 1:
                return pos - 1, at + n
            pos = at + n
        elif op == 9:
            pos += 2
        else:
            for _ in range(lebs[op]):
                while program[pos] & 0x80:
                    pos += 1
                pos += 1
    return stop, stop


# DWARF 5 line table entry formats: the content types kept, and the forms of their values.
_LNCT_PATH, _LNCT_DIRECTORY_INDEX = 1, 2
_FORM_STRING, _FORM_STRP, _FORM_LINE_STRP, _FORM_UDATA = 0x08, 0x0E, 0x1F, 0x0F
_FORM_DATA = {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x1E: 16}  # data1/2/4/8/16 (MD5 is data16)


@_reading("line program header")
def line_header(data: bytes, offset: int, little: bool,
                string: Callable[[str, int], bytes]) -> dict[str, Any] | None:
    """The header of the line program at `offset` of .debug_line (`data`, relocations applied), as the
    keys of pyelftools' header that source mapping uses, `file_entry` as (name, dir_index) pairs, and
    `program_start`/`program_end` (the opcodes). `string(section, offset)` reads .debug_str or
    .debug_line_str. None where a form is not read here (DWARF 5 strx, block): pyelftools then.
    pyelftools builds a construct object per file and directory: most of the cost of a kernel's lines."""
    order = "little" if little else "big"

    def number(pos: int, size: int) -> tuple[int, int]:
        return int.from_bytes(data[pos:pos + size], order), pos + size

    length, pos = number(offset, 4)
    offset_size = 4
    if length == 0xFFFFFFFF:
        length, pos = number(pos, 8)
        offset_size = 8
    end = pos + length
    if end > len(data):
        raise DamagedDwarf(f"line program at {offset:#x}: unit_length {length:#x} runs past the end of .debug_line")
    version, pos = number(pos, 2)
    if version >= 5:
        pos += 2  # address_size, segment_selector_size
    header_length, pos = number(pos, offset_size)
    start = pos + header_length
    if start > end:
        raise DamagedDwarf(f"line program at {offset:#x}: header_length {header_length:#x} runs past its unit")
    header: dict[str, Any] = {"version": version, "program_start": start, "program_end": end}
    header["minimum_instruction_length"], pos = data[pos], pos + 1
    header["maximum_operations_per_instruction"], pos = (data[pos], pos + 1) if version >= 4 else (1, pos)
    pos += 1  # default_is_stmt
    header["line_base"], header["line_range"], header["opcode_base"] = data[pos] - (data[pos] & 0x80) * 2, \
        data[pos + 1], data[pos + 2]
    pos += 3
    header["standard_opcode_lengths"] = list(data[pos:pos + header["opcode_base"] - 1])
    pos += header["opcode_base"] - 1
    if version < 5:
        dirs = []
        while data[pos]:
            stop = data.index(0, pos)
            dirs.append(data[pos:stop])
            pos = stop + 1
        pos += 1
        files = []
        while data[pos]:
            stop = data.index(0, pos)
            name = data[pos:stop]
            dir_index, pos = _uleb(data, stop + 1)
            pos = _uleb(data, _uleb(data, pos)[1])[1]  # mtime, length
            files.append((name, dir_index))
        header["include_directory"], header["file_entry"] = dirs, files
        return header
    tables = []
    for _ in range(2):  # directories, then files: a format, then the entries
        formats = []
        count, pos = data[pos], pos + 1
        for _ in range(count):
            kind, pos = _uleb(data, pos)
            form, pos = _uleb(data, pos)
            formats.append((kind, form))
        count, pos = _uleb(data, pos)
        if count > end - pos:  # every entry takes a byte at least
            raise DamagedDwarf(f"line program at {offset:#x}: {count} entries in {end - pos} bytes")
        entries = []
        for _ in range(count):
            entry: dict[int, Any] = {}
            for kind, form in formats:
                if form == _FORM_STRING:
                    stop = data.index(0, pos)
                    value, pos = data[pos:stop], stop + 1
                elif form in (_FORM_STRP, _FORM_LINE_STRP):
                    at, pos = number(pos, offset_size)
                    value = string(".debug_str" if form == _FORM_STRP else ".debug_line_str", at)
                elif form == _FORM_UDATA:
                    value, pos = _uleb(data, pos)
                elif form in _FORM_DATA:
                    value, pos = number(pos, _FORM_DATA[form])
                else:
                    return None
                entry[kind] = value
            entries.append(entry)
        tables.append(entries)
    header["include_directory"] = [d.get(_LNCT_PATH, b"") for d in tables[0]]
    header["file_entry"] = [(f.get(_LNCT_PATH, b""), f.get(_LNCT_DIRECTORY_INDEX, 0)) for f in tables[1]]
    return header


_TAG_NAMES = {number: name for name, number in ENUM_DW_TAG.items() if isinstance(number, int)}
_AT_NAMES = {number: name for name, number in ENUM_DW_AT.items() if isinstance(number, int)}
_FORM_NAMES = {number: name for name, number in ENUM_DW_FORM.items() if isinstance(number, int)}


# (attribute, form) numbers → the named spec of an abbreviation: one tuple each, shared by every table.
_SPECS: dict[tuple[int, int], tuple[str | int, str | int, None]] = {}


class Abbreviation(NamedTuple):
    """One abbreviation declaration: the DIE tag and its (attribute, form, implicit constant) specs,
    named as pyelftools names them (numbers it does not know stay numbers). A named tuple: a GCC
    kernel has ~60 k of them, built faster than frozen dataclasses."""

    tag: str | int
    specs: tuple[tuple[str | int, str | int, int | None], ...]


@_reading("abbreviation table")
def abbreviations(data: bytes, offset: int, until: int | None = None) -> dict[int, Abbreviation]:
    """The abbreviation table at `offset` of .debug_abbrev, code → declaration; with `until`, only as
    far as the declaration of that code (a unit's top DIE mostly has the first). pyelftools parses
    one with a construct per attribute spec: ~13 ms for one of GCC's CUs, paid once per CU."""
    table: dict[int, Abbreviation] = {}
    pos = offset
    while pos < len(data):
        code, pos = _uleb(data, pos)
        if code == 0:
            break
        tag, pos = _uleb(data, pos)
        pos += 1  # DW_CHILDREN_yes/no: the DIE walk follows the null entries instead
        specs = []
        while True:  # names and forms mostly fit one byte: no call for those
            name, pos = (data[pos], pos + 1) if data[pos] < 0x80 else _uleb(data, pos)
            form, pos = (data[pos], pos + 1) if data[pos] < 0x80 else _uleb(data, pos)
            if form == 0x21:  # DW_FORM_implicit_const: the value lives here
                value, pos = _sleb(data, pos)
                specs.append((_AT_NAMES.get(name, name), "DW_FORM_implicit_const", value))
            elif (spec := _SPECS.get((name, form))) is not None:
                specs.append(spec)
            elif name == 0 and form == 0:
                break
            else:
                spec = (_AT_NAMES.get(name, name), _FORM_NAMES.get(form, form), None)
                specs.append(_SPECS.setdefault((name, form), spec))
        table[code] = Abbreviation(_TAG_NAMES.get(tag, tag), tuple(specs))
        if code == until:
            break
    return table


class UnitHeader(NamedTuple):
    """The fields of a .debug_info unit header source mapping reads; offsets from the unit's start."""

    version: int
    address_size: int
    offset_size: int
    abbrev_offset: int
    die: int  # the unit's top DIE
    size: int  # the unit's bytes, its header included


# DWARF 5 unit types with more header after debug_abbrev_offset: skeleton and split compile units
# (dwo_id), type units (signature, then a type offset of the offset size).
_UNIT_EXTRA = {4: 8, 5: 8, 2: 8, 6: 8}
_UNIT_TYPE_OFFSET = (2, 6)


@_reading("unit header")
def unit_header(data: bytes, offset: int, little: bool) -> UnitHeader:
    """The header of the .debug_info unit at `offset` of `data` (relocations applied: its
    debug_abbrev_offset is relocated in a relocatable input), as pyelftools reads it but without
    parsing, through its section stream, the whole section it needs relocated first."""
    order = "little" if little else "big"
    length, pos, offset_size = int.from_bytes(data[offset:offset + 4], order), offset + 4, 4
    if length == 0xFFFFFFFF:
        length, pos, offset_size = int.from_bytes(data[pos:pos + 8], order), pos + 8, 8
    size = pos - offset + length
    version, pos = int.from_bytes(data[pos:pos + 2], order), pos + 2
    if not 2 <= version <= 5:
        raise DamagedDwarf(f"unit at {offset:#x} of DWARF version {version}")
    if version >= 5:
        unit_type, address_size = data[pos], data[pos + 1]
        abbrev_offset, pos = int.from_bytes(data[pos + 2:pos + 2 + offset_size], order), pos + 2 + offset_size
        pos += _UNIT_EXTRA.get(unit_type, 0) + (offset_size if unit_type in _UNIT_TYPE_OFFSET else 0)
    else:
        abbrev_offset, pos = int.from_bytes(data[pos:pos + offset_size], order), pos + offset_size
        address_size, pos = data[pos], pos + 1
    if pos - offset > size:
        raise DamagedDwarf(f"unit at {offset:#x}: unit_length {length:#x} shorter than its header")
    return UnitHeader(version, address_size, offset_size, abbrev_offset, pos - offset, size)


_SIZE = {"DW_FORM_flag_present": 0, "DW_FORM_implicit_const": 0, "DW_FORM_data16": 16,
         **dict.fromkeys(("DW_FORM_data1", "DW_FORM_ref1", "DW_FORM_flag", "DW_FORM_strx1", "DW_FORM_addrx1"), 1),
         **dict.fromkeys(("DW_FORM_data2", "DW_FORM_ref2", "DW_FORM_strx2", "DW_FORM_addrx2"), 2),
         **dict.fromkeys(("DW_FORM_strx3", "DW_FORM_addrx3"), 3),
         **dict.fromkeys(("DW_FORM_data4", "DW_FORM_ref4", "DW_FORM_strx4", "DW_FORM_addrx4",
                          "DW_FORM_ref_sup4"), 4),
         **dict.fromkeys(("DW_FORM_data8", "DW_FORM_ref8", "DW_FORM_ref_sig8", "DW_FORM_ref_sup8"), 8)}
_OFFSET = ("DW_FORM_strp", "DW_FORM_sec_offset", "DW_FORM_line_strp", "DW_FORM_strp_sup",
           "DW_FORM_GNU_ref_alt", "DW_FORM_GNU_strp_alt")
# Variable sizes, as negative steps: a LEB128; a ULEB128 length + bytes; a C string; blocks with a
# 1, 2 or 4 byte length.
_LEB, _BLOCK, _STRING, _BLOCK1, _BLOCK2, _BLOCK4 = -1, -2, -3, -4, -5, -6
_VARIABLE = {"DW_FORM_string": _STRING, "DW_FORM_block": _BLOCK, "DW_FORM_exprloc": _BLOCK,
             "DW_FORM_block1": _BLOCK1, "DW_FORM_block2": _BLOCK2, "DW_FORM_block4": _BLOCK4,
             **dict.fromkeys(("DW_FORM_udata", "DW_FORM_sdata", "DW_FORM_ref_udata", "DW_FORM_strx",
                              "DW_FORM_addrx", "DW_FORM_loclistx", "DW_FORM_rnglistx",
                              "DW_FORM_GNU_addr_index", "DW_FORM_GNU_str_index"), _LEB)}


_SIBLING_FORMS = ("DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8")


def _form_sizes(address_size: int, offset_size: int, version: int) -> dict[str, int]:
    """Byte size of each fixed-size form in a unit of these parameters."""
    return {**_SIZE, **dict.fromkeys(_OFFSET, offset_size), "DW_FORM_addr": address_size,
            "DW_FORM_ref_addr": address_size if version == 2 else offset_size}


@_reading("DIE tree")
def die_offsets(unit: bytes, start: int, abbrev: dict[int, Abbreviation], keep: Callable[[Abbreviation], bool],
                address_size: int, offset_size: int, version: int, little: bool,
                skip_children: Callable[[Abbreviation], bool] = lambda decl: False) -> list[int] | None:
    """Offsets in `unit` (one unit's bytes) of the DIEs from `start` on whose abbreviation
    declaration (`abbrev[code]`) satisfies `keep`, in file order, found by skipping
    attribute values by form; None if a form is not handled here (DW_FORM_indirect, unknown).
    The children of a DIE whose declaration satisfies `skip_children` are jumped over when it
    has a DW_AT_sibling (GCC gives one to most DIEs with children) after fixed-size values only."""
    sizes = _form_sizes(address_size, offset_size, version)
    # Per code: (keep it, its byte size when every form has a fixed size, else None, the steps,
    # (where its DW_AT_sibling value starts after the code, its width) when its children are jumped over).
    plans: dict[int, tuple[bool, int | None, tuple[int, ...], tuple[int, int] | None]] = {}
    order = "little" if little else "big"
    found, pos, stop = [], start, len(unit)
    while pos < stop:
        die, code = pos, unit[pos]
        pos += 1
        if code >= 0x80:  # most codes fit one byte: no call for them (this loop runs per DIE)
            code, pos = _uleb(unit, die)
        if code == 0:  # null entry: end of a sibling list
            continue
        if (plan := plans.get(code)) is None:
            steps: list[int] = []
            sibling = None
            if (decl := abbrev.get(code)) is None:
                return None
            jump = skip_children(decl)
            for name, form, _ in decl.specs:
                if (size := sizes.get(form)) is None and (size := _VARIABLE.get(form)) is None:
                    return None
                if jump and name == "DW_AT_sibling" and form in _SIBLING_FORMS and all(step >= 0 for step in steps):
                    sibling = (sum(steps), size)
                if size >= 0 and steps and steps[-1] >= 0:
                    steps[-1] += size
                else:
                    steps.append(size)
            fixed = 0 if not steps else steps[0] if len(steps) == 1 and steps[0] >= 0 else None
            plan = plans[code] = (keep(decl), fixed, tuple(steps), sibling)
        wanted, fixed, steps, sibling = plan
        if wanted:
            found.append(die)
        if sibling is not None and (after := int.from_bytes(unit[pos + sibling[0]:pos + sum(sibling)], order)) > die:
            pos = after  # a unit-relative reference: the next DIE at this DIE's level
            continue
        if fixed is not None:  # most DIEs: one step over them, no loop
            pos += fixed
            continue
        for size in steps:
            if size >= 0:
                pos += size
            elif size == _LEB:
                while unit[pos] & 0x80:
                    pos += 1
                pos += 1
            elif size == _BLOCK:
                size, pos = _uleb(unit, pos)
                pos += size
            elif size == _STRING:
                pos = unit.index(0, pos) + 1
            else:
                width = (1, 2, 4)[_BLOCK1 - size]
                pos += width + int.from_bytes(unit[pos:pos + width], order)
    return found


@_reading("DIE")
def die_code(unit: bytes, pos: int) -> int:
    """The abbreviation code of the DIE at `pos` in `unit`."""
    return _uleb(unit, pos)[0]


@_reading("DIE")
def die_attributes(unit: bytes, pos: int, abbrev: dict[int, Abbreviation], address_size: int, offset_size: int,
                   version: int, little: bool) -> dict[str, tuple[str, int | bytes | None]] | None:
    """Attribute name → (form, raw value) of the DIE at `pos` in `unit`, as pyelftools' `raw_value`:
    integers for constant, address, index, offset and reference forms (references relative to the
    unit unless DW_FORM_ref_addr), the bytes of DW_FORM_string, None for flags and blocks (not
    needed here); None for the whole DIE if a form is not handled here (or an unknown code)."""
    return dies_attributes(unit, [pos], abbrev, address_size, offset_size, version, little)[0]


@_reading("DIE")
def dies_attributes(unit: bytes, positions: list[int], abbrev: dict[int, Abbreviation], address_size: int,
                    offset_size: int, version: int, little: bool, wanted: frozenset[str] | None = None
                    ) -> list[dict[str, tuple[str, int | bytes | None]] | None]:
    """`die_attributes` of the DIEs at `positions` in one unit; with `wanted`, each read only as far
    as the last of those attributes its abbreviation has (a CU's thousands of subprograms: their
    address range, not their names and frame bases)."""
    sizes = _form_sizes(address_size, offset_size, version)
    order = "little" if little else "big"
    read: dict[int, tuple[tuple[str | int, str | int, int | None], ...]] = {}  # per code: the specs read
    found: list[dict[str, tuple[str, int | bytes | None]] | None] = []
    for pos in positions:
        code, pos = _uleb(unit, pos)
        if (specs := read.get(code)) is None and code in abbrev:
            specs = abbrev[code].specs
            if wanted is not None:
                specs = specs[:max((k + 1 for k, (name, _, _) in enumerate(specs) if name in wanted), default=0)]
            read[code] = specs
        values: dict[str, tuple[str, int | bytes | None]] | None = None if specs is None else {}
        for name, form, implicit in specs or ():
            value: int | bytes | None = None
            if form == "DW_FORM_implicit_const":
                value = implicit
            elif form == "DW_FORM_sdata":
                value, pos = _sleb(unit, pos)
            elif (size := sizes.get(form)) is not None:
                value, pos = int.from_bytes(unit[pos:pos + size], order) if size else None, pos + size
            elif (step := _VARIABLE.get(form)) == _LEB:
                value, pos = _uleb(unit, pos)
            elif step == _BLOCK:
                size, pos = _uleb(unit, pos)
                pos += size
            elif step == _STRING:
                end = unit.index(0, pos)
                value, pos = unit[pos:end], end + 1
            elif step is not None:
                width = (1, 2, 4)[_BLOCK1 - step]
                pos += width + int.from_bytes(unit[pos:pos + width], order)
            else:
                values = None
                break
            values[name] = (form, value)
        found.append(values)
    return found
