"""The open-loop network load generator for the wall-clock server (``dccsim load``).

Every request has an **intended send time** from the load shape (a constant rate: request
``k`` is due ``k / rate`` seconds after the start). The sender wakes, sends every request that
is due as one compact ``R`` frame (see :mod:`dccsim.core.protocol`), frames at least a
millisecond apart (paced by a thread of its own), and never waits for answers,
so a slow server cannot slow the offered load (no coordinated omission): latency is measured
from the intended time, and the lag between intended and actual send is recorded. When the
socket's buffer is full the sender waits for it to drain; the lag shows it.

Requests are the scenario day's requests in time order, sent again and again; each gets a fresh
RequestID counter (``counter_base + k``, strictly increasing per originator). Rows are encoded
once, up front; a frame is a slice of that buffer with the counters written in.

Answers are counted per request: exactly one final answer (``F``), or refused (``B`` busy or
``E`` error for its whole batch); whatever is neither when the drain time-out ends is ``lost``,
and what the sender never got to send (the server closed the connection, or died) is
``never_sent``. The server answers every ``R`` frame at once with one ``A``, ``B`` or ``E``
frame, in the order the frames were sent, so each such reply settles the oldest batch still
waiting for one, even a reply that cannot name its batch (``E frame.length`` for a frame over
the server's limit that it skipped before reading its batch id).

Future-dated commands in the traffic (1.1.1 with an ExecutionDateTime) that the device
acknowledged later bring unsolicited Responses, one per instruction (CR1233: ``M`` frames, each
a MessagePack ``Response`` with ``future_dated`` set). They answer no batch: they are counted
(``future_dated_responses``) and never settle one; what comes after the client has closed is
the server's to count (``future_dated_dropped``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from dccsim.core.catalogue import catalogue
from dccsim.core.messages import BusyReply, ErrorReply, RequestRow, Response, RowAck, StatsReply, StatsRequest
from dccsim.core.protocol import (
    FINAL_RECORD,
    TAG_ACK,
    TAG_BUSY,
    TAG_CLOSE,
    TAG_ERROR,
    TAG_FINALS,
    TAG_JSON,
    TAG_MSGPACK,
    TAG_ROWS,
    frame,
    frame_head,
)
from dccsim.core.records import INVALID_KINDS, ROLE_UNKNOWN, ROLES, LogSink, RequestRows

from . import _kernels as K
from .workload import DayWorkload

__all__ = ["Traffic", "LoadResult", "OpenLoopClient", "run_open_loop", "traffic_from_workload"]

_REPLAY = INVALID_KINDS.index("replay")
_ack_dec = msgspec.msgpack.Decoder(RowAck)
_busy_dec = msgspec.msgpack.Decoder(BusyReply)
_err_dec = msgspec.msgpack.Decoder(ErrorReply)
_msg_dec = msgspec.msgpack.Decoder(StatsReply | BusyReply | ErrorReply | Response)
_msg_json_dec = msgspec.json.Decoder(StatsReply | BusyReply | ErrorReply | Response)
_enc = msgspec.msgpack.Encoder()


@dataclass
class Traffic:
    """The request mix to cycle through, as columns (one day of a scenario, in time order)."""

    device: npt.NDArray[np.uint64]
    originator: npt.NDArray[np.uint64]
    srv: npt.NDArray[np.uint8]
    role: npt.NDArray[np.uint8]
    command_variant: npt.NDArray[np.uint8]
    period_start_ns: npt.NDArray[np.int64]
    period_end_ns: npt.NDArray[np.int64]
    execution_ns: npt.NDArray[np.int64]
    cls: npt.NDArray[np.uint8]
    invalid: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.device)

    def encode(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """Every row as a RequestRow MessagePack array, counters as 8-byte placeholders.

        Returns the bytes of all rows back to back and the offset of each row (plus the end).
        """
        srvs = catalogue().srvs
        parts = []
        for o, d, v, s, r, ps, pe, x in zip(
            self.originator.tolist(),
            self.device.tolist(),
            self.command_variant.tolist(),
            self.srv.tolist(),
            self.role.tolist(),
            self.period_start_ns.tolist(),
            self.period_end_ns.tolist(),
            self.execution_ns.tolist(),
            strict=True,
        ):
            row = _enc.encode(
                RequestRow(
                    originator=o,
                    target=d,
                    counter=1 << 63,
                    command_variant=v,
                    srv=srvs[s],
                    role=ROLES[r] if r != ROLE_UNKNOWN else "",
                    period_start_ns=ps,
                    period_end_ns=pe,
                    execution_ns=x,
                )
            )
            # EUI-64s of real devices and users are > 2**32, so the counter sits at a fixed offset
            if row[K.COUNTER_OFFSET - 1] != 0xCF or row[1] != 0xCF or row[10] != 0xCF:
                raise ValueError(f"traffic row: originator {o:#x} / device {d:#x}: expected EUI-64s >= 2**32")
            parts.append(row)
        off = np.zeros(len(parts) + 1, np.int64)
        off[1:] = np.cumsum([len(p) for p in parts])
        return np.frombuffer(b"".join(parts), np.uint8), off


def traffic_from_workload(wl: DayWorkload) -> Traffic:
    """A scenario day's requests in time order (replayed counters become ordinary requests)."""
    day0 = wl.day0
    r = wl.requests(0, day0, day0 + 24 * 3600 * 1_000_000_000)
    invalid = np.where(r.invalid == _REPLAY, 0, r.invalid).astype(np.uint8)
    return Traffic(
        device=r.device,
        originator=r.originator,
        srv=r.srv,
        role=r.role,
        command_variant=r.command_variant,
        period_start_ns=r.period_start_ns,
        period_end_ns=r.period_end_ns,
        execution_ns=r.execution_ns,
        cls=r.cls,
        invalid=invalid,
    )


