"""``report.html``: one self-contained page that tells a tester how the simulated day went.

:func:`build_report` writes ``report.html`` into a run folder (or elsewhere) from the run's
typed summary (:class:`~.summary.RunSummary`): the one the caller holds (the process that
ran the day), else the folder's ``summary.json``. The page needs nothing but a browser:
charts are inline SVG drawn in Python by :mod:`.charts` (no scripts, fonts, images or style
sheets from anywhere else), so it opens offline, prints, and can be attached to a test-phase
record as it is.

From top to bottom: the verdict (``meets targets`` / ``fails N criteria``), the key figures,
the exit criteria, traffic and backlog over the day, latency and target-time compliance over
the day, compliance by SRV (worst first), the readings cache, Alert Storm Protection, and the
run's details. Times of day are HH:MM in UTC from the start of the simulated day; series are
15-minute intervals. Every chart point carries a tooltip with its interval and values.

:func:`render_report` joins one function per part of the page, defined below it in page order;
each takes the summary (or the typed sections it needs) and returns its HTML. Sections some
runs lack are handled where they are shown: ``run`` and ``exit_criteria`` may be unset,
``cache`` and ``throttle`` None (a load run whose server gave no statistics: the cache's
figures read ``n/a``, the alert counts come from ``alert_actions``). What the page shows is
decided here; how it is drawn (value formatting, tiles, tables, charts and their CSS) is
:mod:`.charts`.

Exit criteria come from the summary (``exit_criteria``, as :func:`criteria.to_dict` stores
them); a summary without them is judged here against the criteria of the scenario the run
recorded, when there is one. The scenario (request classes' target times, description) is
the one the caller passes, else the one recorded in the folder's ``requests.arrow``.

One concern, what the report page shows (how it is drawn is :mod:`.charts`), which is why the
module is longer than most.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from dccsim.core.errors import ConfigError
from msgspec import UNSET

from . import criteria as crit
from .charts import (
    CDF_SHARES,
    CSS,
    PALETTE,
    Series,
    as_number,
    cdf_chart,
    esc,
    figure,
    fmt_bytes,
    fmt_eui,
    fmt_int,
    fmt_pct,
    fmt_secs,
    fmt_si,
    nice_step,
    section,
    table,
    tile,
    time_chart,
)
from .summary import CacheSection, ClassLatency, RunInfo, RunSummary, SummaryError, ThrottleSection, TopDevice
from .summary import Series as SummarySeries

if TYPE_CHECKING:
    from dccsim.loadgen.scenario import Scenario

__all__ = ["build_report", "build_replicates_report", "render_report", "render_replicates", "ReportError"]

NS = 1_000_000_000


class ReportError(ConfigError):
    """A run folder the report cannot be built from."""


# ------------------------------------------------------------------------------ inputs
def _ratio(a: Sequence[Any], b: Sequence[Any]) -> list[float | None]:
    """``a[i] / b[i]`` for each interval; None where either is missing or ``b[i]`` is 0."""
    out: list[float | None] = []
    for i in range(max(len(a), len(b))):
        num = as_number(a[i]) if i < len(a) else None
        den = as_number(b[i]) if i < len(b) else None
        out.append(None if not den or num is None else num / den)
    return out


def _criterion_refs(result: crit.CriteriaResult | None, path: str, label: str) -> list[tuple[float, str]]:
    """Reference lines (threshold, label) for a chart: the exit criteria on ``path``."""
    if result is None:
        return []
    return [
        (v.criterion.threshold, f"exit criterion: {label} {v.criterion.op} {v.criterion.threshold:g}")
        for v in result.verdicts
        if v.criterion.path == path
    ]


def _run_info(summary: RunSummary) -> RunInfo | None:
    """The run's metadata, or None for a summary without it."""
    return None if summary.run is UNSET else summary.run


def _scenario(run_dir: Path, run: RunInfo | None) -> Scenario | None:
    """The scenario recorded in the run folder's log, else the built-in one the run names, or None."""
    try:
        from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario

        from .logs import log_metadata

        log = run_dir / "requests.arrow"
        text = log_metadata(log).get("dccsim.scenario") if log.is_file() else None
        if text is None and run is not None:
            text = builtin_scenarios().get(run.scenario)
        return parse_scenario(text) if text else None
    except Exception:  # noqa: BLE001 - the report must build from the summary alone
        return None


def _verdict(summary: RunSummary, run_dir: Path) -> tuple[crit.CriteriaResult | None, str, str]:
    """(result, where the criteria came from, problem text)."""
    if summary.exit_criteria is not UNSET:
        try:
            return crit.from_dict(msgspec.to_builtins(summary.exit_criteria)), "summary.json", ""
        except crit.CriteriaError as exc:
            return None, "", str(exc)
    try:
        found = crit.criteria_for_run(run_dir, summary)
        if found is None:
            return None, "", ""
        criteria, source = found
        if not criteria.items:
            return None, source, ""
        return crit.evaluate(summary, criteria), source, ""
    except crit.CriteriaError as exc:
        return None, "", str(exc)


def _alert_counts(summary: RunSummary) -> tuple[int | None, int | None, int | None]:
    """Alerts (throttled, forwarded, excluded): Alert Storm Protection's own statistics, else
    (no ``throttle`` section) the actions counted in the run's alerts."""
    thr = summary.throttle
    if thr is not None:
        return thr.throttled, thr.forwarded, thr.excluded
    acts = summary.alert_actions
    return acts.get("throttled"), acts.get("forwarded"), acts.get("excluded")


def _cache_figures(summary: RunSummary) -> CacheSection:
    """The cache section; without one (no statistics from the server) every figure is ``n/a``."""
    return summary.cache if summary.cache is not None else CacheSection()


