"""A small harness for testing dccsim's stages and whole runs in a few lines.

It assembles the system the way the command line does (through :mod:`dccsim.bench.compose`),
so no test re-assembles it or monkeypatches the assembly:

- :func:`scenario` builds a :class:`~dccsim.bench.compose.RunConfig` from a built-in scenario
  and dotted-key settings (``scenario("smoke", scale=0.0002, **{"throttle.threshold": 3})``);
- :class:`ListSink` keeps every request and alert row a producer hands it, in memory;
- :func:`drive` runs a scenario's day through the virtual-time driver into a :class:`ListSink`
  (no files) and returns the sink and the driver, whose pipeline holds the stage state;
- :func:`started_server` starts a wall-clock server on an ephemeral loopback port;
- :class:`ManualClock` is an int64-nanosecond clock a test moves by hand;
- :class:`LazyPool` stands in for a thread pool and runs each job as late as it can.

>>> from dccsim.bench.testing import drive, scenario
>>> sink, driver = drive(scenario("smoke", scale=0.0002))               # doctest: +SKIP
>>> len(sink.request_rows()) == driver.totals.requests                  # doctest: +SKIP
True
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dccsim.core.records import AlertRows, AuditRows, RequestRows
from dccsim.loadgen.driver import VirtualTimeDriver
from dccsim.loadgen.scenario import builtin_scenarios

from .compose import RunConfig, build_driver, build_server, load_run
from .settings import toml_text

__all__ = ["LazyPool", "ListSink", "ManualClock", "drive", "scenario", "started_server", "toml_text"]


# ---------------------------------------------------------------------------- scenarios


def scenario(base: str = "smoke", /, **settings: Any) -> RunConfig:
    """A run of built-in scenario ``base`` with ``settings`` by dotted key.

    A key names a place in the scenario's TOML (``"capacity.uplift"``, ``"throttle.threshold"``,
    ``"mhhs.max_retries"``); a value replaces what is there. ``exit_criteria`` is kept unless
    set. The settings are applied as ``dccsim run --set`` applies them
    (:func:`~dccsim.loadgen.scenario.apply_settings`, in :func:`~dccsim.bench.compose.load_run`).
    Raises :class:`~dccsim.core.errors.ConfigError` for a bad setting, as a file would.
    """
    if base not in builtin_scenarios():
        raise ValueError(f"scenario: got {base!r}, expected a built-in scenario ({', '.join(builtin_scenarios())})")
    return load_run(base, settings=settings)


# ---------------------------------------------------------------------------- sinks and runs


@dataclass
class ListSink:
    """A sink (:class:`~dccsim.core.records.LogSink`) that keeps every row it is handed."""

    requests_seen: list[RequestRows] = field(default_factory=list)
    alerts_seen: list[AlertRows] = field(default_factory=list)
    audit_seen: list[AuditRows] = field(default_factory=list)
    progressed: list[tuple[int, int]] = field(default_factory=list)

    def requests(self, rows: RequestRows) -> None:
        self.requests_seen.append(rows)

    def alerts(self, rows: AlertRows) -> None:
        self.alerts_seen.append(rows)

    def audit(self, rows: AuditRows) -> None:
        self.audit_seen.append(rows)

    def progress(self, done_ns: int, end_ns: int) -> None:
        self.progressed.append((done_ns, end_ns))

    def audit_rows(self) -> AuditRows:
        """Every audit row (future-dated response) so far, in the order they came."""
        return AuditRows.concat(self.audit_seen) if self.audit_seen else _empty(AuditRows)

    def request_rows(self) -> RequestRows:
        """Every request row so far, as one set of rows in the order they came."""
        return RequestRows.concat(self.requests_seen) if self.requests_seen else _empty(RequestRows)

    def alert_rows(self) -> AlertRows:
        """Every alert row so far, as one set of rows in the order they came."""
        return AlertRows.concat(self.alerts_seen) if self.alerts_seen else _empty(AlertRows)


def _empty(rows: type[Any]) -> Any:
    return rows(**{c.name: np.empty(0, c.dtype) for c in rows.COLUMNS})


def drive(run: RunConfig, sink: Any = None) -> tuple[Any, VirtualTimeDriver]:
    """Run ``run``'s day through the virtual-time driver into ``sink`` (a new :class:`ListSink`
    by default); returns the sink and the driver (``driver.pipeline`` holds the stage state)."""
    sink = ListSink() if sink is None else sink
    driver = build_driver(run)
    driver.run(sink)
    return sink, driver


# ---------------------------------------------------------------------------- wall clock


@dataclass
class ManualClock:
    """An int64-nanosecond clock that moves only when told (``clock.advance(ns)``)."""

    now_ns: int = 1_000_000_000

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, ns: int) -> None:
        self.now_ns += int(ns)


@asynccontextmanager
async def started_server(
    run: RunConfig, *, clock: Any = None, sink: Any = None, **config: Any
) -> AsyncIterator[tuple[Any, int]]:
    """A wall-clock server for ``run`` listening on an ephemeral port of 127.0.0.1.

    ``config`` holds :class:`~dccsim.core.server.ServerConfig` settings (``speed`` defaults
    to 1000); ``clock`` defaults to ``time.monotonic_ns``. Yields ``(server, port)`` and
    closes the server on the way out.
    """
    import time

    from dccsim.core.server import ServerConfig

    cfg = ServerConfig(origin_ns=run.scenario.day_start_ns, **({"speed": 1000.0} | config))
    server = build_server(run, clock or time.monotonic_ns, cfg, sink=sink)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close()


class _LazyFuture:
    """Runs its job only when its result is asked for: the latest a pool may run it."""

    def __init__(self, fn, args, kwargs):  # type: ignore[no-untyped-def]
        self._job, self._done, self._value = (fn, args, kwargs), False, None

    def result(self):  # type: ignore[no-untyped-def]
        if not self._done:
            fn, args, kwargs = self._job
            self._value, self._done = fn(*args, **kwargs), True
        return self._value


class LazyPool:
    """A stand-in for ``ThreadPoolExecutor`` that runs each job as late as possible: when its
    result is asked for, or when the pool closes (so a test shows a run does not depend on
    when its threads run)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.jobs: list[_LazyFuture] = []

    def submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.jobs.append(_LazyFuture(fn, args, kwargs))
        return self.jobs[-1]

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        for job in self.jobs:
            job.result()
