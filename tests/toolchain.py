"""The real toolchain as the tests' oracle: build with clang, link with ld.lld, read its verdicts.

Parsers here are the tests' own, independent of reachls's, so an answer key never comes from
the code under test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reachls.arch import architecture_of
from reachls.elf import ElfInput
from reachls.sourcemap import SourceMap

ROOT = Path(__file__).resolve().parent.parent
TARGET = "--target=aarch64-linux-gnu"
_LLD_OVERFLOW = re.compile(
    r"relocation (R_\w+) out of range: (-?\d+) is not in \[(-?\d+), (-?\d+)\]; references '?([^'\s]+)'?")


def need(*tools: str) -> None:
    """Skip the calling test when a tool of the toolchain is not installed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def run(*argv: str | Path, cwd: Path | None = None, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def compile_aarch64(source: Path, output: Path, *flags: str) -> Path:
    need("clang")
    run("clang", TARGET, "-c", "-g", *flags, source, "-o", output)
    return output


def compile_for(triple: str, source: Path, output: Path, *flags: str) -> Path:
    """Assemble or compile one file with clang for another target (`armv7a-linux-gnueabihf`, ...)."""
    need("clang")
    run("clang", f"--target={triple}", "-c", *flags, source, "-o", output)
    return output


@dataclass(frozen=True)
class LldOverflow:
    type: str
    distance: int
    lo: int
    hi: int
    symbol: str


def lld_overflows(log: str) -> list[LldOverflow]:
    """Every `relocation R_X out of range: D is not in [lo, hi]; references S` ld.lld printed."""
    return [LldOverflow(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5))
            for m in _LLD_OVERFLOW.finditer(log)]


@dataclass(frozen=True)
class LldSite:
    """One out-of-range error of ld.lld with where it says it is: `object:(section+offset)` as printed
    (the enclosing function left out), and the `referenced by` source line."""

    site: str
    overflow: LldOverflow
    file: str
    line: int


_LLD_SITE = re.compile(r"(\S+?):\((?:function [^:]+: )?([^)\s]+)\): relocation (R_\w+) out of range: (-?\d+) is not in "
                       r"\[(-?\d+), (-?\d+)\]; references '?([^'\s]+)'?\n>>> referenced by \S+ \((.+):(\d+)\)")


def lld_sites(log: str) -> list[LldSite]:
    """Every out-of-range error ld.lld printed with its site and source line."""
    return [LldSite(f"{m.group(1)}:({m.group(2)})", LldOverflow(m.group(3), int(m.group(4)), int(m.group(5)),
                                                                int(m.group(6)), m.group(7)), m.group(8), int(m.group(9)))
            for m in _LLD_SITE.finditer(log)]


_LLD_FUNCTION_SITE = re.compile(
    r"vmlinux\.o:\(function (\S+): \.text\+(0x[0-9a-f]+)\): relocation (R_\w+) out of range: (-?\d+) is not in "
    r"\[(-?\d+), (-?\d+)\]; references '?([^'\s]+)'?")


def lld_site_addresses(log: str, build: Path) -> list[tuple[int, str, int, int, int, str]]:
    """Each out-of-range error of ld.lld in an example build's `noinhibit.log` as (site address in
    `vmlinux.noinhibit`, type, distance, lo, hi, target): the function and .text offset it names in
    vmlinux.o, moved by where llvm-nm says that function landed."""
    in_object, linked = nm_symbols(build / "vmlinux.o"), nm_symbols(build / "vmlinux.noinhibit")
    return [(linked[m[1]] + int(m[2], 16) - in_object[m[1]], m[3], int(m[4]), int(m[5]), int(m[6]), m[7])
            for m in _LLD_FUNCTION_SITE.finditer(log)]


def link_noinhibit(script: Path, inputs: list[Path], output: Path, *flags: str, linker: str = "ld.lld",
                   require_output: bool = True) -> str:
    """Link with `--noinhibit-exec`: every out-of-range error printed, the output still written.

    `linker` may be a GNU ld (`arm-linux-gnueabihf-ld`, ...); `require_output=False` for links
    where the linker has errors that --noinhibit-exec does not downgrade."""
    need(linker)
    limit = ("--error-limit=0",) if "lld" in linker else ()
    result = run(linker, *flags, "-T", script, *inputs, "-o", output, "--noinhibit-exec", *limit, check=False)
    assert output.is_file() or not require_output, result.stderr
    return result.stdout + result.stderr


def nm_symbols(image: Path) -> dict[str, int]:
    """Symbol name → address, from llvm-nm."""
    need("llvm-nm")
    symbols = {}
    for line in run("llvm-nm", image).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    return symbols


def gnu_addr2line(image: Path, addresses: list[int]) -> list[tuple[str, int]]:
    """(file, line) for each address from GNU addr2line for aarch64, which sorts line rows."""
    need("aarch64-linux-gnu-addr2line")
    out = run("aarch64-linux-gnu-addr2line", "-e", image,  # addresses on stdin: any number of them
              stdin="".join(f"{a:#x}\n" for a in addresses)).stdout.splitlines()
    located = []
    for line in out:
        file, _, number = line.rpartition(":")
        located.append((file, int(number.split()[0]) if number.split()[0].isdigit() else 0))
    return located


def llvm_function_starts(image: Path, addresses: list[int]) -> list[tuple[str, int]]:
    """(file, line) where the function holding each address is declared (DW_AT_decl_file/line, as
    llvm-symbolizer's StartFileName/StartLine of the outermost frame); ("", 0) where none is known."""
    need("llvm-symbolizer")
    out = run("llvm-symbolizer", "--output-style=JSON", "--obj", image,
              stdin="".join(f"{a:#x}\n" for a in addresses)).stdout.splitlines()
    starts = []
    for line in out:
        frame = (json.loads(line)["Symbol"] or [{}])[-1]
        starts.append((frame.get("StartFileName", ""), frame.get("StartLine", 0)))
    return starts


