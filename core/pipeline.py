"""The pipeline: validation -> readings cache -> DSP capacity -> responses; alerts -> throttle.

It works on columns, one time-ordered chunk at a time, and keeps all state between chunks,
so a day cut into any chunks gives the same outcomes.

Per request (in arrival order, ties in input order):

1. **Validation and access control** (:func:`~dccsim.core.validation.validate_batch`): a
   rejected request is answered at once (``t_done = t_scheduled``, outcome ``rejected``).
2. **DSP** (:class:`~dccsim.core.capacity.CapacityModel`): every accepted request takes a
   processing slot for its class's service time, FIFO. Overload control: a request refused
   at admission is answered at once with ``refuse_code`` (outcome ``refused``); one shed
   because its caller timed out while it queued is answered with the time-out code at its
   deadline (outcome ``shed``); neither goes further. The DSP's work does not depend on
   whether the answer then comes from the cache or a device, so the queue is computed first.
3. **Readings cache** (4.6.1, 4.8.1, 4.8.3 to an ESME): looked up when the DSP picks the
   request up (its start time, which never decreases in FIFO order). A hit is answered when
   the DSP is done (outcome ``cache``, no device traffic). A miss goes to the device; if the
   device answers I0 in time, the answer is stored **at the time it arrives**, and serves any
   later lookup of the same key from then on (within retention).
   ``hit_service_share`` (``[cache] hit_service_share``, default 1.0) is the share of its
   class's DSP service time a hit takes: a hit is answered at ``start + share x service``,
   and the work it did not need, ``(1 - share) x service``, is credited to the fluid DSP
   (:meth:`~dccsim.core.capacity.CapacityModel.credit`: off its backlog, the rest off the
   next requests' service) two chunks later, when
   :meth:`Pipeline.front` starts chunk ``k + 2`` (``finish(k)`` is certainly done by then;
   ``finish(k + 1)`` may still be running beside it), so runs stay deterministic.
   :meth:`Pipeline.process` (front then finish, the server's micro-batches) credits at once,
   before the next micro-batch. An approximation: the queue is worked out before the
   lookups, so the requests queued meanwhile keep the waits they were given.
4. **Comms leg** (:class:`~dccsim.core.comms.CommsLeg`, when the pipeline has one): a
   request for a device (not a cache hit) waits in the FIFO queue of its device's comms
   resource (the CSP of its region, or the S1SP) from the time the DSP is done, then goes
   to the device. A miss's answer is stored in the cache at its arrival time *without* the
   comms wait (early by that wait; a late answer is still stored): the lookups run before
   the comms queue, which depends on them.
5. **Device leg**: a latency and a fault drawn by the caller per request. ``E20`` (cannot
   communicate) answers after the latency; ``E21`` (no response) at the class time-out; any
   answer (``E20`` included) later than the time-out becomes ``E21`` (``E30`` for
   future-dated commands) at the time-out.
   Non-device requests are answered by the DCC when the DSP is done (outcome ``dcc``).
   Future-dated commands are acknowledged ``I99`` (the result comes later, by alerts).
6. ``latency = t_done - t_scheduled`` (from the scheduled time, so a stall cannot hide) and
   ``within_target = latency <= target of the class``.

Sharding: the cache and the throttle keep per-device state, so they run as ``shards``
independent states chosen by a hash of the device; outcomes are identical for any shard count
(a test says so). Validation's replay check (per originator) and the DSP queue (global) run
once over the merged stream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from dccsim.cache import CacheStats, ReadingsCache
from dccsim.cache.readthrough import ReadThroughCache
from dccsim.throttle import REPORTED, Throttle, ThrottlePolicy, ThrottleReports, ThrottleStats

from . import _kernels as K
from ._kernels import (
    DSP_REFUSED,
    DSP_SERVED,
    FAULT_E20,
    FAULT_E21,
    FAULT_NONE,
    O_CACHE,
    O_DCC,
    O_DEVICE,
    O_FAILED,
    O_REFUSED,
    O_REJECTED,
    O_SHED,
)
from .capacity import CapacityConfig, CapacityModel
from .catalogue import DEVICE_KINDS, catalogue
from .columns import RequestBatch
from .comms import CommsConfig, CommsLeg, CommsStats
from .errors import ConfigError
from .records import RESPONSE_CODES, AlertRows, RequestRows
from .validation import DeviceRegistry, ReplayState, UserRegistry, assign_counters, validate_batch

# FAULT_* and O_* are the kernels' codes, re-exported: callers draw the faults and read the outcomes
__all__ = [
    "FAULT_NONE",
    "FAULT_E20",
    "FAULT_E21",
    "O_CACHE",
    "O_DCC",
    "O_DEVICE",
    "O_FAILED",
    "O_REFUSED",
    "O_REJECTED",
    "O_SHED",
    "RequestResult",
    "Pipeline",
    "front_columns_reference",
    "shard_of",
]

_C = {c: i for i, c in enumerate(RESPONSE_CODES)}
#: code indices the kernels need: I0, I99, E20, E21, E30
_CODES = np.array([_C["I0"], _C["I99"], _C["E20"], _C["E21"], _C["E30"]], np.uint8)


_ESME = DEVICE_KINDS.index("ESME")
_MIX = np.uint64(0x9E3779B97F4A7C15)


def shard_of(device: npt.NDArray[np.uint64], shards: int) -> npt.NDArray[np.int64]:
    """Shard of each device: a multiplicative hash of the EUI-64, modulo ``shards``."""
    with np.errstate(over="ignore"):
        h = (device * _MIX) >> np.uint64(32)
    return (h % np.uint64(shards)).astype(np.int64)


def _by_shard(
    device: npt.NDArray[np.uint64],
    shards: int,
    run: Callable[[int, slice | npt.NDArray[np.int64]], tuple[npt.NDArray[Any], ...]],
) -> tuple[npt.NDArray[Any], ...]:
    """Run a per-device stage shard by shard (rows keep their order) and put the outputs back."""
    if shards == 1:
        return run(0, slice(None))
    sh = shard_of(device, shards)
    outs: list[npt.NDArray[Any]] | None = None
    for k in range(shards):
        sel = np.flatnonzero(sh == k)
        if not len(sel):
            continue
        part = run(k, sel)
        if outs is None:
            outs = [np.zeros(len(device), a.dtype) for a in part]
        for o, a in zip(outs, part, strict=True):
            o[sel] = a
    if outs is None:  # no rows at all
        return run(0, slice(None))
    return tuple(outs)


def front_columns_reference(
    cls: npt.NDArray[np.uint8],
    t: npt.NDArray[np.int64],
    srv: npt.NDArray[np.uint8],
    row: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    status: npt.NDArray[np.uint8],
    service_ns: npt.NDArray[np.int64],
    timeout_ns: npt.NDArray[np.int64],
    srv_cacheable: npt.NDArray[np.bool_],
    dev_kind: npt.NDArray[np.uint8],
    cache_rows: npt.NDArray[np.bool_] | None,
    cache_enabled: bool,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Whole-array statement of :func:`~dccsim.core._kernels.front_columns` (what
    :meth:`Pipeline.front` computed before the kernel): each accepted request's DSP finish,
    deadline, and whether it goes to the readings cache."""
    dsp_done = start + service_ns[cls]
    deadline = t + timeout_ns[cls]
    kind = dev_kind[np.maximum(row, 0)] if len(dev_kind) else np.zeros(len(row), np.uint8)
    cacheable = srv_cacheable[srv] & (row >= 0) & (kind == _ESME) & cache_enabled
    if cache_rows is not None and len(cache_rows):
        cacheable &= cache_rows[np.maximum(row, 0)]
    cacheable &= status == DSP_SERVED
    return dsp_done, deadline, cacheable


