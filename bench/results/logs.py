"""Arrow logs of a run: ``requests.arrow`` and ``alerts.arrow``, written batch by batch.

A log is an Arrow IPC **stream** (not the IPC file format: there is no footer to write at the
end), one record batch per write. Each batch reaches the operating system before
:meth:`ArrowLogWriter.write_columns` returns, so a run killed midway leaves a readable prefix;
:func:`read_log` returns the complete batches of such a file and says how it ended.

A write that fails (a full disk: ``OSError`` ``ENOSPC``; or anything else raised part-way
through a batch, Ctrl-C included) does not leave a broken file: the writer knows the offset
after its last complete batch, cuts the file back to it and writes the end-of-stream marker
there, so the file is a valid stream of the rows before the failure, which every reader
below reads (Polars and ``pyarrow.ipc.open_stream`` included). The failure is then a
:class:`LogWriteError` that says where the failed write was, how many rows the file holds,
and whether the marker could be written (if even that failed, the error says so, and
:func:`read_log` still reads the complete batches). The file is opened by :func:`open_file`
(or the writer's ``opener``): the one seam through which tests stand in a full disk.

The columns of both logs are defined once, in :mod:`dccsim.core.records`
(:class:`~dccsim.core.records.RequestRows`, :class:`~dccsim.core.records.AlertRows`);
:data:`REQUESTS_SCHEMA` and :data:`ALERTS_SCHEMA` are derived from them
(:func:`arrow_schema`), and producers hand over row objects
(:meth:`ArrowLogWriter.write_rows`).

Producers hand NumPy arrays: times and durations as int64 ns, EUI-64s as uint64, alert codes
as uint16 (what the simulator computes with). The log gives them types for their readers,
by each column's kind (:data:`dccsim.core.records.KINDS`): ``timestamp[ns, UTC]`` (null for a
``time_or_none`` of 0), ``duration[ns]``, EUI-64 text as DUIS writes it (a Numba kernel, 9 ns
a value), and ``dictionary<uint16, string>`` of 4 hex digits for alert codes (the dictionary is
the codes the log is opened with, ``alert_codes``, or all 65,536, about 0.5 MB once per file).
Times and durations are the same bytes with a type. :func:`raw_table` turns a log's typed
columns back into the NumPy values (a log of schema version 1 passes through unchanged).

Categorical columns (``srv``, ``role``, ``outcome``,
``response_code``, ``request_class``, ``invalid``, ``action``) are Arrow
``dictionary<uint8, string>``: the writer takes uint8 **codes** and a fixed tuple of
**names** per column, given once when the log is opened (the names tuple is fixed per log, so
the stream carries one dictionary per column, written once); by default, the column's code
vocabulary in :mod:`dccsim.core.records`. Code ``i`` means ``names[i]``; code
:data:`NULL_CODE` (255) means null (unknown), so a tuple holds at most 255 names. The core's
code tables (``ROLES``, ``RESPONSE_CODES``, the SRV catalogue) are uint8 indices of exactly
this kind and pass through without a copy.

The schema metadata carries ``dccsim.version``, ``dccsim.schema_version``,
``dccsim.scenario`` (the scenario text), ``dccsim.seed`` and any other ``str -> str`` pairs
the caller adds (see :func:`run_metadata`), sorted by key.

Determinism: the same columns, written in the same batches with the same metadata, give the
same bytes, with or without compression (LZ4 frame and Zstandard output were checked byte
for byte across processes and with Arrow's compression threads on or off). Bytes can change
with the pyarrow version (it bundles the compressors), so compare files written by one
environment.

Reading the logs elsewhere (checked offline with DuckDB 2.0, Polars 2.1, pyarrow 26):

- pyarrow: :func:`read_log`, or ``pyarrow.ipc.open_stream(path).read_all()`` for a complete
  file (it raises on a truncated one).
- Polars: ``polars.read_ipc_stream(path)`` (not ``read_ipc``, which wants the file format);
  dictionary columns become ``Categorical``. It raises on a truncated file and does not
  show the schema metadata (use :func:`log_metadata`).
- DuckDB 2.0 has no built-in Arrow IPC reader: ``read_arrow`` and ``FROM 'x.arrow'`` come
  from the ``nanoarrow`` community extension (``INSTALL nanoarrow FROM community``), which
  needs the network. Offline, hand DuckDB the Arrow data from Python; it scans pyarrow
  objects named in the query, a :func:`open_log` reader batch by batch without loading the
  whole log::

      reader = open_log("requests.arrow")
      duckdb.sql("select outcome, count(*) from reader group by outcome").fetchall()

- pandas (not a dependency, not checked here): ``read_log(path).to_pandas()``.

>>> import numpy as np, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "alerts.arrow"
>>> meta = run_metadata(scenario="name = 'demo'", seed=7)
>>> with ArrowLogWriter(path, ALERTS_SCHEMA, meta) as log:
...     log.write_columns(
...         t_ns=np.array([5, 9], np.int64), device=np.array([1, 2], np.uint64),
...         alert_code=np.array([0x8F0F, 0x8F0F], np.uint16), action=np.array([0, 1], np.uint8),
...         throttled_count=np.array([0, 1], np.uint32), sequence_id=np.array([1, 2], np.uint32),
...         storm=np.array([False, True]))
>>> log.rows
2
>>> table = read_log(path)
>>> table.column("action").to_pylist(), read_status(table)
(['forwarded', 'throttled'], 'complete')
>>> log_metadata(path)["dccsim.seed"]
'7'
"""

