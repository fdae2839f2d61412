"""``dccsim throttle``, ``dccsim tune-throttle`` and ``dccsim make-alert-trace``.

``dccsim make-alert-trace OUT.arrow`` draws an alert trace with labelled storms
(:mod:`dccsim.loadgen.alert_trace`) and writes it as an Arrow IPC file.

``dccsim throttle TRACE --config FILE --out OUT.arrow`` applies an Alert Storm Protection
policy (:mod:`dccsim.throttle.policy`) to a trace, batch by batch, and writes the alerts log:
the trace's columns plus ``action`` (``forwarded`` / ``throttled`` / ``excluded``),
``throttled_count`` and ``sequence_id`` (and ``would_throttle`` in dry-run mode), then
prints a one-screen summary.

``dccsim tune-throttle TRACE --grid FILE --out DIR`` runs every (N, W, P) setting of a grid
(:mod:`dccsim.throttle.tuning`) over one trace on worker threads, and writes
``DIR/tuning.arrow`` (one row per setting), ``DIR/tuning.svg`` (storm alerts discarded
against collateral discards, when the trace has a ``storm`` column) and a table on screen.

A TRACE is an Arrow IPC file (or stream) with columns ``t_ns`` (int64, non-decreasing),
``device`` (uint64), ``alert_code`` (uint16) and optionally ``storm`` (bool). Output logs
are Arrow IPC streams (:mod:`dccsim.bench.results.logs`): ``pyarrow.ipc.open_stream`` or
``polars.read_ipc_stream`` read them. A bad flag, file or config is one line on stderr and
exit code 2.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.ipc as ipc

from .errors import CliError

__all__ = ["throttle", "tune_throttle", "make_alert_trace", "read_trace"]

#: required trace columns and their types; ``storm`` is optional
TRACE_COLUMNS: dict[str, pa.DataType] = {
    "t_ns": pa.int64(),
    "device": pa.uint64(),
    "alert_code": pa.uint16(),
}
STORM_TYPE = pa.bool_()
#: the throttle's columns of the log, after the trace's
_THROTTLE_COLUMNS = ("action", "throttled_count", "sequence_id")


# ------------------------------------------------------------------------------ trace I/O
def read_trace(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Columns and schema metadata of a trace; any problem is a :class:`CliError`."""
    try:
        try:
            table = ipc.open_file(path).read_all()
        except pa.ArrowInvalid:
            table = ipc.open_stream(path).read_all()
    except pa.ArrowInvalid as exc:
        raise CliError(f"{path}: expected an Arrow IPC file or stream ({exc})") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror or exc})") from None
    want = ", ".join(f"{n} ({t})" for n, t in TRACE_COLUMNS.items())
    names = table.column_names
    for name, type_ in [*TRACE_COLUMNS.items(), ("storm", STORM_TYPE)]:
        if name not in names:
            if name == "storm":
                continue
            raise CliError(
                f"{path}: missing column {name!r}; expected columns {want}, optional storm (bool); "
                f"got {', '.join(names) or 'none'}"
            )
        column = table.column(name)
        if column.type != type_:
            raise CliError(f"{path}: column {name!r} has type {column.type}, expected {type_}")
        if column.null_count:
            raise CliError(f"{path}: column {name!r} has {column.null_count} nulls, expected none")
    columns = {
        name: table.column(name).to_numpy() for name in [*TRACE_COLUMNS, "storm"] if name in names
    }
    t = columns["t_ns"]
    bad = np.flatnonzero(t[1:] < t[:-1])
    if bad.size:
        i = int(bad[0]) + 1
        raise CliError(
            f"{path}: column 't_ns' must be non-decreasing (sorted by time); "
            f"row {i} has {t[i]} after {t[i - 1]}"
        )
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return columns, meta


def _log_schema(columns: Sequence[str], dry_run: bool) -> pa.Schema:
    """The throttle's log: columns of alerts.arrow (the trace's, then the throttle's), typed as
    there, and ``would_throttle`` in dry-run mode."""
    from ..results.logs import ALERTS_SCHEMA

    names = [*TRACE_COLUMNS, *(["storm"] if "storm" in columns else []), *_THROTTLE_COLUMNS]
    fields = [ALERTS_SCHEMA.field(n) for n in names]
    if dry_run:
        fields.append(pa.field("would_throttle", pa.bool_(), nullable=False))
    return pa.schema(fields)


def _metadata(
    config_text: str, trace: Path, trace_meta: dict[str, str], **extra: str
) -> dict[str, str]:
    meta = {
        "dccsim.scenario": config_text,
        "dccsim.seed": trace_meta.get("dccsim.seed", ""),
        "dccsim.trace": trace.name,
    }
    meta.update({f"dccsim.{k}": v for k, v in extra.items()})
    return meta