# ------------------------------------------------------------------------------ the page
def render_report(summary: RunSummary, run_dir: Path | None = None, scenario: Scenario | None = None) -> str:
    """The report page as one HTML string: the sections below, top to bottom.

    ``scenario`` gives the request classes' target times and the description; without it they
    come from the scenario recorded in ``run_dir`` (see :func:`_scenario`).
    """
    run_dir = Path(run_dir) if run_dir is not None else Path(".")
    run = _run_info(summary)
    interval_s = float(summary.series.interval_s or 900)
    day_label = _day_label(run, summary.series)
    result, source, problem = _verdict(summary, run_dir)
    if scenario is None:
        scenario = _scenario(run_dir, run)
    name = run.scenario if run is not None else "run"
    body = "".join(
        [
            _header(run, name, day_label, scenario),
            _banner(result, source, problem),
            _key_figures(summary, result),
            _criteria_section(result, source, problem),
            _traffic_section(summary, interval_s),
            _latency_section(summary, result, scenario, interval_s, crit.run_histograms(summary, run_dir)),
            _srv_section(summary, result),
            _cache_section(_cache_figures(summary), summary.series, interval_s),
            _comms_section(summary),
            _throttle_section(summary, interval_s),
            _future_dated_section(summary),
            _details_section(summary),
            _footer(run, run_dir),
        ]
    )
    return page(f"dccsim report: {name} {day_label}", body)


def _day_label(run: RunInfo | None, series: SummarySeries) -> str:
    """The simulated day as YYYY-MM-DD: the run's own, else the series' start."""
    if run is not None and run.day:
        return run.day
    return datetime.fromtimestamp(series.start_ns / NS, UTC).strftime("%Y-%m-%d")


_FACTS = ("scale", "meters", "seed", "capacity uplift", "demand", "DSP servers", "shards", "dccsim")


def _header(run: RunInfo | None, name: str, day_label: str, scenario: Scenario | None) -> str:
    """Scenario name and day, the scenario's description, and the run's settings (``n/a`` without them)."""
    description = scenario.description if scenario is not None else ""
    values: list[object] = (
        [
            f"{run.scale:g}",
            fmt_int(run.meters),
            run.seed,
            f"x{run.uplift:g}",
            f"x{run.demand:g}",
            fmt_int(run.dsp_servers),
            run.shards,
            run.dccsim_version,
        ]
        if run is not None
        else ["n/a"] * len(_FACTS)
    )
    facts_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in zip(_FACTS, values, strict=True))
    return (
        '<header><div class="kicker">dccsim run report</div>'
        f'<h1>{esc(name)} <span class="day">{esc(day_label)}</span></h1>'
        + (f'<p class="desc">{esc(description)}</p>' if description else "")
        + f'<dl class="facts">{facts_html}</dl></header>'
    )


def _banner(result: crit.CriteriaResult | None, source: str, problem: str) -> str:
    """The verdict: meets targets, fails N criteria, or why there is none."""
    if problem:
        return (
            f'<div class="banner unknown"><div class="bmain">Verdict unavailable</div>'
            f'<div class="bsub">The exit criteria could not be judged: {esc(problem)}</div></div>'
        )
    if result is None:
        return (
            '<div class="banner unknown"><div class="bmain">No exit criteria</div>'
            '<div class="bsub">This run had no exit criteria, so it is neither passed nor failed. '
            "Add an [exit_criteria] table to the scenario to judge it.</div></div>"
        )
    failing = [v for v in result.verdicts if not v.passed]
    tone = "pass" if result.passed else "fail"
    mark = "&#10004;" if result.passed else "&#10008;"
    head = result.headline
    detail = ", ".join(
        f"{v.criterion.expression} (S{v.criterion.severity}, actual {crit.format_value(v.actual)})" for v in failing[:4]
    ) + (", ..." if len(failing) > 4 else "")
    counts = " &middot; ".join(
        f"S{s}: {result.failures.get(s, 0)} failed, {result.thresholds.get(s, 0)} allowed" for s in crit.SEVERITIES
    )
    sub = (
        f"{len(result.verdicts) - len(failing)} of {len(result.verdicts)} exit criteria pass"
        + (f". Failing: {esc(detail)}" if failing else "")
        + "."
    )
    return (
        f'<div class="banner {tone}"><div class="bmain"><span class="mark">{mark}</span> '
        f"{esc(head[0].upper() + head[1:])}"
        f'</div><div class="bsub">{sub}</div><div class="bcounts">{counts} <span class="src">'
        f"(criteria from {esc(source)})</span></div></div>"
    )


def _tone(result: crit.CriteriaResult | None, path: str) -> str:
    """A key figure's tile tone: ``good`` or ``bad`` when exit criteria judge it, else none."""
    judged = [v.passed for v in (result.verdicts if result else ()) if v.criterion.path == path]
    return "" if not judged else "good" if all(judged) else "bad"


def _key_figures(summary: RunSummary, result: crit.CriteriaResult | None) -> str:
    """The row of tiles under the verdict: traffic, latency, backlog, cache, alerts, wall time."""
    lat = summary.latency_s
    cache = _cache_figures(summary)
    throttled, forwarded, _ = _alert_counts(summary)
    tiles = [
        tile(
            "requests",
            fmt_int(summary.requests),
            f"{fmt_int(summary.retries)} retries, {fmt_int(summary.retries_unanswered)} unanswered (wasted)",
        ),
        tile(
            "within target time",
            fmt_pct(summary.within_target_ratio),
            "of responses inside their target response time",
            _tone(result, "within_target_ratio"),
        ),
        tile(
            "latency p50",
            fmt_secs(lat.p50),
            "from scheduled time to response",
            _tone(result, "latency_s.p50"),
        ),
        tile(
            "latency p99",
            fmt_secs(lat.p99),
            f"max {fmt_secs(lat.max)}",
            _tone(result, "latency_s.p99"),
        ),
        tile(
            "peak DSP backlog",
            fmt_int(summary.peak_backlog),
            f"mean wait {fmt_secs(summary.mean_wait_s)}",
            _tone(result, "peak_backlog"),
        ),
        tile(
            "cache hit ratio",
            fmt_pct(cache.hit_ratio, 1),
            f"{fmt_int(cache.device_requests_saved)} device requests saved",
            _tone(result, "cache.hit_ratio"),
        ),
        tile(
            "alerts throttled",
            fmt_int(throttled),
            f"of {fmt_int(summary.alerts)} device alerts; {fmt_int(forwarded)} forwarded",
        ),
        tile(
            "wall time",
            fmt_secs(summary.wall_seconds),
            f"{fmt_si(as_number(summary.events_per_second) or 0)} events/s on this machine",
        ),
    ]
    return f'<div class="tiles">{"".join(tiles)}</div>'


