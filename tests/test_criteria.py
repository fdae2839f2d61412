"""Exit criteria: expressions, paths with dotted keys, severities, thresholds, ``dccsim check``."""

from __future__ import annotations

import doctest
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
from cli_helper import cli
from dccsim.bench.results import criteria as crit
from dccsim.bench.results.criteria import CriteriaError, evaluate, parse_criteria, resolve_path
from dccsim.loadgen.scenario import builtin_scenarios
from rich.console import Console

SUMMARY = {
    "requests": 1000,
    "within_target_ratio": 0.975,
    "latency_s": {"p50": 4.0, "p99": 60.0, "max": 130.0},
    "within_target_by_srv": {"4.8": 0.5, "4.8.1": 0.99, "4.6.1": 0.93},
    "cache": {"hit_ratio": 0.31},
    "top_throttled_devices": [{"device": "00DB123456789000", "throttled": 900}],
    "events_per_second": None,
    "mean_wait_s": math.nan,
}


def test_module_examples_run() -> None:
    assert doctest.testmod(crit).failed == 0


@pytest.mark.parametrize(
    ("op", "passes_at_60"),
    [("<", False), ("<=", True), (">", False), (">=", True), ("==", True), ("!=", False)],
)
def test_each_operator_at_its_boundary(op: str, passes_at_60: bool) -> None:
    result = evaluate(SUMMARY, {f"latency_s.p99 {op} 60": 2})
    assert result.verdicts[0].passed is passes_at_60
    assert result.verdicts[0].actual == 60.0
    assert result.failures[2] == (0 if passes_at_60 else 1)


def test_expression_spacing_and_number_forms() -> None:
    c = crit.parse_expression("  latency_s.p99<=6e1 ", 1)
    assert (c.path, c.op, c.threshold, c.expression) == (
        "latency_s.p99",
        "<=",
        60.0,
        "latency_s.p99<=6e1",
    )
    assert crit.parse_expression("requests >= 1_000", 4).threshold == 1000
    assert crit.parse_expression("within_target_ratio > .5", 3).threshold == 0.5
    assert crit.parse_expression("latency_s.p50 > -1", 3).threshold == -1


def test_srv_keys_with_dots_take_the_longest_match() -> None:
    assert resolve_path(SUMMARY, "within_target_by_srv.4.8.1") == 0.99
    assert resolve_path(SUMMARY, "within_target_by_srv.4.8") == 0.5
    # a dotted key beats a nested path that spells the same
    assert resolve_path({"a": {"b.c": 1, "b": {"c": 2}}}, "a.b.c") == 1
    # ... unless it leads nowhere: then the shorter key is tried
    assert resolve_path({"a": {"b.c": {"x": 1}, "b": {"c": {"y": 2}}}}, "a.b.c.y") == 2
    result = evaluate(SUMMARY, {"within_target_by_srv.4.8.1 >= 0.95": 3, "within_target_by_srv.4.6.1 >= 0.95": 3})
    assert [v.passed for v in result.verdicts] == [True, False]


def test_list_index_in_path() -> None:
    assert resolve_path(SUMMARY, "top_throttled_devices.0.throttled") == 900
    with pytest.raises(KeyError, match="index from 0 to 0"):
        resolve_path(SUMMARY, "top_throttled_devices.3.throttled")


def test_unknown_path_names_the_criterion_and_what_is_there() -> None:
    with pytest.raises(CriteriaError) as info:
        evaluate(SUMMARY, {"latency_s.median < 10": 2})
    text = str(info.value)
    assert "'latency_s.median < 10'" in text and "no key 'median'" in text and "p50, p90, p95, p99" in text
    with pytest.raises(CriteriaError, match="within_target_by_srv holds no key '4.8.9'"):
        evaluate(SUMMARY, {"within_target_by_srv.4.8.9 >= 0.9": 1})  # no such SRV
    with pytest.raises(CriteriaError, match="the summary has no key 'latncy_s'; expected one of alert_actions"):
        evaluate(SUMMARY, {"latncy_s.p99 < 1": 1})


