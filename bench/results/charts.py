"""The drawing kit of the HTML report: value formatting, page parts and inline SVG charts.

Nothing here knows about a run summary; :mod:`.report` decides what the page shows, and this
module how it is drawn. The ``fmt_*`` helpers turn numbers into the short texts a page or a
table shows (``1.2k``, ``4.8 s``, ``5.0 MiB``, ``00-DB-12-...``); missing values (None, NaN,
non-numbers) format as ``n/a``. :func:`tile`, :func:`table`, :func:`section` and :func:`figure`
build the page's blocks from HTML and text, and :func:`time_chart` draws per-interval values
(a list of :class:`Series`) against the time of day as one self-contained ``<svg>`` element.
The command line uses the formatting and tick helpers too (``dccsim throttle``'s table and
``dccsim tune-throttle``'s plot, :mod:`.tuning_plot`).

:data:`CSS` styles the class names all of these produce; a page puts it in its style sheet,
beside the colour variables it uses (``--card``, ``--line``, ``--muted``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CSS",
    "PALETTE",
    "Series",
    "as_number",
    "esc",
    "figure",
    "fmt_bytes",
    "fmt_eui",
    "fmt_hhmm",
    "fmt_int",
    "fmt_pct",
    "fmt_secs",
    "fmt_si",
    "fmt_tick_secs",
    "linear_ticks",
    "log_ticks",
    "nice_step",
    "section",
    "table",
    "tile",
    "time_chart",
]


# ------------------------------------------------------------------------------ formatting
def esc(text: object) -> str:
    """Text made safe for HTML element content and attribute values."""
    return html.escape(str(text), quote=True)


def as_number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number (bools are not) or NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def fmt_int(value: Any) -> str:
    """A whole number with thousands separators (``1,234``); ``n/a`` when missing."""
    v = as_number(value)
    return "n/a" if v is None else f"{round(v):,}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A share 0..1 as a percentage (``0.975`` -> ``97.50%``); ``n/a`` when missing."""
    v = as_number(value)
    return "n/a" if v is None else f"{v * 100:.{digits}f}%"


def fmt_secs(value: Any) -> str:
    """A duration to three figures or so: ``850 ms``, ``4.80 s``, ``38.0 s``, ``1,200 s``."""
    v = as_number(value)
    if v is None:
        return "n/a"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 10:
        return f"{v:.2f} s"
    if v < 100:
        return f"{v:.1f} s"
    return f"{v:,.0f} s"


def fmt_tick_secs(v: float) -> str:
    """A duration as an axis tick: as short as exact (``500 ms``, ``2 s``, ``0 s``)."""
    if v == 0:
        return "0 s"
    if v < 1:
        return f"{v * 1000:g} ms"
    return f"{v:g} s"


