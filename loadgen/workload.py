"""Workload generators: a scenario's day as time-ordered columns, chunk by chunk.

Load generation comes in layers (after locust's shapes): a **shape** is a rate as a pure
function of time (a flat window, or a 24-hour diurnal profile); a **stream** turns a shape and
a count into sorted send times and the columns of each message; the **driver**
(:mod:`dccsim.loadgen.driver`) merges the streams chunk by chunk and feeds the pipeline.

Every stream is drawn once, up front, from its own seeded generator, as compact sorted
schedules (time + device index + a few small columns); a chunk is a slice of each. So a
scenario, scale and seed give the same traffic whatever the chunking or sharding.

Streams of requests (``cls`` is the capacity class):

- ``mhhs``: the MDR's nightly 4.8.1 for every ESME (demand > 1 reads extra past days), 4.6.1
  for a share of ESMEs, 4.8.3 for export meters, spread evenly over the MHHS window
  (``mhhs.mode = "on_demand"``), or released by a DCC schedule into the DSP capacity the
  on-demand streams leave (``"dcc_scheduled"``, :func:`dcc_schedule`);
- ``supplier`` / ``dno``: the supplier (IS) and network operator (ED) re-read the same day's
  4.8.1 with their probabilities in their windows: readings-cache hits when retained;
- ``background``: on-demand SRVs by weight over the diurnal profile, from a role eligible for
  the SRV and the device's kind;
- ``future_dated``: :data:`FD_SRV` (1.1.1 Update Import Tariff, whose future-dated pattern is
  "Device": the device holds the command) from the import supplier, Command Variant 5 (the
  signed pre-command), with an ExecutionDateTime.

Streams of alerts: background codes by mix over the diurnal profile, and storms (``storm`` =
true). A share of requests is made invalid (wrong role, replayed counter, unknown device, bad
period), labelled in ``invalid`` so tests can check the codes.

What a delivered future-dated command reports when it runs is no alert: the device answers
with Responses carrying a ``FutureDatedDeviceAlertMessage``, one per instruction
(:func:`dccsim.core.futuredated.future_dated_responses`, in ``core`` because the server draws
them too). They depend on the command's outcome (only a command the
device acknowledged, ``I99``, runs), so the driver draws them once the outcome is known.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import DEVICE_KINDS, catalogue
from dccsim.core.eui import eui_to_int
from dccsim.core.futuredated import FutureDatedResponses, future_dated_responses
from dccsim.core.records import INVALID_KINDS, REQUEST_CLASSES, ROLES

from . import _kernels as K
from .population import ESME, GSME, UNKNOWN_DEVICE_PREFIX, Population
from .scenario import Scenario

__all__ = [
    "FD_SRV",
    "DayWorkload",
    "FutureDatedResponses",
    "future_dated_responses",
    "Schedule",
    "dcc_schedule",
    "spread_times",
    "RequestChunk",
    "AlertChunk",
    "flat_times",
    "flat_times_reference",
    "uniform_blocks",
    "background_columns_reference",
    "profile_times",
    "profile_times_reference",
]

NS = 1_000_000_000
HOUR = 3600 * NS
DAY = 24 * HOUR
#: request class name -> code (index into REQUEST_CLASSES)
CLS = {name: i for i, name in enumerate(REQUEST_CLASSES)}
#: the SRV of the generated future-dated commands: its future-dated pattern is "Device" (the
#: device holds the command and reports each instruction when it runs)
FD_SRV = "1.1.1"
#: the Command Variant the future-dated commands are sent with: 1.1.1 is critical, so the DCC
#: sends the User's signed pre-command over the WAN (the CV 4 transform before it is not modelled)
FD_COMMAND_VARIANT = 5


def flat_times(rng: np.random.Generator, n: int, start_ns: int, end_ns: int) -> npt.NDArray[np.int64]:
    """``n`` sorted times spread evenly over ``[start, end)`` (one per slot, jittered in it).

    One kernel pass over the uniform draws (no index, sum and product arrays: less memory to
    touch), the same float operations as :func:`flat_times_reference`, so the same times."""
    if n <= 0:
        return np.zeros(0, np.int64)
    out = np.empty(n, np.int64)
    slot = (end_ns - start_ns) / n
    for i0, u in uniform_blocks(rng, n):
        K.flat_slot_times(u, i0, float(start_ns), slot, out)
    return out


#: rows of uniform draws held at once by :func:`uniform_blocks`
UNIFORM_BLOCK = 1 << 20


def uniform_blocks(rng: np.random.Generator, n: int) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """The ``n`` draws ``rng.random(n)`` would give, block by block: ``(first row, draws)``
    in one buffer of :data:`UNIFORM_BLOCK` rows, reused (a kernel consumes each block before
    the next is drawn). The same numbers, without ``n`` fresh rows of memory to touch."""
    buf = np.empty(min(n, UNIFORM_BLOCK), np.float64)
    for i0 in range(0, n, UNIFORM_BLOCK):
        u = buf[: min(UNIFORM_BLOCK, n - i0)]
        rng.random(out=u)
        yield i0, u


def flat_times_reference(rng: np.random.Generator, n: int, start_ns: int, end_ns: int) -> npt.NDArray[np.int64]:
    """The whole-array definition of :func:`flat_times`, which a differential test compares it with."""
    if n <= 0:
        return np.zeros(0, np.int64)
    slot = (end_ns - start_ns) / n
    return (start_ns + (np.arange(n) + rng.random(n)) * slot).astype(np.int64)


def profile_times(
    rng: np.random.Generator, n: int, start_ns: int, weights: npt.ArrayLike, bin_ns: int
) -> npt.NDArray[np.int64]:
    """``n`` sorted times whose rate follows piecewise-constant ``weights`` (one per bin).

    The profile is cut into one-second slots; a multinomial draw gives each slot its count
    (in proportion to the rate there), and a slot's messages are spread evenly through it
    with jitter. Sorted by construction: O(n), no sort; one kernel pass
    (:func:`~dccsim.loadgen._kernels.slot_times`; :func:`profile_times_reference` is the
    whole-array definition).
    """
    if n <= 0:
        return np.zeros(0, np.int64)
    w = np.asarray(weights, dtype=np.float64)
    per_bin = max(1, bin_ns // 1_000_000_000)
    slot_ns = bin_ns / per_bin
    p = np.repeat(w / w.sum() / per_bin, per_bin)
    counts = rng.multinomial(n, p / p.sum())
    out = np.empty(n, np.int64)
    K.slot_times(counts, rng.random(n), float(start_ns), float(slot_ns), out)
    return out


def profile_times_reference(
    rng: np.random.Generator, n: int, start_ns: int, weights: npt.ArrayLike, bin_ns: int
) -> npt.NDArray[np.int64]:
    """The whole-array definition of :func:`profile_times` (the same draws and float
    operations), which a differential test compares the kernel with.

    ``n`` sorted times whose rate follows piecewise-constant ``weights`` (one per bin).

    The profile is cut into one-second slots; a multinomial draw gives each slot its count
    (in proportion to the rate there), and a slot's messages are spread evenly through it
    with jitter. Sorted by construction: O(n), no sort.
    """
    if n <= 0:
        return np.zeros(0, np.int64)
    w = np.asarray(weights, dtype=np.float64)
    per_bin = max(1, bin_ns // 1_000_000_000)
    slot_ns = bin_ns / per_bin
    p = np.repeat(w / w.sum() / per_bin, per_bin)
    counts = rng.multinomial(n, p / p.sum())
    slot = np.repeat(np.arange(len(p)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(n) - first
    frac = (rank + rng.random(n)) / counts[slot]
    return (start_ns + (slot + frac) * slot_ns).astype(np.int64)


def spread_times(
    rng: np.random.Generator, counts: npt.NDArray[np.int64], edges: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """``counts[k]`` times spread evenly (one per slot, jittered in it) over ``[edges[k], edges[k+1])``.

    Sorted by construction: every interval's times lie in it, in order.
    """
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    if n == 0:
        return np.zeros(0, np.int64)
    k = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    start = edges[:-1][k]
    width = (edges[1:] - edges[:-1])[k]
    return np.minimum(start + ((rank + rng.random(n)) / counts[k] * width).astype(np.int64), start + width - 1)


@dataclass(frozen=True)
class Schedule:
    """A DCC schedule's releases, interval by interval (see :func:`dcc_schedule`)."""

    #: interval bounds, ``len(released) + 1`` of them (ns): from the window's start to its end
    #: (``mhhs.schedule_overrun = "at_window_end"``) or to the day's end (``"after_window"``)
    edges: npt.NDArray[np.int64]
    #: reads released in each interval, the forced release included in the last
    released: npt.NDArray[np.int64]
    #: the cap on releases in each interval (a fraction is never reached: releases are whole)
    cap: npt.NDArray[np.float64]
    #: the spare DSP capacity of each interval as reads (after on-demand work and its backlog)
    spare_reads: npt.NDArray[np.float64]
    #: the MHHS window's end (ns): the time the supplier needs the data by
    window_end_ns: int
    #: reads the cap and the spare capacity did not release by the last interval: released in it
    forced: int

    @property
    def reads(self) -> int:
        return int(self.released.sum())

    @property
    def after_window(self) -> int:
        """Reads released at or after the window's end (only with ``schedule_overrun = "after_window"``)."""
        return int(self.released[self.edges[:-1] >= self.window_end_ns].sum())