@dataclass
class RequestResult:
    """Per-request outcome columns of one chunk."""

    response_code: npt.NDArray[np.uint8]
    outcome: npt.NDArray[np.uint8]
    t_done_ns: npt.NDArray[np.int64]
    latency_ns: npt.NDArray[np.int64]
    within_target: npt.NDArray[np.bool_]
    wait_ns: npt.NDArray[np.int64]
    backlog: npt.NDArray[np.int64]

    def rows(
        self,
        req: Any,
        *,
        seq: npt.NDArray[np.uint64],
        counter: npt.NDArray[np.uint64],
        request_class: npt.NDArray[np.uint8],
        attempt: npt.NDArray[np.uint8],
        invalid: npt.NDArray[np.uint8],
    ) -> RequestRows:
        """The log rows of a chunk: its requests' columns (``req``: a :class:`RequestBatch`
        or the generator's chunk, same column names), these outcomes and the given labels."""
        return RequestRows(
            seq=seq,
            t_scheduled_ns=req.t_scheduled_ns,
            t_done_ns=self.t_done_ns,
            device=req.device,
            srv=req.srv,
            role=req.role,
            command_variant=req.command_variant,
            outcome=self.outcome,
            response_code=self.response_code,
            latency_ns=self.latency_ns,
            within_target=self.within_target,
            period_start_ns=req.period_start_ns,
            period_end_ns=req.period_end_ns,
            originator=req.originator,
            counter=counter,
            request_class=request_class,
            attempt=attempt,
            invalid=invalid,
            wait_ns=self.wait_ns,
            backlog=self.backlog,
        )


