"""Source mapping at scale: `SourceMap.locations_for` of 1 000 sites and 1 000 targets, in-process.

The input is a relocatable AArch64 object whose line programs are as long as an allmodconfig
unit's: `--files` units (12) of `--functions` (8 000) one-sequence functions, 85 k rows per line
program, 96 k sections, built with clang -g -ffunction-sections and merged with `ld.lld -r`,
cached under `${REACHLS_CACHE:-~/.cache/reachls}/sourcemap-bench-<hash>/` (keyed by the generator,
its parameters and the toolchain's versions); or `--input PATH`, any relocatable object with
DWARF (a cached real kernel's `vmlinux.o`). Sites are instructions spread evenly over the object's functions,
targets the starts of others. Printed: the median of `--repeat` runs of `lines_at` (the sites alone)
and of `locations_for`, each with a fresh `SourceMap` (section bytes already in the page cache),
and what was decoded (`SourceMap.decoded`).

    .venv/bin/python bench/sourcemap_bench.py [--input PATH] [--sites 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import inspect
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))

from reachls.arch import architecture_of  # noqa: E402
from reachls.elf import ElfInput  # noqa: E402
from reachls.sourcemap import SourceMap  # noqa: E402

CFLAGS = ["--target=aarch64-linux-gnu", "-g", "-O1", "-ffunction-sections", "-c"]


def _function(unit: int, number: int) -> str:
    """A function of about a dozen line rows."""
    return f"""
__attribute__((noinline)) int u{unit}_f{number}(int x)
{{
\tint y = x * {number % 97 + 3};
\tif (y & 1)
\t\ty += x >> {number % 5 + 1};
\tfor (int k = 0; k < (x & 3); k++)
\t\ty ^= y << 1;
\treturn y - {number};
}}
"""


def build(files: int, functions: int) -> Path:
    """The merged object, built once per generator, parameters and toolchain."""
    versions = [subprocess.run([tool, "--version"], capture_output=True, text=True).stdout for tool in
                ("clang", "ld.lld")]
    key = hashlib.sha256("\0".join([inspect.getsource(_function), *CFLAGS, str(files), str(functions),
                                    *versions]).encode())
    out = Path(os.environ.get("REACHLS_CACHE", Path.home() / ".cache" / "reachls")) / \
        f"sourcemap-bench-{key.hexdigest()[:16]}"
    merged = out / "merged.o"
    if merged.exists():
        return merged
    out.mkdir(parents=True, exist_ok=True)

    def compile_unit(unit: int) -> str:
        source = out / f"unit{unit}.c"
        source.write_text("".join(_function(unit, number) for number in range(functions)))
        subprocess.run(["clang", *CFLAGS, str(source), "-o", str(out / f"unit{unit}.o")], check=True)
        return str(out / f"unit{unit}.o")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        objects = list(pool.map(compile_unit, range(files)))
    subprocess.run(["ld.lld", "-r", *objects, "-o", str(merged) + ".tmp"], check=True)
    os.replace(str(merged) + ".tmp", merged)
    return merged


def spread(obj: ElfInput, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(section, offset) of `count` sites inside functions spread over the object, and the sections
    of `count` other functions (targets at their start)."""
    functions = [(label.section, label.size) for label in obj.code_labels() if label.is_function and label.size >= 8]
    chosen = np.linspace(0, len(functions) - 1, count).astype(np.int64)
    sections = np.array([functions[k][0] for k in chosen.tolist()], dtype=np.int64)
    offsets = np.array([(functions[k][1] // 2) & ~3 for k in chosen.tolist()], dtype=np.uint64)
    others = np.array([functions[len(functions) - 1 - k][0] for k in chosen.tolist()], dtype=np.int64)
    return sections, offsets, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--functions", type=int, default=8000)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = args.input or build(args.files, args.functions)
    with ElfInput(path) as obj:
        sections, offsets, others = spread(obj, args.sites)
        operations = architecture_of(obj).dwarf_relocations
        times: dict[str, list[float]] = {"lines_at": [], "locations_for": []}
        for _ in range(args.repeat):
            for what in times:
                start = time.perf_counter()
                sourcemap = SourceMap(obj, operations)
                sites = sourcemap.code_addresses(sections, offsets)
                if what == "lines_at":
                    lines = sourcemap.lines_at(sites)
                else:
                    targets = sourcemap.code_addresses(others, np.zeros(len(others), dtype=np.uint64))
                    lines, declarations = sourcemap.locations_for(sites, targets)
                times[what].append(time.perf_counter() - start)
        line_bytes = sum(section.size for section in obj.sections if section.name == ".debug_line")
        print(f"{path}: {len(obj.sections)} sections, .debug_line {line_bytes:,} B")
        for what, runs in times.items():
            print(f"{what}: {args.sites} sites{'' if what == 'lines_at' else f' + {args.sites} targets'}: median "
                  f"{statistics.median(runs):.3f} s (runs {', '.join(f'{t:.3f}' for t in runs)})")
        print(f"{sum(map(bool, lines))} lines, {sum(map(bool, declarations))} declarations; decoded by the last "
              f"run: {getattr(sourcemap, 'decoded', '?')}")

if __name__ == "__main__":
    main()
