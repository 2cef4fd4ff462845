"""Short-reach references that cannot be checked are counted by type and reason, never dropped.

The input is a real object built by clang, with the references a pre-link `vmlinux.o` really has
and that no layout can place: calls to undefined and weak undefined functions, an ADRP to a
COMMON symbol, references from and to a section the linker script discards. The expected counts
are the test's own reading of `llvm-readelf -r` (every relocation), `llvm-nm` (what each symbol
is and where it is defined), the script (what it discards) and ld.lld's own link of the object
(whether it has a .got, which GOT-relative types are measured to).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_support import SERVER_COMMAND, uri, wait_for
from reachls.arch.aarch64 import KINDS
from toolchain import compile_aarch64, link_noinhibit, need, run

SOURCE = """
extern void missing_fn(void);                      /* defined nowhere */
extern int missing_table[];
extern void maybe_fn(void) __attribute__((weak));  /* weak, and defined nowhere */
extern int maybe_table[] __attribute__((weak));
int shared_counter;                                /* -fcommon: a COMMON symbol */

void kept_fn(void);

__attribute__((section(".text.gone"), noinline)) void gone_fn(void)  /* the script discards it */
{
	kept_fn();
	missing_fn();
}

__attribute__((noinline)) void kept_fn(void)
{
	__asm__ volatile("" ::: "memory");
}

