"""Request batches as columns: from Structs, from a MessagePack batch, to and from Arrow."""

from __future__ import annotations

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from dccsim.core import _kernels, wire
from dccsim.core.catalogue import catalogue
from dccsim.core.columns import COLUMN_DTYPES, RequestBatch, _batch_length, _string_tables
from dccsim.core.duisxml import decode_request_xml
from dccsim.core.errors import MessageError
from dccsim.core.messages import RequestRow, to_ns
from dccsim.core.records import ROLES
from hypothesis import given, settings
from hypothesis import strategies as st


def _rows(rng: np.random.Generator, n: int) -> list[RequestRow]:
    srvs = ["4.6.1", "4.8.1", "4.8.3", "11.2"]
    return [
        RequestRow(
            originator=0x90B3D51F30010000 + int(rng.integers(4)),
            target=int(rng.integers(2**63, 2**64 - 1, dtype=np.uint64)),
            counter=i + 1,
            command_variant=1,
            srv=srvs[i % 4],
            role="MDR" if i % 4 < 3 else "IS",
            t_scheduled_ns=i * 1000,
            period_start_ns=i,
            period_end_ns=i + 86_400 * 10**9,
        )
        for i in range(n)
    ]


def test_msgpack_batch_to_columns(rng) -> None:
    rows = _rows(rng, 500)
    batch = RequestBatch.from_msgpack(wire.encode_rows(rows))
    assert len(batch) == 500
    assert batch.device.dtype == np.uint64 and int(batch.device[7]) == rows[7].target
    assert [catalogue().srvs[c] for c in batch.srv[:4]] == ["4.6.1", "4.8.1", "4.8.3", "11.2"]
    assert batch.to_rows() == rows


def test_arrow_round_trip_shares_memory(rng) -> None:
    batch = RequestBatch.from_rows(_rows(rng, 100))
    rb = batch.to_arrow()
    assert rb.schema.names == list(COLUMN_DTYPES)
    back = RequestBatch.from_arrow(rb)
    for k in COLUMN_DTYPES:
        np.testing.assert_array_equal(getattr(back, k), getattr(batch, k))
    # zero copy both ways for fixed-width columns
    assert back.device.ctypes.data == batch.device.ctypes.data
    assert np.shares_memory(back.period_start_ns, batch.period_start_ns)


def test_from_requests_fills_period(templates) -> None:
    req = decode_request_xml(next(p for p in templates if "ECS22b_4.8.1" in p.name).read_bytes())
    b = RequestBatch.from_requests([req], t_scheduled_ns=[5])
    assert b.period_start_ns[0] == to_ns(req.period.start) and b.t_scheduled_ns[0] == 5
    assert b.device[0] == 0x00DB1234567890A0 and b.counter[0] == 1003


def test_bad_columns_are_named() -> None:
    with pytest.raises(TypeError, match=r"RequestBatch.srv: got ndarray int64"):
        RequestBatch(**{k: np.zeros(2, dtype=d) for k, d in COLUMN_DTYPES.items()} | {"srv": np.zeros(2, np.int64)})
    with pytest.raises(MessageError, match="srv"):
        RequestBatch.from_rows(
            [RequestRow(originator=1, target=2, counter=3, command_variant=1, srv="99.9", role="IS")]
        )
    with pytest.raises(ValueError, match="missing column 'device'"):
        RequestBatch.from_arrow(pa.RecordBatch.from_pydict({"x": [1]}))


_srv_names = st.sampled_from(["4.6.1", "4.8.1", "4.8.3", "11.2", "8.11", "1.1.1", "6.15.1", "99.1", ""])
_role_names = st.sampled_from([*ROLES, "", "XX", "ISSUER"])
_u64 = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1), st.integers(-5, -1))
_i64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-200, 200), st.integers(2**63, 2**64 - 1))
_row = st.tuples(
    _u64,
    _u64,
    _u64,
    st.one_of(st.integers(0, 8), st.integers(-3, 300)),
    _srv_names,
    _role_names,
    _i64,
    _i64,
    _i64,
    _i64,
)


# rows both parsers take, so that most batches are compared column by column
_valid_row = st.tuples(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(1, 8),
    st.sampled_from(["4.6.1", "4.8.1", "4.8.3", "11.2", "8.11", "6.15.1"]),
    st.sampled_from([*ROLES, ""]),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.one_of(
        st.lists(st.one_of(_row, st.tuples(st.just("not"), st.just("a row"))), max_size=25),
        st.lists(_valid_row, min_size=1, max_size=25),
    ),
    keep=st.integers(6, 10),
    cut=st.integers(0, 3),
)
def test_numba_msgpack_parser_matches_msgspec(rows, keep, cut) -> None:
    """The fast parser and the msgspec path accept the same batches and give the same columns."""
    data = msgspec.msgpack.encode([list(r)[:keep] if len(r) == 10 else list(r) for r in rows])
    if cut:
        data = data[: max(0, len(data) - cut)]
    try:
        expected = RequestBatch.from_rows(wire.decode_rows(data))
    except MessageError:
        expected = None
    # the compact parser on its own (from_msgpack falls back to msgspec, so it cannot tell)
    buf = np.frombuffer(data, np.uint8)
    n = _batch_length(buf)
    if n >= 0:
        u64, u8, i64 = np.empty((3, n), np.uint64), np.empty((3, n), np.uint8), np.empty((4, n), np.int64)
        status = _kernels.parse_rows(buf, *_string_tables(), u64, u8, i64)[0]
        assert (status == _kernels.OK) == (expected is not None), status
        if expected is not None:
            parsed = RequestBatch.from_parsed(u64, u8, i64)
            for k in COLUMN_DTYPES:
                np.testing.assert_array_equal(getattr(parsed, k), getattr(expected, k), err_msg=k)
    else:
        assert expected is None
    if expected is None:
        with pytest.raises(MessageError):
            RequestBatch.from_msgpack(data)
        return
    got = RequestBatch.from_msgpack(data)
    for k in COLUMN_DTYPES:
        np.testing.assert_array_equal(getattr(got, k), getattr(expected, k), err_msg=k)


def test_numba_parser_is_used_for_good_batches(rng, monkeypatch) -> None:
    data = wire.encode_rows(_rows(rng, 50))
    monkeypatch.setattr("dccsim.core.columns.decode_rows", lambda _: pytest.fail("fell back to msgspec"))
    assert len(RequestBatch.from_msgpack(data)) == 50
