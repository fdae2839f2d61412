"""A day on one worker, two builds against each other: the speed ratio, logs included.

Run with ``python -m dccsim.bench.perf.day OLD [OLD2 ...] NEW`` where each argument is a
``dccsim`` executable (an install of the project, e.g. a virtual environment's), the last one
the new build. For each ``--scale`` (0.5 and 1.0 by default) it runs ``dccsim run SCENARIO
--scale S --quiet`` with each, back to back and alternating (old, ..., new, old, ..., new),
``--repeats`` times each (3 by default), into a temporary folder, and times each whole process
(start-up, build, the day, the logs and the summary) and the CPU time (user and system) the
operating system counted for it. It prints each time, the medians and the ratio of each old
build's median to the new one's, the run's own ``wall_seconds`` (summary.json) beside them,
and the CPU medians and their ratio (on a machine whose cores the run keeps busy, wall time
follows CPU time; CPU time moves less with the neighbours' load); with ``--same-logs`` it also
checks that the first old build and the new one wrote the same ``.arrow`` files, byte for byte.

Both builds load (or compile) their kernels once before the timed runs (one run at a tiny
scale each), so neither pays for compilation. The machine should be the same and as quiet as
it can be: alternating keeps drifts in its load from favouring one side.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def run_day(exe: str, scenario: str, scale: float, out: Path) -> tuple[float, float, float]:
    """Seconds of one ``dccsim run`` process, the run's own ``wall_seconds``, and the CPU
    seconds (user and system) the process used, as the operating system counted them."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [exe, "run", scenario, "--scale", str(scale), "--quiet", "--force", "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, float(json.loads((out / "summary.json").read_text())["wall_seconds"]), cpu


def same_logs(a: Path, b: Path) -> list[str]:
    """The ``.arrow`` files that differ (or are missing) between two run folders."""
    names = sorted({p.name for p in a.glob("*.arrow")} | {p.name for p in b.glob("*.arrow")})
    return [n for n in names if not ((a / n).exists() and (b / n).exists() and filecmp.cmp(a / n, b / n, False))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", metavar="DCCSIM", help="old builds' dccsim, then the new one's")
    ap.add_argument("--scenario", default="mhhs-day")
    ap.add_argument("--scale", type=float, action="append", help="repeatable (default: 0.5 and 1.0)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--same-logs", action="store_true", help="check the first old build's logs against the new one's")
    args = ap.parse_args(argv)
    if len(args.builds) < 2:
        ap.error("expected at least two builds: OLD ... NEW")
    scales = args.scale or [0.5, 1.0]
    sides = [(f"old{i + 1}" if len(args.builds) > 2 else "old", exe) for i, exe in enumerate(args.builds[:-1])]
    sides.append(("new", args.builds[-1]))
    with tempfile.TemporaryDirectory(prefix="dccsim-day-") as tmp:
        root = Path(tmp)
        for _, exe in sides:  # kernels loaded or compiled before any timed run
            run_day(exe, args.scenario, 0.001, root / "warm")
        for scale in scales:
            times: dict[str, list[float]] = {side: [] for side, _ in sides}
            walls: dict[str, list[float]] = {side: [] for side, _ in sides}
            cpus: dict[str, list[float]] = {side: [] for side, _ in sides}
            for i in range(args.repeats):
                for side, exe in sides:
                    seconds, wall, cpu = run_day(exe, args.scenario, scale, root / side)
                    times[side].append(seconds)
                    walls[side].append(wall)
                    cpus[side].append(cpu)
                    print(
                        f"scale {scale} {side} #{i + 1}: {seconds:.2f} s (run wall {wall:.2f} s, CPU {cpu:.2f} s)",
                        flush=True,
                    )
            new = statistics.median(times["new"])
            new_cpu = statistics.median(cpus["new"])
            for side, exe in sides[:-1]:
                old = statistics.median(times[side])
                old_cpu = statistics.median(cpus[side])
                print(
                    f"scale {scale}: median {side} {old:.2f} s ({exe}), new {new:.2f} s, ratio {old / new:.2f}x "
                    f"(run wall: {statistics.median(walls[side]):.2f} s / {statistics.median(walls['new']):.2f} s; "
                    f"CPU: {old_cpu:.2f} s / {new_cpu:.2f} s, ratio {old_cpu / new_cpu:.2f}x)"
                )
            if args.same_logs:
                diff = same_logs(root / sides[0][0], root / "new")
                print(f"scale {scale}: logs " + ("the same, byte for byte" if not diff else f"DIFFER: {diff}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
