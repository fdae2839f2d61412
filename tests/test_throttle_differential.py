"""The Numba throttle against the plain-Python reference, on traces hypothesis makes up.

Random traces mix a few devices (including the extremes of 64 bits) and alert codes
(one excludable, one overridable), with many equal timestamps; policies are fixed-window or
GCRA, enforcing or dry-run, reporting discards on the next forward or at window close. The
kernel runs the trace cut into random batches (taking its reports after some of them), with
a table that starts tiny (so growth and eviction happen) or big enough never to move;
outputs, reports and counters must equal the reference's exactly. Sharding by device must
not change anything.
"""

from __future__ import annotations

import numpy as np
from dccsim.throttle import (
    POLICIES,
    CodeOverride,
    ReferenceThrottle,
    Throttle,
    ThrottleOutput,
    ThrottlePolicy,
    ThrottleReports,
    ThrottleStats,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEVICES = [0, 1, 2**63, 2**64 - 1, 0x00DB_1234_5678_9ABC]
CODES = [0x8F84, 0x8F75, 0x8F3F, 0x0000, 0xFFFF]
TICK = 100_000_000  # 0.1 s: times are multiples of it, so windows and periods meet them
COUNTERS = (
    "forwarded", "throttled", "excluded", "would_throttle", "near_limit", "stale_discards", "unreported_discards",
    "reports_at_close", "reported_at_close",
)


@st.composite
def traces(draw: st.DrawFn, max_alerts: int = 80):
    n = draw(st.integers(0, max_alerts))
    gaps = draw(
        st.lists(st.sampled_from([0, 0, 0, 1, 3, 10, 25, 50, 100, 600]), min_size=n, max_size=n)
    )
    t = np.cumsum(np.array(gaps, np.int64) * TICK) + draw(st.sampled_from([0, -(2**40), 2**60]))
    devices = draw(
        st.lists(
            st.sampled_from(DEVICES[: draw(st.integers(1, len(DEVICES)))]), min_size=n, max_size=n
        )
    )
    codes = draw(st.lists(st.sampled_from(CODES), min_size=n, max_size=n))
    return t.astype(np.int64), np.array(devices, np.uint64), np.array(codes, np.uint16)


def seconds(draw: st.DrawFn, low: int, high: int) -> float:
    return draw(st.integers(low, high)) * TICK / 1e9


@st.composite
def policies(draw: st.DrawFn) -> ThrottlePolicy:
    exclude = draw(st.lists(st.sampled_from(["8F75", "8f3f", "0x0000"]), max_size=2, unique=True))
    overrides = {}
    for code in draw(st.lists(st.sampled_from(["8f84", "FFFF"]), max_size=2, unique=True)):
        overrides[code] = CodeOverride(
            threshold=draw(st.none() | st.integers(1, 4)),
            window_s=draw(st.none() | st.integers(1, 300).map(lambda k: k * TICK / 1e9)),
            designated_period_s=draw(st.none() | st.integers(0, 300).map(lambda k: k * TICK / 1e9)),
        )
    period = seconds(draw, 0, 300)
    longest = max([period] + [o.designated_period_s for o in overrides.values() if o.designated_period_s is not None])
    # a report age, when there is one, longer than every designated period (the policy's rule)
    age = draw(st.none() | st.integers(1, 600).map(lambda k: longest + k * TICK / 1e9))
    return ThrottlePolicy(
        policy=draw(st.sampled_from(POLICIES)),
        threshold=draw(st.integers(1, 5)),
        window_s=seconds(draw, 1, 300),
        designated_period_s=period,
        exclude=tuple(exclude),
        overrides=overrides,
        dry_run=draw(st.booleans()),
        max_report_age_s=age,
        report_at_close=draw(st.booleans()),
    )


def split_points(draw: st.DrawFn, n: int) -> list[int]:
    cuts = draw(st.lists(st.integers(0, n), max_size=6))
    return sorted(set(cuts) | {0, n})


def run_batches(th: Throttle, t, d, c, cuts: list[int], reports: list[ThrottleReports] | None = None) -> ThrottleOutput:
    """The trace through ``th`` in batches; with ``reports``, the reports are taken after every
    other batch (at a time between it and the next) and at the end (at the last alert)."""
    parts = []
    for j, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        parts.append(th.process(t[a:b], d[a:b], c[a:b]))
        if reports is not None and j % 2 and b > a:
            now = int(t[b - 1]) if b == len(t) else int(t[b - 1] + t[b]) // 2
            reports.append(th.take_reports(now))
    if reports is not None and len(t):
        reports.append(th.take_reports(int(t[-1])))
    if not parts:
        return th.process(t, d, c)
    return ThrottleOutput(*(np.concatenate([p[j] for p in parts]) for j in range(4)))


def assert_same_reports(got: list[ThrottleReports], want: ThrottleReports, what: str) -> None:
    whole = ThrottleReports.concat(got)
    for name, a, b in zip(ThrottleReports._fields, whole, want, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: reports' {name}")
    times = np.concatenate([r.t_ns for r in got]) if got else np.empty(0, np.int64)
    assert (np.diff(times) >= 0).all(), "reports taken later are never earlier"


def assert_same(out: ThrottleOutput, expected: ThrottleOutput, what: str) -> None:
    for name, got, want in zip(ThrottleOutput._fields, out, expected, strict=True):
        np.testing.assert_array_equal(got, want, err_msg=f"{what}: {name}")


def counters(s: ThrottleStats) -> tuple[int, ...]:
    return tuple(getattr(s, f) for f in COUNTERS)


@SETTINGS
@given(policy=policies(), trace=traces(), data=st.data(), tiny=st.booleans())
def test_kernel_equals_reference_in_any_batches(policy, trace, data, tiny) -> None:
    t, d, c = trace
    ref = ReferenceThrottle(policy)
    expected = ref.process(t, d, c)
    load = data.draw(st.sampled_from([0.5, 0.9]))  # 0.9: long probe clusters to compact
    th = Throttle(policy, initial_keys=1 if tiny else 1 << 10, max_load=load)
    reports: list[ThrottleReports] = []
    out = run_batches(th, t, d, c, split_points(data.draw, len(t)), reports)
    assert_same(out, expected, "kernel vs reference")
    assert_same_reports(reports, ref.take_reports(int(t[-1])) if len(t) else ThrottleReports.empty(0), "kernel")
    assert counters(th.stats()) == counters(ref.stats())
    if not tiny:
        assert th.stats().keys == ref.stats().keys
    assert th.stats().keys + th.stats().evicted >= ref.stats().keys


@SETTINGS
@given(policy=policies(), trace=traces(), shards=st.integers(2, 3))
def test_sharding_by_device_is_exact(policy, trace, shards) -> None:
    t, d, c = trace
    end = int(t[-1]) if len(t) else 0
    whole = Throttle(policy)
    expected = whole.process(t, d, c)
    whole_reports = whole.take_reports(end)
    out = ThrottleOutput.empty(len(t))
    parts, reports = [], []
    for k in range(shards):
        sel = np.flatnonzero(d % np.uint64(shards) == k)
        th = Throttle(policy, initial_keys=1)
        got = th.process(t[sel], d[sel], c[sel])
        reports.append(th.take_reports(end))
        for j in range(4):
            out[j][sel] = got[j]
        parts.append(th.stats())
    assert_same(out, expected, "shards vs one")
    assert_same_reports([ThrottleReports.concat(reports)], whole_reports, "shards vs one")
    merged = ThrottleStats.merge_all(parts)
    assert counters(merged) == counters(whole.stats())
    assert merged.shards == shards


@settings(max_examples=40, deadline=None, derandomize=True)
@given(policy=policies(), n=st.integers(200, 2000), seed=st.integers(0, 2**32 - 1))
def test_long_random_traces(policy, n, seed) -> None:
    # longer traces than hypothesis builds element by element: storms and quiet keys mixed
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n * 5, n)).astype(np.int64) * TICK
    d = np.array(DEVICES, np.uint64)[rng.integers(0, len(DEVICES), n)] ^ rng.integers(
        0, 8, n
    ).astype(np.uint64)
    c = np.array(CODES, np.uint16)[rng.integers(0, len(CODES), n)]
    ref = ReferenceThrottle(policy)
    th = Throttle(policy, initial_keys=1, max_keys=1 << 12)
    cuts = sorted(set(rng.integers(0, n, 5).tolist()) | {0, n})
    reports: list[ThrottleReports] = []
    assert_same(run_batches(th, t, d, c, cuts, reports), ref.process(t, d, c), "long trace")
    assert_same_reports(reports, ref.take_reports(int(t[-1])), "long trace")
    assert counters(th.stats()) == counters(ref.stats())


def test_dry_run_differs_from_enforcing_only_in_action(rng: np.random.Generator) -> None:
    n = 3000
    t = np.sort(rng.integers(0, 2000, n)).astype(np.int64) * TICK
    d = rng.integers(0, 30, n).astype(np.uint64)
    c = np.array(CODES, np.uint16)[rng.integers(0, len(CODES), n)]
    for kind in POLICIES:
        base = ThrottlePolicy(
            policy=kind, threshold=3, window_s=20, designated_period_s=7, exclude=("8F75",)
        )
        enforce = Throttle(base).process(t, d, c)
        dry = Throttle(
            ThrottlePolicy(
                **{**{f: getattr(base, f) for f in base.__struct_fields__}, "dry_run": True}
            )
        ).process(t, d, c)
        assert (enforce.action == 1).sum() > 100, kind
        np.testing.assert_array_equal(dry.action, np.where(enforce.action == 1, 0, enforce.action))
        for j in (1, 2, 3):
            np.testing.assert_array_equal(dry[j], enforce[j])
