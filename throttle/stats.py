"""Counters of a throttle that merge exactly across shards.

A run split by device into shards gives each shard its own :class:`~dccsim.throttle.Throttle`;
adding the shards' :class:`ThrottleStats` with :meth:`ThrottleStats.merge` gives the whole
run's figures (throttle state is per device, so the per-alert outcomes are the same as one
throttle's). Derived figures are computed from the merged sums, never averaged.

>>> a = ThrottleStats(forwarded=8, throttled=2, excluded=1, would_throttle=2, keys=3,
...                   capacity=32, state_bytes=2560)
>>> b = ThrottleStats(forwarded=5, keys=5, capacity=32, state_bytes=2560)
>>> m = a.merge(b)
>>> m.alerts, m.keys, m.bytes_per_key, m.shards
(16, 8, 80.0, 2)
>>> ThrottleStats.from_dict(m.to_dict()) == m
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["ThrottleStats"]


class ThrottleStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one throttle (shard), or of several merged.

    Attributes
    ----------
    forwarded:
        Alerts with action ``forwarded`` (in dry-run mode this includes the alerts that
        enforcement would have discarded).
    throttled:
        Alerts discarded (action ``throttled``); always 0 in dry-run mode.
    excluded:
        Alerts of an excluded alert code (action ``excluded``).
    would_throttle:
        Alerts that enforcement discards: equal to ``throttled`` when enforcing, the
        dry-run's finding otherwise.
    near_limit:
        Times a key came near its limit: a fixed window reaching ``ceil(0.8 N)`` alerts, or
        a GCRA bucket reaching ``ceil(0.8 N)`` alerts' worth of fill (once per episode).
    keys:
        Keys holding state now.
    evicted:
        Keys dropped to make room because their state had run out (a dropped key behaves
        exactly like a new one, so outputs never depend on eviction).
    capacity:
        Keys the current table takes before it must compact or grow.
    state_bytes:
        Bytes of the state table now.
    shards:
        How many throttles were merged into these figures.
    unreported_discards:
        Alerts discarded since their key's last forwarded alert: no forwarded alert has
        reported them in its throttled count (yet; at the end of a run, never). A storm that
        stops before its key's next alert leaves its discards here.
    stale_discards:
        Discards not attached to their key's next forwarded alert because it came more than
        ``max_report_age_s`` after the key's previous forward (never reported either).
    reports_at_close:
        Synthetic alerts (action ``reported``) made when a key's window closed while it held
        discards (``report_at_close``; 0 without it).
    reported_at_close:
        The discards those reports carried. Every discard is reported by a forwarded alert's
        ``throttled_count``, by a report, or counted in ``stale_discards`` or
        ``unreported_discards``.
    """

    forwarded: int = 0
    throttled: int = 0
    excluded: int = 0
    would_throttle: int = 0
    near_limit: int = 0
    keys: int = 0
    evicted: int = 0
    capacity: int = 0
    state_bytes: int = 0
    shards: int = 1
    unreported_discards: int = 0
    stale_discards: int = 0
    reports_at_close: int = 0
    reported_at_close: int = 0

    @property
    def alerts(self) -> int:
        """Alerts seen: ``forwarded + throttled + excluded``."""
        return self.forwarded + self.throttled + self.excluded

    @property
    def bytes_per_key(self) -> float:
        """State bytes per key when full (``state_bytes / capacity``): the figure to size by."""
        return self.state_bytes / self.capacity if self.capacity else 0.0

    def merge(self, *others: ThrottleStats) -> ThrottleStats:
        """The sum of these counters and ``others`` (shards of one run)."""
        fields = self.__struct_fields__
        total = {f: getattr(self, f) for f in fields}
        for o in others:
            for f in fields:
                total[f] += getattr(o, f)
        return ThrottleStats(**total)

    @classmethod
    def merge_all(cls, stats: Iterable[ThrottleStats]) -> ThrottleStats:
        """The sum of several shards' counters (zero counters for none)."""
        items = list(stats)
        if not items:
            return cls(shards=0)
        return items[0].merge(*items[1:])

    def to_dict(self) -> dict[str, Any]:
        """Counters and derived figures as plain data (for a summary)."""
        out: dict[str, Any] = msgspec.structs.asdict(self)
        out["alerts"] = self.alerts
        out["bytes_per_key"] = self.bytes_per_key
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThrottleStats:
        """Inverse of :meth:`to_dict` (derived figures are recomputed, not read)."""
        return cls(**{f: data[f] for f in cls.__struct_fields__ if f in data})
