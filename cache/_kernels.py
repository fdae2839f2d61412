"""Numba kernels of the readings cache: arrays and scalars in, preallocated arrays out.

The state of one cache shard is three arrays (the layout and the arithmetic behind it are
in :mod:`dccsim.cache.readings`):

``arena``
    ``uint32[A * 7]``: a ring of 28-byte records in store order, which is also expiry order.
    Words: ``0-1`` device, ``2-3`` period key ``start_s << 30 | (end_s - start_s)`` (bit 29,
    free because a period is shorter than 2**29 s, marks a record dead),
    ``4`` stored time bits 0-31, ``5`` stored time bits 32-47 ``<< 16 | srv << 8 | code``,
    ``6`` payload reference. The stored time is kept modulo 2**48 ns and rebuilt exactly
    from the clock, because every record in the ring is younger than the retention
    (< 72 h < 2**48 ns, about 78.2 h).
``index``
    ``uint64[N]``: Robin Hood linear probing table of ``hash32 << 32 | arena position``;
    home slot ``hash32 * N >> 32``; empty is all ones. The 32-bit hash doubles as a
    fingerprint, so a probe reads the arena only for a likely match.
``st``
    ``int64[N_STATE]``: clock, ring head/tail/count, resident count, capacity, retention and
    the counters (slot names below).

Records never move except in compaction and growth, so the index is the only structure a
replacement, expiry or eviction edits. A replaced record stays in the ring, dead (no index
entry points to it), until the head passes it or a compaction drops it.

Every operation first expires what its time has made stale: while the head record's stored
time ``s`` satisfies ``s + R <= t`` it is popped (counted as expired if it was live). That is
why counters never depend on how a stream is split into batches, and why expiry costs only
a compare with the head's time unless something expires.

A batch goes through two kernels: :func:`prepare` validates it (nothing is applied if a row
is bad) and computes each row's packed period and hash in a branch-free loop; :func:`run_ops`
then applies it in order. The hot loop hints loads of operations a few steps ahead
(``AHEAD_*``): random index and ring lines are the cost, not arithmetic. The read-through
kernel (:func:`read_through`, with its pending-store heap) runs the same steps interleaved with
the stores that fall due.

One concern, the cache's compiled code, which is why this module is longer than most.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit as jit_alloc
from ._jit import jit_noalloc as jit
from ._jit import prefetch

U64 = np.uint64
I64 = np.int64

EMPTY = U64(0xFFFF_FFFF_FFFF_FFFF)
MASK32 = U64(0xFFFF_FFFF)
MASK8 = U64(0xFF)
S8 = U64(8)
S30 = U64(30)
S32 = U64(32)
K_PERIOD = U64(0x9E37_79B9_7F4A_7C15)
K_SRV = U64(0xC2B2_AE3D_27D4_EB4F)
M1 = U64(0xFF51_AFD7_ED55_8CCD)
M2 = U64(0xC4CE_B9FE_1A85_EC53)
MASK48 = (1 << 48) - 1
NS_PER_S = 1_000_000_000
NS_U64 = U64(NS_PER_S)
WORDS = 7

#: largest period length, in seconds (about 17 years): 29 bits, bit 29 is the dead flag
MAX_PERIOD_S = (1 << 29) - 1
#: bit of record word 2 set when a replacement has left the record dead
DEAD_BIT = 1 << 29
MAX_PERIOD_U64 = U64(MAX_PERIOD_S)
#: operations must have |t| < 2**62 ns (about 146 years either side of 1970)
T_LIMIT = 1 << 62

OP_LOOKUP = 0
OP_STORE = 1

# slots of the state vector
NOW = 0
HEAD = 1
TAIL = 2
NREC = 3
RESIDENT = 4
CAP = 5
BOUNDED = 6
RETENTION = 7
HITS = 8
MISSES = 9
STORES = 10
REPLACED = 11
EXPIRED = 12
EVICTED = 13
COMPACTIONS = 14
GROWTHS = 15
RING_MAX = 16  # most ring records this capacity may use (see run_ops: ring full)
NEED = 17  # why run_ops stopped early: NEED_CAPACITY or NEED_RING, 0 when it did not
RING_GROWTHS = 18
N_STATE = 19

NEED_CAPACITY = 1
NEED_RING = 2

# how far ahead (in operations) the kernel hints index and arena loads
AHEAD_INDEX = 16
AHEAD_ARENA = 8
_AHEAD_ARENA_U = U64(AHEAD_ARENA)
HINT_PROBES = 4
AHEAD_EXPIRY = 8
AHEAD_RING = 32
AHEAD_COMPACT = 16

# validation outcomes of prepare(), turned into messages by ReadingsCache._raise_invalid
OK = 0
BAD_OP = 1
BAD_ORDER = 2
BAD_T = 3
BAD_START = 4
BAD_START_ALIGN = 5
BAD_END_ALIGN = 6
BAD_PERIOD = 7


@jit
def key_hash(dev: np.uint64, kw: np.uint64, srv: np.uint64) -> np.uint64:
    """32-bit hash of a key: two multiply-xorshift rounds over a mix of the three parts."""
    x = dev ^ (kw * K_PERIOD) ^ (srv * K_SRV)
    x *= M1
    x ^= x >> S32
    x *= M2
    return x >> S32


@jit
def home(h: np.uint64, n: int) -> int:
    """Home slot of a 32-bit hash in a table of ``n < 2**32`` slots (multiply-shift)."""
    return I64((h * U64(n)) >> S32)


@jit
def rec_dev(arena: np.ndarray, p: int) -> np.uint64:
    b = p * WORDS
    return U64(arena[b]) | (U64(arena[b + 1]) << S32)


@jit
def rec_kw(arena: np.ndarray, p: int) -> np.uint64:
    b = p * WORDS
    return U64(arena[b + 2]) | (U64(arena[b + 3]) << S32)


@jit
def rec_srv(arena: np.ndarray, p: int) -> np.uint64:
    return (U64(arena[p * WORDS + 5]) >> S8) & MASK8


@jit
def rec_code(arena: np.ndarray, p: int) -> np.uint8:
    return np.uint8(U64(arena[p * WORDS + 5]) & MASK8)


@jit
def rec_ref(arena: np.ndarray, p: int) -> np.uint32:
    return arena[p * WORDS + 6]


@jit
def rec_stored(arena: np.ndarray, p: int, now: int) -> int:
    """Stored time in ns, rebuilt from its low 48 bits: exact while ``now - s < 2**48``."""
    b = p * WORDS
    low = I64(arena[b + 4]) | (I64(arena[b + 5] >> 16) << 32)
    return now - ((now - low) & MASK48)


@jit
def rec_dead(arena: np.ndarray, p: int) -> bool:
    """True when a replacement marked record ``p`` dead (no index entry points to it).

    A record without the mark is not necessarily live: liveness is decided by the index.
    """
    return (arena[p * WORDS + 2] & DEAD_BIT) != 0


@jit
def mark_dead(arena: np.ndarray, p: int) -> None:
    arena[p * WORDS + 2] |= DEAD_BIT


@jit
def rec_hash(arena: np.ndarray, p: int) -> np.uint64:
    return key_hash(rec_dev(arena, p), rec_kw(arena, p), rec_srv(arena, p))


@jit
def rec_write(
    arena: np.ndarray, p: int, dev: np.uint64, kw: np.uint64, srv: np.uint64,
    s: int, code: np.uint64, ref: np.uint32,
) -> None:
    b = p * WORDS
    low = s & MASK48
    arena[b] = dev & MASK32
    arena[b + 1] = dev >> S32
    arena[b + 2] = kw & MASK32
    arena[b + 3] = kw >> S32
    arena[b + 4] = low & 0xFFFF_FFFF
    arena[b + 5] = ((low >> 32) << 16) | I64(srv << S8) | I64(code)
    arena[b + 6] = ref


@jit
def rec_copy(arena: np.ndarray, src: int, dst: np.ndarray, d: int) -> None:
    bs = src * WORDS
    bd = d * WORDS
    for w in range(WORDS):
        dst[bd + w] = arena[bs + w]


@jit
def find_key(
    index: np.ndarray, arena: np.ndarray, h: np.uint64, dev: np.uint64, kw: np.uint64,
    srv: np.uint64,
) -> int:
    """Index slot of the live entry for a key, or -1."""
    n = index.shape[0]
    j = home(h, n)
    d = 0
    while True:
        e = index[j]
        if e == EMPTY:
            return -1
        eh = e >> S32
        if eh == h:
            p = I64(e & MASK32)
            if rec_dev(arena, p) == dev and rec_kw(arena, p) == kw and rec_srv(arena, p) == srv:
                return j
        else:
            ed = j - home(eh, n)
            if ed < 0:
                ed += n
            if ed < d:  # Robin Hood: the key would have displaced this entry
                return -1
        j += 1
        if j == n:
            j = 0
        d += 1


@jit
def find_entry(index: np.ndarray, e: np.uint64) -> int:
    """Index slot holding exactly the entry ``e``, or -1 (the record it names is dead)."""
    n = index.shape[0]
    h = e >> S32
    j = home(h, n)
    d = 0
    while True:
        cur = index[j]
        if cur == e:
            return j
        if cur == EMPTY:
            return -1
        ch = cur >> S32
        if ch != h:
            cd = j - home(ch, n)
            if cd < 0:
                cd += n
            if cd < d:
                return -1
        j += 1
        if j == n:
            j = 0
        d += 1


@jit
def index_insert(index: np.ndarray, e: np.uint64) -> None:
    """Robin Hood insert of an entry whose key is known to be absent."""
    n = index.shape[0]
    j = home(e >> S32, n)
    d = 0
    while True:
        cur = index[j]
        if cur == EMPTY:
            index[j] = e
            return
        cd = j - home(cur >> S32, n)
        if cd < 0:
            cd += n
        if cd < d:
            index[j] = e
            e = cur
            d = cd
        j += 1
        if j == n:
            j = 0
        d += 1


@jit
def index_delete(index: np.ndarray, j: int) -> None:
    """Remove slot ``j`` by shifting the rest of its cluster back (no tombstones)."""
    n = index.shape[0]
    k = j + 1
    if k == n:
        k = 0
    while True:
        cur = index[k]
        if cur == EMPTY or home(cur >> S32, n) == k:
            break
        index[j] = cur
        j = k
        k += 1
        if k == n:
            k = 0
    index[j] = EMPTY


@jit(inline="always")
def drop_record(arena: np.ndarray, index: np.ndarray, p: int) -> bool:
    """Remove the index entry of record ``p`` if it is live; True when it was."""
    if rec_dead(arena, p):
        return False
    h = rec_hash(arena, p)
    j = find_entry(index, (h << S32) | U64(p))
    if j < 0:
        return False
    index_delete(index, j)
    return True


@jit
def hint_head(arena: np.ndarray, index: np.ndarray, head: int, nrec: int, a: int) -> None:
    """Prefetch for records about to expire: the ring a few lines past the head, and the
    index line of the record AHEAD_EXPIRY past the head (whose ring line came in earlier)."""
    if nrec > AHEAD_EXPIRY:
        p = head + AHEAD_EXPIRY
        if p >= a:
            p -= a
        prefetch(index, home(rec_hash(arena, p), index.shape[0]))
        if nrec > AHEAD_RING:
            p = head + AHEAD_RING
            if p >= a:
                p -= a
            prefetch(arena, p * WORDS)


@jit
def hint_index(index: np.ndarray, h: np.uint64) -> None:
    """Prefetch a hash's home index line, and the next line in case its probe crosses."""
    nidx = index.shape[0]
    jk = home(h, nidx)
    prefetch(index, jk)
    prefetch(index, jk + 3 if jk + 3 < nidx else jk)


