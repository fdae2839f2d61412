"""The readings cache: the Numba kernels (ours) against the ``OrderedDict`` reference.

The same stream as ``python -m dccsim.bench.perf.cache`` at a smaller size (lookups at random
times, the misses stored a chunk later, about 60% hits), replayed on a fresh cache each round;
and a fill of distinct keys (stores only). Each timed call's outputs are checked against the
reference's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from dccsim.bench.perf.cache import key_columns, workload
from dccsim.cache import LookupResult, ReadingsCache, ReferenceCache

OPS = 200_000
KEYS = 20_000
RETENTION_H = 48
BATCH = 65_536
FILL = 100_000


@pytest.fixture(scope="module")
def stream() -> tuple[list[np.ndarray], list[list[int]], tuple[list[Any], ...]]:
    cols, _ = workload(OPS, KEYS, RETENTION_H, 1.7, 256, seed=7)
    lists = [c.tolist() for c in cols]
    ref = ReferenceCache(retention_ns=RETENTION_H * 3_600 * 10**9, capacity=KEYS)
    expected = ref.apply(*lists)
    ReadingsCache.warm_up()  # compile (or load) the kernels outside any timing
    return cols, lists, expected


def _fresh_kernel(cols: list[np.ndarray]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (ReadingsCache(retention_hours=RETENTION_H, capacity=KEYS), cols), {}


def _replay(cache: ReadingsCache, cols: list[np.ndarray]) -> LookupResult:
    n = len(cols[0])
    out = LookupResult.empty(n)
    for lo in range(0, n, BATCH):
        part = LookupResult(*(o[lo : lo + BATCH] for o in out))
        cache.apply(*(c[lo : lo + BATCH] for c in cols), out=part)
    return out


def test_cache_stream_kernel(benchmark, stream) -> None:  # type: ignore[no-untyped-def]
    cols, _, expected = stream
    benchmark.group = "cache-stream"
    benchmark.extra_info.update(role="ours", operations=OPS, keys=KEYS)
    out = benchmark.pedantic(_replay, setup=lambda: _fresh_kernel(cols), rounds=15)
    assert out.hit.tolist() == expected[0]
    assert out.payload_ref.tolist() == expected[2] and out.stored_ns.tolist() == expected[3]


@pytest.mark.reference
def test_cache_stream_reference(benchmark, stream) -> None:  # type: ignore[no-untyped-def]
    _, lists, expected = stream

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        ref = ReferenceCache(retention_ns=RETENTION_H * 3_600 * 10**9, capacity=KEYS)
        return (ref, lists), {}

    benchmark.group = "cache-stream"
    benchmark.extra_info.update(role="reference", operations=OPS, keys=KEYS)
    got = benchmark.pedantic(lambda ref, cols: ref.apply(*cols), setup=fresh, rounds=3)
    assert got == expected


@pytest.fixture(scope="module")
def fill() -> list[np.ndarray]:
    k = np.arange(FILL, dtype=np.int64)
    dev, srv, start, end = key_columns(k, 11)
    t = start[0] + k * 1_000_000
    ReadingsCache.warm_up()
    return [t, dev, srv, start, end, np.zeros(FILL, np.uint8), k.astype(np.uint32)]


def test_cache_fill_kernel(benchmark, fill) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "cache-fill"
    benchmark.extra_info.update(role="ours", entries=FILL)

    def run(cache: ReadingsCache) -> ReadingsCache:
        cache.store(*fill)
        return cache

    cache = benchmark.pedantic(
        run, setup=lambda: ((ReadingsCache(retention_hours=72, capacity=FILL),), {}), rounds=15
    )
    s = cache.stats()
    assert (s.resident, s.stores, s.evicted, s.expired) == (FILL, FILL, 0, 0)
    probe = cache.lookup(fill[0][-1:].repeat(FILL), *fill[1:5])
    assert probe.hit.all() and (probe.payload_ref == fill[6]).all()


@pytest.mark.reference
def test_cache_fill_reference(benchmark, fill) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "cache-fill"
    benchmark.extra_info.update(role="reference", entries=FILL)
    rows = list(zip(*(c.tolist() for c in fill), strict=True))

    def run(ref: ReferenceCache) -> ReferenceCache:
        store = ref.store_one
        for row in rows:
            store(*row)
        return ref

    ref = benchmark.pedantic(
        run,
        setup=lambda: ((ReferenceCache(retention_ns=72 * 3_600 * 10**9, capacity=FILL),), {}),
        rounds=3,
    )
    assert len(ref) == FILL and ref.stats().evicted == 0
