"""Cache statistics: exact merges, serialisation, and sharded runs that add up to one."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from dccsim.cache import CacheStats, ReadingsCache
from hypothesis import given, settings
from hypothesis import strategies as st

SEC = 10**9
DAY0 = 1_717_200_000 * SEC
FIELDS = CacheStats.__struct_fields__

counts = st.integers(0, 2**40)
stats_objects = st.builds(CacheStats, **{f: counts for f in FIELDS if f != "shards"})


@settings(max_examples=60, deadline=None)
@given(stats_objects, stats_objects, stats_objects)
def test_merge_is_an_associative_commutative_sum(
    a: CacheStats, b: CacheStats, c: CacheStats
) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c)) == c.merge(a, b)
    m = a.merge(b)
    for f in FIELDS:
        assert getattr(m, f) == getattr(a, f) + getattr(b, f)
    assert CacheStats.merge_all([a, b, c]) == a.merge(b, c)


def test_derived_figures_come_from_merged_sums() -> None:
    a = CacheStats(hits=9, misses=1, resident=10, capacity=10, nbytes=400)
    b = CacheStats(hits=0, misses=10, resident=0, capacity=10, nbytes=400)
    m = a.merge(b)
    assert m.hit_ratio == pytest.approx(9 / 20)  # not the mean of 0.9 and 0.0
    assert m.bytes_per_entry == 40.0 and m.bytes_per_resident == 80.0
    assert m.shards == 2


def test_empty_and_zero_cases() -> None:
    z = CacheStats()
    assert z.hit_ratio == 0.0 and z.bytes_per_entry == 0.0 and z.bytes_per_resident == 0.0
    assert CacheStats.merge_all([]).shards == 0
    with pytest.raises(TypeError, match="can only merge CacheStats"):
        z.merge({"hits": 1})  # type: ignore[arg-type]


def test_round_trips_through_dict_and_json() -> None:
    s = CacheStats(
        hits=3, misses=2, stores=2, replaced=1, expired=1, evicted=0, resident=1, capacity=8,
        nbytes=320,
    )
    d = s.to_dict()
    assert d["lookups"] == 5 and d["hit_ratio"] == 0.6 and d["bytes_per_entry"] == 40.0
    assert CacheStats.from_dict(d) == s
    assert msgspec.json.decode(msgspec.json.encode(s), type=CacheStats) == s
    with pytest.raises(msgspec.ValidationError):
        CacheStats.from_dict({"hits": 1.5})


def test_shards_by_device_add_up_to_one_cache(rng: np.random.Generator) -> None:
    n, shards = 20_000, 4
    one = ReadingsCache(retention_hours=25)
    parts = [ReadingsCache(retention_hours=25) for _ in range(shards)]
    t = np.sort(rng.integers(0, 4 * one.retention_ns, n)).astype(np.int64)
    dev = rng.integers(0, 3_000, n).astype(np.uint64)
    srv = rng.integers(0, 3, n).astype(np.uint8)
    start = (DAY0 + rng.integers(0, 3, n) * 86_400 * SEC).astype(np.int64)
    end = start + 86_400 * SEC
    op = (rng.random(n) < 0.35).astype(np.uint8)
    code = np.zeros(n, np.uint8)
    ref = np.arange(n, dtype=np.uint32)
    whole = one.apply(op, t, dev, srv, start, end, code, ref)
    hit = np.zeros(n, np.bool_)
    shard = (dev % np.uint64(shards)).astype(np.int64)
    for k, cache in enumerate(parts):
        m = shard == k
        hit[m] = cache.apply(op[m], t[m], dev[m], srv[m], start[m], end[m], code[m], ref[m]).hit
    assert (hit == whole.hit).all()
    for cache in (one, *parts):  # align the clocks: each shard saw only its own operations
        cache.expire(int(t[-1]) + one.retention_ns // 2)
    merged = CacheStats.merge_all(c.stats() for c in parts)
    single = one.stats()
    for f in ("hits", "misses", "stores", "replaced", "expired", "evicted", "resident"):
        assert getattr(merged, f) == getattr(single, f), f
    assert merged.shards == shards and merged.hit_ratio == single.hit_ratio
