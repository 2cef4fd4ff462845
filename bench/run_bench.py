"""`make bench`: reachls against the linker at allmodconfig scale, and how its stages grow, in one run.

Inputs: the sizes of `generate.py` (arm64 allmodconfig-shaped `vmlinux.o`, the real 6.1 kernel's
script and link line; built once and cached) and the small real kernel of
`scripts/build-real-kernel.sh` (clang-lto).

1. Goals (issue 9), on the largest size chosen: whole processes, each run `--repeat` times (median
   wall; peak RSS from `os.wait4` in a small launcher, which counts the command and the children
   it waited for, e.g. the ld.lld of a relink scan). The denominator is the relink itself: the ld.lld command the
   relink engine runs, captured from a relink scan through a logging `ld.lld` first on PATH and
   replayed unchanged. For context, the kernel's own link line (`.vmlinux.cmd`) on the same
   input. On the real kernel, `reachls scan <dir>` (engine auto) against its own relink, captured
   the same way.
2. Scaling: for every size, one `--engine model` scan in a fresh child (`scan_stages.py`),
   seconds and peak RSS per stage (read, place, analyse, source), per million code relocations
   and per 100 k sections, and the number of sites reported.

The report goes to stdout and `bench/out/results.md`. A failing command is reported with its
stderr tail and the others still run; the exit status is non-zero if any measured command failed.

    .venv/bin/python bench/run_bench.py [--sizes 25k,100k] [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import SIZES, Build, Kernel, ensure, real_kernel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
REACHLS = str(Path(sys.executable).parent / "reachls")
STAGE_PROBE = Path(__file__).resolve().parent / "scan_stages.py"
STAGES = ("read", "place", "analyse", "source")
QUICK_SIZES = ("25k", "100k")
#: Issue 9's goals: wall time ÷ the relink's.
GOALS = {"model scan": 0.5, "relink scan": 1.3, "model layout": 0.3, "kernel scan": 2.0}
#: Commands whose peak RSS is to be at most the relink's.
RSS_GOAL = ("model scan", "relink scan")
SOURCE_GOAL_SECONDS = 1.0  # source mapping of ~1 000 sites at the largest size


@dataclass
class Result:
    """All repeats of one command; `error` holds the stderr tail of the first failing run."""

    label: str
    argv: list[str]
    walls: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    error: str | None = None
    note: str = ""

    @property
    def wall(self) -> float | None:
        return statistics.median(self.walls) if self.walls and not self.error else None

    @property
    def rss_mib(self) -> float | None:
        return max(self.rss_kib) / 1024 if self.rss_kib and not self.error else None


#: Runs a command in a child forked from this small process and writes "<wall s> <peak RSS KiB>" of
#: it to the file named first. A child of the harness itself would not do: an exec'd process keeps
#: the peak RSS of the memory it replaced, which for a fork (or vfork) of the harness is the
#: harness's own, hundreds of MiB that ld.lld never used. Forked from here, the floor is this
#: interpreter's few MiB (`python -S`).
LAUNCHER = """import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        os.write(2, f"cannot run {sys.argv[2]}: {exc.strerror}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - start} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""


def launch(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
           stdout: int = subprocess.DEVNULL) -> tuple[float, int, subprocess.CompletedProcess[bytes]]:
    """(wall seconds, peak RSS KiB, the finished launcher) of one run of `argv` through LAUNCHER."""
    with tempfile.NamedTemporaryFile("r", prefix="reachls-bench-", suffix=".rusage") as measured:
        proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, measured.name, *argv], stdout=stdout,
                              stderr=subprocess.PIPE, env=env, cwd=cwd)
        wall, rss = measured.read().split() or ("nan", "0")
    return float(wall), int(rss), proc


