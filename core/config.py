"""Typed configuration of the core's stages.

The throttle and the readings cache are leaf packages with their own settings and errors;
a scenario gives their settings as plain tables. This module turns those tables into the
stages' typed settings and the leaves' errors into :class:`~dccsim.core.errors.ConfigError`
naming the scenario's key path, so that whoever reads a scenario (``dccsim.loadgen``) needs
the core only.

>>> throttle_policy({"threshold": 3}).threshold
3
>>> try:
...     throttle_policy({"overrides": {"8F84": {"window_s": -1}}})
... except ConfigError as exc:
...     print(exc.key, exc.value)
throttle.overrides.8F84.window_s -1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dccsim.cache import MAX_CAPACITY, MAX_RETENTION_HOURS, MIN_RETENTION_HOURS
from dccsim.throttle import ThrottleConfigError, ThrottlePolicy, policy_from_dict

from .errors import ConfigError

__all__ = [
    "CACHE_MAX_CAPACITY",
    "CACHE_RETENTION_HOURS",
    "ThrottlePolicy",
    "check_cache_settings",
    "throttle_policy",
]

#: The most entries a bounded readings cache may hold.
CACHE_MAX_CAPACITY: int = MAX_CAPACITY
#: The readings cache's retention bounds in hours (the Data Retention Period), inclusive.
CACHE_RETENTION_HOURS: tuple[float, float] = (MIN_RETENTION_HOURS, MAX_RETENTION_HOURS)


def throttle_policy(table: Mapping[str, Any], key: str = "throttle") -> ThrottlePolicy:
    """The Alert Storm Protection policy of a scenario's ``[throttle]`` table.

    A bad table raises :class:`ConfigError` whose ``key`` is the table's ``key`` followed by
    the throttle's own key (``throttle.overrides.8F84.window_s``), with the value that arrived
    and what was expected, as the throttle package checked them.
    """
    try:
        return policy_from_dict(table, source=key)
    except ThrottleConfigError as exc:
        where = f"{key}.{exc.key}" if exc.key else key
        if exc.expected is None:  # not raised by policy_from_dict today; kept whole if it ever is
            raise ConfigError(f"{where}: {exc.message or exc}", key=where) from None
        raise ConfigError(key=where, value=exc.value, expected=exc.expected, got=exc.got) from None


def check_cache_settings(retention_h: object, capacity: object, key: str = "cache") -> None:
    """Check a scenario's readings-cache settings against the cache's bounds.

    ``retention_h`` in hours (the Data Retention Period); ``capacity`` in entries, 0 for an
    unbounded cache. A bad one raises :class:`ConfigError` naming ``key.retention_h`` or
    ``key.capacity``.
    """
    low, high = CACHE_RETENTION_HOURS
    if isinstance(retention_h, bool) or not isinstance(retention_h, int | float) or not low <= retention_h <= high:
        raise ConfigError(key=f"{key}.retention_h", value=retention_h, expected=f"hours from {low:g} to {high:g}")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= CACHE_MAX_CAPACITY:
        raise ConfigError(
            key=f"{key}.capacity",
            value=capacity,
            expected=f"an integer from 0 to {CACHE_MAX_CAPACITY:_} entries (0 = unbounded)",
        )
