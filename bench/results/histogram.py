"""Mergeable latency histograms with fixed log-linear buckets.

Every histogram shares one bucket layout (see :mod:`dccsim.bench.results._kernels`): whole
nanoseconds, exact below 128 ns, then 64 equal buckets per power of two up to ``2**47`` ns
(about 1.63 days), plus an underflow bucket (values ``<= 0``) and an overflow bucket (values
``>= 2**47``). Because the layout is fixed, merging is an array add and shards of a run
combine exactly: recording the parts and merging gives the same counts as recording the whole.

Percentiles use the nearest-rank definition: ``q`` selects the value of rank
``max(1, ceil(n * (q / 100)))`` in sorted order, the same value as
``numpy.percentile(x, q, method="inverted_cdf")``. The histogram reports the midpoint of the
bucket holding that value, clamped to the exact ``[min, max]``; ranks ``1`` and ``n`` report
the exact ``min`` and ``max``. So a reported percentile is

- exact below 128 ns,
- within :data:`RELATIVE_ERROR` (``2**-7``, 0.78 %) of the true nearest-rank value from
  128 ns to ``2**47`` ns,
- the exact ``max`` (an upper bound) when the rank falls in the overflow bucket, and ``0``
  clamped to ``[min, max]`` when it falls in the underflow bucket.

``count``, ``min``, ``max`` and the sum behind ``mean`` are exact, whatever the range.

>>> import numpy as np
>>> h = LatencyHistogram()
>>> h.record(np.array([1_000, 2_000, 3_000, 250_000_000], dtype=np.int64))
>>> h.count, h.min, h.max
(4, 1000, 250000000)
>>> h.percentiles([50, 100]).tolist()  # 2000 lies in bucket [2000, 2016): its midpoint
[2007.0, 250000000.0]
>>> other = LatencyHistogram.from_dict(h.to_dict())
>>> other.merge(h).count
8

A histogram takes 21.5 KB (2689 int64 counts); :class:`IntervalHistograms` takes that per
interval (96 quarter hours: 2.1 MB).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any, Self

import numpy as np

from ._kernels import (
    MAX_EXP,
    N_BUCKETS,
    OVERFLOW,
    SUB_BITS,
    SUB_COUNT,
    UNDERFLOW,
    record_groups_kernel,
    record_intervals_kernel,
    record_kernel,
)

__all__ = [
    "MAX_TRACKABLE_NS",
    "N_BUCKETS",
    "RELATIVE_ERROR",
    "GroupedHistograms",
    "IntervalHistograms",
    "LatencyHistogram",
    "bucket_bounds",
    "reference_bucket_index",
    "reference_percentile",
]

#: the largest value (ns) counted in a regular bucket; above it values go to the overflow bucket
MAX_TRACKABLE_NS = (1 << MAX_EXP) - 1
#: bound on |reported - true| / true for a percentile in a regular bucket
RELATIVE_ERROR = 2.0 ** -(SUB_BITS + 1)

_I64_MIN = int(np.iinfo(np.int64).min)
_I64_MAX = int(np.iinfo(np.int64).max)
_FORMAT = "dccsim.latency_histogram"
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Plain-Python references: obviously correct, used by the differential tests.


def reference_bucket_index(v: int) -> int:
    """The bucket index of ``v`` ns, computed from the layout's definition."""
    if v <= 0:
        return UNDERFLOW
    if v > MAX_TRACKABLE_NS:
        return OVERFLOW
    if v < 2 * SUB_COUNT:
        return v
    e = v.bit_length() - 1  # 2**e <= v < 2**(e+1)
    width = 1 << (e - SUB_BITS)
    return 2 * SUB_COUNT + (e - SUB_BITS - 1) * SUB_COUNT + (v - (1 << e)) // width


