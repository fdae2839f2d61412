"""The message model, the three wire formats and the shared DUIS templates."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from dccsim.core import duisxml, wire
from dccsim.core.errors import MessageError
from dccsim.core.eui import eui_to_int, int_to_eui
from dccsim.core.messages import (
    DCCAlert,
    DeviceAlert,
    GenericBody,
    ReadActiveImportProfileData,
    ReadLogPeriod,
    RequestId,
    Response,
    ServiceRequest,
    UpdateHANDeviceLog,
)

RID = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1002"


def test_eui_round_trip_and_case() -> None:
    assert eui_to_int("00-db-12-34-56-78-90-a0") == 0x00DB1234567890A0
    assert int_to_eui(0xFFFFFFFFFFFFFFFF) == "FF-FF-FF-FF-FF-FF-FF-FF"
    with pytest.raises(MessageError, match="EUI-64"):
        eui_to_int("00-DB-12-34-56-78-90")


def test_request_id_parse_and_swap() -> None:
    rid = RequestId.parse(RID)
    assert (rid.originator, rid.target, rid.counter) == ("90-B3-D5-1F-30-01-00-00", "00-DB-12-34-56-78-90-A0", 1002)
    assert str(rid.swapped()) == "00-DB-12-34-56-78-90-A0:90-B3-D5-1F-30-01-00-00:1002"
    with pytest.raises(MessageError) as err:
        RequestId.parse("90-B3-D5-1F-30-01-00:00-DB-12-34-56-78-90-A0:1")
    assert err.value.field == "header.request_id.originator"
    with pytest.raises(MessageError, match="counter"):
        RequestId.parse(RID.replace(":1002", ":18446744073709551616"))


def _header(xml: bytes, tag: str) -> str:
    start = xml.index(f"<sr:{tag}>".encode()) + len(tag) + 5
    return xml[start : xml.index(f"</sr:{tag}>".encode(), start)].decode()


def test_every_template_round_trips_and_validates(templates, duis_schema) -> None:
    typed = 0
    for path in templates:
        original = path.read_bytes()
        req = duisxml.decode_request_xml(original)
        # header fields exact
        for tag, value in (
            ("RequestID", str(req.request_id)),
            ("CommandVariant", str(req.command_variant)),
            ("ServiceReference", req.service_reference),
            ("ServiceReferenceVariant", req.srv),
        ):
            assert _header(original, tag) == value, (path.name, tag)
        again = wire.decode_json(wire.encode_json(req))
        assert again == req, path.name
        assert wire.decode_msgpack(wire.encode_msgpack(req)) == req
        out = duisxml.encode_request_xml(again)
        assert duisxml.schema_errors(out, duis_schema) == [], path.name
        assert duisxml.decode_request_xml(out) == req, path.name
        typed += not isinstance(req.body, GenericBody)
    assert typed >= 14  # 4.6.1, 4.8.1, 4.8.3, 4.1.1, 11.2 and 8.11 templates are typed


def test_typed_bodies_are_filled(duis_dir) -> None:
    t = duis_dir / "templates"
    r = duisxml.decode_request_xml((t / "ECS22b_4.8.1_TWIN_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    assert isinstance(r.body, ReadActiveImportProfileData)
    assert r.body.period == ReadLogPeriod(
        start=datetime(2014, 12, 31, tzinfo=UTC), end=datetime(2015, 1, 1, tzinfo=UTC)
    )
    h = duisxml.decode_request_xml((t / "CCS01_8.11_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    assert h.body == UpdateHANDeviceLog(
        device_id="00-DB-12-34-56-78-90-A0",
        request_type="Add",
        join_time_period=90,
        install_code="30313233343536373839414243444546",
        import_mpxn="1312345678111",
        secondary_import_mpan="1312345678222",
    )
    f = duisxml.decode_request_xml((t / "ECS17b_4.1.1_DSP_FUTURE_DATED_REQUEST_DUIS.XML").read_bytes())
    assert f.execution_datetime == datetime(2015, 1, 15, 9, tzinfo=UTC)


def test_responses_and_alerts_validate(duis_schema) -> None:
    req = ServiceRequest(
        request_id=RequestId.parse(RID),
        command_variant=1,
        service_reference="4.8",
        srv="4.8.1",
        body=ReadActiveImportProfileData(
            period=ReadLogPeriod(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2, tzinfo=UTC))
        ),
    )
    when = datetime(2026, 1, 2, 1, 2, 3, 500000, tzinfo=UTC)
    for code, payload in (("I0", b"\x01\x02"), ("I99", None), ("E21", None)):
        resp = Response.for_request(req, code, when, payload)
        assert resp.response_id == req.request_id.swapped()
        xml = duisxml.encode_response_xml(resp)
        assert duisxml.schema_errors(xml, duis_schema) == []
        assert wire.decode_json(wire.encode_json(resp)) == resp
    for count, seq in ((None, None), (0, 0), (41, 3)):
        alert = DeviceAlert(
            device="00-DB-12-34-56-78-90-A0",
            recipient="90-B3-D5-1F-30-01-00-00",
            counter=7,
            alert_code=0x8F84,
            time=when,
            gbcs_payload=b"\x00" * 4,
            throttled_alert_count=count,
            throttled_alert_sequence_id=seq,
        )
        xml = duisxml.encode_alert_xml(alert)
        assert duisxml.schema_errors(xml, duis_schema) == []
        if count:
            assert b"<sr:ThrottledAlertCount>41</sr:ThrottledAlertCount>" in xml
            assert b"<sr:ThrottledAlertSequenceId>3</sr:ThrottledAlertSequenceId>" in xml
        assert b"<sr:AlertCode>8F84</sr:AlertCode>" in xml
    dcc = DCCAlert.power_outage(
        code="N42",
        recipient="90-B3-D5-1F-30-01-00-00",
        counter=9,
        time=when,
        comms_hub="00-DB-12-34-56-78-90-A2",
        mpxn="1312345678111",
    )
    assert duisxml.schema_errors(duisxml.encode_alert_xml(dcc), duis_schema) == []
    dcc2 = msgspec.structs.replace(dcc, throttled_alert_count=5, throttled_alert_sequence_id=1)
    assert duisxml.schema_errors(duisxml.encode_alert_xml(dcc2), duis_schema) == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"<sr:Request xmlns:sr='http://www.dccinterface.co.uk/ServiceUserGateway'><sr:Header>", "xml"),
        (b"<Request/>", "xml.root"),
        (
            b"<sr:Request xmlns:sr='http://www.dccinterface.co.uk/ServiceUserGateway' schemaVersion='5.4'><sr:Header>"
            b"<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90:1</sr:RequestID></sr:Header><sr:Body/></sr:Request>",
            "header.request_id.target",
        ),
    ],
)
def test_bad_xml_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(MessageError) as err:
        duisxml.decode_request_xml(data)
    assert err.value.field == field


def test_truncated_template_is_rejected(templates) -> None:
    data = templates[0].read_bytes()
    with pytest.raises(MessageError, match="well-formed"):
        duisxml.decode_request_xml(data[: len(data) // 2])


def test_wrong_types_in_json_name_path_value_and_type() -> None:
    good = wire.encode_json(
        ServiceRequest(
            request_id=RequestId.parse(RID),
            command_variant=1,
            service_reference="11.2",
            srv="11.2",
            body=GenericBody(name="X", xml="<x/>"),
        )
    )
    bad = good.replace(b'"command_variant":1', b'"command_variant":"one"')
    with pytest.raises(MessageError) as err:
        wire.decode_json(bad)
    assert err.value.field == "$.command_variant"
    assert err.value.value == "one"
    assert err.value.expected == "int"
    missing = good.replace(b'"srv":"11.2",', b"")
    with pytest.raises(MessageError, match="required field 'srv'"):
        wire.decode_json(missing)


def test_detect_format() -> None:
    assert wire.detect_format(b"  <?xml ...") == "xml"
    assert wire.detect_format(b'{"kind": "request"}') == "json"
    assert wire.detect_format(b'{"a":1}\n{"b":2}\n') == "jsonl"
    assert wire.detect_format(b'{\n "a": 1\n}\n') == "json"
    assert wire.detect_format(b"\x81\xa4kind") == "msgpack"


def _request_dict() -> dict:
    req = ServiceRequest(
        request_id=RequestId.parse(RID),
        command_variant=1,
        service_reference="4.8",
        srv="4.8.1",
        body=ReadActiveImportProfileData(
            period=ReadLogPeriod(start=datetime(2026, 11, 22, tzinfo=UTC), end=datetime(2026, 11, 23, tzinfo=UTC))
        ),
    )
    return msgspec.json.decode(wire.encode_json(req))


@pytest.mark.parametrize(
    ("part", "value", "field", "expected"),
    [
        ("originator", "ZZ", "request_id.originator", "an EUI-64"),
        ("target", "00-DB-12", "request_id.target", "an EUI-64"),
        ("counter", -5, "request_id.counter", "an unsigned 64-bit integer"),
        ("counter", 2**64, "request_id.counter", "an unsigned 64-bit integer"),
    ],
)
def test_json_and_msgpack_check_request_ids_as_xml_does(part: str, value: object, field: str, expected: str) -> None:
    data = _request_dict()
    data["request_id"][part] = value
    text = f"{data['request_id']['originator']}:{data['request_id']['target']}:{data['request_id']['counter']}"
    with pytest.raises(MessageError) as xml_err:
        RequestId.parse(text)  # what the DUIS XML reader does with the header's RequestID
    assert xml_err.value.field == f"header.{field}"
    decoders = [
        (wire.decode_json, msgspec.json.encode(data), f"$.{field}"),
        (wire.decode_json_batch, msgspec.json.encode([_request_dict(), data]), f"$[1].{field}"),
    ]
    if value != 2**64:  # MessagePack has no integers above 2**64 - 1
        decoders += [
            (wire.decode_msgpack, msgspec.msgpack.encode(data), f"$.{field}"),
            (wire.decode_msgpack_batch, msgspec.msgpack.encode([_request_dict(), data]), f"$[1].{field}"),
        ]
    for decode, raw, path in decoders:
        with pytest.raises(MessageError) as err:
            decode(raw)
        assert err.value.field == path and err.value.value == value and expected in err.value.expected


def test_json_date_times_need_a_time_zone_as_in_xml() -> None:
    data = _request_dict()
    data["body"]["period"]["end"] = "2026-11-23T00:00:00"
    with pytest.raises(MessageError) as err:
        wire.decode_json(msgspec.json.encode(data))
    assert err.value.field == "$.body.period.end" and err.value.value == "2026-11-23T00:00:00"
    assert "time zone" in err.value.expected
    assert wire.decode_json(msgspec.json.encode(_request_dict())).period == ReadLogPeriod(
        start=datetime(2026, 11, 22, tzinfo=UTC), end=datetime(2026, 11, 23, tzinfo=UTC)
    )


def test_compact_rows_check_their_request_id_parts() -> None:
    from dccsim.core.messages import RequestRow

    RequestRow(originator=1, target=2**64 - 1, counter=0, command_variant=1, srv="4.8.1", role="MDR").check()
    with pytest.raises(MessageError) as err:
        RequestRow(originator=1, target=2, counter=-5, command_variant=1, srv="4.8.1", role="MDR").check("$[3]")
    assert err.value.field == "$[3].counter"
