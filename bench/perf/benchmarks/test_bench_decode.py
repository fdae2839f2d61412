"""Decoding a request batch into columns: MessagePack (ours) against json + dataclasses.

The same bytes-to-columns work as ``python -m dccsim.bench.perf.decode``, whose fixtures and
reference this reuses: N requests in, a :class:`RequestBatch` of NumPy columns out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dccsim.bench.perf.decode import json_reference, make_rows
from dccsim.core import wire
from dccsim.core.columns import RequestBatch
from dccsim.core.wire import decode_rows

N = 50_000
_CHECKED = ("device", "originator", "counter", "srv", "role", "period_start_ns", "t_scheduled_ns")


@pytest.fixture(scope="module")
def payloads() -> tuple[bytes, bytes, RequestBatch]:
    rows = make_rows(N)
    packed = wire.encode_rows(rows)
    as_json = json.dumps([{f: getattr(r, f) for f in r.__struct_fields__} for r in rows]).encode()
    expected = json_reference(as_json)
    RequestBatch.from_msgpack(packed)  # compile (or load) the Numba parser outside any timing
    return packed, as_json, expected


def _same(batch: RequestBatch, expected: RequestBatch) -> bool:
    return all(np.array_equal(getattr(batch, k), getattr(expected, k)) for k in _CHECKED)


def test_decode_msgpack_numba(benchmark, payloads) -> None:  # type: ignore[no-untyped-def]
    packed, _, expected = payloads
    benchmark.group = "decode"
    benchmark.extra_info.update(role="ours", requests=N)
    assert _same(benchmark(RequestBatch.from_msgpack, packed), expected)


def test_decode_msgpack_msgspec_rows(benchmark, payloads) -> None:  # type: ignore[no-untyped-def]
    packed, _, expected = payloads
    benchmark.group = "decode"
    benchmark.extra_info.update(role="ours", requests=N)
    assert _same(benchmark(lambda: RequestBatch.from_rows(decode_rows(packed))), expected)


@pytest.mark.reference
def test_decode_json_dataclasses(benchmark, payloads) -> None:  # type: ignore[no-untyped-def]
    _, as_json, expected = payloads
    benchmark.group = "decode"
    benchmark.extra_info.update(role="reference", requests=N)
    assert _same(benchmark(json_reference, as_json), expected)
