"""Wire messages: every msgspec Struct dccsim sends or receives lives here.

Four message kinds form a tagged union, :data:`Message`, tagged by ``kind``:

- :class:`ServiceRequest` (``"request"``): a DUIS Service Request. The header's RequestID is
  parsed into originator EUI-64, target EUI-64 and counter. The body is one of the typed
  bodies below, or :class:`GenericBody`, which keeps the original DUIS body element as XML
  text so that *every* request converts to JSON and back without loss.
- :class:`Response` (``"response"``): the DSP's answer; ``response_id`` swaps originator and
  target of the request id.
- :class:`DeviceAlert` (``"device_alert"``): an alert raised by a device, with the optional
  Alert Storm Protection metadata ``throttled_alert_count`` and
  ``throttled_alert_sequence_id``.
- :class:`DCCAlert` (``"dcc_alert"``): an alert raised by the DCC (``AD1``, ``N1``..``N65``,
  ``N999``).

Bodies are a tagged union too, tagged by ``element``: the DUIS body element name. A body's
keys are exactly its fields (an unknown key is an error, as an extra element is in DUIS XML).
``ExecutionDateTime`` (future-dated requests) is lifted out of the body into
:attr:`ServiceRequest.execution_datetime`, so there is one place for it whatever the body.

The user role is not part of a DUIS header (the DCC knows it from the signing certificate), so
:attr:`ServiceRequest.role` is optional and set by whoever knows it (a scenario, a registry of
originators, or the JSON/MessagePack sender).

All Structs are frozen and keyword-only. Hot-path types are ``gc=False``. For the
high-throughput MessagePack path there is a flat, ``array_like`` :class:`RequestRow`.

The wall-clock server's control and reply messages (:mod:`dccsim.core.protocol`) are here
too: :class:`Subscribe` and :class:`StatsRequest` (client to server), :class:`StatsReply`,
:class:`BusyReply`, :class:`ErrorReply` and :class:`RowAck` (server to client).

>>> import msgspec
>>> rid = RequestId.parse("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1002")
>>> rid.counter, rid.target
(1002, '00-DB-12-34-56-78-90-A0')
>>> str(rid.swapped())
'00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:1002'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from msgspec import Struct

from .errors import MessageError
from .eui import EUI_RE, eui_to_int
from .records import ROLES  # re-exported: defined in records, imported from here by loadgen.scenario

__all__ = [
    "ROLES",
    "RequestId",
    "ReadLogPeriod",
    "RetrieveImportDailyReadLog",
    "ReadActiveImportProfileData",
    "ReadExportProfileData",
    "ReadInstantaneousImportRegisters",
    "ReadFirmwareVersion",
    "UpdateHANDeviceLog",
    "GenericBody",
    "Body",
    "READ_LOG_BODIES",
    "TYPED_BODIES",
    "TYPED_ELEMENT_SRV",
    "ServiceRequest",
    "Response",
    "FutureDatedAlert",
    "DeviceAlert",
    "DCCAlert",
    "DCC_ALERT_CODES",
    "Message",
    "RequestRow",
    "Subscribe",
    "StatsRequest",
    "StatsReply",
    "BusyReply",
    "ErrorReply",
    "RowAck",
    "to_ns",
    "from_ns",
]

RoleName = Literal["IS", "ES", "GS", "ED", "GT", "OU", "RSA", "MDR", "LC"]

DCC_ALERT_CODES: tuple[str, ...] = ("AD1", *(f"N{i}" for i in range(1, 66)), "N999")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COUNTER_RE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_U64_MAX = (1 << 64) - 1


def to_ns(dt: datetime) -> int:
    """An aware datetime as integer nanoseconds since the Unix epoch (exact to the us)."""
    if dt.tzinfo is None:
        raise MessageError("datetime", dt.isoformat(), "a timezone-aware date-time (e.g. ...Z)")
    return ((dt - _EPOCH) // timedelta(microseconds=1)) * 1000


def from_ns(ns: int) -> datetime:
    """Integer nanoseconds since the Unix epoch as an aware UTC datetime (truncated to us)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