def fmt_span(seconds: float) -> str:
    """A duration the short way, as a tuning grid states it: 90 -> 90s, 600 -> 10m, 7200 -> 2h,
    86400 -> 1d."""
    seconds = float(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def fmt_si(value: float) -> str:
    """A count to three significant figures with a k, M or G suffix (``12.3k``, ``4.5M``)."""
    a = abs(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}" if a < 1000 else f"{value:,.0f}"


def fmt_bytes(value: Any) -> str:
    """A size in bytes with a binary unit (``5.0 MiB``); ``n/a`` when missing."""
    v = as_number(value)
    if v is None:
        return "n/a"
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if v >= div:
            return f"{v / div:.1f} {unit}"
    return f"{v:.0f} B"


def fmt_hhmm(seconds: float) -> str:
    """Seconds from the start of the day as ``HH:MM``, with `` +Nd`` on later days."""
    s = int(round(seconds))
    day, rest = divmod(s, 86_400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return text + (f" +{day}d" if day else "")


def fmt_eui(device: Any) -> str:
    """A 16-hex-digit device id as an EUI-64 (``00-DB-12-...``); anything else upper-cased as it is."""
    text = str(device).upper()
    if len(text) == 16 and all(c in "0123456789ABCDEF" for c in text):
        return "-".join(text[i : i + 2] for i in range(0, 16, 2))
    return text


# ------------------------------------------------------------------------------ page parts
def tile(label: str, value: str, note: str = "", tone: str = "") -> str:
    """A key figure: label, value and note (text, escaped here); ``tone`` ``good`` or ``bad`` colours it."""
    return (
        f'<div class="tile {tone}"><div class="tlabel">{esc(label)}</div>'
        f'<div class="tvalue">{esc(value)}</div>'
        f'<div class="tnote">{esc(note)}</div></div>'
    )


def table(
    head: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (),
    cls: str = "",
) -> str:
    """A table; cells are HTML already (escape before). ``head`` None: no header row."""
    th = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(head or ()))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    thead = f"<thead><tr>{th}</tr></thead>" if head else ""
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def section(id_: str, title: str, intro: str, body: str) -> str:
    """A titled ``<section>``; ``intro`` and ``body`` are HTML already (an empty intro is left out)."""
    return (
        f'<section id="{id_}"><h2>{esc(title)}</h2>'
        + (f'<p class="intro">{intro}</p>' if intro else "")
        + body
        + "</section>"
    )


def figure(title: str, chart: str, note: str = "") -> str:
    """``chart`` (an ``<svg>``) in a ``<figure>`` captioned with its title and an optional note."""
    return (
        f'<figure><figcaption><span class="ftitle">{esc(title)}</span>'
        + (f' <span class="fnote">{esc(note)}</span>' if note else "")
        + f"</figcaption>{chart}</figure>"
    )


# ------------------------------------------------------------------------------ charts
#: the colours the report's charts use, by name
PALETTE = {
    "blue": "#2563eb",
    "orange": "#ea580c",
    "green": "#16a34a",
    "red": "#dc2626",
    "grey": "#64748b",
    "purple": "#7c3aed",
    "teal": "#0d9488",
    "amber": "#d97706",
}
#: the chart's size in SVG units, and its margins (left, right, top, bottom) around the plot
_W, _H = 960, 270
_ML, _MR, _MT, _MB = 72, 44, 40, 46
_PW, _PH = _W - _ML - _MR, _H - _MT - _MB  # the plot area inside the margins


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or stacked layer) of a chart."""

    label: str
    values: Sequence[float | None]
    color: str
    dash: bool = False
    #: shade the area under the line
    fill: bool = False


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-2.5-5 step that cuts ``span`` into about ``target`` pieces."""
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def linear_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Axis ends on a nice step around [lo, hi], and the ticks from one end to the other."""
    if hi <= lo:
        hi = lo + 1
    step = nice_step(hi - lo)
    start = math.floor(lo / step) * step
    end = math.ceil(hi / step) * step
    ticks = []
    v = start
    while v <= end + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return start, end, ticks


def log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Axis ends on the 1-2-5 grid around [lo, hi], and ticks on it (fewer when crowded)."""
    grid = [
        m * 10.0**e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)
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
    ``log`` asks for a log scale, used when there are positive values and they are not all equal;
    ``y_range`` fixes the y axis's range (its ends are rounded out to ticks).
    """
    n = max((len(s.values) for s in series), default=0)
    if n == 0 or all(v is None for s in series for v in s.values):
        return (
            f'<svg class="chart" viewBox="0 0 {_W} 80" role="img" '
            f'aria-label="{esc(aria)}: no data"><text x="{_W / 2}" y="45" text-anchor="middle" '
            'class="nodata">no data in this run</text></svg>'
        )
    frame, yticks = _frame(series, n, start_s, interval_s, y_fmt, stacked, refs, log, y_range)
    out = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{esc(aria)}">']
    out += _y_axis(frame, yticks, y_label)
    out += _x_axis(frame)
    out += _bars(frame, series) if stacked else _lines(frame, series)
    out += _ref_lines(frame, refs)
    out += _legend(series, stacked)
    out.append(_tooltips(frame, series))
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Frame:
    """A chart's scales: ``n`` intervals from ``t0`` to ``t1`` across, ``ylo`` to ``yhi`` up."""

    t0: float
    t1: float
    interval_s: float
    n: int
    ylo: float
    yhi: float
    log: bool
    y_fmt: str

    def x(self, t: float) -> float:
        """The x of time ``t`` (seconds from the start of the day)."""
        return _ML + (t - self.t0) / (self.t1 - self.t0) * _PW

    def y(self, v: float) -> float:
        """The y of value ``v``; on a log scale, values below the axis sit on it."""
        if self.log:
            v = max(v, self.ylo)
            f = (math.log10(v) - math.log10(self.ylo)) / (math.log10(self.yhi) - math.log10(self.ylo))
        else:
            f = (v - self.ylo) / (self.yhi - self.ylo)
        return _MT + _PH - f * _PH

    def fmt(self, v: float, tooltip: bool = False) -> str:
        """A value as ``y_fmt`` shows it: short on a tick, fuller (for seconds) in a tooltip."""
        if self.y_fmt == "percent":
            digits = 0 if (self.yhi - self.ylo) >= 0.05 else 1 if (self.yhi - self.ylo) >= 0.005 else 2
            return f"{v * 100:.{digits}f}%"
        if self.y_fmt == "seconds":
            return fmt_secs(v) if tooltip else fmt_tick_secs(v)
        return fmt_si(v)


