"""Build an arm64 allmodconfig-shaped `vmlinux.o`, at one of several sizes, with the real toolchain.

An allmodconfig `vmlinux.o` has hundreds of thousands of sections (ELF extended numbering,
SHN_XINDEX) and over ten million relocations in code. This generates that shape as assembly,
which clang assembles far faster than it compiles C:

- about 45 % of the sections are `.text.<function>` (each with its `.rela.text.<function>`);
  a function holds about 34 relocations: calls and tail calls (CALL26, JUMP26) mostly to
  functions nearby, as within a subsystem, some anywhere; ADRP+ADD (ADD_ABS_LO12_NC) to strings
  in the merged `.rodata.str1.1` and to `.rodata.<object>`; ADRP+LDR (LDST64_ABS_LO12_NC) of
  `.data.<var>` and `.bss.<var>`; CBZ (CONDBR19) and TBNZ (TSTBR14) to neighbouring functions;
  now and then ADR (ADR_PREL_LO21) of a function or LDR (LD_PREL_LO19) of a literal nearby;
- about 3 functions in 1 000 hold a short-reach reference at 30 % to 150 % of its reach (CBZ
  to a function ~1 MiB away, TBZ over ~32 KiB, ...): fragile, at-risk and overflowing sites for
  a scan to report and map to source (about 1 000 at the largest size);
- `.rodata.<object>`, `.data.<var>` (half of them holding function pointers, with their
  `.rela.data.<var>`) and `.bss.<var>` sections;
- DWARF from `clang -g` (`.debug_info`, `.debug_line` with one sequence per code section, and
  their `.rela.debug_*`), so sites map to real line programs.

Files of `FUNCTIONS_PER_FILE` functions are generated and assembled two at a time and merged
with `ld.lld -r`. The result is laid out as a kbuild output directory: `vmlinux.o`, the real
6.1 arm64 kernel's `.vmlinux.cmd` (its final link line) and `arch/arm64/kernel/vmlinux.lds`,
taken from the cached real kernel build (`scripts/build-real-kernel.sh`, clang-lto). The object
defines what that script's assignments need, and the build checks that the real link line links
it (`--noinhibit-exec`: out-of-range errors are counted as warnings in `link.log`).

Each size is cached under `${REACHLS_CACHE:-~/.cache/reachls}/bench-<size>-<key>/`, the key a
hash of this file, the size's parameters, the script, the link line and the toolchain's versions;
`stats.json` there holds what was built. Run as a script to build (or find) sizes and print them:

    .venv/bin/python bench/generate.py [--sizes 25k,100k]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from toolchain import built_once, cache_root  # noqa: E402

JOBS = 2
TARGET = "--target=aarch64-linux-gnu"
ASFLAGS = [TARGET, "-gdwarf-4", "-c"]  # DWARF 4, as the real kernel builds (scripts/real-kernel)
FUNCTIONS_PER_FILE = 2000
CALLS_PER_FUNCTION = 14
#: Per 100 functions: `.rodata.<object>`, `.data.<var>` and `.bss.<var>` sections.
RODATA_PER_100, DATA_PER_100, BSS_PER_100 = 12, 8, 2
#: Average function size (bytes) the generated bodies come to: distances in bytes become counts of functions.
FUNCTION_BYTES = 264
#: Reaches of the short-reach kinds the far sites use (CONDBR19/ADR_PREL_LO21/LD_PREL_LO19, TSTBR14).
MIB, TBZ_REACH = 1 << 20, 32 << 10
KERNEL_VARIANT = "clang-lto"
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\s*;", re.MULTILINE)
_SCRIPT_DEFINES = re.compile(r"\b([A-Za-z_]\w*)\s*=[^=]")
_OUT_OF_RANGE = re.compile(r"relocation R_\w+ out of range")


@dataclass(frozen=True)
class Params:
    """Everything that shapes one size; a change to any field (or to this file) rebuilds it."""

    functions: int
    far_sites_per_1000: float = 3.2
    seed: int = 20261129


#: The sizes, named by their approximate section count (2.26 sections per function).
SIZES = {"25k": Params(11_000), "100k": Params(44_000), "300k": Params(133_000), "700k": Params(315_000)}

_PREFIXES = ("ext4", "btrfs", "xfs", "nfs", "tcp", "udp", "ipv6", "usb", "pci", "drm", "sched", "mm",
             "blk", "scsi", "kvm", "crypto")
_VERBS = ("init", "probe", "remove", "alloc", "free", "read", "write", "lookup", "insert", "update",
          "flush", "lock", "unlock", "submit", "complete", "handle")


def function_name(i: int) -> str:
    return f"{_PREFIXES[i % 16]}_{_VERBS[(i // 16) % 16]}_{i}"


@dataclass(frozen=True)
class Stats:
    """What was built, from its section headers (no relocation is read), and what the check link said."""

    size_bytes: int
    sections: int
    code_sections: int
    code_relocations: int
    debug_relocations: int
    all_relocations: int
    text_bytes: int
    linker_out_of_range: int
    build_seconds: float

    def describe(self) -> str:
        return (f"{self.size_bytes / 2**20:.0f} MiB, {self.sections:,} sections ({self.code_sections:,} code, "
                f"{self.text_bytes / 2**20:.0f} MiB), {self.code_relocations:,} relocations in code sections "
                f"({self.debug_relocations:,} in .rela.debug_*, {self.all_relocations:,} in all); "
                f"ld.lld reports {self.linker_out_of_range:,} out of range")


@dataclass(frozen=True)
class Build:
    """One size, built: a kbuild-like directory holding `vmlinux.o`, `.vmlinux.cmd` and the script."""

    size: str
    directory: Path
    stats: Stats

    @property
    def obj(self) -> Path:
        return self.directory / "vmlinux.o"

    @property
    def script(self) -> Path:
        return self.directory / "arch/arm64/kernel/vmlinux.lds"


@dataclass(frozen=True)
class Kernel:
    """The real 6.1 arm64 build the link line and script come from."""

    directory: Path
    cmd_line: str  # the `cmd_vmlinux := ...` line of its .vmlinux.cmd
    script: str

    def link_argv(self, obj: Path, script: Path, output: Path) -> list[str]:
        """The final link line of `.vmlinux.cmd`, as link-vmlinux.sh runs it, on `obj` alone."""
        recorded = shlex.split(self.cmd_line.partition(":=")[2].partition(";")[0])
        linker, kbuild_ldflags, ldflags_vmlinux = recorded[1:4]
        return [linker, *shlex.split(kbuild_ldflags), *shlex.split(ldflags_vmlinux), f"--script={script}",
                "-o", str(output), "--whole-archive", str(obj), "--no-whole-archive"]


def real_kernel() -> Kernel:
    """The cached clang-lto build of `scripts/build-real-kernel.sh` (which builds it if missing)."""
    listing = subprocess.run(["bash", str(ROOT / "scripts/build-real-kernel.sh")], capture_output=True, text=True,
                             check=True).stdout
    builds = dict(line.split(maxsplit=1) for line in listing.splitlines() if line.strip())
    directory = Path(builds[KERNEL_VARIANT].strip())
    cmd_line = next(line for line in (directory / ".vmlinux.cmd").read_text().splitlines()
                    if line.startswith(("cmd_vmlinux", "savedcmd_vmlinux")))
    return Kernel(directory, cmd_line, (directory / "arch/arm64/kernel/vmlinux.lds").read_text())


def script_needs(script: str) -> list[str]:
    """Symbols the script's plain assignments (`a = b;`) read but nothing in it defines: a link
    fails unless the object defines them (`jiffies = jiffies_64;`, `__kvm_nvhe_x = x;`)."""
    defined = set(_SCRIPT_DEFINES.findall(script))
    return sorted({source for _, source in _ASSIGNMENT.findall(script)} - defined)


def glue_assembly(needed: list[str]) -> str:
    """The kernel's entry (`.head.text`, branching into the generated code) and the symbols the script needs."""
    lines = ['\t.section .head.text,"ax",%progbits', "\t.globl _head", "_head:", f"\tb {function_name(0)}",
             '\t.section .data.kernel_glue,"aw",%progbits', "\t.p2align 3"]
    for name in needed:
        lines += [f"\t.globl {name}", f"{name}:", "\t.quad 0"]
    return "\n".join(lines) + "\n"


