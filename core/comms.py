"""The comms leg: the WAN between the DSP and the devices, as finite resources with queues.

After the DSP, a request for a device goes over one comms resource: for a SMETS2 device the
Communications Service Provider (CSP) of its region, for a SMETS1 device the SMETS1 Service
Provider (S1SP). Each resource carries at most ``capacity_per_s`` requests per second and
keeps its own first-in, first-out queue.

The model is a fluid queue, so that a verdict does not depend on the scenario's ``scale``
(capacities scale with it, as the DSP's slots do, and no server count is floored):

- a resource holds a backlog of work in nanoseconds; it drains at one ns per ns of time;
- a request arriving at ``t`` (the time the DSP is done with it) waits the backlog it finds,
  ``wait = backlog / capacity`` in requests, then adds its own work, ``1e9 / capacity`` ns;
- a request whose answer comes after its caller's time-out is answered E21 (E30 for a
  future-dated command) at the time-out, and still uses the resource: like the DSP, the comms
  leg works through its queue and does not cancel what a caller has given up on.

Arrivals are taken in time order within a chunk; an arrival earlier than the resource's last
one (the DSP's classes have different service times, so a later chunk can finish a request a
little before an earlier chunk's last) is taken at that last time.

A cache hit never reaches this leg. SMETS1 device requests cost wake-ups (SMS) at the S1SP,
``wakeups_per_read`` each; a SMETS1 cache hit saves as many.

>>> import numpy as np
>>> leg = CommsLeg(CommsConfig(names=("csp", "s1sp"), capacity_per_s=(10.0, 2.0), s1sp=1),
...                route=np.array([0, 1], np.uint8))
>>> (leg.process(np.array([1, 1, 1]), np.zeros(3, np.int64)) / 1e9).tolist()  # three at once, two per second
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _kernels as K

__all__ = ["CommsConfig", "CommsLeg", "CommsStats", "reference_fluid", "PEAK_INTERVAL_S"]

#: the interval over which :attr:`CommsStats.peak_utilisation` is taken (15 minutes, as the
#: summary's series)
PEAK_INTERVAL_S = 900
_PEAK_NS = PEAK_INTERVAL_S * 1_000_000_000


@dataclass(frozen=True)
class CommsConfig:
    """The comms resources: names, capacities (requests per second, already scaled), which
    one is the S1SP, and wake-ups per SMETS1 device request."""

    names: tuple[str, ...]
    capacity_per_s: tuple[float, ...]
    s1sp: int
    wakeups_per_read: float = 1.0

    def __post_init__(self) -> None:
        if len(self.names) != len(self.capacity_per_s) or not self.names:
            raise ValueError("CommsConfig: expected one capacity per resource name")
        if not all(np.isfinite(c) and c > 0 for c in self.capacity_per_s):
            raise ValueError(f"CommsConfig.capacity_per_s: expected numbers > 0, got {list(self.capacity_per_s)}")
        if not 0 <= self.s1sp < len(self.names):
            raise ValueError(f"CommsConfig.s1sp: expected a resource index below {len(self.names)}, got {self.s1sp}")

    @property
    def work_ns(self) -> npt.NDArray[np.float64]:
        """Nanoseconds of a resource's time one request takes."""
        return 1e9 / np.asarray(self.capacity_per_s, np.float64)


