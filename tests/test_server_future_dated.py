"""Future-dated responses from the wall-clock server (CR1233).

A future-dated command the device acknowledged (final answer ``I99``) later reports each of its
instructions with a Response carrying a ``FutureDatedDeviceAlertMessage``; the server sends
them to the connection that sent the request, in its format, at their due virtual times.

The server runs on a :class:`ManualClock` at speed 1 (virtual ns = wall ns): a test moves the
clock and calls :meth:`DccServer.send_due`, then reads exactly the frames the server counted as
sent, so nothing waits for wall time to pass.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from dccsim.bench.testing import ListSink, ManualClock, scenario, started_server
from dccsim.core.catalogue import catalogue
from dccsim.core.duisxml import decode_request_xml, encode_response_xml, encode_xml, load_schema
from dccsim.core.messages import (
    GenericBody,
    RequestId,
    RequestRow,
    Response,
    ServiceRequest,
    from_ns,
)
from dccsim.core.protocol import FINAL_RECORD, TAG_ACK, TAG_FINALS, TAG_JSON, TAG_MSGPACK, TAG_ROWS, frame
from dccsim.core.records import REQUEST_CLASSES, RESPONSE_CODES, ROLES
from dccsim.core.wire import encode_rows
from dccsim.loadgen.netclient import OpenLoopClient, Traffic
from dccsim.loadgen.population import build_population
from lxml import etree
from test_server import Raw, T, _http, run

SECOND = 1_000_000_000
FIXED = {
    "future_dated.instructions": [3, 3],
    "future_dated.out_of_order_share": 0.0,
    "future_dated.not_done_share": 0.0,
}
RUN = scenario("smoke", **FIXED)
S = RUN.scenario
POP = build_population(S)
SUPPLIER = next(u.eui for u in S.users if u.role == "IS")
XSD = Path(__file__).resolve().parents[1].parent / "shared" / "duis" / "DUIS-Schema-V5.4.xsd"
TEMPLATE = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "duis" / "templates" / "ECS01a_1.1.1_FUTURE_DATED_TOU_BLOCK_SUCCESS_REQUEST_DUIS.XML"
)  # fmt: skip
BODY = decode_request_xml(TEMPLATE.read_bytes()).body  # an UpdateImportTariffPrimaryElement


def _eui(value: int) -> str:
    return "-".join(f"{value:016X}"[i : i + 2] for i in range(0, 16, 2))


def _fd_request(k: int, counter: int, execution_ns: int, role: str = "IS", cv: int = 5) -> ServiceRequest:
    """1.1.1 (future-dated pattern "Device") to the k-th ESME, Command Variant 5 (the signed
    pre-command, sent over the WAN)."""
    assert isinstance(BODY, GenericBody)
    return ServiceRequest(
        request_id=RequestId.parse(f"{SUPPLIER}:{_eui(int(POP.ids[POP.esme[k]]))}:{counter}"),
        command_variant=cv,
        service_reference="1.1",
        srv="1.1.1",
        body=BODY,
        role=role,  # type: ignore[arg-type]
        execution_datetime=from_ns(execution_ns),
    )


def _server(clock: ManualClock, sink: Any = None, run_config: Any = RUN, **cfg: Any) -> Any:
    # idle connections are never closed here: the clock moves by hours
    return started_server(run_config, clock=clock, sink=sink, speed=1.0, idle_timeout_s=1e9, **cfg)


def _execution(srv: Any) -> int:
    """A whole second 1000 s ahead of the server's virtual now (past any final answer)."""
    return (srv.virtual_now() // SECOND + 1000) * SECOND


def _decode(tag: int, payload: bytes, type: Any = Any) -> Any:
    return (msgspec.json.decode if tag == TAG_JSON else msgspec.msgpack.decode)(payload, type=type)


async def _read(c: Raw, n: int) -> list[tuple[int, bytes]]:
    return [await c.frame() for _ in range(n)]


async def _finals(srv: Any, clock: ManualClock, c: Raw, n: int, tag: int) -> dict[int, str]:
    """Move the clock past every final answer; the n finals (counter -> code)."""
    clock.advance(500 * SECOND)
    srv.send_due()
    codes: dict[int, str] = {}
    while len(codes) < n:
        t, p = await c.frame()
        if t == TAG_FINALS:
            for r in np.frombuffer(p, FINAL_RECORD):
                codes[int(r["id"])] = RESPONSE_CODES[int(r["code"])]
        else:
            assert t == tag, t
            m = _decode(t, p)
            assert m["kind"] == "response" and "future_dated" not in m or m["future_dated"] is None
            codes[m["request_id"]["counter"]] = m["response_code"]
    return codes


async def _step_through(
    srv: Any, clock: ManualClock, c: Raw, execution: int, seconds: int
) -> list[tuple[int, int, Response]]:
    """Move the server's virtual time to ``execution`` then on, a second at a time, sending what
    is due at each; (virtual time, frame tag, Response) of every response received."""
    clock.advance(execution - srv.virtual_now())
    assert srv.virtual_now() == execution
    got = []
    for _ in range(seconds):
        clock.advance(SECOND)
        before = srv.counters.future_dated_sent
        srv.send_due()
        for tag, p in await _read(c, srv.counters.future_dated_sent - before):
            got.append((srv.virtual_now(), tag, _decode(tag, p, Response)))
    return got


# ---------------------------------------------------------------------------- JSON and MessagePack
@pytest.mark.parametrize("tag", [TAG_JSON, TAG_MSGPACK])
def test_a_future_dated_command_gets_its_i99_then_one_response_per_instruction_when_due(tag: int) -> None:
    clock = ManualClock()
    enc = msgspec.json.encode if tag == TAG_JSON else msgspec.msgpack.encode

    async def main() -> None:
        async with _server(clock) as (srv, port):
            c = await Raw.open(port)
            execution = _execution(srv)
            reqs = [_fd_request(k, 10 + k, execution) for k in range(6)]
            reqs.append(_fd_request(6, 16, execution, role="ED"))  # not eligible for 1.1.1: rejected
            reqs.append(_fd_request(7, 17, execution, cv=4))  # turned into a pre-command: never on the device
            await c.send(frame(tag, enc(reqs)))
            t, p = await c.frame()
            assert t == tag and [a["response_code"] for a in _decode(t, p)] == ["I99"] * 8
            finals = await _finals(srv, clock, c, 8, tag)
            assert finals[16] != "I99"
            delivered = {k for k, code in finals.items() if code == "I99" and k != 17}
            assert delivered, finals  # the smoke devices answer most commands
            assert srv.stats().server["future_dated_pending"] == 3 * len(delivered)
            got = await _step_through(srv, clock, c, execution, 3 * 4)
            assert {t for _, t, _ in got} == {tag}
            by_counter: dict[int, list[tuple[int, Response]]] = {}
            for now, _, m in got:
                assert m.response_code == "I0" and m.srv == "1.1.1" and m.service_reference == "1.1"
                assert m.request_id is not None and m.request_id.originator == SUPPLIER
                assert m.response_id == m.request_id.swapped() and m.gbcs_payload is None
                by_counter.setdefault(m.request_id.counter, []).append((now, m))
            assert set(by_counter) == delivered  # nothing for the rejected command, or a failed one
            for msgs in by_counter.values():
                fd = [m.future_dated for _, m in msgs]
                # in order (out_of_order_share 0), 1 to 3 of 3, all done (not_done_share 0)
                assert [(f.instruction_number, f.total_command_instructions, f.alert_code) for f in fd if f] == [
                    (1, 3, 0x8F66), (2, 3, 0x8F66), (3, 3, 0x8F66)
                ]  # fmt: skip
                # each sent at its due virtual time: its ResponseDateTime
                assert [m.response_datetime for _, m in msgs] == [from_ns(t) for t, _ in msgs]
                assert execution < msgs[0][0] < msgs[1][0] < msgs[2][0]
            counters = srv.counters
            assert counters.future_dated_sent == 3 * len(delivered) == len(got)
            assert counters.future_dated_dropped == 0 and srv.stats().server["future_dated_pending"] == 0
            await c.close()

    run(main())


def test_compact_rows_get_future_dated_responses_as_messagepack_response_messages() -> None:
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock) as (srv, port):
            c = await Raw.open(port)
            execution = _execution(srv)
            users = int(SUPPLIER.replace("-", ""), 16)
            rows = [
                RequestRow(originator=users, target=int(POP.ids[POP.esme[k]]), counter=100 + k, command_variant=5,
                           srv="1.1.1", role="IS", execution_ns=execution)
                for k in range(4)
            ]  # fmt: skip
            await c.send(frame(TAG_ROWS, (7).to_bytes(8, "big") + encode_rows(rows)))
            t, p = await c.frame()
            assert t == TAG_ACK and msgspec.msgpack.decode(p) == [7, 4]
            finals = await _finals(srv, clock, c, 4, TAG_MSGPACK)  # F records, ids = batch id + row
            delivered = {100 + i - 7 for i, code in finals.items() if code == "I99"}
            assert delivered
            got = await _step_through(srv, clock, c, execution, 12)
            assert {t for _, t, _ in got} == {TAG_MSGPACK} and len(got) == 3 * len(delivered)
            for _, _, r in got:
                assert r.future_dated is not None and r.future_dated.total_command_instructions == 3
                assert r.request_id is not None and str(r.request_id).startswith(SUPPLIER)
                assert r.request_id.counter in delivered and r.srv == "1.1.1"
            await c.close()

    run(main())


