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
of one key over four state words; :func:`process` (the throttle) and :func:`sweep_pass`
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

#: records hinted ahead of the one being processed (prefetch distance, in alerts)
AHEAD = 16

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
def _hint(table, device, alert_code, j, n, mask):  # type: ignore[no-untyped-def]
    """Prefetch the home record of alert ``j`` (if any), both ends: a 40-byte record may
    straddle two cache lines."""
    if j < n:
        h = home_slot(device[j], alert_code[j], mask)
        prefetch(table, h, DEV)
        prefetch(table, h, COUNTS)


@jit
def _flush(counters, used, forwarded, would, excluded, near, dry_run):  # type: ignore[no-untyped-def]
    counters[USED] = used
    counters[FORWARDED] += forwarded + (would if dry_run else 0)
    counters[THROTTLED] += 0 if dry_run else would
    counters[EXCLUDED] += excluded
    counters[WOULD_THROTTLE] += would
    counters[NEAR_LIMIT] += near


# The policy of one key, as a step over four state words ``st[r, c:c + 4]`` = (meta, time A,
# last forwarded, counts), laid out as words 1-4 of a table record (so the table kernel
# passes ``c = META``) and used as they are by the tuning sweep. A step returns
# ``(forward, pending, sequence, near)``: whether the alert is forwarded, the key's
# discards since its last forward before this alert, its sequence number and whether this
# alert was a near-limit event. ``new`` marks a key's first alert; the low 32 bits of meta
# (code, occupied) are the caller's and are kept.


@jit
def fixed_window_step(st, r, c, new, t, threshold, window, period, near_mark):  # type: ignore[no-untyped-def]
    """One alert at ``t`` under the fixed-window policy (N, W, P, ceil(0.8 N))."""
    if new:
        st[r, c + 1] = t  # the window opens here: t - start = 0 < W below
        st[r, c + 3] = 0
    meta = st[r, c]
    counts = st[r, c + 3]
    count = counts & LOW32
    if t - st[r, c + 1] >= window:
        st[r, c + 1] = t
        count = 0
    count += 1
    pending = (counts >> S32) & LOW32
    seq = (meta >> S32) & LOW32
    if count == threshold + 1:  # first excess alert of this window
        seq = min(seq + 1, LOW32)
        st[r, c] = (seq << S32) | (meta & LOW32)
    forward = count <= threshold or t - st[r, c + 2] >= period
    if forward:
        st[r, c + 2] = t
        st[r, c + 3] = min(count, threshold + 2)
    else:
        st[r, c + 3] = (min(pending + 1, LOW32) << S32) | min(count, threshold + 2)
    return forward, pending, seq, count == near_mark


@jit
def gcra_step(st, r, c, new, t, emission, tolerance, period, near_fill):  # type: ignore[no-untyped-def]
    """One alert at ``t`` under GCRA (T, tau, P, ceil(0.8 N) * T)."""
    if new:
        st[r, c + 1] = t  # an empty bucket
        st[r, c + 3] = 0
    meta = st[r, c]
    tat = st[r, c + 1]
    if t >= tat:  # the bucket has drained: episode and near-limit mark end
        meta &= ~(EPISODE | NEAR)
    seq = (meta >> S32) & LOW32
    near = False
    if tat - t <= tolerance:  # conforming
        tat = max(tat, t) + emission
        st[r, c + 1] = tat
        if tat - t >= near_fill and (meta & NEAR) == 0:
            near = True
            meta |= NEAR
        forward = True
    else:
        if (meta & EPISODE) == 0:
            seq = min(seq + 1, LOW32)
            meta |= EPISODE
        forward = t - st[r, c + 2] >= period
    st[r, c] = (seq << S32) | (meta & LOW32)
    pending = (st[r, c + 3] >> S32) & LOW32
    if forward:
        st[r, c + 2] = t
        st[r, c + 3] = 0
    else:
        st[r, c + 3] = min(pending + 1, LOW32) << S32
    return forward, pending, seq, near


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
):  # type: ignore[no-untyped-def]
    """The policy ``kind`` over alerts ``start..n-1``; returns where it stopped.

    ``max_age`` (ns, -1: none): a forwarded alert more than that after its key's previous
    forwarded one does not carry the discards in between (stale: counted in ``STALE``).
    ``report_at_close``: a key's discards pending when its window closed are reported by a
    row of the ``rep_*`` buffers (at index ``rep_n[0]``, which counts up; room for one per
    alert) before its first alert at or after the close.
    """
    n = t_ns.shape[0]
    mask = U64(table.shape[0] - 1)
    used = counters[USED]
    forwarded = 0
    would = 0
    excluded = 0
    near = 0
    stale = 0
    reports = 0
    reported = 0
    for i in range(start, n):
        _hint(table, device, alert_code, i + AHEAD, n, mask)
        code = alert_code[i]
        cls = code_class[code]
        if cls == 0:
            action[i] = A_EXCLUDED
            throttled_count[i] = 0
            sequence_id[i] = 0
            would_throttle[i] = False
            excluded += 1
            continue
        s = _find(table, device[i], code, mask)
        new = table[s, META] == 0
        if new:
            if used >= limit:
                _flush(counters, used, forwarded, would, excluded, near, dry_run)
                counters[STALE] += stale
                counters[REPORTS] += reports
                counters[REPORTED] += reported
                return i
            used += 1
            table[s, DEV] = I64(device[i])
            table[s, META] = I64(code) | OCCUPIED
        elif report_at_close:
            counts = table[s, COUNTS]
            held = (counts >> S32) & LOW32
            if held > 0:
                close = table[s, TA] + (params[cls, 1] if kind == FIXED_WINDOW else I64(0))
                if t_ns[i] >= close:  # the window closed before this alert: report it there
                    r = rep_n[0]
                    rep_t[r] = close
                    rep_device[r] = device[i]
                    rep_code[r] = code
                    rep_count[r] = held
                    rep_seq[r] = (table[s, META] >> S32) & LOW32
                    rep_n[0] = r + 1
                    table[s, COUNTS] = counts & LOW32
                    reports += 1
                    reported += held
        prev_forward = table[s, LAST] if max_age >= 0 else I64(0)  # only when an age limit applies
        if kind == FIXED_WINDOW:
            forward, pending, seq, is_near = fixed_window_step(
                table,
                s,
                META,
                new,
                t_ns[i],
                params[cls, 0],
                params[cls, 1],
                params[cls, 2],
                params[cls, 3],
            )
        else:
            forward, pending, seq, is_near = gcra_step(
                table,
                s,
                META,
                new,
                t_ns[i],
                params[cls, 0],
                params[cls, 1],
                params[cls, 2],
                params[cls, 3],
            )
        near += is_near
        if forward:
            if max_age >= 0 and pending > 0 and t_ns[i] - prev_forward > max_age:
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
            if new:
                state[r, c] = OCCUPIED
            if kind == FIXED_WINDOW:
                forward, _, _, near = fixed_window_step(
                    state,
                    r,
                    c,
                    new,
                    t,
                    params[s, cls, 0],
                    params[s, cls, 1],
                    params[s, cls, 2],
                    params[s, cls, 3],
                )
            else:
                forward, _, _, near = gcra_step(
                    state,
                    r,
                    c,
                    new,
                    t,
                    params[s, cls, 0],
                    params[s, cls, 1],
                    params[s, cls, 2],
                    params[s, cls, 3],
                )
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
