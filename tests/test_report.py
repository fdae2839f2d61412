"""report.html: content, self-containment, and rendering in headless Chromium without errors."""

from __future__ import annotations

import fcntl
import html
import json
import math
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from cli_helper import cli
from dccsim.bench.results import criteria as crit
from dccsim.bench.results.charts import Series, time_chart
from dccsim.bench.results.report import ReportError, build_report, render_report
from dccsim.bench.results.summary import RunInfo, RunParts, RunSummary, RunTally, TopDevice
from dccsim.core.catalogue import catalogue
from dccsim.core.records import ALERT_ACTIONS, OUTCOMES, REQUEST_CLASSES, RESPONSE_CODES, AlertRows, RequestRows
from dccsim.loadgen.scenario import load_scenario

NS = 1_000_000_000
DAY_NS = 1_795_392_000 * NS  # 2026-11-23 00:00 UTC


def summary_from(doc: dict[str, Any]) -> RunSummary:
    """The typed summary of a complete summary.json document (every field checked, as on reading)."""
    return msgspec.convert(doc, RunSummary)


def with_run(summary: RunSummary, **changes: Any) -> RunSummary:
    """A copy of ``summary`` with fields of its ``run`` section changed."""
    assert isinstance(summary.run, RunInfo)
    return msgspec.structs.replace(summary, run=msgspec.structs.replace(summary.run, **changes))


def make_summary(n: int = 104, bad_night: bool = False) -> RunSummary:
    """A summary in the shape ``dccsim run`` writes: an MHHS night, re-reads, two storms."""
    req, resp, within, backlog, cache, device, p50, p99, fwd, thr, exc = ([] for _ in range(11))
    for i in range(n):
        h = (i + 0.5) / 4
        stalled = bad_night and 2 <= h < 4
        r = (9000 if 0.5 <= h < 6 else 0) + (2500 if 6 <= h < 12 else 0) + (400 if h < 24 else 20)
        req.append(r)
        resp.append(r - 30)
        bl = (2700 if 0.5 <= h < 6 else 0) + (2000 if stalled else 0)
        backlog.append(bl)
        cache.append(1500 if 6 <= h < 12 else 0)
        device.append(r - cache[-1])
        p50.append(4.0 + bl / 1000)
        p99.append(25.0 + bl / 50 + (60 if stalled else 0))
        within.append(int(r * (0.8 if stalled else 0.995)))
        fwd.append(60 + (400 if 2 <= h < 3.5 else 0))
        thr.append(2000 if 2 <= h < 3.5 else 0)
        exc.append(8)
    total = sum(req)
    p50[-1] = p99[-1] = None  # an interval without requests
    doc = {
        "requests": total,
        "alerts": sum(fwd) + sum(thr) + sum(exc),
        "latency_s": {
            "p50": 4.8,
            "p90": 14.0,
            "p99": 71.5 if bad_night else 38.0,
            "p999": 80.0,
            "max": 120.0,
            "mean": 6.1,
        },
        "latency_by_class": {"mhhs_read": {"requests": 400_000, "p50_s": 5.0, "p99_s": 40.0, "max_s": 120.0}},
        "within_target_ratio": round(sum(within) / total, 6),
        "within_target_by_srv": {"4.8.1": 0.991, "4.6.1": 0.93 if bad_night else 0.975, "8.2": 1.0},
        "response_codes": {"I0": total - 2700, "E20": 1200, "E21": 1500},
        "outcomes": {"device": sum(device), "cache": sum(cache)},
        "invalid_traffic": {"bad_role": {"E2": 120}},
        "retries": 2100,
        "peak_backlog": max(backlog),
        "mean_wait_s": 0.8,
        "alert_actions": {"forwarded": sum(fwd), "throttled": sum(thr), "excluded": sum(exc)},
        "storm_alerts": 12_000,
        "storm_alerts_forwarded": 4000,
        "nonstorm_alerts_throttled": 12,
        "top_throttled_devices": [{"device": f"00DB1234567890{i:02X}", "throttled": 900 - 37 * i} for i in range(10)],
        "series": {
            "interval_s": 900,
            "start_ns": DAY_NS,
            "requests": req,
            "responses": resp,
            "within_target": within,
            "peak_backlog": backlog,
            "cache_hits": cache,
            "device_requests": device,
            "latency_p50_s": p50,
            "latency_p99_s": p99,
            "alerts": {"forwarded": fwd, "throttled": thr, "excluded": exc},
        },
        "logs": {"requests_arrow_bytes": 12_345_678, "alerts_arrow_bytes": 1_234_567},
        "cache": {
            "hits": sum(cache),
            "misses": 300_000,
            "hit_ratio": 0.34,
            "device_requests_saved": sum(cache),
            "stores": 300_000,
            "expired": 1000,
            "evicted": 0,
            "resident": 299_000,
            "bytes_per_entry": 40.0,
            "retention_hours": 48,
        },
        "throttle": {
            "forwarded": sum(fwd),
            "throttled": sum(thr),
            "excluded": sum(exc),
            "config": {"policy": "fixed-window", "threshold": 10},
        },
        "wall_seconds": 12.5,
        "events_per_second": 850_000,
        "peak_rss_bytes": 900 << 20,
        "run": {
            "dccsim_version": "0.1.0",
            "scenario": "smoke",
            "scale": 0.0005,
            "seed": 1,
            "uplift": 1.5,
            "demand": 1.0,
            "shards": 1,
            "day": "2026-11-23",
            "meters": 16_000,
            "dsp_servers": 1,
        },
    }
    return summary_from(doc)