def run_once(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
             ) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS KiB, exit code, stderr) of one child; stdout goes to /dev/null."""
    wall, rss, proc = launch(argv, env, cwd)
    return wall, rss, proc.returncode, proc.stderr.decode(errors="replace")


def measure(label: str, argv: list[str], repeat: int, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Result:
    result = Result(label, argv)
    for _ in range(repeat):
        wall, rss, code, stderr = run_once(argv, env, cwd)
        if code != 0:
            tail = " ⏎ ".join(line.strip() for line in stderr.strip().splitlines()[-4:]) or "(no stderr)"
            result.error = f"exit {code}: {tail}"
            print(f"  {label}: FAILED ({result.error})", file=sys.stderr)
            break
        result.walls.append(wall)
        result.rss_kib.append(rss)
        print(f"  {label}: {wall:.2f} s, {rss / 1024:.0f} MiB", file=sys.stderr)
    return result


def failed(label: str, argv: list[str], why: str) -> Result:
    print(f"  {label}: FAILED ({why})", file=sys.stderr)
    return Result(label, argv, error=why)


@contextlib.contextmanager
def linker_capture() -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose `ld.lld` logs its arguments (one NUL-separated file per run, in
    order) to the directory yielded, then runs the real ld.lld unchanged."""
    real = shutil.which("ld.lld")
    if real is None:
        raise SystemExit("run_bench: needs ld.lld on PATH")
    with tempfile.TemporaryDirectory(prefix="reachls-bench-ld-") as tmp:
        bin_dir, log_dir = Path(tmp, "bin"), Path(tmp, "links")
        bin_dir.mkdir()
        log_dir.mkdir()
        wrapper = bin_dir / "ld.lld"
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" > "{log_dir}/$(date +%s%N)"\n'
                           f'exec {shlex.quote(real)} "$@"\n')
        wrapper.chmod(0o755)
        yield {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log_dir


def captured_links(log_dir: Path) -> list[list[str]]:
    """The arguments of each ld.lld run logged so far, oldest first."""
    return [[arg.decode() for arg in path.read_bytes().split(b"\0")[:-1]] for path in sorted(log_dir.iterdir())]


def measure_captured_relink(label: str, scan: Result, log_dir: Path, repeat: int) -> Result:
    """The scan's relink, replayed as it ran: same arguments, its private output directory swapped
    for a fresh one. The probe with merging off (`-O0`) that places merged strings starts at the
    same moment, so the relink is the first captured link that is not it."""
    links = captured_links(log_dir)
    if not links:
        return failed(label, ["ld.lld"], f"no ld.lld run captured from `{scan.label}`")
    argv = ["ld.lld", *next((link for link in links if "-O0" not in link), links[0])]
    if "-o" not in argv[:-1]:
        return failed(label, argv, "no `-o OUTPUT` in the captured link: cannot give it a fresh directory")
    output_dir = Path(argv[argv.index("-o") + 1]).parent
    with tempfile.TemporaryDirectory(prefix="reachls-bench-relink-") as tmp:
        replay = [arg.replace(str(output_dir), tmp) for arg in argv]
        result = measure(label, replay, repeat, cwd=Path(tmp))
    result.argv = argv
    if (per_scan := len(links) // max(1, len(scan.walls))) > 1:
        result.note = f"one of the {per_scan} links each `{scan.label}` runs; the other, with merging off, runs beside it"
    return result


def goal_table(title: str, results: list[Result], base: Result) -> list[str]:
    """Markdown: median wall, peak RSS, wall ÷ `base`, the goal and met / missed; then each
    command as it ran."""
    rows = [title, "", "| | runs | median wall (s) | peak RSS (MiB) | ÷ relink | goal | |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        ratio = r.wall / base.wall if r.wall is not None and base.wall else None
        goal = GOALS.get(r.label)
        verdict = "–" if goal is None or ratio is None else \
            "met" if ratio <= goal else f"missed: {ratio / goal:.1f}× the goal"
        rows.append(f"| {r.label} | {len(r.walls)} | {'FAILED' if r.wall is None else f'{r.wall:.2f}'} | "
                    f"{'–' if r.rss_mib is None else f'{r.rss_mib:,.0f}'} | "
                    f"{'–' if ratio is None else f'{ratio:.2f}×'} | {'' if goal is None else f'≤ {goal}×'} | {verdict} |")
    rows.append("")
    for r in results:
        if r.rss_mib is not None and base.rss_mib is not None and r.label in RSS_GOAL:
            verdict = "met" if r.rss_mib <= base.rss_mib else f"missed: {r.rss_mib / base.rss_mib:.2f}× the relink's"
            rows.append(f"- peak RSS of the {r.label} ≤ the relink's: {r.rss_mib:,.0f} MiB against "
                        f"{base.rss_mib:,.0f} MiB, {verdict}")
    rows += [f"- {r.label}: `{shown(r.argv)}`" + (f" ({r.note})" if r.note else "")
             + (f" **failed**: {r.error}" if r.error else "") for r in results]
    return [*rows, ""]


def shown(argv: list[str]) -> str:
    """A command as a reader would type it: the program without its directory, `~` for the home directory."""
    home = str(Path.home())
    return " ".join(shlex.quote(word.replace(home, "~")) for word in [Path(argv[0]).name, *argv[1:]])


def generated_goals(build: Build, kernel: Kernel, repeat: int) -> tuple[list[str], list[Result]]:
    """The goals' table on one generated size, and the commands' results."""
    directory = str(build.directory)
    with linker_capture() as (env, log_dir):
        relink_scan = measure("relink scan", [REACHLS, "scan", directory, "--engine", "relink", "--format", "json"],
                              repeat, env)
        relink = measure_captured_relink("relink", relink_scan, log_dir, repeat)
    with tempfile.TemporaryDirectory(prefix="reachls-bench-link-") as tmp:
        own = kernel.link_argv(build.obj, build.script, Path(tmp) / "vmlinux") + ["--noinhibit-exec"]
        kernel_link = measure("kernel's own link line", own, repeat, cwd=Path(tmp))
    kernel_link.note = "writes the image, debug info included"
    model_scan = measure("model scan", [REACHLS, "scan", directory, "--engine", "model", "--format", "json"], repeat)
    layout = measure("model layout", [REACHLS, "layout", directory, "--engine", "model", "--format", "json"], repeat)
    results = [relink, kernel_link, model_scan, relink_scan, layout]
    title = f"### Goals on the {build.size} input\n\n`{build.directory.name}`: {build.stats.describe()}."
    return goal_table(title, results, relink), results


def kernel_goal(kernel: Kernel, repeat: int) -> tuple[list[str], list[Result]]:
    """`reachls scan <dir>` (auto) on the real kernel against the relink it runs."""
    with linker_capture() as (env, log_dir):
        auto_scan = measure("kernel scan", [REACHLS, "scan", str(kernel.directory)], repeat, env)
        relink = measure_captured_relink("kernel relink", auto_scan, log_dir, repeat)
    results = [relink, auto_scan]
    return goal_table(f"### Goal on the real kernel (`{kernel.directory.name}`)", results, relink), results


@dataclass
class Stages:
    """One size's `scan_stages.py` output, or why there is none."""

    build: Build
    report: dict | None = None
    error: str | None = None


def stage_run(build: Build) -> Stages:
    print(f"  stages of a model scan of {build.size} ...", file=sys.stderr)
    _, _, child = launch([sys.executable, str(STAGE_PROBE), str(build.directory)], stdout=subprocess.PIPE)
    if child.returncode != 0:
        lines = child.stderr.decode(errors="replace").strip().splitlines()
        tail = " ⏎ ".join(line.strip() for line in lines[-4:]) or "(no stderr)"
        print(f"  stages of {build.size}: FAILED ({tail})", file=sys.stderr)
        return Stages(build, error=f"exit {child.returncode}: {tail}")
    report = json.loads(child.stdout)
    print(f"  stages of {build.size}: " + ", ".join(f"{s} {v['seconds']:.2f} s" for s, v in report["stages"].items()),
          file=sys.stderr)
    return Stages(build, report)


def scaling_table(runs: list[Stages]) -> list[str]:
    """Seconds per stage and per unit of work, then peak RSS at the end of each stage."""
    time_rows = ["| size | sections | code relocations | sites | " + " | ".join(f"{s} (s)" for s in STAGES)
                 + " | scan (s) | s / M relocations | s / 100 k sections | import (s) |",
                 "|---|---:|---:|---:|" + "---:|" * (len(STAGES) + 4)]
    memory_rows = ["| size | " + " | ".join(f"after {s} (MiB)" for s in STAGES) + " | MiB / M relocations |",
                   "|---|" + "---:|" * (len(STAGES) + 1)]
    for run in runs:
        stats = run.build.stats
        head = f"| {run.build.size} | {stats.sections:,} | {stats.code_relocations:,} |"
        if run.report is None:
            time_rows.append(f"{head} FAILED: {run.error} |")
            continue
        stages, total = run.report["stages"], run.report["scan_seconds"]
        cells = [f"{stages[s]['seconds']:.2f}" if s in stages else "–" for s in STAGES]
        time_rows.append(f"{head} {run.report['records']:,} | " + " | ".join(cells)
                         + f" | {total:.2f} | {total / (stats.code_relocations / 1e6):.2f}"
                         + f" | {total / (stats.sections / 1e5):.2f} | {run.report['import_seconds']:.2f} |")
        memory = [f"{stages[s]['peak_rss_mib']:,.0f}" if s in stages else "–" for s in STAGES]
        memory_rows.append(f"| {run.build.size} | " + " | ".join(memory)
                           + f" | {run.report['peak_rss_mib'] / (stats.code_relocations / 1e6):.0f} |")
    return [*time_rows, "", *memory_rows, ""]


def source_goal(run: Stages) -> list[str]:
    if run.report is None or "source" not in run.report["stages"]:
        return []
    seconds, sites = run.report["stages"]["source"]["seconds"], run.report["records"]
    verdict = "met" if seconds <= SOURCE_GOAL_SECONDS else f"missed: {seconds / SOURCE_GOAL_SECONDS:.1f}× the goal"
    return [f"- source mapping of the {sites:,} sites of {run.build.size} ≤ {SOURCE_GOAL_SECONDS:.0f} s: "
            f"{seconds:.2f} s, {verdict}", ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help=f"comma-separated, of {', '.join(SIZES)} (default: all); the goals are "
                        "measured on the largest")
    parser.add_argument("--quick", action="store_true",
                        help=f"sizes {','.join(QUICK_SIZES)} and one run per command, unless given")
    parser.add_argument("--repeat", type=int, help="runs per command (default 3, 1 with --quick)")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real kernel's goal")
    args = parser.parse_args()
    sizes = args.sizes.split(",") if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    if unknown := [s for s in sizes if s not in SIZES]:
        parser.error(f"unknown size {', '.join(unknown)} (known: {', '.join(SIZES)})")
    sizes.sort(key=lambda s: SIZES[s].functions)
    repeat = args.repeat or (1 if args.quick else 3)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    kernel = real_kernel()
    builds = [ensure(size, log, kernel) for size in sizes]
    log(f"goals on {builds[-1].size} (median of {repeat}):")
    goal_rows, results = generated_goals(builds[-1], kernel, repeat)
    if not args.no_kernel:
        log("the real kernel:")
        kernel_rows, kernel_results = kernel_goal(kernel, repeat)
        goal_rows += kernel_rows
        results += kernel_results
    log("scaling:")
    runs = [stage_run(build) for build in builds]
    report = [f"## reachls benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} CPUs, median of {repeat} runs per command)", "", *goal_rows,
              *source_goal(runs[-1]),
              "### Scaling: `scan --engine model`, one fresh process per size (seconds per stage; "
              "peak RSS when it ends)", "", *scaling_table(runs)]
    text = "\n".join(report)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.md").write_text(text)
    print(text)
    return 1 if any(r.error for r in results) or any(run.error for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
