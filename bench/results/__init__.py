"""The results layer: Arrow logs (``logs``), latency histograms (``histogram``), the run
folder's sink (``runlog``), the typed run summary (``summary``), the HTML report (``report``,
drawn with ``charts``), exit criteria (``criteria``) and run comparison (``compare``).

Names are re-exported lazily (PEP 562): importing this package loads neither pyarrow nor numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "REQUESTS_SCHEMA": ".logs", "ALERTS_SCHEMA": ".logs", "ArrowLogWriter": ".logs", "read_log": ".logs",
    "raw_table": ".logs",
    "open_log": ".logs", "read_status": ".logs", "log_metadata": ".logs", "run_metadata": ".logs",
    "LogError": ".logs", "LogTruncatedError": ".logs",
    "LatencyHistogram": ".histogram", "IntervalHistograms": ".histogram", "RELATIVE_ERROR": ".histogram",
    "RunSink": ".runlog",
    "RunSummary": ".summary", "RunTally": ".summary", "SummaryError": ".summary",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
