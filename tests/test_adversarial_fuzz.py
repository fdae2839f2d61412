"""Adversarial fuzzing of the wall-clock server's wire side, against one live in-process server.

The contract (:mod:`dccsim.core.protocol`, :mod:`dccsim.core.http`): every frame that can be
parsed as one is answered and the connection goes on (an ``R`` frame with exactly one
``A``/``B``/``E``, in order; another tag or a frame too long with an ``E``; an ``M``/``J``
frame that is malformed or holds a request or a stats request with at least one reply); a
close is preceded by an ``X`` frame or an HTTP status; the server's callbacks raise nothing
(the loop's exception handler records what they raise, and any record fails the test); a
good client on another connection is answered after every example.

One server for the module, on an event loop in a thread of its own; every wait is bounded.
``DCCSIM_FUZZ_EXAMPLES`` (default 1) multiplies the number of examples of each test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import threading
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from dccsim.bench.perf.fuzz import Corpus, check_stream, corpus, good_frames, mutate_stream
from dccsim.bench.testing import scenario, started_server
from dccsim.core.http import starts_http
from dccsim.core.protocol import (
    FINAL_RECORD_BYTES,
    TAG_ACK,
    TAG_CLOSE,
    TAG_ERROR,
    TAG_FINALS,
    TAG_JSON,
    TAG_ROWS,
    frame,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

MAX_FRAME = 4096
T = 10.0  # seconds: the bound on any single wait
SCALE = max(1, int(os.environ.get("DCCSIM_FUZZ_EXAMPLES", "1")))
REQUESTS = Path(__file__).resolve().parents[1] / "examples" / "requests"
XML = {p.name: p.read_bytes() for p in sorted(REQUESTS.glob("*.xml"))}


def fuzz_settings(n: int) -> Any:
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        derandomize=SCALE == 1,  # the default run is the same every time; more examples explore
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class Live:
    """A server on its own uvloop loop in a thread; coroutines are run there with a bound."""

    def __init__(self) -> None:
        import uvloop

        self.loop = uvloop.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda loop, ctx: self.errors.append(ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.thread.start()
        self.cm = started_server(scenario("smoke"), speed=1e6, max_frame_bytes=MAX_FRAME)
        self.server, self.port = self.run(self.cm.__aenter__())
        self.corpus: Corpus = corpus()
        self.good: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.good_id = 1 << 52

    def run(self, coro: Awaitable[Any], timeout: float = 3 * T) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run_coroutine_threadsafe(bounded(), self.loop).result(timeout + 5)

    def close(self) -> None:
        async def shut() -> None:
            if self.good is not None:
                self.good[1].close()
                await self.good[1].wait_closed()
            await self.cm.__aexit__(None, None, None)

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(T)
        try:
            self.loop.close()
        except OSError:  # a client connection a failed test left open (EBUSY): that test has failed already
            pass

    def raised(self) -> list[str]:
        """What the server's callbacks raised since the last call (and forget it)."""
        out = [f"{c.get('message')}: {c.get('exception')!r}" for c in self.errors]
        self.errors.clear()
        return out

    async def good_answer(self) -> None:
        """A good client, on its own connection, sends 2 rows: one A, then both final answers."""
        if self.good is None:
            self.good = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.good
        bid = self.good_id
        self.good_id += 2
        writer.write(good_frames(self.corpus, 2, bid))
        acked, finals = False, 0
        while not (acked and finals >= 2):
            head = await reader.readexactly(4)
            body = await reader.readexactly(int.from_bytes(head, "big"))
            if body[0] == TAG_ACK:
                assert msgspec.msgpack.decode(body[1:]) == [bid, 2]
                acked = True
            elif body[0] == TAG_FINALS:
                finals += (len(body) - 1) // FINAL_RECORD_BYTES
            else:
                raise AssertionError(f"the good client got {body[:80]!r}")

    def check(self, stream: bytes, cuts: list[int]) -> None:
        """``stream`` on a new connection meets the contract; then a good client is answered."""

        async def main() -> Any:
            res, conn = await check_stream(self.port, stream, MAX_FRAME, chunks=cuts, timeout=T)
            if conn is not None:
                conn[1].close()
            await self.good_answer()
            return res

        res = self.run(main())
        assert not res.problems, res.problems
        assert not res.closed_without_reason
        assert self.raised() == []


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    srv = Live()
    try:
        yield srv
    finally:
        srv.close()


