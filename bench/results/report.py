"""``report.html``: one self-contained page that tells a tester how the simulated day went.

:func:`build_report` reads a run folder's ``summary.json`` and writes ``report.html`` beside
it. The page needs nothing but a browser: charts are inline SVG drawn in Python by
:mod:`.charts` (no scripts, fonts, images or style sheets from anywhere else), so it opens
offline, prints, and can be attached to a test-phase record as it is.

From top to bottom: the verdict (``meets targets`` / ``fails N criteria``), the key figures,
the exit criteria, traffic and backlog over the day, latency and target-time compliance over
the day, compliance by SRV (worst first), the readings cache, Alert Storm Protection, and the
run's details. Times of day are HH:MM in UTC from the start of the simulated day; series are
15-minute intervals. Every chart point carries a tooltip with its interval and values.

:func:`render_report` joins one function per part of the page, defined below it in page order;
each takes the summary (or the parts it needs) and returns its HTML. What the page shows is
decided here; how it is drawn (value formatting, tiles, tables, charts and their CSS) is
:mod:`.charts`.

Exit criteria come from ``summary.json`` (``exit_criteria``, as :func:`criteria.to_dict`
stores them); a summary without them is judged here against the criteria of the scenario the
run recorded, when there is one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dccsim.core.errors import ConfigError

from . import criteria as crit
from .charts import (
    CSS,
    PALETTE,
    Series,
    as_number,
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

__all__ = ["build_report", "render_report", "ReportError"]

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
        (
            v.criterion.threshold,
            f"exit criterion: {label} {v.criterion.op} {v.criterion.threshold:g}",
        )
        for v in result.verdicts
        if v.criterion.path == path
    ]


def _scenario(run_dir: Path, summary: Mapping[str, Any]) -> Any:
    """The run's scenario (for targets and description), or None."""
    try:
        from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario

        from .logs import log_metadata

        log = run_dir / "requests.arrow"
        text = log_metadata(log).get("dccsim.scenario") if log.is_file() else None
        if text is None:
            text = builtin_scenarios().get((summary.get("run") or {}).get("scenario", ""))
        return parse_scenario(text) if text else None
    except Exception:  # noqa: BLE001 - the report must build from summary.json alone
        return None


def _verdict(summary: Mapping[str, Any], run_dir: Path) -> tuple[crit.CriteriaResult | None, str, str]:
    """(result, where the criteria came from, problem text)."""
    stored = summary.get("exit_criteria")
    if isinstance(stored, Mapping) and stored.get("criteria") is not None:
        try:
            return crit.from_dict(stored), "summary.json", ""
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


# ------------------------------------------------------------------------------ the page
def render_report(summary: Mapping[str, Any], run_dir: Path | None = None) -> str:
    """The report page as one HTML string: the sections below, top to bottom."""
    run_dir = Path(run_dir) if run_dir is not None else Path(".")
    run = summary.get("run") or {}
    series = summary.get("series") or {}
    interval_s = float(series.get("interval_s", 900) or 900)
    day_label = _day_label(run, series)
    result, source, problem = _verdict(summary, run_dir)
    scenario = _scenario(run_dir, summary)
    name = run.get("scenario", "run")
    body = "".join(
        [
            _header(run, name, day_label, scenario),
            _banner(result, source, problem),
            _key_figures(summary, result),
            _criteria_section(result, source, problem),
            _traffic_section(summary, interval_s),
            _latency_section(summary, result, scenario, interval_s),
            _srv_section(summary, result),
            _cache_section(summary, interval_s),
            _throttle_section(summary, interval_s),
            _details_section(summary),
            _footer(run, run_dir),
        ]
    )
    return _page(f"dccsim report: {name} {day_label}", body)


def _day_label(run: Mapping[str, Any], series: Mapping[str, Any]) -> str:
    """The simulated day as YYYY-MM-DD: the run's own, else the series' start, else empty."""
    start_ns = series.get("start_ns")
    return run.get("day") or (
        datetime.fromtimestamp(start_ns / NS, UTC).strftime("%Y-%m-%d") if isinstance(start_ns, int) else ""
    )