def dcc_schedule(
    reads: int,
    on_demand_work_s: npt.ArrayLike,
    capacity_s: npt.ArrayLike,
    cap: npt.ArrayLike,
    read_service_s: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """How many of ``reads`` scheduled reads the DCC releases in each interval, below on-demand priority.

    Per interval ``k`` (arrays of one value per interval): ``capacity_s[k]`` is the DSP's work
    in server-seconds (servers x interval length), ``on_demand_work_s[k]`` the on-demand work
    arriving in it (each request's class service time), ``cap[k]`` the most releases allowed.
    A fluid model of the DSP carries on-demand work the interval could not serve as a backlog
    into the next; the spare capacity is what is left after both::

        spare[k]    = max(0, capacity[k] - on_demand[k] - backlog[k-1])
        released[k] = min(reads left, floor(min(cap[k], spare[k] / read_service_s)))
        backlog[k]  = max(0, backlog[k-1] + on_demand[k] + released[k] x read_service_s - capacity[k])

    Reads not released carry forward. Returns ``(released, spare_reads, left)``: ``left`` reads
    were still unreleased after the last interval (the caller decides what becomes of them).
    """
    od = np.asarray(on_demand_work_s, np.float64)
    cs = np.broadcast_to(np.asarray(capacity_s, np.float64), od.shape)
    cp = np.broadcast_to(np.asarray(cap, np.float64), od.shape)
    released = np.zeros(len(od), np.int64)
    spare_reads = np.zeros(len(od), np.float64)
    left = int(reads)
    backlog = 0.0
    for k in range(len(od)):
        spare = max(0.0, cs[k] - od[k] - backlog)
        spare_reads[k] = spare / read_service_s
        r = min(left, int(math.floor(min(cp[k], spare_reads[k]))))
        released[k] = r
        left -= r
        backlog = max(0.0, backlog + od[k] + r * read_service_s - cs[k])
    return released, spare_reads, left


@dataclass
class RequestChunk:
    """Requests of one chunk, sorted by ``t_scheduled_ns`` (columns as in RequestBatch, plus)."""

    t_scheduled_ns: npt.NDArray[np.int64]
    device: npt.NDArray[np.uint64]
    originator: npt.NDArray[np.uint64]
    srv: npt.NDArray[np.uint8]
    role: npt.NDArray[np.uint8]
    command_variant: npt.NDArray[np.uint8]
    period_start_ns: npt.NDArray[np.int64]
    period_end_ns: npt.NDArray[np.int64]
    execution_ns: npt.NDArray[np.int64]
    cls: npt.NDArray[np.uint8]
    attempt: npt.NDArray[np.uint8]
    invalid: npt.NDArray[np.uint8]
    #: the WAN + device round trip and fault drawn for each request (filled by the driver)
    latency_ns: npt.NDArray[np.int64]
    fault: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.t_scheduled_ns)

    def take(self, index: npt.ArrayLike) -> RequestChunk:
        return RequestChunk(**{k: v[index] for k, v in self.__dict__.items()})

    @classmethod
    def concat(cls, parts: list[RequestChunk]) -> RequestChunk:
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.__dataclass_fields__})

    @classmethod
    def empty(cls) -> RequestChunk:
        return cls(**{k: np.zeros(0, dt) for k, dt in _REQ_DTYPES.items()})


