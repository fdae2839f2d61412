"""Validation and access control: each rejected request gets a DUIS code and a reason.

dccsim's mapping of checks to DUIS response codes (the codes of ``DOMAIN``; where DUIS has no
public code for a check, dccsim uses a code from the schema's enumeration and says so):

==== ===================================================================================
code check (in this order; the first failure wins)
==== ===================================================================================
E13  malformed content: an EUI-64 that is not 8 hex octets, a read period whose start is not
     before its end, an 8.11 install code that is not hex of 6..16 bytes, a join time
     outside 1..3600 (schema-level facts; dccsim's choice of code)
E1   unknown user: the originator is not in the user registry (when one is given)
E3   user status: the user is suspended
E2   the user's role may not send this SRV (MDR may send 4.6.1, 4.8.1 and 4.8.3)
E12  the Command Variant is not valid for this SRV
E19  unknown device: the target is not in the device registry (device SRVs only)
E5   device status: the device is not in service
E11  the SRV does not apply to the device's kind (ESME, GSME, CHF)
E4   the role may not address this device: a gas-only role (GS, GT) at an electricity meter,
     or an electricity-only role (ES, ED, MDR) at a gas meter
E17  replay: the RequestID counter is not strictly greater than the originator's previous
     accepted counter (dccsim's choice of code)
==== ===================================================================================

Between E4 and E17, :meth:`Validator.check` applies CR1277 to an 8.11 Add: an install code whose
length the device's SMETS generation does not allow (:data:`INSTALL_CODE_LENGTHS`) is
``E081101`` (dccsim's choice among the schema's E081101-E081111, which it lists without
descriptions). The generation comes from the device registry's ``smets1`` column (the added
device's, else the target's), else :attr:`Validator.generation`; where none is known only the
schema's 6..16 bytes apply (decoding checks those). Columns carry no install codes, so
:func:`validate_batch` has no such check.

A request that passes every check is accepted (``I0``; the pipeline then decides I0 / I99 /
E20 / E21 / E30). The replay check keeps state per originator; only accepted requests advance
the counter, so a rejected request does not burn a counter. That state is per originator, not
per device, so in a sharded run the replay stage runs once over the merged, time-ordered
stream (it is a cheap O(n) pass).

Two entry points share the rules: :meth:`Validator.check` for one decoded
:class:`~dccsim.core.messages.ServiceRequest`, and :func:`validate_batch` for columns (a Numba
kernel with the plain-Python reference :func:`validate_batch_reference`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from . import _kernels as K
from .catalogue import DEVICE_KINDS, Catalogue, catalogue
from .columns import RequestBatch
from .errors import MessageError
from .eui import EUI_RE, eui_to_int, int_to_eui
from .messages import RequestRow, ServiceRequest, UpdateHANDeviceLog, to_ns
from .records import RESPONSE_CODES, ROLE_UNKNOWN, ROLES

__all__ = [
    "code_index",
    "Verdict",
    "DeviceRegistry",
    "UserRegistry",
    "Validator",
    "ReplayState",
    "validate_batch",
    "validate_batch_reference",
    "assign_counters",
    "INSTALL_CODE_LENGTHS",
    "CR1277_CODE",
]

_IDX = {c: i for i, c in enumerate(RESPONSE_CODES)}


def code_index(code: str) -> int:
    """The column index of a response code."""
    return _IDX[code]


_I0, _E1, _E2, _E3, _E4, _E5 = (_IDX[c] for c in ("I0", "E1", "E2", "E3", "E4", "E5"))
_E11, _E12, _E13, _E17, _E19 = (_IDX[c] for c in ("E11", "E12", "E13", "E17", "E19"))

#: CR1277: install code lengths (bytes) per SMETS generation of the device an 8.11 adds
#: (**assumed**, docs/model.md: SMETS2+ the 16-byte (128-bit) code the GBCS HAN uses; SMETS1 the
#: ZigBee install code sizes within the schema's 6..16)
INSTALL_CODE_LENGTHS: dict[str, tuple[int, ...]] = {"SMETS1": (6, 8, 12, 16), "SMETS2": (16,)}
#: the response code of a CR1277 install code length failure (**assumed**: the schema lists
#: E081101-E081111 for 8.11 without descriptions; dccsim uses the first)
CR1277_CODE = "E081101"

_GAS_ONLY_ROLES = np.array([r in ("GS", "GT") for r in ROLES], dtype=np.bool_)
_ELEC_ONLY_ROLES = np.array([r in ("ES", "ED", "MDR") for r in ROLES], dtype=np.bool_)
_HEX_RE = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of validation: a DUIS code and a human-readable reason."""

    code: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "I0"


