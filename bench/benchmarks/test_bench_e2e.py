"""A whole small day, end to end: ``simulate("smoke")`` against a fixed machine yardstick.

A simulation has no second implementation to race, so its reference is a yardstick: a fixed
mix of NumPy (sorting, grouping) and plain-Python (dict counting) work of about the same
character. The ratio ``simulate / yardstick`` moves when the code gets slower or faster, and
much less when the machine does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dccsim.bench.cmd_run import simulate

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
def warmed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One run outside timing: compiles (or loads) every kernel and gives the expected totals."""
    return simulate(SCENARIO, out=tmp_path_factory.mktemp("warm"), progress=False, quiet=True)


def test_simulate_smoke_day(benchmark, warmed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "e2e"
    benchmark.extra_info.update(role="ours", scenario=SCENARIO)
    runs = iter(range(100))

    def one_day() -> dict[str, object]:
        return simulate(SCENARIO, out=tmp_path / f"run{next(runs)}", progress=False, quiet=True)

    summary = benchmark.pedantic(one_day, rounds=5, iterations=1)
    # the same scenario and seed give the same day
    assert (summary["requests"], summary["alerts"]) == (warmed["requests"], warmed["alerts"])
    assert summary["within_target_ratio"] == warmed["within_target_ratio"]
    benchmark.extra_info["events"] = int(summary["requests"]) + int(summary["alerts"])  # type: ignore[call-overload]


def test_yardstick(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "e2e"
    benchmark.extra_info["role"] = "reference"
    expected = yardstick()
    assert benchmark.pedantic(yardstick, rounds=5, iterations=1, warmup_rounds=1) == expected
