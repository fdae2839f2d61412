"""CR1233: future-dated commands held on devices, their Responses and the service audit trail.

A future-dated command (an SRV whose future-dated pattern is "Device") that the device
acknowledged (I99) answers, when it runs, with one Response per instruction carrying a
``FutureDatedDeviceAlertMessage`` tied to the request; ``audit.arrow`` keeps every one with
an out-of-sequence flag, and the summary counts them. None goes through Alert Storm
Protection.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dccsim.bench import simulate
from dccsim.bench.results.logs import read_log, read_status
from dccsim.bench.testing import LazyPool, drive, scenario
from dccsim.core.catalogue import catalogue
from dccsim.core.duisxml import encode_xml, future_dated_response
from dccsim.core.errors import MessageError
from dccsim.core.eui import int_to_eui
from dccsim.core.messages import RequestId
from dccsim.core.pipeline import Pipeline
from dccsim.loadgen.workload import FD_SRV, future_dated_responses
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

XSD = Path(__file__).resolve().parents[1] / ".." / "shared" / "duis" / "DUIS-Schema-V5.4.xsd"
NS = 10**9


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cr1233") / "smoke"
    simulate("smoke", out=out)
    return out


def _log(run: Path, name: str) -> dict[str, list[Any]]:
    table = read_log(run / name, strict=True, raw=True)
    assert read_status(table) == "complete"
    return table.to_pydict()


# ---------------------------------------------------------------------------- the generator


def _reference(t: list[int], command: list[int], instruction: list[int]) -> tuple[list[int], list[bool]]:
    """Plain Python: each response's arrival rank in its command (+1) and whether a
    lower-numbered instruction of its command had not arrived before it."""
    by_cmd: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(command):
        by_cmd[c].append(i)
    received, out = [0] * len(t), [False] * len(t)
    for rows in by_cmd.values():
        seen: set[int] = set()
        for rank, i in enumerate(sorted(rows, key=lambda i: t[i])):
            received[i] = rank + 1
            out[i] = any(k not in seen for k in range(1, instruction[i]))
            seen.add(instruction[i])
    return received, out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 30),
    lo=st.integers(1, 16),
    span=st.integers(0, 15),
    share=st.floats(0, 1),
    not_done=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_responses_match_a_plain_python_reference(
    n: int, lo: int, span: int, share: float, not_done: float, seed: int
) -> None:
    hi = min(16, lo + span)
    rng = np.random.default_rng(seed)
    execution = rng.integers(0, 10**6, n) * NS
    ready = execution + rng.integers(-5, 5, n) * NS
    r = future_dated_responses(np.random.default_rng(seed), execution, ready, (lo, hi), share, not_done)
    assert len(r) == len(r.command) == len(r.instruction)
    received, out = _reference(r.t_ns.tolist(), r.command.tolist(), r.instruction.astype(int).tolist())
    assert r.received.tolist() == received
    assert r.out_of_sequence.tolist() == out
    for j in range(n):
        mine = r.command == j
        m = int(mine.sum())
        assert lo <= m <= hi
        # every instruction 1..m once, each reporting after the command could run
        assert sorted(r.instruction[mine].tolist()) == list(range(1, m + 1))
        assert (r.total_instructions[mine] == m).all()
        assert (r.t_ns[mine] > max(execution[j], ready[j])).all()
        assert len(set(r.t_ns[mine].tolist())) == m
    assert set(r.alert_code.tolist()) <= {0x8F66, 0x8F67}


def test_in_order_and_reversed_commands() -> None:
    """With no reversal every response is in sequence; reversed, all but instruction 1 are out."""
    execution = np.array([100, 200], np.int64) * NS
    straight = future_dated_responses(np.random.default_rng(1), execution, execution, (5, 5), 0.0, 0.0)
    assert not straight.out_of_sequence.any()
    assert (np.diff(straight.t_ns.reshape(2, 5), axis=1) > 0).all()
    reverse = future_dated_responses(np.random.default_rng(1), execution, execution, (5, 5), 1.0, 0.0)
    assert reverse.out_of_sequence.tolist() == [False, True, True, True, True] * 2
    assert (np.diff(reverse.t_ns.reshape(2, 5), axis=1) < 0).all()
    assert (reverse.received.reshape(2, 5) == [5, 4, 3, 2, 1]).all()


# ---------------------------------------------------------------------------- a run


def test_future_dated_commands_are_device_pattern_srvs(run: Path) -> None:
    req = _log(run, "requests.arrow")
    cat = catalogue()
    fd = [i for i, c in enumerate(req["request_class"]) if c == "future_dated"]
    assert len(fd) > 50
    assert {req["srv"][i] for i in fd} == {FD_SRV}
    assert cat[FD_SRV].future_dated == "device"
    assert {req["command_variant"][i] for i in fd} <= set(cat[FD_SRV].command_variants)
    # none of them was turned away by validation for its Command Variant or SRV
    assert not {req["response_code"][i] for i in fd} & {"E11", "E12"}


def test_audit_trail_and_summary_agree_with_the_request_log(run: Path) -> None:
    """Every audit row answers a delivered future-dated command of requests.arrow (its seq,
    device, originator, counter, SRV); the summary's counts are recounted from the two logs."""
    req = _log(run, "requests.arrow")
    audit = _log(run, "audit.arrow")
    summary = json.loads((run / "summary.json").read_text())["future_dated"]
    delivered = {
        s for s, c, code in zip(req["seq"], req["request_class"], req["response_code"], strict=True)
        if c == "future_dated" and code == "I99"
    }  # fmt: skip
    failed = {
        s for s, c, code in zip(req["seq"], req["request_class"], req["response_code"], strict=True)
        if c == "future_dated" and code != "I99"
    }  # fmt: skip
    assert failed, "the scenario has future-dated commands that were not delivered"
    assert summary["commands"] == len(delivered) > 100
    n = len(audit["seq"])
    assert summary["responses"] == n > len(delivered)
    assert set(audit["seq"]) <= delivered and not set(audit["seq"]) & failed
    for i in range(n):
        s = audit["seq"][i]
        for col in ("device", "originator", "counter", "srv"):
            assert audit[col][i] == req[col][s], (col, i)
        assert audit["t_ns"][i] > audit["execution_ns"][i] >= req["t_scheduled_ns"][s]
        assert audit["t_ns"][i] > req["t_done_ns"][s]
    assert audit["t_ns"] == sorted(audit["t_ns"])
    assert set(audit["response_code"]) == {"I0"}
    # per command: instructions distinct, within 1..total; complete ones have all of them
    got: dict[int, list[int]] = defaultdict(list)
    total = {}
    for s, i, m in zip(audit["seq"], audit["instruction"], audit["total_instructions"], strict=True):
        got[s].append(i)
        total.setdefault(s, m)
        assert total[s] == m
    complete = 0
    for s, ins in got.items():
        assert len(set(ins)) == len(ins) and all(1 <= i <= total[s] for i in ins)
        complete += len(ins) == total[s]
    assert summary["complete"] == complete
    assert summary["incomplete"] == len(delivered) - complete > 0
    # out of sequence, recounted in arrival order: a lower instruction of its command not yet seen
    seen: dict[int, set[int]] = defaultdict(set)
    flags = []
    for s, i in zip(audit["seq"], audit["instruction"], strict=True):
        flags.append(any(k not in seen[s] for k in range(1, i)))
        seen[s].add(i)
    # a response is flagged against all its command's instructions, those after the run's end
    # included: it can only be flagged more often than what arrived within the run shows
    logged = audit["out_of_sequence"]
    assert all(f <= g for f, g in zip(flags, logged, strict=True))
    assert [f for f, s in zip(flags, audit["seq"], strict=True) if len(got[s]) == total[s]] == [
        g for g, s in zip(logged, audit["seq"], strict=True) if len(got[s]) == total[s]
    ]
    assert summary["out_of_sequence"] == sum(logged) > 0
    assert summary["not_done"] == Counter(audit["alert_code"])[0x8F67] > 0


