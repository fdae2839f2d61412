"""The throttle's own errors: one small hierarchy rooted in ``ValueError``.

``dccsim.throttle`` is a leaf package, so it does not share ``dccsim.core``'s error classes;
callers catch :class:`ThrottleError` (or ``ValueError``) at their boundary.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ThrottleError", "ThrottleConfigError", "ThrottleInputError", "ThrottleTableFullError"]


class ThrottleError(ValueError):
    """Root of Alert Storm Protection's errors."""


class ThrottleConfigError(ThrottleError):
    """A bad policy or tuning grid: names the key, the value and what was expected.

    Built from its parts (keywords), it reads ``source: key = VALUE: expected EXPECTED`` (or
    ``source: key: GOT, expected EXPECTED`` where ``got`` words what arrived); a problem worded
    otherwise passes its text as ``message`` (without the source) and still sets every part.

    Parameters
    ----------
    message:
        The text, when it is not ``key = VALUE: expected EXPECTED``.
    key:
        The dotted key, e.g. ``"threshold"`` or ``"overrides.8F84.window_s"``; ``None`` when
        the problem has no key (a file that cannot be read or is not TOML).
    value:
        What arrived.
    expected:
        What would have been accepted.
    got:
        What arrived in words, where ``repr(value)`` would not say it (``"an unknown key"``,
        ``"300 alert codes"``).
    source:
        The file or table the policy came from, or ``None``.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        key: str | None = None,
        value: object = None,
        expected: str | None = None,
        got: str | None = None,
        source: str | None = None,
    ) -> None:
        if message is None and (key is None or expected is None):
            raise TypeError("ThrottleConfigError needs a message, or a key and what was expected")
        self.message = message
        self.key = key
        self.value = value
        self.expected = expected
        self.got = got
        self.source = source
        if message is None:
            message = f"{key} = {value!r}: expected {expected}" if got is None else f"{key}: {got}, expected {expected}"
        super().__init__(message if source is None else f"{source}: {message}")

    def replace(self, **changes: Any) -> ThrottleConfigError:
        """The same problem with some parts changed (``source``...), as a new error.

        Built from the parts, not from the text; a ``message`` is kept as it is, so change
        ``key`` only on an error without one.
        """
        parts: dict[str, Any] = {
            "message": self.message,
            "key": self.key,
            "value": self.value,
            "expected": self.expected,
            "got": self.got,
            "source": self.source,
        }
        parts.update(changes)
        return type(self)(parts.pop("message"), **parts)


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
