"""Several runs of one scenario: a list of settings, or a search for the capacity boundary.

- :func:`sweep` runs a scenario at each ``(uplift, demand)`` setting of a list;
- :func:`find` searches for ``min-uplift`` (the least capacity uplift at which the scenario's
  exit criteria pass, at its demand) or ``max-demand`` (the most demand that passes at its
  uplift), by :func:`find_boundary`;
- both run the settings of a round side by side as tasks (:mod:`dccsim.bench.tasks`: worker
  processes, ``workers`` of them, or Ray tasks with ``backend="ray"``), each a whole
  :func:`~dccsim.bench.compose.simulate` into its own folder returning its summary, and
  write ``sweep.json`` (every setting with its figures and verdict, and the answer) and
  ``sweep.html`` (the saturation curve, :mod:`dccsim.bench.results.sweep_page`).

The settings tried, and so the answer and ``sweep.json`` (timings aside), do not depend on
the backend or the number of workers: a search evaluates ``points`` settings per round
whatever runs them, and each run is seeded by its scenario alone. Each task carries the
scenario's text (so a Ray node needs no copy of a scenario file) and an absolute run
folder. The workers live for the whole sweep, so each loads the compiled kernels once.

>>> result = find("mhhs-day", "min-uplift", "runs/find", scale=0.02, workers=2)  # doctest: +SKIP
>>> result.answer_line                                                       # doctest: +SKIP
'min-uplift: 1.117'
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
from .tasks import TaskRunner
from .tasks import default_workers as default_workers

__all__ = [
    "FINDS",
    "DEFAULT_BRACKETS",
    "Search",
    "SweepResult",
    "find_boundary",
    "find",
    "sweep",
    "setting_row",
    "default_workers",
    "run_setting",
]

#: what ``--find`` can search for: the swept parameter, and whether passing lies above the boundary
FINDS: Mapping[str, tuple[str, bool]] = {"min-uplift": ("uplift", True), "max-demand": ("demand", False)}
#: the bracket a search starts from when not given (``--low``, ``--high``)
#: (demand from 1: criteria such as a cache hit ratio can fail at a low demand as well as a high one)
DEFAULT_BRACKETS: Mapping[str, tuple[float, float]] = {"uplift": (1.0, 3.0), "demand": (1.0, 3.0)}
#: settings judged per round of a search (a k-section search: the bracket shrinks k + 1 times a round)
DEFAULT_POINTS = 3

Judge = Callable[[Sequence[float]], Sequence[bool]]


# ---------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class Search:
    """What :func:`find_boundary` found: the answer (None when nothing in the bracket passes)
    and every value judged, in the order judged, with its verdict."""

    answer: float | None
    tried: tuple[tuple[float, bool], ...]


def _grid(tolerance: float) -> int:
    """Decimal places the search's values are rounded to: one finer than the tolerance."""
    return max(0, -math.floor(math.log10(tolerance))) + 1


def find_boundary(
    judge: Judge,
    low: float,
    high: float,
    *,
    tolerance: float = 0.01,
    points: int = 1,
    pass_above: bool = True,
) -> Search:
    """The boundary between failing and passing values of a parameter in ``[low, high]``.

    ``judge(values)`` says for each value whether it passes (all of one call may be judged
    side by side). With ``pass_above`` (min-uplift) the answer is the least passing value:
    the ends are judged first; if ``high`` fails the answer is None, if ``low`` passes it is
    ``low``; otherwise each round judges ``points`` values evenly inside the bracket (rounded
    one decimal finer than ``tolerance``) and keeps the part between the greatest failing value
    and the least passing one, until it is at most ``tolerance`` wide. The answer is then the
    least passing value found: within ``tolerance`` above the boundary of a monotone judge.
    Without ``pass_above`` (max-demand) all of it is mirrored: the answer is the greatest
    passing value, None when ``low`` fails, ``high`` when ``high`` passes.
    """
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"find_boundary: low, high: got {low!r}, {high!r}, expected finite numbers with low < high")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"find_boundary: tolerance: got {tolerance!r}, expected a number > 0")
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"find_boundary: points: got {points!r}, expected an integer >= 1")
    sign = 1.0 if pass_above else -1.0  # search in y = sign * x, where passing lies above
    tried: list[tuple[float, bool]] = []
    digits = _grid(tolerance)

    def judged(ys: Sequence[float]) -> list[bool]:
        xs = [sign * y + 0.0 for y in ys]
        verdicts = [bool(v) for v in judge(xs)]
        if len(verdicts) != len(xs):
            raise ValueError(f"find_boundary: judge gave {len(verdicts)} verdicts for {len(xs)} values")
        tried.extend(zip(xs, verdicts, strict=True))
        return verdicts

    at_low, at_high = judged([sign * low, sign * high])  # the low end first, either way
    lo, hi = sorted((sign * low, sign * high))
    lo_ok, hi_ok = (at_low, at_high) if pass_above else (at_high, at_low)
    if not hi_ok:
        return Search(None, tuple(tried))
    if lo_ok:
        return Search(sign * lo + 0.0, tuple(tried))
    while hi - lo > tolerance:
        inner = sorted({round(lo + (hi - lo) * i / (points + 1), digits) for i in range(1, points + 1)} - {lo, hi})
        inner = [y for y in inner if lo < y < hi]
        if not inner:
            break
        verdicts = judged(inner)
        passing = [y for y, ok in zip(inner, verdicts, strict=True) if ok]
        hi = min([*passing, hi])
        lo = max([lo, *(y for y, ok in zip(inner, verdicts, strict=True) if not ok and y < hi)])
    return Search(sign * hi + 0.0, tuple(tried))


