"""Scenario settings by dotted key, as ``--set KEY=VALUE`` gives them, and TOML text to record them.

- :func:`parse_setting` reads one ``KEY=VALUE`` (VALUE in TOML: ``false``, ``3``, ``1.2``,
  ``[0.5, 6.0]``, ``"text"``; a bare word that is not TOML is taken as a string);
- :func:`toml_text` writes a scenario's TOML data back as text, so that a run with settings
  records in its logs the scenario that actually ran.

The settings themselves are applied by :func:`dccsim.loadgen.scenario.apply_settings` (in
:func:`dccsim.bench.compose.load_run`), before the scenario is checked.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from dccsim.core.errors import ConfigError

__all__ = ["parse_setting", "parse_settings", "toml_text"]


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(key, value)``; VALUE is read as TOML, or as a string when it is a
    bare word that TOML does not read (``name=foo``). :class:`ConfigError` without ``=``,
    without a key, or for an empty value."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ConfigError(
            key=key or "--set", value=text, expected="KEY=VALUE, e.g. capacity.uplift=1.2 (VALUE in TOML)"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if any(c in raw for c in "[]{}\"'=\n"):
            raise ConfigError(
                key=key, value=raw, expected='a TOML value (true, 3, 1.2, [0.5, 6.0], "text") or a bare word'
            ) from None
        value = raw
    return key, value


def parse_settings(texts: Iterable[str]) -> dict[str, Any]:
    """Several ``KEY=VALUE`` in order (a later one for the same key wins)."""
    return dict(parse_setting(t) for t in texts)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "isoformat"):  # a TOML date, time or date-time
        return str(value.isoformat())
    raise TypeError(f"toml_text: cannot write a {type(value).__name__} ({value!r})")


def _toml_key(key: str) -> str:
    return (
        key if key.isascii() and key.replace("_", "").replace("-", "").isalnum() else msgspec.json.encode(key).decode()
    )


def toml_text(data: Mapping[str, Any], _prefix: str = "") -> str:
    """TOML text of a table of scalars, lists and tables (enough for a scenario)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    # arrays of tables (storms, users) as inline tables in a list
    for k, v in data.items():
        if isinstance(v, Mapping):
            name = f"{_prefix}.{_toml_key(k)}" if _prefix else _toml_key(k)
            lines.append(f"\n[{name}]\n" + toml_text(v, name))
    return "\n".join(lines)