def test_a_path_no_summary_can_hold_is_found_before_any_run() -> None:
    """Checked against the typed summary when the criteria are read (it was found only after
    the whole run); a key a run may hold but this one lacks is not an error then."""
    with pytest.raises(CriteriaError, match="latency_s has no key 'median'"):
        parse_criteria({"latency_s.median < 10": 1})
    parse_criteria({"within_target_by_srv.8.11 >= 0.9": 1, "response_codes.E21 <= 5": 1, "wallclock.lost == 0": 1,
                    "comms.resources.csp1.utilisation < 1": 2, "stages.log.seconds < 60": 4})  # fmt: skip


def test_a_table_is_not_a_number() -> None:
    with pytest.raises(CriteriaError, match=r"'latency_s' is a table, expected a number; pick one of its keys: max"):
        evaluate(SUMMARY, {"latency_s < 60": 1})
    with pytest.raises(CriteriaError, match="is a number, it has no key 'x'"):
        evaluate(SUMMARY, {"requests.x < 60": 1})


@pytest.mark.parametrize("severity", [0, 5, "1", True, 1.0, None])
def test_bad_severity_names_the_criterion(severity: object) -> None:
    with pytest.raises(CriteriaError, match=r"latency_s.p99 < 60.*severity .*expected an integer from 1 to 4"):
        parse_criteria({"latency_s.p99 < 60": severity})


@pytest.mark.parametrize(
    "expression",
    [
        "latency_s.p99 << 60",
        "latency_s.p99 60",
        "latency_s.p99 < sixty",
        "< 60",
        "latency_s..p99 < 1",
        "latency_s.p99. < 1",
        "latency_s.p99 < 60 s",
        "latency_s.p99 < 1.2.3",
        "9lives > 1",
        "latency_s.p99 =< 60",
    ],
)
def test_bad_expression_names_the_criterion(expression: str) -> None:
    with pytest.raises(CriteriaError) as info:
        parse_criteria({expression: 1})
    assert repr(expression.strip()) in str(info.value) or repr(expression) in str(info.value)


def test_default_thresholds_follow_testing_issue_thresholds() -> None:
    assert dict(crit.DEFAULT_THRESHOLDS) == {1: 0, 2: 0, 3: 2, 4: 5}
    two_s3 = evaluate(SUMMARY, {"requests < 1": 3, "requests < 2": 3, "requests > 0": 1})
    assert two_s3.failures == {1: 0, 2: 0, 3: 2, 4: 0}
    assert two_s3.passed and two_s3.headline == "meets targets (2 failures within thresholds)"
    three_s3 = evaluate(SUMMARY, {"requests < 1": 3, "requests < 2": 3, "requests < 3": 3})
    assert not three_s3.passed and three_s3.blocking == (3,)
    assert three_s3.headline == "fails 3 criteria"
    one_s1 = evaluate(SUMMARY, {"requests < 1": 1})
    assert not one_s1.passed and one_s1.headline == "fails 1 criterion"
    five_s4 = evaluate(SUMMARY, {f"requests < {i}": 4 for i in range(1, 6)})
    assert five_s4.passed
    six_s4 = evaluate(SUMMARY, {f"requests < {i}": 4 for i in range(1, 7)})
    assert not six_s4.passed
    assert evaluate(SUMMARY, {"requests > 1": 1}).headline == "meets targets"


