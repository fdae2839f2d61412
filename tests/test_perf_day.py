"""The day benchmark: two builds timed alternately, a ratio and the logs compared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dccsim.bench.perf import day


def test_one_build_against_itself_gives_a_ratio_and_the_same_logs(capsys: pytest.CaptureFixture[str]) -> None:
    exe = str(Path(sys.executable).parent / "dccsim")
    assert day.main([exe, exe, "--scenario", "smoke", "--scale", "0.0005", "--repeats", "1", "--same-logs"]) == 0
    out = capsys.readouterr().out
    assert "scale 0.0005 old #1:" in out and "scale 0.0005 new #1:" in out
    assert "ratio" in out and "logs the same, byte for byte" in out
    assert "CPU:" in out and "x)" in out


def test_logs_that_differ_are_named(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "requests.arrow").write_bytes(b"x")
    (b / "requests.arrow").write_bytes(b"x")
    (a / "alerts.arrow").write_bytes(b"x")
    (b / "alerts.arrow").write_bytes(b"y")
    (a / "audit.arrow").write_bytes(b"x")
    assert day.same_logs(a, b) == ["alerts.arrow", "audit.arrow"]


def test_one_build_is_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        day.main(["dccsim"])
    assert exc.value.code == 2
