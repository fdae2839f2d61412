"""``dccsim serve`` and ``dccsim load``: wall-clock mode (the composition root for both).

``dccsim serve`` puts a scenario's pipeline behind :class:`~dccsim.core.server.DccServer` on
uvloop (asyncio where uvloop is missing) and runs until SIGINT/SIGTERM, then flushes its
server-side log (virtual time) into ``--out``. ``dccsim load`` drives a server with the
open-loop generator (:mod:`dccsim.loadgen.netclient`) and writes the same run folder as
``dccsim run`` (``requests.arrow``, ``summary.json`` with a ``wallclock`` section,
``report.html``); its latencies are wall-clock, measured from each request's intended send time.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
from dccsim.core.errors import ConfigError, MessageError

from .errors import CliError

__all__ = ["serve", "load", "run_loop", "build_server"]


def run_loop(main: Any) -> Any:
    """Run a coroutine on uvloop, or asyncio where uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; the fallback is for odd platforms
        return asyncio.run(main)
    return uvloop.run(main)


def _scenario(ref: str, scale: float | None, seed: int | None) -> tuple[Any, str]:
    from dccsim.loadgen.scenario import load_scenario

    try:
        s, text = load_scenario(ref)
        return s.with_overrides(scale=scale, seed=seed), text
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def build_server(scenario: Any, clock: Any, config: Any, sink: Any = None) -> Any:
    """A DccServer for a scenario: its population, pipeline, classes and device leg (JIT warmed)."""
    import numpy as np
    from dccsim.core.columns import RequestBatch
    from dccsim.core.server import DccServer
    from dccsim.loadgen.driver import build_pipeline
    from dccsim.loadgen.population import build_population
    from dccsim.loadgen.wallclock import DeviceLegModel, classifier

    pop = build_population(scenario)
    classify = classifier()
    # load the compiled kernels outside any measured path: a throwaway pipeline, a few rows
    warm = build_pipeline(scenario, pop)
    b = RequestBatch.from_columns(device=pop.ids[:4], originator=np.full(4, 1 << 40, np.uint64),
                                  counter=np.arange(1, 5), srv=np.zeros(4), command_variant=np.ones(4),
                                  t_scheduled_ns=np.full(4, scenario.day_start_ns))
    warm.process(b, classify(b), np.full(4, 10**9, np.int64), np.zeros(4, np.uint8))
    warm.process_alerts(np.full(2, scenario.day_start_ns, np.int64), pop.ids[:2], np.full(2, 0x8F84, np.uint16))
    return DccServer(build_pipeline(scenario, pop), classify, DeviceLegModel(scenario, pop), clock, config, sink=sink)


def _finish_folder(out: Path, sink: Any, summary_extra: dict[str, Any], cache: dict[str, Any] | None,
                   throttle: dict[str, Any] | None, scenario: Any, criteria: Any) -> dict[str, Any]:
    from ..results.runlog import write_verdict

    summary = sink.summary()
    summary["cache"] = cache or {}
    summary["throttle"] = throttle or {}
    summary.update(summary_extra)
    summary["run"] = {
        "dccsim_version": version("dccsim"), "scenario": scenario.name, "scale": scenario.scale, "seed": scenario.seed,
        "uplift": scenario.capacity.uplift, "demand": scenario.capacity.demand, "shards": scenario.shards,
        "day": scenario.day, "meters": scenario.meters, "dsp_servers": scenario.dsp_servers, "mode": "wall-clock",
    }
    write_verdict(out, summary, criteria)
    return summary


def _cache_summary(cs: dict[str, Any], retention_h: float) -> dict[str, Any]:
    keys = ("hits", "misses", "hit_ratio", "stores", "expired", "evicted", "resident", "bytes_per_entry")
    out = {k: cs.get(k) for k in keys}
    out["device_requests_saved"] = cs.get("hits")
    out["retention_hours"] = retention_h
    return out


def _server_config(speed: float, **limits: Any) -> Any:
    from dccsim.core.server import ServerConfig

    try:
        return ServerConfig(speed=speed, **{k: v for k, v in limits.items() if v is not None})
    except MessageError as exc:
        raise CliError(str(exc)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=7411, show_default=True, help="0 = any free port.")
@click.option("--scenario", "scenario_ref", default="smoke", show_default=True, help="Built-in name or TOML file.")
@click.option("--scale", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--speed", type=float, default=1000.0, show_default=True,
              help="Virtual seconds per wall second (1000: a 4 s device round trip takes 4 ms).")
