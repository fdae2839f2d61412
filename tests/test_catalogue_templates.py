"""The SRV catalogue against the industry's reference request templates and its own rules."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from dccsim.core.catalogue import DEVICE_KINDS, catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.duisxml import decode_request_xml
from dccsim.core.records import RESPONSE_CODES
from dccsim.core.validation import DeviceRegistry, ReplayState, UserRegistry, validate_batch

_CV = re.compile(rb"<sr:CommandVariant>(\d+)</sr:CommandVariant>")
_SRV = re.compile(rb"<sr:ServiceReferenceVariant>([^<]+)</sr:ServiceReferenceVariant>")


def _kind_for(srv: str, role: str) -> str:
    """A device kind the SRV may address and the role may send to."""
    kinds = catalogue()[srv].device_kinds
    if not kinds:  # a non-device SRV: the DCC answers, the kind is never checked
        return "ESME"
    if kinds == {"CHF"}:
        return "CHF"
    if role in ("GS", "GT") and "GSME" in kinds:
        return "GSME"
    return "ESME" if "ESME" in kinds else sorted(kinds)[0]


def test_every_success_template_validates_to_i0_with_its_srv_s_first_eligible_role(templates: list[Path]) -> None:
    cat = catalogue()
    results = {}
    for path in templates:
        if "SUCCESS" not in path.name:
            continue
        req = decode_request_xml(path.read_bytes())
        srv = str(req.srv)
        info = cat[srv]
        assert info.roles, f"{path.name}: SRV {srv} has no eligible role"
        role = info.roles[0]
        batch = RequestBatch.from_requests([req])
        users = UserRegistry.build({int(batch.originator[0]): role})
        kind = _kind_for(srv, role)
        devices = DeviceRegistry.build(batch.device[:1], np.array([DEVICE_KINDS.index(kind)], np.uint8))
        code = validate_batch(batch, devices, users, ReplayState(), cat)
        results[path.name] = RESPONSE_CODES[int(code[0])]
    assert len(results) >= 200
    assert {name: code for name, code in results.items() if code != "I0"} == {}


def test_every_template_s_command_variant_is_one_its_srv_allows(templates: list[Path]) -> None:
    cat = catalogue()
    wrong = {}
    for path in templates:
        data = path.read_bytes()
        cv, srv = int(_CV.search(data).group(1)), _SRV.search(data).group(1).decode()  # type: ignore[union-attr]
        if cv not in cat[srv].command_variants:
            wrong[path.name] = (srv, cv, cat[srv].command_variants)
    assert wrong == {}


def test_critical_srvs_take_command_variants_4_to_7_and_no_other_does() -> None:
    for info in catalogue():
        signed = {4, 5, 6, 7}
        allowed = set(info.command_variants)
        assert allowed, info.srv
        assert (allowed <= signed) if info.critical else not (allowed & signed), (info.srv, info.critical, allowed)


def test_every_srv_has_an_eligible_role() -> None:
    assert [i.srv for i in catalogue() if not i.roles] == []


def test_srvs_json_prints_the_catalogue_as_one_array(capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from cli_helper import cli

    code, out, _ = cli("srvs", "--json", capsys=capsys)
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(catalogue()) == 129
    by = {r["srv"]: r for r in rows}
    assert by["7.12"]["command_variants"] == [4, 5, 6, 7] and by["7.16"]["roles"] == ["LC"]
    assert {"srv", "name", "critical", "command_variants", "roles", "future_dated"} <= set(by["4.8.1"])
    code, out, _ = cli("srvs", "--json", "--cacheable", capsys=capsys)
    assert [r["srv"] for r in json.loads(out)] == ["4.6.1", "4.8.1", "4.8.3"]
