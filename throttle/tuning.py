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
discards: with ``dry_run`` the would-be discards), ``excluded`` and ``near_limit``. Given the
ground truth of which alerts belong to a storm (a boolean ``storm`` column), it adds
``storm_forwarded``, ``storm_discarded``, ``collateral`` (non-storm alerts discarded),
``storms``, ``storms_caught`` and ``median_catch_s``. A *storm* is the set of storm alerts
of one (device, alert code) key (:func:`storm_ids`); it is *caught* when at least one of
its alerts is discarded, and its time to catch runs from its first alert to its first
discarded alert. ``median_catch_s`` is the median over caught storms (NaN if none).

Settings run on threads (the kernels release the GIL), each with its own throttle, so the
figures do not depend on ``workers``.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from . import _kernels as k
from .engine import Throttle, ThrottleOutput
from .errors import ThrottleConfigError, ThrottleInputError, ThrottleTableFullError
from .policy import MAX_SECONDS, ThrottlePolicy, policy_from_dict

__all__ = [
    "TuningGrid", "TuningResult", "group_keys", "load_grid", "parse_grid", "storm_ids", "sweep",
]

#: the swept keys, slowest first
AXES: tuple[str, ...] = ("threshold", "window_s", "designated_period_s")
#: the most settings one grid may have
MAX_SETTINGS = 10_000

_COUNT_COLUMNS = ("forwarded", "discarded", "excluded", "near_limit")
_STORM_COLUMNS = (
    "storm_alerts", "storm_forwarded", "storm_discarded", "collateral", "storms", "storms_caught",
)


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
                raise ThrottleConfigError(f"grid.{axis}: expected at least one value, got []")
            for i, v in enumerate(values):
                try:
                    msgspec.structs.replace(self.base, **{axis: v})
                except ThrottleConfigError as exc:
                    msg = str(exc).removeprefix(f"{axis} = {v!r}")
                    raise ThrottleConfigError(f"grid.{axis}[{i}] = {v!r}{msg}") from None
        if len(self) > MAX_SETTINGS:
            raise ThrottleConfigError(
                f"grid: {len(self)} settings, expected at most {MAX_SETTINGS}"
            )

    def __len__(self) -> int:
        return len(self.threshold) * len(self.window_s) * len(self.designated_period_s)

    def settings(self) -> list[ThrottlePolicy]:
        """One policy per setting, ``threshold`` slowest, ``designated_period_s`` fastest."""
        return [
            msgspec.structs.replace(self.base, threshold=n, window_s=w, designated_period_s=p)
            for n, w, p in itertools.product(self.threshold, self.window_s, self.designated_period_s)
        ]


def _grid_from_dict(raw: Mapping[str, Any], source: str) -> TuningGrid:
    data = dict(raw)
    axes_raw = data.pop("grid", {})
    base = policy_from_dict(data, source=source)
    try:
        axes = msgspec.convert(axes_raw, _Axes)
    except msgspec.ValidationError as exc:
        text, _, path = str(exc).partition(" - at `")
        where = path.rstrip("`").removeprefix("$")
        unknown = text.removeprefix("Object contains unknown field ")
        if unknown != text:
            raise ThrottleConfigError(
                f"{source}: grid: unknown key {unknown.strip('`')!r}; expected one of: "
                f"{', '.join(AXES)}"
            ) from None
        raise ThrottleConfigError(f"{source}: grid{where}: {text[:1].lower()}{text[1:]}") from None
    values = {
        axis: tuple(getattr(axes, axis) if getattr(axes, axis) is not None else [getattr(base, axis)])
        for axis in AXES
    }
    try:
        return TuningGrid(base=base, **values)
    except ThrottleConfigError as exc:
        raise ThrottleConfigError(f"{source}: {exc}") from None


def parse_grid(text: str | bytes, *, source: str = "<string>") -> TuningGrid:
    """A tuning grid from TOML text; errors name ``source``."""
    try:
        raw = msgspec.toml.decode(text)
    except msgspec.DecodeError as exc:
        raise ThrottleConfigError(f"{source}: not valid TOML: {exc}") from exc
    return _grid_from_dict(raw, source)


