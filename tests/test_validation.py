"""Validation and access control: each check gives its DUIS code, scalar and columnar agree."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
from dccsim.core.catalogue import DEVICE_KINDS, catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.messages import (
    ReadActiveImportProfileData,
    ReadFirmwareVersion,
    ReadLogPeriod,
    RequestId,
    ServiceRequest,
    UpdateHANDeviceLog,
)
from dccsim.core.records import RESPONSE_CODES, ROLE_UNKNOWN, ROLES
from dccsim.core.validation import (
    DeviceRegistry,
    ReplayState,
    UserRegistry,
    Validator,
    validate_batch,
    validate_batch_reference,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SUPPLIER = "90-B3-D5-1F-30-01-00-00"
ESME = "00-DB-12-34-56-78-90-A0"
GSME = "00-DB-12-34-56-78-90-A1"
CHF = "00-DB-12-34-56-78-90-A2"
DAY = ReadLogPeriod(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2, tzinfo=UTC))


def _registry() -> DeviceRegistry:
    ids = [int(x.replace("-", ""), 16) for x in (ESME, GSME, CHF)]
    return DeviceRegistry.build(ids, [DEVICE_KINDS.index(k) for k in ("ESME", "GSME", "CHF")])


def _req(counter=1, srv="4.8.1", role="IS", cv=1, target=ESME, originator=SUPPLIER, body=None):
    ref = ".".join(srv.split(".")[:2])
    return ServiceRequest(
        request_id=RequestId(originator=originator, target=target, counter=counter),
        command_variant=cv,
        service_reference=ref,
        srv=srv,
        role=role,
        body=body if body is not None else ReadActiveImportProfileData(period=DAY),
    )


def _han(code: str | None, join: int | None) -> UpdateHANDeviceLog:
    return UpdateHANDeviceLog(device_id=ESME, request_type="Add", install_code=code, join_time_period=join)


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (_req(), "I0", ""),
        (_req(role="ES"), "E2", "role ES may not send SRV 4.8.1"),
        (_req(role="MDR"), "I0", ""),
        (_req(srv="11.2", role="MDR", body=ReadFirmwareVersion()), "E2", "MDR"),
        (_req(cv=4), "E12", "Command Variant 4"),
        (_req(target="00-DB-12-34-56-78-90-FF"), "E19", "not in the device registry"),
        (_req(target=CHF), "E11", "does not apply to a CHF"),
        (_req(role="GS", target=ESME), "E4", "role GS may not address the ESME"),
        (
            _req(body=ReadActiveImportProfileData(period=ReadLogPeriod(start=DAY.end, end=DAY.start))),
            "E13",
            "not before end",
        ),
        (_req(srv="8.11", target=CHF, body=_han("303132", 90)), "E13", "3 bytes"),
        (_req(srv="8.11", target=CHF, body=_han("30" * 17, 90)), "E13", "17 bytes"),
        (_req(srv="8.11", target=CHF, body=_han("30" * 6, 90)), "I0", ""),
        (_req(srv="8.11", target=CHF, body=_han("30" * 16, 3601)), "E13", "1 to 3600"),
        (_req(srv="8.11", target=CHF, body=_han("30" * 16, 0)), "E13", "1 to 3600"),
        (_req(originator="90-B3-D5-1F-30-01-00"), "E13", "EUI-64"),
    ],
)
def test_each_check_gives_its_code(request_, code, words) -> None:
    verdict = Validator(devices=_registry()).check(request_)
    assert verdict.code == code, verdict.reason
    assert words in verdict.reason


def test_replay_is_rejected_and_does_not_advance() -> None:
    v = Validator(devices=_registry())
    assert v.check(_req(counter=10)).code == "I0"
    r = v.check(_req(counter=10))
    assert r.code == "E17" and "replay" in r.reason
    assert v.check(_req(counter=9)).code == "E17"
    assert v.check(_req(counter=11, role="ES")).code == "E2"  # rejected: counter not taken
    assert v.check(_req(counter=11)).code == "I0"


def test_user_registry_codes() -> None:
    supplier = int(SUPPLIER.replace("-", ""), 16)
    other = supplier + 1
    users = UserRegistry.build({supplier: "IS", other: "ED"}, suspended={other})
    v = Validator(devices=_registry(), users=users)
    assert v.check(msgspec.structs.replace(_req(), role=None)).code == "I0"
    assert v.check(_req(counter=2, originator="90-B3-D5-1F-30-01-00-09")).code == "E1"
    assert v.check(_req(counter=3, originator="90-B3-D5-1F-30-01-00-01", role="ED")).code == "E3"
    assert v.check(_req(counter=4, role="ES")).code == "E2"


def _random_batch(rng: np.random.Generator, n: int) -> RequestBatch:
    cat = catalogue()
    devices = np.array([0x00DB1234567890A0, 0x00DB1234567890A1, 0x00DB1234567890A2, 0x00DB12345678FFFF], np.uint64)
    start = rng.integers(0, 10, n) * 86_400 * 10**9
    return RequestBatch.from_columns(
        device=devices[rng.integers(0, 4, n)],
        originator=np.uint64(0x90B3D51F30010000) + rng.integers(0, 4, n).astype(np.uint64),
        counter=rng.integers(0, 30, n).astype(np.uint64),
        srv=rng.choice([cat.code(s) for s in ("4.6.1", "4.8.1", "4.8.3", "11.2", "8.11", "8.2", "1.1.1")], n),
        # mostly valid codes, some outside the tables (a compact frame carries any uint8)
        role=rng.choice(np.r_[np.arange(len(ROLES)), ROLE_UNKNOWN, len(ROLES), 200], n),
        command_variant=np.where(rng.random(n) < 0.9, rng.integers(1, 9, n), rng.integers(0, 256, n)),
        period_start_ns=start,
        period_end_ns=start + rng.integers(-1, 2, n) * 86_400 * 10**9,
    )


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    split=st.integers(0, 300),
    users_kind=st.sampled_from(["some", "empty", "none"]),
    devices_kind=st.sampled_from(["some", "some", "empty", "none"]),
)
def test_columnar_validation_matches_reference(
    seed: int, n: int, split: int, users_kind: str, devices_kind: str
) -> None:
    rng = np.random.default_rng(seed)
    batch = _random_batch(rng, n)
    devices = {
        "some": DeviceRegistry.build(
            np.array([0x00DB1234567890A0, 0x00DB1234567890A1, 0x00DB1234567890A2], np.uint64),
            [0, 1, 2],
            [True, True, bool(seed % 2)],
        ),
        "empty": DeviceRegistry.build(np.zeros(0, np.uint64), np.zeros(0, np.uint8)),
        "none": None,
    }[devices_kind]
    users = {
        "some": UserRegistry.build(
            {0x90B3D51F30010000: "IS", 0x90B3D51F30010001: "MDR", 0x90B3D51F30010002: "GS"},
            suspended={0x90B3D51F30010002},
        ),
        "empty": UserRegistry.build({}),
        "none": None,
    }[users_kind]
    expected = validate_batch_reference(batch, devices, users, ReplayState())
    whole = validate_batch(batch, devices, users, ReplayState())
    np.testing.assert_array_equal(whole, expected)
    state = ReplayState()
    k = min(split, n)
    parts = np.concatenate(
        [
            validate_batch(batch.take(slice(0, k)), devices, users, state),
            validate_batch(batch.take(slice(k, n)), devices, users, state),
        ]
    )
    np.testing.assert_array_equal(parts, expected)


def test_columnar_codes_agree_with_scalar_validator() -> None:
    reqs = [
        _req(counter=1),
        _req(counter=1),
        _req(counter=2, role="ES"),
        _req(counter=3, target="00-DB-12-34-56-78-90-FF"),
        _req(counter=4, cv=8),
        _req(counter=5, role="GS"),
        _req(counter=6),
    ]
    v = Validator(devices=_registry())
    scalar = [v.check(r).code for r in reqs]
    cols = validate_batch(RequestBatch.from_requests(reqs), _registry())
    assert [RESPONSE_CODES[c] for c in cols] == scalar == ["I0", "E17", "E2", "E19", "E12", "E4", "I0"]


def _reference_counters(originator, replay, last):  # type: ignore[no-untyped-def]
    out, used = [], []
    for o, r in zip(originator.tolist(), replay.tolist(), strict=True):
        if r and last.get(o, 0) > 0:
            out.append(last[o])
            used.append(True)
        else:
            last[o] = last.get(o, 0) + 1
            out.append(last[o])
            used.append(False)
    return out, used


@settings(max_examples=100, deadline=None)
@given(
    orig=st.lists(st.integers(0, 3), max_size=60),
    rep=st.lists(st.booleans(), min_size=60, max_size=60),
    split=st.integers(0, 60),
)
def test_assign_counters_matches_reference(orig, rep, split) -> None:
    from dccsim.core.validation import assign_counters

    o = np.array(orig, np.uint64) + np.uint64(0x90B3D51F30010000)
    r = np.array(rep[: len(orig)], np.bool_)
    want, want_used = _reference_counters(o, r, {})
    last: dict[int, int] = {}
    k = min(split, len(orig))
    a, ua = assign_counters(o[:k], r[:k], last)
    b, ub = assign_counters(o[k:], r[k:], last)
    assert np.concatenate([a, b]).tolist() == want
    assert np.concatenate([ua, ub]).tolist() == want_used


_U64 = st.integers(0, 2**64 - 1)


@given(
    base=_U64,
    size=st.integers(0, 40),
    gaps=st.booleans(),
    probes=st.lists(_U64, max_size=30),
    near=st.lists(st.integers(-3, 43), max_size=30),
)
@settings(max_examples=300, deadline=None)
def test_registry_rows_match_a_dict(base: int, size: int, gaps: bool, probes: list[int], near: list[int]) -> None:
    """DeviceRegistry.index (one pass for consecutive ids, binary search otherwise) and
    UserRegistry.index against a dict: present ids give their sorted position, others -1,
    including values just outside a consecutive range and ones that wrap around 2**64."""
    ids = sorted({(base + k * (7 if gaps else 1)) % 2**64 for k in range(size)})
    values = probes + [(base + d) % 2**64 for d in near]
    arr = np.array(values, np.uint64)
    expected = [{v: i for i, v in enumerate(ids)}.get(v, -1) for v in values]
    devices = DeviceRegistry.build(np.array(ids, np.uint64), np.zeros(len(ids), np.uint8))
    assert devices.index(arr).tolist() == expected
    users = UserRegistry.build({v: "IS" for v in ids})
    assert users.index(arr).tolist() == expected
