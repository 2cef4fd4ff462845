"""`reachls picture`: the SVG and the HTML page rendered in headless Chromium (tests/unit/front/picture_probe.js,
with the playwright-core the VS Code extension's build installs), and what is drawn checked against
the real link of the example: every section edge, site, target and reach window where a linear
address axis puts the addresses llvm-nm, the image's section headers and ld.lld's own errors give.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from reachls import picture
from reachls.cli import main
from reachls.pipeline import ScanOptions, scan
from test_vscode_client import package_extension
from test_vscode_e2e import chromium
from toolchain import build_example, copy_example, lld_site_addresses, need, nm_symbols, objdump_targets, run

PROBE = Path(__file__).resolve().parent / "picture_probe.js"
#: How far (page pixels) a drawn position may be from where its address belongs: 0.05 px is about
#: 100 bytes on the example's 2.2 MiB axis — one element drawn at a wrong address is ~1 px off or more.
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example(copy_example(tmp_path_factory.mktemp("picture")), "overflow")


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where playwright-core is: the extension's own build (its end-to-end test drives Chromium with it)."""
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return package_extension(tmp_path_factory) / "node_modules"


def probe(file: Path, node_modules: Path) -> dict:
    result = subprocess.run(["node", str(PROBE), str(file), chromium()], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NODE_PATH": str(node_modules)})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def linked_sections(image: Path) -> dict[str, tuple[int, int]]:
    """Allocated section name → (address, size), from the image's own section headers."""
    with open(image, "rb") as stream:
        return {s.name: (s["sh_addr"], s["sh_size"]) for s in ELFFile(stream).iter_sections() if s["sh_flags"] & 2}


@pytest.mark.parametrize("suffix", [".svg", ".html"])
def test_each_record_drawn_where_the_linker_put_it(build: Path, node_modules: Path, tmp_path: Path, suffix: str,
                                                   capsys: pytest.CaptureFixture[str]):
    need("llvm-nm", "llvm-objdump")
    output = tmp_path / f"layout{suffix}"
    assert main(["picture", str(build), "--all", "-o", str(output)]) == 0
    assert main(["scan", str(build), "--all", "--format", "json"]) == 0
    reported = json.loads(capsys.readouterr().out)["records"]
    seen = probe(output, node_modules)

    # Self-contained: the page asked for nothing, and nothing was refused or failed.
    assert seen["requests"] == [] and seen["console"] == [], seen

    # One element per record: as many overflows as ld.lld printed, every other reported record too.
    image = build / "vmlinux.noinhibit"
    errors = lld_site_addresses((build / "noinhibit.log").read_text(), build)
    records = seen["records"]
    assert len(errors) == 3
    assert len(records) == len(reported) > 100
    assert sum(r["data"]["status"] == "overflow" for r in records) == len(errors)

    # The axis: the output sections' left edges against the image's section headers, one straight line.
    sections = linked_sections(image)
    drawn = {s["data"]["name"]: s["rect"] for s in seen["outputSections"]}
    assert set(drawn) == {name for name, (_, size) in sections.items() if size} | ({".rodata"} & set(drawn))
    names = sorted(drawn, key=lambda name: sections[name][0])
    addresses = np.array([sections[name][0] - sections[names[0]][0] for name in names], dtype=np.float64)
    lefts = np.array([drawn[name]["left"] for name in names])
    slope, intercept = np.polyfit(addresses, lefts, 1)
    assert slope > 0

    def x(address: int) -> float:
        return intercept + slope * (address - sections[names[0]][0])

    assert np.abs(lefts - [x(sections[n][0]) for n in names]).max() < TOLERANCE, (names, lefts)
    for name in names:  # a wide box ends at its end; a tiny one keeps a visible minimum width
        start, size = sections[name]
        width = drawn[name]["right"] - drawn[name]["left"]
        if slope * size > 2:
            assert abs(drawn[name]["right"] - x(start + size)) < TOLERANCE, name
        else:
            assert width >= 1.5, (name, width)

    # ld.lld's errors: the site where its function and offset landed, the target where llvm-nm
    # says, the reach window around the site ending at ld.lld's bound (or clipped at the axis' end).
    symbols = nm_symbols(image)
    overflows = [r for r in records if r["data"]["status"] == "overflow"]
    for site, rtype, distance, lo, hi, target in errors:
        match = [r for r in overflows if abs(r["parts"]["site"]["center"] - x(site)) < TOLERANCE
                 and r["data"]["type"] == rtype and r["data"]["targetSymbol"] == target]
        assert len(match) == 1, (hex(site), rtype, [r["parts"]["site"]["center"] for r in overflows], x(site))
        record = match[0]
        assert abs(record["parts"]["target"]["center"] - x(symbols[target])) < TOLERANCE
        window = record["parts"]["window"]
        assert abs(window["right"] - min(x(site + hi), drawn[names[-1]]["right"])) < TOLERANCE, (window, x(site + hi))
        assert abs(window["left"] - max(x(site + lo), drawn[names[0]]["left"])) < TOLERANCE, (window, x(site + lo))
        tip = record["data"].get("tip") or record["title"]
        assert f"{distance} B" in tip, tip

    # Every other record: its target at llvm-nm's address, its site on an instruction of the
    # image that llvm-objdump decodes as going to that target (or its page, for adrp).
    decoded = objdump_targets(image)
    targets_of: dict[int, list[int]] = {}
    for address, (mnemonic, goes_to) in decoded.items():
        if goes_to is not None:
            targets_of.setdefault(goes_to, []).append(address)
    checked_targets = checked_sites = 0
    for record in records:
        name = record["data"]["targetSymbol"]
        if name not in symbols:
            continue  # a section-relative target (`.entry.text+0x28`): no symbol of its own in the image
        assert abs(record["parts"]["target"]["center"] - x(symbols[name])) < TOLERANCE + slope * 0x100, record
        checked_targets += 1
        if record["data"]["status"] == "overflow":
            continue
        candidates = targets_of.get(symbols[name], []) + targets_of.get(symbols[name] & ~0xFFF, [])
        if candidates:
            site_x = record["parts"]["site"]["center"]
            assert min(abs(site_x - x(c)) for c in candidates) < TOLERANCE, (record["data"], site_x)
            checked_sites += 1
    assert checked_targets > 100 and checked_sites > 100, (checked_targets, checked_sites)

    # Hover: the HTML page's tooltip shows each record; a bare SVG carries it as each element's title.
    if suffix == ".html":
        assert len(seen["hovers"]) == len(records)
        for record, hover in zip(records, seen["hovers"]):
            assert hover is not None and hover.startswith(record["data"]["status"] + ":"), (record["data"], hover)
            assert record["data"]["siteSymbol"] in hover and record["data"]["targetSymbol"] in hover
    else:
        assert all(r["title"] and r["title"].startswith(r["data"]["status"] + ":") for r in records)

    # Labels never cover each other (the rest are culled, the names are in the titles).
    for band in {label["top"] for label in seen["labels"]}:
        row = sorted((l for l in seen["labels"] if l["top"] == band), key=lambda l: l["left"])
        assert all(a["right"] <= b["left"] for a, b in zip(row, row[1:])), row
    assert seen["inputSections"] and any(s["data"]["name"].startswith(".text.filler") for s in seen["inputSections"])


def test_picture_output_must_be_svg_or_html(build: Path, tmp_path: Path):
    result = run(sys.executable, "-m", "reachls.cli", "picture", build, "-o", tmp_path / "layout.png", check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "svg or .html" in result.stderr, result.stderr
    result = run(sys.executable, "-m", "reachls.cli", "picture", build, "-o", tmp_path / "missing" / "layout.svg", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot write" in result.stderr, result.stderr


def test_only_the_worst_records_drawn_and_the_rest_counted(build: Path, monkeypatch: pytest.MonkeyPatch):
    """Past `DRAWN_RECORDS` (a kernel's --all: ~100 000) the worst are drawn and the title counts the rest."""
    monkeypatch.setattr(picture, "DRAWN_RECORDS", 50)
    result = scan(build, ScanOptions(include_ok=True))
    document = ET.fromstring(picture.picture_svg(picture.layout_picture(result)))
    drawn = [g for g in document.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "record"]
    worst = result.analysis.records[:50]
    assert [(g.get("data-status"), g.get("data-type")) for g in drawn] == [(r.status.value, r.kind.name) for r in worst]
    assert [g.get("data-status") for g in drawn[:3]] == ["overflow"] * 3
    title = next(t for t in document.iter("{http://www.w3.org/2000/svg}text") if t.get("font-weight") == "bold").text
    assert f"{len(result.analysis.records) - 50} more reported, not drawn" in title, title
