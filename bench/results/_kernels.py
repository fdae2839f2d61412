"""Numba kernels of ``dccsim.bench``: latency histogram bucketing and counting, and the
EUI-64 text of the logs (:func:`eui_text_kernel`, :func:`eui_parse_kernel`, whose plain-Python
references are :func:`dccsim.core.eui.int_to_eui` and :func:`dccsim.core.eui.eui_to_int`).

Kernels take arrays and scalars only and write into preallocated outputs; the typed wrappers
in :mod:`dccsim.bench.results.histogram` check dtypes and shapes first. Each kernel has a plain-Python
reference in :mod:`dccsim.bench.results.histogram` (``reference_*``) that a differential test compares
it with.

Bucket layout (log-linear, as in HdrHistogram, in whole nanoseconds; ``SUB_BITS = 6``):

- index 0: the underflow bucket, every value ``<= 0``;
- indices 1..127: one bucket per nanosecond, exact (values 1..127 ns);
- above: every power of two ``[2**e, 2**(e+1))`` for ``e >= 7`` splits into 64 equal
  buckets of width ``2**(e-6)``, so a bucket is at most 1/64 of its lower bound wide;
- the last index: the overflow bucket, every value ``>= 2**MAX_EXP`` (about 1.63 days).

The index of a value ``v`` in ``[1, 2**MAX_EXP)`` is ``s * 64 + (v >> s)`` with
``s = max(e - 6, 0)`` and ``e = floor(log2(v))``.
``floor(log2(v))`` comes from a count of leading zeros (one machine instruction under
Numba; ``int.bit_length`` when the JIT is disabled). ``math.frexp`` gives the same exponent but
made recording 4x slower (7.1 vs 1.7 ns/value, 10 M lognormal values).
"""

from __future__ import annotations

import numpy as np
from numba.core.extending import overload
from numba.cpython.unsafe.numbers import leading_zeros

from ._jit import jit

__all__ = [
    "MAX_EXP",
    "N_BUCKETS",
    "OVERFLOW",
    "SUB_BITS",
    "SUB_COUNT",
    "UNDERFLOW",
    "EUI_TEXT_WIDTH",
    "bucket_index",
    "eui_parse_kernel",
    "eui_text_kernel",
    "record_intervals_kernel",
    "record_kernel",
    "tally_alerts_kernel",
    "tally_requests_kernel",
    "warm_up",
]

#: bits of sub-bucket resolution: 2**SUB_BITS buckets per power of two
SUB_BITS = 6
SUB_COUNT = 1 << SUB_BITS
#: values at or above 2**MAX_EXP ns go to the overflow bucket
MAX_EXP = 47
UNDERFLOW = 0
OVERFLOW = (MAX_EXP - SUB_BITS + 1) * SUB_COUNT
N_BUCKETS = OVERFLOW + 1
_MAX_TRACKABLE = (1 << MAX_EXP) - 1
_LOW32 = 0xFFFFFFFF


def _floor_log2(v: int) -> int:
    """``floor(log2(v))`` for ``v > 0``; the plain-Python body runs when the JIT is disabled."""
    return int(v).bit_length() - 1


@overload(_floor_log2)
def _floor_log2_jit(v):  # type: ignore[no-untyped-def]
    def impl(v):  # type: ignore[no-untyped-def]
        return 63 - leading_zeros(np.uint64(v))

    return impl


@jit
def bucket_index(v: int) -> int:
    """The bucket index of one value in nanoseconds (int64)."""
    if v <= 0:
        return UNDERFLOW
    if v > _MAX_TRACKABLE:
        return OVERFLOW
    s = _floor_log2(v) - SUB_BITS
    if s < 0:
        s = 0
    return s * SUB_COUNT + (v >> s)


