"""Linked-image mode throughput: decoding a final image's short-reach instructions vs `llvm-objdump -d`.

The image is `bench/out/vmlinux.o` linked with `ld.lld -T bench/out/vmlinux.lds` into a temp
dir (bench/out is left alone), or `--image PATH`, or, when neither exists, a generated one
(a few MB of assembly dense in short-reach instructions, assembled by clang, linked by ld.lld).
It reports, as medians over `--repeat` runs:

- decode: `decode.analyse_decoded` in-process (the vectorised decoder, statuses, records for
  what is not ok) — MB/s of executable section bytes;
- scan: `reachls scan IMAGE --format json` as a child process (start-up, DWARF lines included);
- objdump: `llvm-objdump -d --no-show-raw-insn IMAGE > /dev/null`, the toolchain's own decoder;
- scan --all: `reachls scan IMAGE --all --format json`, a record and a source line for every
  short-reach instruction, against `llvm-objdump -d -l IMAGE`, which prints a line for every
  instruction (the goal: at most twice its time);

and the ratios objdump ÷ decode, objdump ÷ scan and scan --all ÷ objdump -d -l.

    .venv/bin/python bench/decode_bench.py [--image PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))

from reachls.arch import for_machine
from reachls.decode import analyse_decoded
from reachls.elf import ElfInput
from reachls.pipeline import linked_placement
from reachls.record import Provenance

BENCH_OBJ, BENCH_LDS = ROOT / "bench" / "out" / "vmlinux.o", ROOT / "bench" / "out" / "vmlinux.lds"
REACHLS = str(Path(sys.executable).parent / "reachls")


def _run(argv: list[str], cwd: Path | None = None) -> float:
    """Wall seconds of one child, stdout discarded."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, cwd=cwd)
    return time.perf_counter() - start


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
    if BENCH_OBJ.is_file() and BENCH_LDS.is_file():
        out = tmp / "vmlinux"
        subprocess.run(["ld.lld", "-T", str(BENCH_LDS), str(BENCH_OBJ), "-o", str(out), "--noinhibit-exec"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if out.is_file():
            return out, f"`ld.lld -T bench/out/vmlinux.lds bench/out/vmlinux.o` ({BENCH_OBJ.stat().st_size >> 20} MiB)"
    return _generated(tmp), "generated assembly (no bench/out/vmlinux.o)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="a linked image without relocations (default: see above)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for tool in ("llvm-objdump", "ld.lld", "clang"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="reachls-decode-bench-") as tmp_name:
        image, origin = _image(Path(tmp_name), args.image)
        with ElfInput(image) as obj:
            arch = for_machine(obj.machine, str(image))
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
        all_walls = [_run([REACHLS, "scan", str(image), "--all", "--format", "json"]) for _ in range(args.repeat)]
        lines_walls = [_run(["llvm-objdump", "-d", "-l", str(image)]) for _ in range(args.repeat)]
    decode, scan, objdump, scan_all, objdump_lines = (statistics.median(w) for w in (
        decode_walls, scan_walls, objdump_walls, all_walls, lines_walls))
    mb = code / 1e6
    print(f"image: {origin}; {mb:.1f} MB of code, {analysis.total:,} short-reach instructions decoded, "
          f"{len(analysis.records)} reported; median of {args.repeat}\n")
    print("| | wall (s) | MB/s of code | objdump ÷ this |")
    print("|---|---:|---:|---:|")
    print(f"| decode (`analyse_decoded`, in-process) | {decode:.3f} | {mb / decode:.1f} | {objdump / decode:.1f}× |")
    print(f"| `reachls scan IMAGE --format json` | {scan:.3f} | {mb / scan:.1f} | {objdump / scan:.1f}× |")
    print(f"| `llvm-objdump -d --no-show-raw-insn` | {objdump:.3f} | {mb / objdump:.1f} | 1.0× |")
    print("\n| with source lines | wall (s) | ÷ `llvm-objdump -d -l` |")
    print("|---|---:|---:|")
    print(f"| `reachls scan IMAGE --all --format json` | {scan_all:.3f} | {scan_all / objdump_lines:.2f}× |")
    print(f"| `llvm-objdump -d -l` | {objdump_lines:.3f} | 1.00× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
