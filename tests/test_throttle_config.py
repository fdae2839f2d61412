"""Policies from TOML: what is accepted, and otherwise an error naming key, value, expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
from dccsim.throttle import (
    MAX_OVERRIDES,
    CodeLimits,
    CodeOverride,
    Throttle,
    ThrottleConfigError,
    ThrottlePolicy,
    format_alert_code,
    load_policy,
    parse_alert_code,
    parse_policy,
    policy_from_dict,
)

ISSUE_EXAMPLE = """
policy = "fixed-window"     # or "gcra"
threshold = 10              # N
window_s = 3600             # W
designated_period_s = 900   # P
exclude = ["8F75", "8F3F"]
dry_run = false
[overrides."8F84"]          # any of threshold, window_s, designated_period_s
threshold = 3
"""


def test_the_issue_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(ISSUE_EXAMPLE)
    p = load_policy(path)
    assert (p.policy, p.threshold, p.window_s, p.designated_period_s, p.dry_run) == (
        "fixed-window",
        10,
        3600,
        900,
        False,
    )
    assert p.excluded_codes == {0x8F75, 0x8F3F}
    assert p.limits(0x8F84) == CodeLimits(3, 3600 * 10**9, 900 * 10**9)
    assert p.limits(0x8F36) == CodeLimits(10, 3600 * 10**9, 900 * 10**9)
    assert p.limits(0x8F75) is None


def test_defaults_and_round_trip() -> None:
    p = parse_policy("")
    assert p == ThrottlePolicy()
    q = parse_policy(ISSUE_EXAMPLE)
    assert policy_from_dict(q.to_dict()) == q


@pytest.mark.parametrize("text", ["8F84", "8f84", "0x8F84", "0X8f84"])
def test_alert_codes_are_hex_any_case(text: str) -> None:
    assert parse_alert_code(text) == 0x8F84
    assert format_alert_code(parse_alert_code(text)) == "8F84"


@pytest.mark.parametrize("text", ["8F8", "8F845", "G000", "", " 8F84", 0x8F84, None])
def test_other_alert_code_formats_are_refused(text: object) -> None:
    with pytest.raises(ThrottleConfigError, match="expected an alert code of 4 hex digits"):
        parse_alert_code(text)


def test_fractional_seconds_keep_nanoseconds() -> None:
    p = parse_policy("window_s = 0.000000123\ndesignated_period_s = 1.5")
    assert p.limits(1) == CodeLimits(10, 123, 1_500_000_000)


def test_overrides_take_the_rest_from_the_top_level() -> None:
    p = parse_policy("threshold = 4\nwindow_s = 60\n[overrides.8F12]\ndesignated_period_s = 0")
    assert p.limits(0x8F12) == CodeLimits(4, 60 * 10**9, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threshold = 0", "threshold = 0: expected an integer from 1 to 2147483647"),
        ("threshold = 2147483648", "threshold = 2147483648: expected an integer from 1"),
        ("threshold = 2.5", "threshold: expected `int`, got `float`"),
        ("threshold = true", "threshold: expected `int`, got `bool`"),
        ("window_s = 0", "window_s = 0.0: expected a number of seconds > 0"),
        ("window_s = -1", "window_s = -1.0: expected a number of seconds > 0"),
        ("window_s = inf", "window_s = inf: expected a number of seconds > 0 and <= 1000000000"),
        ("window_s = 1e-12", "window_s = 1e-12: expected a number of seconds > 0"),
        (
            "designated_period_s = -0.5",
            "designated_period_s = -0.5: expected a number of seconds >= 0",
        ),
        ("designated_period_s = nan", "designated_period_s = nan"),
        ('policy = "leaky"', "policy = 'leaky': expected one of 'fixed-window', 'gcra'"),
        ('exclude = "8F75"', "exclude: expected `array`, got `str`"),
        ('exclude = ["8F75", "x"]', "exclude[1] = 'x': expected an alert code of 4 hex digits"),
        ("dry_run = 1", "dry_run: expected `bool`, got `int`"),
        ("treshold = 10", "unknown key 'treshold'; expected one of: policy, threshold, window_s"),
        (
            "[overrides.8F84]\nthreshhold = 1",
            "overrides.8F84: unknown key 'threshhold'; expected one of: threshold",
        ),
        (
            "[overrides.8F84]\nwindow_s = 0",
            "overrides.8F84.window_s = 0.0: expected a number of seconds > 0",
        ),
        (
            "[overrides.8F84]\nthreshold = 'x'",
            "overrides.8F84.threshold: expected `int | null`, got `str`",
        ),
        (
            "[overrides.Z]\nthreshold = 1",
            "overrides key = 'Z': expected an alert code of 4 hex digits",
        ),
        (
            'exclude = ["8f84"]\n[overrides.8F84]\nthreshold = 1',
            "overrides.8F84: alert code 8F84 is also excluded",
        ),
        (
            "[overrides.8f84]\nthreshold = 1\n[overrides.8F84]\nthreshold = 2",
            "alert code 8F84 is overridden twice",
        ),
        (
            'policy = "gcra"\nthreshold = 5\nwindow_s = 0.000000004',
            "expected at least threshold (5) nanoseconds",
        ),
        ("overrides = 5", "overrides: expected `object`, got `int`"),
        ("threshold = ", "not valid TOML"),
    ],
)
def test_bad_policies_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ThrottleConfigError) as info:
        parse_policy(text, source="storm.toml")
    assert str(info.value).startswith("storm.toml: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("table", "key", "value", "got", "expected"),
    [
        ({"threshold": 0}, "threshold", 0, None, "an integer from 1 to 2147483647"),
        ({"threshold": "ten"}, "threshold", "ten", None, "`int`"),
        (
            {"overrides": {"8F84": {"window_s": -1.5}}},
            "overrides.8F84.window_s",
            -1.5,
            None,
            "a number of seconds > 0 and <= 1000000000",
        ),
        (
            {"overrides": {"8F84": {"window_s": "x"}}},
            "overrides.8F84.window_s",
            "x",
            None,
            "`float | null`",
        ),
        (
            {"overrides": {"8F84": {"threshhold": 3}}},
            "overrides.8F84.threshhold",
            3,
            "an unknown key",
            "one of: threshold, window_s, designated_period_s",
        ),
        ({"exclude": ["8F75", "x"]}, "exclude[1]", "x", None, 'an alert code of 4 hex digits such as "8F84"'),
        (
            {"exclude": ["8f84"], "overrides": {"8F84": {"threshold": 1}}},
            "overrides.8F84",
            "8F84",
            "an override of alert code 8F84, which is also excluded",
            "an alert code excluded or overridden, not both",
        ),
        (
            {"overrides": {f"{c:04X}": {} for c in range(MAX_OVERRIDES + 1)}},
            "overrides",
            MAX_OVERRIDES + 1,
            f"{MAX_OVERRIDES + 1} alert codes",
            f"at most {MAX_OVERRIDES}",
        ),
    ],
)
def test_errors_carry_key_value_and_expectation(
    table: dict, key: str, value: object, got: str | None, expected: str
) -> None:
    with pytest.raises(ThrottleConfigError) as info:
        policy_from_dict(table, source="scenario")
    err = info.value
    assert (err.key, err.value, err.got, err.expected, err.source) == (key, value, got, expected, "scenario")
    assert type(err.value) is type(value)  # what arrived, not its text
    assert str(err).startswith("scenario: ")


def test_too_many_overrides() -> None:
    table = {f"{c:04X}": {"threshold": 1} for c in range(MAX_OVERRIDES + 1)}
    with pytest.raises(
        ThrottleConfigError,
        match=f"overrides: {MAX_OVERRIDES + 1} alert codes, expected at most {MAX_OVERRIDES}",
    ):
        policy_from_dict({"overrides": table})
    policy_from_dict({"overrides": dict(list(table.items())[:MAX_OVERRIDES])})


def test_constructing_in_python_is_checked_too() -> None:
    with pytest.raises(ThrottleConfigError, match="threshold = 0"):
        ThrottlePolicy(threshold=0)
    with pytest.raises(ThrottleConfigError, match="overrides.8F84.threshold = 0"):
        ThrottlePolicy(overrides={"8F84": CodeOverride(threshold=0)})
    with pytest.raises(ThrottleConfigError, match="expected a table of threshold"):
        ThrottlePolicy(overrides={"8F84": {"threshold": 1}})  # type: ignore[dict-item]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ThrottleConfigError, match="missing.toml: cannot read"):
        load_policy(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_keys": 0}, "initial_keys = 0: expected an integer from 1"),
        ({"max_keys": 2.5}, "max_keys = 2.5: expected an integer"),
        ({"max_load": 1.0}, "max_load = 1.0: expected a number in (0, 0.9]"),
        ({"max_load": 0}, "max_load = 0: expected a number in (0, 0.9]"),
    ],
)
def test_throttle_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ThrottleConfigError) as info:
        Throttle(ThrottlePolicy(), **kwargs)
    assert message in str(info.value)
    with pytest.raises(ThrottleConfigError, match="policy: expected a ThrottlePolicy, got dict"):
        Throttle({"threshold": 3})  # type: ignore[arg-type]


def test_memory_bound_is_stated() -> None:
    th = Throttle(ThrottlePolicy(), initial_keys=1000, max_keys=1 << 20)
    assert th.max_state_bytes == (1 << 21) * 40
    st = th.stats()
    assert (
        st.bytes_per_key == 80.0 and st.capacity == th.capacity and st.state_bytes == th.state_bytes
    )


def test_max_report_age_must_be_positive_and_longer_than_every_designated_period() -> None:
    import pytest
    from dccsim.throttle import CodeOverride, ThrottleConfigError, ThrottlePolicy

    assert ThrottlePolicy(max_report_age_s=3600).max_report_age_s == 3600
    for bad, says in ((0, "> 0"), (-1, "> 0"), (True, "> 0"), (600, "longest designated_period_s (900 s)")):
        with pytest.raises(ThrottleConfigError, match="max_report_age_s") as info:
            ThrottlePolicy(max_report_age_s=bad)
        assert says in str(info.value)
    with pytest.raises(ThrottleConfigError, match=r"\(5000 s\)"):
        ThrottlePolicy(max_report_age_s=4000, overrides={"8F84": CodeOverride(designated_period_s=5000)})


def test_report_at_close_is_a_boolean_key_kept_in_the_policys_record() -> None:
    import pytest
    from dccsim.throttle import ThrottleConfigError, ThrottlePolicy, parse_policy, policy_from_dict

    assert ThrottlePolicy().report_at_close is False
    p = parse_policy("report_at_close = true", source="p.toml")
    assert p.report_at_close is True and p.to_dict()["report_at_close"] is True
    assert policy_from_dict(p.to_dict()) == p
    with pytest.raises(ThrottleConfigError, match=r"p.toml: report_at_close") as info:
        parse_policy('report_at_close = "yes"', source="p.toml")
    assert info.value.key == "report_at_close"
    with pytest.raises(ThrottleConfigError, match="report_at_close.*true or false"):
        ThrottlePolicy(report_at_close=1)  # type: ignore[arg-type]
