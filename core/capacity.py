"""Capacity model of the DSP for the virtual-time simulation: a FIFO multi-server queue, or
its many-server (fluid) limit, with admission control and shedding of expired requests.

The DCC's Data Service Provider has a finite number of processing slots. Requests that find
every slot busy wait in one global first-in, first-out queue. This module turns a time-ordered
chunk of requests into start times, completion times, waits, time-outs and the backlog each
arrival sees, in simulated time, at tens of millions of requests per second.

Semantics
---------
Servers
    ``c = max(1, floor(slots * uplift * operating_threshold))`` identical servers. The product
    is taken exactly on the decimal values as written (``0.29 * 100`` is 29 servers, not 28),
    see :attr:`CapacityConfig.servers`. All servers are free before the first request.
Requests
    Arrive as a chunk of arrays: ``t_arrive_ns`` (int64, non-decreasing within a chunk and
    across chunks; requests at the same instant are taken in input order), ``cls`` (uint8
    request class ``0..K-1``) and ``device_latency_ns`` (int64 >= 0: the WAN and device round
    trip drawn by the caller, 0 for a request with no device leg such as a cache hit or a
    non-device request; any value up to the int64 maximum is fine, e.g. for a device that
    never answers). Arrival times must lie within +-2**62 ns and service times and time-outs
    within 2**53 ns, which keeps every sum inside int64 unless the queue's backlog of work
    itself nears 2**62 ns (about 146 years).
Service
    FIFO in arrival order: request ``i`` starts at
    ``start_i = max(t_arrive_i, earliest time a server is free)``, holds that server for
    ``service_ns[cls_i]``, then waits ``device_latency_ns_i`` for the device without holding a
    server (the WAN leg is asynchronous). ``wait_ns_i = start_i - t_arrive_i`` and
    ``t_done_i = start_i + service_ns[cls_i] + device_latency_ns_i``.
Time-outs
    If ``t_done_i - t_arrive_i > timeout_ns[cls_i]`` the request times out: ``timed_out_i`` is
    set and ``t_done_i = t_arrive_i + timeout_ns[cls_i]`` (the caller maps this to E21, or E30
    for a future-dated request). A timed-out request still holds its server for its full
    service time, also when its wait alone exceeded the time-out: the DSP works through its
    queue and does not cancel a request whose caller has given up; only the answer is late.
    This is the pessimistic choice (``shed_expired=False``, the default here): under overload
    the backlog keeps growing instead of shedding the requests that are already late.
    ``wait_ns`` is always the true queueing delay, even beyond the time-out.
Overload control
    A class's ``max_wait_ns``: a request whose wait would exceed it is *refused* (``status``
    ``DSP_REFUSED``, answered at arrival, no server taken, not timed out). With
    ``shed_expired``, a request whose wait would reach its class's time-out is *shed*
    (``DSP_SHED``: no server taken, answered and timed out at ``t_arrive + timeout``; its
    ``wait_ns`` is the time-out). FIFO fixes a request's start at its arrival, so both are
    decided then, exactly.
Fluid model (``model="fluid"``)
    No servers: a capacity of ``rate = slots * uplift * operating_threshold``
    server-equivalents, not floored. The accepted service work not yet worked off drains at
    ``rate`` per ns; a request waits that work divided by ``rate``. Outputs, stats, time-outs,
    admission and shedding as above; see :func:`reference_fluid`. It is the c-server queue's
    many-server limit: at GB scale (~1,000 servers) the two agree, and unlike a floored
    server count its verdict does not change with the scale.
Backlog
    ``backlog_i`` is the number of requests waiting (arrived, not started) just after request
    ``i`` arrived, counting ``i`` itself if it has to wait: a request that starts at exactly
    ``t_arrive_i`` is not waiting. Three requests arriving together at one free server give
    waits ``0, s, 2s`` and backlogs ``0, 1, 2``. The backlog is exact: FIFO start times never
    decrease, so the requests still waiting are the tail of the arrivals, tracked with a moving
    pointer over their start times.
Chunks
    :class:`CapacityModel` carries its state (server free times, waiting requests, last
    arrival) from one call to the next: one chunk or any split into chunks gives identical
    outputs and identical merged stats.
Sharding
    The DSP queue is one global resource shared by every device, so, unlike the throttle and
    the cache, this stage is *not* sharded by device: run it once over the merged, time-ordered
    request stream. :meth:`CapacityStats.merge` combines the stats of consecutive chunks or
    of separate runs, not of device shards.
Cost and memory
    ``O(1)`` per request in the common case below saturation (a server of the request's own
    class is free), amortised ``O(log K)`` for ``K`` request classes otherwise, independent
    of the number of servers:
    the state is the count of servers never used plus, per class, the sorted free times of
    the servers it last used (see :mod:`dccsim.core._kernels` for why this gives the same
    outputs as the textbook min-heap of ``c`` server free times that
    :func:`reference_process` uses). Memory: 8 bytes per server used so far and per waiting
    request, up to twice that as rings grow by doubling; so it is bounded by ``c`` and the
    peak backlog.

Examples
--------
>>> import numpy as np
>>> config = CapacityConfig(
...     slots=1, classes=(CapacityClass(service_ns=10, timeout_ns=25, name="read"),))
>>> model = CapacityModel(config)
>>> r = model.process(np.array([0, 0, 0], dtype=np.int64), np.zeros(3, dtype=np.uint8),
...                   np.array([0, 0, 5], dtype=np.int64))
>>> r.wait_ns.tolist(), r.backlog.tolist()
([0, 10, 20], [0, 1, 2])
>>> r.t_done_ns.tolist(), r.timed_out.tolist()
([10, 20, 25], [False, False, True])

One concern, the DSP capacity model (its configuration, checks, wrapper and reference), which
is why the module is longer than most.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import numpy as np
import numpy.typing as npt

from . import _kernels as K
from .errors import ConfigError, DccsimError

__all__ = [
    "MAX_DURATION_NS",
    "MAX_SERVERS",
    "MAX_TIME_NS",
    "CapacityClass",
    "CapacityConfig",
    "CapacityConfigError",
    "CapacityInputError",
    "CapacityModel",
    "CapacityResult",
    "CapacityStats",
    "IntervalAggregates",
    "interval_aggregates",
    "reference_fluid",
    "reference_process",
]

#: The DSP models: ``"fluid"`` (rate-based, fractional capacity) and ``"servers"`` (FIFO c-server).
MODELS: tuple[str, ...] = ("fluid", "servers")

#: Largest accepted service time or time-out (2**53 ns, about 104 days): keeps every sum of
#: times and durations far inside int64.
MAX_DURATION_NS = 2**53
#: Largest accepted number of effective servers (8 bytes of state each).
MAX_SERVERS = 2**31 - 1
#: Arrival times must lie in ``[-MAX_TIME_NS, MAX_TIME_NS]`` (about +-146 years).
MAX_TIME_NS = 2**62
_MAX_CLASSES = 256  # cls is uint8
_MAX_PENDING = 2**30  # waiting requests (8 bytes each); backlog is reported as int32
_MAX_CHUNK = 2**31 - 1  # keeps the in-kernel 32-bit halves of the wait sum inside int64
_INITIAL_PENDING = 1024
_INITIAL_LANE = 256
_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


class CapacityConfigError(ConfigError):
    """A capacity configuration value out of range; the message names field, value, rule."""


class CapacityInputError(DccsimError, ValueError):
    """Request arrays the capacity model cannot take; names the argument and what arrived."""


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: object) -> bool:
    return _is_int(value) or isinstance(value, float | np.floating)


class CapacityClass(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Service and time-out of one request class at the DSP.

    Parameters
    ----------
    service_ns:
        Time the request holds a DSP processing slot, in ns; ``0 < service_ns <= 2**53``.
    timeout_ns:
        Response time beyond which the request times out, counted from arrival, in ns;
        ``0 < timeout_ns <= 2**53``.
    name:
        Optional label for reports, e.g. ``"4.8.1"`` or ``"on-demand"``.
    max_wait_ns:
        Admission bound: a request whose wait in the queue would exceed it is refused at once
        and takes no DSP service; an integer >= 0, or None (the default) for no bound.
    """

    service_ns: int
    timeout_ns: int
    name: str | None = None
    max_wait_ns: int | None = None

    def __post_init__(self) -> None:
        for field in ("service_ns", "timeout_ns"):
            value = getattr(self, field)
            if not _is_int(value) or not 0 < value <= MAX_DURATION_NS:
                raise CapacityConfigError(
                    f"{field}: expected an integer number of ns in (0, 2**53], got {value!r}"
                )
        if self.max_wait_ns is not None and (
            not _is_int(self.max_wait_ns) or not 0 <= self.max_wait_ns <= MAX_DURATION_NS
        ):
            raise CapacityConfigError(
                f"max_wait_ns: expected None or an integer number of ns in [0, 2**53], got {self.max_wait_ns!r}"
            )
        if self.name is not None and not isinstance(self.name, str):
            raise CapacityConfigError(f"name: expected a string or None, got {self.name!r}")


class CapacityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Capacity of the DSP: processing slots, uplift, operating threshold, request classes.

    Parameters
    ----------
    slots:
        DSP processing slots before uplift; an integer >= 1.
    classes:
        One :class:`CapacityClass` per request class, indexed by the ``cls`` column; 1 to 256
        of them (any sequence is accepted and stored as a tuple).
    uplift:
        Capacity uplift factor multiplying ``slots``; a finite number > 0. Default 1.0.
    operating_threshold:
        Share of the uplifted slots the DSP runs at before requests queue; in (0, 1].
        Default 1.0.
    model:
        ``"servers"`` (the default here): :attr:`servers` identical servers, FIFO.
        ``"fluid"``: a capacity of :attr:`rate` server-equivalents, not floored; the backlog of
        service work drains at that rate and a request waits the work ahead of it divided by
        the rate (see :func:`reference_fluid`). Its verdict does not depend on the scale.
    shed_expired:
        Shed requests whose caller has timed out while they wait: a request whose wait would
        reach its class's time-out takes no service and is answered at its time-out. Default
        False: the DSP serves every queued request, however late.

    Examples
    --------
    >>> c = CapacityConfig(slots=1000, uplift=1.5, operating_threshold=0.8,
    ...                    classes=[CapacityClass(service_ns=2_000_000, timeout_ns=10**10)])
    >>> c.servers
    1200
    >>> CapacityConfig(slots=0, classes=c.classes)
    Traceback (most recent call last):
    ...
    dccsim.core.capacity.CapacityConfigError: slots: expected an integer >= 1, got 0
    """

    slots: int
    classes: tuple[CapacityClass, ...]
    uplift: float = 1.0
    operating_threshold: float = 1.0
    model: str = "servers"
    shed_expired: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise CapacityConfigError(f"model: expected one of {', '.join(MODELS)}, got {self.model!r}")
        if not isinstance(self.shed_expired, bool):
            raise CapacityConfigError(f"shed_expired: expected true or false, got {self.shed_expired!r}")
        if not _is_int(self.slots) or self.slots < 1:
            raise CapacityConfigError(f"slots: expected an integer >= 1, got {self.slots!r}")
        if (
            not _is_real(self.uplift)
            or not math.isfinite(self.uplift)
            or not self.uplift > 0
        ):
            raise CapacityConfigError(
                f"uplift: expected a finite number > 0, got {self.uplift!r}"
            )
        if not _is_real(self.operating_threshold) or not 0 < self.operating_threshold <= 1:
            raise CapacityConfigError(
                "operating_threshold: expected a number in (0, 1], "
                f"got {self.operating_threshold!r}"
            )
        classes = self.classes
        if isinstance(classes, str | bytes) or not isinstance(classes, Sequence):
            raise CapacityConfigError(
                f"classes: expected a sequence of CapacityClass, got {classes!r}"
            )
        if not isinstance(classes, tuple):
            classes = tuple(classes)
            msgspec.structs.force_setattr(self, "classes", classes)
        if not 1 <= len(classes) <= _MAX_CLASSES:
            raise CapacityConfigError(
                f"classes: expected 1 to {_MAX_CLASSES} request classes, got {len(classes)}"
            )
        for k, item in enumerate(classes):
            if not isinstance(item, CapacityClass):
                raise CapacityConfigError(
                    f"classes[{k}]: expected a CapacityClass, got {item!r}"
                )
        names = [item.name for item in classes if item.name is not None]
        if len(set(names)) != len(names):
            raise CapacityConfigError(f"classes: expected distinct names, got {names!r}")
        servers = self.servers
        if servers > MAX_SERVERS:
            raise CapacityConfigError(
                "slots * uplift * operating_threshold: expected at most "
                f"{MAX_SERVERS} servers, got {servers} "
                f"(slots={self.slots!r}, uplift={self.uplift!r}, "
                f"operating_threshold={self.operating_threshold!r})"
            )

    @property
    def servers(self) -> int:
        """Effective servers: ``max(1, floor(slots * uplift * operating_threshold))``.

        The product is exact on the shortest decimal form of each float (what a scenario file
        says), so ``slots=100, uplift=0.29`` is 29 servers, not the 28 that binary floating
        point would give.
        """
        product = (
            Decimal(int(self.slots))
            * Decimal(repr(float(self.uplift)))
            * Decimal(repr(float(self.operating_threshold)))
        )
        return max(1, int(product))  # int() truncates, which is floor for a positive product

    @property
    def rate(self) -> float:
        """Fluid capacity in server-equivalents: ``slots * uplift * operating_threshold``, not
        floored (exact on the decimal values as written, then rounded to a float)."""
        return float(
            Decimal(int(self.slots))
            * Decimal(repr(float(self.uplift)))
            * Decimal(repr(float(self.operating_threshold)))
        )

    @property
    def n_classes(self) -> int:
        """Number of request classes ``K``."""
        return len(self.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class labels, ``"class<k>"`` where a class has no name."""
        return tuple(
            item.name if item.name is not None else f"class{k}"
            for k, item in enumerate(self.classes)
        )

    def service_ns_array(self) -> npt.NDArray[np.int64]:
        """Service time per class, int64, indexed by ``cls``."""
        return np.array([item.service_ns for item in self.classes], dtype=np.int64)

    def timeout_ns_array(self) -> npt.NDArray[np.int64]:
        """Time-out per class, int64, indexed by ``cls``."""
        return np.array([item.timeout_ns for item in self.classes], dtype=np.int64)

    def max_wait_ns_array(self) -> npt.NDArray[np.int64]:
        """Admission bound per class, int64 (the int64 maximum where a class has none)."""
        return np.array(
            [_INT64_MAX if item.max_wait_ns is None else item.max_wait_ns for item in self.classes], dtype=np.int64
        )


