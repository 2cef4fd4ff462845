"""The AArch64 reach table, checked at its edges against ld.lld.

For each relocation type, a site and four targets are placed by a linker script exactly at the
last reachable distance on each side and one step beyond it. ld.lld (with --noinhibit-exec)
says which are out of range, with the value and the range it checked; a thunk symbol in the
output says which it bridged with a veneer. Each section gets its own load address (AT) so that
the output file stays small whatever the distances. reachls must agree on every case, with both engines.
"""

from __future__ import annotations


import pytest

from reachls.arch.aarch64 import KINDS
from reachls.pipeline import ScanOptions, scan
from reachls.record import Status
from toolchain import compile_aarch64, link_noinhibit, lld_overflows, nm_symbols

INSTRUCTIONS = {
    "R_AARCH64_CONDBR19": "cbz x0, {t}",
    "R_AARCH64_TSTBR14": "tbnz w1, #3, {t}",
    "R_AARCH64_ADR_PREL_LO21": "adr x0, {t}",
    "R_AARCH64_LD_PREL_LO19": "ldr x0, {t}",
    "R_AARCH64_JUMP26": "b {t}",
    "R_AARCH64_CALL26": "bl {t}",
    "R_AARCH64_ADR_PREL_PG_HI21": "adrp x0, {t}",
    "R_AARCH64_PREL16": ".hword {t} - .",
    "R_AARCH64_PREL32": ".word {t} - .",
    "R_AARCH64_MOVW_PREL_G0": "movz x0, #:prel_g0:{t}",
    "R_AARCH64_MOVW_PREL_G1": "movz x0, #:prel_g1:{t}",
}
SITE_BASE = 1 << 36
SITE_SPACING = 1 << 34


def _edges(kind) -> list[int]:
    """Last reachable distance on each side, and one step (alignment or page) past each."""
    step = 4096 if kind.formula == "page" else kind.alignment
    top = kind.hi // step * step
    bottom = -(-kind.lo // step * step)
    return [top, top + step, bottom, bottom - step]


@pytest.fixture(scope="module", params=sorted(INSTRUCTIONS))
def edge_case(request, tmp_path_factory):
    """One relocation type: the object, its linker script, the linked output and ld.lld's log."""
    kind = next(k for k in KINDS.values() if k.name == request.param)
    tmp = tmp_path_factory.mktemp(kind.short_name)
    distances = _edges(kind)
    asm, script = [], ["SECTIONS {"]
    for i, distance in enumerate(distances):
        site = SITE_BASE + i * SITE_SPACING
        asm += [f'.section .site{i},"ax"', f".globl site{i}", f"site{i}:",
                "  " + INSTRUCTIONS[kind.name].format(t=f"target{i}"),
                f'.section .target{i},"ax"', f".globl target{i}", f"target{i}:", "  ret"]
        script += [f"  .site{i} {site:#x} : AT({2 * i + 1:#x}0000) {{ *(.site{i}) }}",
                   f"  .target{i} {site + distance:#x} : AT({2 * i + 2:#x}0000) {{ *(.target{i}) }}"]
    (tmp / "edges.S").write_text("\n".join(asm) + "\n")
    (tmp / "edges.lds").write_text("\n".join(script) + "\n}\n")
    obj = compile_aarch64(tmp / "edges.S", tmp / "edges.o")
    log = link_noinhibit(tmp / "edges.lds", [obj], tmp / "edges.elf")
    return kind, distances, obj, tmp / "edges.lds", tmp / "edges.elf", log


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_statuses_agree_with_lld_at_the_edges(edge_case, engine):
    kind, distances, obj, script, image, log = edge_case
    errors = {e.symbol: e for e in lld_overflows(log)}
    thunks = {name for name in nm_symbols(image) if "Thunk" in name}
    result = scan(obj, ScanOptions(engine=engine, script=script, include_ok=True))
    records = {r.target.symbol: r for r in result.analysis.records}
    assert len(records) == len(distances)
    for symbol, record in records.items():
        assert record.kind.name == kind.name
        if symbol in errors:
            error = errors[symbol]
            assert (record.status, record.distance) == (Status.OVERFLOW, error.distance)
            assert (kind.lo, kind.hi) == (error.lo, error.hi)
        elif any(thunk.endswith("_" + symbol) for thunk in thunks):
            assert record.status is Status.VENEER
            assert not kind.in_range(record.distance)
        else:
            assert kind.in_range(record.distance)
            assert record.status is Status.AT_RISK
    assert any(r.status in (Status.OVERFLOW, Status.VENEER) for r in records.values()), "no edge was crossed"