from __future__ import annotations

import errno
import functools
import importlib.metadata
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from dccsim.core.errors import DccsimError
from dccsim.core.records import ALERT_COLUMNS, REQUEST_COLUMNS, AlertRows, Column, RequestRows, vocabulary

__all__ = [
    "ALERTS_SCHEMA",
    "NULL_CODE",
    "REQUESTS_SCHEMA",
    "SCHEMA_VERSION",
    "ArrowLogWriter",
    "LogError",
    "LogTruncatedError",
    "LogWriteError",
    "arrow_field",
    "arrow_schema",
    "export_parquet",
    "log_metadata",
    "open_file",
    "open_log",
    "raw_table",
    "read_log",
    "read_status",
    "run_metadata",
]

#: version of the log schemas below; bumped when a column changes meaning or type
SCHEMA_VERSION = "2"
#: the code that means null in a dictionary column
NULL_CODE = 255

Compression = Literal["lz4", "zstd"] | None
ReadStatus = Literal["complete", "unterminated", "truncated"]

_CODES = pa.uint8()
_CATEGORY = pa.dictionary(_CODES, pa.string())
_EOS = (b"\xff\xff\xff\xff\x00\x00\x00\x00", b"\x00\x00\x00\x00")
#: the end-of-stream marker the writer puts after the last complete batch of a failed log
_END = _EOS[0]
#: bytes Arrow gathers before it hands them to the file (a batch goes down in a call or two)
_BUFFER = 1 << 20
_STATUS_KEY = b"dccsim.read.status"
_RESERVED = ("dccsim.version", "dccsim.schema_version")
_REQUIRED = ("dccsim.scenario", "dccsim.seed")


#: the Arrow type of each column kind (:data:`dccsim.core.records.KINDS`)
TIMESTAMP = pa.timestamp("ns", tz="UTC")
DURATION = pa.duration("ns")
EUI_TEXT = pa.string()
ALERT_CODE = pa.dictionary(pa.uint16(), pa.string())
_KIND_TYPES = {"time": TIMESTAMP, "time_or_none": TIMESTAMP, "duration": DURATION, "eui": EUI_TEXT,
               "alert_code": ALERT_CODE}  # fmt: skip


def arrow_field(column: Column) -> pa.Field:
    """The Arrow field of a log column: ``dictionary<uint8, string>`` (nullable, code
    :data:`NULL_CODE` is null) for a categorical column; for a column of a kind
    (:data:`dccsim.core.records.KINDS`) its type: ``timestamp[ns, UTC]`` (nullable for
    ``time_or_none``), ``duration[ns]``, EUI-64 text, ``dictionary<uint16, string>`` of hex
    alert codes; else the column's NumPy type. Never null unless said."""
    if column.categorical:
        return pa.field(column.name, _CATEGORY, nullable=True)
    if column.kind is not None:
        return pa.field(column.name, _KIND_TYPES[column.kind], nullable=column.kind == "time_or_none")
    return pa.field(column.name, pa.from_numpy_dtype(column.dtype), nullable=False)


