"""``dccsim compare BASE NEW --html OUT``: two runs on one self-contained page.

The verdict and every KPI with its change (as the terminal table has them), the two runs'
series overlaid (requests, share within target and p99 latency per 15 minutes), their latency
distributions overlaid (from each run's ``histograms.json``, when both have one), and the
per-SRV table with the change of each SRV's compliance and p99. No scripts, nothing loaded
from outside, like ``report.html``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .charts import PALETTE, Series, cdf_chart, esc, figure, fmt_int, fmt_pct, fmt_secs, section, table, time_chart
from .compare import Comparison, fmt_kpi, row_change
from .criteria import Histograms
from .summary import RunSummary

__all__ = ["render_compare_page"]

#: how a change is coloured (inline: the report's .bad class is a bar's)
_TONE = {"bad": "color:#dc2626;font-weight:600", "warn": "color:#b45309", "good": "color:#15803d"}


def _tone(text: str, tone: str) -> str:
    style = _TONE.get(tone)
    return f'<span style="{style}">{esc(text)}</span>' if style else esc(text)


def _share(within: list[int], requests: list[int]) -> list[float | None]:
    return [w / r if r else None for w, r in zip(within, requests, strict=False)]


def _kpi_table(cmp: Comparison, a: str, b: str) -> str:
    rows = []
    for r in cmp.rows:
        text, tone, verdict = row_change(r)
        change = _tone(text, tone)
        rows.append([
            esc(r.kpi.name) + (' <span class="note">(machine)</span>' if r.kpi.kind == "machine" else ""),
            esc(fmt_kpi(r.base, r.kpi.unit)), esc(fmt_kpi(r.new, r.kpi.unit)), change,
            "-" if r.limit is None else fmt_pct(r.limit, 0),
            _tone(verdict, "bad") if verdict == "REGRESSED" else esc(verdict),
        ])  # fmt: skip
    return table(["KPI", a, b, "change", "limit", "verdict"], rows, numeric=[1, 2, 3, 4])


def _srv_table(base: RunSummary, new: RunSummary, a: str, b: str) -> str:
    srvs = sorted(set(base.within_target_by_srv) | set(new.within_target_by_srv))
    rows = []
    for srv in srvs:
        wa, wb = base.within_target_by_srv.get(srv), new.within_target_by_srv.get(srv)
        la, lb = base.latency_by_srv.get(srv), new.latency_by_srv.get(srv)
        delta = "" if wa is None or wb is None else f"{(wb - wa) * 100:+.2f} pp"
        tone = "" if wa is None or wb is None or abs(wb - wa) < 1e-4 else "bad" if wb < wa else "good"
        p99a, p99b = (la.p99_s if la else None), (lb.p99_s if lb else None)
        rows.append([
            f"<code>{esc(srv)}</code>",
            fmt_int(la.requests) if la else "", fmt_int(lb.requests) if lb else "",
            fmt_pct(wa) if wa is not None else "-", fmt_pct(wb) if wb is not None else "-",
            _tone(delta, tone),
            fmt_secs(p99a), fmt_secs(p99b),
        ])  # fmt: skip
    if not rows:
        return '<p class="note">No requests by SRV in either run.</p>'
    heads = ["SRV", f"requests {a}", f"requests {b}", f"within target {a}", f"within target {b}", "change",
             f"p99 {a}", f"p99 {b}"]  # fmt: skip
    return table([esc(h) for h in heads], rows, numeric=[1, 2, 3, 4, 5, 6, 7])


def _series(base: RunSummary, new: RunSummary, a: str, b: str) -> str:
    sa, sb = base.series, new.series
    interval_s = float(sa.interval_s or 900)
    blue, orange = PALETTE["blue"], PALETTE["orange"]
    charts = [
        ("Requests per 15 minutes", "per 15 minutes", "count", sa.requests, sb.requests),
        ("Share within target per 15 minutes", "share of requests", "percent",
         _share(sa.within_target, sa.requests), _share(sb.within_target, sb.requests)),
        ("p99 latency per 15 minutes", "seconds", "seconds", sa.latency_p99_s, sb.latency_p99_s),
    ]  # fmt: skip
    out = []
    for title, y_label, y_fmt, va, vb in charts:
        out.append(figure(title, time_chart(
            [Series(a, va, blue), Series(b, vb, orange, dash=True)],
            start_s=0.0, interval_s=interval_s, y_label=y_label, y_fmt=y_fmt, aria=f"{title}: {a} and {b}",
        )))  # fmt: skip
    return "".join(out)


def _distribution(ha: Histograms | None, hb: Histograms | None, a: str, b: str) -> str:
    from .report import cdf_points

    curves = []
    for h, label, color in ((ha, a, PALETTE["blue"]), (hb, b, PALETTE["orange"])):
        whole = h("all", "") if h is not None else None
        if whole is not None and whole.count:
            curves.append((label, color, *cdf_points(whole)))
    if len(curves) < 2:
        return '<p class="note">Latency distributions need both runs\' histograms.json (runs before it have none).</p>'
    return figure("Latency distribution", cdf_chart(curves, aria=f"latency distributions: {a} and {b}"),
                  "the share of requests answered within each time, from each run's histograms")  # fmt: skip


def render_compare_page(
    base: RunSummary,
    new: RunSummary,
    cmp: Comparison,
    *,
    labels: tuple[str, str] = ("base", "new"),
    histograms: tuple[Histograms | None, Histograms | None] = (None, None),
) -> str:
    """The comparison page's HTML (see the module docstring)."""
    from .report import page

    a, b = labels
    bad = cmp.regressions
    verdict = (
        f'<div class="banner fail"><div class="bmain">{len(bad)} KPI(s) regressed</div>'
        f"<div>{esc(', '.join(r.kpi.name for r in bad))}</div></div>"
        if bad
        else '<div class="banner pass"><div class="bmain">No KPI worsened beyond its limit</div></div>'
    )
    notes = "".join(f'<p class="note">note: {esc(n)}</p>' for n in cmp.notes)
    body = (
        f"<header><h1>dccsim comparison: {esc(a)} &rarr; {esc(b)}</h1></header>"
        + verdict
        + notes
        + section("kpis", "KPIs", "Each KPI of the two runs and how much worse the second is (lower is better: "
                  "new/base - 1; higher is better: base/new - 1; compliance by its misses).", _kpi_table(cmp, a, b))
        + section("series", "Over the day", f"{a} solid, {b} dashed.", _series(base, new, a, b))
        + section("distribution", "Latency distributions", "", _distribution(*histograms, a, b))
        + section("srv", "By SRV", "Each SRV's compliance and p99 in the two runs.", _srv_table(base, new, a, b))
    )  # fmt: skip
    return page(f"dccsim comparison: {a} vs {b}", body)


def as_summary(data: Any) -> RunSummary:
    """A :class:`RunSummary` from a summary or its JSON data."""
    if isinstance(data, RunSummary):
        return data
    import msgspec

    return msgspec.convert(data if isinstance(data, Mapping) else dict(data), RunSummary)
