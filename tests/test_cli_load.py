"""``dccsim load``'s exit criteria: the defaults, ``--criterion``, and bad ones as one line."""

from __future__ import annotations

import pytest
from dccsim.bench.cli import CliError, main
from dccsim.bench.cli.cmd_serve import LOAD_CRITERIA, _load_criteria
from dccsim.bench.results.criteria import evaluate, parse_criteria


def test_default_load_criteria_judge_answers_not_the_simulated_day() -> None:
    assert _load_criteria(()) == LOAD_CRITERIA
    criteria = parse_criteria(_load_criteria(()))
    ok = {"wallclock": {"lost": 0, "duplicates": 0, "refused_error": 0, "refused_busy": 0},
          "within_target_ratio": 0.0, "cache": {"hit_ratio": 0.0}}
    assert evaluate(ok, criteria).passed  # the day's criteria (within target, cache) are not applied
    lost = {**ok, "wallclock": {**ok["wallclock"], "lost": 3}}
    result = evaluate(lost, criteria)
    assert not result.passed
    assert [v.criterion.expression for v in result.verdicts if not v.passed] == ["wallclock.lost == 0"]


def test_criterion_option_with_and_without_severity() -> None:
    assert _load_criteria(("wallclock.final_latency_s.p99 < 0.005:2", "wallclock.lost == 0")) == {
        "wallclock.final_latency_s.p99 < 0.005": 2, "wallclock.lost == 0": 1}
    with pytest.raises(CliError, match="severity 1 to 4"):
        _load_criteria(("wallclock.lost == 0:high",))


def test_a_bad_criterion_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["load", "smoke", "--target", "tcp://127.0.0.1:1", "--criterion", "wallclock.lost = 0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wallclock.lost = 0" in err and "OP one of" in err


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--drain", "nan"], "--drain: got nan"),
        (["--drain", "-1"], "--drain: got -1.0"),
        (["--rate", "inf"], "expected finite numbers > 0"),
        (["--duration", "nan"], "expected finite numbers > 0"),
    ],
)
def test_load_refuses_bad_numbers_before_it_sends(
    flags: list[str], words: str, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    err = _one_line_exit_2(["load", "smoke", "--target", "tcp://127.0.0.1:1", "--out", str(tmp_path / "x"), *flags],
                           capsys)  # fmt: skip
    assert words in err
    assert not (tmp_path / "x").exists()


def test_serve_refuses_an_infinite_speed(capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_exit_2(["serve", "--port", "0", "--speed", "inf"], capsys)
    assert "--speed: got inf, expected a finite number > 0" in err


def test_an_unwritable_run_folder_is_one_line_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    a_file = tmp_path / "file"
    a_file.write_text("")
    for argv in (
        ["run", "smoke", "--scale", "0.0002", "--quiet", "--out", str(a_file / "run")],
        ["load", "smoke", "--target", "tcp://127.0.0.1:1", "--out", str(a_file / "load")],
    ):
        err = _one_line_exit_2(argv, capsys)
        assert f"out: got '{argv[-1]}'" in err and "a folder dccsim can create and write" in err
