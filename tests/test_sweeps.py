"""Sweeps: the boundary search as a pure function, and ``dccsim sweep`` (lists and --find) end to end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from cli_helper import cli
from dccsim.bench import compose
from dccsim.bench.results.sweep_page import sweep_page, xy_chart
from dccsim.bench.sweeps import find_boundary
from dccsim.core.errors import ConfigError


class Judge:
    """A monotone judge with its boundary at ``b``, remembering the batches it was given."""

    def __init__(self, b: float, pass_above: bool = True) -> None:
        self.b, self.pass_above = b, pass_above
        self.batches: list[list[float]] = []

    def __call__(self, xs: Sequence[float]) -> list[bool]:
        self.batches.append(list(xs))
        return [(x >= self.b) if self.pass_above else (x <= self.b) for x in xs]


@pytest.mark.parametrize("points", [1, 2, 3, 5])
@pytest.mark.parametrize("tolerance", [0.01, 0.05, 0.3])
def test_the_least_passing_value_is_within_the_tolerance_above_the_boundary(points: int, tolerance: float) -> None:
    for b in np.linspace(1.0005, 2.9995, 101):
        judge = Judge(float(b))
        found = find_boundary(judge, 1.0, 3.0, tolerance=tolerance, points=points)
        assert found.answer is not None
        assert b <= found.answer < b + tolerance, (b, found)
        assert judge.batches[0] == [1.0, 3.0]  # the bracket's ends first, side by side
        assert all(len(batch) <= points for batch in judge.batches[1:])
        assert [x for batch in judge.batches for x in batch] == [x for x, _ in found.tried]
        assert all(ok == (x >= b) for x, ok in found.tried)


@pytest.mark.parametrize("points", [1, 3])
def test_the_greatest_passing_value_is_within_the_tolerance_below_the_boundary(points: int) -> None:
    for b in np.linspace(0.1005, 1.9995, 77):
        found = find_boundary(Judge(float(b), pass_above=False), 0.1, 2.0, tolerance=0.01, points=points,
                              pass_above=False)  # fmt: skip
        assert found.answer is not None and b - 0.01 < found.answer <= b, (b, found)
        assert [x for x, _ in found.tried[:2]] == [0.1, 2.0]  # the low end first
        assert all(ok == (x <= b) for x, ok in found.tried)


def test_none_passing_gives_none_and_all_passing_gives_the_passing_end() -> None:
    assert find_boundary(Judge(5.0), 1.0, 3.0) == find_boundary(Judge(5.0), 1.0, 3.0)
    none = find_boundary(Judge(5.0), 1.0, 3.0)
    assert none.answer is None and none.tried == ((1.0, False), (3.0, False))
    everything = find_boundary(Judge(0.5), 1.0, 3.0)
    assert everything.answer == 1.0 and len(everything.tried) == 2
    assert find_boundary(Judge(5.0, pass_above=False), 0.1, 2.0, pass_above=False).answer == 2.0
    assert find_boundary(Judge(0.01, pass_above=False), 0.1, 2.0, pass_above=False).answer is None
    assert find_boundary(Judge(1.0), 1.0, 3.0).answer == 1.0  # the boundary on an end


def test_a_judge_that_is_not_monotone_still_gives_a_passing_value() -> None:
    def judge(xs: Sequence[float]) -> list[bool]:
        return [x >= 2.5 or 1.6 <= x <= 1.7 for x in xs]

    for points in (1, 2, 3, 4):
        found = find_boundary(judge, 1.0, 3.0, points=points)
        assert found.answer is not None and judge([found.answer]) == [True]


def test_the_search_refuses_a_bad_bracket_tolerance_or_judge() -> None:
    with pytest.raises(ValueError, match="low < high"):
        find_boundary(Judge(1.5), 3.0, 1.0)
    with pytest.raises(ValueError, match="tolerance"):
        find_boundary(Judge(1.5), 1.0, 3.0, tolerance=0)
    with pytest.raises(ValueError, match="points"):
        find_boundary(Judge(1.5), 1.0, 3.0, points=0)
    with pytest.raises(ValueError, match="verdicts"):
        find_boundary(lambda xs: [True], 1.0, 3.0)


# a smoke day where capacity decides: 9000 slots x 0.0002 x 0.8 = 1.44 servers per unit of uplift,
# and MHHS reads take 10 s at the DSP, so 3 servers pass and 2 do not: uplift 3 / 1.44 = 2.0833...
# (the c-server DSP without overload control, whose boundary is this step)
TIGHT = ("--scale", "0.0002", "--set", "capacity.slots=9000", "--set", "capacity.classes.mhhs_read.service_ms=10000",
         "--set", "capacity.model=servers", "--set", "capacity.admission=false", "--set", "capacity.shed_expired=false")
BOUNDARY = 3 / 1.44


def _without_timings(doc: dict) -> dict:  # type: ignore[type-arg]
    for row in doc["settings"]:
        row.pop("wall_seconds")
    return doc


def test_sweep_find_min_uplift_answers_the_same_on_one_worker_or_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        code, stdout, stderr = cli("sweep", "smoke", "--find", "min-uplift", *TIGHT, "--tolerance", "0.05",
                                   "--workers", workers, "--out", str(out), capsys=capsys)  # fmt: skip
        assert code == 0, stderr
        last = stdout.strip().splitlines()[-1]
        assert last.startswith("min-uplift: ")
        answer = float(last.split(": ")[1])
        assert BOUNDARY <= answer < BOUNDARY + 0.05
        doc = json.loads((out / "sweep.json").read_text())
        assert doc["answer"] == answer and doc["find"] == "min-uplift" and doc["bracket"] == [1.0, 3.0]
        rows = doc["settings"]
        assert [r["uplift"] for r in rows[:2]] == [1.0, 3.0]
        assert all(r["passed"] == (r["uplift"] >= BOUNDARY) for r in rows)
        assert all(r["passed"] == (r["within_target_ratio"] >= 0.97 and r["latency_s"]["p99"] < 60) for r in rows)
        for r in rows:
            assert (out / r["label"] / "summary.json").is_file()
        page = (out / "sweep.html").read_text()
        assert page.count("<svg") == 4 and "refused work" in page
        assert f"min-uplift {answer:g}" in page and "pass: within_target_ratio" in page
        docs.append(_without_timings(doc))
    assert docs[0] == docs[1]


def test_sweep_find_says_none_when_the_high_end_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = cli("sweep", "smoke", "--find", "min-uplift", *TIGHT, "--high", "1.5", "--workers", "1",
                          "--out", str(tmp_path / "f"), capsys=capsys)  # fmt: skip
    assert code == 0 and stdout.strip().splitlines()[-1] == "min-uplift: none in [1, 1.5]"
    doc = json.loads((tmp_path / "f" / "sweep.json").read_text())
    assert doc["answer"] is None and [r["passed"] for r in doc["settings"]] == [False, False]


def test_sweep_find_refuses_a_bad_setting_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = cli("sweep", "smoke", "--find", "max-demand", "--scale", "0.0002", "--set", "cache.nope=1",
                          "--out", str(tmp_path / "f"), capsys=capsys)  # fmt: skip
    assert code == 2 and "cache.nope" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists()
    code, _, stderr = cli("sweep", "smoke", "--find", "min-uplift", "--uplift", "2", capsys=capsys)
    assert code == 2 and "--low and --high" in stderr
    with pytest.raises(ConfigError, match="exit_criteria"):
        compose.find("smoke", "min-uplift", tmp_path / "g", scale=0.0002, overrides={"exit_criteria": {}})
    with pytest.raises(ConfigError, match="tolerance"):
        compose.find("smoke", "min-uplift", tmp_path / "g", tolerance=5)


def test_the_sweep_page_draws_refused_work_when_the_summaries_have_it() -> None:
    row = {"uplift": 1.0, "demand": 1.0, "dsp_servers": 3, "requests": 10, "within_target_ratio": 0.9,
           "latency_s": {"p99": 3.0}, "peak_backlog": 4, "passed": False, "failed_criteria": ["x"]}  # fmt: skip
    doc = {"scenario": "s", "find": None, "settings": [row, row | {"uplift": 2.0, "passed": True}]}
    assert sweep_page(doc).count("<svg") == 3 and "refused work" not in sweep_page(doc)
    doc["settings"] = [r | {"refused": 7} for r in doc["settings"]]
    assert sweep_page(doc).count("<svg") == 4 and "refused work" in sweep_page(doc)
    assert "no data" in xy_chart([], x_label="x", y_label="y")
    assert xy_chart([(1.0, None, True)], x_label="x", y_label="y").count("<circle") == 0


def test_find_max_demand_gives_the_greatest_passing_demand(tmp_path: Path) -> None:
    tight = {"capacity.slots": 9000, "capacity.classes.mhhs_read.service_ms": 10000}
    result = compose.find("smoke", "max-demand", tmp_path / "d", uplift=2.5, low=1.0, high=2.0, tolerance=0.1,
                          scale=0.0002, overrides=tight, workers=2)  # fmt: skip
    rows = result.rows
    assert [r["demand"] for r in rows[:2]] == [1.0, 2.0] and all(r["uplift"] == 2.5 for r in rows)
    assert rows[0]["passed"] and not rows[1]["passed"]
    passing = [r["demand"] for r in rows if r["passed"]]
    failing = [r["demand"] for r in rows if not r["passed"]]
    assert result.answer == max(passing) and max(passing) < min(failing) <= max(passing) + 0.1
    assert result.answer_line == f"max-demand: {result.answer:g}"