# ---------------------------------------------------------------------------- (a) random bytes
@fuzz_settings(150)
@given(data=st.binary(min_size=1, max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=4))
def test_random_bytes_as_a_whole_stream(live: Live, data: bytes, cuts: list[int]) -> None:
    assume(not starts_http(data[:4]))  # the HTTP side has its own tests
    live.check(data, cuts)


_frames = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 40), st.integers(0, MAX_FRAME + 2), st.sampled_from([MAX_FRAME, MAX_FRAME + 1])),
        st.binary(max_size=48),
    ),
    min_size=1,
    max_size=12,
)


@fuzz_settings(150)
@given(parts=_frames, cuts=st.lists(st.integers(0, 600), max_size=4))
def test_random_frames_of_small_lengths(live: Live, parts: list[tuple[int, bytes]], cuts: list[int]) -> None:
    """Random bytes behind random, mostly small, lengths: many complete frames of random tags."""
    stream = b"".join(n.to_bytes(4, "big") + body for n, body in parts)
    assume(not starts_http(stream[:4]))
    live.check(stream, cuts)


# ---------------------------------------------------------------------------- (b) mutated frames
def _seeded_stream(c: Corpus, seed: int) -> tuple[bytes, list[int]]:
    rng = random.Random(seed)
    stream = mutate_stream(rng, c, MAX_FRAME, rng.randint(1, 30))
    return stream, [rng.randrange(len(stream) + 1) for _ in range(rng.randint(0, 3))]


@fuzz_settings(1500)
@given(seed=st.integers(0, 2**64 - 1))
def test_mutated_valid_frames(live: Live, seed: int) -> None:
    """Valid row batches and messages, mutated (bytes, lengths, tags, cuts, splices, hostile
    values, deep nesting) and run together. The mutations are drawn from a generator seeded by
    Hypothesis (its own choices would keep to the first few of each list and shrink to nothing
    useful): a failure names its seed, and ``_seeded_stream(corpus(), seed)`` rebuilds it."""
    stream, cuts = _seeded_stream(live.corpus, seed)
    assume(not starts_http(stream[:4]))
    live.check(stream, cuts)