def _sorted_index(ids: npt.NDArray[np.uint64], values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Position of each value in the sorted ``ids``, -1 where absent (binary search)."""
    out = np.empty(len(values), np.int64)
    K.binary_search(ids, np.ascontiguousarray(values, np.uint64), out)
    return out


@dataclass(frozen=True)
class DeviceRegistry:
    """Known devices: sorted ``uint64`` ids with their kind code and in-service flag."""

    ids: npt.NDArray[np.uint64]
    kind: npt.NDArray[np.uint8]
    in_service: npt.NDArray[np.bool_]
    #: SMETS1 (True) or SMETS2+ (False) per device; ``None``: the registry does not say
    smets1: npt.NDArray[np.bool_] | None = None

    @classmethod
    def build(
        cls,
        ids: npt.ArrayLike,
        kind: npt.ArrayLike,
        in_service: npt.ArrayLike | None = None,
        smets1: npt.ArrayLike | None = None,
    ) -> DeviceRegistry:
        ids = np.asarray(ids, dtype=np.uint64)
        kind = np.asarray(kind, dtype=np.uint8)
        order = np.argsort(ids, kind="stable")
        svc = np.ones(len(ids), np.bool_) if in_service is None else np.asarray(in_service, np.bool_)
        sorted_ids = ids[order]
        if len(sorted_ids) > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
            raise ValueError("DeviceRegistry.ids: duplicate device ids; expected each device once")
        gen = None if smets1 is None else np.asarray(smets1, np.bool_)[order]
        return cls(ids=sorted_ids, kind=kind[order], in_service=svc[order], smets1=gen)

    def generation(self, device: int) -> str | None:
        """``"SMETS1"`` or ``"SMETS2"`` (SMETS2+) for a registered device whose generation the
        registry knows, else ``None``."""
        if self.smets1 is None:
            return None
        row = int(self.index(np.array([device], np.uint64))[0])
        return None if row < 0 else "SMETS1" if self.smets1[row] else "SMETS2"

    def __post_init__(self) -> None:
        n = len(self.ids)
        # consecutive ids (what a generated population is): a row is a subtraction
        object.__setattr__(self, "_consecutive", bool(n and int(self.ids[-1]) - int(self.ids[0]) == n - 1))

    def index(self, devices: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """Registry row of each device, -1 where unknown.

        A registry of consecutive ids (what a generated population is) is a subtraction and a
        range check in one pass; any other registry is a binary search.
        """
        if self._consecutive:  # type: ignore[attr-defined]
            rows = np.empty(len(devices), np.int64)
            with np.errstate(over="ignore"):  # unsigned: below the range wraps (only plain-Python runs warn)
                K.consecutive_rows(np.ascontiguousarray(devices, np.uint64), self.ids[0], len(self.ids), rows)
            return rows
        return _sorted_index(self.ids, devices)


@dataclass(frozen=True)
class UserRegistry:
    """Known DCC Users: originator EUI-64 -> role code, and whether the user is active."""

    ids: npt.NDArray[np.uint64]
    role: npt.NDArray[np.uint8]
    active: npt.NDArray[np.bool_]

    @classmethod
    def build(cls, users: dict[int, str], suspended: set[int] | frozenset[int] = frozenset()) -> UserRegistry:
        items = sorted(users.items())
        bad = [r for _, r in items if r not in ROLES]
        if bad:
            raise ValueError(f"UserRegistry: role {bad[0]!r} is not one of {', '.join(ROLES)}")
        return cls(
            ids=np.array([k for k, _ in items], dtype=np.uint64),
            role=np.array([ROLES.index(r) for _, r in items], dtype=np.uint8),
            active=np.array([k not in suspended for k, _ in items], dtype=np.bool_),
        )

    def index(self, originators: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """Registry row of each originator, -1 where unknown."""
        return _sorted_index(self.ids, originators)


@dataclass
class Validator:
    """Validates decoded requests one at a time, keeping replay state per originator.

    ``generation`` (``"SMETS1"`` or ``"SMETS2"``, i.e. SMETS2+) is the SMETS generation
    assumed for the devices an 8.11 adds when the device registry does not say (CR1277's
    install code lengths, :data:`INSTALL_CODE_LENGTHS`); ``None``: only the schema's 6..16
    bytes apply then.
    """

    devices: DeviceRegistry | None = None
    users: UserRegistry | None = None
    cat: Catalogue = field(default_factory=catalogue)
    last_counter: dict[int, int] = field(default_factory=dict)
    generation: str | None = None

    def __post_init__(self) -> None:
        if self.generation is not None and self.generation not in INSTALL_CODE_LENGTHS:
            raise ValueError(f"Validator.generation: got {self.generation!r}, expected one of SMETS1, SMETS2 or None")

    def check(self, req: ServiceRequest) -> Verdict:
        """Validate ``req``; on acceptance its counter becomes the originator's last."""
        try:
            req.request_id.check()
        except MessageError as err:
            return Verdict("E13", str(err))
        content = _content_problem(req)
        if content:
            return Verdict("E13", content)
        rid = req.request_id
        return self._check(
            rid.originator_int, rid.originator, rid.target_int, rid.target, rid.counter,
            req.srv, req.role, req.command_variant, req.body,
        )  # fmt: skip

    def check_row(self, row: RequestRow) -> Verdict:
        """Validate a compact request row as :meth:`check` does a request (same rules, same
        replay state); its role ``""`` is none."""
        try:
            row.check()
        except MessageError as err:
            return Verdict("E13", str(err))
        if row.srv in self.cat and self.cat[row.srv].cacheable and row.period_start_ns >= row.period_end_ns:
            return Verdict(
                "E13", f"period: start {row.period_start_ns} ns is not before end {row.period_end_ns} ns"
            )
        if row.role and row.role not in ROLES:
            return Verdict("E13", f"role: got {row.role!r}, expected one of {', '.join(ROLES)}")
        return self._check(
            row.originator, int_to_eui(row.originator), row.target, int_to_eui(row.target), row.counter,
            row.srv, row.role or None, row.command_variant, None,
        )  # fmt: skip

    def _check(
        self,
        originator: int,
        originator_text: str,
        target: int,
        target_text: str,
        counter: int,
        srv: str,
        role: str | None,
        command_variant: int,
        body: object,
    ) -> Verdict:
        if self.users is not None:
            u = int(self.users.index(np.array([originator], np.uint64))[0])
            if u < 0:
                return Verdict("E1", f"originator {originator_text} is not a known DCC User")
            if not self.users.active[u]:
                return Verdict("E3", f"user {originator_text} is suspended")
            registered = ROLES[self.users.role[u]]
            if role is not None and role != registered:
                return Verdict("E2", f"role {role} is not the registered role {registered} of {originator_text}")
            role = registered
        if srv not in self.cat:
            return Verdict("E13", f"header.srv: got {srv!r}, expected a DUIS Service Reference Variant")
        info = self.cat[srv]
        if role is None:
            return Verdict("E1", "the request carries no user role and no user registry names one")
        if role not in info.roles:
            return Verdict("E2", f"role {role} may not send SRV {srv}; eligible: {', '.join(info.roles)}")
        if command_variant not in info.command_variants:
            allowed = ", ".join(map(str, info.command_variants))
            return Verdict(
                "E12", f"Command Variant {command_variant} is not valid for SRV {srv}; expected one of {allowed}"
            )
        if not info.non_device and self.devices is not None:
            d = int(self.devices.index(np.array([target], np.uint64))[0])
            if d < 0:
                return Verdict("E19", f"device {target_text} is not in the device registry")
            if not self.devices.in_service[d]:
                return Verdict("E5", f"device {target_text} is not in service")
            kind = DEVICE_KINDS[self.devices.kind[d]]
            if kind not in info.device_kinds:
                return Verdict(
                    "E11", f"SRV {srv} does not apply to a {kind}; it applies to {', '.join(sorted(info.device_kinds))}"
                )
            if (kind == "ESME" and role in ("GS", "GT")) or (kind == "GSME" and role in ("ES", "ED", "MDR")):
                return Verdict("E4", f"role {role} may not address the {kind} {target_text}")
        if isinstance(body, UpdateHANDeviceLog):
            problem = self._install_code_problem(body, target)
            if problem:
                return Verdict(CR1277_CODE, problem)
        last = self.last_counter.get(originator)
        if last is not None and counter <= last:
            return Verdict(
                "E17", f"counter {counter} is not greater than {last}, the last from {originator_text} (replay)"
            )
        self.last_counter[originator] = counter
        return Verdict("I0")

    def _install_code_problem(self, body: UpdateHANDeviceLog, target: int) -> str:
        """CR1277: the install code of an 8.11 Add has a length its device's SMETS generation
        allows (the device's generation from the registry, else the target's, else
        :attr:`generation`); ``""`` when it does, or no generation is known."""
        if body.request_type != "Add" or body.install_code is None:
            return ""
        generation = None
        if self.devices is not None:
            if EUI_RE.match(body.device_id):
                generation = self.devices.generation(eui_to_int(body.device_id, "body.device_id"))
            generation = generation or self.devices.generation(target)
        generation = generation or self.generation
        if generation is None:
            return ""
        n = len(body.install_code) // 2
        allowed = INSTALL_CODE_LENGTHS[generation]
        if n in allowed:
            return ""
        lengths = " or ".join(map(str, allowed))
        name = "SMETS2+" if generation == "SMETS2" else generation
        return f"body.install_code: got {n} bytes, expected {lengths} bytes for a {name} device (CR1277)"


def _content_problem(req: ServiceRequest) -> str:
    period = req.period
    if period is not None and to_ns(period.start) >= to_ns(period.end):
        return f"body.period: start {period.start.isoformat()} is not before end {period.end.isoformat()}"
    body = req.body
    if isinstance(body, UpdateHANDeviceLog):
        if not EUI_RE.match(body.device_id):
            return f"body.device_id: got {body.device_id!r}, expected an EUI-64 like 00-DB-12-34-56-78-90-A0"
        if body.request_type == "Add":
            code = body.install_code
            if code is None or not _HEX_RE.match(code) or not 6 <= len(code) // 2 <= 16:
                n = "missing" if code is None else f"{len(code) / 2:g} bytes"
                return f"body.install_code: got {code!r} ({n}), expected hex of 6 to 16 bytes"
            jt = body.join_time_period
            if jt is None or not 1 <= jt <= 3600:
                return f"body.join_time_period: got {jt!r}, expected an integer from 1 to 3600 seconds"
    return ""


# ------------------------------------------------------------------ columns (vectorised)


def dense_originators(originator: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Distinct originators (first-seen order) and each row's index among them."""
    table = np.zeros(64, np.uint64)
    idx = np.empty(len(originator), np.int64)
    m = K.dense_ids(originator, table, idx)
    if m < 0:  # many originators: fall back to sorting
        uniq, inv = np.unique(originator, return_inverse=True)
        return uniq, inv.astype(np.int64)
    return table[:m].copy(), idx


def assign_counters(
    originator: npt.NDArray[np.uint64],
    replay: npt.NDArray[np.bool_],
    last: dict[int, int],
    originators: tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]] | None = None,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """RequestID counters for a time-ordered batch, continuing each originator's ``last``.

    A fresh request takes its originator's next counter; a replay (``replay`` true) repeats
    the counter of the request before it, so validation rejects it (E17). A replay with no
    earlier request of its originator is made fresh. Returns the counters and the replay
    mask actually used; ``last`` is updated in place. ``originators``, if given, must be
    ``dense_originators(originator)`` (a caller that validates the batch too finds them once).
    """
    uniq, idx = originators if originators is not None else dense_originators(originator)
    counters = np.array([last.get(int(o), 0) for o in uniq.tolist()], np.uint64)
    out = np.empty(len(idx), np.uint64)
    used = np.empty(len(idx), np.bool_)
    K.assign_counters(idx, replay, counters, out, used)
    for o, c in zip(uniq.tolist(), counters.tolist(), strict=True):
        last[int(o)] = int(c)
    return out, used


_STATIC_CODES = np.array([_E13, _E1, _E3, _E2, _E12, _E19, _E5, _E11, _E4], np.uint8)
_NONE_U8 = np.zeros(1, np.uint8)
_NONE_B = np.zeros(1, np.bool_)


def _static_codes(
    batch: RequestBatch,
    cat: Catalogue,
    devices: DeviceRegistry | None,
    users: UserRegistry | None,
    originators: tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]] | None = None,
    device_rows: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.uint8]:
    """Every check except replay (a Numba kernel; :func:`validate_batch_reference` is the reference).

    ``originators`` is the batch's distinct originators and each row's index among them
    (:func:`dense_originators`), and ``device_rows`` is ``devices.index(batch.device)``, when
    the caller has them already.
    """
    n = len(batch)
    code = np.zeros(n, np.uint8)
    # a registry, even an empty one, is consulted (an empty one finds nobody: row -1)
    has_users = users is not None
    has_devices = devices is not None
    if users is None:
        user_row = np.zeros(n, np.int64)
    else:  # look the few distinct originators up, then spread to the rows
        uniq, row_of = originators if originators is not None else dense_originators(batch.originator)
        user_row = users.index(uniq)[row_of]
    if devices is None:
        dev_row = np.zeros(n, np.int64)
    else:
        dev_row = devices.index(batch.device) if device_rows is None else device_rows
    dev_in_service = devices.in_service if devices is not None else _NONE_B
    dev_kind = devices.kind if devices is not None else _NONE_U8
    K.static_checks(
        batch.srv,
        batch.role,
        batch.command_variant,
        batch.period_start_ns,
        batch.period_end_ns,
        user_row,
        dev_row,
        cat.cacheable,
        cat.eligible,
        cat.cv_valid,
        cat.non_device,
        cat.kind_valid,
        users.active if users is not None else _NONE_B,
        users.role if users is not None else _NONE_U8,
        dev_in_service,
        dev_kind,
        _GAS_ONLY_ROLES,
        _ELEC_ONLY_ROLES,
        has_users,
        has_devices,
        _STATIC_CODES,
        code,
    )
    return code


