"""The composition root: a scenario in, wired pieces out, a run folder written.

Everything that turns configuration into objects lives here, once:

- :func:`load_run` loads a scenario (a built-in name, a TOML file, or TOML text),
  applies the overrides, and parses its exit criteria, so that a bad scenario or criterion
  fails before any work (:class:`~dccsim.core.errors.ConfigError`);
- :func:`build_pipeline`, :func:`build_driver` and :func:`build_server` assemble the
  pipeline, the virtual-time driver and the wall-clock server from a :class:`RunConfig`;
- :func:`simulate` runs a scenario's day in virtual time and writes its run folder; this is
  the library entry point (``dccsim.bench.simulate``);
- :func:`open_sink` and :func:`write_run_folder` are the run folder's two ends, shared by
  ``dccsim run``, ``dccsim serve`` and ``dccsim load``;
- :func:`sweep` and :func:`find` run a scenario at several settings, side by side in worker
  processes (:mod:`dccsim.bench.sweeps`).

The ``cmd_*`` modules of :mod:`dccsim.bench.cli` only parse flags, call these, and print.

>>> from dccsim.bench.compose import load_run, simulate
>>> run = load_run("smoke", scale=0.0002)                               # doctest: +SKIP
>>> result = simulate(run, out="runs/smoke-tiny")                       # doctest: +SKIP
>>> result.summary.within_target_ratio, result.passed                  # doctest: +SKIP
(0.99..., True)
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from dccsim.core.capacity import CapacityClass, CapacityConfig
from dccsim.core.comms import CommsConfig, CommsLeg
from dccsim.core.errors import ConfigError
from dccsim.core.eui import eui_to_int
from dccsim.core.pipeline import Pipeline
from dccsim.core.records import REQUEST_CLASSES
from dccsim.core.validation import UserRegistry
from dccsim.loadgen.driver import VirtualTimeDriver
from dccsim.loadgen.population import Population, build_population
from dccsim.loadgen.scenario import Scenario, apply_settings, load_scenario, parse_scenario
from dccsim.loadgen.workload import CLS, NS, DayWorkload

from . import sweeps as _sweeps
from .results.criteria import Criteria, CriteriaError, CriteriaResult, evaluate, parse_criteria
from .results.criteria import to_dict as criteria_dict
from .results.runlog import RunAborted, RunInterrupted, RunSink
from .results.summary import RunInfo, RunSummary, histograms_json, stages_section
from .settings import toml_text
from .sweeps import SweepResult

__all__ = [
    "RunConfig",
    "RunResult",
    "Progress",
    "load_run",
    "capacity_config",
    "build_pipeline",
    "build_driver",
    "build_server",
    "check_out",
    "open_sink",
    "simulate",
    "run_summary",
    "write_run_folder",
    "finish_serve",
    "finish_load",
    "run_loop",
    "ListenError",
    "RunAborted",
    "RunInterrupted",
    "serve",
    "run_load",
    "LoadOutcome",
    "sweep",
    "find",
    "SweepResult",
    "default_out",
]

#: ``progress(simulated_ns_done, simulated_ns_total, events_so_far)``
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class RunConfig:
    """A scenario loaded once: the validated scenario, its TOML text (with the settings
    applied: what the logs record), its exit criteria, and the dotted-key settings given."""

    scenario: Scenario
    text: str
    criteria: Criteria
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.scenario.name


def load_run(
    scenario: str | os.PathLike[str],
    *,
    text: str | None = None,
    scale: float | None = None,
    seed: int | None = None,
    uplift: float | None = None,
    demand: float | None = None,
    shards: int | None = None,
    exit_criteria: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Load a scenario (a built-in name or a TOML file) and apply the overrides.

    With ``text``, the scenario is that TOML text and ``scenario`` only names it (in errors and
    in the logs' metadata). ``settings`` (``dccsim run --set``) set dotted keys of the
    scenario's TOML before it is checked (``{"cache.enabled": False, "mhhs.window_h": [0.5, 6]}``,
    :func:`~dccsim.loadgen.scenario.apply_settings`); the run's ``text`` is then the scenario
    with them, as the logs record it. The keyword overrides (``scale``...) apply after them.
    ``exit_criteria`` replaces the scenario's own ``[exit_criteria]`` table (``{}`` judges
    nothing). Raises :class:`~dccsim.core.errors.ConfigError` naming the key on any problem.
    """
    source = os.fspath(scenario)
    if text is not None:
        s = parse_scenario(text, source)
    else:
        s, text = load_scenario(source)
    settings = dict(settings or {})
    if settings:
        try:
            data = apply_settings(msgspec.toml.decode(text.encode()), settings)
        except ConfigError as exc:
            raise exc.replace(source=source) from None
        try:
            text = f"# {source} with settings {_settings_comment(settings)}\n" + toml_text(data)
        except TypeError as exc:
            raise ConfigError(f"settings: {exc}", source=source) from None
        s = parse_scenario(text, source)
    s = s.with_overrides(
        scale=scale, seed=seed, shards=shards, **{"capacity.uplift": uplift, "capacity.demand": demand}
    )
    criteria = parse_criteria(s.exit_criteria if exit_criteria is None else exit_criteria)
    return RunConfig(scenario=s, text=text, criteria=criteria, settings=settings)


