"""The readings-cache kernels against the plain-Python reference and a brute-force model.

Hypothesis drives random streams built to hit the edges: operations exactly at ``s + R``
(and one either side), replacements of live keys, evictions from tiny bounded caches, growth
from tiny unbounded ones, times straddling a 2**48 ns boundary, and every way of cutting a
stream into batches and entry points (``lookup`` / ``store`` / ``apply`` / ``expire``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from dccsim.cache import OP_LOOKUP, OP_STORE, ReadingsCache, ReferenceCache
from dccsim.cache import _kernels as K
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOUR = 3_600 * 10**9
SEC = 10**9
DAY0 = 1_717_200_000 * SEC  # a whole second in June 2024
COUNTERS = ("hits", "misses", "stores", "replaced", "expired", "evicted", "resident")

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- a brute-force model: a list, linear scans, the semantics read off the issue -------------
@dataclass
class _Entry:
    key: tuple[int, int, int, int]
    stored: int
    code: int
    ref: int
    seq: int


@dataclass
class Naive:
    retention_ns: int
    capacity: int | None
    entries: list[_Entry] = field(default_factory=list)
    seq: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS[:-1], 0))

    def expire(self, t: int) -> None:
        keep = [e for e in self.entries if not e.stored + self.retention_ns <= t]
        self.counts["expired"] += len(self.entries) - len(keep)
        self.entries = keep

    def lookup(self, t: int, key: tuple[int, int, int, int]) -> tuple[bool, int, int, int]:
        self.expire(t)
        for e in self.entries:
            if e.key == key:
                assert e.stored <= t < e.stored + self.retention_ns
                self.counts["hits"] += 1
                return True, e.code, e.ref, e.stored
        self.counts["misses"] += 1
        return False, 0, 0, 0

    def store(self, t: int, key: tuple[int, int, int, int], code: int, ref: int) -> None:
        self.expire(t)
        old = [e for e in self.entries if e.key == key]
        if old:
            self.entries.remove(old[0])
            self.counts["replaced"] += 1
        elif self.capacity is not None and len(self.entries) >= self.capacity:
            victim = min(self.entries, key=lambda e: (e.stored + self.retention_ns, e.seq))
            self.entries.remove(victim)
            self.counts["evicted"] += 1
        self.seq += 1
        self.entries.append(_Entry(key, t, code, ref, self.seq))
        self.counts["stores"] += 1

    def stats(self) -> tuple[int, ...]:
        return tuple(self.counts[c] for c in COUNTERS[:-1]) + (len(self.entries),)


def counters(stats: object) -> tuple[int, ...]:
    return tuple(getattr(stats, c) for c in COUNTERS)


# -- streams --------------------------------------------------------------------------------
DEVICES = [0, 1, 2, 0x00DB_1234_5678_90A0, 2**64 - 1]
SRVS = [0, 1, 255]
STARTS = [0, DAY0, DAY0 + 86_400 * SEC]
LENGTHS_S = [0, 1, 86_400, K.MAX_PERIOD_S]


@dataclass
class Stream:
    retention_hours: float
    capacity: int | None
    initial_capacity: int
    op: np.ndarray
    t: np.ndarray
    device: np.ndarray
    srv: np.ndarray
    start: np.ndarray
    end: np.ndarray
    code: np.ndarray
    ref: np.ndarray
    cuts: list[int]
    expire_after: list[bool]

    def __len__(self) -> int:
        return len(self.t)

    def rows(self, lo: int, hi: int) -> list[np.ndarray]:
        cols = (self.op, self.t, self.device, self.srv, self.start, self.end, self.code, self.ref)
        return [x[lo:hi] for x in cols]


@st.composite
def streams(
    draw: st.DrawFn, max_ops: int = 60, capacities: list[int | None] | None = None
) -> Stream:
    hours = draw(st.one_of(st.sampled_from([25, 72, 48]), st.floats(25, 72)))
    retention = ReadingsCache(retention_hours=hours, capacity=1).retention_ns
    caps = capacities if capacities is not None else [None, 1, 2, 3, 5, 50]
    capacity = draw(st.sampled_from(caps))
    initial = draw(st.sampled_from([1, 2, 4096]))
    n = draw(st.integers(0, max_ops))
    # times: a base (incl. one just under a multiple of 2**48 ns and a negative one), then
    # offsets that are often whole multiples of R, give or take a nanosecond
    base = draw(st.sampled_from([0, DAY0, 7 * 2**48 - 3, -(2**61)]))
    near_r = st.builds(
        lambda a, b: a * retention + b, st.integers(0, 3), st.integers(-1, 1)
    )
    offsets = draw(
        st.lists(st.one_of(near_r, st.integers(0, 4 * retention)), min_size=n, max_size=n)
    )
    t = np.array(sorted(base + max(o, 0) for o in offsets), np.int64)
    key_idx = st.integers(0, 2**16)
    keys = draw(st.lists(key_idx, min_size=n, max_size=n))
    nkeys = draw(st.integers(1, 6))  # a small key set, so keys repeat
    dev = np.array([DEVICES[k % nkeys % len(DEVICES)] for k in keys], np.uint64)
    srv = np.array([SRVS[(k // 7) % nkeys % len(SRVS)] for k in keys], np.uint8)
    start = np.array([STARTS[(k // 3) % nkeys % len(STARTS)] for k in keys], np.int64)
    lengths = np.array([LENGTHS_S[(k // 5) % nkeys % len(LENGTHS_S)] for k in keys], np.int64)
    end = start + lengths * SEC
    kinds = st.lists(st.sampled_from([OP_LOOKUP, OP_STORE]), min_size=n, max_size=n)
    op = np.array(draw(kinds), np.uint8)
    code = np.array(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), np.uint8)
    ref = np.array(draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)), np.uint32)
    cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=6))))
    expire_after = draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return Stream(
        hours, capacity, initial, op, t, dev, srv, start, end, code, ref, cuts, expire_after
    )


Row = tuple[bool, int, int, int]


def run_reference(s: Stream, cache: ReadingsCache) -> tuple[list[Row], ReferenceCache, Naive]:
    ref = ReferenceCache(retention_ns=cache.retention_ns, capacity=s.capacity)
    naive = Naive(cache.retention_ns, s.capacity)
    out = []
    for i in range(len(s)):
        key = (int(s.device[i]), int(s.srv[i]), int(s.start[i]), int(s.end[i]))
        ti = int(s.t[i])
        if s.op[i] == OP_LOOKUP:
            a = ref.lookup_one(ti, *key)
            b = naive.lookup(ti, key)
            assert a == b, (i, a, b)
            out.append(a)
        else:
            ref.store_one(ti, *key, int(s.code[i]), int(s.ref[i]))
            naive.store(ti, key, int(s.code[i]), int(s.ref[i]))
            out.append((False, 0, 0, 0))
    return out, ref, naive


def make_cache(s: Stream) -> ReadingsCache:
    return ReadingsCache(
        retention_hours=s.retention_hours, capacity=s.capacity, initial_capacity=s.initial_capacity
    )


def run_split(s: Stream, cache: ReadingsCache, *, mixed_entry_points: bool) -> list[Row]:
    """Apply the stream cut at ``s.cuts``; optionally through lookup/store where a piece allows."""
    out: list[tuple[bool, int, int, int]] = []
    bounds = [0, *s.cuts, len(s)]
    for piece, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        op, t, dev, srv, start, end, code, ref = s.rows(lo, hi)
        if mixed_entry_points and hi > lo and (op == OP_LOOKUP).all():
            r = cache.lookup(t, dev, srv, start, end)
        elif mixed_entry_points and hi > lo and (op == OP_STORE).all():
            cache.store(t, dev, srv, start, end, code, ref)
            r = None
        else:
            r = cache.apply(op, t, dev, srv, start, end, code, ref)
        if r is None:
            out.extend([(False, 0, 0, 0)] * (hi - lo))
        else:
            out.extend(
                zip(r.hit.tolist(), r.code.tolist(), r.payload_ref.tolist(), r.stored_ns.tolist(), strict=True)
            )
        if s.expire_after[piece] and hi > lo:
            cache.expire(int(t[-1]))  # an explicit expiry at the current time changes nothing
    return out


@SETTINGS
@given(streams())
def test_kernels_match_reference_and_model(s: Stream) -> None:
    cache = make_cache(s)
    got = run_split(s, cache, mixed_entry_points=True)
    want, ref, naive = run_reference(s, cache)
    assert got == want
    assert counters(cache.stats()) == counters(ref.stats()) == naive.stats()
    assert len(cache) == len(ref)


@SETTINGS
@given(streams())
def test_any_batch_split_gives_identical_results(s: Stream) -> None:
    whole = make_cache(s)
    r = whole.apply(*s.rows(0, len(s)))
    one = list(zip(r.hit.tolist(), r.code.tolist(), r.payload_ref.tolist(), r.stored_ns.tolist(), strict=True))
    split = make_cache(s)
    assert run_split(s, split, mixed_entry_points=False) == one
    assert whole.stats() == split.stats()
    singles = make_cache(s)
    for i in range(len(s)):
        singles.apply(*s.rows(i, i + 1))
    assert counters(singles.stats()) == counters(whole.stats())


@SETTINGS
@given(streams(max_ops=120, capacities=[1, 2, 3]))
def test_small_capacities_evict_closest_to_expiry(s: Stream) -> None:
    cache = make_cache(s)
    got = run_split(s, cache, mixed_entry_points=True)
    want, ref, naive = run_reference(s, cache)
    assert got == want
    assert counters(cache.stats()) == naive.stats()
    assert len(cache) <= s.capacity


@SETTINGS
@given(st.data())
def test_explicit_expire_matches_reference(data: st.DataObject) -> None:
    s = data.draw(streams())
    cache = make_cache(s)
    ref = ReferenceCache(retention_ns=cache.retention_ns, capacity=s.capacity)
    for i in range(len(s)):
        if data.draw(st.booleans()):
            lo = int(s.t[i - 1]) if i else int(s.t[0]) - 5 * cache.retention_ns
            when = data.draw(st.integers(lo, int(s.t[i])))
            assert cache.expire(when) == ref.expire(when)
        r = cache.apply(*s.rows(i, i + 1))
        key = (int(s.device[i]), int(s.srv[i]), int(s.start[i]), int(s.end[i]))
        if s.op[i] == OP_LOOKUP:
            want = ref.lookup_one(int(s.t[i]), *key)
            got = (bool(r.hit[0]), int(r.code[0]), int(r.payload_ref[0]), int(r.stored_ns[0]))
            assert got == want
        else:
            ref.store_one(int(s.t[i]), *key, int(s.code[i]), int(s.ref[i]))
    assert counters(cache.stats()) == counters(ref.stats())


# -- the edges, spelled out ------------------------------------------------------------------
def col(values: list[int], dtype: type) -> np.ndarray:
    return np.array(values, dtype=dtype)


def keys(devices: list[int]) -> dict[str, np.ndarray]:
    n = len(devices)
    return {
        "device": col(devices, np.uint64),
        "srv": col([1] * n, np.uint8),
        "start_ns": col([DAY0] * n, np.int64),
        "end_ns": col([DAY0 + 86_400 * SEC] * n, np.int64),
    }


def store(
    cache: ReadingsCache, t: list[int], devices: list[int], refs: list[int] | None = None
) -> None:
    n = len(t)
    cache.store(
        col(t, np.int64), **keys(devices), code=col([0] * n, np.uint8),
        payload_ref=col(refs if refs is not None else list(range(n)), np.uint32),
    )


def hits(cache: ReadingsCache, t: list[int], devices: list[int]) -> list[bool]:
    return cache.lookup(col(t, np.int64), **keys(devices)).hit.tolist()


@pytest.mark.parametrize("hours", [25, 72, 36.5])
def test_served_until_just_before_s_plus_r(hours: float) -> None:
    cache = ReadingsCache(retention_hours=hours)
    r = cache.retention_ns
    s = DAY0 + 123
    store(cache, [s], [7])
    assert hits(cache, [s, s + r - 1], [7, 7]) == [True, True]
    assert cache.stats().expired == 0
    assert hits(cache, [s + r], [7]) == [False]
    assert cache.stats().expired == 1
    assert len(cache) == 0


def test_expiry_is_exact_across_a_2_48_boundary_and_long_jumps() -> None:
    cache = ReadingsCache(retention_hours=72)
    r = cache.retention_ns
    s = 5 * 2**48 - 10  # the low 48 bits of the stored time wrap while the entry lives
    store(cache, [s], [1])
    res = cache.lookup(col([s + r - 1], np.int64), **keys([1]))
    assert res.hit.tolist() == [True] and res.stored_ns.tolist() == [s]
    # a jump of many retentions at once still expires exactly
    store(cache, [s + r - 1], [2])
    assert hits(cache, [s + 100 * r], [2]) == [False]
    assert cache.stats().expired == 2


def test_store_replaces_and_restarts_retention() -> None:
    cache = ReadingsCache(retention_hours=25)
    r = cache.retention_ns
    store(cache, [0], [9], refs=[1])
    store(cache, [r // 2], [9], refs=[2])
    res = cache.lookup(col([r], np.int64), **keys([9]))  # past the first store's s + R
    assert res.hit.tolist() == [True]
    assert res.payload_ref.tolist() == [2] and res.stored_ns.tolist() == [r // 2]
    st_ = cache.stats()
    assert (st_.stores, st_.replaced, st_.resident, st_.expired) == (2, 1, 1, 0)
    assert hits(cache, [r // 2 + r], [9]) == [False]
    assert cache.stats().expired == 1


def test_full_cache_evicts_oldest_store_first_and_replacement_counts_as_new() -> None:
    cache = ReadingsCache(retention_hours=25, capacity=2)
    store(cache, [0, 1], [1, 2])
    store(cache, [2], [1])  # re-store of 1: 2 is now the closest to expiry
    store(cache, [3], [3])  # full: evicts 2
    assert hits(cache, [4, 4, 4], [1, 2, 3]) == [True, False, True]
    st_ = cache.stats()
    assert (st_.evicted, st_.replaced, st_.resident) == (1, 1, 2)


def test_same_time_stores_evict_in_store_order() -> None:
    cache = ReadingsCache(retention_hours=25, capacity=3)
    store(cache, [5, 5, 5, 5], [1, 2, 3, 4])
    assert hits(cache, [5] * 4, [1, 2, 3, 4]) == [False, True, True, True]


def test_lookup_sees_an_earlier_store_in_the_same_stream() -> None:
    cache = ReadingsCache(retention_hours=25)
    k = keys([4, 4, 4])
    res = cache.apply(
        col([OP_LOOKUP, OP_STORE, OP_LOOKUP], np.uint8), col([10, 10, 10], np.int64), **k,
        code=col([0, 3, 0], np.uint8), payload_ref=col([0, 77, 0], np.uint32),
    )
    assert res.hit.tolist() == [False, False, True]
    assert res.code.tolist() == [0, 0, 3] and res.payload_ref.tolist() == [0, 0, 77]


def test_key_parts_are_all_significant() -> None:
    cache = ReadingsCache(retention_hours=25)
    base = keys([1])
    store(cache, [0], [1])
    variants = [
        {**base, "device": col([2], np.uint64)},
        {**base, "srv": col([2], np.uint8)},
        {**base, "start_ns": col([DAY0 - SEC], np.int64)},
        {**base, "end_ns": col([DAY0 + 86_401 * SEC], np.int64)},
    ]
    for v in variants:
        assert cache.lookup(col([1], np.int64), **v).hit.tolist() == [False]
    assert cache.lookup(col([1], np.int64), **base).hit.tolist() == [True]


def test_replacement_churn_compacts_and_stays_exact(rng: np.random.Generator) -> None:
    n = 5_000
    cache = ReadingsCache(retention_hours=25, capacity=40)
    ref = ReferenceCache(retention_ns=cache.retention_ns, capacity=40)
    t = np.sort(rng.integers(0, 3 * cache.retention_ns, n)).astype(np.int64)
    dev = rng.integers(0, 60, n).astype(np.uint64)
    op = rng.integers(0, 2, n).astype(np.uint8)
    zeros8 = np.zeros(n, np.uint8)
    start = np.full(n, DAY0, np.int64)
    refs = np.arange(n, dtype=np.uint32)
    got = cache.apply(op, t, dev, zeros8, start, start, zeros8, refs)
    zeros = [0] * n
    want = ref.apply(
        op.tolist(), t.tolist(), dev.tolist(), zeros, start.tolist(), start.tolist(), zeros,
        refs.tolist(),
    )
    assert got.hit.tolist() == want[0] and got.payload_ref.tolist() == want[2]
    assert counters(cache.stats()) == counters(ref.stats())
    assert cache._st[K.COMPACTIONS] > 0 and cache._st[K.RING_GROWTHS] == 1
    assert cache.stats().replaced > 0


def test_unbounded_cache_grows_and_stays_exact(rng: np.random.Generator) -> None:
    n = 3_000
    cache = ReadingsCache(retention_hours=72, initial_capacity=1)
    ref = ReferenceCache(retention_ns=cache.retention_ns)
    t = np.sort(rng.integers(0, 2 * cache.retention_ns, n)).astype(np.int64)
    dev = rng.integers(0, 2_000, n).astype(np.uint64)
    op = (rng.random(n) < 0.6).astype(np.uint8)
    z8 = np.zeros(n, np.uint8)
    z = np.zeros(n, np.int64)
    refs = np.arange(n, dtype=np.uint32)
    got = cache.apply(op, t, dev, z8, z, z, z8, refs)
    zeros = [0] * n
    want = ref.apply(
        op.tolist(), t.tolist(), dev.tolist(), zeros, zeros, zeros, zeros, refs.tolist()
    )
    assert got.hit.tolist() == want[0] and got.stored_ns.tolist() == want[3]
    assert counters(cache.stats()) == counters(ref.stats())
    assert cache._st[K.GROWTHS] > 0 and cache.stats().evicted == 0
    assert cache.stats().capacity >= len(cache)


def test_empty_batches_change_nothing() -> None:
    cache = ReadingsCache(retention_hours=25)
    e64, eu64, eu8, eu32 = (np.zeros(0, d) for d in (np.int64, np.uint64, np.uint8, np.uint32))
    r = cache.lookup(e64, eu64, eu8, e64, e64)
    assert r.hit.shape == (0,)
    cache.store(e64, eu64, eu8, e64, e64, eu8, eu32)
    cache.apply(eu8, e64, eu64, eu8, e64, e64, eu8, eu32)
    assert cache.clock_ns is None and cache.stats().lookups == 0