def _reference_bounds(i: int) -> tuple[int, int]:
    """``[lo, hi)`` of regular bucket ``i`` (``0 < i < OVERFLOW``)."""
    if i < 2 * SUB_COUNT:
        return i, i + 1
    e = (i - 2 * SUB_COUNT) // SUB_COUNT + SUB_BITS + 1
    width = 1 << (e - SUB_BITS)
    lo = (1 << e) + (i % SUB_COUNT) * width
    return lo, lo + width


def reference_percentile(counts: Iterable[int], vmin: int, vmax: int, q: float) -> float:
    """The percentile ``q`` of a histogram given by its bucket counts and exact extremes."""
    counts = [int(c) for c in counts]
    n = sum(counts)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(n * (q / 100)))
    if rank == 1:
        return float(vmin)
    if rank >= n:
        return float(vmax)
    seen = 0
    for i, c in enumerate(counts):  # noqa: B007 - i, the bucket reached, is read after the loop
        seen += c
        if seen >= rank:
            break
    if i == UNDERFLOW:
        value = 0
    elif i == OVERFLOW:
        value = vmax
    else:
        lo, hi = _reference_bounds(i)
        value = lo + (hi - lo - 1) // 2
    return float(min(max(value, vmin), vmax))


# ---------------------------------------------------------------------------------------------
# The layout as arrays (built on first use, not at import).


