"""``dccsim run``, ``dccsim scenarios`` and ``dccsim sweep``: the virtual-time simulation.

``dccsim run [SCENARIO|FILE]`` generates a scenario's day, replays it through the pipeline in
simulated time, writes the run folder (``requests.arrow``, ``alerts.arrow``,
``summary.json``), shows progress, and ends with a summary table. ``dccsim sweep`` runs one
scenario at several uplift / demand settings and compares them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from dccsim.core.errors import ConfigError

from .errors import CliError

__all__ = ["run", "scenarios", "sweep"]

DEFAULT_SCENARIO = "mhhs-day"


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"got {text!r}, expected comma-separated numbers like 1,1.5,2", param_hint=name
        ) from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise click.BadParameter(f"got {text!r}, expected numbers > 0", param_hint=name)
    return values


@contextmanager
def _progress_bar(label: str, enabled: bool) -> Iterator[Any]:
    """A progress bar over the simulated days (the total from the callback's ``end_ns``);
    yields the callback for ``simulate``."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TextColumn("{task.fields[events]:>14,} events"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=24 * 3600, clock="00:00", events=0)

        def update(done_ns: int, end_ns: int, events: int) -> None:
            secs, total = done_ns // 1_000_000_000, max(1, end_ns // 1_000_000_000)
            clock = f"{secs % 86400 // 3600:02d}:{secs % 3600 // 60:02d}"
            if total > 24 * 3600:  # several days: which one
                clock = f"day {min(secs, total - 1) // 86400 + 1} {clock}"
            bar.update(task, total=total, completed=min(secs, total), clock=clock, events=events)

        yield update


def _f(value: Any, spec: str, unit: str = "") -> str:
    """``value`` formatted by ``spec`` (and its unit), or n/a when nothing was measured."""
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _print_summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..results.criteria import verdict_table

    summary = result.summary
    r = summary.run
    t = Table(
        title=f"dccsim run: {r.scenario} at scale {r.scale:g} "
        f"(seed {r.seed}, uplift {r.uplift:g}, demand {r.demand:g})",
        show_header=False,
    )
    t.add_column(style="bold")
    t.add_column(justify="right")
    lat = summary.latency_s
    cache = summary.cache
    throttle = summary.throttle
    codes = sorted(summary.response_codes.items(), key=lambda kv: -kv[1])
    rows = [
        ("requests", f"{summary.requests:,}"),
        ("alerts", f"{summary.alerts:,}"),
        ("within target response time", _f(summary.within_target_ratio, ".4%")),
        (
            "latency p50 / p99 / max",
            f"{_f(lat.p50, '.2f', ' s')} / {_f(lat.p99, '.2f', ' s')} / {_f(lat.max, '.1f', ' s')}",
        ),
        ("peak DSP backlog", f"{summary.peak_backlog:,} requests"),
        ("response codes", ", ".join(f"{k} {v:,}" for k, v in codes)),
        ("cache hit ratio", f"{cache.hit_ratio:.2%} ({cache.device_requests_saved:,} device requests saved)"),
        ("cache memory", f"{cache.bytes_per_entry:.1f} B/entry, {cache.resident:,} resident"),
        (
            "alerts forwarded / throttled / excluded",
            f"{throttle.forwarded:,} / {throttle.throttled:,} / {throttle.excluded:,}",
        ),
        ("retries", f"{summary.retries:,}"),
        ("wall time", f"{summary.wall_seconds:.1f} s ({summary.events_per_second:,} events/s)"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    if result.criteria.verdicts:
        Console().print(verdict_table(result.criteria))
    click.echo(f"results: {result.out_dir}/ (requests.arrow, alerts.arrow, summary.json, report.html)")


_SCENARIO_ARG = click.argument("scenario", required=False, default=DEFAULT_SCENARIO)


@click.command()
@_SCENARIO_ARG
@click.option("--scale", type=float, default=None, help="Population and volume scale (1.0 = GB, about 32 M meters).")
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's).")
@click.option("--uplift", type=float, default=None, help="Capacity uplift factor on DSP slots.")
@click.option("--demand", type=float, default=None, help="Demand factor on volumes.")
@click.option("--shards", type=int, default=None, help="Device shards for the cache and throttle state.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default runs/NAME-sSCALE-seedSEED).",
)
@click.option("--compression", type=click.Choice(["lz4", "zstd", "none"]), default="lz4", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar or table; print the run folder only.")
def run(
    scenario: str,
    scale: float | None,
    seed: int | None,
    uplift: float | None,
    demand: float | None,
    shards: int | None,
    out: Path | None,
    compression: str,
    quiet: bool,
) -> None:
    """Simulate a day of DCC traffic in virtual time and write the run folder."""
    from ..compose import load_run, simulate

    try:
        config = load_run(scenario, scale=scale, seed=seed, uplift=uplift, demand=demand, shards=shards)
        s = config.scenario
        with _progress_bar(f"{s.name} x{s.scale:g}", enabled=not quiet) as progress:
            outcome = simulate(
                config, out=out, compression=None if compression == "none" else compression, progress=progress
            )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if quiet:
        click.echo(outcome.out_dir)
    else:
        _print_summary(outcome)
    result = outcome.criteria
    if not result.passed:
        failed = "; ".join(
            f"{v.criterion.expression} (S{v.criterion.severity}, actual {v.actual:g})"
            for v in result.verdicts
            if not v.passed
        )
        click.echo(f"dccsim run: exit criteria not met: {result.headline}: {failed}", err=True)
        sys.exit(1)


@click.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario
    from rich.console import Console
    from rich.table import Table

    t = Table("name", "scale", "description")
    for name, text in sorted(builtin_scenarios().items()):
        s = parse_scenario(text, name)
        t.add_row(name + (" (default)" if name == DEFAULT_SCENARIO else ""), f"{s.scale:g}", s.description)
    Console().print(t)


@click.command()
@_SCENARIO_ARG
@click.option("--uplift", "uplifts", default=None, help="Comma-separated uplift factors, e.g. 1,1.5,2,3.")
@click.option("--demand", "demands", default=None, help="Comma-separated demand factors.")
@click.option("--scale", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/sweep"), show_default=True)
def sweep(
    scenario: str, uplifts: str | None, demands: str | None, scale: float | None, seed: int | None, out: Path
) -> None:
    """Run one scenario at several uplift and/or demand settings and compare."""
    from rich.console import Console
    from rich.table import Table

    from .. import compose

    ups = _floats(uplifts, "--uplift") or [None]
    dems = _floats(demands, "--demand") or [None]
    if ups == [None] and dems == [None]:
        raise click.UsageError("give --uplift and/or --demand, e.g. --uplift 1,1.5,2,3")
    console = Console(stderr=True)
    try:
        rows = compose.sweep(
            scenario, [(u, d) for u in ups for d in dems], out, scale=scale, seed=seed,
            on_setting=lambda label: console.print(f"running {label} ..."),
        )  # fmt: skip
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    t = Table(
        "uplift",
        "demand",
        "requests",
        "within target",
        "p99 latency",
        "peak backlog",
        "cache saved",
        "wall",
        title=f"dccsim sweep: {scenario}",
    )
    for s in rows:
        t.add_row(
            f"{s.run.uplift:g}",
            f"{s.run.demand:g}",
            f"{s.requests:,}",
            _f(s.within_target_ratio, ".4%"),
            _f(s.latency_s.p99, ".2f", " s"),
            f"{s.peak_backlog:,}",
            f"{s.cache.device_requests_saved:,}",
            f"{s.wall_seconds:.1f} s",
        )
    Console().print(t)
    click.echo(f"results: {out}/")