def load_grid(path: str | os.PathLike[str]) -> TuningGrid:
    """A tuning grid from a TOML file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThrottleConfigError(f"{os.fspath(path)}: cannot read: {exc.strerror}") from exc
    return parse_grid(data, source=os.fspath(path))


def group_keys(
    device: npt.NDArray[np.uint64], alert_code: npt.NDArray[np.uint16]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Number the (device, alert code) keys of some rows: ``(key of each row, first row of each key)``.

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
        return [
            {name: self.columns[name][i].item() for name in names} for i in range(len(self))
        ]


def _distinct_keys(
    t_ns: npt.NDArray[np.int64],
    device: npt.NDArray[np.uint64],
    alert_code: npt.NDArray[np.uint16],
    base: ThrottlePolicy,
    max_keys: int,
) -> int:
    """Keys (of codes not excluded) in the trace, capped at ``max_keys``.

    Counted by a throttle whose window outlasts the trace, so no key ever goes stale and
    none is evicted. Sizing every setting's table for them up front spares each setting
    the compactions of a table that starts small (measured: 0.5 s instead of 1 s per
    setting on 10 M alerts with 2.3 M keys).
    """
    if t_ns.shape[0] == 0:
        return 1
    span_s = (int(t_ns[-1]) - int(t_ns[0])) / 1e9 + 1.0
    counter = Throttle(
        msgspec.structs.replace(base, window_s=min(span_s, MAX_SECONDS), overrides={}),
        max_keys=max_keys,
    )
    try:
        counter.process(t_ns, device, alert_code)
    except ThrottleTableFullError:
        return max_keys
    return max(1, len(counter))


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
) -> TuningResult:
    """Run every setting of ``grid`` over one trace and score it (see the module docstring).

    ``workers`` threads (default: the CPUs this process may use) run settings side by
    side; ``progress(done, total)`` is called after each setting, from a worker thread.
    Every setting's table is sized for the trace's keys first (at most ``max_keys``).
    """
    n = t_ns.shape[0] if isinstance(t_ns, np.ndarray) else -1
    if storm is not None and (
        not isinstance(storm, np.ndarray) or storm.dtype != np.bool_ or storm.shape != (n,)
    ):
        got = f"{storm.dtype} {storm.shape}" if isinstance(storm, np.ndarray) else type(storm).__name__
        raise ThrottleInputError(
            f"storm: expected a bool array of shape ({n},), got {got}", argument="storm"
        )
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ThrottleConfigError(f"workers = {workers!r}: expected a positive integer")
    settings = grid.settings()
    total = len(settings)
    if storm is not None:
        ids, start = storm_ids(t_ns, device, alert_code, storm)
    initial_keys = _distinct_keys(t_ns, device, alert_code, grid.base, max_keys)
    rows: list[dict[str, Any]] = [{} for _ in settings]
    local = threading.local()
    done = [0]
    lock = threading.Lock()

    def run(i: int) -> None:
        out = getattr(local, "out", None)
        if out is None:
            out = local.out = ThrottleOutput.empty(n)
        th = Throttle(settings[i], initial_keys=initial_keys, max_keys=max_keys)
        th.process(t_ns, device, alert_code, out=out)
        st = th.stats()
        row = rows[i]
        row.update(forwarded=st.forwarded, discarded=st.would_throttle, excluded=st.excluded,
                   near_limit=st.near_limit)
        if storm is not None:
            first = np.empty(start.shape[0], np.int64)
            counts = np.zeros(3, np.int64)
            k.score_storms(out.would_throttle, t_ns, ids, first, counts)
            caught = first >= 0
            row.update(
                storm_alerts=int(counts[0] + counts[1]), storm_forwarded=int(counts[0]),
                storm_discarded=int(counts[1]), collateral=int(counts[2]),
                storms=int(start.shape[0]), storms_caught=int(caught.sum()),
                median_catch_s=float(np.median(first[caught] - start[caught]) / 1e9)
                if caught.any() else float("nan"),
            )
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

    if workers == 1 or total == 1:
        for i in range(total):
            run(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f in [pool.submit(run, i) for i in range(total)]:
                f.result()
    columns: dict[str, npt.NDArray[Any]] = {
        "threshold": np.array([s.threshold for s in settings], np.int64),
        "window_s": np.array([s.window_s for s in settings], np.float64),
        "designated_period_s": np.array([s.designated_period_s for s in settings], np.float64),
    }
    names = _COUNT_COLUMNS + (_STORM_COLUMNS if storm is not None else ())
    for name in names:
        columns[name] = np.array([r[name] for r in rows], np.int64)
    if storm is not None:
        columns["median_catch_s"] = np.array([r["median_catch_s"] for r in rows], np.float64)
    return TuningResult(columns)

