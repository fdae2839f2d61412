"""Benchmark: the wall-clock server against a bare msgspec + uvloop echo server, same client.

Two processes on this machine's two cores: the server (a subprocess) and the open-loop
generator (this process), over loopback. In one run:

1. **echo**: a bare uvloop Protocol that decodes each ``R`` frame with msgspec
   (``list[RequestRow]``) and answers it at once with the same ``A`` and ``F`` frames our
   server sends: the ceiling of the transport + framing + decode, with no pipeline.
2. **dccsim serve** (smoke scenario, no server log, ``--speed 10000000``: the simulated
   device and DSP legs take about a microsecond of wall time, and the modelled DSP, a single
   server at smoke scale, is not overloaded, so the server's own work is measured. At
   ``--speed 100000`` the same request rates are ten requests per virtual second, five times
   what that DSP serves: every request waits out its 120 s time-out, 1.2 ms of wall time, and
   the model's queue keeps growing, a doubling of its rings stalling a batch for tens of ms).

Each is offered more than it can take (open loop, ``--offered`` requests/s for ``--seconds``);
sustained throughput = final answers / time from the first intended send to the last answer.
A run that kept up with the offered rate measured the offered rate, not a ceiling: its line
says so (raise ``--offered``). The default is more than the generator itself can send here, so
the ceiling measured may be the generator's (then echo and ours come out alike, both with a
large send lag). Then our server is offered **half** its measured rate and the p99 of the
final-answer latency, measured from each request's intended send time (so the generator's own
send lag counts), is reported; busy or lost requests there would leave the latency figures
incomplete, and the line says so. The half-rate run is repeated ``--repeats`` times (the
machine is shared and a single pause shows in a p99), alternating with the echo server at the
same rate: the median run of each is printed, the echo's p99 being what the generator, the
loopback and this machine cost with no server work at all.

Run: ``python -m dccsim.bench.perf.server [--offered 2000000] [--seconds 4] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import msgspec
import numpy as np
from dccsim.core.messages import RequestRow, RowAck
from dccsim.core.protocol import FINAL_RECORD, TAG_ACK, TAG_FINALS, TAG_ROWS, frame

_rows = msgspec.msgpack.Decoder(list[RequestRow])
_enc = msgspec.msgpack.Encoder()


class _Echo(asyncio.Protocol):
    """Decode each R frame with msgspec; answer I99 (ack) and I0 (finals) at once."""

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        off, end = 0, len(buf)
        out = []
        while end - off >= 5:
            n = int.from_bytes(buf[off:off + 4], "big")
            if end - off < 4 + n:
                break
            if buf[off + 4] == TAG_ROWS:
                bid = int.from_bytes(buf[off + 5:off + 13], "big")
                k = len(_rows.decode(buf[off + 13:off + 4 + n]))
                rec = np.zeros(k, FINAL_RECORD)
                rec["id"] = np.arange(bid, bid + k, dtype=np.uint64)
                out.append(frame(TAG_ACK, _enc.encode(RowAck(bid, k))))
                out.append(frame(TAG_FINALS, rec.tobytes()))
            off += 4 + n
        del buf[:off]
        if out:
            self.t.write(b"".join(out))


async def _echo_main() -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(_Echo, "127.0.0.1", 0)
    print(f"echo on 127.0.0.1:{srv.sockets[0].getsockname()[1]};", file=sys.stderr, flush=True)
    await asyncio.Event().wait()


def _start(cmd: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    if "127.0.0.1:" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(line.split("127.0.0.1:")[1].split(";")[0])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _drive(port: int, traffic: Any, rate: float, seconds: float) -> dict[str, Any]:
    import uvloop
    from dccsim.loadgen.netclient import run_open_loop

    async def main() -> Any:
        return await run_open_loop("127.0.0.1", port, traffic, rate, seconds, time.monotonic_ns,
                                   counter_base=time.time_ns() // 1000, drain_timeout_s=30.0, stats=False)

    c = uvloop.run(main())
    res = c.res
    ok = res.finals > 0
    last = int(res.done_ns[ok].max()) if ok.any() else res.start_ns + 1
    sm = c.summary()
    sm["throughput_per_s"] = round(int(ok.sum()) / ((last - res.start_ns) / 1e9), 0)
    return sm


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offered", type=float, default=2_000_000.0, help="offered rate for the throughput runs")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--speed", type=float, default=10_000_000.0)
    ap.add_argument("--repeats", type=int, default=3, help="half-rate runs of each server (median reported)")
    ap.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.echo_server:
        import uvloop

        uvloop.run(_echo_main())
        return

    import gc

    from dccsim.loadgen.netclient import traffic_from_workload
    from dccsim.loadgen.population import build_population
    from dccsim.loadgen.scenario import load_scenario
    from dccsim.loadgen.workload import DayWorkload

    s, _ = load_scenario("smoke")
    traffic = traffic_from_workload(DayWorkload(s, build_population(s)))
    gc.freeze()
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; offered {a.offered:,.0f}/s "
          f"for {a.seconds:g} s; server and generator in two processes over loopback")

    # both servers up at once (an idle one costs nothing), so the half-rate runs can alternate
    eproc, eport = _start([sys.executable, "-m", "dccsim.bench.perf.server", "--echo-server"])
    proc, port = None, 0
    try:
        proc, port = _start([sys.executable, "-m", "dccsim.bench", "serve", "--port", "0", "--no-log",
                             "--speed", f"{a.speed:g}", "--max-inbound", "1000000", "--max-pending", "4000000"])
        _drive(eport, traffic, 20_000, 0.5)  # warm the paths
        _drive(port, traffic, 20_000, 0.5)
        echo = _drive(eport, traffic, a.offered, a.seconds)
        ours = _drive(port, traffic, a.offered, a.seconds)
        half = ours["throughput_per_s"] / 2
        halves: list[dict[str, Any]] = []
        echo_halves: list[dict[str, Any]] = []
        for _ in range(a.repeats):
            halves.append(_drive(port, traffic, half, max(a.seconds, 5.0)))
            echo_halves.append(_drive(eport, traffic, half, max(a.seconds, 5.0)))
    finally:
        _stop(eproc)
        if proc is not None:
            _stop(proc)

    def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return sorted(runs, key=lambda r: r["final_latency_s"]["p99"])[len(runs) // 2]

    at_half, echo_half = median_run(halves), median_run(echo_halves)

    def line(name: str, r: dict[str, Any], offered: float | None = None) -> str:
        fl, lag = r["final_latency_s"], r["send_lag_s"]
        note = ""
        if offered is not None and r["throughput_per_s"] >= 0.97 * offered:
            note = "  (kept up with the offered rate: a lower bound, raise --offered)"
        elif offered is None and (r["refused_busy"] or r["lost"] or r["refused_error"]):
            note = "  (requests refused or lost: the latency figures leave them out)"
        return (f"{name:<28} {r['throughput_per_s']:>12,.0f} req/s  answered {r['answered']:>9,} of {r['sent']:>9,}"
                f"  busy {r['refused_busy']:>7,}  lost {r['lost']}  p50 {fl['p50'] * 1e3:8.2f} ms"
                f"  p99 {fl['p99'] * 1e3:8.2f} ms  send lag p99 {lag['p99'] * 1e3:7.2f} ms{note}")

    print(line("echo (msgspec + uvloop)", echo, a.offered))
    print(line("dccsim serve", ours, a.offered))
    print(line(f"dccsim serve at {half:,.0f}/s", at_half))
    print(line(f"echo at {half:,.0f}/s", echo_half))

    def p99s(runs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r['final_latency_s']['p99'] * 1e3:.2f}" for r in runs)

    print(f"half-rate p99 of each of {a.repeats} runs (the lines above show the median run): "
          f"dccsim {p99s(halves)} ms; echo {p99s(echo_halves)} ms")
    ratio = ours["throughput_per_s"] / echo["throughput_per_s"]
    p99 = at_half["final_latency_s"]["p99"] * 1e3
    print(f"ratio dccsim / echo: {ratio:.2f} (goal >= 0.5); sustained {ours['throughput_per_s']:,.0f} req/s "
          f"(goal >= 100,000); p99 at half rate {p99:.2f} ms, median of {a.repeats} (goal <= 5 ms; the echo "
          f"server's at the same rate, {echo_half['final_latency_s']['p99'] * 1e3:.2f} ms, is this machine's floor)")


if __name__ == "__main__":
    main()
