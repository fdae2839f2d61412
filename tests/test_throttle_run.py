"""Reports at window close through a whole virtual-time run: rows of alerts.arrow, summary counts.

The smoke day runs twice, with and without ``throttle.report_at_close``: the device alerts'
decisions are the same; with the option, the log holds the reports (action ``reported``)
in time order among the alerts, the plain-Python reference makes the same ones, and every
discard is accounted for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dccsim.bench import load_run, simulate
from dccsim.bench.results.logs import read_log
from dccsim.loadgen.scenario import load_scenario
from dccsim.throttle import ReferenceThrottle, policy_from_dict


def _run(tmp: Path, name: str, at_close: bool, shards: int | None = None) -> Path:
    _, text = load_scenario("smoke")
    assert "[throttle]\n" in text
    if at_close:
        text = text.replace("[throttle]\n", "[throttle]\nreport_at_close = true\n")
    out = tmp / name
    simulate(load_run(f"smoke-{name}", text=text, shards=shards), out=out)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    return _run(tmp, "default", False), _run(tmp, "at-close", True)


def test_reports_are_rows_of_the_alerts_log_and_counted_in_the_summary(runs: tuple[Path, Path]) -> None:
    default, at_close = runs
    plain = read_log(default / "alerts.arrow", strict=True, raw=True).to_pydict()
    log = read_log(at_close / "alerts.arrow", strict=True, raw=True).to_pydict()
    action = np.array(log["action"])
    reported = action == "reported"
    assert reported.sum() > 0
    # the device alerts are the same, with the same decisions; only the counts they carry move
    for col in ("t_ns", "device", "alert_code", "action", "storm"):
        assert np.array_equal(np.array(log[col])[~reported], np.array(plain[col])), col
    t = np.array(log["t_ns"])
    assert (np.diff(t) >= 0).all()  # reports in time order among the alerts
    assert not np.array(log["storm"])[reported].any()
    count = np.array(log["throttled_count"])
    assert (count[reported] > 0).all() and (np.array(log["sequence_id"])[reported] > 0).all()

    s0 = json.loads((default / "summary.json").read_text())
    s1 = json.loads((at_close / "summary.json").read_text())
    th0, th1 = s0["throttle"], s1["throttle"]
    assert th0["unreported_discards"] > 0 and th0["reports_at_close"] == 0
    assert s1["alerts"] == s0["alerts"] == int((~reported).sum())  # reports are not device alerts
    assert s1["alert_actions"]["reported"] == th1["reports_at_close"] == int(reported.sum())
    assert th1["reported_at_close"] == int(count[reported].sum())
    assert th1["config"]["report_at_close"] is True
    assert th1["unreported_discards"] < th0["unreported_discards"]
    carried = int(count[action == "forwarded"].sum())
    assert th1["throttled"] == carried + th1["reported_at_close"] + th1["stale_discards"] + th1["unreported_discards"]


def test_the_reference_makes_the_same_reports(runs: tuple[Path, Path]) -> None:
    _, at_close = runs
    scenario, _ = load_scenario("smoke")
    log = read_log(at_close / "alerts.arrow", strict=True, raw=True)
    action = np.array(log.column("action").to_pylist())
    alerts = action != "reported"
    col = {name: log.column(name).to_numpy() for name in ("t_ns", "device", "alert_code", "throttled_count")}
    ref = ReferenceThrottle(policy_from_dict({**scenario.throttle, "report_at_close": True}))
    out = ref.process(col["t_ns"][alerts], col["device"][alerts], col["alert_code"][alerts])
    names = ("forwarded", "throttled", "excluded")
    assert [names[a] for a in out.action] == action[alerts].tolist()
    assert out.throttled_count.tolist() == col["throttled_count"][alerts].tolist()
    reports = ref.take_reports(int(col["t_ns"][~alerts].max()))
    assert reports.t_ns.tolist() == col["t_ns"][~alerts].tolist()
    assert reports.device.tolist() == col["device"][~alerts].tolist()
    assert reports.throttled_count.tolist() == col["throttled_count"][~alerts].tolist()


def test_reports_are_the_same_whatever_the_shards(runs: tuple[Path, Path], tmp_path: Path) -> None:
    sharded = _run(tmp_path, "at-close-3", True, shards=3)
    one = read_log(runs[1] / "alerts.arrow", strict=True, raw=True)
    three = read_log(sharded / "alerts.arrow", strict=True, raw=True)
    assert one.num_rows == three.num_rows and one.column("action").to_pylist().count("reported") > 0
    for name in one.column_names:
        assert one.column(name).to_pylist() == three.column(name).to_pylist(), name
