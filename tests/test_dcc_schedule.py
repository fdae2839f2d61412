"""DCC scheduling of the MDR's nightly reads (``mhhs.mode = "dcc_scheduled"``).

The scheduler releases reads below on-demand priority: in each interval, at most the cap and
at most the DSP capacity the on-demand traffic leaves; every read is released by the window's
end (or, with ``schedule_overrun = "after_window"``, by the day's end). ``on_demand`` mode is
today's traffic, unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from dccsim.bench.testing import scenario
from dccsim.core.errors import ConfigError
from dccsim.core.records import REQUEST_CLASSES, ROLES
from dccsim.loadgen.population import build_population
from dccsim.loadgen.scenario import Scenario, parse_scenario
from dccsim.loadgen.workload import CLS, DAY, NS, DayWorkload, dcc_schedule, spread_times
from hypothesis import given, settings
from hypothesis import strategies as st

MDR = ROLES.index("MDR")


def _workload(**settings: object) -> tuple[Scenario, DayWorkload]:
    """Smoke's day with ``settings``, and no invalid traffic (a wrong role or device would hide a read)."""
    s = scenario("smoke", **{"invalid.share": 0.0, **settings}).scenario
    return s, DayWorkload(s, build_population(s))


def _day(wl: DayWorkload):  # type: ignore[no-untyped-def]
    return wl.requests(0, wl.day0, wl.day0 + DAY)


def _mdr_reads(wl: DayWorkload) -> tuple[np.ndarray, np.ndarray]:
    """Times and a sortable key (device, SRV, period start) of the MDR's reads."""
    r = _day(wl)
    sel = (r.cls == CLS["mhhs_read"]) & (r.role == MDR)
    key = np.rec.fromarrays([r.device[sel], r.srv[sel], r.period_start_ns[sel]])
    return r.t_scheduled_ns[sel], np.sort(key)


def _per_interval(t: np.ndarray, edges: np.ndarray) -> np.ndarray:
    assert ((t >= edges[0]) & (t < edges[-1])).all()
    return np.bincount(np.searchsorted(edges, t, side="right") - 1, minlength=len(edges) - 1)


def _on_demand_work_s(s: Scenario, wl: DayWorkload, edges: np.ndarray) -> np.ndarray:
    """Server-seconds of work from every request that is not an MDR read, per interval (independently of the code)."""
    r = _day(wl)
    other = ~((r.cls == CLS["mhhs_read"]) & (r.role == MDR))
    t, cls = r.t_scheduled_ns[other], r.cls[other]
    inside = (t >= edges[0]) & (t < edges[-1])
    service = np.array([s.capacity.classes[c].service_ms / 1e3 for c in REQUEST_CLASSES])
    k = np.searchsorted(edges, t[inside], side="right") - 1
    return np.bincount(k, weights=service[cls[inside]], minlength=len(edges) - 1)


# ---------------------------------------------------------------------------- the release rule


def test_the_rule_by_hand() -> None:
    # capacity 10 s per interval, reads cost 1 s; the cap is 6 a interval
    released, spare, left = dcc_schedule(20, [2.0, 12.0, 0.0, 9.5], 10.0, 6.0, 1.0)
    # 1: spare 8, capped at 6; 2: on-demand over capacity, nothing (2 s of backlog);
    # 3: spare 10 - 2 = 8, capped at 6; 4: spare 0.5, floor 0
    assert released.tolist() == [6, 0, 6, 0]
    assert spare.tolist() == [8.0, 0.0, 8.0, 0.5]
    assert left == 8


