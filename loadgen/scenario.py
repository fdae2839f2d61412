"""Scenarios: one TOML file describes a simulated day of DCC traffic.

A scenario is loaded through msgspec into frozen Structs; unknown keys, wrong types and
out-of-range values are errors that name the key, the value and what was expected. Every
number that the DCC does not publish (volumes, capacity, latency, target response times) is a
parameter with a documented default here: the defaults describe a plausible uplifted DCC, not
the real one.

Sections (see ``loadgen/scenarios/mhhs-day.toml`` for a commented example):

``[population]``   devices, their kinds, latency profiles and failure shares (the device registry)
``[[users]]``      DCC Users: EUI-64 and role (IS, ES, GS, ED, GT, OU, RSA, MDR)
``[mhhs]``         the nightly MHHS reads and the same-day re-reads by supplier and network operator
``[background]``   on-demand traffic by SRV weights over a diurnal profile
``[future_dated]`` future-dated commands and their 0x8F66 / 0x8F67 responses
``[alerts]``       background device alerts by code mix
``[[storms]]``     alert storms: devices, code, rate, duration
``[invalid]``      a share of invalid traffic that validation must reject
``[capacity]``     DSP slots, service times, time-outs and targets per request class
``[cache]``        readings-cache retention, capacity, scope (SMETS1 ESMEs, or every ESME) and a hit's DSP work
``[comms]``        the comms leg after the DSP: CSP capacity per region, S1SP capacity and wake-ups
``[throttle]``     Alert Storm Protection, in the keys of a ``dccsim throttle`` config file
``[exit_criteria]`` checks on the summary that decide the run's exit code

``scale`` multiplies the population and every volume together; 1.0 is Great Britain (about
32 M meters). ``demand`` multiplies volumes only; ``capacity.uplift`` multiplies DSP slots.

One concern, the scenario file: its sections, their limits and the errors that name the key,
which is why the module is longer than most.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import typing
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from dccsim.core.capacity import MAX_SERVERS, MODELS
from dccsim.core.catalogue import catalogue
from dccsim.core.config import ThrottlePolicy, check_cache_settings
from dccsim.core.config import throttle_policy as _throttle_policy
from dccsim.core.errors import ConfigError
from dccsim.core.eui import EUI_RE
from dccsim.core.messages import ROLES
from dccsim.core.records import REQUEST_CLASSES, RESPONSE_CODES

__all__ = [
    "Scenario",
    "Population",
    "LatencyProfile",
    "User",
    "Mhhs",
    "MHHS_MODES",
    "SCHEDULE_OVERRUNS",
    "Background",
    "FutureDated",
    "Alerts",
    "Storm",
    "Invalid",
    "Capacity",
    "CacheSettings",
    "load_scenario",
    "builtin_scenarios",
    "apply_settings",
    "REQUEST_CLASSES",
]

#: How the MDR's nightly reads reach the DSP (``mhhs.mode``).
MHHS_MODES = ("on_demand", "dcc_scheduled")
#: What a DCC schedule does with reads it could not release in the window (``mhhs.schedule_overrun``).
SCHEDULE_OVERRUNS = ("at_window_end", "after_window")

_HEX16 = re.compile(r"^[0-9A-Fa-f]{1,4}$")

#: Longest duration a scenario may give (latencies, time-outs, targets, retry delay): a day.
MAX_SECONDS = 86_400.0
#: Devices at scale 1.0 (``population.meters``, a storm's ``devices``): about 3 x Great Britain.
MAX_METERS = 100_000_000
#: Devices simulated (``population.meters x scale``): 4 x Great Britain.
MAX_SIMULATED_METERS = 128_000_000
#: Requests and alerts of one day, drawn up front (about 20 Great Britain days at demand 1).
MAX_DAY_EVENTS = 2_000_000_000
#: Per-meter daily rates (background requests, future-dated commands, alerts).
MAX_PER_METER = 1_000.0
#: The simulated days a scenario may start: past reads (demand > 1 reads earlier days) stay
#: after 1970 and every time of the day (and its retries) stays inside the DSP model's
#: +-2**62 ns (2116-02-20).
FIRST_DAY, LAST_DAY = "1971-01-01", "2115-12-31"
#: The lognormal latency's far tail (this many standard deviations) stays below 2**53 ns.
_TAIL_Z = 8.0
_MAX_LATENCY_S = 2**53 / 1e9
_Z95 = 1.6448536269514722


def _fail(key: str, value: object, expected: str) -> ConfigError:
    """The error of a section's check: a key of the section (or relative to it), the value, what was expected."""
    return ConfigError(key=key, value=value, expected=expected)


def _check_share(field: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0 <= value <= 1):
        raise _fail(field, value, "a share between 0 and 1")


def _check_positive(field: str, value: float, allow_zero: bool = False, at_most: float | None = None) -> None:
    ok = isinstance(value, int | float) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if at_most is not None:
        if not (ok and value <= at_most):
            raise _fail(field, value, f"a number {'>= 0' if allow_zero else '> 0'} and <= {at_most:g}")
    elif not ok:
        raise _fail(field, value, "a number >= 0" if allow_zero else "a number > 0")


def _check_hours(field: str, window: tuple[float, float]) -> None:
    a, b = window
    if not (math.isfinite(a) and math.isfinite(b) and 0 <= a < b <= 24):
        raise _fail(
            field, list(window), "[start_h, end_h] with 0 <= start < end <= 24 (the simulated day ends at 24:00)"
        )