def _header(run: Mapping[str, Any], name: str, day_label: str, scenario: Any) -> str:
    """Scenario name and day, the scenario's description, and the run's settings."""
    description = getattr(scenario, "description", "") if scenario is not None else ""
    facts = [
        ("scale", f"{as_number(run.get('scale')) or 0:g}"),
        ("meters", fmt_int(run.get("meters"))),
        ("seed", run.get("seed", "n/a")),
        ("capacity uplift", f"x{as_number(run.get('uplift')) or 0:g}"),
        ("demand", f"x{as_number(run.get('demand')) or 0:g}"),
        ("DSP servers", fmt_int(run.get("dsp_servers"))),
        ("shards", run.get("shards", "n/a")),
        ("dccsim", run.get("dccsim_version", "n/a")),
    ]
    facts_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
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


def _key_figures(summary: Mapping[str, Any], result: crit.CriteriaResult | None) -> str:
    """The row of tiles under the verdict: traffic, latency, backlog, cache, alerts, wall time."""
    lat = summary.get("latency_s") or {}
    cache = summary.get("cache") or {}
    thr = summary.get("throttle") or {}
    acts = summary.get("alert_actions") or {}
    tiles = [
        tile("requests", fmt_int(summary.get("requests")), f"{fmt_int(summary.get('retries'))} retries"),
        tile(
            "within target time",
            fmt_pct(summary.get("within_target_ratio")),
            "of responses inside their target response time",
            _tone(result, "within_target_ratio"),
        ),
        tile(
            "latency p50",
            fmt_secs(lat.get("p50")),
            "from scheduled time to response",
            _tone(result, "latency_s.p50"),
        ),
        tile(
            "latency p99",
            fmt_secs(lat.get("p99")),
            f"max {fmt_secs(lat.get('max'))}",
            _tone(result, "latency_s.p99"),
        ),
        tile(
            "peak DSP backlog",
            fmt_int(summary.get("peak_backlog")),
            f"mean wait {fmt_secs(summary.get('mean_wait_s'))}",
            _tone(result, "peak_backlog"),
        ),
        tile(
            "cache hit ratio",
            fmt_pct(cache.get("hit_ratio"), 1),
            f"{fmt_int(cache.get('device_requests_saved', cache.get('hits')))} device requests saved",
            _tone(result, "cache.hit_ratio"),
        ),
        tile(
            "alerts throttled",
            fmt_int(thr.get("throttled", acts.get("throttled"))),
            f"of {fmt_int(summary.get('alerts'))} device alerts; "
            f"{fmt_int(thr.get('forwarded', acts.get('forwarded')))} forwarded",
        ),
        tile(
            "wall time",
            fmt_secs(summary.get("wall_seconds")),
            f"{fmt_si(as_number(summary.get('events_per_second')) or 0)} events/s on this machine",
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


def _traffic_section(summary: Mapping[str, Any], interval_s: float) -> str:
    """Requests and responses per interval, and the peak DSP backlog in each."""
    series = summary.get("series") or {}
    req = series.get("requests") or []
    peak_rate = max((as_number(v) or 0 for v in req), default=0) / interval_s
    traffic = figure(
        "Requests and responses per 15 minutes",
        time_chart(
            [
                Series("requests scheduled", req, PALETTE["blue"], fill=True),
                Series("responses", series.get("responses") or [], PALETTE["orange"], dash=True),
            ],
            start_s=0.0,
            interval_s=interval_s,
            y_label="per 15 minutes",
            aria="requests and responses over the day",
        ),
        f"peak {fmt_si(peak_rate)} requests/s (15-minute average)",
    )
    backlog = figure(
        "DSP backlog (peak in each 15 minutes)",
        time_chart(
            [Series("peak backlog", series.get("peak_backlog") or [], PALETTE["purple"], fill=True)],
            start_s=0.0,
            interval_s=interval_s,
            y_label="requests waiting",
            aria="DSP backlog over the day",
        ),
        f"peak {fmt_int(summary.get('peak_backlog'))} requests",
    )
    return section(
        "traffic",
        "Traffic and DSP backlog over the day",
        "Service Requests by the 15 minutes they were scheduled in, responses by the 15 minutes they were "
        "answered in, and the longest DSP queue seen in each interval.",
        traffic + backlog,
    )


def _latency_section(
    summary: Mapping[str, Any], result: crit.CriteriaResult | None, scenario: Any, interval_s: float
) -> str:
    """Latency percentiles and target-time compliance over the day, and latency by request class."""
    return section(
        "latency",
        "Latency and target response time over the day",
        "Latency runs from the scheduled time to the response, so a stalled DSP cannot hide its queue.",
        _latency_chart(summary, result, interval_s)
        + _compliance_chart(summary, result, interval_s)
        + _class_table(summary, scenario),
    )


def _latency_chart(summary: Mapping[str, Any], result: crit.CriteriaResult | None, interval_s: float) -> str:
    """p50 and p99 per interval; on a log scale when they span more than a factor of 40."""
    series = summary.get("series") or {}
    lat = summary.get("latency_s") or {}
    p50 = series.get("latency_p50_s") or []
    p99 = series.get("latency_p99_s") or []
    lat_vals = [v for v in (*p50, *p99) if as_number(v)]
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
        f"whole day: p50 {fmt_secs(lat.get('p50'))}, p90 {fmt_secs(lat.get('p90'))}, "
        f"p99 {fmt_secs(lat.get('p99'))}, p99.9 {fmt_secs(lat.get('p999'))}, max {fmt_secs(lat.get('max'))}",
    )


def _compliance_chart(summary: Mapping[str, Any], result: crit.CriteriaResult | None, interval_s: float) -> str:
    """The share of each interval's requests answered within target; the y axis ends at 100%."""
    series = summary.get("series") or {}
    wt_crit = _criterion_refs(result, "within_target_ratio", "")
    within = _ratio(series.get("within_target") or [], series.get("requests") or [])
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
        f"whole day {fmt_pct(summary.get('within_target_ratio'))}; by scheduled time",
    )


