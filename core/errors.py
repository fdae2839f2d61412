"""One error hierarchy for dccsim's message layer and its configuration.

Every error names the field, the value that arrived and what was expected, as attributes and in
its one-line text. A :class:`MessageError` also carries the DUIS response code a DCC would
answer with, so that a bad message becomes a response, not a crash; a :class:`ConfigError`
names the key path and the file it came from.
"""

from __future__ import annotations

from typing import Any

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
    got:
        How the text shows what arrived, where ``repr(value)`` would not say it (``"a JSON
        null"``, a schema problem with its line); shown whole, on one line.

    >>> str(MessageError("$", None, "a request object or array", got="a JSON null"))
    '$: got a JSON null, expected a request object or array [malformed]'
    """

    def __init__(
        self, field: str, value: object, expected: str, code: str = "malformed", *, got: str | None = None
    ):
        self.field = field
        self.value = value
        self.expected = expected
        self.code = code
        self.got = got
        if got is None:
            shown = repr(value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
        else:
            shown = " ".join(got.split())
        super().__init__(f"{field}: got {shown}, expected {expected} [{code}]")


class ConfigError(DccsimError, ValueError):
    """A bad scenario, configuration file or flag value.

    Built from its parts (keywords), it reads ``source: key: got VALUE, expected EXPECTED``;
    built from a plain message (the one positional argument), for the few problems with no
    single key (a file that is not TOML, say), it reads ``source: message``.

    Parameters
    ----------
    message:
        The whole text, when the problem has no key, value and expectation to build it from.
    key:
        The dotted key path, e.g. ``"capacity.classes.on_demand.timeout_s"`` or
        ``"throttle.overrides.8F84.window_s"``.
    value:
        What arrived.
    expected:
        What would have been accepted.
    got:
        How the message shows what arrived, where ``repr(value)`` would not say it (``"an
        unknown key"``, a count with thousands separators).
    source:
        The file or scenario the value came from, or ``None``.

    >>> str(ConfigError(key="cache.capacity", value=-1, expected="an integer >= 0", source="day.toml"))
    'day.toml: cache.capacity: got -1, expected an integer >= 0'
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
            raise TypeError("ConfigError needs a message, or a key and what was expected")
        self.message = message
        self.key = key
        self.value = value
        self.expected = expected
        self.got = got
        self.source = source
        if message is None:
            message = f"{key}: got {repr(value) if got is None else got}, expected {expected}"
        super().__init__(message if source is None else f"{source}: {message}")

    def replace(self, **changes: object) -> ConfigError:
        """The same problem with some parts changed (``key``, ``source``...), as a new error.

        It is built from the parts, not from the text, so a prefix never doubles; a plain
        message is kept as it is.
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