def test_thresholds_table_overrides_some_severities() -> None:
    c = parse_criteria({"requests < 1": 1, "thresholds": {"1": 1, 3: 0}})
    assert c.thresholds == {1: 1, 2: 0, 3: 0, 4: 5}
    assert evaluate(SUMMARY, c).passed
    assert not evaluate(SUMMARY, {"requests < 1": 3, "thresholds": {"3": 0}}).passed


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"5": 1}, "severity '5'"),
        ({"one": 1}, "severity 'one'"),
        ({"1": -1}, "thresholds.1: got -1"),
        ({"2": 1.5}, "thresholds.2: got 1.5"),
        ({"2": True}, "thresholds.2: got True"),
        (3, "expected a table"),
    ],
)
def test_bad_thresholds(thresholds: object, message: str) -> None:
    with pytest.raises(CriteriaError, match="exit_criteria.thresholds") as info:
        parse_criteria({"requests > 1": 1, "thresholds": thresholds})
    assert message in str(info.value)


def test_nothing_measured_fails_and_is_stored_as_null() -> None:
    result = evaluate(SUMMARY, {"events_per_second > 1": 4, "mean_wait_s != 0": 4, "mean_wait_s < 1": 4})
    assert [v.passed for v in result.verdicts] == [False, False, False]
    assert all(math.isnan(v.actual) for v in result.verdicts)
    data = crit.to_dict(result)
    json.dumps(data, allow_nan=False)  # strict JSON: NaN became null
    assert [c["actual"] for c in data["criteria"]] == [None, None, None]


def test_to_dict_round_trips() -> None:
    result = evaluate(
        SUMMARY,
        {"latency_s.p99 < 60": 2, "within_target_by_srv.4.8.1 >= 0.95": 3, "thresholds": {"2": 1}},
    )
    data = json.loads(json.dumps(crit.to_dict(result)))
    assert data["passed"] is True and data["failed"] == 1
    assert data["failures_by_severity"] == {"1": 0, "2": 1, "3": 0, "4": 0}
    assert data["thresholds"]["2"] == 1
    assert data["criteria"][0] == {
        "expression": "latency_s.p99 < 60",
        "path": "latency_s.p99",
        "op": "<",
        "threshold": 60.0,
        "severity": 2,
        "actual": 60.0,
        "passed": False,
    }
    back = crit.from_dict(data)
    assert back == result
    with pytest.raises(CriteriaError, match="not a stored verdict"):
        crit.from_dict({"criteria": [{"path": "x"}]})


def test_verdict_table_lists_failures_first() -> None:
    result = evaluate(SUMMARY, {"requests > 1": 1, "latency_s.p99 < 60": 2})
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(crit.verdict_table(result))
    text = console.file.getvalue()
    assert "fails 1 criterion" in text
    assert text.index("FAIL") < text.index("PASS")
    assert "S2 1/0" in text


def test_every_builtin_scenario_has_valid_criteria() -> None:
    import tomllib

    for name, text in builtin_scenarios().items():
        table = tomllib.loads(text).get("exit_criteria", {})
        assert parse_criteria(table).items, name