def _settings_comment(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, default=str, separators=(", ", ": ")).replace("\n", " ")


def default_out(run: RunConfig) -> Path:
    """The default run folder of ``dccsim run``: ``runs/NAME-sSCALE-seedSEED``."""
    s = run.scenario
    return Path("runs") / f"{s.name}-s{s.scale:g}-seed{s.seed}"


# ---------------------------------------------------------------------------- assembly


def capacity_config(s: Scenario) -> CapacityConfig:
    """The DSP capacity model's configuration: one class per request class (with its admission
    bound when ``capacity.admission`` is on), the model, and the capacity."""
    c = s.capacity

    def bound(name: str) -> int | None:
        k = c.classes[name]
        return int((k.target_s / 2 if k.max_wait_s is None else k.max_wait_s) * NS) if c.admission else None

    classes = tuple(
        CapacityClass(
            service_ns=int(c.classes[name].service_ms * 1e6),
            timeout_ns=int(c.classes[name].timeout_s * NS),
            name=name,
            max_wait_ns=bound(name),
        )
        for name in REQUEST_CLASSES
    )
    overload = {"model": c.model, "shed_expired": c.shed_expired}
    if c.model == "fluid":
        # fractional: slots x scale x uplift x threshold server-equivalents, not floored
        uplift = float(Decimal(repr(float(s.scale))) * Decimal(repr(float(c.uplift))))
        return CapacityConfig(
            slots=c.slots, classes=classes, uplift=uplift, operating_threshold=c.operating_threshold, **overload
        )
    # the server count is one product, floor(slots x scale x uplift x threshold), at least 1
    return CapacityConfig(slots=s.dsp_servers, classes=classes, uplift=1.0, operating_threshold=1.0, **overload)


def build_pipeline(s: Scenario, pop: Population, shards: int | None = None) -> Pipeline:
    """The pipeline of a scenario over a population (``shards`` overrides the scenario's)."""
    users = UserRegistry.build({eui_to_int(u.eui): u.role for u in s.users})
    targets = np.array([int(s.capacity.classes[name].target_s * NS) for name in REQUEST_CLASSES], np.int64)
    return Pipeline(
        capacity=capacity_config(s),
        targets_ns=targets,
        devices=pop.registry(),
        users=users,
        future_dated_class=CLS["future_dated"],
        refuse_code=s.capacity.refuse_code,
        retention_hours=s.cache.retention_h,
        cache_capacity=s.cache.capacity or None,
        cache_enabled=s.cache.enabled,
        shards=shards or s.shards,
        throttle_policy=s.throttle_policy,
        comms=comms_leg(s, pop),
        cache_rows=pop.smets1 if s.cache.scope == "smets1" else None,
        hit_service_share=s.cache.hit_service_share,
        # a day's cacheable reads stay resident for the retention: size for them up front
        cache_initial_capacity=int(
            len(pop.esme) * (1.6 + s.mhhs.daily_read_share) * max(1.0, s.cache.retention_h / 24)
        ),
    )


def comms_leg(s: Scenario, pop: Population) -> CommsLeg:
    """The comms leg of a scenario: a CSP per region for SMETS2 devices, the S1SP for SMETS1
    ones, capacities scaled with the scenario like the DSP's slots."""
    regions = s.population.regions
    c = s.comms
    config = CommsConfig(
        names=(*(f"csp_{r}" for r in regions), "s1sp"),
        capacity_per_s=(*(c.csp_capacity(r) * s.scale for r in regions), c.s1sp_capacity_per_s * s.scale),
        s1sp=len(regions),
        wakeups_per_read=c.s1sp_wakeups_per_read,
    )
    return CommsLeg(config, np.where(pop.smets1, len(regions), pop.region).astype(np.uint8))