class RequestId(Struct, frozen=True, kw_only=True, gc=False):
    """``originator:target:counter`` from a DUIS RequestID (or ResponseID).

    The EUI-64 strings are kept as written (DUIS allows either case); compare them through
    :attr:`originator_int` / :attr:`target_int`.
    """

    originator: str
    target: str
    counter: int

    @classmethod
    def parse(cls, text: str, field: str = "header.request_id") -> RequestId:
        """Parse ``EUI:EUI:counter``; raise :class:`MessageError` naming ``field``."""
        if not isinstance(text, str):
            raise MessageError(field, text, "a string 'EUI-64:EUI-64:counter'")
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise MessageError(field, text, "'originator EUI-64:target EUI-64:counter'")
        originator, target, counter = parts
        if not EUI_RE.match(originator):
            raise MessageError(f"{field}.originator", originator, "an EUI-64 like 90-B3-D5-1F-30-01-00-00")
        if not EUI_RE.match(target):
            raise MessageError(f"{field}.target", target, "an EUI-64 like 00-DB-12-34-56-78-90-A0")
        if not _COUNTER_RE.match(counter) or int(counter) > _U64_MAX:
            raise MessageError(f"{field}.counter", counter, "an unsigned 64-bit integer")
        return cls(originator=originator, target=target, counter=int(counter))

    def check(self, field: str = "header.request_id") -> None:
        """Validate a RequestId that arrived already split (JSON/MessagePack)."""
        if not EUI_RE.match(self.originator):
            raise MessageError(f"{field}.originator", self.originator, "an EUI-64 like 90-B3-D5-1F-30-01-00-00")
        if not EUI_RE.match(self.target):
            raise MessageError(f"{field}.target", self.target, "an EUI-64 like 00-DB-12-34-56-78-90-A0")
        if not 0 <= self.counter <= _U64_MAX:
            raise MessageError(f"{field}.counter", self.counter, "an unsigned 64-bit integer")

    @property
    def originator_int(self) -> int:
        return eui_to_int(self.originator, "originator")

    @property
    def target_int(self) -> int:
        return eui_to_int(self.target, "target")

    def swapped(self) -> RequestId:
        """The ResponseID of a response to this request: originator and target swapped."""
        return RequestId(originator=self.target, target=self.originator, counter=self.counter)

    def __str__(self) -> str:
        return f"{self.originator}:{self.target}:{self.counter}"


class ReadLogPeriod(Struct, frozen=True, kw_only=True, gc=False, forbid_unknown_fields=True):
    """``ReadLogPeriod {StartDateTime, EndDateTime}`` of the MHHS reads."""

    start: datetime
    end: datetime


class _ReadLogBody(
    Struct, frozen=True, kw_only=True, gc=False, tag_field="element", omit_defaults=True, forbid_unknown_fields=True
):
    period: ReadLogPeriod


class _ReadLogURPBody(_ReadLogBody):
    """A read log that may carry the key agreement certificate of an Unrestricted Reading
    Party (DUIS ``KAPublicSecurityCredentials``, base64 text, kept as written)."""

    ka_public_security_credentials: str | None = None


class RetrieveImportDailyReadLog(_ReadLogURPBody, tag="RetrieveImportDailyReadLog"):
    """SRV 4.6.1 Retrieve Import Daily Read Log."""


class ReadActiveImportProfileData(_ReadLogURPBody, tag="ReadActiveImportProfileData"):
    """SRV 4.8.1 Read Active Import Profile Data (the half-hourly consumption)."""


class ReadExportProfileData(_ReadLogBody, tag="ReadExportProfileData"):
    """SRV 4.8.3 Read Export Profile Data."""


class ReadInstantaneousImportRegisters(
    Struct,
    frozen=True,
    kw_only=True,
    gc=False,
    tag_field="element",
    tag="ReadInstantaneousImportRegisters",
    forbid_unknown_fields=True,
):
    """SRV 4.1.1 Read Instantaneous Import Registers (no fields besides ExecutionDateTime)."""


class ReadFirmwareVersion(
    Struct, frozen=True, kw_only=True, gc=False, tag_field="element", tag="ReadFirmwareVersion",
    forbid_unknown_fields=True,
):  # fmt: skip
    """SRV 11.2 Read Firmware Version (empty body)."""