def _criteria_section(result: crit.CriteriaResult | None, source: str, problem: str) -> str:
    """Every exit criterion with its verdict and actual value, failures first."""
    if result is None:
        note = esc(problem) if problem else "No exit criteria for this run."
        return section("criteria", "Exit criteria", "", f'<p class="note">{note}</p>')
    rows = [
        [
            f'<span class="pill {"pass" if v.passed else "fail"}">{"PASS" if v.passed else "FAIL"}</span>',
            f"S{v.criterion.severity}",
            f"<code>{esc(v.criterion.expression)}</code>",
            esc(crit.format_value(v.actual)),
        ]
        for v in sorted(result.verdicts, key=lambda v: (v.passed, v.criterion.severity))
    ]
    allowed = ", ".join(f"S{s} {result.thresholds.get(s, 0)}" for s in crit.SEVERITIES)
    body = table(["verdict", "severity", "criterion", "actual"], rows, numeric=[3], cls="criteria") + (
        '<p class="note">A failed criterion is a defect of its severity (S1 most severe). '
        f"The run passes when no severity has more failures than it allows: {allowed}. "
        f"Criteria from {esc(source)}.</p>"
    )
    return section("criteria", "Exit criteria", "", body)


def _overload_note(summary: RunSummary, interval_s: float) -> str:
    """When, how much and for which classes the DSP refused or shed work ("" if it did not)."""

    def by_class(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {fmt_int(v)}" for k, v in sorted(counts.items()))

    notes = []
    if summary.refused_by_class:
        total = sum(summary.refused_by_class.values())
        busy = [j for j, v in enumerate(summary.series.refused) if v]
        when = ""
        if busy:
            day0 = datetime.fromtimestamp(summary.series.start_ns / NS, UTC)
            first = day0 + timedelta(seconds=busy[0] * interval_s)
            last = day0 + timedelta(seconds=(busy[-1] + 1) * interval_s)
            when = f" between {first:%H:%M} and {last:%H:%M}{'' if last.date() == day0.date() else ' (+1 day)'}"
        notes.append(f"DSP refused {fmt_int(total)} requests{when} ({by_class(summary.refused_by_class)})")
    if summary.shed_by_class:
        total = sum(summary.shed_by_class.values())
        notes.append(f"shed {fmt_int(total)} whose caller had timed out ({by_class(summary.shed_by_class)})")
    return "; " + "; ".join(notes) if notes else ""


def _traffic_section(summary: RunSummary, interval_s: float) -> str:
    """Requests and responses per interval, and the peak DSP backlog in each."""
    series = summary.series
    peak_rate = max(series.requests, default=0) / interval_s
    lines = [
        Series("requests scheduled", series.requests, PALETTE["blue"], fill=True),
        Series("responses", series.responses, PALETTE["orange"], dash=True),
    ]
    if series.refused:
        lines.append(Series("refused by the DSP", series.refused, PALETTE["red"]))
    traffic = figure(
        "Requests and responses per 15 minutes",
        time_chart(
            lines,
            start_s=0.0,
            interval_s=interval_s,
            y_label="per 15 minutes",
            aria="requests and responses over the day",
        ),
        f"peak {fmt_si(peak_rate)} requests/s (15-minute average)" + _overload_note(summary, interval_s),
    )
    backlog = figure(
        "DSP backlog (peak in each 15 minutes)",
        time_chart(
            [Series("peak backlog", series.peak_backlog, PALETTE["purple"], fill=True)],
            start_s=0.0,
            interval_s=interval_s,
            y_label="requests waiting",
            aria="DSP backlog over the day",
        ),
        f"peak {fmt_int(summary.peak_backlog)} requests",
    )
    outcomes = ""
    if series.failed:
        ok = [max(r - f, 0) for r, f in zip(series.requests, series.failed, strict=False)]
        outcomes = figure(
            "Requests answered OK and failed per 15 minutes",
            time_chart(
                [
                    Series("OK (I0, I99)", ok, PALETTE["green"]),
                    Series("failed (an E code)", series.failed, PALETTE["red"]),
                ],
                start_s=0.0,
                interval_s=interval_s,
                y_label="per 15 minutes",
                stacked=True,
                aria="requests answered OK and failed over the day",
            ),  # fmt: skip
            f"{fmt_int(sum(series.failed))} of {fmt_int(sum(series.requests))} requests failed "
            "(by the 15 minutes they were scheduled in)",
        )
    return section(
        "traffic",
        "Traffic and DSP backlog over the day",
        "Service Requests by the 15 minutes they were scheduled in, responses by the 15 minutes they were "
        "answered in, and the longest DSP queue seen in each interval.",
        traffic + outcomes + backlog,
    )


def _latency_section(
    summary: RunSummary, result: crit.CriteriaResult | None, scenario: Scenario | None, interval_s: float,
    histograms: crit.Histograms | None = None,
) -> str:  # fmt: skip
    """Latency percentiles and target-time compliance over the day, the latency distribution,
    and latency by request class."""
    return section(
        "latency",
        "Latency and target response time over the day",
        "Latency runs from the scheduled time to the response, so a stalled DSP cannot hide its queue.",
        _latency_chart(summary, result, interval_s)
        + _compliance_chart(summary, result, interval_s)
        + _distribution_chart(summary, histograms)
        + _class_table(summary.latency_by_class, scenario),
    )


def distribution_curves(
    histograms: crit.Histograms, classes: Iterable[str]
) -> list[tuple[str, list[float], list[float]]]:
    """``(label, seconds, shares)`` of the whole run's latency distribution and each class's."""
    out = []
    for kind, key, label in [("all", "", "all requests"), *(("class", c, c.replace("_", " ")) for c in classes)]:
        h = histograms(kind, key)
        if h is not None and h.count:
            out.append((label, *cdf_points(h)))
    return out


def cdf_points(h: Any) -> tuple[list[float], list[float]]:
    """A latency histogram's distribution as (seconds, shares) at :data:`CDF_SHARES`."""
    return (h.percentiles([q * 100 for q in CDF_SHARES]) / 1e9).tolist(), list(CDF_SHARES)


def _distribution_chart(summary: RunSummary, histograms: crit.Histograms | None) -> str:
    """The share of requests answered within each time, for the whole run and each class."""
    if histograms is None:
        return ""
    colors = [PALETTE[c] for c in ("grey", "blue", "orange", "green", "purple", "teal")]
    found = distribution_curves(histograms, summary.latency_by_class)
    curves = [(label, colors[k % len(colors)], sec, share) for k, (label, sec, share) in enumerate(found)]
    return figure(
        "Latency distribution",
        cdf_chart(curves, aria="the share of requests answered within each latency"),
        "the share of requests answered within each time, from the run's histograms (within 0.8%)",
    )


def _latency_chart(summary: RunSummary, result: crit.CriteriaResult | None, interval_s: float) -> str:
    """p50 and p99 per interval; on a log scale when they span more than a factor of 40."""
    lat = summary.latency_s
    p50 = summary.series.latency_p50_s
    p99 = summary.series.latency_p99_s
    lat_vals = [x for v in (*p50, *p99) if (x := as_number(v))]
    use_log = bool(lat_vals) and max(lat_vals) / max(min(lat_vals), 1e-9) > 40
    return figure(
        "Latency per 15 minutes (scheduled time to response)",
        time_chart(
            [Series("p50", p50, PALETTE["blue"]), Series("p99", p99, PALETTE["red"])],
            start_s=0.0,
            interval_s=interval_s,
            y_label="seconds",
            y_fmt="seconds",
            log=use_log,
            refs=_criterion_refs(result, "latency_s.p99", "whole-day p99"),
            aria="latency percentiles over the day",
        ),
        f"whole day: p50 {fmt_secs(lat.p50)}, p90 {fmt_secs(lat.p90)}, "
        f"p99 {fmt_secs(lat.p99)}, p99.9 {fmt_secs(lat.p999)}, max {fmt_secs(lat.max)}",
    )


def _compliance_chart(summary: RunSummary, result: crit.CriteriaResult | None, interval_s: float) -> str:
    """The share of each interval's requests answered within target; the y axis ends at 100%."""
    wt_crit = _criterion_refs(result, "within_target_ratio", "")
    within = _ratio(summary.series.within_target, summary.series.requests)
    wvals = [v for v in within if v is not None] + [r[0] for r in wt_crit]
    wlo = min(wvals, default=0.0)
    span = max(1.0 - wlo, 0.001)
    step = nice_step(span * 1.1, 4)
    ylo = max(0.0, math.floor((wlo - span * 0.1) / step) * step)
    return figure(
        "Responses within their target response time, per 15 minutes",
        time_chart(
            [Series("within target", within, PALETTE["green"])],
            start_s=0.0,
            interval_s=interval_s,
            y_label="share of requests",
            y_fmt="percent",
            y_range=(ylo, 1.0),
            refs=[(v, f"exit criterion: whole day ≥ {fmt_pct(v, 1)}") for v, _ in wt_crit],
            aria="target response compliance over the day",
        ),
        f"whole day {fmt_pct(summary.within_target_ratio)}; by scheduled time",
    )


def _class_table(classes: Mapping[str, ClassLatency], scenario: Scenario | None) -> str:
    """Latency by request class, busiest first, with the scenario's target time for each."""
    targets = {k: c.target_s for k, c in scenario.capacity.classes.items()} if scenario is not None else {}
    rows = [
        [
            esc(k.replace("_", " ")),
            fmt_int(c.requests),
            fmt_secs(c.p50_s),
            fmt_secs(c.p95_s),
            fmt_secs(c.p99_s),
            fmt_secs(c.max_s),
            fmt_secs(targets[k]) if k in targets else "-",
        ]
        for k, c in sorted(classes.items(), key=lambda kv: -kv[1].requests)
    ]
    if not rows:
        return ""
    return table(["request class", "requests", "p50", "p95", "p99", "max", "target"], rows, numeric=[1, 2, 3, 4, 5, 6])


def _srv_section(summary: RunSummary, result: crit.CriteriaResult | None) -> str:
    """Compliance by SRV, worst first, then the response codes and outcomes."""
    return section(
        "srv",
        "Target response compliance by SRV",
        "Share of each Service Reference Variant's responses inside their target response time, worst first.",
        _srv_table(summary.within_target_by_srv, result, summary.latency_by_srv)
        + _codes_tables(summary.response_codes, summary.outcomes),
    )


def _srv_names(srvs: Iterable[str]) -> dict[str, str]:
    """Each SRV's name from the catalogue (none when the catalogue cannot be read)."""
    try:
        from dccsim.core.catalogue import catalogue

        cat = catalogue()
        return {s: cat[s].name for s in srvs if s in cat}
    except Exception:  # noqa: BLE001 - names are a nicety
        return {}


def _srv_table(
    by_srv: Mapping[str, float], result: crit.CriteriaResult | None, latency: Mapping[str, Any] | None = None
) -> str:
    """One row per SRV: its requests, latency percentiles, share within target, a bar of the
    share outside, and its verdict."""
    if not by_srv:
        return '<p class="note">No requests by SRV in this run.</p>'
    names = _srv_names(by_srv)
    srv_target = {
        v.criterion.path.removeprefix("within_target_by_srv."): v.criterion.threshold
        for v in (result.verdicts if result else ())
        if v.criterion.path.startswith("within_target_by_srv.")
    }
    wt_crit = _criterion_refs(result, "within_target_ratio", "")
    default_target = wt_crit[0][0] if wt_crit else None
    items = sorted(by_srv.items(), key=lambda kv: (kv[1], kv[0]))
    # bars show the share OUTSIDE target, on a scale set by the worst SRV and the allowed share
    misses = [1 - r for _, r in items]
    allowed = [1 - t for t in (*srv_target.values(), *([default_target] if default_target is not None else []))]
    scale = max([*misses, *allowed, 1e-9]) * 1.1
    rows = []
    for srv, r in items:
        target = srv_target.get(srv, default_target)
        bad = target is not None and r < target
        miss = 1 - r
        lat = (latency or {}).get(srv)
        rows.append(
            [
                f"<code>{esc(srv)}</code>",
                esc(names.get(srv, "")),
                fmt_int(lat.requests) if lat else "",
                fmt_secs(lat.p50_s) if lat else "",
                fmt_secs(lat.p95_s) if lat else "",
                fmt_secs(lat.p99_s) if lat else "",
                fmt_pct(r),
                fmt_pct(miss),
                _miss_bar(miss, target, bad, scale),
                _srv_verdict(target, bad),
            ]
        )
    head = ["SRV", "service", "requests", "p50", "p95", "p99", "within target", "outside", "share outside target",
            "target"]  # fmt: skip
    note = (
        '<p class="note">Bars: share of responses outside their target time; the tick marks what the target allows.</p>'
        if default_target is not None or srv_target
        else ""
    )
    return table(head, rows, numeric=[2, 3, 4, 5, 6, 7], cls="srv") + note


def _miss_bar(miss: float, target: float | None, bad: bool, scale: float) -> str:
    """A bar of the share outside target on a 0..``scale`` axis, ticked at what ``target`` allows."""
    mark = "" if target is None else f'<div class="allow" style="left:{(1 - target) / scale * 100:.2f}%"></div>'
    return (
        f'<div class="bar" title="{esc(fmt_pct(miss))} outside target">'
        f'<div class="fill {"bad" if bad else "ok"}" style="width:{miss / scale * 100:.2f}%"></div>{mark}</div>'
    )


def _srv_verdict(target: float | None, bad: bool) -> str:
    """``below 97.0%`` (in red) or ``meets 97.0%``; ``-`` for an SRV no criterion judges."""
    if target is None:
        return "-"
    return f'<span class="{"bad" if bad else "ok"}">{"below" if bad else "meets"} {fmt_pct(target, 1)}</span>'


def _codes_tables(codes: Mapping[str, int], outcomes: Mapping[str, int]) -> str:
    """Responses by response code and requests by outcome, side by side, commonest first."""
    total_codes = sum(codes.values()) or 1
    code_rows = [
        [f"<code>{esc(k)}</code>", fmt_int(v), fmt_pct(v / total_codes)]
        for k, v in sorted(codes.items(), key=lambda kv: -kv[1])
    ]
    total_out = sum(outcomes.values()) or 1
    out_rows = [
        [esc(k), fmt_int(v), fmt_pct(v / total_out)] for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])
    ]
    return (
        '<div class="cols">'
        + table(["response code", "responses", "share"], code_rows, numeric=[1, 2])
        + table(["outcome", "requests", "share"], out_rows, numeric=[1, 2])
        + "</div>"
    )


