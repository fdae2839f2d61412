"""``dccsim make-alert-trace``, ``dccsim throttle`` and ``dccsim tune-throttle`` end to end.

Commands run in-process through the console script's ``main`` (exit codes and the
one-line error convention included); one test goes through a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from dccsim.bench.cli import main
from dccsim.bench.results.logs import raw_table
from dccsim.throttle import Throttle, load_policy

S = 1_000_000_000
A = 0x00DB_1200_0000_0001
B = 0x00DB_1200_0000_0002

POLICY = """
policy = "fixed-window"
threshold = 3
window_s = 60
designated_period_s = 20
exclude = ["8F75"]
dry_run = false

[overrides."8f12"]
threshold = 1
window_s = 10
"""
# the trace of tests/test_throttle_semantics.py::test_fixed_window_by_hand
ROWS = [
    (0, A, 0x8F84),
    (0, A, 0x8F84),
    (0, B, 0x8F84),
    (0, A, 0x8F84),
    (0, A, 0x8F84),
    (1, A, 0x8F75),
    (5, A, 0x8F84),
    (5, A, 0x8F12),
    (6, A, 0x8F12),
    (20, A, 0x8F84),
    (20, A, 0x8F84),
    (25, A, 0x8F12),
    (60, A, 0x8F84),
    (60, A, 0x8F84),
    (60, B, 0x8F84),
]
ACTIONS = (
    ["forwarded"] * 4
    + ["throttled", "excluded", "throttled", "forwarded", "throttled", "forwarded", "throttled"]
    + ["forwarded"] * 4
)
COUNTS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 1, 0, 0]
SEQS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0]


def cli(*args: object) -> int:
    """Run ``dccsim ARGS`` in-process; the exit code (0 when ``main`` returns)."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def write_trace(
    path: Path, columns: dict[str, pa.Array | np.ndarray], *, stream: bool = False
) -> Path:
    table = pa.table(columns)
    with pa.OSFile(str(path), "wb") as sink:
        opener = ipc.new_stream if stream else ipc.new_file
        with opener(sink, table.schema) as w:
            w.write_table(table)
    return path


def hand_trace(path: Path, **kw: bool) -> Path:
    return write_trace(
        path,
        {
            "t_ns": np.array([r[0] * S for r in ROWS], np.int64),
            "device": np.array([r[1] for r in ROWS], np.uint64),
            "alert_code": np.array([r[2] for r in ROWS], np.uint16),
        },
        **kw,
    )


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(POLICY)
    return p


@pytest.mark.parametrize("stream", [False, True])
def test_throttle_by_hand(tmp_path: Path, policy_file: Path, capsys, stream: bool) -> None:
    trace = hand_trace(tmp_path / "trace.arrow", stream=stream)
    out = tmp_path / "alerts.arrow"
    assert cli("throttle", trace, "--config", policy_file, "--out", out, "--batch", 4) == 0
    log = raw_table(ipc.open_stream(out).read_all())
    assert log.column_names == [
        "t_ns",
        "device",
        "alert_code",
        "action",
        "throttled_count",
        "sequence_id",
    ]
    assert log.column("action").to_pylist() == ACTIONS
    assert log.column("throttled_count").to_pylist() == COUNTS
    assert log.column("sequence_id").to_pylist() == SEQS
    assert log.schema.field("throttled_count").type == pa.uint32()
    meta = {k.decode(): v.decode() for k, v in log.schema.metadata.items()}
    assert json.loads(meta["dccsim.policy"])["overrides"] == {
        "8f12": {"threshold": 1, "window_s": 10.0}
    }
    assert "threshold = 3" in meta["dccsim.scenario"]
    shown = capsys.readouterr().out
    for line in ("forwarded", "throttled (discarded)", "excluded"):
        assert line in shown
    assert "00-DB-12-00-00-00-00-01" in shown  # the most discarded key


@pytest.mark.parametrize("batch", [4, 1000])
def test_throttle_reports_at_window_close_are_rows_of_the_log(tmp_path: Path, batch: int) -> None:
    """With report_at_close, A/8F12's discard (window 5-15 s) and A/8F84's last one (window
    0-60 s) are reported by rows of their own (action "reported") at 15 s and 60 s, before
    the alerts at or after those times, which then carry nothing; the same in any batches."""
    trace = hand_trace(tmp_path / "trace.arrow")
    cfg = tmp_path / "close.toml"
    cfg.write_text("report_at_close = true\n" + POLICY)
    out = tmp_path / "alerts.arrow"
    assert cli("throttle", trace, "--config", cfg, "--out", out, "--batch", batch) == 0
    log = raw_table(ipc.open_stream(out).read_all())
    assert log.column("t_ns").to_pylist() == [
        r * S for r in [0, 0, 0, 0, 0, 1, 5, 5, 6, 15, 20, 20, 25, 60, 60, 60, 60]
    ]
    assert log.column("action").to_pylist() == ACTIONS[:9] + ["reported"] + ACTIONS[9:12] + ["reported"] + ACTIONS[12:]
    assert log.column("device").to_pylist()[9] == log.column("device").to_pylist()[13] == A
    assert [log.column("alert_code")[i].as_py() for i in (9, 13)] == [0x8F12, 0x8F84]
    assert log.column("throttled_count").to_pylist() == COUNTS[:9] + [1] + [2, 0, 0] + [1] + [0, 0, 0]
    assert log.column("sequence_id").to_pylist() == SEQS[:9] + [1] + [1, 0, 0] + [1] + [0, 0, 0]


