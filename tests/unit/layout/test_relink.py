"""The relink replays the build's own final link: the build's linker (ld.lld or GNU ld), its options
read the way that linker reads them, that linker's map; when it cannot run, `auto` falls back to the
model and says so. The linkers are the oracle: every address equals `llvm-nm` of the real link."""

from __future__ import annotations

import json
import shlex
from collections import Counter
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reachls.elf import ElfInput
from reachls.kbuild import find_inputs, parse_link_line
from reachls.layout.linkopts import TABLES, Action, Form
from reachls.stages import place
from toolchain import compile_aarch64, compile_for, need, nm_symbols, run

SCRIPT = "./arch/arm64/kernel/vmlinux.lds"
LDFLAGS = ["-EL", "-z", "norelro", "-z", "noexecstack", "--no-undefined", "-X", "-e", "_text", "--build-id=sha1"]
#: The final link of a ThinLTO kernel, as its .vmlinux.cmd records it (the code generator's options
#: travel with the linker's).
THINLTO = ["ld.lld", "-maarch64elf", *LDFLAGS, "-mllvm", "-import-instr-limit=5", "-z", "max-page-size=65536"]
#: The final link of a GCC-built kernel: GNU ld, with a warning option ld.lld does not know.
GNU = ["aarch64-linux-gnu-ld", "-maarch64linux", *LDFLAGS, "--no-warn-rwx-segments", "-z", "max-page-size=65536"]


