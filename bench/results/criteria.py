"""Exit criteria: checks on a run's ``summary.json`` that decide whether the run passes.

DCC test phases (PIT, SIT, UIT) exit only if open defects stay under the **Testing Issue
Thresholds**, counted by severity 1 (most severe) to 4. A run of the simulator is judged the
same way: each criterion is a check with a severity, a failed check is a defect of that
severity, and the run passes when, for every severity, the failures do not exceed that
severity's threshold.

Format (the ``[exit_criteria]`` table of a scenario)::

    [exit_criteria]
    "within_target_ratio >= 0.97" = 1          # expression = severity (1..4)
    "latency_s.p99 < 60" = 2
    "within_target_by_srv.4.8.1 >= 0.95" = 3
    "cache.hit_ratio >= 0.3" = 2

    [exit_criteria.thresholds]                 # optional: severity = failures allowed
    3 = 2
    4 = 5

An expression is ``PATH OP NUMBER``:

- ``PATH`` is a dotted path into ``summary.json``. Keys may themselves contain dots (SRVs
  such as ``4.8.1``), so each step takes the **longest** key that matches:
  ``within_target_by_srv.4.8.1`` is key ``4.8.1`` of ``within_target_by_srv``. A step into
  a list takes an index (``top_throttled_devices.0.throttled``). The value reached must be a
  number; ``null`` or NaN (nothing measured) fails the criterion.
- ``OP`` is one of ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=`` (``==`` compares exactly).
- ``NUMBER`` is a decimal number, optionally with an exponent (``1e-3``) or ``_`` separators.

``thresholds`` maps a severity to the number of failed criteria of that severity a passing
run may have. Severities not given keep the defaults :data:`DEFAULT_THRESHOLDS`: 0 for
severities 1 and 2 (any failure fails the run), 2 for severity 3, 5 for severity 4.

>>> criteria = parse_criteria({"latency_s.p99 < 60": 1, "within_target_by_srv.4.8.1 >= 0.9": 3})
>>> summary = {"latency_s": {"p99": 72.5}, "within_target_by_srv": {"4.8.1": 0.95}}
>>> result = evaluate(summary, criteria)
>>> result.passed, result.failed_count, result.verdicts[0].actual
(False, 1, 72.5)
>>> result.headline
'fails 1 criterion'
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dccsim.core.errors import ConfigError

__all__ = [
    "Criterion",
    "Criteria",
    "Verdict",
    "CriteriaResult",
    "CriteriaError",
    "DEFAULT_THRESHOLDS",
    "SEVERITIES",
    "parse_criteria",
    "evaluate",
    "resolve_path",
    "to_dict",
    "from_dict",
    "criteria_for_run",
    "load_criteria_file",
    "format_value",
    "verdict_table",
]

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4)
#: severity -> failed criteria a passing run may have (DCC Testing Issue Thresholds style)
DEFAULT_THRESHOLDS: Mapping[int, int] = {1: 0, 2: 0, 3: 2, 4: 5}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPR = re.compile(r"^\s*(?P<path>[A-Za-z_][A-Za-z0-9_.]*?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<num>[^\s<>=!]+)\s*$")
#: any percentile, from the run's histograms (histograms.json): latency_s.pQ, and
#: latency_by_class.CLASS.pQ_s / latency_by_srv.SRV.pQ_s (Q from 0 to 100, e.g. 97.5)
_PCT_ALL = re.compile(r"^latency_s\.p(?P<q>\d+(\.\d+)?)$")
_PCT_BY = re.compile(r"^latency_by_(?P<kind>class|srv)\.(?P<key>.+)\.p(?P<q>\d+(\.\d+)?)_s$")

#: ``histograms(kind, key)``: the run's latency histogram of ``kind`` ``all`` (key ``""``),
#: ``class`` or ``srv``, or None when the run has none
Histograms = Callable[[str, str], Any]


def percentile_path(path: str) -> tuple[str, str, float] | None:
    """``(kind, key, q)`` when ``path`` names a percentile the histograms can give, else None."""
    m = _PCT_ALL.match(path)
    if m is not None:
        kind, key, q = "all", "", float(m["q"])
    else:
        m = _PCT_BY.match(path)
        if m is None:
            return None
        kind, key, q = m["kind"], m["key"], float(m["q"])
    return (kind, key, q) if 0 < q <= 100 else None


_NUMBER = re.compile(r"^[-+]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][-+]?\d+)?$")


class CriteriaError(ConfigError):
    """A criterion that cannot be parsed or evaluated; the message names it."""


@dataclass(frozen=True, slots=True)
class Criterion:
    """One check: ``path op threshold`` with a severity."""

    expression: str
    path: str
    op: str
    threshold: float
    severity: int

    def check(self, actual: float) -> bool:
        """Whether ``actual`` satisfies the check (NaN never does)."""
        if math.isnan(actual):
            return False
        return _OPS[self.op](actual, self.threshold)


@dataclass(frozen=True, slots=True)
class Criteria:
    """The parsed ``[exit_criteria]`` table: checks and per-severity thresholds."""

    items: tuple[Criterion, ...] = ()
    thresholds: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))


@dataclass(frozen=True, slots=True)
class Verdict:
    """A criterion judged on one summary; ``actual`` is NaN when nothing was measured."""

    criterion: Criterion
    actual: float
    passed: bool


@dataclass(frozen=True, slots=True)
class CriteriaResult:
    """Every verdict, failures per severity and the overall decision."""

    verdicts: tuple[Verdict, ...]
    failures: Mapping[int, int]
    thresholds: Mapping[int, int]

    @property
    def passed(self) -> bool:
        """True when no severity has more failures than its threshold allows."""
        return not self.blocking

    @property
    def blocking(self) -> tuple[int, ...]:
        """Severities whose failures exceed their threshold."""
        return tuple(s for s in SEVERITIES if self.failures.get(s, 0) > self.thresholds.get(s, 0))

    @property
    def failed_count(self) -> int:
        return sum(1 for v in self.verdicts if not v.passed)

    @property
    def headline(self) -> str:
        """``meets targets`` (perhaps with failures within thresholds) or ``fails N criteria``."""
        n = self.failed_count
        if self.passed:
            if n == 0:
                return "meets targets"
            return f"meets targets ({n} failure{'s' if n != 1 else ''} within thresholds)"
        return f"fails {n} criteri{'a' if n != 1 else 'on'}"


def _severity(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in SEVERITIES:
        raise CriteriaError(f"exit_criteria.{name!r}: got severity {value!r}, expected an integer from 1 to 4")
    return value


def parse_expression(expression: str, severity: Any = 1) -> Criterion:
    """One criterion from its expression text and severity."""
    if not isinstance(expression, str):
        raise CriteriaError(f"exit_criteria: got key {expression!r}, expected an expression 'PATH OP NUMBER'")
    sev = _severity(expression, severity)
    m = _EXPR.match(expression)
    if m is None:
        raise CriteriaError(
            f"exit_criteria.{expression!r}: expected 'PATH OP NUMBER' "
            "with OP one of < <= > >= == != "
            "(e.g. 'latency_s.p99 < 60')"
        )
    path, op, num = m.group("path"), m.group("op"), m.group("num")
    if ".." in path or path.endswith("."):
        raise CriteriaError(
            f"exit_criteria.{expression!r}: got path {path!r}, expected dotted keys like 'latency_s.p99'"
        )
    if not _NUMBER.match(num):
        raise CriteriaError(
            f"exit_criteria.{expression!r}: got {num!r} after {op!r}, expected a number such as 0.97 or 60"
        )
    try:
        check_path(path)  # before any run: a path no summary can hold is found now
    except CriteriaError as exc:
        raise CriteriaError(f"exit_criteria.{expression.strip()!r}: {exc}") from None
    return Criterion(expression=expression.strip(), path=path, op=op, threshold=float(num), severity=sev)


def _thresholds(value: Any) -> dict[int, int]:
    if not isinstance(value, Mapping):
        raise CriteriaError(f"exit_criteria.thresholds: got {value!r}, expected a table of severity = failures allowed")
    out = dict(DEFAULT_THRESHOLDS)
    for key, allowed in value.items():
        try:
            sev = int(key)
        except (TypeError, ValueError):
            sev = 0
        if str(key).strip() != str(sev) or sev not in SEVERITIES:
            raise CriteriaError(f"exit_criteria.thresholds: got severity {key!r}, expected 1, 2, 3 or 4")
        if isinstance(allowed, bool) or not isinstance(allowed, int) or allowed < 0:
            raise CriteriaError(
                f"exit_criteria.thresholds.{sev}: got {allowed!r}, expected a whole number of failures allowed (>= 0)"
            )
        out[sev] = allowed
    return out


def parse_criteria(table: Mapping[str, Any]) -> Criteria:
    """Criteria from a scenario's ``exit_criteria`` table (expression = severity, thresholds)."""
    if not isinstance(table, Mapping):
        raise CriteriaError(f"exit_criteria: got {table!r}, expected a table of 'PATH OP NUMBER' = severity")
    items = []
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in table.items():
        if key == "thresholds":
            thresholds = _thresholds(value)
        else:
            items.append(parse_expression(key, value))
    return Criteria(items=tuple(items), thresholds=thresholds)


