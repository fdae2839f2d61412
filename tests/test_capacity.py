"""The DSP capacity model: hand-computed queues, the kernel against the heapq reference,
chunking, time-outs, backlog, stats, configuration and input errors."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys

import msgspec
import numpy as np
import pytest
from dccsim.core import capacity
from dccsim.core.capacity import (
    CapacityClass,
    CapacityConfig,
    CapacityConfigError,
    CapacityInputError,
    CapacityModel,
    CapacityResult,
    CapacityStats,
    interval_aggregates,
    reference_fluid,
    reference_process,
)
from dccsim.core.errors import ConfigError, DccsimError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OUTPUTS = ("start_ns", "t_done_ns", "timed_out", "wait_ns", "backlog")
ALL_OUTPUTS = (*OUTPUTS, "status")
I64_MAX = np.iinfo(np.int64).max


def config(slots: int = 1, *classes: tuple[int, int], **kw: float) -> CapacityConfig:
    """A config from ``(service_ns, timeout_ns)`` pairs; one class (10, 1000) by default."""
    pairs = classes or ((10, 1_000),)
    return CapacityConfig(
        slots=slots,
        classes=tuple(CapacityClass(service_ns=s, timeout_ns=o) for s, o in pairs),
        **kw,
    )


def arrays(t: list[int], cls: list[int] | None = None, lat: list[int] | None = None):
    n = len(t)
    return (
        np.array(t, dtype=np.int64),
        np.array(cls if cls is not None else [0] * n, dtype=np.uint8),
        np.array(lat if lat is not None else [0] * n, dtype=np.int64),
    )


def run(cfg: CapacityConfig, t, cls=None, lat=None) -> CapacityResult:
    return CapacityModel(cfg).process(*arrays(t, cls, lat))


def run_chunked(cfg: CapacityConfig, t, cls, lat, cuts) -> tuple[dict, CapacityModel, list]:
    """Process in chunks split at ``cuts``; return the joined outputs, the model, chunk stats."""
    model = CapacityModel(cfg)
    bounds = [0, *sorted(cuts), len(t)]
    parts = [
        model.process(t[a:b], cls[a:b], lat[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ALL_OUTPUTS}
    return joined, model, [p.stats for p in parts]


def assert_same(got, ref: CapacityResult, note: str = "", names: tuple[str, ...] = OUTPUTS) -> None:
    for name in names:
        a = got[name] if isinstance(got, dict) else getattr(got, name)
        b = getattr(ref, name)
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype, note)
        if not np.array_equal(a, b):
            first = int(np.flatnonzero(a != b)[0])
            raise AssertionError(
                f"{name} differs first at request {first}: {a[first]} != {b[first]} {note}"
            )


# --- hand-computed queues -------------------------------------------------------------------


def test_one_server_three_at_once_queue_in_input_order():
    r = run(config(1, (10, 1_000)), [5, 5, 5])
    assert r.start_ns.tolist() == [5, 15, 25]
    assert r.wait_ns.tolist() == [0, 10, 20]
    assert r.backlog.tolist() == [0, 1, 2]
    assert r.t_done_ns.tolist() == [15, 25, 35]
    assert r.timed_out.tolist() == [False, False, False]
    assert r.stats == CapacityStats(
        requests=3, total_wait_ns=30, max_wait_ns=20, peak_backlog=2, busy_ns=30, capacity_ns=0
    )


def test_two_servers():
    r = run(config(2, (100, 1_000)), [0, 10, 20, 30, 205])
    assert r.start_ns.tolist() == [0, 10, 100, 110, 205]
    assert r.backlog.tolist() == [0, 0, 1, 2, 0]
    assert r.wait_ns.tolist() == [0, 0, 80, 80, 0]


def test_starting_exactly_on_arrival_is_not_waiting():
    # The server frees at 10, just as the second request arrives: no wait, no backlog. The
    # third arrives at 15 and waits for 20; at 20 the fourth sees the third gone into service.
    r = run(config(1, (10, 1_000)), [0, 10, 15, 20])
    assert r.start_ns.tolist() == [0, 10, 20, 30]
    assert r.wait_ns.tolist() == [0, 0, 5, 10]
    assert r.backlog.tolist() == [0, 0, 1, 1]


def test_backlog_drains_between_arrivals():
    r = run(config(1, (10, 1_000)), [0, 0, 0, 0, 25, 100])
    assert r.start_ns.tolist() == [0, 10, 20, 30, 40, 100]
    # at 25: requests started at 30 and the arriving one (40) are waiting
    assert r.backlog.tolist() == [0, 1, 2, 3, 2, 0]


def test_classes_have_their_own_service_and_timeout():
    cfg = config(1, (10, 1_000), (50, 60))
    r = run(cfg, [0, 0, 0], [1, 0, 1])
    assert r.start_ns.tolist() == [0, 50, 60]
    assert r.t_done_ns.tolist() == [50, 60, 60]  # the last one: 60 + 50 > 60 after arrival
    assert r.timed_out.tolist() == [False, False, True]
    assert r.stats.busy_ns == 110


def test_device_leg_does_not_hold_the_server():
    r = run(config(1, (10, 10_000)), [0, 0], lat=[5_000, 0])
    assert r.start_ns.tolist() == [0, 10]
    assert r.t_done_ns.tolist() == [5_010, 20]


def test_timeout_sets_done_and_still_holds_the_server():
    # service 10, time-out 15: the second finishes at 20 (> 15) and the third starts at 20,
    # after the timed-out second has used its full slot.
    r = run(config(1, (10, 15)), [0, 0, 0])
    assert r.start_ns.tolist() == [0, 10, 20]
    assert r.timed_out.tolist() == [False, True, True]
    assert r.t_done_ns.tolist() == [10, 15, 15]
    assert r.wait_ns.tolist() == [0, 10, 20]  # the true wait, even beyond the time-out
    assert r.stats.timed_out == 2


def test_timeout_boundary_is_strict():
    r = run(config(1, (10, 30)), [0, 0], lat=[20, 21])
    assert r.timed_out.tolist() == [False, True]  # 30 is in time, 31 is not
    assert r.t_done_ns.tolist() == [30, 30]


def test_device_that_never_answers_does_not_overflow():
    r = run(config(1, (10, 30)), [2**62, 2**62], lat=[I64_MAX, 0])
    assert r.timed_out.tolist() == [True, False]
    assert r.t_done_ns.tolist() == [2**62 + 30, 2**62 + 20]


def test_negative_times_are_fine():
    r = run(config(1, (10, 1_000)), [-100, -100, -5])
    assert r.start_ns.tolist() == [-100, -90, -5]


def test_many_servers_never_wait():
    n = 3_000
    t = np.zeros(n, dtype=np.int64)
    r = CapacityModel(config(n, (10, 100))).process(
        t, np.zeros(n, np.uint8), np.zeros(n, np.int64)
    )
    assert not r.wait_ns.any() and not r.backlog.any()
    r2 = CapacityModel(config(n - 1, (10, 100))).process(
        t, np.zeros(n, np.uint8), np.zeros(n, np.int64)
    )
    assert r2.wait_ns[-1] == 10 and r2.backlog[-1] == 1 and not r2.wait_ns[:-1].any()


def test_empty_chunk():
    model = CapacityModel(config())
    r = model.process(*arrays([]))
    assert all(getattr(r, name).shape == (0,) for name in OUTPUTS)
    assert r.stats == CapacityStats() and model.stats == CapacityStats()
    assert model.t_last_ns is None


# --- servers from slots, uplift and threshold ------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "uplift", "threshold", "servers"),
    [
        (1, 1.0, 1.0, 1),
        (10, 1.5, 0.8, 12),
        (100, 0.29, 1.0, 29),  # binary floating point would say 28
        (1_000, 1.1, 0.7, 770),
        (3, 0.1, 1.0, 1),  # floor(0.3) = 0, at least one server
        (7, 1.0, 0.5, 3),
        (1_000_000, 2.0, 0.85, 1_700_000),
    ],
)
def test_effective_servers(slots, uplift, threshold, servers):
    cfg = config(slots, uplift=uplift, operating_threshold=threshold)
    assert cfg.servers == servers
    assert CapacityModel(cfg).servers == servers


def test_threshold_makes_requests_queue():
    # 4 slots at a 0.5 threshold are 2 servers: the third of three simultaneous requests waits
    r = run(config(4, (10, 1_000), operating_threshold=0.5), [0, 0, 0])
    assert r.wait_ns.tolist() == [0, 0, 10]


# --- the kernel against the reference ---------------------------------------------------------


@st.composite
def workloads(draw, max_n: int = 160):
    n_classes = draw(st.integers(1, 6))
    classes = tuple(
        CapacityClass(service_ns=draw(st.integers(1, 40)), timeout_ns=draw(st.integers(1, 150)))
        for _ in range(n_classes)
    )
    n = draw(st.integers(0, max_n))
    slots = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 17, 300]))
    gaps = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 3, 7, 20, 60]), min_size=n, max_size=n))
    t0 = draw(st.integers(-(10**12), 10**12))
    t = (t0 + np.cumsum(np.array(gaps, dtype=np.int64))).astype(np.int64)
    cls = np.array(
        draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)), dtype=np.uint8
    )
    lat = np.array(
        draw(st.lists(st.sampled_from([0, 0, 1, 5, 30, 100, 10**6]), min_size=n, max_size=n)),
        dtype=np.int64,
    )
    cuts = draw(st.lists(st.integers(0, n), max_size=4))
    return CapacityConfig(slots=slots, classes=classes), t, cls, lat, cuts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_kernel_matches_reference_in_any_chunking(work):
    cfg, t, cls, lat, cuts = work
    ref = reference_process(cfg, t, cls, lat)
    got, model, chunk_stats = run_chunked(cfg, t, cls, lat, cuts)
    assert_same(got, ref)
    assert model.stats == ref.stats
    merged = CapacityStats()
    for s in chunk_stats:
        merged = merged.merge(s)
    assert merged == ref.stats
    assert model.backlog == (int(ref.backlog[-1]) if len(t) else 0)


@settings(max_examples=100, deadline=None)
@given(workloads(max_n=100))
def test_reference_backlog_is_the_definition(work):
    """The reference's waiting-room heap against the definition, counted the slow way."""
    cfg, t, cls, lat, _ = work
    ref = reference_process(cfg, t, cls, lat)
    start = ref.start_ns.tolist()
    for i, ti in enumerate(t.tolist()):
        assert ref.backlog[i] == sum(1 for j in range(i + 1) if start[j] > ti)
    # FIFO: start times never decrease, and no request starts before it arrives
    assert all(a <= b for a, b in zip(start, start[1:], strict=False))
    assert (ref.start_ns >= t).all()
    # never more than c requests in service at once
    service = np.array([c.service_ns for c in cfg.classes])[cls]
    for i in range(len(start)):
        busy = np.sum((ref.start_ns <= start[i]) & (ref.start_ns + service > start[i]))
        assert busy <= cfg.servers


