"""Seed replicates: one scenario run K times with seeds ``seed, seed + 1, ..., seed + K - 1``,
and how much its headline figures move between seeds.

:func:`replicates` runs the K days as parallel tasks (:mod:`dccsim.bench.tasks`: local
worker processes or Ray tasks), each into ``OUT/seed{S}/`` (a whole run folder, with its
own exit-criteria verdict), then writes ``OUT/replicates.json`` and ``OUT/report.html``
(:func:`dccsim.bench.results.report.build_replicates_report`): for each headline KPI
(:data:`KPIS`) the mean, the sample standard deviation and a 95% confidence interval for the
mean, ``mean +- t(0.975, K - 1) * sd / sqrt(K)`` (Student t with K - 1 degrees of freedom,
:func:`t_quantile`). An interval needs two runs at least: K = 1 is refused.

The seed is the only thing that changes between replicates: the interval says how far the
figure of one day could fall from the mean of many days drawn alike, not how well the model
matches the DCC.

>>> result = replicates("smoke", 5, "runs/smoke-x5", scale=0.0002, workers=2)  # doctest: +SKIP
>>> result.stats["within_target_ratio"].ci95                                    # doctest: +SKIP
(0.9741..., 0.9790...)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dccsim.core.errors import ConfigError

from .results.summary import RunSummary
from .sweeps import run_setting
from .tasks import TaskRunner, default_workers

__all__ = ["KPIS", "MAX_REPLICATES", "Kpi", "KpiStats", "ReplicatesResult", "interval", "replicates", "t_quantile"]

#: the most replicates one command runs
MAX_REPLICATES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Kpi:
    """A headline figure of a run: its key in ``replicates.json``, its label, how to read it
    from a summary (None when the run did not measure it) and how to show it (``pct``,
    ``s``, ``int``)."""

    key: str
    label: str
    read: Callable[[RunSummary], float | None]
    unit: str


def _throttled_share(s: RunSummary) -> float | None:
    return s.alert_actions.get("throttled", 0) / s.alerts if s.alerts else None


#: the headline KPIs: the share of requests answered within their target time, latency p50 and
#: p99, the DSP's peak backlog, the readings cache's hit ratio (its share of reads answered
#: without a device request) and the share of alerts Alert Storm Protection throttled
KPIS: tuple[Kpi, ...] = (
    Kpi("within_target_ratio", "within target response time", lambda s: s.within_target_ratio, "pct"),
    Kpi("latency_p50_s", "latency p50", lambda s: s.latency_s.p50, "s"),
    Kpi("latency_p99_s", "latency p99", lambda s: s.latency_s.p99, "s"),
    Kpi("peak_backlog", "peak DSP backlog", lambda s: float(s.peak_backlog), "int"),
    Kpi("cache_hit_ratio", "cache hit ratio", lambda s: s.cache.hit_ratio if s.cache is not None else None, "pct"),
    Kpi("throttled_share", "alerts throttled", _throttled_share, "pct"),
)


# ---------------------------------------------------------------------------- statistics


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with ``df`` degrees of freedom (a whole number): the finite
    series of Abramowitz and Stegun 26.7.3 and 26.7.4, exact up to rounding."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 0.0
        if df > 1:
            total = 1.0
            for k in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
            total *= s * math.cos(theta)
        return 2.0 / math.pi * (theta + total)
    term = total = 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` (an integer >= 1) degrees of freedom, for
    ``0.5 <= p < 1``: ``t_quantile(0.975, 4)`` = 2.776445... (bisection on the exact CDF)."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"t_quantile: df: got {df!r}, expected an integer >= 1")
    if not 0.5 <= p < 1:
        raise ValueError(f"t_quantile: p: got {p!r}, expected 0.5 <= p < 1")
    target = 2 * p - 1  # P(|T| < t)
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, df) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class KpiStats:
    """One KPI over the replicates that measured it: ``n`` values, their mean, sample standard
    deviation, the 95% confidence interval of the mean, least and greatest (None where
    undefined: no value, or one)."""

    n: int
    mean: float | None
    sd: float | None
    ci95: tuple[float, float] | None
    min: float | None
    max: float | None
    values: tuple[float | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "ci95": list(self.ci95) if self.ci95 else None,
                "min": self.min, "max": self.max, "values": list(self.values)}  # fmt: skip


def interval(values: Sequence[float | None], confidence: float = CONFIDENCE) -> KpiStats:
    """Mean, sample standard deviation and the Student-t confidence interval of the mean of
    the values that are not None (``n - 1`` degrees of freedom)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if not n:
        return KpiStats(0, None, None, None, None, None, tuple(values))
    shift = xs[0]  # sums of differences: equal values give a mean of exactly that value, sd 0
    mean = shift + math.fsum(x - shift for x in xs) / n
    if n < 2:
        return KpiStats(n, mean, None, None, min(xs), max(xs), tuple(values))
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return KpiStats(n, mean, sd, (mean - half, mean + half), min(xs), max(xs), tuple(values))


