"""The run tally's one-pass kernels against their whole-array NumPy definitions."""

from __future__ import annotations

import numpy as np
from dccsim.bench.results.summary import INTERVAL_NS, RunTally
from dccsim.core.records import (
    ALERT_ACTIONS,
    INVALID_KINDS,
    OUTCOMES,
    REQUEST_CLASSES,
    RESPONSE_CODES,
    AlertRows,
    RequestRows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

DAY0 = 1_700_000_000 * 1_000_000_000
N_SRVS = 7


def _plain(v: object) -> object:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (int, float, str, np.generic)) or v is None:
        return v.item() if isinstance(v, np.generic) else v
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    slots = getattr(type(v), "__slots__", ())
    fields = vars(v) if hasattr(v, "__dict__") else {k: getattr(v, k) for k in slots}
    return {k: _plain(x) for k, x in fields.items()}


def _state(t: RunTally) -> object:
    """Everything the tally holds: counts, series, peaks and the histograms' buckets."""
    return _plain(t)


def _requests(seed: int, n: int, spread: int) -> RequestRows:
    rng = np.random.default_rng(seed)
    t = DAY0 + rng.integers(-2 * INTERVAL_NS, spread * INTERVAL_NS, n).astype(np.int64)
    t.sort()
    u8 = lambda k: rng.integers(0, k, n).astype(np.uint8)  # noqa: E731
    return RequestRows(
        seq=np.arange(n, dtype=np.uint64),
        t_scheduled_ns=t,
        t_done_ns=t + rng.integers(0, 200 * INTERVAL_NS, n),
        device=rng.integers(0, 50, n).astype(np.uint64),
        srv=u8(N_SRVS),
        role=u8(3),
        command_variant=u8(8),
        outcome=u8(len(OUTCOMES)),
        response_code=u8(len(RESPONSE_CODES)),
        latency_ns=rng.integers(-5, 10**12, n).astype(np.int64),
        within_target=rng.random(n) < 0.5,
        period_start_ns=np.zeros(n, np.int64),
        period_end_ns=np.zeros(n, np.int64),
        originator=np.zeros(n, np.uint64),
        counter=np.zeros(n, np.uint64),
        request_class=u8(int(rng.integers(1, len(REQUEST_CLASSES) + 1))),
        attempt=u8(3),
        invalid=u8(len(INVALID_KINDS)),
        wait_ns=rng.integers(0, 10**9, n).astype(np.int64),
        backlog=rng.integers(-3, 1000, n).astype(np.int64),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(0, 300), min_size=1, max_size=4),
       spread=st.integers(1, 300))  # fmt: skip
def test_request_tally_kernel_matches_the_numpy_definition(seed: int, sizes: list[int], spread: int) -> None:
    fast, ref = RunTally(DAY0, N_SRVS), RunTally(DAY0, N_SRVS)
    for i, n in enumerate(sizes):
        rows = _requests(seed + i, n, spread)
        fast.record_requests(rows)
        ref.record_requests_reference(rows)
    assert _state(fast) == _state(ref)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(0, 300), min_size=1, max_size=4),
       spread=st.integers(1, 300))  # fmt: skip
def test_alert_tally_kernel_matches_the_numpy_definition(seed: int, sizes: list[int], spread: int) -> None:
    fast, ref = RunTally(DAY0, N_SRVS), RunTally(DAY0, N_SRVS)
    for i, n in enumerate(sizes):
        rng = np.random.default_rng(seed + i)
        t = np.sort(DAY0 + rng.integers(-2 * INTERVAL_NS, spread * INTERVAL_NS, n)).astype(np.int64)
        rows = AlertRows(
            t_ns=t,
            device=rng.integers(0, 20, n).astype(np.uint64),
            alert_code=np.full(n, 0x8F84, np.uint16),
            action=rng.integers(0, len(ALERT_ACTIONS), n).astype(np.uint8),
            throttled_count=np.zeros(n, np.uint32),
            sequence_id=np.zeros(n, np.uint32),
            storm=rng.random(n) < 0.3,
        )
        fast.record_alerts(rows)
        ref.record_alerts_reference(rows)
    assert _state(fast) == _state(ref)
