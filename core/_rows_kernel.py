"""Numba kernel: a compact MessagePack request batch parsed straight into columns.

Private; used by :meth:`dccsim.core.columns.RequestBatch.from_msgpack`. The reference is the
msgspec path (typed decode into :class:`~dccsim.core.messages.RequestRow`, then
:meth:`RequestBatch.from_rows`), and the differential test compares the two.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

# status codes returned by the kernel
OK, TRUNCATED, BAD_TYPE, OUT_OF_RANGE, UNKNOWN_STRING, BAD_LENGTH, TRAILING = range(7)
FIELDS = (
    "originator", "target", "counter", "command_variant", "srv", "role",
    "t_scheduled_ns", "period_start_ns", "period_end_ns", "execution_ns",
)


def string_key(text: str) -> int:
    """The uint64 key the kernel computes for a string of at most 7 bytes (length in the low byte)."""
    raw = text.encode()
    if len(raw) > 7:
        raise ValueError(f"{text!r}: longer than 7 bytes")
    key = 0
    for b in raw:
        key = (key << 8) | b
    return (key << 8) | len(raw)


@jit(inline="always")
def _read_uint(buf, pos, n):  # type: ignore[no-untyped-def]
    """Big-endian unsigned integer of ``n`` in (1, 2, 4, 8) bytes, unrolled."""
    if n == 8:
        return (
            (np.uint64(buf[pos]) << np.uint64(56)) | (np.uint64(buf[pos + 1]) << np.uint64(48))
            | (np.uint64(buf[pos + 2]) << np.uint64(40)) | (np.uint64(buf[pos + 3]) << np.uint64(32))
            | (np.uint64(buf[pos + 4]) << np.uint64(24)) | (np.uint64(buf[pos + 5]) << np.uint64(16))
            | (np.uint64(buf[pos + 6]) << np.uint64(8)) | np.uint64(buf[pos + 7])
        )
    if n == 4:
        return (
            (np.uint64(buf[pos]) << np.uint64(24)) | (np.uint64(buf[pos + 1]) << np.uint64(16))
            | (np.uint64(buf[pos + 2]) << np.uint64(8)) | np.uint64(buf[pos + 3])
        )
    if n == 2:
        return (np.uint64(buf[pos]) << np.uint64(8)) | np.uint64(buf[pos + 1])
    return np.uint64(buf[pos])


@jit(inline="always")
def _read_int(buf, pos):  # type: ignore[no-untyped-def]
    """Decode one MessagePack integer at ``pos``.

    Returns ``(bits, sign, new_pos)``: ``bits`` the value as uint64 bits (two's complement
    when negative), ``sign`` 0 for >= 0, 1 for < 0, or a negative status (-TRUNCATED,
    -BAD_TYPE) on error. Kept lean: this is the inner loop (no bool or mixed-sign compares,
    which made Numba 5x slower here).
    """
    if pos >= len(buf):
        return np.uint64(0), -TRUNCATED, pos
    b = np.int64(buf[pos])
    if b <= 0x7F:
        return np.uint64(b), 0, pos + 1
    if 0xCC <= b <= 0xCF:
        n = np.int64(1) << (b - 0xCC)
        if pos + 1 + n > len(buf):
            return np.uint64(0), -TRUNCATED, pos
        return _read_uint(buf, pos + 1, n), 0, pos + 1 + n
    if b >= 0xE0:
        return np.uint64(b - 256), 1, pos + 1
    if 0xD0 <= b <= 0xD3:
        n = np.int64(1) << (b - 0xD0)
        if pos + 1 + n > len(buf):
            return np.uint64(0), -TRUNCATED, pos
        raw = _read_uint(buf, pos + 1, n)
        if n == 1:
            v = np.int64(np.int8(raw))
        elif n == 2:
            v = np.int64(np.int16(raw))
        elif n == 4:
            v = np.int64(np.int32(raw))
        else:
            v = np.int64(raw)
        return np.uint64(v), 1 if v < 0 else 0, pos + 1 + n
    return np.uint64(0), -BAD_TYPE, pos


@jit(inline="always")
def _read_str_key(buf, pos):  # type: ignore[no-untyped-def]
    """Decode a short string into its key (see :func:`string_key`)."""
    if pos >= len(buf):
        return TRUNCATED, np.uint64(0), pos
    b = np.int64(buf[pos])
    if 0xA0 <= b <= 0xBF:
        n = b - 0xA0
        pos += 1
    elif b == 0xD9:
        if pos + 2 > len(buf):
            return TRUNCATED, np.uint64(0), pos
        n = np.int64(buf[pos + 1])
        pos += 2
    else:
        return BAD_TYPE, np.uint64(0), pos
    if pos + n > len(buf):
        return TRUNCATED, np.uint64(0), pos
    if n > 7:
        return UNKNOWN_STRING, np.uint64(0), pos
    key = np.uint64(0)
    for k in range(n):
        key = (key << np.uint64(8)) | np.uint64(buf[pos + k])
    key = (key << np.uint64(8)) | np.uint64(n)
    return OK, key, pos + n


@jit(inline="always")
def _lookup(keys, codes, key):  # type: ignore[no-untyped-def]
    """Binary search in sorted ``keys`` (hand-written: no allocation per call)."""
    lo = 0
    hi = len(keys)
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(keys) and keys[lo] == key:
        return codes[lo]
    return -1


@jit
def parse_rows(buf, srv_keys, srv_codes, role_keys, role_codes, out_u64, out_u8, out_i64):  # type: ignore[no-untyped-def]
    """Parse ``[[originator, target, counter, cv, srv, role, t, start, end, exec], ...]``.

    ``out_u64`` is (3, n): originator, target, counter; ``out_u8`` (3, n): cv, srv, role;
    ``out_i64`` (4, n). Returns (status, row, field, n_rows). Trailing fields may be omitted
    (they default to 0), as msgspec allows.
    """
    pos = 0
    if len(buf) == 0:
        return TRUNCATED, 0, 0, 0
    b = np.int64(buf[0])
    if 0x90 <= b <= 0x9F:
        n = b - 0x90
        pos = 1
    elif b == 0xDC:
        if len(buf) < 3:
            return TRUNCATED, 0, 0, 0
        n = np.int64(_read_uint(buf, 1, 2))
        pos = 3
    elif b == 0xDD:
        if len(buf) < 5:
            return TRUNCATED, 0, 0, 0
        n = np.int64(_read_uint(buf, 1, 4))
        pos = 5
    else:
        return BAD_TYPE, 0, 0, 0
    if n > out_u64.shape[1]:
        return BAD_LENGTH, 0, 0, n
    for row in range(n):
        if pos >= len(buf):
            return TRUNCATED, row, 0, n
        b = np.int64(buf[pos])
        if 0x90 <= b <= 0x9F:
            m = b - 0x90
            pos += 1
        else:
            return BAD_LENGTH, row, 0, n
        if m < 6 or m > 10:
            return BAD_LENGTH, row, 0, n
        for f in range(10):
            if f >= m:
                out_i64[f - 6, row] = 0
                continue
            if f == 4 or f == 5:
                st, key, pos = _read_str_key(buf, pos)
                if st != OK:
                    return st, row, f, n
                if f == 4:
                    c = _lookup(srv_keys, srv_codes, key)
                else:
                    c = _lookup(role_keys, role_codes, key)
                if c < 0:
                    return UNKNOWN_STRING, row, f, n
                out_u8[1 if f == 4 else 2, row] = c
                continue
            v, sign, pos = _read_int(buf, pos)
            if sign < 0:
                return -sign, row, f, n
            if f <= 2:
                if sign == 1:
                    return OUT_OF_RANGE, row, f, n
                out_u64[f, row] = v
            elif f == 3:
                if sign == 1 or v > np.uint64(255):
                    return OUT_OF_RANGE, row, f, n
                out_u8[0, row] = np.uint8(v)
            else:
                if sign == 0 and v > np.uint64(0x7FFFFFFFFFFFFFFF):
                    return OUT_OF_RANGE, row, f, n
                out_i64[f - 6, row] = np.int64(v)
    if pos != len(buf):
        return TRAILING, n, 0, n
    return OK, n, 0, n
