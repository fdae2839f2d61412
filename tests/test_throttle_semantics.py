"""Alert Storm Protection by hand: small traces with every output worked out on paper.

Each example runs through the Numba throttle (whole and cut into batches) and through the
plain-Python reference, and both must give exactly the outputs written here.
"""

from __future__ import annotations

import doctest

import dccsim.throttle as throttle
import numpy as np
import pytest
from dccsim.throttle import (
    ACTIONS,
    CodeOverride,
    ReferenceThrottle,
    Throttle,
    ThrottleInputError,
    ThrottleOutput,
    ThrottlePolicy,
    ThrottleStats,
    ThrottleTableFullError,
)

S = 1_000_000_000
A = 0x00DB_1200_0000_0001
B = 0x00DB_1200_0000_0002


def columns(rows: list[tuple[float, int, int]]):
    t = np.array([round(r[0] * S) for r in rows], np.int64)
    d = np.array([r[1] for r in rows], np.uint64)
    c = np.array([r[2] for r in rows], np.uint16)
    return t, d, c


def run_all_ways(policy: ThrottlePolicy, rows):
    """Outputs and stats of the kernel (whole, one alert per batch) and of the reference."""
    t, d, c = columns(rows)
    whole = Throttle(policy)
    out = whole.process(t, d, c)
    single = Throttle(policy, initial_keys=1)
    parts = [single.process(t[i : i + 1], d[i : i + 1], c[i : i + 1]) for i in range(len(t))]
    ref = ReferenceThrottle(policy)
    ref_out = ref.process(t, d, c)
    for j, name in enumerate(ThrottleOutput._fields):
        one_by_one = np.concatenate([p[j] for p in parts])
        np.testing.assert_array_equal(one_by_one, out[j], err_msg=f"{name}: batches of 1")
        np.testing.assert_array_equal(ref_out[j], out[j], err_msg=f"{name}: reference")
    doubled = single.stats().merge(whole.stats())
    assert doubled.forwarded + doubled.throttled + doubled.excluded == 2 * len(t)
    fields = ThrottleStats.__struct_fields__
    assert doubled == ThrottleStats(**{f: getattr(single.stats(), f) + getattr(whole.stats(), f) for f in fields})
    for f in ("forwarded", "throttled", "excluded", "would_throttle", "near_limit"):
        assert getattr(whole.stats(), f) == getattr(ref.stats(), f) == getattr(single.stats(), f), f
    return out, whole.stats()


FIXED = ThrottlePolicy(
    threshold=3,
    window_s=60,
    designated_period_s=20,
    exclude=("8F75",),
    overrides={"8f12": CodeOverride(threshold=1, window_s=10)},
)
# (t seconds, device, alert code); the comment is the key's state after the alert
FIXED_TRACE = [
    (0, A, 0x8F84),  # A/8F84 window opens at 0, 1 alert: forwarded
    (0, A, 0x8F84),  # 2: forwarded
    (0, B, 0x8F84),  # B/8F84 window opens at 0: forwarded
    (0, A, 0x8F84),  # 3 = N: forwarded; 3 = ceil(0.8 * 3): near limit
    (0, A, 0x8F84),  # 4: excess (window 1 of the key with excess), 0 < 0 + 20: discarded
    (1, A, 0x8F75),  # excluded code
    (5, A, 0x8F84),  # 5: 5 < 0 + 20: discarded
    (5, A, 0x8F12),  # A/8F12 (N=1, W=10 s) opens at 5: forwarded; near limit (ceil 0.8 = 1)
    (6, A, 0x8F12),  # 2 > 1: excess, window 1 with excess; 6 < 5 + 20: discarded
    (20, A, 0x8F84),  # 6: 20 >= 0 + 20: forwarded with 2 discarded, sequence 1
    (20, A, 0x8F84),  # 7: 20 < 20 + 20: discarded
    (25, A, 0x8F12),  # 25 >= 5 + 10: new window: forwarded with 1 discarded, sequence 1; near
    (60, A, 0x8F84),  # 60 >= 0 + 60: new window: forwarded with 1 discarded, sequence 1
    (60, A, 0x8F84),  # 2 in the window: forwarded, nothing pending
    (60, B, 0x8F84),  # 60 >= 0 + 60: new window: forwarded
]
FIXED_ACTION = [0, 0, 0, 0, 1, 2, 1, 0, 1, 0, 1, 0, 0, 0, 0]
FIXED_COUNT = [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 1, 0, 0]
FIXED_SEQ = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0]


