"""The alert-trace composition behind ``dccsim throttle`` and ``tune-throttle``, called directly.

The commands' own tests (tests/test_throttle_cli.py) run them end to end; these check what
the library functions return against what they write, and the errors they raise.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from dccsim.bench.alerts import pareto, read_trace, replay_trace, tune, write_trace
from dccsim.bench.results.charts import fmt_span as tuning_span
from dccsim.bench.results.logs import LogError, raw_table
from dccsim.bench.results.tuning_plot import tradeoff_svg
from dccsim.loadgen.alert_trace import make_alert_trace
from dccsim.throttle import ThrottleTableFullError, load_grid, load_policy

POLICY = 'policy = "fixed-window"\nthreshold = 3\nwindow_s = 600\ndesignated_period_s = 60\nexclude = ["8F75"]\n'
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("alerts")
    drawn = make_alert_trace(3000, 80, 3, seed=11)
    write_trace(folder / "trace.arrow", drawn, seed=11, params={"alerts": 3000, "devices": 80})
    (folder / "policy.toml").write_text(POLICY)
    (folder / "day.toml").write_text(POLICY.replace("window_s = 600", "window_s = 86400"))
    (folder / "dry.toml").write_text((folder / "day.toml").read_text() + "dry_run = true\n")
    (folder / "grid.toml").write_text('exclude = ["8F75"]\n[grid]\nthreshold = [2, 5, 50]\nwindow_s = [60, 3600]\n')
    return folder


def write_columns(path: Path, **columns: np.ndarray) -> Path:
    table = pa.table(columns)
    with ipc.new_file(str(path), table.schema) as w:
        w.write_table(table)
    return path


def test_write_trace_then_read_trace_gives_the_drawn_columns(files: Path) -> None:
    drawn = make_alert_trace(3000, 80, 3, seed=11)
    trace = read_trace(files / "trace.arrow")
    assert len(trace) == 3000 and trace.path == files / "trace.arrow"
    for name in ("t_ns", "device", "alert_code", "storm"):
        np.testing.assert_array_equal(getattr(trace, name), getattr(drawn, name))
    assert list(trace.columns) == ["t_ns", "device", "alert_code", "storm"]
    assert trace.metadata["dccsim.seed"] == "11"
    assert trace.metadata["dccsim.scenario"] == "alerts = 3000\ndevices = 80"


def test_read_trace_without_storm_column(tmp_path: Path) -> None:
    path = write_columns(
        tmp_path / "t.arrow",
        t_ns=np.array([0, 1], np.int64),
        device=np.array([1, 1], np.uint64),
        alert_code=np.array([5, 5], np.uint16),
    )
    trace = read_trace(path)
    assert trace.storm is None and list(trace.columns) == ["t_ns", "device", "alert_code"]


def test_read_trace_refuses_an_unsorted_trace_naming_the_row(tmp_path: Path) -> None:
    path = write_columns(
        tmp_path / "t.arrow",
        t_ns=np.array([0, 5, 5, 4, 3], np.int64),
        device=np.ones(5, np.uint64),
        alert_code=np.ones(5, np.uint16),
    )
    with pytest.raises(LogError) as err:
        read_trace(path)
    assert str(err.value) == (
        f"{path}: column 't_ns' must be non-decreasing (sorted by time); row 3 has 4 after 5"
    )


@pytest.mark.parametrize("config", ["day.toml", "dry.toml"])
def test_replay_counts_equal_the_log(files: Path, tmp_path: Path, config: str) -> None:
    trace = read_trace(files / "trace.arrow")
    policy = load_policy(files / config)
    out = tmp_path / "alerts.arrow"
    res = replay_trace(trace, policy, out, config_path=files / config, batch=700)
    log = raw_table(ipc.open_stream(out).read_all())
    action = np.array(log.column("action").to_pylist())
    discarded = (
        log.column("would_throttle").to_numpy() if policy.dry_run else action == "throttled"
    )
    st = res.stats
    assert res.out == out and res.alerts == log.num_rows == 3000
    assert st.forwarded == np.count_nonzero(action == "forwarded")
    assert st.throttled == np.count_nonzero(action == "throttled")
    assert st.excluded == np.count_nonzero(action == "excluded")
    assert st.would_throttle == np.count_nonzero(discarded) > 0
    storm = log.column("storm").to_numpy()
    assert res.storm_alerts == np.count_nonzero(storm)
    assert res.storm_discarded == np.count_nonzero(discarded & storm) > 0
    assert res.collateral == np.count_nonzero(discarded & ~storm) > 0
    # the most discarded keys, counted from the log
    dev, code = log.column("device").to_numpy()[discarded], log.column("alert_code").to_numpy()[discarded]
    keys, counts = np.unique(np.stack([dev, code.astype(np.uint64)]), axis=1, return_counts=True)
    assert len(counts) > 5
    assert [k for _, _, k in res.top_discarded] == sorted(counts, reverse=True)[:5]
    d, c, k = res.top_discarded[0]
    assert k == np.count_nonzero((dev == d) & (code == c))
    meta = {k.decode(): v.decode() for k, v in log.schema.metadata.items()}
    assert meta["dccsim.scenario"] == (files / config).read_text()
    assert meta["dccsim.trace"] == "trace.arrow" and meta["dccsim.seed"] == "11"
    assert json.loads(meta["dccsim.policy"])["threshold"] == 3


def test_replay_keeps_the_throttle_error_type_and_says_where(files: Path, tmp_path: Path) -> None:
    trace = read_trace(files / "trace.arrow")
    with pytest.raises(ThrottleTableFullError) as err:
        replay_trace(
            trace, load_policy(files / "day.toml"), tmp_path / "o.arrow", config_path=files / "day.toml",
            batch=1000, max_keys=1,
        )  # fmt: skip
    assert str(err.value).startswith(f"{trace.path}: rows from 0: ")
    assert err.value.processed > 0


def test_replay_that_cannot_write_is_a_log_error(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "alerts.arrow"
    with pytest.raises(LogError, match=r"alerts\.arrow: cannot write \("):
        replay_trace(
            read_trace(files / "trace.arrow"), load_policy(files / "policy.toml"), out,
            config_path=files / "policy.toml",
        )  # fmt: skip


def test_pareto_by_hand() -> None:
    cols = {
        "storm_discarded": np.array([10, 10, 8, 12, 12, 5]),
        "collateral": np.array([0, 3, 0, 7, 7, 0]),
    }
    # 1 is beaten by 0 (same storm, more collateral); 2 and 5 by 0; 3 and 4 tie, both kept
    assert pareto(cols).tolist() == [True, False, False, True, True, False]


def test_tune_returns_what_it_writes(files: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    run = tune(
        read_trace(files / "trace.arrow"),
        load_grid(files / "grid.toml"),
        tmp_path / "tune",
        config_path=files / "grid.toml",
        workers=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[0] == (0, 6) and max(calls) == (6, 6)
    assert len(run) == 6 and run.alerts == 3000 and run.has_storm
    assert run.log == tmp_path / "tune" / "tuning.arrow" and run.plot == tmp_path / "tune" / "tuning.svg"
    log = ipc.open_stream(run.log).read_all()
    assert log.column_names == list(run.columns)
    for name, values in run.columns.items():
        got = log.column(name).to_numpy()
        assert np.array_equal(got, values, equal_nan=values.dtype.kind == "f"), name
    np.testing.assert_array_equal(run.pareto, pareto(run.columns))
    assert run.pareto.any() and not run.pareto.all()
    meta = {k.decode(): v.decode() for k, v in log.schema.metadata.items()}
    assert meta["dccsim.alerts"] == "3000" and "threshold = [2, 5, 50]" in meta["dccsim.scenario"]
    svg = ET.parse(run.plot).getroot()
    big = [c for c in svg.iter(f"{SVG}circle") if c.get("r") == "5"]
    assert len(big) == int(run.pareto.sum())
    # the best trade-offs are labelled with their setting (the pareto column says which they are)
    labels = [t.text for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("N=")]
    assert sorted(labels) == sorted(
        f"N={n} W={tuning_span(w)} P={tuning_span(p)}"
        for n, w, p, best in zip(run.columns["threshold"], run.columns["window_s"],
                                 run.columns["designated_period_s"], run.pareto, strict=True) if best
    )  # fmt: skip
    assert log.column("pareto").to_pylist() == run.pareto.tolist()
    assert run.plot.read_text() == tradeoff_svg(run.columns, run.pareto, title="trace.arrow: 6 settings")


def test_tune_without_storm_column_writes_no_plot(files: Path, tmp_path: Path) -> None:
    table = ipc.open_stream(files / "trace.arrow").read_all().drop_columns(["storm"])
    path = tmp_path / "plain.arrow"
    with ipc.new_file(str(path), table.schema) as w:
        w.write_table(table)
    run = tune(read_trace(path), load_grid(files / "grid.toml"), tmp_path / "t", config_path=files / "grid.toml")
    assert not run.has_storm and run.plot is None and not run.pareto.any()
    assert "storm_discarded" not in run.columns and not (tmp_path / "t" / "tuning.svg").exists()
    assert run.log.exists() and not math.isnan(run.wall_s)


def test_tune_into_a_folder_that_cannot_be_made_is_a_log_error(files: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LogError, match="cannot create the folder"):
        tune(
            read_trace(files / "trace.arrow"), load_grid(files / "grid.toml"), blocker / "t",
            config_path=files / "grid.toml",
        )  # fmt: skip
