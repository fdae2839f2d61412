"""Cost of the results layer: writing Arrow logs and recording latency histograms.

Run with ``python -m dccsim.bench.perf.logs`` (``--help`` for sizes). It times

- **log write**: :class:`dccsim.bench.results.logs.ArrowLogWriter` writing ``--rows`` request rows
  (:class:`dccsim.core.records.RequestRows`: every column of ``requests.arrow``, six of them
  dictionary columns), handed over in chunks of ``--chunk`` rows as a pipeline would, with no
  compression, LZ4 and Zstandard; to a file in a temporary directory (the page cache, not the
  disk, for files this size).
  The reference is the standard library's ``csv.writer`` on the first ``--csv-rows`` rows,
  including the conversion of the columns to Python objects it needs;
- **log read**: :func:`dccsim.bench.results.logs.read_log` of each file;
- **histogram record**: :meth:`dccsim.bench.results.histogram.LatencyHistogram.record` and
  :meth:`dccsim.bench.results.histogram.IntervalHistograms.record` on ``--values`` lognormal
  latencies, against NumPy's vectorised way to the same counts
  (``np.bincount(np.searchsorted(lower_bounds, v, side="right") - 1)`` plus min, max, sum).
  The counts are compared after every timed run.

Figures are medians of ``--repeats`` runs, JIT compiled before any timing; ``ratio`` is how
many times faster ours is than the reference in the same run.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from dccsim.bench.results import _kernels
from dccsim.bench.results.histogram import IntervalHistograms, LatencyHistogram, bucket_bounds
from dccsim.bench.results.logs import REQUESTS_SCHEMA, ArrowLogWriter, read_log, run_metadata
from dccsim.core.records import REQUEST_COLUMNS, RequestRows, vocabulary

DAY_NS = 86_400 * 10**9


def request_rows(n: int, seed: int = 1) -> RequestRows:
    """A day of ``n`` synthetic request rows (the shape, not the statistics, of a run)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, DAY_NS, n))
    latency = rng.lognormal(21, 1.5, n).astype(np.int64)
    period = t - t % (1800 * 10**9)

    def codes(name: str) -> np.ndarray:
        return rng.integers(0, len(vocabulary(name)), n).astype(np.uint8)

    return RequestRows(
        seq=np.arange(n, dtype=np.uint64),
        t_scheduled_ns=t,
        t_done_ns=t + latency,
        device=rng.integers(0, 2**63, n, dtype=np.uint64) | np.uint64(0x0012_4B00 << 32),
        srv=codes("srv"),
        role=codes("role"),
        command_variant=rng.integers(1, 9, n).astype(np.uint8),
        outcome=rng.choice(np.array([0, 0, 0, 1, 2, 3], np.uint8), n),
        response_code=rng.choice(np.array([0, 0, 0, 1, 2, 11], np.uint8), n),
        latency_ns=latency,
        within_target=latency < 30 * 10**9,
        period_start_ns=period,
        period_end_ns=period + 1800 * 10**9,
        originator=rng.integers(0, 16, n, dtype=np.uint64) | np.uint64(0x90B3_D51F_3001_0000),
        counter=np.arange(1, n + 1, dtype=np.uint64),
        request_class=codes("request_class"),
        attempt=np.zeros(n, np.uint8),
        invalid=rng.choice(np.array([0] * 19 + [1], np.uint8), n),
        wait_ns=latency // 4,
        backlog=rng.integers(0, 10_000, n),
    )


def _slice(rows: RequestRows, start: int, stop: int) -> RequestRows:
    return RequestRows(**{name: col[start:stop] for name, col in rows})


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def write_arrow(path: str, rows: RequestRows, chunk: int, compression: Any) -> int:
    n = len(rows)
    meta = run_metadata("bench", 1)
    log = ArrowLogWriter(path, REQUESTS_SCHEMA, meta, compression=compression)
    with log:
        for start in range(0, n, chunk):
            log.write_rows(_slice(rows, start, start + chunk))
    assert log.rows == n
    return log.bytes


def write_csv(path: str, rows: RequestRows) -> int:
    columns = []
    for column in REQUEST_COLUMNS:
        values = getattr(rows, column.name).tolist()
        if column.vocabulary is not None:
            names = vocabulary(column.vocabulary)
            columns.append([names[c] for c in values])
        else:
            columns.append(values)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([c.name for c in REQUEST_COLUMNS])
        w.writerows(zip(*columns, strict=True))
    return os.path.getsize(path)