def test_fixed_window_by_hand() -> None:
    out, st = run_all_ways(FIXED, FIXED_TRACE)
    assert out.action.tolist() == FIXED_ACTION
    assert out.throttled_count.tolist() == FIXED_COUNT
    assert out.sequence_id.tolist() == FIXED_SEQ
    assert out.would_throttle.tolist() == [a == 1 for a in FIXED_ACTION]
    assert (st.forwarded, st.throttled, st.excluded, st.near_limit) == (10, 4, 1, 3)
    assert st.keys == 3  # A/8F84, B/8F84, A/8F12; the excluded code holds no state


def test_dry_run_forwards_everything_and_records_the_would_be_discards() -> None:
    dry = throttle.policy_from_dict({**FIXED.to_dict(), "dry_run": True})
    out, st = run_all_ways(dry, FIXED_TRACE)
    assert out.action.tolist() == [2 if a == 2 else 0 for a in FIXED_ACTION]
    assert out.would_throttle.tolist() == [a == 1 for a in FIXED_ACTION]
    # the metadata enforcement would attach, unchanged
    assert out.throttled_count.tolist() == FIXED_COUNT
    assert out.sequence_id.tolist() == FIXED_SEQ
    assert (st.forwarded, st.throttled, st.would_throttle, st.excluded) == (14, 0, 4, 1)


def test_gcra_by_hand() -> None:
    # N = 2, W = 10 s: emission interval T = 5 s, burst tolerance 5 s; P = 4 s
    policy = ThrottlePolicy(policy="gcra", threshold=2, window_s=10, designated_period_s=4)
    trace = [
        (0, A, 0x8F84),  # TAT 0 -> 5: conforming
        (0, A, 0x8F84),  # 5 - 0 <= 5: conforming, TAT 10; 10 s ahead >= 2 * T: near limit
        (0, A, 0x8F84),  # 10 - 0 > 5: excess, episode 1; 0 < 0 + 4: discarded
        (1, A, 0x8F84),  # 10 - 1 > 5: excess (same episode); 1 < 4: discarded
        (6, A, 0x8F84),  # 10 - 6 <= 5: conforming, TAT 15: forwarded with 2, sequence 1
        (7, A, 0x8F84),  # 15 - 7 > 5: excess, same episode; 7 < 6 + 4: discarded
        (12, A, 0x8F84),  # 15 - 12 <= 5: conforming, TAT 20: forwarded with 1, sequence 1
        (30, A, 0x8F84),  # 30 >= 20: drained (episode over); conforming, TAT 35
        (30, A, 0x8F84),  # conforming, TAT 40: near limit again
        (30, A, 0x8F84),  # 40 - 30 > 5: excess, episode 2; 30 < 30 + 4: discarded
    ]
    out, st = run_all_ways(policy, trace)
    assert out.action.tolist() == [0, 0, 1, 1, 0, 1, 0, 0, 0, 1]
    assert out.throttled_count.tolist() == [0, 0, 0, 0, 2, 0, 1, 0, 0, 0]
    assert out.sequence_id.tolist() == [0, 0, 0, 0, 1, 0, 1, 0, 0, 0]
    assert (st.throttled, st.near_limit) == (4, 2)


