"""One error hierarchy for dccsim's message layer.

Every error names the field, the value that arrived and what was expected, and carries the
DUIS response code a DCC would answer with, so that a bad message becomes a response, not a
crash.
"""

from __future__ import annotations

__all__ = ["DccsimError", "MessageError", "ConfigError"]


class DccsimError(Exception):
    """Root of dccsim's own errors."""


class MessageError(DccsimError, ValueError):
    """A message that cannot be accepted.

    Parameters
    ----------
    field:
        Where the problem is, e.g. ``"header.request_id"`` or ``"body.install_code"``.
    value:
        What arrived (shortened for display).
    expected:
        What would have been accepted.
    code:
        The DUIS response code this maps to (``E1``...``E30``), or ``"malformed"`` for input
        that is not a message at all (unparseable XML/JSON/MessagePack, schema violation). The
        DUIS gateway rejects those at the transport layer (HTTP 400) before any response code.
    """

    def __init__(self, field: str, value: object, expected: str, code: str = "malformed"):
        self.field = field
        self.value = value
        self.expected = expected
        self.code = code
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: got {shown}, expected {expected} [{code}]")


class ConfigError(DccsimError, ValueError):
    """A bad scenario, configuration file or flag value."""
