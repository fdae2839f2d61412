"""A whole small day, end to end: ``simulate("smoke")`` against a fixed machine yardstick.

A simulation has no second implementation to race, so its reference is a yardstick: a fixed
mix of NumPy (sorting, grouping) and plain-Python (dict counting) work of about the same
character. The ratio ``simulate / yardstick`` moves when the code gets slower or faster, and
much less when the machine does. Whole days take long enough for a shared machine's load to
change between two benchmarks, so the yardstick also runs (three times, untimed by
pytest-benchmark) before each round of the day, and the ratio of the fastest day to the
fastest yardstick over that same stretch is what gets compared (``extra_info["paired_ratio"]``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from dccsim.bench.compose import simulate
from dccsim.bench.results.summary import RunSummary

SCENARIO = "smoke"


def yardstick() -> int:
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 50_000, 400_000)
    order = np.argsort(keys, kind="stable")
    _, counts = np.unique(keys[order], return_counts=True)
    tally: dict[int, int] = {}
    for k in keys[:150_000].tolist():
        tally[k] = tally.get(k, 0) + 1
    return int(counts.sum()) + len(tally)


@pytest.fixture(scope="module")
def warmed(tmp_path_factory: pytest.TempPathFactory) -> RunSummary:
    """One run outside timing: compiles (or loads) every kernel and gives the expected totals."""
    return simulate(SCENARIO, out=tmp_path_factory.mktemp("warm")).summary


def test_simulate_smoke_day(benchmark, warmed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "e2e"
    benchmark.extra_info.update(role="ours", scenario=SCENARIO)
    runs = iter(range(100))
    yard_s: list[float] = []

    def time_yardstick() -> None:
        # untimed set-up of each round: the yardstick, a few times, right before the day, so
        # that both are sampled over the same stretch of a shared machine's changing load
        for _ in range(3):
            t0 = time.perf_counter()
            yardstick()
            yard_s.append(time.perf_counter() - t0)

    def one_day() -> RunSummary:
        return simulate(SCENARIO, out=tmp_path / f"run{next(runs)}").summary

    summary = benchmark.pedantic(one_day, setup=time_yardstick, rounds=7, iterations=1)
    # the same scenario and seed give the same day
    assert (summary.requests, summary.alerts) == (warmed.requests, warmed.alerts)
    assert summary.within_target_ratio == warmed.within_target_ratio
    benchmark.extra_info["events"] = summary.requests + summary.alerts
    days = list(benchmark.stats.stats.data)
    # fastest of each over the same window: load only ever adds time
    benchmark.extra_info["paired_ratio"] = min(days) / min(yard_s)
    benchmark.extra_info["day_s"] = [round(d, 4) for d in days]
    benchmark.extra_info["yardstick_s"] = [round(y, 4) for y in yard_s]


@pytest.mark.reference
def test_yardstick(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "e2e"
    benchmark.extra_info["role"] = "reference"
    expected = yardstick()
    assert benchmark.pedantic(yardstick, rounds=5, iterations=1, warmup_rounds=1) == expected