@functools.cache
def bucket_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Inclusive lower and exclusive upper bounds (int64 ns) of every bucket.

    The underflow bucket is ``[int64 min, 1)``, the overflow bucket ``[2**47, int64 max]``.
    The arrays are read-only.
    """
    lo = np.empty(N_BUCKETS, np.int64)
    hi = np.empty(N_BUCKETS, np.int64)
    i = np.arange(2 * SUB_COUNT, OVERFLOW)
    shift = i // SUB_COUNT - 1
    lo[1 : 2 * SUB_COUNT] = np.arange(1, 2 * SUB_COUNT)
    hi[1 : 2 * SUB_COUNT] = lo[1 : 2 * SUB_COUNT] + 1
    lo[2 * SUB_COUNT : OVERFLOW] = (i % SUB_COUNT + SUB_COUNT) << shift
    hi[2 * SUB_COUNT : OVERFLOW] = lo[2 * SUB_COUNT : OVERFLOW] + (1 << shift)
    lo[UNDERFLOW], hi[UNDERFLOW] = _I64_MIN, 1
    lo[OVERFLOW], hi[OVERFLOW] = MAX_TRACKABLE_NS + 1, _I64_MAX
    lo.flags.writeable = False
    hi.flags.writeable = False
    return lo, hi


@functools.cache
def _representatives() -> np.ndarray:
    lo, hi = bucket_bounds()
    mid = lo + (hi - lo - 1) // 2
    mid[UNDERFLOW] = 0
    mid[OVERFLOW] = _I64_MAX  # replaced by the exact max
    mid.flags.writeable = False
    return mid


def _check_values(name: str, values: Any) -> np.ndarray:
    if not isinstance(values, np.ndarray):
        raise ValueError(f"{name}: expected a numpy int64 array, got {type(values).__name__}")
    if values.dtype != np.int64:
        raise ValueError(f"{name}: expected dtype int64, got {values.dtype}")
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {values.shape}")
    return np.ascontiguousarray(values)


def _check_qs(qs: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"qs: expected a sequence of percentiles, got shape {arr.shape}")
    bad = ~((arr >= 0) & (arr <= 100))
    if bad.any():
        raise ValueError(f"q: expected a percentile in [0, 100], got {arr[bad][0]!r}")
    return arr


def _percentiles(
    counts: np.ndarray, mins: np.ndarray, maxs: np.ndarray, qs: np.ndarray
) -> np.ndarray:
    """Percentiles (float64[rows, len(qs)]) of histogram rows; NaN for an empty row."""
    totals = counts.sum(axis=1)
    ranks = np.maximum(np.ceil(totals[:, None] * (qs[None, :] / 100)), 1)
    cum = np.cumsum(counts, axis=1)
    idx = np.empty(ranks.shape, np.intp)
    for j in range(qs.shape[0]):
        idx[:, j] = (cum < ranks[:, j : j + 1]).sum(axis=1)
    idx = np.minimum(idx, N_BUCKETS - 1)
    lo = mins[:, None]
    hi = maxs[:, None]
    out = _representatives()[idx]
    out = np.where(idx == OVERFLOW, hi, out)
    out = np.clip(out, lo, hi).astype(np.float64)
    out = np.where(ranks <= 1, lo, out)
    out = np.where(ranks >= totals[:, None], hi, out)
    out[totals == 0] = np.nan
    return out


class LatencyHistogram:
    """Counts of latencies (int64 ns) in fixed log-linear buckets, with exact extremes and sum.

    Parameters: none; every histogram has the same layout, so any two merge.
    """

    __slots__ = ("_acc", "_counts", "_sum")

    def __init__(self) -> None:
        self._counts = np.zeros(N_BUCKETS, np.int64)
        # [min, max, pending sum of v >> 32, pending sum of v & 0xFFFFFFFF]
        self._acc = np.array([_I64_MAX, _I64_MIN, 0, 0], np.int64)
        self._sum = 0

    def record(self, values_ns: np.ndarray) -> None:
        """Count every value of ``values_ns`` (1-D int64, nanoseconds)."""
        values = _check_values("values_ns", values_ns)
        # a chunk of fewer than 2**31 values cannot overflow the kernel's two sum halves
        step = 1 << 30
        for start in range(0, values.shape[0], step):
            record_kernel(values[start : start + step], self._counts, self._acc)
            self._sum += (int(self._acc[2]) << 32) + int(self._acc[3])
            self._acc[2:] = 0

    def merge(self, other: LatencyHistogram) -> Self:
        """Add ``other``'s counts to this histogram (in place); returns ``self``."""
        if not isinstance(other, LatencyHistogram):
            raise ValueError(f"other: expected a LatencyHistogram, got {type(other).__name__}")
        self._counts += other._counts
        self._acc[0] = min(self._acc[0], other._acc[0])
        self._acc[1] = max(self._acc[1], other._acc[1])
        self._sum += other._sum
        return self

    @property
    def counts(self) -> np.ndarray:
        """The bucket counts (read-only view, int64[N_BUCKETS]); see :func:`bucket_bounds`."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    @property
    def count(self) -> int:
        """How many values were recorded."""
        return int(self._counts.sum())

    @property
    def underflow(self) -> int:
        """How many recorded values were ``<= 0``."""
        return int(self._counts[UNDERFLOW])

    @property
    def overflow(self) -> int:
        """How many recorded values were above :data:`MAX_TRACKABLE_NS`."""
        return int(self._counts[OVERFLOW])

    @property
    def min(self) -> int | None:
        """The exact smallest value, or None when empty."""
        return int(self._acc[0]) if self.count else None

    @property
    def max(self) -> int | None:
        """The exact largest value, or None when empty."""
        return int(self._acc[1]) if self.count else None

    @property
    def sum(self) -> int:
        """The exact sum of the values (a Python int, never overflows)."""
        return self._sum

    @property
    def mean(self) -> float:
        """The mean value in ns (NaN when empty)."""
        n = self.count
        return self._sum / n if n else math.nan

    def percentile(self, q: float) -> float:
        """The nearest-rank percentile ``q`` (0..100) in ns; NaN when empty."""
        return float(self.percentiles([q])[0])

    def percentiles(self, qs: Iterable[float]) -> np.ndarray:
        """Percentiles ``qs`` (each 0..100) in ns as float64; NaN when empty."""
        q = _check_qs(list(qs))
        return _percentiles(self._counts[None, :], self._acc[:1], self._acc[1:2], q)[0]

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-serialisable form: only non-zero buckets are listed."""
        nz = np.flatnonzero(self._counts)
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "sub_bits": SUB_BITS,
            "max_exp": MAX_EXP,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "sum": self._sum,
            "index": nz.tolist(),
            "counts": self._counts[nz].tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from :meth:`to_dict` output; a bad field raises ValueError."""
        expected = {"format": _FORMAT, "version": _FORMAT_VERSION, "sub_bits": SUB_BITS,
                    "max_exp": MAX_EXP}  # fmt: skip
        for key, want in expected.items():
            if data.get(key) != want:
                raise ValueError(f"histogram {key}: expected {want!r}, got {data.get(key)!r}")
        try:
            index = np.asarray(data["index"], dtype=np.int64)
            counts = np.asarray(data["counts"], dtype=np.int64)
            count, total = int(data["count"]), int(data["sum"])
            vmin, vmax = data["min"], data["max"]
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"histogram: malformed field ({exc!r})") from exc
        if index.shape != counts.shape or index.ndim != 1:
            raise ValueError(
                f"histogram index/counts: expected two lists of one length, got "
                f"{index.shape} and {counts.shape}"
            )
        if index.size and (index.min() < 0 or index.max() >= N_BUCKETS):
            raise ValueError(f"histogram index: expected values in [0, {N_BUCKETS}), got "
                             f"[{index.min()}, {index.max()}]")  # fmt: skip
        if (counts < 0).any():
            raise ValueError("histogram counts: expected non-negative counts")
        h = cls()
        np.add.at(h._counts, index, counts)
        if h.count != count:
            raise ValueError(f"histogram count: got {count}, but the buckets hold {h.count}")
        if count:
            if vmin is None or vmax is None:
                raise ValueError("histogram min/max: expected integers for a non-empty histogram")
            h._acc[0], h._acc[1] = int(vmin), int(vmax)
        h._sum = total
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (
            bool(np.array_equal(self._counts, other._counts))
            and self._sum == other._sum
            and self.min == other.min
            and self.max == other.max
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.count:
            return "LatencyHistogram(count=0)"
        p50, p99 = self.percentiles([50, 99])
        return (
            f"LatencyHistogram(count={self.count}, min={self.min}, p50={p50:.0f}, "
            f"p99={p99:.0f}, max={self.max})"
        )


class GroupedHistograms:
    """One latency histogram per group (an SRV code, a request class): every group's counts,
    extremes and sum in one pass (:func:`~dccsim.bench.results._kernels.record_groups_kernel`).

    >>> import numpy as np
    >>> g = GroupedHistograms(3)
    >>> g.record(np.array([5, 7, 100], np.int64), np.array([0, 2, 0], np.uint8))
    >>> g.histogram(0).count, g.histogram(0).max, g.groups()
    (2, 100, [0, 2])
    """

    __slots__ = ("_counts", "_max", "_min", "_sum_hi", "_sum_lo", "_sums")

    def __init__(self, n_groups: int) -> None:
        self._counts = np.zeros((int(n_groups), N_BUCKETS), np.int64)
        self._min = np.full(int(n_groups), _I64_MAX, np.int64)
        self._max = np.full(int(n_groups), _I64_MIN, np.int64)
        self._sum_hi = np.zeros(int(n_groups), np.int64)
        self._sum_lo = np.zeros(int(n_groups), np.int64)
        self._sums = [0] * int(n_groups)

    @property
    def n_groups(self) -> int:
        return int(self._counts.shape[0])

    def record(self, values_ns: np.ndarray, groups: np.ndarray) -> None:
        """Count each value of ``values_ns`` (1-D int64) into its group (``groups``: 1-D
        integers from 0 to ``n_groups - 1``, as long as the values)."""
        values = _check_values("values_ns", values_ns)
        groups = np.ascontiguousarray(groups)
        if groups.shape != values.shape or groups.dtype.kind not in "ui":
            raise ValueError(f"groups: expected integers, one per value, got {groups.dtype} {groups.shape}")
        if groups.size and (int(groups.min()) < 0 or int(groups.max()) >= self.n_groups):
            raise ValueError(f"groups: expected values in [0, {self.n_groups}), got "
                             f"[{int(groups.min())}, {int(groups.max())}]")  # fmt: skip
        step = 1 << 30
        for start in range(0, values.shape[0], step):
            record_groups_kernel(values[start : start + step], groups[start : start + step], self._counts,
                                 self._min, self._max, self._sum_hi, self._sum_lo)  # fmt: skip
            for g in np.flatnonzero(self._sum_hi | self._sum_lo).tolist():
                self._sums[g] += (int(self._sum_hi[g]) << 32) + int(self._sum_lo[g])
            self._sum_hi[:] = 0
            self._sum_lo[:] = 0

    def merge(self, other: GroupedHistograms) -> Self:
        """Add ``other``'s counts (the same number of groups) to these (in place)."""
        if not isinstance(other, GroupedHistograms) or other.n_groups != self.n_groups:
            raise ValueError(f"other: expected GroupedHistograms of {self.n_groups} groups")
        self._counts += other._counts
        np.minimum(self._min, other._min, out=self._min)
        np.maximum(self._max, other._max, out=self._max)
        self._sums = [a + b for a, b in zip(self._sums, other._sums, strict=True)]
        return self

    def groups(self) -> list[int]:
        """The groups that hold a value, in order."""
        return np.flatnonzero(self._counts.any(axis=1)).tolist()

    def histogram(self, g: int) -> LatencyHistogram:
        """Group ``g``'s histogram (a copy)."""
        h = LatencyHistogram()
        h._counts[:] = self._counts[g]
        h._acc[0], h._acc[1] = self._min[g], self._max[g]
        h._sum = self._sums[g]
        return h