def _check_weights(field: str, weights: tuple[float, ...], expected: str) -> None:
    if not weights or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise _fail(field, list(weights), expected)


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class LatencyProfile(_Section):
    """WAN + device round trip of one device kind: lognormal by median and 95th percentile.

    ``e20_share``: requests that cannot reach the device (E20); ``e21_share``: requests the
    device does not answer (E21, answered at the class time-out). Both are transient: drawn
    afresh for every request to a device in ordinary contact.

    Persistent states, drawn once per device (ASSUMED shares, no DCC figure is public):
    ``dead_share`` of devices are out of contact all day (no WAN, dormant): every request to
    one is E21 at the class time-out (the DSP sends it and nothing comes back), so retries to
    them are wasted work; ``flaky_share`` of devices fail each request with probability
    ``flaky_failure_prob`` (E20 and E21 in the ratio of ``e20_share`` to ``e21_share``).
    """

    median_s: float = 4.0
    p95_s: float = 12.0
    e20_share: float = 0.002
    e21_share: float = 0.003
    dead_share: float = 0.002
    flaky_share: float = 0.01
    flaky_failure_prob: float = 0.3

    def __post_init__(self) -> None:
        # key names are relative: a scenario error names the generation (population.smets2...)
        if not (
            isinstance(self.median_s, int | float)
            and math.isfinite(self.median_s)
            and 0.001 <= self.median_s <= MAX_SECONDS
        ):
            raise _fail("median_s", self.median_s, f"seconds from 0.001 to {MAX_SECONDS:g}")
        if not (
            isinstance(self.p95_s, int | float)
            and math.isfinite(self.p95_s)
            and self.median_s <= self.p95_s <= MAX_SECONDS
        ):
            raise _fail("p95_s", self.p95_s, f"seconds from median_s ({self.median_s:g}) to {MAX_SECONDS:g}")
        # the drawn latencies must stay far inside int64 ns: bound the lognormal's far tail
        top = self.median_s * (_MAX_LATENCY_S / self.median_s) ** (_Z95 / _TAIL_Z)
        if self.p95_s > top:
            raise _fail(
                "p95_s",
                self.p95_s,
                f"at most {math.floor(top * 10) / 10:g} for median_s {self.median_s:g} (the spread p95_s / median_s "
                f"keeps the lognormal's tail, {_TAIL_Z:g} standard deviations, below 2**53 ns, about 104 days)",
            )
        _check_share("e20_share", self.e20_share)
        _check_share("e21_share", self.e21_share)
        if self.e20_share + self.e21_share > 1:
            raise _fail("e21_share", self.e21_share, f"at most 1 - e20_share ({1 - self.e20_share:g})")
        _check_share("dead_share", self.dead_share)
        _check_share("flaky_share", self.flaky_share)
        _check_share("flaky_failure_prob", self.flaky_failure_prob)
        if self.dead_share + self.flaky_share > 1:
            raise _fail("flaky_share", self.flaky_share, f"at most 1 - dead_share ({1 - self.dead_share:g})")

    @property
    def sigma(self) -> float:
        """Lognormal sigma from the median and p95 (z = 1.6449)."""
        return math.log(self.p95_s / self.median_s) / _Z95


class Population(_Section):
    """The device population at scale 1.0; it is also the device registry."""

    meters: int = 32_000_000
    smets1_share: float = 0.375
    esme_share: float = 0.55
    export_share: float = 0.08
    regions: tuple[str, ...] = ("north", "central", "south")
    region_shares: tuple[float, ...] = (0.3, 0.4, 0.3)
    smets2: LatencyProfile = LatencyProfile()
    smets1: LatencyProfile = LatencyProfile(
        median_s=9.0, p95_s=30.0, e20_share=0.004, e21_share=0.006, dead_share=0.005, flaky_share=0.02
    )

    def __post_init__(self) -> None:
        if not isinstance(self.meters, int) or not 1 <= self.meters <= MAX_METERS:
            raise _fail("population.meters", self.meters, f"an integer from 1 to {MAX_METERS:_} (at scale 1.0)")
        for f in ("smets1_share", "esme_share", "export_share"):
            _check_share(f"population.{f}", getattr(self, f))
        if len(self.regions) != len(self.region_shares) or not self.regions:
            raise _fail(
                "population.region_shares", list(self.region_shares), f"{len(self.regions)} shares, one per region"
            )
        if not all(math.isfinite(x) and x >= 0 for x in self.region_shares) or abs(sum(self.region_shares) - 1) > 1e-9:
            raise _fail(
                "population.region_shares", list(self.region_shares), "finite, non-negative shares summing to 1"
            )


class User(_Section):
    """A DCC User: its EUI-64 and role."""

    eui: str
    role: str

    def __post_init__(self) -> None:
        if not EUI_RE.match(self.eui):
            raise _fail("users.eui", self.eui, "an EUI-64 like 90-B3-D5-1F-30-01-00-00")
        if self.role not in ROLES:
            raise _fail("users.role", self.role, f"one of {', '.join(ROLES)}")