def warm_kernels() -> float:
    """Compile, or load from the on-disk cache, every kernel a virtual-time run uses (the
    pipeline's stages and the log's histograms); the seconds it took. A first run on a
    machine compiles (tens of seconds); later runs load (well under a second)."""
    from dccsim.loadgen import _kernels as loadgen_kernels

    from .results import _kernels as results_kernels

    t0 = time.perf_counter()
    Pipeline.warm_up()
    loadgen_kernels.warm_up()
    results_kernels.warm_up()
    return time.perf_counter() - t0


def build_driver(run: RunConfig) -> VirtualTimeDriver:
    """The virtual-time driver of a run: population, workload and pipeline, built once."""
    s = run.scenario
    pop = build_population(s)
    return VirtualTimeDriver(s, population=pop, workload=DayWorkload(s, pop), pipeline=build_pipeline(s, pop))


def build_server(run: RunConfig, clock: Callable[[], int], config: Any, sink: Any = None) -> Any:
    """A :class:`~dccsim.core.server.DccServer` for a run: population, pipeline, request
    classes and device leg, with its kernels loaded (:meth:`Pipeline.warm_up`)."""
    from dccsim.core.columns import RequestBatch
    from dccsim.core.server import DccServer, FutureDatedModel
    from dccsim.loadgen.wallclock import DeviceLegModel, classifier

    s = run.scenario
    if s.throttle_policy.report_at_close:  # the server forwards alerts as they come: no timer for a window's close
        raise ConfigError(
            key="throttle.report_at_close", value=True, source=run.name,
            expected="false with the server (reports at window close are made by dccsim run, simulate and throttle)",
        )  # fmt: skip
    pop = build_population(s)
    classify, leg = classifier(), DeviceLegModel(s, pop)
    Pipeline.warm_up()
    # and the request classes' and device leg's kernels, on a few rows (the leg's draws come
    # from a generator of its own, so the server's leg is untouched)
    rows = RequestBatch.from_columns(device=pop.ids[:4], srv=np.zeros(4), execution_ns=np.arange(4))
    DeviceLegModel(s, pop, seed=0)(rows, classify(rows))
    f = s.future_dated
    fd = FutureDatedModel(seed=s.seed, instructions=f.instructions, out_of_order_share=f.out_of_order_share,
                          not_done_share=f.not_done_share)  # fmt: skip
    return DccServer(build_pipeline(s, pop), classify, leg, clock, config, sink=sink, future_dated=fd)


# ---------------------------------------------------------------------------- the run folder