@dataclass
class CommsStats:
    """Per-resource totals of a run (arrays indexed like ``names``); :meth:`merge` adds them
    (peaks and maximum waits take the maximum).

    ``sent``: device requests that went over the resource; ``timed_out``: those answered in
    time without their comms wait and too late with it (E21, E30 for a future-dated command);
    ``cache_hits``: reads of the resource's devices answered from the cache (never sent);
    ``peak_utilisation``: the busiest ``PEAK_INTERVAL_S`` of the run, its arrivals' work over
    the interval (above 1: the queue grew through it).
    """

    names: tuple[str, ...]
    capacity_per_s: npt.NDArray[np.float64]
    s1sp: int
    wakeups_per_read: float
    sent: npt.NDArray[np.int64]
    timed_out: npt.NDArray[np.int64]
    cache_hits: npt.NDArray[np.int64]
    wait_s: npt.NDArray[np.float64]
    max_wait_s: npt.NDArray[np.float64]
    peak_queue: npt.NDArray[np.float64]
    peak_utilisation: npt.NDArray[np.float64]
    window_s: float = 0.0

    @classmethod
    def empty(cls, config: CommsConfig) -> CommsStats:
        r = len(config.names)
        z = np.zeros(r, np.int64)
        f = np.zeros(r, np.float64)
        return cls(
            names=config.names, capacity_per_s=np.asarray(config.capacity_per_s, np.float64), s1sp=config.s1sp,
            wakeups_per_read=config.wakeups_per_read, sent=z, timed_out=z.copy(),
            cache_hits=z.copy(), wait_s=f, max_wait_s=f.copy(), peak_queue=f.copy(), peak_utilisation=f.copy(),
        )  # fmt: skip

    def merge(self, *others: CommsStats) -> CommsStats:
        out = self
        for other in others:
            out = out._merge(other)
        return out

    def _merge(self, other: CommsStats) -> CommsStats:
        if other.names != self.names:
            raise ValueError(f"CommsStats.merge: resources {other.names} differ from {self.names}")
        return CommsStats(
            names=self.names, capacity_per_s=self.capacity_per_s, s1sp=self.s1sp,
            wakeups_per_read=self.wakeups_per_read, sent=self.sent + other.sent,
            timed_out=self.timed_out + other.timed_out, cache_hits=self.cache_hits + other.cache_hits,
            wait_s=self.wait_s + other.wait_s, max_wait_s=np.maximum(self.max_wait_s, other.max_wait_s),
            peak_queue=np.maximum(self.peak_queue, other.peak_queue),
            peak_utilisation=np.maximum(self.peak_utilisation, other.peak_utilisation),
            window_s=self.window_s + other.window_s,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain figures: per resource, and the S1SP's wake-ups (spent and saved by the cache)."""
        resources = {}
        for r, name in enumerate(self.names):
            sent = int(self.sent[r])
            busy = sent / float(self.capacity_per_s[r])
            resources[name] = {
                "capacity_per_s": float(self.capacity_per_s[r]),
                "requests": sent,
                "timed_out": int(self.timed_out[r]),
                "cache_hits": int(self.cache_hits[r]),
                "utilisation": busy / self.window_s if self.window_s > 0 else 0.0,
                "peak_queue": float(self.peak_queue[r]),
                "peak_utilisation": float(self.peak_utilisation[r]),
                "mean_wait_s": float(self.wait_s[r]) / sent if sent else 0.0,
                "max_wait_s": float(self.max_wait_s[r]),
            }
        w = self.wakeups_per_read
        return {
            "resources": resources,
            "wakeups": float(self.sent[self.s1sp]) * w,
            "wakeups_saved": float(self.cache_hits[self.s1sp]) * w,
        }


@dataclass
class CommsLeg:
    """The comms resources' state for one run, and the route of each device.

    ``route[row]`` is the resource of the device at registry row ``row``. Feed
    :meth:`process` the device requests of each chunk, chunk after chunk.
    """

    config: CommsConfig
    route: npt.NDArray[np.uint8]
    _stats: CommsStats = field(init=False)

    def __post_init__(self) -> None:
        self.route = np.ascontiguousarray(self.route, np.uint8)
        if len(self.route) and int(self.route.max()) >= len(self.config.names):
            raise ValueError(f"CommsLeg.route: expected resource indices below {len(self.config.names)}")
        r = len(self.config.names)
        self._work = self.config.work_ns
        self._backlog = np.zeros(r, np.float64)
        self._t_last = np.full(r, np.iinfo(np.int64).min, np.int64)
        self._t_first: int | None = None
        self._t_end: int | None = None
        self._stats = CommsStats.empty(self.config)
        self._per_interval: dict[int, npt.NDArray[np.int64]] = {}  # arrivals per resource, by interval

    def process(self, resource: npt.NDArray[Any], t_arrive_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Queue wait (ns) of each request, in the given rows' order (any order in time): the
        requests join their resources' queues in arrival order (ties in row order)."""
        n = len(t_arrive_ns)
        wait = np.zeros(n, np.int64)
        if not n:
            return wait
        res = np.asarray(resource)
        if len(res) != n or (n and int(res.max()) >= len(self.config.names)):
            raise ValueError(f"CommsLeg.process: expected {n} resource indices below {len(self.config.names)}")
        order = np.argsort(t_arrive_ns, kind="stable")
        t = np.ascontiguousarray(t_arrive_ns[order], np.int64)
        acc = np.zeros((len(self.config.names), K.N_CACC), np.float64)
        w = np.empty(n, np.int64)
        K.comms_fluid(np.ascontiguousarray(res[order], np.uint8), t, self._work, self._backlog, self._t_last, acc, w)
        wait[order] = w
        self._add(acc, int(t[0]), int(t[-1]))
        self._count_intervals(res[order], t)
        return wait

    def _add(self, acc: npt.NDArray[np.float64], t0: int, t1: int) -> None:
        s = self._stats
        s.sent += acc[:, K.CACC_SENT].astype(np.int64)
        s.wait_s += acc[:, K.CACC_WAIT_S]
        np.maximum(s.max_wait_s, acc[:, K.CACC_MAX_WAIT_S], out=s.max_wait_s)
        np.maximum(s.peak_queue, acc[:, K.CACC_PEAK_QUEUE], out=s.peak_queue)
        if self._t_first is None:
            self._t_first = t0
        self._t_end = max(t1, self._t_end if self._t_end is not None else t1)
        s.window_s = (self._t_end - self._t_first) / 1e9

    def _count_intervals(self, res: npt.NDArray[Any], t: npt.NDArray[np.int64]) -> None:
        """Arrivals per resource per interval (``t`` sorted), for the peak utilisation."""
        r = len(self.config.names)
        iv = t // _PEAK_NS
        first = int(iv[0])
        counts = np.bincount((iv - first) * r + res.astype(np.int64), minlength=(int(iv[-1]) - first + 1) * r)
        for k, row in enumerate(counts.reshape(-1, r)):
            if row.any():
                have = self._per_interval.get(first + k)
                self._per_interval[first + k] = row if have is None else have + row

    def count(self, resource: npt.NDArray[Any], *, timed_out: bool = False, cache_hits: bool = False) -> None:
        """Add requests (their resources) to the time-out or cache-hit counts."""
        c = np.bincount(np.asarray(resource, np.int64), minlength=len(self.config.names))
        if timed_out:
            self._stats.timed_out += c
        if cache_hits:
            self._stats.cache_hits += c

    def stats(self) -> CommsStats:
        s = self._stats
        return CommsStats(
            names=s.names, capacity_per_s=s.capacity_per_s.copy(), s1sp=s.s1sp, wakeups_per_read=s.wakeups_per_read,
            sent=s.sent.copy(), timed_out=s.timed_out.copy(),
            cache_hits=s.cache_hits.copy(), wait_s=s.wait_s.copy(), max_wait_s=s.max_wait_s.copy(),
            peak_queue=s.peak_queue.copy(), peak_utilisation=self._peak_utilisation(), window_s=s.window_s,
        )  # fmt: skip

    def _peak_utilisation(self) -> npt.NDArray[np.float64]:
        r = len(self.config.names)
        if not self._per_interval:
            return np.zeros(r, np.float64)
        busiest = np.max(np.stack(list(self._per_interval.values())), axis=0)
        return busiest / (np.asarray(self.config.capacity_per_s, np.float64) * PEAK_INTERVAL_S)


def reference_fluid(
    work_ns: list[float], resource: list[int], t_arrive: list[int]
) -> tuple[list[int], list[list[float]]]:
    """Plain-Python reference of :func:`dccsim.core._kernels.comms_fluid` on fresh state
    (arrivals in time order): the waits, and per resource ``[sent, wait_s, max_wait_s,
    peak_queue]``."""
    backlog = [0.0] * len(work_ns)
    last: list[int | None] = [None] * len(work_ns)
    acc = [[0.0] * K.N_CACC for _ in work_ns]
    waits = []
    for r, t in zip(resource, t_arrive, strict=True):
        prev = last[r]
        if prev is None or t > prev:
            if prev is not None and backlog[r] > 0.0:
                backlog[r] = max(0.0, backlog[r] - (t - prev))
            last[r] = t
        wait = int(backlog[r])
        waits.append(wait)
        queue = backlog[r] / work_ns[r]
        backlog[r] += work_ns[r]
        a = acc[r]
        a[K.CACC_SENT] += 1
        a[K.CACC_WAIT_S] += wait * 1e-9
        a[K.CACC_MAX_WAIT_S] = max(a[K.CACC_MAX_WAIT_S], wait * 1e-9)
        a[K.CACC_PEAK_QUEUE] = max(a[K.CACC_PEAK_QUEUE], queue)
    return waits, acc
