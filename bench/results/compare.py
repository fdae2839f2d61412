"""Comparing two runs (or two benchmark files) KPI by KPI, and deciding whether one regressed.

**Runs.** :func:`compare_runs` puts the KPIs of two ``summary.json`` documents side by side.
Each KPI has a direction (higher or lower is better) and a kind:

- *simulation* KPIs (target-time compliance, latency percentiles, backlog, cache hit ratio,
  storm alerts let through, ...) depend only on the scenario, its seed and the code: an
  unchanged build gives the same figures byte for byte, so any change is the code's doing.
  They are gated by ``max_regression`` (default 10%).
- *machine* KPIs (``events_per_second``, wall time, peak memory) depend on the machine and
  its load as well. ``events_per_second`` is gated, by the separate, wider ``max_slowdown``
  (default 50%), so that a deliberately slowed build (twice as slow, say) fails while most
  of a shared machine's noise does not; wall time and memory are shown for information (wall
  time also grows when a build simply simulates more events, which events per second
  already accounts for). Measured here: the one-second smoke day of an unchanged build ran
  0.8 to 1.4 s on a 2-core machine under a load of 4, so compare runs made on the same,
  quiet machine, prefer longer scenarios, and use ``make bench-compare`` (ratios to a
  reference timed alongside) to gate speed in CI.
- *information* rows (volumes, throttle action counts) are shown without a verdict.

A gated KPI that the base run measured and the new run did not (its section gone, or null
because nothing was measured) is a regression: a gate cannot pass on nothing. One measured
only by the new run is shown, not judged.

How much worse: for a lower-is-better KPI the factor is ``new / base``; for a
higher-is-better one ``base / new``; the KPI regressed when the factor exceeds
``1 + limit``. So 10% means "10% more latency", and equally "throughput divided by 1.1"
(about 9.1% fewer events per second): wall time and events per second agree.
``within_target_ratio`` is judged through its complement, the share of responses **outside**
target, because near 100% a relative change of the ratio hides a doubling of misses (99.5%
to 99.0% is a factor 2 in misses). A change smaller than the KPI's absolute tolerance (e.g.
0.01 percentage points of a share, 1 ms of latency) is never a regression, so a KPI at 0
does not fail on an invisible wobble.

**Benchmarks.** :func:`compare_benchmarks` reads two pytest-benchmark JSON files (``make
bench``). The time of every benchmark marked ``extra_info["role"] = "ours"`` is divided by
that of the ``"reference"`` benchmark of its group, measured in the same session on the same
machine (fastest rounds, see :func:`bench_ratios`); those ratios, not absolute times, are
compared, so a slower machine does not fail.

Limits are written ``10%``, ``0.1`` or ``10``: a number below 1 is a fraction, a number of
1 or more is a percentage (``1`` is 1%, ``0.5`` is 50%). See :func:`parse_limit`.

>>> base = {"latency_s": {"p99": 40.0}, "events_per_second": 100_000}
>>> new = {"latency_s": {"p99": 50.0}, "events_per_second": 95_000}
>>> [(r.kpi.name, round(r.worse_by, 3), r.regressed) for r in compare_runs(base, new).rows]
[('latency p99', 0.25, True), ('events per second', 0.053, False)]
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dccsim.core.errors import ConfigError

from .criteria import resolve_path

__all__ = [
    "KPI",
    "KPIS",
    "Row",
    "Comparison",
    "BenchRow",
    "BenchComparison",
    "CompareError",
    "DEFAULT_MAX_REGRESSION",
    "DEFAULT_MAX_SLOWDOWN",
    "parse_limit",
    "compare_runs",
    "compare_benchmarks",
    "bench_ratios",
    "load_summary",
    "load_benchmarks",
    "is_benchmark_file",
    "comparison_table",
    "bench_table",
]

#: simulation KPIs: deterministic for a scenario and seed
DEFAULT_MAX_REGRESSION = 0.10
#: machine KPIs and benchmark ratios: timed, so noisy on a shared machine
DEFAULT_MAX_SLOWDOWN = 0.50

Better = Literal["higher", "lower"] | None
Kind = Literal["simulation", "machine", "info"]


class CompareError(ConfigError):
    """Inputs that cannot be compared (missing file, not a summary, bad limit)."""


@dataclass(frozen=True, slots=True)
class KPI:
    """A figure of ``summary.json`` and how to judge it."""

    name: str
    path: str
    better: Better
    kind: Kind
    unit: str = ""
    #: changes at most this large (in the compared quantity) never count as a regression
    abs_tol: float = 0.0
    #: judge ``1 - value`` (lower is better) instead of the value itself
    complement: bool = False
    #: the smallest value a change is measured against, so that a near-zero base gives a
    #: finite, readable change (0 -> 5 requests: 400% worse against a floor of 1, not
    #: infinitely; 1e-12 s -> 1 s: 1000x against 1 ms, not 10^14 %)
    floor: float = 0.0

    @property
    def gated(self) -> bool:
        return self.better is not None and self.kind != "info"


KPIS: tuple[KPI, ...] = (
    KPI("requests", "requests", None, "info"),
    KPI("alerts", "alerts", None, "info"),
    KPI(
        "within target response time",
        "within_target_ratio",
        "higher",
        "simulation",
        "%",
        1e-4,
        complement=True,
        floor=1e-4,
    ),
    KPI("latency p50", "latency_s.p50", "lower", "simulation", "s", 1e-3, floor=1e-3),
    KPI("latency p95", "latency_s.p95", "lower", "simulation", "s", 1e-3, floor=1e-3),
    KPI("latency p99", "latency_s.p99", "lower", "simulation", "s", 1e-3, floor=1e-3),
    KPI("latency max", "latency_s.max", "lower", "simulation", "s", 1e-3, floor=1e-3),
    KPI("mean DSP wait", "mean_wait_s", "lower", "simulation", "s", 1e-3, floor=1e-3),
    KPI("peak DSP backlog", "peak_backlog", "lower", "simulation", "requests", floor=1),
    KPI("cache hit ratio", "cache.hit_ratio", "higher", "simulation", "%", 1e-4, floor=1e-4),
    KPI("cache bytes per entry", "cache.bytes_per_entry", "lower", "simulation", "B", floor=1),
    KPI("storm alerts forwarded", "storm_alerts_forwarded", "lower", "simulation", "alerts", floor=1),
    KPI("non-storm alerts throttled", "nonstorm_alerts_throttled", "lower", "simulation", "alerts", floor=1),
    KPI("alerts forwarded", "throttle.forwarded", None, "info", "alerts"),
    KPI("alerts throttled", "throttle.throttled", None, "info", "alerts"),
    KPI("alerts excluded", "throttle.excluded", None, "info", "alerts"),
    KPI("retries", "retries", None, "info", "requests"),
    KPI("events per second", "events_per_second", "higher", "machine", "events/s", floor=1),
    KPI("wall time", "wall_seconds", None, "machine", "s"),
    KPI("CPU time", "cpu_seconds", None, "machine", "s"),
    KPI("compile time", "compile_seconds", None, "machine", "s"),
    KPI("peak memory", "peak_rss_bytes", None, "machine", "B"),
)

_LIMIT = re.compile(r"^\s*(?P<num>(\d+(\.\d*)?|\.\d+))\s*(?P<pct>%)?\s*$")


def parse_limit(text: str | float, name: str = "--max-regression") -> float:
    """A regression limit as a fraction: ``"10%"`` -> 0.1, ``"0.1"`` -> 0.1, ``"10"`` -> 0.1.

    A bare number below 1 is a fraction, 1 or more a percentage; so ``"1"`` is 1% and
    ``"0.5"`` is 50%. Negative, empty or non-numeric values raise :class:`CompareError`.

    >>> [parse_limit(x) for x in ("10%", "0.1", "10", "0", "150%")]
    [0.1, 0.1, 0.1, 0.0, 1.5]
    """
    m = _LIMIT.match(str(text))
    if m is None:
        raise CompareError(f"{name}: got {str(text)!r}, expected a limit like 10%, 0.1 or 10 (percent)")
    value = float(m.group("num"))
    if m.group("pct") or value >= 1:
        value /= 100
    return round(value, 12)


def _number(summary: Mapping[str, Any], path: str) -> float | None:
    try:
        value = resolve_path(summary, path)
    except KeyError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Row:
    """One KPI of two runs; ``worse_by``: ``factor - 1`` (negative: better; None: not judged)."""

    kpi: KPI
    base: float | None
    new: float | None
    worse_by: float | None
    limit: float | None

    @property
    def ratio(self) -> float | None:
        """``new / base`` of the raw values (None when undefined)."""
        if self.base is None or self.new is None:
            return None
        if self.base == 0:
            return 1.0 if self.new == 0 else math.inf
        return self.new / self.base

    @property
    def regressed(self) -> bool:
        return self.worse_by is not None and self.limit is not None and self.worse_by > self.limit + 1e-12


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def comparison_to_dict(result: Comparison) -> dict[str, Any]:
    """The comparison as JSON data (``dccsim compare --json``); an infinite change is null
    with ``"infinite": true``."""
    return {
        "passed": result.passed,
        "max_regression": result.max_regression,
        "max_slowdown": result.max_slowdown,
        "notes": list(result.notes),
        "kpis": [
            {
                "name": r.kpi.name, "path": r.kpi.path, "kind": r.kpi.kind, "better": r.kpi.better,
                "base": r.base, "new": r.new, "ratio": _finite(r.ratio), "worse_by": _finite(r.worse_by),
                "infinite": r.worse_by is not None and math.isinf(r.worse_by),
                "limit": r.limit, "regressed": r.regressed,
            }  # fmt: skip
            for r in result.rows
        ],
    }


def _worse_by(kpi: KPI, base: float, new: float) -> float:
    if kpi.complement:
        base, new = 1 - base, 1 - new
        better: Better = "lower"
    else:
        better = kpi.better
    if abs(new - base) <= kpi.abs_tol:
        return 0.0
    worse, good = (new, base) if better == "lower" else (base, new)
    if good < kpi.floor:  # a near-zero base: measured against the KPI's floor
        worse, good = max(worse, kpi.floor), kpi.floor
    if good <= 0:
        return math.inf if worse > good else 0.0
    return worse / good - 1


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every KPI row and notes on whether the two runs are comparable at all."""

    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    max_regression: float
    max_slowdown: float

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.regressed)

    @property
    def passed(self) -> bool:
        return not self.regressions


