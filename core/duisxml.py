"""DUIS XML: Service Requests in and out; Responses, Device Alerts and DCC Alerts out.

Parsing uses a hardened lxml parser (no entity resolution, no network, no huge trees).
The SRVs with typed bodies (4.6.1, 4.8.1, 4.8.3, 4.1.1, 11.2, 8.11) must carry exactly the
elements the schema has for them (a missing or extra element is an error naming it); any
other SRV's body becomes a :class:`GenericBody` holding the body element's XML, so no request
loses content on the way XML -> JSON -> XML.

dccsim does not ship the DUIS schema (it is published separately, under its own licence).
:func:`load_schema` loads it from a path the user gives (or ``DCCSIM_DUIS_XSD``, or one of
:func:`default_schema_paths`) to validate what is read and what is written.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import sys
from copy import deepcopy
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import msgspec
from lxml import etree

from .errors import ConfigError, MessageError
from .messages import (
    TYPED_BODIES,
    DCCAlert,
    DeviceAlert,
    FutureDatedAlert,
    GenericBody,
    Message,
    ReadActiveImportProfileData,
    ReadExportProfileData,
    ReadFirmwareVersion,
    ReadInstantaneousImportRegisters,
    ReadLogPeriod,
    RequestId,
    RequestRow,
    Response,
    RetrieveImportDailyReadLog,
    ServiceRequest,
    UpdateHANDeviceLog,
)
from .wire import check_body, check_header  # wire loads duisxml only inside functions: no cycle

__all__ = [
    "SR_NS",
    "DS_NS",
    "decode_request_xml",
    "encode_request_xml",
    "encode_response_xml",
    "future_dated_response",
    "encode_alert_xml",
    "encode_xml",
    "load_schema",
    "find_schema_path",
    "default_schema_paths",
    "SCHEMA_FILE",
    "schema_errors",
    "format_datetime",
]

SR_NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_NSMAP = {"sr": SR_NS, "ds": DS_NS, "xsi": XSI_NS}
_SR = f"{{{SR_NS}}}"
SCHEMA_VERSION = "5.4"

# Blank text between elements carries nothing in DUIS (element-only content); dropping it
# makes the kept XML of generic bodies and signatures compact and stable across round trips.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True
)

_DT = msgspec.json.Decoder(datetime)


def format_datetime(dt: datetime) -> str:
    """xs:dateTime in UTC with a ``Z``; fraction only when there is one."""
    dt = dt.astimezone(UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _text(el: etree._Element | None, field: str) -> str:
    if el is None or el.text is None or not el.text.strip():
        raise MessageError(field, None if el is None else "", "a non-empty element")
    return el.text.strip()


def _parse_dt(text: str, field: str) -> datetime:
    try:
        dt = _DT.decode(b'"' + text.encode() + b'"')
    except msgspec.DecodeError:
        raise MessageError(field, text, "an xs:dateTime with a time zone, e.g. 2015-01-01T00:00:00Z") from None
    if dt.tzinfo is None:
        raise MessageError(field, text, "an xs:dateTime with a time zone, e.g. 2015-01-01T00:00:00Z")
    try:
        dt.astimezone(UTC)  # what the writers do; past year 9999 or before year 1 it overflows
    except OverflowError:
        raise MessageError(field, text, "a date-time within years 1 to 9999 in UTC") from None
    return dt


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


_INT_RE = re.compile(r"[+-]?[0-9]{1,20}")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _parse_int(text: str, field: str) -> int:
    """An xs:integer as the JSON and MessagePack decoders take it: 64 bits at most (int()
    alone would take ``1_000``, other scripts' digits and numbers of any size)."""
    value = int(text) if _INT_RE.fullmatch(text) else None
    if value is None or not -(1 << 63) <= value < 1 << 64:
        raise MessageError(field, text, "an integer that fits in 64 bits")
    return value


def _schema_version(root: etree._Element) -> None:
    """The ``schemaVersion`` attribute (required, an ``xs:decimal``) names the DUIS version
    dccsim reads, :data:`SCHEMA_VERSION`."""
    text = root.get("schemaVersion")
    if text == SCHEMA_VERSION:
        return
    if text is None:
        expected = f'the attribute schemaVersion="{SCHEMA_VERSION}"'
        raise MessageError("xml.schemaVersion", None, expected, got="(missing)")
    try:
        same = Decimal(text.strip()) == Decimal(SCHEMA_VERSION) and _DECIMAL_RE.fullmatch(text.strip())
    except InvalidOperation:
        same = False
    if not same:
        raise MessageError("xml.schemaVersion", text, f"{SCHEMA_VERSION}, the DUIS version dccsim reads")


def decode_request_xml(data: bytes | str, schema: etree.XMLSchema | None = None) -> ServiceRequest:
    """Parse a DUIS ``sr:Request`` document, holding it to the DUIS schema.

    dccsim's own checks always apply (they name the field): ``schemaVersion`` 5.4, a known SRV
    with its own Service Reference, Command Variant 1-8, and for the SRVs with a typed body
    (4.6.1, 4.8.1, 4.8.3, 4.1.1, 11.2, 8.11) exactly the elements the schema has there, in its
    order, with values in range (:func:`dccsim.core.wire.check_request`). With ``schema``, the
    document is also validated against it (what dccsim's checks do not cover: generic bodies,
    every element's type), the first problem named with its line.

    Raises
    ------
    MessageError
        For XML that does not parse (``field="xml"``), a root that is not ``sr:Request``, a
        missing or malformed field, or a document the schema rejects, naming the field and what
        was expected.
    """
    if isinstance(data, str):
        data = data.encode()
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MessageError("xml", exc.msg, "a well-formed DUIS XML document") from None
    # validated before the reader takes ExecutionDateTime out of the tree; reported after its
    # own checks, whose words are closer to the field
    problem = None if schema is None or schema.validate(root) else _first_problem(schema)
    if root.tag != _SR + "Request":
        raise MessageError("xml.root", root.tag, f"{{{SR_NS}}}Request")
    _schema_version(root)
    header = root.find(_SR + "Header")
    body_el = root.find(_SR + "Body")
    if header is None:
        raise MessageError("header", None, "an sr:Header element")
    if body_el is None:
        raise MessageError("body", None, "an sr:Body element")
    rid = RequestId.parse(_text(header.find(_SR + "RequestID"), "header.request_id"))
    cv_text = _text(header.find(_SR + "CommandVariant"), "header.command_variant")
    cv = _parse_int(cv_text, "header.command_variant")
    ref = _text(header.find(_SR + "ServiceReference"), "header.service_reference")
    srv = _text(header.find(_SR + "ServiceReferenceVariant"), "header.srv")
    check_header(srv, cv, ref, where="")
    first = header.find(_SR + "FirstInSequence")
    first_in_sequence = None if first is None else _text(first, "header.first_in_sequence") in ("true", "1")
    prec_el = header.find(_SR + "PrecedingServiceRequestID")
    preceding = None if prec_el is None else RequestId.parse(_text(prec_el, "header.preceding_request_id"))
    children = _elements(body_el)
    if len(children) != 1:
        raise MessageError("body", len(children), "exactly one body element")
    body_xml = children[0]
    execution = None
    first_child = _elements(body_xml)[:1]
    if first_child and first_child[0].tag == _SR + "ExecutionDateTime":
        execution = _parse_dt(_text(first_child[0], "body.execution_datetime"), "body.execution_datetime")
        _remove(first_child[0])
    body = _typed_body(srv, body_xml)
    check_body(srv, body, where="")
    if problem is not None:
        raise _schema_error(problem)
    sig = root.find(f"{{{DS_NS}}}Signature")
    signature = None if sig is None else _fragment(sig)
    return ServiceRequest(
        request_id=rid,
        command_variant=cv,
        service_reference=ref,
        srv=srv,
        body=body,
        execution_datetime=execution,
        first_in_sequence=first_in_sequence,
        preceding_request_id=preceding,
        signature=signature,
    )


def _remove(el: etree._Element) -> None:
    parent = el.getparent()
    assert parent is not None
    parent.remove(el)


def _fragment(el: etree._Element) -> str:
    """``el`` as standalone XML declaring only the namespaces it uses (stable form)."""
    copy = deepcopy(el)
    copy.tail = None
    etree.cleanup_namespaces(copy)
    return etree.tostring(copy, encoding="unicode")


#: element -> the field it fills, for the names in errors
_FIELDS = {
    "ReadLogPeriod": "period",
    "StartDateTime": "start",
    "EndDateTime": "end",
    "KAPublicSecurityCredentials": "ka_public_security_credentials",
    "DeviceID": "device_id",
    "RequestType": "request_type",
    "AddDeviceToCHFWhitelist": "whitelist",
    "JoinTimePeriod": "join_time_period",
    "InstallCode": "install_code",
    "ImportMPxN": "import_mpxn",
    "SecondaryImportMPAN": "secondary_import_mpan",
    "ExportMPAN": "export_mpan",
}
_URP = ("KAPublicSecurityCredentials", False)
_PERIOD = [("StartDateTime", True), ("EndDateTime", True)]
_HAN = [("DeviceID", True), ("RequestType", True), ("AddDeviceToCHFWhitelist", False)]
_HAN_ADD = [("JoinTimePeriod", True), ("InstallCode", True), ("ImportMPxN", False), ("SecondaryImportMPAN", False),
            ("ExportMPAN", False)]  # fmt: skip


def _sequence(el: etree._Element, spec: list[tuple[str, bool]], field: str) -> dict[str, etree._Element]:
    """The children of ``el`` as the schema's sequence ``spec`` (element name, required) has
    them, by name; :class:`MessageError` for a missing, misplaced or extra element."""
    kids = _elements(el)
    found: dict[str, etree._Element] = {}
    i = 0
    for name, required in spec:
        if i < len(kids) and kids[i].tag == _SR + name:
            found[name] = kids[i]
            i += 1
        elif required:
            got = "(missing)" if i >= len(kids) else f"sr:{_local(kids[i])} in its place"
            raise MessageError(f"{field}.{_FIELDS[name]}", None, f"an sr:{name} element in sr:{_local(el)}", got=got)
    if i < len(kids):
        allowed = ", ".join(f"sr:{n}" + ("" if r else "?") for n, r in spec) or "no child elements"
        extra = f"an extra element sr:{_local(kids[i])}"
        raise MessageError(field, None, f"sr:{_local(el)} to hold {allowed}, in that order", got=extra)
    return found


def _typed_body(srv: str, el: etree._Element):  # type: ignore[no-untyped-def]
    """The typed body of ``srv`` from its body element (strictly: the schema's elements, in
    order, no others), or a :class:`GenericBody` for an SRV without one."""
    cls = TYPED_BODIES.get(srv)
    if cls is None:
        return GenericBody(name=_local(el), xml=_fragment(el))
    tag = cls.__struct_config__.tag  # type: ignore[attr-defined]
    if el.tag != _SR + tag:
        raise MessageError("body", f"sr:{_local(el)}", f"sr:{tag}, the body of SRV {srv}")
    if cls in (ReadInstantaneousImportRegisters, ReadFirmwareVersion):
        _sequence(el, [], "body")
        return cls()
    if cls is UpdateHANDeviceLog:
        return _han_log(el)
    urp = cls in (RetrieveImportDailyReadLog, ReadActiveImportProfileData)
    parts = _sequence(el, [("ReadLogPeriod", True), *([_URP] if urp else [])], "body")
    times = _sequence(parts["ReadLogPeriod"], _PERIOD, "body.period")
    start = _parse_dt(_text(times["StartDateTime"], "body.period.start"), "body.period.start")
    end = _parse_dt(_text(times["EndDateTime"], "body.period.end"), "body.period.end")
    period = ReadLogPeriod(start=start, end=end)
    if not urp:
        return cls(period=period)
    ka = parts.get("KAPublicSecurityCredentials")
    ka_text = None if ka is None else _text(ka, "body.ka_public_security_credentials")
    return cls(period=period, ka_public_security_credentials=ka_text)


def _han_log(el: etree._Element) -> UpdateHANDeviceLog:
    parts = _sequence(el, _HAN, "body")
    fields: dict[str, object] = {
        "device_id": _text(parts["DeviceID"], "body.device_id"),
        "request_type": _text(parts["RequestType"], "body.request_type"),
    }
    if fields["request_type"] not in ("Add", "Remove"):
        raise MessageError("body.request_type", fields["request_type"], "'Add' or 'Remove'")
    add = parts.get("AddDeviceToCHFWhitelist")
    if add is not None:
        for name, child in _sequence(add, _HAN_ADD, "body.whitelist").items():
            key = _FIELDS[name]
            text = _text(child, f"body.{key}")
            fields[key] = _parse_int(text, f"body.{key}") if key == "join_time_period" else text
    return UpdateHANDeviceLog(**fields)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- output


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _SR + name)
    if text is not None:
        try:
            el.text = text
        except ValueError:  # NUL or a control character, which JSON and MessagePack carry and XML cannot
            raise MessageError(name, text, "text XML can hold (no NUL or control characters)") from None
    return el


