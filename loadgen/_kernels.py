"""Numba kernels of the load generators: arrays and scalars in, preallocated arrays out.

- :func:`classify`: the capacity class of each request of a batch (the wall-clock server's
  classifier, :func:`dccsim.loadgen.wallclock.classifier`);
- :func:`device_leg`: WAN + device latency and fault of each row from its draws
  (:class:`dccsim.loadgen.wallclock.DeviceLegModel`); :func:`device_draws`, the same before
  the exponential (the virtual-time driver);
- :func:`contact_states`: each device's persistent contact state (:func:`dccsim.loadgen.population.build_population`);
- :func:`slot_times`: a day's send times from per-slot counts (:func:`dccsim.loadgen.workload.profile_times`);
- :func:`flat_slot_times`: times one per slot, jittered (:func:`dccsim.loadgen.workload.flat_times`);
- :func:`background_columns`: the background stream's columns from its draws (its reference:
  :func:`dccsim.loadgen.workload.background_columns_reference`);
- :func:`fill_rows`: a frame of compact MessagePack request rows with fresh counters (the
  open-loop client, :mod:`dccsim.loadgen.netclient`).

They use the core's jit policy (``cache=True``, ``nogil=True``).
"""

from __future__ import annotations

import numpy as np
from dccsim.core._jit import jit
from dccsim.core.pipeline import FAULT_E20, FAULT_E21

#: a device's persistent contact states (:mod:`dccsim.loadgen.population` draws them)
CONTACT_OK, CONTACT_NONE, CONTACT_FLAKY = 0, 1, 2

__all__ = [
    "COUNTER_OFFSET",
    "HEAD",
    "NS",
    "classify",
    "contact_states",
    "device_draws",
    "device_leg",
    "fill_rows",
    "background_columns",
    "flat_slot_times",
    "slot_times",
    "warm_up",
]

NS = 1_000_000_000
#: where a request row's counter starts: fixarray byte + 0xcf/8 originator + 0xcf/8 target + the counter's 0xcf marker
COUNTER_OFFSET = 20
#: a rows frame's head: frame length, tag, batch id
HEAD = 13


@jit
def classify(srv, execution_ns, table, non_device, future, out):  # type: ignore[no-untyped-def]
    for i in range(len(srv)):
        c = table[srv[i]]
        out[i] = future if execution_ns[i] != 0 and c != non_device else c


@jit
def _fault(c, u, a, b, fp):  # type: ignore[no-untyped-def]
    """A request's fault from its device's contact state ``c``, its uniform draw ``u`` and its
    generation's E20 and E21 shares ``a``, ``b`` and flaky failure probability ``fp``."""
    if c == CONTACT_NONE:
        return FAULT_E21
    if c == CONTACT_FLAKY:
        both = a + b
        cut = fp * (a / both) if both > 0 else 0.0
        return FAULT_E20 if u < cut else (FAULT_E21 if u < fp else 0)
    return FAULT_E20 if u < a else (FAULT_E21 if u < a + b else 0)


@jit
def _row_draw(d, base, npop, smets1, contact, z, u, mu2, mu1, sg2, sg1, e20_2, e20_1, e21_2, e21_1, fp2, fp1):  # type: ignore[no-untyped-def]  # noqa: E501
    """One row's log latency (``mu + sigma x z`` of its device's generation) and fault."""
    inside = d >= base and d - base < npop
    s1 = inside and smets1[d - base]
    c = contact[d - base] if inside else CONTACT_OK
    if s1:
        return mu1 + sg1 * z, _fault(c, u, e20_1, e21_1, fp1)
    return mu2 + sg2 * z, _fault(c, u, e20_2, e21_2, fp2)


@jit
def device_leg(device, base, smets1, contact, z, u, mu2, mu1, sg2, sg1, e20_2, e20_1, e21_2, e21_1, fp2, fp1, latency, fault):  # type: ignore[no-untyped-def]  # noqa: E501
    """Latency (virtual ns) and fault of each row from its draws ``z`` (normal) and ``u`` (uniform).

    One pass instead of a dozen whole-array numpy operations: a micro-batch is a few hundred
    rows, where numpy's per-call cost was most of the time. A device outside the population
    (``device - base`` out of range) is taken as SMETS2 in contact. The fault follows the
    device's ``contact`` state as :func:`dccsim.loadgen.population.draw_faults` (the reference).
    """
    npop = np.uint64(len(smets1))
    for i in range(len(device)):
        x, f = _row_draw(device[i], base, npop, smets1, contact, z[i], u[i], mu2, mu1, sg2, sg1,
                         e20_2, e20_1, e21_2, e21_1, fp2, fp1)  # fmt: skip
        latency[i] = np.int64(np.exp(x) * NS)
        fault[i] = f


@jit
def device_draws(device, base, smets1, contact, z, u, mu2, mu1, sg2, sg1, e20_2, e20_1, e21_2, e21_1, fp2, fp1, log_latency, fault):  # type: ignore[no-untyped-def]  # noqa: E501
    """:func:`device_leg` without the exponential: ``log_latency`` gets ``mu + sigma x z`` of
    each row's generation, for the caller's whole-array ``exp`` (the virtual-time driver's
    latencies stay those of NumPy's ``exp``, byte for byte; its reference is
    :func:`dccsim.loadgen.driver.draw_device_reference`)."""
    npop = np.uint64(len(smets1))
    for i in range(len(device)):
        log_latency[i], fault[i] = _row_draw(device[i], base, npop, smets1, contact, z[i], u[i], mu2, mu1, sg2, sg1,
                                             e20_2, e20_1, e21_2, e21_1, fp2, fp1)  # fmt: skip