class CapacityStats(msgspec.Struct, frozen=True, kw_only=True):
    """Totals of the capacity model over one chunk, one run, or several merged.

    All fields are Python ints (exact, no overflow). ``capacity_ns`` is the server time
    available over the span the requests arrived in: ``servers * (last arrival - end of the
    previous chunk)``, starting at the first arrival of a run, so consecutive chunks tile the
    run. ``busy_ns`` is the service time the requests asked for.

    :meth:`merge` is for consecutive chunks or intervals of one run, and for separate runs.
    The DSP is one global queue, so there are no device shards to merge.
    """

    requests: int = 0
    timed_out: int = 0
    total_wait_ns: int = 0
    max_wait_ns: int = 0
    peak_backlog: int = 0
    busy_ns: int = 0
    capacity_ns: int = 0
    refused: int = 0
    shed: int = 0

    def merge(self, other: CapacityStats) -> CapacityStats:
        """Combine two stats: counts and times add, maxima take the larger.

        >>> a = CapacityStats(requests=2, max_wait_ns=5, peak_backlog=1, busy_ns=4)
        >>> a.merge(CapacityStats(requests=3, max_wait_ns=2, peak_backlog=7)).requests
        5
        """
        if not isinstance(other, CapacityStats):
            raise TypeError(f"merge: expected CapacityStats, got {type(other).__name__}")
        return CapacityStats(
            requests=self.requests + other.requests,
            timed_out=self.timed_out + other.timed_out,
            total_wait_ns=self.total_wait_ns + other.total_wait_ns,
            max_wait_ns=max(self.max_wait_ns, other.max_wait_ns),
            peak_backlog=max(self.peak_backlog, other.peak_backlog),
            busy_ns=self.busy_ns + other.busy_ns,
            capacity_ns=self.capacity_ns + other.capacity_ns,
            refused=self.refused + other.refused,
            shed=self.shed + other.shed,
        )

    @property
    def mean_wait_ns(self) -> float:
        """Mean queueing delay per request (0.0 with no requests)."""
        return self.total_wait_ns / self.requests if self.requests else 0.0

    @property
    def timed_out_ratio(self) -> float:
        """Share of requests that timed out (0.0 with no requests)."""
        return self.timed_out / self.requests if self.requests else 0.0

    @property
    def utilisation(self) -> float:
        """Offered utilisation ``busy_ns / capacity_ns``; above 1 the queue grows.

        NaN when ``capacity_ns`` is 0 (no requests, or all at one instant).
        """
        return self.busy_ns / self.capacity_ns if self.capacity_ns else math.nan


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """Per-request outputs of one chunk, aligned with the input arrays, and the chunk's stats.

    ``start_ns``, ``t_done_ns``, ``wait_ns``: int64; ``timed_out``: bool; ``backlog``: int32;
    ``status``: uint8, ``K.DSP_SERVED`` (0), ``K.DSP_REFUSED`` (1, answered at once, no service)
    or ``K.DSP_SHED`` (2, answered at its time-out, no service).
    """

    start_ns: npt.NDArray[np.int64]
    t_done_ns: npt.NDArray[np.int64]
    timed_out: npt.NDArray[np.bool_]
    wait_ns: npt.NDArray[np.int64]
    backlog: npt.NDArray[np.int32]
    stats: CapacityStats
    status: npt.NDArray[np.uint8] | None = None