def test_a_failed_command_sends_nothing() -> None:
    """A future-dated command whose final answer is not I99 (here: every device fails, E20)
    never runs on its device: no responses, nothing pending."""
    clock = ManualClock()
    failing = scenario("smoke", **FIXED, **{
        f"population.{p}.{k}": v for p in ("smets1", "smets2") for k, v in (("e20_share", 1.0), ("e21_share", 0.0))
    })  # fmt: skip

    async def main() -> None:
        async with _server(clock, run_config=failing) as (srv, port):
            c = await Raw.open(port)
            execution = _execution(srv)
            await c.send(frame(TAG_JSON, msgspec.json.encode([_fd_request(k, 10 + k, execution) for k in range(3)])))
            await c.frame()
            finals = await _finals(srv, clock, c, 3, TAG_JSON)
            assert set(finals.values()) == {"E20"}
            assert srv.stats().server["future_dated_pending"] == 0
            assert await _step_through(srv, clock, c, execution, 12) == []
            assert srv.counters.future_dated_sent == srv.counters.future_dated_dropped == 0
            await c.close()

    run(main())


# ---------------------------------------------------------------------------- a client that goes
def test_responses_for_a_connection_that_has_gone_are_dropped_and_counted() -> None:
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock) as (srv, port):
            c = await Raw.open(port)
            execution = _execution(srv)
            await c.send(frame(TAG_JSON, msgspec.json.encode([_fd_request(k, 10 + k, execution) for k in range(6)])))
            await c.frame()
            finals = await _finals(srv, clock, c, 6, TAG_JSON)
            owed = 3 * sum(code == "I99" for code in finals.values())
            assert owed > 0
            got = await _step_through(srv, clock, c, execution, 2)  # the first instructions' only
            sent = len(got)
            await c.close()
            await asyncio.wait_for(_gone(srv), T)
            clock.advance(12 * SECOND)
            srv.send_due()
            counters = srv.counters
            assert counters.future_dated_sent == sent < owed
            assert counters.future_dated_dropped == owed - sent
            assert srv.stats().server["future_dated_pending"] == 0

    run(main())


