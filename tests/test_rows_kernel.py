"""The compact row parser's string tables: every SRV and role found, anything else refused."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from dccsim.core import _kernels
from dccsim.core.catalogue import catalogue
from dccsim.core.columns import RequestBatch, _string_tables
from dccsim.core.errors import MessageError
from dccsim.core.records import ROLE_UNKNOWN, ROLES


def _parse(rows: list[list[object]]) -> tuple[int, np.ndarray]:
    buf = np.frombuffer(msgspec.msgpack.encode(rows), np.uint8)
    u64, u8, i64 = (
        np.zeros((3, len(rows)), np.uint64),
        np.zeros((3, len(rows)), np.uint8),
        np.zeros((4, len(rows)), np.int64),
    )
    return _kernels.parse_rows(buf, *_string_tables(), u64, u8, i64)[0], u8


def test_every_srv_and_role_is_found_under_its_code() -> None:
    srvs = catalogue().srvs
    roles = [*ROLES, ""]
    rows = [
        [1 << 40, 1 << 41, k + 1, 1, srvs[k % len(srvs)], roles[k % len(roles)]]
        for k in range(max(len(srvs), len(roles)) * 2)
    ]
    status, u8 = _parse(rows)
    assert status == _kernels.OK
    want_srv = [catalogue().code_of[r[4]] for r in rows]
    want_role = [ROLES.index(r[5]) if r[5] else ROLE_UNKNOWN for r in rows]
    assert u8[1].tolist() == want_srv
    assert u8[2].tolist() == want_role


@pytest.mark.parametrize("srv", ["4.8.2x", "9.9.9", "", "4.8.1 ", "0123456"])
def test_an_unknown_srv_is_refused(srv: str) -> None:
    status, _ = _parse([[1 << 40, 1 << 41, 1, 1, srv, ""]])
    assert status == _kernels.UNKNOWN_STRING
    with pytest.raises(MessageError):
        RequestBatch.from_msgpack(msgspec.msgpack.encode([[1 << 40, 1 << 41, 1, 1, srv, ""]]))


def test_the_table_has_room_and_no_key_equals_the_empty_slot() -> None:
    keys, codes = _kernels.string_table({"a": 1, "bb": 2, "": 3})
    assert len(keys) >= 12 and len(keys) & (len(keys) - 1) == 0
    assert sorted(codes[keys != _kernels.EMPTY].tolist()) == [1, 2, 3]
    assert (codes[keys == _kernels.EMPTY] == -1).all()
