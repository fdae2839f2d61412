"""The benchmark gate: this checkout against a base commit, on one machine, in one run.

``python -m dccsim.bench.perf.gate --base REF`` (``make bench-compare BASE=REF``; default the
previous commit, ``HEAD~1``):

1. checks the base commit out (a scratch ``git worktree``) and lays it and this checkout out
   as importable ``dccsim`` packages in folders of their own (the ``package_dir`` mapping of
   each side's ``setup.cfg``: pure Python and data, no build step; the dependencies are this
   interpreter's), and checks that each side imports its own copy;
2. runs the benchmark suite (``bench/perf/benchmarks``, this checkout's files, so both builds
   run the same benchmarks) on each build in turn, ``--rounds`` times, alternating which goes
   first, so a machine whose load drifts during the run affects both alike;
3. for each benchmark whose role is ``ours`` (the references are run, not judged), takes
   each suite run's fastest timed round (noise on a shared machine only adds time; and the
   rounds within one run share its moment's load, so they are not independent samples: the
   runs are) and compares the two sides' runs: the ratio of their medians (``this / base``)
   and a one-sided Mann-Whitney U test of "this build is slower" (exact, no scipy needed);
4. fails (exit 1) when a benchmark is slower by more than ``--threshold`` **and** the test
   says so at ``--alpha``, and also when a benchmark is missing from either side (it failed
   or does not exist there) or has too few timed rounds to judge: a gate that cannot judge
   does not pass. A bad ``--base`` or a build that fails is exit 2 with one line.

This is how asv's ``continuous`` judges a change (both commits, one machine, a significance
test and a threshold), here on top of the pytest-benchmark suite. With ``--rounds`` runs a
side the smallest p-value the test can give is ``1 / C(2 rounds, rounds)``: 5 rounds (the
default) can reach 0.004, below the default alpha of 0.01; fewer rounds than alpha needs is
refused as unusable, never passed. The threshold (x1.25) is for a 2-core machine shared with
other work, where one run's fastest kernel round moved by up to about x1.2 between runs of
one build; see the README's CI recipe.
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

__all__ = ["Verdict", "judge", "mann_whitney_greater", "smallest_p", "main"]

SUITE = "bench/perf/benchmarks"


class GateError(Exception):
    """The gate could not be set up (bad ref, failed build): one line, exit 2."""


# ---------------------------------------------------------------------------- statistics
def _u_counts(m: int, n: int) -> list[int]:
    """How many orderings of ``m`` a-values and ``n`` b-values give each U (a's wins), U = 0..mn."""
    # the classic recursion N(u; m, n) = N(u - n; m - 1, n) + N(u; m, n - 1), row by row
    table = [[[1] + [0] * (i * j) for j in range(n + 1)] for i in range(m + 1)]
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            row = table[i][j]
            for u in range(i * j + 1):
                row[u] = (table[i - 1][j][u - j] if 0 <= u - j <= (i - 1) * j else 0) + (
                    table[i][j - 1][u] if u <= i * (j - 1) else 0
                )
    return table[m][n]


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value of the Mann-Whitney U test that ``a`` tends to be larger than ``b``.

    Exact (the distribution of U counted, ties counted as half a win); 1.0 when a side is empty.
    """
    m, n = len(a), len(b)
    if not m or not n:
        return 1.0
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    counts = _u_counts(m, n)
    # P(U >= u) under the null; a U with a half-win from ties is rounded down (conservative)
    return sum(counts[math.floor(u) :]) / math.comb(m + n, m)


def smallest_p(rounds: int) -> float:
    """The smallest one-sided p-value the test can give with ``rounds`` runs a side."""
    return 1 / math.comb(2 * rounds, rounds)


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


def judge(
    base: dict[str, list[float]], this: dict[str, list[float]], threshold: float, alpha: float
) -> list[Verdict]:
    """Verdicts for every benchmark of either side (one time per suite run, seconds, by name)."""
    out = []
    for name in sorted(set(base) | set(this)):
        a, b = this.get(name), base.get(name)
        if a is None or b is None:
            side = "this checkout" if a is None else "the base"
            out.append(Verdict(name, "missing", why=f"no timings from {side} (failed or absent there)"))
            continue
        if 1 / math.comb(len(a) + len(b), len(a)) >= alpha:
            out.append(
                Verdict(name, "unusable", base_samples=len(b), this_samples=len(a),
                        why=f"{len(a)} and {len(b)} runs cannot reach p < {alpha:g}: run more --rounds")
            )  # fmt: skip
            continue
        ratio = statistics.median(a) / statistics.median(b)
        slower_p = mann_whitney_greater(a, b)
        faster_p = mann_whitney_greater(b, a)
        if ratio > threshold and slower_p < alpha:
            status, p = "slower", slower_p
        elif ratio < 1 / threshold and faster_p < alpha:
            status, p = "faster", faster_p
        else:
            status, p = "same", min(slower_p, faster_p)
        out.append(Verdict(name, status, ratio, p, len(b), len(a)))
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
) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    """Build both sides, run the suite ``rounds`` times each, alternating; each run's fastest
    round of each benchmark, by side."""
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
        pooled: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
        suite = repo / SUITE
        for r in range(rounds):
            order = ("base", "this") if r % 2 == 0 else ("this", "base")
            for side in order:
                say(f"gate: round {r + 1} of {rounds}: {side}")
                report = work / f"{side}-{r}.json"
                cmd = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
                       f"--rootdir={suite}", f"--benchmark-json={report}"]  # fmt: skip
                if select:
                    cmd += ["-k", select]
                # a benchmark that fails on one side is reported missing there, not fatal
                subprocess.run(cmd, cwd=work, env=_side_env(sites[side]), capture_output=True, text=True)
                if report.is_file():
                    for name, fastest in _fastest(report).items():
                        pooled[side].setdefault(name, []).append(fastest)
        return pooled["base"], pooled["this"], sha
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, capture_output=True)


def _table(verdicts: list[Verdict], threshold: float, alpha: float) -> list[str]:
    lines = [f"{'benchmark':<34} {'this/base':>9} {'p':>8} {'runs':>9}  verdict"]
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
    ap.add_argument("--rounds", type=int, default=5, help="suite runs per side, alternating (default 5)")
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
              f"p < {args.alpha:g} (5 for 0.01, 4 for 0.05)", file=sys.stderr)  # fmt: skip
        return 2
    repo = Path(_run(["git", "rev-parse", "--show-toplevel"]).strip())
    work = Path(tempfile.mkdtemp(prefix="dccsim-gate-"))
    try:
        base, this, sha = run_gate(repo, args.base, args.rounds, args.select, work)
    except GateError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdicts = judge(base, this, args.threshold, args.alpha)
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
