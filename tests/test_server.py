"""The wall-clock server on 127.0.0.1, driven by the real open-loop client and by raw sockets.

Every test starts its own server on an ephemeral port inside one event loop; every wait has a
time-out; the invariant checked throughout: each request sent gets exactly one final answer,
or is counted as refused (busy or error), none lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from dccsim.bench.compose import build_server, load_run
from dccsim.bench.testing import ManualClock, scenario, started_server
from dccsim.core.messages import (
    DeviceAlert,
    ReadActiveImportProfileData,
    ReadLogPeriod,
    RequestId,
    RequestRow,
    ServiceRequest,
)
from dccsim.core.protocol import (
    FINAL_RECORD,
    TAG_ACK,
    TAG_CLOSE,
    TAG_ERROR,
    TAG_FINALS,
    TAG_JSON,
    TAG_MSGPACK,
    TAG_ROWS,
    frame,
)
from dccsim.core.records import REQUEST_CLASSES, LogSink
from dccsim.core.server import DccServer, ServerConfig
from dccsim.core.wire import encode_rows
from dccsim.loadgen.netclient import Traffic, run_open_loop, traffic_from_workload
from dccsim.loadgen.population import Population, build_population
from dccsim.loadgen.scenario import Scenario, load_scenario
from dccsim.loadgen.workload import DayWorkload

T = 10.0  # seconds: the bound on any single wait
SMOKE = load_run("smoke")


@pytest.fixture(scope="module")
def world() -> tuple[Scenario, Population, Traffic]:
    s, _ = load_scenario("smoke")
    pop = build_population(s)
    return s, pop, traffic_from_workload(DayWorkload(s, pop))


def run(coro: Awaitable[Any]) -> Any:
    import uvloop

    return uvloop.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def server(world: tuple[Scenario, Population, Traffic], sink: LogSink | None = None, **cfg: Any) -> Any:
    """A server for the smoke scenario on an ephemeral port (the test harness's)."""
    return started_server(SMOKE, sink=sink, **cfg)


class Raw:
    """A raw frame client: send bytes, read whole frames with a time-out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
        return cls(r, w)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), T)

    async def frame(self) -> tuple[int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(4), T)
        body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big")), T)
        return body[0], body[1:]

    async def frames_until(self, done: Callable[[list[tuple[int, bytes]]], bool]) -> list[tuple[int, bytes]]:
        got: list[tuple[int, bytes]] = []
        while not done(got):
            got.append(await self.frame())
        return got

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), T)
        except (ConnectionError, OSError):
            pass


def rows(pop: Population, s: Scenario, n: int, counter0: int) -> bytes:
    users = {u.role: int(u.eui.replace("-", ""), 16) for u in s.users}
    return encode_rows(
        [
            RequestRow(
                originator=users["IS"],
                target=int(pop.ids[i]),
                counter=counter0 + i,
                command_variant=1,
                srv="11.2",
                role="IS",
            )
            for i in range(n)
        ]
    )


def finals_count(frames: list[tuple[int, bytes]]) -> int:
    return sum(len(np.frombuffer(p, FINAL_RECORD)) for t, p in frames if t == TAG_FINALS)


# ---------------------------------------------------------------------------- open loop
def test_open_loop_every_request_answered_once(world: Any) -> None:
    s, pop, traffic = world

    async def main() -> Any:
        async with server(world) as (srv, port):
            c = await run_open_loop("127.0.0.1", port, traffic, 4000, 0.5, time.monotonic_ns, drain_timeout_s=T)
            return c, srv.counters

    c, counters = run(main())
    res = c.res
    assert res.sent == res.n == 2000
    assert res.answered == res.n and res.duplicates == 0 and res.lost == 0 and res.refused_count == 0
    assert (res.ack_ns > 0).all() and (res.done_ns >= res.ack_ns).all()
    assert counters.finals == counters.requests == 2000
    sm = c.summary()
    assert sm["final_latency_s"]["p50"] > 0 and sm["send_lag_s"]["max"] >= 0
    assert res.stats is not None and res.stats.server["requests"] == 2000


def test_the_server_and_the_client_log_request_and_alert_rows(world: Any, tmp_path: Path) -> None:
    """The server's sink gets its micro-batches as request rows (concatenated per log batch)
    and the throttled alerts as alert rows; the client's answers become request rows too."""
    from dccsim.bench.results.logs import read_log
    from dccsim.bench.results.runlog import RunSink

    s, pop, traffic = world
    served = RunSink(tmp_path / "srv", "served", s.seed, s.day_start_ns)
    dev = int(pop.ids[0])
    eui = "-".join(f"{dev:016X}"[i : i + 2] for i in range(0, 16, 2))
    t = datetime(2026, 1, 1, tzinfo=UTC)
    storm = [
        DeviceAlert(device=eui, recipient=s.users[0].eui, counter=i, alert_code=0x8F84, time=t) for i in range(50)
    ]

    async def main() -> Any:
        async with server(world, served, log_batch=300) as (srv, port):
            c = await run_open_loop("127.0.0.1", port, traffic, 4000, 0.25, time.monotonic_ns, drain_timeout_s=T)
            sub = await Raw.open(port)
            await sub.send(frame(TAG_JSON, b'{"kind": "subscribe"}'))
            await sub.send(frame(TAG_JSON, msgspec.json.encode(storm)))
            tag, p = await sub.frame()  # forwarded after the sink took the batch's alert rows
            assert json.loads(p)["kind"] == "device_alert"
            await sub.close()
            return c

    c = run(main())
    served.close()
    assert c.res.answered == c.res.n == 1000
    requests = read_log(tmp_path / "srv" / "requests.arrow", strict=True, raw=True)
    assert requests.column("seq").to_pylist() == list(range(1000))
    assert set(requests.column("request_class").to_pylist()) <= set(REQUEST_CLASSES)
    assert set(requests.column("attempt").to_pylist()) == {0}
    alerts = read_log(tmp_path / "srv" / "alerts.arrow", strict=True, raw=True)
    assert alerts.num_rows == 50 and "throttled" in alerts.column("action").to_pylist()
    assert alerts.column("device").to_pylist() == [dev] * 50

    loaded = RunSink(tmp_path / "load", "loaded", s.seed, s.day_start_ns)
    targets = np.arange(1, len(REQUEST_CLASSES) + 1, dtype=np.int64) * 10**9
    c.write_to(loaded, s.day_start_ns, targets, 1000.0, chunk=300)
    loaded.close()
    table = read_log(tmp_path / "load" / "requests.arrow", strict=True, raw=True)
    assert table.column("seq").to_pylist() == list(range(1000))
    lat = table.column("latency_ns").to_numpy()
    assert (lat == table.column("t_done_ns").to_numpy() - table.column("t_scheduled_ns").to_numpy()).all()
    classes = [REQUEST_CLASSES.index(k) for k in table.column("request_class").to_pylist()]
    assert (table.column("within_target").to_numpy() == (lat * 1000.0 <= targets[classes])).all()


def test_overload_is_refused_busy_not_lost(world: Any) -> None:
    s, pop, traffic = world

    # a DSP that takes everything (no admission control answering at once), so answers wait
    # and the pending limit is what refuses
    takes_all = scenario("smoke", **{"capacity.admission": False})

    async def main() -> Any:
        async with started_server(takes_all, max_inbound=64, max_pending=300) as (srv, port):
            c = await run_open_loop("127.0.0.1", port, traffic, 40_000, 0.4, time.monotonic_ns, drain_timeout_s=T)
            return c, srv.counters

    c, counters = run(main())
    res = c.res
    busy = int((res.refused == 1).sum())
    assert busy > 0 and counters.refused_busy == busy
    assert res.answered + res.refused_count == res.sent == res.n
    assert res.lost == 0 and res.duplicates == 0


# ---------------------------------------------------------------------------- bad frames
def test_bad_frames_get_errors_and_the_connection_goes_on(world: Any) -> None:
    s, pop, _ = world

    async def main() -> None:
        async with server(world, max_frame_bytes=4096) as (srv, port):
            c = await Raw.open(port)
            # unknown tag
            await c.send(frame(ord("Q"), b"hello"))
            tag, p = await c.frame()
            err = msgspec.msgpack.decode(p)
            assert tag == TAG_ERROR and err["field"] == "frame.tag" and "0x51" in err["message"]
            # rows that are not rows: names the field, refuses the batch by id
            await c.send(frame(TAG_ROWS, (7).to_bytes(8, "big") + msgspec.msgpack.encode([[1, 2, "x"]])))
            tag, p = await c.frame()
            err = msgspec.msgpack.decode(p)
            assert tag == TAG_ERROR and err["batch_id"] == 7 and err["field"] and err["expected"]
            # an unknown SRV: the field and the value
            bad = encode_rows(
                [
                    RequestRow(
                        originator=1 << 60, target=int(pop.ids[0]), counter=1, command_variant=1, srv="99.9", role="IS"
                    )
                ]
            )
            await c.send(frame(TAG_ROWS, (8).to_bytes(8, "big") + bad))
            tag, p = await c.frame()
            err = msgspec.msgpack.decode(p)
            assert tag == TAG_ERROR and err["batch_id"] == 8 and err["field"] == "srv" and err["value"] == "99.9"
            # oversized: skipped as it streams in, answered, connection goes on
            await c.send(frame(TAG_ROWS, b"\0" * 10_000))
            tag, p = await c.frame()
            assert tag == TAG_ERROR and "exceeds" in msgspec.msgpack.decode(p)["message"]
            # a good batch still works: one ack, then its finals
            await c.send(frame(TAG_ROWS, (100).to_bytes(8, "big") + rows(pop, s, 20, 1)))
            got = await c.frames_until(lambda fs: finals_count(fs) >= 20)
            assert got[0][0] == TAG_ACK and msgspec.msgpack.decode(got[0][1]) == [100, 20]
            assert finals_count(got) == 20
            # broken framing (length 0): closed with the reason
            await c.send(b"\0\0\0\0")
            tag, p = await c.frame()
            assert tag == TAG_CLOSE and b"framing broken" in p
            assert await asyncio.wait_for(c.reader.read(), T) == b""
            await c.close()
            assert srv.counters.oversized == 1 and srv.counters.malformed >= 4

    run(main())


def test_disconnect_mid_frame_harms_nobody_else(world: Any) -> None:
    s, pop, traffic = world

    async def main() -> Any:
        async with server(world) as (srv, port):
            rude = await Raw.open(port)
            whole = frame(TAG_ROWS, (0).to_bytes(8, "big") + rows(pop, s, 50, 10**12))
            # a complete batch, then half of the next one, then gone before its answers are due
            await rude.send(whole + whole[: len(whole) // 2])
            await rude.frame()  # the ack of the complete batch
            rude.writer.transport.abort()
            c = await run_open_loop(
                "127.0.0.1", port, traffic, 3000, 0.3, time.monotonic_ns, drain_timeout_s=T, counter_base=10**13
            )
            return c, srv.counters

    c, counters = run(main())
    assert c.res.answered == c.res.n and c.res.lost == 0
    assert counters.orphaned + counters.finals == counters.requests == c.res.n + 50


def test_connection_limit(world: Any) -> None:
    async def main() -> None:
        async with server(world, max_connections=1) as (srv, port):
            a = await Raw.open(port)
            b = await Raw.open(port)
            tag, p = await b.frame()
            assert tag == TAG_CLOSE and b"too many connections" in p
            await a.close()
            await b.close()
            assert srv.counters.connections_refused == 1

    run(main())


# ---------------------------------------------------------------------------- full messages
def _request(pop: Population, s: Scenario, counter: int, srv: str = "4.8.1") -> ServiceRequest:
    mdr = next(u.eui for u in s.users if u.role == "MDR")
    dev = int(pop.ids[pop.esme[0]])
    target = "-".join(f"{dev:016X}"[i : i + 2] for i in range(0, 16, 2))
    rid = RequestId.parse(f"{mdr}:{target}:{counter}")
    period = ReadLogPeriod(start=datetime(2026, 11, 22, tzinfo=UTC), end=datetime(2026, 11, 23, tzinfo=UTC))
    return ServiceRequest(
        request_id=rid,
        command_variant=1,
        service_reference="4.8",
        srv=srv,
        body=ReadActiveImportProfileData(period=period),
        role="MDR",
    )


def test_a_value_a_column_cannot_hold_is_that_request_s_error_and_the_rest_are_answered(world: Any) -> None:
    """Command Variant 300 and a read period in year 9999 used to kill the connection
    (OverflowError) and every request of the frame with it: now each is its own DUIS error
    (E12, E13) naming the field, and the good requests of the same frame are acknowledged."""
    s, pop, _ = world
    docs = [msgspec.to_builtins(_request(pop, s, k)) for k in (20, 21, 22, 23)]
    docs[1]["command_variant"] = 300
    docs[2]["body"]["period"]["end"] = "9999-12-31T00:00:00Z"

    async def main() -> None:
        async with server(world) as (srv, port):
            c = await Raw.open(port)
            await c.send(frame(TAG_JSON, msgspec.json.encode(docs)))
            errors: dict[int, dict[str, Any]] = {}
            acked: list[int] = []
            while len(errors) < 2 or len(acked) < 2:
                tag, p = await c.frame()
                assert tag == TAG_JSON
                got = json.loads(p)
                for item in got if isinstance(got, list) else [got]:
                    if item["kind"] == "error":
                        errors[int(item["request_ids"][0].rsplit(":", 1)[1])] = item
                    elif item["kind"] == "response" and item["response_code"] == "I99":
                        acked.append(item["request_id"]["counter"])
            assert sorted(acked) == [20, 23]
            assert errors[21]["code"] == "E12" and errors[21]["field"].endswith("command_variant")
            assert errors[22]["code"] == "E13" and errors[22]["field"].endswith("period.end")
            # the connection goes on
            await c.send(frame(TAG_JSON, msgspec.json.encode(_request(pop, s, 24))))
            tag, p = await c.frame()
            assert json.loads(p)["response_code"] == "I99"
            await c.close()

    run(main())


def test_json_requests_get_i99_then_a_final_response(world: Any) -> None:
    s, pop, _ = world

    async def main() -> None:
        async with server(world) as (srv, port):
            c = await Raw.open(port)
            reqs = [_request(pop, s, 5), _request(pop, s, 6)]
            await c.send(frame(TAG_JSON, msgspec.json.encode(reqs)))
            tag, p = await c.frame()
            acks = json.loads(p)
            assert tag == TAG_JSON and [a["response_code"] for a in acks] == ["I99", "I99"]
            finals = []
            while len(finals) < 2:
                tag, p = await c.frame()
                finals.append(json.loads(p))
            assert {f["kind"] for f in finals} == {"response"}
            assert sorted(f["request_id"]["counter"] for f in finals) == [5, 6]
            assert all(f["response_code"] in ("I0", "E20", "E21") for f in finals)
            # malformed JSON message: an error naming the field; the connection goes on
            await c.send(frame(TAG_JSON, b'{"kind": "request", "request_id": 3}'))
            tag, p = await c.frame()
            err = json.loads(p)
            assert err["kind"] == "error" and "request_id" in err["field"]
            await c.send(frame(TAG_JSON, msgspec.json.encode(_request(pop, s, 7))))
            tag, p = await c.frame()
            assert json.loads(p)["response_code"] == "I99"
            await c.frame()
            await c.close()

    run(main())


def test_alerts_are_throttled_then_streamed_to_subscribers(world: Any) -> None:
    s, pop, _ = world

    async def main() -> None:
        async with server(world) as (srv, port):
            sub = await Raw.open(port)
            await sub.send(frame(TAG_JSON, b'{"kind": "subscribe"}'))
            await sub.send(frame(TAG_JSON, b'{"kind": "stats"}'))  # a reply proves the subscribe was read first
            tag, p = await sub.frame()
            assert json.loads(p)["kind"] == "stats_reply"
            dev = int(pop.ids[0])
            eui = "-".join(f"{dev:016X}"[i : i + 2] for i in range(0, 16, 2))
            storm = [
                DeviceAlert(
                    device=eui,
                    recipient=s.users[0].eui,
                    counter=i,
                    alert_code=0x8F84,
                    time=datetime(2026, 11, 23, tzinfo=UTC),
                )
                for i in range(200)
            ]
            emu = await Raw.open(port)
            await emu.send(frame(TAG_JSON, msgspec.json.encode(storm)))
            first = json.loads((await sub.frame())[1])
            assert first["kind"] == "device_alert" and first["alert_code"] == 0x8F84
            stats = srv.stats()
            assert srv.counters.alerts_in == 200
            assert stats.throttle["throttled"] > 0  # a storm is cut down
            assert srv.counters.alerts_forwarded == 200 - stats.throttle["throttled"]
            await sub.close()
            await emu.close()

    run(main())


# ---------------------------------------------------------------------------- HTTP
async def _http(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    w.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    data = await asyncio.wait_for(r.read(), T)
    w.close()
    await w.wait_closed()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def test_duis_xml_over_http(world: Any) -> None:
    from dccsim.core.duisxml import encode_request_xml

    s, pop, _ = world

    async def main() -> None:
        async with server(world, max_frame_bytes=64 * 1024) as (srv, port):
            req = _request(pop, s, 11)
            status, body = await _http(port, "POST", "/api/v1/serviceS", encode_request_xml(req))
            assert status == 200 and b"<sr:ResponseCode>I99</sr:ResponseCode>" in body
            status, body = await _http(port, "POST", "/api/v1/serviceD", b"<sr:Request")
            assert status == 400 and b"expected" in body
            status, body = await _http(port, "POST", "/api/v1/serviceT", b"x" * 70_000)
            assert status == 413
            status, _ = await _http(port, "POST", "/api/v1/elsewhere", b"")
            assert status == 404
            # the final answer is polled (bounded: the device leg is milliseconds at speed 1000)
            deadline = time.monotonic() + T
            while True:
                status, body = await _http(port, "GET", f"/api/v1/response/{req.request_id}")
                if status == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
            assert status == 200 and b"<sr:ResponseCode>" in body and b"I99" not in body

    run(main())


async def _raw_http(port: int, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` as it is; the reply to a request the server closes after."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    w.write(data)
    reply = await asyncio.wait_for(r.read(), T)
    w.close()
    await w.wait_closed()
    head, _, rest = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def test_http_requests_the_server_cannot_take_get_their_status(world: Any) -> None:
    async def main() -> None:
        async with server(world) as (srv, port):
            assert await _http(port, "GET", "/api/v1/serviceT") == (405, b"method not allowed: use POST\n")
            bad_length = b"POST /api/v1/serviceS HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
            assert await _raw_http(port, bad_length) == (400, b"Content-Length: expected a non-negative integer\n")
            assert await _raw_http(port, b"POST /api/v1/serviceS\r\n\r\n") == (
                400,
                b"malformed request line: expected METHOD PATH HTTP/1.1\n",
            )
            assert await _raw_http(port, b"GET /" + b"a" * 20_000) == (431, b"request header fields too large\n")
            assert srv.counters.http_requests == 1  # only the first got as far as a request

    run(main())


# ---------------------------------------------------------------------------- SIGTERM
def test_serve_and_load_end_to_end_and_sigterm_flushes_the_server_log(world: Any, tmp_path: Path) -> None:
    """``dccsim serve`` and ``dccsim load`` as a user runs them: the load's run folder holds
    its wall-clock figures; SIGTERM makes the server write its own."""
    out = tmp_path / "srv"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dccsim.bench", "serve", "--port", "0", "--out", str(out)],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split(";")[0])
        load = subprocess.run(
            [sys.executable, "-m", "dccsim.bench", "load", "smoke", "--target", f"tcp://127.0.0.1:{port}",
             "--rate", "2000", "--duration", "0.5", "--drain", str(T), "--out", str(tmp_path / "load")],
            capture_output=True, env=env, timeout=120,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr.decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    import pyarrow as pa

    wallclock = json.loads((tmp_path / "load" / "summary.json").read_text())["wallclock"]
    sent = wallclock["sent"]
    assert sent == wallclock["answered"] == 1000 and wallclock["lost"] == 0
    assert wallclock["final_latency_s"]["p99"] > 0 and (tmp_path / "load" / "report.html").is_file()
    with pa.ipc.open_stream(out / "requests.arrow") as reader:
        table = reader.read_all()
    assert table.num_rows == sent
    summary = json.loads((out / "summary.json").read_text())
    assert summary["server"]["finals"] == sent and (out / "report.html").is_file()


def test_load_that_could_not_offer_its_requests_exits_1(tmp_path: Path) -> None:
    """A server that refuses the load's connection (its one connection is taken by a client
    mid-frame): the load says how many of its requests it sent and exits 1, not 0."""
    import socket

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dccsim.bench", "serve", "--port", "0", "--no-log", "--max-connections", "1",
         "--header-timeout", "600"],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        port = int(line.split("127.0.0.1:")[1].split(";")[0])
        # takes the one connection, mid-frame, so it is not closed to make room (it would be, idle)
        with socket.create_connection(("127.0.0.1", port), timeout=T) as holder:
            holder.sendall(b"\0\0")
            load = subprocess.run(
                [sys.executable, "-m", "dccsim.bench", "load", "smoke", "--target", f"tcp://127.0.0.1:{port}",
                 "--rate", "2000", "--duration", "0.2", "--drain", "1", "--out", str(tmp_path / "load")],
                capture_output=True, env=env, timeout=120,
            )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    err = load.stderr.decode()
    assert load.returncode == 1, err
    assert "dccsim load: sent 0 of the 400 requests asked for" in err, err
    wallclock = json.loads((tmp_path / "load" / "summary.json").read_text())["wallclock"]
    assert wallclock["never_sent"] == wallclock["offered"] == 400


# ---------------------------------------------------------------------------- pacing and writes
def test_open_loop_never_sends_early_and_spaces_its_frames(world: Any) -> None:
    s, pop, traffic = world

    async def main() -> Any:
        async with server(world) as (srv, port):
            return await run_open_loop("127.0.0.1", port, traffic, 50_000, 0.2, time.monotonic_ns, drain_timeout_s=T)

    c = run(main())
    res = c.res
    assert res.answered == res.n == 10_000 and res.lost == 0
    assert (res.sent_ns >= res.start_ns + res.intended_ns).all()  # open loop: never before the intended time
    frames = np.unique(res.sent_ns)
    assert len(frames) > 1 and np.diff(frames).min() >= 1_000_000  # at 50 k/s: frames of many rows, not one each
    assert len(frames) < res.n // 5


class _Recorder:
    """A transport stand-in that records writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_answers_to_one_read_go_out_in_one_write(world: Any) -> None:
    s, pop, _ = world

    async def main() -> list[bytes]:
        async with server(world) as (srv, port):
            from dccsim.core.server import _Conn

            conn = _Conn(srv)
            rec = _Recorder()
            conn.connection_made(rec)  # type: ignore[arg-type]
            batch = rows(pop, s, 5, 1)
            data = (
                frame(TAG_ROWS, (0).to_bytes(8, "big") + batch)
                + frame(ord("Q"), b"?")
                + frame(TAG_ROWS, (5).to_bytes(8, "big") + rows(pop, s, 5, 6))
            )
            conn.data_received(data)
            writes = list(rec.writes)
            conn.connection_lost(None)
            return writes

    writes = run(main())
    assert len(writes) == 1
    buf, tags = writes[0], []
    while buf:
        n = int.from_bytes(buf[:4], "big")
        tags.append(buf[4])
        buf = buf[4 + n :]
    assert tags == [TAG_ACK, TAG_ERROR, TAG_ACK]  # in order


def test_an_answer_due_within_a_millisecond_is_polled_for_not_timed(world: Any) -> None:
    from dccsim.core.server import _SPIN_NS

    s, pop, _ = world
    clock = ManualClock(10**12)

    class Loop:
        def __init__(self) -> None:
            self.soon: list[Any] = []
            self.later: list[float] = []

        def call_soon(self, cb: Any) -> None:
            self.soon.append(cb)

        def cancel(self) -> None:
            pass

        def call_later(self, delay: float, cb: Any) -> Any:
            self.later.append(delay)
            return self

    srv = build_server(SMOKE, clock, ServerConfig(origin_ns=s.day_start_ns))
    loop = Loop()
    srv._loop = loop  # type: ignore[assignment]
    srv._heap = [(clock() + 5 * _SPIN_NS, 0, None)]  # type: ignore[list-item]
    srv._arm()
    # a timer, set a millisecond early
    assert loop.later == [pytest.approx(4 * _SPIN_NS / 1e9)] and not loop.soon
    srv._timer = None
    srv._heap = [(clock() + _SPIN_NS // 2, 0, None)]  # type: ignore[list-item]
    srv._arm()
    srv._arm()
    assert len(loop.soon) == 1 and len(loop.later) == 1  # then one poll per loop turn, not a timer


def test_rows_beyond_the_arena_and_large_batch_ids_come_back_under_their_ids(world: Any) -> None:
    s, pop, _ = world
    big = (1 << 64) - 10_000  # ids are uint64: batch_id + k stays below 2**64

    async def main() -> list[tuple[int, bytes]]:
        async with server(world) as (srv, port):
            c = await Raw.open(port)
            # 10 rows, then 6000 (the arena grows under the first ones) in one write: one micro-batch
            await c.send(
                frame(TAG_ROWS, (7).to_bytes(8, "big") + rows(pop, s, 10, 1))
                + frame(TAG_ROWS, big.to_bytes(8, "big") + rows(pop, s, 6000, 11))
            )
            got = await c.frames_until(lambda fs: finals_count(fs) >= 6010)
            await c.close()
            return got

    got = run(main())
    ids = np.concatenate([np.frombuffer(p, FINAL_RECORD)["id"] for t, p in got if t == TAG_FINALS])
    expected = np.concatenate([np.arange(6000, dtype=np.uint64) + np.uint64(big), np.arange(7, 17, dtype=np.uint64)])
    assert np.array_equal(np.sort(ids), np.sort(expected))


def test_one_micro_batch_from_several_connections_and_formats_answers_each_its_own(world: Any) -> None:
    from dccsim.core.columns import RequestBatch
    from dccsim.core.server import K_JSON, K_ROW

    s, pop, _ = world

    async def main() -> tuple[list[Any], list[Any], Any, DccServer]:
        async with server(world) as (srv, port):
            conns = []
            for k in range(3):  # one at a time, so the server's connection ids follow the order
                c = await Raw.open(port)
                await c.send(frame(TAG_ROWS, (10_000 * (k + 1)).to_bytes(8, "big") + rows(pop, s, 1, 900 + k)))
                await c.frames_until(lambda fs: finals_count(fs) >= 1)
                conns.append(c)
            a, b, j = list(srv._conns)
            # three connections' requests, compact and full, queued without a loop turn between: one micro-batch
            batches0 = srv.counters.batches
            srv.enqueue(RequestBatch.from_msgpack(rows(pop, s, 300, 1000)), a, K_ROW, 1 << 40)
            srv.enqueue(RequestBatch.from_msgpack(rows(pop, s, 200, 2000)), b, K_ROW, 5)
            req = _request(pop, s, 77)
            srv.enqueue_object(req, RequestBatch.from_requests([req]), j, K_JSON)
            srv.enqueue(RequestBatch.from_msgpack(rows(pop, s, 100, 3000)), a, K_ROW, (1 << 40) + 300)
            srv._process()
            assert srv.counters.batches == batches0 + 1
            got_a = await conns[0].frames_until(lambda fs: finals_count(fs) >= 400)
            got_b = await conns[1].frames_until(lambda fs: finals_count(fs) >= 200)
            tag, p = await conns[2].frame()
            for c in conns:
                await c.close()
            return got_a, got_b, (tag, p), srv

    got_a, got_b, (tag, p), srv = run(main())

    def ids(got: list[Any]) -> list[int]:
        return sorted(
            np.concatenate([np.frombuffer(p, FINAL_RECORD)["id"] for t, p in got if t == TAG_FINALS]).tolist()
        )

    assert ids(got_a) == list(range(1 << 40, (1 << 40) + 400))
    assert ids(got_b) == list(range(5, 205))
    msg = msgspec.msgpack.decode(p)  # the connection's format: it has sent only compact rows
    assert tag == TAG_MSGPACK and msg["kind"] == "response" and msg["request_id"]["counter"] == 77
    assert msg["response_code"] != "I99"
    assert srv.counters.finals == 3 + 400 + 200 + 1 and srv.counters.orphaned == 0


def test_an_idle_server_moves_the_cache_time_on_but_not_past_waiting_rows(world: Any) -> None:
    from dccsim.core.server import _HOUSEKEEP_S

    s, pop, _ = world
    clock = ManualClock(10**12)

    class Loop:
        def __init__(self) -> None:
            self.later: list[float] = []

        def call_later(self, delay: float, cb: Any) -> Any:
            self.later.append(delay)
            return self

    srv = build_server(SMOKE, clock, ServerConfig(origin_ns=s.day_start_ns, speed=1000.0))
    loop = Loop()
    srv._loop = loop  # type: ignore[assignment]
    advanced: list[int] = []
    srv.pipeline.advance = advanced.append  # type: ignore[method-assign]
    clock.advance(2_000_000_000)  # two idle seconds: 2000 virtual seconds
    srv._housekeep()
    assert advanced == [s.day_start_ns + 2000 * 10**9] and loop.later == [_HOUSEKEEP_S]
    srv._in.append((1, 0, 0, 0))  # a row waits: its arrival time is earlier than now
    clock.advance(1_000_000_000)
    srv._housekeep()
    assert advanced == [s.day_start_ns + 2000 * 10**9] and len(loop.later) == 2


def test_rows_the_compact_decoder_refuses_but_msgspec_takes_are_queued_as_sent() -> None:
    """Valid MessagePack in a form the compact decoder does not take (an array16 row header)
    goes through msgspec, and those rows, not stale arena contents, are queued."""
    from dccsim.core.columns import RequestBatch, RowArena
    from dccsim.core.server import _mp_enc

    row = [0x90B3D51F30010000, 0x00DB123456789000, 3, 1, "4.8.1", ""]
    inner = _mp_enc.encode(row)
    assert inner[0] == 0x96  # a fixarray row: rewrite its header as array16
    payload = bytes([0x91, 0xDC, 0x00, 0x06]) + inner[1:]
    srv = DccServer.__new__(DccServer)
    srv._arena, srv._in_rows = RowArena(4), 0
    srv._arena.u64[:] = 777
    srv._arena.u8[:] = 255
    srv._arena.i64[:] = -777
    assert srv.decode_rows(payload) == 1
    batch = srv._arena.take(1)
    assert (int(batch.originator[0]), int(batch.device[0]), int(batch.counter[0])) == tuple(row[:3])
    want = RequestBatch.from_msgpack(_mp_enc.encode([row]))  # the same row, as fixarrays
    for name in ("command_variant", "srv", "role", "period_start_ns", "period_end_ns", "execution_ns"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(want, name), err_msg=name)
