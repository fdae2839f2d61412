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
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec
import msgspec.inspect as mi

from .errors import MessageError
from .eui import EUI_RE
from .messages import (
    READ_LOG_BODIES,
    TYPED_BODIES,
    TYPED_ELEMENT_SRV,
    DCCAlert,
    DeviceAlert,
    GenericBody,
    Message,
    ReadActiveImportProfileData,
    RequestId,
    RequestRow,
    Response,
    RetrieveImportDailyReadLog,
    ServiceRequest,
    UpdateHANDeviceLog,
)
from .records import ROLES

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
    "check_header",
    "check_body",
    "check_request",
    "check_row",
    "check_generic_xml",
    "COMMAND_VARIANTS",
    "INSTALL_CODE_BYTES",
    "JOIN_TIME_S",
]

_json_enc = msgspec.json.Encoder()
_json_dec = msgspec.json.Decoder(Message)
_json_batch_dec = msgspec.json.Decoder(list[Message])
_mp_enc = msgspec.msgpack.Encoder()
_mp_dec = msgspec.msgpack.Decoder(Message)
_mp_batch_dec = msgspec.msgpack.Decoder(list[Message])
_rows_dec = msgspec.msgpack.Decoder(list[RequestRow])
_MESSAGE = mi.type_info(Message)
_MESSAGES = mi.type_info(list[Message])
_ROWS = mi.type_info(list[RequestRow])

_PATH_RE = re.compile(r" - at `(\$[^`]*)`$")
_EXPECTED_RE = re.compile(r"^Expected `([^`]*)`(?:, got `([^`]*)`)?")
_SEGMENT_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")

#: what arrived, where the rest of the input cannot be decoded to show it
_HIDDEN = "a value the input around it hides (malformed or nested too deep)"
#: what a document that is a lone scalar should have been
_TOP_EXPECTED = "a request object or array"


def too_deep(fmt: str) -> MessageError:
    """The error for input nested too deeply to decode: msgspec stops at the interpreter's
    recursion limit with a RecursionError, far deeper than the 4 levels a message needs
    (request -> body -> period -> start)."""
    got = f"{fmt} arrays or objects nested more than ~{sys.getrecursionlimit()} levels deep"
    return MessageError("nesting", None, "at most a few levels (a message needs 4)", got=got)


