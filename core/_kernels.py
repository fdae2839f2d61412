"""Numba kernels of ``dccsim.core``: arrays and scalars in, preallocated arrays out.

Every kernel of the package lives here, under its one jit policy (:mod:`dccsim.core._jit`),
and trusts its caller for dtypes, shapes and ranges. The checked entry points, and the
plain-Python references the differential tests compare the kernels with, live beside the
data they serve:

- capacity model (:func:`check_requests`, :func:`dsp_fifo`, :func:`dsp_fluid`):
  :class:`dccsim.core.capacity.CapacityModel`; references
  :func:`dccsim.core.capacity.reference_process` and :func:`dccsim.core.capacity.reference_fluid`;
- compact row parser (:func:`parse_rows`): :meth:`dccsim.core.columns.RequestBatch.from_msgpack`
  and :class:`dccsim.core.columns.RowArena`; reference: msgspec
  (:func:`dccsim.core.wire.decode_rows`);
- validation (:func:`static_checks`, :func:`replay_check` and the lookups):
  :func:`dccsim.core.validation.validate_batch`; reference
  :func:`dccsim.core.validation.validate_batch_reference`;
- pipeline outcomes (:func:`device_leg`, :func:`finish_outcomes`):
  :class:`dccsim.core.pipeline.Pipeline`; reference: the rules, in the kernel tests;
- a chunk's accepted rows and their DSP times (:func:`accepted_rows`, :func:`front_columns`):
  :meth:`dccsim.core.pipeline.Pipeline.front`; reference
  :func:`dccsim.core.pipeline.front_columns_reference`;
- comms leg (:func:`comms_fluid`): :class:`dccsim.core.comms.CommsLeg`; reference
  :func:`dccsim.core.comms.reference_fluid`.

Capacity model: why class lanes, not a heap of servers
------------------------------------------------------
The textbook state of a FIFO ``c``-server queue is a min-heap of the ``c`` server free times,
and :func:`dccsim.core.capacity.reference_process` is exactly that. In a kernel, its update is
a chain of ``log2 c`` dependent loads: about 40 ns per request for ``c = 2,000`` and 140 ns
for ``c = 200,000`` (the heap no longer fits in L1) on the development machine, far from the
throughput a simulated GB day needs. Three facts give a cheaper state with the same outputs:

1. Servers never used so far are interchangeable: they are one counter, ``idle``.
2. Service time is fixed per request class and FIFO start times never decrease, so the free
   times ``start + service[k]`` of the servers last used by class ``k`` come in
   non-decreasing order: each class keeps them in a FIFO ring, its *lane*, already sorted.
   The earliest free time overall is the smallest lane head, found by a winner tree over
   the ``K`` lane heads.
3. Every server free by the current arrival ``t`` is as good as any other: a request that
   finds one starts at ``t``, whichever it takes, and later arrivals (never before ``t``)
   cannot tell which it was. So a free server is not released when it frees: it stays in
   its lane until it is reused, and a request may take *any* lane head at or before ``t``.

A request then takes, in this order: an idle server; else the head of its own lane if that
is free by ``t`` (the fast path: one ring rotation, no tree work); else the smallest lane
head from the winner tree, waiting for it if it is later than ``t``. The tree is brought up
to date lazily, only for lanes the fast path touched and only when it is read. The cost is
a few ring operations plus at most ``O(log K)`` tree steps, independent of ``c``, with
sequential memory access.

Why the outputs equal the heap's: take the heap's multiset of free times. After each
request, both states hold the same free times later than the request's arrival and the same
number at or before it (an idle server counts as free since ever); the heap replaces its
minimum, this state some free time at or before ``t`` or, when there is none, the minimum
too. Start times depend only on that, so they agree, and with them every output. The
differential tests check this on random input against the heap.

State arrays, owned by :class:`dccsim.core.capacity.CapacityModel`:

``lanes`` (int64), ``lane_meta`` (int64, ``K x 4``)
    Lane ``k`` is the ring ``lanes[off : off + mask + 1]`` holding the free times (past or
    future) of the servers last used by class ``k``, oldest first; ``lane_meta[k] = [off,
    mask, head, count]``. Capacities are powers of two; the lanes hold at most ``c`` entries
    between them (``idle`` plus the lane counts is always ``c``).
``tree_val`` (int64, ``2 Kp``), ``tree_idx`` (int64, ``2 Kp``)
    ``Kp`` is a power of two >= max(2, K). The winner tree over the lane heads: node ``n``
    (1-based, children ``2n`` and ``2n + 1``, leaves ``Kp + k``) holds the smallest lane head
    in its subtree (int64 maximum if none) and its lane, so ``tree_val[1]``, ``tree_idx[1]``
    are the earliest free time and its lane. Leaves are always current; inner nodes can be
    stale for lanes the fast path touched since the tree was last read.
``pending`` (int64, power-of-two length)
    Ring of the start times of requests that have arrived and not started, in arrival order.
    Start times never decrease, so the requests started by time ``t`` are a prefix: a moving
    pointer gives the exact backlog.
``scal`` (int64, ``N_SCALARS``)
    ``[idle servers, pending head, pending count, full]``; ``full`` says which ring stopped
    the kernel early: ``FULL_NONE``, ``FULL_PENDING`` or a lane index.
``acc`` (int64, ``N_ACC``)
    Per-chunk accumulators, see the ``ACC_*`` indices.

One concern, the core's compiled code (validation, the DSP models, the comms leg, the device
leg and outcomes, the compact row parser), which is why the module is longer than most.
"""

