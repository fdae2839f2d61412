"""Threshold tuning: one alert trace, a grid of (N, W, P), and what each setting would do.

A grid file holds the keys of a policy file (the *base*: ``policy``, ``exclude``,
``overrides``, ...) and a ``[grid]`` table of values to sweep::

    policy = "fixed-window"
    exclude = ["8F75"]

    [grid]
    threshold = [3, 5, 10, 20, 50]
    window_s = [600, 1800, 3600, 7200, 86400]
    designated_period_s = [300, 900, 3600]

A grid key left out takes the base's value; the settings are the cartesian product, with
``threshold`` varying slowest and ``designated_period_s`` fastest. Per-code overrides in the
base keep applying to their codes (they are not swept). Every grid value is checked like a
policy value, and errors name it (``grid.threshold[2] = 0: ...``).

For each setting, :func:`sweep` reports ``forwarded``, ``discarded`` (what enforcement
discards: with ``dry_run`` the would-be discards), ``excluded`` and ``near_limit``; as in
``dccsim throttle``, the three counts are disjoint and add up to the alerts (excluded alerts
are forwarded too, but counted as excluded). ``storm_forwarded`` counts every storm alert
let through, excluded ones included. Given the
ground truth of which alerts belong to a storm (a boolean ``storm`` column), it adds
``storm_forwarded``, ``storm_discarded``, ``collateral`` (non-storm alerts discarded),
``storms``, ``storms_caught`` and ``median_catch_s``. ``unreported_discards`` counts the
discards no forwarded alert reported by the trace's last alert; with ``report_at_close`` in
the base, those whose window had closed by then were reported and are not counted (the
option changes no decision, so it is a base key, not an axis). A *storm* is the set of storm alerts
of one (device, alert code) key (:func:`storm_ids`); it is *caught* when at least one of
its alerts is discarded, and its time to catch runs from its first alert to its first
discarded alert. ``median_catch_s`` is the median over caught storms (NaN if none).

The keys are numbered once (:func:`dense_keys`), then the settings run in passes over the
alerts, several side by side (each key's states adjacent, so one memory access per alert
serves them all), and passes run on threads (the kernels release the GIL). The outcomes
are exactly those of one :class:`~dccsim.throttle.Throttle` per setting (a test checks),
whatever ``workers`` and ``pass_bytes``.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from . import _kernels as k
from .engine import _column
from .errors import ThrottleConfigError, ThrottleInputError, ThrottleTableFullError
from .policy import ThrottlePolicy, _value_at, compile_policy, policy_from_dict

__all__ = [
    "TuningGrid",
    "TuningResult",
    "group_keys",
    "load_grid",
    "parse_grid",
    "storm_ids",
    "sweep",
]

#: the swept keys, slowest first
AXES: tuple[str, ...] = ("threshold", "window_s", "designated_period_s")
#: the most settings one grid may have
MAX_SETTINGS = 10_000


class _Axes(msgspec.Struct, forbid_unknown_fields=True):
    threshold: list[int] | None = None
    window_s: list[float] | None = None
    designated_period_s: list[float] | None = None


class TuningGrid(msgspec.Struct, frozen=True, kw_only=True):
    """A base policy and the values of N, W and P to sweep."""

    base: ThrottlePolicy
    threshold: tuple[int, ...]
    window_s: tuple[float, ...]
    designated_period_s: tuple[float, ...]

    def __post_init__(self) -> None:
        for axis in AXES:
            values = getattr(self, axis)
            if not values:
                raise ThrottleConfigError(
                    f"grid.{axis}: expected at least one value, got []",
                    key=f"grid.{axis}",
                    value=[],
                    got="no values",
                    expected="at least one value",
                )
            for i, v in enumerate(values):
                try:
                    msgspec.structs.replace(self.base, **{axis: v})
                except ThrottleConfigError as exc:  # the base policy's check of this value
                    expected = exc.expected if exc.key == axis else None
                    raise ThrottleConfigError(
                        key=f"grid.{axis}[{i}]",
                        value=v,
                        expected=expected or f"a value the base policy accepts ({exc})",
                    ) from None
        if len(self) > MAX_SETTINGS:
            raise ThrottleConfigError(
                key="grid",
                value=len(self),
                got=f"{len(self)} settings",
                expected=f"at most {MAX_SETTINGS}",
            )

    def __len__(self) -> int:
        return len(self.threshold) * len(self.window_s) * len(self.designated_period_s)

    def settings(self) -> list[ThrottlePolicy]:
        """One policy per setting, ``threshold`` slowest, ``designated_period_s`` fastest."""
        return [
            msgspec.structs.replace(self.base, threshold=n, window_s=w, designated_period_s=p)
            for n, w, p in itertools.product(
                self.threshold, self.window_s, self.designated_period_s
            )
        ]


def _grid_error(exc: msgspec.ValidationError, raw: object) -> ThrottleConfigError:
    """msgspec's error for the ``[grid]`` table, as an error naming the key.

    msgspec words its own checks (types, unknown keys) and says where they failed only in its
    message (a known msgspec limitation, issue #264): this is the one place here that reads it.
    """
    text, _, at = str(exc).partition(" - at `")
    location = at.rstrip("`").removeprefix("$")
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", text, re.S)
    if unknown:
        name = unknown.group(1)
        return ThrottleConfigError(
            f"grid: unknown key {name!r}; expected one of: {', '.join(AXES)}",
            key=f"grid.{name}",
            value=raw.get(name) if isinstance(raw, Mapping) else None,
            got="an unknown key",
            expected=f"one of: {', '.join(AXES)}",
        )
    wrong = re.fullmatch(r"Expected (.*), got (.*)", text, re.S)
    found, value = _value_at(raw, location)
    return ThrottleConfigError(
        f"grid{location}: {text[:1].lower()}{text[1:]}",
        key=f"grid{location}",
        value=value if found else None,
        got=None if found or not wrong else wrong.group(2),
        expected=wrong.group(1) if wrong else f"a valid value ({text})",
    )


def _grid_from_dict(raw: Mapping[str, Any], source: str) -> TuningGrid:
    data = dict(raw)
    axes_raw = data.pop("grid", {})
    base = policy_from_dict(data, source=source)
    try:
        axes = msgspec.convert(axes_raw, _Axes)
    except msgspec.ValidationError as exc:
        raise _grid_error(exc, axes_raw).replace(source=source) from None
    values = {
        axis: tuple(
            getattr(axes, axis) if getattr(axes, axis) is not None else [getattr(base, axis)]
        )
        for axis in AXES
    }
    try:
        return TuningGrid(base=base, **values)
    except ThrottleConfigError as exc:
        raise exc.replace(source=source) from None


def parse_grid(text: str | bytes, *, source: str = "<string>") -> TuningGrid:
    """A tuning grid from TOML text; errors name ``source``."""
    try:
        raw = msgspec.toml.decode(text)
    except msgspec.DecodeError as exc:
        raise ThrottleConfigError(f"not valid TOML: {exc}", source=source) from exc
    return _grid_from_dict(raw, source)


def load_grid(path: str | os.PathLike[str]) -> TuningGrid:
    """A tuning grid from a TOML file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThrottleConfigError(f"cannot read: {exc.strerror}", source=os.fspath(path)) from exc
    return parse_grid(data, source=os.fspath(path))


def group_keys(
    device: npt.NDArray[np.uint64], alert_code: npt.NDArray[np.uint16]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Number the (device, alert code) keys of rows: ``(key of each row, first row of each key)``.

    Keys are numbered in (device, alert code) order.

    >>> group_keys(np.array([7, 7, 3, 7], np.uint64), np.array([1, 2, 1, 1], np.uint16))
    (array([1, 2, 0, 1]), array([2, 0, 1]))
    """
    order = np.lexsort((alert_code, device))  # stable: rows of a key stay in input order
    d, c = device[order], alert_code[order]
    new = np.ones(order.shape[0], np.bool_)
    new[1:] = (d[1:] != d[:-1]) | (c[1:] != c[:-1])
    key = np.empty(order.shape[0], np.int64)
    key[order] = np.cumsum(new) - 1
    return key, order[new]


def storm_ids(
    t_ns: npt.NDArray[np.int64],
    device: npt.NDArray[np.uint64],
    alert_code: npt.NDArray[np.uint16],
    storm: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Storm of each alert (``-1``: none) and each storm's first time.

    A storm is the set of storm alerts of one (device, alert code) key; storms are
    numbered in (device, alert code) order.

    >>> t = np.arange(5, dtype=np.int64)
    >>> d = np.array([7, 7, 3, 7, 3], np.uint64)
    >>> ids, start = storm_ids(t, d, np.full(5, 0x8F84, np.uint16),
    ...                        np.array([1, 1, 0, 1, 1], bool))
    >>> ids.tolist(), start.tolist()
    ([1, 1, -1, 1, 0], [4, 0])
    """
    rows = np.flatnonzero(storm)
    key, first = group_keys(device[rows], alert_code[rows])
    ids = np.full(t_ns.shape[0], -1, np.int64)
    ids[rows] = key
    return ids, t_ns[rows[first]]


class TuningResult(NamedTuple):
    """One row per setting, as columns (NumPy arrays), in :meth:`TuningGrid.settings` order."""

    columns: dict[str, npt.NDArray[Any]]

    def __len__(self) -> int:
        return len(self.columns["threshold"])

    def rows(self) -> list[dict[str, Any]]:
        """The settings as dicts of Python scalars."""
        names = list(self.columns)
        return [{name: self.columns[name][i].item() for name in names} for i in range(len(self))]


def dense_keys(
    device: npt.NDArray[np.uint64],
    alert_code: npt.NDArray[np.uint16],
    code_class: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.int64], int]:
    """Number the (device, alert code) keys in order of first appearance (-1: excluded code).

    >>> code_class = np.ones(1 << 16, np.uint8); code_class[0x8F75] = 0
    >>> dense_keys(np.array([7, 3, 7, 7], np.uint64),
    ...            np.array([0x8F84, 0x8F84, 0x8F75, 0x8F84], np.uint16), code_class)
    (array([ 0,  1, -1,  0]), 2)
    """
    n = device.shape[0]
    key = np.empty(n, np.int64)
    slots = 1 << max(4, (max(n, 1) // 4).bit_length())
    with np.errstate(over="ignore"):  # the hash wraps on purpose (matters with the JIT off)
        while True:
            keys = int(
                k.dense_keys(device, alert_code, code_class, np.zeros((slots, 2), np.int64), key)
            )
            if keys >= 0:
                return key, keys
            slots *= 4


def sweep(
    t_ns: npt.NDArray[np.int64],
    device: npt.NDArray[np.uint64],
    alert_code: npt.NDArray[np.uint16],
    grid: TuningGrid,
    *,
    storm: npt.NDArray[np.bool_] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_keys: int = 1 << 24,
    pass_bytes: int = 512 << 20,
) -> TuningResult:
    """Run every setting of ``grid`` over one trace and score it (see the module docstring).

    The keys are numbered once; then settings run in *passes*, several side by side in one
    pass over the alerts (each key's states adjacent, so one memory access per alert serves
    them all), as many per pass as fit ``pass_bytes`` of state (32 bytes per key and
    setting). ``workers`` threads (default: the CPUs this process may use) run passes side
    by side; ``progress(done, total)`` is called after each pass, from a worker thread.
    The outcomes are exactly those of one :class:`~dccsim.throttle.Throttle` per setting.
    More than ``max_keys`` keys raise :class:`~dccsim.throttle.ThrottleTableFullError`.
    """
    t_ns = _column("t_ns", t_ns, np.int64, None)
    n = t_ns.shape[0]
    device = _column("device", device, np.uint64, n)
    alert_code = _column("alert_code", alert_code, np.uint16, n)
    if storm is not None:
        storm = _column("storm", storm, np.bool_, n)
    bad = int(k.first_decrease(t_ns, np.iinfo(np.int64).min))
    if bad >= 0:
        raise ThrottleInputError(
            f"t_ns[{bad}] = {t_ns[bad]}: expected non-decreasing times, after {t_ns[bad - 1]}",
            argument="t_ns",
            row=bad,
        )
    if workers is None:
        workers = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    for name, value in (("workers", workers), ("pass_bytes", pass_bytes), ("max_keys", max_keys)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ThrottleConfigError(key=name, value=value, expected="a positive integer")
    settings = grid.settings()
    total = len(settings)
    first = compile_policy(settings[0])
    code_class = first.code_class  # the same for all: one base, one set of codes
    kind = first.kind
    # only each setting's parameter rows are kept (not its 64 KiB code table)
    params = np.stack([first.params, *(compile_policy(p).params for p in settings[1:])])
    key, keys = dense_keys(device, alert_code, code_class)
    if keys > max_keys:
        raise ThrottleTableFullError(
            f"the trace has {keys} keys, more than max_keys = {max_keys}", processed=0
        )
    if storm is not None:
        storm_id, start = storm_ids(t_ns, device, alert_code, storm)
    else:
        storm_id, start = np.full(n, -1, np.int64), np.empty(0, np.int64)
    excluded = int(np.count_nonzero(key < 0))
    # report_at_close: a key's discards are reported if its window closed by the trace's end
    rows = np.flatnonzero(key >= 0)
    key_class = code_class[alert_code[rows[np.unique(key[rows], return_index=True)[1]]]]
    at_close = grid.base.report_at_close and keys > 0
    t_end = int(t_ns[-1]) if n else 0
    per_pass = max(1, min(total, pass_bytes // (32 * max(keys, 1))))
    passes = [range(a, min(a + per_pass, total)) for a in range(0, total, per_pass)]
    counts = np.zeros((total, k.SW_COUNTERS), np.int64)
    unreported = np.zeros(total, np.int64)
    first = np.full((total, start.shape[0]), -1, np.int64)
    done = [0]
    lock = threading.Lock()

    def run(settings_: range) -> None:
        a, b = settings_.start, settings_.stop
        state = np.zeros((max(keys, 1), 4 * (b - a)), np.int64)
        k.sweep_pass(
            t_ns,
            alert_code,
            key,
            storm_id,
            kind,
            code_class,
            params[a:b],
            state,
            counts[a:b],
            first[a:b],
        )
        # each setting's discards still held at the end (its keys' counts words, high halves)
        held = state[:, 3::4] >> 32
        if at_close:  # held discards of windows (GCRA: episodes) closed by the end were reported
            close = state[:, 1::4] + (params[a:b, key_class, 1].T if kind == k.FIXED_WINDOW else 0)
            held = np.where(close > t_end, held, 0)
        unreported[a:b] = held.sum(axis=0)
        with lock:
            done[0] += b - a
            if progress is not None:
                progress(done[0], total)

    if workers == 1 or len(passes) == 1:
        for p in passes:
            run(p)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(passes))) as pool:
            for f in [pool.submit(run, p) for p in passes]:
                f.result()

    columns: dict[str, npt.NDArray[Any]] = {
        "threshold": np.array([s.threshold for s in settings], np.int64),
        "window_s": np.array([s.window_s for s in settings], np.float64),
        "designated_period_s": np.array([s.designated_period_s for s in settings], np.float64),
        "forwarded": counts[:, k.SW_FORWARDED].copy(),
        "discarded": counts[:, k.SW_STORM_DISCARDED] + counts[:, k.SW_COLLATERAL],
        "excluded": np.full(total, excluded, np.int64),
        "near_limit": counts[:, k.SW_NEAR].copy(),
        "unreported_discards": unreported,
    }
    if storm is not None:
        caught = first >= 0
        delay = np.where(caught, first - start[None, :], 0)
        columns.update(
            storm_alerts=np.full(total, int(np.count_nonzero(storm)), np.int64),
            # excluded storm alerts are forwarded too
            storm_forwarded=counts[:, k.SW_STORM_FORWARDED]
            + int(np.count_nonzero(storm & (key < 0))),
            storm_discarded=counts[:, k.SW_STORM_DISCARDED].copy(),
            collateral=counts[:, k.SW_COLLATERAL].copy(),
            storms=np.full(total, start.shape[0], np.int64),
            storms_caught=caught.sum(axis=1).astype(np.int64),
            median_catch_s=np.array(
                [
                    float(np.median(delay[i][caught[i]])) / 1e9 if caught[i].any() else math.nan
                    for i in range(total)
                ]
            ),
        )
    return TuningResult(columns)


def warm_up() -> None:
    """Compile (or load from the cache) the sweep's kernels, for writeable and read-only
    (Arrow) inputs alike, outside any timed region."""
    grid = TuningGrid(
        base=ThrottlePolicy(exclude=("8F75",)),
        threshold=(1,),
        window_s=(1.0,),
        designated_period_s=(0.0,),
    )
    for policy in ("fixed-window", "gcra"):
        g = msgspec.structs.replace(grid, base=msgspec.structs.replace(grid.base, policy=policy))
        for readonly in (False, True):
            cols = [
                np.zeros(2, np.int64),
                np.ones(2, np.uint64),
                np.array([1, 0x8F75], np.uint16),
                np.ones(2, np.bool_),
            ]
            for c in cols:
                c.flags.writeable = not readonly
            sweep(*cols[:3], g, storm=cols[3], workers=1)
