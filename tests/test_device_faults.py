"""Device faults on a real run: lateness before the fault, persistent device states, several days."""

from __future__ import annotations

import functools

import numpy as np
from dccsim.bench.testing import drive, scenario
from dccsim.core.catalogue import catalogue
from dccsim.core.records import INVALID_KINDS, OUTCOMES, REQUEST_CLASSES, RESPONSE_CODES, ROLES
from dccsim.loadgen._kernels import device_leg
from dccsim.loadgen.population import CONTACT_FLAKY, CONTACT_NONE, CONTACT_OK, build_population, draw_faults
from hypothesis import given, settings
from hypothesis import strategies as st


@functools.lru_cache(maxsize=1)
def _no_uplift():  # type: ignore[no-untyped-def]
    """A small day of mhhs-no-uplift with the DSP's old pessimistic options (c-server queue, no
    admission, expired work served late), so its queue pushes many answers past the time-out."""
    settings = {"capacity.model": "servers", "capacity.admission": False, "capacity.shed_expired": False}
    sink, driver = drive(scenario("mhhs-no-uplift", scale=0.003, **settings))
    return sink.request_rows(), driver


def test_no_e20_is_answered_after_its_class_time_out() -> None:
    rows, driver = _no_uplift()
    timeout = driver.pipeline.capacity.timeout_ns_array()
    code = np.asarray(rows.response_code)
    cls = np.asarray(rows.request_class)
    e20 = code == RESPONSE_CODES.index("E20")
    late = rows.latency_ns >= timeout[cls]
    assert e20.any()
    assert not (e20 & late).any()
    # the late ones are there, as E21 (E30 future-dated) at the time-out
    fd = cls == REQUEST_CLASSES.index("future_dated")
    e21, e30 = code == RESPONSE_CODES.index("E21"), code == RESPONSE_CODES.index("E30")
    at_timeout = rows.latency_ns == timeout[cls]
    assert (e21 & at_timeout & ~fd).sum() > e20.sum()
    assert not (e21 & fd).any() and not (e30 & ~fd).any()


# ---------------------------------------------------------------------------- persistent contact states


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 2), st.floats(0, 1, exclude_max=True)), min_size=1, max_size=60
    ),
    e20=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
    e21=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
    fp=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_device_leg_kernel_matches_draw_faults(rows, e20, e21, fp) -> None:  # type: ignore[no-untyped-def]
    """The wall-clock kernel's faults equal the reference's for any contact state, generation
    and shares; devices outside the population (index 10-12 here) count as SMETS2 in contact."""
    base = np.uint64(1000)
    smets1 = np.array([i % 2 == 1 for i in range(10)], np.bool_)
    contact = np.array([r[1] for r in rows[:10]] + [0] * (10 - min(10, len(rows))), np.uint8)
    dev = np.array([base + np.uint64(r[0]) for r in rows], np.uint64)
    u = np.array([r[2] for r in rows], np.float64)
    z = np.zeros(len(rows))
    lat = np.empty(len(rows), np.int64)
    fault = np.empty(len(rows), np.uint8)
    device_leg(dev, base, smets1, contact, z, u, 0.0, 0.0, 0.1, 0.1, e20[0], e20[1], e21[0], e21[1], fp[0], fp[1],
               lat, fault)  # fmt: skip
    i = np.array([r[0] for r in rows])
    inside = i < 10
    s1 = np.where(inside, smets1[np.minimum(i, 9)], False)
    c = np.where(inside, contact[np.minimum(i, 9)], CONTACT_OK)
    want = draw_faults(c, u, np.where(s1, e20[1], e20[0]), np.where(s1, e21[1], e21[0]), np.where(s1, fp[1], fp[0]))
    assert np.array_equal(fault, want)