@dataclass
class _Front:
    """A chunk between :meth:`Pipeline.front` and :meth:`Pipeline.finish` (accepted rows: ``idx``)."""

    t: npt.NDArray[np.int64]
    idx: npt.NDArray[np.int64]
    cls: npt.NDArray[np.uint8]
    srv: npt.NDArray[np.uint8]
    dev: npt.NDArray[np.uint64]
    start: npt.NDArray[np.int64]
    dsp_done: npt.NDArray[np.int64]
    deadline: npt.NDArray[np.int64]
    cacheable: npt.NDArray[np.bool_]
    dev_done: npt.NDArray[np.int64]
    dev_code: npt.NDArray[np.uint8]
    period_start: npt.NDArray[np.int64]
    period_end: npt.NDArray[np.int64]
    row: npt.NDArray[np.int64]
    fault: npt.NDArray[np.uint8]
    device_latency: npt.NDArray[np.int64]
    code: npt.NDArray[np.uint8]
    outcome: npt.NDArray[np.uint8]
    t_done: npt.NDArray[np.int64]
    wait: npt.NDArray[np.int64]
    backlog: npt.NDArray[np.int64]
    dsp_status: npt.NDArray[np.uint8]
    #: the chunk's number, counted by :meth:`Pipeline.front` from 0
    chunk: int = 0


