"""The composition root and the test harness: a scenario loaded once, pieces built from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dccsim.bench import compose
from dccsim.bench.testing import ListSink, drive, scenario, toml_text
from dccsim.core.errors import ConfigError


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
    summaries = compose.sweep("smoke", [(1.0, None), (3.0, 0.5)], out, scale=0.0002, on_setting=seen.append)
    assert seen == ["uplift1.0-demandbase", "uplift3.0-demand0.5"]
    assert [(s.run.uplift, s.run.demand) for s in summaries] == [(1.0, 1.0), (3.0, 0.5)]
    assert summaries[1].requests < summaries[0].requests  # half the demand
    table = json.loads((out / "sweep.json").read_text())
    assert [row["run"]["uplift"] for row in table] == [1.0, 3.0]
    assert [row["requests"] for row in table] == [s.requests for s in summaries]
    for label in seen:
        assert (out / label / "summary.json").is_file() and (out / label / "report.html").is_file()