def _frame(
    series: Sequence[Series],
    n: int,
    start_s: float,
    interval_s: float,
    y_fmt: str,
    stacked: bool,
    refs: Sequence[tuple[float, str]],
    log: bool,
    y_range: tuple[float, float] | None,
) -> tuple[_Frame, list[float]]:
    """The scales that fit the values (stacked: their totals) and the reference lines, and the y ticks."""
    if stacked:
        totals = [sum((s.values[i] or 0) if i < len(s.values) else 0 for s in series) for i in range(n)]
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
    ylo, yhi, yticks = log_ticks(lo, hi) if log else linear_ticks(lo, hi)
    return _Frame(start_s, start_s + n * interval_s, interval_s, n, ylo, yhi, log, y_fmt), yticks


def _y_axis(frame: _Frame, yticks: Sequence[float], y_label: str) -> list[str]:
    """Grid lines and labels at the y ticks, and the axis title."""
    out = []
    for t in yticks:
        yy = frame.y(t)
        out.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        out.append(f'<text class="tick" x="{_ML - 8}" y="{yy + 4:.1f}" text-anchor="end">{esc(frame.fmt(t))}</text>')
    out.append(
        f'<text class="axis" transform="translate(16 {_MT + _PH / 2:.0f}) rotate(-90)" text-anchor="middle">'
        f"{esc(y_label)}{' (log scale)' if frame.log else ''}</text>"
    )
    return out


def _x_axis(frame: _Frame) -> list[str]:
    """Times of day every 3 hours (every 2 or 1 on shorter spans), the baseline and the axis title."""
    out = []
    span_h = (frame.t1 - frame.t0) / 3600
    step_h = 1 if span_h <= 8 else 2 if span_h <= 16 else 3
    h = math.ceil(frame.t0 / 3600 / step_h) * step_h
    while h * 3600 <= frame.t1 + 1e-6:
        xx = frame.x(h * 3600)
        out.append(f'<line class="xtick" x1="{xx:.1f}" x2="{xx:.1f}" y1="{_MT + _PH}" y2="{_MT + _PH + 5}"/>')
        out.append(
            f'<text class="tick" x="{xx:.1f}" y="{_MT + _PH + 19}" text-anchor="middle">{fmt_hhmm(h * 3600)}</text>'
        )
        h += step_h
    out.append(f'<line class="baseline" x1="{_ML}" x2="{_W - _MR}" y1="{_MT + _PH}" y2="{_MT + _PH}"/>')
    out.append(
        f'<text class="axis" x="{_ML + _PW / 2:.0f}" y="{_H - 6}" text-anchor="middle">'
        f"time of day (UTC), {frame.interval_s / 60:g}-minute intervals</text>"
    )
    return out