def test_gcra_sustained_rate_is_one_per_emission_interval() -> None:
    # N = 4 per 40 s, P longer than the trace: after the burst of 4, one alert per 10 s
    policy = ThrottlePolicy(policy="gcra", threshold=4, window_s=40, designated_period_s=1000)
    trace = [(i, A, 0x8F84) for i in range(0, 100)]  # one alert a second
    out, _ = run_all_ways(policy, trace)
    forwarded = np.flatnonzero(out.action == 0).tolist()
    assert forwarded[:4] == [0, 1, 2, 3]
    assert np.diff(forwarded[4:]).tolist() == [10] * (len(forwarded) - 5)


def test_equal_timestamps_keep_input_order() -> None:
    policy = ThrottlePolicy(threshold=1, window_s=10, designated_period_s=10)
    trace = [(3, A, 0x8F84), (3, B, 0x8F84), (3, A, 0x8F84), (3, B, 0x8F84), (3, A, 0x8F84)]
    out, _ = run_all_ways(policy, trace)
    assert out.action.tolist() == [0, 0, 1, 1, 1]


def test_designated_period_zero_forwards_every_excess_alert() -> None:
    policy = ThrottlePolicy(threshold=1, window_s=10, designated_period_s=0)
    out, st = run_all_ways(policy, [(0, A, 0x8F84)] * 5)
    assert out.action.tolist() == [0] * 5
    assert out.sequence_id.tolist() == [0] * 5  # nothing was discarded, so no metadata
    assert st.throttled == 0


def test_sequence_counts_windows_with_excess_not_discards() -> None:
    policy = ThrottlePolicy(threshold=1, window_s=10, designated_period_s=100)
    # windows open at 0 (excess), 10 (excess), 20, 30, 40 (excess), 50
    trace = [
        (0, A, 1),
        (1, A, 1),
        (10, A, 1),
        (11, A, 1),
        (12, A, 1),
        (20, A, 1),
        (30, A, 1),
        (40, A, 1),
        (41, A, 1),
        (50, A, 1),
    ]
    out, _ = run_all_ways(policy, trace)
    assert out.action.tolist() == [0, 1, 0, 1, 1, 0, 0, 0, 1, 0]
    assert out.throttled_count.tolist() == [0, 0, 1, 0, 0, 2, 0, 0, 0, 1]
    assert out.sequence_id.tolist() == [0, 0, 1, 0, 0, 2, 0, 0, 0, 3]


def test_extreme_devices_and_codes_are_distinct_keys() -> None:
    policy = ThrottlePolicy(threshold=1, window_s=100, designated_period_s=100)
    devices = [0, 1, 2**63, 2**64 - 1]
    trace = [(0, d, c) for d in devices for c in (0, 0xFFFF)] * 2
    out, st = run_all_ways(policy, trace)
    assert out.action.tolist() == [0] * 8 + [1] * 8
    assert st.keys == 8


def test_actions_match_the_alerts_log_dictionary() -> None:
    assert ACTIONS == ("forwarded", "throttled", "excluded", "reported")
    assert (throttle.FORWARDED, throttle.THROTTLED, throttle.EXCLUDED, throttle.REPORTED) == (0, 1, 2, 3)


def test_preallocated_outputs_are_written_in_place() -> None:
    t, d, c = columns(FIXED_TRACE)
    out = ThrottleOutput.empty(len(t))
    got = Throttle(FIXED).process(t, d, c, out=out)
    assert all(a is b for a, b in zip(got, out, strict=True))
    assert out.action.tolist() == FIXED_ACTION


def test_empty_batch() -> None:
    th = Throttle(FIXED)
    out = th.process(np.empty(0, np.int64), np.empty(0, np.uint64), np.empty(0, np.uint16))
    assert [len(a) for a in out] == [0, 0, 0, 0]
    assert th.clock_ns is None and th.stats().alerts == 0


I8, U8, U2 = np.int64, np.uint64, np.uint16