def _near(rng: np.random.Generator, origin: np.ndarray, spread: int, total: int) -> np.ndarray:
    """Indices `origin` + a nonzero offset up to `spread` either way, kept inside [0, total)."""
    offset = rng.integers(1, spread + 1, origin.shape) * rng.choice((-1, 1), origin.shape)
    target = origin + offset
    return np.where((target < 0) | (target >= total), origin - offset, target).clip(0, total - 1)


def _callees(rng: np.random.Generator, first: int, count: int, total: int) -> np.ndarray:
    """CALL26/JUMP26 targets, (count, CALLS_PER_FUNCTION + 1): 60 % within 200 functions, 30 %
    within 5 000 (the same subsystem), 10 % anywhere."""
    shape = (count, CALLS_PER_FUNCTION + 1)
    origin = np.broadcast_to(np.arange(first, first + count)[:, None], shape)
    pick = rng.random(shape)
    return np.where(pick < 0.6, _near(rng, origin, 200, total),
                    np.where(pick < 0.9, _near(rng, origin, 5000, total), rng.integers(0, total, shape)))


def _far_sites(p: Params, rng: np.random.Generator, first: int, count: int) -> dict[int, str]:
    """Function index → one short-reach instruction placed at 30 % to 150 % of its reach."""
    sites = {}
    chosen = np.flatnonzero(rng.random(count) < p.far_sites_per_1000 / 1000)
    usage = rng.uniform(0.3, 1.5, len(chosen))
    kinds = rng.integers(0, 4, len(chosen))
    signs = rng.choice((-1, 1), len(chosen))
    for local, use, kind, sign in zip(chosen.tolist(), usage.tolist(), kinds.tolist(), signs.tolist()):
        i = first + local
        reach = TBZ_REACH if kind == 1 else MIB
        distance = max(2, round(use * reach / FUNCTION_BYTES))
        j = next((t for t in (i + sign * distance, i - sign * distance) if 0 <= t < p.functions), None)
        if j is None:
            continue
        if kind == 3:  # a literal: every 8th function holds one
            j -= j % 8
        sites[i] = (f"\tcbnz x20, {function_name(j)}", f"\ttbz x20, #{j % 32}, {function_name(j)}",
                    f"\tadr x21, {function_name(j)}", f"\tldr x21, {function_name(j)}_lit")[kind]
    return sites


