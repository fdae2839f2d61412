"""Scenarios: built-ins load, bad files give one clear error naming the key."""

from __future__ import annotations

import numpy as np
import pytest
from dccsim.core.errors import ConfigError
from dccsim.core.records import INVALID_KINDS, ROLES
from dccsim.loadgen.population import build_population
from dccsim.loadgen.scenario import Scenario, builtin_scenarios, load_scenario, parse_scenario
from dccsim.loadgen.workload import DayWorkload, flat_times, profile_times


def test_builtins_load_and_include_the_four_required() -> None:
    names = set(builtin_scenarios())
    assert {"smoke", "mhhs-day", "alert-storm", "mhhs-no-uplift"} <= names
    for name in names:
        s, text = load_scenario(name)
        assert s.name == name and text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("scale = -1", "scale: got -1"),
        ("sclae = 1", "sclae: got an unknown key, expected one of: name, description, day, scale"),
        ("[population]\nmeters = 'many'", "population.meters: got 'many', expected `int`"),
        ("[cache]\nretention_h = 24", "cache.retention_h: got 24.0, expected hours from 25 to 72"),
        ("[cache]\nretention_h = 73", "expected hours from 25 to 72"),
        ("[mhhs]\nwindow_h = [6, 1]", "mhhs.window_h: got [6.0, 1.0]"),
        ("[background.srv_weights]\n'4.99' = 1", "background.srv_weights: got '4.99'"),
        ("[[storms]]\ndevices = 3\ncode = 'XYZ1'", "storms[0].code: got 'XYZ1'"),
        ("[invalid]\nmix = { nonsense = 1 }", "invalid.mix: got 'nonsense'"),
        ("[[users]]\neui = '90-B3-D5-1F-30-01-00-00'\nrole = 'IS'", "a user with role MDR"),
        ("[capacity.classes.on_demand]\nservice_ms = 1\ntimeout_s = 1\ntarget_s = 1", "exactly the classes"),
        ("this is = not toml = ", "not valid TOML"),
    ],
)
def test_bad_scenarios_name_the_key(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(text, "bad.toml")
    assert words in str(err.value)
    assert str(err.value).startswith("bad.toml:")


def test_unknown_scenario_lists_builtins() -> None:
    with pytest.raises(ConfigError, match="expected a built-in scenario .*smoke"):
        load_scenario("no-such-scenario")


def test_time_shapes_are_sorted_and_in_range(rng) -> None:
    t = flat_times(rng, 1000, 100, 10_100)
    assert np.all(np.diff(t) >= 0) and t[0] >= 100 and t[-1] < 10_100
    w = np.zeros(24)
    w[3] = 1
    p = profile_times(rng, 1000, 0, w, 3600)
    assert np.all(np.diff(p) >= 0) and p.min() >= 3 * 3600 and p.max() < 4 * 3600


def test_workload_reads_every_esme_once_and_labels_invalid() -> None:
    s, _ = load_scenario("smoke")
    pop = build_population(s)
    w = DayWorkload(s, pop)
    day = s.day_start_ns
    chunks = [w.requests(k, day + k * 3600 * 10**9, day + (k + 1) * 3600 * 10**9) for k in range(24)]
    t = np.concatenate([c.t_scheduled_ns for c in chunks])
    assert np.all(np.diff(t) >= 0) and t.min() >= day
    from dccsim.core.catalogue import catalogue

    code481 = catalogue().code("4.8.1")
    mdr_role = ROLES.index("MDR")
    mdr = np.concatenate([c.device[(c.srv == code481) & (c.role == mdr_role) & (c.invalid == 0)] for c in chunks])
    inv = np.concatenate([c.invalid for c in chunks])
    # every ESME read once by the MDR, nothing else (a few reads may have been made invalid traffic)
    read, times = np.unique(mdr, return_counts=True)
    assert times.max() == 1 and np.isin(read, pop.ids[pop.esme]).all()
    assert len(read) >= len(pop.esme) - (inv != 0).sum()
    assert set(np.unique(inv).tolist()) <= set(range(len(INVALID_KINDS)))
    a = w.alerts(day, day + 86_400 * 10**9)
    assert a.storm.sum() > 0 and np.all(np.diff(a.t_ns) >= 0)
    # future-dated commands report by Responses (CR1233), not alerts: no alert is one
    assert not np.isin(a.alert_code, [0x8F66, 0x8F67]).any()
    # the future-dated commands: 1.1.1 (pattern "Device"), the signed pre-command (CV 5), dated
    fd = np.concatenate([c.cls == 2 for c in chunks])
    assert fd.sum() > 10
    assert set(np.concatenate([c.srv for c in chunks])[fd].tolist()) == {catalogue().code("1.1.1")}
    assert set(np.concatenate([c.command_variant for c in chunks])[fd].tolist()) == {5}
    assert (np.concatenate([c.execution_ns for c in chunks])[fd] > t[fd]).all()


def test_overrides_revalidate() -> None:
    s = Scenario()
    assert s.with_overrides(**{"capacity.uplift": 2.0}).capacity.uplift == 2.0
    with pytest.raises(ConfigError, match="capacity.uplift"):
        s.with_overrides(**{"capacity.uplift": -1.0})
