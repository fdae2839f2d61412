"""A request batch as columns: a struct of NumPy arrays, the shape the hot path works on.

Wire messages are turned into columns once, at the edge; from then on every stage works on
arrays. A :class:`RequestBatch` converts to and from an Arrow ``RecordBatch`` without copying
the numeric buffers (Arrow wraps NumPy memory of fixed-width types without nulls).

Column meanings (absent values are 0):

============== ======= ==========================================================
column         dtype   meaning
============== ======= ==========================================================
device         uint64  target EUI-64
originator     uint64  originator EUI-64 (the DCC User)
counter        uint64  RequestID counter
srv            uint8   SRV code (index in the catalogue)
role           uint8   role code (index in ``ROLES``); 255 = unknown
command_variant uint8  1..8
period_start_ns int64  ReadLogPeriod start (4.6.1 / 4.8.1 / 4.8.3)
period_end_ns  int64   ReadLogPeriod end
t_scheduled_ns int64   when the request is due to be sent (virtual time)
execution_ns   int64   ExecutionDateTime of a future-dated request
============== ======= ==========================================================
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from . import _kernels
from .catalogue import catalogue
from .errors import MessageError
from .messages import RequestRow, ServiceRequest, to_ns
from .records import ROLE_UNKNOWN, ROLES
from .wire import decode_rows

__all__ = ["RequestBatch", "RowArena", "COLUMN_DTYPES"]


def _batch_length(buf: npt.NDArray[np.uint8]) -> int:
    """Number of rows announced by a MessagePack array header, -1 if it is not one."""
    if len(buf) == 0:
        return -1
    b = int(buf[0])
    if 0x90 <= b <= 0x9F:
        return b - 0x90
    if b == 0xDC and len(buf) >= 3:
        return int.from_bytes(buf[1:3].tobytes(), "big")
    if b == 0xDD and len(buf) >= 5:
        n = int.from_bytes(buf[1:5].tobytes(), "big")
        return n if n <= len(buf) else -1  # each row takes at least one byte
    return -1


@functools.cache
def _string_tables() -> tuple[
    npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.uint64], npt.NDArray[np.int64]
]:
    """Hash tables of string keys -> codes for SRVs and roles ("" is the unknown role)."""

    srv_keys, srv_codes = _kernels.string_table(catalogue().code_of)
    role_keys, role_codes = _kernels.string_table(_ROLE_OR_UNKNOWN)
    return srv_keys, srv_codes, role_keys, role_codes


COLUMN_DTYPES: dict[str, np.dtype[Any]] = {
    "device": np.dtype(np.uint64),
    "originator": np.dtype(np.uint64),
    "counter": np.dtype(np.uint64),
    "srv": np.dtype(np.uint8),
    "role": np.dtype(np.uint8),
    "command_variant": np.dtype(np.uint8),
    "period_start_ns": np.dtype(np.int64),
    "period_end_ns": np.dtype(np.int64),
    "t_scheduled_ns": np.dtype(np.int64),
    "execution_ns": np.dtype(np.int64),
}

_ROLE_CODE = {r: i for i, r in enumerate(ROLES)}
#: in a compact row, "" is an unknown role (what ``to_rows`` writes for ROLE_UNKNOWN)
_ROLE_OR_UNKNOWN = _ROLE_CODE | {"": ROLE_UNKNOWN}


_NS_MIN, _NS_MAX = -(1 << 63), (1 << 63) - 1


def _ns_field(dt: Any, field: str) -> int:
    """A date-time as int64 ns since the epoch; one outside int64's range (before 1677 or after
    2262) is the request's own E13, not a crash of the batch."""
    ns = to_ns(dt)
    if not _NS_MIN <= ns <= _NS_MAX:
        raise MessageError(field, dt.isoformat(), "a date-time from 1678 to 2261 (UTC)", "E13")
    return ns


def _execution_ns(dt: Any, field: str) -> int:
    """An execution date-time as int64 ns; one past 2262 is held as the latest instant.

    DUIS cancels a future-dated command by sending it again to execute on 3000-12-31 (the
    reference templates' CANCELLATION requests do): a date no run reaches, so the latest
    instant int64 holds stands for it. A date before 1678 is still the request's E13.
    """
    ns = to_ns(dt)
    return _NS_MAX if ns > _NS_MAX else _ns_field(dt, field)