def _cache_section(cache: CacheSection, series: SummarySeries, interval_s: float) -> str:
    """The readings cache: hit ratio, memory and retention, and hits against device requests over the day."""
    chart = figure(
        "Requests answered from the readings cache vs sent to a device, per 15 minutes",
        time_chart(
            [
                Series("sent to a device", series.device_requests, PALETTE["grey"]),
                Series("answered from the cache", series.cache_hits, PALETTE["teal"]),
            ],
            start_s=0.0,
            interval_s=interval_s,
            y_label="per 15 minutes",
            stacked=True,
            aria="cache hits over the day",
        ),
        "all requests that reached a device or the cache",
    )
    bytes_per_entry = as_number(cache.bytes_per_entry)  # NaN (no entries) reads n/a, as null does
    retention_hours = as_number(cache.retention_hours)
    tiles = [
        tile("hit ratio", fmt_pct(cache.hit_ratio, 1), f"{fmt_int(cache.hits)} hits, {fmt_int(cache.misses)} misses"),
        tile("device requests saved", fmt_int(cache.device_requests_saved)),
        tile(
            "memory per entry",
            f"{bytes_per_entry:.1f} B" if bytes_per_entry else "n/a",
            f"{fmt_int(cache.resident)} entries resident at the end",
        ),
        tile(
            "retention",
            f"{retention_hours:g} h" if retention_hours else "n/a",
            f"{fmt_int(cache.stores)} stored, {fmt_int(cache.expired)} expired, {fmt_int(cache.evicted)} evicted",
        ),
    ]
    return section(
        "cache",
        "Readings cache (SRVs 4.6.1, 4.8.1, 4.8.3)",
        "A read of the same device, SRV and period within the retention window is answered from the cache "
        "without a device round trip.",
        f'<div class="tiles small">{"".join(tiles)}</div>' + chart,
    )


