"""A run that stops part-way leaves valid logs and one line: a full disk, Ctrl-C, a failing stage.

A full disk is stood in through the one seam the log writer opens its files by
(:func:`dccsim.bench.results.logs.open_file`): a :class:`Disk` on which each file may grow to a
fixed number of bytes (its own share, so which log fails first does not depend on the worker
threads' timing); writes go to real files until that space runs out (a short write, then
``ENOSPC``, as the kernel does) and ``truncate`` gives the space back. Every partial log is
read with both Polars and pyarrow and compared with a full run's.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from cli_helper import cli
from dccsim.bench.results import logs
from dccsim.bench.results.logs import (
    ALERTS_SCHEMA,
    ArrowLogWriter,
    LogWriteError,
    raw_table,
    read_log,
    read_status,
    run_metadata,
)
from dccsim.bench.results.runlog import RunSink
from dccsim.core.pipeline import Pipeline

RUN = ("run", "smoke", "--scale", "0.0002", "--quiet")
LOGS = ("requests.arrow", "alerts.arrow", "audit.arrow")
#: the logs the full-disk tests fill (the audit trail, small, is left room and checked as a prefix)
FILLED = ("requests.arrow", "alerts.arrow")


def _half_full(full_run: Path) -> Disk:
    return Disk({**{name: (full_run / name).stat().st_size // 2 for name in FILLED}, "audit.arrow": 1 << 30})


class Disk:
    """A disk on which each file opened (``open`` is an ``open_file``) may grow to ``room`` bytes."""

    def __init__(self, room: int | dict[str, int], *, gives_back: bool = True) -> None:
        self.room = room
        #: whether truncating a file frees its space (False: the disk stays full)
        self.gives_back = gives_back

    def open(self, path: str) -> DiskFile:
        room = self.room if isinstance(self.room, int) else self.room[Path(path).name]
        return DiskFile(self, room, open(path, "wb", buffering=0))  # noqa: SIM115 - the writer closes it


class DiskFile:
    def __init__(self, disk: Disk, room: int, raw: Any) -> None:
        self.disk, self.free, self.raw, self.size = disk, room, raw, 0

    def write(self, data: Any) -> int:
        n = min(len(data), self.free)
        if n == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.raw.write(memoryview(data)[:n])  # a short write when the space runs out mid-way
        self.free -= n
        self.size += n
        return n

    def truncate(self, size: int) -> int:
        if self.disk.gives_back:
            self.free += self.size - size
        self.size = size
        return self.raw.truncate(size)  # type: ignore[no-any-return]

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)  # type: ignore[no-any-return]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.raw.close()


def _read_both(path: Path) -> tuple[pa.Table, pl.DataFrame]:
    """The log as pyarrow and Polars read a whole stream (each raises without the end marker)."""
    return ipc.open_stream(path).read_all(), pl.read_ipc_stream(path)


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and err.endswith("\n"), err
    return lines[0]


def _kept_rows(line: str, folder: Path) -> dict[str, int]:
    """The rows the line says each log holds (``the first N rows are in PATH``...)."""
    found = {}
    for n, path in re.findall(r"the first ([\d,]+)(?: rows are)? in (\S+?\.arrow)", line):
        found[Path(path).name] = int(n.replace(",", ""))
        assert Path(path).parent == folder, line
    return found


def _check_prefixes(folder: Path, full: Path, line: str) -> dict[str, int]:
    """Both logs read whole with Polars and pyarrow; their rows are the first rows of the full
    run's, as many as the line says; returns the rows of each."""
    assert "(valid Arrow streams)" in line
    said = _kept_rows(line, folder)
    rows = {}
    for name in LOGS:
        table, frame = _read_both(folder / name)
        whole = ipc.open_stream(full / name).read_all()
        assert frame.height == table.num_rows == said[name]
        assert table.equals(whole.slice(0, table.num_rows)), name
        first = "seq" if name == "requests.arrow" else "t_ns"
        assert frame[first].to_physical().to_list() == raw_table(whole).column(first).to_pylist()[: frame.height]
        assert read_status(read_log(folder / name)) == "complete"
        rows[name] = table.num_rows
    return rows


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dccsim.bench.compose import simulate

    out = tmp_path_factory.mktemp("full") / "run"
    simulate("smoke", scale=0.0002, out=out)
    return out