from __future__ import annotations

import numba
import numpy as np

from ._jit import jit
from .catalogue import DEVICE_KINDS
from .records import OUTCOMES, ROLE_UNKNOWN

__all__ = [
    "ACC_BUSY_HI",
    "ACC_BUSY_LO",
    "ACC_MAX_WAIT",
    "ACC_PEAK",
    "ACC_TIMED_OUT",
    "ACC_WAIT_HI",
    "ACC_WAIT_LO",
    "ACC_REFUSED",
    "ACC_SHED",
    "DSP_REFUSED",
    "DSP_SERVED",
    "DSP_SHED",
    "SCAL_LAST_START",
    "SCAL_T_PREV",
    "dsp_fluid",
    "CHECK_BAD_CLASS",
    "CHECK_NEGATIVE_LATENCY",
    "CHECK_OK",
    "CHECK_TIME_DECREASES",
    "FULL_NONE",
    "FULL_PENDING",
    "LANE_COUNT",
    "LANE_HEAD",
    "LANE_MASK",
    "LANE_OFF",
    "N_ACC",
    "N_LANE_META",
    "N_SCALARS",
    "SCAL_COUNT",
    "SCAL_FULL",
    "SCAL_HEAD",
    "SCAL_IDLE",
    "check_requests",
    "dsp_fifo",
    # compact row parser
    "BAD_LENGTH",
    "BAD_TYPE",
    "EMPTY",
    "FIELDS",
    "OK",
    "OUT_OF_RANGE",
    "TRAILING",
    "TRUNCATED",
    "UNKNOWN_STRING",
    "parse_rows",
    "string_key",
    "string_table",
    # validation
    "assign_counters",
    "binary_search",
    "consecutive_rows",
    "dense_ids",
    "replay_check",
    "static_checks",
    # pipeline outcomes
    "FAULT_E20",
    "FAULT_E21",
    "FAULT_NONE",
    "O_CACHE",
    "O_DCC",
    "O_DEVICE",
    "O_FAILED",
    "O_REFUSED",
    "O_REJECTED",
    "O_SHED",
    "accepted_rows",
    "device_leg",
    "finish_outcomes",
    "front_columns",
]

# scal: mutable scalar state carried across chunks
SCAL_IDLE = 0  # servers free as of the last arrival
SCAL_HEAD = 1  # index of the oldest waiting request in the pending ring
SCAL_COUNT = 2  # number of waiting requests (the backlog)
SCAL_FULL = 3  # why the kernel stopped early
SCAL_T_PREV = 4  # fluid model: the previous arrival (the time the work backlog is as of)
SCAL_LAST_START = 5  # fluid model: the latest start time given (starts never decrease)
N_SCALARS = 6
FULL_NONE = -1
FULL_PENDING = -2

# lane_meta columns
LANE_OFF = 0
LANE_MASK = 1
LANE_HEAD = 2
LANE_COUNT = 3
N_LANE_META = 4

# acc: per-chunk accumulators
ACC_TIMED_OUT = 0
ACC_WAIT_LO = 1  # sum of (wait & 0xFFFFFFFF): wait sums overflow int64 in long overloads,
ACC_WAIT_HI = 2  # so they are kept as two 32-bit halves and joined in Python ints
ACC_MAX_WAIT = 3
ACC_PEAK = 4  # largest backlog seen by an arrival of this chunk
ACC_BUSY_LO = 5  # service time asked for, in the same two halves
ACC_BUSY_HI = 6
ACC_REFUSED = 7  # refused at admission (expected wait above the class's bound)
ACC_SHED = 8  # shed: still waiting when its caller timed out
N_ACC = 9

#: what became of each request at the DSP (``status_out``)
DSP_SERVED, DSP_REFUSED, DSP_SHED = 0, 1, 2

CHECK_OK = 0
CHECK_TIME_DECREASES = 1
CHECK_BAD_CLASS = 2
CHECK_NEGATIVE_LATENCY = 3

_LO_MASK = np.int64(0xFFFFFFFF)
_NEVER = np.iinfo(np.int64).max


@jit
def check_requests(t_arrive, cls, device_latency, n_classes, t_prev):
    """First bad request of a chunk, as ``(CHECK_* code, index)``; ``(CHECK_OK, -1)`` if none.

    ``t_prev`` is the last arrival time of the previous chunk (the smallest int64 before the
    first chunk), so ordering is checked across chunks too.
    """
    prev = t_prev
    for i in range(t_arrive.shape[0]):
        t = t_arrive[i]
        if t < prev:
            return CHECK_TIME_DECREASES, i
        prev = t
        if cls[i] >= n_classes:
            return CHECK_BAD_CLASS, i
        if device_latency[i] < 0:
            return CHECK_NEGATIVE_LATENCY, i
    return CHECK_OK, -1