def _comms_section(summary: RunSummary) -> str:
    """The comms leg: per resource (CSP regions, S1SP) its load, queue and time-outs; none
    when the run had no comms leg."""
    comms = summary.comms
    if comms is None:
        return ""
    rows = [
        [
            f"<code>{esc(name)}</code>",
            f"{r.capacity_per_s:,.1f}",
            fmt_int(r.requests),
            fmt_int(r.cache_hits),
            fmt_pct(r.utilisation, 1),
            fmt_pct(r.peak_utilisation, 0),
            f"{r.peak_queue:,.1f}",
            f"{r.mean_wait_s:.3f}",
            f"{r.max_wait_s:.1f}",
            fmt_int(r.timed_out),
        ]
        for name, r in comms.resources.items()
    ]
    head = ["resource", "capacity /s", "requests", "cache hits", "utilisation", "busiest 15 min", "peak queue",
            "mean wait s", "max wait s", "timed out"]  # fmt: skip
    return section(
        "comms",
        "Comms leg (CSP regions, S1SP)",
        "Device requests queue FIFO at their CSP region (SMETS2) or the S1SP (SMETS1) after the DSP; a cache hit "
        f"uses none. S1SP wake-ups: {fmt_int(round(comms.wakeups))} spent, "
        f"{fmt_int(round(comms.wakeups_saved))} saved by the cache. Capacities are per second at the run's scale; "
        "utilisation is over the day; the busiest 15 minutes' offered work over capacity (above 100%: the queue "
        "grew) and the peak queue show saturation.",
        table(head, rows, numeric=list(range(1, 10))),
    )