def _keys_hint(node: Mapping[str, Any]) -> str:
    keys = sorted(map(str, node))
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    return f"one of {shown}" if keys else "nothing (it is empty)"


class _PathError(KeyError):
    """A step of a path that did not match; ``at_leaf``: it tried to step into a number."""

    def __init__(self, message: str, at_leaf: bool = False):
        super().__init__(message)
        self.at_leaf = at_leaf


def _resolve(node: Any, parts: list[str], walked: str) -> Any:
    if not parts:
        return node
    where = walked or "the summary"
    if isinstance(node, Mapping):
        deeper: _PathError | None = None
        # the longest key first; a shorter one only if the longer leads nowhere
        for j in range(len(parts), 0, -1):
            key = ".".join(parts[:j])
            if key in node:
                try:
                    return _resolve(node[key], parts[j:], f"{walked}.{key}" if walked else key)
                except _PathError as exc:
                    deeper = deeper or exc
        dotted = any("." in str(k) for k in node)  # keys like SRVs: name the whole rest as the key
        if deeper is not None and not (deeper.at_leaf and dotted):
            raise deeper
        rest = ".".join(parts) if dotted else parts[0]
        raise _PathError(f"{where} has no key {rest!r}; expected {_keys_hint(node)}")
    if isinstance(node, list):
        try:
            item = node[int(parts[0])]
        except (ValueError, IndexError):
            raise _PathError(
                f"{where} is a list of {len(node)}; expected an index from 0 to {len(node) - 1}, got {parts[0]!r}"
            ) from None
        return _resolve(item, parts[1:], f"{walked}.{parts[0]}")
    raise _PathError(f"{where} is a number, it has no key {parts[0]!r}", at_leaf=True)