def _check_array(name: str, value: object, dtype: type[np.generic], n: int | None) -> None:
    if not isinstance(value, np.ndarray):
        raise CapacityInputError(
            f"{name}: expected a numpy array of {np.dtype(dtype).name}, "
            f"got {type(value).__name__}"
        )
    if value.dtype != dtype:
        raise CapacityInputError(
            f"{name}: expected dtype {np.dtype(dtype).name}, got {value.dtype.name}"
        )
    if value.ndim != 1:
        raise CapacityInputError(f"{name}: expected a 1-D array, got shape {value.shape}")
    if n is not None and value.shape[0] != n:
        raise CapacityInputError(
            f"{name}: expected length {n} (the length of t_arrive_ns), got {value.shape[0]}"
        )
    if not value.flags.c_contiguous:
        raise CapacityInputError(f"{name}: expected a contiguous array, got a strided view")


class CapacityModel:
    """The DSP queue with its state; feed it time-ordered chunks of requests.

    Parameters
    ----------
    config:
        The DSP capacity; :attr:`CapacityConfig.servers` servers are simulated.

    Examples
    --------
    >>> import numpy as np
    >>> model = CapacityModel(CapacityConfig(
    ...     slots=2, classes=[CapacityClass(service_ns=100, timeout_ns=1_000)]))
    >>> t = np.array([0, 10, 20, 30], dtype=np.int64)
    >>> r = model.process(t, np.zeros(4, dtype=np.uint8), np.zeros(4, dtype=np.int64))
    >>> r.start_ns.tolist(), r.backlog.tolist()
    ([0, 10, 100, 110], [0, 0, 1, 2])
    >>> model.stats.peak_backlog, model.backlog
    (2, 2)
    """

    def __init__(self, config: CapacityConfig) -> None:
        if not isinstance(config, CapacityConfig):
            raise CapacityInputError(
                f"config: expected a CapacityConfig, got {type(config).__name__}"
            )
        self._config = config
        self._servers = config.servers
        self._service = config.service_ns_array()
        self._timeout = config.timeout_ns_array()
        self._max_wait = config.max_wait_ns_array()
        self._fluid = config.model == "fluid"
        self._rate = config.rate
        # fluid: the backlog of work and the credit not yet used (see credit), server-ns
        self._work = np.zeros(2, dtype=np.float64)
        # State, see dccsim.core._kernels: the count of servers never used, per class a lane
        # of the free times of the servers it used last, a winner tree over the lane heads,
        # and the ring of waiting requests' start times.
        n_classes = config.n_classes
        lane_cap = min(_INITIAL_LANE, _next_pow2(self._servers))
        self._lane_meta = np.zeros((n_classes, K.N_LANE_META), dtype=np.int64)
        self._lane_meta[:, K.LANE_OFF] = np.arange(n_classes) * lane_cap
        self._lane_meta[:, K.LANE_MASK] = lane_cap - 1
        self._lanes = np.zeros(n_classes * lane_cap, dtype=np.int64)
        kp = _next_pow2(max(2, n_classes))
        self._tree_val = np.full(2 * kp, _INT64_MAX, dtype=np.int64)
        self._tree_idx = np.zeros(2 * kp, dtype=np.int64)
        self._tree_idx[kp:] = np.arange(kp)
        for node in range(kp - 1, 0, -1):  # every lane is empty: each subtree's leftmost wins
            self._tree_idx[node] = self._tree_idx[2 * node]
        self._pending = np.zeros(_INITIAL_PENDING, dtype=np.int64)
        self._scal = np.zeros(K.N_SCALARS, dtype=np.int64)
        self._scal[K.SCAL_IDLE] = self._servers
        self._scal[K.SCAL_FULL] = K.FULL_NONE
        self._scal[K.SCAL_LAST_START] = _INT64_MIN  # fluid: no start given yet
        self._t_last: int | None = None
        self._t_first: int | None = None
        self._stats = CapacityStats()
        self._broken: str | None = None

    @property
    def config(self) -> CapacityConfig:
        return self._config

    @property
    def servers(self) -> int:
        """Effective number of servers ``c`` (the c-server model's)."""
        return self._servers

    @property
    def capacity(self) -> float:
        """Capacity in server-equivalents: ``c``, or the fluid model's unfloored rate."""
        return self._rate if self._fluid else float(self._servers)

    @property
    def stats(self) -> CapacityStats:
        """Stats of every request processed so far (the merge of all chunk stats)."""
        return self._stats

    @property
    def backlog(self) -> int:
        """Requests waiting just after the last arrival."""
        return int(self._scal[K.SCAL_COUNT])

    @property
    def work_ns(self) -> float:
        """Fluid model: the backlog of service work (server-ns) as of the last arrival."""
        return float(self._work[0])

    @property
    def credit_left_ns(self) -> float:
        """Fluid model: credited work not yet used (what the backlog could not take, see :meth:`credit`)."""
        return float(self._work[1])

    def credit(self, work_ns: float) -> float:
        """Credit the fluid DSP with ``work_ns`` server-ns of service it was charged and did not
        need; return what came off the backlog at once.

        For a readings-cache hit that takes less than its class's service time (``[cache]
        hit_service_share``), credited after the fact. The backlog as of the last arrival drops
        by the credit, never below zero; what it cannot take (the DSP had less queued than it
        saved) stays as credit left, which the next requests served use up: each adds that much
        less service to the backlog, until it is gone. A new credit replaces what is left of the
        previous one (the saving was capacity for about one chunk, not a store). Start times
        already given stand, and FIFO holds: no later request starts before the last start
        given. Only the fluid model takes a credit (the c-server model's per-server free times do
        not say whose work to cancel); ``work_ns`` must be a finite number >= 0.
        """
        if not self._fluid:
            raise CapacityInputError('credit: expected the fluid model (model="fluid"), got model="servers"')
        if not _is_real(work_ns) or not math.isfinite(work_ns) or work_ns < 0:
            raise CapacityInputError(f"work_ns: expected a finite number >= 0, got {work_ns!r}")
        if self._broken is not None:
            raise CapacityInputError(f"model: unusable after an earlier error: {self._broken}")
        before = float(self._work[0])
        taken = min(before, float(work_ns))
        self._work[0] = before - taken
        self._work[1] = float(work_ns) - taken
        return taken

    @property
    def t_last_ns(self) -> int | None:
        """Last arrival time seen, or None before the first request."""
        return self._t_last

    @property
    def state_bytes(self) -> int:
        """Bytes held by the model's state arrays (class lanes, tree, waiting ring)."""
        return sum(
            a.nbytes
            for a in (
                self._lanes,
                self._lane_meta,
                self._tree_val,
                self._tree_idx,
                self._pending,
                self._scal,
                self._work,
            )
        )

    def process(
        self,
        t_arrive_ns: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
    ) -> CapacityResult:
        """Process one chunk and return freshly allocated per-request outputs.

        Parameters
        ----------
        t_arrive_ns:
            int64 arrival times, non-decreasing, not before the previous chunk's last one.
        cls:
            uint8 request class of each request, ``< config.n_classes``.
        device_latency_ns:
            int64 device leg of each request, ``>= 0``.

        Raises
        ------
        CapacityInputError
            Naming the argument and what it got; the model state is unchanged.
        """
        n = self._check_inputs(t_arrive_ns, cls, device_latency_ns)
        outputs = (
            np.empty(n, dtype=np.int64),
            np.empty(n, dtype=np.int64),
            np.empty(n, dtype=np.bool_),
            np.empty(n, dtype=np.int64),
            np.empty(n, dtype=np.int32),
        )
        status = np.zeros(n, dtype=np.uint8)
        stats = self._apply(t_arrive_ns, cls, device_latency_ns, (*outputs, status))
        return CapacityResult(*outputs, stats, status)

    def process_into(
        self,
        t_arrive_ns: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
        *,
        start_ns: npt.NDArray[np.int64],
        t_done_ns: npt.NDArray[np.int64],
        timed_out: npt.NDArray[np.bool_],
        wait_ns: npt.NDArray[np.int64],
        backlog: npt.NDArray[np.int32],
        status: npt.NDArray[np.uint8] | None = None,
    ) -> CapacityStats:
        """Process one chunk writing into preallocated outputs; return the chunk's stats.

        Outputs must be contiguous 1-D arrays of the input length: ``start_ns``, ``t_done_ns``,
        ``wait_ns`` int64, ``timed_out`` bool, ``backlog`` int32, ``status`` uint8 (optional).
        Inputs as in :meth:`process`.
        """
        n = self._check_inputs(t_arrive_ns, cls, device_latency_ns)
        if status is None:
            status = np.empty(n, dtype=np.uint8)
        outputs = (
            ("start_ns", start_ns, np.int64),
            ("t_done_ns", t_done_ns, np.int64),
            ("timed_out", timed_out, np.bool_),
            ("wait_ns", wait_ns, np.int64),
            ("backlog", backlog, np.int32),
            ("status", status, np.uint8),
        )
        for name, out, dtype in outputs:
            _check_array(name, out, dtype, n)
            if not out.flags.writeable:
                raise CapacityInputError(f"{name}: expected a writeable array, got read-only")
        return self._apply(
            t_arrive_ns, cls, device_latency_ns, (start_ns, t_done_ns, timed_out, wait_ns, backlog, status)
        )

    def _check_inputs(
        self,
        t_arrive_ns: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
    ) -> int:
        """Check the model and the input arrays (not their values); returns the length."""
        if self._broken is not None:
            raise CapacityInputError(f"model: unusable after an earlier error: {self._broken}")
        _check_array("t_arrive_ns", t_arrive_ns, np.int64, None)
        n = int(t_arrive_ns.shape[0])
        _check_array("cls", cls, np.uint8, n)
        _check_array("device_latency_ns", device_latency_ns, np.int64, n)
        if n > _MAX_CHUNK:
            raise CapacityInputError(
                f"t_arrive_ns: expected at most {_MAX_CHUNK} requests per chunk, got {n}"
            )
        return n

    def _apply(
        self,
        t_arrive_ns: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
        outputs: tuple[npt.NDArray[np.generic], ...],
    ) -> CapacityStats:
        """Checked arrays in, outputs (start, done, timed out, wait, backlog, status) written: the
        values are checked here, then the chunk is run and its stats returned."""
        n = t_arrive_ns.shape[0]
        if n == 0:
            return CapacityStats()
        self._check_values(t_arrive_ns, cls, device_latency_ns)

        acc = np.zeros(K.N_ACC, dtype=np.int64)
        self._run(t_arrive_ns, cls, device_latency_ns, acc, outputs)

        t_first = int(t_arrive_ns[0])
        t_last = int(t_arrive_ns[-1])
        window_start = t_first if self._t_last is None else self._t_last
        self._t_last = t_last
        stats = CapacityStats(
            requests=n,
            timed_out=int(acc[K.ACC_TIMED_OUT]),
            total_wait_ns=int(acc[K.ACC_WAIT_HI]) * 2**32 + int(acc[K.ACC_WAIT_LO]),
            max_wait_ns=int(acc[K.ACC_MAX_WAIT]),
            peak_backlog=int(acc[K.ACC_PEAK]),
            busy_ns=int(acc[K.ACC_BUSY_HI]) * 2**32 + int(acc[K.ACC_BUSY_LO]),
            capacity_ns=self._capacity_ns(window_start, t_last),
            refused=int(acc[K.ACC_REFUSED]),
            shed=int(acc[K.ACC_SHED]),
        )
        self._stats = self._stats.merge(stats)
        return stats

    def _capacity_ns(self, window_start: int, t_last: int) -> int:
        """Capacity over ``[window_start, t_last]``; the fluid model's fractional rate is rounded
        on the run so far, so consecutive chunks tile the run's total exactly."""
        if not self._fluid:
            return self._servers * (t_last - window_start)
        if self._t_first is None:
            self._t_first = window_start
        before = round(self._rate * (window_start - self._t_first))
        return round(self._rate * (t_last - self._t_first)) - before

    def _run(
        self,
        t_arrive_ns: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
        acc: npt.NDArray[np.int64],
        outputs: tuple[npt.NDArray[np.generic], ...],
    ) -> None:
        """The kernel over a whole, already checked chunk, growing rings when they fill."""
        n = t_arrive_ns.shape[0]
        shed = self._config.shed_expired
        i = 0
        while True:
            if self._fluid:
                i = K.dsp_fluid(
                    t_arrive_ns, cls, device_latency_ns, self._service, self._timeout, self._max_wait, shed,
                    self._rate, self._work, self._pending, self._scal, acc, *outputs, i,
                )  # fmt: skip
                if i == n:
                    return
                try:
                    self._grow_pending()
                except (CapacityInputError, MemoryError) as exc:
                    self._broken = str(exc)
                    raise
                continue
            i = K.dsp_fifo(
                t_arrive_ns,
                cls,
                device_latency_ns,
                self._service,
                self._timeout,
                self._max_wait,
                shed,
                self._lanes,
                self._lane_meta,
                self._tree_val,
                self._tree_idx,
                self._pending,
                self._scal,
                acc,
                *outputs,
                i,
            )
            if i == n:
                return
            full = int(self._scal[K.SCAL_FULL])
            try:
                if full == K.FULL_PENDING:
                    self._grow_pending()
                else:
                    self._grow_lane(full)
            except (CapacityInputError, MemoryError) as exc:
                # Part of the chunk is in the state already: refuse to go on from there.
                self._broken = str(exc)
                raise

    def _check_values(
        self,
        t_arrive_ns: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
    ) -> None:
        t_prev = _INT64_MIN if self._t_last is None else self._t_last
        code, index = K.check_requests(
            t_arrive_ns, cls, device_latency_ns, self._config.n_classes, t_prev
        )
        if code == K.CHECK_TIME_DECREASES:
            before = (
                f"the previous chunk's last arrival {t_prev}"
                if index == 0
                else f"t_arrive_ns[{index - 1}] = {int(t_arrive_ns[index - 1])}"
            )
            raise CapacityInputError(
                f"t_arrive_ns[{index}]: expected non-decreasing arrival times, got "
                f"{int(t_arrive_ns[index])} after {before}"
            )
        if code == K.CHECK_BAD_CLASS:
            raise CapacityInputError(
                f"cls[{index}]: expected a class index below {self._config.n_classes}, "
                f"got {int(cls[index])}"
            )
        if code == K.CHECK_NEGATIVE_LATENCY:
            raise CapacityInputError(
                f"device_latency_ns[{index}]: expected >= 0, got {int(device_latency_ns[index])}"
            )
        for index in (0, t_arrive_ns.shape[0] - 1):  # sorted: the ends bound the rest
            t = int(t_arrive_ns[index])
            if not -MAX_TIME_NS <= t <= MAX_TIME_NS:
                raise CapacityInputError(
                    f"t_arrive_ns[{index}]: expected a time within +-2**62 ns, got {t}"
                )

    def _grow_lane(self, k: int) -> None:
        """Double lane ``k``; every lane is copied unrolled so its oldest entry is first."""
        meta = self._lane_meta
        caps = meta[:, K.LANE_MASK] + 1
        caps[k] *= 2
        offs = np.concatenate(([0], np.cumsum(caps)[:-1]))
        lanes = np.zeros(int(caps.sum()), dtype=np.int64)
        for j in range(meta.shape[0]):
            old_off, old_cap = int(meta[j, K.LANE_OFF]), int(meta[j, K.LANE_MASK]) + 1
            head, count = int(meta[j, K.LANE_HEAD]), int(meta[j, K.LANE_COUNT])
            ring = self._lanes[old_off : old_off + old_cap]
            lanes[offs[j] : offs[j] + count] = np.roll(ring, -head)[:count]
        meta[:, K.LANE_OFF] = offs
        meta[:, K.LANE_MASK] = caps - 1
        meta[:, K.LANE_HEAD] = 0
        self._lanes = lanes

    def _grow_pending(self) -> None:
        """Double the waiting-request ring, unrolled so the oldest entry is at index 0."""
        old = self._pending
        count = int(self._scal[K.SCAL_COUNT])
        if count >= _MAX_PENDING:
            raise CapacityInputError(
                f"backlog: expected at most {_MAX_PENDING} waiting requests, got more; "
                "the configured capacity is far below the offered load"
            )
        head = int(self._scal[K.SCAL_HEAD])
        new = np.zeros(2 * old.shape[0], dtype=np.int64)
        new[:count] = np.roll(old, -head)[:count]
        self._pending = new
        self._scal[K.SCAL_HEAD] = 0