async def _until(done: Any) -> None:
    """Let the loop run (no timer: each turn) until ``done()``."""
    while not done():
        await asyncio.sleep(0)


async def _gone(srv: Any) -> None:
    await _until(lambda: not srv._conns)  # the server has seen the client close


def test_a_connection_owed_future_dated_responses_is_not_evicted_but_times_out_when_idle() -> None:
    """At the connection limit a newcomer does not take the slot of a client waiting for its
    future-dated responses; the idle time-out still closes it, and what comes due is dropped."""
    clock = ManualClock()

    async def main() -> None:
        async with started_server(RUN, clock=clock, speed=1.0, max_connections=1, evict_idle_s=1,
                                  idle_timeout_s=3000) as (srv, port):  # fmt: skip
            c = await Raw.open(port)
            execution = _execution(srv)
            await c.send(frame(TAG_JSON, msgspec.json.encode([_fd_request(k, 10 + k, execution) for k in range(4)])))
            await c.frame()
            finals = await _finals(srv, clock, c, 4, TAG_JSON)
            owed = 3 * sum(code == "I99" for code in finals.values())
            clock.advance(10 * SECOND)  # idle 510 s, owed only future-dated responses
            other = await Raw.open(port)
            t, reason = await other.frame()
            assert b"too many connections" in reason and srv.counters.evicted == 0
            await other.close()
            clock.advance(3000 * SECOND)
            srv.reap()
            t, reason = await c.frame()
            assert b"idle for" in reason
            await c.close()
            await asyncio.wait_for(_gone(srv), T)
            srv.send_due()
            assert srv.counters.future_dated_dropped == owed and srv.counters.future_dated_sent == 0

    run(main())