_RUN_KEYS = ("scenario", "scale", "seed", "uplift", "demand", "shards")


def compare_runs(
    base: Any,
    new: Any,
    *,
    max_regression: float = DEFAULT_MAX_REGRESSION,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    kpis: tuple[KPI, ...] = KPIS,
) -> Comparison:
    """Side-by-side KPIs of two summaries (each a :class:`~dccsim.bench.results.summary.RunSummary`
    or summary.json's data; a KPI's path names its place in summary.json); rows missing from
    both are left out."""
    base, new = (s.to_builtins() if hasattr(s, "to_builtins") else s for s in (base, new))
    rows = []
    for kpi in kpis:
        b, n = _number(base, kpi.path), _number(new, kpi.path)
        if b is None and n is None:
            continue
        limit = None
        worse = None
        if kpi.gated:
            limit = max_slowdown if kpi.kind == "machine" else max_regression
            if b is not None and n is not None:
                worse = _worse_by(kpi, b, n)
            elif b is not None:  # measured before, not now: a gate cannot pass on nothing
                worse = math.inf
        rows.append(Row(kpi=kpi, base=b, new=n, worse_by=worse, limit=limit))
    notes = []
    rb, rn = base.get("run", {}), new.get("run", {})
    if isinstance(rb, Mapping) and isinstance(rn, Mapping):
        differ = [f"{k} {rb.get(k)!r} vs {rn.get(k)!r}" for k in _RUN_KEYS if rb.get(k) != rn.get(k)]
        if differ:
            notes.append("the runs differ in " + ", ".join(differ) + ": simulation KPIs are not like for like")
        if rb.get("dccsim_version") != rn.get("dccsim_version"):
            notes.append(f"dccsim {rb.get('dccsim_version')} vs {rn.get('dccsim_version')}")
    return Comparison(
        rows=tuple(rows),
        notes=tuple(notes),
        max_regression=max_regression,
        max_slowdown=max_slowdown,
    )


