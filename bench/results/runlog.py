"""The run folder's sink: writes a run's Arrow logs and tallies the figures of its summary.

:class:`RunSink` is the :class:`~dccsim.core.records.LogSink` that ``dccsim run``, ``dccsim
serve`` and ``dccsim load`` hand their producers. It writes ``requests.arrow`` and
``alerts.arrow`` as rows arrive (a killed run leaves readable prefixes), and for a run or a
server (``audit=True``) ``audit.arrow``, the service audit trail of future-dated responses
(CR1233, :class:`~dccsim.core.records.AuditRows`, schema :data:`AUDIT_SCHEMA`), and keeps only a
:class:`~dccsim.bench.results.summary.RunTally` of fixed-size, mergeable accumulators, from
which :meth:`RunSink.parts` gives what the run's :class:`~dccsim.bench.results.summary.RunSummary`
is derived from.

A run folder holds one run: opening the sink removes an earlier run's ``summary.json`` and
``report.html`` there, so an aborted run never sits beside another run's results. A run that
stops part-way (a log that cannot be written, Ctrl-C, an error) closes every log, each ended
with its end-of-stream marker after its last complete batch (a valid Arrow stream of its
first rows: :mod:`dccsim.bench.results.logs`), writes no ``summary.json`` or
``report.html``, and raises :class:`RunAborted` (or, for Ctrl-C, :class:`RunInterrupted`)
saying why and where the rows are (:meth:`RunSink.abort`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dccsim.core.catalogue import catalogue
from dccsim.core.errors import ConfigError, DccsimError
from dccsim.core.records import AUDIT_COLUMNS, FUTURE_DATED_CODES, AlertRows, AuditRows, RequestRows

from .logs import (
    ALERTS_SCHEMA,
    REQUESTS_SCHEMA,
    ArrowLogWriter,
    LogError,
    LogWriteError,
    arrow_schema,
    kept_text,
    run_metadata,
)
from .summary import INTERVAL_NS, SERIES_HOURS, RunParts, RunTally

__all__ = ["AUDIT_SCHEMA", "RESULT_FILES", "RunAborted", "RunInterrupted", "RunSink", "INTERVAL_NS", "SERIES_HOURS"]

#: one row per future-dated response (CR1233's audit trail): :data:`~dccsim.core.records.AUDIT_COLUMNS`
AUDIT_SCHEMA = arrow_schema(AUDIT_COLUMNS)

#: what a finished run adds to its folder beside the logs
RESULT_FILES = ("summary.json", "report.html", "histograms.json")


class RunAborted(DccsimError):
    """A run that stopped part-way (the cause is chained); its logs are closed.

    ``reason`` says why (``cannot write runs/x/requests.arrow: No space left on device``),
    ``kept`` where the rows written before are; the text reads ``run aborted: REASON; KEPT``.
    """

    def __init__(self, reason: str, kept: str) -> None:
        super().__init__(reason, kept)
        self.reason, self.kept = reason, kept

    def __str__(self) -> str:
        return f"run aborted: {self.reason}; {self.kept}"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run (a ``KeyboardInterrupt``, caught as one): its logs are closed and
    ``kept`` says where their rows are."""

    def __init__(self, kept: str) -> None:
        super().__init__(kept)
        self.kept = kept

    def __str__(self) -> str:
        return f"interrupted; {self.kept}"


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
        alert_codes: Sequence[int] | None = None,
        audit: bool = False,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:  # an earlier run's; this run's logs replace its logs too
            (self.out_dir / name).unlink(missing_ok=True)
        meta = run_metadata(scenario_text, seed, **(extra_metadata or {}))
        self.srvs = catalogue().srvs
        self.req_log = ArrowLogWriter(self.out_dir / "requests.arrow", REQUESTS_SCHEMA, meta, compression=compression)  # type: ignore[arg-type]
        try:
            self.alert_log = ArrowLogWriter(
                self.out_dir / "alerts.arrow", ALERTS_SCHEMA, meta, compression=compression,  # type: ignore[arg-type]
                alert_codes=alert_codes,
            )  # fmt: skip
        except BaseException:
            self.req_log.close()
            raise
        #: ``audit.arrow`` (``dccsim run`` and ``serve``: the future-dated responses they draw), or None
        self.audit_log: ArrowLogWriter | None = None
        if audit:
            try:
                path = self.out_dir / "audit.arrow"
                self.audit_log = ArrowLogWriter(
                    path, AUDIT_SCHEMA, meta, compression=compression, alert_codes=FUTURE_DATED_CODES  # type: ignore[arg-type]
                )
            except BaseException:
                self.req_log.close()
                self.alert_log.close()
                raise
        else:  # an earlier run's trail would sit beside this run's logs
            (self.out_dir / "audit.arrow").unlink(missing_ok=True)
        # compression runs on worker threads, beside the simulation (2 cores: it pays)
        self.req_log.start_background()
        self.alert_log.start_background()
        self.day0 = day_start_ns
        self.tally = RunTally(day_start_ns, len(self.srvs), days=days)
        self.tally.fd_audited = audit
        #: ``progress_callback(simulated_ns_done, simulated_ns_total, events_so_far)``
        self.progress_callback: Callable[[int, int, int], None] | None = None

    # ------------------------------------------------------------------ sink protocol
    def requests(self, rows: RequestRows) -> None:
        self.req_log.write_rows(rows)
        self.tally.record_requests(rows)

    def alerts(self, rows: AlertRows) -> None:
        self.alert_log.write_rows(rows)
        self.tally.record_alerts(rows)

    def audit(self, rows: AuditRows) -> None:
        if self.audit_log is None:
            raise LogError(f"{self.out_dir}: audit rows handed to a sink opened without audit=True")
        self.audit_log.write_columns(**rows.columns())
        self.tally.record_audit(rows)

    def progress(self, done_ns: int, end_ns: int) -> None:
        if self.progress_callback is not None:
            self.progress_callback(done_ns - self.day0, end_ns - self.day0, self.events)

    @property
    def events(self) -> int:
        """Requests and alerts taken so far."""
        return self.tally.requests + self.tally.alerts

    @property
    def logs(self) -> tuple[ArrowLogWriter, ...]:
        """The run's logs: requests, alerts, and the audit trail when there is one."""
        return (self.req_log, self.alert_log) + ((self.audit_log,) if self.audit_log is not None else ())

    def close(self) -> None:
        """Close every log, each ended with its end-of-stream marker even when another
        failed; raises the first log's :class:`~dccsim.bench.results.logs.LogWriteError` if a
        write failed (the logs then end at their last complete batch)."""
        _close_all(self.logs)
        if self.failure is not None:
            raise self.failure

    @property
    def writer_cpu_ns(self) -> int:
        """CPU time the logs' worker threads spent writing (Arrow compresses in its own pool,
        not counted here); complete once the logs are closed."""
        return sum(log.background_cpu_ns for log in self.logs)

    @property
    def failure(self) -> LogWriteError | None:
        """The first log write that failed (requests, then alerts, then audit), or None."""
        for log in self.logs:
            if log.failure is not None:
                return log.failure
        return None

    def kept(self) -> str:
        """Where the rows written so far are, as a clause of a message (``the first N rows
        are in runs/x/requests.arrow and the first M in runs/x/alerts.arrow (valid Arrow
        streams)``); call it once the logs are closed."""
        logs = []
        for log in self.logs:
            f = log.failure
            logs.append((log.path, log.rows_written, f is None or f.ended, f.end_error if f else None))
        return kept_text(logs)

    @contextmanager
    def closing(self) -> Iterator[RunSink]:
        """The logs written inside the block, then closed; a block (or close) that fails closes
        them through :meth:`abort`, and what it returns is raised (``from`` the failure)."""
        try:
            yield self
            self.close()
        except BaseException as exc:
            stop = self.abort(exc)
            if stop is exc:
                raise
            raise stop from exc

    def abort(self, exc: BaseException) -> BaseException:
        """The run stopped on ``exc``: close the logs and return what to raise instead (``from
        exc``): :class:`RunInterrupted` for Ctrl-C; :class:`RunAborted` naming the failed log
        if one failed, else ``exc``; and ``exc`` itself when it is no ``Exception``
        (``SystemExit``) or is bad input found late (a ``ConfigError``)."""
        try:
            self.close()
        except LogWriteError:
            pass
        if isinstance(exc, KeyboardInterrupt):
            return exc if isinstance(exc, RunInterrupted) else RunInterrupted(self.kept())
        if not isinstance(exc, Exception) or isinstance(exc, ConfigError | RunAborted):
            return exc
        failure = self.failure
        reason = failure.reason if failure is not None else f"{type(exc).__name__}: {exc}"
        return RunAborted(reason, self.kept())

    # ------------------------------------------------------------------ summary
    def parts(self) -> RunParts:
        """The tally and the logs' sizes, to derive the summary from (the caller adds the cache
        and throttle statistics)."""
        return RunParts(
            tally=self.tally,
            srvs=self.srvs,
            log_bytes=(os.path.getsize(self.req_log.path), os.path.getsize(self.alert_log.path)),
        )


def _close_all(logs: tuple[ArrowLogWriter, ...]) -> None:
    """Close each log, the later ones even when an earlier close raised (a write failure is
    kept in the log's ``failure``; anything else propagates once all are closed)."""
    if not logs:
        return
    try:
        logs[0].close()
    except LogWriteError:
        pass
    finally:
        _close_all(logs[1:])