def test_responses_beyond_the_limit_are_shed_and_counted() -> None:
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock, max_future_dated=2) as (srv, port):  # fewer than one command's 3
            c = await Raw.open(port)
            execution = _execution(srv)
            await c.send(frame(TAG_JSON, msgspec.json.encode([_fd_request(k, 10 + k, execution) for k in range(4)])))
            await c.frame()
            finals = await _finals(srv, clock, c, 4, TAG_JSON)
            assert srv.counters.future_dated_shed == 3 * sum(code == "I99" for code in finals.values()) > 0
            assert await _step_through(srv, clock, c, execution, 12) == []
            await c.close()

    run(main())


# ---------------------------------------------------------------------------- XML, HTTP and the log
def test_a_response_the_server_sent_encodes_to_schema_valid_duis_xml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helper import decode_to_xml

    schema = load_schema(XSD)
    clock = ManualClock()

    async def main() -> list[Response]:
        async with _server(clock) as (srv, port):
            c = await Raw.open(port)
            execution = _execution(srv)
            await c.send(frame(TAG_MSGPACK, msgspec.msgpack.encode(_fd_request(0, 10, execution))))
            await c.frame()
            finals = await _finals(srv, clock, c, 1, TAG_MSGPACK)
            assert finals == {10: "I99"}
            got = await _step_through(srv, clock, c, execution, 12)
            await c.close()
            return [m for _, _, m in got]

    responses = run(main())
    assert len(responses) == 3
    for r in responses:
        doc = etree.fromstring(encode_response_xml(r))
        schema.assertValid(doc)
        ns = {"sr": "http://www.dccinterface.co.uk/ServiceUserGateway"}
        fd = doc.find(".//sr:FutureDatedDeviceAlertMessage", ns)
        assert fd is not None and fd.findtext("sr:TotalCommandInstructions", namespaces=ns) == "3"
    # and through dccsim decode --to xml, as JSON lines
    docs = decode_to_xml(responses, tmp_path, XSD, capsys)
    assert len(docs) == 3
    for d in docs:
        schema.assertValid(etree.fromstring(d.encode()))


def test_over_http_the_responses_are_kept_for_polling_by_instruction() -> None:
    schema = load_schema(XSD)
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock) as (srv, port):
            execution = _execution(srv)
            req = _fd_request(0, 10, execution)
            status, body = await _http(port, "POST", "/api/v1/serviceS", encode_xml(req))
            assert status == 200 and b"I99" in body
            clock.advance(500 * SECOND)
            srv.send_due()
            status, final = await _http(port, "GET", f"/api/v1/response/{req.request_id}")
            assert status == 200 and b"<sr:ResponseCode>I99</sr:ResponseCode>" in final
            status, _ = await _http(port, "GET", f"/api/v1/response/{req.request_id}/1")
            assert status == 404  # not yet due
            clock.advance(execution + 12 * SECOND - srv.virtual_now())
            srv.send_due()
            assert srv.counters.future_dated_kept == 3 and srv.counters.future_dated_sent == 0
            for i in (1, 2, 3):
                status, xml = await _http(port, "GET", f"/api/v1/response/{req.request_id}/{i}")
                assert status == 200
                doc = etree.fromstring(xml)
                schema.assertValid(doc)
                ns = {"sr": "http://www.dccinterface.co.uk/ServiceUserGateway"}
                assert doc.findtext(".//sr:InstructionNumber", namespaces=ns) == str(i)

    run(main())


def test_the_server_logs_each_response_that_came_due_in_the_audit_trail() -> None:
    clock = ManualClock()
    sink = ListSink()

    async def main() -> tuple[int, int]:
        async with _server(clock, sink=sink) as (srv, port):
            c = await Raw.open(port)
            execution = _execution(srv)
            await c.send(frame(TAG_JSON, msgspec.json.encode([_fd_request(k, 10 + k, execution) for k in range(5)])))
            await c.frame()
            finals = await _finals(srv, clock, c, 5, TAG_JSON)
            got = await _step_through(srv, clock, c, execution, 12)
            await c.close()
            return sum(code == "I99" for code in finals.values()), len(got)

    delivered, sent = run(main())
    audit = sink.audit_rows()
    req = sink.request_rows()
    assert len(audit) == sent == 3 * delivered
    assert (np.diff(audit.t_ns) >= 0).all()
    by_seq = dict(zip(req.seq.tolist(), req.counter.tolist(), strict=True))
    assert set(audit.seq.tolist()) == {s for s, code in zip(req.seq.tolist(), req.response_code.tolist(), strict=True)
                                       if RESPONSE_CODES[code] == "I99"}  # fmt: skip
    assert all(by_seq[s] == c for s, c in zip(audit.seq.tolist(), audit.counter.tolist(), strict=True))
    assert (audit.total_instructions == 3).all() and not audit.out_of_sequence.any()
    assert (audit.received == audit.instruction).all()


