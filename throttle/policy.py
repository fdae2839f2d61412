"""Alert Storm Protection policies: the configuration, its TOML form and its checks.

A policy file (the ``[throttle]`` table of a scenario uses the same keys)::

    policy = "fixed-window"     # or "gcra"
    threshold = 10              # N: alerts of one (device, alert code) forwarded per window
    window_s = 3600             # W, seconds (> 0; fractions allowed, kept to the nanosecond)
    designated_period_s = 900   # P, seconds (>= 0): at most one excess alert forwarded per P
    exclude = ["8F75", "8F3F"]  # alert codes never throttled (action "excluded")
    dry_run = false             # record what would be discarded, forward everything
    max_report_age_s = 86400    # optional: discards older than this are not attached to a
                                # later forwarded alert (stale: counted, never reported)
    report_at_close = false     # true: a key's discards still unreported when its window
                                # closes are reported then, by a synthetic alert (action
                                # "reported") carrying the count; false: on its next forward

    [overrides."8F84"]          # per alert code: any of threshold, window_s,
    threshold = 3               # designated_period_s; the rest come from the top level

Alert codes are four hex digits, any case, with an optional ``0x`` (``"8F84"``, ``"8f84"``,
``"0x8F84"`` are one code). A code may not be both excluded and overridden, and may not be
overridden twice (say ``"8f84"`` and ``"8F84"``). At most :data:`MAX_OVERRIDES` codes can be
overridden. Unknown keys are errors, so a misspelt key never silently falls back to a
default.

Every error is a :class:`~dccsim.throttle.ThrottleConfigError` that names the source, the
key, the value and what was expected:

>>> parse_policy("threshold = 0", source="storm.toml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dccsim.throttle.errors.ThrottleConfigError: storm.toml: threshold = 0: expected an integer ...
>>> p = parse_policy('threshold = 5\\nexclude = ["8f75"]\\n[overrides.8F84]\\nthreshold = 2')
>>> p.limits(0x8F84), p.limits(0x8F75), p.limits(0x8F36).threshold
(CodeLimits(threshold=2, window_ns=3600000000000, designated_period_ns=900000000000), None, 5)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from ._kernels import FIXED_WINDOW, GCRA
from .errors import ThrottleConfigError

__all__ = [
    "POLICIES",
    "MAX_OVERRIDES",
    "MAX_THRESHOLD",
    "MAX_SECONDS",
    "CodeLimits",
    "CodeOverride",
    "ThrottlePolicy",
    "load_policy",
    "parse_policy",
    "policy_from_dict",
    "parse_alert_code",
    "format_alert_code",
]

#: the policy names, by kernel kind
POLICIES: tuple[str, ...] = ("fixed-window", "gcra")
#: per-code overrides a policy may hold (class 0 is "excluded", 1 the top level, 255 is 8 bits)
MAX_OVERRIDES = 254
#: the largest threshold: per-window counts are kept in 32 bits
MAX_THRESHOLD = 2**31 - 1
#: the longest window or designated period, in seconds (about 31.7 years)
MAX_SECONDS = 1e9

NS_PER_S = 1_000_000_000
_CODE = re.compile(r"(?:0[xX])?([0-9A-Fa-f]{4})")


def parse_alert_code(text: object, *, field: str = "alert code") -> int:
    """The alert code written as four hex digits, as an integer.

    >>> hex(parse_alert_code("8f84")), parse_alert_code("0x8183") == 0x8183
    ('0x8f84', True)
    """
    m = _CODE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ThrottleConfigError(
            key=field, value=text, expected='an alert code of 4 hex digits such as "8F84"'
        )
    return int(m.group(1), 16)


def format_alert_code(code: int) -> str:
    """The canonical spelling of an alert code: 4 upper-case hex digits (``"8F84"``)."""
    return f"{int(code):04X}"


class CodeLimits(NamedTuple):
    """The limits that apply to one alert code, times in nanoseconds."""

    threshold: int
    window_ns: int
    designated_period_ns: int


class CodeOverride(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits for one alert code; a key left out takes the policy's top-level value."""

    threshold: int | None = None
    window_s: float | None = None
    designated_period_s: float | None = None


class ThrottlePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One Alert Storm Protection policy (see the module docstring for the keys).

    Constructing one checks it; so does loading one. ``limits(code)`` resolves overrides.
    """

    policy: str = "fixed-window"
    threshold: int = 10
    window_s: float = 3600.0
    designated_period_s: float = 900.0
    exclude: tuple[str, ...] = ()
    dry_run: bool = False
    #: a key's discards are attached to its next forwarded alert only if that alert comes
    #: within this many seconds of the key's last forwarded one (None: always, as before)
    max_report_age_s: float | None = None
    #: report a key's discards still pending when its window (GCRA: episode) closes, by a
    #: synthetic alert at that time (action ``reported``) instead of waiting for its next
    #: forwarded alert, which may never come
    report_at_close: bool = False
    overrides: dict[str, CodeOverride] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _resolve(self)

    @property
    def excluded_codes(self) -> frozenset[int]:
        """The excluded alert codes, as integers."""
        return _resolve(self).excluded

    def limits(self, code: int) -> CodeLimits | None:
        """The limits for alert code ``code``, or ``None`` when it is excluded.

        This resolves the whole policy on each call; callers on a hot path resolve the
        codes they need once.
        """
        r = _resolve(self)
        if code in r.excluded:
            return None
        return r.overrides.get(code, r.top)

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data (TOML-shaped), e.g. for a log's metadata."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        if out.get("max_report_age_s") is None:  # TOML has no null: an unset key is left out
            out.pop("max_report_age_s", None)
        out["overrides"] = {
            k: {f: v for f, v in o.items() if v is not None} for k, o in out["overrides"].items()
        }
        return out


class _Resolved(NamedTuple):
    top: CodeLimits
    excluded: frozenset[int]
    overrides: dict[int, CodeLimits]


def _resolve(p: ThrottlePolicy) -> _Resolved:
    """Check a policy and resolve it to limits per alert code."""
    if p.policy not in POLICIES:
        raise ThrottleConfigError(
            key="policy", value=p.policy, expected=f"one of {', '.join(map(repr, POLICIES))}"
        )
    if not isinstance(p.dry_run, bool):
        raise ThrottleConfigError(key="dry_run", value=p.dry_run, expected="true or false")
    if not isinstance(p.report_at_close, bool):
        raise ThrottleConfigError(key="report_at_close", value=p.report_at_close, expected="true or false")
    age = p.max_report_age_s
    if age is not None and (isinstance(age, bool) or not isinstance(age, int | float) or not (0 < age < 1e9)):
        raise ThrottleConfigError(
            key="max_report_age_s", value=age, expected="a number of seconds > 0 (leave it out: no age limit)"
        )
    if age is not None:
        periods = [p.designated_period_s] + [
            o.designated_period_s for o in (p.overrides or {}).values()
            if isinstance(o, CodeOverride) and isinstance(o.designated_period_s, int | float)
        ]  # fmt: skip
        longest = max((x for x in periods if isinstance(x, int | float)), default=0)
        if age <= longest:
            raise ThrottleConfigError(
                key="max_report_age_s", value=age,
                expected=f"more than the longest designated_period_s ({longest:g} s): a storm's forward every P "
                "would otherwise never carry its count",
            )  # fmt: skip
    top = _limits("", p.threshold, p.window_s, p.designated_period_s, p.policy)
    if isinstance(p.exclude, str) or not isinstance(p.exclude, tuple | list):
        raise ThrottleConfigError(
            key="exclude", value=p.exclude, expected='a list of alert codes such as ["8F75"]'
        )
    excluded = frozenset(
        parse_alert_code(text, field=f"exclude[{k}]") for k, text in enumerate(p.exclude)
    )
    if not isinstance(p.overrides, dict):
        raise ThrottleConfigError(
            key="overrides", value=p.overrides, expected="a table of alert code -> limits"
        )
    if len(p.overrides) > MAX_OVERRIDES:
        raise ThrottleConfigError(
            key="overrides",
            value=len(p.overrides),
            got=f"{len(p.overrides)} alert codes",
            expected=f"at most {MAX_OVERRIDES}",
        )
    overrides: dict[int, CodeLimits] = {}
    for text, o in p.overrides.items():
        code = parse_alert_code(text, field="overrides key")
        name = format_alert_code(code)
        if code in overrides:
            raise ThrottleConfigError(
                f"overrides.{text}: alert code {name} is overridden twice",
                key=f"overrides.{text}",
                value=text,
                got=f"a second override of alert code {name}",
                expected="one override per alert code (any case, with or without 0x, is one code)",
            )
        if code in excluded:
            raise ThrottleConfigError(
                f"overrides.{text}: alert code {name} is also excluded; expected one or the other",
                key=f"overrides.{text}",
                value=text,
                got=f"an override of alert code {name}, which is also excluded",
                expected="an alert code excluded or overridden, not both",
            )
        if not isinstance(o, CodeOverride):
            raise ThrottleConfigError(
                key=f"overrides.{text}",
                value=o,
                expected="a table of threshold, window_s, designated_period_s",
            )
        overrides[code] = _limits(
            f"overrides.{text}.",
            p.threshold if o.threshold is None else o.threshold,
            p.window_s if o.window_s is None else o.window_s,
            p.designated_period_s if o.designated_period_s is None else o.designated_period_s,
            p.policy,
        )
    return _Resolved(top, excluded, overrides)


def _limits(
    where: str, threshold: object, window_s: object, period_s: object, policy: str
) -> CodeLimits:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not (1 <= threshold <= MAX_THRESHOLD)
    ):
        raise ThrottleConfigError(
            key=f"{where}threshold",
            value=threshold,
            expected=f"an integer from 1 to {MAX_THRESHOLD}",
        )
    window_ns = _seconds_ns(f"{where}window_s", window_s, positive=True)
    period_ns = _seconds_ns(f"{where}designated_period_s", period_s, positive=False)
    if policy == "gcra" and window_ns < threshold:
        raise ThrottleConfigError(
            key=f"{where}window_s",
            value=window_s,
            expected=f"at least threshold ({threshold}) nanoseconds, so that the GCRA emission "
            "interval W/N is at least 1 ns",
        )
    return CodeLimits(threshold, window_ns, period_ns)


def _seconds_ns(key: str, value: object, *, positive: bool) -> int:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
        and value <= MAX_SECONDS
    )
    ns = round(value * NS_PER_S) if ok else 0  # type: ignore[operator]
    if not ok or (positive and ns < 1):
        bound = "> 0" if positive else ">= 0"
        raise ThrottleConfigError(
            key=key, value=value, expected=f"a number of seconds {bound} and <= {MAX_SECONDS:.0f}"
        )
    return int(ns)


_LOCATION = re.compile(r"(?:\.[A-Za-z_]\w*|\[\d+\])*")
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")


def _value_at(root: object, location: str) -> tuple[bool, object]:
    """Whether msgspec's ``location`` (``.a[0].b``) is in ``root``, and the value there."""
    if not _LOCATION.fullmatch(location):
        return False, None
    node = root
    for name, index in _STEP.findall(location):
        try:
            node = node[name] if name else node[int(index)]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _from_msgspec(exc: msgspec.ValidationError, raw: object) -> ThrottleConfigError:
    """The error behind msgspec's: one of the policy's checks (its cause), or msgspec's own.

    msgspec keeps a check's exception as the cause, but it says where a value failed, and it
    words its own checks (types, unknown keys), only in its message (a known msgspec
    limitation, issue #264): this is the one place that reads that text.
    """
    if isinstance(exc.__cause__, ThrottleConfigError):
        return exc.__cause__  # the policy's checks run on the whole policy: their keys are whole
    text, _, at = str(exc).partition(" - at `")
    location = at.rstrip("`").removeprefix("$")
    root, path = raw, location.removeprefix(".")
    overrides = raw.get("overrides") if isinstance(raw, Mapping) else None
    if "[...]" in location and isinstance(overrides, Mapping):
        for key, value in overrides.items():  # msgspec does not say which override failed
            try:
                msgspec.convert(value, CodeOverride)
            except msgspec.ValidationError as inner:
                text, _, at = str(inner).partition(" - at `")
                root, location = value, at.rstrip("`").removeprefix("$")
                path = f"overrides.{key}{location}"
                break
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", text, re.S)
    if unknown:
        name = unknown.group(1)
        known = ", ".join((CodeOverride if path.startswith("overrides") else ThrottlePolicy).__struct_fields__)
        found, table = _value_at(root, location)
        return ThrottleConfigError(
            f"{path + ': ' if path else ''}unknown key {name!r}; expected one of: {known}",
            key=f"{path}.{name}" if path else name,
            value=table.get(name) if found and isinstance(table, Mapping) else None,
            got="an unknown key",
            expected=f"one of: {known}",
        )
    wrong = re.fullmatch(r"Expected (.*), got (.*)", text, re.S)
    found, value = _value_at(root, location)
    return ThrottleConfigError(
        f"{path}: {text[:1].lower()}{text[1:]}" if path else text,
        key=path or None,
        value=value if found else None,
        got=None if found or not wrong else wrong.group(2),
        expected=wrong.group(1) if wrong else f"a valid value ({text})",
    )


