"""Numba kernels of Alert Storm Protection: arrays and scalars in, preallocated arrays out.

The semantics are specified in :mod:`dccsim.throttle.engine` and spelled out, one rule per
line, in :mod:`dccsim.throttle.reference`; this module is the fast version of the same.

State of one shard: ``table``, an ``int64[slots, 5]`` open-addressing (linear probing)
table of 40-byte records keyed by ``(device, alert code)``; ``slots`` is a power of two.
Words of a record:

``0`` device
    The EUI-64, its 64 bits as an ``int64``.
``1`` meta
    Bits 0-15 alert code, bit 16 occupied (a record with meta 0 is an empty slot), bit 17
    "in an excess episode" and bit 18 "near limit reported" (GCRA only), bits 32-63 the
    key's sequence number (windows, or GCRA episodes, that had excess alerts).
``2`` time A
    Fixed window: start of the current window. GCRA: the theoretical arrival time (TAT).
``3`` last forwarded
    Time of the key's last forwarded alert.
``4`` counts
    Bits 0-31 alerts in the current window (fixed window; kept at most ``N + 2``, enough to
    tell "within N", "first excess" and "later excess" apart), bits 32-63 alerts discarded
    since the key's last forwarded alert.

Per alert code, ``code_class[code]`` (``uint8[65536]``) picks a row of ``params``
(``int64[classes, 4]``). Class 0 means excluded. Fixed window rows are
``(N, W, P, ceil(0.8 N))``, GCRA rows ``(T, tau, P, ceil(0.8 N) * T)``, times in ns.

``counters`` (``int64[N_COUNTERS]``) holds the key count and the running totals;
:func:`process` adds to it when it returns.

Reports at window close (``report_at_close``): while a key holds discards, its window start
(GCRA: its TAT) cannot move, so the moment its window closes is fixed: ``start + W`` (GCRA:
``TAT``). :func:`process` writes the report (close time, device, code, count, sequence) into
the ``rep_*`` buffers when the key's next alert comes at or after that moment, before the
alert; :func:`close_windows` writes those of keys with no such alert yet, up to a time.

The policies themselves are :func:`fixed_window_step` and :func:`gcra_step`, each one alert
of one key over its four state words as scalars; :func:`process` (the throttle) and :func:`sweep_pass`
(threshold tuning, several settings per key side by side over dense key numbers) call them.

:func:`process` returns the index it stopped at: ``n`` when the batch is done, or the index
of the alert whose new key would take the table past ``limit`` keys. Alerts before that index are
applied; the caller makes room (:func:`compact`, then :func:`rebuild` into a larger table
if still crowded) and calls again from there. Because eviction only drops records that are
indistinguishable from a fresh key at that time, where the stops fall never changes an
output.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, prefetch

U64 = np.uint64
I64 = np.int64

# record words
DEV = 0
META = 1
TA = 2
LAST = 3
COUNTS = 4
WORDS = 5

CODE_MASK = I64(0xFFFF)
OCCUPIED = I64(1 << 16)
EPISODE = I64(1 << 17)
NEAR = I64(1 << 18)
KEY_MASK = CODE_MASK | OCCUPIED
LOW32 = I64(0xFFFF_FFFF)
S32 = I64(32)

# counters
USED = 0
FORWARDED = 1
THROTTLED = 2
EXCLUDED = 3
WOULD_THROTTLE = 4
NEAR_LIMIT = 5
EVICTED = 6
STALE = 7  # discards too old to report on the key's next forwarded alert (max_report_age_s)
REPORTS = 8  # synthetic alerts made when a key's window closed with discards pending (report_at_close)
REPORTED = 9  # the discards those alerts carried
N_COUNTERS = 10

# action codes (engine.ACTIONS names them)
A_FORWARDED = np.uint8(0)
A_THROTTLED = np.uint8(1)
A_EXCLUDED = np.uint8(2)

# policy kinds
FIXED_WINDOW = 0
GCRA = 1

#: records hinted ahead of the one being processed (prefetch distance, in alerts); a power of two
AHEAD = 16
RING_MASK = AHEAD - 1  # process()'s ring of home slots hashed ahead
_AHEAD_U = U64(AHEAD)
_RING_MASK_U = U64(RING_MASK)

_U1 = U64(1)
_S33 = U64(33)
_S48 = U64(48)
_M1 = U64(0xFF51_AFD7_ED55_8CCD)
_M2 = U64(0xC4CE_B9FE_1A85_EC53)
_K_CODE = U64(0x9E37_79B9_7F4A_7C15)


@jit(inline="always")
def home_slot(device: U64, code: np.uint16, mask: U64) -> U64:
    """Home slot of a key: MurmurHash3's 64-bit finalizer of device ^ code * phi, masked."""
    k = device ^ (U64(code) * _K_CODE)
    k ^= k >> _S33
    k *= _M1
    k ^= k >> _S33
    k *= _M2
    k ^= k >> _S33
    return k & mask


