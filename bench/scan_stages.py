"""One `--engine model` scan in this process, timed stage by stage; prints JSON on stdout.

`run_bench.py` starts one of these per input size, so each size's peak memory is its own. A
`Progress` subclass records, as each stage begins and as the scan ends, the time and this
process's peak RSS so far (`ru_maxrss`): a stage's peak is the high-water mark when it ends.

    .venv/bin/python bench/scan_stages.py BUILD_DIR [--script LDS]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))
from reachls.pipeline import ScanOptions, scan  # noqa: E402
from reachls.progress import Progress  # noqa: E402

IMPORTED = time.perf_counter()


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Recorder(Progress):
    """(stage, seconds since start, peak RSS in KiB) at each stage's beginning, and ("end", ...) at the end."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, int]] = []

    def begin(self, stage: str) -> None:
        self.marks.append((stage, time.perf_counter() - STARTED, peak_rss_kib()))

    def end(self) -> None:
        self.marks.append(("end", time.perf_counter() - STARTED, peak_rss_kib()))


def stages(marks: list[tuple[str, float, int]]) -> dict[str, dict[str, float]]:
    """Each stage's seconds (to the next mark) and the peak RSS (MiB) when it ended."""
    return {stage: {"seconds": round(after - at, 4), "peak_rss_mib": round(rss / 1024, 1)}
            for (stage, at, _), (_, after, rss) in zip(marks, marks[1:])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--script", type=Path)
    args = parser.parse_args()
    recorder = Recorder()
    result = scan(args.path, ScanOptions(engine="model", script=args.script), progress=recorder)
    json.dump({"import_seconds": round(IMPORTED - STARTED, 4), "stages": stages(recorder.marks),
               "scan_seconds": round(recorder.marks[-1][1] - recorder.marks[0][1], 4),
               "peak_rss_mib": round(peak_rss_kib() / 1024, 1), "records": len(result.analysis.records)},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