def _config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None


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

    try:
        trace = draw(
            alerts, devices, storms, seed=seed, duration_s=duration_s, storm_share=storm_share
        )
    except ValueError as exc:
        raise CliError(f"make-alert-trace: --{str(exc).replace('_', '-')}") from None
    params = {
        "alerts": alerts,
        "devices": devices,
        "storms": storms,
        "duration_s": duration_s,
        "storm_share": storm_share,
    }
    meta = {
        "dccsim.scenario": "\n".join(f"{k} = {v!r}" for k, v in params.items()),
        "dccsim.seed": str(seed),
        "dccsim.generator": "dccsim.loadgen.alert_trace",
    }
    table = trace.to_table(meta)
    try:
        with pa.OSFile(str(out), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1 << 20)
    except OSError as exc:
        raise CliError(f"{out}: cannot write ({exc.strerror or exc})") from None
    click.echo(
        f"wrote {out}: {len(trace):,} alerts from {len(np.unique(trace.device)):,} devices, "
        f"{int(trace.storm.sum()):,} of them in {storms} storms, over {duration_s:g} s"
    )


# ------------------------------------------------------------------------------ throttle
def _top_keys(
    device: npt.NDArray[np.uint64], code: npt.NDArray[np.uint16], k: int
) -> list[tuple[int, int, int]]:
    """The ``k`` (device, alert code) keys with most rows, most first."""
    from dccsim.throttle import group_keys

    if not device.size:
        return []
    key, first = group_keys(device, code)
    counts = np.bincount(key)
    top = np.argsort(-counts, kind="stable")[:k]
    return [(int(device[first[i]]), int(code[first[i]]), int(counts[i])) for i in top]


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
def throttle(trace: Path, config_path: Path, out: Path, batch: int, max_keys: int) -> None:
    """Apply an Alert Storm Protection policy to TRACE and write the alerts log OUT."""
    from dccsim.throttle import Throttle, ThrottleError, load_policy

    from ..results.logs import ArrowLogWriter, LogError

    try:
        policy = load_policy(config_path)
    except ThrottleError as exc:
        raise CliError(str(exc)) from None
    columns, trace_meta = read_trace(trace)
    t, dev, code = columns["t_ns"], columns["device"], columns["alert_code"]
    storm = columns.get("storm")
    n = t.shape[0]
    Throttle.warm_up()
    th = Throttle(policy, max_keys=max_keys)
    schema = _log_schema(list(columns), policy.dry_run)
    meta = _metadata(
        _config_text(config_path),
        trace,
        trace_meta,
        policy=json.dumps(policy.to_dict(), sort_keys=True),
    )
    discarded: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint16]]] = []
    storm_discarded = 0
    busy = 0.0
    try:
        # the action names are the records' vocabulary (the writer's default: the throttle's)
        with ArrowLogWriter(out, schema, meta) as log:
            for a in range(0, n, batch):
                b = min(a + batch, n)
                t0 = time.perf_counter()
                try:
                    res = th.process(t[a:b], dev[a:b], code[a:b])
                except ThrottleError as exc:
                    raise CliError(f"{trace}: rows from {a}: {exc}") from None
                busy += time.perf_counter() - t0
                cols = {
                    "t_ns": t[a:b],
                    "device": dev[a:b],
                    "alert_code": code[a:b],
                    "action": res.action,
                    "throttled_count": res.throttled_count,
                    "sequence_id": res.sequence_id,
                }
                if storm is not None:
                    cols["storm"] = storm[a:b]
                    storm_discarded += int(np.count_nonzero(res.would_throttle & storm[a:b]))
                if policy.dry_run:
                    cols["would_throttle"] = res.would_throttle
                log.write_columns(**cols)
                discarded.append((dev[a:b][res.would_throttle], code[a:b][res.would_throttle]))
    except (LogError, OSError) as exc:
        raise CliError(f"{out}: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
    top = _top_keys(
        np.concatenate([d for d, _ in discarded]) if discarded else np.empty(0, np.uint64),
        np.concatenate([c for _, c in discarded]) if discarded else np.empty(0, np.uint16),
        5,
    )
    _print_summary(th.stats(), policy, trace, out, n, busy, storm, storm_discarded, top)


def _print_summary(
    st: Any,
    policy: Any,
    trace: Path,
    out: Path,
    n: int,
    busy: float,
    storm: npt.NDArray[np.bool_] | None,
    storm_discarded: int,
    top: list[tuple[int, int, int]],
) -> None:
    from dccsim.throttle import format_alert_code
    from rich.console import Console
    from rich.table import Table

    from ..results.charts import fmt_bytes, fmt_eui

    def pct(x: int) -> str:
        return f"{x / n:.2%}" if n else "-"

    mode = "dry run: " if policy.dry_run else ""
    table = Table(title=f"Alert Storm Protection: {trace.name} -> {out.name}", title_justify="left")
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
    if storm is not None:
        storm_n = int(storm.sum())
        table.add_row(
            "storm alerts discarded",
            f"{storm_discarded:,}",
            f"{storm_discarded / storm_n:.2%} of storm" if storm_n else "-",
        )
        other = st.would_throttle - storm_discarded
        table.add_row(
            "non-storm discarded (collateral)",
            f"{other:,}",
            f"{other / (n - storm_n):.2%} of others" if n > storm_n else "-",
        )
    table.add_row("keys holding state", f"{st.keys:,}", f"{st.evicted:,} evicted")
    table.add_row("state memory", fmt_bytes(st.state_bytes), f"{st.bytes_per_key:.0f} B/key")
    table.add_row("throttle time", f"{busy:.3f} s", f"{n / busy:,.0f} alerts/s" if busy else "")
    console = Console()
    console.print(
        f"{mode}{policy.policy}: N = {policy.threshold}, W = {policy.window_s:g} s, "
        f"P = {policy.designated_period_s:g} s; exclude {', '.join(policy.exclude) or 'none'}; "
        f"overrides {', '.join(policy.overrides) or 'none'}"
    )
    console.print(table)
    if top:
        keys = Table(title="most discarded keys", title_justify="left")
        keys.add_column("device")
        keys.add_column("alert code")
        keys.add_column("discarded", justify="right")
        for d, c, k in top:
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
    help="Threads running settings side by side [default: the CPUs available].",
)
@click.option(
    "--max-keys",
    type=click.IntRange(min=1),
    default=1 << 24,
    show_default=True,
    help="Bound on the trace's (device, alert code) keys; the sweep keeps 32 bytes of state "
    "per key and setting, up to 512 MiB per worker at a time.",
)
def tune_throttle(
    trace: Path, grid_path: Path, out: Path, workers: int | None, max_keys: int
) -> None:
    """Run a grid of (N, W, P) over TRACE and report what each setting discards."""
    from dccsim.throttle import ThrottleError, load_grid, sweep
    from dccsim.throttle.tuning import warm_up
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..results.logs import ArrowLogWriter, LogError

    try:
        grid = load_grid(grid_path)
    except ThrottleError as exc:
        raise CliError(str(exc)) from None
    columns, trace_meta = read_trace(trace)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{out}: cannot create the folder ({exc.strerror})") from None
    warm_up()
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]tuning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("settings"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("tuning", total=len(grid))
        try:
            result = sweep(
                columns["t_ns"],
                columns["device"],
                columns["alert_code"],
                grid,
                storm=columns.get("storm"),
                workers=workers,
                max_keys=max_keys,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        except ThrottleError as exc:
            raise CliError(f"{trace}: {exc}") from None
    wall = time.perf_counter() - t0
    cols = result.columns
    schema = pa.schema(
        [pa.field(name, pa.from_numpy_dtype(a.dtype), nullable=False) for name, a in cols.items()]
    )
    meta = _metadata(
        _config_text(grid_path), trace, trace_meta, alerts=str(columns["t_ns"].shape[0])
    )
    try:
        with ArrowLogWriter(out / "tuning.arrow", schema, meta, compression=None) as log:
            log.write_columns(**cols)
    except (LogError, OSError) as exc:
        raise CliError(
            f"{out / 'tuning.arrow'}: cannot write ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    has_storm = "storm" in columns
    pareto = _pareto(cols) if has_storm else np.zeros(len(result), bool)
    if has_storm:
        from ..results.tuning_plot import tradeoff_svg

        svg = tradeoff_svg(cols, pareto, title=f"{trace.name}: {len(result)} settings")
        try:
            (out / "tuning.svg").write_text(svg, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{out / 'tuning.svg'}: cannot write ({exc.strerror})") from None
    _print_tuning(cols, pareto, has_storm, columns["t_ns"].shape[0], wall, out)


def _pareto(cols: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.bool_]:
    """Settings no other setting beats on both storm alerts discarded and collateral."""
    y = cols["storm_discarded"]
    x = cols["collateral"]
    keep = np.ones(len(x), bool)
    for i in range(len(x)):
        better = (y >= y[i]) & (x <= x[i]) & ((y > y[i]) | (x < x[i]))
        keep[i] = not better.any()
    return keep


def _span(seconds: float) -> str:
    """A duration the short way: 90 -> 90s, 600 -> 10m, 7200 -> 2h, 86400 -> 1d."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _print_tuning(
    cols: dict[str, npt.NDArray[Any]],
    pareto: npt.NDArray[np.bool_],
    has_storm: bool,
    n: int,
    wall: float,
    out: Path,
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"throttle tuning: {len(cols['threshold'])} settings over {n:,} alerts "
        f"in {wall:.1f} s",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    heads = ["N", "W", "P", "forwarded", "discarded", "excluded"]
    if has_storm:
        heads += ["storm fwd", "storm disc", "collateral", "caught", "catch s"]
    for h in heads:
        table.add_column(h, justify="right", no_wrap=True)
    for i in range(len(cols["threshold"])):
        row = [
            f"{cols['threshold'][i]}",
            _span(cols["window_s"][i]),
            _span(cols["designated_period_s"][i]),
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
            ]
        table.add_row(*row, style="bold" if pareto[i] else None)
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 140))
    console.print(table)
    if has_storm:
        console.print(
            f"bold: settings no other setting beats on both storm alerts discarded and "
            f"collateral; catch s: median seconds from a storm's first alert to its first "
            f"discard. Wrote {out / 'tuning.arrow'} and {out / 'tuning.svg'}."
        )
    else:
        console.print(
            "the trace has no storm column: no storm scores and no plot. "
            f"Wrote {out / 'tuning.arrow'}."
        )