LOADS = (0.5, 0.97, 1.3)


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize(("servers", "n_classes"), [(1, 1), (7, 3), (64, 9), (1_000, 4)])
def test_kernel_matches_reference_on_long_runs(rng, servers, n_classes, load):
    """Poisson arrivals at a given offered load, long enough for rings to grow."""
    n = 40_000
    service = rng.integers(1_000, 50_000, size=n_classes)
    classes = tuple(
        CapacityClass(service_ns=int(s), timeout_ns=int(rng.integers(10_000, 400_000)))
        for s in service
    )
    cfg = CapacityConfig(slots=servers, classes=classes)
    cls = rng.integers(0, n_classes, size=n).astype(np.uint8)
    mean_gap = service.mean() / (servers * load)
    t = np.cumsum(rng.exponential(mean_gap, size=n)).astype(np.int64)
    t[rng.random(n) < 0.05] = 0  # bursts of equal timestamps
    t = np.maximum.accumulate(t)
    lat = rng.integers(0, 300_000, size=n) * (rng.random(n) < 0.7)
    cuts = rng.integers(0, n, size=int(rng.integers(0, 6))).tolist()
    ref = reference_process(cfg, t, cls, lat)
    got, model, _ = run_chunked(cfg, t, cls, lat, cuts)
    seed = rng.bit_generator.seed_seq.entropy
    assert_same(got, ref, f"(rng seed {seed})")
    assert model.stats == ref.stats
    if load > 1:
        assert ref.stats.peak_backlog > 1_024  # the waiting ring had to grow


