"""``dccsim compare``: limits, directions, within-target misses, noise floors, benchmark ratios."""

from __future__ import annotations

import copy
import doctest
import json
import math
from pathlib import Path
from typing import Any

import pytest
from cli_helper import cli
from dccsim.bench.results import compare as cmp
from dccsim.bench.results.compare import CompareError, compare_runs, describe, parse_limit

BASE: dict[str, Any] = {
    "requests": 100_000,
    "alerts": 20_000,
    "within_target_ratio": 0.995,
    "latency_s": {"p50": 4.0, "p90": 10.0, "p99": 40.0, "p999": 70.0, "max": 120.0, "mean": 5.0},
    "mean_wait_s": 0.5,
    "peak_backlog": 0,
    "cache": {"hit_ratio": 0.4, "bytes_per_entry": 40.0},
    "storm_alerts_forwarded": 1000,
    "nonstorm_alerts_throttled": 3,
    "throttle": {"forwarded": 9000, "throttled": 10_000, "excluded": 1000},
    "retries": 50,
    "events_per_second": 100_000,
    "wall_seconds": 1.2,
    "peak_rss_bytes": 500 << 20,
    "run": {
        "scenario": "smoke",
        "scale": 0.0005,
        "seed": 1,
        "uplift": 1.5,
        "demand": 1.0,
        "shards": 1,
        "dccsim_version": "0.1.0",
    },
}


def changed(**paths: Any) -> dict[str, Any]:
    """BASE with dotted paths (``__`` for ``.``) replaced."""
    out = copy.deepcopy(BASE)
    for key, value in paths.items():
        *parents, leaf = key.split("__")
        node = out
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


def row(result: cmp.Comparison, path: str) -> cmp.Row:
    (r,) = [r for r in result.rows if r.kpi.path == path]
    return r


def test_module_examples_run() -> None:
    assert doctest.testmod(cmp).failed == 0


@pytest.mark.parametrize(
    ("text", "fraction"),
    [
        ("10%", 0.1),
        ("0.1", 0.1),
        ("10", 0.1),
        (" 10 % ", 0.1),
        ("0", 0.0),
        ("0%", 0.0),
        ("0.5", 0.5),
        ("1", 0.01),
        ("1.5", 0.015),
        ("150%", 1.5),
        ("250", 2.5),
        (".25", 0.25),
        ("2.5%", 0.025),
    ],
)
def test_limit_forms(text: str, fraction: float) -> None:
    assert parse_limit(text) == pytest.approx(fraction, abs=1e-12)


@pytest.mark.parametrize(
    "text", ["", "%", "-5", "-5%", "abc", "10%%", "nan", "inf", "1e3", "10 percent", "0x10"]
)
def test_bad_limits_name_the_flag(text: str) -> None:
    with pytest.raises(CompareError, match=r"--max-slowdown: got .*expected a limit like 10%"):
        parse_limit(text, "--max-slowdown")


def test_identical_runs_pass_with_every_gated_kpi_unchanged() -> None:
    result = compare_runs(BASE, copy.deepcopy(BASE), max_regression=0.0, max_slowdown=0.0)
    assert result.passed and result.notes == ()
    gated = [r for r in result.rows if r.kpi.gated]
    assert {r.kpi.path for r in gated} >= {
        "within_target_ratio",
        "latency_s.p50",
        "latency_s.p99",
        "latency_s.max",
        "peak_backlog",
        "cache.hit_ratio",
        "events_per_second",
    }
    assert all(r.worse_by == 0 for r in gated)


def test_lower_is_better_limit_is_inclusive() -> None:
    at_limit = compare_runs(BASE, changed(latency_s__p99=44.0))
    assert row(at_limit, "latency_s.p99").worse_by == pytest.approx(0.1)
    assert at_limit.passed
    beyond = compare_runs(BASE, changed(latency_s__p99=44.1))
    assert [r.kpi.path for r in beyond.regressions] == ["latency_s.p99"]
    assert "latency_s.p99" in cmp.describe(beyond.regressions[0]) and "limit 10.0%" in cmp.describe(
        beyond.regressions[0]
    )
    better = compare_runs(BASE, changed(latency_s__p99=20.0))
    assert row(better, "latency_s.p99").worse_by == pytest.approx(-0.5) and better.passed