def _write_run(folder: Path, summary: dict[str, object], scenario_text: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    if scenario_text is not None:
        schema = pa.schema([("seq", pa.uint64())], metadata={"dccsim.scenario": scenario_text, "dccsim.seed": "1"})
        with (
            pa.OSFile(str(folder / "requests.arrow"), "wb") as sink,
            pa.ipc.new_stream(sink, schema),
        ):
            pass
    return folder


def test_criteria_of_a_run_come_from_its_recorded_scenario(tmp_path: Path) -> None:
    text = 'name = "mine"\n[exit_criteria]\n"latency_s.p99 < 100" = 2\n"requests >= 2000" = 4\n'
    run = _write_run(tmp_path / "run", {**SUMMARY, "run": {"scenario": "smoke"}}, text)
    found = crit.criteria_for_run(run, SUMMARY)
    assert found is not None
    criteria, source = found
    assert [c.expression for c in criteria.items] == ["latency_s.p99 < 100", "requests >= 2000"]
    assert "requests.arrow" in source
    # without a log, the built-in scenario by name
    bare = _write_run(tmp_path / "bare", {**SUMMARY, "run": {"scenario": "smoke"}}, None)
    criteria, source = crit.criteria_for_run(bare, {"run": {"scenario": "smoke"}})  # type: ignore[misc]
    assert "within_target_ratio >= 0.97" in [c.expression for c in criteria.items] and "'smoke'" in source
    assert crit.criteria_for_run(bare, {"run": {"scenario": "no-such"}}) is None


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = '[exit_criteria]\n"latency_s.p99 <= 60" = 2\n'
    passing = _write_run(tmp_path / "ok", SUMMARY, text)
    code, out, err = cli("check", str(passing), capsys=capsys)
    assert (code, err) == (0, "") and "meets targets" in out and "PASS" in out
    failing = _write_run(tmp_path / "bad", SUMMARY, '[exit_criteria]\n"latency_s.p99 < 60" = 1\n')
    code, out, err = cli("check", str(failing / "summary.json"), capsys=capsys)
    assert code == 1 and "fails 1 criterion" in out and "FAIL" in out
    # --criteria: a scenario file or a bare table; it overrides the run's own
    (tmp_path / "c.toml").write_text('"within_target_by_srv.4.6.1 >= 0.9" = 1\n[thresholds]\n1 = 0\n')
    code, out, _ = cli("check", str(failing), "--criteria", str(tmp_path / "c.toml"), capsys=capsys)
    assert code == 0 and "within_target_by_srv.4.6.1" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "not a run folder"),
        ("no-summary", "no summary.json"),
        ("bad-json", "not a readable summary.json"),
        ("bad-criterion", "unknown path 'latency_s.median'"),
        ("bad-file", "c.toml: not valid TOML"),
        ("empty", "no exit criteria"),
        ("unknown-scenario", "give --criteria FILE"),
    ],
)
def test_check_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    run = tmp_path / "run"
    args = ["check", str(run)]
    if setup == "no-summary":
        run.mkdir()
    elif setup == "bad-json":
        run.mkdir()
        (run / "summary.json").write_text("{not json")
    elif setup == "bad-criterion":
        _write_run(run, SUMMARY, '[exit_criteria]\n"latency_s.median < 60" = 1\n')
    elif setup == "bad-file":
        _write_run(run, SUMMARY, None)
        (tmp_path / "c.toml").write_text("= broken")
        args += ["--criteria", str(tmp_path / "c.toml")]
    elif setup == "empty":
        _write_run(run, SUMMARY, 'name = "x"\n')
    elif setup == "unknown-scenario":
        _write_run(run, {**SUMMARY, "run": {"scenario": "no-such"}}, None)
    code, out, err = cli(*args, capsys=capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("dccsim: error: ") and message in err


def test_a_key_the_run_did_not_see_is_not_measured_or_zero() -> None:
    """Per-run tables list only what the run saw: an SRV or class without requests is not
    measured (the criterion fails), an absent response code or outcome is a count of 0;
    a name that cannot exist at all is still an error."""
    result = evaluate(
        SUMMARY,
        {
            "within_target_by_srv.8.11 >= 0.5": 3,
            "latency_by_class.future_dated.p99_s < 10": 3,
            "latency_by_class.future_dated.requests == 0": 3,
            "response_codes.E30 <= 0": 3,
            "outcomes.cache == 0": 3,
        },
    )
    got = {v.criterion.expression: (v.passed, v.actual) for v in result.verdicts}
    assert got["within_target_by_srv.8.11 >= 0.5"][0] is False
    assert math.isnan(got["within_target_by_srv.8.11 >= 0.5"][1])
    assert got["latency_by_class.future_dated.p99_s < 10"][0] is False
    assert got["latency_by_class.future_dated.requests == 0"] == (True, 0.0)
    assert got["response_codes.E30 <= 0"] == (True, 0.0)
    assert got["outcomes.cache == 0"] == (True, 0.0)
    for bad in ("within_target_by_srv.99.1 >= 0.5", "response_codes.E99 <= 0", "latency_by_class.nightly.p99_s < 1"):
        with pytest.raises(CriteriaError, match="unknown path"):
            evaluate(SUMMARY, {bad: 3})
