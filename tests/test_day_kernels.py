"""The virtual-time day's kernels against their whole-array NumPy definitions, to the bit."""

from __future__ import annotations

import functools

import numpy as np
from dccsim.bench.testing import scenario
from dccsim.loadgen.driver import VirtualTimeDriver, draw_device_reference
from dccsim.loadgen.population import build_population
from dccsim.loadgen.workload import RequestChunk, profile_times, profile_times_reference
from hypothesis import given, settings
from hypothesis import strategies as st


@functools.lru_cache(maxsize=1)
def _smoke():  # type: ignore[no-untyped-def]
    run = scenario("smoke", scale=0.002, **{"population.smets1.dead_share": 0.1, "population.smets2.flaky_share": 0.2,
                                            "population.smets1.flaky_share": 0.1})  # fmt: skip
    return run.scenario, build_population(run.scenario)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), unknown=st.floats(0, 1))
def test_driver_device_draws_equal_the_numpy_definition(seed: int, n: int, unknown: float) -> None:
    """Latencies (NumPy's exp of the kernel's exponent) and faults are the reference's exactly,
    devices outside the population (below and above it) included."""
    s, pop = _smoke()
    rng = np.random.default_rng(seed)
    device = pop.ids[rng.integers(0, len(pop), n)]
    out = rng.random(n) < unknown
    device[out] = np.where(rng.random(int(out.sum())) < 0.5, pop.ids[0] - np.uint64(5), pop.ids[-1] + np.uint64(7))
    req = RequestChunk.empty()
    req.t_scheduled_ns, req.device = np.zeros(n, np.int64), device
    driver = VirtualTimeDriver(s, population=pop, workload=None, pipeline=None)  # type: ignore[arg-type]
    lat, fault = driver._draw_device(np.random.default_rng([seed, 5]), req)
    want_lat, want_fault = draw_device_reference(s, pop, np.random.default_rng([seed, 5]), device)
    assert lat.dtype == want_lat.dtype and fault.dtype == want_fault.dtype
    assert np.array_equal(lat, want_lat) and np.array_equal(fault, want_fault)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 5000),
    weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=30),
    bin_s=st.integers(1, 4000),
    start_ns=st.integers(0, 4 * 10**18),
)
def test_profile_times_kernel_equals_the_numpy_definition(seed, n, weights, bin_s, start_ns) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    """The same draws and the same float operations: the same times to the nanosecond."""
    got = profile_times(np.random.default_rng(seed), n, start_ns, weights, bin_s * 1_000_000_000 + seed % 7)
    want = profile_times_reference(np.random.default_rng(seed), n, start_ns, weights, bin_s * 1_000_000_000 + seed % 7)
    assert got.dtype == want.dtype == np.int64
    assert np.array_equal(got, want)
    assert (np.diff(got) >= 0).all()
