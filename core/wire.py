"""JSON and MessagePack wire formats, built once and reused.

Three shapes travel:

- one message (any :data:`~dccsim.core.messages.Message`, tagged by ``kind``);
- a batch: a JSON/MessagePack array of messages, or JSON lines (one object a line);
- a compact request batch: a MessagePack array of :class:`RequestRow` arrays, the
  high-throughput path that :func:`dccsim.core.columns.RequestBatch.from_msgpack` turns
  into columns.

:func:`decode_file` takes the bytes of one file in any of these formats, or DUIS XML
(:mod:`dccsim.core.duisxml`), and returns every message in it, bad ones as errors in place.

Decoding errors become :class:`~dccsim.core.errors.MessageError` naming the JSON path, the
value found there and the expected type. What the types alone do not say is checked after
decoding (:func:`check_message`), as the DUIS XML reader checks it: RequestIDs (EUI-64s and
an unsigned 64-bit counter) and date-times with a time zone.

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
from datetime import datetime
from typing import Any

import msgspec

from .errors import MessageError
from .messages import DCCAlert, DeviceAlert, Message, RequestId, RequestRow, Response, ServiceRequest

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
    "decode_file",
    "check_message",
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


def _aware(dt: datetime | None, field: str) -> None:
    if dt is not None and dt.tzinfo is None:
        raise MessageError(field, dt.isoformat(), "a date-time with a time zone, e.g. 2026-11-22T00:00:00Z")


def _request_id(rid: RequestId | None, field: str) -> None:
    if rid is not None:
        rid.check(field)


def check_message(msg: Message, where: str = "$") -> Message:
    """``msg`` if its RequestIDs and date-times are valid, else :class:`MessageError`.

    The checks the DUIS XML reader makes while parsing: each RequestID's originator and
    target are EUI-64s and its counter an unsigned 64-bit integer; every date-time has a time
    zone. Fields are named by their path from ``where`` (e.g. ``$.request_id.counter``).
    """
    if isinstance(msg, ServiceRequest):
        _request_id(msg.request_id, f"{where}.request_id")
        _request_id(msg.preceding_request_id, f"{where}.preceding_request_id")
        period = msg.period
        if period is not None:
            _aware(period.start, f"{where}.body.period.start")
            _aware(period.end, f"{where}.body.period.end")
        _aware(msg.execution_datetime, f"{where}.execution_datetime")
    elif isinstance(msg, Response):
        _request_id(msg.request_id, f"{where}.request_id")
        _request_id(msg.response_id, f"{where}.response_id")
        _aware(msg.response_datetime, f"{where}.response_datetime")
    elif isinstance(msg, DeviceAlert | DCCAlert):
        _aware(msg.time, f"{where}.time")
    return msg


def _check_all(msgs: list[Message]) -> list[Message]:
    for i, msg in enumerate(msgs):
        check_message(msg, f"$[{i}]")
    return msgs


def encode_json(msg: Message | RequestRow) -> bytes:
    """One message (or compact request row) as compact JSON."""
    return _json_enc.encode(msg)


def decode_json(data: bytes | str) -> Message:
    """One message from JSON; :class:`MessageError` on bad input."""
    try:
        msg = _json_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data if isinstance(data, bytes) else data.encode(), msgspec.json.decode) from None
    return check_message(msg)


def decode_json_batch(data: bytes) -> list[Message]:
    """A JSON array of messages."""
    try:
        msgs = _json_batch_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.json.decode) from None
    return _check_all(msgs)


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


def encode_msgpack(msg: Message | RequestRow | list[Message | RequestRow]) -> bytes:
    """One message, or a list of them (compact request rows among them), as MessagePack."""
    return _mp_enc.encode(msg)


def decode_msgpack(data: bytes) -> Message:
    """One message from MessagePack."""
    try:
        msg = _mp_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.msgpack.decode) from None
    return check_message(msg)


def decode_msgpack_batch(data: bytes) -> list[Message]:
    """A MessagePack array of messages."""
    try:
        msgs = _mp_batch_dec.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, msgspec.msgpack.decode) from None
    return _check_all(msgs)


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


def decode_file(data: bytes) -> list[Message | RequestRow | MessageError]:
    """Every message in the bytes of one file, whatever its format (:func:`detect_format`).

    DUIS XML holds one ``sr:Request``; JSON one message or an array of them; JSON lines one
    message a line; MessagePack one message, an array of messages, or a compact request batch
    (an array of :class:`RequestRow` arrays, each row checked). A bad message comes back as
    its :class:`MessageError` in its place (one for a bad line of JSON lines, otherwise one
    for the whole file), so that the good ones can still be used; nothing is raised for bad
    input.
    """
    fmt = detect_format(data)
    try:
        if fmt == "xml":
            from .duisxml import decode_request_xml  # here: it loads lxml, which JSON and MessagePack need not

            return [decode_request_xml(data)]
        if fmt == "jsonl":
            return list(decode_json_lines(data))
        if fmt == "json":
            if data.lstrip()[:1] == b"[":
                return list(decode_json_batch(data))
            return [decode_json(data)]
        if not (data[:1] and (data[0] in (0xDC, 0xDD) or 0x90 <= data[0] <= 0x9F)):
            return [decode_msgpack(data)]
        # an array: of messages, or a compact request batch of RequestRow arrays
        try:
            return list(decode_msgpack_batch(data))
        except MessageError as batch_error:
            try:
                rows = decode_rows(data)
            except MessageError:
                raise batch_error from None
            for i, row in enumerate(rows):
                row.check(f"$[{i}]")
            return list(rows)
    except MessageError as err:
        return [err]