@pytest.mark.parametrize(
    ("argument", "t", "d", "c", "message"),
    [
        (
            "t_ns",
            np.zeros(1),
            np.ones(1, U8),
            np.ones(1, U2),
            "t_ns: expected dtype int64, got float64",
        ),
        (
            "device",
            np.zeros(1, I8),
            np.ones(1, I8),
            np.ones(1, U2),
            "device: expected dtype uint64, got int64",
        ),
        (
            "alert_code",
            np.zeros(1, I8),
            np.ones(1, U8),
            np.ones((1, 1), U2),
            "alert_code: expected a 1-D array",
        ),
        (
            "alert_code",
            np.zeros(2, I8),
            np.ones(2, U8),
            np.ones(1, U2),
            "alert_code: expected length 2 (as t_ns), got 1",
        ),
        (
            "t_ns",
            np.array([5, 4], I8),
            np.ones(2, U8),
            np.ones(2, U2),
            "t_ns[1] = 4: expected non-decreasing times",
        ),
        (
            "t_ns",
            [0],
            np.ones(1, U8),
            np.ones(1, U2),
            "t_ns: expected a 1-D numpy int64 array, got list",
        ),
    ],
)
def test_bad_batches_name_the_argument_and_change_nothing(argument, t, d, c, message) -> None:
    th = Throttle(FIXED)
    with pytest.raises(ThrottleInputError) as info:
        th.process(t, d, c)
    assert str(info.value).startswith(message)
    assert info.value.argument == argument
    assert th.stats().alerts == 0 and th.clock_ns is None


def test_time_may_not_go_back_across_batches() -> None:
    th = Throttle(FIXED)
    th.process(np.array([10], np.int64), np.array([A], np.uint64), np.array([1], np.uint16))
    with pytest.raises(ThrottleInputError, match=r"t_ns\[0\] = 9: .* previous batch's 10"):
        th.process(np.array([9], np.int64), np.array([A], np.uint64), np.array([1], np.uint16))


def test_bad_outputs_are_named() -> None:
    t, d, c = columns(FIXED_TRACE)
    out = ThrottleOutput.empty(len(t))._replace(sequence_id=np.empty(len(t), np.int32))
    with pytest.raises(ThrottleInputError, match="out.sequence_id: expected a uint32 array"):
        Throttle(FIXED).process(t, d, c, out=out)


def test_table_full_applies_the_prefix_and_says_so() -> None:
    # max_keys = 4 at load 0.5: 8 slots, 4 keys; every key is inside its window
    th = Throttle(ThrottlePolicy(threshold=1, window_s=60), initial_keys=1, max_keys=4)
    assert th.max_state_bytes == 8 * throttle.RECORD_BYTES
    t = np.zeros(6, np.int64)
    d = np.arange(6, dtype=np.uint64)
    c = np.full(6, 0x8F84, np.uint16)
    out = ThrottleOutput.empty(6)
    with pytest.raises(
        ThrottleTableFullError, match=r"4 alerts of this batch were applied"
    ) as info:
        th.process(t, d, c, out=out)
    assert info.value.processed == 4
    assert out.action[:4].tolist() == [0, 0, 0, 0]
    assert th.stats().alerts == 4 and len(th) == 4
    # a minute later every window has ended: the stale keys make room
    later = th.process(np.full(2, 60 * S, np.int64), d[4:], c[4:])
    assert later.action.tolist() == [0, 0]
    assert th.stats().evicted == 4 and len(th) == 2


def test_stormy_keys_are_never_evicted() -> None:
    # a key with a sequence number must keep it, however long it is quiet
    policy = ThrottlePolicy(threshold=1, window_s=1, designated_period_s=100)
    th = Throttle(policy, initial_keys=1, max_keys=64)
    ref = ReferenceThrottle(policy)
    rows = (
        [(0, A, 1), (0, A, 1)]
        + [(10 + i, 1000 + i, 1) for i in range(40)]
        + [(100, A, 1), (100, A, 1), (300, A, 1)]
    )
    t, d, c = columns(rows)
    out = th.process(t, d, c)
    np.testing.assert_array_equal(out.sequence_id, ref.process(t, d, c).sequence_id)
    assert out.sequence_id[-1] == 2 and th.stats().evicted > 0