def write_run(folder: Path, summary: RunSummary) -> Path:
    """A run folder as a run leaves it: summary.json, and histograms.json when there are some."""
    from dccsim.bench.results.summary import histograms_json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(summary.to_json())
    if summary.parts is not msgspec.UNSET and hasattr(summary.parts, "tally"):
        (folder / "histograms.json").write_text(histograms_json(summary.parts))
    return folder


def mask_clock(page: str) -> str:
    """The page without its generation time (the one line that differs between two renderings)."""
    return re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "Generated (time)", page)


def text_of(page: str) -> str:
    """Visible text, roughly: tags dropped, whitespace collapsed."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


# ------------------------------------------------------------------------------ content
def test_passing_run_headline_and_sections(tmp_path: Path) -> None:
    path = build_report(write_run(tmp_path / "run", make_summary()))
    assert path == tmp_path / "run" / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    text = text_of(page)
    # the smoke scenario's criteria, judged here because the summary has none stored
    assert "Meets targets" in text and "3 of 3 exit criteria pass" in text
    for title in (
        "Exit criteria",
        "Traffic and DSP backlog over the day",
        "Latency and target response time",
        "Target response compliance by SRV",
        "Readings cache",
        "Alert Storm Protection",
        "Run details",
    ):
        assert title in text, title
    assert "00-DB-12-34-56-78-90-00" in text  # storm devices as EUI-64s
    assert "40.0 B" in text and "48 h" in text  # cache bytes per entry and retention
    assert "x1.5" in text and "0.0005" in text and "12.5 s" in text  # uplift, scale, wall time
    # the [throttle] table as TOML, to copy into a scenario (it read "dry_run = False" before)
    assert "[throttle]" in text and "threshold = 10" in text
    assert 'policy = "fixed-window"' in text


def test_failing_run_counts_failed_criteria(tmp_path: Path) -> None:
    page = build_report(write_run(tmp_path / "run", make_summary(bad_night=True))).read_text()
    text = text_of(page)
    assert "Fails 2 criteria" in text
    assert "within_target_ratio >= 0.97 (S1, actual" in text and "latency_s.p99 < 60 (S2, actual 71.5)" in text
    assert text.count("FAIL") == 2 and text.count("PASS") == 1


def test_stored_verdicts_take_precedence(tmp_path: Path) -> None:
    summary = make_summary()
    result = crit.evaluate(summary, {"latency_s.p50 < 1": 3, "requests > 1": 1})
    summary = summary.with_criteria(crit.to_dict(result))
    text = text_of(build_report(write_run(tmp_path / "run", summary)).read_text())
    assert "Meets targets (1 failure within thresholds)" in text
    assert "latency_s.p50 < 1" in text and "within_target_ratio >= 0.97" not in text
    assert "criteria from summary.json" in text


def test_no_criteria_is_neither_pass_nor_fail(tmp_path: Path) -> None:
    summary = with_run(make_summary(), scenario="not-a-builtin")
    text = text_of(build_report(write_run(tmp_path / "run", summary)).read_text())
    assert "No exit criteria" in text and "Meets targets" not in text and "Fails" not in text


def test_srv_compliance_is_worst_first_and_marks_misses(tmp_path: Path) -> None:
    page = build_report(write_run(tmp_path / "run", make_summary(bad_night=True))).read_text()
    srv = page[page.index('id="srv"') : page.index('id="cache"')]
    order = [m.group(1) for m in re.finditer(r"<code>([\d.]+)</code>", srv)]
    assert order == ["4.6.1", "4.8.1", "8.2"]
    assert "Read Active Import Profile Data" in srv  # names from the SRV catalogue
    assert "below 97.0%" in srv and srv.count("meets 97.0%") == 2


def test_time_axis_reads_as_times_of_day() -> None:
    svg = time_chart([Series("x", [1.0] * 104, "#000")], start_s=0, interval_s=900, y_label="n")
    ticks = re.findall(r'class="tick"[^>]*text-anchor="middle">([^<]+)<', svg)
    assert ticks == [
        "00:00",
        "03:00",
        "06:00",
        "09:00",
        "12:00",
        "15:00",
        "18:00",
        "21:00",
        "00:00 +1d",
    ]
    assert "time of day (UTC), 15-minute intervals" in svg
    short = time_chart([Series("x", [1.0] * 16, "#000")], start_s=0, interval_s=900, y_label="n")
    assert re.findall(r'text-anchor="middle">(\d\d:\d\d)<', short) == [
        "00:00",
        "01:00",
        "02:00",
        "03:00",
        "04:00",
    ]


def test_missing_values_break_lines_and_empty_series_say_so() -> None:
    svg = time_chart([Series("p99", [1.0, 2.0, None, 3.0, 4.0], "#000")], start_s=0, interval_s=900, y_label="s")
    assert svg.count("<polyline") == 2
    tips = re.findall(r"<title>([^<]+)</title>", svg)
    assert len(tips) == 5 and tips[2].endswith("p99: -") and tips[0].startswith("00:00-00:15")
    empty = time_chart([Series("a", [None, None], "#000")], start_s=0, interval_s=900, y_label="s")
    assert "no data in this run" in empty
    stacked = time_chart(
        [Series("a", [1, 2], "#000"), Series("b", [3, 0], "#111")],
        start_s=0,
        interval_s=900,
        y_label="n",
        stacked=True,
    )
    bars = re.findall(r'<g class="bars"[^>]*>(.*?)</g>', stacked)
    assert [b.count("<rect") for b in bars] == [2, 1]  # zero-height layers are not drawn


def test_log_scale_for_wide_latency_ranges() -> None:
    svg = time_chart(
        [Series("p", [0.5, 50.0, 200.0], "#000")],
        start_s=0,
        interval_s=900,
        y_label="seconds",
        y_fmt="seconds",
        log=True,
    )
    assert "(log scale)" in svg
    labels = re.findall(r'text-anchor="end">([^<]+)<', svg)
    assert "500 ms" in labels and "1 s" in labels and "100 s" in labels


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    summary = with_run(make_summary(), scenario="<script>alert(1)</script>")
    summary.top_throttled_devices = [TopDevice(device="<img src=x>", throttled=1)]
    page = render_report(summary, tmp_path)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_page_is_self_contained(tmp_path: Path) -> None:
    page = build_report(write_run(tmp_path / "run", make_summary())).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert "<img" not in page and "@font-face" not in page


def ran_summary() -> RunSummary:
    """The summary a run holds in memory, derived from a few thousand rows; NaN for the cache
    figures nothing measured (summary.json has null there)."""
    srvs = catalogue().srvs
    rng = np.random.default_rng(5)
    n, m = 3000, 400
    t = np.sort(DAY_NS + rng.integers(0, 20 * 3600 * NS, n))
    lat = rng.lognormal(22.0, 1.2, n).astype(np.int64)  # a few seconds, a tail of minutes
    u8 = lambda values: np.asarray(values, np.uint8)  # noqa: E731
    zeros = np.zeros(n, np.int64)
    requests = RequestRows(
        seq=np.arange(n, dtype=np.uint64), t_scheduled_ns=t, t_done_ns=t + lat,
        device=rng.integers(1, 1 << 40, n).astype(np.uint64), srv=u8(rng.integers(0, 6, n)), role=u8(zeros),
        command_variant=u8(zeros + 1), outcome=u8(rng.choice([OUTCOMES.index("device"), OUTCOMES.index("cache")], n)),
        response_code=u8(rng.choice([RESPONSE_CODES.index("I0"), RESPONSE_CODES.index("E2")], n, p=[0.98, 0.02])),
        latency_ns=lat, within_target=lat < 30 * NS, period_start_ns=zeros, period_end_ns=zeros,
        originator=np.full(n, 1 << 40, np.uint64), counter=np.arange(n, dtype=np.uint64),
        request_class=u8(rng.integers(0, len(REQUEST_CLASSES), n)), attempt=u8(rng.random(n) < 0.01),
        invalid=u8(zeros), wait_ns=lat // 4, backlog=rng.integers(0, 80, n),
    )  # fmt: skip
    alerts = AlertRows(
        t_ns=np.sort(DAY_NS + rng.integers(0, 20 * 3600 * NS, m)), device=rng.integers(1, 30, m).astype(np.uint64),
        alert_code=np.full(m, 0x8F84, np.uint16), action=u8(rng.integers(0, len(ALERT_ACTIONS), m)),
        throttled_count=np.zeros(m, np.uint32), sequence_id=np.zeros(m, np.uint32), storm=rng.random(m) < 0.5,
    )  # fmt: skip
    tally = RunTally(DAY_NS, len(srvs))
    tally.record_requests(requests)
    tally.record_alerts(alerts)
    cache = {"hits": 0, "misses": 0, "hit_ratio": math.nan, "stores": 0, "bytes_per_entry": math.nan}
    return RunSummary.from_parts(
        RunParts(tally=tally, srvs=srvs, cache_stats=cache, throttle_config={"threshold": 10}),
        run=msgspec.convert(make_summary().to_builtins()["run"], RunInfo),
        wall_seconds=1.25,
        events_per_second=2720,
    )


def test_a_summary_held_in_memory_renders_as_its_summary_json(tmp_path: Path) -> None:
    held = ran_summary()
    assert held.cache is not None and math.isnan(held.cache.bytes_per_entry or 0.0)  # null in summary.json
    folder = tmp_path / "run"
    folder.mkdir()
    # the process that ran the day passes its summary: the folder has no summary.json to read
    from_memory = build_report(folder, folder / "held.html", summary=held).read_text()
    from_file = build_report(write_run(folder, held)).read_text()
    assert mask_clock(from_memory) == mask_clock(from_file)
    text = text_of(from_file)
    assert "memory per entry n/a" in text and "hit ratio n/a" in text
    assert f"requests {held.requests:,}" in text and "wall time 1.25 s" in text


def test_the_callers_summary_and_scenario_are_used_as_given(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run", make_summary(bad_night=True))  # not what the caller holds
    text = text_of(build_report(folder, summary=make_summary()).read_text())
    assert "Meets targets" in text and "Fails" not in text
    # without a scenario: the built-in one the run names (this folder has no log recording one)
    assert "A tiny MHHS day" in text and "mhhs read 400,000 5.00 s n/a 40.0 s 120 s 60.0 s" in text
    smoke, _ = load_scenario("smoke")
    mhhs = msgspec.structs.replace(smoke.capacity.classes["mhhs_read"], target_s=90.0)
    classes = {**smoke.capacity.classes, "mhhs_read": mhhs}
    capacity = msgspec.structs.replace(smoke.capacity, classes=classes)
    own = msgspec.structs.replace(smoke, description="The day as its caller ran it", capacity=capacity)
    text = text_of(build_report(folder, summary=make_summary(), scenario=own).read_text())
    assert "The day as its caller ran it" in text and "A tiny MHHS day" not in text
    assert "mhhs read 400,000 5.00 s n/a 40.0 s 120 s 90.0 s" in text


def test_write_run_folder_reports_the_summary_and_scenario_it_holds(tmp_path: Path) -> None:
    from dccsim.bench.compose import load_run, write_run_folder

    run = load_run("smoke")
    own = msgspec.structs.replace(run.scenario, description="The scenario the run was given")
    summary, result = write_run_folder(tmp_path, ran_summary(), run.criteria, own)
    page = (tmp_path / "report.html").read_text()
    text = text_of(page)
    assert "The scenario the run was given" in text and "criteria from summary.json" in text
    assert f"{len(result.verdicts) - result.failed_count} of {len(result.verdicts)} exit criteria pass" in text
    again = build_report(tmp_path, tmp_path / "again.html", scenario=own).read_text()  # from summary.json
    assert mask_clock(page) == mask_clock(again)


def test_an_empty_run_builds(tmp_path: Path) -> None:
    srvs = catalogue().srvs
    empty = RunSummary.from_parts(RunParts(tally=RunTally(DAY_NS, len(srvs)), srvs=srvs))
    assert empty.run is msgspec.UNSET and empty.cache is None and empty.latency_s.p50 is None
    text = text_of(build_report(tmp_path, summary=empty).read_text())
    assert "run report run 2026-11-23" in text  # no run section: named "run", the day from the series
    assert "scale n/a meters n/a seed n/a" in text  # and no settings (not zeros)
    assert "No exit criteria" in text and "latency p50 n/a" in text and "no data in this run" in text
    assert "No requests by SRV in this run." in text and "No device was throttled." in text
    assert "peak memory (RSS) n/a" in text


def test_a_run_without_server_statistics(tmp_path: Path) -> None:
    full = make_summary()
    alerts_only = msgspec.structs.replace(full.series, alerts={})
    summary = msgspec.structs.replace(full, cache=None, throttle=None, series=alerts_only)
    page = build_report(write_run(tmp_path / "run", summary)).read_text()
    # the smoke scenario judges the cache's hit ratio, which this run did not measure
    assert "Verdict unavailable" in text_of(page) and "cache.hit_ratio" in text_of(page)
    cache = text_of(page[page.index('id="cache"') : page.index('id="throttle"')])
    assert "hit ratio n/a n/a hits, n/a misses" in cache and "retention n/a" in cache
    throttle = text_of(page[page.index('id="throttle"') : page.index('id="details"')])
    assert f"alerts throttled {full.alert_actions['throttled']:,} of" in throttle  # counted in the alerts
    assert f"excluded codes {full.alert_actions['excluded']:,}" in throttle
    assert "no data in this run" in throttle and "Throttle settings" not in throttle


def test_a_stored_verdict_that_cannot_be_read(tmp_path: Path) -> None:
    summary = make_summary()
    stored = crit.to_dict(crit.evaluate(summary, {"requests > 1": 1}))
    summary = summary.with_criteria({**stored, "failures_by_severity": {"S1": 0}})
    text = text_of(build_report(write_run(tmp_path / "run", summary)).read_text())
    assert "Verdict unavailable" in text and "not a stored verdict document" in text


def test_build_report_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no summary.json"):
        build_report(tmp_path)
    path = tmp_path / "summary.json"
    wrong_type = json.dumps({**make_summary().to_builtins(), "requests": "many"})
    for text, why in (
        ("[1]", "Expected `object`, got `array`"),
        ("{not json", "malformed"),
        ('{"requests": 1}', "missing required field"),
        (wrong_type, "Expected `int`, got `str` - at `$.requests`"),
    ):
        path.write_text(text)
        with pytest.raises(ReportError, match=re.escape(f"{path}: not a dccsim summary")) as err:
            build_report(tmp_path)
        assert why in str(err.value)
    assert not (tmp_path / "report.html").exists()


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", make_summary())
    code, out, err = cli("report", str(run), capsys=capsys)
    assert (code, err, out.strip()) == (0, "", str(run / "report.html"))
    code, out, _ = cli("report", str(run / "summary.json"), "--out", str(tmp_path / "x.html"), capsys=capsys)
    assert code == 0 and (tmp_path / "x.html").read_text().startswith("<!DOCTYPE html>")
    code, out, err = cli("report", str(tmp_path / "nowhere"), capsys=capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "not a run folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("report", str(empty), capsys=capsys)
    assert code == 2 and "no summary.json" in err
    (empty / "summary.json").write_text('{"requests": 1}')
    code, out, err = cli("report", str(empty), capsys=capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "not a dccsim summary" in err


# ------------------------------------------------------------------------------ in a browser
_EXEC_WITH_PIPE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.close(int(sys.argv[1])); os.close(int(sys.argv[2])); os.execvp(sys.argv[3], sys.argv[3:])"
)


def find_chromium() -> str | None:
    for name in (
        os.environ.get("DCCSIM_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        if name and (path := shutil.which(name)):
            return path
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    Chromium reads commands from its fd 3 and writes answers and events to fd 4, each message
    NUL-terminated JSON; a small exec shim puts our pipe ends there.
    """

    def __init__(self, exe: str, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="dccsim-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        # the child's ends go above 10, so that moving them to 3 and 4 cannot clobber each other
        child_r, child_w = (
            fcntl.fcntl(to_r, fcntl.F_DUPFD, 10),
            fcntl.fcntl(from_w, fcntl.F_DUPFD, 10),
        )
        os.close(to_r)
        os.close(from_w)
        args = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_PIPE, str(child_r), str(child_w), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(child_r, child_w),
        )
        os.close(child_r)
        os.close(child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            if select.select([self._from_r], [], [], left)[0]:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the DevTools pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)  # type: ignore[no-any-return]

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        for i, m in enumerate(self.events):
            if m.get("method") == method and m.get("sessionId") == session:
                return self.events.pop(i)
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("method") == method and m.get("sessionId") == session:
                return m
            self.events.append(m)

    def open(self, url: str, width: int = 1280, height: int = 900) -> str:
        """A new tab showing ``url`` after its load event; returns the session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session: str = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        return session

    def evaluate(self, expression: str, session: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate: {res['exceptionDetails']}")
        return res["result"].get("value")

    def problems(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions and error log entries the page produced."""
        self.evaluate("0", session)  # flush pending events through the pipe
        out = []
        for m in self.events:
            if m.get("sessionId") != session:
                continue
            p = m.get("params", {})
            if m.get("method") == "Runtime.exceptionThrown":
                out.append(f"uncaught: {p['exceptionDetails'].get('exception', {}).get('description')}")
            elif m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in (
                "error",
                "assert",
            ):
                out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
            elif m.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self, session: str) -> list[str]:
        return [
            m["params"]["request"]["url"]
            for m in self.events
            if m.get("sessionId") == session and m.get("method") == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        try:
            os.write(self._to_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self.profile, ignore_errors=True)


def require_chromium() -> str:
    """The Chromium binary; a test failure (never a skip, in CI or not) when there is none."""
    exe = find_chromium()
    if exe is None:
        pytest.fail(
            "chromium is required for the report's browser test: apt-get install chromium "
            "(make test installs it when run as root), or set DCCSIM_CHROMIUM to a Chromium binary"
        )
    return exe


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    b = Chromium(require_chromium())
    try:
        yield b
    finally:
        b.close()


_CHART_BOXES = """JSON.stringify([...document.querySelectorAll('svg.chart')].map(e => {
  const r = e.getBoundingClientRect();
  return {w: r.width, h: r.height, marks: e.querySelectorAll('polyline, .bars rect, circle').length,
          label: e.getAttribute('aria-label')};
}))"""


@pytest.mark.parametrize("bad_night", [False, True])
def test_report_renders_in_chromium_without_errors(tmp_path: Path, browser: Chromium, bad_night: bool) -> None:
    page = build_report(write_run(tmp_path / "run", make_summary(bad_night=bad_night)))
    url = page.resolve().as_uri()
    session = browser.open(url)
    charts = browser.evaluate(_CHART_BOXES, session)
    boxes = json.loads(charts)
    assert len(boxes) == 6, boxes
    for box in boxes:
        assert box["w"] > 600 and 150 < box["h"] < 400, box  # drawn at a readable size
        assert box["marks"] > 0, box  # with lines or bars in it
    headline = browser.evaluate("document.querySelector('.banner .bmain').innerText", session)
    assert headline.endswith("Fails 2 criteria" if bad_night else "Meets targets")
    # nothing but the page itself was loaded, and nothing complained
    assert browser.requests(session) == [url]
    assert browser.problems(session) == []


def test_the_error_check_catches_errors(tmp_path: Path, browser: Chromium) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><img src='missing.png'>"
        "<script>console.error('drawn wrong'); undefinedFunction();</script></body></html>"
    )
    session = browser.open(bad.as_uri())
    problems = browser.problems(session)
    assert any("drawn wrong" in p for p in problems)
    assert any(p.startswith("uncaught:") and "undefinedFunction" in p for p in problems)
    assert any("missing.png" in p for p in browser.requests(session))