def resolve_path(summary: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path``, taking the longest matching key at each step.

    A shorter key is tried only when the longer one leads nowhere. Raises :class:`KeyError`
    with a message naming the step that did not match and what was there.

    >>> resolve_path({"by_srv": {"4.8": 1, "4.8.1": 2}}, "by_srv.4.8.1")
    2
    """
    return _resolve(summary, path.split("."), "")


@functools.cache
def _per_run_keys() -> tuple[tuple[str, frozenset[str], float], ...]:
    """Tables of summary.json that list only what the run saw: (table, the keys it may hold,
    the value of an absent one: a count of 0, or NaN for not measured)."""
    from dccsim.core.catalogue import catalogue
    from dccsim.core.records import INVALID_KINDS, OUTCOMES, REQUEST_CLASSES, RESPONSE_CODES

    def by_class(*fields: str) -> frozenset[str]:
        return frozenset(f"{k}.{f}" for k in REQUEST_CLASSES for f in fields)

    return (
        ("response_codes", frozenset(RESPONSE_CODES), 0.0),
        ("outcomes", frozenset(OUTCOMES), 0.0),
        ("invalid_traffic", frozenset(f"{k}.{c}" for k in INVALID_KINDS[1:] for c in RESPONSE_CODES), 0.0),
        ("latency_by_class", by_class("requests"), 0.0),
        ("latency_by_class", by_class("p50_s", "p95_s", "p99_s", "max_s"), math.nan),
        (
            "latency_by_srv",
            frozenset(f"{s}.{f}" for s in catalogue().srvs for f in ("p50_s", "p95_s", "p99_s", "max_s")),
            math.nan,
        ),
        ("latency_by_srv", frozenset(f"{s}.requests" for s in catalogue().srvs), 0.0),
        ("within_target_by_srv", frozenset(catalogue().srvs), math.nan),
    )


@functools.cache
def _summary_type() -> Any:
    """The typed summary's structure (msgspec's type info, built once: it walks every section)."""
    import msgspec.inspect as mi

    from .summary import RunSummary

    return mi.type_info(RunSummary)


def _class_names() -> tuple[str, ...]:
    from dccsim.core.records import REQUEST_CLASSES

    return REQUEST_CLASSES


def _srv_names() -> frozenset[str]:
    from dccsim.core.catalogue import catalogue

    return frozenset(catalogue().srvs)


def _absent(path: str) -> float | None:
    """The value of a valid path into a per-run table that this run did not fill, else None."""
    for table, keys, value in _per_run_keys():
        if path.startswith(table + ".") and path[len(table) + 1 :] in keys:
            return value
    return None


def _unwrap(t: Any) -> Any:
    """A summary field's type without its ``None`` alternative (msgspec leaves ``UNSET`` out)."""
    import msgspec.inspect as mi

    if isinstance(t, mi.UnionType):
        kept = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return kept[0] if len(kept) == 1 else mi.AnyType()
    return t


