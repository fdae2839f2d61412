"""Throughput of the DSP capacity model: the Numba kernel against the plain-Python reference.

Run with ``python -m dccsim.bench.bench_capacity`` (``--help`` for sizes). For each server
count and load it generates one seeded workload (Poisson arrivals, four request classes with
different service times, a device leg for 70% of the requests), then times

- ``kernel``: :func:`dccsim.core._kernels.dsp_fifo` alone on the whole chunk, state reset
  between repeats;
- ``process``: :meth:`dccsim.core.capacity.CapacityModel.process` on the whole chunk, which
  adds the input checks (one more pass) and the output allocation;
- ``reference``: :func:`dccsim.core.capacity.reference_process` on the first ``--ref`` requests
  only (pure Python is about a microsecond per request), reported as requests/s.

JIT compilation is warmed before any timing; figures are medians of ``--repeats`` runs on one
core. Every timed kernel run is checked against the reference on the subsample.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

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


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_case(
    n: int, servers: int, load: float, repeats: int, n_ref: int, seed: int
) -> dict[str, float]:
    config = CapacityConfig(slots=servers, classes=CLASSES)
    t_arrive, cls, latency = workload(n, servers, load, seed)

    # Correctness on the subsample first (this also warms the JIT).
    ref_t0 = time.perf_counter()
    ref = reference_process(config, t_arrive[:n_ref], cls[:n_ref], latency[:n_ref])
    ref_seconds = time.perf_counter() - ref_t0
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
    )
    service, timeout = config.service_ns_array(), config.timeout_ns_array()

    def fresh_state() -> tuple[np.ndarray, ...]:
        heap = np.full(config.servers, np.iinfo(np.int64).min, np.int64)
        pending = np.zeros(1 << max(10, int(n).bit_length()), np.int64)  # never fills here
        scal = np.zeros(K.N_SCALARS, np.int64)
        scal[K.SCAL_CURSOR] = config.servers >> 1
        return heap, pending, scal, np.zeros(K.N_ACC, np.int64), np.zeros(len(CLASSES), np.int64)

    kernel_times = []
    for _ in range(repeats):
        heap, pending, scal, acc, counts = fresh_state()
        t0 = time.perf_counter()
        done = K.dsp_fifo(
            t_arrive, cls, latency, service, timeout, heap, pending, scal, acc, counts, *outs, 0
        )
        kernel_times.append(time.perf_counter() - t0)
        assert done == n
    kernel_seconds = statistics.median(kernel_times)
    if not np.array_equal(outs[0][:n_ref], ref.start_ns):
        raise AssertionError("timed kernel run differs from the reference")
    waited = float(np.mean(outs[3] > 0))
    peak = int(acc[K.ACC_PEAK])

    process_seconds = median_seconds(
        lambda: CapacityModel(config).process(t_arrive, cls, latency), repeats
    )
    return {
        "kernel": n / kernel_seconds,
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
    args = parser.parse_args(argv)

    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}; one core; medians of {args.repeats}")
    print(f"# {args.n:,} requests per run; reference timed on the first {args.ref:,} requests "
          "of the same workload and scaled to requests/s")
    header = (f"{'servers':>8} {'load':>5} {'waited':>7} {'peak':>10} "
              f"{'kernel req/s':>14} {'process req/s':>14} {'reference req/s':>16} {'ratio':>7}")
    print(header)
    for servers in args.servers:
        for load in args.loads:
            r = run_case(args.n, servers, load, args.repeats, args.ref, args.seed)
            print(f"{servers:>8,} {load:>5.2f} {r['waited']:>7.1%} {r['peak']:>10,} "
                  f"{r['kernel'] / 1e6:>12.1f} M {r['process'] / 1e6:>12.1f} M "
                  f"{r['reference'] / 1e6:>14.2f} M {r['kernel'] / r['reference']:>6.0f}x",
                  flush=True)


if __name__ == "__main__":
    main()
