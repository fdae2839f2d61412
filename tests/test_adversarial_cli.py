"""Careless and hostile input to the command line: one clear line, the right exit code, no traceback.

Each test is a regression test for an input that once raised, hung, left a file behind or said
something unhelpful: nesting deep enough to exhaust the decoders' recursion, a scenario that is
not UTF-8, an alert trace with a column twice, stdout that is full or closed, inputs that are
not regular files, msgspec's own words where the allowed values belong, and a state table that
fills up half-way through a log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from cli_helper import cli
from dccsim.core import wire
from dccsim.core.errors import MessageError
from dccsim.core.messages import ErrorReply

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "requests"
DEEP = 100_000


def run_cli(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    """``python -m dccsim.bench ARGS`` in a child, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "dccsim.bench", *args], capture_output=True, timeout=120, check=False, **kw
    )


def _request() -> dict:
    return json.loads((EXAMPLES / "04_batch.jsonl").read_text().splitlines()[0])


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------ deep nesting
DEEP_INPUTS = {
    "json-array": b"[" * DEEP + b"]" * DEEP,
    "json-map": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "json-in-a-request": b'{"kind":"request","x":' + b"[" * DEEP + b"]" * DEEP + b"}",
    "msgpack-array": b"\x91" * DEEP + b"\xc0",
    "msgpack-map": b"\x81\xa1a" * DEEP + b"\xc0",
}


