"""Whole files in, messages out (``wire.decode_file``); messages out as DUIS XML (``duisxml.encode_xml``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from dccsim.core import duisxml, wire
from dccsim.core.errors import MessageError
from dccsim.core.messages import (
    DeviceAlert,
    ReadActiveImportProfileData,
    ReadLogPeriod,
    RequestId,
    RequestRow,
    Response,
    ServiceRequest,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests"
WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def request(counter: int) -> ServiceRequest:
    return ServiceRequest(
        request_id=RequestId.parse(f"90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:{counter}"),
        command_variant=1,
        service_reference="4.8",
        srv="4.8.1",
        body=ReadActiveImportProfileData(period=ReadLogPeriod(start=datetime(2026, 1, 1, tzinfo=UTC), end=WHEN)),
    )


A, B = request(1), request(2)
ROW = RequestRow(originator=1, target=2, counter=3, command_variant=1, srv="4.8.1", role="MDR",
                 period_start_ns=1_767_225_600 * 10**9, period_end_ns=1_767_312_000 * 10**9)  # fmt: skip


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (duisxml.encode_request_xml(A), [A]),
        (wire.encode_json(A), [A]),
        (b"[" + wire.encode_json(A) + b",\n" + wire.encode_json(B) + b"]", [A, B]),
        (wire.encode_json(A) + b"\n\n" + wire.encode_json(B) + b"\n", [A, B]),
        (wire.encode_msgpack(A), [A]),
        (wire.encode_msgpack([A, B]), [A, B]),
        (wire.encode_rows([ROW, ROW]), [ROW, ROW]),
    ],
    ids=["xml", "json", "json-array", "json-lines", "msgpack", "msgpack-array", "compact-rows"],
)
def test_every_format_decodes_to_its_messages(data: bytes, want: list[object]) -> None:
    assert wire.decode_file(data) == want


def test_a_bad_json_line_is_an_error_in_its_place() -> None:
    data = wire.encode_json(A) + b'\n{"kind": "request"}\n' + wire.encode_json(B)
    got = wire.decode_file(data)
    assert got[0] == A and got[2] == B
    assert isinstance(got[1], MessageError) and got[1].field == "line 2: $"


def test_a_bad_compact_row_names_its_index() -> None:
    bad = msgspec.structs.replace(ROW, counter=-5)
    [err] = wire.decode_file(wire.encode_rows([ROW, bad]))
    assert isinstance(err, MessageError) and err.field == "$[1].counter"


def test_an_array_of_neither_messages_nor_rows_reports_the_messages_error() -> None:
    [err] = wire.decode_file(msgspec.msgpack.encode([[1, 2]]))
    assert isinstance(err, MessageError)
    assert (err.field, err.expected) == ("$[0]", "object")  # what a message batch expected, not a row


@pytest.mark.parametrize("data", [b"", b"\xc1\xc1", b"{not json", b"<sr:Request"])
def test_input_that_is_no_message_comes_back_as_one_error(data: bytes) -> None:
    [err] = wire.decode_file(data)
    assert isinstance(err, MessageError) and err.code == "malformed"


def test_encode_xml_picks_the_document_for_each_kind() -> None:
    resp = Response.for_request(A, "I0", WHEN, b"\x01")
    alert = DeviceAlert(
        device="00-DB-12-34-56-78-90-A0",
        recipient="90-B3-D5-1F-30-01-00-00",
        counter=7,
        alert_code=0x8F84,
        time=WHEN,
        gbcs_payload=b"\x00",
    )
    assert duisxml.encode_xml(A) == duisxml.encode_request_xml(A)
    assert duisxml.encode_xml(resp) == duisxml.encode_response_xml(resp)
    assert duisxml.encode_xml(alert) == duisxml.encode_alert_xml(alert)
    with pytest.raises(MessageError, match="a compact row has no DUIS body") as err:
        duisxml.encode_xml(ROW)
    assert err.value.value == "RequestRow"


def test_encode_xml_checks_the_schema_when_given(duis_schema) -> None:
    assert duisxml.encode_xml(A, duis_schema) == duisxml.encode_request_xml(A)
    [add] = wire.decode_file((EXAMPLES / "02_han_8.11_add.xml").read_bytes())
    assert isinstance(add, ServiceRequest)
    # built in code, not decoded (decoding refuses it): a 2-byte install code the schema rejects
    short_code = msgspec.structs.replace(add, body=msgspec.structs.replace(add.body, install_code="3031"))
    duisxml.encode_xml(short_code)  # no schema, no check
    with pytest.raises(MessageError, match="valid against the DUIS schema") as err:
        duisxml.encode_xml(short_code, duis_schema)
    assert err.value.field == "xml" and "InstallCode" in str(err.value.value)