@dataclass
class LoadResult:
    """Per-request results of one open-loop run (index = request number)."""

    n: int
    start_ns: int
    intended_ns: npt.NDArray[np.int64]  # offsets from start
    sent_ns: npt.NDArray[np.int64]  # absolute clock, 0 = never sent
    ack_ns: npt.NDArray[np.int64]
    done_ns: npt.NDArray[np.int64]
    code: npt.NDArray[np.uint8]
    outcome: npt.NDArray[np.uint8]
    wait_ns: npt.NDArray[np.int64]
    backlog: npt.NDArray[np.int64]
    finals: npt.NDArray[np.uint8]
    refused: npt.NDArray[np.uint8]  # 0 no, 1 busy, 2 error
    errors: list[str] = field(default_factory=list)
    error_rows: dict[str, int] = field(default_factory=dict)  # rows refused by E, by the field it named
    close_reason: str | None = None
    stats: StatsReply | None = None
    end_ns: int = 0
    received: int = 0  # final answers received, duplicates included
    future_dated: int = 0  # future-dated responses received (unsolicited Responses, CR1233)

    @property
    def sent(self) -> int:
        return int((self.sent_ns != 0).sum())

    @property
    def answered(self) -> int:
        return int((self.finals > 0).sum())

    @property
    def duplicates(self) -> int:
        """Final answers beyond the first of a request (0 when every request got one at most)."""
        return self.received - self.answered

    @property
    def refused_count(self) -> int:
        return int((self.refused > 0).sum())

    @property
    def lost(self) -> int:
        return int(((self.sent_ns != 0) & (self.finals == 0) & (self.refused == 0)).sum())


def _pct(x: npt.NDArray[np.int64]) -> dict[str, float]:
    if not len(x):
        return {}
    p = (np.percentile(x, [50, 90, 99, 99.9]) / 1e9).tolist()
    return {"p50": p[0], "p90": p[1], "p99": p[2], "p999": p[3], "max": float(x.max()) / 1e9}