def _value_at(raw: Any, path: str) -> Any:
    """Walk a msgspec error path like ``$.body.period[0]`` through untyped data."""
    cur = raw
    for key, index in _SEGMENT_RE.findall(path[1:]):
        try:
            cur = cur[key] if key else cur[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _struct_for(node: mi.Type, raw: Any) -> mi.Type:
    """``node`` with unions and optionals resolved to the member ``raw`` selects (its tag)."""
    while isinstance(node, mi.UnionType):
        structs = [t for t in node.types if isinstance(t, mi.StructType)]
        others = [t for t in node.types if not isinstance(t, mi.StructType | mi.NoneType)]
        if structs and isinstance(raw, dict | list):
            if isinstance(raw, dict) and structs[0].tag_field is not None:
                picked = [t for t in structs if t.tag == raw.get(structs[0].tag_field)]
            else:
                picked = structs
            if len(picked) != 1:
                return node
            node = picked[0]
        elif not structs and len(others) == 1:
            node = others[0]
        else:
            return node
    return node


def _describe(node: mi.Type) -> str | None:
    """What a value of type ``node`` must be, in words; ``None`` where there are no better words."""
    if isinstance(node, mi.LiteralType):
        return "one of " + ", ".join(repr(v) for v in node.values)
    if isinstance(node, mi.UnionType):
        literals = [v for t in node.types if isinstance(t, mi.LiteralType) for v in t.values]
        if literals and all(isinstance(t, mi.LiteralType | mi.NoneType) for t in node.types):
            tail = " or null" if any(isinstance(t, mi.NoneType) for t in node.types) else ""
            return "one of " + ", ".join(repr(v) for v in literals) + tail
        parts = [_describe(t) for t in node.types]
        return None if None in parts else " or ".join(p for p in parts if p)
    if isinstance(node, mi.NoneType):
        return "null"
    if isinstance(node, mi.BoolType):
        return "true or false"
    if isinstance(node, mi.IntType):
        return "an integer (64-bit)"
    if isinstance(node, mi.FloatType):
        return "a number"
    if isinstance(node, mi.StrType):
        return "a string"
    if isinstance(node, mi.DateTimeType):
        return "an RFC 3339 date-time, e.g. 2026-11-22T00:00:00Z"
    if isinstance(node, mi.BytesType):
        return "bytes (base64 text in JSON)"
    if isinstance(node, mi.StructType):
        if node.array_like:
            return f"an array of {sum(f.required for f in node.fields)} to {len(node.fields)} values"
        return f"a {node.tag!r} object" if node.tag else "an object"
    if isinstance(node, mi.ListType):
        return "an array"
    return None


def _fields_at(info: mi.Type, raw: Any, path: str) -> list[str]:
    """The field names of the object the decoder's type has at ``path`` (through ``raw``'s tags)."""
    node = _expected_at(info, raw, path, node_only=True)
    node = _struct_for(node, _value_at(raw, path)) if isinstance(node, mi.Type) else node
    if not isinstance(node, mi.StructType):
        return []
    return [f.encode_name for f in node.fields]


def _expected_at(info: mi.Type, raw: Any, path: str, node_only: bool = False) -> Any:
    """What the decoder's type allows at ``path`` (through ``raw``'s tags), in words (or, with
    ``node_only``, the type itself)."""
    node, here = info, raw
    segments = _SEGMENT_RE.findall(path[1:])
    for i, (key, index) in enumerate(segments):
        node = _struct_for(node, here)
        if key:
            if isinstance(node, mi.UnionType):  # a tagged union whose tag is not one of its own
                structs = [t for t in node.types if isinstance(t, mi.StructType)]
                if i == len(segments) - 1 and structs and key == structs[0].tag_field:
                    return "one of " + ", ".join(repr(t.tag) for t in structs)
                return None
            if not isinstance(node, mi.StructType):
                return None
            field = next((f for f in node.fields if f.encode_name == key), None)
            if field is None:
                return None
            node = field.type
            here = here.get(key) if isinstance(here, dict) else None
        else:
            at = int(index)
            if isinstance(node, mi.ListType):
                node = node.item_type
            elif isinstance(node, mi.StructType) and node.array_like and at < len(node.fields):
                node = node.fields[at].type
            else:
                return None
            here = here[at] if isinstance(here, list) and at < len(here) else None
    return node if node_only else _describe(node)


#: msgspec's names of scalar types -> what a person calls them
_KINDS = {
    "null": "null",
    "None": "null",
    "int": "number",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "bytes": "binary",
}


def _error(exc: msgspec.MsgspecError, data: bytes, untyped: Any, info: mi.Type, fmt: str) -> MessageError:
    """A :class:`MessageError` for a decoder's error: the path, the value found there (from an
    untyped decode of ``data``) and what ``info`` (the decoder's type) allows there."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return MessageError("message", text, f"well-formed {fmt}")
    m = _PATH_RE.search(text)
    path = m.group(1) if m else "$"
    message = text[: m.start()] if m else text
    raw = None
    readable = True
    try:
        raw = untyped(data)
        value = _value_at(raw, path)
    except (msgspec.DecodeError, RecursionError):
        readable, value = False, None
    got = None
    e = _EXPECTED_RE.match(message)
    if message.startswith("Object missing required field"):
        return MessageError(path, None, f"the required field {message.split('`')[1]!r}", got="(missing)")
    if message.startswith("Object contains unknown field"):  # a body's extra key: an extra element in DUIS
        name = message.split("`")[1]
        fields = _fields_at(info, raw, path) if readable else []
        allowed = f"only the fields {', '.join(fields)}" if fields else "only the fields the object has"
        return MessageError(f"{path}.{name}", None, allowed, got="an unknown field")
    if e:
        kind = e.group(2)
        allowed = _expected_at(info, raw, path)
        # msgspec's own words (``int``, ``object``) where they say it; the allowed values, or an
        # array's length, in words where they do not
        use_allowed = allowed is not None and ("one of" in allowed or kind is None)
        expected = allowed if use_allowed else e.group(1)
        if path == "$" and kind in _KINDS:  # a document that is a lone scalar, not a message at all
            got, expected = f"a {fmt} {_KINDS[kind]}", _TOP_EXPECTED
        elif not readable:
            got = f"a {fmt} {_KINDS.get(kind, kind)}" if kind else _HIDDEN
    elif message == "Number out of range":
        expected = "an integer that fits in 64 bits"
    else:  # an invalid enum or tag value, a bad date-time or base64 text: say what is allowed
        expected = _expected_at(info, raw, path) or message
    return MessageError(path, value, expected, got=got)


def _aware(dt: datetime | None, field: str) -> None:
    if dt is None:
        return
    if dt.tzinfo is None:
        raise MessageError(field, dt.isoformat(), "a date-time with a time zone, e.g. 2026-11-22T00:00:00Z")
    try:
        dt.astimezone(UTC)  # what the DUIS XML writer does; past year 9999 or before year 1 it overflows
    except OverflowError:
        raise MessageError(field, dt.isoformat(), "a date-time within years 1 to 9999 in UTC") from None


def _ints(struct: Any, where: str) -> None:
    """Every integer field of ``struct`` fits in 64 bits, as MessagePack and the columns need
    (msgspec's JSON decoder takes integers of any size)."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if type(value) is int and not -(1 << 63) <= value < 1 << 64:
            raise MessageError(f"{where}.{name}", value, "an integer that fits in 64 bits")


def _request_id(rid: RequestId | None, field: str) -> None:
    if rid is not None:
        rid.check(field)


def check_message(msg: Message, where: str = "$") -> Message:
    """``msg`` if its RequestIDs and date-times are valid, else :class:`MessageError`.

    The checks the DUIS XML reader makes while parsing: each RequestID's originator and
    target are EUI-64s and its counter an unsigned 64-bit integer; every date-time has a time
    zone and lies within years 1 to 9999 in UTC; every integer fits in 64 bits (so that each
    format can carry what one accepted); a Service Request's header and body are what the
    DUIS schema allows (:func:`check_request`). Fields are named by their path from ``where``
    (e.g. ``$.request_id.counter``).
    """
    _ints(msg, where)
    if isinstance(msg, ServiceRequest):
        _ints(msg.body, f"{where}.body")
        _request_id(msg.request_id, f"{where}.request_id")
        _request_id(msg.preceding_request_id, f"{where}.preceding_request_id")
        period = msg.period
        if period is not None:
            _aware(period.start, f"{where}.body.period.start")
            _aware(period.end, f"{where}.body.period.end")
        _aware(msg.execution_datetime, f"{where}.execution_datetime")
        check_request(msg, where)
    elif isinstance(msg, Response):
        _request_id(msg.request_id, f"{where}.request_id")
        _request_id(msg.response_id, f"{where}.response_id")
        _aware(msg.response_datetime, f"{where}.response_datetime")
    elif isinstance(msg, DeviceAlert | DCCAlert):
        _aware(msg.time, f"{where}.time")
    return msg


# ---------------------------------------------------------------------------- DUIS schema facts
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_B64_RE = re.compile(r"[A-Za-z0-9+/\s]*={0,2}\s*")
#: Command Variants a Service Request may carry (DUIS: 9 is internal to the DCC, never a request's)
COMMAND_VARIANTS = range(1, 9)
#: an 8.11 ``InstallCode``: ``xs:hexBinary`` of 6 to 16 bytes (the schema's bounds, any device)
INSTALL_CODE_BYTES = (6, 16)
#: an 8.11 ``JoinTimePeriod``: a positive integer of seconds, at most 3600
JOIN_TIME_S = (1, 3600)
#: DUIS names of a request's fields, where the XML reader reports them
_XML_NAMES = {
    "srv": "header.srv",
    "command_variant": "header.command_variant",
    "service_reference": "header.service_reference",
}


_REFERENCES: dict[str, str] = {}  # SRV -> its Service Reference, filled on first use
_TAGS = {cls: cls.__struct_config__.tag for cls in TYPED_BODIES.values()}  # type: ignore[attr-defined]
_URP_BODIES = (RetrieveImportDailyReadLog, ReadActiveImportProfileData)
_CHECKED_BODIES = (*_URP_BODIES, UpdateHANDeviceLog)  # the typed bodies whose values are checked here


def _references() -> dict[str, str]:
    if not _REFERENCES:
        from .catalogue import catalogue  # here: numpy, which a JSON-only caller need not load first

        _REFERENCES.update((i.srv, i.reference) for i in catalogue())
    return _REFERENCES


def check_header(srv: str, command_variant: int, service_reference: str, where: str = "$") -> None:
    """The header facts the DUIS schema (and its SRV table) fixes, else :class:`MessageError`:
    ``srv`` is a DUIS Service Reference Variant, ``command_variant`` one of 1-8 and
    ``service_reference`` the SRV's own Service Reference (``4.8`` for ``4.8.1``).

    ``where`` prefixes JSON paths (``$.srv``); ``""`` names the fields as the XML reader does
    (``header.srv``).
    """
    reference = (_REFERENCES or _references()).get(srv)
    if reference is not None and type(command_variant) is int and command_variant in COMMAND_VARIANTS:
        if service_reference == reference:
            return

    def name(f: str) -> str:
        return f"{where}.{f}" if where else _XML_NAMES[f]

    if reference is None:
        raise MessageError(name("srv"), srv, "a DUIS Service Reference Variant such as 4.8.1")
    if type(command_variant) is not int or command_variant not in COMMAND_VARIANTS:
        raise MessageError(name("command_variant"), command_variant, "a Command Variant from 1 to 8")
    if service_reference != reference:
        raise MessageError(
            name("service_reference"), service_reference, f"{reference!r}, the Service Reference of SRV {srv}"
        )


def check_body(srv: str, body: Any, where: str = "$") -> None:
    """``body`` is the one the DUIS schema has for ``srv``, its values in range, else
    :class:`MessageError`.

    SRVs with a typed body (4.6.1, 4.8.1, 4.8.3, 4.1.1, 11.2, 8.11) must carry it, not a
    generic one; a typed body (or a generic one named like it) belongs to its own SRV only.
    In an 8.11 ``UpdateHANDeviceLog``: ``DeviceID`` is an EUI-64; the whitelist entry, when
    any of it is given, has both ``JoinTimePeriod`` (1..3600) and ``InstallCode`` (hex of
    6..16 bytes); ``ImportMPxN`` has 1..13 characters, the MPANs 13. A URP certificate is
    base64 text.
    """
    expected_cls = TYPED_BODIES.get(srv)
    if expected_cls is None and type(body) is GenericBody and body.name not in TYPED_ELEMENT_SRV:
        return  # the common case of a generic SRV: the XSD knows its body
    if type(body) is expected_cls and (
        expected_cls not in _CHECKED_BODIES
        or (expected_cls in _URP_BODIES and body.ka_public_security_credentials is None)
    ):
        return  # a typed body with nothing beyond its types to check
    base = f"{where}.body" if where else "body"
    generic = type(body) is GenericBody
    name = body.name if generic else _TAGS.get(type(body), type(body).__name__)
    if expected_cls is not None and type(body) is not expected_cls:
        tag = _TAGS[expected_cls]
        got = f"a generic {name} body" if generic else f"a {name} body"
        raise MessageError(f"{base}.element", name, f"the typed {tag} body of SRV {srv}", got=got)
    if expected_cls is None:
        owner = TYPED_ELEMENT_SRV.get(name)
        if owner is not None:
            raise MessageError(f"{base}.element", name, f"a body for SRV {srv} ({name} is SRV {owner}'s)")
        return
    if expected_cls is UpdateHANDeviceLog:
        _check_han_log(body, base)
    elif expected_cls in _URP_BODIES:
        ka = body.ka_public_security_credentials
        if ka is not None and (not ka.strip() or not _B64_RE.fullmatch(ka)):
            raise MessageError(f"{base}.ka_public_security_credentials", ka, "a certificate as base64 text")


def _check_han_log(body: UpdateHANDeviceLog, base: str) -> None:
    if not EUI_RE.match(body.device_id):
        raise MessageError(f"{base}.device_id", body.device_id, "an EUI-64 like 00-DB-12-34-56-78-90-A0")
    add = (body.join_time_period, body.install_code, body.import_mpxn, body.secondary_import_mpan, body.export_mpan)
    if all(v is None for v in add):
        return
    jt = body.join_time_period
    lo, hi = JOIN_TIME_S
    if jt is None or type(jt) is not int or not lo <= jt <= hi:
        raise MessageError(
            f"{base}.join_time_period", jt, f"an integer from {lo} to {hi} (seconds; required in a whitelist entry)"
        )
    code = body.install_code
    lo, hi = INSTALL_CODE_BYTES
    if code is None or not _HEX_RE.fullmatch(code) or not lo <= len(code) // 2 <= hi:
        shown = "missing" if code is None else f"{len(code) / 2:g} bytes" if _HEX_RE.fullmatch(code) else "not hex"
        raise MessageError(
            f"{base}.install_code",
            code,
            f"hex of {lo} to {hi} bytes (required in a whitelist entry)",
            got=None if code is None else f"{code!r} ({shown})",
        )
    if body.import_mpxn is not None and not 1 <= len(body.import_mpxn) <= 13:
        raise MessageError(f"{base}.import_mpxn", body.import_mpxn, "an MPxN of 1 to 13 characters")
    for field in ("secondary_import_mpan", "export_mpan"):
        mpan = getattr(body, field)
        if mpan is not None and len(mpan) != 13:
            raise MessageError(f"{base}.{field}", mpan, "an MPAN of 13 characters")


def check_request(req: ServiceRequest, where: str = "$") -> ServiceRequest:
    """``req`` if the DUIS schema accepts its header and body (:func:`check_header`,
    :func:`check_body`), else :class:`MessageError`. A few dictionary look-ups and
    comparisons: cheap per message."""
    check_header(req.srv, req.command_variant, req.service_reference, where)
    check_body(req.srv, req.body, where)
    return req


def check_row(row: RequestRow, where: str = "$") -> RequestRow:
    """A compact request row held to the schema's facts, else :class:`MessageError`: its
    RequestID parts are unsigned 64-bit, its SRV is known, its Command Variant 1-8, its role
    one of :data:`~dccsim.core.records.ROLES` (or ``""``: none), and it has a read log period
    exactly when its SRV's body has one (4.6.1, 4.8.1, 4.8.3)."""
    row.check(where)
    if row.srv not in _references():
        raise MessageError(f"{where}.srv", row.srv, "a DUIS Service Reference Variant such as 4.8.1")
    if row.command_variant not in COMMAND_VARIANTS:
        raise MessageError(f"{where}.command_variant", row.command_variant, "a Command Variant from 1 to 8")
    if row.role and row.role not in ROLES:
        raise MessageError(f"{where}.role", row.role, f"one of {', '.join(ROLES)}, or '' for none")
    has_period = row.period_start_ns != 0 or row.period_end_ns != 0
    if row.srv in READ_LOG_BODIES:
        for field in ("period_start_ns", "period_end_ns"):
            if getattr(row, field) == 0:
                raise MessageError(
                    f"{where}.{field}", 0, f"a read log period time (ns since the epoch; SRV {row.srv} has one)"
                )
    elif has_period:
        value = row.period_start_ns or row.period_end_ns
        field = "period_start_ns" if row.period_start_ns else "period_end_ns"
        raise MessageError(f"{where}.{field}", value, f"0 (SRV {row.srv} has no read log period)")
    return row


def _check_all(msgs: list[Message]) -> list[Message]:
    for i, msg in enumerate(msgs):
        check_message(msg, f"$[{i}]")
    return msgs


def encode_json(msg: Message | RequestRow) -> bytes:
    """One message (or compact request row) as compact JSON."""
    return _json_enc.encode(msg)


def _decode(decoder: Any, data: bytes, untyped: Any, info: mi.Type, fmt: str) -> Any:
    """``decoder.decode(data)``, every failure a :class:`MessageError` (nesting too deep included)."""
    try:
        return decoder.decode(data)
    except msgspec.MsgspecError as exc:
        raise _error(exc, data, untyped, info, fmt) from None
    except RecursionError:
        raise too_deep(fmt) from None


def decode_json(data: bytes | str) -> Message:
    """One message from JSON; :class:`MessageError` on bad input."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return check_message(_decode(_json_dec, raw, msgspec.json.decode, _MESSAGE, "JSON"))


def decode_json_batch(data: bytes) -> list[Message]:
    """A JSON array of messages."""
    return _check_all(_decode(_json_batch_dec, data, msgspec.json.decode, _MESSAGES, "JSON"))


def decode_json_lines(data: bytes, schema: Any = None) -> list[Message | MessageError]:
    """JSON lines: one message per non-empty line; bad lines come back as errors in place.
    With ``schema`` (an lxml ``XMLSchema``), a request with a generic body is checked against
    it too (:func:`check_generic_xml`)."""
    out: list[Message | MessageError] = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(check_generic_xml(decode_json(line), schema))
        except MessageError as err:
            out.append(MessageError(f"line {lineno}: {err.field}", err.value, err.expected, err.code, got=err.got))
    return out


def encode_msgpack(msg: Message | RequestRow | list[Message | RequestRow]) -> bytes:
    """One message, or a list of them (compact request rows among them), as MessagePack."""
    return _mp_enc.encode(msg)


def decode_msgpack(data: bytes) -> Message:
    """One message from MessagePack."""
    return check_message(_decode(_mp_dec, data, msgspec.msgpack.decode, _MESSAGE, "MessagePack"))


def decode_msgpack_batch(data: bytes) -> list[Message]:
    """A MessagePack array of messages."""
    return _check_all(_decode(_mp_batch_dec, data, msgspec.msgpack.decode, _MESSAGES, "MessagePack"))


def encode_rows(rows: list[RequestRow]) -> bytes:
    """A compact request batch (array of arrays)."""
    return _mp_enc.encode(rows)


def decode_rows(data: bytes) -> list[RequestRow]:
    """A compact request batch back into :class:`RequestRow` objects."""
    return _decode(_rows_dec, data, msgspec.msgpack.decode, _ROWS, "MessagePack")  # type: ignore[no-any-return]


def check_generic_xml(msg: Any, schema: Any, where: str = "$") -> Any:
    """``msg`` if it is not a request with a :class:`GenericBody`, or ``schema`` is ``None``,
    or its DUIS XML document is valid against ``schema``; else :class:`MessageError` at
    ``{where}.body.xml`` with the schema's first problem (its line is in the document dccsim
    writes for the request). dccsim's own checks cover typed bodies; a generic body is XML that
    only the schema knows."""
    if schema is None or not isinstance(msg, ServiceRequest) or not isinstance(msg.body, GenericBody):
        return msg
    from .duisxml import encode_xml  # here: it loads lxml, which JSON and MessagePack need not

    try:
        encode_xml(msg, schema)
    except MessageError as err:
        raise MessageError(
            f"{where}.body.xml", err.value, "a request the DUIS schema accepts (lines of the XML dccsim writes for it)",
            got=err.got,
        ) from None
    return msg


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
    if head and head[0] < 0x80:
        # text: a JSON scalar (null, 42, "x") or no JSON at all. A MessagePack message or
        # array starts with a byte of 0x80 or more (a map or an array header); one below is a
        # lone small integer, never a message
        return "json"
    return "msgpack"


def _generic_checked(msgs: list[Message], schema: Any) -> list[Message]:
    if schema is not None:
        for i, msg in enumerate(msgs):
            check_generic_xml(msg, schema, f"$[{i}]")
    return msgs


def decode_file(data: bytes, schema: Any = None) -> list[Message | RequestRow | MessageError]:
    """Every message in the bytes of one file, whatever its format (:func:`detect_format`).

    DUIS XML holds one ``sr:Request``; JSON one message or an array of them; JSON lines one
    message a line; MessagePack one message, an array of messages, or a compact request batch
    (an array of :class:`RequestRow` arrays, each row checked). Every format is held to the
    DUIS schema's facts (:func:`check_request`, :func:`check_row`); with ``schema`` (an lxml
    ``XMLSchema``) XML documents, and requests with a generic body in the other formats, are
    validated against it too. A bad message comes back as its :class:`MessageError` in its
    place (one for a bad line of JSON lines, otherwise one for the whole file), so that the good
    ones can still be used; nothing is raised for bad input.
    """
    if not data.strip(b"\xef\xbb\xbf \t\r\n"):
        return [MessageError("$", data, _TOP_EXPECTED, got="an empty file")]
    fmt = detect_format(data)
    try:
        if fmt == "xml":
            from .duisxml import decode_request_xml  # here: it loads lxml, which JSON and MessagePack need not

            return [decode_request_xml(data, schema)]
        if fmt == "jsonl":
            return list(decode_json_lines(data, schema))
        if fmt == "json":
            if data.lstrip()[:1] == b"[":
                return list(_generic_checked(decode_json_batch(data), schema))
            return [check_generic_xml(decode_json(data), schema)]
        if not (data[:1] and (data[0] in (0xDC, 0xDD) or 0x90 <= data[0] <= 0x9F)):
            return [check_generic_xml(decode_msgpack(data), schema)]
        # an array: of messages, or a compact request batch of RequestRow arrays
        try:
            return list(_generic_checked(decode_msgpack_batch(data), schema))
        except MessageError as batch_error:
            try:
                rows = decode_rows(data)
            except MessageError:
                raise batch_error from None
            for i, row in enumerate(rows):
                check_row(row, f"$[{i}]")
            return list(rows)
    except MessageError as err:
        return [err]