@jit
def _find(table, device, code, mask):  # type: ignore[no-untyped-def]
    """Slot of key (device, code), or of the empty slot where it would be inserted."""
    s = home_slot(device, code, mask)
    want = I64(code) | OCCUPIED
    dev = I64(device)
    while True:
        meta = table[s, META]
        if meta == 0 or ((meta & KEY_MASK) == want and table[s, DEV] == dev):
            return s
        s = (s + _U1) & mask


@jit
def _flush(counters, used, forwarded, would, excluded, near, dry_run):  # type: ignore[no-untyped-def]
    counters[USED] = used
    counters[FORWARDED] += forwarded + (would if dry_run else 0)
    counters[THROTTLED] += 0 if dry_run else would
    counters[EXCLUDED] += excluded
    counters[WOULD_THROTTLE] += would
    counters[NEAR_LIMIT] += near


# The policy of one key, as a step over its four state words (meta, time A, last forwarded,
# counts), as scalars in and out: the table kernel holds them in words 1-4 of a record, the
# tuning sweep in four columns per setting. A step returns the new words and ``(forward,
# pending, sequence, near)``: whether the alert is forwarded, the key's discards since its last
# forward before this alert, its sequence number and whether this alert was a near-limit event.
# A key's first alert comes with time A = t and counts = 0 (a window opening, an empty bucket);
# the low 32 bits of meta (code, occupied) are the caller's and are kept.


@jit(inline="always")
def fixed_window_step(meta, start, last, counts, t, threshold, window, period, near_mark):  # type: ignore[no-untyped-def]
    """One alert at ``t`` under the fixed-window policy (N, W, P, ceil(0.8 N))."""
    count = counts & LOW32
    if t - start >= window:
        start = t
        count = I64(0)
    count += 1
    pending = (counts >> S32) & LOW32
    seq = (meta >> S32) & LOW32
    if count == threshold + 1:  # first excess alert of this window
        seq = min(seq + 1, LOW32)
        meta = (seq << S32) | (meta & LOW32)
    forward = count <= threshold or t - last >= period
    kept = min(count, threshold + 2)
    if forward:
        last = t
        counts = kept
    else:
        counts = (min(pending + 1, LOW32) << S32) | kept
    return meta, start, last, counts, forward, pending, seq, count == near_mark


@jit(inline="always")
def gcra_step(meta, tat, last, counts, t, emission, tolerance, period, near_fill):  # type: ignore[no-untyped-def]
    """One alert at ``t`` under GCRA (T, tau, P, ceil(0.8 N) * T)."""
    if t >= tat:  # the bucket has drained: episode and near-limit mark end
        meta &= ~(EPISODE | NEAR)
    seq = (meta >> S32) & LOW32
    near = False
    if tat - t <= tolerance:  # conforming
        tat = max(tat, t) + emission
        if tat - t >= near_fill and (meta & NEAR) == 0:
            near = True
            meta |= NEAR
        forward = True
    else:
        if (meta & EPISODE) == 0:
            seq = min(seq + 1, LOW32)
            meta |= EPISODE
        forward = t - last >= period
    meta = (seq << S32) | (meta & LOW32)
    pending = (counts >> S32) & LOW32
    if forward:
        last = t
        counts = I64(0)
    else:
        counts = min(pending + 1, LOW32) << S32
    return meta, tat, last, counts, forward, pending, seq, near


