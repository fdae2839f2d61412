"""Results on stdout, whole when piped; progress and status on stderr."""

from __future__ import annotations

import pytest
from cli_helper import cli
from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario


def test_a_piped_table_is_not_cut_to_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli("scenarios", capsys=capsys)
    assert code == 0
    for name, text in builtin_scenarios().items():
        description = parse_scenario(text, name).description
        assert len(description) > 60
        # each description whole, on its scenario's line (rich folded them at 80 columns)
        assert any(name in line and description in line for line in out.splitlines()), (name, out[:400])


def test_the_progress_and_status_go_to_stderr(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("sweep", "smoke", "--uplift", "2", "--out", str(tmp_path / "s"), "--workers", "1",
                         capsys=capsys)  # fmt: skip
    assert code == 0
    assert "running uplift2.0" in err and "running" not in out
    assert "dccsim sweep: smoke" in out and "results:" in out