def test_big_burst_grows_every_ring():
    cfg = config(3, (10, 10**9), (7, 10**9))
    n = 5_000
    t = np.zeros(n, dtype=np.int64)
    cls = (np.arange(n) % 2).astype(np.uint8)
    lat = np.zeros(n, dtype=np.int64)
    ref = reference_process(cfg, t, cls, lat)
    got, model, _ = run_chunked(cfg, t, cls, lat, [1, 2, 2, 4_000])
    assert_same(got, ref)
    assert model.backlog == n - 3 == model.stats.peak_backlog
    assert ref.backlog[-1] == n - 3


def test_chunks_of_one():
    cfg = config(2, (10, 25), (4, 9))
    t, cls, lat = arrays([0, 0, 0, 1, 1, 3, 30, 30, 31], [0, 1, 0, 1, 1, 0, 0, 1, 1])
    ref = reference_process(cfg, t, cls, lat)
    got, _, _ = run_chunked(cfg, t, cls, lat, list(range(1, len(t))))
    assert_same(got, ref)


def test_process_into_writes_given_arrays():
    cfg = config(1, (10, 15))
    t, cls, lat = arrays([0, 0, 0])
    outs = {
        "start_ns": np.full(3, -1, np.int64),
        "t_done_ns": np.full(3, -1, np.int64),
        "timed_out": np.zeros(3, np.bool_),
        "wait_ns": np.full(3, -1, np.int64),
        "backlog": np.full(3, -1, np.int32),
    }
    stats = CapacityModel(cfg).process_into(t, cls, lat, **outs)
    ref = reference_process(cfg, t, cls, lat)
    assert_same(outs, ref)
    assert stats == ref.stats


# --- stats ----------------------------------------------------------------------------------


def test_stats_merge_and_derived_values():
    a = CapacityStats(
        requests=4, timed_out=1, total_wait_ns=40, max_wait_ns=20, peak_backlog=3,
        busy_ns=100, capacity_ns=400,
    )
    b = CapacityStats(requests=6, total_wait_ns=2**70, max_wait_ns=50, peak_backlog=1,
                      busy_ns=300, capacity_ns=400)
    m = a.merge(b)
    assert m == CapacityStats(
        requests=10, timed_out=1, total_wait_ns=40 + 2**70, max_wait_ns=50, peak_backlog=3,
        busy_ns=400, capacity_ns=800,
    )
    assert m == b.merge(a)
    assert a.merge(CapacityStats()) == a
    assert m.utilisation == 0.5 and m.timed_out_ratio == 0.1
    assert a.mean_wait_ns == 10.0
    assert CapacityStats().mean_wait_ns == 0.0 and CapacityStats().timed_out_ratio == 0.0
    assert math.isnan(CapacityStats().utilisation)
    assert msgspec.json.decode(msgspec.json.encode(m), type=CapacityStats) == m
    with pytest.raises(TypeError, match="CapacityStats"):
        a.merge({"requests": 1})  # type: ignore[arg-type]


