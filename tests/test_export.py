"""Logs for notebooks: Parquet export (lazy scans, any number of DuckDB queries), one metadata prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helper import cli
from dccsim.bench.compose import simulate
from dccsim.bench.results.logs import log_metadata


def test_export_parquet_serves_duckdb_and_polars_any_number_of_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import duckdb
    import polars as pl
    import pyarrow.parquet as pq

    out = tmp_path / "run"
    summary = simulate("smoke", out=out).summary
    code, stdout, _ = cli("export", str(out), "--parquet", capsys=capsys)
    assert code == 0 and f"requests.parquet: {summary.requests:,} rows" in stdout
    req = out / "requests.parquet"
    # the README's route: as many queries as you like (a stream reader answered one, then raised)
    for _ in range(3):
        assert duckdb.sql(f"select count(*) from '{req}'").fetchall() == [(summary.requests,)]
    by_srv = dict(duckdb.sql(f"select srv, count(*) from '{req}' group by srv").fetchall())
    assert by_srv == {k: v.requests for k, v in summary.latency_by_srv.items()}
    assert pl.scan_parquet(out / "alerts.parquet").select(pl.len()).collect().item() == summary.alerts
    # the audit trail too (future-dated responses, CR1233)
    assert summary.future_dated is not None and f"audit.parquet: {summary.future_dated.responses:,} rows" in stdout
    assert pl.scan_parquet(out / "audit.parquet").select(pl.len()).collect().item() == summary.future_dated.responses
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(req).metadata.items()}
    assert meta["dccsim.seed"] == "1" and meta["dccsim.scale"] == "0.0005"


def test_log_metadata_has_one_dccsim_prefix(tmp_path: Path) -> None:
    out = tmp_path / "run"
    simulate("smoke", out=out)
    meta = log_metadata(out / "requests.arrow")
    assert meta["dccsim.scale"] == "0.0005" and meta["dccsim.name"] == "smoke"
    assert not [k for k in meta if k.startswith("dccsim.dccsim.")]


def test_export_of_a_folder_without_logs_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = cli("export", str(tmp_path / "empty"), "--parquet", capsys=capsys)
    assert code == 2 and "no requests.arrow" in err and len(err.strip().splitlines()) == 1


def test_the_readme_s_notebook_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every Python block of the README that reads a run's logs, run as it stands (against a
    smoke day in the folder the README names)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "runs/mhhs-day-s0.05-seed1" in b]
    assert len(blocks) >= 2, "the README's log-reading examples moved"
    run = tmp_path / "runs" / "mhhs-day-s0.05-seed1"
    simulate("smoke", out=run)
    assert cli("export", str(run), "--parquet", capsys=capsys)[0] == 0
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own examples