def policy_from_dict(data: Mapping[str, Any], *, source: str = "throttle") -> ThrottlePolicy:
    """A policy from plain data with the keys of a policy file (e.g. a scenario's table).

    A bad one raises :class:`~dccsim.throttle.ThrottleConfigError` whose ``key`` is relative to
    the table (``"overrides.8F84.window_s"``) and whose ``source`` is ``source``.
    """
    try:
        return msgspec.convert(data, ThrottlePolicy)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(exc, data).replace(source=source) from exc


def parse_policy(text: str | bytes, *, source: str = "<string>") -> ThrottlePolicy:
    """A policy from TOML text; errors name ``source``."""
    try:
        raw = msgspec.toml.decode(text)
    except msgspec.DecodeError as exc:
        raise ThrottleConfigError(f"not valid TOML: {exc}", source=source) from exc
    return policy_from_dict(raw, source=source)


def load_policy(path: str | os.PathLike[str]) -> ThrottlePolicy:
    """A policy from a TOML file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThrottleConfigError(f"cannot read: {exc.strerror}", source=os.fspath(path)) from exc
    return parse_policy(data, source=os.fspath(path))


class CompiledPolicy(NamedTuple):
    """A policy as the kernels take it (see :mod:`dccsim.throttle._kernels`)."""

    kind: int
    code_class: npt.NDArray[np.uint8]
    params: npt.NDArray[np.int64]
    dry_run: bool
    #: ``max_report_age_s`` in ns; -1: no limit
    max_age_ns: int = -1
    #: ``report_at_close``
    report_at_close: bool = False


def compile_policy(policy: ThrottlePolicy) -> CompiledPolicy:
    """The per-code class table and parameter rows of a policy."""
    r = _resolve(policy)
    rows = [(0, 0, 0, 0), _row(policy.policy, r.top)]
    code_class = np.ones(1 << 16, np.uint8)
    for code in r.excluded:
        code_class[code] = 0
    for code, lim in sorted(r.overrides.items()):
        code_class[code] = len(rows)
        rows.append(_row(policy.policy, lim))
    kind = GCRA if policy.policy == "gcra" else FIXED_WINDOW
    age = -1 if policy.max_report_age_s is None else int(round(policy.max_report_age_s * 1e9))
    return CompiledPolicy(kind, code_class, np.array(rows, np.int64), policy.dry_run, age, policy.report_at_close)


def _row(policy: str, lim: CodeLimits) -> tuple[int, int, int, int]:
    n = lim.threshold
    near = (4 * n + 4) // 5  # ceil(0.8 N)
    if policy == "gcra":
        emission = lim.window_ns // n
        return (emission, (n - 1) * emission, lim.designated_period_ns, near * emission)
    return (n, lim.window_ns, lim.designated_period_ns, near)