class Mhhs(_Section):
    """MHHS: the MDR reads every ESME's previous day in a nightly window; others re-read it.

    ``daily_read_share``: share of ESMEs also asked for 4.6.1 (daily read log);
    4.8.3 goes to every export meter. The supplier (IS) and the network operator (ED) each
    re-read a meter's 4.8.1 for the same day with the given probability within their window:
    the readings cache answers those when the MDR's read is still retained.

    ``mode``: how the MDR's nightly reads reach the DSP. ``"on_demand"`` (default): sent by the
    MDR, spread evenly over ``window_h``. ``"dcc_scheduled"``: held on a DCC schedule and
    released by the DCC, below on-demand priority, into the DSP capacity that the scenario's
    on-demand traffic leaves in each ``schedule_interval_s``, filling the DSP's servers to at
    most ``schedule_utilisation`` (a queue run at 100 % grows without bound), at most
    ``schedule_rate_cap_per_s`` releases a second (at scale 1.0 and demand 1.0; scaled with
    both). ``schedule_overrun``: what the schedule has not released when the window ends is
    released in the window's last interval (``"at_window_end"``, default: the reads meet the
    supplier's need, in one burst) or goes on being released the same way after the window, up
    to the day's end, where any rest is released in the last interval (``"after_window"``: late
    for the supplier, no burst). See :func:`dccsim.loadgen.workload.dcc_schedule`. The cap, the
    interval, the utilisation and the overrun are ASSUMED (the DCC publishes none of them).
    """

    window_h: tuple[float, float] = (0.5, 6.0)
    daily_read_share: float = 0.5
    supplier_read_prob: float = 0.35
    supplier_window_h: tuple[float, float] = (6.0, 12.0)
    dno_read_prob: float = 0.2
    dno_window_h: tuple[float, float] = (7.0, 15.0)
    retry_delay_s: float = 1800.0
    max_retries: int = 2
    mode: str = "on_demand"
    schedule_rate_cap_per_s: float = 3000.0
    schedule_interval_s: float = 60.0
    schedule_utilisation: float = 0.9
    schedule_overrun: str = "at_window_end"

    def __post_init__(self) -> None:
        _check_hours("mhhs.window_h", self.window_h)
        _check_hours("mhhs.supplier_window_h", self.supplier_window_h)
        _check_hours("mhhs.dno_window_h", self.dno_window_h)
        for f in ("daily_read_share", "supplier_read_prob", "dno_read_prob"):
            _check_share(f"mhhs.{f}", getattr(self, f))
        _check_positive("mhhs.retry_delay_s", self.retry_delay_s, at_most=MAX_SECONDS)
        if not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= 10:
            raise _fail("mhhs.max_retries", self.max_retries, "an integer from 0 to 10")
        if self.mode not in MHHS_MODES:
            raise _fail("mhhs.mode", self.mode, f"one of {', '.join(MHHS_MODES)}")
        _check_positive("mhhs.schedule_rate_cap_per_s", self.schedule_rate_cap_per_s, at_most=1e9)
        s = self.schedule_interval_s
        if not (isinstance(s, int | float) and math.isfinite(s) and 1 <= s <= 3600):
            raise _fail("mhhs.schedule_interval_s", s, "seconds from 1 to 3600")
        u = self.schedule_utilisation
        if not (isinstance(u, int | float) and 0 < u <= 1):
            raise _fail("mhhs.schedule_utilisation", u, "a share in (0, 1] of the DSP's servers")
        if self.schedule_overrun not in SCHEDULE_OVERRUNS:
            raise _fail("mhhs.schedule_overrun", self.schedule_overrun, f"one of {', '.join(SCHEDULE_OVERRUNS)}")


_FLAT = (1.0,) * 24
_DIURNAL = (
    0.3,
    0.2,
    0.2,
    0.2,
    0.3,
    0.5,
    0.8,
    1.2,
    1.5,
    1.6,
    1.6,
    1.5,
    1.4,
    1.4,
    1.4,
    1.5,
    1.6,
    1.7,
    1.6,
    1.4,
    1.1,
    0.8,
    0.5,
    0.4,
)


class Background(_Section):
    """On-demand traffic from suppliers and network operators over a diurnal profile."""

    requests_per_meter: float = 0.5
    diurnal: tuple[float, ...] = _DIURNAL
    srv_weights: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "4.1.1": 0.25,
            "4.3": 0.1,
            "4.4.2": 0.1,
            "11.2": 0.1,
            "6.2.1": 0.05,
            "4.2": 0.1,
            "4.10": 0.05,
            "8.2": 0.05,
            "6.20.1": 0.05,
            "4.13": 0.05,
            "4.17": 0.1,
        }
    )

    def __post_init__(self) -> None:
        _check_positive(
            "background.requests_per_meter", self.requests_per_meter, allow_zero=True, at_most=MAX_PER_METER
        )
        expected = "24 finite, non-negative hourly weights, not all 0"
        if len(self.diurnal) != 24:
            raise _fail("background.diurnal", list(self.diurnal), expected)
        _check_weights("background.diurnal", self.diurnal, expected)
        cat = catalogue()
        for srv, w in self.srv_weights.items():
            if srv not in cat:
                raise _fail("background.srv_weights", srv, "a DUIS Service Reference Variant such as 4.1.1")
            if cat[srv].critical:
                raise _fail(
                    "background.srv_weights", srv, "a non-critical SRV (critical ones need signed pre-commands)"
                )
            _check_positive(f"background.srv_weights.{srv}", w, allow_zero=True)
        if not self.srv_weights or sum(self.srv_weights.values()) <= 0:
            raise _fail("background.srv_weights", self.srv_weights, "at least one SRV with weight > 0")


class FutureDated(_Section):
    """Future-dated commands (1.1.1 with ExecutionDateTime, held on the device) and their
    responses (CR1233).

    Each delivered command answers with ``instructions`` Responses carrying a
    FutureDatedDeviceAlertMessage (0x8F66 done, or 0x8F67 not done with ``not_done_share``),
    each with InstructionNumber and TotalCommandInstructions; ``out_of_order_share`` of
    commands report their instructions in reverse order (see ``docs/model.md``).
    """

    commands_per_meter: float = 0.02
    lead_time_h: tuple[float, float] = (1.0, 6.0)
    instructions: tuple[int, int] = (1, 4)
    not_done_share: float = 0.05
    out_of_order_share: float = 0.1

    def __post_init__(self) -> None:
        _check_positive(
            "future_dated.commands_per_meter", self.commands_per_meter, allow_zero=True, at_most=MAX_PER_METER
        )
        lo, hi = self.instructions
        if not (1 <= lo <= hi <= 16):
            raise _fail("future_dated.instructions", list(self.instructions), "[min, max] with 1 <= min <= max <= 16")
        a, b = self.lead_time_h
        if not 0 < a <= b <= 24:
            raise _fail(
                "future_dated.lead_time_h", list(self.lead_time_h), "[min, max] hours with 0 < min <= max <= 24"
            )
        _check_share("future_dated.not_done_share", self.not_done_share)
        _check_share("future_dated.out_of_order_share", self.out_of_order_share)


