"""Hostile and careless clients against the wall-clock server: stalls, idlers, hogs, odd HTTP,
oversized frames and a server that goes away. Each case once took the server or a result down.

Time-outs are judged on the server's clock: the tests give it a :class:`ManualClock`, move it
on, and call :meth:`DccServer.reap` (which the server also runs by itself every 0.1 s), so no
test waits for wall time to pass.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import numpy as np
import pytest
from cli_helper import cli
from dccsim.bench.compose import load_run
from dccsim.bench.testing import ManualClock, started_server
from dccsim.core.errors import MessageError
from dccsim.core.messages import ErrorReply
from dccsim.core.protocol import (
    TAG_ACK,
    TAG_BUSY,
    TAG_CLOSE,
    TAG_ERROR,
    TAG_JSON,
    TAG_MSGPACK,
    TAG_ROWS,
    frame,
    frame_head,
)
from dccsim.core.server import ServerConfig
from dccsim.loadgen.netclient import OpenLoopClient, run_open_loop, traffic_from_workload
from dccsim.loadgen.population import build_population
from dccsim.loadgen.workload import DayWorkload
from test_server import Raw, T, _raw_http, finals_count, rows, run

SMOKE = load_run("smoke")
S = SMOKE.scenario
POP = build_population(S)
SECOND = 1_000_000_000


def _server(clock: ManualClock | None = None, **cfg: Any) -> Any:
    return started_server(SMOKE, clock=clock, **cfg)


async def _closed_with(c: Raw) -> bytes:
    """The reason of the X frame the server closes ``c`` with (then end of stream)."""
    tag, reason = await c.frame()
    assert tag == TAG_CLOSE, (tag, reason)
    assert await asyncio.wait_for(c.reader.read(), T) == b""
    await c.close()
    return reason


_EMPTY_BATCH = frame(TAG_ROWS, (0).to_bytes(8, "big") + msgspec.msgpack.encode([]))


async def _stall(c: Raw, partial: bytes) -> None:
    """Send ``partial`` (the start of a frame) in one write behind an empty batch, and wait for
    that batch's ack: the server has read the partial frame by then, in the same read."""
    await c.send(_EMPTY_BATCH + partial)
    tag, p = await c.frame()
    assert tag == TAG_ACK and msgspec.msgpack.decode(p) == [0, 0]


async def _served(port: int, counter0: int = 1) -> None:
    """A good client: a batch of rows is acknowledged in full."""
    c = await Raw.open(port)
    await c.send(frame(TAG_ROWS, (5).to_bytes(8, "big") + rows(POP, S, 3, counter0)))
    tag, p = await c.frame()
    assert tag == TAG_ACK and msgspec.msgpack.decode(p) == [5, 3]
    await c.close()


# ---------------------------------------------------------------------------- time-outs
def test_stalled_headers_do_not_lock_out_other_clients() -> None:
    """Five sockets that send two bytes and wait, under max_connections 5: today they are
    closed, told why, after the header time-out, and the next client is served."""
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock, max_connections=5, header_timeout_s=10) as (srv, port):
            stalled = [await Raw.open(port) for _ in range(5)]
            for c in stalled:
                await _stall(c, b"\0\0")
            late = await Raw.open(port)  # all five slots hold a partial frame: none can be evicted
            assert b"too many connections" in await _closed_with(late)
            clock.advance(9 * SECOND)
            srv.reap()
            clock.advance(2 * SECOND)
            srv.reap()
            for c in stalled:
                assert b"header incomplete after 11.0 s (server.header_timeout_s = 10)" in await _closed_with(c)
            await _served(port)
            assert srv.counters.timed_out == 5

    run(main())


def test_a_frame_that_trickles_in_past_the_frame_time_out_is_closed_with_the_reason() -> None:
    clock = ManualClock()
    whole = frame(TAG_ROWS, (9).to_bytes(8, "big") + rows(POP, S, 4, 1))

    async def main() -> None:
        async with _server(clock, header_timeout_s=5, frame_timeout_s=30) as (srv, port):
            on_time = await Raw.open(port)
            await _stall(on_time, whole[:20])  # header complete, body partial
            clock.advance(20 * SECOND)  # past the header time-out, not the frame's
            srv.reap()
            await on_time.send(whole[20:])
            tag, p = await on_time.frame()
            assert tag == TAG_ACK and msgspec.msgpack.decode(p) == [9, 4]
            slow = await Raw.open(port)
            await _stall(slow, whole[:20])
            clock.advance(31 * SECOND)
            srv.reap()
            assert b"frame incomplete after 31.0 s (server.frame_timeout_s = 30)" in await _closed_with(slow)
            await on_time.close()

    run(main())