_REQ_DTYPES = {
    "t_scheduled_ns": np.int64,
    "device": np.uint64,
    "originator": np.uint64,
    "srv": np.uint8,
    "role": np.uint8,
    "command_variant": np.uint8,
    "period_start_ns": np.int64,
    "period_end_ns": np.int64,
    "execution_ns": np.int64,
    "cls": np.uint8,
    "attempt": np.uint8,
    "invalid": np.uint8,
    "latency_ns": np.int64,
    "fault": np.uint8,
}


@dataclass
class AlertChunk:
    """Device alerts of one chunk, sorted by ``t_ns`` (ties in stream order)."""

    t_ns: npt.NDArray[np.int64]
    device: npt.NDArray[np.uint64]
    alert_code: npt.NDArray[np.uint16]
    storm: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.t_ns)

    @classmethod
    def concat(cls, parts: list[AlertChunk]) -> AlertChunk:
        """The parts' alerts in one chunk sorted by time (ties in the parts' order)."""
        merged = {k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.__dataclass_fields__}
        order = np.argsort(merged["t_ns"], kind="stable")
        return cls(**{k: v[order] for k, v in merged.items()})


def _driver_columns(n: int) -> dict[str, npt.NDArray[np.generic]]:
    """A fresh chunk's columns that the driver fills later (attempt, invalid label, device
    draws), zero."""
    return {k: np.zeros(n, _REQ_DTYPES[k]) for k in ("attempt", "invalid", "latency_ns", "fault")}