def check_path(path: str) -> None:
    """Whether a criterion's ``path`` can exist in any run's summary.json, by the typed
    summary (:class:`~dccsim.bench.results.summary.RunSummary`): checked before the run, so a
    misspelt path costs no run. Tables whose keys depend on the run (SRVs, codes, classes) are
    checked against the keys they may hold; free-form ones (``wallclock``, ``server``) are not.
    :class:`CriteriaError` naming the step that cannot match."""
    import msgspec.inspect as mi

    found = percentile_path(path)
    if found is not None:
        kind, key, _ = found
        if kind == "class" and key not in _class_names():
            raise CriteriaError(f"unknown path {path!r}: no request class {key!r}; expected one of "
                                f"{', '.join(_class_names())}")  # fmt: skip
        if kind == "srv" and key not in _srv_names():
            raise CriteriaError(f"unknown path {path!r}: no SRV {key!r} in the catalogue")
        return
    node: Any = _summary_type()
    parts = path.split(".")
    walked = ""
    i = 0
    while i < len(parts):
        where = walked or "the summary"
        if isinstance(node, mi.StructType):
            fields = {f.encode_name: f for f in node.fields if f.encode_name != "parts"}
            key = parts[i]
            if key not in fields:
                shown = ", ".join(sorted(fields)[:14]) + (", ..." if len(fields) > 14 else "")
                raise CriteriaError(f"unknown path {path!r}: {where} has no key {key!r}; expected one of {shown}")
            node, walked, i = _unwrap(fields[key].type), f"{walked}.{key}" if walked else key, i + 1
            continue
        if isinstance(node, mi.DictType):
            if _absent(path) is not None:  # a per-run table's possible key
                return
            if any(path.startswith(t + ".") for t, _, _ in _per_run_keys()):
                raise CriteriaError(f"unknown path {path!r}: {where} holds no key {'.'.join(parts[i:])!r}")
            value = _unwrap(node.value_type)
            if isinstance(value, mi.AnyType):
                return  # free-form: whatever the run writes
            node, walked, i = value, f"{walked}.{parts[i]}", i + 1  # any key, then its value
            continue
        if isinstance(node, mi.AnyType | mi.ListType):
            return
        raise CriteriaError(f"unknown path {path!r}: {where} is a number, it has no key {parts[i]!r}")
    if isinstance(node, mi.StructType):
        keys = ", ".join(sorted(f.encode_name for f in node.fields))
        raise CriteriaError(f"{path!r} is a table, expected a number; pick one of its keys: {keys}")
    if isinstance(node, mi.DictType | mi.ListType):
        raise CriteriaError(f"{path!r} is a table, expected a number; pick one of its keys")