def check_out(out: Path) -> None:
    """Make the run folder ``out`` and check that a file can be written in it, before any
    work is done; a :class:`~dccsim.core.errors.ConfigError` naming it otherwise."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".dccsim-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            key="out", value=str(out), expected=f"a folder dccsim can create and write ({exc.strerror or exc})"
        ) from exc


def open_sink(
    run: RunConfig,
    out: Path,
    *,
    mode: str | None = None,
    compression: str | None = "lz4",
    alert_codes: Sequence[int] | None = None,
    audit: bool = False,
    **metadata: str,
) -> RunSink:
    """The run folder's sink (creates ``out``): logs with the run's metadata, and the figures.

    ``alert_codes``: the alert codes the run can log (the alerts log's dictionary holds just
    these); None for any 16-bit code (a server's clients may send any).
    ``audit``: keep ``audit.arrow``, the future-dated responses (virtual-time runs and the
    server draw them).

    A folder that cannot be made or written (read-only, under a file, no space) is a
    :class:`~dccsim.core.errors.ConfigError` naming it, raised before any work is done.
    """
    s = run.scenario
    meta = {"dccsim.name": s.name, **({"dccsim.mode": mode} if mode else {}), **metadata}
    if run.settings:
        meta["settings"] = json.dumps(run.settings, default=str)  # the logs call it dccsim.settings
    try:
        return RunSink(
            out, run.text, s.seed, s.day_start_ns, compression=compression, extra_metadata=meta, days=s.days,
            alert_codes=alert_codes, audit=audit,
        )  # fmt: skip
    except OSError as exc:
        raise ConfigError(
            key="out", value=str(out), expected=f"a folder dccsim can create and write ({exc.strerror or exc})"
        ) from exc


def run_summary(
    run: RunConfig,
    sink: RunSink,
    *,
    cache: Any,
    throttle: Any,
    comms: Any = None,
    throttle_config: Mapping[str, Any] | None = None,
    dsp_servers: int,
    mode: str | None = None,
    chunks: int | None = None,
    **sections: Any,
) -> RunSummary:
    """The typed summary of a run: the sink's tally, the cache and throttle statistics
    (``CacheStats``/``ThrottleStats``, or a server's stats reply), the ``run`` metadata, and
    ``sections`` (timings, wall-clock sections) by field name."""
    s = run.scenario
    parts = sink.parts()
    parts.cache_stats = cache
    parts.throttle_stats = throttle
    parts.comms_stats = comms
    parts.throttle_config = dict(throttle_config or {})
    parts.retention_h = s.cache.retention_h
    info = RunInfo(
        dccsim_version=version("dccsim"), scenario=s.name, scale=s.scale, seed=s.seed, uplift=s.capacity.uplift,
        demand=s.capacity.demand, shards=s.shards, day=s.day, meters=s.meters, dsp_servers=dsp_servers,
        chunks=chunks, mode=mode,
    )  # fmt: skip
    return RunSummary.from_parts(parts, run=info, **sections)


def write_run_folder(
    out: Path, summary: RunSummary, criteria: Criteria, scenario: Scenario | None = None
) -> tuple[RunSummary, CriteriaResult]:
    """Judge the criteria on the summary, then write ``summary.json`` and ``report.html`` into
    ``out``; returns the summary with its verdict, and the verdict. The report is built from
    this summary and ``scenario`` (the run's; without it, the one recorded in ``out``'s log).

    A criterion whose path the summary lacks still leaves both files (the run is kept), then
    raises its :class:`~dccsim.bench.results.criteria.CriteriaError` saying so.

    Each file is written whole or not at all (a full disk leaves no half file): an ``OSError``
    naming the file that could not be written.
    """
    try:
        result = evaluate(summary, criteria)  # a percentile summary.json lacks: from the histograms
    except CriteriaError as exc:
        _write_results(out, summary, scenario)
        raise CriteriaError(f"{exc} (the run is kept in {out}/)") from None
    summary = summary.with_criteria(criteria_dict(result))
    _write_results(out, summary, scenario)
    return summary, result


def _write_results(out: Path, summary: RunSummary, scenario: Scenario | None) -> None:
    """``summary.json`` then ``report.html``, each through a temporary file that a failure
    removes; the ``OSError`` then names the file."""
    from .results.report import build_report

    for name in ("histograms.json", "summary.json", "report.html"):
        path = out / name
        tmp = path.with_name(name + ".tmp")
        try:
            if name == "histograms.json":
                if summary.parts is msgspec.UNSET:
                    continue
                tmp.write_text(histograms_json(summary.parts))
                tmp.replace(path)
            elif name == "summary.json":
                tmp.write_text(summary.to_json())
                tmp.replace(path)
            else:
                build_report(out, summary=summary, scenario=scenario)  # through report.html.tmp
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def finish_serve(
    run: RunConfig, out: Path, sink: RunSink, server: Any, wall_s: float
) -> tuple[RunSummary, CriteriaResult]:
    """Write a stopped server's run folder (its server-side log is already in ``out``)."""
    counters = server.counters.to_dict()
    summary = run_summary(
        run, sink, cache=server.pipeline.cache_stats(), throttle=server.pipeline.throttle_stats(),
        comms=server.pipeline.comms_stats(),
        throttle_config=server.pipeline.throttle_policy.to_dict(), dsp_servers=run.scenario.dsp_servers,
        mode="wall-clock", wall_seconds=round(wall_s, 3), server=counters,
        events_per_second=round(counters["requests"] / wall_s) if wall_s > 0 else None,
    )  # fmt: skip
    return write_run_folder(out, summary, run.criteria, run.scenario)


def finish_load(
    run: RunConfig, out: Path, sink: RunSink, stats: Any, wallclock: dict[str, Any], wall_s: float
) -> tuple[RunSummary, CriteriaResult]:
    """Write a load run's folder: the client's log is in ``out``; ``stats`` is the server's
    last stats reply (``None`` when it gave none), ``wallclock`` the client's figures."""
    summary = run_summary(
        run, sink, cache=stats.cache if stats else None, throttle=stats.throttle if stats else None,
        dsp_servers=run.scenario.dsp_servers, mode="wall-clock", wallclock=wallclock, wall_seconds=round(wall_s, 3),
        server=stats.server if stats else None, events_per_second=wallclock["answer_rate_per_s"],
    )  # fmt: skip
    return write_run_folder(out, summary, run.criteria, run.scenario)


@dataclass
class RunResult:
    """What :func:`simulate` returns: the summary document, the verdict, the run folder and
    the pipeline that ran."""

    summary: RunSummary
    criteria: CriteriaResult
    out_dir: Path
    #: the run's stage state (caches, throttles, DSP model), for a closer look after the run
    pipeline: Pipeline | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.criteria.passed


def simulate(
    scenario: RunConfig | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    compression: str | None = "lz4",
    progress: Progress | None = None,
    **overrides: Any,
) -> RunResult:
    """Run a scenario's day in virtual time and write its run folder.

    Parameters
    ----------
    scenario:
        A :class:`RunConfig` from :func:`load_run`, or what :func:`load_run` takes (a built-in
        name or a TOML file), with ``overrides`` (``text``, ``scale``, ``seed``, ``uplift``,
        ``demand``, ``shards``, ``exit_criteria``) passed to it.
    out:
        The run folder (default ``runs/NAME-sSCALE-seedSEED``).
    compression:
        ``"lz4"`` (default), ``"zstd"`` or ``None`` for the Arrow logs.
    progress:
        Called after each chunk with the simulated time done, the day's length and the
        events so far (the command line draws its progress bar from it).

    Returns
    -------
    RunResult
        ``summary`` (the typed ``summary.json`` document, :class:`RunSummary`), ``criteria`` (the verdict), ``out_dir``.

    Raises
    ------
    RunAborted
        The run stopped part-way: a log could not be written (a full disk) or the pipeline
        raised (the cause is chained). Both logs are closed as valid Arrow streams of the rows
        written before; no ``summary.json`` or ``report.html`` is written
        (:mod:`dccsim.bench.results.runlog`).
    RunInterrupted
        Ctrl-C (a ``KeyboardInterrupt``), the logs closed the same way.
    """
    if progress is not None and not callable(progress):
        raise TypeError(f"simulate: progress: expected a callable or None, got {progress!r}")
    if isinstance(scenario, RunConfig):
        if overrides:
            raise TypeError(f"simulate: overrides {sorted(overrides)} go to load_run, not with a RunConfig")
        run = scenario
    else:
        run = load_run(scenario, **overrides)
    s = run.scenario
    out_dir = Path(out) if out is not None else default_out(run)
    # the run folder first: one that cannot be written fails before the day is built
    sink = open_sink(
        run, out_dir, compression=compression, alert_codes=s.alert_codes(), audit=True,
        **{"dccsim.scale": repr(s.scale), "dccsim.uplift": repr(s.capacity.uplift),
           "dccsim.demand": repr(s.capacity.demand)},
    )  # fmt: skip
    sink.progress_callback = progress
    # a run that stops part-way: the logs end at their last complete batch; no summary.json
    with sink.closing():
        # the kernels compiled (first run) or loaded from the on-disk cache before the clock
        # starts: wall_seconds and events_per_second are the simulation's, compile_seconds apart
        compile_s = warm_kernels()
        t_start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
        driver = build_driver(run)
        # the build's CPU is the whole process's: its threads draw the streams while this one waits
        driver.stages.add("build", time.perf_counter_ns() - t_start, time.process_time_ns() - cpu_start)
        totals = driver.run(sink)
    wall = (time.perf_counter_ns() - t_start) / 1e9
    cpu = (time.process_time_ns() - cpu_start) / 1e9
    # the logs' worker threads write beside the sink's thread: their CPU is the log's (Arrow's pool compresses)
    driver.stages.add("log", 0, sink.writer_cpu_ns)
    pipeline = driver.pipeline
    summary = run_summary(
        run, sink,
        cache=pipeline.cache_stats(),
        throttle=pipeline.throttle_stats(),
        comms=pipeline.comms_stats(),
        throttle_config=pipeline.throttle_policy.to_dict(),
        dsp_servers=pipeline.dsp.servers,
        chunks=totals.chunks,
        wall_seconds=round(wall, 3),
        events_per_second=round(sink.events / wall) if wall > 0 else None,
        stages=stages_section(driver.stages.to_dict(), wall),
        cpu_seconds=round(cpu, 3),
        compile_seconds=round(compile_s, 3),
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )  # fmt: skip
    summary, verdict = write_run_folder(out_dir, summary, run.criteria, run.scenario)
    return RunResult(summary=summary, criteria=verdict, out_dir=out_dir, pipeline=pipeline)


# ---------------------------------------------------------------------------- several runs


#: independent runs of one scenario (:mod:`dccsim.bench.sweeps`): a list of settings, or a search
sweep = _sweeps.sweep
find = _sweeps.find


# ---------------------------------------------------------------------------- the wall clock


def run_loop(main: Any) -> Any:
    """Run a coroutine on uvloop, or asyncio where uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; the fallback is for odd platforms
        return asyncio.run(main)
    return uvloop.run(main)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class ListenError(OSError):
    """The server could not listen on the address it was given (the cause is chained)."""


def serve(
    run: RunConfig, host: str, port: int, config: Any, sink: RunSink | None, on_listening: Callable[[int], None]
) -> tuple[Any, float]:
    """Serve ``run`` on ``host:port`` until SIGINT or SIGTERM; returns the closed server and
    the seconds it served. ``on_listening(port)`` is called once the port is bound (0 picks a
    free one). Raises :class:`ListenError` when the port cannot be bound."""
    import gc

    async def main() -> tuple[Any, float]:
        server = build_server(run, time.monotonic_ns, config, sink)
        gc.freeze()  # what start-up allocated stays out of the collector's way
        try:
            bound = await server.start(host, port)
        except OSError as exc:
            raise ListenError(exc.errno, exc.strerror or str(exc)) from exc
        stop = _stop_on_signals()
        on_listening(bound)
        t0 = time.perf_counter()
        await stop.wait()
        await server.close()
        return server, time.perf_counter() - t0

    return run_loop(main())  # type: ignore[no-any-return]


@dataclass
class LoadOutcome:
    """What :func:`run_load` returns: the client's figures, the verdict and the run folder."""

    wallclock: dict[str, Any]
    summary: RunSummary
    criteria: CriteriaResult
    out_dir: Path


def run_load(
    run: RunConfig,
    host: str,
    port: int,
    out: Path,
    *,
    rate: float,
    duration_s: float,
    speed: float,
    drain_s: float,
    target: str | None = None,
) -> LoadOutcome:
    """Offer ``run``'s day of requests to a server at ``rate`` per second for ``duration_s``
    (open loop, until SIGINT/SIGTERM or the end), then write the run folder into ``out``.

    ``target`` is how the server was named (kept in the summary; default ``tcp://HOST:PORT``).
    Raises ``OSError``/``TimeoutError`` when the server cannot be reached and
    :class:`~dccsim.core.errors.ConfigError` when the scenario has no requests to send.
    """
    import gc

    from dccsim.loadgen.netclient import run_open_loop, traffic_from_workload

    s = run.scenario
    traffic = traffic_from_workload(DayWorkload(s, build_population(s)))
    if not len(traffic):
        raise ConfigError(key="scenario", value=s.name, expected="a day with requests to send", source=s.name)
    targets = np.array([int(s.capacity.classes[c].target_s * NS) for c in REQUEST_CLASSES], np.int64)

    async def main() -> Any:
        stop = _stop_on_signals()
        gc.freeze()
        # counters above anything an earlier run against the same server used
        return await run_open_loop(host, port, traffic, rate, duration_s, time.monotonic_ns,
                                   counter_base=time.time_ns() // 1000, drain_timeout_s=drain_s, stop=stop)  # fmt: skip

    check_out(out)  # the measurements must have somewhere to go before the load is offered
    t0 = time.perf_counter()
    client = run_loop(main())
    wall = time.perf_counter() - t0
    sink = open_sink(run, out, mode="load", **{"dccsim.rate": repr(rate)})
    with sink.closing():
        client.write_to(sink, s.day_start_ns, targets, speed)
    wc = client.summary() | {
        "rate": rate, "duration_s": duration_s, "speed": speed, "target": target or f"tcp://{host}:{port}"
    }  # fmt: skip
    summary, verdict = finish_load(run, out, sink, client.res.stats, wc, wall)
    return LoadOutcome(wallclock=wc, summary=summary, criteria=verdict, out_dir=out)
