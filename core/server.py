"""The wall-clock DCC core: an asyncio (uvloop) server in front of the same pipeline.

One TCP port speaks two protocols, told apart by the first byte of a connection: DUIS XML
over HTTP/1.1 (a connection that starts with a letter, as a request line does) and
length-prefixed frames (anything else). Requests from all connections are collected into **micro-batches** (whatever
arrived while the loop was busy, at most ``max_batch`` rows), turned into columns and run
through :meth:`~dccsim.core.pipeline.Pipeline.process`, exactly like a virtual-time chunk.

The frames and the control messages are :mod:`dccsim.core.protocol` and
:mod:`dccsim.core.messages`; DUIS XML over HTTP is :mod:`dccsim.core.http`. This module is the
server (intake, micro-batches, the pending final answers, the log) and the per-connection
framing.

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

Future-dated responses (CR1233)
-------------------------------
A future-dated command a device holds (an SRV of pattern "Device", sent over the WAN: Command
Variant 1, 3, 5 or 7) whose final answer is ``I99`` reports each instruction later: the
micro-batch draws those responses (:func:`~dccsim.core.futuredated.future_dated_responses`,
``future_dated``) and puts them in the same heap as a run of their own, sorted by due time; a
drain sends the due final answers first, then the due responses, each as a ``Response``
message frame in its connection's format (compact-row connections: MessagePack), or keeps it
for polling (HTTP, under ``RequestID/InstructionNumber``). A connection that has gone loses
them (``future_dated_dropped``); they are logged to the sink's ``audit`` as they come due.
They do not keep a connection from its idle time-out (they can be hours of virtual time
away), but one owed them is not evicted.

Batching and writes
-------------------
Compact rows are decoded straight into one arena of columns as frames are read; a micro-batch
(processed once the loop has read what arrived, so its size follows the load) is one copy of
that arena's filled part. What a read produces (acknowledgements, errors) goes out in one
write per connection, and each drain of due answers in one ``F`` frame per connection.

Limits
------
``max_connections``; ``max_frame_bytes``; ``max_inbound`` (received, not yet processed),
``max_pending`` (processed, final answer not yet due) and ``max_pending_per_connection`` (of
those, one connection's): a batch that does not fit is refused whole with a busy reply. A
client that does not read its answers stops being read from (transport flow control at
``write_high_water`` bytes), so its buffer stays bounded. A client that disconnects, even
mid-frame, loses only its own answers (counted as ``orphaned``).

Time-outs (:meth:`DccServer.reap`, every 0.1 s) close a connection, telling it why (an ``X``
frame, or ``408`` over HTTP): a frame's or HTTP request's header not complete
``header_timeout_s`` after its first byte, the whole not ``frame_timeout_s`` after it, or
nothing received for ``idle_timeout_s`` while it is owed no answer. At ``max_connections`` a
new client is not turned away while some connection has been idle ``evict_idle_s`` and is
owed nothing: the longest idle one is closed (told why) and the newcomer takes its slot. So
stalled or idle sockets cannot lock other clients out.

A failure inside a micro-batch (a bug: clients' inputs are checked at intake) closes the
connections whose rows were in it, telling them how many acknowledged requests will not be
answered; the server counts it (``internal_errors``) and goes on.

One concern, the server side of the wire: micro-batching what connections send, the answers
and their timing, and per-connection framing (the protocol is in :mod:`dccsim.core.protocol`,
HTTP in :mod:`dccsim.core.http`); hence its length.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec
import numpy as np
import numpy.typing as npt
from dccsim.throttle import THROTTLED

from .catalogue import catalogue
from .columns import RequestBatch, RowArena
from .duisxml import encode_response_xml
from .errors import MessageError
from .eui import eui_to_int, int_to_eui
from .futuredated import future_dated_responses
from .http import HttpAdapter, starts_http
from .messages import (
    BusyReply,
    DeviceAlert,
    ErrorReply,
    FutureDatedAlert,
    RequestId,
    Response,
    RowAck,
    ServiceRequest,
    StatsReply,
    StatsRequest,
    Subscribe,
    from_ns,
)
from .pipeline import Pipeline
from .protocol import (
    FINAL_RECORD,
    FINAL_RECORD_BYTES,
    HEADER_BYTES,
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
from .records import REQUEST_CLASSES, RESPONSE_CODES, AlertRows, AuditRows, LogSink, RequestRows

__all__ = ["MAX_FRAME_LIMIT", "DccServer", "FutureDatedModel", "ServerConfig"]

#: the largest ``max_frame_bytes`` allowed: 1 GiB, so no frame's length starts with a byte that
#: is an ASCII letter (0x41 and up), which is how an HTTP connection is told from frames
MAX_FRAME_LIMIT = 1 << 30

_I0, _I99 = RESPONSE_CODES.index("I0"), RESPONSE_CODES.index("I99")
_FD_CLASS = REQUEST_CLASSES.index("future_dated")
#: Command Variants the DCC sends to the device over the WAN (1, 3, 5, 7): only those commands
#: report back through the DCC (CV 4 is transformed into a pre-command for the User to sign;
#: CV 2 and 6 are delivered locally)
_OVER_WAN = np.zeros(256, np.bool_)
_OVER_WAN[[1, 3, 5, 7]] = True

# kinds of a pending row: who gets the final answer and how
K_ROW, K_MSGPACK, K_JSON, K_HTTP = 0, 1, 2, 3


Inbound = ServiceRequest | DeviceAlert | Subscribe | StatsRequest
_mp_in = msgspec.msgpack.Decoder(Inbound | list[Inbound])
_js_in = msgspec.json.Decoder(Inbound | list[Inbound])
_mp_enc = msgspec.msgpack.Encoder()
_js_enc = msgspec.json.Encoder()
_SPIN_NS = 1_000_000  # answers due within this are waited for by polling the loop, not by a timer
_LINGER_S = 2.0  # how long a connection the server closes reads and drops what its peer still sends
_HOUSEKEEP_S = 0.01  # how often an idle server moves the cache's time on (see DccServer._housekeep)
_REAP_EVERY = 10  # housekeeping turns between checks of the connections' time-outs (0.1 s)
_MAX_PERIOD_NS = (1 << 29) * 1_000_000_000  # the readings cache holds periods shorter than this


def _decode_problem(exc: Exception, payload: bytes, fmt: int) -> MessageError:
    """A MessageError for a frame the decoder refused, naming the field where possible."""
    from . import wire

    if isinstance(exc, RecursionError):
        return wire.too_deep("JSON" if fmt == TAG_JSON else "MessagePack")

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


def _check_periods(start: npt.NDArray[np.int64], end: npt.NDArray[np.int64], field: str) -> None:
    """E13 for the first row whose read period the readings cache cannot hold (before 1970, not
    whole seconds, 2**29 s or longer): the cache refuses its whole micro-batch, every
    connection's rows with it. A period that ends before it starts is the validator's E13."""
    with np.errstate(over="ignore"):
        long = (end >= start) & (end - start >= _MAX_PERIOD_NS)
    bad = (start < 0) | (start % 1_000_000_000 != 0) | (end % 1_000_000_000 != 0) | long
    if bad.any():
        i = int(np.argmax(bad))
        which = "start" if start[i] < 0 or start[i] % 1_000_000_000 else "end"
        value = int(start[i] if which == "start" else end[i])
        where = field.format(i=i, which=which)
        shown = value if where.endswith("_ns") else from_ns(value).isoformat()
        raise MessageError(where, shown, "a read period from 1970 on, in whole seconds, shorter than 2**29 s", "E13")


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
    max_pending_per_connection: int = 1_000_000
    idle_timeout_s: float = 120.0
    header_timeout_s: float = 10.0
    frame_timeout_s: float = 60.0
    evict_idle_s: float = 1.0
    max_future_dated: int = 1_000_000

    def __post_init__(self) -> None:
        for name in (
            "max_future_dated",
            "max_frame_bytes",
            "max_connections",
            "max_inbound",
            "max_pending",
            "max_batch",
            "write_high_water",
            "http_results",
            "log_batch",
            "max_pending_per_connection",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise MessageError(f"server.{name}", v, "an integer >= 1", code="config")
        if self.max_frame_bytes > MAX_FRAME_LIMIT:
            # a frame's first byte then stays below an ASCII letter's, which opens an HTTP request
            raise MessageError(
                "server.max_frame_bytes", self.max_frame_bytes, f"at most {MAX_FRAME_LIMIT} (1 GiB)", code="config"
            )
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise MessageError(
                "server.speed", self.speed, "a finite number > 0 (virtual ns per wall ns)", code="config"
            )
        for name in ("idle_timeout_s", "header_timeout_s", "frame_timeout_s", "evict_idle_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise MessageError(f"server.{name}", v, "a finite number of seconds > 0", code="config")


class FutureDatedModel(msgspec.Struct, frozen=True, kw_only=True):
    """How the devices behind the server answer future-dated commands when they run (a
    scenario's ``[future_dated]`` table and seed; see :func:`~dccsim.core.futuredated.future_dated_responses`).
    The responses of one micro-batch come from a generator seeded by ``(seed, 11, batch)``,
    ``batch`` the micro-batch's number (``counters.batches``, from 1)."""

    seed: int = 0
    instructions: tuple[int, int] = (1, 4)
    out_of_order_share: float = 0.1
    not_done_share: float = 0.05


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


class _FdRun:
    """Future-dated responses of one micro-batch's delivered commands, sorted by due time
    (wall clock); ``pos`` = next not yet due. Per response: ``t_ns`` (virtual, its
    ResponseDateTime), ``cmd`` (index into the per-command columns), the alert columns. Per
    command: connection, kind, RequestID/SRV for the Response, and the audit columns."""

    __slots__ = (
        "due", "t_ns", "cmd", "alert_code", "instruction", "total", "received", "out_of_sequence",
        "conn", "kind", "ids", "seq", "originator", "device", "counter", "srv", "execution_ns", "pos",
    )  # fmt: skip

    due: npt.NDArray[np.int64]
    t_ns: npt.NDArray[np.int64]
    cmd: npt.NDArray[np.int64]
    alert_code: npt.NDArray[np.uint16]
    instruction: npt.NDArray[np.uint16]
    total: npt.NDArray[np.uint16]
    received: npt.NDArray[np.uint16]
    out_of_sequence: npt.NDArray[np.bool_]
    conn: npt.NDArray[np.int64]
    kind: npt.NDArray[np.uint8]
    ids: list[tuple[RequestId, str, str] | None]
    seq: npt.NDArray[np.uint64]
    originator: npt.NDArray[np.uint64]
    device: npt.NDArray[np.uint64]
    counter: npt.NDArray[np.uint64]
    srv: npt.NDArray[np.uint8]
    execution_ns: npt.NDArray[np.int64]
    pos: int

    def __init__(self, **cols: Any):
        for k, v in cols.items():
            setattr(self, k, v)
        self.pos = 0


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
    timed_out: int = 0
    evicted: int = 0
    internal_errors: int = 0
    future_dated_sent: int = 0
    future_dated_kept: int = 0
    future_dated_dropped: int = 0
    future_dated_shed: int = 0
    future_dated_unsent: int = 0

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
        :meth:`close`. Future-dated responses go to its ``audit`` when it has one (a
        sink without ``audit``, e.g. one opened without ``audit.arrow``, gets none).
    future_dated:
        How devices answer future-dated commands when they run; ``None``: no responses.
    """

    pipeline: Pipeline
    classify: Callable[[RequestBatch], npt.NDArray[np.uint8]]
    device_leg: DeviceLeg
    clock: Callable[[], int]
    config: ServerConfig = field(default_factory=ServerConfig)
    sink: LogSink | None = None
    future_dated: FutureDatedModel | None = field(default_factory=FutureDatedModel)

    def __post_init__(self) -> None:
        self.counters = _Counters()
        self._start = self.clock()
        self._conns: dict[int, _Conn] = {}
        self._conn_ids = itertools.count(1)
        # received rows wait as columns in one arena (the compact decoder writes there), with
        # (rows, connection, kind, first id) per frame; a micro-batch is a copy of the filled part
        self._in: list[tuple[int, int, int, int]] = []
        self._in_rows = 0
        self._arena = RowArena(4096)
        self.decode_rows(_mp_enc.encode([[1, 1, 1, 1, "4.8.1", ""]]))  # load the decoder for the arena's views now
        self._alerts_in: list[tuple[int, int, int, DeviceAlert]] = []
        self._objects: dict[int, tuple[ServiceRequest, int]] = {}
        self._obj_ids = itertools.count(1)
        self._heap: list[tuple[int, int, _Run | _FdRun]] = []
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
        self._audit: list[AuditRows] = []
        # a run folder's sink opened without audit.arrow (RunSink.audit_log None) takes no audit rows
        self._audited = self.sink is not None and getattr(self.sink, "audit_log", True) is not None
        self._audit_rows = 0
        self._fd_pending = 0  # future-dated responses scheduled, not yet due
        cat = catalogue()
        # SRVs a device holds when future-dated (pattern "Device"): only they report per instruction
        self._held_on_device = np.array([i.future_dated in ("device", "dsp+device") for i in cat], np.bool_)
        self._srv_refs = tuple(i.reference for i in cat)
        self._srvs = cat.srvs
        self._seq = 0
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alert_counter = itertools.count(1)
        self._turns = 0
        self._batch_queued = False
        self.log_failure: Exception | None = None  # why the log was given up (see _to_sink)
        self.last_internal_error: str | None = None  # the last failure inside the server (see _batch_failed)

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
        self._turns += 1
        if self._turns % _REAP_EVERY == 0:
            self.reap()
        assert self._loop is not None
        self._housekeeper = self._loop.call_later(_HOUSEKEEP_S, self._housekeep)

    def reap(self) -> None:
        """Close the connections past a time-out (checked every ``_REAP_EVERY`` housekeeping
        turns, so a time-out is kept to within about 0.1 s):

        - a frame or HTTP request whose header has not all arrived ``header_timeout_s`` after
          its first byte, or whose whole has not arrived ``frame_timeout_s`` after it;
        - nothing received for ``idle_timeout_s`` while the server owes the connection no answer.

        The client is told why (an ``X`` frame, or ``408`` over HTTP) before the close.
        """
        now = self.clock()
        cfg = self.config
        for conn in list(self._conns.values()):
            why = conn.overdue(now, cfg)
            if why is not None:
                self.counters.timed_out += 1
                conn.time_out(why)

    async def close(self) -> None:
        """Stop listening, answer what is due, close connections, flush the log (future-dated
        responses not yet due are dropped unsent: ``future_dated_unsent``)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._in:
            self._process()
        self._flush_due()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            self._housekeeper = None
        for c in list(self._conns.values()):
            c.transport.close()
        # future-dated responses not yet due: never sent nor logged (their devices run on after)
        self.counters.future_dated_unsent += self._fd_pending
        self._fd_pending = 0
        self._heap = [e for e in self._heap if not isinstance(e[2], _FdRun)]
        heapq.heapify(self._heap)
        self._flush_log()
        self._flush_audit()

    # -------------------------------------------------------------- time
    def virtual_now(self) -> int:
        t = self.config.origin_ns + int((self.clock() - self._start) * self.config.speed)
        self._last_t = max(self._last_t, t)
        return self._last_t

    def _wall_of(self, t_virtual: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self._start + ((t_virtual - self.config.origin_ns) / self.config.speed).astype(np.int64)

    # -------------------------------------------------------------- intake
    def room(self, n: int, conn: _Conn | None = None) -> str | None:
        """Why ``n`` more rows (from ``conn``) cannot be taken now, or ``None``."""
        cfg = self.config
        if self._in_rows + n > cfg.max_inbound:
            return f"inbound queue full ({self._in_rows} of {cfg.max_inbound} requests waiting)"
        if self._pending_rows + self._in_rows + n > cfg.max_pending:
            return f"pending answers full ({self._pending_rows} of {cfg.max_pending})"
        if conn is not None and conn.owed + n > cfg.max_pending_per_connection:
            return (
                f"this connection's pending answers full ({conn.owed} of {cfg.max_pending_per_connection}, "
                "server.max_pending_per_connection)"
            )
        return None

    def decode_rows(self, payload: bytes) -> int:
        """Decode a compact row batch into the arena after the waiting rows; its row count.

        Nothing is queued yet (see :meth:`enqueue_decoded`). A batch the compact decoder does
        not accept raises the :class:`MessageError` of :meth:`RequestBatch.from_msgpack`; one
        with a read period the readings cache cannot hold, an E13 naming the row.
        """
        off = self._in_rows
        n = self._arena.decode(payload, off)
        i64 = self._arena.i64
        _check_periods(i64[1, off : off + n], i64[2, off : off + n], "rows[{i}].period_{which}_ns")
        return n

    @staticmethod
    def check_periods(row: RequestBatch) -> None:
        """E13 when a request's read period is one the readings cache cannot hold (see ``_check_periods``)."""
        _check_periods(row.period_start_ns, row.period_end_ns, "body.period.{which}")

    def enqueue_decoded(self, n: int, conn: int, kind: int, cid0: int) -> None:
        """Queue the ``n`` rows just decoded by :meth:`decode_rows` (ids ``cid0 .. cid0+n-1``)."""
        off = self._in_rows
        self._arena.i64[0, off : off + n] = self.virtual_now()  # arrival time
        self._in.append((n, conn, kind, cid0))
        owner = self._conns.get(conn)
        if owner is not None:
            owner.owed += n
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

    def enqueue_http(self, req: ServiceRequest, row: RequestBatch, conn: int) -> None:
        """A DUIS XML request over HTTP: its final response is kept for polling (:mod:`.http`)."""
        self.enqueue_object(req, row, conn, K_HTTP)

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
            items = self._alerts_in
            try:
                self._process_alerts()
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the server; it is counted
                self._internal_error(exc, f"{len(items)} device alerts were not throttled or forwarded")
        if not self._in:
            return
        parts, n = self._in, self._in_rows
        self._in, self._in_rows = [], 0
        self._batch_queued = False
        try:
            self._process_batch(parts, n)
        except Exception as exc:  # noqa: BLE001 - see _batch_failed
            if self._batch_queued:  # its answers are already due: they go out; the failure is counted
                self._internal_error(exc, "after the micro-batch was queued (its answers still go out)")
            else:
                self._batch_failed(parts, exc)

    def _internal_error(self, exc: Exception, what: str) -> None:
        self.counters.internal_errors += 1
        self.last_internal_error = f"{type(exc).__name__}: {exc}; {what}"

    def _batch_failed(self, parts: list[tuple[int, int, int, int]], exc: Exception) -> None:
        """A micro-batch that failed inside the server (a bug, not a client's input: inputs are
        checked at intake): its rows were acknowledged and will get no final answer, so each
        connection that sent some is told so and closed (an ``X`` frame, HTTP 500), never left
        waiting; the server goes on with the next batch."""
        self._internal_error(exc, f"{sum(p[0] for p in parts)} acknowledged requests not answered")
        lost: dict[int, int] = {}
        for n, conn, kind, cid0 in parts:
            lost[conn] = lost.get(conn, 0) + n
            if kind != K_ROW:
                for key in range(cid0, cid0 + n):
                    self._objects.pop(key, None)
        for conn_id, n in lost.items():
            conn = self._conns.get(conn_id)
            if conn is not None:
                conn.owed -= n
                conn.fail(f"internal error processing a micro-batch ({type(exc).__name__}: {exc}); {n} of this "
                          "connection's acknowledged requests will not be answered")  # fmt: skip

    def _process_batch(self, parts: list[tuple[int, int, int, int]], n: int) -> None:
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
        self._batch_queued = True
        seq0 = self._seq
        if self.sink is not None:
            self._log_requests(batch, cls, res)
        if self.future_dated is not None:
            self._draw_future_dated(batch, cls, res, parts, cid, seq0)
        self._flush_due()

    # -------------------------------------------------------------- future-dated responses
    def _draw_future_dated(
        self,
        batch: RequestBatch,
        cls: npt.NDArray[np.uint8],
        res: Any,
        parts: list[tuple[int, int, int, int]],
        cid: npt.NDArray[np.uint64],
        seq0: int,
    ) -> None:
        """Draw the responses of the batch's future-dated commands the device acknowledged (I99),
        that it holds (an SRV of pattern "Device") and that went to it over the WAN (Command
        Variant 1, 3, 5 or 7), and schedule them like final answers."""
        model = self.future_dated
        assert model is not None
        future = cls == _FD_CLASS
        if not future.any():  # the usual micro-batch: one pass over the classes
            return
        fd = np.flatnonzero(
            future & (res.response_code == _I99) & self._held_on_device[batch.srv] & _OVER_WAN[batch.command_variant]
        )
        if not len(fd):
            return
        r = future_dated_responses(
            np.random.default_rng([model.seed, 11, self.counters.batches]), batch.execution_ns[fd],
            res.t_done_ns[fd], model.instructions, model.out_of_order_share, model.not_done_share,
        )  # fmt: skip
        if self._fd_pending + len(r) > self.config.max_future_dated:
            self.counters.future_dated_shed += len(r)
            return
        counts = np.array([p[0] for p in parts], np.int64)
        conn = np.repeat(np.array([p[1] for p in parts], np.int64), counts)[fd]
        kind = np.repeat(np.array([p[2] for p in parts], np.uint8), counts)[fd]
        # a full message's RequestID as the client wrote it; a compact row's is made when sent
        ids: list[tuple[RequestId, str, str] | None] = [None] * len(fd)
        for j in np.flatnonzero(kind != K_ROW).tolist():
            req = self._objects[int(cid[fd[j]])][0]
            ids[j] = (req.request_id, req.service_reference, req.srv)
        for c in np.unique(conn[kind != K_HTTP]).tolist():
            owner = self._conns.get(c)
            if owner is not None:
                owner.fd_owed += int(((conn[r.command] == c) & (kind[r.command] != K_HTTP)).sum())
        due = self._wall_of(r.t_ns)
        order = np.argsort(due, kind="stable")
        run = _FdRun(
            due=due[order], t_ns=r.t_ns[order], cmd=r.command[order], alert_code=r.alert_code[order],
            instruction=r.instruction[order], total=r.total_instructions[order], received=r.received[order],
            out_of_sequence=r.out_of_sequence[order], conn=conn, kind=kind, ids=ids,
            seq=(seq0 + fd).astype(np.uint64), originator=batch.originator[fd], device=batch.device[fd],
            counter=batch.counter[fd], srv=batch.srv[fd], execution_ns=batch.execution_ns[fd],
        )  # fmt: skip
        self._fd_pending += len(r)
        heapq.heappush(self._heap, (int(run.due[0]), next(self._heap_seq), run))

    def _emit_future_dated(self, taken: list[tuple[_FdRun, int, int]]) -> None:
        """Send the due stretches ``[a, b)`` of future-dated responses: each a Response frame
        in its connection's format (one write per connection), kept for polling (HTTP), or
        dropped when its connection has gone; and logged in the audit trail."""
        out: dict[int, list[bytes]] = {}
        audit: list[AuditRows] = []
        for run, a, b in taken:
            self._fd_pending -= b - a
            for i in range(a, b):
                j = int(run.cmd[i])
                c, kind = int(run.conn[j]), int(run.kind[j])
                target = self._conns.get(c) if kind != K_HTTP else None
                if kind != K_HTTP and (target is None or target.mode == "closed"):
                    self.counters.future_dated_dropped += 1
                    continue
                rid, ref, srv = run.ids[j] or self._row_id(run, j)
                resp = Response(
                    request_id=rid, response_id=rid.swapped(), response_code="I0",
                    response_datetime=from_ns(int(run.t_ns[i])), service_reference=ref, srv=srv,
                    future_dated=FutureDatedAlert(
                        alert_code=int(run.alert_code[i]), instruction_number=int(run.instruction[i]),
                        total_command_instructions=int(run.total[i]),
                    ),
                )  # fmt: skip
                if target is None:  # HTTP: kept for polling, whatever became of the connection
                    self._http_results[f"{rid}/{int(run.instruction[i])}"] = encode_response_xml(resp)
                    while len(self._http_results) > self.config.http_results:
                        self._http_results.popitem(last=False)
                    self.counters.future_dated_kept += 1
                    continue
                target.fd_owed -= 1
                self.counters.future_dated_sent += 1
                enc = _js_enc if target.fmt == TAG_JSON else _mp_enc
                out.setdefault(c, []).append(frame(target.fmt, enc.encode(resp)))
            if self.sink is not None and self._audited:
                cmd = run.cmd[a:b]
                audit.append(AuditRows(
                    seq=run.seq[cmd], t_ns=run.t_ns[a:b], device=run.device[cmd], originator=run.originator[cmd],
                    counter=run.counter[cmd], srv=run.srv[cmd], execution_ns=run.execution_ns[cmd],
                    response_code=np.full(b - a, _I0, np.uint8), alert_code=run.alert_code[a:b],
                    instruction=run.instruction[a:b], total_instructions=run.total[a:b],
                    received=run.received[a:b], out_of_sequence=run.out_of_sequence[a:b],
                ))  # fmt: skip
        for c, frames in out.items():
            self._conns[c].send(frames[0] if len(frames) == 1 else b"".join(frames))
        if audit:
            rows = AuditRows.concat(audit)
            order = np.lexsort((rows.instruction, rows.seq, rows.t_ns))
            self._audit.append(AuditRows(**{name: col[order] for name, col in rows}))
            self._audit_rows += len(order)
            if self._audit_rows >= self.config.log_batch:
                self._flush_audit()

    def _row_id(self, run: _FdRun, j: int) -> tuple[RequestId, str, str]:
        """RequestID, service reference and SRV of command ``j`` of ``run``, sent as a compact row."""
        rid = RequestId(
            originator=int_to_eui(int(run.originator[j])), target=int_to_eui(int(run.device[j])),
            counter=int(run.counter[j]),
        )  # fmt: skip
        code = int(run.srv[j])
        return rid, self._srv_refs[code], self._srvs[code]

    def _flush_audit(self) -> None:
        if self.sink is None or not self._audited or not self._audit:
            return
        parts, self._audit, self._audit_rows = self._audit, [], 0
        self._to_sink(self.sink.audit, AuditRows.concat(parts))

    def _log_requests(self, batch: RequestBatch, cls: npt.NDArray[np.uint8], res: Any) -> None:
        n = len(batch)
        seq = np.arange(self._seq, self._seq + n, dtype=np.uint64)
        self._seq += n
        zeros8 = np.zeros(n, np.uint8)
        rows = res.rows(batch, seq=seq, counter=batch.counter, request_class=cls, attempt=zeros8, invalid=zeros8)
        rows.t_scheduled_ns = rows.t_scheduled_ns.copy()  # the log keeps its own, as it always has
        self._log.append(rows)
        self._log_rows += n
        if self._log_rows >= self.config.log_batch:
            self._flush_log()

    def _flush_log(self) -> None:
        if self.sink is None or not self._log:
            return
        parts, self._log, self._log_rows = self._log, [], 0
        self._to_sink(self.sink.requests, RequestRows.concat(parts))

    def _to_sink(self, write: Callable[[Any], None], rows: Any) -> None:
        """Hand rows to the log; a log that fails (a full disk) is given up, not the server:
        clients go on being answered, and ``log_failure`` keeps why (its owner closes the log
        at its last complete batch and says so when the server stops)."""
        try:
            write(rows)
        except Exception as exc:  # noqa: BLE001 - whatever the log raised, serving goes on
            self.log_failure = exc
            self.sink = None

    def _process_alerts(self) -> None:
        items, self._alerts_in = self._alerts_in, []
        t = np.array([x[0] for x in items], np.int64)
        dev = np.array([int.from_bytes(bytes.fromhex(x[3].device.replace("-", "")), "big") for x in items], np.uint64)
        code = np.array([x[3].alert_code for x in items], np.uint16)
        action, count, seq = self.pipeline.process_alerts(t, dev, code)
        if self.sink is not None:
            self._to_sink(
                self.sink.alerts,
                AlertRows(
                    t_ns=t,
                    device=dev,
                    alert_code=code,
                    action=action,
                    throttled_count=count,
                    sequence_id=seq,
                    storm=np.zeros(len(items), np.bool_),
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
    def send_due(self) -> None:
        """Send every answer and future-dated response due by now (the loop's timer does this
        by itself; a test that moves a manual clock calls it)."""
        self._flush_due()

    def _flush_due(self) -> None:
        now = self.clock()
        taken: list[tuple[_Run, int, int]] = []
        fd_taken: list[tuple[_FdRun, int, int]] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, run = heapq.heappop(self._heap)
            j = int(np.searchsorted(run.due, now, side="right"))
            if isinstance(run, _FdRun):
                fd_taken.append((run, run.pos, j))
            else:
                taken.append((run, run.pos, j))
            run.pos = j
            if j < len(run.due):
                heapq.heappush(self._heap, (int(run.due[j]), next(self._heap_seq), run))
        if taken:  # a command's final answer (I99) goes before its future-dated responses
            self._emit(taken)
        if fd_taken:
            self._emit_future_dated(fd_taken)
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
            k = sum(len(x) for x in chunks) // FINAL_RECORD_BYTES
            target = self._conns.get(c)
            if target is None:
                self.counters.orphaned += k
                continue
            self.counters.finals += k
            target.owed -= k
            target.send(b"".join([frame_head(TAG_FINALS, k * FINAL_RECORD_BYTES), *chunks]))

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
            target = self._conns.get(c)
            if target is not None:
                target.owed -= 1
            if run.kind[i] == K_HTTP:
                self._http_results[str(req.request_id)] = encode_response_xml(resp)
                while len(self._http_results) > self.config.http_results:
                    self._http_results.popitem(last=False)
                continue
            if target is None:
                self.counters.orphaned += 1
            else:
                target.send_message(resp)

    # -------------------------------------------------------------- connections
    def _register(self, conn: _Conn) -> int | None:
        if len(self._conns) >= self.config.max_connections and not self._evict_one():
            self.counters.connections_refused += 1
            return None
        cid = next(self._conn_ids)
        self._conns[cid] = conn
        self.counters.connections += 1
        return cid

    def _evict_one(self) -> bool:
        """At the connection limit, make room for a new client: free the slot of a connection
        the server has closed (lingering until its peer reads why), else close the connection
        idle the longest, if it has been idle ``evict_idle_s`` or more, is owed no answer and
        holds no partial frame (it is told why). Whether a slot was freed."""
        now = self.clock()
        closing = next((c for c in self._conns.values() if c.mode == "closed"), None)
        if closing is not None:  # closed by the server, lingering for its peer to read why: its slot is free
            self._conns.pop(closing.id, None)
            return True
        least = now - int(self.config.evict_idle_s * 1e9)
        idle = [
            c for c in self._conns.values()
            if c.owed == 0 and c.fd_owed == 0 and not c.started_ns and c.last_rx_ns <= least
        ]  # fmt: skip
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_rx_ns)
        self._conns.pop(victim.id, None)  # its slot is the new client's now
        self.counters.evicted += 1
        victim.time_out(f"closed to make room for a new client: idle {(now - victim.last_rx_ns) / 1e9:.1f} s at "
                        f"the connection limit ({self.config.max_connections}, server.max_connections)")
        return True

    def _unregister(self, cid: int) -> None:
        self._conns.pop(cid, None)
        self._subscribers.discard(cid)

    def subscribe(self, cid: int) -> None:
        self._subscribers.add(cid)

    def stats(self) -> StatsReply:
        cache = self.pipeline.cache_stats().to_dict()
        return StatsReply(
            server=self.counters.to_dict()
            | {"pending": self._pending_rows, "inbound": self._in_rows, "future_dated_pending": self._fd_pending},
            cache=cache,
            throttle=self.pipeline.throttle_summary(),
        )

    def http_result(self, request_id: str) -> bytes | None:
        return self._http_results.get(request_id)

    def now_datetime(self) -> datetime:
        return from_ns(self.virtual_now())


# ---------------------------------------------------------------------------- one connection
class _Conn(asyncio.Protocol):
    """Frame parsing for one connection (HTTP: its :class:`~dccsim.core.http.HttpAdapter`);
    all work is handed to the server."""

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
        self.http = HttpAdapter(self)
        self.owed = 0  # answers the server owes this connection (received, final not yet sent)
        self.fd_owed = 0  # future-dated responses scheduled for this connection, not yet due
        self.last_rx_ns = server.clock()  # when bytes last arrived (the server's clock)
        self.started_ns = 0  # when the first byte of the frame or HTTP request now partly read arrived; 0: none
        self.head_done = False  # whether that frame's (request's) header has all arrived

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

    def overdue(self, now: int, cfg: ServerConfig) -> str | None:
        """Why this connection is past a time-out at ``now`` (see :meth:`DccServer.reap`), or None."""
        if self.mode == "closed":
            return None
        if self.started_ns:
            waited = (now - self.started_ns) / 1e9
            if not self.head_done and waited >= cfg.header_timeout_s:
                return f"header incomplete after {waited:.1f} s (server.header_timeout_s = {cfg.header_timeout_s:g})"
            if waited >= cfg.frame_timeout_s:
                what = "request" if self.mode == "http" else "frame"
                return f"{what} incomplete after {waited:.1f} s (server.frame_timeout_s = {cfg.frame_timeout_s:g})"
            return None
        idle = (now - self.last_rx_ns) / 1e9
        if self.owed == 0 and idle >= cfg.idle_timeout_s:
            return f"idle for {idle:.1f} s (server.idle_timeout_s = {cfg.idle_timeout_s:g})"
        return None

    def time_out(self, why: str) -> None:
        """Close with the reason: an ``X`` frame, or ``408`` on an HTTP connection."""
        self._close_saying(408, why)

    def fail(self, why: str) -> None:
        """Close after a failure inside the server: an ``X`` frame, or ``500`` over HTTP."""
        self._close_saying(500, why)

    def _close_saying(self, http_status: int, why: str) -> None:
        if self.mode == "closed":
            return
        if self.mode == "http":
            self.http.reply_and_close(http_status, why)
        else:
            self.close_with(why)

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
        self.close_now()

    def close_now(self) -> None:
        """Write what was held, then close the connection.

        A lingering close: the write side is shut (the peer reads the reply, then end of
        stream) and what the peer still sends is read and dropped until it closes, or for
        ``_LINGER_S``. Closing a socket with unread input resets the connection, and the peer
        then loses the reply (the ``X`` frame, the HTTP status) that explains the close.
        """
        self.release()
        self.mode = "closed"
        if self.transport.is_closing() or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        asyncio.get_running_loop().call_later(_LINGER_S, self.transport.close)

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
        now = self.last_rx_ns = self.server.clock()
        boundary = not self.started_ns  # a frame (request) ended in this read, or none was partly read
        buf += data
        if self.mode == "?":
            self.mode = "http" if starts_http(buf) else "frames"
        if self.mode == "http":
            consumed = self.http.received()
            self._track(now, consumed or boundary, bool(buf), b"\r\n\r\n" in buf)
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
                boundary = True
            if end - off < 4:
                break
            length = int.from_bytes(buf[off : off + 4], "big")
            if length == 0:
                self.server.counters.malformed += 1
                self.close_with("framing broken: a frame length of 0 (a frame holds at least its tag byte)")
                return
            if length > max_frame:
                self.server.counters.oversized += 1
                batch_id = None  # named when the R frame's batch id has arrived with its header
                if end - off >= HEADER_BYTES + 8 and buf[off + 4] == TAG_ROWS:
                    batch_id = int.from_bytes(buf[off + HEADER_BYTES : off + HEADER_BYTES + 8], "big")
                self._send_error(
                    ErrorReply(
                        message=f"frame of {length} bytes exceeds the maximum of {max_frame}; skipped",
                        field="frame.length",
                        value=str(length),
                        expected=f"at most {max_frame} bytes",
                        batch_id=batch_id,
                    )
                )
                self.skip = length
                off += 4
                continue
            if end - off < 4 + length:
                break
            tag = buf[off + 4]
            payload = bytes(buf[off + HEADER_BYTES : off + 4 + length])
            off += 4 + length
            boundary = True
            self.server.counters.frames += 1
            self._frame(tag, payload)
        if self.mode != "closed":
            del buf[:off]
            self._track(now, boundary, bool(buf) or self.skip > 0, len(buf) >= HEADER_BYTES or self.skip > 0)

    def _track(self, now: int, fresh: bool, partial: bool, head_done: bool) -> None:
        """After a read: whether a frame (request) is partly read, since when, and whether its
        header is complete. ``fresh``: what is left began in this read."""
        if not partial:
            self.started_ns = 0
        elif fresh or not self.started_ns:
            self.started_ns = now
        self.head_done = head_done

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
            self._send_error(ErrorReply.of(exc, batch_id=batch_id))
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
        why = srv.room(n, self)
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
        except (msgspec.MsgspecError, RecursionError) as exc:  # msgspec recurses on deep nesting
            srv.counters.malformed += 1
            self.send_message(ErrorReply.of(_decode_problem(exc, payload, fmt)))
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
                        srv.check_periods(row)
                    except MessageError as exc:
                        srv.counters.malformed += 1
                        self.send_message(ErrorReply.of(exc, request_ids=[str(item.request_id)]))
                        continue
                    reqs.append(item)
                    rows.append(row)
                case DeviceAlert():
                    try:  # what the throttle's columns cannot hold is this alert's error, not the tick's
                        eui_to_int(item.device, "device")
                        if not 0 <= item.alert_code <= 0xFFFF:
                            raise MessageError("alert_code", item.alert_code, "a 16-bit alert code (0 .. 0xFFFF)")
                        if not 0 <= item.counter < 1 << 64:  # forwarded in MessagePack too
                            raise MessageError("counter", item.counter, "an unsigned 64-bit integer")
                    except MessageError as exc:
                        srv.counters.malformed += 1
                        self.send_message(ErrorReply.of(exc))
                        continue
                    srv.enqueue_alert(item, self.id, fmt)
                case Subscribe():
                    if item.alerts:
                        srv.subscribe(self.id)
                case StatsRequest():
                    self.send_message(srv.stats())
        if not reqs:
            return
        why = srv.room(len(reqs), self)
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
