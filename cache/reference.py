"""A plain-Python readings cache: the reference the kernels are tested and benchmarked against.

It keeps entries in an ``OrderedDict`` in store order. Operations arrive in non-decreasing
time and a store is stamped with its operation's time, so store order is stored-time order;
with one retention for every entry that is also expiry order. Hence the first entry is both
the next to expire and the one "closest to expiry" to evict, and a replacement moves its key
to the end. Every operation first drops the entries with ``stored + R <= t``.

It takes plain Python values (or any sequences of them) and gives the same results and
counters as :class:`dccsim.cache.ReadingsCache`; it validates only the time order.

>>> ref = ReferenceCache(retention_ns=100, capacity=2)
>>> ref.store_one(0, 7, 1, 0, 86_400 * 10**9, 0, 42)
>>> ref.lookup_one(99, 7, 1, 0, 86_400 * 10**9)
(True, 0, 42, 0)
>>> ref.lookup_one(100, 7, 1, 0, 86_400 * 10**9)
(False, 0, 0, 0)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from .stats import CacheStats

__all__ = ["ReferenceCache"]

Key = tuple[int, int, int, int]


class ReferenceCache:
    """Plain-Python readings cache with the same semantics as ``ReadingsCache``.

    Parameters
    ----------
    retention_ns:
        Retention ``R`` in ns (not range-checked here).
    capacity:
        Bound on resident entries, or ``None`` for unbounded.
    """

    def __init__(self, *, retention_ns: int, capacity: int | None = None) -> None:
        self.retention_ns = int(retention_ns)
        self.capacity = capacity
        self._entries: OrderedDict[Key, tuple[int, int, int]] = OrderedDict()
        self._now: int | None = None
        self.hits = self.misses = self.stores = self.replaced = 0
        self.expired = self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def expire(self, t: int) -> int:
        """Advance the clock to ``t`` and drop entries with ``stored + R <= t``."""
        if self._now is not None and t < self._now:
            raise ValueError(f"t_ns: {t} is earlier than the clock {self._now}")
        self._now = t
        entries = self._entries
        limit = t - self.retention_ns
        dropped = 0
        while entries:
            key = next(iter(entries))
            if entries[key][0] > limit:
                break
            del entries[key]
            dropped += 1
        self.expired += dropped
        return dropped

    def lookup_one(
        self, t: int, device: int, srv: int, start: int, end: int
    ) -> tuple[bool, int, int, int]:
        """(hit, code, payload_ref, stored_ns) for one key at time ``t``; zeros on a miss."""
        self.expire(t)
        value = self._entries.get((device, srv, start, end))
        if value is None:
            self.misses += 1
            return False, 0, 0, 0
        self.hits += 1
        stored, code, ref = value
        return True, code, ref, stored

    def store_one(
        self, t: int, device: int, srv: int, start: int, end: int, code: int, payload_ref: int
    ) -> None:
        """Store one response obtained at ``t``, replacing or evicting as needed."""
        self.expire(t)
        entries = self._entries
        key = (device, srv, start, end)
        if key in entries:
            del entries[key]
            self.replaced += 1
        elif self.capacity is not None and len(entries) >= self.capacity:
            entries.popitem(last=False)
            self.evicted += 1
        entries[key] = (t, code, payload_ref)
        self.stores += 1

    def apply(
        self,
        op: Sequence[int],
        t: Sequence[int],
        device: Sequence[int],
        srv: Sequence[int],
        start: Sequence[int],
        end: Sequence[int],
        code: Sequence[int],
        payload_ref: Sequence[int],
    ) -> tuple[list[bool], list[int], list[int], list[int]]:
        """A mixed stream (op 0 lookup, 1 store); returns hit, code, payload_ref, stored_ns."""
        hit: list[bool] = []
        codes: list[int] = []
        refs: list[int] = []
        stored: list[int] = []
        lookup_one, store_one = self.lookup_one, self.store_one
        for k, ti, d, s, a, b, c, r in zip(op, t, device, srv, start, end, code, payload_ref, strict=True):
            if k == 0:
                h, c2, r2, s2 = lookup_one(ti, d, s, a, b)
            elif k == 1:
                store_one(ti, d, s, a, b, c, r)
                h, c2, r2, s2 = False, 0, 0, 0
            else:
                raise ValueError(f"op: expected 0 or 1, got {k}")
            hit.append(h)
            codes.append(c2)
            refs.append(r2)
            stored.append(s2)
        return hit, codes, refs, stored

    def stats(self) -> CacheStats:
        """Counters in the same shape as ``ReadingsCache.stats()`` (no memory figures)."""
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            stores=self.stores,
            replaced=self.replaced,
            expired=self.expired,
            evicted=self.evicted,
            resident=len(self._entries),
            capacity=self.capacity or 0,
            nbytes=0,
        )