def _actual(summary: Mapping[str, Any], c: Criterion, histograms: Histograms | None = None) -> float:
    try:
        value = resolve_path(summary, c.path)
    except KeyError as exc:
        absent = _absent(c.path)
        if absent is not None:  # e.g. an SRV or class the run did not see: nothing measured
            return absent
        found = percentile_path(c.path)
        if found is not None:  # not in summary.json: from the run's histograms
            kind, key, q = found
            if histograms is None:
                raise CriteriaError(
                    f"exit_criteria.{c.expression!r}: {c.path!r} is computed from the run's histograms "
                    "(histograms.json in its folder), and this run has none"
                ) from None
            h = histograms(kind, key)
            return math.nan if h is None or not h.count else float(h.percentile(q)) / 1e9
        raise CriteriaError(f"exit_criteria.{c.expression!r}: unknown path {c.path!r}: {exc.args[0]}") from None
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = (
            "a table" if isinstance(value, Mapping) else "a list" if isinstance(value, list) else type(value).__name__
        )
        hint = f"; pick one of its keys: {', '.join(sorted(map(str, value)))}" if isinstance(value, Mapping) else ""
        raise CriteriaError(f"exit_criteria.{c.expression!r}: {c.path!r} is {kind}, expected a number{hint}")
    return float(value)


def evaluate(
    summary: Any, criteria: Criteria | Mapping[str, Any], histograms: Histograms | None = None
) -> CriteriaResult:
    """Judge every criterion on a summary.

    ``summary`` is a :class:`~dccsim.bench.results.summary.RunSummary` or its JSON data (a
    criterion's PATH names a place in summary.json, so it is judged on that document; a
    percentile summary.json does not hold, such as ``latency_s.p97.5``, comes from
    ``histograms``: by default those of a RunSummary in memory, see :func:`histograms_of`).
    ``criteria`` is a :class:`Criteria` or the raw ``exit_criteria`` table. Raises
    :class:`CriteriaError` for a criterion whose path is unknown or does not lead to a number.
    """
    if histograms is None:
        histograms = run_histograms(summary)
    if hasattr(summary, "to_builtins"):
        summary = summary.to_builtins()
    if not isinstance(criteria, Criteria):
        criteria = parse_criteria(criteria)
    verdicts = []
    failures = dict.fromkeys(SEVERITIES, 0)
    for c in criteria.items:
        actual = _actual(summary, c, histograms)
        ok = c.check(actual)
        if not ok:
            failures[c.severity] += 1
        verdicts.append(Verdict(criterion=c, actual=actual, passed=ok))
    return CriteriaResult(verdicts=tuple(verdicts), failures=failures, thresholds=dict(criteria.thresholds))


def to_dict(result: CriteriaResult) -> dict[str, Any]:
    """The result as JSON data (NaN as null), as summary.json keeps it under ``exit_criteria``."""
    return {
        "passed": result.passed,
        "headline": result.headline,
        "failed": result.failed_count,
        "failures_by_severity": {str(s): result.failures.get(s, 0) for s in SEVERITIES},
        "thresholds": {str(s): result.thresholds.get(s, 0) for s in SEVERITIES},
        "criteria": [
            {
                "expression": v.criterion.expression,
                "path": v.criterion.path,
                "op": v.criterion.op,
                "threshold": v.criterion.threshold,
                "severity": v.criterion.severity,
                "actual": None if math.isnan(v.actual) else v.actual,
                "passed": v.passed,
            }
            for v in result.verdicts
        ],
    }