# ---------------------------------------------------------------------------- the runs


def _label(uplift: float | None, demand: float | None) -> str:
    return f"uplift{uplift if uplift is not None else 'base'}-demand{demand if demand is not None else 'base'}"


def run_setting(job: Mapping[str, Any]) -> RunSummary:
    """One run, as a task (in a worker, a Ray task or this process): load the scenario from
    the job's text and settings, simulate it into the job's ``out``, and return its summary as
    ``summary.json`` holds it (small and picklable: no histograms, no logs)."""
    from .compose import load_run, simulate

    job = dict(job)
    out = job.pop("out")
    compression = job.pop("compression", "lz4")
    return RunSummary.from_json(simulate(load_run(**job), out=out, compression=compression).summary.to_json())


def _tasks(workers: int | None, backend: str, address: str | None, most: int) -> TaskRunner:
    """The runner of a sweep's settings: ``workers`` (at most ``most``) at once."""
    if workers is None and backend == "local":
        workers = default_workers()
    return TaskRunner(backend, workers=None if workers is None else min(workers, most), address=address)


def setting_row(summary: RunSummary, label: str) -> dict[str, Any]:
    """One setting's line of ``sweep.json``: its run, figures and verdict."""
    d = summary.to_builtins()
    crit = d.get("exit_criteria") or {}
    row: dict[str, Any] = {
        "label": label,
        "uplift": d["run"]["uplift"],
        "demand": d["run"]["demand"],
        "dsp_servers": d["run"]["dsp_servers"],
        "requests": d["requests"],
        "within_target_ratio": d["within_target_ratio"],
        "latency_s": d["latency_s"],
        "peak_backlog": d["peak_backlog"],
        "cache": d["cache"],
        "passed": crit.get("passed"),
        "headline": crit.get("headline"),
        "failed_criteria": [c["expression"] for c in crit.get("criteria", ()) if not c["passed"]],
    }
    # work the DSP's overload control refused, all classes together
    row["refused"] = sum(summary.refused_by_class.values())
    row["wall_seconds"] = d.get("wall_seconds")
    return row


@dataclass
class SweepResult:
    """What :func:`sweep` and :func:`find` return: every setting run (in the order run, as
    ``sweep.json`` lists them), the answer of a search, and the folder."""

    scenario: str
    rows: list[dict[str, Any]]
    summaries: list[RunSummary]
    out_dir: Path
    #: ``min-uplift`` or ``max-demand`` for a search, None for a list
    find: str | None = None
    answer: float | None = None
    bracket: tuple[float, float] | None = None
    tolerance: float | None = None

    @property
    def answer_line(self) -> str:
        """The answer as the command line prints it last (``min-uplift: 1.13``)."""
        if self.find is None:
            return ""
        if self.answer is None:
            lo, hi = self.bracket or (math.nan, math.nan)
            return f"{self.find}: none in [{lo:g}, {hi:g}]"
        return f"{self.find}: {self.answer:g}"


class _Runner:
    """Runs settings of one scenario, a batch at a time, as tasks."""

    def __init__(
        self, scenario: str, out: Path, base: dict[str, Any], tasks: TaskRunner,
        on_setting: Callable[[str], None] | None,
    ) -> None:  # fmt: skip
        from dccsim.loadgen.scenario import load_scenario

        self.scenario, self.out, self.tasks, self.on_setting = scenario, out, tasks, on_setting
        # the scenario's text travels with each task: a worker (or Ray node) reads no file
        self.base = {**base, "text": load_scenario(scenario)[1]}
        self.rows: list[dict[str, Any]] = []
        self.summaries: list[RunSummary] = []

    def job(self, uplift: float | None, demand: float | None) -> dict[str, Any]:
        return {"scenario": self.scenario, **self.base, "uplift": uplift, "demand": demand,
                "out": (self.out / _label(uplift, demand)).absolute()}  # fmt: skip

    def check(self, settings: Sequence[tuple[float | None, float | None]]) -> Any:
        """Load every setting (a bad one fails before any work); returns the last loaded."""
        from .compose import load_run

        run = None
        for u, d in settings:
            job = self.job(u, d)
            job.pop("out")
            run = load_run(**job)
        return run

    def run(self, settings: Sequence[tuple[float | None, float | None]]) -> list[dict[str, Any]]:
        """Run the settings (side by side, as tasks); returns their rows."""
        jobs = [self.job(u, d) for u, d in settings]
        for u, d in settings:
            if self.on_setting is not None:
                self.on_setting(_label(u, d))
        summaries: list[RunSummary] = self.tasks.map(run_setting, jobs)
        rows = [setting_row(s, _label(u, d)) for (u, d), s in zip(settings, summaries, strict=True)]
        self.rows += rows
        self.summaries += summaries
        return rows