def _throttle_section(summary: RunSummary, interval_s: float) -> str:
    """Alert Storm Protection: what it discarded, over the day and by device, and its settings."""
    return section(
        "throttle",
        "Alert Storm Protection",
        "Alerts per device and alert code over the threshold in a window are discarded; one per designated "
        "period is forwarded with the throttled count.",
        f'<div class="tiles small">{_storm_tiles(summary)}</div>'
        + _alerts_chart(summary.series.alerts, interval_s)
        + "<h3>Devices with the most throttled alerts</h3>"
        + _top_devices(summary.top_throttled_devices)
        + _throttle_settings(summary.throttle),
    )


def _storm_tiles(summary: RunSummary) -> str:
    """Alerts throttled, storm alerts let through, collateral and excluded alerts."""
    throttled, _, excluded = _alert_counts(summary)
    return "".join(
        [
            tile("alerts throttled", fmt_int(throttled), f"of {fmt_int(summary.alerts)} device alerts"),
            tile(
                "storm alerts let through",
                fmt_int(summary.storm_alerts_forwarded),
                f"of {fmt_int(summary.storm_alerts)} storm alerts",
            ),
            tile(
                "non-storm alerts throttled",
                fmt_int(summary.nonstorm_alerts_throttled),
                "collateral: alerts from healthy devices",
            ),
            tile("excluded codes", fmt_int(excluded), "alerts on the exclusion list"),
            *(
                [
                    tile(
                        "discards never reported",
                        fmt_int(summary.throttle.unreported_discards + summary.throttle.stale_discards),
                        f"in no forwarded alert's throttled count: {fmt_int(summary.throttle.unreported_discards)} "
                        f"held at the end, {fmt_int(summary.throttle.stale_discards)} too old to report",
                    )
                ]
                if summary.throttle is not None
                and (summary.throttle.unreported_discards or summary.throttle.stale_discards)
                else []
            ),
            *(
                [
                    tile(
                        "reports at window close",
                        fmt_int(summary.throttle.reports_at_close),
                        f"synthetic alerts carrying {fmt_int(summary.throttle.reported_at_close)} discards "
                        "(throttle.report_at_close)",
                    )
                ]
                if summary.throttle is not None and summary.throttle.reports_at_close
                else []
            ),
        ]
    )


def _alerts_chart(alerts: Mapping[str, list[int]], interval_s: float) -> str:
    """Device alerts per interval, stacked by what Alert Storm Protection did with them."""
    return figure(
        "Device alerts by Alert Storm Protection action, per 15 minutes",
        time_chart(
            [
                Series("forwarded", alerts.get("forwarded", []), PALETTE["blue"]),
                Series("excluded (never throttled)", alerts.get("excluded", []), PALETTE["amber"]),
                Series("throttled (discarded)", alerts.get("throttled", []), PALETTE["red"]),
            ],
            start_s=0.0,
            interval_s=interval_s,
            y_label="alerts per 15 minutes",
            stacked=True,
            aria="alert actions over the day",
        ),
    )


def _top_devices(top: Sequence[TopDevice]) -> str:
    """The devices with the most throttled alerts, as EUI-64s."""
    rows = [[str(i + 1), f"<code>{esc(fmt_eui(d.device))}</code>", fmt_int(d.throttled)] for i, d in enumerate(top)]
    if not rows:
        return '<p class="note">No device was throttled.</p>'
    return table(["#", "device (EUI-64)", "alerts throttled"], rows, numeric=[0, 2], cls="narrow")


def _throttle_settings(thr: ThrottleSection | None) -> str:
    """The throttle's configuration as the scenario's ``[throttle]`` table (TOML, to copy into
    a scenario), when the summary has it."""
    if thr is None or not thr.config:
        return ""
    from ..settings import toml_text

    config = {k: v for k, v in thr.config.items() if v != {} and v is not None}  # no empty tables, no nulls
    return '<p class="note">Throttle settings:</p><pre>' + esc(toml_text({"throttle": config}).strip()) + "</pre>"