def _kind_of(field: pa.Field) -> str | None:
    """The column kind a log field holds (what its NumPy values become), from its type alone."""
    t = field.type
    if t == TIMESTAMP:
        return "time_or_none" if field.nullable else "time"
    if t == DURATION:
        return "duration"
    if t == EUI_TEXT:
        return "eui"
    if t == ALERT_CODE:
        return "alert_code"
    return None


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of a log with these columns, in their order (no metadata)."""
    return pa.schema([arrow_field(c) for c in columns])


#: one row per Service Request: :data:`~dccsim.core.records.REQUEST_COLUMNS`
REQUESTS_SCHEMA = arrow_schema(REQUEST_COLUMNS)
#: one row per device alert: :data:`~dccsim.core.records.ALERT_COLUMNS`
ALERTS_SCHEMA = arrow_schema(ALERT_COLUMNS)

#: code vocabulary of each categorical column of the records, by column name: the names a
#: writer uses for a dictionary column of that name when it is given none
_RECORD_VOCABULARIES: dict[str, str] = {
    c.name: c.vocabulary for c in (*REQUEST_COLUMNS, *ALERT_COLUMNS) if c.vocabulary is not None
}


class LogError(DccsimError, ValueError):
    """A log that cannot be written or read: names the column or file, got and expected."""


class LogTruncatedError(LogError):
    """A log that does not end with its end-of-stream marker (``read_log(strict=True)``)."""


class LogWriteError(LogError):
    """A log whose file could not be written (a full disk, say): the cause is chained.

    The file was cut back to its last complete batch and ended with the end-of-stream marker
    there, so it holds the first ``rows`` rows as a valid Arrow stream (``ended``); if even
    that failed (``ended`` false, ``end_error`` says why), :func:`read_log` still reads those
    rows. ``reason`` is the failure alone (``cannot write PATH: STRERROR``), ``kept`` where
    the rows are; the text is both.
    """

    def __init__(self, path: str, reason: str, rows: int, ended: bool, end_error: str | None = None) -> None:
        super().__init__(path, reason, rows, ended, end_error)
        self.path, self.reason, self.rows, self.ended, self.end_error = path, reason, rows, ended, end_error

    @property
    def kept(self) -> str:
        """Where the rows written before the failure are, as a clause of a message."""
        return kept_text([(self.path, self.rows, self.ended, self.end_error)])

    def __str__(self) -> str:
        return f"{self.reason}; {self.kept}"


def kept_text(logs: Sequence[tuple[str, int, bool, str | None]]) -> str:
    """``the first N rows are in PATH (valid Arrow stream)`` for logs given as ``(path,
    rows, ended, end_error)``: one clause for those that end with their marker, one each for
    any that could not be ended.

    >>> kept_text([("r/requests.arrow", 1200, True, None), ("r/alerts.arrow", 5, True, None)])
    'the first 1,200 rows are in r/requests.arrow and the first 5 in r/alerts.arrow (valid Arrow streams)'
    """
    ended = [(p, n) for p, n, ok, _ in logs if ok]
    parts = []
    if ended:
        first = f"the first {ended[0][1]:,} rows are in {ended[0][0]}"
        rest = "".join(f" and the first {n:,} in {p}" for p, n in ended[1:])
        parts.append(f"{first}{rest} (valid Arrow stream{'s' if len(ended) > 1 else ''})")
    for path, n, ok, why in logs:
        if not ok:
            parts.append(
                f"the first {n:,} rows are in {path}, without its end-of-stream marker (it could not be "
                f"written: {why}; dccsim.bench.results.read_log reads them)"
            )
    return "; ".join(parts)


def open_file(path: str) -> BinaryIO:
    """How a log's file is opened unless the writer is given an ``opener``: a raw binary file
    (``write``, ``seek``, ``truncate``, ``close``), created or replaced. The writer looks this
    name up when it opens a log, so a test can stand a full disk in here."""
    return open(path, "wb", buffering=0)  # noqa: SIM115 - the writer closes it


class _LogFile:
    """The file under a log's Arrow stream: writes go down whole (a short write is retried, so
    a full disk raises), ``pos`` is the bytes in the file, and :meth:`end_at` cuts it back."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.pos = 0
        #: ended after a failure: what Arrow still holds (buffered bytes, its own marker) is dropped
        self.final = False
        #: closed by Arrow (``closed`` is what pyarrow asks); the raw file may be let go before
        self.closed = False
        self._released = False

    def write(self, data: bytes) -> int:
        if self.final:
            return len(data)
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            done = self.raw.write(view)
            if not done:  # None (would block) or 0: no progress, as a full disk would say
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.pos += done
            view = view[done:]
        return size

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        if not self.final:
            self.raw.flush()

    def end_at(self, offset: int) -> None:
        """Cut the file back to ``offset`` and write the end-of-stream marker there; from then
        on the file is final (later writes are dropped)."""
        self.final = True
        self.raw.truncate(offset)
        self.raw.seek(offset)
        self.pos = offset
        view = memoryview(_END)
        while view:
            done = self.raw.write(view)
            if not done:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.pos += done
            view = view[done:]
        self.raw.flush()

    def release(self) -> None:
        """Close the raw file (once); Arrow's side of this object stays open, writing nowhere."""
        if not self._released:
            self._released = True
            self.raw.close()

    def close(self) -> None:
        self.closed = True
        self.release()


@functools.cache
def _dccsim_version() -> str:
    try:
        return importlib.metadata.version("dccsim")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def run_metadata(scenario: str, seed: int, **extra: str) -> dict[str, str]:
    """The metadata of a run's logs: scenario text, seed, and extra ``dccsim.<key>`` pairs.

    >>> run_metadata("rate = 1", 42, shards="4", **{"dccsim.scale": "0.5"})
    {'dccsim.scenario': 'rate = 1', 'dccsim.seed': '42', 'dccsim.shards': '4', 'dccsim.scale': '0.5'}
    """
    meta = {"dccsim.scenario": str(scenario), "dccsim.seed": str(int(seed))}
    # one prefix, whether the caller gave it or not (runs before this wrote dccsim.dccsim.scale)
    meta.update({(k if k.startswith("dccsim.") else f"dccsim.{k}"): str(v) for k, v in extra.items()})
    return meta


