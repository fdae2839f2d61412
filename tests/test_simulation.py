"""The virtual-time simulation end to end: determinism, shards, cache and throttle truth, codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dccsim.bench import simulate
from dccsim.bench.results.logs import read_log
from dccsim.bench.testing import LazyPool
from dccsim.loadgen.scenario import load_scenario

RETENTION_NS = 48 * 3600 * 10**9


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "smoke"
    simulate("smoke", out=out)
    return out


def _table(run: Path, name: str):  # type: ignore[no-untyped-def]
    return read_log(run / name, strict=True, raw=True).to_pydict()


def test_run_folder_has_logs_and_summary(smoke_run: Path) -> None:
    summary = json.loads((smoke_run / "summary.json").read_text())
    for key in (
        "requests",
        "alerts",
        "wall_seconds",
        "events_per_second",
        "latency_s",
        "within_target_ratio",
        "within_target_by_srv",
        "response_codes",
        "cache",
        "throttle",
        "peak_backlog",
        "run",
    ):
        assert key in summary, key
    for key in ("p50", "p90", "p99", "p999", "max"):
        assert summary["latency_s"][key] >= 0
    for key in ("hits", "misses", "hit_ratio", "device_requests_saved", "bytes_per_entry", "retention_hours"):
        assert key in summary["cache"], key
    assert {"forwarded", "throttled", "excluded", "config"} <= set(summary["throttle"])
    req = _table(smoke_run, "requests.arrow")
    assert len(req["seq"]) == summary["requests"] > 10_000
    assert sum(summary["response_codes"].values()) == summary["requests"]
    assert np.all(np.diff(np.array(req["t_scheduled_ns"])) >= 0)


def test_summary_agrees_with_the_logs(smoke_run: Path) -> None:
    """Every headline figure of summary.json, recomputed from the logs a user can open."""
    from collections import Counter

    summary = json.loads((smoke_run / "summary.json").read_text())
    req = _table(smoke_run, "requests.arrow")
    alerts = _table(smoke_run, "alerts.arrow")
    assert summary["response_codes"] == dict(Counter(req["response_code"]))
    outcomes = Counter(req["outcome"])
    assert summary["cache"]["hits"] == summary["cache"]["device_requests_saved"] == outcomes["cache"] > 0
    assert summary["within_target_ratio"] == pytest.approx(np.mean(req["within_target"]), abs=1e-6)
    assert summary["peak_backlog"] == max(req["backlog"])
    lat = np.array(req["latency_ns"])
    for q, key in ((50, "p50"), (90, "p90"), (99, "p99")):
        exact = np.percentile(lat, q, method="inverted_cdf") / 1e9
        assert summary["latency_s"][key] == pytest.approx(exact, rel=2**-7), key
    assert summary["latency_s"]["max"] == lat.max() / 1e9
    actions = Counter(alerts["action"])
    assert summary["alerts"] == summary["throttle"]["alerts"] == len(alerts["action"])
    for action in ("forwarded", "throttled", "excluded"):
        assert summary["throttle"][action] == actions[action] > 0, action


def test_same_scenario_and_seed_give_identical_logs(smoke_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    simulate("smoke", out=again)
    for name in ("requests.arrow", "alerts.arrow"):
        assert (again / name).read_bytes() == (smoke_run / name).read_bytes(), name


def test_shards_give_the_same_outcomes(smoke_run: Path, tmp_path: Path) -> None:
    sharded = tmp_path / "sharded"
    result = simulate("smoke", out=sharded, shards=4)
    summary = result.summary
    # four shards really held state, each a part of it, and together the whole
    pipeline = result.pipeline
    assert len(pipeline.caches) == len(pipeline.throttles) == summary.run.shards == 4
    stores = [c.cache.stats().stores for c in pipeline.caches]
    keys = [t.stats().keys for t in pipeline.throttles]
    assert all(x > 0 for x in stores + keys), (stores, keys)
    one = json.loads((smoke_run / "summary.json").read_text())
    assert sum(stores) == summary.cache.stores == one["cache"]["stores"]
    assert max(stores) < one["cache"]["stores"]
    a = _table(smoke_run, "requests.arrow")
    b = _table(sharded, "requests.arrow")
    for col in ("seq", "device", "response_code", "outcome", "t_done_ns", "latency_ns"):
        assert a[col] == b[col], col
    x = _table(smoke_run, "alerts.arrow")
    y = _table(sharded, "alerts.arrow")
    for col in ("action", "throttled_count", "sequence_id"):
        assert x[col] == y[col], col


@pytest.fixture(scope="module")
def every_esme_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke day with every ESME's reads cached and a comms leg that never queues (a
    miss's answer is stored without the comms wait, so the log's answer time is then the
    store time)."""
    from dccsim.bench import load_run

    _, text = load_scenario("smoke")
    assert "[cache]\n" in text
    text = text.replace("[cache]\n", '[cache]\nscope = "esme"\n')
    text += "\n[comms]\ncsp_capacity_per_s = 1e9\ns1sp_capacity_per_s = 1e9\n"
    out = tmp_path_factory.mktemp("run") / "every-esme"
    simulate(load_run("smoke-every-esme", text=text), out=out)
    return out