def test_idle_connections_are_closed_and_make_room_for_new_clients() -> None:
    """256 idle sockets locked everyone out at the default limit: at the limit, the connection
    idle longest (and owed nothing) is closed for a newcomer; any idle one after idle_timeout_s."""
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock, max_connections=3, idle_timeout_s=60, evict_idle_s=1) as (srv, port):
            idlers = [await Raw.open(port) for _ in range(3)]
            for i, c in enumerate(idlers):  # the first is the longest idle
                await c.send(frame(TAG_ROWS, (i).to_bytes(8, "big") + msgspec.msgpack.encode([])))
                assert (await c.frame())[0] == TAG_ACK
                clock.advance(SECOND)
            await _served(port, counter0=100)  # takes the first idler's slot
            assert b"make room for a new client: idle 3.0 s" in await _closed_with(idlers[0])
            assert srv.counters.evicted == 1
            clock.advance(60 * SECOND)
            srv.reap()
            for c in idlers[1:]:
                assert b"idle for 6" in await _closed_with(c)

    run(main())


def test_a_connection_owed_answers_is_not_idle() -> None:
    """A client waiting for its final answers is not idle, however long they take."""
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock, idle_timeout_s=5, evict_idle_s=1, max_connections=1) as (srv, port):
            c = await Raw.open(port)
            await c.send(frame(TAG_ROWS, (1).to_bytes(8, "big") + rows(POP, S, 2, 1)))
            assert (await c.frame())[0] == TAG_ACK
            clock.advance(4 * SECOND)  # the manual clock is the server's: these answers are not due yet
            srv.reap()
            other = await Raw.open(port)  # not evicted for a newcomer either
            assert b"too many connections" in await _closed_with(other)
            assert srv.counters.timed_out == 0 and srv.counters.evicted == 0
            await c.close()

    run(main())


# ---------------------------------------------------------------------------- per-connection limit
def test_one_connection_cannot_take_every_pending_slot() -> None:
    clock = ManualClock()  # answers are never due: what is received stays owed

    async def main() -> None:
        async with _server(clock, max_pending_per_connection=10) as (srv, port):
            hog = await Raw.open(port)
            await hog.send(frame(TAG_ROWS, (0).to_bytes(8, "big") + rows(POP, S, 8, 1)))
            assert (await hog.frame())[0] == TAG_ACK
            await hog.send(frame(TAG_ROWS, (8).to_bytes(8, "big") + rows(POP, S, 3, 9)))
            tag, p = await hog.frame()
            busy = msgspec.msgpack.decode(p)
            assert tag == TAG_BUSY and busy["batch_id"] == 8 and busy["count"] == 3
            assert "server.max_pending_per_connection" in busy["reason"]
            await _served(port, counter0=50)  # another connection still has room
            await hog.close()

    run(main())


# ---------------------------------------------------------------------------- HTTP
@pytest.mark.parametrize(
    ("request_line", "status", "says"),
    [
        (b"get /api/v1/response/x HTTP/1.1", 501, b"method get not implemented"),
        (b"BREW /api/v1/serviceS HTTP/1.1", 501, b"method BREW not implemented"),
        (b"post /api/v1/serviceS HTTP/1.1", 501, b"methods are case-sensitive"),
        (b"PUT /api/v1/serviceS HTTP/1.1", 405, b"use POST"),
        (b"GET / SPDY/3", 400, b"malformed request line"),
    ],
)
def test_unknown_and_lower_case_http_methods_get_an_http_status(request_line: bytes, status: int, says: bytes) -> None:
    """They were taken for binary frames and answered with one."""

    async def main() -> None:
        async with _server() as (srv, port):
            got = await _raw_http(port, request_line + b"\r\nConnection: close\r\n\r\n")
            assert got[0] == status and says in got[1], got

    run(main())


