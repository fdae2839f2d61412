"""EUI-64 identifiers: ``90-B3-D5-1F-30-01-00-00`` <-> ``uint64``.

DUIS writes an EUI-64 as eight hex octets joined by ``-``, case-insensitive. The hot path
keeps devices as ``uint64``; these helpers convert at the edge.

>>> eui_to_int("00-db-12-34-56-78-90-a0") == 0x00DB1234567890A0
True
>>> int_to_eui(0x00DB1234567890A0)
'00-DB-12-34-56-78-90-A0'
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from .errors import MessageError

__all__ = ["EUI_RE", "eui_to_int", "int_to_eui", "euis_to_array", "array_to_euis", "is_eui"]

EUI_RE = re.compile(r"^[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}$")
_MAX = (1 << 64) - 1


def is_eui(text: str) -> bool:
    """True if ``text`` is an EUI-64 in DUIS form (8 hex octets joined by ``-``)."""
    return bool(EUI_RE.match(text))


def eui_to_int(text: str, field: str = "eui") -> int:
    """Parse a DUIS EUI-64 into an int in ``[0, 2**64)``; raise ``MessageError`` if malformed."""
    if not isinstance(text, str) or not EUI_RE.match(text):
        raise MessageError(field, text, "an EUI-64 as 8 hex octets joined by '-', e.g. 00-DB-12-34-56-78-90-A0")
    return int(text.replace("-", ""), 16)


def int_to_eui(value: int) -> str:
    """Format an int in ``[0, 2**64)`` as an upper-case DUIS EUI-64."""
    value = int(value)
    if not 0 <= value <= _MAX:
        raise MessageError("eui", value, "an integer in [0, 2**64)")
    h = f"{value:016X}"
    return "-".join(h[i : i + 2] for i in range(0, 16, 2))


def euis_to_array(texts: list[str], field: str = "eui") -> npt.NDArray[np.uint64]:
    """Parse many EUI-64 strings into a ``uint64`` array."""
    return np.fromiter((eui_to_int(t, field) for t in texts), dtype=np.uint64, count=len(texts))


def array_to_euis(values: npt.ArrayLike) -> list[str]:
    """Format a ``uint64`` array as EUI-64 strings."""
    return [int_to_eui(int(v)) for v in np.asarray(values, dtype=np.uint64)]
