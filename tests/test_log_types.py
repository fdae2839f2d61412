"""Logs typed for notebooks (schema version 2): EUI-64 text, hex alert codes, timestamps and
durations; the EUI-64 kernels against their plain-Python reference; runs of schema version 1
still open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from cli_helper import cli
from dccsim.bench.alerts import read_trace
from dccsim.bench.compose import simulate
from dccsim.bench.results._kernels import eui_parse, eui_text
from dccsim.bench.results.logs import ALERTS_SCHEMA, ArrowLogWriter, LogError, raw_table, read_log, run_metadata
from dccsim.core.errors import MessageError
from dccsim.core.eui import EUI_RE, eui_to_int, int_to_eui
from hypothesis import given, settings
from hypothesis import strategies as st
from test_records import V1_ALERTS, V1_REQUESTS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# ------------------------------------------------------------------ the kernels vs the reference
@settings(deadline=None)  # the first example loads (or compiles) the kernels
@given(st.lists(st.integers(0, 2**64 - 1), max_size=50))
def test_eui_text_is_int_to_eui(values: list[int]) -> None:
    offsets, data = eui_text(np.array(values, np.uint64))
    texts = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(values))]
    assert texts == [int_to_eui(v) for v in values]
    back, bad = eui_parse(data, offsets)
    assert bad == -1 and back.tolist() == values


_EUI_CHARS = st.sampled_from("0123456789abcdefABCDEF-gG: ")


@settings(deadline=None)
@given(st.lists(st.one_of(st.integers(0, 2**64 - 1).map(int_to_eui), st.text(_EUI_CHARS, max_size=25)), max_size=20))
def test_eui_parse_is_eui_to_int(texts: list[str]) -> None:
    """The first string the kernel refuses is the first the reference refuses; the others parse
    to the same numbers (either case, as DUIS allows)."""
    raw = [t.encode() for t in texts]
    offsets = np.cumsum([0, *map(len, raw)]).astype(np.int64)
    data = np.frombuffer(b"".join(raw), np.uint8) if raw else np.zeros(0, np.uint8)
    got, bad = eui_parse(data, offsets)
    want_bad = next((i for i, t in enumerate(texts) if not EUI_RE.match(t)), -1)
    assert bad == want_bad
    for i, text in enumerate(texts[: None if bad < 0 else bad]):
        assert int(got[i]) == eui_to_int(text)
    if bad >= 0:
        with pytest.raises(MessageError):
            eui_to_int(texts[bad])


# ------------------------------------------------------------------ the run's logs
@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("types") / "run"
    simulate("smoke", out=out)
    return out


def test_a_run_s_logs_read_as_text_times_and_durations_in_polars(smoke: Path) -> None:
    req = pl.read_ipc_stream(smoke / "requests.arrow")
    alerts = pl.read_ipc_stream(smoke / "alerts.arrow")
    raw = read_log(smoke / "requests.arrow", raw=True)
    assert req["device"].to_list() == [int_to_eui(d) for d in raw.column("device").to_pylist()]
    assert req["originator"].str.contains(EUI_RE.pattern).all()
    assert req.schema["t_done_ns"] == pl.Datetime("ns", "UTC") and req.schema["wait_ns"] == pl.Duration("ns")
    assert (req["t_done_ns"] - req["t_scheduled_ns"] == req["latency_ns"]).all()
    # a period only where the SRV reads one: null elsewhere, never 1970
    reads = req["srv"].cast(pl.String).is_in(["4.6.1", "4.8.1", "4.8.3"])
    assert req.filter(~reads)["period_start_ns"].is_null().all()
    assert req.filter(reads)["period_start_ns"].dt.year().min() >= 2000
    codes = alerts["alert_code"].cast(pl.String)
    assert codes.str.contains("^[0-9A-F]{4}$").all() and "8F84" in codes.to_list()
    want = {f"{c:04X}" for c in raw_table(read_log(smoke / "alerts.arrow")).column("alert_code").to_pylist()}
    assert set(codes.to_list()) == want


def test_a_run_s_alert_code_dictionary_is_its_scenario_s_codes(smoke: Path) -> None:
    """Not all 65,536 codes (half a megabyte in every log): the ones the scenario can raise."""
    from dccsim.bench.compose import load_run

    table = ipc.open_stream(smoke / "alerts.arrow").read_all()
    dictionary = table.column("alert_code").chunk(0).dictionary.to_pylist()
    assert dictionary == [f"{c:04X}" for c in load_run("smoke").scenario.alert_codes()]


def test_a_log_told_no_codes_takes_any_code_and_one_told_some_refuses_others(tmp_path: Path) -> None:
    n = 3
    cols = {
        "t_ns": np.arange(n, dtype=np.int64), "device": np.arange(n, dtype=np.uint64),
        "alert_code": np.array([0x0000, 0x8F84, 0xFFFF], np.uint16), "action": np.zeros(n, np.uint8),
        "throttled_count": np.zeros(n, np.uint32), "sequence_id": np.zeros(n, np.uint32),
        "storm": np.zeros(n, bool),
    }  # fmt: skip
    with ArrowLogWriter(tmp_path / "any.arrow", ALERTS_SCHEMA, run_metadata("x", 1)) as log:
        log.write_columns(**cols)
    codes = pl.read_ipc_stream(tmp_path / "any.arrow")["alert_code"].cast(pl.String)
    assert codes.to_list() == ["0000", "8F84", "FFFF"]
    with ArrowLogWriter(tmp_path / "some.arrow", ALERTS_SCHEMA, run_metadata("x", 1), alert_codes=[0x8F84]) as log:
        with pytest.raises(LogError, match=r"alert code 0000 is not in this log's dictionary; expected one of 8F84"):
            log.write_columns(**cols)
        assert log.rows == 0


def test_a_log_of_eui_text_or_codes_that_are_not_is_a_clear_error(tmp_path: Path) -> None:
    table = pa.table({"device": pa.array(["00-DB-12-34-56-78-90-A0", "not an EUI"])})
    with pytest.raises(LogError, match=r"column 'device': row 1 holds 'not an EUI', expected an EUI-64"):
        raw_table(table)
    codes = pa.DictionaryArray.from_arrays(pa.array(np.array([0, 1], np.uint16)), ["8F84", "8G84"])
    want = r"column 'alert_code': expected 16-bit alert codes as 4 hex digits \(8F84\), got '8G84'"
    with pytest.raises(LogError, match=want):
        raw_table(pa.table({"alert_code": codes}))


# ------------------------------------------------------------------ runs of schema version 1
def _as_version_1(run: Path, old: Path) -> None:
    """``run``'s folder as dccsim wrote it before schema version 2: the same rows, with times,
    EUI-64s and alert codes as plain integers, the alerts' two future-dated columns, and
    ``dccsim.schema_version`` 1."""
    old.mkdir()
    for name in ("summary.json", "histograms.json"):
        (old / name).write_bytes((run / name).read_bytes())
    for name, schema in (("requests.arrow", V1_REQUESTS), ("alerts.arrow", V1_ALERTS)):
        table = read_log(run / name, raw=True)
        if name == "alerts.arrow":  # version 1 had the future-dated alerts' columns, 0 for any other alert
            zeros = pa.array(np.zeros(table.num_rows, np.uint16))
            table = table.append_column("instruction", zeros).append_column("total_instructions", zeros)
        meta = {**table.schema.metadata, b"dccsim.schema_version": b"1"}
        meta.pop(b"dccsim.read.status")
        table = table.cast(schema).replace_schema_metadata(meta)
        with ipc.new_stream(old / name, table.schema) as w:
            w.write_table(table)


def test_runs_of_schema_version_1_still_open(
    smoke: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old"
    _as_version_1(smoke, old)
    assert ipc.open_stream(old / "requests.arrow").schema.field("device").type == pa.uint64()
    code, out, err = cli("report", str(old), capsys=capsys)
    assert code == 0 and (old / "report.html").stat().st_size > 10_000, err
    code, out, err = cli("compare", str(old), str(smoke), "--json", capsys=capsys)
    assert code == 0, err
    doc = json.loads(out)
    same = [k for k in doc["kpis"] if k["kind"] == "simulation"]
    assert same and all(k["ratio"] == 1.0 for k in same) and doc["passed"]
    assert cli("check", str(old), capsys=capsys)[0] == cli("check", str(smoke), capsys=capsys)[0]
    # the same rows, whichever version: raw_table of each is one table
    for name in ("requests.arrow", "alerts.arrow"):
        new = read_log(smoke / name, raw=True)
        assert read_log(old / name, raw=True).select(new.column_names).equals(new), name


def test_an_alerts_log_of_either_version_is_a_throttle_trace(
    smoke: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old"
    _as_version_1(smoke, old)
    new_trace, old_trace = read_trace(smoke / "alerts.arrow"), read_trace(old / "alerts.arrow")
    for name in ("t_ns", "device", "alert_code"):
        assert np.array_equal(getattr(new_trace, name), getattr(old_trace, name)), name
    policy = str(EXAMPLES / "throttle" / "policy.toml")
    for trace, out in ((smoke / "alerts.arrow", tmp_path / "a.arrow"), (old / "alerts.arrow", tmp_path / "b.arrow")):
        assert cli("throttle", str(trace), "--config", policy, "--out", str(out), "-q", capsys=capsys)[0] == 0
    a, b = read_log(tmp_path / "a.arrow", raw=True), read_log(tmp_path / "b.arrow", raw=True)
    assert a.equals(b)
    assert pl.read_ipc_stream(tmp_path / "a.arrow")["device"].dtype == pl.String