def _body_element(req: ServiceRequest) -> etree._Element:
    body = req.body
    if isinstance(body, GenericBody):
        try:
            el = etree.fromstring(body.xml.encode(), _PARSER)
        except etree.XMLSyntaxError as exc:
            raise MessageError("body.xml", body.xml, f"well-formed XML ({exc.msg})") from None
    else:
        el = etree.Element(_SR + type(body).__struct_config__.tag, nsmap=_NSMAP)  # type: ignore[attr-defined]
        if isinstance(body, RetrieveImportDailyReadLog | ReadActiveImportProfileData | ReadExportProfileData):
            period = _sub(el, "ReadLogPeriod")
            _sub(period, "StartDateTime", format_datetime(body.period.start))
            _sub(period, "EndDateTime", format_datetime(body.period.end))
            ka = getattr(body, "ka_public_security_credentials", None)
            if ka is not None:
                _sub(el, "KAPublicSecurityCredentials", ka)
        elif isinstance(body, UpdateHANDeviceLog):
            _sub(el, "DeviceID", body.device_id)
            _sub(el, "RequestType", body.request_type)
            add_values = [
                ("JoinTimePeriod", body.join_time_period),
                ("InstallCode", body.install_code),
                ("ImportMPxN", body.import_mpxn),
                ("SecondaryImportMPAN", body.secondary_import_mpan),
                ("ExportMPAN", body.export_mpan),
            ]
            if any(v is not None for _, v in add_values):
                add = _sub(el, "AddDeviceToCHFWhitelist")
                for name, value in add_values:
                    if value is not None:
                        _sub(add, name, str(value))
    if req.execution_datetime is not None:
        ex = etree.Element(_SR + "ExecutionDateTime")
        ex.text = format_datetime(req.execution_datetime)
        el.insert(0, ex)
    return el


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def encode_request_xml(req: ServiceRequest) -> bytes:
    """A DUIS ``sr:Request`` document for ``req`` (signature carried over if present)."""
    root = etree.Element(_SR + "Request", nsmap=_NSMAP)
    root.set("schemaVersion", SCHEMA_VERSION)
    header = _sub(root, "Header")
    _sub(header, "RequestID", str(req.request_id))
    if req.first_in_sequence is not None:
        _sub(header, "FirstInSequence", "true" if req.first_in_sequence else "false")
    if req.preceding_request_id is not None:
        _sub(header, "PrecedingServiceRequestID", str(req.preceding_request_id))
    _sub(header, "CommandVariant", str(req.command_variant))
    _sub(header, "ServiceReference", req.service_reference)
    _sub(header, "ServiceReferenceVariant", req.srv)
    body = _sub(root, "Body")
    body.append(_body_element(req))
    if req.signature is not None:
        try:
            root.append(etree.fromstring(req.signature.encode(), _PARSER))
        except etree.XMLSyntaxError as exc:
            raise MessageError("signature", req.signature, f"a well-formed ds:Signature ({exc.msg})") from None
    etree.cleanup_namespaces(root, top_nsmap=_NSMAP)
    return _document(root)