EXAMPLE = ROOT / "examples" / "hyp-lto"
EXAMPLE_VARIANTS = ("overflow", "at-risk", "safe")
#: Filler files linked in each of three successive builds of the example's at-risk variant: hyp_panic
#: moves away from __guest_enter build by build, from about half of cbz's reach to most of it.
GROWING_FILLER = (6, 8, 10)
#: The threshold those builds are scanned and recorded at: below it a reference is not reported,
#: so not recorded, and the first build's references use only about half their reach.
HISTORY_THRESHOLD = 0.5


def copy_example(destination: Path) -> Path:
    """A private copy of the example tree (without build outputs), so tests may edit and rebuild it."""
    tree = destination / "hyp-lto"
    shutil.copytree(EXAMPLE, tree, ignore=shutil.ignore_patterns("out"))
    return tree


def build_example(tree: Path, variant: str) -> Path:
    """`vmlinux.o` and the `--noinhibit-exec` link of one variant; returns its build dir."""
    need("clang", "ld.lld", "make")
    run("make", "-s", "-C", tree, f"VARIANT={variant}", "vmlinux.o", "noinhibit")
    return tree / "out" / variant


def final_link(build: Path) -> list[str]:
    """The final link as the build recorded it in .vmlinux.cmd (run in the build dir)."""
    line = (build / ".vmlinux.cmd").read_text().partition(":=")[2]
    return shlex.split(line)


REAL_KERNEL_SCRIPT = ROOT / "scripts" / "build-real-kernel.sh"


def build_real_kernels() -> dict[str, Path]:
    """Variant name → build dir of the real arm64 kernels (built once, cached by the script).

    A kernel that cannot be built fails the caller with the script's reason: these builds are
    the real inputs the tests exist for, so they are never skipped."""
    result = subprocess.run(["bash", str(REAL_KERNEL_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{REAL_KERNEL_SCRIPT.name} failed:\n{result.stderr[-4000:]}", pytrace=False)
    return {variant: Path(path) for variant, path in (line.split(" ", 1) for line in result.stdout.splitlines())}


def objdump_targets(image: Path) -> dict[int, tuple[str, int | None]]:
    """Address → (mnemonic, decoded branch/adr/literal target) for every instruction, from llvm-objdump."""
    need("llvm-objdump")
    decoded: dict[int, tuple[str, int | None]] = {}
    line = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*([^<]*?)(?:\s+<.*>)?$")
    for text in run("llvm-objdump", "-d", "--no-show-raw-insn", image).stdout.splitlines():
        match = line.match(text)
        if match:
            address, mnemonic, target = int(match.group(1), 16), match.group(2), match.group(3).split(",")[-1].strip()
            if re.fullmatch(r"0x[0-9a-f]+", target):
                decoded[address] = (mnemonic, int(target, 16))
            elif mnemonic == "adr" and re.fullmatch(r"#-?\d+", target):  # printed relative to the pc
                decoded[address] = (mnemonic, address + int(target[1:]))
            else:
                decoded[address] = (mnemonic, None)
    return decoded


def function_symbols(obj) -> list[tuple[str, int, int, int]]:
    """(name, section, value, size) of the STT_FUNC symbols of a reachls `ElfInput`."""
    return [(label.name, label.section, label.value, label.size) for label in obj.code_labels() if label.is_function]


def cache_root() -> Path:
    """Where costly test inputs are cached, outside the work tree."""
    return Path(os.environ.get("REACHLS_CACHE", Path.home() / ".cache" / "reachls"))


def built_once(out: Path, make: Callable[[Path], None]) -> Path:
    """`out`, made by `make(work)` in a private sibling and renamed into place only once complete,
    so an interrupted build is never taken for a cached one."""
    if (out / "done").is_file():
        return out
    work = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    make(work)
    (work / "done").touch()
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return out


def uleb128(value: int) -> bytes:
    """An unsigned LEB128, as DWARF encodes lengths, offsets and operands."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def source_map(obj: ElfInput) -> SourceMap:
    """The source map of `obj` as a scan makes it: with its architecture's debug relocation types."""
    return SourceMap(obj, architecture_of(obj).dwarf_relocations)


def rebuild_example(tree: Path, variant: str, filler_files: int) -> Path:
    """One variant's build dir rebuilt with `filler_files` generated filler files linked in (the
    next build of a growing kernel): `vmlinux.o` relinked and its `--noinhibit-exec` image."""
    need("clang", "ld.lld", "make")
    build = tree / "out" / variant
    (build / "vmlinux.o").unlink(missing_ok=True)  # fewer files than before would not make it newer
    run("make", "-s", "-C", tree, f"VARIANT={variant}", f"FILLER_FILES_{variant}={filler_files}", "vmlinux.o",
        "noinhibit")
    return build


def apply_edits(text: str, edits) -> str:
    """`text` with reachls's edits (`edits.TextEdit`: a span on one line) applied, last first."""
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e.span.line, e.span.start), reverse=True):
        line = lines[edit.span.line - 1]
        lines[edit.span.line - 1] = line[:edit.span.start] + edit.new_text + line[edit.span.end:]
    return "\n".join(lines)


def relocations_of(obj: Path) -> set[tuple[str, str]]:
    """(type, symbol) of every relocation in the object, from llvm-readelf (of a composed MIPS64
    entry, `R_MIPS_X/R_MIPS_Y/...`, the first type)."""
    found = set()
    for line in run("llvm-readelf", "-r", obj).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[2].startswith("R_"):
            found.add((parts[2].split("/")[0], parts[4]))
    return found