# ---------------------------------------------------------------------------- the load client
def _fd_traffic(n: int, execution: int) -> Traffic:
    users = int(SUPPLIER.replace("-", ""), 16)
    zeros = np.zeros(n, np.int64)
    return Traffic(
        device=POP.ids[POP.esme[:n]].astype(np.uint64), originator=np.full(n, users, np.uint64),
        srv=np.full(n, catalogue().code("1.1.1"), np.uint8), role=np.full(n, ROLES.index("IS"), np.uint8),
        command_variant=np.full(n, 5, np.uint8), period_start_ns=zeros, period_end_ns=zeros,
        execution_ns=np.full(n, execution, np.int64), cls=np.full(n, REQUEST_CLASSES.index("future_dated"), np.uint8),
        invalid=np.zeros(n, np.uint8),
    )  # fmt: skip


def test_the_load_client_counts_future_dated_responses_and_settles_no_batch_with_them() -> None:
    """The open-loop client against a server on a manual clock: its batches are settled by
    their A and F frames only; the unsolicited Responses are counted, and a stats reply that
    comes after them is still read."""
    clock = ManualClock()

    async def main() -> None:
        async with _server(clock) as (srv, port):
            execution = _execution(srv)
            client = OpenLoopClient(_fd_traffic(6, execution), 6, np.zeros(6, np.int64), clock, counter_base=50)
            loop = asyncio.get_running_loop()
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            client._write(0, 6, client.rows_frame(0, 6))  # what the sender thread does, on the loop
            await asyncio.wait_for(_until(lambda: not client.awaiting), T)  # acknowledged
            clock.advance(500 * SECOND)
            srv.send_due()
            await asyncio.wait_for(client.done.wait(), T)  # every final answer in
            res = client.res
            assert res.answered == 6 and res.lost == 0 and not client.awaiting
            delivered = int((res.code == RESPONSE_CODES.index("I99")).sum())
            assert delivered and res.future_dated == 0
            clock.advance(execution + 12 * SECOND - srv.virtual_now())
            srv.send_due()
            assert srv.counters.future_dated_sent == 3 * delivered
            stats = await client.request_stats(T)  # behind the responses on the wire
            assert stats is not None
            assert stats is not None and stats.server["future_dated_sent"] == 3 * delivered
            assert res.future_dated == 3 * delivered
            assert res.answered == 6 and res.received == 6 and res.duplicates == 0 and res.lost == 0
            assert res.refused_count == 0 and not res.errors
            s = client.summary()
            assert s["future_dated_responses"] == 3 * delivered and s["answered"] == 6
            client.transport.close()  # type: ignore[union-attr]

    run(main())


def test_the_load_client_reads_a_future_dated_response_between_a_batch_and_its_ack() -> None:
    """Frames fed straight to the client: a Response (MessagePack or JSON) never settles the
    batch waiting for its ack; the ack that follows does."""
    clock = ManualClock()
    client = OpenLoopClient(_fd_traffic(2, 0), 2, np.zeros(2, np.int64), clock)
    client.awaiting.append((0, 2))
    client.sent_rows = 2
    req = _fd_request(0, 10, 10**18)
    resp = Response.for_request(req, "I0", from_ns(10**18))
    from dccsim.core.messages import FutureDatedAlert

    resp = msgspec.structs.replace(resp, future_dated=FutureDatedAlert(
        alert_code=0x8F66, instruction_number=1, total_command_instructions=2))  # fmt: skip
    client.data_received(frame(TAG_MSGPACK, msgspec.msgpack.encode(resp)) + frame(TAG_JSON, msgspec.json.encode(resp)))
    assert client.res.future_dated == 2 and client.awaiting == __import__("collections").deque([(0, 2)])
    client.data_received(frame(TAG_ACK, msgspec.msgpack.encode([0, 2])))
    assert not client.awaiting and client.res.ack_ns[:2].all() and client.res.refused_count == 0
    assert not client.res.errors