def test_utilisation_spans_chunks():
    # 2 servers, arrivals from 0 to 100, 10 requests of 10 ns: 100 busy of 200 available
    cfg = config(2, (10, 1_000))
    model = CapacityModel(cfg)
    t = np.linspace(0, 100, 10).astype(np.int64)
    for part in (slice(0, 3), slice(3, 4), slice(4, 10)):
        model.process(t[part], np.zeros(len(t[part]), np.uint8), np.zeros(len(t[part]), np.int64))
    assert model.stats.capacity_ns == 200 and model.stats.busy_ns == 100
    assert model.stats.utilisation == 0.5


def test_wait_sum_is_exact_beyond_int64():
    # 1 server, service 2**40 ns: 20,000 simultaneous requests wait sum ~ 2**40 * n**2 / 2
    n = 20_000
    cfg = config(1, (2**40, 2**53))
    r = CapacityModel(cfg).process(*arrays([0] * n))
    exact = 2**40 * n * (n - 1) // 2
    assert exact > I64_MAX
    assert r.stats.total_wait_ns == exact
    assert r.stats.busy_ns == 2**40 * n


# --- per-interval aggregates -----------------------------------------------------------------


def test_interval_aggregates_against_brute_force(rng):
    t = np.sort(rng.integers(-500, 5_000, size=2_000)).astype(np.int64)
    backlog = rng.integers(0, 1_000, size=t.size).astype(np.int32)
    agg = interval_aggregates(t, backlog, 60, t0_ns=7)
    first = (int(t[0]) - 7) // 60
    assert agg.first_index == first
    assert agg.arrivals.sum() == t.size
    for j, start in enumerate(agg.start_ns.tolist()):
        assert start == 7 + (first + j) * 60
        inside = (t >= start) & (t < start + 60)
        assert agg.arrivals[j] == inside.sum()
        assert agg.max_backlog[j] == (backlog[inside].max() if inside.any() else 0)


def test_interval_aggregates_edges():
    e = interval_aggregates(np.zeros(0, np.int64), np.zeros(0, np.int32), 10)
    assert e.arrivals.shape == (0,) and e.max_backlog.dtype == np.int32
    one = interval_aggregates(np.array([59], np.int64), np.array([4], np.int32), 60)
    assert one.start_ns.tolist() == [0] and one.max_backlog.tolist() == [4]
    with pytest.raises(CapacityInputError, match="interval_ns"):
        interval_aggregates(np.array([1], np.int64), np.array([0], np.int32), 0)
    with pytest.raises(CapacityInputError, match="non-decreasing"):
        interval_aggregates(np.array([2, 1], np.int64), np.array([0, 0], np.int32), 10)
    with pytest.raises(CapacityInputError, match="backlog: expected dtype int32, got int64"):
        interval_aggregates(np.array([1], np.int64), np.array([0], np.int64), 10)
    with pytest.raises(CapacityInputError, match="t0_ns: expected an integer, got 1.5"):
        interval_aggregates(np.array([1], np.int64), np.array([0], np.int32), 10, t0_ns=1.5)


# --- configuration errors --------------------------------------------------------------------


GOOD = (CapacityClass(service_ns=10, timeout_ns=100),)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slots": 0}, "slots: expected an integer >= 1, got 0"),
        ({"slots": -3}, "slots: expected an integer >= 1, got -3"),
        ({"slots": 2.5}, "slots: expected an integer >= 1, got 2.5"),
        ({"slots": True}, "slots: expected an integer >= 1, got True"),
        ({"slots": "4"}, "slots: expected an integer >= 1, got '4'"),
        ({"uplift": 0.0}, "uplift: expected a finite number > 0, got 0.0"),
        ({"uplift": -1.5}, "uplift: expected a finite number > 0, got -1.5"),
        ({"uplift": math.nan}, "uplift: expected a finite number > 0, got nan"),
        ({"uplift": math.inf}, "uplift: expected a finite number > 0, got inf"),
        ({"uplift": "2"}, "uplift: expected a finite number > 0, got '2'"),
        ({"operating_threshold": 0.0}, r"threshold: expected a number in \(0, 1\], got 0.0"),
        ({"operating_threshold": 1.01}, r"threshold: expected a number in \(0, 1\], got 1.01"),
        ({"operating_threshold": math.nan}, r"operating_threshold: .* got nan"),
        ({"classes": ()}, "classes: expected 1 to 256 request classes, got 0"),
        ({"classes": GOOD * 257}, "classes: expected 1 to 256 request classes, got 257"),
        ({"classes": "abc"}, "classes: expected a sequence of CapacityClass, got 'abc'"),
        ({"classes": (GOOD[0], {"service_ns": 1})}, r"classes\[1\]: expected a CapacityClass"),
        ({"slots": 2**31, "uplift": 1.0}, "expected at most 2147483647 servers, got 2147483648"),
    ],
)
def test_config_errors_name_field_value_and_expectation(kwargs, message):
    args = {"slots": 4, "classes": GOOD, **kwargs}
    with pytest.raises(CapacityConfigError, match=message):
        CapacityConfig(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service_ns": 0}, r"service_ns: expected an integer number of ns in \(0, 2\*\*53\]"),
        ({"service_ns": -1}, r"service_ns: .* got -1"),
        ({"service_ns": 1.0}, r"service_ns: .* got 1.0"),
        ({"service_ns": 2**53 + 1}, r"service_ns: .* got 9007199254740993"),
        ({"timeout_ns": 0}, r"timeout_ns: expected an integer number of ns in .*, got 0"),
        ({"name": 3}, "name: expected a string or None, got 3"),
    ],
)
def test_class_errors(kwargs, message):
    with pytest.raises(CapacityConfigError, match=message):
        CapacityClass(**{"service_ns": 5, "timeout_ns": 50, **kwargs})


