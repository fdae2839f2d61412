"""Arrow logs: round trip, metadata, truncated files, other readers, bad input, determinism."""

from __future__ import annotations

import doctest
import hashlib
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from dccsim.bench.results import logs
from dccsim.bench.results.logs import (
    ALERTS_SCHEMA,
    NULL_CODE,
    REQUESTS_SCHEMA,
    SCHEMA_VERSION,
    ArrowLogWriter,
    LogError,
    LogTruncatedError,
    log_metadata,
    open_log,
    raw_table,
    read_log,
    read_status,
    run_metadata,
)
from dccsim.core.eui import int_to_eui
from dccsim.core.records import (
    ALERT_ACTIONS,
    OUTCOMES,
    REQUEST_COLUMNS,
    RESPONSE_CODES,
    AlertRows,
    RequestRows,
    vocabulary,
)

SRVS = ("1.1.1", "4.6.1", "4.8.1", "4.8.3", "6.15.1")
ROLES = ("IS", "ES", "GS", "ED", "GT", "OU", "RSA", "MDR")
CODES = ("I0", "I99", "E1", "E2", "E4", "E19", "E21", "E30")
NAMES = {"srv": SRVS, "role": ROLES, "response_code": CODES,
         "request_class": ("on_demand", "mhhs_read", "future_dated", "non_device"),
         "invalid": ("none", "wrong_role", "replay", "unknown_device", "bad_period")}
META = run_metadata(scenario="[population]\nesme = 10\n", seed=1234, shards="1")
COMPRESSIONS = [None, "lz4", "zstd"]


def request_columns(rng: np.random.Generator, n: int, seq0: int = 0) -> dict[str, np.ndarray]:
    t = np.sort(rng.integers(0, 86_400 * 10**9, n))
    latency = rng.lognormal(20, 2, n).astype(np.int64)
    none = rng.random(n) < 0.2  # no data period (not a read): null in the log
    period = np.where(none, 0, t - t % (1800 * 10**9))
    return {
        "seq": np.arange(seq0, seq0 + n, dtype=np.uint64),
        "t_scheduled_ns": t,
        "t_done_ns": t + latency,
        "device": rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True),
        "srv": rng.integers(0, len(SRVS), n).astype(np.uint8),
        "role": rng.integers(0, len(ROLES), n).astype(np.uint8),
        "command_variant": rng.integers(1, 9, n).astype(np.uint8),
        "outcome": rng.integers(0, len(OUTCOMES), n).astype(np.uint8),
        "response_code": rng.integers(0, len(CODES), n).astype(np.uint8),
        "latency_ns": latency,
        "within_target": latency < 10**9,
        "period_start_ns": period,
        "period_end_ns": np.where(none, 0, period + 1800 * 10**9),
        "originator": np.full(n, 0x90B3D51F30070001, np.uint64),
        "counter": np.arange(1, n + 1, dtype=np.uint64),
        "request_class": rng.integers(0, 4, n).astype(np.uint8),
        "attempt": np.zeros(n, np.uint8),
        "invalid": rng.integers(0, 5, n).astype(np.uint8),
        "wait_ns": latency // 3,
        "backlog": rng.integers(0, 100, n),
    }


def alert_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "t_ns": np.sort(rng.integers(0, 10**12, n)),
        "device": rng.integers(0, 2**63, n, dtype=np.uint64),
        "alert_code": rng.choice(np.array([0x8F0F, 0x8F35, 0x8183], np.uint16), n),
        "action": rng.integers(0, len(ALERT_ACTIONS), n).astype(np.uint8),
        "throttled_count": rng.integers(0, 100, n).astype(np.uint32),
        "sequence_id": np.arange(n, dtype=np.uint32),
        "storm": rng.random(n) < 0.1,
    }


def write_requests(
    path: Path, chunks: list[dict[str, np.ndarray]], **kw: Any
) -> ArrowLogWriter:
    with ArrowLogWriter(path, REQUESTS_SCHEMA, META, dictionaries=NAMES, **kw) as log:
        for cols in chunks:
            log.write_columns(**cols)
    return log


def concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def assert_table_equals_columns(table: pa.Table, cols: dict[str, np.ndarray]) -> None:
    names = {**NAMES, "outcome": OUTCOMES, "action": ALERT_ACTIONS}
    assert table.column_names == list(cols)
    raw = raw_table(table)  # times, EUI-64 text and hex codes back to the values written
    for name, want in cols.items():
        got = raw.column(name)
        if name in names:
            decoded = [None if c == NULL_CODE else names[name][c] for c in want.tolist()]
            assert got.to_pylist() == decoded, name
        else:
            assert np.array_equal(got.to_numpy(), want), name


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_requests_round_trip(tmp_path: Path, rng: np.random.Generator, compression: Any) -> None:
    chunks = [request_columns(rng, n, seq0) for n, seq0 in ((1000, 0), (1, 1000), (2500, 1001))]
    path = tmp_path / "requests.arrow"
    log = write_requests(path, chunks, compression=compression)
    assert (log.rows, log.batches) == (3501, 3)
    assert log.bytes == path.stat().st_size
    table = read_log(path, strict=True)
    assert read_status(table) == "complete"
    assert table.schema.remove_metadata().equals(REQUESTS_SCHEMA)
    assert_table_equals_columns(table, concat(chunks))


def test_alerts_round_trip_with_null_codes(tmp_path: Path, rng: np.random.Generator) -> None:
    cols = alert_columns(rng, 300)
    cols["action"][::7] = NULL_CODE
    path = tmp_path / "alerts.arrow"
    with ArrowLogWriter(path, ALERTS_SCHEMA, META) as log:
        log.write_columns(**cols)
        log.write_columns(**{k: v[:0] for k, v in cols.items()})  # empty write: nothing
    assert (log.rows, log.batches) == (300, 1)
    table = read_log(path)
    assert table.column("action").null_count == len(cols["action"][::7])
    assert_table_equals_columns(table, cols)


def test_large_writes_split_into_batches_with_one_dictionary_each(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    cols = request_columns(rng, 1000)
    path = tmp_path / "requests.arrow"
    log = write_requests(path, [cols, cols], max_batch_rows=300)
    assert (log.rows, log.batches) == (2000, 8)
    with ipc.open_stream(path) as reader:
        table = reader.read_all()
        stats = reader.stats
    assert stats.num_record_batches == 8
    assert stats.num_dictionary_batches == 6  # srv, role, outcome, response_code, class, invalid: once each
    assert stats.num_replaced_dictionaries == 0 and stats.num_dictionary_deltas == 0
    assert table.num_rows == 2000


def test_write_batch_appends_arrow_batches(tmp_path: Path, rng: np.random.Generator) -> None:
    cols = alert_columns(rng, 50)
    path = tmp_path / "alerts.arrow"
    with ArrowLogWriter(path, ALERTS_SCHEMA, META, compression=None) as log:
        log.write_columns(**cols)
        batch = read_log(path).to_batches()[0]
        log.write_batch(batch)
    assert log.rows == 100
    assert_table_equals_columns(read_log(path), concat([cols, cols]))


# --- metadata --------------------------------------------------------------------------------


def test_metadata_is_written_sorted_and_read_back(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "requests.arrow"
    write_requests(path, [request_columns(rng, 10)])
    meta = log_metadata(path)
    assert meta == {
        "dccsim.scenario": "[population]\nesme = 10\n",
        "dccsim.schema_version": SCHEMA_VERSION,
        "dccsim.seed": "1234",
        "dccsim.shards": "1",
        "dccsim.version": importlib.metadata.version("dccsim"),
    }
    assert list(meta) == sorted(meta)
    table_meta = read_log(path).schema.metadata
    assert table_meta[b"dccsim.seed"] == b"1234"


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"dccsim.seed": "1"}, "missing 'dccsim.scenario'"),
        ({**META, "dccsim.version": "9"}, r"metadata\['dccsim.version'\]: set by the writer"),
        ({**META, "x": 3}, "expected str keys and values, got 'x': int"),
    ],
)
def test_bad_metadata_is_rejected(tmp_path: Path, metadata: dict[str, Any], match: str) -> None:
    with pytest.raises(LogError, match=match):
        ArrowLogWriter(tmp_path / "a.arrow", ALERTS_SCHEMA, metadata)
    assert not (tmp_path / "a.arrow").exists()


