"""SiteKey: a reference's identity across rebuilds, from a record and from its JSON; and
pairing by it (equal keys in site order, the rest new or gone)."""

from __future__ import annotations

import json

from reachls.arch.aarch64 import KINDS
from reachls.baseline import Baseline, Change, compare, record_from_json
from reachls.pipeline import ScanOptions, scan
from reachls.record import Provenance, ReachRecord, Site, SiteKey, Status, Target

CONDBR19 = next(k for k in KINDS.values() if k.name == "R_AARCH64_CONDBR19")


def _record(symbol: str | None, symbol_offset: int | None, offset: int, distance: int, target: str = "hyp_panic",
            section: str = ".text", address: int = 0x1000) -> ReachRecord:
    return ReachRecord(
        CONDBR19,
        Site(section, 1, offset, address + offset, symbol, symbol_offset, ".text", "cbz", None),
        Target(target, f".text.{target}", 2, 0, address + offset + distance, 0, ".text", None),
        distance, Status.OVERFLOW if distance > CONDBR19.hi else Status.FRAGILE,
        Provenance("vmlinux.o", 0.0, "relocatable", "relink", "ld.lld"))


def test_the_key_is_function_offset_type_and_target_never_the_address():
    here = _record("__guest_enter", 0x20, 0x20, 0x200000, address=0x1000)
    moved = _record("__guest_enter", 0x20, 0x420, 0x300000, address=0x9000)  # the function moved, grew
    assert here.site_key == moved.site_key == SiteKey("__guest_enter", 0x20, "R_AARCH64_CONDBR19", "hyp_panic")
    assert str(here.site_key) == "__guest_enter+0x20 R_AARCH64_CONDBR19 → hyp_panic"
    assert _record("__guest_enter", 0x24, 0x24, 0).site_key != here.site_key
    assert _record("__guest_enter", 0x20, 0x20, 0, target="other").site_key != here.site_key


def test_a_site_outside_any_symbol_is_named_by_its_section():
    record = _record(None, None, 0x90, 0x100, section=".entry.text")
    assert record.site_key == SiteKey(".entry.text", 0x90, "R_AARCH64_CONDBR19", "hyp_panic")
    assert str(record.site_key) == ".entry.text+0x90 R_AARCH64_CONDBR19 → hyp_panic"


def test_from_json_gives_the_key_of_the_record(tree):
    """Every record of a real scan: the key read back from its JSON is its own."""
    result = scan(tree / "out" / "overflow", ScanOptions(engine="relink", include_ok=True))
    assert len(result.analysis.records) > 100
    for record in result.analysis.records:
        row = json.loads(record.to_json_line())
        assert SiteKey.from_json(row) == record.site_key
        assert record_from_json(row).to_json() == record.to_json()


def test_from_json_of_a_log_record_without_a_symbol_offset():
    """A record read from a linker log alone knows the function but not the offset in it."""
    row = json.loads(_record("__guest_enter", None, 0x20, 0x200000).to_json_line())
    assert SiteKey.from_json(row) == SiteKey("__guest_enter", None, "R_AARCH64_CONDBR19", "hyp_panic")
    assert str(SiteKey.from_json(row)) == "__guest_enter R_AARCH64_CONDBR19 → hyp_panic"


def test_equal_keys_are_paired_in_site_order_and_the_extra_one_is_new():
    """Two static functions of one name: one key for two references. The one later in its section
    pairs with the later one; a third is new; a key the scan now lacks is gone."""
    before = [_record("f", 0, 0x800, 0x1000), _record("f", 0, 0x100, 0x2000), _record("g", 0, 0x900, 0x10)]
    now = [_record("f", 0, 0x900, 0x1000), _record("f", 0, 0x200, 0x2100), _record("f", 0, 0x950, 0x10)]
    comparison = compare(now, Baseline("old.json", before, 0, complete=True))
    changes = {(p.now and p.now.site.offset, p.before and p.before.site.offset): p.change for p in comparison.pairs}
    assert changes == {(0x200, 0x100): Change.WORSE, (0x900, 0x800): Change.SAME, (0x950, None): Change.NEW,
                       (None, 0x900): Change.GONE}