@dataclass
class Pipeline:
    """All stage state for one run; feed it time-ordered chunks."""

    capacity: CapacityConfig
    targets_ns: npt.NDArray[np.int64]
    devices: DeviceRegistry
    users: UserRegistry | None
    future_dated_class: int
    #: DUIS code of a request the DSP refuses at admission (the scenario's capacity.refuse_code)
    refuse_code: str = "E20"
    retention_hours: float = 48.0
    cache_capacity: int | None = None
    cache_initial_capacity: int = 4096
    cache_enabled: bool = True
    shards: int = 1
    replay: ReplayState = field(default_factory=ReplayState)
    #: Alert Storm Protection's policy, converted once by whoever configures the run
    throttle_policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    #: the comms leg between the DSP and the devices; ``None``: unlimited (no queue)
    comms: CommsLeg | None = None
    #: per device registry row, whether the cache holds its reads (``[cache] scope``); ``None``: every ESME
    cache_rows: npt.NDArray[np.bool_] | None = None
    #: share of its class's DSP service time a cache hit takes (``[cache] hit_service_share``);
    #: below 1 the rest is credited to the DSP two chunks later (fluid model only)
    hit_service_share: float = 1.0

    def __post_init__(self) -> None:
        share = self.hit_service_share
        key = "cache.hit_service_share"
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0.0 <= share <= 1.0:
            raise ConfigError(key=key, value=share, expected="a number in [0, 1] (1.0: a hit takes full DSP work)")
        if share < 1.0 and self.capacity.model != "fluid":
            raise ConfigError(
                key=key, value=share,
                expected='1.0 with capacity.model = "servers" (the saved DSP work is credited to the fluid model only)',
            )  # fmt: skip
        self.dsp = CapacityModel(self.capacity)
        self._credit = share < 1.0
        #: per class, the DSP time a hit holds: its service time x the share, to the nearest ns
        self._hit_service_ns = np.rint(self.capacity.service_ns_array() * float(share)).astype(np.int64)
        self._fronted = 0  # chunks started by front
        self._finished = 0  # chunks done by finish (in order)
        self._credits: dict[int, float] = {}  # per finished chunk not yet credited: its hits' saved work
        self._credited_ns = 0.0
        self._credit_lock = threading.Lock()
        initial = max(1024, self.cache_initial_capacity // self.shards)
        self.caches = [
            ReadThroughCache(
                ReadingsCache(
                    retention_hours=self.retention_hours, capacity=self.cache_capacity, initial_capacity=initial
                )
            )
            for _ in range(self.shards)
        ]
        self._timeout = self.capacity.timeout_ns_array()
        self._service_ns = self.capacity.service_ns_array()
        self._refuse_code = np.uint8(_C[self.refuse_code])
        self._cat = catalogue()
        self.throttles = [Throttle(self.throttle_policy) for _ in range(self.shards)]
        # what front_columns reads per registry row (an empty registry: no row is ever found)
        self._dev_kind = self.devices.kind if len(self.devices.ids) else np.zeros(1, np.uint8)
        self._use_cache_rows = self.cache_rows is not None and len(self.cache_rows) > 0
        self._cache_rows = self.cache_rows if self._use_cache_rows else np.zeros(1, np.bool_)

    @classmethod
    def warm_up(cls) -> None:
        """Load (or compile) every kernel a request and an alert pass through, outside any
        timed path, on a pipeline of its own (no caller's state is touched).

        The kernels are cached on disk (``cache=True``), so after the first run this only
        loads them: a few milliseconds that would otherwise fall on the first micro-batch.
        """
        from .capacity import CapacityClass
        from .records import REQUEST_CLASSES, ROLES

        ReadingsCache.warm_up()
        Throttle.warm_up()
        assign_counters(np.array([1, 1], np.uint64), np.array([False, True]), {})  # the driver's RequestID counters
        second = 1_000_000_000
        classes = tuple(
            CapacityClass(service_ns=second // 100, timeout_ns=60 * second, name=n) for n in REQUEST_CLASSES
        )
        devices = np.arange(1 << 40, (1 << 40) + 4, dtype=np.uint64)
        user = np.uint64(1 << 41)
        p = cls(
            capacity=CapacityConfig(slots=1, classes=classes),
            targets_ns=np.full(len(REQUEST_CLASSES), 30 * second, np.int64),
            devices=DeviceRegistry.build(devices, np.full(4, DEVICE_KINDS.index("ESME"), np.uint8)),
            users=UserRegistry.build({int(user): "MDR"}),
            future_dated_class=REQUEST_CLASSES.index("future_dated"),
            comms=CommsLeg(CommsConfig(names=("csp",), capacity_per_s=(1.0,), s1sp=0), np.zeros(4, np.uint8)),
        )
        cat = catalogue()
        day = 86_400 * second
        t0 = 1_700_006_400 * second  # any midnight: a day's read of the day before
        for srv in (cat.code("4.8.1", "srv"), 0):  # a cacheable read (to the cache), then anything
            b = RequestBatch.from_columns(
                device=devices, originator=np.full(4, user, np.uint64), counter=np.arange(1, 5) + 4 * srv,
                srv=np.full(4, srv), role=np.full(4, ROLES.index("MDR")), command_variant=np.ones(4),
                period_start_ns=np.full(4, t0 - day), period_end_ns=np.full(4, t0), t_scheduled_ns=np.full(4, t0),
            )  # fmt: skip
            cls_ = np.full(4, REQUEST_CLASSES.index("mhhs_read"), np.uint8)
            p.process(b, cls_, np.full(4, second, np.int64), np.array([0, 0, FAULT_E20, FAULT_E21], np.uint8))
        p.process_alerts(np.full(2, t0, np.int64), devices[:2], np.full(2, 0x8F84, np.uint16))
        for model in ("fluid", "servers"):  # both DSP models' kernels, with admission and shedding
            bounded = tuple(CapacityClass(service_ns=second, timeout_ns=2 * second, max_wait_ns=0) for _ in classes)
            dsp = CapacityModel(CapacityConfig(slots=1, classes=bounded, model=model, shed_expired=True))
            dsp.process(np.zeros(3, np.int64), np.zeros(3, np.uint8), np.zeros(3, np.int64))

    def process(
        self,
        batch: RequestBatch,
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
        fault: npt.NDArray[np.uint8],
    ) -> RequestResult:
        """Outcomes for one chunk of requests sorted by ``t_scheduled_ns``."""
        f = self.front(batch, cls, device_latency_ns, fault)
        res = self.finish(f)
        if self._credit:  # front and finish in turn: this chunk's hits are credited before the next
            self._take_credits(f.chunk)
        return res

    @property
    def hit_credit_ns(self) -> float:
        """DSP work (server-ns) credited so far for cache hits' saved service (``hit_service_share``)."""
        return self._credited_ns

    def _take_credits(self, upto: int) -> None:
        """Credit the DSP with the saved work of the finished chunks up to ``upto``, in order."""
        with self._credit_lock:
            if self._finished <= upto:
                raise RuntimeError(
                    f"Pipeline.front: chunk {upto} must be finished before chunk {upto + 2} is started "
                    "(its cache hits' saved DSP work is credited then)"
                )
            due = sorted(k for k in self._credits if k <= upto)
            work = [self._credits.pop(k) for k in due]
        for w in work:
            self.dsp.credit(w)
            self._credited_ns += w

    def front(
        self,
        batch: RequestBatch,
        cls: npt.NDArray[np.uint8],
        device_latency_ns: npt.NDArray[np.int64],
        fault: npt.NDArray[np.uint8],
        originators: tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]] | None = None,
    ) -> _Front:
        """Validation, the DSP queue and the device leg of a chunk (state: replay, DSP).

        :meth:`finish` does the rest (state: the caches). The two may run on different
        threads, one chunk apart, as long as each sees its chunks in order. ``originators``,
        if given, must be :func:`~dccsim.core.validation.dense_originators` of the batch's.
        """
        chunk = self._fronted
        self._fronted += 1
        if self._credit and chunk >= 2:
            self._take_credits(chunk - 2)
        n = len(batch)
        t = batch.t_scheduled_ns
        rows = self.devices.index(batch.device)
        code = validate_batch(
            batch, self.devices, self.users, self.replay, self._cat, device_rows=rows, originators=originators
        )
        outcome = np.full(n, O_REJECTED, np.uint8)
        t_done = t.copy()
        idx = np.flatnonzero(code == 0)
        m = len(idx)
        if m == n:  # the usual case: the accepted rows are the batch itself, no gathers
            a_cls = cls.astype(np.uint8, copy=False)
            a_t, srv, dev, row = t, batch.srv, batch.device, rows
            a_fault, a_lat, a_ps, a_pe = fault, device_latency_ns, batch.period_start_ns, batch.period_end_ns
        else:  # the accepted rows' columns, in one pass
            a_cls, srv, a_fault = (np.empty(m, np.uint8) for _ in range(3))
            a_t, row, a_lat, a_ps, a_pe = (np.empty(m, np.int64) for _ in range(5))
            dev = np.empty(m, np.uint64)
            K.accepted_rows(
                idx, cls, t, batch.srv, batch.device, rows, fault, device_latency_ns,
                batch.period_start_ns, batch.period_end_ns, a_cls, a_t, srv, dev, row, a_fault, a_lat, a_ps, a_pe,
            )  # fmt: skip
        res = self.dsp.process(a_t, a_cls, np.zeros(m, np.int64))
        start = res.start_ns
        if m == n:  # the model's fresh outputs are the chunk's columns
            wait, backlog = res.wait_ns, res.backlog.astype(np.int64)
        else:
            wait = np.zeros(n, np.int64)
            backlog = np.zeros(n, np.int64)
            wait[idx] = res.wait_ns
            backlog[idx] = res.backlog
        assert res.status is not None
        dsp_done = np.empty(m, np.int64)
        deadline = np.empty(m, np.int64)
        cacheable = np.empty(m, np.bool_)
        K.front_columns(
            a_cls, a_t, srv, row, start, res.status, self._service_ns, self._timeout, self._cat.cacheable,
            self._dev_kind, self._cache_rows, self._use_cache_rows, self.cache_enabled, _ESME, DSP_SERVED,
            dsp_done, deadline, cacheable,
        )  # fmt: skip
        dev_done = np.empty(len(idx), np.int64)
        dev_code = np.empty(len(idx), np.uint8)
        K.device_leg(
            a_cls,
            a_fault,
            dsp_done,
            a_lat,
            deadline,
            self.future_dated_class,
            _CODES,
            dev_done,
            dev_code,
        )
        return _Front(
            t=t,
            idx=idx,
            cls=a_cls,
            srv=srv,
            dev=dev,
            start=start,
            dsp_done=dsp_done,
            deadline=deadline,
            cacheable=cacheable,
            dev_done=dev_done,
            dev_code=dev_code,
            period_start=a_ps,
            period_end=a_pe,
            row=row,
            fault=a_fault,
            device_latency=a_lat,
            code=code,
            outcome=outcome,
            t_done=t_done,
            wait=wait,
            backlog=backlog,
            dsp_status=res.status,
            chunk=chunk,
        )

    def finish(self, f: _Front) -> RequestResult:
        """The readings cache and the final outcomes of a chunk started by :meth:`front`."""
        n = len(f.t)
        hit = np.zeros(len(f.idx), np.bool_)
        if f.cacheable.any():
            ci = np.flatnonzero(f.cacheable)
            dc = f.dev_code[ci]
            ok = (dc == _CODES[0]) | (dc == _CODES[1])  # I0, I99: answered, so stored
            store_at = np.where(ok, f.dev_done[ci], -1)
            hit[ci] = self._read_through(
                f.start[ci], f.dev[ci], f.srv[ci], f.period_start[ci], f.period_end[ci], store_at
            )
        if self._credit:
            self._hits_save(f, hit)
        if self.comms is not None:
            self._comms(f, hit)
        latency = np.empty(n, np.int64)
        within = np.ones(n, np.bool_)
        K.finish_outcomes(
            f.idx,
            f.t,
            f.cls,
            self._cat.non_device[f.srv],
            hit,
            f.dsp_done,
            f.deadline,
            f.dev_done,
            f.dev_code,
            self.targets_ns,
            self.future_dated_class,
            _CODES,
            f.code,
            f.outcome,
            f.t_done,
            latency,
            within,
        )
        self._not_served(f, latency, within)
        return RequestResult(
            response_code=f.code,
            outcome=f.outcome,
            t_done_ns=f.t_done,
            latency_ns=latency,
            within_target=within,
            wait_ns=f.wait,
            backlog=f.backlog,
        )

    def _hits_save(self, f: _Front, hit: npt.NDArray[np.bool_]) -> None:
        """A hit holds the DSP for ``hit_service_share`` of its service time: answered that much
        sooner; the work saved is kept for :meth:`front` to credit two chunks on."""
        saved = 0.0
        if hit.any():
            k = f.cls[hit]
            f.dsp_done[hit] = f.start[hit] + self._hit_service_ns[k]
            saved = float(int(self._service_ns[k].sum()) - int(self._hit_service_ns[k].sum()))
        with self._credit_lock:
            self._credits[f.chunk] = saved
            self._finished = f.chunk + 1

    def _comms(self, f: _Front, hit: npt.NDArray[np.bool_]) -> None:
        """The comms leg of a chunk's device requests (not cache hits): their queue waits,
        then their device leg again from the time the comms resource takes them."""
        assert self.comms is not None
        known = f.row >= 0
        if hit.any():
            self.comms.count(self.comms.route[f.row[hit & known]], cache_hits=True)
        # refused and shed requests never reach the comms leg
        go = np.flatnonzero(~self._cat.non_device[f.srv] & ~hit & known & (f.dsp_status == DSP_SERVED))
        if not len(go):
            return
        res = self.comms.route[f.row[go]]
        wait = self.comms.process(res, f.dsp_done[go])
        fault = f.fault[go]
        done = np.empty(len(go), np.int64)
        code = np.empty(len(go), np.uint8)
        K.device_leg(
            f.cls[go], fault, f.dsp_done[go] + wait, f.device_latency[go], f.deadline[go],
            self.future_dated_class, _CODES, done, code,
        )  # fmt: skip
        # timed out by the queue: answered in time without the comms wait, late with it
        before = f.dev_code[go]
        late = ((before == _CODES[0]) | (before == _CODES[1])) & ((code == _CODES[3]) | (code == _CODES[4]))
        self.comms.count(res[late], timed_out=True)
        f.dev_done[go] = done
        f.dev_code[go] = code

    def _not_served(self, f: _Front, latency: npt.NDArray[np.int64], within: npt.NDArray[np.bool_]) -> None:
        """Refused requests: answered at once with the refuse code, not within target. Shed
        ones: the time-out code (E30 future-dated, else E21) at their deadline."""
        j = np.flatnonzero(f.dsp_status != DSP_SERVED)
        if not len(j):
            return
        i = f.idx[j]
        refused = f.dsp_status[j] == DSP_REFUSED
        fd = f.cls[j] == self.future_dated_class
        f.code[i] = np.where(refused, self._refuse_code, np.where(fd, _CODES[4], _CODES[3]))
        f.outcome[i] = np.where(refused, O_REFUSED, O_SHED)
        f.t_done[i] = np.where(refused, f.t[i], f.deadline[j])
        latency[i] = f.t_done[i] - f.t[i]
        within[i] = ~refused & (latency[i] <= self.targets_ns[f.cls[j]])

    def _read_through(
        self,
        t: npt.NDArray[np.int64],
        dev: npt.NDArray[np.uint64],
        srv: npt.NDArray[np.uint8],
        start: npt.NDArray[np.int64],
        end: npt.NDArray[np.int64],
        store_at: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.bool_]:
        """Cache lookups in time order; a miss with ``store_at >= 0`` is stored at that time."""

        def run(k: int, sel: slice | npt.NDArray[np.int64]) -> tuple[npt.NDArray[Any], ...]:
            return (self.caches[k].read_through(t[sel], dev[sel], srv[sel], start[sel], end[sel], store_at[sel]).hit,)

        return _by_shard(dev, self.shards, run)[0]

    def advance(self, t_ns: int) -> None:
        """Move every cache shard's time on to ``t_ns`` (due stores applied, expired entries
        dropped) with no request; later requests must not be earlier. For an idle server."""
        for c in self.caches:
            c.advance(t_ns)

    def process_alerts(
        self, t: npt.NDArray[np.int64], device: npt.NDArray[np.uint64], code: npt.NDArray[np.uint16]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
        """Alert Storm Protection for a time-ordered chunk: action, throttled count, sequence id."""

        def run(k: int, sel: slice | npt.NDArray[np.int64]) -> tuple[npt.NDArray[Any], ...]:
            out = self.throttles[k].process(t[sel], device[sel], code[sel])
            return out.action, out.throttled_count, out.sequence_id

        action, count, seq = _by_shard(device, self.shards, run)
        return action, count, seq

    def window_reports(self, now: int) -> AlertRows | None:
        """Alert Storm Protection's reports at window close due by ``now`` (``report_at_close``;
        ``None`` without it, or with none due) as alert rows (action ``reported``), in (time,
        device, alert code) order. Later alerts must not be before ``now``; call it after each
        chunk of alerts (``now`` its end) and at the end of a run."""
        if not self.throttle_policy.report_at_close:
            return None
        r = ThrottleReports.concat([th.take_reports(now) for th in self.throttles])
        n = len(r)
        if not n:
            return None
        return AlertRows(
            t_ns=r.t_ns, device=r.device, alert_code=r.alert_code, action=np.full(n, REPORTED, np.uint8),
            throttled_count=r.throttled_count, sequence_id=r.sequence_id, storm=np.zeros(n, np.bool_),
        )  # fmt: skip

    def throttle_stats(self) -> ThrottleStats:
        return ThrottleStats.merge_all(th.stats() for th in self.throttles)

    def throttle_summary(self) -> dict[str, object]:
        st = self.throttle_stats().to_dict()
        return {**st, "config": self.throttle_policy.to_dict()}

    def comms_stats(self) -> CommsStats | None:
        """The comms leg's :class:`~dccsim.core.comms.CommsStats`, ``None`` without one."""
        return None if self.comms is None else self.comms.stats()

    def cache_stats(self) -> CacheStats:
        return CacheStats.merge_all(c.stats() for c in self.caches)