def test_cache_scope_smets1_answers_no_smets2_read(smoke_run: Path) -> None:
    from dccsim.loadgen.population import build_population

    s, _ = load_scenario("smoke")
    assert s.cache.scope == "smets1"
    pop = build_population(s)
    req = _table(smoke_run, "requests.arrow")
    dev = np.array(req["device"], np.uint64)
    out = np.array(req["outcome"])
    row = (dev - pop.ids[0]).astype(np.int64)
    known = (row >= 0) & (row < len(pop))
    smets1 = np.zeros(len(dev), bool)
    smets1[known] = pop.smets1[row[known]]
    assert (out == "cache").sum() > 100
    assert not ((out == "cache") & ~smets1).any()
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["comms"]["resources"]["s1sp"]["cache_hits"] == (out == "cache").sum()
    assert summary["cache"]["wakeups_saved"] == (out == "cache").sum()  # one wake-up per read by default


def test_cache_answers_exactly_when_a_stored_read_is_within_retention(every_esme_run: Path) -> None:
    req = _table(every_esme_run, "requests.arrow")
    # successful device reads (I0 from the device) of cacheable SRVs: when each was stored
    stored: dict[tuple[int, str, int, int], list[int]] = {}
    for dev, srv, out, code, start, end, done in zip(
        req["device"],
        req["srv"],
        req["outcome"],
        req["response_code"],
        req["period_start_ns"],
        req["period_end_ns"],
        req["t_done_ns"],
        strict=True,
    ):
        if out == "device" and code == "I0" and srv in ("4.6.1", "4.8.1", "4.8.3"):
            stored.setdefault((dev, srv, start, end), []).append(done)
    # every cacheable read the DSP picked up: a cache answer exactly when a stored answer was
    # within retention at that moment (a hit justified, and no device trip a missed hit)
    counts = {"cache": 0, "device": 0}
    for dev, srv, out, start, end, t, wait in zip(
        req["device"],
        req["srv"],
        req["outcome"],
        req["period_start_ns"],
        req["period_end_ns"],
        req["t_scheduled_ns"],
        req["wait_ns"],
        strict=True,
    ):
        if out not in ("cache", "device", "failed") or srv not in ("4.6.1", "4.8.1", "4.8.3"):
            continue
        lookup = t + wait  # looked up when the DSP picked the request up
        held = any(s <= lookup < s + RETENTION_NS for s in stored.get((dev, srv, start, end), []))
        assert held == (out == "cache"), (out, dev, srv, lookup)
        counts["cache" if out == "cache" else "device"] += 1
    assert counts["cache"] > 1000 and counts["device"] > 1000


