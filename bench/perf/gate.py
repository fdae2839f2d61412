"""The benchmark gate: this checkout against a base commit, on one machine, in one run.

``python -m dccsim.bench.perf.gate --base REF`` (``make bench-compare BASE=REF``; default the
previous commit, ``HEAD~1``):

1. checks the base commit out (a scratch ``git worktree``) and lays it and this checkout out
   as importable ``dccsim`` packages in folders of their own (the ``package_dir`` mapping of
   each side's ``setup.cfg``: pure Python and data, no build step; the dependencies are this
   interpreter's), and checks that each side imports its own copy;
2. runs the benchmark suite (``bench/perf/benchmarks``, this checkout's files, so both builds
   run the same benchmarks; the references are skipped, ``-m "not reference"``: the two
   builds are each other's reference) on each build in turn, ``--rounds`` times, alternating
   which goes first, so a machine whose load drifts during the run affects both alike;
3. takes, for each benchmark, each run's fastest timed round (noise on a shared machine only
   adds time; and the rounds within one run share its moment's load, so they are not
   independent samples: the runs are), pairs the two builds' runs of each round, and judges
   the ratios ``this / base`` of the pairs: their median, and an exact one-sided Wilcoxon
   signed-rank test of "this build is slower" (paired, so load that drifts from round to
   round cancels; no scipy needed);
4. fails (exit 1) when a benchmark's median ratio is above ``--threshold`` **and** the test
   says so at ``--alpha``, and also when a benchmark is missing from either side (it failed
   or does not exist there) or has too few complete pairs to judge: a gate that cannot judge
   does not pass. A bad ``--base`` or a checkout that cannot be laid out is exit 2 with one line.

This is how asv's ``continuous`` judges a change (both commits, one machine, a significance
test and a threshold), here on top of the pytest-benchmark suite. With ``--rounds`` pairs the
smallest p-value the test can give is ``2 ** -rounds``: 8 rounds (the default) reach 0.004,
below the default alpha of 0.01; fewer rounds than alpha needs are refused, never passed.
The threshold (x1.25) is for a 2-core machine shared with other work; see the README's CI
recipe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Verdict", "judge", "wilcoxon_greater", "smallest_p", "main"]

SUITE = "bench/perf/benchmarks"


class GateError(Exception):
    """The gate could not be set up (bad ref, failed build): one line, exit 2."""


# ---------------------------------------------------------------------------- statistics
def wilcoxon_greater(diffs: Sequence[float]) -> float:
    """One-sided p-value of the Wilcoxon signed-rank test that the ``diffs`` tend to be above 0.

    Exact: every one of the ``2 ** n`` sign patterns is counted (n up to about 20); zero
    differences are dropped, tied magnitudes share their average rank. 1.0 when none is left.
    """
    d = [x for x in diffs if x != 0]
    n = len(d)
    if not n:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    observed = sum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    at_least = 0
    for signs in range(1 << n):
        w = sum(ranks[k] for k in range(n) if signs >> k & 1)
        at_least += w >= observed - 1e-9
    return at_least / (1 << n)


def smallest_p(rounds: int) -> float:
    """The smallest one-sided p-value the test can give with ``rounds`` pairs."""
    return 2.0**-rounds


@dataclass(frozen=True)
class Verdict:
    """The judgement of one benchmark: ``status`` is ``same``, ``faster``, ``slower``
    (beyond the threshold, significantly: fails), ``missing`` or ``unusable`` (both fail)."""

    name: str
    status: str
    ratio: float | None = None
    p_value: float | None = None
    base_samples: int = 0
    this_samples: int = 0
    why: str = ""

    @property
    def fails(self) -> bool:
        return self.status in ("slower", "missing", "unusable")


def judge(rounds: Sequence[dict[str, dict[str, float]]], threshold: float, alpha: float) -> list[Verdict]:
    """Verdicts for every benchmark of either side; ``rounds[r][side][name]`` is round r's
    fastest time (seconds) of a benchmark on side ``base`` or ``this``."""
    out = []
    names = sorted({n for r in rounds for side in r.values() for n in side})
    for name in names:
        pairs = [(r["base"][name], r["this"][name]) for r in rounds if name in r["base"] and name in r["this"]]
        in_base = sum(name in r["base"] for r in rounds)
        in_this = sum(name in r["this"] for r in rounds)
        if not in_base or not in_this:
            side = "this checkout" if not in_this else "the base"
            out.append(Verdict(name, "missing", why=f"no timings from {side} (failed or absent there)"))
            continue
        if smallest_p(len(pairs)) >= alpha:
            out.append(
                Verdict(name, "unusable", base_samples=in_base, this_samples=in_this,
                        why=f"{len(pairs)} complete pairs cannot reach p < {alpha:g}: run more --rounds")
            )  # fmt: skip
            continue
        logs = [math.log(t / b) for b, t in pairs]
        ratio = math.exp(statistics.median(logs))
        slower_p = wilcoxon_greater(logs)
        faster_p = wilcoxon_greater([-x for x in logs])
        if ratio > threshold and slower_p < alpha:
            status, p = "slower", slower_p
        elif ratio < 1 / threshold and faster_p < alpha:
            status, p = "faster", faster_p
        else:
            status, p = "same", min(slower_p, faster_p)
        out.append(Verdict(name, status, ratio, p, in_base, in_this))
    return out


# ---------------------------------------------------------------------------- running
def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise GateError(f"{' '.join(cmd[:4])} ...: exit {done.returncode}: {tail[0]}")
    return done.stdout


def _build(src: Path, site: Path) -> None:
    """Lay ``src`` out in ``site`` as the ``dccsim`` packages its ``setup.cfg`` maps."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(src / "setup.cfg")
    try:
        mapping = cfg["options"]["package_dir"]
    except KeyError:
        raise GateError(f"{src}/setup.cfg: no [options] package_dir to lay the packages out by") from None
    for line in mapping.strip().splitlines():
        name, _, folder = (x.strip() for x in line.partition("="))
        if not name.startswith("dccsim.") or not (src / folder).is_dir():
            raise GateError(f"{src}/setup.cfg: package_dir line {line!r}: expected dccsim.NAME = FOLDER")
        shutil.copytree(src / folder, site / Path(*name.split(".")),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))  # fmt: skip