def _class_table(summary: Mapping[str, Any], scenario: Any) -> str:
    """Latency by request class, busiest first, with the scenario's target time for each."""
    classes = summary.get("latency_by_class") or {}
    targets = {}
    if scenario is not None:
        targets = {k: c.target_s for k, c in scenario.capacity.classes.items()}
    rows = [
        [
            esc(k.replace("_", " ")),
            fmt_int(c.get("requests")),
            fmt_secs(c.get("p50_s")),
            fmt_secs(c.get("p99_s")),
            fmt_secs(c.get("max_s")),
            fmt_secs(targets[k]) if k in targets else "-",
        ]
        for k, c in sorted(classes.items(), key=lambda kv: -(as_number(kv[1].get("requests")) or 0))
    ]
    if not rows:
        return ""
    return table(["request class", "requests", "p50", "p99", "max", "target"], rows, numeric=[1, 2, 3, 4, 5])


def _srv_section(summary: Mapping[str, Any], result: crit.CriteriaResult | None) -> str:
    """Compliance by SRV, worst first, then the response codes and outcomes."""
    return section(
        "srv",
        "Target response compliance by SRV",
        "Share of each Service Reference Variant's responses inside their target response time, worst first.",
        _srv_table(summary, result) + _codes_tables(summary),
    )


def _srv_names(srvs: Iterable[str]) -> dict[str, str]:
    """Each SRV's name from the catalogue (none when the catalogue cannot be read)."""
    try:
        from dccsim.core.catalogue import catalogue

        cat = catalogue()
        return {s: cat[s].name for s in srvs if s in cat}
    except Exception:  # noqa: BLE001 - names are a nicety
        return {}


def _srv_table(summary: Mapping[str, Any], result: crit.CriteriaResult | None) -> str:
    """One row per SRV: its share within target, a bar of the share outside, and its verdict."""
    by_srv = summary.get("within_target_by_srv") or {}
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
    items = sorted(by_srv.items(), key=lambda kv: (as_number(kv[1]) if as_number(kv[1]) is not None else -1, kv[0]))
    # bars show the share OUTSIDE target, on a scale set by the worst SRV and the allowed share
    misses = [1 - r for _, v in items if (r := as_number(v)) is not None]
    allowed = [1 - t for t in (*srv_target.values(), *([default_target] if default_target is not None else []))]
    scale = max([*misses, *allowed, 1e-9]) * 1.1
    rows = []
    for srv, ratio in items:
        r = as_number(ratio)
        target = srv_target.get(srv, default_target)
        bad = r is not None and target is not None and r < target
        miss = 0.0 if r is None else 1 - r
        rows.append(
            [
                f"<code>{esc(srv)}</code>",
                esc(names.get(srv, "")),
                fmt_pct(r),
                fmt_pct(miss),
                _miss_bar(miss, target, bad, scale),
                _srv_verdict(target, bad),
            ]
        )
    head = ["SRV", "service", "within target", "outside", "share outside target", "target"]
    note = (
        '<p class="note">Bars: share of responses outside their target time; the tick marks what the target allows.</p>'
        if default_target is not None or srv_target
        else ""
    )
    return table(head, rows, numeric=[2, 3], cls="srv") + note


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