@dataclass(frozen=True, slots=True)
class RequestBatch:
    """Service Requests as columns; see the module docstring for the columns."""

    device: npt.NDArray[np.uint64]
    originator: npt.NDArray[np.uint64]
    counter: npt.NDArray[np.uint64]
    srv: npt.NDArray[np.uint8]
    role: npt.NDArray[np.uint8]
    command_variant: npt.NDArray[np.uint8]
    period_start_ns: npt.NDArray[np.int64]
    period_end_ns: npt.NDArray[np.int64]
    t_scheduled_ns: npt.NDArray[np.int64]
    execution_ns: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n = None
        for name, dtype in COLUMN_DTYPES.items():
            col = getattr(self, name)
            if not isinstance(col, np.ndarray) or col.dtype != dtype or col.ndim != 1:
                got = f"{type(col).__name__} {getattr(col, 'dtype', '')}".strip()
                raise TypeError(f"RequestBatch.{name}: got {got}, expected a 1-D {dtype} array")
            if n is None:
                n = len(col)
            elif len(col) != n:
                raise ValueError(f"RequestBatch.{name}: got length {len(col)}, expected {n} like the other columns")

    def __len__(self) -> int:
        return len(self.device)

    @classmethod
    def empty(cls, n: int = 0) -> RequestBatch:
        return cls(**{k: np.zeros(n, dtype=d) for k, d in COLUMN_DTYPES.items()})

    @classmethod
    def from_columns(cls, **columns: npt.ArrayLike) -> RequestBatch:
        """Build from array-likes, casting to the column dtypes; missing columns are 0."""
        n = len(next(iter(columns.values()))) if columns else 0
        unknown = set(columns) - set(COLUMN_DTYPES)
        if unknown:
            raise ValueError(f"RequestBatch: unknown columns {sorted(unknown)}, expected some of {list(COLUMN_DTYPES)}")
        out = {}
        for k, d in COLUMN_DTYPES.items():
            out[k] = np.ascontiguousarray(columns[k], dtype=d) if k in columns else np.zeros(n, dtype=d)
        return cls(**out)

    @classmethod
    def from_requests(
        cls, requests: Sequence[ServiceRequest], t_scheduled_ns: npt.ArrayLike | None = None
    ) -> RequestBatch:
        """Columns from decoded :class:`ServiceRequest` Structs."""
        cat = catalogue()
        n = len(requests)
        b = cls.empty(n)
        for i, r in enumerate(requests):
            rid = r.request_id
            b.device[i] = rid.target_int
            b.originator[i] = rid.originator_int
            b.counter[i] = rid.counter
            b.srv[i] = cat.code(r.srv, f"requests[{i}].srv")
            b.role[i] = ROLE_UNKNOWN if r.role is None else _ROLE_CODE[r.role]
            if not (isinstance(r.command_variant, int) and 0 <= r.command_variant <= 255):
                raise MessageError(
                    f"requests[{i}].command_variant", r.command_variant, "a DUIS Command Variant from 1 to 8", "E12"
                )
            b.command_variant[i] = r.command_variant
            period = r.period
            if period is not None:
                b.period_start_ns[i] = _ns_field(period.start, f"requests[{i}].period.start")
                b.period_end_ns[i] = _ns_field(period.end, f"requests[{i}].period.end")
            if r.execution_datetime is not None:
                b.execution_ns[i] = _execution_ns(r.execution_datetime, f"requests[{i}].execution_datetime")
        if t_scheduled_ns is not None:
            b.t_scheduled_ns[:] = np.asarray(t_scheduled_ns, dtype=np.int64)
        return b

    @classmethod
    def from_rows(cls, rows: Sequence[RequestRow]) -> RequestBatch:
        """Columns from compact :class:`RequestRow` objects (one C-level pass per column)."""
        n = len(rows)
        cat = catalogue()
        srv_codes = cat.code_of
        try:
            srv = np.fromiter(map(srv_codes.__getitem__, map(attrgetter("srv"), rows)), np.uint8, n)
        except KeyError as exc:
            raise MessageError("srv", exc.args[0], "a DUIS Service Reference Variant such as 4.8.1") from None
        try:
            role = np.fromiter(map(_ROLE_OR_UNKNOWN.__getitem__, map(attrgetter("role"), rows)), np.uint8, n)
        except KeyError as exc:
            raise MessageError("role", exc.args[0], f"one of {', '.join(ROLES)}") from None

        def col(name: str, dtype: type) -> npt.NDArray[Any]:
            try:
                return np.fromiter(map(attrgetter(name), rows), dtype, n)
            except OverflowError:
                raise MessageError(name, "out of range", f"a value that fits {np.dtype(dtype)}") from None

        return cls(
            device=col("target", np.uint64),
            originator=col("originator", np.uint64),
            counter=col("counter", np.uint64),
            srv=srv,
            role=role,
            command_variant=col("command_variant", np.uint8),
            period_start_ns=col("period_start_ns", np.int64),
            period_end_ns=col("period_end_ns", np.int64),
            t_scheduled_ns=col("t_scheduled_ns", np.int64),
            execution_ns=col("execution_ns", np.int64),
        )

    @classmethod
    def from_msgpack(cls, data: bytes) -> RequestBatch:
        """Decode a compact MessagePack request batch (see :func:`~dccsim.core.wire.encode_rows`).

        A Numba kernel parses the bytes straight into columns, checking every type and range.
        Anything it does not accept goes through the msgspec path (:func:`decode_rows` then
        :meth:`from_rows`), which gives the exact error, naming the row and field.
        """
        buf = np.frombuffer(data, dtype=np.uint8)
        n = _batch_length(buf)
        if n >= 0:
            u64 = np.empty((3, n), np.uint64)
            u8 = np.empty((3, n), np.uint8)
            i64 = np.empty((4, n), np.int64)
            tables = _string_tables()
            status = _kernels.parse_rows(buf, *tables, u64, u8, i64)[0]
            if status == _kernels.OK:
                return cls.from_parsed(u64, u8, i64)
        return cls.from_rows(decode_rows(data))

    @classmethod
    def from_parsed(
        cls, u64: npt.NDArray[np.uint64], u8: npt.NDArray[np.uint8], i64: npt.NDArray[np.int64]
    ) -> RequestBatch:
        """A batch over the compact parser's output rows (views, not copies): ``u64`` originator,
        target, counter; ``u8`` Command Variant, SRV, role; ``i64`` time, period start and
        end, execution time."""
        return cls(
            device=u64[1],
            originator=u64[0],
            counter=u64[2],
            srv=u8[1],
            role=u8[2],
            command_variant=u8[0],
            t_scheduled_ns=i64[0],
            period_start_ns=i64[1],
            period_end_ns=i64[2],
            execution_ns=i64[3],
        )

    def to_rows(self) -> list[RequestRow]:
        """Back to compact rows (for writing a MessagePack batch)."""
        srvs = catalogue().srvs
        return [
            RequestRow(
                originator=int(o),
                target=int(d),
                counter=int(c),
                command_variant=int(v),
                srv=srvs[s],
                role=ROLES[r] if r != ROLE_UNKNOWN else "",
                t_scheduled_ns=int(t),
                period_start_ns=int(ps),
                period_end_ns=int(pe),
                execution_ns=int(x),
            )
            for o, d, c, v, s, r, t, ps, pe, x in zip(
                self.originator,
                self.device,
                self.counter,
                self.command_variant,
                self.srv,
                self.role,
                self.t_scheduled_ns,
                self.period_start_ns,
                self.period_end_ns,
                self.execution_ns,
                strict=True,
            )
        ]

    def to_arrow(self) -> pa.RecordBatch:
        """An Arrow RecordBatch sharing these arrays' memory (no copy)."""
        return pa.RecordBatch.from_arrays(
            [pa.array(getattr(self, k)) for k in COLUMN_DTYPES], names=list(COLUMN_DTYPES)
        )

    @classmethod
    def from_arrow(cls, batch: pa.RecordBatch | pa.Table) -> RequestBatch:
        """Columns from Arrow, zero-copy where the Arrow buffers allow it."""
        if isinstance(batch, pa.Table):
            batch = (
                batch.combine_chunks().to_batches()[0]
                if batch.num_rows
                else pa.RecordBatch.from_pylist([], schema=batch.schema)
            )
        cols = {}
        for k, d in COLUMN_DTYPES.items():
            if k not in batch.schema.names:
                raise ValueError(f"Arrow batch: missing column {k!r}; expected columns {list(COLUMN_DTYPES)}")
            arr = batch.column(k)
            if arr.null_count:
                raise ValueError(f"Arrow batch: column {k!r} has {arr.null_count} nulls; expected none")
            np_arr = arr.to_numpy(zero_copy_only=False)
            if np_arr.dtype != d:
                raise ValueError(f"Arrow batch: column {k!r} is {arr.type}, expected {pa.from_numpy_dtype(d)}")
            cols[k] = np_arr
        return cls(**cols)

    def take(self, index: npt.ArrayLike) -> RequestBatch:
        """Rows selected by an integer index or boolean mask."""
        return RequestBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, batches: Iterable[RequestBatch]) -> RequestBatch:
        bs = list(batches)
        if not bs:
            return cls.empty()
        return cls(**{k: np.concatenate([getattr(b, k) for b in bs]) for k in COLUMN_DTYPES})