@pytest.mark.parametrize("name", sorted(DEEP_INPUTS))
def test_deep_nesting_is_one_line_exit_2(name, tmp_path, capsys) -> None:
    f = tmp_path / f"{name}.{'json' if name.startswith('json') else 'msgpack'}"
    f.write_bytes(DEEP_INPUTS[name])
    code, out, err = cli("decode", str(f), capsys=capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[1] == "dccsim decode: 1 bad message(s)", err
    assert lines[0].startswith(f"{f}: ")
    if "map" in name or "request" in name:  # no field to blame: the nesting itself
        assert "nesting: got " in lines[0] and "levels deep, expected at most a few levels" in lines[0]
    else:  # the decoder stops at the first array where an object belongs
        assert f"$[0]: got a {'JSON' if name.startswith('json') else 'MessagePack'} array, expected object" in lines[0]


@pytest.mark.parametrize(
    "decode",
    [wire.decode_json, wire.decode_json_batch, wire.decode_msgpack, wire.decode_msgpack_batch, wire.decode_rows],
)
@pytest.mark.parametrize("shape", ["array", "map"])
def test_decoders_refuse_deep_nesting_with_a_message_error(decode, shape) -> None:
    """What the server's frame decoding falls back on (its ``_decode_problem``) says the same."""
    is_json = "json" in decode.__name__
    if is_json:
        data = b"[" * DEEP + b"]" * DEEP if shape == "array" else b'{"a":' * DEEP + b"1" + b"}" * DEEP
        if decode is wire.decode_json_batch:
            data = b"[" + (b'{"kind":"request","x":' + data + b"}") + b"]"
    else:
        data = b"\x91" * DEEP + b"\xc0" if shape == "array" else b"\x81\xa1a" * DEEP + b"\xc0"
        if decode is not wire.decode_msgpack:
            data = b"\x91" + data
    with pytest.raises(MessageError) as exc:
        decode(data)
    reply = ErrorReply.of(exc.value)
    assert reply.field and reply.expected and "recursion" not in reply.message
    shown = ("a JSON ", "a MessagePack ", "JSON ", "MessagePack ", "a value the input")
    assert reply.value.startswith(shown), reply.value


def test_server_names_the_nesting(tmp_path) -> None:
    from dccsim.core.protocol import TAG_JSON
    from dccsim.core.server import _decode_problem

    payload = b'{"kind":"request","x":' + b"[" * DEEP + b"]" * DEEP + b"}"
    err = _decode_problem(RecursionError("maximum recursion depth exceeded"), payload, TAG_JSON)
    assert err.field == "nesting" and "levels deep" in str(err)


# ------------------------------------------------------------------------------ error texts
@pytest.mark.parametrize(
    ("change", "field", "value", "allowed"),
    [
        ({"role": "bogus"}, "$.role", "bogus", "one of 'ED', 'ES', 'GS', 'GT', 'IS', 'LC', 'MDR', 'OU', 'RSA' or null"),
        ({"kind": "bogus"}, "$.kind", "bogus", "one of 'request', 'response', 'device_alert', 'dcc_alert'"),
        (
            {"body": {"element": "Bogus"}},
            "$.body.element",
            "Bogus",
            "one of 'RetrieveImportDailyReadLog', 'ReadActiveImportProfileData', 'ReadExportProfileData', "
            "'ReadInstantaneousImportRegisters', 'ReadFirmwareVersion', 'UpdateHANDeviceLog', 'Generic'",
        ),
        (
            {"body": {"element": "UpdateHANDeviceLog", "device_id": "00", "request_type": "Maybe"}},
            "$.body.request_type",
            "Maybe",
            "one of 'Add', 'Remove'",
        ),
    ],
)
def test_bad_enum_values_say_what_is_allowed(change, field, value, allowed, tmp_path, capsys) -> None:
    data = {**_request(), **change}
    for name, raw in (("one.json", json.dumps(data).encode()), ("one.msgpack", msgspec.msgpack.encode(data))):
        f = tmp_path / name
        f.write_bytes(raw)
        code, _, err = cli("decode", str(f), capsys=capsys)
        assert code == 2
        assert _one_line(err) == f"{f}: {field}: got {value!r}, expected {allowed} [malformed]"
    # the server's error reply carries the same parts
    with pytest.raises(MessageError) as exc:
        wire.decode_json(json.dumps(data))
    reply = ErrorReply.of(exc.value)
    assert (reply.field, reply.value, reply.expected) == (field, value, allowed)


def test_bad_date_time_and_base64_say_what_is_allowed() -> None:
    data = _request()
    data["body"]["period"]["start"] = "yesterday"
    with pytest.raises(MessageError) as exc:
        wire.decode_json(json.dumps(data))
    assert exc.value.field == "$.body.period.start" and exc.value.value == "yesterday"
    assert exc.value.expected.startswith("an RFC 3339 date-time, e.g.")
    alert = {"kind": "device_alert", "device": "00", "recipient": "00", "counter": 1, "alert_code": 1,
             "time": "2026-01-01T00:00:00Z", "gbcs_payload": "!!"}  # fmt: skip
    with pytest.raises(MessageError) as exc:
        wire.decode_json(json.dumps(alert))
    assert exc.value.field == "$.gbcs_payload" and exc.value.expected == "bytes (base64 text in JSON)"


@pytest.mark.parametrize(
    ("text", "kind"),
    [(b"null", "null"), (b"42", "number"), (b'"x"', "string"), (b" -1.5\n", "number"), (b"true", "boolean")],
)
def test_a_json_scalar_is_named_as_json(text, kind, tmp_path, capsys) -> None:
    f = tmp_path / "scalar.json"
    f.write_bytes(text)
    code, _, err = cli("decode", str(f), capsys=capsys)
    assert code == 2
    assert _one_line(err) == f"{f}: $: got a JSON {kind}, expected a request object or array [malformed]"


def test_an_empty_file_is_named_as_empty(tmp_path, capsys) -> None:
    f = tmp_path / "empty.json"
    f.write_bytes(b"\n")
    code, _, err = cli("decode", str(f), capsys=capsys)
    assert code == 2
    assert _one_line(err) == f"{f}: $: got an empty file, expected a request object or array [malformed]"


def test_a_bad_json_line_is_named_by_its_line(tmp_path, capsys) -> None:
    lines = (EXAMPLES / "04_batch.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad["command_variant"] = "one"
    f = tmp_path / "lines.jsonl"
    f.write_text("\n".join([lines[0], json.dumps(bad), lines[2]]) + "\n")
    code, out, err = cli("decode", str(f), capsys=capsys)
    assert code == 2 and len(out.splitlines()) == 2
    assert _one_line(err) == f"{f}: line 2: $.command_variant: got 'one', expected int [malformed]"


def test_schema_errors_show_libxml2s_whole_reason_on_one_line(duis_dir, tmp_path, capsys) -> None:
    data = {**_request(), "srv": "6.20.1", "service_reference": "6.20", "role": "IS"}  # a generic body
    ns = "http://www.dccinterface.co.uk/ServiceUserGateway"
    data["body"] = {"element": "Generic", "name": "FooBarBazQux",
                    "xml": f'<sr:FooBarBazQux xmlns:sr="{ns}"><sr:Nope>1</sr:Nope></sr:FooBarBazQux>'}  # fmt: skip
    f = tmp_path / "generic.json"
    f.write_text(json.dumps(data))
    schema = str(duis_dir / "DUIS-Schema-V5.4.xsd")
    args = ["--to", "xml", "--schema", schema, "--validate", "--role", "IS", str(f)]
    code, out, err = cli("decode", *args, capsys=capsys)
    assert code == 2 and out == ""
    line = _one_line(err)
    # found on reading (a generic body from JSON is checked against the schema), before any output
    assert line.startswith(f"{f}: $.body.xml: got line 10: Element 'sr:FooBarBazQux': This element is not expected. ")
    # the reason goes on to what the schema allows there, and the expectation follows it
    assert "Expected is one of ( sr:UpdateImportTariffPrimaryElement," in line
    assert line.endswith(
        "sr:UpdateDebt )., expected a request the DUIS schema accepts "
        "(lines of the XML dccsim writes for it) [malformed]"
    )


# ------------------------------------------------------------------------------ stdout and inputs
def _many_requests(tmp_path: Path, copies: int = 2000) -> Path:
    """A JSON-lines file whose conversion is megabytes: far more than a pipe holds."""
    f = tmp_path / "many.jsonl"
    f.write_bytes((EXAMPLES / "04_batch.jsonl").read_bytes() * copies)
    return f


@pytest.mark.parametrize("to", ["json", "msgpack"])
def test_a_closed_stdout_pipe_is_one_line_exit_3(to, tmp_path) -> None:
    """``dccsim decode FILE | head -c1``: a large MessagePack write to the pipe came back short
    and the rest was dropped silently (exit 0); JSON lines died in click's handler (exit 1)."""
    src = _many_requests(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-m", "dccsim.bench", "decode", "--to", to, str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(1)) == 1
        proc.stdout.close()  # the reader leaves, as head -c1 does
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert code == 3, err
    assert err.splitlines() == ["dccsim: error: cannot write stdout: Broken pipe"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("to", ["json", "msgpack", "xml"])
def test_a_full_stdout_is_one_line_exit_3(to, tmp_path) -> None:
    """A guard more than a regression test: the command now says it itself, as main did for it."""
    src = str(EXAMPLES / "01_mhhs_4.8.1.xml") if to == "xml" else str(_many_requests(tmp_path, 20))
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "dccsim.bench", "decode", "--to", to, src],
            stdout=full, stderr=subprocess.PIPE, timeout=120, check=False,
        )  # fmt: skip
    assert r.returncode == 3
    assert r.stderr.decode().splitlines() == ["dccsim: error: cannot write stdout: No space left on device"]


def test_a_fifo_with_no_writer_is_refused_without_opening_it(tmp_path, capsys) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, out, err = cli("decode", str(EXAMPLES / "04_batch.jsonl"), str(fifo), capsys=capsys)
    assert code == 2 and out == ""  # checked before anything is converted
    assert err.splitlines() == [
        f"dccsim: error: {fifo}: file: got a FIFO, expected a regular file (or - for stdin)"
    ]


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/dev/zero", "file: got a character device, expected a regular file (or - for stdin)"),
        ("/proc/self/mem", "file: cannot read (Input/output error), expected a readable file"),
        ("MISSING", "file: not found, expected a readable file (or - for stdin)"),
    ],
)
def test_unreadable_inputs_are_one_line_exit_2(path, words, tmp_path, capsys) -> None:
    if path == "MISSING":
        path = str(tmp_path / "nope.json")
    elif not Path(path).exists():
        pytest.skip(f"needs {path}")
    code, out, err = cli("decode", path, capsys=capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"dccsim: error: {path}: {words}"]