def load_summary(path: Path) -> dict[str, Any]:
    """A run's summary from its folder or from the ``summary.json`` file itself."""
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    if not file.is_file():
        raise CompareError(f"{path}: no summary.json (expected a run folder written by dccsim run)")
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{file}: not a readable summary.json ({exc})") from None
    if not isinstance(data, dict) or "requests" not in data:
        raise CompareError(f"{file}: not a dccsim summary (no 'requests' total)")
    return data


# ---------------------------------------------------------------------------------- benchmarks
def is_benchmark_file(path: Path) -> bool:
    """Whether ``path`` looks like a pytest-benchmark JSON file (``make bench`` output)."""
    path = Path(path)
    if not path.is_file() or path.name == "summary.json":
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("benchmarks"), list)


def load_benchmarks(path: Path) -> list[dict[str, Any]]:
    """The ``benchmarks`` list of a pytest-benchmark JSON file."""
    try:
        data = json.loads(Path(path).read_text())
        benches = data["benchmarks"]
        assert isinstance(benches, list)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise CompareError(f"{path}: not a pytest-benchmark JSON file (make bench writes one)") from None
    return benches


def bench_ratios(benchmarks: list[dict[str, Any]], stat: str = "min") -> dict[str, tuple[float, float, str]]:
    """``ours`` benchmark name -> (time, ours/reference ratio, reference name).

    Times are each benchmark's fastest round (``stat="min"``) by default: on a shared machine
    noise only ever adds time, so the fastest round is the most repeatable figure of the
    code's own cost, and the one least moved by a neighbour's load.

    A group holds one ``reference`` and any number of ``ours`` benchmarks (their
    ``extra_info["role"]``); a group without a reference gives no ratios. A benchmark that
    timed its reference itself, round by round, gives ``extra_info["paired_ratio"]``, which
    is used as it is (load that changes between two benchmarks cannot skew it).
    """
    by_group: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for b in benchmarks:
        role = (b.get("extra_info") or {}).get("role")
        if role in ("ours", "reference") and b.get("stats"):
            by_group.setdefault(str(b.get("group")), {}).setdefault(role, []).append(b)
    out = {}
    for roles in by_group.values():
        refs = roles.get("reference", [])
        if len(refs) != 1:
            continue
        ref = refs[0]
        ref_time = float(ref["stats"][stat])
        for b in roles.get("ours", []):
            t = float(b["stats"][stat])
            paired = (b.get("extra_info") or {}).get("paired_ratio")
            ratio = float(paired) if isinstance(paired, int | float) and paired > 0 else t / ref_time
            out[str(b["name"])] = (t, ratio, str(ref["name"]))
    return out


