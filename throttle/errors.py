"""The throttle's own errors: one small hierarchy rooted in ``ValueError``.

``dccsim.throttle`` is a leaf package, so it does not share ``dccsim.core``'s error classes;
callers catch :class:`ThrottleError` (or ``ValueError``) at their boundary.
"""

from __future__ import annotations

__all__ = ["ThrottleError", "ThrottleConfigError", "ThrottleInputError", "ThrottleTableFullError"]


class ThrottleError(ValueError):
    """Root of Alert Storm Protection's errors."""


class ThrottleConfigError(ThrottleError):
    """A bad policy or tuning grid: names the key, the value and what was expected."""


class ThrottleInputError(ThrottleError):
    """A bad alert batch: wrong dtype or shape, or time going back.

    ``argument`` names the offending parameter and ``row`` the first bad row (or ``None``).
    Nothing in the batch has been applied when this is raised.
    """

    def __init__(self, message: str, *, argument: str, row: int | None = None):
        self.argument = argument
        self.row = row
        super().__init__(message)


class ThrottleTableFullError(ThrottleError):
    """The state table cannot take another key without passing its ``max_keys`` bound.

    ``processed`` alerts of the batch (its first rows) were applied and their outputs
    written; the rest were not. The throttle stays usable (with the same bound, the next new
    key fails again unless keys expire in the meantime).
    """

    def __init__(self, message: str, *, processed: int):
        self.processed = processed
        super().__init__(message)
