"""Scaling across cores: independent runs side by side, against one after another.

Run with ``python -m dccsim.bench.perf.scaling`` (``--help`` for the sizes). In one run it times

- ``sweep``: a sweep of ``--settings`` uplift settings (4 by default) of one scenario, with
  ``workers=1`` (the settings one after another, in this process) and with ``workers`` = the
  CPUs this process may use (side by side, as tasks on local worker processes,
  :mod:`dccsim.bench.tasks`), each timed ``--repeats`` times (3 by default), alternating;
  it prints the medians and the speedup, serial over parallel. The runs are those of
  ``dccsim sweep`` (each writes its run folder, into a temporary folder); the kernels are
  compiled (or loaded from numba's cache) by one warm-up run first, and the workers fork
  from this process, so neither side pays for compilation.
- ``one run``: a single run split across workers (``dccsim run --workers``) is not built yet;
  :func:`one_run_scaling` is where its comparison goes, and says so when it is asked for.

Speedup is bounded by the CPUs, by the memory bandwidth the runs share, and by each run's
own threads (the pipeline uses a few: on a 2-core machine a single run already keeps more
than one core partly busy).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from dccsim.bench.sweeps import sweep
from dccsim.bench.tasks import default_workers


def time_sweep(scenario: str, uplifts: list[float], scale: float, workers: int, out: Path) -> float:
    """Seconds of one sweep of ``uplifts`` with ``workers`` worker processes (1: in this process)."""
    t0 = time.perf_counter()
    sweep(scenario, [(u, None) for u in uplifts], out, scale=scale, workers=workers)
    return time.perf_counter() - t0


def sweep_scaling(scenario: str, uplifts: list[float], scale: float, workers: int, repeats: int) -> dict[str, float]:
    """Medians of ``repeats`` sweeps, serial and with ``workers``, alternating; and the speedup."""
    serial: list[float] = []
    parallel: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dccsim-scaling-") as tmp:
        sweep(scenario, [(uplifts[0], None)], Path(tmp) / "warm-up", scale=scale, workers=1)
        for i in range(repeats):
            serial.append(time_sweep(scenario, uplifts, scale, 1, Path(tmp) / f"serial{i}"))
            parallel.append(time_sweep(scenario, uplifts, scale, workers, Path(tmp) / f"parallel{i}"))
    s, p = statistics.median(serial), statistics.median(parallel)
    return {"serial_s": s, "parallel_s": p, "speedup": s / p,
            "serial_min_s": min(serial), "parallel_min_s": min(parallel)}  # fmt: skip


def one_run_scaling(scenario: str, scale: float, workers: int, repeats: int) -> dict[str, float]:
    """One run at 1 and ``workers`` workers (``dccsim run --workers``): not built yet.

    When a run can be split across workers, time it here as :func:`sweep_scaling` times
    sweeps (medians of ``repeats``, 1 worker against ``workers``) and return the same keys.
    """
    raise NotImplementedError("one run across several workers (dccsim run --workers) is not built yet")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scenario", default="smoke", help="scenario to sweep (default smoke)")
    ap.add_argument("--scale", type=float, default=0.002, help="its scale (default 0.002: ~2 s a run here)")
    ap.add_argument("--settings", type=int, default=4, help="uplift settings in the sweep (default 4)")
    ap.add_argument("--workers", type=int, default=default_workers(), help="parallel workers (default: the CPUs)")
    ap.add_argument("--repeats", type=int, default=3, help="timed sweeps per side (default 3; medians)")
    ap.add_argument("--one-run", action="store_true", help="also time one run at 1 and --workers workers")
    args = ap.parse_args(argv)
    uplifts = [round(1.0 + 0.5 * i, 2) for i in range(args.settings)]
    print(f"dccsim scaling on {platform.node()} ({os.cpu_count()} CPUs, {default_workers()} usable), "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"sweep: {args.scenario} at scale {args.scale:g}, uplift {', '.join(f'{u:g}' for u in uplifts)}; "
          f"medians of {args.repeats}")  # fmt: skip
    r = sweep_scaling(args.scenario, uplifts, args.scale, args.workers, args.repeats)
    print(f"  serial   (workers 1):  {r['serial_s']:7.2f} s  (best {r['serial_min_s']:.2f} s)")
    print(f"  parallel (workers {args.workers}):  {r['parallel_s']:7.2f} s  (best {r['parallel_min_s']:.2f} s)")
    print(f"  speedup: x{r['speedup']:.2f} on {args.workers} workers")
    if args.one_run:
        try:
            one_run_scaling(args.scenario, args.scale, args.workers, args.repeats)
        except NotImplementedError as exc:
            print(f"one run: not measured: {exc}")
    else:
        print("one run: not measured (dccsim run --workers is not built yet)")


if __name__ == "__main__":
    main()
