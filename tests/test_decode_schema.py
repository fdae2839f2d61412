"""``dccsim decode`` holds every input format to the DUIS schema, without ``--validate``.

Each case the schema rejects is refused in DUIS XML, JSON, MessagePack and (where a compact
row can carry it) compact rows, with exit 2 and one line naming the file, the field, the value
and the expectation. The reference templates still decode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from cli_helper import cli
from dccsim.core import duisxml, wire
from dccsim.core.messages import RequestRow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests"
READ_XML = (EXAMPLES / "01_mhhs_4.8.1.xml").read_text()
HAN_XML = (EXAMPLES / "02_han_8.11_add.xml").read_text()
DAY = 1_795_000_000 * 10**9


@pytest.fixture(autouse=True)
def _schema(duis_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real DUIS XSD, named the documented way (the default places vary by machine)."""
    monkeypatch.setenv("DCCSIM_DUIS_XSD", str(duis_dir / "DUIS-Schema-V5.4.xsd"))


def _json_of(xml: str) -> dict:
    [req] = wire.decode_file(xml.encode())
    return json.loads(wire.encode_json(req))  # type: ignore[arg-type]


def _edit(base: str, change: Callable[[dict], None]) -> dict:
    data = _json_of(READ_XML if base == "read" else HAN_XML)
    change(data)
    return data


def _row(**change: object) -> RequestRow:
    fields: dict = dict(originator=0x90B3D51F30010000, target=0x00DB1234567890A0, counter=7, command_variant=1,
                        srv="4.8.1", role="MDR", period_start_ns=DAY - 86_400 * 10**9, period_end_ns=DAY)  # fmt: skip
    return RequestRow(**{**fields, **change})


def _drop_start(d: dict) -> None:
    del d["body"]["period"]["start"]


# case -> (XML text, JSON body or None, compact row or None) and, per format, (field, words in the expectation)
CASES: dict[str, dict] = {
    "unknown SRV": {
        "xml": (READ_XML.replace(">4.8.1<", ">99.9.9<"), "header.srv", "a DUIS Service Reference Variant"),
        "json": (_edit("read", lambda d: d.update(srv="99.9.9")), "$.srv", "a DUIS Service Reference Variant"),
        "rows": ([_row(srv="99.9.9")], "$[0].srv", "a DUIS Service Reference Variant"),
    },
    "Command Variant 9": {
        "xml": (READ_XML.replace("<sr:CommandVariant>1<", "<sr:CommandVariant>9<"), "header.command_variant",
                "from 1 to 8"),
        "json": (_edit("read", lambda d: d.update(command_variant=9)), "$.command_variant", "from 1 to 8"),
        "rows": ([_row(command_variant=9)], "$[0].command_variant", "from 1 to 8"),
    },  # fmt: skip
    "4-byte install code": {
        "xml": (HAN_XML.replace("30313233343536373839414243444546", "30313233"), "body.install_code",
                "hex of 6 to 16 bytes"),
        "json": (_edit("han", lambda d: d["body"].update(install_code="30313233")), "$.body.install_code",
                 "hex of 6 to 16 bytes"),
    },  # fmt: skip
    "join time 5000": {
        "xml": (HAN_XML.replace(">90<", ">5000<"), "body.join_time_period", "from 1 to 3600"),
        "json": (_edit("han", lambda d: d["body"].update(join_time_period=5000)), "$.body.join_time_period",
                 "from 1 to 3600"),
    },  # fmt: skip
    "4.8.1 without StartDateTime": {
        "xml": (READ_XML.replace("<sr:StartDateTime>2026-11-21T00:00:00Z</sr:StartDateTime>", ""),
                "body.period.start", "an sr:StartDateTime element"),
        "json": (_edit("read", _drop_start), "$.body.period", "the required field 'start'"),
        "rows": ([_row(period_start_ns=0)], "$[0].period_start_ns", "SRV 4.8.1 has one"),
    },  # fmt: skip
    "4.8.1 with an extra element": {
        "xml": (READ_XML.replace("</sr:ReadLogPeriod>", "</sr:ReadLogPeriod><sr:Extra>1</sr:Extra>"), "body",
                "sr:ReadActiveImportProfileData to hold sr:ReadLogPeriod, sr:KAPublicSecurityCredentials?"),
        "json": (_edit("read", lambda d: d["body"].update(extra=1)), "$.body.extra", "only the fields"),
        "rows": ([_row(srv="11.2")], "$[0].period_start_ns", "SRV 11.2 has no read log period"),
    },  # fmt: skip
    "4.8.1 as a generic body": {
        "xml": (READ_XML.replace("ReadActiveImportProfileData", "RetrieveImportDailyReadLog"), "body",
                "sr:ReadActiveImportProfileData, the body of SRV 4.8.1"),
        "json": (_edit("read", lambda d: d.update(body={"element": "Generic", "name": "ReadActiveImportProfileData",
                                                        "xml": "<x/>"})),
                 "$.body.element", "the typed ReadActiveImportProfileData body of SRV 4.8.1"),
    },  # fmt: skip
    "ServiceReference 8.11 with SRV 4.8.1": {
        "xml": (READ_XML.replace("<sr:ServiceReference>4.8<", "<sr:ServiceReference>8.11<"),
                "header.service_reference", "'4.8', the Service Reference of SRV 4.8.1"),
        "json": (_edit("read", lambda d: d.update(service_reference="8.11")), "$.service_reference",
                 "'4.8', the Service Reference of SRV 4.8.1"),
    },  # fmt: skip
    'schemaVersion="1.0"': {
        "xml": (READ_XML.replace('schemaVersion="5.4"', 'schemaVersion="1.0"'), "xml.schemaVersion",
                "5.4, the DUIS version dccsim reads"),
    },  # fmt: skip
}
PARAMS = [
    pytest.param(case, fmt, id=f"{case}-{fmt}")
    for case, formats in CASES.items()
    for fmt in ("xml", "json", "msgpack", "rows")
    if (fmt if fmt != "msgpack" else "json") in formats
]


