"""The benchmark gate's judgement (bench/perf/gate.py): the test, the verdicts, the refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dccsim.bench.perf import gate
from dccsim.bench.perf.gate import GateError, judge, smallest_p, wilcoxon_greater


def test_the_exact_signed_rank_test_gives_the_textbook_p_values() -> None:
    assert wilcoxon_greater([1, 2, 3, 4, 5]) == pytest.approx(1 / 32)  # all positive: 1 pattern of 32
    assert wilcoxon_greater([-1, -2, -3, -4, -5]) == pytest.approx(1.0)
    # n = 4, W+ = 9 (ranks 2, 3, 4 positive): patterns with W+ >= 9 are {2,3,4}, {1,2,3,4}: 2 of 16
    assert wilcoxon_greater([-1, 2, 3, 4]) == pytest.approx(2 / 16)
    assert wilcoxon_greater([0.0, 0.0]) == 1.0  # nothing but ties with zero
    # symmetric: the p-values of both tails add to 1 + P(W+ = observed)
    d = [0.3, -0.1, 0.2, 0.5, -0.4, 0.6]
    assert wilcoxon_greater(d) + wilcoxon_greater([-x for x in d]) > 1.0
    assert smallest_p(8) == pytest.approx(1 / 256) and smallest_p(5) == pytest.approx(1 / 32)


def _rounds(base: dict[str, list[float]], this: dict[str, list[float]]) -> list[dict[str, dict[str, float]]]:
    n = max(len(v) for v in (*base.values(), *this.values()))
    return [
        {
            "base": {k: v[r] for k, v in base.items() if r < len(v)},
            "this": {k: v[r] for k, v in this.items() if r < len(v)},
        }
        for r in range(n)
    ]


def test_verdicts_slower_faster_same_missing_unusable() -> None:
    steady = [1.0, 1.01, 0.99, 1.02, 1.0, 0.98, 1.03, 1.0]
    base = {"k": steady, "same": steady, "gone": steady, "few": steady[:3]}
    this = {"k": [2 * x for x in steady], "same": [x * 1.01 for x in reversed(steady)], "new": steady,
            "few": steady[:3]}  # fmt: skip
    v = {x.name: x for x in judge(_rounds(base, this), threshold=1.25, alpha=0.01)}
    assert v["k"].status == "slower" and v["k"].ratio == pytest.approx(2.0) and v["k"].p_value < 0.01
    assert v["same"].status == "same" and not v["same"].fails
    assert v["gone"].status == "missing" and "this checkout" in v["gone"].why
    assert v["new"].status == "missing" and "the base" in v["new"].why
    assert v["few"].status == "unusable" and v["few"].fails
    faster = {x.name: x.status for x in judge(_rounds(this, base), threshold=1.25, alpha=0.01)}
    assert faster["k"] == "faster"


def test_pairing_cancels_load_that_drifts_from_round_to_round() -> None:
    """The machine slows down and speeds up between rounds; each round's pair shares its load,
    so a 2x slower build is caught though the two sides' times overlap."""
    load = [1.0, 3.0, 1.5, 4.0, 1.2, 2.5, 3.5, 1.1]
    base = {"k": [x for x in load]}
    this = {"k": [2 * x for x in load]}
    (v,) = judge(_rounds(base, this), 1.25, 0.01)
    assert v.status == "slower" and v.ratio == pytest.approx(2.0)
    (same,) = judge(_rounds(base, {"k": [x * 1.1 for x in load]}), 1.25, 0.01)
    assert same.status == "same"  # x1.1, below the threshold, however significant


def test_too_few_rounds_and_a_bad_base_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate.main(["--rounds", "5"]) == 2
    assert "--rounds: got 5, expected enough runs a side" in capsys.readouterr().err
    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True).stdout.strip())
    with pytest.raises(GateError, match="--base: got 'no-such-ref-x', expected a commit"):
        gate.run_gate(repo, "no-such-ref-x", 8, None, tmp_path)