@jit
def process(
    t_ns,
    device,
    alert_code,
    start,
    kind,
    code_class,
    params,
    dry_run,
    max_age,
    report_at_close,
    table,
    limit,
    counters,
    action,
    throttled_count,
    sequence_id,
    would_throttle,
    rep_t,
    rep_device,
    rep_code,
    rep_count,
    rep_seq,
    rep_n,
    ring,
):  # type: ignore[no-untyped-def]
    """The policy ``kind`` over alerts ``start..n-1``; returns where it stopped.

    ``max_age`` (ns, -1: none): a forwarded alert more than that after its key's previous
    forwarded one does not carry the discards in between (stale: counted in ``STALE``).
    ``report_at_close``: a key's discards pending when its window closed are reported by a
    row of the ``rep_*`` buffers (at index ``rep_n[0]``, which counts up; room for one per
    alert) before its first alert at or after the close.

    Software-pipelined: the home slot of alert ``i + AHEAD`` is hashed and its record
    prefetched while alert ``i`` is decided; ``ring`` (``uint64[AHEAD]``, scratch) holds the
    slots in between, so each key is hashed once. A record's words are read once into
    locals and written back once.
    """
    n = t_ns.shape[0]
    un = U64(n)
    mask = U64(table.shape[0] - 1)
    used = counters[USED]
    forwarded = 0
    would = 0
    excluded = 0
    near = 0
    stale = 0
    reports = 0
    reported = 0
    for j in range(start, min(start + AHEAD, n)):
        h = home_slot(device[j], alert_code[j], mask)
        ring[j & RING_MASK] = h
        prefetch(table, h, DEV)  # both ends: a 40-byte record may straddle two cache lines
        prefetch(table, h, COUNTS)
    for i0 in range(start, n):
        # Unsigned indices: Numba adds a negative-index fix-up to every array access with a
        # signed one, which LLVM cannot drop here (cachegrind: 161 instructions an alert
        # with it, 133 without).
        i = U64(i0)
        s = ring[i & _RING_MASK_U]
        j = i + _AHEAD_U
        if j < un:
            h = home_slot(device[j], alert_code[j], mask)
            ring[j & _RING_MASK_U] = h
            prefetch(table, h, DEV)
            prefetch(table, h, COUNTS)
        code = alert_code[i]
        cls = code_class[code]
        if cls == 0:
            action[i] = A_EXCLUDED
            throttled_count[i] = 0
            sequence_id[i] = 0
            would_throttle[i] = False
            excluded += 1
            continue
        want = I64(code) | OCCUPIED
        dev = I64(device[i])
        while True:  # linear probing from the home slot
            meta = table[s, META]
            if meta == 0 or ((meta & KEY_MASK) == want and table[s, DEV] == dev):
                break
            s = (s + _U1) & mask
        t = t_ns[i]
        new = meta == 0
        if new:
            if used >= limit:
                _flush(counters, used, forwarded, would, excluded, near, dry_run)
                counters[STALE] += stale
                counters[REPORTS] += reports
                counters[REPORTED] += reported
                return i0
            used += 1
            table[s, DEV] = dev
            meta = want
            time_a = t  # the window opens here (GCRA: an empty bucket)
            last = I64(0)
            counts = I64(0)
        else:
            time_a = table[s, TA]
            last = table[s, LAST]
            counts = table[s, COUNTS]
        p0 = params[cls, 0]
        p1 = params[cls, 1]
        p2 = params[cls, 2]
        p3 = params[cls, 3]
        if report_at_close:
            held = (counts >> S32) & LOW32
            if held > 0:
                close = time_a + (p1 if kind == FIXED_WINDOW else I64(0))
                if t >= close:  # the window closed before this alert: report it there
                    r = rep_n[0]
                    rep_t[r] = close
                    rep_device[r] = device[i]
                    rep_code[r] = code
                    rep_count[r] = held
                    rep_seq[r] = (meta >> S32) & LOW32
                    rep_n[0] = r + 1
                    counts &= LOW32
                    reports += 1
                    reported += held
        previous = last
        if kind == FIXED_WINDOW:
            meta, time_a, last, counts, forward, pending, seq, is_near = fixed_window_step(
                meta, time_a, last, counts, t, p0, p1, p2, p3
            )
        else:
            meta, time_a, last, counts, forward, pending, seq, is_near = gcra_step(
                meta, time_a, last, counts, t, p0, p1, p2, p3
            )
        table[s, META] = meta
        table[s, TA] = time_a
        table[s, LAST] = last
        table[s, COUNTS] = counts
        near += is_near
        if forward:
            if max_age >= 0 and pending > 0 and t - previous > max_age:
                stale += pending  # too old to report on this alert
                pending = 0
            action[i] = A_FORWARDED
            throttled_count[i] = pending
            sequence_id[i] = seq if pending > 0 else 0
            would_throttle[i] = False
            forwarded += 1
        else:
            action[i] = A_FORWARDED if dry_run else A_THROTTLED
            throttled_count[i] = 0
            sequence_id[i] = 0
            would_throttle[i] = True
            would += 1
    _flush(counters, used, forwarded, would, excluded, near, dry_run)
    counters[STALE] += stale
    counters[REPORTS] += reports
    counters[REPORTED] += reported
    return n


