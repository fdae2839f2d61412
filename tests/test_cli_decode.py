"""``dccsim decode``: detection, conversion, one line per bad message, exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from dccsim.bench.cli import main
from dccsim.core import duisxml, wire

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "dccsim.bench", *args],
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_all_templates_round_trip_through_the_cli(templates, duis_dir, tmp_path) -> None:
    as_json = run_cli("decode", "--to", "json", *map(str, templates))
    assert as_json.returncode == 0, as_json.stderr.decode()
    lines = as_json.stdout.splitlines()
    assert len(lines) == len(templates)
    json_files = []
    for i, line in enumerate(lines):
        p = tmp_path / f"{i:03d}.json"
        p.write_bytes(line)
        json_files.append(str(p))
    back = run_cli("decode", "--to", "xml", "--schema", str(duis_dir / "DUIS-Schema-V5.4.xsd"), *json_files)
    assert back.returncode == 0, back.stderr.decode()
    docs = back.stdout.split(b"<?xml ")[1:]
    assert len(docs) == len(templates)
    for doc, template in zip(docs, templates, strict=True):
        again = duisxml.decode_request_xml(b"<?xml " + doc)
        assert again == duisxml.decode_request_xml(template.read_bytes()), template.name


def test_bad_messages_one_line_each_and_exit_2_after_good_ones() -> None:
    r = run_cli("decode", *sorted(map(str, EXAMPLES.iterdir())))
    assert r.returncode == 2
    out = r.stdout.decode().splitlines()
    assert len(out) == 9  # every good message was converted
    err = r.stderr.decode().splitlines()
    assert err[-1] == "dccsim decode: 3 bad message(s)"
    assert any("03_han_8.11_short_install_code.xml: body.install_code: got '3031' (2 bytes)" in e for e in err)
    assert any("06_wrong_type.json: $.command_variant: got 'one', expected int" in e for e in err)
    assert any("07_truncated.xml: xml:" in e and "well-formed" in e for e in err)


def test_validate_reports_codes() -> None:
    r = run_cli("decode", "--validate", "--role", "IS", *sorted(map(str, EXAMPLES.glob("0[1-4]*"))))
    assert r.returncode == 2
    err = r.stderr.decode()
    # a schema violation, found by decoding (exit 2 with or without --validate), not by validation
    assert "short_install_code.xml: body.install_code: got '3031' (2 bytes), expected hex of 6 to 16 bytes" in err
    assert "E17: counter 2 is not greater than 2" in err
    assert "E2: role MDR may not send SRV 11.2" in err
    assert "E13: body.period: start" in err


def test_msgpack_output_decodes_again(tmp_path) -> None:
    r = run_cli("decode", "--to", "msgpack", str(EXAMPLES / "04_batch.jsonl"))
    assert r.returncode == 0
    p = tmp_path / "out.msgpack"
    p.write_bytes(r.stdout)
    assert len(wire.decode_msgpack_batch(p.read_bytes())) == 5
    again = run_cli("decode", str(p))
    assert again.returncode == 0 and len(again.stdout.splitlines()) == 5
    assert json.loads(again.stdout.splitlines()[0])["srv"] == "4.8.1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["decode", "--to", "yaml", "x"], "Invalid value for '--to'"),
        (["decode"], "Missing argument"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args, words, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_missing_file_is_named(tmp_path) -> None:
    r = run_cli("decode", str(tmp_path / "nope.xml"))
    assert r.returncode == 2
    assert "nope.xml: file: not found" in r.stderr.decode()


def test_msgspec_encoded_compact_rows_are_readable(tmp_path) -> None:
    from dccsim.core.messages import RequestRow

    p = tmp_path / "rows.msgpack"
    p.write_bytes(
        msgspec.msgpack.encode(
            [RequestRow(originator=1, target=2, counter=3, command_variant=1, srv="4.8.1", role="MDR",
                        period_start_ns=10**18, period_end_ns=10**18 + 86_400 * 10**9)]  # fmt: skip
        )
    )
    r = run_cli("decode", str(p))
    assert r.returncode == 0 and b"4.8.1" in r.stdout


def _request_json(**changes: object) -> dict:
    data = json.loads((EXAMPLES / "04_batch.jsonl").read_text().splitlines()[0])
    assert data["srv"] == "4.8.1"
    for key, value in changes.items():
        part, _, name = key.partition("__")
        (data[part] if name else data)[name or part] = value
    return data


def _decode_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exc:
        main(["decode", *args])
    return int(exc.value.code), capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"request_id__originator": "ZZ"}, "$.request_id.originator: got 'ZZ', expected an EUI-64"),
        (
            {"request_id__counter": 2**64 + 5},
            "$.request_id.counter: got 18446744073709551621, expected an unsigned 64-bit integer",
        ),
        ({"request_id__counter": -5}, "$.request_id.counter: got -5, expected an unsigned 64-bit integer"),
    ],
)
def test_json_and_msgpack_request_ids_are_checked_like_xml(change, words, tmp_path, capsys) -> None:
    data = _request_json(**change)
    files = [tmp_path / "one.json", tmp_path / "many.json"]
    files[0].write_text(json.dumps(data))
    files[1].write_text(json.dumps([_request_json(), data]))
    if change.get("request_id__counter") != 2**64 + 5:
        files.append(tmp_path / "one.msgpack")
        files[-1].write_bytes(msgspec.msgpack.encode(data))
    code, err = _decode_in_process([str(f) for f in files], capsys)
    assert code == 2
    assert err[-1] == f"dccsim decode: {len(files)} bad message(s)"
    for f, line in zip(files, err, strict=False):
        assert line.startswith(f"{f}: ") and words.replace("$.", "$[1]." if f.name == "many.json" else "$.") in line


def test_validate_naive_read_period_is_one_line(tmp_path, capsys) -> None:
    data = _request_json()
    data["body"]["period"]["start"] = data["body"]["period"]["start"].rstrip("Z")
    f = tmp_path / "naive.json"
    f.write_text(json.dumps(data))
    code, err = _decode_in_process(["--validate", "--role", "IS", str(f)], capsys)
    assert code == 2 and len(err) == 2
    assert err[0].startswith(f"{f}: $.body.period.start: got '") and "expected a date-time with a time zone" in err[0]


def test_schema_that_is_not_a_schema_is_one_line(tmp_path, capsys) -> None:
    not_xml = tmp_path / "passwd"
    not_xml.write_text("root:x:0:0:root:/root:/bin/bash\n")
    not_xsd = tmp_path / "plain.xml"
    not_xsd.write_text("<a><b/></a>")
    for schema in (not_xml, not_xsd):
        code, err = _decode_in_process(
            ["--to", "xml", "--schema", str(schema), str(EXAMPLES / "01_mhhs_4.8.1.xml")], capsys
        )
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"dccsim: error: --schema {schema}: not an XML schema (") and "Traceback" not in err[0]


def test_demo_finds_the_shipped_examples_and_shows_each_verdict() -> None:
    """``dccsim demo`` with no flags reads the examples beside the checkout."""
    done = run_cli("demo", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    for name in sorted(p.name for p in EXAMPLES.iterdir()):
        assert name in out, name