def test_higher_is_better_uses_base_over_new() -> None:
    # cache hit ratio 0.4 -> 0.35: base/new - 1 = 14.3% worse
    result = compare_runs(BASE, changed(cache__hit_ratio=0.35))
    assert row(result, "cache.hit_ratio").worse_by == pytest.approx(0.4 / 0.35 - 1)
    assert not result.passed
    assert compare_runs(BASE, changed(cache__hit_ratio=0.37)).passed


def test_events_per_second_agrees_with_wall_time_and_has_its_own_limit() -> None:
    # throughput divided by 1.25 is "25% worse", like wall time x1.25
    r = row(compare_runs(BASE, changed(events_per_second=80_000)), "events_per_second")
    assert (
        r.worse_by == pytest.approx(0.25)
        and r.limit == cmp.DEFAULT_MAX_SLOWDOWN
        and not r.regressed
    )
    assert r.kpi.kind == "machine"
    # a deliberately slowed build (half the throughput) fails under the default limits
    slowed = compare_runs(BASE, changed(events_per_second=50_000, wall_seconds=2.4))
    assert [x.kpi.path for x in slowed.regressions] == ["events_per_second"]
    # --max-regression does not tighten the machine KPI, --max-slowdown does
    assert compare_runs(BASE, changed(events_per_second=95_000), max_regression=0.0).passed
    assert not compare_runs(BASE, changed(events_per_second=95_000), max_slowdown=0.01).passed
    # wall time and memory are shown, never gated
    doubled = compare_runs(BASE, changed(wall_seconds=9.9, peak_rss_bytes=5 << 30))
    assert doubled.passed and row(doubled, "wall_seconds").worse_by is None


def test_within_target_is_judged_by_its_misses() -> None:
    # 99.5% -> 99.0% is only 0.5% fewer on time, but twice the misses
    result = compare_runs(BASE, changed(within_target_ratio=0.990))
    r = row(result, "within_target_ratio")
    assert r.worse_by == pytest.approx(1.0) and r.regressed
    assert "outside target x2.00" in cmp.describe(r)
    assert (
        row(compare_runs(BASE, changed(within_target_ratio=0.999)), "within_target_ratio").worse_by
        < 0
    )
    # below the absolute tolerance (0.01 percentage points) a change is noise
    tiny = compare_runs(changed(within_target_ratio=0.99990), changed(within_target_ratio=0.99981))
    assert row(tiny, "within_target_ratio").worse_by == 0.0


def test_from_zero_is_measured_against_the_kpi_s_floor_and_zero_to_zero_is_same() -> None:
    result = compare_runs(BASE, changed(peak_backlog=5))
    r = row(result, "peak_backlog")
    assert r.worse_by == 4.0 and r.regressed and math.isinf(r.ratio)  # type: ignore[arg-type]  # 5 against 1
    assert row(compare_runs(BASE, BASE), "peak_backlog").worse_by == 0.0
    perfect = changed(within_target_ratio=1.0)
    # misses 0 -> 1%: against the floor of 0.01% misses, x100
    worse = row(compare_runs(perfect, changed(within_target_ratio=0.99)), "within_target_ratio").worse_by
    assert worse == pytest.approx(99.0)


def test_a_near_zero_base_gives_a_readable_change_not_ten_to_the_fourteen_percent() -> None:
    tiny = changed(latency_s={"p50": 1e-12, "p90": 1e-12, "p99": 1e-12, "p999": 1e-12, "max": 1e-12})
    r = row(compare_runs(tiny, changed(latency_s={"p50": 1.0, "p90": 1.0, "p99": 1.0, "p999": 1.0, "max": 1.0})),
            "latency_s.p99")  # fmt: skip
    assert r.worse_by == pytest.approx(999.0) and r.regressed  # 1 s against the floor of 1 ms