def _write(result: SweepResult, criteria: Any) -> None:
    from .results.sweep_page import write_sweep_page

    doc: dict[str, Any] = {"scenario": result.scenario, "find": result.find}
    if result.find is not None:
        doc |= {"answer": result.answer, "bracket": list(result.bracket or ()), "tolerance": result.tolerance}
    doc["settings"] = result.rows
    (result.out_dir / "sweep.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_sweep_page(result.out_dir / "sweep.html", doc, criteria)


def sweep(
    scenario: str | os.PathLike[str],
    settings: Sequence[tuple[float | None, float | None]],
    out: str | os.PathLike[str],
    *,
    scale: float | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = 1,
    backend: str = "local",
    address: str | None = None,
    on_setting: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run ``scenario`` once per ``(uplift, demand)`` setting (None: the scenario's own), each
    into ``out/uplift{U}-demand{D}``, ``workers`` at a time on ``backend`` (``local``
    processes, or ``ray`` tasks on the cluster at ``address``: :mod:`dccsim.bench.tasks`;
    ``workers=None``: the CPUs, or what the cluster allows), and write ``out/sweep.json`` and
    ``out/sweep.html``. ``overrides`` are dotted-key settings (``--set``) for every run.

    Every setting is loaded before the first runs, so a bad one fails before any work.
    """
    out_dir = Path(out)
    base = {"scale": scale, "seed": seed, "settings": dict(overrides or {})}
    with _tasks(workers, backend, address, len(settings)) as tasks:
        runner = _Runner(os.fspath(scenario), out_dir, base, tasks, on_setting)
        run = runner.check(settings)
        runner.run(settings)
    result = SweepResult(os.fspath(scenario), runner.rows, runner.summaries, out_dir)
    _write(result, run.criteria if run is not None else None)
    return result


def find(
    scenario: str | os.PathLike[str],
    what: str,
    out: str | os.PathLike[str],
    *,
    low: float | None = None,
    high: float | None = None,
    tolerance: float = 0.01,
    points: int = DEFAULT_POINTS,
    uplift: float | None = None,
    demand: float | None = None,
    scale: float | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = 1,
    backend: str = "local",
    address: str | None = None,
    on_setting: Callable[[str], None] | None = None,
) -> SweepResult:
    """Search for ``what`` (``min-uplift`` at ``demand`` or the scenario's; ``max-demand`` at
    ``uplift`` or the scenario's) by :func:`find_boundary` over ``[low, high]``
    (:data:`DEFAULT_BRACKETS`), each setting judged by the scenario's exit criteria; each run
    goes into ``out/uplift{U}-demand{D}``, and ``out/sweep.json`` and ``out/sweep.html``
    record them all and the answer. Each round's settings run side by side as in
    :func:`sweep` (``workers``, ``backend``, ``address``). Raises :class:`ConfigError` for a
    bad setting (before any run) or a scenario with no exit criteria to judge by.
    """
    if what not in FINDS:
        raise ConfigError(key="find", value=what, expected=f"one of {', '.join(FINDS)}")
    param, pass_above = FINDS[what]
    lo_default, hi_default = DEFAULT_BRACKETS[param]
    lo, hi = (lo_default if low is None else low), (hi_default if high is None else high)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(key="low, high", value=[lo, hi], expected="numbers with 0 < low < high")
    if not (math.isfinite(tolerance) and 0 < tolerance < hi - lo):
        raise ConfigError(key="tolerance", value=tolerance, expected=f"a number > 0 and < high - low ({hi - lo:g})")
    if not (isinstance(points, int) and 1 <= points <= 64):
        raise ConfigError(key="points", value=points, expected="an integer from 1 to 64")

    def setting(x: float) -> tuple[float | None, float | None]:
        return (x, demand) if param == "uplift" else (uplift, x)

    out_dir = Path(out)
    base = {"scale": scale, "seed": seed, "settings": dict(overrides or {})}
    with _tasks(workers, backend, address, max(2, points)) as tasks:
        runner = _Runner(os.fspath(scenario), out_dir, base, tasks, on_setting)
        run = runner.check([setting(lo), setting(hi)])
        if not run.criteria.items:
            raise ConfigError(key="exit_criteria", value={}, expected="at least one criterion to judge each setting by",
                              source=os.fspath(scenario))  # fmt: skip

        def judge(xs: Sequence[float]) -> list[bool]:
            return [row["passed"] is True for row in runner.run([setting(x) for x in xs])]

        found = find_boundary(judge, lo, hi, tolerance=tolerance, points=points, pass_above=pass_above)
    result = SweepResult(os.fspath(scenario), runner.rows, runner.summaries, out_dir, what, found.answer, (lo, hi),
                         tolerance)  # fmt: skip
    _write(result, run.criteria)
    return result