def _const(value: npt.ArrayLike, dtype: npt.DTypeLike, n: int) -> npt.NDArray[np.generic]:
    """A column of ``n`` equal values that takes no memory: a read-only broadcast view (its
    slices, concatenations and gathers are ordinary arrays)."""
    return np.broadcast_to(np.asarray(value, dtype), n)


@dataclass
class _Stream:
    """A sorted schedule: times plus per-message columns (device as population index)."""

    t: npt.NDArray[np.int64]
    cols: dict[str, npt.NDArray[np.generic]]

    def slice(self, t0: int, t1: int) -> dict[str, npt.NDArray[np.generic]]:
        lo, hi = np.searchsorted(self.t, [t0, t1], side="left")
        out = {k: v[lo:hi] for k, v in self.cols.items()}
        out["t"] = self.t[lo:hi]
        return out


def _merge(streams: list[_Stream], t0: int, t1: int) -> dict[str, npt.NDArray[np.generic]]:
    """Every stream's slice of ``[t0, t1)``, merged in time order (ties in stream order)."""
    parts = [st.slice(t0, t1) for st in streams]
    order = np.argsort(np.concatenate([p["t"] for p in parts]), kind="stable")
    return {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0]}


def background_columns_reference(
    which: npt.NDArray[np.int64],
    kind: npt.NDArray[np.uint8],
    u: npt.NDArray[np.float64],
    srv_of: npt.NDArray[np.uint8],
    count: npt.NDArray[np.int64],
    table: npt.NDArray[np.uint8],
    non_device: npt.NDArray[np.bool_],
    cacheable: npt.NDArray[np.bool_],
    nd_class: int,
    od_class: int,
    period_start: int,
    period_end: int,
) -> tuple[npt.NDArray[np.generic], ...]:
    """The whole-array definition of the background stream's columns (SRV, role, class, read
    period) from its draws: the ``which``-th SRV of ``srv_of``; the role picked by ``u`` among
    the ``count[which, kind]`` in ``table[which, kind]``; the non-device class for a non-device
    SRV, else on-demand; a cacheable read's period, else none (0). The kernel
    :func:`~dccsim.loadgen._kernels.background_columns` is compared with it."""
    srv = srv_of[which]
    pick = (u * count[which, kind]).astype(np.int64)
    role = table[which, kind, pick]
    cls = np.where(non_device[srv], nd_class, od_class).astype(np.uint8)
    read = cacheable[srv]
    start = np.where(read, np.int64(period_start), 0)
    return srv, role, cls, start, np.where(read, np.int64(period_end), 0)