class UpdateHANDeviceLog(
    Struct, frozen=True, kw_only=True, gc=False, tag_field="element", tag="UpdateHANDeviceLog",
    forbid_unknown_fields=True,
):  # fmt: skip
    """SRV 8.11 Update HAN Device Log: add a device to, or remove it from, a CHF whitelist.

    ``join_time_period`` (1..3600 s) and ``install_code`` (hex, 6..16 bytes) belong to an
    ``Add``; validation checks both.
    """

    device_id: str
    request_type: Literal["Add", "Remove"]
    join_time_period: int | None = None
    install_code: str | None = None
    import_mpxn: str | None = None
    secondary_import_mpan: str | None = None
    export_mpan: str | None = None


class GenericBody(
    Struct, frozen=True, kw_only=True, gc=False, tag_field="element", tag="Generic", forbid_unknown_fields=True
):
    """Any other body, kept as the original DUIS XML of the body element (lossless).

    ``name`` is the body element's local name, e.g. ``"UpdateImportTariffPrimaryElement"``;
    ``xml`` its serialisation (namespace declarations included, ``ExecutionDateTime`` lifted
    out into the request).
    """

    name: str
    xml: str


Body = (
    RetrieveImportDailyReadLog
    | ReadActiveImportProfileData
    | ReadExportProfileData
    | ReadInstantaneousImportRegisters
    | ReadFirmwareVersion
    | UpdateHANDeviceLog
    | GenericBody
)

#: SRV -> the typed read-log body it carries.
READ_LOG_BODIES: dict[str, type[_ReadLogBody]] = {
    "4.6.1": RetrieveImportDailyReadLog,
    "4.8.1": ReadActiveImportProfileData,
    "4.8.3": ReadExportProfileData,
}

#: SRV -> the typed body it must carry (any other SRV carries a :class:`GenericBody`).
TYPED_BODIES: dict[str, type] = {
    **READ_LOG_BODIES,
    "4.1.1": ReadInstantaneousImportRegisters,
    "11.2": ReadFirmwareVersion,
    "8.11": UpdateHANDeviceLog,
}

#: DUIS body element name -> the SRV whose typed body it is.
TYPED_ELEMENT_SRV: dict[str, str] = {cls.__struct_config__.tag: srv for srv, cls in TYPED_BODIES.items()}


class ServiceRequest(Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="request"):
    """A DUIS Service Request.

    ``signature`` keeps the ``ds:Signature`` element of an XML request verbatim (dccsim does
    not check signatures; it carries them so that XML -> JSON -> XML loses nothing).
    """

    request_id: RequestId
    command_variant: int
    service_reference: str
    srv: str
    body: Body
    role: RoleName | None = None
    execution_datetime: datetime | None = None
    first_in_sequence: bool | None = None
    preceding_request_id: RequestId | None = None
    signature: str | None = None

    @property
    def period(self) -> ReadLogPeriod | None:
        """The read log period of a 4.6.1 / 4.8.1 / 4.8.3 request, else ``None``."""
        return self.body.period if isinstance(self.body, _ReadLogBody) else None


class FutureDatedAlert(Struct, frozen=True, kw_only=True, gc=False):
    """What a future-dated command held on a device reports when it runs, one instruction at a
    time: DUIS's ``FutureDatedDeviceAlertMessage``, carried in a :class:`Response` to the
    command's request (``alert_code`` 0x8F66 done, 0x8F67 not done)."""

    alert_code: int
    instruction_number: int
    total_command_instructions: int
    gbcs_payload: bytes = b""


class Response(Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="response"):
    """A DSP response to a Service Request (``future_dated``: the outcome of one instruction
    of a future-dated command, CR1233; at most one of it and ``gbcs_payload``)."""

    request_id: RequestId | None
    response_id: RequestId | None
    response_code: str
    response_datetime: datetime
    service_reference: str
    srv: str
    gbcs_payload: bytes | None = None
    future_dated: FutureDatedAlert | None = None

    @classmethod
    def for_request(
        cls, request: ServiceRequest, code: str, when: datetime, gbcs_payload: bytes | None = None
    ) -> Response:
        """The response to ``request``: ResponseID swaps originator and target."""
        return cls(
            request_id=request.request_id,
            response_id=request.request_id.swapped(),
            response_code=code,
            response_datetime=when,
            service_reference=request.service_reference,
            srv=request.srv,
            gbcs_payload=gbcs_payload,
        )


class DeviceAlert(Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="device_alert"):
    """A device alert as forwarded to a DCC User.

    In DUIS XML the alert travels as a Response whose ResponseID is
    ``device:recipient:counter``; ``alert_code`` is the 16-bit code (``0x8F84``...).
    """

    device: str
    recipient: str
    counter: int
    alert_code: int
    time: datetime
    gbcs_payload: bytes = b""
    throttled_alert_count: int | None = None
    throttled_alert_sequence_id: int | None = None


