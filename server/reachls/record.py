"""The reach record: one PC-relative reference of a short-reach kind, with its distance and status.

Everything downstream (source findings, the CLI report, the language server) reads these
records and nothing else from the analysis, so the fields follow design.md's reach record and
`to_json` is the stable, documented JSON form.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

MIB = 1 << 20
DEFAULT_THRESHOLD = 0.75


class Status(str, Enum):
    """Ordered worst first; `rank` sorts reports and implements `--fail-on`."""

    OVERFLOW = "overflow"
    VENEER = "veneer"
    AT_RISK = "at-risk"
    FRAGILE = "fragile"
    OK = "ok"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]


_STATUS_RANK = {status: rank for rank, status in enumerate(Status)}


class Formula(str, Enum):
    """How the value a linker range-checks is computed from S+A and the place P.

    PREL: S+A - P', P' being P plus the kind's `place_offset`, rounded down to its
    `place_alignment` (Arm's PC-relative loads read the PC word-aligned; a MIPS J-type jump stays
    in the 256 MiB region of its delay slot: P+4 rounded down to 256 MiB, range [0, 256 MiB)).
    PAGE: Page(S+A) - Page(P). GOT/GOT_PAGE: the same against the symbol's GOT entry."""

    PREL = "prel"
    PAGE = "page"
    GOT = "got"
    GOT_PAGE = "got_page"

    @property
    def is_page(self) -> bool:
        return self in (Formula.PAGE, Formula.GOT_PAGE)

    @property
    def is_got(self) -> bool:
        return self in (Formula.GOT, Formula.GOT_PAGE)


@dataclass(frozen=True)
class RelocKind:
    """A relocation type with a bounded reach, described the way the linker checks it.

    `lo`/`hi` are the inclusive bounds of the value the linker range-checks, in bytes;
    `formula` says how that value is computed from S+A and P (`Formula`).
    `thunk` is true when linkers bridge an out-of-range value with a veneer instead of failing.
    """

    arch: str
    name: str
    number: int
    lo: int
    hi: int
    alignment: int
    thunk: bool
    formula: Formula = Formula.PREL
    place_offset: int = 0
    place_alignment: int = 1

    @property
    def short_name(self) -> str:
        """The type name without the `R_<ARCH>_` prefix, as people say it (CONDBR19)."""
        return self.name.split("_", 2)[2] if self.name.count("_") >= 2 else self.name

    @property
    def reach_text(self) -> str:
        """`±1 MiB` when symmetric, `[-32 KiB, +64 KiB)` otherwise."""
        if -self.lo == self.hi + 1:
            return f"±{format_size(self.hi + 1)}"
        if self.lo == 0:  # forward only
            return f"[0, +{format_size(self.hi + 1)})"
        return f"[-{format_size(-self.lo)}, +{format_size(self.hi + 1)})"

    def usage(self, distance: int) -> float:
        """Distance relative to the bound on its side (1.0 = the last reachable byte)."""
        if distance < 0 and self.lo == 0:  # forward-only reach (Thumb PC8): any step back is out
            return float("inf")
        return distance / self.hi if distance >= 0 else distance / self.lo

    def headroom(self, distance: int) -> int:
        """Bytes left before the bound on the distance's side; negative when out of range."""
        return self.hi - distance if distance >= 0 else distance - self.lo

    def in_range(self, distance: int) -> bool:
        return self.lo <= distance <= self.hi and distance % self.alignment == 0


