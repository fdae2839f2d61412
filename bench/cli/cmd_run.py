"""``dccsim run``, ``dccsim scenarios`` and ``dccsim sweep``: the virtual-time simulation.

``dccsim run [SCENARIO|FILE]`` generates a scenario's day, replays it through the pipeline in
simulated time, writes the run folder (``requests.arrow``, ``alerts.arrow``,
``summary.json``), shows progress, and ends with a summary table. ``dccsim sweep`` runs one
scenario at several uplift / demand settings and compares them.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
from dccsim.core.errors import ConfigError

from .errors import CliError

__all__ = ["run", "scenarios", "sweep", "simulate"]

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


def simulate(
    scenario_ref: str,
    *,
    scale: float | None = None,
    seed: int | None = None,
    uplift: float | None = None,
    demand: float | None = None,
    shards: int | None = None,
    out: Path | None = None,
    compression: str | None = "lz4",
    progress: bool = True,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run one scenario into ``out``; returns the summary document (also written as JSON)."""
    from dccsim.loadgen.driver import VirtualTimeDriver
    from dccsim.loadgen.scenario import load_scenario

    from ..results.criteria import parse_criteria
    from ..results.runlog import RunSink, write_verdict

    scenario, text = load_scenario(scenario_ref)
    scenario = scenario.with_overrides(
        scale=scale, seed=seed, shards=shards, **{"capacity.uplift": uplift, "capacity.demand": demand}
    )
    criteria = parse_criteria(scenario.exit_criteria)  # a bad criterion fails before the run
    out = Path(out) if out is not None else Path("runs") / f"{scenario.name}-s{scenario.scale:g}-seed{scenario.seed}"
    t_start = time.perf_counter()
    driver = VirtualTimeDriver(scenario)
    sink = RunSink(
        out,
        text,
        scenario.seed,
        scenario.day_start_ns,
        compression=compression,
        extra_metadata={
            "dccsim.scale": repr(scenario.scale),
            "dccsim.uplift": repr(scenario.capacity.uplift),
            "dccsim.demand": repr(scenario.capacity.demand),
            "dccsim.name": scenario.name,
        },
    )
    try:
        if progress and not quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[clock]}"),
                TextColumn("{task.fields[events]:>14,} events"),
                TimeElapsedColumn(),
                transient=True,
            ) as bar:
                task = bar.add_task(f"{scenario.name} x{scenario.scale:g}", total=24 * 3600, clock="00:00", events=0)

                def update(done_ns: int, end_ns: int, events: int) -> None:
                    secs = done_ns // 1_000_000_000
                    bar.update(
                        task,
                        completed=min(secs, 24 * 3600),
                        clock=f"{secs // 3600:02d}:{secs % 3600 // 60:02d}",
                        events=events,
                    )

                sink.progress_callback = update
                totals = driver.run(sink)
        else:
            totals = driver.run(sink)
    finally:
        sink.close()
    wall = time.perf_counter() - t_start
    summary = sink.summary()
    pipeline = driver.pipeline
    assert pipeline is not None
    cache = pipeline.cache_stats()
    cs = cache.to_dict()
    summary["cache"] = {
        "hits": cs["hits"],
        "misses": cs["misses"],
        "hit_ratio": cs["hit_ratio"],
        "device_requests_saved": cs["hits"],
        "stores": cs["stores"],
        "expired": cs["expired"],
        "evicted": cs["evicted"],
        "resident": cs["resident"],
        "bytes_per_entry": cs["bytes_per_entry"],
        "retention_hours": scenario.cache.retention_h,
    }
    summary["throttle"] = pipeline.throttle_summary()
    events = summary["requests"] + summary["alerts"]
    summary["wall_seconds"] = round(wall, 3)
    summary["events_per_second"] = round(events / wall) if wall > 0 else None
    summary["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    summary["run"] = {
        "dccsim_version": version("dccsim"),
        "scenario": scenario.name,
        "scale": scenario.scale,
        "seed": scenario.seed,
        "uplift": scenario.capacity.uplift,
        "demand": scenario.capacity.demand,
        "shards": scenario.shards,
        "day": scenario.day,
        "meters": scenario.meters,
        "dsp_servers": pipeline.dsp.servers,
        "chunks": totals.chunks,
    }
    result = write_verdict(out, summary, criteria)
    summary["out_dir"] = str(out)
    summary["_criteria"] = result
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    r = summary["run"]
    t = Table(
        title=f"dccsim run: {r['scenario']} at scale {r['scale']:g} "
        f"(seed {r['seed']}, uplift {r['uplift']:g}, demand {r['demand']:g})",
        show_header=False,
    )
    t.add_column(style="bold")
    t.add_column(justify="right")
    lat = summary["latency_s"]
    rows = [
        ("requests", f"{summary['requests']:,}"),
        ("alerts", f"{summary['alerts']:,}"),
        ("within target response time", f"{summary['within_target_ratio']:.4%}"),
        ("latency p50 / p99 / max", f"{lat['p50']:.2f} s / {lat['p99']:.2f} s / {lat['max']:.1f} s"),
        ("peak DSP backlog", f"{summary['peak_backlog']:,} requests"),
        (
            "response codes",
            ", ".join(f"{k} {v:,}" for k, v in sorted(summary["response_codes"].items(), key=lambda kv: -kv[1])),
        ),
        (
            "cache hit ratio",
            f"{summary['cache']['hit_ratio']:.2%} "
            f"({summary['cache']['device_requests_saved']:,} device requests saved)",
        ),
        (
            "cache memory",
            f"{summary['cache']['bytes_per_entry']:.1f} B/entry, {summary['cache']['resident']:,} resident",
        ),
        (
            "alerts forwarded / throttled / excluded",
            " / ".join(f"{summary['throttle'][k]:,}" for k in ("forwarded", "throttled", "excluded")),
        ),
        ("retries", f"{summary['retries']:,}"),
        ("wall time", f"{summary['wall_seconds']:.1f} s ({summary['events_per_second']:,} events/s)"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    from ..results.criteria import verdict_table

    if summary["_criteria"].verdicts:
        Console().print(verdict_table(summary["_criteria"]))
    click.echo(f"results: {summary['out_dir']}/ (requests.arrow, alerts.arrow, summary.json, report.html)")


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
    try:
        summary = simulate(
            scenario,
            scale=scale,
            seed=seed,
            uplift=uplift,
            demand=demand,
            shards=shards,
            out=out,
            compression=None if compression == "none" else compression,
            quiet=quiet,
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if quiet:
        click.echo(summary["out_dir"])
    else:
        _print_summary(summary)
    result = summary["_criteria"]
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

    ups = _floats(uplifts, "--uplift") or [None]
    dems = _floats(demands, "--demand") or [None]
    if ups == [None] and dems == [None]:
        raise click.UsageError("give --uplift and/or --demand, e.g. --uplift 1,1.5,2,3")
    rows = []
    console = Console(stderr=True)
    for u in ups:
        for d in dems:
            label = f"uplift{u if u is not None else 'base'}-demand{d if d is not None else 'base'}"
            console.print(f"running {label} ...")
            try:
                s = simulate(
                    scenario, scale=scale, seed=seed, uplift=u, demand=d, out=out / label, progress=False, quiet=True
                )
            except ConfigError as exc:
                raise CliError(str(exc)) from None
            rows.append(s)
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
            f"{s['run']['uplift']:g}",
            f"{s['run']['demand']:g}",
            f"{s['requests']:,}",
            f"{s['within_target_ratio']:.4%}",
            f"{s['latency_s']['p99']:.2f} s",
            f"{s['peak_backlog']:,}",
            f"{s['cache']['device_requests_saved']:,}",
            f"{s['wall_seconds']:.1f} s",
        )
    Console().print(t)
    (out / "sweep.json").write_text(
        json.dumps(
            [
                {k: s[k] for k in ("run", "within_target_ratio", "latency_s", "peak_backlog", "cache", "requests")}
                for s in rows
            ],
            indent=2,
        )
        + "\n"
    )
    click.echo(f"results: {out}/")
