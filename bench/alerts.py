"""Alert traces through Alert Storm Protection: the composition behind ``dccsim throttle``,
``dccsim tune-throttle`` and ``dccsim make-alert-trace``.

A trace file goes in, a throttle (or a grid of them) runs over it, Arrow logs come out:

- :func:`write_trace` writes a drawn trace (:func:`dccsim.loadgen.alert_trace.make_alert_trace`)
  as an Arrow IPC file, with its generator's parameters and seed as metadata;
- :func:`read_trace` reads one back (an Arrow IPC file or stream) and checks it;
- :func:`replay_trace` runs a :class:`~dccsim.throttle.Throttle` over it batch by batch and
  writes the alerts log (the trace's columns plus ``action``, ``throttled_count``,
  ``sequence_id``, and ``would_throttle`` in dry-run mode), returning the counts
  (:class:`ReplayResult`);
- :func:`tune` runs every (N, W, P) of a grid (:func:`dccsim.throttle.sweep`) and writes
  ``tuning.arrow`` (one row per setting) and, when the trace has a ``storm`` column,
  ``tuning.svg`` (:func:`dccsim.bench.results.tuning_plot.tradeoff_svg`), returning a
  :class:`TuningRun`; :func:`pareto` marks its best trade-offs.

A trace has columns ``t_ns`` (int64, non-decreasing), ``device`` (uint64), ``alert_code``
(uint16) and optionally ``storm`` (bool, the ground truth); a run's ``alerts.arrow`` (times as
timestamps, EUI-64 text, hex codes) reads as one too. Logs are Arrow IPC streams
written by :class:`~dccsim.bench.results.logs.ArrowLogWriter`, with the policy or grid file's
text (``dccsim.scenario``), the trace's seed and name as metadata.

Errors keep their types and carry a one-line text naming the file: a trace or log that
cannot be read or written is a :class:`~dccsim.bench.results.logs.LogError`; a bad policy,
grid or batch (or a state table that is full) a :class:`~dccsim.throttle.ThrottleError`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.ipc as ipc
from dccsim.throttle import (
    REPORTED,
    Throttle,
    ThrottleConfigError,
    ThrottleError,
    ThrottlePolicy,
    ThrottleReports,
    ThrottleStats,
    TuningGrid,
    group_keys,
    sweep,
)

from .results.logs import ALERTS_SCHEMA, ArrowLogWriter, LogError, raw_table

if TYPE_CHECKING:
    from dccsim.loadgen.alert_trace import AlertTrace

__all__ = [
    "TRACE_COLUMNS",
    "STORM_TYPE",
    "Trace",
    "read_trace",
    "write_trace",
    "ReplayResult",
    "replay_trace",
    "TuningRun",
    "tune",
    "split_grid",
    "pareto",
]

#: required trace columns and their types; ``storm`` is optional
TRACE_COLUMNS: dict[str, pa.DataType] = {
    "t_ns": pa.int64(),
    "device": pa.uint64(),
    "alert_code": pa.uint16(),
}
STORM_TYPE = pa.bool_()
#: the throttle's columns of the log, after the trace's
_THROTTLE_COLUMNS = ("action", "throttled_count", "sequence_id")


# ------------------------------------------------------------------------------ trace files
@dataclass(frozen=True)
class Trace:
    """An alert trace read from a file: its checked columns and its schema metadata."""

    #: the file, as given (errors and the logs' ``dccsim.trace`` name it)
    path: Path
    t_ns: npt.NDArray[np.int64]
    device: npt.NDArray[np.uint64]
    alert_code: npt.NDArray[np.uint16]
    #: the ground truth (true for the alerts of a storm), or None when the file has no such column
    storm: npt.NDArray[np.bool_] | None
    #: the file's schema metadata (``dccsim.seed``, ``dccsim.scenario``, ...)
    metadata: dict[str, str]

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])

    @property
    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """``t_ns``, ``device``, ``alert_code`` and, if present, ``storm``, in that order."""
        cols: dict[str, npt.NDArray[Any]] = {"t_ns": self.t_ns, "device": self.device, "alert_code": self.alert_code}
        if self.storm is not None:
            cols["storm"] = self.storm
        return cols


def read_trace(path: Path) -> Trace:
    """Read and check an alert trace (Arrow IPC file or stream).

    :class:`LogError`, naming the file and what is wrong (a missing column, a wrong type,
    nulls, or the first row where ``t_ns`` goes back), when it cannot be used.
    """
    try:
        try:
            table = ipc.open_file(path).read_all()
        except pa.ArrowInvalid:
            table = ipc.open_stream(path).read_all()
    except pa.ArrowInvalid as exc:
        raise LogError(f"{path}: expected an Arrow IPC file or stream ({exc})") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:  # a run's alerts.arrow: its times, EUI-64 text and hex codes back to numbers
        table = raw_table(table)
    except LogError as exc:
        raise LogError(f"{path}: {exc}") from None
    want = ", ".join(f"{n} ({t})" for n, t in TRACE_COLUMNS.items())
    names = table.column_names
    for name in [*TRACE_COLUMNS, "storm"]:
        if names.count(name) > 1:  # which one would be the trace's is anyone's guess
            raise LogError(
                f"{path}: column {name!r} appears {names.count(name)} times, expected it once; "
                f"got columns {', '.join(names)}"
            )
    for name, type_ in [*TRACE_COLUMNS.items(), ("storm", STORM_TYPE)]:
        if name not in names:
            if name == "storm":
                continue
            raise LogError(
                f"{path}: missing column {name!r}; expected columns {want}, optional storm (bool); "
                f"got {', '.join(names) or 'none'}"
            )
        column = table.column(name)
        if column.type != type_:
            raise LogError(f"{path}: column {name!r} has type {column.type}, expected {type_}")
        if column.null_count:
            raise LogError(f"{path}: column {name!r} has {column.null_count} nulls, expected none")
    t = table.column("t_ns").to_numpy()
    bad = np.flatnonzero(t[1:] < t[:-1])
    if bad.size:
        i = int(bad[0]) + 1
        raise LogError(
            f"{path}: column 't_ns' must be non-decreasing (sorted by time); row {i} has {t[i]} after {t[i - 1]}"
        )
    return Trace(
        path=path,
        t_ns=t,
        device=table.column("device").to_numpy(),
        alert_code=table.column("alert_code").to_numpy(),
        storm=table.column("storm").to_numpy() if "storm" in names else None,
        metadata={k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()},
    )


def write_trace(path: Path, trace: AlertTrace, *, seed: int, params: Mapping[str, object]) -> None:
    """Write a drawn trace to ``path`` as an Arrow IPC stream, as every other log is
    (:func:`read_trace` reads streams and files alike).

    ``params`` are the generator's arguments besides the seed; they are recorded, one
    ``name = value`` line each, as ``dccsim.scenario``, with ``dccsim.seed`` and
    ``dccsim.generator``. :class:`LogError` when the file cannot be written.
    """
    meta = {
        "dccsim.scenario": "\n".join(f"{k} = {v!r}" for k, v in params.items()),
        "dccsim.seed": str(seed),
        "dccsim.generator": "dccsim.loadgen.alert_trace",
    }
    table = trace.to_table(meta)
    try:
        with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1 << 20)
    except OSError as exc:
        raise LogError(f"{path}: cannot write ({exc.strerror or exc})") from exc


# ------------------------------------------------------------------------------ shared parts
def _log_schema(columns: Sequence[str], dry_run: bool) -> pa.Schema:
    """The throttle's log: columns of alerts.arrow (the trace's, then the throttle's), typed as
    there, and ``would_throttle`` in dry-run mode."""
    names = [*TRACE_COLUMNS, *(["storm"] if "storm" in columns else []), *_THROTTLE_COLUMNS]
    fields = [ALERTS_SCHEMA.field(n) for n in names]
    if dry_run:
        fields.append(pa.field("would_throttle", pa.bool_(), nullable=False))
    return pa.schema(fields)


def _metadata(config_text: str, trace: Trace, **extra: str) -> dict[str, str]:
    meta = {
        "dccsim.scenario": config_text,
        "dccsim.seed": trace.metadata.get("dccsim.seed", ""),
        "dccsim.trace": trace.path.name,
    }
    meta.update({f"dccsim.{k}": v for k, v in extra.items()})
    return meta


def _config_text(path: Path) -> str:
    """The text of a policy or grid file, recorded in the logs as ``dccsim.scenario``."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ThrottleConfigError(f"cannot read ({exc.strerror})", source=str(path)) from exc