@dataclass(frozen=True, slots=True)
class BenchRow:
    name: str
    reference: str
    base_ratio: float | None
    new_ratio: float | None
    limit: float

    @property
    def factor(self) -> float | None:
        """How many times slower the new build is, relative to its reference (new / base ratio)."""
        if self.base_ratio is None or self.new_ratio is None:
            return None
        return self.new_ratio / self.base_ratio

    @property
    def regressed(self) -> bool:
        f = self.factor
        return f is not None and f > 1 + self.limit + 1e-12


@dataclass(frozen=True, slots=True)
class BenchComparison:
    rows: tuple[BenchRow, ...]
    limit: float

    @property
    def regressions(self) -> tuple[BenchRow, ...]:
        return tuple(r for r in self.rows if r.regressed)

    @property
    def passed(self) -> bool:
        return not self.regressions


def compare_benchmarks(
    base: list[dict[str, Any]],
    new: list[dict[str, Any]],
    *,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
) -> BenchComparison:
    """Ours/reference time ratios of two benchmark sessions side by side."""
    rb, rn = bench_ratios(base), bench_ratios(new)
    if not rb and not rn:
        raise CompareError("no benchmark with extra_info role 'ours' beside a 'reference' in its group")
    rows = []
    for name in sorted(set(rb) | set(rn)):
        b, n = rb.get(name), rn.get(name)
        rows.append(
            BenchRow(
                name=name,
                reference=(n or b)[2],
                base_ratio=b[1] if b else None,  # type: ignore[index]
                new_ratio=n[1] if n else None,
                limit=max_slowdown,
            )
        )
    return BenchComparison(rows=tuple(rows), limit=max_slowdown)


def session_ratios(benchmarks: list[dict[str, Any]]) -> list[str]:
    """Lines like ``decode: msgpack_numba / json_dataclasses = 0.043 (23.1x faster)``."""
    lines = []
    for name, (_, ratio, ref) in sorted(bench_ratios(benchmarks).items()):
        speed = f"{1 / ratio:.1f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"
        lines.append(f"{name} / {ref} = {ratio:.4g} ({speed})")
    return lines


# ---------------------------------------------------------------------------------- display
def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.4%}"
    if unit == "B" and value >= 1 << 20:
        return f"{value / (1 << 20):,.1f} MiB"
    if unit == "s":
        return f"{value:,.3f} s"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.1%}"