def _bars(frame: _Frame, series: Sequence[Series]) -> list[str]:
    """Stacked bars, one group per series, the first at the bottom; empty layers draw nothing."""
    out = []
    bw = _PW / frame.n
    base = [0.0] * frame.n
    for s in series:
        parts = []
        for i in range(frame.n):
            v = (s.values[i] or 0) if i < len(s.values) else 0
            if v > 0:
                y_top, y_bot = frame.y(base[i] + v), frame.y(base[i])
                parts.append(
                    f'<rect x="{frame.x(frame.t0 + i * frame.interval_s) + 0.3:.1f}" y="{y_top:.1f}" '
                    f'width="{max(bw - 0.6, 0.5):.2f}" height="{max(y_bot - y_top, 0.5):.1f}"/>'
                )
            base[i] += v
        out.append(f'<g class="bars" fill="{s.color}">{"".join(parts)}</g>')
    return out


def _lines(frame: _Frame, series: Sequence[Series]) -> list[str]:
    """A line per series through the middle of each interval, broken where a value is missing
    (or not positive, on a log scale); a lone point is a dot, and ``fill`` shades under the line."""
    out = []
    for s in series:
        segs: list[list[str]] = [[]]
        for i in range(frame.n):
            v = s.values[i] if i < len(s.values) else None
            if v is None or (frame.log and v <= 0):
                if segs[-1]:
                    segs.append([])
                continue
            segs[-1].append(f"{frame.x(frame.t0 + (i + 0.5) * frame.interval_s):.1f},{frame.y(v):.1f}")
        for seg in segs:
            if s.fill and len(seg) > 1:
                x0, x1 = seg[0].split(",")[0], seg[-1].split(",")[0]
                yb = f"{frame.y(max(frame.ylo, 0.0) if not frame.log else frame.ylo):.1f}"
                out.append(f'<polygon class="area" points="{x0},{yb} {" ".join(seg)} {x1},{yb}" fill="{s.color}"/>')
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{s.color}"/>')
            elif seg:
                dash = ' stroke-dasharray="6 4"' if s.dash else ""
                out.append(f'<polyline class="line" points="{" ".join(seg)}" stroke="{s.color}"{dash}/>')
    return out


