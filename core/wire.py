"""JSON and MessagePack wire formats, built once and reused.

Three shapes travel:

- one message (any :data:`~dccsim.core.messages.Message`, tagged by ``kind``);
- a batch: a JSON/MessagePack array of messages, or JSON lines (one object a line);
- a compact request batch: a MessagePack array of :class:`RequestRow` arrays, the
  high-throughput path that :func:`dccsim.core.columns.RequestBatch.from_msgpack` turns
  into columns.

Decoding errors become :class:`~dccsim.core.errors.MessageError` naming the JSON path, the
value found there and the expected type.

>>> from dccsim.core.messages import RequestId, ServiceRequest, ReadFirmwareVersion
>>> req = ServiceRequest(request_id=RequestId.parse("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:7"),
...                      command_variant=1, service_reference="11.2", srv="11.2", body=ReadFirmwareVersion())
>>> decode_json(encode_json(req)) == req
True
>>> decode_msgpack(encode_msgpack(req)) == req
True
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .errors import MessageError
from .messages import Message, RequestRow

__all__ = [
    "encode_json",
    "decode_json",
    "decode_json_batch",
    "decode_json_lines",
    "encode_msgpack",
    "decode_msgpack",
    "decode_msgpack_batch",
    "encode_rows",
    "decode_rows",
    "detect_format",
]

_json_enc = msgspec.json.Encoder()
_json_dec = msgspec.json.Decoder(Message)
_json_batch_dec = msgspec.json.Decoder(list[Message])
_mp_enc = msgspec.msgpack.Encoder()
_mp_dec = msgspec.msgpack.Decoder(Message)
_mp_batch_dec = msgspec.msgpack.Decoder(list[Message])
_rows_dec = msgspec.msgpack.Decoder(list[RequestRow])

_PATH_RE = re.compile(r" - at `(\$[^`]*)`$")
_EXPECTED_RE = re.compile(r"^Expected `([^`]*)`, got `([^`]*)`")


def _value_at(raw: Any, path: str) -> Any:
    """Walk a msgspec error path like ``$.body.period[0]`` through untyped data."""
    cur = raw
    for key, index in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", path[1:]):
        try:
            cur = cur[key] if key else cur[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _error(exc: msgspec.MsgspecError, data: bytes, untyped: Any) -> MessageError:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        m = _PATH_RE.search(text)
        path = m.group(1) if m else "$"
        message = text[: m.start()] if m else text
        e = _EXPECTED_RE.match(message)
        raw = None
        try:
            raw = untyped(data)
        except msgspec.DecodeError:
            pass
        value = _value_at(raw, path) if raw is not None else None
        if e:
            expected = e.group(1)
        elif message.startswith("Object missing required field"):
            expected = f"the required field {message.split('`')[1]!r}"
            value = "(missing)"
        else:
            expected = message
        return MessageError(path, value, expected)
    return MessageError("message", text, "well-formed input")


def encode_json(msg: Message) -> bytes:
    """One message as compact JSON."""
    return _json_enc.encode(msg)


def decode_json(data: bytes | str) -> Message:
    """One message from JSON; :class:`MessageError` on bad input."""
    try:
        return _json_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data if isinstance(data, bytes) else data.encode(), msgspec.json.decode) from None


def decode_json_batch(data: bytes) -> list[Message]:
    """A JSON array of messages."""
    try:
        return _json_batch_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.json.decode) from None


def decode_json_lines(data: bytes) -> list[Message | MessageError]:
    """JSON lines: one message per non-empty line; bad lines come back as errors in place."""
    out: list[Message | MessageError] = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(decode_json(line))
        except MessageError as err:
            err.field = f"line {lineno}: {err.field}"
            out.append(err)
    return out


def encode_msgpack(msg: Message | list[Message]) -> bytes:
    """One message, or a list of them, as MessagePack."""
    return _mp_enc.encode(msg)


def decode_msgpack(data: bytes) -> Message:
    """One message from MessagePack."""
    try:
        return _mp_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.msgpack.decode) from None


def decode_msgpack_batch(data: bytes) -> list[Message]:
    """A MessagePack array of messages."""
    try:
        return _mp_batch_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.msgpack.decode) from None


def encode_rows(rows: list[RequestRow]) -> bytes:
    """A compact request batch (array of arrays)."""
    return _mp_enc.encode(rows)


def decode_rows(data: bytes) -> list[RequestRow]:
    """A compact request batch back into :class:`RequestRow` objects."""
    try:
        return _rows_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.msgpack.decode) from None


def detect_format(data: bytes) -> str:
    """``"xml"``, ``"json"`` (one document), ``"jsonl"`` (JSON lines) or ``"msgpack"``."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        stripped = data.strip()
        if head == b"{" and b"\n" in stripped:
            lines = [ln for ln in stripped.splitlines() if ln.strip()]
            if len(lines) > 1 and all(ln.lstrip().startswith(b"{") for ln in lines):
                return "jsonl"
        return "json"
    return "msgpack"