def from_dict(data: Mapping[str, Any]) -> CriteriaResult:
    """Inverse of :func:`to_dict` (``headline`` and ``passed`` are recomputed)."""
    try:
        verdicts = tuple(
            Verdict(
                criterion=Criterion(
                    expression=d["expression"],
                    path=d["path"],
                    op=d["op"],
                    threshold=float(d["threshold"]),
                    severity=int(d["severity"]),
                ),
                actual=math.nan if d["actual"] is None else float(d["actual"]),
                passed=bool(d["passed"]),
            )
            for d in data["criteria"]
        )
        failures = {int(k): int(v) for k, v in data["failures_by_severity"].items()}
        thresholds = {int(k): int(v) for k, v in data["thresholds"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CriteriaError(f"exit_criteria: not a stored verdict document ({exc!r})") from None
    return CriteriaResult(verdicts=verdicts, failures=failures, thresholds=thresholds)


def format_value(value: float) -> str:
    """A measured value for people: ``n/a`` for NaN, up to 6 significant digits otherwise."""
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.6g}"


def verdict_table(result: CriteriaResult) -> Any:
    """A :class:`rich.table.Table` of the verdicts, failures by severity in the caption."""
    from rich.table import Table
    from rich.text import Text

    title = Text("exit criteria: ")
    title.append(result.headline, style="bold green" if result.passed else "bold red")
    t = Table(title=title, title_justify="left", min_width=72)
    t.add_column("verdict")
    t.add_column("severity", justify="right")
    t.add_column("criterion")
    t.add_column("actual", justify="right")
    for v in sorted(result.verdicts, key=lambda v: (v.passed, v.criterion.severity)):
        t.add_row(
            Text("PASS", style="green") if v.passed else Text("FAIL", style="bold red"),
            str(v.criterion.severity),
            v.criterion.expression,
            format_value(v.actual),
        )
    t.caption = "failures / allowed by severity: " + ", ".join(
        f"S{s} {result.failures.get(s, 0)}/{result.thresholds.get(s, 0)}" for s in SEVERITIES
    )
    t.caption_justify = "left"
    return t


def criteria_for_run(run_dir: Path, summary: Any = None) -> tuple[Criteria, str] | None:
    """The exit criteria a run was started with, and where they came from.

    The scenario text is taken from the schema metadata of the run's ``requests.arrow``
    (what actually ran); failing that, the built-in scenario named in ``summary.json``.
    Returns None when neither is available. Raises :class:`CriteriaError` for bad criteria.
    """
    import tomllib

    text = None
    source = ""
    log = Path(run_dir) / "requests.arrow"
    if log.is_file():
        from .logs import LogError, log_metadata

        try:
            text = log_metadata(log).get("dccsim.scenario")
            source = f"the scenario recorded in {log.name}"
        except (LogError, OSError):
            text = None
    if text is None and summary is not None:
        if hasattr(summary, "to_builtins"):
            summary = summary.to_builtins()
        name = (summary.get("run") or {}).get("scenario")
        from dccsim.loadgen.scenario import builtin_scenarios

        text = builtin_scenarios().get(name) if isinstance(name, str) else None
        source = f"the built-in scenario {name!r}"
    if text is None:
        return None
    try:
        table = tomllib.loads(text).get("exit_criteria", {})
    except tomllib.TOMLDecodeError as exc:
        raise CriteriaError(f"{source}: not valid TOML: {exc}") from None
    return parse_criteria(table), source


def load_criteria_file(path: Path) -> Criteria:
    """Criteria from a TOML file: its ``[exit_criteria]`` table, or the whole file without one."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise CriteriaError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CriteriaError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("exit_criteria", data)
    try:
        return parse_criteria(table)
    except CriteriaError as exc:
        raise CriteriaError(f"{path}: {exc}") from None


def run_histograms(summary: Any = None, folder: Path | None = None) -> Histograms | None:
    """A run's histograms: those of a summary still in memory (a run just done), else those its
    ``folder`` keeps (``histograms.json``); None when there are none (or the file is not one)."""
    parts = getattr(summary, "parts", None)
    if parts is not None and hasattr(parts, "tally"):
        return histograms_of(parts)
    if folder is None:
        return None
    try:
        return histograms_from_file(Path(folder) / "histograms.json")
    except CriteriaError:
        return None


def histograms_of(parts: Any) -> Histograms:
    """The histograms of a run in memory (:class:`~dccsim.bench.results.summary.RunParts`)."""
    from dccsim.core.records import REQUEST_CLASSES

    tally = parts.tally

    def get(kind: str, key: str) -> Any:
        if kind == "all":
            return tally.latency_histogram()
        if kind == "class":
            return tally.latency_by_class[REQUEST_CLASSES.index(key)] if key in REQUEST_CLASSES else None
        code = parts.srvs.index(key) if key in parts.srvs else -1
        return tally.latency_by_srv.histogram(code) if code >= 0 else None

    return get


def histograms_from_file(path: Path) -> Histograms | None:
    """The histograms a run folder keeps (``histograms.json``), or None when it has none."""
    import json

    from .histogram import LatencyHistogram

    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        tables = {"all": {"": data["all"]}, "class": data["classes"], "srv": data["srvs"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CriteriaError(f"{path}: not a dccsim histograms file ({exc})") from None

    def get(kind: str, key: str) -> Any:
        h = tables[kind].get(key)
        return None if h is None else LatencyHistogram.from_dict(h)

    return get