def describe(row: Row) -> str:
    """``latency p99 (latency_s.p99): 40 s -> 50 s, 25.0% worse (limit 10%)``."""
    k = row.kpi
    w = row.worse_by if row.worse_by is not None else 0.0
    if row.new is None:
        how = "not measured in the new run"
    else:
        how = f"responses outside target x{w + 1:.2f}" if k.complement else f"{_pct(w)} worse"
    return (
        f"{k.name} ({k.path}): {_fmt(row.base, k.unit)} -> {_fmt(row.new, k.unit)}, {how}"
        f" (limit {_pct(row.limit or 0.0)}{', machine-dependent' if k.kind == 'machine' else ''})"
    )


def row_change(r: Row) -> tuple[str, str, str]:
    """How a KPI row changed, in words: ``(change, tone, verdict)``; tone ``bad`` (regressed),
    ``warn`` (worse within the limit), ``good``, ``dim`` (not judged) or ``""``."""
    k = r.kpi
    if r.worse_by is None:
        return "-", "dim", "info" if not k.gated else "missing"
    if r.new is None:
        return "not measured", "bad" if r.regressed else "warn", "REGRESSED" if r.regressed else "ok"
    if r.worse_by > 0:
        text = f"misses x{r.worse_by + 1:.2f}" if k.complement else f"{_pct(r.worse_by)} worse"
        return text, "bad" if r.regressed else "warn", "REGRESSED" if r.regressed else "ok"
    if r.worse_by < 0:
        better = f"misses /{1 / (r.worse_by + 1):.2f}" if k.complement and r.worse_by > -1 else None
        return better or f"{_pct(-r.worse_by)} better", "good", "ok"
    return "same", "", "ok"


def fmt_kpi(value: float | None, unit: str) -> str:
    """A KPI's value with its unit, as the comparison shows it."""
    return _fmt(value, unit)


def comparison_table(cmp: Comparison, base_label: str = "base", new_label: str = "new") -> Any:
    """A :class:`rich.table.Table` of every KPI row."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title="dccsim compare", title_justify="left")
    for col, just in (
        ("KPI", "left"),
        (base_label, "right"),
        (new_label, "right"),
        ("new/base", "right"),
        ("better when", "left"),
        ("change", "right"),
        ("limit", "right"),
        ("verdict", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in cmp.rows:
        k = r.kpi
        label = Text(k.name)
        if k.kind == "machine":
            label.append(" (machine)", style="dim")
        ratio = "-" if r.ratio is None else ("inf" if math.isinf(r.ratio) else f"{r.ratio:.3f}")
        text, tone, verdict_text = row_change(r)
        style = {"bad": "red", "warn": "yellow", "good": "green", "dim": "dim"}.get(tone)
        change = Text(text, style=style) if style and tone != "dim" else Text(text)
        verdict = (
            Text(verdict_text, style="bold red")
            if verdict_text == "REGRESSED"
            else Text(verdict_text, style="dim")
            if tone == "dim"
            else Text(verdict_text)
        )
        t.add_row(
            label,
            _fmt(r.base, k.unit),
            _fmt(r.new, k.unit),
            ratio,
            f"{k.better} is better" if k.better else "-",
            change,
            "-" if r.limit is None else _pct(r.limit),
            verdict,
        )
    t.caption = (
        "change: how much worse new is than base (lower is better: new/base - 1; higher is better: "
        "base/new - 1); within target is judged by its misses, the share of responses outside "
        "target "
        "(limit: misses may grow by the limit). (machine): depends on the machine and its load."
    )
    t.caption_justify = "left"
    return t


def bench_table(cmp: BenchComparison) -> Any:
    from rich.table import Table
    from rich.text import Text

    t = Table(title="benchmark ratios (ours / reference, time; lower is better)", title_justify="left")
    for col in ("benchmark", "reference", "base ratio", "new ratio", "new/base", "verdict"):
        t.add_column(col, justify="left" if col in ("benchmark", "reference", "verdict") else "right")
    for r in cmp.rows:
        f = r.factor
        verdict = (
            Text("missing", style="dim")
            if f is None
            else Text("REGRESSED", style="bold red")
            if r.regressed
            else Text("ok")
        )
        t.add_row(
            r.name,
            r.reference,
            "-" if r.base_ratio is None else f"{r.base_ratio:.4g}",
            "-" if r.new_ratio is None else f"{r.new_ratio:.4g}",
            "-" if f is None else f"{f:.3f}",
            verdict,
        )
    t.caption = (
        f"limit: new/base <= {1 + cmp.limit:.2f} "
        "(each ratio is measured on one machine, so the two machines may differ)"
    )
    t.caption_justify = "left"
    return t
