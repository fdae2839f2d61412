"""CR1277: an 8.11 install code length per SMETS generation (E081101), after the schema's 6..16 bytes."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from cli_helper import cli
from dccsim.core import wire
from dccsim.core.catalogue import DEVICE_KINDS
from dccsim.core.eui import eui_to_int
from dccsim.core.messages import ServiceRequest
from dccsim.core.validation import CR1277_CODE, INSTALL_CODE_LENGTHS, DeviceRegistry, Validator

HAN_XML = (Path(__file__).resolve().parents[1] / "examples" / "requests" / "02_han_8.11_add.xml").read_bytes()
CHF = "00-DB-12-34-56-78-90-A2"  # the 8.11's target
ADDED = "00-DB-12-34-56-78-90-A0"  # the device it adds


def _han(code_bytes: int, counter: int = 1) -> ServiceRequest:
    [req] = wire.decode_file(HAN_XML)
    assert isinstance(req, ServiceRequest) and req.request_id.target == CHF
    body = msgspec.structs.replace(req.body, install_code="AB" * code_bytes)
    rid = msgspec.structs.replace(req.request_id, counter=counter)
    return msgspec.structs.replace(req, body=body, request_id=rid, role="IS")


def _registry(smets1_chf: bool, added: bool | None = None) -> DeviceRegistry:
    ids, kinds, s1 = [eui_to_int(CHF)], [DEVICE_KINDS.index("CHF")], [smets1_chf]
    if added is not None:
        ids.append(eui_to_int(ADDED))
        kinds.append(DEVICE_KINDS.index("ESME"))
        s1.append(added)
    return DeviceRegistry.build(ids, kinds, smets1=s1)


@pytest.mark.parametrize("n", range(6, 17))
@pytest.mark.parametrize("generation", ["SMETS1", "SMETS2"])
def test_each_length_the_schema_allows_is_judged_by_the_generation(n: int, generation: str) -> None:
    verdict = Validator(devices=_registry(smets1_chf=generation == "SMETS1")).check(_han(n))
    if n in INSTALL_CODE_LENGTHS[generation]:
        assert verdict.code == "I0", verdict
    else:
        assert verdict.code == CR1277_CODE == "E081101"
        name = "SMETS2+" if generation == "SMETS2" else "SMETS1"
        assert f"got {n} bytes" in verdict.reason and f"for a {name} device (CR1277)" in verdict.reason


def test_the_lengths_are_the_documented_ones() -> None:
    assert INSTALL_CODE_LENGTHS == {"SMETS1": (6, 8, 12, 16), "SMETS2": (16,)}


def test_the_added_device_s_generation_wins_over_the_target_s() -> None:
    eight = _han(8)
    assert Validator(devices=_registry(smets1_chf=False, added=True)).check(eight).ok
    assert Validator(devices=_registry(smets1_chf=True, added=False)).check(eight).code == "E081101"


def test_without_a_known_generation_only_the_schema_s_bounds_apply() -> None:
    assert Validator().check(_han(7)).ok
    assert DeviceRegistry.build([eui_to_int(CHF)], [DEVICE_KINDS.index("CHF")]).generation(eui_to_int(CHF)) is None
    assert Validator(devices=DeviceRegistry.build([eui_to_int(CHF)], [DEVICE_KINDS.index("CHF")])).check(_han(7)).ok
    assert Validator(generation="SMETS2").check(_han(7)).code == "E081101"
    assert Validator(generation="SMETS1").check(_han(8)).ok
    with pytest.raises(ValueError, match="SMETS1, SMETS2"):
        Validator(generation="SMETS3")


def test_a_refused_install_code_does_not_burn_the_counter() -> None:
    v = Validator(generation="SMETS2")
    assert v.check(_han(8, counter=5)).code == "E081101"
    assert v.check(_han(16, counter=5)).ok  # the same counter, now accepted: no replay


def test_remove_carries_no_install_code_rule() -> None:
    [req] = wire.decode_file(HAN_XML)
    body = msgspec.structs.replace(req.body, request_type="Remove", join_time_period=None, install_code=None)  # type: ignore[arg-type]
    remove = msgspec.structs.replace(req, body=body, role="IS")  # type: ignore[arg-type]
    assert Validator(generation="SMETS2").check(remove).ok


def test_decode_generation_flag(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "han.xml"
    f.write_bytes(HAN_XML.replace(b"30313233343536373839414243444546", b"3031323334353637"))  # 8 bytes
    assert cli("decode", "--validate", "--role", "IS", str(f), capsys=capsys)[0] == 0
    assert cli("decode", "--validate", "--role", "IS", "--generation", "SMETS1", str(f), capsys=capsys)[0] == 0
    code, out, err = cli("decode", "--validate", "--role", "IS", "--generation", "SMETS2", str(f), capsys=capsys)
    assert code == 2 and out == ""
    assert err.splitlines()[0] == (
        f"{f}: request 90-B3-D5-1F-30-01-00-00:{CHF}:1002: E081101: body.install_code: got 8 bytes, "
        "expected 16 bytes for a SMETS2+ device (CR1277)"
    )
    code, _, err = cli("decode", "--generation", "SMETS2", str(f), capsys=capsys)
    assert code == 2 and "--generation SMETS2: given without --validate" in err
