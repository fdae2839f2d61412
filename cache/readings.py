"""The readings cache: answers repeated 4.6.1 / 4.8.1 / 4.8.3 reads without a device trip.

Semantics
---------
A key is ``(device, srv, period start, period end)``. An entry stored at time ``s`` serves
lookups at ``t`` with ``s <= t < s + R`` (``R``, the retention, is 25 to 72 hours) and is
never served from ``s + R`` on. A store for a key that is present replaces the entry (its
retention starts again). A bounded cache that is full evicts the entry closest to expiry
(with one retention for all, the oldest store; ties go to the earlier store) to make room.

Operations carry their own time and must arrive in non-decreasing time order, across
batches too; each is applied after everything before it in stream order, so a lookup sees
a store made earlier in the same batch. Every operation first expires the entries its time
has made stale, so results and counters are identical however a stream is cut into batches.

What the caller decides
-----------------------
The cache is a leaf: it knows nothing of messages. The caller (the pipeline)

- maps SRVs to small codes (``srv``, ``uint8``; the catalogue index does) and only sends
  cacheable ones (4.6.1, 4.8.1, 4.8.3),
- stores only what may be served again: ``I0`` responses from ESME devices. :meth:`store`
  stores what it is given; ``code`` is the caller's response-code enumeration (``uint8``),
  returned on a hit,
- keeps payloads itself and passes a ``uint32`` reference (e.g. a row in a payload table),
- shards by device if it wants to: each shard owns one :class:`ReadingsCache`, and their
  :class:`~dccsim.cache.CacheStats` merge.

Columns and dtypes
------------------
========== ======= ===========================================================
argument   dtype   meaning
========== ======= ===========================================================
op         uint8   ``OP_LOOKUP`` (0) or ``OP_STORE`` (1); :meth:`apply` only
t_ns       int64   time of the operation, ns (|t| < 2**62), non-decreasing
device     uint64  EUI-64
srv        uint8   caller's SRV code (0-255)
start_ns   int64   read period start, ns since 1970, whole seconds, >= 0
end_ns     int64   read period end, whole seconds, 0 <= end - start < 2**29 s (17 years)
code       uint8   response code to keep (stores)
payload_ref uint32 caller's payload reference (stores)
========== ======= ===========================================================

Period bounds that are not whole seconds are rejected, not rounded: two periods that
differ by a nanosecond are different keys, and the record keeps seconds.

Record layout and memory
------------------------
State is two flat arrays plus a counter vector (see :mod:`dccsim.cache._kernels`):

- a **ring of 28-byte records** in store order (= expiry order), ``A = C + C/32`` records
  for capacity ``C``: device (8 B), period (8 B: ``start_s << 30 | length_s``; start needs
  34 bits for any non-negative int64 ns, the length 29, and bit 29 marks a replaced record
  dead), stored time modulo 2**48 ns (6 B), srv (1 B), code (1 B), payload reference
  (4 B). The stored time is exact in ns: every record in the ring is younger than
  ``R <= 72 h``, and ``2**48 ns`` is about 78.2 h, so it is rebuilt from the clock without
  ambiguity. The ``C/32`` slack holds replaced (dead) records until the head passes them or
  a compaction drops them.
- a **Robin Hood index** of ``N = 1.25 C`` 8-byte slots (``hash32 << 32 | position``; load
  at most 0.8). The 32-bit hash is also the fingerprint, so a probe touches the ring only
  for a likely match, and deletion shifts the cluster back (no tombstones).

Bytes per entry at capacity: ``28 * (1 + 1/32) + 8 * 1.25 = 28.875 + 10 = 38.875`` (plus
152 bytes of counters). A GB population of about 300 M entries (32 M electricity meters,
three SRVs, 72 h of daily reads) needs ``300e6 * 38.875 B = 11.66e9 B = 10.86 GiB``. If
replaced records ever fill the ring's slack while it is less than 1/16 dead, the ring grows
once, to ``C + C/15`` records: at most ``28 * 16/15 + 10 = 39.87`` bytes per entry.

Expiry is bulk and cheap: the ring head is the oldest record, so each operation compares its
time with the head's and pops only what has expired (one index deletion each); an eviction
pops the head too. A store that replaces a live entry marks the old record dead and appends
the new one; the head drops dead records as it passes them. When the ring is full and at
least 1/16 of it is dead, one pass over the ring drops them (a compaction), so a replacement
costs at most about 16 records looked at, amortised (replacements happen when two misses of
one key are in flight at once). An unbounded cache (``capacity=None``) doubles its arrays
when it is full (briefly holding old and new); size a long run with a bound to keep memory
flat.

Examples
--------
>>> import numpy as np
>>> HOUR = 3_600 * 10**9
>>> cache = ReadingsCache(retention_hours=25)
>>> def col(values, dtype):
...     return np.array(values, dtype=dtype)
>>> day = 1_717_200_000 * 10**9  # a whole second
>>> key = dict(device=col([7], np.uint64), srv=col([2], np.uint8),
...            start_ns=col([day], np.int64), end_ns=col([day + 24 * HOUR], np.int64))
>>> cache.lookup(col([0], np.int64), **key).hit
array([False])
>>> cache.store(col([10], np.int64), **key, code=col([0], np.uint8),
...             payload_ref=col([42], np.uint32))
>>> r = cache.lookup(col([25 * HOUR + 9], np.int64), **key)
>>> bool(r.hit[0]), int(r.payload_ref[0]), int(r.stored_ns[0])
(True, 42, 10)
>>> bool(cache.lookup(col([25 * HOUR + 10], np.int64), **key).hit[0])  # s + R: gone
False
>>> s = cache.stats()
>>> s.hits, s.misses, s.stores, s.expired, s.resident
(1, 2, 1, 1, 0)
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Real
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _kernels as K
from .errors import CacheConfigError, CacheInputError
from .stats import CacheStats

__all__ = [
    "ReadingsCache",
    "LookupResult",
    "OP_LOOKUP",
    "OP_STORE",
    "MIN_RETENTION_HOURS",
    "MAX_RETENTION_HOURS",
    "MAX_CAPACITY",
    "BYTES_PER_ENTRY",
]

#: op-kind codes of :meth:`ReadingsCache.apply`
OP_LOOKUP: int = K.OP_LOOKUP
OP_STORE: int = K.OP_STORE

MIN_RETENTION_HOURS = 25
MAX_RETENTION_HOURS = 72
_NS_PER_HOUR = 3_600 * 10**9

#: the index holds 32-bit ring positions and a 32-bit multiply-shift home
MAX_CAPACITY = 3_000_000_000
_RECORD_BYTES = K.WORDS * 4
_INDEX_SLOT_BYTES = 8

#: bytes per entry of a full cache (before any ring growth), without the 152 bytes of counters
BYTES_PER_ENTRY: float = _RECORD_BYTES * (1 + 1 / 32) + _INDEX_SLOT_BYTES * 1.25


def _ring_records(capacity: int) -> int:
    return capacity + max(capacity >> 5, 1)


def _ring_records_max(capacity: int) -> int:
    return capacity + max(capacity // 15, 2)


def _index_slots(capacity: int) -> int:
    return capacity + (capacity >> 2) + 1


def _retention_ns(hours: object) -> int:
    if isinstance(hours, bool) or not isinstance(hours, Real):
        raise CacheConfigError(
            key="retention_hours",
            value=hours,
            expected=f"a number of hours from {MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS}",
        )
    if not math.isfinite(float(hours)) or not (
        MIN_RETENTION_HOURS <= hours <= MAX_RETENTION_HOURS
    ):
        raise CacheConfigError(
            key="retention_hours",
            value=hours,
            expected=f"{MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS} hours (the Data Retention Period)",
        )
    return round(Fraction(hours) * _NS_PER_HOUR)


def _capacity(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CacheConfigError(key=name, value=value, expected="a whole number of entries")
    if not 1 <= value <= MAX_CAPACITY:
        raise CacheConfigError(key=name, value=value, expected=f"1 to {MAX_CAPACITY} entries")
    return int(value)


class LookupResult(NamedTuple):
    """Outcome of each row of a lookup (or of the lookup rows of a mixed stream).

    Where ``hit`` is False (a miss, or a store row of :meth:`ReadingsCache.apply`) the
    other columns are 0.
    """

    hit: npt.NDArray[np.bool_]
    code: npt.NDArray[np.uint8]
    payload_ref: npt.NDArray[np.uint32]
    stored_ns: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, n: int) -> LookupResult:
        """Preallocated (uninitialised) outputs for ``n`` rows, to pass as ``out=``."""
        return cls(
            np.empty(n, np.bool_), np.empty(n, np.uint8), np.empty(n, np.uint32),
            np.empty(n, np.int64),
        )


_DTYPES: dict[str, np.dtype[Any]] = {
    "op": np.dtype(np.uint8),
    "t_ns": np.dtype(np.int64),
    "device": np.dtype(np.uint64),
    "srv": np.dtype(np.uint8),
    "start_ns": np.dtype(np.int64),
    "end_ns": np.dtype(np.int64),
    "code": np.dtype(np.uint8),
    "payload_ref": np.dtype(np.uint32),
}
_OUT_DTYPES = dict(zip(LookupResult._fields, (np.bool_, np.uint8, np.uint32, np.int64), strict=True))
_NONE_U8 = np.zeros(0, np.uint8)
_NONE_U32 = np.zeros(0, np.uint32)
_NO_OUT = LookupResult.empty(0)


def _column(name: str, value: object, n: int | None) -> npt.NDArray[Any]:
    expected = _DTYPES[name]
    if not isinstance(value, np.ndarray):
        raise CacheInputError(
            f"{name}: expected a 1-D numpy array of {expected}, got {type(value).__name__}",
            argument=name,
        )
    if value.dtype != expected:
        raise CacheInputError(
            f"{name}: expected dtype {expected}, got {value.dtype} "
            f"(convert with .astype(np.{expected}) if the values fit)",
            argument=name,
        )
    if value.ndim != 1:
        raise CacheInputError(
            f"{name}: expected a 1-D array, got shape {value.shape}", argument=name
        )
    if n is not None and value.shape[0] != n:
        raise CacheInputError(
            f"{name}: expected {n} rows (as t_ns), got {value.shape[0]}", argument=name
        )
    return value if value.flags.c_contiguous else np.ascontiguousarray(value)


def _outputs(out: LookupResult | None, n: int) -> LookupResult:
    if out is None:
        return LookupResult.empty(n)
    if not isinstance(out, LookupResult):
        raise CacheInputError(
            f"out: expected a LookupResult, got {type(out).__name__}", argument="out"
        )
    for field, dtype in _OUT_DTYPES.items():
        arr = getattr(out, field)
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != (n,):
            raise CacheInputError(
                f"out.{field}: expected a writable {np.dtype(dtype)} array of {n} rows",
                argument=f"out.{field}",
            )
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            raise CacheInputError(
                f"out.{field}: expected a C-contiguous writable array", argument=f"out.{field}"
            )
    return out


class ReadingsCache:
    """One shard of the readings cache, with state in fixed-size arrays.

    Parameters
    ----------
    retention_hours:
        Data Retention Period ``R``, 25 to 72 hours (int or float; kept exactly in ns).
    capacity:
        Most entries held at once; when full, a new key evicts the entry closest to expiry.
        ``None`` (default) grows without bound instead, doubling its arrays when full.
    initial_capacity:
        First allocation of an unbounded cache (ignored when ``capacity`` is given).

    Raises
    ------
    CacheConfigError
        For a retention outside 25-72 h or a capacity that is not 1 to ``MAX_CAPACITY``.
    """

    def __init__(
        self,
        *,
        retention_hours: float,
        capacity: int | None = None,
        initial_capacity: int = 4096,
    ) -> None:
        self._retention_ns = _retention_ns(retention_hours)
        if capacity is None:
            cap = _capacity(initial_capacity, "initial_capacity")
        else:
            cap = _capacity(capacity, "capacity")
        self._bounded = capacity is not None
        self._arena, self._index = self._allocate(cap)
        self._st = np.zeros(K.N_STATE, np.int64)
        self._st[K.NOW] = np.iinfo(np.int64).min
        self._st[K.CAP] = cap
        self._st[K.RING_MAX] = _ring_records_max(cap)
        self._st[K.BOUNDED] = int(self._bounded)
        self._st[K.RETENTION] = self._retention_ns
        # per-batch period keys and hashes, reused between calls (not counted in nbytes)
        self._scratch = np.empty((2, 0), np.uint64)

    @staticmethod
    def _allocate(cap: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
        arena = np.zeros(_ring_records(cap) * K.WORDS, np.uint32)
        index = np.full(_index_slots(cap), K.EMPTY, np.uint64)
        return arena, index

    # -- properties ------------------------------------------------------------------------
    @property
    def retention_ns(self) -> int:
        """The retention ``R`` in nanoseconds."""
        return self._retention_ns

    @property
    def capacity(self) -> int | None:
        """The bound on resident entries, or ``None`` for an unbounded (growing) cache."""
        return int(self._st[K.CAP]) if self._bounded else None

    @property
    def clock_ns(self) -> int | None:
        """Time of the last operation (or :meth:`expire`), ``None`` before the first."""
        now = int(self._st[K.NOW])
        return None if now == np.iinfo(np.int64).min else now

    @property
    def nbytes(self) -> int:
        """Bytes held by the state arrays."""
        return self._arena.nbytes + self._index.nbytes + self._st.nbytes

    def __len__(self) -> int:
        return int(self._st[K.RESIDENT])

    def __repr__(self) -> str:
        bound = f"capacity={self.capacity}" if self._bounded else "capacity=None"
        return (
            f"ReadingsCache(retention_hours={self._retention_ns / _NS_PER_HOUR:g}, {bound}, "
            f"resident={len(self)})"
        )

    def stats(self) -> CacheStats:
        """A snapshot of the counters (see :class:`CacheStats`)."""
        st = self._st
        return CacheStats(
            hits=int(st[K.HITS]),
            misses=int(st[K.MISSES]),
            stores=int(st[K.STORES]),
            replaced=int(st[K.REPLACED]),
            expired=int(st[K.EXPIRED]),
            evicted=int(st[K.EVICTED]),
            resident=int(st[K.RESIDENT]),
            capacity=int(st[K.CAP]),
            nbytes=self.nbytes,
        )

    # -- operations ------------------------------------------------------------------------
    def lookup(
        self,
        t_ns: npt.NDArray[np.int64],
        device: npt.NDArray[np.uint64],
        srv: npt.NDArray[np.uint8],
        start_ns: npt.NDArray[np.int64],
        end_ns: npt.NDArray[np.int64],
        *,
        out: LookupResult | None = None,
    ) -> LookupResult:
        """Look up a time-ordered batch of keys; a hit costs the caller no device traffic.

        Returns a :class:`LookupResult` (``out`` if given): hit mask, stored response code,
        payload reference and the time the entry was stored (0 where missed).
        """
        cols = self._columns(t_ns=t_ns, device=device, srv=srv, start_ns=start_ns, end_ns=end_ns)
        res = _outputs(out, len(cols["t_ns"]))
        self._run(K.OP_LOOKUP, _NONE_U8, cols, _NONE_U8, _NONE_U32, res, True)
        return res

    def store(
        self,
        t_ns: npt.NDArray[np.int64],
        device: npt.NDArray[np.uint64],
        srv: npt.NDArray[np.uint8],
        start_ns: npt.NDArray[np.int64],
        end_ns: npt.NDArray[np.int64],
        code: npt.NDArray[np.uint8],
        payload_ref: npt.NDArray[np.uint32],
    ) -> None:
        """Store a time-ordered batch of responses, each obtained at its ``t_ns``.

        Everything given is stored (the caller filters to ``I0`` from ESME); a store for a
        present key replaces it, and a new key in a full bounded cache evicts first.
        """
        cols = self._columns(
            t_ns=t_ns, device=device, srv=srv, start_ns=start_ns, end_ns=end_ns,
            code=code, payload_ref=payload_ref,
        )
        self._run(K.OP_STORE, _NONE_U8, cols, cols["code"], cols["payload_ref"], _NO_OUT, False)

    def apply(
        self,
        op: npt.NDArray[np.uint8],
        t_ns: npt.NDArray[np.int64],
        device: npt.NDArray[np.uint64],
        srv: npt.NDArray[np.uint8],
        start_ns: npt.NDArray[np.int64],
        end_ns: npt.NDArray[np.int64],
        code: npt.NDArray[np.uint8],
        payload_ref: npt.NDArray[np.uint32],
        *,
        out: LookupResult | None = None,
    ) -> LookupResult:
        """Apply a time-ordered stream mixing lookups (``op == 0``) and stores (``op == 1``).

        This is the shape of a simulation, where a miss is stored later, at its response
        time, between other lookups. ``code`` and ``payload_ref`` are read on store rows
        only. Returns one :class:`LookupResult` row per operation (store rows: no hit).
        """
        cols = self._columns(
            op=op, t_ns=t_ns, device=device, srv=srv, start_ns=start_ns, end_ns=end_ns,
            code=code, payload_ref=payload_ref,
        )
        res = _outputs(out, len(cols["t_ns"]))
        self._run(-1, cols["op"], cols, cols["code"], cols["payload_ref"], res, True)
        return res

    def expire(self, t_ns: int) -> int:
        """Advance the clock to ``t_ns`` and drop what has expired; return how many."""
        if isinstance(t_ns, bool) or not isinstance(t_ns, (int, np.integer)):
            raise CacheInputError(f"t_ns: expected an int of ns, got {t_ns!r}", argument="t_ns")
        t = int(t_ns)
        if not -K.T_LIMIT < t < K.T_LIMIT:
            raise CacheInputError(f"t_ns: {t} is outside +-2**62 ns", argument="t_ns")
        if t < self._st[K.NOW]:
            raise CacheInputError(
                f"t_ns: {t} is earlier than the cache clock {int(self._st[K.NOW])}; "
                "operations must arrive in non-decreasing time order",
                argument="t_ns",
            )
        with np.errstate(over="ignore"):
            return int(K.expire(self._arena, self._index, self._st, t))

    @classmethod
    def warm_up(cls) -> None:
        """Compile (or load from the on-disk cache) every kernel, outside any timed region."""
        c = cls(retention_hours=MIN_RETENTION_HOURS, capacity=1)
        one_i = np.zeros(1, np.int64)
        one_u64 = np.zeros(1, np.uint64)
        one_u8 = np.zeros(1, np.uint8)
        c.lookup(one_i, one_u64, one_u8, one_i, one_i)
        c.store(one_i, one_u64, one_u8, one_i, one_i, one_u8, np.zeros(1, np.uint32))
        c.apply(one_u8, one_i, one_u64, one_u8, one_i, one_i, one_u8, np.zeros(1, np.uint32))
        c.expire(1)
        g = cls(retention_hours=MIN_RETENTION_HOURS, initial_capacity=1)
        g.store(
            np.arange(2, dtype=np.int64), np.arange(2, dtype=np.uint64), np.zeros(2, np.uint8),
            np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(2, np.uint8),
            np.zeros(2, np.uint32),
        )

    # -- internals -------------------------------------------------------------------------
    def _columns(self, **given: object) -> dict[str, npt.NDArray[Any]]:
        t = _column("t_ns", given["t_ns"], None)
        n = t.shape[0]
        cols = {"t_ns": t}
        for name, value in given.items():
            if name != "t_ns":
                cols[name] = _column(name, value, n)
        return cols

    def _prepare(
        self, uniform: int, op: npt.NDArray[np.uint8], cols: dict[str, npt.NDArray[Any]]
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """Check a batch (nothing applied if a row is bad: raises naming it) and return its
        packed periods and hashes, in scratch arrays reused from call to call."""
        n = cols["t_ns"].shape[0]
        if self._scratch.shape[1] < n:
            self._scratch = np.empty((2, n), np.uint64)
        kws = self._scratch[0, :n]
        hs = self._scratch[1, :n]
        with np.errstate(over="ignore"):  # uint64 hashing wraps on purpose (no-JIT runs)
            row, why = K.prepare(
                uniform, op, cols["t_ns"], cols["device"], cols["srv"], cols["start_ns"], cols["end_ns"],
                self._st[K.NOW], kws, hs,
            )
        if row >= 0:
            self._raise_invalid(int(row), int(why), cols)
        return kws, hs

    def _run(
        self,
        uniform: int,
        op: npt.NDArray[np.uint8],
        cols: dict[str, npt.NDArray[Any]],
        code: npt.NDArray[np.uint8],
        ref: npt.NDArray[np.uint32],
        res: LookupResult,
        write_out: bool,
    ) -> None:
        t, dev, srv = cols["t_ns"], cols["device"], cols["srv"]
        n = t.shape[0]
        kws, hs = self._prepare(uniform, op, cols)
        with np.errstate(over="ignore"):  # uint64 hashing wraps on purpose (no-JIT runs)
            i = 0
            while True:
                done = K.run_ops(
                    self._arena, self._index, self._st, uniform, op[i:] if uniform < 0 else op,
                    t[i:], dev[i:], srv[i:], kws[i:], hs[i:],
                    code[i:] if uniform != K.OP_LOOKUP else code,
                    ref[i:] if uniform != K.OP_LOOKUP else ref,
                    res.hit[i:] if write_out else res.hit,
                    res.code[i:] if write_out else res.code,
                    res.payload_ref[i:] if write_out else res.payload_ref,
                    res.stored_ns[i:] if write_out else res.stored_ns,
                    write_out,
                )
                i += int(done)
                if i >= n:
                    return
                self._grow()

    def _grow(self) -> None:
        need = int(self._st[K.NEED])
        self._st[K.NEED] = 0
        cap = int(self._st[K.CAP])
        if need == K.NEED_RING:  # more ring for dead records; same capacity and index size
            arena = np.zeros(int(self._st[K.RING_MAX]) * K.WORDS, np.uint32)
            index = np.full(self._index.shape[0], K.EMPTY, np.uint64)
            K.rebuild(self._arena, self._index, self._st, arena, index)
            self._arena, self._index = arena, index
            self._st[K.RING_GROWTHS] += 1
            return
        new_cap = min(cap * 2, MAX_CAPACITY)
        if new_cap == cap:
            raise CacheConfigError(
                f"capacity: an unbounded cache cannot grow past {MAX_CAPACITY} entries",
                key="capacity",
                value=None,
                expected=f"a cache that holds at most {MAX_CAPACITY} entries",
            )
        arena, index = self._allocate(new_cap)
        K.rebuild(self._arena, self._index, self._st, arena, index)
        self._arena, self._index = arena, index
        self._st[K.CAP] = new_cap
        self._st[K.RING_MAX] = _ring_records_max(new_cap)
        self._st[K.GROWTHS] += 1

    def _raise_invalid(self, row: int, why: int, cols: dict[str, npt.NDArray[Any]]) -> None:
        t = int(cols["t_ns"][row])
        start = int(cols["start_ns"][row])
        end = int(cols["end_ns"][row])
        if why == K.BAD_OP:
            name = "op"
            msg = f"op[{row}] = {int(cols['op'][row])}: expected 0 (lookup) or 1 (store)"
        elif why == K.BAD_T:
            name = "t_ns"
            msg = f"t_ns[{row}] = {t}: expected |t| < 2**62 ns"
        elif why == K.BAD_ORDER:
            name = "t_ns"
            prev = int(cols["t_ns"][row - 1]) if row else int(self._st[K.NOW])
            msg = (
                f"t_ns[{row}] = {t} is earlier than the operation before it ({prev}); "
                "operations must arrive in non-decreasing time order"
            )
        elif why == K.BAD_START:
            name = "start_ns"
            msg = f"start_ns[{row}] = {start}: expected a period start at or after 1970 (>= 0)"
        elif why == K.BAD_START_ALIGN:
            name = "start_ns"
            msg = f"start_ns[{row}] = {start}: expected whole seconds (a multiple of 10**9 ns)"
        elif why == K.BAD_END_ALIGN:
            name = "end_ns"
            msg = f"end_ns[{row}] = {end}: expected whole seconds (a multiple of 10**9 ns)"
        else:
            name = "end_ns"
            msg = (
                f"end_ns[{row}] = {end}: expected start_ns <= end_ns < start_ns + 2**29 s, "
                f"start_ns is {start}"
            )
        raise CacheInputError(msg + "; nothing in this batch was applied", argument=name, row=row)
