"""``report.html``: one self-contained page that tells a tester how the simulated day went.

:func:`build_report` reads a run folder's ``summary.json`` and writes ``report.html`` beside
it. The page needs nothing but a browser: charts are inline SVG drawn here in Python (no
scripts, fonts, images or style sheets from anywhere else), so it opens offline, prints, and
can be attached to a test-phase record as it is.

From top to bottom: the verdict (``meets targets`` / ``fails N criteria``), the key figures,
the exit criteria, traffic and backlog over the day, latency and target-time compliance over
the day, compliance by SRV (worst first), the readings cache, Alert Storm Protection, and the
run's details. Times of day are HH:MM in UTC from the start of the simulated day; series are
15-minute intervals. Every chart point carries a tooltip with its interval and values.

Exit criteria come from ``summary.json`` (``exit_criteria``, as :func:`criteria.to_dict`
stores them); a summary without them is judged here against the criteria of the scenario the
run recorded, when there is one.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dccsim.core.errors import ConfigError

from . import criteria as crit

__all__ = ["build_report", "render_report", "ReportError"]

NS = 1_000_000_000


class ReportError(ConfigError):
    """A run folder the report cannot be built from."""


# ------------------------------------------------------------------------------ formatting
def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _int(value: Any) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{round(v):,}"


def _pct(value: Any, digits: int = 2) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v * 100:.{digits}f}%"


def _secs(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 10:
        return f"{v:.2f} s"
    if v < 100:
        return f"{v:.1f} s"
    return f"{v:,.0f} s"


def _tick_secs(v: float) -> str:
    if v == 0:
        return "0 s"
    if v < 1:
        return f"{v * 1000:g} ms"
    return f"{v:g} s"


def _si(value: float) -> str:
    a = abs(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}" if a < 1000 else f"{value:,.0f}"


def _bytes(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if v >= div:
            return f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def _hhmm(seconds: float) -> str:
    s = int(round(seconds))
    day, rest = divmod(s, 86_400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return text + (f" +{day}d" if day else "")


def _eui(device: Any) -> str:
    text = str(device).upper()
    if len(text) == 16 and all(c in "0123456789ABCDEF" for c in text):
        return "-".join(text[i : i + 2] for i in range(0, 16, 2))
    return text


# ------------------------------------------------------------------------------ charts
_PALETTE = {
    "blue": "#2563eb",
    "orange": "#ea580c",
    "green": "#16a34a",
    "red": "#dc2626",
    "grey": "#64748b",
    "purple": "#7c3aed",
    "teal": "#0d9488",
    "amber": "#d97706",
}
_W, _H = 960, 270
_ML, _MR, _MT, _MB = 72, 44, 40, 46


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or stacked layer) of a chart."""

    label: str
    values: Sequence[float | None]
    color: str
    dash: bool = False
    #: shade the area under the line
    fill: bool = False


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _linear_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    if hi <= lo:
        hi = lo + 1
    step = _nice_step(hi - lo)
    start = math.floor(lo / step) * step
    end = math.ceil(hi / step) * step
    ticks = []
    v = start
    while v <= end + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return start, end, ticks


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Axis ends on the 1-2-5 grid around [lo, hi], and ticks on it (fewer when crowded)."""
    grid = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
    ]
    ylo = max(v for v in grid if v <= lo * 1.0001)
    yhi = min(v for v in grid if v >= hi / 1.0001)
    if yhi <= ylo:
        yhi = ylo * 2
    ticks = [v for v in grid if ylo / 1.0001 <= v <= yhi * 1.0001]
    if len(ticks) > 7:
        ticks = [v for v in ticks if f"{v:.0e}"[0] in "15"]
    return ylo, yhi, ticks


def time_chart(
    series: Sequence[Series],
    *,
    start_s: float,
    interval_s: float,
    y_label: str,
    y_fmt: str = "count",
    stacked: bool = False,
    refs: Sequence[tuple[float, str]] = (),
    log: bool = False,
    y_range: tuple[float, float] | None = None,
    aria: str = "",
) -> str:
    """An inline SVG chart of per-interval values against the time of day.

    ``y_fmt``: ``count`` (1.2k, 3.4M), ``seconds`` or ``percent`` (values are shares 0..1).
    ``stacked`` draws the series as stacked bars (first at the bottom); otherwise lines, with
    gaps where a value is missing. ``refs`` are dashed horizontal reference lines (value, label).
    """
    n = max((len(s.values) for s in series), default=0)
    if n == 0 or all(v is None for s in series for v in s.values):
        return (
            f'<svg class="chart" viewBox="0 0 {_W} 80" role="img" '
            f'aria-label="{_esc(aria)}: no data"><text x="{_W / 2}" y="45" text-anchor="middle" '
            'class="nodata">no data in this run</text></svg>'
        )
    pw, ph = _W - _ML - _MR, _H - _MT - _MB
    t0, t1 = start_s, start_s + n * interval_s

    def x(t: float) -> float:
        return _ML + (t - t0) / (t1 - t0) * pw

    if stacked:
        totals = [
            sum((s.values[i] or 0) if i < len(s.values) else 0 for s in series) for i in range(n)
        ]
        vals = [v for v in totals if v is not None]
    else:
        vals = [v for s in series for v in s.values if v is not None]
    vals += [r[0] for r in refs]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if log:
        pos = [v for v in vals if v > 0]
        log = bool(pos) and max(pos) / min(pos) > 1
        if log:
            lo, hi = min(pos), max(pos)
    if y_range is not None:
        lo, hi = y_range
    elif not log:
        lo = min(0.0, lo)
        if hi <= lo:
            hi = lo + 1
    if log:
        ylo, yhi, yticks = _log_ticks(lo, hi)
    else:
        ylo, yhi, yticks = _linear_ticks(lo, hi)

    def y(v: float) -> float:
        if log:
            v = max(v, ylo)
            f = (math.log10(v) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo))
        else:
            f = (v - ylo) / (yhi - ylo)
        return _MT + ph - f * ph

    def fmt(v: float, tooltip: bool = False) -> str:
        if y_fmt == "percent":
            digits = 0 if (yhi - ylo) >= 0.05 else 1 if (yhi - ylo) >= 0.005 else 2
            return f"{v * 100:.{digits}f}%"
        if y_fmt == "seconds":
            return _secs(v) if tooltip else _tick_secs(v)
        return _si(v)

    out = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_esc(aria)}">']
    # grid and y axis
    for t in yticks:
        yy = y(t)
        out.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        out.append(
            f'<text class="tick" x="{_ML - 8}" y="{yy + 4:.1f}" '
            f'text-anchor="end">{_esc(fmt(t))}</text>'
        )
    out.append(
        f'<text class="axis" transform="translate(16 {_MT + ph / 2:.0f}) rotate(-90)" '
        'text-anchor="middle">'
        f"{_esc(y_label)}{' (log scale)' if log else ''}</text>"
    )
    # x axis: ticks every 3 h (every hour on short spans)
    span_h = (t1 - t0) / 3600
    step_h = 1 if span_h <= 8 else 2 if span_h <= 16 else 3
    h = math.ceil(t0 / 3600 / step_h) * step_h
    while h * 3600 <= t1 + 1e-6:
        xx = x(h * 3600)
        out.append(
            f'<line class="xtick" x1="{xx:.1f}" x2="{xx:.1f}" y1="{_MT + ph}" y2="{_MT + ph + 5}"/>'
        )
        out.append(
            f'<text class="tick" x="{xx:.1f}" y="{_MT + ph + 19}" '
            f'text-anchor="middle">{_hhmm(h * 3600)}</text>'
        )
        h += step_h
    out.append(
        f'<line class="baseline" x1="{_ML}" x2="{_W - _MR}" y1="{_MT + ph}" y2="{_MT + ph}"/>'
    )
    out.append(
        f'<text class="axis" x="{_ML + pw / 2:.0f}" y="{_H - 6}" text-anchor="middle">'
        f"time of day (UTC), {interval_s / 60:g}-minute intervals</text>"
    )
    # data
    bw = pw / n
    if stacked:
        base = [0.0] * n
        for s in series:
            parts = []
            for i in range(n):
                v = (s.values[i] or 0) if i < len(s.values) else 0
                if v > 0:
                    y_top, y_bot = y(base[i] + v), y(base[i])
                    parts.append(
                        f'<rect x="{x(t0 + i * interval_s) + 0.3:.1f}" y="{y_top:.1f}" '
                        f'width="{max(bw - 0.6, 0.5):.2f}" height="{max(y_bot - y_top, 0.5):.1f}"/>'
                    )
                base[i] += v
            out.append(f'<g class="bars" fill="{s.color}">{"".join(parts)}</g>')
    else:
        for s in series:
            segs: list[list[str]] = [[]]
            for i in range(n):
                v = s.values[i] if i < len(s.values) else None
                if v is None or (log and v <= 0):
                    if segs[-1]:
                        segs.append([])
                    continue
                segs[-1].append(f"{x(t0 + (i + 0.5) * interval_s):.1f},{y(v):.1f}")
            for seg in segs:
                if s.fill and len(seg) > 1:
                    x0, x1 = seg[0].split(",")[0], seg[-1].split(",")[0]
                    yb = f"{y(max(ylo, 0.0) if not log else ylo):.1f}"
                    out.append(
                        f'<polygon class="area" points="{x0},{yb} {" ".join(seg)} {x1},{yb}" '
                        f'fill="{s.color}"/>'
                    )
                if len(seg) == 1:
                    cx, cy = seg[0].split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{s.color}"/>')
                elif seg:
                    dash = ' stroke-dasharray="6 4"' if s.dash else ""
                    out.append(
                        f'<polyline class="line" points="{" ".join(seg)}" '
                        f'stroke="{s.color}"{dash}/>'
                    )
    # reference lines
    for value, label in refs:
        if ylo <= value <= yhi:
            yy = y(value)
            out.append(
                f'<line class="ref" x1="{_ML}" x2="{_W - _MR}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
            )
            out.append(
                f'<text class="reflabel" x="{_W - _MR - 4}" y="{yy - 5:.1f}" '
                f'text-anchor="end">{_esc(label)}</text>'
            )
    # legend
    lx = _ML
    for s in series:
        dash = ' stroke-dasharray="6 4"' if s.dash else ""
        if stacked:
            sw = f'<rect x="{lx}" y="10" width="14" height="12" fill="{s.color}"/>'
        else:
            sw = (
                f'<line x1="{lx}" x2="{lx + 18}" y1="16" y2="16" stroke="{s.color}" '
                f'stroke-width="3"{dash}/>'
            )
        out.append(sw + f'<text class="legend" x="{lx + 24}" y="21">{_esc(s.label)}</text>')
        lx += 40 + 6.9 * len(s.label)
    # tooltips: one transparent column per interval
    tips = []
    for i in range(n):
        parts = [f"{_hhmm(t0 + i * interval_s)}-{_hhmm(t0 + (i + 1) * interval_s)}"]
        for s in series:
            v = s.values[i] if i < len(s.values) else None
            parts.append(
                f"{s.label}: "
                + ("-" if v is None else fmt(v, True) if y_fmt != "count" else f"{v:,.0f}")
            )
        tips.append(
            f'<rect x="{x(t0 + i * interval_s):.1f}" y="{_MT}" width="{bw:.2f}" height="{ph}">'
            f"<title>{_esc(chr(10).join(parts))}</title></rect>"
        )
    out.append(f'<g class="tips">{"".join(tips)}</g>')
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------ page parts
def _tile(label: str, value: str, note: str = "", tone: str = "") -> str:
    return (
        f'<div class="tile {tone}"><div class="tlabel">{_esc(label)}</div>'
        f'<div class="tvalue">{_esc(value)}</div>'
        f'<div class="tnote">{_esc(note)}</div></div>'
    )


def _table(
    head: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (),
    cls: str = "",
) -> str:
    """A table; cells are HTML already (escape before). ``head`` None: no header row."""
    th = "".join(
        f"<th{' class=num' if i in numeric else ''}>{_esc(h)}</th>"
        for i, h in enumerate(head or ())
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    thead = f"<thead><tr>{th}</tr></thead>" if head else ""
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def _section(id_: str, title: str, intro: str, body: str) -> str:
    return (
        f'<section id="{id_}"><h2>{_esc(title)}</h2>'
        + (f'<p class="intro">{intro}</p>' if intro else "")
        + body
        + "</section>"
    )


def _figure(title: str, chart: str, note: str = "") -> str:
    return (
        f'<figure><figcaption><span class="ftitle">{_esc(title)}</span>'
        + (f' <span class="fnote">{_esc(note)}</span>' if note else "")
        + f"</figcaption>{chart}</figure>"
    )


def _ratio(a: Sequence[Any], b: Sequence[Any]) -> list[float | None]:
    out: list[float | None] = []
    for i in range(max(len(a), len(b))):
        num = _num(a[i]) if i < len(a) else None
        den = _num(b[i]) if i < len(b) else None
        out.append(None if not den or num is None else num / den)
    return out


def _criterion_refs(
    result: crit.CriteriaResult | None, path: str, label: str
) -> list[tuple[float, str]]:
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


def _verdict(
    summary: Mapping[str, Any], run_dir: Path
) -> tuple[crit.CriteriaResult | None, str, str]:
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


def _banner(result: crit.CriteriaResult | None, source: str, problem: str) -> str:
    if problem:
        return (
            f'<div class="banner unknown"><div class="bmain">Verdict unavailable</div>'
            f'<div class="bsub">The exit criteria could not be judged: {_esc(problem)}</div></div>'
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
        f"{v.criterion.expression} (S{v.criterion.severity}, actual {crit.format_value(v.actual)})"
        for v in failing[:4]
    ) + (", ..." if len(failing) > 4 else "")
    counts = " &middot; ".join(
        f"S{s}: {result.failures.get(s, 0)} failed, {result.thresholds.get(s, 0)} allowed"
        for s in crit.SEVERITIES
    )
    sub = (
        f"{len(result.verdicts) - len(failing)} of {len(result.verdicts)} exit criteria pass"
        + (f". Failing: {_esc(detail)}" if failing else "")
        + "."
    )
    return (
        f'<div class="banner {tone}"><div class="bmain"><span class="mark">{mark}</span> '
        f"{_esc(head[0].upper() + head[1:])}"
        f'</div><div class="bsub">{sub}</div><div class="bcounts">{counts} <span class="src">'
        f"(criteria from {_esc(source)})</span></div></div>"
    )


# ------------------------------------------------------------------------------ the page
def render_report(summary: Mapping[str, Any], run_dir: Path | None = None) -> str:
    """The report page as one HTML string."""
    run_dir = Path(run_dir) if run_dir is not None else Path(".")
    run = summary.get("run") or {}
    lat = summary.get("latency_s") or {}
    cache = summary.get("cache") or {}
    thr = summary.get("throttle") or {}
    series = summary.get("series") or {}
    interval_s = float(series.get("interval_s", 900) or 900)
    start_ns = series.get("start_ns")
    day_label = run.get("day") or (
        datetime.fromtimestamp(start_ns / NS, UTC).strftime("%Y-%m-%d")
        if isinstance(start_ns, int)
        else ""
    )
    result, source, problem = _verdict(summary, run_dir)
    scenario = _scenario(run_dir, summary)
    name = run.get("scenario", "run")
    description = getattr(scenario, "description", "") if scenario is not None else ""

    # ---- header and key figures
    facts = [
        ("scale", f"{_num(run.get('scale')) or 0:g}"),
        ("meters", _int(run.get("meters"))),
        ("seed", run.get("seed", "n/a")),
        ("capacity uplift", f"x{_num(run.get('uplift')) or 0:g}"),
        ("demand", f"x{_num(run.get('demand')) or 0:g}"),
        ("DSP servers", _int(run.get("dsp_servers"))),
        ("shards", run.get("shards", "n/a")),
        ("dccsim", run.get("dccsim_version", "n/a")),
    ]
    facts_html = "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in facts)
    wt_crit = _criterion_refs(result, "within_target_ratio", "")

    def tone(path: str) -> str:
        judged = [v.passed for v in (result.verdicts if result else ()) if v.criterion.path == path]
        return "" if not judged else "good" if all(judged) else "bad"

    acts = summary.get("alert_actions") or {}
    tiles = "".join(
        [
            _tile(
                "requests", _int(summary.get("requests")), f"{_int(summary.get('retries'))} retries"
            ),
            _tile(
                "within target time",
                _pct(summary.get("within_target_ratio")),
                "of responses inside their target response time",
                tone("within_target_ratio"),
            ),
            _tile(
                "latency p50",
                _secs(lat.get("p50")),
                "from scheduled time to response",
                tone("latency_s.p50"),
            ),
            _tile(
                "latency p99",
                _secs(lat.get("p99")),
                f"max {_secs(lat.get('max'))}",
                tone("latency_s.p99"),
            ),
            _tile(
                "peak DSP backlog",
                _int(summary.get("peak_backlog")),
                f"mean wait {_secs(summary.get('mean_wait_s'))}",
                tone("peak_backlog"),
            ),
            _tile(
                "cache hit ratio",
                _pct(cache.get("hit_ratio"), 1),
                f"{_int(cache.get('device_requests_saved', cache.get('hits')))} "
                "device requests saved",
                tone("cache.hit_ratio"),
            ),
            _tile(
                "alerts throttled",
                _int(thr.get("throttled", acts.get("throttled"))),
                f"of {_int(summary.get('alerts'))} device alerts; "
                f"{_int(thr.get('forwarded', acts.get('forwarded')))} forwarded",
            ),
            _tile(
                "wall time",
                _secs(summary.get("wall_seconds")),
                f"{_si(_num(summary.get('events_per_second')) or 0)} events/s on this machine",
            ),
        ]
    )

    # ---- exit criteria table
    if result is not None:
        rows = [
            [
                f'<span class="pill {"pass" if v.passed else "fail"}">'
                f"{'PASS' if v.passed else 'FAIL'}</span>",
                f"S{v.criterion.severity}",
                f"<code>{_esc(v.criterion.expression)}</code>",
                _esc(crit.format_value(v.actual)),
            ]
            for v in sorted(result.verdicts, key=lambda v: (v.passed, v.criterion.severity))
        ]
        crit_html = _table(
            ["verdict", "severity", "criterion", "actual"], rows, numeric=[3], cls="criteria"
        ) + (
            '<p class="note">A failed criterion is a defect of its severity (S1 most severe). '
            "The run passes when no "
            "severity has more failures than it allows: "
            + ", ".join(f"S{s} {result.thresholds.get(s, 0)}" for s in crit.SEVERITIES)
            + f". Criteria from {_esc(source)}.</p>"
        )
    else:
        crit_html = (
            f'<p class="note">{_esc(problem) if problem else "No exit criteria for this run."}</p>'
        )

    # ---- traffic and backlog
    t0 = 0.0
    req = series.get("requests") or []
    resp = series.get("responses") or []
    peak_rate = max((_num(v) or 0 for v in req), default=0) / interval_s
    traffic = _figure(
        "Requests and responses per 15 minutes",
        time_chart(
            [
                Series("requests scheduled", req, _PALETTE["blue"], fill=True),
                Series("responses", resp, _PALETTE["orange"], dash=True),
            ],
            start_s=t0,
            interval_s=interval_s,
            y_label="per 15 minutes",
            aria="requests and responses over the day",
        ),
        f"peak {_si(peak_rate)} requests/s (15-minute average)",
    )
    backlog = _figure(
        "DSP backlog (peak in each 15 minutes)",
        time_chart(
            [
                Series(
                    "peak backlog", series.get("peak_backlog") or [], _PALETTE["purple"], fill=True
                )
            ],
            start_s=t0,
            interval_s=interval_s,
            y_label="requests waiting",
            aria="DSP backlog over the day",
        ),
        f"peak {_int(summary.get('peak_backlog'))} requests",
    )

    # ---- latency and compliance over the day
    p50 = series.get("latency_p50_s") or []
    p99 = series.get("latency_p99_s") or []
    lat_vals = [v for v in (*p50, *p99) if _num(v)]
    use_log = bool(lat_vals) and max(lat_vals) / max(min(lat_vals), 1e-9) > 40
    latency = _figure(
        "Latency per 15 minutes (scheduled time to response)",
        time_chart(
            [Series("p50", p50, _PALETTE["blue"]), Series("p99", p99, _PALETTE["red"])],
            start_s=t0,
            interval_s=interval_s,
            y_label="seconds",
            y_fmt="seconds",
            log=use_log,
            refs=_criterion_refs(result, "latency_s.p99", "whole-day p99"),
            aria="latency percentiles over the day",
        ),
        f"whole day: p50 {_secs(lat.get('p50'))}, p90 {_secs(lat.get('p90'))}, "
        f"p99 {_secs(lat.get('p99'))}, "
        f"p99.9 {_secs(lat.get('p999'))}, max {_secs(lat.get('max'))}",
    )
    within = _ratio(series.get("within_target") or [], req)
    wvals = [v for v in within if v is not None] + [r[0] for r in wt_crit]
    wlo = min(wvals, default=0.0)
    span = max(1.0 - wlo, 0.001)
    step = _nice_step(span * 1.1, 4)
    ylo = max(0.0, math.floor((wlo - span * 0.1) / step) * step)
    compliance = _figure(
        "Responses within their target response time, per 15 minutes",
        time_chart(
            [Series("within target", within, _PALETTE["green"])],
            start_s=t0,
            interval_s=interval_s,
            y_label="share of requests",
            y_fmt="percent",
            y_range=(ylo, 1.0),
            refs=[(v, f"exit criterion: whole day ≥ {_pct(v, 1)}") for v, _ in wt_crit],
            aria="target response compliance over the day",
        ),
        f"whole day {_pct(summary.get('within_target_ratio'))}; by scheduled time",
    )
    classes = summary.get("latency_by_class") or {}
    targets = {}
    if scenario is not None:
        targets = {k: c.target_s for k, c in scenario.capacity.classes.items()}
    class_rows = [
        [
            _esc(k.replace("_", " ")),
            _int(c.get("requests")),
            _secs(c.get("p50_s")),
            _secs(c.get("p99_s")),
            _secs(c.get("max_s")),
            _secs(targets[k]) if k in targets else "-",
        ]
        for k, c in sorted(classes.items(), key=lambda kv: -(_num(kv[1].get("requests")) or 0))
    ]
    class_html = (
        _table(
            ["request class", "requests", "p50", "p99", "max", "target"],
            class_rows,
            numeric=[1, 2, 3, 4, 5],
        )
        if class_rows
        else ""
    )

    # ---- compliance by SRV
    by_srv = summary.get("within_target_by_srv") or {}
    try:
        from dccsim.core.catalogue import catalogue

        cat = catalogue()
        names = {s: cat[s].name for s in by_srv if s in cat}
    except Exception:  # noqa: BLE001 - names are a nicety
        names = {}
    srv_target = {
        v.criterion.path.removeprefix("within_target_by_srv."): v.criterion.threshold
        for v in (result.verdicts if result else ())
        if v.criterion.path.startswith("within_target_by_srv.")
    }
    default_target = wt_crit[0][0] if wt_crit else None
    items = sorted(
        by_srv.items(), key=lambda kv: (_num(kv[1]) if _num(kv[1]) is not None else -1, kv[0])
    )
    # bars show the share OUTSIDE target, on a scale set by the worst SRV and the allowed share
    misses = [1 - r for _, v in items if (r := _num(v)) is not None]
    allowed = [
        1 - t
        for t in (*srv_target.values(), *([default_target] if default_target is not None else []))
    ]
    scale = max([*misses, *allowed, 1e-9]) * 1.1
    srv_rows = []
    for srv, ratio in items:
        r = _num(ratio)
        target = srv_target.get(srv, default_target)
        bad = r is not None and target is not None and r < target
        miss = 0.0 if r is None else 1 - r
        mark = (
            ""
            if target is None
            else f'<div class="allow" style="left:{(1 - target) / scale * 100:.2f}%"></div>'
        )
        bar = (
            f'<div class="bar" title="{_esc(_pct(miss))} outside target">'
            f'<div class="fill {"bad" if bad else "ok"}" '
            f'style="width:{miss / scale * 100:.2f}%"></div>{mark}</div>'
        )
        verdict = (
            "-"
            if target is None
            else (
                f'<span class="{"bad" if bad else "ok"}">'
                f"{'below' if bad else 'meets'} {_pct(target, 1)}</span>"
            )
        )
        srv_rows.append(
            [
                f"<code>{_esc(srv)}</code>",
                _esc(names.get(srv, "")),
                _pct(r),
                _pct(miss),
                bar,
                verdict,
            ]
        )
    srv_html = (
        (
            _table(
                ["SRV", "service", "within target", "outside", "share outside target", "target"],
                srv_rows,
                numeric=[2, 3],
                cls="srv",
            )
            + (
                '<p class="note">Bars: share of responses outside their target time; '
                "the tick marks what the "
                "target allows.</p>"
                if default_target is not None or srv_target
                else ""
            )
        )
        if srv_rows
        else '<p class="note">No requests by SRV in this run.</p>'
    )
    codes = summary.get("response_codes") or {}
    total_codes = sum(_num(v) or 0 for v in codes.values()) or 1
    code_rows = [
        [f"<code>{_esc(k)}</code>", _int(v), _pct((_num(v) or 0) / total_codes)]
        for k, v in sorted(codes.items(), key=lambda kv: -(_num(kv[1]) or 0))
    ]
    outcomes = summary.get("outcomes") or {}
    total_out = sum(_num(v) or 0 for v in outcomes.values()) or 1
    out_rows = [
        [_esc(k), _int(v), _pct((_num(v) or 0) / total_out)]
        for k, v in sorted(outcomes.items(), key=lambda kv: -(_num(kv[1]) or 0))
    ]
    codes_html = (
        '<div class="cols">'
        + _table(["response code", "responses", "share"], code_rows, numeric=[1, 2])
        + _table(["outcome", "requests", "share"], out_rows, numeric=[1, 2])
        + "</div>"
    )

    # ---- cache
    cache_chart = _figure(
        "Requests answered from the readings cache vs sent to a device, per 15 minutes",
        time_chart(
            [
                Series("sent to a device", series.get("device_requests") or [], _PALETTE["grey"]),
                Series("answered from the cache", series.get("cache_hits") or [], _PALETTE["teal"]),
            ],
            start_s=t0,
            interval_s=interval_s,
            y_label="per 15 minutes",
            stacked=True,
            aria="cache hits over the day",
        ),
        "all requests that reached a device or the cache",
    )
    cache_tiles = "".join(
        [
            _tile(
                "hit ratio",
                _pct(cache.get("hit_ratio"), 1),
                f"{_int(cache.get('hits'))} hits, {_int(cache.get('misses'))} misses",
            ),
            _tile(
                "device requests saved", _int(cache.get("device_requests_saved", cache.get("hits")))
            ),
            _tile(
                "memory per entry",
                f"{_num(cache.get('bytes_per_entry')) or 0:.1f} B"
                if _num(cache.get("bytes_per_entry"))
                else "n/a",
                f"{_int(cache.get('resident'))} entries resident at the end",
            ),
            _tile(
                "retention",
                f"{_num(cache.get('retention_hours')) or 0:g} h"
                if _num(cache.get("retention_hours"))
                else "n/a",
                f"{_int(cache.get('stores'))} stored, {_int(cache.get('expired'))} expired, "
                f"{_int(cache.get('evicted'))} evicted",
            ),
        ]
    )

    # ---- alert storm protection
    alerts_series = series.get("alerts") or {}
    throttle_chart = _figure(
        "Device alerts by Alert Storm Protection action, per 15 minutes",
        time_chart(
            [
                Series("forwarded", alerts_series.get("forwarded") or [], _PALETTE["blue"]),
                Series(
                    "excluded (never throttled)",
                    alerts_series.get("excluded") or [],
                    _PALETTE["amber"],
                ),
                Series(
                    "throttled (discarded)", alerts_series.get("throttled") or [], _PALETTE["red"]
                ),
            ],
            start_s=t0,
            interval_s=interval_s,
            y_label="alerts per 15 minutes",
            stacked=True,
            aria="alert actions over the day",
        ),
    )
    storm_tiles = "".join(
        [
            _tile(
                "alerts throttled",
                _int(thr.get("throttled", acts.get("throttled"))),
                f"of {_int(summary.get('alerts'))} device alerts",
            ),
            _tile(
                "storm alerts let through",
                _int(summary.get("storm_alerts_forwarded")),
                f"of {_int(summary.get('storm_alerts'))} storm alerts",
            ),
            _tile(
                "non-storm alerts throttled",
                _int(summary.get("nonstorm_alerts_throttled")),
                "collateral: alerts from healthy devices",
            ),
            _tile(
                "excluded codes",
                _int(thr.get("excluded", acts.get("excluded"))),
                "alerts on the exclusion list",
            ),
        ]
    )
    top = summary.get("top_throttled_devices") or []
    top_rows = [
        [str(i + 1), f"<code>{_esc(_eui(d.get('device')))}</code>", _int(d.get("throttled"))]
        for i, d in enumerate(top)
    ]
    top_html = (
        _table(["#", "device (EUI-64)", "alerts throttled"], top_rows, numeric=[0, 2], cls="narrow")
        if top_rows
        else '<p class="note">No device was throttled.</p>'
    )
    cfg = thr.get("config") if isinstance(thr.get("config"), Mapping) else None
    cfg_html = (
        (
            '<p class="note">Throttle settings: '
            + ", ".join(
                f"{_esc(k)} = {_esc(', '.join(map(str, v)) if isinstance(v, list | tuple) else v)}"
                for k, v in cfg.items()
            )
            + "</p>"
        )
        if cfg
        else ""
    )

    # ---- details
    inv = summary.get("invalid_traffic") or {}
    inv_rows = [
        [_esc(k.replace("_", " ")), ", ".join(f"{_esc(c)} {_int(n)}" for c, n in v.items())]
        for k, v in inv.items()
    ]
    logs = summary.get("logs") or {}
    detail_rows = [
        ["future-dated command alerts", _int(summary.get("future_dated_alerts"))],
        ["requests.arrow", _bytes(logs.get("requests_arrow_bytes"))],
        ["alerts.arrow", _bytes(logs.get("alerts_arrow_bytes"))],
        ["peak memory (RSS)", _bytes(summary.get("peak_rss_bytes"))],
        ["events per second", _int(summary.get("events_per_second"))],
    ]
    details = (
        '<div class="cols">'
        + _table(None, detail_rows, numeric=[1], cls="kv")
        + (_table(["invalid traffic", "rejected with"], inv_rows) if inv_rows else "")
        + "</div>"
    )

    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(
        [
            '<header><div class="kicker">dccsim run report</div>'
            f'<h1>{_esc(name)} <span class="day">{_esc(day_label)}</span></h1>'
            + (f'<p class="desc">{_esc(description)}</p>' if description else "")
            + f'<dl class="facts">{facts_html}</dl></header>',
            _banner(result, source, problem),
            f'<div class="tiles">{tiles}</div>',
            _section("criteria", "Exit criteria", "", crit_html),
            _section(
                "traffic",
                "Traffic and DSP backlog over the day",
                "Service Requests by the 15 minutes they were scheduled in, "
                "responses by the 15 minutes they were "
                "answered in, and the longest DSP queue seen in each interval.",
                traffic + backlog,
            ),
            _section(
                "latency",
                "Latency and target response time over the day",
                "Latency runs from the scheduled time to the response, "
                "so a stalled DSP cannot hide its queue.",
                latency + compliance + class_html,
            ),
            _section(
                "srv",
                "Target response compliance by SRV",
                "Share of each Service Reference Variant's responses inside their target "
                "response time, worst first.",
                srv_html + codes_html,
            ),
            _section(
                "cache",
                "Readings cache (SRVs 4.6.1, 4.8.1, 4.8.3)",
                "A read of the same device, SRV and period within the retention window "
                "is answered from the cache "
                "without a device round trip.",
                f'<div class="tiles small">{cache_tiles}</div>' + cache_chart,
            ),
            _section(
                "throttle",
                "Alert Storm Protection",
                "Alerts per device and alert code over the threshold in a window are "
                "discarded; one per designated "
                "period is forwarded with the throttled count.",
                f'<div class="tiles small">{storm_tiles}</div>'
                + throttle_chart
                + "<h3>Devices with the most throttled alerts</h3>"
                + top_html
                + cfg_html,
            ),
            _section("details", "Run details", "", details),
            f"<footer>Generated {generated} from {_esc(run_dir.name or 'summary.json')}"
            f"/summary.json by dccsim {_esc(run.get('dccsim_version', ''))}. "
            "Times of day are UTC from the start of the simulated day; "
            "hover a chart for the values of an interval.</footer>",
        ]
    )
    title = f"dccsim report: {name} {day_label}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``report.html`` for a run folder (or ``out``) and return its path.

    Raises :class:`ReportError` when the folder has no readable ``summary.json``.
    """
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ReportError(
            f"{run_dir}: no summary.json (expected a run folder written by dccsim run)"
        )
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


