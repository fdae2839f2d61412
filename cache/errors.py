"""The cache's own errors: one small hierarchy rooted in ``ValueError``.

``dccsim.cache`` is a leaf package, so it does not share ``dccsim.core``'s error classes;
the pipeline catches :class:`CacheError` (or ``ValueError``) at its boundary.
"""

from __future__ import annotations

__all__ = ["CacheError", "CacheConfigError", "CacheInputError"]


class CacheError(ValueError):
    """Root of the readings cache's errors."""


class CacheConfigError(CacheError):
    """A bad construction argument (retention outside 25-72 h, a bad capacity)."""


class CacheInputError(CacheError):
    """A bad operation batch: wrong dtype or shape, a value out of range, time going back.

    ``argument`` names the offending parameter and ``row`` the first bad row (or ``None``).
    Nothing in the batch has been applied when this is raised.
    """

    def __init__(self, message: str, *, argument: str, row: int | None = None):
        self.argument = argument
        self.row = row
        super().__init__(message)