@jit
def record_kernel(values: np.ndarray, counts: np.ndarray, acc: np.ndarray) -> None:
    """Count ``values`` (int64) into ``counts`` (int64[N_BUCKETS]).

    ``acc`` (int64[4]) is updated in place: ``[min, max, sum of v >> 32, sum of v & 0xFFFFFFFF]``.
    The sum travels in two halves so that no int64 overflows for fewer than 2**31 values per
    call; the caller folds them into a Python int (exact, any size) and zeroes them.
    """
    lo = acc[0]
    hi = acc[1]
    sum_hi = acc[2]
    sum_lo = acc[3]
    for i in range(values.shape[0]):
        v = values[i]
        counts[bucket_index(v)] += 1
        if v < lo:
            lo = v
        if v > hi:
            hi = v
        sum_hi += v >> 32
        sum_lo += v & _LOW32
    acc[0] = lo
    acc[1] = hi
    acc[2] = sum_hi
    acc[3] = sum_lo


@jit
def record_intervals_kernel(
    t_ns: np.ndarray,
    values: np.ndarray,
    start_ns: int,
    interval_ns: int,
    counts: np.ndarray,
    mins: np.ndarray,
    maxs: np.ndarray,
) -> int:
    """Count ``values`` into row ``(t_ns - start_ns) // interval_ns`` of ``counts``.

    ``counts`` is int64[n_intervals, N_BUCKETS]; ``mins`` and ``maxs`` (int64[n_intervals])
    hold each interval's exact extremes and are updated in place. Returns how many values had
    a time outside ``[start_ns, start_ns + n_intervals * interval_ns)``; they are not counted.
    """
    n_intervals = counts.shape[0]
    outside = 0
    for i in range(values.shape[0]):
        dt = t_ns[i] - start_ns
        if dt < 0:
            outside += 1
            continue
        k = dt // interval_ns
        if k >= n_intervals:
            outside += 1
            continue
        v = values[i]
        counts[k, bucket_index(v)] += 1
        if v < mins[k]:
            mins[k] = v
        if v > maxs[k]:
            maxs[k] = v
    return outside


@jit
def record_groups_kernel(
    values: np.ndarray,
    groups: np.ndarray,
    counts: np.ndarray,
    mins: np.ndarray,
    maxs: np.ndarray,
    sums_hi: np.ndarray,
    sums_lo: np.ndarray,
) -> None:
    """Count ``values`` (int64) into row ``groups[i]`` of ``counts`` (int64[n_groups, N_BUCKETS]).

    ``mins``, ``maxs``, ``sums_hi`` and ``sums_lo`` (int64[n_groups]) are updated in place as
    :func:`record_kernel` updates its ``acc``, one group at a time (the caller folds the sum
    halves and zeroes them; fewer than 2**31 values per call).
    """
    for i in range(values.shape[0]):
        v = values[i]
        g = groups[i]
        counts[g, bucket_index(v)] += 1
        if v < mins[g]:
            mins[g] = v
        if v > maxs[g]:
            maxs[g] = v
        sums_hi[g] += v >> 32
        sums_lo[g] += v & _LOW32