def file_assembly(p: Params, part: int) -> str:
    """Assembly of generated file `part`: functions [part * FUNCTIONS_PER_FILE, ...), their strings and data."""
    rng = np.random.default_rng([p.seed, part])
    first = part * FUNCTIONS_PER_FILE
    count = min(FUNCTIONS_PER_FILE, p.functions - first)
    rodata, data, bss = (p.functions * n // 100 for n in (RODATA_PER_100, DATA_PER_100, BSS_PER_100))
    calls = _callees(rng, first, count, p.functions).tolist()
    origin = np.arange(first, first + count)
    branch_targets = _near(rng, origin, 200, p.functions).tolist()
    test_targets = _near(rng, origin, 8, p.functions).tolist()
    adr_targets = _near(rng, origin, 50, p.functions).tolist()
    literal_targets = (_near(rng, origin, 16, p.functions) // 8 * 8).tolist()
    objects = rng.integers(0, rodata, (count, 2)).tolist()
    variables = rng.integers(0, data + bss, (count, 4)).tolist()
    extra = rng.integers(0, 13, count).tolist()
    optional = rng.random((count, 3)).tolist()
    far = _far_sites(p, rng, first, count)
    out, strings = [], []
    for k in range(count):
        i, name = first + k, function_name(first + k)
        callee = [function_name(c) for c in calls[k]]
        var = [f"data_{v}" if v < data else f"bss_{v - data}" for v in variables[k]]
        body = [f'\t.section .text.{name},"ax",%progbits', f"\t.globl {name}", f"\t.type {name},%function",
                "\t.p2align 2", f"{name}:", "\tstp x29, x30, [sp, #-48]!", "\tmov x29, sp",
                "\tstp x19, x20, [sp, #16]", "\tmov x19, x0", "\tmov x20, x1",
                f"\tadrp x1, .Lstr{i}_0", f"\tadd x1, x1, :lo12:.Lstr{i}_0",
                f"\tadrp x2, rodata_{objects[k][0]}", f"\tadd x2, x2, :lo12:rodata_{objects[k][0]}"]
        for c in range(CALLS_PER_FUNCTION):
            body += [f"\tbl {callee[c]}", "\tadd x19, x19, x0"]
            if c < 4:
                body += [f"\tadrp x3, {var[c]}", f"\tldr x3, [x3, :lo12:{var[c]}]", "\tadd x0, x19, x3"]
            elif c == 6:
                body += [f"\tcbz x0, {function_name(branch_targets[k])}"]
            elif c == 8 and optional[k][0] < 0.5:
                body += [f"\ttbnz w0, #{i % 32}, {function_name(test_targets[k])}"]
            elif c == 9 and optional[k][1] < 0.1:
                body += [f"\tadr x4, {function_name(adr_targets[k])}"]
            elif c == 10 and optional[k][2] < 0.1 and literal_targets[k] != i:
                body += [f"\tldr x4, {function_name(literal_targets[k])}_lit"]
            elif c == 11:
                body += [f"\tadrp x1, .Lstr{i}_1", f"\tadd x1, x1, :lo12:.Lstr{i}_1",
                         f"\tadrp x2, rodata_{objects[k][1]}", f"\tadd x2, x2, :lo12:rodata_{objects[k][1]}"]
        if i in far:
            body.append(far[i])
        body += ["\tmov x0, x19"] * extra[k]
        body += ["\tldp x19, x20, [sp, #16]", "\tldp x29, x30, [sp], #48", "\tcbz x0, 1f",
                 f"\tb {callee[-1]}", f"1:\tb {callee[-2]}"]
        if i % 8 == 0:
            body += ["\t.p2align 3", f"\t.globl {name}_lit", f"{name}_lit:", f"\t.quad {i * 2654435761 % 2**63}"]
        body.append(f"\t.size {name}, .-{name}")
        out.append("\n".join(body))
        strings += [f'.Lstr{i}_0:\n\t.asciz "{name}: failed (%d)\\n"', f'.Lstr{i}_1:\n\t.asciz "out of memory\\n"']
    out.append('\t.section .rodata.str1.1,"aMS",@progbits,1\n' + "\n".join(strings))
    out += _data_sections(p, part)
    return "\n".join(out) + "\n"


def _data_sections(p: Params, part: int) -> list[str]:
    """This file's share of `.rodata.<object>`, `.data.<var>` (odd ones point at a function) and `.bss.<var>`."""
    out = []
    for kind, per_100 in (("rodata", RODATA_PER_100), ("data", DATA_PER_100), ("bss", BSS_PER_100)):
        total = p.functions * per_100 // 100
        parts = -(-p.functions // FUNCTIONS_PER_FILE)
        for n in range(part * total // parts, (part + 1) * total // parts):
            name, flags = f"{kind}_{n}", {"rodata": '"a",%progbits', "data": '"aw",%progbits',
                                          "bss": '"aw",%nobits'}[kind]
            value = {"rodata": f"\t.quad {n}, {n + 1}, {n + 2}", "bss": "\t.zero 64",
                     "data": f"\t.quad {function_name(n * 7 % p.functions)}" if n % 2 else f"\t.quad {n}"}[kind]
            out.append(f"\t.section .{kind}.{name},{flags}\n\t.p2align 3\n\t.globl {name}\n{name}:\n{value}")
    return out


def _assemble(job: tuple[Params, int, Path, Path]) -> Path:
    """Generate and assemble one file; its DWARF names it `part<N>.s` in `final` (the cache
    directory once the build is renamed into place). The source is not kept: scans do not read it."""
    p, part, work, final = job
    source, obj = work / f"part{part:03d}.s", work / f"part{part:03d}.o"
    source.write_text(file_assembly(p, part))
    subprocess.run(["clang", *ASFLAGS, f"-fdebug-compilation-dir={final}", source.name, "-o", obj.name],
                   check=True, cwd=work)
    source.unlink()
    return obj


def section_stats(path: Path) -> dict[str, int]:
    """Counts from the section headers, read as one numpy table (extended numbering included)."""
    header = np.dtype([("name", "<u4"), ("type", "<u4"), ("flags", "<u8"), ("addr", "<u8"), ("offset", "<u8"),
                       ("size", "<u8"), ("link", "<u4"), ("info", "<u4"), ("addralign", "<u8"), ("entsize", "<u8")])
    with path.open("rb") as stream:
        ident = stream.read(64)
        shoff = int.from_bytes(ident[0x28:0x30], "little")
        shnum, shstrndx = int.from_bytes(ident[0x3C:0x3E], "little"), int.from_bytes(ident[0x3E:0x40], "little")
        stream.seek(shoff)
        first = np.frombuffer(stream.read(header.itemsize), header)[0]
        shnum = shnum or int(first["size"])
        shstrndx = int(first["link"]) if shstrndx == 0xFFFF else shstrndx
        stream.seek(shoff)
        heads = np.frombuffer(stream.read(shnum * header.itemsize), header)
        stream.seek(int(heads["offset"][shstrndx]))
        names = stream.read(int(heads["size"][shstrndx]))
    is_rela = np.isin(heads["type"], (4, 9)) & (heads["entsize"] > 0)
    counts = np.where(is_rela, heads["size"] // np.maximum(heads["entsize"], 1), 0)
    into_code = (heads["flags"][heads["info"] % shnum] & 0x4) != 0
    is_code = (heads["flags"] & 0x4) != 0
    debug = np.array([names.startswith(b".rela.debug", n) or names.startswith(b".rel.debug", n)
                      for n in heads["name"].tolist()])
    return {"size_bytes": path.stat().st_size, "sections": shnum, "code_sections": int(is_code.sum()),
            "code_relocations": int(counts[is_rela & into_code].sum()),
            "debug_relocations": int(counts[is_rela & debug].sum()), "all_relocations": int(counts.sum()),
            "text_bytes": int(heads["size"][is_code].sum())}


def cache_key(p: Params, kernel: Kernel) -> str:
    key = hashlib.sha256(Path(__file__).read_bytes())
    key.update(json.dumps(asdict(p), sort_keys=True).encode())
    key.update(kernel.script.encode() + kernel.cmd_line.encode())
    for tool in ("clang", "ld.lld"):
        key.update(subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout.encode())
    return key.hexdigest()[:16]


def ensure(size: str, log: Callable[[str], None] = print, kernel: Kernel | None = None) -> Build:
    """The build of `size` (a key of SIZES), made now unless cached."""
    p = SIZES[size]
    kernel = kernel or real_kernel()
    directory = cache_root() / f"bench-{size}-{cache_key(p, kernel)}"
    if not (directory / "done").is_file():
        log(f"building the {size} input in {directory} ({p.functions:,} functions) ...")
    built_once(directory, lambda work: _build(p, kernel, work, directory, log))
    return Build(size, directory, Stats(**json.loads((directory / "stats.json").read_text())))


def _build(p: Params, kernel: Kernel, work: Path, final: Path, log: Callable[[str], None]) -> None:
    start = time.monotonic()
    needed = script_needs(kernel.script)
    (work / "glue.s").write_text(glue_assembly(needed))
    jobs = [(p, part, work, final) for part in range(-(-p.functions // FUNCTIONS_PER_FILE))]
    with concurrent.futures.ProcessPoolExecutor(JOBS) as pool:
        objects = list(pool.map(_assemble, jobs))
    subprocess.run(["clang", *ASFLAGS, str(work / "glue.s"), "-o", str(work / "glue.o")], check=True)
    assembled = time.monotonic()
    subprocess.run(["ld.lld", "-r", str(work / "glue.o"), *map(str, objects), "-o", str(work / "vmlinux.o")],
                   check=True)
    merged = time.monotonic()
    for path in [*objects, work / "glue.o", work / "glue.s"]:
        path.unlink()
    script = work / "arch/arm64/kernel/vmlinux.lds"
    script.parent.mkdir(parents=True)
    script.write_text(kernel.script)
    (work / ".vmlinux.cmd").write_text(kernel.cmd_line + "\n")
    image = work / "vmlinux.check"
    link = subprocess.run(kernel.link_argv(Path("vmlinux.o"), script.relative_to(work), Path(image.name))
                          + ["--noinhibit-exec", "--error-limit=0"], capture_output=True, text=True, cwd=work)
    (work / "link.log").write_text(link.stdout + link.stderr)
    image.unlink(missing_ok=True)
    if link.returncode != 0 or "undefined symbol" in link.stderr:
        raise RuntimeError(f"the real link line does not link the generated object (see {work / 'link.log'})")
    stats = Stats(**section_stats(work / "vmlinux.o"), linker_out_of_range=len(_OUT_OF_RANGE.findall(link.stderr)),
                  build_seconds=round(time.monotonic() - start, 1))
    (work / "stats.json").write_text(json.dumps(asdict(stats), indent=1) + "\n")
    log(f"  assembled {len(objects)} files in {assembled - start:.0f} s, ld.lld -r in {merged - assembled:.0f} s, "
        f"checked with the real link line in {time.monotonic() - merged:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    args = parser.parse_args()
    kernel = real_kernel()
    for size in args.sizes.split(","):
        build = ensure(size, kernel=kernel)
        print(f"{size}: {build.directory}: {build.stats.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