def _response_root(
    request_id: RequestId | None, response_id: RequestId | None, code: str, when: datetime
) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(_SR + "Response", nsmap=_NSMAP)
    root.set("schemaVersion", SCHEMA_VERSION)
    header = _sub(root, "Header")
    if request_id is not None:
        _sub(header, "RequestID", str(request_id))
    if response_id is not None:
        _sub(header, "ResponseID", str(response_id))
    _sub(header, "ResponseCode", code)
    _sub(header, "ResponseDateTime", format_datetime(when))
    return root, _sub(root, "Body")


def encode_response_xml(resp: Response) -> bytes:
    """A DUIS ``sr:Response`` carrying a ``ResponseMessage`` (with a GBCS payload, or a
    ``FutureDatedDeviceAlertMessage`` for a future-dated command's outcome: CR1233)."""
    if resp.gbcs_payload is not None and resp.future_dated is not None:
        raise MessageError("future_dated", "with gbcs_payload", "one of gbcs_payload and future_dated (a DUIS choice)")
    root, body = _response_root(resp.request_id, resp.response_id, resp.response_code, resp.response_datetime)
    msg = _sub(body, "ResponseMessage")
    _sub(msg, "ServiceReference", resp.service_reference)
    _sub(msg, "ServiceReferenceVariant", resp.srv)
    if resp.gbcs_payload is not None:
        _sub(msg, "GBCSPayload", base64.b64encode(resp.gbcs_payload).decode())
    if resp.future_dated is not None:
        _future_dated_element(msg, resp.future_dated)
    return _document(root)