@click.option("--max-connections", type=int, default=None)
@click.option("--max-frame-bytes", type=int, default=None)
@click.option("--max-inbound", type=int, default=None, help="Requests received but not yet processed.")
@click.option("--max-pending", type=int, default=None, help="Requests processed, final answer not yet due.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Server-side run folder (default runs/serve-SCENARIO).")
@click.option("--no-log", is_flag=True, help="Write no server-side log.")
def serve(host: str, port: int, scenario_ref: str, scale: float | None, seed: int | None, speed: float,
          max_connections: int | None, max_frame_bytes: int | None, max_inbound: int | None, max_pending: int | None,
          out: Path | None, no_log: bool) -> None:
    """Serve the DCC core over TCP (frames) and HTTP (DUIS XML) until SIGINT/SIGTERM."""
    import gc

    from dccsim.bench.results.criteria import parse_criteria

    s, text = _scenario(scenario_ref, scale, seed)
    if not speed > 0:
        raise CliError(f"--speed: got {speed}, expected a number > 0")
    cfg = _server_config(speed, origin_ns=s.day_start_ns, max_connections=max_connections,
                         max_frame_bytes=max_frame_bytes, max_inbound=max_inbound, max_pending=max_pending)
    out = out or Path("runs") / f"serve-{s.name}"
    sink = None
    if not no_log:
        from ..results.runlog import RunSink

        sink = RunSink(out, text, s.seed, s.day_start_ns, extra_metadata={"dccsim.mode": "serve", "dccsim.name": s.name,
                                                                           "dccsim.speed": repr(speed)})

    async def main() -> Any:
        server = build_server(s, time.monotonic_ns, cfg, sink)
        gc.freeze()
        try:
            bound = await server.start(host, port)
        except OSError as exc:
            raise CliError(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"dccsim serve: {s.name} x{s.scale:g}, speed {speed:g}: frames and DUIS XML (HTTP) on "
                   f"{host}:{bound}; stop with Ctrl-C", err=True)
        t0 = time.perf_counter()
        await stop.wait()
        await server.close()
        return server, time.perf_counter() - t0

    try:
        server, wall = run_loop(main())
    finally:
        if sink is not None:
            sink.close()
    c = server.counters.to_dict()
    click.echo("dccsim serve: stopped; " + ", ".join(f"{k} {v:,}" for k, v in c.items() if v), err=True)
    if sink is not None:
        _finish_folder(out, sink, {"wall_seconds": round(wall, 3), "server": c,
                                   "events_per_second": round(c["requests"] / wall) if wall > 0 else None},
                       _cache_summary(server.pipeline.cache_stats().to_dict(), s.cache.retention_h),
                       server.pipeline.throttle_summary(), s, parse_criteria({}))
        click.echo(f"dccsim serve: server-side log in {out}/", err=True)


#: what a load run is judged by unless --criterion is given
LOAD_CRITERIA = {
    "wallclock.lost == 0": 1,
    "wallclock.duplicates == 0": 1,
    "wallclock.refused_error == 0": 2,
    "wallclock.refused_busy == 0": 2,
}


def _load_criteria(given: tuple[str, ...]) -> dict[str, int]:
    """``--criterion`` values as an exit_criteria table (the defaults when there are none)."""
    if not given:
        return dict(LOAD_CRITERIA)
    table = {}
    for text in given:
        expr, sep, sev = text.rpartition(":")
        if not sep:
            expr, sev = text, "1"
        if not sev.strip().isdigit():
            raise CliError(f"--criterion: got {text!r}, expected 'PATH OP NUMBER' or 'PATH OP NUMBER:SEVERITY' "
                           "with a severity 1 to 4")
        table[expr.strip()] = int(sev)
    return table


def _target(text: str) -> tuple[str, int]:
    u = urlparse(text)
    if u.scheme != "tcp" or not u.hostname or u.port is None:
        raise CliError(f"--target: got {text!r}, expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7411")
    return u.hostname, u.port


@click.command()
@click.argument("scenario_ref", metavar="SCENARIO", default="smoke")
@click.option("--target", default="tcp://127.0.0.1:7411", show_default=True, help="tcp://HOST:PORT of dccsim serve.")
@click.option("--rate", type=float, default=10_000, show_default=True, help="Requests per second (open loop).")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds of sending.")
@click.option("--scale", type=float, default=None, help="As given to dccsim serve (the same devices).")
@click.option("--seed", type=int, default=None)
@click.option("--speed", type=float, default=1000.0, show_default=True,
              help="As given to dccsim serve: judges latency against the class targets in virtual time.")
