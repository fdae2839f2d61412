"""Histograms saved in the run folder: any percentile, per class and per SRV, judged after the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from dccsim.bench.compose import simulate
from dccsim.bench.results.criteria import CriteriaError, evaluate, histograms_from_file, parse_criteria
from dccsim.bench.results.histogram import RELATIVE_ERROR
from dccsim.bench.results.logs import raw_table


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("hist") / "run"
    return out, simulate("smoke", out=out).summary


def _log(out: Path) -> pa.Table:
    with pa.ipc.open_stream(out / "requests.arrow") as reader:
        return raw_table(reader.read_all())


def _nearest_rank(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q, method="inverted_cdf"))


def test_any_percentile_is_judged_from_the_saved_histograms(run: tuple[Path, object]) -> None:
    out, _ = run
    lat = _log(out).column("latency_ns").to_numpy()
    srv = np.asarray(_log(out).column("srv").to_pylist())
    hist = histograms_from_file(out / "histograms.json")
    assert hist is not None
    criteria = parse_criteria({"latency_s.p97.5 < 1e9": 1, "latency_by_srv.4.8.1.p90_s < 1e9": 1})
    result = evaluate(json.loads((out / "summary.json").read_text()), criteria, hist)
    whole, by_srv = (v.actual for v in result.verdicts)
    assert whole == pytest.approx(_nearest_rank(lat, 97.5) / 1e9, rel=RELATIVE_ERROR)
    mine = lat[srv == "4.8.1"]  # the log holds SRVs by name
    assert len(mine)
    assert by_srv == pytest.approx(_nearest_rank(mine, 90) / 1e9, rel=RELATIVE_ERROR)
    # without the histograms, a percentile summary.json does not hold cannot be judged
    with pytest.raises(CriteriaError, match="computed from the run's histograms"):
        evaluate(json.loads((out / "summary.json").read_text()), criteria)


def test_summary_has_p95_and_latency_by_srv_from_the_log(run: tuple[Path, object]) -> None:
    out, summary = run
    table = _log(out)
    lat, srv = table.column("latency_ns").to_numpy(), np.asarray(table.column("srv").to_pylist())
    doc = json.loads((out / "summary.json").read_text())
    assert doc["latency_s"]["p95"] == pytest.approx(_nearest_rank(lat, 95) / 1e9, rel=RELATIVE_ERROR)
    for name, row in doc["latency_by_srv"].items():
        mine = lat[srv == name]
        assert row["requests"] == len(mine)
        assert row["p99_s"] == pytest.approx(_nearest_rank(mine, 99) / 1e9, rel=RELATIVE_ERROR)
        assert row["max_s"] == mine.max() / 1e9
    assert sum(r["requests"] for r in doc["latency_by_srv"].values()) == len(lat)


def test_percentile_paths_are_checked_before_the_run() -> None:
    parse_criteria({"latency_s.p99.95 < 1": 1, "latency_by_class.mhhs_read.p75_s < 1": 1})
    with pytest.raises(CriteriaError, match="no request class 'mhhs'"):
        parse_criteria({"latency_by_class.mhhs.p75_s < 1": 1})
    with pytest.raises(CriteriaError, match="no SRV '99.9' in the catalogue"):
        parse_criteria({"latency_by_srv.99.9.p75_s < 1": 1})
    with pytest.raises(CriteriaError, match="unknown path"):
        parse_criteria({"latency_s.p101 < 1": 1})  # not a percentile