class Alerts(_Section):
    """Background device alerts by code (hex) mix, over the diurnal profile."""

    alerts_per_meter: float = 0.3
    code_mix: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "8F35": 0.2,
            "8F36": 0.2,
            "8F57": 0.25,
            "8F3F": 0.05,
            "8F84": 0.2,
            "8F12": 0.05,
            "8183": 0.05,
        }
    )

    def __post_init__(self) -> None:
        _check_positive("alerts.alerts_per_meter", self.alerts_per_meter, allow_zero=True, at_most=MAX_PER_METER)
        for code, w in self.code_mix.items():
            if not _HEX16.match(code):
                raise _fail("alerts.code_mix", code, "a 16-bit alert code in hex, e.g. 8F84")
            _check_positive(f"alerts.code_mix.{code}", w, allow_zero=True)
        if sum(self.code_mix.values()) <= 0:
            raise _fail("alerts.code_mix", self.code_mix, "at least one code with weight > 0")


class Storm(_Section):
    """An alert storm: ``devices`` (at scale 1.0) each sending ``code`` at a rate for a while."""

    devices: int
    code: str = "8F84"
    rate_per_min: float = 6.0
    start_h: float = 2.0
    duration_min: float = 90.0

    def __post_init__(self) -> None:
        if not isinstance(self.devices, int) or not 1 <= self.devices <= MAX_METERS:
            raise _fail("storms.devices", self.devices, f"an integer from 1 to {MAX_METERS:_} (at scale 1.0)")
        if not _HEX16.match(self.code):
            raise _fail("storms.code", self.code, "a 16-bit alert code in hex, e.g. 8F84")
        _check_positive("storms.rate_per_min", self.rate_per_min, at_most=60_000)
        if not (isinstance(self.start_h, int | float) and 0 <= self.start_h < 24):
            raise _fail("storms.start_h", self.start_h, "an hour in [0, 24)")
        left = (24 - self.start_h) * 60
        if not (isinstance(self.duration_min, int | float) and 0 < self.duration_min <= left):
            raise _fail(
                "storms.duration_min",
                self.duration_min,
                f"minutes > 0 and <= {left:g}, so that the storm (from start_h {self.start_h:g}) ends by 24:00",
            )


class Invalid(_Section):
    """Invalid traffic injected into the MHHS and background streams."""

    share: float = 0.001
    mix: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "wrong_role": 0.25,
            "replay": 0.25,
            "unknown_device": 0.25,
            "bad_period": 0.25,
        }
    )

    def __post_init__(self) -> None:
        _check_share("invalid.share", self.share)
        kinds = {"wrong_role", "replay", "unknown_device", "bad_period"}
        for k, w in self.mix.items():
            if k not in kinds:
                raise _fail("invalid.mix", k, f"one of {', '.join(sorted(kinds))}")
            _check_positive(f"invalid.mix.{k}", w, allow_zero=True)
        if sum(self.mix.values()) <= 0:
            raise _fail("invalid.mix", self.mix, "at least one kind with weight > 0")


class ClassSettings(_Section):
    """DSP service time, time-out and target response time of one request class, and its
    admission bound ``max_wait_s`` (absent: half the class's ``target_s``, ASSUMED, which
    leaves half the target for the device leg): with ``capacity.admission`` on, a request
    whose expected DSP wait exceeds it is refused."""

    service_ms: float
    timeout_s: float
    target_s: float
    max_wait_s: float | None = None

    def __post_init__(self) -> None:
        # key names are relative: a scenario error names the class (capacity.classes.on_demand...)
        ms = self.service_ms
        if not (isinstance(ms, int | float) and math.isfinite(ms) and int(ms * 1e6) >= 1 and ms <= MAX_SECONDS * 1000):
            raise _fail("service_ms", ms, f"milliseconds from 0.000001 (1 ns) to {MAX_SECONDS * 1000:,.0f} (a day)")
        for f in ("timeout_s", "target_s"):
            v = getattr(self, f)
            if not (isinstance(v, int | float) and math.isfinite(v) and 0.001 <= v <= MAX_SECONDS):
                raise _fail(f, v, f"seconds from 0.001 to {MAX_SECONDS:g}")
        if self.timeout_s < self.target_s:
            # a caller that gives up before the target could never see a late answer in time
            raise _fail("timeout_s", self.timeout_s, f"at least target_s ({self.target_s:g} s)")
        w = self.max_wait_s
        if w is not None and not (isinstance(w, int | float) and math.isfinite(w) and 0 <= w <= MAX_SECONDS):
            raise _fail("max_wait_s", w, f"seconds from 0 to {MAX_SECONDS:g}")


def _default_classes() -> dict[str, ClassSettings]:
    return {
        "on_demand": ClassSettings(service_ms=40, timeout_s=60, target_s=30),
        "mhhs_read": ClassSettings(service_ms=30, timeout_s=120, target_s=60),
        "future_dated": ClassSettings(service_ms=30, timeout_s=120, target_s=60),
        "non_device": ClassSettings(service_ms=10, timeout_s=30, target_s=5),
    }


