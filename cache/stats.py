"""Counters of a readings cache that merge exactly across shards.

A run split by ``hash(device) % shards`` gives each shard its own cache; adding the shards'
:class:`CacheStats` with :meth:`CacheStats.merge` gives the whole run's figures, and the
derived ratios are computed from the merged sums, never averaged. A shard's clock is the
time of its own last operation, so bring every shard to the same time first
(``ReadingsCache.expire(t_end)``) when ``expired`` and ``resident`` must be exact.

>>> a = CacheStats(hits=3, misses=1, stores=1, resident=1, capacity=10, nbytes=400)
>>> b = CacheStats(hits=1, misses=3, stores=3, resident=3, capacity=10, nbytes=400)
>>> m = a.merge(b)
>>> m.hits, m.lookups, m.hit_ratio, m.bytes_per_entry, m.shards
(4, 8, 0.5, 40.0, 2)
>>> CacheStats.from_dict(m.to_dict()) == m
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["CacheStats"]


class CacheStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one cache shard, or of several merged.

    Attributes
    ----------
    hits, misses:
        Lookups answered from the cache / not found (or found expired).
    stores:
        Entries written (new keys and replacements).
    replaced:
        Stores that replaced a live entry for the same key (a subset of ``stores``).
    expired:
        Entries removed because their retention ran out (``t >= stored + R``).
    evicted:
        Entries removed early because a bounded cache was full (closest to expiry first).
    resident:
        Live entries now.
    capacity:
        Entries the current allocation holds before it must evict (bounded) or grow.
    nbytes:
        Bytes of the state arrays (records, index, counters).
    shards:
        How many shards were merged into these figures.
    """

    hits: int = 0
    misses: int = 0
    stores: int = 0
    replaced: int = 0
    expired: int = 0
    evicted: int = 0
    resident: int = 0
    capacity: int = 0
    nbytes: int = 0
    shards: int = 1

    @property
    def lookups(self) -> int:
        """Lookups seen: ``hits + misses``."""
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float:
        """``hits / lookups``; 0.0 before the first lookup."""
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    @property
    def bytes_per_entry(self) -> float:
        """Bytes per entry when full (``nbytes / capacity``): the figure to size memory by."""
        return self.nbytes / self.capacity if self.capacity else 0.0

    @property
    def bytes_per_resident(self) -> float:
        """Bytes per live entry now (``nbytes / resident``); 0.0 when empty."""
        return self.nbytes / self.resident if self.resident else 0.0

    def merge(self, *others: CacheStats) -> CacheStats:
        """Sum these counters with those of other shards (an exact, associative merge)."""
        values = {f: getattr(self, f) for f in self.__struct_fields__}
        for other in others:
            if not isinstance(other, CacheStats):
                raise TypeError(f"can only merge CacheStats, got {type(other).__name__}")
            for f in self.__struct_fields__:
                values[f] += getattr(other, f)
        return CacheStats(**values)

    @classmethod
    def merge_all(cls, stats: Iterable[CacheStats]) -> CacheStats:
        """Merge any number of shards' stats; an empty iterable gives all-zero stats."""
        items = list(stats)
        if not items:
            return cls(shards=0)
        return items[0].merge(*items[1:])

    def to_dict(self) -> dict[str, int | float]:
        """Counters and derived figures, ready for ``summary.json``."""
        out: dict[str, int | float] = {f: getattr(self, f) for f in self.__struct_fields__}
        out["lookups"] = self.lookups
        out["hit_ratio"] = self.hit_ratio
        out["bytes_per_entry"] = self.bytes_per_entry
        out["bytes_per_resident"] = self.bytes_per_resident
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CacheStats:
        """Inverse of :meth:`to_dict` (derived figures are ignored; counters must be ints)."""
        return msgspec.convert(
            {f: data[f] for f in cls.__struct_fields__ if f in data}, cls, strict=True
        )
