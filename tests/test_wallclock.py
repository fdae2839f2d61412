"""The wall-clock server's request classes and device leg agree with their whole-array definitions."""

from __future__ import annotations

import math

import numpy as np
from dccsim.core.catalogue import catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.pipeline import FAULT_E20, FAULT_E21
from dccsim.loadgen.population import CONTACT_FLAKY, CONTACT_NONE, build_population, draw_faults
from dccsim.loadgen.scenario import load_scenario
from dccsim.loadgen.wallclock import DeviceLegModel, classifier
from dccsim.loadgen.workload import CLS, NS


def _batch(pop, n: int, rng: np.random.Generator) -> RequestBatch:  # type: ignore[no-untyped-def]
    dev = pop.ids[rng.integers(0, len(pop), n)].copy()
    dev[::7] = pop.ids[0] - np.uint64(1)  # below the population
    dev[3::7] = pop.ids[-1] + np.uint64(5)  # above it
    srv = rng.integers(0, len(catalogue().srvs), n).astype(np.uint8)
    ex = np.where(rng.random(n) < 0.3, 10**18, 0).astype(np.int64)
    return RequestBatch.from_columns(device=dev, originator=np.full(n, 1 << 40, np.uint64), counter=np.arange(1, n + 1),
                                     srv=srv, command_variant=np.ones(n), t_scheduled_ns=np.zeros(n, np.int64),
                                     execution_ns=ex)


def test_device_leg_matches_the_whole_array_draw() -> None:
    s, _ = load_scenario("smoke")
    pop = build_population(s)
    b = _batch(pop, 5000, np.random.default_rng(1))
    model = DeviceLegModel(s, pop, seed=9)
    lat, fault = model(b, np.zeros(len(b), np.uint8))
    # the definition: the same draws (normal, then uniform) from the same seeded generator
    rng = np.random.default_rng([9, 5, 1 << 20])
    idx = (b.device - pop.ids[0]).astype(np.int64)
    known = (idx >= 0) & (idx < len(pop))
    s1 = np.zeros(len(b), np.bool_)
    s1[known] = pop.smets1[idx[known]]
    p2, p1 = s.population.smets2, s.population.smets1
    mu = np.where(s1, math.log(p1.median_s), math.log(p2.median_s))
    sigma = np.where(s1, p1.sigma, p2.sigma)
    want_lat = np.exp(mu + sigma * rng.standard_normal(len(b))) * NS
    u = rng.random(len(b))
    e20 = np.where(s1, p1.e20_share, p2.e20_share)
    e21 = np.where(s1, p1.e21_share, p2.e21_share)
    flaky_p = np.where(s1, p1.flaky_failure_prob, p2.flaky_failure_prob)
    contact = np.zeros(len(b), np.uint8)
    contact[known] = pop.contact[idx[known]]
    want_fault = draw_faults(contact, u, e20, e21, flaky_p)
    assert s1.any() and (~s1).any() and (~known).any()
    assert (contact == CONTACT_NONE).any() and (contact == CONTACT_FLAKY).any()
    assert (fault[contact == CONTACT_NONE] == FAULT_E21).all()
    assert np.allclose(lat, want_lat, rtol=1e-12, atol=1)
    assert np.array_equal(fault, want_fault)
    assert (fault == FAULT_E20).any() and (fault == FAULT_E21).any()


def test_classes_match_the_table_and_the_future_dated_rule() -> None:
    s, _ = load_scenario("smoke")
    pop = build_population(s)
    b = _batch(pop, 3000, np.random.default_rng(2))
    cat = catalogue()
    table = np.full(len(cat.srvs), CLS["on_demand"], np.uint8)
    table[cat.non_device] = CLS["non_device"]
    table[cat.cacheable] = CLS["mhhs_read"]
    cls = table[b.srv]
    want = np.where((b.execution_ns != 0) & (cls != CLS["non_device"]), CLS["future_dated"], cls)
    got = classifier()(b)
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert set(got.tolist()) == set(CLS.values())