class Capacity(_Section):
    """The DSP: processing slots at scale 1.0 (scaled with the scenario), uplift, classes.

    ``model``: ``"fluid"`` (default; capacity ``slots x scale x uplift x operating_threshold``
    server-equivalents, not floored, so the verdict does not depend on the scale) or
    ``"servers"`` (that product floored to a count of FIFO servers). Overload control
    (ASSUMED defaults, not DCC figures): with ``admission`` a request whose expected wait
    exceeds its class's ``max_wait_s`` is refused at once with ``refuse_code``; with
    ``shed_expired`` a request still queued when its caller times out is shed (answered with
    the time-out code, no DSP service). ``admission = false, shed_expired = false`` is the DSP
    that serves every request however late.
    """

    slots: int = 1500
    uplift: float = 1.0
    demand: float = 1.0
    operating_threshold: float = 0.8
    classes: dict[str, ClassSettings] = msgspec.field(default_factory=_default_classes)
    model: str = "fluid"
    admission: bool = True
    shed_expired: bool = True
    refuse_code: str = "E20"

    def __post_init__(self) -> None:
        if not isinstance(self.slots, int) or not 1 <= self.slots <= 10_000_000:
            raise _fail("capacity.slots", self.slots, "an integer from 1 to 10_000_000 (at scale 1.0)")
        _check_positive("capacity.uplift", self.uplift, at_most=1000)
        _check_positive("capacity.demand", self.demand, at_most=100)
        if not (isinstance(self.operating_threshold, int | float) and 0 < self.operating_threshold <= 1):
            raise _fail("capacity.operating_threshold", self.operating_threshold, "a number in (0, 1]")
        missing = set(REQUEST_CLASSES) - set(self.classes)
        extra = set(self.classes) - set(REQUEST_CLASSES)
        if missing or extra:
            raise _fail("capacity.classes", sorted(self.classes), f"exactly the classes {', '.join(REQUEST_CLASSES)}")
        if self.model not in MODELS:
            raise _fail("capacity.model", self.model, f"one of {', '.join(MODELS)}")
        for f in ("admission", "shed_expired"):
            if not isinstance(getattr(self, f), bool):
                raise _fail(f"capacity.{f}", getattr(self, f), "true or false")
        if self.refuse_code not in RESPONSE_CODES or not self.refuse_code.startswith("E"):
            errors = ", ".join(c for c in RESPONSE_CODES if c.startswith("E"))
            raise _fail("capacity.refuse_code", self.refuse_code, f"a DUIS error code dccsim answers with ({errors})")


class CacheSettings(_Section):
    """Readings cache: retention 25..72 h; capacity 0 = unbounded."""

    retention_h: float = 48.0
    capacity: int = 0
    enabled: bool = True
    #: whose reads the cache holds: "smets1" (the S1SP's cache, as the release has it) or "esme" (every ESME)
    scope: str = "smets1"
    #: share of its class's DSP service time a hit takes, in [0, 1]. ASSUMED 1.0: the DCC's cache
    #: sits in the S1SP, after the DSP, so a hit costs the DSP what a miss does; a DSP-side cache
    #: would save most of it. Below 1 the saved work is credited to the DSP two chunks later
    #: (fluid model only).
    hit_service_share: float = 1.0

    def __post_init__(self) -> None:
        check_cache_settings(self.retention_h, self.capacity, key="cache")
        if self.scope not in ("smets1", "esme"):
            raise _fail("cache.scope", self.scope, '"smets1" (SMETS1 ESMEs, in the S1SP) or "esme" (every ESME)')
        share = self.hit_service_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise _fail("cache.hit_service_share", share, "a number in [0, 1] (1.0: a hit takes full DSP work)")


class Comms(_Section):
    """The comms leg after the DSP: per CSP region and the S1SP, requests per second at scale
    1.0 (scaled with the scenario), and S1SP wake-ups per SMETS1 device request.

    ``csp_capacity_per_s`` is one figure for every region or a table by region name. All
    defaults are assumed, far above a GB MHHS day's peak (about 300-450 requests per second a
    CSP region, 650 at the S1SP), so the comms leg does not bind unless a scenario says so.
    """

    csp_capacity_per_s: float | dict[str, float] = 5000.0
    s1sp_capacity_per_s: float = 4000.0
    s1sp_wakeups_per_read: float = 1.0

    def __post_init__(self) -> None:
        caps = self.csp_capacity_per_s
        for key, value in caps.items() if isinstance(caps, dict) else [("", caps)]:
            _check_positive(f"comms.csp_capacity_per_s{'.' + key if key else ''}", value, at_most=1e9)
        _check_positive("comms.s1sp_capacity_per_s", self.s1sp_capacity_per_s, at_most=1e9)
        _check_positive("comms.s1sp_wakeups_per_read", self.s1sp_wakeups_per_read, allow_zero=True, at_most=1000)

    def csp_capacity(self, region: str) -> float:
        """Requests per second of the CSP of ``region`` at scale 1.0."""
        caps = self.csp_capacity_per_s
        return float(caps[region]) if isinstance(caps, dict) else float(caps)


def _default_users() -> tuple[User, ...]:
    return (
        User(eui="90-B3-D5-1F-30-07-00-01", role="MDR"),
        User(eui="90-B3-D5-1F-30-01-00-00", role="IS"),
        User(eui="90-B3-D5-1F-30-02-00-00", role="ES"),
        User(eui="90-B3-D5-1F-30-03-00-00", role="GS"),
        User(eui="90-B3-D5-1F-30-04-00-00", role="ED"),
        User(eui="90-B3-D5-1F-30-05-00-00", role="GT"),
        User(eui="90-B3-D5-1F-30-06-00-00", role="OU"),
    )