class OpenLoopClient(asyncio.Protocol):
    """Sends ``n`` requests at their intended times over one connection and records the answers."""

    def __init__(
        self,
        traffic: Traffic,
        n: int,
        intended_ns: npt.NDArray[np.int64],
        clock: Callable[[], int],
        counter_base: int = 1,
        max_rows: int = 4096,
    ):
        self.traffic = traffic
        self.blob, self.off = traffic.encode()
        self.max_row_bytes = int(np.diff(self.off).max()) if len(traffic) else 0
        self.out = np.empty(K.HEAD + 5 + min(n, max_rows) * self.max_row_bytes, np.uint8)
        self.n = n
        self.clock = clock
        self.counter_base = counter_base
        self.max_rows = max_rows
        self.res = LoadResult(
            n=n,
            start_ns=0,
            intended_ns=intended_ns,
            sent_ns=np.zeros(n, np.int64),
            ack_ns=np.zeros(n, np.int64),
            done_ns=np.zeros(n, np.int64),
            code=np.zeros(n, np.uint8),
            outcome=np.zeros(n, np.uint8),
            wait_ns=np.zeros(n, np.int64),
            backlog=np.zeros(n, np.int64),
            finals=np.zeros(n, np.uint8),
            refused=np.zeros(n, np.uint8),
        )
        self.buf = bytearray()
        self.settled = 0
        self.sent_rows = 0
        self.awaiting: deque[tuple[int, int]] = deque()  # batches (first, end) sent, not yet acked or refused
        self.done = asyncio.Event()
        self.closed = asyncio.Event()
        self._writable = threading.Event()  # the transport's flow control, for the sender thread
        self._writable.set()
        self._written = threading.Event()  # the loop has written the frame handed to it
        self.closed_flag = False
        self._halted = False
        self.stats_reply: asyncio.Future[StatsReply] | None = None
        self.transport: asyncio.Transport | None = None

    # -------------------------------------------------------------- frames out
    def rows_frame(self, a: int, b: int) -> bytes:
        """Requests ``a .. b-1`` as one R frame (batch id = ``a``)."""
        out = self.out
        need = K.HEAD + 5 + (b - a) * self.max_row_bytes
        if len(out) < need:
            out = self.out = np.empty(max(need, 2 * len(out)), np.uint8)
        end = int(K.fill_rows(self.blob, self.off, a, b, np.uint64(self.counter_base), out))
        out[:K.HEAD] = np.frombuffer(frame_head(TAG_ROWS, end - 5) + a.to_bytes(8, "big"), np.uint8)
        return out[:end].tobytes()

    async def send_all(self, lead_ns: int = 20_000_000, gap_ns: int = 1_000_000) -> None:
        """The open-loop sender: wake, send what is due as one frame, wait for the next send time.

        The next send time is the next request's intended time, but at least ``gap_ns`` after
        the previous frame, so a high rate becomes frames of many rows, not a frame per row
        (each frame costs the server a fixed amount). The pacing runs on a thread of its own
        that sleeps until each send time (the event loop's timer counts whole milliseconds, too
        coarse for a latency goal of a few): it builds the frame (a compiled kernel, without the
        GIL) and hands it to the loop, which stamps the send time and writes it. So a frame
        leaves within about the sleep's accuracy of its first request's intended time, plus the
        gap; the lag shows in ``send_lag_s`` and counts in the latency. Nothing polls: on a
        machine with few cores a spinning generator takes CPU from the server it measures.
        """
        loop = asyncio.get_running_loop()
        halt = threading.Event()
        self._halted = False
        if self.n:
            self.rows_frame(0, 1)  # load the frame kernel now, not in the first send
        self.res.start_ns = self.clock() + lead_ns
        job = loop.run_in_executor(None, self._pace, loop, halt, gap_ns)
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            halt.set()
            self._halted = True  # frames handed over but not yet written are dropped, unsent
            await job
            raise
        self._check_done()

    def _pace(self, loop: asyncio.AbstractEventLoop, halt: threading.Event, gap_ns: int) -> None:
        """The sender thread (see :meth:`send_all`)."""
        intended = self.res.intended_ns
        start = self.res.start_ns
        i = 0
        n = self.n
        last = -gap_ns
        while i < n and not halt.is_set() and not self.closed_flag:
            if not self._writable.wait(0.05):
                continue
            el = self.clock() - start
            wait = max(int(intended[i]), last + gap_ns) - el
            if wait > 0:
                time.sleep(wait / 1e9)
                continue
            j = min(int(np.searchsorted(intended, el, side="right")), i + self.max_rows)
            data = self.rows_frame(i, j)
            self._written.clear()
            loop.call_soon_threadsafe(self._write, i, j, data)
            # the gap counts from when the loop wrote the frame (a busy loop delays it)
            while not self._written.wait(0.05):
                if halt.is_set() or self.closed_flag:
                    return
            i = j
            last = int(self.res.sent_ns[i - 1]) - start

    def _write(self, i: int, j: int, data: bytes) -> None:
        """On the loop: stamp rows ``i .. j-1`` sent now and write their frame."""
        if self._halted or self.transport is None or self.closed.is_set():
            return
        self.res.sent_ns[i:j] = self.clock()
        self.awaiting.append((i, j))
        self.transport.write(data)
        self.sent_rows = j
        self._written.set()
        self._check_done()

    async def request_stats(self, timeout: float = 5.0) -> StatsReply | None:
        if self.transport is None or self.closed.is_set():
            return None
        self.stats_reply = asyncio.get_running_loop().create_future()
        self.transport.write(frame(TAG_MSGPACK, _enc.encode(StatsRequest())))
        try:
            return await asyncio.wait_for(self.stats_reply, timeout)
        except TimeoutError:
            return None

    # -------------------------------------------------------------- frames in
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.closed_flag = True
        self._writable.set()
        self.done.set()
        if self.stats_reply is not None and not self.stats_reply.done():
            self.stats_reply.cancel()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        off, end = 0, len(buf)
        while end - off >= 5:
            length = int.from_bytes(buf[off : off + 4], "big")
            if end - off < 4 + length:
                break
            tag = buf[off + 4]
            payload = bytes(buf[off + 5 : off + 4 + length])
            off += 4 + length
            self._frame(tag, payload)
        del buf[:off]
        self._check_done()

    def _frame(self, tag: int, payload: bytes) -> None:
        res = self.res
        now = self.clock()
        if tag == TAG_FINALS:
            f = np.frombuffer(payload, FINAL_RECORD)
            ids = f["id"].astype(np.intp)
            res.done_ns[ids] = now
            res.code[ids] = f["code"]
            res.outcome[ids] = f["outcome"]
            res.wait_ns[ids] = f["wait_ns"]
            res.backlog[ids] = f["backlog"]
            res.finals[ids] = 1  # answered; repeats are counted in ``received``
            res.received += len(ids)
            self.settled += len(ids)
        elif tag == TAG_ACK:
            a = _ack_dec.decode(payload)
            self._settle(a.batch_id)
            res.ack_ns[a.batch_id : a.batch_id + a.count] = now
        elif tag == TAG_BUSY:
            b = _busy_dec.decode(payload)
            first, end = self._settle(b.batch_id)
            res.refused[first:end] = 1
            self.settled += end - first
        elif tag == TAG_ERROR:
            e = _err_dec.decode(payload)
            res.errors.append(e.message)
            first, end = self._settle(e.batch_id)
            res.refused[first:end] = 2
            self.settled += end - first
            res.error_rows[e.field] = res.error_rows.get(e.field, 0) + end - first
        elif tag == TAG_CLOSE:
            res.close_reason = payload.decode("utf-8", "replace")
        elif tag in (TAG_MSGPACK, TAG_JSON):
            try:
                msg = (_msg_json_dec if tag == TAG_JSON else _msg_dec).decode(payload)
            except msgspec.MsgspecError as exc:
                res.errors.append(f"a message the client could not read: {exc}")
                return
            if isinstance(msg, Response) and msg.future_dated is not None:
                res.future_dated += 1  # a future-dated command's instruction ran: no batch's answer
            elif isinstance(msg, StatsReply):
                if self.stats_reply is not None and not self.stats_reply.done():
                    self.stats_reply.set_result(msg)
            else:
                res.errors.append(f"an unexpected {type(msg).__name__} message (rows are answered by A/B/E/F frames)")

    def _settle(self, batch_id: int | None) -> tuple[int, int]:
        """The batch an ``A``/``B``/``E`` reply answers: the oldest still waiting for one (the
        server answers R frames in order); ``(0, 0)`` when none waits (not an R frame's reply)."""
        if not self.awaiting:
            return 0, 0
        first, end = self.awaiting.popleft()
        if batch_id is not None and batch_id != first:  # never from dccsim serve; say so, settle the oldest
            self.res.errors.append(f"reply named batch {batch_id} where batch {first} was the oldest unanswered")
        return first, end

    def _check_done(self) -> None:
        if self.sent_rows == self.n and self.settled >= self.n:
            self.done.set()

    # -------------------------------------------------------------- results
    def summary(self) -> dict[str, Any]:
        """The wall-clock figures: rates, refusals, losses, send lag and latencies (seconds)."""
        res = self.res
        sent = res.sent_ns != 0
        ok = res.finals > 0
        intended_abs = res.start_ns + res.intended_ns
        span = max(int(res.sent_ns[sent].max() - res.start_ns) if sent.any() else 0, 1)
        done_span = max(int(res.done_ns[ok].max() - res.start_ns) if ok.any() else 0, 1)
        acked = res.ack_ns != 0
        return {
            "offered": res.n,
            "sent": int(sent.sum()),
            "never_sent": res.n - int(sent.sum()),
            "answered": int(ok.sum()),
            "duplicates": res.duplicates,
            "refused_busy": int((res.refused == 1).sum()),
            "refused_error": int((res.refused == 2).sum()),
            "refused_error_by_field": dict(sorted(res.error_rows.items())),
            "lost": res.lost,
            "future_dated_responses": res.future_dated,
            "errors": res.errors[:10],
            "close_reason": res.close_reason,
            "send_rate_per_s": round(int(sent.sum()) / (span / 1e9), 1),
            "answer_rate_per_s": round(int(ok.sum()) / (done_span / 1e9), 1),
            "send_lag_s": _pct(res.sent_ns[sent] - intended_abs[sent]),
            "ack_latency_s": _pct(res.ack_ns[acked] - intended_abs[acked]),
            "final_latency_s": _pct(res.done_ns[ok] - intended_abs[ok]),
        }

    def write_to(
        self, sink: LogSink, day0: int, targets_ns: npt.NDArray[np.int64], speed: float, chunk: int = 262_144
    ) -> None:
        """Answered requests as request-log rows (wall-clock ns, offset to ``day0``)."""
        res = self.res
        ok = np.flatnonzero(res.finals > 0)
        tr = self.traffic
        for a in range(0, len(ok), chunk):
            k = ok[a : a + chunk]
            day = k % len(tr)
            intended = res.start_ns + res.intended_ns[k]
            latency = res.done_ns[k] - intended
            cls = tr.cls[day]
            sink.requests(
                RequestRows(
                    seq=k.astype(np.uint64),
                    t_scheduled_ns=day0 + res.intended_ns[k],
                    t_done_ns=day0 + (res.done_ns[k] - res.start_ns),
                    device=tr.device[day],
                    srv=tr.srv[day],
                    role=tr.role[day],
                    command_variant=tr.command_variant[day],
                    outcome=res.outcome[k],
                    response_code=res.code[k],
                    latency_ns=latency,
                    within_target=latency * speed <= targets_ns[cls],
                    period_start_ns=tr.period_start_ns[day],
                    period_end_ns=tr.period_end_ns[day],
                    originator=tr.originator[day],
                    counter=np.uint64(self.counter_base) + k.astype(np.uint64),
                    request_class=cls,
                    attempt=np.zeros(len(k), np.uint8),
                    invalid=tr.invalid[day],
                    wait_ns=res.wait_ns[k],
                    backlog=res.backlog[k],
                )
            )


