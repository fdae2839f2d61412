"""Adversarial fuzzing of the wall-clock server's wire side: mutated frames over real sockets.

A live ``dccsim serve`` (a subprocess, its stderr read for exceptions) is sent at least
``--frames`` frames of mutated traffic over ``--connections`` connections: valid compact row
batches (``R``) and MessagePack / JSON messages (``M`` / ``J``: requests, device alerts,
stats, subscribe) with payload bytes flipped, lengths and tags changed, frames cut short,
spliced and run together, values swapped for hostile ones, and plain random bytes. Beside
them a good client sends valid requests throughout and counts its answers.

Each connection's stream is checked against the contract of :mod:`dccsim.core.protocol`:
every complete frame whose length is in ``1 .. max_frame_bytes`` gets its immediate reply in
order (an ``R`` frame exactly one ``A``/``B``/``E``; a frame with another tag, or one that is
too long, one ``E``; an ``M``/``J`` frame that is not well-formed, or holds a request or a
stats request, at least one ``M``/``J`` reply); a zero length is answered with an ``X`` frame,
then the close. A stream that ends at a frame boundary is followed by a sentinel (an empty
``R`` batch with an id of its own) whose ``A`` proves that every reply before it came; one
cut mid-frame is completed with zero bytes first, or, where that cannot be done, the client
half-closes and reads the replies up to the server's close. The server closing a connection
with no ``X`` before it is a failure.

Run: ``python -m dccsim.bench.perf.fuzz --frames 100000 [--seed N] [--connections K]``;
exit 1 when a connection was dropped without a reply, a stream's replies broke the contract,
the good client lost an answer, the server stopped answering or wrote an exception.

The generators and the checker (:func:`valid_frames`, :func:`mutate_stream`,
:func:`check_stream`) are also what ``tests/test_adversarial_fuzz.py`` drives with Hypothesis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from dccsim.core.protocol import (
    TAG_ACK,
    TAG_BUSY,
    TAG_CLOSE,
    TAG_ERROR,
    TAG_FINALS,
    TAG_JSON,
    TAG_MSGPACK,
    TAG_ROWS,
    frame,
)

__all__ = [
    "SENTINEL_ID",
    "StreamResult",
    "check_stream",
    "good_frames",
    "hostile_value",
    "mutate_frame",
    "mutate_stream",
    "plan_stream",
    "valid_frames",
]

#: the batch id of the sentinel that closes a checked stream (an empty ``R`` batch)
SENTINEL_ID = 0xF0F0_5E47_1E10_0000
_SENTINEL = frame(TAG_ROWS, SENTINEL_ID.to_bytes(8, "big") + b"\x90")
#: an empty batch (id 0) that opens a fresh connection whose stream starts with an ASCII letter:
#: such a first byte makes the connection HTTP (a request line starts with its method), and
#: these streams test the frames (HTTP is fuzzed by tests/test_adversarial_fuzz.py)
_FRAMES_FIRST = frame(TAG_ROWS, (0).to_bytes(8, "big") + b"\x90")
_MJ = (TAG_MSGPACK, TAG_JSON)
_PAD_MAX = 1 << 21  # a stream cut mid-frame is completed with zeros when this many or fewer are missing
_Inbound = Any
_mp = msgspec.msgpack.Encoder()
_js = msgspec.json.Encoder()


# ---------------------------------------------------------------------------- valid traffic
def _eui(x: int) -> str:
    h = f"{x:016X}"
    return "-".join(h[i : i + 2] for i in range(0, 16, 2))


@dataclass
class Corpus:
    """Valid traffic for a scenario: row batches and message documents (JSON-able dicts)."""

    users: dict[str, int]
    devices: list[int]
    docs: list[Any] = field(default_factory=list)
    esme: set[int] = field(default_factory=set)  # which of ``devices`` are electricity meters

    def row(self, rng: random.Random, counter: int) -> list[Any]:
        srv, role, cv = rng.choice([("11.2", "IS", 1), ("4.8.1", "MDR", 1), ("4.6.1", "MDR", 1), ("4.8.3", "MDR", 1),
                                    ("1.1.1", "IS", 4), ("1.5", "IS", 4)])  # fmt: skip
        row: list[Any] = [self.users[role], rng.choice(self.devices), counter, cv, srv, role]
        day = 1_795_000_000 * 10**9
        if srv.startswith("4."):
            row += [0, day, day + 86_400 * 10**9]
        elif srv == "1.1.1":  # future-dated: an ExecutionDateTime a day on
            row += [0, 0, 0, day + 86_400 * 10**9]
        return row

    def rows_frame(self, rng: random.Random, n: int, batch_id: int) -> bytes:
        return frame(
            TAG_ROWS, batch_id.to_bytes(8, "big") + _mp.encode([self.row(rng, batch_id + k) for k in range(n)])
        )


def corpus() -> Corpus:
    """The smoke scenario's users, devices and a set of valid message documents."""
    from dccsim.loadgen.population import build_population
    from dccsim.loadgen.scenario import load_scenario

    s, _ = load_scenario("smoke")
    pop = build_population(s)
    users = {u.role: int(u.eui.replace("-", ""), 16) for u in s.users}
    c = Corpus(users=users, devices=[int(x) for x in pop.ids[:64]], esme={int(x) for x in pop.ids[pop.esme]})
    mdr, esme = _eui(users["MDR"]), _eui(int(pop.ids[pop.esme[0]]))
    t = datetime(2026, 11, 23, tzinfo=UTC)
    for k, (srv, element) in enumerate(
        [
            ("4.8.1", "ReadActiveImportProfileData"),
            ("4.6.1", "RetrieveImportDailyReadLog"),
            ("4.8.3", "ReadExportProfileData"),
        ]
    ):
        c.docs.append(
            {
                "kind": "request",
                "request_id": {"originator": mdr, "target": esme, "counter": 100 + k},
                "command_variant": 1,
                "service_reference": srv.rsplit(".", 1)[0],
                "srv": srv,
                "body": {
                    "element": element,
                    "period": {"start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
                },
                "role": "MDR",
            }
        )
    c.docs.append(
        {
            "kind": "device_alert",
            "device": esme,
            "recipient": mdr,
            "counter": 1,
            "alert_code": 0x8F84,
            "time": t.isoformat(),
        }
    )
    c.docs.append(  # a future-dated request: its final answer waits for the ExecutionDateTime
        {
            "kind": "request",
            "request_id": {"originator": _eui(users["IS"]), "target": esme, "counter": 200},
            "command_variant": 4,
            "service_reference": "1.1",
            "srv": "1.1.1",
            "body": {"element": "Generic", "name": "UpdateImportTariffPrimaryElement", "xml": "<x/>"},
            "role": "IS",
            "execution_datetime": "2026-11-24T00:00:00Z",
        }
    )
    c.docs += [{"kind": "stats"}, {"kind": "subscribe", "alerts": True}, {"kind": "subscribe", "alerts": False}]
    return c


def _encode(tag: int, doc: Any) -> bytes | None:
    try:
        return frame(tag, (_js if tag == TAG_JSON else _mp).encode(doc))
    except (OverflowError, TypeError, ValueError, RecursionError, msgspec.EncodeError):
        return None  # a value the format cannot hold (an int past 64 bits in MessagePack)


def valid_frames(c: Corpus, rng: random.Random) -> list[bytes]:
    """A few valid frames: row batches, single messages and arrays of them, both formats."""
    out = [c.rows_frame(rng, rng.randint(0, 8), rng.randrange(1 << 40))]
    for tag in _MJ:
        out.append(frame(tag, (_js if tag == TAG_JSON else _mp).encode(rng.choice(c.docs))))
        out.append(frame(tag, (_js if tag == TAG_JSON else _mp).encode(rng.sample(c.docs, rng.randint(1, 4)))))
    return out


def good_frames(c: Corpus, n_rows: int, batch_id: int) -> bytes:
    """One valid compact batch of ``n_rows`` rows (ids ``batch_id ..``), for a good client."""
    return c.rows_frame(random.Random(batch_id), n_rows, batch_id)


# ---------------------------------------------------------------------------- mutations
_INTERESTING = [
    0,
    1,
    -1,
    2**7,
    2**8,
    2**15,
    2**16,
    2**16 - 1,
    2**31,
    2**32,
    2**53,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    2**64,
    10**30,
    -(10**30),
]


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A value a field should never get: extreme numbers, odd strings, the wrong type, nesting."""
    k = rng.randrange(11)
    if k == 0:
        return rng.choice(_INTERESTING)
    if k == 1:
        return rng.choice([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 0.5])
    if k == 2:
        return rng.choice(
            [
                "",
                " ",
                "\x00",
                "zz",
                "00-11",
                "0" * 16,
                "GG-GG-GG-GG-GG-GG-GG-GG",
                "9999-12-31T23:59:59Z",
                "0001-01-01T00:00:00Z",
                "2026-11-23T00:00:00",
                "\ud7ff" * 3,
                "a" * rng.randint(100, 5000),
                "00-DB-12-34-56-78-90-A0\n",
                "FF-FF-FF-FF-FF-FF-FF-FF",
                "00-00-00-00-00-00-00-00",
                "4.8.1",
                "11.2",
                "99.9",
                "IS",
                "MDR",
                "request",
                "device_alert",
            ]
        )
    if k == 3:
        return None
    if k == 4:
        return rng.choice([True, False])
    if k == 5 and depth < 3:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if k == 6 and depth < 3:
        return {rng.choice(["kind", "x", "", "device", "alerts"]): hostile_value(rng, depth + 1)}
    if k == 7:
        nested: Any = []
        for _ in range(rng.choice([3, 30, 200])):
            nested = [nested]
        return nested
    if k == 8:
        return rng.randint(-(2**70), 2**70)
    if k == 9:
        return f"{rng.getrandbits(128):032x}"
    return rng.getrandbits(16)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = dict(doc) if isinstance(doc, dict) else list(doc)
    doc[path[0]] = _replace(doc[path[0]], path[1:], value)
    return doc


def mutate_doc(rng: random.Random, doc: Any) -> Any:
    """``doc`` with one to three values (or keys) replaced by hostile ones, or deleted."""
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        p = rng.choice(paths[1:] or paths)
        if p and isinstance(p[-1], str) and rng.random() < 0.2:
            doc = _replace(doc, p[:-1], {k: v for k, v in _get(doc, p[:-1]).items() if k != p[-1]})
        else:
            doc = _replace(doc, p, _hostile_like(rng, _get(doc, p)))
    return doc


def _hostile_like(rng: random.Random, old: Any) -> Any:
    """Mostly a value of ``old``'s own type (it gets past the decoder): ``old`` a little off, or
    a hostile one of that type; else any hostile value."""
    r = rng.random()
    if r < 0.4 and isinstance(old, int) and not isinstance(old, bool):
        return old + rng.choice(
            [1, -1, 500_000_000, -old - 1, old, 1 << 63, 1 << 64, -(1 << 64), 1 << 29, 10**9 * (1 << 29)]
        )
    if r < 0.4 and isinstance(old, str):
        i = rng.randrange(len(old) + 1)
        return rng.choice(
            [
                old[:i] + old[i + 1 :],
                old[:i] + rng.choice("0Z:.-x \u00e9") + old[i:],
                old.lower(),
                old + ".5",
                old.replace("Z", ".5Z"),
                old.replace("2026", rng.choice(["1960", "9999", "1970"])),
                old.replace("-", ""),
                old * 2,
                old[:i],
            ]
        )
    for _ in range(20 if r < 0.8 else 1):
        v = hostile_value(rng)
        if type(v) is type(old):
            return v
    return v


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


_FRAMING = (3, 5, 6, 8)  # the mutations that break the framing (the rest of the stream is read askew)


def mutate_frame(rng: random.Random, c: Corpus, max_frame: int, framing: bool = True) -> bytes:
    """One mutated frame (or, with ``framing``, maybe a few bytes that are not one), built from
    valid traffic. Most mutations keep the frame's length right, so the frames after it are read
    as sent; most are of values that still decode (where the semantic bugs are)."""
    while True:
        k = rng.choice([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11, 12])
        if framing or k not in _FRAMING:
            break
    base = rng.choice(valid_frames(c, rng))
    if k == 0:  # hostile values in a message
        doc = mutate_doc(rng, rng.choice(c.docs) if rng.random() < 0.7 else rng.sample(c.docs, 2))
        return _encode(rng.choice(_MJ), doc) or base
    if k == 1:  # hostile values in a row
        rows = [c.row(rng, i) for i in range(rng.randint(1, 4))]
        rows = mutate_doc(rng, rows)
        out = _encode(TAG_ROWS, rows)
        return out[:5] + rng.getrandbits(64).to_bytes(8, "big") + out[5:] if out else base
    body = bytearray(base)
    if k == 2:  # flip bytes of the payload
        for _ in range(rng.randint(1, 6)):
            if len(body) > 5:
                i = rng.randrange(5, len(body))
                body[i] = rng.choice([rng.randrange(256), body[i] ^ (1 << rng.randrange(8)), 0xC1, 0xFF, 0x00, 0xDD])
        return bytes(body)
    if k == 3:  # a length that is not the frame's
        n = rng.choice(
            [0, 1, 2, len(body) - 5, len(body) - 3, len(body) + 1, max_frame, max_frame + 1, rng.randrange(1 << 32), 9]
        )
        return n.to_bytes(4, "big") + bytes(body[4:])
    if k == 4:  # another tag
        body[4] = rng.choice([TAG_ROWS, TAG_MSGPACK, TAG_JSON, rng.randrange(256), TAG_ACK, TAG_CLOSE, TAG_FINALS])
        return bytes(body)
    if k == 5:  # cut short
        return bytes(body[: rng.randrange(len(body))])
    if k == 6:  # splice two frames
        other = rng.choice(valid_frames(c, rng))
        return bytes(body[: rng.randrange(len(body) + 1)]) + other[rng.randrange(len(other) + 1) :]
    if k == 7:  # insert or delete payload bytes (the length follows)
        payload = bytes(body[5:])
        i = rng.randrange(len(payload) + 1)
        if rng.random() < 0.5:
            payload = payload[:i] + rng.randbytes(rng.randint(1, 8)) + payload[i:]
        else:
            payload = payload[:i] + payload[i + rng.randint(1, 8) :]
        return frame(body[4], payload)
    if k == 8:  # random bytes
        return rng.randbytes(rng.randint(0, 64))
    if k == 9:  # a declared array length the payload cannot hold
        if body[4] == TAG_ROWS and len(body) > 13:
            body[13:14] = rng.choice([b"\xdd\xff\xff\xff\xff", b"\xdc\xff\xff", b"\x9f", b"\xdd\x00\x00\x00\x05"])
            return frame(TAG_ROWS, bytes(body[5:]))
        return frame(base[4], rng.choice([b"\xdd\xff\xff\xff\xff", b"\xde\xff\xff", b"\xdf\xff\xff\xff\xff"]))
    if k == 10:  # a payload of another tag's format
        return frame(rng.choice([TAG_ROWS, TAG_MSGPACK, TAG_JSON]), bytes(body[5:]))
    if k == 11:  # deep nesting (arrays, maps), at the top or in a field, as deep as the frame limit allows
        n = rng.randint(1, max_frame - 30)  # (deeper than the recursion limit, even a raised one, in MessagePack)
        tag = rng.choice([TAG_ROWS, TAG_MSGPACK, TAG_JSON])
        if tag == TAG_JSON:
            h = n // 2
            deep = rng.choice(
                [
                    b"[" * n,
                    b'{"a":' * (n // 5),
                    b'{"kind":"stats","x":' + b"[" * h + b"]" * h + b"}",
                    b'{"kind":"stats","x":' + b"[" * n,
                ]
            )
        else:
            deep = rng.choice(
                [b"\x91" * n, b"\x81\xa1a" * (n // 3), b"\x82\xa4kind\xa5stats\xa1x" + b"\x91" * n + b"\xc0"]
            )
        return frame(tag, (bytes(8) if tag == TAG_ROWS else b"") + deep)
    return bytes(body)  # as it is


def mutate_stream(rng: random.Random, c: Corpus, max_frame: int, n: int) -> bytes:
    """``n`` frames, each valid or mutated, run together (a stream of one connection). A
    mutation that breaks the framing comes last, or now and then earlier."""
    parts = []
    for i in range(n):
        if rng.random() < 0.8:
            parts.append(mutate_frame(rng, c, max_frame, framing=i == n - 1 or rng.random() < 0.03))
        else:
            parts.append(rng.choice(valid_frames(c, rng)))
    return b"".join(parts)


# ---------------------------------------------------------------------------- the contract
@dataclass
class Plan:
    """What a stream of frames must get: ``expect`` per complete frame, and how it ends.

    ``expect``: ``"R"`` (one of A/B/E), ``"E"`` (an E), ``"msg!"`` (at least one M/J reply),
    ``"msg"`` (any number). ``tail``: ``"boundary"``, ``"closed"`` (a zero length: X, then the
    close), or ``"cut"`` with ``missing`` bytes to the end of the frame or skip (-1: unknown,
    the length itself was cut).
    """

    expect: list[str]
    tail: str
    missing: int = 0
    frames: int = 0


_inbound_js: Any = None
_inbound_mp: Any = None


def _must_answer(tag: int, payload: bytes) -> bool:
    """Whether an M/J frame must get a reply now: it is not well-formed, or asks for one."""
    global _inbound_js, _inbound_mp
    if _inbound_js is None:
        from dccsim.core.messages import DeviceAlert, ServiceRequest, StatsRequest, Subscribe

        t = ServiceRequest | DeviceAlert | Subscribe | StatsRequest
        _inbound_js, _inbound_mp = msgspec.json.Decoder(t | list[t]), msgspec.msgpack.Decoder(t | list[t])
    from dccsim.core.messages import ServiceRequest, StatsRequest

    try:
        got = (_inbound_js if tag == TAG_JSON else _inbound_mp).decode(payload)
    except Exception:  # noqa: BLE001 - anything the decoder refuses is answered with an error
        return True
    items = got if isinstance(got, list) else [got]
    return any(isinstance(x, ServiceRequest | StatsRequest) for x in items)


def plan_stream(stream: bytes, max_frame: int) -> Plan:
    """Parse ``stream`` as the server must (length, tag, payload; skip a frame too long)."""
    expect: list[str] = []
    off, end, frames = 0, len(stream), 0
    while True:
        if end - off < 4:
            return Plan(expect, "boundary" if off == end else "cut", -1, frames)
        length = int.from_bytes(stream[off : off + 4], "big")
        frames += 1
        if length == 0:
            return Plan(expect, "closed", 0, frames)
        if length > max_frame:
            expect.append("E")
            if end - off - 4 < length:
                return Plan(expect, "cut", length - (end - off - 4), frames)
            off += 4 + length
            continue
        if end - off < 4 + length:
            frames -= 1
            return Plan(expect, "cut", 4 + length - (end - off), frames)
        tag = stream[off + 4]
        payload = stream[off + 5 : off + 4 + length]
        if tag == TAG_ROWS:
            expect.append("R")
        elif tag in _MJ:
            expect.append("msg!" if _must_answer(tag, payload) else "msg")
        else:
            expect.append("E")
        off += 4 + length


@dataclass
class StreamResult:
    """What one checked stream got, and what was wrong with it (``problems``)."""

    frames: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    closed_with_reason: bool = False
    closed_without_reason: bool = False
    problems: list[str] = field(default_factory=list)
    alive: bool = False  # the connection is still open and usable (the sentinel was answered)


class _Reader:
    def __init__(self, reader: asyncio.StreamReader):
        self.r = reader
        self.frames: list[tuple[int, bytes]] = []
        self.eof = False

    async def next(self) -> tuple[int, bytes] | None:
        try:
            head = await self.r.readexactly(4)
            n = int.from_bytes(head, "big")
            body = await self.r.readexactly(n)
        except (asyncio.IncompleteReadError, OSError):  # reset, aborted: the server dropped it
            self.eof = True
            return None
        f = (body[0], body[1:]) if body else (0, b"")
        self.frames.append(f)
        return f


def _is_sentinel(f: tuple[int, bytes]) -> bool:
    if f[0] != TAG_ACK:
        return False
    try:
        return msgspec.msgpack.decode(f[1]) == [SENTINEL_ID, 0]
    except msgspec.DecodeError:
        return False


async def check_stream(
    port: int,
    stream: bytes,
    max_frame: int,
    *,
    chunks: list[int] | None = None,
    timeout: float = 10.0,
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None,
) -> tuple[StreamResult, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """Send ``stream`` (in pieces cut at ``chunks``) and check the replies against the contract.

    Uses ``conn`` when given (a connection a previous stream left usable), else a new one.
    Returns the result and the connection when it is still usable (else ``None``, closed).
    """
    if conn is None and stream[:1].isalpha():
        stream = _FRAMES_FIRST + stream
    p = plan_stream(stream, max_frame)
    if p.tail == "cut" and 0 <= p.missing <= _PAD_MAX:
        stream += b"\0" * p.missing  # complete the frame (or the skip), so a sentinel can follow
        p = plan_stream(stream, max_frame)
        assert p.tail != "cut" or p.missing < 0
    res = StreamResult(frames=p.frames)
    if conn is None:
        conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    reader, writer = conn
    sentinel = p.tail == "boundary"
    rd = _Reader(reader)

    async def write() -> None:
        cuts = sorted({c for c in (chunks or []) if 0 < c < len(stream)})
        try:
            for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
                writer.write(stream[a:b])
                await writer.drain()
            if sentinel:
                writer.write(_SENTINEL)
            elif p.tail == "cut":
                writer.write_eof()
            await writer.drain()
        except OSError:
            pass  # the server closed it: what it said before is checked below

    async def read() -> None:
        while True:
            f = await rd.next()
            if f is None or (sentinel and _is_sentinel(f)):
                return

    try:
        await asyncio.wait_for(asyncio.gather(write(), read()), timeout)
    except TimeoutError:
        res.problems.append(f"no end within {timeout} s (tail {p.tail}, {len(rd.frames)} frames read)")
    tags = [chr(t) if 32 < t < 127 else f"{t:#04x}" for t, _ in rd.frames]
    res.replies.update(tags)
    immediate = [t for t in tags if t in "ABE"]
    closed = [i for i, t in enumerate(tags) if t == "X"]
    if closed:
        res.closed_with_reason = True
        if closed != [len(tags) - 1]:
            res.problems.append(f"frames after X: {tags}")
        if not rd.eof:
            res.problems.append("X, but the connection was not closed")
    elif rd.eof and p.tail != "cut":
        res.closed_without_reason = True
        res.problems.append(f"connection closed without an X frame (tail {p.tail}, replies {tags})")
    want = [e for e in p.expect if e in ("R", "E")] + (["R"] if sentinel else [])
    if p.tail == "closed":
        if not closed:
            res.problems.append("a zero length was not answered with X")
    if len(immediate) != len(want) and not res.problems:
        res.problems.append(f"{len(want)} A/B/E replies expected, {len(immediate)} came: {tags}")
    else:
        for w, got in zip(want, immediate, strict=False):
            if w == "E" and got != "E":
                res.problems.append(f"an E reply expected, {got} came (replies {tags})")
                break
    must = sum(e == "msg!" for e in p.expect)
    mj = sum(t in "MJ" for t in tags)
    if mj < must and not res.problems:
        res.problems.append(f"{must} M/J frames must be answered, {mj} M/J replies came: {tags}")
    if sentinel and not rd.eof and not res.problems and not closed:
        res.alive = True
        return res, conn
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (ConnectionError, TimeoutError, OSError):
        pass
    return res, None


# ---------------------------------------------------------------------------- the script
class _Good:
    """A client that sends valid row batches and counts the answers (ack, busy, finals)."""

    def __init__(self, c: Corpus):
        self.c, self.sent, self.answered, self.acked, self.busy, self.errors = c, 0, 0, 0, 0, 0
        self.stop = asyncio.Event()

    async def run(self, port: int, timeout: float) -> None:
        from dccsim.core.protocol import FINAL_RECORD_BYTES

        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        bid = 1 << 50
        try:
            while not self.stop.is_set():
                writer.write(good_frames(self.c, 4, bid))
                self.sent += 4
                finals = 0
                while finals < 4:
                    head = await asyncio.wait_for(reader.readexactly(4), timeout)
                    body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), timeout)
                    if body[0] == TAG_ACK:
                        self.acked += 4
                    elif body[0] == TAG_BUSY:
                        self.busy += 4
                        break
                    elif body[0] == TAG_ERROR:
                        self.errors += 4
                        break
                    elif body[0] == TAG_FINALS:
                        finals += (len(body) - 1) // FINAL_RECORD_BYTES
                self.answered += finals
                bid += 4
                await asyncio.sleep(0.002)  # a steady trickle, not a flood
        finally:
            writer.close()


async def _stats(port: int, timeout: float) -> dict[str, Any] | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(frame(TAG_JSON, b'{"kind": "stats"}'))
        head = await asyncio.wait_for(reader.readexactly(4), timeout)
        body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), timeout)
        writer.close()
        got = msgspec.json.decode(body[1:])
        return got if isinstance(got, dict) and got.get("kind") == "stats_reply" else None
    except (OSError, TimeoutError, asyncio.IncompleteReadError, msgspec.DecodeError):
        return None


async def _fuzz(port: int, a: argparse.Namespace, c: Corpus, max_frame: int) -> dict[str, Any]:
    total = Counter[str]()
    figures: dict[str, Any] = {
        "frames": 0,
        "streams": 0,
        "closed_with_reason": 0,
        "closed_without_reason": 0,
        "connections": 0,
        "problems": [],
    }
    good = _Good(c)
    good_task = asyncio.create_task(good.run(port, a.timeout))

    async def worker(k: int) -> None:
        rng = random.Random(a.seed * 1000 + k)
        conn = None
        while figures["frames"] < a.frames:
            if good_task.done():
                return
            stream = mutate_stream(rng, c, max_frame, rng.randint(1, a.stream_frames))
            chunks = [rng.randrange(len(stream) + 1) for _ in range(rng.randint(0, 3))]
            if conn is None:
                figures["connections"] += 1
            res, conn = await check_stream(port, stream, max_frame, chunks=chunks, timeout=a.timeout, conn=conn)
            figures["frames"] += res.frames
            figures["streams"] += 1
            figures["closed_with_reason"] += res.closed_with_reason
            figures["closed_without_reason"] += res.closed_without_reason
            total.update(res.replies)
            if res.problems and len(figures["problems"]) < 20:
                figures["problems"].append((res.problems, stream[:200]))
            elif res.problems:
                figures["problems"].append((res.problems, b""))

    try:
        await asyncio.gather(*(worker(k) for k in range(a.connections)))
    finally:
        good.stop.set()
    try:
        await asyncio.wait_for(good_task, a.timeout)
        figures["good_error"] = ""
    except Exception as exc:  # noqa: BLE001 - reported as the good client's failure
        figures["good_error"] = f"{type(exc).__name__}: {exc}"
    figures["replies"] = dict(sorted(total.items()))
    figures["good"] = good
    figures["stats"] = await _stats(port, a.timeout)
    return figures


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000, help="frames to send, at least (all connections)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connections", type=int, default=8, help="fuzzing connections at once")
    ap.add_argument("--stream-frames", type=int, default=40, help="most frames in one stream before its check")
    ap.add_argument("--max-frame-bytes", type=int, default=4096, help="the server's limit (small: oversize is hit)")
    ap.add_argument("--timeout", type=float, default=20.0, help="bound on any single wait (s)")
    a = ap.parse_args(argv)
    import uvloop

    c = corpus()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "dccsim.bench",
        "serve",
        "--port",
        "0",
        "--no-log",
        "--speed",
        "1000000",
        "--max-frame-bytes",
        str(a.max_frame_bytes),
        "--max-connections",
        str(a.connections + 16),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    if "127.0.0.1:" not in line:
        proc.kill()
        raise SystemExit(f"fuzz: the server did not start: {line!r}")
    port = int(line.split("127.0.0.1:")[1].split(";")[0])
    t0 = time.monotonic()
    try:
        fig = uvloop.run(_fuzz(port, a, c, a.max_frame_bytes))
    finally:
        wall = time.monotonic() - t0
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    stderr = err.decode(errors="replace")
    exceptions = sum(stderr.count(w) for w in ("Traceback", "Exception in callback", "Fatal error"))
    good: _Good = fig["good"]
    stats = fig["stats"]
    print(
        f"seed {a.seed}; {a.connections} fuzzing connections + 1 good client; server max_frame_bytes "
        f"{a.max_frame_bytes}; wall {wall:.1f} s"
    )
    print(
        f"frames sent (complete or cut, by the stream plans): {fig['frames']:,} in {fig['streams']:,} streams "
        f"over {fig['connections']:,} connections ({fig['frames'] / wall:,.0f} frames/s)"
    )
    print("replies by kind: " + ", ".join(f"{k} {v:,}" for k, v in fig["replies"].items()))
    print(
        f"connections closed by the server: with a reason (X) {fig['closed_with_reason']:,}, "
        f"without {fig['closed_without_reason']:,}"
    )
    print(f"streams that broke the contract: {len(fig['problems']):,}")
    for problems, head in fig["problems"][:5]:
        print(f"  {problems[0]}  stream starts {head[:80]!r}")
    print(
        f"good client: sent {good.sent:,} requests, final answers {good.answered:,}, acked {good.acked:,}, "
        f"busy {good.busy:,}, errors {good.errors:,}{'; ' + fig['good_error'] if fig['good_error'] else ''}"
    )
    if stats is None:
        print("server still answering (a final stats request): NO")
    else:
        s = stats["server"]
        print(
            f"server still answering (a final stats request): yes; frames {s['frames']:,}, malformed "
            f"{s['malformed']:,}, oversized {s['oversized']:,}, requests {s['requests']:,}, alerts in "
            f"{s['alerts_in']:,}"
        )
    print(f"server exceptions (its stderr): {exceptions}")
    if exceptions:
        print("  " + "\n  ".join(stderr.strip().splitlines()[-12:]))
    lost = good.sent - good.answered - good.busy
    failed = (
        fig["closed_without_reason"]
        or fig["problems"]
        or lost
        or good.errors
        or fig["good_error"]
        or stats is None
        or exceptions
        or fig["frames"] < a.frames
    )
    print("verdict: " + ("FAIL" if failed else "pass"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