def test_config_error_hierarchy_and_names():
    assert issubclass(CapacityConfigError, ConfigError)
    assert issubclass(CapacityConfigError, ValueError)
    assert issubclass(CapacityInputError, DccsimError)
    assert issubclass(CapacityInputError, ValueError)
    with pytest.raises(CapacityConfigError, match="distinct names"):
        CapacityConfig(
            slots=1,
            classes=[CapacityClass(service_ns=1, timeout_ns=1, name="a")] * 2,
        )
    cfg = CapacityConfig(
        slots=1,
        classes=[
            CapacityClass(service_ns=1, timeout_ns=2, name="4.8.1"),
            CapacityClass(service_ns=3, timeout_ns=4),
        ],
    )
    assert isinstance(cfg.classes, tuple)
    assert cfg.class_names == ("4.8.1", "class1") and cfg.n_classes == 2
    assert cfg.service_ns_array().tolist() == [1, 3]
    assert cfg.timeout_ns_array().tolist() == [2, 4]


def test_config_from_toml_and_json():
    text = """
    slots = 2000
    uplift = 1.25
    operating_threshold = 0.8

    [[classes]]
    name = "4.8.1"
    service_ns = 4_000_000
    timeout_ns = 30_000_000_000

    [[classes]]
    service_ns = 1_000_000
    timeout_ns = 5_000_000_000
    """
    cfg = msgspec.toml.decode(text, type=CapacityConfig)
    assert cfg.servers == 2000 and cfg.classes[0].name == "4.8.1"
    assert msgspec.json.decode(msgspec.json.encode(cfg), type=CapacityConfig) == cfg
    with pytest.raises(msgspec.ValidationError, match="slots: expected an integer >= 1, got 0"):
        msgspec.json.decode(b'{"slots": 0, "classes": [{"service_ns": 1, "timeout_ns": 1}]}',
                            type=CapacityConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field `slot`"):
        msgspec.json.decode(b'{"slot": 1, "slots": 1, "classes": []}', type=CapacityConfig)


# --- input errors ----------------------------------------------------------------------------


def good_inputs(n: int = 4):
    return arrays(list(range(n)), [0] * n, [0] * n)


BAD_INPUTS = {
    "t int32": (
        lambda t, c, d: (t.astype(np.int32), c, d),
        "t_arrive_ns: expected dtype int64, got int32",
    ),
    "t list": (
        lambda t, c, d: (t.tolist(), c, d),
        "t_arrive_ns: expected a numpy array of int64, got list",
    ),
    "cls int64": (
        lambda t, c, d: (t, c.astype(np.int64), d),
        "cls: expected dtype uint8, got int64",
    ),
    "latency float": (
        lambda t, c, d: (t, c, d.astype(np.float64)),
        "device_latency_ns: expected dtype int64, got float64",
    ),
    "cls short": (
        lambda t, c, d: (t, c[:3], d),
        r"cls: expected length 4 \(the length of t_arrive_ns\), got 3",
    ),
    "t 2-D": (
        lambda t, c, d: (t.reshape(2, 2), c, d),
        r"t_arrive_ns: expected a 1-D array, got shape \(2, 2\)",
    ),
    "t strided": (
        lambda t, c, d: (np.repeat(t, 2)[::2], c, d),
        "t_arrive_ns: expected a contiguous array",
    ),
    "t decreasing": (
        lambda t, c, d: (t[::-1].copy(), c, d),
        r"t_arrive_ns\[1\]: expected non-decreasing arrival times, got 2 after "
        r"t_arrive_ns\[0\] = 3",
    ),
    "cls too big": (
        lambda t, c, d: (t, c + np.uint8(2), d),
        r"cls\[0\]: expected a class index below 2, got 2",
    ),
    "latency negative": (
        lambda t, c, d: (t, c, d - 1),
        r"device_latency_ns\[0\]: expected >= 0, got -1",
    ),
    "t too late": (
        lambda t, c, d: (t + 2**62, c, d),
        r"t_arrive_ns\[3\]: expected a time within \+-2\*\*62 ns",
    ),
}


@pytest.mark.parametrize(("change", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_input_errors_name_argument_and_value(change, message):
    model = CapacityModel(config(1, (10, 100), (20, 200)))
    with pytest.raises(CapacityInputError, match=message):
        model.process(*change(*good_inputs()))
    # nothing was taken in: the model still behaves like a fresh one
    r = model.process(*good_inputs())
    assert_same(r, reference_process(model.config, *good_inputs()))
    assert model.stats == r.stats


def test_order_is_checked_across_chunks():
    model = CapacityModel(config())
    model.process(*arrays([5, 10]))
    with pytest.raises(
        CapacityInputError,
        match=r"t_arrive_ns\[0\]: .* got 9 after the previous chunk's last arrival 10",
    ):
        model.process(*arrays([9, 20]))
    assert model.t_last_ns == 10
    model.process(*arrays([10, 20]))  # equal to the last arrival is fine
    assert model.t_last_ns == 20


def test_backlog_limit_breaks_the_model_for_good(monkeypatch):
    monkeypatch.setattr(capacity, "_MAX_PENDING", 2_048)
    model = CapacityModel(config())
    with pytest.raises(CapacityInputError, match="backlog: expected at most 2048 waiting"):
        model.process(*arrays([0] * 5_000))
    with pytest.raises(CapacityInputError, match="model: unusable after an earlier error"):
        model.process(*arrays([1]))


def test_state_bytes_grow_with_servers_used_and_backlog():
    model = CapacityModel(config(3_000, (10, 100), (20, 100)))
    before = model.state_bytes
    model.process(*arrays([0] * 10_000, [0, 1] * 5_000))
    assert model.backlog == 7_000
    # 3,000 server free times and 7,000 waiting start times, in power-of-two rings
    assert 8 * (3_000 + 7_000) < model.state_bytes - before < 2 * 8 * (4_096 + 8_192)


def test_output_errors():
    model = CapacityModel(config())
    t, c, d = good_inputs()
    outs = {
        "start_ns": np.empty(4, np.int64),
        "t_done_ns": np.empty(4, np.int64),
        "timed_out": np.empty(4, np.bool_),
        "wait_ns": np.empty(4, np.int64),
        "backlog": np.empty(4, np.int32),
    }
    bad = dict(outs, backlog=np.empty(4, np.int64))
    with pytest.raises(CapacityInputError, match="backlog: expected dtype int32, got int64"):
        model.process_into(t, c, d, **bad)
    bad = dict(outs, timed_out=np.empty(5, np.bool_))
    with pytest.raises(CapacityInputError, match="timed_out: expected length 4"):
        model.process_into(t, c, d, **bad)
    ro = np.empty(4, np.int64)
    ro.flags.writeable = False
    with pytest.raises(CapacityInputError, match="wait_ns: expected a writeable array"):
        model.process_into(t, c, d, **dict(outs, wait_ns=ro))
    with pytest.raises(CapacityInputError, match="config: expected a CapacityConfig, got dict"):
        CapacityModel({"slots": 1})  # type: ignore[arg-type]
    assert model.stats == CapacityStats()


# --- documentation and import hygiene --------------------------------------------------------


def test_docstring_examples_run():
    result = doctest.testmod(capacity, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_import_compiles_nothing():
    code = (
        "import dccsim.core.capacity, dccsim.core._kernels as k;"
        "assert not getattr(k.dsp_fifo, 'signatures', None);"
        "assert not getattr(k.dsp_fluid, 'signatures', None);"
        "assert not getattr(k.check_requests, 'signatures', None)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the fluid model, admission and shedding ----------------------------------------------------

SERVED, REFUSED, SHED = 0, 1, 2


def fluid(slots: int = 1, *classes: tuple[int, int], **kw) -> CapacityConfig:
    return config(slots, *classes, model="fluid", **kw)


def test_fluid_waits_are_the_work_ahead_over_the_rate():
    # 2 server-equivalents, service 10: the work ahead drains at 2 per ns
    r = run(fluid(2, (10, 1_000)), [0, 0, 0, 10])
    assert r.wait_ns.tolist() == [0, 5, 10, 5]  # at 10: work 30 - 2 * 10 = 10 ahead -> wait 5
    assert r.start_ns.tolist() == [0, 5, 10, 15]
    assert r.backlog.tolist() == [0, 1, 2, 1]  # at 10 the third starts: only the fourth waits


def test_fluid_capacity_is_fractional():
    # 1 slot x 1.5 = 1.5 server-equivalents (the server model floors it to 1)
    cfg = fluid(1, (30, 10**6), uplift=1.5)
    assert cfg.rate == 1.5 and cfg.servers == 1
    r = run(cfg, [0, 0, 0])
    assert r.wait_ns.tolist() == [0, 20, 40]
    assert r.stats.busy_ns == 90


def test_fluid_tells_uplifts_apart_where_floored_servers_do_not():
    t = list(range(0, 10_000, 9))  # offered 10/9 = 1.11 servers of work
    waits = {}
    for model in ("fluid", "servers"):
        for uplift in (1.05, 1.1):
            r = run(config(1, (10, 10**9), uplift=uplift, model=model), t)
            waits[model, uplift] = int(r.wait_ns.sum())
    assert waits["servers", 1.05] == waits["servers", 1.1]  # both floor to one server
    assert waits["fluid", 1.05] > waits["fluid", 1.1] > 0


@pytest.mark.parametrize("model", ["servers", "fluid"])
def test_admission_refuses_without_taking_service(model):
    one = CapacityClass(service_ns=10, timeout_ns=1_000, max_wait_ns=15)
    cfg = CapacityConfig(slots=1, model=model, classes=(one,))
    r = CapacityModel(cfg).process(*arrays([0, 0, 0, 0, 20]))
    assert r.status.tolist() == [SERVED, SERVED, REFUSED, REFUSED, SERVED]
    assert r.t_done_ns.tolist()[:4] == [10, 20, 0, 0]  # refused: answered at once
    assert r.wait_ns.tolist() == [0, 10, 0, 0, 0]  # the refused took no service: free at 20
    assert r.stats.refused == 2 and r.stats.busy_ns == 30 and r.stats.timed_out == 0


@pytest.mark.parametrize("model", ["servers", "fluid"])
def test_expired_requests_are_shed_or_served_late(model):
    t = [0, 0, 0, 0, 0]
    shed = CapacityModel(config(1, (10, 25), model=model, shed_expired=True)).process(*arrays(t))
    # waits 0, 10, 20, then 30 >= 25: shed (answered at the time-out, no service), and the next too
    assert shed.status.tolist() == [SERVED, SERVED, SERVED, SHED, SHED]
    assert shed.t_done_ns.tolist() == [10, 20, 25, 25, 25]
    assert shed.timed_out.tolist() == [False, False, True, True, True]
    assert shed.stats.shed == 2 and shed.stats.busy_ns == 30 and shed.stats.timed_out == 3
    late = CapacityModel(config(1, (10, 25), model=model)).process(*arrays(t))
    assert late.status.tolist() == [SERVED] * 5 and late.stats.busy_ns == 50
    assert late.wait_ns.tolist() == [0, 10, 20, 30, 40]


@st.composite
def overload_workloads(draw, model: str, max_n: int = 160):
    n_classes = draw(st.integers(1, 4))
    classes = tuple(
        CapacityClass(
            service_ns=draw(st.integers(1, 40)),
            timeout_ns=draw(st.integers(1, 150)),
            max_wait_ns=draw(st.one_of(st.none(), st.integers(0, 100))),
        )
        for _ in range(n_classes)
    )
    n = draw(st.integers(0, max_n))
    slots = draw(st.sampled_from([1, 2, 3, 5, 17]))
    uplift = draw(st.sampled_from([1.0, 0.37, 1.05, 1.1, 2.5]))
    gaps = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 3, 7, 20, 60]), min_size=n, max_size=n))
    t0 = draw(st.integers(-(10**12), 10**12))
    t = (t0 + np.cumsum(np.array(gaps, dtype=np.int64))).astype(np.int64)
    cls = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)), dtype=np.uint8)
    lat = np.array(draw(st.lists(st.sampled_from([0, 1, 5, 30, 10**6]), min_size=n, max_size=n)), dtype=np.int64)
    cuts = draw(st.lists(st.integers(0, n), max_size=4))
    cfg = CapacityConfig(
        slots=slots, uplift=uplift, classes=classes, model=model, shed_expired=draw(st.booleans())
    )
    return cfg, t, cls, lat, cuts