@jit
def hint_record(index: np.ndarray, arena: np.ndarray, h: np.uint64) -> None:
    """Prefetch the record of the first of a hash's ``HINT_PROBES`` index slots that holds its
    fingerprint (its index line must have had time to arrive)."""
    nidx = index.shape[0]
    jk = home(h, nidx)
    for _ in range(HINT_PROBES):
        ek = index[jk]
        if ek == EMPTY:
            return
        if (ek >> S32) == h:
            bk = I64(ek & MASK32) * WORDS
            prefetch(arena, bk)
            prefetch(arena, bk + WORDS - 1)
            return
        jk += 1
        if jk == nidx:
            jk = 0


@jit
def compact(arena: np.ndarray, index: np.ndarray, head: int, nrec: int) -> tuple[int, int]:
    """Slide the live records of the ring together; return (tail, count).

    Only called when the ring is full; the ring then holds at least its slack of dead
    records, so the work is amortised over at least that many replacements. Records marked
    dead are dropped without an index probe; the others are probed (a record can be dead
    without the mark) and, when they move, their index entry follows them.
    """
    a = arena.shape[0] // WORDS
    nidx = index.shape[0]
    r = head
    w = head
    kept = 0
    for k in range(nrec):
        if k + AHEAD_COMPACT < nrec:
            q = r + AHEAD_COMPACT
            if q >= a:
                q -= a
            if not rec_dead(arena, q):
                prefetch(index, home(rec_hash(arena, q), nidx))
        if not rec_dead(arena, r):
            h = rec_hash(arena, r)
            j = find_entry(index, (h << S32) | U64(r))
            if j >= 0:
                if w != r:
                    rec_copy(arena, r, arena, w)
                    index[j] = (h << S32) | U64(w)
                w += 1
                if w == a:
                    w = 0
                kept += 1
        r += 1
        if r == a:
            r = 0
    return w, kept