def _codes_tables(summary: Mapping[str, Any]) -> str:
    """Responses by response code and requests by outcome, side by side, commonest first."""
    codes = summary.get("response_codes") or {}
    total_codes = sum(as_number(v) or 0 for v in codes.values()) or 1
    code_rows = [
        [f"<code>{esc(k)}</code>", fmt_int(v), fmt_pct((as_number(v) or 0) / total_codes)]
        for k, v in sorted(codes.items(), key=lambda kv: -(as_number(kv[1]) or 0))
    ]
    outcomes = summary.get("outcomes") or {}
    total_out = sum(as_number(v) or 0 for v in outcomes.values()) or 1
    out_rows = [
        [esc(k), fmt_int(v), fmt_pct((as_number(v) or 0) / total_out)]
        for k, v in sorted(outcomes.items(), key=lambda kv: -(as_number(kv[1]) or 0))
    ]
    return (
        '<div class="cols">'
        + table(["response code", "responses", "share"], code_rows, numeric=[1, 2])
        + table(["outcome", "requests", "share"], out_rows, numeric=[1, 2])
        + "</div>"
    )


def _cache_section(summary: Mapping[str, Any], interval_s: float) -> str:
    """The readings cache: hit ratio, memory and retention, and hits against device requests over the day."""
    series = summary.get("series") or {}
    cache = summary.get("cache") or {}
    chart = figure(
        "Requests answered from the readings cache vs sent to a device, per 15 minutes",
        time_chart(
            [
                Series("sent to a device", series.get("device_requests") or [], PALETTE["grey"]),
                Series("answered from the cache", series.get("cache_hits") or [], PALETTE["teal"]),
            ],
            start_s=0.0,
            interval_s=interval_s,
            y_label="per 15 minutes",
            stacked=True,
            aria="cache hits over the day",
        ),
        "all requests that reached a device or the cache",
    )
    bytes_per_entry = as_number(cache.get("bytes_per_entry"))
    retention_hours = as_number(cache.get("retention_hours"))
    tiles = [
        tile(
            "hit ratio",
            fmt_pct(cache.get("hit_ratio"), 1),
            f"{fmt_int(cache.get('hits'))} hits, {fmt_int(cache.get('misses'))} misses",
        ),
        tile("device requests saved", fmt_int(cache.get("device_requests_saved", cache.get("hits")))),
        tile(
            "memory per entry",
            f"{bytes_per_entry:.1f} B" if bytes_per_entry else "n/a",
            f"{fmt_int(cache.get('resident'))} entries resident at the end",
        ),
        tile(
            "retention",
            f"{retention_hours:g} h" if retention_hours else "n/a",
            f"{fmt_int(cache.get('stores'))} stored, {fmt_int(cache.get('expired'))} expired, "
            f"{fmt_int(cache.get('evicted'))} evicted",
        ),
    ]
    return section(
        "cache",
        "Readings cache (SRVs 4.6.1, 4.8.1, 4.8.3)",
        "A read of the same device, SRV and period within the retention window is answered from the cache "
        "without a device round trip.",
        f'<div class="tiles small">{"".join(tiles)}</div>' + chart,
    )


def _throttle_section(summary: Mapping[str, Any], interval_s: float) -> str:
    """Alert Storm Protection: what it discarded, over the day and by device, and its settings."""
    return section(
        "throttle",
        "Alert Storm Protection",
        "Alerts per device and alert code over the threshold in a window are discarded; one per designated "
        "period is forwarded with the throttled count.",
        f'<div class="tiles small">{_storm_tiles(summary)}</div>'
        + _alerts_chart(summary, interval_s)
        + "<h3>Devices with the most throttled alerts</h3>"
        + _top_devices(summary)
        + _throttle_settings(summary),
    )


def _storm_tiles(summary: Mapping[str, Any]) -> str:
    """Alerts throttled, storm alerts let through, collateral and excluded alerts."""
    thr = summary.get("throttle") or {}
    acts = summary.get("alert_actions") or {}
    return "".join(
        [
            tile(
                "alerts throttled",
                fmt_int(thr.get("throttled", acts.get("throttled"))),
                f"of {fmt_int(summary.get('alerts'))} device alerts",
            ),
            tile(
                "storm alerts let through",
                fmt_int(summary.get("storm_alerts_forwarded")),
                f"of {fmt_int(summary.get('storm_alerts'))} storm alerts",
            ),
            tile(
                "non-storm alerts throttled",
                fmt_int(summary.get("nonstorm_alerts_throttled")),
                "collateral: alerts from healthy devices",
            ),
            tile("excluded codes", fmt_int(thr.get("excluded", acts.get("excluded"))), "alerts on the exclusion list"),
        ]
    )