def reference_process(
    config: CapacityConfig,
    t_arrive_ns: Sequence[int] | npt.NDArray[np.int64],
    cls: Sequence[int] | npt.NDArray[np.uint8],
    device_latency_ns: Sequence[int] | npt.NDArray[np.int64],
) -> CapacityResult:
    """Plain-Python reference of the capacity model for one whole run, written to be obvious.

    Same semantics and outputs as one :meth:`CapacityModel.process` call on a fresh model
    (inputs are assumed valid). Uses ``heapq`` for the servers and for the waiting requests,
    Python ints throughout; about a microsecond per request, for tests and benchmarks.
    """
    servers = config.servers
    service = [item.service_ns for item in config.classes]
    timeout = [item.timeout_ns for item in config.classes]
    bound = [item.max_wait_ns for item in config.classes]
    times = [int(t) for t in t_arrive_ns]
    free_at: list[int] = []  # free times of the servers used so far (a min-heap)
    waiting: list[int] = []  # start times of requests that arrived and have not started
    starts, dones, timeouts, waits, backlogs, statuses = [], [], [], [], [], []
    n_timed_out = total_wait = max_wait = peak = busy = n_refused = n_shed = 0
    for t, k, latency in zip(times, cls, device_latency_ns, strict=True):
        k, latency = int(k), int(latency)
        while waiting and waiting[0] <= t:
            heapq.heappop(waiting)
        start = t if len(free_at) < servers else max(t, free_at[0])
        refused = bound[k] is not None and start - t > bound[k]
        shed = not refused and config.shed_expired and start - t >= timeout[k]
        if refused or shed:  # takes no server; answered now (refused) or at its time-out (shed)
            n_refused += refused
            n_shed += shed
            n_timed_out += shed
            done = t if refused else t + timeout[k]
            starts.append(done)
            dones.append(done)
            timeouts.append(shed)
            waits.append(done - t)
            backlogs.append(len(waiting))
            statuses.append(K.DSP_REFUSED if refused else K.DSP_SHED)
            continue
        if len(free_at) < servers:  # a server never used yet is free
            heapq.heappush(free_at, start + service[k])
        else:
            heapq.heapreplace(free_at, start + service[k])
        if start > t:
            heapq.heappush(waiting, start)
        done = start + service[k] + latency
        late = done - t > timeout[k]
        if late:
            done = t + timeout[k]
            n_timed_out += 1
        wait = start - t
        total_wait += wait
        max_wait = max(max_wait, wait)
        peak = max(peak, len(waiting))
        busy += service[k]
        starts.append(start)
        dones.append(done)
        timeouts.append(late)
        waits.append(wait)
        backlogs.append(len(waiting))
        statuses.append(K.DSP_SERVED)
    stats = CapacityStats(
        requests=len(times),
        timed_out=n_timed_out,
        total_wait_ns=total_wait,
        max_wait_ns=max_wait,
        peak_backlog=peak,
        busy_ns=busy,
        capacity_ns=servers * (times[-1] - times[0]) if times else 0,
        refused=n_refused,
        shed=n_shed,
    )
    return _result(starts, dones, timeouts, waits, backlogs, statuses, stats)


