"""``dccsim serve`` and ``dccsim load``: wall-clock mode (assembled by :mod:`dccsim.bench.compose`).

``dccsim serve`` puts a scenario's pipeline behind :class:`~dccsim.core.server.DccServer` on
uvloop (asyncio where uvloop is missing) and runs until SIGINT/SIGTERM, then flushes its
server-side log (virtual time) into ``--out``. ``dccsim load`` drives a server with the
open-loop generator (:mod:`dccsim.loadgen.netclient`) and writes the same run folder as
``dccsim run`` (``requests.arrow``, ``summary.json`` with a ``wallclock`` section,
``report.html``); its latencies are wall-clock, measured from each request's intended send time.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
from dccsim.core.errors import ConfigError, MessageError

from .errors import CliError, OutputError
from .outdir import FORCE_OPTION, fresh_out

__all__ = ["serve", "load"]


def _load(
    ref: str, scale: float | None, seed: int | None, criteria: dict[str, int] | None = None, set_: tuple[str, ...] = ()
) -> Any:
    from ..compose import load_run
    from ..settings import parse_settings

    try:
        settings = parse_settings(set_)
    except ConfigError as exc:
        raise CliError(f"--set: {exc}") from None
    try:
        return load_run(
            ref, scale=scale, seed=seed, exit_criteria=criteria if criteria is not None else {}, settings=settings
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None


_SET_OPTION = click.option(
    "--set", "set_", multiple=True, metavar="KEY=VALUE",
    help="Set a scenario key (dotted, VALUE in TOML), as dccsim run --set; repeatable. dccsim load needs the same "
    "settings as the server for the same devices.",
)  # fmt: skip


def _server_config(speed: float, **limits: Any) -> Any:
    from dccsim.core.server import ServerConfig

    try:
        return ServerConfig(speed=speed, **{k: v for k, v in limits.items() if v is not None})
    except MessageError as exc:  # named by its flag: server.idle_timeout_s -> --idle-timeout
        flag = "--" + exc.field.removeprefix("server.").removesuffix("_s").replace("_", "-")
        raise CliError(f"{flag}: got {exc.value!r}, expected {exc.expected}") from None


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
@click.option("--max-pending-per-connection", type=int, default=None,
              help="Of those, the most one connection may have (default 1,000,000).")
@click.option("--max-future-dated", type=int, default=None,
              help="Future-dated responses scheduled, not yet due (default 1,000,000); beyond it a micro-batch's "
                   "are not scheduled (counted future_dated_shed).")
@click.option("--idle-timeout", type=float, default=None,
              help="Close a connection that sent nothing for this many seconds and is owed no answer (default 120).")
@click.option("--header-timeout", type=float, default=None,
              help="Close a connection whose frame or HTTP header is incomplete this long after its first byte "
                   "(default 10).")
@click.option("--frame-timeout", type=float, default=None,
              help="Close a connection whose frame or HTTP request is incomplete this long after its first byte "
                   "(default 60).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Server-side run folder (default runs/serve-SCENARIO).")
@click.option("--no-log", is_flag=True, help="Write no server-side log.")
@FORCE_OPTION
@_SET_OPTION
def serve(host: str, port: int, scenario_ref: str, scale: float | None, seed: int | None, speed: float,
          max_connections: int | None, max_frame_bytes: int | None, max_inbound: int | None, max_pending: int | None,
          max_pending_per_connection: int | None, max_future_dated: int | None, idle_timeout: float | None,
          header_timeout: float | None,
          frame_timeout: float | None, out: Path | None, no_log: bool, force: bool, set_: tuple[str, ...]) -> None:
    """Serve the DCC core over TCP (frames) and HTTP (DUIS XML) until SIGINT/SIGTERM."""
    from .. import compose

    run = _load(scenario_ref, scale, seed, set_=set_)
    s = run.scenario
    if not (math.isfinite(speed) and speed > 0):
        raise CliError(f"--speed: got {speed}, expected a finite number > 0")
    cfg = _server_config(speed, origin_ns=s.day_start_ns, max_connections=max_connections,
                         max_frame_bytes=max_frame_bytes, max_inbound=max_inbound, max_pending=max_pending,
                         max_pending_per_connection=max_pending_per_connection, max_future_dated=max_future_dated,
                         idle_timeout_s=idle_timeout,
                         header_timeout_s=header_timeout, frame_timeout_s=frame_timeout)
    out = fresh_out(out, Path("runs") / f"serve-{s.name}", force) if not no_log else Path("runs")
    # audit.arrow: the future-dated responses that came due (CR1233)
    sink = None if no_log else compose.open_sink(run, out, mode="serve", audit=True,
                                                 **{"dccsim.speed": repr(speed)})  # fmt: skip

    def listening(bound: int) -> None:
        click.echo(f"dccsim serve: {s.name} x{s.scale:g}, speed {speed:g}: frames and DUIS XML (HTTP) on "
                   f"{host}:{bound}; stop with Ctrl-C", err=True)

    failed: Exception | None = None
    try:
        server, wall = compose.serve(run, host, port, cfg, sink, listening)
    except compose.ListenError as exc:
        raise CliError(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        if sink is not None:
            try:
                sink.close()  # each log ends at its last complete batch, even after a failed write
            except Exception as exc:  # noqa: BLE001 - reported below, in one line
                failed = exc
    c = server.counters.to_dict()
    click.echo("dccsim serve: stopped; " + ", ".join(f"{k} {v:,}" for k, v in c.items() if v), err=True)
    failed = failed or server.log_failure
    if sink is not None and failed is not None:  # the server kept serving; its log could not be written
        reason = getattr(failed, "reason", None) or f"{type(failed).__name__}: {failed}"
        raise OutputError(f"run aborted: server-side log: {reason}; {sink.kept()}")
    if sink is not None:
        compose.finish_serve(run, out, sink, server, wall)
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
    try:
        port = u.port  # raises ValueError for a port outside 0-65535 or not a number
    except ValueError:
        port = None
    if u.scheme != "tcp" or not u.hostname or port is None or port == 0:
        raise CliError(f"--target: got {text!r}, expected tcp://HOST:PORT with a port 1 to 65535, "
                       "e.g. tcp://127.0.0.1:7411")
    return u.hostname, port


def _by_field(wc: dict[str, Any]) -> str:
    fields = wc.get("refused_error_by_field") or {}
    return f" ({', '.join(f'{k}: {v:,}' for k, v in fields.items())})" if fields else ""


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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The run folder (default runs/load-SCENARIO-rRATE).")
@FORCE_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No summary line: print the run folder only (errors still show).")
@click.option("--criterion", "criteria_given", multiple=True, metavar="'PATH OP NUMBER[:SEVERITY]'",
              help="An exit criterion on summary.json (repeatable; severity 1 unless given). Replaces the "
                   "defaults: every request answered once (lost == 0, duplicates == 0), none refused.")
@_SET_OPTION
def load(scenario_ref: str, target: str, rate: float, duration: float, scale: float | None, seed: int | None,
         speed: float, drain: float, out: Path | None, force: bool, quiet: bool, criteria_given: tuple[str, ...],
         set_: tuple[str, ...]) -> None:
    """Offer a scenario's requests to a server at a constant rate; write the run folder.

    The scenario's own [exit_criteria] judge its simulated day (dccsim run); a load run replays
    that day's requests at whatever rate is asked, so it is judged by --criterion instead.
    """
    from .. import compose

    host, port = _target(target)
    if not all(math.isfinite(x) and x > 0 for x in (rate, duration, speed)):
        raise CliError(f"--rate, --duration, --speed: got {rate}, {duration}, {speed}, expected finite numbers > 0")
    if not (math.isfinite(drain) and drain >= 0):
        raise CliError(f"--drain: got {drain}, expected a finite number of seconds >= 0")
    if rate * duration > 50_000_000:
        raise CliError(f"--rate x --duration: got {rate * duration:,.0f} requests, expected at most 50,000,000")
    run = _load(scenario_ref, scale, seed, _load_criteria(criteria_given), set_)
    out = fresh_out(out, Path("runs") / f"load-{run.scenario.name}-r{rate:g}", force)
    try:
        outcome = compose.run_load(
            run, host, port, out, rate=rate, duration_s=duration, speed=speed, drain_s=drain, target=target
        )
    except compose.RunAborted as exc:  # the load's own log or run folder could not be written
        raise OutputError(str(exc)) from None
    except (OSError, TimeoutError) as exc:
        raise CliError(f"--target: cannot connect to {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    wc, verdict = outcome.wallclock, outcome.criteria
    lat = wc["final_latency_s"]
    if quiet:
        click.echo(str(out))
    else:
        _print_load(wc, lat, out)
    _load_verdict(wc, verdict)


def _future_dated(wc: dict[str, Any]) -> str:
    n = wc.get("future_dated_responses") or 0
    return f", {n:,} future-dated responses" if n else ""


def _print_load(wc: dict[str, Any], lat: dict[str, float], out: Path) -> None:
    click.echo(f"dccsim load: {wc['offered']:,} offered, {wc['sent']:,} sent at {wc['send_rate_per_s']:,.0f}/s, "
               f"{wc['answered']:,} answered, {wc['refused_busy']:,} refused busy, {wc['refused_error']:,} refused "
               f"as errors{_by_field(wc)}, {wc['lost']:,} lost, {wc['never_sent']:,} never sent"
               f"{_future_dated(wc)}; final latency "
               f"p50 {lat.get('p50', float('nan')) * 1e3:.2f} ms, p99 {lat.get('p99', float('nan')) * 1e3:.2f} ms "
               f"(from the intended send time); send lag p99 "
               f"{wc['send_lag_s'].get('p99', float('nan')) * 1e3:.2f} ms")
    click.echo(f"results: {out}/")


def _load_verdict(wc: dict[str, Any], verdict: Any) -> None:
    if wc["sent"] < wc["offered"]:
        why = f" ({wc['close_reason']})" if wc.get("close_reason") else ""
        click.echo(f"dccsim load: sent {wc['sent']:,} of the {wc['offered']:,} requests asked for{why}", err=True)
        sys.exit(1)
    if wc["lost"] or wc["duplicates"]:
        click.echo(f"dccsim load: {wc['lost']} requests lost, {wc['duplicates']} answered twice", err=True)
        sys.exit(1)
    if not verdict.passed:
        failed = "; ".join(v.criterion.expression for v in verdict.verdicts if not v.passed)
        click.echo(f"dccsim load: exit criteria not met: {failed}", err=True)
        sys.exit(1)
