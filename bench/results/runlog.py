"""The run folder: a sink that writes a run's Arrow logs and accumulates its summary.

:class:`RunSink` is what ``dccsim run`` hands the virtual-time driver (a
:class:`~dccsim.core.records.LogSink`; ``dccsim serve`` and ``dccsim load`` use it too). It writes
``requests.arrow`` and ``alerts.arrow`` as it goes (a killed run leaves readable prefixes),
and keeps only fixed-size accumulators: latency histograms (whole day and per interval),
counts by response code, outcome, SRV and class, backlog and cache hits per interval, throttle
actions per interval and per storm device. :meth:`RunSink.summary` turns them into the
``summary.json`` document.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import catalogue
from dccsim.core.records import (
    ALERT_ACTIONS,
    INVALID_KINDS,
    OUTCOMES,
    REQUEST_CLASSES,
    RESPONSE_CODES,
    AlertRows,
    RequestRows,
)

from .histogram import IntervalHistograms, LatencyHistogram
from .logs import ALERTS_SCHEMA, REQUESTS_SCHEMA, ArrowLogWriter, run_metadata

__all__ = ["RunSink", "INTERVAL_NS", "SERIES_HOURS"]

NS = 1_000_000_000
INTERVAL_NS = 15 * 60 * NS
#: series cover the day plus the spill-over of retries and late answers
SERIES_HOURS = 36
_N_INTERVALS = SERIES_HOURS * 3600 * NS // INTERVAL_NS
_PCT = (50.0, 90.0, 99.0, 99.9)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def summary_json(summary: dict[str, Any]) -> str:
    """summary.json's text: standard JSON, with null where nothing was measured (NaN)."""
    return json.dumps(_no_nan(summary), indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def write_verdict(out: Path, summary: dict[str, Any], criteria: Any) -> Any:
    """Judge ``criteria`` on ``summary``, then write summary.json and report.html into ``out``;
    returns the result. A criterion whose path the summary lacks still leaves both files (the
    run is kept), then raises its :class:`CriteriaError` saying so."""
    from .criteria import CriteriaError, evaluate, to_dict
    from .report import build_report

    try:
        result = evaluate(summary, criteria)
    except CriteriaError as exc:
        (out / "summary.json").write_text(summary_json(summary))
        build_report(out)
        raise CriteriaError(f"{exc} (the run is kept in {out}/)") from None
    summary["exit_criteria"] = to_dict(result)
    (out / "summary.json").write_text(summary_json(summary))
    build_report(out)
    return result


class RunSink:
    """Writes the logs of one run and keeps the figures the summary and report need."""

    def __init__(
        self,
        out_dir: Path,
        scenario_text: str,
        seed: int,
        day_start_ns: int,
        compression: str | None = "lz4",
        extra_metadata: dict[str, str] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        meta = run_metadata(scenario_text, seed, **(extra_metadata or {}))
        cat = catalogue()
        self.srvs = cat.srvs
        # the dictionary columns take the records' vocabularies (the writer's default)
        self.req_log = ArrowLogWriter(self.out_dir / "requests.arrow", REQUESTS_SCHEMA, meta, compression=compression)  # type: ignore[arg-type]
        self.alert_log = ArrowLogWriter(self.out_dir / "alerts.arrow", ALERTS_SCHEMA, meta, compression=compression)  # type: ignore[arg-type]
        # compression runs on worker threads, beside the simulation (2 cores: it pays)
        self.req_log.start_background()
        self.alert_log.start_background()
        self.day0 = day_start_ns
        self.latency_by_class = [LatencyHistogram() for _ in REQUEST_CLASSES]
        self.latency_series = IntervalHistograms(INTERVAL_NS, _N_INTERVALS, start_ns=day_start_ns)
        n_srv = len(cat.srvs)
        self.by_srv = np.zeros(n_srv, np.int64)
        self.within_by_srv = np.zeros(n_srv, np.int64)
        self.codes = np.zeros(len(RESPONSE_CODES), np.int64)
        self.outcomes = np.zeros(len(OUTCOMES), np.int64)
        self.invalid = np.zeros((len(INVALID_KINDS), len(RESPONSE_CODES)), np.int64)
        self.within = 0
        self.requests_n = 0
        self.retries = 0
        self.peak_backlog = 0
        self.wait_sum_ns = 0
        self.series_requests = np.zeros(_N_INTERVALS, np.int64)
        self.series_done = np.zeros(_N_INTERVALS, np.int64)
        self.series_backlog = np.zeros(_N_INTERVALS, np.int64)
        self.series_cache = np.zeros(_N_INTERVALS, np.int64)
        self.series_device = np.zeros(_N_INTERVALS, np.int64)
        self.series_within = np.zeros(_N_INTERVALS, np.int64)
        self.alerts_n = 0
        self.actions = np.zeros(len(ALERT_ACTIONS), np.int64)
        self.series_actions = np.zeros((len(ALERT_ACTIONS), _N_INTERVALS), np.int64)
        self.storm_alerts = 0
        self.storm_forwarded = 0
        self.nonstorm_throttled = 0
        self.throttled_by_device: Counter[int] = Counter()
        self.fd_alerts = 0
        self.progress_callback = None

    # ------------------------------------------------------------------ sink protocol
    def _interval(self, t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.clip((t - self.day0) // INTERVAL_NS, 0, _N_INTERVALS - 1)

    def requests(self, rows: RequestRows) -> None:
        self.req_log.write_rows(rows)
        n = len(rows)
        self.requests_n += n
        lat = rows.latency_ns
        cls = rows.request_class
        if n and int(cls.min()) == int(cls.max()):
            self.latency_by_class[int(cls[0])].record(lat)
        else:
            for k in np.unique(cls).tolist():
                self.latency_by_class[k].record(lat[cls == k])
        self.latency_series.record(rows.t_scheduled_ns, lat)
        within = rows.within_target
        self.within += int(within.sum())
        srv = rows.srv
        self.by_srv += np.bincount(srv, minlength=len(self.by_srv))
        self.within_by_srv += np.bincount(srv[within], minlength=len(self.by_srv))
        self.codes += np.bincount(rows.response_code, minlength=len(self.codes))
        self.outcomes += np.bincount(rows.outcome, minlength=len(self.outcomes))
        inv = rows.invalid
        n_codes = self.invalid.shape[1]
        self.invalid += np.bincount(
            inv.astype(np.int64) * n_codes + rows.response_code, minlength=self.invalid.size
        ).reshape(self.invalid.shape)
        self.retries += int((rows.attempt > 0).sum())
        backlog = rows.backlog
        if n:
            self.peak_backlog = max(self.peak_backlog, int(backlog.max()))
        self.wait_sum_ns += int(rows.wait_ns.sum())
        iv = self._interval(rows.t_scheduled_ns)
        self.series_requests += np.bincount(iv, minlength=_N_INTERVALS)
        self.series_within += np.bincount(iv[within], minlength=_N_INTERVALS)
        self.series_done += np.bincount(self._interval(rows.t_done_ns), minlength=_N_INTERVALS)
        if n:  # iv never decreases within a chunk (rows are in scheduled order): one max per run
            starts = np.flatnonzero(np.r_[True, iv[1:] != iv[:-1]])
            peaks = np.maximum.reduceat(backlog, starts)
            self.series_backlog[iv[starts]] = np.maximum(self.series_backlog[iv[starts]], peaks)
        out = rows.outcome
        self.series_cache += np.bincount(iv[out == OUTCOMES.index("cache")], minlength=_N_INTERVALS)
        self.series_device += np.bincount(iv[out == OUTCOMES.index("device")], minlength=_N_INTERVALS)

    def alerts(self, rows: AlertRows) -> None:
        self.alert_log.write_rows(rows)
        n = len(rows)
        self.alerts_n += n
        action = rows.action
        self.actions += np.bincount(action, minlength=len(ALERT_ACTIONS))
        iv = self._interval(rows.t_ns)
        for a in range(len(ALERT_ACTIONS)):
            self.series_actions[a] += np.bincount(iv[action == a], minlength=_N_INTERVALS)
        storm = rows.storm
        throttled = action == ALERT_ACTIONS.index("throttled")
        self.storm_alerts += int(storm.sum())
        self.storm_forwarded += int((storm & ~throttled).sum())
        self.nonstorm_throttled += int((~storm & throttled).sum())
        if throttled.any():
            devs, counts = np.unique(rows.device[throttled], return_counts=True)
            self.throttled_by_device.update(dict(zip(devs.tolist(), counts.tolist(), strict=True)))
        fd = rows.total_instructions > 0
        self.fd_alerts += int(fd.sum())

    def progress(self, done_ns: int, end_ns: int) -> None:
        if self.progress_callback is not None:
            self.progress_callback(done_ns - self.day0, end_ns - self.day0, self.requests_n + self.alerts_n)

    def close(self) -> None:
        self.req_log.close()
        self.alert_log.close()

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """Everything summary.json holds except run metadata, cache and throttle (the caller's)."""
        lat = LatencyHistogram()  # the whole day: the sum of the per-class histograms (exact)
        for h in self.latency_by_class:
            lat.merge(h)
        pct = lat.percentiles(list(_PCT)) if lat.count else [float("nan")] * 4
        srv_ratio = {
            self.srvs[i]: round(self.within_by_srv[i] / self.by_srv[i], 6) for i in np.flatnonzero(self.by_srv).tolist()
        }
        by_class = {}
        for k, name in enumerate(REQUEST_CLASSES):
            h = self.latency_by_class[k]
            if h.count:
                p = h.percentiles([50.0, 99.0])
                by_class[name] = {"requests": h.count, "p50_s": p[0] / NS, "p99_s": p[1] / NS, "max_s": h.max / NS}
        invalid = {}
        for k, name in enumerate(INVALID_KINDS):
            if k == 0:
                continue
            row = self.invalid[k]
            if row.sum():
                invalid[name] = {RESPONSE_CODES[c]: int(row[c]) for c in np.flatnonzero(row).tolist()}
        series_pct = self.latency_series.percentiles_per_interval([50.0, 99.0])
        used = (
            int(np.flatnonzero(self.series_requests | self.series_done | self.series_actions.sum(0)).max(initial=0)) + 1
        )
        return {
            "requests": self.requests_n,
            "alerts": self.alerts_n,
            "latency_s": {
                "p50": pct[0] / NS,
                "p90": pct[1] / NS,
                "p99": pct[2] / NS,
                "p999": pct[3] / NS,
                "max": (lat.max / NS) if lat.count else float("nan"),
                "mean": (lat.mean / NS) if lat.count else float("nan"),
            },
            "latency_by_class": by_class,
            "within_target_ratio": round(self.within / self.requests_n, 6) if self.requests_n else float("nan"),
            "within_target_by_srv": srv_ratio,
            "response_codes": {RESPONSE_CODES[c]: int(v) for c, v in enumerate(self.codes) if v},
            "outcomes": {OUTCOMES[c]: int(v) for c, v in enumerate(self.outcomes) if v},
            "invalid_traffic": invalid,
            "retries": self.retries,
            "peak_backlog": self.peak_backlog,
            "mean_wait_s": self.wait_sum_ns / NS / max(self.requests_n, 1),
            "alert_actions": {ALERT_ACTIONS[a]: int(v) for a, v in enumerate(self.actions)},
            "storm_alerts": self.storm_alerts,
            "storm_alerts_forwarded": self.storm_forwarded,
            "nonstorm_alerts_throttled": self.nonstorm_throttled,
            "top_throttled_devices": [
                {"device": f"{d:016X}", "throttled": c} for d, c in self.throttled_by_device.most_common(10)
            ],
            "future_dated_alerts": self.fd_alerts,
            "series": {
                "interval_s": INTERVAL_NS // NS,
                "start_ns": self.day0,
                "requests": self.series_requests[:used].tolist(),
                "responses": self.series_done[:used].tolist(),
                "within_target": self.series_within[:used].tolist(),
                "peak_backlog": self.series_backlog[:used].tolist(),
                "cache_hits": self.series_cache[:used].tolist(),
                "device_requests": self.series_device[:used].tolist(),
                "latency_p50_s": [None if np.isnan(v) else v / NS for v in series_pct[:used, 0]],
                "latency_p99_s": [None if np.isnan(v) else v / NS for v in series_pct[:used, 1]],
                "alerts": {ALERT_ACTIONS[a]: self.series_actions[a, :used].tolist() for a in range(len(ALERT_ACTIONS))},
            },
            "logs": {
                "requests_arrow_bytes": os.path.getsize(self.req_log.path),
                "alerts_arrow_bytes": os.path.getsize(self.alert_log.path),
            },
        }
