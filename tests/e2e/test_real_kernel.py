"""Real arm64 kernels (Debian's linux-source-6.1, tinyconfig + KVM + DWARF4) against the real toolchain.

scripts/build-real-kernel.sh builds them once and caches them: Clang ThinLTO with ld.lld, GCC
with GNU ld, and the ThinLTO tree with one assembly file of our own added whose vmlinux link
fails with ld.lld's out-of-range errors. The answer keys: the final `vmlinux` each build's own
linker wrote (llvm-nm, llvm-objdump -d), ld.lld's errors in the failing build's log, GNU
addr2line on the object the linker read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_support import SERVER_COMMAND, uri, wait_for
from test_linked_image import objdump_short_reach
from toolchain import run

PRISTINE = ("clang-lto", "gcc")
ENGINES = ("relink", "model")
OVERFLOW = "clang-lto-overflow"
OVERFLOW_SOURCE = Path("arch/arm64/kernel/reachls_out_of_range.S")
#: Generous for one scan of a tinyconfig kernel on a 2-core machine shared with other work.
TIMEOUT_SECONDS = 600
#: ld.lld's error for a relocation in an input section: `vmlinux.o:(.text+0x10)` or, with a
#: symbol, `vmlinux.o:(function f: .text+0x10)`.
_LLD_SITE_ERROR = re.compile(r"error: \S*?vmlinux\.o:\((?:function \S+: )?([^+()\s]+)\+(0x[0-9a-f]+)\): "
                             r"relocation (R_\w+) out of range: (-?\d+) is not in \[(-?\d+), (-?\d+)\]")


def reachls(*args: str | Path, timeout: float = TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "reachls.cli", *map(str, args)]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    pytest.fail(f"reachls {' '.join(map(str, args))} did not finish in {timeout} s", pytrace=False)


def reachls_json(*args: str | Path) -> dict:
    """The JSON of a reachls command that must not end with exit 2 (bad input)."""
    result = reachls(*args, "--format", "json")
    assert result.returncode in (0, 1), f"exit {result.returncode}: {result.stderr.strip()}"
    return json.loads(result.stdout)


def code_sections(image: Path) -> set[str]:
    """Names of the executable sections, from llvm-readelf."""
    header = re.compile(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+(\S*)")
    return {m.group(1) for line in run("llvm-readelf", "-S", "--wide", image).stdout.splitlines()
            if (m := header.match(line)) and "X" in m.group(2)}


#: Mapping symbols `$x`/`$d`, also as the nVHE objcopy renames them (kallsyms skips both forms).
_MAPPING_SYMBOL = re.compile(r"(__kvm_nvhe_)?\$")


def code_symbols(image: Path) -> Counter[tuple[str, int]]:
    """(name, value) of every defined symbol in an executable section, from llvm-nm, mapping symbols aside."""
    code = code_sections(image)
    found: Counter[tuple[str, int]] = Counter()
    for line in run("llvm-nm", "--format=sysv", "--defined-only", image).stdout.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 7 and fields[6] in code and not _MAPPING_SYMBOL.match(fields[0]):
            found[fields[0], int(fields[1], 16)] += 1
    return found


@pytest.mark.parametrize("variant", PRISTINE)
def test_relink_replays_the_builds_own_link(real_kernels, variant):
    """The relink runs the `.vmlinux.cmd` command and linker the build used, flags and all."""
    build = real_kernels[variant]
    report = reachls_json("scan", build, "--engine", "relink")
    assert report["engine"] == "relink"
    assert report["artefact"] == str(build / "vmlinux.o")


#: A GCC build's final link reads vmlinux.a, not vmlinux.o: both engines place its objects' pieces.
LAYOUTS = (("clang-lto", "relink"), ("clang-lto", "model"), ("gcc", "relink"), ("gcc", "model"))


@pytest.mark.parametrize(("variant", "engine"), LAYOUTS)
def test_layout_places_every_code_symbol_where_the_linker_did(real_kernels, variant, engine):
    """Every code symbol of vmlinux.o (functions and assembly labels alike) at its vmlinux address."""
    build = real_kernels[variant]
    names = {name for name, _ in code_symbols(build / "vmlinux.o")}
    linked = Counter({(name, address): n for (name, address), n in code_symbols(build / "vmlinux").items()
                      if name in names})
    assert {"vectors", "__guest_enter", "__guest_exit", "hyp_panic"} <= {name for name, _ in linked}
    layout = reachls_json("layout", build, "--engine", engine)
    placed = Counter((f["name"], f["address"]) for f in layout["functions"])
    missing, wrong = linked - placed, placed - linked
    assert not missing and not wrong, (
        f"{sum(missing.values())} of {sum(linked.values())} code symbols not at their vmlinux address, "
        f"e.g. {sorted(missing)[:5]}; {sum(wrong.values())} listed elsewhere, e.g. {sorted(wrong)[:5]}")


@pytest.mark.parametrize("variant", PRISTINE)
def test_linked_image_decodes_what_objdump_decodes(real_kernels, variant):
    """`scan vmlinux --all`: one record per short-reach instruction llvm-objdump decodes, same target."""
    image = real_kernels[variant] / "vmlinux"
    expected = objdump_short_reach(image)
    records = reachls_json("scan", image, "--all")["records"]
    decoded = {r["site"]["address"]: r for r in records}
    assert len(decoded) == len(records), "one record per site"
    assert Counter(r["kind"]["type"].removeprefix("R_AARCH64_") for r in records) == Counter(
        kind for kind, _, _ in expected.values())
    assert set(decoded) == set(expected)
    wrong = [(hex(address), mnemonic, hex(target), hex(decoded[address]["target"]["address"]))
             for address, (_, mnemonic, target) in expected.items() if decoded[address]["target"]["address"] != target]
    assert not wrong, f"{len(wrong)} targets differ from llvm-objdump's, e.g. {wrong[:5]}"


@dataclass(frozen=True)
class LldSiteError:
    section: str
    offset: int
    type: str
    distance: int


def lld_site_errors(log: str) -> list[LldSiteError]:
    """Every out-of-range error ld.lld printed, with the vmlinux.o section and offset it names."""
    return [LldSiteError(m.group(1), int(m.group(2), 16), m.group(3), int(m.group(4)))
            for m in _LLD_SITE_ERROR.finditer(log)]


def true_line(obj: Path, error: LldSiteError) -> tuple[str, int]:
    """GNU addr2line's (file, line) for a section offset of a relocatable object."""
    out = run("aarch64-linux-gnu-addr2line", "-e", obj, "-j", error.section, f"{error.offset:#x}").stdout.strip()
    file, _, line = out.rpartition(":")
    return file, int(line.split()[0])


