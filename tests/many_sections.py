"""Generate and build a relocatable AArch64 object with more sections than ELF's 16-bit fields hold.

An allmodconfig `vmlinux.o` has hundreds of thousands of sections; past 0xff00 of them ELF
switches to extended numbering (e_shnum 0, symbols' st_shndx SHN_XINDEX with the real index in
`.symtab_shndx`). This builds an input of that shape in seconds: one `.text.f<N>` section per
function (100 000), branches between neighbours, a few branches and ADRs made to overflow,
assembly entry points without a function type, and merged string and constant sections
(`.rodata.str1.1`, `.rodata.cst8`) reached by ADRP/ADD and LDR (literal). Assembly is generated
here, assembled two files at a time, merged with `ld.lld -r` and linked with `--noinhibit-exec`
(the answer key), all cached under `${REACHLS_CACHE:-~/.cache/reachls}/xindex-<hash>/`, keyed by
this file and the toolchain's versions.

Run as a script to build (or find) it and print its directory.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import subprocess
import sys
from pathlib import Path

from toolchain import built_once, cache_root

FUNCTIONS = 100_000
FILES = 16
JOBS = 2
TARGET = "--target=aarch64-linux-gnu"
SCRIPT = """ENTRY(f0)
SECTIONS {
  . = 0x400000;
  .text : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
}
"""


def _function(i: int) -> tuple[str, str, str]:
    """(code, .rodata.str1.1 lines, .rodata.cst8 lines) of function `f<i>`.

    Functions are 12 to 24 bytes, so `tbz` 4 000 functions ahead (>= 48 KiB, reach 32 KiB) and
    `cbz`/`adr` 90 000 functions ahead (>= 1 MiB) are out of range; ADRP/ADD to a string and
    LDR (literal) from the last functions into the constants (< 100 KiB away) are in range."""
    neighbour = i + 1 if i + 1 < FUNCTIONS else i - 1
    body = [f"\tbl f{neighbour}", f"\ttbz x0, #0, f{neighbour}"]
    strings, constants = [], []
    if i % 5000 == 17 and i + 4000 < FUNCTIONS:
        body.append(f"\ttbz x1, #1, f{i + 4000}")
    if i < 10_000 and i % 2000 == 33:
        body.append(f"\tcbz x2, f{i + 90_000}")
    if i < 10_000 and i % 2000 == 1033:
        body.append(f"\tadr x3, f{i + 90_000}")
    if i % 100 == 50:
        body += [f"\tadrp x4, .Ls{i}", f"\tadd x4, x4, :lo12:.Ls{i}"]
        strings.append(f".Ls{i}:\n\t.asciz \"string of f{i}\"")
    if i % (FUNCTIONS // FILES) == 0:  # one string every file holds: merged into one copy by the link
        body += ["\tadrp x6, .Lshared", "\tadd x6, x6, :lo12:.Lshared"]
    if i >= FUNCTIONS - 3000 and i % 100 == 60:
        body.append(f"\tldr x5, .Lc{i}")
        constants.append(f".Lc{i}:\n\t.quad {i * 65_537}")
    if i % 1000 == 7:  # an entry point inside the function, as SYM_INNER_LABEL makes it: STT_NOTYPE
        body += [f"\t.globl e{i}", f"e{i}:"]
    code = (f"\t.section .text.f{i},\"ax\",%progbits\n\t.globl f{i}\n\t.type f{i},%function\n\t.p2align 2\n"
            f"f{i}:\n" + "\n".join(body) + f"\n\tret\n\t.size f{i}, .-f{i}\n")
    return code, "\n".join(strings), "\n".join(constants)


def assembly(part: int) -> str:
    """Assembly source of file `part` (functions part*N/FILES up to the next part)."""
    per_file = FUNCTIONS // FILES
    code, strings, constants = [], [".Lshared:\n\t.asciz \"held by every file\""], []
    for i in range(part * per_file, (part + 1) * per_file):
        text, string, constant = _function(i)
        code.append(text)
        strings += [string] if string else []
        constants += [constant] if constant else []
    return ("".join(code) + "\t.section .rodata.str1.1,\"aMS\",@progbits,1\n" + "\n".join(strings) + "\n"
            + "\t.section .rodata.cst8,\"aM\",@progbits,8\n\t.p2align 3\n" + "\n".join(constants) + "\n")


def cache_dir() -> Path:
    """The build's directory, named by a hash of this generator and the toolchain's versions."""
    key = hashlib.sha256(Path(__file__).read_bytes())
    for tool in ("clang", "ld.lld"):
        key.update(subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.encode())
    return cache_root() / f"xindex-{key.hexdigest()[:16]}"


def build() -> Path:
    """`many.o` (relocatable, extended numbering), `many.lds`, and its `--noinhibit-exec` link
    `many.elf` with the linker's messages in `many.log`; built once per cache key."""
    return built_once(cache_dir(), _make)


def _make(work: Path) -> None:
    def assemble(part: int) -> Path:
        source, obj = work / f"part{part:02d}.s", work / f"part{part:02d}.o"
        source.write_text(assembly(part))
        subprocess.run(["clang", TARGET, "-c", source, "-o", obj], check=True, capture_output=True)
        return obj

    with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:
        objects = list(pool.map(assemble, range(FILES)))
    subprocess.run(["ld.lld", "-r", *objects, "-o", work / "many.o"], check=True, capture_output=True)
    (work / "many.lds").write_text(SCRIPT)
    link = subprocess.run(["ld.lld", "-T", "many.lds", "many.o", "-o", "many.elf", "--noinhibit-exec",
                           "--error-limit=0"], capture_output=True, text=True, cwd=work)
    (work / "many.log").write_text(link.stdout + link.stderr)
    for path in [*objects, *work.glob("part*.s")]:
        path.unlink()


if __name__ == "__main__":
    sys.stdout.write(f"{build()}\n")
