"""``sweep.html``: the saturation curve of a sweep, one self-contained page (no scripts, no links).

Within-target ratio, p99 latency, peak DSP backlog and, where the summaries have it, refused
work, each against the swept parameter (uplift or demand): a point per setting, green where
the run passed its exit criteria and red where it failed, the criterion's threshold as a
dashed pass line, and the search's answer as a vertical line. A table lists every setting.
:func:`xy_chart` draws one such chart with :mod:`.charts`' helpers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .charts import CSS, PALETTE, as_number, esc, fmt_int, fmt_pct, fmt_secs, fmt_si, fmt_tick_secs, linear_ticks
from .charts import table as html_table

__all__ = ["xy_chart", "sweep_page", "write_sweep_page"]

_W, _H = 960, 300
_ML, _MR, _MT, _MB = 72, 44, 40, 48
_PW, _PH = _W - _ML - _MR, _H - _MT - _MB


def _fmt(v: float, y_fmt: str) -> str:
    if y_fmt == "percent":
        return f"{v * 100:.4g}%"
    if y_fmt == "seconds":
        return fmt_tick_secs(v)
    return fmt_si(v)


def xy_chart(
    points: Sequence[tuple[float, float | None, bool | None]],
    *,
    x_label: str,
    y_label: str,
    y_fmt: str = "count",
    refs: Sequence[tuple[float, str]] = (),
    marks: Sequence[tuple[float, str]] = (),
    join: bool = True,
    aria: str = "",
) -> str:
    """An inline SVG of ``(x, y, passed)`` points joined in x order: a green dot where
    ``passed``, red where not, grey where unknown; ``refs`` are dashed horizontal lines
    (value, label), ``marks`` vertical lines (x, label). ``y_fmt``: ``count``, ``seconds`` or
    ``percent`` (values are shares 0..1). ``join=False`` leaves the points unjoined."""
    pts = sorted((x, y, ok) for x, y, ok in points if as_number(x) is not None and as_number(y) is not None)
    if not pts:
        return (
            f'<svg class="chart" viewBox="0 0 {_W} 80" role="img" aria-label="{esc(aria)}: no data">'
            f'<text x="{_W / 2}" y="45" text-anchor="middle" class="nodata">no data in this sweep</text></svg>'
        )
    xs = [p[0] for p in pts] + [m[0] for m in marks]
    ys = [float(p[1]) for p in pts] + [r[0] for r in refs]  # type: ignore[arg-type]
    x0, x1, xticks = linear_ticks(min(xs), max(xs)) if max(xs) > min(xs) else linear_ticks(min(xs) - 0.5, max(xs) + 0.5)
    y0, y1, yticks = linear_ticks(min(0.0, min(ys)) if y_fmt != "percent" else min(ys), max(ys))
    if y1 <= y0:
        y1 = y0 + 1

    def px(v: float) -> float:
        return _ML + (v - x0) / (x1 - x0) * _PW

    def py(v: float) -> float:
        return _MT + _PH - (v - y0) / (y1 - y0) * _PH

    out = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{esc(aria)}">']
    for t in yticks:
        out.append(f'<line class="grid" x1="{_ML}" x2="{_W - _MR}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        out.append(
            f'<text class="tick" x="{_ML - 8}" y="{py(t) + 4:.1f}" text-anchor="end">{esc(_fmt(t, y_fmt))}</text>'
        )
    for t in xticks:
        out.append(f'<line class="xtick" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{_MT + _PH}" y2="{_MT + _PH + 5}"/>')
        out.append(f'<text class="tick" x="{px(t):.1f}" y="{_MT + _PH + 19}" text-anchor="middle">{t:g}</text>')
    out.append(f'<line class="baseline" x1="{_ML}" x2="{_W - _MR}" y1="{_MT + _PH}" y2="{_MT + _PH}"/>')
    out.append(f'<text class="axis" x="{_ML + _PW / 2:.0f}" y="{_H - 6}" text-anchor="middle">{esc(x_label)}</text>')
    out.append(f'<text class="axis" transform="translate(16 {_MT + _PH / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{esc(y_label)}</text>')  # fmt: skip
    line = " ".join(f"{px(x):.1f},{py(float(y)):.1f}" for x, y, _ in pts)  # type: ignore[arg-type]
    if join:
        out.append(f'<polyline class="line" points="{line}" stroke="{PALETTE["blue"]}"/>')
    for value, label in refs:
        out.append(f'<line class="ref" x1="{_ML}" x2="{_W - _MR}" y1="{py(value):.1f}" y2="{py(value):.1f}"/>')
        out.append(f'<text class="reflabel" x="{_W - _MR - 4}" y="{py(value) - 5:.1f}" text-anchor="end">'
                   f"{esc(label)}</text>")  # fmt: skip
    for value, label in marks:
        out.append(f'<line class="mark" x1="{px(value):.1f}" x2="{px(value):.1f}" y1="{_MT}" y2="{_MT + _PH}"/>')
        out.append(f'<text class="marklabel" x="{px(value) + 5:.1f}" y="{_MT - 6}">{esc(label)}</text>')
    for x, y, ok in pts:
        color = PALETTE["green"] if ok is True else PALETTE["red"] if ok is False else PALETTE["grey"]
        verdict = "passed" if ok is True else "failed" if ok is False else "not judged"
        out.append(
            f'<circle cx="{px(x):.1f}" cy="{py(float(y)):.1f}" r="4.5" fill="{color}">'  # type: ignore[arg-type]
            f"<title>{esc(f'{x:g}: {_fmt(float(y), y_fmt)} ({verdict})')}</title></circle>"
        )  # type: ignore[arg-type]
    out.append("</svg>")
    return "".join(out)


def _swept(rows: Sequence[Mapping[str, Any]], find: str | None) -> str:
    if find is not None:
        return "uplift" if "uplift" in find else "demand"
    ups = {r["uplift"] for r in rows}
    dems = {r["demand"] for r in rows}
    return "demand" if len(dems) > 1 and len(ups) <= 1 else "uplift"


def _refs(criteria: Any, path: str) -> list[tuple[float, str]]:
    """The pass lines of the criteria on ``path``."""
    items = getattr(criteria, "items", ()) if criteria is not None else ()
    return [(c.threshold, f"pass: {c.expression}") for c in items if c.path == path]


def sweep_page(doc: Mapping[str, Any], criteria: Any = None) -> str:
    """The page of a ``sweep.json`` document, with ``criteria`` (the scenario's
    :class:`~dccsim.bench.results.criteria.Criteria`) for the pass lines."""
    rows = list(doc.get("settings", ()))
    find = doc.get("find")
    param = _swept(rows, find)
    answer = doc.get("answer")
    marks = [(float(answer), f"{find} {answer:g}")] if find and as_number(answer) is not None else []
    x_label = "capacity uplift" if param == "uplift" else "demand factor"
    others = sorted({r["demand" if param == "uplift" else "uplift"] for r in rows})
    if len(others) > 1:
        other = "demand" if param == "uplift" else "uplift"
        x_label += f" (settings at {other} {', '.join(f'{v:g}' for v in others)})"

    def chart(title: str, get: Any, y_fmt: str, path: str) -> str:
        pts = [(r[param], get(r), r.get("passed")) for r in rows]
        return (f'<figure><figcaption><span class="ftitle">{esc(title)}</span></figcaption>'
                + xy_chart(pts, x_label=x_label, y_label=title, y_fmt=y_fmt, refs=_refs(criteria, path),
                           marks=marks, join=len(others) <= 1, aria=title) + "</figure>")  # fmt: skip

    figures = [
        chart("within target response time", lambda r: r["within_target_ratio"], "percent", "within_target_ratio"),
        chart("p99 latency", lambda r: (r.get("latency_s") or {}).get("p99"), "seconds", "latency_s.p99"),
        chart("peak DSP backlog (requests)", lambda r: r["peak_backlog"], "count", "peak_backlog"),
    ]
    if any("refused" in r for r in rows):
        figures.append(chart("refused work (requests)", lambda r: r.get("refused"), "count", "refused"))
    if find:
        lo, hi = doc.get("bracket") or (math.nan, math.nan)
        headline = f"{find}: {answer:g}" if as_number(answer) is not None else f"{find}: none in [{lo:g}, {hi:g}]"
        intro = (f"Searched [{lo:g}, {hi:g}] to a tolerance of {doc.get('tolerance')}: each setting is judged by "
                 "the scenario's exit criteria (green passed, red failed).")  # fmt: skip
    else:
        headline, intro = f"{len(rows)} settings", "Each setting judged by the scenario's exit criteria."
    head = ["#", "uplift", "demand", "DSP servers", "requests", "within target", "p99", "peak backlog",
            *(["refused"] if any("refused" in r for r in rows) else []), "verdict"]  # fmt: skip
    body = [
        [str(i + 1), f"{r['uplift']:g}", f"{r['demand']:g}", fmt_int(r.get("dsp_servers")), fmt_int(r["requests"]),
         fmt_pct(r["within_target_ratio"]), fmt_secs((r.get("latency_s") or {}).get("p99")), fmt_int(r["peak_backlog"]),
         *([fmt_int(r.get("refused"))] if "refused" in head else []),
         esc("passed" if r.get("passed") else f"failed: {'; '.join(r.get('failed_criteria') or ())}")]
        for i, r in enumerate(rows)
    ]  # fmt: skip
    tbl = html_table(head, body, numeric=range(1, len(head) - 1))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>dccsim sweep: {esc(doc.get('scenario', ''))}</title><style>"
        ":root{--card:#fff;--line:#e2e8f0;--muted:#64748b}"
        "body{font-family:system-ui,sans-serif;background:#f8fafc;color:#0f172a;max-width:1040px;margin:24px auto;"
        "padding:0 16px}h1{font-size:24px}svg .mark{stroke:#0f172a;stroke-dasharray:2 3;stroke-width:1.3}"
        "svg .marklabel{font-size:12px;fill:#0f172a}" + CSS + "</style></head><body>"
        f"<h1>dccsim sweep: {esc(doc.get('scenario', ''))} <small>{esc(headline)}</small></h1>"
        f'<section id="curve"><h2>Saturation curve</h2><p class="intro">{esc(intro)}</p>{"".join(figures)}</section>'
        f'<section id="settings"><h2>Settings, in the order run</h2>{tbl}</section>'
        "</body></html>\n"
    )


def write_sweep_page(path: Path, doc: Mapping[str, Any], criteria: Any = None) -> None:
    """Write :func:`sweep_page` to ``path``."""
    Path(path).write_text(sweep_page(doc, criteria))