int entry(int x)
{
	missing_fn();
	if (maybe_fn)
		maybe_fn();
	if (x)
		gone_fn();
	kept_fn();
	/* weak, defined by the kallsyms object the final link adds (clang reaches C weak data by the GOT) */
	__asm__ volatile(".weak kallsyms_names\\n\\tadrp x9, kallsyms_names" ::: "x9");
	return missing_table[3] + (maybe_table ? maybe_table[1] : 0) + ++shared_counter;
}
"""
CLEAN_SOURCE = """
__attribute__((noinline)) void kept_fn(void) { __asm__ volatile("" ::: "memory"); }
void entry(int x) { if (x) kept_fn(); }
"""
DISCARDED = {".text.gone", ".eh_frame"}
SCRIPT = """SECTIONS {
  /DISCARD/ : { *(.text.gone) *(.eh_frame) }
  . = 0xffff800008000000;
  .text : { *(.text .text.*) }
  .got : { *(.got) }
  .data : { *(.data .bss COMMON) }
}
"""
SHORT_REACH = {kind.name for kind in KINDS.values()}
GOT_RELATIVE = {"R_AARCH64_ADR_GOT_PAGE", "R_AARCH64_GOT_LD_PREL19"}  # measured to the .got, not the symbol
_RELOC_TABLE = re.compile(r"^Relocation section '\.rela?(\S+)' at offset")
# `[Nr] Name Type Address Off Size ES Flg Lk Inf Al` of `llvm-readelf -S --wide`: name and flags
_SECTION = re.compile(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+"
                      r"\s+([A-Za-z]*)\s+\d+")


def reachls(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reachls.cli", *map(str, args)], capture_output=True, text=True)


def make_build_dir(root: Path, source: str, *flags: str) -> Path:
    """A build dir as reachls finds it: vmlinux.o and arch/arm64/kernel/vmlinux.lds."""
    (root / "arch" / "arm64" / "kernel").mkdir(parents=True)
    (root / "arch" / "arm64" / "kernel" / "vmlinux.lds").write_text(SCRIPT)
    (root / "source.c").write_text(source)
    compile_aarch64(root / "source.c", root / "vmlinux.o", "-O2", "-fno-pic", *flags)
    return root


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("clang", "ld.lld", "llvm-readelf", "llvm-nm")
    return make_build_dir(tmp_path_factory.mktemp("unchecked"), SOURCE, "-fcommon")


def short_reach_relocations(obj: Path) -> list[tuple[str, int, str, str, int]]:
    """(site section, offset, type, symbol, addend) of every short-reach relocation of an allocated section."""
    allocated = {m.group(1) for line in run("llvm-readelf", "-S", "--wide", obj).stdout.splitlines()
                 if (m := _SECTION.match(line)) and "A" in m.group(2)}
    found, section = [], None
    for line in run("llvm-readelf", "-r", "--wide", obj).stdout.splitlines():
        if (m := _RELOC_TABLE.match(line)) is not None:
            section = m.group(1)
            continue
        fields = line.split()
        if section in allocated and len(fields) >= 5 and fields[2] in SHORT_REACH:
            addend = int(fields[6], 16) * (-1 if fields[5] == "-" else 1) if len(fields) >= 7 else 0
            found.append((section, int(fields[0], 16), fields[2], fields[4], addend))
    return found


def symbol_table(obj: Path) -> dict[str, tuple[str, str]]:
    """Symbol → (llvm-nm's class letter, section), from `llvm-nm --format=sysv`."""
    table = {}
    for line in run("llvm-nm", "--format=sysv", obj).stdout.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 7:
            table[fields[0]] = (fields[2], fields[6])
    return table


def why_unchecked(section: str, rtype: str, symbol: str, addend: int, symbols: dict[str, tuple[str, str]],
                  has_got: bool) -> str | None:
    """The reason a reference cannot be checked, decided from the toolchain's answers alone."""
    letter, defined_in = symbols.get(symbol, ("", ""))
    if section in DISCARDED:
        return "site-not-placed"
    if rtype in GOT_RELATIVE:
        return None if has_got else "got-slot-unknown"
    if symbol in DISCARDED or defined_in in DISCARDED:  # a section symbol, or a symbol defined there
        return "target-not-placed"
    if letter == "U":
        return "undefined-symbol"
    if letter in ("w", "v") and defined_in == "*UND*":  # resolved by the linker (see below) unless offset,
        # or defined by the kallsyms object link-vmlinux.sh adds to the final link
        return "weak-undefined-symbol" if addend or symbol.startswith("kallsyms_") else None
    if letter == "C":
        return "target-section-unknown"
    return None


def expected(build: Path, engine: str, tmp_path: Path) -> tuple[Counter[tuple[str, str]], set, int]:
    """(count per (type, reason), the (section, offset, type, reason) of each, number of references)."""
    obj = build / "vmlinux.o"
    linked = tmp_path / "vmlinux"
    link_noinhibit(build / "arch" / "arm64" / "kernel" / "vmlinux.lds", [obj], linked, require_output=False)
    has_got = ".got" in run("llvm-readelf", "-S", "--wide", linked).stdout
    symbols = symbol_table(obj)
    relocations = short_reach_relocations(obj)
    reasons = [(section, offset, rtype, why_unchecked(section, rtype, symbol, addend, symbols, has_got))
               for section, offset, rtype, symbol, addend in relocations]
    unchecked = [r for r in reasons if r[3] is not None]
    return Counter((rtype, why) for _, _, rtype, why in unchecked), set(unchecked), len(relocations)


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_unchecked_counted_by_type_and_reason(build_dir: Path, engine: str, tmp_path: Path):
    counts, references, total = expected(build_dir, engine, tmp_path)
    assert set(why for _, why in counts) >= {"site-not-placed", "target-not-placed", "undefined-symbol",
                                             "weak-undefined-symbol", "target-section-unknown"}
    result = reachls("scan", build_dir, "--engine", engine, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Counter({(g["kind"], g["reason"]): g["count"] for g in report["unchecked"]}) == counts
    assert report["unresolved"] == sum(counts.values())
    assert sum(report["counts"].values()) + report["unresolved"] == total
    for group in report["unchecked"]:
        assert group["examples"] and group["why"]
        for example in group["examples"]:
            assert (example["section"], example["offset"], group["kind"], group["reason"]) in references


def test_text_report_says_what_was_not_checked(build_dir: Path, tmp_path: Path):
    counts, _, total = expected(build_dir, "relink", tmp_path)
    result = reachls("scan", build_dir, "--engine", "relink")
    summary, note, *rest = result.stdout.splitlines()
    missed = sum(counts.values())
    assert summary.endswith(f"of {total} short-reach references ({missed} not checked: see note)"), summary
    assert note.startswith(f"note: {missed} short-reach references were not checked")
    for reason in {why for _, why in counts}:
        of_reason = {rtype: n for (rtype, why), n in counts.items() if why == reason}
        line = next(line for line in rest if line.startswith(f"  {sum(of_reason.values())} {reason} ("))
        assert all(f"{rtype} {n}" in line for rtype, n in of_reason.items()), line


def test_fail_on_fails_on_unchecked_unless_allowed(build_dir: Path, tmp_path: Path):
    assert reachls("scan", build_dir).returncode == 0
    assert reachls("scan", build_dir, "--fail-on", "overflow").returncode == 1
    assert reachls("scan", build_dir, "--fail-on", "at-risk", "--allow-unchecked").returncode == 0
    clean = make_build_dir(tmp_path / "clean", CLEAN_SOURCE, "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")
    assert not expected(clean, "relink", tmp_path)[0]
    assert reachls("scan", clean, "--fail-on", "overflow").returncode == 0


def test_symbol_index_past_the_table_is_counted(build_dir: Path, tmp_path: Path):
    """A relocation naming a symbol the table does not have is counted (it was a traceback)."""
    obj = tmp_path / "vmlinux.o"
    shutil.copy(build_dir / "vmlinux.o", obj)
    section = next(m for line in run("llvm-readelf", "-S", "--wide", obj).stdout.splitlines()
                   if (m := re.match(r"^\s*\[\s*\d+\]\s+\.rela\.text\s+RELA\s+[0-9a-f]+\s+([0-9a-f]+)", line)))
    first = next(r for r in short_reach_relocations(obj) if r[0] == ".text")
    data = bytearray(obj.read_bytes())
    row = int(section.group(1), 16)  # the first entry: r_offset, r_info (type low, symbol high), r_addend
    assert int.from_bytes(data[row:row + 8], "little") == first[1]
    data[row + 12:row + 16] = (0xFFFFFF).to_bytes(4, "little")
    obj.write_bytes(bytes(data))
    # ld.lld refuses such an object (`invalid symbol index`), so the model engine places it.
    result = reachls("scan", obj, "-T", build_dir / "arch" / "arm64" / "kernel" / "vmlinux.lds", "--engine", "model",
                     "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    groups = json.loads(result.stdout)["unchecked"]
    assert [(g["kind"], g["count"]) for g in groups if g["reason"] == "symbol-index-out-of-range"] == [(first[2], 1)]


# ----- language server -----


@pytest.fixture(scope="module")
def two_build_dirs(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("two")
    return [Path(shutil.copytree(build_dir, root / name)) for name in ("one", "two")]


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER_COMMAND))
async def client(lsp_client: LanguageClient, two_build_dirs: list[Path]):
    root = two_build_dirs[0].parent
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=uri(root),
        initialization_options={"buildDirs": [str(d) for d in two_build_dirs]}))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="module")