class Scenario(_Section, dict=True):
    """A whole simulated day; see the module docstring for the sections.

    ``dict=True`` gives the frozen Struct a ``__dict__`` for what is derived from the fields
    once (:attr:`throttle_policy`); equality and encoding see the fields only.
    """

    name: str = "custom"
    description: str = ""
    day: str = "2026-11-23"
    scale: float = 0.01
    seed: int = 1
    chunk_s: float = 300.0
    shards: int = 1
    #: days simulated back to back (the cache, throttle and counters carry across midnight)
    days: int = 1
    population: Population = Population()
    users: tuple[User, ...] = msgspec.field(default_factory=_default_users)
    mhhs: Mhhs = Mhhs()
    background: Background = Background()
    future_dated: FutureDated = FutureDated()
    alerts: Alerts = Alerts()
    storms: tuple[Storm, ...] = ()
    invalid: Invalid = Invalid()
    capacity: Capacity = Capacity()
    cache: CacheSettings = CacheSettings()
    comms: Comms = Comms()
    throttle: dict[str, Any] = msgspec.field(default_factory=dict)
    exit_criteria: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            datetime.strptime(self.day, "%Y-%m-%d")
        except (TypeError, ValueError):
            raise _fail("day", self.day, f"a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}") from None
        if not FIRST_DAY <= self.day <= LAST_DAY:
            raise _fail("day", self.day, f"a date from {FIRST_DAY} to {LAST_DAY}")
        if not (isinstance(self.scale, int | float) and 0 < self.scale <= 4):
            raise _fail("scale", self.scale, "a number in (0, 4] (1.0 = Great Britain)")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise _fail("seed", self.seed, "an integer from 0 to 2**63 - 1 (9223372036854775807)")
        if not (isinstance(self.chunk_s, int | float) and 1 <= self.chunk_s <= 3600):
            raise _fail("chunk_s", self.chunk_s, "seconds from 1 to 3600")
        # The driver finishes chunk k-1 (which schedules its retries) while chunk k is already
        # queued at the DSP. A retry of chunk k-1 is due at least retry_delay_s after chunk k-1
        # starts, so retry_delay_s >= 2 x chunk_s puts every retry after chunk k.
        if self.mhhs.retry_delay_s < 2 * self.chunk_s:
            raise _fail(
                "mhhs.retry_delay_s",
                self.mhhs.retry_delay_s,
                f"at least 2 x chunk_s (chunk_s = {self.chunk_s:g}, so >= {2 * self.chunk_s:g}): a retry must not be "
                "due before the chunk after its own has been queued",
            )
        if not isinstance(self.days, int) or isinstance(self.days, bool) or not 1 <= self.days <= 7:
            raise _fail("days", self.days, "an integer from 1 to 7 (days simulated back to back)")
        if not isinstance(self.shards, int) or not 1 <= self.shards <= 256:
            raise _fail("shards", self.shards, "an integer from 1 to 256")
        roles = {u.role for u in self.users}
        for needed in ("MDR", "IS", "ED"):
            if needed not in roles:
                raise _fail("users", sorted(roles), f"a user with role {needed} (MHHS reads need MDR, IS and ED)")
        euis = [u.eui.upper() for u in self.users]
        if len(set(euis)) != len(euis):
            raise _fail("users", euis, "distinct EUI-64s")
        simulated = self.population.meters * self.scale
        if simulated > MAX_SIMULATED_METERS:
            raise _fail(
                "population.meters",
                self.population.meters,
                f"at most {MAX_SIMULATED_METERS:_} devices simulated: population.meters x scale "
                f"({self.scale:g}) is {round(simulated):_}",
            )
        self._check_volumes()
        self._check_capacity()
        caps = self.comms.csp_capacity_per_s
        if isinstance(caps, dict) and set(caps) != set(self.population.regions):
            regions = ", ".join(self.population.regions)
            raise _fail("comms.csp_capacity_per_s", sorted(caps), f"one capacity per region: {regions}")
        _ = self.throttle_policy  # the [throttle] table, checked as the throttle package parses it

    def _check_volumes(self) -> None:
        """Bound what the workload draws up front: the day's requests and alerts."""
        n = self.meters
        esme = n * self.population.esme_share
        d = self.capacity.demand
        m = self.mhhs
        storms = []
        for i, st in enumerate(self.storms):
            if st.devices > self.population.meters:
                raise ConfigError(
                    key=f"storms[{i}].devices",
                    value=st.devices,
                    got=f"{st.devices:,}",
                    expected=f"at most population.meters ({self.population.meters:,}): a storm's devices are "
                    "drawn from the population",
                )
            alerts = min(max(1, round(st.devices * self.scale)), n) * st.rate_per_min * st.duration_min
            if alerts > MAX_DAY_EVENTS:
                raise ConfigError(
                    key=f"storms[{i}]",
                    value=alerts,
                    got=f"devices x scale x rate_per_min x duration_min = {alerts:,.0f} alerts",
                    expected=f"at most {MAX_DAY_EVENTS:,}",
                )
            storms.append(alerts)
        fd = esme * self.future_dated.commands_per_meter * d
        events = (
            esme
            * (
                d
                + min(1.0, m.daily_read_share * d)
                + min(1.0, m.supplier_read_prob * d)
                + min(1.0, m.dno_read_prob * d)
            )
            + esme * self.population.export_share
            + n * self.background.requests_per_meter * d
            + fd * (1 + self.future_dated.instructions[1])
            + n * self.alerts.alerts_per_meter * d
            + sum(storms)
        )
        if events > MAX_DAY_EVENTS:
            raise _fail(
                "capacity.demand",
                d,
                f"a day of at most {MAX_DAY_EVENTS:,} requests and alerts, got about {events:,.0f} from "
                f"{n:,} meters (population.meters x scale) at this demand and the per-meter rates",
            )

    def _check_capacity(self) -> None:
        if self.cache.hit_service_share < 1 and self.capacity.model != "fluid":
            raise _fail(
                "cache.hit_service_share",
                self.cache.hit_service_share,
                f'1.0 with capacity.model = "{self.capacity.model}" (the saved DSP work is credited to the fluid '
                "model only)",
            )
        if self.dsp_servers > MAX_SERVERS:
            raise _fail(
                "capacity.slots",
                self.capacity.slots,
                f"at most {MAX_SERVERS:,} DSP servers (slots x scale x uplift x operating_threshold), "
                f"got {self.dsp_servers:,}",
            )

    @functools.cached_property
    def throttle_policy(self) -> ThrottlePolicy:
        """The ``[throttle]`` table as a policy: converted (and so checked) once, as the scenario loads.

        Whoever builds the throttle takes this rather than parsing the table again. It is not a
        field: encoding a scenario gives the table, as written.
        """
        return _throttle_policy(self.throttle, key="throttle")

    # ------------------------------------------------------------------ derived figures
    def alert_codes(self) -> tuple[int, ...]:
        """Every device alert code the day can raise, sorted: the code mix and the storms' codes
        (the alerts log's code dictionary; future-dated outcomes are responses, not alerts)."""
        codes = {int(c, 16) for c in self.alerts.code_mix} | {int(st.code, 16) for st in self.storms}
        return tuple(sorted(codes))

    @property
    def day_start_ns(self) -> int:
        d = datetime.strptime(self.day, "%Y-%m-%d").replace(tzinfo=UTC)
        return int(d.timestamp()) * 1_000_000_000

    @property
    def meters(self) -> int:
        """Devices simulated: population.meters x scale (at least 10)."""
        return max(10, round(self.population.meters * self.scale))

    @property
    def dsp_servers(self) -> int:
        """DSP servers: ``max(1, floor(slots x scale x uplift x operating_threshold))``.

        One product, exact on the decimal values as written (as the capacity model takes its
        own product), so uplift counts at any scale.
        """
        c = self.capacity
        product = Decimal(int(c.slots))
        for x in (self.scale, c.uplift, c.operating_threshold):
            product *= Decimal(repr(float(x)))
        return max(1, int(product))

    def with_overrides(self, **changes: Any) -> Scenario:
        """A copy with top-level or ``capacity.*`` changes (validated again)."""
        cap_changes = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("capacity.")}
        top = {k: v for k, v in changes.items() if not k.startswith("capacity.") and v is not None}
        data = msgspec.to_builtins(self)
        data.update(top)
        data["capacity"].update({k: v for k, v in cap_changes.items() if v is not None})
        try:
            return msgspec.convert(data, Scenario)
        except msgspec.ValidationError as exc:
            raise _convert_error(exc, "override", data) from None


