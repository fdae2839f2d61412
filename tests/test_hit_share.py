"""``[cache] hit_service_share``: a readings-cache hit takes that share of its class's DSP
service time; the work it saved is credited to the fluid DSP two chunks later."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dccsim.bench import load_run, simulate
from dccsim.bench.results.logs import read_log
from dccsim.core.capacity import CapacityClass, CapacityConfig
from dccsim.core.catalogue import DEVICE_KINDS, catalogue
from dccsim.core.columns import RequestBatch
from dccsim.core.errors import ConfigError
from dccsim.core.pipeline import O_CACHE, O_DEVICE, Pipeline
from dccsim.core.records import REQUEST_CLASSES, ROLES
from dccsim.core.validation import DeviceRegistry, UserRegistry

S = 1_000_000_000
DAY = 86_400 * S
T0 = 1_700_006_400 * S  # a midnight
DEVICES = np.arange(1 << 40, (1 << 40) + 4, dtype=np.uint64)
USER = np.uint64(1 << 41)
MHHS = REQUEST_CLASSES.index("mhhs_read")


def _pipeline(share: float, model: str = "fluid") -> Pipeline:
    classes = tuple(CapacityClass(service_ns=S, timeout_ns=60 * S, name=n) for n in REQUEST_CLASSES)
    return Pipeline(
        capacity=CapacityConfig(slots=1, classes=classes, model=model),
        targets_ns=np.full(len(REQUEST_CLASSES), 30 * S, np.int64),
        devices=DeviceRegistry.build(DEVICES, np.full(4, DEVICE_KINDS.index("ESME"), np.uint8)),
        users=UserRegistry.build({int(USER): "MDR"}),
        future_dated_class=REQUEST_CLASSES.index("future_dated"),
        hit_service_share=share,
    )


def _reads(k: int, t: int, gap: int = 0) -> tuple[RequestBatch, np.ndarray, np.ndarray, np.ndarray]:
    """Chunk ``k``: the same day's 4.8.1 read of each device, from ``t``, ``gap`` ns apart."""
    b = RequestBatch.from_columns(
        device=DEVICES, originator=np.full(4, USER, np.uint64), counter=np.arange(1, 5) + 4 * k,
        srv=np.full(4, catalogue().code("4.8.1", "srv")), role=np.full(4, ROLES.index("MDR")),
        command_variant=np.ones(4), period_start_ns=np.full(4, T0 - DAY), period_end_ns=np.full(4, T0),
        t_scheduled_ns=t + gap * np.arange(4),
    )  # fmt: skip
    return b, np.full(4, MHHS, np.uint8), np.full(4, S, np.int64), np.zeros(4, np.uint8)


