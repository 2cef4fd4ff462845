"""Time `reachls` on a kernel-sized `vmlinux.o` against what the toolchain itself costs.

Two baselines frame the numbers: `llvm-readelf -r` (every relocation read once) and a plain
`ld.lld` relink (the work the relink engine cannot avoid). Each command runs in a fresh child
reaped with `os.wait4`, whose rusage gives that child's peak RSS (the max over it and the
children it waited for, e.g. ld.lld under the relink engine), not the harness's own.
A failing command is reported with its stderr tail and the others still run; the exit status
is non-zero if any measured command failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import OUT, ensure  # noqa: E402

OBJ, LDS = OUT / "vmlinux.o", OUT / "vmlinux.lds"
REACHLS = str(Path(sys.executable).parent / "reachls")


@dataclass
class Result:
    """All repeats of one command; `error` holds the stderr tail of the first failing run."""

    key: str
    argv: list[str]
    walls: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    error: str | None = None


def run_once(argv: list[str]) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS KiB, exit code, stderr) of one child; stdout goes to /dev/null."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return wall, usage.ru_maxrss, proc.returncode, err.read().decode(errors="replace")


def measure(key: str, argv: list[str], repeat: int) -> Result:
    result = Result(key, argv)
    for _ in range(repeat):
        wall, rss, code, stderr = run_once(argv)
        if code != 0:
            tail = "\n".join(stderr.strip().splitlines()[-6:]) or "(no stderr)"
            result.error = f"exit {code}:\n{tail}"
            print(f"  {key}: FAILED ({result.error})", file=sys.stderr)
            break
        result.walls.append(wall)
        result.rss_kib.append(rss)
        print(f"  {key}: {wall:.2f}s {rss / 1024:.0f} MiB", file=sys.stderr)
    return result


def commands() -> list[tuple[str, list[str]]]:
    obj, lds = str(OBJ.relative_to(Path.cwd())), str(LDS.relative_to(Path.cwd()))
    scan = [REACHLS, "scan", obj, "--script", lds, "--format", "json"]
    return [
        ("A", ["llvm-readelf", "-r", obj]),
        ("B", ["ld.lld", "-T", lds, obj, "-o", str(OUT.relative_to(Path.cwd()) / "vmlinux"), "--noinhibit-exec"]),
        ("C", [*scan, "--engine", "relink"]),
        ("D", [*scan, "--engine", "model"]),
        ("E", [REACHLS, "layout", obj, "--script", lds, "--engine", "model", "--format", "json"]),
    ]


def table(results: list[Result]) -> str:
    """Markdown: median wall, max peak RSS, and both ratios against each baseline."""
    wall = {r.key: statistics.median(r.walls) for r in results if not r.error}
    rss = {r.key: max(r.rss_kib) / 1024 for r in results if not r.error}

    def ratio(values: dict[str, float], key: str, base: str) -> str:
        return f"{values[key] / values[base]:.2f}×" if key in values and base in values else "–"

    rows = ["| | command | runs | median wall (s) | peak RSS (MiB) | wall ÷ A | wall ÷ B | RSS ÷ A | RSS ÷ B |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        shown = " ".join(Path(a).name if a == REACHLS else a for a in r.argv)
        cells = (["FAILED", "–"] if r.error else [f"{wall[r.key]:.2f}", f"{rss[r.key]:.0f}"])
        cells += [ratio(wall, r.key, "A"), ratio(wall, r.key, "B"), ratio(rss, r.key, "A"), ratio(rss, r.key, "B")]
        rows.append(f"| {r.key} | `{shown}` | {len(r.walls)} | " + " | ".join(cells) + " |")
    failures = [f"- **{r.key}** failed: `{r.error.splitlines()[0]} … {r.error.splitlines()[-1].strip()}`"
                for r in results if r.error]
    return "\n".join(rows + ([""] + failures if failures else [])) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="regenerate vmlinux.o even if cached")
    args = parser.parse_args()
    os.chdir(OUT.parent.parent)  # repo root: commands show short relative paths
    s = ensure(force=args.force, log=lambda m: print(m, file=sys.stderr))
    stats = (f"`{OBJ.relative_to(Path.cwd())}`: {s.size / 2**20:.1f} MiB, {s.sections} sections, "
             f"{s.code_relocs:,} relocations in code sections ({s.debug_relocs:,} in .rela.debug_*, "
             f"{s.all_relocs:,} in total); {os.cpu_count()} CPUs, median of {args.repeat} runs")
    print(stats, file=sys.stderr)
    results = [measure(key, argv, args.repeat) for key, argv in commands()]
    report = f"{stats}\n\n{table(results)}"
    (OUT / "results.md").write_text(report)
    print(report)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
