"""Numba kernels of ``dccsim.core``: arrays and scalars in, preallocated arrays out.

The public, checked entry points live in :mod:`dccsim.core.capacity`; the kernels here trust
their caller for dtypes, shapes and ranges. Each kernel has a plain-Python reference
(:func:`dccsim.core.capacity.reference_process`) and a differential test.

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
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = [
    "ACC_BUSY_HI",
    "ACC_BUSY_LO",
    "ACC_MAX_WAIT",
    "ACC_PEAK",
    "ACC_TIMED_OUT",
    "ACC_WAIT_HI",
    "ACC_WAIT_LO",
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
]

# scal: mutable scalar state carried across chunks
SCAL_IDLE = 0  # servers free as of the last arrival
SCAL_HEAD = 1  # index of the oldest waiting request in the pending ring
SCAL_COUNT = 2  # number of waiting requests (the backlog)
SCAL_FULL = 3  # why the kernel stopped early
N_SCALARS = 4
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
N_ACC = 7

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
    begin,
):
    """Run requests ``begin..`` of a chunk through the DSP's FIFO multi-server queue.

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
    return i