# ---------------------------------------------------------------------------- (c) HTTP
_HOSTILE_TEXT = [
    "",
    " ",
    "x" * 300,
    "2026-11-22T00:00:00.5Z",
    "1960-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "00-DB-12-34-56-78-90",
    "-1",
    "18446744073709551616",
    "\u00e9",
    "&amp;",
    "]]>",
    "0",
    "99.9",
]
_METHODS = ["POST"] * 8 + ["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "POSTX", "POST/1"]
_PATHS = ["/api/v1/serviceS", "/api/v1/serviceT", "/api/v1/serviceD"] * 4 + [
    "/api/v1/response/{rid}",
    "/",
    "/api/v1/serviceS?x=1",
    "/api/v1/response/%ff%00",
    "",
    "/api/v1/serviceS/",
    "*",
]
_VERSIONS = ["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/9.9", "", "HTTP/1.1 extra", "http/1.1"]


@st.composite
def http_request(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(XML)))
    body = XML[name]
    how = draw(st.sampled_from(["as is", "as is", "text", "text", "text", "flip", "cut", "empty"]))
    if how == "text":  # one text node replaced by a hostile value
        nodes = list(re.finditer(rb">([^<\s][^<]*)<", body))
        if nodes:
            m = draw(st.sampled_from(nodes))
            body = body[: m.start(1)] + draw(st.sampled_from(_HOSTILE_TEXT)).encode() + body[m.end(1) :]
    elif how == "flip":
        b = bytearray(body)
        for i in draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=4)):
            b[i] = draw(st.integers(0, 255))
        body = bytes(b)
    elif how == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif how == "empty":
        body = b""
    m = re.search(rb"<sr:RequestID>([^<]*)<", XML[name])
    rid = m.group(1).decode() if m else "x"
    method = draw(st.sampled_from(_METHODS))
    path = draw(st.sampled_from(_PATHS)).format(rid=rid)
    version = draw(st.sampled_from(_VERSIONS))
    line = " ".join(x for x in (method, path, version) if x or draw(st.booleans()))
    n = len(body)
    cl = draw(
        st.sampled_from(
            ["right"] * 12 + ["missing", "-1", "huge", "max+1", "more", "less", "abc", "", " 7 ", "twice", "+3", "0x10"]
        )
    )
    headers = ["Host: x"]
    if cl == "right":
        headers.append(f"Content-Length: {n}")
    elif cl == "huge":
        headers.append("Content-Length: 99999999999999999999999999")
    elif cl == "max+1":
        headers.append(f"Content-Length: {MAX_FRAME + 1}")
    elif cl == "more":
        headers.append(f"Content-Length: {n + draw(st.integers(1, 50))}")
    elif cl == "less":
        headers.append(f"Content-Length: {max(0, n - draw(st.integers(1, 50)))}")
    elif cl == "twice":
        headers += [f"Content-Length: {n}", f"content-length: {draw(st.integers(0, n + 5))}"]
    elif cl != "missing":
        headers.append(f"Content-Length: {cl}")
    headers += draw(
        st.lists(
            st.sampled_from(
                [
                    "Connection: close",
                    "Connection: keep-alive",
                    "X-Junk",
                    ": empty name",
                    "X-Long: " + "v" * 2000,
                    "X-Bytes: \u00ff\u0080",
                    "Transfer-Encoding: chunked",
                    "CONTENT-TYPE: application/xml",
                ]
            ),
            max_size=3,
        )
    )
    draw(st.randoms(use_true_random=False)).shuffle(headers)
    end = draw(st.sampled_from(["\r\n\r\n"] * 12 + ["\r\n", "\n\n", ""]))
    return ("\r\n".join([line, *headers]) + end).encode("latin-1") + body


