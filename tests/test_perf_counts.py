"""The instruction-count benchmark: its items run, and one run's counts are the difference of four."""

from __future__ import annotations

from pathlib import Path

import pytest
from dccsim.bench.perf import counts


@pytest.mark.parametrize("name", sorted(counts.ITEMS))
def test_every_item_runs_and_reports_its_operations(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = (3_000, 500) if name.startswith("throttle") else (3_000, 400)
    counts._child([name, "2", "0", str(a), str(b)])
    n = int(capsys.readouterr().out.split()[-1])
    if name == "cache-readthrough":
        assert 0 < n < a  # the stream's lookups only
    else:
        assert n == a


def test_one_run_of_the_work_is_the_difference_of_the_four_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # totals (Ir, Bc, Bcm, Bi, Bim) as cachegrind would give them: start-up 1000 a run, set-up
    # 7 a repeat, the work 50 a repeat, over 10 operations
    def fake(python: str, out: Path, args: list[str]) -> tuple[list[int], int]:
        _, reps, setup_only, _, _ = args
        total = 1000 + int(reps) * (7 + (0 if setup_only == "1" else 50))
        return [total, 2 * total, 0, 0, 0], 10

    monkeypatch.setattr(counts, "_cachegrind", fake)
    got = counts.count_all("python", ["cache-floor"], {"cache-floor": (10, 5)}, tmp_path, 2)
    assert got["cache-floor"] == {"Ir": 5.0, "Bc": 10.0, "Bcm": 0.0, "Bi": 0.0, "Bim": 0.0}


def test_without_valgrind_it_says_so_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(counts.shutil, "which", lambda _: None)
    with pytest.raises(SystemExit) as exc:
        counts.main([])
    assert exc.value.code == 2
    assert "valgrind not found" in capsys.readouterr().err