#: FutureDatedAlertCode values DUIS allows: instruction done, instruction not done
_FD_CODES = (0x8F66, 0x8F67)


def _future_dated_element(parent: etree._Element, fd: FutureDatedAlert) -> None:
    if fd.alert_code not in _FD_CODES:
        raise MessageError("future_dated.alert_code", fd.alert_code, "0x8F66 (done) or 0x8F67 (not done)")
    for name, value in (
        ("instruction_number", fd.instruction_number),
        ("total_command_instructions", fd.total_command_instructions),
    ):
        if not 1 <= value <= 0xFFFF:
            raise MessageError(f"future_dated.{name}", value, "an xs:unsignedShort from 1")
    if fd.instruction_number > fd.total_command_instructions:
        raise MessageError(
            "future_dated.instruction_number", fd.instruction_number,
            f"at most total_command_instructions ({fd.total_command_instructions})",
        )  # fmt: skip
    el = _sub(parent, "FutureDatedDeviceAlertMessage")
    _sub(el, "FutureDatedAlertCode", f"{fd.alert_code:04X}")
    _sub(el, "GBCSPayload", base64.b64encode(fd.gbcs_payload).decode())
    _sub(el, "InstructionNumber", str(fd.instruction_number))
    _sub(el, "TotalCommandInstructions", str(fd.total_command_instructions))


