"""The log records: one definition behind every producer, the sink contract and the Arrow schemas."""

from __future__ import annotations

import doctest
import inspect
import subprocess
import sys
import typing

import numpy as np
import pyarrow as pa
import pytest
from dccsim.bench.results import logs
from dccsim.bench.results.logs import ALERTS_SCHEMA, NULL_CODE, REQUESTS_SCHEMA, SCHEMA_VERSION
from dccsim.bench.results.runlog import RunSink
from dccsim.core import records
from dccsim.core.records import (
    ALERT_ACTIONS,
    ALERT_COLUMNS,
    REQUEST_COLUMNS,
    ROLES,
    AlertRows,
    Column,
    LogSink,
    RequestRows,
    vocabulary,
)

_CATEGORY = pa.dictionary(pa.uint8(), pa.string())


def _rows(cls: type[RequestRows] | type[AlertRows], n: int, start: int = 0) -> typing.Any:
    return cls(**{c.name: (np.arange(start, start + n) % 3).astype(c.dtype) for c in cls.COLUMNS})


# ---------------------------------------------------------------------------- schemas
_TYPED = {"time": logs.TIMESTAMP, "time_or_none": logs.TIMESTAMP, "duration": pa.duration("ns"),
          "eui": pa.string(), "alert_code": pa.dictionary(pa.uint16(), pa.string())}  # fmt: skip


@pytest.mark.parametrize(("schema", "columns"), [(REQUESTS_SCHEMA, REQUEST_COLUMNS), (ALERTS_SCHEMA, ALERT_COLUMNS)])
def test_each_schema_field_is_its_records_column(schema: pa.Schema, columns: tuple[Column, ...]) -> None:
    assert schema.names == [c.name for c in columns]
    assert schema.metadata is None
    for field, column in zip(schema, columns, strict=True):
        assert field.metadata is None, field.name
        if column.categorical:
            assert (field.type, field.nullable) == (_CATEGORY, True), field.name
        elif column.kind is not None:
            assert field.type == _TYPED[column.kind], field.name
            assert field.nullable == (column.kind == "time_or_none"), field.name
        else:
            assert not field.nullable, field.name
            assert np.dtype(field.type.to_pandas_dtype()) == column.dtype, field.name


def _f(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable or type_ == _CATEGORY)


_C = _CATEGORY
#: the schemas of version 1 of the logs (times, EUI-64s and alert codes as plain integers):
#: runs written then must still open (tests/test_log_types.py)
V1_REQUESTS = pa.schema(
    [
        _f("seq", pa.uint64()), _f("t_scheduled_ns", pa.int64()), _f("t_done_ns", pa.int64()),
        _f("device", pa.uint64()), _f("srv", _C), _f("role", _C), _f("command_variant", pa.uint8()),
        _f("outcome", _C), _f("response_code", _C), _f("latency_ns", pa.int64()), _f("within_target", pa.bool_()),
        _f("period_start_ns", pa.int64()), _f("period_end_ns", pa.int64()), _f("originator", pa.uint64()),
        _f("counter", pa.uint64()), _f("request_class", _C), _f("attempt", pa.uint8()), _f("invalid", _C),
        _f("wait_ns", pa.int64()), _f("backlog", pa.int64()),
    ]
)  # fmt: skip
V1_ALERTS = pa.schema(
    [
        _f("t_ns", pa.int64()), _f("device", pa.uint64()), _f("alert_code", pa.uint16()), _f("action", _C),
        _f("throttled_count", pa.uint32()), _f("sequence_id", pa.uint32()), _f("storm", pa.bool_()),
        _f("instruction", pa.uint16()), _f("total_instructions", pa.uint16()),
    ]
)  # fmt: skip


def test_the_schemas_are_as_version_2_of_the_logs() -> None:
    """The Arrow schemas, field by field as the logs of schema version 2 have them. A column
    added to or changed in the records fails here: bump SCHEMA_VERSION and update the lists."""
    ts, dur, eui = pa.timestamp("ns", tz="UTC"), pa.duration("ns"), pa.string()
    code = pa.dictionary(pa.uint16(), pa.string())
    requests = pa.schema(
        [
            _f("seq", pa.uint64()), _f("t_scheduled_ns", ts), _f("t_done_ns", ts),
            _f("device", eui), _f("srv", _C), _f("role", _C), _f("command_variant", pa.uint8()),
            _f("outcome", _C), _f("response_code", _C), _f("latency_ns", dur), _f("within_target", pa.bool_()),
            _f("period_start_ns", ts, True), _f("period_end_ns", ts, True), _f("originator", eui),
            _f("counter", pa.uint64()), _f("request_class", _C), _f("attempt", pa.uint8()), _f("invalid", _C),
            _f("wait_ns", dur), _f("backlog", pa.int64()),
        ]
    )  # fmt: skip
    alerts = pa.schema(
        [
            _f("t_ns", ts), _f("device", eui), _f("alert_code", code), _f("action", _C),
            _f("throttled_count", pa.uint32()), _f("sequence_id", pa.uint32()), _f("storm", pa.bool_()),
        ]
    )  # fmt: skip
    assert SCHEMA_VERSION == "2"
    assert REQUESTS_SCHEMA.equals(requests, check_metadata=True)
    assert ALERTS_SCHEMA.equals(alerts, check_metadata=True)
    assert REQUESTS_SCHEMA.serialize().to_pybytes() == requests.serialize().to_pybytes()
    assert ALERTS_SCHEMA.serialize().to_pybytes() == alerts.serialize().to_pybytes()