@jit
def dsp_fifo(
    t_arrive,
    cls,
    device_latency,
    service_ns,
    timeout_ns,
    max_wait_ns,
    shed,
    lanes,
    lane_meta,
    tree_val,
    tree_idx,
    pending,
    scal,
    acc,
    start_out,
    done_out,
    timed_out_out,
    wait_out,
    backlog_out,
    status_out,
    begin,
):
    """Run requests ``begin..`` of a chunk through the DSP's FIFO multi-server queue.

    Admission: a request whose wait would exceed ``max_wait_ns`` of its class is refused; with
    ``shed`` set, one whose wait would reach its class's time-out is shed. Neither takes a
    server (``status_out``: ``DSP_SERVED``, ``DSP_REFUSED``, ``DSP_SHED``). A request that
    finds a free server waits 0, so only the path that waits for a server can refuse or shed.

    Returns the index of the first request not processed: ``len(t_arrive)`` when the chunk is
    done, less when a ring is full (``scal[SCAL_FULL]`` says which; the caller grows it and
    calls again from there).

    See :mod:`dccsim.core.capacity` for the semantics; this is the fast twin of
    :func:`dccsim.core.capacity.reference_process`.
    """
    n = t_arrive.shape[0]
    p_mask = pending.shape[0] - 1
    p_cap = pending.shape[0]
    kp = tree_val.shape[0] >> 1
    idle = scal[SCAL_IDLE]
    p_head = scal[SCAL_HEAD]
    p_count = scal[SCAL_COUNT]
    full = FULL_NONE
    n_timed_out = acc[ACC_TIMED_OUT]
    wait_lo = acc[ACC_WAIT_LO]
    wait_hi = acc[ACC_WAIT_HI]
    max_wait = acc[ACC_MAX_WAIT]
    peak = acc[ACC_PEAK]
    busy_lo = acc[ACC_BUSY_LO]
    busy_hi = acc[ACC_BUSY_HI]
    n_refused = acc[ACC_REFUSED]
    n_shed = acc[ACC_SHED]

    # Lanes whose head changed since the winner tree was last brought up to date. The tree is
    # only read when the request's own lane cannot serve it, so it is repaired lazily.
    dirty = np.zeros(kp, dtype=np.bool_)
    dirty_stack = np.empty(kp, dtype=np.int64)
    n_dirty = 0

    # A closure rather than a jitted helper: Numba inlines it into this loop. Helpers taking
    # the arrays as arguments (even with inline="always") measured 2-4x slower here.
    def replay(leaf):
        """Winner tree: recompute the path from a lane whose head changed up to the root.

        The running minimum is carried in registers and only the siblings are loaded, so
        the loop-carried chain is one compare per level.
        """
        node = kp + leaf
        val = tree_val[node]
        idx = leaf
        while node > 1:
            sib_val = tree_val[node ^ 1]
            sib_idx = tree_idx[node ^ 1]
            if sib_val < val:
                val = sib_val
                idx = sib_idx
            node >>= 1
            tree_val[node] = val
            tree_idx[node] = idx

    i = begin
    while i < n:
        t = t_arrive[i]
        k = cls[i]
        s = service_ns[k]
        # Requests that have started by t leave the waiting room: a prefix, as starts are
        # sorted (re-running this on resume is a no-op). Mostly 0, 1 or 2 leave per arrival,
        # so two steps go without a branch: a data-dependent loop exit mispredicts often.
        step = (p_count > 0) & (pending[p_head] <= t)
        p_head = (p_head + step) & p_mask
        p_count -= step
        step = (p_count > 0) & (pending[p_head] <= t)
        p_head = (p_head + step) & p_mask
        p_count -= step
        while p_count > 0 and pending[p_head] <= t:
            p_head = (p_head + 1) & p_mask
            p_count -= 1
        if idle == 0 and tree_val[kp + k] <= t:
            # Fast path: the oldest server in the request's own lane is free by t. It takes
            # the request now and goes to the back of the same lane: one ring rotation, no
            # tree work. Any server free by t will do, as idle servers are interchangeable;
            # it need not be the one that freed first. (On a full ring the new entry
            # overwrites the head being dropped, which is still right.)
            start = t
            off = lane_meta[k, LANE_OFF]
            m = lane_meta[k, LANE_MASK]
            h = lane_meta[k, LANE_HEAD]
            lanes[off + ((h + lane_meta[k, LANE_COUNT]) & m)] = t + s
            h = (h + 1) & m
            lane_meta[k, LANE_HEAD] = h
            tree_val[kp + k] = lanes[off + h]
            if not dirty[k]:
                dirty[k] = True
                dirty_stack[n_dirty] = k
                n_dirty += 1
        else:
            if lane_meta[k, LANE_COUNT] > lane_meta[k, LANE_MASK]:
                full = k
                break
            if idle > 0:
                # A server never used so far.
                idle -= 1
                start = t
            else:
                # The server that frees first (the smallest lane head) takes the request, now
                # or when it frees up.
                if p_count == p_cap:
                    full = FULL_PENDING
                    break
                while n_dirty > 0:
                    n_dirty -= 1
                    leaf = dirty_stack[n_dirty]
                    dirty[leaf] = False
                    replay(leaf)
                j = tree_idx[1]
                head = tree_val[1]
                start = head if head > t else t
                # admission and shedding: decided before the server is taken (FIFO: the start
                # time is known at arrival), so a refused or shed request takes no server
                status = DSP_SERVED
                if start - t > max_wait_ns[k]:
                    status = DSP_REFUSED
                elif shed and start - t >= timeout_ns[k]:
                    status = DSP_SHED
                if status != DSP_SERVED:
                    _not_served(i, t, status, timeout_ns[k], p_count, start_out, done_out, timed_out_out,
                                wait_out, backlog_out, status_out)  # fmt: skip
                    if status == DSP_REFUSED:
                        n_refused += 1
                    else:
                        n_shed += 1
                        n_timed_out += 1
                    i += 1
                    continue
                cnt = lane_meta[j, LANE_COUNT] - 1
                h = (lane_meta[j, LANE_HEAD] + 1) & lane_meta[j, LANE_MASK]
                lane_meta[j, LANE_HEAD] = h
                lane_meta[j, LANE_COUNT] = cnt
                tree_val[kp + j] = lanes[lane_meta[j, LANE_OFF] + h] if cnt > 0 else _NEVER
                replay(j)
            # The server is busy until start + s: append to lane k (sorted, as starts are).
            cnt = lane_meta[k, LANE_COUNT]
            slot = (lane_meta[k, LANE_HEAD] + cnt) & lane_meta[k, LANE_MASK]
            lanes[lane_meta[k, LANE_OFF] + slot] = start + s
            lane_meta[k, LANE_COUNT] = cnt + 1
            if cnt == 0:
                tree_val[kp + k] = start + s
                replay(k)
        wait = start - t
        if wait > 0:
            pending[(p_head + p_count) & p_mask] = start
            p_count += 1
            wait_lo += wait & _LO_MASK
            wait_hi += wait >> 32
            max_wait = max(max_wait, wait)
            peak = max(peak, p_count)
        # Time-out test without forming start + s + latency, which may overflow for a device
        # that never answers (latency near the int64 maximum).
        tmo = timeout_ns[k]
        lat = device_latency[i]
        if lat > tmo - (wait + s):
            done_out[i] = t + tmo
            timed_out_out[i] = True
            n_timed_out += 1
        else:
            done_out[i] = start + s + lat
            timed_out_out[i] = False
        start_out[i] = start
        wait_out[i] = wait
        backlog_out[i] = p_count
        status_out[i] = DSP_SERVED
        busy_lo += s & _LO_MASK
        busy_hi += s >> 32
        i += 1
    while n_dirty > 0:
        n_dirty -= 1
        replay(dirty_stack[n_dirty])
    scal[SCAL_IDLE] = idle
    scal[SCAL_HEAD] = p_head
    scal[SCAL_COUNT] = p_count
    scal[SCAL_FULL] = full
    acc[ACC_TIMED_OUT] = n_timed_out
    acc[ACC_WAIT_LO] = wait_lo
    acc[ACC_WAIT_HI] = wait_hi
    acc[ACC_MAX_WAIT] = max_wait
    acc[ACC_PEAK] = peak
    acc[ACC_BUSY_LO] = busy_lo
    acc[ACC_BUSY_HI] = busy_hi
    acc[ACC_REFUSED] = n_refused
    acc[ACC_SHED] = n_shed
    return i