def future_dated_response(
    request_id: RequestId,
    srv: str,
    service_reference: str,
    when: datetime,
    alert_code: int,
    instruction: int,
    total_instructions: int,
    response_code: str = "I0",
    gbcs_payload: bytes = b"",
) -> Response:
    """The Response a device's future-dated command sends for one instruction when it runs
    (one row of ``audit.arrow``): tied to the command's request, with its SRV, carrying a
    ``FutureDatedDeviceAlertMessage``; :func:`encode_response_xml` writes it as DUIS XML."""
    return Response(
        request_id=request_id,
        response_id=request_id.swapped(),
        response_code=response_code,
        response_datetime=when,
        service_reference=service_reference,
        srv=srv,
        future_dated=FutureDatedAlert(
            alert_code=alert_code, instruction_number=instruction, total_command_instructions=total_instructions,
            gbcs_payload=gbcs_payload,
        ),
    )  # fmt: skip


def _throttle_meta(parent: etree._Element, seq: int | None, count: int | None) -> None:
    if seq is not None:
        _sub(parent, "ThrottledAlertSequenceId", str(seq))
    if count is not None:
        _sub(parent, "ThrottledAlertCount", str(count))


def encode_alert_xml(alert: DeviceAlert | DCCAlert) -> bytes:
    """A DUIS ``sr:Response`` carrying a Device Alert or a DCC Alert.

    An alert has no RequestID; its ResponseID is ``device:recipient:counter`` (device
    alerts) or ``recipient:recipient:counter`` (DCC alerts, raised by the DCC itself).
    """
    if isinstance(alert, DeviceAlert):
        rid = RequestId(originator=alert.device, target=alert.recipient, counter=alert.counter)
        root, body = _response_root(None, rid, "I0", alert.time)
        msg = _sub(body, "DeviceAlertMessage")
        if not 0 <= alert.alert_code <= 0xFFFF:
            raise MessageError("alert_code", alert.alert_code, "a 16-bit alert code")
        _sub(msg, "AlertCode", f"{alert.alert_code:04X}")
        _throttle_meta(msg, alert.throttled_alert_sequence_id, alert.throttled_alert_count)
        _sub(msg, "GBCSPayload", base64.b64encode(alert.gbcs_payload).decode())
        return _document(root)
    rid = RequestId(originator=alert.recipient, target=alert.recipient, counter=alert.counter)
    root, body = _response_root(None, rid, "I0", alert.time)
    msg = _sub(body, "DCCAlertMessage")
    _sub(msg, "DCCAlertCode", alert.code)
    _throttle_meta(msg, alert.throttled_alert_sequence_id, alert.throttled_alert_count)
    holder = _sub(msg, "DCCAlert")
    try:
        holder.append(etree.fromstring(alert.detail.encode(), _PARSER))
    except etree.XMLSyntaxError as exc:
        raise MessageError("detail", alert.detail, f"well-formed XML ({exc.msg})") from None
    etree.cleanup_namespaces(root, top_nsmap=_NSMAP)
    return _document(root)


