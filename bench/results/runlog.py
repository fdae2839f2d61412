"""The run folder's sink: writes a run's Arrow logs and tallies the figures of its summary.

:class:`RunSink` is the :class:`~dccsim.core.records.LogSink` that ``dccsim run``, ``dccsim
serve`` and ``dccsim load`` hand their producers. It writes ``requests.arrow`` and
``alerts.arrow`` as rows arrive (a killed run leaves readable prefixes) and keeps only a
:class:`~dccsim.bench.results.summary.RunTally` of fixed-size, mergeable accumulators, from
which :meth:`RunSink.parts` gives what the run's :class:`~dccsim.bench.results.summary.RunSummary`
is derived from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dccsim.core.catalogue import catalogue
from dccsim.core.records import AlertRows, RequestRows

from .logs import ALERTS_SCHEMA, REQUESTS_SCHEMA, ArrowLogWriter, run_metadata
from .summary import INTERVAL_NS, SERIES_HOURS, RunParts, RunTally

__all__ = ["RunSink", "INTERVAL_NS", "SERIES_HOURS"]


class RunSink:
    """Writes the logs of one run and tallies the figures its summary and report need."""

    def __init__(
        self,
        out_dir: Path,
        scenario_text: str,
        seed: int,
        day_start_ns: int,
        compression: str | None = "lz4",
        extra_metadata: dict[str, str] | None = None,
        days: int = 1,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        meta = run_metadata(scenario_text, seed, **(extra_metadata or {}))
        self.srvs = catalogue().srvs
        self.req_log = ArrowLogWriter(self.out_dir / "requests.arrow", REQUESTS_SCHEMA, meta, compression=compression)  # type: ignore[arg-type]
        self.alert_log = ArrowLogWriter(self.out_dir / "alerts.arrow", ALERTS_SCHEMA, meta, compression=compression)  # type: ignore[arg-type]
        # compression runs on worker threads, beside the simulation (2 cores: it pays)
        self.req_log.start_background()
        self.alert_log.start_background()
        self.day0 = day_start_ns
        self.tally = RunTally(day_start_ns, len(self.srvs), days=days)
        #: ``progress_callback(simulated_ns_done, simulated_ns_total, events_so_far)``
        self.progress_callback: Callable[[int, int, int], None] | None = None

    # ------------------------------------------------------------------ sink protocol
    def requests(self, rows: RequestRows) -> None:
        self.req_log.write_rows(rows)
        self.tally.record_requests(rows)

    def alerts(self, rows: AlertRows) -> None:
        self.alert_log.write_rows(rows)
        self.tally.record_alerts(rows)

    def progress(self, done_ns: int, end_ns: int) -> None:
        if self.progress_callback is not None:
            self.progress_callback(done_ns - self.day0, end_ns - self.day0, self.events)

    @property
    def events(self) -> int:
        """Requests and alerts taken so far."""
        return self.tally.requests + self.tally.alerts

    def close(self) -> None:
        self.req_log.close()
        self.alert_log.close()

    # ------------------------------------------------------------------ summary
    def parts(self) -> RunParts:
        """The tally and the logs' sizes, to derive the summary from (the caller adds the cache
        and throttle statistics)."""
        return RunParts(
            tally=self.tally,
            srvs=self.srvs,
            log_bytes=(os.path.getsize(self.req_log.path), os.path.getsize(self.alert_log.path)),
        )