@jit
def close_windows(
    table, kind, code_class, params, now, counters, rep_t, rep_device, rep_code, rep_count, rep_seq
):  # type: ignore[no-untyped-def]
    """Report the discards of every key whose window closed at or before ``now``.

    Writes one row per such key into the ``rep_*`` buffers (close time, device, code, count,
    sequence) and clears the key's count; returns the rows written. A full buffer stops the
    walk: call again until fewer rows than the buffer holds come back.
    """
    cap = rep_t.shape[0]
    r = 0
    reported = 0
    for s in range(table.shape[0]):
        counts = table[s, COUNTS]
        held = (counts >> S32) & LOW32
        if held == 0:
            continue
        if r >= cap:
            break
        meta = table[s, META]
        close = table[s, TA] + (params[code_class[meta & CODE_MASK], 1] if kind == FIXED_WINDOW else I64(0))
        if close > now:
            continue
        rep_t[r] = close
        rep_device[r] = U64(table[s, DEV])
        rep_code[r] = np.uint16(meta & CODE_MASK)
        rep_count[r] = held
        rep_seq[r] = (meta >> S32) & LOW32
        table[s, COUNTS] = counts & LOW32
        r += 1
        reported += held
    counters[REPORTS] += r
    counters[REPORTED] += reported
    return r


@jit(inline="always")
def _stale(meta, counts, time_a, window, kind, now):  # type: ignore[no-untyped-def]
    """True when a record behaves exactly like a fresh key for every alert at >= now.

    It must have no sequence number (so no pending discards either) and nothing left of
    its limit: the window has ended (fixed window) or the bucket has drained (GCRA).
    Scalars only: a helper taking arrays would cost reference counting per call.
    """
    if (meta >> S32) != 0 or (counts >> S32) != 0:
        return False
    if kind == FIXED_WINDOW:
        return now - time_a >= window
    return now >= time_a


@jit
def compact(table, kind, code_class, params, now):  # type: ignore[no-untyped-def]
    """Drop the records that are :func:`_stale` at ``now``, in place; returns the count kept.

    Emptying slots can break probe chains, so every remaining record is then moved to the
    first empty slot on its probe path, walking the table in probe order (the classic
    in-place rehash for linear probing): one pass, no allocation. The walk starts after a
    slot that was empty *before* the drop, so no probe path crosses its start and each
    record's path lies in the part already walked.
    """
    slots = table.shape[0]
    mask = U64(slots - 1)
    start = -1  # a slot empty before the drop; there is one, the load is below 1
    for s in range(slots):
        meta = table[s, META]
        if meta == 0:
            if start < 0:
                start = s
        elif _stale(
            meta, table[s, COUNTS], table[s, TA], params[code_class[meta & CODE_MASK], 1], kind, now
        ):
            for w in range(WORDS):
                table[s, w] = 0
    kept = 0
    for k in range(1, slots + 1):
        s = U64((start + k) & (slots - 1))
        meta = table[s, META]
        if meta == 0:
            continue
        kept += 1
        p = home_slot(U64(table[s, DEV]), np.uint16(meta & CODE_MASK), mask)
        while p != s and table[p, META] != 0:
            p = (p + _U1) & mask
        if p != s:
            for w in range(WORDS):
                table[p, w] = table[s, w]
                table[s, w] = 0
    return kept


@jit
def rebuild(old, new):  # type: ignore[no-untyped-def]
    """Insert every record of ``old`` into the empty (larger) table ``new``."""
    mask = U64(new.shape[0] - 1)
    for s in range(old.shape[0]):
        meta = old[s, META]
        if meta == 0:
            continue
        r = home_slot(U64(old[s, DEV]), np.uint16(meta & CODE_MASK), mask)
        while new[r, META] != 0:
            r = (r + _U1) & mask
        for w in range(WORDS):
            new[r, w] = old[s, w]


@jit
def first_decrease(t_ns, previous):  # type: ignore[no-untyped-def]
    """Index of the first time below its predecessor (``previous`` before row 0), or -1."""
    for i in range(t_ns.shape[0]):
        if t_ns[i] < previous:
            return i
        previous = t_ns[i]
    return -1