_CSS = """
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
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:0 0 8px}
@media (max-width:720px){.tiles{grid-template-columns:repeat(2,1fr)}}
.tiles.small{grid-template-columns:repeat(auto-fit,minmax(200px,1fr));margin:6px 0 14px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 12px}
.tile.good{border-color:#86efac;background:#f0fdf4}
.tile.bad{border-color:#fca5a5;background:#fef2f2}
.tlabel{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;
font-weight:600}
.tvalue{font-size:22px;font-weight:700;font-variant-numeric:tabular-nums;white-space:nowrap}
.tnote{font-size:12px;color:var(--muted)}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 22px;
margin:16px 0}
h2{font-size:19px;margin:0 0 4px}h3{font-size:15px;margin:16px 0 6px}
.intro{margin:0 0 12px;color:#475569;font-size:14px}
figure{margin:12px 0 6px}figcaption{margin-bottom:2px}
.ftitle{font-weight:600}.fnote{color:var(--muted);font-size:13px;margin-left:8px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#eef2f7}svg .baseline{stroke:#94a3b8}svg .xtick{stroke:#94a3b8}
svg .tick{font-size:12px;fill:#64748b;font-variant-numeric:tabular-nums}
svg .axis{font-size:12.5px;fill:#334155}svg .legend{font-size:13px;fill:#1e293b}
svg .area{fill-opacity:.12;stroke:none}
svg .line{fill:none;stroke-width:2.2;stroke-linejoin:round;stroke-linecap:round}
svg .ref{stroke:#b91c1c;stroke-dasharray:5 4;stroke-width:1.3}
svg .reflabel{font-size:12px;fill:#b91c1c;paint-order:stroke;stroke:#fff;stroke-width:4px;
stroke-linejoin:round}
svg .nodata{font-size:14px;fill:#94a3b8}
svg .tips rect{fill:transparent}svg .tips rect:hover{fill:rgba(15,23,42,.06)}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}
th{text-align:left;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
border-bottom:2px solid var(--line);padding:6px 8px}
td{border-bottom:1px solid var(--line);padding:5px 8px;vertical-align:middle}
.num{text-align:right;font-variant-numeric:tabular-nums}
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