#: bytes of an EUI-64 as DUIS writes it: 8 octets of 2 hex digits, 7 dashes
EUI_TEXT_WIDTH = 23
_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", np.uint8).copy()
#: value of each byte as a hex digit, -1 for a byte that is not one (either case)
_HEX_VALUE = np.full(256, -1, np.int8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _HEX_VALUE[_c] = _i
    _HEX_VALUE[bytes([_c]).lower()[0]] = _i


@jit
def eui_text_kernel(values: np.ndarray, digits: np.ndarray, out: np.ndarray) -> None:
    """Write each uint64 of ``values`` as ``00-1A-2B-3C-4D-5E-6F-70`` (upper case) into
    ``out``: :data:`EUI_TEXT_WIDTH` bytes per value, back to back. ``digits`` is ``0-9A-F``."""
    for i in range(values.shape[0]):
        v = values[i]
        base = i * 23
        for j in range(8):
            b = (v >> np.uint64(56 - 8 * j)) & np.uint64(0xFF)
            out[base + 3 * j] = digits[b >> np.uint64(4)]
            out[base + 3 * j + 1] = digits[b & np.uint64(15)]
            if j < 7:
                out[base + 3 * j + 2] = 45  # "-"


@jit
def eui_parse_kernel(data: np.ndarray, offsets: np.ndarray, hex_value: np.ndarray, out: np.ndarray) -> int:
    """Parse string ``i`` (``data[offsets[i]:offsets[i + 1]]``) as a DUIS EUI-64 into
    ``out[i]``; the index of the first string that is not one (``-1``: all are)."""
    for i in range(out.shape[0]):
        lo = offsets[i]
        if offsets[i + 1] - lo != 23:
            return i
        v = np.uint64(0)
        for j in range(8):
            hi_ = hex_value[data[lo + 3 * j]]
            lo_ = hex_value[data[lo + 3 * j + 1]]
            if hi_ < 0 or lo_ < 0 or (j < 7 and data[lo + 3 * j + 2] != 45):
                return i
            v = (v << np.uint64(8)) | np.uint64(hi_ * 16 + lo_)
        out[i] = v
    return -1


def eui_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The EUI-64 text of ``values`` (uint64) as an Arrow string's ``(offsets, data)``:
    int32 offsets (a batch holds under 93 M values) and :data:`EUI_TEXT_WIDTH` bytes each."""
    n = values.shape[0]
    data = np.empty(n * EUI_TEXT_WIDTH, np.uint8)
    eui_text_kernel(values, _HEX_DIGITS, data)
    return np.arange(0, (n + 1) * EUI_TEXT_WIDTH, EUI_TEXT_WIDTH, dtype=np.int32), data


def eui_parse(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
    """The uint64 of each string (Arrow ``offsets`` into ``data``) and the index of the first
    one that is not a DUIS EUI-64 (``-1``: none)."""
    out = np.zeros(offsets.shape[0] - 1, np.uint64)
    return out, int(eui_parse_kernel(data, offsets, _HEX_VALUE, out))


@jit
def _interval_of(t, day0, interval_ns, n_int):  # type: ignore[no-untyped-def]
    k = (t - day0) // interval_ns
    return 0 if k < 0 else (n_int - 1 if k > n_int - 1 else k)


@jit
def _bounds(k, day0, interval_ns, n_int):  # type: ignore[no-untyped-def]
    """The times that fall in clipped interval ``k``: ``[lo, hi)`` (the first and last
    intervals reach out to the extremes of int64)."""
    lo = day0 + k * interval_ns if k > 0 else np.iinfo(np.int64).min
    hi = day0 + (k + 1) * interval_ns if k < n_int - 1 else np.iinfo(np.int64).max
    return np.int64(lo), np.int64(hi)


@jit
def tally_requests_kernel(  # type: ignore[no-untyped-def]
    t_scheduled, t_done, cls, srv, code, outcome, invalid, attempt, within, backlog, wait,
    day0, interval_ns, codes_ok, failed_outcome, cache_outcome, device_outcome, refused_outcome, shed_outcome,
    fd_class, fd_code, peak, by_class, by_srv, within_by_srv, codes, outcomes, invalid_codes, series_requests,
    series_within, series_done, series_backlog, series_failed, series_cache, series_device, series_refused,
    refused_by_class, shed_by_class,
):  # fmt: skip
    """One pass over a chunk's request rows for the run tally's counts (the reference is
    :meth:`dccsim.bench.results.summary.RunTally.record_requests_reference`, whole-array NumPy).

    Adds into the count arrays; ``codes_ok`` flags the response codes that are no failure (I0,
    I99). Returns ``(within, retries, retries unanswered, peak backlog, wait sum, future-dated
    commands acknowledged)``, the peak starting from ``peak``.
    """
    n_int = len(series_requests)
    n_within = 0
    retries = 0
    unanswered = 0
    wait_sum = 0
    fd = 0
    # the interval of the last time looked up and its bounds: rows come in scheduled order and
    # answers mostly in the same interval as the row before, so a 64-bit division is rare
    lo_s, hi_s, iv_s = np.int64(1), np.int64(0), 0
    lo_d, hi_d, iv_d = np.int64(1), np.int64(0), 0
    for i in range(len(t_scheduled)):
        t = t_scheduled[i]
        if t < lo_s or t >= hi_s:
            iv_s = _interval_of(t, day0, interval_ns, n_int)
            lo_s, hi_s = _bounds(iv_s, day0, interval_ns, n_int)
        iv = iv_s
        t = t_done[i]
        if t < lo_d or t >= hi_d:
            iv_d = _interval_of(t, day0, interval_ns, n_int)
            lo_d, hi_d = _bounds(iv_d, day0, interval_ns, n_int)
        c = cls[i]
        s = srv[i]
        rc = code[i]
        out = outcome[i]
        by_class[c] += 1
        by_srv[s] += 1
        codes[rc] += 1
        outcomes[out] += 1
        invalid_codes[invalid[i], rc] += 1
        series_requests[iv] += 1
        if within[i]:
            n_within += 1
            within_by_srv[s] += 1
            series_within[iv] += 1
        if attempt[i] > 0:
            retries += 1
            if out == failed_outcome:
                unanswered += 1
        b = backlog[i]
        if b > peak:
            peak = b
        if b > series_backlog[iv]:
            series_backlog[iv] = b
        wait_sum += wait[i]
        if c == fd_class and rc == fd_code:
            fd += 1
        series_done[iv_d] += 1
        if not codes_ok[rc]:
            series_failed[iv] += 1
        if out == cache_outcome:
            series_cache[iv] += 1
        elif out == device_outcome:
            series_device[iv] += 1
        elif out == refused_outcome:
            refused_by_class[c] += 1
            series_refused[iv] += 1
        elif out == shed_outcome:
            shed_by_class[c] += 1
    return n_within, retries, unanswered, peak, wait_sum, fd


@jit
def tally_alerts_kernel(t_ns, action, storm, day0, interval_ns, throttled_action, actions, series_actions):  # type: ignore[no-untyped-def]  # noqa: E501
    """One pass over a chunk's alert rows for the run tally's counts (the reference is
    :meth:`dccsim.bench.results.summary.RunTally.record_alerts_reference`). Adds into
    ``actions`` and ``series_actions``; returns ``(storm alerts, storm alerts not throttled,
    other alerts throttled, alerts throttled)``."""
    n_int = series_actions.shape[1]
    n_storm = 0
    storm_forwarded = 0
    nonstorm_throttled = 0
    throttled = 0
    lo, hi, iv = np.int64(1), np.int64(0), 0  # the last interval looked up (the rows are in time order)
    for i in range(len(t_ns)):
        t = t_ns[i]
        if t < lo or t >= hi:
            iv = _interval_of(t, day0, interval_ns, n_int)
            lo, hi = _bounds(iv, day0, interval_ns, n_int)
        a = action[i]
        actions[a] += 1
        series_actions[a, iv] += 1
        t = a == throttled_action
        if t:
            throttled += 1
        if storm[i]:
            n_storm += 1
            if not t:
                storm_forwarded += 1
        elif t:
            nonstorm_throttled += 1
    return n_storm, storm_forwarded, nonstorm_throttled, throttled


def warm_up() -> None:
    """Compile (or load from the cache) every kernel, outside any timed region."""
    bucket_index(1000)
    values = np.array([-1, 0, 1, 200, 1 << 50], dtype=np.int64)
    record_kernel(values, np.zeros(N_BUCKETS, np.int64), np.zeros(4, np.int64))
    record_intervals_kernel(
        values,
        values,
        0,
        10,
        np.zeros((2, N_BUCKETS), np.int64),
        np.zeros(2, np.int64),
        np.zeros(2, np.int64),
    )
    offsets, data = eui_text(np.array([1, 2], np.uint64))
    eui_parse(data, offsets)
    eui_parse(data, offsets.astype(np.int64))
    z = np.zeros(2, np.int64)
    record_groups_kernel(values, np.zeros(5, np.uint8), np.zeros((2, N_BUCKETS), np.int64), z, z.copy(), z.copy(),
                         z.copy())  # fmt: skip
    # the run tally's kernels, with the dtypes of the logs' rows
    t, u8, b = np.zeros(1, np.int64), np.zeros(1, np.uint8), np.zeros(1, np.bool_)
    c = np.zeros(4, np.int64)
    tally_requests_kernel(t, t, u8, u8, u8, u8, u8, u8, b, t, t, 0, 1, np.ones(4, np.bool_), 0, 0, 0, 0, 0, 0, 0, 0,
                          c, c, c, c, c, np.zeros((4, 4), np.int64), c, c, c, c, c, c, c, c, c, c)  # fmt: skip
    tally_alerts_kernel(t, u8, b, 0, 1, 0, c, np.zeros((4, 4), np.int64))