def reachls(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reachls.cli", *map(str, args)], capture_output=True, text=True)


def build_dir_linked_by(tree: Path, tmp: Path, link: list[str]) -> Path:
    """A build dir holding the example's vmlinux.o and script, and a .vmlinux.cmd recording `link`."""
    source = tree / "out" / "overflow"
    build = tmp / "build"
    (build / "arch/arm64/kernel").mkdir(parents=True)
    shutil.copy(source / "vmlinux.o", build / "vmlinux.o")
    shutil.copy(source / SCRIPT, build / SCRIPT)
    (build / ".vmlinux.cmd").write_text(f"savedcmd_vmlinux := {shlex.join(link_line(link))}\n")
    return build


def link_line(link: list[str]) -> list[str]:
    return [*link, "-T", SCRIPT, "-o", "vmlinux", "vmlinux.o"]


def real_link(build: Path, link: list[str]) -> dict[str, int]:
    """Run the recorded link itself (out-of-range errors as warnings) and read its symbols."""
    need(link[0])
    run(*link_line(link), "--noinhibit-exec", cwd=build)
    return nm_symbols(build / "vmlinux")


def layout(*args: str | Path) -> dict:
    result = reachls("layout", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_layout_is_the_links(document: dict, symbols: dict[str, int]) -> None:
    functions = {f["name"]: f["address"] for f in document["functions"]}
    assert functions and functions == {name: symbols[name] for name in functions}


def symbol_pairs(image: Path) -> Counter[tuple[str, int]]:
    """Every (name, address) llvm-nm lists, duplicates kept: a kernel has many static functions of one name."""
    need("llvm-nm")
    return Counter((parts[2], int(parts[0], 16)) for parts in map(str.split, run("llvm-nm", image).stdout.splitlines())
                   if len(parts) == 3)


# --- the option tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["lld", "gnu"])
@pytest.mark.parametrize("words, kept, dropped", [
    (["-mllvm", "-import-instr-limit=5"], [], ["-mllvm -import-instr-limit=5"]),
    (["-mllvm=-import-instr-limit=5"], [], ["-mllvm=-import-instr-limit=5"]),
    (["--plugin-opt", "O2"], [], ["--plugin-opt O2"]),
    (["-plugin-opt", "O2"], [], ["-plugin-opt O2"]),
    (["--plugin-opt=-mattr=+pauth"], [], ["--plugin-opt=-mattr=+pauth"]),
    (["-plugin", "/usr/lib/LLVMgold.so"], [], ["-plugin /usr/lib/LLVMgold.so"]),
    (["--version-script", "exports.map"], [], ["--version-script exports.map"]),
    (["--dependency-file=deps.d"], [], ["--dependency-file=deps.d"]),
    (["-z", "max-page-size=65536"], ["-z", "max-page-size=65536"], []),
    (["-zmax-page-size=65536"], ["-zmax-page-size=65536"], []),
    (["-m", "aarch64elf"], ["-m", "aarch64elf"], []),
    (["-maarch64elf"], ["-maarch64elf"], []),
    (["-e", "_text"], ["-e", "_text"], []),
    (["--entry=_text"], ["--entry=_text"], []),
    (["--defsym", "jiffies=jiffies_64"], ["--defsym", "jiffies=jiffies_64"], []),
    (["-defsym=jiffies=jiffies_64"], ["-defsym=jiffies=jiffies_64"], []),
    (["--build-id=sha1"], ["--build-id=sha1"], []),
    (["--build-id"], ["--build-id"], []),  # joined only: a word after it is an input file
    (["--orphan-handling", "warn"], ["--orphan-handling", "warn"], []),
    (["-o", "vmlinux"], [], []),
    (["--output=vmlinux"], [], []),
    (["-Map", "System.map"], [], []),
    (["-Map=System.map"], [], []),
    (["--Map", "System.map"], [], []),
    (["-L", "lib"], [], []),
    (["-Llib"], [], []),
    (["-l", "gcc"], [], []),
    (["--fatal-warnings"], [], ["--fatal-warnings"]),
    (["--no-warn-rwx-segments"], [], ["--no-warn-rwx-segments"]),
])
def test_an_option_and_its_value_are_kept_or_dropped_together(tmp_path: Path, flavour: str, words: list[str],
                                                                kept: list[str], dropped: list[str]):
    """Each option between two kept ones: a value left behind would be read as the next option."""
    linker = {"lld": "ld.lld", "gnu": "aarch64-linux-gnu-ld"}[flavour]
    command = parse_link_line(shlex.join([linker, "-EL", *words, "-X", "vmlinux.o"]), tmp_path, ".vmlinux.cmd")
    assert command.flags == ("-EL", *kept, "-X")
    assert command.dropped == tuple(dropped)
    assert command.flavour == flavour


@pytest.mark.parametrize("words", [["-T", SCRIPT], [f"-T{SCRIPT}"], [f"--script={SCRIPT}"], ["--script", SCRIPT],
                                   ["-script", SCRIPT]])
def test_every_spelling_of_the_script_option_names_the_script(tmp_path: Path, words: list[str]):
    command = parse_link_line(shlex.join(["ld.lld", "-EL", *words, "-X"]), tmp_path, ".vmlinux.cmd")
    assert command.script == tmp_path / SCRIPT and command.flags == ("-EL", "-X")


def test_a_gnu_build_read_for_ld_lld_drops_what_ld_lld_does_not_know(tmp_path: Path):
    command = parse_link_line(shlex.join(link_line(GNU)), tmp_path, ".vmlinux.cmd").for_flavour("lld")
    assert "--no-warn-rwx-segments" in command.dropped and command.flavour == "lld"
    assert command.script == tmp_path / SCRIPT


#: A value each kept option accepts, to ask the linkers themselves whether they know it.
SAMPLE_VALUES = {"defsym": "x=1", "entry": "_start", "undefined": "foo", "soname": "x", "dynamic-linker": "/x",
                 "rpath": "/x", "wrap": "foo", "exclude-libs": "ALL", "sort-section": "name", "hash-style": "gnu",
                 "orphan-handling": "place", "unresolved-symbols": "ignore-all", "Ttext": "0x1000", "Tdata": "0x2000",
                 "Tbss": "0x3000", "Ttext-segment": "0x1000", "export-dynamic-symbol": "foo", "require-defined": "foo",
                 "section-start": ".text=0x1000", "package-metadata": "x", "build-id": "sha1", "z": "norelro",
                 "m": "aarch64elf", "e": "_start", "u": "foo", "h": "x", "I": "/x", "O": "1", "image-base": "0x100000",
                 "pack-dyn-relocs": "none", "icf": "none", "stub-group-size": "1000"}
#: GNU ld's options differ by target: an option is known when one of these knows it.
GNU_LDS = {"aarch64-linux-gnu-ld": (".globl _start\n_start: ret\n", "aarch64-linux-gnu"),
           "arm-linux-gnueabihf-ld": (".globl _start\n_start: nop\n", "armv7a-linux-gnueabihf"),
           "powerpc64le-linux-gnu-ld": (".globl _start\n_start: nop\n", "powerpc64le-linux-gnu")}


@pytest.mark.parametrize("flavour", ["lld", "gnu"])
def test_every_option_replayed_is_one_the_linker_knows(tmp_path: Path, flavour: str):
    """A kept option the linker rejects would fail every relink: ask the linkers."""
    linkers = {"ld.lld": GNU_LDS["aarch64-linux-gnu-ld"]} if flavour == "lld" else GNU_LDS
    objects = {}
    for linker, (source, triple) in linkers.items():
        need(linker, "clang")
        (tmp_path / f"{triple}.s").write_text(source)
        objects[linker] = compile_for(triple, tmp_path / f"{triple}.s", tmp_path / f"{triple}.o")
    unknown = []
    for name, (form, action) in TABLES[flavour].items():
        if action is not Action.KEEP:
            continue
        dash = "-" if len(name) == 1 else "--"
        value = SAMPLE_VALUES.get(name, "")
        words = [dash + name] if form is Form.FLAG else [f"{dash}{name}={value}"] if form in (
            Form.JOINED, Form.OPTIONAL) else [dash + name, value]
        if name == "m":  # the emulation names the target
            words = []
        outputs = [run(linker, *words, obj, "-o", tmp_path / "out", check=False).stderr
                   for linker, obj in objects.items()]
        if all(any(word in text for word in ("unknown argument", "unrecognized option")) for text in outputs):
            unknown.append(words)
    assert unknown == []


# --- end to end, against the real links -----------------------------------------------------------


@pytest.mark.parametrize("engine", ["relink", "auto"])
def test_thinlto_link_line_relinks(tree: Path, tmp_path: Path, engine: str):
    """`-mllvm` and its value are dropped together: ld.lld relinks and places every function as the
    real link (which ld.lld runs with `-mllvm` as recorded) does."""
    build = build_dir_linked_by(tree, tmp_path, THINLTO)
    document = layout(build, "--engine", engine)
    assert (document["engine"], document["linker"]) == ("relink", "ld.lld")
    assert "relink did not replay '-mllvm -import-instr-limit=5'" in document["notes"]
    assert_layout_is_the_links(document, real_link(build, THINLTO))


def test_gnu_build_relinks_with_gnu_ld(tree: Path, tmp_path: Path):
    """The build's own GNU ld relinks (its option table lets `--no-warn-rwx-segments` through
    unharmed) and its map gives every function's address in the real GNU ld link."""
    build = build_dir_linked_by(tree, tmp_path, GNU)
    document = layout(build, "--engine", "relink")
    assert (document["engine"], document["linker"]) == ("relink", "GNU ld")
    assert_layout_is_the_links(document, real_link(build, GNU))
    scanned = reachls("scan", build, "--format", "json")
    records = json.loads(scanned.stdout)["records"]
    assert records and all(r["provenance"]["engine"] == "relink" and r["provenance"]["linker"] == "GNU ld"
                           for r in records)
    assert "placed by relink (GNU ld)" in reachls("scan", build).stdout


@pytest.mark.parametrize("engine", ["relink", "auto"])
def test_a_relink_that_fails_for_another_reason_than_reach(tree: Path, tmp_path: Path, engine: str):
    """A link the linker itself refuses: `relink` stops with one line, `auto` uses the model and says why."""
    broken = [*THINLTO, "--defsym=broken=("]
    build = build_dir_linked_by(tree, tmp_path, broken)
    need("ld.lld")
    assert run(*link_line(broken), "--noinhibit-exec", cwd=build, check=False).returncode != 0
    result = reachls("scan", build, "--engine", engine)
    if engine == "relink":
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "relink failed" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "placed by model (ld.lld)" in result.stdout
        assert "note: placed by the model: the relink did not run (" in result.stdout


# --- a linker the workspace names ------------------------------------------------------------------

WRAPPER = "./ld.lld-wrapper"


def build_dir_with_its_own_linker(tree: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A build dir whose .vmlinux.cmd links with a program of its own, which leaves a mark when it runs."""
    need("ld.lld")
    build = build_dir_linked_by(tree, tmp_path, [WRAPPER, *LDFLAGS])
    mark = tmp_path / "wrapper-ran"
    wrapper = build / WRAPPER
    wrapper.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(mark))}\nexec {shutil.which('ld.lld')} \"$@\"\n")
    wrapper.chmod(0o755)
    return build, mark


@pytest.mark.parametrize("engine", ["relink", "auto"])
def test_a_linker_inside_an_untrusted_root_never_runs(tree: Path, tmp_path: Path, engine: str):
    """The language server's case: `relink` refuses in one line, `auto` uses the model and says why."""
    from reachls.errors import ReachlsError
    from reachls.pipeline import ScanOptions, scan

    build, mark = build_dir_with_its_own_linker(tree, tmp_path)
    options = ScanOptions(engine=engine, untrusted_roots=(tmp_path,))
    if engine == "relink":
        with pytest.raises(ReachlsError, match="untrusted") as error:
            scan(build, options)
        assert "\n" not in str(error.value) and WRAPPER in str(error.value)
    else:
        result = scan(build, options)
        assert {r.provenance.engine for r in result.analysis.records} == {"model"}
        assert any("relink did not run" in note and "untrusted" in note for note in
                   place_notes(build, options))
    assert not mark.exists()


def test_a_log_scan_never_runs_a_linker_inside_an_untrusted_root(tree: Path, tmp_path: Path):
    """A linker log beside the build's vmlinux.o: placing the object for it is a relink too."""
    from reachls.pipeline import ScanOptions, scan

    build, mark = build_dir_with_its_own_linker(tree, tmp_path)
    shutil.copy(tree / "out" / "overflow" / "noinhibit.log", build / "build.log")
    logged = scan(build, ScanOptions(log="build.log", untrusted_roots=(tmp_path,)))
    assert logged.analysis.records and not mark.exists()
    scan(build, ScanOptions(log="build.log"))  # the same scan, trusted: the build's linker relinks
    assert mark.exists()


def place_notes(build: Path, options) -> tuple[str, ...]:
    from reachls.pipeline import function_layout

    return function_layout(build, options)[0].notes


def test_the_cli_runs_the_linker_the_build_names(tree: Path, tmp_path: Path):
    """From the CLI the build dir is the user's own choice: its linker (relative to it) relinks."""
    build, mark = build_dir_with_its_own_linker(tree, tmp_path)
    document = layout(build, "--engine", "relink")
    assert document["engine"] == "relink" and mark.exists()


# --- an object the two linkers lay out differently ------------------------------------------------

STRINGS = r"""
const char *greeting(void) { return "hello, world"; }
const char *object(void) { return "world"; }
const char *other(void) { return "another string"; }
int sum(int a, int b) { return a + b; }
"""
#: Read-only data first, as firmware scripts often have it: GNU ld merges "world" into the tail of
#: "hello, world", ld.lld (at its default -O1) does not, so the code after it lands elsewhere.
RODATA_FIRST = """
SECTIONS {
  . = 0x80000;
  .rodata : { *(.rodata .rodata.*) }
  .text : { *(.text .text.*) }
  /DISCARD/ : { *(.eh_frame) *(.note.GNU-stack) }
}
"""


#: Output sections left empty but for symbols, as kernel scripts have them (`__start_x = .;`):
#: ld.lld keeps them and moves the location counter to their alignment or address, GNU ld does not.
EMPTY_MARKERS = """
SECTIONS {
  . = 0x80000;
  .head : { *(.text.greeting) }
  .marker : ALIGN(0x100) { __marker_start = .; *(.marker) __marker_end = .; }
  .text : { *(.text .text.*) }
  .fixed 0x100000 : { __fixed = .; }
  .rodata : { *(.rodata .rodata.*) }
  /DISCARD/ : { *(.eh_frame) *(.note.GNU-stack) }
}
"""


def _links_differing_by_linker(tmp: Path, script_text: str) -> tuple[Path, Path, dict[str, dict[str, int]]]:
    """The object, a script, and each linker's real link of them (symbol → address), which differ."""
    (tmp / "strings.c").write_text(STRINGS)
    (tmp / "firmware.lds").write_text(script_text)
    obj = compile_aarch64(tmp / "strings.c", tmp / "strings.o", "-O2", "-ffunction-sections")
    links = {}
    for flavour, linker in (("lld", "ld.lld"), ("gnu", "aarch64-linux-gnu-ld")):
        need(linker)
        run(linker, "-T", tmp / "firmware.lds", obj, "-o", tmp / f"{flavour}.elf")
        links[flavour] = nm_symbols(tmp / f"{flavour}.elf")
    assert links["lld"]["sum"] != links["gnu"]["sum"]  # the two layouts do differ
    return obj, tmp / "firmware.lds", links


@pytest.fixture(scope="module")
def differing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict[str, int]]]:
    return _links_differing_by_linker(tmp_path_factory.mktemp("differing"), RODATA_FIRST)


@pytest.fixture(scope="module")
def empty_markers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict[str, int]]]:
    return _links_differing_by_linker(tmp_path_factory.mktemp("markers"), EMPTY_MARKERS)



