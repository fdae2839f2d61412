"""Plain-Python reference of Alert Storm Protection: the rules, one line each, in a dict.

:class:`ReferenceThrottle` is the specification the Numba kernels are tested against
(``tests/test_throttle_differential.py``). It follows :mod:`dccsim.throttle.engine`'s
module docstring literally, with Python integers (no overflow), one small object per key
and no eviction, so it is slow and obviously correct. It takes the same columns and returns
the same :class:`~dccsim.throttle.ThrottleOutput` and :class:`~dccsim.throttle.ThrottleStats`
counters (``keys`` counts every key ever seen; ``capacity`` and ``state_bytes`` are 0).

>>> import numpy as np
>>> ref = ReferenceThrottle(ThrottlePolicy(threshold=1, window_s=10, designated_period_s=5))
>>> s = 1_000_000_000
>>> out = ref.process(np.array([0, 1, 6, 7], np.int64) * s, np.ones(4, np.uint64),
...                   np.full(4, 0x8F84, np.uint16))
>>> out.action.tolist(), out.throttled_count.tolist(), out.sequence_id.tolist()
([0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .engine import EXCLUDED, FORWARDED, THROTTLED, ThrottleOutput, ThrottleReports
from .errors import ThrottleInputError
from .policy import CodeLimits, ThrottlePolicy
from .stats import ThrottleStats

__all__ = ["ReferenceThrottle"]

LIMIT32 = 2**32 - 1


@dataclass
class _Key:
    """What one (device, alert code) remembers."""

    window_start: int = 0  # fixed window
    in_window: int = 0  # alerts in the current window
    window_had_excess: bool = False
    tat: int = 0  # GCRA theoretical arrival time
    in_episode: bool = False  # GCRA: excess since the bucket last drained
    near_reported: bool = False  # GCRA: near limit counted since the bucket last drained
    last_forwarded: int = 0
    discarded_since_forward: int = 0
    sequence: int = 0  # windows (episodes) that had excess alerts


class ReferenceThrottle:
    """The same throttle as :class:`~dccsim.throttle.Throttle`, in plain Python."""

    def __init__(self, policy: ThrottlePolicy | None = None) -> None:
        self.policy = ThrottlePolicy() if policy is None else policy
        self._limits: dict[int, CodeLimits | None] = {}
        self._keys: dict[tuple[int, int], _Key] = {}
        self._clock: int | None = None
        self._counts = dict.fromkeys(
            ("forwarded", "throttled", "excluded", "would_throttle", "near_limit", "stale_discards",
             "reports_at_close", "reported_at_close"), 0
        )  # fmt: skip
        #: reports made at window close, not yet taken: (time, device, code, count, sequence)
        self._reports: list[tuple[int, int, int, int, int]] = []

    def _limits_of(self, code: int) -> CodeLimits | None:
        if code not in self._limits:
            self._limits[code] = self.policy.limits(code)
        return self._limits[code]

    def process(
        self,
        t_ns: npt.NDArray[np.int64],
        device: npt.NDArray[np.uint64],
        alert_code: npt.NDArray[np.uint16],
    ) -> ThrottleOutput:
        """Apply the policy to alerts in order (same contract as ``Throttle.process``)."""
        ts, devs, codes = t_ns.tolist(), device.tolist(), alert_code.tolist()
        if not len(ts) == len(devs) == len(codes):
            raise ThrottleInputError("columns: expected equal lengths", argument="device")
        for i, t in enumerate(ts):
            if self._clock is not None and t < self._clock:
                raise ThrottleInputError(
                    f"t_ns[{i}] = {t}: expected non-decreasing times", argument="t_ns", row=i
                )
            self._clock = t
        rows = [self.alert(t, d, c) for t, d, c in zip(ts, devs, codes, strict=True)]
        n = len(rows)
        out = ThrottleOutput.empty(n)
        if n:
            action, count, seq, would = zip(*rows, strict=True)
            out.action[:] = action
            out.throttled_count[:] = count
            out.sequence_id[:] = seq
            out.would_throttle[:] = would
        return out

    def _close(self, key: _Key, lim: CodeLimits) -> int:
        """When the key's current window (GCRA: episode) closes."""
        return key.tat if self.policy.policy == "gcra" else key.window_start + lim.window_ns

    def _report_due(self, now: int) -> None:
        """Every key whose window closed at or before ``now`` holding discards reports them,
        at the close, in (time, device, code) order."""
        if not self.policy.report_at_close:
            return
        due = []
        for (device, code), key in self._keys.items():
            lim = self._limits_of(code)
            if key.discarded_since_forward and lim is not None and self._close(key, lim) <= now:
                due.append((self._close(key, lim), device, code, key.discarded_since_forward, key.sequence))
                self._counts["reports_at_close"] += 1
                self._counts["reported_at_close"] += key.discarded_since_forward
                key.discarded_since_forward = 0
        self._reports.extend(sorted(due))

    def take_reports(self, now: int) -> ThrottleReports:
        """The reports made so far and those due at or before ``now``, in time order."""
        self._report_due(now)
        self._clock = now
        rows, self._reports = self._reports, []
        out = ThrottleReports.empty(len(rows))
        if rows:
            for column, values in zip(out, zip(*rows, strict=True), strict=True):
                column[:] = values
        return out

    def alert(self, t: int, device: int, code: int) -> tuple[int, int, int, bool]:
        """One alert: ``(action, throttled_count, sequence_id, would_throttle)``."""
        self._report_due(t)  # reports come before every alert at or after their time
        limits = self._limits_of(code)
        if limits is None:
            self._counts["excluded"] += 1
            return EXCLUDED, 0, 0, False
        key = self._keys.get((device, code))
        if key is None:
            key = self._keys[(device, code)] = _Key(window_start=t, tat=t)
        if self.policy.policy == "gcra":
            forward = self._gcra(key, t, limits)
        else:
            forward = self._fixed_window(key, t, limits)
        if forward:
            count = key.discarded_since_forward
            age = self.policy.max_report_age_s
            if count and age is not None and t - key.last_forwarded > round(age * 1e9):
                self._counts["stale_discards"] += count  # too old to report on this alert
                count = 0
            key.discarded_since_forward = 0
            key.last_forwarded = t
            self._counts["forwarded"] += 1
            return FORWARDED, count, key.sequence if count > 0 else 0, False
        key.discarded_since_forward = min(key.discarded_since_forward + 1, LIMIT32)
        self._counts["would_throttle"] += 1
        if self.policy.dry_run:
            self._counts["forwarded"] += 1
            return FORWARDED, 0, 0, True
        self._counts["throttled"] += 1
        return THROTTLED, 0, 0, True

    def _fixed_window(self, key: _Key, t: int, lim: CodeLimits) -> bool:
        if key.in_window == 0 or t >= key.window_start + lim.window_ns:
            key.window_start, key.in_window, key.window_had_excess = t, 0, False
        key.in_window += 1
        if key.in_window == _near_mark(lim.threshold):
            self._counts["near_limit"] += 1
        if key.in_window <= lim.threshold:
            return True
        if not key.window_had_excess:
            key.window_had_excess = True
            key.sequence = min(key.sequence + 1, LIMIT32)
        return t >= key.last_forwarded + lim.designated_period_ns

    def _gcra(self, key: _Key, t: int, lim: CodeLimits) -> bool:
        emission = lim.window_ns // lim.threshold
        tolerance = (lim.threshold - 1) * emission
        if t >= key.tat:  # the bucket has drained
            key.in_episode = key.near_reported = False
        if t >= key.tat - tolerance:  # conforming
            key.tat = max(key.tat, t) + emission
            if key.tat - t >= _near_mark(lim.threshold) * emission and not key.near_reported:
                key.near_reported = True
                self._counts["near_limit"] += 1
            return True
        if not key.in_episode:
            key.in_episode = True
            key.sequence = min(key.sequence + 1, LIMIT32)
        return t >= key.last_forwarded + lim.designated_period_ns

    def stats(self) -> ThrottleStats:
        """The counters so far (``keys``: every key seen)."""
        unreported = sum(k.discarded_since_forward for k in self._keys.values())
        return ThrottleStats(**self._counts, keys=len(self._keys), unreported_discards=unreported)


def _near_mark(threshold: int) -> int:
    """``ceil(0.8 * N)`` in integers."""
    return -(-4 * threshold // 5)