@jit(inline="always")
def _not_served(i, t, status, timeout, p_count, start_out, done_out, timed_out_out, wait_out, backlog_out, status_out):  # type: ignore[no-untyped-def]
    """Outputs of a refused request (answered at once) or a shed one (at its time-out)."""
    if status == DSP_REFUSED:
        start_out[i] = t
        done_out[i] = t
        timed_out_out[i] = False
        wait_out[i] = 0
    else:
        start_out[i] = t + timeout
        done_out[i] = t + timeout
        timed_out_out[i] = True
        wait_out[i] = timeout
    backlog_out[i] = p_count
    status_out[i] = status


@jit
def dsp_fluid(
    t_arrive,
    cls,
    device_latency,
    service_ns,
    timeout_ns,
    max_wait_ns,
    shed,
    rate,
    work,
    pending,
    scal,
    acc,
    start_out,
    done_out,
    timed_out_out,
    wait_out,
    backlog_out,
    status_out,
    begin,
):
    """Run requests ``begin..`` of a chunk through the fluid (rate-based) DSP: FIFO, capacity
    ``rate`` server-equivalents (a float, not floored), no per-server state.

    ``work[0]`` is the backlog of service work (server-ns) as of the previous arrival
    ``scal[SCAL_T_PREV]``; it drains at ``rate`` per ns. A request waits ``work / rate``
    (rounded to the nearest ns, and never starting before the previous start), then takes its
    class's service time; admission and shedding as in :func:`dsp_fifo`, and only a served
    request adds its service time to the backlog, less what it uses of the credit left,
    ``work[1]`` (:meth:`dccsim.core.capacity.CapacityModel.credit`; 0 without credits).
    Returns the index of the first request not processed: less than ``len(t_arrive)`` only
    when the ``pending`` ring (start times of the waiting requests, for the backlog count) is
    full (``scal[SCAL_FULL] = FULL_PENDING``).

    Fast twin of :func:`dccsim.core.capacity.reference_fluid`.
    """
    n = t_arrive.shape[0]
    p_mask = pending.shape[0] - 1
    p_cap = pending.shape[0]
    p_head = scal[SCAL_HEAD]
    p_count = scal[SCAL_COUNT]
    t_prev = scal[SCAL_T_PREV]
    last_start = scal[SCAL_LAST_START]
    w = work[0]
    left = work[1]
    full = FULL_NONE
    n_timed_out = acc[ACC_TIMED_OUT]
    wait_lo = acc[ACC_WAIT_LO]
    wait_hi = acc[ACC_WAIT_HI]
    max_wait = acc[ACC_MAX_WAIT]
    peak = acc[ACC_PEAK]
    busy_lo = acc[ACC_BUSY_LO]
    busy_hi = acc[ACC_BUSY_HI]
    n_refused = acc[ACC_REFUSED]
    n_shed = acc[ACC_SHED]
    i = begin
    while i < n:
        t = t_arrive[i]
        k = cls[i]
        s = service_ns[k]
        while p_count > 0 and pending[p_head] <= t:
            p_head = (p_head + 1) & p_mask
            p_count -= 1
        if w > 0.0:
            w = max(0.0, w - rate * float(t - t_prev))
        t_prev = t
        start = t + np.int64(w / rate + 0.5)
        if start < last_start:
            start = last_start
        wait = start - t
        status = DSP_SERVED
        if wait > max_wait_ns[k]:
            status = DSP_REFUSED
        elif shed and wait >= timeout_ns[k]:
            status = DSP_SHED
        if status != DSP_SERVED:
            _not_served(i, t, status, timeout_ns[k], p_count, start_out, done_out, timed_out_out,
                        wait_out, backlog_out, status_out)  # fmt: skip
            if status == DSP_REFUSED:
                n_refused += 1
            else:
                n_shed += 1
                n_timed_out += 1
            i += 1
            continue
        if wait > 0:
            if p_count == p_cap:
                full = FULL_PENDING
                break
            pending[(p_head + p_count) & p_mask] = start
            p_count += 1
            wait_lo += wait & _LO_MASK
            wait_hi += wait >> 32
            max_wait = max(max_wait, wait)
            peak = max(peak, p_count)
        if left > 0.0:
            used = min(left, float(s))
            left -= used
            w += float(s) - used
        else:
            w += float(s)
        last_start = start
        # The served request's outputs, as in dsp_fifo. Written out in both kernels: a shared
        # inline helper measured about 10% slower on dsp_fifo's hot loop (bench/perf/capacity).
        tmo = timeout_ns[k]
        lat = device_latency[i]
        if lat > tmo - (wait + s):
            done_out[i] = t + tmo
            timed_out_out[i] = True
            n_timed_out += 1
        else:
            done_out[i] = start + s + lat
            timed_out_out[i] = False
        start_out[i] = start
        wait_out[i] = wait
        backlog_out[i] = p_count
        status_out[i] = DSP_SERVED
        busy_lo += s & _LO_MASK
        busy_hi += s >> 32
        i += 1
    work[0] = w
    work[1] = left
    scal[SCAL_HEAD] = p_head
    scal[SCAL_COUNT] = p_count
    scal[SCAL_T_PREV] = t_prev
    scal[SCAL_LAST_START] = last_start
    scal[SCAL_FULL] = full
    acc[ACC_TIMED_OUT] = n_timed_out
    acc[ACC_WAIT_LO] = wait_lo
    acc[ACC_WAIT_HI] = wait_hi
    acc[ACC_MAX_WAIT] = max_wait
    acc[ACC_PEAK] = peak
    acc[ACC_BUSY_LO] = busy_lo
    acc[ACC_BUSY_HI] = busy_hi
    acc[ACC_REFUSED] = n_refused
    acc[ACC_SHED] = n_shed
    return i


