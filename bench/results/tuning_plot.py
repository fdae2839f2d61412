"""The trade-off plot of ``dccsim tune-throttle``: one point per setting of the grid.

Storm alerts discarded (y) against collateral discards, non-storm alerts discarded (x, on a
log scale that keeps 0), with the settings no other setting beats on both axes drawn in
blue and joined. It is drawn with :mod:`.charts`' helpers, as one self-contained ``<svg>``
document (no scripts, no links), written beside ``tuning.arrow`` as ``tuning.svg``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .charts import esc, fmt_si, fmt_span, linear_ticks

__all__ = ["tradeoff_svg"]


def tradeoff_svg(
    cols: dict[str, npt.NDArray[Any]], pareto: npt.NDArray[np.bool_], *, title: str
) -> str:
    """A self-contained SVG: storm alerts discarded (y) against collateral discards (x).

    ``cols`` holds the tuning sweep's columns (:class:`dccsim.throttle.TuningResult`), with
    the storm scores; ``pareto`` marks the best trade-offs, drawn in blue and joined by a line.
    Every setting is one point, with its N, W, P and scores as a tooltip.
    """
    w, h, ml, mr, mt, mb = 760, 480, 84, 24, 48, 58
    x = cols["collateral"].astype(float)
    y = cols["storm_discarded"].astype(float)
    # x on a log scale with 0 kept (log10(1 + x)): collateral spans decades
    decades = max(1, math.ceil(math.log10(1 + float(x.max())))) if x.size else 1
    xt = [0.0] + [10.0**e for e in range(decades + 1)]
    x0, x1 = 0.0, math.log10(1 + 10.0**decades)
    y0, y1, yt = linear_ticks(float(y.min()) if y.size else 0.0, float(y.max()) if y.size else 1.0)

    def px(v: float) -> float:
        return ml + (math.log10(1 + v) - x0) / (x1 - x0) * (w - ml - mr)

    def py(v: float) -> float:
        return h - mb - (v - y0) / (y1 - y0) * (h - mt - mb)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'font-family="system-ui,sans-serif" font-size="12" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="{ml}" y="22" font-size="15" fill="#0f172a">{esc(title)}</text>',
    ]
    for v in xt:
        parts.append(
            f'<line x1="{px(v):.1f}" y1="{mt}" x2="{px(v):.1f}" y2="{h - mb}" stroke="#eef2f7"/>'
        )
        parts.append(
            f'<text x="{px(v):.1f}" y="{h - mb + 18}" text-anchor="middle" fill="#64748b">'
            f"{fmt_si(v)}</text>"
        )
    for v in yt:
        parts.append(
            f'<line x1="{ml}" y1="{py(v):.1f}" x2="{w - mr}" y2="{py(v):.1f}" stroke="#eef2f7"/>'
        )
        parts.append(
            f'<text x="{ml - 8}" y="{py(v) + 4:.1f}" text-anchor="end" fill="#64748b">'
            f"{fmt_si(v)}</text>"
        )
    parts.append(f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="#94a3b8"/>')
    parts.append(f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="#94a3b8"/>')
    parts.append(
        f'<text x="{(ml + w - mr) / 2}" y="{h - 14}" text-anchor="middle" fill="#334155">'
        "collateral: non-storm alerts discarded (log scale)</text>"
    )
    parts.append(
        f'<text transform="translate(20 {(mt + h - mb) / 2}) rotate(-90)" text-anchor="middle" '
        'fill="#334155">storm alerts discarded</text>'
    )
    order = np.flatnonzero(pareto)[np.argsort(x[pareto], kind="stable")]
    if order.size > 1:
        pts = " ".join(f"{px(x[i]):.1f},{py(y[i]):.1f}" for i in order)
        parts.append(
            f'<polyline points="{pts}" fill="none" stroke="#2563eb" stroke-width="1.5" '
            'stroke-dasharray="4 3"/>'
        )
    for i in range(x.shape[0]):
        tip = (
            f"N={cols['threshold'][i]} W={cols['window_s'][i]:g}s "
            f"P={cols['designated_period_s'][i]:g}s: "
            f"storm discarded {int(y[i]):,}, collateral {int(x[i]):,}, "
            f"caught {cols['storms_caught'][i]}/{cols['storms'][i]}"
        )
        color = "#2563eb" if pareto[i] else "#94a3b8"
        parts.append(
            f'<circle cx="{px(x[i]):.1f}" cy="{py(y[i]):.1f}" r="{5 if pareto[i] else 3.5}" '
            f'fill="{color}" fill-opacity="0.85"><title>{esc(tip)}</title></circle>'
        )
        if pareto[i]:  # the best trade-offs carry their setting in plain sight, not only in a tooltip
            window, period = fmt_span(cols["window_s"][i]), fmt_span(cols["designated_period_s"][i])
            label = f"N={cols['threshold'][i]} W={window} P={period}"
            parts.append(
                f'<text x="{px(x[i]) + 7:.1f}" y="{py(y[i]) - 7:.1f}" font-size="11" fill="#1e3a8a">{esc(label)}</text>'
            )
    parts.append(
        f'<text x="{w - mr}" y="{mt - 8}" text-anchor="end" fill="#2563eb">'
        "blue: best trade-offs (no setting beats them on both axes)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
