"""The pipeline's outcome kernels against a plain-Python statement of the rules."""

from __future__ import annotations

import numpy as np
import pytest
from dccsim.core._kernels import FAULT_E20, FAULT_E21, device_leg, finish_outcomes
from dccsim.core.pipeline import _CODES
from dccsim.core.records import OUTCOMES, RESPONSE_CODES
from hypothesis import given, settings
from hypothesis import strategies as st

FD = 2


def reference(t, cls, fault, non_device, hit, dsp_done, deadline, latency, targets):  # type: ignore[no-untyped-def]
    """Per request: the code, outcome, answer time and target verdict, as the module says."""
    out = []
    for i in range(len(t)):
        fd = cls[i] == FD
        timeout_code = "E30" if fd else "E21"
        if non_device[i] or hit[i]:
            done = min(dsp_done[i], deadline[i])
            code = timeout_code if dsp_done[i] > deadline[i] else "I0"
            outcome = "dcc" if non_device[i] else "cache"
        else:
            answer = deadline[i] if fault[i] == FAULT_E21 else dsp_done[i] + latency[i]
            late = answer > deadline[i]
            done = min(answer, deadline[i])
            if fault[i] == FAULT_E21 or late:  # lateness first: the caller stopped waiting
                code = timeout_code
            elif fault[i] == FAULT_E20:
                code = "E20"
            else:
                code = "I99" if fd else "I0"
            outcome = "device"
        if code not in ("I0", "I99"):
            outcome = "failed"
        out.append((code, outcome, done, done - t[i] <= targets[cls[i]]))
    return out


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.integers(0, 3),
            st.integers(0, 2),
            st.booleans(),
            st.booleans(),
            st.integers(0, 10**6),
            st.integers(0, 2 * 10**6),
            st.integers(0, 10**6),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_outcome_kernels_match_the_rules(rows) -> None:
    """The accepted rows (the last field; ``idx`` of them) get the rules' outcomes, in their
    own places; the rejected rows keep their code and outcome, finish at their time, in target."""
    t = np.array([r[0] for r in rows], np.int64)
    idx = np.array([i for i, r in enumerate(rows) if r[8]], np.int64)
    acc = [r for r in rows if r[8]]
    m = len(acc)
    cls = np.array([r[1] for r in acc], np.uint8)
    fault = np.array([r[2] for r in acc], np.uint8)
    non_device = np.array([r[3] for r in acc], np.bool_)
    hit = np.array([r[4] and not r[3] for r in acc], np.bool_)
    t_acc = t[idx]
    dsp_done = t_acc + np.array([r[5] for r in acc], np.int64)
    deadline = t_acc + np.array([r[6] for r in acc], np.int64)
    latency = np.array([r[7] for r in acc], np.int64)
    targets = np.array([300_000, 600_000, 450_000, 100_000], np.int64)
    dev_done = np.empty(m, np.int64)
    dev_code = np.empty(m, np.uint8)
    device_leg(cls, fault, dsp_done, latency, deadline, FD, _CODES, dev_done, dev_code)
    rejected = RESPONSE_CODES.index("E2")
    code = np.full(len(rows), rejected, np.uint8)
    outcome = np.full(len(rows), OUTCOMES.index("rejected"), np.uint8)
    t_done = t.copy()
    lat = np.full(len(rows), -7, np.int64)
    within = np.ones(len(rows), np.bool_)
    finish_outcomes(
        idx,
        t,
        cls,
        non_device,
        hit,
        dsp_done,
        deadline,
        dev_done,
        dev_code,
        targets,
        FD,
        _CODES,
        code,
        outcome,
        t_done,
        lat,
        within,
    )
    got = [
        (RESPONSE_CODES[c], OUTCOMES[o], int(d), bool(w))
        for c, o, d, w in zip(code[idx], outcome[idx], t_done[idx], within[idx], strict=True)
    ]
    assert got == reference(t_acc, cls, fault, non_device, hit, dsp_done, deadline, latency, targets)
    assert np.array_equal(lat, t_done - t)
    others = np.setdiff1d(np.arange(len(rows)), idx)
    assert (code[others] == rejected).all() and (outcome[others] == OUTCOMES.index("rejected")).all()
    assert (t_done[others] == t[others]).all() and within[others].all()