def test_a_hit_takes_its_share_and_the_saving_is_credited_two_chunks_later() -> None:
    p = _pipeline(0.25)
    first = p.finish(p.front(*_reads(0, T0)))  # misses: 4 s of work, the answers stored
    assert (first.outcome == O_DEVICE).all()
    f1 = p.front(*_reads(1, T0 + 100 * S))
    second = p.finish(f1)
    assert (second.outcome == O_CACHE).all()
    # a hit holds the DSP a quarter of its second: answered 0.25 s after it starts
    assert (second.t_done_ns - f1.start == S // 4).all()
    p.front(*_reads(2, T0 + 200 * S))  # credits chunk 0's saving: none
    assert p.hit_credit_ns == 0.0
    p.front(*_reads(3, T0 + 300 * S))  # credits chunk 1's: 4 hits x 0.75 s
    assert p.hit_credit_ns == 4 * 0.75 * S


def test_the_server_credits_a_micro_batch_before_the_next() -> None:
    p = _pipeline(0.0)
    p.process(*_reads(0, T0))
    p.process(*_reads(1, T0 + 100 * S))  # process = front then finish: credited at once
    # the 4 hits came together, so the DSP still had their 4 s queued: all of it comes off
    assert p.hit_credit_ns == 4.0 * S and p.dsp.work_ns == 0.0 and p.dsp.credit_left_ns == 0.0
    p.process(*_reads(2, T0 + 200 * S, gap=10 * S))  # hits 10 s apart: 1 s queued at the last
    assert p.dsp.work_ns == 0.0 and p.dsp.credit_left_ns == 3.0 * S  # the rest, for the next requests


def test_a_chunk_must_be_finished_before_the_one_two_later_starts() -> None:
    p = _pipeline(0.5)
    p.front(*_reads(0, T0))
    p.front(*_reads(1, T0 + 100 * S))
    with pytest.raises(RuntimeError, match="chunk 0 must be finished"):
        p.front(*_reads(2, T0 + 200 * S))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half", True])
def test_bad_shares_are_config_errors_naming_the_key(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        _pipeline(bad)  # type: ignore[arg-type]
    assert info.value.key == "cache.hit_service_share"
    with pytest.raises(ConfigError) as info:
        load_run("smoke", settings={"cache.hit_service_share": bad})
    assert info.value.key == "cache.hit_service_share"


def test_a_share_below_one_needs_the_fluid_dsp() -> None:
    with pytest.raises(ConfigError, match="servers") as info:
        load_run("smoke", settings={"cache.hit_service_share": 0.5, "capacity.model": "servers"})
    assert info.value.key == "cache.hit_service_share"
    with pytest.raises(ConfigError, match="servers"):
        _pipeline(0.5, model="servers")
    assert _pipeline(1.0, model="servers").hit_service_share == 1.0
    assert load_run("smoke").scenario.cache.hit_service_share == 1.0  # the default: a hit's full DSP work


# A DSP-bound day where the cache's hits fall while the DSP is saturated: the MHHS day without
# uplift, every ESME's reads cached, at 40 % of its threshold (the daytime re-reads saturate it).
_BOUND = {"cache.scope": "esme", "capacity.operating_threshold": 0.4}


def _run(tmp_path: Path, name: str, **settings: object):  # type: ignore[no-untyped-def]
    return simulate(
        "mhhs-no-uplift", out=tmp_path / name, scale=0.002, exit_criteria={}, settings={**_BOUND, **settings}
    )


def _rows(path: Path) -> dict[str, list[object]]:
    return read_log(path, strict=True, raw=True).to_pydict()


def test_hits_that_save_dsp_work_relieve_a_saturated_dsp(tmp_path: Path) -> None:
    full = _run(tmp_path, "full", **{"cache.hit_service_share": 1.0})
    none = _run(tmp_path, "none", **{"cache.hit_service_share": 0.0})
    default = _run(tmp_path, "default")
    for log in ("requests.arrow", "alerts.arrow"):  # 1.0 is the default: the same rows (the metadata has the key)
        assert _rows(tmp_path / "full" / log) == _rows(tmp_path / "default" / log)
    assert default.pipeline is not None and default.pipeline.hit_credit_ns == 0.0
    a, b = full.summary, none.summary
    assert b.outcomes["cache"] >= 0.9 * a.outcomes["cache"] > 1000
    assert none.pipeline is not None and none.pipeline.hit_credit_ns > 0
    assert b.within_target_ratio > a.within_target_ratio + 0.005
    assert b.outcomes["refused"] < a.outcomes["refused"]
    assert b.mean_wait_s < a.mean_wait_s


def test_runs_with_a_share_are_deterministic(tmp_path: Path) -> None:
    one = _run(tmp_path, "one", **{"cache.hit_service_share": 0.5})
    two = _run(tmp_path, "two", **{"cache.hit_service_share": 0.5})
    for log in ("requests.arrow", "alerts.arrow"):
        assert (tmp_path / "one" / log).read_bytes() == (tmp_path / "two" / log).read_bytes()
    assert one.pipeline is not None and two.pipeline is not None
    assert one.pipeline.hit_credit_ns == two.pipeline.hit_credit_ns > 0
    rows = read_log(tmp_path / "one" / "requests.arrow", strict=True, raw=True).to_pydict()
    assert "cache" in set(rows["outcome"])
