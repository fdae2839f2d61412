"""Scenario errors as data (key path, value, expectation), the typed stage settings, and layering.

A bad scenario's :class:`ConfigError` carries ``key``, ``value``, ``expected`` (and ``got``,
``source``), and its text is built from them; ``loadgen/scenario.py`` reaches the throttle and
the cache through ``dccsim.core.config`` only.
"""

from __future__ import annotations

import ast
import doctest
import pickle
from pathlib import Path

import msgspec
import pytest
from dccsim.core import config as core_config
from dccsim.core import errors as core_errors
from dccsim.core.config import CACHE_MAX_CAPACITY, check_cache_settings, throttle_policy
from dccsim.core.errors import ConfigError
from dccsim.loadgen import scenario as scenario_module
from dccsim.loadgen.scenario import Scenario, parse_scenario
from dccsim.throttle import ThrottlePolicy, policy_from_dict

_CLASSES = "\n".join(
    f"[capacity.classes.{name}]\nservice_ms = 1\ntimeout_s = {timeout}\ntarget_s = 30"
    for name, timeout in (("on_demand", 60), ("mhhs_read", 1e300), ("future_dated", 60), ("non_device", 60))
)


@pytest.mark.parametrize(
    ("text", "key", "value", "got", "expected"),
    [
        # a section's own check (its key named whole)
        (
            "[mhhs]\nwindow_h = [6, 1]",
            "mhhs.window_h",
            [6.0, 1.0],
            None,
            "[start_h, end_h] with 0 <= start < end <= 24 (the simulated day ends at 24:00)",
        ),
        # a check of a nested class setting (named relative to its class), placed under its table key
        (_CLASSES, "capacity.classes.mhhs_read.timeout_s", 1e300, None, "seconds from 0.001 to 86400"),
        # a list item: the index is put back into the key
        (
            "[[storms]]\ndevices = 1\n[[storms]]\ndevices = 1\nstart_h = 23.0\nduration_min = 61",
            "storms[1].duration_min",
            61.0,
            None,
            "minutes > 0 and <= 60, so that the storm (from start_h 23) ends by 24:00",
        ),
        # a scenario-wide check that shows the value its own way
        (
            "[[storms]]\ndevices = 40_000_000",
            "storms[0].devices",
            40_000_000,
            "40,000,000",
            "at most population.meters (32,000,000): a storm's devices are drawn from the population",
        ),
        # the throttle package's check of an override, under the scenario's key
        (
            "[throttle.overrides.8F84]\nwindow_s = -1",
            "throttle.overrides.8F84.window_s",
            -1.0,
            None,
            "a number of seconds > 0 and <= 1000000000",
        ),
        (
            "[throttle]\nthreshhold = 3",
            "throttle.threshhold",
            3,
            "an unknown key",
            "one of: policy, threshold, window_s, designated_period_s, exclude, dry_run, max_report_age_s, "
            "report_at_close, overrides",
        ),
        # the cache's bounds
        (
            "[cache]\ncapacity = 99999999999",
            "cache.capacity",
            99_999_999_999,
            None,
            f"an integer from 0 to {CACHE_MAX_CAPACITY:_} entries (0 = unbounded)",
        ),
        # msgspec's own checks: a type, an unknown key, a missing key
        ("[population]\nmeters = 'many'", "population.meters", "many", None, "`int`"),
        ("[population.smets2]\nmedain_s = 4", "population.smets2.medain_s", 4, "an unknown key", None),
        ("[[storms]]\ncode = '8F84'", "storms[0].devices", None, "no value", "a value (the key is required)"),
        ("day = 2026-11-23", "day", msgspec.toml.decode(b"d = 2026-11-23")["d"], "`date` 2026-11-23", "`str`"),
        # a value of a table msgspec does not name
        ("[alerts.code_mix]\n8F84 = 'x'", "alerts.code_mix.8F84", "x", None, "`float`"),
    ],
)
def test_errors_carry_key_value_and_expectation(
    text: str, key: str, value: object, got: str | None, expected: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(text, "bad.toml")
    err = info.value
    assert (err.key, err.value, err.got, err.source) == (key, value, got, "bad.toml")
    assert type(err.value) is type(value)  # what arrived, not a text of it
    if expected is None:  # an unknown key: the keys that are known
        assert err.expected is not None and err.expected.startswith("one of: median_s, p95_s")
    else:
        assert err.expected == expected
    shown = repr(value) if got is None else got
    assert str(err) == f"bad.toml: {key}: got {shown}, expected {err.expected}"


def test_overrides_name_the_override_key() -> None:
    with pytest.raises(ConfigError) as info:
        Scenario().with_overrides(**{"capacity.uplift": "x"})
    assert (info.value.key, info.value.value, info.value.source) == ("capacity.uplift", "x", "override")


def test_config_error_text_comes_from_its_parts() -> None:
    err = ConfigError(key="cache.capacity", value=-1, expected="an integer >= 0")
    assert str(err) == "cache.capacity: got -1, expected an integer >= 0"
    placed = err.replace(key="x.cache.capacity", source="day.toml")
    assert str(placed) == "day.toml: x.cache.capacity: got -1, expected an integer >= 0"
    assert (placed.key, placed.value, placed.expected) == ("x.cache.capacity", -1, "an integer >= 0")
    assert str(placed.replace(source="other.toml")).startswith("other.toml: x.cache.capacity: ")  # never doubled
    plain = ConfigError("not valid TOML: oops", source="day.toml")
    assert str(plain) == "day.toml: not valid TOML: oops" and plain.key is None
    assert str(ConfigError("a plain message")) == "a plain message"
    with pytest.raises(TypeError):
        ConfigError(key="scale")  # no expectation
    back = pickle.loads(pickle.dumps(placed))  # errors cross process boundaries whole
    assert (str(back), back.key, back.value, back.source) == (str(placed), placed.key, -1, "day.toml")


def test_throttle_policy_is_converted_once_per_scenario() -> None:
    s = parse_scenario("[throttle]\nthreshold = 3\n[throttle.overrides.8F84]\nwindow_s = 60", "ok.toml")
    assert "throttle_policy" in s.__dict__  # converted (so checked) as the scenario loaded
    policy = s.throttle_policy
    assert isinstance(policy, ThrottlePolicy) and policy is s.throttle_policy
    assert policy == policy_from_dict({"threshold": 3, "overrides": {"8F84": {"window_s": 60}}})
    assert policy.limits(0x8F84).window_ns == 60 * 10**9
    # a derived value, not a field: encoding gives the table as written, and equality the fields
    assert "throttle_policy" not in msgspec.to_builtins(s)
    assert msgspec.json.decode(msgspec.json.encode(s))["throttle"] == s.throttle
    assert s == parse_scenario("[throttle]\nthreshold = 3\n[throttle.overrides.8F84]\nwindow_s = 60", "again")
    assert s.with_overrides(seed=2).throttle_policy == policy


def test_core_config_names_the_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        throttle_policy({"exclude": ["8F84", "zz"]}, key="scenarios[2].throttle")
    assert (info.value.key, info.value.value) == ("scenarios[2].throttle.exclude[1]", "zz")
    assert throttle_policy({}, key="anything") == ThrottlePolicy()
    with pytest.raises(ConfigError) as info:
        check_cache_settings(24, 0, key="cache")
    assert (info.value.key, info.value.value, info.value.expected) == ("cache.retention_h", 24, "hours from 25 to 72")
    with pytest.raises(ConfigError) as info:
        check_cache_settings(48, CACHE_MAX_CAPACITY + 1, key="c")
    assert (info.value.key, info.value.value) == ("c.capacity", CACHE_MAX_CAPACITY + 1)
    check_cache_settings(25, CACHE_MAX_CAPACITY)
    check_cache_settings(72, 0)


@pytest.mark.parametrize("module", [core_config, core_errors])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def _dccsim_imports(source: str, package: str) -> set[str]:
    """Every dccsim module ``source`` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the module's own package
                found.add(".".join([package, *filter(None, [node.module])]))
            else:
                found.add(node.module or "")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return {name for name in found if name == "dccsim" or name.startswith("dccsim.")}


def test_import_finder_sees_imports_inside_functions() -> None:
    source = (
        "from dccsim.core.errors import ConfigError\n"
        "def f():\n    from dccsim.cache import MAX_CAPACITY\n"
        "class C:\n    def g(self):\n        import dccsim.throttle\n"
        "importlib.import_module('dccsim.bench')\nfrom . import workload\n"
    )
    assert _dccsim_imports(source, "dccsim.loadgen") == {
        "dccsim.core.errors",
        "dccsim.cache",
        "dccsim.throttle",
        "dccsim.bench",
        "dccsim.loadgen",
    }


def test_scenario_module_imports_only_the_core() -> None:
    path = Path(scenario_module.__file__)
    imports = _dccsim_imports(path.read_text(), "dccsim.loadgen")
    assert imports and all(name.startswith("dccsim.core.") for name in imports), imports


def test_a_time_out_below_the_target_is_refused_naming_the_class() -> None:
    from dccsim.core.errors import ConfigError
    from dccsim.loadgen.scenario import parse_scenario

    text = "\n".join(
        f"[capacity.classes.{name}]\nservice_ms = 1\ntimeout_s = {10 if name == 'mhhs_read' else 60}\ntarget_s = 30"
        for name in ("on_demand", "mhhs_read", "future_dated", "non_device")
    )
    with pytest.raises(ConfigError) as bad:
        parse_scenario(text, "t.toml")
    assert bad.value.key == "capacity.classes.mhhs_read.timeout_s" and bad.value.value == 10
    assert "at least target_s (30 s)" in str(bad.value)


def test_an_empty_scenario_file_is_refused_not_run_as_the_default_day(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dccsim.core.errors import ConfigError
    from dccsim.loadgen.scenario import load_scenario

    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="empty file, expected at least one key"):
        load_scenario(str(empty))
