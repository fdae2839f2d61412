"""The state table's own kernels: in-place compaction and growth keep every key findable.

The differential tests reach these only through ``Throttle`` at load 0.5 or less; here tiny
tables are filled up to 15/16 so that probe clusters are long and wrap around the end.
"""

from __future__ import annotations

import numpy as np
from dccsim.throttle import _kernels as k
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_000
WINDOW = 10


def insert(table: np.ndarray, device: int, code: int, words: tuple[int, int, int, int]) -> None:
    mask = np.uint64(table.shape[0] - 1)
    with np.errstate(over="ignore"):
        s = k._find(table, np.uint64(device), np.uint16(code), mask)
    assert table[s, k.META] == 0
    meta, ta, last, counts = words
    table[s] = (
        np.uint64(device).view(np.int64) if device >= 2**63 else device,
        meta,
        ta,
        last,
        counts,
    )


def find(table: np.ndarray, device: int, code: int) -> int:
    with np.errstate(over="ignore"):
        return int(
            k._find(table, np.uint64(device), np.uint16(code), np.uint64(table.shape[0] - 1))
        )


keys_strategy = st.tuples(
    st.sampled_from([0, 1, 2, 3, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1),
    st.sampled_from([0x8F84, 0x8F12, 0]),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(bits=st.integers(2, 6), data=st.data())
def test_compact_drops_stale_records_and_keeps_the_rest_findable(
    bits: int, data: st.DataObject
) -> None:
    slots = 1 << bits
    n = data.draw(st.integers(0, slots - 1))
    keys = data.draw(st.lists(keys_strategy, min_size=n, max_size=n, unique=True))
    # what makes a record stale: window over, no sequence number, nothing pending
    kinds = data.draw(
        st.lists(
            st.sampled_from(["stale", "in-window", "sequence", "pending"]), min_size=n, max_size=n
        )
    )
    table = np.zeros((slots, k.WORDS), np.int64)
    code_class = np.ones(1 << 16, np.uint8)
    params = np.array([(0, 0, 0, 0), (3, WINDOW, 5, 3)], np.int64)
    records = {}
    for (device, code), kind in zip(keys, kinds, strict=True):
        meta = code | int(k.OCCUPIED) | ((7 << 32) if kind == "sequence" else 0)
        ta = NOW - (1 if kind == "in-window" else WINDOW)
        counts = (2 << 32) if kind == "pending" else 1
        words = (meta, ta, NOW - 3, counts)
        insert(table, device, code, words)
        records[(device, code)] = (kind, words)
    before = table.copy()
    with np.errstate(over="ignore"):  # the hash wraps on purpose (matters with the JIT off)
        kept = k.compact(table, k.FIXED_WINDOW, code_class, params, NOW)
    live = {key: w for key, (kind, w) in records.items() if kind != "stale"}
    assert kept == len(live) == int((table[:, k.META] != 0).sum())
    for (device, code), (kind, words) in records.items():
        s = find(table, device, code)
        if kind == "stale":
            assert table[s, k.META] == 0, "a stale record survived"
        else:
            assert tuple(table[s, 1:]) == words, "a live record is lost or changed"
    # nothing stale at all: compaction leaves the table as it was
    if all(kind != "stale" for kind, _ in records.values()):
        np.testing.assert_array_equal(table, before)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(bits=st.integers(2, 5), data=st.data())
def test_rebuild_into_a_larger_table_keeps_every_record(bits: int, data: st.DataObject) -> None:
    slots = 1 << bits
    keys = data.draw(st.lists(keys_strategy, max_size=slots - 1, unique=True))
    table = np.zeros((slots, k.WORDS), np.int64)
    for i, (device, code) in enumerate(keys):
        insert(table, device, code, (code | int(k.OCCUPIED) | (i << 32), i, -i, i * 3))
    new = np.zeros((slots * 2, k.WORDS), np.int64)
    with np.errstate(over="ignore"):
        k.rebuild(table, new)
    assert int((new[:, k.META] != 0).sum()) == len(keys)
    for i, (device, code) in enumerate(keys):
        s = find(new, device, code)
        assert tuple(new[s, 1:]) == (code | int(k.OCCUPIED) | (i << 32), i, -i, i * 3)


def test_gcra_records_are_stale_once_the_bucket_has_drained() -> None:
    assert k._stale(int(k.OCCUPIED), 0, NOW, WINDOW, k.GCRA, NOW)
    assert not k._stale(int(k.OCCUPIED), 0, NOW + 1, WINDOW, k.GCRA, NOW)
    assert not k._stale(int(k.OCCUPIED) | (1 << 32), 0, 0, WINDOW, k.GCRA, NOW)
    assert k._stale(int(k.OCCUPIED), 0, NOW - WINDOW, WINDOW, k.FIXED_WINDOW, NOW)
    assert not k._stale(int(k.OCCUPIED), 0, NOW - WINDOW + 1, WINDOW, k.FIXED_WINDOW, NOW)
