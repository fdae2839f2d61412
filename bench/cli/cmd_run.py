"""``dccsim run``, ``dccsim scenarios`` and ``dccsim sweep``: the virtual-time simulation.

``dccsim run [SCENARIO|FILE]`` generates a scenario's day, replays it through the pipeline in
simulated time, writes the run folder (``requests.arrow``, ``alerts.arrow``,
``summary.json``), shows progress, and ends with a summary table. ``dccsim sweep`` runs one
scenario at several uplift / demand settings and compares them.

A run that stops part-way (a log that cannot be written, an error in the pipeline) prints one
line, ``dccsim: error: run aborted: WHY; the first N rows are in runs/x/requests.arrow and the
first M in runs/x/alerts.arrow (valid Arrow streams)``, and exits 3; Ctrl-C prints
``dccsim: interrupted; ...`` the same way and exits 130. The logs are closed as valid Arrow
streams of the rows before the stop; no ``summary.json`` or ``report.html`` is written.
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

from ..tasks import TaskBackendError
from .console import stderr_console, stdout_console
from .errors import EXIT_INTERRUPTED, CliError, OutputError
from .outdir import FORCE_OPTION, check_creatable, fresh_out

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
        console=stderr_console(),
    ) as bar:
        task = bar.add_task(label, total=24 * 3600, clock="00:00", events=0)

        def update(done_ns: int, end_ns: int, events: int) -> None:
            secs, total = done_ns // 1_000_000_000, max(1, end_ns // 1_000_000_000)
            clock = f"{secs % 86400 // 3600:02d}:{secs % 3600 // 60:02d}"
            if total > 24 * 3600:  # several days: which one
                clock = f"day {min(secs, total - 1) // 86400 + 1} {clock}"
            bar.update(task, total=total, completed=min(secs, total), clock=clock, events=events)

        yield update


def _interrupted(exc: KeyboardInterrupt, where: str) -> None:
    """Ctrl-C: one line saying where the logs are, exit 130."""
    kept = getattr(exc, "kept", None) or where
    try:
        click.echo(f"dccsim: interrupted; {kept}", err=True)
    except OSError:
        pass
    sys.exit(EXIT_INTERRUPTED)


def _f(value: Any, spec: str, unit: str = "") -> str:
    """``value`` formatted by ``spec`` (and its unit), or n/a when nothing was measured."""
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _print_summary(result: Any) -> None:
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
        ("kernels compiled or loaded",
         "n/a" if summary.compile_seconds is None else f"{summary.compile_seconds:.1f} s"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    stdout_console().print(t)
    if result.criteria.verdicts:
        stdout_console().print(verdict_table(result.criteria))
    click.echo(f"results: {result.out_dir}/ (requests.arrow, alerts.arrow, audit.arrow, summary.json, report.html)")


_SCENARIO_ARG = click.argument("scenario", required=False, default=DEFAULT_SCENARIO)
_SET_OPTION = click.option(
    "--set", "set_", multiple=True, metavar="KEY=VALUE",
    help="Set a scenario key (dotted, e.g. cache.enabled=false, capacity.uplift=1.2, 'mhhs.window_h=[0.5, 6.0]'); "
    "VALUE in TOML, a bare word as a string. Repeatable; applied before the scenario is checked.",
)  # fmt: skip


_BACKEND_OPTION = click.option(
    "--backend", type=click.Choice(["local", "ray"]), default=None,
    help="Where independent runs go: local worker processes (default), or Ray tasks (pip install 'dccsim[ray]').",
)  # fmt: skip
_ADDRESS_OPTION = click.option(
    "--address", default=None, metavar="HOST:PORT",
    help="--backend ray: the Ray cluster's head (default: a local Ray instance of --workers CPUs).",
)  # fmt: skip


def _backend(backend: str | None, address: str | None) -> str:
    """The backend of ``--backend``/``--address``, checked before any work (one line, exit 2:
    an address without Ray, or Ray not installed)."""
    from ..tasks import check_backend

    backend = backend or "local"
    if address is not None and backend != "ray":
        raise CliError(f"--address: got {address!r}, expected it with --backend ray (local processes need none)")
    try:
        check_backend(backend, address)
    except ConfigError as exc:
        raise CliError(f"--{exc.key}: got {exc.value!r}, expected {exc.expected}") from None
    return backend


def _settings(given: tuple[str, ...]) -> dict[str, Any]:
    """``--set`` values as dotted-key settings; a bad one is a one-line error (exit 2)."""
    from ..settings import parse_settings

    try:
        return parse_settings(given)
    except ConfigError as exc:
        raise CliError(f"--set: {exc}") from None


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
@FORCE_OPTION
@_SET_OPTION
@click.option("--replicates", type=int, default=None, metavar="K",
              help="Run K >= 2 days with seeds SEED, SEED+1, ..., SEED+K-1 (each into OUT/seedS/) as parallel tasks, "
              "and summarise each headline KPI: mean, sd and 95% confidence interval (OUT/replicates.json).")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="--replicates: runs side by side (default: the CPU count; with --backend ray, what the cluster "
              "allows).")
@_BACKEND_OPTION
@_ADDRESS_OPTION
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
    set_: tuple[str, ...],
    replicates: int | None,
    workers: int | None,
    backend: str | None,
    address: str | None,
    force: bool,
) -> None:
    """Simulate a day of DCC traffic in virtual time and write the run folder."""
    from ..compose import RunAborted, default_out, load_run, simulate

    settings = _settings(set_)
    if replicates is not None or workers is not None or backend is not None or address is not None:
        _run_replicates(
            scenario, replicates, workers, backend, address, scale=scale, seed=seed, uplift=uplift, demand=demand,
            shards=shards, out=out, compression=compression, quiet=quiet, settings=settings, force=force,
        )  # fmt: skip
        return
    try:
        config = load_run(
            scenario, scale=scale, seed=seed, uplift=uplift, demand=demand, shards=shards, settings=settings
        )
        s = config.scenario
        out = fresh_out(out, default_out(config), force)
        with _progress_bar(f"{s.name} x{s.scale:g}", enabled=not quiet) as progress:
            outcome = simulate(
                config, out=out, compression=None if compression == "none" else compression, progress=progress
            )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except RunAborted as exc:
        raise OutputError(str(exc)) from None
    except KeyboardInterrupt as exc:
        _interrupted(exc, "nothing was run")
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


def _run_replicates(
    scenario: str, k: int | None, workers: int | None, backend: str | None, address: str | None, *,
    scale: float | None, seed: int | None, uplift: float | None, demand: float | None, shards: int | None,
    out: Path | None, compression: str, quiet: bool, settings: dict[str, Any], force: bool = False,
) -> None:  # fmt: skip
    """``dccsim run --replicates K``: the K runs as tasks, the KPIs' intervals, the verdicts
    (exit 1 naming each failing seed). Every flag is checked before any run."""

    from ..compose import load_run
    from ..replicates import MAX_REPLICATES, replicates
    from ..tasks import default_workers

    if k is None:
        given = "--workers" if workers is not None else "--backend" if backend is not None else "--address"
        raise CliError(f"{given}: applies with --replicates K (splitting one run across workers is not built yet)")
    if not 2 <= k <= MAX_REPLICATES:
        raise CliError(f"--replicates: got {k}, expected an integer from 2 to {MAX_REPLICATES} (a confidence "
                       "interval needs two runs or more; for one run leave --replicates out)")  # fmt: skip
    backend = _backend(backend, address)
    try:
        config = load_run(scenario, scale=scale, seed=seed, uplift=uplift, demand=demand, shards=shards,
                          settings=settings)  # fmt: skip
        s = config.scenario
        out = fresh_out(out, Path("runs") / f"{s.name}-s{s.scale:g}-seeds{s.seed}-{s.seed + k - 1}", force)
        on = f"{workers or default_workers()} local worker(s)" if backend == "local" else \
            f"Ray ({address or 'a local instance'}{f', {workers} at a time' if workers else ''})"
        console = stderr_console()
        with _replicate_bar(k, enabled=not quiet) as bar:

            def progress(done: int, total: int) -> None:
                if done == 0:  # every replicate checked: the runs start
                    console.print(f"{k} replicates of {s.name} x{s.scale:g} (seeds {s.seed} to {s.seed + k - 1}) "
                                  f"on {on}")  # fmt: skip
                bar(done, total)

            result = replicates(
                scenario, k, out, seed=seed, scale=scale, uplift=uplift, demand=demand, shards=shards,
                overrides=settings, compression=None if compression == "none" else compression, workers=workers,
                backend=backend, address=address, progress=None if quiet else progress,
            )  # fmt: skip
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except TaskBackendError as exc:
        raise OutputError(f"replicates aborted: {exc} (finished runs are in {out}/)") from None
    if quiet:
        click.echo(result.out_dir)
    else:
        _print_replicates(result)
    if result.failed:
        failed = "; ".join(
            f"seed {seed}: " + ", ".join(
                f"{c.expression} (actual {c.actual:g})" if c.actual is not None else c.expression
                for c in getattr(summary.exit_criteria, "criteria", ()) if not c.passed
            )
            for seed, summary in result.failed
        )  # fmt: skip
        click.echo(f"dccsim run: exit criteria not met in {len(result.failed)} of {k} replicates: {failed}", err=True)
        sys.exit(1)


@contextmanager
def _replicate_bar(total: int, enabled: bool) -> Iterator[Any]:
    """A progress bar of replicates done; yields the ``progress(done, total)`` callback."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]replicates"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, console=stderr_console()) as bar:  # fmt: skip
        task = bar.add_task("replicates", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def _print_replicates(result: Any) -> None:
    from rich.table import Table

    from ..replicates import KPIS

    doc = result.doc
    unit = {"pct": (".3%", ""), "s": (".2f", " s"), "int": (",.1f", "")}
    t = Table("KPI", "mean", "95% interval", "sd", "min", "max",
              title=f"dccsim run: {doc['scenario']} at scale {doc['scale']:g}, {doc['replicates']} replicates "
              f"(seeds {doc['seeds'][0]} to {doc['seeds'][-1]})")  # fmt: skip
    for kpi in KPIS:
        st = result.stats[kpi.key]
        spec, u = unit[kpi.unit]
        ci = f"{_f(st.ci95[0], spec, u)} to {_f(st.ci95[1], spec, u)}" if st.ci95 else "n/a"
        t.add_row(kpi.label, _f(st.mean, spec, u), ci, _f(st.sd, spec, u), _f(st.min, spec, u), _f(st.max, spec, u))
    stdout_console().print(t)
    verdicts = ", ".join(f"seed {r['seed']} {'pass' if r['passed'] else 'FAIL'}" for r in doc["runs"])
    click.echo(f"exit criteria: {verdicts}")
    click.echo(f"results: {result.out_dir}/ (replicates.json, report.html, seed{doc['seeds'][0]}/ ...)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout: name, scale, description, default.")
def scenarios(as_json: bool) -> None:
    """List the built-in scenarios."""
    from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario
    from rich.table import Table

    found = [(name, parse_scenario(text, name)) for name, text in sorted(builtin_scenarios().items())]
    if as_json:
        import json

        click.echo(json.dumps([{"name": n, "scale": s.scale, "description": s.description,
                                "default": n == DEFAULT_SCENARIO} for n, s in found]))  # fmt: skip
        return
    t = Table("name", "scale", "description")
    for name, s in found:
        t.add_row(name + (" (default)" if name == DEFAULT_SCENARIO else ""), f"{s.scale:g}", s.description)
    stdout_console().print(t)


@click.command()
@_SCENARIO_ARG
@click.option("--uplift", "uplifts", default=None,
              help="Comma-separated uplift factors, e.g. 1,1.5,2,3 (with --find max-demand: the one uplift).")
@click.option("--demand", "demands", default=None,
              help="Comma-separated demand factors (with --find min-uplift: the one demand).")
@click.option("--find", "find", type=click.Choice(["min-uplift", "max-demand"]), default=None,
              help="Search for the least uplift (or the most demand) that passes the scenario's exit criteria.")
@click.option("--low", type=float, default=None, help="--find: the bracket's low end (default 1).")
@click.option("--high", type=float, default=None, help="--find: the bracket's high end (default 3).")
@click.option("--tolerance", type=float, default=0.01, show_default=True, help="--find: the answer's precision.")
@click.option("--points", type=click.IntRange(1, 64), default=3, show_default=True,
              help="--find: settings judged per round (side by side); the answer does not depend on --workers.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Settings run side by side (default: the CPU count; with --backend ray, what the cluster allows).")
@_BACKEND_OPTION
@_ADDRESS_OPTION
@click.option("--scale", type=float, default=None)
@click.option("--seed", type=int, default=None)
@_SET_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The sweep's folder (default runs/sweep).")
@FORCE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print sweep.json on stdout instead of the table.")
@click.option("--quiet", "-q", is_flag=True, help="No status lines on stderr (errors still are).")
def sweep(
    scenario: str, uplifts: str | None, demands: str | None, find: str | None, low: float | None, high: float | None,
    tolerance: float, points: int, workers: int | None, backend: str | None, address: str | None,
    scale: float | None, seed: int | None, set_: tuple[str, ...], out: Path | None, force: bool, as_json: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Run one scenario at several uplift and/or demand settings and compare, or search for the
    capacity boundary (--find); writes sweep.json and sweep.html (the saturation curve)."""
    from rich.table import Table

    from .. import compose
    from ..results.runlog import RunAborted

    settings = _settings(set_)
    out = fresh_out(out, Path("runs/sweep"), force)
    check_creatable(out)  # the sweep's own folder, before any setting runs (made only when one does)
    ups = _floats(uplifts, "--uplift") or [None]
    dems = _floats(demands, "--demand") or [None]
    backend = _backend(backend, address)
    console = stderr_console()

    def running(label: str) -> None:
        if not quiet:
            console.print(f"running {label} ...")

    try:
        if find is not None:
            fixed, given = ("--demand", dems) if find == "min-uplift" else ("--uplift", ups)
            swept = ups if find == "min-uplift" else dems
            if swept != [None]:
                raise click.UsageError(f"--find {find} searches {'--uplift' if find == 'min-uplift' else '--demand'}; "
                                       "give --low and --high for its bracket")  # fmt: skip
            if len(given) > 1:
                raise click.UsageError(f"--find {find}: give one {fixed} value, got {len(given)}")
            result = compose.find(
                scenario, find, out, low=low, high=high, tolerance=tolerance, points=points,
                uplift=ups[0], demand=dems[0], scale=scale, seed=seed, overrides=settings, workers=workers,
                backend=backend, address=address, on_setting=running,
            )  # fmt: skip
        else:
            if ups == [None] and dems == [None]:
                raise click.UsageError("give --uplift and/or --demand, e.g. --uplift 1,1.5,2,3 (or --find min-uplift)")
            result = compose.sweep(
                scenario, [(u, d) for u in ups for d in dems], out, scale=scale, seed=seed, overrides=settings,
                workers=workers, backend=backend, address=address, on_setting=running,
            )  # fmt: skip
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except RunAborted as exc:
        raise OutputError(f"{exc} (no sweep.json written)") from None
    except TaskBackendError as exc:
        raise OutputError(f"sweep aborted: {exc}") from None
    except KeyboardInterrupt as exc:
        _interrupted(exc, f"no sweep.json written; each setting's run closed its logs in {out}/")
    if as_json:
        click.echo((out / "sweep.json").read_text().rstrip("\n"))
        return
    t = Table(
        "uplift", "demand", "servers", "requests", "within target", "p99 latency", "peak backlog", "cache saved",
        "verdict", "wall", title=f"dccsim sweep: {scenario}" + (f" --find {find}" if find else ""),
    )  # fmt: skip
    for r in result.rows:
        t.add_row(
            f"{r['uplift']:g}",
            f"{r['demand']:g}",
            f"{r['dsp_servers']:,}",
            f"{r['requests']:,}",
            _f(r["within_target_ratio"], ".4%"),
            _f(r["latency_s"]["p99"], ".2f", " s"),
            f"{r['peak_backlog']:,}",
            _f((r["cache"] or {}).get("device_requests_saved"), ","),
            "pass" if r["passed"] else "FAIL" if r["passed"] is False else "n/a",
            _f(r["wall_seconds"], ".1f", " s"),
        )
    stdout_console().print(t)
    click.echo(f"results: {out}/ (sweep.json, sweep.html)")
    if find is not None:
        click.echo(result.answer_line)
