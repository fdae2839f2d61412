"""``dccsim compare A B --html``: the two runs on one page, drawn in Chromium."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import test_report
from cli_helper import cli
from dccsim.bench.compose import simulate
from test_report import _CHART_BOXES, Chromium

browser = test_report.browser  # the report tests' Chromium fixture, one per module here too


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cmp")
    simulate("smoke", out=root / "base")
    simulate("smoke", out=root / "less-capacity", uplift=1.0)
    return root / "base", root / "less-capacity"


def test_the_comparison_page_shows_kpis_series_distributions_and_srvs(
    runs: tuple[Path, Path], tmp_path: Path, browser: Chromium, capsys: pytest.CaptureFixture[str]
) -> None:
    base, worse = runs
    page = tmp_path / "cmp.html"
    code, _, err = cli("compare", str(base), str(worse), "--html", str(page), capsys=capsys)
    assert code == 1 and f"comparison page: {page}" in err  # less capacity: regressed, and the page says so
    url = page.resolve().as_uri()
    session = browser.open(url)
    boxes = json.loads(browser.evaluate(_CHART_BOXES, session))
    labels = [b["label"] for b in boxes]
    assert len(boxes) == 4 and "latency distributions: base and less-capacity" in labels, labels
    assert all(b["w"] > 600 and b["marks"] > 0 for b in boxes), boxes
    banner = browser.evaluate("document.querySelector('.banner .bmain').textContent", session)
    assert banner.endswith("KPI(s) regressed")
    srv_rows = browser.evaluate("document.querySelectorAll('#srv tbody tr').length", session)
    assert srv_rows >= 10
    kpi = browser.evaluate("[...document.querySelectorAll('#kpis tbody tr')].map(r => r.textContent)", session)
    assert any("within target response time" in r and "REGRESSED" in r for r in kpi), kpi
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
    assert base64.b64decode(shot["data"])[:4] == b"\x89PNG"
    assert browser.requests(session) == [url] and browser.problems(session) == []


def test_a_run_against_itself_passes_and_a_page_in_no_folder_is_exit_2(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = runs
    code, _, _ = cli("compare", str(base), str(base), "--html", str(tmp_path / "same.html"), capsys=capsys)
    assert code == 0 and "No KPI worsened beyond its limit" in (tmp_path / "same.html").read_text()
    code, _, err = cli("compare", str(base), str(base), "--html", str(tmp_path / "no" / "x.html"), capsys=capsys)
    assert code == 2 and "--html: got" in err and "expected a file in an existing folder" in err


def test_compare_judges_any_percentile_from_the_histograms(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dccsim.bench.results.criteria import histograms_from_file

    base, worse = runs
    code, out, _ = cli("compare", str(base), str(worse), "--percentile", "97.5", "--json", capsys=capsys)
    row = next(k for k in json.loads(out)["kpis"] if k["path"] == "latency_s.p97.5")
    want = [histograms_from_file(r / "histograms.json")("all", "").percentile(97.5) / 1e9 for r in (base, worse)]
    assert code == 1 and [row["base"], row["new"]] == pytest.approx(want) and row["regressed"]
    code, _, err = cli("compare", str(base), str(base), "--percentile", "101", capsys=capsys)
    assert code == 2 and "--percentile: got 101" in err
    bare = tmp_path / "old"
    bare.mkdir()
    (bare / "summary.json").write_text((base / "summary.json").read_text())  # a run that kept no histograms
    code, _, err = cli("compare", str(bare), str(base), "--percentile", "90", capsys=capsys)
    assert code == 2 and "has no histograms.json" in err