def _result(
    starts: list[int],
    dones: list[int],
    timeouts: list[bool],
    waits: list[int],
    backlogs: list[int],
    statuses: list[int],
    stats: CapacityStats,
) -> CapacityResult:
    return CapacityResult(
        np.array(starts, dtype=np.int64),
        np.array(dones, dtype=np.int64),
        np.array(timeouts, dtype=np.bool_),
        np.array(waits, dtype=np.int64),
        np.array(backlogs, dtype=np.int32),
        stats,
        np.array(statuses, dtype=np.uint8),
    )


def reference_fluid(
    config: CapacityConfig,
    t_arrive_ns: Sequence[int] | npt.NDArray[np.int64],
    cls: Sequence[int] | npt.NDArray[np.uint8],
    device_latency_ns: Sequence[int] | npt.NDArray[np.int64],
    credits: dict[int, float] | None = None,
) -> CapacityResult:
    """Plain-Python reference of the fluid model (``config.model == "fluid"``) for one run.

    The DSP is a capacity of ``rate = slots * uplift * operating_threshold`` server-equivalents
    (fractional, not floored). ``work`` is the service time (server-ns) accepted and not yet
    worked off; between arrivals it drains at ``rate`` per ns, never below 0. A request waits
    ``work / rate`` (to the nearest ns; FIFO, so never starting before the previous start),
    then takes its class's service time; time-outs, admission and shedding as in
    :func:`reference_process`, and only a served request adds its service time to ``work``.
    Queueing from the randomness of arrivals within a moment, which a few servers show and
    GB's ~1,000 do not, is not modelled: the model is the many-server limit at any scale.

    ``credits`` maps a request index ``i`` to work (server-ns) credited just before request
    ``i`` arrives, as of the arrival before it (:meth:`CapacityModel.credit` between two
    chunks): off the backlog, never below zero; what is left replaces the credit left, which
    each request served then uses up against its service time, as far as it goes.
    """
    credits = credits or {}
    rate = config.rate
    service = [item.service_ns for item in config.classes]
    timeout = [item.timeout_ns for item in config.classes]
    bound = [item.max_wait_ns for item in config.classes]
    times = [int(t) for t in t_arrive_ns]
    work = 0.0
    left = 0.0  # credit not yet used
    t_prev = times[0] if times else 0
    last_start = -(2**63)
    waiting: list[int] = []  # start times of waiting requests (sorted: FIFO starts never decrease)
    starts, dones, timeouts, waits, backlogs, statuses = [], [], [], [], [], []
    n_timed_out = total_wait = max_wait = peak = busy = n_refused = n_shed = 0
    for i, (t, k, latency) in enumerate(zip(times, cls, device_latency_ns, strict=True)):
        k, latency = int(k), int(latency)
        waiting = [w for w in waiting if w > t]
        if i in credits:
            taken = min(work, float(credits[i]))
            work, left = work - taken, float(credits[i]) - taken
        work = max(0.0, work - rate * float(t - t_prev))
        t_prev = t
        start = max(t + int(work / rate + 0.5), last_start)
        wait = start - t
        refused = bound[k] is not None and wait > bound[k]
        shed = not refused and config.shed_expired and wait >= timeout[k]
        if refused or shed:
            n_refused += refused
            n_shed += shed
            n_timed_out += shed
            done = t if refused else t + timeout[k]
            starts.append(done)
            dones.append(done)
            timeouts.append(shed)
            waits.append(done - t)
            backlogs.append(len(waiting))
            statuses.append(K.DSP_REFUSED if refused else K.DSP_SHED)
            continue
        used = min(left, float(service[k]))
        left -= used
        work += float(service[k]) - used
        last_start = start
        if wait > 0:
            waiting.append(start)
        done = start + service[k] + latency
        late = done - t > timeout[k]
        if late:
            done = t + timeout[k]
            n_timed_out += 1
        total_wait += wait
        max_wait = max(max_wait, wait)
        peak = max(peak, len(waiting))
        busy += service[k]
        starts.append(start)
        dones.append(done)
        timeouts.append(late)
        waits.append(wait)
        backlogs.append(len(waiting))
        statuses.append(K.DSP_SERVED)
    stats = CapacityStats(
        requests=len(times),
        timed_out=n_timed_out,
        total_wait_ns=total_wait,
        max_wait_ns=max_wait,
        peak_backlog=peak,
        busy_ns=busy,
        capacity_ns=round(rate * (times[-1] - times[0])) if times else 0,
        refused=n_refused,
        shed=n_shed,
    )
    return _result(starts, dones, timeouts, waits, backlogs, statuses, stats)