def _future_dated_section(summary: RunSummary) -> str:
    """Future-dated commands held on devices and the audit trail of their responses (CR1233);
    virtual-time runs only (nothing for a summary without the section)."""
    fd = summary.future_dated
    if fd is None:
        return ""
    rows = [
        ["commands delivered (acknowledged I99)", fmt_int(fd.commands)],
        ["responses received (audit.arrow)", fmt_int(fd.responses)],
        ["responses out of sequence", fmt_int(fd.out_of_sequence)],
        ["instructions not done (8F67)", fmt_int(fd.not_done)],
        ["commands complete", fmt_int(fd.complete)],
        ["commands incomplete at the end of the run", fmt_int(fd.incomplete)],
    ]
    intro = (
        "Each future-dated command a device holds answers, when it runs, with one Response per "
        "instruction (a <code>FutureDatedDeviceAlertMessage</code>: 8F66 done, 8F67 not done) tied "
        "to the request; none passes Alert Storm Protection. The service audit trail "
        "(<code>audit.arrow</code>) keeps every one and flags those out of sequence (CR1233)."
    )
    return section("future-dated", "Future-dated commands", intro, table(None, rows, numeric=[1], cls="kv"))


def _details_section(summary: RunSummary) -> str:
    """Log sizes, memory, speed, and the invalid traffic rejected."""
    inv_rows = [
        [esc(k.replace("_", " ")), ", ".join(f"{esc(c)} {fmt_int(n)}" for c, n in v.items())]
        for k, v in summary.invalid_traffic.items()
    ]
    logs = summary.logs
    detail_rows = [
        ["requests.arrow", fmt_bytes(logs.requests_arrow_bytes)],
        ["alerts.arrow", fmt_bytes(logs.alerts_arrow_bytes)],
        # only dccsim run measures its memory: n/a for the wall-clock commands
        ["peak memory (RSS)", fmt_bytes(None if summary.peak_rss_bytes is UNSET else summary.peak_rss_bytes)],
        ["events per second", fmt_int(summary.events_per_second)],
        ["kernels compiled or loaded before the run", fmt_secs(summary.compile_seconds)],
    ]
    details = (
        '<div class="cols">'
        + table(None, detail_rows, numeric=[1], cls="kv")
        + (table(["invalid traffic", "rejected with"], inv_rows) if inv_rows else "")
        + "</div>"
        + _stages_table(summary)
    )
    return section("details", "Run details", "", details)


def _stages_table(summary: RunSummary) -> str:
    """Where the run spent its time, stage by stage in data-flow order (virtual-time runs)."""
    if not summary.stages:
        return ""
    from dccsim.loadgen.driver import STAGES

    order = [k for k in STAGES if k in summary.stages] + sorted(set(summary.stages) - set(STAGES))
    rows = []
    for k in order:
        st = summary.stages[k]
        share = "n/a" if st.share_of_wall is None else f"{st.share_of_wall:.0%}"
        per = "" if st.ns_per_row is None else f"{st.ns_per_row:,.0f}"
        cpu = "n/a" if st.cpu_seconds is None else f"{st.cpu_seconds:.2f}"
        cpu_per = "" if st.cpu_ns_per_row is None else f"{st.cpu_ns_per_row:,.0f}"
        rows.append([esc(k), esc(STAGES.get(k, "")), f"{st.seconds:.2f}", fmt_int(st.rows), per, share, cpu, cpu_per])
    counted = [st.cpu_seconds for st in summary.stages.values()]
    if isinstance(summary.cpu_seconds, float | int) and None not in counted:
        other = max(0.0, float(summary.cpu_seconds) - sum(c for c in counted if c is not None))
        what = (
            "the process's CPU no stage counts: Arrow's compression threads (its CPU pool), the main "
            "thread's work between stages (retries merged into the next chunk), the garbage collector"
        )
        rows.append(["other", esc(what), "", "", "", "", f"{other:.2f}", ""])
        rows.append(["whole run", "the process's CPU time (user and system) over the run", "", "", "", "",
                     f"{float(summary.cpu_seconds):.2f}", ""])  # fmt: skip
    return (
        "<h3>Where the time went</h3><p>Wall time of each stage, summed over the chunks. The stages run "
        "side by side on threads of their own, so the shares of the run's wall time add up to more than "
        "100%; the largest is the one the others wait for. A stage's wall time includes its waits for a "
        "core the others held; its CPU time (its thread's; the build's, the whole process's) does not, so "
        "CPU ns per row is its cost per event on any machine, busy or not.</p>"
        + table(
            ["stage", "what", "seconds", "rows", "ns per row", "of wall time", "CPU seconds", "CPU ns per row"],
            rows,
            numeric=[2, 3, 4, 5, 6, 7],
        )
    )


def _footer(run: RunInfo | None, run_dir: Path) -> str:
    """When and from what the page was generated."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<footer>Generated {generated} from {esc(run_dir.name or 'summary.json')}"
        f"/summary.json by dccsim {esc(run.dccsim_version if run is not None else '')}. "
        "Times of day are UTC from the start of the simulated day; "
        "hover a chart for the values of an interval.</footer>"
    )


def page(title: str, body: str) -> str:
    """The HTML document around ``body``, with the style sheet inline."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )


