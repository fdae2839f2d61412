"""The records dccsim logs, defined once: the request and alert log columns and their codes.

Every producer of log rows (the virtual-time driver, the wall-clock server, the network load
client) builds a :class:`RequestRows` or :class:`AlertRows` and hands it to a
:class:`LogSink`; the Arrow schemas of ``requests.arrow`` and ``alerts.arrow`` are derived
from the same definitions (:mod:`dccsim.bench.results.logs`). A column added to one of the
two classes below is a keyword every producer must give, and appears in every log.

Categorical columns are uint8 **codes** into a code vocabulary (a tuple of names, code ``i``
meaning ``names[i]``). The vocabularies live here too, so that the pipeline, the generators
and the logs agree on them:

====================  =========================================================
vocabulary            names
====================  =========================================================
``role``              :data:`ROLES` (the DUIS user roles, plus MDR)
``response_code``     :data:`RESPONSE_CODES` (DUIS response codes dccsim answers)
``outcome``           :data:`OUTCOMES` (what became of a request)
``request_class``     :data:`REQUEST_CLASSES` (the capacity model's classes)
``invalid``           :data:`INVALID_KINDS` (the generator's invalid-traffic labels)
``action``            :data:`ALERT_ACTIONS` (Alert Storm Protection's actions)
``srv``               the SRV catalogue's SRVs, :func:`vocabulary` reads them
====================  =========================================================

Rows hold NumPy values (times as int64 ns since the epoch, EUI-64s as uint64, alert codes as
uint16), which is what the pipeline computes with; a column's ``kind`` (:data:`KINDS`) says
what the log makes of them for its readers: timestamps, durations, EUI-64 text, hex alert
codes.

Importing this module reads no file and compiles nothing: the SRV vocabulary is read from the
catalogue, and :data:`ALERT_ACTIONS` from :mod:`dccsim.throttle` (which loads Numba), on first
use. The message modules import this one, so ``dccsim --help`` stays light.

>>> import numpy as np
>>> rows = AlertRows(
...     t_ns=np.array([5], np.int64), device=np.array([1], np.uint64),
...     alert_code=np.array([0x8F0F], np.uint16), action=np.array([0], np.uint8),
...     throttled_count=np.zeros(1, np.uint32), sequence_id=np.zeros(1, np.uint32),
...     storm=np.zeros(1, bool))
>>> len(rows), [c.name for c in ALERT_COLUMNS][:3]
(1, ['t_ns', 'device', 'alert_code'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALERT_ACTIONS",
    "ALERT_COLUMNS",
    "AUDIT_COLUMNS",
    "FUTURE_DATED_CODES",
    "INVALID_KINDS",
    "KINDS",
    "LogSink",
    "OUTCOMES",
    "REQUEST_CLASSES",
    "REQUEST_COLUMNS",
    "RESPONSE_CODES",
    "ROLES",
    "ROLE_UNKNOWN",
    "AlertRows",
    "AuditRows",
    "Column",
    "RequestRows",
    "vocabulary",
]

# ---------------------------------------------------------------------------- vocabularies

#: User roles: the DUIS roles plus MDR, the MHHS meter data retriever, and LC, the Load
#: Controller of DUIS 5.4 (its ``RemotePartyRole`` ``LoadController``; it sends 7.16 Limit APC
#: Level). New roles go at the end: a code, once in a log, keeps its meaning.
ROLES: tuple[str, ...] = ("IS", "ES", "GS", "ED", "GT", "OU", "RSA", "MDR", "LC")
#: The role code of a request whose role is not known (null in the request log).
ROLE_UNKNOWN = 255

#: DUIS response codes dccsim answers with, by code (I99: acknowledged, final answer later).
RESPONSE_CODES: tuple[str, ...] = (
    "I0",
    "I99",
    "E1",
    "E2",
    "E3",
    "E4",
    "E5",
    "E11",
    "E12",
    "E13",
    "E17",
    "E19",
    "E20",
    "E21",
    "E30",
)

#: What became of a request: answered by the device, from the readings cache, rejected by
#: validation, failed at the device, answered by the DCC itself (non-device SRVs), refused by
#: the DSP's admission control (overload), or shed from the DSP queue because its caller had
#: timed out (answered with the time-out code at its deadline).
OUTCOMES: tuple[str, ...] = ("device", "cache", "rejected", "failed", "dcc", "refused", "shed")

#: Request classes of the capacity model (each has its service time, time-out and target).
REQUEST_CLASSES: tuple[str, ...] = ("on_demand", "mhhs_read", "future_dated", "non_device")

#: The workload generator's labels for invalid traffic it injects (``none``: a valid request).
INVALID_KINDS: tuple[str, ...] = ("none", "wrong_role", "replay", "unknown_device", "bad_period")

#: The FutureDatedAlertCodes of DUIS 5.4: an instruction of a future-dated command done, not done.
FUTURE_DATED_CODES: tuple[int, ...] = (0x8F66, 0x8F67)

if TYPE_CHECKING:
    #: Alert Storm Protection's actions on a device alert: the throttle's own codes,
    #: :data:`dccsim.throttle.ACTIONS` (read on first use, see :func:`__getattr__`).
    ALERT_ACTIONS: tuple[str, ...]

_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "role": ROLES,
    "response_code": RESPONSE_CODES,
    "outcome": OUTCOMES,
    "request_class": REQUEST_CLASSES,
    "invalid": INVALID_KINDS,
}


def vocabulary(name: str) -> tuple[str, ...]:
    """The names of code vocabulary ``name`` (a categorical column's ``vocabulary``)."""
    if name == "srv":
        from .catalogue import catalogue  # reads the catalogue file: on first use, not at import

        return catalogue().srvs
    if name == "action":
        from dccsim.throttle import ACTIONS  # loads Numba: on first use, not at import

        return ACTIONS
    try:
        return _VOCABULARIES[name]
    except KeyError:
        known = ", ".join(sorted([*_VOCABULARIES, "action", "srv"]))
        raise KeyError(f"vocabulary: got {name!r}, expected one of {known}") from None


def __getattr__(name: str) -> Any:
    """:data:`ALERT_ACTIONS`, read from the throttle on first use (PEP 562)."""
    if name == "ALERT_ACTIONS":
        return vocabulary("action")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- columns


#: How a column's NumPy values read in the log (the Arrow type the log gives them), besides
#: plain numbers and categorical codes: producers always hand the NumPy values, the log writer
#: turns them into these types, and ``dccsim.bench.results.logs.raw_columns`` turns them back.
KINDS: dict[str, str] = {
    "time": "int64 ns since the epoch -> timestamp[ns, tz=UTC]",
    "time_or_none": "int64 ns since the epoch, 0 for none -> timestamp[ns, tz=UTC], null for none",
    "duration": "int64 ns -> duration[ns]",
    "eui": "uint64 EUI-64 -> text as DUIS writes it, 00-1A-2B-3C-4D-5E-6F-70",
    "alert_code": "uint16 alert code -> dictionary<uint16, string> of 4 hex digits, 8F84",
}


@dataclass(frozen=True, slots=True)
class Column:
    """One log column: its name, NumPy dtype (uint8 codes for a categorical one), meaning,
    for a categorical column the name of its code vocabulary (see :func:`vocabulary`), and
    the ``kind`` of value it holds when the log shows it as more than a number (:data:`KINDS`)."""

    name: str
    dtype: np.dtype[Any]
    meaning: str
    vocabulary: str | None = None
    kind: str | None = None

    @property
    def categorical(self) -> bool:
        return self.vocabulary is not None


def _col(dtype: Any, meaning: str, vocabulary: str | None = None, kind: str | None = None) -> Any:
    assert kind is None or kind in KINDS, kind
    return dataclasses.field(
        metadata={"dtype": np.dtype(dtype), "meaning": meaning, "vocabulary": vocabulary, "kind": kind}
    )


Array = npt.NDArray[Any]


class _Rows:
    """Shared behaviour of the row classes: length, columns by name, concatenation."""

    COLUMNS: ClassVar[tuple[Column, ...]]

    def __len__(self) -> int:
        return len(getattr(self, self.COLUMNS[0].name))

    def columns(self) -> dict[str, Array]:
        """The rows as ``{column name: array}``, in the log's column order."""
        return {c.name: getattr(self, c.name) for c in self.COLUMNS}

    def __iter__(self) -> Iterator[tuple[str, Array]]:
        return iter(self.columns().items())

    @classmethod
    def concat(cls, parts: Sequence[Self]) -> Self:
        """One set of rows from several, in order."""
        return cls(**{c.name: np.concatenate([getattr(p, c.name) for p in parts]) for c in cls.COLUMNS})


def _columns_of(cls: type) -> tuple[Column, ...]:
    return tuple(
        Column(f.name, f.metadata["dtype"], f.metadata["meaning"], f.metadata["vocabulary"], f.metadata["kind"])
        for f in dataclasses.fields(cls)
    )


@dataclass(slots=True, kw_only=True)
class RequestRows(_Rows):
    """Rows of ``requests.arrow``: one per Service Request, one NumPy array per column."""

    seq: Array = _col(np.uint64, "row number of the request in the run, from 0")
    t_scheduled_ns: Array = _col(np.int64, "when the request was meant to be sent", kind="time")
    t_done_ns: Array = _col(np.int64, "when its final response was sent", kind="time")
    device: Array = _col(np.uint64, "the target device's EUI-64", kind="eui")
    srv: Array = _col(np.uint8, "Service Reference Variant", "srv")
    role: Array = _col(np.uint8, "the sender's user role", "role")
    command_variant: Array = _col(np.uint8, "DUIS Command Variant")
    outcome: Array = _col(np.uint8, "what became of the request", "outcome")
    response_code: Array = _col(np.uint8, "the final DUIS response code", "response_code")
    latency_ns: Array = _col(
        np.int64, "t_done_ns - t_scheduled_ns (so coordinated omission cannot hide a stall)", kind="duration"
    )
    within_target: Array = _col(np.bool_, "latency within its class's target response time")
    period_start_ns: Array = _col(np.int64, "start of the data period asked for (none: null)", kind="time_or_none")
    period_end_ns: Array = _col(np.int64, "end of the data period asked for (none: null)", kind="time_or_none")
    # beyond DESIGN's minimum: who sent it, the DSP's view, and the generator's labels
    originator: Array = _col(np.uint64, "the sender's EUI-64 (the RequestID's originator)", kind="eui")
    counter: Array = _col(np.uint64, "the RequestID's counter")
    request_class: Array = _col(np.uint8, "the capacity model's request class", "request_class")
    attempt: Array = _col(np.uint8, "0 for a first send, k for the k-th retry of a failed MHHS read")
    invalid: Array = _col(np.uint8, "the generator's label for injected invalid traffic", "invalid")
    wait_ns: Array = _col(np.int64, "time queued at the DSP before service", kind="duration")
    backlog: Array = _col(np.int64, "DSP backlog (requests queued) when the request arrived")


@dataclass(slots=True, kw_only=True)
class AlertRows(_Rows):
    """Rows of ``alerts.arrow``: one per device alert, one NumPy array per column."""

    t_ns: Array = _col(np.int64, "when the device raised the alert", kind="time")
    device: Array = _col(np.uint64, "the device's EUI-64", kind="eui")
    alert_code: Array = _col(np.uint16, "the device alert code (8F84 in the log)", kind="alert_code")
    action: Array = _col(np.uint8, "Alert Storm Protection's action", "action")
    throttled_count: Array = _col(np.uint32, "alerts of this device and code throttled since the last forwarded one")
    sequence_id: Array = _col(np.uint32, "the throttle's sequence number of this device and code")
    storm: Array = _col(np.bool_, "ground truth: the generator raised it as part of a storm")


@dataclass(slots=True, kw_only=True)
class AuditRows(_Rows):
    """Rows of ``audit.arrow``, the service audit trail of future-dated responses (CR1233).

    One row per Response a device sent for a future-dated command it held (a DUIS
    ``ResponseMessage`` with the command's SRV carrying a ``FutureDatedDeviceAlertMessage``),
    in the order they reached the DCC; ``seq`` ties it to the command's row in
    ``requests.arrow`` (its RequestID is ``originator:device:counter``).
    """

    seq: Array = _col(np.uint64, "the future-dated command's row in requests.arrow (its seq)")
    t_ns: Array = _col(np.int64, "when the response reached the DCC (its ResponseDateTime)", kind="time")
    device: Array = _col(np.uint64, "the device that held the command (the RequestID's target)", kind="eui")
    originator: Array = _col(np.uint64, "the command's sender (the RequestID's originator)", kind="eui")
    counter: Array = _col(np.uint64, "the command's RequestID counter")
    srv: Array = _col(np.uint8, "the command's Service Reference Variant", "srv")
    execution_ns: Array = _col(np.int64, "the command's ExecutionDateTime", kind="time")
    response_code: Array = _col(np.uint8, "the response's DUIS response code", "response_code")
    alert_code: Array = _col(
        np.uint16, "FutureDatedAlertCode: 8F66 instruction done, 8F67 not done", kind="alert_code"
    )
    instruction: Array = _col(np.uint16, "InstructionNumber: the instruction this response reports, from 1")
    total_instructions: Array = _col(np.uint16, "TotalCommandInstructions of the command")
    received: Array = _col(np.uint16, "responses of this command received so far, this one included")
    out_of_sequence: Array = _col(np.bool_, "it arrived before a lower-numbered instruction of the same command")


RequestRows.COLUMNS = _columns_of(RequestRows)
AlertRows.COLUMNS = _columns_of(AlertRows)
AuditRows.COLUMNS = _columns_of(AuditRows)

#: the columns of ``requests.arrow``, in order
REQUEST_COLUMNS: tuple[Column, ...] = RequestRows.COLUMNS
#: the columns of ``alerts.arrow``, in order
ALERT_COLUMNS: tuple[Column, ...] = AlertRows.COLUMNS
#: the columns of ``audit.arrow``, in order
AUDIT_COLUMNS: tuple[Column, ...] = AuditRows.COLUMNS


# ---------------------------------------------------------------------------- the sink


class LogSink(Protocol):
    """Where producers hand their rows: the one sink contract of dccsim.

    Producers are given a sink, so ``core`` and ``loadgen`` never import ``bench``. The
    virtual-time driver calls all four methods (``requests`` and ``alerts`` possibly from
    worker threads, one call in flight each, in order; ``audit``, the future-dated responses
    of CR1233, from the thread that calls ``requests``); the wall-clock server calls
    ``requests``, ``alerts`` and ``audit`` (the future-dated responses that came due), the
    network load client ``requests`` only: neither calls ``progress``. The run folder's sink
    (:class:`dccsim.bench.results.runlog.RunSink`) implements all four.
    """

    def requests(self, rows: RequestRows) -> None:
        """Take rows of ``requests.arrow``."""
        ...

    def alerts(self, rows: AlertRows) -> None:
        """Take rows of ``alerts.arrow``."""
        ...

    def progress(self, done_ns: int, end_ns: int) -> None:
        """Simulated time done so far out of ``end_ns`` (virtual time, ns since the epoch)."""
        ...

    def audit(self, rows: AuditRows) -> None:
        """Take rows of ``audit.arrow`` (in time order, from the thread that calls ``requests``)."""
        ...