class RowArena:
    """Columns of received rows, laid out as the compact decoder writes them (grown on demand).

    The wall-clock server decodes every compact batch it receives straight into one arena,
    after the rows already waiting there; a micro-batch is a copy of the filled part
    (:meth:`take`). ``u64``: originator, device, counter; ``u8``: command variant, SRV,
    role; ``i64``: arrival time, period start, period end, execution time.
    """

    def __init__(self, cap: int):
        self.u64 = np.empty((3, cap), np.uint64)
        self.u8 = np.empty((3, cap), np.uint8)
        self.i64 = np.empty((4, cap), np.int64)

    def room_for(self, rows: int) -> RowArena:
        cap = self.u64.shape[1]
        if rows > cap:
            new = RowArena(max(rows, 2 * cap))
            new.u64[:, :cap], new.u8[:, :cap], new.i64[:, :cap] = self.u64, self.u8, self.i64
            self.u64, self.u8, self.i64 = new.u64, new.u8, new.i64
        return self

    def put(self, off: int, b: RequestBatch) -> None:
        end = off + len(b)
        self.u64[0, off:end], self.u64[1, off:end], self.u64[2, off:end] = b.originator, b.device, b.counter
        self.u8[0, off:end], self.u8[1, off:end], self.u8[2, off:end] = b.command_variant, b.srv, b.role
        self.i64[1, off:end], self.i64[2, off:end], self.i64[3, off:end] = (
            b.period_start_ns,
            b.period_end_ns,
            b.execution_ns,
        )

    def decode(self, payload: bytes, off: int) -> int:
        """Decode a compact row batch into the arena after its first ``off`` rows; its row count.

        The arrival times are left to the caller. A batch the compact decoder does not accept
        raises the :class:`MessageError` of :meth:`RequestBatch.from_msgpack`.
        """
        buf = np.frombuffer(payload, np.uint8)
        n = _batch_length(buf)
        if n > 0:
            a = self.room_for(off + n)
            if (
                _kernels.parse_rows(buf, *_string_tables(), a.u64[:, off:], a.u8[:, off:], a.i64[:, off:])[0]
                == _kernels.OK
            ):
                return n
        # the compact decoder refused it (or it is empty): msgspec raises, naming the row and
        # field, or (valid MessagePack the compact decoder does not take, e.g. array16 rows)
        # decodes it; as RequestBatch.from_msgpack does, without running the kernel again
        batch = RequestBatch.from_rows(decode_rows(payload))
        if len(batch):
            self.room_for(off + len(batch)).put(off, batch)
        return len(batch)

    def take(self, n: int) -> RequestBatch:
        """The first ``n`` rows as a batch of their own (copied: the arena is reused)."""
        return RequestBatch.from_parsed(self.u64[:, :n].copy(), self.u8[:, :n].copy(), self.i64[:, :n].copy())
