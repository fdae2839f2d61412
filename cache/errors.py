"""The cache's own errors: one small hierarchy rooted in ``ValueError``.

``dccsim.cache`` is a leaf package, so it does not share ``dccsim.core``'s error classes;
the pipeline catches :class:`CacheError` (or ``ValueError``) at its boundary.
"""

from __future__ import annotations

__all__ = ["CacheError", "CacheConfigError", "CacheInputError"]


class CacheError(ValueError):
    """Root of the readings cache's errors."""


class CacheConfigError(CacheError):
    """A bad construction argument (retention outside 25-72 h, a bad capacity).

    Built from its parts (keywords), it reads ``key: expected EXPECTED, got VALUE``; a problem
    worded otherwise passes its text as ``message`` and still sets every part.

    Parameters
    ----------
    message:
        The text, when it is not ``key: expected EXPECTED, got VALUE``.
    key:
        The argument, e.g. ``"retention_hours"`` or ``"capacity"``.
    value:
        What arrived.
    expected:
        What would have been accepted.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        key: str | None = None,
        value: object = None,
        expected: str | None = None,
    ) -> None:
        if message is None and (key is None or expected is None):
            raise TypeError("CacheConfigError needs a message, or a key and what was expected")
        self.message = message
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"{key}: expected {expected}, got {value!r}" if message is None else message)


class CacheInputError(CacheError):
    """A bad operation batch: wrong dtype or shape, a value out of range, time going back.

    ``argument`` names the offending parameter and ``row`` the first bad row (or ``None``).
    Nothing in the batch has been applied when this is raised.
    """

    def __init__(self, message: str, *, argument: str, row: int | None = None):
        self.argument = argument
        self.row = row
        super().__init__(message)