def test_docstring_examples_run() -> None:
    from dccsim.throttle import engine, policy, reference, stats, tuning

    for module in (engine, policy, reference, stats, tuning):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__


def test_import_compiles_nothing() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import dccsim.throttle as t, dccsim.throttle._kernels as k; "
        "print(sum(len(f.signatures) for f in (k.process, k.compact, k.rebuild, k.first_decrease)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert res.stdout.strip() == "0"


def test_a_storm_that_stops_leaves_its_discards_unreported_until_the_key_speaks_again() -> None:
    """A storm that ends before its key's next alert: its discards are in no forwarded alert's
    throttled count, and the stats say how many (they were lost to anyone reading the alerts)."""
    import numpy as np
    from dccsim.throttle import Throttle, ThrottlePolicy

    s = 1_000_000_000
    th = Throttle(ThrottlePolicy(threshold=2, window_s=60, designated_period_s=30))
    dev, code = np.full(10, 0x00DB_1234_5678_9ABC, np.uint64), np.full(10, 0x8F84, np.uint16)
    out = th.process(np.arange(10, dtype=np.int64) * s, dev, code)
    assert out.action.tolist().count(1) == 8 and th.stats().unreported_discards == 8
    later = th.process(np.array([100 * s], np.int64), dev[:1], code[:1])  # the key's next alert, a new window
    assert later.throttled_count.tolist() == [8] and th.stats().unreported_discards == 0


def test_a_count_older_than_max_report_age_is_not_attached_to_a_later_alert() -> None:
    """A storm's discards reported on the same key's next alert a day later read as if that
    alert belonged to the storm; with max_report_age_s they are counted stale instead."""
    import numpy as np
    from dccsim.throttle import Throttle, ThrottlePolicy

    s, day = 1_000_000_000, 86_400_000_000_000
    dev, code = np.full(11, 0x00DB_1234_5678_9ABC, np.uint64), np.full(11, 0x8F84, np.uint16)
    t = np.r_[np.arange(10) * s, day].astype(np.int64)  # a storm, then the key's next alert a day on
    for age, attached, stale in ((None, 8, 0), (3600.0, 0, 8)):
        th = Throttle(ThrottlePolicy(threshold=2, window_s=60, designated_period_s=30, max_report_age_s=age))
        out = th.process(t, dev, code)
        assert out.throttled_count[-1] == attached and th.stats().stale_discards == stale
        assert th.stats().unreported_discards == 0


STORM = [(float(i), A, 0x8F84) for i in range(10)]  # N = 2: 2 forwarded, then 8 discarded (P = 30 s)


@pytest.mark.parametrize("kind", ["fixed-window", "gcra"])
def test_a_storm_that_stops_early_is_unreported_by_default_and_reported_at_window_close_with_the_option(
    kind: str,
) -> None:
    """The storm stops before its designated period ends and the key never speaks again: by
    default no alert ever carries its 8 discards (unreported at the end of the run); with
    report_at_close a synthetic alert at the window's close (fixed window: 0 + 60 s; GCRA:
    the bucket drained, TAT = 2 x 30 s) carries them, with the key's sequence number."""
    t, d, c = columns(STORM)
    end = 3600 * S  # the run ends an hour later
    for at_close in (False, True):
        policy = ThrottlePolicy(policy=kind, threshold=2, window_s=60, designated_period_s=30, report_at_close=at_close)
        for th in (Throttle(policy), ReferenceThrottle(policy)):
            out = th.process(t, d, c)
            assert out.action.tolist() == [0, 0] + [1] * 8
            assert out.throttled_count.sum() == 0
            reports = th.take_reports(end)
            st = th.stats()
            if at_close:
                assert (reports.t_ns.tolist(), reports.device.tolist(), reports.alert_code.tolist()) == (
                    [60 * S], [A], [0x8F84])
                assert (reports.throttled_count.tolist(), reports.sequence_id.tolist()) == ([8], [1])
                assert (st.unreported_discards, st.reports_at_close, st.reported_at_close) == (0, 1, 8)
            else:
                assert len(reports) == 0
                assert (st.unreported_discards, st.reports_at_close, st.reported_at_close) == (8, 0, 0)


