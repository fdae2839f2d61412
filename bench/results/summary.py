"""The run summary: a typed document with an exact ``merge()``, and the tally behind it.

Two layers:

- :class:`RunTally` holds what a run's sink accumulates, all of it mergeable exactly: counts
  (by response code, outcome, SRV, invalid kind, per 15-minute interval), latency histograms
  (per request class and per interval, fixed log-linear buckets), peaks (merged by maximum),
  and throttled alerts per device. Shards, workers and machines each keep one; ``merge()``
  adds them.
- :class:`RunSummary` is the typed ``summary.json`` document: its fields are the document's
  keys, grouped into sections (:class:`Latency`, :class:`ClassLatency`, :class:`Series`,
  :class:`CacheSection`, :class:`ThrottleSection`, :class:`RunInfo`, :class:`CriteriaSection`,
  ...). ``summary.json`` is its encoding (:meth:`RunSummary.to_json`); readers decode it with
  :meth:`RunSummary.from_json` and use the typed fields.

A summary built by a run also carries its :class:`RunParts` (the tally and the cache and
throttle statistics), not written to ``summary.json``: :meth:`RunSummary.merge` adds the
parts and derives the merged document from them, so counts, histograms and the percentiles
drawn from them are exact. A summary read back from ``summary.json`` holds percentiles, not
histograms, and cannot be merged (it says so).

Sections present only in some runs (``wallclock`` and ``server`` for the wall-clock commands,
``peak_rss_bytes`` for ``dccsim run``) are ``UNSET`` elsewhere and so absent from the file.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from dccsim.core.records import ALERT_ACTIONS, INVALID_KINDS, OUTCOMES, REQUEST_CLASSES, RESPONSE_CODES
from msgspec import UNSET, Struct, UnsetType

from .histogram import GroupedHistograms, IntervalHistograms, LatencyHistogram

__all__ = [
    "INTERVAL_NS",
    "SERIES_HOURS",
    "CacheSection",
    "ClassLatency",
    "CriteriaSection",
    "CriterionResult",
    "FutureDatedSection",
    "Latency",
    "LogSizes",
    "RunInfo",
    "RunParts",
    "RunSummary",
    "RunTally",
    "SrvLatency",
    "histograms_json",
    "Stage",
    "stages_section",
    "Series",
    "SummaryError",
    "ThrottleSection",
    "TopDevice",
]

NS = 1_000_000_000
#: the series' interval: 15 minutes
INTERVAL_NS = 15 * 60 * NS
#: series cover the day plus the spill-over of retries and late answers (one day; a run of
#: ``days`` days covers ``days x 24 + 12`` hours, :func:`series_intervals`)
SERIES_HOURS = 36


def series_intervals(days: int = 1) -> int:
    """Intervals of the series of a run of ``days`` days: ``days x 24 + 12`` hours of them."""
    return (days * 24 + SERIES_HOURS - 24) * 3600 * NS // INTERVAL_NS
_PCT = (50.0, 90.0, 95.0, 99.0, 99.9)
_THROTTLED = ALERT_ACTIONS.index("throttled")
_REPORTED = ALERT_ACTIONS.index("reported")
_CACHE, _DEVICE, _FAILED = OUTCOMES.index("cache"), OUTCOMES.index("device"), OUTCOMES.index("failed")
_I0, _I99 = RESPONSE_CODES.index("I0"), RESPONSE_CODES.index("I99")
_FUTURE_DATED = REQUEST_CLASSES.index("future_dated")
_FD_NOT_DONE = 0x8F67
_REFUSED, _SHED = OUTCOMES.index("refused"), OUTCOMES.index("shed")
#: the response codes that are no failure (a request answered or acknowledged)
_CODES_OK = np.isin(np.arange(len(RESPONSE_CODES)), [_I0, _I99])


class SummaryError(ValueError):
    """A summary that cannot be read or merged: says which and why."""


# ---------------------------------------------------------------------------- the tally


class RunTally:
    """What a run's sink accumulates from its rows; :meth:`merge` is exact.

    Parameters
    ----------
    day_start_ns:
        The start of the simulated day: interval 0 of the series starts there.
    n_srvs:
        The SRV catalogue's size (the ``srv`` codes run from 0 to ``n_srvs - 1``).
    days:
        The run's days: the series cover ``days x 24 + 12`` hours.
    """

    def __init__(self, day_start_ns: int, n_srvs: int, days: int = 1) -> None:
        self.day0 = int(day_start_ns)
        self.days = int(days)
        self.n_intervals = n = series_intervals(self.days)
        self.latency_by_class = [LatencyHistogram() for _ in REQUEST_CLASSES]
        self.latency_by_srv = GroupedHistograms(n_srvs)
        self.latency_series = IntervalHistograms(INTERVAL_NS, n, start_ns=self.day0)
        self.by_srv = np.zeros(n_srvs, np.int64)
        self.within_by_srv = np.zeros(n_srvs, np.int64)
        self.codes = np.zeros(len(RESPONSE_CODES), np.int64)
        self.outcomes = np.zeros(len(OUTCOMES), np.int64)
        self.invalid = np.zeros((len(INVALID_KINDS), len(RESPONSE_CODES)), np.int64)
        self.within = 0
        self.requests = 0
        self.retries = 0
        #: retries that got no answer (failed again): wasted device work, every retry to an
        #: out-of-contact device among them
        self.retries_unanswered = 0
        self.peak_backlog = 0
        self.wait_sum_ns = 0
        self.series_requests = np.zeros(n, np.int64)
        self.series_done = np.zeros(n, np.int64)
        self.series_backlog = np.zeros(n, np.int64)  # a peak per interval: merged by max
        self.series_cache = np.zeros(n, np.int64)
        self.series_device = np.zeros(n, np.int64)
        self.series_within = np.zeros(n, np.int64)
        self.alerts = 0
        self.actions = np.zeros(len(ALERT_ACTIONS), np.int64)
        self.series_actions = np.zeros((len(ALERT_ACTIONS), n), np.int64)
        self.storm_alerts = 0
        self.storm_forwarded = 0
        self.nonstorm_throttled = 0
        self.throttled_by_device: Counter[int] = Counter()
        # future-dated commands (CR1233): delivered ones (acknowledged I99) from the request
        # log; their responses, out of sequence, not done, and commands complete (a response
        # that is the command's last to arrive) from the audit trail, kept when ``fd_audited``
        self.fd_audited = False
        self.fd_commands = 0
        self.fd_responses = 0
        self.fd_out_of_sequence = 0
        self.fd_not_done = 0
        self.fd_complete = 0
        # DSP overload control: refused and shed requests per class, refused per interval
        self.refused_by_class = np.zeros(len(REQUEST_CLASSES), np.int64)
        self.shed_by_class = np.zeros(len(REQUEST_CLASSES), np.int64)
        self.series_refused = np.zeros(self.n_intervals, np.int64)
        self.series_failed = np.zeros(self.n_intervals, np.int64)

    def latency_histogram(self) -> LatencyHistogram:
        """The whole run's latency histogram: the sum of the per-class ones (exact)."""
        whole = LatencyHistogram()
        for h in self.latency_by_class:
            whole.merge(h)
        return whole

    def _interval(self, t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.clip((t - self.day0) // INTERVAL_NS, 0, self.n_intervals - 1)

    def record_requests(self, rows: Any) -> None:
        """Count a batch of request rows (:class:`~dccsim.core.records.RequestRows`), in
        scheduled order: one pass of a kernel for the counts and series, then the latency
        histograms (:meth:`record_requests_reference` is the whole-array definition)."""
        from ._kernels import tally_requests_kernel  # Numba: compiled by the first tally, not at import

        n = len(rows)
        self.requests += n
        lat = rows.latency_ns
        cls = rows.request_class
        by_class = np.zeros(len(REQUEST_CLASSES), np.int64)
        within, retries, unanswered, peak, wait_sum, fd = tally_requests_kernel(
            rows.t_scheduled_ns, rows.t_done_ns, cls, rows.srv, rows.response_code, rows.outcome, rows.invalid,
            rows.attempt, rows.within_target, rows.backlog, rows.wait_ns, self.day0, INTERVAL_NS, _CODES_OK,
            _FAILED, _CACHE, _DEVICE, _REFUSED, _SHED, _FUTURE_DATED, _I99, self.peak_backlog, by_class, self.by_srv,
            self.within_by_srv, self.codes, self.outcomes, self.invalid, self.series_requests, self.series_within,
            self.series_done, self.series_backlog, self.series_failed, self.series_cache, self.series_device,
            self.series_refused, self.refused_by_class, self.shed_by_class,
        )  # fmt: skip
        self.within += int(within)
        self.retries += int(retries)
        self.retries_unanswered += int(unanswered)
        self.peak_backlog = int(peak)
        self.wait_sum_ns += int(wait_sum)
        self.fd_commands += int(fd)
        present = np.flatnonzero(by_class)
        if len(present) == 1:
            self.latency_by_class[int(present[0])].record(lat)
        else:
            for k in present.tolist():
                self.latency_by_class[k].record(lat[cls == k])
        self.latency_series.record(rows.t_scheduled_ns, lat)
        self.latency_by_srv.record(lat, rows.srv)

    def record_alerts(self, rows: Any) -> None:
        """Count a batch of alert rows (:class:`~dccsim.core.records.AlertRows`): one pass of a
        kernel (:meth:`record_alerts_reference` is the whole-array definition)."""
        from ._kernels import tally_alerts_kernel

        before = int(self.actions[_REPORTED])
        storm, storm_forwarded, nonstorm_throttled, throttled = tally_alerts_kernel(
            rows.t_ns, rows.action, rows.storm, self.day0, INTERVAL_NS, _THROTTLED, self.actions, self.series_actions
        )
        # reports at window close (throttle.report_at_close) are the DCC's alerts, not a device's
        self.alerts += len(rows) - (int(self.actions[_REPORTED]) - before)
        self.storm_alerts += int(storm)
        self.storm_forwarded += int(storm_forwarded)
        self.nonstorm_throttled += int(nonstorm_throttled)
        if throttled:
            devs, counts = np.unique(rows.device[rows.action == _THROTTLED], return_counts=True)
            self.throttled_by_device.update(dict(zip(devs.tolist(), counts.tolist(), strict=True)))

    def record_requests_reference(self, rows: Any) -> None:
        """The plain NumPy definition of :meth:`record_requests` (whole-array passes), which a
        differential test compares the one-pass kernel with."""
        n = len(rows)
        self.requests += n
        lat = rows.latency_ns
        cls = rows.request_class
        if n and int(cls.min()) == int(cls.max()):
            self.latency_by_class[int(cls[0])].record(lat)
        else:
            for k in np.unique(cls).tolist():
                self.latency_by_class[k].record(lat[cls == k])
        self.latency_series.record(rows.t_scheduled_ns, lat)
        self.latency_by_srv.record(lat, rows.srv)
        within = rows.within_target
        self.within += int(within.sum())
        srv = rows.srv
        self.by_srv += np.bincount(srv, minlength=len(self.by_srv))
        self.within_by_srv += np.bincount(srv[within], minlength=len(self.by_srv))
        self.codes += np.bincount(rows.response_code, minlength=len(self.codes))
        self.outcomes += np.bincount(rows.outcome, minlength=len(self.outcomes))
        n_codes = self.invalid.shape[1]
        self.invalid += np.bincount(
            rows.invalid.astype(np.int64) * n_codes + rows.response_code, minlength=self.invalid.size
        ).reshape(self.invalid.shape)
        retry = rows.attempt > 0
        self.retries += int(retry.sum())
        self.retries_unanswered += int((retry & (rows.outcome == _FAILED)).sum())
        backlog = rows.backlog
        if n:
            self.peak_backlog = max(self.peak_backlog, int(backlog.max()))
        self.wait_sum_ns += int(rows.wait_ns.sum())
        self.fd_commands += int(((cls == _FUTURE_DATED) & (rows.response_code == _I99)).sum())
        iv = self._interval(rows.t_scheduled_ns)
        self.series_requests += np.bincount(iv, minlength=self.n_intervals)
        self.series_within += np.bincount(iv[within], minlength=self.n_intervals)
        self.series_done += np.bincount(self._interval(rows.t_done_ns), minlength=self.n_intervals)
        if n:  # iv never decreases within a chunk (rows are in scheduled order): one max per run
            starts = np.flatnonzero(np.r_[True, iv[1:] != iv[:-1]])
            peaks = np.maximum.reduceat(backlog, starts)
            self.series_backlog[iv[starts]] = np.maximum(self.series_backlog[iv[starts]], peaks)
        failed = (rows.response_code != _I0) & (rows.response_code != _I99)
        self.series_failed += np.bincount(iv[failed], minlength=self.n_intervals)
        out = rows.outcome
        self.series_cache += np.bincount(iv[out == _CACHE], minlength=self.n_intervals)
        self.series_device += np.bincount(iv[out == _DEVICE], minlength=self.n_intervals)
        refused, shed = out == _REFUSED, out == _SHED
        if refused.any() or shed.any():
            self.refused_by_class += np.bincount(cls[refused], minlength=len(REQUEST_CLASSES))
            self.shed_by_class += np.bincount(cls[shed], minlength=len(REQUEST_CLASSES))
            self.series_refused += np.bincount(iv[refused], minlength=self.n_intervals)

    def record_alerts_reference(self, rows: Any) -> None:
        """The plain NumPy definition of :meth:`record_alerts`."""
        action = rows.action
        counts = np.bincount(action, minlength=len(ALERT_ACTIONS))
        self.actions += counts
        # reports at window close (throttle.report_at_close) are the DCC's alerts, not a device's
        self.alerts += len(rows) - int(counts[_REPORTED])
        iv = self._interval(rows.t_ns)
        for a in range(len(ALERT_ACTIONS)):
            self.series_actions[a] += np.bincount(iv[action == a], minlength=self.n_intervals)
        storm = rows.storm
        throttled = action == _THROTTLED
        self.storm_alerts += int(storm.sum())
        self.storm_forwarded += int((storm & ~throttled).sum())
        self.nonstorm_throttled += int((~storm & throttled).sum())
        if throttled.any():
            devs, counts = np.unique(rows.device[throttled], return_counts=True)
            self.throttled_by_device.update(dict(zip(devs.tolist(), counts.tolist(), strict=True)))

    def record_audit(self, rows: Any) -> None:
        """Count a batch of audit rows (:class:`~dccsim.core.records.AuditRows`): future-dated
        responses."""
        self.fd_responses += len(rows)
        self.fd_out_of_sequence += int(rows.out_of_sequence.sum())
        self.fd_not_done += int((rows.alert_code == _FD_NOT_DONE).sum())
        self.fd_complete += int((rows.received == rows.total_instructions).sum())

    def merge(self, other: RunTally) -> RunTally:
        """Add ``other`` into this tally (exact: counts add, histograms add, peaks take the max)."""
        if other.day0 != self.day0 or len(other.by_srv) != len(self.by_srv) or other.days != self.days:
            raise SummaryError(
                f"merge: expected tallies of one day and one SRV catalogue, got day start {other.day0}, "
                f"{other.days} days and {len(other.by_srv)} SRVs against {self.day0}, {self.days} days "
                f"and {len(self.by_srv)}"
            )
        for mine, theirs in zip(self.latency_by_class, other.latency_by_class, strict=True):
            mine.merge(theirs)
        self.latency_series.merge(other.latency_series)
        self.latency_by_srv.merge(other.latency_by_srv)
        for name in ("by_srv", "within_by_srv", "codes", "outcomes", "invalid", "series_requests", "series_done",
                     "series_cache", "series_device", "series_within", "actions", "series_actions",
                     "refused_by_class", "shed_by_class", "series_refused", "series_failed"):  # fmt: skip
            getattr(self, name).__iadd__(getattr(other, name))
        for name in ("within", "requests", "retries", "retries_unanswered", "wait_sum_ns", "alerts", "storm_alerts",
                     "storm_forwarded", "nonstorm_throttled", "fd_commands", "fd_responses",
                     "fd_out_of_sequence", "fd_not_done", "fd_complete"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.fd_audited = self.fd_audited or other.fd_audited
        self.peak_backlog = max(self.peak_backlog, other.peak_backlog)
        np.maximum(self.series_backlog, other.series_backlog, out=self.series_backlog)
        self.throttled_by_device.update(other.throttled_by_device)
        return self


# ---------------------------------------------------------------------------- the document


class _Doc(Struct, kw_only=True):
    """A section of summary.json."""


class Latency(_Doc, kw_only=True):
    """Latency of every request, from its scheduled time (seconds; null when none)."""

    p50: float | None
    p90: float | None
    p95: float | None = None  # summaries before it have none
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None


class ClassLatency(_Doc, kw_only=True):
    """Latency of one request class."""

    requests: int
    p50_s: float
    p95_s: float | None = None  # summaries before it have none
    p99_s: float
    max_s: float


class SrvLatency(_Doc):
    """Latency of one SRV's requests (seconds)."""

    requests: int
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float


class TopDevice(_Doc):
    """A device among those with the most throttled alerts."""

    device: str
    throttled: int


class Series(_Doc):
    """Per-interval figures (15 minutes from the day's start)."""

    interval_s: int
    start_ns: int
    requests: list[int]
    responses: list[int]
    within_target: list[int]
    peak_backlog: list[int]
    cache_hits: list[int]
    device_requests: list[int]
    latency_p50_s: list[float | None]
    latency_p99_s: list[float | None]
    alerts: dict[str, list[int]]
    #: requests the DSP refused at admission, by scheduled interval
    refused: list[int] = []
    #: requests answered with an error code (not I0 or I99), by scheduled interval
    failed: list[int] = []


class LogSizes(_Doc):
    """Bytes of the run's logs."""

    requests_arrow_bytes: int
    alerts_arrow_bytes: int


class CacheSection(_Doc):
    """The readings cache: hits (each a device request saved), stores, expiries, memory."""

    hits: int | None = None
    misses: int | None = None
    hit_ratio: float | None = None
    device_requests_saved: int | None = None
    stores: int | None = None
    expired: int | None = None
    evicted: int | None = None
    resident: int | None = None
    bytes_per_entry: float | None = None
    retention_hours: float | None = None
    #: S1SP wake-ups (SMS) the hits on SMETS1 meters saved (from the comms leg)
    wakeups_saved: float | None = None

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], retention_h: float) -> CacheSection:
        """From the cache's statistics (``CacheStats.to_dict()`` or a server's stats reply)."""
        keys = ("hits", "misses", "hit_ratio", "stores", "expired", "evicted", "resident", "bytes_per_entry")
        return cls(
            **{k: stats.get(k) for k in keys}, device_requests_saved=stats.get("hits"), retention_hours=retention_h
        )


class CommsResource(_Doc):
    """One comms resource (a CSP region or the S1SP) over the run."""

    capacity_per_s: float
    requests: int
    timed_out: int
    cache_hits: int
    utilisation: float
    peak_queue: float
    peak_utilisation: float
    mean_wait_s: float
    max_wait_s: float


class CommsSection(_Doc):
    """The comms leg: each resource's load and queue, and the S1SP's wake-ups."""

    resources: dict[str, CommsResource]
    wakeups: float
    wakeups_saved: float


class ThrottleSection(_Doc):
    """Alert Storm Protection: actions, state table, and the policy used (``config``)."""

    alerts: int = 0
    forwarded: int = 0
    throttled: int = 0
    excluded: int = 0
    would_throttle: int = 0
    near_limit: int = 0
    keys: int = 0
    evicted: int = 0
    capacity: int = 0
    state_bytes: int = 0
    bytes_per_key: float = 0.0
    shards: int = 0
    #: discards no forwarded alert reported by the end of the run (ThrottledAlertCount never sent)
    unreported_discards: int = 0
    #: discards too old to attach to their key's next forwarded alert (throttle.max_report_age_s)
    stale_discards: int = 0
    #: synthetic alerts made when a key's window closed holding discards (throttle.report_at_close)
    reports_at_close: int = 0
    #: the discards those reports carried
    reported_at_close: int = 0
    config: dict[str, Any] = {}


class FutureDatedSection(_Doc):
    """Future-dated commands the devices held (CR1233): the responses they sent (one per
    instruction, ``audit.arrow``), the out-of-sequence ones, and commands still incomplete."""

    #: future-dated commands delivered: acknowledged (I99) in requests.arrow
    commands: int
    #: responses received (rows of audit.arrow)
    responses: int
    #: responses that arrived before a lower-numbered instruction of their command
    out_of_sequence: int
    #: responses reporting an instruction not done (FutureDatedAlertCode 8F67)
    not_done: int
    #: commands all of whose instructions had reported by the end of the run
    complete: int
    #: commands with instructions still to report at the end of the run
    incomplete: int


class Stage(_Doc):
    """Where a run spent its time: one stage's wall time summed over its chunks (stages run side
    by side on threads of their own, so the shares add up to more than 1), and its CPU time
    (its thread's; the build's, the whole process's), which leaves out the waits for a core
    that a busy machine adds to the wall time (absent in summaries written before it was kept)."""

    seconds: float
    rows: int
    ns_per_row: float | None
    share_of_wall: float | None
    cpu_seconds: float | None = None
    cpu_ns_per_row: float | None = None

    @classmethod
    def of(cls, seconds: float, rows: int, wall: float | None, cpu_seconds: float | None = None) -> Stage:
        seconds, rows = float(seconds), int(rows)
        return cls(
            seconds=round(seconds, 4),
            rows=rows,
            ns_per_row=round(seconds * 1e9 / rows, 1) if rows else None,
            share_of_wall=round(seconds / wall, 4) if wall else None,
            cpu_seconds=None if cpu_seconds is None else round(cpu_seconds, 4),
            cpu_ns_per_row=round(cpu_seconds * 1e9 / rows, 1) if rows and cpu_seconds is not None else None,
        )


def _sum_if_known(values: list[float | None]) -> float | None:
    """The sum, or None when any part is unknown (a merge never counts only part of a figure)."""
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def stages_section(times: Mapping[str, Mapping[str, Any]], wall: float | None) -> dict[str, Stage]:
    """The ``stages`` section from ``{stage: {"seconds", "rows"[, "cpu_seconds"]}}`` and the
    run's wall time."""
    return {k: Stage.of(v["seconds"], v["rows"], wall, v.get("cpu_seconds")) for k, v in times.items()}


class RunInfo(_Doc, omit_defaults=True):
    """What ran: version, scenario and its settings, DSP servers, chunks (virtual time) or
    mode (wall clock)."""

    dccsim_version: str
    scenario: str
    scale: float
    seed: int
    uplift: float
    demand: float
    shards: int
    day: str
    meters: int
    dsp_servers: int
    chunks: int | None = None
    mode: str | None = None


class CriterionResult(_Doc):
    """One exit criterion and its verdict (``actual`` null when not measured)."""

    expression: str
    path: str
    op: str
    threshold: float
    severity: int
    actual: float | None
    passed: bool


class CriteriaSection(_Doc):
    """The exit criteria's verdict (see :mod:`dccsim.bench.results.criteria`)."""

    passed: bool
    headline: str
    failed: int
    failures_by_severity: dict[str, int]
    thresholds: dict[str, int]
    criteria: list[CriterionResult]


@dataclass
class RunParts:
    """What a summary is derived from (kept in memory, not in summary.json): the tally, the
    cache and throttle statistics (mergeable), and the per-run settings of the sections."""

    tally: RunTally
    srvs: tuple[str, ...]
    cache_stats: Any = None  # dccsim.cache.CacheStats (or a stats mapping from a server)
    throttle_stats: Any = None  # dccsim.throttle.ThrottleStats
    comms_stats: Any = None  # dccsim.core.comms.CommsStats
    throttle_config: dict[str, Any] = field(default_factory=dict)
    retention_h: float = 48.0
    log_bytes: tuple[int, int] = (0, 0)


def _sorted(value: Any) -> Any:
    """``value`` with every dict's keys in sorted order, as summary.json writes them, so that a
    summary in memory and one read back list their tables alike."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return type(value)(_sorted(v) for v in value)
    return value


def _round6(x: float) -> float:
    return round(float(x), 6)


def _nan_none(x: float) -> float | None:
    x = float(x)
    return None if not math.isfinite(x) else x


class RunSummary(Struct, kw_only=True):
    """The typed summary.json document (see the module docstring)."""

    # totals
    requests: int
    alerts: int
    retries: int
    #: retries that got no answer either (wasted device work: all those to out-of-contact devices)
    retries_unanswered: int = 0
    # latency and target response times
    latency_s: Latency
    latency_by_class: dict[str, ClassLatency]
    #: latency by SRV (the SRVs the run saw)
    latency_by_srv: dict[str, SrvLatency] = {}
    within_target_ratio: float | None
    within_target_by_srv: dict[str, float]
    # codes and outcomes
    response_codes: dict[str, int]
    outcomes: dict[str, int]
    invalid_traffic: dict[str, dict[str, int]]
    # the DSP
    peak_backlog: int
    mean_wait_s: float
    #: DSP overload control: requests refused at admission and shed (caller timed out), by class
    refused_by_class: dict[str, int] = {}
    shed_by_class: dict[str, int] = {}
    # alerts and Alert Storm Protection
    alert_actions: dict[str, int]
    storm_alerts: int
    storm_alerts_forwarded: int
    nonstorm_alerts_throttled: int
    top_throttled_devices: list[TopDevice]
    series: Series
    logs: LogSizes
    cache: CacheSection | None = None
    throttle: ThrottleSection | None = None
    comms: CommsSection | None = None
    #: future-dated commands and their responses (CR1233): virtual-time runs only
    future_dated: FutureDatedSection | None = None
    # timings and run metadata
    wall_seconds: float | None = None
    events_per_second: float | None = None
    #: seconds spent compiling (first run) or loading the kernels, before wall_seconds starts
    compile_seconds: float | None = None
    #: time per stage of a virtual-time run (:data:`dccsim.loadgen.driver.STAGES`), in data-flow order
    stages: dict[str, Stage] | UnsetType = UNSET
    #: CPU time (user and system) of the whole process over ``wall_seconds``: the stages' and
    #: what no stage counts (Arrow's compression threads, the main thread between stages, the garbage
    #: collector); ``dccsim run``
    cpu_seconds: float | UnsetType = UNSET
    peak_rss_bytes: int | UnsetType = UNSET
    run: RunInfo | UnsetType = UNSET
    exit_criteria: CriteriaSection | UnsetType = UNSET
    # wall-clock runs only
    wallclock: dict[str, Any] | UnsetType = UNSET
    server: dict[str, Any] | None | UnsetType = UNSET
    #: what the document was derived from (in memory only; see :class:`RunParts`)
    parts: Any = UNSET

    # ------------------------------------------------------------------ building
    @classmethod
    def from_parts(cls, parts: RunParts, **sections: Any) -> RunSummary:
        """The document derived from ``parts``; ``sections`` sets the other fields (run,
        timings, wall-clock sections)."""
        t = parts.tally
        lat = t.latency_histogram()
        # plain floats throughout: msgspec encodes no NumPy scalars
        pct = lat.percentiles(list(_PCT)).tolist() if lat.count else [math.nan] * len(_PCT)
        by_class = {}
        for k, name in enumerate(REQUEST_CLASSES):
            h = t.latency_by_class[k]
            if h.count:
                p = h.percentiles([50.0, 95.0, 99.0]).tolist()
                by_class[name] = ClassLatency(
                    requests=h.count, p50_s=p[0] / NS, p95_s=p[1] / NS, p99_s=p[2] / NS, max_s=h.max / NS
                )
        by_srv = {}
        for code in t.latency_by_srv.groups():
            h = t.latency_by_srv.histogram(code)
            p = h.percentiles([50.0, 95.0, 99.0]).tolist()
            by_srv[parts.srvs[code]] = SrvLatency(
                requests=h.count, p50_s=p[0] / NS, p95_s=p[1] / NS, p99_s=p[2] / NS, max_s=h.max / NS
            )
        invalid = {}
        for k, name in enumerate(INVALID_KINDS):
            row = t.invalid[k]
            if k and row.sum():
                invalid[name] = {RESPONSE_CODES[c]: int(row[c]) for c in np.flatnonzero(row).tolist()}
        series_pct = t.latency_series.percentiles_per_interval([50.0, 99.0])
        used = int(np.flatnonzero(t.series_requests | t.series_done | t.series_actions.sum(0)).max(initial=0)) + 1
        series = Series(
            interval_s=INTERVAL_NS // NS,
            start_ns=t.day0,
            requests=t.series_requests[:used].tolist(),
            responses=t.series_done[:used].tolist(),
            within_target=t.series_within[:used].tolist(),
            peak_backlog=t.series_backlog[:used].tolist(),
            cache_hits=t.series_cache[:used].tolist(),
            device_requests=t.series_device[:used].tolist(),
            latency_p50_s=[None if np.isnan(v) else v / NS for v in series_pct[:used, 0].tolist()],
            latency_p99_s=[None if np.isnan(v) else v / NS for v in series_pct[:used, 1].tolist()],
            alerts=_sorted({ALERT_ACTIONS[a]: t.series_actions[a, :used].tolist() for a in range(len(ALERT_ACTIONS))}),
            refused=t.series_refused[:used].tolist() if t.series_refused.any() else [],
            failed=t.series_failed[:used].tolist(),
        )
        cache = None
        if parts.cache_stats is not None:
            stats = parts.cache_stats if isinstance(parts.cache_stats, Mapping) else parts.cache_stats.to_dict()
            cache = CacheSection.from_stats(stats, parts.retention_h) if stats else None
        comms = None
        if parts.comms_stats is not None:
            cs = parts.comms_stats
            comms = msgspec.convert(cs if isinstance(cs, Mapping) else cs.to_dict(), CommsSection)
            if cache is not None:
                cache = msgspec.structs.replace(cache, wakeups_saved=comms.wakeups_saved)
        throttle = None
        if parts.throttle_stats is not None:
            ts = parts.throttle_stats if isinstance(parts.throttle_stats, Mapping) else parts.throttle_stats.to_dict()
            config = _sorted(parts.throttle_config or ts.get("config", {}))
            throttle = msgspec.convert({**ts, "config": config}, ThrottleSection)
        return cls(
            requests=t.requests,
            alerts=t.alerts,
            retries=t.retries,
            retries_unanswered=t.retries_unanswered,
            latency_s=Latency(
                p50=_nan_none(pct[0] / NS), p90=_nan_none(pct[1] / NS), p95=_nan_none(pct[2] / NS),
                p99=_nan_none(pct[3] / NS), p999=_nan_none(pct[4] / NS), max=(lat.max / NS) if lat.count else None,
                mean=(lat.mean / NS) if lat.count else None,
            ),  # fmt: skip
            latency_by_class=_sorted(by_class),
            latency_by_srv=_sorted(by_srv),
            within_target_ratio=_round6(t.within / t.requests) if t.requests else None,
            within_target_by_srv=_sorted(
                {parts.srvs[i]: _round6(t.within_by_srv[i] / t.by_srv[i]) for i in np.flatnonzero(t.by_srv).tolist()}
            ),
            response_codes=_sorted({RESPONSE_CODES[c]: int(v) for c, v in enumerate(t.codes) if v}),
            outcomes=_sorted({OUTCOMES[c]: int(v) for c, v in enumerate(t.outcomes) if v}),
            invalid_traffic=_sorted(invalid),
            peak_backlog=t.peak_backlog,
            mean_wait_s=t.wait_sum_ns / NS / max(t.requests, 1),
            refused_by_class={REQUEST_CLASSES[k]: int(v) for k, v in enumerate(t.refused_by_class) if v},
            shed_by_class={REQUEST_CLASSES[k]: int(v) for k, v in enumerate(t.shed_by_class) if v},
            alert_actions=_sorted({ALERT_ACTIONS[a]: int(v) for a, v in enumerate(t.actions)}),
            storm_alerts=t.storm_alerts,
            storm_alerts_forwarded=t.storm_forwarded,
            nonstorm_alerts_throttled=t.nonstorm_throttled,
            top_throttled_devices=[
                TopDevice(device=f"{d:016X}", throttled=c)
                for d, c in sorted(t.throttled_by_device.items(), key=lambda dc: (-dc[1], dc[0]))[:10]
            ],
            future_dated=FutureDatedSection(
                commands=t.fd_commands, responses=t.fd_responses, out_of_sequence=t.fd_out_of_sequence,
                not_done=t.fd_not_done, complete=t.fd_complete, incomplete=t.fd_commands - t.fd_complete,
            ) if t.fd_audited else None,  # fmt: skip
            series=series,
            logs=LogSizes(requests_arrow_bytes=parts.log_bytes[0], alerts_arrow_bytes=parts.log_bytes[1]),
            cache=cache,
            throttle=throttle,
            comms=comms,
            parts=parts,
            **sections,
        )

    # ------------------------------------------------------------------ merging
    def merge(self, *others: RunSummary) -> RunSummary:
        """One summary of this run and ``others`` (shards, workers, replicates of one day).

        Counts, series and histograms add exactly and the document is derived again from the
        sum; the cache and throttle statistics merge by their own ``merge()``; peaks take the
        maximum (the whole run's peak when the parts are device shards of one run). Timings
        add (the total work); ``run`` is this summary's; exit criteria, memory, events per
        second and wall-clock sections are not carried over. Summaries read back from
        summary.json hold no histograms: merging them raises :class:`SummaryError`.
        """
        all_ = (self, *others)
        if any(s.parts is UNSET for s in all_):
            raise SummaryError(
                "merge: a summary read from summary.json holds percentiles, not histograms; "
                "merge the summaries of the runs themselves (RunResult.summary)"
            )
        first: RunParts = self.parts
        tally = RunTally(first.tally.day0, len(first.srvs), days=first.tally.days)
        for s in all_:
            tally.merge(s.parts.tally)
        cache = _merge_stats([s.parts.cache_stats for s in all_])
        throttle = _merge_stats([s.parts.throttle_stats for s in all_])
        parts = RunParts(
            tally=tally, srvs=first.srvs, cache_stats=cache, throttle_stats=throttle,
            comms_stats=_merge_stats([s.parts.comms_stats for s in all_]),
            throttle_config=first.throttle_config, retention_h=first.retention_h,
            log_bytes=(sum(s.parts.log_bytes[0] for s in all_), sum(s.parts.log_bytes[1] for s in all_)),
        )  # fmt: skip
        wall = [s.wall_seconds for s in all_ if s.wall_seconds is not None]
        total = round(sum(wall), 3) if wall else None
        by_stage: dict[str, list[Stage]] = {}
        for s in all_:
            for k, st in (s.stages or {}).items():
                by_stage.setdefault(k, []).append(st)
        stages = {
            k: {
                "seconds": sum(st.seconds for st in sts),
                "rows": sum(st.rows for st in sts),
                "cpu_seconds": _sum_if_known([st.cpu_seconds for st in sts]),
            }
            for k, sts in by_stage.items()
        }
        extra: dict[str, Any] = {"stages": stages_section(stages, total)} if stages else {}
        if all(isinstance(s.cpu_seconds, float | int) for s in all_):
            extra["cpu_seconds"] = round(sum(float(s.cpu_seconds) for s in all_), 3)  # type: ignore[arg-type]
        return RunSummary.from_parts(parts, wall_seconds=total, run=self.run, **extra)

    # ------------------------------------------------------------------ reading and writing
    def to_builtins(self) -> dict[str, Any]:
        """The document as JSON data: what summary.json holds (NaN as null)."""
        data = msgspec.to_builtins(msgspec.structs.replace(self, parts=UNSET), enc_hook=_numpy_scalar)
        return _no_nan(data)

    def to_json(self) -> str:
        """summary.json's text: standard JSON, keys sorted, null where nothing was measured."""
        return json.dumps(self.to_builtins(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "summary.json") -> RunSummary:
        """Decode a summary.json; :class:`SummaryError` naming the file and the field otherwise."""
        try:
            return msgspec.json.decode(text, type=cls)
        except msgspec.DecodeError as exc:
            raise SummaryError(f"{source}: not a dccsim summary ({exc})") from None

    def with_criteria(self, data: Mapping[str, Any]) -> RunSummary:
        """A copy with ``exit_criteria`` set from the verdict's JSON data."""
        return msgspec.structs.replace(self, exit_criteria=msgspec.convert(data, CriteriaSection))


def _merge_stats(stats: Iterable[Any]) -> Any:
    items = [s for s in stats if s is not None]
    if not items:
        return None
    if any(isinstance(s, Mapping) for s in items):
        if len(items) > 1:
            raise SummaryError("merge: statistics received as plain data (a server's reply) cannot be merged")
        return items[0]
    return items[0].merge(*items[1:])


def _numpy_scalar(value: Any) -> Any:
    """NumPy scalars in the free-form sections (``wallclock``, ``server``) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"summary: cannot encode a {type(value).__name__} ({value!r})")


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def histograms_json(parts: RunParts) -> str:
    """``histograms.json`` of a run: its latency histograms, whole-run, per request class and
    per SRV (:meth:`LatencyHistogram.to_dict`, non-empty buckets only), so any percentile can be
    judged after the run (``dccsim check``) and runs merged exactly."""
    t = parts.tally
    doc = {
        "format": "dccsim.run_histograms",
        "version": 1,
        "all": t.latency_histogram().to_dict(),
        "classes": {name: h.to_dict() for name, h in zip(REQUEST_CLASSES, t.latency_by_class, strict=True) if h.count},
        "srvs": {parts.srvs[g]: t.latency_by_srv.histogram(g).to_dict() for g in t.latency_by_srv.groups()},
    }
    return json.dumps(doc, separators=(",", ":")) + "\n"