class DayWorkload:
    """All streams of one scenario day, drawn once; :meth:`requests` and :meth:`alerts` slice.

    ``day`` is the day's index in a run of several days (``days`` in the scenario): the day
    starts ``day x 24 h`` after the scenario's ``day``, and its generators are seeded with the
    index too (day 0 keeps the seeds of a one-day run, so its traffic is the same byte for
    byte; each later day draws its own). Every day's MHHS reads are for the day before it.
    """

    def __init__(self, s: Scenario, pop: Population, day: int = 0):
        self.s = s
        self.pop = pop
        self.day = day
        self.day0 = s.day_start_ns + day * DAY
        cat = catalogue()
        self._cat = cat
        self.user_of_role: dict[str, int] = {}
        for u in s.users:
            self.user_of_role.setdefault(u.role, eui_to_int(u.eui))
        self._code = {srv: cat.code(srv) for srv in ("4.6.1", "4.8.1", "4.8.3", FD_SRV)}
        # The streams are independent draws, each from its own seeded generator, so they are
        # built side by side (NumPy releases the GIL in the big fills) and kept in a fixed order.
        def rng(purpose: int) -> np.random.Generator:
            return np.random.default_rng([s.seed, purpose] if day == 0 else [s.seed, purpose, day])

        fd_stream = self._build_future_dated(rng(7))
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="workload") as pool:
            mhhs = pool.submit(self._build_mhhs, rng(2))
            background = pool.submit(self._build_background, rng(6))
            alerts = pool.submit(self._build_alerts, rng(3))
            self.request_streams: list[_Stream] = [*mhhs.result(), background.result(), fd_stream]
            self.alert_streams: list[_Stream] = alerts.result()
        #: the tables :meth:`requests` looks columns up in (made on first use)
        self._tables: tuple[list[_Stream], bool, np.uint64 | None] | None = None
        #: the DCC schedule of the MDR's reads (``mhhs.mode = "dcc_scheduled"``), else None
        self.schedule: Schedule | None = None
        if s.mhhs.mode == "dcc_scheduled":
            self._schedule_mhhs(rng(8))
        #: the time after the day's last alert (a storm may run past midnight)
        self.end_ns = max([self.day0 + DAY] + [int(st.t[-1]) + 1 for st in self.alert_streams if len(st.t)])

    # ------------------------------------------------------------------ requests
    def _req_stream(
        self,
        t: npt.NDArray[np.int64],
        dev: npt.NDArray[np.int64],
        srv: npt.ArrayLike,
        role: str | npt.ArrayLike,
        cls: int | npt.NDArray[np.uint8],
        day_back: npt.ArrayLike = 1,
        execution: npt.ArrayLike | None = None,
        period: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
    ) -> _Stream:
        """A request stream's columns; a scalar SRV, role, class or execution time is a constant
        column, an array is taken as it is (not copied). ``period``: the read period's start and
        end columns when the caller has made them (else from the SRV and ``day_back``)."""
        n = len(t)
        role_codes = _const(ROLES.index(role), np.uint8, n) if isinstance(role, str) else np.asarray(role, np.uint8)
        srv_codes = np.asarray(srv, np.uint8)
        back = np.asarray(day_back, np.int64)
        cols: dict[str, npt.NDArray[np.generic]] = {
            "dev": dev.astype(np.int64, copy=False),
            "srv": _const(srv_codes, np.uint8, n) if srv_codes.ndim == 0 else srv_codes,
            "role": role_codes,
            "cls": _const(cls, np.uint8, n) if np.ndim(cls) == 0 else np.asarray(cls, np.uint8),
            "execution_ns": _const(0, np.int64, n) if execution is None else np.asarray(execution, np.int64),
        }
        # the period of a cacheable read: the day ``day_back`` days before this one; none otherwise
        if period is not None:
            cols["period_start_ns"], cols["period_end_ns"] = period
        elif srv_codes.ndim == 0 and back.ndim == 0:  # one SRV and one day: constant columns
            read = bool(self._cat.cacheable[srv_codes])
            start = self.day0 - int(back) * DAY
            cols["period_start_ns"] = _const(start if read else 0, np.int64, n)
            cols["period_end_ns"] = _const(start + DAY if read else 0, np.int64, n)
        else:
            cacheable = self._cat.cacheable[cols["srv"]]
            start = np.broadcast_to(self.day0 - back * DAY, n)
            cols["period_start_ns"] = np.where(cacheable, start, 0)
            cols["period_end_ns"] = np.where(cacheable, cols["period_start_ns"] + DAY, 0)
        return _Stream(t=t, cols=cols)

    def _hours(self, window: tuple[float, float]) -> tuple[int, int]:
        return self.day0 + int(window[0] * HOUR), self.day0 + int(window[1] * HOUR)

    def _build_mhhs(self, rng: np.random.Generator) -> list[_Stream]:
        s, pop = self.s, self.pop
        m = s.mhhs
        streams: list[_Stream] = []
        esme = pop.esme
        demand = s.capacity.demand
        ws, we = self._hours(m.window_h)
        # MDR 4.8.1 for every ESME, extra past days when demand > 1
        n481 = int(round(len(esme) * demand))
        order = rng.permutation(esme)
        back: int | npt.NDArray[np.int64] = 1
        if n481 <= len(esme):  # a read a meter at most: yesterday's, the permutation's head (no gathers)
            dev = order[:n481]
        else:  # the k-th pass over the meters reads the day k days back
            reads = np.arange(n481)
            dev = order[reads % len(esme)]
            back = 1 + reads // len(esme)
        streams.append(
            self._req_stream(flat_times(rng, n481, ws, we), dev, self._code["4.8.1"], "MDR", CLS["mhhs_read"], back)
        )
        # 4.6.1 for a share of ESMEs
        pick = esme[rng.random(len(esme)) < min(1.0, m.daily_read_share * demand)]
        streams.append(
            self._req_stream(
                flat_times(rng, len(pick), ws, we), rng.permutation(pick), self._code["4.6.1"], "MDR", CLS["mhhs_read"]
            )
        )
        # 4.8.3 for export meters (the MDR reads it like 4.8.1 ... but 4.8.3 is not MDR-eligible
        # in DUIS; dccsim adds MDR for all three MHHS reads)
        exp = np.flatnonzero(pop.export)
        streams.append(
            self._req_stream(
                flat_times(rng, len(exp), ws, we), rng.permutation(exp), self._code["4.8.3"], "MDR", CLS["mhhs_read"]
            )
        )
        # supplier and network operator re-read yesterday's 4.8.1
        for prob, window, role in (
            (m.supplier_read_prob, m.supplier_window_h, "IS"),
            (m.dno_read_prob, m.dno_window_h, "ED"),
        ):
            chosen = esme[rng.random(len(esme)) < min(1.0, prob * demand)]
            a, b = self._hours(window)
            streams.append(
                self._req_stream(
                    flat_times(rng, len(chosen), a, b),
                    rng.permutation(chosen),
                    self._code["4.8.1"],
                    role,
                    CLS["on_demand"],
                )
            )
        return streams

    def _schedule_mhhs(self, rng: np.random.Generator) -> None:
        """Re-time the MDR's reads (the first three streams) as a DCC schedule releases them.

        The reads keep the order of their on-demand draw; the k-th released is the k-th of that
        order. The on-demand work per interval comes from every other request stream (known up
        front: the workload is drawn before the pipeline runs); retries are not foreseen.
        """
        s = self.s
        m = s.mhhs
        mdr, others = self.request_streams[:3], self.request_streams[3:]
        ws, we = self._hours(m.window_h)
        # past the window, the schedule goes on to the day's end (the intervals restart at the window's end)
        end = we if m.schedule_overrun == "at_window_end" else self.day0 + DAY
        step = int(m.schedule_interval_s * NS)
        edges = np.unique(np.concatenate([np.arange(ws, we, step), np.arange(we, end, step), [we, end]]))
        width_s = np.diff(edges) / NS
        service_s = np.array([s.capacity.classes[c].service_ms / 1e3 for c in REQUEST_CLASSES])
        od = np.zeros(len(width_s), np.float64)
        for st in others:
            inside = (st.t >= ws) & (st.t < end)
            k = np.searchsorted(edges, st.t[inside], side="right") - 1
            od += np.bincount(k, weights=service_s[st.cols["cls"][inside]], minlength=len(od))
        cap = m.schedule_rate_cap_per_s * s.scale * s.capacity.demand * width_s
        n = sum(len(st.t) for st in mdr)
        released, spare_reads, left = dcc_schedule(
            n, od, s.dsp_servers * m.schedule_utilisation * width_s, cap, service_s[CLS["mhhs_read"]]
        )
        released[-1] += left
        self.schedule = Schedule(
            edges=edges, released=released, cap=cap, spare_reads=spare_reads, window_end_ns=we, forced=left
        )
        t = np.concatenate([st.t for st in mdr])
        order = np.argsort(t, kind="stable")
        cols = {k: np.concatenate([st.cols[k] for st in mdr])[order] for k in mdr[0].cols}
        self.request_streams = [_Stream(t=spread_times(rng, released, edges), cols=cols), *others]

    def _build_background(self, rng: np.random.Generator) -> _Stream:
        s, pop, cat = self.s, self.pop, self._cat
        bg = s.background
        n = int(round(len(pop) * bg.requests_per_meter * s.capacity.demand))
        t = profile_times(rng, n, self.day0, bg.diurnal, HOUR)
        srvs = list(bg.srv_weights)
        w = np.array([bg.srv_weights[x] for x in srvs], np.float64)
        which = rng.choice(len(srvs), size=n, p=w / w.sum())
        dev = rng.integers(0, len(pop), n)
        kind = pop.kind[dev]
        srv_of = np.array([cat.code(x) for x in srvs], np.uint8)
        # a role that may send the SRV and address the device's kind (from the scenario's users):
        # a table of eligible roles per (SRV, kind), then one vectorised pick
        users = [r for r in ROLES if r in self.user_of_role]

        def eligible(info, k: int) -> list[str]:  # type: ignore[no-untyped-def]
            if info.non_device:
                return [r for r in users if r in info.roles]
            if DEVICE_KINDS[k] not in info.device_kinds:
                return []
            return [
                r
                for r in users
                if r in info.roles
                and not (k == ESME and r in ("GS", "GT"))
                and not (k == GSME and r in ("ES", "ED", "MDR"))
            ]

        n_kinds = len(DEVICE_KINDS)
        table = np.zeros((len(srvs), n_kinds, len(ROLES)), np.uint8)
        count = np.zeros((len(srvs), n_kinds), np.int64)
        for j, srv in enumerate(srvs):
            info = cat[srv]
            for k in (ESME, GSME):
                ok = eligible(info, k)
                other = GSME if k == ESME else ESME
                if not ok and eligible(info, other) and (pop.kind == other).any():
                    # nobody may send this SRV to this kind: send it to the other fuel
                    sel = (which == j) & (kind == k)
                    dev[sel] = rng.choice(np.flatnonzero(pop.kind == other), int(sel.sum()))
                    kind[sel] = other
                    continue
                ok = ok or [r for r in users if r in info.roles] or [info.roles[0]]
                table[j, k, : len(ok)] = [ROLES.index(r) for r in ok]
                count[j, k] = len(ok)
        # the columns in one kernel pass (:func:`background_columns_reference` is the definition):
        # a whole-array version makes about ten temporaries of n rows, fresh memory to touch
        srv_col, role, cls = (np.empty(n, np.uint8) for _ in range(3))
        start, end = np.empty(n, np.int64), np.empty(n, np.int64)
        for i0, u in uniform_blocks(rng, n):  # the role's draws
            b = slice(i0, i0 + len(u))
            K.background_columns(
                which[b], kind[b], u, srv_of, count, table, cat.non_device, cat.cacheable, CLS["non_device"],
                CLS["on_demand"], self.day0 - DAY, self.day0, srv_col[b], role[b], cls[b], start[b], end[b],
            )  # fmt: skip
        return self._req_stream(t, dev, srv_col, role, cls, period=(start, end))

    def _build_future_dated(self, rng: np.random.Generator) -> _Stream:
        s, pop = self.s, self.pop
        fd = s.future_dated
        esme = pop.esme
        n = int(round(len(esme) * fd.commands_per_meter * s.capacity.demand))
        t = profile_times(rng, n, self.day0, s.background.diurnal, HOUR)
        dev = esme[rng.integers(0, len(esme), n)] if len(esme) else np.zeros(0, np.int64)
        lead = rng.uniform(fd.lead_time_h[0], fd.lead_time_h[1], n) * HOUR
        execution = (t + lead.astype(np.int64)) // NS * NS
        return self._req_stream(t, dev, self._code[FD_SRV], "IS", CLS["future_dated"], execution=execution)

    # ------------------------------------------------------------------ alerts
    def _alert_stream(
        self,
        t: npt.NDArray[np.int64],
        dev: npt.NDArray[np.int64],
        code: npt.ArrayLike,
        storm: bool,
    ) -> _Stream:
        n = len(t)
        return _Stream(
            t=t,
            cols={
                "dev": dev.astype(np.int64),
                "alert_code": _const(code, np.uint16, n) if np.ndim(code) == 0 else np.asarray(code, np.uint16),
                "storm": _const(storm, np.bool_, n),
            },
        )

    def _build_alerts(self, rng: np.random.Generator) -> list[_Stream]:
        s, pop = self.s, self.pop
        streams: list[_Stream] = []
        a = s.alerts
        n = int(round(len(pop) * a.alerts_per_meter * s.capacity.demand))
        codes = [int(c, 16) for c in a.code_mix]
        w = np.array(list(a.code_mix.values()), np.float64)
        t = profile_times(rng, n, self.day0, s.background.diurnal, HOUR)
        streams.append(
            self._alert_stream(
                t,
                rng.integers(0, len(pop), n),
                np.array(codes, np.uint16)[rng.choice(len(codes), n, p=w / w.sum())],
                False,
            )
        )
        for storm in s.storms:
            k = max(1, int(round(storm.devices * s.scale)))
            devs = rng.choice(len(pop), size=min(k, len(pop)), replace=False)
            per = rng.poisson(storm.rate_per_min * storm.duration_min, size=len(devs))
            start = self.day0 + int(storm.start_h * HOUR)
            dur = int(storm.duration_min * 60 * NS)
            tt = start + (rng.random(per.sum()) * dur).astype(np.int64)
            dd = np.repeat(devs, per)
            order = np.argsort(tt, kind="stable")
            streams.append(self._alert_stream(tt[order], dd[order], int(storm.code, 16), True))
        return streams

    # ------------------------------------------------------------------ chunks
    def requests(self, chunk: int, t0: int, t1: int) -> RequestChunk:
        """The scheduled requests in ``[t0, t1)``, sorted by time (ties in stream order).

        The streams' slices merged by a stable sort; the device's EUI-64, the Command Variant
        and the originator from tables (the population's ids are a run of consecutive EUI-64s:
        an addition, not a gather). :meth:`requests_reference` is the definition."""
        streams = self.request_streams
        if self._tables is None or self._tables[0] is not streams:
            self._prepare_tables()
        assert self._tables is not None
        _, all_users, base = self._tables
        c = _merge(streams, t0, t1)
        n = len(c["t"])
        dev = c["dev"]
        out = RequestChunk(
            t_scheduled_ns=c["t"],
            device=dev.view(np.uint64) + base if base is not None else self.pop.ids[dev],
            originator=self._user_of_role_code[c["role"]],
            srv=c["srv"],
            role=c["role"],
            command_variant=self._cv_of_srv[c["srv"]],
            period_start_ns=c["period_start_ns"],
            period_end_ns=c["period_end_ns"],
            execution_ns=c["execution_ns"],
            cls=c["cls"],
            **_driver_columns(n),
        )
        if not all_users:  # a role without a user: the lookup by name says which
            self._set_originators(out)
        self._inject_invalid(chunk, out)
        return out

    def _prepare_tables(self) -> None:
        """The tables of :meth:`requests`: Command Variant by SRV, originator by role, whether
        every stream's roles have a user, and the population's first id when its ids run on."""
        streams = self.request_streams
        codes = np.arange(256)
        known = codes < len(self._cat.non_device)
        non_device = np.zeros(256, np.bool_)
        non_device[known] = self._cat.non_device[codes[known]]
        cv = np.where(non_device, 8, np.where(codes == self._code[FD_SRV], FD_COMMAND_VARIANT, 1))
        self._cv_of_srv = cv.astype(np.uint8)
        self._user_of_role_code = np.zeros(256, np.uint64)
        has_user = np.zeros(256, np.bool_)
        for i, role in enumerate(ROLES):
            if role in self.user_of_role:
                self._user_of_role_code[i] = self.user_of_role[role]
                has_user[i] = True
        used = np.zeros(256, np.bool_)
        for st in streams:
            role = st.cols["role"]
            if len(role):  # a constant column (a broadcast view) has one value to look at
                used |= np.bincount(role[:1] if role.strides == (0,) else role, minlength=256) > 0
        ids = self.pop.ids
        run_on = len(ids) > 0 and np.array_equal(ids, ids[0] + np.arange(len(ids), dtype=np.uint64))
        self._tables = (streams, bool(has_user[used].all()), ids[0] if run_on else None)

    def requests_reference(self, chunk: int, t0: int, t1: int) -> RequestChunk:
        """The whole-array definition of :meth:`requests` (the streams' slices concatenated,
        stably sorted by time, then gathered), which a differential test compares it with."""
        c = _merge(self.request_streams, t0, t1)
        n = len(c["t"])
        out = RequestChunk(
            t_scheduled_ns=c["t"],
            device=self.pop.ids[c["dev"]],
            originator=np.zeros(n, np.uint64),
            srv=c["srv"],
            role=c["role"],
            command_variant=np.where(
                self._cat.non_device[c["srv"]], 8, np.where(c["srv"] == self._code[FD_SRV], FD_COMMAND_VARIANT, 1)
            ).astype(np.uint8),
            period_start_ns=c["period_start_ns"],
            period_end_ns=c["period_end_ns"],
            execution_ns=c["execution_ns"],
            cls=c["cls"],
            **_driver_columns(n),
        )
        self._set_originators(out)
        self._inject_invalid(chunk, out)
        return out

    def _set_originators(self, r: RequestChunk) -> None:
        for role_code in np.unique(r.role):
            r.originator[r.role == role_code] = self.user_of_role[ROLES[int(role_code)]]

    def _inject_invalid(self, chunk: int, r: RequestChunk) -> None:
        inv = self.s.invalid
        if inv.share <= 0 or not len(r):
            return
        rng = np.random.default_rng([self.s.seed, 4, chunk])
        hit = np.flatnonzero(rng.random(len(r)) < inv.share)
        if not len(hit):
            return
        kinds = list(inv.mix)
        w = np.array([inv.mix[k] for k in kinds], np.float64)
        chosen = np.array([INVALID_KINDS.index(k) for k in kinds], np.uint8)[
            rng.choice(len(kinds), len(hit), p=w / w.sum())
        ]
        cacheable = self._cat.cacheable[r.srv[hit]]
        chosen = np.where(
            (chosen == INVALID_KINDS.index("bad_period")) & ~cacheable, INVALID_KINDS.index("unknown_device"), chosen
        )
        for i, k in zip(hit.tolist(), chosen.tolist(), strict=True):
            name = INVALID_KINDS[k]
            if name == "wrong_role":
                info = self._cat[int(r.srv[i])]
                bad = [x for x in ROLES if x not in info.roles and x in self.user_of_role]
                if not bad:
                    continue
                r.role[i] = ROLES.index(bad[0])
                r.originator[i] = self.user_of_role[bad[0]]
            elif name == "unknown_device":
                if self._cat.non_device[r.srv[i]]:
                    continue
                r.device[i] = UNKNOWN_DEVICE_PREFIX | np.uint64(i)
            elif name == "bad_period":
                r.period_start_ns[i], r.period_end_ns[i] = r.period_end_ns[i], r.period_start_ns[i]
            r.invalid[i] = k

    def alerts(self, t0: int, t1: int) -> AlertChunk:
        """The device alerts in ``[t0, t1)``, sorted by time (ties in stream order)."""
        c = _merge(self.alert_streams, t0, t1)
        return AlertChunk(
            t_ns=c["t"],
            device=self.pop.ids[c["dev"]],
            alert_code=c["alert_code"],
            storm=c["storm"],
        )
