""""reachls: Show Layout" in a real VS Code (code-server with the packaged extension, the fixtures of
test_vscode_e2e), driven in headless Chromium by vscode-client/test/layout-e2e.js: the picture opens
in a webview, hovering a reference shows its record, and clicking one opens the source line GNU
addr2line gives for the site ld.lld names in its error.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_vscode_e2e import chromium, example_tree, vscode  # noqa: F401 (fixtures)
from toolchain import gnu_addr2line, lld_site_addresses


def test_show_layout_opens_the_picture_and_a_click_opens_the_source(vscode: tuple[str, Path],  # noqa: F811
                                                                     example_tree: Path, tmp_path: Path):  # noqa: F811
    build_dir = example_tree / "out" / "overflow"
    errors = lld_site_addresses((build_dir / "noinhibit.log").read_text(), build_dir)
    lines = gnu_addr2line(build_dir / "vmlinux.noinhibit", [site for site, *_ in errors])
    url, build = vscode
    result = subprocess.run(["node", "test/layout-e2e.js", url, str(example_tree), str(tmp_path), chromium()],
                            cwd=build, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nscreenshots in {tmp_path}"
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    # The picture holds one reference per overflow ld.lld printed (the server reports no other here),
    # and loaded nothing from the network.
    assert [r["status"] for r in seen["records"]] == ["overflow"] * len(errors), seen["records"]
    assert seen["requests"] == [], seen["requests"]
    # Hovering shows the record: what it is, ld.lld's distance for it.
    assert seen["hover"].startswith("overflow: ") and any(f"{distance} B" in seen["hover"]
                                                         for _, _, distance, *_ in errors), seen["hover"]

    # A click on each site opens its file at the line GNU addr2line gives for the site ld.lld named.
    expected = sorted((Path(file).name, line) for file, line in lines)
    opened = sorted((o["tab"].split()[0], int(o["cursor"].split("Ln ")[1].split(",")[0])) for o in seen["opened"])
    assert opened == expected, (seen["opened"], lines)
    # ...and on a target, the target's file.
    assert seen["target"]["tab"].startswith(Path(seen["records"][0]["targetFile"]).name), seen["target"]