def test_invalid_traffic_gets_the_right_codes(smoke_run: Path) -> None:
    req = _table(smoke_run, "requests.arrow")
    expected = {"wrong_role": "E2", "replay": "E17", "unknown_device": "E19", "bad_period": "E13"}
    seen = set()
    for kind, code, out in zip(req["invalid"], req["response_code"], req["outcome"], strict=True):
        if kind != "none":
            assert code == expected[kind], kind
            assert out == "rejected"
            seen.add(kind)
    assert seen == set(expected)
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert set(summary["invalid_traffic"]) == set(expected)


def test_counters_strictly_increase_per_originator_except_replays(smoke_run: Path) -> None:
    req = _table(smoke_run, "requests.arrow")
    last: dict[int, int] = {}
    for o, c, kind in zip(req["originator"], req["counter"], req["invalid"], strict=True):
        if kind == "replay":
            assert c == last[o]
        else:
            assert c > last.get(o, 0)
            last[o] = c


def test_bad_scenario_file_is_a_config_error(tmp_path: Path) -> None:
    from dccsim.core.errors import ConfigError

    bad = tmp_path / "bad.toml"
    bad.write_text("scale = 'big'\n")
    with pytest.raises(ConfigError, match="scale"):
        simulate(str(bad), out=tmp_path / "x")


def test_scenario_text_and_seed_in_log_metadata(smoke_run: Path) -> None:
    from dccsim.bench.results.logs import log_metadata

    meta = log_metadata(smoke_run / "requests.arrow")
    assert meta["dccsim.seed"] == "1"
    assert meta["dccsim.scenario"] == load_scenario("smoke")[1]


def test_throttle_actions_follow_the_semantics(smoke_run: Path) -> None:
    """Replay alerts.arrow through the plain-Python reference throttle: same decisions."""
    from dccsim.throttle import ReferenceThrottle, policy_from_dict

    scenario, _ = load_scenario("smoke")
    alerts = read_log(smoke_run / "alerts.arrow", strict=True, raw=True)
    ref = ReferenceThrottle(policy_from_dict(scenario.throttle))
    t = alerts.column("t_ns").to_numpy()
    out = ref.process(t, alerts.column("device").to_numpy(), alerts.column("alert_code").to_numpy())
    names = ("forwarded", "throttled", "excluded")
    assert [names[a] for a in out.action] == alerts.column("action").to_pylist()
    assert list(out.throttled_count) == alerts.column("throttled_count").to_pylist()
    assert list(out.sequence_id) == alerts.column("sequence_id").to_pylist()
    actions = alerts.column("action").to_pylist()
    assert actions.count("throttled") > 0 and actions.count("excluded") > 0
    storm = alerts.column("storm").to_pylist()
    # storms are what gets throttled
    throttled_storm = sum(1 for a, s in zip(actions, storm, strict=True) if a == "throttled" and s)
    assert throttled_storm > 0.5 * actions.count("throttled")


