"""Fuzzing the decoders of untrusted bytes: JSON, MessagePack and DUIS XML.

Every entry point that decodes bytes from outside (a file given to ``dccsim decode``, a frame
the server reads) must return its result or raise :class:`MessageError`, never another
exception, and quickly. The inputs are random bytes and mutations of valid messages (the
examples shipped in ``examples/requests`` and their other encodings): bytes flipped, inserted
and deleted, truncations, and splices of two messages.

The default run is short (a few seconds); ``DCCSIM_FUZZ_EXAMPLES=N`` runs N examples a test.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from dccsim.core import duisxml, wire
from dccsim.core.errors import MessageError
from dccsim.core.messages import RequestRow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests"
MAX_EXAMPLES = int(os.environ.get("DCCSIM_FUZZ_EXAMPLES", "300"))

FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=timedelta(seconds=2),  # a decoder that takes seconds on a small input is a bug too
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("DCCSIM_FUZZ_RANDOM") is None,  # the default suite is repeatable
    database=None,
)


def _seeds() -> list[bytes]:
    """Valid (and some invalid) messages in every format the decoders take."""
    seeds = [p.read_bytes() for p in sorted(EXAMPLES.iterdir()) if p.is_file()]
    messages = [m for m in wire.decode_file((EXAMPLES / "04_batch.jsonl").read_bytes())]
    messages += [wire.decode_file((EXAMPLES / "01_mhhs_4.8.1.xml").read_bytes())[0]]
    for m in messages:
        seeds += [wire.encode_json(m), wire.encode_msgpack(m), duisxml.encode_xml(m)]
    seeds += [wire.encode_msgpack(messages), msgspec.json.encode(messages)]
    rows = [RequestRow(originator=1, target=2, counter=3, command_variant=1, srv="4.8.1", role="MDR", t_scheduled_ns=5)]
    seeds += [wire.encode_rows(rows * 3)]
    return seeds


SEEDS = _seeds()


#: values at the edges of what a field holds, put in place of a number or a date-time
EDGES = [
    b"99999999999999999999999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"-1",
    b"1_000",
    b"9999-12-31T23:59:59-01:00",
    b"0001-01-01T00:00:00+01:00",
    b"2026-11-21T00:00:00",
    b"2026-02-30T00:00:00Z",
]
_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_NUMBER = re.compile(rb"\d+")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed message with a few random edits (or a splice of two)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice", "set", "time", "number"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op in ("time", "number"):
            spans = [m.span() for m in (_TIME if op == "time" else _NUMBER).finditer(data)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                data[a:b] = draw(st.sampled_from(EDGES))
        elif op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x22, 0x3C, 0x5B, 0x7B, 0x7F, 0x80, 0xC0, 0xC1, 0xDC, 0xDE, 0xFF]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            cut = draw(st.integers(0, len(other)))
            data[at:] = other[cut:]
    return bytes(data)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """Arrays or maps (JSON, MessagePack) or elements (XML) nested up to 50,000 deep."""
    opening, closing = draw(
        st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b"\x91", b""), (b"\x81\xa1a", b""), (b"<a>", b"</a>")])
    )
    depth = draw(st.integers(1, 50_000))
    head = draw(st.sampled_from([b"", b'{"kind":"request","x":', b"\x91", b"["]))
    return head + opening * depth + b"1" + closing * depth


INPUTS = st.one_of(st.binary(max_size=256), mutated(), nested())

DECODERS = {
    "decode_file": wire.decode_file,
    "decode_json": wire.decode_json,
    "decode_json_batch": wire.decode_json_batch,
    "decode_json_lines": wire.decode_json_lines,
    "decode_msgpack": wire.decode_msgpack,
    "decode_msgpack_batch": wire.decode_msgpack_batch,
    "decode_rows": wire.decode_rows,
    "decode_request_xml": duisxml.decode_request_xml,
}


def _call(name: str, data: bytes) -> object:
    """The decoder's result; a MessageError is an answer too. Anything else fails the test."""
    try:
        return DECODERS[name](data)
    except MessageError as err:
        assert str(err) and err.field  # it names where
        return err


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(data=INPUTS)
def test_decoders_answer_or_raise_message_error(name: str, data: bytes) -> None:
    result = _call(name, data)
    if name in ("decode_file", "decode_json_lines"):  # these give errors in place, never raise
        assert isinstance(result, list)


@FUZZ
@given(data=mutated())
def test_what_decodes_encodes_again(data: bytes) -> None:
    """A message the decoders accept can be written out in each format (``dccsim decode --to``)."""
    for item in wire.decode_file(data):
        if isinstance(item, MessageError):
            continue
        wire.encode_json(item)
        wire.encode_msgpack(item)
        if not isinstance(item, RequestRow):
            try:
                duisxml.encode_xml(item)
            except MessageError:
                pass
