"""The history's trend line in hover, and the function code lenses, through real clients: the
server over stdio driven by pytest-lsp, and a headless Neovim (tests/clients/nvim/init.lua).

Headrooms come from each build's linked image (llvm-nm, llvm-objdump; test_history.py), overflow
distances and the functions that hold them from ld.lld's own errors.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_support import SERVER_COMMAND, server_session, uri, wait_for
from test_history import HISTORY, image_headroom
from test_neovim import neovim_session
from toolchain import HISTORY_THRESHOLD, need

ENTRY = Path("arch/arm64/kvm/hyp/entry.S")
SWITCH = Path("arch/arm64/kvm/hyp/vhe/switch.c")
_SITE_IN = re.compile(r"in `([\w.$]+)\+(0x[0-9a-f]+)`")
#: An ld.lld out-of-range error: the function holding the site, type, distance, bounds, target, source line.
_LLD_ERROR = re.compile(r"\(function ([^:]+): [^)]*\): relocation (R_\w+) out of range: (-?\d+) is not in "
                        r"\[(-?\d+), (-?\d+)\]; references '?([^'\s]+)'?\n>>> referenced by \S+ \((.+):(\d+)\)")


def _params(root: Path, **options: object) -> types.InitializeParams:
    return types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=uri(root),
                                  workspace_folders=[types.WorkspaceFolder(uri(root), "tree")],
                                  initialization_options=options)


def kib(nbytes: int) -> str:
    """Bytes as the hover writes them: whole KiB, a minus sign (U+2212) for a loss."""
    return f"{'−' if nbytes < 0 else ''}{abs(nbytes) / 1024:.0f} KiB"


def expected_trend(images: list[Path], hover: str, relocation: str) -> str:
    """The trend line for the site a hover is about, from the three images."""
    function, offset = _SITE_IN.search(hover).groups()
    headrooms = [image_headroom(image, function, int(offset, 16), relocation) for image in images]
    rate = (headrooms[-1] - headrooms[0]) / 2
    remaining = math.floor(headrooms[-1] / -rate) + 1
    return (f"headroom {kib(headrooms[-1])}, {kib(headrooms[-1] - headrooms[0])} over the last 3 builds; "
            f"out of range in {remaining} build{'' if remaining == 1 else 's'} at this rate")


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_says_the_trend_over_the_recorded_builds(growing_builds):
    tree, build, images = growing_builds
    async with server_session(SERVER_COMMAND, _params(tree, buildDirs=[str(build)],
                                                      threshold=HISTORY_THRESHOLD)) as client:
        diagnostics = await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), timeout=60,
                                     what="diagnostics on entry.S")
        assert len(diagnostics) >= 3
        for diagnostic in diagnostics:
            hover = await client.text_document_hover_async(types.HoverParams(
                types.TextDocumentIdentifier(uri(tree / ENTRY)), diagnostic.range.start))
            assert hover is not None
            assert f"| trend | {expected_trend(images, hover.contents.value, diagnostic.code)} |" \
                in hover.contents.value, hover.contents.value


@pytest.mark.asyncio(loop_scope="module")
async def test_the_server_records_each_scan_unless_told_not_to(growing_builds, tmp_path):
    tree, build, _ = growing_builds
    for history, folder in ((True, "on"), (False, "off")):
        copy = tmp_path / folder
        shutil.copytree(build, copy, ignore=shutil.ignore_patterns(f"{HISTORY}*"))
        async with server_session(SERVER_COMMAND, _params(tree, buildDirs=[str(copy)], history=history)) as client:
            diagnostics = await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), timeout=60,
                                         what="diagnostics on entry.S")
            hover = await client.text_document_hover_async(types.HoverParams(
                types.TextDocumentIdentifier(uri(tree / ENTRY)), diagnostics[0].range.start))
        assert (copy / HISTORY).is_file() == history
        assert "| trend |" not in hover.contents.value  # one build recorded: no trend yet


def lld_errors(log: str) -> list[tuple[str, str, int, int, str, str, int]]:
    """(function, type, distance, hi, target, file, line) of each ld.lld out-of-range error."""
    return [(m[1], m[2], int(m[3]), int(m[5]), m[6], m[7], int(m[8])) for m in _LLD_ERROR.finditer(log)]


def definition_line(path: Path, name: str) -> int:
    """0-based line defining `name`: `SYM_*_START(name)` in assembly, `name(` opening a C definition
    (not a prototype, which ends in `;`)."""
    pattern = re.compile(rf"^SYM_\w*START\w*\({re.escape(name)}\b|^\w[^;]*\b{re.escape(name)}\([^;]*$")
    return next(i for i, text in enumerate(path.read_text().split("\n")) if pattern.search(text))


@pytest.mark.asyncio(loop_scope="module")
async def test_code_lenses_above_the_functions_ld_lld_names(tree):
    errors = lld_errors((tree / "out" / "overflow" / "noinhibit.log").read_text())
    holders = {function for function, *_ in errors}
    assert holders and {target for *_, target, _, _ in errors} == {"hyp_panic"}
    async with server_session(SERVER_COMMAND, _params(tree)) as client:
        await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), timeout=60, what="diagnostics")
        off = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(uri(tree / ENTRY))))
        assert not off  # opt-in
    async with server_session(SERVER_COMMAND, _params(tree, codeLens=True)) as client:
        await wait_for(lambda: client.diagnostics.get(uri(tree / ENTRY)), timeout=60, what="diagnostics")
        lenses = {}
        for source in (ENTRY, SWITCH):
            found = await client.text_document_code_lens_async(
                types.CodeLensParams(types.TextDocumentIdentifier(uri(tree / source))))
            lines = (tree / source).read_text().split("\n")
            for lens in found or []:
                name = lines[lens.range.start.line][lens.range.start.character:lens.range.end.character]
                lenses[name] = (source, lens)
        assert holders | {"hyp_panic"} <= set(lenses)
        for name in holders | {"hyp_panic"}:
            source, lens = lenses[name]
            assert lens.range.start.line == definition_line(tree / source, name)
            own = [e for e in errors if name in (e[0], e[4])]
            function, kind, distance, hi, *_ = max(own, key=lambda e: e[2] / e[3])
            assert f"worst {distance / hi * 100:.0f} % of reach" in lens.command.title, lens.command.title
            assert f"headroom {kib(hi - distance)}" in lens.command.title, lens.command.title
            shown = await client.workspace_execute_command_async(types.ExecuteCommandParams(
                lens.command.command, lens.command.arguments))
            places = {(location["uri"], location["range"]["start"]["line"] + 1) for location in shown}
            assert {(uri(tree / ENTRY), line) for *_, file, line in own if file.endswith(str(ENTRY))} <= places
            if name == "hyp_panic":
                assert (uri(tree / SWITCH), definition_line(tree / SWITCH, name) + 1) in places


def test_neovim_shows_the_trend_and_the_lenses(growing_builds, tmp_path):
    need("nvim")
    tree, build, images = growing_builds
    got = neovim_session(tree, tree / ENTRY, tmp_path / "got.json", "lenses",
                         REACHLS_INIT_OPTIONS=json.dumps({"buildDirs": [str(build)], "codeLens": True,
                                                          "threshold": HISTORY_THRESHOLD}))
    assert "error" not in got, got.get("error")
    first = got["diagnostics"][0]
    assert f"| trend | {expected_trend(images, got['hover'], first['code'])} |" in got["hover"], got["hover"]
    lines = (tree / ENTRY).read_text().split("\n")
    named = {lines[lens["range"]["start"]["line"]][lens["range"]["start"]["character"]:
                                                    lens["range"]["end"]["character"]]: lens for lens in got["lenses"]}
    assert {"__guest_enter", "__guest_exit"} <= set(named)
    for name, lens in named.items():
        assert lens["range"]["start"]["line"] == definition_line(tree / ENTRY, name)
    enter = named["__guest_enter"]
    headroom = image_headroom(images[-1], "__guest_enter", 0, "R_AARCH64_CONDBR19")
    assert f"headroom {kib(headroom)}" in enter["title"], enter["title"]
    site_lines = {d["lnum"] + 1 for d in got["diagnostics"]}
    shown = {location["range"]["start"]["line"] + 1 for location in got["shown"]}
    assert shown & site_lines, (shown, site_lines)
    listed = {(item["file"], item["lnum"]) for item in got["quickfix"]}
    assert {(str(tree / ENTRY), line) for line in shown & site_lines} <= listed, got["quickfix"]