@dataclass
class ReplayState:
    """Last accepted counter per originator (by EUI-64), persisted across batches."""

    last: dict[int, int] = field(default_factory=dict)


def validate_batch(
    batch: RequestBatch,
    devices: DeviceRegistry | None = None,
    users: UserRegistry | None = None,
    replay: ReplayState | None = None,
    cat: Catalogue | None = None,
    *,
    device_rows: npt.NDArray[np.int64] | None = None,
    originators: tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]] | None = None,
) -> npt.NDArray[np.uint8]:
    """Response-code indices (into :data:`~dccsim.core.records.RESPONSE_CODES`) for every row; 0 = accepted.

    Rows are checked in order; ``replay`` carries the per-originator counters across calls.
    ``device_rows``, if given, must be ``devices.index(batch.device)``, and ``originators``
    ``dense_originators(batch.originator)`` (a caller that needs them too finds them once).
    """
    cat = cat or catalogue()
    uniq, user_idx = originators if originators is not None else dense_originators(batch.originator)
    code = _static_codes(batch, cat, devices, users, (uniq, user_idx), device_rows)
    replay = replay if replay is not None else ReplayState()
    last = np.zeros(len(uniq), np.uint64)
    seen = np.zeros(len(uniq), np.bool_)
    for j, o in enumerate(uniq.tolist()):
        if o in replay.last:
            last[j] = replay.last[o]
            seen[j] = True
    K.replay_check(user_idx, batch.counter, code == _I0, last, seen, code, np.uint8(_E17))
    for j, o in enumerate(uniq.tolist()):
        if seen[j]:
            replay.last[o] = int(last[j])
    return code


