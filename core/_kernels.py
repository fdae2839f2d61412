"""Numba kernels of ``dccsim.core``: arrays and scalars in, preallocated arrays out.

The public, checked entry points live in :mod:`dccsim.core.capacity`; the kernels here trust
their caller for dtypes, shapes and ranges. Each kernel has a plain-Python reference
(:func:`dccsim.core.capacity.reference_process`) and a differential test.

Capacity model state, as arrays owned by :class:`dccsim.core.capacity.CapacityModel`:

``heap`` (int64, one entry per server)
    Time each server becomes free, as a binary min-heap (``heap[0]`` is the earliest). An
    entry at or before the current arrival time is an idle server; all idle servers are
    interchangeable, which is what the leaf fast path below relies on.
``pending`` (int64, power-of-two length)
    Ring buffer of the start times of requests that have arrived and not started yet, in
    arrival order. FIFO start times never decrease, so the ring is sorted and the requests
    that have started by time ``t`` are a prefix: a moving pointer gives the exact backlog.
``scal`` (int64, ``N_SCALARS``)
    ``[leaf cursor, ring head, ring count]``.
``acc`` (int64, ``N_ACC``)
    Per-chunk accumulators, see the ``ACC_*`` indices.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = [
    "ACC_MAX_WAIT",
    "ACC_PEAK",
    "ACC_TIMED_OUT",
    "ACC_WAIT_HI",
    "ACC_WAIT_LO",
    "CHECK_BAD_CLASS",
    "CHECK_NEGATIVE_LATENCY",
    "CHECK_OK",
    "CHECK_TIME_DECREASES",
    "N_ACC",
    "N_SCALARS",
    "SCAL_COUNT",
    "SCAL_CURSOR",
    "SCAL_HEAD",
    "check_requests",
    "dsp_fifo",
    "heap_replace_top",
]

# scal: mutable scalar state carried across chunks
SCAL_CURSOR = 0  # next leaf of the heap to try for the idle fast path
SCAL_HEAD = 1  # index of the oldest waiting request in the ring
SCAL_COUNT = 2  # number of waiting requests (the backlog)
N_SCALARS = 3

# acc: per-chunk accumulators
ACC_TIMED_OUT = 0
ACC_WAIT_LO = 1  # sum of (wait & 0xFFFFFFFF): wait sums overflow int64 in long overloads,
ACC_WAIT_HI = 2  # so they are kept as two 32-bit halves and joined in Python ints
ACC_MAX_WAIT = 3
ACC_PEAK = 4  # largest backlog seen by an arrival of this chunk
N_ACC = 5

CHECK_OK = 0
CHECK_TIME_DECREASES = 1
CHECK_BAD_CLASS = 2
CHECK_NEGATIVE_LATENCY = 3

_LO_MASK = np.int64(0xFFFFFFFF)


@jit
def heap_replace_top(heap, value):  # pragma: no cover - compiled; covered with NUMBA_DISABLE_JIT
    """Replace ``heap[0]`` by ``value`` and restore the min-heap order.

    Floyd's bottom-up variant: walk the hole down along the smaller child to a leaf (one
    comparison per level, no branch on it), then move ``value`` up from there. The value put
    back is a server's next free time, which is usually later than every other entry, so the
    second walk ends at once and the whole update costs about log2(len(heap)) compares.
    """
    n = heap.shape[0]
    i = 0
    while True:
        left = 2 * i + 1
        if left + 1 < n:
            j = left + (heap[left + 1] < heap[left])
        elif left < n:
            j = left
        else:
            break
        heap[i] = heap[j]
        i = j
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= value:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = value


@jit
def check_requests(t_arrive, cls, device_latency, n_classes, t_prev):  # pragma: no cover
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
def dsp_fifo(  # pragma: no cover - compiled; covered with NUMBA_DISABLE_JIT
    t_arrive,
    cls,
    device_latency,
    service_ns,
    timeout_ns,
    heap,
    pending,
    scal,
    acc,
    class_count,
    start_out,
    done_out,
    timed_out_out,
    wait_out,
    backlog_out,
    begin,
):
    """Run requests ``begin..`` of a chunk through the DSP's FIFO multi-server queue.

    Returns the index of the first request not processed: ``len(t_arrive)`` when the chunk is
    done, less when the ``pending`` ring is full (the caller grows it and calls again from
    there; nothing of the unprocessed request has been touched). ``class_count[k]`` counts the
    requests of class ``k`` (their service time is the busy time, summed by the caller).

    See :mod:`dccsim.core.capacity` for the semantics; this is the fast twin of
    :func:`dccsim.core.capacity.reference_process`.
    """
    n = t_arrive.shape[0]
    c = heap.shape[0]
    first_leaf = c >> 1
    mask = pending.shape[0] - 1
    cap = pending.shape[0]
    cursor = scal[SCAL_CURSOR]
    head = scal[SCAL_HEAD]
    count = scal[SCAL_COUNT]
    n_timed_out = acc[ACC_TIMED_OUT]
    wait_lo = acc[ACC_WAIT_LO]
    wait_hi = acc[ACC_WAIT_HI]
    max_wait = acc[ACC_MAX_WAIT]
    peak = acc[ACC_PEAK]
    i = begin
    while i < n:
        t = t_arrive[i]
        # Requests that have started by t leave the waiting room (a prefix, starts are sorted).
        while count > 0 and pending[head] <= t:
            head = (head + 1) & mask
            count -= 1
        if count == cap:
            break
        k = cls[i]
        s = service_ns[k]
        # Idle fast path: a leaf whose server is free by t can take the request in O(1), since
        # raising a leaf never breaks the heap order (leaves have no children). The cursor
        # walks the leaves round robin, so the probe is a sequential read.
        if heap[cursor] <= t:
            start = t
            heap[cursor] = t + s
        else:
            top = heap[0]
            start = top if top > t else t
            heap_replace_top(heap, start + s)
        cursor += 1
        if cursor == c:
            cursor = first_leaf
        wait = start - t
        if wait > 0:
            pending[(head + count) & mask] = start
            count += 1
            wait_lo += wait & _LO_MASK
            wait_hi += wait >> 32
            if wait > max_wait:
                max_wait = wait
            if count > peak:
                peak = count
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
        backlog_out[i] = count
        class_count[k] += 1
        i += 1
    scal[SCAL_CURSOR] = cursor
    scal[SCAL_HEAD] = head
    scal[SCAL_COUNT] = count
    acc[ACC_TIMED_OUT] = n_timed_out
    acc[ACC_WAIT_LO] = wait_lo
    acc[ACC_WAIT_HI] = wait_hi
    acc[ACC_MAX_WAIT] = max_wait
    acc[ACC_PEAK] = peak
    return i
