"""Benchmark: a MessagePack request batch decoded into columns, against json + dataclasses.

Both sides do the same work: bytes of N requests in, a struct of NumPy columns out (device,
originator, counter, SRV code, role code, command variant, period start/end, scheduled time,
execution time). The msgspec path decodes a compact ``array_like`` MessagePack batch into
``gc=False`` rows and fills each column in one C-level pass (printed too), and the default
path parses the same bytes with a Numba kernel straight into columns; the reference parses JSON with
the standard library, builds a dataclass per request and fills the same columns. Also
reported: DUIS XML requests/s (lxml, typed bodies), on the example requests.

Run: ``python -m dccsim.bench.perf.decode [--n 1000000] [--repeat 5]``. Figures are medians;
the ratio is what carries across machines.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dccsim.core import duisxml, wire
from dccsim.core.catalogue import catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.messages import RequestRow
from dccsim.core.records import ROLES
from dccsim.core.wire import decode_rows

_ROLE_CODE = {r: i for i, r in enumerate(ROLES)}


@dataclass
class JsonRequest:
    originator: int
    target: int
    counter: int
    command_variant: int
    srv: str
    role: str
    t_scheduled_ns: int
    period_start_ns: int
    period_end_ns: int
    execution_ns: int


def make_rows(n: int, seed: int = 1) -> list[RequestRow]:
    rng = np.random.default_rng(seed)
    srvs = ("4.8.1", "4.6.1", "4.8.3", "4.1.1")
    targets = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) | np.uint64(1 << 63)
    day = 1_795_000_000 * 10**9
    return [
        RequestRow(
            originator=0x90B3D51F30070001,
            target=int(targets[i]),
            counter=i + 1,
            command_variant=1,
            srv=srvs[i & 3],
            role="MDR",
            t_scheduled_ns=day + i * 1000,
            period_start_ns=day - 86_400 * 10**9,
            period_end_ns=day,
        )
        for i in range(n)
    ]


def json_reference(data: bytes) -> RequestBatch:
    """The same work with the standard library: json.loads, a dataclass per request, columns."""
    objs = [JsonRequest(**d) for d in json.loads(data)]
    codes = catalogue().code_of
    return RequestBatch(
        device=np.array([o.target for o in objs], dtype=np.uint64),
        originator=np.array([o.originator for o in objs], dtype=np.uint64),
        counter=np.array([o.counter for o in objs], dtype=np.uint64),
        srv=np.array([codes[o.srv] for o in objs], dtype=np.uint8),
        role=np.array([_ROLE_CODE[o.role] for o in objs], dtype=np.uint8),
        command_variant=np.array([o.command_variant for o in objs], dtype=np.uint8),
        period_start_ns=np.array([o.period_start_ns for o in objs], dtype=np.int64),
        period_end_ns=np.array([o.period_end_ns for o in objs], dtype=np.int64),
        t_scheduled_ns=np.array([o.t_scheduled_ns for o in objs], dtype=np.int64),
        execution_ns=np.array([o.execution_ns for o in objs], dtype=np.int64),
    )


def _median_time(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rows = make_rows(args.n)
    packed = wire.encode_rows(rows)
    as_json = json.dumps([{f: getattr(r, f) for f in r.__struct_fields__} for r in rows]).encode()
    del rows
    ours = RequestBatch.from_msgpack(packed)
    ref = json_reference(as_json)
    for k in ("device", "originator", "counter", "srv", "role", "period_start_ns", "t_scheduled_ns"):
        assert np.array_equal(getattr(ours, k), getattr(ref, k)), k
    t_ours = _median_time(lambda: RequestBatch.from_msgpack(packed), args.repeat)
    t_msgspec = _median_time(lambda: RequestBatch.from_rows(decode_rows(packed)), args.repeat)
    t_ref = _median_time(lambda: json_reference(as_json), max(1, args.repeat // 2))
    print(
        f"requests per batch           {args.n:,}  "
        f"(MessagePack {len(packed) / args.n:.1f} B/request, JSON {len(as_json) / args.n:.1f} B/request)"
    )
    print(
        f"MessagePack -> columns        {args.n / t_ours:>12,.0f} requests/s  "
        f"({t_ours / args.n * 1e9:5.0f} ns/request; Numba parser, median of {args.repeat})"
    )
    print(
        f"  via msgspec typed rows      {args.n / t_msgspec:>12,.0f} requests/s  "
        f"({t_msgspec / args.n * 1e9:5.0f} ns/request; the error-reporting path)"
    )
    print(
        f"json + dataclasses -> columns {args.n / t_ref:>12,.0f} requests/s  ({t_ref / args.n * 1e9:5.0f} ns/request)"
    )
    print(f"ratio (ours / json)           {t_ref / t_ours:>12.1f}x   (msgspec path: {t_ref / t_msgspec:.1f}x)")
    examples = Path(__file__).resolve().parents[2] / "examples" / "requests"
    docs = [p.read_bytes() for p in sorted(examples.glob("0[12]*.xml"))]
    reps = 2000
    t_xml = _median_time(lambda: [duisxml.decode_request_xml(d) for d in docs for _ in range(reps)], 3)
    print(f"DUIS XML -> ServiceRequest   {len(docs) * reps / t_xml:>14,.0f} requests/s  (lxml, typed bodies)")
    reqs = [duisxml.decode_request_xml(d) for d in docs] * reps
    t_xml_out = _median_time(lambda: [duisxml.encode_request_xml(r) for r in reqs], 3)
    print(f"ServiceRequest -> DUIS XML   {len(reqs) / t_xml_out:>14,.0f} requests/s")


if __name__ == "__main__":
    main()
