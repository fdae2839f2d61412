"""The virtual-time day's kernels against their whole-array NumPy definitions, to the bit."""

from __future__ import annotations

import functools
from unittest import mock

import numpy as np
from dccsim.bench.testing import scenario
from dccsim.loadgen import workload
from dccsim.loadgen.driver import VirtualTimeDriver, draw_device_reference
from dccsim.loadgen.population import build_population
from dccsim.loadgen.workload import (
    RequestChunk,
    flat_times,
    flat_times_reference,
    profile_times,
    profile_times_reference,
)
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


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(-1, 5000),
    start_ns=st.integers(0, 4 * 10**18),
    span_ns=st.integers(1, 2 * 86_400 * 10**9),
)
def test_flat_times_kernel_equals_the_numpy_definition(seed, n, start_ns, span_ns) -> None:  # type: ignore[no-untyped-def]
    """The same draws and the same float operations: the same times to the nanosecond, with the
    draws taken in blocks (small ones here, so that a few thousand rows cross many)."""
    with mock.patch.object(workload, "UNIFORM_BLOCK", 1 + seed % 97):
        got = flat_times(np.random.default_rng(seed), n, start_ns, start_ns + span_ns)
    want = flat_times_reference(np.random.default_rng(seed), n, start_ns, start_ns + span_ns)
    assert got.dtype == want.dtype == np.int64
    assert np.array_equal(got, want)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), block=st.integers(1, 500))
def test_uniform_blocks_are_the_draws_of_one_call(seed, n, block) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    with mock.patch.object(workload, "UNIFORM_BLOCK", block):
        parts = [(i0, u.copy()) for i0, u in workload.uniform_blocks(rng, n)]
    assert [i0 for i0, _ in parts] == list(range(0, n, block))
    whole = np.concatenate([u for _, u in parts]) if parts else np.zeros(0)
    assert np.array_equal(whole, np.random.default_rng(seed).random(n))
    assert rng.random() == np.random.default_rng(seed).random(n + 1)[-1]  # the generator left where one call leaves it


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    n_srvs=st.integers(1, 6),
    n_kinds=st.integers(1, 3),
    n_roles=st.integers(1, 5),
)
def test_background_columns_kernel_equals_the_numpy_definition(seed, n, n_srvs, n_kinds, n_roles) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    """SRV, role (picked among the eligible by the uniform draw), class and read period of each
    background request: the kernel and the whole-array definition agree on every row."""
    from dccsim.loadgen._kernels import background_columns
    from dccsim.loadgen.workload import background_columns_reference

    rng = np.random.default_rng(seed)
    which = rng.integers(0, n_srvs, n)
    kind = rng.integers(0, n_kinds, n).astype(np.uint8)
    u = rng.random(n)
    srv_of = rng.choice(12, n_srvs, replace=False).astype(np.uint8)
    count = rng.integers(0, n_roles + 1, (n_srvs, n_kinds))
    table = rng.integers(0, 8, (n_srvs, n_kinds, n_roles)).astype(np.uint8)
    non_device, cacheable = rng.random(12) < 0.3, rng.random(12) < 0.5
    args = (which, kind, u, srv_of, count, table, non_device, cacheable, 7, 3, 10**18, 10**18 + 86_400 * 10**9)
    want = background_columns_reference(*args)
    got = tuple(np.empty(n, d) for d in (np.uint8, np.uint8, np.uint8, np.int64, np.int64))
    background_columns(*args, *got)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


@functools.lru_cache(maxsize=4)
def _workload(name: str, mode: str):  # type: ignore[no-untyped-def]
    from dccsim.loadgen.workload import DayWorkload

    run = scenario(name, scale=0.0005, **({"mhhs.mode": mode} if mode else {}))
    return DayWorkload(run.scenario, build_population(run.scenario))


@settings(max_examples=40, deadline=None)
@given(
    which=st.sampled_from([("mhhs-day", ""), ("mhhs-day", "dcc_scheduled"), ("smoke", "")]),
    start_s=st.integers(-600, 26 * 3600),
    length_s=st.integers(0, 3 * 3600),
    chunk=st.integers(0, 500),
)
def test_chunk_requests_equal_the_sorted_gathered_streams(which, start_s, length_s, chunk) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    """A chunk's requests (columns from tables, the device EUI-64 by addition) are the
    definition's: the stably sorted streams' slices, gathered, every column, any window."""
    w = _workload(*which)
    t0 = w.day0 + start_s * 1_000_000_000
    t1 = t0 + length_s * 1_000_000_000
    got, want = w.requests(chunk, t0, t1), w.requests_reference(chunk, t0, t1)
    for name in RequestChunk.__dataclass_fields__:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 2000),
    dead=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
    flaky=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
)
def test_contact_states_kernel_equals_the_numpy_definition(seed, n, dead, flaky) -> None:  # type: ignore[no-untyped-def]
    from dccsim.loadgen._kernels import contact_states
    from dccsim.loadgen.population import contact_states_reference

    rng = np.random.default_rng(seed)
    u, s1 = rng.random(n), rng.random(n) < 0.4
    u[: n // 10] = np.where(s1[: n // 10], dead[1], dead[0])  # on the edges
    got = np.empty(n, np.uint8)
    contact_states(u, s1, dead[0], dead[1], flaky[0], flaky[1], got)
    assert np.array_equal(got, contact_states_reference(u, s1, dead, flaky))