@jit
def head_time(arena: np.ndarray, head: int, nrec: int, now: int) -> int:
    """Stored time of the head record (the next to expire); ``now`` when the ring is empty."""
    return rec_stored(arena, head, now) if nrec > 0 else now


@jit
def pop_expired(
    arena: np.ndarray, index: np.ndarray, head: int, nrec: int, head_s: int, now: int,
    limit: int,
) -> tuple[int, int, int, int]:
    """Pop the ring records stored at or before ``limit`` (their index entries go if live).

    ``head_s`` is the head record's stored time. Returns (head, records left, the new head's
    stored time, live records popped).
    """
    a = arena.shape[0] // WORDS
    popped = 0
    while nrec > 0 and head_s <= limit:
        hint_head(arena, index, head, nrec, a)
        if drop_record(arena, index, head):
            popped += 1
        head += 1
        if head == a:
            head = 0
        nrec -= 1
        head_s = head_time(arena, head, nrec, now)
    return head, nrec, head_s, popped


@jit
def make_room(
    arena: np.ndarray, index: np.ndarray, st: np.ndarray, j: int, head: int, tail: int,
    nrec: int, resident: int, head_s: int, t: int,
) -> tuple[bool, int, int, int, int, int]:
    """Before a store at ``t`` into a full cache or a full ring (``j``: the key's index slot
    or -1): evict the live record closest to expiry, then compact or grow a full ring.

    Returns (done, head, tail, records, resident, head's stored time); not done means the
    arrays must grow first (``st[NEED]`` says which). Counts evictions and compactions in
    ``st``. The common case never calls it: the kernels test first.
    """
    a = arena.shape[0] // WORDS
    if j < 0 and resident >= st[CAP]:
        if st[BOUNDED] == 0:
            st[NEED] = NEED_CAPACITY
            return False, head, tail, nrec, resident, head_s
        # evict the live record closest to expiry: the oldest store, at the head
        while True:
            live = drop_record(arena, index, head)
            head += 1
            if head == a:
                head = 0
            nrec -= 1
            if live:
                break
        resident -= 1
        st[EVICTED] += 1
        head_s = head_time(arena, head, nrec, t)
    if nrec == a:
        # The ring is full of live and dead (replaced) records. Compact when at least
        # 1/16 of it is dead (amortised: at most 16 records looked at per record freed);
        # otherwise let the caller grow the ring, once, to RING_MAX records (about
        # C + C/15, where a full ring is always at least 1/16 dead).
        if (nrec - resident) * 16 >= a or a >= st[RING_MAX]:
            tail, nrec = compact(arena, index, head, nrec)
            st[COMPACTIONS] += 1
            head_s = head_time(arena, head, nrec, t)
        else:
            st[NEED] = NEED_RING
            return False, head, tail, nrec, resident, head_s
    return True, head, tail, nrec, resident, head_s