def test_chromium_missing_is_a_failure_not_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DCCSIM_CHROMIUM", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is required for the report's browser test"):
        require_chromium()


def test_a_real_run_s_report_draws_its_distribution_and_ok_failed_charts_in_chromium(
    tmp_path: Path, browser: Chromium
) -> None:
    """A smoke day's report: the latency distribution (from the run's histograms), requests OK
    and failed per interval, and the SRV table's percentiles are drawn; a screenshot is taken."""
    import base64

    from dccsim.bench.compose import simulate

    out = tmp_path / "run"
    simulate("smoke", out=out)
    url = (out / "report.html").resolve().as_uri()
    session = browser.open(url)
    boxes = {b["label"]: b for b in json.loads(browser.evaluate(_CHART_BOXES, session))}
    for label in ("the share of requests answered within each latency",
                  "requests answered OK and failed over the day"):  # fmt: skip
        assert boxes[label]["w"] > 600 and boxes[label]["marks"] > 0, boxes.get(label)
    heads = browser.evaluate("[...document.querySelectorAll('table.srv th')].map(e => e.textContent)", session)
    assert ["requests", "p50", "p95", "p99"] == heads[2:6], heads
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    (tmp_path / "report.png").write_bytes(png)
    assert browser.requests(session) == [url] and browser.problems(session) == []