async def test_language_server_says_it_once_per_build_dir(client: LanguageClient, two_build_dirs: list[Path]):
    def said() -> list[types.ShowMessageParams]:
        return [m for m in client.messages if "not checked" in m.message]

    await wait_for(lambda: len(said()) == 2, timeout=120, what="one unchecked message per build dir")
    for _ in range(2):  # rescans of the same build dirs say nothing new
        report = await client.workspace_execute_command_async(types.ExecuteCommandParams("reachls.rescan"))
        assert report.count("short-reach references were not checked") == 2, report
    await asyncio.sleep(1)
    assert len(said()) == 2
    named = {str(d) for m in said() for d in two_build_dirs if f"{d}:" in m.message}
    assert named == {str(d) for d in two_build_dirs}
    assert all(m.type == types.MessageType.Warning for m in said())


def test_weak_undefined_branch_checked_as_lld_resolves_it(build_dir: Path, tmp_path: Path):
    """ld.lld resolves a `bl` to a weak symbol nothing defines to the next instruction, never
    range-checked against address 0: the scan counts it as checked and says so in one note."""
    need("llvm-objdump")
    image = tmp_path / "vmlinux"
    log = link_noinhibit(build_dir / "arch" / "arm64" / "kernel" / "vmlinux.lds", [build_dir / "vmlinux.o"], image,
                         require_output=False)
    assert "maybe_fn" not in log
    text = next(m for line in run("llvm-readelf", "-S", "--wide", image).stdout.splitlines()
                if (m := re.match(r"^\s*\[\s*\d+\]\s+\.text\s+PROGBITS\s+([0-9a-f]+)", line)))
    # the object's .text is the first input of the image's .text (the script lists `.text` first)
    sites = [int(text.group(1), 16) + offset for section, offset, rtype, symbol, _ in
             short_reach_relocations(build_dir / "vmlinux.o")
             if section == ".text" and rtype == "R_AARCH64_CALL26" and symbol == "maybe_fn"]
    branches = {int(m.group(1), 16): int(m.group(2), 16)
                for line in run("llvm-objdump", "-d", "--no-show-raw-insn", image).stdout.splitlines()
                if (m := re.match(r"^\s*([0-9a-f]+):\s+bl\s+0x([0-9a-f]+)", line))}
    assert sites and all(branches[site] == site + 4 for site in sites), (sites, branches)
    report = json.loads(reachls("scan", build_dir, "--format", "json").stdout)
    assert not any(e["target"] == "maybe_fn" for g in report["unchecked"] for e in g["examples"])
    weak = [note for note in report["notes"] if "weak undefined symbols" in note]
    assert len(weak) == 1 and "maybe_fn" in weak[0], report["notes"]