class IntervalHistograms:
    """One latency histogram per time interval: percentiles over a day without the samples.

    Parameters
    ----------
    interval_ns:
        Width of each interval (ns, > 0).
    n_intervals:
        How many intervals; alternatively give ``end_ns`` and the count is
        ``ceil((end_ns - start_ns) / interval_ns)``.
    start_ns:
        Start of the first interval (ns, default 0).

    Values whose time falls outside ``[start_ns, start_ns + n_intervals * interval_ns)`` are
    not counted in any interval; :attr:`outside` says how many there were.

    >>> import numpy as np
    >>> ih = IntervalHistograms(interval_ns=10, n_intervals=3)
    >>> ih.record(np.array([1, 2, 15, 99], np.int64), np.array([5, 7, 100, 1], np.int64))
    >>> ih.counts_per_interval().tolist(), ih.outside
    ([2, 1, 0], 1)
    >>> ih.percentiles_per_interval([50, 100])[:2].tolist()
    [[5.0, 7.0], [100.0, 100.0]]
    """

    __slots__ = ("_counts", "_max", "_min", "_outside", "interval_ns", "start_ns")

    def __init__(
        self,
        interval_ns: int,
        n_intervals: int | None = None,
        *,
        start_ns: int = 0,
        end_ns: int | None = None,
    ) -> None:
        interval_ns = int(interval_ns)
        if interval_ns <= 0:
            raise ValueError(f"interval_ns: expected a positive width, got {interval_ns}")
        if (n_intervals is None) == (end_ns is None):
            raise ValueError("IntervalHistograms: give exactly one of n_intervals and end_ns")
        if n_intervals is None:
            assert end_ns is not None
            if end_ns <= start_ns:
                raise ValueError(f"end_ns: expected > start_ns ({start_ns}), got {end_ns}")
            n_intervals = -((start_ns - end_ns) // interval_ns)
        n_intervals = int(n_intervals)
        if n_intervals <= 0:
            raise ValueError(f"n_intervals: expected a positive count, got {n_intervals}")
        self.interval_ns = interval_ns
        self.start_ns = int(start_ns)
        self._counts = np.zeros((n_intervals, N_BUCKETS), np.int64)
        self._min = np.full(n_intervals, _I64_MAX, np.int64)
        self._max = np.full(n_intervals, _I64_MIN, np.int64)
        self._outside = 0

    @property
    def n_intervals(self) -> int:
        return int(self._counts.shape[0])

    @property
    def end_ns(self) -> int:
        """End (exclusive) of the last interval."""
        return self.start_ns + self.n_intervals * self.interval_ns

    @property
    def outside(self) -> int:
        """How many values had a time outside the covered window (not counted)."""
        return self._outside

    @property
    def counts(self) -> np.ndarray:
        """Bucket counts per interval (read-only view, int64[n_intervals, N_BUCKETS])."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    def interval_starts_ns(self) -> np.ndarray:
        """Start of each interval (int64 ns)."""
        return self.start_ns + self.interval_ns * np.arange(self.n_intervals, dtype=np.int64)

    def record(self, t_ns: np.ndarray, values_ns: np.ndarray) -> None:
        """Count ``values_ns[i]`` in the interval holding ``t_ns[i]`` (both 1-D int64)."""
        t = _check_values("t_ns", t_ns)
        values = _check_values("values_ns", values_ns)
        if t.shape != values.shape:
            raise ValueError(
                f"t_ns, values_ns: expected equal lengths, got {t.shape[0]} and {values.shape[0]}"
            )
        self._outside += int(
            record_intervals_kernel(
                t, values, self.start_ns, self.interval_ns, self._counts, self._min, self._max
            )
        )

    def merge(self, other: IntervalHistograms) -> Self:
        """Add ``other``'s counts (same start, width and count of intervals) in place."""
        if not isinstance(other, IntervalHistograms):
            raise ValueError(f"other: expected IntervalHistograms, got {type(other).__name__}")
        mine = (self.start_ns, self.interval_ns, self.n_intervals)
        theirs = (other.start_ns, other.interval_ns, other.n_intervals)
        if mine != theirs:
            raise ValueError(
                f"other: expected (start_ns, interval_ns, n_intervals) = {mine}, got {theirs}"
            )
        self._counts += other._counts
        np.minimum(self._min, other._min, out=self._min)
        np.maximum(self._max, other._max, out=self._max)
        self._outside += other._outside
        return self

    def counts_per_interval(self) -> np.ndarray:
        """How many values each interval holds (int64[n_intervals])."""
        return self._counts.sum(axis=1)

    def min_per_interval(self) -> np.ndarray:
        """Exact smallest value per interval (float64 ns, NaN where empty)."""
        return np.where(self.counts_per_interval() > 0, self._min, np.nan)

    def max_per_interval(self) -> np.ndarray:
        """Exact largest value per interval (float64 ns, NaN where empty)."""
        return np.where(self.counts_per_interval() > 0, self._max, np.nan)

    def percentiles_per_interval(self, qs: Iterable[float]) -> np.ndarray:
        """Percentiles (float64[n_intervals, len(qs)], ns) per interval; NaN where empty."""
        q = _check_qs(list(qs))
        return _percentiles(self._counts, self._min, self._max, q)

    def interval(self, k: int) -> tuple[np.ndarray, int | None, int | None]:
        """Bucket counts (read-only), exact min and max of interval ``k``."""
        counts = self.counts[k]
        if not counts.any():
            return counts, None, None
        return counts, int(self._min[k]), int(self._max[k])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalHistograms):
            return NotImplemented
        return (
            (self.start_ns, self.interval_ns, self._outside)
            == (other.start_ns, other.interval_ns, other._outside)
            and bool(np.array_equal(self._counts, other._counts))
            and bool(np.array_equal(self._min, other._min))
            and bool(np.array_equal(self._max, other._max))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"IntervalHistograms(start_ns={self.start_ns}, interval_ns={self.interval_ns}, "
            f"n_intervals={self.n_intervals}, count={int(self._counts.sum())}, "
            f"outside={self._outside})"
        )
