"""Throughput of the DSP capacity model: the Numba kernel against the plain-Python reference.

Run with ``python -m dccsim.bench.perf.capacity`` (``--help`` for sizes). For each server
count and load it generates one seeded workload (Poisson arrivals, four request classes with
different service times, a device leg for 70% of the requests), then times

- ``kernel``: the Numba kernel alone on the whole chunk (``CapacityModel._run``: no input
  checks, preallocated outputs, a fresh model per repeat; ring growth included);
- ``process_into``: :meth:`dccsim.core.capacity.CapacityModel.process_into`, the public path
  with preallocated outputs, which adds the input checks (one more pass over the chunk);
- ``process``: :meth:`dccsim.core.capacity.CapacityModel.process`, which also allocates the
  outputs;
- ``reference``: :func:`dccsim.core.capacity.reference_process` on the first ``--ref`` requests
  only (pure Python, a few microseconds per request), scaled to requests/s. For 200,000
  servers that prefix is still filling idle servers, which is the reference's cheap case.

JIT compilation is warmed before any timing. Figures are medians of ``--repeats`` runs on one
core; ``(best)`` is the kernel's fastest run, a hint of how much a shared machine's noise
weighs (``--clock cpu`` times this thread's CPU time, steadier there than the wall clock).
``ratio`` is kernel over reference; ``waited`` is the share of requests that queued. The
kernel's outputs are checked against the reference on the subsample.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
from dccsim.core import _kernels as K
from dccsim.core.capacity import (
    CapacityClass,
    CapacityConfig,
    CapacityModel,
    reference_process,
)

MS = 1_000_000
S = 1_000_000_000
# Four request classes: service time at the DSP, time-out, share of the traffic.
CLASSES = (
    CapacityClass(name="read-profile", service_ns=4 * MS, timeout_ns=30 * S),
    CapacityClass(name="read-daily", service_ns=2 * MS, timeout_ns=30 * S),
    CapacityClass(name="command", service_ns=10 * MS, timeout_ns=60 * S),
    CapacityClass(name="non-device", service_ns=1 * MS, timeout_ns=5 * S),
)
SHARES = np.array([0.55, 0.25, 0.05, 0.15])
DEVICE_SHARE = 0.7  # requests with a WAN/device leg; the rest (cache hits, non-device) have 0


def workload(
    n: int, servers: int, load: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrivals at offered utilisation ``load`` for ``servers`` servers, seeded."""
    rng = np.random.default_rng(seed)
    service = np.array([c.service_ns for c in CLASSES], dtype=np.float64)
    rate_per_ns = load * servers / float(SHARES @ service)
    gaps = rng.exponential(1.0 / rate_per_ns, size=n)
    t_arrive = np.cumsum(gaps).astype(np.int64)
    cls = rng.choice(len(CLASSES), size=n, p=SHARES).astype(np.uint8)
    latency = rng.lognormal(mean=np.log(2 * S), sigma=0.8, size=n).astype(np.int64)
    latency[rng.random(n) >= DEVICE_SHARE] = 0
    return t_arrive, cls, latency


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_seconds(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def run_case(
    n: int,
    servers: int,
    load: float,
    repeats: int,
    n_ref: int,
    seed: int,
    clock: Callable[[], float],
) -> dict[str, float]:
    config = CapacityConfig(slots=servers, classes=CLASSES)
    t_arrive, cls, latency = workload(n, servers, load, seed)

    # Correctness on the subsample first (this also warms the JIT).
    ref_t0 = clock()
    ref = reference_process(config, t_arrive[:n_ref], cls[:n_ref], latency[:n_ref])
    ref_seconds = clock() - ref_t0
    got = CapacityModel(config).process(t_arrive[:n_ref], cls[:n_ref], latency[:n_ref])
    for name in ("start_ns", "t_done_ns", "timed_out", "wait_ns", "backlog"):
        if not np.array_equal(getattr(got, name), getattr(ref, name)):
            raise AssertionError(f"kernel and reference differ in {name}")

    outs = (
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.bool_),
        np.empty(n, np.int64),
        np.empty(n, np.int32),
        np.empty(n, np.uint8),  # status: served, refused, shed
    )
    acc = np.zeros(K.N_ACC, np.int64)

    kernel_times = []
    for _ in range(repeats):
        model = CapacityModel(config)
        acc[:] = 0
        t0 = clock()
        model._run(t_arrive, cls, latency, acc, outs)  # the kernel, no input checks
        kernel_times.append(clock() - t0)
    kernel_seconds = statistics.median(kernel_times)
    kernel_best = min(kernel_times)
    if not np.array_equal(outs[0][:n_ref], ref.start_ns):
        raise AssertionError("timed kernel run differs from the reference")
    waited = float(np.mean(outs[3] > 0))
    peak = int(acc[K.ACC_PEAK])

    def checked() -> None:
        CapacityModel(config).process_into(
            t_arrive,
            cls,
            latency,
            start_ns=outs[0],
            t_done_ns=outs[1],
            timed_out=outs[2],
            wait_ns=outs[3],
            backlog=outs[4],
        )

    process_into_seconds = median_seconds(checked, repeats, clock)
    process_seconds = median_seconds(
        lambda: CapacityModel(config).process(t_arrive, cls, latency), repeats, clock
    )
    return {
        "kernel": n / kernel_seconds,
        "kernel_best": n / kernel_best,
        "process_into": n / process_into_seconds,
        "process": n / process_seconds,
        "reference": n_ref / ref_seconds,
        "waited": waited,
        "peak": peak,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000_000, help="requests per run")
    parser.add_argument("--servers", type=int, nargs="+", default=[2_000, 200_000])
    parser.add_argument(
        "--loads", type=float, nargs="+", default=[0.5, 0.9, 1.2],
        help="offered utilisation: 0.5 no waiting, 0.9 busy, 1.2 overload (everyone queues)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ref", type=int, default=300_000, help="reference subsample size")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall",
        help="wall: perf_counter; cpu: this thread's CPU time (steadier on a shared machine)",
    )
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]

    print(f"# {cpu_name()}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"numba {numba.__version__}; one core; {args.clock} clock, medians of {args.repeats}")
    print(f"# {args.n:,} requests per run; reference timed on the first {args.ref:,} requests "
          "of the same workload and scaled to requests/s")
    print(f"{'servers':>8} {'load':>5} {'waited':>7} {'peak backlog':>12} {'kernel':>9} "
          f"{'(best)':>8} {'process_into':>12} {'process':>9} {'reference':>9} {'ratio':>6}"
          "   (requests/s)")
    for servers in args.servers:
        for load in args.loads:
            r = run_case(args.n, servers, load, args.repeats, args.ref, args.seed, clock)
            print(f"{servers:>8,} {load:>5.2f} {r['waited']:>7.1%} {r['peak']:>12,} "
                  f"{r['kernel'] / 1e6:>8.1f}M {r['kernel_best'] / 1e6:>7.1f}M "
                  f"{r['process_into'] / 1e6:>11.1f}M "
                  f"{r['process'] / 1e6:>8.1f}M {r['reference'] / 1e6:>8.2f}M "
                  f"{r['kernel'] / r['reference']:>5.0f}x", flush=True)


if __name__ == "__main__":
    main()