@settings(max_examples=200, deadline=None)
@given(
    reads=st.integers(0, 5000),
    od=st.lists(st.floats(0, 200, allow_nan=False), min_size=1, max_size=40),
    capacity=st.floats(1, 150),
    cap=st.floats(0, 80),
    service=st.floats(0.01, 3),
)
def test_releases_never_exceed_the_cap_nor_the_spare_capacity(reads, od, capacity, cap, service) -> None:  # type: ignore[no-untyped-def]
    released, spare, left = dcc_schedule(reads, od, capacity, cap, service)
    assert released.sum() + left == reads and left >= 0 and (released >= 0).all()
    assert (released <= math.floor(cap)).all()
    backlog = 0.0
    for k, work in enumerate(od):
        room = max(0.0, capacity - work - backlog)
        assert released[k] * service <= room + 1e-9
        if work + backlog >= capacity:  # on-demand load fills the DSP: nothing is released
            assert released[k] == 0
        backlog = max(0.0, backlog + work + released[k] * service - capacity)
    if left:  # reads were left only because every interval released all it could
        assert all(released[k] == math.floor(min(cap, spare[k])) for k in range(len(od)))


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(0, 50), min_size=1, max_size=20), width=st.integers(1, 10**9), seed=st.integers(0, 99)
)
def test_spread_times_puts_each_intervals_count_in_it_in_order(counts, width, seed) -> None:  # type: ignore[no-untyped-def]
    edges = np.arange(len(counts) + 1, dtype=np.int64) * width + 5
    t = spread_times(np.random.default_rng(seed), np.array(counts), edges)
    assert (np.diff(t) >= 0).all()
    assert _per_interval(t, edges).tolist() == counts


# ---------------------------------------------------------------------------- the workload