def numpy_record(values: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    lower = bucket_bounds()[0]
    idx = np.searchsorted(lower, values, side="right") - 1
    counts = np.bincount(idx, minlength=lower.shape[0])
    return counts, int(values.min()), int(values.max()), int(values.sum(dtype=np.int64))


def bench_logs(args: argparse.Namespace) -> None:
    rows = request_rows(args.rows)
    sub = _slice(rows, 0, args.csv_rows)
    print(f"log write: {args.rows:,} request rows in chunks of {args.chunk:,}; "
          f"csv reference on {args.csv_rows:,} rows")  # fmt: skip
    header = f"{'format':<10} {'write ns/row':>13} {'B/row':>7} {'read ns/row':>12} {'ratio':>7}"
    print(header)
    with tempfile.TemporaryDirectory(prefix="dccsim-bench-") as tmp:
        csv_path = os.path.join(tmp, "requests.csv")
        csv_s, csv_bytes = median_time(lambda: write_csv(csv_path, sub), args.repeats)
        csv_ns = csv_s / args.csv_rows * 1e9
        for compression in (None, "lz4", "zstd"):
            path = os.path.join(tmp, f"requests-{compression}.arrow")
            s, size = median_time(
                lambda: write_arrow(path, rows, args.chunk, compression),  # noqa: B023
                args.repeats,
            )
            r, table = median_time(lambda: read_log(path), args.repeats)  # noqa: B023
            assert table.num_rows == args.rows
            del table
            ns = s / args.rows * 1e9
            print(
                f"{str(compression):<10} {ns:>13.1f} {size / args.rows:>7.1f} "
                f"{r / args.rows * 1e9:>12.1f} {csv_ns / ns:>6.0f}x"
            )
        print(f"{'csv':<10} {csv_ns:>13.1f} {csv_bytes / args.csv_rows:>7.1f} {'':>12} {'1':>6}x")


def bench_histograms(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(2)
    values = rng.lognormal(21, 1.5, args.values).astype(np.int64)
    t = np.sort(rng.integers(0, DAY_NS, args.values))
    _kernels.warm_up()

    def ours() -> LatencyHistogram:
        h = LatencyHistogram()
        h.record(values)
        return h

    def intervals() -> IntervalHistograms:
        ih = IntervalHistograms(900 * 10**9, 96)
        ih.record(t, values)
        return ih

    ref_s, (counts, vmin, vmax, vsum) = median_time(lambda: numpy_record(values), args.repeats)
    our_s, h = median_time(ours, args.repeats)
    int_s, ih = median_time(intervals, args.repeats)
    assert np.array_equal(h.counts, counts) and (h.min, h.max, h.sum) == (vmin, vmax, vsum)
    assert np.array_equal(ih.counts.sum(axis=0), counts)
    n = args.values
    median_ms = np.median(values) / 1e6
    print(f"\nhistogram record: {n:,} lognormal latencies (median {median_ms:.1f} ms)")
    print(f"{'method':<38} {'ns/value':>9} {'ratio':>7}")
    print(f"{'numpy searchsorted + bincount':<38} {ref_s / n * 1e9:>9.2f} {'1':>6}x")
    print(f"{'LatencyHistogram.record':<38} {our_s / n * 1e9:>9.2f} {ref_s / our_s:>6.1f}x")
    print(f"{'IntervalHistograms.record (96 x 15 min)':<38} {int_s / n * 1e9:>9.2f} "
          f"{ref_s / int_s:>6.1f}x")  # fmt: skip
    p_s, _ = median_time(lambda: ih.percentiles_per_interval([50, 90, 99, 99.9]), args.repeats)
    print(f"percentiles_per_interval (96 intervals x 4 q): {p_s * 1e3:.2f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dccsim.bench.perf.logs", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="request rows to write")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="rows per write call")
    parser.add_argument("--csv-rows", type=int, default=200_000, help="rows for the csv reference")
    parser.add_argument("--values", type=int, default=10_000_000, help="latencies to record")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    args = parser.parse_args(argv)
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"pyarrow {pa.__version__}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    bench_logs(args)
    bench_histograms(args)


if __name__ == "__main__":
    main()
