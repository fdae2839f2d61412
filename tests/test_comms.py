"""The comms leg: the fluid kernel against its reference, FIFO waits under saturation, the
pipeline's use of it (cache hits use none, scope), and the ``[comms]`` / ``[cache]`` keys."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
from dccsim.bench import load_run, simulate
from dccsim.core import comms as comms_module
from dccsim.core.capacity import CapacityClass, CapacityConfig
from dccsim.core.catalogue import DEVICE_KINDS, catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.comms import CommsConfig, CommsLeg, reference_fluid
from dccsim.core.errors import ConfigError
from dccsim.core.pipeline import O_CACHE, O_DEVICE, Pipeline
from dccsim.core.records import REQUEST_CLASSES, RESPONSE_CODES, ROLES
from dccsim.core.validation import DeviceRegistry, UserRegistry
from dccsim.loadgen.scenario import load_scenario, parse_scenario
from hypothesis import given, settings
from hypothesis import strategies as st

S = 1_000_000_000


def test_doctests() -> None:
    assert doctest.testmod(comms_module).failed == 0


@settings(max_examples=200, deadline=None)
@given(
    caps=st.lists(st.floats(0.5, 50.0), min_size=1, max_size=4),
    gaps=st.lists(st.integers(0, 3 * S), min_size=1, max_size=80),
    routes=st.lists(st.integers(0, 3), min_size=80, max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=4),
)
def test_kernel_matches_reference_in_any_chunks(caps, gaps, routes, cuts) -> None:  # type: ignore[no-untyped-def]
    n = len(gaps)
    t = (1_700_000_000 * S + np.cumsum(np.array(gaps, np.int64))).astype(np.int64)
    res = np.array([r % len(caps) for r in routes[:n]], np.uint8)
    leg = CommsLeg(CommsConfig(names=tuple(f"r{i}" for i in range(len(caps))), capacity_per_s=tuple(caps), s1sp=0),
                   route=np.zeros(1, np.uint8))  # fmt: skip
    waits = []
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    for a, b in zip(bounds, bounds[1:], strict=False):
        waits.extend(leg.process(res[a:b], t[a:b]).tolist())
    ref_w, ref_acc = reference_fluid((1e9 / np.array(caps)).tolist(), res.tolist(), t.tolist())
    assert waits == ref_w
    st_ = leg.stats()
    acc = np.array(ref_acc)
    assert st_.sent.tolist() == acc[:, 0].astype(int).tolist()
    assert np.allclose(st_.wait_s, acc[:, 1], rtol=1e-12, atol=1e-15)
    assert st_.max_wait_s.tolist() == acc[:, 2].tolist()
    assert st_.peak_queue.tolist() == acc[:, 3].tolist()


def test_a_saturated_resource_queues_fifo_with_the_fluid_waits() -> None:
    # 10 requests a second offered to a resource that carries 4: each waits 150 ms more than the one before
    leg = CommsLeg(CommsConfig(names=("s1sp",), capacity_per_s=(4.0,), s1sp=0), route=np.zeros(1, np.uint8))
    t = np.arange(40, dtype=np.int64) * (S // 10)
    wait = leg.process(np.zeros(40, np.uint8), t)
    assert wait.tolist() == [i * (S // 4 - S // 10) for i in range(40)]
    s = leg.stats().to_dict()["resources"]["s1sp"]
    assert s["requests"] == 40
    assert s["peak_queue"] == pytest.approx(39 * 0.6)  # requests ahead of the last one
    assert s["utilisation"] == pytest.approx(40 / 4 / 3.9)  # 10 s of work over a 3.9 s window
    assert s["peak_utilisation"] == pytest.approx(40 / (4 * 900))  # all in one 15-minute interval
    # the same arrivals given out of order: joined in time order, each row keeps its own wait
    leg2 = CommsLeg(CommsConfig(names=("s1sp",), capacity_per_s=(4.0,), s1sp=0), route=np.zeros(1, np.uint8))
    perm = np.random.default_rng(1).permutation(40)
    assert leg2.process(np.zeros(40, np.uint8), t[perm]).tolist() == wait[perm].tolist()


def test_an_idle_resource_drains_and_does_not_go_negative() -> None:
    leg = CommsLeg(CommsConfig(names=("a", "b"), capacity_per_s=(1.0, 1.0), s1sp=1), route=np.zeros(1, np.uint8))
    w = leg.process(np.array([0, 0, 1, 0], np.uint8), np.array([0, 0, 0, 10 * S], np.int64))
    assert w.tolist() == [0, S, 0, 0]  # the resources queue apart; 10 s later a is empty again


def test_stats_merge_adds_counts_and_takes_peaks() -> None:
    cfg = CommsConfig(names=("a",), capacity_per_s=(2.0,), s1sp=0, wakeups_per_read=3.0)
    x = CommsLeg(cfg, np.zeros(1, np.uint8))
    y = CommsLeg(cfg, np.zeros(1, np.uint8))
    x.process(np.zeros(3, np.uint8), np.zeros(3, np.int64))
    y.process(np.zeros(1, np.uint8), np.zeros(1, np.int64))
    y.count(np.zeros(2, np.uint8), cache_hits=True)
    m = x.stats().merge(y.stats()).to_dict()
    assert m["resources"]["a"]["requests"] == 4 and m["resources"]["a"]["peak_queue"] == 2.0
    assert m["wakeups"] == 12.0 and m["wakeups_saved"] == 6.0


# ------------------------------------------------------------------ in the pipeline
_MHHS = REQUEST_CLASSES.index("mhhs_read")
_DAY = 86_400 * S
_T0 = 1_700_006_400 * S


def _pipeline(smets1: list[bool], s1sp_per_s: float, cache_rows: np.ndarray | None) -> Pipeline:
    n = len(smets1)
    devices = np.arange(1 << 40, (1 << 40) + n, dtype=np.uint64)
    classes = tuple(CapacityClass(service_ns=S // 100, timeout_ns=600 * S, name=c) for c in REQUEST_CLASSES)
    route = np.where(np.array(smets1), 1, 0).astype(np.uint8)
    return Pipeline(
        capacity=CapacityConfig(slots=1000, classes=classes),
        targets_ns=np.full(len(REQUEST_CLASSES), 60 * S, np.int64),
        devices=DeviceRegistry.build(devices, np.full(n, DEVICE_KINDS.index("ESME"), np.uint8)),
        users=UserRegistry.build({(1 << 41) + k: r for k, r in enumerate(("MDR", "IS", "ED"))}),
        future_dated_class=REQUEST_CLASSES.index("future_dated"),
        comms=CommsLeg(CommsConfig(names=("csp", "s1sp"), capacity_per_s=(1000.0, s1sp_per_s), s1sp=1), route),
        cache_rows=cache_rows,
    )


def _reads(p: Pipeline, dev_rows: list[int], t_s: list[float], users: list[int], first_counter: int = 1):  # type: ignore[no-untyped-def]
    n = len(dev_rows)
    devices = p.devices.ids[np.array(dev_rows)]
    b = RequestBatch.from_columns(
        device=devices, originator=np.array([(1 << 41) + u for u in users], np.uint64),
        counter=np.arange(first_counter, first_counter + n), srv=np.full(n, catalogue().code("4.8.1", "srv")),
        role=np.array([ROLES.index(("MDR", "IS", "ED")[u]) for u in users]), command_variant=np.ones(n),
        period_start_ns=np.full(n, _T0 - _DAY), period_end_ns=np.full(n, _T0),
        t_scheduled_ns=(_T0 + np.array(t_s) * S).astype(np.int64),
    )  # fmt: skip
    return p.process(b, np.full(n, _MHHS, np.uint8), np.full(n, 2 * S, np.int64), np.zeros(n, np.uint8))


def test_a_cache_hit_uses_no_comms_capacity() -> None:
    p = _pipeline([True], s1sp_per_s=0.5, cache_rows=None)
    # the MDR reads (a miss: device), the supplier and DNO re-read an hour later (hits)
    r = _reads(p, [0, 0, 0], [0.0, 3600.0, 3601.0], [0, 1, 2])
    assert r.outcome.tolist() == [O_DEVICE, O_CACHE, O_CACHE]
    s = p.comms_stats().to_dict()
    assert s["resources"]["s1sp"]["requests"] == 1 and s["resources"]["s1sp"]["cache_hits"] == 2
    assert s["wakeups"] == 1.0 and s["wakeups_saved"] == 2.0


def test_device_answers_wait_for_the_comms_queue() -> None:
    # three SMETS1 reads at once through an S1SP that carries one every two seconds
    p = _pipeline([True, True, True], s1sp_per_s=0.5, cache_rows=None)
    r = _reads(p, [0, 1, 2], [0.0, 0.0, 0.0], [0, 0, 0])
    dsp = S // 100  # the DSP's service (three free servers)
    assert (r.latency_ns - dsp - 2 * S).tolist() == [0, 2 * S, 4 * S]


def test_scope_smets1_caches_no_smets2_read() -> None:
    # device 0 is SMETS2 (its CSP), device 1 SMETS1; the scope is SMETS1 meters only
    p = _pipeline([False, True], s1sp_per_s=100.0, cache_rows=np.array([False, True]))
    r = _reads(p, [0, 1, 0, 1], [0.0, 0.0, 3600.0, 3600.0], [0, 0, 1, 1])
    assert r.outcome.tolist() == [O_DEVICE, O_DEVICE, O_DEVICE, O_CACHE]
    s = p.comms_stats().to_dict()["resources"]
    assert s["csp"]["requests"] == 2 and s["s1sp"]["requests"] == 1 and s["s1sp"]["cache_hits"] == 1


# ------------------------------------------------------------------ scenario keys
def _scenario(extra: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_scenario(extra, "t.toml")
    return info.value


def test_comms_and_cache_keys_are_checked() -> None:
    e = _scenario("[comms]\ns1sp_capacity_per_s = 0\n")
    assert e.key == "comms.s1sp_capacity_per_s" and e.value == 0
    e = _scenario("[comms]\ncsp_capacity_per_s = {north = 10, south = 10}\n")
    assert e.key == "comms.csp_capacity_per_s" and "central" in str(e)
    e = _scenario("[comms]\ncsp_capacity_per_s = {north = 10, central = -1, south = 10}\n")
    assert e.key == "comms.csp_capacity_per_s.central"
    e = _scenario('[cache]\nscope = "gas"\n')
    assert e.key == "cache.scope" and e.value == "gas"
    s = parse_scenario("[comms]\ncsp_capacity_per_s = {north = 10, central = 20, south = 30}\n", "t.toml")
    assert [s.comms.csp_capacity(r) for r in s.population.regions] == [10.0, 20.0, 30.0]
    assert s.cache.scope == "smets1" and s.comms.s1sp_wakeups_per_read == 1.0


# ------------------------------------------------------------------ end to end
def _run(name: str, tmp: Path, text: str | None = None) -> dict:  # type: ignore[type-arg]
    run = load_run(name, text=text, scale=0.002)
    return simulate(run, out=tmp / name).summary.to_builtins()


def test_the_cache_decides_the_comms_pressure_verdict(tmp_path: Path) -> None:
    _, text = load_scenario("mhhs-comms-pressure")
    assert "[cache]\nretention_h = 48\n" in text
    without = text.replace("[cache]\nretention_h = 48\n", "[cache]\nretention_h = 48\nenabled = false\n")
    on = _run("mhhs-comms-pressure", tmp_path)
    off = _run("pressure-no-cache", tmp_path, without)
    s1_on, s1_off = on["comms"]["resources"]["s1sp"], off["comms"]["resources"]["s1sp"]
    assert on["within_target_ratio"] >= 0.97 > 0.9 > off["within_target_ratio"]
    assert s1_off["utilisation"] > 1.3 * s1_on["utilisation"]
    assert s1_off["peak_utilisation"] > 1.05 and s1_off["peak_utilisation"] > s1_on["peak_utilisation"] > 0.8
    assert s1_off["peak_queue"] > 10 * s1_on["peak_queue"] and s1_off["timed_out"] > 10 * s1_on["timed_out"]
    assert on["comms"]["wakeups_saved"] == s1_on["cache_hits"] > 0 and off["comms"]["wakeups_saved"] == 0
    page = (tmp_path / "pressure-no-cache" / "report.html").read_text()
    assert "Comms leg (CSP regions, S1SP)" in page and f"{s1_off['peak_queue']:,.1f}" in page


def test_the_default_day_is_not_comms_bound(tmp_path: Path) -> None:
    s = _run("mhhs-day", tmp_path)
    for name, r in s["comms"]["resources"].items():
        assert r["max_wait_s"] < 2.0 and r["mean_wait_s"] < 0.05, name


def test_a_comms_queue_past_the_time_out_answers_e21_and_counts_it() -> None:
    # eight SMETS1 reads at once; the S1SP takes one every 100 s and the class time-out is 600 s
    p = _pipeline([True] * 8, s1sp_per_s=0.01, cache_rows=None)
    r = _reads(p, list(range(8)), [0.0] * 8, [0] * 8)
    codes = [RESPONSE_CODES[c] for c in r.response_code]
    assert codes == ["I0"] * 6 + ["E21"] * 2
    assert r.latency_ns[6:].tolist() == [600 * S, 600 * S]  # answered at the time-out
    s = p.comms_stats().to_dict()["resources"]["s1sp"]
    assert s["timed_out"] == 2 and s["requests"] == 8  # the late ones still used the S1SP


def test_peak_utilisation_is_the_busiest_interval_across_chunks() -> None:
    leg = CommsLeg(CommsConfig(names=("a", "b"), capacity_per_s=(1.0, 2.0), s1sp=1), route=np.zeros(1, np.uint8))
    q = 900 * S
    # a: 3 arrivals in interval 0 (two chunks), 5 in interval 2; b: 9 in interval 1
    leg.process(np.zeros(2, np.uint8), np.array([10, 20], np.int64))
    leg.process(np.array([0, 1, 1], np.uint8), np.array([30, q + 1, q + 2], np.int64))
    leg.process(np.array([1] * 7 + [0] * 5, np.uint8), np.array([q + 3] * 7 + [2 * q + 5] * 5, np.int64))
    s = leg.stats()
    assert s.peak_utilisation.tolist() == pytest.approx([5 / 900, 9 / 1800])
    assert s.merge(s).peak_utilisation.tolist() == s.peak_utilisation.tolist()  # a maximum, as the peaks