def test_warm_up_reaches_the_cache_and_throttle_kernels() -> None:
    """``Pipeline.warm_up`` (run before a server takes traffic) sends a cacheable read and an
    alert through a pipeline of its own, so their kernels are loaded before the first batch.
    Checked in a fresh interpreter: in this one, other tests may have loaded them already."""
    import os
    import subprocess
    import sys

    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("no compiled kernels to load with the JIT off")
    probe = (
        "from dccsim.cache import _kernels as c\n"
        "from dccsim.core import _kernels as k\n"
        "from dccsim.throttle import _kernels as t\n"
        "from dccsim.core.pipeline import Pipeline\n"
        "kernels = [c.read_through, k.check_requests, k.comms_fluid, k.dsp_fluid, t.process]\n"
        "assert not any(f.signatures for f in kernels), 'loaded before the warm-up'\n"
        "Pipeline.warm_up()\n"
        "print([bool(f.signatures) for f in kernels])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True, True, True]"


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 3),  # class
            st.integers(0, 10**9),  # scheduled time
            st.integers(0, 5),  # SRV
            st.integers(-1, 7),  # registry row (-1: unknown)
            st.integers(0, 10**9),  # DSP start
            st.integers(0, 2),  # DSP status
        ),
        max_size=40,
    ),
    kinds=st.lists(st.integers(0, 3), min_size=0, max_size=8),
    scope=st.one_of(st.none(), st.lists(st.booleans(), min_size=0, max_size=8)),
    enabled=st.booleans(),
    accepted=st.lists(st.booleans(), max_size=40),
)
def test_front_kernels_match_the_whole_array_statement(rows, kinds, scope, enabled, accepted) -> None:
    """front_columns against front_columns_reference (DSP finish, deadline, which rows go to
    the cache), and accepted_rows against fancy indexing; a registry row past the kinds or
    the cache scope is what an empty registry gives (never found)."""
    from dccsim.core._kernels import DSP_SERVED, accepted_rows, front_columns
    from dccsim.core.pipeline import _ESME, front_columns_reference

    n = len(rows)
    cls, t, srv, row, start, status = (np.array(c, d) for c, d in zip(
        zip(*rows, strict=True) if rows else [()] * 6,
        (np.uint8, np.int64, np.uint8, np.int64, np.int64, np.uint8), strict=True,
    ))  # fmt: skip
    dev_kind = np.array(kinds, np.uint8)
    row = np.where(row < len(dev_kind), row, -1)  # the registry's rows, or unknown
    service = np.array([5, 7, 11, 13], np.int64)
    timeout = np.array([100, 200, 300, 400], np.int64)
    srv_cacheable = np.array([True, False, True, True, False, True])
    cache_rows = None if scope is None else np.array((scope + [False] * 8)[: len(dev_kind)] if scope else [], np.bool_)
    want = front_columns_reference(
        cls, t, srv, row, start, status, service, timeout, srv_cacheable, dev_kind, cache_rows, enabled
    )
    use = cache_rows is not None and len(cache_rows) > 0
    got = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.bool_))
    front_columns(
        cls, t, srv, row, start, status, service, timeout, srv_cacheable,
        dev_kind if len(dev_kind) else np.zeros(1, np.uint8), cache_rows if use else np.zeros(1, np.bool_),
        use, enabled, _ESME, DSP_SERVED, *got,
    )  # fmt: skip
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)

    idx = np.flatnonzero(np.array((accepted + [True] * n)[:n], np.bool_))
    cols = (cls, t, srv, row.astype(np.uint64), row, status, start, t + 1, t + 2)
    outs = [np.empty(len(idx), c.dtype) for c in cols]
    accepted_rows(idx, *cols, *outs)
    for o, c in zip(outs, cols, strict=True):
        np.testing.assert_array_equal(o, c[idx])