@jit
def write_record(
    arena: np.ndarray, index: np.ndarray, j: int, tail: int, h: np.uint64, dev: np.uint64,
    kw: np.uint64, srv: np.uint64, t: int, code: np.uint64, ref: np.uint32,
) -> None:
    """Write a store's record at the ring's tail (which has room) and point its key's index
    entry at it; ``j`` is the key's index slot (its old record is marked dead) or -1."""
    a = arena.shape[0] // WORDS
    pt = tail + AHEAD_RING  # bring the ring lines ahead of the tail in before writing
    if pt >= a:
        pt -= a
    prefetch(arena, pt * WORDS)
    rec_write(arena, tail, dev, kw, srv, t, code, ref)
    e = (h << S32) | U64(tail)
    if j >= 0:
        mark_dead(arena, I64(index[j] & MASK32))
        index[j] = e
    else:
        index_insert(index, e)


@jit
def expire(arena: np.ndarray, index: np.ndarray, st: np.ndarray, t: int) -> int:
    """Advance the clock to ``t`` and pop every record with ``s + R <= t``; return live pops."""
    now = st[NOW]
    head, nrec, _, popped = pop_expired(
        arena, index, st[HEAD], st[NREC], head_time(arena, st[HEAD], st[NREC], now), now,
        t - st[RETENTION],
    )
    st[HEAD] = head
    st[NREC] = nrec
    st[RESIDENT] -= popped
    st[EXPIRED] += popped
    st[NOW] = t
    return popped