def test_contact_states_follow_their_shares_and_move_no_other_draw() -> None:
    """Each generation's out-of-contact and flaky shares come out near their settings; setting
    them to 0 changes nothing else in the population."""
    run = scenario("smoke", scale=0.01, **{"population.smets1.dead_share": 0.1, "population.smets1.flaky_share": 0.2})
    pop = build_population(run.scenario)
    s1 = pop.smets1
    assert abs((pop.contact[s1] == CONTACT_NONE).mean() - 0.1) < 0.01
    assert abs((pop.contact[s1] == CONTACT_FLAKY).mean() - 0.2) < 0.01
    assert abs((pop.contact[~s1] == CONTACT_NONE).mean() - 0.002) < 0.001
    off = {f"population.{g}.{k}": 0.0 for g in ("smets1", "smets2") for k in ("dead_share", "flaky_share")}
    plain = build_population(scenario("smoke", scale=0.01, **off).scenario)
    assert (plain.contact == CONTACT_OK).all()
    for name in ("ids", "kind", "smets1", "export", "region"):
        assert np.array_equal(getattr(plain, name), getattr(pop, name))


def test_out_of_contact_devices_never_answer_and_their_retries_are_counted() -> None:
    """Every request to an out-of-contact device fails (E21 at the time-out), retries included;
    flaky devices fail far more often than the rest; the tally counts the retries that got no
    answer."""
    from dccsim.bench.results.summary import RunTally

    run = scenario("smoke", scale=0.005, **{"population.smets2.dead_share": 0.02, "population.smets1.dead_share": 0.02})
    sink, driver = drive(run)
    rows = sink.request_rows()
    pop = driver.population
    idx = (rows.device - pop.ids[0]).astype(np.int64)
    known = (idx >= 0) & (idx < len(pop))
    to_device = known & (np.asarray(rows.invalid) == 0) & (np.asarray(rows.outcome) != OUTCOMES.index("dcc"))
    to_device &= np.asarray(rows.outcome) != OUTCOMES.index("cache")
    contact = np.where(known, pop.contact[np.where(known, idx, 0)], CONTACT_OK)
    failed = np.asarray(rows.outcome) == OUTCOMES.index("failed")
    dead = to_device & (contact == CONTACT_NONE)
    assert dead.sum() > 50 and failed[dead].all()
    fd = np.asarray(rows.request_class) == REQUEST_CLASSES.index("future_dated")
    timed_out = np.where(fd, RESPONSE_CODES.index("E30"), RESPONSE_CODES.index("E21"))
    assert (np.asarray(rows.response_code)[dead] == timed_out[dead]).all()
    flaky, ok = to_device & (contact == CONTACT_FLAKY), to_device & (contact == CONTACT_OK)
    assert failed[flaky].mean() > 0.2 > 0.05 > failed[ok].mean()
    retries = np.asarray(rows.attempt) > 0
    assert (retries & dead).sum() > 0
    tally = RunTally(run.scenario.day_start_ns, len(catalogue().srvs))
    tally.record_requests(rows)
    assert tally.retries_unanswered == int((retries & failed).sum()) >= int((retries & dead).sum())


def test_bad_contact_shares_name_key_value_and_expectation() -> None:
    import pytest
    from dccsim.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"population\.smets1\.dead_share: got 1\.5, expected a share between 0 and"):
        scenario("smoke", **{"population.smets1.dead_share": 1.5})
    with pytest.raises(ConfigError, match=r"population\.smets2\.flaky_share: got 0\.6, expected at most 1 - dead"):
        scenario("smoke", **{"population.smets2.dead_share": 0.5, "population.smets2.flaky_share": 0.6})
    with pytest.raises(ConfigError, match=r"population\.smets2\.flaky_failure_prob: got -0\.1"):
        scenario("smoke", **{"population.smets2.flaky_failure_prob": -0.1})


# ---------------------------------------------------------------------------- several days

DAY_NS = 86_400 * 10**9