def _numpy_dtype(field: pa.Field) -> np.dtype[Any]:
    """The NumPy dtype a writer takes for a field: its values before the log types them."""
    kind = _kind_of(field)
    if kind is not None:
        return np.dtype({"eui": np.uint64, "alert_code": np.uint16}.get(kind, np.int64))
    if pa.types.is_dictionary(field.type):
        return np.dtype(field.type.index_type.to_pandas_dtype())
    return np.dtype(field.type.to_pandas_dtype())


#: every 16-bit alert code as 4 hex digits, the dictionary of a log told no codes (built once)
@functools.cache
def _all_alert_codes() -> pa.Array:
    words = np.frombuffer(b"".join(b"%04X" % c for c in range(1 << 16)), np.uint8)
    offsets = np.arange(0, 4 * ((1 << 16) + 1), 4, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), 1 << 16, [None, pa.py_buffer(offsets), pa.py_buffer(words)])


def _alert_code_dictionary(codes: Sequence[int] | None) -> tuple[np.ndarray | None, pa.Array]:
    """The index of each 16-bit code in a log's alert-code dictionary (-1: not in it) and the
    dictionary; ``codes`` None: every code, at its own index (no lookup)."""
    if codes is None:
        return None, _all_alert_codes()
    given = list(codes)
    if not all(isinstance(c, int | np.integer) and 0 <= c <= 0xFFFF for c in given):
        raise LogError(f"alert_codes: expected 16-bit alert codes (0 .. 0xFFFF), got {given!r}")
    uniq = sorted({int(c) for c in given})
    index = np.full(1 << 16, -1, np.int32)
    index[uniq] = np.arange(len(uniq))
    return index, pa.array([f"{c:04X}" for c in uniq], pa.string())


def _typed(kind: str, values: np.ndarray, code_index: np.ndarray | None, code_names: pa.Array) -> pa.Array:
    """A column's NumPy values as the Arrow type of its kind (no copy for times and durations)."""
    if kind == "time":
        return pa.array(values).view(TIMESTAMP)
    if kind == "time_or_none":
        return pa.array(values, mask=values == 0).view(TIMESTAMP)
    if kind == "duration":
        return pa.array(values).view(DURATION)
    if kind == "eui":
        from ._kernels import eui_text  # Numba: loaded by the first log written, not at import

        offsets, data = eui_text(values)
        return pa.Array.from_buffers(EUI_TEXT, len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    assert kind == "alert_code", kind
    indices = values if code_index is None else code_index[values].astype(np.uint16)
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.uint16()), code_names, safe=False)