def _read_summary(run_dir: Path) -> RunSummary:
    """A run folder's ``summary.json``, decoded; :class:`ReportError` naming the file otherwise."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ReportError(f"{run_dir}: no summary.json (expected a run folder written by dccsim run)")
    try:
        return RunSummary.from_json(path.read_bytes(), str(path))
    except OSError as exc:
        raise ReportError(f"{path}: not a readable summary.json ({exc})") from None
    except SummaryError as exc:
        raise ReportError(str(exc)) from None


def build_report(
    run_dir: Path,
    out: Path | None = None,
    *,
    summary: RunSummary | None = None,
    scenario: Scenario | None = None,
) -> Path:
    """Write ``report.html`` for a run folder (or ``out``) and return its path.

    ``summary`` and ``scenario`` are the run's own when the caller holds them (the process
    that ran the day): used as they are. Without them, the summary is read from the folder's
    ``summary.json`` (:class:`ReportError` when it is missing, unreadable or not a dccsim
    summary) and the scenario from the folder's ``requests.arrow``.
    """
    run_dir = Path(run_dir)
    if summary is None:
        summary = _read_summary(run_dir)
    target = Path(out) if out is not None else run_dir / "report.html"
    text = render_report(summary, run_dir, scenario)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


# ------------------------------------------------------------------------------ replicates


def _kpi_value(value: Any, unit: str) -> str:
    return fmt_pct(value) if unit == "pct" else fmt_secs(value) if unit == "s" else fmt_int(value)


def render_replicates(doc: Mapping[str, Any]) -> str:
    """The page of a set of seed replicates (``dccsim run --replicates``), from its
    ``replicates.json``: the verdict over the replicates, each headline KPI's mean with its
    95% confidence interval, and each replicate's verdict with a link to its own report."""
    runs = doc.get("runs", [])
    failed = [r for r in runs if r.get("passed") is False]
    tone = "fail" if failed else "pass"
    head = (f"{len(failed)} of {len(runs)} replicates fail their exit criteria" if failed
            else f"all {len(runs)} replicates meet their exit criteria")  # fmt: skip
    banner = f'<div class="banner {tone}"><div class="bmain">{esc(head[0].upper() + head[1:])}</div></div>'
    rows = []
    for kpi in doc.get("kpis", {}).values():
        unit, ci = kpi.get("unit", ""), kpi.get("ci95")
        rows.append([
            esc(kpi.get("label", "")), _kpi_value(kpi.get("mean"), unit),
            esc(f"{_kpi_value(ci[0], unit)} to {_kpi_value(ci[1], unit)}") if ci else "n/a",
            _kpi_value(kpi.get("sd"), unit), _kpi_value(kpi.get("min"), unit), _kpi_value(kpi.get("max"), unit),
            fmt_int(kpi.get("n")),
        ])  # fmt: skip
    kpis = section(
        "kpis", "Headline figures across the replicates",
        f"Mean and 95% confidence interval of the mean over {len(runs)} seeds "
        f"({esc(doc.get('method', ''))}); sd is the spread of one day around it.",
        table(["KPI", "mean", "95% interval", "sd", "min", "max", "runs"], rows, numeric=[1, 2, 3, 4, 5, 6]),
    )  # fmt: skip
    run_rows = [
        [f'<a href="{esc(r["folder"])}/report.html">{esc(r["seed"])}</a>',
         f'<span class="pill {"pass" if r.get("passed") else "fail"}">{"pass" if r.get("passed") else "FAIL"}</span>',
         esc("; ".join(r.get("failed_criteria") or ()) or "-")]
        for r in runs
    ]  # fmt: skip
    replicates = section("runs", "Replicates", "Each seed's run folder holds its own logs and report.",
                         table(["seed", "verdict", "failed criteria"], run_rows))  # fmt: skip
    seeds = doc.get("seeds") or [0]
    title = f"{doc.get('scenario', 'run')}: {len(runs)} replicates"
    header = (
        '<header><div class="kicker">dccsim replicates</div>'
        f"<h1>{esc(doc.get('scenario', 'run'))} "
        f'<span class="day">seeds {esc(seeds[0])} to {esc(seeds[-1])}</span></h1>'
        f'<dl class="facts"><div><dt>scale</dt><dd>{esc(doc.get("scale"))}</dd></div>'
        f"<div><dt>capacity uplift</dt><dd>x{esc(doc.get('uplift'))}</dd></div>"
        f"<div><dt>demand</dt><dd>x{esc(doc.get('demand'))}</dd></div></dl></header>"
    )
    return page(f"dccsim replicates: {title}", header + banner + kpis + replicates)


def build_replicates_report(out_dir: Path, doc: Mapping[str, Any]) -> Path:
    """Write ``out_dir/report.html`` for a set of replicates (:func:`render_replicates`)."""
    target = Path(out_dir) / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render_replicates(doc), encoding="utf-8")
    tmp.replace(target)
    return target


#: the page's style sheet, with the rules of :mod:`.charts` in their place
_CSS = (
    """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;--good:#15803d;
--bad:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 28px 40px}
header h1{margin:2px 0 4px;font-size:28px;letter-spacing:-.01em}
header .day{color:var(--muted);font-weight:500}
.kicker{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);
font-weight:600}
.desc{margin:0 0 10px;color:#334155}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:10px 0 18px}
.facts div{display:flex;gap:6px;align-items:baseline}
.facts dt{color:var(--muted);font-size:13px}
.facts dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}
.banner{border-radius:10px;padding:16px 20px;margin:0 0 18px;border:1px solid}
.banner.pass{background:#f0fdf4;border-color:#86efac}
.banner.fail{background:#fef2f2;border-color:#fca5a5}
.banner.unknown{background:#f1f5f9;border-color:#cbd5e1}
.bmain{font-size:24px;font-weight:700}.pass .bmain{color:var(--good)}.fail .bmain{color:var(--bad)}
.bsub{margin-top:2px}.bcounts{margin-top:6px;font-size:13px;color:#475569}.src{color:var(--muted)}
"""
    + CSS
    + """\
table.narrow{width:auto;min-width:420px}table.kv td:first-child{color:#475569}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:0 28px;
align-items:start}
table.srv td:nth-child(9){width:22%}
table.srv td:nth-child(n+3):nth-child(-n+6),table.srv td:nth-child(10){white-space:nowrap}
.bar{position:relative}.allow{position:absolute;top:-3px;width:2px;height:16px;background:#0f172a}
.bar{background:#f1f5f9;border-radius:4px;height:10px}
.fill{height:100%;border-radius:4px}.fill.ok{background:#22c55e}.fill.bad{background:#ef4444}
span.ok{color:var(--good)}span.bad{color:var(--bad);font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:700}
.pill.pass{background:#dcfce7;color:var(--good)}.pill.fail{background:#fee2e2;color:var(--bad)}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.note{color:#475569;font-size:13px}
footer{color:var(--muted);font-size:12px;margin-top:20px}
@media print{body{background:#fff}section{break-inside:avoid}}
"""
)
