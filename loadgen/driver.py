"""The virtual-time replay driver: a scenario's day, chunk by chunk, through the pipeline.

The driver only moves data: it slices the workload into time-ordered chunks, assigns
RequestID counters, draws each request's WAN/device latency and fault from the population's
profiles, merges in retries of failed MHHS reads, runs the pipeline, and hands every chunk's
rows (:class:`~dccsim.core.records.RequestRows`, :class:`~dccsim.core.records.AlertRows`) to a
:class:`~dccsim.core.records.LogSink` it is given (so ``loadgen`` never imports ``bench``).

Future-dated commands (CR1233): once a chunk's outcomes are known, each command the device
acknowledged (``I99``) draws the Responses it sends when it runs
(:func:`~dccsim.loadgen.workload.future_dated_responses`, from a generator seeded by ``(seed,
10, chunk)``). They wait in a buffer and go to the sink's ``audit`` (the service audit trail,
:class:`~dccsim.core.records.AuditRows`) on the thread that logs requests, once an hour of
simulated time: with the requests of the first chunk ``k`` that ends past a whole hour ``H``,
those due before ``H``, ordered by (time, seq, instruction) (no later command can send one
earlier: a response comes after its command's scheduled time, which is past chunk ``k``'s end,
and future-dated commands are never retried). Never through Alert Storm Protection. At the end,
those due before the run's end; the rest are not logged, and their commands count as
incomplete.

Randomness comes from generators seeded by ``(seed, purpose, chunk)``, so a scenario, scale
and seed give the same columns whatever the shard count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from dccsim.core.columns import RequestBatch
from dccsim.core.pipeline import O_FAILED, O_REFUSED, O_SHED, Pipeline
from dccsim.core.records import INVALID_KINDS, RESPONSE_CODES, AlertRows, AuditRows, LogSink
from dccsim.core.validation import assign_counters, dense_originators

from . import _kernels as K
from .population import CONTACT_OK, Population, draw_faults
from .scenario import Scenario
from .workload import CLS, DAY, NS, AlertChunk, DayWorkload, RequestChunk, future_dated_responses

__all__ = ["VirtualTimeDriver", "RunTotals", "StageTimes", "STAGES", "draw_device_reference"]

_REPLAY = INVALID_KINDS.index("replay")
_I0 = np.uint8(RESPONSE_CODES.index("I0"))
_I99 = np.uint8(RESPONSE_CODES.index("I99"))
_HOUR = 3600 * NS


def draw_device_reference(
    scenario: Scenario, pop: Population, rng: np.random.Generator, device: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """The definition of the driver's device draws, whole-array NumPy: WAN + device latency
    (lognormal by SMETS generation: a normal draw per request) and fault (a uniform draw per
    request, :func:`~dccsim.loadgen.population.draw_faults`); an unknown device is SMETS2 in
    contact."""
    n = len(device)
    idx = (device - pop.ids[0]).astype(np.int64)
    known = (idx >= 0) & (idx < len(pop))
    at = np.where(known, idx, 0)
    gen = (pop.smets1[at] & known).view(np.uint8)  # 0 SMETS2, 1 SMETS1
    p2, p1 = scenario.population.smets2, scenario.population.smets1
    mu = np.array([math.log(p2.median_s), math.log(p1.median_s)])[gen]
    sigma = np.array([p2.sigma, p1.sigma])[gen]
    latency = (np.exp(mu + sigma * rng.standard_normal(n)) * NS).astype(np.int64)
    u = rng.random(n)
    e20 = np.array([p2.e20_share, p1.e20_share])[gen]
    e21 = np.array([p2.e21_share, p1.e21_share])[gen]
    flaky_p = np.array([p2.flaky_failure_prob, p1.flaky_failure_prob])[gen]
    contact = np.where(known, pop.contact[at], CONTACT_OK)  # an unknown device: in contact (rejected anyway)
    return latency, draw_faults(contact, u, e20, e21, flaky_p)


def _take_audit(rows: AuditRows, index: npt.ArrayLike) -> AuditRows:
    return AuditRows(**{k: v[index] for k, v in rows.columns().items()})


def _no_audit() -> AuditRows:
    return AuditRows(**{c.name: np.zeros(0, c.dtype) for c in AuditRows.COLUMNS})


@dataclass
class RunTotals:
    requests: int = 0
    alerts: int = 0
    retries: int = 0
    chunks: int = 0
    #: future-dated responses logged in the audit trail, and those due after the run's end
    future_dated_responses: int = 0
    future_dated_after_end: int = 0


#: the stages of a run whose time is measured, in the order of the data flow
STAGES = {
    "build": "the population and the first day's workload, before the first chunk",
    "generate": "each chunk's requests sliced from the day, device latencies and faults drawn",
    "validate_dsp": "RequestID counters, validation and access control, the DSP queue, the device leg",
    "cache_outcomes": "the readings cache, the comms leg, final outcomes, log rows, retries",
    "throttle": "the day's alerts sliced and run through Alert Storm Protection",
    "log": "the log sink: histograms, counts, Arrow batches written on the logs' threads (compressed in Arrow's pool)",
}


class StageTimes:
    """Wall time, CPU time and rows of each stage of a run (:data:`STAGES`), summed over its chunks.

    The stages run on threads of their own, side by side, so their times add up to more than
    the run's wall time; the longest is the one the others wait for. A stage's wall time also
    holds the time its thread waited for a core the other stages held; its CPU time (the
    thread's own, ``time.thread_time_ns``) does not, so CPU per row is the stage's cost per
    event however busy the machine was. Measured with the process's performance counter and
    thread CPU clock (a measurement of the simulator, not simulated time); a few additions a
    chunk, under a lock (the log is added to from two threads).
    """

    def __init__(
        self,
        clock: Callable[[], int] = time.perf_counter_ns,
        cpu_clock: Callable[[], int] = time.thread_time_ns,
    ) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._lock = threading.Lock()
        self.ns = dict.fromkeys(STAGES, 0)
        self.cpu_ns = dict.fromkeys(STAGES, 0)
        self.rows = dict.fromkeys(STAGES, 0)

    def mark(self) -> tuple[int, int]:
        """Now, on both clocks: give it to :meth:`since` on the same thread."""
        return self._clock(), self._cpu_clock()

    def since(self, start: tuple[int, int]) -> tuple[int, int]:
        """Wall and CPU nanoseconds since a :meth:`mark` of this thread."""
        return self._clock() - start[0], self._cpu_clock() - start[1]

    @contextmanager
    def timed(self, stage: str, rows: int = 0) -> Iterator[None]:
        start = self.mark()
        try:
            yield
        finally:
            self.add(stage, *self.since(start), rows=rows)

    def add(self, stage: str, ns: int, cpu_ns: int = 0, *, rows: int = 0) -> None:
        with self._lock:
            self.ns[stage] += ns
            self.cpu_ns[stage] += cpu_ns
            self.rows[stage] += rows

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        """``{stage: {"seconds", "cpu_seconds", "rows"}}`` for the stages that ran."""
        return {
            k: {"seconds": self.ns[k] / 1e9, "cpu_seconds": self.cpu_ns[k] / 1e9, "rows": self.rows[k]}
            for k in STAGES
            if self.ns[k]
        }


@dataclass
class VirtualTimeDriver:
    """Runs one scenario day through a pipeline into a sink.

    The pieces are built by the composition root (:func:`dccsim.bench.compose.build_driver`)
    and handed in; the driver builds nothing itself.
    """

    scenario: Scenario
    population: Population
    workload: DayWorkload
    pipeline: Pipeline
    totals: RunTotals = field(default_factory=RunTotals)
    stages: StageTimes = field(default_factory=StageTimes)

    def __post_init__(self) -> None:
        s = self.scenario
        self._last_counter: dict[int, int] = {}
        self._pending = RequestChunk.empty()
        self._seq = 0
        # the run's days, back to back: the end of the last one; each day's workload is drawn
        # when first needed (day 0 is the one handed in) and dropped once its last alert is past
        self._day_end = s.day_start_ns + s.days * DAY
        self._days: dict[int, DayWorkload] = {0: self.workload}
        self._days_lock = threading.Lock()
        self._out: ThreadPoolExecutor | None = None
        self._sink_job: Future[None] | None = None
        self._back: ThreadPoolExecutor | None = None
        self._back_job: Future[None] | None = None
        self._back_k = -1  # the chunk the back job is finishing
        self._pending_lock = threading.Lock()
        # future-dated responses drawn but not yet logged: those drawn since the last hour's
        # flush, and those not yet due then; only the "finish" worker touches them (chunk by
        # chunk, in order), then run() once it is joined
        self._fd_new: list[AuditRows] = []
        self._fd_pending = _no_audit()
        self._fd_flushed_ns = s.day_start_ns  # every response before it is logged
        p2, p1 = s.population.smets2, s.population.smets1
        #: the device leg's parameters by generation (SMETS2, SMETS1), in :func:`K.device_draws`' order
        self._leg = (
            math.log(p2.median_s), math.log(p1.median_s), p2.sigma, p1.sigma, p2.e20_share, p1.e20_share,
            p2.e21_share, p1.e21_share, p2.flaky_failure_prob, p1.flaky_failure_prob,
        )  # fmt: skip

    def _more_retries(self) -> bool:
        """After the day: are retries still pending (once the last chunk is finished)?"""
        self._join_back()
        return len(self._pending) > 0

    def _join_back(self) -> None:
        """Wait for the chunk still being finished (and surface its error, if any)."""
        if self._back_job is not None:
            self._back_job.result()
            self._back_job = None

    def _drain(self) -> None:
        """Wait for the chunk the sink is still taking (and surface its error, if any)."""
        if self._sink_job is not None:
            self._sink_job.result()
            self._sink_job = None

    def run(self, sink: LogSink) -> RunTotals:
        s = self.scenario
        assert self.workload is not None
        chunk_ns = int(s.chunk_s * NS)
        day0 = s.day_start_ns
        day_end = self._day_end
        k = 0
        t0 = day0
        # Threads, each taking its chunks in order (the kernels release the GIL): the main one
        # validates and queues chunk k at the DSP; "finish" does chunk k-1's cache, outcomes
        # and retries; "alerts" throttles chunk k's alerts (they never depend on requests);
        # "generate" draws chunk k+1; "sink" logs and counts. One chunk in flight per worker
        # keeps the logs in order, byte for byte, and memory bounded.
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts") as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate") as gen,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink") as out,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish") as back,
        ):
            self._out = out
            self._back = back
            upcoming = gen.submit(self._scheduled, k, t0, t0 + chunk_ns)
            while t0 < day_end or self._more_retries():
                t1 = t0 + chunk_ns
                alerts = pool.submit(self._alert_chunk, t0, t1, sink)
                req = upcoming.result()
                upcoming = gen.submit(self._scheduled, k + 1, t1, t1 + chunk_ns)
                self._chunk(k, req, t1, sink)
                alerts.result()
                sink.progress(min(t1, day_end), day_end)
                k += 1
                t0 = t1
            self._join_back()
            self._drain()
            # the responses due before the run's end not yet logged (chunks at the end without
            # requests flushed none); the rest would come after the end
            due = self._fd_due(t0, final=True)
            if len(due):
                self._log_audit(sink, due)
            self.totals.future_dated_after_end = len(self._fd_pending)
        self.totals.chunks = k
        return self.totals

    # ------------------------------------------------------------------ one chunk
    def _scheduled(self, k: int, t0: int, t1: int) -> RequestChunk:
        """The workload's requests of chunk ``k`` (none after the day), with device draws."""
        start = self.stages.mark()
        req = self._scheduled_requests(k, t0, t1)
        self.stages.add("generate", *self.stages.since(start), rows=len(req))
        return req

    def _scheduled_requests(self, k: int, t0: int, t1: int) -> RequestChunk:
        assert self.workload is not None
        if t0 >= self._day_end:
            return RequestChunk.empty()
        first, last = self._day_of(t0), self._day_of(min(t1, self._day_end) - 1)
        if first == last:
            req = self._day(first).requests(k, t0, t1)
        else:  # a chunk across midnight: the days' times do not overlap, so the parts stay in order
            req = RequestChunk.concat([self._day(d).requests(k, t0, t1) for d in range(first, last + 1)])
        req.latency_ns, req.fault = self._draw_device(np.random.default_rng([self.scenario.seed, 5, k]), req)
        return req

    def _chunk(self, k: int, req: RequestChunk, t1: int, sink: LogSink) -> None:
        assert self.pipeline is not None
        # Retries of chunk k-1 (which may still be being finished) fall due at least
        # retry_delay_s >= 2 chunk_s after that chunk's start, so none is due in this chunk:
        # taking the due ones now is exact whether or not they have been queued yet. An
        # older chunk still in flight (chunk k-1 had no requests) must finish first.
        if self._back_job is not None and self._back_k < k - 1:
            self._join_back()
        with self._pending_lock:
            due = self._pending.t_scheduled_ns < t1
            if due.any():
                merged = RequestChunk.concat([req, self._pending.take(due)])
                req = merged.take(np.argsort(merged.t_scheduled_ns, kind="stable"))
                self._pending = self._pending.take(~due)
        if len(req):
            self._requests(k, req, t1, sink)

    # ------------------------------------------------------------------ days
    def _day_of(self, t: int) -> int:
        return (t - self.scenario.day_start_ns) // DAY

    def _day(self, d: int) -> DayWorkload:
        """Day ``d``'s workload, drawn on first use (by whichever worker thread needs it first)."""
        with self._days_lock:
            if d not in self._days:
                self._days[d] = DayWorkload(self.scenario, self.population, day=d)
            return self._days[d]

    def _alert_days(self, t0: int, t1: int) -> list[DayWorkload]:
        """The workloads with alerts in ``[t0, t1)``: the days begun by ``t1`` whose last alert
        is not yet past (a day's future-dated alerts run past its midnight); older ones are
        dropped (the alerts worker takes its chunks in time order)."""
        begun = min(self._day_of(t1 - 1), self.scenario.days - 1)
        self._day(begun)  # a chunk is at most an hour: every day begins in some chunk, and is kept while newest
        with self._days_lock:
            live = sorted(self._days.items())
            for d, w in live:
                if w.end_ns <= t0 and d < begun:
                    del self._days[d]
            return [w for d, w in live if w.end_ns > t0 and d <= begun]

    def _alert_chunk(self, t0: int, t1: int, sink: LogSink) -> None:
        assert self.workload is not None
        start = self.stages.mark()
        days = self._alert_days(t0, t1) if self.scenario.days > 1 else [self.workload]
        if len(days) == 1:
            alerts = days[0].alerts(t0, t1)
        else:  # the days' alerts merged in time order (ties: the earlier day first)
            alerts = AlertChunk.concat([w.alerts(t0, t1) for w in days])
        if len(alerts):
            self._alerts(alerts, sink, t1)
        else:
            self._reports(sink, t1)
        self.stages.add("throttle", *self.stages.since(start), rows=len(alerts))

    def _reports(self, sink: LogSink, t1: int) -> None:
        """Alert Storm Protection's reports at window close due by ``t1`` (throttle.report_at_close)."""
        assert self.pipeline is not None
        reports = self.pipeline.window_reports(t1)
        if reports is not None:
            sink.alerts(reports)

    def _counters(
        self, req: RequestChunk, originators: tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]] | None = None
    ) -> npt.NDArray[np.uint64]:
        """RequestID counters: strictly increasing per originator; a replay repeats the last.

        Injected replays (``invalid == replay``) take the counter of the request before them;
        one with nothing before it becomes an ordinary request (its label is cleared).
        """
        replay = req.invalid == _REPLAY
        counter, used = assign_counters(req.originator, replay, self._last_counter, originators)
        req.invalid[replay & ~used] = 0
        return counter

    def _draw_device(
        self, rng: np.random.Generator, req: RequestChunk
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        """WAN + device latency (lognormal by SMETS generation) and fault of each request.

        The draws (normal, then uniform) as :func:`draw_device_reference`; the per-row work in
        one pass of a kernel, the exponential in NumPy (so the latencies are its, to the bit).
        """
        assert self.population is not None
        pop = self.population
        n = len(req)
        z = rng.standard_normal(n)
        u = rng.random(n)
        x = np.empty(n, np.float64)
        fault = np.empty(n, np.uint8)
        base = pop.ids[0] if len(pop) else np.uint64(0)
        K.device_draws(req.device, base, pop.smets1, pop.contact, z, u, *self._leg, x, fault)
        np.exp(x, out=x)
        x *= NS
        return x.astype(np.int64), fault

    def _requests(self, k: int, req: RequestChunk, t1: int, sink: LogSink) -> None:
        assert self.pipeline is not None
        start = self.stages.mark()
        originators = dense_originators(req.originator)  # for the counters and validation: found once
        counter = self._counters(req, originators)
        batch = RequestBatch(
            device=req.device,
            originator=req.originator,
            counter=counter,
            srv=req.srv,
            role=req.role,
            command_variant=req.command_variant,
            period_start_ns=req.period_start_ns,
            period_end_ns=req.period_end_ns,
            t_scheduled_ns=req.t_scheduled_ns,
            execution_ns=req.execution_ns,
        )
        front = self.pipeline.front(batch, req.cls, req.latency_ns, req.fault, originators)
        self.stages.add("validate_dsp", *self.stages.since(start), rows=len(req))
        # the cache, outcomes, sink and retries of this chunk run one chunk behind, beside the
        # next chunk's validation and DSP queue (each half keeps its own state, in order)
        self._join_back()
        if self._back is not None:
            self._back_k = k
            self._back_job = self._back.submit(self._finish_chunk, k, req, counter, front, t1, sink)
        else:
            self._finish_chunk(k, req, counter, front, t1, sink)

    def _finish_chunk(
        self, k: int, req: RequestChunk, counter: npt.NDArray[np.uint64], front: Any, t1: int, sink: LogSink
    ) -> None:
        assert self.pipeline is not None
        start = self.stages.mark()
        res = self.pipeline.finish(front)
        n = len(req)
        seq = np.arange(self._seq, self._seq + n, dtype=np.uint64)
        self._seq += n
        self.totals.requests += n
        rows = res.rows(
            req, seq=seq, counter=counter, request_class=req.cls, attempt=req.attempt, invalid=req.invalid
        )
        self._future_dated(k, rows, req.execution_ns)
        audit = self._fd_due(t1)
        # the sink (log batches, histograms, counts) takes the chunk on its own thread while
        # the next chunk is simulated; one chunk in flight keeps the order and bounds memory
        mid = self.stages.since(start)
        self._drain()
        drained = self.stages.mark()
        if self._out is not None:
            self._sink_job = self._out.submit(self._log_requests, sink, rows, audit)
        else:
            self._log_requests(sink, rows, audit)
        # retries of failed MHHS reads: device failures and time-outs, and work the DSP refused or shed
        m = self.scenario.mhhs
        again = (
            ((res.outcome == O_FAILED) | (res.outcome == O_REFUSED) | (res.outcome == O_SHED))
            & (req.cls == CLS["mhhs_read"])
            & (req.attempt < m.max_retries)
            & (req.invalid == 0)
        )
        if again.any():
            r = req.take(again)
            r.t_scheduled_ns = res.t_done_ns[again] + int(m.retry_delay_s * NS)
            r.attempt = r.attempt + np.uint8(1)
            # a retry meets the device afresh: drawn when the failure is known
            r.latency_ns, r.fault = self._draw_device(np.random.default_rng([self.scenario.seed, 9, k]), r)
            self.totals.retries += len(r)
            with self._pending_lock:
                merged = RequestChunk.concat([self._pending, r])
                self._pending = merged.take(np.argsort(merged.t_scheduled_ns, kind="stable"))
        # the wait for the sink's previous chunk is the log's time, not this stage's
        rest = self.stages.since(drained)
        self.stages.add("cache_outcomes", mid[0] + rest[0], mid[1] + rest[1], rows=n)

    def _log_requests(self, sink: LogSink, rows: Any, audit: AuditRows) -> None:
        with self.stages.timed("log", len(rows.seq)):
            sink.requests(rows)
        if len(audit):
            self._log_audit(sink, audit)

    def _log_audit(self, sink: LogSink, audit: AuditRows) -> None:
        with self.stages.timed("log", len(audit)):
            sink.audit(audit)
        self.totals.future_dated_responses += len(audit)

    # ------------------------------------------------------------------ future-dated responses
    def _future_dated(self, k: int, rows: Any, execution_ns: npt.NDArray[np.int64]) -> None:
        """Draw the responses of chunk ``k``'s future-dated commands (all of them, so the draws
        do not depend on outcomes) and keep those of the delivered ones (acknowledged I99)."""
        fd = np.flatnonzero(rows.request_class == CLS["future_dated"])
        if not len(fd):
            return
        f = self.scenario.future_dated
        r = future_dated_responses(
            np.random.default_rng([self.scenario.seed, 10, k]), execution_ns[fd], rows.t_done_ns[fd],
            f.instructions, f.out_of_order_share, f.not_done_share,
        )  # fmt: skip
        keep = rows.response_code[fd][r.command] == _I99
        if not keep.any():
            return
        j = fd[r.command[keep]]
        drawn = AuditRows(
            seq=rows.seq[j],
            t_ns=r.t_ns[keep],
            device=rows.device[j],
            originator=rows.originator[j],
            counter=rows.counter[j],
            srv=rows.srv[j],
            execution_ns=execution_ns[j],
            response_code=np.full(len(j), _I0, np.uint8),
            alert_code=r.alert_code[keep],
            instruction=r.instruction[keep],
            total_instructions=r.total_instructions[keep],
            received=r.received[keep],
            out_of_sequence=r.out_of_sequence[keep],
        )
        self._fd_new.append(drawn)

    def _fd_due(self, t1: int, final: bool = False) -> AuditRows:
        """The pending responses due before the last whole hour (of the run) before ``t1``, or
        before ``t1`` itself when ``final``, by (time, seq, instruction); they leave the
        buffer. Once an hour of simulated time: one audit batch an hour, not one a chunk."""
        day0 = self.scenario.day_start_ns
        bound = t1 if final else day0 + (t1 - day0) // _HOUR * _HOUR
        if bound <= self._fd_flushed_ns and not final:
            return _no_audit()
        self._fd_flushed_ns = max(bound, self._fd_flushed_ns)
        merged = AuditRows.concat([self._fd_pending, *self._fd_new])
        self._fd_new = []
        due = merged.t_ns < bound
        self._fd_pending = _take_audit(merged, ~due)
        out = _take_audit(merged, due)
        return _take_audit(out, np.lexsort((out.instruction, out.seq, out.t_ns)))

    def _alerts(self, a: AlertChunk, sink: LogSink, t1: int) -> None:
        assert self.pipeline is not None
        action, count, seq_id = self.pipeline.process_alerts(a.t_ns, a.device, a.alert_code)
        self.totals.alerts += len(a)
        # with throttle.report_at_close, the reports due by the chunk's end, in time order among its alerts
        reports = self.pipeline.window_reports(t1)
        self._log_alerts(sink, a, action, count, seq_id, reports)

    def _log_alerts(
        self, sink: LogSink, a: AlertChunk, action: Any, count: Any, seq_id: Any, reports: AlertRows | None = None
    ) -> None:
        start = self.stages.mark()
        rows = AlertRows(
            t_ns=a.t_ns,
            device=a.device,
            alert_code=a.alert_code,
            action=action,
            throttled_count=count,
            sequence_id=seq_id,
            storm=a.storm,
        )
        if reports is not None:  # a report comes before the alerts at or after its time
            both = AlertRows.concat([reports, rows])
            order = np.argsort(both.t_ns, kind="stable")
            rows = AlertRows(**{name: col[order] for name, col in both})
        sink.alerts(rows)
        # logged on the alerts' thread: the log's time, taken back out of the throttle's
        ns, cpu_ns = self.stages.since(start)
        self.stages.add("log", ns, cpu_ns, rows=len(a))
        self.stages.add("throttle", -ns, -cpu_ns)
