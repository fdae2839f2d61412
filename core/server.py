"""The wall-clock DCC core: an asyncio (uvloop) server in front of the same pipeline.

One TCP port speaks two protocols, told apart by the first bytes of a connection: DUIS XML
over HTTP/1.1 (a connection that starts with ``POST``/``GET``) and length-prefixed frames
(anything else). Requests from all connections are collected into **micro-batches** (whatever
arrived while the loop was busy, at most ``max_batch`` rows), turned into columns and run
through :meth:`~dccsim.core.pipeline.Pipeline.process`, exactly like a virtual-time chunk.

Frames
------
Every frame, both ways, is::

    length: uint32 big-endian (bytes that follow: tag + payload, 1 .. max_frame_bytes)
    tag:    1 byte
    payload

Client -> server tags:

``R`` compact request batch (the fast path)
    ``batch_id`` (uint64 big-endian) + a MessagePack array of
    :class:`~dccsim.core.messages.RequestRow` arrays. Row ``k`` of the batch is known by
    ``batch_id + k`` in the answers, so a client that numbers its requests ``0, 1, 2 ...`` and
    uses the first number of a batch as its id gets its own numbers back.
``M`` / ``J`` one message or an array of messages, MessagePack / JSON
    :class:`~dccsim.core.messages.ServiceRequest` (kind ``request``),
    :class:`~dccsim.core.messages.DeviceAlert` (``device_alert``, a device emulator feeding
    Alert Storm Protection), :class:`Subscribe` (``subscribe``: forward the alerts that pass
    the throttle to this connection, in this format) or :class:`StatsRequest` (``stats``).
    Answers come in the same format.

Server -> client tags:

``A`` :class:`RowAck` ``[batch_id, count]``: every row of the batch accepted, ``I99``.
``F`` final answers of rows: the payload is a whole number of fixed 26-byte records
    (:data:`FINAL_RECORD`, little-endian, no padding): ``id`` uint64, ``wait_ns`` int64 (DSP
    queue, virtual ns), ``backlog`` int64, ``code`` uint8 (index in ``RESPONSE_CODES``),
    ``outcome`` uint8 (index in ``OUTCOMES``). No MessagePack: the server sends slices of
    records it laid out once per micro-batch, the client reads them with one ``frombuffer``.
``B`` :class:`BusyReply` (MessagePack map): the whole batch was refused, nothing of it was
    processed; the client may send it again later.
``E`` :class:`ErrorReply` (MessagePack map): the frame was malformed (names the field, the
    value and what was expected); nothing of it was processed; the connection goes on.
``M`` / ``J`` for the full-message path: a ``Response`` ``I99`` for each request at receipt,
    then its final ``Response``; ``BusyReply`` / ``ErrorReply`` (kinds ``busy`` / ``error``,
    with ``request_ids``); ``DeviceAlert`` to subscribers; ``StatsReply``.
``X`` close: a UTF-8 reason, then the server closes the connection. Sent when the framing
    itself is broken (a zero length) or the connection limit is reached.

A frame longer than ``max_frame_bytes`` is skipped as it streams in and answered with an
``E`` frame; the connection goes on. "Busy" is a server-level reply, not a DUIS code: DUIS
has none, and a refused request never reached the DSP.

HTTP (DUIS XML, like the DCC's test tools)
------------------------------------------
``POST /api/v1/serviceS``, ``/api/v1/serviceT`` and ``/api/v1/serviceD`` take one DUIS XML
Service Request (``Content-Length`` required; keep-alive). The answer is synchronous: a DUIS
``Response`` with ``I99`` (200), ``400`` with the :class:`~dccsim.core.errors.MessageError`
text for a bad request, ``413`` for a body over ``max_frame_bytes`` (then close), ``503`` when
busy. The final response is kept (bounded, oldest dropped first) and polled with
``GET /api/v1/response/<RequestID>``: 200 with the DUIS XML, 404 while pending or unknown.
The three paths are treated alike (dccsim does not check signatures).

Time
----
The server never reads the wall clock itself: it is given ``clock`` (int64 ns, monotonic).
Virtual time, the pipeline's, is ``origin_ns + (clock() - start) * speed``: with ``speed``
1000 a 4 s device round trip of the scenario takes 4 ms of wall time, and DSP service times
and time-outs shrink alike (so the DSP's capacity grows by the same factor). A request's
virtual arrival time is when its frame was read. Final answers wait in a heap of
per-micro-batch runs sorted by due time, drained by a single loop timer (no task per request).
Event-loop timers count whole milliseconds, so the timer is set a millisecond early and the
last stretch is polled, once per loop turn: an answer goes out within a loop turn of its due
time, not up to a millisecond late (the loop stays busy while answers are that close).

Batching and writes
-------------------
Compact rows are decoded straight into one arena of columns as frames are read; a micro-batch
(processed once the loop has read what arrived, so its size follows the load) is one copy of
that arena's filled part. What a read produces (acknowledgements, errors) goes out in one
write per connection, and each drain of due answers in one ``F`` frame per connection.

Limits
------
``max_connections``; ``max_frame_bytes``; ``max_inbound`` (received, not yet processed) and
``max_pending`` (processed, final answer not yet due): a batch that does not fit is refused
whole with a busy reply. A client that does not read its answers stops being read from
(transport flow control at ``write_high_water`` bytes), so its buffer stays bounded. A client
that disconnects, even mid-frame, loses only its own answers (counted as ``orphaned``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec
import numpy as np
import numpy.typing as npt
from dccsim.throttle import THROTTLED

from . import _rows_kernel
from .columns import RequestBatch, _batch_length, _string_tables
from .duisxml import decode_request_xml, encode_response_xml
from .errors import MessageError
from .messages import DeviceAlert, Response, ServiceRequest, from_ns
from .pipeline import Pipeline
from .records import RESPONSE_CODES, AlertRows, LogSink, RequestRows
from .wire import decode_rows

__all__ = [
    "ServerConfig",
    "DccServer",
    "Subscribe",
    "StatsRequest",
    "StatsReply",
    "RowAck",
    "FINAL_RECORD",
    "BusyReply",
    "ErrorReply",
    "TAG_ROWS",
    "TAG_MSGPACK",
    "TAG_JSON",
    "TAG_ACK",
    "TAG_FINALS",
    "TAG_BUSY",
    "TAG_ERROR",
    "TAG_CLOSE",
    "frame",
    "SERVICE_PATHS",
]

TAG_ROWS, TAG_MSGPACK, TAG_JSON = b"R"[0], b"M"[0], b"J"[0]
TAG_ACK, TAG_FINALS, TAG_BUSY, TAG_ERROR, TAG_CLOSE = b"A"[0], b"F"[0], b"B"[0], b"E"[0], b"X"[0]
SERVICE_PATHS = (b"/api/v1/serviceS", b"/api/v1/serviceT", b"/api/v1/serviceD")
_RESULT_PATH = b"/api/v1/response/"
_HTTP_STARTS = (b"POST", b"GET ", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC")
_I99 = RESPONSE_CODES.index("I99")

# kinds of a pending row: who gets the final answer and how
K_ROW, K_MSGPACK, K_JSON, K_HTTP = 0, 1, 2, 3


# ---------------------------------------------------------------------------- control messages
class Subscribe(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="subscribe"):
    """Ask for the device alerts that pass Alert Storm Protection on this connection."""

    alerts: bool = True


class StatsRequest(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="stats"):
    """Ask for the server's counters, cache and throttle statistics."""


