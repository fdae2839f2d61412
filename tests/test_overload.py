"""DSP overload control end to end: the scenario's ``[capacity]`` keys, what the pipeline
answers for refused and shed requests, their retries, the summary's counts and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dccsim.bench import simulate
from dccsim.bench.compose import capacity_config
from dccsim.bench.results.logs import read_log
from dccsim.core.errors import ConfigError
from dccsim.core.records import REQUEST_CLASSES
from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario

NS = 1_000_000_000


def test_capacity_defaults_are_a_fluid_dsp_with_admission_and_shedding() -> None:
    s = parse_scenario("scale = 0.02\n[capacity]\nslots = 1500\nuplift = 1.05", "x.toml")
    assert (s.capacity.model, s.capacity.admission, s.capacity.shed_expired) == ("fluid", True, True)
    assert s.capacity.refuse_code == "E20"
    cfg = capacity_config(s)
    assert cfg.model == "fluid" and cfg.shed_expired
    assert cfg.rate == pytest.approx(1500 * 0.02 * 1.05 * 0.8)  # 25.2: not floored to 25
    for k, name in enumerate(REQUEST_CLASSES):
        target = s.capacity.classes[name].target_s
        assert cfg.classes[k].max_wait_ns == int(target / 2 * NS)  # absent max_wait_s: half the target


def test_capacity_options_give_the_old_dsp() -> None:
    text = builtin_scenarios()["smoke"].replace(
        "[capacity]\n", "[capacity]\nmodel = 'servers'\nadmission = false\nshed_expired = false\n"
    ).replace("[capacity.classes.on_demand]\n", "[capacity.classes.on_demand]\nmax_wait_s = 7\n")
    s = parse_scenario(text, "x.toml").with_overrides(scale=0.02, **{"capacity.uplift": 1.05})
    cfg = capacity_config(s)
    assert (cfg.model, cfg.shed_expired, cfg.servers) == ("servers", False, 15)  # floor(900 x .02 x 1.05 x .8)
    assert all(c.max_wait_ns is None for c in cfg.classes)  # admission off: the bound is not used
    on = capacity_config(s.with_overrides(**{"capacity.admission": True}))
    assert on.classes[REQUEST_CLASSES.index("on_demand")].max_wait_ns == 7 * NS


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[capacity]\nmodel = 'heap'", "capacity.model"),
        ("[capacity]\nrefuse_code = 'I0'", "capacity.refuse_code"),
        ("[capacity]\nrefuse_code = 'E99'", "capacity.refuse_code"),
        ("[capacity]\nadmission = 1", "capacity.admission"),
        ("[capacity]\nshed_expired = 'yes'", "capacity.shed_expired"),
        (
            "[capacity.classes.on_demand]\nservice_ms = 1\ntimeout_s = 1\ntarget_s = 1\nmax_wait_s = -1",
            "capacity.classes.on_demand.max_wait_s",
        ),
    ],
)
def test_bad_capacity_keys_are_config_errors_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(text, "bad.toml")
    assert info.value.key == key


def _overloaded(tmp_path: Path, extra: str = "") -> str:
    """The smoke day with a DSP far too small for its MHHS reads and no device failures, so
    every retry comes from the DSP's refusals and sheds."""
    text = builtin_scenarios()["smoke"]
    for old, new in (
        ("slots = 900 ", "slots = 40 "),
        ("e20_share = 0.002", "e20_share = 0.0"),
        ("e21_share = 0.003", "e21_share = 0.0"),
        ("e20_share = 0.004", "e20_share = 0.0"),
        ("e21_share = 0.006", "e21_share = 0.0"),
        ("share = 0.0005", "share = 0.0"),
        ("[capacity]\n", "[capacity]\n" + extra),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "overloaded.toml"
    path.write_text(text)
    return str(path)


def _requests(out: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in read_log(out / "requests.arrow", strict=True, raw=True).to_pydict().items()}


def test_refused_work_is_answered_at_once_counted_and_retried(tmp_path: Path) -> None:
    result = simulate(_overloaded(tmp_path), out=tmp_path / "run")
    summary, rows = result.summary, _requests(tmp_path / "run")
    refused = rows["outcome"] == "refused"
    assert refused.sum() > 100
    # refused: the refuse code at once, never within target, no DSP wait
    assert (rows["response_code"][refused] == "E20").all()
    assert (rows["t_done_ns"][refused] == rows["t_scheduled_ns"][refused]).all()
    assert not rows["within_target"][refused].any() and (rows["wait_ns"][refused] == 0).all()
    # admitted work never waits beyond its class's bound (half its target)
    cfg = result.pipeline.capacity
    bound = np.array([c.max_wait_ns for c in cfg.classes])[[REQUEST_CLASSES.index(c) for c in rows["request_class"]]]
    served = ~np.isin(rows["outcome"], ["refused", "shed", "rejected"])
    assert (rows["wait_ns"][served] <= bound[served]).all()
    # counted by class and by interval, as the rows say
    classes, counts = np.unique(rows["request_class"][refused], return_counts=True)
    assert summary.refused_by_class == dict(zip(classes.tolist(), counts.tolist(), strict=True))
    assert sum(summary.series.refused) == refused.sum()
    # refused MHHS reads come back (no device fails here: every retry is a refused or shed read)
    mhhs = rows["request_class"] == "mhhs_read"
    assert (refused & mhhs).any() and summary.retries > 0
    assert (rows["attempt"][mhhs] > 0).sum() == summary.retries
    assert (rows["attempt"][~mhhs] == 0).all()
    # and the report says when and for which classes
    html = (tmp_path / "run" / "report.html").read_text()
    assert "DSP refused" in html and "mhhs_read" in html
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["refused_by_class"] == summary.refused_by_class


def test_without_admission_late_work_is_shed_at_its_deadline(tmp_path: Path) -> None:
    result = simulate(_overloaded(tmp_path, "admission = false\n"), out=tmp_path / "run")
    rows = _requests(tmp_path / "run")
    shed = rows["outcome"] == "shed"
    assert shed.sum() > 100 and not (rows["outcome"] == "refused").any()
    cfg = result.pipeline.capacity
    cls = np.array([REQUEST_CLASSES.index(c) for c in rows["request_class"]])
    timeout = cfg.timeout_ns_array()[cls]
    assert (rows["latency_ns"][shed] == timeout[shed]).all()  # answered at the caller's time-out
    fd = rows["request_class"] == "future_dated"
    assert set(rows["response_code"][shed & fd]) <= {"E30"} and set(rows["response_code"][shed & ~fd]) == {"E21"}
    classes, counts = np.unique(rows["request_class"][shed], return_counts=True)
    assert result.summary.shed_by_class == dict(zip(classes.tolist(), counts.tolist(), strict=True))
    # a request is shed only when it would still be queued at its time-out: served work waits less
    served = ~np.isin(rows["outcome"], ["shed", "rejected"])
    assert (rows["wait_ns"][served] < timeout[served]).all()


def test_the_old_dsp_serves_every_request_however_late(tmp_path: Path) -> None:
    old = "admission = false\nshed_expired = false\n"
    result = simulate(_overloaded(tmp_path, old), out=tmp_path / "old")
    rows = _requests(tmp_path / "old")
    assert not np.isin(rows["outcome"], ["refused", "shed"]).any()
    assert result.summary.refused_by_class == {} and result.summary.shed_by_class == {}
    assert result.summary.series.refused == []
    new = simulate(_overloaded(tmp_path), out=tmp_path / "new").summary
    assert new.peak_backlog < result.summary.peak_backlog / 10
    assert new.mean_wait_s < result.summary.mean_wait_s / 10