async def run_open_loop(
    host: str,
    port: int,
    traffic: Traffic,
    rate: float,
    duration_s: float,
    clock: Callable[[], int],
    counter_base: int = 1,
    drain_timeout_s: float = 10.0,
    stats: bool = True,
    stop: asyncio.Event | None = None,
) -> OpenLoopClient:
    """Offer ``rate`` requests/s for ``duration_s`` seconds; wait for the answers; return the client.

    ``stop`` (e.g. set on SIGINT) ends sending early; the answers to what was sent are still
    awaited for up to ``drain_timeout_s``.
    """
    n = max(1, int(rate * duration_s))
    intended = (np.arange(n, dtype=np.float64) * (1e9 / rate)).astype(np.int64)
    loop = asyncio.get_running_loop()
    client = OpenLoopClient(traffic, n, intended, clock, counter_base=counter_base)
    transport, _ = await asyncio.wait_for(loop.create_connection(lambda: client, host, port), 10.0)
    try:
        sender = asyncio.ensure_future(client.send_all())
        if stop is not None:
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({sender, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not sender.done():
                sender.cancel()
            stopper.cancel()
        try:
            await sender
        except asyncio.CancelledError:
            if stop is None or not stop.is_set():
                raise
            client.n = client.sent_rows  # the sender has stopped: what it sent is all there is
        client._check_done()
        try:
            await asyncio.wait_for(client.done.wait(), drain_timeout_s)
        except TimeoutError:
            pass
        client.res.end_ns = clock()
        if stats:
            client.res.stats = await client.request_stats()
    finally:
        transport.close()
    return client