def _write(tmp_path: Path, case: str, fmt: str) -> tuple[Path, str, str]:
    spec = CASES[case]
    if fmt == "xml":
        text, field, words = spec["xml"]
        f = tmp_path / "case.xml"
        f.write_text(text)
    elif fmt == "rows":
        rows, field, words = spec["rows"]
        f = tmp_path / "case.msgpack"
        f.write_bytes(wire.encode_rows(rows))
    else:
        data, field, words = spec["json"]
        f = tmp_path / f"case.{fmt}"
        f.write_bytes(json.dumps(data).encode() if fmt == "json" else msgspec.msgpack.encode(data))
    return f, field, words


def test_the_cases_are_valid_before_their_change(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """What each case edits decodes when left as it is (so each test below fails for its edit alone)."""
    for name, data in (("read.xml", READ_XML), ("han.xml", HAN_XML)):
        (tmp_path / name).write_text(data)
    (tmp_path / "read.json").write_text(json.dumps(_json_of(READ_XML)))
    (tmp_path / "han.msgpack").write_bytes(msgspec.msgpack.encode(_json_of(HAN_XML)))
    (tmp_path / "rows.msgpack").write_bytes(wire.encode_rows([_row(), _row(srv="11.2", period_start_ns=0,
                                                                           period_end_ns=0)]))  # fmt: skip
    code, out, err = cli("decode", *sorted(map(str, tmp_path.iterdir())), capsys=capsys)
    assert (code, err) == (0, "") and len(out.splitlines()) == 6


@pytest.mark.parametrize(("case", "fmt"), PARAMS)
def test_decode_refuses_what_the_schema_rejects_with_one_line(case: str, fmt: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    f, field, words = _write(tmp_path, case, fmt)
    code, out, err = cli("decode", str(f), capsys=capsys)
    lines = err.splitlines()
    assert code == 2 and out == "", err
    assert len(lines) == 2 and lines[1] == "dccsim decode: 1 bad message(s)", err
    assert lines[0].startswith(f"{f}: {field}: got "), lines[0]
    assert words in lines[0].partition(", expected ")[2], lines[0]


@pytest.mark.parametrize(("case", "fmt"), [p for p in PARAMS if p.values[1] == "xml"])
def test_xml_cases_are_refused_without_the_xsd_too(case: str, fmt: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """dccsim's own checks name the field whether or not the XSD is there (--no-schema)."""
    f, field, _ = _write(tmp_path, case, fmt)
    code, _, err = cli("decode", "--no-schema", str(f), capsys=capsys)
    assert code == 2 and err.startswith(f"{f}: {field}: got "), err


def test_every_success_template_decodes_with_exit_0(templates: list[Path], capsys) -> None:  # type: ignore[no-untyped-def]
    success = [str(p) for p in templates if "SUCCESS" in p.name]
    assert len(success) >= 200
    code, out, err = cli("decode", *success, capsys=capsys)
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == len(success)


def test_xml_is_checked_against_the_xsd_by_default(duis_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A generic body (6.20.1) that only the XSD knows is wrong: refused by default, taken with --no-schema."""
    text = (duis_dir / "templates" / "ECS39a_6.20.1_SINGLE_SUCCESS_REQUEST_DUIS.XML").read_text()
    bad = text.replace("<sr:ImportMPANs>", "<sr:Unexpected/><sr:ImportMPANs>", 1)
    assert bad != text
    f = tmp_path / "6.20.1.xml"
    f.write_text(bad)
    monkeypatch.delenv("DCCSIM_DUIS_XSD")  # the default place: here, the one the tests read
    places = (tmp_path / "none.xsd", duis_dir / duisxml.SCHEMA_FILE)
    monkeypatch.setattr(duisxml, "default_schema_paths", lambda: places)
    code, out, err = cli("decode", str(f), capsys=capsys)
    assert code == 2 and out == ""
    assert err.splitlines()[0].startswith(f"{f}: xml: got line ") and "'sr:Unexpected'" in err
    code, out, err = cli("decode", "--no-schema", str(f), capsys=capsys)
    assert (code, err) == (0, "") and json.loads(out)["srv"] == "6.20.1"


def test_a_generic_body_from_json_is_checked_against_the_xsd(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ns = "http://www.dccinterface.co.uk/ServiceUserGateway"
    data = {**_json_of(READ_XML), "srv": "6.20.1", "service_reference": "6.20",
            "body": {"element": "Generic", "name": "SetDeviceConfigurationImportMPxN",
                     "xml": f'<sr:SetDeviceConfigurationImportMPxN xmlns:sr="{ns}"><sr:Nope/>'
                            "</sr:SetDeviceConfigurationImportMPxN>"}}  # fmt: skip
    for fmt, raw in (("json", json.dumps(data).encode()), ("msgpack", msgspec.msgpack.encode(data))):
        f = tmp_path / f"generic.{fmt}"
        f.write_bytes(raw)
        code, _, err = cli("decode", str(f), capsys=capsys)
        assert code == 2 and err.startswith(f"{f}: $.body.xml: got line ") and "'sr:Nope'" in err, err
        assert cli("decode", "--no-schema", str(f), capsys=capsys)[0] == 0


def _reject_all_xsd(tmp_path: Path) -> Path:
    """A schema that is not DUIS: it knows one element, so any DUIS request breaks it."""
    xsd = tmp_path / "other.xsd"
    xsd.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'targetNamespace="http://www.dccinterface.co.uk/ServiceUserGateway">'
        '<xs:element name="Other" type="xs:string"/></xs:schema>'
    )
    return xsd


def test_dccsim_duis_xsd_names_the_schema_used(duis_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "read.xml"
    f.write_text(READ_XML)
    assert cli("decode", str(f), capsys=capsys)[0] == 0
    monkeypatch.setenv("DCCSIM_DUIS_XSD", str(_reject_all_xsd(tmp_path)))
    code, _, err = cli("decode", str(f), capsys=capsys)
    assert code == 2 and err.startswith(f"{f}: xml: got line ") and "No matching global declaration" in err, err
    assert cli("decode", "--no-schema", str(f), capsys=capsys)[0] == 0
    # --schema wins over the variable
    code, _, err = cli("decode", "--schema", str(duis_dir / duisxml.SCHEMA_FILE), str(f), capsys=capsys)
    assert (code, err) == (0, "")


@pytest.mark.parametrize("what", ["missing", "folder", "not a schema"])
def test_an_unusable_dccsim_duis_xsd_is_one_line_exit_2(what: str, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = {"missing": tmp_path / "nope.xsd", "folder": tmp_path, "not a schema": tmp_path / "x.xsd"}[what]
    if what == "not a schema":
        path.write_text("<not-a-schema/>")
    monkeypatch.setenv("DCCSIM_DUIS_XSD", str(path))
    f = tmp_path / "read.json"
    f.write_text(json.dumps(_json_of(READ_XML)))
    code, out, err = cli("decode", str(f), capsys=capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dccsim: error: DCCSIM_DUIS_XSD {path}: "), err


def test_no_schema_found_is_a_note_and_dccsim_s_own_checks(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DCCSIM_DUIS_XSD")
    monkeypatch.setattr(duisxml, "default_schema_paths", lambda: (tmp_path / "none.xsd",))
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_text(READ_XML)
    bad.write_text(READ_XML.replace(">4.8.1<", ">99.9.9<"))
    code, out, err = cli("decode", str(good), str(bad), capsys=capsys)
    lines = err.splitlines()
    assert code == 2 and len(out.splitlines()) == 1
    assert lines[0].startswith("dccsim decode: note: no DUIS schema found") and len(lines) == 3
    assert lines[1].startswith(f"{bad}: header.srv: got '99.9.9'")
    code, out, err = cli("decode", "--no-schema", str(good), capsys=capsys)
    assert (code, err) == (0, "")


def test_validate_checks_compact_rows(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Compact rows get access control too: a role the SRV does not allow, a replayed counter."""
    f = tmp_path / "rows.msgpack"
    f.write_bytes(wire.encode_rows([_row(counter=1), _row(counter=1), _row(counter=2, role="ES"),
                                    _row(counter=3, role="")]))  # fmt: skip
    code, out, err = cli("decode", str(f), capsys=capsys)
    assert (code, err) == (0, "")  # without --validate: every row is well formed
    code, out, err = cli("decode", "--validate", str(f), capsys=capsys)
    lines = err.splitlines()
    assert code == 2 and len(out.splitlines()) == 1
    row = "row 90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0"
    replay = "E17: counter 1 is not greater than 1, the last from 90-B3-D5-1F-30-01-00-00 (replay)"
    assert lines[0] == f"{f}: {row}:1: {replay}"
    assert lines[1].startswith(f"{f}: {row}:2: E2: role ES may not send SRV 4.8.1")
    assert lines[2] == f"{f}: {row}:3: E1: the request carries no user role and no user registry names one"
    code, out, err = cli("decode", "--validate", "--role", "MDR", str(f), capsys=capsys)
    assert code == 2 and len(out.splitlines()) == 2  # --role fills the row that carries none


def test_a_urp_certificate_is_part_of_the_typed_read_log_where_the_schema_has_it(duis_schema) -> None:  # type: ignore[no-untyped-def]
    """4.6.1 and 4.8.1 may carry KAPublicSecurityCredentials (typed, kept, written back); 4.8.3 may not."""
    cert = "<sr:KAPublicSecurityCredentials>MIIBtest</sr:KAPublicSecurityCredentials>"
    urp = READ_XML.replace("</sr:ReadLogPeriod>", "</sr:ReadLogPeriod>" + cert)
    [req] = wire.decode_file(urp.encode(), duis_schema)
    assert req.body.ka_public_security_credentials == "MIIBtest"  # type: ignore[union-attr]
    out = duisxml.encode_xml(req, duis_schema)  # type: ignore[arg-type]
    assert wire.decode_file(out, duis_schema) == [req]
    assert wire.decode_json(wire.encode_json(req)) == req  # type: ignore[arg-type]
    export = urp.replace(">4.8.1<", ">4.8.3<").replace("ReadActiveImportProfileData", "ReadExportProfileData")
    [err] = wire.decode_file(export.encode())
    assert str(err).startswith("body: got an extra element sr:KAPublicSecurityCredentials, expected sr:ReadExport")
