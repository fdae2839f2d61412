"""The readings cache's public surface: configuration, input checks, docs that run."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys

import dccsim.cache
import numpy as np
import pytest
from dccsim.cache import (
    BYTES_PER_ENTRY,
    MAX_CAPACITY,
    CacheConfigError,
    CacheError,
    CacheInputError,
    LookupResult,
    ReadingsCache,
    readings,
    reference,
    stats,
)

HOUR = 3_600 * 10**9
SEC = 10**9
DAY0 = 1_717_200_000 * SEC


def batch(n: int = 3, **override: np.ndarray) -> dict[str, np.ndarray]:
    cols = {
        "op": np.zeros(n, np.uint8),
        "t_ns": np.arange(n, dtype=np.int64),
        "device": np.arange(n, dtype=np.uint64),
        "srv": np.ones(n, np.uint8),
        "start_ns": np.full(n, DAY0, np.int64),
        "end_ns": np.full(n, DAY0 + 86_400 * SEC, np.int64),
        "code": np.zeros(n, np.uint8),
        "payload_ref": np.arange(n, dtype=np.uint32),
    }
    cols.update(override)
    return cols


def arr(values: list[int], dtype: type = np.int64) -> np.ndarray:
    return np.array(values, dtype=dtype)


def lookup_args(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: cols[k] for k in ("t_ns", "device", "srv", "start_ns", "end_ns")}


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize("hours", [24, 24.999, 72.001, 73, 0, -48, math.nan, math.inf])
def test_retention_outside_25_to_72_hours_is_a_clear_error(hours: float) -> None:
    with pytest.raises(CacheConfigError, match="retention_hours: expected 25 to 72 hours"):
        ReadingsCache(retention_hours=hours)


@pytest.mark.parametrize("hours", ["48", None, True, [48]])
def test_retention_that_is_not_a_number_is_a_clear_error(hours: object) -> None:
    with pytest.raises(CacheConfigError, match="retention_hours: expected a number of hours"):
        ReadingsCache(retention_hours=hours)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hours", "ns"), [(25, 25 * HOUR), (72, 72 * HOUR), (36.5, 36 * HOUR + HOUR // 2)]
)
def test_retention_is_kept_exactly_in_ns(hours: float, ns: int) -> None:
    assert ReadingsCache(retention_hours=hours).retention_ns == ns


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "10", MAX_CAPACITY + 1])
def test_bad_capacity_is_a_clear_error(capacity: object) -> None:
    with pytest.raises(CacheConfigError, match="capacity"):
        ReadingsCache(retention_hours=48, capacity=capacity)  # type: ignore[arg-type]
    with pytest.raises(CacheConfigError, match="initial_capacity"):
        ReadingsCache(retention_hours=48, initial_capacity=capacity)  # type: ignore[arg-type]


def test_config_errors_carry_key_value_and_expectation() -> None:
    with pytest.raises(CacheConfigError) as info:
        ReadingsCache(retention_hours=24)
    assert (info.value.key, info.value.value) == ("retention_hours", 24)
    assert info.value.expected == "25 to 72 hours (the Data Retention Period)"
    with pytest.raises(CacheConfigError) as info:
        ReadingsCache(retention_hours=48, capacity=MAX_CAPACITY + 1)
    assert (info.value.key, info.value.value) == ("capacity", MAX_CAPACITY + 1)
    assert info.value.expected == f"1 to {MAX_CAPACITY} entries"


def test_errors_are_value_errors() -> None:
    assert issubclass(CacheConfigError, CacheError) and issubclass(CacheInputError, CacheError)
    assert issubclass(CacheError, ValueError)


def test_memory_is_stated_and_within_budget() -> None:
    cache = ReadingsCache(retention_hours=72, capacity=1_000_000)
    s = cache.stats()
    assert s.capacity == 1_000_000 and s.nbytes == cache.nbytes
    assert s.bytes_per_entry == pytest.approx(BYTES_PER_ENTRY, abs=0.01)
    assert BYTES_PER_ENTRY <= 40
    assert 300e6 * BYTES_PER_ENTRY <= 12 * 2**30


def test_properties_and_repr() -> None:
    cache = ReadingsCache(retention_hours=30, capacity=10)
    assert cache.capacity == 10 and cache.clock_ns is None and len(cache) == 0
    assert "retention_hours=30" in repr(cache) and "capacity=10" in repr(cache)
    assert ReadingsCache(retention_hours=30).capacity is None
    cache.expire(5)
    assert cache.clock_ns == 5


# -- input checks ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argument", "bad"),
    [
        ("op", np.zeros(3, np.int64)),
        ("t_ns", np.zeros(3, np.uint64)),
        ("device", np.zeros(3, np.int64)),
        ("srv", np.zeros(3, np.int64)),
        ("start_ns", np.zeros(3, np.float64)),
        ("end_ns", np.zeros(3, np.int32)),
        ("code", np.zeros(3, np.uint16)),
        ("payload_ref", np.zeros(3, np.int64)),
    ],
)
def test_wrong_dtype_names_the_argument(argument: str, bad: np.ndarray) -> None:
    cache = ReadingsCache(retention_hours=48)
    with pytest.raises(CacheInputError, match=f"^{argument}: expected dtype") as info:
        cache.apply(**batch(**{argument: bad}))
    assert info.value.argument == argument


def test_wrong_shape_length_or_type_names_the_argument() -> None:
    cache = ReadingsCache(retention_hours=48)
    with pytest.raises(CacheInputError, match=r"^srv: expected 3 rows \(as t_ns\), got 2"):
        cache.apply(**batch(srv=np.ones(2, np.uint8)))
    with pytest.raises(CacheInputError, match=r"^device: expected a 1-D array"):
        cache.apply(**batch(device=np.zeros((3, 1), np.uint64)))
    rest = {k: v for k, v in lookup_args(batch()).items() if k != "t_ns"}
    with pytest.raises(CacheInputError, match="^t_ns: expected a 1-D numpy array of int64"):
        cache.lookup([1, 2, 3], **rest)  # type: ignore[arg-type]
    with pytest.raises(CacheInputError, match="^out.stored_ns"):
        bad = LookupResult.empty(3)._replace(stored_ns=np.zeros(3, np.int32))
        cache.lookup(**lookup_args(batch()), out=bad)
    with pytest.raises(CacheInputError, match="^out: expected a LookupResult"):
        cache.lookup(**lookup_args(batch()), out=(1, 2))  # type: ignore[arg-type]


def test_strided_inputs_are_accepted() -> None:
    cache = ReadingsCache(retention_hours=48)
    cols = batch(6)
    strided = {k: v[::2] for k, v in cols.items()}
    assert cache.apply(**strided).hit.shape == (3,)


@pytest.mark.parametrize(
    ("override", "argument", "row", "message"),
    [
        ({"op": arr([0, 2, 0], np.uint8)}, "op", 1, r"op\[1\] = 2: expected 0 \(lookup\) or 1"),
        (
            {"t_ns": arr([5, 4, 6])}, "t_ns", 1,
            r"t_ns\[1\] = 4 is earlier than the operation before it \(5\)",
        ),
        ({"t_ns": arr([0, 1, 2**62])}, "t_ns", 2, r"t_ns\[2\] = \d+: expected \|t\| < 2\*\*62"),
        ({"start_ns": arr([DAY0, -SEC, DAY0])}, "start_ns", 1, r"at or after 1970"),
        ({"start_ns": arr([DAY0, DAY0 + 1, DAY0])}, "start_ns", 1, r"expected whole seconds"),
        (
            {"end_ns": arr([DAY0, DAY0, DAY0 + 500])}, "end_ns", 2,
            r"end_ns\[2\] = \d+: expected whole seconds",
        ),
        (
            {"end_ns": arr([DAY0 - SEC, DAY0, DAY0])}, "end_ns", 0,
            r"expected start_ns <= end_ns < start_ns \+ 2\*\*29 s",
        ),
        ({"end_ns": arr([DAY0, DAY0 + 2**29 * SEC, DAY0])}, "end_ns", 1, r"2\*\*29 s"),
    ],
)
def test_bad_values_name_argument_and_row_and_apply_nothing(
    override: dict[str, np.ndarray], argument: str, row: int, message: str
) -> None:
    cache = ReadingsCache(retention_hours=48)
    cache.store(**{k: v for k, v in batch(3, t_ns=np.zeros(3, np.int64)).items() if k != "op"})
    before = cache.stats()
    with pytest.raises(CacheInputError, match=message) as info:
        cache.apply(**batch(3, **override))
    assert (info.value.argument, info.value.row) == (argument, row)
    assert "nothing in this batch was applied" in str(info.value)
    assert cache.stats() == before and cache.clock_ns == 0


def test_time_may_not_go_back_across_batches() -> None:
    cache = ReadingsCache(retention_hours=48)
    cache.lookup(**lookup_args(batch(t_ns=np.array([10, 20, 30], np.int64))))
    message = r"t_ns\[0\] = 29 is earlier than the operation before it \(30\)"
    with pytest.raises(CacheInputError, match=message):
        cache.lookup(**lookup_args(batch(t_ns=np.array([29, 40, 50], np.int64))))
    with pytest.raises(CacheInputError, match="earlier than the cache clock 30"):
        cache.expire(29)
    with pytest.raises(CacheInputError, match="t_ns: expected an int"):
        cache.expire(30.0)  # type: ignore[arg-type]
    with pytest.raises(CacheInputError, match="outside"):
        cache.expire(2**62)
    cache.lookup(**lookup_args(batch(t_ns=np.array([30, 30, 31], np.int64))))  # equal is fine


def test_preallocated_outputs_are_filled_in_place() -> None:
    cache = ReadingsCache(retention_hours=48)
    cols = batch(3, op=np.array([1, 0, 0], np.uint8), device=np.array([5, 5, 6], np.uint64))
    out = LookupResult.empty(3)
    got = cache.apply(**cols, out=out)
    assert got is out
    assert out.hit.tolist() == [False, True, False]
    assert out.payload_ref.tolist() == [0, 0, 0] and out.stored_ns.tolist() == [0, 0, 0]


# -- docs and packaging ----------------------------------------------------------------------
@pytest.mark.parametrize("module", [readings, stats, reference])
def test_docstring_examples_run(module: object) -> None:
    flags = doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_public_surface() -> None:
    for name in dccsim.cache.__all__:
        assert hasattr(dccsim.cache, name), name


def test_import_compiles_nothing() -> None:
    code = (
        "import dccsim.cache, dccsim.cache._kernels as K; "
        "kernels = (K.run_ops, K.prepare, K.expire, K.rebuild); "
        "print(sum(len(getattr(f, 'signatures', ())) for f in kernels))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_warm_up_compiles_every_entry_point() -> None:
    from dccsim.cache import _kernels as K

    ReadingsCache.warm_up()
    if hasattr(K.run_ops, "signatures"):  # absent when NUMBA_DISABLE_JIT=1
        for kernel in (K.run_ops, K.prepare, K.expire, K.rebuild):
            assert kernel.signatures, kernel