def test_info_rows_never_fail() -> None:
    new = changed(requests=999_999, retries=10_000)
    new["throttle"] = {"forwarded": 1, "throttled": 10**6, "excluded": 0}
    result = compare_runs(BASE, new)
    assert result.passed
    assert row(result, "throttle.throttled").limit is None


def test_a_gated_kpi_the_new_run_did_not_measure_fails() -> None:
    """A run that measured nothing (no cache section, null latencies) cannot pass a gate."""
    new = changed()
    del new["cache"]
    new["latency_s"] = {**new["latency_s"], "p99": None}
    result = compare_runs(BASE, new)
    assert not result.passed
    hit = row(result, "cache.hit_ratio")
    assert (hit.base, hit.new, hit.regressed) == (0.4, None, True)
    p99 = row(result, "latency_s.p99")
    assert p99.regressed and "not measured in the new run" in describe(p99)
    # measured only in the new run: shown, not judged; in neither run: left out
    back = compare_runs(new, BASE)
    assert row(back, "cache.hit_ratio").worse_by is None and back.passed
    assert not any(r.kpi.path == "cache.hit_ratio" for r in compare_runs(new, new).rows)


def test_notes_when_runs_are_not_like_for_like() -> None:
    other = copy.deepcopy(BASE)
    other["run"]["seed"] = 2
    other["run"]["dccsim_version"] = "0.2.0"
    notes = compare_runs(BASE, other).notes
    assert any("seed 1 vs 2" in n for n in notes) and any("0.1.0 vs 0.2.0" in n for n in notes)


def _run(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_cli_passes_an_unchanged_run_and_names_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _run(tmp_path / "base", BASE)
    same = _run(tmp_path / "same", BASE)
    code, out, err = cli("compare", str(base), str(same / "summary.json"), capsys=capsys)
    assert code == 0 and "no KPI worsened beyond its limit" in out and err == ""
    slow = _run(tmp_path / "slow", changed(events_per_second=40_000, latency_s__p99=50.0))
    code, out, err = cli("compare", str(base), str(slow), capsys=capsys)
    assert code == 1
    assert "REGRESSED: events per second (events_per_second)" in out and "machine-dependent" in out
    assert "REGRESSED: latency p99 (latency_s.p99): 40.000 s -> 50.000 s, 25.0% worse" in out
    assert "2 KPI(s) regressed: latency_s.p99, events_per_second" in err
    # a wider limit lets the same pair pass
    code, _, _ = cli(
        "compare",
        str(base),
        str(slow),
        "--max-regression",
        "30",
        "--max-slowdown",
        "200%",
        capsys=capsys,
    )
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-regression", "ten"], "--max-regression: got 'ten'"),
        (["--max-slowdown", "-3"], "--max-slowdown: got '-3'"),
        (["NEW=missing"], "no summary.json"),
        (["NEW=notjson"], "not a readable summary.json"),
        (["NEW=notsummary"], "not a dccsim summary"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = _run(tmp_path / "base", BASE)
    new = tmp_path / "new"
    new.mkdir()
    flags = [a for a in args if not a.startswith("NEW=")]
    if "NEW=notjson" in args:
        (new / "summary.json").write_text("{")
    elif "NEW=notsummary" in args:
        (new / "summary.json").write_text("[1, 2]")
    elif "NEW=missing" not in args:
        (new / "summary.json").write_text(json.dumps(BASE))
    code, out, err = cli("compare", str(base), str(new), *flags, capsys=capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dccsim: error: ") and message in err


def _bench_json(path: Path, times: dict[str, tuple[str, str, float]]) -> Path:
    """A pytest-benchmark file: name -> (group, role, median seconds)."""
    benches = [
        {
            "name": name,
            "group": group,
            "extra_info": {"role": role},
            "stats": {"median": median, "min": median, "mean": median},
        }
        for name, (group, role, median) in times.items()
    ]
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benches}))
    return path