def _http_model(data: bytes) -> tuple[int, bool]:
    """How many replies the server owes ``data`` (then half-closed), and whether it then closes.

    The framing of :mod:`dccsim.core.http`: a head ends at the first blank line (431 and close
    past 16 KiB without one); a request line of three parts, the third ``HTTP/1.x`` (else 400,
    close); a
    ``Content-Length`` Python's ``int`` reads, not negative (else 400, close), at most
    ``max_frame_bytes`` (else 413, close); a request is answered once its body is in;
    ``Connection: close`` closes after the reply.
    """
    owed, off = 0, 0
    while True:
        end = data.find(b"\r\n\r\n", off)
        if end < 0:
            return (owed + 1, True) if len(data) - off > 16384 else (owed, False)
        lines = data[off:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return owed + 1, True
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        try:
            n = int(headers.get("content-length", "0"))
        except ValueError:
            return owed + 1, True
        if n < 0 or n > MAX_FRAME:
            return owed + 1, True
        if len(data) < end + 4 + n:
            return owed, False
        owed += 1
        if headers.get("connection", "").lower() == "close":
            return owed, True
        off = end + 4 + n


def _http_replies(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP responses in ``data`` (each whole, by its Content-Length); raises on garbage."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"a reply without the end of its head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        assert re.fullmatch(r"HTTP/1\.1 [1-5]\d\d [A-Za-z ]+", lines[0]), lines[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        n = int(headers["content-length"])
        assert len(rest) >= n, f"a reply body cut short: {data[:200]!r}"
        out.append((int(lines[0].split(" ")[1]), headers, rest[:n]))
        data = rest[n:]
    return out


async def _send_http(port: int, data: bytes, cuts: list[int]) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), T)
    cuts = sorted({c for c in cuts if 0 < c < len(data)})
    try:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            writer.write(data[a:b])
            await writer.drain()
        writer.write_eof()
    except ConnectionError:
        pass  # closed by the server: what it said is checked
    got = await asyncio.wait_for(reader.read(), T)
    writer.close()
    return got


@fuzz_settings(600)
@given(reqs=st.lists(http_request(), min_size=1, max_size=3), cuts=st.lists(st.integers(0, 4000), max_size=3))
def test_mutated_http_requests(live: Live, reqs: list[bytes], cuts: list[int]) -> None:
    """DUIS XML requests from examples/requests, mutated (method, path, version, headers,
    Content-Length, the end of the head, the body) and pipelined: each complete request gets
    exactly one HTTP reply, in order; what the server cannot take is a 4xx and the close."""
    data = b"".join(reqs)
    assume(starts_http(data[:1]))  # other first bytes are frames
    owed, closes = _http_model(data)
    got = live.run(_send_http(live.port, data, cuts))
    replies = _http_replies(got)
    assert len(replies) == owed, (owed, [r[0] for r in replies], data[:300])
    for status, headers, body in replies:
        assert status in (200, 400, 404, 405, 408, 413, 431, 501, 503), status
        if status in (400, 413, 431) and headers.get("connection") == "close":
            assert body.endswith(b"\n")
    if closes and replies and replies[-1][0] in (400, 413, 431):
        assert replies[-1][1].get("connection") == "close"
    live.run(live.good_answer())
    assert live.raised() == []


@pytest.mark.parametrize("first", [b"post", b"get ", b"TRACE", b"CONNECT"])
def test_lower_case_and_unknown_methods_get_an_http_status(live: Live, first: bytes) -> None:
    data = first.rstrip() + b" /api/v1/serviceS HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    got = live.run(_send_http(live.port, data, []))
    assert got.startswith(b"HTTP/1.1 ")


# ---------------------------------------------------------------------------- regressions
def _alert(device: str, code: int) -> dict[str, Any]:
    return {
        "kind": "device_alert",
        "device": device,
        "recipient": "90-B3-D5-1F-30-07-00-01",
        "counter": 1,
        "alert_code": code,
        "time": "2026-11-23T00:00:00Z",
    }


async def _frames(reader: asyncio.StreamReader, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        head = await asyncio.wait_for(reader.readexactly(4), T)
        body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), T)
        out.append((body[0], body[1:]))
    return out


def test_a_device_alert_the_throttle_cannot_take_is_its_own_error(live: Live) -> None:
    """A device that is not an EUI-64 or an alert code past 16 bits raised in the loop's tick
    (ValueError, OverflowError): the alerts of that tick were lost and the requests waiting
    for it were not processed until the next arrival. Now each is an error naming the field,
    the good alert of the same frame is taken, and a good client's rows are answered."""
    esme = next(d for d in live.corpus.docs if d["kind"] == "device_alert")["device"]
    bad = [
        _alert("zz", 0x8F84),
        _alert("00-11-22", 1),
        _alert("0" * 20, 1),
        _alert(esme, 70000),
        _alert(esme, -1),
        _alert(esme, 0x8F84) | {"counter": 1 << 64},
    ]

    async def main() -> list[Any]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", live.port), T)
        alerts0 = live.server.counters.alerts_in
        for tag, enc in ((TAG_JSON, msgspec.json.encode), (ord("M"), msgspec.msgpack.encode)):
            some = bad if tag == TAG_JSON else bad[:-1]  # MessagePack cannot hold the 65-bit counter
            writer.write(frame(tag, enc([*some, _alert(esme, 0x8F84)])) + frame(tag, enc({"kind": "stats"})))
        got = await _frames(reader, 2 * len(bad) - 1 + 2)
        writer.close()
        await live.good_answer()
        assert live.server.counters.alerts_in == alerts0 + 2
        return got

    got = live.run(main())
    assert live.raised() == []
    decoded = [json.loads(p) if t == TAG_JSON else msgspec.msgpack.decode(p) for t, p in got]
    kinds = [d["kind"] for d in decoded]
    assert kinds == ["error"] * len(bad) + ["stats_reply"] + ["error"] * (len(bad) - 1) + ["stats_reply"]
    fields = [d["field"] for d in decoded if d["kind"] == "error"]
    assert fields == ["device", "device", "device", "alert_code", "alert_code", "counter"] + [
        "device",
        "device",
        "device",
        "alert_code",
        "alert_code",
    ]