@dataclass(frozen=True, slots=True)
class IntervalAggregates:
    """Arrivals and peak backlog per fixed interval, over consecutive intervals.

    Interval ``j`` covers ``[start_ns[j], start_ns[j] + interval_ns)``. ``first_index`` is the
    absolute interval number of ``start_ns[0]`` counted from ``t0_ns``, so the aggregates of
    consecutive chunks can be combined (arrivals add, maxima take the larger).
    """

    interval_ns: int
    first_index: int
    start_ns: npt.NDArray[np.int64]
    arrivals: npt.NDArray[np.int64]
    max_backlog: npt.NDArray[np.int32]


def interval_aggregates(
    t_arrive_ns: npt.NDArray[np.int64],
    backlog: npt.NDArray[np.int32],
    interval_ns: int,
    *,
    t0_ns: int = 0,
) -> IntervalAggregates:
    """Number of arrivals and largest backlog seen by an arrival, per interval.

    Covers every interval from the first arrival's to the last one's, empty ones included.
    ``max_backlog`` is the largest ``backlog`` of the interval's arrivals, 0 for an interval
    with none (the queue may still be draining then: the backlog is observed at arrivals).

    Examples
    --------
    >>> import numpy as np
    >>> a = interval_aggregates(np.array([5, 7, 31], dtype=np.int64),
    ...                         np.array([0, 2, 1], dtype=np.int32), 10)
    >>> a.start_ns.tolist(), a.arrivals.tolist(), a.max_backlog.tolist()
    ([0, 10, 20, 30], [2, 0, 0, 1], [2, 0, 0, 1])
    """
    _check_array("t_arrive_ns", t_arrive_ns, np.int64, None)
    n = t_arrive_ns.shape[0]
    _check_array("backlog", backlog, np.int32, n)
    if not _is_int(interval_ns) or interval_ns <= 0:
        raise CapacityInputError(f"interval_ns: expected an integer > 0, got {interval_ns!r}")
    if not _is_int(t0_ns):
        raise CapacityInputError(f"t0_ns: expected an integer, got {t0_ns!r}")
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return IntervalAggregates(int(interval_ns), 0, empty, empty.copy(), empty.astype(np.int32))
    if n > 1 and bool(np.any(t_arrive_ns[1:] < t_arrive_ns[:-1])):
        raise CapacityInputError("t_arrive_ns: expected non-decreasing arrival times")
    index = (t_arrive_ns - np.int64(t0_ns)) // np.int64(interval_ns)
    first = int(index[0])
    local = index - first
    size = int(local[-1]) + 1
    arrivals = np.bincount(local, minlength=size).astype(np.int64)
    # index is sorted, so each interval with arrivals is one run: reduce over the run starts.
    run_starts = np.flatnonzero(np.concatenate(([True], local[1:] != local[:-1])))
    max_backlog = np.zeros(size, dtype=np.int32)
    max_backlog[local[run_starts]] = np.maximum.reduceat(backlog, run_starts)
    start_ns = np.int64(t0_ns) + (np.arange(size, dtype=np.int64) + first) * np.int64(interval_ns)
    return IntervalAggregates(int(interval_ns), first, start_ns, arrivals, max_backlog)
