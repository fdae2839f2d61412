"""``dccsim throttle``, ``dccsim tune-throttle`` and ``dccsim make-alert-trace``.

``dccsim make-alert-trace OUT.arrow`` draws an alert trace with labelled storms
(:mod:`dccsim.loadgen.alert_trace`) and writes it as an Arrow IPC file.

``dccsim throttle TRACE --config FILE --out OUT.arrow`` applies an Alert Storm Protection
policy (:mod:`dccsim.throttle.policy`) to a trace, batch by batch, and writes the alerts log:
the trace's columns plus ``action`` (``forwarded`` / ``throttled`` / ``excluded``),
``throttled_count`` and ``sequence_id`` (and ``would_throttle`` in dry-run mode), then
prints a one-screen summary.

``dccsim tune-throttle TRACE --grid FILE --out DIR`` runs every (N, W, P) setting of a grid
(:mod:`dccsim.throttle.tuning`) over one trace, parts of the grid side by side as tasks (local
worker processes, or Ray tasks with ``--backend ray``), and writes
``DIR/tuning.arrow`` (one row per setting), ``DIR/tuning.svg`` (storm alerts discarded
against collateral discards, when the trace has a ``storm`` column) and a table on screen.

A TRACE is an Arrow IPC file (or stream) with columns ``t_ns`` (int64, non-decreasing),
``device`` (uint64), ``alert_code`` (uint16) and optionally ``storm`` (bool). Output logs
are Arrow IPC streams (:mod:`dccsim.bench.results.logs`): ``pyarrow.ipc.open_stream`` or
``polars.read_ipc_stream`` read them. A bad flag, file or config is one line on stderr and
exit code 2.

The work (reading and checking traces, the replay, the tuning run, the logs and the plot) is
in :mod:`dccsim.bench.alerts`; this module parses flags, calls it and prints.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from .console import stderr_console, stdout_console
from .errors import CliError

if TYPE_CHECKING:
    from dccsim.throttle import ThrottlePolicy

    from ..alerts import ReplayResult, TuningRun

__all__ = ["throttle", "tune_throttle", "make_alert_trace"]


# ------------------------------------------------------------------------------ make-alert-trace
@click.command("make-alert-trace")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--alerts", type=int, default=100_000, show_default=True, help="Alerts in the trace.")
@click.option(
    "--devices", type=int, default=10_000, show_default=True, help="Devices that may alert."
)
@click.option(
    "--storms", type=int, default=10, show_default=True, help="Storms, each on its own device."
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generator.")
@click.option(
    "--duration-s", type=float, default=86_400.0, show_default=True, help="Span of the trace."
)
@click.option(
    "--storm-share",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of the alerts that belong to storms.",
)
def make_alert_trace(
    out: Path,
    alerts: int,
    devices: int,
    storms: int,
    seed: int,
    duration_s: float,
    storm_share: float,
) -> None:
    """Draw an alert trace with labelled storms and write it to OUT (Arrow IPC file)."""
    from dccsim.loadgen.alert_trace import make_alert_trace as draw

    from ..alerts import write_trace
    from ..results.logs import LogError

    try:
        trace = draw(alerts, devices, storms, seed=seed, duration_s=duration_s, storm_share=storm_share)
    except ValueError as exc:
        raise CliError(f"make-alert-trace: --{str(exc).replace('_', '-')}") from None
    params = {
        "alerts": alerts,
        "devices": devices,
        "storms": storms,
        "duration_s": duration_s,
        "storm_share": storm_share,
    }
    try:
        write_trace(out, trace, seed=seed, params=params)
    except LogError as exc:
        raise CliError(str(exc)) from None
    click.echo(
        f"wrote {out}: {len(trace):,} alerts from {len(np.unique(trace.device)):,} devices, "
        f"{int(trace.storm.sum()):,} of them in {storms} storms, over {duration_s:g} s"
    )


# ------------------------------------------------------------------------------ throttle
@click.command("throttle")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy file (TOML): policy, threshold, window_s, designated_period_s, exclude, "
    "dry_run, [overrides.<code>].",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Alerts log to write (Arrow IPC stream).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1 << 20,
    show_default=True,
    help="Alerts per batch through the throttle.",
)
@click.option(
    "--max-keys",
    type=click.IntRange(min=1),
    default=1 << 24,
    show_default=True,
    help="Bound on keys holding state (memory: about 80 bytes per key).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table: print the output path only.")
def throttle(trace: Path, config_path: Path, out: Path, batch: int, max_keys: int, quiet: bool) -> None:
    """Apply an Alert Storm Protection policy to TRACE and write the alerts log OUT."""
    from dccsim.throttle import ThrottleError, ThrottleTableFullError, load_policy

    from ..alerts import read_trace, replay_trace
    from ..results.logs import LogError

    try:
        policy = load_policy(config_path)
        alerts = read_trace(trace)
        result = replay_trace(alerts, policy, out, config_path=config_path, batch=batch, max_keys=max_keys)
    except ThrottleTableFullError as exc:
        raise CliError(f"--max-keys {max_keys}: {exc} {_keys_needed(alerts.device, alerts.alert_code)}") from None
    except (ThrottleError, LogError) as exc:
        raise CliError(str(exc)) from None
    if quiet:
        click.echo(str(out))
        return
    _print_summary(result, policy, trace)


def _keys_needed(device: np.ndarray, alert_code: np.ndarray) -> str:
    """What --max-keys holds every (device, alert code) key of a trace, in words."""
    from dccsim.throttle import group_keys

    keys = len(group_keys(device, alert_code)[1]) if device.size else 0
    return f"The trace has {keys:,} (device, alert code) keys in all: --max-keys {keys} is always enough."


def _print_summary(result: ReplayResult, policy: ThrottlePolicy, trace: Path) -> None:
    from dccsim.throttle import format_alert_code
    from rich.table import Table

    from ..results.charts import fmt_bytes, fmt_eui

    st, n, busy = result.stats, result.alerts, result.busy_s

    def pct(x: int) -> str:
        return f"{x / n:.2%}" if n else "-"

    mode = "dry run: " if policy.dry_run else ""
    table = Table(title=f"Alert Storm Protection: {trace.name} -> {result.out.name}", title_justify="left")
    table.add_column("")
    table.add_column("alerts", justify="right")
    table.add_column("share", justify="right")
    table.add_row("alerts", f"{n:,}", "")
    table.add_row("forwarded", f"{st.forwarded:,}", pct(st.forwarded))
    table.add_row("throttled (discarded)", f"{st.throttled:,}", pct(st.throttled))
    if policy.dry_run:
        table.add_row("would be throttled", f"{st.would_throttle:,}", pct(st.would_throttle))
    table.add_row("excluded", f"{st.excluded:,}", pct(st.excluded))
    table.add_row("near-limit events", f"{st.near_limit:,}", "")
    if policy.report_at_close:
        reported = f"carrying {st.reported_at_close:,} discards"
        table.add_row("reports at window close", f"{st.reports_at_close:,}", reported)
    table.add_row(
        "discards never reported", f"{st.unreported_discards + st.stale_discards:,}",
        f"{st.unreported_discards:,} held at the end, {st.stale_discards:,} stale",
    )  # fmt: skip
    if result.storm_alerts is not None:
        storm_n, storm_discarded = result.storm_alerts, result.storm_discarded
        table.add_row(
            "storm alerts discarded",
            f"{storm_discarded:,}",
            f"{storm_discarded / storm_n:.2%} of storm" if storm_n else "-",
        )
        other = result.collateral
        table.add_row(
            "non-storm discarded (collateral)",
            f"{other:,}",
            f"{other / (n - storm_n):.2%} of others" if n > storm_n else "-",
        )
    table.add_row("keys holding state", f"{st.keys:,}", f"{st.evicted:,} evicted")
    table.add_row("state memory", fmt_bytes(st.state_bytes), f"{st.bytes_per_key:.0f} B/key")
    table.add_row("throttle time", f"{busy:.3f} s", f"{n / busy:,.0f} alerts/s" if busy else "")
    console = stdout_console()
    console.print(
        f"{mode}{policy.policy}: N = {policy.threshold}, W = {policy.window_s:g} s, "
        f"P = {policy.designated_period_s:g} s; exclude {', '.join(policy.exclude) or 'none'}; "
        f"overrides {', '.join(policy.overrides) or 'none'}"
    )
    console.print(table)
    if result.top_discarded:
        keys = Table(title="most discarded keys", title_justify="left")
        keys.add_column("device")
        keys.add_column("alert code")
        keys.add_column("discarded", justify="right")
        for d, c, k in result.top_discarded:
            keys.add_row(fmt_eui(f"{d:016X}"), format_alert_code(c), f"{k:,}")
        console.print(keys)


# ------------------------------------------------------------------------------ tune-throttle
@click.command("tune-throttle")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--grid",
    "grid_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Grid file (TOML): a base policy plus [grid] threshold, window_s, "
    "designated_period_s lists.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for tuning.arrow and tuning.svg (created if missing).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parts of the grid run side by side as tasks [default: the CPUs available; with "
    "--backend ray, the cluster's]. tuning.arrow is the same whatever the number.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Local worker processes, or Ray tasks (pip install 'dccsim[ray]').",
)
@click.option(
    "--address",
    default=None,
    metavar="HOST:PORT",
    help="--backend ray: the Ray cluster's head (default: a local Ray instance).",
)
@click.option(
    "--max-keys",
    type=click.IntRange(min=1),
    default=1 << 24,
    show_default=True,
    help="Bound on the trace's (device, alert code) keys; the sweep keeps 32 bytes of state "
    "per key and setting, up to 512 MiB per worker at a time.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table: print the output path only.")
def tune_throttle(
    trace: Path,
    grid_path: Path,
    out: Path,
    workers: int | None,
    backend: str,
    address: str | None,
    max_keys: int,
    quiet: bool,
) -> None:
    """Run a grid of (N, W, P) over TRACE and report what each setting discards."""
    from dccsim.core.errors import ConfigError
    from dccsim.throttle import ThrottleError, ThrottleTableFullError, load_grid
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..alerts import read_trace, tune
    from ..results.logs import LogError
    from ..tasks import TaskBackendError, check_backend
    from .errors import OutputError

    try:
        check_backend(backend, address)
    except ConfigError as exc:
        raise CliError(f"--{exc.key}: got {exc.value!r}, expected {exc.expected}") from None

    bar = Progress(
        TextColumn("[bold]tuning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("settings"),
        TimeElapsedColumn(),
        transient=True,
        console=stderr_console(),
    )

    def report(done: int, total: int) -> None:
        if quiet:
            return
        bar.start()  # on the first report, as the sweep starts (no bar for the warm-up)
        bar.update(task, completed=done)

    try:
        grid = load_grid(grid_path)
        task = bar.add_task("tuning", total=len(grid))
        run = tune(
            read_trace(trace),
            grid,
            out,
            config_path=grid_path,
            workers=workers,
            max_keys=max_keys,
            progress=report,
            backend=backend,
            address=address,
        )
    except ThrottleTableFullError as exc:
        raise CliError(f"--max-keys {max_keys}: {exc}; expected --max-keys of at least that many") from None
    except (ThrottleError, LogError) as exc:
        raise CliError(str(exc)) from None
    except TaskBackendError as exc:
        raise OutputError(f"tuning aborted: {exc}") from None
    finally:
        if bar.live.is_started:
            bar.stop()
    if quiet:
        click.echo(str(run.log))
        return
    _print_tuning(run)


def _print_tuning(run: TuningRun) -> None:
    from rich import box
    from rich.table import Table

    from ..results.charts import fmt_span

    cols, pareto, has_storm = run.columns, run.pareto, run.has_storm
    table = Table(
        title=f"throttle tuning: {len(run)} settings over {run.alerts:,} alerts in {run.wall_s:.1f} s",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    heads = ["N", "W", "P", "forwarded", "discarded", "excluded"]
    if has_storm:
        heads += ["storm fwd", "storm disc", "collateral", "caught", "catch s", "best"]
    for h in heads:
        table.add_column(h, justify="right", no_wrap=True)
    for i in range(len(run)):
        row = [
            f"{cols['threshold'][i]}",
            fmt_span(cols["window_s"][i]),
            fmt_span(cols["designated_period_s"][i]),
            f"{cols['forwarded'][i]:,}",
            f"{cols['discarded'][i]:,}",
            f"{cols['excluded'][i]:,}",
        ]
        if has_storm:
            med = cols["median_catch_s"][i]
            row += [
                f"{cols['storm_forwarded'][i]:,}",
                f"{cols['storm_discarded'][i]:,}",
                f"{cols['collateral'][i]:,}",
                f"{cols['storms_caught'][i]}/{cols['storms'][i]}",
                "-" if math.isnan(med) else f"{med:,.1f}",
                "*" if pareto[i] else "",  # in text too: bold is lost when piped
            ]
        table.add_row(*row, style="bold" if pareto[i] else None)
    console = stdout_console()
    console.print(table)
    if has_storm:
        console.print(
            f"best (*, in bold; the pareto column of tuning.arrow): settings no other setting beats on both storm "
            f"alerts discarded and collateral; catch s: median seconds from a storm's first alert to its first "
            f"discard. Wrote {run.log} and {run.plot}."
        )
    else:
        console.print(f"the trace has no storm column: no storm scores and no plot. Wrote {run.log}.")