@jit
def contact_states(u, smets1, dead2, dead1, flaky2, flaky1, out):  # type: ignore[no-untyped-def]
    """Each device's contact state from its uniform draw ``u`` and generation: out of contact
    below the generation's dead share, flaky below dead + flaky, else in contact. One pass; the
    reference is :func:`dccsim.loadgen.population.contact_states_reference`."""
    for i in range(len(u)):
        if smets1[i]:
            dead, flaky = dead1, dead1 + flaky1
        else:
            dead, flaky = dead2, dead2 + flaky2
        out[i] = CONTACT_NONE if u[i] < dead else (CONTACT_FLAKY if u[i] < flaky else CONTACT_OK)


@jit
def flat_slot_times(u, i0, start, slot, out):  # type: ignore[no-untyped-def]
    """Time ``i = i0 + j`` at ``start + (i + u[j]) x slot`` (floats, truncated to whole ns) into
    ``out[i]``, for the block of draws ``u``; the reference is
    :func:`dccsim.loadgen.workload.flat_times_reference` (the same float operations in the same
    order, so the same times to the nanosecond)."""
    for j in range(len(u)):
        i = i0 + j
        out[i] = np.int64(start + (i + u[j]) * slot)


@jit
def background_columns(  # type: ignore[no-untyped-def]
    which, kind, u, srv_of, count, table, non_device, cacheable, nd_class, od_class, period_start, period_end,
    srv, role, cls, start, end,
):  # fmt: skip
    """The background stream's SRV, role, class and read period from its draws, in one pass;
    the reference is :func:`dccsim.loadgen.workload.background_columns_reference`."""
    for i in range(len(which)):
        w = which[i]
        k = kind[i]
        s = srv_of[w]
        srv[i] = s
        role[i] = table[w, k, np.int64(u[i] * count[w, k])]
        cls[i] = nd_class if non_device[s] else od_class
        if cacheable[s]:
            start[i] = period_start
            end[i] = period_end
        else:
            start[i] = 0
            end[i] = 0


@jit
def slot_times(counts, u, start, slot_ns, out):  # type: ignore[no-untyped-def]
    """Times spread through slots: slot ``k`` holds ``counts[k]`` messages, the ``r``-th at
    ``start + (k + (r + u) / counts[k]) x slot_ns`` (truncated to whole ns; ``start`` a float),
    sorted by construction. One pass; the reference is
    :func:`dccsim.loadgen.workload.profile_times_reference` (the same float operations, so the
    same times to the nanosecond)."""
    i = 0
    for k in range(len(counts)):
        c = counts[k]
        for r in range(c):
            out[i] = np.int64(start + (k + (r + u[i]) / c) * slot_ns)
            i += 1


@jit
def fill_rows(blob, off, a, b, counter_base, out):  # type: ignore[no-untyped-def]
    """Write requests ``a .. b-1`` (row ``k % len``, counter ``counter_base + k``) as a MessagePack
    array after the frame head of ``out``; returns the end of the frame."""
    days = len(off) - 1
    n = b - a
    p = HEAD
    if n < 65536:
        out[p], out[p + 1], out[p + 2] = 0xDC, (n >> 8) & 0xFF, n & 0xFF
        p += 3
    else:
        out[p] = 0xDD
        for q in range(4):
            out[p + 1 + q] = (n >> (24 - 8 * q)) & 0xFF
        p += 5
    k = a
    while k < b:  # the rows are the day's rows in order: copy whole stretches, up to the day's end
        d = k % days
        m = min(b - k, days - d)
        s, e = off[d], off[d + m]
        out[p : p + e - s] = blob[s:e]
        for r in range(m):
            c = counter_base + np.uint64(k + r)
            at = p + off[d + r] - s + COUNTER_OFFSET
            for q in range(8):
                out[at + q] = (c >> np.uint64(56 - 8 * q)) & np.uint64(0xFF)
        p += e - s
        k += m
    return p


def warm_up() -> None:
    """Load (or compile) the virtual-time driver's and workload's kernels, with the dtypes a
    run gives them, outside any timed region."""
    f, u8, b = np.zeros(1), np.zeros(1, np.uint8), np.zeros(1, np.bool_)
    device_draws(np.zeros(1, np.uint64), np.uint64(0), b, u8, f, f, *([0.0] * 10), f.copy(), u8.copy())
    contact_states(f, b, 0.0, 0.0, 0.0, 0.0, u8.copy())
    slot_times(np.ones(1, np.int64), f, 0.0, 1.0, np.zeros(1, np.int64))
    flat_slot_times(f, 0, 0.0, 1.0, np.zeros(1, np.int64))
    i64 = np.zeros(1, np.int64)
    background_columns(
        i64, u8, f, u8, np.ones((1, 1), np.int64), np.zeros((1, 1, 1), np.uint8), b, b, 0, 0, 0, 0,
        u8.copy(), u8.copy(), u8.copy(), i64.copy(), i64.copy(),
    )  # fmt: skip