def _side_env(site: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    env.pop("NUMBA_CACHE_DIR", None)  # each build keeps its own kernel cache beside its code
    return env


def _check_imports(site: Path, label: str) -> None:
    """The side imports its own build, not the checkout's editable install."""
    where = _run([sys.executable, "-c", "import dccsim.core, dccsim.bench; print(dccsim.core.__file__)"],
                 cwd=site, env=_side_env(site)).strip()  # fmt: skip
    if not where.startswith(str(site)):
        raise GateError(f"{label}: imports dccsim from {where}, not from its build in {site}")


def _fastest(report: Path) -> dict[str, float]:
    """The fastest timed round of each ``ours`` benchmark in a pytest-benchmark JSON file."""
    data = json.loads(report.read_text())
    return {
        b["name"]: float(b["stats"]["min"])
        for b in data.get("benchmarks", [])
        if b.get("extra_info", {}).get("role") == "ours"
    }


def run_gate(
    repo: Path, base_ref: str, rounds: int, select: str | None, work: Path, say: Any = print
) -> tuple[list[dict[str, dict[str, float]]], str]:
    """Lay both sides out, run the suite ``rounds`` times each, alternating; per round, each
    side's fastest round of each benchmark (see :func:`judge`)."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{base_ref}^{{commit}}"],
                           cwd=repo, capture_output=True, text=True)  # fmt: skip
    sha = found.stdout.strip()
    if found.returncode != 0 or not sha:
        raise GateError(f"--base: got {base_ref!r}, expected a commit of this repository")
    tree = work / "base-tree"
    _run(["git", "worktree", "add", "--detach", "--force", str(tree), sha], cwd=repo)
    try:
        sites = {"base": work / "base-site", "this": work / "this-site"}
        say(f"gate: building the base ({base_ref} = {sha[:10]}) and this checkout")
        _build(tree, sites["base"])
        _build(repo, sites["this"])
        for label, site in sites.items():
            _check_imports(site, label)
        per_round: list[dict[str, dict[str, float]]] = []
        suite = repo / SUITE
        for r in range(rounds):
            order = ("base", "this") if r % 2 == 0 else ("this", "base")
            per_round.append({"base": {}, "this": {}})
            for side in order:
                say(f"gate: round {r + 1} of {rounds}: {side}")
                report = work / f"{side}-{r}.json"
                cmd = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
                       "-m", "not reference", f"--benchmark-json={report}"]  # fmt: skip
                if select:
                    cmd += ["-k", select]
                # a benchmark that fails on one side is reported missing there, not fatal
                subprocess.run(cmd, cwd=work, env=_side_env(sites[side]), capture_output=True, text=True)
                if report.is_file():
                    per_round[-1][side] = _fastest(report)
        return per_round, sha
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, capture_output=True)


def _table(verdicts: list[Verdict], threshold: float, alpha: float) -> list[str]:
    lines = [f"{'benchmark':<34} {'this/base':>9} {'p':>8} {'runs':>9}  verdict (ratio: median of the pairs)"]
    for v in verdicts:
        ratio = "" if v.ratio is None else f"{v.ratio:.3f}"
        p = "" if v.p_value is None else f"{v.p_value:.4f}"
        rounds = f"{v.this_samples}/{v.base_samples}" if v.base_samples else ""
        text = {"slower": f"SLOWER (> x{threshold:g}, p < {alpha:g})", "faster": "faster"}.get(v.status, v.status)
        lines.append(f"{v.name:<34} {ratio:>9} {p:>8} {rounds:>9}  {text}{': ' + v.why if v.why else ''}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dccsim.bench.perf.gate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="the commit to compare against (default: HEAD~1)")
    ap.add_argument("--rounds", type=int, default=8, help="suite runs per side, alternating (default 8)")
    ap.add_argument("--threshold", type=float, default=1.25, help="slower by more than this ratio fails (1.25)")
    ap.add_argument("--alpha", type=float, default=0.01, help="significance level of the test (0.01)")
    ap.add_argument("-k", dest="select", default=None, help="pytest -k expression: run only these benchmarks")
    ap.add_argument("--json", dest="json_out", type=Path, default=None, help="write the verdicts here")
    args = ap.parse_args(argv)
    if not (0 < args.alpha < 1) or not (args.threshold >= 1.0):
        print(f"gate: error: --threshold {args.threshold}, --alpha {args.alpha}: expected a threshold >= 1 "
              "and 0 < alpha < 1", file=sys.stderr)  # fmt: skip
        return 2
    if args.rounds < 1 or smallest_p(args.rounds) >= args.alpha:
        print(f"gate: error: --rounds: got {args.rounds}, expected enough runs a side for the test to reach "
              f"p < {args.alpha:g} (7 for 0.01, 5 for 0.05)", file=sys.stderr)  # fmt: skip
        return 2
    repo = Path(_run(["git", "rev-parse", "--show-toplevel"]).strip())
    work = Path(tempfile.mkdtemp(prefix="dccsim-gate-"))
    try:
        per_round, sha = run_gate(repo, args.base, args.rounds, args.select, work)
    except GateError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdicts = judge(per_round, args.threshold, args.alpha)
    for line in _table(verdicts, args.threshold, args.alpha):
        print(line)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({"base": sha, "verdicts": [v.__dict__ for v in verdicts]}, indent=2))
    failed = [v for v in verdicts if v.fails]
    if not verdicts:
        print("gate: FAILED: no benchmark ran on either side", file=sys.stderr)
        return 1
    if failed:
        print(f"gate: FAILED: {', '.join(f'{v.name} {v.status}' for v in failed)}", file=sys.stderr)
        return 1
    print(f"gate: passed: {len(verdicts)} benchmarks against {args.base} ({sha[:10]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