# ---------------------------------------------------------------------------- the runs


@dataclass
class ReplicatesResult:
    """What :func:`replicates` returns: the seeds, each run's summary (as its summary.json
    holds it), the KPIs' statistics, and the folder."""

    scenario: str
    seeds: list[int]
    summaries: list[RunSummary]
    stats: dict[str, KpiStats]
    out_dir: Path
    doc: dict[str, Any]

    @property
    def failed(self) -> list[tuple[int, RunSummary]]:
        """The replicates whose exit criteria failed, by seed."""
        return [(seed, s) for seed, s in zip(self.seeds, self.summaries, strict=True) if not _passed(s)]

    @property
    def passed(self) -> bool:
        return not self.failed


def _passed(s: RunSummary) -> bool:
    crit = s.exit_criteria
    return bool(getattr(crit, "passed", True))


def replicates(
    scenario: str | os.PathLike[str],
    k: int,
    out: str | os.PathLike[str],
    *,
    seed: int | None = None,
    scale: float | None = None,
    uplift: float | None = None,
    demand: float | None = None,
    shards: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    compression: str | None = "lz4",
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplicatesResult:
    """Run ``scenario`` ``k`` times (``k >= 2``) with seeds ``seed`` (default: the scenario's)
    to ``seed + k - 1``, each into ``out/seed{S}``, ``workers`` at a time on ``backend``
    (:mod:`dccsim.bench.tasks`), and write ``out/replicates.json`` and ``out/report.html``.
    ``overrides`` are dotted-key settings (``--set``) for every run.

    Every replicate is loaded, and ``out`` checked, before the first runs: a bad value is a
    :class:`ConfigError` naming it, raised before any work. ``progress(done, k)`` is called
    as replicates finish.
    """
    from dccsim.loadgen.scenario import load_scenario

    from .compose import check_out, load_run

    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_REPLICATES:
        raise ConfigError(key="replicates", value=k,
                          expected=f"an integer from 2 to {MAX_REPLICATES} (an interval needs two runs)")  # fmt: skip
    source = os.fspath(scenario)
    out_dir = Path(out)
    text = load_scenario(source)[1]
    base = {"scenario": source, "text": text, "scale": scale, "uplift": uplift, "demand": demand, "shards": shards,
            "settings": dict(overrides or {})}  # fmt: skip
    first = load_run(**base, seed=seed)
    s0 = first.scenario.seed
    seeds = list(range(s0, s0 + k))
    jobs = []
    for s in seeds:
        load_run(**base, seed=s)  # every replicate checked before any runs
        jobs.append({**base, "seed": s, "compression": compression, "out": (out_dir / f"seed{s}").absolute()})
    check_out(out_dir)
    if workers is None and backend == "local":
        workers = default_workers()
    with TaskRunner(backend, workers=None if workers is None else min(workers, k), address=address) as tasks:
        summaries: list[RunSummary] = tasks.map(run_setting, jobs, progress=progress)
    stats = {kpi.key: interval([kpi.read(s) for s in summaries]) for kpi in KPIS}
    doc = _document(first, seeds, summaries, stats)
    (out_dir / "replicates.json").write_text(json.dumps(doc, indent=2) + "\n")
    from .results.report import build_replicates_report

    build_replicates_report(out_dir, doc)
    return ReplicatesResult(source, seeds, summaries, stats, out_dir, doc)


def _document(run: Any, seeds: list[int], summaries: list[RunSummary], stats: Mapping[str, KpiStats]) -> dict[str, Any]:
    """``replicates.json``: what ran, each KPI's statistics, and each replicate's verdict."""
    s = run.scenario
    runs = []
    for seed, summary in zip(seeds, summaries, strict=True):
        crit = summary.exit_criteria
        failed = [f"{c.expression} (actual {c.actual:g})" if c.actual is not None else c.expression
                  for c in getattr(crit, "criteria", ()) if not c.passed]  # fmt: skip
        runs.append({
            "seed": seed, "folder": f"seed{seed}", "passed": _passed(summary),
            "headline": getattr(crit, "headline", None), "failed_criteria": failed,
            "kpis": {kpi.key: kpi.read(summary) for kpi in KPIS}, "wall_seconds": summary.wall_seconds,
        })  # fmt: skip
    return {
        "scenario": s.name,
        "scale": s.scale,
        "uplift": s.capacity.uplift,
        "demand": s.capacity.demand,
        "settings": dict(run.settings),
        "replicates": len(seeds),
        "seeds": seeds,
        "confidence": CONFIDENCE,
        "method": f"mean +- t({0.5 + CONFIDENCE / 2:g}, K-1) * sd / sqrt(K); sd the sample standard deviation",
        "kpis": {kpi.key: {"label": kpi.label, "unit": kpi.unit, **stats[kpi.key].to_dict()} for kpi in KPIS},
        "runs": runs,
    }
