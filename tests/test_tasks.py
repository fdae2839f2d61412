"""The task runner (local worker processes), the backend checks, and tune-throttle's grid split."""

from __future__ import annotations

import importlib.util
import operator
import os
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from cli_helper import cli
from dccsim.bench import tasks
from dccsim.bench.alerts import split_grid
from dccsim.bench.tasks import TaskBackendError, TaskRunner, check_backend, run_tasks
from dccsim.core.errors import ConfigError
from dccsim.loadgen.alert_trace import make_alert_trace
from dccsim.throttle import ThrottlePolicy, TuningGrid


def pid_and(arg: int) -> tuple[int, int]:
    return arg * arg, os.getpid()


class NeedsKeyword(ValueError):
    """An error a pickle cannot rebuild (a required keyword argument), as some library errors are."""

    def __init__(self, message: str, *, row: int) -> None:
        super().__init__(message)
        self.row = row


def fails_on_three(arg: int) -> int:
    if arg == 3:
        raise NeedsKeyword(f"bad row {arg}", row=arg)
    return arg


def dies_on_one(arg: int) -> int:
    if arg == 1:
        os._exit(7)
    return arg


def test_results_come_back_in_the_order_given_from_other_processes() -> None:
    seen: list[tuple[int, int]] = []
    got = run_tasks(pid_and, list(range(12)), workers=3, progress=lambda d, t: seen.append((d, t)))
    assert [r for r, _ in got] == [i * i for i in range(12)]
    assert os.getpid() not in {pid for _, pid in got}  # the workers ran them
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_one_worker_or_one_task_runs_here() -> None:
    assert {pid for _, pid in run_tasks(pid_and, [1, 2, 3], workers=1)} == {os.getpid()}
    assert run_tasks(pid_and, [5], workers=4) == [(25, os.getpid())]
    assert run_tasks(pid_and, [], workers=4) == []


def test_a_shared_value_reaches_every_task() -> None:
    shared = np.arange(100, 110)
    assert run_tasks(operator.getitem, [9, 0, 4], workers=2, shared=shared) == [109, 100, 104]
    assert run_tasks(operator.getitem, [9, 0], workers=1, shared=shared) == [109, 100]


def test_a_task_error_is_raised_here_even_one_a_pickle_cannot_rebuild() -> None:
    with TaskRunner(workers=2) as runner:
        with pytest.raises(ValueError, match="bad row 3"):
            runner.map(fails_on_three, [1, 2, 3, 4])
        assert runner.map(fails_on_three, [5, 6]) == [5, 6]  # the pool survived
    with pytest.raises(NeedsKeyword):  # in this process, the error itself
        run_tasks(fails_on_three, [3], workers=1)


def test_a_worker_that_dies_is_a_backend_error() -> None:
    with pytest.raises(TaskBackendError, match="local: a worker process died"):
        run_tasks(dies_on_one, [0, 1, 2, 3], workers=2)


def test_backends_are_checked_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="backend: got 'spark'"):
        check_backend("spark")
    with pytest.raises(ConfigError, match="address: .*backend 'ray'"):
        check_backend("local", "head:6379")
    with pytest.raises(ConfigError, match="workers: got 0"):
        TaskRunner(workers=0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if importlib.util.find_spec("ray") is not None:
        with pytest.raises(ConfigError, match=f"address: got '127.0.0.1:{port}', expected a Ray head node"):
            check_backend("ray", f"127.0.0.1:{port}")
    real = importlib.util.find_spec
    monkeypatch.setattr(tasks.importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'dccsim\[ray\]'"):
        check_backend("ray")


@pytest.mark.parametrize(
    "command",
    [
        ("sweep", "smoke", "--uplift", "1,2"),
        ("run", "smoke", "--replicates", "2"),
        ("tune-throttle", "{trace}", "--grid", "{grid}"),
    ],
)
def test_backend_ray_without_ray_is_one_line_and_exit_2(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trace, grid = tmp_path / "t.arrow", tmp_path / "g.toml"
    trace.write_bytes(b"")
    grid.write_text("[grid]\nthreshold = [1]\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(tasks.importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    args = [a.format(trace=trace, grid=grid) for a in command]
    code, _, err = cli(*args, "--backend", "ray", "--out", str(tmp_path / "o"), capsys=capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "dccsim: error: --backend: got 'ray', expected Ray installed: pip install 'dccsim[ray]'"
    ]
    assert not (tmp_path / "o").exists()


def test_an_address_needs_backend_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli("sweep", "smoke", "--uplift", "1", "--address", "head:6379", "--out", str(tmp_path / "o"),
                       capsys=capsys)  # fmt: skip
    assert code == 2 and "--address: got 'head:6379', expected it with --backend ray" in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ tune-throttle

GRID = TuningGrid(base=ThrottlePolicy(), threshold=(2, 5, 10), window_s=(60.0, 600.0), designated_period_s=(0.0, 60.0))


@pytest.mark.parametrize("parts", [1, 2, 3, 4, 6, 7, 12, 13, 50])
def test_the_grid_splits_into_parts_whose_settings_are_the_grid_in_order(parts: int) -> None:
    subs = split_grid(GRID, parts)
    assert len(subs) >= min(parts, len(GRID))
    assert [p for g in subs for p in g.settings()] == GRID.settings()


def test_tune_throttle_writes_the_same_tuning_arrow_whatever_the_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drawn = make_alert_trace(20_000, 500, 4, seed=5)
    trace = tmp_path / "trace.arrow"
    table = drawn.to_table({"dccsim.seed": "5"})
    with ipc.new_file(str(trace), table.schema) as w:
        w.write_table(table)
    grid = tmp_path / "grid.toml"
    grid.write_text('exclude = ["8F75"]\n[grid]\nthreshold = [2, 5, 10]\nwindow_s = [600, 3600]\n'
                    "designated_period_s = [0, 900]\n")  # fmt: skip
    logs = []
    for workers in ("1", "2", "5"):
        out = tmp_path / f"w{workers}"
        code, _, err = cli("tune-throttle", str(trace), "--grid", str(grid), "--out", str(out), "--workers", workers,
                           capsys=capsys)  # fmt: skip
        assert code == 0, err
        logs.append((out / "tuning.arrow").read_bytes())
    assert logs[1] == logs[0] and logs[2] == logs[0]
    got = ipc.open_stream(pa.BufferReader(logs[0])).read_all()
    assert got.num_rows == 12 and got.column("threshold").to_pylist() == [2] * 4 + [5] * 4 + [10] * 4
    assert len(set(got.column("discarded").to_pylist())) > 1  # the settings differ, so order is checked