def test_on_demand_is_the_default_and_unchanged() -> None:
    base = DayWorkload(s := scenario("smoke").scenario, build_population(s))
    explicit = DayWorkload(e := scenario("smoke", **{"mhhs.mode": "on_demand"}).scenario, build_population(e))
    assert s.mhhs.mode == "on_demand" and base.schedule is None
    a, b = _day(base), _day(explicit)
    for name in a.__dict__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # today's MDR reads: three streams (4.8.1, 4.6.1, 4.8.3), each spread evenly over the window
    t, _ = _mdr_reads(base)
    ws, we = base.day0 + int(0.5 * 3600 * NS), base.day0 + 6 * 3600 * NS
    per_half_hour = _per_interval(t, np.arange(ws, we + 1, 3600 * NS // 2))
    assert per_half_hour.max() - per_half_hour.min() <= 3


def test_scheduled_reads_are_the_same_reads_released_within_the_window_under_the_cap() -> None:
    _, on_demand = _workload()
    s, wl = _workload(**{"mhhs.mode": "dcc_scheduled", "mhhs.schedule_rate_cap_per_s": 100_000.0})
    sc = wl.schedule
    assert sc is not None
    t0, key0 = _mdr_reads(on_demand)
    t, key = _mdr_reads(wl)
    assert np.array_equal(key, key0)  # the same reads, only re-timed
    per = _per_interval(t, sc.edges)  # every read released within the window
    assert sc.edges[0] == wl.day0 + int(0.5 * 3600 * NS) and sc.edges[-1] == sc.window_end_ns
    assert per.tolist() == sc.released.tolist() and sc.forced == 0
    assert (per <= np.floor(sc.cap)).all()
    # the cap is the scenario's at scale 1.0, scaled with the run
    assert sc.cap[0] == pytest.approx(100_000 * s.scale * s.capacity.demand * s.mhhs.schedule_interval_s)
    # every other request is as in on-demand mode
    a, b = _day(on_demand), _day(wl)
    keep_a = ~((a.cls == CLS["mhhs_read"]) & (a.role == MDR))
    keep_b = ~((b.cls == CLS["mhhs_read"]) & (b.role == MDR))
    assert np.array_equal(a.t_scheduled_ns[keep_a], b.t_scheduled_ns[keep_b])
    assert np.array_equal(a.device[keep_a], b.device[keep_b])


def test_a_tight_cap_holds_in_every_interval_and_the_rest_goes_at_the_window_end() -> None:
    s, wl = _workload(**{"mhhs.mode": "dcc_scheduled", "mhhs.schedule_rate_cap_per_s": 1000.0})
    sc = wl.schedule
    t, _ = _mdr_reads(wl)
    per = _per_interval(t, sc.edges)
    cap = math.floor(1000.0 * s.scale * 60)
    assert cap == 30 and (per[:-1] <= cap).all() and per[:-1].sum() == cap * (len(per) - 1)
    assert sc.forced > 0 and per[-1] == sc.released[-1] and 0 <= per[-1] - sc.forced <= cap
    assert t.max() < sc.window_end_ns


def test_under_high_on_demand_load_releases_stay_in_the_spare_capacity() -> None:
    settings = {
        "mhhs.mode": "dcc_scheduled",
        "mhhs.schedule_rate_cap_per_s": 1e6,
        # one DSP server at smoke's scale; from 03:00 to 04:00 on-demand work alone exceeds it
        "background.requests_per_meter": 4.0,
        "background.diurnal": [0.2, 0.2, 0.2, 1.0] + [0.2] * 20,
    }
    s, wl = _workload(**settings)
    sc = wl.schedule
    servers = s.dsp_servers * s.mhhs.schedule_utilisation
    t, _ = _mdr_reads(wl)
    per = _per_interval(t, sc.edges)
    od = _on_demand_work_s(s, wl, sc.edges)
    width = np.diff(sc.edges) / NS
    read_s = s.capacity.classes["mhhs_read"].service_ms / 1e3
    busy = od >= servers * width
    assert s.dsp_servers == 1 and busy.sum() >= 55 and (per[:-1][busy[:-1]] == 0).all()  # no release
    assert (per[:-1] * read_s <= np.maximum(0, servers * width - od)[:-1] + 1e-6).all()
    hour3 = np.searchsorted(sc.edges, wl.day0 + 3 * 3600 * NS)
    assert per[:hour3].sum() > 0 and per[hour3 + 60 : -1].sum() > 0  # released before and after the peak
    assert per.sum() == len(t) and per[-1] >= sc.forced


def test_after_window_keeps_releasing_by_the_same_rule_to_the_days_end() -> None:
    s, wl = _workload(
        **{
            "mhhs.mode": "dcc_scheduled",
            "mhhs.schedule_rate_cap_per_s": 1000.0,
            "mhhs.schedule_overrun": "after_window",
        }
    )
    sc = wl.schedule
    t, _ = _mdr_reads(wl)
    per = _per_interval(t, sc.edges)
    assert sc.edges[-1] == wl.day0 + DAY and sc.window_end_ns in sc.edges
    assert (per <= 30).all() and sc.forced == 0  # a day has room for them all
    late = t >= sc.window_end_ns
    assert late.sum() == sc.after_window > 0
    # released with no gap: as early as the cap allows
    assert (per[: np.flatnonzero(per)[-1]] == 30).all()


# ---------------------------------------------------------------------------- the keys


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mode", '"sometimes"', "one of on_demand, dcc_scheduled"),
        ("schedule_rate_cap_per_s", "0", "a number > 0 and <= 1e+09"),
        ("schedule_interval_s", "0.5", "seconds from 1 to 3600"),
        ("schedule_utilisation", "1.5", "a share in (0, 1] of the DSP's servers"),
        ("schedule_overrun", '"never"', "one of at_window_end, after_window"),
    ],
)
def test_a_bad_schedule_key_is_a_config_error_naming_it(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(f"[mhhs]\n{key} = {value}", "bad.toml")
    assert err.value.key == f"mhhs.{key}"
    assert err.value.expected == expected


# ---------------------------------------------------------------------------- a run


def test_a_scheduled_run_logs_the_reads_at_their_release_and_judges_them_from_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dccsim.bench import simulate
    from dccsim.bench.results.logs import read_log

    run = scenario("smoke", **{"scale": 0.0002, "mhhs.mode": "dcc_scheduled"})
    s = run.scenario
    wl = DayWorkload(s, build_population(s))
    simulate(run, out=tmp_path / "run")
    log = read_log(tmp_path / "run" / "requests.arrow", strict=True, raw=True).to_pydict()
    cls = np.array(log["request_class"])
    first = (cls == "mhhs_read") & (np.array(log["attempt"]) == 0)
    t = np.array(log["t_scheduled_ns"])[first]
    planned = _day(wl)
    assert np.array_equal(np.sort(t), np.sort(planned.t_scheduled_ns[planned.cls == CLS["mhhs_read"]]))
    assert wl.schedule.edges[0] <= t.min() and t.max() < wl.schedule.window_end_ns
    # latency and the target run from the release
    latency = np.array(log["latency_ns"])[first]
    done = np.array(log["t_done_ns"])[first]
    assert np.array_equal(latency, done - t)
    target = int(s.capacity.classes["mhhs_read"].target_s * NS)
    refused = np.array(log["outcome"])[first] == "refused"  # refused at once by the DSP: never within target
    assert np.array_equal(np.array(log["within_target"])[first], (latency <= target) & ~refused)