def test_throttle_dry_run_adds_would_throttle(tmp_path: Path) -> None:
    trace = hand_trace(tmp_path / "trace.arrow")
    cfg = tmp_path / "dry.toml"
    cfg.write_text(POLICY.replace("dry_run = false", "dry_run = true"))
    out = tmp_path / "alerts.arrow"
    assert cli("throttle", trace, "--config", cfg, "--out", out) == 0
    log = raw_table(ipc.open_stream(out).read_all())
    assert log.column("action").to_pylist() == [
        a if a == "excluded" else "forwarded" for a in ACTIONS
    ]
    assert log.column("would_throttle").to_pylist() == [a == "throttled" for a in ACTIONS]
    assert log.column("throttled_count").to_pylist() == COUNTS


def test_generated_storm_trace_through_throttle(tmp_path: Path, policy_file: Path) -> None:
    trace = tmp_path / "storms.arrow"
    assert (
        cli(
            "make-alert-trace",
            trace,
            "--alerts",
            5000,
            "--devices",
            200,
            "--storms",
            3,
            "--seed",
            4,
        )
        == 0
    )
    table = ipc.open_stream(trace).read_all()  # a stream, as every log dccsim writes
    assert table.num_rows == 5000 and int(pc_sum(table.column("storm"))) == 1000
    assert table.schema.metadata[b"dccsim.seed"] == b"4"
    out = tmp_path / "alerts.arrow"
    assert cli("throttle", trace, "--config", policy_file, "--out", out, "--batch", 777) == 0
    log = raw_table(ipc.open_stream(out).read_all())
    assert log.column_names[:4] == ["t_ns", "device", "alert_code", "storm"]
    # the same as one throttle over the whole trace
    cols = [table.column(n).to_numpy() for n in ("t_ns", "device", "alert_code")]
    want = Throttle(load_policy(policy_file)).process(*cols)
    codes = log.column("action").combine_chunks().indices.to_numpy()
    np.testing.assert_array_equal(codes, want.action)
    np.testing.assert_array_equal(log.column("sequence_id").to_numpy(), want.sequence_id)
    assert (codes[table.column("storm").to_numpy()] == 1).sum() > 500  # storms are caught


def pc_sum(column: pa.ChunkedArray) -> int:
    return int(np.count_nonzero(column.to_numpy()))


def test_tune_throttle(tmp_path: Path, capsys) -> None:
    trace = tmp_path / "storms.arrow"
    assert (
        cli(
            "make-alert-trace",
            trace,
            "--alerts",
            4000,
            "--devices",
            100,
            "--storms",
            4,
            "--seed",
            2,
        )
        == 0
    )
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'exclude = ["8F75"]\n[grid]\nthreshold = [2, 10]\nwindow_s = [600, 3600]\n'
        "designated_period_s = [60]\n"
    )
    out = tmp_path / "tune"
    assert cli("tune-throttle", trace, "--grid", grid, "--out", out, "--workers", 2) == 0
    res = ipc.open_stream(out / "tuning.arrow").read_all()
    assert res.num_rows == 4
    assert res.column("threshold").to_pylist() == [2, 2, 10, 10]
    assert set(res.column_names) >= {
        "forwarded",
        "discarded",
        "excluded",
        "storm_forwarded",
        "storm_discarded",
        "collateral",
        "storms_caught",
        "median_catch_s",
    }
    assert res.column("storms").to_pylist() == [4] * 4
    svg = ET.parse(out / "tuning.svg").getroot()
    assert (
        svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}circle")) == 4
    )
    assert "href" not in (out / "tuning.svg").read_text()  # self-contained
    assert "storm disc" in capsys.readouterr().out


def test_tune_throttle_without_storm_column_skips_the_plot(tmp_path: Path, capsys) -> None:
    trace = hand_trace(tmp_path / "trace.arrow")
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nthreshold = [1, 2]\n")
    assert cli("tune-throttle", trace, "--grid", grid, "--out", tmp_path / "t") == 0
    assert (tmp_path / "t" / "tuning.arrow").exists() and not (
        tmp_path / "t" / "tuning.svg"
    ).exists()
    assert "no storm column" in capsys.readouterr().out