@pytest.mark.parametrize(("model", "reference"), [("servers", reference_process), ("fluid", reference_fluid)])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kernels_match_references_with_admission_and_shedding(model, reference, data):
    cfg, t, cls, lat, cuts = data.draw(overload_workloads(model))
    ref = reference(cfg, t, cls, lat)
    got, m, chunk_stats = run_chunked(cfg, t, cls, lat, cuts)
    assert_same(got, ref, names=ALL_OUTPUTS)
    assert m.stats == ref.stats
    merged = CapacityStats()
    for one in chunk_stats:
        merged = merged.merge(one)
    assert merged == ref.stats
    # a refused or shed request takes no service; every served one does
    service = cfg.service_ns_array()[cls]
    assert ref.stats.busy_ns == int(service[ref.status == SERVED].sum())
    assert ref.stats.refused == int((ref.status == REFUSED).sum())
    assert ref.stats.shed == int((ref.status == SHED).sum())


@settings(max_examples=100, deadline=None)
@given(overload_workloads("fluid", max_n=100))
def test_fluid_reference_is_fifo_and_work_conserving(work):
    """FIFO starts never decrease; the served work never outruns the rate."""
    cfg, t, cls, lat, _ = work
    ref = reference_fluid(cfg, t, cls, lat)
    served = ref.status == SERVED
    start = ref.start_ns[served]
    assert (np.diff(start) >= 0).all() and (start >= t[served]).all()
    service = cfg.service_ns_array()[cls][served]
    for i in range(len(start)):  # work started before start[i] fits in the time since the first arrival
        ahead = int(service[:i].sum())
        assert ahead <= cfg.rate * (start[i] - t[0]) + cfg.rate + 1e-6 * ahead + service.max(initial=0) + 1


