"""The stateful throttle: alerts in as columns, actions and throttle metadata out.

Semantics
=========

Alerts are keyed by ``(device, alert code)`` and taken in input order, which must be time
order (``t_ns`` non-decreasing; equal times keep their input order). State is per key,
so alerts of different devices never interact: sharding by device is exact, and one batch
or the same alerts cut into any batches give the same outputs.

Outputs, one row per alert:

``action`` (``uint8``)
    ``0`` forwarded, ``1`` throttled (discarded), ``2`` excluded; :data:`ACTIONS` names
    them, in the order of the alerts log's dictionary (``3``, reported, is the action of the
    synthetic alerts of ``report_at_close``, below: never an input alert's).
``throttled_count`` (``uint32``)
    On a forwarded alert: how many alerts of its key were discarded since the key's
    previous forwarded alert. 0 on discarded and excluded alerts.
``sequence_id`` (``uint32``)
    On a forwarded alert whose ``throttled_count`` is above 0: the key's sequence number,
    how many windows (GCRA: episodes) of that key have had excess alerts so far (1, 2,
    ...). 0 otherwise.
``would_throttle`` (``bool``)
    True where enforcement discards the alert (in both modes, so when enforcing it is just
    ``action == 1``; in dry-run mode it is the finding).

Exclusion
    Alerts of an excluded code are forwarded with action ``excluded``, hold no state and
    carry no metadata.

Fixed window (``policy = "fixed-window"``), with the code's N, W, P:
    A window opens at a key's first alert; an alert at ``t >= window start + W`` opens a
    new window at ``t``. The first N alerts of a window are forwarded; each later alert
    in the window is *excess*: forwarded if ``t >= (the key's last forwarded alert) + P``,
    else discarded. A window "has had excess" from its first excess alert, forwarded or
    not; that is when the sequence number counts up.

GCRA (``policy = "gcra"``), a token bucket as a virtual schedule, with the code's N, W, P:
    Emission interval ``T = W // N`` ns (integer division; W is at least N ns) and burst
    tolerance ``tau = (N - 1) * T``, so a quiet key may send N alerts at once and then one
    per T: the same long-run rate as N per W, without window edges. Each key keeps a
    theoretical arrival time TAT, set to ``t`` at its first alert. An alert at ``t`` is
    *conforming* if ``t >= TAT - tau``: it is forwarded and ``TAT = max(TAT, t) + T``.
    Otherwise it is *excess* and takes the same designated-period rule as above (forwarded
    if ``t >= last forwarded + P``, else discarded); excess alerts never move TAT. An
    *episode* starts with an excess alert while none is open and ends when an alert
    arrives with ``t >= TAT`` (the bucket has drained); episodes play the role of windows
    with excess for ``sequence_id``.

Dry run (``dry_run = true``)
    Everything is computed exactly as when enforcing (the state evolves as if the
    discards happened), then every alert that enforcement would discard is forwarded
    instead: ``action`` is ``forwarded`` for all but excluded alerts, ``would_throttle``
    marks the would-be discards, and ``throttled_count`` / ``sequence_id`` are what
    enforcement would attach (so they count alerts that were in fact forwarded; a wire
    encoder should not send them in dry-run mode). :class:`ThrottleStats` counts the
    would-be discards in ``would_throttle`` and none in ``throttled``.

Near limit
    The counter ``near_limit`` counts (key, window) pairs whose window reached
    ``K = ceil(0.8 N)`` alerts (the K-th alert of the window; windows that go on to
    exceed N count too). For GCRA: a conforming alert that leaves the bucket at least
    ``K * T`` ahead of ``t`` (K alerts' worth of fill), counted once until the bucket
    drains again.

Reporting at window close (``report_at_close = true``; off by default)
    By default a key's discards are reported only by its next forwarded alert, which never
    comes if the storm stops for good. With this option, when a key's window closes (fixed
    window: at ``window start + W``; GCRA: at ``TAT``, when the bucket has drained and the
    episode ends) while it holds discards, the throttle makes a *report*: a synthetic
    alert of the key at that time, action ``reported`` (3), carrying the count as
    ``throttled_count`` and the key's ``sequence_id``; the count starts again from 0. A
    report comes before every alert at or after its time, so the key's next alert (the
    first of a new window, always forwarded) carries 0. Reports change no decision: the
    designated period still runs from the key's last forwarded device alert. They are
    never stale (``max_report_age_s`` applies to counts carried by a later forwarded
    alert). Reports are returned by :meth:`Throttle.take_reports` (``now``), which gives
    every report due at or before ``now``, ordered by (time, device, alert code), and
    moves the throttle's clock to ``now``; a run calls it after each batch and once at its
    end: discards whose window is still open then stay ``unreported_discards``. In dry-run
    mode reports are made too (what enforcement would send).

Limits of the counters: a key's sequence number and its discards since the last forward
saturate at 2**32 - 1 (the ``uint32`` outputs); a threshold is at most 2**31 - 1.

State and memory
================

State lives in one open-addressing table (linear probing) of fixed 40-byte records, one per
key (:data:`RECORD_BYTES`; layout in :mod:`dccsim.throttle._kernels`), at most
``max_load`` full (0.5 by default, so 80 bytes of state per key of capacity). The table
starts sized for ``initial_keys`` and, when a new key would pass ``max_load``:

1. records that behave exactly like a new key at that moment are dropped (*evicted*): no
   sequence number yet (so no pending discards) and their window over (fixed window) or
   their bucket drained (GCRA). Dropping them changes no output, ever.
2. If more than half the capacity is still live, the table doubles, up to the size for
   ``max_keys`` keys (:attr:`Throttle.max_state_bytes` bytes).
3. At that size, if less than 1/8 of the capacity can be freed, :class:`ThrottleTableFullError`
   is raised: the alerts of the batch before the one with the new key are applied (the
   error says how many); raise ``max_keys`` or shard by device.

So memory is bounded by ``max_state_bytes`` and in practice follows the keys alive within
one window (plus every key that has ever had excess, which keeps its sequence number).

>>> import numpy as np
>>> from dccsim.throttle import Throttle, ThrottlePolicy
>>> th = Throttle(ThrottlePolicy(threshold=2, window_s=60, designated_period_s=30))
>>> s = 1_000_000_000
>>> t = np.array([0, 1, 2, 3, 31, 32, 70], np.int64) * s
>>> out = th.process(t, np.full(7, 0x00DB12345678ABCD, np.uint64), np.full(7, 0x8F84, np.uint16))
>>> out.action.tolist(), out.throttled_count.tolist(), out.sequence_id.tolist()
([0, 0, 1, 1, 0, 1, 0], [0, 0, 0, 0, 2, 0, 1], [0, 0, 0, 0, 1, 0, 1])
>>> th.stats().throttled, th.stats().keys
(3, 1)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _kernels as k
from .errors import ThrottleConfigError, ThrottleInputError, ThrottleTableFullError
from .policy import ThrottlePolicy, compile_policy
from .stats import ThrottleStats

__all__ = [
    "ACTIONS",
    "FORWARDED",
    "THROTTLED",
    "EXCLUDED",
    "REPORTED",
    "RECORD_BYTES",
    "Throttle",
    "ThrottleOutput",
    "ThrottleReports",
]

#: ``action`` codes
FORWARDED = 0
THROTTLED = 1
EXCLUDED = 2
REPORTED = 3  # a synthetic alert made when a key's window closed with discards (report_at_close)
#: ``action`` names, by code
ACTIONS: tuple[str, ...] = ("forwarded", "throttled", "excluded", "reported")
#: bytes of one state record (one key)
RECORD_BYTES = k.WORDS * 8

_T_MIN = int(np.iinfo(np.int64).min)


class ThrottleOutput(NamedTuple):
    """Per-alert outputs of :meth:`Throttle.process` (see the module docstring)."""

    action: npt.NDArray[np.uint8]
    throttled_count: npt.NDArray[np.uint32]
    sequence_id: npt.NDArray[np.uint32]
    would_throttle: npt.NDArray[np.bool_]

    @classmethod
    def empty(cls, n: int) -> ThrottleOutput:
        """Uninitialised outputs for ``n`` alerts, to pass as ``out=`` and reuse."""
        return cls(
            np.empty(n, np.uint8),
            np.empty(n, np.uint32),
            np.empty(n, np.uint32),
            np.empty(n, np.bool_),
        )


class ThrottleReports(NamedTuple):
    """Reports made at window close (``report_at_close``), one row each, as columns.

    Each row is a synthetic alert of key ``(device, alert_code)`` at ``t_ns`` (the moment its
    window closed) with action ``reported``, carrying ``throttled_count`` discards and the
    key's ``sequence_id``.
    """

    t_ns: npt.NDArray[np.int64]
    device: npt.NDArray[np.uint64]
    alert_code: npt.NDArray[np.uint16]
    throttled_count: npt.NDArray[np.uint32]
    sequence_id: npt.NDArray[np.uint32]

    @classmethod
    def empty(cls, n: int) -> ThrottleReports:
        """Uninitialised columns for ``n`` reports."""
        return cls(
            np.empty(n, np.int64),
            np.empty(n, np.uint64),
            np.empty(n, np.uint16),
            np.empty(n, np.uint32),
            np.empty(n, np.uint32),
        )

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.t_ns.shape[0])

    def take(self, rows: npt.NDArray[Any] | slice) -> ThrottleReports:
        """The rows ``rows`` (indices, a mask or a slice)."""
        return ThrottleReports(*(c[rows] for c in self))

    @classmethod
    def concat(cls, parts: list[ThrottleReports]) -> ThrottleReports:
        """The parts' rows, ordered by (time, device, alert code): the order of a run's log."""
        if not parts:
            return cls.empty(0)
        whole = cls(*(np.concatenate([p[j] for p in parts]) for j in range(5)))
        return whole.take(np.lexsort((whole.alert_code, whole.device, whole.t_ns)))


_NO_REPORTS = ThrottleReports.empty(0)


_OUT_DTYPES = {
    f: np.dtype(d)
    for f, d in zip(ThrottleOutput._fields, (np.uint8, np.uint32, np.uint32, np.bool_), strict=True)
}


def _slots(keys: int, max_load: float) -> int:
    """Table slots (a power of two, at least 8) to hold ``keys`` keys at ``max_load``."""
    need = max(8, int(np.ceil(keys / max_load)))
    return 1 << (need - 1).bit_length()


def _column(name: str, value: object, dtype: type, n: int | None) -> npt.NDArray[Any]:
    if not isinstance(value, np.ndarray):
        raise ThrottleInputError(
            f"{name}: expected a 1-D numpy {np.dtype(dtype)} array, got {type(value).__name__}",
            argument=name,
        )
    if value.dtype != dtype:
        raise ThrottleInputError(
            f"{name}: expected dtype {np.dtype(dtype)}, got {value.dtype}", argument=name
        )
    if value.ndim != 1:
        raise ThrottleInputError(
            f"{name}: expected a 1-D array, got shape {value.shape}", argument=name
        )
    if n is not None and value.shape[0] != n:
        raise ThrottleInputError(
            f"{name}: expected length {n} (as t_ns), got {value.shape[0]}", argument=name
        )
    return np.ascontiguousarray(value)


def _outputs(out: ThrottleOutput | None, n: int) -> ThrottleOutput:
    if out is None:
        return ThrottleOutput.empty(n)
    if not isinstance(out, tuple) or len(out) != 4:
        raise ThrottleInputError(
            f"out: expected a ThrottleOutput, got {type(out).__name__}", argument="out"
        )
    for field, arr in zip(ThrottleOutput._fields, out, strict=True):
        name = f"out.{field}"
        want = _OUT_DTYPES[field]
        if not isinstance(arr, np.ndarray) or arr.dtype != want or arr.shape != (n,):
            got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ThrottleInputError(
                f"{name}: expected a {want} array of shape ({n},), got {got}", argument=name
            )
        if not (arr.flags.c_contiguous and arr.flags.writeable):
            raise ThrottleInputError(
                f"{name}: expected a writeable contiguous array", argument=name
            )
    return ThrottleOutput(*out)


class Throttle:
    """Alert Storm Protection for one shard of devices (semantics in the module docstring).

    Parameters
    ----------
    policy:
        The policy (default: ``ThrottlePolicy()``).
    initial_keys:
        Keys to size the table for at the start (it grows when needed).
    max_keys:
        The bound on keys holding state; memory never passes :attr:`max_state_bytes`.
    max_load:
        Largest share of table slots in use, in (0, 0.9].
    """

    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        *,
        initial_keys: int = 1 << 16,
        max_keys: int = 1 << 24,
        max_load: float = 0.5,
    ) -> None:
        policy = ThrottlePolicy() if policy is None else policy
        if not isinstance(policy, ThrottlePolicy):
            raise ThrottleConfigError(
                f"policy: expected a ThrottlePolicy, got {type(policy).__name__}",
                key="policy",
                value=policy,
                got=f"a {type(policy).__name__}",
                expected="a ThrottlePolicy",
            )
        for name, value in (("initial_keys", initial_keys), ("max_keys", max_keys)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | np.integer)
                or not (1 <= value <= 1 << 40)
            ):
                raise ThrottleConfigError(
                    key=name, value=value, expected="an integer from 1 to 2**40"
                )
        if (
            isinstance(max_load, bool)
            or not isinstance(max_load, float | int)
            or not (0 < max_load <= 0.9)
        ):
            raise ThrottleConfigError(
                key="max_load", value=max_load, expected="a number in (0, 0.9]"
            )
        self._policy = policy
        self._compiled = compile_policy(policy)
        self._max_load = float(max_load)
        self._max_keys = int(max_keys)
        self._max_slots = _slots(self._max_keys, self._max_load)
        slots = min(_slots(int(initial_keys), self._max_load), self._max_slots)
        self._table = np.zeros((slots, k.WORDS), np.int64)
        self._counters = np.zeros(k.N_COUNTERS, np.int64)
        self._clock: int | None = None
        self._reports: list[ThrottleReports] = []  # made by process(), not yet taken
        self._ring = np.zeros(k.AHEAD, np.uint64)  # the kernel's scratch: home slots hashed ahead

    # --- properties ---------------------------------------------------------------------

    @property
    def policy(self) -> ThrottlePolicy:
        """The policy this throttle applies."""
        return self._policy

    @property
    def clock_ns(self) -> int | None:
        """Time of the last alert processed (``None`` before the first)."""
        return self._clock

    @property
    def capacity(self) -> int:
        """Keys the current table takes before it must compact or grow."""
        return self._limit(self._table.shape[0])

    @property
    def max_keys(self) -> int:
        """The bound on keys holding state."""
        return self._max_keys

    @property
    def state_bytes(self) -> int:
        """Bytes of the state table now."""
        return int(self._table.nbytes)

    @property
    def max_state_bytes(self) -> int:
        """Bytes the state table can grow to: the memory bound."""
        return self._max_slots * RECORD_BYTES

    def __len__(self) -> int:
        return int(self._counters[k.USED])

    def __repr__(self) -> str:
        return (
            f"Throttle(policy={self._policy.policy!r}, keys={len(self)}, "
            f"capacity={self.capacity}, state_bytes={self.state_bytes})"
        )

    def _limit(self, slots: int) -> int:
        return int(slots * self._max_load)

    def stats(self) -> ThrottleStats:
        """The counters so far (merge shards' with :meth:`ThrottleStats.merge`)."""
        c = self._counters
        return ThrottleStats(
            forwarded=int(c[k.FORWARDED]),
            throttled=int(c[k.THROTTLED]),
            excluded=int(c[k.EXCLUDED]),
            would_throttle=int(c[k.WOULD_THROTTLE]),
            near_limit=int(c[k.NEAR_LIMIT]),
            keys=int(c[k.USED]),
            evicted=int(c[k.EVICTED]),
            capacity=self.capacity,
            state_bytes=self.state_bytes,
            # discards each key holds since its last forward (the high half of its counts word)
            unreported_discards=int((self._table[:, k.COUNTS] >> 32).sum()),
            stale_discards=int(c[k.STALE]),
            reports_at_close=int(c[k.REPORTS]),
            reported_at_close=int(c[k.REPORTED]),
        )

    # --- processing ---------------------------------------------------------------------

    def process(
        self,
        t_ns: npt.NDArray[np.int64],
        device: npt.NDArray[np.uint64],
        alert_code: npt.NDArray[np.uint16],
        *,
        out: ThrottleOutput | None = None,
    ) -> ThrottleOutput:
        """Apply the policy to a batch of alerts, in order, and return the outputs.

        Parameters
        ----------
        t_ns:
            ``int64`` alert times in ns, non-decreasing, and not before the previous
            batch's last alert.
        device:
            ``uint64`` EUI-64s.
        alert_code:
            ``uint16`` alert codes (``0x8F84``).
        out:
            Optional preallocated outputs (:meth:`ThrottleOutput.empty`), written in place.

        Raises
        ------
        ThrottleInputError
            A wrong dtype, shape or order (nothing applied).
        ThrottleTableFullError
            ``max_keys`` reached (the first ``processed`` alerts applied).
        """
        t_ns = _column("t_ns", t_ns, np.int64, None)
        n = t_ns.shape[0]
        device = _column("device", device, np.uint64, n)
        alert_code = _column("alert_code", alert_code, np.uint16, n)
        out = _outputs(out, n)
        previous = _T_MIN if self._clock is None else self._clock
        bad = int(k.first_decrease(t_ns, previous))
        if bad >= 0:
            before = (
                f"t_ns[{bad - 1}] = {t_ns[bad - 1]}" if bad else f"the previous batch's {previous}"
            )
            raise ThrottleInputError(
                f"t_ns[{bad}] = {t_ns[bad]}: expected non-decreasing times, after {before}",
                argument="t_ns",
                row=bad,
            )
        c = self._compiled
        start = 0
        rep = ThrottleReports.empty(n) if c.report_at_close else _NO_REPORTS  # room for one per alert
        rep_n = np.zeros(1, np.int64)
        # the hash multiplies wrap by design; only plain-Python runs (JIT off) would warn
        with np.errstate(over="ignore"):
            while True:
                stop = int(
                    k.process(
                        t_ns,
                        device,
                        alert_code,
                        start,
                        c.kind,
                        c.code_class,
                        c.params,
                        c.dry_run,
                        c.max_age_ns,
                        c.report_at_close,
                        self._table,
                        self.capacity,
                        self._counters,
                        *out,
                        *rep,
                        rep_n,
                        self._ring,
                    )
                )
                if stop > start:
                    self._clock = int(t_ns[stop - 1])
                if rep_n[0]:  # kept before any error below: these alerts are applied
                    m = int(rep_n[0])
                    self._reports.append(ThrottleReports(*(x[:m].copy() for x in rep)))
                    rep_n[0] = 0
                if stop == n:
                    return out
                self._make_room(int(t_ns[stop]), processed=stop)
                start = stop

    def take_reports(self, now: int) -> ThrottleReports:
        """The reports due at or before ``now`` (``report_at_close``), ordered by (time, device,
        alert code); none without the option.

        ``now`` must not be before the last alert processed, and later alerts must not be
        before ``now``: the throttle's clock moves to ``now``. Call it after each batch (with
        the batch's end) and at the end of a run; whatever is still held then is
        ``unreported_discards``.
        """
        if isinstance(now, bool) or not isinstance(now, int | np.integer):
            raise ThrottleInputError(f"now: expected an integer time in ns, got {now!r}", argument="now")
        now = int(now)
        if self._clock is not None and now < self._clock:
            raise ThrottleInputError(
                f"now = {now}: expected a time not before the last alert processed, {self._clock}",
                argument="now",
            )
        self._clock = now
        c = self._compiled
        if not c.report_at_close:
            return _NO_REPORTS
        parts, self._reports = self._reports, []
        buf = ThrottleReports.empty(max(1, min(int(self._counters[k.USED]), 1 << 16)))
        while True:
            m = int(k.close_windows(self._table, c.kind, c.code_class, c.params, now, self._counters, *buf))
            if m:
                parts.append(ThrottleReports(*(x[:m].copy() for x in buf)))
            if m < len(buf):
                return ThrottleReports.concat(parts)

    def _make_room(self, now: int, *, processed: int) -> None:
        """Evict stale keys and, if still crowded, grow; or raise when at the bound."""
        c = self._compiled
        used = int(self._counters[k.USED])
        with np.errstate(over="ignore"):
            live = int(k.compact(self._table, c.kind, c.code_class, c.params, now))
            self._counters[k.USED] = live
            self._counters[k.EVICTED] += used - live
            slots = self._table.shape[0]
            while live > self._limit(slots) // 2 and slots < self._max_slots:
                slots *= 2
            if slots != self._table.shape[0]:
                new = np.zeros((slots, k.WORDS), np.int64)
                k.rebuild(self._table, new)
                self._table = new
        if self._limit(slots) - live < max(1, self._limit(slots) // 8):
            raise ThrottleTableFullError(
                f"throttle state full: {live} keys hold live state, the bound is "
                f"{self._limit(slots)} keys (max_keys = {self._max_keys}, "
                f"{self.max_state_bytes} bytes); {processed} alerts of this batch were "
                "applied. Raise max_keys or shard by device.",
                processed=processed,
            )

    @classmethod
    def warm_up(cls) -> None:
        """Compile (or load from the cache) every kernel, outside any timed region.

        Covers writeable and read-only inputs (Arrow columns come as read-only arrays, a
        separate specialization for Numba).
        """
        t = np.zeros(3, np.int64)
        d = np.array([1, 2, 1], np.uint64)
        a = np.array([0x8F84, 0x8F75, 0x8F84], np.uint16)
        for readonly in (False, True):
            cols = [x.copy() for x in (t, d, a)]
            for x in cols:
                x.flags.writeable = not readonly
            for policy in ("fixed-window", "gcra"):
                for at_close in (False, True):
                    th = cls(ThrottlePolicy(policy=policy, exclude=("8F75",), report_at_close=at_close), initial_keys=1)
                    th.process(*cols)
                    th.take_reports(1)
                    th._make_room(0, processed=0)
        with np.errstate(over="ignore"):  # the hash wraps on purpose (matters with the JIT off)
            k.rebuild(th._table, np.zeros((2 * th._table.shape[0], k.WORDS), np.int64))
