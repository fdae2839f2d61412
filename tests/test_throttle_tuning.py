"""The tuning sweep: its figures equal one ``Throttle`` per setting, scored by brute force.

The sweep numbers keys once and runs several settings side by side per pass; none of that
may show in the results. Storm scores are recomputed here from per-alert outputs in plain
Python (first discard of each storm key, median delay).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from dccsim.throttle import (
    POLICIES,
    CodeOverride,
    Throttle,
    ThrottleConfigError,
    ThrottleInputError,
    ThrottlePolicy,
    TuningGrid,
    parse_grid,
    storm_ids,
    sweep,
)
from hypothesis import given, settings
from hypothesis import strategies as st

S = 1_000_000_000


def _unreported(d, c, out) -> int:  # type: ignore[no-untyped-def]
    """Discards after each key's last forwarded alert, alert by alert (a forward reports the
    key's discards so far in its throttled count)."""
    pending: dict[tuple[int, int], int] = {}
    for i in range(len(d)):
        key = (int(d[i]), int(c[i]))
        if out.action[i] == 2:  # excluded: no state, reports nothing
            continue
        if out.would_throttle[i]:
            pending[key] = pending.get(key, 0) + 1
        else:
            assert out.throttled_count[i] == pending.get(key, 0)
            pending[key] = 0
    return sum(pending.values())


def brute_force(t, d, c, storm, policy: ThrottlePolicy) -> dict[str, float]:
    """The scores of one setting, from a throttle's per-alert outputs, in plain Python."""
    th = Throttle(policy, initial_keys=1)
    out = th.process(t, d, c)
    disc = out.would_throttle
    row: dict[str, float] = {
        "forwarded": int((~disc & (out.action != 2)).sum()),
        "discarded": int(disc.sum()),
        "excluded": int((out.action == 2).sum()),
        "near_limit": th.stats().near_limit,
    }
    if not policy.report_at_close:
        row["unreported_discards"] = _unreported(d, c, out)
    elif len(t):  # the trace ends at its last alert: windows closed by then report
        th.take_reports(int(t[-1]))
        row["unreported_discards"] = th.stats().unreported_discards
    else:
        row["unreported_discards"] = 0
    if storm is not None:
        first: dict[tuple[int, int], int] = {}
        catch: dict[tuple[int, int], int] = {}
        for i in range(len(t)):
            if storm[i]:
                key = (int(d[i]), int(c[i]))
                first.setdefault(key, int(t[i]))
                if disc[i]:
                    catch.setdefault(key, int(t[i]))
        delays = [(catch[k] - first[k]) / S for k in catch]
        row.update(
            storm_forwarded=int((storm & ~disc).sum()),
            storm_discarded=int((storm & disc).sum()),
            collateral=int((~storm & disc).sum()),
            storms=len(first),
            storms_caught=len(catch),
            median_catch_s=statistics.median(delays) if delays else math.nan,
        )
    return row


def check(result, t, d, c, storm, grid: TuningGrid) -> None:
    rows = result.rows()
    assert len(rows) == len(grid)
    for row, policy in zip(rows, grid.settings(), strict=True):
        assert (row["threshold"], row["window_s"], row["designated_period_s"]) == (
            policy.threshold,
            policy.window_s,
            policy.designated_period_s,
        )
        assert row["forwarded"] + row["discarded"] + row["excluded"] == len(t)  # as dccsim throttle counts
        for name, want in brute_force(t, d, c, storm, policy).items():
            got = row[name]
            if isinstance(want, float) and math.isnan(want):
                assert math.isnan(got), name
            else:
                assert got == pytest.approx(want, rel=0, abs=1e-9), (name, policy)


def trace(rng: np.random.Generator, n: int, devices: int = 12):
    t = np.sort(rng.integers(0, n * 2, n)).astype(np.int64) * (S // 10)
    d = rng.integers(0, devices, n).astype(np.uint64) * np.uint64(0x0101_0101_0101)
    c = np.array([0x8F84, 0x8F75, 0x8F12, 0x8F35], np.uint16)[rng.integers(0, 4, n)]
    storm = ((d == d[:1]) & (c == c[:1]) if n else np.zeros(0, bool)) | (rng.random(n) < 0.05)
    return t, d, c, storm


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(POLICIES),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    pass_bytes=st.sampled_from([1, 10_000, 1 << 30]),
    workers=st.sampled_from([1, 2]),
    with_storm=st.booleans(),
    at_close=st.booleans(),
)
def test_sweep_equals_one_throttle_per_setting(
    kind, seed, n, pass_bytes, workers, with_storm, at_close
) -> None:
    rng = np.random.default_rng(seed)
    t, d, c, storm = trace(rng, n)
    base = ThrottlePolicy(
        policy=kind, exclude=("8F75",), overrides={"8F12": CodeOverride(threshold=1, window_s=7.0)},
        report_at_close=at_close,
    )
    grid = TuningGrid(
        base=base, threshold=(1, 3), window_s=(2.0, 30.0), designated_period_s=(0.0, 5.0)
    )
    result = sweep(
        t, d, c, grid, storm=storm if with_storm else None, workers=workers, pass_bytes=pass_bytes
    )
    check(result, t, d, c, storm if with_storm else None, grid)