def test_a_folder_is_one_line_exit_2(tmp_path, capsys) -> None:
    """A guard: click's own check of the argument already said this in one line."""
    code, _, err = cli("decode", str(tmp_path), capsys=capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "is a directory" in err


def test_dash_reads_stdin() -> None:
    r = run_cli("decode", "-", input=(EXAMPLES / "04_batch.jsonl").read_bytes())
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout.splitlines()) == 5


# ------------------------------------------------------------------------------ scenario files
def test_a_scenario_that_is_not_utf8_names_the_file_and_the_byte(tmp_path, capsys) -> None:
    f = tmp_path / "latin1.toml"
    f.write_bytes('name = "café"\n'.encode("latin-1"))
    code, out, err = cli("run", str(f), "--out", str(tmp_path / "run"), capsys=capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"dccsim: error: {f}: byte 0xE9 at offset 11 is not UTF-8 (invalid continuation byte), "
        "expected UTF-8 text (TOML is UTF-8)"
    ]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ alert traces
POLICY = REPO / "examples" / "throttle" / "policy.toml"
GRID = REPO / "examples" / "throttle" / "grid.toml"


def _write_trace(path: Path, names: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    types = {"t_ns": pa.int64(), "device": pa.uint64(), "alert_code": pa.uint16(), "storm": pa.bool_()}
    cols = [pa.array([False, True] if name == "storm" else [1, 2], types.get(name, pa.int64())) for name in names]
    table = pa.table(cols, names=names)
    with ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    return path


@pytest.mark.parametrize("dup", ["device", "storm"])
@pytest.mark.parametrize("command", ["throttle", "tune-throttle"])
def test_a_trace_with_a_column_twice_names_it(command, dup, tmp_path, capsys) -> None:
    names = ["t_ns", "device", "alert_code", "storm", dup]
    trace = _write_trace(tmp_path / "dup.arrow", names)
    args = ["--config", str(POLICY)] if command == "throttle" else ["--grid", str(GRID)]
    out = tmp_path / ("out.arrow" if command == "throttle" else "tuning")
    code, _, err = cli(command, str(trace), *args, "--out", str(out), capsys=capsys)
    assert code == 2
    assert err.splitlines() == [
        f"dccsim: error: {trace}: column {dup!r} appears 2 times, expected it once; got columns {', '.join(names)}"
    ]
    assert not out.exists() or not any(out.iterdir())


def test_a_full_state_table_leaves_no_partial_log_and_names_max_keys(tmp_path, capsys) -> None:
    trace = tmp_path / "trace.arrow"
    code, _, err = cli("make-alert-trace", str(trace), "--alerts", "1000", "--devices", "100", capsys=capsys)
    assert code == 0, err
    out = tmp_path / "alerts.arrow"
    code, _, err = cli("throttle", str(trace), "--config", str(POLICY), "--out", str(out), "--max-keys", "1",
                       capsys=capsys)  # fmt: skip
    assert code == 2
    line = _one_line(err)
    assert line.startswith(f"dccsim: error: --max-keys 1: {trace}: rows from 0: throttle state full: ")
    keys = int(line.split("The trace has ")[1].split(" ")[0].replace(",", ""))
    assert line.endswith(f"keys in all: --max-keys {keys} is always enough.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.arrow"]  # nothing half-written
    # what it says is enough, is
    code, _, err = cli("throttle", str(trace), "--config", str(POLICY), "--out", str(out), "--max-keys", str(keys),
                       capsys=capsys)  # fmt: skip
    assert code == 0, err
    good = out.read_bytes()
    # a failed run leaves an earlier good log as it was
    code, _, _ = cli("throttle", str(trace), "--config", str(POLICY), "--out", str(out), "--max-keys", "1",
                     capsys=capsys)  # fmt: skip
    assert code == 2 and out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.arrow", "trace.arrow"]


# ------------------------------------------------------------------------------ found by fuzzing
def _cli_binary(*args: str, capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes, str]:
    """``dccsim ARGS`` whose stdout may be MessagePack: its exit code, stdout bytes and stderr text."""
    code, out, err = cli(*args, capsys=capsysbinary)  # type: ignore[arg-type]
    return code, out, err.decode()  # type: ignore[attr-defined]


def _xml_with(old: str, new: str, tmp_path: Path) -> Path:
    text = (EXAMPLES / "01_mhhs_4.8.1.xml").read_text()
    assert old in text
    f = tmp_path / "edited.xml"
    f.write_text(text.replace(old, new, 1))
    return f


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("<sr:CommandVariant>1<", "<sr:CommandVariant>99999999999999999999999<",
         "header.command_variant: got '99999999999999999999999', expected an integer that fits in 64 bits"),
        ("<sr:CommandVariant>1<", "<sr:CommandVariant>1_0<",
         "header.command_variant: got '1_0', expected an integer that fits in 64 bits"),
        ("2026-11-21T00:00:00Z", "9999-12-31T23:59:59-01:00",
         "body.period.start: got '9999-12-31T23:59:59-01:00', expected a date-time within years 1 to 9999 in UTC"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("to", ["json", "msgpack", "xml"])
def test_xml_values_no_format_can_carry_are_refused_as_they_are_read(
    to, old, new, words, tmp_path, capsysbinary
) -> None:
    f = _xml_with(old, new, tmp_path)
    code, out, err = _cli_binary("decode", "--to", to, str(f), capsysbinary=capsysbinary)
    assert code == 2 and out == (b"\x90" if to == "msgpack" else b"")  # an empty MessagePack array
    assert _one_line(err) == f"{f}: {words} [malformed]"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"command_variant": 10**23}, "$.command_variant: got 100000000000000000000000, expected an integer that fits"),
        ({"execution_datetime": "0001-01-01T00:00:00+01:00"},
         "$.execution_datetime: got '0001-01-01T00:00:00+01:00', expected a date-time within years 1 to 9999 in UTC"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("to", ["msgpack", "xml"])
def test_json_values_other_formats_cannot_carry_are_refused(to, change, words, tmp_path, capsysbinary) -> None:
    f = tmp_path / "edited.json"
    f.write_text(json.dumps({**_request(), **change}))
    code, out, err = _cli_binary("decode", "--to", to, str(f), capsysbinary=capsysbinary)
    assert code == 2 and out == (b"\x90" if to == "msgpack" else b"")
    assert _one_line(err).startswith(f"{f}: {words}")


def test_a_control_character_xml_cannot_hold_is_one_line(tmp_path, capsys) -> None:
    f = tmp_path / "nul.json"
    body = {"element": "UpdateHANDeviceLog", "device_id": "00-DB-12-34-56-78-90-A0", "request_type": "Add",
            "join_time_period": 90, "install_code": "00" * 16, "import_mpxn": "13\x0012345678"}  # fmt: skip
    f.write_text(json.dumps({**_request(), "srv": "8.11", "service_reference": "8.11", "body": body}))
    code, out, err = cli("decode", "--to", "xml", str(f), capsys=capsys)
    assert code == 2 and out == ""
    assert _one_line(err) == (
        f"{f}: ImportMPxN: got '13\\x0012345678', expected text XML can hold (no NUL or control characters) [malformed]"
    )
