"""``dccsim report``, ``compare`` and ``check``: reading results, and gating CI on them.

``dccsim report RUN_DIR`` (re)builds the run folder's ``report.html`` from what the folder
holds: its ``summary.json`` and the scenario recorded in its ``requests.arrow``.

``dccsim check RUN_DIR [--criteria FILE]`` judges the run's ``summary.json`` against exit
criteria (by default those of the scenario the run recorded) and exits 1 when the run fails.

``dccsim compare BASE NEW`` puts two runs' KPIs side by side and exits 1 when one worsened
beyond its limit; given two pytest-benchmark JSON files (``make bench``) it compares their
ours/reference ratios instead. See :mod:`dccsim.bench.results.compare` for the rules.

Exit codes: 0 pass, 1 failed criteria or a regression, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .console import stdout_console
from .errors import CliError, OutputError

__all__ = ["report", "compare", "check", "export"]

_RUN_DIR = click.Path(exists=False, file_okay=True, dir_okay=True, path_type=Path)


def _exit(code: int) -> None:
    """Exit with ``code`` whichever way the command line was entered (a verdict, not an error)."""
    if code:
        sys.exit(code)


def _run_dir(path: Path) -> Path:
    if path.is_file() and path.name == "summary.json":
        return path.parent
    if not path.is_dir():
        raise CliError(f"{path}: not a run folder (expected a folder written by dccsim run)")
    return path


@click.command()
@click.argument("run_dir", type=_RUN_DIR)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the page (default RUN_DIR/report.html).",
)
def report(run_dir: Path, out: Path | None) -> None:
    """Build RUN_DIR/report.html from RUN_DIR/summary.json: one self-contained page with the run's tables and charts."""
    from ..results.report import ReportError, build_report

    try:
        path = build_report(_run_dir(run_dir), out)  # no summary given: read from the folder
    except ReportError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{out or run_dir}: cannot write the report ({exc.strerror})") from None
    click.echo(str(path))