@jit(inline="always")
def save_state(
    st: np.ndarray, now: int, head: int, tail: int, nrec: int, resident: int,
    hits: int, misses: int, stores: int, replaced: int, expired: int,
) -> None:
    """Write a kernel's ring position back to the state and add its counts."""
    st[NOW] = now
    st[HEAD] = head
    st[TAIL] = tail
    st[NREC] = nrec
    st[RESIDENT] = resident
    st[HITS] += hits
    st[MISSES] += misses
    st[STORES] += stores
    st[REPLACED] += replaced
    st[EXPIRED] += expired


@jit
def run_ops(
    arena: np.ndarray, index: np.ndarray, st: np.ndarray, uniform: int, op: np.ndarray,
    t: np.ndarray, dev: np.ndarray, srv: np.ndarray, kws: np.ndarray, hs: np.ndarray,
    code: np.ndarray, ref: np.ndarray,
    out_hit: np.ndarray, out_code: np.ndarray, out_ref: np.ndarray, out_stored: np.ndarray,
    write_out: bool,
) -> int:
    """Apply a time-ordered stream of lookups and stores to one shard's state.

    ``kws`` and ``hs`` are the period keys and hashes from :func:`prepare`. ``uniform`` is
    the kind of every operation (``OP_LOOKUP`` or ``OP_STORE``), or -1 to read it from
    ``op``. Lookups write their outcome to the ``out_*`` arrays when ``write_out`` (store
    rows get ``False``/0 there).

    Returns the number of operations applied: ``len(t)``, or fewer when the arrays must grow
    before the next store (``st[NEED]`` says which); the caller grows them and calls again
    from there (re-running an operation's expiry, or an eviction already done, is exact).
    """
    n = t.shape[0]
    a = arena.shape[0] // WORDS
    retention = st[RETENTION]
    cap = st[CAP]
    now = st[NOW]
    head = st[HEAD]
    tail = st[TAIL]
    nrec = st[NREC]
    resident = st[RESIDENT]
    hits = I64(0)
    misses = I64(0)
    stores = I64(0)
    replaced = I64(0)
    expired = I64(0)
    done = n
    # stored time of the head record (the next to expire), kept while the head stays put
    head_s = head_time(arena, head, nrec, now)
    for k in range(min(AHEAD_INDEX, n)):
        hint_index(index, hs[k])
    for i in range(n):
        # hint later operations' loads: the index line now, the arena record once the
        # index line has had time to arrive (hints never change results)
        k = i + AHEAD_INDEX
        if k < n:
            hint_index(index, hs[k])
        k = i + AHEAD_ARENA
        if k < n:
            hint_record(index, arena, hs[k])

        ti = t[i]
        if nrec > 0 and head_s <= ti - retention:
            head, nrec, head_s, popped = pop_expired(
                arena, index, head, nrec, head_s, now, ti - retention
            )
            resident -= popped
            expired += popped
        now = ti

        dv = dev[i]
        sv = U64(srv[i])
        j = find_key(index, arena, hs[i], dv, kws[i], sv)
        if uniform == OP_LOOKUP or (uniform < 0 and op[i] == OP_LOOKUP):
            if j >= 0:
                p = I64(index[j] & MASK32)
                hits += 1
                if write_out:
                    out_hit[i] = True
                    out_code[i] = rec_code(arena, p)
                    out_ref[i] = rec_ref(arena, p)
                    out_stored[i] = rec_stored(arena, p, now)
            else:
                misses += 1
                if write_out:
                    out_hit[i] = False
                    out_code[i] = 0
                    out_ref[i] = 0
                    out_stored[i] = 0
            continue

        if write_out:
            out_hit[i] = False
            out_code[i] = 0
            out_ref[i] = 0
            out_stored[i] = 0
        if (j < 0 and resident >= cap) or nrec == a:
            ok, head, tail, nrec, resident, head_s = make_room(
                arena, index, st, j, head, tail, nrec, resident, head_s, ti
            )
            if not ok:
                done = i
                break
        if nrec == 0:
            head_s = ti
        write_record(arena, index, j, tail, hs[i], dv, kws[i], sv, ti, U64(code[i]), ref[i])
        replaced += j >= 0
        resident += j < 0
        tail += 1
        if tail == a:
            tail = 0
        nrec += 1
        stores += 1

    save_state(st, now, head, tail, nrec, resident, hits, misses, stores, replaced, expired)
    return done