# tuning sweep: dense key numbers, then several settings side by side per key

# sweep counters, per setting
SW_FORWARDED = 0
SW_NEAR = 1
SW_STORM_FORWARDED = 2
SW_STORM_DISCARDED = 3
SW_COLLATERAL = 4
SW_COUNTERS = 5


@jit
def dense_keys(device, alert_code, code_class, index, key):  # type: ignore[no-untyped-def]
    """Number the keys of the alerts in order of first appearance: ``key[i]``, or -1 for an
    excluded code; returns how many keys, or -1 if ``index`` (zeroed ``int64[slots, 2]``,
    records ``device, code | occupied | number << 32``) got half full (retry larger)."""
    n = device.shape[0]
    mask = U64(index.shape[0] - 1)
    limit = index.shape[0] // 2
    keys = 0
    for i in range(n):
        j = i + AHEAD
        if j < n:
            prefetch(index, home_slot(device[j], alert_code[j], mask), 0)
        code = alert_code[i]
        if code_class[code] == 0:
            key[i] = -1
            continue
        s = home_slot(device[i], code, mask)
        want = I64(code) | OCCUPIED
        dev = I64(device[i])
        while True:
            w = index[s, 1]
            if w == 0:
                if keys >= limit:
                    return -1
                index[s, 0] = dev
                index[s, 1] = want | (I64(keys) << S32)
                key[i] = keys
                keys += 1
                break
            if (w & KEY_MASK) == want and index[s, 0] == dev:
                key[i] = w >> S32
                break
            s = (s + _U1) & mask
    return keys


@jit
def sweep_pass(
    t_ns, alert_code, key, storm_id, kind, code_class, params, state, counts, first_catch
):  # type: ignore[no-untyped-def]
    """Settings ``0..S-1`` over the same alerts, each key's states side by side.

    ``params`` is ``int64[S, classes, 4]`` (rows as for the table kernel), ``state``
    zeroed ``int64[keys, 4 S]`` (setting ``s`` in columns ``4s..4s+3``, the step layout),
    ``key`` from :func:`dense_keys`, ``storm_id`` as for :func:`dccsim.throttle.tuning.storm_ids`. Adds to
    ``counts[s, SW_*]`` and sets ``first_catch[s, storm]`` (start it at -1) to the time of
    the storm's first discarded alert. One random access per alert serves all S settings.
    """
    n = t_ns.shape[0]
    width = state.shape[1]
    settings = params.shape[0]
    for i in range(n):
        j = i + AHEAD
        if j < n and key[j] >= 0:
            for w in range(0, width, 8):  # every cache line of the key's states
                prefetch(state, key[j], w)
        r = key[i]
        if r < 0:
            continue
        cls = code_class[alert_code[i]]
        t = t_ns[i]
        sid = storm_id[i]
        new = state[r, 0] == 0
        for s in range(settings):
            c = 4 * s
            if new:  # a key's first alert: the window opens (GCRA: an empty bucket)
                meta, time_a, last, held = OCCUPIED, t, I64(0), I64(0)
            else:
                meta, time_a, last, held = state[r, c], state[r, c + 1], state[r, c + 2], state[r, c + 3]
            if kind == FIXED_WINDOW:
                meta, time_a, last, held, forward, _, _, near = fixed_window_step(
                    meta, time_a, last, held, t, params[s, cls, 0], params[s, cls, 1], params[s, cls, 2],
                    params[s, cls, 3],
                )  # fmt: skip
            else:
                meta, time_a, last, held, forward, _, _, near = gcra_step(
                    meta, time_a, last, held, t, params[s, cls, 0], params[s, cls, 1], params[s, cls, 2],
                    params[s, cls, 3],
                )  # fmt: skip
            state[r, c] = meta
            state[r, c + 1] = time_a
            state[r, c + 2] = last
            state[r, c + 3] = held
            counts[s, SW_NEAR] += near
            if forward:
                counts[s, SW_FORWARDED] += 1
                if sid >= 0:
                    counts[s, SW_STORM_FORWARDED] += 1
            elif sid >= 0:
                counts[s, SW_STORM_DISCARDED] += 1
                if first_catch[s, sid] < 0:
                    first_catch[s, sid] = t
            else:
                counts[s, SW_COLLATERAL] += 1
