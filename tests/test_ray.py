"""The Ray backend: one local Ray instance (2 CPUs) for the module; sweeps, replicates and
tuning give on Ray what they give on local worker processes.

``make test`` installs the ``ray`` extra, so these run in CI; without Ray they are skipped.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
import pytest
from dccsim.bench import compose
from dccsim.bench.alerts import read_trace, tune
from dccsim.bench.replicates import replicates
from dccsim.bench.tasks import run_tasks
from dccsim.loadgen.alert_trace import make_alert_trace
from dccsim.throttle import load_grid

ray = pytest.importorskip("ray")

TIMINGS = ("wall_seconds", "events_per_second", "peak_rss_bytes", "compile_seconds", "cpu_seconds", "stages")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _doc(summary: object) -> dict:  # type: ignore[type-arg]
    d = summary.to_builtins()  # type: ignore[attr-defined]
    return {k: v for k, v in d.items() if k not in TIMINGS}


def test_ray_tasks_come_back_in_order_with_the_shared_value_and_their_errors() -> None:
    assert run_tasks(abs, [-3, 2, -1], backend="ray") == [3, 2, 1]
    shared = np.arange(10, 20)
    assert run_tasks(operator.getitem, [9, 0, 5], backend="ray", workers=2, shared=shared) == [19, 10, 15]
    seen: list[tuple[int, int]] = []
    with pytest.raises(ValueError, match="invalid literal"):  # the task's own error, unwrapped
        run_tasks(int, ["1", "x", "3"], backend="ray", progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 3)
    assert ray.is_initialized()  # a Ray this process started is left running


def test_a_sweep_on_ray_gives_the_summaries_of_local_processes(tmp_path: Path) -> None:
    args = ("smoke", [(1.0, None), (2.0, None)])
    local = compose.sweep(*args, tmp_path / "local", scale=0.0002, workers=2)
    on_ray = compose.sweep(*args, tmp_path / "ray", scale=0.0002, workers=2, backend="ray")
    assert [_doc(s) for s in on_ray.summaries] == [_doc(s) for s in local.summaries]
    assert len({json.dumps(_doc(s), sort_keys=True) for s in local.summaries}) == 2
    for row in on_ray.rows:
        assert (tmp_path / "ray" / row["label"] / "summary.json").is_file()


def test_replicates_on_ray_give_the_summaries_of_local_processes(tmp_path: Path) -> None:
    local = replicates("smoke", 2, tmp_path / "local", scale=0.0002, workers=2)
    on_ray = replicates("smoke", 2, tmp_path / "ray", scale=0.0002, workers=2, backend="ray")
    assert [_doc(s) for s in on_ray.summaries] == [_doc(s) for s in local.summaries]
    assert on_ray.stats == local.stats and on_ray.seeds == [1, 2]
    for s in on_ray.seeds:
        assert (tmp_path / "ray" / f"seed{s}" / "report.html").is_file()


def test_tuning_on_ray_writes_the_same_tuning_arrow(tmp_path: Path) -> None:
    drawn = make_alert_trace(5000, 200, 3, seed=3)
    table = drawn.to_table({"dccsim.seed": "3"})
    with ipc.new_file(str(tmp_path / "trace.arrow"), table.schema) as w:
        w.write_table(table)
    (tmp_path / "grid.toml").write_text("[grid]\nthreshold = [2, 5, 20]\nwindow_s = [600, 3600]\n")
    grid, trace = load_grid(tmp_path / "grid.toml"), read_trace(tmp_path / "trace.arrow")
    logs = []
    for backend in ("local", "ray"):
        run = tune(trace, grid, tmp_path / backend, config_path=tmp_path / "grid.toml", workers=2, backend=backend)
        logs.append(run.log.read_bytes())
    assert logs[0] == logs[1]