# ------------------------------------------------------------------ the command line


def test_a_full_disk_mid_run_is_one_line_exit_3_and_valid_log_prefixes(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs, "open_file", _half_full(full_run).open)
    out = tmp_path / "run"
    code, stdout, err = cli(*RUN, "--out", str(out), capsys=capsys)
    line = _one_line(err)
    assert code == 3, err
    assert stdout == ""
    assert re.match(rf"dccsim: error: run aborted: cannot write {re.escape(str(out))}/(requests|alerts)\.arrow: "
                    rf"{os.strerror(errno.ENOSPC)}; the first ", line), line  # fmt: skip
    rows = _check_prefixes(out, full_run, line)
    full_rows = {name: ipc.open_stream(full_run / name).read_all().num_rows for name in LOGS}
    assert all(0 < rows[name] < full_rows[name] for name in FILLED)
    assert rows["audit.arrow"] <= full_rows["audit.arrow"]
    assert sorted(os.listdir(out)) == sorted(LOGS)  # no summary.json, report.html or temporary file


def test_ctrl_c_mid_run_exits_130_with_one_line_and_readable_logs(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for name in ("summary.json", "report.html"):  # an earlier run's results in the same folder
        (out / name).write_text("an earlier run's")
    calls = []
    progress = RunSink.progress

    def interrupted(self: RunSink, done_ns: int, end_ns: int) -> None:
        calls.append(done_ns)
        if len(calls) == 100:
            raise KeyboardInterrupt
        progress(self, done_ns, end_ns)

    monkeypatch.setattr(RunSink, "progress", interrupted)
    code, stdout, err = cli(*RUN, "--out", str(out), "--force", capsys=capsys)  # replaces the earlier run
    line = _one_line(err)
    assert code == 130, err
    assert line.startswith("dccsim: interrupted; the first "), line
    rows = _check_prefixes(out, full_run, line)
    assert 0 < rows["requests.arrow"] < ipc.open_stream(full_run / "requests.arrow").read_all().num_rows
    assert sorted(os.listdir(out)) == sorted(LOGS)  # the earlier run's results are not left beside them


def test_an_error_in_the_pipeline_mid_run_exits_3_with_one_line_and_readable_logs(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    finish = Pipeline.finish
    calls = []

    def failing(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 50:
            raise RuntimeError("injected fault")
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "finish", failing)
    out = tmp_path / "run"
    code, _, err = cli(*RUN, "--out", str(out), capsys=capsys)
    line = _one_line(err)
    assert code == 3, err
    assert line.startswith("dccsim: error: run aborted: RuntimeError: injected fault; the first "), line
    rows = _check_prefixes(out, full_run, line)
    assert 0 < rows["requests.arrow"] < ipc.open_stream(full_run / "requests.arrow").read_all().num_rows
    assert sorted(os.listdir(out)) == sorted(LOGS)


def test_a_sweep_on_a_full_disk_is_one_line_exit_3(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs, "open_file", _half_full(full_run).open)
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", "smoke", "--scale", "0.0002", "--uplift", "1", "--workers", "1", "--out", str(out),
                       capsys=capsys)  # fmt: skip
    running, line = err.rstrip("\n").rsplit("\n", 1)  # "running SETTING ..." lines, then the one line
    assert code == 3, err
    assert running == "running uplift1.0-demandbase ..." and "Traceback" not in err
    assert line.startswith(f"dccsim: error: run aborted: cannot write {out}/"), line
    assert "(valid Arrow streams)" in line and line.endswith("(no sweep.json written)")
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    for name in LOGS:
        table, frame = _read_both(run / name)
        assert frame.height == table.num_rows
    assert not (out / "sweep.json").exists()


def test_a_report_that_cannot_be_written_names_it_and_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dccsim.bench.results import report

    def full(run_dir: Path, out: Path | None = None, **_: Any) -> Path:
        (Path(run_dir) / "report.html.tmp").write_text("<html><body>half a pa")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(report, "build_report", full)
    out = tmp_path / "run"
    code, _, err = cli(*RUN, "--out", str(out), capsys=capsys)
    line = _one_line(err)
    assert code == 3, err
    assert line == f"dccsim: error: cannot write {out}/report.html: {os.strerror(errno.ENOSPC)}"
    assert sorted(os.listdir(out)) == sorted([*LOGS, "histograms.json", "summary.json"])
    for name in LOGS:
        _read_both(out / name)


def test_a_read_only_run_folder_is_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        code, _, err = cli(*RUN, "--out", str(parent / "run"), capsys=capsys)
    finally:
        parent.chmod(0o700)
    line = _one_line(err)
    assert code == 2, err
    assert f"out: got '{parent / 'run'}'" in line and "a folder dccsim can create and write" in line
    assert not (parent / "run").exists()


# ------------------------------------------------------------------ the log writer


def _alerts(k: int, n: int = 50) -> dict[str, np.ndarray]:
    return {
        "t_ns": np.arange(k * n, (k + 1) * n, dtype=np.int64), "device": np.full(n, k, np.uint64),
        "alert_code": np.full(n, 0x8F0F, np.uint16), "action": np.zeros(n, np.uint8),
        "throttled_count": np.zeros(n, np.uint32), "sequence_id": np.arange(n, dtype=np.uint32),
        "storm": np.zeros(n, bool),
    }  # fmt: skip


def _fill(log: ArrowLogWriter, batches: int = 200) -> LogWriteError:
    with pytest.raises(LogWriteError) as caught:
        for k in range(batches):
            log.write_columns(**_alerts(k))
        log.close()
    return caught.value


@pytest.mark.parametrize("background", [False, True])
def test_a_writer_on_a_full_disk_ends_its_file_at_the_last_complete_batch(tmp_path: Path, background: bool) -> None:
    path = tmp_path / "alerts.arrow"
    log = ArrowLogWriter(path, ALERTS_SCHEMA, run_metadata("x", 1), compression=None, opener=Disk(20_000).open,
                         alert_codes=[0x8F0F])  # fmt: skip
    if background:
        log.start_background()
    exc = _fill(log)
    assert isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.ENOSPC
    assert exc.ended and 0 < exc.rows == log.rows_written < 200 * 50 and exc.rows % 50 == 0
    assert str(exc) == (f"cannot write {path}: {os.strerror(errno.ENOSPC)}; "
                        f"the first {exc.rows:,} rows are in {path} (valid Arrow stream)")  # fmt: skip
    with pytest.raises(LogWriteError):
        log.write_columns(**_alerts(0))
    log.close()  # already said; the file stays as it is
    table, frame = _read_both(path)
    assert table.num_rows == frame.height == exc.rows
    assert raw_table(table).column("t_ns").to_pylist() == list(range(exc.rows))
    assert path.stat().st_size == log.bytes


def test_when_even_the_end_marker_cannot_be_written_the_error_says_so(tmp_path: Path) -> None:
    path = tmp_path / "alerts.arrow"
    log = ArrowLogWriter(path, ALERTS_SCHEMA, run_metadata("x", 1), compression=None,
                         opener=Disk(20_000, gives_back=False).open, alert_codes=[0x8F0F])  # fmt: skip
    exc = _fill(log)
    assert not exc.ended and exc.end_error == os.strerror(errno.ENOSPC)
    assert "without its end-of-stream marker" in str(exc) and "read_log reads them" in str(exc)
    table = read_log(path)
    assert read_status(table) == "unterminated" and table.num_rows == exc.rows > 0


def test_ctrl_c_inside_a_write_leaves_a_valid_file_and_stays_a_keyboard_interrupt(tmp_path: Path) -> None:
    class Interrupted(DiskFile):
        def write(self, data: Any) -> int:
            if self.size > 5_000:
                raise KeyboardInterrupt
            return super().write(data)

    path = tmp_path / "alerts.arrow"
    disk = Disk(10**9)
    log = ArrowLogWriter(path, ALERTS_SCHEMA, run_metadata("x", 1), compression=None,
                         opener=lambda p: Interrupted(disk, 10**9, open(p, "wb", buffering=0)))  # fmt: skip
    with pytest.raises(KeyboardInterrupt), log:
        for k in range(100):
            log.write_columns(**_alerts(k))
    table, frame = _read_both(path)
    assert 0 < table.num_rows == frame.height == log.rows_written < 100 * 50