@click.option("--drain", type=float, default=10.0, show_default=True, help="Seconds to wait for the last answers.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--criterion", "criteria_given", multiple=True, metavar="'PATH OP NUMBER[:SEVERITY]'",
              help="An exit criterion on summary.json (repeatable; severity 1 unless given). Replaces the "
                   "defaults: every request answered once (lost == 0, duplicates == 0), none refused.")
def load(scenario_ref: str, target: str, rate: float, duration: float, scale: float | None, seed: int | None,
         speed: float, drain: float, out: Path | None, criteria_given: tuple[str, ...]) -> None:
    """Offer a scenario's requests to a server at a constant rate; write the run folder.

    The scenario's own [exit_criteria] judge its simulated day (dccsim run); a load run replays
    that day's requests at whatever rate is asked, so it is judged by --criterion instead.
    """
    import gc

    import numpy as np
    from dccsim.loadgen.netclient import run_open_loop, traffic_from_workload
    from dccsim.loadgen.population import build_population
    from dccsim.loadgen.scenario import REQUEST_CLASSES
    from dccsim.loadgen.workload import NS, DayWorkload

    from ..results.criteria import parse_criteria
    from ..results.runlog import RunSink

    host, port = _target(target)
    if not (rate > 0 and duration > 0 and speed > 0):
        raise CliError(f"--rate, --duration, --speed: got {rate}, {duration}, {speed}, expected numbers > 0")
    if rate * duration > 50_000_000:
        raise CliError(f"--rate x --duration: got {rate * duration:,.0f} requests, expected at most 50,000,000")
    s, text = _scenario(scenario_ref, scale, seed)
    criteria = parse_criteria(_load_criteria(criteria_given))
    traffic = traffic_from_workload(DayWorkload(s, build_population(s)))
    if not len(traffic):
        raise CliError(f"scenario {s.name}: no requests to send")
    out = out or Path("runs") / f"load-{s.name}-r{rate:g}"
    targets = np.array([int(s.capacity.classes[c].target_s * NS) for c in REQUEST_CLASSES], np.int64)

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        gc.freeze()
        # counters above anything an earlier run against the same server used
        return await run_open_loop(host, port, traffic, rate, duration, time.monotonic_ns,
                                   counter_base=time.time_ns() // 1000, drain_timeout_s=drain, stop=stop)

    t0 = time.perf_counter()
    try:
        client = run_loop(main())
    except (OSError, TimeoutError) as exc:
        raise CliError(f"--target: cannot connect to {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    wall = time.perf_counter() - t0
    sink = RunSink(out, text, s.seed, s.day_start_ns, extra_metadata={"dccsim.mode": "load", "dccsim.name": s.name,
                                                                       "dccsim.rate": repr(rate)})
    try:
        client.write_to(sink, s.day_start_ns, targets, speed)
    finally:
        sink.close()
    wc = client.summary() | {"rate": rate, "duration_s": duration, "speed": speed, "target": target}
    st = client.res.stats
    summary = _finish_folder(
        out, sink, {"wallclock": wc, "wall_seconds": round(wall, 3), "server": st.server if st else None,
                    "events_per_second": wc["answer_rate_per_s"]},
        _cache_summary(st.cache, s.cache.retention_h) if st else None, st.throttle if st else None, s, criteria)
    lat = wc["final_latency_s"]
    click.echo(f"dccsim load: {wc['sent']:,} sent at {wc['send_rate_per_s']:,.0f}/s, {wc['answered']:,} answered, "
               f"{wc['refused_busy']:,} busy, {wc['refused_error']:,} errors, {wc['lost']:,} lost; final latency "
               f"p50 {lat.get('p50', float('nan')) * 1e3:.2f} ms, p99 {lat.get('p99', float('nan')) * 1e3:.2f} ms "
               f"(from the intended send time); send lag p99 "
               f"{wc['send_lag_s'].get('p99', float('nan')) * 1e3:.2f} ms")
    click.echo(f"results: {out}/")
    if wc["lost"] or wc["duplicates"]:
        click.echo(f"dccsim load: {wc['lost']} requests lost, {wc['duplicates']} answered twice", err=True)
        sys.exit(1)
    if not summary["exit_criteria"].get("passed", True):
        failed = "; ".join(c["expression"] for c in summary["exit_criteria"].get("criteria", []) if not c["passed"])
        click.echo(f"dccsim load: exit criteria not met: {failed}", err=True)
        sys.exit(1)