@pytest.fixture(scope="module")
def overflow_errors(real_kernels) -> list[LldSiteError]:
    build = real_kernels[OVERFLOW]
    log = (build / "build.log").read_text()
    errors = lld_site_errors(log)
    assert len(errors) == log.count("out of range") >= 3, log[-3000:]
    return errors


@pytest.mark.parametrize("engine", ENGINES)
def test_every_lld_overflow_found_on_its_true_line(real_kernels, overflow_errors, engine):
    """Each relocation ld.lld rejected: an overflow record with its distance, on addr2line's line; no other."""
    build = real_kernels[OVERFLOW]
    report = reachls_json("scan", build, "--engine", engine)
    overflows = {(r["site"]["section"], r["site"]["offset"]): r for r in report["records"]
                 if r["status"] == "overflow"}
    assert set(overflows) == {(e.section, e.offset) for e in overflow_errors}
    for error in overflow_errors:
        record = overflows[error.section, error.offset]
        assert (record["kind"]["type"], record["distance"]) == (error.type, error.distance), error
        source = record["site"]["source"]
        assert source is not None, error
        file, line = true_line(build / "vmlinux.o", error)
        assert (Path(source["file"]).resolve(), source["line"]) == (Path(file).resolve(), line), error


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER_COMMAND))
async def client(lsp_client: LanguageClient, real_kernels):
    """The server on the kernel source tree, pointed at the failing build's O= directory."""
    source = real_kernels[OVERFLOW] / "source"
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
        root_uri=uri(source.resolve()), workspace_folders=[types.WorkspaceFolder(uri(source.resolve()), "linux")],
        initialization_options={"buildDirs": [str(real_kernels[OVERFLOW])]}))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="module")
async def test_language_server_marks_the_lines_the_linker_rejected(client: LanguageClient, real_kernels,
                                                                   overflow_errors):
    path = (real_kernels[OVERFLOW] / "source").resolve() / OVERFLOW_SOURCE

    def scan_failed() -> list[str]:
        return [m.message for m in client.messages if m.type == types.MessageType.Error]

    await wait_for(lambda: client.diagnostics.get(uri(path)) or scan_failed(), timeout=TIMEOUT_SECONDS,
                   what=f"diagnostics for {path.name}")
    assert not scan_failed(), scan_failed()
    errors = [d for d in client.diagnostics[uri(path)] if d.severity == types.DiagnosticSeverity.Error]
    obj = real_kernels[OVERFLOW] / "vmlinux.o"
    expected = Counter(line for file, line in (true_line(obj, e) for e in overflow_errors)
                       if Path(file).resolve() == path)
    assert sum(expected.values()) == len(overflow_errors), "every rejected relocation is in the added file"
    assert Counter(d.range.start.line + 1 for d in errors) == expected
    assert {d.code for d in errors} == {e.type for e in overflow_errors}