def test_an_http_request_stalled_mid_head_gets_408_with_the_reason() -> None:
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock, header_timeout_s=10) as (srv, port):
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
            # a whole request, then the start of the next in the same write: once the first is
            # answered, the server has read the partial head too
            w.write(b"GET /api/v1/response/none HTTP/1.1\r\n\r\nPOST /api/v1/serviceS HTTP/1.1\r\nContent-Le")
            first = await asyncio.wait_for(r.readuntil(b"(pending or unknown)\n"), T)
            assert first.startswith(b"HTTP/1.1 404")
            clock.advance(11 * SECOND)
            srv.reap()
            reply = await asyncio.wait_for(r.read(), T)
            assert reply.startswith(b"HTTP/1.1 408 Request Timeout") and b"header incomplete" in reply
            w.close()
            await w.wait_closed()

    run(main())


# ---------------------------------------------------------------------------- the load client's books
def test_oversized_frames_are_refused_errors_not_lost_and_named_by_batch() -> None:
    """A server whose frame limit is below the load's frames refuses each; the load counts them
    as refused (by the field the server named), not as lost."""
    traffic = traffic_from_workload(DayWorkload(S, POP))

    async def main() -> Any:
        async with _server(max_frame_bytes=16) as (srv, port):  # below any R frame of a row
            return await run_open_loop("127.0.0.1", port, traffic, 2000, 0.1, time.monotonic_ns, drain_timeout_s=T)

    c = run(main())
    wc = c.summary()
    assert wc["sent"] == wc["offered"] == wc["refused_error"] == 200 and wc["lost"] == 0
    assert wc["refused_error_by_field"] == {"frame.length": 200}


def test_a_refusal_that_names_no_batch_settles_the_oldest_batch_waiting() -> None:
    traffic = traffic_from_workload(DayWorkload(S, POP))
    n = 10
    client = OpenLoopClient(traffic, n, np.arange(n, dtype=np.int64), time.monotonic_ns)
    client.res.sent_ns[:] = 1
    client.awaiting.extend([(0, 4), (4, 10)])
    nameless = ErrorReply(message="too big", field="frame.length", value="9", expected="at most 8 bytes")
    client.data_received(frame(TAG_ERROR, msgspec.msgpack.encode(nameless)))
    assert client.res.refused.tolist() == [2] * 4 + [0] * 6
    assert client.summary()["lost"] == 6 and list(client.awaiting) == [(4, 10)]


def test_a_server_that_dies_mid_run_leaves_every_request_accounted_for() -> None:
    """A server that takes the first frame and dies: what was sent and not answered is lost,
    the rest never sent, and the two add up to what was offered."""
    traffic = traffic_from_workload(DayWorkload(S, POP))

    async def main() -> Any:
        async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readexactly(4)
            await reader.readexactly(int.from_bytes(head, "big"))
            writer.transport.abort()  # type: ignore[attr-defined]

        server = await asyncio.start_server(dies, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await run_open_loop("127.0.0.1", port, traffic, 2000, 0.5, time.monotonic_ns, drain_timeout_s=1)
        finally:
            server.close()

    wc = run(main()).summary()
    assert 0 < wc["sent"] < wc["offered"] == 1000
    assert wc["never_sent"] == wc["offered"] - wc["sent"] and wc["lost"] == wc["sent"] and wc["answered"] == 0


# ---------------------------------------------------------------------------- flags and limits
def test_server_limits_are_checked() -> None:
    for bad in (
        {"speed": float("inf")},
        {"max_frame_bytes": (1 << 30) + 1},
        {"idle_timeout_s": 0},
        {"header_timeout_s": float("nan")},
        {"max_pending_per_connection": 0},
    ):
        with pytest.raises(MessageError) as info:
            ServerConfig(**bad)  # type: ignore[arg-type]
        assert info.value.field == "server." + next(iter(bad))


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["load", "--target", "tcp://127.0.0.1:99999"], "--target: got 'tcp://127.0.0.1:99999'"),
        (["load", "--target", "tcp://127.0.0.1:0"], "with a port 1 to 65535"),
        (["serve", "--idle-timeout", "0", "--no-log"], "--idle-timeout: got 0.0, expected a finite number"),
        (["serve", "--max-pending-per-connection", "0", "--no-log"], "--max-pending-per-connection: got 0"),
    ],
)
def test_bad_server_and_load_flags_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(*argv, capsys=capsys)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_the_frame_head_of_an_oversized_rows_frame_names_its_batch() -> None:
    """When an over-long R frame's batch id arrives with its header, the refusal names it."""

    async def main() -> None:
        async with _server(max_frame_bytes=64) as (srv, port):
            c = await Raw.open(port)
            body = (77).to_bytes(8, "big") + b"\x90" * 100
            await c.send(frame_head(TAG_ROWS, len(body)) + body)
            tag, p = await c.frame()
            err = msgspec.msgpack.decode(p)
            assert tag == TAG_ERROR and err["field"] == "frame.length" and err["batch_id"] == 77
            await _stall(c, b"")  # the connection goes on
            await c.close()

    run(main())


