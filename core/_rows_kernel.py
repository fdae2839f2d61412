"""Numba kernel: a compact MessagePack request batch parsed straight into columns.

Private; used by :meth:`dccsim.core.columns.RequestBatch.from_msgpack`. The reference is the
msgspec path (typed decode into :class:`~dccsim.core.messages.RequestRow`, then
:meth:`RequestBatch.from_rows`), and the differential test compares the two.
"""

from __future__ import annotations

import numba
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


def string_table(names: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """An open-addressing hash table of string keys -> codes, for :func:`parse_rows`.

    ``keys`` has a power-of-two size at least four times the number of names (so a probe
    sequence is short); an empty slot holds :data:`EMPTY`, which no string key can equal (its
    length byte would be 255).
    """
    size = 8
    while size < 4 * len(names):
        size *= 2
    keys = np.full(size, EMPTY, np.uint64)
    codes = np.full(size, -1, np.int64)
    for text, code in names.items():
        key = string_key(text)
        slot = _slot(key, size)
        while keys[slot] != EMPTY:
            slot = (slot + 1) & (size - 1)
        keys[slot], codes[slot] = key, code
    return keys, codes


EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_MULT = 0x9E3779B97F4A7C15


def _slot(key: int, size: int) -> int:
    """The first slot of ``key`` in a table of ``size`` slots (Fibonacci hashing, as the kernel)."""
    return ((key * _MULT) & 0xFFFFFFFFFFFFFFFF) >> (64 - (size.bit_length() - 1))  # size is a power of two


@jit(inline="always")
def _log2(size):  # type: ignore[no-untyped-def]
    k = 0
    while (1 << k) < size:
        k += 1
    return k


@jit
def parse_rows(buf, srv_keys, srv_codes, role_keys, role_codes, out_u64, out_u8, out_i64):  # type: ignore[no-untyped-def]
    """Parse ``[[originator, target, counter, cv, srv, role, t, start, end, exec], ...]``.

    ``out_u64`` is (3, n): originator, target, counter; ``out_u8`` (3, n): cv, srv, role;
    ``out_i64`` (4, n). ``srv_*`` and ``role_*`` are hash tables from :func:`string_table`.
    Returns (status, row, field, n_rows). Trailing fields may be omitted (they default to 0),
    as msgspec allows. One flat loop, no helper returning tuples, and a hashed string lookup
    (a binary search over the SRVs cost more than the rest of a row).
    """
    L = len(buf)
    if L == 0:
        return TRUNCATED, 0, 0, 0
    b = np.int64(buf[0])
    if 0x90 <= b <= 0x9F:
        n = b - 0x90
        pos = 1
    elif b == 0xDC:
        if L < 3:
            return TRUNCATED, 0, 0, 0
        n = (np.int64(buf[1]) << 8) | np.int64(buf[2])
        pos = 3
    elif b == 0xDD:
        if L < 5:
            return TRUNCATED, 0, 0, 0
        n = (np.int64(buf[1]) << 24) | (np.int64(buf[2]) << 16) | (np.int64(buf[3]) << 8) | np.int64(buf[4])
        pos = 5
    else:
        return BAD_TYPE, 0, 0, 0
    if n > out_u64.shape[1]:
        return BAD_LENGTH, 0, 0, n
    srv_shift = np.uint64(64 - _log2(len(srv_keys)))
    role_shift = np.uint64(64 - _log2(len(role_keys)))
    for row in range(n):
        if pos >= L:
            return TRUNCATED, row, 0, n
        b = np.int64(buf[pos])
        if b < 0x96 or b > 0x9A:
            return BAD_LENGTH, row, 0, n
        m = b - 0x90
        pos += 1
        for f in range(m, 10):
            out_i64[f - 6, row] = 0
        for f in range(m):
            if pos >= L:
                return TRUNCATED, row, f, n
            b = np.int64(buf[pos])
            pos += 1
            if f == 4 or f == 5:
                if 0xA0 <= b <= 0xBF:
                    k = b - 0xA0
                elif b == 0xD9:
                    if pos >= L:
                        return TRUNCATED, row, f, n
                    k = np.int64(buf[pos])
                    pos += 1
                else:
                    return BAD_TYPE, row, f, n
                if pos + k > L:
                    return TRUNCATED, row, f, n
                if k > 7:
                    return UNKNOWN_STRING, row, f, n
                key = np.uint64(0)
                for q in range(k):
                    key = (key << np.uint64(8)) | np.uint64(buf[pos + q])
                key = (key << np.uint64(8)) | np.uint64(k)
                pos += k
                if f == 4:
                    keys = srv_keys
                    codes = srv_codes
                else:
                    keys = role_keys
                    codes = role_codes
                mask = np.uint64(len(keys) - 1)
                slot = (key * np.uint64(0x9E3779B97F4A7C15)) >> (srv_shift if f == 4 else role_shift)
                while keys[slot] != key and keys[slot] != EMPTY:
                    slot = (slot + np.uint64(1)) & mask
                if keys[slot] != key:
                    return UNKNOWN_STRING, row, f, n
                out_u8[f - 3, row] = np.uint8(codes[slot])
                continue
            neg = False
            if b <= 0x7F:
                v = np.uint64(b)
            elif b >= 0xE0:
                v = np.uint64(b - 256)
                neg = True
            elif 0xCC <= b <= 0xD3:  # uint8-64 (0xCC-0xCF), int8-64 (0xD0-0xD3), big-endian
                w = np.int64(1) << ((b - 0xCC) & 3)
                if pos + w > L:
                    return TRUNCATED, row, f, n
                v = np.uint64(0)
                for q in range(w):
                    v = (v << np.uint64(8)) | np.uint64(buf[pos + q])
                pos += w
                if b >= 0xD0:
                    sh = np.uint64(64 - 8 * w)
                    sv = np.int64(v << sh) >> np.int64(sh)  # sign-extend
                    v = np.uint64(sv)
                    neg = sv < 0
            else:
                return BAD_TYPE, row, f, n
            if f <= 2:
                if neg:
                    return OUT_OF_RANGE, row, f, n
                out_u64[f, row] = v
            elif f == 3:
                if neg or v > np.uint64(255):
                    return OUT_OF_RANGE, row, f, n
                out_u8[0, row] = np.uint8(v)
            else:
                if not neg and v > np.uint64(0x7FFFFFFFFFFFFFFF):
                    return OUT_OF_RANGE, row, f, n
                out_i64[f - 6, row] = np.int64(v)
    if pos != L:
        return TRAILING, n, 0, n
    return OK, n, 0, n


if numba.config.DISABLE_JIT:  # plain Python (coverage runs): the string hash's multiply wraps on purpose
    _parse_rows_plain = parse_rows

    def parse_rows(*args):  # type: ignore[no-untyped-def,no-redef]
        with np.errstate(over="ignore"):
            return _parse_rows_plain(*args)