@functools.lru_cache(maxsize=4)
def _days(days: int, **settings):  # type: ignore[no-untyped-def]
    """A run of ``days`` smoke days; the driver's ``drawn`` lists the days it drew itself."""
    from dccsim.loadgen import driver as driver_module

    plain = driver_module.DayWorkload
    drawn: list[int] = []

    class Counted(plain):  # type: ignore[misc,valid-type]
        def __init__(self, s, pop, day=0):  # type: ignore[no-untyped-def]
            drawn.append(day)
            super().__init__(s, pop, day)

    driver_module.DayWorkload = Counted  # type: ignore[misc]
    try:
        sink, driver = drive(scenario("smoke", days=days, **settings))
    finally:
        driver_module.DayWorkload = plain  # type: ignore[misc]
    driver.drawn = drawn
    return sink, driver


def test_day_zero_of_a_two_day_run_is_the_one_day_run() -> None:
    """Every request and alert before the first midnight is the same, column by column, in a
    one-day and a two-day run (day 0 keeps its seeds; later days only come after)."""
    one, d1 = _days(1)
    two, _ = _days(2)
    midnight = d1.scenario.day_start_ns + DAY_NS
    for rows_of in ("request_rows", "alert_rows"):
        a, b = getattr(one, rows_of)(), getattr(two, rows_of)()
        t = "t_scheduled_ns" if rows_of == "request_rows" else "t_ns"
        ka, kb = getattr(a, t) < midnight, getattr(b, t) < midnight
        assert ka.sum() == kb.sum() > 1000
        for c in type(a).COLUMNS:
            assert np.array_equal(getattr(a, c.name)[ka], getattr(b, c.name)[kb]), (rows_of, c.name)


def test_each_day_has_its_own_traffic_and_counters_carry_across_midnight() -> None:
    sink, driver = _days(2)
    rows = sink.request_rows()
    day0 = driver.scenario.day_start_ns
    day = (rows.t_scheduled_ns - day0) // DAY_NS
    per_day = np.bincount(day[rows.attempt == 0])
    assert len(per_day) == 2 and per_day.min() > 0.9 * per_day.max()
    # not the same traffic shifted by a day
    t0 = np.sort(rows.t_scheduled_ns[(day == 0) & (rows.attempt == 0)] - day0)
    t1 = np.sort(rows.t_scheduled_ns[(day == 1) & (rows.attempt == 0)] - day0 - DAY_NS)
    assert len(t0) != len(t1) or not np.array_equal(t0, t1)
    # each day's MHHS reads are for the day before it
    mdr_481 = (rows.srv == catalogue().code("4.8.1")) & (rows.role == ROLES.index("MDR")) & (rows.invalid == 0)
    for d in range(2):
        starts = set(rows.period_start_ns[mdr_481 & (day == d) & (rows.attempt == 0)].tolist())
        assert day0 + (d - 1) * DAY_NS in starts
    # RequestID counters strictly increase per originator over the whole run
    ok = rows.invalid != INVALID_KINDS.index("replay")
    for o in np.unique(rows.originator):
        c = rows.counter[ok & (rows.originator == o)]
        assert (np.diff(c.astype(np.int64)) > 0).all()
    # each later day is drawn once, and only the newest is still held at the end
    assert driver.drawn == [1] and sorted(driver._days) == [1]
    # the progress covers both days
    assert sink.progressed[-1] == (day0 + 2 * DAY_NS, day0 + 2 * DAY_NS)


def test_future_dated_responses_after_midnight_are_simulated() -> None:
    """Day 0's future-dated commands executing after midnight report back on day 1 (their
    responses in the audit trail, CR1233); only commands whose responses would come after the
    run's end are left incomplete."""
    sink, driver = _days(2)
    req, audit = sink.request_rows(), sink.audit_rows()
    midnight = driver.scenario.day_start_ns + DAY_NS
    end = driver.scenario.day_start_ns + 2 * DAY_NS
    day0 = req.t_scheduled_ns[audit.seq.astype(np.int64)] < midnight
    assert (day0 & (audit.t_ns >= midnight)).sum() > 10
    assert (audit.t_ns < end).all() and driver.totals.future_dated_responses == len(audit)
    delivered = (req.request_class == REQUEST_CLASSES.index("future_dated")) & (req.response_code == 1)
    complete = set(audit.seq[audit.received == audit.total_instructions].tolist())
    incomplete = np.array([s for s in req.seq[delivered].tolist() if s not in complete], np.int64)
    # a command is incomplete only if it was sent within the longest lead time (+ a minute of
    # delays and acknowledgement) of the run's end
    lead = int(driver.scenario.future_dated.lead_time_h[1] * 3600) * 10**9
    assert len(incomplete) and (req.t_scheduled_ns[incomplete] >= end - lead - 180 * 10**9).all()
    assert driver.totals.future_dated_after_end > 0