@pytest.mark.parametrize("load", [0.5, 0.97, 1.3])
def test_fluid_kernel_matches_reference_on_long_runs(rng, load):
    n, rate = 40_000, 37.5
    classes = tuple(CapacityClass(service_ns=s, timeout_ns=400_000, max_wait_ns=w) for s, w in
                    [(20_000, None), (35_000, 150_000), (5_000, 50_000)])  # fmt: skip
    cfg = CapacityConfig(slots=25, uplift=1.5, classes=classes, model="fluid", shed_expired=True)
    assert cfg.rate == rate
    cls = rng.integers(0, 3, size=n).astype(np.uint8)
    t = np.cumsum(rng.exponential(20_000 / (rate * load), size=n)).astype(np.int64)
    lat = rng.integers(0, 300_000, size=n) * (rng.random(n) < 0.7)
    ref = reference_fluid(cfg, t, cls, lat)
    got, model, _ = run_chunked(cfg, t, cls, lat, rng.integers(0, n, size=4).tolist())
    assert_same(got, ref, names=ALL_OUTPUTS)
    assert model.stats == ref.stats
    if load > 1:  # refusals and shedding bound the wait below the time-out
        assert ref.stats.refused > 0 and ref.stats.max_wait_ns < 400_000


def test_fluid_big_burst_grows_the_waiting_ring():
    cfg = fluid(3, (10, 10**9), (7, 10**9), uplift=0.9)
    n = 5_000
    t, cls, lat = np.zeros(n, dtype=np.int64), (np.arange(n) % 2).astype(np.uint8), np.zeros(n, dtype=np.int64)
    ref = reference_fluid(cfg, t, cls, lat)
    got, model, _ = run_chunked(cfg, t, cls, lat, [1, 2, 2, 4_000])
    assert_same(got, ref, names=ALL_OUTPUTS)
    assert model.backlog == n - 1 == model.stats.peak_backlog