class ArrowLogWriter:
    """Write a log as an Arrow IPC stream, one record batch per write.

    Parameters
    ----------
    path:
        The file to create (replaced if it exists).
    schema:
        :data:`REQUESTS_SCHEMA`, :data:`ALERTS_SCHEMA` or another schema of fixed-width
        columns, ``bool`` and ``dictionary<uint8, string>``.
    metadata:
        ``str -> str`` pairs for the schema metadata; must hold ``dccsim.scenario`` and
        ``dccsim.seed`` (:func:`run_metadata` builds them). ``dccsim.version`` and
        ``dccsim.schema_version`` are added here.
    dictionaries:
        The names tuple of each dictionary column, fixed for the whole log. A column named
        as a categorical column of the records (:mod:`dccsim.core.records`: ``srv``,
        ``role``, ``outcome``, ``response_code``, ``request_class``, ``invalid``,
        ``action``) defaults to that column's vocabulary; any other dictionary column must
        be given.
    compression:
        ``"lz4"`` (default; LZ4 frame), ``"zstd"`` or ``None``. Every reader named in the
        module docstring decompresses both.
    max_batch_rows:
        A write of more rows is split into batches of at most this many rows.
    opener:
        ``opener(path)`` opens the file: a raw binary file (``write``, ``seek``,
        ``truncate``, ``close``); default :func:`open_file`.

    Attributes ``rows`` and ``batches`` count what has been handed over so far,
    ``rows_written`` the rows in complete batches in the file, ``bytes`` the file's size.

    A write that fails ends the file at its last complete batch (module docstring); the
    failure is kept in ``failure`` (a :class:`LogWriteError`), raised by the write that met it
    (an ``OSError`` becomes the :class:`LogWriteError`; anything else, ``KeyboardInterrupt``
    included, is raised as it is) or, with :meth:`start_background`, by the next write or
    :meth:`close`. Later writes raise it again; :meth:`close` raises it if no call has yet.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: pa.Schema,
        metadata: Mapping[str, str],
        *,
        dictionaries: Mapping[str, Sequence[str]] | None = None,
        compression: Compression = "lz4",
        max_batch_rows: int = 1 << 18,
        opener: Callable[[str], BinaryIO] | None = None,
        alert_codes: Sequence[int] | None = None,
    ) -> None:
        if compression not in ("lz4", "zstd", None):
            raise LogError(f"compression: expected 'lz4', 'zstd' or None, got {compression!r}")
        if max_batch_rows <= 0:
            raise LogError(f"max_batch_rows: expected a positive count, got {max_batch_rows}")
        self._fields = list(schema)
        self._names = [f.name for f in self._fields]
        self._dtypes = {f.name: _numpy_dtype(f) for f in self._fields}
        self._dicts = self._dictionaries(dictionaries or {})
        self._kinds = {f.name: k for f in self._fields if (k := _kind_of(f)) is not None}
        self._code_index, self._code_names = _alert_code_dictionary(alert_codes)
        self._schema = pa.schema(self._fields, metadata=self._metadata(metadata))
        self.path = os.fspath(path)
        self.compression = compression
        self.max_batch_rows = int(max_batch_rows)
        self.rows = 0
        self.batches = 0
        self.rows_written = 0
        #: CPU time of the worker thread's writes after :meth:`start_background` (Arrow's pool compresses)
        self.background_cpu_ns = 0
        self.bytes = 0
        #: the failure that ended the file early (:class:`LogWriteError`), or None
        self.failure: LogWriteError | None = None
        self._reported = False
        # Arrow gathers a batch's pieces and hands them to the file in a call or two (not one
        # per buffer: each is a call into Python); every batch is flushed to the OS page cache
        # before a write returns, and the offset after it is where a failed log is cut back to
        self._file = _LogFile((opener or open_file)(self.path))
        try:
            self._sink = pa.BufferedOutputStream(pa.PythonFile(self._file, mode="w"), buffer_size=_BUFFER)
            options = ipc.IpcWriteOptions(compression=compression)
            self._writer = ipc.new_stream(self._sink, self._schema, options=options)
            self._sink.flush()
        except BaseException:
            self._file.final = True
            self._file.release()
            raise
        self.bytes = self._file.pos
        self._closed = False
        self._queue: queue.Queue[pa.RecordBatch | None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def schema(self) -> pa.Schema:
        """The schema written, with its metadata."""
        return self._schema

    def _dictionaries(self, given: Mapping[str, Sequence[str]]) -> dict[str, pa.Array]:
        dict_fields = [f.name for f in self._fields if pa.types.is_dictionary(f.type) and f.type != ALERT_CODE]
        for f in self._fields:
            if pa.types.is_dictionary(f.type) and f.type not in (_CATEGORY, ALERT_CODE):
                raise LogError(f"schema column {f.name!r}: expected {_CATEGORY} or {ALERT_CODE}, got {f.type}")
        extra = sorted(set(given) - set(dict_fields))
        if extra:
            raise LogError(
                f"dictionaries: no dictionary column named {', '.join(map(repr, extra))}; "
                f"the schema's dictionary columns are {dict_fields}"
            )
        out = {}
        for name in dict_fields:
            names = given.get(name)
            if names is None and name in _RECORD_VOCABULARIES:
                names = vocabulary(_RECORD_VOCABULARIES[name])
            if names is None:
                raise LogError(f"dictionaries: the names of column {name!r} are required")
            names = tuple(names)
            if not all(isinstance(s, str) for s in names):
                raise LogError(f"dictionaries[{name!r}]: expected a tuple of str, got {names!r}")
            if len(set(names)) != len(names):
                raise LogError(f"dictionaries[{name!r}]: names must be unique, got {names!r}")
            if len(names) > NULL_CODE:
                raise LogError(
                    f"dictionaries[{name!r}]: at most {NULL_CODE} names fit uint8 codes (255 is null), got {len(names)}"
                )
            out[name] = pa.array(names, pa.string())
        return out

    def _metadata(self, metadata: Mapping[str, str]) -> dict[str, str]:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise LogError(f"metadata: expected str keys and values, got {key!r}: {type(value).__name__}")
            if key in _RESERVED:
                raise LogError(f"metadata[{key!r}]: set by the writer, do not pass it")
        missing = [k for k in _REQUIRED if k not in metadata]
        if missing:
            raise LogError(f"metadata: missing {', '.join(map(repr, missing))} (build it with run_metadata)")
        meta = dict(metadata)
        meta["dccsim.version"] = _dccsim_version()
        meta["dccsim.schema_version"] = SCHEMA_VERSION
        return dict(sorted(meta.items()))

    def _check_columns(self, columns: Mapping[str, Any]) -> int:
        missing = [n for n in self._names if n not in columns]
        extra = sorted(set(columns) - set(self._names))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
            if extra:
                parts.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
            raise LogError(f"{'; '.join(parts)}; the log's columns are {self._names}")
        n = -1
        for name in self._names:
            arr = columns[name]
            want = self._dtypes[name]
            if not isinstance(arr, np.ndarray):
                raise LogError(f"column {name!r}: expected a numpy {want} array, got {type(arr).__name__}")
            if arr.dtype != want:
                kind = "codes " if name in self._dicts else ""
                raise LogError(f"column {name!r}: expected {kind}dtype {want}, got {arr.dtype}")
            if arr.ndim != 1:
                raise LogError(f"column {name!r}: expected a 1-D array, got shape {arr.shape}")
            if n < 0:
                n, first = arr.shape[0], name
            elif arr.shape[0] != n:
                raise LogError(f"column {name!r}: expected length {n} (as {first!r}), got {arr.shape[0]}")
        if n:
            for name, names in self._dicts.items():
                codes = columns[name]
                top = int(codes.max())
                if top >= len(names) and (top != NULL_CODE or (
                    (codes >= len(names)) & (codes != NULL_CODE)).any()
                ):  # fmt: skip
                    bad = int(codes[(codes >= len(names)) & (codes != NULL_CODE)][0])
                    raise LogError(
                        f"column {name!r}: code {bad} has no name; expected codes below "
                        f"{len(names)} or {NULL_CODE} (null)"
                    )
            if self._code_index is not None:
                for name, kind in self._kinds.items():
                    if kind != "alert_code":
                        continue
                    missing = np.flatnonzero(self._code_index[columns[name]] < 0)
                    if len(missing):
                        i = missing[0]
                        known = ", ".join(self._code_names.to_pylist())
                        raise LogError(
                            f"column {name!r}: alert code {int(columns[name][i]):04X} is not in this log's "
                            f"dictionary; expected one of {known} (the codes the log was opened with)"
                        )
        return n

    def _array(self, name: str, values: np.ndarray) -> pa.Array:
        kind = self._kinds.get(name)
        if kind is not None:
            return _typed(kind, values, self._code_index, self._code_names)
        names = self._dicts.get(name)
        if names is None:
            return pa.array(values)
        if values.max(initial=0) < len(names):
            indices = pa.array(values, type=_CODES)
        else:  # codes were checked: any code past the names is NULL_CODE
            mask = values == NULL_CODE
            # a null slot holds index 0, so no reader meets an index past the dictionary
            indices = pa.array(np.where(mask, 0, values).astype(np.uint8), mask=mask)
        return pa.DictionaryArray.from_arrays(indices, names, safe=False)

    def write_columns(self, **columns: np.ndarray) -> None:
        """Append rows given as one 1-D NumPy array per column (codes for dictionaries).

        Every column of the schema must be present with its exact dtype (uint8 codes for a
        dictionary column) and all of one length; otherwise :class:`LogError` names the
        column, what it got and what was expected, and nothing is written.
        """
        self._check_open()
        n = self._check_columns(columns)
        step = self.max_batch_rows
        for start in range(0, n, step):
            arrays = [self._array(f, columns[f][start : start + step]) for f in self._names]
            self._write(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def write_rows(self, rows: RequestRows | AlertRows) -> None:
        """Append a producer's rows: :meth:`write_columns` of ``rows.columns()``."""
        self.write_columns(**rows.columns())

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Append one record batch of the log's schema, with the log's own dictionaries."""
        self._check_open()
        if not isinstance(batch, pa.RecordBatch):
            raise LogError(f"batch: expected a pyarrow.RecordBatch, got {type(batch).__name__}")
        if batch.schema.names != self._names:
            raise LogError(f"batch: expected columns {self._names}, got {batch.schema.names}")
        for field, column in zip(self._fields, batch.columns, strict=True):
            if column.type != field.type:
                raise LogError(f"batch column {field.name!r}: expected type {field.type}, got {column.type}")
            if not field.nullable and column.null_count:
                raise LogError(f"batch column {field.name!r}: expected no nulls, got {column.null_count}")
            names = self._dicts.get(field.name, self._code_names if field.type == ALERT_CODE else None)
            if names is not None and not column.dictionary.equals(names):
                raise LogError(
                    f"batch column {field.name!r}: expected the log's fixed dictionary "
                    f"{names.to_pylist()}, got {column.dictionary.to_pylist()}"
                )
        if batch.num_rows:
            self._write(pa.RecordBatch.from_arrays(batch.columns, schema=self._schema))

    def _write(self, batch: pa.RecordBatch) -> None:
        self._raise_failure()
        if self._queue is not None:
            self._queue.put(batch)  # bounded: waits while the worker is that far behind
        else:
            self._write_now(batch)
        self.rows += batch.num_rows
        self.batches += 1

    def _write_now(self, batch: pa.RecordBatch) -> None:
        if self.failure is not None:
            return  # the file has ended; batches still queued behind the failure are dropped
        try:
            self._writer.write_batch(batch)
            self._sink.flush()
        except BaseException as exc:
            self._fail(exc, "cannot write")
            if isinstance(exc, OSError):
                self._raise_failure()
            self._reported = True  # the caller sees this exception itself
            raise
        self.rows_written += batch.num_rows
        self.bytes = self._file.pos

    def _fail(self, exc: BaseException, what: str) -> None:
        """End the file at its last complete batch (the end-of-stream marker after it) and keep
        the failure; the file is closed and final."""
        good = self.bytes
        end_error = None
        try:
            self._file.end_at(good)
            self.bytes = self._file.pos
        except Exception as err:  # a file that cannot even be cut back: say so
            end_error = getattr(err, "strerror", None) or str(err)
        finally:
            try:
                self._file.release()
            except OSError:
                pass
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc)
        elif isinstance(exc, KeyboardInterrupt):
            why = "interrupted"
        else:
            why = f"{type(exc).__name__}: {exc}"
        reason = f"{what} {self.path}: {why}"
        self.failure = LogWriteError(self.path, reason, self.rows_written, end_error is None, end_error)
        self.failure.__cause__ = exc

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            cpu0 = time.thread_time_ns()
            try:
                self._write_now(batch)
            except BaseException:  # kept in self.failure, raised to the caller at its next call
                pass
            finally:
                self.background_cpu_ns += time.thread_time_ns() - cpu0

    def _raise_failure(self) -> None:
        if self.failure is not None:
            self._reported = True
            raise self.failure

    def start_background(self, depth: int = 4) -> None:
        """Encode and compress batches on a worker thread (Arrow releases the GIL there).

        At most ``depth`` batches wait in the queue, so memory stays bounded; a write blocks
        while the queue is full. ``close`` drains the queue before the end-of-stream marker.
        """
        if self._queue is None:
            self._queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(
                target=self._work, name=f"log-writer:{os.path.basename(self.path)}", daemon=True
            )
            self._thread.start()

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"{self.path}: the log is closed")

    def close(self) -> None:
        """Write the end-of-stream marker and close the file (idempotent).

        After a failure the file is already ended; :class:`LogWriteError` is raised here if
        no earlier call raised it (a failure on the worker thread after the last write).
        """
        if self._closed:
            if self.failure is not None and not self._reported:
                self._raise_failure()
            return
        self._closed = True
        try:
            if self._queue is not None:
                self._queue.put(None)
                assert self._thread is not None
                self._thread.join()
                self._queue = None
            if self.failure is None:
                try:
                    self._writer.close()
                    self._sink.close()
                except BaseException as exc:
                    self._fail(exc, "cannot end")
                    if not isinstance(exc, OSError):
                        self._reported = True
                        raise
                else:
                    self.bytes = self._file.pos
        finally:
            self._release()
        if self.failure is not None and not self._reported:
            self._raise_failure()

    def _release(self) -> None:
        """Let go of Arrow's objects and the file; after a failure whatever Arrow still
        holds goes nowhere (the file is final)."""
        try:
            self._sink.close()
        except Exception:  # noqa: S110 - after a failure: the file is already ended and let go
            pass
        try:
            self._file.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the body's exception is the one to see; the file is ended either way
            self.close()
        except LogWriteError:
            pass

    def __repr__(self) -> str:
        state = "failed" if self.failure is not None else "closed" if self._closed else "open"
        return (
            f"ArrowLogWriter({self.path!r}, {state}, rows={self.rows}, bytes={self.bytes}, "
            f"compression={self.compression!r})"
        )


# --- reading --------------------------------------------------------------------------------


class _LogReading:
    """Reads the complete batches of a log and records how the stream ended."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._source = pa.memory_map(self.path, "r")
        self.size = self._source.size()
        try:
            self._reader = ipc.open_stream(self._source)
        except (pa.ArrowInvalid, OSError) as exc:
            self._source.close()
            raise LogError(
                f"{self.path}: not an Arrow IPC stream, or cut before the end of its schema ({self.size} bytes): {exc}"
            ) from exc
        self.schema: pa.Schema = self._reader.schema
        self.status: ReadStatus | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        end = self._source.tell()
        try:
            while True:
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    # what follows the last batch: the end marker, nothing, or a cut-off one
                    self._source.seek(end)
                    tail = self._source.read()
                    if tail in _EOS:
                        self.status = "complete"
                    else:
                        self.status = "truncated" if tail else "unterminated"
                    return
                except (pa.ArrowInvalid, OSError):
                    self.status = "truncated"
                    return
                end = self._source.tell()
                yield batch
        finally:
            self.close()

    def close(self) -> None:
        self._source.close()