class StatsReply(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="stats_reply"):
    server: dict[str, int]
    cache: dict[str, Any]
    throttle: dict[str, Any]


class BusyReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind", tag="busy"):
    """A batch (``batch_id``, ``count`` rows) or messages (``request_ids``) refused unprocessed."""

    reason: str
    batch_id: int | None = None
    count: int = 0
    request_ids: list[str] = []


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind", tag="error"):
    """A malformed frame or message: nothing of it was processed."""

    message: str
    field: str = ""
    value: str = ""
    expected: str = ""
    code: str = "malformed"
    batch_id: int | None = None
    count: int = 0
    request_ids: list[str] = []


class RowAck(msgspec.Struct, frozen=True, array_like=True, gc=False):
    batch_id: int
    count: int


#: one final answer of an ``F`` frame: 26 bytes, little-endian, packed (see the module docstring)
FINAL_RECORD = np.dtype([("id", "<u8"), ("wait_ns", "<i8"), ("backlog", "<i8"), ("code", "u1"), ("outcome", "u1")])


Inbound = ServiceRequest | DeviceAlert | Subscribe | StatsRequest
_mp_in = msgspec.msgpack.Decoder(Inbound | list[Inbound])
_js_in = msgspec.json.Decoder(Inbound | list[Inbound])
_mp_enc = msgspec.msgpack.Encoder()
_js_enc = msgspec.json.Encoder()
_HDR = 5
_REC = FINAL_RECORD.itemsize
_SPIN_NS = 1_000_000  # answers due within this are waited for by polling the loop, not by a timer
_HOUSEKEEP_S = 0.01  # how often an idle server moves the cache's time on (see DccServer._housekeep)


def frame_head(tag: int, payload_len: int) -> bytes:
    """The first 5 bytes of a frame: 4-byte big-endian length of tag + payload, the tag byte."""
    return (payload_len + 1).to_bytes(4, "big") + bytes((tag,))


def frame(tag: int, payload: bytes) -> bytes:
    """One frame: :func:`frame_head`, then the payload."""
    return frame_head(tag, len(payload)) + payload


def _error_reply(exc: MessageError, **extra: Any) -> ErrorReply:
    value = exc.value if isinstance(exc.value, str) else repr(exc.value)
    return ErrorReply(
        message=str(exc), field=exc.field, value=value[:200], expected=exc.expected, code=exc.code, **extra
    )


def _decode_problem(exc: Exception, payload: bytes, fmt: int) -> MessageError:
    """A MessageError for a frame the decoder refused, naming the field where possible."""
    from . import wire

    try:
        if fmt == TAG_JSON:
            (wire.decode_json_batch if payload.lstrip()[:1] == b"[" else wire.decode_json)(payload)
        else:
            (
                wire.decode_msgpack_batch
                if payload[:1] and (payload[0] in (0xDC, 0xDD) or 0x90 <= payload[0] <= 0x9F)
                else wire.decode_msgpack
            )(payload)
    except MessageError as better:
        return better
    except Exception:  # noqa: BLE001 - fall back to the decoder's own words
        pass
    return MessageError("kind", str(exc)[:120], "a request, device_alert, subscribe or stats message")