def test_model_and_admission_errors_name_the_field():
    with pytest.raises(CapacityConfigError, match="model: expected one of fluid, servers, got 'heap'"):
        config(1, model="heap")
    with pytest.raises(CapacityConfigError, match="max_wait_ns: expected None or an integer"):
        CapacityClass(service_ns=1, timeout_ns=1, max_wait_ns=-1)
    with pytest.raises(CapacityConfigError, match="shed_expired: expected true or false"):
        config(1, shed_expired=1)


# --- credits: work the DSP was charged and did not need (cache hits, [cache] hit_service_share) ----


def test_credit_lowers_the_fluid_backlog_exactly_and_never_below_zero():
    model = CapacityModel(fluid(1, (10, 1_000)))
    model.process(*arrays([0, 0, 0]))  # 30 server-ns of work as of t = 0
    assert model.work_ns == 30.0
    assert model.credit(12) == 12.0 and model.work_ns == 18.0 and model.credit_left_ns == 0.0
    assert model.credit(25) == 18.0 and model.work_ns == 0.0  # never below zero ...
    assert model.credit_left_ns == 7.0  # ... the rest is left for the next requests served
    r = model.process(*arrays([40, 40]))
    # the first uses 7 of the credit (adds 3), the second adds its 10: no wait before them
    assert r.wait_ns.tolist() == [0, 3] and model.credit_left_ns == 0.0
    assert r.stats.busy_ns == 20  # the requests' service is still what they asked


def test_credit_does_not_let_a_later_request_start_before_an_earlier_one():
    model = CapacityModel(fluid(1, (10, 1_000)))
    model.process(*arrays([0, 0, 0, 0]))  # starts 0, 10, 20, 30
    model.credit(40)
    r = model.process(*arrays([1]))
    assert r.start_ns.tolist() == [30]  # FIFO: not before the last start given
    assert model.credit(0) == 0.0 and model.credit_left_ns == 0.0  # a new credit replaces what is left


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, math.inf, "3", None])
def test_credit_takes_a_finite_amount_of_work(bad):
    model = CapacityModel(fluid(1, (10, 1_000)))
    with pytest.raises(CapacityInputError, match="work_ns"):
        model.credit(bad)


def test_credit_needs_the_fluid_model():
    with pytest.raises(CapacityInputError, match="fluid"):
        CapacityModel(config(1, (10, 1_000))).credit(5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fluid_kernel_matches_reference_with_credits_between_chunks(data):
    cfg, t, cls, lat, cuts = data.draw(overload_workloads("fluid"))
    bounds = sorted(set(c for c in cuts if 0 < c < len(t)))
    amounts = [float(data.draw(st.sampled_from([0, 1, 5, 17.5, 60, 10**4]))) for _ in bounds]
    ref = reference_fluid(cfg, t, cls, lat, credits=dict(zip(bounds, amounts, strict=True)))
    model = CapacityModel(cfg)
    parts, edges = [], [0, *bounds, len(t)]
    for j, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        if j:
            model.credit(amounts[j - 1])
        parts.append(model.process(t[a:b], cls[a:b], lat[a:b]))
    got = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ALL_OUTPUTS}
    assert_same(got, ref, names=ALL_OUTPUTS)
    assert model.stats == ref.stats
    if not any(amounts):  # no credit: the run without credits
        assert_same(got, reference_fluid(cfg, t, cls, lat), names=ALL_OUTPUTS)