def test_storm_ids_group_storm_alerts_by_key() -> None:
    t = np.arange(6, dtype=np.int64)
    d = np.array([5, 5, 9, 5, 9, 5], np.uint64)
    c = np.array([1, 2, 1, 1, 1, 1], np.uint16)
    storm = np.array([True, True, False, True, True, False])
    ids, start = storm_ids(t, d, c, storm)
    # keys in (device, code) order: (5, 1) -> 0, (5, 2) -> 1, (9, 1) -> 2
    assert ids.tolist() == [0, 1, -1, 0, 2, -1]
    assert start.tolist() == [0, 1, 4]


def test_progress_reaches_the_total(rng: np.random.Generator) -> None:
    t, d, c, storm = trace(rng, 200)
    grid = TuningGrid(
        base=ThrottlePolicy(), threshold=(1, 2, 3), window_s=(10.0,), designated_period_s=(0.0, 1.0)
    )
    seen: list[tuple[int, int]] = []
    sweep(
        t,
        d,
        c,
        grid,
        storm=storm,
        workers=2,
        pass_bytes=1,
        progress=lambda a, b: seen.append((a, b)),
    )
    assert sorted(seen)[-1] == (6, 6) and len(seen) == 6


def test_sweep_rejects_bad_input() -> None:
    grid = TuningGrid(
        base=ThrottlePolicy(), threshold=(1,), window_s=(10.0,), designated_period_s=(0.0,)
    )
    t = np.array([3, 2], np.int64)
    d = np.ones(2, np.uint64)
    c = np.ones(2, np.uint16)
    with pytest.raises(ThrottleInputError, match=r"t_ns\[1\] = 2: expected non-decreasing"):
        sweep(t, d, c, grid)
    with pytest.raises(ThrottleInputError, match="storm: expected dtype bool"):
        sweep(np.sort(t), d, c, grid, storm=np.ones(2, np.int64))
    with pytest.raises(ThrottleConfigError, match="workers = 0"):
        sweep(np.sort(t), d, c, grid, workers=0)


GRID = """
policy = "gcra"
exclude = ["8F75"]
[overrides.8F84]
threshold = 2

[grid]
threshold = [3, 5]
window_s = [60, 3600]
"""


def test_grid_file() -> None:
    grid = parse_grid(GRID)
    assert len(grid) == 4
    first = grid.settings()[0]
    assert (first.policy, first.threshold, first.window_s, first.designated_period_s) == (
        "gcra",
        3,
        60.0,
        900.0,
    )
    assert first.limits(0x8F84).threshold == 2 and first.limits(0x8F75) is None
    assert [(p.threshold, p.window_s) for p in grid.settings()] == [
        (3, 60),
        (3, 3600),
        (5, 60),
        (5, 3600),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nthreshold = [3, 0]", "grid.threshold[1] = 0: expected an integer from 1"),
        ("[grid]\nwindow_s = [-1]", "grid.window_s[0] = -1.0: expected a number of seconds > 0"),
        ("[grid]\nthreshold = []", "grid.threshold: expected at least one value"),
        ("[grid]\nthresholds = [1]", "grid: unknown key 'thresholds'; expected one of: threshold"),
        ("[grid]\nthreshold = ['a']", "grid.threshold[0]: expected `int`, got `str`"),
        ("treshold = 3", "unknown key 'treshold'"),
        (
            "[grid]\nthreshold = ["
            + ", ".join(["1"] * 101)
            + "]\nwindow_s = ["
            + ", ".join(["1"] * 101)
            + "]",
            "grid: 10201 settings, expected at most 10000",
        ),
    ],
)
def test_grid_errors_name_the_value(text: str, message: str) -> None:
    with pytest.raises(ThrottleConfigError) as info:
        parse_grid(text, source="grid.toml")
    assert str(info.value).startswith("grid.toml: ")
    assert message in str(info.value)


def test_grid_errors_carry_key_and_value() -> None:
    with pytest.raises(ThrottleConfigError) as info:
        parse_grid("[grid]\nthreshold = [3, 0]", source="grid.toml")
    err = info.value
    assert (err.key, err.value, err.expected, err.source) == (
        "grid.threshold[1]",
        0,
        "an integer from 1 to 2147483647",
        "grid.toml",
    )
    # a grid value the base policy refuses under another key says so
    with pytest.raises(ThrottleConfigError) as info:
        parse_grid('policy = "gcra"\nwindow_s = 0.000000004\nthreshold = 1\n[grid]\nthreshold = [5]')
    err = info.value
    assert (err.key, err.value) == ("grid.threshold[0]", 5)
    assert err.expected is not None and "window_s = 4e-09: expected at least threshold (5)" in err.expected
