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


def test_json_output_of_scenarios_sweep_check_and_compare(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    code, out, _ = cli("scenarios", "--json", capsys=capsys)
    names = {s["name"]: s for s in json.loads(out)}
    assert code == 0 and names["mhhs-day"]["default"] and names["smoke"]["scale"] > 0
    code, out, err = cli("sweep", "smoke", "--uplift", "2", "--out", str(tmp_path / "s"), "--workers", "1",
                         "--json", "--quiet", capsys=capsys)  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc == json.loads((tmp_path / "s" / "sweep.json").read_text()) and err == ""
    run = (
        tmp_path / "s" / doc["settings"][0]["dir"]
        if "dir" in doc["settings"][0]
        else next((tmp_path / "s").glob("uplift*"))
    )
    code, out, _ = cli("check", str(run), "--json", capsys=capsys)
    verdict = json.loads(out)
    assert code == (0 if verdict["passed"] else 1) and verdict["criteria"] and "source" in verdict
    code, out, _ = cli("compare", str(run), str(run), "--json", capsys=capsys)
    cmp = json.loads(out)
    assert code == 0 and cmp["passed"] and all(k["worse_by"] in (0.0, None) for k in cmp["kpis"])


def test_a_run_folder_is_never_silently_overwritten(capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "named"
    assert cli("run", "smoke", "--out", str(out), "--quiet", capsys=capsys)[0] == 0
    before = (out / "summary.json").read_bytes()
    code, _, err = cli("run", "smoke", "--out", str(out), "--quiet", capsys=capsys)
    assert code == 2 and f"--out: {out} holds a run already; give --force" in err
    assert (out / "summary.json").read_bytes() == before  # untouched
    assert cli("run", "smoke", "--out", str(out), "--quiet", "--force", capsys=capsys)[0] == 0
    # a default folder gives way to the next free one
    monkeypatch.chdir(tmp_path)
    first = cli("run", "smoke", "--quiet", capsys=capsys)[1].strip()
    second = cli("run", "smoke", "--quiet", capsys=capsys)[1].strip()
    assert first == "runs/smoke-s0.0005-seed1" and second == first + "-2"


def test_demo_finds_the_examples_a_wheel_installs(tmp_path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """From a wheel there is no repository: the examples are under the installation's
    share/dccsim/examples/requests (setup.cfg's data_files), and demo finds them there."""
    import shutil
    import sys
    from pathlib import Path

    from dccsim.bench.cli import cmd_decode

    repo_examples = Path(cmd_decode.__file__).resolve().parents[2] / "examples" / "requests"
    share = tmp_path / "share" / "dccsim" / "examples" / "requests"
    shutil.copytree(repo_examples, share)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(cmd_decode, "__file__", str(tmp_path / "site" / "dccsim" / "bench" / "cli" / "cmd_decode.py"))
    assert cmd_decode.example_folder() == share
    code, out, _ = cli("demo", capsys=capsys)
    assert code == 0 and "01_mhhs_4.8.1.xml" in out and "I0 accepted" in out


def test_quiet_prints_the_output_path_only(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples" / "throttle"
    trace = tmp_path / "trace.arrow"
    assert cli("make-alert-trace", str(trace), "--alerts", "3000", "--devices", "200", "--storms", "2",
               capsys=capsys)[0] == 0  # fmt: skip
    code, out, err = cli("throttle", str(trace), "--config", str(examples / "policy.toml"),
                         "--out", str(tmp_path / "alerts.arrow"), "--quiet", capsys=capsys)  # fmt: skip
    assert code == 0 and out.strip() == str(tmp_path / "alerts.arrow") and err == ""
    code, out, err = cli("tune-throttle", str(trace), "--grid", str(examples / "grid.toml"),
                         "--out", str(tmp_path / "tune"), "--workers", "1", "--quiet", capsys=capsys)  # fmt: skip
    assert code == 0 and out.strip() == str(tmp_path / "tune" / "tuning.arrow") and err == "", err


def test_a_sweep_folder_that_cannot_be_made_is_refused_before_any_setting_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli("sweep", "smoke", "--uplift", "1", "--out", "/dev/null/sweep", capsys=capsys)
    assert code == 2 and "running" not in err and "--out: got '/dev/null/sweep'" in err
