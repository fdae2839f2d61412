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
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from dccsim.bench.results.logs import (
    ALERTS_SCHEMA,
    ArrowLogWriter,
    LogWriteError,
    read_log,
    read_status,
    run_metadata,
)


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


# ------------------------------------------------------------------ the log writer


def _alerts(k: int, n: int = 50) -> dict[str, np.ndarray]:
    return {
        "t_ns": np.arange(k * n, (k + 1) * n, dtype=np.int64), "device": np.full(n, k, np.uint64),
        "alert_code": np.full(n, 0x8F0F, np.uint16), "action": np.zeros(n, np.uint8),
        "throttled_count": np.zeros(n, np.uint32), "sequence_id": np.arange(n, dtype=np.uint32),
        "storm": np.zeros(n, bool), "instruction": np.zeros(n, np.uint16),
        "total_instructions": np.zeros(n, np.uint16),
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
    log = ArrowLogWriter(path, ALERTS_SCHEMA, run_metadata("x", 1), compression=None, opener=Disk(20_000).open)
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
    assert table.column("t_ns").to_pylist() == list(range(exc.rows))
    assert path.stat().st_size == log.bytes


def test_when_even_the_end_marker_cannot_be_written_the_error_says_so(tmp_path: Path) -> None:
    path = tmp_path / "alerts.arrow"
    log = ArrowLogWriter(path, ALERTS_SCHEMA, run_metadata("x", 1), compression=None,
                         opener=Disk(20_000, gives_back=False).open)  # fmt: skip
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