def format_size(nbytes: int) -> str:
    """Power-of-two sizes as kernel people write them: 1 MiB, 32 KiB, 4 GiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:g} {unit}" if value == int(value) else f"{value:.2f} {unit}"
    return f"{nbytes} B"


@dataclass(frozen=True)
class SourceLocation:
    file: str  # normalised absolute path as the build machine saw it
    line: int
    column: int  # 0 if unknown


@dataclass(frozen=True)
class Site:
    """Where the referencing instruction is: input section + offset, final address, enclosing symbol.

    A record read from a linker log alone (`ReachRecord.verified` false) knows only what the log
    printed: the object, section, offset, enclosing function and the linker's own source line;
    the index, address, symbol offset and instruction are None."""

    section: str
    section_index: int | None
    offset: int
    address: int | None
    symbol: str | None
    symbol_offset: int | None
    output_section: str | None
    instruction: str | None
    location: SourceLocation | None
    object: str | None = None  # the input object a linker log names


@dataclass(frozen=True)
class Target:
    """What it references: symbol, its section and final address, the addend."""

    symbol: str
    section: str | None
    section_index: int | None
    offset: int | None  # None (as address and addend) when only a linker log was read
    address: int | None
    addend: int | None
    output_section: str | None
    location: SourceLocation | None


@dataclass(frozen=True)
class Provenance:
    """Which artefact produced the record, when it was built, which engine placed it, and whose
    layout that engine gave (`linker`: "ld.lld", "GNU ld", or None when the image has its own)."""

    artefact: str
    artefact_mtime: float
    mode: str
    engine: str
    linker: str | None = None

    @property
    def placed_by(self) -> str:
        return placed_by(self.engine, self.linker)


def placed_by(engine: str, linker: str | None) -> str:
    """An engine and whose layout it gave, as reports name them: `relink (GNU ld)`, `linked`."""
    return f"{engine} ({linker})" if linker else engine


@dataclass(frozen=True, order=True)
class SiteKey:
    """A reference's identity that survives a rebuild (baselines, history): the enclosing function
    and the offset within it, the relocation type and the target symbol, never an address, which
    moves with every byte added before it. A site outside any symbol is named by its input section.
    Two references may share a key (one function, one type, one target, one offset of a static
    function of the same name in two files): whoever matches keys pairs them in order."""

    function: str
    offset: int | None
    relocation: str
    target: str

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "SiteKey":
        """The key of a record in a JSON report (`ReachRecord.to_json`), for an earlier report as baseline."""
        site = record["site"]
        function, offset = site.get("symbol"), site.get("symbol_offset")
        if function is None:
            function, offset = site["section"], site.get("offset")
        return cls(function, offset, record["kind"]["type"], record["target"]["symbol"])

    def __str__(self) -> str:
        where = self.function if self.offset is None else f"{self.function}+{self.offset:#x}"
        return f"{where} {self.relocation} → {self.target}"


@dataclass(frozen=True)
class ReachRecord:
    """`verified` is false for a record read from a linker log whose object was not at hand: its
    fields are what the linker printed, unchecked, and `distance` is None where the linker
    printed none (GNU ld); usage and headroom are then None too."""

    kind: RelocKind
    site: Site
    target: Target
    distance: int | None
    status: Status
    provenance: Provenance
    verified: bool = True

    @property
    def usage(self) -> float | None:
        return None if self.distance is None else self.kind.usage(self.distance)

    @property
    def headroom(self) -> int | None:
        return None if self.distance is None else self.kind.headroom(self.distance)

    @property
    def distance_mib(self) -> float | None:
        return None if self.distance is None else self.distance / MIB

    @property
    def site_key(self) -> SiteKey:
        if self.site.symbol is None:
            return SiteKey(self.site.section, self.site.offset, self.kind.name, self.target.symbol)
        return SiteKey(self.site.symbol, self.site.symbol_offset, self.kind.name, self.target.symbol)

    @property
    def worst_first(self) -> tuple[int, float]:
        """Sort key: status, then usage; an overflow the linker gave no distance for counts as
        just out of range (all the log says)."""
        usage = self.usage
        return self.status.rank, -(1.0 if usage is None else usage)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form documented in README.md (one object per record)."""
        return {"kind": _kind_json(self.kind), **self._fields_json(), "provenance": _provenance_json(self.provenance)}

    def to_json_line(self) -> str:
        """`json.dumps(self.to_json())`, written field by field: the kind and provenance objects, which
        whole runs of records share, encoded once each, and every other value by the C string escaper
        or `repr` as `json` itself does (building the dict and encoding it took ~10 us per record; a
        kernel scan with --all writes 100 k records)."""
        site, target, usage = self.site, self.target, self.usage
        return (f'{{"kind": {_encoded_kind(self.kind)}, "site": {{"section": {_string(site.section)}, '
                f'"offset": {_integer(site.offset)}, "address": {_integer(site.address)}, '
                f'"output_section": {_string(site.output_section)}, "symbol": {_string(site.symbol)}, '
                f'"symbol_offset": {_integer(site.symbol_offset)}, "instruction": {_string(site.instruction)}, '
                f'"source": {_encoded_location(site.location)}, "object": {_string(site.object)}}}, '
                f'"target": {{"symbol": {_string(target.symbol)}, "section": {_string(target.section)}, '
                f'"offset": {_integer(target.offset)}, "address": {_integer(target.address)}, '
                f'"addend": {_integer(target.addend)}, "output_section": {_string(target.output_section)}, '
                f'"source": {_encoded_location(target.location)}}}, "distance": {_integer(self.distance)}, '
                f'"usage": {"null" if usage is None else _float(round(usage, 6))}, '
                f'"headroom": {_integer(self.headroom)}, "status": {_string(self.status.value)}, '
                f'"verified": {"true" if self.verified else "false"}, '
                f'"provenance": {_encoded_provenance(self.provenance)}}}')

    def _fields_json(self) -> dict[str, Any]:
        """The members of `to_json` between its kind and its provenance."""
        usage = self.usage
        return {
            "site": {
                "section": self.site.section, "offset": self.site.offset, "address": self.site.address,
                "output_section": self.site.output_section,
                "symbol": self.site.symbol, "symbol_offset": self.site.symbol_offset,
                "instruction": self.site.instruction, "source": _location_json(self.site.location),
                "object": self.site.object,
            },
            "target": {
                "symbol": self.target.symbol, "section": self.target.section, "offset": self.target.offset,
                "address": self.target.address, "addend": self.target.addend,
                "output_section": self.target.output_section, "source": _location_json(self.target.location),
            },
            "distance": self.distance,
            "usage": None if usage is None else round(usage, 6),
            "headroom": self.headroom,
            "status": self.status.value,
            "verified": self.verified,
        }