def _alerts_chart(summary: Mapping[str, Any], interval_s: float) -> str:
    """Device alerts per interval, stacked by what Alert Storm Protection did with them."""
    alerts = (summary.get("series") or {}).get("alerts") or {}
    return figure(
        "Device alerts by Alert Storm Protection action, per 15 minutes",
        time_chart(
            [
                Series("forwarded", alerts.get("forwarded") or [], PALETTE["blue"]),
                Series("excluded (never throttled)", alerts.get("excluded") or [], PALETTE["amber"]),
                Series("throttled (discarded)", alerts.get("throttled") or [], PALETTE["red"]),
            ],
            start_s=0.0,
            interval_s=interval_s,
            y_label="alerts per 15 minutes",
            stacked=True,
            aria="alert actions over the day",
        ),
    )


def _top_devices(summary: Mapping[str, Any]) -> str:
    """The devices with the most throttled alerts, as EUI-64s."""
    top = summary.get("top_throttled_devices") or []
    rows = [
        [str(i + 1), f"<code>{esc(fmt_eui(d.get('device')))}</code>", fmt_int(d.get("throttled"))]
        for i, d in enumerate(top)
    ]
    if not rows:
        return '<p class="note">No device was throttled.</p>'
    return table(["#", "device (EUI-64)", "alerts throttled"], rows, numeric=[0, 2], cls="narrow")


def _throttle_settings(summary: Mapping[str, Any]) -> str:
    """The throttle's configuration as one line, when the summary has it."""
    thr = summary.get("throttle") or {}
    cfg = thr.get("config") if isinstance(thr.get("config"), Mapping) else None
    if not cfg:
        return ""
    return (
        '<p class="note">Throttle settings: '
        + ", ".join(
            f"{esc(k)} = {esc(', '.join(map(str, v)) if isinstance(v, list | tuple) else v)}" for k, v in cfg.items()
        )
        + "</p>"
    )


def _details_section(summary: Mapping[str, Any]) -> str:
    """Log sizes, memory, speed, future-dated alerts, and the invalid traffic rejected."""
    inv = summary.get("invalid_traffic") or {}
    inv_rows = [
        [esc(k.replace("_", " ")), ", ".join(f"{esc(c)} {fmt_int(n)}" for c, n in v.items())] for k, v in inv.items()
    ]
    logs = summary.get("logs") or {}
    detail_rows = [
        ["future-dated command alerts", fmt_int(summary.get("future_dated_alerts"))],
        ["requests.arrow", fmt_bytes(logs.get("requests_arrow_bytes"))],
        ["alerts.arrow", fmt_bytes(logs.get("alerts_arrow_bytes"))],
        ["peak memory (RSS)", fmt_bytes(summary.get("peak_rss_bytes"))],
        ["events per second", fmt_int(summary.get("events_per_second"))],
    ]
    details = (
        '<div class="cols">'
        + table(None, detail_rows, numeric=[1], cls="kv")
        + (table(["invalid traffic", "rejected with"], inv_rows) if inv_rows else "")
        + "</div>"
    )
    return section("details", "Run details", "", details)


def _footer(run: Mapping[str, Any], run_dir: Path) -> str:
    """When and from what the page was generated."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<footer>Generated {generated} from {esc(run_dir.name or 'summary.json')}"
        f"/summary.json by dccsim {esc(run.get('dccsim_version', ''))}. "
        "Times of day are UTC from the start of the simulated day; "
        "hover a chart for the values of an interval.</footer>"
    )


def _page(title: str, body: str) -> str:
    """The HTML document around ``body``, with the style sheet inline."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``report.html`` for a run folder (or ``out``) and return its path.

    Raises :class:`ReportError` when the folder has no readable ``summary.json``.
    """
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ReportError(f"{run_dir}: no summary.json (expected a run folder written by dccsim run)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable summary.json ({exc})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    target = Path(out) if out is not None else run_dir / "report.html"
    text = render_report(summary, run_dir)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
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
table.srv td:nth-child(5){width:28%}table.srv td:nth-child(6){white-space:nowrap}
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
