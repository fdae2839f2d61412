"""Results and the command line: Arrow logs, histograms, summaries, reports, the ``dccsim`` CLI.

This is the composition root: it may import every other dccsim package. Names are
re-exported lazily (PEP 562) so that ``dccsim --help`` does not pay for pyarrow and numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "REQUESTS_SCHEMA": ".logs", "ALERTS_SCHEMA": ".logs", "ArrowLogWriter": ".logs", "read_log": ".logs",
    "open_log": ".logs", "read_status": ".logs", "log_metadata": ".logs", "run_metadata": ".logs",
    "LogError": ".logs", "LogTruncatedError": ".logs", "OUTCOMES": ".logs", "ALERT_ACTIONS": ".logs",
    "LatencyHistogram": ".histogram", "IntervalHistograms": ".histogram", "RELATIVE_ERROR": ".histogram",
    "RunSink": ".runlog", "simulate": ".cmd_run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dccsim.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