def validate_batch_reference(
    batch: RequestBatch,
    devices: DeviceRegistry | None = None,
    users: UserRegistry | None = None,
    replay: ReplayState | None = None,
    cat: Catalogue | None = None,
) -> npt.NDArray[np.uint8]:
    """Plain-Python reference of :func:`validate_batch`: one row at a time, obviously."""
    cat = cat or catalogue()
    replay = replay if replay is not None else ReplayState()
    out = np.zeros(len(batch), np.uint8)
    user_of = {} if users is None else {int(k): i for i, k in enumerate(users.ids)}
    dev_of = {} if devices is None else {int(k): i for i, k in enumerate(devices.ids)}
    for i in range(len(batch)):
        srv = int(batch.srv[i])
        info = cat[srv]
        role = int(batch.role[i])
        c = "I0"
        if info.cacheable and batch.period_start_ns[i] >= batch.period_end_ns[i]:
            c = "E13"
        elif users is not None and int(batch.originator[i]) not in user_of:
            c = "E1"
        elif users is not None and not users.active[user_of[int(batch.originator[i])]]:
            c = "E3"
        elif users is not None and role != ROLE_UNKNOWN and role != users.role[user_of[int(batch.originator[i])]]:
            c = "E2"
        else:
            if users is not None and role == ROLE_UNKNOWN:
                role = int(users.role[user_of[int(batch.originator[i])]])
            if role == ROLE_UNKNOWN:
                c = "E1"
            elif role >= len(ROLES) or ROLES[role] not in info.roles:
                c = "E2"
            elif int(batch.command_variant[i]) not in info.command_variants:
                c = "E12"
            elif devices is not None and not info.non_device:
                d = dev_of.get(int(batch.device[i]))
                if d is None:
                    c = "E19"
                elif not devices.in_service[d]:
                    c = "E5"
                else:
                    kind = DEVICE_KINDS[devices.kind[d]]
                    if kind not in info.device_kinds:
                        c = "E11"
                    elif (kind == "ESME" and ROLES[role] in ("GS", "GT")) or (
                        kind == "GSME" and ROLES[role] in ("ES", "ED", "MDR")
                    ):
                        c = "E4"
        if c == "I0":
            o = int(batch.originator[i])
            if o in replay.last and int(batch.counter[i]) <= replay.last[o]:
                c = "E17"
            else:
                replay.last[o] = int(batch.counter[i])
        out[i] = _IDX[c]
    return out
