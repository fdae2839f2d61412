"""Latency histograms: kernels against the plain-Python reference, merging, accuracy bounds."""

from __future__ import annotations

import doctest
import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from dccsim.bench.results import _kernels, histogram
from dccsim.bench.results.histogram import (
    MAX_TRACKABLE_NS,
    N_BUCKETS,
    RELATIVE_ERROR,
    IntervalHistograms,
    LatencyHistogram,
    bucket_bounds,
    reference_bucket_index,
    reference_percentile,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# values spread over every octave, not only the huge ones a uniform int64 draw favours
LATENCY = st.one_of(
    I64,
    st.integers(min_value=0, max_value=62).flatmap(
        lambda b: st.integers(min_value=-(2**b), max_value=2**b)
    ),
)
QS = st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=6)
EDGES = sorted(
    {v for e in range(64) for v in (2**e - 1, 2**e, 2**e + 1) if v < 2**63}
    | {-(2**63), -1, 0, MAX_TRACKABLE_NS, MAX_TRACKABLE_NS + 1}
)


@pytest.fixture(scope="module", autouse=True)
def _warm_kernels() -> None:
    _kernels.warm_up()


def _hist(values: list[int] | np.ndarray) -> LatencyHistogram:
    h = LatencyHistogram()
    h.record(np.asarray(values, dtype=np.int64))
    return h


# --- bucket layout ---------------------------------------------------------------------------


def test_layout_constants() -> None:
    assert N_BUCKETS == 2689
    assert MAX_TRACKABLE_NS == 2**47 - 1
    assert RELATIVE_ERROR == 1 / 128


def test_bucket_bounds_tile_the_range() -> None:
    lo, hi = bucket_bounds()
    assert not lo.flags.writeable
    regular = np.arange(1, N_BUCKETS - 1)
    assert lo[1] == 1 and hi[-2] == MAX_TRACKABLE_NS + 1
    assert np.array_equal(hi[regular][:-1], lo[regular][1:])  # contiguous, no gaps
    width = hi[regular] - lo[regular]
    assert (width >= 1).all()
    assert (width[:127] == 1).all()  # exact below 128 ns
    assert (width[127:] / lo[regular][127:] <= 1 / 64).all()
    for i in range(1, N_BUCKETS - 1):
        assert reference_bucket_index(int(lo[i])) == i
        assert reference_bucket_index(int(hi[i]) - 1) == i
        assert histogram._reference_bounds(i) == (lo[i], hi[i])


@settings(max_examples=300, deadline=None)
@given(st.lists(LATENCY, max_size=50))
@example(EDGES)
def test_kernel_bucket_index_matches_reference(values: list[int]) -> None:
    assert [_kernels.bucket_index(v) for v in values] == [reference_bucket_index(v) for v in values]
    counts = np.zeros(N_BUCKETS, np.int64)
    for v in values:
        counts[reference_bucket_index(v)] += 1
    h = _hist(values)
    assert np.array_equal(h.counts, counts)
    assert h.count == len(values)
    assert h.sum == sum(values)
    if values:
        assert (h.min, h.max) == (min(values), max(values))


# --- percentiles -----------------------------------------------------------------------------


@settings(deadline=None)  # the first example may compile or load kernels
@given(st.lists(LATENCY, min_size=1, max_size=60), QS)
@example(EDGES, [0, 0.1, 50, 99.9, 100])
def test_percentiles_match_reference(values: list[int], qs: list[float]) -> None:
    h = _hist(values)
    got = h.percentiles(qs)
    want = [reference_percentile(h.counts, min(values), max(values), q) for q in qs]
    assert got.tolist() == want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    mu=st.floats(5, 25),
    sigma=st.floats(0.1, 3),
    qs=QS,
)
def test_percentiles_within_stated_error_of_numpy(
    seed: int, n: int, mu: float, sigma: float, qs: list[float]
) -> None:
    x = np.random.default_rng(seed).lognormal(mu, sigma, n).astype(np.int64)
    x = x[(x >= 0) & (x <= MAX_TRACKABLE_NS)]
    if x.size == 0:
        return
    h = _hist(x)
    got = h.percentiles(qs)
    exact = np.percentile(x, qs, method="inverted_cdf")
    for g, e in zip(got, exact, strict=True):
        if e < 128:
            assert g == e
        else:
            assert abs(g - e) <= RELATIVE_ERROR * e, (g, e)