CASES = ["differing", "empty_markers"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("flavour", ["lld", "gnu"])
def test_each_linker_relinks_as_itself(request, case: str, flavour: str):
    obj, script, links = request.getfixturevalue(case)
    document = layout(obj, "--script", script, "--engine", "relink", "--linker", flavour)
    assert_layout_is_the_links(document, links[flavour])
    assert document["linker"] == {"lld": "ld.lld", "gnu": "GNU ld"}[flavour]


def test_gnu_relink_of_a_long_name_and_merged_strings(differing, tmp_path: Path):
    """GNU ld's map wraps a long section name onto the next line; the relink still reads it."""
    need("aarch64-linux-gnu-ld")
    long_name = "a_function_whose_section_name_is_too_long_for_the_map_column"
    source = tmp_path / "long.c"
    source.write_text(STRINGS + f"int {long_name}(int x) {{ return x * 3; }}\n")
    obj = compile_aarch64(source, tmp_path / "long.o", "-O2", "-ffunction-sections")
    _, script, _ = differing
    run("aarch64-linux-gnu-ld", "-T", script, obj, "-o", tmp_path / "long.elf")
    document = layout(obj, "--script", script, "--engine", "relink", "--linker", "gnu")
    assert long_name in {f["name"] for f in document["functions"]}
    assert_layout_is_the_links(document, nm_symbols(tmp_path / "long.elf"))


# --- the model's GNU ld rules -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_model_follows_gnu_ld_where_it_differs_from_ld_lld(request, case: str):
    """`--linker gnu`: the model places as GNU ld does (merged strings with tails shared; empty
    sections that leave the location counter alone), `lld` as ld.lld."""
    obj, script, links = request.getfixturevalue(case)
    for flavour, linker in (("gnu", "GNU ld"), ("lld", "ld.lld")):
        document = layout(obj, "--script", script, "--engine", "model", "--linker", flavour)
        assert_layout_is_the_links(document, links[flavour])
        assert document["linker"] == linker


def test_model_of_a_gnu_build_is_its_gnu_ld_link(tree: Path, tmp_path: Path):
    """A build linked by GNU ld: the model (no toolchain needed) gives every function's address in
    the real GNU ld link. (Without --build-id: the example's script leaves .note.gnu.build-id an
    orphan, and GNU ld's orphan placement is not modelled, which the model says in a note.)"""
    link = [word for word in GNU if word != "--build-id=sha1"]
    build = build_dir_linked_by(tree, tmp_path, link)
    document = layout(build, "--engine", "model")
    assert document["linker"] == "GNU ld"
    assert_layout_is_the_links(document, real_link(build, link))


# --- a real GCC-built kernel ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcc_kernel(real_kernels: dict[str, Path]) -> Path:
    """The real GCC + GNU ld arm64 kernel of the real-kernel builds (tests/conftest.py)."""
    return real_kernels["gcc"]


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_real_gcc_kernel_placed_as_its_vmlinux(gcc_kernel: Path, engine: str):
    """A GCC kernel's final link reads vmlinux.a: the relink replays it (and the `ld -r` that made
    vmlinux.o, for where each object sits in it), the model places the objects' pieces as GNU ld
    does without running it, and every function (duplicate names included) is where the build's
    real vmlinux has it."""
    document = layout(gcc_kernel, "--engine", engine)
    assert document["linker"] == "GNU ld"
    functions = Counter((f["name"], f["address"]) for f in document["functions"])
    assert functions and functions - symbol_pairs(gcc_kernel / "vmlinux") == Counter()
    assert not any("vmlinux.a" in note or "made of" in note for note in document["notes"])


def test_real_gcc_kernel_model_scans_as_the_relink(gcc_kernel: Path):
    """The model's records of the GCC kernel are the relink's (but for who placed them): the same
    sites at the same addresses, the same targets, data included (what the objects before a
    library member hold moves it). Targets inside merged strings are the exception: GNU ld
    deduplicates them string by string; the model places each string (the test below), the relink
    maps each object's share of them linearly as its map gives it (and the distances follow the
    targets)."""
    def records(engine: str) -> dict[tuple, dict]:
        found = json.loads(reachls("scan", gcc_kernel, "--engine", engine, "--all", "--format", "json").stdout)
        return {(r["site"]["section"], r["site"]["offset"], r["kind"]["type"]):
                {k: v for k, v in r.items() if k != "provenance"} for r in found["records"]}
    model, relink = records("model"), records("relink")
    assert model and model.keys() == relink.keys()
    differing = {key for key in model if model[key] != relink[key]}
    assert {model[key]["target"]["section"] for key in differing} <= {".rodata.str1.1"}
    assert all(model[key]["site"] == relink[key]["site"] for key in differing)


def test_real_gcc_kernel_model_places_each_merged_string_where_its_vmlinux_has_it(gcc_kernel: Path):
    """GNU ld merges the objects' strings (.rodata.str1.1) one by one: every non-empty string of
    vmlinux.o is, in the real vmlinux, at the address the model gives it (the empty string, a
    tail of any string, may be found elsewhere)."""
    with ElfInput(gcc_kernel / "vmlinux.o") as obj, ElfInput(gcc_kernel / "vmlinux") as image:
        placement = place(obj, find_inputs(gcc_kernel), "model")
        merged = next(s for s in obj.sections if s.name == ".rodata.str1.1")
        data = bytes(obj.section_data(merged.index))
        starts = [0] + [end + 1 for end in range(len(data) - 1) if data[end] == 0]
        strings = [(start, data[start:data.index(0, start) + 1]) for start in starts if data[start]]
        addresses = placement.addresses(merged.index, np.array([start for start, _ in strings], np.uint64)).tolist()
        rodata = next(s for s in image.sections if s.name == ".rodata")
        contents = bytes(image.section_data(rodata.index))
    misplaced = [(start, string) for (start, string), address in zip(strings, addresses)
                 if contents[address - rodata.addr:address - rodata.addr + len(string)] != string]
    assert len(strings) > 1000 and misplaced == []


def test_a_clang_lto_kernel_is_linked_from_its_vmlinux_o(real_kernels: dict[str, Path]):
    """ThinLTO builds link vmlinux.o itself: no such note there."""
    build = real_kernels["clang-lto"]
    assert not any("vmlinux.a" in note for note in layout(build, "--engine", "model")["notes"])


# --- a kbuild tree whose final link reads vmlinux.a ---------------------------------------------------

FIRST_OBJECT = """
.section .entry.text, "ax"
.globl entry
.type entry, %function
entry: .fill 16, 4, 0xd503201f
.text
.globl caller
.type caller, %function
caller: bl aligned_entry
        cbz x0, aligned_entry
        ret
"""
#: Aligned to 2 KiB like arm64's vector tables: `ld -r` gives the whole merged .text that alignment.
ALIGNED_OBJECT = """
.text
.balign 2048
.globl aligned_entry
.type aligned_entry, %function
aligned_entry: ret
"""
KBUILD_SCRIPT = """
SECTIONS {
  . = 0xffff800008000000;
  .head.text : { *(.head.text) }
  .text : ALIGN(0x10000) { . = ALIGN(8); *(.entry.text) . = ALIGN(8); *(.text .text.fixup) }
  /DISCARD/ : { *(.note.GNU-stack) }
}
"""


@pytest.fixture(scope="module")
def archive_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GCC-style kbuild dir: objects in a thin vmlinux.a, vmlinux.o made from it by `ld -r`, and
    vmlinux linked from vmlinux.a (scripts/link-vmlinux.sh without LTO), with their .cmd files."""
    need("aarch64-linux-gnu-ld", "aarch64-linux-gnu-as", "aarch64-linux-gnu-ar")
    build = tmp_path_factory.mktemp("kbuild")
    (build / "kernel").mkdir()
    for name, source in (("first", FIRST_OBJECT), ("aligned", ALIGNED_OBJECT)):
        (build / "kernel" / f"{name}.S").write_text(source)
        run("aarch64-linux-gnu-as", "-g", build / "kernel" / f"{name}.S", "-o", build / "kernel" / f"{name}.o")
    run("aarch64-linux-gnu-ar", "cDPrST", "vmlinux.a", "kernel/first.o", "kernel/aligned.o", cwd=build)
    (build / "arch/arm64/kernel").mkdir(parents=True)
    (build / SCRIPT).write_text(KBUILD_SCRIPT)
    (build / "include/config").mkdir(parents=True)
    (build / "include/config/auto.conf").write_text("CONFIG_ARM64=y\nCONFIG_KVM=y\n")
    partial = ["aarch64-linux-gnu-ld", "-EL", "-maarch64elf", "-r", "-o", "vmlinux.o", "--whole-archive", "vmlinux.a",
               "--no-whole-archive"]
    run(*partial, cwd=build)
    (build / ".vmlinux.o.cmd").write_text(f"savedcmd_vmlinux.o := {shlex.join(partial)}\n")
    flags = "-EL -maarch64elf -z noexecstack --no-warn-rwx-segments"
    (build / ".vmlinux.cmd").write_text(f'savedcmd_vmlinux := scripts/link-vmlinux.sh "aarch64-linux-gnu-ld" '
                                        f'"{flags}" "--no-undefined -X";  true\n')
    run("aarch64-linux-gnu-ld", *flags.split(), "--no-undefined", "-X", "-T", SCRIPT, "-o", "vmlinux",
        "--whole-archive", "vmlinux.a", "--no-whole-archive", cwd=build)
    return build


@pytest.mark.parametrize("engine", ["relink", "model"])
def test_a_build_that_links_vmlinux_a_is_placed_as_its_vmlinux(archive_build: Path, engine: str):
    """The code before the 2 KiB-aligned object is where the real vmlinux has it (a link of
    vmlinux.o would move it by the padding ld -r put in front), and so are the references."""
    real = nm_symbols(archive_build / "vmlinux")
    document = layout(archive_build, "--engine", engine)
    assert_layout_is_the_links(document, real)
    assert not any("vmlinux.a" in note or "made of" in note for note in document["notes"])
    records = json.loads(reachls("scan", archive_build, "--engine", engine, "--all", "--format", "json").stdout)
    sites = {(r["kind"]["type"], r["site"]["address"], r["target"]["address"]) for r in records["records"]}
    assert sites == {("R_AARCH64_CALL26", real["caller"], real["aligned_entry"]),
                     ("R_AARCH64_CONDBR19", real["caller"] + 4, real["aligned_entry"])}


def test_model_without_the_objects_places_vmlinux_o_whole_and_says_why(archive_build: Path, tmp_path: Path):
    """An object of the thin vmlinux.a gone: the model lays out vmlinux.o whole, and says why."""
    build = tmp_path / "build"
    shutil.copytree(archive_build, build, symlinks=True)
    (build / "kernel/aligned.o").unlink()
    notes = layout(build, "--engine", "model")["notes"]
    assert any(note.startswith("the model could not read the objects vmlinux.o was made of") and "aligned.o" in note
               for note in notes)
    assert any(note.startswith("this build's final link reads vmlinux.a") for note in notes)