class _Refusal(NamedTuple):
    """What a ``msgspec.ValidationError`` says, read from its text."""

    #: where: field names, list indexes, and ``None`` for a key of a table that msgspec does not name
    location: tuple[str | int | None, ...]
    #: the message without the location
    text: str
    #: a key that the Struct there does not have, or ``None``
    unknown: str | None = None
    #: a required key that is missing there, or ``None``
    missing: str | None = None
    #: msgspec's own type check: what it expected (``"`int`"``) and what it got (``"`str`"``)
    expected: str | None = None
    got: str | None = None


_AT = re.compile(r" - at `\$((?:\.[A-Za-z_]\w*|\[\d+\]|\[\.\.\.\])*)`$")
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]|\[\.\.\.\]")


def _read_msgspec(exc: msgspec.ValidationError) -> _Refusal:
    """What msgspec's error says: the one place that reads msgspec's text.

    msgspec keeps the exception of a Struct's ``__post_init__`` (one of our checks) as the
    error's ``__cause__``, with all its attributes; but it says *where* only at the end of its
    message (`` - at `$.capacity.classes[...]` ``, a known msgspec limitation: upstream issue
    #264), and it words its own checks (a wrong type, an unknown or missing key) only in its
    message too. Those documented formats are parsed here and nowhere else.
    """
    text = str(exc)
    at = _AT.search(text)
    location: tuple[str | int | None, ...] = ()
    if at:
        text = text[: at.start()]
        location = tuple(
            name if name else int(index) if index else None for name, index in _STEP.findall(at.group(1))
        )
    if m := re.fullmatch(r"Object contains unknown field `(.*)`", text, re.S):
        return _Refusal(location, text, unknown=m.group(1))
    if m := re.fullmatch(r"Object missing required field `(.*)`", text, re.S):
        return _Refusal(location, text, missing=m.group(1))
    if m := re.fullmatch(r"Expected (.*?)(?:, got (.*))?", text, re.S):
        return _Refusal(location, text, expected=m.group(1), got=m.group(2))
    return _Refusal(location, text)


class _Place(NamedTuple):
    """A location in a scenario: its key path, the path without list indexes, its type and raw value."""

    key: str
    static: str
    type: Any
    found: bool
    value: Any


def _locate(raw: Any, location: tuple[str | int | None, ...]) -> _Place:
    """The key path of ``location`` in the raw scenario, with each table key msgspec left unnamed found.

    msgspec does not say which value of a ``dict`` field failed; trying each value of that
    table against its type finds it (the first that fails, as msgspec reports the first).
    """
    tp: Any = Scenario
    obj, key, static, found = raw, "", "", True
    for step in location:
        if step is None:  # a value of a table: the first that fails is the one
            tp = typing.get_args(tp)[1] if tp is not None else None
            failing = None
            if found and isinstance(obj, dict) and tp is not None:
                for name, value in obj.items():
                    try:
                        msgspec.convert(value, tp)
                    except msgspec.ValidationError:
                        failing = name
                        break
            if failing is None:
                key, static, found, obj = f"{key}[...]", f"{static}[...]", False, None
            else:
                key, static, obj = f"{key}.{failing}", f"{static}.{failing}", obj[failing]
            continue
        if isinstance(step, int):
            key += f"[{step}]"
        else:
            key, static = (f"{key}.{step}", f"{static}.{step}") if key else (step, step)
        try:
            tp = typing.get_args(tp)[0] if isinstance(step, int) else typing.get_type_hints(tp)[step]
        except (KeyError, IndexError, TypeError, NameError):
            tp = None
        try:
            obj = obj[step] if found else None
        except (KeyError, IndexError, TypeError):
            found, obj = False, None
    return _Place(key, static, tp, found, obj)