# ---------------------------------------------------------------------------- deep nesting, a failing log
@pytest.mark.parametrize("tag", [TAG_JSON, TAG_MSGPACK])
def test_deeply_nested_messages_get_an_error_reply_and_the_connection_goes_on(tag: int) -> None:
    """msgspec raises RecursionError on deep nesting: it dropped the connection with no reply."""
    # the nesting under a field msgspec skips (unknown to the message type): it recurses there
    if tag == TAG_JSON:
        deep = b'{"kind": "stats", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    else:
        deep = b"\x82\xa4kind\xa5stats\xa1x" + b"\x91" * 100_000 + b"\x90"

    async def main() -> None:
        async with _server(max_frame_bytes=1 << 20) as (srv, port):
            c = await Raw.open(port)
            await c.send(frame(tag, deep))
            got, p = await c.frame()
            reply = msgspec.json.decode(p) if tag == TAG_JSON else msgspec.msgpack.decode(p)
            assert got == tag and reply["kind"] == "error" and "nest" in reply["message"], reply
            await _stall(c, b"")  # still served
            await c.close()

    run(main())


def test_a_log_that_fails_is_given_up_and_the_clients_are_still_answered() -> None:
    from dccsim.bench.testing import ListSink

    class FullDisk(ListSink):
        def requests(self, rows: Any) -> None:
            raise OSError(28, "No space left on device")

    async def main() -> Any:
        async with started_server(SMOKE, sink=FullDisk(), log_batch=1) as (srv, port):
            for counter0 in (1, 100):  # the first batch's log write fails; the second is still answered
                c = await Raw.open(port)
                await c.send(frame(TAG_ROWS, (0).to_bytes(8, "big") + rows(POP, S, 3, counter0)))
                got = await c.frames_until(lambda fs: finals_count(fs) >= 3)
                assert got[0][0] == TAG_ACK and finals_count(got) == 3
                await c.close()
            return srv

    srv = run(main())
    assert isinstance(srv.log_failure, OSError) and srv.sink is None


def test_a_failure_inside_the_server_tells_the_clients_of_that_batch_and_the_server_goes_on() -> None:
    """A bug in a micro-batch (not a client's input) left its acknowledged rows unanswered and
    their clients waiting: now each such client is closed with the reason, and the next batch
    is served."""

    async def main() -> Any:
        async with _server() as (srv, port):
            real = srv.pipeline.process

            def broken(*args: Any, **kwargs: Any) -> Any:
                srv.pipeline.process = real  # once
                raise RuntimeError("a bug")

            srv.pipeline.process = broken
            c = await Raw.open(port)
            await c.send(frame(TAG_ROWS, (3).to_bytes(8, "big") + rows(POP, S, 4, 1)))
            tag, p = await c.frame()
            assert tag == TAG_ACK and msgspec.msgpack.decode(p) == [3, 4]
            reason = await _closed_with(c)
            assert b"internal error processing a micro-batch (RuntimeError: a bug)" in reason
            assert b"4 of this connection's acknowledged requests will not be answered" in reason
            await _served(port, counter0=50)
            good = await Raw.open(port)
            await good.send(frame(TAG_ROWS, (9).to_bytes(8, "big") + rows(POP, S, 3, 80)))
            got = await good.frames_until(lambda fs: finals_count(fs) >= 3)
            assert finals_count(got) == 3
            await good.close()
            return srv

    srv = run(main())
    assert srv.counters.internal_errors == 1 and "RuntimeError: a bug" in srv.last_internal_error
