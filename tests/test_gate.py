"""The benchmark gate's judgement (bench/perf/gate.py): the test, the verdicts, the refusals."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
from dccsim.bench.perf import gate
from dccsim.bench.perf.gate import GateError, judge, mann_whitney_greater, smallest_p


def test_the_exact_test_gives_the_textbook_p_values() -> None:
    assert mann_whitney_greater([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / 20)  # every a above every b
    assert mann_whitney_greater([1, 2, 3], [4, 5, 6]) == pytest.approx(1.0)
    # m = n = 4: P(U = 16) = 1 / 70, P(U >= 15) = 2 / 70 (U = 16 and U = 15: one ordering each)
    assert mann_whitney_greater([5, 6, 7, 8], [1, 2, 3, 4]) == pytest.approx(1 / 70)
    assert mann_whitney_greater([4, 6, 7, 8], [1, 2, 3, 5]) == pytest.approx(2 / 70)
    assert smallest_p(5) == pytest.approx(1 / 252) and smallest_p(3) == pytest.approx(0.05)
    # the distribution is a distribution: the counts add up to C(m + n, m)
    assert sum(gate._u_counts(4, 6)) == math.comb(10, 4)


def test_verdicts_slower_faster_same_missing_unusable() -> None:
    base = {"k": [1.0, 1.01, 0.99, 1.02, 1.0], "same": [1.0, 1.1, 0.9, 1.05, 0.95], "gone": [1.0] * 5,
            "few": [1.0, 1.0]}  # fmt: skip
    this = {"k": [2.0, 2.1, 1.9, 2.05, 2.0], "same": [1.02, 0.97, 1.08, 0.93, 1.01], "new": [1.0] * 5,
            "few": [1.0, 1.0]}  # fmt: skip
    v = {x.name: x for x in judge(base, this, threshold=1.25, alpha=0.01)}
    assert v["k"].status == "slower" and v["k"].ratio == pytest.approx(2.0) and v["k"].p_value < 0.01
    assert v["same"].status == "same" and not v["same"].fails
    assert v["gone"].status == "missing" and "this checkout" in v["gone"].why
    assert v["new"].status == "missing" and "the base" in v["new"].why
    assert v["few"].status == "unusable" and v["few"].fails
    faster = judge(this, base, threshold=1.25, alpha=0.01)
    assert {x.name: x.status for x in faster}["k"] == "faster"


def test_a_slowdown_below_the_threshold_or_not_significant_passes() -> None:
    base = {"k": [1.0, 1.01, 0.99, 1.02, 1.0]}
    assert judge(base, {"k": [1.2, 1.21, 1.19, 1.22, 1.2]}, 1.25, 0.01)[0].status == "same"  # x1.2 < x1.25
    noisy = {"k": [2.0, 0.9, 2.1, 1.0, 2.2]}  # median x2, but runs overlap: not significant
    assert judge(base, noisy, 1.25, 0.01)[0].status == "same"


def test_too_few_rounds_and_a_bad_base_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate.main(["--rounds", "3"]) == 2
    assert "--rounds: got 3, expected enough runs a side" in capsys.readouterr().err
    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True).stdout.strip())
    with pytest.raises(GateError, match="--base: got 'no-such-ref-x', expected a commit"):
        gate.run_gate(repo, "no-such-ref-x", 5, None, tmp_path)
