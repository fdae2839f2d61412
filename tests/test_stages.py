"""Where a run spends its time: stage times in summary.json and the report."""

from __future__ import annotations

from pathlib import Path

from dccsim.bench.compose import simulate
from dccsim.bench.results.summary import RunSummary
from dccsim.loadgen.driver import STAGES, StageTimes


def test_stage_times_add_per_stage_on_the_clock_given() -> None:
    now = [0]
    st = StageTimes(clock=lambda: now[0])
    with st.timed("generate", rows=10):
        now[0] += 500
    st.add("generate", 300, 5)
    st.add("log", 7)
    assert st.to_dict() == {"generate": {"seconds": 800e-9, "rows": 15}, "log": {"seconds": 7e-9, "rows": 0}}


def test_a_run_reports_every_stage_with_its_rows(tmp_path: Path) -> None:
    res = simulate("smoke", out=tmp_path / "run")
    s = res.summary
    assert s.stages and set(s.stages) == set(STAGES)
    assert all(st.seconds > 0 for st in s.stages.values())
    # rows: what each stage saw (retries pass validation and the cache again, not generation)
    assert s.stages["validate_dsp"].rows == s.stages["cache_outcomes"].rows == s.requests
    assert s.stages["generate"].rows == s.requests - s.retries
    assert s.stages["throttle"].rows == s.alerts
    # the log takes the requests, the alerts and the future-dated responses (audit.arrow)
    assert s.future_dated is not None and s.future_dated.responses > 0
    assert s.stages["log"].rows == s.requests + s.alerts + s.future_dated.responses
    st = s.stages["log"]
    assert abs(st.ns_per_row * st.rows / 1e9 - st.seconds) < 1e-4  # seconds are rounded to 0.1 ms
    assert abs(st.share_of_wall * s.wall_seconds - st.seconds) < 1e-3
    back = RunSummary.from_json((tmp_path / "run" / "summary.json").read_bytes())
    assert back.stages == s.stages
    assert "Where the time went" in (tmp_path / "run" / "report.html").read_text()
    both = s.merge(s)
    assert both.stages["log"].rows == 2 * st.rows and both.stages["log"].seconds == round(2 * st.seconds, 4)