def test_percentiles_exact_at_the_ends_and_below_128ns(rng: np.random.Generator) -> None:
    x = rng.integers(1, 128, 1000)
    h = _hist(x)
    qs = [0, 1, 25, 50, 75, 99, 100]
    assert h.percentiles(qs).tolist() == np.percentile(x, qs, method="inverted_cdf").tolist()
    y = rng.lognormal(15, 2, 1000).astype(np.int64)
    h = _hist(y)
    assert h.percentile(0) == y.min() and h.percentile(100) == y.max()


def test_under_and_overflow_are_counted_and_extremes_stay_exact() -> None:
    big = 2**62 + 12345
    h = _hist([-5, 0, 10, 20, 2**47, big])
    assert (h.count, h.underflow, h.overflow) == (6, 2, 2)
    assert (h.min, h.max) == (-5, big)
    assert h.sum == -5 + 0 + 10 + 20 + 2**47 + big
    assert h.percentile(100) == float(big)
    assert h.percentile(90) == float(big)  # overflow bucket reports the exact max
    assert h.percentile(30) == 0.0  # underflow bucket reports 0 inside [min, max]
    assert h.percentile(0) == -5.0
    assert _hist([-7, -3]).percentile(60) == -3.0  # all underflow: 0 clamped to max


def test_sum_is_exact_beyond_int64() -> None:
    values = np.full(1000, 2**62, np.int64)
    h = _hist(values)
    h.record(np.full(3, -(2**63), np.int64))
    assert h.sum == 1000 * 2**62 - 3 * 2**63
    assert h.mean == h.sum / 1003


def test_empty_histogram() -> None:
    h = LatencyHistogram()
    assert (h.count, h.min, h.max, h.sum) == (0, None, None, 0)
    assert math.isnan(h.mean) and math.isnan(h.percentile(50))
    assert np.isnan(h.percentiles([1, 2])).all()
    h.record(np.array([], np.int64))
    assert h == LatencyHistogram()
    assert repr(h) == "LatencyHistogram(count=0)"


# --- merge and serialisation -----------------------------------------------------------------


@settings(deadline=None)  # the first example may compile or load kernels
@given(st.lists(LATENCY, max_size=80), st.data())
def test_merge_of_parts_equals_whole(values: list[int], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=4)))
    bounds = [0, *cuts, len(values)]
    merged = LatencyHistogram()
    for a, b in zip(bounds, bounds[1:], strict=False):
        merged.merge(_hist(values[a:b]))
    whole = _hist(values)
    assert merged == whole
    np.testing.assert_array_equal(merged.percentiles([50, 99]), whole.percentiles([50, 99]))


