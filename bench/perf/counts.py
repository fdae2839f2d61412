"""Instructions and branches per operation of the throttle and cache kernels and their floors.

Run with ``python -m dccsim.bench.perf.counts`` (needs ``valgrind``; ``--help`` for sizes).
Where a machine gives no hardware counters (a virtual machine usually does not), this is how
to see what bounds a kernel: how many instructions and branches an operation costs, beside
the floors the timing benchmarks print (:mod:`dccsim.bench.perf.throttle`,
:mod:`dccsim.bench.perf.cache`), on the same kind of workload.

Each item runs in a child process under valgrind's cachegrind four times (after a first run,
not counted, that compiles the kernels for valgrind's CPU): its work done once
and twice, and its set-up alone once and twice (a fresh state before each run of the work).
``(work twice - work once) - (set-up twice - set-up once)`` is one run of the work alone,
free of start-up, imports, compilation and workload generation; divided by its operations.
Threads other than the main one are kept to one (BLAS, OpenMP, Numba), so the counts repeat
to the instruction.

Columns: ``instr`` instructions executed, ``branches`` conditional branches, ``mispred``
those mispredicted by cachegrind's simulated predictor (a simple model, not this CPU's: read
it as a relative figure). Items:

- throttle kernel, fixed window and GCRA: :meth:`dccsim.throttle.Throttle.process` over
  ``--alerts`` alerts of :func:`dccsim.loadgen.alert_trace.make_alert_trace` (``--devices``
  devices), the benchmark's policy, a presized table, input checks included;
- throttle floor: the benchmark's prefetched gather/scatter over the same alerts;
- cache kernel: :meth:`dccsim.cache.ReadingsCache.apply` over ``--ops`` operations of the
  cache benchmark's stream (``--keys`` keys), batches of 65,536, input checks included;
- cache read-through: :meth:`dccsim.cache.readthrough.ReadThroughCache.read_through` (the
  kernel a day's cache stage runs) over that stream's lookups, each miss stored a second
  later, batches of 65,536;
- cache floor and walk: the cache benchmark's bare prefetched open-addressing table and the
  kernel's lookup walk without its logic, ``--ops`` operations over ``--keys`` keys.

``--python`` counts another install (its interpreter; this file is run by it, so the items
must exist there too): how a change moved the counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EVENTS = ("Ir", "Bc", "Bcm", "Bi", "Bim")

#: item name -> (label, kind of operation)
ITEMS = {
    "throttle-fixed": ("throttle kernel (fixed window)", "alert"),
    "throttle-gcra": ("throttle kernel (gcra)", "alert"),
    "throttle-floor": ("throttle floor (prefetched gather/scatter)", "alert"),
    "cache-kernel": ("cache kernel (ReadingsCache.apply)", "op"),
    "cache-readthrough": ("cache read-through (a day's lookups)", "lookup"),
    "cache-floor": ("cache floor (bare prefetched table)", "op"),
    "cache-walk": ("cache lookup walk (index line, record)", "op"),
}


def _throttle_item(
    name: str, alerts: int, devices: int
) -> tuple[int, Callable[[], None], Callable[[], None]]:
    import numpy as np
    from dccsim.bench.perf.throttle import POLICY, gather_scatter
    from dccsim.loadgen.alert_trace import make_alert_trace
    from dccsim.throttle import Throttle, ThrottleOutput, ThrottlePolicy
    from dccsim.throttle.policy import compile_policy
    from dccsim.throttle.tuning import dense_keys

    tr = make_alert_trace(alerts, devices, 20, seed=1)
    t, d, c = tr.t_ns, tr.device, tr.alert_code
    n = len(tr)
    policy = POLICY
    if name == "throttle-gcra":
        policy = ThrottlePolicy(**{**POLICY.to_dict(), "policy": "gcra", "overrides": {}})
    _, keys = dense_keys(d, c, compile_policy(policy).code_class)
    out = ThrottleOutput.empty(n)
    throttles = [Throttle(policy, initial_keys=keys) for _ in range(2)]  # made outside the count
    table = np.zeros_like(throttles[0]._table)
    gather_scatter(t[:10], d[:10], c[:10], table, *ThrottleOutput.empty(10), 16)
    Throttle(policy).process(t[:10], d[:10], c[:10])
    box: list = []

    def setup() -> None:
        if name == "throttle-floor":
            table.fill(0)
        else:
            box[:] = [throttles.pop()]

    def work() -> None:
        if name == "throttle-floor":
            gather_scatter(t, d, c, table, *out, 16)
        else:
            box[0].process(t, d, c, out=out)

    return n, setup, work


def _cache_item(name: str, ops: int, keys: int) -> tuple[int, Callable[[], None], Callable[[], None]]:
    import numpy as np
    from dccsim.bench.perf.cache import (
        _open_addressing,
        _two_lines,
        run_kernel,
        workload,
    )
    from dccsim.cache import OP_LOOKUP, LookupResult, ReadingsCache
    from dccsim.cache.readthrough import ReadThroughCache

    if name in ("cache-kernel", "cache-readthrough"):
        cols, _ = workload(ops, keys, 48, 1.7, 1024, 20240601)
        ReadingsCache.warm_up()
        caches = [ReadingsCache(retention_hours=48, capacity=keys) for _ in range(2)]
        box: list = []
        if name == "cache-readthrough":
            # the stream's lookups; a miss is stored when its answer comes, a second later
            look = cols[0] == OP_LOOKUP
            t, dev, srv, start, end = (c[look] for c in cols[1:6])
            later = t + 10**9
            readers = [ReadThroughCache(cache) for cache in caches]

            def setup() -> None:
                box[:] = [readers.pop()]

            def work() -> None:
                for lo in range(0, len(t), 65_536):
                    s = slice(lo, lo + 65_536)
                    box[0].read_through(t[s], dev[s], srv[s], start[s], end[s], later[s])

            return len(t), setup, work
        n = len(cols[0])
        out = LookupResult.empty(n)

        def setup() -> None:
            box[:] = [caches.pop()]

        def work() -> None:
            run_kernel(cols, box[0], 65_536, out)

        return n, setup, work
    rng = np.random.default_rng(1)
    pool = rng.integers(1, 2**63, keys).astype(np.uint64)
    order = rng.integers(0, keys, ops)
    if name == "cache-floor":
        stream = pool[order]
        table = np.zeros(2 * (1 << (2 * keys - 1).bit_length()), np.uint64)
        _open_addressing(stream[:100], table, 16)
        return ops, lambda: table.fill(0), lambda: _open_addressing(stream, table, 16)
    index = np.zeros(keys * 5 // 4, np.uint64)
    index[rng.permutation(len(index))[:keys]] = rng.permutation(keys)
    slots = rng.integers(0, len(index), ops)
    arena = np.ones(keys * 7, np.uint32)
    _two_lines(slots[:100], index, arena)
    return ops, lambda: None, lambda: _two_lines(slots, index, arena)


def _child(argv: list[str]) -> None:
    name, reps, setup_only, a, b = argv[0], int(argv[1]), argv[2] == "1", int(argv[3]), int(argv[4])
    make = _throttle_item if name.startswith("throttle") else _cache_item
    n, setup, work = make(name, a, b)
    for _ in range(reps):
        setup()
        if not setup_only:
            work()
    print(n)


def _cachegrind(python: str, out: Path, args: list[str]) -> tuple[list[int], int]:
    """Totals of one child process under cachegrind, and the operations it reported."""
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
    }
    cmd = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--branch-sim=yes",
        f"--cachegrind-out-file={out}", python, str(Path(__file__).resolve()), "--child", *args,
    ]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"valgrind {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return [int(x) for x in line.split()[1:]], int(r.stdout.split()[-1])
    raise SystemExit(f"{out}: no summary line (is this cachegrind's output?)")


def count_all(
    python: str, names: list[str], sizes: dict[str, tuple[int, int]], tmp: Path, workers: int
) -> dict[str, dict[str, float]]:
    """Per-operation counts of each item (see the module docstring), ``workers`` at a time."""

    def run(name: str, reps: int, setup_only: str) -> tuple[list[int], int]:
        a, b = sizes[name]
        return _cachegrind(python, tmp / f"{name}.{reps}.{setup_only}",
                           [name, str(reps), setup_only, str(a), str(b)])

    with ThreadPoolExecutor(workers) as pool:
        # first a run under cachegrind that is not counted: Numba keys its cache by the CPU,
        # and valgrind's is not the machine's, so this compiles the kernels (every
        # specialization the work uses) that the counted runs then load
        list(pool.map(lambda name: run(name, 1, "0"), names))
        jobs = {
            (name, reps, so): pool.submit(run, name, reps, so)
            for name in names for reps in (1, 2) for so in ("0", "1")
        }
        tot = {key: job.result() for key, job in jobs.items()}
    out = {}
    for name in names:
        n = tot[name, 1, "0"][1]
        one = [
            (w2 - w1) - (s2 - s1)
            for w1, w2, s1, s2 in zip(
                tot[name, 1, "0"][0], tot[name, 2, "0"][0], tot[name, 1, "1"][0],
                tot[name, 2, "1"][0], strict=True,
            )
        ]
        out[name] = {e: v / n for e, v in zip(EVENTS, one, strict=True)}
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1:])
        return
    ap = argparse.ArgumentParser(
        prog="python -m dccsim.bench.perf.counts", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--alerts", type=int, default=1_000_000, help="throttle items: alerts")
    ap.add_argument("--devices", type=int, default=100_000, help="throttle items: devices")
    ap.add_argument("--ops", type=int, default=1_000_000, help="cache items: operations")
    ap.add_argument("--keys", type=int, default=100_000, help="cache items: keys")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of the install to count")
    ap.add_argument("--only", action="append", choices=sorted(ITEMS), help="these items only")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="valgrind processes at a time (default: one per core)")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        ap.exit(2, "counts: valgrind not found: install it (Debian: apt-get install valgrind)\n")
    names = args.only or list(ITEMS)
    sizes = {
        name: (args.alerts, args.devices) if name.startswith("throttle") else (args.ops, args.keys)
        for name in names
    }
    print(f"# cachegrind, per operation, one run of each item's work; {args.python}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dccsim-counts-") as tmp:
        counts = count_all(args.python, names, sizes, Path(tmp), args.workers)
    print(f"{'':46s} {'instr':>8s} {'branches':>9s} {'mispred':>8s}")
    for name in names:
        label, unit = ITEMS[name]
        c = counts[name]
        print(f"{label + ', per ' + unit:46s} {c['Ir']:8.1f} {c['Bc']:9.2f} {c['Bcm']:8.3f}")

if __name__ == "__main__":
    main()
