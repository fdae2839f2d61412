"""Alert Storm Protection: the Numba kernels (ours) against the plain-Python reference, the
memory-bound gather/scatter limit, and the tuning sweep against one throttle per setting.

The trace is :func:`dccsim.loadgen.alert_trace.make_alert_trace` at a suite-friendly size
(the full-size figures come from ``python -m dccsim.bench.perf.throttle``). Each timed
call's outputs are checked against the reference's.

Groups (one reference each):

- ``throttle``: ``Throttle.process`` over the whole trace into a fresh, presized throttle,
  against :class:`~dccsim.throttle.ReferenceThrottle` on the same alerts.
- ``throttle-memory``: the kernel call on a larger trace (``MEM_ALERTS`` alerts over
  ``MEM_DEVICES`` devices, so the state is well past the caches) against a plain Numba
  gather/scatter pass over the same arrays and a state table of the same size (the
  memory-bound limit); the ratio says how close to it the kernel runs.
- ``throttle-floor``: the kernel, both policies, on the larger trace against the prefetched
  gather/scatter floor (``gather_scatter`` with a prefetch 16 alerts ahead), the yardstick of
  ``python -m dccsim.bench.perf.throttle``.
- ``throttle-sweep``: :func:`~dccsim.throttle.sweep` of a 3 x 2 x 2 grid (several settings
  per pass over dense keys) against one throttle per setting, scored the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from dccsim.bench.perf.throttle import POLICY, gather_scatter
from dccsim.loadgen.alert_trace import make_alert_trace
from dccsim.throttle import (
    ReferenceThrottle,
    Throttle,
    ThrottleOutput,
    ThrottlePolicy,
    TuningGrid,
    sweep,
)
from dccsim.throttle.policy import compile_policy
from dccsim.throttle.tuning import dense_keys, warm_up

ALERTS = 200_000
DEVICES = 20_000
STORMS = 20
MEM_ALERTS = 2_000_000
MEM_DEVICES = 500_000


def _trace(alerts: int, devices: int) -> tuple[tuple[np.ndarray, ...], ThrottleOutput, int]:
    tr = make_alert_trace(alerts, devices, STORMS, seed=3)
    cols = (tr.t_ns, tr.device, tr.alert_code)
    Throttle.warm_up()  # compile (or load) the kernels outside any timing
    warm_up()
    _, keys = dense_keys(tr.device, tr.alert_code, compile_policy(POLICY).code_class)
    expected = Throttle(POLICY, initial_keys=keys).process(*cols)
    return cols, expected, keys


@pytest.fixture(scope="module")
def trace() -> tuple[tuple[np.ndarray, ...], ThrottleOutput, int]:
    return _trace(ALERTS, DEVICES)


@pytest.fixture(scope="module")
def big_trace() -> tuple[tuple[np.ndarray, ...], ThrottleOutput, int]:
    return _trace(MEM_ALERTS, MEM_DEVICES)


def _fresh(cols: tuple[np.ndarray, ...], keys: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    th = Throttle(POLICY, initial_keys=keys)
    th._table.fill(0)  # touch the pages outside the timing
    return (th, cols, ThrottleOutput.empty(len(cols[0]))), {}


def _process(th: Throttle, cols: tuple[np.ndarray, ...], out: ThrottleOutput) -> ThrottleOutput:
    return th.process(*cols, out=out)


def _check(out: ThrottleOutput, expected: ThrottleOutput) -> None:
    for got, want in zip(out, expected, strict=True):
        assert np.array_equal(got, want)


def test_throttle_kernel(benchmark, trace) -> None:  # type: ignore[no-untyped-def]
    cols, expected, keys = trace
    benchmark.group = "throttle"
    benchmark.extra_info.update(role="ours", alerts=ALERTS, devices=DEVICES)
    out = benchmark.pedantic(_process, setup=lambda: _fresh(cols, keys), rounds=15)
    _check(out, expected)


@pytest.mark.reference
def test_throttle_reference(benchmark, trace) -> None:  # type: ignore[no-untyped-def]
    cols, expected, _ = trace
    benchmark.group = "throttle"
    benchmark.extra_info.update(role="reference", alerts=ALERTS, devices=DEVICES)
    out = benchmark.pedantic(lambda: ReferenceThrottle(POLICY).process(*cols), rounds=3)
    _check(out, expected)


def test_throttle_kernel_big(benchmark, big_trace) -> None:  # type: ignore[no-untyped-def]
    cols, expected, keys = big_trace
    benchmark.group = "throttle-memory"
    benchmark.extra_info.update(role="ours", alerts=MEM_ALERTS, devices=MEM_DEVICES)
    out = benchmark.pedantic(_process, setup=lambda: _fresh(cols, keys), rounds=9)
    _check(out, expected)


@pytest.mark.reference
def test_throttle_memory_limit(benchmark, big_trace) -> None:  # type: ignore[no-untyped-def]
    cols, _, keys = big_trace
    table = Throttle(POLICY, initial_keys=keys)._table
    out = ThrottleOutput.empty(len(cols[0]))
    gather_scatter(*cols, table, *out)  # compile outside the timing
    benchmark.group = "throttle-memory"
    benchmark.extra_info.update(role="reference", alerts=MEM_ALERTS, devices=MEM_DEVICES)
    benchmark.pedantic(
        gather_scatter, args=(*cols, table, *out), setup=lambda: table.fill(0), rounds=9
    )
    assert int(table[:, 4].astype(bool).sum()) > 0  # it did touch the state


GCRA = ThrottlePolicy(**{**POLICY.to_dict(), "policy": "gcra", "overrides": {}})


@pytest.mark.parametrize("policy", [POLICY, GCRA], ids=["fixed-window", "gcra"])
def test_throttle_kernel_against_floor(benchmark, big_trace, policy) -> None:  # type: ignore[no-untyped-def]
    cols, expected, keys = big_trace
    benchmark.group = "throttle-floor"
    benchmark.extra_info.update(role="ours", alerts=MEM_ALERTS, devices=MEM_DEVICES, policy=policy.policy)

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        th = Throttle(policy, initial_keys=keys)
        th._table.fill(0)  # touch the pages outside the timing
        return (th, cols, ThrottleOutput.empty(len(cols[0]))), {}

    out = benchmark.pedantic(_process, setup=fresh, rounds=9)
    if policy is POLICY:
        _check(out, expected)


@pytest.mark.reference
def test_throttle_prefetched_floor(benchmark, big_trace) -> None:  # type: ignore[no-untyped-def]
    """The floor ``python -m dccsim.bench.perf.throttle`` prints: one prefetched random record
    per alert, no logic (the kernel's target: >= 60% of its speed, both policies)."""
    cols, _, keys = big_trace
    table = Throttle(POLICY, initial_keys=keys)._table
    out = ThrottleOutput.empty(len(cols[0]))
    gather_scatter(*cols, table, *out, 16)  # compile outside the timing
    benchmark.group = "throttle-floor"
    benchmark.extra_info.update(role="reference", alerts=MEM_ALERTS, devices=MEM_DEVICES)
    benchmark.pedantic(
        gather_scatter, args=(*cols, table, *out, 16), setup=lambda: table.fill(0), rounds=9
    )
    assert int(table[:, 4].astype(bool).sum()) > 0


GRID = TuningGrid(
    base=POLICY, threshold=(3, 10, 30), window_s=(600.0, 3600.0), designated_period_s=(300.0, 900.0)
)


@pytest.fixture(scope="module")
def storm_trace() -> tuple[np.ndarray, ...]:
    tr = make_alert_trace(ALERTS, DEVICES, STORMS, seed=5)
    return tr.t_ns, tr.device, tr.alert_code, tr.storm


def _one_throttle_per_setting(t, d, c, storm) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    rows = []
    out = ThrottleOutput.empty(len(t))
    for policy in GRID.settings():
        Throttle(policy).process(t, d, c, out=out)
        disc = out.would_throttle
        rows.append((int(disc.sum()), int((disc & storm).sum()), int((disc & ~storm).sum())))
    return rows


def test_sweep(benchmark, storm_trace) -> None:  # type: ignore[no-untyped-def]
    expected = _one_throttle_per_setting(*storm_trace)
    t, d, c, storm = storm_trace
    benchmark.group = "throttle-sweep"
    benchmark.extra_info.update(role="ours", alerts=ALERTS, settings=len(GRID))
    res = benchmark.pedantic(lambda: sweep(t, d, c, GRID, storm=storm, workers=1), rounds=5)
    cols = res.columns
    assert (
        list(
            zip(
                cols["discarded"].tolist(),
                cols["storm_discarded"].tolist(),
                cols["collateral"].tolist(),
                strict=True,
            )
        )
        == expected
    )


@pytest.mark.reference
def test_sweep_reference(benchmark, storm_trace) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "throttle-sweep"
    benchmark.extra_info.update(role="reference", alerts=ALERTS, settings=len(GRID))
    rows = benchmark.pedantic(lambda: _one_throttle_per_setting(*storm_trace), rounds=5)
    assert len(rows) == len(GRID) and all(r[0] == r[1] + r[2] for r in rows)