def bad(path: Path, **columns: object) -> Path:
    base: dict[str, object] = {
        "t_ns": np.array([0, 1], np.int64),
        "device": np.array([1, 2], np.uint64),
        "alert_code": np.array([1, 2], np.uint16),
    }
    base.update(columns)
    return write_trace(path, {k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: bad(p, device=None), "missing column 'device'; expected columns t_ns (int64)"),
        (
            lambda p: bad(p, alert_code=np.array([1, 2], np.int32)),
            "column 'alert_code' has type int32, expected uint16",
        ),
        (
            lambda p: bad(p, t_ns=np.array([5, 4], np.int64)),
            "column 't_ns' must be non-decreasing (sorted by time); row 1 has 4 after 5",
        ),
        (
            lambda p: bad(p, storm=np.array([1, 0], np.int8)),
            "column 'storm' has type int8, expected bool",
        ),
        (
            lambda p: bad(p, device=pa.array([1, None], pa.uint64())),
            "column 'device' has 1 nulls, expected none",
        ),
        (lambda p: (p.write_text("not arrow"), p)[1], "expected an Arrow IPC file or stream"),
    ],
)
def test_bad_traces_exit_2_with_one_line(
    tmp_path: Path, policy_file: Path, capsys, make, message
) -> None:
    trace = make(tmp_path / "trace.arrow")
    for args in (
        ("throttle", trace, "--config", policy_file, "--out", tmp_path / "o.arrow"),
        ("tune-throttle", trace, "--grid", policy_file, "--out", tmp_path / "t"),
    ):
        assert cli(*args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert err.startswith("dccsim: error: ")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("threshold = 0", "threshold = 0: expected an integer from 1 to 2147483647"),
        ("window_s = -60", "window_s = -60.0: expected a number of seconds > 0"),
        ("treshold = 3", "unknown key 'treshold'; expected one of: policy, threshold"),
        ('exclude = ["8F7G"]', "exclude[0] = '8F7G': expected an alert code of 4 hex digits"),
        (
            "[overrides.8F84]\nthreshold = -1",
            "overrides.8F84.threshold = -1: expected an integer from 1",
        ),
        ("threshold = ", "not valid TOML"),
    ],
)
def test_bad_configs_exit_2_with_one_line(
    tmp_path: Path, capsys, config: str, message: str
) -> None:
    trace = hand_trace(tmp_path / "trace.arrow")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(config)
    assert cli("throttle", trace, "--config", cfg, "--out", tmp_path / "o.arrow") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cfg}: {message}" in err, err
    assert not (tmp_path / "o.arrow").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("make-alert-trace", "{tmp}/x.arrow", "--alerts", -5),
            "--alerts = -5: expected an integer from 0",
        ),
        (
            ("make-alert-trace", "{tmp}/x.arrow", "--storms", 50, "--devices", 10),
            "--storms = 50: expected an integer from 0 to 10",
        ),
        (
            ("make-alert-trace", "{tmp}/x.arrow", "--storm-share", 1.5),
            "--storm-share = 1.5: expected a number from 0 to 1",
        ),
        (
            (
                "throttle",
                "{tmp}/missing.arrow",
                "--config",
                "{tmp}/p.toml",
                "--out",
                "{tmp}/o.arrow",
            ),
            "does not exist",
        ),
        (("throttle", "{tmp}/trace.arrow", "--out", "{tmp}/o.arrow"), "Missing option '--config'"),
        (
            (
                "tune-throttle",
                "{tmp}/trace.arrow",
                "--grid",
                "{tmp}/p.toml",
                "--out",
                "{tmp}/t",
                "--workers",
                0,
            ),
            "--workers",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    tmp_path: Path, policy_file: Path, capsys, args, message
) -> None:
    hand_trace(tmp_path / "trace.arrow")
    policy_file.rename(tmp_path / "p.toml")
    assert cli(*(str(a).format(tmp=tmp_path) for a in args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_console_script_in_a_subprocess(tmp_path: Path, policy_file: Path) -> None:
    trace = hand_trace(tmp_path / "trace.arrow")
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "dccsim.bench",
            "throttle",
            str(trace),
            "--config",
            str(policy_file),
            "--out",
            str(tmp_path / "o.arrow"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert ok.returncode == 0, ok.stderr
    assert "throttled (discarded)" in ok.stdout
    cfg = tmp_path / "bad.toml"
    cfg.write_text("threshold = 0")
    err = subprocess.run(
        [
            sys.executable,
            "-m",
            "dccsim.bench",
            "throttle",
            str(trace),
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "o.arrow"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert err.returncode == 2 and err.stderr.count("\n") == 1 and "threshold = 0" in err.stderr