# ---------------------------------------------------------------------------- configuration
class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits and time mapping of the server (see the module docstring)."""

    max_frame_bytes: int = 1 << 20
    max_connections: int = 256
    max_inbound: int = 200_000
    max_pending: int = 2_000_000
    max_batch: int = 16_384
    speed: float = 1000.0
    origin_ns: int = 0
    write_high_water: int = 8 << 20
    http_results: int = 100_000
    log_batch: int = 65_536

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_connections",
            "max_inbound",
            "max_pending",
            "max_batch",
            "write_high_water",
            "http_results",
            "log_batch",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise MessageError(f"server.{name}", v, "an integer >= 1", code="config")
        if not (self.speed > 0):
            raise MessageError("server.speed", self.speed, "a number > 0 (virtual ns per wall ns)", code="config")


class DeviceLeg(Protocol):
    def __call__(
        self, batch: RequestBatch, cls: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...


# ---------------------------------------------------------------------------- pending finals
class _Run:
    """Final answers of one micro-batch, sorted by due time; ``pos`` = next not yet sent.

    ``rec`` holds them as ``F`` records, ready to send: a due stretch of a run that goes to
    one connection is one slice of its bytes. ``conn`` is the connection of every row when
    the batch came from one (the usual case), else an array; ``kind`` is ``None`` when every
    row is a compact one, else an array (with ``t_done``, virtual, for the full messages).
    """

    __slots__ = ("due", "rec", "conn", "kind", "t_done", "pos")

    def __init__(
        self,
        due: npt.NDArray[np.int64],
        rec: npt.NDArray[Any],
        conn: int | npt.NDArray[np.int64],
        kind: npt.NDArray[np.uint8] | None,
        t_done: npt.NDArray[np.int64] | None,
    ):
        self.due, self.rec, self.conn, self.kind, self.t_done = due, rec, conn, kind, t_done
        self.pos = 0


class _Arena:
    """Columns of received rows, laid out as the compact decoder writes them (grown on demand).

    ``u64``: originator, device, counter; ``u8``: command variant, SRV, role; ``i64``:
    arrival time, period start, period end, execution time.
    """

    def __init__(self, cap: int):
        self.u64 = np.empty((3, cap), np.uint64)
        self.u8 = np.empty((3, cap), np.uint8)
        self.i64 = np.empty((4, cap), np.int64)

    def room_for(self, rows: int) -> _Arena:
        cap = self.u64.shape[1]
        if rows > cap:
            new = _Arena(max(rows, 2 * cap))
            new.u64[:, :cap], new.u8[:, :cap], new.i64[:, :cap] = self.u64, self.u8, self.i64
            self.u64, self.u8, self.i64 = new.u64, new.u8, new.i64
        return self

    def put(self, off: int, b: RequestBatch) -> None:
        end = off + len(b)
        self.u64[0, off:end], self.u64[1, off:end], self.u64[2, off:end] = b.originator, b.device, b.counter
        self.u8[0, off:end], self.u8[1, off:end], self.u8[2, off:end] = b.command_variant, b.srv, b.role
        self.i64[1, off:end], self.i64[2, off:end], self.i64[3, off:end] = (
            b.period_start_ns,
            b.period_end_ns,
            b.execution_ns,
        )

    def take(self, n: int) -> RequestBatch:
        """The first ``n`` rows as a batch of their own (copied: the arena is reused)."""
        return RequestBatch.from_parsed(self.u64[:, :n].copy(), self.u8[:, :n].copy(), self.i64[:, :n].copy())


@dataclass
class _Counters:
    connections: int = 0
    connections_refused: int = 0
    frames: int = 0
    requests: int = 0
    acked: int = 0
    finals: int = 0
    refused_busy: int = 0
    malformed: int = 0
    oversized: int = 0
    orphaned: int = 0
    batches: int = 0
    alerts_in: int = 0
    alerts_forwarded: int = 0
    http_requests: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------- the server
@dataclass
class DccServer:
    """The pipeline behind a TCP port. Create, then ``await start(host, port)``.

    Parameters
    ----------
    pipeline:
        The stage state (from ``build_pipeline``); this server is its only user.
    classify:
        Request class of each row of a batch (the capacity model's classes).
    device_leg:
        WAN/device latency (virtual ns) and fault of each row.
    clock:
        Monotonic int64 nanoseconds (``time.monotonic_ns``; a test may pass another).
    sink:
        Optional server-side log (request and alert rows, virtual time; ``progress`` is never
        called), requests handed over in batches of ``config.log_batch`` rows and flushed by
        :meth:`close`.
    """

    pipeline: Pipeline
    classify: Callable[[RequestBatch], npt.NDArray[np.uint8]]
    device_leg: DeviceLeg
    clock: Callable[[], int]
    config: ServerConfig = field(default_factory=ServerConfig)
    sink: LogSink | None = None

    def __post_init__(self) -> None:
        self.counters = _Counters()
        self._start = self.clock()
        self._conns: dict[int, _Conn] = {}
        self._conn_ids = itertools.count(1)
        # received rows wait as columns in one arena (the compact decoder writes there), with
        # (rows, connection, kind, first id) per frame; a micro-batch is a copy of the filled part
        self._in: list[tuple[int, int, int, int]] = []
        self._in_rows = 0
        self._arena = _Arena(4096)
        self.decode_rows(_mp_enc.encode([[1, 1, 1, 1, "4.8.1", ""]]))  # load the decoder for the arena's views now
        self._alerts_in: list[tuple[int, int, int, DeviceAlert]] = []
        self._objects: dict[int, tuple[ServiceRequest, int]] = {}
        self._obj_ids = itertools.count(1)
        self._heap: list[tuple[int, int, _Run]] = []
        self._heap_seq = itertools.count()
        self._pending_rows = 0
        self._timer: asyncio.TimerHandle | None = None
        self._housekeeper: asyncio.TimerHandle | None = None
        self._timer_due = 0
        self._polling = False
        self._tick_scheduled = False
        self._last_t = self.config.origin_ns
        self._http_results: OrderedDict[str, bytes] = OrderedDict()
        self._subscribers: set[int] = set()
        self._log: list[RequestRows] = []
        self._log_rows = 0
        self._seq = 0
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alert_counter = itertools.count(1)

    # -------------------------------------------------------------- lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the port (useful with ``port=0``)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: _Conn(self), host, port, backlog=1024)
        self._housekeeper = self._loop.call_later(_HOUSEKEEP_S, self._housekeep)
        return int(self._server.sockets[0].getsockname()[1])

    def _housekeep(self) -> None:
        """While no request waits, move the caches' time on to now: the stores that have come
        due are applied and expired entries dropped a little at a time, instead of all at
        once in the first batch after a pause (after a few idle seconds at a high ``speed``,
        that was the whole cache: tens of milliseconds on the request path)."""
        if not self._in:
            self.pipeline.advance(self.virtual_now())
        assert self._loop is not None
        self._housekeeper = self._loop.call_later(_HOUSEKEEP_S, self._housekeep)

    async def close(self) -> None:
        """Stop listening, answer what is due, close connections, flush the log."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._in:
            self._process()
        self._flush_due(final=False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            self._housekeeper = None
        for c in list(self._conns.values()):
            c.transport.close()
        self._flush_log()

    # -------------------------------------------------------------- time
    def virtual_now(self) -> int:
        t = self.config.origin_ns + int((self.clock() - self._start) * self.config.speed)
        self._last_t = max(self._last_t, t)
        return self._last_t

    def _wall_of(self, t_virtual: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self._start + ((t_virtual - self.config.origin_ns) / self.config.speed).astype(np.int64)

    # -------------------------------------------------------------- intake
    def room(self, n: int) -> str | None:
        """Why ``n`` more rows cannot be taken now, or ``None``."""
        cfg = self.config
        if self._in_rows + n > cfg.max_inbound:
            return f"inbound queue full ({self._in_rows} of {cfg.max_inbound} requests waiting)"
        if self._pending_rows + self._in_rows + n > cfg.max_pending:
            return f"pending answers full ({self._pending_rows} of {cfg.max_pending})"
        return None

    def decode_rows(self, payload: bytes) -> int:
        """Decode a compact row batch into the arena after the waiting rows; its row count.

        Nothing is queued yet (see :meth:`enqueue_decoded`). A batch the compact decoder does
        not accept raises the :class:`MessageError` of :meth:`RequestBatch.from_msgpack`.
        """
        buf = np.frombuffer(payload, np.uint8)
        n = _batch_length(buf)
        if n > 0:
            a = self._arena.room_for(self._in_rows + n)
            off = self._in_rows
            if (
                _rows_kernel.parse_rows(buf, *_string_tables(), a.u64[:, off:], a.u8[:, off:], a.i64[:, off:])[0]
                == _rows_kernel.OK
            ):
                return n
        # the compact decoder refused it (or it is empty): msgspec raises, naming the row and
        # field, or (valid MessagePack the compact decoder does not take, e.g. array16 rows)
        # decodes it; as RequestBatch.from_msgpack does, without running the kernel again
        batch = RequestBatch.from_rows(decode_rows(payload))
        if len(batch):
            self._arena.room_for(self._in_rows + len(batch)).put(self._in_rows, batch)
        return len(batch)

    def enqueue_decoded(self, n: int, conn: int, kind: int, cid0: int) -> None:
        """Queue the ``n`` rows just decoded by :meth:`decode_rows` (ids ``cid0 .. cid0+n-1``)."""
        off = self._in_rows
        self._arena.i64[0, off : off + n] = self.virtual_now()  # arrival time
        self._in.append((n, conn, kind, cid0))
        self._queued(n)

    def enqueue(self, batch: RequestBatch, conn: int, kind: int, cid0: int) -> None:
        """Queue the rows of ``batch`` (ids ``cid0 ..``)."""
        n = len(batch)
        self._arena.room_for(self._in_rows + n).put(self._in_rows, batch)
        self.enqueue_decoded(n, conn, kind, cid0)

    def _queued(self, n: int) -> None:
        self._in_rows += n
        self.counters.requests += n
        if self._in_rows >= self.config.max_batch:
            self._process()
        elif not self._tick_scheduled:
            self._tick_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._tick)

    def enqueue_object(self, req: ServiceRequest, row: RequestBatch, conn: int, kind: int) -> None:
        """A full-format request and its one-row batch (the caller's check converted it)."""
        key = next(self._obj_ids)
        self._objects[key] = (req, conn)
        self.enqueue(row, conn, kind, key)

    def enqueue_alert(self, alert: DeviceAlert, conn: int, fmt: int) -> None:
        self._alerts_in.append((self.virtual_now(), conn, fmt, alert))
        self.counters.alerts_in += 1
        if not self._tick_scheduled:
            self._tick_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._tick_scheduled = False
        self._process()

    # -------------------------------------------------------------- a micro-batch
    def _process(self) -> None:
        if self._alerts_in:
            self._process_alerts()
        if not self._in:
            return
        parts, n = self._in, self._in_rows
        self._in, self._in_rows = [], 0
        batch = self._arena.take(n)
        if len(parts) == 1:
            _, c0, k0, id0 = parts[0]
            cid = np.arange(id0, id0 + n, dtype=np.uint64)
            one_conn, all_rows = True, k0 == K_ROW
        else:
            c0 = parts[0][1]
            one_conn = all(p[1] == c0 for p in parts)
            all_rows = all(p[2] == K_ROW for p in parts)
            counts = np.array([p[0] for p in parts], np.int64)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            cid = np.repeat(np.array([p[3] for p in parts], np.uint64), counts) + (np.arange(n) - first).astype(
                np.uint64
            )
        cls = self.classify(batch)
        lat, fault = self.device_leg(batch, cls)
        res = self.pipeline.process(batch, cls, lat, fault)
        self.counters.batches += 1
        due = self._wall_of(res.t_done_ns)
        order = np.argsort(due, kind="stable")
        rec = np.empty(n, FINAL_RECORD)
        rec["id"], rec["wait_ns"], rec["backlog"] = cid[order], res.wait_ns[order], res.backlog[order]
        rec["code"], rec["outcome"] = res.response_code[order], res.outcome[order]
        conn: int | npt.NDArray[np.int64] = c0
        if not one_conn:
            conn = np.repeat(np.array([p[1] for p in parts], np.int64), counts)[order]
        kind = t_done = None
        if not all_rows:
            kind = (
                np.repeat(np.array([p[2] for p in parts], np.uint8), counts)[order]
                if len(parts) > 1
                else np.full(n, parts[0][2], np.uint8)
            )
            t_done = res.t_done_ns[order]
        run = _Run(due[order], rec, conn, kind, t_done)
        heapq.heappush(self._heap, (int(run.due[0]), next(self._heap_seq), run))
        self._pending_rows += n
        if self.sink is not None:
            self._log_requests(batch, cls, res)
        self._flush_due()

    def _log_requests(self, batch: RequestBatch, cls: npt.NDArray[np.uint8], res: Any) -> None:
        n = len(batch)
        seq = np.arange(self._seq, self._seq + n, dtype=np.uint64)
        self._seq += n
        zeros8 = np.zeros(n, np.uint8)
        self._log.append(
            RequestRows(
                seq=seq,
                t_scheduled_ns=batch.t_scheduled_ns.copy(),
                t_done_ns=res.t_done_ns,
                device=batch.device,
                srv=batch.srv,
                role=batch.role,
                command_variant=batch.command_variant,
                outcome=res.outcome,
                response_code=res.response_code,
                latency_ns=res.latency_ns,
                within_target=res.within_target,
                period_start_ns=batch.period_start_ns,
                period_end_ns=batch.period_end_ns,
                originator=batch.originator,
                counter=batch.counter,
                request_class=cls,
                attempt=zeros8,
                invalid=zeros8,
                wait_ns=res.wait_ns,
                backlog=res.backlog,
            )
        )
        self._log_rows += n
        if self._log_rows >= self.config.log_batch:
            self._flush_log()

    def _flush_log(self) -> None:
        if self.sink is None or not self._log:
            return
        parts, self._log, self._log_rows = self._log, [], 0
        self.sink.requests(RequestRows.concat(parts))

    def _process_alerts(self) -> None:
        items, self._alerts_in = self._alerts_in, []
        t = np.array([x[0] for x in items], np.int64)
        dev = np.array([int.from_bytes(bytes.fromhex(x[3].device.replace("-", "")), "big") for x in items], np.uint64)
        code = np.array([x[3].alert_code for x in items], np.uint16)
        action, count, seq = self.pipeline.process_alerts(t, dev, code)
        if self.sink is not None:
            z16 = np.zeros(len(items), np.uint16)
            self.sink.alerts(
                AlertRows(
                    t_ns=t,
                    device=dev,
                    alert_code=code,
                    action=action,
                    throttled_count=count,
                    sequence_id=seq,
                    storm=np.zeros(len(items), np.bool_),
                    instruction=z16,
                    total_instructions=z16,
                )
            )
        for i in np.flatnonzero(action != THROTTLED).tolist():
            a = items[i][3]
            c, s = int(count[i]), int(seq[i])
            out = msgspec.structs.replace(a, throttled_alert_count=c or None, throttled_alert_sequence_id=s or None)
            for sub in list(self._subscribers):
                conn = self._conns.get(sub)
                if conn is None:
                    self._subscribers.discard(sub)
                    continue
                conn.send_message(out)
                self.counters.alerts_forwarded += 1

    # -------------------------------------------------------------- finals
    def _flush_due(self, final: bool = False) -> None:
        now = self.clock()
        taken: list[tuple[_Run, int, int]] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, run = heapq.heappop(self._heap)
            j = int(np.searchsorted(run.due, now, side="right"))
            taken.append((run, run.pos, j))
            run.pos = j
            if j < len(run.due):
                heapq.heappush(self._heap, (int(run.due[j]), next(self._heap_seq), run))
        if taken:
            self._emit(taken)
        self._arm()

    def _arm(self) -> None:
        """Wake when the next final answer is due: a timer, then polling for the last stretch.

        Event-loop timers count whole milliseconds (uvloop), so a timer alone could send an
        answer up to a millisecond late. The timer is set ``_SPIN_NS`` early; from then on the
        loop checks once per turn (``call_soon``; reading and processing go on meanwhile).
        """
        if not self._heap or self._loop is None or self._polling:
            return
        due = self._heap[0][0]
        wait = due - self.clock()
        if wait <= _SPIN_NS:
            self._polling = True
            self._loop.call_soon(self._on_poll)
            return
        wake = due - _SPIN_NS
        if self._timer is not None:
            if self._timer_due <= wake:
                return
            self._timer.cancel()
        self._timer_due = wake
        self._timer = self._loop.call_later((wait - _SPIN_NS) / 1e9, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._flush_due()

    def _on_poll(self) -> None:
        self._polling = False
        self._flush_due()

    def _emit(self, taken: list[tuple[_Run, int, int]]) -> None:
        """Send the due stretches ``[a, b)`` of the runs: one ``F`` frame per connection."""
        out: dict[int, list[bytes]] = {}
        for run, a, b in taken:
            self._pending_rows -= b - a
            if run.kind is not None:
                is_row = run.kind[a:b] == K_ROW
                self._emit_objects(run, np.flatnonzero(~is_row) + a)
                rows = np.flatnonzero(is_row) + a
                if not len(rows):
                    continue
                if len(rows) < b - a:
                    self._emit_mixed(out, run, rows)
                    continue
            if isinstance(run.conn, int):
                out.setdefault(run.conn, []).append(run.rec[a:b].tobytes())
            else:
                self._emit_mixed(out, run, np.arange(a, b))
        for c, chunks in out.items():
            k = sum(len(x) for x in chunks) // _REC
            target = self._conns.get(c)
            if target is None:
                self.counters.orphaned += k
                continue
            self.counters.finals += k
            target.send(b"".join([frame_head(TAG_FINALS, k * _REC), *chunks]))

    def _emit_mixed(self, out: dict[int, list[bytes]], run: _Run, rows: npt.NDArray[np.intp]) -> None:
        """Compact rows of a run from several connections (or mixed with full messages)."""
        conn = np.broadcast_to(np.asarray(run.conn, np.int64), run.due.shape)[rows]
        for c in np.unique(conn).tolist():
            out.setdefault(c, []).append(run.rec[rows[conn == c]].tobytes())

    def _emit_objects(self, run: _Run, idx: npt.NDArray[np.intp]) -> None:
        """The final ``Response`` of each full message (MessagePack, JSON, HTTP) at ``idx``."""
        assert run.kind is not None and run.t_done is not None
        for i in idx.tolist():
            r = run.rec[i]
            req, c = self._objects.pop(int(r["id"]))
            resp = Response.for_request(req, RESPONSE_CODES[int(r["code"])], from_ns(int(run.t_done[i])))
            self.counters.finals += 1
            if run.kind[i] == K_HTTP:
                self._http_results[str(req.request_id)] = encode_response_xml(resp)
                while len(self._http_results) > self.config.http_results:
                    self._http_results.popitem(last=False)
                continue
            target = self._conns.get(c)
            if target is None:
                self.counters.orphaned += 1
            else:
                target.send_message(resp)

    # -------------------------------------------------------------- connections
    def _register(self, conn: _Conn) -> int | None:
        if len(self._conns) >= self.config.max_connections:
            self.counters.connections_refused += 1
            return None
        cid = next(self._conn_ids)
        self._conns[cid] = conn
        self.counters.connections += 1
        return cid

    def _unregister(self, cid: int) -> None:
        self._conns.pop(cid, None)
        self._subscribers.discard(cid)

    def subscribe(self, cid: int) -> None:
        self._subscribers.add(cid)

    def stats(self) -> StatsReply:
        cache = self.pipeline.cache_stats().to_dict()
        return StatsReply(
            server=self.counters.to_dict() | {"pending": self._pending_rows, "inbound": self._in_rows},
            cache=cache,
            throttle=self.pipeline.throttle_summary(),
        )

    def http_result(self, request_id: str) -> bytes | None:
        return self._http_results.get(request_id)

    def now_datetime(self) -> datetime:
        return from_ns(self.virtual_now())


# ---------------------------------------------------------------------------- one connection
class _Conn(asyncio.Protocol):
    """Frame (or HTTP) parsing for one connection; all work is handed to the server."""

    def __init__(self, server: DccServer):
        self.server = server
        self.cfg = server.config
        self.buf = bytearray()
        self.skip = 0
        self.mode: Literal["?", "frames", "http", "closed"] = "?"
        self.id = 0
        self.fmt = TAG_MSGPACK
        self.out: list[bytes] = []
        self.holding = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=self.cfg.write_high_water)
        cid = self.server._register(self)
        if cid is None:
            self.mode = "closed"
            transport.write(frame(TAG_CLOSE, f"too many connections (max {self.cfg.max_connections})".encode()))
            transport.close()
            return
        self.id = cid

    def connection_lost(self, exc: Exception | None) -> None:
        self.mode = "closed"
        self.buf = bytearray()
        self.server._unregister(self.id)

    def pause_writing(self) -> None:  # the client is not reading its answers: stop reading it
        if self.mode != "closed":
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.mode != "closed":
            self.transport.resume_reading()

    def send(self, data: bytes) -> None:
        if self.mode == "closed":
            return
        if self.holding:
            self.out.append(data)
        else:
            self.transport.write(data)

    def release(self) -> None:
        """Write what was held (the answers to one read: one write, in order)."""
        self.holding = False
        if self.out:
            out, self.out = self.out, []
            if self.mode != "closed":
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _send_error(self, reply: ErrorReply) -> None:
        """An error reply as a MessagePack ``E`` frame (compact and broken-frame errors)."""
        self.send(frame(TAG_ERROR, _mp_enc.encode(reply)))

    def send_message(self, msg: Any) -> None:
        if self.mode == "http":
            if isinstance(msg, DeviceAlert):
                return
        enc = _js_enc if self.fmt == TAG_JSON else _mp_enc
        self.send(frame(self.fmt, enc.encode(msg)))

    def close_with(self, reason: str) -> None:
        self.send(frame(TAG_CLOSE, reason.encode()))
        self.release()
        self.mode = "closed"
        self.transport.close()

    # -------------------------------------------------------------- bytes in
    def data_received(self, data: bytes) -> None:
        if self.mode == "closed":
            return
        self.holding = True
        try:
            self._received(data)
        finally:
            self.release()

    def _received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.mode == "?":
            if len(buf) < 4:
                return
            self.mode = "http" if bytes(buf[:4]) in _HTTP_STARTS else "frames"
        if self.mode == "http":
            self._http()
            return
        off = 0
        end = len(buf)
        max_frame = self.cfg.max_frame_bytes
        while self.mode == "frames":
            if self.skip:
                k = min(self.skip, end - off)
                self.skip -= k
                off += k
                if self.skip:
                    break
            if end - off < 4:
                break
            length = int.from_bytes(buf[off : off + 4], "big")
            if length == 0:
                self.server.counters.malformed += 1
                self.close_with("framing broken: a frame length of 0 (a frame holds at least its tag byte)")
                return
            if length > max_frame:
                self.server.counters.oversized += 1
                self._send_error(
                    ErrorReply(
                        message=f"frame of {length} bytes exceeds the maximum of {max_frame}; skipped",
                        field="frame.length",
                        value=str(length),
                        expected=f"at most {max_frame} bytes",
                    )
                )
                self.skip = length
                off += 4
                continue
            if end - off < 4 + length:
                break
            tag = buf[off + 4]
            payload = bytes(buf[off + _HDR : off + 4 + length])
            off += 4 + length
            self.server.counters.frames += 1
            self._frame(tag, payload)
        if self.mode != "closed":
            del buf[:off]

    def _frame(self, tag: int, payload: bytes) -> None:
        if tag == TAG_ROWS:
            self._rows(payload)
        elif tag == TAG_MSGPACK or tag == TAG_JSON:
            self._messages(tag, payload)
        else:
            self.server.counters.malformed += 1
            self._send_error(
                ErrorReply(
                    message=f"unknown frame tag {tag:#04x}; frame skipped",
                    field="frame.tag",
                    value=f"{tag:#04x}",
                    expected="R (compact rows), M (MessagePack) or J (JSON)",
                )
            )

    def _rows(self, payload: bytes) -> None:
        srv = self.server
        if len(payload) < 9:
            srv.counters.malformed += 1
            self._send_error(
                ErrorReply(
                    message="R frame too short",
                    field="frame.payload",
                    value=f"{len(payload)} bytes",
                    expected="an 8-byte batch id followed by a MessagePack array of request rows",
                )
            )
            return
        batch_id = int.from_bytes(payload[:8], "big")
        try:
            n = srv.decode_rows(payload[8:])
        except MessageError as exc:
            srv.counters.malformed += 1
            self._send_error(_error_reply(exc, batch_id=batch_id))
            return
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the sender's malformed frame
            srv.counters.malformed += 1
            self._send_error(
                ErrorReply(
                    message=f"rows: {exc}",
                    field="rows",
                    value="",
                    expected="a MessagePack array of RequestRow arrays",
                    batch_id=batch_id,
                )
            )
            return
        if n == 0:
            self.send(frame(TAG_ACK, _mp_enc.encode(RowAck(batch_id, 0))))
            return
        why = srv.room(n)
        if why is not None:
            srv.counters.refused_busy += n
            self.send(frame(TAG_BUSY, _mp_enc.encode(BusyReply(reason=why, batch_id=batch_id, count=n))))
            return
        srv.counters.acked += n
        self.send(frame(TAG_ACK, _mp_enc.encode(RowAck(batch_id, n))))
        srv.enqueue_decoded(n, self.id, K_ROW, batch_id)

    def _messages(self, fmt: int, payload: bytes) -> None:
        srv = self.server
        self.fmt = fmt
        try:
            decoded = (_js_in if fmt == TAG_JSON else _mp_in).decode(payload)
        except msgspec.MsgspecError as exc:
            srv.counters.malformed += 1
            self.send_message(_error_reply(_decode_problem(exc, payload, fmt)))
            return
        items = decoded if isinstance(decoded, list) else [decoded]
        reqs: list[ServiceRequest] = []
        rows: list[RequestBatch] = []
        for item in items:
            match item:
                case ServiceRequest():
                    try:
                        item.request_id.check()
                        row = RequestBatch.from_requests([item])  # SRV, EUI-64s: refuse here, naming the field
                    except MessageError as exc:
                        srv.counters.malformed += 1
                        self.send_message(_error_reply(exc, request_ids=[str(item.request_id)]))
                        continue
                    reqs.append(item)
                    rows.append(row)
                case DeviceAlert():
                    srv.enqueue_alert(item, self.id, fmt)
                case Subscribe():
                    if item.alerts:
                        srv.subscribe(self.id)
                case StatsRequest():
                    self.send_message(srv.stats())
        if not reqs:
            return
        why = srv.room(len(reqs))
        if why is not None:
            srv.counters.refused_busy += len(reqs)
            self.send_message(BusyReply(reason=why, count=len(reqs), request_ids=[str(r.request_id) for r in reqs]))
            return
        now = srv.now_datetime()
        kind = K_JSON if fmt == TAG_JSON else K_MSGPACK
        acks = [Response.for_request(r, "I99", now) for r in reqs]
        srv.counters.acked += len(reqs)
        self.send(
            frame(fmt, (_js_enc if fmt == TAG_JSON else _mp_enc).encode(acks if isinstance(decoded, list) else acks[0]))
        )
        for r, row in zip(reqs, rows, strict=True):
            srv.enqueue_object(r, row, self.id, kind)

    # -------------------------------------------------------------- HTTP
    def _http(self) -> None:
        buf = self.buf
        while self.mode == "http":
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > 16384:
                    self._http_reply(431, b"text/plain", b"request header fields too large\n", close=True)
                return
            head = bytes(buf[:head_end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self._http_reply(400, b"text/plain", b"malformed request line\n", close=True)
                return
            method, path, _version = parts
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            try:
                length = int(headers.get("content-length", "0"))
                if length < 0:
                    raise ValueError
            except ValueError:
                self._http_reply(400, b"text/plain", b"Content-Length: expected a non-negative integer\n", close=True)
                return
            if length > self.cfg.max_frame_bytes:
                self.server.counters.oversized += 1
                self._http_reply(
                    413,
                    b"text/plain",
                    f"body of {length} bytes exceeds the maximum of {self.cfg.max_frame_bytes}\n".encode(),
                    close=True,
                )
                return
            if len(buf) < head_end + 4 + length:
                return
            body = bytes(buf[head_end + 4 : head_end + 4 + length])
            del buf[: head_end + 4 + length]
            close = headers.get("connection", "").lower() == "close"
            self._http_request(method, path.encode(), body, close)

    def _http_request(self, method: str, path: bytes, body: bytes, close: bool) -> None:
        srv = self.server
        srv.counters.http_requests += 1
        if method == "GET" and path.startswith(_RESULT_PATH):
            from urllib.parse import unquote

            rid = unquote(path[len(_RESULT_PATH) :].decode("latin-1"))
            xml = srv.http_result(rid)
            if xml is None:
                self._http_reply(
                    404, b"text/plain", f"no final response for {rid} (pending or unknown)\n".encode(), close
                )
            else:
                self._http_reply(200, b"application/xml", xml, close)
            return
        if path not in SERVICE_PATHS:
            self._http_reply(404, b"text/plain", b"not found: POST to /api/v1/serviceS, serviceT or serviceD\n", close)
            return
        if method != "POST":
            self._http_reply(405, b"text/plain", b"method not allowed: use POST\n", close)
            return
        try:
            req = decode_request_xml(body)
            row = RequestBatch.from_requests([req])
        except MessageError as exc:
            srv.counters.malformed += 1
            self._http_reply(400, b"text/plain", (str(exc) + "\n").encode(), close)
            return
        why = srv.room(1)
        if why is not None:
            srv.counters.refused_busy += 1
            self._http_reply(503, b"text/plain", f"busy: {why}\n".encode(), close)
            return
        srv.counters.acked += 1
        ack = Response.for_request(req, "I99", srv.now_datetime())
        self._http_reply(200, b"application/xml", encode_response_xml(ack), close)
        srv.enqueue_object(req, row, self.id, K_HTTP)

    def _http_reply(self, status: int, ctype: bytes, body: bytes, close: bool) -> None:
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            413: "Content Too Large",
            431: "Request Header Fields Too Large",
            503: "Service Unavailable",
        }[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: ".encode()
            + ctype
            + f"\r\nContent-Length: {len(body)}\r\n".encode()
            + (b"Connection: close\r\n" if close else b"")
            + b"\r\n"
        )
        self.send(head + body)
        if close:
            self.release()
            self.mode = "closed"
            self.transport.close()