class DCCAlert(Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="dcc_alert"):
    """An alert raised by the DCC itself.

    ``detail`` is the XML of the DUIS ``DCCAlert`` choice element (e.g. a
    ``PowerOutageEvent``), kept verbatim; :meth:`power_outage` builds a common one.
    """

    code: str
    recipient: str
    counter: int
    time: datetime
    detail: str
    throttled_alert_count: int | None = None
    throttled_alert_sequence_id: int | None = None

    @classmethod
    def power_outage(
        cls, *, code: str, recipient: str, counter: int, time: datetime, comms_hub: str, mpxn: str
    ) -> DCCAlert:
        ns = "http://www.dccinterface.co.uk/ServiceUserGateway"
        start = time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        detail = (
            f'<sr:PowerOutageEvent xmlns:sr="{ns}"><sr:CommsHubDeviceID>{comms_hub}</sr:CommsHubDeviceID>'
            f"<sr:StartDateTime>{start}</sr:StartDateTime><sr:MPxN>{mpxn}</sr:MPxN></sr:PowerOutageEvent>"
        )
        return cls(code=code, recipient=recipient, counter=counter, time=time, detail=detail)


Message = ServiceRequest | Response | DeviceAlert | DCCAlert


class RequestRow(Struct, frozen=True, array_like=True, gc=False):
    """One Service Request, flattened for the high-throughput MessagePack batch path.

    Encoded as a MessagePack array (no field names): 3x smaller than JSON and the cheapest
    thing for msgspec to decode. EUI-64s are ``uint64``; date-times are ns since the epoch
    (0 = absent); ``srv`` is the SRV string (e.g. ``"4.8.1"``), ``role`` a role name.
    """

    originator: int
    target: int
    counter: int
    command_variant: int
    srv: str
    role: str
    t_scheduled_ns: int = 0
    period_start_ns: int = 0
    period_end_ns: int = 0
    execution_ns: int = 0

    def check(self, where: str = "$") -> None:
        """The RequestID's parts as :meth:`RequestId.check` wants them: unsigned 64-bit."""
        for name in ("originator", "target", "counter"):
            value = getattr(self, name)
            if not 0 <= value <= _U64_MAX:
                what = "an unsigned 64-bit integer" if name == "counter" else "an EUI-64 as an unsigned 64-bit integer"
                raise MessageError(f"{where}.{name}", value, what)


# ---------------------------------------------------------------------------- server control and replies
class Subscribe(Struct, frozen=True, kw_only=True, tag_field="kind", tag="subscribe"):
    """Ask for the device alerts that pass Alert Storm Protection on this connection."""

    alerts: bool = True


class StatsRequest(Struct, frozen=True, kw_only=True, tag_field="kind", tag="stats"):
    """Ask for the server's counters, cache and throttle statistics."""


class StatsReply(Struct, frozen=True, kw_only=True, tag_field="kind", tag="stats_reply"):
    server: dict[str, int]
    cache: dict[str, Any]
    throttle: dict[str, Any]


class BusyReply(Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind", tag="busy"):
    """A batch (``batch_id``, ``count`` rows) or messages (``request_ids``) refused unprocessed."""

    reason: str
    batch_id: int | None = None
    count: int = 0
    request_ids: list[str] = []


class ErrorReply(Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind", tag="error"):
    """A malformed frame or message: nothing of it was processed."""

    message: str
    field: str = ""
    value: str = ""
    expected: str = ""
    code: str = "malformed"
    batch_id: int | None = None
    count: int = 0
    request_ids: list[str] = []

    @classmethod
    def of(cls, exc: MessageError, **extra: Any) -> ErrorReply:
        """The reply to a :class:`~dccsim.core.errors.MessageError` (its value cut to 200 characters;
        where the error says what arrived in words, e.g. ``a JSON null``, those words)."""
        got = getattr(exc, "got", None)
        value = got if got is not None else exc.value if isinstance(exc.value, str) else repr(exc.value)
        return cls(message=str(exc), field=exc.field, value=value[:200], expected=exc.expected, code=exc.code, **extra)


class RowAck(Struct, frozen=True, array_like=True, gc=False):
    batch_id: int
    count: int