@click.command()
@click.argument("run_dir", type=_RUN_DIR)
@click.option(
    "--criteria",
    "criteria_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with an [exit_criteria] table (or just its keys); default: the run's scenario.",
)
@click.option("--json", "as_json", is_flag=True, help="The verdict as one JSON object on stdout instead of a table.")
def check(run_dir: Path, criteria_file: Path | None, as_json: bool) -> None:
    """Judge a run against its exit criteria; exit 1 when it fails them.

    Each criterion is 'PATH OP NUMBER' = severity (1-4), e.g. "latency_s.p99 < 60" = 2; the run
    passes when no severity has more failures than its threshold allows (default: 0 for
    severities 1 and 2, 2 for 3, 5 for 4; override with a 'thresholds' table).
    """
    from ..results.compare import CompareError, load_summary
    from ..results.criteria import (
        CriteriaError,
        criteria_for_run,
        evaluate,
        histograms_from_file,
        load_criteria_file,
        verdict_table,
    )

    folder = _run_dir(run_dir)
    try:
        summary = load_summary(folder)
        if criteria_file is not None:
            criteria, source = load_criteria_file(criteria_file), str(criteria_file)
        else:
            found = criteria_for_run(folder, summary)
            if found is None:
                raise CliError(
                    f"{folder}: cannot tell which scenario the run used; give --criteria FILE"
                )
            criteria, source = found
        if not criteria.items:
            raise CliError(
                f"no exit criteria in {source}; give --criteria FILE with an [exit_criteria] table"
            )
        result = evaluate(summary, criteria, histograms_from_file(folder / "histograms.json"))
    except (CriteriaError, CompareError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        import json

        from ..results.criteria import to_dict

        click.echo(json.dumps(to_dict(result) | {"source": source}, allow_nan=False))
        _exit(0 if result.passed else 1)
        return
    console = stdout_console()
    console.print(verdict_table(result))
    console.print(f"criteria from {source}")
    _exit(0 if result.passed else 1)


@click.command()
@click.argument("base", type=_RUN_DIR)
@click.argument("new", type=_RUN_DIR)
@click.option(
    "--max-regression",
    "max_regression",
    default="10%",
    show_default=True,
    help="How much worse a simulation KPI may get: 10%, 0.1 and 10 all mean ten percent "
    "(a bare number below 1 is a fraction, otherwise percent).",
)
@click.option(
    "--max-slowdown",
    "max_slowdown",
    default="50%",
    show_default=True,
    help="The same for timed figures: events per second of runs, ours/reference ratios of "
    "benchmark files. Wider because a shared machine is noisy.",
)
@click.option("--json", "as_json", is_flag=True, help="The comparison as one JSON object on stdout (run folders).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the two runs on one page (KPIs, series overlaid, latency distributions, by SRV).")
@click.option("--percentile", "percentiles", type=float, multiple=True, metavar="Q",
              help="Also judge the latency percentile Q (0 < Q <= 100, e.g. 97.5), from both runs' "
                   "histograms.json; repeatable.")
def compare(
    base: Path, new: Path, max_regression: str, max_slowdown: str, as_json: bool, html_out: Path | None,
    percentiles: tuple[float, ...],
) -> None:
    """Compare two runs KPI by KPI (or two pytest-benchmark JSON files); exit 1 on a regression.

    BASE and NEW are run folders (or their summary.json). A KPI regressed when it got worse
    by more than its limit: new/base for lower-is-better KPIs, base/new for higher-is-better
    ones, the share outside target for within-target compliance.
    """
    from ..results import compare as cmp

    if html_out is not None and not html_out.parent.is_dir():  # checked before the comparison
        raise CliError(f"--html: got {str(html_out)!r}, expected a file in an existing folder")
    try:
        limit = cmp.parse_limit(max_regression, "--max-regression")
        slow = cmp.parse_limit(max_slowdown, "--max-slowdown")
        console = stdout_console()
        if cmp.is_benchmark_file(base) or cmp.is_benchmark_file(new):
            if as_json:
                raise CliError("--json: compares run folders; for benchmarks the regression gate writes JSON "
                               "(python -m dccsim.bench.perf.gate --json FILE)")  # fmt: skip
            bc = cmp.compare_benchmarks(
                cmp.load_benchmarks(base), cmp.load_benchmarks(new), max_slowdown=slow
            )
            console.print(cmp.bench_table(bc))
            bad_bench = bc.regressions
            for r in bad_bench:
                click.echo(
                    f"REGRESSED: {r.name}: {r.factor:.2f}x slower relative to {r.reference} "
                    f"(ratio {r.base_ratio:.4g} -> {r.new_ratio:.4g}, limit {1 + bc.limit:.2f}x)"
                )
            if bad_bench:
                click.echo(f"{len(bad_bench)} benchmark(s) regressed", err=True)
            _exit(1 if bad_bench else 0)
            return
        sa, sb = cmp.load_summary(base), cmp.load_summary(new)
        extra = _percentile_kpis(percentiles, (sa, sb), (base, new))
        result = cmp.compare_runs(sa, sb, max_regression=limit, max_slowdown=slow, kpis=cmp.KPIS + extra)
    except cmp.CompareError as exc:
        raise CliError(str(exc)) from None
    if html_out is not None:
        _write_compare_page(html_out, sa, sb, result, base, new)
    if as_json:
        import json

        click.echo(json.dumps(cmp.comparison_to_dict(result), allow_nan=False))
        _exit(0 if result.passed else 1)
        return
    console.print(cmp.comparison_table(result, base_label=_label(base), new_label=_label(new)))
    for note in result.notes:
        click.echo(f"note: {note}")
    bad = result.regressions
    for r in bad:
        click.echo(f"REGRESSED: {cmp.describe(r)}")
    if bad:
        click.echo(f"{len(bad)} KPI(s) regressed: {', '.join(r.kpi.path for r in bad)}", err=True)
    else:
        click.echo("no KPI worsened beyond its limit")
    _exit(1 if bad else 0)


def _percentile_kpis(qs: tuple[float, ...], summaries: tuple[Any, Any], paths: tuple[Path, Path]) -> tuple[Any, ...]:
    """KPIs for latency percentiles summary.json does not hold, from each run's histograms:
    written into the two summaries' ``latency_s`` as ``pQ`` (seconds)."""
    if not qs:
        return ()
    from ..results.compare import KPI
    from ..results.criteria import run_histograms

    bad = [q for q in qs if not 0 < q <= 100]
    if bad:
        raise CliError(f"--percentile: got {bad[0]:g}, expected a number with 0 < Q <= 100 (e.g. 97.5)")
    hists = []
    for path in paths:
        h = run_histograms(folder=path.parent if path.name == "summary.json" else path)
        if h is None:
            raise CliError(f"--percentile: {path} has no histograms.json (runs before it kept none)")
        hists.append(h)
    kpis = []
    for q in qs:
        key = f"p{q:g}"
        for summary, h in zip(summaries, hists, strict=True):
            whole = h("all", "")
            value = whole.percentile(q) / 1e9 if whole is not None and whole.count else None
            summary.setdefault("latency_s", {})[key] = value
        kpis.append(KPI(f"latency {key}", f"latency_s.{key}", "lower", "simulation", "s", 1e-3, floor=1e-3))
    return tuple(kpis)


def _write_compare_page(out: Path, sa: Any, sb: Any, result: Any, base: Path, new: Path) -> None:
    from ..results.compare_page import as_summary, render_compare_page
    from ..results.criteria import run_histograms

    folders = [p.parent if p.name == "summary.json" else p for p in (base, new)]
    try:
        text = render_compare_page(
            as_summary(sa), as_summary(sb), result, labels=(_label(base), _label(new)),
            histograms=(run_histograms(folder=folders[0]), run_histograms(folder=folders[1])),
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - an old summary the page cannot read: say so, in one line
        raise CliError(f"--html: cannot draw the comparison of {base} and {new}: {exc}") from None
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"--html: cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"comparison page: {out}", err=True)


def _label(path: Path) -> str:
    p = path.parent if path.name == "summary.json" else path
    return p.name or str(p)


@click.command()
@click.argument("run_dir", type=_RUN_DIR)
@click.option("--parquet", is_flag=True, required=True,
              help="Write requests.parquet and alerts.parquet (zstd), and audit.parquet when the run has one.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write them (default: RUN_DIR).")
def export(run_dir: Path, parquet: bool, out: Path | None) -> None:
    """Copy a run's Arrow logs to Parquet, for lazy scans (polars.scan_parquet) and DuckDB
    queries (select ... from 'RUN_DIR/requests.parquet'), any number of them."""
    from ..results.logs import LogError, export_parquet

    folder = _run_dir(run_dir)
    target = out or folder
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out: cannot create {target} ({exc.strerror or exc})") from None
    # the audit trail (future-dated responses) when the run kept one: dccsim run does
    for name in ("requests", "alerts", *(["audit"] if (folder / "audit.arrow").is_file() else [])):
        src = folder / f"{name}.arrow"
        if not src.is_file():
            raise CliError(f"{folder}: no {name}.arrow (expected a run folder written by dccsim run)")
        try:
            rows = export_parquet(src, target / f"{name}.parquet")
        except LogError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise OutputError(f"cannot write {target / f'{name}.parquet'}: {exc.strerror or exc}") from None
        click.echo(f"{target / f'{name}.parquet'}: {rows:,} rows")
