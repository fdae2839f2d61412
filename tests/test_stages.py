"""Where a run spends its time: stage times in summary.json and the report."""

from __future__ import annotations

from pathlib import Path

import msgspec
from dccsim.bench.compose import simulate
from dccsim.bench.results.summary import RunSummary
from dccsim.loadgen.driver import STAGES, StageTimes


def test_stage_times_add_per_stage_on_the_clocks_given() -> None:
    now, cpu = [0], [0]
    st = StageTimes(clock=lambda: now[0], cpu_clock=lambda: cpu[0])
    with st.timed("generate", rows=10):
        now[0] += 500
        cpu[0] += 200
    st.add("generate", 300, 100, rows=5)
    start = st.mark()
    now[0] += 7
    cpu[0] += 3
    st.add("log", *st.since(start))
    assert st.to_dict() == {
        "generate": {"seconds": 800e-9, "cpu_seconds": 300e-9, "rows": 15},
        "log": {"seconds": 7e-9, "cpu_seconds": 3e-9, "rows": 0},
    }


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
    # CPU time: the thread's own, so never more than its wall time (the build's is the process's,
    # whose threads draw side by side, and the log's adds its writer threads'); every stage used some
    for name, stage in s.stages.items():
        assert stage.cpu_seconds is not None and stage.cpu_seconds > 0, name
        if name not in ("build", "log"):
            assert stage.cpu_seconds <= stage.seconds + 2e-4, (name, stage)
    assert abs(st.cpu_ns_per_row * st.rows / 1e9 - st.cpu_seconds) < 1e-4
    # the whole process's CPU over the run: at least what the stages counted
    assert isinstance(s.cpu_seconds, float)
    assert s.cpu_seconds >= sum(x.cpu_seconds for x in s.stages.values()) - 1e-2
    back = RunSummary.from_json((tmp_path / "run" / "summary.json").read_bytes())
    assert back.stages == s.stages
    assert "Where the time went" in (tmp_path / "run" / "report.html").read_text()
    both = s.merge(s)
    assert both.stages["log"].rows == 2 * st.rows and both.stages["log"].seconds == round(2 * st.seconds, 4)
    assert both.stages["log"].cpu_seconds == round(2 * st.cpu_seconds, 4)
    assert both.cpu_seconds == round(2 * s.cpu_seconds, 3)
    assert "CPU ns per row" in (tmp_path / "run" / "report.html").read_text()
    older = msgspec.structs.replace(
        s, stages={k: msgspec.structs.replace(v, cpu_seconds=None, cpu_ns_per_row=None) for k, v in s.stages.items()}
    )
    mixed = s.merge(older).stages["log"]
    assert mixed.cpu_seconds is None and mixed.seconds == both.stages["log"].seconds
    html = (tmp_path / "run" / "report.html").read_text()
    assert "whole run" in html and "Arrow&#x27;s compression threads" in html


def test_a_summary_without_cpu_times_still_reads_and_merges() -> None:
    """Summaries written before CPU time was kept have none: they read, and a merge with one
    keeps CPU time unknown rather than counting part of it."""
    from dccsim.bench.results.summary import Stage, stages_section

    old = Stage(seconds=1.0, rows=10, ns_per_row=1e8, share_of_wall=0.5)
    assert old.cpu_seconds is None and old.cpu_ns_per_row is None
    section = stages_section({"log": {"seconds": 2.0, "rows": 4, "cpu_seconds": 1.0}}, 4.0)
    assert section["log"].cpu_seconds == 1.0 and section["log"].cpu_ns_per_row == 2.5e8
    assert stages_section({"log": {"seconds": 2.0, "rows": 4}}, None)["log"].cpu_seconds is None
