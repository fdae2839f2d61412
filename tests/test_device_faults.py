"""Device faults on a real run: lateness before the fault, persistent device states, several days."""

from __future__ import annotations

import functools

import numpy as np
from dccsim.bench.testing import drive, scenario
from dccsim.core.records import REQUEST_CLASSES, RESPONSE_CODES


@functools.lru_cache(maxsize=1)
def _no_uplift():  # type: ignore[no-untyped-def]
    """A small day of mhhs-no-uplift (its DSP queue pushes many answers past the time-out)."""
    sink, driver = drive(scenario("mhhs-no-uplift", scale=0.003))
    return sink.request_rows(), driver


def test_no_e20_is_answered_after_its_class_time_out() -> None:
    rows, driver = _no_uplift()
    timeout = driver.pipeline.capacity.timeout_ns_array()
    code = np.asarray(rows.response_code)
    cls = np.asarray(rows.request_class)
    e20 = code == RESPONSE_CODES.index("E20")
    late = rows.latency_ns >= timeout[cls]
    assert e20.any()
    assert not (e20 & late).any()
    # the late ones are there, as E21 (E30 future-dated) at the time-out
    fd = cls == REQUEST_CLASSES.index("future_dated")
    e21, e30 = code == RESPONSE_CODES.index("E21"), code == RESPONSE_CODES.index("E30")
    at_timeout = rows.latency_ns == timeout[cls]
    assert (e21 & at_timeout & ~fd).sum() > e20.sum()
    assert not (e21 & fd).any() and not (e30 & ~fd).any()