#: the DUIS schema's file name (dccsim does not ship it: it is published under its own licence)
SCHEMA_FILE = "DUIS-Schema-V5.4.xsd"


def default_schema_paths() -> tuple[Path, ...]:
    """Where dccsim looks for the DUIS XSD when neither a path nor ``DCCSIM_DUIS_XSD`` names
    one, in order: ``share/dccsim/duis/`` under the Python prefix (where an install may put
    it), then ``shared/duis/`` beside the source checkout (where the DUIS reference data sits
    for the tests)."""
    return (
        Path(sys.prefix) / "share" / "dccsim" / "duis" / SCHEMA_FILE,
        Path(__file__).resolve().parents[1].parent / "shared" / "duis" / SCHEMA_FILE,
    )


def find_schema_path() -> Path | None:
    """The first of :func:`default_schema_paths` that is a file, or ``None``."""
    return next((p for p in default_schema_paths() if p.is_file()), None)


@functools.cache
def load_schema(path: str | None = None) -> etree.XMLSchema:
    """Load the DUIS XSD from ``path`` (or ``$DCCSIM_DUIS_XSD``); its imports must sit beside it.

    :class:`FileNotFoundError` when neither names one or it is not a readable file,
    :class:`~dccsim.core.errors.ConfigError` when it is not an XML schema.
    """
    path = path or os.environ.get("DCCSIM_DUIS_XSD")
    if not path:
        raise FileNotFoundError("no DUIS schema given: pass a path or set DCCSIM_DUIS_XSD")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"DUIS schema not found: {p} (expected a readable XSD file)")
    try:
        return etree.XMLSchema(etree.parse(str(p)))
    except OSError as exc:
        raise FileNotFoundError(f"DUIS schema cannot be read: {p} ({exc})") from None
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"not an XML schema ({exc})") from None


def schema_errors(document: bytes, schema: etree.XMLSchema) -> list[str]:
    """Validation errors of ``document`` against ``schema`` (empty when valid)."""
    doc = etree.fromstring(document, _PARSER)
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {' '.join(e.message.split())}" for e in schema.error_log]


def _first_problem(schema: etree.XMLSchema) -> str:
    e = schema.error_log[0]
    return f"line {e.line}: {' '.join(e.message.split())}"


def _schema_error(problem: str) -> MessageError:
    """libxml2's whole reason (line, element, what it expected), never cut."""
    reason = problem.replace(f"{{{SR_NS}}}", "sr:")
    return MessageError("xml", problem, "a document valid against the DUIS schema", got=reason)


def encode_xml(msg: Message | RequestRow, schema: etree.XMLSchema | None = None) -> bytes:
    """The DUIS XML document of a request, response or alert, checked against ``schema`` if given.

    :class:`MessageError` when there is no such document (a compact :class:`RequestRow` has
    no DUIS body) or the document breaks the schema (the error names its first problem).
    """
    if isinstance(msg, RequestRow):
        raise MessageError("message", "RequestRow", "a full message (a compact row has no DUIS body)")
    if isinstance(msg, ServiceRequest):
        doc = encode_request_xml(msg)
    elif isinstance(msg, Response):
        doc = encode_response_xml(msg)
    elif isinstance(msg, DeviceAlert | DCCAlert):
        doc = encode_alert_xml(msg)
    else:
        raise MessageError("message", type(msg).__name__, "a request, response or alert")
    if schema is not None:
        problems = schema_errors(doc, schema)
        if problems:
            raise _schema_error(problems[0])
    return doc