@jit
def rebuild(
    arena: np.ndarray, index: np.ndarray, st: np.ndarray, new_arena: np.ndarray,
    new_index: np.ndarray,
) -> None:
    """Copy the live records, oldest first, into larger (empty) arrays and re-index them."""
    a = arena.shape[0] // WORDS
    p = st[HEAD]
    k = 0
    for _ in range(st[NREC]):
        h = rec_hash(arena, p)
        if not rec_dead(arena, p) and find_entry(index, (h << S32) | U64(p)) >= 0:
            rec_copy(arena, p, new_arena, k)
            index_insert(new_index, (h << S32) | U64(k))
            k += 1
        p += 1
        if p == a:
            p = 0
    st[HEAD] = 0
    st[TAIL] = k
    st[NREC] = k


@jit
def prepare(
    uniform: int, op: np.ndarray, t: np.ndarray, dev: np.ndarray, srv: np.ndarray,
    start: np.ndarray, end: np.ndarray, now: int, kws: np.ndarray, hs: np.ndarray,
) -> tuple[int, int]:
    """Validate a batch and fill its packed periods and hashes (``kws``, ``hs``).

    Returns (first invalid row, reason), or (-1, OK). On an invalid row the caller must not
    run the batch (``kws``/``hs`` are then partly filled scratch).
    """
    prev = now
    for i in range(t.shape[0]):
        if uniform < 0 and op[i] > OP_STORE:
            return i, BAD_OP
        ti = t[i]
        if ti <= -T_LIMIT or ti >= T_LIMIT:
            return i, BAD_T
        if ti < prev:
            return i, BAD_ORDER
        prev = ti
        s = start[i]
        e = end[i]
        if s < 0:
            return i, BAD_START
        start_s = U64(s) // NS_U64
        if start_s * NS_U64 != U64(s):
            return i, BAD_START_ALIGN
        if e < s:
            return i, BAD_PERIOD
        end_s = U64(e) // NS_U64
        if end_s * NS_U64 != U64(e):
            return i, BAD_END_ALIGN
        length = end_s - start_s
        if length > MAX_PERIOD_U64:
            return i, BAD_PERIOD
        kw = (start_s << S30) | length
        kws[i] = kw
        hs[i] = key_hash(dev[i], kw, U64(srv[i]))
    return -1, OK