# ---------------------------------------------------------------------------- compact row parser
# A compact MessagePack request batch parsed straight into columns (see RequestBatch.from_msgpack).

# status codes returned by the kernel
OK, TRUNCATED, BAD_TYPE, OUT_OF_RANGE, UNKNOWN_STRING, BAD_LENGTH, TRAILING = range(7)
FIELDS = (
    "originator", "target", "counter", "command_variant", "srv", "role",
    "t_scheduled_ns", "period_start_ns", "period_end_ns", "execution_ns",
)


def string_key(text: str) -> int:
    """The uint64 key the kernel computes for a string of at most 7 bytes (length in the low byte)."""
    raw = text.encode()
    if len(raw) > 7:
        raise ValueError(f"{text!r}: longer than 7 bytes")
    key = 0
    for b in raw:
        key = (key << 8) | b
    return (key << 8) | len(raw)


def string_table(names: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """An open-addressing hash table of string keys -> codes, for :func:`parse_rows`.

    ``keys`` has a power-of-two size at least four times the number of names (so a probe
    sequence is short); an empty slot holds :data:`EMPTY`, which no string key can equal (its
    length byte would be 255).
    """
    size = 8
    while size < 4 * len(names):
        size *= 2
    keys = np.full(size, EMPTY, np.uint64)
    codes = np.full(size, -1, np.int64)
    for text, code in names.items():
        key = string_key(text)
        slot = _slot(key, size)
        while keys[slot] != EMPTY:
            slot = (slot + 1) & (size - 1)
        keys[slot], codes[slot] = key, code
    return keys, codes


EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_MULT = 0x9E3779B97F4A7C15


def _slot(key: int, size: int) -> int:
    """The first slot of ``key`` in a table of ``size`` slots (Fibonacci hashing, as the kernel)."""
    return ((key * _MULT) & 0xFFFFFFFFFFFFFFFF) >> (64 - (size.bit_length() - 1))  # size is a power of two


@jit(inline="always")
def _log2(size):  # type: ignore[no-untyped-def]
    k = 0
    while (1 << k) < size:
        k += 1
    return k


@jit
def parse_rows(buf, srv_keys, srv_codes, role_keys, role_codes, out_u64, out_u8, out_i64):  # type: ignore[no-untyped-def]
    """Parse ``[[originator, target, counter, cv, srv, role, t, start, end, exec], ...]``.

    ``out_u64`` is (3, n): originator, target, counter; ``out_u8`` (3, n): cv, srv, role;
    ``out_i64`` (4, n). ``srv_*`` and ``role_*`` are hash tables from :func:`string_table`.
    Returns (status, row, field, n_rows). Trailing fields may be omitted (they default to 0),
    as msgspec allows. One flat loop, no helper returning tuples, and a hashed string lookup
    (a binary search over the SRVs cost more than the rest of a row).
    """
    L = len(buf)
    if L == 0:
        return TRUNCATED, 0, 0, 0
    b = np.int64(buf[0])
    if 0x90 <= b <= 0x9F:
        n = b - 0x90
        pos = 1
    elif b == 0xDC:
        if L < 3:
            return TRUNCATED, 0, 0, 0
        n = (np.int64(buf[1]) << 8) | np.int64(buf[2])
        pos = 3
    elif b == 0xDD:
        if L < 5:
            return TRUNCATED, 0, 0, 0
        n = (np.int64(buf[1]) << 24) | (np.int64(buf[2]) << 16) | (np.int64(buf[3]) << 8) | np.int64(buf[4])
        pos = 5
    else:
        return BAD_TYPE, 0, 0, 0
    if n > out_u64.shape[1]:
        return BAD_LENGTH, 0, 0, n
    srv_shift = np.uint64(64 - _log2(len(srv_keys)))
    role_shift = np.uint64(64 - _log2(len(role_keys)))
    for row in range(n):
        if pos >= L:
            return TRUNCATED, row, 0, n
        b = np.int64(buf[pos])
        if b < 0x96 or b > 0x9A:
            return BAD_LENGTH, row, 0, n
        m = b - 0x90
        pos += 1
        for f in range(m, 10):
            out_i64[f - 6, row] = 0
        for f in range(m):
            if pos >= L:
                return TRUNCATED, row, f, n
            b = np.int64(buf[pos])
            pos += 1
            if f == 4 or f == 5:
                if 0xA0 <= b <= 0xBF:
                    k = b - 0xA0
                elif b == 0xD9:
                    if pos >= L:
                        return TRUNCATED, row, f, n
                    k = np.int64(buf[pos])
                    pos += 1
                else:
                    return BAD_TYPE, row, f, n
                if pos + k > L:
                    return TRUNCATED, row, f, n
                if k > 7:
                    return UNKNOWN_STRING, row, f, n
                key = np.uint64(0)
                for q in range(k):
                    key = (key << np.uint64(8)) | np.uint64(buf[pos + q])
                key = (key << np.uint64(8)) | np.uint64(k)
                pos += k
                if f == 4:
                    keys = srv_keys
                    codes = srv_codes
                else:
                    keys = role_keys
                    codes = role_codes
                mask = np.uint64(len(keys) - 1)
                slot = (key * np.uint64(0x9E3779B97F4A7C15)) >> (srv_shift if f == 4 else role_shift)
                while keys[slot] != key and keys[slot] != EMPTY:
                    slot = (slot + np.uint64(1)) & mask
                if keys[slot] != key:
                    return UNKNOWN_STRING, row, f, n
                out_u8[f - 3, row] = np.uint8(codes[slot])
                continue
            neg = False
            if b <= 0x7F:
                v = np.uint64(b)
            elif b >= 0xE0:
                v = np.uint64(b - 256)
                neg = True
            elif 0xCC <= b <= 0xD3:  # uint8-64 (0xCC-0xCF), int8-64 (0xD0-0xD3), big-endian
                w = np.int64(1) << ((b - 0xCC) & 3)
                if pos + w > L:
                    return TRUNCATED, row, f, n
                v = np.uint64(0)
                for q in range(w):
                    v = (v << np.uint64(8)) | np.uint64(buf[pos + q])
                pos += w
                if b >= 0xD0:
                    sh = np.uint64(64 - 8 * w)
                    sv = np.int64(v << sh) >> np.int64(sh)  # sign-extend
                    v = np.uint64(sv)
                    neg = sv < 0
            else:
                return BAD_TYPE, row, f, n
            if f <= 2:
                if neg:
                    return OUT_OF_RANGE, row, f, n
                out_u64[f, row] = v
            elif f == 3:
                if neg or v > np.uint64(255):
                    return OUT_OF_RANGE, row, f, n
                out_u8[0, row] = np.uint8(v)
            else:
                if not neg and v > np.uint64(0x7FFFFFFFFFFFFFFF):
                    return OUT_OF_RANGE, row, f, n
                out_i64[f - 6, row] = np.int64(v)
    if pos != L:
        return TRAILING, n, 0, n
    return OK, n, 0, n


if numba.config.DISABLE_JIT:  # plain Python (coverage runs): the string hash's multiply wraps on purpose
    _parse_rows_plain = parse_rows

    def parse_rows(*args):  # type: ignore[no-untyped-def,no-redef]
        with np.errstate(over="ignore"):
            return _parse_rows_plain(*args)


# ---------------------------------------------------------------------------- validation
# Every check but replay (static_checks), the replay check, and the lookups they need.

_ESME, _GSME = DEVICE_KINDS.index("ESME"), DEVICE_KINDS.index("GSME")


@jit
def binary_search(ids, values, out):  # type: ignore[no-untyped-def]
    """``out[i]``: position of ``values[i]`` in the sorted ``ids``, or -1 (one pass, no temporaries)."""
    n = ids.shape[0]
    for i in range(values.shape[0]):
        v = values[i]
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if ids[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        out[i] = lo if lo < n and ids[lo] == v else -1

@jit
def consecutive_rows(devices, first, n, rows):  # type: ignore[no-untyped-def]
    """``devices[i] - first`` where that is in ``[0, n)``, else -1 (unsigned: below wraps)."""
    un = np.uint64(n)
    for i in range(devices.shape[0]):
        off = devices[i] - first
        rows[i] = np.int64(off) if off < un else -1

@jit
def dense_ids(values, table, out):  # type: ignore[no-untyped-def]
    """Map each value to its index in ``table`` (first-seen order), adding new ones.

    Linear search: DCC Users are few (a handful of originators per batch). Returns the number
    of distinct values, or -1 if they do not fit ``table``.
    """
    m = 0
    for i in range(len(values)):
        v = values[i]
        j = 0
        while j < m and table[j] != v:
            j += 1
        if j == m:
            if m == len(table):
                return -1
            table[m] = v
            m += 1
        out[i] = j
    return m

@jit
def assign_counters(user_idx, replay, last, out, used):  # type: ignore[no-untyped-def]
    """Counters per originator: the next number for a fresh request, the last for a replay
    (a replay with nothing before it is made fresh)."""
    for i in range(len(user_idx)):
        u = user_idx[i]
        r = replay[i] and last[u] > 0
        if not r:
            last[u] += 1
        out[i] = last[u]
        used[i] = r

@jit
def replay_check(user_idx, counter, ok, last, seen, out_code, replay_code):  # type: ignore[no-untyped-def]
    """Sequential replay check over accepted rows; ``last``/``seen`` persist across calls."""
    for i in range(len(user_idx)):
        if not ok[i]:
            continue
        u = user_idx[i]
        c = counter[i]
        if seen[u] and c <= last[u]:
            out_code[i] = replay_code
        else:
            last[u] = c
            seen[u] = True

@jit
def static_checks(
    srv,
    role,
    cv,
    pstart,
    pend,
    user_row,
    dev_row,
    cacheable,
    eligible,
    cv_valid,
    non_device,
    kind_valid,
    user_active,
    user_role,
    dev_in_service,
    dev_kind,
    gas_only,
    elec_only,
    has_users,
    has_devices,
    codes,
    out,
):  # type: ignore[no-untyped-def]
    """Every check except replay, row by row, first failure wins (order of the module table).

    ``codes`` holds the code indices [E13, E1, E3, E2, E12, E19, E5, E11, E4]; ``user_row`` and
    ``dev_row`` are registry rows (-1 unknown).
    """
    n_roles = eligible.shape[1]
    for i in range(len(srv)):
        s = srv[i]
        c = 0
        r = role[i]
        if cacheable[s] and pstart[i] >= pend[i]:
            c = codes[0]
        elif has_users and user_row[i] < 0:
            c = codes[1]
        elif has_users and not user_active[user_row[i]]:
            c = codes[2]
        elif has_users and r != ROLE_UNKNOWN and r != user_role[user_row[i]]:
            c = codes[3]
        else:
            if has_users and r == ROLE_UNKNOWN:
                r = user_role[user_row[i]]
            if r == ROLE_UNKNOWN:
                c = codes[1]
            elif r >= n_roles or not eligible[s, r]:  # a role code outside ROLES is not eligible
                c = codes[3]
            elif cv[i] >= cv_valid.shape[1] or not cv_valid[s, cv[i]]:
                c = codes[4]
            elif has_devices and not non_device[s]:
                d = dev_row[i]
                if d < 0:
                    c = codes[5]
                elif not dev_in_service[d]:
                    c = codes[6]
                else:
                    k = dev_kind[d]
                    if not kind_valid[s, k]:
                        c = codes[7]
                    elif (k == _ESME and gas_only[r]) or (k == _GSME and elec_only[r]):
                        c = codes[8]
        out[i] = c


# ---------------------------------------------------------------------------- pipeline outcomes
# The device's answer to each accepted request, then each request's final code and outcome.

#: outcome codes (indices into :data:`~dccsim.core.records.OUTCOMES`)
O_DEVICE, O_CACHE, O_REJECTED, O_FAILED, O_DCC, O_REFUSED, O_SHED = (
    OUTCOMES.index(o) for o in ("device", "cache", "rejected", "failed", "dcc", "refused", "shed")
)
#: fault of the device leg, drawn per request by the caller
FAULT_NONE, FAULT_E20, FAULT_E21 = 0, 1, 2


@jit
def accepted_rows(  # type: ignore[no-untyped-def]
    idx, cls, t, srv, device, rows, fault, latency, pstart, pend,
    o_cls, o_t, o_srv, o_dev, o_row, o_fault, o_lat, o_ps, o_pe,
):  # fmt: skip
    """The columns :meth:`Pipeline.front` needs at rows ``idx`` (the accepted ones), in one pass."""
    for j in range(idx.shape[0]):
        i = idx[j]
        o_cls[j] = cls[i]
        o_t[j] = t[i]
        o_srv[j] = srv[i]
        o_dev[j] = device[i]
        o_row[j] = rows[i]
        o_fault[j] = fault[i]
        o_lat[j] = latency[i]
        o_ps[j] = pstart[i]
        o_pe[j] = pend[i]


@jit
def front_columns(  # type: ignore[no-untyped-def]
    cls, t, srv, row, start, status, service_ns, timeout_ns, srv_cacheable, dev_kind, cache_rows,
    use_cache_rows, cache_enabled, esme, served, dsp_done, deadline, cacheable,
):  # fmt: skip
    """Each accepted request's DSP finish and deadline (by class), and whether it goes to the
    readings cache: cache on, a cacheable SRV, a registered ESME (in ``cache_rows`` when
    ``use_cache_rows``; a row beyond it is not), served by the DSP."""
    for j in range(cls.shape[0]):
        c = cls[j]
        dsp_done[j] = start[j] + service_ns[c]
        deadline[j] = t[j] + timeout_ns[c]
        r = row[j]
        ok = cache_enabled and srv_cacheable[srv[j]] and r >= 0 and status[j] == served
        if ok:
            ok = dev_kind[r] == esme and (not use_cache_rows or (r < cache_rows.shape[0] and cache_rows[r]))
        cacheable[j] = ok


@jit
def device_leg(cls, fault, dsp_done, latency, deadline, fd_class, codes, out_done, out_code):  # type: ignore[no-untyped-def]
    """The device's answer to each accepted request, if it goes to the device.

    E20: answered after the latency; E21: no answer, at the deadline. Lateness comes first:
    any answer (E20 included) that would come after the deadline is E21 at the deadline (E30
    for a future-dated command), since the caller has stopped waiting; otherwise I0 (I99
    future-dated).
    """
    for i in range(len(cls)):
        fd = cls[i] == fd_class
        if fault[i] == FAULT_E21:
            done = deadline[i]
        else:
            done = dsp_done[i] + latency[i]
        late = done > deadline[i]
        if late:
            done = deadline[i]
        out_done[i] = done
        if fault[i] == FAULT_E21 or late:
            out_code[i] = codes[4] if fd else codes[3]
        elif fault[i] == FAULT_E20:
            out_code[i] = codes[2]
        else:
            out_code[i] = codes[1] if fd else codes[0]


@jit
def finish_outcomes(
    idx,
    t,
    cls,
    non_device,
    hit,
    dsp_done,
    deadline,
    dev_done,
    dev_code,
    targets,
    fd_class,
    codes,
    code,
    outcome,
    t_done,
    latency,
    within,
):  # type: ignore[no-untyped-def]
    """Final code, outcome, time and target verdict of each request (rejected rows stay)."""
    for i in range(len(t)):
        latency[i] = t_done[i] - t[i]
    for j in range(len(idx)):
        i = idx[j]
        fd = cls[j] == fd_class
        if non_device[j] or hit[j]:
            done = min(dsp_done[j], deadline[j])
            c = codes[0]
            if dsp_done[j] > deadline[j]:  # the DSP queue alone exceeded the time-out
                c = codes[4] if fd else codes[3]
            o = O_DCC if non_device[j] else O_CACHE
        else:
            done = dev_done[j]
            c = dev_code[j]
            o = O_DEVICE
        if c != codes[0] and c != codes[1]:
            o = O_FAILED
        code[i] = c
        outcome[i] = o
        t_done[i] = done
        latency[i] = done - t[i]
        within[i] = latency[i] <= targets[cls[j]]


# comms leg accumulators, per resource (float64 columns of ``acc``)
CACC_SENT, CACC_WAIT_S, CACC_MAX_WAIT_S, CACC_PEAK_QUEUE = 0, 1, 2, 3
N_CACC = 4


@jit
def comms_fluid(res, t_arrive, work_ns, backlog_ns, t_last, acc, out_wait):  # type: ignore[no-untyped-def]
    """Fluid FIFO queues of the comms resources (reference: :func:`dccsim.core.comms.reference_fluid`).

    Request ``i`` arrives at resource ``r = res[i]`` at ``t_arrive[i]`` (clamped to the
    resource's last arrival, so time never runs back). The resource's backlog of work (ns)
    drains at one ns per ns; the request waits the backlog it finds and adds ``work_ns[r]``
    (1e9 / its capacity per second). State: ``backlog_ns``, ``t_last``; per-resource sums
    into ``acc`` (``CACC_*``).
    """
    for i in range(len(res)):
        r = res[i]
        t = t_arrive[i]
        if t > t_last[r]:
            if backlog_ns[r] > 0.0:  # then t_last is a real arrival (the first is INT64_MIN)
                b = backlog_ns[r] - (t - t_last[r])
                backlog_ns[r] = b if b > 0.0 else 0.0
            t_last[r] = t
        wait = np.int64(backlog_ns[r])
        out_wait[i] = wait
        queue = backlog_ns[r] / work_ns[r]
        backlog_ns[r] += work_ns[r]
        acc[r, CACC_SENT] += 1.0
        acc[r, CACC_WAIT_S] += wait * 1e-9
        if wait * 1e-9 > acc[r, CACC_MAX_WAIT_S]:
            acc[r, CACC_MAX_WAIT_S] = wait * 1e-9
        if queue > acc[r, CACC_PEAK_QUEUE]:
            acc[r, CACC_PEAK_QUEUE] = queue