def _kind_json(kind: RelocKind) -> dict[str, Any]:
    return {"arch": kind.arch, "type": kind.name, "number": kind.number, "range": [kind.lo, kind.hi],
            "alignment": kind.alignment, "thunk": kind.thunk, "formula": kind.formula.value,
            "place_offset": kind.place_offset, "place_alignment": kind.place_alignment}


def _provenance_json(provenance: Provenance) -> dict[str, Any]:
    return {"artefact": provenance.artefact, "artefact_mtime": provenance.artefact_mtime, "mode": provenance.mode,
            "engine": provenance.engine, "linker": provenance.linker}


@lru_cache(maxsize=None)
def _encoded_kind(kind: RelocKind) -> str:
    return json.dumps(_kind_json(kind))


@lru_cache(maxsize=None)
def _encoded_provenance(provenance: Provenance) -> str:
    return json.dumps(_provenance_json(provenance))


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _integer(value: int | None) -> str:
    return "null" if value is None else int.__repr__(value)


def _float(value: float) -> str:
    """As `json` writes a float: its repr, or Infinity (a backward reach of a forward-only kind)."""
    return float.__repr__(value) if math.isfinite(value) else json.dumps(value)


def _encoded_location(location: SourceLocation | None) -> str:
    """`json.dumps(_location_json(location))`."""
    if location is None:
        return "null"
    return (f'{{"file": {encode_basestring_ascii(location.file)}, "line": {int.__repr__(location.line)}, '
            f'"column": {int.__repr__(location.column)}}}')


def _location_json(location: SourceLocation | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {"file": location.file, "line": location.line, "column": location.column}