# ---------------------------------------------------------------------------- read-through
# The read-through kernel (:class:`dccsim.cache.readthrough.ReadThroughCache`): lookups
# interleaved with the due pending stores of a binary min-heap that persists across calls.


@jit_alloc
def heap_less(ht, hq, a, b):  # type: ignore[no-untyped-def]
    return ht[a] < ht[b] or (ht[a] == ht[b] and hq[a] < hq[b])


@jit_alloc
def heap_swap(ht, hq, hslot, a, b):  # type: ignore[no-untyped-def]
    ht[a], ht[b] = ht[b], ht[a]
    hq[a], hq[b] = hq[b], hq[a]
    hslot[a], hslot[b] = hslot[b], hslot[a]


@jit_alloc
def heap_pop(ht, hq, hslot, meta):  # type: ignore[no-untyped-def]
    """Remove the root; its pool slot goes back on the free stack (``hslot`` past the end)."""
    m = meta[0] - 1
    meta[0] = m
    if m > 0:
        heap_swap(ht, hq, hslot, 0, m)
        j = 0
        while True:
            left = 2 * j + 1
            if left >= m:
                break
            c = left
            if left + 1 < m and heap_less(ht, hq, left + 1, left):
                c = left + 1
            if heap_less(ht, hq, c, j):
                heap_swap(ht, hq, hslot, c, j)
                j = c
            else:
                break


@jit_alloc
def heap_push(ht, hq, hslot, meta, when):  # type: ignore[no-untyped-def]
    """Add an entry at ``when``; returns its pool slot (slots are recycled with the heap)."""
    m = meta[0]
    ht[m] = when
    hq[m] = meta[1]
    # the slot array holds a permutation of 0..cap-1: positions >= m are the free slots
    slot = hslot[m]
    meta[1] += 1
    meta[0] = m + 1
    j = m
    while j > 0:
        p = (j - 1) // 2
        if heap_less(ht, hq, j, p):
            heap_swap(ht, hq, hslot, j, p)
            j = p
        else:
            break
    return slot