def test_a_report_comes_before_the_keys_next_alert_which_then_carries_nothing() -> None:
    """The key speaks again exactly when its window closes: the report (made by that alert,
    before it) carries the 8 discards, the alert opens a new window and carries 0; a key
    whose window is still open at the end of the run keeps its discards unreported."""
    policy = ThrottlePolicy(threshold=2, window_s=60, designated_period_s=30, report_at_close=True)
    rows = [*STORM, (30.0, B, 0x8F84), (31.0, B, 0x8F84), (32.0, B, 0x8F84), (60.0, A, 0x8F84)]
    t, d, c = columns(rows)
    for th in (Throttle(policy), ReferenceThrottle(policy)):
        out = th.process(t, d, c)
        assert out.action.tolist() == [0, 0] + [1] * 8 + [0, 0, 1, 0]
        assert out.throttled_count.tolist()[-1] == 0
        reports = th.take_reports(60 * S)  # B's window closes at 90 s: not yet
        assert (reports.t_ns.tolist(), reports.throttled_count.tolist()) == ([60 * S], [8])
        assert th.stats().unreported_discards == 1
        assert th.take_reports(89 * S).t_ns.tolist() == []
        assert th.take_reports(90 * S).t_ns.tolist() == [90 * S]
        assert th.stats().unreported_discards == 0


def test_every_discard_is_reported_stale_or_unreported(rng: np.random.Generator) -> None:
    """Discards = counts carried by forwarded alerts + reports + stale + unreported, with and
    without reports at close, across batches."""
    n = 5000
    t = np.sort(rng.integers(0, 4000, n)).astype(np.int64) * S // 10
    d = rng.integers(0, 40, n).astype(np.uint64)
    c = np.array([0x8F84, 0x8F3F, 0x8F75], np.uint16)[rng.integers(0, 3, n)]
    for kind in ("fixed-window", "gcra"):
        for at_close in (False, True):
            th = Throttle(ThrottlePolicy(policy=kind, threshold=3, window_s=30, designated_period_s=10,
                                         max_report_age_s=60, exclude=("8F75",), report_at_close=at_close))
            carried = reported = 0
            for a in range(0, n, 700):
                out = th.process(t[a : a + 700], d[a : a + 700], c[a : a + 700])
                carried += int(out.throttled_count.sum())
                reported += int(th.take_reports(int(t[min(a + 700, n) - 1])).throttled_count.sum())
            st = th.stats()
            assert st.throttled > 500 and st.reported_at_close == reported
            assert (st.reported_at_close > 0) == at_close
            assert st.throttled == carried + reported + st.stale_discards + st.unreported_discards


def test_take_reports_moves_the_clock() -> None:
    th = Throttle(ThrottlePolicy(report_at_close=True))
    th.process(np.array([5 * S], np.int64), np.array([A], np.uint64), np.array([0x8F84], np.uint16))
    with pytest.raises(ThrottleInputError, match="now = 4000000000: expected a time not before"):
        th.take_reports(4 * S)
    th.take_reports(10 * S)
    assert th.clock_ns == 10 * S
    with pytest.raises(ThrottleInputError, match="non-decreasing"):
        th.process(np.array([9 * S], np.int64), np.array([A], np.uint64), np.array([0x8F84], np.uint16))
