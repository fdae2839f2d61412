"""Read-through: lookups whose misses are stored later, when the device's answer arrives.

In the simulation a lookup happens when the DSP picks a request up (time ``t``); on a miss
the request goes to the device and, if the device answers I0 in time, the answer is stored
at its arrival time ``s > t``. Later lookups of the same key at ``t' >= s`` must see it, even
within one batch. :class:`ReadThroughCache` does exactly that over a :class:`ReadingsCache`:

- before each lookup at ``t``, every pending store with ``s <= t`` is applied, in order of
  ``s`` (ties in the order the misses happened);
- the lookup runs; on a miss with ``store_at >= 0`` a store at ``store_at`` is queued
  (``store_at`` must be later than ``t``; ``-1`` means "do not store", e.g. the device failed).

Pending stores live in a binary min-heap that persists across calls, so any batch split gives
identical results. Stores still pending at the end of a run are never applied (their answers
arrived after the last lookup). The plain-Python :class:`ReferenceReadThrough` has the same
semantics over :class:`~dccsim.cache.reference.ReferenceCache` (:class:`ReferenceReadThrough`).

>>> import numpy as np
>>> rt = ReadThroughCache(ReadingsCache(retention_hours=25))
>>> day = 1_717_200_000 * 10**9
>>> key = lambda n: dict(device=np.full(n, 7, np.uint64), srv=np.full(n, 2, np.uint8),
...                      start_ns=np.full(n, day, np.int64), end_ns=np.full(n, day + 86_400 * 10**9, np.int64))
>>> r = rt.read_through(np.array([10, 20, 30]), **key(3), store_at_ns=np.array([25, 28, -1]))
>>> r.hit.tolist()   # the miss at 10 is stored at 25, so the lookup at 30 hits
[False, False, True]
>>> rt.pending       # the second miss's store (at 28) was applied before 30 as well
0
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _kernels as K
from .errors import CacheInputError
from .readings import LookupResult, ReadingsCache
from .reference import ReferenceCache

__all__ = ["ReadThroughCache", "ReferenceReadThrough"]

_NO_ADVANCE = np.iinfo(np.int64).min
_EMPTY_I64 = np.zeros(0, np.int64)
_EMPTY_U64 = np.zeros(0, np.uint64)
_EMPTY_U8 = np.zeros(0, np.uint8)
_EMPTY_U32 = np.zeros(0, np.uint32)
_EMPTY_B = np.zeros(0, np.bool_)


class ReadThroughCache:
    """A :class:`ReadingsCache` whose misses are stored when their answers arrive."""

    def __init__(self, cache: ReadingsCache, initial_pending: int = 1024) -> None:
        self.cache = cache
        cap = max(16, int(initial_pending))
        self._ht = np.zeros(cap, np.int64)
        self._hq = np.zeros(cap, np.int64)
        self._hslot = np.arange(cap, dtype=np.int64)
        self._pd = np.zeros(cap, np.uint64)
        self._pk = np.zeros(cap, np.uint64)
        self._ph = np.zeros(cap, np.uint64)
        self._psm = np.zeros(cap, np.uint64)
        self._meta = np.zeros(2, np.int64)

    @property
    def pending(self) -> int:
        """Stores queued for a time later than the last lookup."""
        return int(self._meta[0])

    def stats(self) -> Any:
        return self.cache.stats()

    def _grow_heap(self) -> None:
        cap = len(self._ht)
        for name in ("_ht", "_hq", "_pd", "_pk", "_ph", "_psm"):
            old = getattr(self, name)
            new = np.zeros(cap * 2, old.dtype)
            new[:cap] = old
            setattr(self, name, new)
        # the heap is full, so the slot array is the heap's slots; the new slots are free
        self._hslot = np.concatenate([self._hslot, np.arange(cap, 2 * cap, dtype=np.int64)])

    def read_through(
        self,
        t_ns: npt.NDArray[np.int64],
        device: npt.NDArray[np.uint64],
        srv: npt.NDArray[np.uint8],
        start_ns: npt.NDArray[np.int64],
        end_ns: npt.NDArray[np.int64],
        store_at_ns: npt.NDArray[np.int64],
        code: npt.NDArray[np.uint8] | None = None,
        payload_ref: npt.NDArray[np.uint32] | None = None,
    ) -> LookupResult:
        """Lookups in time order; see the module docstring. Returns the lookup results."""
        c = self.cache
        cols = c._columns(t_ns=t_ns, device=device, srv=srv, start_ns=start_ns, end_ns=end_ns)
        n = len(cols["t_ns"])
        store_at = np.ascontiguousarray(store_at_ns, dtype=np.int64)
        code_ = np.zeros(n, np.uint8) if code is None else np.ascontiguousarray(code, np.uint8)
        ref_ = np.zeros(n, np.uint32) if payload_ref is None else np.ascontiguousarray(payload_ref, np.uint32)
        for name, arr in (("store_at_ns", store_at), ("code", code_), ("payload_ref", ref_)):
            if arr.shape != (n,):
                raise CacheInputError(f"{name}: expected {n} values like t_ns, got shape {arr.shape}", argument=name)
        later = (store_at >= 0) & (store_at <= cols["t_ns"])
        if later.any():
            i = int(np.argmax(later))
            raise CacheInputError(
                f"store_at_ns[{i}] = {int(store_at[i])}: expected -1 or a time after "
                f"t_ns[{i}] = {int(cols['t_ns'][i])}",
                argument="store_at_ns",
                row=i,
            )
        # pending stores come due no later than the first lookup's time: the clock check of
        # prepare must allow lookups at or after the cache's current time only
        kws, hs = c._prepare(K.OP_LOOKUP, _EMPTY_U8, cols)
        res = LookupResult.empty(n)
        with np.errstate(over="ignore"):
            i = 0
            while True:
                i, status = K.read_through(
                    c._arena,
                    c._index,
                    c._st,
                    cols["t_ns"],
                    cols["device"],
                    cols["srv"],
                    kws,
                    hs,
                    store_at,
                    code_,
                    ref_,
                    self._ht,
                    self._hq,
                    self._hslot,
                    self._pd,
                    self._pk,
                    self._ph,
                    self._psm,
                    self._meta,
                    res.hit,
                    res.code,
                    res.payload_ref,
                    res.stored_ns,
                    i,
                    _NO_ADVANCE,
                )
                if status == 0:
                    return res
                if status == 1:
                    c._grow()
                else:
                    self._grow_heap()

    def advance(self, t_ns: int) -> None:
        """Move the cache's time on to ``t_ns`` with no lookup: apply the stores due by then and
        drop what has expired (nothing if the cache is already at or past ``t_ns``).

        Later lookups must not be earlier than ``t_ns``. A server calls this while idle, so that
        the work of expiry is spread over idle time instead of falling on the next request.
        """
        if isinstance(t_ns, bool) or not isinstance(t_ns, int | np.integer):
            raise CacheInputError(f"t_ns: expected an int of ns, got {t_ns!r}", argument="t_ns")
        until = int(t_ns)
        if not -K.T_LIMIT < until < K.T_LIMIT:
            raise CacheInputError(f"t_ns: {until} is outside +-2**62 ns", argument="t_ns")
        c = self.cache
        with np.errstate(over="ignore"):
            while True:
                _, status = K.read_through(
                    c._arena, c._index, c._st, _EMPTY_I64, _EMPTY_U64, _EMPTY_U8, _EMPTY_U64, _EMPTY_U64,
                    _EMPTY_I64, _EMPTY_U8, _EMPTY_U32, self._ht, self._hq, self._hslot, self._pd, self._pk,
                    self._ph, self._psm, self._meta, _EMPTY_B, _EMPTY_U8, _EMPTY_U32, _EMPTY_I64, 0, until,
                )
                if status == 0:
                    return
                c._grow()  # status 1: only stores run here, so the heap cannot fill


class ReferenceReadThrough:
    """Plain-Python read-through over :class:`ReferenceCache`: the same semantics, obviously."""

    def __init__(self, cache: ReferenceCache) -> None:
        self.cache = cache
        self.heap: list[tuple[int, int, tuple[int, int, int, int], int, int]] = []
        self.seq = 0

    @property
    def pending(self) -> int:
        return len(self.heap)

    def advance(self, t: int) -> None:
        """Apply the stores due by ``t``, then expire up to ``t`` (see ReadThroughCache.advance)."""
        while self.heap and self.heap[0][0] <= t:
            s, _, key, c, r = heapq.heappop(self.heap)
            self.cache.store_one(s, *key, c, r)
        now = self.cache._now
        if now is None or t > now:
            self.cache.expire(t)

    def read_through(
        self, t: Any, device: Any, srv: Any, start: Any, end: Any, store_at: Any, code: Any = None, ref: Any = None
    ) -> list[bool]:
        hits = []
        for i in range(len(t)):
            ti = int(t[i])
            while self.heap and self.heap[0][0] <= ti:
                s, _, key, c, r = heapq.heappop(self.heap)
                self.cache.store_one(s, *key, c, r)
            key = (int(device[i]), int(srv[i]), int(start[i]), int(end[i]))
            hit = self.cache.lookup_one(ti, *key)[0]
            hits.append(hit)
            if not hit and int(store_at[i]) >= 0:
                self.seq += 1
                heapq.heappush(
                    self.heap,
                    (
                        int(store_at[i]),
                        self.seq,
                        key,
                        0 if code is None else int(code[i]),
                        0 if ref is None else int(ref[i]),
                    ),
                )
        return hits
