"""Read-through (misses stored when the answer arrives): Numba kernel vs plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
from dccsim.cache import ReadingsCache
from dccsim.cache.errors import CacheInputError
from dccsim.cache.readthrough import ReadThroughCache, ReferenceReadThrough
from dccsim.cache.reference import ReferenceCache
from hypothesis import given, settings
from hypothesis import strategies as st

HOUR = 3600 * 10**9
DAY0 = 1_717_200_000 * 10**9


@st.composite
def streams(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, 120))
    gaps = draw(st.lists(st.sampled_from([0, 1, 7, HOUR, 10 * HOUR]), min_size=n, max_size=n))
    t = np.cumsum(np.array(gaps, np.int64)) + 5
    dev = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), np.uint64)
    srv = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), np.uint8)
    day = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), np.int64)
    delay = np.array(draw(st.lists(st.sampled_from([-1, 1, 3, HOUR, 30 * HOUR]), min_size=n, max_size=n)), np.int64)
    store_at = np.where(delay < 0, -1, t + delay)
    start = DAY0 + day * 24 * HOUR
    return t, dev, srv, start, start + 24 * HOUR, store_at


_COUNTERS = ("hits", "misses", "stores", "replaced", "expired", "evicted", "resident")


def assert_same_counters(a, b) -> None:  # type: ignore[no-untyped-def]
    assert {f: getattr(a, f) for f in _COUNTERS} == {f: getattr(b, f) for f in _COUNTERS}


@settings(max_examples=100, deadline=None)
@given(
    s=streams(), retention=st.sampled_from([25, 72]), capacity=st.sampled_from([None, 1, 3]), cut=st.integers(0, 120)
)
def test_kernel_matches_reference_in_any_split(s, retention, capacity, cut) -> None:
    t, dev, srv, start, end, store_at = s
    ref = ReferenceReadThrough(ReferenceCache(retention_ns=retention * HOUR, capacity=capacity))
    want = ref.read_through(t, dev, srv, start, end, store_at)
    rt = ReadThroughCache(
        ReadingsCache(retention_hours=retention, capacity=capacity, **({} if capacity else {"initial_capacity": 1})),
        initial_pending=16,
    )
    k = min(cut, len(t))
    got = np.concatenate(
        [
            rt.read_through(t[:k], dev[:k], srv[:k], start[:k], end[:k], store_at[:k]).hit,
            rt.read_through(t[k:], dev[k:], srv[k:], start[k:], end[k:], store_at[k:]).hit,
        ]
    )
    assert got.tolist() == want
    assert rt.pending == ref.pending
    a, b = rt.stats(), ref.cache.stats()
    assert_same_counters(a, b)


@settings(max_examples=100, deadline=None)
@given(
    s=streams(),
    retention=st.sampled_from([25, 72]),
    capacity=st.sampled_from([None, 1, 3]),
    cuts=st.lists(st.integers(0, 120), max_size=4),
    where=st.lists(st.floats(0, 1), min_size=5, max_size=5),
    tail=st.sampled_from([0, 1, HOUR, 100 * HOUR]),
)
def test_advancing_between_batches_matches_reference(s, retention, capacity, cuts, where, tail) -> None:
    """advance(t) between batches (anywhere up to the next lookup, and past the last) applies
    the due stores and expires exactly as the reference does."""
    t, dev, srv, start, end, store_at = s
    ref = ReferenceReadThrough(ReferenceCache(retention_ns=retention * HOUR, capacity=capacity))
    rt = ReadThroughCache(
        ReadingsCache(retention_hours=retention, capacity=capacity, **({} if capacity else {"initial_capacity": 1})),
        initial_pending=16,
    )
    bounds = sorted({0, len(t), *(min(c, len(t)) for c in cuts)})
    got: list[bool] = []
    want: list[bool] = []
    for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        got += rt.read_through(t[lo:hi], dev[lo:hi], srv[lo:hi], start[lo:hi], end[lo:hi], store_at[lo:hi]).hit.tolist()
        want += ref.read_through(t[lo:hi], dev[lo:hi], srv[lo:hi], start[lo:hi], end[lo:hi], store_at[lo:hi])
        prev = int(t[hi - 1]) if hi else 0
        nxt = int(t[hi]) if hi < len(t) else prev + tail
        at = prev + int((nxt - prev) * where[j % len(where)])
        rt.advance(at)
        ref.advance(at)
        assert rt.pending == ref.pending
    assert got == want
    a, b = rt.stats(), ref.cache.stats()
    assert_same_counters(a, b)


def test_advance_applies_due_stores_and_expires_them_later() -> None:
    rt = ReadThroughCache(ReadingsCache(retention_hours=25))
    one = np.ones(1, np.uint64)
    args = (one, np.zeros(1, np.uint8), np.full(1, DAY0), np.full(1, DAY0 + 24 * HOUR))
    rt.read_through(np.array([10]), *args, np.array([20]))
    assert rt.pending == 1
    rt.advance(19)
    assert rt.pending == 1 and rt.stats().stores == 0
    rt.advance(20)
    assert rt.pending == 0 and rt.stats().resident == 1
    before = rt.stats()
    rt.advance(5)  # behind the clock: nothing
    assert rt.stats() == before and rt.pending == 0
    assert rt.read_through(np.array([21]), *args, np.array([-1])).hit.tolist() == [True]
    rt.advance(20 + 25 * HOUR)
    assert rt.stats().resident == 0 and rt.stats().expired == 1
    assert rt.read_through(np.array([21 + 25 * HOUR]), *args, np.array([-1])).hit.tolist() == [False]


def test_store_in_the_same_batch_serves_a_later_lookup() -> None:
    rt = ReadThroughCache(ReadingsCache(retention_hours=25))
    one = np.ones(4, np.uint64)
    r = rt.read_through(
        np.array([10, 11, 20, 26 * HOUR]),
        one,
        np.zeros(4, np.uint8),
        np.full(4, DAY0),
        np.full(4, DAY0 + 24 * HOUR),
        np.array([15, 19, -1, -1]),
    )
    # miss at 10 (stored at 15), miss at 11 (queued for 19), hit at 20, expired at 26 h
    assert r.hit.tolist() == [False, False, True, False]


def test_store_time_must_follow_lookup() -> None:
    rt = ReadThroughCache(ReadingsCache(retention_hours=25))
    with pytest.raises(CacheInputError, match=r"store_at_ns\[0\] = 10: expected -1 or a time after"):
        rt.read_through(
            np.array([10]),
            np.ones(1, np.uint64),
            np.zeros(1, np.uint8),
            np.full(1, DAY0),
            np.full(1, DAY0 + HOUR),
            np.array([10]),
        )


def test_replacement_churn_grows_the_ring_once_and_compacts() -> None:
    # Two lookups of a key miss before the first answer arrives, so its second store replaces
    # the first and leaves a dead record in the ring: the ring fills with dead records, grows
    # once (through the same store step as ReadingsCache.apply) and then compacts.
    from dccsim.cache import _kernels as K

    rng = np.random.default_rng(7)
    n = 4_000
    t = np.arange(n, dtype=np.int64) * 1_000 + 5
    dev = rng.integers(0, 24, n).astype(np.uint64)
    srv = np.zeros(n, np.uint8)
    start = np.full(n, DAY0, np.int64)
    store_at = t + 2_500  # answers arrive after the next two lookups
    cache = ReadingsCache(retention_hours=25, capacity=16)
    rt = ReadThroughCache(cache, initial_pending=16)
    ref = ReferenceReadThrough(ReferenceCache(retention_ns=25 * HOUR, capacity=16))
    parts = [slice(lo, lo + 700) for lo in range(0, n, 700)]
    got = np.concatenate(
        [rt.read_through(t[p], dev[p], srv[p], start[p], start[p], store_at[p]).hit for p in parts]
    )
    want = ref.read_through(t, dev, srv, start, start, store_at)
    assert got.tolist() == want
    assert_same_counters(rt.stats(), ref.cache.stats())
    assert rt.stats().replaced > 100 and rt.stats().evicted > 0
    assert cache._st[K.RING_GROWTHS] == 1 and cache._st[K.COMPACTIONS] > 0