# --- truncated files -------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_truncated_file_reads_its_complete_prefix(
    tmp_path: Path, rng: np.random.Generator, compression: Any
) -> None:
    chunks = [request_columns(rng, 400, 400 * i) for i in range(3)]
    path = tmp_path / "requests.arrow"
    write_requests(path, chunks, compression=compression)
    data = path.read_bytes()
    write_requests(tmp_path / "two.arrow", chunks[:2], compression=compression)
    two = (tmp_path / "two.arrow").read_bytes()[:-8]  # the same stream without its end marker
    assert data.startswith(two)
    last_batch = len(data) - 8 - len(two)
    cut_path = tmp_path / "cut.arrow"  # cut in the middle of the last batch
    cut_path.write_bytes(data[: len(two) + last_batch // 2])
    table = read_log(cut_path)
    assert read_status(table) == "truncated"
    assert_table_equals_columns(table, concat(chunks[:2]))
    with pytest.raises(LogTruncatedError, match=r"truncated \(2 complete batches, 800 rows"):
        read_log(cut_path, strict=True)
    assert open_log(cut_path).read_all().num_rows == 800
    with pytest.raises((pa.ArrowInvalid, OSError)):  # what a strict reader does with them
        ipc.open_stream(cut_path).read_all()

    cut_path.write_bytes(two)  # killed between batches: no end-of-stream marker
    assert read_status(read_log(cut_path)) == "unterminated"
    assert read_log(cut_path).num_rows == 800


def test_every_cut_point_reads_a_prefix_or_fails_clearly(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    cols = alert_columns(rng, 30)
    path = tmp_path / "alerts.arrow"
    with ArrowLogWriter(path, ALERTS_SCHEMA, META, max_batch_rows=10) as log:
        log.write_columns(**cols)
    data = path.read_bytes()
    cut_path = tmp_path / "cut.arrow"
    seen = set()
    # every 5th byte, and every 8th (Arrow's messages start on 8-byte boundaries: the cuts between batches)
    for cut in sorted({*range(0, len(data), 5), *range(0, len(data), 8), len(data)}):
        cut_path.write_bytes(data[:cut])
        try:
            table = read_log(cut_path)
        except LogError as exc:
            assert "not an Arrow IPC stream, or cut before the end of its schema" in str(exc)
            seen.add("no schema")
            continue
        assert table.num_rows in (0, 10, 20, 30)
        assert_table_equals_columns(table, {k: v[: table.num_rows] for k, v in cols.items()})
        seen.add(read_status(table))
    assert seen == {"no schema", "truncated", "unterminated", "complete"}


def test_a_killed_writer_leaves_a_readable_log(tmp_path: Path) -> None:
    path = tmp_path / "requests.arrow"
    child = textwrap.dedent(
        f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_logs import request_columns, NAMES, META
        from dccsim.bench.results.logs import ArrowLogWriter, REQUESTS_SCHEMA
        rng = np.random.default_rng(5)
        log = ArrowLogWriter({str(path)!r}, REQUESTS_SCHEMA, META, dictionaries=NAMES)
        i = 0
        while True:
            log.write_columns(**request_columns(rng, 1000, 1000 * i))
            i += 1
            print(i, flush=True)
        """
    )
    with subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            for _ in range(5):  # five batches written
                assert proc.stdout.readline()
        finally:
            proc.kill()  # SIGKILL: no clean-up, no end-of-stream marker
    table = read_log(path)
    assert read_status(table) in ("unterminated", "truncated")
    assert table.num_rows >= 5000 and table.num_rows % 1000 == 0
    assert np.array_equal(table.column("seq").to_numpy(), np.arange(table.num_rows))


def test_a_log_being_written_is_readable(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "alerts.arrow"
    with ArrowLogWriter(path, ALERTS_SCHEMA, META) as log:
        log.write_columns(**alert_columns(rng, 10))
        table = read_log(path)  # before close: every batch is already in the file
        assert (read_status(table), table.num_rows) == ("unterminated", 10)
    assert read_status(read_log(path)) == "complete"


def test_not_a_log(tmp_path: Path) -> None:
    path = tmp_path / "x.arrow"
    path.write_bytes(b"seq,device\n1,2\n")
    with pytest.raises(LogError, match="x.arrow: not an Arrow IPC stream"):
        read_log(path)
    with pytest.raises(LogError, match="not an Arrow IPC stream"):
        log_metadata(path)
    with pytest.raises(LogError, match="expected a table returned by read_log"):
        read_status(pa.table({"a": [1]}))


# --- other readers ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_duckdb_reads_the_log_through_arrow(
    tmp_path: Path, rng: np.random.Generator, compression: Any
) -> None:
    cols = request_columns(rng, 5000)
    path = tmp_path / "requests.arrow"
    write_requests(path, [cols], compression=compression, max_batch_rows=1000)
    want = {OUTCOMES[o]: int((cols["outcome"] == o).sum()) for o in range(len(OUTCOMES))}
    reader = open_log(path)  # streamed batch by batch  # noqa: F841
    got = duckdb.sql("select outcome, count(*) from reader group by outcome").fetchall()
    assert dict(got) == {k: v for k, v in want.items() if v}
    requests = read_log(path)  # noqa: F841
    # typed: EUI-64 text, timestamps (UTC), durations as intervals (epoch_ns gives the ns)
    row = duckdb.sql(
        "select count(*), max(device), sum(epoch_ns(latency_ns))::hugeint, count_if(within_target), "
        "min(epoch_ns(t_done_ns)), typeof(any_value(t_done_ns)) "
        "from requests where srv = '4.8.1' and role = 'ES'"
    ).fetchall()[0]
    mask = (cols["srv"] == SRVS.index("4.8.1")) & (cols["role"] == ROLES.index("ES"))
    assert row == (
        int(mask.sum()),
        int_to_eui(int(cols["device"][mask].max())),  # fixed-width upper-case hex: text order is number order
        int((cols["latency_ns"][mask] // 1000 * 1000).sum()),  # DuckDB's INTERVAL holds whole microseconds
        int(cols["within_target"][mask].sum()),
        int(cols["t_done_ns"][mask].min()),
        "TIMESTAMPTZ_NS",
    )


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_polars_reads_the_log(tmp_path: Path, rng: np.random.Generator, compression: Any) -> None:
    cols = request_columns(rng, 2000)
    path = tmp_path / "requests.arrow"
    write_requests(path, [cols], compression=compression, max_batch_rows=700)
    df = pl.read_ipc_stream(path)
    assert df.schema["srv"] == pl.Categorical and df.schema["device"] == pl.String
    assert df.schema["t_done_ns"] == pl.Datetime("ns", "UTC") and df.schema["latency_ns"] == pl.Duration("ns")
    assert df["srv"].cast(pl.String).to_list() == [SRVS[c] for c in cols["srv"]]
    assert df["device"].to_list() == [int_to_eui(int(d)) for d in cols["device"]]
    assert np.array_equal(df["t_done_ns"].to_physical().to_numpy(), cols["t_done_ns"])
    assert np.array_equal(df["latency_ns"].to_physical().to_numpy(), cols["latency_ns"])
    none = cols["period_start_ns"] == 0  # a period that does not apply is null
    assert np.array_equal(df["period_start_ns"].is_null().to_numpy(), none)
    assert np.array_equal(df["within_target"].to_numpy(), cols["within_target"])


# --- bad input -------------------------------------------------------------------------------


def _bad(cols: dict[str, np.ndarray], **change: Any) -> dict[str, Any]:
    out: dict[str, Any] = {**cols, **change}
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"srv": None}, r"missing column\(s\) 'srv'; the log's columns are \['seq', "),
        ({"colour": np.zeros(10)}, r"unexpected column\(s\) 'colour'"),
        ({"seq": np.arange(10)}, "column 'seq': expected dtype uint64, got int64"),
        ({"srv": np.zeros(10, np.int64)}, "column 'srv': expected codes dtype uint8, got int64"),
        ({"within_target": np.zeros(10, np.int8)}, "expected dtype bool, got int8"),
        ({"latency_ns": np.zeros(9, np.int64)}, r"'latency_ns': expected length 10 \(as 'seq'\), got 9"),  # noqa: E501
        ({"device": [1] * 10}, "column 'device': expected a numpy uint64 array, got list"),
        ({"t_done_ns": np.zeros((10, 1), np.int64)}, r"expected a 1-D array, got shape \(10, 1\)"),
        ({"role": np.full(10, 8, np.uint8)}, r"column 'role': code 8 has no name; expected codes below 8 or 255"),  # noqa: E501
    ],
)
def test_bad_columns_are_rejected_and_nothing_is_written(
    tmp_path: Path, rng: np.random.Generator, change: dict[str, Any], match: str
) -> None:
    path = tmp_path / "requests.arrow"
    with ArrowLogWriter(path, REQUESTS_SCHEMA, META, dictionaries=NAMES) as log:
        with pytest.raises(LogError, match=match):
            log.write_columns(**_bad(request_columns(rng, 10), **change))
        assert (log.rows, log.batches) == (0, 0)
    assert read_log(path).num_rows == 0


def test_mixed_bad_codes_and_nulls(tmp_path: Path, rng: np.random.Generator) -> None:
    cols = alert_columns(rng, 10)
    cols["action"][[2, 5]] = [NULL_CODE, 9]
    with ArrowLogWriter(tmp_path / "a.arrow", ALERTS_SCHEMA, META) as log:
        with pytest.raises(LogError, match="column 'action': code 9 has no name"):
            log.write_columns(**cols)


@pytest.mark.parametrize(
    ("dictionaries", "match"),
    [
        ({**NAMES, "device": ("a",)}, "no dictionary column named 'device'"),
        ({**NAMES, "srv": ("4.8.1", "4.8.1")}, "names must be unique"),
        ({**NAMES, "srv": tuple(map(str, range(256)))}, "at most 255 names fit uint8 codes"),
        ({**NAMES, "srv": (1, 2)}, "expected a tuple of str"),
    ],
)
def test_bad_dictionaries_are_rejected(
    tmp_path: Path, dictionaries: dict[str, Any], match: str
) -> None:
    with pytest.raises(LogError, match=match):
        ArrowLogWriter(tmp_path / "r.arrow", REQUESTS_SCHEMA, META, dictionaries=dictionaries)


def test_a_dictionary_column_the_records_do_not_define_needs_its_names(tmp_path: Path) -> None:
    schema = pa.schema([pa.field("colour", pa.dictionary(pa.uint8(), pa.string())), ALERTS_SCHEMA.field("action")])
    with pytest.raises(LogError, match="the names of column 'colour' are required"):
        ArrowLogWriter(tmp_path / "c.arrow", schema, META)
    with ArrowLogWriter(tmp_path / "c.arrow", schema, META, dictionaries={"colour": ("red", "blue")}) as log:
        log.write_columns(colour=np.array([1, 0], np.uint8), action=np.array([2, 1], np.uint8))
    table = read_log(tmp_path / "c.arrow")
    assert table.column("colour").to_pylist() == ["blue", "red"]
    assert table.column("action").to_pylist() == [ALERT_ACTIONS[2], ALERT_ACTIONS[1]]


def test_record_columns_default_to_their_vocabularies(tmp_path: Path, rng: np.random.Generator) -> None:
    """No ``dictionaries``: every categorical column of requests.arrow is named by its records
    vocabulary (the run folder's sink relies on it); a given tuple still wins."""
    cols = request_columns(rng, 200)
    cols["srv"] = rng.integers(0, len(vocabulary("srv")), 200).astype(np.uint8)
    cols["response_code"] = rng.integers(0, len(RESPONSE_CODES), 200).astype(np.uint8)
    path = tmp_path / "requests.arrow"
    with ArrowLogWriter(path, REQUESTS_SCHEMA, META, dictionaries={"role": ROLES[::-1]}) as log:
        log.write_rows(RequestRows(**cols))
    table = read_log(path)
    for column in REQUEST_COLUMNS:
        if column.vocabulary is None:
            continue
        names = ROLES[::-1] if column.name == "role" else vocabulary(column.vocabulary)
        got = table.column(column.name).combine_chunks().dictionary.to_pylist()
        assert got == list(names), column.name
        assert table.column(column.name).to_pylist() == [names[c] for c in cols[column.name].tolist()]


def test_write_rows_writes_the_columns_of_a_rows_object(tmp_path: Path, rng: np.random.Generator) -> None:
    cols = alert_columns(rng, 40)
    a, b = tmp_path / "rows.arrow", tmp_path / "columns.arrow"
    with ArrowLogWriter(a, ALERTS_SCHEMA, META) as log:
        log.write_rows(AlertRows(**cols))
    with ArrowLogWriter(b, ALERTS_SCHEMA, META) as log:
        log.write_columns(**cols)
    assert a.read_bytes() == b.read_bytes()
    assert_table_equals_columns(read_log(a), cols)


def test_bad_batches_and_arguments_are_rejected(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "alerts.arrow"
    with pytest.raises(LogError, match="compression: expected 'lz4', 'zstd' or None, got 'gzip'"):
        ArrowLogWriter(path, ALERTS_SCHEMA, META, compression="gzip")  # type: ignore[arg-type]
    with pytest.raises(LogError, match="max_batch_rows: expected a positive count, got 0"):
        ArrowLogWriter(path, ALERTS_SCHEMA, META, max_batch_rows=0)
    cols = alert_columns(rng, 5)
    with ArrowLogWriter(tmp_path / "typed.arrow", ALERTS_SCHEMA, META) as typed:
        typed.write_columns(**cols)
    ordered = read_log(tmp_path / "typed.arrow").to_batches()[0]
    good = ordered.select(sorted(ALERTS_SCHEMA.names))
    with ArrowLogWriter(path, ALERTS_SCHEMA, META) as log:
        with pytest.raises(LogError, match=r"batch: expected columns \['t_ns', "):
            log.write_batch(good)  # columns in another order
        log.write_batch(ordered)
        other = ordered.set_column(
            3, "action", pa.DictionaryArray.from_arrays(pa.array(cols["action"]), ["a", "b", "c"])
        )
        with pytest.raises(LogError, match="'action': expected the log's fixed dictionary"):
            log.write_batch(other)
        wide = ordered.set_column(0, "t_ns", pa.array(cols["t_ns"]))
        with pytest.raises(LogError, match=r"batch column 't_ns': expected type timestamp\[ns, tz=UTC\], got int64"):
            log.write_batch(wide)
        codes = pa.DictionaryArray.from_arrays(pa.array(np.zeros(5, np.uint16)), ["8F84"])
        with pytest.raises(LogError, match="'alert_code': expected the log's fixed dictionary"):
            log.write_batch(ordered.set_column(2, "alert_code", codes))
        holes = ordered.set_column(0, "t_ns", pa.array([1, None, 3, 4, 5], pa.int64()).view(logs.TIMESTAMP))
        with pytest.raises(LogError, match="'t_ns': expected no nulls, got 1"):
            log.write_batch(holes)
        with pytest.raises(LogError, match="batch: expected a pyarrow.RecordBatch, got dict"):
            log.write_batch(cols)  # type: ignore[arg-type]
    assert log.rows == 5
    with pytest.raises(LogError, match="the log is closed"):
        log.write_columns(**cols)
    log.close()  # idempotent


# --- determinism -----------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_fixed(path: Path, compression: Any) -> None:
    rng = np.random.default_rng(99)
    write_requests(
        path, [request_columns(rng, 20_000), request_columns(rng, 7)], compression=compression
    )


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_same_input_gives_the_same_bytes(tmp_path: Path, compression: Any) -> None:
    _write_fixed(tmp_path / "a.arrow", compression)
    _write_fixed(tmp_path / "b.arrow", compression)
    assert _digest(tmp_path / "a.arrow") == _digest(tmp_path / "b.arrow")


def test_same_bytes_in_another_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_logs import _write_fixed
        for c in (None, "lz4", "zstd"):
            _write_fixed(Path({str(tmp_path)!r}) / f"child-{{c}}.arrow", c)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for c in COMPRESSIONS:
        _write_fixed(tmp_path / f"parent-{c}.arrow", c)
        assert _digest(tmp_path / f"parent-{c}.arrow") == _digest(tmp_path / f"child-{c}.arrow")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(logs)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_background_writer_gives_the_same_bytes(tmp_path: Path, rng: np.random.Generator, compression) -> None:
    chunks = [request_columns(rng, 500, seq0=500 * k) for k in range(6)]
    fore = tmp_path / "fore.arrow"
    back = tmp_path / "back.arrow"
    inline = write_requests(fore, chunks, compression=compression)
    with ArrowLogWriter(back, REQUESTS_SCHEMA, META, dictionaries=NAMES, compression=compression) as log:
        log.start_background(depth=2)
        for cols in chunks:
            log.write_columns(**cols)
    assert back.read_bytes() == fore.read_bytes()
    assert log.rows == 3000
    # the worker thread's CPU is counted (a run adds it to its log stage); inline writes are the caller's
    assert log.background_cpu_ns > 0 and inline.background_cpu_ns == 0