# ---------------------------------------------------------------------------- vocabularies
@pytest.mark.parametrize("column", [c for c in (*REQUEST_COLUMNS, *ALERT_COLUMNS) if c.categorical], ids=str)
def test_every_categorical_column_has_a_vocabulary_that_fits_its_codes(column: Column) -> None:
    names = vocabulary(column.vocabulary)  # type: ignore[arg-type]
    assert column.dtype == np.uint8
    assert 0 < len(names) < NULL_CODE  # 255 is null in the logs
    assert all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names)


def test_a_categorical_column_name_means_one_vocabulary_in_both_logs() -> None:
    """The log writer names a dictionary column by its name alone: that must be unambiguous."""
    seen: dict[str, str | None] = {}
    for c in (*REQUEST_COLUMNS, *ALERT_COLUMNS):
        if c.name in seen:
            assert seen[c.name] == c.vocabulary, c.name
        seen[c.name] = c.vocabulary
    assert logs._RECORD_VOCABULARIES == {n: v for n, v in seen.items() if v is not None}


def test_vocabularies_are_the_ones_the_rest_of_dccsim_uses() -> None:
    from dccsim.core.catalogue import catalogue
    from dccsim.core.messages import RoleName
    from dccsim.throttle import ACTIONS

    assert vocabulary("srv") == catalogue().srvs
    assert ALERT_ACTIONS is ACTIONS and vocabulary("action") is ACTIONS
    assert typing.get_args(RoleName) == ROLES
    with pytest.raises(KeyError, match="vocabulary: got 'cls', expected one of action, invalid, outcome"):
        vocabulary("cls")
    with pytest.raises(AttributeError, match="has no attribute 'ACTIONS'"):
        records.ACTIONS  # noqa: B018


def test_importing_the_records_and_messages_does_not_load_numba() -> None:
    code = (
        "import sys, dccsim.core.records, dccsim.core.messages\n"
        "assert 'numba' not in sys.modules, 'numba loaded'\n"
        "from dccsim.core.records import ALERT_ACTIONS\n"
        "assert 'numba' in sys.modules and ALERT_ACTIONS == ('forwarded', 'throttled', 'excluded', 'reported')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- row objects
@pytest.mark.parametrize("cls", [RequestRows, AlertRows])
def test_rows_without_every_column_or_with_a_stray_one_cannot_be_built(cls: type[RequestRows]) -> None:
    full = _rows(cls, 3).columns()
    last = cls.COLUMNS[-1].name
    with pytest.raises(TypeError, match=f"missing 1 required keyword-only argument: '{last}'"):
        cls(**{k: v for k, v in full.items() if k != last})
    with pytest.raises(TypeError, match="unexpected keyword argument 'cls'"):
        cls(**full, cls=full[cls.COLUMNS[0].name])
    with pytest.raises(TypeError, match="positional"):
        cls(*full.values())  # type: ignore[misc]


def test_rows_keep_the_log_order_and_concatenate_in_order() -> None:
    a, b = _rows(RequestRows, 2), _rows(RequestRows, 3, start=2)
    both = RequestRows.concat([a, b])
    assert list(both.columns()) == [c.name for c in REQUEST_COLUMNS] == [name for name, _ in both]
    assert len(both) == 5
    for c in REQUEST_COLUMNS:
        got = getattr(both, c.name)
        assert got.dtype == c.dtype and got.tolist() == (np.arange(5) % 3).astype(c.dtype).tolist(), c.name


def test_the_records_doctest() -> None:
    assert doctest.testmod(records).failed == 0


# ---------------------------------------------------------------------------- the sink contract
def test_the_run_folder_sink_has_the_sink_contract_s_methods() -> None:
    for name in ("requests", "alerts", "progress"):
        want = inspect.signature(getattr(LogSink, name))
        got = inspect.signature(getattr(RunSink, name))
        assert list(got.parameters) == list(want.parameters), name
        assert [p.annotation for p in got.parameters.values()] == [p.annotation for p in want.parameters.values()]


def test_a_run_folder_sink_writes_the_rows_it_is_handed(tmp_path: typing.Any) -> None:
    sink = RunSink(tmp_path, "name = 'records'", 3, 0, compression=None)
    sink.requests(_rows(RequestRows, 4))
    sink.requests(_rows(RequestRows, 2, start=4))
    sink.alerts(_rows(AlertRows, 5))
    sink.close()
    req = logs.read_log(tmp_path / "requests.arrow")
    assert req.column("seq").to_pylist() == [0, 1, 2, 0, 1, 2]
    assert req.column("request_class").to_pylist() == [vocabulary("request_class")[i] for i in (0, 1, 2, 0, 1, 2)]
    assert logs.read_log(tmp_path / "alerts.arrow").column("action").to_pylist() == [
        ALERT_ACTIONS[i] for i in (0, 1, 2, 0, 1)
    ]
    assert (sink.tally.requests, sink.tally.alerts) == (6, 5)