def test_run_exits_1_naming_a_failed_criterion_and_2_on_bad_flags(tmp_path: Path, capsys) -> None:
    from dccsim.bench.cli import main

    text = load_scenario("smoke")[1]
    head, _, _ = text.partition("[exit_criteria]")
    scenario = tmp_path / "strict.toml"
    scenario.write_text(head + '[exit_criteria]\n"within_target_ratio >= 0.9999" = 1\n"latency_s.max < 1e9" = 2\n')
    with pytest.raises(SystemExit) as exc:
        main(["run", str(scenario), "--scale", "0.0002", "--out", str(tmp_path / "out"), "--quiet"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "exit criteria not met" in err and "within_target_ratio" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["exit_criteria"]["passed"] is False
    assert (tmp_path / "out" / "report.html").is_file()
    for args, words in (
        (["run", "smoke", "--scale", "-1"], "scale: got -1.0"),
        (["run", "nosuch"], "expected a built-in scenario"),
        (["run", "smoke", "--seed", "x"], "Invalid value for '--seed'"),
    ):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], lines


def test_a_runs_logs_read_in_duckdb_and_polars(smoke_run: Path) -> None:
    import duckdb
    import polars as pl
    from dccsim.bench.results.logs import open_log

    summary = json.loads((smoke_run / "summary.json").read_text())
    reader = open_log(smoke_run / "requests.arrow")  # noqa: F841 - DuckDB finds it by name
    rows = duckdb.sql("select response_code, count(*) from reader group by response_code").fetchall()
    assert dict(rows) == summary["response_codes"]
    df = pl.read_ipc_stream(smoke_run / "alerts.arrow")
    assert df.height == summary["alerts"]
    counts = dict(df.group_by("action").len().iter_rows())
    assert counts == {k: v for k, v in summary["alert_actions"].items() if v}


def test_a_criterion_with_a_wrong_path_is_refused_before_the_run(tmp_path: Path) -> None:
    """A path no summary can hold is found when the scenario is read (it was found only once
    the whole run was done); a percentile summary.json lacks is judged from the histograms."""
    from dccsim.bench.results.criteria import CriteriaError
    from dccsim.loadgen.scenario import builtin_scenarios

    text = builtin_scenarios()["smoke"].replace("[exit_criteria]", '[exit_criteria]\n"latency_s.median < 60" = 3')
    (tmp_path / "typo.toml").write_text(text)
    out = tmp_path / "run"
    with pytest.raises(CriteriaError, match=r"latency_s has no key 'median'"):
        simulate(str(tmp_path / "typo.toml"), out=out)
    assert not (out / "requests.arrow").exists()  # nothing was run
    text = builtin_scenarios()["smoke"].replace("[exit_criteria]", '[exit_criteria]\n"latency_s.p98 < 600" = 3')
    (tmp_path / "p98.toml").write_text(text)
    result = simulate(str(tmp_path / "p98.toml"), out=out)
    p98 = next(v for v in result.criteria.verdicts if v.criterion.path == "latency_s.p98")
    assert result.summary.latency_s.p95 <= p98.actual <= result.summary.latency_s.p99


def test_retries_are_exact_however_late_the_worker_threads_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's joins alone keep it exact: with every pool job run as late as possible
    (when its result is needed), the logs are those of a normal run. The day has MHHS reads
    reads, many failures with retries exactly two chunks later and a trickle of other requests,
    so quiet chunks (no requests) fall between a chunk's failures and their retries."""
    import dccsim.loadgen.driver as driver
    from dccsim.loadgen.scenario import builtin_scenarios

    text = builtin_scenarios()["smoke"]
    for old, new in (
        ("e21_share = 0.003", "e21_share = 0.3"),
        ("e21_share = 0.006", "e21_share = 0.3"),
        ("window_h = [0.5, 6.0]", "window_h = [0.5, 0.55]"),
        ("retry_delay_s = 1800", "retry_delay_s = 600"),
        ("supplier_read_prob = 0.35", "supplier_read_prob = 0.0"),
        ("dno_read_prob = 0.2", "dno_read_prob = 0.0"),
        ("requests_per_meter = 1.0", "requests_per_meter = 0.01"),
        ("commands_per_meter = 0.02", "commands_per_meter = 0.0"),
        ("share = 0.0005", "share = 0.0"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "retries.toml").write_text(text)
    normal = simulate(str(tmp_path / "retries.toml"), out=tmp_path / "normal").summary
    assert normal.retries > 100
    monkeypatch.setattr(driver, "ThreadPoolExecutor", LazyPool)
    simulate(str(tmp_path / "retries.toml"), out=tmp_path / "lazy")
    assert (tmp_path / "lazy" / "requests.arrow").read_bytes() == (tmp_path / "normal" / "requests.arrow").read_bytes()