@settings(deadline=None)  # the first example may compile or load kernels
@given(st.lists(LATENCY, max_size=60))
def test_dict_round_trip_through_json(values: list[int]) -> None:
    h = _hist(values)
    d = json.loads(json.dumps(h.to_dict()))
    assert len(d["index"]) == np.count_nonzero(h.counts)
    assert LatencyHistogram.from_dict(d) == h


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"sub_bits": 7}, "sub_bits: expected 6, got 7"),
        ({"format": "hdr"}, "format"),
        ({"count": 99}, "count: got 99, but the buckets hold 3"),
        ({"index": [1, 2]}, "index/counts"),
        ({"index": [0, 1, N_BUCKETS]}, "index: expected values in"),
        ({"counts": [1, 3, -1]}, "non-negative"),
        ({"min": None}, "min/max"),
        ({"sum": "x"}, "malformed"),
    ],
)
def test_from_dict_rejects_bad_fields(change: dict[str, object], match: str) -> None:
    d = _hist([1, 500, 10**9]).to_dict() | change
    with pytest.raises(ValueError, match=match):
        LatencyHistogram.from_dict(d)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1, 2], "values_ns: expected a numpy int64 array, got list"),
        (np.array([1.0]), "values_ns: expected dtype int64, got float64"),
        (np.array([1], np.int32), "expected dtype int64, got int32"),
        (np.zeros((2, 2), np.int64), r"expected a 1-D array, got shape \(2, 2\)"),
    ],
)
def test_record_rejects_bad_input(values: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LatencyHistogram().record(values)  # type: ignore[arg-type]


def test_record_accepts_strided_views() -> None:
    x = np.arange(20, dtype=np.int64)
    assert _hist(x[::3]) == _hist(x[::3].copy())


@pytest.mark.parametrize("q", [-1, 100.5, float("nan")])
def test_percentile_rejects_out_of_range_q(q: float) -> None:
    with pytest.raises(ValueError, match="expected a percentile in"):
        _hist([1]).percentile(q)


def test_histograms_pickle_for_shards_in_other_processes(rng: np.random.Generator) -> None:
    x = rng.lognormal(15, 2, 500).astype(np.int64)
    h = _hist(x)
    ih = IntervalHistograms(10**6, 4)
    ih.record(np.sort(rng.integers(0, 4 * 10**6, 500)), x)
    assert pickle.loads(pickle.dumps(h)) == h
    assert pickle.loads(pickle.dumps(ih)) == ih


def test_merge_rejects_other_types() -> None:
    with pytest.raises(ValueError, match="expected a LatencyHistogram, got dict"):
        LatencyHistogram().merge({})  # type: ignore[arg-type]


# --- per-interval histograms -----------------------------------------------------------------


def _reference_intervals(
    t: np.ndarray, v: np.ndarray, start: int, width: int, n: int
) -> tuple[list[LatencyHistogram], int]:
    hists = [LatencyHistogram() for _ in range(n)]
    outside = 0
    for ti, vi in zip(t.tolist(), v.tolist(), strict=True):
        k = (ti - start) // width
        if ti < start or k >= n:
            outside += 1
        else:
            hists[k].record(np.array([vi], np.int64))
    return hists, outside


@settings(deadline=None)  # the first example may compile or load kernels
@given(
    st.lists(st.tuples(st.integers(-50, 250), LATENCY), max_size=60),
    st.integers(-20, 20),
    st.integers(1, 60),
    st.integers(1, 8),
    QS,
)
def test_interval_histograms_match_per_interval_reference(
    rows: list[tuple[int, int]], start: int, width: int, n: int, qs: list[float]
) -> None:
    t = np.array([r[0] for r in rows], np.int64)
    v = np.array([r[1] for r in rows], np.int64)
    ih = IntervalHistograms(width, n, start_ns=start)
    ih.record(t, v)
    hists, outside = _reference_intervals(t, v, start, width, n)
    assert ih.outside == outside
    assert ih.counts_per_interval().tolist() == [h.count for h in hists]
    got = ih.percentiles_per_interval(qs)
    assert got.shape == (n, len(qs))
    for k, h in enumerate(hists):
        counts, vmin, vmax = ih.interval(k)
        assert np.array_equal(counts, h.counts) and (vmin, vmax) == (h.min, h.max)
        np.testing.assert_array_equal(got[k], h.percentiles(qs))
    np.testing.assert_array_equal(
        ih.max_per_interval(), [np.nan if h.max is None else h.max for h in hists]
    )
    np.testing.assert_array_equal(
        ih.min_per_interval(), [np.nan if h.min is None else h.min for h in hists]
    )


@settings(deadline=None)  # the first example may compile or load kernels
@given(st.lists(st.tuples(st.integers(0, 99), LATENCY), max_size=60), st.data())
def test_interval_merge_of_parts_equals_whole(
    rows: list[tuple[int, int]], data: st.DataObject
) -> None:
    t = np.array([r[0] for r in rows], np.int64)
    v = np.array([r[1] for r in rows], np.int64)
    cut = data.draw(st.integers(0, len(rows)))
    whole = IntervalHistograms(10, end_ns=95)
    whole.record(t, v)
    a, b = IntervalHistograms(10, 10), IntervalHistograms(10, 10)
    a.record(t[:cut], v[:cut])
    b.record(t[cut:], v[cut:])
    assert a.merge(b) == whole


def test_interval_day_of_quarter_hours(rng: np.random.Generator) -> None:
    day, quarter = 86_400 * 10**9, 900 * 10**9
    t = np.sort(rng.integers(0, day, 200_000))
    lat = rng.lognormal(18 + 2 * (t / day), 1).astype(np.int64)  # latency grows over the day
    ih = IntervalHistograms(quarter, start_ns=0, end_ns=day)
    ih.record(t, lat)
    assert ih.n_intervals == 96 and ih.end_ns == day
    assert ih.interval_starts_ns()[[0, -1]].tolist() == [0, day - quarter]
    p = ih.percentiles_per_interval([50, 99])
    k = t // quarter
    for i in (0, 40, 95):
        exact = np.percentile(lat[k == i], [50, 99], method="inverted_cdf")
        assert np.all(np.abs(p[i] - exact) <= RELATIVE_ERROR * exact)
    assert p[-1, 0] > p[0, 0]


def test_interval_histograms_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="interval_ns: expected a positive width, got 0"):
        IntervalHistograms(0, 3)
    with pytest.raises(ValueError, match="exactly one of n_intervals and end_ns"):
        IntervalHistograms(10)
    with pytest.raises(ValueError, match="exactly one of"):
        IntervalHistograms(10, 3, end_ns=50)
    with pytest.raises(ValueError, match="end_ns: expected > start_ns"):
        IntervalHistograms(10, start_ns=5, end_ns=5)
    with pytest.raises(ValueError, match="n_intervals: expected a positive count, got 0"):
        IntervalHistograms(10, 0)
    ih = IntervalHistograms(10, 3)
    with pytest.raises(ValueError, match="t_ns: expected dtype int64, got uint64"):
        ih.record(np.zeros(2, np.uint64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="equal lengths, got 2 and 3"):
        ih.record(np.zeros(2, np.int64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"expected \(start_ns, interval_ns, n_intervals\)"):
        ih.merge(IntervalHistograms(10, 4))


# --- docs and warm-up ------------------------------------------------------------------------


def test_docstring_examples_run() -> None:
    result = doctest.testmod(histogram, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


JIT_DISABLED = not hasattr(_kernels.record_kernel, "signatures")


@pytest.mark.skipif(JIT_DISABLED, reason="NUMBA_DISABLE_JIT: kernels are plain functions")
def test_import_compiles_nothing_and_warm_up_compiles_every_kernel() -> None:
    code = (
        "import dccsim.bench.results.histogram, dccsim.bench.results._kernels as k\n"
        "kernels = [k.bucket_index, k.record_kernel, k.record_intervals_kernel]\n"
        "before = [len(f.signatures) for f in kernels]\n"
        "k.warm_up()\n"
        "print(before, [len(f.signatures) for f in kernels])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[0, 0, 0] [1, 1, 1]"


@given(st.lists(st.tuples(LATENCY, st.integers(0, 4)), max_size=80), st.integers(1, 3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_grouped_histograms_are_each_group_s_own_histogram(pairs: list[tuple[int, int]], parts: int) -> None:
    """The grouped kernel against its reference: each group's values in a histogram of their
    own (counts, extremes, sum); and recording in parts, then merging, gives the same."""
    from dccsim.bench.results.histogram import GroupedHistograms

    values = np.array([v for v, _ in pairs], np.int64)
    groups = np.array([g for _, g in pairs], np.uint8)
    whole = GroupedHistograms(5)
    whole.record(values, groups)
    for g in range(5):
        ref = LatencyHistogram()
        ref.record(values[groups == g])
        assert whole.histogram(g) == ref and whole.histogram(g).sum == ref.sum
    assert whole.groups() == sorted(set(groups.tolist()))
    merged = GroupedHistograms(5)
    for chunk_v, chunk_g in zip(np.array_split(values, parts), np.array_split(groups, parts), strict=True):
        part = GroupedHistograms(5)
        part.record(chunk_v, chunk_g)
        merged.merge(part)
    assert all(merged.histogram(g) == whole.histogram(g) for g in range(5))


def test_grouped_histograms_refuse_groups_out_of_range() -> None:
    from dccsim.bench.results.histogram import GroupedHistograms

    with pytest.raises(ValueError, match=r"groups: expected values in \[0, 2\), got \[0, 3\]"):
        GroupedHistograms(2).record(np.array([1, 2], np.int64), np.array([0, 3], np.uint8))