def test_a_re_read_of_an_earlier_days_period_hits_only_within_retention() -> None:
    """With demand 2 the MDR reads every ESME twice a night, in order through its window
    (0.5-6 h): yesterday's period in the first half (0.5-3.25 h), the period of two days back
    in the second (3.25-6 h) -- the period it read the night before, 24 h + (t2 - t1) earlier.
    At 72 h retention those are hits; at 25 h only when t2 - t1 < 1 h: for t1, t2 uniform on
    the two halves, P = (1 / 2.75)^2 / 2 = 0.066."""
    hits = {}
    for hours in (25, 72):
        # every ESME cached (the default caches SMETS1 reads only, at the S1SP)
        # enough DSP for twice the reads (none refused, so every answer is stored)
        settings = {"capacity.demand": 2.0, "capacity.uplift": 3.0, "cache.retention_h": hours, "cache.scope": "esme"}
        sink, driver = _days(2, **settings)
        rows = sink.request_rows()
        day = (rows.t_scheduled_ns - driver.scenario.day_start_ns) // DAY_NS
        back2 = (day == 1) & (rows.period_start_ns == driver.scenario.day_start_ns - DAY_NS) & (rows.attempt == 0)
        hits[hours] = (rows.outcome[back2] == OUTCOMES.index("cache")).mean()
    assert hits[72] > 0.95 and abs(hits[25] - 0.066) < 0.03


def test_days_out_of_range_is_a_config_error() -> None:
    import pytest
    from dccsim.core.errors import ConfigError

    for bad in (0, 8):
        with pytest.raises(ConfigError, match=rf"days: got {bad}, expected an integer from 1 to 7"):
            scenario("smoke", days=bad)
    with pytest.raises(ConfigError, match=r"days: got 1\.5, expected `int`"):
        scenario("smoke", days=1.5)


def test_series_cover_the_run_s_days_plus_twelve_hours() -> None:
    from dccsim.bench.results.summary import INTERVAL_NS, RunTally, SummaryError

    for days in (1, 3):
        t = RunTally(0, len(catalogue().srvs), days=days)
        assert t.n_intervals * INTERVAL_NS == (days * 24 + 12) * 3600 * 10**9 == len(t.series_requests) * INTERVAL_NS
    import pytest

    with pytest.raises(SummaryError, match="days"):
        RunTally(0, 5, days=1).merge(RunTally(0, 5, days=2))


def test_the_progress_bar_spans_the_run_s_days(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The bar's total comes from the callback's end (three days here), and its clock says the day."""
    import rich.progress
    from dccsim.bench.cli.cmd_run import _progress_bar

    seen: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(rich.progress.Progress, "update", lambda self, task, **kw: seen.append(kw))
    hour = 3600 * 10**9
    with _progress_bar("x", True) as update:
        update(30 * hour + 5 * 60 * 10**9, 72 * hour, 7)
    assert seen[-1]["total"] == 72 * 3600 and seen[-1]["completed"] == 30 * 3600 + 300
    assert seen[-1]["clock"] == "day 2 06:05"
    with _progress_bar("x", True) as update:
        update(6 * hour, 24 * hour, 7)
    assert seen[-1]["clock"] == "06:00" and seen[-1]["total"] == 24 * 3600