@jit
def read_through(
    arena,
    index,
    st,
    t,
    dev,
    srv,
    kws,
    hs,
    store_at,
    code,
    ref,
    ht,
    hq,
    hslot,
    pd,
    pk,
    ph,
    psm,
    meta,
    out_hit,
    out_code,
    out_ref,
    out_stored,
    start,
    until,
):  # type: ignore[no-untyped-def]
    """Lookups ``start..n`` interleaved with due pending stores; returns (next row, status).

    After the lookups, the stores due by ``until`` are applied and the records it has expired
    dropped (``until`` below the clock: nothing more), so a call with no lookups advances
    the cache's time.

    The expiry, lookup and store steps are those of :func:`dccsim.cache._kernels.run_ops`
    (the same helpers, in the same order), fused with the heap so that one loop serves both
    sources. status 0: done; 1: the cache's arrays must grow before the next store
    (``st[NEED]`` says which); 2: the heap is full.
    ``meta`` holds [heap size, next sequence number].
    """
    n = t.shape[0]
    hcap = ht.shape[0]
    a = arena.shape[0] // WORDS
    retention = st[RETENTION]
    cap = st[CAP]
    now = st[NOW]
    head = st[HEAD]
    tail = st[TAIL]
    nrec = st[NREC]
    resident = st[RESIDENT]
    head_s = head_time(arena, head, nrec, now)
    hits = 0
    misses = 0
    stores = 0
    replaced = 0
    expired = 0
    status = 0
    i = start
    ahead = start  # lookups up to here have had their index line hinted
    while i < n or (meta[0] > 0 and ht[0] <= until):
        # unsigned indices: Numba adds a negative-index fix-up to every array access with a
        # signed one, which LLVM cannot drop here (i starts at an argument)
        u = U64(i)
        # hint later lookups' loads, as run_ops does: the index line, then the record
        while ahead < n and ahead < i + AHEAD_INDEX:
            hint_index(index, hs[U64(ahead)])
            ahead += 1
        if i + AHEAD_ARENA < n:
            hint_record(index, arena, hs[u + _AHEAD_ARENA_U])
        store = meta[0] > 0 and ht[0] <= (t[u] if i < n else until)
        if store:
            ti = ht[0]
            slot = hslot[0]
            dv = pd[slot]
            kw = pk[slot]
            h = ph[slot]
            small = psm[slot]
            sv = small >> np.uint64(40)
        else:
            ti = t[u]
            dv = dev[u]
            kw = kws[u]
            h = hs[u]
            sv = np.uint64(srv[u])
            if store_at[u] >= 0 and meta[0] >= hcap:
                status = 2
                break
        if nrec > 0 and head_s <= ti - retention:
            head, nrec, head_s, popped = pop_expired(arena, index, head, nrec, head_s, now, ti - retention)
            resident -= popped
            expired += popped
        now = ti
        j = find_key(index, arena, h, dv, kw, sv)
        if not store:
            if j >= 0:
                p = np.int64(index[j] & MASK32)
                hits += 1
                out_hit[u] = True
                out_code[u] = rec_code(arena, p)
                out_ref[u] = rec_ref(arena, p)
                out_stored[u] = rec_stored(arena, p, now)
            else:
                misses += 1
                out_hit[u] = False
                out_code[u] = 0
                out_ref[u] = 0
                out_stored[u] = 0
                if store_at[u] >= 0:
                    packed = (sv << np.uint64(40)) | (np.uint64(code[u]) << np.uint64(32)) | np.uint64(ref[u])
                    slot = heap_push(ht, hq, hslot, meta, store_at[u])
                    pd[slot] = dv
                    pk[slot] = kw
                    ph[slot] = h
                    psm[slot] = packed
            i += 1
            continue
        if (j < 0 and resident >= cap) or nrec == a:
            ok, head, tail, nrec, resident, head_s = make_room(
                arena, index, st, j, head, tail, nrec, resident, head_s, ti
            )
            if not ok:
                status = 1
                break
        if nrec == 0:
            head_s = ti
        write_record(
            arena, index, j, tail, h, dv, kw, sv, ti,
            (small >> np.uint64(32)) & np.uint64(0xFF), np.uint32(small & np.uint64(0xFFFFFFFF)),
        )
        replaced += j >= 0
        resident += j < 0
        tail += 1
        if tail == a:
            tail = 0
        nrec += 1
        stores += 1
        heap_pop(ht, hq, hslot, meta)
    if status == 0 and until > now:  # the time the caller advances to: drop what it expires
        head, nrec, head_s, popped = pop_expired(arena, index, head, nrec, head_s, now, until - retention)
        resident -= popped
        expired += popped
        now = until
    save_state(st, now, head, tail, nrec, resident, hits, misses, stores, replaced, expired)
    return i, status
