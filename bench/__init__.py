"""The composition root, the results and the command line of dccsim.

The composition root, :mod:`dccsim.bench.compose`, turns a scenario into a run (``simulate``,
the library entry point, is re-exported here); :mod:`dccsim.bench.testing` is the test
harness. The rest is in three rooms, by kind:

- :mod:`dccsim.bench.cli`: the ``dccsim`` command line (flag parsing and printing);
- :mod:`dccsim.bench.results`: Arrow logs, histograms, the run summary, report, criteria,
  comparison;
- :mod:`dccsim.bench.perf`: benchmark scripts and the pytest-benchmark suite.

This package may import every other dccsim package. Names are re-exported lazily (PEP 562)
so that ``dccsim --help`` does not pay for pyarrow and numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "REQUESTS_SCHEMA": ".results.logs",
    "ALERTS_SCHEMA": ".results.logs",
    "ArrowLogWriter": ".results.logs",
    "read_log": ".results.logs",
    "raw_table": ".results.logs",
    "open_log": ".results.logs",
    "read_status": ".results.logs",
    "log_metadata": ".results.logs",
    "run_metadata": ".results.logs",
    "LogError": ".results.logs",
    "LogTruncatedError": ".results.logs",
    "OUTCOMES": "dccsim.core.records",
    "ALERT_ACTIONS": "dccsim.core.records",
    "LatencyHistogram": ".results.histogram",
    "IntervalHistograms": ".results.histogram",
    "RELATIVE_ERROR": ".results.histogram",
    "RunSink": ".results.runlog",
    "RunSummary": ".results.summary",
    "simulate": ".compose",
    "load_run": ".compose",
    "RunConfig": ".compose",
    "RunResult": ".compose",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dccsim.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
