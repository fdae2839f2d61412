"""Scenario limits: every value the run could not survive is refused when the scenario loads.

Each error names the key path, the value and what was expected, and ``dccsim run`` prints it
as one line and exits 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from dccsim.bench.cli import main
from dccsim.core.errors import ConfigError
from dccsim.loadgen.scenario import (
    MAX_DAY_EVENTS,
    LatencyProfile,
    Scenario,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
)

DIURNAL = ", ".join(["1.0"] * 23)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_scenario(text, "bad.toml")
    message = str(err.value)
    assert message.startswith("bad.toml: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # 1. a retry of the chunk being finished must not be due in the chunk being queued
        (
            "[mhhs]\nretry_delay_s = 300",
            "mhhs.retry_delay_s: got 300.0, expected at least 2 x chunk_s (chunk_s = 300, so >= 600)",
        ),
        ("[mhhs]\nretry_delay_s = 500", "mhhs.retry_delay_s: got 500.0"),
        (
            "chunk_s = 1000",
            "mhhs.retry_delay_s: got 1800.0, expected at least 2 x chunk_s (chunk_s = 1000, so >= 2000)",
        ),
        ("[mhhs]\nretry_delay_s = 1e300", "mhhs.retry_delay_s: got 1e+300, expected a number > 0 and <= 86400"),
        # 2. the day ends at 24:00
        (
            "[mhhs]\nsupplier_window_h = [20.0, 40.0]",
            "mhhs.supplier_window_h: got [20.0, 40.0], expected [start_h, end_h] with 0 <= start < end <= 24",
        ),
        ("[mhhs]\nwindow_h = [0.5, 24.5]", "mhhs.window_h: got [0.5, 24.5]"),
        ("[mhhs]\ndno_window_h = [7.0, nan]", "mhhs.dno_window_h: got [7.0, nan]"),
        (
            "[[storms]]\ndevices = 1\n[[storms]]\ndevices = 1\nstart_h = 23.0\nduration_min = 61",
            "storms[1].duration_min: got 61.0, expected minutes > 0 and <= 60, "
            "so that the storm (from start_h 23) ends by 24:00",
        ),
        # 3. latency and class settings: finite, bounded, named by generation / class / storm
        (
            "[population.smets2]\np95_s = inf",
            "population.smets2.p95_s: got inf, expected seconds from median_s (4) to 86400",
        ),
        ("[population.smets2]\np95_s = 1e300", "population.smets2.p95_s: got 1e+300"),
        (
            "[population.smets1]\nmedian_s = 1e-300",
            "population.smets1.median_s: got 1e-300, expected seconds from 0.001 to 86400",
        ),
        ("[population.smets1]\nmedian_s = nan", "population.smets1.median_s: got nan"),
        ("[population.smets2]\nmedian_s = 1.0\np95_s = 3600", "population.smets2.p95_s: got 3600.0, expected at most"),
        (
            "[population.smets1]\ne20_share = 1.5",
            "population.smets1.e20_share: got 1.5, expected a share between 0 and 1",
        ),
        (
            "[population.smets2]\ne20_share = 0.6\ne21_share = 0.6",
            "population.smets2.e21_share: got 0.6, expected at most 1 - e20_share (0.4)",
        ),
        (
            "[capacity.classes.on_demand]\nservice_ms = 1e-9\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.mhhs_read]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.future_dated]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.non_device]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30",
            "capacity.classes.on_demand.service_ms: got 1e-09, expected milliseconds from 0.000001 (1 ns)",
        ),
        (
            "[capacity.classes.on_demand]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.mhhs_read]\nservice_ms = 1\ntimeout_s = 1e300\ntarget_s = 30\n"
            "[capacity.classes.future_dated]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.non_device]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30",
            "capacity.classes.mhhs_read.timeout_s: got 1e+300, expected seconds from 0.001 to 86400",
        ),
        (
            "[capacity.classes.on_demand]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.mhhs_read]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.future_dated]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = 30\n"
            "[capacity.classes.non_device]\nservice_ms = 1\ntimeout_s = 60\ntarget_s = inf",
            "capacity.classes.non_device.target_s: got inf",
        ),
        (
            "[[storms]]\ndevices = 1\n[[storms]]\ndevices = 1\n[[storms]]\ndevices = 1\nrate_per_min = -1",
            "storms[2].rate_per_min: got -1.0",
        ),
        # 4. the day
        ("day = '1969-12-31'", "day: got '1969-12-31', expected a date from 1971-01-01 to 2115-12-31"),
        ("day = '9999-12-31'", "day: got '9999-12-31', expected a date from 1971-01-01 to 2115-12-31"),
        # 5. weights
        (
            "[population]\nregions = ['a', 'b']\nregion_shares = [nan, 1.0]",
            "population.region_shares: got [nan, 1.0], expected finite, non-negative shares summing to 1",
        ),
        ("[population]\nregions = ['a', 'b']\nregion_shares = [inf, 1.0]", "population.region_shares: got [inf, 1.0]"),
        (f"[background]\ndiurnal = [nan, {DIURNAL}]", "background.diurnal: got [nan, 1.0"),
        (f"[background]\ndiurnal = [inf, {DIURNAL}]", "expected 24 finite, non-negative hourly weights, not all 0"),
        # 6. volumes
        ("[capacity]\ndemand = 1e6", "capacity.demand: got 1000000.0, expected a number > 0 and <= 100"),
        (
            "[[storms]]\ndevices = 5\nrate_per_min = 1e12",
            "storms[0].rate_per_min: got 1000000000000.0, expected a number > 0 and <= 60000",
        ),
        (
            "[population]\nmeters = 320_000_000_000",
            "population.meters: got 320000000000, expected an integer from 1 to 100_000_000",
        ),
        ("scale = 4.0\n[population]\nmeters = 100_000_000", "population.meters x scale (4) is 400_000_000"),
        (
            "[[storms]]\ndevices = 32_000_000\nrate_per_min = 60000\nduration_min = 600",
            "storms[0]: got devices x scale x rate_per_min x duration_min = 11,520,000,000,000 alerts, "
            f"expected at most {MAX_DAY_EVENTS:,}",
        ),
        ("scale = 1.0\n[capacity]\ndemand = 100", "capacity.demand: got 100.0, expected a day of at most"),
        ("[background]\nrequests_per_meter = 1e9", "background.requests_per_meter: got 1000000000.0"),
        # 7. the throttle and the cache, as their packages check them
        ("[throttle]\nthreshold = 0", "throttle.threshold: got 0, expected an integer from 1"),
        ("[throttle]\nthreshold = 'ten'", "throttle.threshold: got 'ten', expected `int`"),
        ("[throttle]\nthreshhold = 3", "throttle.threshhold: got an unknown key, expected one of: policy, threshold"),
        ("[throttle.overrides.8F84]\nwindow_s = -1", "throttle.overrides.8F84.window_s: got -1"),
        (
            "[cache]\ncapacity = 99999999999",
            "cache.capacity: got 99999999999, expected an integer from 0 to 3_000_000_000",
        ),
        # 9. the seed
        ("seed = 9999999999999999999", "seed: got 9999999999999999999, expected an integer from 0 to 2**63 - 1"),
    ],
)
def test_out_of_range_values_name_the_key(text: str, words: str) -> None:
    assert words in _error(text)


@pytest.mark.parametrize(
    "text",
    [
        "[mhhs]\nretry_delay_s = 600",  # exactly 2 x chunk_s
        "chunk_s = 60\n[mhhs]\nretry_delay_s = 120",
        "[mhhs]\nsupplier_window_h = [20.0, 24.0]",
        "[[storms]]\ndevices = 1\nstart_h = 22.0\nduration_min = 120",
        "day = '1971-01-01'",
        "day = '2115-12-31'",
        "[capacity]\ndemand = 100",
        "[[storms]]\ndevices = 5\nrate_per_min = 60000",
        "[cache]\ncapacity = 3_000_000_000",
        "seed = 9223372036854775807",
        "[population.smets2]\nmedian_s = 4.0\np95_s = 60.0",
    ],
)
def test_values_at_the_limits_are_accepted(text: str) -> None:
    parse_scenario(text, "ok.toml")


def test_builtins_satisfy_the_limits() -> None:
    for name, text in builtin_scenarios().items():
        s = parse_scenario(text, name)
        assert s.mhhs.retry_delay_s >= 2 * s.chunk_s, name
        for st in s.storms:
            assert st.start_h + st.duration_min / 60 <= 24, name


def test_latency_tail_stays_far_inside_int64() -> None:
    # the widest profile allowed for a median: its 8-sigma tail is below 2**53 ns
    for median in (0.001, 1.0, 4.0, 9.0, 3600.0, 86_400.0):
        too_wide = median * 1.01 * _widest(median)
        if too_wide <= 86_400:  # beyond that the p95 bound refuses it first
            with pytest.raises(ConfigError, match="expected at most"):
                LatencyProfile(median_s=median, p95_s=too_wide)
        p95 = min(86_400.0, _widest(median) * median)
        p = LatencyProfile(median_s=median, p95_s=p95)
        assert median * math.exp(8 * p.sigma) <= 2**53 / 1e9 * 1.0001


def _widest(median: float) -> float:
    return (2**53 / 1e9 / median) ** (1.6448536269514722 / 8)


def test_uplift_changes_the_dsp_servers_at_smoke_scale() -> None:
    s, _ = load_scenario("smoke")  # 900 slots x 0.0005 = 0.45 slots; threshold 0.8
    servers = {u: s.with_overrides(**{"capacity.uplift": u}).dsp_servers for u in (1.0, 5.0, 6.0, 10.0, 100.0)}
    # one product, floored: 0.36, 1.8, 2.16, 3.6, 36 (rounding the slots first gave 1, 4, 4, 8, 80)
    assert servers == {1.0: 1, 5.0: 1, 6.0: 2, 10.0: 3, 100.0: 36}
    mid = Scenario(scale=0.01)  # 15 slots x 0.8: exact on the decimals as written
    assert mid.dsp_servers == 12
    assert mid.with_overrides(**{"capacity.uplift": 1.5}).dsp_servers == 18


def test_cli_run_and_serve_print_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "throttle.toml": ("[throttle]\nthreshold = 0\n", "throttle.threshold: got 0"),
        "cache.toml": ("[cache]\ncapacity = 99999999999\n", "cache.capacity: got 99999999999"),
        "retry.toml": ("[mhhs]\nretry_delay_s = 500\n", "mhhs.retry_delay_s: got 500.0"),
        "day.toml": ("day = '9999-12-31'\n", "day: got '9999-12-31'"),
    }
    for name, (text, words) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        for argv in (
            ["run", str(path), "--quiet", "--out", str(tmp_path / "out")],
            ["serve", "--scenario", str(path), "--port", "0"],
        ):
            with pytest.raises(SystemExit) as exit_:
                main(argv)
            assert exit_.value.code == 2, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert words in err and str(path) in err, err
    assert not (tmp_path / "out").exists()


def test_cli_seed_out_of_range_says_the_limit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "smoke", "--seed", "99999999999999999999999", "--quiet", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed: got 99999999999999999999999, expected an integer from 0 to 2**63 - 1" in err


@pytest.mark.parametrize("day", ["1971-01-01", "2115-12-31"])
def test_first_and_last_day_with_the_shortest_retry_delay_run(day: str) -> None:
    from dccsim.bench.compose import load_run
    from dccsim.bench.testing import drive
    from dccsim.loadgen.scenario import FIRST_DAY, LAST_DAY

    assert day in (FIRST_DAY, LAST_DAY)
    # 3,200 meters, many failed reads retried at exactly 2 x chunk_s (300 s) after they fail
    run = load_run(
        "edge.toml",
        text=f"day = '{day}'\nscale = 0.0001\nchunk_s = 300\n[mhhs]\nretry_delay_s = 600\nmax_retries = 10\n"
        "[population.smets2]\ne20_share = 0.2\n",
    )
    sink, driver = drive(run)
    rows = sink.request_rows()
    assert len(rows) == driver.totals.requests > 0
    assert int((rows.attempt > 0).sum()) == driver.totals.retries > 0


def test_the_capacity_model_gets_the_scenario_s_server_count() -> None:
    """The driver's DSP has floor(slots x scale x uplift x threshold) servers: uplift counts
    at small scales (it used to be applied to slots already rounded at the scale)."""
    from dccsim.bench.compose import capacity_config
    from dccsim.core.capacity import CapacityModel
    from dccsim.loadgen.scenario import load_scenario

    base, _ = load_scenario("smoke")
    servers = []
    for uplift in (1.0, 1.5, 5.0):
        s = base.with_overrides(scale=0.01, **{"capacity.uplift": uplift})
        servers.append(CapacityModel(capacity_config(s)).servers)
        assert servers[-1] == s.dsp_servers
    assert servers == [7, 10, 36]  # 900 x 0.01 x 0.8 = 7.2, x 1.5 = 10.8, x 5 = 36


def test_a_storm_cannot_have_more_devices_than_the_population() -> None:
    from dccsim.core.errors import ConfigError
    from dccsim.loadgen.scenario import builtin_scenarios, parse_scenario

    text = builtin_scenarios()["smoke"].replace("devices = 400", "devices = 40_000_000", 1)
    with pytest.raises(ConfigError, match=r"storms\[0\]\.devices: got 40,000,000, expected at most population\.meters"):
        parse_scenario(text, "big-storm")
