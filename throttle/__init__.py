"""Alert Storm Protection: throttling policies, Numba kernels, throttle metadata, tuning.

The semantics are in :mod:`dccsim.throttle.engine`; the policy file in
:mod:`dccsim.throttle.policy`; threshold tuning in :mod:`dccsim.throttle.tuning`.
Importing compiles nothing; kernels compile on first use (or in ``Throttle.warm_up``).
"""

from .engine import (
    ACTIONS,
    EXCLUDED,
    FORWARDED,
    RECORD_BYTES,
    REPORTED,
    THROTTLED,
    Throttle,
    ThrottleOutput,
    ThrottleReports,
)
from .errors import ThrottleConfigError, ThrottleError, ThrottleInputError, ThrottleTableFullError
from .policy import (
    MAX_OVERRIDES,
    POLICIES,
    CodeLimits,
    CodeOverride,
    ThrottlePolicy,
    format_alert_code,
    load_policy,
    parse_alert_code,
    parse_policy,
    policy_from_dict,
)
from .reference import ReferenceThrottle
from .stats import ThrottleStats
from .tuning import TuningGrid, TuningResult, group_keys, load_grid, parse_grid, storm_ids, sweep

__all__ = [
    "Throttle",
    "ThrottleOutput",
    "ThrottleReports",
    "ThrottleStats",
    "ThrottlePolicy",
    "CodeOverride",
    "CodeLimits",
    "ReferenceThrottle",
    "ACTIONS",
    "FORWARDED",
    "THROTTLED",
    "EXCLUDED",
    "REPORTED",
    "RECORD_BYTES",
    "POLICIES",
    "MAX_OVERRIDES",
    "load_policy",
    "parse_policy",
    "policy_from_dict",
    "parse_alert_code",
    "format_alert_code",
    "TuningGrid",
    "TuningResult",
    "load_grid",
    "parse_grid",
    "storm_ids",
    "group_keys",
    "sweep",
    "ThrottleError",
    "ThrottleConfigError",
    "ThrottleInputError",
    "ThrottleTableFullError",
]