def _within(place: _Place, key: str) -> str:
    """``key`` as a section's check named it (whole, or relative to the section), placed at ``place``."""
    if not place.key:
        return key
    if key == place.static or key.startswith(place.static + "."):  # named whole: put the indexes back
        return place.key + key[len(place.static) :]
    return f"{place.key}.{key}"


def _convert_error(exc: msgspec.ValidationError, source: str, raw: Any) -> ConfigError:
    """msgspec's refusal of a raw scenario as a :class:`ConfigError` naming key, value and expectation."""
    said = _read_msgspec(exc)
    place = _locate(raw, said.location)
    cause = exc.__cause__
    if isinstance(cause, ConfigError) and cause.key is not None:  # a section's own check
        return cause.replace(key=_within(place, cause.key), source=source)
    if said.unknown is not None:
        fields = getattr(place.type, "__struct_fields__", ())
        return ConfigError(
            key=f"{place.key}.{said.unknown}" if place.key else said.unknown,
            value=place.value.get(said.unknown) if isinstance(place.value, dict) else None,
            got="an unknown key",
            expected=f"one of: {', '.join(fields)}" if fields else "a key the scenario documentation lists",
            source=source,
        )
    if said.missing is not None:
        return ConfigError(
            key=f"{place.key}.{said.missing}" if place.key else said.missing,
            value=None,
            got="no value",
            expected="a value (the key is required)",
            source=source,
        )
    key = place.key or "scenario"
    if said.expected is not None:  # msgspec's own type check
        got = None if place.found else said.got
        if isinstance(place.value, date | time):  # a TOML date or time: say so, as TOML writes it
            got = f"{said.got or 'a date'} {place.value.isoformat()}"
        return ConfigError(key=key, value=place.value, got=got, expected=said.expected, source=source)
    return ConfigError(f"{key}: {said.text}", key=key, source=source)


def parse_scenario(text: str, source: str = "scenario") -> Scenario:
    """A scenario from TOML text; :class:`ConfigError` naming the key on any problem."""
    try:
        raw = msgspec.toml.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    if not raw:
        # an empty file would silently run the default day
        raise ConfigError(
            key="scenario", value=text, got="an empty file", expected="at least one key (e.g. name)", source=source
        )
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise _convert_error(exc, source, raw) from None


def builtin_scenarios() -> dict[str, str]:
    """Built-in scenario name -> its TOML text."""
    folder = resources.files("dccsim.loadgen").joinpath("scenarios")
    return {p.name.removesuffix(".toml"): p.read_text() for p in folder.iterdir() if p.name.endswith(".toml")}


def load_scenario(name_or_path: str) -> tuple[Scenario, str]:
    """A built-in scenario by name, or a TOML file; returns the scenario and its text."""
    builtins = builtin_scenarios()
    if name_or_path in builtins:
        text = builtins[name_or_path]
        return parse_scenario(text, name_or_path), text
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            key="scenario",
            value=name_or_path,
            expected=f"a built-in scenario ({', '.join(sorted(builtins))}) or a TOML file",
        )
    text = _read_text(path)
    return parse_scenario(text, str(path)), text


def _read_text(path: Path) -> str:
    """The UTF-8 text of a scenario file; :class:`ConfigError` naming the file (and for bytes
    that are not UTF-8, the offset of the first) when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = f"cannot read ({exc.strerror or exc}), expected a readable TOML file"
        raise ConfigError(reason, source=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"byte 0x{data[exc.start]:02X} at offset {exc.start} is not UTF-8 ({exc.reason}), "
            "expected UTF-8 text (TOML is UTF-8)",
            source=str(path),
        ) from None


def _setting_path(key: object, value: object) -> list[str]:
    """The parts of a dotted scenario key (TOML's dotted-key syntax: ``capacity.uplift``,
    ``exit_criteria."latency_s.p99 < 60"``); :class:`ConfigError` when it is not one."""
    try:
        node: Any = msgspec.toml.decode(f"{key} = 0".encode()) if isinstance(key, str) and "\n" not in key else None
    except msgspec.DecodeError:
        node = None
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        (part, node), = node.items()
        path.append(part)
    if node != 0 or not path:
        raise ConfigError(key=str(key), value=value, expected="a dotted scenario key, e.g. capacity.uplift")
    return path


def apply_settings(data: dict[str, Any], settings: typing.Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a scenario's TOML data (``msgspec.toml.decode`` of its text) with ``settings``
    by dotted key: ``{"capacity.uplift": 1.2, "cache.enabled": False}``.

    A key names a place in the TOML; its value replaces what is there, or is added (checking
    is the scenario's, when the data is converted). A step into an array of tables takes an
    index (``storms.0.devices``). Raises :class:`ConfigError` naming the key for a key that is
    not a dotted key, or that goes through a value that is not a table.
    """
    out = copy.deepcopy(dict(data))
    for key, value in settings.items():
        path = _setting_path(key, value)
        node: Any = out
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                if last:
                    node[int(part)] = value
                node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                node = node.setdefault(part, {})
            else:
                raise ConfigError(
                    key=key, value=value,
                    expected=f"a key inside a table ({'.'.join(path[:depth]) or 'it'} is not a table, "
                    "or an array index is past its end)",
                )  # fmt: skip
    return out