def open_log(path: str | os.PathLike[str]) -> pa.RecordBatchReader:
    """A reader of the log's complete batches, one at a time (DuckDB can scan it directly).

    A truncated log ends quietly after its last complete batch; :func:`read_log` says how
    the file ended.
    """
    reading = _LogReading(path)
    return pa.RecordBatchReader.from_batches(reading.schema, reading.batches())


def export_parquet(path: str | os.PathLike[str], out: str | os.PathLike[str], compression: str = "zstd") -> int:
    """Copy a log to Parquet (``out``), batch by batch, its metadata kept; the rows written.

    Parquet files can be scanned lazily (``polars.scan_parquet``) and queried any number of
    times by DuckDB (``select ... from 'requests.parquet'``), which a stream cannot. Written
    to a temporary name and renamed, so a failure leaves no half file.
    """
    import pyarrow.parquet as pq

    reading = _LogReading(path)
    tmp = Path(str(out) + ".tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, reading.schema, compression=compression) as writer:
            for batch in reading.batches():
                writer.write_batch(batch)
                rows += batch.num_rows
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def read_log(path: str | os.PathLike[str], *, strict: bool = False, raw: bool = False) -> pa.Table:
    """Read a whole log, tolerating a truncated file (``raw``: its typed columns as
    :func:`raw_table` gives them, the numbers the simulator computes with).

    The returned table's schema metadata is the file's plus ``dccsim.read.status``
    (see :func:`read_status`):

    - ``complete``: the stream ends with its end-of-stream marker (the writer was closed);
    - ``unterminated``: it ends cleanly after a batch but without the marker (the writer
      was killed between batches, or is still writing);
    - ``truncated``: it ends inside a message (killed mid-write); that partial batch is
      dropped and the complete batches before it are returned.

    With ``strict=True`` anything but ``complete`` raises :class:`LogTruncatedError`.
    """
    reading = _LogReading(path)
    batches = list(reading.batches())
    assert reading.status is not None
    if strict and reading.status != "complete":
        raise LogTruncatedError(
            f"{reading.path}: the log is {reading.status} ({len(batches)} complete batches, "
            f"{sum(b.num_rows for b in batches)} rows, {reading.size} bytes)"
        )
    meta = dict(reading.schema.metadata or {})
    meta[_STATUS_KEY] = reading.status.encode()
    schema = reading.schema.with_metadata(meta)
    table = pa.Table.from_batches(batches, schema=schema)
    return raw_table(table) if raw else table


def read_status(table: pa.Table) -> ReadStatus:
    """How the file behind a :func:`read_log` table ended: complete, unterminated, truncated."""
    meta = table.schema.metadata or {}
    if _STATUS_KEY not in meta:
        raise LogError("table: expected a table returned by read_log (no dccsim.read.status)")
    status = meta[_STATUS_KEY].decode()
    assert status in ("complete", "unterminated", "truncated")
    return status  # type: ignore[return-value]


def _raw_array(kind: str, column: pa.ChunkedArray | pa.Array, name: str) -> pa.Array:
    """One typed column back as the NumPy values the producers gave (int64, uint64, uint16)."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if kind in ("time", "time_or_none", "duration"):
        ints = col.view(pa.int64())
        return pc.fill_null(ints, 0) if ints.null_count else ints
    if kind == "eui":
        from ._kernels import eui_parse

        text = col.cast(pa.large_string())
        offsets = np.frombuffer(text.buffers()[1], np.int64, count=len(text) + 1, offset=8 * text.offset)
        data = np.frombuffer(text.buffers()[2] or b"", np.uint8)
        if text.null_count:
            raise LogError(f"column {name!r}: expected EUI-64 text in every row, got {text.null_count} nulls")
        values, bad = eui_parse(data, offsets)
        if bad >= 0:
            raise LogError(
                f"column {name!r}: row {bad} holds {text[bad].as_py()!r}, expected an EUI-64 such as "
                "00-DB-12-34-56-78-90-A0"
            )
        return pa.array(values)
    assert kind == "alert_code", kind
    words = col.dictionary.to_pylist()
    bad_word = next((w for w in words if not (isinstance(w, str) and len(w) == 4 and _is_hex(w))), None)
    if bad_word is not None or col.null_count:
        got = f"{bad_word!r} in its dictionary" if bad_word is not None else f"{col.null_count} nulls"
        raise LogError(f"column {name!r}: expected 16-bit alert codes as 4 hex digits (8F84), got {got}")
    codes = np.array([int(w, 16) for w in words], np.uint16)
    return pa.array(codes[col.indices.to_numpy(zero_copy_only=False)])


def _is_hex(word: str) -> bool:
    return all(ch in "0123456789abcdefABCDEF" for ch in word)


def raw_table(table: pa.Table) -> pa.Table:
    """A log with its typed columns (timestamps, durations, EUI-64 text, hex alert codes) back
    as the NumPy values producers hand the writer: int64 ns (0 for a null time), uint64 EUI-64s,
    uint16 alert codes. Categorical columns stay dictionaries; everything else is unchanged,
    so a log of schema version 1 (which held those values as they are) reads the same."""
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = _kind_of(field)
        if kind is None:
            columns.append(column)
            fields.append(field)
            continue
        arr = _raw_array(kind, column, field.name)
        columns.append(arr)
        fields.append(pa.field(field.name, arr.type, nullable=False))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def log_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The schema metadata of a log (``dccsim.version``, ``dccsim.seed``, ...) as str -> str."""
    reading = _LogReading(path)
    meta = reading.schema.metadata or {}
    reading.close()
    return {k.decode(): v.decode() for k, v in meta.items()}
