"""Device faults on a real run: lateness before the fault, persistent device states, several days."""

from __future__ import annotations

import functools

import numpy as np
from dccsim.bench.testing import drive, scenario
from dccsim.core.records import OUTCOMES, REQUEST_CLASSES, RESPONSE_CODES
from dccsim.loadgen._kernels import device_leg
from dccsim.loadgen.population import CONTACT_FLAKY, CONTACT_NONE, CONTACT_OK, build_population, draw_faults
from hypothesis import given, settings
from hypothesis import strategies as st


@functools.lru_cache(maxsize=1)
def _no_uplift():  # type: ignore[no-untyped-def]
    """A small day of mhhs-no-uplift (its DSP queue pushes many answers past the time-out)."""
    sink, driver = drive(scenario("mhhs-no-uplift", scale=0.003))
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
    from dccsim.core.catalogue import catalogue

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