def test_benchmarks_compare_ratios_so_a_slower_machine_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _bench_json(
        tmp_path / "base.json",
        {
            "msgpack": ("decode", "ours", 0.01),
            "json": ("decode", "reference", 0.2),
            "sim": ("e2e", "ours", 1.0),
            "yardstick": ("e2e", "reference", 0.5),
        },
    )
    slower_machine = _bench_json(
        tmp_path / "slow-machine.json",
        {
            "msgpack": ("decode", "ours", 0.03),
            "json": ("decode", "reference", 0.6),
            "sim": ("e2e", "ours", 3.0),
            "yardstick": ("e2e", "reference", 1.5),
        },
    )
    code, out, _ = cli("compare", str(base), str(slower_machine), capsys=capsys)
    assert code == 0 and "REGRESSED" not in out
    slowed_build = _bench_json(
        tmp_path / "slow-build.json",
        {
            "msgpack": ("decode", "ours", 0.02),
            "json": ("decode", "reference", 0.2),
            "sim": ("e2e", "ours", 1.1),
            "yardstick": ("e2e", "reference", 0.5),
        },
    )
    code, out, err = cli("compare", str(base), str(slowed_build), capsys=capsys)
    assert code == 1
    assert (
        "REGRESSED: msgpack: 2.00x slower relative to json" in out and "REGRESSED: sim" not in out
    )
    assert (
        cli("compare", str(base), str(slowed_build), "--max-slowdown", "150%", capsys=capsys)[0]
        == 0
    )
    result = cmp.compare_benchmarks(cmp.load_benchmarks(base), cmp.load_benchmarks(slowed_build))
    assert {r.name: round(r.factor, 3) for r in result.rows} == {"msgpack": 2.0, "sim": 1.1}  # type: ignore[arg-type]


def test_benchmark_ratios_need_a_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lonely = _bench_json(tmp_path / "lonely.json", {"msgpack": ("decode", "ours", 0.01)})
    assert cmp.bench_ratios(cmp.load_benchmarks(lonely)) == {}
    code, _, err = cli("compare", str(lonely), str(lonely), capsys=capsys)
    assert code == 2 and "no benchmark with extra_info role 'ours' beside a 'reference'" in err
    lines = cmp.session_ratios(
        [
            {"name": "a", "group": "g", "extra_info": {"role": "ours"}, "stats": {"min": 1.0}},
            {
                "name": "r",
                "group": "g",
                "extra_info": {"role": "reference"},
                "stats": {"min": 4.0},
            },
        ]
    )
    assert lines == ["a / r = 0.25 (4.0x faster)"]


def test_benchmark_ratios_use_the_fastest_round(tmp_path: Path) -> None:
    """A neighbour's load inflates medians; the fastest rounds still show the code's cost."""
    base = [
        {
            "name": "a",
            "group": "g",
            "extra_info": {"role": "ours"},
            "stats": {"min": 1.0, "median": 1.1},
        },
        {
            "name": "r",
            "group": "g",
            "extra_info": {"role": "reference"},
            "stats": {"min": 2.0, "median": 2.2},
        },
    ]
    noisy = copy.deepcopy(base)
    noisy[0]["stats"]["median"] = 3.0  # ours ran while the machine was busy
    assert cmp.compare_benchmarks(base, noisy).passed
    assert cmp.bench_ratios(noisy, stat="median")["a"][1] == pytest.approx(3.0 / 2.2)


def test_a_paired_ratio_is_used_as_it_is() -> None:
    benches = [
        {
            "name": "day",
            "group": "e2e",
            "extra_info": {"role": "ours", "paired_ratio": 2.5},
            "stats": {"min": 9.0},
        },
        {
            "name": "yard",
            "group": "e2e",
            "extra_info": {"role": "reference"},
            "stats": {"min": 1.0},
        },
    ]
    assert cmp.bench_ratios(benches)["day"] == (9.0, 2.5, "yard")