def _ref_lines(frame: _Frame, refs: Sequence[tuple[float, str]]) -> list[str]:
    """Dashed horizontal lines, labelled at the right, for the reference values on the axis."""
    out = []
    for value, label in refs:
        if frame.ylo <= value <= frame.yhi:
            yy = frame.y(value)
            out.append(f'<line class="ref" x1="{_ML}" x2="{_W - _MR}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
            out.append(
                f'<text class="reflabel" x="{_W - _MR - 4}" y="{yy - 5:.1f}" text-anchor="end">{esc(label)}</text>'
            )
    return out


def _legend(series: Sequence[Series], stacked: bool) -> list[str]:
    """A swatch (a block for bars, a stroke for lines) and the label of each series, left to right."""
    out = []
    lx: float = _ML
    for s in series:
        dash = ' stroke-dasharray="6 4"' if s.dash else ""
        if stacked:
            sw = f'<rect x="{lx}" y="10" width="14" height="12" fill="{s.color}"/>'
        else:
            sw = f'<line x1="{lx}" x2="{lx + 18}" y1="16" y2="16" stroke="{s.color}" stroke-width="3"{dash}/>'
        out.append(sw + f'<text class="legend" x="{lx + 24}" y="21">{esc(s.label)}</text>')
        lx += 40 + 6.9 * len(s.label)
    return out


def _tooltips(frame: _Frame, series: Sequence[Series]) -> str:
    """One transparent column per interval, titled with the interval and each series' value."""
    tips = []
    bw = _PW / frame.n
    for i in range(frame.n):
        start, end = frame.t0 + i * frame.interval_s, frame.t0 + (i + 1) * frame.interval_s
        parts = [f"{fmt_hhmm(start)}-{fmt_hhmm(end)}"]
        for s in series:
            v = s.values[i] if i < len(s.values) else None
            shown = "-" if v is None else frame.fmt(v, True) if frame.y_fmt != "count" else f"{v:,.0f}"
            parts.append(f"{s.label}: {shown}")
        tips.append(
            f'<rect x="{frame.x(frame.t0 + i * frame.interval_s):.1f}" y="{_MT}" width="{bw:.2f}" height="{_PH}">'
            f"<title>{esc(chr(10).join(parts))}</title></rect>"
        )
    return f'<g class="tips">{"".join(tips)}</g>'


#: the style rules for the class names of the page parts and charts drawn here
CSS = """.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:0 0 8px}
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
"""


def cdf_chart(curves: Sequence[tuple[str, str, Sequence[float], Sequence[float]]], *, aria: str = "") -> str:
    """An inline SVG of latency distributions: each curve ``(label, color, seconds, shares)``
    (the share of requests answered within that time, 0..1, non-decreasing) on a log time axis."""
    xs = [x for _, _, sec, _ in curves for x in sec if x and x > 0]
    if not xs:
        return (
            f'<svg class="chart" viewBox="0 0 {_W} 80" role="img" aria-label="{esc(aria)}: no data">'
            f'<text x="{_W / 2}" y="45" text-anchor="middle" class="nodata">no data in this run</text></svg>'
        )
    lo, hi, ticks = log_ticks(min(xs), max(xs))
    if hi <= lo:
        hi = lo * 10

    def px(v: float) -> float:
        v = min(max(v, lo), hi)
        return _ML + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * _PW

    def py(f: float) -> float:
        return _MT + _PH - f * _PH

    out = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{esc(aria)}">']
    for f in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0):
        out.append(
            f'<line class="grid" x1="{_ML}" x2="{_ML + _PW}" y1="{py(f):.1f}" y2="{py(f):.1f}"/>'
            f'<text class="tick" x="{_ML - 6}" y="{py(f) + 4:.1f}" text-anchor="end">{f * 100:g}%</text>'
        )
    for t in ticks:
        out.append(
            f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{_MT}" y2="{_MT + _PH}"/>'
            f'<text class="tick" x="{px(t):.1f}" y="{_MT + _PH + 16}" text-anchor="middle">'
            f"{esc(fmt_tick_secs(t))}</text>"
        )
    out.append(f'<text class="axis" x="{_ML + _PW / 2}" y="{_H - 6}" text-anchor="middle">latency (log scale)</text>')
    out.append(
        f'<text class="axis" x="14" y="{_MT + _PH / 2}" transform="rotate(-90 14 {_MT + _PH / 2})" '
        'text-anchor="middle">share answered within</text>'
    )
    for k, (label, color, sec, share) in enumerate(curves):
        pts = " ".join(f"{px(x):.1f},{py(f):.1f}" for x, f in zip(sec, share, strict=True) if x and x > 0)
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"><title>{esc(label)}'
            "</title></polyline>"
        )
        out.append(
            f'<rect x="{_ML + 8 + 170 * k}" y="10" width="12" height="12" fill="{color}"/>'
            f'<text class="legend" x="{_ML + 24 + 170 * k}" y="20">{esc(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


#: the shares at which a latency distribution is drawn (percentiles / 100)
CDF_SHARES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
