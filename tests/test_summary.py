"""The typed run summary: summary.json is its encoding, and merge() is exact."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest
from dccsim.bench.results.summary import RunParts, RunSummary, RunTally, SummaryError
from dccsim.bench.testing import drive, scenario
from dccsim.cache import CacheStats
from dccsim.core.catalogue import catalogue
from dccsim.core.records import AlertRows, RequestRows
from dccsim.throttle import ThrottleStats


@pytest.fixture(scope="module")
def day() -> tuple[RequestRows, AlertRows, int]:
    """A small day's rows, straight from the virtual-time driver (no files)."""
    run = scenario("smoke", scale=0.0002)
    sink, driver = drive(run)
    rows = sink.request_rows()
    assert len(rows) == driver.totals.requests > 1000
    return rows, sink.alert_rows(), run.scenario.day_start_ns


def _take(rows: RequestRows | AlertRows, keep: np.ndarray) -> RequestRows | AlertRows:
    return type(rows)(**{name: column[keep] for name, column in rows.columns().items()})


def _summary(tally: RunTally, **parts: object) -> RunSummary:
    return RunSummary.from_parts(RunParts(tally=tally, srvs=catalogue().srvs, **parts))  # type: ignore[arg-type]


def test_a_summary_with_nothing_measured_is_standard_json_with_nulls() -> None:
    empty = _summary(RunTally(0, len(catalogue().srvs)))

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(empty.to_json(), parse_constant=refuse)
    assert data["requests"] == 0 and data["within_target_ratio"] is None
    assert data["latency_s"] == dict.fromkeys(("p50", "p90", "p95", "p99", "p999", "max", "mean"))
    assert "parts" not in data and "run" not in data and "wallclock" not in data  # unset: absent
    odd = msgspec.structs.replace(empty, mean_wait_s=math.nan, wall_seconds=math.inf)
    assert json.loads(odd.to_json(), parse_constant=refuse)["mean_wait_s"] is None


def test_tallies_of_the_parts_merge_into_the_tally_of_the_whole(day: tuple[RequestRows, AlertRows, int]) -> None:
    rows, alerts, day0 = day
    n_srvs = len(catalogue().srvs)
    whole = RunTally(day0, n_srvs)
    whole.record_requests(rows)
    whole.record_alerts(alerts)
    # split by device, as shards are: each part keeps the rows' order
    parts = []
    for k in range(3):
        t = RunTally(day0, n_srvs)
        t.record_requests(_take(rows, rows.device % 3 == k))
        t.record_alerts(_take(alerts, alerts.device % 3 == k))
        parts.append(t)
    assert all(0 < p.requests < whole.requests for p in parts)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    a, b = _summary(merged).to_builtins(), _summary(whole).to_builtins()
    assert a == b
    # percentiles, peaks and per-device counts are among what must agree
    assert a["latency_s"]["p99"] is not None and a["series"]["peak_backlog"] == b["series"]["peak_backlog"]


def test_run_summaries_merge_their_statistics(day: tuple[RequestRows, AlertRows, int]) -> None:
    rows, alerts, day0 = day
    n_srvs = len(catalogue().srvs)
    halves = []
    for k in range(2):
        t = RunTally(day0, n_srvs)
        t.record_requests(_take(rows, rows.device % 2 == k))
        cache = CacheStats(hits=10 + k, misses=5, stores=5, resident=5, capacity=64, nbytes=64 * 40)
        throttle = ThrottleStats(forwarded=7, throttled=3 + k, keys=2, capacity=16, state_bytes=1280)
        halves.append(_summary(t, cache_stats=cache, throttle_stats=throttle, log_bytes=(100, 10)))
    merged = halves[0].merge(halves[1])
    assert merged.requests == len(rows)
    assert merged.cache is not None and merged.cache.hits == 21 and merged.cache.misses == 10
    assert merged.cache.hit_ratio == pytest.approx(21 / 31)
    assert merged.throttle is not None and merged.throttle.throttled == 7 and merged.throttle.forwarded == 14
    assert (merged.logs.requests_arrow_bytes, merged.logs.alerts_arrow_bytes) == (200, 20)


def test_summary_json_reads_back_as_the_same_document(day: tuple[RequestRows, AlertRows, int]) -> None:
    rows, alerts, day0 = day
    t = RunTally(day0, len(catalogue().srvs))
    t.record_requests(rows)
    t.record_alerts(alerts)
    summary = _summary(t)
    again = RunSummary.from_json(summary.to_json())
    assert again.to_builtins() == summary.to_builtins()
    assert again.latency_s.p99 == summary.latency_s.p99 and again.series.requests == summary.series.requests
    # read back, it holds percentiles, not histograms: merging it would not be exact
    with pytest.raises(SummaryError, match="histograms"):
        again.merge(summary)
    with pytest.raises(SummaryError, match=r"summary\.json: not a dccsim summary"):
        RunSummary.from_json(b'{"requests": "many"}')