def test_a_close_with_unread_input_still_delivers_its_reason(live: Live) -> None:
    """The server closed a connection with input still unread (a zero length, a body over the
    limit, followed by more bytes): the kernel reset the connection and the client lost the
    X frame or the HTTP status sent just before. Now the close lingers: the reply arrives."""

    async def one(data: bytes) -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", live.port), T)
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        try:
            return await asyncio.wait_for(reader.read(), T)
        finally:
            writer.close()

    async def main() -> tuple[bytes, bytes]:
        x = await one(frame(TAG_ROWS, bytes(8) + b"\x90") + b"\0\0\0\0" + b"x" * 300_000)
        h = await one(b"POST /api/v1/serviceS HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 300_000)
        return x, h

    x, h = live.run(main())
    n = int.from_bytes(x[:4], "big")
    assert x[4] == TAG_ACK and x[4 + n + 4] == TAG_CLOSE and b"framing broken" in x[4 + n :]
    assert h.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in h
    assert live.raised() == []


def test_a_read_period_the_cache_cannot_hold_is_that_request_s_e13(live: Live) -> None:
    """A read period before 1970, not in whole seconds or 2**29 s or longer reached the readings
    cache, which refused the whole micro-batch: the loop's tick raised and every connection's
    rows in it were acknowledged but never answered. Now it is the request's (or the compact
    batch's) E13 naming the field, over frames and over HTTP, and others are answered."""
    from dccsim.core.duisxml import encode_request_xml
    from dccsim.core.messages import ServiceRequest

    c = live.corpus
    srv = live.server
    # an electricity meter whose 4.8.1 reads go through the readings cache (ids in the population's order)
    dev = next(d for i, d in enumerate(c.devices) if srv.pipeline.cache_rows[i] and d in c.esme)
    day = 1_795_000_000 * 10**9
    periods = {"end": (day, day + 1), "start": (-(10**9), day), "end ": (day, day + (1 << 29) * 10**9)}
    rows_frames = b""
    for k, (s, e) in enumerate(periods.values()):
        row = [c.users["MDR"], dev, 7000 + k, 1, "4.8.1", "MDR", 0, s, e]
        rows_frames += frame(TAG_ROWS, (9000 + k).to_bytes(8, "big") + msgspec.msgpack.encode([row]))
    doc = next(d for d in c.docs if d["kind"] == "request")
    docs = []
    for k, (start, end) in enumerate(
        [
            ("2026-11-21T00:00:00Z", "2026-11-22T00:00:00.5Z"),
            ("1960-01-01T00:00:00Z", "2026-11-22T00:00:00Z"),
            ("1990-01-01T00:00:00Z", "2026-11-22T00:00:00Z"),
        ]
    ):
        d = json.loads(json.dumps(doc))
        d["request_id"]["target"] = "-".join(f"{dev:016X}"[i : i + 2] for i in range(0, 16, 2))
        d["request_id"]["counter"] = 8000 + k
        d["body"]["period"] = {"start": start, "end": end}
        docs.append(d)

    async def main() -> tuple[list[Any], list[Any], list[bytes]]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", live.port), T)
        writer.write(rows_frames + frame(TAG_JSON, msgspec.json.encode(docs)))
        got = await _frames(reader, 3 + 3)
        writer.close()
        http = []
        for d in docs:
            xml = encode_request_xml(msgspec.json.decode(json.dumps(d), type=ServiceRequest))
            head = f"POST /api/v1/serviceS HTTP/1.1\r\nContent-Length: {len(xml)}\r\nConnection: close\r\n\r\n"
            http.append(await _send_http(live.port, head.encode() + xml, []))
        await live.good_answer()
        return got[:3], got[3:], http

    rows_got, msgs_got, http = live.run(main())
    assert live.raised() == []
    assert [t for t, _ in rows_got] == [TAG_ERROR] * 3
    errs = [msgspec.msgpack.decode(p) for _, p in rows_got]
    assert [(e["batch_id"], e["code"], e["field"]) for e in errs] == [
        (9000, "E13", "rows[0].period_end_ns"),
        (9001, "E13", "rows[0].period_start_ns"),
        (9002, "E13", "rows[0].period_end_ns"),
    ]
    errs = [json.loads(p) for _, p in msgs_got]
    assert [(e["kind"], e["code"], e["field"]) for e in errs] == [
        ("error", "E13", "body.period.end"),
        ("error", "E13", "body.period.start"),
        ("error", "E13", "body.period.end"),
    ]
    assert all(h.startswith(b"HTTP/1.1 400 ") and b"period" in h for h in http), http


def test_a_message_nested_past_the_recursion_limit_is_an_error_and_the_connection_goes_on(live: Live) -> None:
    """msgspec raises RecursionError, not a DecodeError, for nesting past the recursion limit
    (about 1000 levels; a 4 KiB MessagePack frame holds 4000): it escaped the frame handler,
    and the connection was dropped with no reply. Now it is an error reply and the next frame
    is answered. (Under Hypothesis the limit is raised, so the fuzzing alone may miss it.)"""
    deep_json = b'{"kind":"stats","x":' + b"[" * 3000
    deep_mp = b"\x82\xa4kind\xa5stats\xa1x" + b"\x91" * 4000 + b"\xc0"

    async def main() -> list[tuple[int, bytes]]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", live.port), T)
        writer.write(frame(TAG_JSON, deep_json) + frame(ord("M"), deep_mp) + frame(TAG_JSON, b'{"kind": "stats"}'))
        got = await _frames(reader, 3)
        writer.close()
        await live.good_answer()
        return got

    got = live.run(main())
    assert live.raised() == []
    decoded = [json.loads(p) if t == TAG_JSON else msgspec.msgpack.decode(p) for t, p in got]
    assert [(t, d["kind"]) for (t, _), d in zip(got, decoded, strict=True)] == [
        (TAG_JSON, "error"),
        (ord("M"), "error"),
        (TAG_JSON, "stats_reply"),
    ]
    assert "levels deep" in decoded[0]["message"] and decoded[1]["field"] == "nesting"


def test_the_checker_fails_a_server_that_drops_or_ignores_a_frame(live: Live) -> None:
    """The stream checker itself, against stand-in servers: one that closes without an X, one
    that never answers (so a passing fuzz run means something)."""
    from dccsim.bench.perf.fuzz import plan_stream

    stream = frame(TAG_ROWS, bytes(8) + b"\x90") + frame(ord("Q"), b"?")
    assert plan_stream(stream, MAX_FRAME).expect == ["R", "E"]
    assert plan_stream(b"\0\0\0\0", MAX_FRAME).tail == "closed"
    assert plan_stream((MAX_FRAME + 1).to_bytes(4, "big") + b"xx", MAX_FRAME).missing == MAX_FRAME - 1

    async def with_server(handler: Any, timeout: float) -> Any:
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        try:
            res, _ = await check_stream(srv.sockets[0].getsockname()[1], stream, MAX_FRAME, timeout=timeout)
            return res
        finally:
            srv.close()
            await srv.wait_closed()

    async def drops(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(stream))
        writer.write(frame(TAG_ACK, msgspec.msgpack.encode([0, 0])))  # answers the first frame only
        writer.close()

    async def ignores(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the checker gives up and closes
        finally:
            writer.close()

    res = live.run(with_server(drops, T))
    assert res.closed_without_reason and "without an X" in res.problems[0]
    res = live.run(with_server(ignores, 0.2))
    assert res.problems and "no end within" in res.problems[0]
    assert live.raised() == []
