"""The report's drawing kit: value formatting, tick generation, page parts and chart geometry."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from dccsim.bench.results.charts import (
    CSS,
    Series,
    as_number,
    esc,
    figure,
    fmt_bytes,
    fmt_eui,
    fmt_hhmm,
    fmt_int,
    fmt_pct,
    fmt_secs,
    fmt_si,
    fmt_tick_secs,
    linear_ticks,
    log_ticks,
    nice_step,
    section,
    table,
    tile,
    time_chart,
)


# ------------------------------------------------------------------------------ formatting
def test_esc_escapes_markup_and_both_quotes() -> None:
    assert esc("<a href=\"x\">&'") == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert esc(12) == "12"


@pytest.mark.parametrize("value", [None, True, "3", math.nan, [1]])
def test_as_number_refuses_what_is_not_a_number(value: object) -> None:
    assert as_number(value) is None


def test_as_number_gives_floats() -> None:
    assert as_number(3) == 3.0 and isinstance(as_number(3), float)
    assert as_number(-0.5) == -0.5


@pytest.mark.parametrize(
    ("fmt", "value", "text"),
    [
        (fmt_int, 1234.6, "1,235"),
        (fmt_int, None, "n/a"),
        (fmt_int, math.nan, "n/a"),
        (fmt_pct, 0.975, "97.50%"),
        (fmt_pct, "x", "n/a"),
        (fmt_secs, 0.85, "850 ms"),
        (fmt_secs, 4.8, "4.80 s"),
        (fmt_secs, 38, "38.0 s"),
        (fmt_secs, 1200, "1,200 s"),
        (fmt_secs, None, "n/a"),
        (fmt_tick_secs, 0, "0 s"),
        (fmt_tick_secs, 0.5, "500 ms"),
        (fmt_tick_secs, 2, "2 s"),
        (fmt_si, 999, "999"),
        (fmt_si, 1000, "1k"),
        (fmt_si, 12_345, "12.3k"),
        (fmt_si, 4_500_000, "4.5M"),
        (fmt_si, 2.5e9, "2.5G"),
        (fmt_si, -1500, "-1.5k"),
        (fmt_si, 0.25, "0.25"),
        (fmt_bytes, 512, "512 B"),
        (fmt_bytes, 1024, "1.0 KiB"),
        (fmt_bytes, 5 << 20, "5.0 MiB"),
        (fmt_bytes, 3 << 30, "3.0 GiB"),
        (fmt_bytes, None, "n/a"),
        (fmt_hhmm, 0, "00:00"),
        (fmt_hhmm, 13.5 * 3600, "13:30"),
        (fmt_hhmm, 86_400, "00:00 +1d"),
        (fmt_hhmm, 90_000, "01:00 +1d"),
        (fmt_eui, "00db1234567890ab", "00-DB-12-34-56-78-90-AB"),
        (fmt_eui, "00db1234567890ag", "00DB1234567890AG"),  # not hex: left as it is
        (fmt_eui, "abc", "ABC"),
    ],
)
def test_formatting(fmt: Callable[[Any], str], value: object, text: str) -> None:
    assert fmt(value) == text


def test_fmt_pct_digits() -> None:
    assert fmt_pct(0.975, 1) == "97.5%" and fmt_pct(1, 0) == "100%"


# ------------------------------------------------------------------------------ ticks
@pytest.mark.parametrize(
    ("span", "target", "step"),
    [(10, 5, 2), (7, 5, 2), (12, 5, 2.5), (40, 5, 10), (0.3, 4, 0.1), (3, 5, 1)],
)
def test_nice_step(span: float, target: int, step: float) -> None:
    assert nice_step(span, target) == pytest.approx(step)


def test_linear_ticks_round_the_ends_out_to_the_step() -> None:
    assert linear_ticks(0, 9) == (0, 10, [0, 2, 4, 6, 8, 10])
    assert linear_ticks(-5, 12) == (-5, 15, [-5, 0, 5, 10, 15])
    lo, hi, ticks = linear_ticks(0.9, 1.0)
    assert (lo, hi) == pytest.approx((0.9, 1.0)) and ticks == [0.9, 0.92, 0.94, 0.96, 0.98, 1.0]


def test_linear_ticks_of_an_empty_range_span_one() -> None:
    assert linear_ticks(3, 3) == (3, 4, [3.0, 3.2, 3.4, 3.6, 3.8, 4.0])


def test_log_ticks_sit_on_the_1_2_5_grid_and_thin_out_when_crowded() -> None:
    assert log_ticks(1, 10) == (1, 10, [1, 2, 5, 10])
    # 0.5 .. 200 would be nine ticks: only the 1s and 5s stay
    assert log_ticks(0.5, 200) == (0.5, 200, [0.5, 1, 5, 10, 50, 100])
    assert log_ticks(3, 3) == (2, 5, [2, 5])


# ------------------------------------------------------------------------------ page parts
def test_table_marks_numeric_columns_and_keeps_cells_as_html() -> None:
    html = table(["name <x>", "n"], [["<b>a</b>", "1"]], numeric=[1], cls="k")
    assert html == (
        '<table class="k"><thead><tr><th>name &lt;x&gt;</th><th class=num>n</th></tr></thead>'
        "<tbody><tr><td><b>a</b></td><td class=num>1</td></tr></tbody></table>"
    )
    assert "<thead>" not in table(None, [["a"]])


def test_tile_section_and_figure_escape_their_text() -> None:
    assert tile("a<b", "1 & 2", "n", "good") == (
        '<div class="tile good"><div class="tlabel">a&lt;b</div><div class="tvalue">1 &amp; 2</div>'
        '<div class="tnote">n</div></div>'
    )
    assert section("s", "A & B", "", "<p>x</p>") == '<section id="s"><h2>A &amp; B</h2><p>x</p></section>'
    assert '<p class="intro"><i>i</i></p>' in section("s", "t", "<i>i</i>", "")
    assert figure("<t>", "<svg></svg>") == (
        '<figure><figcaption><span class="ftitle">&lt;t&gt;</span></figcaption><svg></svg></figure>'
    )
    assert '<span class="fnote">a &lt; b</span>' in figure("t", "", "a < b")


# ------------------------------------------------------------------------------ charts
def points(svg: str) -> list[str]:
    return re.findall(r'<polyline class="line" points="([^"]+)"', svg)


def test_values_land_on_the_plot_area() -> None:
    # two 15-minute intervals over an 844-unit-wide plot from x 72; 0..10 over y 224 (bottom) to 40
    svg = time_chart([Series("x", [0, 10], "#000")], start_s=0, interval_s=900, y_label="n")
    assert points(svg) == ["283.0,224.0 705.0,40.0"]  # interval midpoints, axis bottom and top


def test_stacked_bars_are_scaled_to_the_totals() -> None:
    svg = time_chart(
        [Series("a", [4, 0], "#111"), Series("b", [6, 2], "#222")],
        start_s=0,
        interval_s=900,
        y_label="n",
        stacked=True,
    )
    b_bars = re.search(r'<g class="bars" fill="#222">(.*?)</g>', svg)
    assert b_bars is not None
    first = re.search(r'y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', b_bars.group(1))
    assert first is not None and first.groups() == ("40.0", "110.4")  # from 4 up to the total 10 at the top


def test_reference_lines_only_inside_the_axis() -> None:
    svg = time_chart(
        [Series("w", [0.95, 0.97], "#000")],
        start_s=0,
        interval_s=900,
        y_label="share",
        y_fmt="percent",
        y_range=(0.9, 1.0),
        refs=[(0.96, "target <96%>"), (0.5, "far below")],
    )
    assert svg.count('class="ref"') == 1
    assert "target &lt;96%&gt;" in svg and "far below" not in svg
    assert re.findall(r'text-anchor="end">(\d+%)<', svg) == ["90%", "92%", "94%", "96%", "98%", "100%"]


def test_log_scale_only_when_values_differ_and_tooltips_show_whole_counts() -> None:
    flat = time_chart([Series("x", [5, 5], "#000")], start_s=0, interval_s=900, y_label="n", log=True)
    assert "(log scale)" not in flat
    svg = time_chart([Series("x", [12_345, 10], "#000")], start_s=0, interval_s=900, y_label="n")
    tips = re.findall(r"<title>([^<]+)</title>", svg)
    assert tips == ["00:00-00:15\nx: 12,345", "00:15-00:30\nx: 10"]


def test_css_styles_the_class_names_the_charts_use() -> None:
    svg = time_chart(
        [Series("x", [1.0, 2.0], "#000", fill=True)],
        start_s=0,
        interval_s=900,
        y_label="n",
        refs=[(1.5, "r")],
    )
    used = set(re.findall(r'class="([\w ]+)"', svg)) - {"chart", "tips"}
    assert used == {"grid", "tick", "axis", "xtick", "baseline", "area", "line", "ref", "reflabel", "legend"}
    for name in used | {"nodata"}:
        assert f"svg .{name}{{" in CSS, name
    assert "svg.chart{" in CSS and "svg .tips rect{" in CSS
