"""Alert traces for Alert Storm Protection: background alerts plus labelled storms, as columns.

A trace is four columns sorted by time (ties in generation order): ``t_ns`` (``int64``),
``device`` (``uint64`` EUI-64), ``alert_code`` (``uint16``) and ``storm`` (``bool``, the
ground truth: true for the alerts of a storm). It feeds ``dccsim throttle``,
``dccsim tune-throttle`` and the throttle benchmark.

How it is drawn, from one seeded generator (so ``seed`` gives the same trace byte for byte):

- **Background** alerts (``alerts`` minus the storm alerts): times uniform over the
  duration; devices by a per-device activity drawn from a log-normal (a few chatty devices,
  many quiet ones), in random order; each device has a usual alert code (drawn from
  :data:`BACKGROUND_MIX`)
  that it sends :data:`USUAL_SHARE` of the time, and otherwise a code from the same mix.
- **Storms** (``storms`` of them, together ``storm_share`` of the alerts): each on its own
  device with one code from :data:`STORM_CODES`; sizes log-normal; each storm sends at a
  constant mean rate drawn log-uniformly from ``storm_rate_per_s`` (Poisson arrivals),
  starting at a uniform time chosen so that it ends within the duration (a storm too long
  for the duration at its rate is sped up to fit in 90% of it).
- Times are multiples of ``tick_ns`` (1 ms by default), so equal timestamps occur.

A storm is thus exactly the set of storm alerts of one (device, alert code) key, which is
how ``dccsim tune-throttle`` scores settings. The device's background alerts on the same
code are not storm alerts.

>>> tr = make_alert_trace(1000, 50, 2, seed=7)
>>> len(tr), int(tr.storm.sum()), bool((tr.t_ns[1:] >= tr.t_ns[:-1]).all())
(1000, 200, True)
>>> sorted(tr.to_table().column_names)
['alert_code', 'device', 'storm', 't_ns']
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = [
    "AlertTrace",
    "make_alert_trace",
    "BACKGROUND_MIX",
    "STORM_CODES",
    "DEFAULT_START_NS",
    "DEVICE_PREFIX",
]

#: 2024-06-01T00:00:00Z, the default start of a trace
DEFAULT_START_NS = 1_717_200_000 * 1_000_000_000
#: device EUI-64s are this prefix plus a device index
DEVICE_PREFIX = 0x00DB_1200_0000_0000
#: alert code -> share of background alerts (supply loss/restore, future-dated results, ...)
BACKGROUND_MIX: dict[int, float] = {
    0x8F35: 0.16,  # supply restored
    0x8F36: 0.06,  # supply restored (second phase)
    0x8F57: 0.16,  # supply interrupted
    0x8F66: 0.20,  # future-dated command done
    0x8F67: 0.04,  # future-dated command not done
    0x8F12: 0.10,  # CHF device log changed
    0x8183: 0.06,  # device joined the HAN
    0x8F84: 0.12,  # failure to deliver a remote party message
    0x8F3F: 0.05,  # tamper detect
    0x8F75: 0.05,  # strong magnetic field
}
#: the codes storms are made of
STORM_CODES: tuple[int, ...] = (0x8F84, 0x8F12, 0x8F57, 0x8F3F, 0x8F35)
#: how often a device sends its usual code
USUAL_SHARE = 0.7


class AlertTrace(NamedTuple):
    """The columns of an alert trace, sorted by ``t_ns``."""

    t_ns: npt.NDArray[np.int64]
    device: npt.NDArray[np.uint64]
    alert_code: npt.NDArray[np.uint16]
    storm: npt.NDArray[np.bool_]

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.t_ns.shape[0])

    def to_table(self, metadata: dict[str, str] | None = None) -> pa.Table:
        """The trace as an Arrow table (zero-copy columns), with optional schema metadata."""
        schema = pa.schema(
            [
                pa.field("t_ns", pa.int64(), nullable=False),
                pa.field("device", pa.uint64(), nullable=False),
                pa.field("alert_code", pa.uint16(), nullable=False),
                pa.field("storm", pa.bool_(), nullable=False),
            ],
            metadata=metadata,
        )
        return pa.Table.from_arrays([pa.array(c) for c in self], schema=schema)


def _check(name: str, value: object, low: float, high: float, *, integer: bool = True) -> None:
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kind) or not (low <= value <= high):
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} = {value!r}: expected {what} from {low:g} to {high:g}")


def make_alert_trace(
    alerts: int,
    devices: int,
    storms: int = 0,
    *,
    seed: int,
    duration_s: float = 86_400.0,
    storm_share: float = 0.2,
    storm_rate_per_s: tuple[float, float] = (0.05, 2.0),
    start_ns: int = DEFAULT_START_NS,
    tick_ns: int = 1_000_000,
) -> AlertTrace:
    """Draw an alert trace (see the module docstring); bad arguments raise ``ValueError``."""
    _check("alerts", alerts, 0, 1e10)
    _check("devices", devices, 1, 2**32)
    _check("storms", storms, 0, devices)
    _check("seed", seed, 0, 2**63 - 1)
    _check("duration_s", duration_s, 1e-3, 1e8, integer=False)
    _check("storm_share", storm_share, 0, 1, integer=False)
    _check("tick_ns", tick_ns, 1, 1e12)
    lo, hi = storm_rate_per_s
    _check("storm_rate_per_s[0]", lo, 1e-6, 1e6, integer=False)
    _check("storm_rate_per_s[1]", hi, lo, 1e6, integer=False)
    n_storm = int(round(alerts * storm_share)) if storms else 0
    if n_storm and n_storm < storms:
        raise ValueError(
            f"storms = {storms}: expected at most {n_storm} (one alert each at least: "
            f"storm_share {storm_share} of {alerts} alerts)"
        )
    rng = np.random.default_rng(seed)
    duration_ns = int(duration_s * 1e9)
    ids = np.uint64(DEVICE_PREFIX) + np.arange(devices, dtype=np.uint64)

    # background
    n_bg = alerts - n_storm
    codes = np.array(list(BACKGROUND_MIX), np.uint16)
    mix = np.array(list(BACKGROUND_MIX.values()))
    mix /= mix.sum()
    activity = rng.lognormal(0.0, 1.0, devices)
    # alerts per device, then shuffled over sorted uniform times: the same distribution as
    # drawing a device per alert, without a random search per alert
    dev = np.repeat(np.arange(devices), rng.multinomial(n_bg, activity / activity.sum()))
    rng.shuffle(dev)
    usual = rng.choice(codes, size=devices, p=mix)
    code = np.where(rng.random(n_bg) < USUAL_SHARE, usual[dev], rng.choice(codes, size=n_bg, p=mix))
    t = np.sort(rng.integers(0, duration_ns, n_bg, dtype=np.int64))

    # storms
    s_t, s_dev, s_code = [t], [dev], [code]
    if n_storm:
        sizes = rng.multinomial(n_storm - storms, rng.dirichlet(np.full(storms, 1.5))) + 1
        who = rng.choice(devices, size=storms, replace=False)
        what = rng.choice(np.array(STORM_CODES, np.uint16), size=storms)
        rate = np.exp(rng.uniform(np.log(lo), np.log(hi), storms))
        rate = np.maximum(rate, sizes / (0.9 * duration_s))  # fit the duration
        for k in range(storms):
            gaps = rng.exponential(1e9 / rate[k], sizes[k])
            offsets = np.cumsum(gaps) - gaps[0]
            room = max(0.0, duration_ns - offsets[-1] - 1)
            st = (rng.uniform(0, room) + offsets).astype(np.int64).clip(0, duration_ns - 1)
            s_t.append(st)
            s_dev.append(np.full(sizes[k], who[k]))
            s_code.append(np.full(sizes[k], what[k], np.uint16))
    t_all = np.concatenate(s_t)
    t_all -= t_all % tick_ns
    order = np.argsort(t_all, kind="stable")  # merges sorted runs: background, then each storm
    storm = np.zeros(alerts, np.bool_)
    storm[n_bg:] = True
    return AlertTrace(
        t_ns=(t_all[order] + np.int64(start_ns)).astype(np.int64),
        device=ids[np.concatenate(s_dev)[order]],
        alert_code=np.concatenate(s_code)[order].astype(np.uint16),
        storm=storm[order],
    )
