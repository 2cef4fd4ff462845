"""Linked-image mode throughput: decoding a final image's short-reach instructions vs `llvm-objdump -d`.

The image is the 100k-section input of `bench/generate.py` (built and cached if missing) linked
with its kernel script by `ld.lld` into a temp dir, or `--image PATH`, or, when that link fails,
a generated one (a few MB of assembly dense in short-reach instructions, assembled by clang,
linked by ld.lld).
It reports, as medians over `--repeat` runs:

- decode: `decode.analyse_decoded` in-process (the vectorised decoder, statuses, records for
  what is not ok) — MB/s of executable section bytes;
- scan: `reachls scan IMAGE --format json` as a child process (start-up, DWARF lines included);
- objdump: `llvm-objdump -d --no-show-raw-insn IMAGE > /dev/null`, the toolchain's own decoder;
- scan --all: `reachls scan IMAGE --all --format json`, a record and a source line for every
  short-reach instruction, against `llvm-objdump -d -l IMAGE`, which prints a line for every
  instruction (the goal: at most twice its time);

and the ratios objdump ÷ decode, objdump ÷ scan and scan --all ÷ objdump -d -l. The last pair is
run on the image above and on a real arm64 kernel when one is cached (`make real-kernel`: the newest
`$REACHLS_CACHE/kernel/*/{clang-lto,gcc}/vmlinux`), or on `--kernel PATH`. Its ratios are of the
whole child processes' CPU seconds (user + sys, as the OS accounts them) and of wall seconds, run
in turn (A B A B ...) and taken pair by pair, so a machine that drifts in speed biases neither.

    .venv/bin/python bench/decode_bench.py [--image PATH] [--kernel PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))

from reachls.arch import architecture_of
from reachls.decode import analyse_decoded
from reachls.elf import ElfInput
from reachls.stages import linked_placement
from reachls.record import Provenance

sys.path.insert(0, str(ROOT / "bench"))
from generate import ensure  # noqa: E402

IMAGE_SIZE = "100k"
REACHLS = str(Path(sys.executable).parent / "reachls")


def _run(argv: list[str], cwd: Path | None = None) -> float:
    """Wall seconds of one child, stdout discarded."""
    return _timed(argv, cwd)[0]


def _timed(argv: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process, stdout discarded; CPU is its user + sys time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _scan_all_vs_objdump(image: Path, repeat: int) -> str:
    """A table row: `reachls scan --all` against `llvm-objdump -d -l` on `image`, medians of the
    pairwise ratios of CPU and of wall seconds (after one warm-up run of each)."""
    scan, objdump = [REACHLS, "scan", str(image), "--all", "--format", "json"], ["llvm-objdump", "-d", "-l", str(image)]
    _timed(scan), _timed(objdump)
    pairs = [(_timed(scan), _timed(objdump)) for _ in range(repeat)]
    median = statistics.median
    return (f"| {image} | {median([a[1] for a, _ in pairs]):.2f} | {median([b[1] for _, b in pairs]):.2f} | "
            f"{median([a[1] / b[1] for a, b in pairs]):.2f}× | {median([a[0] / b[0] for a, b in pairs]):.2f}× |")


def _real_kernels() -> list[Path]:
    """The newest cached real kernel images (tests/e2e/test_real_kernel.py builds them), one per variant."""
    cache = Path(os.environ.get("REACHLS_CACHE", Path.home() / ".cache" / "reachls")) / "kernel"
    found = []
    for variant in ("clang-lto", "gcc"):
        images = sorted(cache.glob(f"*/{variant}/vmlinux"), key=lambda p: p.stat().st_mtime)
        found += images[-1:]
    return found


def _generated(tmp: Path, functions: int = 4000, blocks: int = 60) -> Path:
    """A synthetic image: functions of b/bl/b.cond/cbz/tbz/adr/adrp/ldr literal, and data in code."""
    lines = [".text"]
    for f in range(functions):
        lines += [f".globl f{f}", f".type f{f}, %function", f"f{f}:",
                  f"  .rept {blocks}",
                  f"  bl f{(f * 7919 + 1) % functions}", "  cbz x0, 1f", f"  adrp x1, f{(f * 31) % functions}",
                  f"  add x1, x1, :lo12:f{(f * 31) % functions}", "  ldr x2, 2f", "  tbnz w3, #5, 1f",
                  "  b.ne 1f", "  adr x4, 1f", "  mov x5, x6", "1:", "  nop", "  .endr",
                  f"  b f{(f + 1) % functions}", "2:", "  .quad 0x94000000d503201f", "  ret"]
    (tmp / "gen.S").write_text("\n".join(lines) + "\n")
    subprocess.run(["clang", "--target=aarch64-linux-gnu", "-c", str(tmp / "gen.S"), "-o", str(tmp / "gen.o")],
                   check=True)
    subprocess.run(["ld.lld", "-e", "f0", "-Ttext=0xffff800008000000", str(tmp / "gen.o"), "-o", str(tmp / "gen")],
                   check=True)
    return tmp / "gen"


def _image(tmp: Path, image: Path | None) -> tuple[Path, str]:
    if image is not None:
        return image, str(image)
    build = ensure(IMAGE_SIZE, log=lambda message: print(message, file=sys.stderr))
    out = tmp / "vmlinux"
    subprocess.run(["ld.lld", "-T", str(build.script), str(build.obj), "-o", str(out), "--noinhibit-exec"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if out.is_file():
        return out, f"the {IMAGE_SIZE} input of `bench/generate.py`, linked ({build.stats.size_bytes >> 20} MiB object)"
    return _generated(tmp), f"generated assembly (the {IMAGE_SIZE} input did not link)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="a linked image without relocations (default: see above)")
    parser.add_argument("--kernel", type=Path, action="append",
                        help="a real linked kernel for the scan --all pair (default: the cached ones, if any)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for tool in ("llvm-objdump", "ld.lld", "clang"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="reachls-decode-bench-") as tmp_name:
        image, origin = _image(Path(tmp_name), args.image)
        with ElfInput(image) as obj:
            arch = architecture_of(obj)
            code = sum(s.size for s in obj.sections if s.is_code and s.sh_type != 8)
            if any(obj.sections[t].is_code for t in obj.relocation_sections() if t < len(obj.sections)):
                print(f"{image} has relocations for code: the relocation path would be used", file=sys.stderr)
            placement = linked_placement(obj)
            provenance = Provenance(str(image), image.stat().st_mtime, "linked", "decoded")
            decode_walls, analysis = [], None
            for _ in range(args.repeat):
                start = time.perf_counter()
                analysis = analyse_decoded(obj, arch, placement, provenance)
                decode_walls.append(time.perf_counter() - start)
        scan_walls = [_run([REACHLS, "scan", str(image), "--format", "json"]) for _ in range(args.repeat)]
        objdump_walls = [_run(["llvm-objdump", "-d", "--no-show-raw-insn", str(image)]) for _ in range(args.repeat)]
        bench_pair = _scan_all_vs_objdump(image, args.repeat).replace(str(image), origin)
    decode, scan, objdump = (statistics.median(w) for w in (decode_walls, scan_walls, objdump_walls))
    mb = code / 1e6
    print(f"image: {origin}; {mb:.1f} MB of code, {analysis.total:,} short-reach instructions decoded, "
          f"{len(analysis.records)} reported; median of {args.repeat}\n")
    print("| | wall (s) | MB/s of code | objdump ÷ this |")
    print("|---|---:|---:|---:|")
    print(f"| decode (`analyse_decoded`, in-process) | {decode:.3f} | {mb / decode:.1f} | {objdump / decode:.1f}× |")
    print(f"| `reachls scan IMAGE --format json` | {scan:.3f} | {mb / scan:.1f} | {objdump / scan:.1f}× |")
    print(f"| `llvm-objdump -d --no-show-raw-insn` | {objdump:.3f} | {mb / objdump:.1f} | 1.0× |")
    kernels = args.kernel or _real_kernels()
    print("\n`reachls scan IMAGE --all --format json` ÷ `llvm-objdump -d -l IMAGE`, whole processes, "
          f"medians of {args.repeat} pairs (goal: at most 2×)\n")
    print("| image | scan CPU (s) | objdump CPU (s) | CPU ratio | wall ratio |")
    print("|---|---:|---:|---:|---:|")
    for kernel in kernels:
        print(_scan_all_vs_objdump(kernel, args.repeat), flush=True)
    print(bench_pair)
    if not kernels:
        print("\n(no real kernel cached: `make real-kernel` builds them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
