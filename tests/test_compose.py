"""The composition root and the test harness: a scenario loaded once, pieces built from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helper import cli
from dccsim.bench import compose
from dccsim.bench.results.criteria import criteria_for_run
from dccsim.bench.results.logs import log_metadata
from dccsim.bench.settings import parse_setting, parse_settings
from dccsim.bench.testing import ListSink, drive, scenario, toml_text
from dccsim.core.errors import ConfigError
from dccsim.loadgen.scenario import parse_scenario


def test_the_scenario_builder_sets_dotted_keys_and_checks_them() -> None:
    run = scenario("smoke", scale=0.0002, **{"capacity.uplift": 2.5, "throttle.threshold": 3, "mhhs.max_retries": 1})
    s = run.scenario
    assert (s.scale, s.capacity.uplift, s.mhhs.max_retries) == (0.0002, 2.5, 1)
    assert s.throttle_policy.threshold == 3  # converted once, as the pipeline takes it
    assert s.users == compose.load_run("smoke").scenario.users  # what was not set stays the built-in's
    with pytest.raises(ConfigError) as bad:
        scenario("smoke", **{"throttle.threshold": 0})
    assert bad.value.key == "throttle.threshold" and bad.value.value == 0


def test_toml_text_round_trips_through_the_scenario_parser() -> None:
    data = {"name": "x", "scale": 0.5, "storms": [{"devices": 3, "start_h": 1.5}], "throttle": {"exclude": ["8F75"]}}
    import tomllib

    assert tomllib.loads(toml_text(data)) == data


def test_drive_hands_every_row_to_the_sink_and_the_pipeline_keeps_the_state() -> None:
    sink, driver = drive(scenario("smoke", scale=0.0002))
    assert isinstance(sink, ListSink)
    rows = sink.request_rows()
    assert len(rows) == driver.totals.requests > 0
    assert (rows.seq == range(len(rows))).all()  # in order, none lost, none twice
    assert len(sink.alert_rows()) == driver.totals.alerts > 0
    assert driver.pipeline.cache_stats().hits == int((rows.outcome == 1).sum())  # outcome 1: cache
    assert sink.progressed[-1][0] == sink.progressed[-1][1]  # the day ran to its end


def test_sweep_loads_every_setting_before_it_runs_any(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="capacity.uplift"):
        compose.sweep("smoke", [(1.0, None), (-1.0, None)], tmp_path / "bad", scale=0.0002)
    assert not (tmp_path / "bad").exists()  # the first setting did not run either


def test_sweep_runs_each_setting_into_its_folder(tmp_path: Path) -> None:
    seen: list[str] = []
    out = tmp_path / "sweep"
    result = compose.sweep("smoke", [(1.0, None), (3.0, 0.5)], out, scale=0.0002, on_setting=seen.append)
    summaries = result.summaries
    assert seen == ["uplift1.0-demandbase", "uplift3.0-demand0.5"]
    assert [(s.run.uplift, s.run.demand) for s in summaries] == [(1.0, 1.0), (3.0, 0.5)]
    assert summaries[1].requests < summaries[0].requests  # half the demand
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["find"] is None and "answer" not in doc
    assert [row["uplift"] for row in doc["settings"]] == [1.0, 3.0]
    assert [row["requests"] for row in doc["settings"]] == [s.requests for s in summaries]
    assert [row["passed"] for row in doc["settings"]] == [s.exit_criteria.passed for s in summaries]
    assert [row["refused"] for row in doc["settings"]] == [sum(s.refused_by_class.values()) for s in summaries]
    page = (out / "sweep.html").read_text()
    assert page.count("<svg") == 4 and "refused work" in page  # within target, p99, backlog, refused
    for label in seen:
        assert (out / label / "summary.json").is_file() and (out / label / "report.html").is_file()


def test_a_list_sweep_gives_the_same_settings_on_two_workers(tmp_path: Path) -> None:
    docs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        compose.sweep("smoke", [(1.0, None), (2.0, None), (1.0, 0.5)], out, scale=0.0002, workers=workers,
                      overrides={"cache.enabled": False})  # fmt: skip
        doc = json.loads((out / "sweep.json").read_text())
        for row in doc["settings"]:
            assert row.pop("wall_seconds") > 0
            assert row["cache"]["hits"] in (0, None)  # the override reached every worker
        docs.append(doc)
    assert docs[0] == docs[1]


# ---------------------------------------------------------------------------- --set


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("cache.enabled=false", "cache.enabled", False),
        ("days=3", "days", 3),
        ("capacity.uplift=1.2", "capacity.uplift", 1.2),
        ("mhhs.window_h=[0.5, 6.0]", "mhhs.window_h", [0.5, 6.0]),
        ("name=foo", "name", "foo"),
        ('name="a b"', "name", "a b"),
        ("day=2026-11-24", "day", "2026-11-24"),  # a TOML date, recorded and checked as the file's would be
        ('exit_criteria."latency_s.p99 < 60" = 2', 'exit_criteria."latency_s.p99 < 60"', 2),
    ],
)
def test_set_reads_its_value_as_toml_or_a_bare_word(text: str, key: str, value: object) -> None:
    got_key, got = parse_setting(text)
    assert got_key == key and (str(got) if key == "day" else got) == value


@pytest.mark.parametrize("text", ["capacity.uplift", "=3", "x=", "x=[1, 2", 'x="open'])
def test_set_refuses_what_is_not_key_equals_value(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_setting(text)


def test_load_run_applies_settings_before_checking_and_records_them() -> None:
    run = compose.load_run("smoke", settings=parse_settings([
        "cache.enabled=false", "capacity.uplift=1.2", "mhhs.window_h=[0.5, 5.5]", "storms.1.devices=7",
        'exit_criteria."latency_s.p99 < 60"=3',
    ]), scale=0.0002)  # fmt: skip
    s = run.scenario
    assert (s.cache.enabled, s.capacity.uplift, s.mhhs.window_h, s.storms[1].devices) == (False, 1.2, (0.5, 5.5), 7)
    assert s.scale == 0.0002  # the keyword overrides apply after the settings
    assert {c.expression: c.severity for c in run.criteria.items}["latency_s.p99 < 60"] == 3
    recorded = parse_scenario(run.text, "recorded")
    assert recorded.cache.enabled is False and recorded.storms[1].devices == 7  # the text is what ran
    assert recorded == s.with_overrides(scale=0.0005)
    assert run.text.startswith("# smoke with settings ")


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"cache.enabeld": False}, "cache.enabeld"),
        ({"capacity.uplift": "lots"}, "capacity.uplift"),
        ({"capacity.uplift": -1.0}, "capacity.uplift"),
        ({"mhhs.window_h": [6.0, 0.5]}, "mhhs.window_h"),
        ({"scale.x": 1}, "scale.x"),
        ({"storms.5.devices": 1}, "storms.5.devices"),
        ({"a..b": 1}, "a..b"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_its_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as bad:
        compose.load_run("smoke", settings=settings)
    assert bad.value.key == key and bad.value.source == "smoke"
    assert str(bad.value).startswith(f"smoke: {key}: got ")


def test_run_set_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = cli("run", "smoke", "--scale", "0.0002", "--quiet", "--out", str(out), "--set", "name=renamed",
                       "--set", "cache.enabled=false", "--set", "exit_criteria={}", capsys=capsys)  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["scenario"] == "renamed" and summary["cache"]["hits"] in (0, None)
    meta = log_metadata(out / "requests.arrow")
    assert json.loads(meta["dccsim.settings"]) == {"name": "renamed", "cache.enabled": False, "exit_criteria": {}}
    assert parse_scenario(meta["dccsim.scenario"]).cache.enabled is False
    assert criteria_for_run(out)[0].items == ()  # check and report see the criteria that ran
    for bad, key in (("cache.enabled=maybe", "cache.enabled"), ("capacity.nope=1", "capacity.nope"), ("x", "x")):
        code, stdout, err = cli("run", "smoke", "--scale", "0.0002", "--quiet", "--set", bad, capsys=capsys)
        assert code == 2 and key in err and len(err.strip().splitlines()) == 1 and not stdout
    for command in (("serve", "--port", "0"), ("load",)):  # refused before serving or connecting
        code, _, err = cli(*command, "--set", "capacity.nope=1", capsys=capsys)
        assert code == 2 and "capacity.nope" in err