def test_the_report_shows_the_audit_counts(run: Path) -> None:
    html = (run / "report.html").read_text()
    summary = json.loads((run / "summary.json").read_text())["future_dated"]
    assert 'id="future-dated"' in html
    assert "commands incomplete at the end of the run" in html
    assert f"{summary['out_of_sequence']:,}" in html


def test_same_scenario_and_seed_give_the_same_audit_trail(run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    simulate("smoke", out=again, shards=4)
    for name in ("requests.arrow", "audit.arrow"):
        assert (again / name).read_bytes() == (run / name).read_bytes(), name


def test_the_audit_trail_does_not_depend_on_thread_timing(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dccsim.loadgen.driver as driver

    monkeypatch.setattr(driver, "ThreadPoolExecutor", LazyPool)
    simulate("smoke", out=tmp_path / "lazy")
    assert (tmp_path / "lazy" / "audit.arrow").read_bytes() == (run / "audit.arrow").read_bytes()


# ---------------------------------------------------------------------------- the throttle


def test_no_future_dated_response_goes_through_alert_storm_protection(monkeypatch: pytest.MonkeyPatch) -> None:
    """16-instruction commands at a threshold of 1: every complete command's 16 responses are
    in the audit trail, and no 8F66/8F67 is ever handed to the throttle or logged as an alert."""
    codes: list[np.ndarray] = []
    process = Pipeline.process_alerts

    def spy(self: Pipeline, t: Any, dev: Any, code: Any) -> Any:
        codes.append(np.array(code))
        return process(self, t, dev, code)

    monkeypatch.setattr(Pipeline, "process_alerts", spy)
    run = scenario(
        "smoke", scale=0.002,
        **{"future_dated.instructions": [16, 16], "future_dated.commands_per_meter": 0.2, "throttle.threshold": 1},
    )  # fmt: skip
    sink, _ = drive(run)
    seen = np.concatenate(codes)
    assert len(seen) > 1000 and not np.isin(seen, [0x8F66, 0x8F67]).any()
    assert not np.isin(sink.alert_rows().alert_code, [0x8F66, 0x8F67]).any()
    audit = sink.audit_rows()
    by_cmd = Counter(audit.seq.tolist())
    complete = [s for s in by_cmd if by_cmd[s] == 16]
    assert len(complete) > 20
    for s in complete:
        assert sorted(audit.instruction[audit.seq == s].tolist()) == list(range(1, 17))


# ---------------------------------------------------------------------------- DUIS XML


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    if not XSD.is_file():
        pytest.skip(f"the DUIS schema is not at {XSD}")
    return etree.XMLSchema(etree.parse(str(XSD)))


def _responses(run: Path, limit: int = 200) -> list[Any]:
    audit = _log(run, "audit.arrow")
    cat = catalogue()
    out = []
    for i in range(min(limit, len(audit["seq"]))):
        rid = RequestId(
            originator=int_to_eui(audit["originator"][i]), target=int_to_eui(audit["device"][i]),
            counter=audit["counter"][i],
        )  # fmt: skip
        when = datetime.fromtimestamp(audit["t_ns"][i] / NS, UTC)
        srv = audit["srv"][i]
        out.append(
            future_dated_response(
                rid, srv, cat[srv].reference, when, audit["alert_code"][i], audit["instruction"][i],
                audit["total_instructions"][i], response_code=audit["response_code"][i],
            )
        )  # fmt: skip
    return out


def test_audit_rows_as_duis_xml_are_valid_against_the_xsd(run: Path, schema: etree.XMLSchema) -> None:
    responses = _responses(run)
    assert {r.future_dated.alert_code for r in responses} == {0x8F66, 0x8F67}
    for resp in responses:
        doc = etree.fromstring(encode_xml(resp))
        schema.assertValid(doc)
        ns = {"sr": "http://www.dccinterface.co.uk/ServiceUserGateway"}
        msg = doc.find("sr:Body/sr:ResponseMessage", ns)
        assert msg.findtext("sr:ServiceReferenceVariant", namespaces=ns) == FD_SRV
        fd = msg.find("sr:FutureDatedDeviceAlertMessage", ns)
        assert fd.findtext("sr:InstructionNumber", namespaces=ns) == str(resp.future_dated.instruction_number)
        assert doc.findtext("sr:Header/sr:RequestID", namespaces=ns) == str(resp.request_id)


def test_decode_to_xml_writes_a_valid_future_dated_response(
    run: Path, schema: etree.XMLSchema, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_helper import decode_to_xml

    docs = decode_to_xml(_responses(run, limit=3), tmp_path, XSD, capsys)
    assert len(docs) == 3
    for d in docs:
        schema.assertValid(etree.fromstring(d.encode()))
        assert "<sr:FutureDatedDeviceAlertMessage>" in d


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("future_dated.alert_code", {"alert_code": 0x8F84}),
        ("future_dated.instruction_number", {"instruction": 0}),
        ("future_dated.instruction_number", {"instruction": 4, "total_instructions": 3}),
        ("future_dated.total_command_instructions", {"instruction": 1, "total_instructions": 70_000}),
    ],
)
def test_a_future_dated_response_duis_cannot_hold_is_refused(field: str, kwargs: dict[str, int]) -> None:
    rid = RequestId.parse("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1002")
    args = {"alert_code": 0x8F66, "instruction": 1, "total_instructions": 3, **kwargs}
    resp = future_dated_response(rid, "1.1.1", "1.1", datetime(2026, 1, 1, tzinfo=UTC), **args)
    with pytest.raises(MessageError) as err:
        encode_xml(resp)
    assert err.value.field == field


# ---------------------------------------------------------------------------- an aborted run


def test_an_aborted_run_keeps_a_valid_audit_trail(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped part-way (an error in the pipeline) ends audit.arrow at its last complete
    batch, a valid stream of the first rows of the full run's trail."""
    from dccsim.bench.results.runlog import RunAborted

    finish = Pipeline.finish
    calls = []

    def failing(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 150:
            raise RuntimeError("injected fault")
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "finish", failing)
    out = tmp_path / "aborted"
    with pytest.raises(RunAborted, match="audit.arrow"):
        simulate("smoke", out=out)
    table = read_log(out / "audit.arrow", strict=True)
    whole = read_log(run / "audit.arrow")
    assert 0 < table.num_rows < whole.num_rows
    cols = ["seq", "t_ns", "instruction"]
    assert table.select(cols).equals(whole.select(cols).slice(0, table.num_rows))
    assert not (out / "summary.json").exists()
