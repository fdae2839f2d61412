"""Throughput and memory of the readings cache: Numba kernels against a plain-Python reference.

Run with ``python -m dccsim.bench.perf.cache`` (``--help`` for sizes); add ``--load 50000000``
to fill a cache with that many entries and measure its memory.

Workload. ``--keys`` keys (devices with three SRVs and three daily read periods each) are
looked up at uniformly random times; the misses of each ``--chunk`` of lookups are stored
after it, at the time of its last lookup (the device answers later, so a key missed twice
within a chunk is stored twice and the second store replaces the first). The lookup rate is
set so that a key is asked about ``--lookups-per-retention`` times per retention period,
which gives about 60% hits in steady state. The stream is generated once (with the cache
itself, untimed) and cut to ``--ops`` operations; every timed run replays that same stream.

Timings (JIT warmed first; medians of ``--repeats``; one core):

- ``kernel``: :meth:`dccsim.cache.ReadingsCache.apply` on batches of ``--batch`` operations
  with preallocated outputs; a fresh, preallocated cache each repeat. This includes the
  per-batch input checks (one extra pass over the batch).
- ``reference``: :meth:`dccsim.cache.ReferenceCache.apply` (``OrderedDict``) on the first
  ``--ref-ops`` operations of the same stream (all of them by default), as Python lists
  converted outside the timing; run once, as it takes seconds. Its outputs and counters are
  checked against the kernel's on the same operations.
- ``calibration``: yardsticks from the table in ``DESIGN.md`` (a dense per-device array
  with random read+write, and a plain open-addressing lookup-or-insert over 1 M keys, the
  latter also with the kernel's prefetching), timed in the same run, so figures from a busy
  or different machine can be read against them. The prefetched table is printed again as
  the ``floor``: one random cache line per operation and no cache semantics, so no
  cache kernel can beat it on the same machine (a lookup here reads an index line and then
  its record, two dependent random lines). Under it, that walk alone (an index slot, then
  the record it names, prefetched as the kernel does, no logic): what this layout's
  lookups cost before any cache work, so ``kernel / walk`` is the cost of the logic.

``--clock cpu`` times this thread's CPU time instead of wall time: steadier when other jobs
share the machine (it still cannot hide their use of the shared caches and memory).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
from dccsim.cache import (
    OP_LOOKUP,
    OP_STORE,
    CacheStats,
    LookupResult,
    ReadingsCache,
    ReferenceCache,
)
from dccsim.cache._jit import prefetch

HOUR = 3_600 * 10**9
SEC = 10**9
DAY0 = 1_717_200_000 * SEC  # 2024-06-01 00:00:00 UTC
GB_ENTRIES = 300_000_000
BUDGET_GIB = 12
SRV_CODES = np.array([31, 38, 40], np.uint8)  # stand-ins for the caller's 4.6.1, 4.8.1, 4.8.3

CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]

Columns = list[np.ndarray]  # op, t_ns, device, srv, start_ns, end_ns, code, payload_ref


def key_columns(k: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Device, srv, start, end of key numbers ``k``: 9 keys per device (3 SRVs x 3 days)."""
    d = (k // 9).astype(np.uint64)
    # a fixed bijective mix gives EUI-64-like device ids that differ in every byte
    x = (d + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    device = x * np.uint64(0xBF58476D1CE4E5B9)
    srv = SRV_CODES[k % 3]
    start = DAY0 + ((k // 3) % 3).astype(np.int64) * 86_400 * SEC
    return device, srv, start, start + 86_400 * SEC


def workload(
    n_ops: int, n_keys: int, retention_hours: int, per_retention: float, chunk: int, seed: int
) -> tuple[Columns, CacheStats]:
    """The benchmark stream (see the module docstring) and the generator cache's stats."""
    rng = np.random.default_rng(seed)
    retention = retention_hours * HOUR
    n_lookups = int(n_ops / 1.3) + 4 * chunk  # enough: at most 1 store per lookup is cut off
    span = int(n_lookups * retention / (per_retention * n_keys))
    t_look = np.sort(rng.integers(0, span, n_lookups)).astype(np.int64) + DAY0
    k_look = rng.integers(0, n_keys, n_lookups)
    dev, srv, start, end = key_columns(k_look, seed)
    gen = ReadingsCache(retention_hours=retention_hours, capacity=n_keys)
    parts: list[Columns] = []
    total = 0
    for lo in range(0, n_lookups, chunk):
        if total >= n_ops:
            break
        s = slice(lo, lo + chunk)
        n = len(t_look[s])
        missed = ~gen.lookup(t_look[s], dev[s], srv[s], start[s], end[s]).hit
        m = int(missed.sum())
        t_store = np.full(m, t_look[s][-1], np.int64)
        refs = np.arange(total + n, total + n + m, dtype=np.uint64).astype(np.uint32)
        gen.store(t_store, dev[s][missed], srv[s][missed], start[s][missed], end[s][missed],
                  np.zeros(m, np.uint8), refs)
        parts.append([
            np.concatenate([np.full(n, OP_LOOKUP, np.uint8), np.full(m, OP_STORE, np.uint8)]),
            np.concatenate([t_look[s], t_store]),
            np.concatenate([dev[s], dev[s][missed]]),
            np.concatenate([srv[s], srv[s][missed]]),
            np.concatenate([start[s], start[s][missed]]),
            np.concatenate([end[s], end[s][missed]]),
            np.zeros(n + m, np.uint8),
            np.concatenate([np.zeros(n, np.uint32), refs]),
        ])
        total += n + m
    cols = [np.ascontiguousarray(np.concatenate([p[j] for p in parts])[:n_ops]) for j in range(8)]
    return cols, gen.stats()


def run_kernel(cols: Columns, cache: ReadingsCache, batch: int, out: LookupResult) -> None:
    n = len(cols[0])
    step = batch if batch > 0 else n
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        part = LookupResult(*(o[lo:hi] for o in out))
        cache.apply(*(c[lo:hi] for c in cols), out=part)


_PHI = np.uint64(0x9E3779B97F4A7C15)
_S40 = np.uint64(40)


# The floors below are benchmark yardsticks (the machine's limit for this kind of work, timed
# beside the product kernel), not product code, so they live with the benchmark, not in _kernels.py.

@numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _open_addressing(stream: np.ndarray, table: np.ndarray, ahead: int) -> int:
    """Lookup-or-insert of the keys of ``stream`` in a linear-probing table of (key, count)
    slots (``table`` is ``uint64[2 * slots]``); with ``ahead`` > 0 the home slot of the key
    that many operations ahead is prefetched, as the cache kernel does."""
    mask = table.shape[0] // 2 - 1
    n = stream.shape[0]
    found = 0
    for i in range(n):
        if ahead > 0 and i + ahead < n:
            prefetch(table, 2 * (np.int64((stream[i + ahead] * _PHI) >> _S40) & mask))
        k = stream[i]
        j = np.int64((k * _PHI) >> _S40) & mask
        while True:
            if table[2 * j] == k:
                table[2 * j + 1] += np.uint64(1)
                found += 1
                break
            if table[2 * j] == 0:
                table[2 * j] = k
                table[2 * j + 1] = np.uint64(1)
                break
            j = (j + 1) & mask
    return found


@numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _two_lines(order: np.ndarray, index: np.ndarray, arena: np.ndarray) -> np.uint64:
    """The memory walk of a lookup in the kernel's layout, with no cache logic: read the
    index slot of ``order[i]``, then the 28-byte record it points to (two dependent random
    lines), hinting both ahead as the kernel does (``AHEAD_INDEX``, ``AHEAD_ARENA``)."""
    n = order.shape[0]
    total = np.uint64(0)
    for i in range(n):
        if i + 16 < n:
            prefetch(index, order[i + 16])
        if i + 8 < n:
            q = np.int64(index[order[i + 8]]) * 7
            prefetch(arena, q)
            prefetch(arena, q + 6)
        p = np.int64(index[order[i]]) * 7
        total += np.uint64(arena[p]) + np.uint64(arena[p + 6])
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _dense(state: np.ndarray, order: np.ndarray) -> None:
    """Random read-modify-write of per-device state: ``state[order[i]] += 1``."""
    for i in range(order.shape[0]):
        state[order[i]] += np.uint64(1)


def calibration(repeats: int, seed: int) -> tuple[float, float, float, float]:
    """ns/op of yardsticks over 1 M keys and 10 M operations each: a dense per-device array
    (random read+write), a bare open-addressing table (16-byte slots, load 0.5,
    lookup-or-insert of a precomputed key stream) without and with prefetching, and the
    kernel's lookup walk without its logic (:func:`_two_lines`, over an index and records
    sized as a full 1 M-entry cache). The prefetched table is the floor of any hash table
    here: one random cache line per operation, nothing else."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(1, 2**63, 1_000_000).astype(np.uint64)
    order = rng.integers(0, len(keys), 10_000_000)
    stream = keys[order]
    table = np.zeros(2 * 2**21, np.uint64)
    state = np.zeros(len(keys), np.uint64)
    index = np.zeros(1_250_000, np.uint64)  # 1.25 slots a key, each naming a record
    index[rng.permutation(len(index))[: len(keys)]] = rng.permutation(len(keys))
    slots = rng.integers(0, len(index), len(order))
    arena = np.ones(len(keys) * 7, np.uint32)
    _open_addressing(stream[:100], table, 0)
    _open_addressing(stream[:100], table, 16)
    _dense(state, order[:100])
    _two_lines(slots[:100], index, arena)
    oa, oa_pf, dense, two = [], [], [], []
    for _ in range(repeats):
        for ahead, times in ((0, oa), (16, oa_pf)):
            table[:] = 0
            t0 = clock()
            _open_addressing(stream, table, ahead)
            times.append(clock() - t0)
        t0 = clock()
        _dense(state, order)
        dense.append(clock() - t0)
        t0 = clock()
        _two_lines(slots, index, arena)
        two.append(clock() - t0)
    return tuple(statistics.median(x) / len(order) * 1e9 for x in (dense, oa, oa_pf, two))


def median_seconds(fn: Callable[[], object], setup: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        setup()
        gc.collect()
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def bench_throughput(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    cols, gen_stats = workload(
        args.ops, args.keys, args.retention_hours, args.lookups_per_retention, args.chunk, args.seed
    )
    n = len(cols[0])
    n_lookups = int((cols[0] == OP_LOOKUP).sum())
    print(f"# workload: {n:,} operations ({n_lookups:,} lookups, {n - n_lookups:,} stores) over "
          f"{args.keys:,} keys, retention {args.retention_hours} h, generated in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    ReadingsCache.warm_up()
    out = LookupResult.empty(n)
    state: dict[str, ReadingsCache] = {}

    def fresh() -> None:
        state["cache"] = ReadingsCache(retention_hours=args.retention_hours, capacity=args.keys)

    kernel_s = median_seconds(lambda: run_kernel(cols, state["cache"], args.batch, out), fresh,
                              args.repeats)
    cache = state["cache"]
    s = cache.stats()

    n_ref = min(args.ref_ops or n, n)
    lists = [c[:n_ref].tolist() for c in cols]
    ref = ReferenceCache(retention_ns=cache.retention_ns, capacity=args.keys)
    gc.collect()
    t0 = clock()
    r_hit, r_code, r_ref, r_stored = ref.apply(*lists)
    ref_s = clock() - t0
    if (out.hit[:n_ref].tolist() != r_hit or out.payload_ref[:n_ref].tolist() != r_ref
            or out.stored_ns[:n_ref].tolist() != r_stored or out.code[:n_ref].tolist() != r_code):
        raise AssertionError("kernel and reference outputs differ")
    if n_ref == n:
        for f in ("hits", "misses", "stores", "replaced", "expired", "evicted", "resident"):
            if getattr(s, f) != getattr(ref.stats(), f):
                raise AssertionError(f"kernel and reference counters differ in {f}")

    kernel_rate = n / kernel_s
    ref_rate = n_ref / ref_s
    scope = "the same" if n_ref == n else f"the first {n_ref:,} of the"
    print(f"# replayed: hit ratio {s.hit_ratio:.1%}, {s.replaced:,} replacements, "
          f"{s.expired:,} expiries, {s.evicted:,} evictions, {s.resident:,} resident at the end")
    dense, oa, oa_pf, two = calibration(args.repeats, args.seed)
    print(f"calibration  dense per-device array, random read+write: {dense:.1f} ns/op "
          "(DESIGN.md: about 7 ns); open addressing, 1 M keys, lookup-or-insert: "
          f"{oa:.1f} ns/op (DESIGN.md: about 15 ns), prefetched: {oa_pf:.1f} ns/op")
    batch = f"batches of {args.batch:,}" if args.batch > 0 else "one call"
    print(f"kernel       ReadingsCache.apply, {batch}: {kernel_rate / 1e6:8.2f} M ops/s "
          f"({1e9 / kernel_rate:.1f} ns/op)")
    print(f"reference    ReferenceCache.apply (OrderedDict), {scope} {n:,} operations, one run: "
          f"{ref_rate / 1e6:8.3f} M ops/s ({1e9 / ref_rate:.0f} ns/op); outputs checked equal")
    print(f"ratio        {kernel_rate / ref_rate:.0f}x (target >= 20x)")
    print(f"floor        a bare prefetched open-addressing table: {1e3 / oa_pf:.1f} M ops/s; "
          f"the kernel reaches {kernel_rate / (1e9 / oa_pf):.0%} of it (target 30 M ops/s)")
    print(f"             the kernel's lookup walk alone (index line, then its record, prefetched; "
          f"no logic): {1e3 / two:.1f} M ops/s ({two:.1f} ns/op)")
    print(f"memory       {s.bytes_per_entry:.3f} bytes per entry at capacity "
          f"({s.nbytes:,} B / {s.capacity:,}); {s.bytes_per_resident:.1f} bytes per resident "
          f"entry now ({s.resident:,} resident)")
    gb = GB_ENTRIES * s.bytes_per_entry
    verdict = "fits" if gb <= BUDGET_GIB * 2**30 else "DOES NOT FIT"
    print(f"GB scale     {GB_ENTRIES:,} entries x {s.bytes_per_entry:.3f} B = {gb / 1e9:.2f} GB "
          f"= {gb / 2**30:.2f} GiB: {verdict} in {BUDGET_GIB} GiB")


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def bench_load(n: int, retention_hours: int, batch: int, seed: int) -> None:
    """Fill a cache to ``n`` entries (distinct keys, none expiring) and measure it."""
    ReadingsCache.warm_up()
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    cache = ReadingsCache(retention_hours=retention_hours, capacity=n)
    t_alloc = time.perf_counter() - t0
    span = (retention_hours - 1) * HOUR  # every store stays live to the end
    stored = 0
    t_fill = time.perf_counter()
    for lo in range(0, n, batch):
        k = np.arange(lo, min(lo + batch, n), dtype=np.int64)
        dev, srv, start, end = key_columns(k, seed)
        t = DAY0 + k * (span // n)
        cache.store(t, dev, srv, start, end, np.zeros(len(k), np.uint8), k.astype(np.uint32))
        stored += len(k)
    fill_s = time.perf_counter() - t_fill
    s = cache.stats()
    rss = rss_bytes() - rss0
    if s.resident != n or s.evicted or s.expired:
        raise AssertionError(f"expected {n:,} resident entries, got {s}")
    # look every tenth entry up again: all must hit
    probe = np.arange(0, n, 10, dtype=np.int64)
    dev, srv, start, end = key_columns(probe, seed)
    t_probe = np.full(len(probe), DAY0 + span, np.int64)
    t1 = time.perf_counter()
    res = cache.lookup(t_probe, dev, srv, start, end)
    look_s = time.perf_counter() - t1
    if not res.hit.all() or not (res.payload_ref == probe.astype(np.uint32)).all():
        raise AssertionError("a resident entry was not found")
    print(f"load         {n:,} entries (capacity {n:,}, retention {retention_hours} h) stored in "
          f"{fill_s:.1f} s ({n / fill_s / 1e6:.2f} M stores/s, batches of {batch:,}); "
          f"allocation {t_alloc:.2f} s")
    print(f"             arrays {s.nbytes:,} B = {s.nbytes / 2**30:.2f} GiB = "
          f"{s.nbytes / n:.3f} B per resident entry")
    print(f"             process RSS grew by {rss:,} B = {rss / 2**30:.2f} GiB = "
          f"{rss / n:.2f} B per resident entry (includes the batch inputs)")
    print(f"             {len(probe):,} lookups of resident keys: all hit, "
          f"{len(probe) / look_s / 1e6:.2f} M lookups/s")
    gb = GB_ENTRIES * s.nbytes / n
    print(f"GB scale     {GB_ENTRIES:,} entries x {s.nbytes / n:.3f} B = {gb / 2**30:.2f} GiB "
          f"(<= {BUDGET_GIB} GiB: {'yes' if gb <= BUDGET_GIB * 2**30 else 'NO'})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--ops", type=int, default=10_000_000, help="operations in the stream")
    parser.add_argument("--keys", type=int, default=1_000_000, help="distinct keys (= capacity)")
    parser.add_argument("--retention-hours", type=int, default=48)
    parser.add_argument("--lookups-per-retention", type=float, default=1.7,
                        help="lookups of one key per retention period (sets the hit ratio)")
    parser.add_argument("--chunk", type=int, default=1024,
                        help="lookups whose misses are stored together, after them")
    parser.add_argument("--batch", type=int, default=65_536,
                        help="operations per apply() call; 0 for one call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ref-ops", type=int, default=0,
                        help="reference on this prefix only (0: the whole stream)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: perf_counter; cpu: this thread's CPU time")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="also fill a cache with N entries and report its memory")
    parser.add_argument("--load-only", action="store_true", help="skip the throughput part")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}; one core; {args.clock} clock, "
          f"medians of {args.repeats}")
    if not args.load_only:
        bench_throughput(args)
    if args.load:
        bench_load(args.load, 72, 1_000_000, args.seed)


if __name__ == "__main__":
    main()