def _cannot_write(path: Path, exc: Exception) -> LogError:
    return LogError(f"{path}: cannot write ({getattr(exc, 'strerror', None) or exc})")


@contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    """A temporary name beside ``out`` to write to: renamed to ``out`` when the block ends
    well, removed when it fails, so that a failed run leaves no partial file (nor clobbers a
    good one). Its errors name ``out``, not the temporary name."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and str(tmp) in str(exc):
            raise OSError(exc.errno, str(exc.strerror or exc).replace(str(tmp), str(out))) from exc
        raise


def _located(exc: ThrottleError, where: str) -> ThrottleError:
    """``exc`` (its type and attributes kept) with ``where`` before its text."""
    exc.args = (f"{where}: {exc}",)
    return exc


def _top_keys(device: npt.NDArray[np.uint64], code: npt.NDArray[np.uint16], k: int) -> list[tuple[int, int, int]]:
    """The ``k`` (device, alert code) keys with most rows, most first."""
    if not device.size:
        return []
    key, first = group_keys(device, code)
    counts = np.bincount(key)
    top = np.argsort(-counts, kind="stable")[:k]
    return [(int(device[first[i]]), int(code[first[i]]), int(counts[i])) for i in top]


# ------------------------------------------------------------------------------ replay
@dataclass(frozen=True)
class ReplayResult:
    """What one throttle did to a trace (:func:`replay_trace`)."""

    #: the alerts log written
    out: Path
    #: alerts in the trace
    alerts: int
    #: the throttle's counters at the end: forwarded, throttled, excluded, would_throttle
    #: (the discards enforcement makes, also in dry-run mode), near_limit, keys, state bytes
    stats: ThrottleStats
    #: alerts of the trace's storms, or None when the trace has no ``storm`` column
    storm_alerts: int | None
    #: storm alerts that enforcement discards (0 without a ``storm`` column)
    storm_discarded: int
    #: the (device, alert code, alerts discarded) keys with most discards, most first (up to 5)
    top_discarded: list[tuple[int, int, int]]
    #: seconds spent in the throttle itself (not reading or writing)
    busy_s: float

    @property
    def collateral(self) -> int:
        """Non-storm alerts that enforcement discards (all discards without a ``storm`` column)."""
        return self.stats.would_throttle - self.storm_discarded


def replay_trace(
    trace: Trace,
    policy: ThrottlePolicy,
    out: Path,
    *,
    config_path: Path,
    batch: int = 1 << 20,
    max_keys: int = 1 << 24,
) -> ReplayResult:
    """Run ``policy`` over ``trace``, ``batch`` alerts at a time, and write the alerts log ``out``.

    The log holds the trace's columns, then ``action``, ``throttled_count``, ``sequence_id``
    (and ``would_throttle`` when ``policy.dry_run``), and with ``policy.report_at_close`` the
    throttle's reports at window close as rows of their own (action ``reported``); its metadata records the text of
    ``config_path`` (the file ``policy`` came from), the policy itself, the trace's seed and
    name. At most ``max_keys`` (device, alert code) keys hold state at once.

    A :class:`ThrottleError` from the throttle (a full state table, say) is raised with the
    trace and the first row of its batch before its text; :class:`LogError` when ``out``
    cannot be written.
    """
    t, dev, code, storm = trace.t_ns, trace.device, trace.alert_code, trace.storm
    n = len(trace)
    Throttle.warm_up()
    th = Throttle(policy, max_keys=max_keys)
    schema = _log_schema(list(trace.columns), policy.dry_run)
    meta = _metadata(_config_text(config_path), trace, policy=json.dumps(policy.to_dict(), sort_keys=True))
    discarded: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint16]]] = []
    storm_discarded = 0
    busy = 0.0
    try:
        # the action names are the records' vocabulary (the writer's default: the throttle's)
        codes = np.unique(code).tolist()  # the log's alert-code dictionary: the trace's codes
        with _replacing(out) as partial, ArrowLogWriter(partial, schema, meta, alert_codes=codes) as log:
            for a in range(0, n, batch):
                b = min(a + batch, n)
                t0 = time.perf_counter()
                try:
                    res = th.process(t[a:b], dev[a:b], code[a:b])
                except ThrottleError as exc:
                    raise _located(exc, f"{trace.path}: rows from {a}") from None
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
                if policy.report_at_close:  # reports due by the batch's last alert (the trace's end for the last)
                    cols = _with_reports(cols, th.take_reports(int(t[b - 1])))
                busy += time.perf_counter() - t0
                log.write_columns(**cols)
                discarded.append((dev[a:b][res.would_throttle], code[a:b][res.would_throttle]))
    except (LogError, OSError) as exc:
        raise _cannot_write(out, exc) from exc
    top = _top_keys(
        np.concatenate([d for d, _ in discarded]) if discarded else np.empty(0, np.uint64),
        np.concatenate([c for _, c in discarded]) if discarded else np.empty(0, np.uint16),
        5,
    )
    return ReplayResult(
        out=out,
        alerts=n,
        stats=th.stats(),
        storm_alerts=None if storm is None else int(storm.sum()),
        storm_discarded=storm_discarded,
        top_discarded=top,
        busy_s=busy,
    )


def _with_reports(cols: dict[str, npt.NDArray[Any]], reports: ThrottleReports) -> dict[str, npt.NDArray[Any]]:
    """A batch's log columns with the throttle's reports at window close among them (action
    ``reported``, no storm, no would-be discard), each before the alerts at or after its time."""
    n = len(reports)
    if not n:
        return cols
    extra = {
        "t_ns": reports.t_ns,
        "device": reports.device,
        "alert_code": reports.alert_code,
        "action": np.full(n, REPORTED, np.uint8),
        "throttled_count": reports.throttled_count,
        "sequence_id": reports.sequence_id,
        "storm": np.zeros(n, np.bool_),
        "would_throttle": np.zeros(n, np.bool_),
    }
    both = {name: np.concatenate([extra[name], col]) for name, col in cols.items()}
    order = np.argsort(both["t_ns"], kind="stable")
    return {name: col[order] for name, col in both.items()}


# ------------------------------------------------------------------------------ tuning
@dataclass(frozen=True)
class TuningRun:
    """A grid of settings run over one trace (:func:`tune`)."""

    #: one entry per setting, as in ``tuning.arrow``: threshold, window_s,
    #: designated_period_s, forwarded, discarded, excluded, near_limit, and with a storm
    #: column storm_alerts, storm_forwarded, storm_discarded, collateral, storms,
    #: storms_caught, median_catch_s (:func:`dccsim.throttle.sweep`)
    columns: dict[str, npt.NDArray[Any]]
    #: per setting: no other setting beats it on both storm discards and collateral
    #: (all False without a storm column)
    pareto: npt.NDArray[np.bool_]
    #: whether the trace has a ``storm`` column (and the storm scores and plot exist)
    has_storm: bool
    #: alerts in the trace
    alerts: int
    #: seconds the sweep took (after the kernels' warm-up)
    wall_s: float
    #: ``tuning.arrow``, written
    log: Path
    #: ``tuning.svg``, written when the trace has a storm column, else None
    plot: Path | None

    def __len__(self) -> int:
        return int(self.columns["threshold"].shape[0])


def pareto(columns: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.bool_]:
    """Settings no other setting beats on both storm alerts discarded and collateral.

    A setting is beaten when another discards at least as many storm alerts and at most as
    much collateral, and strictly better on one of the two; ``columns`` needs
    ``storm_discarded`` and ``collateral``.
    """
    y = columns["storm_discarded"]
    x = columns["collateral"]
    keep = np.ones(len(x), bool)
    for i in range(len(x)):
        better = (y >= y[i]) & (x <= x[i]) & ((y > y[i]) | (x < x[i]))
        keep[i] = not better.any()
    return keep


def split_grid(grid: TuningGrid, parts: int) -> list[TuningGrid]:
    """``grid`` cut into at least ``parts`` sub-grids (fewer only when it has fewer settings),
    along its slowest axes: their settings, one after another, are the grid's in its order."""
    import itertools

    import msgspec
    from dccsim.throttle.tuning import AXES

    axes = [getattr(grid, a) for a in AXES]
    prefix = 1
    for depth, values in enumerate(axes):
        if prefix * len(values) >= parts or depth == len(axes) - 1:
            groups = max(1, min(len(values), -(-parts // prefix)))
            cuts = [round(i * len(values) / groups) for i in range(groups + 1)]
            slices = [tuple(values[a:b]) for a, b in itertools.pairwise(cuts)]
            singles = [[(v,) for v in axes[i]] for i in range(depth)]
            return [msgspec.structs.replace(grid, **dict(zip(AXES, combo, strict=False)))
                    for combo in itertools.product(*singles, slices)]  # fmt: skip
        prefix *= len(values)
    return [grid]  # pragma: no cover - the loop returns at the last axis


def _tune_part(trace: Trace, job: tuple[TuningGrid, int]) -> dict[str, npt.NDArray[Any]]:
    """One task of :func:`tune`: a sub-grid over the trace, on one thread; its columns."""
    grid, max_keys = job
    return sweep(trace.t_ns, trace.device, trace.alert_code, grid, storm=trace.storm, workers=1,
                 max_keys=max_keys).columns  # fmt: skip


def _tune_tasks(
    trace: Trace, grid: TuningGrid, workers: int | None, backend: str, address: str | None, max_keys: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, npt.NDArray[Any]]:  # fmt: skip
    """The grid's columns, its parts run as tasks and joined in the grid's order."""
    from .tasks import TaskRunner, default_workers

    if workers is None and backend == "local":
        workers = default_workers()
    total = len(grid)
    if backend == "local" and workers == 1:  # in this process, with the sweep's own progress per pass
        if progress is not None:
            progress(0, total)
        return sweep(trace.t_ns, trace.device, trace.alert_code, grid, storm=trace.storm, workers=1,
                     max_keys=max_keys, progress=progress).columns  # fmt: skip

    def settings_done(done: int, n: int) -> None:
        if progress is not None:
            progress(done * total // n, total)

    with TaskRunner(backend, workers=workers, address=address, shared=trace) as runner:
        parts = split_grid(grid, runner.slots())
        results = runner.map(_tune_part, [(g, max_keys) for g in parts], progress=settings_done)
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def tune(
    trace: Trace,
    grid: TuningGrid,
    out: Path,
    *,
    config_path: Path,
    workers: int | None = None,
    max_keys: int = 1 << 24,
    progress: Callable[[int, int], None] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> TuningRun:
    """Run every setting of ``grid`` over ``trace`` and write ``out/tuning.arrow`` (and ``tuning.svg``).

    ``out`` is created if missing. The grid is cut into ``workers`` parts or more along its
    slowest axes (:func:`split_grid`), run side by side as tasks on ``backend``
    (:mod:`dccsim.bench.tasks`: local worker processes, default as many as the CPUs, which
    share the trace without copying it; or Ray tasks, at ``address``, reading it from the
    object store); one worker runs the whole grid in this process. Each setting's outcome does
    not depend on the others, so ``tuning.arrow`` is the same, byte for byte, whatever
    ``workers`` and ``backend``. The trace may hold at most ``max_keys`` (device, alert code)
    keys. ``progress(done, total)`` is called once with ``done = 0`` when the sweep starts
    (after the kernels' warm-up), then as settings finish. The log's metadata records the
    text of ``config_path`` (the grid file), the trace's seed, name and alerts.

    :class:`LogError` when ``out`` or a file in it cannot be written; a
    :class:`ThrottleError` from the sweep is raised with the trace's name before its text.
    """
    from .results.tuning_plot import tradeoff_svg

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogError(f"{out}: cannot create the folder ({exc.strerror})") from exc
    from dccsim.throttle.tuning import warm_up

    from .tasks import check_backend

    check_backend(backend, address)
    warm_up()
    t0 = time.perf_counter()
    try:
        cols = _tune_tasks(trace, grid, workers, backend, address, max_keys, progress)
    except ThrottleError as exc:
        raise _located(exc, str(trace.path)) from None
    wall = time.perf_counter() - t0
    has_storm = trace.storm is not None
    best = pareto(cols) if has_storm else np.zeros(len(grid), bool)
    cols["pareto"] = best  # a best trade-off (no setting forwards fewer storm alerts with less collateral)
    schema = pa.schema([pa.field(name, pa.from_numpy_dtype(a.dtype), nullable=False) for name, a in cols.items()])
    meta = _metadata(_config_text(config_path), trace, alerts=str(len(trace)))
    log = out / "tuning.arrow"
    try:
        with _replacing(log) as partial, ArrowLogWriter(partial, schema, meta, compression=None) as writer:
            writer.write_columns(**cols)
    except (LogError, OSError) as exc:
        raise _cannot_write(log, exc) from exc
    plot = None
    if has_storm:
        plot = out / "tuning.svg"
        svg = tradeoff_svg(cols, best, title=f"{trace.path.name}: {len(grid)} settings")
        try:
            with _replacing(plot) as partial:
                partial.write_text(svg, encoding="utf-8")
        except OSError as exc:
            raise LogError(f"{plot}: cannot write ({exc.strerror})") from exc
    return TuningRun(
        columns=cols, pareto=best, has_storm=has_storm, alerts=len(trace), wall_s=wall, log=log, plot=plot
    )
